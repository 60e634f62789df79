//! Dialog state (RFC 3261 §12): the peer-to-peer relationship an INVITE creates.
//!
//! A [`Dialog`] knows the three things that make in-dialog requests route correctly —
//! the tags, the CSeq spaces of both sides, and the route set / remote target — and
//! builds those requests. It does no I/O and keeps no timers; the transaction layer
//! carries the requests it builds.

use crate::message::*;
use crate::uri::{NameAddr, Params, Uri};
use rand::Rng;

/// Identifies a dialog from our side: Call-ID plus our tag and the peer's tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The id a request *received* within a dialog refers to: our tag is in To.
    pub fn for_incoming(req: &Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: req.headers.call_id.clone(),
            local_tag: req.headers.to.tag()?.to_owned(),
            remote_tag: req.headers.from.tag().unwrap_or("").to_owned(),
        })
    }
    /// The id a response to a request *we sent* refers to: our tag is in From.
    pub fn for_response(resp: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.headers.call_id.clone(),
            local_tag: resp.headers.from.tag()?.to_owned(),
            remote_tag: resp.headers.to.tag()?.to_owned(),
        })
    }
}

/// Why an in-dialog request was refused, as the status to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub u16);

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    /// Our URI as it appears in From of our requests (tag kept separately in `id`).
    pub local_uri: NameAddr,
    /// The peer's URI as it appears in To of our requests.
    pub remote_uri: NameAddr,
    /// Last CSeq number we used.
    pub local_seq: u32,
    /// Last CSeq number the peer used; None until it sends a request.
    pub remote_seq: Option<u32>,
    /// Where in-dialog requests go (the peer's Contact), refreshed by re-INVITE/UPDATE.
    pub remote_target: Uri,
    /// Record-Route values, in the order our requests must carry them as Route.
    pub route_set: Vec<NameAddr>,
    /// Our Contact, sent in requests that need one (re-INVITE, UPDATE).
    pub local_contact: NameAddr,
    pub secure: bool,
}

/// A fresh tag, branch or Call-ID fragment: `n` random lowercase hex digits.
pub fn random_token(n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| HEX[rng.gen_range(0..16)] as char).collect()
}

/// A new RFC 3261 branch: the magic cookie plus randomness.
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token(16))
}

impl Dialog {
    /// The UAS side: built from the INVITE we answer with a 2xx (or a 1xx with tag).
    /// Route set = Record-Route as received; remote target = the request's Contact.
    pub fn new_uas(req: &Request, local_tag: &str, local_contact: NameAddr) -> Result<Dialog, Refusal> {
        let remote_target = req.headers.contact.first().map(|c| c.uri.clone()).ok_or(Refusal(400))?;
        let mut local_uri = req.headers.to.clone();
        local_uri.remove_param("tag");
        let mut remote_uri = req.headers.from.clone();
        remote_uri.remove_param("tag");
        Ok(Dialog {
            id: DialogId {
                call_id: req.headers.call_id.clone(),
                local_tag: local_tag.to_owned(),
                remote_tag: req.headers.from.tag().unwrap_or("").to_owned(),
            },
            local_uri,
            remote_uri,
            // Our own CSeq space starts somewhere random but leaves room to grow.
            local_seq: rand::thread_rng().gen_range(1..1_000_000),
            remote_seq: Some(req.headers.cseq.seq),
            secure: req.uri.scheme == crate::uri::Scheme::Sips,
            remote_target,
            route_set: req.headers.record_route.clone(),
            local_contact,
        })
    }

    /// The UAC side: built from the INVITE we sent and a 2xx (or 1xx with tag) to it.
    /// Route set = Record-Route of the response, reversed.
    pub fn new_uac(req: &Request, resp: &Response) -> Result<Dialog, Refusal> {
        let remote_tag = resp.headers.to.tag().ok_or(Refusal(400))?.to_owned();
        let remote_target = resp
            .headers
            .contact
            .first()
            .map(|c| c.uri.clone())
            .unwrap_or_else(|| req.uri.clone());
        let mut local_uri = req.headers.from.clone();
        local_uri.remove_param("tag");
        let mut remote_uri = req.headers.to.clone();
        remote_uri.remove_param("tag");
        let mut route_set = resp.headers.record_route.clone();
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: req.headers.call_id.clone(),
                local_tag: req.headers.from.tag().unwrap_or("").to_owned(),
                remote_tag,
            },
            local_uri,
            remote_uri,
            local_seq: req.headers.cseq.seq,
            remote_seq: None,
            remote_target,
            route_set,
            local_contact: req.headers.contact.first().cloned().unwrap_or_else(|| NameAddr::new(req.uri.clone())),
            secure: req.uri.scheme == crate::uri::Scheme::Sips,
        })
    }

    /// Checks an incoming in-dialog request's CSeq (§12.2.2): lower than the last one
    /// seen means an out-of-order request, refused with 500. Accepting it records the
    /// new CSeq and, for target-refresh requests, the new remote target.
    pub fn accept_request(&mut self, req: &Request) -> Result<(), Refusal> {
        let seq = req.headers.cseq.seq;
        if req.method != Method::Ack && req.method != Method::Cancel {
            if let Some(last) = self.remote_seq {
                if seq < last {
                    return Err(Refusal(500));
                }
            }
            self.remote_seq = Some(seq);
        }
        if matches!(req.method, Method::Invite | Method::Update) {
            if let Some(c) = req.headers.contact.first() {
                self.remote_target = c.uri.clone();
            }
        }
        Ok(())
    }

    /// A 2xx to our re-INVITE/UPDATE refreshes the remote target (§12.2.1.2).
    pub fn accept_refresh_response(&mut self, resp: &Response) {
        if let Some(c) = resp.headers.contact.first() {
            self.remote_target = c.uri.clone();
        }
    }

    /// Builds an in-dialog request (§12.2.1.1) with a fresh CSeq (ACK and CANCEL take
    /// theirs from the INVITE: use [`Dialog::ack`] for ACK). `via` is our Via, built
    /// by the caller who knows the transport.
    pub fn request(&mut self, method: Method, via: Via) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        let seq = self.local_seq;
        self.build(method, seq, via)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4): its own
    /// transaction-less request with the INVITE's CSeq number.
    pub fn ack(&self, invite_seq: u32, via: Via) -> Request {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: Via) -> Request {
        let (uri, route) = self.request_target();
        let with_contact = matches!(method, Method::Invite | Method::Update | Method::Subscribe | Method::Refer | Method::Notify);
        Request {
            uri,
            headers: Headers {
                via: vec![via],
                from: self.local_uri.clone().with_tag(&self.id.local_tag),
                to: if self.id.remote_tag.is_empty() {
                    self.remote_uri.clone()
                } else {
                    self.remote_uri.clone().with_tag(&self.id.remote_tag)
                },
                call_id: self.id.call_id.clone(),
                cseq: CSeq { seq, method: method.clone() },
                max_forwards: Some(70),
                contact: if with_contact { vec![self.local_contact.clone()] } else { Vec::new() },
                route,
                record_route: Vec::new(),
                content_type: None,
                extra: Vec::new(),
            },
            method,
            body: Vec::new(),
        }
    }

    /// Request-URI and Route headers per §12.2.1.1: loose routing keeps the remote
    /// target as Request-URI; a strict router (no `lr`) takes the Request-URI slot and
    /// the remote target goes last in Route.
    fn request_target(&self) -> (Uri, Vec<NameAddr>) {
        match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if first.uri.is_loose_route() => (self.remote_target.clone(), self.route_set.clone()),
            Some(first) => {
                let mut route: Vec<NameAddr> = self.route_set[1..].to_vec();
                route.push(NameAddr::new(self.remote_target.clone()));
                let mut uri = first.uri.clone();
                uri.headers.clear();
                (uri, route)
            }
        }
    }

    /// The URI whose host and port a request of this dialog is sent to: the first
    /// route if there is one, else the remote target (§8.1.2).
    pub fn next_hop(&self) -> &Uri {
        self.route_set.first().map(|r| &r.uri).unwrap_or(&self.remote_target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Param;

    fn invite() -> Request {
        let alice = Uri::sip(Some("alice"), "10.0.0.1", Some(5070));
        let bob = Uri::sip(Some("bob"), "10.0.0.2", None);
        let mut rr1 = Uri::sip(None, "proxy1", None);
        rr1.params.push(Param { name: "lr".into(), value: None });
        let rr2 = Uri::sip(None, "proxy2", None);
        Request {
            method: Method::Invite,
            uri: bob.clone(),
            headers: Headers {
                via: vec![Via { transport: Transport::Udp, host: "10.0.0.1".into(), port: Some(5070), params: vec![] }],
                from: NameAddr::new(alice.clone()).with_tag("a1"),
                to: NameAddr::new(bob),
                call_id: "c1".into(),
                cseq: CSeq { seq: 7, method: Method::Invite },
                max_forwards: Some(70),
                contact: vec![NameAddr::new(alice)],
                route: vec![],
                record_route: vec![NameAddr::new(rr1), NameAddr::new(rr2)],
                content_type: None,
                extra: vec![],
            },
            body: vec![],
        }
    }

    fn via() -> Via {
        Via { transport: Transport::Udp, host: "10.0.0.2".into(), port: None, params: vec![] }
    }

    #[test]
    fn uas_dialog_routes_and_sequences() {
        let req = invite();
        let contact = NameAddr::new(Uri::sip(Some("sb"), "10.0.0.2", None));
        let mut d = Dialog::new_uas(&req, "b1", contact).unwrap();
        assert_eq!(d.id.remote_tag, "a1");
        assert_eq!(d.remote_target.user.as_deref(), Some("alice"));
        // First route is loose: Request-URI stays the remote target, both routes kept.
        let first_seq = d.local_seq;
        let bye = d.request(Method::Bye, via());
        assert_eq!(bye.uri.user.as_deref(), Some("alice"));
        assert_eq!(bye.headers.route.len(), 2);
        assert_eq!(bye.headers.route[0].uri.host, "proxy1");
        assert_eq!(bye.headers.cseq.seq, first_seq + 1);
        assert_eq!(bye.headers.from.tag(), Some("b1"));
        assert_eq!(bye.headers.to.tag(), Some("a1"));
        assert_eq!(d.next_hop().host, "proxy1");
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let req = invite();
        let mut d = Dialog::new_uas(&req, "b1", NameAddr::new(Uri::sip(None, "x", None))).unwrap();
        let mut bye = req.clone();
        bye.method = Method::Bye;
        bye.headers.cseq = CSeq { seq: 6, method: Method::Bye };
        assert_eq!(d.accept_request(&bye), Err(Refusal(500)));
        bye.headers.cseq.seq = 8;
        assert_eq!(d.accept_request(&bye), Ok(()));
    }

    #[test]
    fn reinvite_refreshes_target() {
        let req = invite();
        let mut d = Dialog::new_uas(&req, "b1", NameAddr::new(Uri::sip(None, "x", None))).unwrap();
        let mut re = req.clone();
        re.headers.cseq.seq = 8;
        re.headers.contact = vec![NameAddr::new(Uri::sip(Some("alice"), "10.9.9.9", None))];
        d.accept_request(&re).unwrap();
        assert_eq!(d.remote_target.host, "10.9.9.9");
    }

    #[test]
    fn uac_dialog_reverses_record_route_and_handles_strict_router() {
        let req = invite();
        let mut resp = req.response(200, Some("b2"));
        resp.headers.contact = vec![NameAddr::new(Uri::sip(Some("bob"), "10.0.0.2", Some(5080)))];
        let mut d = Dialog::new_uac(&req, &resp).unwrap();
        assert_eq!(d.route_set[0].uri.host, "proxy2");
        // proxy2 has no `lr`: strict routing puts it in the Request-URI.
        let bye = d.request(Method::Bye, via());
        assert_eq!(bye.uri.host, "proxy2");
        assert_eq!(bye.headers.route.last().unwrap().uri.port, Some(5080));
        let ack = d.ack(7, via());
        assert_eq!(ack.headers.cseq, CSeq { seq: 7, method: Method::Ack });
        assert_eq!(ack.headers.to.tag(), Some("b2"));
    }
}
