//! Reading SIP messages from bytes, and writing them back (`Display` impls).
//!
//! CONTRACT (signatures are fixed):
//! - `parse_datagram`: one UDP datagram. Content-Length may be absent (body = rest).
//!   A Content-Length larger than the bytes present is an error (RFC 3261 §18.3); a
//!   smaller one truncates the body.
//! - `frame_stream`: how many bytes of a TCP stream buffer form the next message.
//! - Errors never panic; `ParseError::salvage` carries enough raw header text to
//!   answer a malformed *request* with 400.
//!
//! The parser makes one pass over the header section: it finds the blank line, checks
//! the section is UTF-8, then walks logical header lines (folded continuations joined
//! with one space), dispatching on the case-insensitive name (compact forms included).
//! The typed headers of [`Headers`] are parsed on the spot; the rest go to `extra`
//! under their canonical names. Bare-LF line ends are tolerated. Salvage text is
//! gathered only on the error path, by a second look at the raw lines.
//!
//! Representation choices the printer relies on for stable round trips:
//! - URI parts are stored unescaped and re-escaped on print (`uri.rs`).
//! - Header-parameter values (name-addr, Via) are stored as written; a quoted value
//!   keeps its quotes.
//! - `Contact: *` is kept in `extra`, since a [`NameAddr`] cannot hold it.
//!
//! Submodules: `chars` (grammar character classes), `grammar` (header values),
//! `print` (the printer).

// `ParseError` (reason + salvage) is the shared contract; its size is accepted.
#![allow(clippy::result_large_err)]

use crate::message::*;
use crate::uri::*;
use std::borrow::Cow;
use std::fmt;

mod chars;
mod grammar;
mod print;

use chars::{byte_eq_mask, split_once_byte, word_at};
use grammar::{parse_digits, trim_lws, PResult};

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

impl ParseError {
    fn new(reason: &str) -> Self {
        ParseError {
            reason: reason.to_owned(),
            salvage: None,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseError {}

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
        use fmt::Write;
        let mut reason: String = reason
            .chars()
            .filter(|c| matches!(c, ' '..='~'))
            .take(100)
            .collect();
        if reason.trim().is_empty() {
            reason = "Bad Request".to_owned();
        }
        let mut out = String::with_capacity(256);
        // Writing into a String cannot fail.
        let _ = (|| -> fmt::Result {
            write!(out, "SIP/2.0 400 {}\r\n", reason.trim())?;
            for via in &self.via {
                out.push_str("Via: ");
                print::write_text(&mut out, via)?;
                out.push_str("\r\n");
            }
            out.push_str("From: ");
            print::write_text(&mut out, &self.from)?;
            out.push_str("\r\nTo: ");
            print::write_text(&mut out, &self.to)?;
            let tag: String = to_tag
                .bytes()
                .filter(|&b| chars::is_token(b))
                .map(char::from)
                .collect();
            if !tag.is_empty() && !raw_has_tag(&self.to) {
                write!(out, ";tag={tag}")?;
            }
            out.push_str("\r\nCall-ID: ");
            print::write_text(&mut out, &self.call_id)?;
            out.push_str("\r\nCSeq: ");
            print::write_text(&mut out, &self.cseq)?;
            out.push_str("\r\nContent-Length: 0\r\n\r\n");
            Ok(())
        })();
        out.into_bytes()
    }
}

/// Whether a raw To value already carries a `tag` parameter. Falls back to a plain
/// scan of the header-parameter part when the value does not parse.
fn raw_has_tag(to: &str) -> bool {
    if let Ok(na) = grammar::parse_name_addr(to) {
        return na.tag().is_some();
    }
    let params = match to.rfind('>') {
        Some(i) => &to[i + 1..],
        None => split_once_byte(to, b';').map_or("", |(_, p)| p),
    };
    params
        .split(';')
        .any(|p| trim_lws(p.split('=').next().unwrap_or("")).eq_ignore_ascii_case("tag"))
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
    let keepalive = leading_crlf_len(buf);
    if keepalive > 0 {
        return Ok(Frame::KeepAlive(keepalive));
    }
    let Some(HeadEnd {
        head_end,
        body_start,
        ..
    }) = find_head_end(buf)
    else {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(error_with_salvage("Message Too Large", buf));
        }
        return Ok(Frame::Incomplete);
    };
    let head = &buf[..head_end];
    let content_length = match stream_content_length(head) {
        Ok(Some(n)) => n,
        Ok(None) => return Err(error_with_salvage("Missing Content-Length", head)),
        Err(reason) => return Err(error_with_salvage(reason, head)),
    };
    match body_start.checked_add(content_length) {
        Some(total) if total <= MAX_MESSAGE_SIZE => Ok(if buf.len() < total {
            Frame::Incomplete
        } else {
            Frame::Message(total)
        }),
        _ => Err(error_with_salvage("Message Too Large", head)),
    }
}

/// Parses one UDP datagram.
pub fn parse_datagram(buf: &[u8]) -> Result<Message, ParseError> {
    parse_message(buf, false)
}

/// Parses one message already framed by `frame_stream`.
pub fn parse_stream_message(buf: &[u8]) -> Result<Message, ParseError> {
    parse_message(buf, true)
}

pub fn parse_uri(s: &str) -> Result<Uri, ParseError> {
    grammar::parse_uri(s).map_err(ParseError::new)
}

pub fn parse_name_addr(s: &str) -> Result<NameAddr, ParseError> {
    grammar::parse_name_addr(s).map_err(ParseError::new)
}

/// Parses a Via header value, which may hold several comma-separated entries.
pub fn parse_via(s: &str) -> Result<Vec<Via>, ParseError> {
    let mut out = Vec::new();
    grammar::parse_via_into(s, &mut out).map_err(ParseError::new)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Framing helpers

/// CR/LF bytes before a start line: keep-alives on streams, ignorable on datagrams
/// (RFC 3261 §7.5).
fn leading_crlf_len(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Where the header section ends, found in one pass over its bytes.
struct HeadEnd {
    /// End of the last header line, its LF included.
    head_end: usize,
    /// Start of the body, just past the blank line.
    body_start: usize,
    /// A CR not followed by LF occurred in the header section.
    stray_cr: bool,
}

/// Position of the first LF, scanning a word at a time.
fn find_lf(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(w) = word_at(buf, i) {
        let m = byte_eq_mask(w, b'\n');
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    buf.get(i..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| i + p)
}

/// Locates the blank line ending the header section (CRLF or bare-LF line ends),
/// skipping a word at a time over bytes that are neither CR nor LF.
fn find_head_end(buf: &[u8]) -> Option<HeadEnd> {
    let mut stray_cr = false;
    let mut i = 0;
    while i < buf.len() {
        if let Some(w) = word_at(buf, i) {
            let m = byte_eq_mask(w, b'\n') | byte_eq_mask(w, b'\r');
            if m == 0 {
                i += 8;
                continue;
            }
            i += (m.trailing_zeros() / 8) as usize;
        }
        let b = buf[i];
        match b {
            b'\n' => match buf.get(i + 1) {
                Some(b'\n') => {
                    return Some(HeadEnd {
                        head_end: i + 1,
                        body_start: i + 2,
                        stray_cr,
                    })
                }
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => {
                    return Some(HeadEnd {
                        head_end: i + 1,
                        body_start: i + 3,
                        stray_cr,
                    })
                }
                _ => {}
            },
            b'\r' if buf.get(i + 1) != Some(&b'\n') => stray_cr = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The Content-Length of a raw header section, for framing without a full parse.
/// Skips the start line and continuation lines, as the full parser would.
fn stream_content_length(head: &[u8]) -> PResult<Option<usize>> {
    let mut found = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        if line.first().is_some_and(|&b| chars::is_lws(b)) {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = std::str::from_utf8(&line[colon + 1..]).map_err(|_| "Bad Content-Length")?;
        let n: usize = parse_digits(value.trim_ascii()).ok_or("Bad Content-Length")?;
        if found.is_some_and(|prev| prev != n) {
            return Err("Conflicting Content-Length");
        }
        found = Some(n);
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------
// Header lines

/// Next physical line (without its CRLF/LF) of a header section.
fn next_line<'a>(rest: &mut &'a str) -> Option<&'a str> {
    if rest.is_empty() {
        return None;
    }
    let (line, tail) = match find_lf(rest.as_bytes()) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (*rest, ""),
    };
    *rest = tail;
    Some(line.strip_suffix('\r').unwrap_or(line))
}

/// Logical header lines: continuation lines (leading SP/HTAB) are unfolded with a
/// single space. Borrowed unless folding happened.
struct HeaderLines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for HeaderLines<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let first = next_line(&mut self.rest)?;
        if !self.rest.starts_with([' ', '\t']) {
            return Some(Cow::Borrowed(first));
        }
        let mut joined = first.trim_end_matches([' ', '\t']).to_owned();
        while self.rest.starts_with([' ', '\t']) {
            let cont = trim_lws(next_line(&mut self.rest).unwrap_or(""));
            if !cont.is_empty() {
                joined.push(' ');
                joined.push_str(cont);
            }
        }
        Some(Cow::Owned(joined))
    }
}

/// Headers with a typed home in [`Headers`] (or special handling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Via,
    MaxForwards,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    Route,
    RecordRoute,
    ContentType,
    ContentLength,
    Extra,
}

/// (canonical name, compact form, kind), most frequent first since lookup is a
/// linear scan. Unknown names are kept as written.
const KNOWN_HEADERS: &[(&str, Option<char>, Kind)] = &[
    ("Via", Some('v'), Kind::Via),
    ("From", Some('f'), Kind::From),
    ("To", Some('t'), Kind::To),
    ("Call-ID", Some('i'), Kind::CallId),
    ("CSeq", None, Kind::CSeq),
    ("Max-Forwards", None, Kind::MaxForwards),
    ("Contact", Some('m'), Kind::Contact),
    ("Content-Length", Some('l'), Kind::ContentLength),
    ("Content-Type", Some('c'), Kind::ContentType),
    ("Route", None, Kind::Route),
    ("Record-Route", None, Kind::RecordRoute),
    ("Allow", None, Kind::Extra),
    ("Supported", Some('k'), Kind::Extra),
    ("User-Agent", None, Kind::Extra),
    ("Server", None, Kind::Extra),
    ("Expires", None, Kind::Extra),
    ("Require", None, Kind::Extra),
    ("Session-Expires", Some('x'), Kind::Extra),
    ("Min-SE", None, Kind::Extra),
    ("Allow-Events", Some('u'), Kind::Extra),
    ("Event", Some('o'), Kind::Extra),
    ("Subscription-State", None, Kind::Extra),
    ("Accept", None, Kind::Extra),
    ("Authorization", None, Kind::Extra),
    ("Proxy-Authorization", None, Kind::Extra),
    ("WWW-Authenticate", None, Kind::Extra),
    ("Proxy-Authenticate", None, Kind::Extra),
    ("RSeq", None, Kind::Extra),
    ("RAck", None, Kind::Extra),
    ("Reason", None, Kind::Extra),
    ("Privacy", None, Kind::Extra),
    ("P-Asserted-Identity", None, Kind::Extra),
    ("Date", None, Kind::Extra),
    ("Content-Encoding", Some('e'), Kind::Extra),
    ("Subject", Some('s'), Kind::Extra),
    ("Refer-To", Some('r'), Kind::Extra),
    ("Referred-By", Some('b'), Kind::Extra),
    ("Identity", Some('y'), Kind::Extra),
    ("Accept-Encoding", None, Kind::Extra),
    ("Accept-Language", None, Kind::Extra),
    ("Alert-Info", None, Kind::Extra),
    ("Authentication-Info", None, Kind::Extra),
    ("Call-Info", None, Kind::Extra),
    ("Content-Disposition", None, Kind::Extra),
    ("Content-Language", None, Kind::Extra),
    ("Error-Info", None, Kind::Extra),
    ("In-Reply-To", None, Kind::Extra),
    ("MIME-Version", None, Kind::Extra),
    ("Min-Expires", None, Kind::Extra),
    ("Organization", None, Kind::Extra),
    ("Path", None, Kind::Extra),
    ("Priority", None, Kind::Extra),
    ("Proxy-Require", None, Kind::Extra),
    ("Replaces", None, Kind::Extra),
    ("Reply-To", None, Kind::Extra),
    ("Retry-After", None, Kind::Extra),
    ("Timestamp", None, Kind::Extra),
    ("Unsupported", None, Kind::Extra),
    ("Warning", None, Kind::Extra),
];

/// Canonical name and kind of a header name as written.
fn classify(name: &str) -> (Cow<'_, str>, Kind) {
    let found = if name.len() == 1 {
        let c = char::from(name.as_bytes()[0].to_ascii_lowercase());
        KNOWN_HEADERS.iter().find(|h| h.1 == Some(c))
    } else {
        KNOWN_HEADERS
            .iter()
            .find(|h| h.0.eq_ignore_ascii_case(name))
    };
    match found {
        Some(&(canonical, _, kind)) => (Cow::Borrowed(canonical), kind),
        None => (Cow::Borrowed(name), Kind::Extra),
    }
}

/// Splits `Name: value` (whitespace allowed before the colon, none before the name).
fn split_header(line: &str) -> PResult<(&str, &str)> {
    let (name, value) = split_once_byte(line, b':').ok_or("Malformed Header Line")?;
    let name = name.trim_end_matches([' ', '\t']);
    if !chars::is_token_str(name) {
        return Err("Malformed Header Name");
    }
    Ok((name, trim_lws(value)))
}

// ---------------------------------------------------------------------------------
// Message parsing

fn error_with_salvage(reason: &str, head: &[u8]) -> ParseError {
    let head = String::from_utf8_lossy(head);
    ParseError {
        reason: reason.to_owned(),
        salvage: salvage_from_head(&head),
    }
}

/// Raw Via/From/To/Call-ID/CSeq text of something that looks like a request.
fn salvage_from_head(head: &str) -> Option<Salvage> {
    let head = &head[leading_crlf_len(head.as_bytes())..];
    let mut rest = head;
    let start_line = next_line(&mut rest)?;
    if start_line
        .get(..4)
        .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
    {
        return None; // a response: never answered
    }
    let mut via = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in (HeaderLines { rest }) {
        if line.is_empty() {
            break; // end of the header section
        }
        let Ok((name, value)) = split_header(&line) else {
            continue;
        };
        let slot = match classify(name).1 {
            Kind::Via => {
                via.push(value.to_owned());
                continue;
            }
            Kind::From => &mut from,
            Kind::To => &mut to,
            Kind::CallId => &mut call_id,
            Kind::CSeq => &mut cseq,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.to_owned());
    }
    if via.is_empty() {
        return None;
    }
    Some(Salvage {
        via,
        from: from?,
        to: to?,
        call_id: call_id?,
        cseq: cseq?,
    })
}

enum StartLine {
    Request(Method, Uri),
    Response(u16, String),
}

fn parse_start_line(line: &str) -> PResult<StartLine> {
    if line
        .get(..4)
        .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
    {
        let (version, rest) = split_once_byte(line, b' ').unwrap_or((line, ""));
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err("Version Not Supported");
        }
        let (code, reason) = split_once_byte(rest, b' ').unwrap_or((rest, ""));
        let status = match parse_digits::<u16>(code) {
            Some(s) if code.len() == 3 && (100..=699).contains(&s) => s,
            _ => return Err("Bad Status Code"),
        };
        return Ok(StartLine::Response(status, reason.to_owned()));
    }
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Bad Request-Line");
    };
    if !chars::is_token_str(method) {
        return Err("Bad Method");
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(
            if version
                .get(..4)
                .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
            {
                "Version Not Supported"
            } else {
                "Bad Request-Line"
            },
        );
    }
    let uri = grammar::parse_uri(uri).map_err(|e| match e {
        "Unsupported URI Scheme" => e,
        _ => "Bad Request-URI",
    })?;
    Ok(StartLine::Request(Method::from_token(method), uri))
}

fn parse_cseq(value: &str) -> PResult<CSeq> {
    let (num, method) = value.split_once([' ', '\t']).ok_or("Bad CSeq")?;
    let seq = parse_digits(num).ok_or("Bad CSeq")?;
    let method = trim_lws(method);
    if !chars::is_token_str(method) {
        return Err("Bad CSeq");
    }
    Ok(CSeq {
        seq,
        method: Method::from_token(method),
    })
}

/// Headers being collected; checked for completeness at the end.
#[derive(Default)]
struct HeaderSet {
    via: Vec<Via>,
    from: Option<NameAddr>,
    to: Option<NameAddr>,
    call_id: Option<String>,
    cseq: Option<CSeq>,
    max_forwards: Option<u32>,
    contact: Vec<NameAddr>,
    route: Vec<NameAddr>,
    record_route: Vec<NameAddr>,
    content_type: Option<String>,
    content_length: Option<usize>,
    extra: Vec<(String, String)>,
}

/// Stores a single-instance header, refusing a second occurrence.
fn set_once<T>(slot: &mut Option<T>, value: T, duplicate: &'static str) -> PResult<()> {
    if slot.is_some() {
        return Err(duplicate);
    }
    *slot = Some(value);
    Ok(())
}

impl HeaderSet {
    fn add(&mut self, line: &str) -> PResult<()> {
        let (name, value) = split_header(line)?;
        let (canonical, kind) = classify(name);
        match kind {
            Kind::Via => grammar::parse_via_into(value, &mut self.via)?,
            Kind::From => {
                let v = grammar::parse_name_addr(value).map_err(|_| "Bad From")?;
                set_once(&mut self.from, v, "Duplicate From")?
            }
            Kind::To => {
                let v = grammar::parse_name_addr(value).map_err(|_| "Bad To")?;
                set_once(&mut self.to, v, "Duplicate To")?
            }
            Kind::CallId => {
                if value.is_empty() {
                    return Err("Bad Call-ID");
                }
                set_once(&mut self.call_id, value.to_owned(), "Duplicate Call-ID")?
            }
            Kind::CSeq => set_once(&mut self.cseq, parse_cseq(value)?, "Duplicate CSeq")?,
            Kind::MaxForwards => {
                let v = parse_digits(value).ok_or("Bad Max-Forwards")?;
                set_once(&mut self.max_forwards, v, "Duplicate Max-Forwards")?
            }
            Kind::Contact if value == "*" => {
                self.extra.push((canonical.into_owned(), value.to_owned()))
            }
            Kind::Contact => grammar::parse_name_addr_list(value, &mut self.contact)
                .map_err(|_| "Bad Contact")?,
            Kind::Route => {
                grammar::parse_name_addr_list(value, &mut self.route).map_err(|_| "Bad Route")?
            }
            Kind::RecordRoute => grammar::parse_name_addr_list(value, &mut self.record_route)
                .map_err(|_| "Bad Record-Route")?,
            Kind::ContentType => {
                if value.is_empty() {
                    return Err("Bad Content-Type");
                }
                set_once(
                    &mut self.content_type,
                    value.to_owned(),
                    "Duplicate Content-Type",
                )?
            }
            Kind::ContentLength => {
                let v = parse_digits(value).ok_or("Bad Content-Length")?;
                set_once(&mut self.content_length, v, "Duplicate Content-Length")?
            }
            Kind::Extra => self.extra.push((canonical.into_owned(), value.to_owned())),
        }
        Ok(())
    }

    fn finish(self) -> PResult<Headers> {
        if self.via.is_empty() {
            return Err("Missing Via");
        }
        Ok(Headers {
            via: self.via,
            from: self.from.ok_or("Missing From")?,
            to: self.to.ok_or("Missing To")?,
            call_id: self.call_id.ok_or("Missing Call-ID")?,
            cseq: self.cseq.ok_or("Missing CSeq")?,
            max_forwards: self.max_forwards,
            contact: self.contact,
            route: self.route,
            record_route: self.record_route,
            content_type: self.content_type,
            extra: self.extra,
        })
    }
}

fn parse_message(buf: &[u8], stream: bool) -> Result<Message, ParseError> {
    let buf = &buf[leading_crlf_len(buf)..];
    let fail = |reason: &str, head: &[u8]| Err(error_with_salvage(reason, head));
    if buf.len() > MAX_MESSAGE_SIZE {
        let head_end = find_head_end(buf).map_or(MAX_MESSAGE_SIZE, |h| h.head_end);
        return fail("Message Too Large", &buf[..head_end]);
    }
    if buf.is_empty() {
        return Err(ParseError::new("Empty Message"));
    }
    let Some(HeadEnd {
        head_end,
        body_start,
        stray_cr,
    }) = find_head_end(buf)
    else {
        return fail("Incomplete Header Section", buf);
    };
    let head_bytes = &buf[..head_end];
    if stray_cr {
        // A CR is only allowed as part of a line end.
        return fail("Stray CR In Header", head_bytes);
    }
    let Ok(head) = std::str::from_utf8(head_bytes) else {
        return fail("Header Section Not UTF-8", head_bytes);
    };
    match parse_head_and_body(head, &buf[body_start..], stream) {
        Ok(msg) => Ok(msg),
        Err(reason) => fail(reason, head_bytes),
    }
}

fn parse_head_and_body(head: &str, rest: &[u8], stream: bool) -> PResult<Message> {
    let mut lines = head;
    let start = parse_start_line(next_line(&mut lines).unwrap_or(""))?;
    let mut set = HeaderSet::default();
    for line in (HeaderLines { rest: lines }) {
        set.add(&line)?;
    }
    let body_len = match set.content_length {
        Some(n) if n > rest.len() => return Err("Content-Length Too Big"),
        Some(n) => n,
        None if stream => return Err("Missing Content-Length"),
        None => rest.len(),
    };
    let headers = set.finish()?;
    let body = rest[..body_len].to_vec();
    Ok(match start {
        StartLine::Request(method, uri) => {
            if headers.cseq.method != method {
                return Err("CSeq Method Mismatch");
            }
            Message::Request(Request {
                method,
                uri,
                headers,
                body,
            })
        }
        StartLine::Response(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_head_end(buf: &[u8]) -> Option<(usize, usize, bool)> {
        let mut stray_cr = false;
        for i in 0..buf.len() {
            if buf[i] == b'\n' {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some((i + 1, i + 2, stray_cr));
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some((i + 1, i + 3, stray_cr));
                }
            } else if buf[i] == b'\r' && buf.get(i + 1) != Some(&b'\n') {
                stray_cr = true;
            }
        }
        None
    }

    /// The word-at-a-time scanners agree with byte-by-byte ones on CR/LF-dense input.
    #[test]
    fn swar_scans_match_naive() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    [b'\r', b'\n', b'a', 0x8d, 0x0a ^ 0x80, b' '][(x % 6) as usize]
                })
                .collect();
            let got = find_head_end(&buf).map(|h| (h.head_end, h.body_start, h.stray_cr));
            assert_eq!(got, naive_head_end(&buf), "{buf:?}");
            assert_eq!(
                find_lf(&buf),
                buf.iter().position(|&b| b == b'\n'),
                "{buf:?}"
            );
            assert_eq!(
                chars::has_cr_or_lf(&buf),
                buf.iter().any(|&b| b == b'\r' || b == b'\n')
            );
        }
    }

    #[test]
    fn header_lines_unfold() {
        let lines: Vec<_> = HeaderLines {
            rest: "A: 1\r\n 2\r\n\t3 \r\nB:x\nC:\r\n  \r\n y\r\n",
        }
        .collect();
        assert_eq!(lines, ["A: 1 2 3", "B:x", "C: y"]);
        assert_eq!(classify("v"), (Cow::Borrowed("Via"), Kind::Via));
        assert_eq!(
            classify("CALL-id"),
            (Cow::Borrowed("Call-ID"), Kind::CallId)
        );
        assert_eq!(classify("X-Thing"), (Cow::Borrowed("X-Thing"), Kind::Extra));
    }
}
