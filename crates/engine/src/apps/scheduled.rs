//! Scheduled conferences (reference 001 §7; the model is [`crate::schedule`]): who may
//! enter, who waits for the owner, and the owner's place in the room.
//!
//! Callers reach here from the IVR (the access id keyed at the conference number, or
//! dialled as a room number) or from call control (`POST /conferences/{callId}`), and
//! only inside the conference's window; the IVR has already said "not started" or
//! "ended" to the others. Then:
//!
//! ```text
//!  waitForOwner, room not running, no owner among them
//!      → the lobby: wait_for_owner, then music, until the owner arrives
//!  otherwise
//!      → the room (numbered by the access id); the owner's leg is marked, and with
//!        delOnOwnerLeave the room ends when that leg leaves
//!  the owner arrives → everyone in the lobby joins with them
//! ```
//!
//! A waiting leg belongs to this application ([`Owner::Scheduled`]) and is attached to
//! no room, so waiting callers hear only the music, not each other.

use super::room::Rooms;
use super::Owner;
use crate::engine::{EngineConfig, EngineError};
use crate::legs::{LegEvent, LegId, Legs};
use crate::schedule::ScheduledConference;
use media::{PromptEnd, PromptId, PromptSpec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// Music while waiting when the prompt set has no `music.wav`: a slow C-major
/// arpeggio, soft enough to wait through.
pub const FALLBACK_MUSIC: &str = "523/400,659/400,784/400,659/400,0/400";

/// One caller waiting for the owner.
struct Waiting {
    conference: i64,
    room: String,
    domain: String,
    prompt: Option<PromptId>,
    /// The wait_for_owner announcement has played; music follows.
    announced: bool,
    /// `music.wav` could not be played: the tone melody plays instead.
    fallback: bool,
}

pub(crate) struct Scheduled {
    cfg: Arc<EngineConfig>,
    waiting: HashMap<LegId, Waiting>,
}

impl Scheduled {
    pub fn new(cfg: Arc<EngineConfig>) -> Scheduled {
        Scheduled { cfg, waiting: HashMap::new() }
    }

    /// Answered legs enter `conf` (its window already checked). `members` pairs each
    /// leg with whether it is the conference's owner. Returns the room's confid, or
    /// None when they wait in the lobby.
    pub fn enter(&mut self, legs: &mut Legs, rooms: &mut Rooms, conf: &ScheduledConference, domain: &str, members: &[(LegId, bool)]) -> Result<Option<String>, EngineError> {
        let number = conf.room_number();
        let owner_here = members.iter().any(|(_, o)| *o);
        if conf.wait_for_owner && !owner_here && !rooms.has_room(domain, &number) {
            for (leg, _) in members {
                self.wait(legs, conf, domain, leg);
            }
            return Ok(None);
        }
        // Everyone who waited for this conference joins with them, in one go: each
        // hears the others' join sound, and nobody is told they are the first.
        let lobby: Vec<LegId> = self.waiting.iter().filter(|(_, w)| w.conference == conf.id && w.domain == domain).map(|(l, _)| l.clone()).collect();
        for leg in &lobby {
            if let Some(p) = self.waiting.remove(leg).and_then(|w| w.prompt) {
                legs.stop_prompt(leg, Some(p));
            }
        }
        let ids: Vec<LegId> = members.iter().map(|(l, _)| l.clone()).chain(lobby.iter().cloned()).collect();
        let confid = rooms.adopt_announced(legs, &number, domain, &ids)?;
        if !lobby.is_empty() {
            info!(%confid, waited = lobby.len(), "the lobby joins the scheduled conference");
        }
        if let Some((owner, _)) = members.iter().find(|(_, o)| *o) {
            rooms.set_owner(&confid, owner, conf.del_on_owner_leave);
            info!(%confid, leg = %owner, conference = conf.id, "the owner joined the scheduled conference");
        }
        Ok(Some(confid))
    }

    fn wait(&mut self, legs: &mut Legs, conf: &ScheduledConference, domain: &str, leg: &LegId) {
        if let Some(l) = legs.get_mut(leg) {
            l.owner = Owner::Scheduled;
        }
        // A leg handed over from a call hears nothing from it any more.
        if let Some(m) = legs.media_of(leg) {
            legs.media.attach(m, media::Attachment::None);
        }
        let prompt = legs.play(leg, PromptSpec::once(vec![self.cfg.prompts.part("wait_for_owner")]));
        info!(%leg, conference = conf.id, "waiting for the owner of the scheduled conference");
        self.waiting.insert(
            leg.clone(),
            Waiting { conference: conf.id, room: conf.room_number(), domain: domain.to_owned(), prompt, announced: false, fallback: false },
        );
    }

    pub fn on_leg_event(&mut self, now: Instant, legs: &mut Legs, ev: LegEvent) {
        match ev {
            LegEvent::PromptEnded { leg, prompt, end } => self.on_prompt_ended(legs, &leg, prompt, end),
            LegEvent::Ended { leg, .. } => {
                if let Some(w) = self.waiting.remove(&leg) {
                    info!(%leg, room = %w.room, "a caller gave up waiting for the owner");
                }
            }
            ev => super::default_handling(now, legs, ev),
        }
    }

    fn on_prompt_ended(&mut self, legs: &mut Legs, leg: &LegId, prompt: PromptId, end: PromptEnd) {
        let Some(w) = self.waiting.get_mut(leg) else { return };
        if w.prompt != Some(prompt) {
            return;
        }
        if w.announced && end == PromptEnd::Failed {
            w.fallback = true;
        }
        w.announced = true;
        let music = if w.fallback {
            media::player::parse_tones(FALLBACK_MUSIC).expect("the fallback music is a valid tone sequence")
        } else {
            vec![self.cfg.prompts.part("music")]
        };
        let mut spec = PromptSpec::once(music);
        spec.repeat = true;
        w.prompt = legs.play(leg, spec);
    }
}
