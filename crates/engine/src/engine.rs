//! The engine: SIP call logic over the transaction layer, dialogs and media.
//!
//! Sans-IO like the cores below it: the shell feeds it SIP messages, media events,
//! API commands and timer ticks, each with `now`, and drains what to transmit
//! ([`Engine::poll_transmit`]), what happened ([`Engine::poll_event`]) and when to
//! wake it next ([`Engine::poll_timeout`]). The only side effects it causes directly
//! are calls on [`media::MediaHandle`], which never block on media work.
//!
//! Run loop (the `switchboard` binary does exactly this):
//! ```text
//! loop {
//!     select { sip message => engine.handle_sip(now, msg, from),
//!              media event => engine.handle_media_event(now, ev),
//!              api command => engine.<command>(now, ..),
//!              sleep_until(engine.poll_timeout()) => engine.handle_timeout(now) }
//!     while let Some((peer, bytes)) = engine.poll_transmit() { send }
//!     while let Some(ev) = engine.poll_event() { record }
//! }
//! ```

use crate::conference::Room;
use crate::leg::*;
use crate::room::RoomInfo;
use media::{LegParams, MediaEvent, MediaHandle};
use sip::dialog::{new_branch, random_token, Dialog, DialogId};
use sip::sdp::{self, Codec, LocalCapabilities, Negotiated, SessionDescription, SessionState};
use sip::transaction::{Output, TimerConfig, TransactionLayer, TxEvent, TxId};
use sip::{CSeq, Headers, Message, Method, NameAddr, Param, Peer, Request, Response, Transport, Uri, Via};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, warn};

/// Methods we answer; sent in Allow.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, REGISTER";

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our SIP domain, used in From of calls we place and in Call-IDs.
    pub domain: String,
    /// The address we advertise in Via and Contact (the SIP listen address).
    pub sip_addr: SocketAddr,
    pub timers: TimerConfig,
    /// An unanswered inbound `ring` leg gives up with 480 after this long.
    pub ring_timeout: Duration,
    /// Ended legs stay visible to the APIs this long...
    pub ended_retention: Duration,
    /// ...but no more than this many of them (the oldest go first): at thousands of
    /// calls per second, five minutes of ended legs would otherwise be gigabytes.
    /// Call records are in the store either way.
    pub ended_retention_max: usize,
    pub user_agent: String,
    /// Feature-code prefix that, followed by a room number, dials into a room.
    pub room_prefix: String,
    /// Node name inside confids (`rCF-<node>-<confnumber>`).
    pub node: String,
    /// Site name shown on rooms.
    pub site: String,
    /// `[registrar]`: expiry bounds, nonce lifetime, digest algorithms.
    pub registrar: crate::registrar::RegistrarConfig,
    /// `[security]`: lock-outs, scanners, trusted networks, what anonymous callers reach.
    pub security: crate::registrar::SecurityConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            domain: "switchboard.local".into(),
            sip_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
            timers: TimerConfig::default(),
            ring_timeout: Duration::from_secs(120),
            ended_retention: Duration::from_secs(300),
            ended_retention_max: 10_000,
            user_agent: concat!("Switchboard/", env!("CARGO_PKG_VERSION")).into(),
            room_prefix: "*9".into(),
            node: "001".into(),
            site: "local".into(),
            registrar: Default::default(),
            security: Default::default(),
        }
    }
}

/// Something the shell may want to record or publish.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    LegStarted(LegInfo),
    LegAnswered(LegInfo),
    LegEnded(LegInfo),
    /// `domain`: the leg's, so event readers of other domains can be kept from it.
    Dtmf { leg_id: LegId, digit: char, duration_ms: u32, domain: String },
    RoomStarted(RoomInfo),
    RoomEnded { info: RoomInfo, ended_ms: u64, max_participants: u32 },
    /// A REGISTER added or refreshed a contact: persist it (bindings survive restarts).
    BindingSaved(crate::users::Binding),
    /// A contact was removed (expired, `Expires: 0`, `*`): forget it.
    BindingRemoved { user_id: crate::users::UserId, contact: String },
    /// A two-party call began (the caller's INVITE was routed, or an API placed it).
    CallStarted(crate::call::CallInfo),
    /// The callee's device(s) ring.
    CallRinging(crate::call::CallInfo),
    CallAnswered(crate::call::CallInfo),
    /// `info.held` says which side.
    CallHeld(crate::call::CallInfo),
    CallRetrieved(crate::call::CallInfo),
    /// One side was transferred (REFER, or a redirect/intercept) to `target`.
    CallTransferred { info: crate::call::CallInfo, target: String },
    /// The call is over: the call record is written from this.
    CallEnded(crate::call::CallInfo),
    /// `file`: relative to the data dir.
    RecordingStarted { info: crate::call::CallInfo, file: String },
    RecordingStopped { info: crate::call::CallInfo, file: String },
}

/// What the engine is holding right now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineStatus {
    pub live_legs: usize,
    /// Including recently ended ones still listed.
    pub legs: usize,
    pub rooms: usize,
    pub transactions: usize,
    pub rtp_ports_in_use: usize,
    pub shutting_down: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// No such leg (or it is already purged).
    LegNotFound,
    /// The leg exists but has already ended (nothing left to hang up).
    LegEnded,
    /// The target URI cannot be called (e.g. not a SIP URI).
    BadTarget(String),
    /// A well-formed target with no route: its host name does not resolve.
    Unroutable(String),
    /// Out of RTP ports or another media failure.
    MediaUnavailable(String),
    /// No room with that confid.
    RoomNotFound,
    /// No participant with that id in the room.
    ParticipantNotFound,
    /// The request makes no sense (unknown participant in a rule, etc.).
    BadRequest(String),
    /// The server is shutting down.
    ShuttingDown,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::LegNotFound => f.write_str("leg not found"),
            EngineError::LegEnded => f.write_str("call has already ended"),
            EngineError::BadTarget(s) => write!(f, "bad target: {s}"),
            EngineError::Unroutable(s) => write!(f, "no route: {s}"),
            EngineError::MediaUnavailable(s) => write!(f, "media unavailable: {s}"),
            EngineError::RoomNotFound => f.write_str("Conference not found"),
            EngineError::ParticipantNotFound => f.write_str("Call/Participant not found"),
            EngineError::BadRequest(m) => f.write_str(m),
            EngineError::ShuttingDown => f.write_str("server is shutting down"),
        }
    }
}

impl std::error::Error for EngineError {}

/// A call the server places.
#[derive(Debug, Clone)]
pub struct DialOut {
    pub to: Uri,
    /// Where to send the INVITE (resolved by the shell, which may use DNS).
    pub peer: Peer,
    /// User part of our From; defaults to `switchboard`.
    pub from_user: Option<String>,
    pub service: Service,
    pub hangup_after: Option<Duration>,
    /// The domain the call belongs to (the API caller's); None = the server's own.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LegTimer {
    /// Dial-out: the requested call duration is over; hang up.
    HangupAfter,
    /// Inbound `ring` leg: nobody will answer; give up with 480.
    RingTimeout,
    /// Ended leg's retention is over; forget it.
    Purge,
}

pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) txl: TransactionLayer,
    pub(crate) media: MediaHandle,
    pub(crate) caps: LocalCapabilities,
    pub(crate) legs: HashMap<LegId, Leg>,
    pub(crate) by_dialog: HashMap<DialogId, LegId>,
    pub(crate) by_tx: HashMap<TxId, LegId>,
    pub(crate) by_media: HashMap<media::LegId, LegId>,
    pub(crate) timers: BinaryHeap<Reverse<(Instant, LegTimer, LegId)>>,
    /// Ended legs, oldest first, for the `ended_retention_max` cap (may hold ids the
    /// Purge timer already forgot).
    pub(crate) ended: VecDeque<LegId>,
    /// Bumped when a room starts or ends (see [`crate::RoomDirectory`]).
    pub(crate) rooms_generation: u64,
    pub(crate) transmits: VecDeque<(Peer, Arc<[u8]>)>,
    pub(crate) events: VecDeque<EngineEvent>,
    /// BYE transactions awaiting their final response (graceful shutdown waits).
    pub(crate) byes: std::collections::HashSet<TxId>,
    pub(crate) shutting_down: bool,
    /// Live rooms by confid, and by room number.
    pub(crate) rooms: HashMap<String, Room>,
    /// (domain, room number) → confid: each domain has its own room numbers.
    pub(crate) room_by_number: HashMap<(String, String), String>,
    pub(crate) next_media_room: u64,
    /// Domains, users and credentials as last loaded by the shell (see [`crate::users`]).
    pub(crate) directory: Arc<crate::users::DirectorySnapshot>,
    /// Bindings, nonces and lock-outs (see [`crate::registrar`]).
    pub(crate) registrar: crate::registrar::Registrar,
    /// Third-party call control records (reference 002).
    pub(crate) controller: crate::apps::controller::Controller,
}

/// The codecs we offer and accept, best first, limited to what the media build has.
pub fn local_capabilities() -> LocalCapabilities {
    use media::codec::CodecKind;
    let mut codecs = Vec::new();
    if CodecKind::Opus.available() {
        codecs.push(Codec { payload_type: 111, name: "opus".into(), clock_rate: 48000, channels: 2, fmtp: Some("useinbandfec=0".into()) });
    }
    codecs.push(Codec { payload_type: 9, name: "G722".into(), clock_rate: 8000, channels: 1, fmtp: None });
    codecs.push(Codec { payload_type: 0, name: "PCMU".into(), clock_rate: 8000, channels: 1, fmtp: None });
    codecs.push(Codec { payload_type: 8, name: "PCMA".into(), clock_rate: 8000, channels: 1, fmtp: None });
    LocalCapabilities { codecs, telephone_event: true }
}

impl Engine {
    pub fn new(cfg: EngineConfig, media: MediaHandle) -> Engine {
        Engine {
            registrar: crate::registrar::Registrar::new(cfg.registrar.clone(), cfg.security.clone(), Instant::now()),
            txl: TransactionLayer::new(cfg.timers.clone()),
            cfg,
            media,
            caps: local_capabilities(),
            legs: HashMap::new(),
            by_dialog: HashMap::new(),
            by_tx: HashMap::new(),
            by_media: HashMap::new(),
            timers: BinaryHeap::new(),
            ended: VecDeque::new(),
            rooms_generation: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            byes: Default::default(),
            shutting_down: false,
            rooms: HashMap::new(),
            room_by_number: HashMap::new(),
            next_media_room: 0,
            directory: Default::default(),
            controller: Default::default(),
        }
    }

    // ---- inputs -------------------------------------------------------------------

    /// Replaces the directory (the shell loads it from the store at start and after
    /// every change). Calls in progress keep what they resolved.
    pub fn set_directory(&mut self, directory: Arc<crate::users::DirectorySnapshot>) {
        self.directory = directory;
    }

    pub fn directory(&self) -> &Arc<crate::users::DirectorySnapshot> {
        &self.directory
    }

    /// Bindings loaded from the store at start-up (lapsed ones are dropped, and
    /// reported removed so the store forgets them).
    pub fn restore_bindings(&mut self, now: Instant, bindings: Vec<crate::users::Binding>) {
        let mut ev = Vec::new();
        self.registrar.restore(now, bindings, &mut ev);
        self.events.extend(ev);
    }

    /// Every registered contact (for `GET /v1/registrations`).
    pub fn bindings(&self) -> Vec<crate::users::Binding> {
        self.registrar.bindings()
    }

    /// The routing lookup: is `target` (an extension, login or number, or a SIP URI
    /// whose host is one of our domains) a user of the directory? `None`: not a user
    /// (the caller routes it elsewhere, e.g. to the gateway). `Some(Ok)`: the URI and
    /// address to send the INVITE to, from the user's best registered contact (the
    /// REGISTER's source address: NAT). `Some(Err)`: a user with no registered device.
    /// `domain` None = the domain named by our configured `domain`, or the only one.
    pub fn route_user(&self, domain: Option<crate::users::DomainId>, target: &str) -> Option<Result<(Uri, Peer), EngineError>> {
        let dir = &self.directory;
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        let (domain, key) = match sip::parse::parse_uri(target) {
            Ok(u) if matches!(u.scheme, sip::Scheme::Sip | sip::Scheme::Sips) && u.user.is_some() => {
                let named = dir.domain_by_name(&u.host)?.id;
                // A caller scoped to one domain never reaches another domain's users.
                if domain.is_some_and(|d| d != named) {
                    return None;
                }
                (named, u.user.clone().unwrap_or_default())
            }
            Ok(u) if u.scheme == sip::Scheme::Tel => (self.default_domain(domain)?, u.user.clone().unwrap_or_default()),
            _ => (self.default_domain(domain)?, target.to_owned()),
        };
        let user = dir.user_by_key(domain, &key).filter(|u| u.enabled)?;
        let Some(b) = self.registrar.contacts_of(user.id).into_iter().next() else {
            return Some(Err(EngineError::Unroutable(format!("user {key} has no registered device"))));
        };
        let uri = match sip::parse::parse_uri(&b.contact) {
            Ok(u) => u,
            Err(_) => return Some(Err(EngineError::Unroutable(format!("user {key}: registered contact is unusable")))),
        };
        let transport = if b.transport == "tcp" { Transport::Tcp } else { Transport::Udp };
        Some(Ok((uri, Peer { addr: b.source, transport })))
    }

    fn default_domain(&self, domain: Option<crate::users::DomainId>) -> Option<crate::users::DomainId> {
        if domain.is_some() {
            return domain;
        }
        let dir = &self.directory;
        dir.domain_by_name(&self.cfg.domain).map(|d| d.id).or_else(|| (dir.domains.len() == 1).then(|| dir.domains[0].id))
    }

    /// The domain a request for `host` (its Request-URI host) belongs to: the domain
    /// answering to that name, else the server's own (unknown names, IP literals).
    /// Lowercase, as rooms and legs carry it.
    pub fn domain_of_host(&self, host: &str) -> String {
        match self.directory.domain_by_name(host.trim_start_matches('[').trim_end_matches(']')) {
            Some(d) => d.name.to_ascii_lowercase(),
            None => self.cfg.domain.to_ascii_lowercase(),
        }
    }

    pub fn handle_sip(&mut self, now: Instant, msg: Message, from: Peer) {
        self.txl.handle_message(now, msg, from);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.txl.handle_timeout(now);
        let mut ev = Vec::new();
        self.registrar.tick(now, &mut ev);
        self.events.extend(ev);
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, timer, leg_id)) = self.timers.pop().expect("peeked");
            self.fire(now, timer, leg_id);
        }
        if self.controller.poll_timeout().is_some_and(|at| at <= now) {
            self.controller_input(|c, cx| c.on_timeout(cx, now));
        }
        self.pump(now);
    }

    pub fn handle_media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::RtpTimeout { leg } => {
                if let Some(id) = self.by_media.get(&leg).cloned() {
                    info!(leg = %id, "no RTP for too long: hanging up");
                    let _ = self.hangup(now, &id);
                }
            }
            MediaEvent::Talking { leg, talking } => {
                if let Some(l) = self.by_media.get(&leg).and_then(|id| self.legs.get_mut(id)) {
                    l.talking = talking;
                }
            }
            MediaEvent::Dtmf { leg, digit, duration_ms } => {
                if let Some(l) = self.by_media.get(&leg).and_then(|id| self.legs.get(id)) {
                    let (leg_id, domain) = (l.id.clone(), l.domain.clone());
                    self.events.push_back(EngineEvent::Dtmf { leg_id, digit, duration_ms, domain });
                }
            }
            _ => {}
        }
        self.pump(now);
    }

    // ---- outputs ------------------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<(Peer, Arc<[u8]>)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let ours = match (ours, self.registrar.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ours = match (ours, self.controller.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (ours, self.txl.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- API commands -------------------------------------------------------------

    pub fn legs(&self) -> Vec<LegInfo> {
        let mut v: Vec<LegInfo> = self.legs.values().map(Leg::info).collect();
        v.sort_by_key(|l| l.started_ms);
        v
    }

    pub fn leg(&self, id: &LegId) -> Option<LegInfo> {
        self.legs.get(id).map(Leg::info)
    }

    /// Legs not yet ended (what shutdown waits for).
    pub fn live_legs(&self) -> usize {
        self.legs.values().filter(|l| !l.is_over()).count()
    }

    /// Transactions still running.
    pub fn pending_transactions(&self) -> usize {
        self.txl.len()
    }

    /// Counts for `/v1/status`.
    pub fn status(&self) -> EngineStatus {
        EngineStatus {
            live_legs: self.live_legs(),
            legs: self.legs.len(),
            rooms: self.rooms.len(),
            transactions: self.txl.len(),
            rtp_ports_in_use: self.media.ports_in_use(),
            shutting_down: self.shutting_down,
        }
    }

    /// BYEs we sent that have no final response yet.
    pub fn byes_in_flight(&self) -> usize {
        self.byes.len()
    }

    /// Places a call: allocates media, sends the INVITE with our offer, returns at once.
    pub fn dial_out(&mut self, now: Instant, d: DialOut) -> Result<LegInfo, EngineError> {
        let id = self.place_call(now, d, None)?;
        Ok(self.legs[&id].info())
    }

    /// Sends an INVITE for a new outbound leg, optionally a participant of `room`.
    pub(crate) fn place_call(&mut self, now: Instant, d: DialOut, room: Option<String>) -> Result<LegId, EngineError> {
        if self.shutting_down {
            return Err(EngineError::ShuttingDown);
        }
        if d.to.scheme == sip::Scheme::Tel {
            return Err(EngineError::BadTarget("tel: URIs need a gateway route".into()));
        }
        if !matches!(d.peer.transport, Transport::Udp | Transport::Tcp) {
            // Nothing could carry the INVITE: the call would only time out.
            return Err(EngineError::BadTarget(format!("{}: only UDP and TCP are supported", d.to)));
        }
        let media = self.media.allocate().map_err(|e| EngineError::MediaUnavailable(e.to_string()))?;
        let mut sdp_session = SessionState { session_id: rand::random::<u32>() as u64, version: 1, username: "switchboard".into() };
        let offer = sdp::offer(&self.caps, media.rtp_addr, sdp::Direction::SendRecv, &mut sdp_session);
        let local_tag = random_token(10);
        let from_user = d.from_user.clone().unwrap_or_else(|| "switchboard".into());
        let mut to_uri = d.to.clone();
        to_uri.headers.clear();
        let mut invite = Request {
            method: Method::Invite,
            uri: to_uri.clone(),
            headers: Headers {
                via: vec![self.via(d.peer.transport)],
                from: NameAddr::new(Uri::sip(Some(&from_user), &self.cfg.domain, None)).with_tag(&local_tag),
                to: NameAddr::new(to_uri),
                call_id: format!("{}@{}", random_token(20), self.cfg.domain),
                cseq: CSeq { seq: 1, method: Method::Invite },
                max_forwards: Some(70),
                contact: vec![self.contact(d.peer.transport)],
                route: Vec::new(),
                record_route: Vec::new(),
                content_type: Some("application/sdp".into()),
                extra: Vec::new(),
            },
            body: offer.to_string().into_bytes(),
        };
        self.common_headers(&mut invite.headers);
        let tx = self.txl.send_request(now, invite.clone(), d.peer);
        let mut leg = Leg::new(Direction::Outbound, d.service, invite, Some(tx), local_tag, d.peer);
        let id = leg.id.clone();
        leg.media = Some(media.id);
        leg.media_addr = Some(media.rtp_addr);
        leg.sdp_session = sdp_session;
        leg.pending_offer = Some(offer);
        leg.hangup_after = d.hangup_after;
        leg.room = room;
        leg.domain = d.domain.map(|n| n.to_ascii_lowercase()).unwrap_or_else(|| self.cfg.domain.to_ascii_lowercase());
        info!(leg = %id, to = %d.to, "dialling out");
        self.by_tx.insert(tx, id.clone());
        self.by_media.insert(media.id, id.clone());
        self.insert_leg(leg);
        self.pump(now);
        Ok(id)
    }

    /// Ends a leg the polite way for its state: CANCEL while our INVITE is unanswered,
    /// 480 while we ring, BYE once answered. An ended leg is [`EngineError::LegEnded`].
    pub fn hangup(&mut self, now: Instant, id: &LegId) -> Result<LegInfo, EngineError> {
        let leg = self.legs.get_mut(id).ok_or(EngineError::LegNotFound)?;
        match (leg.direction, leg.state) {
            (_, LegState::Ended) => return Err(EngineError::LegEnded),
            (Direction::Outbound, LegState::Calling | LegState::Ringing) => {
                // The 487 to our INVITE ends the leg; if a 2xx crosses the CANCEL we
                // ACK and BYE it (see on_invite_response).
                leg.cancel_requested = true;
                if let Some(tx) = leg.invite_tx {
                    self.txl.cancel(now, tx);
                }
            }
            (Direction::Inbound, LegState::Calling | LegState::Ringing) => {
                if let Some(tx) = leg.invite_tx.take() {
                    let mut resp = leg.invite.response(480, Some(&leg.local_tag.clone()));
                    resp.headers.record_route.clear();
                    self.txl.send_response(now, tx, resp);
                }
                self.end_leg(now, id, 480, "Hung up before answer");
            }
            (_, LegState::Active | LegState::Held) => {
                self.send_bye(now, id);
                self.end_leg(now, id, 200, "Hung up by Switchboard");
            }
        }
        self.pump(now);
        self.leg(id).ok_or(EngineError::LegNotFound)
    }

    /// Starts a graceful shutdown: every live leg is hung up; new calls are refused.
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        let ids: Vec<LegId> = self.legs.values().filter(|l| !l.is_over()).map(|l| l.id.clone()).collect();
        for id in ids {
            let _ = self.hangup(now, &id);
        }
        self.controller_input(|c, cx| c.shutdown(cx, now));
        self.pump(now);
    }

    // ---- transaction-layer events -------------------------------------------------

    /// Moves everything the transaction layer produced into our queues, handling its
    /// events (which may make it produce more).
    pub(crate) fn pump(&mut self, now: Instant) {
        while let Some(out) = self.txl.poll_output() {
            match out {
                Output::Transmit { to, data } => self.transmits.push_back((to, data)),
                Output::Event(ev) => self.on_tx_event(now, ev),
            }
        }
    }

    fn on_tx_event(&mut self, now: Instant, ev: TxEvent) {
        match ev {
            TxEvent::Request { tx, req, from } => self.on_request(now, tx, req, from),
            TxEvent::Ack { req, .. } => self.on_ack(now, req),
            TxEvent::Cancelled { invite_tx, .. } => {
                if let Some(id) = self.by_tx.remove(&invite_tx) {
                    if let Some(leg) = self.legs.get_mut(&id) {
                        leg.invite_tx = None;
                    }
                    self.end_leg(now, &id, 487, "Cancelled by caller");
                }
            }
            TxEvent::Response { tx, resp } if self.controller.owns_tx(tx) => {
                self.controller_input(|c, cx| c.on_response(cx, now, tx, resp));
            }
            TxEvent::Timeout { tx } if self.controller.owns_tx(tx) => {
                self.controller_input(|c, cx| c.on_tx_timeout(cx, now, tx));
            }
            TxEvent::Response { tx, resp } => {
                if resp.headers.cseq.method == Method::Bye && resp.status >= 200 {
                    self.byes.remove(&tx);
                }
                if resp.headers.cseq.method == Method::Invite {
                    if let Some(id) = self.by_tx.get(&tx).cloned() {
                        self.on_invite_response(now, tx, &id, resp);
                    }
                }
            }
            TxEvent::Timeout { tx } => {
                self.byes.remove(&tx);
                if let Some(id) = self.by_tx.remove(&tx) {
                    let is_invite = self.legs.get(&id).is_some_and(|l| l.invite_tx == Some(tx));
                    if is_invite {
                        self.end_leg(now, &id, 408, "No answer from the remote party");
                    }
                }
            }
            TxEvent::AckTimeout { tx, .. } => {
                // The INVITE carries no To tag, so the leg is found by its transaction.
                if let Some(id) = self.by_tx.remove(&tx) {
                    if self.legs.get(&id).is_some_and(|l| !l.is_over()) {
                        warn!(leg = %id, "no ACK for our 2xx: sending BYE");
                        self.send_bye(now, &id);
                        self.end_leg(now, &id, 408, "ACK never arrived");
                    }
                }
            }
            TxEvent::Terminated { tx } => {
                self.controller.on_tx_terminated(tx);
                self.by_tx.remove(&tx);
            }
        }
    }

    fn on_request(&mut self, now: Instant, tx: TxId, req: Request, from: Peer) {
        if req.headers.max_forwards == Some(0) && req.method != Method::Options {
            return self.reply(now, tx, &req, 483, None);
        }
        if req.uri.scheme == sip::Scheme::Tel {
            return self.reply(now, tx, &req, 416, None);
        }
        let in_dialog = req.headers.to.tag().is_some();
        if in_dialog && self.controller.owns_dialog(&req) {
            return self.controller_input(|c, cx| c.on_request(cx, now, tx, req));
        }
        match (&req.method, in_dialog) {
            (Method::Register, _) => self.on_register(now, tx, req, from),
            (Method::Invite, false) => self.on_new_invite(now, tx, req, from),
            (Method::Options, false) => self.reply(now, tx, &req, 200, None),
            (Method::Invite | Method::Bye | Method::Update | Method::Info | Method::Options, true) => {
                self.on_in_dialog(now, tx, req)
            }
            (Method::Bye | Method::Update | Method::Info | Method::Prack, false) => self.reply(now, tx, &req, 481, None),
            (Method::Other(_), _) => self.reply(now, tx, &req, 501, None),
            _ => self.reply(now, tx, &req, 405, None),
        }
    }

    fn on_register(&mut self, now: Instant, tx: TxId, req: Request, from: Peer) {
        let mut ev = Vec::new();
        let dir = self.directory.clone();
        let tag = random_token(10);
        if let Some(mut resp) = self.registrar.register(now, &req, from, &dir, &tag, &mut ev) {
            resp.headers.push("Server", self.cfg.user_agent.clone());
            if resp.status == 200 {
                resp.headers.push("Allow", ALLOW);
            }
            self.txl.send_response(now, tx, resp);
        }
        self.events.extend(ev);
    }

    /// Who is calling: an INVITE whose From names one of our domains must prove it
    /// (407, digest) unless it comes from a trusted network. `Err(())` = answered or
    /// dropped already. `Ok(true)` = authenticated or trusted; `Ok(false)` = anonymous.
    fn authenticate_caller(&mut self, now: Instant, tx: TxId, req: &Request, from: Peer, local_tag: &str) -> Result<bool, ()> {
        // Our own calls looping back to us (we dialled one of our own URIs) are trusted
        // like a gateway: we cannot answer our own challenge. Only the Call-ID of a call
        // we placed counts, so a forged source address alone earns nothing.
        let own_loop = from.addr == self.cfg.sip_addr
            && self.legs.values().any(|l| l.direction == Direction::Outbound && l.call_id == req.headers.call_id);
        if own_loop || self.registrar.guard.is_trusted(from.addr.ip()) {
            return Ok(true);
        }
        let claims_ours = self.directory.domain_by_name(&req.headers.from.uri.host).is_some();
        if !claims_ours && !self.registrar.guard.is_scanner(req.headers.get("User-Agent")) {
            return Ok(false);
        }
        let dir = self.directory.clone();
        let host = req.headers.from.uri.host.clone();
        match self.registrar.authenticate(now, req, from, &dir, &host, true) {
            crate::registrar::AuthOutcome::Authenticated { user_id, .. } => {
                debug!(user = user_id, "caller authenticated");
                Ok(true)
            }
            crate::registrar::AuthOutcome::Drop => Err(()),
            crate::registrar::AuthOutcome::Refuse { status, reason, challenges } => {
                let mut resp = self.response(req, status, Some(local_tag));
                if let Some(reason) = reason {
                    resp.reason = reason;
                }
                for c in challenges {
                    resp.headers.push("Proxy-Authenticate", c.to_string());
                }
                self.txl.send_response(now, tx, resp);
                Err(())
            }
        }
    }

    fn on_new_invite(&mut self, now: Instant, tx: TxId, req: Request, from: Peer) {
        let local_tag = random_token(10);
        if self.shutting_down {
            return self.reply(now, tx, &req, 503, Some(&local_tag));
        }
        let Ok(known_caller) = self.authenticate_caller(now, tx, &req, from, &local_tag) else { return };
        let Some(service) = req.uri.user.as_deref().and_then(|u| Service::from_user(u, &self.cfg.room_prefix)) else {
            // Rooms and services are open to anyone; users' extensions only to
            // authenticated or trusted callers (unless `anonymous_may_call_users`).
            // Anyone else gets the same 404 as for a number nobody has, so extensions
            // cannot be enumerated. Bridging calls to users' contacts is the two-party
            // calls work; until then a reachable user answers 480.
            let is_user = self
                .directory
                .domain_by_name(&req.uri.host)
                .zip(req.uri.user.as_deref())
                .is_some_and(|(d, k)| self.directory.user_by_key(d.id, k).is_some());
            if is_user && (known_caller || self.cfg.security.anonymous_may_call_users) {
                return self.reply_reason(now, tx, &req, 480, Some(&local_tag), "Calls to users are not routed yet");
            }
            return self.reply(now, tx, &req, 404, Some(&local_tag));
        };
        if let Some(required) = req.headers.get("Require") {
            // We support no extensions that a caller may require (e.g. 100rel).
            let mut resp = self.response(&req, 420, Some(&local_tag));
            resp.headers.push("Unsupported", required.to_owned());
            self.txl.send_response(now, tx, resp);
            return;
        }
        if req.headers.contact.is_empty() {
            return self.reply_reason(now, tx, &req, 400, Some(&local_tag), "Missing Contact");
        }
        let offer = match parse_sdp_body(&req.headers, &req.body) {
            Ok(o) => o,
            Err(reason) => return self.reply_reason(now, tx, &req, 400, Some(&local_tag), &reason),
        };
        let mut leg = Leg::new(Direction::Inbound, service.clone(), req.clone(), Some(tx), local_tag.clone(), from);
        let id = leg.id.clone();
        self.by_tx.insert(tx, id.clone());
        match service {
            Service::Ring => {
                let mut resp = self.response(&req, 180, Some(&local_tag));
                resp.headers.contact = vec![self.contact(from.transport)];
                self.txl.send_response(now, tx, resp);
                leg.state = LegState::Ringing;
                self.timers.push(Reverse((now + self.cfg.ring_timeout, LegTimer::RingTimeout, id.clone())));
                self.insert_leg(leg);
            }
            Service::Echo | Service::Room(_) => {
                let alloc = match self.media.allocate() {
                    Ok(m) => m,
                    Err(e) => {
                        warn!(error = %e, "no media for inbound call");
                        self.by_tx.remove(&tx);
                        return self.reply_reason(now, tx, &req, 503, Some(&local_tag), "Out of media ports");
                    }
                };
                leg.media = Some(alloc.id);
                leg.media_addr = Some(alloc.rtp_addr);
                self.by_media.insert(alloc.id, id.clone());
                let answer_sdp = match &offer {
                    Some(offer) => match sdp::answer(offer, &self.caps, alloc.rtp_addr, sdp::Direction::SendRecv, &mut leg.sdp_session) {
                        Ok((answer, neg)) => {
                            apply_negotiation(&self.media, &mut leg, &neg);
                            answer
                        }
                        Err(e) => {
                            debug!(error = %e, "offer not acceptable");
                            self.media.release(alloc.id);
                            self.by_media.remove(&alloc.id);
                            self.by_tx.remove(&tx);
                            return self.reply(now, tx, &req, 488, Some(&local_tag));
                        }
                    },
                    None => {
                        // Delayed offer: we offer in the 2xx, the answer comes in the ACK.
                        let o = sdp::offer(&self.caps, alloc.rtp_addr, sdp::Direction::SendRecv, &mut leg.sdp_session);
                        leg.pending_offer = Some(o.clone());
                        o
                    }
                };
                let contact = self.contact(from.transport);
                let dialog = match Dialog::new_uas(&req, &local_tag, contact.clone()) {
                    Ok(d) => d,
                    Err(r) => {
                        self.release_media(&mut leg);
                        self.by_tx.remove(&tx);
                        return self.reply(now, tx, &req, r.0, Some(&local_tag));
                    }
                };
                let mut ok = self.response(&req, 200, Some(&local_tag));
                ok.headers.contact = vec![contact];
                ok.headers.content_type = Some("application/sdp".into());
                ok.body = answer_sdp.to_string().into_bytes();
                self.txl.send_response(now, tx, ok);
                if let Service::Room(number) = &service {
                    let started_ms = leg.info().started_ms;
                    self.join_room_by_number(started_ms, number, &mut leg);
                }
                self.attach_media(&leg);
                self.by_dialog.insert(dialog.id.clone(), id.clone());
                leg.dialog = Some(dialog);
                leg.answered = Some(SystemTime::now());
                if leg.state == LegState::Calling {
                    leg.state = LegState::Active;
                }
                let info = leg.info();
                self.insert_leg(leg);
                self.events.push_back(EngineEvent::LegAnswered(info));
            }
        }
    }

    fn insert_leg(&mut self, mut leg: Leg) {
        if leg.domain.is_empty() {
            leg.domain = self.domain_of_host(&leg.invite.uri.host);
        }
        let info = leg.info();
        debug!(leg = %leg.id, call_id = %leg.call_id, "leg started");
        self.legs.insert(leg.id.clone(), leg);
        self.events.push_back(EngineEvent::LegStarted(info));
    }

    fn on_in_dialog(&mut self, now: Instant, tx: TxId, req: Request) {
        let Some(id) = DialogId::for_incoming(&req).and_then(|d| self.by_dialog.get(&d).cloned()) else {
            return self.reply(now, tx, &req, 481, None);
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return self.reply(now, tx, &req, 481, None);
        };
        if leg.is_over() {
            return self.reply(now, tx, &req, 481, None);
        }
        let Some(dialog) = leg.dialog.as_mut() else {
            return self.reply(now, tx, &req, 481, None);
        };
        if let Err(r) = dialog.accept_request(&req) {
            return self.reply(now, tx, &req, r.0, None);
        }
        // A request in the dialog proves our 2xx arrived, even if its ACK is lost or late.
        if let (Direction::Inbound, Some(invite_tx)) = (leg.direction, leg.invite_tx) {
            self.txl.stop_2xx_retransmission(now, invite_tx);
        }
        match req.method {
            Method::Bye => {
                self.reply(now, tx, &req, 200, None);
                self.end_leg(now, &id, 200, "Remote party hung up");
            }
            Method::Invite | Method::Update => self.on_session_refresh(now, tx, &id, req),
            _ => self.reply(now, tx, &req, 200, None),
        }
    }

    /// re-INVITE or UPDATE inside a dialog: a new offer (hold, resume, new address or
    /// codec), or none (we offer in the answer, as for delayed-offer INVITEs).
    fn on_session_refresh(&mut self, now: Instant, tx: TxId, id: &LegId, req: Request) {
        let offer = match parse_sdp_body(&req.headers, &req.body) {
            Ok(o) => o,
            Err(reason) => return self.reply_reason(now, tx, &req, 400, None, &reason),
        };
        let contact = self.contact(req.headers.via.first().map(|v| v.transport).unwrap_or(Transport::Udp));
        let leg = self.legs.get_mut(id).expect("caller checked");
        let Some(local_addr) = leg.media_addr else {
            return self.reply(now, tx, &req, 488, None);
        };
        let body = match offer {
            Some(offer) => match sdp::answer(&offer, &self.caps, local_addr, sdp::Direction::SendRecv, &mut leg.sdp_session) {
                Ok((answer, neg)) => {
                    apply_negotiation(&self.media, leg, &neg);
                    answer
                }
                Err(_) => return self.reply(now, tx, &req, 488, None),
            },
            None => {
                let o = sdp::offer(&self.caps, local_addr, sdp::Direction::SendRecv, &mut leg.sdp_session);
                leg.pending_offer = Some(o.clone());
                o
            }
        };
        if req.method == Method::Invite {
            self.by_tx.insert(tx, id.clone());
        }
        let mut ok = self.response(&req, 200, None);
        ok.headers.contact = vec![contact];
        ok.headers.content_type = Some("application/sdp".into());
        ok.body = body.to_string().into_bytes();
        self.txl.send_response(now, tx, ok);
    }

    fn on_ack(&mut self, _now: Instant, req: Request) {
        let Some(id) = DialogId::for_incoming(&req).and_then(|d| self.by_dialog.get(&d).cloned()) else {
            return;
        };
        let Some(mut leg) = self.legs.remove(&id) else { return };
        if let Some(offer) = leg.pending_offer.take() {
            match parse_sdp_body(&req.headers, &req.body) {
                Ok(Some(answer)) => match sdp::accept_answer(&offer, &answer) {
                    Ok(neg) => apply_negotiation(&self.media, &mut leg, &neg),
                    Err(e) => warn!(leg = %id, error = %e, "unusable SDP answer in ACK"),
                },
                _ => {
                    // No answer in the ACK: keep the offer pending (it may still come).
                    leg.pending_offer = Some(offer);
                }
            }
        }
        self.legs.insert(id, leg);
    }

    fn on_invite_response(&mut self, now: Instant, tx: TxId, id: &LegId, resp: Response) {
        let Some(mut leg) = self.legs.remove(id) else { return };
        let status = resp.status;
        if status < 200 {
            if status > 100 && leg.state == LegState::Calling {
                leg.state = LegState::Ringing;
            }
        } else if status < 300 {
            self.on_invite_success(now, &mut leg, resp);
        } else if leg.invite_tx == Some(tx) {
            leg.invite_tx = None;
            self.legs.insert(id.clone(), leg);
            let reason = resp.reason.clone();
            self.end_leg(now, id, status, &reason);
            return;
        }
        self.legs.insert(id.clone(), leg);
    }

    /// A 2xx to our INVITE: build the dialog on the first one, ACK every one (they are
    /// retransmitted until our ACK arrives), and start media.
    fn on_invite_success(&mut self, now: Instant, leg: &mut Leg, resp: Response) {
        if leg.dialog.is_none() {
            match Dialog::new_uac(&leg.invite, &resp) {
                Ok(d) => {
                    self.by_dialog.insert(d.id.clone(), leg.id.clone());
                    leg.dialog = Some(d);
                }
                Err(_) => {
                    warn!(leg = %leg.id, "2xx without To tag: ignored");
                    return;
                }
            }
        }
        let transport = leg.peer.transport;
        let via = self.via(transport);
        let dialog = leg.dialog.as_ref().expect("just set");
        let mut ack = dialog.ack(leg.invite.headers.cseq.seq, via);
        self.common_headers(&mut ack.headers);
        let peer = self.next_hop_peer(dialog, leg.peer);
        self.txl.send_stateless(&Message::Request(ack), peer);
        if leg.answered.is_some() {
            return; // a retransmitted 2xx: re-ACKed above, nothing else changes
        }
        leg.answered = Some(SystemTime::now());
        if leg.cancel_requested || leg.is_over() || self.shutting_down {
            // Our CANCEL crossed the 2xx: the call exists now, so end it with BYE.
            leg.state = LegState::Active;
            self.bye_for(now, leg);
            self.finish(now, leg, 487, "Cancelled (answered as we cancelled)");
            return;
        }
        let answer = match parse_sdp_body(&resp.headers, &resp.body) {
            Ok(Some(a)) => a,
            _ => {
                self.bye_for(now, leg);
                self.finish(now, leg, 488, "Answer carried no usable SDP");
                return;
            }
        };
        let offer = leg.pending_offer.take().expect("dial-out always offers");
        match sdp::accept_answer(&offer, &answer) {
            Ok(neg) => apply_negotiation(&self.media, leg, &neg),
            Err(e) => {
                warn!(leg = %leg.id, error = %e, "SDP answer not acceptable");
                self.bye_for(now, leg);
                self.finish(now, leg, 488, "SDP answer not acceptable");
                return;
            }
        }
        if !self.attach_media(leg) {
            self.bye_for(now, leg);
            self.finish(now, leg, 410, "Room ended before the call was answered");
            return;
        }
        if leg.state != LegState::Held {
            leg.state = LegState::Active;
        }
        // a delay past what an Instant can hold (hangup_after_ms near 2^64) means never
        if let Some(at) = leg.hangup_after.and_then(|after| now.checked_add(after)) {
            self.timers.push(Reverse((at, LegTimer::HangupAfter, leg.id.clone())));
        }
        info!(leg = %leg.id, "dial-out answered");
        self.events.push_back(EngineEvent::LegAnswered(leg.info()));
    }

    fn fire(&mut self, now: Instant, timer: LegTimer, id: LegId) {
        match timer {
            LegTimer::HangupAfter => {
                let _ = self.hangup(now, &id);
            }
            LegTimer::RingTimeout => {
                if self.legs.get(&id).is_some_and(|l| l.state == LegState::Ringing) {
                    let _ = self.hangup(now, &id);
                }
            }
            LegTimer::Purge => self.purge(&id),
        }
    }

    /// Forgets an ended leg.
    fn purge(&mut self, id: &LegId) {
        if !self.legs.get(id).is_some_and(|l| l.is_over()) {
            return;
        }
        if let Some(leg) = self.legs.remove(id) {
            if let Some(d) = &leg.dialog {
                self.by_dialog.remove(&d.id);
            }
            if let Some(room) = leg.room.as_ref().and_then(|c| self.rooms.get_mut(c)) {
                room.participants.retain(|p| p != id);
            }
        }
    }

    // ---- helpers ------------------------------------------------------------------

    fn release_media(&mut self, leg: &mut Leg) {
        if let Some(m) = leg.media.take() {
            self.media.release(m);
            self.by_media.remove(&m);
        }
    }

    fn end_leg(&mut self, now: Instant, id: &LegId, status: u16, reason: &str) {
        if let Some(mut leg) = self.legs.remove(id) {
            self.finish(now, &mut leg, status, reason);
            self.legs.insert(id.clone(), leg);
        }
    }

    /// Marks a leg ended, frees its media, and schedules it to be forgotten.
    fn finish(&mut self, now: Instant, leg: &mut Leg, status: u16, reason: &str) {
        if leg.is_over() {
            return;
        }
        self.release_media(leg);
        leg.state = LegState::Ended;
        leg.ended = Some(SystemTime::now());
        leg.ended_at = Some(now);
        leg.end_status = Some(status);
        leg.end_reason = Some(reason.to_owned());
        info!(leg = %leg.id, status, reason, "leg ended");
        if let Some(confid) = leg.room.clone() {
            self.participant_left(&confid, &leg.participant_id);
        }
        self.timers.push(Reverse((now + self.cfg.ended_retention, LegTimer::Purge, leg.id.clone())));
        self.events.push_back(EngineEvent::LegEnded(leg.info()));
        // What an ended leg still needs: ids, tags, URIs and times for the APIs, and
        // its dialog to answer late requests. Not the SDP.
        leg.invite.body = Vec::new();
        leg.pending_offer = None;
        self.ended.push_back(leg.id.clone());
        while self.ended.len() > self.cfg.ended_retention_max {
            if let Some(old) = self.ended.pop_front() {
                if old != leg.id {
                    self.purge(&old);
                }
            }
        }
    }

    fn send_bye(&mut self, now: Instant, id: &LegId) {
        if let Some(mut leg) = self.legs.remove(id) {
            self.bye_for(now, &mut leg);
            self.legs.insert(id.clone(), leg);
        }
    }

    fn bye_for(&mut self, now: Instant, leg: &mut Leg) {
        let transport = leg.peer.transport;
        let via = self.via(transport);
        let Some(dialog) = leg.dialog.as_mut() else { return };
        let mut bye = dialog.request(Method::Bye, via);
        self.common_headers(&mut bye.headers);
        let peer = self.next_hop_peer(leg.dialog.as_ref().expect("present"), leg.peer);
        let tx = self.txl.send_request(now, bye, peer);
        self.byes.insert(tx);
    }

    /// Where an in-dialog request goes. On reliable transports we reuse the connection
    /// the dialog started on (many UAs, SIPp among them, put no `transport=tcp` in
    /// their Contact); on UDP we follow the route set / remote target (§8.1.2).
    fn next_hop_peer(&self, dialog: &Dialog, fallback: Peer) -> Peer {
        if fallback.transport.is_reliable() {
            return fallback;
        }
        resolve_literal(dialog.next_hop(), fallback.transport).unwrap_or(fallback)
    }

    fn via(&self, transport: Transport) -> Via {
        Via {
            transport,
            host: self.cfg.sip_addr.ip().to_string(),
            port: Some(self.cfg.sip_addr.port()),
            params: vec![Param::new("branch", Some(new_branch())), Param::new("rport", None::<String>)],
        }
    }

    fn contact(&self, transport: Transport) -> NameAddr {
        let ip = match self.cfg.sip_addr.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let mut uri = Uri::sip(Some("switchboard"), &ip, Some(self.cfg.sip_addr.port()));
        if transport == Transport::Tcp {
            uri.params.push(Param::new("transport", Some("tcp")));
        }
        NameAddr::new(uri)
    }

    fn common_headers(&self, h: &mut Headers) {
        h.push("User-Agent", self.cfg.user_agent.clone());
        h.push("Allow", ALLOW);
    }

    fn response(&self, req: &Request, status: u16, to_tag: Option<&str>) -> Response {
        let mut resp = req.response(status, to_tag);
        // Record-Route belongs only in dialog-creating responses (§12.1.1).
        if !(req.method == Method::Invite && (101..300).contains(&status) && req.headers.to.tag().is_none()) {
            resp.headers.record_route.clear();
        }
        resp.headers.push("Server", self.cfg.user_agent.clone());
        if matches!(status, 200 | 405) || req.method == Method::Options {
            resp.headers.push("Allow", ALLOW);
        }
        if req.method == Method::Options && status == 200 {
            resp.headers.push("Accept", "application/sdp");
        }
        resp
    }

    fn reply(&mut self, now: Instant, tx: TxId, req: &Request, status: u16, to_tag: Option<&str>) {
        let tag = to_tag.map(str::to_owned).unwrap_or_else(|| random_token(10));
        let resp = self.response(req, status, Some(&tag));
        self.txl.send_response(now, tx, resp);
    }

    fn reply_reason(&mut self, now: Instant, tx: TxId, req: &Request, status: u16, to_tag: Option<&str>, reason: &str) {
        let tag = to_tag.map(str::to_owned).unwrap_or_else(|| random_token(10));
        let mut resp = self.response(req, status, Some(&tag));
        resp.reason = reason.to_owned();
        self.txl.send_response(now, tx, resp);
    }
}

/// Applies an offer/answer result to the leg's media and state.
fn apply_negotiation(media: &MediaHandle, leg: &mut Leg, neg: &Negotiated) {
    let Some(media_id) = leg.media else { return };
    let Some(codec) = media::codec::CodecKind::from_sdp_name(&neg.codec.name) else {
        warn!(codec = %neg.codec.name, "negotiated a codec the media engine lacks");
        return;
    };
    let (send, recv) = match neg.direction {
        sdp::Direction::SendRecv => (true, true),
        sdp::Direction::SendOnly => (true, false),
        sdp::Direction::RecvOnly => (false, true),
        sdp::Direction::Inactive => (false, false),
    };
    media.configure(
        media_id,
        LegParams { remote: neg.remote, codec, payload_type: neg.codec.payload_type, telephone_event_pt: neg.telephone_event, send, recv },
    );
    leg.codec = Some(neg.codec.name.clone());
    if matches!(leg.state, LegState::Active | LegState::Held | LegState::Calling) || leg.answered.is_some() {
        leg.state = if send && recv { LegState::Active } else { LegState::Held };
    }
}


/// The SDP offer or answer in a message body, if any. Err carries a 400 reason.
fn parse_sdp_body(h: &Headers, body: &[u8]) -> Result<Option<SessionDescription>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let is_sdp = h.content_type.as_deref().is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !is_sdp {
        return Ok(None);
    }
    let text = std::str::from_utf8(body).map_err(|_| "SDP is not UTF-8".to_owned())?;
    SessionDescription::parse(text).map(Some).map_err(|e| format!("Bad SDP: {e}"))
}

/// A peer for a URI whose host is an IP literal (or `localhost`); None for names,
/// which the shell must resolve.
pub fn resolve_literal(uri: &Uri, default_transport: Transport) -> Option<Peer> {
    let host = uri.host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { host.parse().ok()? };
    let transport = match uri.transport().as_deref() {
        Some("tcp") => Transport::Tcp,
        Some("udp") => Transport::Udp,
        Some(_) => default_transport,
        None if uri.scheme == sip::Scheme::Sips => Transport::Tls,
        None => default_transport,
    };
    let port = uri.port.unwrap_or(if transport == Transport::Tls { 5061 } else { 5060 });
    Some(Peer { addr: SocketAddr::new(ip, port), transport })
}
