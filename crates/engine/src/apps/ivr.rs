//! The conference access number: callers key in a room number (and the room's PIN
//! where it has one) and are put into that room, as SEMS's webconference does it
//! (reference notes `sems-webconference.md`, "Dial-in flow").
//!
//! ```text
//!  INVITE sip:conference@…  → answer, play pin_prompt (a digit stops it)
//!    digits … # or *          → empty, or no such room in private mode: wrong_pin, again
//!                             → the room has a PIN: participant_pin, collect it
//!                             → entering_conference, then the caller joins the room
//!  no input for a while       → the prompt again; after `max_attempts` rounds of wrong
//!                               entries or silence: wrong_pin_bye, then BYE
//! ```
//!
//! An entry that is the access id of a scheduled conference (see [`crate::schedule`])
//! is checked against that conference's window: outside it the caller hears
//! `conference_not_started` or `conference_ended` and a BYE; inside it the caller is
//! handed to [`super::scheduled`] after the entering prompt.
//!
//! Once in the room the caller belongs to [`super::room`], which plays the
//! first-participant prompt and the join and leave sounds of rooms entered this way.
//! Unlike SEMS there is an inter-digit timeout (an entry is taken after a pause) and a
//! limit on retries, so a caller who says nothing does not hold a line for ever.

use super::digits::{DigitCollector, Entry};
use super::room::Rooms;
use super::scheduled::Scheduled;
use crate::schedule::Window;
use crate::users::{DirectorySnapshot, UserId};
use crate::engine::EngineConfig;
use crate::legs::{LegEvent, LegId, Legs};
use media::{PromptEnd, PromptId, PromptSpec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// Where a caller is in the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    RoomNumber,
    RoomPin { room: String, pin: String },
    /// The entering prompt plays; the caller joins when it ends (the scheduled
    /// conference with this store id, when it is one).
    Entering { room: String, scheduled: Option<i64> },
    /// The goodbye prompt plays; BYE when it ends.
    Goodbye,
}

struct Caller {
    stage: Stage,
    digits: DigitCollector,
    /// The prompt playing, whose end moves the caller on.
    prompt: Option<PromptId>,
    /// Generation of the caller's timer: a timer of an older generation is stale.
    timer: u32,
    /// Wrong entries and silent rounds so far.
    attempts: u32,
    /// The directory user the caller authenticated as (the owner of a scheduled
    /// conference is recognised by it).
    user: Option<UserId>,
}

pub(crate) struct Ivr {
    cfg: Arc<EngineConfig>,
    callers: HashMap<LegId, Caller>,
    /// For scheduled conferences' access ids; replaced with every directory change.
    pub directory: Arc<DirectorySnapshot>,
}

impl Ivr {
    pub fn new(cfg: Arc<EngineConfig>) -> Ivr {
        Ivr { cfg, callers: HashMap::new(), directory: Default::default() }
    }

    /// A call that dialled a scheduled conference's access id as a room number: as if
    /// it had keyed that id at the access number.
    pub fn on_incoming_entry(&mut self, now: Instant, legs: &mut Legs, rooms: &mut Rooms, id: &LegId, user: Option<UserId>, entry: String) {
        if self.answer(now, legs, id, user) {
            self.submit(legs, rooms, id, entry);
        }
    }

    /// A call to the access number: answer it and ask for the room number.
    pub fn on_incoming(&mut self, now: Instant, legs: &mut Legs, id: &LegId, user: Option<UserId>) {
        if self.answer(now, legs, id, user) {
            info!(leg = %id, "conference access number: asking for the room number");
            self.prompt(legs, id, "pin_prompt", true);
        }
    }

    /// Answers the call and starts its menu at the room number; false if it cannot be answered.
    fn answer(&mut self, now: Instant, legs: &mut Legs, id: &LegId, user: Option<UserId>) -> bool {
        if legs.answer(now, id).is_err() {
            return false;
        }
        let ivr = &self.cfg.ivr;
        self.callers.insert(
            id.clone(),
            Caller {
                stage: Stage::RoomNumber,
                digits: DigitCollector::new(ivr.max_digits, ivr.inter_digit_timeout),
                prompt: None,
                timer: 0,
                attempts: 0,
                user,
            },
        );
        true
    }

    pub fn on_leg_event(&mut self, now: Instant, legs: &mut Legs, rooms: &mut Rooms, scheduled: &mut Scheduled, ev: LegEvent) {
        match ev {
            LegEvent::Dtmf { leg, digit, .. } => self.on_digit(now, legs, rooms, &leg, digit),
            LegEvent::Timer { leg, tag } => self.on_timer(legs, rooms, &leg, tag),
            LegEvent::PromptEnded { leg, prompt, end } => self.on_prompt_ended(now, legs, rooms, scheduled, &leg, prompt, end),
            LegEvent::Ended { leg, .. } => {
                self.callers.remove(&leg);
            }
            ev => super::default_handling(now, legs, ev),
        }
    }

    fn on_digit(&mut self, now: Instant, legs: &mut Legs, rooms: &mut Rooms, id: &LegId, digit: char) {
        let Some(c) = self.callers.get_mut(id) else { return };
        if !matches!(c.stage, Stage::RoomNumber | Stage::RoomPin { .. }) {
            return;
        }
        match c.digits.push(now, digit) {
            Entry::Ignored => {}
            Entry::Collecting { deadline } => {
                // A digit by SIP INFO stops the prompt here (RFC 4733 ones already did,
                // in the media).
                if let Some(p) = c.prompt.take() {
                    legs.stop_prompt(id, Some(p));
                }
                c.timer += 1;
                legs.set_timer(id, deadline, c.timer);
            }
            Entry::Done(entry) => {
                if let Some(p) = c.prompt.take() {
                    legs.stop_prompt(id, Some(p));
                }
                self.submit(legs, rooms, id, entry);
            }
        }
    }

    fn on_timer(&mut self, legs: &mut Legs, rooms: &mut Rooms, id: &LegId, tag: u32) {
        let Some(c) = self.callers.get_mut(id) else { return };
        if tag != c.timer || !matches!(c.stage, Stage::RoomNumber | Stage::RoomPin { .. }) {
            return;
        }
        if let Some(entry) = c.digits.timeout() {
            return self.submit(legs, rooms, id, entry);
        }
        // Nothing keyed since the prompt ended: ask again, up to the limit.
        c.attempts += 1;
        if c.attempts >= self.cfg.ivr.max_attempts {
            return self.goodbye(legs, id, "wrong_pin_bye");
        }
        let name = if matches!(c.stage, Stage::RoomPin { .. }) { "participant_pin" } else { "pin_prompt" };
        self.prompt(legs, id, name, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_prompt_ended(&mut self, now: Instant, legs: &mut Legs, rooms: &mut Rooms, scheduled: &mut Scheduled, id: &LegId, prompt: PromptId, end: PromptEnd) {
        let Some(c) = self.callers.get_mut(id) else { return };
        if c.prompt != Some(prompt) {
            return; // stopped by a digit, or replaced
        }
        c.prompt = None;
        match c.stage.clone() {
            Stage::Entering { room, scheduled: None } => self.join(legs, rooms, id, &room),
            Stage::Entering { scheduled: Some(conf), .. } => self.join_scheduled(legs, rooms, scheduled, id, conf),
            Stage::Goodbye => {
                self.callers.remove(id);
                let _ = legs.hangup(now, id);
            }
            Stage::RoomNumber | Stage::RoomPin { .. } => {
                if end == PromptEnd::Failed {
                    tracing::warn!(leg = %id, "IVR prompt could not be played; the caller may still key digits");
                }
                // Wait for the first digit this long before asking again.
                if c.digits.is_empty() {
                    c.timer += 1;
                    legs.set_timer(id, now + self.cfg.ivr.no_input_timeout, c.timer);
                }
            }
        }
    }

    /// A complete entry in the current stage.
    fn submit(&mut self, legs: &mut Legs, rooms: &mut Rooms, id: &LegId, entry: String) {
        let Some(domain) = legs.get(id).map(|l| l.domain.clone()) else { return };
        let Some(c) = self.callers.get_mut(id) else { return };
        match c.stage.clone() {
            Stage::RoomNumber => {
                if let Some(conf) = scheduled_conference(&self.directory, &domain, &entry) {
                    let now_s = crate::schedule::unix_now_s();
                    return match conf.window(now_s, self.cfg.ivr.early_join_s) {
                        Window::Open => {
                            info!(leg = %id, conference = conf.id, room = %entry, "IVR: scheduled conference");
                            let (room, conf) = (conf.room_number(), conf.id);
                            self.enter(legs, id, room, Some(conf))
                        }
                        Window::NotStarted { opens_s } => {
                            info!(leg = %id, conference = conf.id, opens_in_s = opens_s - now_s, "IVR: scheduled conference not started");
                            self.goodbye(legs, id, "conference_not_started")
                        }
                        Window::Ended => {
                            info!(leg = %id, conference = conf.id, "IVR: scheduled conference ended");
                            self.goodbye(legs, id, "conference_ended")
                        }
                    };
                }
                let valid = !entry.is_empty() && (!self.cfg.ivr.private_rooms || rooms.has_room(&domain, &entry));
                if !valid {
                    info!(leg = %id, entry = %entry, "IVR: no such room");
                    return self.wrong(legs, id);
                }
                match rooms.entry_pin(&domain, &entry) {
                    Some(pin) => {
                        c.stage = Stage::RoomPin { room: entry, pin };
                        c.attempts = 0;
                        self.prompt(legs, id, "participant_pin", true);
                    }
                    None => self.enter(legs, id, entry, None),
                }
            }
            Stage::RoomPin { room, pin } => {
                if entry == pin {
                    self.enter(legs, id, room, None);
                } else {
                    info!(leg = %id, room = %room, "IVR: wrong room PIN");
                    self.wrong(legs, id);
                }
            }
            Stage::Entering { .. } | Stage::Goodbye => {}
        }
    }

    fn wrong(&mut self, legs: &mut Legs, id: &LegId) {
        let Some(c) = self.callers.get_mut(id) else { return };
        c.digits.clear();
        c.attempts += 1;
        if c.attempts >= self.cfg.ivr.max_attempts {
            return self.goodbye(legs, id, "wrong_pin_bye");
        }
        self.prompt(legs, id, "wrong_pin", true);
    }

    fn enter(&mut self, legs: &mut Legs, id: &LegId, room: String, scheduled: Option<i64>) {
        let Some(c) = self.callers.get_mut(id) else { return };
        info!(leg = %id, room = %room, "IVR: entering the room");
        c.stage = Stage::Entering { room, scheduled };
        self.prompt(legs, id, "entering_conference", false);
    }

    /// Plays `prompt`, then BYE.
    fn goodbye(&mut self, legs: &mut Legs, id: &LegId, prompt: &str) {
        let Some(c) = self.callers.get_mut(id) else { return };
        c.stage = Stage::Goodbye;
        self.prompt(legs, id, prompt, false);
    }

    /// Hands the caller to the scheduled-conference application.
    fn join_scheduled(&mut self, legs: &mut Legs, rooms: &mut Rooms, scheduled: &mut Scheduled, id: &LegId, conf_id: i64) {
        let Some(domain) = legs.get(id).map(|l| l.domain.clone()) else { return };
        let user = self.callers.get(id).and_then(|c| c.user);
        // Deleted or changed while the entering prompt played: look it up afresh.
        let Some(conf) = self.directory.conferences.iter().find(|c| c.id == conf_id).cloned() else {
            info!(leg = %id, conference = conf_id, "IVR: the scheduled conference was deleted");
            return self.goodbye(legs, id, "conference_ended");
        };
        let owner = user == Some(conf.owner_id);
        match scheduled.enter(legs, rooms, &conf, &domain, &[(id.clone(), owner)]) {
            Ok(_) => {
                self.callers.remove(id);
            }
            Err(e) => {
                info!(leg = %id, conference = conf_id, error = %e, "IVR: the scheduled conference cannot be joined");
                self.goodbye(legs, id, "conference_ended");
            }
        }
    }

    /// Hands the caller to the room application.
    fn join(&mut self, legs: &mut Legs, rooms: &mut Rooms, id: &LegId, room: &str) {
        let Some(domain) = legs.get(id).map(|l| l.domain.clone()) else { return };
        match rooms.adopt_announced(legs, room, &domain, std::slice::from_ref(id)) {
            Ok(confid) => {
                self.callers.remove(id);
                info!(leg = %id, %confid, "IVR: caller joined the room");
            }
            Err(e) => {
                // The room went away meanwhile (ended, or a private room deleted).
                info!(leg = %id, room, error = %e, "IVR: the room cannot be joined");
                self.goodbye(legs, id, "wrong_pin_bye");
            }
        }
    }

    fn prompt(&mut self, legs: &mut Legs, id: &LegId, name: &str, barge_in: bool) {
        let Some(c) = self.callers.get_mut(id) else { return };
        let mut spec = PromptSpec::once(vec![self.cfg.prompts.part(name)]);
        spec.barge_in = barge_in;
        c.prompt = legs.play(id, spec);
        // A new prompt: no timer runs until it has ended.
        c.timer += 1;
    }
}

/// The scheduled conference of `domain` whose access id is exactly `entry`.
pub(crate) fn scheduled_conference<'a>(directory: &'a DirectorySnapshot, domain: &str, entry: &str) -> Option<&'a crate::schedule::ScheduledConference> {
    let n: u64 = entry.parse().ok()?;
    if n.to_string() != entry {
        return None; // leading zeros, a sign: not what the conference was booked with
    }
    let d = directory.domain_by_name(domain)?;
    directory.conference_by_access(d.id, n)
}
