//! What trimming a voicemail costs: `store::voicemail::trim_silence` on a minute of
//! 16 kHz audio (5 s of silence, 50 s of tone, 5 s of silence), the work the shell does
//! on a blocking thread for each message. Prints the median of 20 runs.
//!
//! `cargo run -p store --example trim_bench` (the dev profile is optimised here)

use std::time::Instant;

fn main() {
    let dir = tempfile_dir();
    let path = dir.join("minute.wav");
    let rate = 16_000usize;
    let mut samples = vec![0i16; 5 * rate];
    samples.extend((0..50 * rate).map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / rate as f32).sin() * 8000.0) as i16));
    samples.extend(vec![0i16; 5 * rate]);
    let mut times = Vec::new();
    for _ in 0..20 {
        store::voicemail::write_wav(&path, &samples).unwrap();
        let t = Instant::now();
        let d = store::voicemail::trim_silence(&path, store::voicemail::SILENCE_PEAK).unwrap();
        times.push(t.elapsed());
        assert!(d.as_secs_f64() > 50.0 && d.as_secs_f64() < 50.3, "{d:?}");
    }
    times.sort();
    println!("trim_silence, 60 s of 16 kHz audio (1.92 MB): median {:.2} ms, min {:.2} ms", times[10].as_secs_f64() * 1e3, times[0].as_secs_f64() * 1e3);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("trim_bench_{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
