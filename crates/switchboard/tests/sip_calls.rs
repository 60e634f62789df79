//! Inbound SIP calls from SIPp to the real server over UDP and TCP on 127.0.0.1:
//! a basic call with RTP echoed back, CANCEL before answer, BYE from either side,
//! hold/resume by re-INVITE, OPTIONS, a caller that never ACKs, and SIGTERM with a
//! call up. Scenarios live in `tests/kit/sipp/`; see `support/mod.rs` for the harness.

mod support;

use std::time::Duration;
use support::*;

/// Basic call over `transport`: SIPp streams a 440 Hz A-law tone for 3 s to `echo` and
/// hangs up. Passes if SIPp completes the call and the server sent RTP (PCMA, from its
/// RTP range) back to SIPp's media port — counted in a capture on `lo`.
fn call_echo_with_rtp(name: &str, tcp: bool) {
    let env = TestEnv::new(name);
    let server = Server::start(&env);
    let mut sipp = Sipp::new(&env, "uac_call.xml", "uac")
        .remote(server.sip)
        .service("echo")
        .hold_ms(3000);
    if tcp {
        sipp = sipp.tcp();
    }
    let media = sipp.media_port();
    let capture = Capture::start(&env, "rtp", &format!("udp and port {media}"));
    let run = sipp.run();
    let packets = capture.stop();
    run.assert_ok();

    let (lo, hi) = env.ports.server_rtp();
    let sent = packets
        .iter()
        .filter(|p| p.src.port() == media && p.is_rtp())
        .count();
    let back: Vec<&UdpPacket> = packets
        .iter()
        .filter(|p| p.dst.port() == media && p.src.port() != media && p.is_rtp())
        .collect();
    let from_range = back
        .iter()
        .filter(|p| (lo..=hi).contains(&p.src.port()))
        .count();
    let pcma = back.iter().filter(|p| p.rtp_payload_type() == 8).count();
    let summary = format!(
        "SIPp sent {sent} RTP packets; {} came back ({from_range} from the server's range {lo}-{hi}, {pcma} PCMA); capture {}",
        back.len(),
        capture_path(&env)
    );
    eprintln!("{summary}");
    assert!(
        sent >= 50,
        "SIPp itself sent too little RTP — test setup problem. {summary}"
    );
    // 3 s at 50 packets/s = 150 sent; demand at least a third back.
    assert!(
        back.len() >= 50,
        "too little RTP echoed back. {summary}\n{}",
        run.report()
    );
    assert_eq!(
        from_range,
        back.len(),
        "RTP came back from outside --rtp-ports. {summary}"
    );
    assert_eq!(
        pcma,
        back.len(),
        "echoed RTP is not PCMA (the only codec offered). {summary}"
    );
    server.wait_all_ended(Duration::from_secs(3));
}

fn capture_path(env: &TestEnv) -> String {
    env.path("rtp.pcap").display().to_string()
}

#[test]
fn udp_call_to_echo_gets_rtp_back() {
    call_echo_with_rtp("udp_call_to_echo_gets_rtp_back", false);
}

#[test]
fn tcp_call_to_echo_gets_rtp_back() {
    call_echo_with_rtp("tcp_call_to_echo_gets_rtp_back", true);
}

#[test]
fn cancel_before_answer_gets_487() {
    let env = TestEnv::new("cancel_before_answer_gets_487");
    let server = Server::start(&env);
    let run = Sipp::new(&env, "uac_cancel.xml", "uac")
        .remote(server.sip)
        .service("ring")
        .run();
    run.assert_ok();
    server.wait_all_ended(Duration::from_secs(3));
}

#[test]
fn cancel_before_answer_gets_487_over_tcp() {
    let env = TestEnv::new("cancel_before_answer_gets_487_over_tcp");
    let server = Server::start(&env);
    let run = Sipp::new(&env, "uac_cancel.xml", "uac")
        .remote(server.sip)
        .service("ring")
        .tcp()
        .run();
    run.assert_ok();
    server.wait_all_ended(Duration::from_secs(3));
}

#[test]
fn bye_from_server_via_api_delete() {
    let env = TestEnv::new("bye_from_server_via_api_delete");
    let server = Server::start(&env);
    let uac = Sipp::new(&env, "uac_wait_bye.xml", "uac")
        .remote(server.sip)
        .service("echo")
        .spawn();
    let leg = server.wait_for_leg(Duration::from_secs(10), "inbound and active", |l| {
        l["direction"] == "inbound" && l["state"] == "active"
    });
    let leg_id = field(&leg, "leg_id");
    assert!(!leg_id.is_empty(), "leg without leg_id: {leg}");
    assert_eq!(field(&leg, "service"), "echo", "leg: {leg}");
    let one = server.get(&format!("/v1/calls/{leg_id}"));
    assert_eq!(one.status, 200, "GET /v1/calls/{leg_id}: {one:?}");
    assert_eq!(field(&one.json(), "leg_id"), leg_id);

    let resp = server.delete(&format!("/v1/calls/{leg_id}"));
    assert!(
        (200..300).contains(&resp.status),
        "DELETE /v1/calls/{leg_id}: {resp:?}"
    );
    let run = uac.wait();
    run.assert_ok();
    assert_eq!(
        run.received("BYE ").len(),
        1,
        "expected exactly one BYE\n{}",
        run.report()
    );
    server.wait_all_ended(Duration::from_secs(3));
}

/// Hold (we send `a=sendonly`, the answer must be `recvonly`) and resume. SIPp streams RTP
/// all along, 1 s per phase; a capture of SIP and RTP checks the server echoes before
/// the hold, sends (almost) nothing while held, and echoes again after the resume.
#[test]
fn hold_and_resume_by_reinvite() {
    let env = TestEnv::new("hold_and_resume_by_reinvite");
    let server = Server::start(&env);
    let sipp = Sipp::new(&env, "uac_hold.xml", "uac")
        .remote(server.sip)
        .service("echo");
    let (sip_port, media) = (sipp.local_port(), sipp.media_port());
    let capture = Capture::start(
        &env,
        "rtp",
        &format!("udp and (port {media} or port {sip_port})"),
    );
    let run = sipp.run();
    let packets = capture.stop();
    run.assert_ok();

    // SIP events, by their first line and CSeq, in capture time
    let when = |first: &str, cseq: &str| -> f64 {
        packets
            .iter()
            .find(|p| {
                let text = p.text();
                text.starts_with(first)
                    && header_value(&text, "CSeq", "CSeq").as_deref() == Some(cseq)
            })
            .unwrap_or_else(|| panic!("no `{first}` with CSeq `{cseq}` in {}", capture_path(&env)))
            .time
    };
    let ack = when("ACK ", "1 ACK");
    let hold_sent = when("INVITE ", "2 INVITE");
    let held = when("SIP/2.0 200", "2 INVITE");
    let resume_sent = when("INVITE ", "3 INVITE");
    let resumed = when("SIP/2.0 200", "3 INVITE");
    let bye = when("BYE ", "4 BYE");
    let echoed = |from: f64, to: f64| {
        packets
            .iter()
            .filter(|p| {
                p.dst.port() == media
                    && p.src.port() != media
                    && p.is_rtp()
                    && p.time > from
                    && p.time < to
            })
            .count()
    };
    let (before, during, after) = (
        echoed(ack, hold_sent),
        echoed(held + 0.1, resume_sent),
        echoed(resumed + 0.2, bye),
    );
    let summary = format!(
        "RTP echoed to SIPp: {before} before hold ({:.2} s), {during} while held ({:.2} s), {after} after resume ({:.2} s); capture {}",
        hold_sent - ack,
        resume_sent - held - 0.1,
        bye - resumed - 0.2,
        capture_path(&env)
    );
    eprintln!("{summary}");
    assert!(before >= 20, "too little echo before the hold. {summary}");
    assert!(
        during <= 2,
        "server kept sending RTP while held (it answered recvonly). {summary}"
    );
    assert!(
        after >= 15,
        "echo did not come back after the resume. {summary}"
    );
    server.wait_all_ended(Duration::from_secs(3));
}

#[test]
fn hold_and_resume_by_reinvite_over_tcp() {
    let env = TestEnv::new("hold_and_resume_by_reinvite_over_tcp");
    let server = Server::start(&env);
    let run = Sipp::new(&env, "uac_hold.xml", "uac")
        .remote(server.sip)
        .service("echo")
        .tcp()
        .run();
    run.assert_ok();
}

#[test]
fn options_gets_200_with_allow() {
    let env = TestEnv::new("options_gets_200_with_allow");
    let server = Server::start(&env);
    Sipp::new(&env, "options.xml", "udp")
        .remote(server.sip)
        .service("anyone")
        .run()
        .assert_ok();
    Sipp::new(&env, "options.xml", "tcp")
        .remote(server.sip)
        .service("anyone")
        .tcp()
        .slot(1)
        .run()
        .assert_ok();
}

#[test]
fn unknown_user_gets_404() {
    let env = TestEnv::new("unknown_user_gets_404");
    let server = Server::start(&env);
    // uac_call expects a 200, so it must fail; the flow shows what came back instead.
    let run = Sipp::new(&env, "uac_call.xml", "uac")
        .remote(server.sip)
        .service("nobody-here")
        .timeout_s(10)
        .run();
    let finals: Vec<String> = run
        .received("SIP/2.0 ")
        .iter()
        .map(|m| m.first_line().to_string())
        .collect();
    assert!(
        finals.iter().any(|l| l.starts_with("SIP/2.0 404")),
        "no 404 for an unknown user; got {finals:?}\n{}",
        run.report()
    );
    assert!(
        !run.success(),
        "SIPp's call to an unknown user succeeded?\n{}",
        run.report()
    );
}

/// RFC 3261 13.3.1.4: a 2xx that is never ACKed is retransmitted (T1, 2*T1, ... up to T2)
/// and after 64*T1 the UAS sends BYE. T1 = 100 ms here, so BYE after about 6.4 s.
#[test]
fn unacked_200_is_retransmitted_then_bye() {
    let env = TestEnv::new("unacked_200_is_retransmitted_then_bye");
    let t1_ms = 100;
    let server = Server::start_with(
        &env,
        ServerOptions {
            t1_ms: Some(t1_ms),
            ..Default::default()
        },
    );
    let run = Sipp::new(&env, "uac_no_ack.xml", "uac")
        .remote(server.sip)
        .service("echo")
        .timeout_s(20)
        .run();
    run.assert_ok();
    let oks = run.received("SIP/2.0 200");
    assert!(
        oks.len() >= 3,
        "expected the 200 plus at least 2 retransmissions, got {} 200s\n{}",
        oks.len(),
        run.report()
    );
    let byes = run.received("BYE ");
    assert_eq!(byes.len(), 1, "expected one BYE\n{}", run.report());
    let waited = seconds(&byes[0].time) - seconds(&oks[0].time);
    let expected = 64.0 * t1_ms as f64 / 1000.0;
    assert!(
        waited > expected * 0.8 && waited < expected * 2.0,
        "BYE came {waited:.2} s after the first 200; expected about 64*T1 = {expected:.1} s\n{}",
        run.report()
    );
    server.wait_all_ended(Duration::from_secs(3));
}

/// A caller whose ACK is lost but who hangs up (BYE) right after our 200: the BYE shows
/// the 200 arrived, so its retransmissions stop (else they run for 64*T1 into a dead
/// call) and no BYE of ours follows. T1 = 100 ms: unchecked, 200s would repeat at
/// 0.1, 0.3, 0.7, 1.5 s...
#[test]
fn bye_without_ack_stops_200_retransmissions() {
    let env = TestEnv::new("bye_without_ack_stops_200_retransmissions");
    let server = Server::start_with(&env, ServerOptions { t1_ms: Some(100), ..Default::default() });
    let raw = RawSip::new(&env, 1, server.sip);
    let port = raw.local_port();
    let sdp = "v=0\r\no=e2e 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let headers = |method: &str, cseq: u32, branch: &str, to_tag: &str| {
        format!(
            "{method} sip:echo@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:e2e@127.0.0.1:{port}>;tag=caller\r\nTo: <sip:echo@{server}>{to_tag}\r\nCall-ID: bye-no-ack\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:e2e@127.0.0.1:{port}>\r\n",
            server = server.sip
        )
    };
    raw.send(format!("{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", headers("INVITE", 1, "inv", ""), sdp.len()).as_bytes());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let ok = loop {
        let r = raw.response_for("bye-no-ack", Duration::from_secs(5)).expect("a response to the INVITE");
        if status_code(&r) == Some(200) {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "no 200 to the INVITE");
    };
    let to = header_value(&ok, "To", "t").unwrap();
    let tag = to.split(";tag=").nth(1).expect("To tag in the 200").split(';').next().unwrap().to_string();
    raw.send(format!("{}Content-Length: 0\r\n\r\n", headers("BYE", 2, "bye", &format!(";tag={tag}"))).as_bytes());

    let after: Vec<String> = raw.recv_all(Duration::from_secs(2), 100);
    let cseq = |m: &String| header_value(m, "CSeq", "CSeq").unwrap_or_default();
    let bye_ok = after.iter().filter(|m| status_code(m) == Some(200) && cseq(m).ends_with("BYE")).count();
    let invite_200s = after.iter().filter(|m| status_code(m) == Some(200) && cseq(m).ends_with("INVITE")).count();
    assert_eq!(bye_ok, 1, "BYE answered once: {after:#?}");
    // One retransmission may already be on its way when the BYE lands.
    assert!(invite_200s <= 1, "the 200 kept being retransmitted after the BYE ({invite_200s} copies): {after:#?}");
    assert!(!after.iter().any(|m| m.starts_with("BYE ")), "the server sent a BYE for a call the caller ended: {after:#?}");
    server.wait_all_ended(Duration::from_secs(3));
}

/// Seconds since midnight from SIPp's `HH:MM:SS.ffffff`.
fn seconds(time: &str) -> f64 {
    let parts: Vec<f64> = time
        .split(':')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("bad SIPp time {time:?}"))
        })
        .collect();
    assert_eq!(parts.len(), 3, "bad SIPp time {time:?}");
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// SIGTERM with a call up: the server sends BYE to the caller, then exits 0.
#[test]
fn sigterm_sends_bye_then_exits_cleanly() {
    let env = TestEnv::new("sigterm_sends_bye_then_exits_cleanly");
    let mut server = Server::start(&env);
    let uac = Sipp::new(&env, "uac_wait_bye.xml", "uac")
        .remote(server.sip)
        .service("echo")
        .spawn();
    server.wait_for_leg(Duration::from_secs(10), "inbound and active", |l| {
        l["state"] == "active"
    });
    let status = server.terminate(Duration::from_secs(10));
    let run = uac.wait();
    run.assert_ok();
    assert!(
        matches!(status, Some(s) if s.success()),
        "server did not exit cleanly on SIGTERM: {}",
        describe(status)
    );
}
