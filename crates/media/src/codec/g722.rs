//! G.722: 7 kHz wideband audio at 64 kbit/s (ITU-T G.722 mode 1), RTP payload type 9.
//!
//! G.722 splits 16 kHz audio with a quadrature mirror filter (QMF) into a low band
//! (0–4 kHz) and a high band (4–8 kHz), each at 8 kHz, and codes each with
//! backward-adaptive ADPCM: 6 bits per low-band sample, 2 per high-band sample. One
//! byte therefore carries one low/high pair, i.e. two 16 kHz samples, and a 20 ms
//! frame is 160 bytes. (RTP still counts G.722 at 8000 Hz — an RFC 3551 quirk.)
//!
//! The arithmetic is the fixed-point procedure of the Recommendation, block by block
//! (the comments name the blocks: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL, the
//! predictor of block 4, …), so the bitstream interoperates exactly with every other
//! conforming implementation. Encoder and decoder are our own, with fixed-size
//! state and no allocation; the 56/48 kbit/s modes are not used in SIP and not
//! implemented.

use super::{AudioDecoder, AudioEncoder};
use crate::dsp::plc::Concealer;

/// Transmit/receive QMF coefficients (the 24-tap filter is symmetric: 12 distinct values).
const QMF_COEFFS: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];
/// QMF history kept between calls (samples beyond the current pair).
const QMF_HISTORY: usize = 22;

/// Low-band quantiser decision levels (QUANTL), scaled by the scale factor.
const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];
/// Low-band 6-bit codes for the quantiser interval, negative and positive differences.
const ILN: [i32; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
const ILP: [i32; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// Inverse quantiser outputs for the 4-bit truncated low-band code (INVQAL, feeds the predictor).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Inverse quantiser outputs for the full 6-bit low-band code (INVQBL, feeds the output).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Low-band log scale-factor multipliers (LOGSCL), indexed through RL42.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Inverse-log table for the scale factors (SCALEL/SCALEH).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// High-band quantiser: 2-bit codes, inverse quantiser and log scale-factor multipliers.
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [i32; 4] = [2, 1, 2, 1];

/// Log scale-factor ceilings (LOGSCL/LOGSCH limits).
const LOW_NB_MAX: i32 = 18432;
const HIGH_NB_MAX: i32 = 22528;
/// Scale factors at reset (DETL, DETH).
const LOW_DET_RESET: i32 = 32;
const HIGH_DET_RESET: i32 = 8;

/// Pairs of 16 kHz samples (= G.722 bytes) handled per inner step.
const CHUNK_PAIRS: usize = 160;

#[inline]
fn saturate(v: i32) -> i32 {
    v.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// Adaptive predictor and scale factor of one sub-band (identical in encoder and decoder).
#[derive(Clone, Copy)]
struct SubBand {
    /// Signal estimate (PREDIC) and its pole/zero parts (FILTEP/FILTEZ).
    s: i32,
    sp: i32,
    sz: i32,
    /// Reconstructed signal, newest first.
    r: [i32; 3],
    /// Partially reconstructed signal, newest first.
    p: [i32; 3],
    /// Second-order pole predictor coefficients `a[1]`, `a[2]`.
    a: [i32; 3],
    /// Quantised difference signal, newest first.
    d: [i32; 7],
    /// Sixth-order zero predictor coefficients `b[1..=6]`.
    b: [i32; 7],
    /// Log scale factor (NBL/NBH) and scale factor (DETL/DETH).
    nb: i32,
    det: i32,
}

impl SubBand {
    fn new(det: i32) -> Self {
        Self {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            p: [0; 3],
            a: [0; 3],
            d: [0; 7],
            b: [0; 7],
            nb: 0,
            det,
        }
    }

    /// Blocks 3L/3H, LOGSCL + SCALEL: adapt the scale factor to the last code.
    /// `multiplier` comes from WL/WH, `nb_max` and `shift_base` differ per band.
    #[inline]
    fn adapt_scale(&mut self, multiplier: i32, nb_max: i32, shift_base: i32) {
        self.nb = (((self.nb * 127) >> 7) + multiplier).clamp(0, nb_max);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let shift = shift_base - (self.nb >> 11);
        let det = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.det = det << 2;
    }

    /// Block 4: reconstruct, adapt the pole and zero predictors to the quantised
    /// difference `d`, and compute the next signal estimate.
    fn adapt_predictor(&mut self, d: i32) {
        // RECONS, PARREC
        self.d[0] = d;
        self.r[0] = saturate(self.s + d);
        self.p[0] = saturate(self.sz + d);

        let sign = |v: i32| v >> 15;
        // UPPOL2: second pole coefficient.
        let (sg0, sg1, sg2) = (sign(self.p[0]), sign(self.p[1]), sign(self.p[2]));
        let wd1 = saturate(self.a[1] << 2);
        let wd2 = (if sg0 == sg1 { -wd1 } else { wd1 }).min(32767);
        let wd3 = (wd2 >> 7) + (if sg0 == sg2 { 128 } else { -128 }) + ((self.a[2] * 32512) >> 15);
        let a2 = wd3.clamp(-12288, 12288);

        // UPPOL1: first pole coefficient, limited by the second for stability.
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let limit = saturate(15360 - a2);
        let a1 = saturate(wd1 + ((self.a[1] * 32640) >> 15)).clamp(-limit, limit);

        // UPZERO: sign-sign update of the six zero coefficients.
        let step = if d == 0 { 0 } else { 128 };
        let mut b = [0i32; 7];
        for ((new, &old), &past) in b.iter_mut().zip(&self.b).zip(&self.d).skip(1) {
            let wd2 = if sign(past) == sign(d) { step } else { -step };
            *new = saturate(wd2 + ((old * 32640) >> 15));
        }

        // DELAYA: age the histories, install the new coefficients.
        let [d0, d1, d2, d3, d4, d5, _] = self.d;
        self.d = [d0, d0, d1, d2, d3, d4, d5];
        self.b = b;
        self.r = [self.r[0], self.r[0], self.r[1]];
        self.p = [self.p[0], self.p[0], self.p[1]];
        self.a = [0, a1, a2];

        // FILTEP: pole-section estimate.
        let pole1 = (self.a[1] * saturate(self.r[1] + self.r[1])) >> 15;
        let pole2 = (self.a[2] * saturate(self.r[2] + self.r[2])) >> 15;
        self.sp = saturate(pole1 + pole2);

        // FILTEZ: zero-section estimate.
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * saturate(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = saturate(sz);

        // PREDIC
        self.s = saturate(self.sp + self.sz);
    }
}

/// The backward-adaptive state of both sub-bands after some codes: the same in an
/// encoder and in a decoder that saw the same codes (the Recommendation's design), so a
/// decoder's state can be handed to an encoder ([`G722Encoder::continue_from`]).
#[derive(Clone, Copy)]
pub struct G722State {
    low: SubBand,
    high: SubBand,
}

/// G.722 64 kbit/s encoder: 16 kHz PCM in, one byte per two samples out.
pub struct G722Encoder {
    /// Transmit QMF input history.
    qmf: [i32; QMF_HISTORY],
    low: SubBand,
    high: SubBand,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    pub fn new() -> Self {
        Self::with_reset_scale(LOW_DET_RESET, HIGH_DET_RESET)
    }

    /// Encoder whose sub-band scale factors start at `low_det`/`high_det` instead
    /// of the Recommendation's reset values (32, 8). Only for conformance tests
    /// against implementations that reset differently; use [`G722Encoder::new`].
    #[doc(hidden)]
    pub fn with_reset_scale(low_det: i32, high_det: i32) -> Self {
        Self {
            qmf: [0; QMF_HISTORY],
            low: SubBand::new(low_det),
            high: SubBand::new(high_det),
        }
    }

    /// Continue from a decoder's state: the next codes are what an encoder that had
    /// produced the decoder's stream would send, so that decoder follows without a
    /// seam. `recent` (the decoder's last output, any length) becomes the transmit QMF
    /// history; when it is the true input, the codes are bit-exact with that encoder.
    pub fn continue_from(&mut self, state: &G722State, recent: &[i16]) {
        self.low = state.low;
        self.high = state.high;
        let n = recent.len().min(QMF_HISTORY);
        self.qmf = [0; QMF_HISTORY];
        for (h, &s) in self.qmf[QMF_HISTORY - n..].iter_mut().zip(&recent[recent.len() - n..]) {
            *h = i32::from(s);
        }
    }

    /// Encode `pcm` (an even number of 16 kHz samples; an odd last one is
    /// ignored) into `out`; returns bytes written (`pcm.len() / 2`, capped by `out`).
    pub fn encode_samples(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let pairs = (pcm.len() / 2).min(out.len());
        let mut x = [0i32; QMF_HISTORY + 2 * CHUNK_PAIRS];
        let mut written = 0;
        for chunk in pcm[..2 * pairs].chunks(2 * CHUNK_PAIRS) {
            x[..QMF_HISTORY].copy_from_slice(&self.qmf);
            for (dst, &s) in x[QMF_HISTORY..].iter_mut().zip(chunk) {
                *dst = i32::from(s);
            }
            for (k, code) in out[written..written + chunk.len() / 2]
                .iter_mut()
                .enumerate()
            {
                // Transmit QMF: split the newest pair into one low and one high band sample.
                let window = &x[2 * k..2 * k + 24];
                let (mut sum_odd, mut sum_even) = (0, 0);
                for i in 0..12 {
                    sum_odd += window[2 * i] * QMF_COEFFS[i];
                    sum_even += window[2 * i + 1] * QMF_COEFFS[11 - i];
                }
                let x_low = (sum_even + sum_odd) >> 14;
                let x_high = (sum_even - sum_odd) >> 14;
                let i_low = self.encode_low(x_low);
                let i_high = self.encode_high(x_high);
                *code = (i_high << 6 | i_low) as u8;
            }
            let n = chunk.len();
            self.qmf.copy_from_slice(&x[n..n + QMF_HISTORY]);
            written += n / 2;
        }
        written
    }

    /// Low band: 6-bit ADPCM code for one sample.
    fn encode_low(&mut self, x_low: i32) -> i32 {
        let band = &mut self.low;
        // SUBTRA
        let el = saturate(x_low - band.s);
        // QUANTL: find the interval of |el| among the scaled decision levels.
        let magnitude = if el >= 0 { el } else { -(el + 1) };
        let mut i = 1;
        while i < 30 && magnitude >= (Q6[i] * band.det) >> 12 {
            i += 1;
        }
        let i_low = if el < 0 { ILN[i] } else { ILP[i] };
        // INVQAL: the predictor sees only the top 4 bits.
        let ril = (i_low >> 2) as usize;
        let d_low = (band.det * QM4[ril]) >> 15;
        // LOGSCL, SCALEL
        band.adapt_scale(WL[RL42[ril] as usize], LOW_NB_MAX, 8);
        band.adapt_predictor(d_low);
        i_low
    }

    /// High band: 2-bit ADPCM code for one sample.
    fn encode_high(&mut self, x_high: i32) -> i32 {
        let band = &mut self.high;
        // SUBTRA
        let eh = saturate(x_high - band.s);
        // QUANTH
        let magnitude = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if magnitude >= (564 * band.det) >> 12 {
            2
        } else {
            1
        };
        let i_high = if eh < 0 { IHN[mih] } else { IHP[mih] };
        // INVQAH
        let d_high = (band.det * QM2[i_high as usize]) >> 15;
        // LOGSCH, SCALEH
        band.adapt_scale(WH[RH2[i_high as usize] as usize], HIGH_NB_MAX, 10);
        band.adapt_predictor(d_high);
        i_high
    }
}

impl AudioEncoder for G722Encoder {
    fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> usize {
        self.encode_samples(frame, out)
    }

    fn continue_from(&mut self, state: &super::CodecState, recent: &[i16]) -> bool {
        let super::CodecState::G722(state) = state;
        G722Encoder::continue_from(self, state, recent);
        true
    }

    fn reset(&mut self) {
        *self = Self::new();
    }
}

/// G.722 64 kbit/s decoder: one byte in, two 16 kHz samples out; repeat-and-fade
/// concealment of lost frames.
pub struct G722Decoder {
    /// Receive QMF history.
    qmf: [i32; QMF_HISTORY],
    low: SubBand,
    high: SubBand,
    concealer: Concealer,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    pub fn new() -> Self {
        Self::with_reset_scale(LOW_DET_RESET, HIGH_DET_RESET)
    }

    /// Decoder with non-standard initial scale factors; see
    /// [`G722Encoder::with_reset_scale`].
    #[doc(hidden)]
    pub fn with_reset_scale(low_det: i32, high_det: i32) -> Self {
        Self {
            qmf: [0; QMF_HISTORY],
            low: SubBand::new(low_det),
            high: SubBand::new(high_det),
            concealer: Concealer::new(),
        }
    }

    /// The sub-band state after the codes decoded so far (see [`G722State`]).
    pub fn adpcm_state(&self) -> G722State {
        G722State { low: self.low, high: self.high }
    }

    /// Decode `codes` into `out` (two samples per byte, capped by `out`) without
    /// touching the concealment state; returns samples written.
    pub fn decode_samples(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let codes = &codes[..codes.len().min(out.len() / 2)];
        let mut x = [0i32; QMF_HISTORY + 2 * CHUNK_PAIRS];
        let mut written = 0;
        for chunk in codes.chunks(CHUNK_PAIRS) {
            x[..QMF_HISTORY].copy_from_slice(&self.qmf);
            for (k, &code) in chunk.iter().enumerate() {
                let r_low = self.decode_low(i32::from(code) & 0x3F);
                let r_high = self.decode_high(i32::from(code) >> 6);
                // Receive QMF: recombine the bands into two 16 kHz samples.
                x[QMF_HISTORY + 2 * k] = r_low + r_high;
                x[QMF_HISTORY + 2 * k + 1] = r_low - r_high;
                let window = &x[2 * k..2 * k + 24];
                let (mut first, mut second) = (0, 0);
                for i in 0..12 {
                    second += window[2 * i] * QMF_COEFFS[i];
                    first += window[2 * i + 1] * QMF_COEFFS[11 - i];
                }
                out[written] = saturate(first >> 11) as i16;
                out[written + 1] = saturate(second >> 11) as i16;
                written += 2;
            }
            let n = 2 * chunk.len();
            self.qmf.copy_from_slice(&x[n..n + QMF_HISTORY]);
        }
        written
    }

    /// Low band: reconstructed sample for one 6-bit code.
    fn decode_low(&mut self, i_low: i32) -> i32 {
        let band = &mut self.low;
        // INVQBL, RECONS, LIMIT: the output uses all 6 bits.
        let d_out = (band.det * QM6[i_low as usize]) >> 15;
        let r_low = (band.s + d_out).clamp(-16384, 16383);
        // INVQAL: the predictor uses the top 4 bits, exactly as in the encoder.
        let ril = (i_low >> 2) as usize;
        let d_low = (band.det * QM4[ril]) >> 15;
        band.adapt_scale(WL[RL42[ril] as usize], LOW_NB_MAX, 8);
        band.adapt_predictor(d_low);
        r_low
    }

    /// High band: reconstructed sample for one 2-bit code.
    fn decode_high(&mut self, i_high: i32) -> i32 {
        let band = &mut self.high;
        // INVQAH, RECONS, LIMIT
        let d_high = (band.det * QM2[i_high as usize]) >> 15;
        let r_high = (band.s + d_high).clamp(-16384, 16383);
        band.adapt_scale(WH[RH2[i_high as usize] as usize], HIGH_NB_MAX, 10);
        band.adapt_predictor(d_high);
        r_high
    }
}

impl AudioDecoder for G722Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        let n = self.decode_samples(payload, out);
        self.concealer.good_frame(&mut out[..n]);
        n
    }

    fn conceal(&mut self, out: &mut [i16]) -> usize {
        self.concealer.conceal(out)
    }

    fn state(&self) -> Option<super::CodecState> {
        Some(super::CodecState::G722(self.adpcm_state()))
    }
}
