//! Applications: what decides for legs.
//!
//! The leg layer ([`crate::legs`]) knows SIP and media but not what a call is for.
//! Each leg has one [`Owner`]; the engine hands every [`LegEvent`] to that owner, and
//! the owner acts through the [`Legs`] methods (answer, ring, reject, hang up, place a
//! call, attach media, send in-dialog requests). Applications never touch each
//! other's state; an application that hands a leg to another one changes its owner.
//!
//! - [`services`]: `echo` (hear yourself) and `ring` (rings, never answers).
//! - [`room`]: conference rooms, their participants and the who-hears-whom topology.
//! - [`bridge`]: two-party calls between users, phones and numbers (B2BUA).
//! - [`voicemail`]: messages for users who did not take a call (the bridge hands the
//!   caller over), and the voicemail number where users hear them.
//! - [`scheduled`]: scheduled conferences (reference 001): entry windows, callers
//!   waiting for the owner, and rooms that end when the owner leaves.
//! - [`messages`]: instant messages (SIP MESSAGE) to users, stored for those offline.
//! - [`live_audio`]: a room's or a leg's audio streamed live to a WebSocket receiver
//!   (the shell carries the socket), with playback of what it sends back.
//! - [`announcement`]: calls the server places only to play sounds into and send
//!   digits to (WCS `/rest-api/call/startup`).
//! - [`controller`]: third-party call control (reference 002, sipXcallController):
//!   signalling-only dialogs it drives itself (see [`crate::legs::RawSip`]).
//!
//! The shape for two-party calls: a call between two parties is a room of two in
//! the media engine (one mixer, one topology model, so supervisor listen, whisper
//! and barge are a third participant with some paths blocked). The media engine
//! forwards a speaker's own frames, with no decode or encode, to a listener who hears
//! exactly that one speaker in the same codec (the relay fast path), so a room of two
//! costs what a packet relay costs and sounds like a direct call.

pub(crate) mod announcement;
pub(crate) mod bridge;
pub mod controller;
pub(crate) mod digits;
pub(crate) mod ivr;
pub mod messages;
pub mod live_audio;
pub(crate) mod room;
pub(crate) mod scheduled;
pub(crate) mod services;
pub mod voicemail;

use crate::legs::{LegEvent, LegId, Legs};
use sip::Method;
use std::time::Instant;

/// Which application decides for a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Nobody yet (a leg being set up) or nobody any more.
    Nobody,
    Echo,
    Ring,
    /// A participant of the room with this confid.
    Room(String),
    /// A party (or a ringing fork, or a supervisor) of this two-party call.
    Bridge(crate::call::CallId),
    /// A caller at the conference access number (see [`ivr`]).
    Ivr,
    /// A caller leaving a message, or at the voicemail number (see [`voicemail`]).
    Voicemail,
    /// A caller waiting for the owner of a scheduled conference (see [`scheduled`]).
    Scheduled,
    /// A call placed to play sounds into (see [`announcement`]).
    Announcement,
}

/// What an owner that does not care about an event does with it: in-dialog requests
/// get the answer a plain endpoint gives (200 for INFO, MESSAGE; 405 for what we do
/// not support in this leg's context), everything else is dropped.
pub(crate) fn default_handling(now: Instant, legs: &mut Legs, ev: LegEvent) {
    match ev {
        LegEvent::Request { tx, req, .. } => {
            let status = match req.method {
                Method::Info | Method::Message => 200,
                _ => 405,
            };
            legs.respond(now, tx, &req, status);
        }
        // Nobody here carries out transfers: the referrer hears it declined.
        LegEvent::Referred { leg, target, referred_by, .. } => {
            tracing::info!(%leg, %target, referred_by = referred_by.as_deref().unwrap_or("-"), "REFER declined: the leg's application does not transfer");
            legs.notify_refer(now, &leg, 603, "Declined")
        }
        // Reported for applications that act on them (menus, controllers); noted here.
        LegEvent::Dtmf { leg, digit, duration_ms } => tracing::debug!(%leg, %digit, duration_ms, "digit"),
        LegEvent::Response { leg, method, status, resp } => {
            tracing::debug!(%leg, ?method, status, timed_out = resp.is_none(), "in-dialog response")
        }
        LegEvent::ReferProgress { leg, status, reason, done } => tracing::debug!(%leg, status, %reason, done, "transfer progress"),
        LegEvent::PromptEnded { leg, prompt, end } => tracing::debug!(%leg, prompt = prompt.0, ?end, "prompt ended"),
        _ => {}
    }
}

/// The leg an event is about.
pub(crate) fn leg_of(ev: &LegEvent) -> &LegId {
    match ev {
        LegEvent::Progress { leg, .. }
        | LegEvent::Answered { leg }
        | LegEvent::Ended { leg, .. }
        | LegEvent::SessionChanged { leg, .. }
        | LegEvent::Request { leg, .. }
        | LegEvent::Response { leg, .. }
        | LegEvent::Dtmf { leg, .. }
        | LegEvent::Timer { leg, .. }
        | LegEvent::HoldResult { leg, .. }
        | LegEvent::ReferProgress { leg, .. }
        | LegEvent::Referred { leg, .. }
        | LegEvent::PromptEnded { leg, .. }
        | LegEvent::Forgotten { leg, .. } => leg,
    }
}
