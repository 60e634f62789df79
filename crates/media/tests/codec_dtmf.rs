//! RFC 4733 telephone-events: a realistic received sequence, losses and
//! reordering, and our sender's output fed back through the receiver.

use media::dtmf::{digit_to_event, event_to_digit, DtmfDigit, DtmfReceiver, DtmfSender};

/// Payload for `event` with end bit, volume 10 and `duration` (8 kHz units).
fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let [hi, lo] = duration.to_be_bytes();
    [event, if end { 0x80 | 10 } else { 10 }, hi, lo]
}

#[test]
fn digit_and_event_codes() {
    let digits = "0123456789*#ABCD";
    for (event, digit) in digits.chars().enumerate() {
        assert_eq!(digit_to_event(digit), Some(event as u8));
        assert_eq!(event_to_digit(event as u8), Some(digit));
    }
    assert_eq!(digit_to_event('b'), Some(13));
    assert_eq!(digit_to_event('E'), None);
    assert_eq!(digit_to_event(' '), None);
    assert_eq!(event_to_digit(16), None); // flash
}

#[test]
fn realistic_key_press_is_reported_once_at_its_end() {
    // '5' held 100 ms, as a typical phone sends it: start with marker (sent 3 times),
    // updates every 20 ms, end packet 3 times. All share the event's timestamp.
    let ts = 123_456;
    let mut rx = DtmfReceiver::new();
    let sequence: Vec<(bool, [u8; 4])> = vec![
        (true, payload(5, false, 160)),
        (true, payload(5, false, 160)),
        (true, payload(5, false, 160)),
        (false, payload(5, false, 320)),
        (false, payload(5, false, 480)),
        (false, payload(5, false, 640)),
        (false, payload(5, true, 800)),
        (false, payload(5, true, 800)),
        (false, payload(5, true, 800)),
    ];
    let reported: Vec<(usize, DtmfDigit)> = sequence
        .iter()
        .enumerate()
        .filter_map(|(i, (marker, p))| rx.push(ts, *marker, p).map(|d| (i, d)))
        .collect();
    assert_eq!(
        reported,
        vec![(
            6,
            DtmfDigit {
                digit: '5',
                duration_ms: 100
            }
        )]
    );
    // A late retransmission of the start changes nothing.
    assert_eq!(rx.push(ts, true, &payload(5, false, 160)), None);
    assert_eq!(rx.finish(), None);
}

#[test]
fn consecutive_digits_and_a_repeated_key() {
    let mut rx = DtmfReceiver::new();
    let mut got = Vec::new();
    // "1", "1", "#": the same key twice is two events (different timestamps).
    for (i, event) in [1u8, 1, 11].into_iter().enumerate() {
        let ts = 1000 + i as u32 * 4000;
        for k in 1..=4u16 {
            got.extend(rx.push(ts, k == 1, &payload(event, false, 160 * k)));
        }
        for _ in 0..3 {
            got.extend(rx.push(ts, false, &payload(event, true, 800)));
        }
    }
    let digits: String = got.iter().map(|d| d.digit).collect();
    assert_eq!(digits, "11#");
}

#[test]
fn lost_end_packets_report_the_digit_when_the_next_begins() {
    let mut rx = DtmfReceiver::new();
    assert_eq!(rx.push(8000, true, &payload(7, false, 160)), None);
    assert_eq!(rx.push(8000, false, &payload(7, false, 320)), None);
    // All three end packets of '7' lost; '8' starts.
    let reported = rx.push(16_000, true, &payload(8, false, 160));
    assert_eq!(
        reported,
        Some(DtmfDigit {
            digit: '7',
            duration_ms: 40
        })
    );
    assert_eq!(
        rx.push(16_000, false, &payload(8, true, 480)),
        Some(DtmfDigit {
            digit: '8',
            duration_ms: 60
        })
    );
    // ...or when the caller flushes after the event stream went quiet.
    assert_eq!(rx.push(24_000, true, &payload(9, false, 160)), None);
    assert_eq!(
        rx.finish(),
        Some(DtmfDigit {
            digit: '9',
            duration_ms: 20
        })
    );
    assert_eq!(rx.finish(), None);
}

#[test]
fn only_end_packets_received_still_reports_once() {
    let mut rx = DtmfReceiver::new();
    assert_eq!(
        rx.push(500, false, &payload(10, true, 640)),
        Some(DtmfDigit {
            digit: '*',
            duration_ms: 80
        })
    );
    assert_eq!(rx.push(500, false, &payload(10, true, 640)), None);
    assert_eq!(rx.push(500, false, &payload(10, true, 640)), None);
}

#[test]
fn reordered_packets_of_an_earlier_event_are_ignored() {
    let mut rx = DtmfReceiver::new();
    assert!(rx.push(1000, true, &payload(2, true, 400)).is_some());
    assert_eq!(rx.push(5000, true, &payload(3, false, 160)), None);
    // A redundant end of '2' arrives after '3' started: not a new digit.
    assert_eq!(rx.push(1000, false, &payload(2, true, 400)), None);
    assert_eq!(
        rx.push(5000, false, &payload(3, true, 480))
            .map(|d| d.digit),
        Some('3')
    );
}

#[test]
fn non_dtmf_events_and_short_payloads_are_ignored() {
    let mut rx = DtmfReceiver::new();
    assert_eq!(rx.push(100, true, &payload(16, true, 800)), None); // hook flash
    assert_eq!(rx.push(200, true, &[5, 0x8A]), None);
}

#[test]
fn sender_packet_sequence() {
    let mut tx = DtmfSender::new('9', 100, 8000).unwrap().starting_at(4242);
    let packets: Vec<_> = std::iter::from_fn(|| tx.next_packet()).collect();
    // 100 ms = 5 ticks: 4 updates + the end sent 3 times.
    assert_eq!(packets.len(), 7);
    let durations: Vec<u16> = packets
        .iter()
        .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
        .collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    let ends: Vec<bool> = packets.iter().map(|p| p.payload[1] & 0x80 != 0).collect();
    assert_eq!(ends, [false, false, false, false, true, true, true]);
    assert!(packets
        .iter()
        .all(|p| p.payload[0] == 9 && p.payload[1] & 0x3F == 10 && p.timestamp == 4242));
    let markers: Vec<bool> = packets.iter().map(|p| p.marker).collect();
    assert_eq!(markers, [true, false, false, false, false, false, false]);
    let last: Vec<bool> = packets.iter().map(|p| p.is_last).collect();
    assert_eq!(last, [false, false, false, false, false, false, true]);
    assert!(tx.next_packet().is_none());
    assert_eq!(DtmfSender::new('x', 100, 8000).map(|_| ()), None);
}

#[test]
fn every_event_round_trips_from_sender_to_receiver() {
    let mut rx = DtmfReceiver::new();
    let mut timestamp = 0u32;
    for digit in "0123456789*#ABCD".chars() {
        for duration_ms in [40, 90, 250] {
            let mut tx = DtmfSender::new(digit, duration_ms, 8000)
                .unwrap()
                .starting_at(timestamp);
            let mut reported = Vec::new();
            while let Some(p) = tx.next_packet() {
                reported.extend(rx.push(p.timestamp, p.marker, &p.payload));
            }
            assert_eq!(
                reported,
                vec![DtmfDigit { digit, duration_ms }],
                "{digit} {duration_ms} ms"
            );
            // The media clock ran on under the event, plus a pause between keys.
            timestamp = timestamp.wrapping_add(duration_ms * 8 + 800);
        }
    }
}

#[test]
fn round_trip_at_48_khz_and_across_timestamp_wrap() {
    let mut rx = DtmfReceiver::with_clock_rate(48_000);
    let mut tx = DtmfSender::new('#', 120, 48_000)
        .unwrap()
        .starting_at(u32::MAX - 100);
    let mut reported = Vec::new();
    let mut count = 0;
    while let Some(p) = tx.next_packet() {
        count += 1;
        reported.extend(rx.push(p.timestamp, p.marker, &p.payload));
    }
    assert_eq!(count, 8);
    assert_eq!(
        reported,
        vec![DtmfDigit {
            digit: '#',
            duration_ms: 120
        }]
    );
    // The next key, after the timestamp wrapped, is a new event.
    let mut tx = DtmfSender::new('0', 60, 48_000).unwrap().starting_at(5_000);
    let mut reported = Vec::new();
    while let Some(p) = tx.next_packet() {
        reported.extend(rx.push(p.timestamp, p.marker, &p.payload));
    }
    assert_eq!(
        reported,
        vec![DtmfDigit {
            digit: '0',
            duration_ms: 60
        }]
    );
}
