//! The mid-call state machines on a virtual clock: our re-INVITE (hold, resume,
//! glare), REFER out with its NOTIFYs, REFER in, DTMF by INFO. The remote party is
//! played by hand-written SIP; the media runtime is real (it binds the SDP's ports)
//! but no RTP flows.

use super::*;
use crate::engine::DialOut;
use media::MediaEngine;
use sip::parse::parse_datagram;
use std::time::Duration;

const PHONE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5998);
const PHONE_SDP_RECVONLY: &str = "v=0\r\no=p 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n";
const PHONE_SDP: &str = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

struct H {
    legs: Legs,
    now: Instant,
    _media: MediaEngine,
    _ports: testports::PortBlock,
}

impl H {
    fn new() -> H {
        let (legs, media, block) = super::legs_for_tests();
        H { legs, now: Instant::now(), _media: media, _ports: block }
    }

    fn sent(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.legs.poll_transmit()).map(|(_, b)| parse_datagram(&b).expect("we send parseable SIP")).collect()
    }

    fn events(&mut self) -> Vec<LegEvent> {
        std::iter::from_fn(|| self.legs.poll_event()).collect()
    }

    fn deliver(&mut self, m: Message) {
        self.legs.handle_sip(self.now, m, Peer { addr: PHONE, transport: Transport::Udp });
    }

    fn advance(&mut self, d: Duration) -> Vec<Message> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.legs.poll_timeout().filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.legs.handle_timeout(self.now);
            out.extend(self.sent());
        }
        self.now = end;
        out
    }

    /// An answered outbound leg to the phone; returns it and the phone's tag.
    fn answered_leg(&mut self) -> LegId {
        let d = to_phone();
        let id = self.legs.place(self.now, d, Owner::Nobody).expect("placed");
        let invite = only_request(self.sent(), Method::Invite);
        let ok = answer(&invite, 200, PHONE_SDP);
        self.deliver(Message::Response(ok));
        let sent = self.sent();
        assert!(sent.iter().any(|m| matches!(m, Message::Request(r) if r.method == Method::Ack)), "2xx ACKed");
        assert!(self.events().iter().any(|e| matches!(e, LegEvent::Answered { .. })));
        id
    }
}

/// A call to the phone as the bridge places one; tests change the fields they look at.
fn to_phone() -> DialOut {
    DialOut {
        to: Uri::sip(Some("phone"), "127.0.0.1", Some(PHONE.port())),
        peer: Peer { addr: PHONE, transport: Transport::Udp },
        from_user: None,
        service: Service::Call,
        hangup_after: None,
        domain: None,
        from_display: None,
        extra_headers: Vec::new(),
        from_host: None,
        credentials: None,
    }
}

fn only_request(msgs: Vec<Message>, method: Method) -> Request {
    let mut reqs: Vec<Request> = msgs.into_iter().filter_map(|m| if let Message::Request(r) = m { Some(r) } else { None }).filter(|r| r.method == method).collect();
    assert_eq!(reqs.len(), 1, "exactly one {method:?} sent");
    reqs.pop().unwrap()
}

fn responses(msgs: &[Message]) -> Vec<&Response> {
    msgs.iter().filter_map(|m| if let Message::Response(r) = m { Some(r) } else { None }).collect()
}

/// The phone's answer to one of our requests, with its tag, Contact and SDP.
fn answer(req: &Request, status: u16, sdp: &str) -> Response {
    let tag = req.headers.to.tag().unwrap_or("phonetag").to_owned();
    let mut r = req.response(status, Some(&tag));
    r.headers.contact = vec![NameAddr::new(Uri::sip(Some("phone"), "127.0.0.1", Some(PHONE.port())))];
    if !sdp.is_empty() {
        r.headers.content_type = Some("application/sdp".into());
        r.body = sdp.as_bytes().to_vec();
    }
    r
}

/// A request from the phone inside the dialog of `ours` (a request we sent to it).
fn from_phone(ours: &Request, method: Method, cseq: u32, extra: &[(&str, &str)], ctype: Option<&str>, body: &str) -> Message {
    let mut h = ours.headers.clone();
    std::mem::swap(&mut h.from, &mut h.to);
    h.via = vec![Via {
        transport: Transport::Udp,
        host: "127.0.0.1".into(),
        port: Some(PHONE.port()),
        params: vec![Param::new("branch", Some(new_branch()))],
    }];
    h.cseq = sip::CSeq { seq: cseq, method: method.clone() };
    h.contact = vec![NameAddr::new(Uri::sip(Some("phone"), "127.0.0.1", Some(PHONE.port())))];
    h.extra = extra.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    h.content_type = ctype.map(str::to_owned);
    let uri = ours.headers.from.uri.clone();
    Message::Request(Request { method, uri, headers: h, body: body.as_bytes().to_vec() })
}

fn sdp_direction(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    ["sendonly", "recvonly", "inactive", "sendrecv"].iter().find(|d| text.contains(&format!("a={d}"))).unwrap_or(&"none").to_string()
}

#[test]
fn hold_and_resume_reinvite_acked_with_its_own_cseq() {
    let mut h = H::new();
    let id = h.answered_leg();
    h.legs.hold(h.now, &id, false).expect("hold");
    let reinvite = only_request(h.sent(), Method::Invite);
    assert_eq!(sdp_direction(&reinvite.body), "sendonly");
    assert!(reinvite.headers.to.tag().is_some(), "in-dialog");
    assert_eq!(reinvite.headers.cseq.seq, 2);
    // A second change while the first is pending is refused, not queued.
    assert!(h.legs.unhold(h.now, &id).is_err());

    h.deliver(Message::Response(answer(&reinvite, 200, PHONE_SDP_RECVONLY)));
    let ack = only_request(h.sent(), Method::Ack);
    assert_eq!(ack.headers.cseq.seq, 2, "the ACK carries the re-INVITE's CSeq");
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, LegEvent::HoldResult { hold: true, status: 200, .. })), "{ev:?}");
    let leg = h.legs.get(&id).unwrap();
    assert!(leg.held_locally);
    assert_eq!(leg.state, LegState::Held);

    // A retransmitted 2xx is ACKed again and changes nothing.
    h.deliver(Message::Response(answer(&reinvite, 200, PHONE_SDP_RECVONLY)));
    only_request(h.sent(), Method::Ack);
    assert!(h.events().is_empty());

    h.legs.unhold(h.now, &id).expect("unhold");
    let resume = only_request(h.sent(), Method::Invite);
    assert_eq!(sdp_direction(&resume.body), "sendrecv");
    h.deliver(Message::Response(answer(&resume, 200, PHONE_SDP)));
    only_request(h.sent(), Method::Ack);
    assert!(h.events().iter().any(|e| matches!(e, LegEvent::HoldResult { hold: false, status: 200, .. })));
    let leg = h.legs.get(&id).unwrap();
    assert!(!leg.held_locally);
    assert_eq!(leg.state, LegState::Active);
}

#[test]
fn glare_both_ways_then_retry_after_backoff() {
    let mut h = H::new();
    let id = h.answered_leg();
    h.legs.hold(h.now, &id, true).expect("hold");
    let reinvite = only_request(h.sent(), Method::Invite);
    assert_eq!(sdp_direction(&reinvite.body), "inactive");

    // The phone re-INVITEs at the same time: we answer 491.
    h.deliver(from_phone(&reinvite, Method::Invite, 5, &[], Some("application/sdp"), PHONE_SDP));
    let sent = h.sent();
    assert!(responses(&sent).iter().any(|r| r.status == 491), "glare answered 491");

    // ...and it answers ours 491 too: nothing reported yet, a retry comes in 2.1-4 s.
    h.deliver(Message::Response(answer(&reinvite, 491, "")));
    h.sent();
    assert!(h.events().is_empty());
    let early = h.advance(Duration::from_millis(2000));
    assert!(!early.iter().any(|m| matches!(m, Message::Request(r) if r.method == Method::Invite)), "no retry before 2.1 s");
    let later = h.advance(Duration::from_millis(2100));
    // The retry may have been retransmitted already (Timer A): same transaction.
    let retries: Vec<Request> = later.into_iter().filter_map(|m| if let Message::Request(r) = m { Some(r) } else { None }).filter(|r| r.method == Method::Invite).collect();
    assert!(!retries.is_empty(), "the re-INVITE is retried");
    assert!(retries.iter().all(|r| r.headers.cseq.seq == retries[0].headers.cseq.seq), "one transaction");
    let retry = retries[0].clone();
    assert_eq!(sdp_direction(&retry.body), "inactive");
    assert!(retry.headers.cseq.seq > reinvite.headers.cseq.seq);
    h.deliver(Message::Response(answer(&retry, 200, &PHONE_SDP.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n"))));
    only_request(h.sent(), Method::Ack);
    assert!(h.events().iter().any(|e| matches!(e, LegEvent::HoldResult { hold: true, status: 200, .. })));
}

#[test]
fn reinvite_refused_leaves_session_and_481_ends_leg() {
    let mut h = H::new();
    let id = h.answered_leg();
    h.legs.hold(h.now, &id, false).unwrap();
    let reinvite = only_request(h.sent(), Method::Invite);
    h.deliver(Message::Response(answer(&reinvite, 488, "")));
    h.sent();
    assert!(h.events().iter().any(|e| matches!(e, LegEvent::HoldResult { hold: true, status: 488, .. })));
    assert_eq!(h.legs.get(&id).unwrap().state, LegState::Active);
    assert!(!h.legs.get(&id).unwrap().held_locally);

    h.legs.hold(h.now, &id, false).unwrap();
    let again = only_request(h.sent(), Method::Invite);
    h.deliver(Message::Response(answer(&again, 481, "")));
    let sent = h.sent();
    assert!(sent.iter().any(|m| matches!(m, Message::Request(r) if r.method == Method::Bye)), "481 to a re-INVITE ends the dialog");
    assert!(h.legs.get(&id).unwrap().is_over());
}

#[test]
fn refer_out_follows_notify_sipfrags() {
    let mut h = H::new();
    let id = h.answered_leg();
    let target = sip::parse::parse_uri("sip:1003@127.0.0.1:5060").unwrap();
    h.legs.refer(h.now, &id, &target, Some("sip:1001@example.com")).unwrap();
    let refer = only_request(h.sent(), Method::Refer);
    assert_eq!(refer.headers.get("Refer-To"), Some("<sip:1003@127.0.0.1:5060>"));
    assert_eq!(refer.headers.get("Referred-By"), Some("<sip:1001@example.com>"));
    assert!(h.legs.refer(h.now, &id, &target, None).is_err(), "one transfer at a time");
    h.deliver(Message::Response(answer(&refer, 202, "")));
    assert!(h.events().is_empty());

    let frag = |status: &str, state: &str, cseq| from_phone(&refer, Method::Notify, cseq, &[("Event", "refer"), ("Subscription-State", state)], Some("message/sipfrag;version=2.0"), status);
    h.deliver(frag("SIP/2.0 100 Trying\r\n", "active;expires=60", 10));
    assert!(responses(&h.sent()).iter().any(|r| r.status == 200));
    h.deliver(frag("SIP/2.0 180 Ringing\r\n", "active;expires=60", 11));
    h.deliver(frag("SIP/2.0 200 OK\r\n", "terminated;reason=noresource", 12));
    assert_eq!(responses(&h.sent()).iter().filter(|r| r.status == 200).count(), 2);
    let progress: Vec<(u16, bool)> = h.events().into_iter().filter_map(|e| if let LegEvent::ReferProgress { status, done, .. } = e { Some((status, done)) } else { None }).collect();
    assert_eq!(progress, vec![(100, false), (180, false), (200, true)]);
    assert!(!h.legs.get(&id).unwrap().refer.outgoing);
}

#[test]
fn refer_refused_is_reported_done() {
    let mut h = H::new();
    let id = h.answered_leg();
    let target = sip::parse::parse_uri("sip:1003@127.0.0.1").unwrap();
    h.legs.refer(h.now, &id, &target, None).unwrap();
    let refer = only_request(h.sent(), Method::Refer);
    h.deliver(Message::Response(answer(&refer, 603, "")));
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, LegEvent::ReferProgress { status: 603, done: true, .. })), "{ev:?}");
}

#[test]
fn refer_in_gets_202_trying_then_final_notify() {
    let mut h = H::new();
    let id = h.answered_leg();
    // Any request we sent gives the dialog's headers to build the phone's REFER from.
    let target = sip::parse::parse_uri("sip:x@127.0.0.1").unwrap();
    h.legs.send_dtmf(h.now, &id, "1", DtmfMethod::Info).unwrap();
    let info = only_request(h.sent(), Method::Info);
    assert_eq!(info.headers.content_type.as_deref(), Some("application/dtmf-relay"));
    assert_eq!(String::from_utf8_lossy(&info.body), "Signal=1\r\nDuration=160\r\n");
    let _ = target;

    h.deliver(from_phone(&info, Method::Refer, 20, &[("Refer-To", "<sip:1003@127.0.0.1?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>"), ("Referred-By", "<sip:1001@x>")], None, ""));
    let sent = h.sent();
    assert!(responses(&sent).iter().any(|r| r.status == 202));
    let notify = only_request(sent, Method::Notify);
    assert_eq!(notify.headers.get("Event"), Some("refer"));
    assert!(notify.headers.get("Subscription-State").unwrap().starts_with("active"));
    assert_eq!(String::from_utf8_lossy(&notify.body), "SIP/2.0 100 Trying\r\n");
    let ev = h.events();
    let Some(LegEvent::Referred { target, replaces, referred_by, .. }) = ev.into_iter().find(|e| matches!(e, LegEvent::Referred { .. })) else { panic!("no Referred") };
    assert_eq!(target.to_string(), "sip:1003@127.0.0.1");
    assert_eq!(replaces, Some(Replaces { call_id: "abc@h".into(), to_tag: "1".into(), from_tag: "2".into(), early_only: false }));
    assert_eq!(referred_by.as_deref(), Some("sip:1001@x"));

    // A second REFER while the first is carried out: 491.
    h.deliver(from_phone(&info, Method::Refer, 21, &[("Refer-To", "<sip:1004@127.0.0.1>")], None, ""));
    assert!(responses(&h.sent()).iter().any(|r| r.status == 491));

    h.legs.notify_refer(h.now, &id, 200, "OK");
    let last = only_request(h.sent(), Method::Notify);
    assert!(last.headers.get("Subscription-State").unwrap().starts_with("terminated"));
    assert_eq!(String::from_utf8_lossy(&last.body), "SIP/2.0 200 OK\r\n");
    // Without a Refer-To it is a 400.
    h.deliver(from_phone(&info, Method::Refer, 22, &[], None, ""));
    assert!(responses(&h.sent()).iter().any(|r| r.status == 400));
}

#[test]
fn replaces_finds_the_leg_either_tag_order_and_dtmf_checks_digits() {
    let mut h = H::new();
    let id = h.answered_leg();
    let r = h.legs.replaces_for(&id).unwrap();
    assert_eq!(h.legs.find_replaced(&r), Some(id.clone()));
    let swapped = Replaces { to_tag: r.from_tag.clone(), from_tag: r.to_tag.clone(), ..r.clone() };
    assert_eq!(h.legs.find_replaced(&swapped), Some(id.clone()));
    assert_eq!(h.legs.find_replaced(&Replaces { call_id: "other".into(), ..r }), None);
    assert!(matches!(h.legs.send_dtmf(h.now, &id, "12x", DtmfMethod::Rfc4733), Err(EngineError::BadRequest(_))));
    assert!(matches!(h.legs.send_dtmf(h.now, &id, "", DtmfMethod::Info), Err(EngineError::BadRequest(_))));
    h.legs.send_dtmf(h.now, &id, "1#", DtmfMethod::Rfc4733).unwrap();
}

/// Digits the phone sends by INFO, either content type, are answered 200 and reported
/// as media digits are (to the owner and to the APIs); an INFO of either type that names
/// no digit gets 400; any other INFO goes to the owner.
#[test]
fn digits_by_info_from_the_phone_are_reported() {
    let mut h = H::new();
    let id = h.answered_leg();
    // Any request we sent gives the dialog's headers to build the phone's from.
    h.legs.send_dtmf(h.now, &id, "1", DtmfMethod::Info).unwrap();
    let ours = only_request(h.sent(), Method::Info);
    let _ = h.events();
    let _ = std::iter::from_fn(|| h.legs.public.pop_front()).count();

    h.deliver(from_phone(&ours, Method::Info, 30, &[], Some("application/dtmf-relay"), "Signal=5\r\nDuration=120\r\n"));
    h.deliver(from_phone(&ours, Method::Info, 31, &[], Some("application/dtmf"), "#"));
    h.deliver(from_phone(&ours, Method::Info, 32, &[], Some("application/dtmf-relay"), "Signal=x\r\n"));
    h.deliver(from_phone(&ours, Method::Info, 33, &[], Some("application/media_control+xml"), "<media_control/>"));
    let statuses: Vec<(u32, u16)> = responses(&h.sent()).iter().map(|r| (r.headers.cseq.seq, r.status)).collect();
    assert_eq!(statuses, vec![(30, 200), (31, 200), (32, 400)], "the fourth INFO is the owner's to answer");
    let digits: Vec<(char, u32)> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            LegEvent::Dtmf { leg, digit, duration_ms } if leg == id => Some((digit, duration_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec![('5', 120), ('#', refer::DTMF_DURATION_MS)]);
    let public: Vec<char> = std::iter::from_fn(|| h.legs.public.pop_front())
        .filter_map(|e| match e {
            EngineEvent::Dtmf { leg_id, digit, .. } if leg_id == id => Some(digit),
            _ => None,
        })
        .collect();
    assert_eq!(public, vec!['5', '#']);
}

/// A dial-out with credentials answers the peer's 401 by sending the INVITE again
/// (CSeq + 1, same Call-ID and From tag) with an `Authorization` the peer can verify;
/// a second 401 to that ends the leg. The last response is kept for the APIs.
#[test]
fn challenged_invite_is_sent_again_with_credentials_once() {
    use sip::digest::{ha1, Algorithm, Credentials};
    let mut h = H::new();
    let d = DialOut {
        from_user: Some("alice".into()),
        extra_headers: vec![("X-Room".into(), "4711".into())],
        from_host: Some("voip.example".into()),
        credentials: Some(DigestCredentials { username: "alice".into(), password: "s3cret".into() }),
        ..to_phone()
    };
    let id = h.legs.place(h.now, d, Owner::Nobody).expect("placed");
    let first = only_request(h.sent(), Method::Invite);
    assert_eq!(first.headers.from.uri.to_string(), "sip:alice@voip.example");
    assert_eq!(first.headers.get("X-Room"), Some("4711"));
    let mut challenge = first.response(401, Some("peer1"));
    challenge.headers.push("WWW-Authenticate", r#"Digest realm="voip.example", nonce="abc123", qop="auth", algorithm=MD5"#);
    h.deliver(Message::Response(challenge));
    let sent = h.sent();
    assert!(sent.iter().any(|m| matches!(m, Message::Request(r) if r.method == Method::Ack)), "the 401 is ACKed");
    let second = only_request(sent, Method::Invite);
    assert_eq!(second.headers.cseq.seq, first.headers.cseq.seq + 1);
    assert_eq!(second.headers.call_id, first.headers.call_id);
    assert_eq!(second.headers.from.tag(), first.headers.from.tag());
    assert_ne!(second.headers.via[0].branch(), first.headers.via[0].branch());
    assert_eq!(second.body, first.body, "the same offer");
    let creds = Credentials::parse(second.headers.get("Authorization").expect("Authorization")).expect("well-formed");
    assert_eq!((creds.username.as_str(), creds.realm.as_str(), creds.uri.as_str()), ("alice", "voip.example", "sip:phone@127.0.0.1:5998"));
    assert!(creds.verify(Algorithm::Md5, &ha1(Algorithm::Md5, "alice", "voip.example", "s3cret"), "INVITE"));
    assert_eq!(h.legs.get(&id).unwrap().last_response, Some((401, "Unauthorized".into())));
    assert!(!h.legs.get(&id).unwrap().is_over(), "still calling");

    // refused again: no third INVITE, the leg ends with the 401
    let mut again = second.response(401, Some("peer2"));
    again.headers.push("WWW-Authenticate", r#"Digest realm="voip.example", nonce="def456", algorithm=MD5"#);
    h.deliver(Message::Response(again));
    let sent = h.sent();
    assert!(!sent.iter().any(|m| matches!(m, Message::Request(r) if r.method == Method::Invite)), "gave up");
    let leg = h.legs.get(&id).unwrap();
    assert!(leg.is_over());
    assert_eq!(leg.end_status, Some(401));
}

/// Answered after the challenge: the dialog is the second INVITE's, the last response 200.
#[test]
fn challenged_invite_answered() {
    let mut h = H::new();
    let d = DialOut { credentials: Some(DigestCredentials { username: "u".into(), password: "p".into() }), ..to_phone() };
    let id = h.legs.place(h.now, d, Owner::Nobody).expect("placed");
    let first = only_request(h.sent(), Method::Invite);
    let mut challenge = first.response(407, Some("proxy"));
    challenge.headers.push("Proxy-Authenticate", r#"Digest realm="p.example", nonce="n1""#);
    h.deliver(Message::Response(challenge));
    let second = only_request(h.sent(), Method::Invite);
    assert!(second.headers.get("Proxy-Authorization").is_some_and(|v| v.contains(r#"realm="p.example""#)));
    let mut ringing = answer(&second, 180, "");
    ringing.reason = "Ringing".into();
    h.deliver(Message::Response(ringing));
    assert_eq!(h.legs.get(&id).unwrap().last_response, Some((180, "Ringing".into())));
    h.deliver(Message::Response(answer(&second, 200, PHONE_SDP)));
    let sent = h.sent();
    let ack = only_request(sent, Method::Ack);
    assert_eq!(ack.headers.cseq.seq, second.headers.cseq.seq);
    let leg = h.legs.get(&id).unwrap();
    assert_eq!(leg.state, LegState::Active);
    assert_eq!(leg.last_response, Some((200, "OK".into())));
}

#[test]
fn an_announcement_call_takes_sounds_and_digits_once_answered_and_only_its_own() {
    use crate::apps::announcement;
    let mut h = H::new();
    let tone = || media::PromptSpec::once(media::player::parse_tones("1600/500").unwrap());
    // A leg of another application is not the API's to play into.
    let other = h.answered_leg();
    assert!(matches!(announcement::play(&mut h.legs, &other, tone()), Err(EngineError::Conflict(m)) if m.contains("not an announcement")));
    assert!(matches!(announcement::play(&mut h.legs, &LegId("nope".into()), tone()), Err(EngineError::LegNotFound)));

    let d = DialOut { from_user: Some("alice".into()), service: Service::Announcement, from_display: Some("Reminder".into()), ..to_phone() };
    let id = h.legs.place(h.now, d, Owner::Announcement).expect("placed");
    let invite = only_request(h.sent(), Method::Invite);
    assert_eq!(invite.headers.from.display.as_deref(), Some("Reminder"), "the display name goes out in From");
    // Ringing: nothing plays yet.
    assert!(matches!(announcement::play(&mut h.legs, &id, tone()), Err(EngineError::Conflict(m)) if m.contains("not answered")));
    assert!(matches!(announcement::send_dtmf(h.now, &mut h.legs, &id, "1", DtmfMethod::Info), Err(EngineError::Conflict(_))));
    h.deliver(Message::Response(answer(&invite, 200, PHONE_SDP)));
    h.sent();
    h.events();
    let first = announcement::play(&mut h.legs, &id, tone()).expect("plays once answered");
    let second = announcement::play(&mut h.legs, &id, tone()).expect("a second sound replaces the first");
    assert_ne!(first, second);
    announcement::send_dtmf(h.now, &mut h.legs, &id, "5#", DtmfMethod::Info).expect("digits by INFO");
    let infos = h.sent().into_iter().filter(|m| matches!(m, Message::Request(r) if r.method == Method::Info)).count();
    assert_eq!(infos, 2, "one INFO per digit");
    assert!(matches!(announcement::send_dtmf(h.now, &mut h.legs, &id, "x", DtmfMethod::Info), Err(EngineError::BadRequest(_))));
    h.legs.hangup(h.now, &id).expect("hang up");
    assert!(matches!(announcement::play(&mut h.legs, &id, tone()), Err(EngineError::LegEnded)));
}
