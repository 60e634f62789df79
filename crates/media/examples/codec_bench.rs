//! Per-frame cost of the media hot path: how much of a core one participant's
//! codec work takes, and so how many participants fit per core.
//!
//! ```text
//! cargo run --release -p media --example codec_bench
//! ```
//! Every 20 ms a conference leg decodes one incoming frame (after a jitter
//! buffer push + pop) and encodes one outgoing frame. Each line prints the
//! mean nanoseconds per 20 ms frame, and what share of one core's 20 ms that is.
//!
//! Times are the thread's CPU time (on Linux), so a busy machine inflates them
//! less than wall-clock time would; the best of several runs is kept.

use media::codec::{new_decoder, new_encoder, CodecKind};
use media::dsp::resample::{Downsampler, Upsampler};
use media::jitter::{JitterBuffer, Pop};
use media::FRAME_SAMPLES;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Frames per measurement (20 s of audio).
const FRAMES: usize = 1000;
/// Measurements per item; the fastest is reported (least disturbed by other load).
const ROUNDS: usize = 5;
const FRAME_NS: f64 = 20_000_000.0;

/// 1 s of a speech-like test signal: two harmonics with a slow amplitude swing.
fn test_audio() -> Vec<i16> {
    (0..50 * FRAME_SAMPLES)
        .map(|i| {
            let t = i as f64 / 16000.0;
            let envelope = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let v = 8000.0 * (2.0 * std::f64::consts::PI * 180.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1260.0 * t).sin()
                + 1500.0 * (2.0 * std::f64::consts::PI * 2900.0 * t).sin();
            (envelope * v) as i16
        })
        .collect()
}

/// This thread's CPU time in nanoseconds (wall-clock time where unavailable).
#[cfg(target_os = "linux")]
fn cpu_time_ns() -> u128 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

#[cfg(not(target_os = "linux"))]
fn cpu_time_ns() -> u128 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos()
}

/// Mean time per call of `step(frame_index)`, best of `ROUNDS`.
fn measure(mut step: impl FnMut(usize)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = cpu_time_ns();
        for n in 0..FRAMES {
            step(n);
        }
        best = best.min((cpu_time_ns() - start) as f64 / FRAMES as f64);
    }
    best
}

fn report(name: &str, ns: f64) {
    println!(
        "{name:<34} {ns:>10.0} ns/frame  {:>6.3} % of a core",
        100.0 * ns / FRAME_NS
    );
}

fn main() {
    let audio = test_audio();
    let frame = |n: usize| &audio[(n % 50) * FRAME_SAMPLES..][..FRAME_SAMPLES];
    println!("per 20 ms frame of 16 kHz mono ({FRAMES} frames, best of {ROUNDS} runs)\n");

    let mut leg_costs = Vec::new();
    for kind in CodecKind::ALL.into_iter().filter(|k| k.available()) {
        let mut encoder = new_encoder(kind);
        let mut decoder = new_decoder(kind);
        let mut payload = [0u8; 1500];
        let mut pcm = [0i16; FRAME_SAMPLES * 6];
        // Pre-encode 1 s so decode can be timed on its own.
        let encoded: Vec<Vec<u8>> = (0..50)
            .map(|n| {
                let len = encoder.encode(frame(n), &mut payload);
                payload[..len].to_vec()
            })
            .collect();
        let encode = measure(|n| {
            black_box(encoder.encode(black_box(frame(n)), &mut payload));
        });
        let decode = measure(|n| {
            black_box(decoder.decode(black_box(&encoded[n % 50]), &mut pcm));
        });
        // Concealment is cheapest deep into a loss (fading or silent); the first
        // concealed frame after good audio (pitch search for G.711/G.722) is the
        // cost that matters, so time decode + conceal pairs and subtract decode.
        let decode_then_conceal = measure(|n| {
            black_box(decoder.decode(black_box(&encoded[n % 50]), &mut pcm));
            black_box(decoder.conceal(&mut pcm));
        });
        let conceal = (decode_then_conceal - decode).max(0.0);
        let name = kind.sdp_name();
        report(&format!("{name} encode"), encode);
        report(&format!("{name} decode"), decode);
        report(&format!("{name} encode+decode"), encode + decode);
        report(&format!("{name} conceal (first lost frame)"), conceal);
        leg_costs.push((name, encode + decode));
    }

    let mut down = Downsampler::new();
    let mut up = Upsampler::new();
    let mut narrow = [0i16; FRAME_SAMPLES / 2];
    let mut wide = [0i16; FRAME_SAMPLES];
    let resample_down = measure(|n| {
        black_box(down.process(black_box(frame(n)), &mut narrow));
    });
    let resample_up = measure(|_| {
        black_box(up.process(black_box(&narrow), &mut wide));
    });
    report("resample 16k->8k", resample_down);
    report("resample 8k->16k", resample_up);

    let mut jitter = JitterBuffer::new(8000, 160);
    let t0 = Instant::now();
    let payload = [0xD5u8; 160];
    let mut seq = 0u16;
    let jitter_cost = measure(|n| {
        let now = t0 + Duration::from_millis(n as u64 * 20);
        jitter.push(now, seq, u32::from(seq) * 160, false, black_box(&payload));
        seq = seq.wrapping_add(1);
        black_box(matches!(jitter.pop(now), Pop::Frame(_)));
    });
    report("jitter push+pop (160 B)", jitter_cost);

    println!("\nparticipants per core (codec + jitter buffer only, no mixing or I/O):");
    for (name, cost) in leg_costs {
        println!("  {name:<5} {:>7.0}", FRAME_NS / (cost + jitter_cost));
    }
}
