//! Reading SIP messages from bytes, and writing them back (`Display` impls).
//!
//! CONTRACT (filled in by the parser work; signatures are fixed):
//! - `parse_datagram`: one UDP datagram. Content-Length may be absent (body = rest).
//!   A Content-Length larger than the bytes present is an error (RFC 3261 §18.3).
//! - `frame_stream`: how many bytes of a TCP stream buffer form the next message.
//! - Errors never panic; `ParseError::salvage` carries enough raw header text to
//!   answer a malformed *request* with 400.

use crate::message::*;
use crate::uri::*;
use std::fmt;

/// Biggest message we accept on any transport (headers + body).
pub const MAX_MESSAGE_SIZE: usize = 65_535;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Human-readable reason, used as the 400 reason phrase (short, ASCII).
    pub reason: String,
    /// Present when the input looked like a request and the headers a response must
    /// copy (Via, From, To, Call-ID, CSeq) could be found as raw text.
    pub salvage: Option<Salvage>,
}

/// Raw header values of a malformed request, enough to build a 400 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvage {
    pub via: Vec<String>,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: String,
}

impl Salvage {
    /// The bytes of a `400 <reason>` response copying the salvaged headers, with a
    /// To tag added when missing.
    pub fn bad_request(&self, reason: &str, to_tag: &str) -> Vec<u8> {
        let _ = (reason, to_tag);
        todo!()
    }
}

/// Result of looking for one message at the start of a stream buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// `n` leading bytes are CRLF keep-alives (RFC 5626 §3.5.1) to discard.
    KeepAlive(usize),
    /// The first `n` bytes are one whole message: hand them to `parse_stream_message`.
    Message(usize),
}

/// Finds the next message boundary in a TCP buffer. Content-Length is mandatory on
/// streams; its absence, or a value above `MAX_MESSAGE_SIZE`, is an error (the
/// connection should then be closed after answering 400 if possible).
pub fn frame_stream(buf: &[u8]) -> Result<Frame, ParseError> {
    let _ = buf;
    todo!()
}

/// Parses one UDP datagram.
pub fn parse_datagram(buf: &[u8]) -> Result<Message, ParseError> {
    let _ = buf;
    todo!()
}

/// Parses one message already framed by `frame_stream`.
pub fn parse_stream_message(buf: &[u8]) -> Result<Message, ParseError> {
    let _ = buf;
    todo!()
}

pub fn parse_uri(s: &str) -> Result<Uri, ParseError> {
    let _ = s;
    todo!()
}

pub fn parse_name_addr(s: &str) -> Result<NameAddr, ParseError> {
    let _ = s;
    todo!()
}

pub fn parse_via(s: &str) -> Result<Vec<Via>, ParseError> {
    let _ = s;
    todo!()
}

impl fmt::Display for Uri {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}
impl fmt::Display for NameAddr {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}
impl fmt::Display for Via {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}
impl fmt::Display for Request {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}
impl fmt::Display for Response {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Request(r) => r.fmt(f),
            Message::Response(r) => r.fmt(f),
        }
    }
}

impl Request {
    /// Wire bytes. Bodies are bytes, so this is not just `to_string()`.
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!()
    }
}
impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!()
    }
}
impl Message {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}
