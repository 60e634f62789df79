//! Checks of the test kit itself: the tone checker every audio test relies on
//! (`tests/kit/pj/wav_tones.py`) must fail on the recordings it exists to catch.
//!
//! `tests/kit/pj/test_wav_tones.py` makes synthetic WAVs with numpy (15 % of frames
//! zeroed, a tone only in the first 0.3 s, a tone at the window's edge, silence, 97 %
//! with 40 ms gaps, mixes...) and runs the checker's command line on each. Here we also
//! drive the Rust side ([`support::tone_check`]) on WAVs written by the test, so the
//! flags the e2e tests pass reach the checker.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use support::*;

#[test]
fn wav_tones_checker_self_test() {
    let out = Command::new(venv_python())
        .arg(kit_dir().join("pj/test_wav_tones.py"))
        .stdin(Stdio::null())
        .output()
        .expect("run test_wav_tones.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default();
    let passed: usize = summary
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!("test_wav_tones.py: {summary:?}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        });
    assert!(out.status.success(), "exit {}:\n{stdout}", out.status);
    // Every case ran: a suite that silently skipped its cases would prove nothing.
    assert!(passed >= 33, "only {passed} cases ran:\n{stdout}");
}

/// 16-bit mono WAV of `secs` seconds at 16 kHz: `hz` at half scale, or silence for 0.
fn write_wav(path: &Path, hz: f64, secs: f64) {
    let rate = 16000u32;
    let n = (secs * rate as f64) as usize;
    let mut bytes = Vec::with_capacity(44 + 2 * n);
    let data_len = (2 * n) as u32;
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(2 * rate).to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let s = (16384.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / rate as f64).sin()) as i16;
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write wav");
}

#[test]
fn tone_check_helper_passes_its_flags() {
    let env = TestEnv::new("kit_tone_check_helper");
    let silent = env.path("silent.wav");
    let tone = env.path("tone440.wav");
    write_wav(&silent, 0.0, 3.0);
    write_wav(&tone, 440.0, 3.0);

    // silence: "silent", fails absent unless allowed, fails expect
    let (ok, v) = tone_check(&silent).absent(&[440]).run();
    assert!(!ok && v["verdict"] == "silent", "{v}");
    let (ok, v) = tone_check(&silent).absent(&[440]).allow_silent("kit test").run();
    assert!(ok && v["verdict"] == "silent", "{v}");
    let (ok, v) = wav_tones(&silent, &[440], &[]);
    assert!(!ok, "{v}");

    // a clean tone: heard, the other absent; window and bounds arrive
    let v = tone_check(&tone).expect(&[440]).absent(&[1000]).window(0.3, Some(2.7)).assert("clean tone");
    assert_eq!((v["from_s"].as_f64(), v["until_s"].as_f64()), (Some(0.3), Some(2.7)), "{v}");
    assert_eq!(v["tones"]["440"]["verdict"], "hears", "{v}");
    let (ok, v) = tone_check(&tone).expect(&[1000]).run();
    assert!(!ok && v["tones"]["1000"]["verdict"] == "does not hear", "{v}");
    let (ok, v) = tone_check(&tone).expect(&[440]).bound(50.0, 500.0, "kit test").run();
    assert!(ok && v["min_pct"] == 50.0 && v["max_gap_ms"] == 500.0, "{v}");
    // a window past the end fails
    let (ok, v) = wav_tones_between(&tone, &[440], &[], 0.5, Some(4.0));
    assert!(!ok, "{v}");
}
