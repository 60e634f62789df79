//! Tone measurement for tests and benchmarks that check audio by content (tagged
//! frames, who hears whom): the Goertzel algorithm evaluates one DFT bin without a
//! whole FFT. Not used on the media hot path.

/// Share of the frame's power at `freq` (the nearest DFT bin), normalised so that a
/// pure tone gives about 1.0. Frames whose mean power per sample is below
/// `min_mean_power` (in i16 units squared; 0.0 for "any signal") give 0.0, so that
/// silence or a codec's leftovers never count as a tone.
pub fn tone_share(samples: &[i16], sample_rate: u32, freq: f64, min_mean_power: f64) -> f64 {
    let n = samples.len() as f64;
    if samples.is_empty() {
        return 0.0;
    }
    let bin = (0.5 + n * freq / sample_rate as f64).floor();
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * bin / n).cos();
    let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
    for &x in samples {
        let x = x as f64;
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if energy == 0.0 || energy < min_mean_power * n {
        return 0.0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * energy)
}
