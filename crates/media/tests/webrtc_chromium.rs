//! Headless Chromium calls the gateway: `examples/webrtc_loopback.rs` (gateway + RTP echo
//! on the plain side) serves a page with a plain `RTCPeerConnection`; the page's offer
//! has no candidates (Chromium's `m=audio 9`, `c=IN IP4 0.0.0.0`), so this is the real
//! ICE-lite, peer-reflexive, DTLS-SRTP path. Passes when the browser got its own audio
//! back: inbound-rtp packets for ~3 s and a non-silent level in a WebAudio analyser.
//!
//! Needs `node`, `/usr/bin/chromium` (or `$CHROMIUM`) and playwright-core in
//! `$SWITCHBOARD_TEST_NODE` (default `~/.cache/switchboard/node`), all from
//! `scripts/install-test-deps`. Missing ones fail the test, as every missing tool does in
//! this repository; on a developer machine (not `CI=true`) `SWITCHBOARD_SKIP_BROWSER_TESTS=1`
//! turns that into a "NOT RUN" line on stderr (visible with `--nocapture`).
#![cfg(feature = "webrtc")]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const INSTALL_HINT: &str = "run scripts/install-test-deps (Debian, as root) to install chromium, nodejs, npm and playwright-core";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// What is missing to run the browser, if anything.
fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    let on_path = |name: &str| std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join(name).is_file());
    if !on_path("node") {
        missing.push("`node` is not on PATH".to_string());
    }
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        missing.push(format!("no Chromium at {}", chromium.display()));
    }
    let node_dir = std::env::var_os("SWITCHBOARD_TEST_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/switchboard/node"));
    if !node_dir.join("node_modules/playwright-core/package.json").is_file() {
        missing.push(format!("playwright-core is not installed in {}", node_dir.display()));
    }
    missing
}

/// The example binary, built now (a `--test` run does not build examples).
fn loopback_example() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "media", "--example", "webrtc_loopback"])
        .current_dir(workspace_root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --example webrtc_loopback failed");
    // target/<profile>/deps/webrtc_chromium-HASH -> target/<profile>/examples/
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("examples/webrtc_loopback");
    assert!(bin.is_file(), "no example binary at {}", bin.display());
    bin
}

/// The address this machine would reach the outside from (no packet is sent).
fn machine_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// The machine-wide lock the end-to-end media tests take (crates/switchboard/tests/
/// support: `TestEnv::media_lock`, same file), so that on a 2-core machine Chromium does
/// not compete with a pjsua2 audio test for the CPU.
fn media_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("switchboard-e2e-media.lock");
    let file = std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(&path).expect("open media lock");
    // SAFETY: flock on a file descriptor we own; blocks until the lock is free.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    file
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn chromium_hears_its_own_audio_through_the_gateway() {
    let missing = missing_tools();
    if !missing.is_empty() {
        let msg = format!("headless Chromium test cannot run: {}; {INSTALL_HINT}", missing.join("; "));
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        if ci || std::env::var_os("SWITCHBOARD_SKIP_BROWSER_TESTS").is_none() {
            panic!("{msg}");
        }
        eprintln!("\n*** NOT RUN (SWITCHBOARD_SKIP_BROWSER_TESTS is set): {msg} ***\n");
        return;
    }
    let _media = media_lock();
    // Advertise the machine's address too, as a deployment would: Chromium pairs its
    // non-loopback host address with each, and picks what answers.
    let mut cmd = Command::new(loopback_example());
    cmd.args(["--candidate", "127.0.0.1"]);
    if let Some(ip) = machine_ip() {
        cmd.args(["--candidate", &ip.to_string()]);
    }
    let mut server = Killed(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start webrtc_loopback"));
    let mut ready = String::new();
    BufReader::new(server.0.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    let url = ready.strip_prefix("READY ").unwrap_or_else(|| panic!("webrtc_loopback said {ready:?}")).trim().to_string();
    let mut server_log = server.0.stderr.take().unwrap();
    let log_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = server_log.read_to_string(&mut s);
        s
    });

    let script = workspace_root().join("tests/kit/browser/run-page.mjs");
    let out = Command::new("node").arg(&script).arg(&url).arg("30000").output().expect("run node");
    drop(server);
    let server_log = log_thread.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "run-page exit {:?}\n--- stdout\n{stdout}\n--- page console (stderr)\n{}\n--- gateway\n{server_log}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("result is not JSON ({e}): {report}"));
    assert!(r.get("error").is_none(), "page error: {report}");
    assert_eq!(r["connectionState"], "connected", "{report}");
    // ~3 s of 20 ms Opus packets echoed back; allow for the connect time.
    let packets = r["packetsReceived"].as_u64().unwrap_or(0);
    assert!(packets >= 100, "only {packets} packets came back: {report}");
    let level = r["analyserPeakRms"].as_f64().unwrap_or(0.0);
    assert!(level > 0.01, "the echoed audio is silent (peak RMS {level}): {report}");
    assert!(server_log.contains("EVENT Connected("), "{report}");
    assert!(!server_log.contains("EVENT Failed"), "{report}");
}
