//! Echo over real UDP on 127.0.0.1: every RTP packet sent to a leg comes back from the
//! leg's RTP port, re-stamped as the leg's own stream (own SSRC, continuous sequence
//! numbers), to the address the packets really came from (symmetric RTP).
//!
//! RTP ranges come from `testports` blocks (locked across processes). Nothing waits
//! for a fixed time for the workers to apply a leg's setup: a probe is sent until it
//! comes back.

mod common;

use common::start_engine;
use media::CodecKind;
use media::{Attachment, LegParams, MediaEvent, PortMode};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long a test waits for something that normally takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);
/// The payload byte of probes (test packets use others).
const PROBE: u8 = 0xee;

/// A PCMU (payload type 0) RTP packet without marker.
fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    common::rtp(0, false, seq, ts, ssrc, payload)
}

/// Sends probes (payload [`PROBE`]) from `phone` to `to` until one is echoed: then the
/// worker has applied the leg's setup. Panics after [`PATIENCE`].
fn probe_until_echoed(phone: &UdpSocket, to: SocketAddr, ssrc: u32) {
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 1500];
    for seq in 0u16.. {
        assert!(Instant::now() < deadline, "no echo from {to} within {PATIENCE:?}");
        phone.send_to(&rtp(60_000 + seq, 160 * seq as u32, ssrc, &[PROBE; 160]), to).unwrap();
        phone.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok((n, _)) = phone.recv_from(&mut buf) {
            if n > 12 && buf[12] == PROBE {
                break;
            }
        }
    }
    phone.set_read_timeout(Some(PATIENCE)).unwrap();
}

/// The next echoed packet that is not a probe's (a late copy of one may follow).
fn recv_echo(phone: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
    loop {
        let (n, from) = phone.recv_from(buf).expect("echoed packet");
        if !(n > 12 && buf[12] == PROBE) {
            return (n, from);
        }
    }
}

#[test]
fn echo_returns_packets_restamped_to_the_latched_source() {
    let block = testports::PortBlock::take();
    let (engine, ev_rx) = start_engine(&block, 10, 2, PortMode::PerLeg);
    let media = engine.handle();
    let leg = media.allocate().unwrap();
    assert_eq!(media.ports_in_use(), 1);
    assert_eq!(leg.rtp_addr.port() % 2, 0);

    // The SDP said some other address; symmetric RTP must answer where packets come from.
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    media.configure(leg.id, params("127.0.0.1:9".parse().unwrap()));
    media.attach(leg.id, Attachment::Echo);
    probe_until_echoed(&phone, leg.rtp_addr, 0xabcd);

    let mut buf = [0u8; 1500];
    let mut seqs = Vec::new();
    let mut our_ssrc = None;
    for i in 0..10u16 {
        let payload = [i as u8; 160];
        phone.send_to(&rtp(1000 + i, 5000 + 160 * i as u32, 0xabcd, &payload), leg.rtp_addr).unwrap();
        let (n, from) = recv_echo(&phone, &mut buf);
        assert_eq!(from, leg.rtp_addr, "echo comes from the leg's RTP port");
        assert_eq!(n, 12 + 160);
        assert_eq!(&buf[12..n], &payload[..], "payload echoed");
        let ssrc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
        assert_ne!(ssrc, 0xabcd, "our own SSRC");
        if let Some(s) = our_ssrc {
            assert_eq!(s, ssrc);
        }
        our_ssrc = Some(ssrc);
        seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
    }
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "continuous sequence numbers");
    }
    let first = ev_rx.recv_timeout(PATIENCE).unwrap();
    let expected_from: SocketAddr = phone.local_addr().unwrap();
    assert_eq!(first, MediaEvent::FirstPacket { leg: leg.id, from: expected_from });

    // Release: the port pair returns to the pool and can be bound again.
    media.release(leg.id);
    assert_eq!(media.ports_in_use(), 0);
    let mut legs = Vec::new();
    for _ in 0..10 {
        legs.push(media.allocate().expect("whole range allocatable after release"));
    }
    assert!(legs.iter().any(|l| l.rtp_addr == leg.rtp_addr), "released port reused");
    assert!(media.allocate().is_err(), "range exhausted");
    engine.shutdown();
}

fn params(remote: SocketAddr) -> LegParams {
    LegParams { remote: Some(remote), codec: CodecKind::Pcmu, payload_type: 0, telephone_event_pt: Some(101), send: true, recv: true }
}

/// Shared-port mode: every leg of a worker has the worker's address; the echo of each
/// phone's packets goes back to that phone only, including a phone whose SDP address
/// is wrong (NAT) and which latches as the only unlatched leg of its worker.
#[test]
fn shared_port_echo_demultiplexes_by_source_and_latches_behind_nat() {
    // Two port pairs: exactly one per worker.
    let block = testports::PortBlock::take();
    let (engine, ev_rx) = start_engine(&block, 2, 2, PortMode::Shared);
    let media = engine.handle();
    // Round-robin: a and c on one worker, b and d on the other.
    let legs: Vec<_> = (0..4).map(|_| media.allocate().expect("shared mode is not limited by the range")).collect();
    assert_eq!(media.ports_in_use(), 4);
    assert_eq!(legs[0].rtp_addr, legs[2].rtp_addr, "same worker, same port");
    assert_eq!(legs[1].rtp_addr, legs[3].rtp_addr);
    assert_ne!(legs[0].rtp_addr, legs[1].rtp_addr, "one port per worker");
    let phones: Vec<UdpSocket> = (0..4).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for (i, (leg, phone)) in legs.iter().zip(&phones).enumerate() {
        phone.set_read_timeout(Some(PATIENCE)).unwrap();
        // Phone b's SDP address is not where its packets come from.
        let sdp = if i == 1 { "127.0.0.1:9".parse().unwrap() } else { phone.local_addr().unwrap() };
        media.configure(leg.id, params(sdp));
        media.attach(leg.id, Attachment::Echo);
    }
    // Each worker applies its commands in order: once the last leg set up on each
    // (c on one, d on the other) echoes, every leg's setup is applied. c and d latch
    // to their phones (their SDP addresses are right), so b is then the only
    // unlatched leg of its worker.
    probe_until_echoed(&phones[2], legs[2].rtp_addr, 0x102);
    probe_until_echoed(&phones[3], legs[3].rtp_addr, 0x103);

    let mut buf = [0u8; 1500];
    // Phone b's first packet latches nothing although b is the only unlatched leg of
    // its worker: a guess (its SDP address is wrong) waits for a source's second packet.
    // (A bounded wait for something that must not happen.)
    phones[1].set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    phones[1].send_to(&rtp(99, 0, 0x101, &[0; 160]), legs[1].rtp_addr).unwrap();
    assert!(phones[1].recv_from(&mut buf).is_err(), "no echo before b latched");
    phones[1].set_read_timeout(Some(PATIENCE)).unwrap();
    for round in 0..5u16 {
        for i in [3usize, 1, 0, 2] {
            let payload = [(16 * i as u16 + round) as u8; 160];
            phones[i].send_to(&rtp(100 + round, 160 * round as u32, 0x100 + i as u32, &payload), legs[i].rtp_addr).unwrap();
            let (n, from) = recv_echo(&phones[i], &mut buf);
            assert_eq!(from, legs[i].rtp_addr, "echo comes from the worker's shared port");
            assert_eq!(&buf[12..n], &payload[..], "phone {i} gets its own packet back");
        }
    }
    let mut first: Vec<MediaEvent> = ev_rx.try_iter().filter(|e| matches!(e, MediaEvent::FirstPacket { .. })).collect();
    first.sort_by_key(|e| match e {
        MediaEvent::FirstPacket { leg, .. } => *leg,
        _ => unreachable!(),
    });
    let expected: Vec<MediaEvent> =
        legs.iter().zip(&phones).map(|(l, p)| MediaEvent::FirstPacket { leg: l.id, from: p.local_addr().unwrap() }).collect();
    assert_eq!(first, expected, "each leg latched to its own phone");

    // A stranger's packets go nowhere once every leg has latched.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    stranger.send_to(&rtp(1, 0, 0x999, &[0; 160]), legs[0].rtp_addr).unwrap();
    assert!(stranger.recv_from(&mut buf).is_err(), "no echo to an unknown source");

    for l in &legs {
        media.release(l.id);
    }
    assert_eq!(media.ports_in_use(), 0);
    engine.shutdown();
}

/// Shared-port mode, media starting at once: each phone sends its first packet right
/// after its leg is set up (as a caller does on the 200 OK), while another leg of the
/// worker stays unlatched (its phone never sends). Every leg must latch to its own
/// phone: the worker learns a leg's SDP address before it reads that leg's first
/// packet, so the "only unlatched leg" rule never takes a packet of a leg it does not
/// know yet.
#[test]
fn shared_port_legs_latch_to_their_own_phones_when_media_starts_at_once() {
    let block = testports::PortBlock::take();
    let (engine, ev_rx) = start_engine(&block, 1, 1, PortMode::Shared);
    let media = engine.handle();
    let quiet = media.allocate().unwrap();
    media.configure(quiet.id, params("127.0.0.1:9".parse().unwrap()));
    let mut phones = std::collections::HashMap::new();
    let mut sockets = Vec::new();
    for i in 0..40u8 {
        let leg = media.allocate().unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        media.configure(leg.id, params(phone.local_addr().unwrap()));
        media.attach(leg.id, Attachment::Echo);
        phone.send_to(&rtp(1, 0, 0x200 + i as u32, &[i; 160]), leg.rtp_addr).unwrap();
        phones.insert(leg.id, phone.local_addr().unwrap());
        sockets.push(phone);
    }
    // Every sending leg latches once: wait for 40 latches (a wrong one is among them
    // if the quiet leg took a packet, and then some phone's leg never latches).
    let deadline = Instant::now() + PATIENCE;
    let mut latched = Vec::new();
    while latched.len() < 40 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
        match ev_rx.recv_timeout(left) {
            Ok(MediaEvent::FirstPacket { leg, from }) => latched.push((leg, from)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(latched.iter().all(|(leg, _)| *leg != quiet.id), "the quiet leg took a stranger's packet: {latched:?}");
    for (leg, from) in &latched {
        assert_eq!(phones.get(leg), Some(from), "leg {leg:?} latched to another phone");
    }
    assert_eq!(latched.len(), 40, "every sending leg latched");
    engine.shutdown();
}
