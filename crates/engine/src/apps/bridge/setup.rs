//! Setting calls up and ending them: the caller's leg, forking to every registered
//! contact of the callee, ringback (180 passed on, 183 with early media), the first
//! answer wins and the other forks are cancelled, failures mapped back to the caller,
//! the ring time, and the end of both legs when either side hangs up.
//!
//! A call placed by an API (`makeCall`, click-to-call) rings the *caller* side first
//! (`caller_forks`); when one of those answers it becomes the caller's leg and the
//! callee side is rung as for any other call (`pending_callee`).
//!
//! Redirect and intercept of an unanswered call are here too: they change who is rung.

use super::{Bridges, Call};
use crate::apps::Owner;
use crate::call::*;
use crate::engine::{DialOut, EngineError, EngineEvent};
use crate::legs::{Direction, LegEvent, LegId, Legs, Service};
use media::Attachment;
use sip::{Peer, Request, Uri};
use std::time::{Instant, SystemTime};
use tracing::info;

/// Timer tags the setup code uses on legs it owns (1..=9; lane H's control code uses others).
pub(crate) const RING_TIMEOUT: u32 = 1;
/// An API-placed call's callee side has rung too long (set on the caller's leg).
pub(crate) const CALLEE_RING_TIMEOUT: u32 = 2;
/// The woken app had its time to register (`wake_wait`).
pub(crate) const WAKE_TIMEOUT: u32 = 3;
/// The callee's voicemail delay (MX `vmDelay`) is over: voicemail takes the call.
pub(crate) const VOICEMAIL_TIMEOUT: u32 = 4;

/// Somewhere to send an INVITE for one party: a registered contact, a URI, the gateway.
#[derive(Debug, Clone)]
pub struct Target {
    pub uri: Uri,
    pub peer: Peer,
    /// The peer is trusted (a gateway or a trusted network): it gets P-Asserted-Identity.
    pub trusted: bool,
}

/// How the other party is presented on the INVITEs we send (caller ID).
#[derive(Debug, Clone, Default)]
pub struct CallerId {
    /// User part of our From (the extension or login of the presented party).
    pub user: Option<String>,
    /// From display name.
    pub display: Option<String>,
}

/// The calls one party is reached by: its description and where to ring it.
#[derive(Debug, Clone)]
pub struct Reach {
    pub party: Party,
    pub targets: Vec<Target>,
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Setup state a call keeps beyond the shared [`Call`] fields.
#[derive(Debug, Default)]
pub(crate) struct Setup {
    /// API-placed calls: the legs ringing the caller side.
    pub caller_forks: Vec<LegId>,
    /// API-placed calls: who to ring once the caller side answers.
    pub pending_callee: Option<Reach>,
    /// How the caller is presented to the callee's devices.
    pub caller_id: CallerId,
    /// How the callee is presented to the caller (API-placed calls).
    pub callee_id: CallerId,
    /// Final statuses of forks that failed, for the answer to the caller.
    pub fork_statuses: Vec<u16>,
    /// The fork whose early media the caller hears.
    pub early_fork: Option<LegId>,
    /// 180/183 passed on (CallRinging emitted).
    pub alerted: bool,
    /// An intercepting device being rung: when it answers, it is the callee.
    pub interceptor: Option<(LegId, Party)>,
    /// Waiting for the callee's app, woken by a push, to register: the user, and the
    /// contacts already rung (a refresh of one of those is not the app).
    pub waking: Option<(crate::users::UserId, Vec<String>)>,
    /// The callee has a mailbox: a call it does not take goes there.
    pub voicemail: Option<crate::users::UserId>,
    /// The caller's leg, handed to the voicemail application: no longer ours to end.
    pub voicemail_leg: Option<LegId>,
}

impl Bridges {
    /// A new call from an inbound INVITE to `callee`. Creates the call, the caller's
    /// leg and one outgoing leg per target, forked in parallel.
    #[allow(clippy::too_many_arguments)]
    ///
    /// `wake`: the callee is this user, who has push tokens: `WakeUser` asks the shell
    /// to push, and for `wake_wait` the call also rings every contact the user
    /// registers (the woken app); with nothing registered it fails only after that.
    pub fn start(&mut self, now: Instant, legs: &mut Legs, tx: sip::transaction::TxId, req: Request, from: Peer, local_tag: String, domain: String, caller: Party, caller_id: CallerId, callee: Reach, wake: Option<crate::users::UserId>) -> Option<CallId> {
        let id = self.new_call_id();
        let caller_leg = legs.incoming(now, tx, req, from, local_tag, Service::Call, Owner::Bridge(id), domain.clone())?;
        let media_room = self.new_media_room();
        let mut call = new_call(id, domain, caller, callee.party.clone(), media_room);
        call.caller_leg = Some(caller_leg.clone());
        call.setup.caller_id = caller_id;
        self.by_leg.insert(caller_leg.clone(), id);
        self.calls.insert(id, call);
        self.publish(legs, id, EngineEvent::CallStarted);
        info!(call = %id, callee = %callee.party.uri, forks = callee.targets.len(), "two-party call");
        let ring_time = self.cfg.ring_time;
        legs.set_timer(&caller_leg, now + ring_time, RING_TIMEOUT);
        if let Some((user_id, delay)) = self.voicemail_of(&callee.party) {
            self.calls.get_mut(&id).expect("inserted").setup.voicemail = Some(user_id);
            legs.set_timer(&caller_leg, now + delay, VOICEMAIL_TIMEOUT);
        }
        if let Some(user_id) = wake {
            let rung = callee.targets.iter().map(|t| t.uri.to_string()).collect();
            self.calls.get_mut(&id).expect("inserted").setup.waking = Some((user_id, rung));
            self.publish(legs, id, |call| EngineEvent::WakeUser { user_id, call });
            legs.set_timer(&caller_leg, now + self.cfg.wake_wait, WAKE_TIMEOUT);
            info!(call = %id, user = user_id, "waking the callee's app");
        }
        self.ring_callee(now, legs, id, callee.targets);
        self.check_forks(now, legs, id);
        Some(id)
    }

    /// A call placed by an API: rings `caller` first (presenting the callee as the
    /// caller ID), then, when it answers, `callee`.
    pub fn make_call(&mut self, now: Instant, legs: &mut Legs, domain: String, caller: Reach, callee: Reach, caller_id: CallerId, callee_id: CallerId) -> Result<CallId, EngineError> {
        if caller.targets.is_empty() {
            return Err(EngineError::Unroutable(format!("{}: no registered device", caller.party.uri)));
        }
        let id = self.new_call_id();
        let media_room = self.new_media_room();
        let mut call = new_call(id, domain, caller.party.clone(), callee.party.clone(), media_room);
        call.api_originated = true;
        call.setup.caller_id = caller_id;
        call.setup.callee_id = callee_id.clone();
        call.setup.pending_callee = Some(callee);
        self.calls.insert(id, call);
        let mut placed = Vec::new();
        let mut last_err = None;
        for t in caller.targets {
            match self.place_fork(now, legs, id, &t, &callee_id) {
                Ok(leg) => placed.push(leg),
                Err(e) => last_err = Some(e),
            }
        }
        if placed.is_empty() {
            self.calls.remove(&id);
            return Err(last_err.unwrap_or(EngineError::Unroutable("nothing to call".into())));
        }
        let ring_time = self.cfg.ring_time;
        for leg in &placed {
            legs.set_timer(leg, now + ring_time, RING_TIMEOUT);
        }
        let call = self.calls.get_mut(&id).expect("inserted");
        call.rung.extend(placed.iter().cloned());
        call.setup.caller_forks = placed;
        self.publish(legs, id, EngineEvent::CallStarted);
        Ok(id)
    }

    /// Places one outgoing leg per target for the callee side.
    fn ring_callee(&mut self, now: Instant, legs: &mut Legs, id: CallId, targets: Vec<Target>) {
        let Some(caller_id) = self.calls.get(&id).map(|c| c.setup.caller_id.clone()) else { return };
        for t in targets {
            match self.place_fork(now, legs, id, &t, &caller_id) {
                Ok(leg) => {
                    let call = self.calls.get_mut(&id).expect("present");
                    call.forks.push(leg.clone());
                    call.rung.push(leg);
                }
                Err(e) => {
                    info!(call = %id, target = %t.uri, error = %e, "fork not placed");
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.setup.fork_statuses.push(480);
                    }
                }
            }
        }
    }

    fn place_fork(&mut self, now: Instant, legs: &mut Legs, id: CallId, t: &Target, shown: &CallerId) -> Result<LegId, EngineError> {
        let domain = self.calls.get(&id).map(|c| c.domain.clone());
        let mut extra = Vec::new();
        if t.trusted {
            let user = shown.user.clone().unwrap_or_else(|| "anonymous".into());
            let host = domain.clone().unwrap_or_else(|| self.cfg.domain.clone());
            let uri = format!("<sip:{user}@{host}>");
            let value = match &shown.display {
                Some(d) => format!("\"{}\" {uri}", d.replace(['"', '\\'], "")),
                None => uri,
            };
            extra.push(("P-Asserted-Identity".to_owned(), value));
        }
        let d = DialOut {
            to: t.uri.clone(),
            peer: t.peer,
            from_user: shown.user.clone(),
            service: Service::Call,
            hangup_after: None,
            domain,
            from_display: shown.display.clone(),
            extra_headers: extra,
            from_host: None,
            credentials: None,
        };
        // The caller's codec: negotiated, or (still ringing) the first of its offer we have.
        let caller = self.calls.get(&id).and_then(|c| c.caller_leg.as_ref()).and_then(|l| legs.get(l));
        let caller_codec = caller.and_then(|l| {
            l.codec.clone().or_else(|| {
                let offer = l.remote_offer.as_ref()?.audio()?;
                let first = offer.voice_codecs().find(|c| legs.caps.codecs.iter().any(|k| k.name.eq_ignore_ascii_case(&c.name))).map(|c| c.name.clone());
                first
            })
        });
        let leg = legs.place_preferring(now, d, Owner::Bridge(id), caller_codec.as_deref())?;
        self.by_leg.insert(leg.clone(), id);
        Ok(leg)
    }

    /// Something happened to one of a call's legs during setup or at its end.
    /// Returns the event when it is not a setup matter (mid-call control's).
    pub(crate) fn on_setup_event(&mut self, now: Instant, legs: &mut Legs, id: CallId, ev: LegEvent) -> Option<LegEvent> {
        match ev {
            LegEvent::Progress { leg, status, early_media, .. } => self.on_progress(now, legs, id, &leg, status, early_media),
            LegEvent::Answered { leg } => self.on_answered(now, legs, id, &leg),
            LegEvent::Ended { leg, status, by_remote, .. } => self.on_ended(now, legs, id, &leg, status, by_remote),
            LegEvent::Timer { leg, tag: tag @ (RING_TIMEOUT | CALLEE_RING_TIMEOUT | VOICEMAIL_TIMEOUT) } => self.on_ring_timeout(now, legs, id, &leg, tag),
            LegEvent::Timer { tag: WAKE_TIMEOUT, .. } => {
                // The app had its time: from now on the call fails when no fork is left.
                if let Some(call) = self.calls.get_mut(&id) {
                    if call.setup.waking.take().is_some() {
                        info!(call = %id, "wake wait over");
                    }
                }
                self.check_forks(now, legs, id);
            }
            LegEvent::Forgotten { leg, .. } => self.on_forgotten(id, &leg),
            ev => return Some(ev),
        }
        None
    }

    fn on_progress(&mut self, now: Instant, legs: &mut Legs, id: CallId, leg: &LegId, status: u16, early_media: bool) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        if call.state != CallState::Ringing || !call.forks.contains(leg) || !(180..=183).contains(&status) {
            return;
        }
        let Some(caller) = call.caller_leg.clone() else { return };
        let inbound_caller = legs.get(&caller).is_some_and(|l| l.direction == Direction::Inbound && l.answered.is_none());
        if early_media && call.setup.early_fork.is_none() {
            // The callee's device plays its own ringback or announcement: the caller
            // hears it through the call's room from now on.
            call.setup.early_fork = Some(leg.clone());
            let room = call.media_room;
            if inbound_caller {
                legs.ring(now, &caller, 183, true);
            }
            legs.attach(&caller, Attachment::Room(room));
            legs.attach(leg, Attachment::Room(room));
        } else if !call.setup.alerted && inbound_caller && call.setup.early_fork.is_none() {
            legs.ring(now, &caller, 180, false);
        }
        let call = self.calls.get_mut(&id).expect("present");
        if !call.setup.alerted {
            call.setup.alerted = true;
            self.publish(legs, id, EngineEvent::CallRinging);
        }
    }

    fn on_answered(&mut self, now: Instant, legs: &mut Legs, id: CallId, leg: &LegId) {
        let Some(call) = self.calls.get_mut(&id) else {
            let _ = legs.hangup(now, leg);
            return;
        };
        if call.state == CallState::Ringing && call.setup.caller_forks.contains(leg) {
            // An API-placed call: the caller side answered; now ring the callee.
            let others: Vec<LegId> = call.setup.caller_forks.drain(..).filter(|l| l != leg).collect();
            call.caller_leg = Some(leg.clone());
            let room = call.media_room;
            let callee = call.setup.pending_callee.take();
            for o in others {
                let _ = legs.hangup(now, &o);
            }
            legs.attach(leg, Attachment::Room(room));
            let ring_time = self.cfg.ring_time;
            legs.set_timer(leg, now + ring_time, CALLEE_RING_TIMEOUT);
            if let Some(callee) = callee {
                self.ring_callee(now, legs, id, callee.targets);
            }
            self.check_forks(now, legs, id);
            return;
        }
        if call.state != CallState::Ringing || !call.forks.contains(leg) {
            // Late: another fork won, or the call is over.
            let _ = legs.hangup(now, leg);
            return;
        }
        let others: Vec<LegId> = call.forks.drain(..).filter(|l| l != leg).collect();
        call.callee_leg = Some(leg.clone());
        if let Some((ileg, party)) = call.setup.interceptor.take() {
            if &ileg == leg {
                call.callee = party;
            }
        }
        for o in others {
            let _ = legs.hangup(now, &o);
        }
        let Some(caller) = call.caller_leg.clone() else { return };
        let room = call.media_room;
        let caller_unanswered = legs.get(&caller).is_some_and(|l| l.direction == Direction::Inbound && l.answered.is_none());
        if caller_unanswered && legs.answer(now, &caller).is_err() {
            // The caller's leg is refused and over (no media, no common codec); its
            // Ended event ends the call and hangs up the callee.
            return;
        }
        legs.attach(&caller, Attachment::Room(room));
        legs.attach(leg, Attachment::Room(room));
        let call = self.calls.get_mut(&id).expect("present");
        call.state = CallState::Active;
        call.answered_ms = Some(epoch_ms());
        call.disposition = Some(Disposition::Answered);
        info!(call = %id, "answered");
        self.publish(legs, id, EngineEvent::CallAnswered);
    }

    fn on_ended(&mut self, now: Instant, legs: &mut Legs, id: CallId, leg: &LegId, status: u16, by_remote: bool) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        if call.state == CallState::Ended {
            return;
        }
        if call.setup.caller_forks.contains(leg) {
            call.setup.caller_forks.retain(|l| l != leg);
            call.setup.fork_statuses.push(status);
            if call.setup.caller_forks.is_empty() && call.caller_leg.is_none() {
                let (d, _, _) = failure_of(&call.setup.fork_statuses);
                self.end_call(now, legs, id, d, None);
            }
            return;
        }
        if call.forks.contains(leg) {
            call.forks.retain(|l| l != leg);
            if call.setup.early_fork.as_ref() == Some(leg) {
                call.setup.early_fork = None;
            }
            if matches!(call.setup.interceptor.as_ref(), Some((l, _)) if l == leg) {
                call.setup.interceptor = None;
            }
            call.setup.fork_statuses.push(status);
            self.check_forks(now, legs, id);
            return;
        }
        let side = if call.caller_leg.as_ref() == Some(leg) {
            Side::Caller
        } else if call.callee_leg.as_ref() == Some(leg) {
            Side::Callee
        } else {
            return; // a cancelled fork winding down, or a supervisor (lane H)
        };
        let disposition = match (call.state, side) {
            (CallState::Ringing, Side::Caller) => Disposition::Cancelled,
            (CallState::Ringing, Side::Callee) => Disposition::Failed,
            _ => Disposition::Answered,
        };
        let hangup_by = by_remote.then_some(side);
        self.end_call(now, legs, id, disposition, hangup_by);
    }

    /// All callee forks have failed (or none could be placed): answer the caller with
    /// the best failure (6xx, then busy, then unavailable).
    fn check_forks(&mut self, now: Instant, legs: &mut Legs, id: CallId) {
        let Some(call) = self.calls.get(&id) else { return };
        if call.state != CallState::Ringing || !call.forks.is_empty() || call.caller_leg.is_none() || call.setup.interceptor.is_some() || call.setup.waking.is_some() {
            return;
        }
        let (disposition, status, reason) = failure_of(&call.setup.fork_statuses);
        let caller = call.caller_leg.clone().expect("checked");
        info!(call = %id, status, "no device answered");
        // Busy or unreachable (a decline is the callee's choice, and is respected).
        if status != 603 && self.to_voicemail(now, legs, id, disposition) {
            return;
        }
        // The caller hears the forks' failure (end_call would answer a plain 480).
        let _ = legs.hangup_with(now, &caller, Some((status, reason)));
        self.end_call(now, legs, id, disposition, None);
    }

    /// `user` registered `contact`: every ringing call waiting for that user's app
    /// rings it too (once per contact).
    pub fn on_registered(&mut self, now: Instant, legs: &mut Legs, user: crate::users::UserId, contact: &str, target: Target) {
        let waiting: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state == CallState::Ringing && c.setup.waking.as_ref().is_some_and(|(u, rung)| *u == user && !rung.iter().any(|r| r == contact)))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            if let Some((_, rung)) = self.calls.get_mut(&id).and_then(|c| c.setup.waking.as_mut()) {
                rung.push(contact.to_owned());
            }
            info!(call = %id, contact, "the woken app registered: ringing it");
            self.ring_callee(now, legs, id, vec![target.clone()]);
        }
    }

    fn on_ring_timeout(&mut self, now: Instant, legs: &mut Legs, id: CallId, leg: &LegId, tag: u32) {
        let Some(call) = self.calls.get(&id) else { return };
        let is_caller = call.caller_leg.as_ref() == Some(leg);
        let current = match tag {
            RING_TIMEOUT => call.setup.caller_forks.contains(leg) || (is_caller && !call.api_originated),
            _ => is_caller,
        };
        if call.state != CallState::Ringing || !current {
            return;
        }
        // The voicemail delay only ever moves a call to voicemail; the ring time ends
        // it there too when the callee has a mailbox.
        if self.to_voicemail(now, legs, id, Disposition::NoAnswer) || tag == VOICEMAIL_TIMEOUT {
            return;
        }
        let Some(call) = self.calls.get(&id) else { return };
        let caller = call.caller_leg.clone();
        let forks: Vec<LegId> = call.forks.iter().chain(call.setup.caller_forks.iter()).cloned().collect();
        info!(call = %id, "ring time over");
        if let Some(c) = caller {
            let _ = legs.hangup_with(now, &c, Some((480, "No answer")));
        }
        for f in forks {
            let _ = legs.hangup(now, &f);
        }
        self.end_call(now, legs, id, Disposition::NoAnswer, None);
    }

    /// The callee's mailbox and voicemail delay, if calls to it go to voicemail: its
    /// call mode's `vmDelay` (MX), else `[voicemail] default_delay_s`.
    fn voicemail_of(&self, callee: &Party) -> Option<(crate::users::UserId, std::time::Duration)> {
        let vm = &self.cfg.voicemail;
        let user = self.directory.user(callee.user_id?).filter(|_| vm.enabled)?;
        let delay = user.call_mode.as_ref().map(|m| std::time::Duration::from_secs(m.vm_delay_s.max(1).into())).unwrap_or(vm.default_delay);
        Some((user.id, delay))
    }

    /// The callee did not take the call (no answer, busy, nothing registered): if it
    /// has a mailbox, the call ends here as `disposition` (forks cancelled) and its
    /// caller is handed to the voicemail application. False: no mailbox, nothing done.
    fn to_voicemail(&mut self, now: Instant, legs: &mut Legs, id: CallId, disposition: Disposition) -> bool {
        let Some(call) = self.calls.get_mut(&id) else { return false };
        let Some(user_id) = call.setup.voicemail.take() else { return false };
        let Some(caller) = call.caller_leg.clone() else { return false };
        if call.api_originated || !legs.get(&caller).is_some_and(|l| l.direction == Direction::Inbound && !l.is_over()) {
            return false;
        }
        call.setup.voicemail_leg = Some(caller.clone());
        let owner = call.callee.ext.clone().or_else(|| self.directory.user(user_id).map(|u| u.login.clone())).unwrap_or_default();
        let mailbox = crate::apps::voicemail::Mailbox { user_id, owner, caller: call.caller.clone(), call: Some(id) };
        info!(call = %id, user = user_id, "to voicemail");
        self.end_call(now, legs, id, disposition, None);
        self.to_voicemail.push((caller, mailbox));
        true
    }

    /// A leg handed to another application was forgotten: drop it from the call.
    pub(crate) fn forget_leg(&mut self, leg: &LegId) {
        if let Some(id) = self.by_leg.get(leg).copied() {
            self.on_forgotten(id, leg);
        }
    }

    fn on_forgotten(&mut self, id: CallId, leg: &LegId) {
        self.by_leg.remove(leg);
        let done = self.calls.get(&id).is_some_and(|c| c.state == CallState::Ended);
        if done && !self.by_leg.values().any(|c| *c == id) {
            self.calls.remove(&id);
        }
    }

    /// Ends the call: every leg still up is hung up (forks cancelled), the call is
    /// marked ended and CallEnded is published once.
    pub(crate) fn end_call(&mut self, now: Instant, legs: &mut Legs, id: CallId, disposition: Disposition, hangup_by: Option<Side>) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        if call.state == CallState::Ended {
            return;
        }
        let answered = call.answered_ms.is_some();
        call.state = CallState::Ended;
        call.ended_ms = Some(epoch_ms());
        call.disposition = Some(if answered { Disposition::Answered } else { disposition });
        call.hangup_by = hangup_by;
        let mut up: Vec<LegId> = call.forks.drain(..).chain(call.setup.caller_forks.drain(..)).collect();
        up.extend(call.caller_leg.iter().filter(|l| call.setup.voicemail_leg.as_ref() != Some(*l)).cloned());
        up.extend(call.callee_leg.iter().cloned());
        up.extend(call.supervisors.iter().map(|(l, _)| l.clone()));
        call.setup.interceptor = None;
        info!(call = %id, ?disposition, "call ended");
        for l in up {
            if legs.get(&l).is_some_and(|l| !l.is_over()) {
                let _ = legs.hangup(now, &l);
            }
        }
        self.publish(legs, id, EngineEvent::CallEnded);
    }

    /// Pushes an event about the call, built from its current snapshot.
    pub(crate) fn publish(&self, legs: &mut Legs, id: CallId, make: impl FnOnce(CallInfo) -> EngineEvent) {
        if let Some(call) = self.calls.get(&id) {
            let info = self.info(call, legs);
            legs.public.push_back(make(info));
        }
    }

    // ---- API commands on unanswered calls ------------------------------------------

    /// Clears a call: cancels the forks and refuses or hangs up the parties.
    pub fn clear_call(&mut self, now: Instant, legs: &mut Legs, id: CallId) -> Result<CallInfo, EngineError> {
        let call = self.calls.get(&id).filter(|c| c.state != CallState::Ended).ok_or(EngineError::LegEnded)?;
        if let Some(c) = call.caller_leg.clone() {
            if legs.get(&c).is_some_and(|l| !l.is_over()) {
                let _ = legs.hangup_with(now, &c, Some((480, "Call cleared")));
            }
        }
        self.end_call(now, legs, id, Disposition::Cancelled, None);
        let call = self.calls.get(&id).expect("still listed");
        Ok(self.info(call, legs))
    }

    /// Rings `target` instead of the callee's devices (an unanswered call only).
    pub fn redirect_call(&mut self, now: Instant, legs: &mut Legs, id: CallId, target: Reach) -> Result<CallInfo, EngineError> {
        let call = self.ringing_callee_side(id)?;
        if target.targets.is_empty() {
            return Err(EngineError::Unroutable(format!("{}: no registered device", target.party.uri)));
        }
        let old: Vec<LegId> = call.forks.drain(..).collect();
        call.setup.early_fork = None;
        call.setup.interceptor = None;
        call.setup.fork_statuses.clear();
        call.callee = target.party.clone();
        let shown = target.party.uri.clone();
        for o in old {
            let _ = legs.hangup(now, &o);
        }
        self.ring_callee(now, legs, id, target.targets);
        self.publish(legs, id, |info| EngineEvent::CallTransferred { info, target: shown });
        self.check_forks(now, legs, id);
        let call = self.calls.get(&id).ok_or(EngineError::LegEnded)?;
        Ok(self.info(call, legs))
    }

    /// Pickup: rings the intercepting device alongside the forks; when it answers it
    /// is the callee and the forks are cancelled (first answer wins, as for any fork).
    pub fn intercept_call(&mut self, now: Instant, legs: &mut Legs, id: CallId, device: Reach) -> Result<CallInfo, EngineError> {
        self.ringing_callee_side(id)?;
        let Some(t) = device.targets.into_iter().next() else {
            return Err(EngineError::Unroutable(format!("{}: no registered device", device.party.uri)));
        };
        let caller_id = self.calls.get(&id).map(|c| c.setup.caller_id.clone()).unwrap_or_default();
        let leg = self.place_fork(now, legs, id, &t, &caller_id)?;
        let call = self.calls.get_mut(&id).expect("checked");
        call.forks.push(leg.clone());
        call.rung.push(leg.clone());
        call.setup.interceptor = Some((leg, device.party.clone()));
        let shown = device.party.uri.clone();
        self.publish(legs, id, |info| EngineEvent::CallTransferred { info, target: shown });
        let call = self.calls.get(&id).expect("checked");
        Ok(self.info(call, legs))
    }

    fn ringing_callee_side(&mut self, id: CallId) -> Result<&mut Call, EngineError> {
        let call = self.calls.get_mut(&id).ok_or(EngineError::LegNotFound)?;
        if call.state != CallState::Ringing || call.caller_leg.is_none() {
            return Err(EngineError::Conflict("the call is not ringing its callee".into()));
        }
        Ok(call)
    }
}

fn new_call(id: CallId, domain: String, caller: Party, callee: Party, media_room: media::RoomId) -> Call {
    Call {
        id,
        domain,
        state: CallState::Ringing,
        caller,
        callee,
        caller_leg: None,
        callee_leg: None,
        forks: Vec::new(),
        rung: Vec::new(),
        media_room,
        started_ms: epoch_ms(),
        answered_ms: None,
        ended_ms: None,
        disposition: None,
        hangup_by: None,
        held: None,
        recordings: Vec::new(),
        api_originated: false,
        supervisors: Vec::new(),
        setup: Setup::default(),
    }
}

/// What the caller is told when no fork answered, from the forks' final statuses:
/// a decline (6xx) wins, then busy, then unavailable.
fn failure_of(statuses: &[u16]) -> (Disposition, u16, &'static str) {
    if statuses.contains(&603) {
        (Disposition::NoAnswer, 603, "Decline")
    } else if statuses.iter().any(|s| *s == 486 || *s == 600) {
        (Disposition::Busy, 486, "Busy Here")
    } else {
        (Disposition::Unavailable, 480, "Temporarily Unavailable")
    }
}
