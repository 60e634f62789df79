//! The engine: routes what arrives to the leg layer and the applications.
//!
//! Shape: [`Legs`](crate::legs::Legs) holds every SIP dialog with its media;
//! applications ([`crate::apps`]: echo and ring, rooms, and more to come) own legs and
//! decide for them. The engine itself only routes: new INVITEs to the application
//! their Request-URI names (after authenticating the caller), REGISTERs to the
//! registrar, leg events to the leg's owner, and API commands to the application
//! they concern.
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

use crate::apps::bridge::{CallerId, Reach, Target};
use crate::apps::{self, room::Rooms, Owner};
use crate::call::{CallId, CallInfo, Party};
use crate::legs::{LegEvent, LegId, LegInfo, Legs, NewRequest, Service};
use crate::room::{ParticipantInfo, ParticipantPatch, RoomInfo, RoomSnapshot, TopologyRule};
use media::{MediaEvent, MediaHandle};
use sip::dialog::random_token;
use sip::sdp::{Codec, LocalCapabilities};
use sip::transaction::{TimerConfig, TxId};
use sip::{Message, Peer, Request, Transport, Uri};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::debug;

pub use crate::legs::resolve_literal;

/// What to do with a room's recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOp {
    Start { tracks: bool },
    Pause(bool),
    Stop,
}

/// Methods we answer; sent in Allow.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, REGISTER, REFER, NOTIFY, MESSAGE";

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
    /// The data dir: call recordings go under `recordings/` in it.
    pub data_dir: std::path::PathBuf,
    /// Two-party calls: how long the callee's devices ring before the caller gets 480.
    pub ring_time: Duration,
    /// `[routing] gateway`: where calls to numbers outside the directory go.
    pub gateway: Option<Uri>,
    /// `[push] wake_wait_ms`: how long a call for a user with push tokens waits for
    /// the woken app to register (its devices already registered ring meanwhile).
    pub wake_wait: Duration,
    /// `[ivr]`: the conference access number and direct room entry.
    pub ivr: IvrConfig,
    /// Where the prompts are (`prompts_dir`).
    pub prompts: PromptSet,
    /// `[rooms] join_leave_sounds`: rooms dialled directly (`conf-<n>`, the feature
    /// code) play the first-participant prompt and join/leave sounds too. Rooms entered
    /// through the access number (or `direct_room_re`) always do, as in SEMS.
    pub join_leave_sounds: bool,
    /// `[voicemail]`: mailboxes and the voicemail number.
    pub voicemail: crate::apps::voicemail::VoicemailConfig,
    /// `[live_audio] allowed_urls`: the URL prefixes live audio streams may go to
    /// (none: no stream may start).
    pub live_audio_urls: Vec<String>,
}

/// `[ivr]`: how callers reach a room through the conference access number.
#[derive(Debug, Clone)]
pub struct IvrConfig {
    /// The Request-URI user of the access number (`sip:conference@our-domain`).
    pub conference_number: String,
    /// Callers whose Request-URI user matches (unanchored, as SEMS's POSIX regex) go
    /// straight into the room named by that user part minus its first
    /// `direct_room_strip` characters (the whole of it if not longer than that).
    pub direct_room_re: Option<regex::Regex>,
    pub direct_room_strip: usize,
    /// Only rooms that exist (someone is in them, or they were created over an API)
    /// can be entered; other numbers are refused with the wrong-PIN prompt.
    pub private_rooms: bool,
    /// PINs that rooms ask callers for before they may enter, by room number.
    pub room_pins: HashMap<String, String>,
    /// An entry is taken after this pause following a digit.
    pub inter_digit_timeout: Duration,
    /// The prompt is repeated after this long without a digit.
    pub no_input_timeout: Duration,
    /// An entry longer than this is taken as it is.
    pub max_digits: usize,
    /// Wrong entries and silent rounds before the goodbye prompt and BYE.
    pub max_attempts: u32,
    /// A scheduled conference may be entered this many seconds before it starts.
    pub early_join_s: i64,
    /// SEMS's `lonely_user_timer`: a participant left alone in a room this long is hung up.
    pub lonely_user_timer: Option<Duration>,
    /// SEMS's `loop_first_participant_prompt`: the first participant hears that prompt
    /// again and again until someone joins (rooms that announce joins).
    pub loop_first_participant_prompt: bool,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            conference_number: "conference".into(),
            direct_room_re: None,
            direct_room_strip: 0,
            private_rooms: false,
            room_pins: HashMap::new(),
            inter_digit_timeout: Duration::from_secs(5),
            no_input_timeout: Duration::from_secs(10),
            max_digits: 32,
            max_attempts: 5,
            early_join_s: 300,
            lonely_user_timer: None,
            loop_first_participant_prompt: false,
        }
    }
}

impl IvrConfig {
    /// The room a caller dialling `user` goes straight into (`direct_room_re`).
    pub fn direct_room(&self, user: &str) -> Option<String> {
        let re = self.direct_room_re.as_ref()?;
        if !re.is_match(user) {
            return None;
        }
        let room = if user.chars().count() > self.direct_room_strip { user.chars().skip(self.direct_room_strip).collect() } else { user.to_owned() };
        Some(room)
    }
}

/// The prompt files: `<dir>/<name>.wav` (names as in SEMS's webconference, so a SEMS
/// audio directory serves; see `prompts/README.md`).
#[derive(Debug, Clone)]
pub struct PromptSet {
    pub dir: std::path::PathBuf,
}

impl PromptSet {
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(format!("{name}.wav"))
    }

    pub fn part(&self, name: &str) -> media::PromptPart {
        media::PromptPart::File(self.path(name))
    }
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
            data_dir: std::path::PathBuf::from("."),
            ring_time: Duration::from_secs(60),
            gateway: None,
            wake_wait: Duration::from_secs(5),
            ivr: IvrConfig::default(),
            prompts: PromptSet { dir: std::path::PathBuf::from("prompts/en") },
            join_leave_sounds: false,
            voicemail: Default::default(),
            live_audio_urls: Vec::new(),
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
    /// A prompt started over an API ended (`end`: finished, interrupted by <digit>,
    /// stopped, failed). `participantid` None: it played to the whole room.
    PromptEnded { confid: String, participantid: Option<String>, prompt_id: u64, end: String, domain: String },
    RoomRecordingStarted(crate::room::RoomRecordingInfo),
    RoomRecordingStopped(crate::room::RoomRecordingInfo),
    /// A file of a room recording is complete (`file` relative to the data dir).
    RecordingCompleted { confid: String, participantid: Option<String>, file: String, duration_ms: u64, dropped_frames: u64, failed: bool, domain: String },
    /// A call is for `user_id`, who has push tokens (`User::has_push_tokens`): the shell
    /// sends the push (reference 001 §8); the engine waits for the app to register.
    WakeUser { user_id: crate::users::UserId, call: crate::call::CallInfo },
    /// A voicemail message for `user_id` was recorded into `file` (relative to the data
    /// dir; complete once the media engine's writer has closed it): the shell trims and
    /// measures it, stores it and sends MWI. `to`: the owner's extension or login.
    VoicemailRecorded { user_id: crate::users::UserId, to: String, caller: crate::call::Party, call_id: Option<CallId>, file: String, started_ms: u64 },
    /// A caller at the voicemail number keyed `pin` for a mailbox: `user_id` (the
    /// authenticated caller's own), or 0 and the extension `ext` keyed in `domain`. The
    /// shell checks it (argon2: slow, so not here) and answers with
    /// [`Engine::voicemail_login`]. The PIN is never serialised or shown.
    VoicemailLogin {
        leg_id: LegId,
        user_id: crate::users::UserId,
        ext: Option<String>,
        domain: String,
        #[serde(skip)]
        pin: crate::apps::voicemail::Pin,
    },
    /// Message `id` of `user_id` was played at the voicemail number: the shell marks it
    /// read (and sends MWI).
    VoicemailPlayed { user_id: crate::users::UserId, id: i64 },
    /// A new instant message for a user, from a phone or the API: the shell stores it
    /// (see [`crate::apps::messages`]).
    MessageAccepted(crate::apps::messages::MessageInfo),
    /// A device of the recipient took the message (`status`: its 2xx).
    MessageDelivered { message_id: String, user_id: crate::users::UserId, domain: String, status: u16 },
    /// Nobody could take it now (no device, or none answered): kept for the user's
    /// next registration.
    MessageDeferred { message_id: String, user_id: crate::users::UserId, domain: String, reason: String },
    /// Every device refused it: not tried again.
    MessageFailed { message_id: String, user_id: crate::users::UserId, domain: String, status: u16, reason: String },
    /// A live audio stream started (see [`crate::apps::live_audio`]); the shell is
    /// connecting its WebSocket.
    StreamStarted(crate::apps::live_audio::StreamInfo),
    /// A live audio stream ended: `reason` is `stopped`, `room_ended`, `leg_ended`,
    /// `shutdown`, `connect_failed` or `receiver_closed`.
    StreamStopped { info: crate::apps::live_audio::StreamInfo, reason: String },
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
    /// The request is fine but the call's state does not allow it now (not answered
    /// yet, not on hold, already recording, a transfer under way).
    Conflict(String),
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
            EngineError::Conflict(s) => f.write_str(s),
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
    /// Display name in our From (caller ID from the directory).
    pub from_display: Option<String>,
    /// Extra headers on the INVITE (e.g. P-Asserted-Identity toward trusted peers).
    pub extra_headers: Vec<(String, String)>,
    /// Host part of our From; defaults to our domain.
    pub from_host: Option<String>,
    /// Answer a 401/407 to the INVITE with these (see [`crate::legs::DigestCredentials`]).
    pub credentials: Option<crate::legs::DigestCredentials>,
}

pub struct Engine {
    pub(crate) cfg: Arc<EngineConfig>,
    pub(crate) legs: Legs,
    pub(crate) rooms: Rooms,
    /// The conference access number's menu (see [`crate::apps::ivr`]).
    pub(crate) ivr: crate::apps::ivr::Ivr,
    pub(crate) scheduled: crate::apps::scheduled::Scheduled,
    pub(crate) bridges: crate::apps::bridge::Bridges,
    /// Domains, users and credentials as last loaded by the shell (see [`crate::users`]).
    pub(crate) directory: Arc<crate::users::DirectorySnapshot>,
    /// Bindings, nonces and lock-outs (see [`crate::registrar`]).
    pub(crate) registrar: crate::registrar::Registrar,
    /// Third-party call control (reference 002): records and signalling-only dialogs.
    pub(crate) controller: crate::apps::controller::Controller,
    /// Mailboxes: messages and the voicemail number (see [`crate::apps::voicemail`]).
    pub(crate) voicemail: crate::apps::voicemail::Voicemail,
    /// Instant messages on their way to users' devices (see [`crate::apps::messages`]).
    pub(crate) messages: crate::apps::messages::Messaging,
    /// Live audio streams (see [`crate::apps::live_audio`]).
    pub(crate) live_audio: crate::apps::live_audio::LiveStreams,
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
        let cfg = Arc::new(cfg);
        Engine {
            registrar: crate::registrar::Registrar::new(cfg.registrar.clone(), cfg.security.clone(), Instant::now()),
            legs: Legs::new(cfg.clone(), media),
            rooms: Rooms::new(cfg.clone()),
            ivr: crate::apps::ivr::Ivr::new(cfg.clone()),
            scheduled: crate::apps::scheduled::Scheduled::new(cfg.clone()),
            bridges: crate::apps::bridge::Bridges::new(cfg.clone()),
            voicemail: crate::apps::voicemail::Voicemail::new(cfg.clone()),
            cfg,
            directory: Default::default(),
            controller: Default::default(),
            messages: Default::default(),
            live_audio: Default::default(),
        }
    }

    // ---- inputs -------------------------------------------------------------------

    /// Replaces the directory (the shell loads it from the store at start and after
    /// every change). Calls in progress keep what they resolved.
    pub fn set_directory(&mut self, directory: Arc<crate::users::DirectorySnapshot>) {
        // The bridge reads users' voicemail delays (call modes) from it.
        self.bridges.directory = directory.clone();
        // The IVR reads scheduled conferences' access ids from it.
        self.ivr.directory = directory.clone();
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
        self.legs.public.extend(ev);
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
        let transport = binding_transport(&b.transport);
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
        self.legs.handle_sip(now, msg, from);
        self.dispatch(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ev = Vec::new();
        self.registrar.tick(now, &mut ev);
        self.legs.public.extend(ev);
        self.legs.handle_timeout(now);
        if self.controller.poll_timeout().is_some_and(|at| at <= now) {
            self.controller_input(|c, cx| c.on_timeout(cx, now));
        }
        self.dispatch(now);
    }

    pub fn handle_media_event(&mut self, now: Instant, ev: MediaEvent) {
        self.legs.handle_media_event(now, ev);
        self.dispatch(now);
    }

    // ---- outputs ------------------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<(Peer, Arc<[u8]>)> {
        self.legs.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.legs.public.pop_front()
    }

    /// A live audio stream for the shell to connect (see [`crate::apps::live_audio`]).
    pub fn poll_live_audio(&mut self) -> Option<crate::apps::live_audio::StreamConnect> {
        self.live_audio.poll_connect()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = match (self.legs.poll_timeout(), self.registrar.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match (ours, self.controller.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- routing ----------------------------------------------------------------------

    /// Hands everything the leg layer produced to whoever decides: new requests to the
    /// registrar or an application, leg events to the leg's owner. Owners may act on
    /// legs, which may produce more; this runs until nothing is left.
    pub(crate) fn dispatch(&mut self, now: Instant) {
        loop {
            if let Some(raw) = self.legs.poll_raw() {
                if let Some(raw) = self.messages.on_raw(&mut self.legs, raw) {
                    self.controller_input(|c, cx| c.on_raw(cx, now, raw));
                }
                continue;
            }
            if let Some((call, referrer, target)) = self.bridges.control.to_route.pop() {
                // A phone's transfer target: routing is the engine's (directory, registrar).
                let route = self.route_target(self.call_domain_id(call), &target.to_string());
                self.bridges.place_transfer(now, &mut self.legs, call, referrer, route);
                continue;
            }
            if let Some((leg, mailbox)) = self.bridges.to_voicemail.pop() {
                // A caller the callee did not take: the voicemail app takes the message.
                self.voicemail.deposit(now, &mut self.legs, &leg, mailbox);
                continue;
            }
            if let Some(NewRequest { tx, req, from }) = self.legs.poll_request() {
                match req.method {
                    sip::Method::Register => self.on_register(now, tx, req, from),
                    sip::Method::Message => self.on_message(now, tx, req, from),
                    _ => self.on_new_invite(now, tx, req, from),
                }
                continue;
            }
            if let Some(ev) = self.legs.poll_room_media() {
                match ev {
                    MediaEvent::PromptEnded { prompt, end, .. } => self.rooms.prompt_ended(&mut self.legs, prompt, end),
                    MediaEvent::RecordingFinished { recording, samples, dropped, failed } => {
                        self.rooms.recording_finished(&mut self.legs, recording, samples, dropped, failed)
                    }
                    _ => {}
                }
                continue;
            }
            let Some(ev) = self.legs.poll_event() else { break };
            let owner = match &ev {
                LegEvent::Forgotten { owner, .. } => owner.clone(),
                ev => self.legs.get(apps::leg_of(ev)).map(|l| l.owner.clone()).unwrap_or(Owner::Nobody),
            };
            match owner {
                Owner::Room(confid) => self.rooms.on_leg_event(now, &mut self.legs, &confid, ev),
                Owner::Ivr => self.ivr.on_leg_event(now, &mut self.legs, &mut self.rooms, &mut self.scheduled, ev),
                Owner::Scheduled => self.scheduled.on_leg_event(now, &mut self.legs, ev),
                Owner::Voicemail => {
                    // A caller the bridge handed over: its call is done with once it is forgotten.
                    if let LegEvent::Forgotten { leg, .. } = &ev {
                        self.bridges.forget_leg(leg);
                    }
                    self.voicemail.on_leg_event(now, &mut self.legs, ev)
                }
                Owner::Bridge(call) => self.bridges.on_leg_event(now, &mut self.legs, call, ev),
                Owner::Ring => apps::services::on_ring_event(now, &mut self.legs, ev),
                Owner::Echo => apps::services::on_echo_event(now, &mut self.legs, ev),
                // An announcement call decides nothing: no transfers, in-dialog requests
                // answered as any endpoint does, a finished sound only logged.
                Owner::Announcement | Owner::Nobody => apps::default_handling(now, &mut self.legs, ev),
            }
        }
        // Streams follow their rooms and legs (a scan: streams are few).
        self.live_audio.reconcile(&mut self.legs, &self.rooms);
        self.legs.pump(now);
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
            self.legs.send_response(now, tx, resp);
        }
        // A woken app registering: calls waiting for it ring it now.
        for e in &ev {
            if let EngineEvent::BindingSaved(b) = e {
                if let Some(t) = self.target_of(b) {
                    self.bridges.on_registered(now, &mut self.legs, b.user_id, &b.contact, t);
                }
            }
        }
        self.legs.public.extend(ev);
    }

    /// An instant message from a phone (see [`crate::apps::messages`]): the sender is
    /// checked as a caller is, the recipient must be a user of ours (a 404 otherwise,
    /// as for calls, so users cannot be enumerated), and the sender gets 202 at once.
    fn on_message(&mut self, now: Instant, tx: TxId, req: Request, from: Peer) {
        use crate::apps::messages::{is_composing, new_message_id, unix_ms, valid_content_type, MessageInfo, MessageOrigin, MAX_BODY};
        let tag = random_token(10);
        let Ok(known_sender) = self.authenticate_caller(now, tx, &req, from, &tag) else { return };
        let domain = self.domain_of_host(&req.uri.host);
        let recipient = self
            .directory
            .domain_by_name(&domain)
            .zip(req.uri.user.as_deref())
            .and_then(|(d, key)| self.directory.user_by_key(d.id, key))
            .filter(|u| u.enabled)
            .filter(|_| known_sender || self.cfg.security.anonymous_may_call_users)
            .cloned();
        let Some(user) = recipient else { return self.legs.reply(now, tx, &req, 404, Some(&tag)) };
        let content_type = req.headers.content_type.clone().unwrap_or_else(|| "text/plain".into());
        if !valid_content_type(&content_type) {
            return self.legs.reply_reason(now, tx, &req, 415, Some(&tag), "Unsupported Media Type");
        }
        if req.body.len() > MAX_BODY {
            return self.legs.reply(now, tx, &req, 413, Some(&tag));
        }
        // Bodies are relayed and stored as text; anything else is refused whole rather
        // than altered.
        let Some(body) = String::from_utf8(req.body.clone()).ok().filter(|b| !b.contains('\0')) else {
            return self.legs.reply_reason(now, tx, &req, 415, Some(&tag), "Body Is Not UTF-8 Text");
        };
        let contacts = self.contacts_of(user.id);
        if contacts.is_empty() && is_composing(&content_type) {
            return self.legs.reply(now, tx, &req, 480, Some(&tag));
        }
        let f = &req.headers.from.uri;
        let from_user_id = known_sender
            .then(|| self.directory.domain_by_name(&f.host).zip(f.user.as_deref()).and_then(|(d, u)| self.directory.user_by_key(d.id, u)))
            .flatten()
            .map(|u| u.id);
        let mut sender = f.clone();
        sender.params.clear();
        sender.headers.clear();
        let info = MessageInfo {
            message_id: new_message_id(),
            to: self.aor_of(&user),
            domain,
            domain_id: user.domain_id,
            user_id: user.id,
            from: sender.to_string(),
            from_user_id,
            content_type,
            body,
            origin: MessageOrigin::Sip,
            created_ms: unix_ms(),
        };
        self.legs.reply(now, tx, &req, 202, Some(&tag));
        if !is_composing(&info.content_type) {
            self.legs.public.push_back(EngineEvent::MessageAccepted(info.clone()));
        }
        self.messages.deliver(now, &mut self.legs, info, contacts);
    }

    /// Where a user's devices are: each registered contact's URI and address.
    fn contacts_of(&self, user_id: crate::users::UserId) -> Vec<(Uri, Peer)> {
        self.registrar.contacts_of(user_id).iter().filter_map(|b| self.target_of(b)).map(|t| (t.uri, t.peer)).collect()
    }

    /// `sip:<extension or login>@<domain>`.
    fn aor_of(&self, user: &crate::users::User) -> String {
        let domain = self.directory.domain(user.domain_id).map(|d| d.name.as_str()).unwrap_or(&self.cfg.domain);
        format!("sip:{}@{domain}", user.ext.as_deref().unwrap_or(&user.login))
    }

    fn authenticate_caller(&mut self, now: Instant, tx: TxId, req: &Request, from: Peer, local_tag: &str) -> Result<bool, ()> {
        // Our own calls looping back to us (we dialled one of our own URIs) are trusted
        // like a gateway: we cannot answer our own challenge. Only the Call-ID of a call
        // we placed counts, so a forged source address alone earns nothing.
        let own_loop = from.addr == self.cfg.sip_addr && self.legs.is_our_outbound_call(&req.headers.call_id);
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
                let mut resp = self.legs.response(req, status, Some(local_tag));
                if let Some(reason) = reason {
                    resp.reason = reason;
                }
                for c in challenges {
                    resp.headers.push("Proxy-Authenticate", c.to_string());
                }
                self.legs.send_response(now, tx, resp);
                Err(())
            }
        }
    }

    /// A new call: authenticate the caller, then give it to the application its
    /// Request-URI names.
    fn on_new_invite(&mut self, now: Instant, tx: TxId, req: Request, from: Peer) {
        let local_tag = random_token(10);
        if self.legs.shutting_down {
            return self.legs.reply(now, tx, &req, 503, Some(&local_tag));
        }
        let Ok(known_caller) = self.authenticate_caller(now, tx, &req, from, &local_tag) else { return };
        if let Some(r) = crate::legs::Replaces::from_request(&req) {
            return self.on_replacing_invite(now, tx, req, from, local_tag, r);
        }
        let user = req.uri.user.as_deref().unwrap_or("");
        // The access number and direct room entry come first: they are configured, and
        // may take numbers that would otherwise be extensions.
        let domain_id = self.directory.domain_by_name(&self.domain_of_host(&req.uri.host)).map(|d| d.id);
        // A scheduled conference's access id dialled as a room number (`*9<id>`, or
        // `<id>` as a direct room) enters it the way the access number does.
        let mut scheduled_entry = None;
        let (service, announced) = if user == self.cfg.ivr.conference_number {
            (Some(Service::Ivr), false)
        } else if user == self.cfg.voicemail.number {
            (Some(Service::Voicemail), false)
        } else if let Some(room) = self.cfg.ivr.direct_room(user) {
            (Some(Service::Room(room)), true)
        } else {
            (Service::from_user(user, &self.cfg.room_prefix), false)
        };
        let (service, announced) = match service {
            Some(Service::Room(number)) if domain_id.and_then(|d| number.parse().ok().and_then(|n| self.directory.conference_by_access(d, n))).is_some() => {
                scheduled_entry = Some(number);
                (Some(Service::Ivr), false)
            }
            s => (s, announced),
        };
        let Some(service) = service else {
            // Rooms and services are open to anyone; users' extensions and numbers
            // only to authenticated or trusted callers (unless `anonymous_may_call_users`
            // for users). Anyone else gets the same 404 as for a number nobody has, so
            // extensions cannot be enumerated.
            let may_call_users = known_caller || self.cfg.security.anonymous_may_call_users;
            return self.route_to_bridge(now, tx, req, from, local_tag, known_caller, may_call_users);
        };
        let domain = self.domain_of_host(&req.uri.host);
        let owner = match &service {
            Service::Echo => Owner::Echo,
            Service::Ring => Owner::Ring,
            Service::Ivr => Owner::Ivr,
            Service::Voicemail => Owner::Voicemail,
            Service::Room(_) | Service::Call | Service::Announcement => Owner::Nobody,
        };
        // At the voicemail number an authenticated caller opens its own mailbox; at the
        // conference number the owner of a scheduled conference is recognised.
        let authenticated_user = match (&service, known_caller) {
            (Service::Voicemail | Service::Ivr, true) => {
                let f = &req.headers.from.uri;
                let d = self.directory.domain_by_name(&f.host).map(|d| d.id);
                d.zip(f.user.as_deref()).and_then(|(d, u)| self.directory.user_by_key(d, u)).map(|u| u.id)
            }
            _ => None,
        };
        let Some(id) = self.legs.incoming(now, tx, req, from, local_tag, service.clone(), owner, domain) else { return };
        if announced {
            return match service {
                Service::Room(number) => self.rooms.on_incoming_direct(now, &mut self.legs, &id, &number),
                _ => unreachable!("direct entry is into a room"),
            };
        }
        match service {
            Service::Echo => apps::services::start_echo(now, &mut self.legs, &id),
            Service::Ring => apps::services::start_ring(now, &mut self.legs, &id),
            Service::Room(number) => self.rooms.on_incoming(now, &mut self.legs, &id, &number),
            Service::Ivr => match scheduled_entry {
                Some(entry) => self.ivr.on_incoming_entry(now, &mut self.legs, &mut self.rooms, &id, authenticated_user, entry),
                None => self.ivr.on_incoming(now, &mut self.legs, &id, authenticated_user),
            },
            Service::Voicemail => self.voicemail.on_incoming(now, &mut self.legs, &id, authenticated_user),
            Service::Call | Service::Announcement => {}
        }
    }

    // ---- API commands -------------------------------------------------------------

    pub fn legs(&self) -> Vec<LegInfo> {
        let mut v: Vec<LegInfo> = self.legs.all().map(|l| l.info()).collect();
        v.sort_by_key(|l| l.started_ms);
        v
    }

    pub fn leg(&self, id: &LegId) -> Option<LegInfo> {
        self.legs.info(id)
    }

    /// Legs not yet ended (what shutdown waits for).
    pub fn live_legs(&self) -> usize {
        self.legs.live()
    }

    /// Transactions still running.
    pub fn pending_transactions(&self) -> usize {
        self.legs.txl.len()
    }

    /// Counts for `/v1/status`.
    pub fn status(&self) -> EngineStatus {
        EngineStatus {
            live_legs: self.legs.live(),
            legs: self.legs.len(),
            rooms: self.rooms.len(),
            transactions: self.legs.txl.len(),
            rtp_ports_in_use: self.legs.media.ports_in_use(),
            shutting_down: self.legs.shutting_down,
        }
    }

    /// BYEs we sent that have no final response yet.
    pub fn byes_in_flight(&self) -> usize {
        self.legs.byes_in_flight()
    }

    /// Places a call to a service (echo by default): allocates media, sends the INVITE
    /// with our offer, returns at once.
    pub fn dial_out(&mut self, now: Instant, d: DialOut) -> Result<LegInfo, EngineError> {
        let owner = match d.service {
            Service::Echo => Owner::Echo,
            Service::Ring => Owner::Ring,
            Service::Announcement => Owner::Announcement,
            _ => Owner::Nobody,
        };
        let id = self.legs.place(now, d, owner)?;
        self.dispatch(now);
        self.legs.info(&id).ok_or(EngineError::LegNotFound)
    }

    /// Plays a sound into an announcement call placed by [`Engine::dial_out`] with
    /// [`Service::Announcement`], replacing what it played; returns the prompt's id.
    pub fn play_to_leg(&mut self, id: &LegId, spec: media::PromptSpec) -> Result<u64, EngineError> {
        apps::announcement::play(&mut self.legs, id, spec)
    }

    /// Sends digits into an announcement call.
    pub fn dtmf_to_leg(&mut self, now: Instant, id: &LegId, digits: &str, method: crate::legs::DtmfMethod) -> Result<(), EngineError> {
        let r = apps::announcement::send_dtmf(now, &mut self.legs, id, digits, method);
        self.dispatch(now);
        r
    }

    /// Ends a leg the polite way for its state (see [`Legs::hangup`]).
    pub fn hangup(&mut self, now: Instant, id: &LegId) -> Result<LegInfo, EngineError> {
        let r = self.legs.hangup(now, id);
        self.dispatch(now);
        r
    }

    /// Starts a graceful shutdown: every live leg is hung up; new calls are refused.
    pub fn shutdown(&mut self, now: Instant) {
        self.controller_input(|c, cx| c.shutdown(cx, now));
        self.live_audio.stop_all(&mut self.legs);
        self.legs.shutdown(now);
        self.dispatch(now);
    }

    // ---- two-party calls (the bridge application) ------------------------------------

    /// An INVITE to a directory user (extension, login or number) goes to the bridge,
    /// which rings all the user's registered contacts; a number outside the directory
    /// goes to the gateway; anything else is a 404.
    #[allow(clippy::too_many_arguments)]
    fn route_to_bridge(&mut self, now: Instant, tx: TxId, req: Request, from: Peer, local_tag: String, known_caller: bool, may_call_users: bool) {
        let Some(key) = req.uri.user.clone() else {
            return self.legs.reply(now, tx, &req, 404, Some(&local_tag));
        };
        let domain_id = self.directory.domain_by_name(&req.uri.host).map(|d| d.id).or_else(|| {
            // A Request-URI naming us by address (not by domain): an authenticated
            // caller dials in its own domain (a phone following our REFER to
            // `sip:3046@<our address>`), anyone else in the default domain.
            let host = req.uri.host.trim_start_matches('[').trim_end_matches(']');
            host.parse::<IpAddr>().ok()?;
            let own = known_caller.then(|| self.directory.domain_by_name(&req.headers.from.uri.host).map(|d| d.id)).flatten();
            own.or_else(|| self.default_domain(None))
        });
        let callee_user = domain_id.and_then(|d| self.directory.user_by_key(d, &key)).filter(|u| u.enabled).cloned();
        let callee = match (&callee_user, domain_id) {
            (Some(user), Some(d)) if may_call_users => self.reach_user(d, user),
            (None, _) if known_caller && is_dialable_number(&key) => match self.reach_gateway(&key) {
                Some(r) => r,
                None => return self.legs.reply(now, tx, &req, 404, Some(&local_tag)),
            },
            _ => return self.legs.reply(now, tx, &req, 404, Some(&local_tag)),
        };
        let domain = match domain_id.and_then(|d| self.directory.domain(d)) {
            Some(d) => d.name.to_ascii_lowercase(),
            None => self.domain_of_host(&req.uri.host),
        };
        // The caller: a directory user of that domain when the From names one.
        let from_hdr = &req.headers.from;
        let caller_user = domain_id.zip(from_hdr.uri.user.as_deref()).and_then(|(d, k)| self.directory.user_by_key(d, k)).cloned();
        let caller = match &caller_user {
            Some(u) => party_of_user(u, from_hdr.uri.to_string()),
            None => Party { uri: from_hdr.uri.to_string(), user_id: None, ext: None, display_name: from_hdr.display.clone() },
        };
        let caller_id = CallerId {
            user: caller_user.as_ref().map(|u| u.ext.clone().unwrap_or_else(|| u.login.clone())).or_else(|| from_hdr.uri.user.clone()),
            display: caller_user.as_ref().map(|u| u.caller_name()).or_else(|| from_hdr.display.clone()),
        };
        // A user with push tokens: wake the app and ring what registers meanwhile.
        let wake = callee_user.as_ref().filter(|u| u.has_push_tokens && may_call_users).map(|u| u.id);
        self.bridges.start(now, &mut self.legs, tx, req, from, local_tag, domain, caller, caller_id, callee, wake);
    }

    /// Where to ring one registered contact (None: its Contact does not parse).
    fn target_of(&self, b: &crate::users::Binding) -> Option<Target> {
        let uri = sip::parse::parse_uri(&b.contact).ok()?;
        let transport = binding_transport(&b.transport);
        let trusted = self.registrar.guard.is_trusted(b.source.ip());
        Some(Target { uri, peer: Peer { addr: b.source, transport }, trusted })
    }

    /// A directory user and every registered contact of theirs.
    fn reach_user(&self, _domain: crate::users::DomainId, user: &crate::users::User) -> Reach {
        let targets = self.registrar.contacts_of(user.id).iter().filter_map(|b| self.target_of(b)).collect();
        Reach { party: party_of_user(user, format!("sip:{}@{}", user.ext.as_deref().unwrap_or(&user.login), self.directory.domain(user.domain_id).map(|d| d.name.as_str()).unwrap_or(&self.cfg.domain))), targets }
    }

    /// A number sent to the configured gateway (None: no gateway, or it is not an address).
    fn reach_gateway(&self, number: &str) -> Option<Reach> {
        let gw = self.cfg.gateway.as_ref()?;
        let uri = Uri { user: Some(number.to_owned()), password: None, headers: Vec::new(), ..gw.clone() };
        let peer = resolve_literal(&uri, Transport::Udp)?;
        Some(Reach { party: Party { uri: uri.to_string(), ..Default::default() }, targets: vec![Target { uri, peer, trusted: true }] })
    }

    /// Who `target` is and where to ring them: a directory user (extension, login,
    /// number or `sip:user@our-domain`), a number (the gateway) or a SIP URI.
    fn reach(&self, domain: Option<crate::users::DomainId>, target: &str) -> Result<Reach, EngineError> {
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        let parsed = sip::parse::parse_uri(target).ok();
        // (domain to look the key up in, key, a SIP URI outside our domains)
        let (dom, key, elsewhere) = match &parsed {
            Some(u) if matches!(u.scheme, sip::Scheme::Sip | sip::Scheme::Sips) => match self.directory.domain_by_name(&u.host) {
                Some(d) if domain.is_none_or(|x| x == d.id) => (Some(d.id), u.user.clone().unwrap_or_default(), None),
                Some(_) => return Err(EngineError::BadTarget(format!("{target}: another domain's user"))),
                None => (None, String::new(), Some(u.clone())),
            },
            Some(u) if u.scheme == sip::Scheme::Tel => (self.default_domain(domain), u.user.clone().unwrap_or_default(), None),
            _ => (self.default_domain(domain), target.to_owned(), None),
        };
        if let Some(user) = dom.and_then(|d| self.directory.user_by_key(d, &key)).filter(|u| u.enabled) {
            return Ok(self.reach_user(user.domain_id, user));
        }
        if let Some(u) = elsewhere {
            let peer = resolve_literal(&u, Transport::Udp).ok_or_else(|| EngineError::Unroutable(format!("{u}: only IP addresses can be called from here")))?;
            return Ok(Reach { party: Party { uri: u.to_string(), ..Default::default() }, targets: vec![Target { uri: u, peer, trusted: false }] });
        }
        if is_dialable_number(&key) {
            return self.reach_gateway(&key).ok_or_else(|| EngineError::Unroutable(format!("no route to number {key}: no [routing] gateway")));
        }
        // Well-formed but nobody: no route (422), like a user with no device.
        Err(EngineError::Unroutable(format!("{target}: not a user, a number or a SIP URI")))
    }

    /// The call ids continue above `floor` (the highest in the call log).
    pub fn seed_call_ids(&mut self, floor: u64) {
        self.bridges.seed_ids(floor);
    }

    /// Every two-party call, oldest first (ended ones until their legs are forgotten).
    pub fn calls(&self) -> Vec<CallInfo> {
        let mut v: Vec<CallInfo> = self.bridges.calls.values().map(|c| self.bridges.info(c, &self.legs)).collect();
        v.sort_by_key(|c| c.call_id);
        v
    }

    pub fn call(&self, id: CallId) -> Option<CallInfo> {
        self.bridges.calls.get(&id).map(|c| self.bridges.info(c, &self.legs))
    }

    /// The call a leg belongs to (a party's, a fork's or a supervisor's leg).
    pub fn call_of_leg(&self, leg: &LegId) -> Option<CallId> {
        self.bridges.by_leg.get(leg).copied()
    }

    /// Click-to-call: rings `from` (a user's devices or a URI) presenting `to` as the
    /// caller; when it answers, rings `to` and bridges the two.
    pub fn make_call(&mut self, now: Instant, from: &str, to: &str, domain: Option<crate::users::DomainId>) -> Result<CallInfo, EngineError> {
        let caller = self.reach(domain, from)?;
        let callee = self.reach(domain, to)?;
        let shown = |p: &Party, u: Option<&crate::users::User>| CallerId {
            user: p.ext.clone().or_else(|| sip::parse::parse_uri(&p.uri).ok().and_then(|u| u.user)),
            display: u.map(|u| u.caller_name()).or_else(|| p.display_name.clone()),
        };
        let user = |p: &Party| p.user_id.and_then(|id| self.directory.user(id)).cloned();
        let caller_id = shown(&caller.party, user(&caller.party).as_ref());
        let callee_id = shown(&callee.party, user(&callee.party).as_ref());
        let dom = self
            .default_domain(domain)
            .and_then(|d| self.directory.domain(d))
            .map(|d| d.name.to_ascii_lowercase())
            .unwrap_or_else(|| self.cfg.domain.to_ascii_lowercase());
        let id = self.bridges.make_call(now, &mut self.legs, dom, caller, callee, caller_id, callee_id)?;
        self.dispatch(now);
        self.call(id).ok_or(EngineError::LegNotFound)
    }

    /// Ends a call, ringing or answered.
    pub fn clear_call(&mut self, now: Instant, id: CallId) -> Result<CallInfo, EngineError> {
        let r = self.bridges.clear_call(now, &mut self.legs, id);
        self.dispatch(now);
        r
    }

    /// Rings `target` instead of the callee of an unanswered call.
    pub fn redirect_call(&mut self, now: Instant, id: CallId, target: &str) -> Result<CallInfo, EngineError> {
        let domain = self.call_domain(id)?;
        let target = self.reach(domain, target)?;
        let r = self.bridges.redirect_call(now, &mut self.legs, id, target);
        self.dispatch(now);
        r
    }

    /// Pickup: rings `device` (a user or a URI); when it answers it takes the call.
    pub fn intercept_call(&mut self, now: Instant, id: CallId, device: &str) -> Result<CallInfo, EngineError> {
        let domain = self.call_domain(id)?;
        let device = self.reach(domain, device)?;
        let r = self.bridges.intercept_call(now, &mut self.legs, id, device);
        self.dispatch(now);
        r
    }

    fn call_domain(&self, id: CallId) -> Result<Option<crate::users::DomainId>, EngineError> {
        let call = self.bridges.calls.get(&id).ok_or(EngineError::LegNotFound)?;
        Ok(self.directory.domain_by_name(&call.domain).map(|d| d.id))
    }

    // ---- instant messages (apps/messages.rs) -------------------------------------------

    /// An API message for user `m.user_id` (of `m.domain`, when the caller is scoped to
    /// one): sent to the user's devices now, or deferred until they register. `m.from`:
    /// a user of the domain (login, extension) or a SIP URI; None = the server.
    pub fn send_message(&mut self, now: Instant, m: crate::handle::OutgoingMessage) -> Result<crate::apps::messages::MessageInfo, EngineError> {
        use crate::apps::messages::{new_message_id, unix_ms, valid_content_type, MessageInfo, MessageOrigin, MAX_BODY};
        let crate::handle::OutgoingMessage { domain, user_id, from, content_type, body } = m;
        let (from, content_type) = (from.as_deref(), content_type.as_str());
        let user = self.directory.user(user_id).filter(|u| domain.is_none_or(|d| d == u.domain_id)).cloned().ok_or(EngineError::LegNotFound)?;
        if !valid_content_type(content_type) {
            return Err(EngineError::BadRequest(format!("content_type {content_type:?} is not a media type (type/subtype)")));
        }
        if body.len() > MAX_BODY {
            return Err(EngineError::BadRequest(format!("the body is {} bytes; at most {MAX_BODY}", body.len())));
        }
        if body.contains('\0') {
            return Err(EngineError::BadRequest("the body holds a NUL character".into()));
        }
        let domain_name = self.directory.domain(user.domain_id).map(|d| d.name.to_ascii_lowercase()).unwrap_or_else(|| self.cfg.domain.to_ascii_lowercase());
        let (from, from_user_id) = match from.map(str::trim).filter(|f| !f.is_empty()) {
            None => (format!("sip:switchboard@{domain_name}"), None),
            Some(f) => match self.directory.user_by_key(user.domain_id, f) {
                Some(u) => (self.aor_of(u), Some(u.id)),
                None => match sip::parse::parse_uri(f) {
                    Ok(u) if matches!(u.scheme, sip::Scheme::Sip | sip::Scheme::Sips) => (u.to_string(), None),
                    // Another name in the domain (a service, a team): shown as such.
                    _ if f.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) => (format!("sip:{f}@{domain_name}"), None),
                    _ => return Err(EngineError::BadRequest(format!("from {f:?}: not a name in the domain nor a sip: URI"))),
                },
            },
        };
        let info = MessageInfo {
            message_id: new_message_id(),
            to: self.aor_of(&user),
            domain: domain_name,
            domain_id: user.domain_id,
            user_id: user.id,
            from,
            from_user_id,
            content_type: content_type.to_owned(),
            body,
            origin: MessageOrigin::Api,
            created_ms: unix_ms(),
        };
        self.legs.public.push_back(EngineEvent::MessageAccepted(info.clone()));
        let contacts = self.contacts_of(user.id);
        self.messages.deliver(now, &mut self.legs, info.clone(), contacts);
        self.dispatch(now);
        Ok(info)
    }

    /// A stored message, tried again (the shell calls this when its recipient
    /// registers). Its outcome comes as the same events; it is not accepted anew.
    pub fn deliver_stored_message(&mut self, now: Instant, info: crate::apps::messages::MessageInfo) {
        let contacts = self.contacts_of(info.user_id);
        self.messages.deliver(now, &mut self.legs, info, contacts);
        self.dispatch(now);
    }

    /// Instant messages waiting for a device's answer.
    pub fn messages_in_flight(&self) -> usize {
        self.messages.in_flight()
    }

    // ---- voicemail (apps/voicemail.rs) ---------------------------------------------------

    /// The shell's answer to [`EngineEvent::VoicemailLogin`]: None = wrong PIN or no
    /// such mailbox; else the mailbox's user and its new messages (id, file relative to
    /// the data dir), oldest first.
    pub fn voicemail_login(&mut self, now: Instant, leg: &LegId, result: Option<(crate::users::UserId, Vec<crate::apps::voicemail::MessageRef>)>) {
        self.voicemail.login_result(&mut self.legs, leg, result);
        self.dispatch(now);
    }

    /// Message-waiting indication (RFC 3842): an unsolicited `message-summary` NOTIFY
    /// to every registered contact of the user with its `new` and `old` voicemails.
    pub fn notify_mwi(&mut self, now: Instant, user_id: crate::users::UserId, new: u32, old: u32) {
        let Some(user) = self.directory.user(user_id).cloned() else { return };
        let domain = self.directory.domain(user.domain_id).map(|d| d.name.clone()).unwrap_or_else(|| self.cfg.domain.clone());
        let account = format!("sip:{}@{domain}", user.ext.as_deref().unwrap_or(&user.login));
        for b in self.registrar.contacts_of(user_id) {
            let Some(t) = self.target_of(&b) else { continue };
            let req = crate::apps::voicemail::mwi_notify(&self.legs, &account, t.uri, t.peer.transport, new, old);
            self.legs.send_raw_request(now, req, t.peer);
        }
        self.dispatch(now);
    }

    // ---- rooms (the room application) ----------------------------------------------------

    pub fn rooms(&self) -> Vec<RoomSnapshot> {
        self.rooms.snapshots(&self.legs)
    }

    /// Room infos, oldest first (what [`crate::RoomDirectory`] publishes).
    pub fn room_infos(&self) -> Vec<Arc<RoomInfo>> {
        self.rooms.infos()
    }

    /// Changes whenever a room starts, is being ended, or ends.
    pub fn rooms_generation(&self) -> u64 {
        self.rooms.generation()
    }

    pub fn room(&self, confid: &str) -> Result<RoomSnapshot, EngineError> {
        self.rooms.snapshot(&self.legs, confid)
    }

    pub fn topology(&self, confid: &str) -> Result<Vec<TopologyRule>, EngineError> {
        self.rooms.topology(confid)
    }

    /// Opens room `number` in `domain` (None = ours), created empty if needed; it then
    /// stays while empty, until ended. True when created.
    pub fn open_room(&mut self, now: Instant, domain: Option<&str>, number: &str) -> Result<(RoomInfo, bool), EngineError> {
        let domain = domain.unwrap_or(&self.cfg.domain).to_owned();
        let r = self.rooms.open_room(&mut self.legs, &domain, number);
        self.dispatch(now);
        r
    }

    /// The live room numbered `number` in `domain` (None = ours), however it started.
    pub fn room_by_number(&self, domain: Option<&str>, number: &str) -> Result<RoomSnapshot, EngineError> {
        self.rooms.by_number(&self.legs, domain.unwrap_or(&self.cfg.domain), number)
    }

    pub fn end_room(&mut self, now: Instant, confid: &str) -> Result<RoomInfo, EngineError> {
        let r = self.rooms.end_room(now, &mut self.legs, confid);
        self.dispatch(now);
        r
    }

    pub fn dial_into_room(&mut self, now: Instant, confid: &str, d: DialOut) -> Result<ParticipantInfo, EngineError> {
        let r = self.rooms.dial_into_room(now, &mut self.legs, confid, d);
        self.dispatch(now);
        r
    }

    pub fn kick(&mut self, now: Instant, confid: &str, participantid: &str) -> Result<ParticipantInfo, EngineError> {
        let r = self.rooms.kick(now, &mut self.legs, confid, participantid);
        self.dispatch(now);
        r
    }

    pub fn patch_participant(&mut self, confid: &str, participantid: &str, patch: ParticipantPatch) -> Result<ParticipantInfo, EngineError> {
        self.rooms.patch_participant(&mut self.legs, confid, participantid, patch)
    }

    /// Plays a prompt to a room or one participant (see [`crate::room::PromptRequest`]).
    pub fn play_prompt(&mut self, confid: &str, participantid: Option<&str>, req: &crate::room::PromptRequest) -> Result<u64, EngineError> {
        self.rooms.play(&mut self.legs, confid, participantid, req)
    }

    pub fn stop_prompt(&mut self, confid: &str, participantid: Option<&str>) -> Result<(), EngineError> {
        self.rooms.stop_prompt(&mut self.legs, confid, participantid)
    }

    pub fn room_recording(&self, confid: &str) -> Result<Option<crate::room::RoomRecordingInfo>, EngineError> {
        self.rooms.recording(confid)
    }

    pub fn room_record(&mut self, now: Instant, confid: &str, op: RecordOp) -> Result<crate::room::RoomRecordingInfo, EngineError> {
        let r = match op {
            RecordOp::Start { tracks } => self.rooms.record_start(&mut self.legs, confid, tracks),
            RecordOp::Pause(p) => self.rooms.record_pause(confid, p),
            RecordOp::Stop => self.rooms.record_stop(&mut self.legs, confid),
        };
        self.dispatch(now);
        r
    }

    pub fn change_topology(&mut self, confid: &str, rules: Vec<TopologyRule>) -> Result<Vec<TopologyRule>, EngineError> {
        self.rooms.change_topology(&self.legs, confid, rules)
    }

    // ---- mid-call control of two-party calls (apps/bridge/control.rs) -------------------

    /// An INVITE with Replaces (RFC 3891): it takes the place of the leg it names,
    /// which must be a party of a two-party call; anything else is 481.
    fn on_replacing_invite(&mut self, now: Instant, tx: TxId, req: Request, from: Peer, local_tag: String, r: crate::legs::Replaces) {
        let found = self.legs.find_replaced(&r).and_then(|old| match self.legs.get(&old).map(|l| (l.owner.clone(), l.state)) {
            Some((Owner::Bridge(call), crate::legs::LegState::Active | crate::legs::LegState::Held)) => Some((call, old)),
            _ => None,
        });
        let Some((call, old)) = found else {
            return self.legs.reply_reason(now, tx, &req, 481, Some(&local_tag), "Replaced dialog not found");
        };
        let domain = self.domain_of_host(&req.uri.host);
        let Some(new) = self.legs.incoming(now, tx, req, from, local_tag, Service::Call, Owner::Bridge(call), domain) else { return };
        self.bridges.on_replacing_invite(now, &mut self.legs, call, new, old);
    }

    /// Where a transfer or supervisor target is: a directory user's device (by
    /// extension, login, number or `sip:user@domain`, or a URI naming us by address),
    /// else a SIP URI with an address.
    /// `domain`: the call's (its users first); None = the default domain.
    pub fn route_target(&self, domain: Option<crate::users::DomainId>, target: &str) -> Result<(Uri, Peer), EngineError> {
        if let Some(r) = self.route_user(domain, target) {
            return r;
        }
        let bare = target.trim().trim_start_matches('<').trim_end_matches('>');
        let Ok(uri) = sip::parse::parse_uri(bare) else {
            if is_dialable_number(bare) {
                if let Some(Reach { mut targets, .. }) = self.reach_gateway(bare) {
                    let t = targets.remove(0);
                    return Ok((t.uri, t.peer));
                }
                return Err(EngineError::Unroutable(format!("no route to number {bare}: no [routing] gateway")));
            }
            return Err(EngineError::Unroutable(format!("{target}: no such user, number or SIP URI")));
        };
        let names_us = resolve_literal(&uri, Transport::Udp).is_some_and(|p| p.addr == self.cfg.sip_addr);
        if names_us {
            if let Some(r) = uri.user.as_deref().and_then(|u| self.route_user(domain, u)) {
                return r;
            }
        }
        let peer = resolve_literal(&uri, Transport::Udp).ok_or_else(|| EngineError::Unroutable(format!("{uri}: only users and IP addresses can be called from here")))?;
        Ok((uri, peer))
    }

    /// The directory domain of two-party call `id`.
    fn call_domain_id(&self, id: crate::call::CallId) -> Option<crate::users::DomainId> {
        self.bridges.calls.get(&id).and_then(|c| self.directory.domain_by_name(&c.domain)).map(|d| d.id)
    }

    /// A URI a phone can call for `target`: a SIP URI as given, else the extension,
    /// login or number at our SIP address (we route it when the phone calls).
    pub fn dialable_uri(&self, target: &str) -> Result<Uri, EngineError> {
        let t = target.trim().trim_start_matches('<').trim_end_matches('>');
        if t.is_empty() {
            return Err(EngineError::BadRequest("the transfer target is empty".into()));
        }
        if let Ok(u) = sip::parse::parse_uri(t) {
            if matches!(u.scheme, sip::Scheme::Sip | sip::Scheme::Sips) {
                return Ok(u);
            }
        }
        if !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+*#".contains(&b)) {
            return Err(EngineError::BadTarget(format!("{t}: not a user, number or SIP URI")));
        }
        let host = match self.cfg.sip_addr.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        Ok(Uri::sip(Some(t), &host, Some(self.cfg.sip_addr.port())))
    }

    /// Puts one side of a call on hold (re-INVITE sendonly, or inactive).
    pub fn hold_call(&mut self, now: Instant, id: crate::call::CallId, side: crate::call::Side, inactive: bool) -> Result<crate::call::CallInfo, EngineError> {
        let r = self.bridges.hold(now, &mut self.legs, id, side, inactive);
        self.dispatch(now);
        r
    }

    /// Takes the held side of a call off hold.
    pub fn unhold_call(&mut self, now: Instant, id: crate::call::CallId) -> Result<crate::call::CallInfo, EngineError> {
        let r = self.bridges.unhold(now, &mut self.legs, id);
        self.dispatch(now);
        r
    }

    /// Transfers one side of a call: blind to `to`, or attended into call `replaces`
    /// (the side's party replaces our leg in that call; `to` then defaults to us).
    pub fn transfer_call(&mut self, now: Instant, id: crate::call::CallId, side: crate::call::Side, to: Option<&str>, replaces: Option<crate::call::CallId>) -> Result<crate::call::CallInfo, EngineError> {
        let target = match (to, replaces) {
            (Some(t), _) => self.dialable_uri(t)?,
            (None, Some(_)) => self.dialable_uri("transfer")?,
            (None, None) => return Err(EngineError::BadRequest("a transfer needs `to` (blind) or `replaces` (attended)".into())),
        };
        let r = self.bridges.transfer(now, &mut self.legs, id, side, target, replaces);
        self.dispatch(now);
        r
    }

    /// Sends DTMF digits to one side's party.
    pub fn send_dtmf_call(&mut self, now: Instant, id: crate::call::CallId, side: crate::call::Side, digits: &str, method: crate::legs::DtmfMethod) -> Result<crate::call::CallInfo, EngineError> {
        let r = self.bridges.send_dtmf(now, &mut self.legs, id, side, digits, method);
        self.dispatch(now);
        r
    }

    /// Calls a supervisor into a call (listen, whisper or barge).
    pub fn supervise_call(&mut self, now: Instant, id: crate::call::CallId, to: &str, mode: crate::call::SuperviseMode) -> Result<crate::call::CallInfo, EngineError> {
        let (uri, peer) = self.route_target(self.call_domain_id(id), to)?;
        let r = self.bridges.supervise(now, &mut self.legs, id, uri, peer, mode);
        self.dispatch(now);
        r
    }

    /// Applies one mid-call control command (see [`crate::CallOp`]).
    pub fn call_control(&mut self, now: Instant, id: crate::call::CallId, op: crate::handle::CallOp) -> Result<crate::call::CallInfo, EngineError> {
        use crate::handle::CallOp;
        match op {
            CallOp::Inspect => self.bridges.calls.get(&id).map(|c| self.bridges.info(c, &self.legs)).ok_or(EngineError::LegNotFound),
            CallOp::Hold { side, inactive } => self.hold_call(now, id, side, inactive),
            CallOp::Unhold => self.unhold_call(now, id),
            CallOp::Transfer { side, to, replaces } => self.transfer_call(now, id, side, to.as_deref(), replaces),
            CallOp::Dtmf { side, digits, method } => self.send_dtmf_call(now, id, side, &digits, method),
            CallOp::Supervise { to, mode } => self.supervise_call(now, id, &to, mode),
            CallOp::RecordStart => self.bridges.record_start(&mut self.legs, id),
            CallOp::RecordStop => self.bridges.record_stop(&mut self.legs, id),
            CallOp::Conference { room } => {
                // The room must be there (or be a number) before the call lets go.
                if !room.bytes().all(|b| b.is_ascii_digit()) {
                    self.rooms.topology(&room)?;
                }
                let before = self.call_control(now, id, CallOp::Inspect)?;
                let (domain, members) = self.bridges.release_for_conference(now, &mut self.legs, id)?;
                let r = self.rooms.adopt(&mut self.legs, &room, &domain, &members);
                self.dispatch(now);
                r.map(|_| crate::call::CallInfo { state: crate::call::CallState::Ended, ..before })
            }
            CallOp::JoinScheduled { access_id, user } => self.join_scheduled(now, id, access_id, user),
        }
    }
}

impl Engine {
    /// Both parties of call `id` go into the scheduled conference `access_id` of the
    /// call's domain; the party that is `user` is its owner if `user` booked it.
    fn join_scheduled(&mut self, now: Instant, id: crate::call::CallId, access_id: u64, user: crate::users::UserId) -> Result<crate::call::CallInfo, EngineError> {
        use crate::schedule::Window;
        let before = self.call_control(now, id, crate::handle::CallOp::Inspect)?;
        let domain_id = self.directory.domain_by_name(&before.domain).map(|d| d.id).ok_or(EngineError::RoomNotFound)?;
        let conf = self.directory.conference_by_access(domain_id, access_id).cloned().ok_or(EngineError::RoomNotFound)?;
        match conf.window(crate::schedule::unix_now_s(), self.cfg.ivr.early_join_s) {
            Window::Open => {}
            Window::NotStarted { .. } => return Err(EngineError::Conflict("conference has not started".into())),
            Window::Ended => return Err(EngineError::Conflict("conference has ended".into())),
        }
        // Which leg is the owner's: the side whose party is the booking user.
        let owner_leg = if user == conf.owner_id {
            let call = self.bridges.calls.get(&id).ok_or(EngineError::LegNotFound)?;
            [(&before.caller, &call.caller_leg), (&before.callee, &call.callee_leg)]
                .into_iter()
                .find(|(party, _)| party.user_id == Some(user))
                .and_then(|(_, leg)| leg.clone())
        } else {
            None
        };
        let (domain, members) = self.bridges.release_for_conference(now, &mut self.legs, id)?;
        let members: Vec<(LegId, bool)> = members.into_iter().map(|l| (l.clone(), Some(&l) == owner_leg.as_ref())).collect();
        let r = self.scheduled.enter(&mut self.legs, &mut self.rooms, &conf, &domain, &members);
        self.dispatch(now);
        r.map(|_| crate::call::CallInfo { state: crate::call::CallState::Ended, ..before })
    }
}

/// A number as dialled to a gateway: digits with an optional leading `+` (and `*`, `#`).
fn is_dialable_number(key: &str) -> bool {
    let digits = key.strip_prefix('+').unwrap_or(key);
    !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') && digits.bytes().any(|b| b.is_ascii_digit())
}

fn party_of_user(u: &crate::users::User, uri: String) -> Party {
    Party { uri, user_id: Some(u.id), ext: u.ext.clone(), display_name: Some(u.caller_name()) }
}

/// The transport a binding's `transport` column names; requests to the contact go back
/// the way its REGISTER came (a WebSocket contact's `.invalid` host is reachable no
/// other way).
fn binding_transport(name: &str) -> Transport {
    match name {
        "tcp" => Transport::Tcp,
        "ws" => Transport::Ws,
        "wss" => Transport::Wss,
        _ => Transport::Udp,
    }
}
