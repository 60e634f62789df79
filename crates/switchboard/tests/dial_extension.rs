//! The routing lookup proved end to end: a pjsua2 phone registers as alice (extension
//! 3044) through Switchboard as outbound proxy; a second pjsua2 sits in a conference
//! room playing 440 Hz; `POST …/participants {"to":"3044"}` must ring the registered
//! phone (at the address its REGISTER came from), which answers and hears the room.
//! A user with no registered device is a 422 that says so.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

const DOMAIN: &str = "switchboard.test"; // the server's --domain in the harness
const PASSWORD: &str = "correct-horse-7";

/// Users made with the store in the data dir before the server starts.
fn directory(env: &TestEnv) {
    seed_directory(env, DOMAIN, &[new_user(DOMAIN, "alice", "3044", PASSWORD), new_user(DOMAIN, "bob", "3045", PASSWORD)]);
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn conference_dial_out_by_extension_rings_the_registered_phone() {
    let env = TestEnv::new("dial_extension");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = Server::start(&env);

    // The phone: registers as alice, then auto-answers and records what it hears.
    let rx = env.path("alice_rx.wav");
    env.report_on_failure(&rx);
    let phone_port = env.ports.peer_sip(0);
    let mut phone = PjPeer::spawn(
        &env,
        "alice_phone",
        &strings(&[
            "answer",
            "--registrar",
            &format!("sip:{DOMAIN}"),
            "--proxy",
            &format!("sip:{};lr", server.sip),
            "--domain",
            DOMAIN,
            "--user",
            "alice",
            "--password",
            PASSWORD,
            "--sip-port",
            &phone_port.to_string(),
            "--rtp-port",
            &env.ports.pj_rtp(0).to_string(),
            "--rtp-range",
            "10",
            "--play",
            &env.path("tone1000.wav").display().to_string(),
            "--loop",
            "--record",
            &rx.display().to_string(),
            "--codec",
            "PCMU/8000",
            "--max-time",
            "40",
        ]),
    );
    phone.wait_ready(Duration::from_secs(10));

    // Before it has registered, 3044 is a user without a device: 422, saying so. The
    // phone registers within moments; wait for the routing lookup to find it.
    poll(Duration::from_secs(10), "alice's phone registered", || {
        let r = server.post("/v1/calls", &json!({"to": "3045", "hangup_after_ms": 1000}));
        assert_eq!(r.status, 422, "bob has no device: {r:?}");
        assert!(r.body.contains("user 3045 has no registered device"), "{}", r.body);
        std::fs::read_to_string(&server.log).unwrap_or_default().contains("registered user=").then_some(())
    });

    // Someone in room 51, playing 440 Hz.
    let caller = PjPeer::spawn(
        &env,
        "room_caller",
        &strings(&[
            "call",
            &format!("sip:conf-51@{}", server.sip),
            "--user",
            "carol",
            "--sip-port",
            &env.ports.peer_sip(1).to_string(),
            "--rtp-port",
            &env.ports.pj_rtp(1).to_string(),
            "--rtp-range",
            "10",
            "--play",
            &env.path("tone440.wav").display().to_string(),
            "--loop",
            "--duration",
            "9",
            "--codec",
            "PCMU/8000",
            "--max-time",
            "30",
        ]),
    );
    let confid = poll(Duration::from_secs(10), "room 51 live", || {
        let rooms: Value = server.get("/rest/v1/uc/conferences").json();
        rooms.as_array()?.iter().find(|r| r["confroomnum"].to_string().contains("51"))?["confid"].as_str().map(str::to_owned)
    });

    let r = server.post(&format!("/rest/v1/uc/conferences/{confid}/participants"), &json!({"to": "3044"}));
    assert_eq!(r.status, 200, "dial-out by extension: {r:?}");
    let pid = r.json()["participantid"].as_str().expect("participantid").to_owned();
    let p: Value = poll(Duration::from_secs(10), "participant 3044 connected", || {
        let p = server.get(&format!("/rest/v1/uc/conferences/{confid}/participants/{pid}")).json();
        (p["state"] == "connected" || p["state"] == "active").then_some(p)
    });
    let ruri = p["ruri"].as_str().unwrap_or_default().to_owned();
    assert!(ruri.contains(&format!("127.0.0.1:{phone_port}")), "the INVITE went to the registered contact: {p}");

    caller.wait().assert_ok();
    // The room keeps its dialled-out participant: hang the phone up over the API.
    let r = server.delete(&format!("/rest/v1/uc/conferences/{confid}/participants/{pid}"));
    assert!(r.status < 300, "kick: {r:?}");
    let run = phone.wait();
    run.assert_ok();
    // The phone heard the room (the caller's 440 Hz) and not itself.
    tone_check(&rx).window(1.0, Some(4.0)).expect(&[440]).absent(&[1000]).assert("alice's phone hears room 51");
}
