//! The 8 kHz ⇄ 16 kHz half-band resamplers: tones stay pure, images and aliases
//! are removed, and frame boundaries are seamless.

mod codec_support;

use codec_support::{db, power, tone, tone_snr_db};
use media::dsp::resample::{Downsampler, Upsampler};

fn upsample(input: &[i16]) -> Vec<i16> {
    let mut out = vec![0; input.len() * 2];
    let n = Upsampler::new().process(input, &mut out);
    assert_eq!(n, out.len());
    out
}

fn downsample(input: &[i16]) -> Vec<i16> {
    let mut out = vec![0; input.len() / 2];
    let n = Downsampler::new().process(input, &mut out);
    assert_eq!(n, out.len());
    out
}

#[test]
fn upsampled_tones_stay_pure() {
    for freq in [440.0, 1000.0, 1700.0, 3000.0] {
        let out = upsample(&tone(freq, 8000.0, 10000.0, 8000));
        let settled = &out[200..];
        let snr = tone_snr_db(settled, freq, 16000.0);
        // The image at 8000 − f is the main impurity.
        let image =
            db(codec_support::goertzel_power(settled, 8000.0 - freq, 16000.0) / power(settled));
        println!("up {freq} Hz: SNR {snr:.1} dB, image {image:.1} dB");
        assert!(snr >= 60.0, "{freq} Hz: SNR {snr:.1} dB");
        assert!(image <= -60.0, "{freq} Hz: image {image:.1} dB");
        // Passband gain is unity.
        let gain = db(power(settled) / power(&tone(freq, 16000.0, 10000.0, 16000)));
        assert!(gain.abs() < 0.1, "{freq} Hz: gain {gain:.2} dB");
    }
}

#[test]
fn downsampled_tones_stay_pure() {
    for freq in [440.0, 1000.0, 1700.0, 3000.0] {
        let out = downsample(&tone(freq, 16000.0, 10000.0, 16000));
        let settled = &out[100..];
        let snr = tone_snr_db(settled, freq, 8000.0);
        println!("down {freq} Hz: SNR {snr:.1} dB");
        assert!(snr >= 60.0, "{freq} Hz: SNR {snr:.1} dB");
        let gain = db(power(settled) / power(&tone(freq, 8000.0, 10000.0, 8000)));
        assert!(gain.abs() < 0.1, "{freq} Hz: gain {gain:.2} dB");
    }
}

#[test]
fn downsampling_rejects_aliases() {
    // Wideband content above 4.6 kHz must not fold back into the telephone band.
    for freq in [4600.0, 5000.0, 6000.0, 7000.0, 7900.0] {
        let input = tone(freq, 16000.0, 20000.0, 16000);
        let out = downsample(&input);
        let leak = db(power(&out[100..]).max(1e-3) / power(&input));
        println!("alias of {freq} Hz: {leak:.1} dB");
        assert!(leak <= -60.0, "{freq} Hz leaks at {leak:.1} dB");
    }
}

#[test]
fn chunked_processing_matches_one_call() {
    let input8 = tone(1234.0, 8000.0, 12000.0, 2000);
    let input16 = tone(2345.0, 16000.0, 12000.0, 4000);
    let whole_up = upsample(&input8);
    let whole_down = downsample(&input16);
    for chunk in [1, 7, 33, 160, 161, 500] {
        let mut up = Upsampler::new();
        let mut out = vec![0; input8.len() * 2];
        let mut written = 0;
        for piece in input8.chunks(chunk) {
            written += up.process(piece, &mut out[written..]);
        }
        assert_eq!(out, whole_up, "up, chunks of {chunk}");

        let mut down = Downsampler::new();
        let mut out = vec![0; input16.len() / 2];
        let mut written = 0;
        for piece in input16.chunks(chunk) {
            written += down.process(piece, &mut out[written..]);
        }
        assert_eq!(written, out.len());
        assert_eq!(out, whole_down, "down, chunks of {chunk}");
    }
}

#[test]
fn full_scale_input_saturates_instead_of_wrapping() {
    let square: Vec<i16> = (0..4000)
        .map(|i| {
            if (i / 10) % 2 == 0 {
                i16::MAX
            } else {
                i16::MIN
            }
        })
        .collect();
    let out = upsample(&square);
    // Gibbs overshoot clips at the rails; a wrapped sample would flip sign mid-plateau.
    for (i, pair) in out.windows(2).enumerate().skip(100) {
        let jump = (i32::from(pair[1]) - i32::from(pair[0])).abs();
        assert!(jump < 40000, "wrap-around at {i}");
    }
    let out = downsample(&square);
    for pair in out.windows(2).skip(50) {
        assert!((i32::from(pair[1]) - i32::from(pair[0])).abs() < 60000);
    }
}

#[test]
fn output_is_bounded_by_the_buffer() {
    let input = tone(1000.0, 8000.0, 1000.0, 400);
    let mut out = [0i16; 101];
    assert_eq!(Upsampler::new().process(&input, &mut out), 100);
    let mut out = [0i16; 10];
    assert_eq!(Downsampler::new().process(&input, &mut out), 10);
}
