//! RTP timeout in the sans-IO media core, under virtual time: a leg whose remote stops
//! sending is reported once ([`MediaEvent::RtpTimeout`], on which the engine hangs the
//! call up) when `rtp_timeout` has passed since its last packet, not before, and again
//! only after packets resumed and stopped anew; legs that keep sending never are. Also:
//! a released leg reports its counters ([`MediaEvent::Released`]).

use media::engine::{Command, CoreConfig, Input, MediaCore, Output, Socket};
use media::{Attachment, CodecKind, LegId, LegParams, MediaEvent, RoomId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(5);
/// Housekeeping looks at every leg once a second (1/50 of them per tick).
const SWEEP: Duration = Duration::from_secs(1);

fn remote_of(leg: u64) -> SocketAddr {
    SocketAddr::new([127, 0, 0, 1].into(), 20_000 + 2 * leg as u16)
}

fn add(core: &mut MediaCore, now: Instant, leg: u64, attachment: Attachment) {
    let id = LegId(leg);
    let params =
        LegParams { remote: Some(remote_of(leg)), codec: CodecKind::Pcmu, payload_type: 0, telephone_event_pt: None, send: true, recv: true };
    core.handle_input(now, Input::Command(Command::AddLeg { leg: id, local_rtp: "127.0.0.1:1".parse().unwrap() }));
    core.handle_input(now, Input::Command(Command::Configure(id, params)));
    core.handle_input(now, Input::Command(Command::Attach(id, attachment)));
}

fn packet(leg: u64, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, leg as u8];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// Legs 1 (in a room) and 2 (echo) go quiet for 8 s twice, with 2 s of packets
/// between; legs 3 to 103, in the room, send all along (so housekeeping's sweep has
/// more than one leg a tick to look at).
#[test]
fn a_leg_that_stops_sending_is_reported_once_after_rtp_timeout() {
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig { rtp_timeout: TIMEOUT, ..CoreConfig::default() });
    let room = RoomId(1);
    add(&mut core, t0, 1, Attachment::Room(room));
    add(&mut core, t0, 2, Attachment::Echo);
    for leg in 3..=103 {
        add(&mut core, t0, leg, Attachment::Room(room));
    }
    // The quiet spells of legs 1 and 2, in ticks: [100, 500) and [600, 1000).
    let quiet = |k: u32| (100..500).contains(&k) || (600..1000).contains(&k);
    let mut now = t0;
    let mut last_sent: Vec<Instant> = Vec::new(); // last packet of 1 and 2 before each spell
    let mut timeouts: Vec<(LegId, Instant)> = Vec::new();
    for k in 0..1100u32 {
        now += TICK;
        for leg in 1..=103u64 {
            if leg <= 2 && quiet(k) {
                continue;
            }
            let p = packet(leg, k as u16);
            core.handle_input(now, Input::Receive { leg: LegId(leg), socket: Socket::Rtp, from: remote_of(leg), data: &p });
        }
        if quiet(k + 1) && !quiet(k) {
            last_sent.push(now);
        }
        core.handle_input(now, Input::Tick);
        while let Some(out) = core.poll_output() {
            if let Output::Event(MediaEvent::RtpTimeout { leg }) = out {
                timeouts.push((leg, now));
            }
        }
    }
    let since = |at: Instant, from: Instant| at.saturating_duration_since(from);
    let report: Vec<(u64, Duration)> = timeouts.iter().map(|&(l, at)| (l.0, since(at, t0))).collect();
    assert!(timeouts.iter().all(|(l, _)| l.0 <= 2), "a leg that kept sending timed out: {report:?}");
    for leg in [1u64, 2] {
        let mine: Vec<Instant> = timeouts.iter().filter(|(l, _)| l.0 == leg).map(|&(_, at)| at).collect();
        assert_eq!(mine.len(), 2, "leg {leg}: one timeout per quiet spell, got {report:?}");
        for (spell, (&at, &last)) in mine.iter().zip(&last_sent).enumerate() {
            let after = since(at, last);
            assert!(after >= TIMEOUT, "leg {leg}, spell {spell}: reported {after:?} after its last packet, before rtp_timeout");
            assert!(after <= TIMEOUT + SWEEP + TICK, "leg {leg}, spell {spell}: reported only {after:?} after its last packet");
        }
    }
}

/// A leg that never sends anything is reported `rtp_timeout` after it was set up.
#[test]
fn a_leg_that_never_sends_is_reported_after_rtp_timeout() {
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig { rtp_timeout: TIMEOUT, ..CoreConfig::default() });
    add(&mut core, t0, 7, Attachment::None);
    let mut now = t0;
    let mut events = Vec::new();
    for _ in 0..500 {
        now += TICK;
        core.handle_input(now, Input::Tick);
        while let Some(out) = core.poll_output() {
            if let Output::Event(e @ MediaEvent::RtpTimeout { .. }) = out {
                events.push((e, now.saturating_duration_since(t0)));
            }
        }
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, MediaEvent::RtpTimeout { leg: LegId(7) });
    assert!(events[0].1 >= TIMEOUT && events[0].1 <= TIMEOUT + SWEEP + TICK, "{events:?}");
}

/// A released leg reports what it received and sent, and what its jitter buffer had to
/// do: here 50 packets with two lost (never sent), in a room with a second leg.
#[test]
fn a_released_leg_reports_its_counters() {
    let t0 = Instant::now();
    let mut core = MediaCore::new(CoreConfig::default());
    let room = RoomId(1);
    add(&mut core, t0, 1, Attachment::Room(room));
    add(&mut core, t0, 2, Attachment::Room(room));
    let mut now = t0;
    for k in 0..50u16 {
        now += TICK;
        for leg in [1u64, 2] {
            if leg == 1 && (k == 20 || k == 30) {
                continue;
            }
            let p = packet(leg, k);
            core.handle_input(now, Input::Receive { leg: LegId(leg), socket: Socket::Rtp, from: remote_of(leg), data: &p });
        }
        core.handle_input(now, Input::Tick);
        while core.poll_output().is_some() {}
    }
    core.handle_input(now, Input::Command(Command::Release(LegId(1))));
    let mut released = Vec::new();
    while let Some(out) = core.poll_output() {
        if let Output::Event(MediaEvent::Released { leg, stats }) = out {
            released.push((leg, stats));
        }
    }
    assert_eq!(released.len(), 1, "one Released event: {released:?}");
    let (leg, stats) = released[0];
    assert_eq!(leg, LegId(1));
    assert_eq!(stats.received, 48);
    assert_eq!(stats.lost, 2, "{stats:?}");
    assert!(stats.sent >= 45, "it was sent the room's audio every tick: {stats:?}");
    assert_eq!((stats.late, stats.discarded, stats.resyncs), (0, 0, 0), "{stats:?}");
}
