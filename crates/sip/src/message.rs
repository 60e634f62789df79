//! The SIP message data model (RFC 3261 §7, §20).
//!
//! The headers every transaction and dialog needs (Via, From, To, Call-ID, CSeq,
//! Max-Forwards, Contact, Route, Record-Route, Content-Type) are parsed eagerly into
//! typed fields, because a request missing or mangling one of them must be refused
//! with 400 before any state machine sees it. Every other header is kept verbatim in
//! `extra`, in arrival order, under its canonical (long-form) name.
//! Content-Length is not stored: the printer derives it from `body`.

use crate::uri::{NameAddr, Param, Params, Uri};
use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token, kept as written (methods are case-sensitive).
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Transport protocol named in a Via header or chosen for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
    /// Reliable transports get no retransmissions (RFC 3261 §17.1.1.2 and friends).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
    pub fn from_token(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_uppercase().as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            "TLS" => Transport::Tls,
            "SCTP" => Transport::Sctp,
            "WS" => Transport::Ws,
            "WSS" => Transport::Wss,
            _ => return None,
        })
    }
}

/// Where a message came from or goes to: the socket address and the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// One Via header value: `SIP/2.0/UDP host:port;branch=z9hG4bK...;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: Transport,
    /// Host name or IP literal (IPv6 with brackets).
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl Via {
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }
    pub fn received(&self) -> Option<&str> {
        self.param("received").flatten()
    }
    /// RFC 3581: `None` if absent, `Some(None)` if present without value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }
    /// True when the branch carries the RFC 3261 magic cookie.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

impl Params for Via {
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Vec<Param> {
        &mut self.params
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// The headers of a message. See the module docs for why some are typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// Topmost first.
    pub via: Vec<Via>,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: CSeq,
    pub max_forwards: Option<u32>,
    pub contact: Vec<NameAddr>,
    pub route: Vec<NameAddr>,
    pub record_route: Vec<NameAddr>,
    pub content_type: Option<String>,
    /// Every other header as (canonical name, value), in arrival order. Multi-value
    /// headers are kept as one entry per header line.
    pub extra: Vec<(String, String)>,
}

impl Headers {
    /// First value of an extra header, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.extra.push((name.to_owned(), value.into()));
    }
    pub fn remove(&mut self, name: &str) {
        self.extra.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

impl Request {
    /// Builds a response to this request as RFC 3261 §8.2.6.2 prescribes: Via, From,
    /// To, Call-ID and CSeq copied; To gets `to_tag` if it has none yet (never for 100).
    pub fn response(&self, status: u16, to_tag: Option<&str>) -> Response {
        let mut h = self.headers.clone();
        h.max_forwards = None;
        h.contact.clear();
        h.route.clear();
        h.content_type = None;
        h.extra.clear();
        if status != 100 {
            if let Some(tag) = to_tag {
                if h.to.tag().is_none() {
                    h.to.set_param("tag", Some(tag));
                }
            }
        } else {
            // 100 Trying keeps only Timestamp among extras (§8.2.6.1); we never get one.
        }
        // Record-Route is copied only into 2xx/18x of dialog-creating requests; callers
        // that need it keep it, others clear it.
        Response { status, reason: reason_phrase(status).to_owned(), headers: h, body: Vec::new() }
    }

    pub fn top_via(&self) -> Option<&Via> {
        self.headers.via.first()
    }
}

impl Response {
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The default reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}
