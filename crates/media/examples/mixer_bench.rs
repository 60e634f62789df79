//! Mixer-only benchmark: the sans-IO media core on one thread, no sockets.
//!
//! Each tick every leg receives one G.711 µ-law packet (a tone for the speakers,
//! silence for everyone else) through `handle_input`, then the core runs its tick
//! (jitter buffer pop, energy from the µ-law bytes and talk detection for every leg,
//! decode of the speaker candidates, speaker selection, mix, encode — at 8 kHz for
//! G.711 listeners of G.711 speakers — and RTP packetization) and the outgoing packets
//! are drained with `poll_output`.
//! "Frames mixed" = listener frames produced (one 20 ms packet per leg per tick).
//!
//! Run: `cargo run --release -p media --example mixer_bench` (`-- calls`: only the
//! two-party calls).
//! Two-party calls: rooms of two, one party talking; both G.711 (each listener on the
//! relay fast path: the speaker's payload forwarded, no decode or encode), or G.711
//! with G.722 or Opus (decoded, mixed, encoded for the other side).
//! Scenarios: one room of 3,000 legs with 3 active speakers; 1,000 rooms of 3 legs,
//! all speaking.
//!
//! Then the core's delay on a talk spurt, in virtual time: a speaker silent for 2 s
//! sends ten loud 20 ms frames, each a tone of its own frequency; a G.711 listener
//! decodes what the core sends it. Printed per frame: the ticks from the tick its
//! packet arrived to the tick the listener's packet carrying it was produced, or
//! "lost". (Deterministic; a real deployment adds up to one tick of waiting for the
//! tick, and the network.)

mod support;
use support::thread_cpu_time;
use media::codec::{new_decoder, new_encoder, CodecKind};
use media::engine::{Command, CoreConfig, Input, MediaCore, Output, Socket};
use media::{Attachment, LegId, LegParams, RoomId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);

struct Sender {
    leg: LegId,
    from: SocketAddr,
    packet: Vec<u8>,
    seq: u16,
    ts: u32,
    /// RTP clock ticks per packet (960 for Opus).
    ts_step: u32,
}

fn setup(rooms: u64, per_room: u64, speaking: impl Fn(u64) -> bool) -> (MediaCore, Vec<Sender>) {
    let now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let mut enc = new_encoder(CodecKind::Pcmu);
    let mut senders = Vec::new();
    let mut id = 0u64;
    for r in 0..rooms {
        for i in 0..per_room {
            id += 1;
            let leg = LegId(id);
            let from: SocketAddr = SocketAddr::new([127, 0, 0, 1].into(), 10_000 + (id % 50_000) as u16);
            core.handle_input(now, Input::Command(Command::AddLeg { leg, local_rtp: from }));
            core.handle_input(
                now,
                Input::Command(Command::Configure(
                    leg,
                    LegParams {
                        remote: Some(from),
                        codec: CodecKind::Pcmu,
                        payload_type: 0,
                        telephone_event_pt: Some(101),
                        send: true,
                        recv: true,
                    },
                )),
            );
            core.handle_input(now, Input::Command(Command::Attach(leg, Attachment::Room(RoomId(r)))));
            let mut frame = [0i16; 320];
            if speaking(i) {
                let f = 300.0 + 100.0 * (i % 7) as f64;
                for (k, s) in frame.iter_mut().enumerate() {
                    *s = (6000.0 * (2.0 * std::f64::consts::PI * f * k as f64 / 16_000.0).sin()) as i16;
                }
            }
            let mut payload = [0u8; 1500];
            let n = enc.encode(&frame, &mut payload);
            let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            packet[8..12].copy_from_slice(&(id as u32).to_be_bytes());
            packet.extend_from_slice(&payload[..n]);
            senders.push(Sender { leg, from, packet, seq: 0, ts: 0, ts_step: 160 });
        }
    }
    (core, senders)
}

/// Run `ticks` ticks; returns (CPU time used, frames produced).
fn run(core: &mut MediaCore, senders: &mut [Sender], ticks: u32) -> (Duration, u64) {
    let mut now = Instant::now();
    let mut frames = 0u64;
    let start = thread_cpu_time();
    for _ in 0..ticks {
        now += TICK;
        for s in senders.iter_mut() {
            s.packet[2..4].copy_from_slice(&s.seq.to_be_bytes());
            s.packet[4..8].copy_from_slice(&s.ts.to_be_bytes());
            s.seq = s.seq.wrapping_add(1);
            s.ts = s.ts.wrapping_add(s.ts_step);
            core.handle_input(now, Input::Receive { leg: s.leg, socket: Socket::Rtp, from: s.from, data: &s.packet });
        }
        core.handle_input(now, Input::Tick);
        while let Some(o) = core.poll_output() {
            if let Output::Transmit(t) = o {
                if t.socket == Socket::Rtp {
                    frames += 1;
                }
            }
        }
    }
    (thread_cpu_time() - start, frames)
}

fn report(name: &str, legs: usize, (elapsed, frames): (Duration, u64)) {
    let per_sec = frames as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<40} legs {legs:>5}  frames mixed/s {per_sec:>12.0}  = {:>7.0} legs in real time per core  ({:.2} ms per 20 ms tick)",
        per_sec / 50.0,
        elapsed.as_secs_f64() * 1000.0 / (frames as f64 / legs as f64),
    );
}

fn report_calls(name: &str, legs: usize, (elapsed, frames): (Duration, u64)) {
    let per_sec = frames as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<40} legs {legs:>5}  frames/s {per_sec:>12.0}  = {:>7.0} two-party calls in real time per core  ({:.2} ms per 20 ms tick)",
        per_sec / 100.0,
        elapsed.as_secs_f64() * 1000.0 / (frames as f64 / legs as f64),
    );
}

/// Share of `freq` in a 16 kHz frame (≈1.0 for a pure tone); 0 for near silence.
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    media::dsp::goertzel::tone_share(samples, 16_000, freq, 1e6)
}

/// Talk-spurt delay through the core (see the module docs): per frame of the spurt,
/// the ticks from its arrival to its departure, `None` if it never left.
fn spurt_delay() -> Vec<Option<u32>> {
    const FRAMES: usize = 10;
    let freq = |i: usize| 500.0 + 250.0 * i as f64;
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    for id in [1u64, 2] {
        let leg = LegId(id);
        let from: SocketAddr = SocketAddr::new([127, 0, 0, 1].into(), 10_000 + id as u16);
        let params =
            LegParams { remote: Some(from), codec: CodecKind::Pcmu, payload_type: 0, telephone_event_pt: None, send: true, recv: true };
        core.handle_input(t0, Input::Command(Command::AddLeg { leg, local_rtp: from }));
        core.handle_input(t0, Input::Command(Command::Configure(leg, params)));
        core.handle_input(t0, Input::Command(Command::Attach(leg, Attachment::Room(RoomId(1)))));
    }
    let mut enc = new_encoder(CodecKind::Pcmu);
    let mut dec = new_decoder(CodecKind::Pcmu);
    let start = 100; // 2 s of silence first
    let mut sent_at = [0u32; FRAMES];
    let mut heard_at: [Option<u32>; FRAMES] = [None; FRAMES];
    let mut now = t0;
    for k in 0..start + 3 * FRAMES as u32 {
        now += TICK;
        let spurt = (start..start + FRAMES as u32).contains(&k).then(|| (k - start) as usize);
        let mut frame = [0i16; 320];
        if let Some(i) = spurt {
            sent_at[i] = k;
            let w = 2.0 * std::f64::consts::PI * freq(i) / 16_000.0;
            for (n, s) in frame.iter_mut().enumerate() {
                *s = (8000.0 * (w * n as f64).sin()) as i16;
            }
        }
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        packet[2..4].copy_from_slice(&(k as u16).to_be_bytes());
        packet[4..8].copy_from_slice(&(k * 160).to_be_bytes());
        let mut payload = [0u8; 1500];
        let n = enc.encode(&frame, &mut payload);
        packet.extend_from_slice(&payload[..n]);
        let from = SocketAddr::new([127, 0, 0, 1].into(), 10_001);
        core.handle_input(now, Input::Receive { leg: LegId(1), socket: Socket::Rtp, from, data: &packet });
        core.handle_input(now, Input::Tick);
        while let Some(o) = core.poll_output() {
            let Output::Transmit(t) = o else { continue };
            if t.leg != LegId(2) || t.socket != Socket::Rtp {
                continue;
            }
            let mut pcm = [0i16; 1920];
            let n = dec.decode(&t.data[12..], &mut pcm);
            for (i, heard) in heard_at.iter_mut().enumerate() {
                if heard.is_none() && tone_share(&pcm[..n], freq(i)) > 0.5 {
                    *heard = Some(k);
                }
            }
        }
    }
    sent_at.iter().zip(heard_at).map(|(&s, h)| h.map(|h| h - s)).collect()
}

/// Two-party calls: each a room of two, leg A in codec `a` talking (a tone), leg B in
/// codec `b` sending silence (one speaker at a time, as in a conversation). Same codec
/// on both sides: the relay fast path; different codecs: decode, mix, encode.
fn setup_calls(calls: u64, a: CodecKind, b: CodecKind) -> (MediaCore, Vec<Sender>) {
    let now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let mut senders = Vec::new();
    // One packet per codec and side, reused with new headers.
    let packet_of = |codec: CodecKind, talking: bool| {
        let mut enc = new_encoder(codec);
        let mut frame = [0i16; 320];
        let mut payload = [0u8; 1500];
        let mut n = 0;
        // A few frames so that Opus leaves its start-up state.
        for f in 0..5 {
            if talking {
                for (k, s) in frame.iter_mut().enumerate() {
                    let t = (f * 320 + k) as f64 / 16_000.0;
                    *s = (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
                }
            }
            n = enc.encode(&frame, &mut payload);
        }
        payload[..n].to_vec()
    };
    let mut id = 0u64;
    for call in 0..calls {
        for (codec, talking) in [(a, true), (b, false)] {
            id += 1;
            let leg = LegId(id);
            let from: SocketAddr = SocketAddr::new([127, 0, 0, 1].into(), 10_000 + (id % 50_000) as u16);
            let pt = codec.static_payload_type().unwrap_or(111);
            core.handle_input(now, Input::Command(Command::AddLeg { leg, local_rtp: from }));
            let params = LegParams { remote: Some(from), codec, payload_type: pt, telephone_event_pt: Some(101), send: true, recv: true };
            core.handle_input(now, Input::Command(Command::Configure(leg, params)));
            core.handle_input(now, Input::Command(Command::Attach(leg, Attachment::Room(RoomId(call)))));
            let mut packet = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            packet[8..12].copy_from_slice(&(id as u32).to_be_bytes());
            packet.extend_from_slice(&packet_of(codec, talking));
            senders.push(Sender { leg, from, packet, seq: 0, ts: 0, ts_step: codec.rtp_samples_per_frame() });
        }
    }
    (core, senders)
}

fn main() {
    let ticks = 250; // 5 s of audio
    let only = std::env::args().nth(1).unwrap_or_default();
    if only == "calls" || only.is_empty() {
        for (name, calls, a, b) in [
            ("5000 calls G.711<->G.711 (relay)", 5000, CodecKind::Pcmu, CodecKind::Pcmu),
            ("1000 calls G.711<->G.722 (transcoded)", 1000, CodecKind::G722, CodecKind::Pcmu),
            ("200 calls G.711<->Opus (transcoded)", 200, CodecKind::Opus, CodecKind::Pcmu),
        ] {
            let (mut core, mut senders) = setup_calls(calls, a, b);
            run(&mut core, &mut senders, 50);
            let r = run(&mut core, &mut senders, ticks);
            report_calls(name, senders.len(), r);
        }
        if only == "calls" {
            return;
        }
    }
    {
        let (mut core, mut senders) = setup(1, 3000, |i| i < 3);
        run(&mut core, &mut senders, 50); // warm-up: jitter buffers fill, talk detection settles
        let r = run(&mut core, &mut senders, ticks);
        report("1 room x 3000 legs, 3 speakers (G.711)", senders.len(), r);
    }
    {
        let (mut core, mut senders) = setup(1000, 3, |_| true);
        run(&mut core, &mut senders, 50);
        let r = run(&mut core, &mut senders, ticks);
        report("1000 rooms x 3 legs, all speaking (G.711)", senders.len(), r);
    }
    let delays: Vec<String> = spurt_delay()
        .iter()
        .map(|d| match d {
            Some(t) => format!("{} ms", t * 20),
            None => "lost".into(),
        })
        .collect();
    println!("talk spurt after silence, arrival to departure per frame (virtual time): {}", delays.join(", "));
}
