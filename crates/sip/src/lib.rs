//! Sans-IO SIP for Switchboard.
//!
//! Nothing in this crate owns a socket, a thread or a clock: every state machine takes
//! a message or a timer tick together with `now`, and hands back what to send and when
//! it next wants to be woken. The async shell in the `switchboard` binary does the I/O.
//!
//! Layers, bottom up:
//! - [`message`], [`uri`]: the data model of RFC 3261 messages; [`parse`] reads bytes
//!   into it and `Display` writes it back.
//! - [`transaction`]: the four RFC 3261 §17 transaction machines and their timers.
//! - [`dialog`]: dialog state (tags, CSeq, route set, remote target) for UAC and UAS.
//! - [`digest`]: RFC 8760 digest hashes (HA1, responses) for the registrar and callers.
//! - [`sdp`]: session descriptions and RFC 3264 offer/answer for audio.
//! - [`ua`]: a user agent for one SIP identity (REGISTER, calls, MESSAGE) on top of the rest.

pub mod dialog;
pub mod digest;
pub mod message;
pub mod parse;
pub mod sdp;
pub mod transaction;
pub mod ua;
pub mod uri;

pub use message::*;
pub use uri::*;
