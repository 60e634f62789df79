//! End-to-end test harness: the real `switchboard` binary against real SIP peers.
//!
//! Every test gets a [`TestEnv`]: a work directory, a block of ports nobody else uses,
//! and helpers that start the server ([`Server`]), run SIPp ([`Sipp`]) and pjsua2
//! (`tests/kit/pj/pj_peer.py`), check recordings (`tests/kit/pj/wav_tones.py`), talk HTTP
//! to the API, and capture RTP on `lo` ([`Capture`]). Everything binds to and sends to
//! 127.0.0.1 only.
//!
//! ## Ports: one locked block per test
//! Tests in a file run on parallel threads, and test binaries may run in parallel
//! processes (`cargo nextest`, two `cargo test`s). So ports are never picked at random:
//! a test owns a block of 100 ports of 10000-19999 while it holds the block's lock
//! across processes. Blocks come from the `testports` crate (`crates/testports`), the
//! one port allocator of every test binary in the workspace (media and engine tests
//! take their RTP ranges from it too). Layout of a block starting at `B`:
//!
//! | ports      | use |
//! |------------|-----|
//! | B          | server SIP, UDP and TCP |
//! | B+1        | server HTTP |
//! | B+2..B+9   | peers' SIP ports ([`PortBlock::peer_sip`]) |
//! | B+10..B+29 | SIPp media, 4 per SIPp ([`PortBlock::sipp_media`]: RTP, RTCP, video) |
//! | B+30..B+49 | pjsua2 RTP, 10 per peer ([`PortBlock::pj_rtp`]) |
//! | B+50..B+99 | server RTP range (`--rtp-ports`) |
//!
//! ## Work directory and logs
//! `tests/work/<test name>/` at the workspace root (or `$SWITCHBOARD_TEST_WORK/<name>`),
//! emptied when the test starts and kept afterwards: `server.log` (the server's stderr,
//! `RUST_LOG=debug` unless `RUST_LOG` is set), SIPp's `*_messages.log` (every SIP message
//! sent and received), `*_errors.log`, `*_screen.log`, pjsua2's `*.pj.log`, WAVs and
//! pcaps. When a test fails, the path and the server log's tail are printed.
//!
//! ## Tools
//! `sipp`, `sox`, `dumpcap` and `baresip` come from `PATH`; Python is `$SWITCHBOARD_TEST_VENV/bin/python`
//! (default `~/.cache/switchboard/venv`) with `pjsua2` and `numpy`. A missing tool fails
//! the test with a pointer to `scripts/install-test-deps`; nothing is skipped.
//!
//! Media-heavy tests take [`TestEnv::media_lock`], a machine-wide lock, so that on a
//! 2-core machine two pjsua2 audio tests never compete for the CPU.

#![allow(dead_code)]

pub mod browser;
pub mod phone;

/// Runs an MX app session (tests/kit/mx/mx_session.py: the OAuth2 password grant with
/// the app's credentials, then the plan's requests with the Bearer token) as `user`
/// with `password`; the results in order (`status`, `content_type`, `allow`, `www`,
/// `body`).
pub fn mx_session(server: &Server, (client, secret): (&str, &str), (user, password): (&str, &str), plan: &Value) -> Vec<Value> {
    let script = kit_dir().join("mx").join("mx_session.py");
    let mut child = Command::new(venv_python())
        .arg(&script)
        .args([&format!("http://{}", server.http), client, secret, user, password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child.stdin.take().expect("stdin").write_all(plan.to_string().as_bytes()).expect("plan");
    let out = child.wait_with_output().expect("mx_session.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("mx_session.py: not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "mx_session.py failed: {v}");
    v["results"].as_array().cloned().unwrap_or_default()
}

/// A directory user with a login, an extension and a SIP/API password.
pub fn new_user(domain: &str, login: &str, ext: &str, password: &str) -> store::NewUser {
    store::NewUser { domain: domain.into(), login: login.into(), ext: Some(ext.into()), password: password.into(), ..Default::default() }
}

/// Makes `domain` and `users` with the store in the test's data dir, before the server
/// starts (which then loads them).
pub fn seed_directory(env: &TestEnv, domain: &str, users: &[store::NewUser]) {
    let data = env.path("data");
    fs::create_dir_all(&data).expect("data dir");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let db = store::Store::open(&data).await.expect("open store");
        db.ensure_domain(domain).await.expect("domain");
        for u in users {
            db.add_user(u).await.unwrap_or_else(|e| panic!("add user {}: {e}", u.login));
        }
        db.close().await;
    });
}

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use serde_json::{json, Value};

pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
const INSTALL_HINT: &str = "run scripts/install-test-deps (Debian, as root) to install it";

// ---------------------------------------------------------------------------------------
// Paths and tools

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `tests/kit/` at the workspace root: SIPp scenarios and pjsua2 scripts.
pub fn kit_dir() -> PathBuf {
    workspace_root().join("tests/kit")
}

/// Calls `f` every 50 ms until it returns `Some`, and returns that; fails the test
/// naming `what` if `timeout` passes first. Tests wait for conditions, never a fixed time.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server binary cargo built for these tests, or `$SWITCHBOARD_TEST_SERVER_BIN`:
/// checkouts sharing one `CARGO_TARGET_DIR` overwrite each other's
/// `target/debug/switchboard`, so a run can pin a private copy of its own build.
pub fn server_bin() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_TEST_SERVER_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_switchboard")),
    }
}

/// Absolute path of a program on `PATH`, or a failed test saying how to install it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not on PATH; {INSTALL_HINT}");
}

/// A program of the test venv (`python`, `schemathesis`).
pub fn venv_bin(program: &str) -> PathBuf {
    venv_python().with_file_name(program)
}

/// The Python of the test venv (pjsua2 + numpy).
pub fn venv_python() -> PathBuf {
    let venv = match std::env::var_os("SWITCHBOARD_TEST_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/switchboard/venv")
        }
    };
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "no Python venv at {} (set SWITCHBOARD_TEST_VENV, or {INSTALL_HINT})",
        venv.display()
    );
    python
}

// ---------------------------------------------------------------------------------------
// Port blocks

const BLOCK_SIZE: u16 = testports::BLOCK_SIZE;

/// A block of [`BLOCK_SIZE`] ports owned by one test while this value lives, with the
/// harness's layout (module docs).
pub struct PortBlock {
    pub base: u16,
    _block: testports::PortBlock,
}

impl PortBlock {
    /// Takes a free block from the workspace's one allocator (`testports`).
    pub fn take() -> PortBlock {
        let block = testports::PortBlock::take();
        PortBlock { base: block.base(), _block: block }
    }

    pub fn sip(&self) -> u16 {
        self.base
    }
    pub fn http(&self) -> u16 {
        self.base + 1
    }
    /// SIP port for peer `i` (0..8): SIPp instances, pjsua2 endpoints, raw sockets.
    pub fn peer_sip(&self, i: u16) -> u16 {
        assert!(i < 8, "peer_sip index {i} out of the block");
        self.base + 2 + i
    }
    /// First of 4 media ports for SIPp instance `i` (0..5): its `-mp`.
    pub fn sipp_media(&self, i: u16) -> u16 {
        assert!(i < 5, "sipp_media index {i} out of the block");
        self.base + 10 + 4 * i
    }
    /// First of 10 RTP ports for pjsua2 peer `i` (0..2).
    pub fn pj_rtp(&self, i: u16) -> u16 {
        assert!(i < 2, "pj_rtp index {i} out of the block");
        self.base + 30 + 10 * i
    }
    /// RTP ports for pjsua2 phone `i` (0..4) as (first port, how many): phones 0 and 1
    /// get their own ten, phones 2 and 3 borrow eight of the SIPp media ports (a test
    /// with four phones runs no SIPp).
    pub fn phone_rtp(&self, i: u16) -> (u16, u16) {
        match i {
            0 | 1 => (self.pj_rtp(i), 10),
            2 | 3 => (self.sipp_media(2 * (i - 2)), 8),
            _ => panic!("phone_rtp index {i} out of the block"),
        }
    }
    /// The server's RTP range, inclusive.
    pub fn server_rtp(&self) -> (u16, u16) {
        (self.base + 50, self.base + BLOCK_SIZE - 1)
    }
}

// ---------------------------------------------------------------------------------------
// Test environment

/// One end-to-end test: its name, work directory and ports.
pub struct TestEnv {
    pub name: String,
    pub work: PathBuf,
    pub ports: PortBlock,
    /// Files whose tails are printed if the test fails (server log, SIPp messages...).
    report: std::cell::RefCell<Vec<PathBuf>>,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        let root = match std::env::var_os("SWITCHBOARD_TEST_WORK") {
            Some(dir) => PathBuf::from(dir),
            None => workspace_root().join("tests/work"),
        };
        let work = root.join(name);
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap_or_else(|e| panic!("create {}: {e}", work.display()));
        let ports = PortBlock::take();
        eprintln!(
            "[{name}] work dir {} ports {}-{}",
            work.display(),
            ports.base,
            ports.base + BLOCK_SIZE - 1
        );
        TestEnv {
            name: name.to_string(),
            work,
            ports,
            report: Default::default(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.work.join(file)
    }

    /// Print the tail of this file if the test fails.
    pub fn report_on_failure(&self, path: &Path) {
        self.report.borrow_mut().push(path.to_path_buf());
    }

    /// Test tones, made with sox into the work dir: `tone440.wav`, `tone1000.wav` (8 kHz
    /// s16 mono, 10 s) and their headerless A-law versions `tone440.alaw`, `tone1000.alaw`
    /// for SIPp's `rtp_stream` (which reads paths relative to its cwd, the work dir).
    pub fn make_tones(&self) {
        let sox = require_tool("sox");
        for hz in [440, 1000] {
            let wav = self.path(&format!("tone{hz}.wav"));
            if wav.exists() {
                continue;
            }
            let args: Vec<String> = ["-n", "-r", "8000", "-c", "1", "-b", "16"]
                .iter()
                .map(|s| s.to_string())
                .chain([wav.display().to_string()])
                .chain(
                    ["synth", "10", "sine", &hz.to_string(), "vol", "0.5"]
                        .iter()
                        .map(|s| s.to_string()),
                )
                .collect();
            run_ok(Command::new(&sox).args(&args), "sox (make tone)");
            run_ok(
                Command::new(&sox)
                    .arg(&wav)
                    .args(["-t", "al"])
                    .arg(self.path(&format!("tone{hz}.alaw"))),
                "sox (to A-law)",
            );
        }
    }

    /// Machine-wide lock serialising media-heavy tests (pjsua2 audio), held while the
    /// returned file is alive.
    pub fn media_lock(&self) -> File {
        let path = std::env::temp_dir().join("switchboard-e2e-media.lock");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .expect("open media lock");
        // SAFETY: flock on a file descriptor we own; blocks until the lock is free.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
        file
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!(
            "\n==== [{}] FAILED; artifacts in {}",
            self.name,
            self.work.display()
        );
        for path in self.report.borrow().iter() {
            eprintln!("---- tail of {}", path.display());
            eprintln!("{}", tail(path, 60));
        }
        eprintln!("==== end of [{}]", self.name);
    }
}

/// The last `lines` lines of a text file (or a note that it could not be read).
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for a child up to `timeout`; kills it (SIGKILL) if it is still running then.
/// Returns `None` when it had to be killed.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes a child get SIGTERM if the test thread that spawned it dies (e.g. the test
/// binary is killed), so no server or SIPp outlives its test.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// Sends a signal to a child process we started.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

// ---------------------------------------------------------------------------------------
// The server

/// Options of one server instance beyond the per-test ports and dirs.
#[derive(Default, Clone)]
pub struct ServerOptions {
    /// `--sip-t1-ms`
    pub t1_ms: Option<u64>,
    /// `--api-token`
    pub api_token: Option<String>,
    /// Anything else, appended to `serve`.
    pub extra_args: Vec<String>,
}

/// A running `switchboard serve`. SIGTERM on drop (SIGKILL after 5 s).
pub struct Server {
    child: Option<Child>,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub log: PathBuf,
    pub token: Option<String>,
}

impl Server {
    /// Starts the server on the test's ports and waits until `GET /health` says 200.
    pub fn start(env: &TestEnv) -> Server {
        Server::start_with(env, ServerOptions::default())
    }

    pub fn start_with(env: &TestEnv, opts: ServerOptions) -> Server {
        let sip = SocketAddr::from((LOCALHOST, env.ports.sip()));
        let http = SocketAddr::from((LOCALHOST, env.ports.http()));
        let (rtp_lo, rtp_hi) = env.ports.server_rtp();
        let data = env.path("data");
        fs::create_dir_all(&data).expect("data dir");
        let log = env.path("server.log");
        let stderr = File::create(&log).expect("server.log");
        let stdout = File::create(env.path("server.stdout.log")).expect("server.stdout.log");
        let mut cmd = Command::new(server_bin());
        cmd.arg("serve")
            .args(["--sip-listen", &sip.to_string()])
            .args(["--http-listen", &http.to_string()])
            .args(["--rtp-ports", &format!("{rtp_lo}-{rtp_hi}")])
            .arg("--data-dir")
            .arg(&data)
            .args(["--domain", "switchboard.test"]);
        if let Some(t1) = opts.t1_ms {
            cmd.args(["--sip-t1-ms", &t1.to_string()]);
        }
        if let Some(token) = &opts.api_token {
            cmd.args(["--api-token", token]);
        }
        cmd.args(&opts.extra_args);
        // The server reads SWITCHBOARD_* settings from the environment: keep the caller's
        // out of it, so only the flags above apply.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
        // The MX admin web has a fixed default port (127.0.0.1:8043) that parallel test
        // servers would fight over: off unless the test's config file sets it.
        if !opts.extra_args.iter().any(|a| a == "--config") {
            cmd.env("SWITCHBOARD_MX__ADMIN_LISTEN", "");
        }
        // The same for the XML-RPC dialect's 127.0.0.1:8090, config file or not: a test
        // that wants it passes `--xmlrpc-listen`, which overrides the environment.
        cmd.env("SWITCHBOARD_XMLRPC__LISTEN", "");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "debug");
        }
        cmd.env("NO_COLOR", "1"); // plain text in server.log
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        env.report_on_failure(&log);
        let child = die_with_parent(&mut cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server_bin().display()));
        let mut server = Server {
            child: Some(child),
            sip,
            http,
            log,
            token: opts.api_token,
        };
        server.wait_healthy(Duration::from_secs(20));
        server
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                panic!(
                    "server exited during start-up ({status}); log tail:\n{}",
                    tail(&self.log, 40)
                );
            }
            match http_request(self.http, "GET", "/health", None, None) {
                Ok(resp) if resp.status == 200 => return,
                Ok(resp) => last = format!("HTTP {} {}", resp.status, resp.body),
                Err(e) => last = e,
            }
            assert!(
                Instant::now() < deadline,
                "server not healthy after {timeout:?} (last: {last}); log tail:\n{}",
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Panics if the server process has exited (e.g. crashed on bad input).
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
            panic!(
                "server is no longer running: {status}; log tail:\n{}",
                tail(&self.log, 40)
            );
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit status (SIGKILL and `None` after that).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.stop_with(libc::SIGTERM, timeout)
    }

    /// [`Server::terminate`] with another signal (SIGINT...).
    pub fn stop_with(&mut self, sig: libc::c_int, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        signal(&child, sig);
        wait_timeout(&mut child, timeout)
    }

    // -- HTTP API, with the bearer token if the server has one

    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> HttpResponse {
        self.request("POST", path, Some(&body.to_string()))
    }
    pub fn delete(&self, path: &str) -> HttpResponse {
        self.request("DELETE", path, None)
    }
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        http_request(self.http, method, path, body, self.token.as_deref()).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: {e}; server log tail:\n{}",
                tail(&self.log, 30)
            )
        })
    }

    /// `GET /v1/calls` as a list of legs.
    pub fn legs(&self) -> Vec<Value> {
        let resp = self.get("/v1/calls");
        assert_eq!(resp.status, 200, "GET /v1/calls: {resp:?}");
        match resp.json() {
            Value::Array(legs) => legs,
            // tolerate an envelope like {"calls":[...]} or {"legs":[...]}
            Value::Object(map) => map
                .values()
                .find_map(|v| v.as_array().cloned())
                .unwrap_or_else(|| panic!("GET /v1/calls: no list in {map:?}")),
            other => panic!("GET /v1/calls: not a list: {other}"),
        }
    }

    /// Polls `GET /v1/calls` until a leg satisfies `pred`.
    pub fn wait_for_leg(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let legs = self.legs();
            if let Some(leg) = legs.iter().find(|l| pred(l)) {
                return leg.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no leg {what} within {timeout:?}; legs: {legs:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `GET /v1/calls` until every leg is `ended` (or gone).
    pub fn wait_all_ended(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let legs = self.legs();
            if legs.iter().all(|l| l["state"] == "ended") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "legs still live after {timeout:?}: {legs:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A leg's string field ("" when missing).
pub fn field<'v>(leg: &'v Value, key: &str) -> &'v str {
    leg[key].as_str().unwrap_or("")
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                signal(&child, libc::SIGTERM);
                if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                    eprintln!("server pid {} ignored SIGTERM for 5 s; killed", child.id());
                }
            }
        }
    }
}

/// Describes how a process ended: "exit 0", "signal 9".
pub fn describe(status: Option<ExitStatus>) -> String {
    match status {
        None => "killed after timeout".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => format!("{s}"),
        },
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 client (enough for our JSON API)

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as received (for binary downloads).
    pub bytes: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), 10 s timeout.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<HttpResponse, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
    if let Some(token) = token {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        bytes: body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

// ---------------------------------------------------------------------------------------
// SIPp

/// A SIPp run, built like a command: `Sipp::new(&env, "uac_call.xml", "call").service("echo")...`.
/// Runs with `-m 1 -nostdin -timeout Ns -timeout_error`, `-trace_msg`, `-trace_err` and
/// `-trace_screen` into the work dir; cwd is the work dir (so `rtp_stream` finds the tones).
pub struct Sipp<'a> {
    env: &'a TestEnv,
    scenario: PathBuf,
    label: String,
    remote: Option<SocketAddr>,
    local_port: u16,
    media_port: u16,
    tcp: bool,
    timeout_s: u64,
    args: Vec<String>,
}

impl<'a> Sipp<'a> {
    /// `scenario` is a file in `tests/kit/sipp/`; `label` names its logs (`<label>_messages.log`...).
    /// Uses peer slot 0 (SIP `peer_sip(0)`, media `sipp_media(0)`) unless told otherwise.
    pub fn new(env: &'a TestEnv, scenario: &str, label: &str) -> Sipp<'a> {
        let scenario = kit_dir().join("sipp").join(scenario);
        assert!(
            scenario.is_file(),
            "no SIPp scenario {}",
            scenario.display()
        );
        Sipp {
            env,
            scenario,
            label: label.to_string(),
            remote: None,
            local_port: env.ports.peer_sip(0),
            media_port: env.ports.sipp_media(0),
            tcp: false,
            timeout_s: 30,
            args: Vec::new(),
        }
    }
    /// UAC: where to send (the server's SIP address).
    pub fn remote(mut self, addr: SocketAddr) -> Self {
        self.remote = Some(addr);
        self
    }
    /// Request-URI user part (`-s`).
    pub fn service(self, user: &str) -> Self {
        self.arg("-s").arg(user)
    }
    /// Peer slot: SIP port `peer_sip(i)` and media ports `sipp_media(i)`.
    pub fn slot(mut self, i: u16) -> Self {
        self.local_port = self.env.ports.peer_sip(i);
        self.media_port = self.env.ports.sipp_media(i);
        self
    }
    /// Explicit SIP and media ports, for a test that needs more SIPp instances than slots.
    pub fn ports(mut self, sip: u16, media: u16) -> Self {
        self.local_port = sip;
        self.media_port = media;
        self
    }
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }
    /// Call hold time for `<pause/>` (`-d`).
    pub fn hold_ms(self, ms: u64) -> Self {
        self.arg("-d").arg(&ms.to_string())
    }
    /// SIPp's global timeout (default 30 s); the run fails when it is reached.
    pub fn timeout_s(mut self, s: u64) -> Self {
        self.timeout_s = s;
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }
    pub fn local_port(&self) -> u16 {
        self.local_port
    }
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(require_tool("sipp"));
        if let Some(remote) = self.remote {
            cmd.arg(remote.to_string());
        }
        let w = |suffix: &str| self.env.path(&format!("{}_{suffix}", self.label));
        cmd.arg("-sf")
            .arg(&self.scenario)
            .args(["-i", "127.0.0.1", "-p", &self.local_port.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &self.media_port.to_string()])
            .args([
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                &format!("{}s", self.timeout_s),
                "-timeout_error",
            ])
            .args(["-trace_msg", "-message_file"])
            .arg(w("messages.log"))
            .args(["-trace_err", "-error_file"])
            .arg(w("errors.log"))
            .args(["-trace_screen", "-screen_file"])
            .arg(w("screen.log"));
        if self.tcp {
            cmd.args(["-t", "t1"]);
        }
        cmd.args(&self.args)
            .current_dir(&self.env.work)
            .stdin(Stdio::null());
        let out = File::create(w("stdout.log")).expect("sipp stdout log");
        cmd.stdout(out.try_clone().unwrap()).stderr(out);
        cmd
    }

    /// Starts SIPp and returns at once (for a UAS, or a UAC the test acts on meanwhile).
    pub fn spawn(self) -> SippChild {
        // SIPp loads every rtp_stream file of the scenario at start-up, even if unused.
        self.env.make_tones();
        let mut cmd = self.command();
        let line = format!("{cmd:?}");
        fs::write(self.env.path(&format!("{}_command.txt", self.label)), &line).ok();
        let child = die_with_parent(&mut cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sipp: {e}"));
        self.env
            .report_on_failure(&self.env.path(&format!("{}_errors.log", self.label)));
        SippChild {
            child,
            label: self.label.clone(),
            work: self.env.work.clone(),
            command: line,
            wait_limit: Duration::from_secs(self.timeout_s + 10),
        }
    }

    /// Runs SIPp to completion.
    pub fn run(self) -> SippRun {
        self.spawn().wait()
    }
}

pub struct SippChild {
    child: Child,
    label: String,
    work: PathBuf,
    command: String,
    wait_limit: Duration,
}

impl SippChild {
    pub fn wait(mut self) -> SippRun {
        let status = wait_timeout(&mut self.child, self.wait_limit);
        let read = |suffix: &str| {
            fs::read_to_string(self.work.join(format!("{}_{suffix}", self.label)))
                .unwrap_or_default()
        };
        SippRun {
            label: self.label.clone(),
            status,
            command: self.command.clone(),
            messages_path: self.work.join(format!("{}_messages.log", self.label)),
            messages: read("messages.log"),
            errors: read("errors.log"),
            screen: read("screen.log"),
            stdout: read("stdout.log"),
        }
    }
    /// True while SIPp is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One SIP message in SIPp's `-trace_msg` log.
#[derive(Debug, Clone)]
pub struct TracedMessage {
    pub time: String,
    /// "sent" or "received"
    pub direction: &'static str,
    /// "UDP" or "TCP"
    pub transport: String,
    pub text: String,
}

impl TracedMessage {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
    /// The trace time as seconds since midnight (SIPp logs `HH:MM:SS.ffffff`).
    pub fn seconds(&self) -> f64 {
        let parts: Vec<f64> = self.time.split(':').filter_map(|p| p.parse().ok()).collect();
        assert_eq!(parts.len(), 3, "bad SIPp trace time {:?}", self.time);
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
    }
}

pub struct SippRun {
    pub label: String,
    pub status: Option<ExitStatus>,
    pub command: String,
    pub messages_path: PathBuf,
    pub messages: String,
    pub errors: String,
    pub screen: String,
    pub stdout: String,
}

impl SippRun {
    pub fn success(&self) -> bool {
        matches!(self.status, Some(s) if s.success())
    }

    /// Panics with the exit code, SIPp's error log and the SIP message flow unless SIPp exited 0.
    pub fn assert_ok(&self) {
        if !self.success() {
            panic!(
                "SIPp `{}` failed: {}\n{}",
                self.label,
                describe(self.status),
                self.report()
            );
        }
    }

    /// What went over the wire plus SIPp's own account, for failure messages.
    pub fn report(&self) -> String {
        let mut out = format!(
            "command: {}\n--- SIP flow ({}):\n",
            self.command,
            self.messages_path.display()
        );
        for m in self.traced() {
            let arrow = if m.direction == "sent" { "-->" } else { "<--" };
            out.push_str(&format!(
                "  {} {arrow} {} {}\n",
                m.time,
                m.transport,
                m.first_line()
            ));
        }
        if !self.errors.trim().is_empty() {
            out.push_str(&format!(
                "--- SIPp errors:\n{}\n",
                truncate(&self.errors, 4000)
            ));
        }
        if let Some(last) = self.traced().last() {
            out.push_str(&format!(
                "--- last message ({}):\n{}\n",
                last.direction, last.text
            ));
        }
        let screen = if self.screen.trim().is_empty() {
            &self.stdout
        } else {
            &self.screen
        };
        out.push_str(&format!("--- SIPp screen:\n{}\n", truncate(screen, 3000)));
        out
    }

    /// Parses the `-trace_msg` log.
    pub fn traced(&self) -> Vec<TracedMessage> {
        parse_sipp_messages(&self.messages)
    }

    /// Received messages whose first line starts with `prefix` ("SIP/2.0 200", "BYE ").
    pub fn received(&self, prefix: &str) -> Vec<TracedMessage> {
        self.traced()
            .into_iter()
            .filter(|m| m.direction == "received" && m.first_line().starts_with(prefix))
            .collect()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    &s[cut..]
}

/// SIPp's message log: entries separated by `----...---- <date> <time>` lines, each
/// starting with `UDP message sent (N bytes):` or `TCP message received [N] bytes :`.
pub fn parse_sipp_messages(log: &str) -> Vec<TracedMessage> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    let flush = |cur: Option<(String, Vec<&str>)>, out: &mut Vec<TracedMessage>| {
        let Some((time, lines)) = cur else { return };
        let mut it = lines.into_iter().skip_while(|l| l.trim().is_empty());
        let Some(head) = it.next() else { return };
        let direction = if head.contains(" sent") {
            "sent"
        } else if head.contains(" received") {
            "received"
        } else {
            return;
        };
        let transport = head.split_whitespace().next().unwrap_or("").to_string();
        let text: Vec<&str> = it.collect();
        let text = text.join("\n").trim_start().to_string();
        out.push(TracedMessage {
            time,
            direction,
            transport,
            text,
        });
    };
    for line in log.lines() {
        if line.starts_with("----------") {
            let prev = current.take();
            flush(prev, &mut out);
            let time = line
                .trim_start_matches('-')
                .trim()
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            current = Some((time, Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    flush(current, &mut out);
    out
}

// ---------------------------------------------------------------------------------------
// pjsua2 peer and tone checks

pub struct PjRun {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// The `RESULT {...}` line pj_peer.py prints.
    pub result: Option<Value>,
    pub log_file: PathBuf,
}

impl PjRun {
    pub fn assert_ok(&self) {
        if matches!(self.status, Some(s) if s.success()) {
            return;
        }
        let hint = if self.stderr.contains("No module named") {
            format!("\n(the venv lacks pjsua2/numpy: {INSTALL_HINT})")
        } else {
            String::new()
        };
        panic!(
            "pj_peer.py failed: {}\nresult: {:?}\nstderr:\n{}\npjsip log tail ({}):\n{}{hint}",
            describe(self.status),
            self.result,
            truncate(&self.stderr, 3000),
            self.log_file.display(),
            tail(&self.log_file, 80)
        );
    }
}

/// Runs `tests/kit/pj/pj_peer.py` with `args` to completion; adds `--log-file <label>.pj.log`.
pub fn pj_peer(env: &TestEnv, label: &str, args: &[String]) -> PjRun {
    PjPeer::spawn(env, label, args).wait()
}

/// A running `pj_peer.py` (e.g. in `answer` mode, waiting for the server's call).
pub struct PjPeer {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr_reader: Option<std::thread::JoinHandle<String>>,
    label: String,
    work: PathBuf,
    log_file: PathBuf,
}

impl PjPeer {
    pub fn spawn(env: &TestEnv, label: &str, args: &[String]) -> PjPeer {
        let python = venv_python();
        let log_file = env.path(&format!("{label}.pj.log"));
        env.report_on_failure(&log_file);
        let mut cmd = Command::new(&python);
        let mut child = die_with_parent(&mut cmd)
            .arg(kit_dir().join("pj/pj_peer.py"))
            .args(args)
            .arg("--log-file")
            .arg(&log_file)
            .current_dir(&env.work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let stdout_pipe = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout_pipe)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            s
        });
        PjPeer {
            child,
            lines,
            stdout: Vec::new(),
            stderr_reader: Some(stderr_reader),
            label: label.to_string(),
            work: env.work.clone(),
            log_file,
        }
    }

    /// Waits for the `READY` line (SIP transport and account are up).
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("READY");
                    self.stdout.push(line);
                    if ready {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let run = self.finish(None);
                    panic!(
                        "pj_peer.py `{}` not READY within {timeout:?}\nstdout: {:?}\nstderr: {}",
                        self.label, run.stdout, run.stderr
                    );
                }
            }
        }
    }

    /// Waits (up to 60 s) for pj_peer.py to exit.
    pub fn wait(mut self) -> PjRun {
        let status = wait_timeout(&mut self.child, Duration::from_secs(60));
        self.finish(status)
    }

    fn finish(&mut self, status: Option<ExitStatus>) -> PjRun {
        // the reader thread ends when the pipe closes, i.e. after the process exited
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.stdout.push(line);
        }
        let stdout = self.stdout.join("\n");
        let stderr = self
            .stderr_reader
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        fs::write(self.work.join(format!("{}.pj.stdout", self.label)), &stdout).ok();
        fs::write(self.work.join(format!("{}.pj.stderr", self.label)), &stderr).ok();
        let result = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .and_then(|j| serde_json::from_str(j).ok());
        PjRun {
            status,
            stdout,
            stderr,
            result,
            log_file: self.log_file.clone(),
        }
    }
}

impl Drop for PjPeer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True if some socket is bound to 127.0.0.1:`port` (or 0.0.0.0:`port`) over UDP.
/// Reads /proc/net/udp rather than probing with bind(), which could steal the port.
pub fn udp_port_bound(port: u16) -> bool {
    let table = fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|local| wanted.iter().any(|w| w == local))
    })
}

/// Waits until something listens on UDP 127.0.0.1:`port` (e.g. a SIPp UAS that was just spawned).
pub fn wait_udp_bound(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !udp_port_bound(port) {
        assert!(
            Instant::now() < deadline,
            "nothing bound UDP 127.0.0.1:{port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A continuity-aware check of a recording by `tests/kit/pj/wav_tones.py` (see its
/// docstring for the method): over a window cut into 20 ms frames, every `expect` tone
/// must be present in >= 95 % of the frames with no gap over 60 ms ("hears"), every
/// `absent` tone in no frame at all ("does not hear"). A silent window is its own
/// verdict and never passes an `absent` check unless [`ToneCheck::allow_silent`] says
/// why silence is right there.
///
/// ```ignore
/// tone_check(&rec).expect(&[1000]).absent(&[440]).window(1.0, Some(5.0)).assert("alice");
/// ```
#[derive(Clone, Debug)]
pub struct ToneCheck {
    wav: PathBuf,
    expect: Vec<u32>,
    absent: Vec<u32>,
    from: f64,
    until: Option<f64>,
    bound: Option<(f64, f64, String)>,
    allow_silent: Option<String>,
}

/// Starts a [`ToneCheck`] of `wav` (window: 0.5 s to 0.2 s before the end).
pub fn tone_check(wav: &Path) -> ToneCheck {
    ToneCheck {
        wav: wav.to_path_buf(),
        expect: Vec::new(),
        absent: Vec::new(),
        from: 0.5,
        until: None,
        bound: None,
        allow_silent: None,
    }
}

impl ToneCheck {
    /// Tones that must be heard continuously.
    pub fn expect(mut self, hz: &[u32]) -> Self {
        self.expect.extend_from_slice(hz);
        self
    }
    /// Tones that must never be detected.
    pub fn absent(mut self, hz: &[u32]) -> Self {
        self.absent.extend_from_slice(hz);
        self
    }
    /// The window, seconds into the recording (`until: None` = 0.2 s before its end).
    /// A window running past the end of the recording fails the check.
    pub fn window(mut self, from: f64, until: Option<f64>) -> Self {
        self.from = from;
        self.until = until;
        self
    }
    /// A looser "hears" bound than 95 % / 60 ms, with the reason (it goes into failures).
    pub fn bound(mut self, min_pct: f64, max_gap_ms: f64, why: &str) -> Self {
        self.bound = Some((min_pct, max_gap_ms, why.to_owned()));
        self
    }
    /// Lets a silent window pass the `absent` checks; `why` says how the test knows the
    /// stream is alive anyway (an RTP capture, say).
    pub fn allow_silent(mut self, why: &str) -> Self {
        self.allow_silent = Some(why.to_owned());
        self
    }

    /// Runs the checker: (passed, its JSON verdict).
    pub fn run(&self) -> (bool, Value) {
        let mut cmd = Command::new(venv_python());
        cmd.arg(kit_dir().join("pj/wav_tones.py"))
            .arg(&self.wav)
            .args(["--from", &self.from.to_string()]);
        if let Some(u) = self.until {
            cmd.args(["--until", &u.to_string()]);
        }
        for hz in &self.expect {
            cmd.args(["--expect", &hz.to_string()]);
        }
        for hz in &self.absent {
            cmd.args(["--absent", &hz.to_string()]);
        }
        if let Some((pct, gap, _)) = &self.bound {
            cmd.args(["--min-pct", &pct.to_string(), "--max-gap-ms", &gap.to_string()]);
        }
        if self.allow_silent.is_some() {
            cmd.arg("--allow-silent");
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run wav_tones.py: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let verdict = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or_else(|| {
                panic!(
                    "wav_tones.py printed no verdict: {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        (out.status.success(), verdict)
    }

    /// Runs the checker and panics with its verdict unless it passed; returns the verdict.
    pub fn assert(&self, what: &str) -> Value {
        let (ok, verdict) = self.run();
        eprintln!("[tone check] {what}: {}", summarize_tones(&verdict));
        if !ok {
            let mut why = verdict["why"].to_string();
            if let Some((pct, gap, reason)) = &self.bound {
                why.push_str(&format!(" (looser bound {pct} % / {gap} ms because: {reason})"));
            }
            panic!(
                "{what}: expected {:?} continuously, {:?} never, in {} [{}s..{:?}]: {why}\nfull verdict: {verdict}",
                self.expect,
                self.absent,
                self.wav.display(),
                self.from,
                self.until
            );
        }
        verdict
    }
}

/// One line per check for the test log: window, live %, and per tone its verdict,
/// present %, longest gap and largest share of a frame.
pub fn summarize_tones(v: &Value) -> String {
    let mut out = format!(
        "[{:.2}..{:.2}s] live {}% {}",
        v["from_s"].as_f64().unwrap_or(0.0),
        v["until_s"].as_f64().unwrap_or(0.0),
        v["signal_pct"],
        v["verdict"].as_str().unwrap_or("?")
    );
    if let Some(tones) = v["tones"].as_object() {
        for (hz, t) in tones {
            out.push_str(&format!(
                "; {hz}: {} {}% gap {}ms share<={}",
                t["verdict"].as_str().unwrap_or("-"),
                t["present_pct"],
                t["longest_gap_ms"],
                t["max_share"]
            ));
        }
    }
    out
}

/// [`tone_check`] with the default window; returns (passed, its JSON verdict).
pub fn wav_tones(wav: &Path, expect: &[u32], absent: &[u32]) -> (bool, Value) {
    tone_check(wav).expect(expect).absent(absent).run()
}

// ---------------------------------------------------------------------------------------
// Packet capture on lo (dumpcap) and a minimal pcap reader

/// `dumpcap -i lo` with a BPF filter, writing a classic pcap into the work dir.
/// Needs root or dumpcap's capabilities (CI runs as root).
pub struct Capture {
    child: Option<Child>,
    pub path: PathBuf,
}

impl Capture {
    pub fn start(env: &TestEnv, label: &str, filter: &str) -> Capture {
        let dumpcap = require_tool("dumpcap");
        let path = env.path(&format!("{label}.pcap"));
        let log = env.path(&format!("{label}.dumpcap.log"));
        let mut cmd = Command::new(dumpcap);
        let child = die_with_parent(&mut cmd)
            .args(["-q", "-P", "-i", "lo", "-f", filter, "-w"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("dumpcap log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dumpcap: {e}"));
        let mut cap = Capture {
            child: Some(child),
            path,
        };
        // dumpcap writes the pcap header once the capture is live.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::metadata(&cap.path).map(|m| m.len()).unwrap_or(0) < 24 {
            if let Some(status) = cap.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "dumpcap exited ({status}); it needs root or capture rights on lo:\n{}",
                    tail(&log, 20)
                );
            }
            assert!(
                Instant::now() < deadline,
                "dumpcap did not start capturing within 10 s:\n{}",
                tail(&log, 20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        cap
    }

    /// Stops the capture and returns the UDP datagrams in it.
    pub fn stop(mut self) -> Vec<UdpPacket> {
        self.finish();
        let data =
            fs::read(&self.path).unwrap_or_else(|e| panic!("read {}: {e}", self.path.display()));
        read_pcap_udp(&data).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
    }

    fn finish(&mut self) {
        if let Some(mut child) = self.child.take() {
            // dumpcap drops what it has not read from the kernel yet when it gets SIGINT:
            // give it a moment to catch up with the last packets (a BYE, say).
            std::thread::sleep(Duration::from_millis(300));
            signal(&child, libc::SIGINT);
            wait_timeout(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

#[derive(Debug, Clone)]
pub struct UdpPacket {
    /// Capture time, seconds since the epoch.
    pub time: f64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

impl UdpPacket {
    /// RTP version 2 with a payload type that is not RTCP's (200-204 with the marker bit).
    pub fn is_rtp(&self) -> bool {
        self.payload.len() >= 12
            && self.payload[0] >> 6 == 2
            && !(72..=76).contains(&(self.payload[1] & 0x7f))
    }
    pub fn rtp_payload_type(&self) -> u8 {
        self.payload[1] & 0x7f
    }
    /// The payload as text (for SIP).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).to_string()
    }
}

/// Reads IPv4/UDP packets from a classic pcap (Ethernet, Linux SLL/SLL2, null or raw link types).
pub fn read_pcap_udp(data: &[u8]) -> Result<Vec<UdpPacket>, String> {
    read_pcap_ipv4(data, 17)
}

/// Reads the IPv4/TCP segments that carry data from a classic pcap, in the same shape
/// as [`read_pcap_udp`] (payload = the segment's data; no stream reassembly).
pub fn read_pcap_tcp(data: &[u8]) -> Result<Vec<UdpPacket>, String> {
    Ok(read_pcap_ipv4(data, 6)?.into_iter().filter(|p| !p.payload.is_empty()).collect())
}

/// IPv4 packets of IP protocol `proto` (17 UDP, 6 TCP), with their ports and payload.
fn read_pcap_ipv4(data: &[u8], proto: u8) -> Result<Vec<UdpPacket>, String> {
    if data.len() < 24 {
        return Err("pcap shorter than its header".into());
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        _ => {
            return Err(format!(
                "not a classic pcap (magic {magic:#x}); use dumpcap -P"
            ))
        }
    };
    let u32_at = |b: &[u8], o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let nanos = matches!(magic, 0xa1b23c4d | 0x4d3cb2a1);
    let linktype = u32_at(data, 20);
    let link_len = match linktype {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        101 => 0,  // raw IP
        other => return Err(format!("unsupported link type {other}")),
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let time = u32_at(data, off) as f64
            + u32_at(data, off + 4) as f64 * if nanos { 1e-9 } else { 1e-6 };
        let caplen = u32_at(data, off + 8) as usize;
        let start = off + 16;
        let end = start + caplen;
        if end > data.len() {
            break;
        }
        let frame = &data[start..end];
        off = end;
        let Some(ip) = frame.get(link_len..) else {
            continue;
        };
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != proto {
            continue;
        }
        let ihl = (ip[0] & 0x0f) as usize * 4;
        // the IP total length bounds the segment (Ethernet frames may carry padding);
        // 0 or nonsense (offloaded segments) means "the rest of the frame"
        let total = match u16::from_be_bytes([ip[2], ip[3]]) as usize {
            t if t >= ihl && t <= ip.len() => t,
            _ => ip.len(),
        };
        let Some(l4) = ip.get(ihl..total) else { continue };
        let payload = match proto {
            17 if l4.len() >= 8 => {
                let ulen = (u16::from_be_bytes([l4[4], l4[5]]) as usize).clamp(8, l4.len());
                &l4[8..ulen]
            }
            6 if l4.len() >= 20 => match l4.get((l4[12] >> 4) as usize * 4..) {
                Some(p) => p,
                None => continue,
            },
            _ => continue,
        };
        let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        out.push(UdpPacket {
            time,
            src: SocketAddr::from((src_ip, sport)),
            dst: SocketAddr::from((dst_ip, dport)),
            payload: payload.to_vec(),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Raw SIP over UDP/TCP, for malformed-input tests

/// A UDP socket on a peer port for hand-written SIP.
pub struct RawSip {
    pub socket: UdpSocket,
    pub server: SocketAddr,
}

impl RawSip {
    pub fn new(env: &TestEnv, slot: u16, server: SocketAddr) -> RawSip {
        let socket =
            UdpSocket::bind((LOCALHOST, env.ports.peer_sip(slot))).expect("bind raw SIP socket");
        RawSip { socket, server }
    }
    pub fn local_port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }
    pub fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).expect("send_to");
    }
    /// Datagrams received within `wait` (stops early after `max` of them).
    pub fn recv_all(&self, wait: Duration, max: usize) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while out.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv_from(&mut buf) {
                Ok((n, _)) => out.push(String::from_utf8_lossy(&buf[..n]).to_string()),
                Err(_) => break,
            }
        }
        out
    }
    /// The first response received within `wait` whose Call-ID is `call_id`.
    pub fn response_for(&self, call_id: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            for msg in self.recv_all(deadline.saturating_duration_since(Instant::now()), 1) {
                if msg.starts_with("SIP/2.0 ")
                    && header_value(&msg, "Call-ID", "i").as_deref() == Some(call_id)
                {
                    return Some(msg);
                }
            }
        }
        None
    }
}

/// A header's value in a SIP message (full or compact name), first occurrence.
pub fn header_value(msg: &str, name: &str, compact: &str) -> Option<String> {
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .skip(1)
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(compact))
                .then(|| v.trim().to_string())
        })
}

/// The status code of a SIP response.
pub fn status_code(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Reads SIP messages from a TCP stream (framing by Content-Length) until `wait` runs out
/// or `max` messages arrived.
pub fn read_sip_tcp(stream: &mut TcpStream, wait: Duration, max: usize) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut buf: VecDeque<u8> = VecDeque::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while out.len() < max {
        // complete messages already buffered?
        let bytes: Vec<u8> = buf.iter().copied().collect();
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end + 4]).to_string();
            let len: usize = header_value(&head, "Content-Length", "l")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + len {
                out.push(String::from_utf8_lossy(&bytes[..end + 4 + len]).to_string());
                buf.drain(..end + 4 + len);
                continue;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend(&chunk[..n]),
        }
    }
    out
}

/// A small deterministic byte generator (xorshift) for junk input.
pub struct Junk(u64);

impl Junk {
    pub fn new(seed: u64) -> Junk {
        Junk(seed | 1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 24) as u8
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The `switchboard` CLI

pub struct CliRun {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn success(&self) -> bool {
        matches!(self.status, Some(s) if s.success())
    }
}

/// Runs the `switchboard` binary with `args` (killed after `timeout`).
pub fn run_cli(env: &TestEnv, label: &str, args: &[&str], timeout: Duration) -> CliRun {
    run_cli_with_env(env, label, args, &[], timeout)
}

/// [`run_cli`] with extra environment variables (on top of the test's own environment,
/// which may itself hold `SWITCHBOARD_*` variables of the test scripts).
pub fn run_cli_with_env(env: &TestEnv, label: &str, args: &[&str], vars: &[(&str, &str)], timeout: Duration) -> CliRun {
    let out_path = env.path(&format!("{label}.stdout"));
    let err_path = env.path(&format!("{label}.stderr"));
    let mut cmd = Command::new(server_bin());
    let mut child = die_with_parent(&mut cmd)
        .args(args)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", server_bin().display()));
    let status = wait_timeout(&mut child, timeout);
    CliRun {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------
// pjsua2 parties in a conference room

/// `tone<hz>.wav` in the work dir: 15 s of `hz` at half scale, 8 kHz s16 mono (sox).
pub fn room_tone(env: &TestEnv, hz: u32) -> PathBuf {
    let wav = env.path(&format!("tone{hz}.wav"));
    if !wav.exists() {
        let sox = require_tool("sox");
        let mut cmd = Command::new(&sox);
        cmd.args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "15", "sine", &hz.to_string(), "vol", "0.5"]);
        run_ok(&mut cmd, "sox (make tone)");
    }
    wav
}

/// A pjsua2 conference participant for [`join_room`].
pub struct RoomParty<'a> {
    pub user: &'a str,
    /// Request-URI user: `conf-<n>` or `*9<n>`.
    pub dial: &'a str,
    /// The tone it plays.
    pub hz: u32,
    /// The only codec it enables, e.g. `PCMU/8000`.
    pub codec: &'a str,
    /// Seconds of media before it hangs up.
    pub duration: f64,
}

/// pjsua2 party `i` (0..4) calls `sip:<dial>@<server>`, plays its tone in a loop for
/// its duration and records what it hears. RTP ports: ten per party from `base + 10`
/// (the block's SIPp media and pjsua2 ranges, unused by such tests). Returns the
/// running peer and its recording.
pub fn join_room(env: &TestEnv, server: &Server, i: u16, p: &RoomParty) -> (PjPeer, PathBuf) {
    let RoomParty { user, dial, hz, codec, duration } = *p;
    assert!(i < 4, "party index {i} out of the block");
    let rec = env.path(&format!("{user}_rx.wav"));
    let args: Vec<String> = vec![
        "call".into(),
        format!("sip:{dial}@{}", server.sip),
        "--user".into(),
        user.into(),
        "--sip-port".into(),
        env.ports.peer_sip(i).to_string(),
        "--rtp-port".into(),
        (env.ports.base + 10 + 10 * i).to_string(),
        "--rtp-range".into(),
        "10".into(),
        "--play".into(),
        room_tone(env, hz).display().to_string(),
        "--loop".into(),
        "--record".into(),
        rec.display().to_string(),
        "--duration".into(),
        duration.to_string(),
        "--max-time".into(),
        (duration + 15.0).to_string(),
        "--codec".into(),
        codec.into(),
    ];
    env.report_on_failure(&rec);
    (PjPeer::spawn(env, user, &args), rec)
}

/// [`tone_check`] over the part of the recording from `skip` to `until` seconds.
pub fn wav_tones_between(wav: &Path, expect: &[u32], absent: &[u32], skip: f64, until: Option<f64>) -> (bool, Value) {
    tone_check(wav).expect(expect).absent(absent).window(skip, until).run()
}

/// The first conference's confid and participants once `n` of them are active (15 s).
pub fn wait_room_active(server: &Server, n: usize) -> (String, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rooms = server.get("/rest/v1/uc/conferences").json();
        if let Some(confid) = rooms.as_array().and_then(|a| a.first()).and_then(|r| r["confid"].as_str()) {
            let parts = server.get(&format!("/rest/v1/uc/conferences/{confid}/participants")).json();
            let parts = parts.as_array().cloned().unwrap_or_default();
            if parts.iter().filter(|p| p["state"] == "active").count() >= n {
                return (confid.to_owned(), parts);
            }
        }
        assert!(Instant::now() < deadline, "{n} participants never became active: {rooms}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seconds since the Unix epoch now: the clock of pcap timestamps and of `joined_ms`.
pub fn epoch_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// When the participant whose remote URI has user `user` joined (`joined_ms`, epoch
/// seconds). A pjsua2 or baresip recording starts within a few ms of it (media starts
/// with the 200 OK), so `t - joined_s` is time `t` in that party's recording.
pub fn joined_s(parts: &[Value], user: &str) -> f64 {
    parts
        .iter()
        .find(|p| p["ruri"].as_str().is_some_and(|u| u.contains(&format!("sip:{user}@"))))
        .and_then(|p| p["joined_ms"].as_u64())
        .unwrap_or_else(|| panic!("no participant {user} with joined_ms in {parts:?}")) as f64
        / 1000.0
}

/// One direction of RTP in a capture: what [`rtp_flow`] collected.
#[derive(Debug, Default, Clone)]
pub struct RtpFlow {
    /// Capture times (epoch seconds), in order.
    pub times: Vec<f64>,
    pub payload_types: std::collections::BTreeSet<u8>,
    pub ssrcs: std::collections::BTreeSet<u32>,
    pub payloads: Vec<Vec<u8>>,
}

/// The RTP packets of a capture that `pred` selects (e.g. server to one client).
pub fn rtp_flow(packets: &[UdpPacket], pred: impl Fn(&UdpPacket) -> bool) -> RtpFlow {
    let mut flow = RtpFlow::default();
    for p in packets.iter().filter(|p| p.is_rtp() && pred(p)) {
        flow.times.push(p.time);
        flow.payload_types.insert(p.rtp_payload_type());
        flow.ssrcs.insert(u32::from_be_bytes([p.payload[8], p.payload[9], p.payload[10], p.payload[11]]));
        flow.payloads.push(p.payload[12..].to_vec());
    }
    flow
}

impl RtpFlow {
    /// Packets within [t0, t1] (epoch seconds), and the longest time without one there
    /// (ms; the window's edges count as packets, so a flow that stops early shows it).
    pub fn in_window(&self, t0: f64, t1: f64) -> (usize, f64) {
        let inside: Vec<f64> = self.times.iter().copied().filter(|t| (t0..=t1).contains(t)).collect();
        let mut edges = vec![t0];
        edges.extend(&inside);
        edges.push(t1);
        let gap = edges.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        (inside.len(), gap * 1000.0)
    }

    /// A steady 20 ms stream over [t0, t1]: at least 95 % of the 50 packets a second, and
    /// never more than `max_gap_ms` without a packet (the sender's tick may slip under CPU
    /// load on a shared machine, hence a bound of its own rather than 20 ms).
    pub fn assert_steady(&self, t0: f64, t1: f64, max_gap_ms: f64, what: &str) {
        assert!(t1 - t0 >= 1.0, "{what}: window of {:.2} s is too short to judge", t1 - t0);
        let (n, gap) = self.in_window(t0, t1);
        let want = 0.95 * 50.0 * (t1 - t0);
        assert!(
            n as f64 >= want && gap <= max_gap_ms,
            "{what}: {n} RTP packets in {:.2} s (need {want:.0}), longest silence on the wire {gap:.0} ms (max {max_gap_ms})",
            t1 - t0
        );
    }
}

/// The `m=audio` ports of the SDP bodies in a pjsip log (both directions).
pub fn sdp_audio_ports(pj_log: &Path) -> Vec<u16> {
    let text = fs::read_to_string(pj_log).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("m=audio "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

// ---------------------------------------------------------------------------------------
// baresip: a real Opus client (the system's libopus), headless

/// Settings of one headless baresip UA (see [`BaresipPeer`]).
pub struct BaresipConfig<'a> {
    /// User part of its SIP identity.
    pub user: &'a str,
    /// Its SIP port (UDP, 127.0.0.1).
    pub sip_port: u16,
    /// Its RTP/RTCP port range, inclusive. baresip binds RTP on the wildcard address, so
    /// the range must be free on every local address: keep it inside the test's block.
    pub rtp_ports: (u16, u16),
    /// WAV played into the call in a loop (`aufile` source); its rate must be `srate`.
    pub play: &'a Path,
    /// `audio_srate`: the rate of the source and player side (8000 for the kit's tones).
    pub srate: u32,
    /// The only audio codec modules loaded, e.g. `["opus.so"]`: baresip can offer
    /// nothing else.
    pub codec_modules: &'a [&'a str],
    /// `audio_codecs` account parameter (e.g. `opus/48000/2`), a second fence.
    pub audio_codecs: &'a str,
    /// URI dialled at start (`-e /dial ...`).
    pub dial: String,
    /// baresip quits (hanging up with BYE) after this many seconds (`-t`).
    pub quit_after_s: u32,
}

/// A running baresip: config in `<work>/<label>/`, stdout (with the SIP trace, `-s`) in
/// `<label>.out`, and what it hears (its decoder's output, `sndfile` module) as
/// `<label>/rec/dump-...-dec.wav`.
pub struct BaresipPeer {
    child: Option<Child>,
    pub dir: PathBuf,
    pub out: PathBuf,
    quit_after: Duration,
}

pub struct BaresipRun {
    pub status: Option<ExitStatus>,
    /// stdout and stderr (SIP trace included).
    pub output: String,
    /// The recording of what it heard (`*-dec.wav`), if one was written.
    pub heard: Option<PathBuf>,
    /// What it sent, after its encoder's input filters (`*-enc.wav`).
    pub sent: Option<PathBuf>,
}

impl BaresipRun {
    /// The SDP bodies in the SIP trace, in order (offer first).
    pub fn sdp_bodies(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur: Option<String> = None;
        for line in self.output.lines() {
            let l = line.trim_end();
            if l == "v=0" {
                if let Some(b) = cur.take() {
                    out.push(b);
                }
                cur = Some(String::new());
            }
            if let Some(b) = cur.as_mut() {
                if l.len() > 1 && l.as_bytes()[1] == b'=' && l.as_bytes()[0].is_ascii_lowercase() {
                    b.push_str(l);
                    b.push('\n');
                } else if !l.is_empty() {
                    out.push(cur.take().unwrap());
                }
            }
        }
        out.extend(cur);
        out
    }

    pub fn assert_ok(&self) {
        assert!(
            matches!(self.status, Some(s) if s.success()),
            "baresip failed: {}\n{}",
            describe(self.status),
            truncate(&self.output, 6000)
        );
    }
}

impl BaresipPeer {
    pub fn spawn(env: &TestEnv, label: &str, cfg: &BaresipConfig) -> BaresipPeer {
        let baresip = require_tool("baresip");
        let dir = env.path(label);
        let rec = dir.join("rec");
        fs::create_dir_all(&rec).expect("baresip dir");
        let mut config = format!(
            "poll_method\tepoll\n\
             sip_listen\t127.0.0.1:{sip}\n\
             net_interface\t127.0.0.1\n\
             audio_player\talsa,null\n\
             audio_alert\talsa,null\n\
             audio_source\taufile,{play}\n\
             audio_srate\t{srate}\n\
             audio_channels\t1\n\
             rtp_ports\t{lo}-{hi}\n\
             module_path\t/usr/lib/baresip/modules\n",
            sip = cfg.sip_port,
            play = cfg.play.display(),
            srate = cfg.srate,
            lo = cfg.rtp_ports.0,
            hi = cfg.rtp_ports.1,
        );
        for m in cfg.codec_modules {
            config.push_str(&format!("module\t{m}\n"));
        }
        config.push_str(&format!(
            "module\taufile.so\nmodule\talsa.so\nmodule\tsndfile.so\n\
             module_app\taccount.so\nmodule_app\tmenu.so\n\
             snd_path\t{}\n\
             opus_stereo\tno\nopus_sprop_stereo\tno\n",
            rec.display()
        ));
        fs::write(dir.join("config"), config).expect("baresip config");
        fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{}@127.0.0.1:{}>;regint=0;audio_codecs={}\n",
                cfg.user, cfg.sip_port, cfg.audio_codecs
            ),
        )
        .expect("baresip accounts");
        fs::write(dir.join("contacts"), "").expect("baresip contacts");
        let out = env.path(&format!("{label}.out"));
        env.report_on_failure(&out);
        let log = File::create(&out).expect("baresip output");
        let mut cmd = Command::new(baresip);
        let child = die_with_parent(&mut cmd)
            .arg("-f")
            .arg(&dir)
            .arg("-s")
            .args(["-e", &format!("/dial {}", cfg.dial)])
            .args(["-t", &cfg.quit_after_s.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start baresip: {e}"));
        BaresipPeer {
            child: Some(child),
            dir,
            out,
            quit_after: Duration::from_secs(cfg.quit_after_s as u64),
        }
    }

    /// Waits for baresip to quit on its own (`-t`), 15 s grace; then reads its files.
    pub fn wait(mut self) -> BaresipRun {
        let mut child = self.child.take().expect("child");
        let status = wait_timeout(&mut child, self.quit_after + Duration::from_secs(15));
        let output = String::from_utf8_lossy(&fs::read(&self.out).unwrap_or_default()).to_string();
        let find = |suffix: &str| {
            let mut files: Vec<PathBuf> = fs::read_dir(self.dir.join("rec"))
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.retain(|p| p.to_string_lossy().ends_with(suffix));
            files.sort();
            files.pop()
        };
        BaresipRun {
            status,
            output,
            heard: find("-dec.wav"),
            sent: find("-enc.wav"),
        }
    }
}

impl Drop for BaresipPeer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                signal(&child, libc::SIGTERM);
                wait_timeout(&mut child, Duration::from_secs(3));
            }
        }
    }
}

/// The active participants of room `number` (REST, reference 000); none if no such room.
#[allow(dead_code)]
pub fn room_participants(server: &Server, number: &str) -> Vec<Value> {
    let rooms = server.get("/rest/v1/uc/conferences").json();
    let Some(room) = rooms.as_array().and_then(|a| a.iter().find(|r| r["confroomnum"] == number)) else { return Vec::new() };
    let confid = room["confid"].as_str().unwrap().to_owned();
    let r = server.get(&format!("/rest/v1/uc/conferences/{confid}/participants"));
    r.json().as_array().cloned().unwrap_or_default().into_iter().filter(|p| p["state"] == "active").collect()
}

/// How often `needle` occurs in the server's log so far.
#[allow(dead_code)]
pub fn log_count(server: &Server, needle: &str) -> usize {
    fs::read_to_string(&server.log).unwrap_or_default().matches(needle).count()
}
