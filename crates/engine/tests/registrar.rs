//! The registrar inside the engine, on a virtual clock: REGISTER with digest through
//! `handle_sip`, binding events for the store, expiry through `handle_timeout`, the
//! routing lookup, restore at start-up, and 407 for INVITEs claiming our domain.

use engine::users::{Binding, Domain, DirectorySnapshot, SipCredential, User};
use engine::{Engine, EngineConfig, EngineEvent};
use media::{MediaConfig, MediaEngine};
use sip::digest::{ha1, response_qop_auth, Algorithm};
use sip::parse::parse_datagram;
use sip::{Peer, Transport};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PHONE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 44)), 40312);

struct H {
    engine: Engine,
    now: Instant,
    _media: MediaEngine,
    _ports: testports::PortBlock,
    cseq: u32,
}

fn directory() -> Arc<DirectorySnapshot> {
    let domains = vec![Domain { id: 1, name: "alpha.test".into(), aliases: vec![], realm: "alpha.test".into(), enabled: true }];
    let users = vec![User { id: 7, domain_id: 1, login: "alice".into(), ext: Some("3044".into()), enabled: true, ..Default::default() }];
    let creds = vec![SipCredential { user_id: 7, username: "alice".into(), algorithm: Algorithm::Md5, ha1: ha1(Algorithm::Md5, "alice", "alpha.test", "pw"), device_jti: None }];
    Arc::new(DirectorySnapshot::new(1, domains, users, creds))
}

impl H {
    fn new() -> H {
        let block = testports::PortBlock::take();
        let media = MediaEngine::start(
            MediaConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), rtp_ports: block.range(0, 4), workers: 1, ..Default::default() },
            Box::new(|_| {}),
        )
        .expect("media runtime");
        let cfg = EngineConfig { domain: "alpha.test".into(), ..EngineConfig::default() };
        let mut engine = Engine::new(cfg, media.handle());
        engine.set_directory(directory());
        H { engine, now: Instant::now(), _media: media, _ports: block, cseq: 0 }
    }

    fn deliver(&mut self, text: &str) -> Vec<String> {
        let msg = parse_datagram(text.as_bytes()).expect("test message parses");
        self.engine.handle_sip(self.now, msg, Peer { addr: PHONE, transport: Transport::Udp });
        std::iter::from_fn(|| self.engine.poll_transmit()).map(|(_, b)| String::from_utf8_lossy(&b).into_owned()).collect()
    }

    fn events(&mut self) -> Vec<EngineEvent> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    fn register(&mut self, auth: Option<&str>, expires: u32) -> String {
        self.cseq += 1;
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let text = format!(
            "REGISTER sip:alpha.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:3044@alpha.test>;tag=a\r\nTo: <sip:3044@alpha.test>\r\nCall-ID: reg-1\r\nCSeq: {n} REGISTER\r\nContact: <sip:alice@10.0.0.5:5060>\r\nExpires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n",
            n = self.cseq
        );
        let mut out = self.deliver(&text);
        assert_eq!(out.len(), 1, "{out:#?}");
        out.remove(0)
    }

    fn registered(&mut self, expires: u32) -> String {
        let ch = self.register(None, expires);
        assert!(ch.starts_with("SIP/2.0 401 "), "{ch}");
        let nonce = ch.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let h = ha1(Algorithm::Md5, "alice", "alpha.test", "pw");
        let resp = response_qop_auth(Algorithm::Md5, &h, &nonce, "00000001", "c", "REGISTER", "sip:alpha.test");
        let auth = format!(r#"Digest username="alice", realm="alpha.test", nonce="{nonce}", uri="sip:alpha.test", response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c""#);
        self.register(Some(&auth), expires)
    }
}

#[test]
fn register_route_expire_and_restore() {
    let mut h = H::new();
    // Nobody registered yet: 3044 is a user without a device; 9999 is nobody.
    assert!(matches!(h.engine.route_user(None, "3044"), Some(Err(_))));
    assert!(h.engine.route_user(None, "9999").is_none());
    let ok = h.registered(120);
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert!(ok.contains("Contact: <sip:alice@10.0.0.5:5060>;expires=120"), "{ok}");
    assert!(ok.lines().any(|l| l.starts_with("Allow:") && l.contains("REGISTER")));
    let saved: Vec<Binding> = h.events().into_iter().filter_map(|e| if let EngineEvent::BindingSaved(b) = e { Some(b) } else { None }).collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].source, PHONE, "the REGISTER's source address, not the Contact's (NAT)");

    // The routing lookup: by extension, login or a SIP URI in our domain; the INVITE
    // goes to where the REGISTER came from.
    for target in ["3044", "alice", "sip:3044@alpha.test", "<sip:alice@alpha.test>"] {
        let (uri, peer) = h.engine.route_user(None, target).expect("a user").expect("registered");
        assert_eq!(uri.to_string(), "sip:alice@10.0.0.5:5060");
        assert_eq!(peer, Peer { addr: PHONE, transport: Transport::Udp });
    }
    assert!(h.engine.route_user(None, "sip:3044@elsewhere.test").is_none());

    // Expiry on the engine's timer.
    assert!(h.engine.poll_timeout().is_some_and(|t| t <= h.now + Duration::from_secs(120)));
    h.now += Duration::from_secs(121);
    h.engine.handle_timeout(h.now);
    assert!(h.events().iter().any(|e| matches!(e, EngineEvent::BindingRemoved { user_id: 7, .. })));
    assert!(h.engine.bindings().is_empty());

    // Restore at start-up keeps live bindings only.
    let mut live = saved[0].clone();
    live.expires_at_ms = u64::MAX / 4;
    let mut dead = saved[0].clone();
    dead.contact = "sip:old@10.0.0.9".into();
    dead.expires_at_ms = 1;
    h.engine.restore_bindings(h.now, vec![live, dead]);
    assert_eq!(h.engine.bindings().len(), 1);
    assert!(h.events().iter().any(|e| matches!(e, EngineEvent::BindingRemoved { contact, .. } if contact == "sip:old@10.0.0.9")));
    assert!(h.engine.route_user(None, "3044").unwrap().is_ok());
}

#[test]
fn invite_from_our_domain_is_challenged_with_407() {
    let mut h = H::new();
    let invite = |from: &str, branch: &str| {
        format!(
            "INVITE sip:echo@alpha.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nFrom: <sip:{from}>;tag=a\r\nTo: <sip:echo@alpha.test>\r\nCall-ID: {branch}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.5:5060>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let out = h.deliver(&invite("alice@alpha.test", "inv1"));
    let resp = out.iter().find(|m| m.starts_with("SIP/2.0 4")).expect("a final response");
    assert!(resp.starts_with("SIP/2.0 407 "), "{resp}");
    assert_eq!(resp.matches("Proxy-Authenticate: Digest realm=\"alpha.test\"").count(), 2, "{resp}");
    // Anonymous (From another domain) reaches echo without a challenge.
    let out = h.deliver(&invite("someone@elsewhere.test", "inv2"));
    assert!(out.iter().any(|m| m.starts_with("SIP/2.0 200 ")), "{out:#?}");
}

/// Coming from our own SIP address is not enough to skip the challenge: only a call we
/// placed ourselves (its Call-ID) looping back is trusted.
#[test]
fn our_own_source_address_alone_does_not_skip_the_407() {
    let mut h = H::new();
    // H's engine keeps EngineConfig's default address.
    let own = EngineConfig::default().sip_addr;
    let invite = format!(
        "INVITE sip:echo@alpha.test SIP/2.0\r\nVia: SIP/2.0/UDP {own};branch=z9hG4bKforged\r\nMax-Forwards: 70\r\nFrom: <sip:alice@alpha.test>;tag=a\r\nTo: <sip:echo@alpha.test>\r\nCall-ID: forged-1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{own}>\r\nContent-Length: 0\r\n\r\n"
    );
    let msg = parse_datagram(invite.as_bytes()).expect("parses");
    h.engine.handle_sip(h.now, msg, Peer { addr: own, transport: Transport::Udp });
    let out: Vec<String> = std::iter::from_fn(|| h.engine.poll_transmit()).map(|(_, b)| String::from_utf8_lossy(&b).into_owned()).collect();
    let resp = out.iter().find(|m| m.starts_with("SIP/2.0 4") || m.starts_with("SIP/2.0 2")).expect("a final response");
    assert!(resp.starts_with("SIP/2.0 407 "), "{resp}");
}
