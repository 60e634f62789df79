//! Browsers as callers (issue 12, reference 004): headless Chromium runs a page written
//! against the unmodified `@flashphoner/websdk` (installed from npm by
//! scripts/install-test-deps), which connects to Switchboard's WebSocket at `/` and
//! calls real pjsua2 phones through it; a backend written here receives the REST hooks.
//!
//! - a browser calls a SIP phone: each hears the other's tone (the phone's recording,
//!   the page's WebAudio analyser), the page sees ESTABLISHED, hangs up and sees
//!   FINISH, the phone gets BYE, and the backend got `connect`, `call` and every
//!   `CallStatusEvent` with `nodeId`, `sessionId` and `appKey`;
//! - the backend refuses `call` (403): the call fails and no INVITE goes out; the
//!   backend rewrites `callee`: the INVITE goes to the new target;
//! - a SIP phone calls the browser's SIP identity: the page answers, and both
//!   directions carry audio;
//! - the server REST API (`/rest-api/call/…`) finds the live call, refuses what it
//!   cannot find, and `inject_sound` plays a file to the phone in place of the
//!   browser's audio, which resumes after it;
//! - event hooks are signed (`Authorization: WCS <HMAC-MD5>`, checked here) and
//!   lossless: a backend answering 503 gets the first event again and nothing after it;
//!   `apps hooks` shows the backlog; after `kill -9` and a restart, every event arrives
//!   once, in order;
//! - a page connecting with `keepAlive` drops its socket and connects again with only
//!   the session's `authToken`: it gets the same SIP identity and token back, still
//!   registered, and takes a phone's call with audio both ways;
//! - `/rest-api/call/startup` places a call with no browser as the account it names:
//!   the phone hears silence, then the injected sound, then gets the digits sent to it
//!   and the BYE of `terminate`; the backend gets the call's `CallStatusEvent`s;
//! - the legacy client's `sendMessage` (the 2.0 SDK has none, so a bare WebSocket client
//!   speaks the protocol): a pjsua2 phone gets the SIP MESSAGE and the client gets
//!   `notifyMessage` ACCEPTED; a backend refusing `sendMessage` stops it (FAILED).

mod support;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::browser::{self, browser_tone};
use support::*;

const DOMAIN: &str = "switchboard.test";
const PASSWORD: &str = "correct-horse-7";

/// The page server and hook receiver: GET /phone.html, GET /sdk/<file> (the npm
/// package's bundles), POST /hooks/<method> (recorded, answered from `answers`, else 200
/// with the body echoed).
struct Backend {
    addr: SocketAddr,
    hooks: Arc<Mutex<Vec<(String, Value)>>>,
    answers: Arc<Mutex<HashMap<String, (u16, Value)>>>,
    /// With a secret: how many hook requests carried a good `Authorization`, and the
    /// ones that did not.
    signatures: Arc<Mutex<(usize, Vec<String>)>>,
}

/// What `serve` needs of the backend.
struct Shared {
    hooks: Arc<Mutex<Vec<(String, Value)>>>,
    answers: Arc<Mutex<HashMap<String, (u16, Value)>>>,
    secret: Option<String>,
    signatures: Arc<Mutex<(usize, Vec<String>)>>,
}

impl Backend {
    fn start() -> Backend {
        Backend::start_signed(None)
    }

    /// A backend that checks every hook's `Authorization: WCS <hex HMAC-MD5 of the body>`.
    fn start_signed(secret: Option<&str>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let backend = Backend { addr, hooks: Default::default(), answers: Default::default(), signatures: Default::default() };
        let shared = Arc::new(Shared { hooks: backend.hooks.clone(), answers: backend.answers.clone(), secret: secret.map(str::to_owned), signatures: backend.signatures.clone() });
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(conn, &shared));
            }
        });
        backend
    }

    fn answer(&self, method: &str, status: u16, body: Value) {
        self.answers.lock().unwrap().insert(method.into(), (status, body));
    }

    fn got(&self, method: &str) -> Vec<Value> {
        self.hooks.lock().unwrap().iter().filter(|(m, _)| m == method).map(|(_, b)| b.clone()).collect()
    }

    /// Waits (events are delivered from the server's outbox, a moment after they
    /// happen) for a `method` hook whose body matches.
    fn wait_for(&self, method: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        poll(Duration::from_secs(10), what, || self.got(method).into_iter().find(|b| pred(b)))
    }

    fn names(&self) -> Vec<String> {
        self.hooks.lock().unwrap().iter().map(|(m, _)| m.clone()).collect()
    }
}

fn serve(mut conn: TcpStream, shared: &Shared) {
    let (hooks, answers) = (&shared.hooks, &shared.answers);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let mut len = 0usize;
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if h.to_ascii_lowercase().starts_with("authorization:") {
            authorization = Some(h["authorization:".len()..].trim().to_owned());
        }
    }
    let mut body = vec![0u8; len];
    let _ = reader.read_exact(&mut body);
    let reply = |conn: &mut TcpStream, status: u16, ctype: &str, body: &[u8]| {
        let head = format!("HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", if status == 200 { "OK" } else { "Refused" }, body.len());
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
    };
    let path_only = path.split('?').next().unwrap_or("").to_owned();
    if method == "GET" && path_only == "/phone.html" {
        let page = std::fs::read(kit_dir().join("wcs/phone.html")).expect("phone.html");
        return reply(&mut conn, 200, "text/html", &page);
    }
    if method == "GET" && path_only.starts_with("/sdk/") {
        let file = browser::node_dir().join("node_modules/@flashphoner/websdk").join(path_only.trim_start_matches("/sdk/"));
        return match std::fs::read(&file) {
            Ok(js) => reply(&mut conn, 200, "application/javascript", &js),
            Err(_) => reply(&mut conn, 404, "text/plain", b"no such file"),
        };
    }
    if method == "POST" && path_only.starts_with("/hooks/") {
        let name = path_only.trim_start_matches("/hooks/").to_owned();
        if let Some(secret) = &shared.secret {
            use hmac::Mac;
            let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(&body);
            let want: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let mut sig = shared.signatures.lock().unwrap();
            if authorization.as_deref() == Some(&format!("WCS {want}")) {
                sig.0 += 1;
            } else {
                sig.1.push(format!("{name}: {authorization:?}"));
                drop(sig);
                return reply(&mut conn, 403, "application/json", b"{}");
            }
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        hooks.lock().unwrap().push((name.clone(), v.clone()));
        let (status, answer) = answers.lock().unwrap().get(&name).cloned().unwrap_or((200, v));
        return reply(&mut conn, status, "application/json", answer.to_string().as_bytes());
    }
    reply(&mut conn, 404, "text/plain", b"not here")
}

fn server(env: &TestEnv, backend: &Backend) -> Server {
    server_with(env, backend, "")
}

/// `wcs`: more `[wcs]` lines.
fn server_with(env: &TestEnv, backend: &Backend, wcs: &str) -> Server {
    let cfg = env.path("switchboard.toml");
    let sounds = env.work.display();
    std::fs::write(&cfg, format!("[mx]\nadmin_listen = \"\"\n[wcs]\nrest_url = \"http://{}/hooks\"\nhook_timeout_s = 5\nsounds_dir = \"{sounds}\"\n{wcs}", backend.addr)).expect("config");
    Server::start_with(env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() })
}

fn directory(env: &TestEnv) {
    let users = [("alice", "3044"), ("bob", "3045"), ("carol", "3046")].map(|(l, e)| new_user(DOMAIN, l, e, PASSWORD));
    seed_directory(env, DOMAIN, &users);
}

/// Opens the phone page in headless Chromium; returns its `__result`.
fn run_page(env: &TestEnv, backend: &Backend, server: &Server, query: &str, timeout_ms: u64) -> Value {
    run_page_at(&browser_tone(env), &env.path("page.log"), backend.addr, server.http, query, timeout_ms)
}

fn run_page_at(tone: &std::path::Path, log: &std::path::Path, backend: SocketAddr, http: SocketAddr, query: &str, timeout_ms: u64) -> Value {
    browser::npm_file("@flashphoner/websdk/flashphoner-webrtc-only.js");
    let url = format!("http://{backend}/phone.html?ws=ws://{http}&domain={DOMAIN}&password={PASSWORD}&timeout={}&{query}", timeout_ms.saturating_sub(3000));
    browser::run_page(&url, tone, log, timeout_ms)
}

fn statuses(page: &Value) -> Vec<String> {
    page["statuses"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn phone_args(env: &TestEnv, server: &Server, mode: &str, user: &str, slot: u16, extra: &[&str]) -> Vec<String> {
    let (rtp, range) = env.ports.phone_rtp(slot);
    let mut v: Vec<String> = vec![mode.into()];
    if let Some(uri) = extra.first().filter(|a| a.starts_with("sip:")) {
        v.push(uri.to_string());
    }
    v.extend(
        [
            "--registrar", &format!("sip:{DOMAIN}"), "--proxy", &format!("sip:{};lr", server.sip), "--domain", DOMAIN, "--user", user, "--password", PASSWORD,
            "--sip-port", &env.ports.peer_sip(slot).to_string(), "--rtp-port", &rtp.to_string(), "--rtp-range", &range.to_string(), "--codec", "PCMU/8000",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v.extend(extra.iter().filter(|a| !a.starts_with("sip:")).map(|s| s.to_string()));
    v
}

fn wait_registered(server: &Server, login: &str) {
    poll(Duration::from_secs(15), &format!("{login} registered"), || {
        let regs: Value = server.get("/v1/registrations").json();
        regs.as_array()?.iter().any(|r| r["login"] == login).then_some(())
    });
}

/// bob's pjsua2 phone calls alice for 6 s, playing 1000 Hz and recording into `rec`.
fn bob_calls_alice(env: &TestEnv, server: &Server, rec: &std::path::Path) -> PjPeer {
    let tone1000 = env.path("tone1000.wav").display().to_string();
    let args = [&format!("sip:alice@{DOMAIN}"), "--play", &tone1000, "--loop", "--record", &rec.display().to_string(), "--duration", "6", "--max-time", "40"];
    PjPeer::spawn(env, "bob", &phone_args(env, server, "call", "bob", 0, &args))
}

/// `chime1600.wav`, a 1.5 s sound for inject_sound, in the sounds folder (`[wcs] sounds_dir`).
fn make_chime(env: &TestEnv) {
    let ok = Command::new(require_tool("sox"))
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(env.path("chime1600.wav"))
        .args(["synth", "1.5", "sine", "1600", "vol", "0.5"])
        .status()
        .expect("sox");
    assert!(ok.success(), "sox made the sound to inject");
}

fn near(hz: Option<i64>, want: i64) -> bool {
    hz.is_some_and(|h| (h - want).abs() <= 30)
}

#[test]
fn a_browser_calls_a_sip_phone_and_the_backend_hears_every_step() {
    let env = TestEnv::new("wcs_browser_calls_phone");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);

    let bob_rx = env.path("bob_rx.wav");
    env.report_on_failure(&bob_rx);
    let tone1000 = env.path("tone1000.wav").display().to_string();
    let mut bob = PjPeer::spawn(&env, "bob", &phone_args(&env, &server, "answer", "bob", 0, &["--answer-after", "1", "--play", &tone1000, "--loop", "--record", &bob_rx.display().to_string(), "--max-time", "60"]));
    bob.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob");

    make_chime(&env);

    // The page talks for 8 s; meanwhile the server REST API acts on its call.
    let (page, inject_at) = std::thread::scope(|s| {
        let (tone, log, (backend, http)) = (browser_tone(&env), env.path("page.log"), (backend.addr, server.http));
        let page = s.spawn(move || run_page_at(&tone, &log, backend, http, "mode=call&login=alice&callee=bob&talk=8", 40_000));
        let call = poll(Duration::from_secs(20), "the browser's call ESTABLISHED in /rest-api/call/find_all", || {
            let calls = server.post("/rest-api/call/find_all", &json!({})).json();
            calls.as_array()?.iter().find(|c| c["status"] == "ESTABLISHED").cloned()
        });
        let answered = std::time::Instant::now();
        let id = call["callId"].as_str().expect("callId").to_owned();
        assert_eq!((&call["callee"], &call["incoming"]), (&json!("bob"), &json!(false)), "{call}");
        let found = server.post("/rest-api/call/find", &json!({"callee": "bob"}));
        assert!(found.status == 200 && found.json().as_array().is_some_and(|a| a.len() == 1 && a[0]["callId"] == id.as_str()), "find by callee: {}", found.body);
        for (path, body, why) in [
            ("find", json!({"callee": "nobody"}), "no call matches"),
            ("inject_sound", json!({"callId": "no-such-call", "fileName": "chime1600.wav"}), "call not found"),
            ("inject_sound", json!({"callId": id, "fileName": "no-such-file"}), "file not found"),
            ("inject_sound", json!({"callId": id, "fileName": "../switchboard.toml"}), "file not found"),
            ("terminate", json!({"callId": "no-such-call"}), "call not found"),
        ] {
            let r = server.post(&format!("/rest-api/call/{path}"), &body);
            assert_eq!((r.status, r.json()["error_code"].as_i64()), (404, Some(404)), "{path} {body}: {}", r.body);
            assert_eq!(r.json()["error_message"], why, "{path} {body}: {}", r.body);
        }
        let bad = server.request("POST", "/rest-api/call/inject_sound", Some("[1,2"));
        assert_eq!(bad.status, 400, "a body that is not a JSON object: {}", bad.body);
        // 2.5 s into the call, the sound (".wav" left out, as WCS allows).
        std::thread::sleep(Duration::from_millis(2500).saturating_sub(answered.elapsed()));
        let inject_at = answered.elapsed().as_secs_f64();
        let r = server.post("/rest-api/call/inject_sound", &json!({"callId": id, "fileName": "chime1600"}));
        assert_eq!(r.status, 200, "inject_sound: {}", r.body);
        (page.join().expect("page thread"), inject_at)
    });
    let st = statuses(&page);
    assert!(st.contains(&"TRYING".into()) && st.contains(&"ESTABLISHED".into()), "the page saw TRYING and ESTABLISHED: {page}");
    assert_eq!(st.last().map(String::as_str), Some("FINISH"), "the page's call ended with FINISH: {page}");
    assert!(near(page["peakHz"].as_i64(), 1000), "the browser hears bob's 1000 Hz: {page}");

    // The page hung up: bob got a BYE and his pjsua2 exits on its own.
    bob.wait().assert_ok();
    // bob's recording starts at the answer, which the REST API saw within a poll.
    tone_check(&bob_rx).window(1.0, Some(inject_at - 0.2)).expect(&[600]).absent(&[1000, 1600]).assert("bob hears the browser's 600 Hz");
    tone_check(&bob_rx)
        .window(inject_at + 0.4, Some(inject_at + 1.3))
        .expect(&[1600])
        .absent(&[600, 1000])
        .assert("bob hears the injected 1600 Hz instead of the browser");
    tone_check(&bob_rx).window(inject_at + 2.2, Some(inject_at + 4.0)).expect(&[600]).absent(&[1600]).assert("the browser's 600 Hz is back after the sound");

    backend.wait_for("CallStatusEvent", "FINISH reached the backend", |e| e["status"] == "FINISH");
    let names = backend.names();
    for m in ["connect", "call", "CallStatusEvent", "ConnectionStatusEvent"] {
        assert!(names.iter().any(|n| n == m), "the backend got {m}: {names:?}");
    }
    let call = &backend.got("call")[0];
    assert_eq!(call["callee"], "bob", "{call}");
    assert_eq!(call["caller"], "alice", "{call}");
    let statuses_seen: Vec<String> = backend.got("CallStatusEvent").iter().map(|e| e["status"].as_str().unwrap_or("").to_owned()).collect();
    for s in ["TRYING", "ESTABLISHED", "FINISH"] {
        assert!(statuses_seen.iter().any(|x| x == s), "CallStatusEvent {s} reached the backend: {statuses_seen:?}");
    }
    for (m, b) in backend.hooks.lock().unwrap().iter() {
        for k in ["nodeId", "sessionId", "appKey"] {
            assert!(b[k].as_str().is_some_and(|v| !v.is_empty()), "{m} carries {k}: {b}");
        }
        assert_eq!(b["appKey"], "defaultApp", "{m}: {b}");
    }
    let established = backend.got("CallStatusEvent").into_iter().find(|e| e["status"] == "ESTABLISHED").unwrap();
    assert!(established["sipMessageRaw"].as_str().is_some_and(|r| r.starts_with("SIP/2.0 200")), "ESTABLISHED carries the raw 200: {established}");
    // The call is an engine call like any other: in the call log.
    let calls: Value = server.get("/v1/calls?kind=call").json();
    assert!(calls.as_array().is_some_and(|a| a.iter().any(|c| c["caller"]["login"] == "alice" || c["caller"]["ext"] == "3044")), "the browser's call is in /v1/calls: {calls}");
}

#[test]
fn the_backend_refuses_a_call_or_sends_it_elsewhere() {
    let env = TestEnv::new("wcs_hooks_refuse_alter");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);
    let mut bob = PjPeer::spawn(&env, "bob", &phone_args(&env, &server, "answer", "bob", 0, &["--answer-after", "1", "--max-time", "25"]));
    bob.wait_ready(Duration::from_secs(10));
    let mut carol = PjPeer::spawn(&env, "carol", &phone_args(&env, &server, "answer", "carol", 1, &["--answer-after", "1", "--hangup-after", "3", "--max-time", "60"]));
    carol.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob");
    wait_registered(&server, "carol");

    // 1. 403 to `call`: the page's call fails and no INVITE leaves.
    backend.answer("call", 403, json!({"status": 403, "reason": "no credit left"}));
    let page = run_page(&env, &backend, &server, "mode=call&login=alice&callee=bob&talk=2", 30_000);
    assert_eq!(statuses(&page).last().map(String::as_str), Some("FAILED"), "{page}");
    let failed = backend.wait_for("CallStatusEvent", "FAILED reached the backend", |e| e["status"] == "FAILED");
    assert_eq!(failed["info"], "no credit left", "the backend's own reason: {failed}");
    let calls: Value = server.get("/v1/calls?kind=call").json();
    assert_eq!(calls.as_array().map(Vec::len), Some(0), "no INVITE went out, so no call: {calls}");

    // 2. The backend redirects the call to carol (OVERWRITE of `callee`).
    backend.answer("connect", 200, json!({"restClientConfig": {"call": {"restPolicy": "OVERWRITE", "restOverwrite": "callee"}}}));
    backend.answer("call", 200, json!({"callee": "carol"}));
    let page = run_page(&env, &backend, &server, "mode=call&login=alice&callee=bob&talk=0", 30_000);
    assert!(statuses(&page).contains(&"ESTABLISHED".into()), "{page}");
    carol.wait().assert_ok();
    let calls: Value = server.get("/v1/calls?kind=call").json();
    let c = &calls.as_array().expect("calls")[0];
    assert_eq!(c["callee"]["ext"], "3046", "the INVITE went to carol: {c}");
    // bob waits out his max-time without a call.
    let _ = bob.wait();
    let log = std::fs::read_to_string(env.path("bob.pj.log")).unwrap_or_default();
    assert!(!log.contains("INVITE sip:bob") && !log.contains("INVITE sip:3045"), "bob never got an INVITE");

    // 3. An app whose backend gets only `connect` and `CallStatusEvent` (WCS's per-app
    // REST methods): `call` is not POSTed, so the backend's 403 cannot stop the call,
    // which goes out and fails on the SIP side (nobody is no user).
    backend.answer("call", 403, json!({"status": 403, "reason": "no credit left"}));
    let app = server.post("/v1/apps", &json!({"client_id": "shop", "rest_url": format!("http://{}/hooks", backend.addr), "rest_methods": ["connect", "CallStatusEvent", "connect"]}));
    assert_eq!(app.status, 201, "{}", app.body);
    assert_eq!(app.json()["rest_methods"], json!(["connect", "CallStatusEvent"]), "{}", app.body);
    let bad = server.post("/v1/apps", &json!({"client_id": "shop2", "rest_url": "http://127.0.0.1:9/hooks", "rest_methods": ["call,hangup"]}));
    assert_eq!(bad.status, 400, "a method list entry that is not a name: {}", bad.body);
    let page = run_page(&env, &backend, &server, "mode=call&login=alice&callee=nobody&talk=0&app=shop", 30_000);
    assert_eq!(statuses(&page).last().map(String::as_str), Some("FAILED"), "{page}");
    backend.wait_for("CallStatusEvent", "FAILED reached the shop backend", |e| e["appKey"] == "shop" && e["status"] == "FAILED");
    let shop: Vec<(String, Value)> = backend.hooks.lock().unwrap().iter().filter(|(_, b)| b["appKey"] == "shop").cloned().collect();
    let names: Vec<&str> = shop.iter().map(|(m, _)| m.as_str()).collect();
    assert!(names.contains(&"connect") && names.contains(&"CallStatusEvent"), "the shop backend got connect and CallStatusEvent: {names:?}");
    assert!(names.iter().all(|m| ["connect", "CallStatusEvent"].contains(m)), "and nothing else: {names:?}");
    let failed = shop.iter().find(|(m, b)| m == "CallStatusEvent" && b["status"] == "FAILED").map(|(_, b)| b.clone()).expect("FAILED reached the shop backend");
    assert_ne!(failed["info"], "no credit left", "the SIP side failed the call, not the backend: {failed}");
    // Every hook again: `*`.
    let all = server.request("PATCH", "/v1/apps/shop", Some(&json!({"rest_methods": ["*"]}).to_string()));
    assert_eq!((all.status, all.json()["rest_methods"].clone()), (200, Value::Null), "{}", all.body);

    // 4. Events cannot refuse, but under `restOnError: FAIL` a refused one reaches the
    // page as an `ErrorEvent` (the SDK's session WARN); under LOG only the log hears it.
    backend.answer("connect", 200, json!({"restClientConfig": {"ConnectionStatusEvent": {"restOnError": "FAIL"}, "RegistrationStatusEvent": {"restOnError": "LOG"}}}));
    backend.answer("ConnectionStatusEvent", 403, json!({}));
    backend.answer("RegistrationStatusEvent", 403, json!({}));
    let page = run_page(&env, &backend, &server, "mode=call&login=alice&callee=nobody&talk=0", 30_000);
    let warns: Vec<String> = page["events"].as_array().into_iter().flatten().filter_map(|e| e["v"].as_str()).filter(|v| v.starts_with("WARN ")).map(str::to_owned).collect();
    assert!(
        warns.iter().any(|w| w.contains("\"apiMethod\":\"ErrorEvent\"") && w.contains("ConnectionStatusEvent refused by the backend: 403")),
        "the page got an ErrorEvent for the refused ConnectionStatusEvent: {warns:?}"
    );
    assert!(!warns.iter().any(|w| w.contains("RegistrationStatusEvent refused")), "a refusal under LOG stays in the log: {warns:?}");
    assert_eq!(statuses(&page).last().map(String::as_str), Some("FAILED"), "the session went on: its call was placed (and failed on the SIP side): {page}");
}

#[test]
fn event_hooks_are_signed_and_survive_a_backend_outage_and_kill_9_in_order() {
    const SECRET: &str = "hook-secret-9";
    const EVENTS: [&str; 3] = ["ConnectionStatusEvent", "RegistrationStatusEvent", "CallStatusEvent"];
    let env = TestEnv::new("wcs_event_hooks_kill9");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let backend = Backend::start_signed(Some(SECRET));
    let wcs = format!("hook_secret = \"{SECRET}\"\nevent_retry_max_s = 1\n");
    let mut server = server_with(&env, &backend, &wcs);
    let data = env.path("data").display().to_string();
    let backlog = |label: &str| -> Value {
        let r = run_cli(&env, label, &["apps", "hooks", "--json", "--data-dir", &data], Duration::from_secs(20));
        assert!(r.success(), "apps hooks: {}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("apps hooks --json: {e}: {}", r.stdout))
    };

    // The backend is down for events (503); invocations still get their 200.
    for e in EVENTS {
        backend.answer(e, 503, json!({}));
    }
    let page = run_page(&env, &backend, &server, "mode=call&login=alice&callee=nobody&talk=0", 30_000);
    assert_eq!(statuses(&page).last().map(String::as_str), Some("FAILED"), "{page}");
    let is_event = |m: &str| EVENTS.contains(&m);
    // The head is tried again and again (1 s apart at most), and nothing behind it.
    let head = poll(Duration::from_secs(15), "the first event tried three times", || {
        let tried: Vec<(String, Value)> = backend.hooks.lock().unwrap().iter().filter(|(m, _)| is_event(m)).cloned().collect();
        (tried.len() >= 3).then_some(tried)
    });
    assert!(head.iter().all(|h| h == &head[0]), "only the head is retried, unchanged: {head:?}");
    // Let the session's last events (its DISCONNECTED) be stored.
    std::thread::sleep(Duration::from_secs(2));
    let queued = backlog("hooks_before");
    let q = queued.as_array().and_then(|a| a.iter().find(|q| q["app"] == "defaultApp")).unwrap_or_else(|| panic!("defaultApp's backlog: {queued}"));
    let pending = q["pending"].as_u64().unwrap();
    assert!(pending >= 3, "the connection's, registration's and call's events wait: {q}");
    assert_eq!(q["last_status"], 503, "{q}");
    assert!(q["attempts"].as_u64().unwrap() >= 2, "{q}");
    // The same over the API.
    let api: Value = server.get("/v1/wcs/hooks").json();
    let a = api.as_array().and_then(|a| a.iter().find(|q| q["app"] == "defaultApp")).unwrap_or_else(|| panic!("GET /v1/wcs/hooks: {api}"));
    assert_eq!((a["pending"].as_u64(), a["last_status"].as_u64()), (Some(pending), Some(503)), "{a}");

    // kill -9 with every event pending; the backend recovers; restart on the same data.
    let mark = backend.hooks.lock().unwrap().len();
    server.stop_with(libc::SIGKILL, Duration::from_secs(5));
    backend.answers.lock().unwrap().clear();
    let server = server_with(&env, &backend, &wcs);
    let delivered = poll(Duration::from_secs(30), "every pending event delivered after the restart", || {
        let after: Vec<(String, Value)> = backend.hooks.lock().unwrap()[mark..].to_vec();
        (after.len() as u64 >= pending).then_some(after)
    });
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<(String, Value)> = backend.hooks.lock().unwrap()[mark..].to_vec();
    assert_eq!(after.len() as u64, pending, "each event exactly once: {after:?}");
    assert!(delivered.iter().all(|(m, _)| is_event(m)), "only events: {delivered:?}");
    assert_eq!(after[0], head[0], "the first is the one refused before the kill");
    let mut bodies: Vec<String> = after.iter().map(|(m, b)| format!("{m} {b}")).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), after.len(), "no event twice: {after:?}");
    // In the order they happened: the call's statuses as the page saw them.
    let call_statuses: Vec<String> = after.iter().filter(|(m, _)| m == "CallStatusEvent").map(|(_, b)| b["status"].as_str().unwrap_or("").to_owned()).collect();
    println!("page saw {:?}; the backend got {call_statuses:?}", statuses(&page));
    assert_eq!(call_statuses, statuses(&page), "the backend got the call's statuses in order");
    let conn: Vec<&str> = after.iter().filter(|(m, _)| m == "ConnectionStatusEvent").map(|(_, b)| b["status"].as_str().unwrap_or("")).collect();
    assert_eq!(conn.first(), Some(&"ESTABLISHED"), "{after:?}");
    assert_eq!(conn.last(), Some(&"DISCONNECTED"), "{after:?}");
    let sig = backend.signatures.lock().unwrap().clone();
    assert!(sig.1.is_empty(), "every hook signed with the secret: {:?}", sig.1);
    assert!(sig.0 >= mark + after.len(), "{} good signatures", sig.0);
    assert_eq!(backlog("hooks_after"), json!([]), "nothing waits any more");
    assert_eq!(server.get("/v1/wcs/hooks").json(), json!([]), "nothing waits any more, over the API");
    drop(server);
}

#[test]
fn a_sip_phone_calls_the_browser_which_answers() {
    let env = TestEnv::new("wcs_phone_calls_browser");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);
    let bob_rx = env.path("bob_rx.wav");
    env.report_on_failure(&bob_rx);

    // The page registers as alice and waits; once alice is registered, bob calls her.
    let url_query = "mode=answer&login=alice&talk=0";
    let (tx, rx) = std::sync::mpsc::channel();
    let (tone, log, backend_addr, http) = (browser_tone(&env), env.path("page.log"), backend.addr, server.http);
    std::thread::scope(|s| {
        s.spawn(move || {
            let v = run_page_at(&tone, &log, backend_addr, http, url_query, 45_000);
            tx.send(v).ok();
        });
        wait_registered(&server, "alice");
        bob_calls_alice(&env, &server, &bob_rx).wait().assert_ok();
    });
    let page = rx.recv().expect("page result");
    let st = statuses(&page);
    assert!(st.contains(&"RING".into()) && st.contains(&"ESTABLISHED".into()), "{page}");
    assert_eq!(st.last().map(String::as_str), Some("FINISH"), "bob's BYE ended the page's call: {page}");
    assert!(near(page["peakHz"].as_i64(), 1000), "the browser hears bob's 1000 Hz: {page}");
    tone_check(&bob_rx).window(2.5, Some(5.5)).expect(&[600]).absent(&[1000]).assert("bob hears the browser's 600 Hz");
    // bob's phone offers only PCMU, so the browser leg is G.711 too: the bridge relays
    // it without transcoding.
    let calls: Value = server.get("/v1/calls?kind=call").json();
    let c = &calls.as_array().expect("calls")[0];
    assert_eq!((c["caller_codec"].as_str(), c["callee_codec"].as_str()), (Some("PCMU"), Some("PCMU")), "{c}");
    let names = backend.names();
    assert!(names.iter().any(|n| n == "OnCallEvent"), "the backend was asked about the incoming call: {names:?}");
    assert!(names.iter().any(|n| n == "RegistrationStatusEvent"), "{names:?}");
}

#[test]
fn a_kept_session_is_reattached_by_its_token_and_takes_calls() {
    let env = TestEnv::new("wcs_keep_alive");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);
    let bob_rx = env.path("bob_rx.wav");
    env.report_on_failure(&bob_rx);

    // The page connects with keepAlive, registers as alice, drops its socket, and
    // connects again with nothing but the session's authToken; then bob calls alice.
    let (tx, rx) = std::sync::mpsc::channel();
    let (tone, log, backend_addr, http) = (browser_tone(&env), env.path("page.log"), backend.addr, server.http);
    std::thread::scope(|s| {
        s.spawn(move || {
            let v = run_page_at(&tone, &log, backend_addr, http, "mode=answer&login=alice&talk=0&keep=1", 45_000);
            tx.send(v).ok();
        });
        poll(Duration::from_secs(30), "the page re-attached to its kept session", || (log_count(&server, "kept WCS session re-attached") == 1).then_some(()));
        wait_registered(&server, "alice");
        bob_calls_alice(&env, &server, &bob_rx).wait().assert_ok();
    });
    let page = rx.recv().expect("page result");
    assert_eq!(page["reattached"]["sipLogin"], "alice", "the second socket got the session's SIP identity back: {page}");
    assert_eq!(page["reattached"]["sameToken"], true, "and the same authToken: {page}");
    // Kept when the first socket closed (and again when the page ended).
    assert!(log_count(&server, "keeping its session (keepAlive)") >= 1, "the first socket's close kept the session");
    let st = statuses(&page);
    assert!(st.contains(&"RING".into()) && st.contains(&"ESTABLISHED".into()), "the re-attached page took bob's call: {page}");
    assert!(near(page["peakHz"].as_i64(), 1000), "the browser hears bob's 1000 Hz: {page}");
    tone_check(&bob_rx).window(2.5, Some(5.5)).expect(&[600]).absent(&[1000]).assert("bob hears the browser's 600 Hz");
    // One session all along, as the backend sees it: ESTABLISHED twice, one sessionId,
    // and the SIP identity registered once.
    backend.wait_for("CallStatusEvent", "the call's FINISH reached the backend", |e| e["status"] == "FINISH");
    let conns: Vec<Value> = backend.got("ConnectionStatusEvent").into_iter().filter(|e| e["status"] == "ESTABLISHED").collect();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[0]["sessionId"], conns[1]["sessionId"], "{conns:?}");
    let regs: Vec<Value> = backend.got("RegistrationStatusEvent");
    assert_eq!(regs.iter().filter(|e| e["status"] == "REGISTERED").count(), 1, "registered once, kept across sockets: {regs:?}");
    assert_eq!(backend.got("connect").len(), 1, "the backend authenticated the session once: {:?}", backend.names());
}

#[test]
fn the_browser_sends_dtmf_holds_and_transfers_on_the_sip_side() {
    let env = TestEnv::new("wcs_dtmf_hold_transfer");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);
    // bob: a phone reporting what it hears (events file), answering every call.
    let bob = support::phone::Phone::start(&env, &server, 0, ("bob", DOMAIN, PASSWORD), 1000, None, &[]);
    let mut carol = PjPeer::spawn(&env, "carol", &phone_args(&env, &server, "answer", "carol", 1, &["--hangup-after", "2", "--max-time", "40"]));
    carol.wait_ready(Duration::from_secs(10));
    wait_registered(&server, "bob");
    wait_registered(&server, "carol");

    // alice calls bob, keys 5, holds and resumes, then transfers bob to carol.
    let page = run_page(&env, &backend, &server, "mode=call&login=alice&callee=bob&dtmf=5&hold=1&transfer=carol&talk=0", 40_000);
    let st = statuses(&page);
    assert!(st.contains(&"HOLD".into()), "the page saw HOLD (the SIP side's re-INVITE succeeded): {page}");
    let after_hold = st.iter().skip_while(|s| *s != "HOLD").any(|s| s == "ESTABLISHED");
    assert!(after_hold, "and ESTABLISHED again after unhold: {page}");
    assert_eq!(st.last().map(String::as_str), Some("FINISH"), "the transfer ended the browser's call: {page}");

    // carol answered bob's transferred call and hung up.
    carol.wait().assert_ok();
    let digits: Vec<Value> = bob.events().into_iter().filter(|e| e["event"] == "dtmf").collect();
    assert!(digits.iter().any(|d| d["digit"] == "5" && d["method"] == "rfc4733"), "bob received the browser's 5 (RFC 4733): {digits:?}");
    drop(bob.quit());
    backend.wait_for("TransferStatusEvent", "the transfer's ACCEPTED reached the backend", |e| e["status"] == "ACCEPTED");
    let transfer: Vec<String> = backend.got("TransferStatusEvent").iter().map(|e| e["status"].as_str().unwrap_or("").to_owned()).collect();
    assert!(transfer.iter().any(|s| s == "ACCEPTED"), "the backend heard the transfer accepted: {transfer:?}");
    assert!(backend.names().iter().any(|n| n == "hold") && backend.names().iter().any(|n| n == "transfer"), "{:?}", backend.names());
}

#[test]
fn the_rest_api_starts_a_call_plays_a_sound_into_it_sends_digits_and_ends_it() {
    let env = TestEnv::new("wcs_rest_startup");
    let _media = env.media_lock();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);
    let bob = support::phone::Phone::start(&env, &server, 0, ("bob", DOMAIN, PASSWORD), 1000, None, &["--answer-after", "1"]);
    env.report_on_failure(&bob.record);
    make_chime(&env);

    // What cannot be started says why, in the dialect's error format, and leaves nothing.
    for (body, status, words) in [
        (json!({"callee": "bob"}), 400, "callId is required"),
        (json!({"callId": "r1"}), 400, "callee is required"),
        (json!({"callId": "r1", "callee": "bob", "rtmpUrl": "rtmp://127.0.0.1/live", "rtmpStream": "s1"}), 400, "does not relay calls to RTMP"),
        (json!({"callId": "r1", "callee": "bob", "toStream": "s1"}), 400, "toStream"),
        (json!({"callId": "r1", "callee": "bob", "appKey": "noSuchApp"}), 400, "noSuchApp"),
        (json!({"callId": "r1", "callee": "nobody"}), 404, "nobody"),
    ] {
        let r = server.post("/rest-api/call/startup", &body);
        assert_eq!((r.status, r.json()["error_code"].as_u64()), (status, Some(status as u64)), "{body}: {}", r.body);
        assert!(r.json()["error_message"].as_str().is_some_and(|m| m.contains(words)), "{body}: the error says {words:?}: {}", r.body);
    }
    assert_eq!(server.post("/rest-api/call/find", &json!({"callId": "r1"})).status, 404, "a refused startup leaves no call");

    // As the WCS docs' example: booleans and flags as strings.
    let start = json!({"callId": "r1", "callee": "bob", "visibleName": "Reminder", "hasAudio": "true", "hasVideo": "false", "sipLogin": "alice", "sipDomain": DOMAIN, "sipRegisterRequired": "false", "appKey": "defaultApp"});
    let r = server.post("/rest-api/call/startup", &start);
    assert_eq!((r.status, r.body.as_str()), (200, ""), "startup: accepted, empty body");
    let again = server.post("/rest-api/call/startup", &start);
    assert_eq!((again.status, again.json()["error_code"].as_u64()), (409, Some(409)), "a callId in use: {}", again.body);

    // bob rings for 1 s, then answers.
    let ringing = bob.wait_event("bob's phone rings", 10, |e| e["event"] == "state" && e["state"] == "INCOMING");
    assert!(ringing["remote"].as_str().is_some_and(|r| r.contains("Reminder") && r.contains(&format!("alice@{DOMAIN}"))), "the call comes from alice as \"Reminder\": {ringing}");
    let call = poll(Duration::from_secs(10), "r1 ESTABLISHED in find", || {
        let r = server.post("/rest-api/call/find", &json!({"callId": "r1"}));
        (r.status == 200).then(|| r.json()[0].clone()).filter(|c| c["status"] == "ESTABLISHED")
    });
    for (k, v) in [("caller", "alice"), ("callee", "bob"), ("appKey", "defaultApp"), ("sessionId", "/rest-api/r1")] {
        assert_eq!(call[k], v, "{k}: {call}");
    }
    assert_eq!((&call["incoming"], &call["sipStatus"]), (&json!(false), &json!(200)), "{call}");
    assert!(call["nodeId"].as_str().is_some_and(|n| !n.is_empty()), "{call}");
    let legs: Value = server.get("/v1/calls").json();
    assert!(legs.as_array().is_some_and(|a| a.iter().any(|l| l["service"] == "announcement" && l["state"] == "active")), "an announcement leg in /v1/calls: {legs}");

    // Silence for a while, then the sound.
    let t0 = bob.record_t0();
    std::thread::sleep(Duration::from_millis(1500));
    let inject_at = support::phone::phone_now(&bob) - t0;
    let r = server.post("/rest-api/call/inject_sound", &json!({"callId": "r1", "fileName": "chime1600"}));
    assert_eq!(r.status, 200, "inject_sound: {}", r.body);
    std::thread::sleep(Duration::from_millis(2500));
    for (dtmf, kind, method) in [("4", "RFC2833", "rfc4733"), ("#", "INFO", "info")] {
        let r = server.post("/rest-api/call/send_dtmf", &json!({"callId": "r1", "dtmf": dtmf, "type": kind}));
        assert_eq!(r.status, 200, "send_dtmf {kind}: {}", r.body);
        bob.wait_event(&format!("bob gets {dtmf} by {method}"), 10, |e| e["event"] == "dtmf" && e["digit"] == dtmf && e["method"] == method);
    }
    let r = server.post("/rest-api/call/terminate", &json!({"callId": "r1"}));
    assert_eq!(r.status, 200, "terminate: {}", r.body);
    bob.wait_event("bob gets the BYE", 10, |e| e["event"] == "state" && e["state"] == "DISCONNECTED");
    poll(Duration::from_secs(5), "r1 gone from find", || (server.post("/rest-api/call/find", &json!({"callId": "r1"})).status == 404).then_some(()));
    let rec = bob.record.clone();
    bob.quit().assert_ok();

    tone_check(&rec)
        .window(0.3, Some(inject_at - 0.1))
        .absent(&[1600, 1000])
        .allow_silent("nothing plays before the injection; the 1600 Hz after it shows the stream")
        .assert("bob hears silence before the sound (not his own 1000 Hz)");
    tone_check(&rec).window(inject_at + 0.4, Some(inject_at + 1.3)).expect(&[1600]).absent(&[1000]).assert("bob hears the injected 1600 Hz");

    let events = poll(Duration::from_secs(10), "FINISH of r1 at the backend", || {
        let evs: Vec<Value> = backend.got("CallStatusEvent").into_iter().filter(|e| e["callId"] == "r1").collect();
        evs.iter().any(|e| e["status"] == "FINISH").then_some(evs)
    });
    let seen: Vec<&str> = events.iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(seen.first(), Some(&"TRYING"), "{seen:?}");
    assert!(seen.windows(2).any(|w| w == ["RING", "ESTABLISHED"]), "RING then ESTABLISHED: {seen:?}");
    assert_eq!(seen.last(), Some(&"FINISH"), "{seen:?}");
    let finish = events.last().unwrap();
    assert_eq!((&finish["info"], &finish["caller"], &finish["appKey"]), (&json!("Terminated by the REST API"), &json!("alice"), &json!("defaultApp")), "{finish}");
    assert!(finish["nodeId"].as_str().is_some_and(|n| !n.is_empty()) && finish["sessionId"] == "/rest-api/r1", "{finish}");
}

type RawWs = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// A bare WCS client (what the legacy SDK sends, frame by frame).
fn raw_client(server: &Server) -> RawWs {
    let (ws, _) = tungstenite::connect(format!("ws://{}/", server.http)).expect("WebSocket to /");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    }
    ws
}

/// Reads frames (answering pings) until one named `message` whose `data[0]` matches.
fn raw_wait(ws: &mut RawWs, message: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("a JSON frame");
                if v["message"] == "ping" {
                    ws.send(tungstenite::Message::Text(json!({"message": "pong", "data": [null]}).to_string().into())).unwrap();
                    continue;
                }
                if v["message"] == message && pred(&v["data"][0]) {
                    return v["data"][0].clone();
                }
                seen.push(v["message"].as_str().unwrap_or("?").to_owned());
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("websocket: {e} (frames so far: {seen:?})"),
        }
    }
    panic!("no {message} within 15 s; frames: {seen:?}")
}

fn raw_send(ws: &mut RawWs, message: &str, data: Value) {
    ws.send(tungstenite::Message::Text(json!({"message": message, "data": [data]}).to_string().into())).expect("send");
}

#[test]
fn the_legacy_send_message_reaches_a_phone_and_reports_back() {
    let env = TestEnv::new("wcs_send_message");
    let _media = env.media_lock();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);
    let alice = support::phone::Phone::start(&env, &server, 0, ("alice", DOMAIN, PASSWORD), 1000, None, &[]);

    let mut ws = raw_client(&server);
    raw_send(&mut ws, "connection", json!({"appKey": "defaultApp", "sipLogin": "bob", "sipPassword": PASSWORD, "sipDomain": DOMAIN, "sipRegisterRequired": true}));
    let user = raw_wait(&mut ws, "getUserData", |_| true);
    assert_eq!(user["sipLogin"], "bob", "{user}");
    raw_wait(&mut ws, "registered", |_| true);

    raw_send(&mut ws, "sendMessage", json!({"id": "m1", "to": "alice", "body": "hello alice", "contentType": "text/plain"}));
    let got = alice.wait_event("alice gets the MESSAGE", 10, |e| e["event"] == "message");
    assert_eq!(got["body"], "hello alice", "{got}");
    assert!(got["from_uri"].as_str().is_some_and(|f| f.contains(&format!("bob@{DOMAIN}"))), "from bob: {got}");
    let status = raw_wait(&mut ws, "notifyMessage", |d| d["id"] == "m1");
    assert_eq!(status["status"], "ACCEPTED", "{status}");
    let hook = backend.wait_for("sendMessage", "the sendMessage hook", |b| b["id"] == "m1");
    assert_eq!((&hook["to"], &hook["body"]), (&json!("alice"), &json!("hello alice")), "{hook}");
    backend.wait_for("MessageStatusEvent", "ACCEPTED at the backend", |b| b["id"] == "m1" && b["status"] == "ACCEPTED");

    // The backend refuses the next one: nothing goes out, the client hears FAILED.
    backend.answer("sendMessage", 403, json!({"status": 403, "reason": "no messages today"}));
    raw_send(&mut ws, "sendMessage", json!({"id": "m2", "to": "alice", "body": "second"}));
    let status = raw_wait(&mut ws, "notifyMessage", |d| d["id"] == "m2");
    assert_eq!((&status["status"], &status["info"]), (&json!("FAILED"), &json!("no messages today")), "{status}");
    std::thread::sleep(Duration::from_millis(500));
    let messages = alice.events().into_iter().filter(|e| e["event"] == "message").count();
    assert_eq!(messages, 1, "the refused message never reached alice");
    drop(ws);
    alice.quit().assert_ok();
}

/// Not a test: the measurement behind BENCHMARKS.md's "call setup from the browser"
/// (`bench/wcs_call_setup.sh` runs it). Each run is a fresh page that registers and calls
/// a pjsua2 phone answering at once; the time is the page's own, from `call()` to
/// ESTABLISHED.
#[test]
#[ignore]
fn measure_call_setup() {
    let runs: usize = std::env::var("WCS_SETUP_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let env = TestEnv::new("wcs_measure_setup");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let backend = Backend::start();
    let server = server(&env, &backend);
    let mut setup_ms = Vec::new();
    for i in 0..runs {
        let mut bob = PjPeer::spawn(&env, &format!("bob{i}"), &phone_args(&env, &server, "answer", "bob", 0, &["--hangup-after", "1", "--max-time", "20"]));
        bob.wait_ready(Duration::from_secs(10));
        wait_registered(&server, "bob");
        let page = run_page(&env, &backend, &server, "mode=call&login=alice&callee=bob&talk=0", 30_000);
        let at = |kind: &str, v: &str| page["events"].as_array().and_then(|a| a.iter().find(|e| e["kind"] == kind && e["v"] == v)).and_then(|e| e["t"].as_f64());
        if let (Some(a), Some(b)) = (at("page", "call"), at("call", "ESTABLISHED")) {
            setup_ms.push(b - a);
        }
        let _ = bob.wait();
    }
    setup_ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| setup_ms[((setup_ms.len() - 1) as f64 * p).round() as usize];
    println!("call() -> ESTABLISHED over {} calls: min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms", setup_ms.len(), setup_ms[0], pct(0.5), pct(0.9), setup_ms[setup_ms.len() - 1]);
}
