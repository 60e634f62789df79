//! The WebRTC gateway: browsers on one side (ICE-lite + DTLS-SRTP, via str0m), plain
//! RTP toward the SIP side on the other. RTP is relayed, never transcoded: what the
//! browser sends comes out of the leg's plain UDP socket with the same payload type,
//! marker, timestamp and payload, and what arrives on that socket goes to the browser
//! the same way.
//!
//! Shape (the media engine's, see [`crate::engine`]):
//! - [`leg`](self::leg): the sans-IO core of one WebRTC leg. One `str0m::Rtc` (in RTP
//!   mode) plus the plain side's bookkeeping: the SIP side's address (configured, then
//!   learnt from what arrives: symmetric RTP), forwarding on/off, the sequence numbers
//!   both ways, DTMF injection and the failure timers. No sockets, no clock.
//! - [`runtime`](self::runtime): one thread owning the ICE socket(s), every leg's plain
//!   socket and the timers; [`WebRtcGateway`] is the handle that queues commands to it.
//!
//! # The run loop (one gateway thread)
//!
//! ```text
//! loop {
//!     epoll_wait(ICE sockets + plain sockets + command eventfd, until next deadline)
//!     ICE datagram   -> leg (cached by source address, else the first whose
//!                       Rtc::accepts it) .handle_datagram(now, from, to, bytes)
//!     plain datagram -> its leg .handle_plain(now, from, bytes)
//!     command        -> create / answer / set_plain_remote / dtmf / close ...
//!     due deadline   -> leg.handle_timeout(now)
//!     after each input: drain leg.poll_output() until Timeout:
//!        Transmit -> ICE socket, Plain -> the leg's plain socket, Event -> channel
//! }
//! ```
//!
//! # Why ICE-lite, and how the browser's address is found
//!
//! The gateway has public (or at least directly reachable) addresses, so it never
//! needs to probe: it answers the browser's STUN checks and sends media to wherever
//! the nominated check came from. Chromium sends no `a=candidate` lines (its SDP says
//! `c=IN IP4 0.0.0.0`, `m=audio 9`); its address is learnt as a peer-reflexive
//! candidate from those checks. Every address in [`GatewayConfig::candidates`] is
//! advertised, because Chromium pairs its non-loopback host address with a 127.0.0.1
//! candidate too and picks whichever answers.
//!
//! # Failure reasons
//!
//! The [`FailReason`] texts are the ones the Flashphoner WCS browser SDK matches on:
//! keep them byte for byte.

mod leg;
mod runtime;

pub use leg::{LegOutput, WebRtcLeg};
pub use runtime::WebRtcGateway;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// One WebRTC leg of the gateway.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebRtcId(pub u64);

impl fmt::Display for WebRtcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "webrtc-{}", self.0)
    }
}

/// How the gateway binds and what it advertises.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The ICE UDP socket. With an unspecified IP (`0.0.0.0:0`) one socket is bound per
    /// address in `candidates`, all on the same port (so each datagram's destination,
    /// which ICE needs to match against its candidates, is known without IP_PKTINFO).
    /// With a concrete IP one socket is bound there and every candidate is taken to
    /// reach it (a 1:1 NAT address, say).
    pub bind: SocketAddr,
    /// Addresses advertised as host candidates, e.g. `[127.0.0.1, <machine IP>]`.
    pub candidates: Vec<IpAddr>,
    /// Where the plain RTP sockets are bound (the SIP side's media address).
    pub relay_ip: IpAddr,
    /// No RTP from the browser for this long after connecting => `Failed(RtpActivity)`.
    pub media_timeout: Duration,
    /// ICE + DTLS not up this long after the leg was created => `Failed(Ice | Dtls)`.
    pub connect_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            candidates: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            relay_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            media_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// The plain-RTP side of a leg, for the SIP user agent's SDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainSide {
    /// The leg's plain UDP socket: `c=`/`m=` of the SIP SDP.
    pub local: SocketAddr,
    /// The codecs negotiated with the browser, in its preference order, with its
    /// payload type numbers (RTP is relayed unchanged, so the SIP side must use them).
    pub codecs: Vec<PlainCodec>,
    /// The telephone-event payload type, if negotiated.
    pub telephone_event: Option<u8>,
    /// Its clock rate (8000 or 48000: Chromium offers both, matched to the first codec).
    pub telephone_event_clock: u32,
}

/// One codec of the plain side, as it goes into an `a=rtpmap`/`a=fmtp` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainCodec {
    pub pt: u8,
    /// "opus", "PCMU", "PCMA" or "G722".
    pub name: String,
    /// RTP clock rate as written in `a=rtpmap` (G722: 8000).
    pub clock: u32,
    pub channels: u8,
    pub fmtp: Option<String>,
}

/// What the gateway reports, on the channel returned by [`WebRtcGateway::start`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayEvent {
    /// ICE and DTLS are up; media flows.
    Connected(WebRtcId),
    /// The leg is dead and has been removed; no `Closed` follows.
    Failed { id: WebRtcId, reason: FailReason },
    /// The leg was closed (by [`WebRtcGateway::close`] or the browser's DTLS close).
    Closed(WebRtcId),
}

/// Why a leg failed. `Display` gives the texts the browser SDK knows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    Ice,
    Dtls,
    /// No RTP from the browser for [`GatewayConfig::media_timeout`].
    RtpActivity,
    NoCommonCodecs,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailReason::Ice => "Failed by ICE error",
            FailReason::Dtls => "Failed by DTLS error",
            FailReason::RtpActivity => "Failed by RTP activity",
            FailReason::NoCommonCodecs => "No common codecs",
        })
    }
}

/// Why a gateway call was refused.
#[derive(Debug)]
pub enum GatewayError {
    /// The SDP could not be parsed or applied.
    Sdp(String),
    /// Nothing in the offer (or answer) that we may relay.
    NoCommonCodecs,
    /// No such leg (never existed, closed or failed).
    UnknownLeg(WebRtcId),
    /// Binding a socket failed.
    Io(std::io::Error),
    /// The gateway thread is gone.
    Stopped,
}

impl GatewayError {
    /// The failure to report to the browser for this refusal, where one applies.
    pub fn fail_reason(&self) -> Option<FailReason> {
        match self {
            GatewayError::NoCommonCodecs => Some(FailReason::NoCommonCodecs),
            _ => None,
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::Sdp(e) => write!(f, "bad SDP: {e}"),
            GatewayError::NoCommonCodecs => f.write_str("No common codecs"),
            GatewayError::UnknownLeg(id) => write!(f, "unknown leg {id}"),
            GatewayError::Io(e) => write!(f, "socket: {e}"),
            GatewayError::Stopped => f.write_str("gateway stopped"),
        }
    }
}

impl std::error::Error for GatewayError {}

impl From<std::io::Error> for GatewayError {
    fn from(e: std::io::Error) -> Self {
        GatewayError::Io(e)
    }
}

/// Packet and byte counts of one leg. "from browser" counts RTP received over SRTP;
/// "to plain" what was relayed to the SIP side (less while forwarding is off), and so on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WebRtcStats {
    pub from_browser_packets: u64,
    pub from_browser_bytes: u64,
    pub to_plain_packets: u64,
    pub to_plain_bytes: u64,
    pub from_plain_packets: u64,
    pub from_plain_bytes: u64,
    pub to_browser_packets: u64,
    pub to_browser_bytes: u64,
    /// RFC 4733 packets we generated toward the SIP side.
    pub dtmf_packets: u64,
}
