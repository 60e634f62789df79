//! The sans-IO media core under virtual time: no sockets, no threads. Packets and
//! 20 ms ticks go in with a fake `now`; packets and events come out.

use media::codec::{new_decoder, new_encoder, CodecKind};
use media::engine::{Command, CoreConfig, Input, MediaCore, Output, Socket};
use media::mixer::Publication;
use media::{Attachment, LegId, LegParams, MediaEvent, RoomId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);

fn params(remote: SocketAddr) -> LegParams {
    LegParams {
        remote: Some(remote),
        codec: CodecKind::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        send: true,
        recv: true,
    }
}

fn remote_of(leg: u64) -> SocketAddr {
    format!("127.0.0.1:{}", 40_000 + 2 * leg).parse().unwrap()
}

fn add(core: &mut MediaCore, now: Instant, leg: u64, room: RoomId) {
    let id = LegId(leg);
    core.handle_input(now, Input::Command(Command::AddLeg { leg: id, local_rtp: "127.0.0.1:1".parse().unwrap() }));
    core.handle_input(now, Input::Command(Command::Configure(id, params(remote_of(leg)))));
    core.handle_input(now, Input::Command(Command::Attach(id, Attachment::Room(room))));
}

/// A phone sending a 16 kHz tone as PCMU.
struct Talker {
    leg: u64,
    freq: Option<f64>,
    enc: Box<dyn media::codec::AudioEncoder>,
    phase: f64,
    seq: u16,
    ts: u32,
}

impl Talker {
    fn new(leg: u64, freq: Option<f64>) -> Talker {
        Talker { leg, freq, enc: new_encoder(CodecKind::Pcmu), phase: 0.0, seq: 1, ts: 0 }
    }
    fn packet(&mut self) -> Vec<u8> {
        let mut frame = [0i16; 320];
        if let Some(f) = self.freq {
            for s in frame.iter_mut() {
                *s = (8000.0 * self.phase.sin()) as i16;
                self.phase += 2.0 * std::f64::consts::PI * f / 16_000.0;
            }
        }
        let mut payload = [0u8; 1500];
        let n = self.enc.encode(&frame, &mut payload);
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, self.leg as u8];
        p[2..4].copy_from_slice(&self.seq.to_be_bytes());
        p[4..8].copy_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&payload[..n]);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        p
    }
}

/// (leg, socket, payload type, marker, seq, ts, payload)
type Sent = (LegId, Socket, u8, bool, u16, u32, Vec<u8>);

#[derive(Default)]
struct Collected {
    /// (leg, socket, payload type, marker, seq, ts, payload)
    packets: Vec<Sent>,
    events: Vec<MediaEvent>,
}

fn drain(core: &mut MediaCore, out: &mut Collected) {
    while let Some(o) = core.poll_output() {
        match o {
            Output::Event(e) => out.events.push(e),
            Output::Transmit(t) => {
                let d = t.data;
                let (pt, marker) = (d[1] & 0x7f, d[1] & 0x80 != 0);
                let seq = u16::from_be_bytes([d[2], d[3]]);
                let ts = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                out.packets.push((t.leg, t.socket, pt, marker, seq, ts, d[12.min(d.len())..].to_vec()));
            }
        }
    }
}

/// Share of `freq` in 16 kHz audio (≈1.0 for a pure tone).
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    media::dsp::goertzel::tone_share(samples, 16_000, freq, 0.0)
}

fn decode_audio(out: &Collected, leg: LegId, skip: usize) -> Vec<i16> {
    let mut dec = new_decoder(CodecKind::Pcmu);
    let mut all = Vec::new();
    for p in out.packets.iter().filter(|p| p.0 == leg && p.1 == Socket::Rtp && p.2 == 0).skip(skip) {
        let mut pcm = [0i16; 1920];
        let n = dec.decode(&p.6, &mut pcm);
        all.extend_from_slice(&pcm[..n]);
    }
    all
}

const FREQS: [f64; 3] = [500.0, 1000.0, 2000.0];

/// Legs 1..=3 in one room split over two cores (1 and 3 on core A, 2 on core B),
/// driven for `ticks` ticks through the two-phase tick with both publications.
#[test]
fn room_split_over_two_cores_mixes_everyone_but_self() {
    let room = RoomId(1);
    let t0 = Instant::now();
    let mut a = MediaCore::new(CoreConfig::default());
    let mut b = MediaCore::new(CoreConfig::default());
    add(&mut a, t0, 1, room);
    add(&mut b, t0, 2, room);
    add(&mut a, t0, 3, room);
    let mut talkers: Vec<Talker> = (1..=3).map(|l| Talker::new(l, Some(FREQS[l as usize - 1]))).collect();
    let (mut pa, mut pb) = (Publication::default(), Publication::default());
    let (mut out_a, mut out_b) = (Collected::default(), Collected::default());
    let mut now = t0;
    for _ in 0..100 {
        now += TICK;
        for t in talkers.iter_mut() {
            let pkt = t.packet();
            let core = if t.leg == 2 { &mut b } else { &mut a };
            core.handle_input(now, Input::Receive { leg: LegId(t.leg), socket: Socket::Rtp, from: remote_of(t.leg), data: &pkt });
        }
        a.tick_publish(now, &mut pa);
        b.tick_publish(now, &mut pb);
        a.tick_mix(now, &[&pa, &pb]);
        b.tick_mix(now, &[&pa, &pb]);
        drain(&mut a, &mut out_a);
        drain(&mut b, &mut out_b);
    }
    for (leg, out) in [(1u64, &out_a), (2, &out_b), (3, &out_a)] {
        let audio = decode_audio(out, LegId(leg), 50);
        assert!(audio.len() >= 40 * 320, "steady stream to leg {leg}");
        for (i, f) in FREQS.iter().enumerate() {
            let share = tone_share(&audio, *f);
            if i as u64 + 1 == leg {
                assert!(share < 0.01, "leg {leg} must not hear itself ({f} Hz: {share})");
            } else {
                assert!(share > 0.2, "leg {leg} must hear {f} Hz ({share})");
            }
        }
    }
    // Each leg got one FirstPacket and one Talking(true).
    let events: Vec<_> = out_a.events.iter().chain(out_b.events.iter()).collect();
    for leg in 1..=3 {
        assert!(events.contains(&&MediaEvent::Talking { leg: LegId(leg), talking: true }));
        assert!(events.iter().any(|e| matches!(e, MediaEvent::FirstPacket { leg: l, .. } if *l == LegId(leg))));
    }
}

/// One speaker and many silent listeners: the listeners' payloads are byte-identical
/// (one shared encode), the speaker's is its own (it does not hear itself).
#[test]
fn silent_listeners_share_one_encode() {
    let room = RoomId(2);
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    for leg in 1..=10 {
        add(&mut core, t0, leg, room);
    }
    let mut talkers: Vec<Talker> =
        (1..=10).map(|l| Talker::new(l, if l == 1 { Some(1000.0) } else { None })).collect();
    let mut out = Collected::default();
    let mut now = t0;
    for _ in 0..60 {
        now += TICK;
        for t in talkers.iter_mut() {
            let pkt = t.packet();
            core.handle_input(now, Input::Receive { leg: LegId(t.leg), socket: Socket::Rtp, from: remote_of(t.leg), data: &pkt });
        }
        core.handle_input(now, Input::Tick);
        drain(&mut core, &mut out);
    }
    let last = |leg: u64| out.packets.iter().rev().find(|p| p.0 == LegId(leg) && p.2 == 0).unwrap().6.clone();
    let shared = last(2);
    assert!(shared.iter().any(|&b| b != 0xff && b != 0x7f), "listeners hear the speaker");
    for leg in 3..=10 {
        assert_eq!(last(leg), shared, "listener {leg} gets the shared encode");
    }
    assert_ne!(last(1), shared, "the speaker gets its own mix");
    let speaker_audio = decode_audio(&out, LegId(1), 30);
    assert!(tone_share(&speaker_audio, 1000.0) < 0.01);
}

/// The same in an Opus room (issue 12: "listeners with the same mix share one
/// encoder"): the silent listeners' Opus payloads are byte-identical, so one encoder
/// made them, and they decode to the speaker's tone.
#[test]
fn silent_opus_listeners_share_one_encode() {
    if !CodecKind::Opus.available() {
        eprintln!("built without Opus: nothing to check");
        return;
    }
    let room = RoomId(4);
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    for leg in 1..=6 {
        let id = LegId(leg);
        core.handle_input(t0, Input::Command(Command::AddLeg { leg: id, local_rtp: "127.0.0.1:1".parse().unwrap() }));
        let p = LegParams { codec: CodecKind::Opus, payload_type: 111, ..params(remote_of(leg)) };
        core.handle_input(t0, Input::Command(Command::Configure(id, p)));
        core.handle_input(t0, Input::Command(Command::Attach(id, Attachment::Room(room))));
    }
    let mut talkers: Vec<Talker> = (1..=6)
        .map(|l| Talker { enc: new_encoder(CodecKind::Opus), ..Talker::new(l, if l == 1 { Some(1000.0) } else { None }) })
        .collect();
    let mut out = Collected::default();
    let mut now = t0;
    for _ in 0..60 {
        now += TICK;
        for t in talkers.iter_mut() {
            let mut pkt = t.packet();
            pkt[1] = 111;
            t.ts = t.ts.wrapping_add(960 - 160); // 48 kHz RTP clock
            core.handle_input(now, Input::Receive { leg: LegId(t.leg), socket: Socket::Rtp, from: remote_of(t.leg), data: &pkt });
        }
        core.handle_input(now, Input::Tick);
        drain(&mut core, &mut out);
    }
    let payloads = |leg: u64| -> Vec<Vec<u8>> {
        out.packets.iter().filter(|p| p.0 == LegId(leg) && p.1 == Socket::Rtp && p.2 == 111).map(|p| p.6.clone()).collect()
    };
    let shared = payloads(2);
    assert!(shared.len() >= 50, "the listener got Opus: {}", shared.len());
    for leg in 3..=6 {
        assert_eq!(payloads(leg)[30..], shared[30..], "listener {leg} gets the shared encode");
    }
    assert_ne!(payloads(1)[30..], shared[30..], "the speaker gets its own mix");
    let mut dec = new_decoder(CodecKind::Opus);
    let mut heard = Vec::new();
    for p in &shared[30..] {
        let mut pcm = [0i16; 1920];
        let n = dec.decode(p, &mut pcm);
        heard.extend_from_slice(&pcm[..n]);
    }
    assert!(tone_share(&heard, 1000.0) > 0.5, "listeners hear the speaker's tone: {}", tone_share(&heard, 1000.0));
}

/// Timestamps advance with the clock while on hold; the first packet after it has
/// the marker bit; sequence numbers stay continuous.
#[test]
fn rtp_clock_runs_through_hold() {
    let room = RoomId(3);
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    add(&mut core, t0, 1, room);
    let mut out = Collected::default();
    let mut now = t0;
    let tick = |core: &mut MediaCore, out: &mut Collected, now: &mut Instant, n: usize| {
        for _ in 0..n {
            *now += TICK;
            core.handle_input(*now, Input::Tick);
            drain(core, out);
        }
    };
    tick(&mut core, &mut out, &mut now, 5);
    let mut held = params(remote_of(1));
    held.send = false;
    core.handle_input(now, Input::Command(Command::Configure(LegId(1), held)));
    tick(&mut core, &mut out, &mut now, 10);
    core.handle_input(now, Input::Command(Command::Configure(LegId(1), params(remote_of(1)))));
    tick(&mut core, &mut out, &mut now, 5);
    let rtp: Vec<_> = out.packets.iter().filter(|p| p.1 == Socket::Rtp).collect();
    assert_eq!(rtp.len(), 10, "5 before and 5 after hold");
    assert!(rtp[0].3, "marker on the first packet");
    assert!(!rtp[1].3);
    assert!(rtp[5].3, "marker after hold");
    assert_eq!(rtp[5].4, rtp[4].4.wrapping_add(1), "sequence continuous");
    assert_eq!(rtp[5].5, rtp[4].5.wrapping_add(11 * 160), "timestamp advanced through hold");
}

/// No RTP for the configured time: one RtpTimeout; RTCP reports go out on the RTCP
/// port, SR while sending.
#[test]
fn rtp_timeout_and_rtcp_reports() {
    let room = RoomId(4);
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig { rtp_timeout: Duration::from_secs(3), ..CoreConfig::default() });
    add(&mut core, t0, 1, room);
    let mut out = Collected::default();
    let mut now = t0;
    for _ in 0..(10_000 / 20) {
        now += TICK;
        core.handle_input(now, Input::Tick);
        drain(&mut core, &mut out);
    }
    let timeouts = out.events.iter().filter(|e| matches!(e, MediaEvent::RtpTimeout { .. })).count();
    assert_eq!(timeouts, 1);
    let rtcp: Vec<_> = out.packets.iter().filter(|p| p.1 == Socket::Rtcp).collect();
    assert!((1..=3).contains(&rtcp.len()), "a report every ~5 s, got {}", rtcp.len());
    assert_eq!(rtcp[0].2 | 0x80, 200, "sender report (PT 200) while sending");
}

/// Talking events with hysteresis: start after ~40 ms of speech, stop ~500 ms after
/// the speech ends, none for a short burst of silence in between.
#[test]
fn talking_events_with_hysteresis() {
    let room = RoomId(5);
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    add(&mut core, t0, 1, room);
    let mut talker = Talker::new(1, Some(700.0));
    let mut out = Collected::default();
    let mut now = t0;
    let mut log = Vec::new();
    for i in 0..150 {
        now += TICK;
        // Speech for 1 s with a 100 ms gap in the middle, then silence.
        talker.freq = if i < 50 && !(20..25).contains(&i) { Some(700.0) } else { None };
        let pkt = talker.packet();
        core.handle_input(now, Input::Receive { leg: LegId(1), socket: Socket::Rtp, from: remote_of(1), data: &pkt });
        core.handle_input(now, Input::Tick);
        drain(&mut core, &mut out);
        for e in out.events.drain(..) {
            if let MediaEvent::Talking { talking, .. } = e {
                log.push((i, talking));
            }
        }
    }
    assert_eq!(log.len(), 2, "one start, one stop: {log:?}");
    assert!(log[0].1 && !log[1].1);
    let stop_after_speech = (log[1].0 - 50) * 20;
    assert!((400..=700).contains(&stop_after_speech), "release ~500 ms (+jitter delay), got {stop_after_speech}");
}
