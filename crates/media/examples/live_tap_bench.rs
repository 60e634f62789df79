//! What a live audio stream (`media::live`) costs the media thread, in CPU time.
//!
//! 1. The tap alone: `frames` room mixes pushed (i32 sum saturated, then one copy into
//!    the lock-free queue) while another thread drains the queue, and as many
//!    playback frames taken (the shell's side fed by another thread). Printed: the
//!    pushing/taking thread's CPU per frame.
//! 2. In the core: `rooms` rooms of two G.711 legs, both talking, ticked as fast as the
//!    core goes for 500 ticks, without a stream (both listeners on the relay path),
//!    then with each room's mix streamed (and drained every tick), then with playback
//!    too. A stream forces the room's mix to be computed even where every listener is
//!    on the relay path, so this is the whole price of streaming a two-party call.
//!
//! Run: `cargo run --release -p media --example live_tap_bench [frames] [rooms]`
//! (defaults 1000000, 100).

mod support;
use media::engine::{Command, CoreConfig, Input, MediaCore, Socket};
use media::live::{Direction, LiveAudio};
use media::{Attachment, CodecKind, LegId, LegParams, RoomId, FRAME_SAMPLES};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::thread_cpu_time;

fn tap_alone(frames: usize) {
    let live = LiveAudio::new(1, Direction::Both, true);
    let done = Arc::new(AtomicBool::new(false));
    let drainer = {
        let (live, done) = (live.clone(), done.clone());
        // The shell's side, on another core: drain what is streamed.
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                while live.take().is_some() {}
                std::hint::spin_loop();
            }
        })
    };
    let mut sum = [0i32; FRAME_SAMPLES];
    for (i, s) in sum.iter_mut().enumerate() {
        *s = (i as i32 - 160) * 300;
    }
    let t0 = thread_cpu_time();
    for _ in 0..frames {
        live.push_sum(&sum, None);
    }
    let push = thread_cpu_time() - t0;
    done.store(true, Ordering::Relaxed);
    drainer.join().unwrap();
    // Playback: the queue filled (off the clock), then emptied frame by frame.
    let mut back = [0i16; FRAME_SAMPLES];
    let (mut take, mut played) = (Duration::ZERO, 0usize);
    while played < frames {
        while live.queue_playback([7; FRAME_SAMPLES]) {}
        let t0 = thread_cpu_time();
        while live.next_playback(&mut back) {
            played += 1;
        }
        take += thread_cpu_time() - t0;
    }
    println!(
        "tap alone: push {:.0} ns/frame ({} overwritten while the drainer lagged), playback take {:.0} ns/frame",
        push.as_nanos() as f64 / frames as f64,
        live.counters().dropped_out,
        take.as_nanos() as f64 / played as f64,
    );
}

fn remote_of(leg: u64) -> SocketAddr {
    SocketAddr::new([127, 0, 0, 1].into(), (20_000 + leg % 40_000) as u16)
}

fn packet(leg: u64, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, leg as u8];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    for i in 0..160 {
        let t = (seq as usize * 160 + i) as f64 / 8000.0;
        let hz = 300.0 + (leg % 7) as f64 * 100.0;
        p.push(media::codec::g711::ulaw_encode(((t * hz * std::f64::consts::TAU).sin() * 8000.0) as i16));
    }
    p
}

/// CPU per tick of `rooms` rooms of two talking G.711 legs, with `stream` per room.
fn core_run(rooms: u64, stream: Option<bool>) -> Duration {
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let mut taps = Vec::new();
    for r in 0..rooms {
        for k in 0..2 {
            let leg = r * 2 + k + 1;
            let params = LegParams { remote: Some(remote_of(leg)), codec: CodecKind::Pcmu, payload_type: 0, telephone_event_pt: None, send: true, recv: true };
            core.handle_input(now, Input::Command(Command::AddLeg { leg: LegId(leg), local_rtp: "127.0.0.1:1".parse().unwrap() }));
            core.handle_input(now, Input::Command(Command::Configure(LegId(leg), params)));
            core.handle_input(now, Input::Command(Command::Attach(LegId(leg), Attachment::Room(RoomId(r)))));
        }
        if let Some(play_back) = stream {
            let live = LiveAudio::new(r + 1, Direction::Both, play_back);
            core.handle_input(now, Input::Command(Command::LiveRoom(RoomId(r), Some(live.clone()))));
            taps.push(live);
        }
    }
    let packets: Vec<Vec<Vec<u8>>> = (0..rooms * 2).map(|i| (0..600u16).map(|s| packet(i + 1, s)).collect()).collect();
    let mut cpu = Duration::ZERO;
    let ticks = 500;
    for seq in 0..ticks + 100 {
        for (i, p) in packets.iter().enumerate() {
            let leg = i as u64 + 1;
            core.handle_input(now, Input::Receive { leg: LegId(leg), socket: Socket::Rtp, from: remote_of(leg), data: &p[seq] });
        }
        // The shell's side, off the clock: drain, and keep playback fed.
        for t in &taps {
            while t.take().is_some() {}
            if t.plays_back() {
                t.queue_playback([500; FRAME_SAMPLES]);
            }
        }
        now += Duration::from_millis(20);
        let t0 = thread_cpu_time();
        core.handle_input(now, Input::Tick);
        while core.poll_output().is_some() {}
        // The first 100 ticks warm up (jitter buffers, relay switches).
        if seq >= 100 {
            cpu += thread_cpu_time() - t0;
        }
    }
    cpu / ticks as u32
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let frames = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let rooms = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    tap_alone(frames);
    let base = core_run(rooms, None);
    let streamed = core_run(rooms, Some(false));
    let played = core_run(rooms, Some(true));
    let per_room = |d: Duration| d.as_nanos() as f64 / rooms as f64 / 1000.0;
    println!("core, {rooms} rooms of two G.711 legs: {:.2} µs per room per tick without a stream", per_room(base));
    println!("  with the mix streamed: {:.2} µs (+{:.2})", per_room(streamed), per_room(streamed) - per_room(base));
    println!("  streamed with playback: {:.2} µs (+{:.2})", per_room(played), per_room(played) - per_room(base));
}
