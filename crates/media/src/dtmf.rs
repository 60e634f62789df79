//! DTMF as RFC 4733 telephone-events: receiving digits and generating them.
//!
//! A telephone-event payload is 4 bytes:
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |     event     |E|R| volume    |          duration             |
//! ```
//! One key press is a series of packets that all carry the RTP timestamp of the
//! event's start: the first with the marker bit, then updates every 20 ms with a
//! growing duration, and finally the end (E) bit — sent three times, since it is
//! the packet that matters.
//!
//! [`DtmfReceiver`] reports each digit **once, when it ends** (first packet with
//! the E bit), because only then is its duration known; the redundant end
//! packets and retransmitted starts/updates are recognised by their timestamp
//! and ignored. If all end packets are lost, the digit is reported when the next
//! event starts, or by [`DtmfReceiver::finish`]. Events 0–15 (0–9, `*`, `#`,
//! A–D) are reported; other events (flash, tones) are ignored.
//!
//! [`DtmfSender`] produces the packet sequence for one digit, one packet per
//! 20 ms tick. Both work in RTP timestamp units of the telephone-event clock
//! (8000 Hz unless negotiated otherwise).

/// RTP clock of `telephone-event/8000`, the usual negotiation.
pub const DEFAULT_CLOCK_RATE: u32 = 8000;
/// Volume we send (RFC 4733: 0 to −63 dBm0, as a positive number): −10 dBm0.
pub const SEND_VOLUME: u8 = 10;
/// Times the final (end) packet is sent.
pub const END_REPETITIONS: u32 = 3;

/// Digit characters for events 0–15.
const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// Event code for a DTMF digit (`0-9 * # A-D`, letters in either case).
pub fn digit_to_event(c: char) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    DIGITS.iter().position(|&d| d == c).map(|e| e as u8)
}

/// DTMF digit for an event code, or `None` for events above 15.
pub fn event_to_digit(e: u8) -> Option<char> {
    DIGITS.get(usize::from(e)).copied()
}

/// A completed key press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfDigit {
    pub digit: char,
    /// How long the key was held, from the event's duration field.
    pub duration_ms: u32,
}

/// The event currently being received.
#[derive(Clone, Copy)]
struct Ongoing {
    timestamp: u32,
    event: u8,
    duration: u16,
    reported: bool,
}

/// Turns a stream of telephone-event payloads into digits.
pub struct DtmfReceiver {
    clock_rate: u32,
    current: Option<Ongoing>,
}

impl Default for DtmfReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfReceiver {
    /// Receiver for `telephone-event/8000`.
    pub fn new() -> Self {
        Self::with_clock_rate(DEFAULT_CLOCK_RATE)
    }

    /// Receiver for a telephone-event stream negotiated at another clock (e.g. 48000 with Opus).
    pub fn with_clock_rate(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            current: None,
        }
    }

    /// Feed one telephone-event packet (its RTP timestamp, marker bit and
    /// payload); returns a digit when one completes.
    ///
    /// Events are told apart by timestamp, so the marker bit is not needed (a
    /// lost first packet must not lose the digit); packets older than the
    /// current event (reordered) are ignored.
    pub fn push(&mut self, timestamp: u32, _marker: bool, payload: &[u8]) -> Option<DtmfDigit> {
        let &[event, flags, duration_hi, duration_lo, ..] = payload else {
            return None;
        };
        let end = flags & 0x80 != 0;
        let duration = u16::from_be_bytes([duration_hi, duration_lo]);

        if let Some(ongoing) = self.current.as_mut() {
            if ongoing.timestamp == timestamp && ongoing.event == event {
                // An update, a redundant end, or a retransmitted start.
                ongoing.duration = ongoing.duration.max(duration);
                if !end || ongoing.reported {
                    return None;
                }
                ongoing.reported = true;
                let duration = ongoing.duration;
                return self.digit(event, duration);
            }
            if (timestamp.wrapping_sub(ongoing.timestamp) as i32) < 0 {
                return None;
            }
        }

        // A new event; one whose end we never saw is reported now.
        let unfinished = self.finish();
        self.current = Some(Ongoing {
            timestamp,
            event,
            duration,
            reported: false,
        });
        if end && unfinished.is_none() {
            // Only the end made it (very short press, or losses): report at once.
            // (With an unfinished predecessor, its redundant end packets report it.)
            self.current = Some(Ongoing {
                timestamp,
                event,
                duration,
                reported: true,
            });
            return self.digit(event, duration);
        }
        unfinished
    }

    /// Report the event in progress if its end was never received (call when the
    /// telephone-event stream stops, e.g. a few hundred ms after the last packet).
    pub fn finish(&mut self) -> Option<DtmfDigit> {
        let ongoing = self.current.as_mut()?;
        if ongoing.reported {
            return None;
        }
        ongoing.reported = true;
        let (event, duration) = (ongoing.event, ongoing.duration);
        self.digit(event, duration)
    }

    fn digit(&self, event: u8, duration: u16) -> Option<DtmfDigit> {
        let digit = event_to_digit(event)?;
        Some(DtmfDigit {
            digit,
            duration_ms: u32::from(duration) * 1000 / self.clock_rate,
        })
    }
}

/// One telephone-event packet to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfPacket {
    pub payload: [u8; 4],
    /// Set on the first packet of the event only.
    pub marker: bool,
    /// RTP timestamp: the event's start, the same for every packet of it.
    pub timestamp: u32,
    /// The last packet of the event (the third end packet).
    pub is_last: bool,
}

/// Generates the packets of one key press: call [`DtmfSender::next_packet`]
/// once per 20 ms tick until it returns `None`.
///
/// For a duration of `n` ticks: packet 1 (marker) to packet `n` report the
/// duration so far (20 ms, 40 ms, …); packet `n` carries the E bit with the full
/// duration and is sent [`END_REPETITIONS`] times, so `n + 2` packets in all.
/// The caller's RTP sequence number advances per packet; its media timestamp
/// should keep running underneath (the event occupies that time).
pub struct DtmfSender {
    event: u8,
    timestamp: u32,
    /// Total duration in timestamp units, and units per 20 ms tick.
    total: u32,
    tick: u32,
    /// Packets sent so far.
    sent: u32,
}

impl DtmfSender {
    /// Sender for `digit` held `duration_ms` (at least one tick), on a
    /// telephone-event clock of `clock_rate`. `None` if `digit` is not a DTMF digit.
    /// The packets' timestamp is 0 until set with [`DtmfSender::starting_at`].
    pub fn new(digit: char, duration_ms: u32, clock_rate: u32) -> Option<Self> {
        let event = digit_to_event(digit)?;
        let tick = (clock_rate / 50).max(1);
        // The duration field is 16 bits; longer events would need segmenting (RFC 4733 2.5.1.3).
        let total = (u64::from(duration_ms) * u64::from(clock_rate) / 1000)
            .clamp(u64::from(tick), 0xFFFF) as u32;
        Some(Self {
            event,
            timestamp: 0,
            total,
            tick,
            sent: 0,
        })
    }

    /// Set the RTP timestamp of the event (the media clock when the key went down).
    pub fn starting_at(mut self, timestamp: u32) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Packets the whole event takes.
    pub fn packet_count(&self) -> u32 {
        self.total.div_ceil(self.tick) + END_REPETITIONS - 1
    }

    /// The packet for the next 20 ms tick, or `None` when the event is complete.
    pub fn next_packet(&mut self) -> Option<DtmfPacket> {
        let count = self.packet_count();
        if self.sent >= count {
            return None;
        }
        let updates = self.total.div_ceil(self.tick);
        let index = self.sent;
        self.sent += 1;
        let end = index + 1 >= updates;
        let duration = if end {
            self.total
        } else {
            (index + 1) * self.tick
        };
        let flags = if end { 0x80 | SEND_VOLUME } else { SEND_VOLUME };
        let [hi, lo] = (duration as u16).to_be_bytes();
        Some(DtmfPacket {
            payload: [self.event, flags, hi, lo],
            marker: index == 0,
            timestamp: self.timestamp,
            is_last: self.sent == count,
        })
    }
}
