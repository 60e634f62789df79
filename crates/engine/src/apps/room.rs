//! The room application: conference rooms (dial-in and dial-out), participants
//! joining and leaving, ending a room, and the who-hears-whom topology, translated
//! into media-engine calls.
//!
//! Topology is kept as the ordered list of disabled voice paths `(speaker, listener)`
//! between participant ids; everything not listed is heard (the fixed first rule).
//! A `*` in a command is expanded when the command is applied, which is what makes
//! later joiners hear and be heard by everyone.

mod audio;

use super::Owner;
use crate::engine::{DialOut, EngineConfig, EngineError, EngineEvent};
use crate::legs::{Leg, LegEvent, LegId, LegState, Legs, Service};
use crate::room::*;
use media::Attachment;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::info;

/// One leg's place in a room.
pub(crate) struct Participant {
    pub leg: LegId,
    /// Participant id (UUID-shaped); also used as the leg's dialog id key in APIs.
    pub participant_id: String,
    /// Runtime dialog identifier shown to APIs (`rDL-...`).
    pub dialog_key: String,
    pub muted: bool,
    pub deaf: bool,
    pub gain_in_db: f32,
    pub gain_out_db: f32,
}

impl Participant {
    fn new(leg: LegId) -> Participant {
        Participant {
            leg,
            participant_id: LegId::new().0,
            dialog_key: format!("rDL-{}", sip::dialog::random_token(12)),
            muted: false,
            deaf: false,
            gain_in_db: 0.0,
            gain_out_db: 0.0,
        }
    }
}

/// A live room.
pub(crate) struct Room {
    /// Immutable once the room exists; shared with the published [`crate::RoomDirectory`].
    pub info: Arc<RoomInfo>,
    pub media_id: media::RoomId,
    /// Every leg that joined, in join order (ended ones until they are forgotten).
    pub participants: Vec<Participant>,
    /// Disabled voice paths (speaker participantid, listener participantid), oldest first.
    pub blocked: Vec<(String, String)>,
    /// `end_room` was called: no new joins; gone when the last leg ends.
    pub ending: bool,
    /// Opened by an API: stays when its last participant leaves, until ended.
    pub kept_open: bool,
    pub max_participants: u32,
    /// Joins and leaves are announced: the first participant hears the
    /// first-participant prompt, the others a sound when someone joins or leaves.
    pub announce: bool,
    /// The room's recording, while one runs (and its numbering after).
    pub(crate) recording: Option<audio::Recording>,
    /// The owner's leg, in a scheduled conference (see [`super::scheduled`]).
    pub owner: Option<LegId>,
    /// The room ends when `owner` leaves (MX `delOnOwnerLeave`).
    pub end_with_owner: bool,
    /// The looping first-participant prompt (`loop_first_participant_prompt`), stopped
    /// when someone joins.
    first_prompt: Option<(LegId, media::PromptId)>,
    /// Since when one participant has been left alone (`lonely_user_timer`).
    alone_since: Option<Instant>,
}

/// The timer tag of the lonely-user check.
const LONELY_TIMER: u32 = 0x4c4e;

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Six characters like the reference's `PhKjyX`.
fn new_confnumber() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..6).map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char).collect()
}

pub(crate) fn participant_info(leg: &Leg, p: &Participant, confid: &str) -> ParticipantInfo {
    let l = leg.info();
    ParticipantInfo {
        participantid: p.participant_id.clone(),
        confid: confid.to_owned(),
        state: leg.state,
        callid: leg.call_id.clone(),
        luri: l.local_uri,
        ltag: l.local_tag.unwrap_or_default(),
        ruri: l.remote_uri,
        rtag: l.remote_tag.unwrap_or_default(),
        direction: leg.direction,
        dialogid: p.dialog_key.clone(),
        inviteid: leg.id.clone(),
        muted: p.muted,
        deaf: p.deaf,
        gain_in_db: p.gain_in_db,
        gain_out_db: p.gain_out_db,
        talking: leg.talking && !leg.is_over(),
        joined_ms: l.started_ms,
        ended_ms: l.ended_ms,
        end_status: l.end_status,
        end_reason: l.end_reason,
        progress_status: leg.last_response.as_ref().map(|(s, _)| *s),
        progress_reason: leg.last_response.as_ref().map(|(_, r)| r.clone()),
    }
}

/// Every room, by confid and by (domain, room number).
pub(crate) struct Rooms {
    cfg: Arc<EngineConfig>,
    rooms: HashMap<String, Room>,
    /// (domain, room number) → confid: each domain has its own room numbers.
    by_number: HashMap<(String, String), String>,
    next_media_room: u64,
    /// Bumped when a room starts, is being ended, or ends (see [`crate::RoomDirectory`]).
    generation: u64,
    /// Prompts started over an API, until their end is published.
    api_prompts: HashMap<media::PromptId, audio::ApiPrompt>,
    /// Recording files not yet complete, by media recording id.
    pending_files: Vec<(u64, audio::PendingFile)>,
}

impl Rooms {
    pub fn new(cfg: Arc<EngineConfig>) -> Rooms {
        Rooms {
            cfg,
            rooms: HashMap::new(),
            by_number: HashMap::new(),
            next_media_room: 0,
            generation: 0,
            api_prompts: HashMap::new(),
            pending_files: Vec::new(),
        }
    }

    // ---- queries ------------------------------------------------------------------

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Rooms being ended (DELETE answered, legs still winding down) are gone for the
    /// APIs: not listed, not found, not changed.
    fn live_room(&self, confid: &str) -> Result<&Room, EngineError> {
        self.rooms.get(confid).filter(|r| !r.ending).ok_or(EngineError::RoomNotFound)
    }

    pub fn snapshots(&self, legs: &Legs) -> Vec<RoomSnapshot> {
        let mut v: Vec<RoomSnapshot> = self.rooms.values().filter(|r| !r.ending).map(|r| snapshot(legs, r)).collect();
        v.sort_by(|a, b| a.room.startts.cmp(&b.room.startts).then_with(|| a.room.confid.cmp(&b.room.confid)));
        v
    }

    /// Room infos, oldest first (what [`crate::RoomDirectory`] publishes).
    pub fn infos(&self) -> Vec<Arc<RoomInfo>> {
        let mut v: Vec<Arc<RoomInfo>> = self.rooms.values().filter(|r| !r.ending).map(|r| r.info.clone()).collect();
        v.sort_by(|a, b| a.startts.cmp(&b.startts).then_with(|| a.confid.cmp(&b.confid)));
        v
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn snapshot(&self, legs: &Legs, confid: &str) -> Result<RoomSnapshot, EngineError> {
        self.live_room(confid).map(|r| snapshot(legs, r))
    }

    pub fn topology(&self, confid: &str) -> Result<Vec<TopologyRule>, EngineError> {
        let room = self.live_room(confid)?;
        let mut rules = vec![TopologyRule::everyone()];
        rules.extend(room.blocked.iter().map(|(f, t)| TopologyRule { from: f.clone(), to: t.clone(), enabled: false }));
        Ok(rules)
    }

    // ---- commands -----------------------------------------------------------------

    /// Ends a room: every live participant is hung up (BYE, or CANCEL while a dial-out
    /// rings). For the APIs the room is gone at once (a second end is RoomNotFound);
    /// internally it lasts until its last leg has ended.
    pub fn end_room(&mut self, now: Instant, legs: &mut Legs, confid: &str) -> Result<RoomInfo, EngineError> {
        let room = self.rooms.get_mut(confid).filter(|r| !r.ending).ok_or(EngineError::RoomNotFound)?;
        room.ending = true;
        self.generation += 1;
        let info = room.info.clone();
        let members: Vec<LegId> = room.participants.iter().map(|p| p.leg.clone()).collect();
        let key = (info.domain.clone(), info.confroomnum.clone());
        if self.by_number.get(&key) == Some(&info.confid) {
            self.by_number.remove(&key);
        }
        info!(confid, "ending room");
        for id in members {
            let _ = legs.hangup(now, &id);
        }
        self.close_if_empty(legs, confid);
        Ok(Arc::unwrap_or_clone(info))
    }

    pub fn dial_into_room(&mut self, now: Instant, legs: &mut Legs, confid: &str, mut d: DialOut) -> Result<ParticipantInfo, EngineError> {
        let room = self.live_room(confid)?;
        d.service = Service::Room(room.info.confroomnum.clone());
        // whoever asked, a participant belongs to its room's domain
        d.domain = Some(room.info.domain.clone());
        let id = legs.place(now, d, Owner::Room(confid.to_owned()))?;
        let room = self.rooms.get_mut(confid).expect("checked above");
        room.participants.push(Participant::new(id.clone()));
        room.max_participants = room.max_participants.max(room.participants.len() as u32);
        let p = room.participants.last().expect("just pushed");
        Ok(participant_info(legs.get(&id).expect("just placed"), p, confid))
    }

    /// Hangs a participant up. One who has already left (ended, or a dial-out whose
    /// CANCEL is under way) is not found: a second kick, or a kick of someone who just
    /// hung up, must be told so.
    pub fn kick(&mut self, now: Instant, legs: &mut Legs, confid: &str, participantid: &str) -> Result<ParticipantInfo, EngineError> {
        let id = self.present_participant_leg(legs, confid, participantid)?;
        let _ = legs.hangup(now, &id);
        self.participant_info_of(legs, confid, &id)
    }

    fn participant_info_of(&self, legs: &Legs, confid: &str, id: &LegId) -> Result<ParticipantInfo, EngineError> {
        let room = self.rooms.get(confid).ok_or(EngineError::RoomNotFound)?;
        let p = room.participants.iter().find(|p| &p.leg == id).ok_or(EngineError::ParticipantNotFound)?;
        let leg = legs.get(id).ok_or(EngineError::ParticipantNotFound)?;
        Ok(participant_info(leg, p, confid))
    }

    /// Mutes/deafens a participant still present (one who has left is not found).
    pub fn patch_participant(&mut self, legs: &mut Legs, confid: &str, participantid: &str, patch: ParticipantPatch) -> Result<ParticipantInfo, EngineError> {
        let id = self.present_participant_leg(legs, confid, participantid)?;
        let media = legs.media_of(&id);
        let room = self.rooms.get_mut(confid).expect("checked");
        let p = room.participants.iter_mut().find(|p| p.leg == id).expect("present_participant_leg checked");
        if let Some(m) = patch.muted {
            p.muted = m;
            if let Some(media) = media {
                legs.media.set_muted(media, m);
            }
        }
        if let Some(d) = patch.deaf {
            p.deaf = d;
            if let Some(media) = media {
                legs.media.set_deaf(media, d);
            }
        }
        if patch.gain_in_db.is_some() || patch.gain_out_db.is_some() {
            let max = media::engine::MAX_GAIN_DB;
            if let Some(g) = patch.gain_in_db {
                p.gain_in_db = g.clamp(-max, max);
            }
            if let Some(g) = patch.gain_out_db {
                p.gain_out_db = g.clamp(-max, max);
            }
            if let Some(media) = media {
                legs.media.set_gain(media, p.gain_in_db, p.gain_out_db);
            }
        }
        self.participant_info_of(legs, confid, &id)
    }

    /// Applies topology commands in order. All are checked before any is applied, so a
    /// command naming a participant not present changes nothing (ParticipantNotFound).
    pub fn change_topology(&mut self, legs: &Legs, confid: &str, rules: Vec<TopologyRule>) -> Result<Vec<TopologyRule>, EngineError> {
        let room = self.live_room(confid)?;
        let present: Vec<String> = room
            .participants
            .iter()
            .filter(|p| legs.get(&p.leg).is_some_and(|l| !l.is_over()))
            .map(|p| p.participant_id.clone())
            .collect();
        // a rule naming someone not (or no longer) present names a participant not found
        if rules.iter().flat_map(|r| [&r.from, &r.to]).any(|side| side != "*" && !present.contains(side)) {
            return Err(EngineError::ParticipantNotFound);
        }
        let room = self.rooms.get_mut(confid).expect("checked above");
        for r in rules {
            let expand = |side: &String| if side == "*" { present.clone() } else { vec![side.clone()] };
            for from in expand(&r.from) {
                for to in expand(&r.to) {
                    if from == to {
                        continue;
                    }
                    let path = (from.clone(), to);
                    let known = room.blocked.contains(&path);
                    if r.enabled && known {
                        room.blocked.retain(|p| p != &path);
                    } else if !r.enabled && !known {
                        room.blocked.push(path);
                    }
                }
            }
        }
        self.push_topology(legs, confid);
        self.topology(confid)
    }

    // ---- legs -----------------------------------------------------------------------

    /// A caller dialled room number `number`: answer, and join the room (created if
    /// needed). Room numbers are per domain: the leg's domain picks the room.
    pub fn on_incoming(&mut self, now: Instant, legs: &mut Legs, id: &LegId, number: &str) {
        if legs.answer(now, id).is_err() {
            return;
        }
        let Some(leg) = legs.get(id) else { return };
        let (domain, started_ms) = (leg.domain.clone(), leg.info().started_ms);
        let confid = self.join_by_number(legs, started_ms, &domain, number, id);
        if let Some(l) = legs.get_mut(id) {
            l.owner = Owner::Room(confid.clone());
        }
        if self.attach(legs, &confid, id) {
            self.on_joined(legs, &confid, id);
        }
    }

    /// A caller whose number `direct_room_re` matched: into the room at once, no
    /// prompt, and the room announces joins and leaves (SEMS's direct access).
    pub fn on_incoming_direct(&mut self, now: Instant, legs: &mut Legs, id: &LegId, number: &str) {
        let Some(domain) = legs.get(id).map(|l| l.domain.clone()) else { return };
        if self.cfg.ivr.private_rooms && !self.has_room(&domain, number) {
            info!(leg = %id, room = number, "direct room entry refused: no such room (private rooms)");
            legs.reject(now, id, 404, Some("No such room"));
            legs.end_leg(now, id, 404, "No such room", false);
            return;
        }
        if legs.answer(now, id).is_err() {
            return;
        }
        if let Err(e) = self.adopt_announced(legs, number, &domain, std::slice::from_ref(id)) {
            info!(leg = %id, room = number, error = %e, "direct room entry failed");
            let _ = legs.hangup(now, id);
        }
    }

    /// Whether room `number` of `domain` is live (someone is in it, or it was made).
    pub fn has_room(&self, domain: &str, number: &str) -> bool {
        self.by_number.get(&(domain.to_owned(), number.to_owned())).is_some_and(|c| self.rooms.get(c).is_some_and(|r| !r.ending))
    }

    /// Makes `leg`, a participant of room `confid`, its owner; with `end_with_owner`
    /// the room ends when that leg leaves.
    pub fn set_owner(&mut self, confid: &str, leg: &LegId, end_with_owner: bool) {
        if let Some(r) = self.rooms.get_mut(confid).filter(|r| r.participants.iter().any(|p| &p.leg == leg)) {
            r.owner = Some(leg.clone());
            r.end_with_owner = end_with_owner;
        }
    }

    /// The PIN callers must key to enter room `number`, if it has one.
    pub fn entry_pin(&self, _domain: &str, number: &str) -> Option<String> {
        self.cfg.ivr.room_pins.get(number).cloned()
    }

    /// [`Rooms::adopt`] into a room that announces joins and leaves from now on (the
    /// conference access number's callers, SEMS-style rooms).
    pub fn adopt_announced(&mut self, legs: &mut Legs, room: &str, domain: &str, members: &[LegId]) -> Result<String, EngineError> {
        let key = (domain.to_owned(), room.to_owned());
        if let Some(r) = self.by_number.get(&key).and_then(|c| self.rooms.get_mut(c)) {
            r.announce = true;
        }
        let confid = self.adopt_quietly(legs, room, domain, members)?;
        if let Some(r) = self.rooms.get_mut(&confid) {
            r.announce = true;
        }
        for id in members {
            self.on_joined(legs, &confid, id);
        }
        Ok(confid)
    }

    /// Someone joined: alone, they hear the first-participant prompt; otherwise those
    /// already there hear the join sound (the newcomer hears nothing, as in SEMS).
    fn on_joined(&mut self, legs: &mut Legs, confid: &str, id: &LegId) {
        self.record_joiner(legs, confid, id);
        let Some(room) = self.rooms.get_mut(confid) else { return };
        room.alone_since = None;
        if !room.announce {
            return;
        }
        let others: Vec<LegId> = room
            .participants
            .iter()
            .filter(|p| &p.leg != id && legs.get(&p.leg).is_some_and(|l| l.state == LegState::Active || l.state == LegState::Held))
            .map(|p| p.leg.clone())
            .collect();
        if others.is_empty() {
            let mut spec = media::PromptSpec::once(vec![self.cfg.prompts.part("first_participant")]);
            // SEMS's loop_first_participant_prompt: until someone joins.
            spec.repeat = self.cfg.ivr.loop_first_participant_prompt;
            let repeat = spec.repeat;
            let p = legs.play(id, spec);
            if repeat {
                room.first_prompt = p.map(|p| (id.clone(), p));
            }
        } else {
            if let Some((leg, p)) = room.first_prompt.take() {
                legs.stop_prompt(&leg, Some(p));
            }
            for o in others {
                legs.play(&o, media::PromptSpec::once(vec![self.cfg.prompts.part("join")]));
            }
        }
    }

    /// A participant may be left alone: with `lonely_user_timer`, a check is due then.
    fn maybe_alone(&mut self, now: Instant, legs: &mut Legs, confid: &str) {
        let Some(after) = self.cfg.ivr.lonely_user_timer else { return };
        let Some(room) = self.rooms.get_mut(confid).filter(|r| !r.ending) else { return };
        let mut live = room.participants.iter().filter(|p| legs.get(&p.leg).is_some_and(|l| !l.is_over()));
        let (Some(only), None) = (live.next(), live.next()) else { return };
        let only = only.leg.clone();
        room.alone_since = Some(now);
        legs.set_timer(&only, now + after, LONELY_TIMER);
    }

    /// The lonely-user check: still alone for the whole time, the participant is hung up.
    fn lonely_check(&mut self, now: Instant, legs: &mut Legs, confid: &str, leg: &LegId) {
        let Some(after) = self.cfg.ivr.lonely_user_timer else { return };
        let Some(room) = self.rooms.get(confid).filter(|r| !r.ending) else { return };
        if room.alone_since.is_some_and(|t| now >= t + after) && room.participants.iter().any(|p| &p.leg == leg) {
            info!(confid, %leg, "alone in the room for the lonely-user time: hanging up");
            let _ = legs.hangup(now, leg);
        }
    }

    /// Someone left: those remaining hear the leave sound.
    fn announce_leave(&mut self, legs: &mut Legs, confid: &str) {
        let Some(room) = self.rooms.get(confid).filter(|r| r.announce && !r.ending) else { return };
        let present: Vec<LegId> = room.participants.iter().filter(|p| legs.get(&p.leg).is_some_and(|l| !l.is_over())).map(|p| p.leg.clone()).collect();
        for p in present {
            legs.play(&p, media::PromptSpec::once(vec![self.cfg.prompts.part("leave")]));
        }
    }

    pub fn on_leg_event(&mut self, now: Instant, legs: &mut Legs, confid: &str, ev: LegEvent) {
        match ev {
            LegEvent::Answered { leg } => {
                if self.attach(legs, confid, &leg) {
                    self.on_joined(legs, confid, &leg);
                } else {
                    let _ = legs.hangup_with(now, &leg, Some((410, "Room ended before the call was answered")));
                }
            }
            LegEvent::Ended { leg, .. } => {
                let pid = self.rooms.get(confid).and_then(|r| r.participants.iter().find(|p| p.leg == leg)).map(|p| p.participant_id.clone());
                if let Some(pid) = pid {
                    self.participant_left(legs, confid, &pid);
                }
                self.maybe_alone(now, legs, confid);
                let owner_left = self.rooms.get_mut(confid).filter(|r| r.owner.as_ref() == Some(&leg)).map(|r| {
                    r.owner = None;
                    r.end_with_owner && !r.ending
                });
                if owner_left == Some(true) {
                    info!(confid, "the owner left: ending the room");
                    let _ = self.end_room(now, legs, confid);
                }
            }
            LegEvent::PromptEnded { prompt, end, .. } => self.prompt_ended(legs, prompt, end),
            LegEvent::Timer { leg, tag: LONELY_TIMER } => self.lonely_check(now, legs, confid, &leg),
            LegEvent::Forgotten { leg, .. } => {
                if let Some(room) = self.rooms.get_mut(confid) {
                    room.participants.retain(|p| p.leg != leg);
                }
            }
            ev => super::default_handling(now, legs, ev),
        }
    }

    /// Takes over answered legs another application hands over (a two-party call
    /// merged into a conference): they join the room with confid `room`, or the room
    /// numbered `room` in `domain` (created if needed), and the room decides for them
    /// from now on. Returns the confid.
    pub fn adopt(&mut self, legs: &mut Legs, room: &str, domain: &str, members: &[LegId]) -> Result<String, EngineError> {
        let confid = self.adopt_quietly(legs, room, domain, members)?;
        for id in members {
            self.on_joined(legs, &confid, id);
        }
        Ok(confid)
    }

    fn adopt_quietly(&mut self, legs: &mut Legs, room: &str, domain: &str, members: &[LegId]) -> Result<String, EngineError> {
        let started_ms = epoch_ms(SystemTime::now());
        let confid = if self.rooms.contains_key(room) {
            self.live_room(room)?;
            room.to_owned()
        } else if !room.is_empty() && room.bytes().all(|b| b.is_ascii_digit()) {
            let Some((first, rest)) = members.split_first() else { return Err(EngineError::BadRequest("nobody to merge".into())) };
            let confid = self.join_by_number(legs, started_ms, domain, room, first);
            for id in rest {
                let r = self.rooms.get_mut(&confid).expect("just joined");
                r.participants.push(Participant::new(id.clone()));
            }
            confid
        } else {
            return Err(EngineError::RoomNotFound);
        };
        let r = self.rooms.get_mut(&confid).expect("present");
        for id in members {
            if !r.participants.iter().any(|p| &p.leg == id) {
                r.participants.push(Participant::new(id.clone()));
            }
        }
        r.max_participants = r.max_participants.max(r.participants.len() as u32);
        for id in members {
            if let Some(l) = legs.get_mut(id) {
                l.owner = Owner::Room(confid.clone());
                l.service = Service::Room(self.rooms[&confid].info.confroomnum.clone());
            }
            self.attach(legs, &confid, id);
        }
        info!(confid = %confid, legs = members.len(), "legs merged into the room");
        Ok(confid)
    }

    /// The room a leg dialling `number` in `domain` joins, created if needed.
    fn join_by_number(&mut self, legs: &mut Legs, now_ms: u64, domain: &str, number: &str, id: &LegId) -> String {
        let confid = self.room_for_number(legs, now_ms, domain, number);
        let room = self.rooms.get_mut(&confid).expect("present");
        room.participants.push(Participant::new(id.clone()));
        room.max_participants = room.max_participants.max(room.participants.len() as u32);
        confid
    }

    /// Opens room `number` in `domain` for an API: created (with nobody in it) if it
    /// does not exist. Either way it now stays open when empty, until ended. True
    /// when it was created.
    pub fn open_room(&mut self, legs: &mut Legs, domain: &str, number: &str) -> Result<(RoomInfo, bool), EngineError> {
        if number.is_empty() || number.len() > 64 || !number.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err(EngineError::BadRequest("a room number is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'".into()));
        }
        let domain = domain.to_ascii_lowercase();
        let existed = self.by_number.contains_key(&(domain.clone(), number.to_owned()));
        let confid = self.room_for_number(legs, epoch_ms(SystemTime::now()), &domain, number);
        let room = self.rooms.get_mut(&confid).expect("present");
        room.kept_open = true;
        Ok(((*room.info).clone(), !existed))
    }

    /// The live room numbered `number` in `domain`.
    pub fn by_number(&self, legs: &Legs, domain: &str, number: &str) -> Result<RoomSnapshot, EngineError> {
        let confid = self.by_number.get(&(domain.to_ascii_lowercase(), number.to_owned())).ok_or(EngineError::RoomNotFound)?;
        self.snapshot(legs, confid)
    }

    /// The confid of room `number` in `domain`, created (empty) if needed.
    fn room_for_number(&mut self, legs: &mut Legs, now_ms: u64, domain: &str, number: &str) -> String {
        let key = (domain.to_owned(), number.to_owned());
        match self.by_number.get(&key) {
            Some(c) => c.clone(),
            None => {
                let confnumber = new_confnumber();
                let confid = format!("rCF-{}-{}", self.cfg.node, confnumber);
                self.next_media_room += 1;
                let info = RoomInfo {
                    confid: confid.clone(),
                    confnumber,
                    confroomnum: number.to_owned(),
                    confuri: format!("<sip:conf-{}@{}>", number, domain),
                    site: self.cfg.site.clone(),
                    startts: now_ms,
                    domain: domain.to_owned(),
                };
                info!(confid = %confid, room = number, domain = %domain, "room created");
                legs.public.push_back(EngineEvent::RoomStarted(info.clone()));
                self.rooms.insert(
                    confid.clone(),
                    Room {
                        info: Arc::new(info),
                        media_id: media::RoomId(self.next_media_room),
                        participants: Vec::new(),
                        blocked: Vec::new(),
                        ending: false,
                        kept_open: false,
                        max_participants: 0,
                        announce: self.cfg.join_leave_sounds,
                        recording: None,
                        owner: None,
                        end_with_owner: false,
                        first_prompt: None,
                        alone_since: None,
                    },
                );
                self.by_number.insert(key, confid.clone());
                self.generation += 1;
                confid
            }
        }
    }

    /// Connects an answered participant's media to its room. False if the room is gone.
    fn attach(&mut self, legs: &mut Legs, confid: &str, id: &LegId) -> bool {
        let Some(room) = self.rooms.get(confid).filter(|r| !r.ending) else { return false };
        let Some(p) = room.participants.iter().find(|p| &p.leg == id) else { return false };
        let Some(m) = legs.media_of(id) else { return false };
        legs.media.attach(m, Attachment::Room(room.media_id));
        if p.muted {
            legs.media.set_muted(m, true);
        }
        if p.deaf {
            legs.media.set_deaf(m, true);
        }
        if p.gain_in_db != 0.0 || p.gain_out_db != 0.0 {
            legs.media.set_gain(m, p.gain_in_db, p.gain_out_db);
        }
        true
    }

    /// A participant's leg ended: its voice paths go, and the room may end.
    fn participant_left(&mut self, legs: &mut Legs, confid: &str, participantid: &str) {
        if let Some(leg) = self.rooms.get(confid).and_then(|r| r.participants.iter().find(|p| p.participant_id == participantid)).map(|p| p.leg.clone()) {
            self.record_leaver(legs, confid, &leg);
        }
        let Some(room) = self.rooms.get_mut(confid) else { return };
        let before = room.blocked.len();
        room.blocked.retain(|(f, t)| f != participantid && t != participantid);
        if room.blocked.len() != before {
            self.push_topology(legs, confid);
        }
        self.announce_leave(legs, confid);
        self.close_if_empty(legs, confid);
    }

    fn close_if_empty(&mut self, legs: &mut Legs, confid: &str) {
        let Some(room) = self.rooms.get(confid) else { return };
        if room.kept_open && !room.ending {
            return;
        }
        let live = room.participants.iter().filter_map(|p| legs.get(&p.leg)).any(|l| l.state != LegState::Ended);
        if live {
            return;
        }
        self.stop_recording(legs, confid);
        let room = self.rooms.remove(confid).expect("present");
        self.generation += 1;
        let key = (room.info.domain.clone(), room.info.confroomnum.clone());
        if self.by_number.get(&key).map(String::as_str) == Some(confid) {
            self.by_number.remove(&key);
        }
        info!(confid, "room ended");
        let ended_ms = epoch_ms(SystemTime::now());
        legs.public.push_back(EngineEvent::RoomEnded { info: Arc::unwrap_or_clone(room.info), ended_ms, max_participants: room.max_participants });
    }

    /// The leg of a participant still present in the room. One who has left (its leg
    /// ended, or its unanswered dial-out is being cancelled) is not found.
    fn present_participant_leg(&self, legs: &Legs, confid: &str, participantid: &str) -> Result<LegId, EngineError> {
        let room = self.live_room(confid)?;
        room.participants
            .iter()
            .find(|p| p.participant_id == participantid && legs.get(&p.leg).is_some_and(|l| !l.is_over() && !l.cancel_requested))
            .map(|p| p.leg.clone())
            .ok_or(EngineError::ParticipantNotFound)
    }

    /// Tells the media engine the room's blocked paths, as media leg pairs.
    fn push_topology(&self, legs: &Legs, confid: &str) {
        let Some(room) = self.rooms.get(confid) else { return };
        let media_of = |pid: &str| {
            room.participants
                .iter()
                .find(|p| p.participant_id == pid && legs.get(&p.leg).is_some_and(|l| !l.is_over()))
                .and_then(|p| legs.media_of(&p.leg))
        };
        let pairs: Vec<(media::LegId, media::LegId)> =
            room.blocked.iter().filter_map(|(f, t)| Some((media_of(f)?, media_of(t)?))).collect();
        legs.media.set_blocked(room.media_id, pairs);
    }
}

fn snapshot(legs: &Legs, room: &Room) -> RoomSnapshot {
    let participants = room
        .participants
        .iter()
        .filter_map(|p| legs.get(&p.leg).map(|leg| participant_info(leg, p, &room.info.confid)))
        .collect();
    RoomSnapshot { room: (*room.info).clone(), participants }
}
