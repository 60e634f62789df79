//! REGISTER (RFC 3261 §10): bind our Contact to our address of record, keep the
//! binding fresh, remove it.
//!
//! One Call-ID and From tag for the UA's lifetime, CSeq counting up (§10.2). The
//! lifetime granted is our Contact's `expires` in the 2xx, else its Expires header,
//! else what we asked for; the refresh is due at half of it. A 423 is retried once
//! with the Min-Expires asked for. A failure (or timeout) ends refreshing until the
//! application calls `register` again.

use super::{AuthState, ClientTx, Purpose, RegistrationStatus, UaEvent, UserAgent};
use crate::dialog::random_token;
use crate::message::{CSeq, Headers, Method, Request, Response};
use crate::transaction::TxId;
use crate::uri::{NameAddr, Params, Uri};
use std::time::{Duration, Instant};

pub(super) struct Registration {
    call_id: String,
    from_tag: String,
    pub cseq: u32,
    /// The REGISTER in flight whose answer counts (older ones are ignored).
    pub tx: Option<TxId>,
    /// The expiry we asked for in that REGISTER.
    requested: u32,
    /// When to refresh the binding.
    pub refresh_at: Option<Instant>,
    /// A 423 retry was already made for this attempt.
    interval_retry: bool,
}

impl Registration {
    pub fn new() -> Registration {
        Registration { call_id: random_token(20), from_tag: random_token(16), cseq: 0, tx: None, requested: 0, refresh_at: None, interval_retry: false }
    }
}

impl UserAgent {
    /// REGISTERs (answering 401/407), then keeps the binding refreshed.
    pub fn register(&mut self, now: Instant) {
        self.reg.interval_retry = false;
        self.send_register(now, self.cfg.register_expires);
        self.pump(now);
    }

    /// Removes our binding (Expires: 0) and stops refreshing.
    pub fn unregister(&mut self, now: Instant) {
        self.reg.refresh_at = None;
        self.send_register(now, 0);
        self.pump(now);
    }

    fn send_register(&mut self, now: Instant, expires: u32) {
        self.reg.cseq += 1;
        self.reg.requested = expires;
        let aor = self.aor();
        let mut contact = self.contact();
        contact.set_param("expires", Some(&expires.to_string()));
        let mut req = Request {
            method: Method::Register,
            uri: Uri::sip(None, &self.cfg.domain, None),
            headers: Headers {
                via: vec![self.via()],
                from: aor.clone().with_tag(&self.reg.from_tag),
                to: aor,
                call_id: self.reg.call_id.clone(),
                cseq: CSeq { seq: self.reg.cseq, method: Method::Register },
                max_forwards: Some(70),
                contact: vec![contact],
                route: Vec::new(),
                record_route: Vec::new(),
                content_type: None,
                extra: Vec::new(),
            },
            body: Vec::new(),
        };
        req.headers.push("Expires", expires.to_string());
        req.headers.push("Allow", super::ALLOW);
        self.decorate(&mut req);
        let dest = self.cfg.outbound_proxy.unwrap_or(self.cfg.registrar);
        let tx = self.send_request(now, req, dest, Purpose::Register, AuthState::default());
        self.reg.tx = Some(tx);
    }

    pub(super) fn registration_timeout(&mut self, now: Instant) {
        if self.reg.refresh_at.is_some_and(|at| at <= now) {
            self.reg.refresh_at = None;
            self.reg.interval_retry = false;
            self.send_register(now, self.cfg.register_expires);
        }
    }

    pub(super) fn on_register_response(&mut self, now: Instant, tx: TxId, ctx: &ClientTx, resp: &Response, raw: Option<String>) {
        if self.reg.tx != Some(tx) || resp.status < 200 {
            return;
        }
        let requested = ctx.req.headers.get("Expires").and_then(|v| v.trim().parse().ok()).unwrap_or(self.reg.requested);
        let event = |status, resp: &Response, raw| UaEvent::Registration { status, code: resp.status, reason: resp.reason.clone(), raw };
        if resp.is_success() {
            self.reg.tx = None;
            if requested == 0 {
                self.reg.refresh_at = None;
                self.events.push_back(event(RegistrationStatus::Unregistered, resp, raw));
                return;
            }
            let granted = self.granted_expiry(resp).unwrap_or(requested);
            if granted == 0 {
                // The registrar kept no binding for our Contact.
                self.reg.refresh_at = None;
                self.events.push_back(event(RegistrationStatus::Failed, resp, raw));
                return;
            }
            self.reg.refresh_at = Some(now + refresh_after(granted));
            self.events.push_back(event(RegistrationStatus::Registered, resp, raw));
            return;
        }
        if resp.status == 423 && !self.reg.interval_retry {
            if let Some(min) = resp.headers.get("Min-Expires").and_then(|v| v.trim().parse::<u32>().ok()) {
                self.reg.interval_retry = true;
                self.send_register(now, min);
                return;
            }
        }
        self.reg.tx = None;
        self.reg.refresh_at = None;
        self.events.push_back(event(RegistrationStatus::Failed, resp, raw));
    }

    /// The lifetime the registrar gave our Contact: its `expires` parameter, else the
    /// Expires header.
    fn granted_expiry(&self, resp: &Response) -> Option<u32> {
        let ours = self.contact().uri;
        let mine = |c: &&NameAddr| c.uri.user == ours.user && c.uri.host.eq_ignore_ascii_case(&ours.host) && c.uri.port == ours.port;
        if let Some(c) = resp.headers.contact.iter().find(mine) {
            if let Some(e) = c.param("expires").flatten().and_then(|v| v.parse().ok()) {
                return Some(e);
            }
        }
        resp.headers.get("Expires").and_then(|v| v.trim().parse().ok())
    }
}

/// Refresh at half the lifetime, but not sooner than 1 s for tiny ones.
fn refresh_after(granted: u32) -> Duration {
    Duration::from_millis(u64::from(granted) * 500).max(Duration::from_secs(1))
}

