//! Mid-call control of two-party calls: hold and unhold, blind and attended transfer
//! (REFER both ways, INVITE with Replaces), DTMF, and supervisors (listen, whisper,
//! barge).
//!
//! Holding and supervising are topology on the call's media room (a call is a room
//! of two): the held party's paths are blocked, a listening supervisor's voice
//! reaches nobody, a whispering one's only the callee side. Transfers move legs
//! between calls: a leg taking over another's place is attached to the call's media
//! room and the leg it replaces is handed to nobody and hung up, so the call itself
//! (its id, its record) carries on.

use super::{Bridges, Call};
use crate::apps::Owner;
use crate::call::*;
use crate::engine::{DialOut, EngineError, EngineEvent};
use crate::legs::{DtmfMethod, LegEvent, LegId, LegState, Legs, Replaces, Service};
use media::Attachment;
use sip::{Peer, Uri};
use std::collections::HashMap;
use std::time::Instant;
use tracing::info;

/// Mid-call control state kept beside the call table.
#[derive(Default)]
pub(crate) struct Control {
    /// Legs we placed to carry out a phone's REFER: the new party takes the referrer's place.
    transfers: HashMap<LegId, Transfer>,
    /// REFERs we sent by API, by the referred leg: (call, target).
    refers: HashMap<LegId, (CallId, String)>,
    /// Transfer targets to resolve (the engine owns routing): (call, referrer leg, target).
    pub to_route: Vec<(CallId, LegId, Uri)>,
    /// Recordings running: the media leg whose worker holds the tap, and the file.
    recording: HashMap<CallId, (media::LegId, String)>,
}

struct Transfer {
    call: CallId,
    /// The leg that sent the REFER; hung up once the new party answers.
    referrer: LegId,
    target: String,
}

impl Bridges {
    fn answered_call(&self, id: CallId) -> Result<&Call, EngineError> {
        let call = self.calls.get(&id).ok_or(EngineError::LegNotFound)?;
        match call.state {
            CallState::Active | CallState::Held => Ok(call),
            CallState::Ringing => Err(EngineError::Conflict("the call is not answered yet".into())),
            CallState::Ended => Err(EngineError::LegEnded),
        }
    }

    fn party_leg(&self, id: CallId, side: Side) -> Result<LegId, EngineError> {
        self.answered_call(id)?.leg(side).cloned().ok_or_else(|| EngineError::BadRequest(format!("the call has no {side:?} leg").to_lowercase()))
    }

    fn announce(&self, legs: &mut Legs, id: CallId, make: impl FnOnce(CallInfo) -> EngineEvent) {
        if let Some(call) = self.calls.get(&id) {
            let info = self.info(call, legs);
            legs.public.push_back(make(info));
        }
    }

    /// Who hears whom in the call's media room: a held party hears nothing and is
    /// heard by nobody; supervisors per their mode.
    fn push_call_topology(&self, legs: &Legs, id: CallId) {
        let Some(call) = self.calls.get(&id) else { return };
        let m = |l: Option<&LegId>| l.and_then(|l| legs.media_of(l));
        let parties: Vec<media::LegId> = [m(call.caller_leg.as_ref()), m(call.callee_leg.as_ref())].into_iter().flatten().collect();
        let mut blocked = Vec::new();
        if let Some(held) = call.held.and_then(|s| m(call.leg(s))) {
            for &p in &parties {
                if p != held {
                    blocked.push((p, held));
                    blocked.push((held, p));
                }
            }
        }
        for (leg, mode) in &call.supervisors {
            let Some(s) = legs.media_of(leg) else { continue };
            match mode {
                SuperviseMode::Listen => blocked.extend(parties.iter().map(|&p| (s, p))),
                SuperviseMode::Whisper => blocked.extend(m(call.caller_leg.as_ref()).map(|c| (s, c))),
                SuperviseMode::Barge => {}
            }
        }
        legs.media.set_blocked(call.media_room, blocked);
    }

    // ---- hold ---------------------------------------------------------------------------

    /// Puts one side on hold: a re-INVITE offering sendonly (or inactive), and the
    /// held party's paths blocked in the call's media room (it hears silence).
    pub fn hold(&mut self, now: Instant, legs: &mut Legs, id: CallId, side: Side, inactive: bool) -> Result<CallInfo, EngineError> {
        let leg = self.party_leg(id, side)?;
        if let Some(other) = self.calls[&id].held.filter(|s| *s != side) {
            return Err(EngineError::Conflict(format!("the {} side is already on hold", side_name(other))));
        }
        legs.hold(now, &leg, inactive)?;
        let call = self.calls.get_mut(&id).expect("checked");
        call.held = Some(side);
        call.state = CallState::Held;
        self.push_call_topology(legs, id);
        info!(call = %id, ?side, inactive, "holding");
        Ok(self.info(&self.calls[&id], legs))
    }

    /// Takes the held side off hold: a re-INVITE offering sendrecv, paths restored.
    pub fn unhold(&mut self, now: Instant, legs: &mut Legs, id: CallId) -> Result<CallInfo, EngineError> {
        let side = self.answered_call(id)?.held.ok_or_else(|| EngineError::Conflict("the call is not on hold".into()))?;
        let leg = self.party_leg(id, side)?;
        legs.unhold(now, &leg)?;
        let call = self.calls.get_mut(&id).expect("checked");
        call.held = None;
        call.state = CallState::Active;
        self.push_call_topology(legs, id);
        info!(call = %id, ?side, "retrieving");
        Ok(self.info(&self.calls[&id], legs))
    }

    // ---- DTMF -------------------------------------------------------------------------

    /// Sends digits to one side's party.
    pub fn send_dtmf(&mut self, now: Instant, legs: &mut Legs, id: CallId, side: Side, digits: &str, method: DtmfMethod) -> Result<CallInfo, EngineError> {
        let leg = self.party_leg(id, side)?;
        legs.send_dtmf(now, &leg, digits, method)?;
        Ok(self.info(&self.calls[&id], legs))
    }

    // ---- transfer ---------------------------------------------------------------------

    /// Blind transfer: REFER the party on `side` to `target`; it calls the target and
    /// leaves this call. `CallTransferred` once its NOTIFY says the new call is up.
    /// With `replaces` (attended), the Refer-To carries a Replaces naming our leg in
    /// that other call, so the party's INVITE takes that leg's place.
    pub fn transfer(&mut self, now: Instant, legs: &mut Legs, id: CallId, side: Side, target: Uri, replaces: Option<CallId>) -> Result<CallInfo, EngineError> {
        let leg = self.party_leg(id, side)?;
        let mut target = target;
        if let Some(other) = replaces {
            if other == id {
                return Err(EngineError::BadRequest("a call cannot replace itself".into()));
            }
            let replaced = self.replaced_leg(legs, id, side, other)?;
            let r = legs.replaces_for(&replaced).ok_or_else(|| EngineError::Conflict("the other call is not answered".into()))?;
            target.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("Replaces"));
            target.headers.push(("Replaces".into(), r.to_header_value()));
        }
        let referred_by = self.calls[&id].leg(side.other()).and_then(|l| legs.get(l)).map(|l| l.info().remote_uri);
        legs.refer(now, &leg, &target, referred_by.as_deref())?;
        let mut shown = target.clone();
        shown.headers.clear();
        self.control.refers.insert(leg, (id, shown.to_string()));
        Ok(self.info(&self.calls[&id], legs))
    }

    /// For an attended transfer of `side` of call `id` into call `other`: the leg of
    /// `other` that goes away, the one to the party both calls share (the transferring
    /// user); failing that, `other`'s caller leg.
    fn replaced_leg(&self, legs: &Legs, id: CallId, side: Side, other: CallId) -> Result<LegId, EngineError> {
        let this = self.answered_call(id)?;
        let that = self.answered_call(other).map_err(|e| match e {
            EngineError::LegNotFound => EngineError::BadRequest(format!("call {other} to replace not found")),
            e => e,
        })?;
        let shared = match side.other() {
            Side::Caller => &this.caller,
            Side::Callee => &this.callee,
        };
        let same = |p: &Party| (shared.user_id.is_some() && p.user_id == shared.user_id) || (!shared.uri.is_empty() && p.uri == shared.uri);
        let pick = if same(&that.callee) && !same(&that.caller) { Side::Callee } else { Side::Caller };
        let leg = that.leg(pick).cloned().ok_or_else(|| EngineError::BadRequest("the other call has no such leg".into()))?;
        if legs.get(&leg).is_none_or(|l| l.is_over()) {
            return Err(EngineError::LegEnded);
        }
        Ok(leg)
    }

    /// A REFER of ours progressed.
    fn on_refer_progress(&mut self, now: Instant, legs: &mut Legs, leg: &LegId, status: u16, done: bool) {
        if !done {
            return;
        }
        let Some((id, target)) = self.control.refers.remove(leg) else { return };
        if (200..300).contains(&status) {
            info!(call = %id, %target, "transferred");
            self.announce(legs, id, |info| EngineEvent::CallTransferred { info, target });
            // As the transferor we end our dialog with the transferee (RFC 5589 §6);
            // the call ends with it (the other party is hung up).
            let _ = legs.hangup(now, leg);
        } else {
            info!(call = %id, status, "transfer failed");
        }
    }

    /// A phone in the call sent REFER: connect the *other* party to the target. With a
    /// Replaces naming one of our legs (the phone's attended transfer), that leg's
    /// place in its call goes to the other party at once; otherwise the target is
    /// called and takes the referrer's place when it answers.
    fn on_referred(&mut self, now: Instant, legs: &mut Legs, id: CallId, referrer: LegId, target: Uri, replaces: Option<Replaces>) {
        let Some(side) = self.calls.get(&id).and_then(|c| c.side_of(&referrer)) else {
            return legs.notify_refer(now, &referrer, 603, "Declined");
        };
        if self.calls[&id].state != CallState::Active && self.calls[&id].state != CallState::Held {
            return legs.notify_refer(now, &referrer, 603, "Declined");
        }
        if let Some(r) = replaces {
            let Some(replaced) = legs.find_replaced(&r) else {
                return legs.notify_refer(now, &referrer, 481, "Call/Transaction Does Not Exist");
            };
            let Some(other_call) = self.by_leg.get(&replaced).copied().filter(|c| *c != id) else {
                return legs.notify_refer(now, &referrer, 488, "Not Acceptable Here");
            };
            let Some(mover) = self.calls[&id].leg(side.other()).cloned() else {
                return legs.notify_refer(now, &referrer, 488, "Not Acceptable Here");
            };
            // The other party leaves this call for the replaced leg's place.
            self.detach(legs, id, &mover);
            self.take_place(legs, other_call, &replaced, mover.clone());
            legs.notify_refer(now, &referrer, 200, "OK");
            let _ = legs.hangup(now, &replaced);
            let target = legs.get(&mover).map(|l| l.info().remote_uri).unwrap_or_default();
            self.announce(legs, other_call, |info| EngineEvent::CallTransferred { info, target });
            // The referrer's leg here ends the rest of this call (its BYE, or ours).
            let _ = legs.hangup(now, &referrer);
            return;
        }
        self.control.to_route.push((id, referrer, target));
    }

    /// The engine resolved a phone's transfer target: call it for the other party.
    pub fn place_transfer(&mut self, now: Instant, legs: &mut Legs, id: CallId, referrer: LegId, target: Result<(Uri, Peer), EngineError>) {
        let (uri, peer) = match target {
            Ok(t) => t,
            Err(e) => {
                info!(call = %id, error = %e, "transfer target unreachable");
                return legs.notify_refer(now, &referrer, 404, "Not Found");
            }
        };
        let Some(call) = self.calls.get(&id) else { return legs.notify_refer(now, &referrer, 481, "Call/Transaction Does Not Exist") };
        // The new party sees the party it will talk to (the one staying) as the caller.
        let staying = call.side_of(&referrer).and_then(|s| call.leg(s.other())).and_then(|l| legs.get(l)).map(|l| l.info());
        let from_user = staying.as_ref().and_then(|i| sip::parse::parse_uri(&i.remote_uri).ok()).and_then(|u| u.user);
        let d = DialOut {
            to: uri.clone(),
            peer,
            from_user,
            service: Service::Call,
            hangup_after: None,
            domain: Some(call.domain.clone()),
            from_display: None,
            extra_headers: Vec::new(),
            from_host: None,
            credentials: None,
        };
        match legs.place(now, d, Owner::Bridge(id)) {
            Ok(leg) => {
                self.by_leg.insert(leg.clone(), id);
                self.control.transfers.insert(leg, Transfer { call: id, referrer, target: uri.to_string() });
            }
            Err(e) => {
                info!(call = %id, error = %e, "transfer call not placed");
                legs.notify_refer(now, &referrer, 503, "Service Unavailable");
            }
        }
    }

    fn on_transfer_leg_event(&mut self, now: Instant, legs: &mut Legs, ev: LegEvent) -> Option<LegEvent> {
        let leg = crate::apps::leg_of(&ev).clone();
        let Some(t) = self.control.transfers.get(&leg) else { return Some(ev) };
        let (id, referrer) = (t.call, t.referrer.clone());
        match ev {
            LegEvent::Progress { status, reason, .. } => legs.notify_refer(now, &referrer, status, &reason),
            LegEvent::Answered { .. } => {
                let t = self.control.transfers.remove(&leg).expect("present");
                let alive = self.calls.get(&id).is_some_and(|c| c.side_of(&referrer).is_some() && c.state != CallState::Ended);
                if !alive {
                    let _ = legs.hangup(now, &leg);
                    return None;
                }
                self.take_place(legs, id, &referrer, leg.clone());
                legs.notify_refer(now, &referrer, 200, "OK");
                let _ = legs.hangup(now, &referrer);
                self.announce(legs, id, |info| EngineEvent::CallTransferred { info, target: t.target });
            }
            LegEvent::Ended { status, reason, .. } => {
                self.control.transfers.remove(&leg);
                self.by_leg.remove(&leg);
                let status = if status >= 300 { status } else { 487 };
                legs.notify_refer(now, &referrer, status, &reason);
            }
            LegEvent::Forgotten { .. } => {}
            ev => crate::apps::default_handling(now, legs, ev),
        }
        None
    }

    /// Takes `leg` out of call `id` without ending the call: its events go nowhere.
    fn detach(&mut self, legs: &mut Legs, id: CallId, leg: &LegId) {
        if let Some(call) = self.calls.get_mut(&id) {
            if call.caller_leg.as_ref() == Some(leg) {
                call.caller_leg = None;
            }
            if call.callee_leg.as_ref() == Some(leg) {
                call.callee_leg = None;
            }
        }
        self.by_leg.remove(leg);
        if let Some(l) = legs.get_mut(leg) {
            l.owner = Owner::Nobody;
        }
    }

    /// `new` takes `old`'s side in call `id`; `old` is detached (its owner hangs it up).
    fn take_place(&mut self, legs: &mut Legs, id: CallId, old: &LegId, new: LegId) {
        let Some(side) = self.calls.get(&id).and_then(|c| c.side_of(old)) else { return };
        self.detach(legs, id, old);
        let call = self.calls.get_mut(&id).expect("checked");
        match side {
            Side::Caller => call.caller_leg = Some(new.clone()),
            Side::Callee => call.callee_leg = Some(new.clone()),
        }
        if call.held == Some(side) {
            call.held = None;
            call.state = CallState::Active;
        }
        let room = call.media_room;
        self.by_leg.insert(new.clone(), id);
        if let Some(l) = legs.get_mut(&new) {
            l.owner = Owner::Bridge(id);
        }
        legs.attach(&new, Attachment::Room(room));
        self.push_call_topology(legs, id);
    }

    /// An INVITE with Replaces naming `replaced`, a party leg of call `id`: the new
    /// leg (already taken as inbound, owned by this call) is answered and takes the
    /// replaced leg's place, which is hung up (RFC 3891 §3).
    pub fn on_replacing_invite(&mut self, now: Instant, legs: &mut Legs, id: CallId, new: LegId, replaced: LegId) {
        if self.calls.get(&id).and_then(|c| c.side_of(&replaced)).is_none() {
            legs.reject(now, &new, 481, Some("Call/Transaction Does Not Exist"));
            legs.end_leg(now, &new, 481, "Replaced dialog not found", false);
            return;
        }
        if legs.answer(now, &new).is_err() {
            return;
        }
        self.take_place(legs, id, &replaced, new.clone());
        let _ = legs.hangup_with(now, &replaced, Some((200, "Replaced")));
        let target = legs.get(&new).map(|l| l.info().remote_uri).unwrap_or_default();
        info!(call = %id, %target, "leg replaced");
        self.announce(legs, id, |info| EngineEvent::CallTransferred { info, target });
    }

    // ---- recording ---------------------------------------------------------------------

    /// Starts recording both parties (the call's media room mix) into
    /// `recordings/<call id>-<n>.wav` under the data dir; listed in the call's
    /// `recordings` at once (the media engine's writer thread makes the file).
    pub fn record_start(&mut self, legs: &mut Legs, id: CallId) -> Result<CallInfo, EngineError> {
        let call = self.answered_call(id)?;
        if self.control.recording.contains_key(&id) {
            return Err(EngineError::Conflict("the call is already being recorded".into()));
        }
        let via = [call.caller_leg.as_ref(), call.callee_leg.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|l| legs.media_of(l))
            .ok_or_else(|| EngineError::MediaUnavailable("the call has no media".into()))?;
        let file = format!("recordings/{}-{}.wav", id, call.recordings.len() + 1);
        let tap = media::recorder::start(&self.cfg.data_dir.join(&file)).map_err(|e| EngineError::MediaUnavailable(format!("cannot record: {e}")))?;
        legs.media.tap_room(via, call.media_room, Some(tap));
        self.control.recording.insert(id, (via, file.clone()));
        self.calls.get_mut(&id).expect("checked").recordings.push(file.clone());
        info!(call = %id, %file, "recording");
        self.announce(legs, id, |info| EngineEvent::RecordingStarted { info, file });
        Ok(self.info(&self.calls[&id], legs))
    }

    pub fn record_stop(&mut self, legs: &mut Legs, id: CallId) -> Result<CallInfo, EngineError> {
        self.calls.get(&id).ok_or(EngineError::LegNotFound)?;
        if !self.stop_recording(legs, id) {
            return Err(EngineError::Conflict("the call is not being recorded".into()));
        }
        Ok(self.info(&self.calls[&id], legs))
    }

    /// Stops a running recording (the file is finished by its writer); false if none.
    fn stop_recording(&mut self, legs: &mut Legs, id: CallId) -> bool {
        let Some((via, file)) = self.control.recording.remove(&id) else { return false };
        if let Some(room) = self.calls.get(&id).map(|c| c.media_room) {
            legs.media.tap_room(via, room, None);
        }
        info!(call = %id, %file, "recording stopped");
        self.announce(legs, id, |info| EngineEvent::RecordingStopped { info, file });
        true
    }

    // ---- merge into a conference ------------------------------------------------------

    /// Hands the call's parties (and supervisors) to the room application: the call
    /// ends here (its record says answered) and its legs live on as participants. The
    /// caller checks the room exists first ([`super::super::room::Rooms::adopt`]).
    pub fn release_for_conference(&mut self, now: Instant, legs: &mut Legs, id: CallId) -> Result<(String, Vec<LegId>), EngineError> {
        let call = self.answered_call(id)?;
        let mut members: Vec<LegId> = [call.caller_leg.clone(), call.callee_leg.clone()].into_iter().flatten().filter(|l| legs.get(l).is_some_and(|l| !l.is_over())).collect();
        members.extend(call.supervisors.iter().map(|(l, _)| l.clone()));
        let domain = call.domain.clone();
        if let Some(side) = call.held {
            // A held party would stay sendonly in the room: take it off hold first.
            if let Some(l) = call.leg(side).cloned() {
                let _ = legs.unhold(now, &l);
            }
        }
        self.stop_recording(legs, id);
        let call = self.calls.get_mut(&id).expect("checked");
        call.held = None;
        call.state = CallState::Ended;
        call.ended_ms = Some(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0));
        call.disposition = Some(Disposition::Answered);
        self.announce(legs, id, EngineEvent::CallEnded);
        if let Some(call) = self.calls.remove(&id) {
            legs.media.set_blocked(call.media_room, Vec::new());
            for l in [call.caller_leg, call.callee_leg].into_iter().flatten().chain(call.forks).chain(call.rung) {
                self.by_leg.remove(&l);
            }
        }
        for l in &members {
            self.by_leg.remove(l);
        }
        info!(call = %id, "call merged into a conference");
        Ok((domain, members))
    }

    // ---- supervisors ------------------------------------------------------------------

    /// Calls a supervisor into the call: listen (hears both, heard by nobody), whisper
    /// (heard by the callee side only) or barge (heard by both).
    pub fn supervise(&mut self, now: Instant, legs: &mut Legs, id: CallId, to: Uri, peer: Peer, mode: SuperviseMode) -> Result<CallInfo, EngineError> {
        let call = self.answered_call(id)?;
        let d = DialOut {
            to,
            peer,
            from_user: Some("supervise".into()),
            service: Service::Call,
            hangup_after: None,
            domain: Some(call.domain.clone()),
            from_display: None,
            extra_headers: Vec::new(),
            from_host: None,
            credentials: None,
        };
        let leg = legs.place(now, d, Owner::Bridge(id))?;
        self.by_leg.insert(leg.clone(), id);
        self.calls.get_mut(&id).expect("checked").supervisors.push((leg, mode));
        Ok(self.info(&self.calls[&id], legs))
    }

    fn supervisor_mode(&self, id: CallId, leg: &LegId) -> Option<SuperviseMode> {
        self.calls.get(&id)?.supervisors.iter().find(|(l, _)| l == leg).map(|(_, m)| *m)
    }

    fn on_supervisor_event(&mut self, now: Instant, legs: &mut Legs, id: CallId, ev: LegEvent) {
        match ev {
            LegEvent::Answered { leg } => {
                let Some(room) = self.calls.get(&id).filter(|c| c.state != CallState::Ended).map(|c| c.media_room) else {
                    let _ = legs.hangup(now, &leg);
                    return;
                };
                // Topology first, so the supervisor is never heard by mistake.
                self.push_call_topology(legs, id);
                legs.attach(&leg, Attachment::Room(room));
                self.push_call_topology(legs, id);
            }
            LegEvent::Ended { leg, .. } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.supervisors.retain(|(l, _)| l != &leg);
                }
                self.by_leg.remove(&leg);
                self.push_call_topology(legs, id);
            }
            LegEvent::Forgotten { .. } => {}
            ev => crate::apps::default_handling(now, legs, ev),
        }
    }

    // ---- events ---------------------------------------------------------------------

    /// Mid-call control's share of a call's leg events: transfer and supervisor legs,
    /// hold outcomes, REFER in and out. What it does not take is returned for call
    /// setup (and plain endpoint handling).
    pub(crate) fn on_control_event(&mut self, now: Instant, legs: &mut Legs, id: CallId, ev: LegEvent) -> Option<LegEvent> {
        let leg = crate::apps::leg_of(&ev).clone();
        if self.control.transfers.contains_key(&leg) {
            return self.on_transfer_leg_event(now, legs, ev);
        }
        if self.supervisor_mode(id, &leg).is_some() {
            self.on_supervisor_event(now, legs, id, ev);
            return None;
        }
        match ev {
            LegEvent::HoldResult { hold, status, .. } => {
                if status == 200 {
                    self.announce(legs, id, |info| if hold { EngineEvent::CallHeld(info) } else { EngineEvent::CallRetrieved(info) });
                } else if let Some(call) = self.calls.get_mut(&id) {
                    // The re-INVITE failed: the session is as it was.
                    let side = call.side_of(&leg);
                    if hold && call.held == side {
                        call.held = None;
                        call.state = CallState::Active;
                    } else if !hold && call.held.is_none() {
                        call.held = side;
                        call.state = CallState::Held;
                    }
                    self.push_call_topology(legs, id);
                }
                None
            }
            LegEvent::SessionChanged { held_by_remote, .. } => {
                // The phone put us (and so the other party) on hold, or took us off.
                let call = self.calls.get_mut(&id)?;
                let side = call.side_of(&leg)?;
                if held_by_remote && call.held.is_none() {
                    call.held = Some(side);
                    call.state = CallState::Held;
                    self.announce(legs, id, EngineEvent::CallHeld);
                } else if !held_by_remote && call.held == Some(side) {
                    call.held = None;
                    call.state = CallState::Active;
                    self.announce(legs, id, EngineEvent::CallRetrieved);
                }
                None
            }
            LegEvent::ReferProgress { status, done, .. } => {
                self.on_refer_progress(now, legs, &leg, status, done);
                None
            }
            LegEvent::Dtmf { digit, .. } => {
                // A party's digit goes on to the other (RFC 4733), as a phone's would on
                // a wire: the IVR or browser behind a call hears what was keyed.
                let other = self.calls.get(&id).and_then(|c| match c.side_of(&leg)? {
                    Side::Caller => c.callee_leg.clone(),
                    Side::Callee => c.caller_leg.clone(),
                });
                if let Some(o) = other {
                    let _ = legs.send_dtmf(now, &o, &digit.to_string(), crate::legs::DtmfMethod::Rfc4733);
                }
                Some(ev)
            }
            LegEvent::Referred { target, replaces, .. } => {
                self.on_referred(now, legs, id, leg, target, replaces);
                None
            }
            LegEvent::Ended { .. } => {
                // A party left: its supervisors go too.
                if self.calls.get(&id).is_some_and(|c| c.side_of(&leg).is_some()) {
                    let sups: Vec<LegId> = self.calls[&id].supervisors.iter().map(|(l, _)| l.clone()).collect();
                    for s in sups {
                        let _ = legs.hangup(now, &s);
                    }
                    self.control.refers.remove(&leg);
                    // The recording ends with the call (before setup publishes its end).
                    self.stop_recording(legs, id);
                }
                Some(ev)
            }
            ev => Some(ev),
        }
    }
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Caller => "caller",
        Side::Callee => "callee",
    }
}

/// Whether a leg is still up (for callers choosing what to do with it).
#[allow(dead_code)]
pub(crate) fn is_up(legs: &Legs, id: &LegId) -> bool {
    legs.get(id).is_some_and(|l| matches!(l.state, LegState::Active | LegState::Held))
}
