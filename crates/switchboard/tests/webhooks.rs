//! Lossless events (issue 12 item 7): the durable outbox, signed webhooks and the SSE
//! stream, against the real binary on a real SQLite file.
//!
//! | test | what |
//! |---|---|
//! | `webhook_deliveries_survive_kill_9_exactly_once` | a receiver (Python's http.server, `receiver.py` below) checks every signature with the secret `POST /v1/webhooks` showed; it answers 503 while SIPp echo calls make events, so they pend (and back off); the server is killed with SIGKILL, restarted on the same data dir, the receiver then answers 200 and, after more calls and a key rotation, every seq 1..N of the domain arrives, each accepted exactly once, signed with the key id of its time |
//! | `sse_stream_resumes_from_last_event_id` | read some events of `/v1/events/stream`, disconnect, make more events, reconnect with `Last-Event-ID`: the rest arrive, then live ones, with no gap and no duplicate against the whole outbox |
//!
//! The receiver is Python so that the signature check is an independent HMAC-SHA256
//! implementation, not the server's own code.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const TOKEN: &str = "webhooks-test-token";

const RECEIVER: &str = r#"
import hashlib, hmac, http.server, json, os, socketserver, sys, time
port_file, secrets_file, log_file, ok_file = sys.argv[1:5]

class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ts = self.headers.get("X-Switchboard-Timestamp", "")
        kid = self.headers.get("X-Switchboard-Key-Id", "")
        sig = self.headers.get("X-Switchboard-Signature", "")
        seq = int(self.headers.get("X-Switchboard-Event-Seq", "-1"))
        with open(secrets_file) as f:
            secret = json.load(f).get(kid)
        want = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest() if secret else None
        good = want is not None and hmac.compare_digest(want, sig) and abs(time.time() - int(ts)) < 300
        event = json.loads(body)
        status = 401 if not good else (200 if os.path.exists(ok_file) else 503)
        with open(log_file, "a") as f:
            f.write(json.dumps({"seq": seq, "kid": kid, "good": good, "status": status, "event": event}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

s = Server(("127.0.0.1", 0), Hook)
with open(port_file + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(port_file + ".tmp", port_file)
s.serve_forever()
"#;

/// The receiver process; killed on drop.
struct Receiver {
    child: Child,
    port: u16,
    secrets: std::path::PathBuf,
    log: std::path::PathBuf,
    ok: std::path::PathBuf,
}

impl Receiver {
    fn start(env: &TestEnv) -> Receiver {
        let script = env.path("receiver.py");
        fs::write(&script, RECEIVER).unwrap();
        let (port_file, secrets, log, ok) = (env.path("receiver.port"), env.path("secrets.json"), env.path("received.jsonl"), env.path("receiver.ok"));
        fs::write(&secrets, "{}").unwrap();
        let python = if venv_python().is_file() { venv_python() } else { "python3".into() };
        let child = die_with_parent(Command::new(python).arg(&script).args([&port_file, &secrets, &log, &ok]))
            .stdin(Stdio::null())
            .stderr(fs::File::create(env.path("receiver.stderr")).unwrap())
            .spawn()
            .expect("python receiver");
        let port = poll(Duration::from_secs(10), "the receiver's port", || fs::read_to_string(&port_file).ok()?.trim().parse().ok());
        Receiver { child, port, secrets, log, ok }
    }

    fn add_secret(&self, key_id: &str, secret: &str) {
        let mut all: Value = serde_json::from_str(&fs::read_to_string(&self.secrets).unwrap()).unwrap();
        all[key_id] = json!(secret);
        fs::write(&self.secrets, all.to_string()).unwrap();
    }

    fn received(&self) -> Vec<Value> {
        fs::read_to_string(&self.log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(env: &TestEnv) -> Vec<String> {
    let path = env.path("events.toml");
    // fast retries so the test does not wait minutes; the MX admin web off (fixed port)
    fs::write(&path, "[events]\nretry_initial_ms = 200\nretry_max_ms = 1000\n\n[mx]\nadmin_listen = \"\"\n").unwrap();
    vec!["--config".into(), path.display().to_string()]
}

fn start(env: &TestEnv) -> Server {
    Server::start_with(env, ServerOptions { api_token: Some(TOKEN.into()), t1_ms: Some(50), extra_args: config(env) })
}

/// `n` short echo calls from SIPp, one after the other.
fn echo_calls(env: &TestEnv, server: &Server, label: &str, n: usize) {
    for i in 0..n {
        Sipp::new(env, "uac_call.xml", &format!("{label}{i}")).remote(server.sip).service("echo").hold_ms(200).run().assert_ok();
    }
}

/// The whole outbox of the server's domain, via the stream without following.
fn all_events(server: &Server) -> Vec<Value> {
    let r = server.get("/v1/events/stream?follow=false");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")), "{r:?}");
    parse_sse(&r.body).into_iter().map(|(_, _, data)| data).collect()
}

/// (id, event, data) of each event in an SSE text.
fn parse_sse(text: &str) -> Vec<(u64, String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut ev, mut data) = (None, None, None);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if let Some(v) = line.strip_prefix("event: ") {
                ev = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = serde_json::from_str(v).ok();
            }
        }
        if let (Some(id), Some(ev), Some(data)) = (id, ev, data) {
            out.push((id, ev, data));
        }
    }
    out
}

fn webhook(server: &Server, id: i64) -> Value {
    let r = server.get(&format!("/v1/webhooks/{id}"));
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

#[test]
fn webhook_deliveries_survive_kill_9_exactly_once() {
    let env = TestEnv::new("webhooks_kill9");
    let receiver = Receiver::start(&env);
    let mut server = start(&env);

    // not an http(s) URL: refused in the native error format
    let r = server.post("/v1/webhooks", &json!({ "url": "ftp://127.0.0.1/x" }));
    assert_eq!((r.status, r.json()["error_code"].as_u64()), (400, Some(1400)), "{r:?}");
    let r = server.post("/v1/webhooks", &json!({ "url": format!("http://127.0.0.1:{}/hook", receiver.port) }));
    assert_eq!(r.status, 201, "{r:?}");
    let created = r.json();
    let id = created["id"].as_i64().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(created["key_id"], format!("{id}.1"));
    receiver.add_secret(&format!("{id}.1"), &secret);
    assert!(webhook(&server, id).get("secret").is_none(), "the secret is shown once");

    // events while the receiver says 503: they pend, with back-off
    echo_calls(&env, &server, "before", 3);
    let before = poll(Duration::from_secs(20), "failed deliveries", || {
        let w = webhook(&server, id);
        (w["failures"].as_u64()? >= 2 && w["last_status"] == 503 && w["pending"].as_u64()? >= 9).then_some(w)
    });
    assert_eq!(before["delivered"], 0, "{before}");
    assert!(before["last_error"].as_str().unwrap().contains("503"), "{before}");
    assert!(before["next_attempt_ms"].as_u64().unwrap() > 0, "{before}");
    let pending_before = before["last_seq"].as_u64().unwrap();
    let tried = receiver.received();
    assert!(tried.iter().all(|r| r["good"] == true && r["status"] == 503), "every attempt signed, all refused: {tried:?}");
    assert!(tried.iter().all(|r| r["seq"] == 1), "in order: nothing after the first undelivered event is tried: {tried:?}");

    // kill -9 with deliveries pending; the receiver recovers; restart on the same data dir
    let status = server.stop_with(libc::SIGKILL, Duration::from_secs(5));
    eprintln!("server killed: {}", describe(status));
    fs::write(&receiver.ok, "").unwrap();
    let mut server = start(&env);
    echo_calls(&env, &server, "after", 2);
    // a rotation: what is delivered from now on is signed with key 2
    let r = server.post(&format!("/v1/webhooks/{id}/rotate"), &json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    let rotated = r.json();
    assert_eq!(rotated["key_id"], format!("{id}.2"));
    assert_ne!(rotated["secret"], secret.as_str());
    receiver.add_secret(&format!("{id}.2"), rotated["secret"].as_str().unwrap());
    echo_calls(&env, &server, "rotated", 1);

    let done = poll(Duration::from_secs(30), "every event delivered", || {
        let w = webhook(&server, id);
        let last = w["last_seq"].as_u64()?;
        (last > pending_before && w["pending"] == 0 && w["cursor"] == last).then_some(w)
    });
    let last = done["last_seq"].as_u64().unwrap();
    assert_eq!((done["failures"].as_u64(), done["last_status"].as_u64(), done["delivered"].as_u64()), (Some(0), Some(200), Some(last)), "{done}");

    // every seq 1..=last accepted exactly once, every signature good, the bodies those of the outbox
    let received = receiver.received();
    assert!(received.iter().all(|r| r["good"] == true), "a bad signature: {:?}", received.iter().find(|r| r["good"] != true));
    let mut accepted: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in received.iter().filter(|r| r["status"] == 200) {
        accepted.entry(r["seq"].as_u64().unwrap()).or_default().push(r);
    }
    assert_eq!(accepted.keys().copied().collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>(), "every seq, no gap");
    let twice: Vec<_> = accepted.iter().filter(|(_, v)| v.len() != 1).map(|(k, _)| k).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let outbox = all_events(&server);
    eprintln!("{last} events; {} attempts ({} refused before the kill); {} before the kill", received.len(), tried.len(), pending_before);
    assert_eq!(outbox.len() as u64, last, "the outbox holds as many as were delivered");
    for e in &outbox {
        let seq = e["seq"].as_u64().unwrap();
        assert_eq!(&accepted[&seq][0]["event"], e, "seq {seq}: delivered as stored");
    }
    // the events before the kill are among them (legs of the echo calls), and the key ids follow the rotation
    assert!(outbox.iter().filter(|e| e["type"] == "leg_ended").count() >= 6, "{outbox:?}");
    assert!(accepted.values().any(|v| v[0]["kid"] == format!("{id}.1")) && accepted.values().any(|v| v[0]["kid"] == format!("{id}.2")));
    let mut prev = 0;
    for r in received.iter().filter(|r| r["status"] == 200) {
        let seq = r["seq"].as_u64().unwrap();
        assert!(seq > prev, "in order: {seq} after {prev}");
        prev = seq;
    }

    // management: PATCH, list, DELETE
    let r = server.request("PATCH", &format!("/v1/webhooks/{id}"), Some(&json!({ "events": ["dtmf"], "enabled": false }).to_string()));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((r.json()["events"].clone(), r.json()["enabled"].clone()), (json!(["dtmf"]), json!(false)));
    let r = server.request("PATCH", &format!("/v1/webhooks/{id}"), Some("{}"));
    assert_eq!(r.status, 400, "nothing to change: {r:?}");
    assert_eq!(server.get("/v1/webhooks").json().as_array().map(|a| a.len()), Some(1));
    assert_eq!(server.delete(&format!("/v1/webhooks/{id}")).status, 204);
    assert_eq!(server.get(&format!("/v1/webhooks/{id}")).status, 404);
    assert_eq!(server.get("/v1/status").json()["events_dropped"], 0, "no event dropped by the outbox queue");
    server.assert_alive();
}

/// An SSE connection (HTTP/1.0: the body is the raw stream, no chunking).
struct Sse {
    reader: BufReader<TcpStream>,
}

impl Sse {
    fn open(server: &Server, last_event_id: Option<u64>) -> Sse {
        let mut s = TcpStream::connect(server.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req = format!("GET /v1/events/stream HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n", server.http);
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Sse { reader }
    }

    /// The next event: (id, type, data).
    fn next(&mut self) -> (u64, String, Value) {
        let mut block = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("an event within 20 s");
            assert!(n > 0, "the stream ended");
            if line == "\n" {
                if let Some(e) = parse_sse(&block).pop() {
                    return e;
                }
                block.clear(); // a keep-alive comment
            } else {
                block.push_str(&line);
            }
        }
    }
}

#[test]
fn sse_stream_resumes_from_last_event_id() {
    let env = TestEnv::new("sse_resume");
    let server = start(&env);
    echo_calls(&env, &server, "first", 2);
    poll(Duration::from_secs(10), "events in the outbox", || (all_events(&server).len() >= 6).then_some(()));

    // read four, hang up
    let mut got = Vec::new();
    {
        let mut sse = Sse::open(&server, None);
        for _ in 0..4 {
            got.push(sse.next());
        }
    }
    // more events while disconnected, then resume after the last one read
    echo_calls(&env, &server, "away", 2);
    let mut sse = Sse::open(&server, Some(got.last().unwrap().0));
    let backlog = all_events(&server).len();
    while got.len() < backlog {
        got.push(sse.next());
    }
    // and live ones on the same connection
    echo_calls(&env, &server, "live", 1);
    let total = poll(Duration::from_secs(10), "the live call's events", || {
        let n = all_events(&server).len();
        (n > backlog).then_some(n)
    });
    let started = Instant::now();
    while got.len() < total {
        got.push(sse.next());
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    drop(sse);

    let all = all_events(&server);
    eprintln!("{} events read over SSE in three parts: 4, then {} after a reconnect, then {} live", got.len(), backlog - 4, total - backlog);
    let seqs: Vec<u64> = got.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>(), "no gap, no duplicate");
    for ((id, ty, data), stored) in got.iter().zip(&all) {
        assert_eq!(data, stored, "event {id} as stored");
        assert_eq!(data["type"], ty.as_str());
        assert_eq!(data["seq"], *id);
    }
    // ?after= is the same as Last-Event-ID; a bad one is a 400
    let r = server.get("/v1/events/stream?follow=false&after=3");
    assert_eq!(parse_sse(&r.body).first().map(|e| e.0), Some(4));
    assert_eq!(server.get("/v1/events/stream?after=x").status, 400);
    assert_eq!(server.get("/v1/events/stream?domain=nowhere.test&follow=false").status, 404);
}
