//! Requests outside any dialog besides INVITE and REGISTER: MESSAGE (RFC 3428) both
//! ways, and OPTIONS answered 200 (RFC 3261 §11.2).

use super::{body_text, AuthState, MessageRef, Purpose, UaEvent, UserAgent, ALLOW};
use crate::dialog::random_token;
use crate::message::{CSeq, Headers, Message, Method, Request};
use crate::transaction::TxId;
use crate::uri::{NameAddr, Uri};
use std::net::SocketAddr;
use std::time::Instant;

impl UserAgent {
    /// Sends an out-of-dialog MESSAGE to `target` via `destination` (the outbound proxy
    /// when configured). The outcome comes as [`UaEvent::MessageStatus`].
    pub fn message(&mut self, now: Instant, target: Uri, destination: SocketAddr, content_type: &str, body: &str) -> MessageRef {
        let id = self.next_ref();
        let mut req = Request {
            method: Method::Message,
            uri: target.clone(),
            headers: Headers {
                via: vec![self.via()],
                from: self.aor().with_tag(&random_token(16)),
                to: NameAddr::new(target),
                call_id: random_token(20),
                cseq: CSeq { seq: 1, method: Method::Message },
                max_forwards: Some(70),
                contact: Vec::new(),
                route: Vec::new(),
                record_route: Vec::new(),
                content_type: Some(content_type.to_owned()),
                extra: Vec::new(),
            },
            body: body.as_bytes().to_vec(),
        };
        self.decorate(&mut req);
        let dest = self.first_hop(destination);
        self.send_request(now, req, dest, Purpose::Message(id), AuthState::default());
        self.pump(now);
        MessageRef(id)
    }

    /// A MESSAGE (in or out of a dialog): 200, then the event.
    pub(super) fn on_incoming_message(&mut self, now: Instant, tx: TxId, req: &Request) {
        self.respond(now, tx, req, 200, None);
        let raw = self.raw_of(&Message::Request(req.clone()));
        self.events.push_back(UaEvent::Message {
            from: req.headers.from.uri.to_string(),
            to: req.headers.to.uri.to_string(),
            content_type: req.headers.content_type.clone().unwrap_or_else(|| "text/plain".to_owned()),
            body: body_text(&req.body).unwrap_or_default(),
            raw,
        });
    }

    /// OPTIONS: 200 with what we take.
    pub(super) fn on_options(&mut self, now: Instant, tx: TxId, req: &Request) {
        let mut resp = req.response(200, Some(&random_token(16)));
        resp.headers.record_route.clear();
        resp.headers.push("Allow", ALLOW);
        resp.headers.push("Accept", "application/sdp, text/plain, message/sipfrag, application/dtmf-relay");
        self.layer.send_response(now, tx, resp);
    }
}
