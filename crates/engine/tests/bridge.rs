//! The bridge application on a virtual clock: a call to a user forks to every
//! registered contact, passes 180 on, the first 2xx wins and the other fork gets
//! CANCEL; busy maps to 486; no answer within the ring time is 480 with CANCELs.

use engine::users::{Binding, DirectorySnapshot, Domain, User};
use engine::{CallState, Disposition, Engine, EngineConfig, EngineEvent};
use media::{MediaConfig, MediaEngine};
use sip::parse::parse_datagram;
use sip::{Peer, Transport};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

const CALLER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5997);
const DESK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6101);
const MOBILE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6102);
const SDP: &str = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

struct Harness {
    engine: Engine,
    now: Instant,
    _media: MediaEngine,
    _ports: testports::PortBlock,
}

impl Harness {
    fn new() -> Harness {
        let block = testports::PortBlock::take();
        let media = MediaEngine::start(
            MediaConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), rtp_ports: block.range(0, 24), workers: 1, ..Default::default() },
            Box::new(|_| {}),
        )
        .expect("media runtime");
        let mut cfg = EngineConfig { ring_time: Duration::from_secs(20), ..Default::default() };
        // The caller's address is trusted (a gateway): no digest challenge in these tests.
        cfg.security.trusted_networks = vec!["127.0.0.1/32".parse().expect("cidr")];
        let mut engine = Engine::new(cfg, media.handle());
        let domain = Domain { id: 1, name: "alpha.test".into(), aliases: vec![], realm: "alpha.test".into(), enabled: true };
        let bob = User { id: 10, domain_id: 1, login: "bob".into(), display_name: Some("Bob B".into()), ext: Some("3045".into()), enabled: true, ..Default::default() };
        let alice = User { id: 11, domain_id: 1, login: "alice".into(), display_name: Some("Alice A".into()), ext: Some("3044".into()), enabled: true, ..Default::default() };
        engine.set_directory(DirectorySnapshot::new(1, vec![domain], vec![bob, alice], vec![]).shared());
        let expires = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64 + 3_600_000;
        let binding = |addr: SocketAddr| Binding {
            user_id: 10,
            domain_id: 1,
            contact: format!("sip:bob@{addr}"),
            q: 1000,
            expires_at_ms: expires,
            call_id: format!("reg-{}", addr.port()),
            cseq: 1,
            source: addr,
            transport: "udp".into(),
            user_agent: None,
        };
        let now = Instant::now();
        engine.restore_bindings(now, vec![binding(DESK), binding(MOBILE)]);
        Harness { engine, now, _media: media, _ports: block }
    }

    fn deliver(&mut self, text: &str, from: SocketAddr) {
        let msg = parse_datagram(text.as_bytes()).expect("test message parses");
        self.engine.handle_sip(self.now, msg, Peer { addr: from, transport: Transport::Udp });
    }

    fn sent(&mut self) -> Vec<(SocketAddr, String)> {
        std::iter::from_fn(|| self.engine.poll_transmit()).map(|(p, b)| (p.addr, String::from_utf8_lossy(&b).into_owned())).collect()
    }

    fn advance(&mut self, d: Duration) -> Vec<(SocketAddr, String)> {
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

    fn events(&mut self) -> Vec<EngineEvent> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    /// The caller INVITEs `target`; returns the forked INVITEs, by destination.
    fn call(&mut self, target: &str, call: &str) -> Vec<(SocketAddr, String)> {
        let invite = format!(
            "INVITE sip:{target}@alpha.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{call}\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:3044@alpha.test>;tag=c-{call}\r\nTo: <sip:{target}@alpha.test>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:alice@{CALLER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        self.deliver(&invite, CALLER);
        self.sent().into_iter().filter(|(_, m)| m.starts_with("INVITE ")).collect()
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines().find(|l| l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase()))).map(|l| l[name.len() + 1..].trim()).unwrap_or("")
}

/// A response from a phone to one of our INVITEs.
fn response(invite: &str, status: u16, reason: &str, tag: &str, sdp: bool) -> String {
    let contact = invite.split_whitespace().nth(1).unwrap_or("sip:bob@127.0.0.1:6100").to_owned();
    let body = if sdp { SDP } else { "" };
    let ctype = if sdp { "Content-Type: application/sdp\r\n" } else { "" };
    format!(
        "SIP/2.0 {status} {reason}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={tag}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <{contact}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        header(invite, "Via"),
        header(invite, "From"),
        header(invite, "To"),
        header(invite, "Call-ID"),
        header(invite, "CSeq"),
        body.len()
    )
}

fn to_caller(sent: &[(SocketAddr, String)], status: u16) -> bool {
    sent.iter().any(|(a, m)| *a == CALLER && m.starts_with(&format!("SIP/2.0 {status} ")))
}

#[test]
fn forks_to_every_contact_and_cancels_the_loser() {
    let mut h = Harness::new();
    let invites = h.call("3045", "fork1");
    let dests: Vec<SocketAddr> = invites.iter().map(|(a, _)| *a).collect();
    assert!(dests.contains(&DESK) && dests.contains(&MOBILE), "both contacts rung: {dests:?}");
    let desk = invites.iter().find(|(a, _)| *a == DESK).unwrap().1.clone();
    let mobile = invites.iter().find(|(a, _)| *a == MOBILE).unwrap().1.clone();
    assert!(header(&desk, "From").starts_with("Alice A <sip:3044@"), "caller ID from the directory: {}", header(&desk, "From"));

    h.deliver(&response(&mobile, 180, "Ringing", "m1", false), MOBILE);
    assert!(to_caller(&h.sent(), 180), "180 passed on");
    h.deliver(&response(&desk, 200, "OK", "d1", true), DESK);
    let sent = h.sent();
    assert!(to_caller(&sent, 200), "the caller is answered: {sent:#?}");
    assert!(sent.iter().any(|(a, m)| *a == MOBILE && m.starts_with("CANCEL ")), "the mobile gets CANCEL: {sent:#?}");
    assert!(sent.iter().any(|(a, m)| *a == DESK && m.starts_with("ACK ")), "the desk's 200 is ACKed");

    let calls = h.engine.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.state, CallState::Active);
    assert_eq!(call.ringing_legs.len(), 2);
    assert_eq!(h.engine.call_of_leg(call.callee_leg.as_ref().unwrap()), Some(call.call_id));
    let kinds: Vec<&str> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            EngineEvent::CallStarted(_) => Some("started"),
            EngineEvent::CallRinging(_) => Some("ringing"),
            EngineEvent::CallAnswered(_) => Some("answered"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["started", "ringing", "answered"]);

    // The callee hangs up: the caller gets a BYE, the call ends with the callee as hanger-up.
    let bye = format!(
        "BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {DESK};branch=z9hG4bK-bye1\r\nMax-Forwards: 70\r\nFrom: {};tag=d1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        header(&desk, "To"),
        header(&desk, "From"),
        header(&desk, "Call-ID")
    );
    h.deliver(&bye, DESK);
    let sent = h.sent();
    assert!(sent.iter().any(|(a, m)| *a == CALLER && m.starts_with("BYE ")), "the caller's leg is hung up: {sent:#?}");
    let call = h.engine.call(call.call_id).unwrap();
    assert_eq!(call.state, CallState::Ended);
    assert_eq!(call.disposition, Some(Disposition::Answered));
    assert_eq!(call.hangup_by, Some(engine::Side::Callee));
    assert!(h.events().iter().any(|e| matches!(e, EngineEvent::CallEnded(_))));
}

#[test]
fn busy_everywhere_is_486_and_no_answer_is_480_after_the_ring_time() {
    let mut h = Harness::new();
    let invites = h.call("bob", "busy1");
    for (addr, inv) in &invites {
        h.deliver(&response(inv, 486, "Busy Here", "b", false), *addr);
    }
    let sent = h.sent();
    assert!(to_caller(&sent, 486), "busy mapped back: {sent:#?} {:#?}", h.engine.calls());
    let c = h.engine.calls().into_iter().next().unwrap();
    assert_eq!(c.disposition, Some(Disposition::Busy));

    let invites = h.call("3045", "noanswer1");
    assert_eq!(invites.len(), 2);
    for (addr, inv) in &invites {
        h.deliver(&response(inv, 180, "Ringing", "r", false), *addr);
    }
    assert!(to_caller(&h.sent(), 180));
    let sent = h.advance(Duration::from_secs(19));
    assert!(!to_caller(&sent, 480), "still ringing before the ring time");
    let sent = h.advance(Duration::from_secs(2));
    assert!(to_caller(&sent, 480), "480 after the ring time: {sent:#?}");
    let mut cancelled: Vec<SocketAddr> = sent.iter().filter(|(_, m)| m.starts_with("CANCEL ")).map(|(a, _)| *a).collect();
    cancelled.dedup();
    cancelled.sort();
    cancelled.dedup();
    assert_eq!(cancelled, vec![DESK, MOBILE], "both forks cancelled (CANCEL retransmitted while unanswered)");
    let c = h.engine.calls().into_iter().find(|c| c.disposition == Some(Disposition::NoAnswer));
    assert!(c.is_some(), "a no-answer call: {:?}", h.engine.calls());

    // A number outside the directory with no gateway: 404.
    h.deliver(
        &format!(
            "INVITE sip:5551234@alpha.test SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-gw1\r\nMax-Forwards: 70\r\n\
             From: <sip:3044@alpha.test>;tag=g\r\nTo: <sip:5551234@alpha.test>\r\nCall-ID: gw1\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:alice@{CALLER}>\r\nContent-Length: 0\r\n\r\n"
        ),
        CALLER,
    );
    assert!(to_caller(&h.sent(), 404), "no gateway: 404");
}
