//! The engine as a sans-IO core: SIP messages in, transmissions out, on a virtual
//! clock. Media is the real runtime on a loopback port range (the engine binds ports
//! for its SDP), but no RTP flows: these tests are about signalling state.

use engine::{Engine, EngineConfig, LegState};
use media::{MediaConfig, MediaEngine};
use sip::parse::parse_datagram;
use sip::{Peer, Transport};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const CALLER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5999);
const SDP: &str = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

struct Harness {
    engine: Engine,
    now: Instant,
    _media: MediaEngine,
    /// The RTP range's block of ports (dropped after the media engine).
    _ports: testports::PortBlock,
}

impl Harness {
    /// `ports`: how many RTP ports this test needs, from a block of its own
    /// (`testports`: tests in this file run in parallel, and other test binaries too).
    fn new(ports: u16, tune: impl FnOnce(&mut EngineConfig)) -> Harness {
        let block = testports::PortBlock::take();
        let media = MediaEngine::start(
            MediaConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), rtp_ports: block.range(0, ports), workers: 1, ..Default::default() },
            Box::new(|_| {}),
        )
        .expect("media runtime");
        let mut cfg = EngineConfig::default();
        tune(&mut cfg);
        Harness { engine: Engine::new(cfg, media.handle()), now: Instant::now(), _media: media, _ports: block }
    }

    fn deliver(&mut self, text: &str) {
        let msg = parse_datagram(text.as_bytes()).expect("test message parses");
        self.engine.handle_sip(self.now, msg, Peer { addr: CALLER, transport: Transport::Udp });
    }

    /// Everything the engine sends, as text.
    fn sent(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.engine.poll_transmit()).map(|(_, b)| String::from_utf8_lossy(&b).into_owned()).collect()
    }

    /// Runs the virtual clock forward `d` in timer steps; returns what was sent meanwhile.
    fn advance(&mut self, d: Duration) -> Vec<String> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.engine.poll_timeout().filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.engine.handle_timeout(self.now);
            out.extend(self.sent());
        }
        self.now = end;
        out
    }
}

fn request(method: &str, call: &str, cseq: u32, to_tag: Option<&str>, body: &str) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    format!(
        "{method} sip:echo@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{call}-{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:t@{CALLER}>;tag=caller\r\nTo: <sip:echo@127.0.0.1:5060>{to_tag}\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:t@{CALLER}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn is_response(m: &str, status: u16, method: &str) -> bool {
    m.starts_with(&format!("SIP/2.0 {status} ")) && m.lines().any(|l| l.starts_with("CSeq:") && l.ends_with(method))
}

/// Calls `echo` and returns the To tag of the engine's 200 (the ACK is not sent).
fn answered_call(h: &mut Harness, call: &str) -> String {
    h.deliver(&request("INVITE", call, 1, None, SDP));
    let sent = h.sent();
    let ok = sent.iter().find(|m| is_response(m, 200, "INVITE")).unwrap_or_else(|| panic!("no 200: {sent:#?}"));
    let to = ok.lines().find(|l| l.starts_with("To:")).expect("To in 200");
    to.split(";tag=").nth(1).expect("To tag").trim().to_string()
}

#[test]
fn unacked_200_is_retransmitted_until_a_bye_shows_it_arrived() {
    let mut h = Harness::new(20, |_| {});
    let tag = answered_call(&mut h, "no-ack-1");
    // No ACK: the 200 goes out again at T1, 2*T1, ...
    let resent = h.advance(Duration::from_millis(1_600));
    assert_eq!(resent.iter().filter(|m| is_response(m, 200, "INVITE")).count(), 2, "200s at 0.5 s and 1.5 s: {resent:#?}");

    h.deliver(&request("BYE", "no-ack-1", 2, Some(&tag), ""));
    assert!(h.sent().iter().any(|m| is_response(m, 200, "BYE")), "BYE answered");
    assert_eq!(h.engine.live_legs(), 0);
    let after = h.advance(Duration::from_secs(40));
    assert!(!after.iter().any(|m| is_response(m, 200, "INVITE")), "200 retransmitted after the BYE: {after:#?}");
    assert!(!after.iter().any(|m| m.starts_with("BYE ")), "no BYE of ours for a call the caller ended: {after:#?}");
}

#[test]
fn unacked_200_without_bye_ends_in_our_bye() {
    let mut h = Harness::new(20, |_| {});
    answered_call(&mut h, "no-ack-2");
    let sent = h.advance(Duration::from_secs(40));
    assert!(sent.iter().filter(|m| is_response(m, 200, "INVITE")).count() >= 5, "{sent:#?}");
    let first_bye = sent.iter().position(|m| m.starts_with("BYE ")).unwrap_or_else(|| panic!("no BYE after 64*T1: {sent:#?}"));
    assert!(sent[first_bye..].iter().all(|m| !is_response(m, 200, "INVITE")), "200s stop when we give up: {sent:#?}");
}

#[test]
fn ended_legs_are_capped_oldest_first() {
    let mut h = Harness::new(40, |c| c.ended_retention_max = 3);
    let mut tags = Vec::new();
    for i in 0..5 {
        let call = format!("capped-{i}");
        let tag = answered_call(&mut h, &call);
        h.deliver(&request("ACK", &call, 1, Some(&tag), ""));
        h.deliver(&request("BYE", &call, 2, Some(&tag), ""));
        h.sent();
        tags.push(tag);
    }
    let legs = h.engine.legs();
    let mut calls: Vec<&str> = legs.iter().map(|l| l.call_id.as_str()).collect();
    calls.sort();
    assert_eq!(calls, ["capped-2", "capped-3", "capped-4"], "the three newest ended legs stay");
    assert!(legs.iter().all(|l| l.state == LegState::Ended));
    // A forgotten call's late BYE is answered 481, not mistaken for anything.
    h.deliver(&request("BYE", "capped-0", 3, Some(&tags[0]), ""));
    assert!(h.sent().iter().any(|m| is_response(m, 481, "BYE")));
}
