//! Live audio taps in the sans-IO media core, under virtual ticks: a room's stream
//! carries its mix, and its playback reaches every participant but not the stream
//! itself; a leg's stream carries what it says or what it hears; a consumer that
//! never reads costs the call nothing (frames are overwritten and counted).

use media::codec::g711::{ulaw_decode, ulaw_encode};
use media::dsp::goertzel::tone_share;
use media::engine::{Command, CoreConfig, Input, MediaCore, Output, Socket};
use media::live::{Direction, LiveAudio};
use media::{Attachment, CodecKind, LegId, LegParams, RoomId, FRAME_SAMPLES};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);
const ROOM: RoomId = RoomId(9);

fn remote_of(leg: u64) -> SocketAddr {
    SocketAddr::new([127, 0, 0, 1].into(), 30_000 + 2 * leg as u16)
}

fn add(core: &mut MediaCore, now: Instant, leg: u64) {
    let id = LegId(leg);
    let params = LegParams { remote: Some(remote_of(leg)), codec: CodecKind::Pcmu, payload_type: 0, telephone_event_pt: None, send: true, recv: true };
    core.handle_input(now, Input::Command(Command::AddLeg { leg: id, local_rtp: "127.0.0.1:1".parse().unwrap() }));
    core.handle_input(now, Input::Command(Command::Configure(id, params)));
    core.handle_input(now, Input::Command(Command::Attach(id, Attachment::Room(ROOM))));
}

/// A PCMU packet of `tone` Hz (0: silence) at a speaking level.
fn packet(leg: u64, seq: u16, tone: f64) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, leg as u8];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    for i in 0..160 {
        let t = (seq as usize * 160 + i) as f64 / 8000.0;
        p.push(ulaw_encode((8000.0 * (2.0 * std::f64::consts::PI * tone * t).sin()) as i16));
    }
    p
}

/// A 16 kHz frame of `tone` Hz, the `n`th of a continuous tone.
fn tone_frame(n: usize, tone: f64) -> [i16; FRAME_SAMPLES] {
    let mut f = [0; FRAME_SAMPLES];
    for (i, s) in f.iter_mut().enumerate() {
        let t = (n * FRAME_SAMPLES + i) as f64 / 16_000.0;
        *s = (8000.0 * (2.0 * std::f64::consts::PI * tone * t).sin()) as i16;
    }
    f
}

/// Runs `ticks` ticks with leg 1 sending `tone` and leg 2 silence; `each` runs before
/// every tick (to feed playback, take frames). Returns what each leg was sent (8 kHz).
fn run(core: &mut MediaCore, now: &mut Instant, seq: &mut u16, ticks: usize, tone: f64, mut each: impl FnMut(usize)) -> HashMap<u64, Vec<i16>> {
    let mut heard: HashMap<u64, Vec<i16>> = HashMap::new();
    for n in 0..ticks {
        each(n);
        for (leg, t) in [(1, tone), (2, 0.0)] {
            let p = packet(leg, *seq, t);
            core.handle_input(*now, Input::Receive { leg: LegId(leg), socket: Socket::Rtp, from: remote_of(leg), data: &p });
        }
        *seq += 1;
        *now += TICK;
        core.handle_input(*now, Input::Tick);
        while let Some(out) = core.poll_output() {
            if let Output::Transmit(t) = out {
                if t.socket == Socket::Rtp && t.data[1] & 0x7f == 0 {
                    let leg = (t.dest.port() as u64 - 30_000) / 2;
                    heard.entry(leg).or_default().extend(t.data[12..].iter().map(|&b| ulaw_decode(b)));
                }
            }
        }
    }
    heard
}

fn share16(s: &[i16], f: f64) -> f64 {
    tone_share(s, 16_000, f, 1_000.0)
}

fn share8(s: &[i16], f: f64) -> f64 {
    tone_share(s, 8_000, f, 1_000.0)
}

fn room_of_two() -> (MediaCore, Instant, u16) {
    let now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    add(&mut core, now, 1);
    add(&mut core, now, 2);
    (core, now, 0)
}

#[test]
fn a_room_stream_carries_the_mix_and_its_playback_reaches_everyone_but_itself() {
    let (mut core, mut now, mut seq) = room_of_two();
    let live = LiveAudio::new(1, Direction::Both, true);
    core.handle_input(now, Input::Command(Command::LiveRoom(ROOM, Some(live.clone()))));
    let mut streamed = Vec::new();
    let heard = run(&mut core, &mut now, &mut seq, 150, 1000.0, |n| {
        // The receiver sends 700 Hz back in step with what it gets (two frames ahead).
        let ahead = if n == 0 { 3 } else { 1 };
        for k in 0..ahead {
            assert!(live.queue_playback(tone_frame(n + k, 700.0)));
        }
        while let Some(f) = live.take() {
            streamed.extend_from_slice(&f);
        }
    });
    assert!(streamed.len() >= 148 * FRAME_SAMPLES, "a frame a tick: {}", streamed.len() / FRAME_SAMPLES);
    let tail = &streamed[20 * FRAME_SAMPLES..];
    assert!(share16(tail, 1000.0) > 0.9, "the speaker's tone is streamed: {}", share16(tail, 1000.0));
    assert!(share16(tail, 700.0) < 0.05, "not the receiver's own playback: {}", share16(tail, 700.0));
    // Shares of power: leg 1 hears the playback alone, leg 2 it and leg 1 at one level.
    let (one, two) = (&heard[&1][20 * 160..], &heard[&2][20 * 160..]);
    assert!(share8(one, 700.0) > 0.9, "leg 1 hears the playback: {}", share8(one, 700.0));
    assert!(share8(two, 700.0) > 0.4, "leg 2 hears the playback: {}", share8(two, 700.0));
    assert!(share8(two, 1000.0) > 0.4, "and still hears leg 1: {}", share8(two, 1000.0));
    assert_eq!(live.counters().dropped_out, 0);

    // Stopped: nothing more is streamed, the room plays on.
    core.handle_input(now, Input::Command(Command::LiveRoom(ROOM, None)));
    while live.take().is_some() {}
    let heard = run(&mut core, &mut now, &mut seq, 20, 1000.0, |_| {});
    assert!(live.take().is_none());
    assert!(share8(&heard[&2][5 * 160..], 1000.0) > 0.9);
}

#[test]
fn a_leg_stream_carries_what_it_says_or_what_it_hears() {
    let (mut core, mut now, mut seq) = room_of_two();
    let says = LiveAudio::new(1, Direction::Says, false);
    let hears = LiveAudio::new(2, Direction::Hears, true);
    core.handle_input(now, Input::Command(Command::LiveLeg(LegId(1), Some(says.clone()))));
    core.handle_input(now, Input::Command(Command::LiveLeg(LegId(2), Some(hears.clone()))));
    let (mut said, mut heard_by_2) = (Vec::new(), Vec::new());
    let heard = run(&mut core, &mut now, &mut seq, 100, 1000.0, |n| {
        let ahead = if n == 0 { 3 } else { 1 };
        for k in 0..ahead {
            hears.queue_playback(tone_frame(n + k, 700.0));
        }
        while let Some(f) = says.take() {
            said.extend_from_slice(&f);
        }
        while let Some(f) = hears.take() {
            heard_by_2.extend_from_slice(&f);
        }
    });
    let from = 10 * FRAME_SAMPLES;
    assert!(share16(&said[from..], 1000.0) > 0.9, "leg 1 says 1000 Hz: {}", share16(&said[from..], 1000.0));
    assert!(share16(&heard_by_2[from..], 1000.0) > 0.9, "leg 2 hears it: {}", share16(&heard_by_2[from..], 1000.0));
    // Leg 2's playback is for leg 2's ears only.
    assert!(share8(&heard[&2][20 * 160..], 700.0) > 0.4, "leg 2 hears its playback over leg 1");
    assert!(share8(&heard[&1][20 * 160..], 700.0) < 0.05, "leg 1 does not");
}

#[test]
fn a_consumer_that_never_reads_costs_the_call_nothing() {
    let (mut core, mut now, mut seq) = room_of_two();
    let live = LiveAudio::new(1, Direction::Both, false);
    core.handle_input(now, Input::Command(Command::LiveRoom(ROOM, Some(live.clone()))));
    let heard = run(&mut core, &mut now, &mut seq, 200, 1000.0, |_| {});
    assert_eq!(live.counters().dropped_out, 200 - media::live::QUEUE_FRAMES as u64);
    assert_eq!(heard[&2].len(), 200 * 160, "leg 2 got every frame");
    assert!(share8(&heard[&2][10 * 160..], 1000.0) > 0.9);
}
