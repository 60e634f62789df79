//! The printer: `Display` for URIs, name-addrs, Via and whole messages, plus
//! `to_bytes()`.
//!
//! Output is always grammatical whatever the field contents: URI parts are
//! %-escaped per RFC 3261 §19.1.2/§25, display names and header-parameter values are
//! quoted when they are not plain tokens, and CR/LF inside free text is replaced by a
//! space so that no field can inject a header line.

use super::chars::*;
use crate::message::*;
use crate::uri::*;
use std::fmt::{self, Write};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Writes `s`, %-escaping every byte that `allowed` rejects (non-ASCII included).
fn write_escaped<W: Write>(w: &mut W, s: &str, allowed: fn(u8) -> bool) -> fmt::Result {
    let mut run_start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if allowed(b) {
            continue;
        }
        // The run consists of allowed ASCII bytes only, so both ends are char boundaries.
        if run_start < i {
            w.write_str(&s[run_start..i])?;
        }
        w.write_char('%')?;
        w.write_char(HEX[usize::from(b >> 4)] as char)?;
        w.write_char(HEX[usize::from(b & 0xF)] as char)?;
        run_start = i + 1;
    }
    if run_start < s.len() {
        w.write_str(&s[run_start..])?;
    }
    Ok(())
}

/// Writes free header text with any CR/LF turned into a space.
pub(crate) fn write_text<W: Write>(w: &mut W, s: &str) -> fmt::Result {
    if !has_cr_or_lf(s.as_bytes()) {
        return w.write_str(s);
    }
    let mut parts = s.split(['\r', '\n']);
    if let Some(first) = parts.next() {
        w.write_str(first)?;
    }
    for p in parts {
        w.write_char(' ')?;
        w.write_str(p)?;
    }
    Ok(())
}

/// Writes `s` as a quoted-string, escaping `"` and `\` (CR/LF become spaces).
fn write_quoted<W: Write>(w: &mut W, s: &str) -> fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                w.write_char('\\')?;
                w.write_char(c)?;
            }
            '\r' | '\n' => w.write_char(' ')?,
            _ => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

/// `;name[=value]` header parameters (name-addr and Via). Values that are neither
/// plain token/host text nor an already-quoted string get quoted.
fn write_header_params<W: Write>(w: &mut W, params: &[Param]) -> fmt::Result {
    for p in params {
        w.write_char(';')?;
        write_text(w, &p.name)?;
        if let Some(v) = &p.value {
            w.write_char('=')?;
            if v.bytes().all(is_param_value) || is_quoted_string(v) {
                w.write_str(v)?;
            } else {
                write_quoted(w, v)?;
            }
        }
    }
    Ok(())
}

fn write_uri<W: Write>(w: &mut W, u: &Uri) -> fmt::Result {
    w.write_str(u.scheme.as_str())?;
    w.write_char(':')?;
    match u.scheme {
        Scheme::Tel => write_escaped(w, u.user.as_deref().unwrap_or(""), is_tel_number)?,
        Scheme::Sip | Scheme::Sips => {
            if let Some(user) = &u.user {
                write_escaped(w, user, is_user)?;
                if let Some(pw) = &u.password {
                    w.write_char(':')?;
                    write_escaped(w, pw, is_password)?;
                }
                w.write_char('@')?;
            }
            write_text(w, &u.host)?;
            if let Some(port) = u.port {
                write!(w, ":{port}")?;
            }
        }
    }
    for p in &u.params {
        w.write_char(';')?;
        write_escaped(w, &p.name, is_uri_param)?;
        if let Some(v) = &p.value {
            w.write_char('=')?;
            write_escaped(w, v, is_uri_param)?;
        }
    }
    for (i, (name, value)) in u.headers.iter().enumerate() {
        w.write_char(if i == 0 { '?' } else { '&' })?;
        write_escaped(w, name, is_uri_header)?;
        w.write_char('=')?;
        write_escaped(w, value, is_uri_header)?;
    }
    Ok(())
}

/// Always the `name-addr` form (`<...>`), which is never ambiguous (RFC 3261 §20.10).
fn write_name_addr<W: Write>(w: &mut W, na: &NameAddr) -> fmt::Result {
    if let Some(d) = &na.display {
        if is_token_display(d) {
            w.write_str(d)?;
        } else {
            write_quoted(w, d)?;
        }
        w.write_char(' ')?;
    }
    w.write_char('<')?;
    write_uri(w, &na.uri)?;
    w.write_char('>')?;
    write_header_params(w, &na.params)
}

fn write_via<W: Write>(w: &mut W, v: &Via) -> fmt::Result {
    w.write_str("SIP/2.0/")?;
    w.write_str(v.transport.as_str())?;
    w.write_char(' ')?;
    write_text(w, &v.host)?;
    if let Some(port) = v.port {
        write!(w, ":{port}")?;
    }
    write_header_params(w, &v.params)
}

/// Header section in the fixed order documented on [`Headers`], ending with
/// Content-Length and the blank line.
fn write_headers<W: Write>(w: &mut W, h: &Headers, body_len: usize) -> fmt::Result {
    for v in &h.via {
        w.write_str("Via: ")?;
        write_via(w, v)?;
        w.write_str("\r\n")?;
    }
    if let Some(mf) = h.max_forwards {
        write!(w, "Max-Forwards: {mf}\r\n")?;
    }
    w.write_str("From: ")?;
    write_name_addr(w, &h.from)?;
    w.write_str("\r\nTo: ")?;
    write_name_addr(w, &h.to)?;
    w.write_str("\r\nCall-ID: ")?;
    write_text(w, &h.call_id)?;
    write!(w, "\r\nCSeq: {} ", h.cseq.seq)?;
    write_text(w, h.cseq.method.as_str())?;
    w.write_str("\r\n")?;
    for (name, list) in [
        ("Contact: ", &h.contact),
        ("Route: ", &h.route),
        ("Record-Route: ", &h.record_route),
    ] {
        for na in list {
            w.write_str(name)?;
            write_name_addr(w, na)?;
            w.write_str("\r\n")?;
        }
    }
    for (name, value) in &h.extra {
        // The length is always derived from the body; a stray extra would contradict it.
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
            continue;
        }
        write_text(w, name)?;
        w.write_str(": ")?;
        write_text(w, value)?;
        w.write_str("\r\n")?;
    }
    if let Some(ct) = &h.content_type {
        w.write_str("Content-Type: ")?;
        write_text(w, ct)?;
        w.write_str("\r\n")?;
    }
    write!(w, "Content-Length: {body_len}\r\n\r\n")
}

fn write_request_head<W: Write>(w: &mut W, r: &Request) -> fmt::Result {
    write_text(w, r.method.as_str())?;
    w.write_char(' ')?;
    write_uri(w, &r.uri)?;
    w.write_str(" SIP/2.0\r\n")?;
    write_headers(w, &r.headers, r.body.len())
}

fn write_response_head<W: Write>(w: &mut W, r: &Response) -> fmt::Result {
    write!(w, "SIP/2.0 {:03} ", r.status)?;
    write_text(w, &r.reason)?;
    w.write_str("\r\n")?;
    write_headers(w, &r.headers, r.body.len())
}

/// Head printed into a `String`, then the body bytes appended.
fn to_wire(head: impl FnOnce(&mut String) -> fmt::Result, body: &[u8]) -> Vec<u8> {
    let mut s = String::with_capacity(512 + body.len());
    // Writing into a String cannot fail.
    let _ = head(&mut s);
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_uri(f, self)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_name_addr(f, self)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_via(f, self)
    }
}

/// The wire form; a non-UTF-8 body is shown lossily (use `to_bytes` for the wire).
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_request_head(f, self)?;
        f.write_str(&String::from_utf8_lossy(&self.body))
    }
}

/// The wire form; a non-UTF-8 body is shown lossily (use `to_bytes` for the wire).
impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_response_head(f, self)?;
        f.write_str(&String::from_utf8_lossy(&self.body))
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
        to_wire(|s| write_request_head(s, self), &self.body)
    }
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        to_wire(|s| write_response_head(s, self), &self.body)
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
