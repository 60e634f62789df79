//! Speech through Switchboard is as good as a direct call: PESQ (ITU-T P.862.2
//! wideband, the `pesq` Python package, `tests/kit/audio/pesq_score.py`) of what a real
//! client hears, for each codec, (a) on a direct pjsua2-to-pjsua2 call and (b) through a
//! Switchboard room of two (`conf-<n>`). The room must score no less than the direct
//! call minus 0.05.
//!
//! Why it holds: in a room of two each listener's only audible speaker has its codec,
//! so the media core forwards that speaker's own frames (the relay fast path,
//! `crates/media/src/engine.rs`) instead of decoding, mixing and re-encoding them; a
//! capture of the RTP checks that the payloads the server sent the listener are the
//! talker's, byte for byte.
//!
//! The speech is `tests/kit/audio/speech_16k.wav` (see the README there). The talker
//! starts it a second after its media is up, so that it is in the room before it
//! speaks; the listener records everything and the scorer finds the speech in it.
//!
//! These tests take the machine-wide media lock (see `support`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// Seconds of speech in the sample, and the talker's delay before it.
const SPEECH_S: f64 = 10.0;
const PLAY_DELAY_S: f64 = 1.0;
/// How much worse than the direct call the room may score.
const TOLERANCE: f64 = 0.05;

fn speech() -> PathBuf {
    kit_dir().join("audio/speech_16k.wav")
}

struct Score {
    score: f64,
    correlation: f64,
}

/// PESQ of `recording` against the speech sample.
fn pesq(recording: &Path, mode: &str) -> Score {
    let out = Command::new(venv_python())
        .arg(kit_dir().join("audio/pesq_score.py"))
        .arg(speech())
        .arg(recording)
        .args(["--mode", mode])
        .output()
        .expect("run pesq_score.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pesq_score.py failed on {}: {stdout}\n{stderr}\n(the venv needs the `pesq` package: run scripts/install-test-deps)",
        recording.display()
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("pesq_score.py said {stdout:?}: {e}"));
    Score { score: v["score"].as_f64().expect("score"), correlation: v["correlation"].as_f64().expect("correlation") }
}

/// pjsua2 arguments common to both roles.
fn pj_args(mode: &str, user: &str, sip_port: u16, rtp_port: u16, codec: &str) -> Vec<String> {
    vec![
        mode.into(),
        "--user".into(),
        user.into(),
        "--sip-port".into(),
        sip_port.to_string(),
        "--rtp-port".into(),
        rtp_port.to_string(),
        "--rtp-range".into(),
        "10".into(),
        "--codec".into(),
        codec.into(),
    ]
}

/// The talker's arguments after `pj_args`: speech once, a second after media is up.
fn talker_args(uri: String) -> Vec<String> {
    vec![
        uri,
        "--play".into(),
        speech().display().to_string(),
        "--play-delay".into(),
        PLAY_DELAY_S.to_string(),
        "--duration".into(),
        (PLAY_DELAY_S + SPEECH_S + 1.5).to_string(),
        "--max-time".into(),
        "40".into(),
    ]
}

/// (a) The talker calls the listener directly; returns the listener's recording.
fn direct_call(env: &TestEnv, codec: &str) -> PathBuf {
    let rec = env.path("direct_listener_rx.wav");
    env.report_on_failure(&rec);
    let listener_sip = env.ports.peer_sip(0);
    let mut args = pj_args("answer", "listener", listener_sip, env.ports.base + 10, codec);
    args.extend(["--record".into(), rec.display().to_string(), "--max-time".into(), "40".into()]);
    let mut listener = PjPeer::spawn(env, "direct_listener", &args);
    listener.wait_ready(Duration::from_secs(20));
    let mut args = pj_args("call", "talker", env.ports.peer_sip(1), env.ports.base + 20, codec);
    args.extend(talker_args(format!("sip:listener@127.0.0.1:{listener_sip}")));
    pj_peer(env, "direct_talker", &args).assert_ok();
    listener.wait().assert_ok();
    rec
}

/// (b) The listener and then the talker call into room `room`; returns the listener's
/// recording and the RTP capture (talker -> server, server -> listener).
fn through_room(env: &TestEnv, codec: &str, room: &str) -> (PathBuf, RtpFlow, RtpFlow) {
    let server = Server::start(env);
    let base = env.ports.base;
    let capture = Capture::start(env, "room_rtp", &format!("udp and portrange {}-{}", base + 30, base + 49));
    let rec = env.path("room_listener_rx.wav");
    env.report_on_failure(&rec);
    let uri = format!("sip:{room}@{}", server.sip);
    let mut args = pj_args("call", "listener", env.ports.peer_sip(2), base + 30, codec);
    let listen_s = PLAY_DELAY_S + SPEECH_S + 6.0;
    args.extend([
        uri.clone(),
        "--record".into(),
        rec.display().to_string(),
        "--duration".into(),
        listen_s.to_string(),
        "--max-time".into(),
        "40".into(),
    ]);
    let listener = PjPeer::spawn(env, "room_listener", &args);
    wait_room_active(&server, 1);
    let mut args = pj_args("call", "talker", env.ports.peer_sip(3), base + 40, codec);
    args.extend(talker_args(uri));
    pj_peer(env, "room_talker", &args).assert_ok();
    listener.wait().assert_ok();
    let packets = capture.stop();
    let (lo, hi) = env.ports.server_rtp();
    let server_ports = lo..=hi;
    let talker_ports = base + 40..base + 50;
    let listener_ports = base + 30..base + 40;
    let sent = rtp_flow(&packets, |p| talker_ports.contains(&p.src.port()) && server_ports.contains(&p.dst.port()));
    let got = rtp_flow(&packets, |p| server_ports.contains(&p.src.port()) && listener_ports.contains(&p.dst.port()));
    server.wait_all_ended(Duration::from_secs(5));
    (rec, sent, got)
}

/// The listener got the talker's payloads verbatim: a run of 200 packets (4 s) from
/// the middle of what the server sent it appears, in order, in what the talker sent.
fn assert_relayed(sent: &RtpFlow, got: &RtpFlow, codec: &str) {
    assert!(got.payloads.len() > 400 && sent.payloads.len() > 400, "{codec}: {} packets sent, {} received", sent.payloads.len(), got.payloads.len());
    let mid = got.payloads.len() / 2;
    let run = &got.payloads[mid - 100..mid + 100];
    let found = sent.payloads.windows(run.len()).any(|w| w == run);
    assert!(found, "{codec}: the server's packets to the listener are not the talker's own payloads (not relayed)");
}

fn compare(name: &str, codec: &str, room: &str) {
    let env = TestEnv::new(name);
    let _media = env.media_lock();
    let direct_rec = direct_call(&env, codec);
    let (room_rec, sent, got) = through_room(&env, codec, room);
    assert_relayed(&sent, &got, codec);
    let direct = pesq(&direct_rec, "wb");
    let room = pesq(&room_rec, "wb");
    eprintln!(
        "[{name}] PESQ (P.862.2 wideband) {codec}: direct {:.3}, through Switchboard {:.3} (speech found with correlation {:.2} / {:.2})",
        direct.score, room.score, direct.correlation, room.correlation
    );
    for (what, s) in [("direct", &direct), ("room", &room)] {
        assert!(s.correlation > 0.5, "{codec} {what}: the speech is not in the recording (correlation {:.2})", s.correlation);
    }
    assert!(
        room.score >= direct.score - TOLERANCE,
        "{codec}: through Switchboard scores {:.3}, direct {:.3}: more than {TOLERANCE} worse",
        room.score,
        direct.score
    );
}

#[test]
fn pcmu_through_a_room_scores_as_a_direct_call() {
    compare("speech_pcmu", "PCMU/8000", "conf-71");
}

#[test]
fn g722_through_a_room_scores_as_a_direct_call() {
    compare("speech_g722", "G722/16000", "conf-72");
}
