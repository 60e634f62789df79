//! Kicking a participant who has already left is a 404 (issue 7): a script that kicks
//! twice, or kicks someone who just hung up, is told so. Real server, SIPp peers.
//!
//! | test | what |
//! |---|---|
//! | `second_kick_is_404` | an answered caller and a ringing dial-out, each kicked twice: 200 (BYE / CANCEL), then 404 `Call/Participant not found`; PATCH of a kicked participant is 404 too; GET still shows it, `ended` |
//! | `kick_after_hang_up_is_404` | a caller hangs up by itself; kicking it then is 404. Then the room is ended while a dial-out to nowhere still holds it: a second DELETE, GET and the list already say it is gone |

mod support;

use std::time::Duration;
use support::*;

const TOKEN: &str = "conf-kick-test-token";
const BASE: &str = "/rest/v1/uc/conferences";

fn participant_gone() -> Value {
    json!({"error_code": 1404, "error_message": "Call/Participant not found"})
}

#[test]
fn second_kick_is_404() {
    let env = TestEnv::new("conf_kick_twice");
    let server = start(&env);
    let stayer = caller(&env, 0, "uac_wait_bye.xml", "stayer", &[]);
    let kicked = caller(&env, 1, "uac_wait_bye.xml", "kicked", &[]);
    let (c, _) = wait_room_active(&server, 2);
    let pid = participant_on(&server, &c, env.ports.peer_sip(1));

    let kick = format!("{BASE}/{c}/participants/{pid}");
    let first = server.delete(&kick);
    assert_eq!((first.status, first.json()), (200, json!({"confid": c, "participantid": pid})), "first kick");
    let second = server.delete(&kick);
    assert_eq!((second.status, second.json()), (404, participant_gone()), "second kick");
    let patch = server.request("PATCH", &kick, Some(r#"{"muted":true}"#));
    assert_eq!((patch.status, patch.json()), (404, participant_gone()), "PATCH of a kicked participant");
    // GET keeps showing the participant, ended (documented), for a while
    let got = server.get(&kick);
    assert_eq!((got.status, &got.json()["state"]), (200, &json!("ended")), "{got:?}");
    let run = kicked.wait();
    run.assert_ok();
    assert_eq!(run.received("BYE ").len(), 1, "one kick, one BYE\n{}", run.report());

    // a ringing dial-out: the first kick CANCELs it, the second is told it is gone
    // while the CANCEL is still under way
    let uas = Sipp::new(&env, "uas_ring_cancel.xml", "uas").slot(2).timeout_s(30);
    let uas_port = uas.local_port();
    let uas = uas.spawn();
    wait_udp_bound(uas_port, Duration::from_secs(5));
    let dial = server.post(&format!("{BASE}/{c}/participants"), &json!({"to": format!("sip:uas@127.0.0.1:{uas_port}")}));
    assert_eq!(dial.status, 200, "{dial:?}");
    let dialled = dial.json()["participantid"].as_str().expect("participantid").to_string();
    let kick = format!("{BASE}/{c}/participants/{dialled}");
    poll(Duration::from_secs(10), "dial-out ringing", || (server.get(&kick).json()["state"] == "ringing").then_some(()));
    let first = server.delete(&kick);
    assert_eq!((first.status, first.json()), (200, json!({"confid": c, "participantid": dialled})), "first kick of the dial-out");
    let second = server.delete(&kick);
    assert_eq!((second.status, second.json()), (404, participant_gone()), "second kick of the dial-out");
    let run = uas.wait();
    run.assert_ok();
    assert_eq!(run.received("CANCEL ").len(), 1, "one kick, one CANCEL\n{}", run.report());
    poll(Duration::from_secs(5), "dial-out ended", || (server.get(&kick).json()["state"] == "ended").then_some(()));
    let third = server.delete(&kick);
    assert_eq!((third.status, third.json()), (404, participant_gone()), "kick of the ended dial-out");

    // the one still present can be kicked, once
    let stayer_pid = participant_on(&server, &c, env.ports.peer_sip(0));
    let resp = server.delete(&format!("{BASE}/{c}/participants/{stayer_pid}"));
    assert_eq!(resp.status, 200, "{resp:?}");
    stayer.wait().assert_ok();
}

#[test]
fn kick_after_hang_up_is_404() {
    let env = TestEnv::new("conf_kick_after_hang_up");
    let server = start(&env);
    let stayer = caller(&env, 0, "uac_wait_bye.xml", "stayer", &[]);
    // hangs up by itself (BYE) after 3 s of media
    let leaver = caller(&env, 1, "uac_call.xml", "leaver", &["-d", "3000"]);
    let (c, _) = wait_room_active(&server, 2);
    let pid = participant_on(&server, &c, env.ports.peer_sip(1));
    leaver.wait().assert_ok();
    let path = format!("{BASE}/{c}/participants/{pid}");
    poll(Duration::from_secs(5), "the caller's hang-up seen", || (server.get(&path).json()["state"] == "ended").then_some(()));

    let resp = server.delete(&path);
    assert_eq!((resp.status, resp.json()), (404, participant_gone()), "kick after the peer hung up");
    // the room is still there (someone is in it): the 404 is about the participant
    assert_eq!(server.get(&format!("{BASE}/{c}")).status, 200);

    // a dial-out nobody answers (nothing listens on the port) keeps the room's calls
    // winding down after DELETE; for the API the conference is gone at once
    let nowhere = format!("sip:nobody@127.0.0.1:{}", env.ports.peer_sip(7));
    let dial = server.post(&format!("{BASE}/{c}/participants"), &json!({ "to": nowhere }));
    assert_eq!(dial.status, 200, "{dial:?}");
    let resp = server.delete(&format!("{BASE}/{c}"));
    assert_eq!((resp.status, resp.json()), (200, json!({"confid": c})));
    let conference_gone = json!({"error_code": 1404, "error_message": "Conference not found"});
    let again = server.delete(&format!("{BASE}/{c}"));
    assert_eq!((again.status, again.json()), (404, conference_gone.clone()), "second DELETE of the conference");
    let got = server.get(&format!("{BASE}/{c}"));
    assert_eq!((got.status, got.json()), (404, conference_gone), "GET of an ended conference");
    assert_eq!(server.get(BASE).json(), json!([]), "an ended conference is not listed");
    let live = server.get("/v1/calls").json();
    assert!(
        live.as_array().unwrap().iter().any(|l| l["state"] == "calling"),
        "the unanswered dial-out should still be winding down (else this checks nothing): {live}"
    );
    stayer.wait().assert_ok();
}

// ---------------------------------------------------------------------------------------
// Helpers

fn start(env: &TestEnv) -> Server {
    Server::start_with(env, ServerOptions { api_token: Some(TOKEN.into()), ..Default::default() })
}

/// A SIPp caller on peer slot `slot` into room 3.
fn caller(env: &TestEnv, slot: u16, scenario: &str, label: &str, extra: &[&str]) -> SippChild {
    let mut sipp = Sipp::new(env, scenario, label)
        .remote(std::net::SocketAddr::from((LOCALHOST, env.ports.sip())))
        .slot(slot)
        .service("conf-3")
        .timeout_s(40);
    for a in extra {
        sipp = sipp.arg(a);
    }
    sipp.spawn()
}

/// The participantid of the active caller on SIP port `port`.
fn participant_on(server: &Server, confid: &str, port: u16) -> String {
    poll(Duration::from_secs(10), &format!("participant on port {port}"), || {
        let list = server.get(&format!("{BASE}/{confid}/participants")).json();
        list.as_array()?
            .iter()
            .find(|p| p["state"] == "active" && p["ruri"].as_str().is_some_and(|r| r.contains(&format!(":{port}"))))
            .and_then(|p| p["participantid"].as_str().map(str::to_owned))
    })
}
