//! Rooms and legs belong to a domain: the Request-URI host of the INVITE that made
//! them when it names a domain of the directory, else the server's own. Room numbers
//! are per domain, so `conf-1@alpha.test` and `conf-1@beta.test` are two rooms.

use engine::users::{DirectorySnapshot, Domain};
use engine::{Engine, EngineConfig};
use media::{MediaConfig, MediaEngine};
use sip::parse::parse_datagram;
use sip::{Peer, Transport};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

const CALLER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5998);
const SDP: &str = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn invite(target: &str, call: &str) -> String {
    format!(
        "INVITE sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{call}\r\nMax-Forwards: 70\r\n\
         From: <sip:caller@{CALLER}>;tag=c-{call}\r\nTo: <sip:{target}>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{CALLER}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

#[test]
fn rooms_are_numbered_per_domain_and_take_the_request_uri_domain() {
    let block = testports::PortBlock::take();
    let media = MediaEngine::start(
        MediaConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), rtp_ports: block.range(0, 16), workers: 1, ..Default::default() },
        Box::new(|_| {}),
    )
    .expect("media runtime");
    let cfg = EngineConfig { domain: "Switchboard.Local".into(), ..Default::default() };
    let mut engine = Engine::new(cfg, media.handle());
    let domain = |id, name: &str| Domain { id, name: name.into(), aliases: vec![format!("sip.{name}")], realm: name.into(), enabled: true };
    engine.set_directory(DirectorySnapshot::new(1, vec![domain(1, "alpha.test"), domain(2, "beta.test")], vec![], vec![]).shared());
    let now = Instant::now();
    let peer = Peer { addr: CALLER, transport: Transport::Udp };
    for (target, call) in [
        ("conf-1@alpha.test", "a1"),
        ("conf-1@SIP.ALPHA.TEST:5060", "a2"),
        ("conf-1@beta.test", "b1"),
        ("conf-1@127.0.0.1:5060", "l1"),
        ("conf-1@nowhere.example", "l2"),
        ("echo@beta.test", "e1"),
    ] {
        engine.handle_sip(now, parse_datagram(invite(target, call).as_bytes()).unwrap(), peer);
        let sent: Vec<String> = std::iter::from_fn(|| engine.poll_transmit()).map(|(_, b)| String::from_utf8_lossy(&b).into_owned()).collect();
        assert!(sent.iter().any(|m| m.starts_with("SIP/2.0 200 ")), "{target} answered: {sent:#?}");
    }
    let rooms = engine.rooms();
    let mut by_domain: Vec<(String, String, usize)> =
        rooms.iter().map(|r| (r.room.domain.clone(), r.room.confuri.clone(), r.participants.len())).collect();
    by_domain.sort();
    assert_eq!(
        by_domain,
        vec![
            ("alpha.test".into(), "<sip:conf-1@alpha.test>".into(), 2),
            ("beta.test".into(), "<sip:conf-1@beta.test>".into(), 1),
            ("switchboard.local".into(), "<sip:conf-1@switchboard.local>".into(), 2),
        ],
        "an alias joins its domain's room; unknown hosts and IP literals are the server's domain"
    );
    let legs = engine.legs();
    let domain_of = |call: &str| legs.iter().find(|l| l.call_id == call).map(|l| l.domain.clone()).unwrap();
    assert_eq!(domain_of("a2"), "alpha.test");
    assert_eq!(domain_of("e1"), "beta.test", "an echo call has its domain too");
    assert_eq!(domain_of("l2"), "switchboard.local");
}
