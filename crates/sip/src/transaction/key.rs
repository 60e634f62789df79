//! Matching keys (§17.1.3, §17.2.3, §8.2.2.2, §13.3.1.4).
//!
//! Server transactions are indexed by one string: the top Via branch when it carries
//! the RFC 3261 magic cookie (borrowed, so a retransmission lookup allocates nothing),
//! else an RFC 2543 key built from Request-URI, From tag, Call-ID, CSeq number and the
//! whole top Via. Candidates under a key are then checked for sent-by and method.
//! The legacy key leaves out the To tag so that the ACK for a 300-699 (To tag added)
//! and a CANCEL find the INVITE's transaction.

use super::route::default_port;
use crate::message::{Headers, Method, Request, Via};
use std::borrow::Cow;
use std::fmt::Write;

/// Index key of the server transaction a request belongs to.
pub(crate) fn server_key(req: &Request) -> Cow<'_, str> {
    let Some(via) = req.top_via() else {
        return Cow::Borrowed("");
    };
    if via.has_rfc3261_branch() {
        return Cow::Borrowed(via.branch().unwrap_or_default());
    }
    let h = &req.headers;
    let u = &req.uri;
    // Leading NUL: never equal to a z9hG4bK branch.
    let mut k = String::with_capacity(128);
    let _ = write!(
        k,
        "\0{}:{}@{}:{}\0{}\0{}\0{}\0{}/{}:{}\0{}",
        u.scheme.as_str(),
        u.user.as_deref().unwrap_or(""),
        u.host.to_ascii_lowercase(),
        u.port.unwrap_or(0),
        h.from.tag().unwrap_or(""),
        h.call_id,
        h.cseq.seq,
        via.transport.as_str(),
        via.host.to_ascii_lowercase(),
        via.port.unwrap_or(default_port(via.transport)),
        via.branch().unwrap_or(""),
    );
    Cow::Owned(k)
}

/// The sent-by of a top Via, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentBy {
    host: String,
    port: u16,
}

impl SentBy {
    pub fn of(via: &Via) -> SentBy {
        SentBy {
            host: via.host.to_ascii_lowercase(),
            port: sent_by_port(via),
        }
    }
    pub fn matches(&self, via: &Via) -> bool {
        self.port == sent_by_port(via) && self.host.eq_ignore_ascii_case(&via.host)
    }
}

fn sent_by_port(via: &Via) -> u16 {
    via.port.unwrap_or(default_port(via.transport))
}

/// The method of the server transaction a request would belong to: ACK goes to INVITE.
pub(crate) fn tx_method(m: &Method) -> &Method {
    match m {
        Method::Ack => &Method::Invite,
        m => m,
    }
}

/// §8.2.2.2 key of an out-of-dialog request: From tag, Call-ID, CSeq. None when the
/// request has a To tag (in-dialog requests are never merged).
pub(crate) fn merge_key(req: &Request) -> Option<String> {
    let h = &req.headers;
    if h.to.tag().is_some() {
        return None;
    }
    Some(format!(
        "{}\0{}\0{}\0{}",
        h.from.tag().unwrap_or(""),
        h.call_id,
        h.cseq.seq,
        h.cseq.method.as_str()
    ))
}

/// Key tying an ACK to the 2xx it acknowledges: Call-ID, CSeq number, From tag and
/// To tag. Same shape from the 2xx's headers and from the ACK's.
pub(crate) fn ack_key(h: &Headers) -> String {
    format!(
        "{}\0{}\0{}\0{}",
        h.call_id,
        h.cseq.seq,
        h.from.tag().unwrap_or(""),
        h.to.tag().unwrap_or("")
    )
}
