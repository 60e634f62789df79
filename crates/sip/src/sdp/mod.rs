//! SDP session descriptions (RFC 8866, which obsoletes RFC 4566) and the RFC 3264
//! offer/answer model, for audio calls.
//!
//! Two layers:
//! - [`SessionDescription`] and friends: a lossless model of any description. Parsing
//!   is tolerant of what real clients send (LF line ends, trailing whitespace, unknown
//!   lines and attributes, which are kept so a round trip loses nothing) but refuses
//!   text that is not SDP at all. [`SessionDescription::audio`] distils the first audio
//!   stream into an [`AudioInfo`]: address, codecs, direction, ptime.
//! - [`offer`], [`answer`] and [`accept_answer`]: the decisions of RFC 3264 for one
//!   audio stream, producing a [`Negotiated`] summary for the media engine. The codec
//!   policy, hold handling and why answers carry a single codec are documented on those
//!   functions.
//!
//! Like the rest of the crate this is sans-IO and allocation-only: no sockets, clocks,
//! randomness or DNS (session ids come from the caller via [`SessionState`]).

mod codec;
mod description;
mod negotiate;

pub use codec::{Codec, Direction};
pub use description::{
    Attribute, AudioInfo, Bandwidth, Connection, Line, MediaDescription, Origin,
    SessionDescription, Timing,
};
pub use negotiate::{
    accept_answer, answer, answer_prefer_offerer, answer_with, offer, CodecPreference,
    LocalCapabilities, Negotiated, SessionState, DEFAULT_PTIME, TELEPHONE_EVENT_PT,
};

use std::fmt;

/// Why a description could not be parsed or negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// Not a valid session description; the text says which line and why. → 400.
    Parse(String),
    /// No usable audio stream (none, or all disabled with port 0). → 488.
    NoAudio,
    /// The audio stream shares no voice codec with us. → 488.
    NoCommonCodec,
    /// The only audio streams use a profile we cannot terminate (SRTP, DTLS-SRTP). → 488.
    UnsupportedTransport(String),
    /// The answer to our offer rejected our audio stream (port 0).
    AudioRejected,
    /// The answer does not line up with our offer (m-line count or kinds, RFC 3264 §6).
    AnswerMismatch(String),
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::Parse(why) => write!(f, "malformed SDP: {why}"),
            SdpError::NoAudio => f.write_str("no usable audio stream"),
            SdpError::NoCommonCodec => f.write_str("no audio codec in common"),
            SdpError::UnsupportedTransport(p) => write!(f, "unsupported media transport {p}"),
            SdpError::AudioRejected => f.write_str("audio stream rejected by the answerer"),
            SdpError::AnswerMismatch(why) => write!(f, "answer does not match offer: {why}"),
        }
    }
}

impl std::error::Error for SdpError {}
