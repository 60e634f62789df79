//! The simplest applications: `echo` answers and sends the caller's audio back;
//! `ring` rings and never answers (for testing CANCEL and ring timeouts), giving up
//! with 480 after the configured ring time.

use crate::legs::{LegEvent, LegId, Legs};
use media::Attachment;
use std::time::Instant;

/// The ring-timeout timer's tag.
const RING_TIMEOUT: u32 = 1;

pub(crate) fn start_echo(now: Instant, legs: &mut Legs, id: &LegId) {
    if legs.answer(now, id).is_ok() {
        legs.attach(id, Attachment::Echo);
    }
}

pub(crate) fn start_ring(now: Instant, legs: &mut Legs, id: &LegId) {
    legs.ring(now, id, 180, false);
    let at = now + legs.cfg.ring_timeout;
    legs.set_timer(id, at, RING_TIMEOUT);
}

pub(crate) fn on_ring_event(now: Instant, legs: &mut Legs, ev: LegEvent) {
    match ev {
        LegEvent::Timer { leg, tag: RING_TIMEOUT } => {
            if legs.get(&leg).is_some_and(|l| l.state == crate::LegState::Ringing) {
                let _ = legs.hangup(now, &leg);
            }
        }
        ev => super::default_handling(now, legs, ev),
    }
}

/// A call the server placed to be an echo (`POST /v1/calls`): echo once answered.
pub(crate) fn on_echo_event(now: Instant, legs: &mut Legs, ev: LegEvent) {
    match ev {
        LegEvent::Answered { leg } => {
            legs.attach(&leg, Attachment::Echo);
        }
        ev => super::default_handling(now, legs, ev),
    }
}
