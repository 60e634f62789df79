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
//! The inner loops are written tap by tap over blocks of 16 outputs so that they
//! vectorise, and run in an AVX2 build of the same code when the CPU has it.
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

/// The symmetric half-band sum shared by both directions:
/// `acc[i] += Σ_j taps[j] · (x[i + PAIRS − 1 − j] + x[i + PAIRS + j])`, taps in order
/// j = 0.. for every output (so the result does not depend on the blocking).
/// Outputs are computed 16 at a time with the accumulators held in registers across all
/// taps, which the compiler turns into SIMD; `x.len() == acc.len() + 2·PAIRS − 1`.
#[inline(always)]
fn interpolate(taps: &[f32; PAIRS], x: &[f32], acc: &mut [f32]) {
    const BLOCK: usize = 16;
    let n = acc.len();
    let blocks = n / BLOCK * BLOCK;
    for (b, out) in acc[..blocks].chunks_exact_mut(BLOCK).enumerate() {
        let at = b * BLOCK;
        let mut sum = [0.0f32; BLOCK];
        sum.copy_from_slice(out);
        for (j, &tap) in taps.iter().enumerate() {
            let before: &[f32; BLOCK] = x[at + PAIRS - 1 - j..][..BLOCK].try_into().expect("block");
            let after: &[f32; BLOCK] = x[at + PAIRS + j..][..BLOCK].try_into().expect("block");
            for k in 0..BLOCK {
                sum[k] += tap * (before[k] + after[k]);
            }
        }
        out.copy_from_slice(&sum);
    }
    for (i, a) in acc.iter_mut().enumerate().skip(blocks) {
        for (j, &tap) in taps.iter().enumerate() {
            *a += tap * (x[i + PAIRS - 1 - j] + x[i + PAIRS + j]);
        }
    }
}

/// Whether to run the filters in their AVX2 build. Both builds do the same multiplies
/// and adds per sample (no FMA), so their output is identical; AVX2 does twice as many
/// at once. Checked at run time (one cached flag), the binary stays baseline x86-64.
#[inline]
fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[inline(always)]
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

    /// Forget the filter history (as if newly made).
    pub fn reset(&mut self) {
        self.buf = [0.0; UP_HISTORY + CHUNK];
    }

    /// Convert `input` (8 kHz) into `out` (16 kHz); returns samples written,
    /// `2 * input.len()`, or fewer if `out` is too short (excess input is dropped).
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if use_avx2() {
            // SAFETY: the CPU supports AVX2 (use_avx2).
            return unsafe { self.process_avx2(input, out) };
        }
        self.process_any(input, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn process_avx2(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        self.process_any(input, out)
    }

    #[inline(always)]
    fn process_any(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let input = &input[..input.len().min(out.len() / 2)];
        let mut written = 0;
        for chunk in input.chunks(CHUNK) {
            let n = chunk.len();
            for (dst, &s) in self.buf[UP_HISTORY..UP_HISTORY + n].iter_mut().zip(chunk) {
                *dst = f32::from(s);
            }
            // Output i's window is buf[i..i + 2 * PAIRS]: it ends at the newest input,
            // its middle two samples straddle the point being interpolated.
            let mut mid = [0.0f32; CHUNK];
            interpolate(&self.taps, &self.buf[..2 * PAIRS - 1 + n], &mut mid[..n]);
            let mid = &mid[..n];
            let held = &self.buf[PAIRS - 1..PAIRS - 1 + n];
            for ((pair, &m), &h) in out[written..written + 2 * n].chunks_exact_mut(2).zip(mid.iter()).zip(held) {
                pair[0] = h as i16;
                pair[1] = to_sample(m);
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

    /// Forget the filter history (as if newly made).
    pub fn reset(&mut self) {
        self.buf = [0.0; DOWN_HISTORY + 2 * CHUNK];
        self.pending = None;
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
        #[cfg(target_arch = "x86_64")]
        if use_avx2() {
            // SAFETY: the CPU supports AVX2 (use_avx2).
            return unsafe { self.filter_chunk_avx2(chunk) };
        }
        self.filter_chunk_any(chunk)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn filter_chunk_avx2(&mut self, chunk: &[i16]) -> [i16; CHUNK] {
        self.filter_chunk_any(chunk)
    }

    #[inline(always)]
    fn filter_chunk_any(&mut self, chunk: &[i16]) -> [i16; CHUNK] {
        let n = chunk.len() / 2;
        for (dst, &s) in self.buf[DOWN_HISTORY..DOWN_HISTORY + 2 * n]
            .iter_mut()
            .zip(chunk)
        {
            *dst = f32::from(s);
        }
        // Output i's window is buf[2i + 1..]: the centre tap lands on buf[2i + 2·PAIRS]
        // (an even index) and every other non-zero tap on odd indices. Split the buffer
        // into its even and odd samples so that, tap by tap, the inner loop runs over
        // consecutive outputs and vectorises; each output still sums in the order of a
        // per-output loop (centre, then j = 0..).
        let mut even = [0.0f32; DOWN_HISTORY / 2 + CHUNK];
        let mut odd = [0.0f32; DOWN_HISTORY / 2 + CHUNK];
        let filled = DOWN_HISTORY / 2 + n;
        for (k, (e, o)) in even[..filled].iter_mut().zip(odd[..filled].iter_mut()).enumerate() {
            *e = self.buf[2 * k];
            *o = self.buf[2 * k + 1];
        }
        let mut acc = [0.0f32; CHUNK];
        let acc = &mut acc[..n];
        for (a, &c) in acc.iter_mut().zip(&even[PAIRS..PAIRS + n]) {
            *a = 0.5 * c;
        }
        // buf[2i + 2·PAIRS ∓ (2j + 1)] = odd[i + PAIRS − 1 − j], odd[i + PAIRS + j].
        interpolate(&self.taps, &odd[..2 * PAIRS - 1 + n], acc);
        let mut produced = [0i16; CHUNK];
        for (dst, &a) in produced[..n].iter_mut().zip(acc.iter()) {
            *dst = to_sample(a);
        }
        self.buf.copy_within(2 * n..2 * n + DOWN_HISTORY, 0);
        produced
    }
}
