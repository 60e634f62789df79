//! The `echo` service with a real softphone stack: signalling and RTP, not codecs.
//!
//! Echo hands each RTP payload back untouched, with our own SSRC, sequence numbers and
//! timestamps (`media::engine`, "Echo"): no decoder or encoder runs, so these tests
//! prove the codec was negotiated as asked and that the packets come back steadily and
//! re-stamped, not that our codecs work (the codec paths through the mixer are in
//! `codec_paths.rs`). pjsua2 (`tests/kit/pj/pj_peer.py`) calls `echo` (or the server
//! calls it) with one codec enabled, plays a tone, and:
//! - a capture of its RTP shows the negotiated payload type both ways, our own SSRC,
//!   a steady 50 packets a second back, each payload one the client sent;
//! - its recording holds its own tone continuously (`support::tone_check`), so the
//!   re-stamped stream plays out without gaps.
//!
//! These tests take the machine-wide media lock, so on 2 cores only one runs at a time.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use support::*;

/// Checks a finished echo call from its capture and the client's recording: the client
/// used RTP ports `pj_rtp(0)..+10`, payload type `pt`, tone `hz`, `media_s` seconds.
fn check_echo(env: &TestEnv, packets: &[UdpPacket], rx: &Path, pt: u8, hz: u32, media_s: f64) {
    let pj = env.ports.pj_rtp(0)..env.ports.pj_rtp(0) + 10;
    let (lo, hi) = env.ports.server_rtp();
    let sent = rtp_flow(packets, |p| pj.contains(&p.src.port()) && (lo..=hi).contains(&p.dst.port()));
    let back = rtp_flow(packets, |p| pj.contains(&p.dst.port()) && (lo..=hi).contains(&p.src.port()));
    assert!(sent.times.len() > 50 && back.times.len() > 50, "RTP: {} packets sent, {} back", sent.times.len(), back.times.len());
    let pts = std::collections::BTreeSet::from([pt]);
    assert_eq!((&sent.payload_types, &back.payload_types), (&pts, &pts), "payload types sent and echoed");
    assert_eq!(back.ssrcs.len(), 1, "one SSRC back: {:?}", back.ssrcs);
    assert!(sent.ssrcs.is_disjoint(&back.ssrcs), "echo re-stamps with its own SSRC: sent {:?}, back {:?}", sent.ssrcs, back.ssrcs);
    // Steady from 0.5 s after the first packet back to 0.3 s before the last.
    let (first, last) = (back.times[0], *back.times.last().unwrap());
    assert!(last - first > media_s - 1.0, "echo lasted {:.2} s of {media_s}", last - first);
    back.assert_steady(first + 0.5, last - 0.3, 100.0, "RTP echoed back");
    // Each payload back is one the client sent (a copy, no transcoding).
    let known: HashSet<&[u8]> = sent.payloads.iter().map(|p| p.as_slice()).collect();
    let copies = back.payloads.iter().filter(|p| known.contains(p.as_slice())).count();
    assert!(copies * 100 >= back.payloads.len() * 99, "only {copies} of {} payloads back were sent by the client", back.payloads.len());
    // And it plays out: the client hears its own tone, continuously.
    tone_check(rx).window(1.0, Some(media_s - 0.3)).expect(&[hz]).assert("the client hears its echo");
}

/// pjsua2 calls `echo` with only `codec` enabled and plays `hz` for 4 s.
fn echo_call(name: &str, codec: &str, pt: u8, hz: u32) {
    let env = TestEnv::new(name);
    let _media = env.media_lock();
    env.make_tones();
    let server = Server::start(&env);
    let rx = env.path("rx.wav");
    let rtp = env.ports.pj_rtp(0);
    let capture = Capture::start(&env, "rtp", &format!("udp and portrange {rtp}-{}", rtp + 9));
    let args: Vec<String> = [
        "call",
        &format!("sip:echo@{}", server.sip),
        "--sip-port",
        &env.ports.peer_sip(0).to_string(),
        "--rtp-port",
        &rtp.to_string(),
        "--rtp-range",
        "10",
        "--play",
        &env.path(&format!("tone{hz}.wav")).display().to_string(),
        "--loop",
        "--record",
        &rx.display().to_string(),
        "--duration",
        "4",
        "--max-time",
        "20",
        "--codec",
        codec,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = pj_peer(&env, "caller", &args);
    run.assert_ok();
    let packets = capture.stop();
    check_echo(&env, &packets, &rx, pt, hz, 4.0);
    server.wait_all_ended(Duration::from_secs(3));
}

#[test]
fn echo_pcmu_signalling_and_rtp() {
    echo_call("echo_pcmu_signalling_and_rtp", "PCMU/8000", 0, 440);
}

#[test]
fn echo_pcma_signalling_and_rtp() {
    echo_call("echo_pcma_signalling_and_rtp", "PCMA/8000", 8, 1000);
}

/// The server places a call (`POST /v1/calls`, service `echo`) to a pjsua2 endpoint that
/// auto-answers and plays 1000 Hz; the server hangs up after 4 s.
#[test]
fn api_call_to_pjsua_echo_signalling_and_rtp() {
    let env = TestEnv::new("api_call_to_pjsua_echo_signalling_and_rtp");
    let _media = env.media_lock();
    env.make_tones();
    let server = Server::start(&env);
    let rx = env.path("rx.wav");
    let port = env.ports.peer_sip(0);
    let rtp = env.ports.pj_rtp(0);
    let capture = Capture::start(&env, "rtp", &format!("udp and portrange {rtp}-{}", rtp + 9));
    let args: Vec<String> = [
        "answer",
        "--user",
        "pj",
        "--sip-port",
        &port.to_string(),
        "--rtp-port",
        &rtp.to_string(),
        "--rtp-range",
        "10",
        "--play",
        &env.path("tone1000.wav").display().to_string(),
        "--loop",
        "--record",
        &rx.display().to_string(),
        "--max-time",
        "20",
        "--codec",
        "PCMU/8000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut peer = PjPeer::spawn(&env, "answerer", &args);
    peer.wait_ready(Duration::from_secs(10));
    let resp = server.post("/v1/calls", &json!({"to": format!("sip:pj@127.0.0.1:{port}"), "service": "echo", "hangup_after_ms": 4000}));
    assert_eq!(resp.status, 201, "POST /v1/calls: {resp:?}");
    let run = peer.wait();
    run.assert_ok();
    let packets = capture.stop();
    check_echo(&env, &packets, &rx, 0, 1000, 4.0);
    server.wait_all_ended(Duration::from_secs(3));
}
