//! Conference rooms checked by ear: real pjsua2 clients dial into a room, each playing
//! its own tone, and an FFT of what each one recorded says who it heard. Topology,
//! mute and deaf are changed over the REST API while the clients talk; DTMF digits a
//! client sends must show up as engine events.
//!
//! These tests take the machine-wide media lock (see `support`), so on 2 cores only
//! one audio test runs at a time.

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// One softphone in a room.
struct Party {
    user: &'static str,
    hz: u32,
    codec: &'static str,
    /// Request-URI user: `conf-<n>` or the feature code `*9<n>`.
    dial: String,
    /// Seconds of media before it hangs up.
    duration: f64,
    dtmf: Option<&'static str>,
    /// Percent of its outgoing RTP the client drops (simulated loss).
    tx_drop_pct: u32,
}

impl Party {
    fn new(user: &'static str, hz: u32, codec: &'static str, dial: &str, duration: f64) -> Party {
        Party { user, hz, codec, dial: dial.to_owned(), duration, dtmf: None, tx_drop_pct: 0 }
    }
}

fn tone(env: &TestEnv, hz: u32) -> PathBuf {
    let wav = env.path(&format!("tone{hz}.wav"));
    if !wav.exists() {
        let ok = Command::new(require_tool("sox"))
            .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "15", "sine", &hz.to_string(), "vol", "0.5"])
            .status()
            .expect("run sox");
        assert!(ok.success(), "sox could not make {hz} Hz");
    }
    wav
}

/// Starts party `i` calling the room; returns the running peer and its recording path.
fn join(env: &TestEnv, server: &Server, i: u16, p: &Party) -> (PjPeer, PathBuf) {
    let rec = env.path(&format!("{}_rx.wav", p.user));
    // RTP ports: ten per party from base+10; the block's SIPp media ranges are unused here.
    let rtp = env.ports.base + 10 + 10 * i;
    let mut args: Vec<String> = vec![
        "call".into(),
        format!("sip:{}@{}", p.dial, server.sip),
        "--user".into(),
        p.user.into(),
        "--sip-port".into(),
        env.ports.peer_sip(i).to_string(),
        "--rtp-port".into(),
        rtp.to_string(),
        "--rtp-range".into(),
        "10".into(),
        "--play".into(),
        tone(env, p.hz).display().to_string(),
        "--loop".into(),
        "--record".into(),
        rec.display().to_string(),
        "--duration".into(),
        p.duration.to_string(),
        "--max-time".into(),
        (p.duration + 15.0).to_string(),
        "--codec".into(),
        p.codec.into(),
    ];
    if let Some(d) = p.dtmf {
        args.extend(["--dtmf".into(), d.into()]);
    }
    if p.tx_drop_pct > 0 {
        args.extend(["--tx-drop-pct".into(), p.tx_drop_pct.to_string()]);
    }
    env.report_on_failure(&rec);
    (PjPeer::spawn(env, p.user, &args), rec)
}

fn assert_hears(wav: &PathBuf, expect: &[u32], absent: &[u32], skip: f64, until: Option<f64>, what: &str) {
    let (ok, verdict) = wav_tones_between(wav, expect, absent, skip, until);
    assert!(ok, "{what}: expected {expect:?}, absent {absent:?} in {} [{skip}s..{until:?}]: {verdict}", wav.display());
}

fn pid_of(parts: &[Value], user: &str) -> String {
    parts
        .iter()
        .find(|p| p["ruri"].as_str().is_some_and(|u| u.contains(&format!("sip:{user}@"))))
        .and_then(|p| p["participantid"].as_str())
        .unwrap_or_else(|| panic!("no participant {user} in {parts:?}"))
        .to_owned()
}

fn status(server: &Server) -> Value {
    server.get("/v1/status").json()
}

/// After every client hung up: the room is gone and every RTP port is back.
fn assert_room_gone(server: &Server) {
    server.wait_all_ended(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = status(server);
        if s["rooms"] == 0 && s["rtp_ports_in_use"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "room or ports left after everyone hung up: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.get("/rest/v1/uc/conferences").json(), json!([]));
}

#[test]
fn three_parties_hear_the_others_not_themselves_and_leavers_go_silent() {
    let env = TestEnv::new("conf_three_parties");
    let _media = env.media_lock();
    let server = Server::start(&env);
    // Three codecs and both ways of dialling the room. Alice leaves first.
    let parties = [
        Party::new("alice", 440, "PCMU/8000", "conf-31", 3.0),
        Party::new("bob", 1000, "PCMA/8000", "*931", 7.0),
        Party::new("carol", 1700, "G722/16000", "conf-31", 7.0),
    ];
    let mut peers = Vec::new();
    for (i, p) in parties.iter().enumerate() {
        peers.push(join(&env, &server, i as u16, p));
    }
    let (confid, parts) = wait_room_active(&server, 3);
    assert_eq!(parts.len(), 3, "one room for both dial styles: {parts:?}");
    assert!(confid.starts_with("rCF-"), "confid {confid}");
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    // While all three talk (first ~2.5 s of alice's call): each hears the other two only.
    assert_hears(&recs[0], &[1000, 1700], &[440], 0.7, Some(2.6), "alice");
    assert_hears(&recs[1], &[440, 1700], &[1000], 0.9, Some(2.6), "bob");
    assert_hears(&recs[2], &[440, 1000], &[1700], 0.9, Some(2.6), "carol");
    // After alice left (≈3.2 s after she joined), nobody hears 440 any more.
    assert_hears(&recs[1], &[1700], &[440], 4.5, None, "bob after alice left");
    assert_hears(&recs[2], &[1000], &[440], 4.5, None, "carol after alice left");
    assert_room_gone(&server);
}

/// Two of three parties lose 15 % of the packets they send: the jitter buffer and
/// concealment bridge the gaps, so everyone still hears the other two (and not
/// themselves). A capture proves the loss really happened on the wire.
#[test]
fn lossy_senders_are_still_heard_and_do_not_break_the_mix() {
    let env = TestEnv::new("conf_lossy_senders");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let mut parties = [
        Party::new("alice", 440, "PCMU/8000", "conf-41", 6.0),
        Party::new("bob", 1000, "PCMA/8000", "conf-41", 6.0),
        Party::new("carol", 1700, "G722/16000", "conf-41", 6.0),
    ];
    parties[0].tx_drop_pct = 15;
    parties[1].tx_drop_pct = 15;
    let (lo, hi) = (env.ports.base + 10, env.ports.base + 10 + 10 * parties.len() as u16);
    let capture = Capture::start(&env, "rtp", &format!("udp and src portrange {lo}-{hi}"));
    let peers: Vec<_> = parties.iter().enumerate().map(|(i, p)| join(&env, &server, i as u16, p)).collect();
    wait_room_active(&server, 3);
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    let packets = capture.stop();
    // Per sending port: RTP sequence numbers seen vs the span they cover.
    let mut seqs: std::collections::HashMap<u16, Vec<u16>> = Default::default();
    for p in packets.iter().filter(|p| p.payload.len() >= 12 && p.payload[0] >> 6 == 2 && p.payload[1] & 0x7f < 72) {
        seqs.entry(p.src.port()).or_default().push(u16::from_be_bytes([p.payload[2], p.payload[3]]));
    }
    let lost_pct = |i: u16| -> f64 {
        let (base, top) = (lo + 10 * i, lo + 10 * i + 10);
        let s: Vec<u16> = seqs.iter().filter(|(port, _)| (base..top).contains(*port)).flat_map(|(_, v)| v.clone()).collect();
        assert!(s.len() > 100, "party {i}: only {} RTP packets captured", s.len());
        let span = s.iter().map(|&x| x.wrapping_sub(s[0])).max().unwrap() as f64 + 1.0;
        100.0 * (1.0 - s.len() as f64 / span)
    };
    let loss: Vec<f64> = (0..3).map(lost_pct).collect();
    assert!(loss[0] > 5.0 && loss[1] > 5.0, "the lossy clients really lost packets: {loss:?}");
    assert!(loss[2] < 1.0, "the clean client lost none: {loss:?}");

    assert_hears(&recs[0], &[1000, 1700], &[440], 1.0, Some(5.5), "alice (lossy)");
    assert_hears(&recs[1], &[440, 1700], &[1000], 1.0, Some(5.5), "bob (lossy)");
    assert_hears(&recs[2], &[440, 1000], &[1700], 1.0, Some(5.5), "carol hears both lossy senders");
    assert_room_gone(&server);
}

#[test]
fn topology_rule_over_rest_silences_one_path_only() {
    let env = TestEnv::new("conf_topology");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let parties = [
        Party::new("alice", 440, "PCMU/8000", "conf-32", 7.0),
        Party::new("bob", 1000, "PCMU/8000", "conf-32", 7.0),
        Party::new("carol", 1700, "PCMA/8000", "conf-32", 7.0),
    ];
    let peers: Vec<(PjPeer, PathBuf)> = parties.iter().enumerate().map(|(i, p)| join(&env, &server, i as u16, p)).collect();
    let (confid, parts) = wait_room_active(&server, 3);
    let (alice, bob) = (pid_of(&parts, "alice"), pid_of(&parts, "bob"));
    let joined = Instant::now();
    // Let a second of normal mixing through first, then: bob no longer hears alice.
    std::thread::sleep(Duration::from_millis(1500));
    let rules = json!([{"from": alice, "to": bob, "enabled": false}]);
    let resp = server.post(&format!("/rest/v1/uc/conferences/{confid}/topology"), &rules);
    assert_eq!(resp.status, 200, "topology change: {}", resp.body);
    let topo = server.get(&format!("/rest/v1/uc/conferences/{confid}/topology")).json();
    assert_eq!(topo, json!([{"from": "*", "to": "*", "enabled": true}, {"from": alice, "to": bob, "enabled": false}]));
    let applied = joined.elapsed().as_secs_f64();
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    assert_hears(&recs[1], &[440, 1700], &[1000], 0.7, Some(1.3), "bob before the rule");
    assert_hears(&recs[1], &[1700], &[440, 1000], applied + 0.8, None, "bob after the rule");
    assert_hears(&recs[2], &[440, 1000], &[1700], applied + 0.8, None, "carol still hears alice");
    assert_hears(&recs[0], &[1000, 1700], &[440], applied + 0.8, None, "alice still hears bob");
    assert_room_gone(&server);
}

#[test]
fn star_rule_spares_later_joiners_and_mute_deaf_work() {
    let env = TestEnv::new("conf_star_mute_deaf");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let first = [
        Party::new("alice", 440, "PCMU/8000", "conf-33", 8.0),
        Party::new("bob", 1000, "PCMU/8000", "conf-33", 8.0),
        Party::new("carol", 1700, "PCMU/8000", "conf-33", 8.0),
    ];
    // Recordings start a little after each spawn, so offsets measured from the spawn
    // are upper bounds of the recording time: safe as `skip` values.
    let start = Instant::now();
    let mut peers: Vec<(PjPeer, PathBuf)> = first.iter().enumerate().map(|(i, p)| join(&env, &server, i as u16, p)).collect();
    let (confid, parts) = wait_room_active(&server, 3);
    let (alice, bob, carol) = (pid_of(&parts, "alice"), pid_of(&parts, "bob"), pid_of(&parts, "carol"));
    // `*` -> carol: carol hears none of those present now...
    let resp = server.post(&format!("/rest/v1/uc/conferences/{confid}/topology"), &json!([{"from": "*", "to": carol, "enabled": false}]));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let star_at = start.elapsed().as_secs_f64();
    // ...but dave, who joins later, is heard by everyone, carol included.
    let dave_spawn = start.elapsed().as_secs_f64();
    peers.push(join(&env, &server, 3, &Party::new("dave", 2500, "PCMU/8000", "conf-33", 5.5)));
    wait_room_active(&server, 4);
    std::thread::sleep(Duration::from_millis(1200));
    // Mute alice (nobody hears her) and make bob deaf (he hears nobody).
    let r = server.request("PATCH", &format!("/rest/v1/uc/conferences/{confid}/participants/{alice}"), Some(r#"{"muted":true}"#));
    assert_eq!(r.status, 200, "mute: {}", r.body);
    assert_eq!(r.json()["muted"], true);
    let r = server.request("PATCH", &format!("/rest/v1/uc/conferences/{confid}/participants/{bob}"), Some(r#"{"deaf":true}"#));
    assert_eq!(r.status, 200, "deaf: {}", r.body);
    assert_eq!(r.json()["deaf"], true);
    let mute_at = start.elapsed().as_secs_f64();
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    // carol: only dave, once the * rule holds and dave is in.
    assert_hears(&recs[2], &[2500], &[440, 1000, 1700], star_at.max(dave_spawn) + 1.2, None, "carol under the * rule");
    // dave, after the mute: bob and carol, not alice (muted), not himself.
    assert_hears(&recs[3], &[1000, 1700], &[440, 2500], mute_at - dave_spawn + 0.8, None, "dave after alice was muted");
    // bob, deaf: nothing at all.
    assert_hears(&recs[1], &[], &[440, 1700, 2500, 1000], mute_at + 0.8, Some(mute_at + 3.0), "bob while deaf");
    assert_room_gone(&server);
}

#[test]
fn dtmf_from_a_participant_reaches_engine_events() {
    let env = TestEnv::new("conf_dtmf");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let mut p = Party::new("alice", 440, "PCMU/8000", "conf-34", 3.0);
    p.dtmf = Some("19#*");
    let (peer, _) = join(&env, &server, 0, &p);
    peer.wait().assert_ok();
    let events = server.get("/v1/events").json();
    let digits: String = events
        .as_array()
        .expect("event list")
        .iter()
        .filter(|e| e["type"] == "dtmf")
        .filter_map(|e| e["digit"].as_str())
        .collect();
    assert_eq!(digits, "19#*", "DTMF events: {events}");
    assert!(events.as_array().unwrap().iter().any(|e| e["type"] == "room_ended"), "room_ended event missing: {events}");
    assert_room_gone(&server);
}
