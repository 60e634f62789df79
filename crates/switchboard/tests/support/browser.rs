//! Headless Chromium for the browser tests (`wcs_browser.rs`, `sip_ws_browser.rs`): the
//! npm kit's location, the fake microphone's tone, and running a page with
//! `tests/kit/browser/run-page.mjs` (playwright-core driving `/usr/bin/chromium`).

use super::*;
use std::path::{Path, PathBuf};

/// Where scripts/install-test-deps put the npm kit (`$SWITCHBOARD_TEST_NODE`).
pub fn node_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_TEST_NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/switchboard/node"))
}

/// A file of an installed npm package, failing the test with the fix when it is missing.
pub fn npm_file(package_path: &str) -> PathBuf {
    let f = node_dir().join("node_modules").join(package_path);
    assert!(f.exists(), "{} is not installed (run scripts/install-test-deps)", f.display());
    f
}

/// A sine WAV in the work dir (`name`), made once: `rate` Hz, `secs` long, half scale.
pub fn sine_wav(env: &TestEnv, name: &str, rate: u32, hz: u32, secs: u32) -> PathBuf {
    let wav = env.path(name);
    if !wav.exists() {
        let ok = Command::new(require_tool("sox"))
            .args(["-n", "-r", &rate.to_string(), "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", &secs.to_string(), "sine", &hz.to_string(), "vol", "0.5"])
            .status()
            .expect("sox");
        assert!(ok.success(), "sox made {hz} Hz");
    }
    wav
}

/// The browser's fake microphone: 600 Hz at 48 kHz, long enough to loop rarely.
pub fn browser_tone(env: &TestEnv) -> PathBuf {
    sine_wav(env, "browser600.wav", 48_000, 600, 40)
}

/// Opens `url` in headless Chromium with `tone` as the microphone and waits for the
/// page's `__result` (at most `timeout_ms`); Chromium's and the page's console go to
/// `log`.
pub fn run_page(url: &str, tone: &Path, log: &Path, timeout_ms: u64) -> Value {
    let out = Command::new(require_tool("node"))
        .arg(workspace_root().join("tests/kit/browser/run-page.mjs"))
        .arg(url)
        .arg(timeout_ms.to_string())
        .env("FAKE_AUDIO_WAV", tone)
        .output()
        .expect("node run-page.mjs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    std::fs::write(log, &stderr).ok();
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(60)..].join("\n");
    assert!(out.status.success(), "run-page failed: {}\n{tail}", out.status);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("page result: {e}\n{tail}"));
    eprintln!("page result: {v}");
    v
}
