//! Conference rooms over real UDP on 127.0.0.1 with G.711 µ-law phones, each sending its
//! own tone; Goertzel checks which tones each phone hears. Two media workers, so a
//! room's legs are spread over both (legs are assigned round-robin).
//!
//! Each test takes its own block of ports (`testports`): tests in this file run in
//! parallel, and other test binaries may run at the same time. Nothing waits for a
//! fixed time: a check waits until what the phones hear settles to what it expects
//! (or gives up after [`PATIENCE`] and reports what they heard).

mod common;

use common::*;
use media::{MediaEvent, PortMode, RoomId};
use std::time::{Duration, Instant};

/// One second of packets: what a phone's hearing is judged on.
const WINDOW: usize = 50;

/// Waits until, in the last second of audio each phone received after `since`, the
/// tones it hears are `expected` (one entry per phone), for up to [`PATIENCE`]; returns
/// what they heard last, for the caller's assertions.
fn hear(phones: &[&Phone], since: Instant, expected: &[[bool; 3]]) -> Vec<[bool; 3]> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let heard: Vec<Option<[bool; 3]>> =
            phones.iter().map(|p| p.last_packets_since(since, WINDOW).map(|a| tones_heard(&a))).collect();
        let settled = heard.iter().zip(expected).all(|(h, e)| h.as_ref() == Some(e));
        if settled || Instant::now() >= deadline {
            return heard.into_iter().map(|h| h.unwrap_or_default()).collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn three_phones(t: &TestEngine, room: RoomId) -> [Phone; 3] {
    [
        Phone::join(&t.media, room, Some(TONES[0])),
        Phone::join(&t.media, room, Some(TONES[1])),
        Phone::join(&t.media, room, Some(TONES[2])),
    ]
}

#[test]
fn each_leg_hears_the_others_but_not_itself() {
    let t = TestEngine::start(2);
    let since = Instant::now();
    let [a, b, c] = three_phones(&t, RoomId(1));
    let heard = hear(&[&a, &b, &c], since, &[[false, true, true], [true, false, true], [true, true, false]]);
    assert_eq!(heard[0], [false, true, true], "A hears B and C only");
    assert_eq!(heard[1], [true, false, true], "B hears A and C only");
    assert_eq!(heard[2], [true, true, false], "C hears A and B only");
    // Talking events arrive for the speakers.
    assert!(t.wait_event(PATIENCE, |e| matches!(e, MediaEvent::Talking { talking: true, .. })).is_some());
}

#[test]
fn shared_port_mode_each_leg_hears_the_others_but_not_itself() {
    // Two port pairs: one per worker; the six legs of two rooms share them.
    let t = TestEngine::start_in(2, 2, PortMode::Shared);
    let since = Instant::now();
    let [a, b, c] = three_phones(&t, RoomId(8));
    let [d, e, f] = three_phones(&t, RoomId(9));
    assert_eq!(a.leg.rtp_addr, c.leg.rtp_addr, "legs of one worker share its port");
    assert_eq!(t.media.ports_in_use(), 6);
    let expected: Vec<[bool; 3]> = (0..6)
        .map(|i| {
            let mut e = [true; 3];
            e[i % 3] = false;
            e
        })
        .collect();
    let heard = hear(&[&a, &b, &c, &d, &e, &f], since, &expected);
    for (i, h) in heard.iter().enumerate() {
        assert_eq!(*h, expected[i], "phone {i} hears the other two of its room only");
    }
    t.media.release(a.leg.id);
    let heard = hear(&[&b, &c], Instant::now(), &[[false, false, true], [false, true, false]]);
    assert_eq!(heard[0], [false, false, true], "B no longer hears released A");
    assert_eq!(heard[1], [false, true, false], "C no longer hears released A");
    assert_eq!(t.media.ports_in_use(), 5);
}

#[test]
fn blocked_pair_removes_a_from_b_only() {
    let t = TestEngine::start(2);
    let room = RoomId(2);
    let [a, b, c] = three_phones(&t, room);
    t.media.set_blocked(room, vec![(a.leg.id, b.leg.id)]);
    let heard = hear(&[&a, &b, &c], Instant::now(), &[[false, true, true], [false, false, true], [true, true, false]]);
    assert_eq!(heard[0], [false, true, true], "A still hears B and C");
    assert_eq!(heard[1], [false, false, true], "B no longer hears A");
    assert_eq!(heard[2], [true, true, false], "C still hears A");
    // Unblocking restores the default.
    t.media.set_blocked(room, vec![]);
    let heard = hear(&[&a, &b, &c], Instant::now(), &[[false, true, true], [true, false, true], [true, true, false]]);
    assert_eq!(heard[1], [true, false, true], "B hears A again");
}

#[test]
fn muted_leg_is_heard_by_nobody() {
    let t = TestEngine::start(2);
    let [a, b, c] = three_phones(&t, RoomId(3));
    t.media.set_muted(a.leg.id, true);
    let heard = hear(&[&a, &b, &c], Instant::now(), &[[false, true, true], [false, false, true], [false, true, false]]);
    assert_eq!(heard[0], [false, true, true], "muted A still hears");
    assert_eq!(heard[1], [false, false, true]);
    assert_eq!(heard[2], [false, true, false]);
}

#[test]
fn deaf_leg_hears_nobody() {
    let t = TestEngine::start(2);
    let [a, b, c] = three_phones(&t, RoomId(4));
    t.media.set_deaf(a.leg.id, true);
    let heard = hear(&[&a, &b, &c], Instant::now(), &[[false, false, false], [true, false, true], [true, true, false]]);
    assert_eq!(heard[0], [false, false, false], "deaf A hears nothing");
    assert!(a.packets() > 0, "but still gets a steady stream");
    assert_eq!(heard[1], [true, false, true], "others still hear A");
    assert_eq!(heard[2], [true, true, false]);
}

#[test]
fn released_leg_stops_being_heard_and_its_port_is_reusable() {
    // Range of exactly three port pairs.
    let t = TestEngine::start_in(3, 2, PortMode::PerLeg);
    let room = RoomId(5);
    let since = Instant::now();
    let [a, b, c] = three_phones(&t, room);
    assert!(t.media.allocate().is_err(), "range full");
    let heard = hear(&[&b, &c], since, &[[true, false, true], [true, true, false]]);
    assert_eq!(heard[0], [true, false, true]);
    let a_addr = a.leg.rtp_addr;
    t.media.release(a.leg.id);
    // A keeps sending into the void; B and C must stop hearing it.
    let heard = hear(&[&b, &c], Instant::now(), &[[false, false, true], [false, true, false]]);
    assert_eq!(heard[0], [false, false, true], "B no longer hears released A");
    assert_eq!(heard[1], [false, true, false], "C no longer hears released A");
    a.hangup();
    let again = t.media.allocate().expect("released port pair is reusable");
    assert_eq!(again.rtp_addr, a_addr);
    assert_eq!(t.media.ports_in_use(), 3);
}

#[test]
fn a_few_lost_packets_do_not_break_the_mix() {
    let t = TestEngine::start(2);
    let since = Instant::now();
    let [a, b, c] = three_phones(&t, RoomId(6));
    // Lose 4 isolated packets of A's stream (its sequence numbers start at 100), and
    // judge what B and C heard over everything until A is well past them.
    a.drop_seqs.lock().unwrap().extend([140u16, 150, 151, 170]);
    wait_until("A to send past the lost packets", || (a.frames_sent() >= 100).then_some(()));
    let heard: Vec<[bool; 3]> = [&b, &c].iter().map(|p| tones_heard(&p.audio_since(since))).collect();
    assert_eq!(heard[0], [true, false, true]);
    assert_eq!(heard[1], [true, true, false]);
    // The stream to B stayed steady: one packet per tick, no sequence number missing
    // (on loopback nothing is lost on the way).
    let seqs = b.seqs();
    assert!(seqs.len() >= WINDOW, "B got {} packets", seqs.len());
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "gap in the stream to B: {seqs:?}");
    }
}

#[test]
fn dtmf_in_both_directions() {
    let t = TestEngine::start(2);
    let room = RoomId(7);
    let a = Phone::join(&t.media, room, None);
    let b = Phone::join(&t.media, room, Some(TONES[1]));
    // Both legs are set up (configured, in the room) once the room sends to both.
    wait_until("the room to send to both phones", || (a.packets() > 0 && b.packets() > 0).then_some(()));

    // Phone B presses '5' for 100 ms: RFC 4733 packets with growing duration, 3 ends.
    let ssrc = 0x5555;
    let start_ts = 1_000_000u32;
    for (i, dur) in [160u16, 320, 480, 640, 800].iter().enumerate() {
        let end = i == 4;
        let payload = [5u8, if end { 0x80 | 10 } else { 10 }, (dur >> 8) as u8, *dur as u8];
        let copies = if end { 3 } else { 1 };
        for _ in 0..copies {
            let pkt = rtp(TE_PT, i == 0, 5000 + i as u16, start_ts, ssrc, &payload);
            b.socket.send_to(&pkt, b.leg.rtp_addr).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ev = t.wait_event(PATIENCE, |e| matches!(e, MediaEvent::Dtmf { .. }));
    match ev {
        Some(MediaEvent::Dtmf { leg, digit, duration_ms }) => {
            assert_eq!(leg, b.leg.id);
            assert_eq!(digit, '5');
            assert!((80..=120).contains(&duration_ms), "duration {duration_ms}");
        }
        other => panic!("no DTMF event: {other:?}"),
    }

    // We send '#' to A: event packets with marker first, end bit last, same timestamp.
    t.media.send_dtmf(a.leg.id, '#', 100);
    let got = wait_until("the end of the event sent to A", || {
        let got = a.events_received.lock().unwrap().clone();
        got.iter().any(|(_, p)| p.len() > 1 && p[1] & 0x80 != 0).then_some(got)
    });
    assert!(got.len() >= 4, "event packets received: {}", got.len());
    assert!(got[0].0, "marker on the first event packet");
    assert!(got.iter().all(|(_, p)| p[0] == 11), "event 11 = '#'");
    assert!(got.last().unwrap().1[1] & 0x80 != 0, "end bit");
}
