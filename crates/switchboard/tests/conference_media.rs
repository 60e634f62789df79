//! Conference rooms checked by ear: real pjsua2 clients dial into a room, each playing
//! its own tone, and `wav_tones.py` says, frame by frame, whom each one heard: an
//! expected tone must be there in >= 95 % of the 20 ms frames of a window with no gap
//! over 60 ms, an absent one in no frame at all (see `support::tone_check`). Windows are
//! placed in wall-clock time from the participants' `joined_ms` and the moments the test
//! changed something, then mapped into each recording. Topology, mute and deaf are
//! changed over the REST API while the clients talk; DTMF digits a client sends must
//! show up as engine events.
//!
//! These tests take the machine-wide media lock (see `support`), so on 2 cores only
//! one audio test runs at a time.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
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

/// The recording of a party who joined at `joined` (epoch s), over the wall-clock window
/// [t0, t1] (epoch s).
fn heard(rec: &Path, joined: f64, t0: f64, t1: f64) -> ToneCheck {
    assert!(t1 - t0 >= 1.0, "{}: window {:.2} s too short; the machine was too slow for this test's timeline", rec.display(), t1 - t0);
    tone_check(rec).window(t0 - joined, Some(t1 - joined))
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
        Party::new("alice", 440, "PCMU/8000", "conf-31", 4.5),
        Party::new("bob", 1000, "PCMA/8000", "*931", 9.0),
        Party::new("carol", 1700, "G722/16000", "conf-31", 9.0),
    ];
    let mut peers = Vec::new();
    for (i, p) in parties.iter().enumerate() {
        peers.push(join(&env, &server, i as u16, p));
    }
    let (confid, parts) = wait_room_active(&server, 3);
    assert_eq!(parts.len(), 3, "one room for both dial styles: {parts:?}");
    assert!(confid.starts_with("rCF-"), "confid {confid}");
    let joined: Vec<f64> = parties.iter().map(|p| joined_s(&parts, p.user)).collect();
    let all_in = joined.iter().copied().fold(0.0, f64::max);
    let alice_left = joined[0] + parties[0].duration;
    let end = (joined[1] + parties[1].duration).min(joined[2] + parties[2].duration);
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    // While all three talk: each hears the other two, continuously, and never itself.
    let (t0, t1) = (all_in + 0.8, alice_left - 0.3);
    heard(&recs[0], joined[0], t0, t1).expect(&[1000, 1700]).absent(&[440]).assert("alice");
    heard(&recs[1], joined[1], t0, t1).expect(&[440, 1700]).absent(&[1000]).assert("bob");
    heard(&recs[2], joined[2], t0, t1).expect(&[440, 1000]).absent(&[1700]).assert("carol");
    // After alice left nobody hears 440 any more, and the other two still hear each other.
    let (t0, t1) = (alice_left + 0.8, end - 0.3);
    heard(&recs[1], joined[1], t0, t1).expect(&[1700]).absent(&[440, 1000]).assert("bob after alice left");
    heard(&recs[2], joined[2], t0, t1).expect(&[1000]).absent(&[440, 1700]).assert("carol after alice left");
    assert_room_gone(&server);
}

/// Two of three parties lose 15 % of the packets they send (pjsua2 drops them before
/// the wire; a capture proves it). The server's jitter buffer and concealment
/// (`media::dsp::plc`: the last pitch period repeated at full level for 10 ms, then faded
/// out by 80 ms) must bridge those gaps: every listener hears both lossy senders in
/// >= 95 % of the frames with no gap over 60 ms, the same bound as for a clean sender.
/// Without concealment a lost packet is a 20 ms hole and 15 % loss leaves the tone in
/// ~85 % of the frames, so this bound fails a server that does not conceal. And nobody
/// hears themselves. The loss is random, so now and then it comes as a burst longer
/// than concealment can fill (5 packets in a row: about one run in 30); the gap allowed
/// is then the longest burst on the wire plus one frame, never shorter than 60 ms.
#[test]
fn lossy_senders_are_concealed_and_do_not_break_the_mix() {
    let env = TestEnv::new("conf_lossy_senders");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let mut parties = [
        Party::new("alice", 440, "PCMU/8000", "conf-41", 7.0),
        Party::new("bob", 1000, "PCMA/8000", "conf-41", 7.0),
        Party::new("carol", 1700, "G722/16000", "conf-41", 7.0),
    ];
    parties[0].tx_drop_pct = 15;
    parties[1].tx_drop_pct = 15;
    let (lo, hi) = (env.ports.base + 10, env.ports.base + 10 + 10 * parties.len() as u16);
    let capture = Capture::start(&env, "rtp", &format!("udp and src portrange {lo}-{hi}"));
    let peers: Vec<_> = parties.iter().enumerate().map(|(i, p)| join(&env, &server, i as u16, p)).collect();
    let (_, parts) = wait_room_active(&server, 3);
    let joined: Vec<f64> = parties.iter().map(|p| joined_s(&parts, p.user)).collect();
    let all_in = joined.iter().copied().fold(0.0, f64::max);
    let end = joined.iter().map(|j| j + 7.0).fold(f64::MAX, f64::min);
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
    // The longest run of consecutive lost packets of a sender, from the capture.
    let longest_burst = |i: u16| -> u16 {
        let (base, top) = (lo + 10 * i, lo + 10 * i + 10);
        let s: Vec<u16> = seqs.iter().filter(|(port, _)| (base..top).contains(*port)).flat_map(|(_, v)| v.clone()).collect();
        let mut offsets: Vec<u16> = s.iter().map(|&x| x.wrapping_sub(s[0])).collect();
        offsets.sort_unstable();
        offsets.windows(2).map(|w| w[1] - w[0] - 1).max().unwrap_or(0)
    };
    let bursts = [longest_burst(0), longest_burst(1)];
    // One frame more than the burst: the checker's 20 ms grid need not line up with it.
    let gap_ms = |of: &[u16]| 60f64.max(20.0 * f64::from(of.iter().copied().max().unwrap_or(0) + 1));
    let why = format!("random loss bursts of up to {bursts:?} packets (alice, bob): no concealment fills a gap longer than the burst");
    assert!(loss[0] > 8.0 && loss[1] > 8.0, "the lossy clients really lost packets: {loss:?}");
    assert!(loss[2] < 1.0, "the clean client lost none: {loss:?}");

    let (t0, t1) = (all_in + 1.0, end - 0.3);
    heard(&recs[0], joined[0], t0, t1).expect(&[1000, 1700]).absent(&[440]).bound(95.0, gap_ms(&bursts[1..]), &why).assert("alice hears lossy bob and carol");
    heard(&recs[1], joined[1], t0, t1).expect(&[440, 1700]).absent(&[1000]).bound(95.0, gap_ms(&bursts[..1]), &why).assert("bob hears lossy alice and carol");
    heard(&recs[2], joined[2], t0, t1).expect(&[440, 1000]).absent(&[1700]).bound(95.0, gap_ms(&bursts), &why).assert("carol hears both lossy senders");
    assert_room_gone(&server);
}

#[test]
fn topology_rule_over_rest_silences_one_path_only() {
    let env = TestEnv::new("conf_topology");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let parties = [
        Party::new("alice", 440, "PCMU/8000", "conf-32", 8.0),
        Party::new("bob", 1000, "PCMU/8000", "conf-32", 8.0),
        Party::new("carol", 1700, "PCMA/8000", "conf-32", 8.0),
    ];
    let peers: Vec<(PjPeer, PathBuf)> = parties.iter().enumerate().map(|(i, p)| join(&env, &server, i as u16, p)).collect();
    let (confid, parts) = wait_room_active(&server, 3);
    let (alice, bob) = (pid_of(&parts, "alice"), pid_of(&parts, "bob"));
    let joined: Vec<f64> = parties.iter().map(|p| joined_s(&parts, p.user)).collect();
    let all_in = joined.iter().copied().fold(0.0, f64::max);
    let end = joined.iter().map(|j| j + 8.0).fold(f64::MAX, f64::min);
    // Let two seconds of normal mixing through first, then: bob no longer hears alice.
    std::thread::sleep(Duration::from_secs_f64((all_in + 2.5 - epoch_s()).max(0.0)));
    let rules = json!([{"from": alice, "to": bob, "enabled": false}]);
    let posted = epoch_s();
    let resp = server.post(&format!("/rest/v1/uc/conferences/{confid}/topology"), &rules);
    assert_eq!(resp.status, 200, "topology change: {}", resp.body);
    let topo = server.get(&format!("/rest/v1/uc/conferences/{confid}/topology")).json();
    assert_eq!(topo, json!([{"from": "*", "to": "*", "enabled": true}, {"from": alice, "to": bob, "enabled": false}]));
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    heard(&recs[1], joined[1], all_in + 0.8, posted - 0.1).expect(&[440, 1700]).absent(&[1000]).assert("bob before the rule");
    let (t0, t1) = (posted + 0.5, end - 0.3);
    heard(&recs[1], joined[1], t0, t1).expect(&[1700]).absent(&[440, 1000]).assert("bob after the rule");
    heard(&recs[2], joined[2], t0, t1).expect(&[440, 1000]).absent(&[1700]).assert("carol still hears alice");
    heard(&recs[0], joined[0], t0, t1).expect(&[1000, 1700]).absent(&[440]).assert("alice still hears bob");
    assert_room_gone(&server);
}

/// The RTP the server sends to party `i` (its ports: ten from base+10+10*i).
fn flow_to(env: &TestEnv, packets: &[UdpPacket], i: u16) -> RtpFlow {
    let ports = env.ports.base + 10 + 10 * i..env.ports.base + 20 + 10 * i;
    let (lo, hi) = env.ports.server_rtp();
    rtp_flow(packets, |p| ports.contains(&p.dst.port()) && (lo..=hi).contains(&p.src.port()))
}

/// A `*` rule spares later joiners; mute and deaf over REST. Speaker selection mixes the
/// three loudest talkers (`media::mixer::MAX_SPEAKERS`), sticky, so dave, joining a room
/// of three steady tones, is only mixed once alice is muted: carol (who hears nobody
/// present before the rule) is silent until then, and hears dave after.
///
/// Deaf: the server keeps sending bob a frame every 20 ms while he is deaf (silence,
/// `media::engine` mixes him SILENCE). A silent recording would also come from a dead
/// stream, so a capture of what the server sends him must show the stream steady while
/// deaf, and after undeaf he must hear the others again, continuously.
#[test]
fn star_rule_spares_later_joiners_and_mute_deaf_work() {
    let env = TestEnv::new("conf_star_mute_deaf");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let first = [
        Party::new("alice", 440, "PCMU/8000", "conf-33", 14.0),
        Party::new("bob", 1000, "PCMU/8000", "conf-33", 14.0),
        Party::new("carol", 1700, "PCMU/8000", "conf-33", 14.0),
    ];
    let dave = Party::new("dave", 2500, "PCMU/8000", "conf-33", 12.0);
    let capture = Capture::start(&env, "rtp", &format!("udp and dst portrange {}-{}", env.ports.base + 10, env.ports.base + 49));
    let mut peers: Vec<(PjPeer, PathBuf)> = first.iter().enumerate().map(|(i, p)| join(&env, &server, i as u16, p)).collect();
    let (confid, parts) = wait_room_active(&server, 3);
    let (alice, bob, carol) = (pid_of(&parts, "alice"), pid_of(&parts, "bob"), pid_of(&parts, "carol"));
    // `*` -> carol: carol hears none of those present now...
    let resp = server.post(&format!("/rest/v1/uc/conferences/{confid}/topology"), &json!([{"from": "*", "to": carol, "enabled": false}]));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let star_at = epoch_s();
    // ...but dave, who joins later, is heard by everyone, carol included.
    peers.push(join(&env, &server, 3, &dave));
    let (_, parts) = wait_room_active(&server, 4);
    let joined: Vec<f64> = ["alice", "bob", "carol", "dave"].iter().map(|u| joined_s(&parts, u)).collect();
    let end = joined.iter().zip([14.0, 14.0, 14.0, 12.0]).map(|(j, d)| j + d).fold(f64::MAX, f64::min);
    std::thread::sleep(Duration::from_millis(2500));
    // Mute alice (nobody hears her) and make bob deaf (he hears nobody).
    let r = server.request("PATCH", &format!("/rest/v1/uc/conferences/{confid}/participants/{alice}"), Some(r#"{"muted":true}"#));
    assert_eq!(r.status, 200, "mute: {}", r.body);
    assert_eq!(r.json()["muted"], true);
    let r = server.request("PATCH", &format!("/rest/v1/uc/conferences/{confid}/participants/{bob}"), Some(r#"{"deaf":true}"#));
    assert_eq!(r.status, 200, "deaf: {}", r.body);
    assert_eq!(r.json()["deaf"], true);
    let deaf_at = epoch_s();
    std::thread::sleep(Duration::from_millis(3000));
    let r = server.request("PATCH", &format!("/rest/v1/uc/conferences/{confid}/participants/{bob}"), Some(r#"{"deaf":false}"#));
    assert_eq!(r.status, 200, "undeaf: {}", r.body);
    assert_eq!(r.json()["deaf"], false);
    let undeaf_at = epoch_s();
    std::thread::sleep(Duration::from_millis(3000));
    let until = epoch_s().min(end - 0.3);
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    let packets = capture.stop();

    // carol, before dave is mixed: none of the three present at the rule (all mixed then).
    // Silence is right; the capture shows her stream alive.
    let (t0, t1) = (star_at.max(joined[3]) + 0.5, deaf_at - 0.1);
    flow_to(&env, &packets, 2).assert_steady(t0, t1, 100.0, "RTP to carol under the * rule");
    heard(&recs[2], joined[2], t0, t1)
        .absent(&[440, 1000, 1700])
        .allow_silent("the capture shows the server sending carol a steady stream")
        .assert("carol under the * rule");
    // carol once dave is mixed (alice muted): dave only.
    heard(&recs[2], joined[2], deaf_at + 0.8, until).expect(&[2500]).absent(&[440, 1000, 1700]).assert("carol hears dave, who joined after the * rule");
    // dave, after the mute: bob and carol (bob is deaf, not mute), not alice, not himself.
    heard(&recs[3], joined[3], deaf_at + 0.8, until).expect(&[1000, 1700]).absent(&[440, 2500]).assert("dave after alice was muted");
    // bob, deaf: nothing at all, while the server keeps sending him 50 packets a second.
    let (t0, t1) = (deaf_at + 0.3, undeaf_at - 0.1);
    flow_to(&env, &packets, 1).assert_steady(t0, t1, 100.0, "RTP to bob while deaf");
    heard(&recs[1], joined[1], deaf_at + 0.5, undeaf_at - 0.1)
        .absent(&[440, 1000, 1700, 2500])
        .allow_silent("the capture shows the server sending bob a steady stream while he is deaf")
        .assert("bob while deaf");
    // bob, undeaf: carol and dave again, continuously (alice is still muted).
    flow_to(&env, &packets, 1).assert_steady(undeaf_at + 0.5, until, 100.0, "RTP to bob after undeaf");
    heard(&recs[1], joined[1], undeaf_at + 0.5, until).expect(&[1700, 2500]).absent(&[440, 1000]).assert("bob after undeaf");
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
