//! The UA against a scripted peer: the peer's messages are built with the crate's
//! model, fed with a fake clock, and the test asserts what the UA sends and reports.

use super::*;
use crate::digest::{ha1, Algorithm, Challenge, Credentials};
use crate::message::{CSeq, Headers};
use crate::sdp::{Direction, SessionDescription};
use crate::uri::Params;
use std::time::Duration;

const REGISTRAR: &str = "127.0.0.1:5060";
const PEER: &str = "127.0.0.1:5080";
const LOCAL: &str = "127.0.0.1:5070";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sdp(dir: &str, version: u64) -> String {
    format!("v=0\r\no=- 42 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na={dir}\r\n")
}

fn peer_sdp(dir: &str) -> String {
    format!("v=0\r\no=peer 7 7 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na={dir}\r\n")
}

struct Harness {
    ua: UserAgent,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        let mut cfg = UaConfig::new(addr(LOCAL), "alice", "example.test", addr(REGISTRAR));
        cfg.password = Some("s3cret".into());
        cfg.display_name = Some("Alice".into());
        cfg.register_expires = 120;
        Harness { ua: UserAgent::new(cfg), now: Instant::now() }
    }

    /// Everything the UA has queued to send, parsed.
    fn sent(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut out = Vec::new();
        while let Some((to, bytes)) = self.ua.poll_transmit() {
            out.push((to, parse_datagram(&bytes).expect("the UA sends what it can parse")));
        }
        out
    }

    /// The one request the UA sent (asserting nothing else went out).
    fn one_request(&mut self, method: Method) -> (SocketAddr, Request) {
        let sent = self.sent();
        assert_eq!(sent.len(), 1, "expected one {method}, got {sent:#?}");
        match sent.into_iter().next().unwrap() {
            (to, Message::Request(r)) if r.method == method => (to, r),
            other => panic!("expected {method}, got {other:#?}"),
        }
    }

    fn requests(&mut self) -> Vec<(SocketAddr, Request)> {
        self.sent()
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Request(r) => Some((to, r)),
                _ => None,
            })
            .collect()
    }

    fn responses(&mut self) -> Vec<(SocketAddr, Response)> {
        self.sent()
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Response(r) => Some((to, r)),
                _ => None,
            })
            .collect()
    }

    fn events(&mut self) -> Vec<UaEvent> {
        std::iter::from_fn(|| self.ua.poll_event()).collect()
    }

    fn feed(&mut self, msg: impl Into<Message>, from: &str) {
        let bytes = msg.into().to_bytes();
        self.ua.handle_datagram(self.now, &bytes, addr(from));
    }

    /// Moves the clock by `d`, firing every deadline on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.ua.poll_timeout().filter(|&at| at <= end) {
            self.now = at.max(self.now);
            self.ua.handle_timeout(self.now);
        }
        self.now = end;
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Message {
        Message::Request(r)
    }
}
impl From<Response> for Message {
    fn from(r: Response) -> Message {
        Message::Response(r)
    }
}

/// A response of the peer to `req`, To tag `tag`, optionally with its Contact.
fn reply(req: &Request, status: u16, tag: Option<&str>) -> Response {
    let mut r = req.response(status, tag);
    if (101..300).contains(&status) && req.method == Method::Invite {
        r.headers.contact = vec![NameAddr::new(Uri::sip(Some("bob"), "127.0.0.1", Some(5080)))];
    }
    r
}

fn with_body(mut r: Response, ct: &str, body: &str) -> Response {
    r.headers.content_type = Some(ct.into());
    r.body = body.as_bytes().to_vec();
    r
}

fn challenge(status: u16, nonce: &str, stale: bool) -> (String, String) {
    let ch = Challenge { realm: "example.test".into(), nonce: nonce.into(), opaque: Some("op".into()), algorithm: Algorithm::Md5, stale };
    let name = if status == 407 { "Proxy-Authenticate" } else { "WWW-Authenticate" };
    (name.into(), ch.to_string())
}

fn challenged(req: &Request, status: u16, nonce: &str) -> Response {
    let mut r = req.response(status, Some("auth"));
    let (n, v) = challenge(status, nonce, false);
    r.headers.push(&n, v);
    r
}

/// The peer checks our credentials as a registrar/proxy would.
fn assert_credentials(req: &Request, header: &str, nonce: &str) {
    let value = req.headers.get(header).unwrap_or_else(|| panic!("no {header} in {req}"));
    let c = Credentials::parse(value).unwrap();
    assert_eq!(c.username, "alice");
    assert_eq!(c.nonce, nonce);
    assert_eq!(c.uri, req.uri.to_string());
    assert_eq!(c.opaque.as_deref(), Some("op"));
    assert!(c.verify(Algorithm::Md5, &ha1(Algorithm::Md5, "alice", "example.test", "s3cret"), req.method.as_str()), "bad digest {value}");
}

/// A request from the peer (bob at PEER) to alice.
fn peer_request(method: Method, call_id: &str, seq: u32, from_tag: &str, to_tag: Option<&str>) -> Request {
    let bob = Uri::sip(Some("bob"), "127.0.0.1", Some(5080));
    let alice = Uri::sip(Some("alice"), "127.0.0.1", Some(5070));
    let to = NameAddr::new(alice.clone());
    let mut from = NameAddr::new(bob.clone()).with_tag(from_tag);
    from.display = Some("Bob".into());
    Request {
        method: method.clone(),
        uri: alice,
        headers: Headers {
            via: vec![Via {
                transport: Transport::Udp,
                host: "127.0.0.1".into(),
                port: Some(5080),
                params: vec![Param::new("branch", Some(new_branch()))],
            }],
            from,
            to: match to_tag {
                Some(t) => to.with_tag(t),
                None => to,
            },
            call_id: call_id.into(),
            cseq: CSeq { seq, method },
            max_forwards: Some(70),
            contact: vec![NameAddr::new(bob)],
            route: vec![],
            record_route: vec![],
            content_type: None,
            extra: vec![],
        },
        body: vec![],
    }
}

fn req_with_body(mut r: Request, ct: &str, body: &str) -> Request {
    r.headers.content_type = Some(ct.into());
    r.body = body.as_bytes().to_vec();
    r
}

/// Places a call and has the peer answer it: (call, the INVITE answered, peer tag).
fn establish_outgoing(h: &mut Harness) -> (CallRef, Request) {
    let call = h.ua.invite(h.now, Uri::sip(Some("bob"), "127.0.0.1", Some(5080)), addr(PEER), sdp("sendrecv", 1), vec![]);
    let (_, invite) = h.one_request(Method::Invite);
    h.feed(with_body(reply(&invite, 200, Some("bobtag")), "application/sdp", &peer_sdp("sendrecv")), PEER);
    let (_, ack) = h.one_request(Method::Ack);
    assert_eq!(ack.headers.cseq.seq, invite.headers.cseq.seq);
    assert!(matches!(h.events().as_slice(), [UaEvent::Answered { .. }]));
    (call, invite)
}

/// The peer calls alice and she answers: (call, the peer's INVITE, alice's To tag).
fn establish_incoming(h: &mut Harness) -> (CallRef, Request, String) {
    let invite = req_with_body(peer_request(Method::Invite, "in-1", 1, "bobtag", None), "application/sdp", &peer_sdp("sendrecv"));
    h.feed(invite.clone(), PEER);
    let call = match h.events().as_slice() {
        [UaEvent::Incoming { call, .. }] => *call,
        e => panic!("{e:?}"),
    };
    h.sent();
    h.ua.answer(h.now, call, sdp("sendrecv", 1));
    let ok = h.responses().pop().unwrap().1;
    assert_eq!(ok.status, 200);
    let tag = ok.headers.to.tag().unwrap().to_owned();
    let mut ack = peer_request(Method::Ack, "in-1", 1, "bobtag", Some(&tag));
    ack.headers.cseq.method = Method::Ack;
    h.feed(ack, PEER);
    assert!(matches!(h.events().as_slice(), [UaEvent::Answered { .. }]));
    (call, invite, tag)
}

#[test]
fn register_answers_401_and_refreshes_at_half_expiry() {
    let mut h = Harness::new();
    h.ua.register(h.now);
    let (to, r1) = h.one_request(Method::Register);
    assert_eq!(to, addr(REGISTRAR));
    assert_eq!(r1.uri.to_string(), "sip:example.test");
    assert_eq!(r1.headers.from.uri.to_string(), "sip:alice@example.test");
    assert_eq!(r1.headers.contact[0].uri.to_string(), "sip:alice@127.0.0.1:5070");
    assert_eq!(r1.headers.get("Expires"), Some("120"));
    assert!(r1.headers.get("Authorization").is_none());

    h.feed(challenged(&r1, 401, "n1"), REGISTRAR);
    let (_, r2) = h.one_request(Method::Register);
    assert_eq!(r2.headers.cseq.seq, r1.headers.cseq.seq + 1);
    assert_eq!(r2.headers.call_id, r1.headers.call_id);
    assert_ne!(r2.headers.via[0].branch(), r1.headers.via[0].branch());
    assert_credentials(&r2, "Authorization", "n1");

    let mut ok = r2.response(200, Some("reg"));
    let mut c = r2.headers.contact[0].clone();
    c.set_param("expires", Some("100"));
    ok.headers.contact = vec![c];
    h.feed(ok, REGISTRAR);
    assert!(matches!(h.events().as_slice(), [UaEvent::Registration { status: RegistrationStatus::Registered, code: 200, raw: Some(_), .. }]));

    // Granted 100 s: nothing before 50 s, a refresh at 50 s.
    h.advance(Duration::from_secs(49));
    assert!(h.requests().iter().all(|(_, r)| r.method != Method::Register));
    h.advance(Duration::from_millis(1100));
    let (_, r3) = h.one_request(Method::Register);
    assert!(r3.headers.cseq.seq > r2.headers.cseq.seq);
    assert_eq!(r3.headers.call_id, r1.headers.call_id);

    // Refresh challenged with a new nonce, answered; then unregister.
    h.feed(challenged(&r3, 401, "n2"), REGISTRAR);
    let (_, r4) = h.one_request(Method::Register);
    assert_credentials(&r4, "Authorization", "n2");
    h.feed(r4.response(200, Some("reg")), REGISTRAR);
    assert!(matches!(h.events().as_slice(), [UaEvent::Registration { status: RegistrationStatus::Registered, .. }]));
    h.ua.unregister(h.now);
    let (_, r5) = h.one_request(Method::Register);
    assert_eq!(r5.headers.get("Expires"), Some("0"));
    h.feed(r5.response(200, Some("reg")), REGISTRAR);
    assert!(matches!(h.events().as_slice(), [UaEvent::Registration { status: RegistrationStatus::Unregistered, .. }]));
    assert_eq!(h.ua.reg.refresh_at, None);
}

#[test]
fn register_never_loops_on_repeated_401() {
    let mut h = Harness::new();
    h.ua.register(h.now);
    let (_, r1) = h.one_request(Method::Register);
    h.feed(challenged(&r1, 401, "n1"), REGISTRAR);
    let (_, r2) = h.one_request(Method::Register);
    // Same nonce again: our credentials were refused.
    h.feed(challenged(&r2, 401, "n1"), REGISTRAR);
    assert!(h.requests().is_empty());
    assert!(matches!(h.events().as_slice(), [UaEvent::Registration { status: RegistrationStatus::Failed, code: 401, .. }]));

    // A new nonce without stale: still no second retry.
    h.ua.register(h.now);
    let (_, r1) = h.one_request(Method::Register);
    h.feed(challenged(&r1, 401, "m1"), REGISTRAR);
    let (_, r2) = h.one_request(Method::Register);
    h.feed(challenged(&r2, 401, "m2"), REGISTRAR);
    assert!(h.requests().is_empty());
    assert!(matches!(h.events().as_slice(), [UaEvent::Registration { status: RegistrationStatus::Failed, .. }]));

    // stale=true earns exactly one more.
    h.ua.register(h.now);
    let (_, r1) = h.one_request(Method::Register);
    h.feed(challenged(&r1, 401, "s1"), REGISTRAR);
    let (_, r2) = h.one_request(Method::Register);
    let mut stale = r2.response(401, Some("x"));
    let (n, v) = challenge(401, "s2", true);
    stale.headers.push(&n, v);
    h.feed(stale, REGISTRAR);
    let (_, r3) = h.one_request(Method::Register);
    assert_credentials(&r3, "Authorization", "s2");
    let mut stale = r3.response(401, Some("x"));
    let (n, v) = challenge(401, "s3", true);
    stale.headers.push(&n, v);
    h.feed(stale, REGISTRAR);
    assert!(h.requests().is_empty());
    assert!(matches!(h.events().as_slice(), [UaEvent::Registration { status: RegistrationStatus::Failed, .. }]));
}

#[test]
fn outgoing_call_with_407_ringing_answer_reack_and_bye() {
    let mut h = Harness::new();
    let target = Uri::sip(Some("bob"), "127.0.0.1", Some(5080));
    let call = h.ua.invite(h.now, target, addr(PEER), sdp("sendrecv", 1), vec![("X-Conf".into(), "4711".into())]);
    let (to, i1) = h.one_request(Method::Invite);
    assert_eq!(to, addr(PEER));
    assert_eq!(i1.headers.get("X-Conf"), Some("4711"));
    assert_eq!(i1.headers.from.display.as_deref(), Some("Alice"));
    assert_eq!(i1.headers.content_type.as_deref(), Some("application/sdp"));

    h.feed(challenged(&i1, 407, "p1"), PEER);
    let sent = h.requests();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let (_, ack) = &sent[0];
    assert_eq!(ack.method, Method::Ack, "hop-by-hop ACK for the 407");
    assert_eq!(ack.headers.via[0].branch(), i1.headers.via[0].branch());
    let (_, i2) = &sent[1];
    assert_eq!(i2.method, Method::Invite);
    assert_eq!(i2.headers.cseq.seq, i1.headers.cseq.seq + 1);
    assert_eq!(i2.headers.call_id, i1.headers.call_id);
    assert_eq!(i2.headers.get("X-Conf"), Some("4711"));
    assert_credentials(i2, "Proxy-Authorization", "p1");
    assert!(h.events().is_empty());

    h.feed(reply(i2, 100, None), PEER);
    h.feed(reply(i2, 180, Some("bobtag")), PEER);
    assert!(matches!(h.events().as_slice(), [UaEvent::Progress { status: 180, sdp: None, .. }]));
    let ok = with_body(reply(i2, 200, Some("bobtag")), "application/sdp", &peer_sdp("sendrecv"));
    h.feed(ok.clone(), PEER);
    let (to, ack) = h.one_request(Method::Ack);
    assert_eq!(to, addr(PEER), "ACK goes to the remote target");
    assert_eq!(ack.uri.to_string(), "sip:bob@127.0.0.1:5080");
    assert_eq!(ack.headers.cseq.seq, i2.headers.cseq.seq);
    assert_eq!(ack.headers.to.tag(), Some("bobtag"));
    assert!(ack.headers.get("Proxy-Authorization").is_some());
    match h.events().as_slice() {
        [UaEvent::Answered { call: c, sdp: Some(s), raw }] => {
            assert_eq!(*c, call);
            assert!(s.contains("m=audio 5000"));
            assert!(raw.starts_with("SIP/2.0 200"));
        }
        e => panic!("{e:?}"),
    }

    // The 200 again (our ACK was lost): ACK again, no new event.
    h.feed(ok, PEER);
    let (_, ack2) = h.one_request(Method::Ack);
    assert_eq!(ack2.headers.cseq, ack.headers.cseq);
    assert!(h.events().is_empty());

    h.ua.hangup(h.now, call);
    let (to, bye) = h.one_request(Method::Bye);
    assert_eq!(to, addr(PEER));
    assert!(bye.headers.cseq.seq > i2.headers.cseq.seq);
    assert_eq!(bye.headers.to.tag(), Some("bobtag"));
    assert!(h.events().is_empty());
    h.feed(bye.response(200, None), PEER);
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { status: 200, by_remote: false, .. }]));
    // Once its transactions are over, the call is forgotten.
    assert!(!h.ua.calls.is_empty(), "kept while the INVITE transaction may see a 2xx");
    h.advance(Duration::from_secs(40));
    assert!(h.ua.calls.is_empty() && h.ua.client_txs.is_empty());
}

#[test]
fn failure_response_ends_the_call_with_their_status() {
    let mut h = Harness::new();
    let call = h.ua.invite(h.now, Uri::sip(Some("bob"), "127.0.0.1", Some(5080)), addr(PEER), sdp("sendrecv", 1), vec![]);
    let (_, inv) = h.one_request(Method::Invite);
    h.feed(reply(&inv, 486, Some("b")), PEER);
    assert_eq!(h.one_request(Method::Ack).1.headers.cseq.seq, inv.headers.cseq.seq);
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { call: c, status: 486, by_remote: true, .. }] if *c == call));
}

#[test]
fn outgoing_call_timeout_is_408() {
    let mut h = Harness::new();
    h.ua.invite(h.now, Uri::sip(Some("bob"), "127.0.0.1", Some(5080)), addr(PEER), sdp("sendrecv", 1), vec![]);
    h.advance(Duration::from_secs(40));
    let invites = h.requests().into_iter().filter(|(_, r)| r.method == Method::Invite).count();
    assert!(invites >= 6, "INVITE retransmitted on timer A ({invites})");
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { status: 408, by_remote: false, raw: None, .. }]));
}

#[test]
fn hangup_while_ringing_cancels() {
    let mut h = Harness::new();
    let call = h.ua.invite(h.now, Uri::sip(Some("bob"), "127.0.0.1", Some(5080)), addr(PEER), sdp("sendrecv", 1), vec![]);
    let (_, inv) = h.one_request(Method::Invite);
    h.feed(reply(&inv, 180, Some("bobtag")), PEER);
    h.events();
    h.ua.hangup(h.now, call);
    let (to, cancel) = h.one_request(Method::Cancel);
    assert_eq!(to, addr(PEER));
    assert_eq!(cancel.headers.via[0].branch(), inv.headers.via[0].branch());
    assert_eq!(cancel.headers.cseq.seq, inv.headers.cseq.seq);
    assert!(h.events().is_empty());
    h.feed(cancel.response(200, Some("bobtag")), PEER);
    h.feed(reply(&inv, 487, Some("bobtag")), PEER);
    let (_, ack) = h.one_request(Method::Ack);
    assert_eq!(ack.headers.via[0].branch(), inv.headers.via[0].branch());
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { status: 487, by_remote: false, .. }]));
}

#[test]
fn cancel_racing_a_200_acks_and_byes() {
    let mut h = Harness::new();
    let call = h.ua.invite(h.now, Uri::sip(Some("bob"), "127.0.0.1", Some(5080)), addr(PEER), sdp("sendrecv", 1), vec![]);
    let (_, inv) = h.one_request(Method::Invite);
    h.feed(reply(&inv, 180, Some("bobtag")), PEER);
    h.ua.hangup(h.now, call);
    h.one_request(Method::Cancel);
    h.feed(reply(&inv, 200, Some("bobtag")), PEER);
    let methods: Vec<Method> = h.requests().into_iter().map(|(_, r)| r.method).collect();
    assert_eq!(methods, [Method::Ack, Method::Bye]);
    assert!(matches!(h.events().as_slice(), [UaEvent::Progress { .. }]));
}

#[test]
fn incoming_call_rings_answers_and_resends_200_until_ack() {
    let mut h = Harness::new();
    let invite = req_with_body(peer_request(Method::Invite, "in-1", 1, "bobtag", None), "application/sdp", &peer_sdp("sendrecv"));
    h.feed(invite.clone(), PEER);
    let trying = h.responses();
    assert_eq!(trying.iter().map(|(_, r)| r.status).collect::<Vec<_>>(), [100]);
    let call = match h.events().as_slice() {
        [UaEvent::Incoming { call, from, from_display, to, sdp: Some(s), raw }] => {
            assert_eq!(from, "sip:bob@127.0.0.1:5080");
            assert_eq!(from_display.as_deref(), Some("Bob"));
            assert_eq!(to, "sip:alice@127.0.0.1:5070");
            assert!(s.contains("m=audio 5000"));
            assert!(raw.starts_with("INVITE sip:alice@127.0.0.1:5070 SIP/2.0"));
            *call
        }
        e => panic!("{e:?}"),
    };
    // A retransmitted INVITE is absorbed by the transaction layer.
    h.feed(invite.clone(), PEER);
    assert!(h.events().is_empty());
    h.sent();

    h.ua.ringing(h.now, call);
    let ringing = h.responses().pop().unwrap().1;
    assert_eq!(ringing.status, 180);
    let tag = ringing.headers.to.tag().unwrap().to_owned();
    h.ua.answer(h.now, call, sdp("sendrecv", 1));
    let (to, ok) = h.responses().pop().unwrap();
    assert_eq!(to, addr(PEER));
    assert_eq!((ok.status, ok.headers.to.tag()), (200, Some(tag.as_str())));
    assert_eq!(ok.headers.contact[0].uri.to_string(), "sip:alice@127.0.0.1:5070");
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 4000"));

    // Resent at T1, 2*T1 ... while no ACK.
    h.advance(Duration::from_millis(501));
    assert_eq!(h.responses().iter().filter(|(_, r)| r.status == 200).count(), 1);
    h.advance(Duration::from_millis(1000));
    assert_eq!(h.responses().iter().filter(|(_, r)| r.status == 200).count(), 1);
    assert!(h.events().is_empty());

    let mut ack = peer_request(Method::Ack, "in-1", 1, "bobtag", Some(&tag));
    ack.headers.cseq.method = Method::Ack;
    h.feed(ack, PEER);
    assert!(matches!(h.events().as_slice(), [UaEvent::Answered { call: c, .. }] if *c == call));
    h.advance(Duration::from_secs(10));
    assert!(h.responses().is_empty(), "no 200 after the ACK");
}

#[test]
fn incoming_call_without_ack_is_given_up() {
    let mut h = Harness::new();
    let invite = peer_request(Method::Invite, "in-2", 1, "bobtag", None);
    h.feed(invite, PEER);
    let call = match h.events().as_slice() {
        [UaEvent::Incoming { call, .. }] => *call,
        e => panic!("{e:?}"),
    };
    h.ua.answer(h.now, call, sdp("sendrecv", 1));
    h.advance(Duration::from_secs(40));
    assert!(h.requests().iter().any(|(_, r)| r.method == Method::Bye));
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { status: 408, .. }]));
}

#[test]
fn incoming_bye_and_cancel_end_calls() {
    let mut h = Harness::new();
    let (call, _, tag) = establish_incoming(&mut h);
    // A long call: the INVITE transaction is long gone when the BYE comes.
    h.advance(Duration::from_secs(60));
    assert!(h.sent().is_empty() && h.events().is_empty());
    let bye = peer_request(Method::Bye, "in-1", 2, "bobtag", Some(&tag));
    h.feed(bye.clone(), PEER);
    let resp = h.responses();
    assert_eq!(resp.iter().map(|(_, r)| r.status).collect::<Vec<_>>(), [200]);
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { call: c, status: 200, by_remote: true, raw: Some(_), .. }] if *c == call));
    // A retransmitted BYE gets the same 200, no new event.
    assert!(h.ua.calls.is_empty(), "ended calls are forgotten");
    h.feed(bye, PEER);
    assert_eq!(h.responses().len(), 1);
    assert!(h.events().is_empty());

    // CANCEL of an unanswered call: 200 + 487 from the layer, Ended 487 by the remote.
    let invite = peer_request(Method::Invite, "in-3", 1, "t3", None);
    h.feed(invite.clone(), PEER);
    h.events();
    h.sent();
    let mut cancel = invite.clone();
    cancel.method = Method::Cancel;
    cancel.headers.cseq.method = Method::Cancel;
    h.feed(cancel, PEER);
    let mut statuses: Vec<u16> = h.responses().iter().map(|(_, r)| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 487]);
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { status: 487, by_remote: true, .. }]));
}

#[test]
fn hangup_of_unanswered_incoming_call_rejects() {
    let mut h = Harness::new();
    h.feed(peer_request(Method::Invite, "in-4", 1, "t4", None), PEER);
    let call = match h.events().as_slice() {
        [UaEvent::Incoming { call, .. }] => *call,
        e => panic!("{e:?}"),
    };
    h.sent();
    h.ua.hangup(h.now, call);
    assert_eq!(h.responses().pop().unwrap().1.status, 486);
    assert!(matches!(h.events().as_slice(), [UaEvent::Ended { status: 486, by_remote: false, .. }]));
    // reject after the fact does nothing more
    h.ua.reject(h.now, call, 603, "Decline");
    assert!(h.sent().is_empty());
}

#[test]
fn reinvite_from_peer_is_answered_with_mirrored_sdp() {
    let mut h = Harness::new();
    let (call, _, tag) = establish_incoming(&mut h);
    let mut re = req_with_body(peer_request(Method::Invite, "in-1", 2, "bobtag", Some(&tag)), "application/sdp", &peer_sdp("sendonly"));
    re.headers.contact = vec![NameAddr::new(Uri::sip(Some("bob"), "127.0.0.1", Some(5090)))];
    h.feed(re, PEER);
    let ok = h.responses().into_iter().map(|(_, r)| r).find(|r| r.status == 200).expect("200");
    let answer = SessionDescription::parse(&String::from_utf8_lossy(&ok.body)).unwrap();
    assert_eq!(answer.direction_of(&answer.media[0]), Direction::RecvOnly);
    assert_eq!(answer.origin.session_version, 2, "version bumped");
    match h.events().as_slice() {
        [UaEvent::Reinvited { call: c, sdp: Some(s) }] => {
            assert_eq!(*c, call);
            assert!(s.contains("a=sendonly"));
        }
        e => panic!("{e:?}"),
    }
    // Unhold: back to our own sendrecv, version bumped again; BYE goes to the new target.
    h.feed(req_with_body(peer_request(Method::Invite, "in-1", 3, "bobtag", Some(&tag)), "application/sdp", &peer_sdp("sendrecv")), PEER);
    let ok = h.responses().into_iter().map(|(_, r)| r).find(|r| r.status == 200).expect("200");
    let answer = SessionDescription::parse(&String::from_utf8_lossy(&ok.body)).unwrap();
    assert_eq!(answer.direction_of(&answer.media[0]), Direction::SendRecv);
    assert_eq!(answer.origin.session_version, 3);
    h.events();
    h.ua.hangup(h.now, call);
    let (to, bye) = h.one_request(Method::Bye);
    assert_eq!(to, addr(PEER));
    assert_eq!(bye.uri.to_string(), "sip:bob@127.0.0.1:5080");
}

#[test]
fn our_reinvite_reports_its_result() {
    let mut h = Harness::new();
    let (call, invite) = establish_outgoing(&mut h);
    h.ua.reinvite(h.now, call, sdp("sendonly", 1));
    let (_, re) = h.one_request(Method::Invite);
    assert!(re.headers.cseq.seq > invite.headers.cseq.seq);
    assert_eq!(re.headers.to.tag(), Some("bobtag"));
    let body = String::from_utf8_lossy(&re.body).into_owned();
    assert!(body.contains("a=sendonly"));
    assert_eq!(SessionDescription::parse(&body).unwrap().origin.session_version, 2);
    h.feed(with_body(reply(&re, 200, Some("bobtag")), "application/sdp", &peer_sdp("recvonly")), PEER);
    let (_, ack) = h.one_request(Method::Ack);
    assert_eq!(ack.headers.cseq.seq, re.headers.cseq.seq);
    assert!(matches!(h.events().as_slice(), [UaEvent::ReinviteResult { status: 200, .. }]));
    // a second re-INVITE refused with 491 reports 491
    h.ua.reinvite(h.now, call, sdp("sendrecv", 1));
    let (_, re2) = h.one_request(Method::Invite);
    h.feed(reply(&re2, 491, Some("bobtag")), PEER);
    assert!(matches!(h.events().as_slice(), [UaEvent::ReinviteResult { status: 491, .. }]));
}

#[test]
fn refer_follows_notify_sipfrags() {
    let mut h = Harness::new();
    let (call, _) = establish_outgoing(&mut h);
    h.ua.refer(h.now, call, Uri::sip(Some("carol"), "example.test", None));
    let (_, refer) = h.one_request(Method::Refer);
    assert_eq!(refer.headers.get("Refer-To"), Some("<sip:carol@example.test>"));
    h.feed(refer.response(202, None), PEER);
    assert!(matches!(h.events().as_slice(), [UaEvent::TransferStatus { status: 202, done: false, .. }]));

    let our_tag = refer.headers.from.tag().unwrap().to_owned();
    let call_id = refer.headers.call_id.clone();
    let notify = |seq: u32, frag: &str, state: &str| {
        let mut n = req_with_body(peer_request(Method::Notify, &call_id, seq, "bobtag", Some(&our_tag)), "message/sipfrag;version=2.0", frag);
        n.headers.push("Event", "refer");
        n.headers.push("Subscription-State", state);
        n
    };
    h.feed(notify(10, "SIP/2.0 100 Trying\r\n", "active;expires=60"), PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 200);
    assert!(matches!(h.events().as_slice(), [UaEvent::TransferStatus { status: 100, done: false, .. }]));
    h.feed(notify(11, "SIP/2.0 200 OK\r\n", "terminated;reason=noresource"), PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 200);
    assert!(matches!(h.events().as_slice(), [UaEvent::TransferStatus { status: 200, reason, done: true, .. }] if reason == "OK"));
}

#[test]
fn referred_by_peer_gets_202_and_notifies() {
    let mut h = Harness::new();
    let (call, _, tag) = establish_incoming(&mut h);
    let mut refer = peer_request(Method::Refer, "in-1", 2, "bobtag", Some(&tag));
    refer.headers.push("Refer-To", "<sip:carol@example.test>");
    h.feed(refer, PEER);
    let sent = h.sent();
    assert!(sent.iter().any(|(_, m)| matches!(m, Message::Response(r) if r.status == 202)));
    let notify = sent.iter().find_map(|(_, m)| match m {
        Message::Request(r) if r.method == Method::Notify => Some(r.clone()),
        _ => None,
    });
    let notify = notify.expect("NOTIFY 100");
    assert_eq!(String::from_utf8_lossy(&notify.body), "SIP/2.0 100 Trying\r\n");
    assert_eq!(notify.headers.get("Event"), Some("refer"));
    assert!(matches!(h.events().as_slice(), [UaEvent::Referred { call: c, target }] if *c == call && target == "sip:carol@example.test"));
    h.feed(notify.response(200, None), PEER);
    h.ua.notify_refer(h.now, call, 200, "OK");
    let (_, n2) = h.one_request(Method::Notify);
    assert_eq!(String::from_utf8_lossy(&n2.body), "SIP/2.0 200 OK\r\n");
    assert!(n2.headers.get("Subscription-State").unwrap().starts_with("terminated"));
    assert!(n2.headers.cseq.seq > notify.headers.cseq.seq);
}

#[test]
fn info_dtmf_both_ways() {
    let mut h = Harness::new();
    let (call, _, tag) = establish_incoming(&mut h);
    h.ua.info_dtmf(h.now, call, '5', 160);
    let (_, info) = h.one_request(Method::Info);
    assert_eq!(info.headers.content_type.as_deref(), Some("application/dtmf-relay"));
    assert_eq!(String::from_utf8_lossy(&info.body), "Signal=5\r\nDuration=160\r\n");
    h.feed(info.response(200, None), PEER);
    assert!(h.events().is_empty());

    h.feed(req_with_body(peer_request(Method::Info, "in-1", 2, "bobtag", Some(&tag)), "application/dtmf-relay", "Signal=#\r\nDuration=100\r\n"), PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 200);
    assert!(matches!(h.events().as_slice(), [UaEvent::Dtmf { call: c, digit: '#', duration_ms: 100 }] if *c == call));
}

#[test]
fn message_out_with_digest_and_in() {
    let mut h = Harness::new();
    let m = h.ua.message(h.now, Uri::sip(Some("bob"), "example.test", None), addr(PEER), "text/plain", "hello");
    let (_, m1) = h.one_request(Method::Message);
    assert_eq!(String::from_utf8_lossy(&m1.body), "hello");
    h.feed(challenged(&m1, 407, "mn"), PEER);
    let (_, m2) = h.one_request(Method::Message);
    assert_credentials(&m2, "Proxy-Authorization", "mn");
    assert_eq!(m2.headers.cseq.seq, m1.headers.cseq.seq + 1);
    assert!(h.events().is_empty());
    h.feed(m2.response(200, Some("x")), PEER);
    assert!(matches!(h.events().as_slice(), [UaEvent::MessageStatus { msg, status: 200, raw: Some(_), .. }] if *msg == m));

    let incoming = req_with_body(peer_request(Method::Message, "msg-1", 1, "bt", None), "text/plain", "hi alice");
    h.feed(incoming, PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 200);
    match h.events().as_slice() {
        [UaEvent::Message { from, content_type, body, raw, .. }] => {
            assert_eq!(from, "sip:bob@127.0.0.1:5080");
            assert_eq!(content_type, "text/plain");
            assert_eq!(body, "hi alice");
            assert!(raw.starts_with("MESSAGE "));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn options_unknown_dialogs_and_methods() {
    let mut h = Harness::new();
    h.feed(peer_request(Method::Options, "o-1", 1, "t", None), PEER);
    let ok = h.responses().pop().unwrap().1;
    assert_eq!(ok.status, 200);
    assert!(ok.headers.get("Allow").unwrap().contains("INVITE"));
    h.feed(peer_request(Method::Bye, "nope", 1, "t", Some("x")), PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 481);
    h.feed(peer_request(Method::Other("FOO".into()), "o-2", 1, "t", None), PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 501);
    let (_, _, tag) = establish_incoming(&mut h);
    h.feed(peer_request(Method::Other("FOO".into()), "in-1", 5, "bobtag", Some(&tag)), PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 501);
    // out-of-order CSeq in the dialog: 500
    h.feed(peer_request(Method::Info, "in-1", 2, "bobtag", Some(&tag)), PEER);
    assert_eq!(h.responses().pop().unwrap().1.status, 500);
    assert!(h.events().is_empty());
}

#[test]
fn garbage_is_dropped_without_panic() {
    let mut h = Harness::new();
    let now = h.now;
    let from = addr(PEER);
    for junk in [&b""[..], b"\r\n\r\n", b"\x00\xff\xfe garbage", b"SIP/2.0 200 OK\r\n\r\n", b"INVITE sip:a SIP/2.0\r\nVia: nonsense\r\n\r\n", b"SIP/2.0 999999 X\r\n"] {
        h.ua.handle_datagram(now, junk, from);
    }
    assert!(h.sent().is_empty());
    // A response for no transaction of ours: ignored.
    let stray = peer_request(Method::Invite, "x", 1, "t", None).response(200, Some("y"));
    h.feed(stray, PEER);
    assert!(h.sent().is_empty());
    // Parseable enough to answer: 400 from the salvaged headers.
    let bad = b"INVITE sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKx\r\nFrom: <sip:bob@h>;tag=1\r\nTo: <sip:alice@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\n";
    h.ua.handle_datagram(now, bad, from);
    let sent = h.sent();
    assert!(matches!(sent.as_slice(), [(to, Message::Response(r))] if *to == from && r.status == 400), "{sent:?}");
    // An INVITE without Contact cannot make a dialog: 400.
    let mut no_contact = peer_request(Method::Invite, "nc", 1, "t", None);
    no_contact.headers.contact.clear();
    h.feed(no_contact, PEER);
    assert!(h.responses().iter().any(|(_, r)| r.status == 400));
    assert!(h.events().is_empty());
    // Random mutations of a valid message never panic.
    let good = req_with_body(peer_request(Method::Invite, "f", 1, "t", None), "application/sdp", &peer_sdp("sendrecv")).to_bytes();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % b.len();
            b[i] = (x >> 32) as u8;
        }
        h.ua.handle_datagram(now, &b, from);
        // (a 400 built from salvaged raw headers may itself be unparseable)
        while h.ua.poll_transmit().is_some() {}
        h.events();
    }
}
