//! The registrar driven with virtual time and an in-memory directory.

use super::*;
use crate::users::{Domain, SipCredential, User};
use sip::digest::{ha1, response_qop_auth};
use sip::Message;
use std::net::SocketAddr;

const PW: &str = "s3cret";

fn dir() -> DirectorySnapshot {
    let domains = vec![Domain { id: 1, name: "alpha.test".into(), aliases: vec![], realm: "alpha.test".into(), enabled: true }];
    let users = vec![
        User { id: 10, domain_id: 1, login: "alice".into(), ext: Some("3044".into()), enabled: true, ..Default::default() },
        User { id: 11, domain_id: 1, login: "bob".into(), ext: Some("3045".into()), enabled: true, ..Default::default() },
    ];
    let mut creds = Vec::new();
    for (id, name) in [(10, "alice"), (10, "3044"), (11, "bob")] {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            creds.push(SipCredential { user_id: id, username: name.into(), algorithm: alg, ha1: ha1(alg, name, "alpha.test", PW), device_jti: None });
        }
    }
    DirectorySnapshot::new(1, domains, users, creds)
}

fn peer(ip: &str) -> Peer {
    Peer { addr: format!("{ip}:5070").parse::<SocketAddr>().unwrap(), transport: Transport::Udp }
}

struct Ua {
    user: String,
    host: String,
    call_id: String,
    cseq: u32,
    contact: String,
    extra: String,
}

impl Ua {
    fn new(user: &str) -> Ua {
        Ua { user: user.into(), host: "alpha.test".into(), call_id: format!("cid-{user}"), cseq: 0, contact: format!("<sip:{user}@192.0.2.10:5070>"), extra: String::new() }
    }
    fn request(&mut self, auth: Option<String>) -> Request {
        self.cseq += 1;
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let text = format!(
            "REGISTER sip:{h} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK{c}{n}\r\nFrom: <sip:{u}@{h}>;tag=f1\r\nTo: <sip:{u}@{h}>\r\nCall-ID: {c}\r\nCSeq: {n} REGISTER\r\nContact: {ct}\r\n{auth}{x}Content-Length: 0\r\n\r\n",
            h = self.host, u = self.user, c = self.call_id, n = self.cseq, ct = self.contact, x = self.extra
        );
        match sip::parse::parse_datagram(text.as_bytes()).expect("test request parses") {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }
}

fn challenges(r: &Response) -> Vec<String> {
    r.headers.extra.iter().filter(|(n, _)| n == "WWW-Authenticate").map(|(_, v)| v.clone()).collect()
}

fn param(ch: &str, name: &str) -> Option<String> {
    let i = ch.find(&format!("{name}="))? + name.len() + 1;
    let rest = &ch[i..];
    Some(if let Some(r) = rest.strip_prefix('"') { r[..r.find('"').unwrap()].to_owned() } else { rest.split([',', ' ']).next().unwrap().to_owned() })
}

fn answer(ch: &str, username: &str, password: &str, nc: u32, alg: Algorithm) -> String {
    let realm = param(ch, "realm").unwrap();
    let nonce = param(ch, "nonce").unwrap();
    let h = ha1(alg, username, &realm, password);
    let nc = format!("{nc:08x}");
    let resp = response_qop_auth(alg, &h, &nonce, &nc, "abc", "REGISTER", "sip:alpha.test");
    format!(r#"Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="sip:alpha.test", response="{resp}", algorithm={alg}, qop=auth, nc={nc}, cnonce="abc""#)
}

struct T {
    r: Registrar,
    d: DirectorySnapshot,
    t0: Instant,
    events: Vec<EngineEvent>,
}

impl T {
    fn new() -> T {
        let t0 = Instant::now();
        T { r: Registrar::new(RegistrarConfig::default(), SecurityConfig::default(), t0), d: dir(), t0, events: vec![] }
    }
    fn at(&self, s: u64) -> Instant {
        self.t0 + Duration::from_secs(s)
    }
    fn send(&mut self, s: u64, req: &Request, from: Peer) -> Option<Response> {
        let now = self.at(s);
        self.r.register(now, req, from, &self.d, "tt", &mut self.events)
    }
    /// Challenge, then answer with `password`: the final response.
    fn register(&mut self, s: u64, ua: &mut Ua, username: &str, password: &str, alg: Algorithm) -> Response {
        let req = ua.request(None);
        let r = self.send(s, &req, peer("192.0.2.10")).unwrap();
        assert_eq!(r.status, 401);
        let ch = challenges(&r).into_iter().find(|c| c.contains(alg.as_str())).unwrap();
        let req = ua.request(Some(answer(&ch, username, password, 1, alg)));
        self.send(s, &req, peer("192.0.2.10")).unwrap()
    }
}

#[test]
fn challenge_lists_algorithms_in_configured_order() {
    let mut t = T::new();
    let r = t.send(0, &Ua::new("alice").request(None), peer("192.0.2.10")).unwrap();
    assert_eq!(r.status, 401);
    let ch = challenges(&r);
    assert_eq!(ch.len(), 2);
    assert!(ch[0].contains("algorithm=MD5") && ch[1].contains("algorithm=SHA-256"), "{ch:?}");
    assert!(ch[0].contains(r#"realm="alpha.test""#) && ch[0].contains(r#"qop="auth""#));
    t.r.cfg.digest_algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
    let ch = challenges(&t.send(0, &Ua::new("alice").request(None), peer("192.0.2.10")).unwrap());
    assert!(ch[0].contains("SHA-256") && ch[1].contains("MD5"));
}

#[test]
fn registers_with_md5_and_sha256_and_lists_contacts() {
    let mut t = T::new();
    let mut a = Ua::new("alice");
    let ok = t.register(0, &mut a, "alice", PW, Algorithm::Md5);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.contact.len(), 1);
    assert_eq!(ok.headers.contact[0].param("expires"), Some(Some("3600")));
    // A second device of the same user, by extension and with SHA-256.
    let mut a2 = Ua::new("3044");
    a2.contact = "<sip:3044@192.0.2.11:5072>;expires=120;q=0.5".into();
    let ok = t.register(10, &mut a2, "3044", PW, Algorithm::Sha256);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.contact.len(), 2);
    let c = t.r.contacts_of(10);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].contact, "sip:alice@192.0.2.10:5070", "q 1.0 first");
    assert_eq!(c[1].q, 500);
    assert_eq!(c[1].source, "192.0.2.10:5070".parse().unwrap(), "source address kept (NAT)");
    assert_eq!(t.events.iter().filter(|e| matches!(e, EngineEvent::BindingSaved(_))).count(), 2);
}

#[test]
fn wrong_password_then_lockout_and_unknown_users_look_alike() {
    let mut t = T::new();
    for i in 0..4 {
        let r = t.register(i, &mut Ua::new("alice"), "alice", "wrong", Algorithm::Md5);
        assert_eq!(r.status, 401, "failure {i}");
    }
    let r = t.register(4, &mut Ua::new("alice"), "alice", "wrong", Algorithm::Md5);
    assert_eq!(r.status, 403, "fifth failure locks");
    // Even the right password is refused while locked.
    let mut a = Ua::new("alice");
    a.call_id = "other".into();
    let req = a.request(None);
    let ch = challenges(&t.send(5, &req, peer("192.0.2.10")).unwrap()).remove(0);
    let r = t.send(5, &a.request(Some(answer(&ch, "alice", PW, 1, Algorithm::Md5))), peer("192.0.2.10")).unwrap();
    assert_eq!(r.status, 403);
    // After the lock-out window it works again.
    assert_eq!(t.register(306, &mut Ua::new("alice"), "alice", PW, Algorithm::Md5).status, 200);

    // An unknown user and an unknown domain get the same kind of challenge.
    let mut ghost = Ua::new("9999");
    let known = t.send(400, &Ua::new("bob").request(None), peer("192.0.2.20")).unwrap();
    let unknown = t.send(400, &ghost.request(None), peer("192.0.2.20")).unwrap();
    assert_eq!((known.status, unknown.status), (401, 401));
    let strip = |c: &str| c.replace(&param(c, "nonce").unwrap(), "N");
    assert_eq!(challenges(&known).iter().map(|c| strip(c)).collect::<Vec<_>>(), challenges(&unknown).iter().map(|c| strip(c)).collect::<Vec<_>>());
    let mut nodomain = Ua::new("bob");
    nodomain.host = "nowhere.test".into();
    let r = t.send(400, &nodomain.request(None), peer("192.0.2.20")).unwrap();
    assert_eq!(r.status, 401);
    assert!(challenges(&r)[0].contains(r#"realm="nowhere.test""#));
    // A response for the unknown user fails like a wrong password.
    let r = t.register(401, &mut ghost, "9999", PW, Algorithm::Md5);
    assert_eq!(r.status, 401);
}

#[test]
fn address_lockout_stops_a_scan_over_many_users() {
    let mut t = T::new();
    t.r.guard.cfg.ip_failures = 20;
    for i in 0..20u32 {
        let mut ua = Ua::new(&format!("{}", 100 + i));
        let status = t.register(i as u64, &mut ua, &format!("{}", 100 + i), "guess", Algorithm::Md5).status;
        assert_eq!(status, if i < 19 { 401 } else { 403 }, "failure {i}");
    }
    // Locked: even a request without credentials is refused now.
    let req = Ua::new("alice").request(None);
    assert_eq!(t.send(25, &req, peer("192.0.2.10")).unwrap().status, 403);
    // Another address is not affected.
    let mut a = Ua::new("alice");
    let req = a.request(None);
    assert_eq!(t.send(30, &req, peer("192.0.2.99")).unwrap().status, 401);
}

#[test]
fn scanners_dropped_or_refused() {
    let mut t = T::new();
    let mut ua = Ua::new("alice");
    ua.extra = "User-Agent: friendly-scanner\r\n".into();
    assert!(t.send(0, &ua.request(None), peer("192.0.2.10")).is_none());
    t.r.guard.cfg.drop_scanners = false;
    assert_eq!(t.send(0, &ua.request(None), peer("192.0.2.10")).unwrap().status, 403);
}

#[test]
fn stale_and_forged_nonces_and_replayed_nc() {
    let mut t = T::new();
    let mut a = Ua::new("alice");
    let ch = challenges(&t.send(0, &a.request(None), peer("192.0.2.10")).unwrap()).remove(0);
    // Expired genuine nonce: stale=true.
    let r = t.send(301, &a.request(Some(answer(&ch, "alice", PW, 1, Algorithm::Md5))), peer("192.0.2.10")).unwrap();
    assert_eq!(r.status, 401);
    assert!(challenges(&r)[0].contains("stale=true"));
    // Forged nonce: a plain challenge, no stale.
    let forged = ch.replace(&param(&ch, "nonce").unwrap(), &"0".repeat(64));
    let r = t.send(301, &a.request(Some(answer(&forged, "alice", PW, 1, Algorithm::Md5))), peer("192.0.2.10")).unwrap();
    assert_eq!(r.status, 401);
    assert!(!challenges(&r)[0].contains("stale"));
    // Fresh nonce, nc 1 then nc 1 again (replay) then nc 2.
    let ch = challenges(&r).remove(0);
    let ok = a.request(Some(answer(&ch, "alice", PW, 1, Algorithm::Md5)));
    assert_eq!(t.send(302, &ok, peer("192.0.2.10")).unwrap().status, 200);
    let replay = a.request(Some(answer(&ch, "alice", PW, 1, Algorithm::Md5)));
    assert_eq!(t.send(303, &replay, peer("192.0.2.10")).unwrap().status, 401, "replayed nc refused");
    let next = a.request(Some(answer(&ch, "alice", PW, 2, Algorithm::Md5)));
    assert_eq!(t.send(304, &next, peer("192.0.2.10")).unwrap().status, 200);
}

#[test]
fn expiry_bounds_star_and_ordering() {
    let mut t = T::new();
    let mut a = Ua::new("alice");
    a.extra = "Expires: 30\r\n".into();
    let r = t.register(0, &mut a, "alice", PW, Algorithm::Md5);
    assert_eq!(r.status, 423);
    assert_eq!(r.headers.get("Min-Expires"), Some("60"));
    let mut a = Ua::new("alice");
    a.extra = "Expires: 99999\r\n".into();
    let r = t.register(0, &mut a, "alice", PW, Algorithm::Md5);
    assert_eq!(r.headers.contact[0].param("expires"), Some(Some("3600")), "capped at max_expires");
    // Refresh with a short expiry, then let it lapse on the timer.
    let mut b = Ua::new("bob");
    b.extra = "Expires: 60\r\n".into();
    assert_eq!(t.register(0, &mut b, "bob", PW, Algorithm::Md5).status, 200);
    assert_eq!(t.r.poll_timeout(), Some(t.at(60)));
    t.events.clear();
    let now = t.at(61);
    t.r.tick(now, &mut t.events);
    assert!(t.r.contacts_of(11).is_empty());
    assert!(matches!(&t.events[..], [EngineEvent::BindingRemoved { user_id: 11, .. }]));
    // An older CSeq of the same Call-ID is out of order.
    let mut a2 = Ua::new("alice");
    a2.call_id = a.call_id.clone();
    a2.extra = "Expires: 600\r\n".into();
    let req = a2.request(None);
    let ch = challenges(&t.send(100, &req, peer("192.0.2.10")).unwrap()).remove(0);
    let r = t.send(100, &a2.request(Some(answer(&ch, "alice", PW, 1, Algorithm::Md5))), peer("192.0.2.10")).unwrap();
    assert_eq!(r.status, 500);
    // `*` with Expires 0 removes everything.
    let mut s = Ua::new("alice");
    s.contact = "*".into();
    s.extra = "Expires: 0\r\n".into();
    t.events.clear();
    let r = t.register(200, &mut s, "alice", PW, Algorithm::Md5);
    assert_eq!(r.status, 200);
    assert!(r.headers.contact.is_empty());
    assert!(t.r.contacts_of(10).is_empty());
    assert!(t.events.iter().any(|e| matches!(e, EngineEvent::BindingRemoved { user_id: 10, .. })));
    let mut s = Ua::new("alice");
    s.contact = "*".into();
    assert_eq!(t.register(201, &mut s, "alice", PW, Algorithm::Md5).status, 400, "* needs Expires: 0");
}

#[test]
fn cannot_register_someone_else_and_restore_drops_lapsed() {
    let mut t = T::new();
    let mut a = Ua::new("bob");
    let r = t.register(0, &mut a, "alice", PW, Algorithm::Md5);
    assert_eq!(r.status, 403);
    let ok = t.register(0, &mut Ua::new("alice"), "alice", PW, Algorithm::Md5);
    assert_eq!(ok.status, 200);
    let saved = t.r.bindings();
    let mut lapsed = saved[0].clone();
    lapsed.contact = "sip:old@192.0.2.1".into();
    lapsed.expires_at_ms = 1;
    let mut fresh = Registrar::new(RegistrarConfig::default(), SecurityConfig::default(), t.at(0));
    let mut ev = vec![];
    fresh.restore(t.at(0), vec![saved[0].clone(), lapsed], &mut ev);
    assert_eq!(fresh.bindings().len(), 1);
    assert!(matches!(&ev[..], [EngineEvent::BindingRemoved { .. }]));
    assert!(fresh.poll_timeout().is_some());
}

#[test]
fn q_values() {
    assert_eq!(parse_q("0.5"), Some(500));
    assert_eq!(parse_q("1"), Some(1000));
    assert_eq!(parse_q("1.0"), Some(1000));
    assert_eq!(parse_q("0.125"), Some(125));
    assert_eq!(parse_q("1.5"), None);
    assert_eq!(parse_q("2"), None);
    assert_eq!(parse_q("0.1234"), None);
    assert_eq!(format_q(500), "0.5");
    assert_eq!(format_q(0), "0");
}
