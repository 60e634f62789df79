//! The engine's rooms: joining (dial-in and dial-out), leaving, ending, and the
//! who-hears-whom topology, translated into media-engine calls.
//!
//! Topology is kept as the ordered list of disabled voice paths `(speaker, listener)`
//! between participant ids; everything not listed is heard (the fixed first rule).
//! A `*` in a command is expanded when the command is applied, which is what makes
//! later joiners hear and be heard by everyone.

use crate::engine::{DialOut, Engine, EngineError, EngineEvent};
use crate::leg::{Leg, LegId, LegState, Service};
use crate::room::*;
use media::Attachment;
use rand::Rng;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::info;

/// A live room.
pub(crate) struct Room {
    /// Immutable once the room exists; shared with the published [`crate::RoomDirectory`].
    pub info: Arc<RoomInfo>,
    pub media_id: media::RoomId,
    /// Every leg that joined, in join order (ended ones until they are purged).
    pub participants: Vec<LegId>,
    /// Disabled voice paths (speaker participantid, listener participantid), oldest first.
    pub blocked: Vec<(String, String)>,
    /// `end_room` was called: no new joins; gone when the last leg ends.
    pub ending: bool,
    pub max_participants: u32,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Six characters like the reference's `PhKjyX`.
fn new_confnumber() -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..6).map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char).collect()
}

pub(crate) fn participant_info(leg: &Leg, confid: &str) -> ParticipantInfo {
    let l = leg.info();
    ParticipantInfo {
        participantid: leg.participant_id.clone(),
        confid: confid.to_owned(),
        state: leg.state,
        callid: leg.call_id.clone(),
        luri: l.local_uri,
        ltag: l.local_tag.unwrap_or_default(),
        ruri: l.remote_uri,
        rtag: l.remote_tag.unwrap_or_default(),
        direction: leg.direction,
        dialogid: leg.dialog_key.clone(),
        inviteid: leg.id.clone(),
        muted: leg.muted,
        deaf: leg.deaf,
        talking: leg.talking && !leg.is_over(),
        joined_ms: l.started_ms,
        ended_ms: l.ended_ms,
        end_status: l.end_status,
        end_reason: l.end_reason,
    }
}

impl Engine {
    // ---- queries ------------------------------------------------------------------

    /// Rooms being ended (DELETE answered, legs still winding down) are gone for the
    /// APIs: not listed, not found, not changed.
    fn live_room(&self, confid: &str) -> Result<&Room, EngineError> {
        self.rooms.get(confid).filter(|r| !r.ending).ok_or(EngineError::RoomNotFound)
    }

    pub fn rooms(&self) -> Vec<RoomSnapshot> {
        let mut v: Vec<RoomSnapshot> = self.rooms.values().filter(|r| !r.ending).map(|r| self.snapshot(r)).collect();
        v.sort_by(|a, b| a.room.startts.cmp(&b.room.startts).then_with(|| a.room.confid.cmp(&b.room.confid)));
        v
    }

    /// Room infos, oldest first (what [`crate::RoomDirectory`] publishes).
    pub fn room_infos(&self) -> Vec<Arc<RoomInfo>> {
        let mut v: Vec<Arc<RoomInfo>> = self.rooms.values().filter(|r| !r.ending).map(|r| r.info.clone()).collect();
        v.sort_by(|a, b| a.startts.cmp(&b.startts).then_with(|| a.confid.cmp(&b.confid)));
        v
    }

    /// Changes whenever a room starts, is being ended, or ends.
    pub fn rooms_generation(&self) -> u64 {
        self.rooms_generation
    }

    pub fn room(&self, confid: &str) -> Result<RoomSnapshot, EngineError> {
        self.live_room(confid).map(|r| self.snapshot(r))
    }

    fn snapshot(&self, room: &Room) -> RoomSnapshot {
        let participants = room
            .participants
            .iter()
            .filter_map(|id| self.legs.get(id))
            .map(|leg| participant_info(leg, &room.info.confid))
            .collect();
        RoomSnapshot { room: (*room.info).clone(), participants }
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
    pub fn end_room(&mut self, now: Instant, confid: &str) -> Result<RoomInfo, EngineError> {
        let room = self.rooms.get_mut(confid).filter(|r| !r.ending).ok_or(EngineError::RoomNotFound)?;
        room.ending = true;
        self.rooms_generation += 1;
        let info = room.info.clone();
        let members = room.participants.clone();
        let key = (info.domain.clone(), info.confroomnum.clone());
        if self.room_by_number.get(&key) == Some(&info.confid) {
            self.room_by_number.remove(&key);
        }
        info!(confid, "ending room");
        for id in members {
            let _ = self.hangup(now, &id);
        }
        self.close_room_if_empty(confid);
        Ok(Arc::unwrap_or_clone(info))
    }

    pub fn dial_into_room(&mut self, now: Instant, confid: &str, mut d: DialOut) -> Result<ParticipantInfo, EngineError> {
        let room = self.live_room(confid)?;
        d.service = Service::Room(room.info.confroomnum.clone());
        // whoever asked, a participant belongs to its room's domain
        d.domain = Some(room.info.domain.clone());
        let id = self.place_call(now, d, Some(confid.to_owned()))?;
        let room = self.rooms.get_mut(confid).expect("checked above");
        room.participants.push(id.clone());
        room.max_participants = room.max_participants.max(room.participants.len() as u32);
        Ok(participant_info(&self.legs[&id], confid))
    }

    /// Hangs a participant up. One who has already left (ended, or a dial-out whose
    /// CANCEL is under way) is not found: a second kick, or a kick of someone who just
    /// hung up, must be told so.
    pub fn kick(&mut self, now: Instant, confid: &str, participantid: &str) -> Result<ParticipantInfo, EngineError> {
        let id = self.present_participant_leg(confid, participantid)?;
        let _ = self.hangup(now, &id);
        Ok(participant_info(&self.legs[&id], confid))
    }

    /// Mutes/deafens a participant still present (one who has left is not found).
    pub fn patch_participant(&mut self, confid: &str, participantid: &str, patch: ParticipantPatch) -> Result<ParticipantInfo, EngineError> {
        let id = self.present_participant_leg(confid, participantid)?;
        let leg = self.legs.get_mut(&id).expect("present_participant_leg checked");
        if let Some(m) = patch.muted {
            leg.muted = m;
            if let Some(media) = leg.media {
                self.media.set_muted(media, m);
            }
        }
        if let Some(d) = patch.deaf {
            leg.deaf = d;
            if let Some(media) = leg.media {
                self.media.set_deaf(media, d);
            }
        }
        Ok(participant_info(leg, confid))
    }

    /// Applies topology commands in order. All are checked before any is applied, so a
    /// command naming a participant not present changes nothing (ParticipantNotFound).
    pub fn change_topology(&mut self, confid: &str, rules: Vec<TopologyRule>) -> Result<Vec<TopologyRule>, EngineError> {
        let room = self.live_room(confid)?;
        let present: Vec<String> = room
            .participants
            .iter()
            .filter_map(|id| self.legs.get(id))
            .filter(|l| !l.is_over())
            .map(|l| l.participant_id.clone())
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
        self.push_topology(confid);
        self.topology(confid)
    }

    // ---- lifecycle (called from the SIP side of the engine) -------------------------

    /// The room an inbound leg dialling room number `number` joins, created if needed.
    /// Room numbers are per domain: the leg's domain (its Request-URI host) picks the room.
    pub(crate) fn join_room_by_number(&mut self, now_ms: u64, number: &str, leg: &mut Leg) -> String {
        if leg.domain.is_empty() {
            leg.domain = self.domain_of_host(&leg.invite.uri.host);
        }
        let key = (leg.domain.clone(), number.to_owned());
        let confid = match self.room_by_number.get(&key) {
            Some(c) => c.clone(),
            None => {
                let confnumber = new_confnumber();
                let confid = format!("rCF-{}-{}", self.cfg.node, confnumber);
                self.next_media_room += 1;
                let info = RoomInfo {
                    confid: confid.clone(),
                    confnumber,
                    confroomnum: number.to_owned(),
                    confuri: format!("<sip:conf-{}@{}>", number, leg.domain),
                    site: self.cfg.site.clone(),
                    startts: now_ms,
                    domain: leg.domain.clone(),
                };
                info!(confid = %confid, room = number, domain = %leg.domain, "room created");
                self.events.push_back(EngineEvent::RoomStarted(info.clone()));
                self.rooms.insert(
                    confid.clone(),
                    Room {
                        info: Arc::new(info),
                        media_id: media::RoomId(self.next_media_room),
                        participants: Vec::new(),
                        blocked: Vec::new(),
                        ending: false,
                        max_participants: 0,
                    },
                );
                self.room_by_number.insert(key, confid.clone());
                self.rooms_generation += 1;
                confid
            }
        };
        let room = self.rooms.get_mut(&confid).expect("present");
        room.participants.push(leg.id.clone());
        room.max_participants = room.max_participants.max(room.participants.len() as u32);
        leg.room = Some(confid.clone());
        confid
    }

    /// Connects an answered leg's media to its service. False if its room is gone.
    pub(crate) fn attach_media(&mut self, leg: &Leg) -> bool {
        let Some(m) = leg.media else { return false };
        match &leg.service {
            Service::Echo => self.media.attach(m, Attachment::Echo),
            Service::Ring => {}
            Service::Room(_) => {
                let Some(room) = leg.room.as_ref().and_then(|c| self.rooms.get(c)).filter(|r| !r.ending) else {
                    return false;
                };
                self.media.attach(m, Attachment::Room(room.media_id));
                if leg.muted {
                    self.media.set_muted(m, true);
                }
                if leg.deaf {
                    self.media.set_deaf(m, true);
                }
            }
        }
        true
    }

    /// A participant's leg ended: its voice paths go, and the room may end.
    /// Called while the leg is out of the leg table, so the room sees it as gone.
    pub(crate) fn participant_left(&mut self, confid: &str, participantid: &str) {
        let Some(room) = self.rooms.get_mut(confid) else { return };
        let before = room.blocked.len();
        room.blocked.retain(|(f, t)| f != participantid && t != participantid);
        if room.blocked.len() != before {
            self.push_topology(confid);
        }
        self.close_room_if_empty(confid);
    }

    fn close_room_if_empty(&mut self, confid: &str) {
        let Some(room) = self.rooms.get(confid) else { return };
        let live = room.participants.iter().filter_map(|id| self.legs.get(id)).any(|l| l.state != LegState::Ended);
        if live {
            return;
        }
        let room = self.rooms.remove(confid).expect("present");
        self.rooms_generation += 1;
        let key = (room.info.domain.clone(), room.info.confroomnum.clone());
        if self.room_by_number.get(&key).map(String::as_str) == Some(confid) {
            self.room_by_number.remove(&key);
        }
        info!(confid, "room ended");
        let ended_ms = epoch_ms(SystemTime::now());
        self.events.push_back(EngineEvent::RoomEnded { info: Arc::unwrap_or_clone(room.info), ended_ms, max_participants: room.max_participants });
    }

    /// The leg of a participant still present in the room. One who has left (its leg
    /// ended, or its unanswered dial-out is being cancelled) is not found.
    fn present_participant_leg(&self, confid: &str, participantid: &str) -> Result<LegId, EngineError> {
        let room = self.live_room(confid)?;
        room.participants
            .iter()
            .find(|id| self.legs.get(*id).is_some_and(|l| l.participant_id == participantid && !l.is_over() && !l.cancel_requested))
            .cloned()
            .ok_or(EngineError::ParticipantNotFound)
    }

    /// Tells the media engine the room's blocked paths, as media leg pairs.
    fn push_topology(&mut self, confid: &str) {
        let Some(room) = self.rooms.get(confid) else { return };
        let media_of = |pid: &str| {
            room.participants
                .iter()
                .filter_map(|id| self.legs.get(id))
                .find(|l| l.participant_id == pid && !l.is_over())
                .and_then(|l| l.media)
        };
        let pairs: Vec<(media::LegId, media::LegId)> =
            room.blocked.iter().filter_map(|(f, t)| Some((media_of(f)?, media_of(t)?))).collect();
        self.media.set_blocked(room.media_id, pairs);
    }
}
