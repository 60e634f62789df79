//! Two-party calls between users (the bridge, B2BUA), with real pjsua2 phones that
//! register with Switchboard and call each other by extension through it:
//! - both hear each other's tone, and a BYE from either side ends both legs; the call
//!   is in `GET /v1/calls/{id}` and its CallEnded in `/v1/events`;
//! - forking: a user registered from two phones; both ring, one answers, the other
//!   gets CANCEL;
//! - busy (486), nobody registered (480), no answer within the ring time (480);
//! - redirect and intercept of a ringing call over REST.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

const DOMAIN: &str = "switchboard.test"; // the server's --domain in the harness
const PASSWORD: &str = "correct-horse-7";

/// alice 3044, bob 3045, carol 3046, made with the store before the server starts.
fn directory(env: &TestEnv) {
    let users = [("alice", "3044"), ("bob", "3045"), ("carol", "3046")].map(|(l, e)| new_user(DOMAIN, l, e, PASSWORD));
    seed_directory(env, DOMAIN, &users);
}

/// A server whose calls ring for `ring_time_s` at most.
fn server(env: &TestEnv, ring_time_s: u64) -> Server {
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, format!("[calls]\nring_time_s = {ring_time_s}\n[mx]\nadmin_listen = \"\"\n")).expect("config");
    Server::start_with(env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() })
}

/// pj_peer.py arguments for a phone registered as `user` through the server.
fn phone_args(env: &TestEnv, server: &Server, mode: &str, user: &str, slot: u16, extra: &[&str]) -> Vec<String> {
    let (rtp, range) = env.ports.phone_rtp(slot);
    let mut v: Vec<String> = vec![mode.into()];
    if let Some(uri) = extra.first().filter(|a| a.starts_with("sip:")) {
        v.push(uri.to_string());
    }
    v.extend(
        [
            "--registrar",
            &format!("sip:{DOMAIN}"),
            "--proxy",
            &format!("sip:{};lr", server.sip),
            "--domain",
            DOMAIN,
            "--user",
            user,
            "--password",
            PASSWORD,
            "--sip-port",
            &env.ports.peer_sip(slot).to_string(),
            "--rtp-port",
            &rtp.to_string(),
            "--rtp-range",
            &range.to_string(),
            "--codec",
            "PCMU/8000",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v.extend(extra.iter().filter(|a| !a.starts_with("sip:")).map(|s| s.to_string()));
    v
}

/// Waits until `n` contacts of `login` are registered.
fn wait_registered(server: &Server, login: &str, n: usize) {
    poll(Duration::from_secs(15), &format!("{login} registered {n} device(s)"), || {
        let regs: Value = server.get("/v1/registrations").json();
        let count = regs.as_array()?.iter().filter(|r| r["login"] == login).count();
        (count >= n).then_some(())
    });
}

fn calls(server: &Server) -> Vec<Value> {
    server.get("/v1/calls?kind=call").json().as_array().cloned().unwrap_or_default()
}

fn events_of_call(server: &Server, call_id: u64) -> Vec<String> {
    let events: Value = server.get("/v1/events").json();
    events
        .as_array()
        .map(|a| a.iter().filter(|e| e["call_id"].as_u64() == Some(call_id) || e["info"]["call_id"].as_u64() == Some(call_id)).filter_map(|e| e["type"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn final_status(run: &PjRun) -> Option<u64> {
    run.result.as_ref()?["final_status"].as_array()?.first()?.as_u64()
}

#[test]
fn users_call_each_other_by_extension_and_hear_each_other() {
    let env = TestEnv::new("two_party_ext");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = server(&env, 30);

    // bob answers after a second of ringing, plays 1000 Hz and records.
    let bob_rx = env.path("bob_rx.wav");
    env.report_on_failure(&bob_rx);
    let tone1000 = env.path("tone1000.wav").display().to_string();
    let tone440 = env.path("tone440.wav").display().to_string();
    let mut bob = PjPeer::spawn(
        &env,
        "bob",
        &phone_args(&env, &server, "answer", "bob", 0, &["--answer-after", "1", "--play", &tone1000, "--loop", "--record", &bob_rx.display().to_string(), "--max-time", "40"]),
    );
    bob.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob", 1);

    // alice calls 3045, plays 440 Hz, and hangs up after 5 s of media.
    let alice_rx = env.path("alice_rx.wav");
    env.report_on_failure(&alice_rx);
    let uri = format!("sip:3045@{DOMAIN}");
    let alice = PjPeer::spawn(
        &env,
        "alice",
        &phone_args(&env, &server, "call", "alice", 1, &[&uri, "--play", &tone440, "--loop", "--record", &alice_rx.display().to_string(), "--duration", "5", "--max-time", "40"]),
    );
    // While it rings, the call is listed as ringing.
    let ringing = poll(Duration::from_secs(15), "the call is listed", || calls(&server).into_iter().find(|c| c["state"] == "ringing"));
    assert_eq!(ringing["callee"]["ext"], "3045", "{ringing}");
    assert_eq!(ringing["caller"]["ext"], "3044", "the caller is alice, from the directory: {ringing}");
    let call_id = ringing["call_id"].as_u64().expect("integer call_id");

    alice.wait().assert_ok();
    // alice's BYE ended bob's leg too: the server sent bob a BYE.
    let bob_run = bob.wait();
    bob_run.assert_ok();

    let call = poll(Duration::from_secs(10), "call ended", || {
        let c = server.get(&format!("/v1/calls/{call_id}")).json();
        (c["state"] == "ended").then_some(c)
    });
    assert_eq!(call["disposition"], "answered", "{call}");
    assert_eq!(call["hangup_by"], "caller", "{call}");
    assert!(call["answered_ms"].as_u64().is_some() && call["ended_ms"].as_u64().is_some(), "{call}");
    assert_eq!(call["caller_codec"], "PCMU", "{call}");
    // The caller ID bob saw is alice's, from the directory.
    let log = std::fs::read_to_string(env.path("bob.pj.log")).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.starts_with("From:") && l.contains("alice") && l.contains("<sip:3044@")),
        "bob's INVITE presents alice by her extension and name"
    );

    let ev = events_of_call(&server, call_id);
    for t in ["call_started", "call_ringing", "call_answered", "call_ended"] {
        assert!(ev.iter().any(|e| e == t), "{t} in /v1/events: {ev:?}");
    }

    tone_check(&alice_rx).window(1.0, Some(4.0)).expect(&[1000]).absent(&[440]).assert("alice hears bob");
    tone_check(&bob_rx).window(1.0, Some(4.0)).expect(&[440]).absent(&[1000]).assert("bob hears alice");
}

#[test]
fn the_callee_hanging_up_ends_the_caller_too() {
    let env = TestEnv::new("two_party_callee_bye");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = server(&env, 30);
    let mut bob = PjPeer::spawn(&env, "bob", &phone_args(&env, &server, "answer", "bob", 0, &["--hangup-after", "2", "--max-time", "30"]));
    bob.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob", 1);
    // alice would stay 20 s: bob's BYE must end her call first.
    let alice = PjPeer::spawn(&env, "alice", &phone_args(&env, &server, "call", "alice", 1, &["sip:3045@switchboard.test", "--duration", "20", "--max-time", "30"]));
    let alice_run = alice.wait();
    bob.wait().assert_ok();
    let ended_at = alice_run.result.as_ref().and_then(|r| r["events"]["state_DISCONNECTED"].as_f64()).expect("alice's call ended");
    let media_at = alice_run.result.as_ref().and_then(|r| r["events"]["media_active"].as_f64()).expect("alice had media");
    assert!(ended_at - media_at < 10.0, "alice was hung up by the server when bob left: {:?}", alice_run.result);
    let call = poll(Duration::from_secs(10), "call ended", || calls(&server).into_iter().find(|c| c["state"] == "ended"));
    assert_eq!(call["hangup_by"], "callee", "{call}");
}

#[test]
fn a_user_with_two_phones_rings_both_and_the_loser_gets_cancel() {
    let env = TestEnv::new("two_party_fork");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = server(&env, 30);
    // bob's desk phone answers after 2 s; his mobile rings and never answers.
    let mut desk = PjPeer::spawn(&env, "bob_desk", &phone_args(&env, &server, "answer", "bob", 0, &["--answer-after", "2", "--max-time", "30"]));
    desk.wait_ready(Duration::from_secs(10));
    let mut mobile = PjPeer::spawn(&env, "bob_mobile", &phone_args(&env, &server, "answer", "bob", 2, &["--ring-only", "--max-time", "30"]));
    mobile.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob", 2);

    let alice = PjPeer::spawn(&env, "alice", &phone_args(&env, &server, "call", "alice", 1, &["sip:bob@switchboard.test", "--duration", "3", "--max-time", "30"]));
    let ringing = poll(Duration::from_secs(15), "both phones rung", || {
        calls(&server).into_iter().find(|c| c["ringing_legs"].as_array().is_some_and(|l| l.len() == 2))
    });
    alice.wait().assert_ok();
    desk.wait().assert_ok();
    let mobile_run = mobile.wait();
    assert_eq!(final_status(&mobile_run), Some(487), "the mobile's INVITE was cancelled: {:?}", mobile_run.result);
    let log = std::fs::read_to_string(env.path("bob_mobile.pj.log")).unwrap_or_default();
    assert!(log.contains("CANCEL sip:"), "the mobile got a CANCEL");
    let call_id = ringing["call_id"].as_u64().expect("call id");
    let call = poll(Duration::from_secs(10), "call ended", || {
        let c = server.get(&format!("/v1/calls/{call_id}")).json();
        (c["state"] == "ended").then_some(c)
    });
    assert_eq!(call["disposition"], "answered", "{call}");
}

#[test]
fn busy_unavailable_and_no_answer_are_mapped_back_to_the_caller() {
    let env = TestEnv::new("two_party_fail");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = server(&env, 3);

    // Nobody registered as carol: 480.
    let run = pj_peer(&env, "alice_to_carol", &phone_args(&env, &server, "call", "alice", 1, &["sip:3046@switchboard.test", "--max-time", "15"]));
    assert_eq!(final_status(&run), Some(480), "{:?}", run.result);

    // bob's phone is busy (register mode refuses calls with 486): 486.
    let mut busy = PjPeer::spawn(&env, "bob_busy", &phone_args(&env, &server, "register", "bob", 0, &["--hold", "12", "--max-time", "20"]));
    busy.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob", 1);
    let run = pj_peer(&env, "alice_to_busy", &phone_args(&env, &server, "call", "alice", 1, &["sip:3045@switchboard.test", "--max-time", "15"]));
    assert_eq!(final_status(&run), Some(486), "{:?}", run.result);
    drop(busy.wait());

    // carol's phone rings and never answers: 480 after the 3 s ring time, and CANCEL to her.
    let mut carol = PjPeer::spawn(&env, "carol", &phone_args(&env, &server, "answer", "carol", 2, &["--ring-only", "--max-time", "20"]));
    carol.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "carol", 1);
    let run = pj_peer(&env, "alice_to_carol_rings", &phone_args(&env, &server, "call", "alice", 1, &["sip:carol@switchboard.test", "--max-time", "15"]));
    assert_eq!(final_status(&run), Some(480), "{:?}", run.result);
    let ring_s = run.result.as_ref().and_then(|r| r["events"]["state_DISCONNECTED"].as_f64()).unwrap_or(0.0);
    assert!(ring_s >= 2.5, "480 only after the ring time: {:?}", run.result);
    assert_eq!(final_status(&carol.wait()), Some(487), "carol's phone was cancelled");

    let all = calls(&server);
    let dispositions: Vec<&str> = all.iter().filter_map(|c| c["disposition"].as_str()).collect();
    for d in ["unavailable", "busy", "no_answer"] {
        assert!(dispositions.contains(&d), "a call with disposition {d}: {dispositions:?}");
    }
}

#[test]
fn a_ringing_call_is_redirected_and_intercepted_over_rest() {
    let env = TestEnv::new("two_party_redirect");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = server(&env, 30);
    // bob rings forever; carol answers.
    let mut bob = PjPeer::spawn(&env, "bob", &phone_args(&env, &server, "answer", "bob", 0, &["--ring-only", "--max-time", "40"]));
    bob.wait_ready(Duration::from_secs(10));
    let mut carol = PjPeer::spawn(&env, "carol", &phone_args(&env, &server, "answer", "carol", 2, &["--max-time", "40"]));
    carol.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob", 1);
    wait_registered(&server, "carol", 1);

    // Redirect: alice calls bob; while it rings, the call goes to carol instead.
    let alice = PjPeer::spawn(&env, "alice", &phone_args(&env, &server, "call", "alice", 1, &["sip:3045@switchboard.test", "--duration", "2", "--max-time", "30"]));
    let call = poll(Duration::from_secs(15), "bob rings", || calls(&server).into_iter().find(|c| c["state"] == "ringing" && c["ringing_legs"].as_array().is_some_and(|l| !l.is_empty())));
    let id = call["call_id"].as_u64().expect("id");
    let r = server.post(&format!("/v1/calls/{id}/redirect"), &json!({"to": "3046"}));
    assert_eq!(r.status, 200, "redirect: {r:?}");
    alice.wait().assert_ok();
    carol.wait().assert_ok();
    assert_eq!(final_status(&bob.wait()), Some(487), "bob's ringing phone was cancelled");
    let call = server.get(&format!("/v1/calls/{id}")).json();
    assert_eq!(call["callee"]["ext"], "3046", "{call}");
    assert!(events_of_call(&server, id).iter().any(|e| e == "call_transferred"), "CallTransferred event");
    // Redirecting an answered (now ended) call is a conflict.
    let r = server.post(&format!("/v1/calls/{id}/redirect"), &json!({"to": "3046"}));
    assert_eq!(r.status, 409, "{r:?}");

    // Intercept: alice calls bob (rings forever); carol picks it up.
    let mut bob = PjPeer::spawn(&env, "bob2", &phone_args(&env, &server, "answer", "bob", 0, &["--ring-only", "--max-time", "40"]));
    bob.wait_ready(Duration::from_secs(10));
    let mut carol = PjPeer::spawn(&env, "carol2", &phone_args(&env, &server, "answer", "carol", 2, &["--max-time", "40"]));
    carol.wait_ready(Duration::from_secs(10));
    let alice = PjPeer::spawn(&env, "alice2", &phone_args(&env, &server, "call", "alice", 1, &["sip:3045@switchboard.test", "--duration", "2", "--max-time", "30"]));
    let call = poll(Duration::from_secs(15), "bob rings again", || {
        calls(&server).into_iter().find(|c| c["state"] == "ringing" && c["call_id"].as_u64() != Some(id) && c["ringing_legs"].as_array().is_some_and(|l| !l.is_empty()))
    });
    let id2 = call["call_id"].as_u64().expect("id");
    let leg = call["caller_leg"].as_str().expect("caller leg").to_owned();
    // The leg id names the call too.
    let r = server.post(&format!("/v1/calls/{leg}/intercept"), &json!({"device": "carol"}));
    assert_eq!(r.status, 200, "intercept: {r:?}");
    alice.wait().assert_ok();
    carol.wait().assert_ok();
    assert_eq!(final_status(&bob.wait()), Some(487), "bob's phone stopped ringing");
    let call = server.get(&format!("/v1/calls/{id2}")).json();
    assert_eq!(call["callee"]["ext"], "3046", "carol took the call: {call}");
    assert_eq!(call["disposition"], "answered", "{call}");

    // Bad input gets a clear 4xx: the call's state is checked first (409), then the body.
    assert_eq!(server.post(&format!("/v1/calls/{id2}/redirect"), &json!({"to": ""})).status, 409);
    assert_eq!(server.post("/v1/calls/999999/redirect", &json!({"to": "3046"})).status, 404);
}
