//! Prompts in the sans-IO media core, under virtual ticks: a prompt to a leg alone
//! (an IVR caller) is all it hears and ends with `PromptEnded`; a digit stops a
//! barge-in prompt at once; a prompt to one room member is mixed over the room for it
//! alone; a room prompt reaches everyone, relay fast path or not. And per-participant
//! gain, in and out.
//!
//! The prompt reader is a real thread: each test lets it read ahead (its queue holds
//! 500 ms) before the ticks start, so prompts up to that length never underrun.

use media::codec::g711::ulaw_decode;
use media::dsp::goertzel::tone_share;
use media::engine::{Command, CoreConfig, Input, MediaCore, Output, PromptTarget, Socket};
use media::player::{parse_tones, PromptReader};
use media::{Attachment, CodecKind, LegId, LegParams, MediaEvent, PromptEnd, PromptId, PromptSpec, RoomId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);

fn remote_of(leg: u64) -> SocketAddr {
    SocketAddr::new([127, 0, 0, 1].into(), 30_000 + 2 * leg as u16)
}

fn add(core: &mut MediaCore, now: Instant, leg: u64, attachment: Attachment) {
    let id = LegId(leg);
    let params =
        LegParams { remote: Some(remote_of(leg)), codec: CodecKind::Pcmu, payload_type: 0, telephone_event_pt: Some(101), send: true, recv: true };
    core.handle_input(now, Input::Command(Command::AddLeg { leg: id, local_rtp: "127.0.0.1:1".parse().unwrap() }));
    core.handle_input(now, Input::Command(Command::Configure(id, params)));
    core.handle_input(now, Input::Command(Command::Attach(id, attachment)));
}

/// A PCMU packet of `tone` Hz (0: silence) at a speaking level.
fn packet(leg: u64, seq: u16, tone: f64) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, leg as u8];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    for i in 0..160 {
        let t = (seq as usize * 160 + i) as f64 / 8000.0;
        let s = (8000.0 * (2.0 * std::f64::consts::PI * tone * t).sin()) as i16;
        p.push(media::codec::g711::ulaw_encode(s));
    }
    p
}

/// An RFC 4733 end packet for `digit` (0-9).
fn dtmf_end(leg: u64, seq: u16, digit: u8) -> Vec<u8> {
    let mut p = vec![0x80, 101, 0, 0, 0, 0, 0, 0, 0, 0, 0, leg as u8];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    p.extend_from_slice(&[digit, 0x80 | 10, 0x03, 0x20]);
    p
}

#[derive(Default)]
struct Heard {
    /// Decoded audio each leg was sent, per leg (8 kHz).
    audio: std::collections::HashMap<u64, Vec<i16>>,
    events: Vec<MediaEvent>,
}

fn drain(core: &mut MediaCore, heard: &mut Heard) {
    while let Some(out) = core.poll_output() {
        match out {
            Output::Event(e) => heard.events.push(e),
            Output::Transmit(t) if t.socket == Socket::Rtp && t.data[1] & 0x7f == 0 => {
                let leg = (t.dest.port() as u64 - 30_000) / 2;
                heard.audio.entry(leg).or_default().extend(t.data[12..].iter().map(|&b| ulaw_decode(b)));
            }
            Output::Transmit(_) => {}
        }
    }
}

fn ended(heard: &Heard) -> Vec<(PromptTarget, PromptId, PromptEnd)> {
    heard
        .events
        .iter()
        .filter_map(|e| match *e {
            MediaEvent::PromptEnded { target, prompt, end } => Some((target, prompt, end)),
            _ => None,
        })
        .collect()
}

fn share(samples: &[i16], freq: f64) -> f64 {
    tone_share(samples, 8_000, freq, 1_000.0)
}

fn tones(s: &str) -> PromptSpec {
    PromptSpec::once(parse_tones(s).unwrap())
}

/// Opens a prompt and lets the reader fill its queue.
fn open(reader: &PromptReader, id: u64, spec: PromptSpec) -> Box<media::player::Playing> {
    let p = reader.open(PromptId(id), spec);
    std::thread::sleep(Duration::from_millis(150));
    Box::new(p)
}

#[test]
fn a_prompt_to_a_lone_leg_is_what_it_hears_and_then_ends() {
    let reader = PromptReader::start().unwrap();
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    add(&mut core, now, 1, Attachment::None);
    core.handle_input(now, Input::Command(Command::Play(PromptTarget::Leg(LegId(1)), open(&reader, 7, tones("1000/300")))));
    let mut heard = Heard::default();
    for _ in 0..30 {
        now += TICK;
        core.handle_input(now, Input::Tick);
        drain(&mut core, &mut heard);
    }
    let audio = heard.audio.remove(&1).unwrap_or_default();
    // 300 ms of tone is 15 frames; nothing after the end.
    assert_eq!(audio.len(), 15 * 160, "frames sent to the leg");
    assert!(share(&audio[160..14 * 160], 1_000.0) > 0.9, "the tone: {}", share(&audio, 1_000.0));
    assert_eq!(ended(&heard), vec![(PromptTarget::Leg(LegId(1)), PromptId(7), PromptEnd::Finished)]);
}

#[test]
fn a_digit_stops_a_barge_in_prompt_at_once() {
    let reader = PromptReader::start().unwrap();
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    add(&mut core, now, 1, Attachment::None);
    let mut spec = tones("1000/400");
    spec.barge_in = true;
    core.handle_input(now, Input::Command(Command::Play(PromptTarget::Leg(LegId(1)), open(&reader, 8, spec))));
    let mut heard = Heard::default();
    for k in 0..30u16 {
        now += TICK;
        if k == 5 {
            let p = dtmf_end(1, 100, 5);
            core.handle_input(now, Input::Receive { leg: LegId(1), socket: Socket::Rtp, from: remote_of(1), data: &p });
        }
        core.handle_input(now, Input::Tick);
        drain(&mut core, &mut heard);
    }
    assert!(heard.events.contains(&MediaEvent::Dtmf { leg: LegId(1), digit: '5', duration_ms: 100 }));
    assert_eq!(ended(&heard), vec![(PromptTarget::Leg(LegId(1)), PromptId(8), PromptEnd::Interrupted('5'))]);
    // Five ticks played before the digit; none after.
    assert_eq!(heard.audio.get(&1).map_or(0, Vec::len), 5 * 160);

    // Without barge-in the digit is reported and the prompt plays on.
    add(&mut core, now, 2, Attachment::None);
    core.handle_input(now, Input::Command(Command::Play(PromptTarget::Leg(LegId(2)), open(&reader, 9, tones("1000/200")))));
    let mut heard = Heard::default();
    for k in 0..15u16 {
        now += TICK;
        if k == 2 {
            let p = dtmf_end(2, 100, 3);
            core.handle_input(now, Input::Receive { leg: LegId(2), socket: Socket::Rtp, from: remote_of(2), data: &p });
        }
        core.handle_input(now, Input::Tick);
        drain(&mut core, &mut heard);
    }
    assert_eq!(heard.audio.get(&2).map_or(0, Vec::len), 10 * 160);
    assert_eq!(ended(&heard), vec![(PromptTarget::Leg(LegId(2)), PromptId(9), PromptEnd::Finished)]);
}

#[test]
fn a_member_prompt_is_for_that_listener_and_a_room_prompt_for_everyone() {
    let reader = PromptReader::start().unwrap();
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let room = RoomId(1);
    add(&mut core, now, 1, Attachment::Room(room));
    add(&mut core, now, 2, Attachment::Room(room));
    // Leg 2 talks at 600 Hz all along: leg 1 hears it (on the relay path at first).
    let mut seq = 0u16;
    let mut run = |core: &mut MediaCore, now: &mut Instant, ticks: usize| {
        let mut heard = Heard::default();
        for _ in 0..ticks {
            *now += TICK;
            for (leg, tone) in [(1u64, 0.0), (2, 600.0)] {
                let p = packet(leg, seq, tone);
                core.handle_input(*now, Input::Receive { leg: LegId(leg), socket: Socket::Rtp, from: remote_of(leg), data: &p });
            }
            seq += 1;
            core.handle_input(*now, Input::Tick);
            drain(core, &mut heard);
        }
        heard
    };
    run(&mut core, &mut now, 50);

    // A prompt to leg 1 alone: it hears the tone over leg 2's voice; leg 2 does not.
    core.handle_input(now, Input::Command(Command::Play(PromptTarget::Leg(LegId(1)), open(&reader, 10, tones("1400/400")))));
    let heard = run(&mut core, &mut now, 30);
    let one = &heard.audio[&1][2 * 160..18 * 160];
    let two = &heard.audio[&2][2 * 160..18 * 160];
    assert!(share(one, 1_400.0) > 0.2 && share(one, 600.0) > 0.2, "leg 1: prompt {} voice {}", share(one, 1_400.0), share(one, 600.0));
    assert!(share(two, 1_400.0) < 0.01, "leg 2 heard leg 1's prompt: {}", share(two, 1_400.0));
    assert_eq!(ended(&heard), vec![(PromptTarget::Leg(LegId(1)), PromptId(10), PromptEnd::Finished)]);
    // After it: leg 1 hears leg 2 alone again.
    let after = &heard.audio[&1][25 * 160..];
    assert!(share(after, 600.0) > 0.9 && share(after, 1_400.0) < 0.01);

    // A room prompt: both hear it; the end is reported.
    core.handle_input(now, Input::Command(Command::Play(PromptTarget::Room(room), open(&reader, 11, tones("1400/400")))));
    let heard = run(&mut core, &mut now, 30);
    for leg in [1u64, 2] {
        let a = &heard.audio[&leg][2 * 160..18 * 160];
        assert!(share(a, 1_400.0) > 0.2, "leg {leg} did not hear the room prompt: {}", share(a, 1_400.0));
    }
    assert_eq!(ended(&heard), vec![(PromptTarget::Room(room), PromptId(11), PromptEnd::Finished)]);

    // Stopping: a repeating room prompt ends `Stopped` on command.
    let mut spec = tones("1400/100");
    spec.repeat = true;
    core.handle_input(now, Input::Command(Command::Play(PromptTarget::Room(room), open(&reader, 12, spec))));
    run(&mut core, &mut now, 40);
    core.handle_input(now, Input::Command(Command::StopPrompt(PromptTarget::Room(room), Some(PromptId(12)))));
    let heard = run(&mut core, &mut now, 10);
    assert_eq!(ended(&heard), vec![(PromptTarget::Room(room), PromptId(12), PromptEnd::Stopped)]);
    let a = &heard.audio[&2];
    assert!(share(a, 1_400.0) < 0.01, "the room prompt went on after stop");
}

/// Per-participant gain: what a leg says is scaled for everyone (`in`), what it hears
/// is scaled for it alone (`out`); either takes the pair off the relay fast path.
#[test]
fn gain_in_and_out_scale_what_a_participant_says_and_hears() {
    let mut now = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let room = RoomId(1);
    add(&mut core, now, 1, Attachment::Room(room));
    add(&mut core, now, 2, Attachment::Room(room));
    let mut seq = 0u16;
    // Leg 2 says 600 Hz at about -12 dBFS; leg 1 is silent. Returns leg 1's level.
    let mut level_at_1 = |core: &mut MediaCore, now: &mut Instant| {
        let mut heard = Heard::default();
        for _ in 0..60 {
            *now += TICK;
            for (leg, tone) in [(1u64, 0.0), (2, 600.0)] {
                let p = packet(leg, seq, tone);
                core.handle_input(*now, Input::Receive { leg: LegId(leg), socket: Socket::Rtp, from: remote_of(leg), data: &p });
            }
            seq += 1;
            core.handle_input(*now, Input::Tick);
            drain(core, &mut heard);
        }
        let a = &heard.audio[&1][20 * 160..];
        assert!(share(a, 600.0) > 0.9, "leg 1 hears leg 2's tone");
        (a.iter().map(|&s| s as f64 * s as f64).sum::<f64>() / a.len() as f64).sqrt()
    };
    let plain = level_at_1(&mut core, &mut now);
    core.handle_input(now, Input::Command(Command::SetGain { leg: LegId(2), in_db: 6.0, out_db: 0.0 }));
    let louder = level_at_1(&mut core, &mut now);
    core.handle_input(now, Input::Command(Command::SetGain { leg: LegId(2), in_db: 0.0, out_db: 0.0 }));
    core.handle_input(now, Input::Command(Command::SetGain { leg: LegId(1), in_db: 0.0, out_db: -6.0 }));
    let softer = level_at_1(&mut core, &mut now);
    let db = |x: f64| 20.0 * (x / plain).log10();
    assert!((db(louder) - 6.0).abs() < 0.5, "+6 dB in: {:.2} dB", db(louder));
    assert!((db(softer) + 6.0).abs() < 0.5, "-6 dB out: {:.2} dB", db(softer));
    assert_eq!(media::engine::db_to_gain(0.0), 1.0);
    assert!((media::engine::db_to_gain(100.0) - media::engine::db_to_gain(media::engine::MAX_GAIN_DB)).abs() < 1e-6);
}
