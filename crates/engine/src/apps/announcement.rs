//! Announcement calls: a call the server places for an application that has no
//! party of its own to connect it to, only sounds to play into it and digits to send
//! (the Web Call Server's `/rest-api/call/startup` followed by `inject_sound`).
//!
//! The called party hears silence until the application plays something; what it
//! says is not listened to (its digits still reach the event log, as every leg's do).
//! The application holds the leg by its id and ends it with an ordinary hang-up.

use crate::engine::EngineError;
use crate::legs::{DtmfMethod, LegId, LegState, Legs};
use std::time::Instant;

/// Plays `spec` to an answered announcement leg, in place of anything it was
/// playing: a new sound replaces the old one, as a second `inject_sound` does in WCS.
pub(crate) fn play(legs: &mut Legs, id: &LegId, spec: media::PromptSpec) -> Result<u64, EngineError> {
    announcement_leg(legs, id, true)?;
    legs.stop_prompt(id, None);
    legs.play(id, spec).map(|p| p.0).ok_or_else(|| EngineError::MediaUnavailable("the call has no media".into()))
}

/// Sends digits to the called party (RFC 4733 or SIP INFO).
pub(crate) fn send_dtmf(now: Instant, legs: &mut Legs, id: &LegId, digits: &str, method: DtmfMethod) -> Result<(), EngineError> {
    announcement_leg(legs, id, false)?;
    legs.send_dtmf(now, id, digits, method)
}

/// The leg, if it is a live announcement call (and answered, when `answered`).
fn announcement_leg(legs: &Legs, id: &LegId, answered: bool) -> Result<(), EngineError> {
    let leg = legs.get(id).ok_or(EngineError::LegNotFound)?;
    if leg.owner != super::Owner::Announcement {
        return Err(EngineError::Conflict("the leg is not an announcement call".into()));
    }
    if leg.is_over() {
        return Err(EngineError::LegEnded);
    }
    if answered && !matches!(leg.state, LegState::Active | LegState::Held) {
        return Err(EngineError::Conflict("the call is not answered yet".into()));
    }
    Ok(())
}
