//! Opus (RFC 6716, RTP payload format RFC 7587) through `opus-rs`, a pure-Rust port of
//! libopus: no C library, cmake or pkg-config at build time.
//!
//! Why this codec crate (evaluated against libopus 1.3 through `audiopus_sys` and the
//! c2rust translation `unsafe-libopus`; figures in BENCHMARKS.md, "Opus codec"):
//! - its decoder output is bit-identical to libopus for SILK and hybrid packets and
//!   within float rounding (> 100 dB SNR) for CELT packets, and libopus decodes what it
//!   encodes; the end-to-end test has baresip (system libopus) and a G.711 pjsua2 client
//!   hear each other in a room;
//! - no allocation per frame (`unsafe-libopus` allocates about a hundred times per frame);
//! - it costs about 20 % more than libopus to encode and the same to decode at 16 kHz.
//!
//! Encoder and decoder run at 16 kHz mono, so the mixer's frames go in and come out
//! unchanged, while the RTP clock stays at 48 kHz as RFC 7587 requires. The encoder is
//! tuned for conference speech: VOIP application, 24 kbit/s VBR (wideband speech is
//! transparent well below that), complexity 5, in-band FEC and DTX off (we send a
//! steady 20 ms stream). Concealment is the codec's own PLC. Decoding with FEC needs the
//! *next* packet; the jitter buffer reports a loss before that packet exists, so FEC is
//! not used.
//!
//! A port is younger than libopus, so each call is fenced with `catch_unwind`: a panic on
//! a hostile payload costs that one frame (concealed or skipped) and a fresh codec state,
//! never the media thread and every call on it. The guard is free when nothing panics.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{AudioDecoder, AudioEncoder};
use crate::{FRAME_SAMPLES, MIX_RATE};
use opus_rs::Application;

/// Target bitrate in bits per second.
pub const BITRATE: i32 = 24_000;
/// Encoder complexity (0–10): for speech, 5 costs a bit over half the CPU of 10
/// (codec_bench) for a small loss in quality; encoding is the dominant per-leg cost.
pub const COMPLEXITY: i32 = 5;

pub struct OpusEncoder {
    inner: opus_rs::OpusEncoder,
}

/// Codec construction can only fail for a rate or channel count we never ask for.
#[derive(Debug)]
pub struct OpusError(pub &'static str);

fn new_encoder() -> Result<opus_rs::OpusEncoder, OpusError> {
    let mut inner = opus_rs::OpusEncoder::new(MIX_RATE as i32, 1, Application::Voip).map_err(OpusError)?;
    inner.bitrate_bps = BITRATE;
    inner.complexity = COMPLEXITY;
    inner.use_cbr = false;
    inner.use_inband_fec = false;
    Ok(inner)
}

impl OpusEncoder {
    pub fn new() -> Result<Self, OpusError> {
        Ok(Self { inner: new_encoder()? })
    }
}

impl AudioEncoder for OpusEncoder {
    fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> usize {
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.encode_i16(frame, frame.len(), out))) {
            Ok(Ok(n)) => n,
            // A frame length Opus cannot code (not 2.5–120 ms): send nothing.
            Ok(Err(_)) => 0,
            Err(_) => {
                tracing::error!("opus encoder panicked; frame dropped, encoder reset");
                if let Ok(fresh) = new_encoder() {
                    self.inner = fresh;
                }
                0
            }
        }
    }

    /// A fresh encoder (allocates: called at a relay hand-over, never per frame).
    fn reset(&mut self) {
        if let Ok(fresh) = new_encoder() {
            self.inner = fresh;
        }
    }
}

pub struct OpusDecoder {
    inner: opus_rs::OpusDecoder,
    /// The port decodes to f32; converted into the caller's i16 frame.
    scratch: Box<[f32]>,
}

impl OpusDecoder {
    pub fn new() -> Result<Self, OpusError> {
        Ok(Self {
            inner: opus_rs::OpusDecoder::new(MIX_RATE as i32, 1).map_err(OpusError)?,
            // 120 ms, the longest Opus packet, at 16 kHz.
            scratch: vec![0.0; MIX_RATE as usize * 120 / 1000].into_boxed_slice(),
        })
    }

    /// Decodes `payload` (empty: conceal) into `out`; `None` when the codec failed.
    fn run(&mut self, payload: &[u8], out: &mut [i16]) -> Option<usize> {
        let max = out.len().min(self.scratch.len());
        let (inner, scratch) = (&mut self.inner, &mut self.scratch);
        match catch_unwind(AssertUnwindSafe(|| inner.decode(payload, max, scratch))) {
            Ok(Ok(n)) => {
                let n = n.min(max);
                for (o, s) in out[..n].iter_mut().zip(scratch.iter()) {
                    *o = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                }
                Some(n)
            }
            Ok(Err(_)) => None,
            Err(_) => {
                tracing::error!("opus decoder panicked on a {}-byte payload; decoder reset", payload.len());
                if let Ok(fresh) = opus_rs::OpusDecoder::new(MIX_RATE as i32, 1) {
                    self.inner = fresh;
                }
                None
            }
        }
    }
}

impl AudioDecoder for OpusDecoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match self.run(payload, out) {
            Some(n) => n,
            None => self.conceal(out),
        }
    }

    fn conceal(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(FRAME_SAMPLES);
        // An empty packet asks the decoder for `n` samples of loss concealment.
        match self.run(&[], &mut out[..n]) {
            Some(got) if got > 0 => got,
            _ => {
                out[..n].fill(0);
                n
            }
        }
    }
}
