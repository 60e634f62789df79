//! Reference 002 (sipXcallController) on the real binary: the HTTP dialect's
//! authentication, parameter checks and documents, byte for byte, against users and
//! PINs in the real store.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::*;

const DOMAIN: &str = "switchboard.test"; // the server's --domain in the harness
const PIN: &str = "4711";
const NS: &str = "http://www.sipfoundry.org/sipX/schema/xml/call-status-00-00";

/// alice has a PIN, bob has none; made in the store before the server starts.
fn directory(env: &TestEnv) {
    let alice = store::NewUser { pin: Some(PIN.into()), ..new_user(DOMAIN, "alice", "201", "pw-alice-1") };
    seed_directory(env, DOMAIN, &[alice, new_user(DOMAIN, "bob", "202", "pw-bob-1")]);
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().filter_map(|l| l.split_once(':')).find(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
    }
}

/// One HTTP/1.0 request with optional Basic credentials; the whole answer.
fn http(addr: SocketAddr, method: &str, path: &str, basic: Option<(&str, &str)>) -> Reply {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some((u, p)) = basic {
        req.push_str(&format!("Authorization: Basic {}\r\n", base64(format!("{u}:{p}").as_bytes())));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    Reply { status, head: head.to_string(), body: body.to_string() }
}

/// Standard base64 with padding (for the Basic header; no crate needed for this much).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn processing_status(code: u16, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<processing-status xmlns=\"{NS}\">\n<error-flag>ERROR</error-flag>\n<error-code>{code}</error-code>\n<error-text>{text}</error-text>\n</processing-status>\n"
    )
}

fn assert_reply(r: &Reply, status: u16, content_type: Option<&str>, body: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: status; answer:\n{}\n\n{}", r.head, r.body);
    assert_eq!(r.body, body, "{what}: body");
    if let Some(ct) = content_type {
        assert_eq!(r.header("content-type").as_deref(), Some(ct), "{what}: content type");
    }
}

const XML: Option<&str> = Some("text/xml; charset=UTF-8");
const TEXT: Option<&str> = Some("text/plain; charset=UTF-8");

#[test]
fn authentication_and_parameter_errors_answer_as_the_reference() {
    let env = TestEnv::new("callcontroller_errors");
    directory(&env);
    let server = Server::start(&env);
    let at = server.http;
    let alice = Some(("alice", PIN));

    // authentication, in the filter's order
    let r = http(at, "POST", "/callcontroller/nobody/bob", Some(("nobody", "1")));
    assert_reply(&r, 401, TEXT, "User Not found nobody", "unknown agent");
    let r = http(at, "POST", "/callcontroller/alice/bob", None);
    assert_eq!(r.status, 407, "no credentials: {}", r.head);
    assert_eq!(r.header("proxy-authenticate").as_deref(), Some(&*format!("Basic realm=\"{DOMAIN}\"")));
    assert_eq!(r.body, "");
    let r = http(at, "POST", "/callcontroller/alice/bob", Some(("alice", "0000")));
    assert_reply(&r, 401, TEXT, "pin mismatch", "wrong PIN");
    let r = http(at, "GET", "/callcontroller/alice/bob", Some(("alice", "0000")));
    assert_reply(&r, 401, TEXT, "pin mismatch", "wrong PIN on GET");
    let r = http(at, "POST", "/callcontroller/alice/bob", Some(("201", PIN)));
    assert_reply(&r, 200, TEXT, "Agent does not match principal ", "principal is not the agent as written");
    let r = http(at, "POST", "/callcontroller/bob/alice", Some(("bob", "")));
    assert_reply(&r, 401, TEXT, "pin mismatch", "a user with no PIN is refused");
    // the agent parameter names whose PIN counts
    let r = http(at, "POST", "/callcontroller/bob/201?agent=alice&timeout=-1", alice);
    assert_reply(&r, 400, XML, &processing_status(400, "Bad parameter timeout = -1"), "agent=alice");

    // parameter checks, in the restlet's order
    let r = http(at, "PUT", "/callcontroller/alice/bob", alice);
    assert_reply(&r, 405, None, "", "PUT");
    let r = http(at, "POST", "/callcontroller/alice/bob?timeout=-5&resultCacheTime=x", alice);
    assert_reply(&r, 400, XML, &processing_status(400, "Bad parameter timeout = -5"), "negative timeout first");
    let r = http(at, "POST", "/callcontroller/alice/bob?resultCacheTime=-2", alice);
    assert_reply(&r, 400, XML, &processing_status(400, "Bad parameter resultCacheTime = -2"), "negative cache time");
    let r = http(at, "POST", "/callcontroller/alice/bob?timeout=x", alice);
    assert_reply(&r, 500, TEXT, "java.lang.NumberFormatException: For input string: \"x\"", "timeout not a number");
    let r = http(at, "POST", "/callcontroller/alice/bob?resultCacheTime=1.5", alice);
    assert_reply(&r, 500, TEXT, "java.lang.NumberFormatException: For input string: \"1.5\"", "cache time not an integer");
    let r = http(at, "POST", "/callcontroller/alice/bob?sipMethod=options", alice);
    assert_reply(&r, 406, XML, &processing_status(406, "Call Setup Method options not supported"), "unknown sipMethod");
    let r = http(at, "POST", "/callcontroller/alice/bob?action=transfer", alice);
    assert_reply(&r, 400, XML, &processing_status(400, "Need a transfer target parameter"), "transfer without target");
    let r = http(at, "POST", "/callcontroller/alice/bob?action=transfer&target=carol&sipMethod=bogus", alice);
    assert_reply(&r, 406, XML, &processing_status(403, "Call not found."), "transfer with no record (sipMethod unchecked)");
    let r = http(at, "POST", "/callcontroller/alice/bob?action=Call", alice);
    assert_reply(&r, 200, None, "", "unknown action (case-sensitive): nothing happens");

    // GET with no record: the empty document sipMethod picks
    let r = http(at, "GET", "/callcontroller/alice/bob", alice);
    assert_reply(&r, 200, XML, &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<status-lines xmlns=\"{NS}\">\n</status-lines>\n"), "empty status-lines");
    let r = http(at, "GET", "/callcontroller/alice/bob?sipMethod=INVITE", alice);
    assert_reply(&r, 200, XML, &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialogs xmlns=\"{NS}\">\n</dialogs>\n"), "empty dialogs");
}

#[test]
fn trusted_networks_need_no_pin_and_the_own_listener_serves_the_dialect() {
    let env = TestEnv::new("callcontroller_trusted");
    directory(&env);
    let own: SocketAddr = format!("127.0.0.1:{}", env.ports.peer_sip(7)).parse().unwrap();
    let config = env.path("switchboard.toml");
    std::fs::write(
        &config,
        format!("[mx]\nadmin_listen = \"\"\n\n[callcontroller]\nlisten = \"{own}\"\ntrusted_networks = [\"127.0.0.0/8\"]\n"),
    )
    .unwrap();
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), config.display().to_string()], ..Default::default() });

    for at in [server.http, own] {
        let r = http(at, "GET", "/callcontroller/alice/bob", None);
        assert_reply(&r, 200, XML, &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<status-lines xmlns=\"{NS}\">\n</status-lines>\n"), "trusted GET");
        // trusted, but the agent must still exist
        let r = http(at, "POST", "/callcontroller/nobody/bob", None);
        assert_reply(&r, 403, XML, &processing_status(403, "could not find credentials for nobody"), "trusted, unknown agent");
    }
    // the own listener serves only the dialect
    let r = http(own, "GET", "/v1/status", None);
    assert_eq!(r.status, 404, "{}", r.head);
}

// ---- the SIP flows, with real pjsua2 phones --------------------------------------

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// One entry of a `<status-lines>` document.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    timestamp: u64,
    call_id: String,
    method: String,
    text: String,
}

/// Parses a status-lines document, checking on the way that its bytes are exactly
/// the layout of reference 002 §5 (the document is rebuilt from the entries and compared).
fn status_lines(doc: &str) -> Vec<Line> {
    let between = |s: &str, open: &str, close: &str| -> String {
        let a = s.find(open).unwrap_or_else(|| panic!("no {open} in {s:?}")) + open.len();
        let b = s[a..].find(close).unwrap_or_else(|| panic!("no {close} in {s:?}")) + a;
        s[a..b].to_string()
    };
    let lines: Vec<Line> = doc
        .split("\n<status>")
        .skip(1)
        .map(|e| Line {
            timestamp: between(e, "<timestamp>", "</timestamp>").parse().expect("timestamp is a number"),
            call_id: between(e, "<call-id>", "</call-id>"),
            method: between(e, "<method>", "</method>"),
            text: between(e, "<status-line>", "</status-line>"),
        })
        .collect();
    let mut rebuilt = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<status-lines xmlns=\"{NS}\">");
    for l in &lines {
        rebuilt.push_str(&format!(
            "\n<status>\n\t<timestamp>{}</timestamp>\n\t<call-id>{}</call-id>\n\t<method>{}</method>\n\t<status-line>{}</status-line>\n</status>",
            l.timestamp, l.call_id, l.method, l.text
        ));
    }
    rebuilt.push_str("\n</status-lines>\n");
    assert_eq!(doc, rebuilt, "status-lines bytes");
    lines
}

/// A pjsua2 phone that auto-answers (after ringing `answer_delay` s), plays `tone` and
/// records what it hears; not registered unless `register_as` is given.
fn phone(env: &TestEnv, server: &Server, i: u16, label: &str, tone: u32, answer_delay: &str, register_as: Option<&str>, extra: &[&str]) -> (PjPeer, std::path::PathBuf) {
    phone_on(env, server, i, env.ports.pj_rtp(i), label, tone, answer_delay, register_as, extra)
}

#[allow(clippy::too_many_arguments)]
fn phone_on(env: &TestEnv, server: &Server, i: u16, rtp: u16, label: &str, tone: u32, answer_delay: &str, register_as: Option<&str>, extra: &[&str]) -> (PjPeer, std::path::PathBuf) {
    let rx = env.path(&format!("{label}_rx.wav"));
    env.report_on_failure(&rx);
    let mut args = strings(&[
        "answer",
        "--sip-port",
        &env.ports.peer_sip(i).to_string(),
        "--rtp-port",
        &rtp.to_string(),
        "--rtp-range",
        "4",
        "--play",
        &env.path(&format!("tone{tone}.wav")).display().to_string(),
        "--loop",
        "--record",
        &rx.display().to_string(),
        "--codec",
        "PCMU/8000",
        "--answer-delay",
        answer_delay,
    ]);
    match register_as {
        Some(user) => args.extend(strings(&[
            "--registrar",
            &format!("sip:{}", server.sip),
            "--domain",
            DOMAIN,
            "--user",
            user,
            "--password",
            &format!("pw-{user}-1"),
        ])),
        None => args.extend(strings(&["--user", label])),
    }
    args.extend(strings(extra));
    let mut p = PjPeer::spawn(env, label, &args);
    p.wait_ready(Duration::from_secs(10));
    (p, rx)
}

fn get_lines(server: &Server, path: &str) -> Vec<Line> {
    let r = http(server.http, "GET", path, Some(("alice", PIN)));
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.head, r.body);
    assert_eq!(r.header("content-type").as_deref(), XML);
    status_lines(&r.body)
}

#[test]
fn refer_mode_connects_the_caller_to_the_called_party_and_records_the_progress() {
    let env = TestEnv::new("callcontroller_refer");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = Server::start(&env);

    // A is alice's registered phone; B is a phone called by its address.
    let (a, a_rx) = phone(&env, &server, 0, "alice_phone", 440, "1", Some("alice"), &["--max-time", "16"]);
    let (b, b_rx) = phone(&env, &server, 1, "bob_phone", 1000, "1", None, &["--max-time", "30"]);
    poll(Duration::from_secs(10), "alice's phone registered", || {
        std::fs::read_to_string(&server.log).unwrap_or_default().contains("registered user=").then_some(())
    });
    let called = format!("bob@127.0.0.1:{}", env.ports.peer_sip(1));
    let path = format!("/callcontroller/alice/{called}");
    let r = http(server.http, "POST", &format!("{path}?subject=Callback"), Some(("alice", PIN)));
    assert_reply(&r, 200, None, "", "POST (REFER mode)");

    // The record fills in: our INVITE's answers, then the referred call's progress.
    let lines = poll(Duration::from_secs(15), "NOTIFY 180 in the record", || {
        let lines = get_lines(&server, &path);
        lines.iter().any(|l| l.method == "NOTIFY" && l.text.contains("180 Ringing")).then_some(lines)
    });
    let invite: Vec<&str> = lines.iter().filter(|l| l.method == "INVITE").map(|l| l.text.as_str()).collect();
    assert_eq!(invite, ["SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK"], "INVITE lines: {lines:?}");
    assert!(lines.iter().all(|l| l.call_id == lines[0].call_id), "one Call-ID: {lines:?}");
    assert!(lines.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "arrival order: {lines:?}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(lines.iter().all(|l| l.timestamp > now_ms - 60_000 && l.timestamp <= now_ms), "timestamps are epoch ms: {lines:?}");
    let first_notify = lines.iter().position(|l| l.method == "NOTIFY").unwrap();
    assert!(first_notify >= 3, "NOTIFYs follow the INVITE's 200: {lines:?}");

    let a_run = a.wait();
    let b_run = b.wait();
    a_run.assert_ok();
    b_run.assert_ok();
    // A had two calls: ours (ended by our BYE after the 180 sipfrag), and the referred one to B.
    let calls = a_run.result.as_ref().and_then(|r| r["calls"].as_array().cloned()).expect("A's calls");
    assert_eq!(calls.len(), 2, "A's calls: {calls:?}");
    assert!(calls[0]["remote"].as_str().unwrap_or_default().contains("alice@switchboard.test"), "our call came from the agent: {calls:?}");
    assert!(calls[1]["remote"].as_str().unwrap_or_default().contains(&called), "A followed the REFER to B: {calls:?}");
    // NOTIFYs after our BYE are not recorded: the referred call's 200 never shows.
    let lines = get_lines(&server, &path);
    assert!(!lines.iter().any(|l| l.method == "NOTIFY" && l.text.contains("200 OK")), "{lines:?}");
    // A and B hear each other (the controller is never in the media path).
    tone_check(&b_rx).window(1.0, Some(6.0)).expect(&[440]).absent(&[1000]).assert("B hears A");
    tone_check(&a_rx).window(4.0, Some(10.0)).expect(&[1000]).absent(&[440]).assert("A hears B");
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(log.contains("REFER sent"), "server log says REFER sent");
}

#[test]
fn an_unanswered_caller_gets_cancel_after_the_timeout() {
    let env = TestEnv::new("callcontroller_timeout");
    let _media = env.media_lock();
    env.make_tones();
    directory(&env);
    let server = Server::start(&env);
    let (a, _a_rx) = phone(&env, &server, 0, "alice_phone", 440, "0", Some("alice"), &["--ring-only", "--max-time", "20"]);
    poll(Duration::from_secs(10), "alice's phone registered", || {
        std::fs::read_to_string(&server.log).unwrap_or_default().contains("registered user=").then_some(())
    });
    let path = "/callcontroller/alice/bob";
    let started = std::time::Instant::now();
    let r = http(server.http, "POST", &format!("{path}?timeout=2"), Some(("alice", PIN)));
    assert_reply(&r, 200, None, "", "POST with timeout=2");
    let run = a.wait();
    let took = started.elapsed();
    let status = run.result.as_ref().map(|r| r["final_status"].clone()).expect("A's result");
    assert_eq!(status[0], 487, "A's call ended by CANCEL: {status}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(12), "CANCEL after the 2 s timeout, took {took:?}");
    let lines = get_lines(&server, path);
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts.first().copied(), Some("SIP/2.0 100 Trying"), "{lines:?}");
    assert!(texts.contains(&"SIP/2.0 180 Ringing"), "{lines:?}");
    assert_eq!(texts.last().copied(), Some("SIP/2.0 487 Request Terminated"), "{lines:?}");
}

/// Seconds of audio a pjsua2 recording holds so far (16 kHz mono 16-bit, as pj_peer.py
/// records by default; the header is 44 bytes).
fn recorded_s(wav: &std::path::Path) -> f64 {
    let len = std::fs::metadata(wav).map(|m| m.len()).unwrap_or(0);
    len.saturating_sub(44) as f64 / 32_000.0
}

fn dialog_states(server: &Server, path: &str) -> Vec<String> {
    let r = http(server.http, "GET", path, Some(("alice", PIN)));
    assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.head, r.body);
    assert!(r.body.starts_with(&format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialogs xmlns=\"{NS}\">")), "{}", r.body);
    assert!(r.body.ends_with("\n</dialogs>\n"), "{}", r.body);
    r.body.split("<dialog-state>").skip(1).map(|s| s.split("</dialog-state>").next().unwrap_or_default().to_string()).collect()
}

#[test]
fn invite_mode_joins_both_parties_and_transfer_replaces_the_caller() {
    let env = TestEnv::new("callcontroller_invite");
    let _media = env.media_lock();
    env.make_tones();
    let tone700 = env.path("tone700.wav");
    let sox = require_tool("sox");
    let made = std::process::Command::new(&sox)
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&tone700)
        .args(["synth", "10", "sine", "700", "vol", "0.5"])
        .status()
        .expect("sox");
    assert!(made.success(), "sox made tone700.wav");
    directory(&env);
    let server = Server::start(&env);

    let (a, a_rx) = phone(&env, &server, 0, "alice_phone", 440, "1", Some("alice"), &["--max-time", "40"]);
    let (b, b_rx) = phone(&env, &server, 1, "bob_phone", 1000, "1", None, &["--max-time", "25"]);
    let (c, c_rx) = phone_on(&env, &server, 2, env.ports.sipp_media(0), "carol_phone", 700, "0", None, &["--max-time", "40"]);
    poll(Duration::from_secs(10), "alice's phone registered", || {
        std::fs::read_to_string(&server.log).unwrap_or_default().contains("registered user=").then_some(())
    });
    let called = format!("bob@127.0.0.1:{}", env.ports.peer_sip(1));
    let path = format!("/callcontroller/alice/{called}");
    let r = http(server.http, "POST", &format!("{path}?sipMethod=INVITE"), Some(("alice", PIN)));
    assert_reply(&r, 200, None, "", "POST (INVITE mode)");
    poll(Duration::from_secs(15), "both dialogs confirmed", || {
        (dialog_states(&server, &path) == ["Confirmed Dialog", "Confirmed Dialog"]).then_some(())
    });
    // A second INVITE-mode request on the same key is refused while the record lives.
    let r = http(server.http, "POST", &format!("{path}?sipMethod=invite"), Some(("alice", PIN)));
    assert_reply(&r, 406, XML, &processing_status(403, "Call in progress invite not supported"), "INVITE while in progress");
    // REFER-mode GET semantics do not apply: the record is INVITE-mode, whatever sipMethod says.
    assert_eq!(dialog_states(&server, &path).len(), 2);

    // Let A and B talk a while, then hand B over to C.
    poll(Duration::from_secs(20), "6 s of B's recording", || (recorded_s(&b_rx) >= 6.0).then_some(()));
    let switched_at = recorded_s(&b_rx);
    let target = format!("carol@127.0.0.1:{}", env.ports.peer_sip(2));
    let r = http(server.http, "POST", &format!("{path}?action=transfer&target={target}"), Some(("alice", PIN)));
    assert_reply(&r, 200, None, "", "transfer");
    let a_run = a.wait();
    a_run.assert_ok();
    // The new record is the agent's, keyed by the target: the agent is named explicitly.
    let new_path = format!("/callcontroller/{target}/{called}?agent=alice");
    poll(Duration::from_secs(15), "B and C confirmed", || {
        (dialog_states(&server, &new_path) == ["Confirmed Dialog", "Confirmed Dialog"]).then_some(())
    });
    // The old record is gone: its GET is the empty document again.
    let r = http(server.http, "GET", &path, Some(("alice", PIN)));
    assert_reply(&r, 200, XML, &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<status-lines xmlns=\"{NS}\">\n</status-lines>\n"), "old record dropped");

    let b_run = b.wait();
    b_run.assert_ok();
    let c_run = c.wait();
    c_run.assert_ok();
    // A and B heard each other; then B heard C and C heard B.
    tone_check(&a_rx).window(3.0, Some(switched_at)).expect(&[1000]).absent(&[700]).assert("A hears B");
    tone_check(&b_rx).window(1.0, Some(switched_at - 0.5)).expect(&[440]).absent(&[700]).assert("B hears A");
    tone_check(&b_rx).window(switched_at + 2.0, Some(switched_at + 6.0)).expect(&[700]).absent(&[440]).assert("B hears C after the transfer");
    tone_check(&c_rx).window(1.0, Some(5.0)).expect(&[1000]).absent(&[440]).assert("C hears B");
}
