//! A sans-IO SIP user agent: one SIP identity that registers, places and receives
//! calls, and sends and receives MESSAGE (the Web Call Server gateway's per-browser
//! leg toward SIP).
//!
//! A [`UserAgent`] owns its own [`TransactionLayer`] and, on top of it, the UA core of
//! RFC 3261: a registration (§10), calls as dialogs (§12–§15, built with
//! [`crate::dialog`]), digest answers to 401/407 (§22, [`crate::digest`]), REFER
//! (RFC 3515), INFO DTMF and MESSAGE (RFC 3428). Like the rest of the crate it owns no
//! socket, clock or thread. The driver's loop, quinn-proto style:
//!
//! ```text
//! loop {
//!     // a datagram arrived:        ua.handle_datagram(now, &buf[..n], from)
//!     // the wake-up instant came:  ua.handle_timeout(now)
//!     // the application acts:      ua.invite(..) / ua.answer(..) / ua.hangup(..) ...
//!     while let Some((to, bytes)) = ua.poll_transmit() { socket.send_to(&bytes, to) }
//!     while let Some(ev) = ua.poll_event() { app.handle(ev) }
//!     sleep_until(ua.poll_timeout())   // or until the next datagram
//! }
//! ```
//!
//! Layout: this file holds the configuration, the public types, and the dispatch of
//! transaction-layer events to their owners; `registration` (REGISTER and its refresh),
//! `call` (INVITE sessions and everything in their dialogs), `message` (MESSAGE and
//! OPTIONS outside dialogs) and `auth` (answering challenges) each hold one concern.
//!
//! Every client transaction we start is recorded with its [`Purpose`] and the request
//! that started it, so that a response finds its owner, and a 401/407 can be answered
//! by re-sending that request with credentials, a new branch and a new CSeq.
//!
//! Cost: the UA is control-plane only (a handful of calls per identity); lookups by
//! call are linear scans over the calls of one identity, which is small.

mod auth;
mod call;
mod message;
mod registration;
#[cfg(test)]
mod tests;

use crate::dialog::{new_branch, random_token};
use crate::message::{Message, Method, Peer, Request, Response, Transport, Via};
use crate::parse::parse_datagram;
use crate::transaction::{Output, TimerConfig, TransactionLayer, TxEvent, TxId};
use crate::uri::{NameAddr, Param, Uri};
use auth::AuthState;
use call::Call;
use registration::Registration;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Who this user agent is and where it sends.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Our UDP socket's address (Via, Contact).
    pub local: SocketAddr,
    /// sipLogin: the user part of From, To (REGISTER) and Contact.
    pub user: String,
    /// sipAuthenticationName; `user` when None.
    pub auth_user: Option<String>,
    pub password: Option<String>,
    /// sipDomain: host of From/To and of REGISTER's Request-URI.
    pub domain: String,
    /// Where every request goes first. None: REGISTER goes to `registrar`, calls and
    /// MESSAGEs to the destination the caller gives, in-dialog requests to the route.
    pub outbound_proxy: Option<SocketAddr>,
    /// Where REGISTER goes when there is no outbound proxy.
    pub registrar: SocketAddr,
    pub display_name: Option<String>,
    pub user_agent: String,
    /// Requested registration lifetime (seconds); refreshed at about half of what the
    /// registrar grants.
    pub register_expires: u32,
    pub timers: TimerConfig,
}

impl UaConfig {
    /// A configuration with the defaults: no credentials, no outbound proxy, 3600 s
    /// registrations, RFC 3261 timers.
    pub fn new(local: SocketAddr, user: &str, domain: &str, registrar: SocketAddr) -> UaConfig {
        UaConfig {
            local,
            user: user.to_owned(),
            auth_user: None,
            password: None,
            domain: domain.to_owned(),
            outbound_proxy: None,
            registrar,
            display_name: None,
            user_agent: "Switchboard UA".to_owned(),
            register_expires: 3600,
            timers: TimerConfig::default(),
        }
    }
}

/// One call (an INVITE session, incoming or outgoing) of a [`UserAgent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

/// One outgoing MESSAGE of a [`UserAgent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageRef(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    Registered,
    Unregistered,
    Failed,
}

/// What the application hears. `raw` is the full text of the SIP message behind the
/// event (None when the event has no message, e.g. a timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaEvent {
    Registration { status: RegistrationStatus, code: u16, reason: String, raw: Option<String> },
    /// A new INVITE for us. Answer with `ringing`, `answer` or `reject`.
    Incoming { call: CallRef, from: String, from_display: Option<String>, to: String, sdp: Option<String>, raw: String },
    /// A 1xx (not 100) to our INVITE.
    Progress { call: CallRef, status: u16, reason: String, sdp: Option<String>, raw: String },
    /// A 2xx to our INVITE (the ACK is already queued), or the ACK for our 200.
    Answered { call: CallRef, sdp: Option<String>, raw: String },
    /// The call is over: their BYE or CANCEL (200/487, `by_remote`), a failure response
    /// (their status), our hangup completed, or a timeout (408).
    Ended { call: CallRef, status: u16, reason: String, by_remote: bool, raw: Option<String> },
    /// The peer re-INVITEd or UPDATEd; the UA has answered with our last SDP, version
    /// bumped and direction mirrored.
    Reinvited { call: CallRef, sdp: Option<String> },
    /// The final status of our `reinvite` (408 on timeout).
    ReinviteResult { call: CallRef, status: u16 },
    /// Our REFER's response, then each NOTIFY sipfrag; `done` on the last.
    TransferStatus { call: CallRef, status: u16, reason: String, done: bool },
    /// The peer REFERred us to `target`; 202 and NOTIFY 100 are sent. Report the outcome
    /// with [`UserAgent::notify_refer`].
    Referred { call: CallRef, target: String },
    Dtmf { call: CallRef, digit: char, duration_ms: u32 },
    /// A MESSAGE (in or out of a dialog), answered 200.
    Message { from: String, to: String, content_type: String, body: String, raw: String },
    /// The final response to our MESSAGE (408 on timeout).
    MessageStatus { msg: MessageRef, status: u16, reason: String, raw: Option<String> },
}

/// Why we started a client transaction: who gets its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    /// The initial INVITE of an outgoing call.
    Invite(u64),
    Reinvite(u64),
    Bye(u64),
    Refer(u64),
    Notify(u64),
    Info(u64),
    /// An in-dialog request whose answer nobody waits for (BYE to a stray fork...).
    Fire,
    Message(u64),
}

impl Purpose {
    fn call(self) -> Option<u64> {
        match self {
            Purpose::Invite(c) | Purpose::Reinvite(c) | Purpose::Bye(c) | Purpose::Refer(c) | Purpose::Notify(c) | Purpose::Info(c) => Some(c),
            _ => None,
        }
    }
}

/// A client transaction of ours: what it is for and what it sent (for a retry with
/// credentials, and for building a dialog from its 2xx).
#[derive(Debug, Clone)]
struct ClientTx {
    purpose: Purpose,
    req: Request,
    dest: SocketAddr,
    auth: AuthState,
}

/// The methods we take (Allow header).
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY, MESSAGE";

/// One SIP identity's user agent. See the module docs for the run loop.
pub struct UserAgent {
    cfg: UaConfig,
    layer: TransactionLayer,
    transmits: VecDeque<(SocketAddr, Arc<[u8]>)>,
    events: VecDeque<UaEvent>,
    next_ref: u64,
    reg: Registration,
    calls: HashMap<u64, Call>,
    client_txs: HashMap<TxId, ClientTx>,
    /// Server INVITE transactions (initial and re-INVITE) by call, for their ACKs.
    server_invites: HashMap<TxId, u64>,
    /// Text of the datagram being handled, for the events' `raw`.
    raw: Option<String>,
}

impl UserAgent {
    pub fn new(cfg: UaConfig) -> Self {
        let layer = TransactionLayer::new(cfg.timers);
        UserAgent {
            cfg,
            layer,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_ref: 0,
            reg: Registration::new(),
            calls: HashMap::new(),
            client_txs: HashMap::new(),
            server_invites: HashMap::new(),
            raw: None,
        }
    }

    pub fn config(&self) -> &UaConfig {
        &self.cfg
    }

    /// A datagram from the network. Unparseable input is dropped, except a request
    /// whose Via/From/To/Call-ID/CSeq could be salvaged: that gets 400. Never panics.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8], from: SocketAddr) {
        match parse_datagram(bytes) {
            Ok(msg) => {
                self.raw = Some(String::from_utf8_lossy(bytes).into_owned());
                self.layer.handle_message(now, msg, udp(from));
                self.pump(now);
                self.raw = None;
            }
            Err(e) => {
                if let Some(salvage) = e.salvage {
                    let bytes = salvage.bad_request(&e.reason, &random_token(16));
                    self.transmits.push_back((from, bytes.into()));
                }
            }
        }
    }

    /// Fires what is due at `now`: transaction timers and the registration refresh.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.pump(now);
        self.registration_timeout(now);
        self.pump(now);
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Arc<[u8]>)> {
        self.transmits.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.layer.poll_timeout(), self.reg.refresh_at].into_iter().flatten().min()
    }

    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    // --- the shell around the transaction layer ---

    /// Drains the layer: bytes to the transmit queue, events to their owners (which
    /// may start more transactions, so this loops until the layer is quiet).
    fn pump(&mut self, now: Instant) {
        while let Some(out) = self.layer.poll_output() {
            match out {
                Output::Transmit { to, data } => self.transmits.push_back((to.addr, data)),
                Output::Event(ev) => self.on_tx_event(now, ev),
            }
        }
    }

    fn on_tx_event(&mut self, now: Instant, ev: TxEvent) {
        match ev {
            TxEvent::Request { tx, req, from } => self.on_request(now, tx, req, from),
            TxEvent::Ack { tx, req, .. } => self.on_ack(now, tx, &req),
            TxEvent::Cancelled { invite_tx, cancel } => self.on_cancelled(now, invite_tx, &cancel),
            TxEvent::Response { tx, resp } => self.on_response(now, tx, resp, false),
            TxEvent::Timeout { tx } => {
                if let Some(ctx) = self.client_txs.get(&tx) {
                    let mut resp = ctx.req.response(408, None);
                    resp.reason = "Request Timeout".to_owned();
                    self.on_response(now, tx, resp, true);
                }
            }
            TxEvent::AckTimeout { tx, .. } => self.on_ack_timeout(now, tx),
            TxEvent::Terminated { tx } => {
                let call = self.client_txs.remove(&tx).and_then(|c| c.purpose.call()).or_else(|| self.server_invites.remove(&tx));
                if let Some(call) = call {
                    self.forget_call_if_done(call);
                }
            }
        }
    }

    /// A response for one of our client transactions (or a synthesized 408).
    fn on_response(&mut self, now: Instant, tx: TxId, resp: Response, timeout: bool) {
        let Some(ctx) = self.client_txs.get(&tx).cloned() else { return };
        if !timeout && matches!(resp.status, 401 | 407) {
            if let Some(new_tx) = self.retry_with_credentials(now, &ctx, &resp) {
                match ctx.purpose {
                    Purpose::Register => self.reg.tx = Some(new_tx),
                    Purpose::Invite(c) => {
                        if let Some(call) = self.calls.get_mut(&c) {
                            call.invite_tx = Some(new_tx);
                        }
                    }
                    Purpose::Reinvite(c) => {
                        if let Some(call) = self.calls.get_mut(&c) {
                            call.reinvite_tx = Some(new_tx);
                        }
                    }
                    _ => {}
                }
                return;
            }
        }
        let raw = (!timeout).then(|| self.raw_of(&Message::Response(resp.clone())));
        match ctx.purpose {
            Purpose::Register => self.on_register_response(now, tx, &ctx, &resp, raw),
            Purpose::Invite(c) => self.on_invite_response(now, tx, c, &ctx, &resp, raw),
            Purpose::Reinvite(c) => self.on_reinvite_response(now, c, &ctx, &resp),
            Purpose::Bye(c) => self.on_bye_response(c, &resp, raw),
            Purpose::Refer(c) => self.on_refer_response(c, &resp),
            Purpose::Notify(_) | Purpose::Info(_) | Purpose::Fire => {}
            Purpose::Message(m) => {
                if resp.status >= 200 {
                    self.events.push_back(UaEvent::MessageStatus { msg: MessageRef(m), status: resp.status, reason: resp.reason.clone(), raw });
                }
            }
        }
    }

    /// A new server transaction: route it to its dialog, or handle it out of dialog.
    fn on_request(&mut self, now: Instant, tx: TxId, req: Request, from: Peer) {
        if req.headers.to.tag().is_some() {
            match self.call_for_request(&req) {
                Some(call) => self.on_in_dialog_request(now, tx, call, req),
                None => self.respond(now, tx, &req, 481, None),
            }
            return;
        }
        match req.method {
            Method::Invite => self.on_incoming_invite(now, tx, req, from),
            Method::Message => self.on_incoming_message(now, tx, &req),
            Method::Options => self.on_options(now, tx, &req),
            Method::Register | Method::Subscribe | Method::Publish => {
                let mut resp = req.response(405, Some(&random_token(16)));
                resp.headers.record_route.clear();
                resp.headers.push("Allow", ALLOW);
                self.layer.send_response(now, tx, resp);
            }
            Method::Other(_) => self.respond(now, tx, &req, 501, None),
            _ => self.respond(now, tx, &req, 481, None),
        }
    }

    // --- building blocks shared by the submodules ---

    fn next_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    /// Our Via with a fresh branch and `rport` (RFC 3581).
    fn via(&self) -> Via {
        Via {
            transport: Transport::Udp,
            host: host_of(self.cfg.local.ip()),
            port: Some(self.cfg.local.port()),
            params: vec![Param::new("branch", Some(new_branch())), Param::new("rport", None::<String>)],
        }
    }

    /// `<sip:user@local-ip:port>`.
    fn contact(&self) -> NameAddr {
        NameAddr::new(Uri::sip(Some(&self.cfg.user), &host_of(self.cfg.local.ip()), Some(self.cfg.local.port())))
    }

    /// Our address of record, as From: `"Display" <sip:user@domain>` (no tag).
    fn aor(&self) -> NameAddr {
        let mut na = NameAddr::new(Uri::sip(Some(&self.cfg.user), &self.cfg.domain, None));
        na.display = self.cfg.display_name.clone();
        na
    }

    /// Where an initial request for `dest` really goes: the outbound proxy if any.
    fn first_hop(&self, dest: SocketAddr) -> SocketAddr {
        self.cfg.outbound_proxy.unwrap_or(dest)
    }

    /// Starts a client transaction and remembers what it is for.
    fn send_request(&mut self, now: Instant, req: Request, dest: SocketAddr, purpose: Purpose, auth: AuthState) -> TxId {
        let tx = self.layer.send_request(now, req.clone(), udp(dest));
        self.client_txs.insert(tx, ClientTx { purpose, req, dest, auth });
        tx
    }

    /// Answers a server transaction with `status` (default reason), adding a To tag
    /// when the request had none, with no body.
    fn respond(&mut self, now: Instant, tx: TxId, req: &Request, status: u16, tag: Option<&str>) {
        let tag = tag.map(str::to_owned).unwrap_or_else(|| random_token(16));
        let mut resp = req.response(status, Some(&tag));
        resp.headers.record_route.clear();
        self.layer.send_response(now, tx, resp);
    }

    /// The raw text of the message being handled, or its printed form.
    fn raw_of(&self, msg: &Message) -> String {
        self.raw.clone().unwrap_or_else(|| msg.to_string())
    }

    /// Common request headers every request we originate carries.
    fn decorate(&self, req: &mut Request) {
        if !self.cfg.user_agent.is_empty() {
            req.headers.push("User-Agent", self.cfg.user_agent.clone());
        }
    }
}

fn udp(addr: SocketAddr) -> Peer {
    Peer { addr, transport: Transport::Udp }
}

/// An IP as a SIP host: IPv6 in brackets.
fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The socket address of a URI with an IP literal host (port 5060 by default); None
/// for a host name, which the sans-IO core cannot resolve.
fn resolve(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&uri.host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, uri.port.unwrap_or(5060)))
}

/// The body as text, None when empty.
fn body_text(body: &[u8]) -> Option<String> {
    (!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned())
}
