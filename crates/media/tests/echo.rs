//! Echo over real UDP on 127.0.0.1: every RTP packet sent to a leg comes back from the
//! leg's RTP port, re-stamped as the leg's own stream (own SSRC, continuous sequence
//! numbers), to the address the packets really came from (symmetric RTP).

use media::CodecKind;
use media::{Attachment, LegParams, MediaConfig, MediaEngine, MediaEvent};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn echo_returns_packets_restamped_to_the_latched_source() {
    let (ev_tx, ev_rx) = mpsc::channel();
    let ev_tx = std::sync::Mutex::new(ev_tx);
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: (31_000, 31_019),
        workers: 2,
        rtp_timeout: Duration::from_secs(60),
    };
    let engine = MediaEngine::start(cfg, Box::new(move |e| {
        let _ = ev_tx.lock().unwrap().send(e);
    }))
    .unwrap();
    let media = engine.handle();
    let leg = media.allocate().unwrap();
    assert_eq!(media.ports_in_use(), 1);
    assert_eq!(leg.rtp_addr.port() % 2, 0);

    // The SDP said some other address; symmetric RTP must answer where packets come from.
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    media.configure(
        leg.id,
        LegParams {
            remote: Some("127.0.0.1:9".parse().unwrap()),
            codec: CodecKind::Pcmu,
            payload_type: 0,
            telephone_event_pt: Some(101),
            send: true,
            recv: true,
        },
    );
    media.attach(leg.id, Attachment::Echo);
    std::thread::sleep(Duration::from_millis(50));

    let mut buf = [0u8; 1500];
    let mut seqs = Vec::new();
    let mut our_ssrc = None;
    for i in 0..10u16 {
        let payload = [i as u8; 160];
        phone.send_to(&rtp(1000 + i, 5000 + 160 * i as u32, 0xabcd, &payload), leg.rtp_addr).unwrap();
        let (n, from) = phone.recv_from(&mut buf).expect("echoed packet");
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
    let first = ev_rx.recv_timeout(Duration::from_secs(1)).unwrap();
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
