//! G.711 µ-law (PCMU) and A-law (PCMA): logarithmic companding of 8 kHz PCM.
//!
//! The sample functions follow ITU-T G.711 as implemented by the ITU-T G.191
//! reference software: a two's-complement sample is turned into sign and
//! magnitude with the *one's* complement for negative values, so `x` and `-x - 1`
//! share a code, and decoding returns the middle of the quantisation interval.
//!
//! Everything is a table lookup. The tables are built at compile time by `const fn`
//! (segment search) and indexed by the bits that matter: µ-law looks only at the top
//! 14 bits of a sample (16K-entry table), A-law at the top 12 (4K entries); decoding
//! is a 256-entry table each.
//!
//! [`G711Encoder`] / [`G711Decoder`] wrap the sample functions as an
//! [`AudioEncoder`] / [`AudioDecoder`] at the 16 kHz mixing rate: they carry a
//! half-band resampler each way and repeat-and-fade concealment.

use super::{AudioDecoder, AudioEncoder};
use crate::dsp::plc::Concealer;
use crate::dsp::resample::{Downsampler, Upsampler};

/// µ-law bias added to the 14-bit magnitude before the segment search (G.711: 33).
const ULAW_BIAS: i32 = 33;
/// Largest biased µ-law magnitude (14-bit magnitude 8158 + bias, clipped).
const ULAW_CLIP: i32 = 0x1FFF;
/// Upper end of each µ-law segment, on the biased 14-bit magnitude.
const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper end of each A-law segment, on the 11-bit magnitude (a sample shifted right by 4).
const ALAW_SEGMENT_END: [i32; 8] = [0x0F, 0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF];
/// A-law codes have every even bit inverted on the wire.
const ALAW_EVEN_BITS: u8 = 0x55;

/// Segment (exponent) of `magnitude`: the first segment whose end is not below it.
const fn segment(magnitude: i32, ends: &[i32; 8]) -> i32 {
    let mut seg = 0;
    while seg < 8 && magnitude > ends[seg] {
        seg += 1;
    }
    seg as i32
}

/// µ-law code for the 14-bit two's-complement value `v` (a sample shifted right by 2).
const fn ulaw_from_14bit(v: i32) -> u8 {
    // Sign and one's-complement magnitude. µ-law sends segment and mantissa
    // inverted, and bit 7 set for positive samples.
    let (magnitude, mask) = if v < 0 { (!v, 0x7F) } else { (v, 0xFF) };
    let mut biased = magnitude + ULAW_BIAS;
    if biased > ULAW_CLIP {
        biased = ULAW_CLIP;
    }
    let seg = segment(biased, &ULAW_SEGMENT_END);
    let mantissa = (biased >> (seg + 1)) & 0x0F;
    ((seg << 4) | mantissa) as u8 ^ mask
}

/// A-law code for the 12-bit two's-complement value `v` (a sample shifted right by 4).
const fn alaw_from_12bit(v: i32) -> u8 {
    let (magnitude, sign) = if v < 0 { (!v, 0x00) } else { (v, 0x80) };
    let seg = segment(magnitude, &ALAW_SEGMENT_END);
    // Segments 0 and 1 share the same step; above that the step doubles per segment.
    let mantissa = if seg < 2 {
        magnitude & 0x0F
    } else {
        (magnitude >> (seg - 1)) & 0x0F
    };
    ((sign | (seg << 4) | mantissa) as u8) ^ ALAW_EVEN_BITS
}

const fn ulaw_to_linear(code: u8) -> i16 {
    let inverted = !code;
    let seg = ((inverted >> 4) & 0x07) as i32;
    let mantissa = (inverted & 0x0F) as i32;
    // Middle of the interval on the biased scale (in 16-bit units), minus the bias.
    let magnitude = (((mantissa << 3) + 0x84) << seg) - 0x84;
    if inverted & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_to_linear(code: u8) -> i16 {
    let toggled = code ^ ALAW_EVEN_BITS;
    let seg = ((toggled >> 4) & 0x07) as i32;
    let mantissa = (toggled & 0x0F) as i32;
    let magnitude = match seg {
        0 => (mantissa << 4) + 8,
        _ => ((mantissa << 4) + 0x108) << (seg - 1),
    };
    if toggled & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

static ULAW_ENCODE: [u8; 1 << 14] = {
    let mut table = [0u8; 1 << 14];
    let mut i = 0;
    while i < table.len() {
        // Index is the 14-bit two's-complement pattern; sign-extend it.
        table[i] = ulaw_from_14bit(((i as i32) << 18) >> 18);
        i += 1;
    }
    table
};

static ALAW_ENCODE: [u8; 1 << 12] = {
    let mut table = [0u8; 1 << 12];
    let mut i = 0;
    while i < table.len() {
        table[i] = alaw_from_12bit(((i as i32) << 20) >> 20);
        i += 1;
    }
    table
};

static ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    table
};

static ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    table
};

/// Square of each code's linear value, for frame energy without decoding.
static ULAW_SQUARE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let v = ulaw_to_linear(i as u8) as i32;
        table[i] = (v * v) as u32;
        i += 1;
    }
    table
};

static ALAW_SQUARE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let v = alaw_to_linear(i as u8) as i32;
        table[i] = (v * v) as u32;
        i += 1;
    }
    table
};

fn mean_square(squares: &[u32; 256], payload: &[u8]) -> u64 {
    if payload.is_empty() {
        return 0;
    }
    let sum: u64 = payload.iter().map(|&c| u64::from(squares[c as usize])).sum();
    sum / payload.len() as u64
}

/// Mean-square energy per sample of a µ-law payload, read straight from the codes (one
/// table lookup per byte, no decoding, no resampling). For telephone-band audio it
/// equals [`crate::mixer::frame_energy`] of the decoded 16 kHz frame within the
/// resampler's passband ripple: interpolation keeps the power of a band-limited signal.
pub fn ulaw_energy(payload: &[u8]) -> u64 {
    mean_square(&ULAW_SQUARE, payload)
}

/// [`ulaw_energy`] for A-law.
pub fn alaw_energy(payload: &[u8]) -> u64 {
    mean_square(&ALAW_SQUARE, payload)
}

/// Compress one 16-bit linear sample to a µ-law code.
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    ULAW_ENCODE[(s as u16 >> 2) as usize]
}

/// Expand one µ-law code to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Compress one 16-bit linear sample to an A-law code.
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    ALAW_ENCODE[(s as u16 >> 4) as usize]
}

/// Expand one A-law code to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Which companding law a G.711 leg uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Law {
    /// µ-law, RTP payload type 0 (PCMU): North America, Japan.
    Ulaw,
    /// A-law, RTP payload type 8 (PCMA): Europe and most of the world.
    Alaw,
}

/// 8 kHz samples handled per inner step (one 20 ms frame at 8 kHz).
const CHUNK_8K: usize = 160;

/// G.711 encoder at the mixing rate: 16 kHz → half-band decimation → companding; or,
/// from a mix already at 8 kHz, companding only ([`AudioEncoder::encode_narrow`]).
pub struct G711Encoder {
    law: Law,
    downsampler: Downsampler,
    /// The last frame came in at 8 kHz: the decimator's history is stale.
    downsampler_stale: bool,
}

impl G711Encoder {
    pub fn new(law: Law) -> Self {
        Self {
            law,
            downsampler: Downsampler::new(),
            downsampler_stale: false,
        }
    }

    fn compand(&self, pcm8: &[i16], out: &mut [u8]) {
        match self.law {
            Law::Ulaw => out.iter_mut().zip(pcm8).for_each(|(c, &s)| *c = ulaw_encode(s)),
            Law::Alaw => out.iter_mut().zip(pcm8).for_each(|(c, &s)| *c = alaw_encode(s)),
        }
    }
}

impl AudioEncoder for G711Encoder {
    fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> usize {
        if self.downsampler_stale {
            self.downsampler.reset();
            self.downsampler_stale = false;
        }
        let mut narrow = [0i16; CHUNK_8K];
        let mut written = 0;
        for chunk in frame.chunks(CHUNK_8K * 2) {
            let n = self.downsampler.process(chunk, &mut narrow);
            self.compand(&narrow[..n], &mut out[written..written + n]);
            written += n;
        }
        written
    }

    fn encode_narrow(&mut self, pcm8: &[i16], out: &mut [u8]) -> Option<usize> {
        let n = pcm8.len().min(out.len());
        self.compand(&pcm8[..n], &mut out[..n]);
        self.downsampler_stale = true;
        Some(n)
    }

    fn reset(&mut self) {
        *self = Self::new(self.law);
    }
}

/// Expand a G.711 payload to 8 kHz linear samples (no resampling); returns the count.
pub fn expand(law: Law, payload: &[u8], out: &mut [i16]) -> usize {
    let n = payload.len().min(out.len());
    match law {
        Law::Ulaw => out[..n].iter_mut().zip(payload).for_each(|(s, &c)| *s = ulaw_decode(c)),
        Law::Alaw => out[..n].iter_mut().zip(payload).for_each(|(s, &c)| *s = alaw_decode(c)),
    }
    n
}

/// G.711 decoder at the mixing rate: expansion → 2× half-band interpolation,
/// with repeat-and-fade concealment of lost frames.
pub struct G711Decoder {
    law: Law,
    upsampler: Upsampler,
    concealer: Concealer,
}

impl G711Decoder {
    pub fn new(law: Law) -> Self {
        Self {
            law,
            upsampler: Upsampler::new(),
            concealer: Concealer::new(),
        }
    }
}

impl AudioDecoder for G711Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        // Each byte becomes two 16 kHz samples; never write past `out`.
        let payload = &payload[..payload.len().min(out.len() / 2)];
        let mut narrow = [0i16; CHUNK_8K];
        let mut written = 0;
        for chunk in payload.chunks(CHUNK_8K) {
            let narrow = &mut narrow[..chunk.len()];
            match self.law {
                Law::Ulaw => narrow
                    .iter_mut()
                    .zip(chunk)
                    .for_each(|(s, &c)| *s = ulaw_decode(c)),
                Law::Alaw => narrow
                    .iter_mut()
                    .zip(chunk)
                    .for_each(|(s, &c)| *s = alaw_decode(c)),
            }
            written += self.upsampler.process(narrow, &mut out[written..]);
        }
        self.concealer.good_frame(&mut out[..written]);
        written
    }

    fn conceal(&mut self, out: &mut [i16]) -> usize {
        self.concealer.conceal(out)
    }

    fn reset(&mut self) {
        self.upsampler.reset();
        self.concealer = Concealer::new();
    }
}
