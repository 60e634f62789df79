//! Audio through the server with a real softphone stack: pjsua2 (`tests/kit/pj/pj_peer.py`)
//! calls `echo`, plays a tone, records what comes back, and an FFT
//! (`tests/kit/pj/wav_tones.py`) checks the recording holds that tone — per codec. And the
//! reverse direction: the server calls a pjsua2 endpoint with the `echo` service.
//!
//! These tests take the machine-wide media lock, so on 2 cores only one runs at a time.

mod support;

use std::time::Duration;
use support::*;

/// pjsua2 calls `echo` with only `codec` enabled, plays `hz` for 3 s, and must hear `hz`
/// back (and not the other test tone).
fn echo_tone(name: &str, codec: &str, hz: u32, other_hz: u32) {
    let env = TestEnv::new(name);
    let _media = env.media_lock();
    env.make_tones();
    let server = Server::start(&env);
    let rx = env.path("rx.wav");
    let args: Vec<String> = [
        "call",
        &format!("sip:echo@{}", server.sip),
        "--sip-port",
        &env.ports.peer_sip(0).to_string(),
        "--rtp-port",
        &env.ports.pj_rtp(0).to_string(),
        "--rtp-range",
        "10",
        "--play",
        &env.path(&format!("tone{hz}.wav")).display().to_string(),
        "--loop",
        "--record",
        &rx.display().to_string(),
        "--duration",
        "3",
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
    let (ok, verdict) = wav_tones(&rx, &[hz], &[other_hz]);
    assert!(ok, "recording of the echo does not hold {hz} Hz (or holds {other_hz} Hz): {verdict}\nrecording: {}", rx.display());
    server.wait_all_ended(Duration::from_secs(3));
}

#[test]
fn pjsua_echo_pcmu_440() {
    echo_tone("pjsua_echo_pcmu_440", "PCMU/8000", 440, 1000);
}

#[test]
fn pjsua_echo_pcma_1000() {
    echo_tone("pjsua_echo_pcma_1000", "PCMA/8000", 1000, 440);
}

/// The server places a call (`POST /v1/calls`, service `echo`) to a pjsua2 endpoint that
/// auto-answers and plays 1000 Hz; after the server hangs up, pjsua2's recording must
/// hold its own 1000 Hz.
#[test]
fn api_call_to_pjsua_echoes_its_audio() {
    let env = TestEnv::new("api_call_to_pjsua_echoes_its_audio");
    let _media = env.media_lock();
    env.make_tones();
    let server = Server::start(&env);
    let rx = env.path("rx.wav");
    let port = env.ports.peer_sip(0);
    let args: Vec<String> = [
        "answer",
        "--user",
        "pj",
        "--sip-port",
        &port.to_string(),
        "--rtp-port",
        &env.ports.pj_rtp(0).to_string(),
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
    let (ok, verdict) = wav_tones(&rx, &[1000], &[440]);
    assert!(
        ok,
        "pjsua2 did not hear its own 1000 Hz back: {verdict}\nrecording: {}",
        rx.display()
    );
    server.wait_all_ended(Duration::from_secs(3));
}
