//! Streaming 8 kHz ⇄ 16 kHz sample-rate conversion for narrowband codecs.
//!
//! G.711 runs at 8 kHz and the mixer at 16 kHz, so every PCMU/PCMA leg passes each
//! frame through one of these. Both directions use the same linear-phase half-band
//! FIR (Kaiser-windowed sinc, 63 taps, cutoff at 4 kHz): passband flat within
//! 0.01 dB up to 3.4 kHz, stopband ≥ 70 dB from 4.6 kHz, so a telephone-band tone
//! keeps no audible image (upsampling) or alias (downsampling).
//!
//! A half-band filter has every other tap zero except the centre one (which is ½),
//! so in polyphase form one output phase is a pure delay and the other needs only
//! [`PAIRS`] multiply-adds over symmetric sample pairs:
//! - [`Upsampler`]: per 8 kHz input, 2 outputs, 16 multiplies.
//! - [`Downsampler`]: per 2 inputs at 16 kHz, 1 output, 16 multiplies.
//!
//! Each keeps its filter history between calls (so frame boundaries are seamless)
//! in a fixed array, processes arbitrary-length input in bounded chunks, and never
//! allocates. Delay: about 2 ms each way (32 samples at 16 kHz up, 30 down).

/// Symmetric pairs of non-zero odd-offset taps (63-tap filter).
pub const PAIRS: usize = 16;
/// Kaiser window shape: trades transition width against stopband depth.
const KAISER_BETA: f64 = 7.0;
/// Input samples converted per inner step; bounds the work buffer size.
const CHUNK: usize = 160;
/// Upsampler history: the previous input samples the interpolator still needs.
const UP_HISTORY: usize = 2 * PAIRS - 1;
/// Downsampler history: previous 16 kHz samples the decimator still needs.
const DOWN_HISTORY: usize = 4 * PAIRS - 2;

/// Odd-offset taps `h[±1], h[±3], …, h[±(2·PAIRS−1)]` of the half-band low-pass
/// (the centre tap is ½), scaled for unity gain at DC.
fn halfband_taps() -> [f32; PAIRS] {
    // Zeroth-order modified Bessel function, by its power series.
    fn bessel_i0(x: f64) -> f64 {
        let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
        while term > 1e-12 * sum {
            term *= (x / (2.0 * k)) * (x / (2.0 * k));
            sum += term;
            k += 1.0;
        }
        sum
    }
    let half_length = (2 * PAIRS) as f64;
    let mut taps = [0f64; PAIRS];
    for (j, tap) in taps.iter_mut().enumerate() {
        let d = (2 * j + 1) as f64;
        let sinc = (std::f64::consts::FRAC_PI_2 * d).sin() / (std::f64::consts::PI * d);
        let window = bessel_i0(KAISER_BETA * (1.0 - (d / half_length).powi(2)).sqrt())
            / bessel_i0(KAISER_BETA);
        *tap = sinc * window;
    }
    // Each tap occurs twice; together they must add to ½ so the filter passes DC at 1.
    let scale = 0.25 / taps.iter().sum::<f64>();
    taps.map(|t| (t * scale) as f32)
}

#[inline]
fn to_sample(v: f32) -> i16 {
    // Round half away from zero; `as` saturates out-of-range values.
    (v + 0.5f32.copysign(v)) as i16
}

/// 8 kHz → 16 kHz interpolator.
pub struct Upsampler {
    /// Interpolation taps (twice the half-band taps: zero-stuffing halves the gain).
    taps: [f32; PAIRS],
    /// `UP_HISTORY` samples from earlier calls, then the current chunk.
    buf: [f32; UP_HISTORY + CHUNK],
}

impl Default for Upsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler {
    pub fn new() -> Self {
        Self {
            taps: halfband_taps().map(|t| 2.0 * t),
            buf: [0.0; UP_HISTORY + CHUNK],
        }
    }

    /// Convert `input` (8 kHz) into `out` (16 kHz); returns samples written,
    /// `2 * input.len()`, or fewer if `out` is too short (excess input is dropped).
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let input = &input[..input.len().min(out.len() / 2)];
        let mut written = 0;
        for chunk in input.chunks(CHUNK) {
            let n = chunk.len();
            for (dst, &s) in self.buf[UP_HISTORY..UP_HISTORY + n].iter_mut().zip(chunk) {
                *dst = f32::from(s);
            }
            for (i, pair) in out[written..written + 2 * n]
                .chunks_exact_mut(2)
                .enumerate()
            {
                // `window` ends at the newest input; its middle two samples straddle
                // the point being interpolated.
                let window = &self.buf[i..i + 2 * PAIRS];
                let mut mid = 0.0;
                for (j, &tap) in self.taps.iter().enumerate() {
                    mid += tap * (window[PAIRS - 1 - j] + window[PAIRS + j]);
                }
                pair[0] = window[PAIRS - 1] as i16;
                pair[1] = to_sample(mid);
            }
            self.buf.copy_within(n..n + UP_HISTORY, 0);
            written += 2 * n;
        }
        written
    }
}

/// 16 kHz → 8 kHz decimator.
pub struct Downsampler {
    taps: [f32; PAIRS],
    /// `DOWN_HISTORY` samples from earlier calls, then the current chunk.
    buf: [f32; DOWN_HISTORY + 2 * CHUNK],
    /// An odd sample left over from the previous call, waiting for its pair.
    pending: Option<i16>,
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    pub fn new() -> Self {
        Self {
            taps: halfband_taps(),
            buf: [0.0; DOWN_HISTORY + 2 * CHUNK],
            pending: None,
        }
    }

    /// Convert `input` (16 kHz) into `out` (8 kHz); returns samples written,
    /// `input.len() / 2` (an odd sample is carried to the next call), or fewer if
    /// `out` is too short (excess input is dropped).
    pub fn process(&mut self, mut input: &[i16], out: &mut [i16]) -> usize {
        let mut written = 0;
        // Complete a pair split across calls.
        if let Some(first) = self.pending {
            let Some((&second, rest)) = input.split_first() else {
                return 0;
            };
            if out.is_empty() {
                return 0;
            }
            self.pending = None;
            out[0] = self.filter_chunk(&[first, second])[0];
            written = 1;
            input = rest;
        }
        let pairs = (input.len() / 2).min(out.len() - written);
        for chunk in input[..2 * pairs].chunks(2 * CHUNK) {
            let n = chunk.len() / 2;
            let produced = self.filter_chunk(chunk);
            out[written..written + n].copy_from_slice(&produced[..n]);
            written += n;
        }
        if input.len() % 2 == 1 && pairs == input.len() / 2 {
            self.pending = Some(input[input.len() - 1]);
        }
        written
    }

    /// Filter an even-length chunk (at most `2 * CHUNK` samples) into its outputs.
    fn filter_chunk(&mut self, chunk: &[i16]) -> [i16; CHUNK] {
        let n = chunk.len() / 2;
        for (dst, &s) in self.buf[DOWN_HISTORY..DOWN_HISTORY + 2 * n]
            .iter_mut()
            .zip(chunk)
        {
            *dst = f32::from(s);
        }
        let mut produced = [0i16; CHUNK];
        for (i, dst) in produced[..n].iter_mut().enumerate() {
            // `window` ends at the newer sample of input pair `i`; the centre tap
            // lands on its middle sample.
            let window = &self.buf[2 * i + 1..2 * i + 1 + DOWN_HISTORY + 1];
            let centre = 2 * PAIRS - 1;
            let mut acc = 0.5 * window[centre];
            for (j, &tap) in self.taps.iter().enumerate() {
                let d = 2 * j + 1;
                acc += tap * (window[centre - d] + window[centre + d]);
            }
            *dst = to_sample(acc);
        }
        self.buf.copy_within(2 * n..2 * n + DOWN_HISTORY, 0);
        produced
    }
}
