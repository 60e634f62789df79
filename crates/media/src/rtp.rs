//! RTP (RFC 3550) packet headers and per-stream bookkeeping.
//!
//! What: parsing a received packet into header + payload without copying, writing our
//! own 12-byte header, the outgoing stream state of a leg ([`RtpSendStream`]: our SSRC,
//! sequence number and media clock) and receive statistics ([`RtpReceiveStats`]:
//! extended highest sequence, loss and interarrival jitter per RFC 3550 A.1/A.3/A.8),
//! which RTCP reports are built from.
//!
//! Why this shape: every function here runs once per packet, so nothing allocates and
//! nothing is generic over transport; a leg owns one send stream and one receive-stats
//! value by value.

/// Length of an RTP header without CSRCs or extensions.
pub const RTP_HEADER_LEN: usize = 12;

/// The fields of an RTP header that the media engine uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A received RTP packet: header plus the payload's byte range within the datagram.
#[derive(Copy, Clone, Debug)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
}

/// True when the datagram looks like RTCP (RFC 5761 section 4: PT 192..=223 in the second
/// byte), so that a packet arriving on the RTP port under rtcp-mux can be routed.
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

/// Parse an RTP packet. Skips CSRCs and the header extension, strips padding.
/// Returns `None` for anything that is not version 2 or is truncated.
/// Cost: a handful of bounds checks, no copy.
pub fn parse(buf: &[u8]) -> Option<RtpPacket<'_>> {
    if buf.len() < RTP_HEADER_LEN || buf[0] >> 6 != 2 {
        return None;
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let csrc_count = (buf[0] & 0x0f) as usize;
    let mut start = RTP_HEADER_LEN + 4 * csrc_count;
    if extension {
        if buf.len() < start + 4 {
            return None;
        }
        let words = u16::from_be_bytes([buf[start + 2], buf[start + 3]]) as usize;
        start += 4 + 4 * words;
    }
    let mut end = buf.len();
    if padding {
        let pad = *buf.last()? as usize;
        if pad == 0 || end < start + pad {
            return None;
        }
        end -= pad;
    }
    if start > end {
        return None;
    }
    Some(RtpPacket {
        header: RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        },
        payload: &buf[start..end],
    })
}

/// Write a 12-byte header (no CSRC, no extension) into `out[..12]`.
pub fn write_header(h: &RtpHeader, out: &mut [u8]) -> usize {
    out[0] = 0x80;
    out[1] = (h.payload_type & 0x7f) | if h.marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&h.sequence.to_be_bytes());
    out[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    RTP_HEADER_LEN
}

/// A random 32-bit value from the kernel (for SSRCs and initial sequence/timestamp).
pub fn random_u32() -> u32 {
    let mut v = [0u8; 4];
    // SAFETY: getrandom writes at most 4 bytes into our 4-byte buffer.
    let n = unsafe { libc::getrandom(v.as_mut_ptr().cast(), 4, 0) };
    if n != 4 {
        // Extremely unlikely; fall back to the clock mixed with a stack address.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0);
        return t ^ (&v as *const _ as usize as u32).rotate_left(13);
    }
    u32::from_ne_bytes(v)
}

/// Our outgoing RTP stream on one leg: SSRC, next sequence number and the media clock.
///
/// The media clock (`timestamp`) advances by one frame per 20 ms tick whether or not a
/// packet is sent (hold, DTMF), so timestamps stay continuous across talkspurts; the
/// marker bit is set on the first packet and on the first packet after a gap in sending.
#[derive(Clone, Debug)]
pub struct RtpSendStream {
    pub ssrc: u32,
    sequence: u16,
    /// RTP timestamp of the next frame.
    timestamp: u32,
    marker_pending: bool,
    /// Packets and payload octets sent (for RTCP SR).
    pub packets_sent: u32,
    pub octets_sent: u32,
    /// RTP timestamp of the last packet sent, for the SR's RTP/NTP correspondence.
    pub last_timestamp: u32,
}

impl Default for RtpSendStream {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpSendStream {
    pub fn new() -> Self {
        RtpSendStream {
            ssrc: random_u32(),
            sequence: random_u32() as u16,
            timestamp: random_u32(),
            marker_pending: true,
            packets_sent: 0,
            octets_sent: 0,
            last_timestamp: 0,
        }
    }

    /// Advance the media clock by `samples` without sending; the next packet sent gets
    /// the marker bit (it starts a talkspurt).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker_pending = true;
    }

    /// A frame that was lost before it reached us, in a stream we forward: advance the
    /// sequence number and the clock without sending, so that the receiver sees the
    /// same one-packet gap (and conceals it) as it would on a direct call.
    pub fn skip_lost(&mut self, samples: u32) {
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// The RTP timestamp the next frame will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Header for the next audio frame of `samples` samples; advances seq and clock.
    pub fn next_audio(&mut self, payload_type: u8, samples: u32, payload_len: usize) -> RtpHeader {
        let h = RtpHeader {
            marker: std::mem::take(&mut self.marker_pending),
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.count(h.timestamp, payload_len);
        h
    }

    /// Header for a packet with an explicit timestamp (RFC 4733 events keep the event's
    /// start timestamp); advances the sequence number only.
    pub fn next_with_timestamp(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload_len: usize,
    ) -> RtpHeader {
        let h = RtpHeader { marker, payload_type, sequence: self.sequence, timestamp, ssrc: self.ssrc };
        self.sequence = self.sequence.wrapping_add(1);
        self.count(timestamp, payload_len);
        h
    }

    fn count(&mut self, ts: u32, payload_len: usize) {
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
        self.last_timestamp = ts;
    }
}

/// Receive statistics of the remote's stream (RFC 3550 appendix A.1, A.3, A.8).
#[derive(Clone, Debug, Default)]
pub struct RtpReceiveStats {
    pub ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    pub received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Interarrival jitter in timestamp units, scaled by 16 (A.8).
    jitter_q4: u32,
    last_transit: Option<i32>,
}

impl RtpReceiveStats {
    /// Account one packet. `arrival` is the arrival time expressed in the stream's RTP
    /// clock units. A new SSRC resets the statistics.
    pub fn on_packet(&mut self, h: &RtpHeader, arrival: u32) {
        if self.ssrc != Some(h.ssrc) {
            *self = RtpReceiveStats {
                ssrc: Some(h.ssrc),
                base_seq: h.sequence as u32,
                max_seq: h.sequence,
                ..Default::default()
            };
        } else {
            let delta = h.sequence.wrapping_sub(self.max_seq);
            if delta != 0 && delta < 0x8000 {
                if h.sequence < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = h.sequence;
            }
        }
        self.received = self.received.wrapping_add(1);
        let transit = arrival.wrapping_sub(h.timestamp) as i32;
        if let Some(last) = self.last_transit {
            let d = transit.wrapping_sub(last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self.jitter_q4.wrapping_add(d).wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    /// Packets expected so far.
    pub fn expected(&self) -> u32 {
        self.extended_max().wrapping_sub(self.base_seq).wrapping_add(1)
    }

    /// Cumulative packets lost (clamped to the 24-bit signed RTCP field).
    pub fn cumulative_lost(&self) -> i32 {
        let lost = self.expected() as i64 - self.received as i64;
        lost.clamp(-0x80_0000, 0x7f_ffff) as i32
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Fraction lost since the previous call, as the 8-bit fixed-point RTCP value; rolls
    /// the interval over (call once per report).
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost = expected_interval as i64 - received_interval as i64;
        if expected_interval == 0 || lost <= 0 {
            0
        } else {
            ((lost << 8) / expected_interval as i64).min(255) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = RtpHeader { marker: true, payload_type: 8, sequence: 65535, timestamp: 0xdead_beef, ssrc: 42 };
        let mut buf = [0u8; 32];
        let n = write_header(&h, &mut buf);
        buf[n..n + 4].copy_from_slice(&[1, 2, 3, 4]);
        let p = parse(&buf[..n + 4]).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn parse_skips_csrc_extension_and_padding() {
        let mut buf = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        buf.extend_from_slice(&[9, 9, 9, 9]); // CSRC
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // 1-word extension
        buf.extend_from_slice(&[5, 6]); // payload
        buf.extend_from_slice(&[0, 2]); // 2 bytes padding
        let p = parse(&buf).unwrap();
        assert_eq!(p.payload, &[5, 6]);
        assert!(parse(&buf[..10]).is_none());
    }

    #[test]
    fn send_stream_clock_and_marker() {
        let mut s = RtpSendStream::new();
        let t0 = s.next_timestamp();
        let a = s.next_audio(0, 160, 160);
        assert!(a.marker);
        let b = s.next_audio(0, 160, 160);
        assert!(!b.marker);
        assert_eq!(b.sequence, a.sequence.wrapping_add(1));
        s.skip(160);
        let c = s.next_audio(0, 160, 160);
        assert!(c.marker);
        assert_eq!(c.timestamp, t0.wrapping_add(480));
    }

    #[test]
    fn receive_stats_loss_and_wrap() {
        let mut r = RtpReceiveStats::default();
        for (i, seq) in [65533u16, 65534, 65535, 1, 2].iter().enumerate() {
            let h = RtpHeader { marker: false, payload_type: 0, sequence: *seq, timestamp: i as u32 * 160, ssrc: 7 };
            r.on_packet(&h, i as u32 * 160);
        }
        assert_eq!(r.expected(), 6);
        assert_eq!(r.cumulative_lost(), 1);
        assert_eq!(r.take_fraction_lost(), (256 / 6) as u8);
        assert_eq!(r.jitter(), 0);
    }
}
