//! Signal helpers shared by the codec and DSP tests: test tones and measurements.
#![allow(dead_code)]

use std::f64::consts::PI;

/// `n` samples of a sine at `freq` Hz, sample rate `rate`, peak `amplitude`.
pub fn tone(freq: f64, rate: f64, amplitude: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / rate).sin()).round() as i16)
        .collect()
}

/// Signal-to-noise ratio (dB) of `signal` as a tone at `freq`: the least-squares
/// sine/cosine fit at that frequency (any phase, so any codec delay) is the
/// signal, everything else (noise, distortion, images, aliases) the noise.
pub fn tone_snr_db(signal: &[i16], freq: f64, rate: f64) -> f64 {
    let w = 2.0 * PI * freq / rate;
    let (mut cc, mut ss, mut cs, mut xc, mut xs) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &x) in signal.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        let x = f64::from(x);
        cc += c * c;
        ss += s * s;
        cs += c * s;
        xc += x * c;
        xs += x * s;
    }
    let det = cc * ss - cs * cs;
    let a = (xc * ss - xs * cs) / det;
    let b = (xs * cc - xc * cs) / det;
    let (mut fit_power, mut residual_power) = (0.0, 0.0);
    for (i, &x) in signal.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        let fit = a * c + b * s;
        fit_power += fit * fit;
        residual_power += (f64::from(x) - fit).powi(2);
    }
    10.0 * (fit_power / residual_power.max(1e-9)).log10()
}

/// Power of `signal` at `freq` (Goertzel), normalised to the mean square of a
/// sine of the same amplitude.
pub fn goertzel_power(signal: &[i16], freq: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in signal {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (signal.len() as f64).powi(2)
}

/// Frequency (on a `step` Hz grid from `step` up to below Nyquist) with the most power.
pub fn peak_frequency(signal: &[i16], rate: f64, step: f64) -> f64 {
    let mut best = (0.0, f64::MIN);
    let mut f = step;
    while f < rate / 2.0 {
        let p = goertzel_power(signal, f, rate);
        if p > best.1 {
            best = (f, p);
        }
        f += step;
    }
    best.0
}

/// Mean square of `signal`.
pub fn power(signal: &[i16]) -> f64 {
    signal.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / signal.len().max(1) as f64
}

pub fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}
