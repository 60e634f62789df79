//! Mid-call control against real phones: pjsua2 users call each other by extension
//! through the server, and the test drives the call over REST (hold, unhold, DTMF,
//! blind and attended transfer) or makes the phones do it (their own hold, REFER,
//! REFER with Replaces, digits in the media and by INFO). Audio is checked on what each phone records (FFT, see
//! `wav_tones.py`): alice plays 440 Hz, bob 1000 Hz, carol 1500 Hz.
//!
//! Phones are driven through pj_peer.py's control file and report through its events
//! file (JSON lines, `t` = seconds since the phone started), which is also how a
//! recording's time is known: the recorder starts when the call's media does.
//!
//! Also: a supervisor listening (hears both, heard by nobody), whispering (hears both,
//! heard by the callee side only) and barging in (hears and heard by both), and a call
//! merged into a conference room that a third phone then dials.

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use support::phone::*;
use support::*;

const DOMAIN: &str = "alpha.test";
const PASSWORD: &str = "correct-horse-7";
const USERS: [(&str, &str, u32); 3] = [("alice", "3044", 440), ("bob", "3045", 1000), ("carol", "3046", 1500)];

fn directory(env: &TestEnv) {
    seed_directory(env, DOMAIN, &USERS.map(|(login, ext, _)| new_user(DOMAIN, login, ext, PASSWORD)));
}

fn call_id_of(ev: &Value) -> u64 {
    ev["call_id"].as_u64().or_else(|| ev["info"]["call_id"].as_u64()).expect("call id")
}

fn start_server(env: &TestEnv) -> Server {
    Server::start_with(env, ServerOptions { t1_ms: Some(100), ..Default::default() })
}

/// alice calls bob (both registered); returns the phones and the call id once answered.
fn alice_calls_bob(env: &TestEnv, server: &Server) -> (Phone, Phone, u64) {
    let bob = Phone::start(env, server, 1, ("bob", DOMAIN, PASSWORD), 1000, None, &[]);
    let alice = Phone::start(env, server, 0, ("alice", DOMAIN, PASSWORD), 440, Some("3045"), &[]);
    let answered = wait_server_event(server, "call_answered", |_| true);
    alice.record_t0();
    bob.record_t0();
    (alice, bob, call_id_of(&answered))
}

fn post(server: &Server, path: &str, body: Value) -> Value {
    let r = server.post(path, &body);
    assert_eq!(r.status, 200, "POST {path} {body}: {} {}", r.status, r.body);
    r.json()
}

/// A stretch of what a phone heard, as seconds into its recording.
struct Heard {
    wav: PathBuf,
    from: f64,
    until: f64,
}

impl Heard {
    /// A tone check of the stretch, less `settle` s at its start (the media path may
    /// still be switching over) and 0.2 s at its end.
    fn check(&self, settle: f64) -> ToneCheck {
        tone_check(&self.wav).window(self.from + settle, Some(self.until - 0.2))
    }
}

/// Lets `secs` of audio reach `phones` and says where that stretch lies in each one's
/// recording (the phone's clock less the time its recording started).
fn hear<const N: usize>(phones: [&Phone; N], secs: u64) -> [Heard; N] {
    let t0 = phones.map(|p| p.record_t0());
    let from = phones.map(phone_now);
    std::thread::sleep(Duration::from_secs(secs));
    let until = phones.map(phone_now);
    std::array::from_fn(|i| Heard { wav: phones[i].record.clone(), from: from[i] - t0[i], until: until[i] - t0[i] })
}

#[test]

fn hold_over_rest_silences_the_held_party_and_unhold_restores_audio() {
    let env = TestEnv::new("midcall_hold_rest");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let (alice, bob, id) = alice_calls_bob(&env, &server);
    let (a0, b0) = (alice.record_t0(), bob.record_t0());
    std::thread::sleep(Duration::from_millis(1500)); // audio both ways first (checked below)

    let before = phone_now(&bob);
    let held = post(&server, &format!("/v1/calls/{id}/hold"), json!({"side": "callee", "mode": "sendonly"}));
    assert_eq!(held["held"], "callee");
    wait_server_event(&server, "call_held", |e| e["call_id"] == id);
    bob.wait_event("bob sees the remote hold", 10, |e| e["event"] == "media" && e["status"] == "remote_hold");
    let hold_t = phone_now(&bob);
    std::thread::sleep(Duration::from_secs(3));
    let unhold_req = phone_now(&bob);
    post(&server, &format!("/v1/calls/{id}/unhold"), json!({}));
    wait_server_event(&server, "call_retrieved", |e| e["call_id"] == id);
    bob.wait_event("bob's media active again", 10, |e| e["event"] == "media" && e["status"] == "active" && e["t"].as_f64().unwrap() > unhold_req);
    let resumed = phone_now(&bob);
    std::thread::sleep(Duration::from_secs(3));
    let end_b = phone_now(&bob);
    let end_a = phone_now(&alice);
    let (bob_rec, alice_rec) = (bob.record.clone(), alice.record.clone());
    let alice_run = alice.quit();
    let bob_log = bob.log_text();
    let bob_run = bob.quit();
    assert!(alice_run.result.is_some() && bob_run.result.is_some());

    // On the wire: our re-INVITE offered sendonly, then sendrecv again.
    assert!(bob_log.contains("a=sendonly"), "the hold re-INVITE says sendonly (bob's pjsip log)");
    // Bob hears alice before the hold and after it, and nothing of her during it.
    let bw = |t: f64| t - b0;
    tone_check(&bob_rec).window(0.5, Some(bw(before) - 0.2)).expect(&[440]).assert("bob hears alice before the hold");
    tone_check(&bob_rec).window(bw(hold_t) + 0.5, Some(bw(unhold_req) - 0.2)).absent(&[440]).allow_silent("bob is held: silence is what he should get").assert("held bob hears nothing of alice");
    tone_check(&bob_rec).window(bw(resumed) + 0.7, Some(bw(end_b) - 0.3)).expect(&[440]).assert("bob hears alice after unhold");
    // Alice hears bob after unhold (both ways restored).
    tone_check(&alice_rec).window(end_a - a0 - 2.0, Some(end_a - a0 - 0.3)).expect(&[1000]).assert("alice hears bob after unhold");
}

#[test]
fn a_phones_own_hold_is_answered_recvonly_and_reported() {
    let env = TestEnv::new("midcall_phone_hold");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let (alice, bob, id) = alice_calls_bob(&env, &server);
    alice.command("hold");
    alice.wait_event("alice's hold accepted", 10, |e| e["event"] == "media" && e["status"] == "local_hold");
    wait_server_event(&server, "call_held", |e| e["call_id"] == id && e["held"] == "caller");
    let log = alice.log_text();
    // pjsua offers sendonly; our answer must be recvonly (never sendrecv).
    assert!(log.contains("a=sendonly"), "alice offered sendonly");
    assert!(log.contains("a=recvonly"), "the server answered recvonly");
    alice.command("unhold");
    wait_server_event(&server, "call_retrieved", |e| e["call_id"] == id);
    // Both hear each other again once she resumes.
    std::thread::sleep(Duration::from_secs(3));
    let (a_end, b_end) = (phone_now(&alice), phone_now(&bob));
    let (a0, b0) = (alice.record_t0(), bob.record_t0());
    let (alice_rec, bob_rec) = (alice.record.clone(), bob.record.clone());
    alice.quit();
    bob.quit();
    tone_check(&bob_rec).window(b_end - b0 - 2.0, Some(b_end - b0 - 0.3)).expect(&[440]).assert("bob hears alice after her own hold ends");
    tone_check(&alice_rec).window(a_end - a0 - 2.0, Some(a_end - a0 - 0.3)).expect(&[1000]).assert("alice hears bob after her own hold ends");
}

#[test]
fn dtmf_by_rfc4733_and_by_info_both_ways() {
    let env = TestEnv::new("midcall_dtmf");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let (alice, bob, id) = alice_calls_bob(&env, &server);
    post(&server, &format!("/v1/calls/{id}/dtmf"), json!({"side": "callee", "digits": "12", "method": "rfc4733"}));
    let got = |method: &str, n: usize| {
        poll(Duration::from_secs(10), &format!("{n} digits by {method}"), || {
            let d: Vec<String> = bob.events().into_iter().filter(|e| e["event"] == "dtmf" && e["method"] == method).map(|e| e["digit"].as_str().unwrap().to_owned()).collect();
            (d.len() >= n).then_some(d)
        })
    };
    assert_eq!(got("rfc4733", 2), vec!["1", "2"]);
    post(&server, &format!("/v1/calls/{id}/dtmf"), json!({"side": "callee", "digits": "3#", "method": "info"}));
    assert_eq!(got("info", 2), vec!["3", "#"]);
    // The other way: the phone's digits, in the media and by INFO (application/dtmf-relay),
    // reach the event log as the same `dtmf` events.
    alice.command("dtmf 7");
    wait_server_event(&server, "dtmf", |e| e["digit"] == "7");
    alice.command("dtmf_info 4*");
    wait_server_event(&server, "dtmf", |e| e["digit"] == "*");
    let digits: Vec<Value> = server_events(&server, "dtmf").into_iter().map(|e| e["digit"].clone()).collect();
    assert_eq!(digits, vec![json!("7"), json!("4"), json!("*")], "each digit once");
    // Bad digits are the caller's error, in our format.
    let r = server.post(&format!("/v1/calls/{id}/dtmf"), &json!({"side": "callee", "digits": "x"}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error_code"], 1400);
    alice.quit();
    bob.quit();
}

#[test]
fn blind_transfer_by_rest_the_phone_follows_and_the_new_pair_hear_each_other() {
    let env = TestEnv::new("midcall_blind_rest");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let carol = Phone::start(&env, &server, 2, ("carol", DOMAIN, PASSWORD), 1500, None, &[]);
    let (alice, bob, id) = alice_calls_bob(&env, &server);
    // alice (the caller) is sent to carol; bob leaves.
    post(&server, &format!("/v1/calls/{id}/transfer"), json!({"side": "caller", "to": "3046"}));
    alice.wait_event("alice got the REFER", 10, |e| e["event"] == "transfer_request");
    wait_server_event(&server, "call_transferred", |e| call_id_of(e) == id);
    let [carol_heard] = hear([&carol], 3);
    let alice_log = alice.log_text();
    alice.quit();
    bob.quit();
    carol.quit();
    // The NOTIFY flow on the wire (alice's side of it): she sent sipfrag NOTIFYs.
    assert!(alice_log.contains("REFER sip:") || alice_log.contains("Request msg REFER"), "alice received REFER");
    assert!(alice_log.contains("Refer-To: <sip:3046@"), "Refer-To names carol");
    assert!(alice_log.contains("Referred-By:"), "Referred-By is set");
    assert!(alice_log.contains("message/sipfrag") && alice_log.contains("SIP/2.0 200"), "alice NOTIFYed the final sipfrag");
    carol_heard.check(0.3).expect(&[440]).absent(&[1000]).assert("carol hears alice, not bob");
}

#[test]
fn a_transfer_started_by_the_phone_connects_the_other_party() {
    let env = TestEnv::new("midcall_blind_phone");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let carol = Phone::start(&env, &server, 2, ("carol", DOMAIN, PASSWORD), 1500, None, &[]);
    let (alice, bob, id) = alice_calls_bob(&env, &server);
    // bob transfers alice to carol.
    bob.command(&format!("xfer sip:3046@{DOMAIN}"));
    bob.wait_event("bob's transfer succeeded", 15, |e| e["event"] == "transfer_status" && e["final"] == true && e["code"] == 200);
    wait_server_event(&server, "call_transferred", |e| call_id_of(e) == id);
    let [carol_heard, alice_heard] = hear([&carol, &alice], 3);
    alice.quit();
    bob.quit();
    carol.quit();
    carol_heard.check(0.3).expect(&[440]).absent(&[1000]).assert("carol hears alice");
    alice_heard.check(0.3).expect(&[1500]).absent(&[1000]).assert("alice hears carol, no longer bob");
}

#[test]
fn attended_transfer_with_replaces_from_the_phone() {
    let env = TestEnv::new("midcall_attended_phone");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let carol = Phone::start(&env, &server, 2, ("carol", DOMAIN, PASSWORD), 1500, None, &[]);
    let (alice, bob, first) = alice_calls_bob(&env, &server);
    // alice consults carol on a second call, then joins bob and carol.
    alice.command(&format!("call sip:3046@{DOMAIN}"));
    let second = wait_server_event(&server, "call_answered", |e| e["call_id"].as_u64() != Some(first));
    let second = call_id_of(&second);
    carol.record_t0();
    alice.command("xfer_replaces");
    alice.wait_event("alice's attended transfer succeeded", 15, |e| e["event"] == "transfer_status" && e["final"] == true && e["code"] == 200);
    wait_server_event(&server, "call_transferred", |e| call_id_of(e) == second);
    let [bob_heard] = hear([&bob], 3);
    alice.quit();
    bob.quit();
    carol.quit();
    bob_heard.check(0.3).expect(&[1500]).absent(&[440]).assert("bob hears carol, no longer alice");
}

#[test]
fn attended_transfer_by_rest_sends_replaces_and_the_invite_takes_over() {
    let env = TestEnv::new("midcall_attended_rest");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let carol = Phone::start(&env, &server, 2, ("carol", DOMAIN, PASSWORD), 1500, None, &[]);
    let (alice, bob, first) = alice_calls_bob(&env, &server);
    alice.command(&format!("call sip:3046@{DOMAIN}"));
    let second = call_id_of(&wait_server_event(&server, "call_answered", |e| e["call_id"].as_u64() != Some(first)));
    // bob (callee of the first call) takes alice's place in the second.
    post(&server, &format!("/v1/calls/{first}/transfer"), json!({"side": "callee", "replaces": second}));
    bob.wait_event("bob followed the REFER", 10, |e| e["event"] == "transfer_request");
    wait_server_event(&server, "call_transferred", |e| call_id_of(e) == second);
    let [bob_heard] = hear([&bob], 3);
    let bob_log = bob.log_text();
    alice.quit();
    bob.quit();
    carol.quit();
    assert!(bob_log.contains("Replaces:"), "bob's INVITE carried Replaces");
    bob_heard.check(0.3).expect(&[1500]).absent(&[440]).assert("bob hears carol");
}

/// alice calls bob (so bob is the callee side, the agent), then carol (3046) is called
/// in to supervise in `mode`; returns what carol, alice and bob heard over 3 s after.
fn supervised_call(env: &TestEnv, mode: &str) -> [Heard; 3] {
    directory(env);
    let server = start_server(env);
    let carol = Phone::start(env, &server, 2, ("carol", DOMAIN, PASSWORD), 1500, None, &[]);
    let (alice, bob, id) = alice_calls_bob(env, &server);
    post(&server, &format!("/v1/calls/{id}/supervise"), json!({"to": "3046", "mode": mode}));
    let heard = hear([&carol, &alice, &bob], 3);
    alice.quit();
    bob.quit();
    carol.quit();
    heard
}

#[test]
fn a_listening_supervisor_hears_both_and_is_heard_by_nobody() {
    let env = TestEnv::new("midcall_supervise");
    let _media = env.media_lock();
    let [carol_heard, alice_heard, bob_heard] = supervised_call(&env, "listen");
    carol_heard.check(0.5).expect(&[440, 1000]).assert("the supervisor hears both parties");
    alice_heard.check(0.5).expect(&[1000]).absent(&[1500]).assert("alice hears bob, not the supervisor");
    bob_heard.check(0.5).expect(&[440]).absent(&[1500]).assert("bob hears alice, not the supervisor");
}

#[test]
fn a_whispering_supervisor_is_heard_by_the_callee_only_and_hears_both() {
    let env = TestEnv::new("midcall_supervise_whisper");
    let _media = env.media_lock();
    let [carol_heard, alice_heard, bob_heard] = supervised_call(&env, "whisper");
    carol_heard.check(0.5).expect(&[440, 1000]).assert("the supervisor hears both parties");
    alice_heard.check(0.5).expect(&[1000]).absent(&[1500]).assert("alice (the caller) hears bob, not the supervisor");
    bob_heard.check(0.5).expect(&[440, 1500]).assert("bob (the callee, the agent) hears alice and the supervisor");
}

#[test]
fn a_barging_supervisor_hears_both_and_is_heard_by_both() {
    let env = TestEnv::new("midcall_supervise_barge");
    let _media = env.media_lock();
    let [carol_heard, alice_heard, bob_heard] = supervised_call(&env, "barge");
    carol_heard.check(0.5).expect(&[440, 1000]).assert("the supervisor hears both parties");
    alice_heard.check(0.5).expect(&[1000, 1500]).assert("alice hears bob and the supervisor");
    bob_heard.check(0.5).expect(&[440, 1500]).assert("bob hears alice and the supervisor");
}

#[test]
fn a_call_merged_into_a_conference_meets_a_third_caller_there() {
    let env = TestEnv::new("midcall_conference");
    let _media = env.media_lock();
    directory(&env);
    let server = start_server(&env);
    let (alice, bob, id) = alice_calls_bob(&env, &server);
    let merged = post(&server, &format!("/v1/calls/{id}/conference"), json!({"room": "4711"}));
    assert_eq!(merged["state"], "ended", "the call hands its parties to the room: {merged}");
    // carol dials the room (room prefix *9) and meets both
    let carol = Phone::start(&env, &server, 2, ("carol", DOMAIN, PASSWORD), 1500, Some("*94711"), &[]);
    carol.record_t0(); // her media is up: she is in the room
    std::thread::sleep(Duration::from_millis(500));
    let [carol_heard, alice_heard, bob_heard] = hear([&carol, &alice, &bob], 3);
    let room = server.get("/rest/v1/uc/conferences");
    alice.quit();
    bob.quit();
    carol.quit();
    assert!(room.body.contains("4711"), "room 4711 is a conference: {}", room.body);
    carol_heard.check(0.3).expect(&[440, 1000]).assert("carol hears alice and bob in the room");
    alice_heard.check(0.3).expect(&[1000, 1500]).assert("alice hears bob and carol");
    bob_heard.check(0.3).expect(&[440, 1500]).assert("bob hears alice and carol");
}
