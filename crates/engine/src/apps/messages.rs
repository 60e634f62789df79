//! Instant messages (SIP MESSAGE, RFC 3428, pager mode) for the directory's users.
//!
//! We are a store-and-forward relay, not a proxy: a MESSAGE for a user is answered
//! `202 Accepted` at once and then sent on to every registered contact of theirs, as
//! is an API message. The sender learns the outcome from events, not from the final
//! response (RFC 3428 §7 allows a relay to answer 202 for exactly this reason):
//!
//! - [`EngineEvent::MessageAccepted`]: a new message (the shell stores it);
//! - [`EngineEvent::MessageDelivered`]: the first device answered 2xx;
//! - [`EngineEvent::MessageDeferred`]: no device is registered, or none answered:
//!   the shell keeps the message and hands it back through
//!   [`crate::Engine::deliver_stored_message`] when the user next registers;
//! - [`EngineEvent::MessageFailed`]: every device refused it with a final status.
//!
//! "Is typing" notifications (RFC 3994) are relayed only: never stored, no events,
//! and `480` when nobody is there to see them.
//!
//! The engine owns no storage and no clock: delivery is one non-INVITE client
//! transaction per contact, and its response or timeout comes back as [`RawSip`].

use crate::engine::EngineEvent;
use crate::legs::{Legs, RawSip};
use crate::users::{DomainId, UserId};
use serde::Serialize;
use sip::transaction::TxId;
use sip::{Peer, Uri};
use std::collections::HashMap;
use std::time::Instant;

/// RFC 3994 "is composing": relayed, never stored.
pub const IS_COMPOSING: &str = "application/im-iscomposing+xml";

/// Largest body accepted, from a phone or the API (RFC 3428 §7 expects pager-mode
/// messages to be small; larger content belongs in a session).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageOrigin {
    /// A phone sent it (SIP MESSAGE).
    Sip,
    /// `POST /v1/users/{id}/messages`.
    Api,
}

/// One message for one user.
#[derive(Debug, Clone, Serialize)]
pub struct MessageInfo {
    /// `msg_` and 20 random characters: unique without asking the store.
    pub message_id: String,
    pub domain: String,
    #[serde(skip)]
    pub domain_id: DomainId,
    /// The recipient.
    pub user_id: UserId,
    /// The recipient's address of record.
    pub to: String,
    /// The sender's URI (the From of the MESSAGE, or who the API names).
    pub from: String,
    /// The sender, when it is an authenticated user of ours.
    pub from_user_id: Option<UserId>,
    pub content_type: String,
    pub body: String,
    pub origin: MessageOrigin,
    /// Unix time, ms.
    pub created_ms: u64,
}

/// A message out to the devices of its recipient.
struct Delivery {
    info: MessageInfo,
    /// Contacts that have not answered yet.
    outstanding: usize,
    delivered: bool,
    /// A device did not answer, or said "try later": worth another attempt.
    retry: bool,
    last_status: Option<(u16, String)>,
    /// Typing notifications report nothing.
    quiet: bool,
}

#[derive(Default)]
pub(crate) struct Messaging {
    by_tx: HashMap<TxId, String>,
    deliveries: HashMap<String, Delivery>,
}

impl Messaging {
    /// Sends `info` to each of `contacts`; reports through `legs.public`. No contact:
    /// deferred at once.
    pub(crate) fn deliver(&mut self, now: Instant, legs: &mut Legs, info: MessageInfo, contacts: Vec<(Uri, Peer)>) {
        let quiet = is_composing(&info.content_type);
        if contacts.is_empty() {
            if !quiet {
                legs.public.push_back(deferred(&info, "no registered device"));
            }
            return;
        }
        let id = info.message_id.clone();
        if self.deliveries.contains_key(&id) {
            return; // already on its way (a second registration while it is in flight)
        }
        for (uri, peer) in &contacts {
            let req = message_request(legs, &info, uri.clone(), *peer);
            let tx = legs.send_raw_request(now, req, *peer);
            self.by_tx.insert(tx, id.clone());
        }
        self.deliveries.insert(id, Delivery { info, outstanding: contacts.len(), delivered: false, retry: false, last_status: None, quiet });
    }

    /// Takes what answers our MESSAGEs; everything else is handed back.
    pub(crate) fn on_raw(&mut self, legs: &mut Legs, raw: RawSip) -> Option<RawSip> {
        let (tx, outcome) = match &raw {
            RawSip::Response { tx, resp } if resp.status >= 200 => (*tx, Some((resp.status, resp.reason.clone()))),
            RawSip::Response { tx, .. } => return (!self.by_tx.contains_key(tx)).then_some(raw),
            RawSip::Timeout { tx } => (*tx, None),
            // Ended with neither a final response nor a timeout reported: as a timeout.
            RawSip::Terminated { tx } if self.by_tx.contains_key(tx) => (*tx, None),
            RawSip::Terminated { .. } => return Some(raw),
            RawSip::Request { .. } => return Some(raw),
        };
        let Some(id) = self.by_tx.remove(&tx) else { return Some(raw) };
        let d = self.deliveries.get_mut(&id)?;
        d.outstanding = d.outstanding.saturating_sub(1);
        match outcome {
            Some((status, _)) if (200..300).contains(&status) => {
                if !d.delivered && !d.quiet {
                    legs.public.push_back(EngineEvent::MessageDelivered {
                        message_id: id.clone(),
                        user_id: d.info.user_id,
                        domain: d.info.domain.clone(),
                        status,
                    });
                }
                d.delivered = true;
            }
            Some((status, reason)) => {
                // Busy, unavailable or overloaded devices may take it later.
                d.retry |= matches!(status, 408 | 480 | 486 | 500 | 503 | 504 | 600);
                d.last_status = Some((status, reason));
            }
            None => {
                d.retry = true;
                d.last_status = Some((408, "no answer from the device".into()));
            }
        }
        if d.outstanding == 0 {
            let d = self.deliveries.remove(&id).expect("present");
            if !d.delivered && !d.quiet {
                let (status, reason) = d.last_status.clone().unwrap_or((408, "no answer".into()));
                legs.public.push_back(if d.retry {
                    deferred(&d.info, &format!("{status} {reason}"))
                } else {
                    EngineEvent::MessageFailed { message_id: id, user_id: d.info.user_id, domain: d.info.domain, status, reason }
                });
            }
        }
        None
    }

    /// Messages still waiting for a device's answer.
    pub(crate) fn in_flight(&self) -> usize {
        self.deliveries.len()
    }
}

pub fn is_composing(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(IS_COMPOSING))
}

/// A media type as `type/subtype` (tokens of 1 to 64 characters), optionally `;` and
/// up to 128 printable ASCII characters of parameters: exactly what the API's
/// published pattern admits.
pub fn valid_content_type(ct: &str) -> bool {
    let (media, params) = match ct.split_once(';') {
        Some((m, p)) => (m, Some(p)),
        None => (ct, None),
    };
    let token = |s: &str| (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    let Some((t, s)) = media.split_once('/') else { return false };
    token(t) && token(s) && params.is_none_or(|p| p.len() <= 128 && p.bytes().all(|b| (0x20..0x7f).contains(&b)))
}

fn deferred(info: &MessageInfo, reason: &str) -> EngineEvent {
    EngineEvent::MessageDeferred { message_id: info.message_id.clone(), user_id: info.user_id, domain: info.domain.clone(), reason: reason.to_owned() }
}

/// The MESSAGE to one contact: From is the sender, To the recipient's address of
/// record, a fresh Call-ID; no Contact (pager mode makes no dialog).
fn message_request(legs: &Legs, info: &MessageInfo, contact: Uri, peer: Peer) -> sip::Request {
    use sip::dialog::random_token;
    let mut ruri = contact;
    ruri.headers.clear();
    let from = sip::parse::parse_uri(&info.from).unwrap_or_else(|_| ruri.clone());
    let to = sip::parse::parse_uri(&info.to).unwrap_or_else(|_| ruri.clone());
    let host = match legs.cfg.sip_addr.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let mut headers = sip::Headers {
        via: vec![legs.via(peer.transport)],
        from: sip::NameAddr::new(from).with_tag(&random_token(10)),
        to: sip::NameAddr::new(to),
        call_id: format!("{}@{host}", random_token(20)),
        cseq: sip::CSeq { seq: 1, method: sip::Method::Message },
        max_forwards: Some(70),
        contact: Vec::new(),
        route: Vec::new(),
        record_route: Vec::new(),
        content_type: Some(info.content_type.clone()),
        extra: Vec::new(),
    };
    headers.push("User-Agent", legs.cfg.user_agent.clone());
    sip::Request { method: sip::Method::Message, uri: ruri, headers, body: info.body.clone().into_bytes() }
}

pub(crate) fn new_message_id() -> String {
    format!("msg_{}", sip::dialog::random_token(20))
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::MediaEngine;
    use sip::{Message, Transport};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    const A: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5996);
    const B: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5997);

    /// The leg layer on a virtual clock, two phones played by hand, and the relay.
    struct H {
        legs: Legs,
        messaging: Messaging,
        now: Instant,
        _media: MediaEngine,
        _ports: testports::PortBlock,
    }

    impl H {
        fn new() -> H {
            let (legs, media, block) = crate::legs::legs_for_tests();
            H { legs, messaging: Messaging::default(), now: Instant::now(), _media: media, _ports: block }
        }

        /// Sends `content_type` to both phones; returns the MESSAGE each got.
        fn send(&mut self, content_type: &str, to: &[SocketAddr]) -> Vec<(SocketAddr, sip::Request)> {
            let info = MessageInfo {
                message_id: new_message_id(),
                domain: "switchboard.local".into(),
                domain_id: 1,
                user_id: 7,
                to: "sip:3045@switchboard.local".into(),
                from: "sip:3044@switchboard.local".into(),
                from_user_id: Some(6),
                content_type: content_type.into(),
                body: "hi".into(),
                origin: MessageOrigin::Sip,
                created_ms: 1,
            };
            let contacts = to.iter().map(|a| (Uri::sip(Some("phone"), "127.0.0.1", Some(a.port())), Peer { addr: *a, transport: Transport::Udp })).collect();
            self.messaging.deliver(self.now, &mut self.legs, info, contacts);
            self.legs.pump(self.now);
            std::iter::from_fn(|| self.legs.poll_transmit())
                .map(|(p, b)| match sip::parse::parse_datagram(&b).expect("parseable") {
                    Message::Request(r) => (p.addr, r),
                    other => panic!("a request: {other:?}"),
                })
                .collect()
        }

        fn answer(&mut self, from: SocketAddr, req: &sip::Request, status: u16) {
            let resp = self.legs.response(req, status, Some("phone-tag"));
            self.legs.handle_sip(self.now, Message::Response(resp), Peer { addr: from, transport: Transport::Udp });
            self.pump();
        }

        fn advance(&mut self, d: Duration) {
            let end = self.now + d;
            while let Some(at) = self.legs.poll_timeout().filter(|at| *at <= end) {
                self.now = at.max(self.now);
                self.legs.handle_timeout(self.now);
                self.pump();
            }
            self.now = end;
        }

        fn pump(&mut self) {
            while let Some(raw) = self.legs.poll_raw() {
                // Only the end of a transaction already answered goes back (to the controller).
                if let Some(back) = self.messaging.on_raw(&mut self.legs, raw) {
                    assert!(matches!(back, RawSip::Terminated { .. }), "every answer is the relay's");
                }
            }
            self.legs.pump(self.now);
            while self.legs.poll_transmit().is_some() {}
        }

        fn events(&mut self) -> Vec<EngineEvent> {
            self.legs.public.drain(..).collect()
        }
    }

    #[test]
    fn the_first_2xx_delivers_once() {
        let mut h = H::new();
        let sent = h.send("text/plain", &[A, B]);
        assert_eq!(sent.len(), 2);
        let (to, req) = &sent[0];
        assert_eq!((req.method.clone(), req.headers.content_type.as_deref(), req.body.as_slice()), (sip::Method::Message, Some("text/plain"), &b"hi"[..]));
        assert!(req.headers.contact.is_empty(), "pager mode: no Contact");
        assert_eq!(req.headers.from.uri.to_string(), "sip:3044@switchboard.local");
        h.answer(*to, req, 200);
        let (to, req) = &sent[1];
        h.answer(*to, req, 202);
        let ev = h.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(matches!(ev[0], EngineEvent::MessageDelivered { status: 200, .. }), "{ev:?}");
        assert_eq!(h.messaging.in_flight(), 0);
    }

    #[test]
    fn refusals_fail_it_and_busy_or_silent_devices_defer_it() {
        let mut h = H::new();
        let sent = h.send("text/plain", &[A, B]);
        h.answer(sent[0].0, &sent[0].1, 603);
        h.answer(sent[1].0, &sent[1].1, 415);
        let ev = h.events();
        assert!(matches!(&ev[..], [EngineEvent::MessageFailed { status: 415, .. }]), "{ev:?}");

        // One busy, one never answers (timer F, 64*T1): worth another try later.
        let sent = h.send("text/plain", &[A, B]);
        h.answer(sent[0].0, &sent[0].1, 486);
        assert!(h.events().is_empty(), "B may still take it");
        h.advance(Duration::from_secs(40));
        let ev = h.events();
        assert!(matches!(&ev[..], [EngineEvent::MessageDeferred { reason, .. }] if reason.starts_with("408")), "{ev:?}");
        assert_eq!(h.messaging.in_flight(), 0);
    }

    #[test]
    fn typing_notifications_report_nothing() {
        let mut h = H::new();
        assert!(h.send(IS_COMPOSING, &[]).is_empty());
        let sent = h.send(IS_COMPOSING, &[A]);
        h.answer(sent[0].0, &sent[0].1, 480);
        assert!(h.events().is_empty());
        // A plain message to nobody is deferred at once.
        assert!(h.send("text/plain", &[]).is_empty());
        assert!(matches!(&h.events()[..], [EngineEvent::MessageDeferred { reason, .. }] if reason == "no registered device"));
    }

    #[test]
    fn content_types() {
        assert!(valid_content_type("text/plain"));
        assert!(valid_content_type("text/plain; charset=UTF-8"));
        assert!(valid_content_type("application/im-iscomposing+xml"));
        assert!(!valid_content_type("text"));
        assert!(!valid_content_type(" text/plain"));
        assert!(!valid_content_type("text/plain/x"));
        assert!(!valid_content_type("/plain"));
        assert!(!valid_content_type("text/pl ain"));
        assert!(!valid_content_type("text/plain\r\nX-Evil: 1"));
        assert!(is_composing("application/im-iscomposing+xml;charset=utf-8"));
        assert!(!is_composing("text/plain"));
    }
}
