//! What prompts and recordings cost, in CPU time (the machine may be shared).
//!
//! 1. Prompts: `legs` lone G.711 legs (an IVR's callers) each play a real prompt file
//!    (`prompts/en/pin_prompt.wav`, 16 kHz, repeated) for `secs` seconds, ticked in real
//!    time so that the reader thread reads as it would in service. Printed: the media
//!    core's CPU per leg per tick (take the frame, encode, packetize) and the reader
//!    thread's CPU per leg-second (read, decode, queue), and how many frames were
//!    missing at playout (the reader fell behind: silence played).
//! 2. Recordings: `rooms` rooms of three G.711 legs, all talking, ticked as fast as the
//!    core goes, without a recording, with the mix recorded, and with the mix and a
//!    track per participant. Printed: the core's CPU per tick and the writer threads'
//!    CPU per recorded second.
//!
//! 3. Join and leave sounds: `rooms` rooms of ten G.711 legs, three of them talking,
//!    ticked in real time for `secs` seconds, first as they are, then with a join or
//!    leave sound (`prompts/en/join.wav`, 0.24 s) played to every participant of each
//!    room once a second (rooms staggered across the second): far more churn than a
//!    real bridge sees. Printed: the core's CPU per participant per tick both ways, and
//!    participants per core, and the reader's CPU.
//!
//! Run: `cargo run --release -p media --example prompt_bench [legs] [secs] [rooms]`
//! (defaults 1000, 5, 100).

mod support;
use media::codec::{new_encoder, CodecKind};
use media::engine::{Command, CoreConfig, Input, MediaCore, Output, PromptTarget, Socket};
use media::player::{PromptPart, PromptReader, PromptSpec};
use media::{Attachment, LegId, LegParams, PromptId, RoomId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::thread_cpu_time;

const TICK: Duration = Duration::from_millis(20);

/// CPU time of the whole process.
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn add_leg(core: &mut MediaCore, now: Instant, id: u64, attachment: Attachment) -> SocketAddr {
    let from = SocketAddr::new([127, 0, 0, 1].into(), 10_000 + (id % 50_000) as u16);
    let leg = LegId(id);
    core.handle_input(now, Input::Command(Command::AddLeg { leg, local_rtp: from }));
    let params = LegParams { remote: Some(from), codec: CodecKind::Pcmu, payload_type: 0, telephone_event_pt: Some(101), send: true, recv: true };
    core.handle_input(now, Input::Command(Command::Configure(leg, params)));
    core.handle_input(now, Input::Command(Command::Attach(leg, attachment)));
    from
}

fn prompts(legs: u64, secs: u64) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/en/pin_prompt.wav");
    assert!(file.exists(), "{} is missing", file.display());
    let reader = PromptReader::start().expect("reader thread");
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    for id in 1..=legs {
        add_leg(&mut core, now, id, Attachment::None);
        let spec = PromptSpec { parts: vec![PromptPart::File(file.clone())], repeat: true, barge_in: true };
        let playing = reader.open(PromptId(id), spec);
        core.handle_input(now, Input::Command(Command::Play(PromptTarget::Leg(LegId(id)), Box::new(playing))));
    }
    std::thread::sleep(Duration::from_millis(300)); // let the reader fill the queues
    let ticks = secs * 50;
    let (mut sent, mut bytes) = (0u64, 0u64);
    let (core_start, proc_start) = (thread_cpu_time(), process_cpu_time());
    let mut core_cpu = Duration::ZERO;
    let mut next = Instant::now();
    for _ in 0..ticks {
        next += TICK;
        now += TICK;
        let t0 = thread_cpu_time();
        core.handle_input(now, Input::Tick);
        while let Some(o) = core.poll_output() {
            if let Output::Transmit(t) = o {
                if t.socket == Socket::Rtp {
                    sent += 1;
                    // µ-law silence is 0xff/0x7f: count frames that carry sound
                    bytes += t.data[12..].iter().any(|&b| b & 0x7f != 0x7f) as u64;
                }
            }
        }
        core_cpu += thread_cpu_time() - t0;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let total_core = thread_cpu_time() - core_start;
    let reader_cpu = (process_cpu_time() - proc_start).saturating_sub(total_core);
    let leg_ticks = (legs * ticks) as f64;
    println!(
        "prompts: {legs} legs x {secs} s: core {:.2} µs per leg per tick ({:.2} ms per tick, {:.0} legs per core); \
         reader {:.1} µs per leg-second ({:.1} % of a core); {} of {} frames sent, {} with sound",
        core_cpu.as_secs_f64() * 1e6 / leg_ticks,
        core_cpu.as_secs_f64() * 1e3 / ticks as f64,
        0.020 / (core_cpu.as_secs_f64() / leg_ticks),
        reader_cpu.as_secs_f64() * 1e6 / (legs * secs) as f64,
        reader_cpu.as_secs_f64() * 100.0 / secs as f64,
        sent,
        legs * ticks,
        bytes,
    );
}

/// `rooms` rooms of three talking legs; `record`: 0 none, 1 the mix, 2 mix and tracks.
fn recordings(rooms: u64, record: u8, ticks: u32) -> (Duration, Duration) {
    let dir = std::env::temp_dir().join(format!("sb-prompt-bench-{}-{record}", std::process::id()));
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let mut enc = new_encoder(CodecKind::Pcmu);
    let mut senders = Vec::new();
    let mut taps = Vec::new();
    for r in 0..rooms {
        for i in 0..3u64 {
            let id = r * 3 + i + 1;
            let from = add_leg(&mut core, now, id, Attachment::Room(RoomId(r)));
            let f = 300.0 + 150.0 * i as f64;
            let frame: [i16; 320] = std::array::from_fn(|k| (6000.0 * (2.0 * std::f64::consts::PI * f * k as f64 / 16_000.0).sin()) as i16);
            let mut payload = [0u8; 1500];
            let n = enc.encode(&frame, &mut payload);
            let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, id as u8];
            packet.extend_from_slice(&payload[..n]);
            senders.push((LegId(id), from, packet));
            if record == 2 {
                let tap = media::recorder::start(&dir.join(format!("{r}/{id}.wav"))).expect("recorder");
                core.handle_input(now, Input::Command(Command::RecordLeg(LegId(id), Some(tap.clone()))));
                taps.push(tap);
            }
        }
        if record >= 1 {
            let tap = media::recorder::start(&dir.join(format!("{r}/mix.wav"))).expect("recorder");
            core.handle_input(now, Input::Command(Command::Tap(RoomId(r), Some(tap.clone()))));
            taps.push(tap);
        }
    }
    let (core_start, proc_start) = (thread_cpu_time(), process_cpu_time());
    for k in 0..ticks {
        now += TICK;
        for (leg, from, packet) in senders.iter_mut() {
            packet[2..4].copy_from_slice(&(k as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&(k * 160).to_be_bytes());
            core.handle_input(now, Input::Receive { leg: *leg, socket: Socket::Rtp, from: *from, data: packet });
        }
        core.handle_input(now, Input::Tick);
        while core.poll_output().is_some() {}
    }
    let core_cpu = thread_cpu_time() - core_start;
    // Close every file and let the writers finish before counting their CPU.
    for r in 0..rooms {
        core.handle_input(now, Input::Command(Command::Tap(RoomId(r), None)));
        for i in 0..3u64 {
            core.handle_input(now, Input::Command(Command::RecordLeg(LegId(r * 3 + i + 1), None)));
        }
    }
    let dropped: u64 = taps.iter().map(|t| t.dropped()).sum();
    drop(taps);
    std::thread::sleep(Duration::from_millis(500));
    let writers = (process_cpu_time() - proc_start).saturating_sub(core_cpu);
    if dropped > 0 {
        println!("  ({dropped} frames dropped: the writers fell behind a core running faster than real time)");
    }
    std::fs::remove_dir_all(&dir).ok();
    (core_cpu, writers)
}

/// `rooms` rooms of ten legs (three talking), ticked in real time for `secs`; with
/// `sounds`, every participant of a room hears `join.wav` once a second. Returns the
/// core's CPU, the reader's CPU and how many sounds were started.
fn room_sounds(rooms: u64, secs: u64, sounds: bool) -> (Duration, Duration, u64) {
    const PER_ROOM: u64 = 10;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/en/join.wav");
    let reader = PromptReader::start().expect("reader thread");
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let mut enc = new_encoder(CodecKind::Pcmu);
    let mut senders = Vec::new();
    for r in 0..rooms {
        for i in 0..PER_ROOM {
            let id = r * PER_ROOM + i + 1;
            let from = add_leg(&mut core, now, id, Attachment::Room(RoomId(r)));
            if i < 3 {
                let f = 300.0 + 150.0 * i as f64;
                let frame: [i16; 320] = std::array::from_fn(|k| (6000.0 * (2.0 * std::f64::consts::PI * f * k as f64 / 16_000.0).sin()) as i16);
                let mut payload = [0u8; 1500];
                let n = enc.encode(&frame, &mut payload);
                let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, id as u8];
                packet.extend_from_slice(&payload[..n]);
                senders.push((LegId(id), from, packet));
            }
        }
    }
    let ticks = secs * 50;
    let (mut core_cpu, mut started) = (Duration::ZERO, 0u64);
    let proc_start = process_cpu_time();
    let mut next = Instant::now();
    for k in 0..ticks {
        next += TICK;
        now += TICK;
        let t0 = thread_cpu_time();
        for (leg, from, packet) in senders.iter_mut() {
            packet[2..4].copy_from_slice(&(k as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&((k * 160) as u32).to_be_bytes());
            core.handle_input(now, Input::Receive { leg: *leg, socket: Socket::Rtp, from: *from, data: packet });
        }
        core_cpu += thread_cpu_time() - t0;
        // Opening a prompt is the signalling side's work (the reader reads it); only
        // the Play command is the core's.
        let mut plays = Vec::new();
        if sounds {
            for r in (0..rooms).filter(|r| r % 50 == k % 50) {
                for i in 0..PER_ROOM {
                    let id = r * PER_ROOM + i + 1;
                    started += 1;
                    let spec = PromptSpec { parts: vec![PromptPart::File(file.clone())], repeat: false, barge_in: false };
                    plays.push((LegId(id), reader.open(PromptId(started), spec)));
                }
            }
        }
        let t0 = thread_cpu_time();
        for (leg, playing) in plays {
            core.handle_input(now, Input::Command(Command::Play(PromptTarget::Leg(leg), Box::new(playing))));
        }
        core.handle_input(now, Input::Tick);
        while core.poll_output().is_some() {}
        core_cpu += thread_cpu_time() - t0;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let reader_cpu = (process_cpu_time() - proc_start).saturating_sub(core_cpu);
    (core_cpu, reader_cpu, started)
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let legs = args.first().copied().unwrap_or(1000);
    let secs = args.get(1).copied().unwrap_or(5);
    let rooms = args.get(2).copied().unwrap_or(100);
    prompts(legs, secs);
    // 300 ticks = 6 s of audio: short enough that the writers' queues (10 s) never fill.
    let ticks = 300;
    let (base, _) = recordings(rooms, 0, ticks);
    for (record, what) in [(1u8, "the mix"), (2, "the mix + 3 tracks")] {
        let (cpu, writers) = recordings(rooms, record, ticks);
        let files = rooms * if record == 2 { 4 } else { 1 };
        println!(
            "recording {what:<18}: {rooms} rooms of 3: core {:.3} ms per tick ({:+.3} ms over no recording, {:+.2} µs per file per tick); writers {:.1} µs per file-second",
            cpu.as_secs_f64() * 1e3 / ticks as f64,
            (cpu.as_secs_f64() - base.as_secs_f64()) * 1e3 / ticks as f64,
            (cpu.as_secs_f64() - base.as_secs_f64()) * 1e6 / ticks as f64 / files as f64,
            writers.as_secs_f64() * 1e6 / (files as f64 * ticks as f64 / 50.0),
        );
    }
    println!("baseline: {rooms} rooms of 3, no recording: core {:.3} ms per tick", base.as_secs_f64() * 1e3 / ticks as f64);

    let participants = rooms * 10;
    let ticks = (secs * 50) as f64;
    let (quiet, _, _) = room_sounds(rooms, secs, false);
    let (busy, reader, n) = room_sounds(rooms, secs, true);
    let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / ticks / participants as f64;
    println!(
        "rooms: {rooms} rooms of 10 (3 talking), {secs} s: core {:.2} µs per participant per tick without sounds ({:.0} per core), \
         {:.2} µs with a join/leave sound to everyone once a second ({:.0} per core; {n} sounds, reader {:.1} % of a core)",
        per(quiet),
        20_000.0 / per(quiet),
        per(busy),
        20_000.0 / per(busy),
        reader.as_secs_f64() * 100.0 / secs as f64,
    );
}
