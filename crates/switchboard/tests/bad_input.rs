//! Malformed and hostile SIP from raw sockets: junk datagrams, broken headers, lying
//! Content-Length, unknown methods, junk on TCP. The server must answer what it can
//! (400/501), drop what it cannot, and keep serving: OPTIONS and a real SIPp call still
//! work afterwards, a pjsua2 call in progress keeps its media throughout, and the
//! process is still alive.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::*;

const QUIET: Duration = Duration::from_millis(500);
const ANSWER: Duration = Duration::from_secs(3);

/// A request with the usual headers plus `extra` ones; Content-Length is added unless given.
fn request(
    method: &str,
    server: &Server,
    raw: &RawSip,
    call_id: &str,
    extra: &[&str],
    body: &str,
) -> String {
    let port = raw.local_port();
    let mut lines = vec![
        format!("{method} sip:echo@{} SIP/2.0", server.sip),
        format!("Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}"),
        "Max-Forwards: 70".to_string(),
        format!("From: <sip:e2e@127.0.0.1:{port}>;tag=e2e-{call_id}"),
        format!("To: <sip:echo@{}>", server.sip),
        format!("Call-ID: {call_id}"),
        format!("CSeq: 1 {method}"),
        format!("Contact: <sip:e2e@127.0.0.1:{port}>"),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    if !extra
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("content-length"))
    {
        lines.push(format!("Content-Length: {}", body.len()));
    }
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

fn without_header(msg: &str, name: &str) -> String {
    msg.split("\r\n")
        .filter(|l| {
            !l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn replace_header(msg: &str, name: &str, value: &str) -> String {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    msg.split("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase().starts_with(&prefix) {
                format!("{name}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

const SDP: &str = "v=0\r\no=e2e 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// OPTIONS over the raw socket gets a 200.
fn assert_options_ok(server: &Server, raw: &RawSip, call_id: &str) {
    raw.send(request("OPTIONS", server, raw, call_id, &[], "").as_bytes());
    let resp = raw
        .response_for(call_id, ANSWER)
        .unwrap_or_else(|| panic!("no answer to OPTIONS {call_id}"));
    assert_eq!(
        status_code(&resp),
        Some(200),
        "OPTIONS after bad input:\n{resp}"
    );
}

#[test]
fn junk_datagrams_are_dropped_silently() {
    let env = TestEnv::new("junk_datagrams_are_dropped_silently");
    let mut server = Server::start(&env);
    let raw = RawSip::new(&env, 0, server.sip);
    let mut junk = Junk::new(0x5eed);
    raw.send(b"");
    for size in [1, 7, 64, 512, 1400, 4000] {
        raw.send(&junk.bytes(size));
    }
    raw.send(&junk.bytes(60_000));
    raw.send(b"\r\n\r\n");
    raw.send(b"SIP/2.0 200 OK\r\n\r\n");
    raw.send(b"INVITE\r\n\r\n");
    raw.send(b"INVITE sip:echo@127.0.0.1 SIP/2.0\r\nVia: \xff\xfe\x00\r\n\r\n");
    raw.send(
        &[
            b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n".as_slice(),
            &junk.bytes(2000),
        ]
        .concat(),
    );
    let got = raw.recv_all(QUIET, 10);
    assert!(
        got.is_empty(),
        "server answered junk it cannot parse:\n{}",
        got.join("\n----\n")
    );
    server.assert_alive();
    assert_options_ok(&server, &raw, "after-junk-1");
}

#[test]
fn broken_cseq_gets_400() {
    let env = TestEnv::new("broken_cseq_gets_400");
    let server = Server::start(&env);
    let raw = RawSip::new(&env, 0, server.sip);
    let msg = replace_header(
        &request("OPTIONS", &server, &raw, "bad-cseq-1", &[], ""),
        "CSeq",
        "one OPTIONS",
    );
    raw.send(msg.as_bytes());
    let resp = raw
        .response_for("bad-cseq-1", ANSWER)
        .unwrap_or_else(|| panic!("no 400 for a broken CSeq; sent:\n{msg}"));
    assert_eq!(status_code(&resp), Some(400), "broken CSeq:\n{resp}");
    assert_options_ok(&server, &raw, "after-bad-cseq");
}

#[test]
fn oversize_content_length_on_udp_gets_400() {
    let env = TestEnv::new("oversize_content_length_on_udp_gets_400");
    let server = Server::start(&env);
    let raw = RawSip::new(&env, 0, server.sip);
    let msg = request(
        "INVITE",
        &server,
        &raw,
        "big-cl-1",
        &["Content-Type: application/sdp", "Content-Length: 99999"],
        SDP,
    );
    raw.send(msg.as_bytes());
    let resp = raw
        .response_for("big-cl-1", ANSWER)
        .unwrap_or_else(|| panic!("no 400 for Content-Length 99999; sent:\n{msg}"));
    assert_eq!(
        status_code(&resp),
        Some(400),
        "Content-Length 99999:\n{resp}"
    );
    assert_options_ok(&server, &raw, "after-big-cl");
}

#[test]
fn unknown_method_gets_501() {
    let env = TestEnv::new("unknown_method_gets_501");
    let server = Server::start(&env);
    let raw = RawSip::new(&env, 0, server.sip);
    // RFC 3261 §8.2.1: 501 for a method we do not recognise; methods are case-sensitive,
    // so `invite` is one of those too.
    for (method, call_id) in [("FOO", "foo-1"), ("invite", "lower-invite-1")] {
        raw.send(request(method, &server, &raw, call_id, &[], "").as_bytes());
        let resp = raw.response_for(call_id, ANSWER).unwrap_or_else(|| panic!("no answer to {method}"));
        assert_eq!(status_code(&resp), Some(501), "{method} must get 501 Not Implemented:\n{resp}");
    }
    // ...and 405 with Allow for a method we know but do not take here.
    // (MESSAGE is taken since instant messages; PUBLISH never is.)
    raw.send(request("PUBLISH", &server, &raw, "publish-1", &[], "").as_bytes());
    let resp = raw.response_for("publish-1", ANSWER).expect("no answer to PUBLISH");
    assert_eq!(status_code(&resp), Some(405), "PUBLISH must get 405 Method Not Allowed:\n{resp}");
    let allow = header_value(&resp, "Allow", "Allow").unwrap_or_default();
    assert!(allow.contains("INVITE") && allow.contains("MESSAGE") && !allow.contains("PUBLISH"), "405 without a fitting Allow:\n{resp}");
    assert_options_ok(&server, &raw, "after-foo");
}

#[test]
fn request_without_call_id_gets_400_or_nothing() {
    let env = TestEnv::new("request_without_call_id_gets_400_or_nothing");
    let mut server = Server::start(&env);
    let raw = RawSip::new(&env, 0, server.sip);
    let msg = without_header(
        &request("OPTIONS", &server, &raw, "no-call-id", &[], ""),
        "Call-ID",
    );
    raw.send(msg.as_bytes());
    for resp in raw.recv_all(QUIET, 5) {
        assert_eq!(
            status_code(&resp),
            Some(400),
            "request without Call-ID got:\n{resp}"
        );
    }
    server.assert_alive();
    assert_options_ok(&server, &raw, "after-no-call-id");
}

#[test]
fn requests_for_no_dialog_get_481() {
    let env = TestEnv::new("requests_for_no_dialog_get_481");
    let server = Server::start(&env);
    let raw = RawSip::new(&env, 0, server.sip);
    // a BYE with a To tag that matches no dialog
    let bye = request("BYE", &server, &raw, "no-dialog-1", &[], "").replacen(
        &format!("To: <sip:echo@{}>", server.sip),
        &format!("To: <sip:echo@{}>;tag=nosuchtag", server.sip),
        1,
    );
    raw.send(bye.as_bytes());
    let resp = raw
        .response_for("no-dialog-1", ANSWER)
        .unwrap_or_else(|| panic!("no answer to a BYE outside any dialog:\n{bye}"));
    assert_eq!(
        status_code(&resp),
        Some(481),
        "BYE outside any dialog:\n{resp}"
    );
}

#[test]
fn tcp_junk_then_new_connection_works() {
    let env = TestEnv::new("tcp_junk_then_new_connection_works");
    let mut server = Server::start(&env);
    let mut junk = Junk::new(42);
    {
        let mut conn = TcpStream::connect(server.sip).expect("connect TCP");
        let _ = conn.write_all(&junk.bytes(3000));
        let _ = conn.write_all(b"\r\n\r\nNOT SIP AT ALL\r\nContent-Length: -5\r\n\r\n");
        let _ = conn.write_all(&junk.bytes(70_000));
    }
    {
        // a request whose Content-Length promises more than ever arrives, then a hang-up
        let mut conn = TcpStream::connect(server.sip).expect("connect TCP");
        let _ = conn.write_all(b"OPTIONS sip:echo@127.0.0.1 SIP/2.0\r\nCall-ID: half\r\nContent-Length: 5000\r\n\r\nabc");
    }
    std::thread::sleep(Duration::from_millis(200));
    server.assert_alive();

    let mut conn = TcpStream::connect(server.sip).expect("connect TCP");
    let port = conn.local_addr().unwrap().port();
    let options = format!(
        "OPTIONS sip:echo@{sip} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-tcp-ok-1\r\nMax-Forwards: 70\r\nFrom: <sip:e2e@127.0.0.1:{port}>;tag=tcp1\r\nTo: <sip:echo@{sip}>\r\nCall-ID: tcp-ok-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        sip = server.sip
    );
    conn.write_all(options.as_bytes()).unwrap();
    let msgs = read_sip_tcp(&mut conn, ANSWER, 1);
    assert_eq!(
        msgs.len(),
        1,
        "no answer to OPTIONS on a new TCP connection after junk"
    );
    assert_eq!(
        status_code(&msgs[0]),
        Some(200),
        "OPTIONS over TCP after junk:\n{}",
        msgs[0]
    );
    assert_eq!(
        header_value(&msgs[0], "Call-ID", "i").as_deref(),
        Some("tcp-ok-1")
    );
}

/// The bad-input corpus the tests below send in one go: junk datagrams (one of 60 kB),
/// a broken CSeq, a lying Content-Length, an unknown method, INVITEs without Call-ID
/// and without Via. `round` makes the Call-IDs unique.
fn send_bad_input_corpus(server: &Server, raw: &RawSip, junk: &mut Junk, round: u32) {
    for _ in 0..20 {
        raw.send(&junk.bytes(900));
    }
    raw.send(&junk.bytes(60_000));
    let id = |n: u32| format!("mix-{round}-{n}");
    raw.send(
        replace_header(
            &request("OPTIONS", server, raw, &id(1), &[], ""),
            "CSeq",
            "x y z",
        )
        .as_bytes(),
    );
    raw.send(
        request(
            "INVITE",
            server,
            raw,
            &id(2),
            &["Content-Type: application/sdp", "Content-Length: 99999"],
            SDP,
        )
        .as_bytes(),
    );
    raw.send(request("FOO", server, raw, &id(3), &[], "").as_bytes());
    raw.send(
        without_header(
            &request(
                "INVITE",
                server,
                raw,
                &id(4),
                &["Content-Type: application/sdp"],
                SDP,
            ),
            "Call-ID",
        )
        .as_bytes(),
    );
    raw.send(
        without_header(
            &request(
                "INVITE",
                server,
                raw,
                &id(5),
                &["Content-Type: application/sdp"],
                SDP,
            ),
            "Via",
        )
        .as_bytes(),
    );
}

/// Everything above in one go, then a real call: the server must not be wedged.
#[test]
fn calls_still_work_after_bad_input() {
    let env = TestEnv::new("calls_still_work_after_bad_input");
    let mut server = Server::start(&env);
    let raw = RawSip::new(&env, 1, server.sip);
    let mut junk = Junk::new(7);
    send_bad_input_corpus(&server, &raw, &mut junk, 0);
    let _ = raw.recv_all(Duration::from_millis(300), 100);
    server.assert_alive();

    let run = Sipp::new(&env, "uac_call.xml", "uac")
        .remote(server.sip)
        .service("echo")
        .hold_ms(1000)
        .run();
    run.assert_ok();
    assert_options_ok(&server, &raw, "mix-after");
    server.assert_alive();
}

/// Epoch seconds, the clock of capture timestamps.
fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The largest gap between consecutive packet times within `[from, to]` (the edges
/// count as packets, so silence at either end shows too).
fn longest_gap(times: &[f64], from: f64, to: f64) -> (f64, f64) {
    let mut inside: Vec<f64> = times.iter().copied().filter(|t| *t >= from && *t <= to).collect();
    inside.insert(0, from);
    inside.push(to);
    inside
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .fold((0.0, from), |best, g| if g.0 > best.0 { g } else { best })
}

/// While a pjsua2 echo call carries media, the bad-input corpus arrives over and over
/// for a few seconds: the server's RTP to the caller must not stall (no gap over 60 ms
/// during the attack, from a capture on lo), the call must still be up afterwards, and
/// the caller must end it normally having heard its tone.
#[test]
fn bad_input_during_a_call_keeps_its_media() {
    const MAX_GAP_S: f64 = 0.060;
    let env = TestEnv::new("bad_input_during_a_call_keeps_its_media");
    let _media = env.media_lock();
    env.make_tones();
    let mut server = Server::start(&env);
    let pj_rtp = env.ports.pj_rtp(0);
    let capture = Capture::start(&env, "rtp", &format!("udp and portrange {pj_rtp}-{}", pj_rtp + 9));
    let rx = env.path("rx.wav");
    let args: Vec<String> = [
        "call",
        &format!("sip:echo@{}", server.sip),
        "--sip-port",
        &env.ports.peer_sip(0).to_string(),
        "--rtp-port",
        &pj_rtp.to_string(),
        "--rtp-range",
        "10",
        "--play",
        &env.path("tone440.wav").display().to_string(),
        "--loop",
        "--record",
        &rx.display().to_string(),
        "--duration",
        "7",
        "--max-time",
        "30",
        "--codec",
        "PCMU/8000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let caller = PjPeer::spawn(&env, "caller", &args);
    let leg = server.wait_for_leg(Duration::from_secs(10), "inbound echo active", |l| {
        l["direction"] == "inbound" && l["state"] == "active"
    });
    let leg_id = field(&leg, "leg_id").to_string();
    std::thread::sleep(Duration::from_millis(1000)); // media settles

    let raw = RawSip::new(&env, 1, server.sip);
    let mut junk = Junk::new(0xbad);
    let attack_from = epoch_now();
    let mut round = 0;
    while epoch_now() < attack_from + 3.0 {
        send_bad_input_corpus(&server, &raw, &mut junk, round);
        round += 1;
        let _ = raw.recv_all(Duration::from_millis(20), 100);
    }
    let attack_to = epoch_now();
    server.assert_alive();
    let now = server.get(&format!("/v1/calls/{leg_id}")).json();
    assert_eq!(field(&now, "state"), "active", "the call did not survive the bad input: {now}");

    let run = caller.wait();
    let packets = capture.stop();
    run.assert_ok();

    let (lo, hi) = env.ports.server_rtp();
    let times = |to_caller: bool| -> Vec<f64> {
        packets
            .iter()
            .filter(|p| p.is_rtp())
            .filter(|p| {
                let (ours, theirs) = if to_caller { (p.src.port(), p.dst.port()) } else { (p.dst.port(), p.src.port()) };
                (lo..=hi).contains(&ours) && (pj_rtp..pj_rtp + 10).contains(&theirs)
            })
            .map(|p| p.time)
            .collect()
    };
    let (down, up) = (times(true), times(false));
    let (gap, at) = longest_gap(&down, attack_from, attack_to);
    let (up_gap, up_at) = longest_gap(&up, attack_from, attack_to);
    let in_attack = down.iter().filter(|t| **t >= attack_from && **t <= attack_to).count();
    let summary = format!(
        "{round} rounds of bad input over {:.2} s; server→caller: {in_attack} RTP packets, longest gap {:.0} ms at +{:.2} s; \
         caller→server longest gap {:.0} ms at +{:.2} s; capture {}",
        attack_to - attack_from,
        gap * 1000.0,
        at - attack_from,
        up_gap * 1000.0,
        up_at - attack_from,
        env.path("rtp.pcap").display()
    );
    eprintln!("{summary}");
    assert!(round >= 10, "the attack barely ran. {summary}");
    assert!(gap <= MAX_GAP_S, "the server's RTP stalled during the bad input. {summary}");
    let (heard, verdict) = wav_tones(&rx, &[440], &[1000]);
    assert!(heard, "the caller did not hear its 440 Hz echoed: {verdict}; recording {}", rx.display());
    server.wait_all_ended(Duration::from_secs(3));
    server.assert_alive();
}
