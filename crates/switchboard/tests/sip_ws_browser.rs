//! SIP over WebSocket (RFC 7118, issue 12 item 5): browser phones register and call
//! like any phone.
//!
//! - JsSIP (the npm package's browser bundle, installed by scripts/install-test-deps) in
//!   headless Chromium registers as a directory user over `ws://<http_listen>/` and
//!   calls a conference room where two pjsua2 phones play 1000 Hz and 1400 Hz: the
//!   page's WebAudio analyser hears both, both phones' recordings hold the browser's
//!   600 Hz fake microphone, and the room's REST API lists the browser as a participant;
//! - a pjsua2 phone calls the same browser user: the INVITE comes down the browser's
//!   WebSocket with a WebRTC offer, JsSIP answers, and each hears the other; JsSIP
//!   holds and resumes (the engine's leg goes held and active), then the API holds and
//!   resumes the browser (JsSIP takes the re-offers), and the audio is back after both;
//! - a bare WebSocket client (tungstenite) gets a 401 challenge for REGISTER, 200 once
//!   it answers it, 400 for a salvageable broken request, nothing for garbage, and the
//!   server keeps serving; `[sip_ws] listen` refuses an upgrade without the `sip`
//!   subprotocol; the WCS SDK's upgrade at `/` (no subprotocol) still reaches the WCS;
//! - the same bare client calls a room with a WebRTC offer and never does ICE: its call
//!   is hung up (a BYE) when the gateway gives up on it, 15 s in, not at the engine's
//!   60 s RTP timeout; a second call's leg goes as soon as the socket closes.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::browser::{self, browser_tone};
use support::*;
use tungstenite::client::IntoClientRequest;

const DOMAIN: &str = "switchboard.test";
const PASSWORD: &str = "correct-horse-7";
const ROOM: &str = "conf-7";

fn jssip_bundle() -> PathBuf {
    browser::npm_file("jssip/dist/jssip.min.js")
}

/// Serves the page (GET /room.html) and the npm bundle (GET /jssip/jssip.min.js).
fn page_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").split('?').next().unwrap_or("").to_owned();
            let (status, ctype, body) = match path.as_str() {
                "/room.html" => (200, "text/html", std::fs::read(kit_dir().join("jssip/room.html")).expect("room.html")),
                "/jssip/jssip.min.js" => match std::fs::read(browser::node_dir().join("node_modules/jssip/dist/jssip.min.js")) {
                    Ok(js) => (200, "application/javascript", js),
                    Err(_) => (404, "text/plain", b"no bundle".to_vec()),
                },
                _ => (404, "text/plain", b"not here".to_vec()),
            };
            let head = format!("HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    addr
}

fn server(env: &TestEnv, extra: &str) -> Server {
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, format!("[mx]\nadmin_listen = \"\"\n{extra}")).expect("config");
    Server::start_with(env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() })
}

fn directory(env: &TestEnv) {
    let users = [("alice", "3044"), ("bob", "3045"), ("carol", "3046")].map(|(l, e)| new_user(DOMAIN, l, e, PASSWORD));
    seed_directory(env, DOMAIN, &users);
}

fn tone(env: &TestEnv, hz: u32) -> PathBuf {
    browser::sine_wav(env, &format!("tone{hz}.wav"), 8000, hz, 40)
}

/// Runs room.html in headless Chromium; returns its `__result`.
fn run_page(tone: &Path, log: &Path, pages: SocketAddr, http: SocketAddr, query: &str, timeout_ms: u64) -> Value {
    jssip_bundle();
    let url = format!("http://{pages}/room.html?ws=ws://{http}&password={PASSWORD}&timeout={}&{query}", timeout_ms.saturating_sub(3000));
    browser::run_page(&url, tone, log, timeout_ms)
}

/// A pjsua2 phone that registers as `user` and calls the room, playing `hz`.
fn participant(env: &TestEnv, server: &Server, user: &str, slot: u16, hz: u32, rec: &Path) -> PjPeer {
    caller(env, server, user, slot, &format!("sip:{ROOM}@{DOMAIN}"), hz, rec, 30)
}

/// A pjsua2 phone that registers as `user` and calls `target` for `secs`, playing `hz`.
#[allow(clippy::too_many_arguments)]
fn caller(env: &TestEnv, server: &Server, user: &str, slot: u16, target: &str, hz: u32, rec: &Path, secs: u32) -> PjPeer {
    let (rtp, range) = env.ports.phone_rtp(slot);
    let args: Vec<String> = [
        "call", target,
        "--registrar", &format!("sip:{DOMAIN}"), "--proxy", &format!("sip:{};lr", server.sip), "--domain", DOMAIN, "--user", user, "--password", PASSWORD,
        "--sip-port", &env.ports.peer_sip(slot).to_string(), "--rtp-port", &rtp.to_string(), "--rtp-range", &range.to_string(), "--codec", "PCMU/8000",
        "--play", &tone(env, hz).display().to_string(), "--loop", "--record", &rec.display().to_string(), "--duration", &secs.to_string(), "--max-time", "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    env.report_on_failure(rec);
    PjPeer::spawn(env, user, &args)
}

fn participants(server: &Server, confid: &str) -> Vec<Value> {
    server.get(&format!("/rest/v1/uc/conferences/{confid}/participants")).json().as_array().cloned().unwrap_or_default()
}

fn is_user(p: &Value, user: &str) -> bool {
    p["ruri"].as_str().is_some_and(|u| u.contains(&format!("sip:{user}@")))
}

#[test]
fn jssip_in_chromium_registers_over_websocket_and_joins_a_room() {
    let env = TestEnv::new("sip_ws_jssip_room");
    let _media = env.media_lock();
    directory(&env);
    let server = server(&env, "");
    let pages = page_server();

    let (bob_rx, carol_rx) = (env.path("bob_rx.wav"), env.path("carol_rx.wav"));
    let bob = participant(&env, &server, "bob", 0, 1000, &bob_rx);
    let carol = participant(&env, &server, "carol", 1, 1400, &carol_rx);
    let (confid, _) = wait_room_active(&server, 2);

    // The page registers, calls the room, listens, talks 6 s more and hangs up; meanwhile
    // the room lists it.
    let query = format!("uri=sip:alice@{DOMAIN}&target=sip:{ROOM}@{DOMAIN}&listen=600,1000,1400,2200&talk=6");
    let (tone, log, http) = (browser_tone(&env), env.path("page.log"), server.http);
    let (page, alice) = std::thread::scope(|s| {
        let page = s.spawn(|| run_page(&tone, &log, pages, http, &query, 45_000));
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut alice = None;
        while alice.is_none() && Instant::now() < deadline && !page.is_finished() {
            alice = participants(&server, &confid).into_iter().find(|p| is_user(p, "alice") && p["state"] == "active");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Registered like any phone, over its own transport.
        let regs: Value = server.get("/v1/registrations").json();
        let ws = regs.as_array().is_some_and(|a| a.iter().any(|r| r["login"] == "alice" && r["transport"] == "ws"));
        (page.join().expect("page thread"), alice.map(|a| (a, ws, regs)))
    });
    let (alice, registered_ws, regs) = alice.unwrap_or_else(|| panic!("the room never listed the browser: {:?}", participants(&server, &confid)));
    assert!(registered_ws, "alice's binding is over ws: {regs}");
    assert_eq!(page["registered"], true, "JsSIP registered over the WebSocket: {page}");
    assert_eq!(page["confirmed"], true, "the room answered the browser's call: {page}");
    assert_eq!(page["ended"], true, "the page hung up cleanly: {page}");
    assert_eq!(alice["direction"], "inbound", "{alice}");

    // The browser hears both phones, well above the analyser's floor and a control bin.
    let level = |hz: &str| page["levels"][hz].as_f64().unwrap_or(-300.0);
    let floor = page["floor"].as_f64().unwrap_or(0.0);
    for hz in ["1000", "1400"] {
        assert!(level(hz) > floor + 30.0 && level(hz) > level("2200") + 30.0, "the browser hears {hz} Hz: {page}");
    }
    assert!(level("600") < level("1000") - 20.0, "the browser does not hear itself: {page}");

    // Both phones hear the browser's 600 Hz while it was in the room: from 2 s after its
    // INVITE (ICE and DTLS up) to 7 s, well before its hangup (confirmed, 2.5 s of
    // listening, 6 s of talk). Chromium's fake capture device stalls now and then on a
    // busy 2-core machine: both phones then miss the same ~150 ms at the same moment
    // while the server's leg counts no loss, so the bound allows one such stall.
    let alice_joined = alice["joined_ms"].as_u64().expect("joined_ms") as f64 / 1000.0;
    let parts = participants(&server, &confid);
    let (bob_joined, carol_joined) = (joined_s(&parts, "bob"), joined_s(&parts, "carol"));
    bob.wait().assert_ok();
    carol.wait().assert_ok();
    let (t0, t1) = (alice_joined + 2.0, alice_joined + 7.0);
    let stall = "Chromium's fake microphone stalls on a loaded machine (the same gap on both phones, no RTP lost)";
    tone_check(&bob_rx).window(t0 - bob_joined, Some(t1 - bob_joined)).expect(&[600, 1400]).absent(&[1000]).bound(90.0, 200.0, stall).assert("bob hears the browser and carol");
    tone_check(&carol_rx).window(t0 - carol_joined, Some(t1 - carol_joined)).expect(&[600, 1000]).absent(&[1400]).bound(90.0, 200.0, stall).assert("carol hears the browser and bob");
}

#[test]
fn a_phone_calls_a_jssip_browser_which_answers() {
    let env = TestEnv::new("sip_ws_phone_calls_jssip");
    let _media = env.media_lock();
    directory(&env);
    let server = server(&env, "");
    let pages = page_server();
    let bob_rx = env.path("bob_rx.wav");

    // The page registers as alice and waits; once she is registered, bob calls her for
    // 16 s and hangs up. Meanwhile the page holds and resumes the call (its re-INVITEs),
    // then the server does (the API's hold: re-INVITEs to the browser).
    let query = format!("uri=sip:alice@{DOMAIN}&listen=600,1000,2200&talk=0&hold=1");
    let (tone, log, http) = (browser_tone(&env), env.path("page.log"), server.http);
    let alice_leg = |state: &str| -> Option<Value> {
        let legs: Value = server.get("/v1/calls").json();
        legs.as_array()?.iter().find(|l| l["direction"] == "outbound" && l["state"] == state).cloned()
    };
    let (page, api_unhold) = std::thread::scope(|s| {
        let page = s.spawn(|| run_page(&tone, &log, pages, http, &query, 45_000));
        poll(Duration::from_secs(20), "alice registered over ws", || {
            let regs: Value = server.get("/v1/registrations").json();
            regs.as_array()?.iter().any(|r| r["login"] == "alice" && r["transport"] == "ws").then_some(())
        });
        let bob = caller(&env, &server, "bob", 0, &format!("sip:alice@{DOMAIN}"), 1000, &bob_rx, 16);
        let bob_start = Instant::now();
        // The browser's hold reaches the engine as a hold, and its resume as a resume.
        let leg = poll(Duration::from_secs(15), "the browser put its call on hold", || alice_leg("held"));
        poll(Duration::from_secs(10), "the browser resumed its call", || alice_leg("active"));
        // The server holds the browser (the callee) and resumes it.
        let id = leg["leg_id"].as_str().expect("leg_id").to_owned();
        let r = server.post(&format!("/v1/calls/{id}/hold"), &serde_json::json!({"side": "callee"}));
        assert_eq!(r.status, 200, "hold: {}", r.body);
        poll(Duration::from_secs(10), "the browser took the server's hold", || alice_leg("held"));
        let r = server.post(&format!("/v1/calls/{id}/unhold"), &serde_json::json!({}));
        assert_eq!(r.status, 200, "unhold: {}", r.body);
        poll(Duration::from_secs(10), "the browser took the server's resume", || alice_leg("active"));
        let api_unhold = bob_start.elapsed().as_secs_f64();
        bob.wait().assert_ok();
        (page.join().expect("page thread"), api_unhold)
    });
    assert_eq!(page["holds"], serde_json::json!(["hold local", "unhold local", "hold remote", "unhold remote"]), "JsSIP held and resumed both ways: {page}");
    assert_eq!(page["confirmed"], true, "JsSIP answered the call that came down its WebSocket: {page}");
    assert_eq!(page["ended"], true, "bob's BYE ended it: {page}");
    let level = |hz: &str| page["levels"][hz].as_f64().unwrap_or(-300.0);
    assert!(level("1000") > page["floor"].as_f64().unwrap_or(0.0) + 30.0 && level("1000") > level("2200") + 30.0, "the browser hears bob's 1000 Hz: {page}");
    let stall = "Chromium's fake microphone stalls on a loaded machine (see the room test)";
    // Before the page's hold (about 4.5 s after the answer).
    tone_check(&bob_rx).window(1.5, Some(4.0)).expect(&[600]).absent(&[1000]).bound(90.0, 200.0, stall).assert("bob hears the browser's 600 Hz");
    // After both holds, the same media flows again (the gateway leg was never torn down).
    assert!(api_unhold < 12.0, "the holds were over by {api_unhold:.1} s");
    tone_check(&bob_rx).window(api_unhold + 1.0, Some(15.0)).expect(&[600]).absent(&[1000]).bound(90.0, 200.0, stall).assert("bob hears the browser again after the holds");
    let calls: Value = server.get("/v1/calls?kind=call").json();
    let c = &calls.as_array().expect("calls")[0];
    assert_eq!((c["caller_codec"].as_str(), c["callee_codec"].as_str()), (Some("PCMU"), Some("PCMU")), "G.711 end to end, relayed: {c}");
}

// ---- a bare WebSocket client ------------------------------------------------------------

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket at `url`, offering `protocol` if given; the socket and the
/// subprotocol the server chose.
fn open(url: &str, protocol: Option<&str>) -> Result<(Ws, Option<String>), tungstenite::Error> {
    let mut req = url.into_client_request().expect("request");
    if let Some(p) = protocol {
        req.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let (ws, resp) = tungstenite::connect(req)?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    }
    let chosen = resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((ws, chosen))
}

/// The next SIP message within `wait`, if any.
fn next_sip(ws: &mut Ws, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => return Some(t.to_string()),
            Ok(tungstenite::Message::Binary(b)) => return Some(String::from_utf8_lossy(&b).into_owned()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("websocket: {e}"),
        }
    }
    None
}

fn send(ws: &mut Ws, text: &str) {
    ws.send(tungstenite::Message::Text(text.to_owned().into())).expect("send");
}

fn register(cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-reg-{cseq}\r\nMax-Forwards: 69\r\n\
         To: <sip:alice@{DOMAIN}>\r\nFrom: <sip:alice@{DOMAIN}>;tag=ws1\r\nCall-ID: ws-register-1\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:k7r2@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:0d7c1b8e-3a54-4e43-9a2b-5b8f2c1e9a01>\";expires=300\r\n\
         Expires: 300\r\n{auth}User-Agent: tungstenite test\r\nContent-Length: 0\r\n\r\n"
    )
}

fn status_of(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn header<'m>(msg: &'m str, name: &str) -> Option<&'m str> {
    msg.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

#[test]
fn a_websocket_client_gets_sensible_answers_and_the_server_stays_up() {
    let env = TestEnv::new("sip_ws_bare_client");
    directory(&env);
    let ws_listen = SocketAddr::from(([127, 0, 0, 1], env.ports.peer_sip(7)));
    let server = server(&env, &format!("[sip_ws]\nlisten = \"{ws_listen}\"\n"));
    let url = format!("ws://{}/", server.http);

    let (mut ws, chosen) = open(&url, Some("sip")).expect("a SIP WebSocket at /");
    assert_eq!(chosen.as_deref(), Some("sip"), "the server agrees to the sip subprotocol");

    // Garbage: nothing to answer, nothing breaks.
    send(&mut ws, "hello, are you a SIP server?");
    ws.send(tungstenite::Message::Binary(vec![0xff, 0x00, 0x13, 0x37].into())).expect("send");
    assert_eq!(next_sip(&mut ws, Duration::from_millis(600)), None, "garbage is dropped silently");

    // A request that shows its headers but breaks one: 400.
    let broken = register(1, None).replace("CSeq: 1 REGISTER", "CSeq: one REGISTER");
    send(&mut ws, &broken);
    let resp = next_sip(&mut ws, Duration::from_secs(3)).expect("an answer to a broken CSeq");
    assert_eq!(status_of(&resp), Some(400), "{resp}");

    // REGISTER: a digest challenge, then 200 with the binding.
    send(&mut ws, &register(2, None));
    let resp = next_sip(&mut ws, Duration::from_secs(3)).expect("an answer to REGISTER");
    assert_eq!(status_of(&resp), Some(401), "{resp}");
    assert!(resp.contains("Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-reg-2"), "the Via comes back as sent: {resp}");
    assert_eq!(resp.matches("WWW-Authenticate:").count(), 1, "browsers get the MD5 challenge alone (JsSIP reads only the last): {resp}");
    let (challenge, qop) = sip::digest::Challenge::parse(header(&resp, "WWW-Authenticate").expect("a challenge")).expect("challenge parses");
    let auth = challenge.answer(qop, "alice", PASSWORD, "REGISTER", &format!("sip:{DOMAIN}"), "0a4f113b", 1);
    send(&mut ws, &register(3, Some(&auth)));
    let resp = next_sip(&mut ws, Duration::from_secs(3)).expect("an answer to the answered challenge");
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    assert!(resp.contains("df7jal23ls0d.invalid;transport=ws"), "the binding lists the WebSocket contact: {resp}");
    let regs: Value = server.get("/v1/registrations").json();
    assert!(regs.as_array().is_some_and(|a| a.iter().any(|r| r["login"] == "alice")), "alice is registered: {regs}");

    // Still serving: OPTIONS over the same socket, and the HTTP API.
    send(&mut ws, &format!("OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-opt\r\nMax-Forwards: 70\r\nTo: <sip:{DOMAIN}>\r\nFrom: <sip:alice@{DOMAIN}>;tag=o1\r\nCall-ID: ws-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"));
    let resp = next_sip(&mut ws, Duration::from_secs(3)).expect("an answer to OPTIONS");
    assert_eq!(status_of(&resp).map(|s| s / 100), Some(2), "{resp}");
    assert_eq!(server.get("/health").status, 200);

    // The dedicated listener wants the subprotocol; with it, it is the same SIP.
    let refused = open(&format!("ws://{ws_listen}/"), None);
    assert!(refused.is_err(), "an upgrade without `sip` is refused on [sip_ws] listen");
    let (mut ws2, chosen) = open(&format!("ws://{ws_listen}/any/path"), Some("sip")).expect("a SIP WebSocket on [sip_ws] listen");
    assert_eq!(chosen.as_deref(), Some("sip"));
    send(&mut ws2, &register(1, None).replace("ws-register-1", "ws-register-2"));
    assert_eq!(next_sip(&mut ws2, Duration::from_secs(3)).as_deref().and_then(status_of), Some(401));

    // `/` without the subprotocol is still the WCS SDK's socket.
    let (_wcs, chosen) = open(&url, None).expect("the WCS WebSocket at / still opens");
    assert_eq!(chosen, None);
    drop(ws);
    drop(ws2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/health").status, 200, "the server is still up");
}

/// A WebRTC offer as a browser makes one (ICE credentials, a DTLS fingerprint, Opus and
/// G.711), from a client that will never do ICE.
fn webrtc_offer() -> String {
    let fingerprint: Vec<String> = (0..32).map(|i| format!("{:02X}", i * 7 + 3)).collect();
    [
        "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0", "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Ws9y", "a=ice-pwd:K2Gqvbq1b0mN1QPUaSxVtY2x", "a=ice-options:trickle",
        &format!("a=fingerprint:sha-256 {}", fingerprint.join(":")),
        "a=setup:actpass", "a=mid:0", "a=sendrecv", "a=msid:- 7b3c5e1a-0000-4000-8000-000000000001", "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
        "a=ssrc:1001 cname:test", "",
    ]
    .join("\r\n")
}

fn invite(call_id: &str, cseq: u32, authorization: Option<(&str, &str)>) -> String {
    let sdp = webrtc_offer();
    let auth = authorization.map(|(h, a)| format!("{h}: {a}\r\n")).unwrap_or_default();
    format!(
        "INVITE sip:{ROOM}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-{call_id}-{cseq}\r\nMax-Forwards: 69\r\n\
         To: <sip:{ROOM}@{DOMAIN}>\r\nFrom: <sip:alice@{DOMAIN}>;tag=inv{cseq}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
         Contact: <sip:k7r2@df7jal23ls0d.invalid;transport=ws;ob>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Sends an INVITE (answering one digest challenge) to the room and ACKs its 200; the 200.
fn call_room(ws: &mut Ws, call_id: &str) -> String {
    send(ws, &invite(call_id, 1, None));
    let mut cseq = 1;
    loop {
        let msg = next_sip(ws, Duration::from_secs(10)).unwrap_or_else(|| panic!("no final answer to INVITE {call_id}"));
        let Some(status) = status_of(&msg) else { continue };
        if status < 200 {
            continue;
        }
        let to = header(&msg, "To").unwrap_or("").to_owned();
        let via = header(&msg, "Via").unwrap_or("").to_owned();
        let ack = |cseq: u32| {
            format!(
                "ACK sip:{ROOM}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 69\r\nTo: {to}\r\nFrom: <sip:alice@{DOMAIN}>;tag=inv{cseq}\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
            )
        };
        if (status == 401 || status == 407) && cseq == 1 {
            send(ws, &ack(cseq));
            let (name, answer) = if status == 401 { ("WWW-Authenticate", "Authorization") } else { ("Proxy-Authenticate", "Proxy-Authorization") };
            let (challenge, qop) = sip::digest::Challenge::parse(header(&msg, name).expect("a challenge")).expect("challenge parses");
            let auth = challenge.answer(qop, "alice", PASSWORD, "INVITE", &format!("sip:{ROOM}@{DOMAIN}"), "0a4f113c", 1);
            cseq = 2;
            send(ws, &invite(call_id, cseq, Some((answer, &auth))).replace("tag=inv2", "tag=inv1"));
            continue;
        }
        assert_eq!(status, 200, "the room answers the browser: {msg}");
        assert!(msg.contains("a=fingerprint:") && msg.contains("UDP/TLS/RTP/SAVPF"), "the browser gets the gateway's WebRTC answer: {msg}");
        let ack = ack(cseq).replace(&format!("tag=inv{cseq}"), "tag=inv1").replace(&format!("Via: {via}"), &format!("Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ack-{call_id}"));
        send(ws, &ack);
        return msg;
    }
}

/// The engine legs of SIP call `call_id` still up.
fn legs_of(server: &Server, call_id: &str) -> Vec<Value> {
    let legs: Value = server.get("/v1/calls").json();
    legs.as_array().map(|a| a.iter().filter(|l| l["call_id"] == call_id && l["state"] != "ended").cloned().collect()).unwrap_or_default()
}

#[test]
fn a_browser_call_whose_media_dies_or_whose_socket_closes_ends_at_once() {
    let env = TestEnv::new("sip_ws_dead_media");
    let _media = env.media_lock();
    directory(&env);
    let server = server(&env, "");
    let url = format!("ws://{}/", server.http);

    // A browser that offers WebRTC but never does ICE: the gateway gives up on it
    // (no ICE within 15 s), and the edge hangs up its call then, not at the engine's
    // 60 s RTP timeout.
    let (mut ws, _) = open(&url, Some("sip")).expect("a SIP WebSocket");
    let started = Instant::now();
    call_room(&mut ws, "dead-media-1");
    assert_eq!(legs_of(&server, "dead-media-1").len(), 1, "the browser is in the room: {}", server.get("/v1/calls").body);
    let bye = loop {
        let msg = next_sip(&mut ws, Duration::from_secs(30).saturating_sub(started.elapsed())).expect("a BYE for the dead call within 30 s");
        if msg.starts_with("BYE ") {
            break msg;
        }
    };
    let after = started.elapsed().as_secs_f64();
    assert_eq!(header(&bye, "Call-ID"), Some("dead-media-1"), "{bye}");
    let ok: String = bye
        .lines()
        .filter(|l| ["via:", "to:", "from:", "call-id:", "cseq:"].iter().any(|h| l.to_ascii_lowercase().starts_with(h)))
        .map(|l| format!("{l}\r\n"))
        .collect();
    send(&mut ws, &format!("SIP/2.0 200 OK\r\n{ok}Content-Length: 0\r\n\r\n"));
    assert!(after < 25.0, "ended {after:.1} s after the INVITE: by the gateway's ICE limit, not the RTP timeout");
    assert_eq!(log_count(&server, "browser media gone: ending its call"), 1);
    poll(Duration::from_secs(5), "the dead call's leg gone", || legs_of(&server, "dead-media-1").is_empty().then_some(()));

    // A live browser call whose socket closes: its leg goes at once.
    call_room(&mut ws, "closed-socket-2");
    assert_eq!(legs_of(&server, "closed-socket-2").len(), 1);
    drop(ws);
    poll(Duration::from_secs(5), "the closed socket's call gone", || legs_of(&server, "closed-socket-2").is_empty().then_some(()));
    assert_eq!(log_count(&server, "the browser's WebSocket closed"), 1);
    assert_eq!(server.get("/health").status, 200);
}
