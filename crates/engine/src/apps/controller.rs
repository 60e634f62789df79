//! The third-party call controller (reference 002, sipXcallController): the engine
//! side of `POST`/`GET /callcontroller/{calling}/{called}`.
//!
//! An HTTP client asks us to connect two parties on behalf of an *agent*. We call the
//! calling party first, then either REFER it to the called party ("REFER mode", fire
//! and forget) or call the called party too and stitch the two SDP exchanges together
//! (RFC 3725 flow IV, "INVITE mode"; we stay in the signalling path, never in the
//! media path). Everything that happens on the wire is written into a *record*, keyed
//! `<agent identity>:<callingParty>:<calledParty>`, which the client reads back with
//! `GET` as long as the record lives (see [`RecordBook`] for its lifetime).
//!
//! What lives here:
//! - the request/response model the dialect (`api::callcontroller`) and the engine
//!   share: [`ControllerRequest`], [`TransferRequest`], [`ControllerRecord`],
//!   [`ControllerError`];
//! - [`RecordBook`]: the records by key with the reference's expiry rule and the
//!   checks a new request makes against an existing record (sans-IO, takes `now`);
//! - the pieces of the SIP flows that do not depend on the leg layer: the dummy SDP
//!   offer, the Request-URI of our INVITEs, the Refer-To, what a NOTIFY sipfrag asks
//!   of us, and SDP `o=` version arithmetic.
//!
//! The engine handle's methods for this application (see `crate::handle`):
//! ```text
//! EngineHandle::controller_call(ControllerRequest) -> Result<(), ControllerError>
//! EngineHandle::controller_transfer(TransferRequest) -> Result<(), ControllerError>
//! EngineHandle::controller_record(key: String) -> Result<Option<ControllerRecord>, EngineError>
//! ```
//! `controller_call` returns as soon as the first INVITE has left; the outcome is only
//! visible through `controller_record`.
//!
//! The SIP flows (`flows`) drive signalling-only dialogs: the controller never has
//! media, sends a dummy offer, holds an ACK until another party's answer exists and
//! records every response including 100 and 407, none of which a leg does. So it uses
//! the leg layer's raw signalling ([`crate::legs::RawSip`]): requests sent through
//! the leg layer's transaction layer, whose responses, timeouts and in-dialog
//! requests the engine routes back here.

use crate::engine::EngineError;
use crate::Engine;
use flows::Cx;

mod flows;
use sip::{Peer, Uri};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `sipMethod`: how the two parties get connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupMethod {
    /// Call the calling party, then REFER it to the called party (the default).
    Refer,
    /// Call both and pass the SDP between them (RFC 3725 flow IV).
    Invite,
}

/// Where one party's INVITE goes, as the dialect resolved it (the directory's routing
/// lookup, the gateway, or a SIP URI as given).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Send the INVITE to `uri`; `peer` when already known (a registered device),
    /// else the handle resolves the host of `uri`.
    Device { uri: Uri, peer: Option<Peer> },
    /// Nowhere to send it: recorded as if a proxy had answered `status reason` (a
    /// directory user with no registered device is `480 Temporarily Unavailable`).
    Unreachable { status: u16, reason: String },
}

/// `POST /callcontroller/{calling}/{called}` with `action=call`.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerRequest {
    /// `<agent identity>:<callingParty>:<calledParty>`.
    pub key: String,
    /// The agent's identity, `sip:<login>@<domain>`: From of our INVITEs.
    pub agent: Uri,
    /// The agent's display name (From of the first INVITE).
    pub agent_display: Option<String>,
    /// The agent's domain: the legs and the record belong to it.
    pub domain: String,
    /// The calling party as written in the path with `@<domain>` added when it had
    /// none: To of the first INVITE, `Referred-By` of the REFER.
    pub calling_party: String,
    pub calling: Target,
    /// The called party, likewise: the REFER's `Refer-To`, To of the second INVITE.
    pub called_party: String,
    /// Where the second INVITE goes (INVITE mode only).
    pub called: Target,
    pub method: SetupMethod,
    /// Ring time before CANCEL.
    pub timeout: Duration,
    /// Minimum lifetime of the record.
    pub result_cache_time: Duration,
    /// `Subject:` of the first INVITE.
    pub subject: Option<String>,
    /// `isForwardingAllowed=true`: leave `sipx-userforward=false` out of the first INVITE.
    pub forwarding_allowed: bool,
    /// `confpin`: `?X-ConfPin=<pin>` on the Refer-To.
    pub confpin: Option<String>,
}

/// `POST …?action=transfer&target=…` on an INVITE-mode record.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRequest {
    /// The record to transfer.
    pub key: String,
    /// The record that replaces it, `<agent>:<target>:<calledParty>`.
    pub new_key: String,
    /// The target as written, with `@<domain>` added when it had none.
    pub target_party: String,
    pub target: Target,
    pub result_cache_time: Duration,
}

/// Why the controller refused a request (the dialect renders each its own way).
#[derive(Debug, Clone, PartialEq)]
pub enum ControllerError {
    /// `invite` while an INVITE-mode record with the same key exists.
    CallInProgress,
    /// The existing record is REFER-mode and cannot say whether its call is live
    /// (the reference's `UnsupportedOperationException`).
    CannotQueryCallState,
    /// `transfer` with no record, or one of its legs has ended.
    CallNotFound,
    /// The flows are not available (see the module docs).
    Unavailable(String),
    Engine(EngineError),
}

impl From<EngineError> for ControllerError {
    fn from(e: EngineError) -> Self {
        ControllerError::Engine(e)
    }
}

impl std::fmt::Display for ControllerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControllerError::CallInProgress => f.write_str("call in progress"),
            ControllerError::CannotQueryCallState => f.write_str("cannot query call state"),
            ControllerError::CallNotFound => f.write_str("call not found"),
            ControllerError::Unavailable(m) => f.write_str(m),
            ControllerError::Engine(e) => write!(f, "{e}"),
        }
    }
}

/// One line of a REFER record: a response to one of our INVITEs, or a NOTIFY sipfrag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// When we processed it, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The INVITE dialog's Call-ID (its NOTIFYs share it).
    pub call_id: String,
    /// `INVITE` or `NOTIFY`.
    pub method: String,
    /// The response's status line (`SIP/2.0 180 Ringing`), or the trimmed sipfrag.
    pub status_line: String,
}

/// The state of one leg's dialog, as JAIN-SIP prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

impl DialogState {
    /// `Confirmed Dialog` and so on: what INVITE-mode records show.
    pub fn as_str(self) -> &'static str {
        match self {
            DialogState::Early => "Early Dialog",
            DialogState::Confirmed => "Confirmed Dialog",
            DialogState::Terminated => "Terminated Dialog",
        }
    }
}

/// One leg of an INVITE-mode record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogLine {
    /// Call-ID, local tag and remote tag, joined by `:`.
    pub dialog_id: String,
    pub local_party: String,
    pub remote_party: String,
    pub state: DialogState,
}

/// What `GET` shows of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRecord {
    pub method: SetupMethod,
    /// REFER mode: the status lines in arrival order.
    pub lines: Vec<StatusLine>,
    /// INVITE mode: one entry per leg.
    pub dialogs: Vec<DialogLine>,
    /// Every leg has ended.
    pub legs_over: bool,
}

/// A record and its lifetime.
#[derive(Debug, Clone)]
pub struct Record {
    /// Tells records of one key apart: a leg of a replaced record no longer counts.
    pub id: u64,
    pub created: Instant,
    pub cache_time: Duration,
    pub view: ControllerRecord,
    /// Legs of the record not yet ended.
    pub live_legs: usize,
    /// Some leg of the record has ended (transfer refuses such a record).
    pub any_leg_ended: bool,
}

impl Record {
    pub fn new(now: Instant, method: SetupMethod, cache_time: Duration) -> Record {
        Record {
            id: 0,
            created: now,
            cache_time,
            view: ControllerRecord { method, lines: Vec::new(), dialogs: Vec::new(), legs_over: false },
            live_legs: 0,
            any_leg_ended: false,
        }
    }

    /// When the record may be dropped: `resultCacheTime` after its creation, but never
    /// while a leg lives (None then).
    pub fn expires_at(&self) -> Option<Instant> {
        (self.live_legs == 0).then(|| self.created + self.cache_time)
    }
}

/// The records by key. Expiry (reference §5): a record is dropped once all its legs
/// have ended *and* `resultCacheTime` has passed since the request, so it lives for
/// max(resultCacheTime, life of its legs).
#[derive(Debug, Default)]
pub struct RecordBook {
    records: HashMap<String, Record>,
}

impl RecordBook {
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Record> {
        self.records.get_mut(key)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// May a new `action=call` with `method` go ahead on `key`? An INVITE-mode call
    /// refuses to start over an INVITE-mode record (even one whose legs are all gone,
    /// until it expires); a REFER-mode record cannot be asked. A REFER-mode call
    /// always replaces what was there.
    pub fn check_call(&self, key: &str, method: SetupMethod) -> Result<(), ControllerError> {
        match (method, self.records.get(key)) {
            (SetupMethod::Refer, _) | (_, None) => Ok(()),
            (SetupMethod::Invite, Some(r)) if r.view.method == SetupMethod::Refer => Err(ControllerError::CannotQueryCallState),
            (SetupMethod::Invite, Some(_)) => Err(ControllerError::CallInProgress),
        }
    }

    /// May `key` be transferred? Only an INVITE-mode record all of whose legs still live.
    pub fn check_transfer(&self, key: &str) -> Result<(), ControllerError> {
        match self.records.get(key) {
            None => Err(ControllerError::CallNotFound),
            Some(r) if r.view.method == SetupMethod::Refer => Err(ControllerError::CannotQueryCallState),
            Some(r) if r.any_leg_ended || r.live_legs == 0 => Err(ControllerError::CallNotFound),
            Some(_) => Ok(()),
        }
    }

    /// Puts a record under `key`, returning the one it replaces (whose legs the caller
    /// tears down).
    pub fn insert(&mut self, key: String, record: Record) -> Option<Record> {
        self.records.insert(key, record)
    }

    pub fn remove(&mut self, key: &str) -> Option<Record> {
        self.records.remove(key)
    }

    /// A leg of `key` began.
    pub fn leg_started(&mut self, key: &str) {
        if let Some(r) = self.records.get_mut(key) {
            r.live_legs += 1;
            r.view.legs_over = false;
        }
    }

    /// A leg of `key` ended.
    pub fn leg_ended(&mut self, key: &str) {
        if let Some(r) = self.records.get_mut(key) {
            r.live_legs = r.live_legs.saturating_sub(1);
            r.any_leg_ended = true;
            r.view.legs_over = r.live_legs == 0;
        }
    }

    /// Appends a status line to a REFER record.
    pub fn push_line(&mut self, key: &str, line: StatusLine) {
        if let Some(r) = self.records.get_mut(key) {
            r.view.lines.push(line);
        }
    }

    /// Appends a status line if `key` still holds record `id`.
    pub fn push_line_for(&mut self, key: &str, id: u64, line: StatusLine) {
        if let Some(r) = self.records.get_mut(key).filter(|r| r.id == id) {
            r.view.lines.push(line);
        }
    }

    /// Drops the records that are due.
    pub fn expire(&mut self, now: Instant) {
        self.records.retain(|_, r| r.expires_at().is_none_or(|at| at > now));
    }

    /// The next instant a record falls due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.records.values().filter_map(Record::expires_at).min()
    }
}

/// The controller application's state in the engine: the records and the legs.
#[derive(Debug, Default)]
pub struct Controller {
    pub records: RecordBook,
    flows: flows::Flows,
}

/// `action=call`.
pub(crate) fn call(engine: &mut Engine, now: Instant, req: ControllerRequest) -> Result<(), ControllerError> {
    if engine.legs.shutting_down {
        return Err(ControllerError::Engine(EngineError::ShuttingDown));
    }
    engine.with_controller(now, |c, cx| c.call(cx, now, req))
}

/// `action=transfer`.
pub(crate) fn transfer(engine: &mut Engine, now: Instant, req: TransferRequest) -> Result<(), ControllerError> {
    engine.with_controller(now, |c, cx| c.transfer(cx, now, req))
}

/// `GET`: the record under `key`, if it still lives.
pub(crate) fn record(engine: &mut Engine, now: Instant, key: &str) -> Option<ControllerRecord> {
    engine.controller.record(now, key)
}

impl Engine {
    /// Lends the controller the leg layer for one input, then routes what it produced.
    pub(crate) fn with_controller<R>(&mut self, now: Instant, f: impl FnOnce(&mut Controller, &mut Cx) -> R) -> R {
        let r = self.controller_input(f);
        self.dispatch(now);
        r
    }

    /// [`Engine::with_controller`] without the routing, for inputs that arrive while
    /// the engine is already routing.
    pub(crate) fn controller_input<R>(&mut self, f: impl FnOnce(&mut Controller, &mut Cx) -> R) -> R {
        let mut cx = Cx { legs: &mut self.legs };
        f(&mut self.controller, &mut cx)
    }
}

// ---- pieces of the SIP flows ---------------------------------------------------

/// The dummy SDP offer of the first INVITE: PCMU and telephone-event on port 2222,
/// where nothing listens (REFER mode hands the caller on before media matters; INVITE
/// mode replaces it with the called party's offer). CRLF lines.
pub fn dummy_offer(ip: &str, session_id: u64) -> String {
    format!(
        "v=0\r\no=- {session_id} 1 IN IP4 {ip}\r\ns=SipXconfig\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 2222 RTP/AVP 0 101\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
}

/// The proxy hints our INVITEs carry on their Request-URI: never to voicemail, and no
/// call forwarding unless the request allowed it. We are the proxy, so the hints
/// are also how we route: the routed device's contact keeps them for the record.
pub fn request_uri_params(forwarding_allowed: bool) -> Vec<(&'static str, &'static str)> {
    let mut p = vec![("sipx-noroute", "Voicemail")];
    if !forwarding_allowed {
        p.push(("sipx-userforward", "false"));
    }
    p.push(("sipxbridge-moh", "false"));
    p
}

/// `Refer-To` of the REFER: `<sip:<calledParty>[?X-ConfPin=<pin>]>`.
pub fn refer_to(called_party: &str, confpin: Option<&str>) -> String {
    match confpin {
        Some(pin) => format!("<sip:{called_party}?X-ConfPin={pin}>"),
        None => format!("<sip:{called_party}>"),
    }
}

/// What a NOTIFY of the REFER subscription asks of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Keep the caller leg for now.
    Wait,
    /// BYE the caller leg: the referred call rings, or the subscription ended.
    /// `busy`: the BYE carries `Reason: SIP/2.0;cause=486;text="Busy Here"`.
    Bye { busy: bool },
}

/// The caller's referred call rings (180/183) or the subscription is over: we step
/// out (reference §3, REFER mode step 4).
pub fn notify_outcome(sipfrag: &str, subscription_state: Option<&str>) -> NotifyOutcome {
    let body = sipfrag.to_ascii_lowercase();
    let terminated = subscription_state.is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
    if body.contains("180 ringing") || body.contains("183 session progress") || terminated {
        NotifyOutcome::Bye { busy: body.contains("busy here") }
    } else {
        NotifyOutcome::Wait
    }
}

/// The `Reason` of the BYE after a busy sipfrag (the protocol token really is the SIP
/// version string in the reference).
pub const BUSY_REASON: &str = "SIP/2.0;cause=486;text=\"Busy Here\"";

/// The `Reason` of the BYEs when the called party's 200 OK carries no SDP.
pub const NO_SDP_REASON: &str = "sipxrest;cause=1024;text=\"Expecting SDP Body\"";

/// Rewrites the version (third field) of an SDP's `o=` line by `delta`: INVITE mode
/// passes each party's SDP to the other as a new version of the controller's own
/// session (+1 toward the caller, -1 back toward the called party).
pub fn shift_origin_version(sdp: &str, delta: i64) -> String {
    let mut out = String::with_capacity(sdp.len() + 2);
    for line in sdp.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("o=") {
            let fields: Vec<&str> = rest.trim_end_matches(['\r', '\n']).split(' ').collect();
            if fields.len() >= 3 {
                if let Ok(v) = fields[2].parse::<i64>() {
                    let ending = &line[line.trim_end_matches(['\r', '\n']).len()..];
                    let mut f: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
                    f[2] = (v + delta).max(0).to_string();
                    out.push_str("o=");
                    out.push_str(&f.join(" "));
                    out.push_str(ending);
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(key: &str, now: Instant, method: SetupMethod, cache: u64) -> RecordBook {
        let mut b = RecordBook::default();
        b.insert(key.into(), Record::new(now, method, Duration::from_secs(cache)));
        b
    }

    #[test]
    fn a_record_lives_for_the_longer_of_cache_time_and_its_legs() {
        let t0 = Instant::now();
        let mut b = book_with("k", t0, SetupMethod::Refer, 10);
        b.leg_started("k");
        // cache time over, leg alive: kept
        b.expire(t0 + Duration::from_secs(20));
        assert!(b.get("k").is_some());
        assert_eq!(b.poll_timeout(), None);
        b.leg_ended("k");
        // the leg ended after the cache time: due at once
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        b.expire(t0 + Duration::from_secs(20));
        assert!(b.get("k").is_none());

        // the leg ends early: kept until creation + cache time
        let mut b = book_with("k", t0, SetupMethod::Refer, 10);
        b.leg_started("k");
        b.leg_ended("k");
        b.expire(t0 + Duration::from_secs(9));
        assert!(b.get("k").unwrap().view.legs_over);
        b.expire(t0 + Duration::from_secs(10));
        assert!(b.get("k").is_none());
    }

    #[test]
    fn new_calls_and_transfers_check_the_existing_record() {
        let t0 = Instant::now();
        let empty = RecordBook::default();
        assert_eq!(empty.check_call("k", SetupMethod::Invite), Ok(()));
        assert_eq!(empty.check_transfer("k"), Err(ControllerError::CallNotFound));

        let mut inv = book_with("k", t0, SetupMethod::Invite, 180);
        inv.leg_started("k");
        inv.leg_started("k");
        assert_eq!(inv.check_call("k", SetupMethod::Invite), Err(ControllerError::CallInProgress));
        assert_eq!(inv.check_call("k", SetupMethod::Refer), Ok(()));
        assert_eq!(inv.check_transfer("k"), Ok(()));
        inv.leg_ended("k");
        assert_eq!(inv.check_transfer("k"), Err(ControllerError::CallNotFound));
        inv.leg_ended("k");
        // all legs gone: still "in progress" until it expires
        assert_eq!(inv.check_call("k", SetupMethod::Invite), Err(ControllerError::CallInProgress));

        let refer = book_with("k", t0, SetupMethod::Refer, 180);
        assert_eq!(refer.check_call("k", SetupMethod::Invite), Err(ControllerError::CannotQueryCallState));
        assert_eq!(refer.check_transfer("k"), Err(ControllerError::CannotQueryCallState));
        assert_eq!(refer.check_call("k", SetupMethod::Refer), Ok(()));
    }

    #[test]
    fn dummy_offer_is_the_reference_body() {
        assert_eq!(
            dummy_offer("10.0.0.1", 42),
            "v=0\r\no=- 42 1 IN IP4 10.0.0.1\r\ns=SipXconfig\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 2222 RTP/AVP 0 101\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        );
    }

    #[test]
    fn request_uri_hints_and_refer_to() {
        assert_eq!(request_uri_params(false), vec![("sipx-noroute", "Voicemail"), ("sipx-userforward", "false"), ("sipxbridge-moh", "false")]);
        assert_eq!(request_uri_params(true), vec![("sipx-noroute", "Voicemail"), ("sipxbridge-moh", "false")]);
        assert_eq!(refer_to("bob@alpha.test", None), "<sip:bob@alpha.test>");
        assert_eq!(refer_to("100@alpha.test", Some("1234")), "<sip:100@alpha.test?X-ConfPin=1234>");
    }

    #[test]
    fn notify_ringing_or_terminated_means_bye() {
        assert_eq!(notify_outcome("SIP/2.0 100 Trying", Some("active;expires=60")), NotifyOutcome::Wait);
        assert_eq!(notify_outcome("SIP/2.0 180 Ringing\r\n", Some("active")), NotifyOutcome::Bye { busy: false });
        assert_eq!(notify_outcome("sip/2.0 183 session progress", None), NotifyOutcome::Bye { busy: false });
        assert_eq!(notify_outcome("SIP/2.0 200 OK", Some("terminated;reason=noresource")), NotifyOutcome::Bye { busy: false });
        assert_eq!(notify_outcome("SIP/2.0 486 Busy Here", Some("terminated")), NotifyOutcome::Bye { busy: true });
        assert_eq!(notify_outcome("SIP/2.0 486 Busy Here", Some("active")), NotifyOutcome::Wait);
    }

    #[test]
    fn origin_version_moves_by_delta() {
        let sdp = "v=0\r\no=alice 2890844526 7 IN IP4 10.0.0.1\r\ns=-\r\n";
        assert_eq!(shift_origin_version(sdp, 1), "v=0\r\no=alice 2890844526 8 IN IP4 10.0.0.1\r\ns=-\r\n");
        assert_eq!(shift_origin_version(sdp, -1), "v=0\r\no=alice 2890844526 6 IN IP4 10.0.0.1\r\ns=-\r\n");
        assert_eq!(shift_origin_version("v=0\no=- 1 0 IN IP4 x\n", -1), "v=0\no=- 1 0 IN IP4 x\n");
        assert_eq!(shift_origin_version("o=broken\r\n", 1), "o=broken\r\n");
    }
}
