//! The leg layer: every SIP dialog Switchboard is one end of, with its media.
//!
//! [`Legs`] owns the transaction layer, the leg table and the RTP ports. It knows SIP
//! (INVITE in and out, provisional and final answers, ACK, CANCEL, BYE, re-INVITE,
//! in-dialog requests) and offer/answer, but not what a call is *for*: whether a leg
//! goes into a room, is bridged to another leg or hears a prompt is decided by the
//! application that owns it ([`crate::apps`]). Applications drive legs through the
//! methods here and hear back through [`LegEvent`]s, which the engine routes to each
//! leg's [`Owner`](crate::apps::Owner).
//!
//! Sans-IO like everything in the engine: transmissions, public events and leg events
//! are queued, and timers are deadlines the engine reports through `poll_timeout`.

pub mod leg;
pub(crate) mod refer;
pub(crate) mod session;
#[cfg(test)]
mod midcall_tests;

/// The leg layer for unit tests: a real media runtime on a block of test ports (it
/// binds what SDP names; no RTP flows) and the default config.
#[cfg(test)]
pub(crate) fn legs_for_tests() -> (Legs, media::MediaEngine, testports::PortBlock) {
    use std::net::{IpAddr, Ipv4Addr};
    let block = testports::PortBlock::take();
    let media = media::MediaEngine::start(
        media::MediaConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), rtp_ports: block.range(0, 4), workers: 1, ..Default::default() },
        Box::new(|_| {}),
    )
    .expect("media runtime");
    let legs = Legs::new(std::sync::Arc::new(crate::engine::EngineConfig::default()), media.handle());
    (legs, media, block)
}
pub(crate) use session::apply_negotiation;
pub use refer::{DtmfMethod, Replaces};
mod uac;
pub use uac::DigestCredentials;
mod uas;

pub use leg::*;

use crate::apps::Owner;
use crate::engine::{EngineConfig, EngineError, EngineEvent, ALLOW};
use media::{Attachment, MediaHandle};
use sip::dialog::{new_branch, random_token, Dialog, DialogId};
use sip::sdp::{LocalCapabilities, SessionDescription};
use sip::transaction::{Output, TransactionLayer, TxEvent, TxId};
use sip::{Headers, Message, Method, NameAddr, Param, Peer, Request, Response, Transport, Uri, Via};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::{debug, info, warn};

/// What happened to a leg, for the application that owns it.
#[derive(Debug)]
pub(crate) enum LegEvent {
    /// A provisional response (101–199) to our INVITE. `early_media`: it carried SDP.
    Progress { leg: LegId, status: u16, reason: String, early_media: bool },
    /// Our INVITE was answered (2xx) and the media negotiated.
    Answered { leg: LegId },
    /// The leg is over. `by_remote`: the other party ended it (BYE, CANCEL, a failure
    /// response to our INVITE); false when we did (hangup, timeout).
    Ended { leg: LegId, status: u16, reason: String, by_remote: bool },
    /// The remote party changed the session (re-INVITE or UPDATE): e.g. it put us on
    /// hold (`held_by_remote`) or took us off.
    SessionChanged { leg: LegId, held_by_remote: bool },
    /// An in-dialog request the leg layer does not handle itself (REFER, NOTIFY, INFO,
    /// MESSAGE). The owner must answer it with [`Legs::respond`].
    Request { leg: LegId, tx: TxId, req: Request },
    /// The final response to a non-INVITE request the owner sent with
    /// [`Legs::send_in_dialog`]; `resp` None: it timed out (status 408).
    Response { leg: LegId, method: Method, status: u16, resp: Option<Response> },
    /// A digit from the leg's media (RFC 4733).
    Dtmf { leg: LegId, digit: char, duration_ms: u32 },
    /// A timer the owner set with [`Legs::set_timer`].
    Timer { leg: LegId, tag: u32 },
    /// The outcome of our hold or resume re-INVITE ([`Legs::hold`], [`Legs::unhold`]):
    /// `status` 200 when the session changed, else the failure (the session is as before).
    HoldResult { leg: LegId, hold: bool, status: u16 },
    /// Progress of a REFER we sent ([`Legs::refer`]): the status line of a NOTIFY's
    /// sipfrag, or the REFER's own failure. `done`: the subscription is over.
    ReferProgress { leg: LegId, status: u16, reason: String, done: bool },
    /// The remote party asked us to call `target` (REFER, already answered 202 with a
    /// `100 Trying` NOTIFY). The owner reports the outcome with [`Legs::notify_refer`].
    Referred { leg: LegId, target: sip::Uri, replaces: Option<Replaces>, referred_by: Option<String> },
    /// The ended leg is forgotten now (its retention is over).
    Forgotten { leg: LegId, owner: Owner },
    /// A prompt played to the leg ([`Legs::play`]) is over.
    PromptEnded { leg: LegId, prompt: media::PromptId, end: media::PromptEnd },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LegTimer {
    /// Dial-out: the requested call duration is over; hang up.
    HangupAfter,
    /// Ended leg's retention is over; forget it.
    Purge,
    /// The owner's timer with this tag.
    Owner(u32),
    /// Our re-INVITE met glare (491): send it again.
    RetryReinvite { hold: bool, inactive: bool },
}

/// A SIP event of a signalling-only dialog an application drives itself, with no leg
/// and no media: the third-party call controller's (`apps::controller`). Its client
/// transactions are sent with [`Legs::send_raw_request`] and its dialogs claimed with
/// [`Legs::claim_dialog`]; everything else about them is the application's business.
#[derive(Debug)]
pub(crate) enum RawSip {
    Response { tx: TxId, resp: Response },
    Timeout { tx: TxId },
    Terminated { tx: TxId },
    /// An in-dialog request of a claimed dialog; the application answers it.
    Request { tx: TxId, req: Request },
}

/// A request that is not for any leg: REGISTER, or an INVITE starting a new call. The
/// engine routes it (registrar, or an application).
pub(crate) struct NewRequest {
    pub tx: TxId,
    pub req: Request,
    pub from: Peer,
}

pub struct Legs {
    pub(crate) cfg: Arc<EngineConfig>,
    pub(crate) txl: TransactionLayer,
    pub(crate) media: MediaHandle,
    pub(crate) caps: LocalCapabilities,
    legs: HashMap<LegId, Leg>,
    by_dialog: HashMap<DialogId, LegId>,
    by_tx: HashMap<TxId, LegId>,
    by_media: HashMap<media::LegId, LegId>,
    /// Media released, its final counters not yet reported (see `MediaEvent::Released`).
    released_media: HashMap<media::LegId, LegId>,
    /// In-dialog non-INVITE requests we sent for an owner (REFER, NOTIFY, INFO).
    by_request_tx: HashMap<TxId, (LegId, Method)>,
    timers: BinaryHeap<Reverse<(Instant, LegTimer, LegId)>>,
    /// Ended legs, oldest first, for the `ended_retention_max` cap (may hold ids the
    /// Purge timer already forgot).
    ended: VecDeque<LegId>,
    transmits: VecDeque<(Peer, Arc<[u8]>)>,
    events: VecDeque<LegEvent>,
    /// Media events about rooms (see [`Legs::poll_room_media`]).
    room_media: VecDeque<media::MediaEvent>,
    requests: VecDeque<NewRequest>,
    /// What the APIs and the recorder hear, from the legs and the applications, in the
    /// order it happened (a room's start before its participants' ends).
    pub(crate) public: VecDeque<EngineEvent>,
    /// BYE transactions awaiting their final response (graceful shutdown waits).
    byes: HashSet<TxId>,
    pub(crate) shutting_down: bool,
    /// Signalling-only transactions and dialogs (see [`RawSip`]).
    raw_tx: HashSet<TxId>,
    raw_dialogs: HashSet<DialogId>,
    raw: VecDeque<RawSip>,
}

impl Legs {
    pub(crate) fn new(cfg: Arc<EngineConfig>, media: MediaHandle) -> Legs {
        Legs {
            txl: TransactionLayer::new(cfg.timers.clone()),
            cfg,
            media,
            caps: crate::engine::local_capabilities(),
            legs: HashMap::new(),
            by_dialog: HashMap::new(),
            by_tx: HashMap::new(),
            by_media: HashMap::new(),
            released_media: HashMap::new(),
            by_request_tx: HashMap::new(),
            timers: BinaryHeap::new(),
            ended: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            room_media: VecDeque::new(),
            requests: VecDeque::new(),
            public: VecDeque::new(),
            byes: HashSet::new(),
            shutting_down: false,
            raw_tx: HashSet::new(),
            raw_dialogs: HashSet::new(),
            raw: VecDeque::new(),
        }
    }

    // ---- inputs (from the engine) ---------------------------------------------------

    pub(crate) fn handle_sip(&mut self, now: Instant, msg: Message, from: Peer) {
        self.txl.handle_message(now, msg, from);
        self.pump(now);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.txl.handle_timeout(now);
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, timer, id)) = self.timers.pop().expect("peeked");
            match timer {
                LegTimer::HangupAfter => {
                    let _ = self.hangup(now, &id);
                }
                LegTimer::Purge => self.purge(&id),
                LegTimer::RetryReinvite { hold, inactive } => {
                    if let Err(e) = self.send_reinvite(now, &id, hold, inactive) {
                        self.events.push_back(LegEvent::HoldResult { leg: id.clone(), hold, status: 491 });
                        debug!(leg = %id, error = %e, "re-INVITE retry abandoned");
                    }
                }
                LegTimer::Owner(tag) => {
                    if self.legs.contains_key(&id) {
                        self.events.push_back(LegEvent::Timer { leg: id, tag });
                    }
                }
            }
        }
        self.pump(now);
    }

    pub(crate) fn handle_media_event(&mut self, now: Instant, ev: media::MediaEvent) {
        match ev {
            media::MediaEvent::RtpTimeout { leg } => {
                if let Some(id) = self.by_media.get(&leg).cloned() {
                    info!(leg = %id, "no RTP for too long: hanging up");
                    let _ = self.hangup(now, &id);
                }
            }
            media::MediaEvent::Talking { leg, talking } => {
                if let Some(l) = self.by_media.get(&leg).and_then(|id| self.legs.get_mut(id)) {
                    l.talking = talking;
                }
            }
            media::MediaEvent::Dtmf { leg, digit, duration_ms } => {
                if let Some(id) = self.by_media.get(&leg).cloned() {
                    self.on_digit(&id, digit, duration_ms);
                }
            }
            media::MediaEvent::PromptEnded { target: media::PromptTarget::Leg(leg), prompt, end } => {
                if let Some(id) = self.by_media.get(&leg).cloned() {
                    self.events.push_back(LegEvent::PromptEnded { leg: id, prompt, end });
                }
            }
            // About rooms, not legs: for the room application (see `poll_room_media`).
            ev @ (media::MediaEvent::PromptEnded { target: media::PromptTarget::Room(_), .. } | media::MediaEvent::RecordingFinished { .. }) => {
                self.room_media.push_back(ev);
            }
            media::MediaEvent::Released { leg, stats: s } => {
                let id = self.released_media.remove(&leg);
                info!(
                    leg = id.as_ref().map(|l| l.to_string()).unwrap_or_default(),
                    media_leg = leg.0,
                    received = s.received,
                    sent = s.sent,
                    lost = s.lost,
                    late = s.late,
                    discarded = s.discarded,
                    resyncs = s.resyncs,
                    jitter_ms = s.jitter_us as f64 / 1000.0,
                    playout_delay_ms = s.target_delay_ms,
                    "media ended"
                );
            }
            _ => {}
        }
        self.pump(now);
    }

    /// A digit from the leg's remote party, in the media (RFC 4733) or by INFO: the same
    /// event either way, for the APIs and for the leg's owner (menus, PIN entry).
    fn on_digit(&mut self, id: &LegId, digit: char, duration_ms: u32) {
        if let Some(l) = self.legs.get(id) {
            let (leg_id, domain) = (l.id.clone(), l.domain.clone());
            self.public.push_back(EngineEvent::Dtmf { leg_id: leg_id.clone(), digit, duration_ms, domain });
            self.events.push_back(LegEvent::Dtmf { leg: leg_id, digit, duration_ms });
        }
    }

    /// Media events about rooms rather than legs (room prompts, recording files).
    pub(crate) fn poll_room_media(&mut self) -> Option<media::MediaEvent> {
        self.room_media.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    pub(crate) fn poll_raw(&mut self) -> Option<RawSip> {
        self.raw.pop_front()
    }

    /// Sends a request outside any leg; what answers it comes back as [`RawSip`].
    pub(crate) fn send_raw_request(&mut self, now: Instant, req: Request, to: Peer) -> TxId {
        let tx = self.txl.send_request(now, req, to);
        self.raw_tx.insert(tx);
        tx
    }

    /// In-dialog requests of `id` go to [`RawSip`] from now on.
    pub(crate) fn claim_dialog(&mut self, id: DialogId) {
        self.raw_dialogs.insert(id);
    }

    pub(crate) fn release_dialog(&mut self, id: &DialogId) {
        self.raw_dialogs.remove(id);
    }

    pub(crate) fn poll_request(&mut self) -> Option<NewRequest> {
        self.requests.pop_front()
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<(Peer, Arc<[u8]>)> {
        self.transmits.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.timers.peek().map(|Reverse((at, _, _))| *at);
        match (ours, self.txl.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- queries ----------------------------------------------------------------------

    pub(crate) fn get(&self, id: &LegId) -> Option<&Leg> {
        self.legs.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &LegId) -> Option<&mut Leg> {
        self.legs.get_mut(id)
    }

    pub fn info(&self, id: &LegId) -> Option<LegInfo> {
        self.legs.get(id).map(Leg::info)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Leg> {
        self.legs.values()
    }

    pub fn len(&self) -> usize {
        self.legs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    pub fn live(&self) -> usize {
        self.legs.values().filter(|l| !l.is_over()).count()
    }

    pub fn byes_in_flight(&self) -> usize {
        self.byes.len()
    }

    /// Whether `call_id` is a call we placed (our own INVITE looping back to us).
    pub(crate) fn is_our_outbound_call(&self, call_id: &str) -> bool {
        self.legs.values().any(|l| l.direction == Direction::Outbound && l.call_id == call_id)
    }

    // ---- what applications do with legs --------------------------------------------------

    /// Connects an answered leg's media to what its owner decided (room, echo, ...).
    /// False if the leg has no media.
    pub(crate) fn attach(&mut self, id: &LegId, a: Attachment) -> bool {
        match self.legs.get(id).and_then(|l| l.media) {
            Some(m) => {
                self.media.attach(m, a);
                true
            }
            None => false,
        }
    }

    pub(crate) fn media_of(&self, id: &LegId) -> Option<media::LegId> {
        self.legs.get(id).and_then(|l| l.media)
    }

    /// Plays a prompt to the leg (over its room, if it is in one). None: the leg has no
    /// media. The end comes as [`LegEvent::PromptEnded`].
    pub(crate) fn play(&mut self, id: &LegId, spec: media::PromptSpec) -> Option<media::PromptId> {
        let m = self.media_of(id)?;
        Some(self.media.play(m, spec))
    }

    /// Stops the leg's prompt if it is `prompt` (None: whichever plays).
    pub(crate) fn stop_prompt(&mut self, id: &LegId, prompt: Option<media::PromptId>) {
        if let Some(m) = self.media_of(id) {
            self.media.stop_prompt(m, prompt);
        }
    }

    pub(crate) fn set_timer(&mut self, id: &LegId, at: Instant, tag: u32) {
        self.timers.push(Reverse((at, LegTimer::Owner(tag), id.clone())));
    }

    /// Ends a leg the polite way for its state: CANCEL while our INVITE is unanswered,
    /// 480 while we ring, BYE once answered. An ended leg is [`EngineError::LegEnded`].
    pub fn hangup(&mut self, now: Instant, id: &LegId) -> Result<LegInfo, EngineError> {
        self.hangup_with(now, id, None)
    }

    /// As [`Legs::hangup`], with the status and reason the leg's record shows.
    pub(crate) fn hangup_with(&mut self, now: Instant, id: &LegId, why: Option<(u16, &str)>) -> Result<LegInfo, EngineError> {
        let leg = self.legs.get_mut(id).ok_or(EngineError::LegNotFound)?;
        match (leg.direction, leg.state) {
            (_, LegState::Ended) => return Err(EngineError::LegEnded),
            (Direction::Outbound, LegState::Calling | LegState::Ringing) => {
                // The 487 to our INVITE ends the leg; if a 2xx crosses the CANCEL we
                // ACK and BYE it (see on_invite_success).
                leg.cancel_requested = true;
                if let Some(tx) = leg.invite_tx {
                    self.txl.cancel(now, tx);
                }
            }
            (Direction::Inbound, LegState::Calling | LegState::Ringing) => {
                let (status, reason) = why.unwrap_or((480, "Hung up before answer"));
                self.reject(now, id, if (300..700).contains(&status) { status } else { 480 }, None);
                self.end_leg(now, id, status, reason, false);
            }
            (_, LegState::Active | LegState::Held) => {
                self.send_bye(now, id);
                let (status, reason) = why.unwrap_or((200, "Hung up by Switchboard"));
                self.end_leg(now, id, status, reason, false);
            }
        }
        self.pump(now);
        self.info(id).ok_or(EngineError::LegNotFound)
    }

    /// Hangs up every live leg and refuses new calls from now on.
    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        let ids: Vec<LegId> = self.legs.values().filter(|l| !l.is_over()).map(|l| l.id.clone()).collect();
        for id in ids {
            let _ = self.hangup(now, &id);
        }
        self.pump(now);
    }

    /// Answers an in-dialog request an owner was given in [`LegEvent::Request`].
    pub(crate) fn respond(&mut self, now: Instant, tx: TxId, req: &Request, status: u16) {
        let resp = self.response(req, status, None);
        self.txl.send_response(now, tx, resp);
        self.pump(now);
    }

    /// Sends a request inside the leg's dialog (REFER, NOTIFY, INFO, MESSAGE). The
    /// final response comes back as [`LegEvent::Response`].
    pub(crate) fn send_in_dialog(&mut self, now: Instant, id: &LegId, method: Method, extra: Vec<(String, String)>, body: Option<(&str, Vec<u8>)>) -> Result<(), EngineError> {
        let via = self.via(self.legs.get(id).ok_or(EngineError::LegNotFound)?.peer.transport);
        let leg = self.legs.get_mut(id).ok_or(EngineError::LegNotFound)?;
        if leg.is_over() {
            return Err(EngineError::LegEnded);
        }
        let fallback = leg.peer;
        let Some(dialog) = leg.dialog.as_mut() else {
            return Err(EngineError::Conflict("the call is not answered yet".into()));
        };
        let mut req = dialog.request(method.clone(), via);
        for (name, value) in extra {
            req.headers.push(&name, value);
        }
        if let Some((ct, bytes)) = body {
            req.headers.content_type = Some(ct.to_owned());
            req.body = bytes;
        }
        let peer = next_hop_peer(dialog, fallback);
        self.common_headers(&mut req.headers);
        let tx = self.txl.send_request(now, req, peer);
        self.by_request_tx.insert(tx, (id.clone(), method));
        self.pump(now);
        Ok(())
    }

    // ---- transaction-layer events -------------------------------------------------------

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
        let ev = match ev {
            TxEvent::Response { tx, resp } if self.raw_tx.contains(&tx) => return self.raw.push_back(RawSip::Response { tx, resp }),
            TxEvent::Timeout { tx } if self.raw_tx.remove(&tx) => return self.raw.push_back(RawSip::Timeout { tx }),
            TxEvent::Terminated { tx } if self.raw_tx.remove(&tx) => return self.raw.push_back(RawSip::Terminated { tx }),
            ev => ev,
        };
        match ev {
            TxEvent::Request { tx, req, from } => self.on_request(now, tx, req, from),
            TxEvent::Ack { req, .. } => self.on_ack(now, req),
            TxEvent::Cancelled { invite_tx, .. } => {
                if let Some(id) = self.by_tx.remove(&invite_tx) {
                    if let Some(leg) = self.legs.get_mut(&id) {
                        leg.invite_tx = None;
                    }
                    self.end_leg(now, &id, 487, "Cancelled by caller", true);
                }
            }
            TxEvent::Response { tx, resp } => {
                if resp.headers.cseq.method == Method::Bye && resp.status >= 200 {
                    self.byes.remove(&tx);
                }
                if resp.headers.cseq.method == Method::Invite {
                    if let Some(id) = self.by_tx.get(&tx).cloned() {
                        if self.is_our_reinvite(&id, tx) {
                            self.on_reinvite_response(now, &id, resp);
                        } else {
                            self.on_invite_response(now, tx, &id, resp);
                        }
                    }
                } else if resp.status >= 200 {
                    if let Some((id, method)) = self.by_request_tx.remove(&tx) {
                        if method == Method::Refer {
                            self.on_refer_response(&id, resp.status, &resp.reason);
                        } else {
                            self.events.push_back(LegEvent::Response { leg: id, method, status: resp.status, resp: Some(resp) });
                        }
                    }
                }
            }
            TxEvent::Timeout { tx } => {
                self.byes.remove(&tx);
                if let Some((id, method)) = self.by_request_tx.remove(&tx) {
                    // Reported as a 408, as RFC 3261 §8.1.3.1 has a UA do.
                    debug!(leg = %id, "in-dialog request timed out");
                    if method == Method::Refer {
                        self.on_refer_response(&id, 408, "Request Timeout");
                    } else {
                        self.events.push_back(LegEvent::Response { leg: id, method, status: 408, resp: None });
                    }
                }
                if let Some(id) = self.by_tx.remove(&tx) {
                    if self.is_our_reinvite(&id, tx) {
                        self.on_reinvite_timeout(now, &id);
                    }
                    let is_invite = self.legs.get(&id).is_some_and(|l| l.invite_tx == Some(tx));
                    if is_invite {
                        self.end_leg(now, &id, 408, "No answer from the remote party", true);
                    }
                }
            }
            TxEvent::AckTimeout { tx, .. } => {
                // The INVITE carries no To tag, so the leg is found by its transaction.
                if let Some(id) = self.by_tx.remove(&tx) {
                    if self.legs.get(&id).is_some_and(|l| !l.is_over()) {
                        warn!(leg = %id, "no ACK for our 2xx: sending BYE");
                        self.send_bye(now, &id);
                        self.end_leg(now, &id, 408, "ACK never arrived", false);
                    }
                }
            }
            TxEvent::Terminated { tx } => {
                self.by_tx.remove(&tx);
                self.by_request_tx.remove(&tx);
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
        if in_dialog && !self.raw_dialogs.is_empty() && DialogId::for_incoming(&req).is_some_and(|d| self.raw_dialogs.contains(&d)) {
            return self.raw.push_back(RawSip::Request { tx, req });
        }
        match (&req.method, in_dialog) {
            (Method::Register, _) | (Method::Invite | Method::Message, false) => self.requests.push_back(NewRequest { tx, req, from }),
            (Method::Options, false) => self.reply(now, tx, &req, 200, None),
            (Method::Invite | Method::Bye | Method::Update | Method::Info | Method::Options | Method::Refer | Method::Notify | Method::Message, true) => {
                self.on_in_dialog(now, tx, req)
            }
            (Method::Bye | Method::Update | Method::Info | Method::Prack | Method::Notify | Method::Refer, false) => {
                self.reply(now, tx, &req, 481, None)
            }
            (Method::Other(_), _) => self.reply(now, tx, &req, 501, None),
            _ => self.reply(now, tx, &req, 405, None),
        }
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
                self.end_leg(now, &id, 200, "Remote party hung up", true);
            }
            Method::Invite | Method::Update => self.on_session_refresh(now, tx, &id, req),
            Method::Options => self.reply(now, tx, &req, 200, None),
            Method::Refer => self.on_refer(now, tx, &id, req),
            Method::Notify if self.legs.get(&id).is_some_and(|l| l.refer.outgoing) && refer::is_refer_notify(&req) => {
                self.on_refer_notify(now, tx, &id, req)
            }
            Method::Info => match refer::info_digit(&req) {
                Some(Some((digit, duration_ms))) => {
                    self.reply(now, tx, &req, 200, None);
                    self.on_digit(&id, digit, duration_ms);
                }
                Some(None) => self.reply(now, tx, &req, 400, None),
                None => self.events.push_back(LegEvent::Request { leg: id, tx, req }),
            },
            _ => self.events.push_back(LegEvent::Request { leg: id, tx, req }),
        }
    }

    // ---- leg bookkeeping --------------------------------------------------------------

    pub(crate) fn insert_leg(&mut self, mut leg: Leg) {
        if leg.domain.is_empty() {
            leg.domain = self.cfg.domain.to_ascii_lowercase();
        }
        let info = leg.info();
        debug!(leg = %leg.id, call_id = %leg.call_id, "leg started");
        if let Some(tx) = leg.invite_tx {
            self.by_tx.insert(tx, leg.id.clone());
        }
        if let Some(m) = leg.media {
            self.by_media.insert(m, leg.id.clone());
        }
        self.legs.insert(leg.id.clone(), leg);
        self.public.push_back(EngineEvent::LegStarted(info));
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
            self.events.push_back(LegEvent::Forgotten { leg: leg.id, owner: leg.owner });
        }
    }

    fn release_media(&mut self, leg: &mut Leg) {
        if let Some(m) = leg.media.take() {
            self.media.release(m);
            if let Some(id) = self.by_media.remove(&m) {
                // Until the media core's Released event, which names the media leg only.
                self.released_media.insert(m, id);
            }
        }
    }

    pub(crate) fn end_leg(&mut self, now: Instant, id: &LegId, status: u16, reason: &str, by_remote: bool) {
        if let Some(mut leg) = self.legs.remove(id) {
            self.finish(now, &mut leg, status, reason, by_remote);
            self.legs.insert(id.clone(), leg);
        }
    }

    /// Marks a leg ended, frees its media, schedules it to be forgotten and tells its owner.
    fn finish(&mut self, now: Instant, leg: &mut Leg, status: u16, reason: &str, by_remote: bool) {
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
        self.timers.push(Reverse((now + self.cfg.ended_retention, LegTimer::Purge, leg.id.clone())));
        self.public.push_back(EngineEvent::LegEnded(leg.info()));
        self.events.push_back(LegEvent::Ended { leg: leg.id.clone(), status, reason: reason.to_owned(), by_remote });
        // What an ended leg still needs: ids, tags, URIs and times for the APIs, and
        // its dialog to answer late requests. Not the SDP.
        leg.invite.body = Vec::new();
        leg.pending_offer = None;
        leg.remote_offer = None;
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
        let peer = next_hop_peer(leg.dialog.as_ref().expect("present"), leg.peer);
        let tx = self.txl.send_request(now, bye, peer);
        self.byes.insert(tx);
    }

    // ---- message helpers ----------------------------------------------------------------

    pub(crate) fn via(&self, transport: Transport) -> Via {
        Via {
            transport,
            host: self.cfg.sip_addr.ip().to_string(),
            port: Some(self.cfg.sip_addr.port()),
            params: vec![Param::new("branch", Some(new_branch())), Param::new("rport", None::<String>)],
        }
    }

    pub(crate) fn contact(&self, transport: Transport) -> NameAddr {
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

    pub(crate) fn common_headers(&self, h: &mut Headers) {
        h.push("User-Agent", self.cfg.user_agent.clone());
        h.push("Allow", ALLOW);
    }

    pub(crate) fn response(&self, req: &Request, status: u16, to_tag: Option<&str>) -> Response {
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

    pub(crate) fn send_response(&mut self, now: Instant, tx: TxId, resp: Response) {
        self.txl.send_response(now, tx, resp);
    }

    pub(crate) fn reply(&mut self, now: Instant, tx: TxId, req: &Request, status: u16, to_tag: Option<&str>) {
        let tag = to_tag.map(str::to_owned).unwrap_or_else(|| random_token(10));
        let resp = self.response(req, status, Some(&tag));
        self.txl.send_response(now, tx, resp);
    }

    pub(crate) fn reply_reason(&mut self, now: Instant, tx: TxId, req: &Request, status: u16, to_tag: Option<&str>, reason: &str) {
        let tag = to_tag.map(str::to_owned).unwrap_or_else(|| random_token(10));
        let mut resp = self.response(req, status, Some(&tag));
        resp.reason = reason.to_owned();
        self.txl.send_response(now, tx, resp);
    }
}

/// Where an in-dialog request goes. On reliable transports we reuse the connection
/// the dialog started on (many UAs, SIPp among them, put no `transport=tcp` in
/// their Contact); on UDP we follow the route set / remote target (§8.1.2).
pub(crate) fn next_hop_peer(dialog: &Dialog, fallback: Peer) -> Peer {
    if fallback.transport.is_reliable() {
        return fallback;
    }
    resolve_literal(dialog.next_hop(), fallback.transport).unwrap_or(fallback)
}

/// The SDP offer or answer in a message body, if any. Err carries a 400 reason.
pub(crate) fn parse_sdp_body(h: &Headers, body: &[u8]) -> Result<Option<SessionDescription>, String> {
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
