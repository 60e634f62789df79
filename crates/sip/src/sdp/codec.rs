//! RTP payload formats as SDP names them (`a=rtpmap`, RFC 8866 §6.6), the RFC 3551 static
//! payload type table, and media direction (RFC 8866 §6.7, RFC 3264 §6.1).

use std::fmt;

/// One RTP payload format: what an `m=` format number means, resolved through
/// `a=rtpmap` / `a=fmtp` or the RFC 3551 static table.
///
/// `clock_rate` is the *RTP* clock rate, which is not always the sampling rate: G.722
/// samples at 16 kHz but its RTP clock is 8000 (RFC 3551 §4.5.2, kept for historical
/// reasons), and Opus always says `opus/48000/2` whatever it really carries (RFC 7587 §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Codec {
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `PCMA`, `G722`, `opus`, `telephone-event`).
    /// Compared case-insensitively.
    pub name: String,
    pub clock_rate: u32,
    /// Audio channels; 1 when the rtpmap omits it.
    pub channels: u8,
    /// The `a=fmtp` parameters for this payload type, verbatim.
    pub fmtp: Option<String>,
}

impl Codec {
    pub fn new(payload_type: u8, name: impl Into<String>, clock_rate: u32, channels: u8) -> Codec {
        Codec { payload_type, name: name.into(), clock_rate, channels, fmtp: None }
    }

    /// G.711 µ-law, static payload type 0.
    pub fn pcmu() -> Codec {
        Codec::new(0, "PCMU", 8000, 1)
    }

    /// G.711 A-law, static payload type 8.
    pub fn pcma() -> Codec {
        Codec::new(8, "PCMA", 8000, 1)
    }

    /// G.722, static payload type 9, RTP clock 8000 (RFC 3551 §4.5.2).
    pub fn g722() -> Codec {
        Codec::new(9, "G722", 8000, 1)
    }

    /// G.729, static payload type 18.
    pub fn g729() -> Codec {
        Codec::new(18, "G729", 8000, 1)
    }

    /// Opus on a dynamic payload type, always `opus/48000/2` (RFC 7587 §7).
    pub fn opus(payload_type: u8) -> Codec {
        Codec::new(payload_type, "opus", 48000, 2)
    }

    /// RFC 4733 named telephone events (DTMF) at `clock_rate`.
    pub fn telephone_event(payload_type: u8, clock_rate: u32) -> Codec {
        Codec::new(payload_type, "telephone-event", clock_rate, 1).with_fmtp(TELEPHONE_EVENT_FMTP)
    }

    pub fn with_fmtp(mut self, fmtp: impl Into<String>) -> Codec {
        self.fmtp = Some(fmtp.into());
        self
    }

    /// The RFC 3551 §6 (tables 4) meaning of a static audio payload type, used when an
    /// `m=` line lists it without an `a=rtpmap`.
    pub fn from_static(payload_type: u8) -> Option<Codec> {
        let (name, clock, channels) = match payload_type {
            0 => ("PCMU", 8000, 1),
            3 => ("GSM", 8000, 1),
            4 => ("G723", 8000, 1),
            5 => ("DVI4", 8000, 1),
            6 => ("DVI4", 16000, 1),
            7 => ("LPC", 8000, 1),
            8 => ("PCMA", 8000, 1),
            9 => ("G722", 8000, 1),
            10 => ("L16", 44100, 2),
            11 => ("L16", 44100, 1),
            12 => ("QCELP", 8000, 1),
            13 => ("CN", 8000, 1),
            14 => ("MPA", 90000, 1),
            15 => ("G728", 8000, 1),
            16 => ("DVI4", 11025, 1),
            17 => ("DVI4", 22050, 1),
            18 => ("G729", 8000, 1),
            _ => return None,
        };
        Some(Codec::new(payload_type, name, clock, channels))
    }

    /// Parses an `a=rtpmap` value: `<pt> <name>/<clock>[/<channels>]`.
    /// `None` when it does not follow that grammar.
    pub fn from_rtpmap(value: &str) -> Option<Codec> {
        let (pt, rest) = value.trim().split_once(|c: char| c.is_ascii_whitespace())?;
        let payload_type = parse_payload_type(pt)?;
        let mut parts = rest.trim().split('/');
        let name = parts.next().filter(|n| !n.is_empty())?;
        let clock_rate = parts.next()?.trim().parse().ok()?;
        let channels = match parts.next() {
            Some(c) => c.trim().parse().ok()?,
            None => 1,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Codec::new(payload_type, name, clock_rate, channels))
    }

    /// The `a=rtpmap` value for this codec. The channel count is written only when it is
    /// not 1, except for Opus whose rtpmap always carries `/2`.
    pub fn rtpmap_value(&self) -> String {
        if self.channels != 1 || self.is_named("opus") {
            format!("{} {}/{}/{}", self.payload_type, self.name, self.clock_rate, self.channels)
        } else {
            format!("{} {}/{}", self.payload_type, self.name, self.clock_rate)
        }
    }

    /// Case-insensitive encoding name comparison (RFC 8866 §6.6: names are
    /// case-insensitive; clients write both `opus` and `OPUS`).
    pub fn is_named(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    pub fn is_telephone_event(&self) -> bool {
        self.is_named("telephone-event")
    }

    /// Formats that ride alongside a voice codec and cannot be the stream's codec:
    /// DTMF events, comfort noise (RFC 3389), redundancy and FEC/retransmission wrappers.
    pub fn is_auxiliary(&self) -> bool {
        ["telephone-event", "CN", "red", "ulpfec", "flexfec", "rtx"]
            .iter()
            .any(|n| self.is_named(n))
    }

    /// Whether `self` and `other` are the same encoding, regardless of payload type and
    /// fmtp: name (case-insensitive), RTP clock and channels. Tolerates two common
    /// deviations: `G722/16000` (the sampling rate written instead of the RTP clock) and
    /// Opus without its mandatory `/2`.
    pub fn same_encoding(&self, other: &Codec) -> bool {
        if !self.name.eq_ignore_ascii_case(&other.name) {
            return false;
        }
        if self.is_named("G722") {
            let ok = |c: u32| c == 8000 || c == 16000;
            return ok(self.clock_rate) && ok(other.clock_rate);
        }
        if self.is_named("opus") {
            return self.clock_rate == other.clock_rate;
        }
        self.clock_rate == other.clock_rate && self.channels.max(1) == other.channels.max(1)
    }
}

/// The events we declare for `telephone-event`: DTMF 0-9, *, #, A-D and flash (RFC 4733 §3.2).
pub(crate) const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// An RTP payload type as written in `m=`/`a=rtpmap`: 0..=127.
pub(crate) fn parse_payload_type(s: &str) -> Option<u8> {
    s.trim().parse::<u8>().ok().filter(|pt| *pt <= 127)
}

/// Media direction attribute (RFC 8866 §6.7; RFC 3264 §5.1, §6.1), always from the
/// point of view of the side that wrote the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction the other side sees: sendonly ↔ recvonly; sendrecv and inactive stay.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    pub fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// What both allow: e.g. sendrecv ∩ recvonly = recvonly, sendonly ∩ recvonly = inactive.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(self.sends() && other.sends(), self.receives() && other.receives())
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly`, `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses a direction attribute name (case-insensitive).
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive]
            .into_iter()
            .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_parsing() {
        assert_eq!(Codec::from_rtpmap("96 opus/48000/2"), Some(Codec::opus(96)));
        assert_eq!(Codec::from_rtpmap("0 PCMU/8000"), Some(Codec::pcmu()));
        assert_eq!(Codec::from_rtpmap("9 G722/8000/1"), Some(Codec::g722()));
        assert_eq!(
            Codec::from_rtpmap(" 101  telephone-event/8000 ").map(|c| c.clock_rate),
            Some(8000)
        );
        for bad in
            ["", "96", "96 opus", "96 opus/x", "128 opus/48000", "96 /8000", "96 a/1/2/3", "x a/1"]
        {
            assert_eq!(Codec::from_rtpmap(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rtpmap_printing() {
        assert_eq!(Codec::pcmu().rtpmap_value(), "0 PCMU/8000");
        assert_eq!(Codec::opus(111).rtpmap_value(), "111 opus/48000/2");
        assert_eq!(Codec::new(10, "L16", 44100, 2).rtpmap_value(), "10 L16/44100/2");
    }

    #[test]
    fn encoding_identity() {
        assert!(Codec::pcmu().same_encoding(&Codec::new(0, "pcmu", 8000, 1)));
        assert!(!Codec::pcmu().same_encoding(&Codec::pcma()));
        assert!(Codec::g722().same_encoding(&Codec::new(9, "g722", 16000, 1)));
        assert!(Codec::opus(96).same_encoding(&Codec::new(111, "OPUS", 48000, 1)));
        assert!(!Codec::opus(96).same_encoding(&Codec::new(111, "opus", 16000, 2)));
        assert!(!Codec::new(96, "L16", 8000, 1).same_encoding(&Codec::new(96, "L16", 8000, 2)));
    }

    #[test]
    fn direction_algebra() {
        use Direction::*;
        assert_eq!(SendOnly.reverse(), RecvOnly);
        assert_eq!(RecvOnly.reverse(), SendOnly);
        assert_eq!(Inactive.reverse(), Inactive);
        assert_eq!(SendRecv.reverse(), SendRecv);
        assert_eq!(SendRecv.intersect(RecvOnly), RecvOnly);
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
        assert_eq!(Direction::from_attribute("SENDONLY"), Some(SendOnly));
        assert_eq!(Direction::from_attribute("rtcp-mux"), None);
    }
}
