//! Opus (RFC 6716, RTP payload format RFC 7587) through libopus.
//!
//! Encoder and decoder run at 16 kHz mono — libopus converts internally, so the
//! mixer's frames go in and come out unchanged — while the RTP clock stays at
//! 48 kHz as RFC 7587 requires. The encoder is tuned for conference speech:
//! VOIP application, voice signal (SILK coding), 24 kbit/s VBR (wideband speech
//! is transparent well below that), complexity 5, in-band FEC and DTX off (we
//! send a steady 20 ms stream). Concealment is
//! libopus' own PLC. Decoding with FEC (`decode_fec`) needs the *next* packet; the
//! jitter buffer reports a loss before that packet exists, so it is not used.
//!
//! libopus works on caller-provided buffers and its own fixed state, so neither
//! call allocates; a corrupt payload is concealed instead of decoded.

use super::{AudioDecoder, AudioEncoder};
use crate::{FRAME_SAMPLES, MIX_RATE};
use ::opus::{Application, Bitrate, Channels, Signal};

/// Target bitrate in bits per second.
pub const BITRATE: i32 = 24_000;
/// Encoder complexity (0–10): for speech, 5 costs a bit over half the CPU of 10
/// (codec_bench) for a small loss in quality; encoding is the dominant per-leg cost.
pub const COMPLEXITY: i32 = 5;

pub struct OpusEncoder {
    inner: ::opus::Encoder,
}

impl OpusEncoder {
    pub fn new() -> Result<Self, ::opus::Error> {
        let mut inner = ::opus::Encoder::new(MIX_RATE, Channels::Mono, Application::Voip)?;
        inner.set_bitrate(Bitrate::Bits(BITRATE))?;
        inner.set_complexity(COMPLEXITY)?;
        inner.set_signal(Signal::Voice)?;
        inner.set_inband_fec(false)?;
        inner.set_dtx(false)?;
        Ok(Self { inner })
    }
}

impl AudioEncoder for OpusEncoder {
    fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> usize {
        // Fails only for a frame length Opus cannot code (not 2.5–120 ms); send nothing.
        self.inner.encode(frame, out).unwrap_or(0)
    }
}

pub struct OpusDecoder {
    inner: ::opus::Decoder,
}

impl OpusDecoder {
    pub fn new() -> Result<Self, ::opus::Error> {
        Ok(Self {
            inner: ::opus::Decoder::new(MIX_RATE, Channels::Mono)?,
        })
    }
}

impl AudioDecoder for OpusDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match self.inner.decode(payload, out, false) {
            Ok(n) => n,
            Err(_) => self.conceal(out),
        }
    }

    fn conceal(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(FRAME_SAMPLES);
        // An empty packet asks libopus for `n` samples of loss concealment.
        match self.inner.decode(&[], &mut out[..n], false) {
            Ok(n) => n,
            Err(_) => {
                out[..n].fill(0);
                n
            }
        }
    }
}
