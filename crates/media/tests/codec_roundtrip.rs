//! Every codec through `new_encoder`/`new_decoder` at the mixing rate: a tone
//! comes back at its frequency and clean, payloads have the RTP sizes, and
//! concealment continues then fades.

mod codec_support;

use codec_support::{peak_frequency, power, tone, tone_snr_db};
use media::codec::{new_decoder, new_encoder, CodecKind};
use media::FRAME_SAMPLES;

const RATE: f64 = 16000.0;

fn available_codecs() -> Vec<CodecKind> {
    CodecKind::ALL
        .into_iter()
        .filter(|kind| kind.available())
        .collect()
}

/// Encode and decode `input` frame by frame; returns the decoded audio and payload sizes.
fn round_trip(kind: CodecKind, input: &[i16]) -> (Vec<i16>, Vec<usize>) {
    let mut encoder = new_encoder(kind);
    let mut decoder = new_decoder(kind);
    let (mut output, mut sizes) = (Vec::new(), Vec::new());
    let mut payload = [0u8; 1500];
    let mut pcm = [0i16; FRAME_SAMPLES * 6];
    for frame in input.chunks_exact(FRAME_SAMPLES) {
        let n = encoder.encode(frame, &mut payload);
        sizes.push(n);
        let m = decoder.decode(&payload[..n], &mut pcm);
        output.extend_from_slice(&pcm[..m]);
    }
    (output, sizes)
}

/// Quality floor per codec for a steady tone.
fn min_snr_db(kind: CodecKind) -> f64 {
    match kind {
        CodecKind::Opus => 15.0,
        _ => 25.0,
    }
}

#[test]
fn thousand_hertz_tone_survives_every_codec() {
    // One second at −10 dBFS; the first 200 ms cover codec delay and adaptation.
    let input = tone(1000.0, RATE, 10362.0, 50 * FRAME_SAMPLES);
    for kind in available_codecs() {
        let (output, _) = round_trip(kind, &input);
        assert_eq!(output.len(), input.len(), "{kind:?}");
        let steady = &output[10 * FRAME_SAMPLES..];
        let peak = peak_frequency(steady, RATE, 50.0);
        let snr = tone_snr_db(steady, 1000.0, RATE);
        println!("{kind:?}: peak {peak} Hz, SNR {snr:.1} dB");
        assert_eq!(peak, 1000.0, "{kind:?}");
        assert!(snr >= min_snr_db(kind), "{kind:?}: SNR {snr:.1} dB");
    }
}

#[test]
fn telephone_band_tones_survive_narrowband_and_wideband_codecs() {
    for freq in [440.0, 1700.0, 3000.0] {
        let input = tone(freq, RATE, 10362.0, 50 * FRAME_SAMPLES);
        for kind in available_codecs() {
            let (output, _) = round_trip(kind, &input);
            let steady = &output[10 * FRAME_SAMPLES..];
            let snr = tone_snr_db(steady, freq, RATE);
            assert_eq!(
                peak_frequency(steady, RATE, 10.0),
                freq,
                "{kind:?} at {freq} Hz"
            );
            assert!(
                snr >= min_snr_db(kind),
                "{kind:?} at {freq} Hz: SNR {snr:.1} dB"
            );
        }
    }
}

#[test]
fn wideband_codecs_carry_six_kilohertz_and_g711_stops_it() {
    let input = tone(6000.0, RATE, 10362.0, 50 * FRAME_SAMPLES);
    for kind in available_codecs() {
        let (output, _) = round_trip(kind, &input);
        let steady = &output[10 * FRAME_SAMPLES..];
        let gain_db = codec_support::db(power(steady) / power(&input));
        match kind {
            CodecKind::G722 | CodecKind::Opus => {
                assert_eq!(peak_frequency(steady, RATE, 50.0), 6000.0, "{kind:?}");
                assert!(gain_db > -3.0, "{kind:?}: {gain_db:.1} dB");
            }
            // Above the 4 kHz narrowband limit: the resampler removes it.
            CodecKind::Pcmu | CodecKind::Pcma => {
                assert!(gain_db < -50.0, "{kind:?}: {gain_db:.1} dB")
            }
        }
    }
}

#[test]
fn payload_sizes_follow_the_rtp_formats() {
    let input = tone(1000.0, RATE, 8000.0, 10 * FRAME_SAMPLES);
    for kind in available_codecs() {
        let (_, sizes) = round_trip(kind, &input);
        for size in sizes {
            match kind {
                CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => {
                    assert_eq!(size, 160, "{kind:?}")
                }
                // 24 kbit/s VBR: about 60 bytes per 20 ms.
                CodecKind::Opus => assert!((20..=200).contains(&size), "{kind:?}: {size} bytes"),
            }
        }
    }
}

#[test]
fn decoders_accept_other_packet_durations() {
    // A 10 ms and a 60 ms packet from a far end with another ptime.
    for kind in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::G722] {
        let mut decoder = new_decoder(kind);
        let mut pcm = [0i16; FRAME_SAMPLES * 6];
        assert_eq!(decoder.decode(&[0xD5; 80], &mut pcm), 160, "{kind:?}");
        assert_eq!(decoder.decode(&[0xD5; 480], &mut pcm), 960, "{kind:?}");
        // Larger than the output: truncated, never overrun.
        assert_eq!(
            decoder.decode(&[0xD5; 1400], &mut pcm),
            FRAME_SAMPLES * 6,
            "{kind:?}"
        );
    }
}

#[test]
fn concealment_continues_the_tone_then_fades_to_silence() {
    let input = tone(1000.0, RATE, 10362.0, 10 * FRAME_SAMPLES);
    for kind in available_codecs() {
        let mut encoder = new_encoder(kind);
        let mut decoder = new_decoder(kind);
        let mut payload = [0u8; 1500];
        let mut pcm = [0i16; FRAME_SAMPLES * 6];
        for frame in input.chunks_exact(FRAME_SAMPLES) {
            let n = encoder.encode(frame, &mut payload);
            decoder.decode(&payload[..n], &mut pcm);
        }
        let mut concealed = Vec::new();
        for _ in 0..8 {
            let n = decoder.conceal(&mut pcm);
            assert_eq!(n, FRAME_SAMPLES, "{kind:?}");
            concealed.extend_from_slice(&pcm[..n]);
        }
        let first = &concealed[..FRAME_SAMPLES];
        let first_level = codec_support::db(power(first) / power(&input));
        println!("{kind:?}: first concealed frame {first_level:.1} dB");
        assert!(
            first_level > -6.0,
            "{kind:?}: first concealed frame at {first_level:.1} dB"
        );
        assert_eq!(peak_frequency(first, RATE, 50.0), 1000.0, "{kind:?}");
        // 100–160 ms into the loss: (near) silence.
        let tail_level =
            codec_support::db(power(&concealed[5 * FRAME_SAMPLES..]).max(1e-3) / power(&input));
        assert!(
            tail_level < -30.0,
            "{kind:?}: still {tail_level:.1} dB after 100 ms"
        );
        if kind != CodecKind::Opus {
            assert!(
                concealed[4 * FRAME_SAMPLES..].iter().all(|&s| s == 0),
                "{kind:?}: silent from 80 ms"
            );
        }
    }
}

#[test]
fn repeat_and_fade_concealment_joins_the_signal_smoothly() {
    // After a single lost frame, the recovered audio has no step: the largest
    // sample-to-sample change stays within what the tone itself has.
    let input = tone(440.0, RATE, 10000.0, 12 * FRAME_SAMPLES);
    for kind in [CodecKind::Pcmu, CodecKind::G722] {
        let mut encoder = new_encoder(kind);
        let mut decoder = new_decoder(kind);
        let mut payload = [0u8; 1500];
        let mut pcm = [0i16; FRAME_SAMPLES * 6];
        let mut output = Vec::new();
        for (i, frame) in input.chunks_exact(FRAME_SAMPLES).enumerate() {
            let n = encoder.encode(frame, &mut payload);
            let m = if i == 6 {
                decoder.conceal(&mut pcm)
            } else {
                decoder.decode(&payload[..n], &mut pcm)
            };
            output.extend_from_slice(&pcm[..m]);
        }
        let max_step = |s: &[i16]| {
            s.windows(2)
                .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
                .max()
                .unwrap()
        };
        let normal = max_step(&output[2 * FRAME_SAMPLES..6 * FRAME_SAMPLES]);
        let around_loss = max_step(&output[6 * FRAME_SAMPLES - 10..8 * FRAME_SAMPLES]);
        assert!(
            around_loss <= normal * 3 / 2,
            "{kind:?}: step {around_loss} vs {normal}"
        );
    }
}

#[test]
fn codec_kinds_describe_their_rtp_formats() {
    use CodecKind::*;
    assert_eq!(
        [Pcmu, Pcma, G722, Opus].map(|k| k.rtp_clock_rate()),
        [8000, 8000, 8000, 48000]
    );
    assert_eq!(
        [Pcmu, Pcma, G722, Opus].map(|k| k.rtp_samples_per_frame()),
        [160, 160, 160, 960]
    );
    assert_eq!(
        [Pcmu, Pcma, G722, Opus].map(|k| k.static_payload_type()),
        [Some(0), Some(8), Some(9), None]
    );
    assert_eq!(CodecKind::from_sdp_name("pcmu"), Some(Pcmu));
    assert_eq!(CodecKind::from_sdp_name("PCMA"), Some(Pcma));
    assert_eq!(CodecKind::from_sdp_name("g722"), Some(G722));
    assert_eq!(CodecKind::from_sdp_name("OPUS"), Some(Opus));
    assert_eq!(CodecKind::from_sdp_name("telephone-event"), None);
    for kind in CodecKind::ALL {
        assert_eq!(CodecKind::from_sdp_name(kind.sdp_name()), Some(kind));
    }
    assert_eq!(Opus.available(), cfg!(feature = "opus"));
}
