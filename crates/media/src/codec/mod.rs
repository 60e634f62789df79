//! Audio codecs, all seen by the mixer as 20 ms frames of 16 kHz mono PCM.
//!
//! | codec | SDP name | PT | RTP clock | native rate | 20 ms payload |
//! |-------|----------|----|-----------|-------------|---------------|
//! | G.711 µ-law | PCMU | 0 | 8000 | 8 kHz | 160 bytes |
//! | G.711 A-law | PCMA | 8 | 8000 | 8 kHz | 160 bytes |
//! | G.722 | G722 | 9 | 8000 (RFC 3551 quirk) | 16 kHz | 160 bytes |
//! | Opus | opus | dynamic | 48000 | 16 kHz here | ~60 bytes |
//!
//! A leg owns one [`AudioEncoder`] and one [`AudioDecoder`] made by [`new_encoder`]
//! / [`new_decoder`]; each keeps its own state (ADPCM predictors, resampler
//! history, concealment) so they are not shared between legs. Per call they are
//! pure functions of their input and state: no I/O, no clock, no allocation
//! (Opus calls into libopus, which works in its own fixed state).
//!
//! Loss: when the jitter buffer reports a gap, call [`AudioDecoder::conceal`]
//! instead of `decode`; Opus uses its own PLC, the others repeat-and-fade
//! ([`crate::dsp::plc`]).

pub mod g711;
pub mod g722;
#[cfg(feature = "opus")]
pub mod opus;

use self::g711::{G711Decoder, G711Encoder, Law};
use self::g722::{G722Decoder, G722Encoder};

/// A codec we can negotiate.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    G722,
    Opus,
}

impl CodecKind {
    /// Every codec, in our default SDP preference order.
    pub const ALL: [CodecKind; 4] = [
        CodecKind::Opus,
        CodecKind::G722,
        CodecKind::Pcmu,
        CodecKind::Pcma,
    ];

    /// RTP timestamp rate (the `a=rtpmap` clock).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            // G.722 samples at 16 kHz but RFC 3551 fixed its RTP clock at 8000.
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => 8000,
            CodecKind::Opus => 48_000,
        }
    }

    /// Static RTP payload type (RFC 3551), or `None` for dynamic ones.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecKind::Pcmu => Some(0),
            CodecKind::Pcma => Some(8),
            CodecKind::G722 => Some(9),
            CodecKind::Opus => None,
        }
    }

    /// Encoding name as written in `a=rtpmap`.
    pub fn sdp_name(self) -> &'static str {
        match self {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::G722 => "G722",
            CodecKind::Opus => "opus",
        }
    }

    /// Codec for an `a=rtpmap` encoding name (case-insensitive).
    pub fn from_sdp_name(name: &str) -> Option<CodecKind> {
        CodecKind::ALL
            .into_iter()
            .find(|kind| kind.sdp_name().eq_ignore_ascii_case(name))
    }

    /// RTP timestamp increment for one 20 ms frame.
    pub fn rtp_samples_per_frame(self) -> u32 {
        self.rtp_clock_rate() / 50
    }

    /// G.711: a payload's energy can be read without decoding and frames may be left
    /// undecoded (see [`g711::ulaw_energy`], [`AudioDecoder::reset`]).
    pub fn is_g711(self) -> bool {
        matches!(self, CodecKind::Pcmu | CodecKind::Pcma)
    }

    /// Whether this build can encode and decode it (Opus needs the `opus` feature).
    pub fn available(self) -> bool {
        self != CodecKind::Opus || cfg!(feature = "opus")
    }
}

/// A decoder's predictive state, which an encoder can continue from: see
/// [`AudioEncoder::continue_from`]. Only codecs whose encoder and decoder share their
/// state by construction have one (G.722's backward-adaptive ADPCM).
#[derive(Clone, Copy)]
pub enum CodecState {
    G722(g722::G722State),
}

/// Input samples (16 kHz) an encoder wants with a [`CodecState`] to continue from: its
/// analysis filter history (G.722's transmit QMF looks 22 samples back).
pub const CONTINUE_HISTORY: usize = 24;

/// Turns mixer frames into RTP payloads for one leg.
pub trait AudioEncoder: Send {
    /// Encode one 20 ms frame of 16 kHz PCM (exactly `FRAME_SAMPLES`); returns
    /// payload bytes written into `out` (`out.len() >= 1500`).
    fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> usize;
    /// Encode one 20 ms frame given at 8 kHz (`FRAME_SAMPLES / 2` samples), for codecs
    /// that run at 8 kHz (G.711): no resampling. `None`: not supported, use `encode`.
    /// Mixing the two on one stream is allowed (the encoder restarts its filter).
    fn encode_narrow(&mut self, _pcm8: &[i16], _out: &mut [u8]) -> Option<usize> {
        None
    }
    /// Continue a stream that a listener's decoder has been decoding from another
    /// encoder: take over `state`, the state of our own decoder of that same stream,
    /// and `recent`, the last audio it decoded, as input history. The listener's
    /// decoder then agrees with us from the next frame on, as if this encoder had
    /// produced the stream all along (the relay fast path's hand-over, see
    /// [`crate::engine`]). Returns false when this codec has no such state to take.
    fn continue_from(&mut self, _state: &CodecState, _recent: &[i16]) -> bool {
        false
    }
    /// Forget everything, as if newly made: the next frame starts a fresh stream.
    fn reset(&mut self) {}
}

/// Turns one leg's RTP payloads back into 16 kHz PCM.
pub trait AudioDecoder: Send {
    /// Decode one RTP payload into 16 kHz PCM; returns samples written into `out`
    /// (`out.len() >= FRAME_SAMPLES * 6`, room for 120 ms).
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize;
    /// Produce one 20 ms concealment frame after a loss (Opus: its own PLC; others:
    /// repeat-and-fade from the last good audio, silent from 80 ms on).
    fn conceal(&mut self, out: &mut [i16]) -> usize;
    /// Forget the audio history (filter state, concealment) as if newly made. For
    /// decoders whose frames may be skipped — G.711, whose only memory is that
    /// history — so that audio resumes cleanly after frames that were not decoded.
    /// Codecs with predictive state (G.722, Opus) must see every frame and ignore it.
    fn reset(&mut self) {}
    /// The predictive state after the last frame decoded, for an encoder to continue
    /// from ([`AudioEncoder::continue_from`]); `None` for codecs without one.
    fn state(&self) -> Option<CodecState> {
        None
    }
}

/// Encoder for `kind`, or `None` if this build lacks it (see [`CodecKind::available`]).
pub fn try_new_encoder(kind: CodecKind) -> Option<Box<dyn AudioEncoder>> {
    Some(match kind {
        CodecKind::Pcmu => Box::new(G711Encoder::new(Law::Ulaw)),
        CodecKind::Pcma => Box::new(G711Encoder::new(Law::Alaw)),
        CodecKind::G722 => Box::new(G722Encoder::new()),
        #[cfg(feature = "opus")]
        CodecKind::Opus => Box::new(self::opus::OpusEncoder::new().ok()?),
        #[cfg(not(feature = "opus"))]
        CodecKind::Opus => return None,
    })
}

/// Decoder for `kind`, or `None` if this build lacks it.
pub fn try_new_decoder(kind: CodecKind) -> Option<Box<dyn AudioDecoder>> {
    Some(match kind {
        CodecKind::Pcmu => Box::new(G711Decoder::new(Law::Ulaw)),
        CodecKind::Pcma => Box::new(G711Decoder::new(Law::Alaw)),
        CodecKind::G722 => Box::new(G722Decoder::new()),
        #[cfg(feature = "opus")]
        CodecKind::Opus => Box::new(self::opus::OpusDecoder::new().ok()?),
        #[cfg(not(feature = "opus"))]
        CodecKind::Opus => return None,
    })
}

/// Encoder for `kind`.
///
/// # Panics
/// If `kind` is not [`available`](CodecKind::available); offer only available codecs in SDP.
pub fn new_encoder(kind: CodecKind) -> Box<dyn AudioEncoder> {
    try_new_encoder(kind).unwrap_or_else(|| panic!("codec {kind:?} is not available in this build"))
}

/// Decoder for `kind`.
///
/// # Panics
/// If `kind` is not [`available`](CodecKind::available).
pub fn new_decoder(kind: CodecKind) -> Box<dyn AudioDecoder> {
    try_new_decoder(kind).unwrap_or_else(|| panic!("codec {kind:?} is not available in this build"))
}
