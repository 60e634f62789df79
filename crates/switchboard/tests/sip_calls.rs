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

/// Hold (we send `a=sendonly`, the answer must be `recvonly`) and resume over
/// `transport`. SIPp streams RTP all along, 1 s per phase; a capture of SIP (UDP or TCP)
/// and RTP checks the server echoes before the hold, sends (almost) nothing while held,
/// and echoes again after the resume.
fn hold_and_resume(name: &str, tcp: bool) {
    let env = TestEnv::new(name);
    let server = Server::start(&env);
    let mut sipp = Sipp::new(&env, "uac_hold.xml", "uac")
        .remote(server.sip)
        .service("echo");
    if tcp {
        sipp = sipp.tcp();
    }
    let media = sipp.media_port();
    let capture = Capture::start(
        &env,
        "rtp",
        &format!("(udp and port {media}) or port {}", server.sip.port()),
    );
    let pcap = capture.path.clone();
    let run = sipp.run();
    let packets = capture.stop();
    run.assert_ok();

    // SIP to and from the server, one message each, in capture time
    let sip: Vec<(f64, String)> = if tcp {
        let data = std::fs::read(&pcap).expect("read pcap");
        read_pcap_tcp(&data)
            .expect("pcap")
            .iter()
            .flat_map(|p| sip_messages(&p.text()).into_iter().map(move |m| (p.time, m)))
            .collect()
    } else {
        packets
            .iter()
            .filter(|p| p.src.port() == server.sip.port() || p.dst.port() == server.sip.port())
            .map(|p| (p.time, p.text()))
            .collect()
    };
    let when = |first: &str, cseq: &str| -> f64 {
        sip.iter()
            .find(|(_, text)| {
                text.starts_with(first)
                    && header_value(text, "CSeq", "CSeq").as_deref() == Some(cseq)
            })
            .unwrap_or_else(|| panic!("no `{first}` with CSeq `{cseq}` in {}", capture_path(&env)))
            .0
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

/// The SIP messages in a TCP segment's text (several may share one), framed by
/// Content-Length.
fn sip_messages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end + 4];
        let len: usize = header_value(head, "Content-Length", "l").and_then(|v| v.parse().ok()).unwrap_or(0);
        let stop = (end + 4 + len).min(rest.len());
        out.push(rest[..stop].trim_start().to_string());
        rest = &rest[stop..];
    }
    out
}

#[test]
fn hold_and_resume_by_reinvite() {
    hold_and_resume("hold_and_resume_by_reinvite", false);
}

#[test]
fn hold_and_resume_by_reinvite_over_tcp() {
    hold_and_resume("hold_and_resume_by_reinvite_over_tcp", true);
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
/// call) and no BYE of ours follows — the no-ACK BYE would be due 64*T1 after the 200,
/// so we listen past that. T1 = 100 ms: unchecked, 200s would repeat at 0.1, 0.3, 0.7,
/// 1.5 s..., and a wrongful BYE come at 6.4 s.
#[test]
fn bye_without_ack_stops_200_retransmissions() {
    let env = TestEnv::new("bye_without_ack_stops_200_retransmissions");
    let t1_ms = 100;
    let server = Server::start_with(&env, ServerOptions { t1_ms: Some(t1_ms), ..Default::default() });
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
    let got_200 = std::time::Instant::now();
    let to = header_value(&ok, "To", "t").unwrap();
    let tag = to.split(";tag=").nth(1).expect("To tag in the 200").split(';').next().unwrap().to_string();
    raw.send(format!("{}Content-Length: 0\r\n\r\n", headers("BYE", 2, "bye", &format!(";tag={tag}"))).as_bytes());

    // until well past the 64*T1 at which a no-ACK BYE would go out
    let listen_until = got_200 + Duration::from_millis(64 * t1_ms + 1500);
    let after: Vec<String> = raw.recv_all(listen_until.saturating_duration_since(std::time::Instant::now()), 100);
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

/// A UAC driven by hand on a raw UDP socket: INVITE → 200 → ACK, then re-INVITEs with a
/// chosen SDP direction, then BYE. Each request waits for its 200.
struct RawUac<'a> {
    raw: RawSip,
    server: &'a Server,
    call_id: String,
    dial: String,
    /// The server's To tag and Contact, once answered.
    to_tag: String,
    target: String,
    cseq: u32,
    rtp_port: u16,
}

impl<'a> RawUac<'a> {
    /// Calls `sip:<dial>@server` from peer slot `slot`, offering PCMU on `rtp_port`.
    fn call(env: &TestEnv, server: &'a Server, slot: u16, dial: &str, call_id: &str, rtp_port: u16) -> RawUac<'a> {
        let mut uac = RawUac {
            raw: RawSip::new(env, slot, server.sip),
            server,
            call_id: call_id.to_string(),
            dial: dial.to_string(),
            to_tag: String::new(),
            target: format!("sip:{dial}@{}", server.sip),
            cseq: 0,
            rtp_port,
        };
        let ok = uac.invite("sendrecv");
        let to = header_value(&ok, "To", "t").unwrap_or_default();
        uac.to_tag = to.split(";tag=").nth(1).expect("To tag in the 200").split(';').next().unwrap().to_string();
        let contact = header_value(&ok, "Contact", "m").expect("Contact in the 200");
        uac.target = contact.trim().trim_start_matches('<').split('>').next().unwrap().to_string();
        uac.ack();
        uac
    }

    fn request(&self, method: &str, cseq: u32, branch: &str, body: &str) -> String {
        let port = self.raw.local_port();
        let to_tag = if self.to_tag.is_empty() { String::new() } else { format!(";tag={}", self.to_tag) };
        let content_type = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:raw@127.0.0.1:{port}>;tag=raw-{call}\r\nTo: <sip:{dial}@{server}>{to_tag}\r\nCall-ID: {call}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:raw@127.0.0.1:{port}>\r\n{content_type}Content-Length: {len}\r\n\r\n{body}",
            target = self.target,
            call = self.call_id,
            dial = self.dial,
            server = self.server.sip,
            len = body.len(),
        )
    }

    /// Sends a request and returns the 200 that answers it (skipping 1xx and stale retransmissions).
    fn transact(&mut self, method: &str, body: &str) -> String {
        self.cseq += 1;
        let cseq = format!("{} {method}", self.cseq);
        let branch = format!("{}-{}", self.call_id, self.cseq);
        self.raw.send(self.request(method, self.cseq, &branch, body).as_bytes());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let resp = self.raw.response_for(&self.call_id, left).unwrap_or_else(|| panic!("no 200 to {cseq}"));
            if header_value(&resp, "CSeq", "CSeq").as_deref() == Some(cseq.as_str()) && status_code(&resp).is_some_and(|c| c >= 200) {
                assert_eq!(status_code(&resp), Some(200), "{cseq}:\n{resp}");
                return resp;
            }
        }
    }

    /// INVITE (or re-INVITE) offering `direction`; ACKs the 200 unless it is the first.
    fn invite(&mut self, direction: &str) -> String {
        let version = self.cseq + 1;
        let sdp = format!(
            "v=0\r\no=raw 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n",
            self.rtp_port
        );
        let ok = self.transact("INVITE", &sdp);
        if !self.to_tag.is_empty() {
            self.ack();
        }
        ok
    }

    fn ack(&self) {
        let branch = format!("{}-{}-ack", self.call_id, self.cseq);
        self.raw.send(self.request("ACK", self.cseq, &branch, "").as_bytes());
    }

    fn bye(&mut self) {
        self.transact("BYE", "");
    }
}

/// The direction attribute of an SDP body (`sendrecv` when none is given).
fn sdp_direction(msg: &str) -> &str {
    ["sendonly", "recvonly", "inactive", "sendrecv"]
        .into_iter()
        .find(|d| msg.lines().any(|l| l.trim() == format!("a={d}")))
        .unwrap_or("sendrecv")
}

/// A room participant that puts the call on hold by re-INVITE (`a=sendonly`, then
/// `a=inactive`) shows `state: held` over REST, and `active` again after each resume
/// (`a=sendrecv`); its leg in `/v1/calls` follows.
#[test]
fn held_participant_state_follows_reinvites() {
    let env = TestEnv::new("held_participant_state_follows_reinvites");
    let server = Server::start(&env);
    // somewhere for the room's RTP to land
    let _rtp = std::net::UdpSocket::bind((LOCALHOST, env.ports.sipp_media(0))).expect("bind RTP");
    let mut uac = RawUac::call(&env, &server, 0, "conf-3", "held-state-1", env.ports.sipp_media(0));
    let (confid, parts) = wait_room_active(&server, 1);
    let pid = parts[0]["participantid"].as_str().expect("participantid").to_string();
    let path = format!("/rest/v1/uc/conferences/{confid}/participants/{pid}");

    let wait_state = |want: &str, after: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let p = server.get(&path);
            assert_eq!(p.status, 200, "GET {path}: {p:?}");
            let p = p.json();
            let legs = server.legs();
            let leg = legs.iter().find(|l| l["call_id"] == "held-state-1").cloned().unwrap_or_default();
            if p["state"] == want && leg["state"] == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after {after}: participant state {} and leg state {}, want {want}: {p}",
                p["state"],
                leg["state"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_state("active", "the call");
    for (hold, answer) in [("sendonly", ["recvonly", "inactive"]), ("inactive", ["inactive", "inactive"])] {
        let ok = uac.invite(hold);
        assert!(answer.contains(&sdp_direction(&ok)), "a={hold} answered a={}:\n{ok}", sdp_direction(&ok));
        wait_state("held", &format!("re-INVITE a={hold}"));
        let ok = uac.invite("sendrecv");
        assert_eq!(sdp_direction(&ok), "sendrecv", "resume answered:\n{ok}");
        wait_state("active", &format!("resume after a={hold}"));
    }
    uac.bye();
    // the room ends with its last participant; the leg stays listed
    server.wait_for_leg(Duration::from_secs(3), "ended by the BYE", |l| l["call_id"] == "held-state-1" && l["state"] == "ended");
}
