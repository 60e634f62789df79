//! The bridge application: two-party calls (B2BUA).
//!
//! A call has the caller's leg and, while ringing, one outgoing leg per registered
//! contact of the callee (forking); the first to answer becomes the callee's leg and
//! the others are cancelled. Both legs are attached to a media room of two (see
//! [`crate::apps`] for why a call is a room of two), so hold, recording and the
//! supervisor modes are topology changes on that room.
//!
//! A callee with push tokens (reference 001) is woken: `EngineEvent::WakeUser` asks the
//! shell to push, and for `wake_wait` every contact that user registers (the woken app)
//! is rung too; with nothing registered the call fails only after the wait.
//!
//! Files: `mod.rs` holds the call table and its bookkeeping; `setup.rs` routing,
//! forking, ringback, answer, voicemail for calls not taken, and the end of calls; `control.rs` mid-call control
//! (hold, transfer, record, DTMF, merge, supervise).

pub(crate) mod control;
mod setup;
pub use setup::{CallerId, Reach, Target};

use crate::call::*;
use crate::engine::EngineConfig;
use crate::legs::LegId;
use std::collections::HashMap;
use std::sync::Arc;

/// Media room ids for calls start here, clear of the room application's.
pub(crate) const MEDIA_ROOM_BASE: u64 = 1 << 40;

/// A two-party call.
pub(crate) struct Call {
    pub id: CallId,
    pub domain: String,
    pub state: CallState,
    pub caller: Party,
    pub callee: Party,
    pub caller_leg: Option<LegId>,
    /// The callee's answering leg.
    pub callee_leg: Option<LegId>,
    /// Legs ringing the callee's contacts (forking); emptied at the answer.
    pub forks: Vec<LegId>,
    /// Every leg rung for the callee, for the record.
    pub rung: Vec<LegId>,
    pub media_room: media::RoomId,
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub disposition: Option<Disposition>,
    pub hangup_by: Option<Side>,
    pub held: Option<Side>,
    pub recordings: Vec<String>,
    pub api_originated: bool,
    /// Supervisors listening, whispering or barging in, by leg.
    pub supervisors: Vec<(LegId, SuperviseMode)>,
    /// Forking, ringback and caller-ID state (see `setup.rs`).
    pub setup: setup::Setup,
}

impl Call {
    pub fn leg(&self, side: Side) -> Option<&LegId> {
        match side {
            Side::Caller => self.caller_leg.as_ref(),
            Side::Callee => self.callee_leg.as_ref(),
        }
    }

    /// Which side `leg` is (forks count as the callee).
    pub fn side_of(&self, leg: &LegId) -> Option<Side> {
        if self.caller_leg.as_ref() == Some(leg) {
            Some(Side::Caller)
        } else if self.callee_leg.as_ref() == Some(leg) || self.forks.contains(leg) {
            Some(Side::Callee)
        } else {
            None
        }
    }
}

/// Every two-party call, by id and by leg.
pub(crate) struct Bridges {
    pub cfg: Arc<EngineConfig>,
    pub calls: HashMap<CallId, Call>,
    pub by_leg: HashMap<LegId, CallId>,
    /// The next CallId; the shell seeds it above every id in the store.
    pub next_id: u64,
    next_media_room: u64,
    /// Mid-call control's own state (see `control.rs`).
    pub control: control::Control,
    /// The directory as the engine last got it: users' voicemail delays (call modes).
    pub directory: Arc<crate::users::DirectorySnapshot>,
    /// Callers to hand to the voicemail application (the engine does, in dispatch).
    pub to_voicemail: Vec<(LegId, crate::apps::voicemail::Mailbox)>,
}

impl Bridges {
    pub fn new(cfg: Arc<EngineConfig>) -> Bridges {
        Bridges { cfg, calls: HashMap::new(), by_leg: HashMap::new(), next_id: 1, next_media_room: MEDIA_ROOM_BASE, control: Default::default(), directory: Default::default(), to_voicemail: Vec::new() }
    }

    /// Call ids continue above `floor` (the highest id in the call log), so they stay
    /// unique across restarts.
    pub fn seed_ids(&mut self, floor: u64) {
        self.next_id = self.next_id.max(floor + 1);
    }

    pub fn new_call_id(&mut self) -> CallId {
        let id = CallId(self.next_id);
        self.next_id += 1;
        id
    }

    pub fn new_media_room(&mut self) -> media::RoomId {
        self.next_media_room += 1;
        media::RoomId(self.next_media_room)
    }

    pub fn info(&self, call: &Call, legs: &crate::legs::Legs) -> CallInfo {
        let codec = |l: Option<&LegId>| l.and_then(|id| legs.get(id)).and_then(|l| l.codec.clone());
        CallInfo {
            call_id: call.id,
            domain: call.domain.clone(),
            state: call.state,
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            caller_leg: call.caller_leg.clone(),
            callee_leg: call.callee_leg.clone(),
            ringing_legs: call.rung.clone(),
            started_ms: call.started_ms,
            answered_ms: call.answered_ms,
            ended_ms: call.ended_ms,
            disposition: call.disposition,
            hangup_by: call.hangup_by,
            caller_codec: codec(call.caller_leg.as_ref()),
            callee_codec: codec(call.callee_leg.as_ref()),
            held: call.held,
            recordings: call.recordings.clone(),
            api_originated: call.api_originated,
        }
    }
}

impl Bridges {
    /// Something happened to one of a call's legs.
    pub fn on_leg_event(&mut self, now: std::time::Instant, legs: &mut crate::legs::Legs, call: CallId, ev: crate::legs::LegEvent) {
        // Mid-call control first (transfer and supervisor legs, hold, REFER, recording),
        // then setup and the end of calls; what is left gets plain endpoint behaviour.
        let Some(ev) = self.on_control_event(now, legs, call, ev) else { return };
        if let Some(ev) = self.on_setup_event(now, legs, call, ev) {
            super::default_handling(now, legs, ev);
        }
    }
}
