//! The media layer: everything that touches audio.
//!
//! - [`codec`]: G.711 (our own tables), G.722, Opus; all convert to and from 16 kHz
//!   16-bit linear frames of 20 ms ([`FRAME_SAMPLES`]).
//! - [`dsp`]: resampling, packet-loss concealment helpers.
//! - [`jitter`]: the adaptive jitter buffer.
//! - [`dtmf`]: RFC 4733 telephone-events, receive and send.
//! - [`rtp`], [`rtcp`]: packet headers and per-stream bookkeeping.
//! - [`mixer`], [`topology`]: who hears whom, and the 20 ms mix.
//! - [`recorder`], [`live`]: taps on the mix: WAV files, and live streams (with
//!   playback) that the shell carries over a WebSocket.
//! - [`engine`]: the sans-IO media core that ties a leg's packets to its room, and
//!   forwards a lone speaker's own frames where that is all a listener hears (its
//!   "Relay fast path" section: the design, and how switches mind codec state).
//! - [`runtime`]: worker threads owning the RTP sockets and driving the core.
//! - [`webrtc`] (feature `webrtc`): the WebRTC <-> plain RTP gateway for browser legs
//!   (ICE-lite + DTLS-SRTP through str0m, RTP relayed unchanged).

/// Samples in one 20 ms frame at the 16 kHz mixing rate.
pub const FRAME_SAMPLES: usize = 320;
/// Mixing rate in Hz.
pub const MIX_RATE: u32 = 16_000;

pub mod codec;
pub mod dsp;
pub mod dtmf;
mod fastmap;
pub mod jitter;
pub mod live;

// --- runtime & mixer (helper: engine) ---
pub mod engine;
mod leg;
pub mod mixer;
pub mod player;
pub mod recorder;
pub mod rtcp;
pub mod rtp;
pub mod runtime;
pub mod topology;
#[cfg(feature = "webrtc")]
pub mod webrtc;

/// The negotiated codec (re-exported for `LegParams`).
pub use codec::CodecKind;
pub use engine::{Attachment, LegId, LegMediaStats, LegParams, MediaEvent, PromptTarget, RoomId};
pub use player::{PromptEnd, PromptId, PromptPart, PromptSpec};
pub use runtime::{LegMedia, MediaConfig, MediaEngine, MediaError, MediaHandle, PortMode};
