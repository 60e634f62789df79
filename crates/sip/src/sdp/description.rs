//! The SDP data model (RFC 8866 §5), its parser and its printer.
//!
//! The lines an audio call needs are typed (`o=`, `c=`, `b=`, `t=`, `m=`, `a=`); the
//! rarely used ones (`i=`, `u=`, `e=`, `p=`, `z=`, `k=`, `r=`) are kept as text; lines of
//! unknown type are kept verbatim in `other_lines`. Printing writes the fields in the
//! RFC 8866 §5 order with CRLF line ends, so a description received in that order (which
//! is what real clients send) prints back byte for byte apart from line ends and
//! trailing whitespace, and `parse(print(d)) == d` always holds.

use super::codec::{parse_payload_type, Codec, Direction};
use super::SdpError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A whole session description: session-level lines, then one [`MediaDescription`] per
/// `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    pub origin: Origin,
    /// `s=`; `-` when there is no meaningful name.
    pub session_name: String,
    /// `i=`
    pub information: Option<String>,
    /// `u=`
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`, the default for media without their own.
    pub connection: Option<Connection>,
    pub bandwidth: Vec<Bandwidth>,
    /// `t=` lines with their `r=` lines. Almost always one `t=0 0`.
    pub times: Vec<Timing>,
    /// `z=`
    pub time_zones: Option<String>,
    /// `k=` (obsolete, RFC 8866 §5.12).
    pub key: Option<String>,
    /// Lines of a type RFC 8866 does not define, verbatim, printed before the attributes.
    pub other_lines: Vec<Line>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
/// (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
    /// `IN`
    pub net_type: String,
    /// `IP4` or `IP6`
    pub addr_type: String,
    pub address: String,
}

impl Origin {
    pub fn new(
        username: impl Into<String>,
        session_id: u64,
        session_version: u64,
        ip: IpAddr,
    ) -> Origin {
        let c = Connection::from_ip(ip);
        Origin {
            username: username.into(),
            session_id,
            session_version,
            net_type: c.net_type,
            addr_type: c.addr_type,
            address: c.address,
        }
    }
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    /// As written: an IP literal, possibly with a multicast `/ttl[/count]` suffix, or an FQDN.
    pub address: String,
}

impl Connection {
    /// `IN IP4 <ip>` or `IN IP6 <ip>`.
    pub fn from_ip(ip: IpAddr) -> Connection {
        let addr_type = if ip.is_ipv4() { "IP4" } else { "IP6" };
        Connection { net_type: "IN".into(), addr_type: addr_type.into(), address: ip.to_string() }
    }

    /// The address as an IP, ignoring any multicast suffix. `None` for an FQDN (this
    /// crate does no DNS) or anything unparseable.
    pub fn ip(&self) -> Option<IpAddr> {
        let host = self.address.split('/').next().unwrap_or("");
        host.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .or_else(|_| host.parse::<Ipv6Addr>().map(IpAddr::V6))
            .ok()
    }

    /// `0.0.0.0` (or `::`): the RFC 2543 way of putting a call on hold, meaning "send me
    /// no RTP or RTCP" (RFC 3264 §8.4).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8): `AS`, `CT`, `TIAS` (RFC 3890), ...
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bandwidth {
    pub bw_type: String,
    pub value: u64,
}

/// `t=<start-time> <stop-time>` and its `r=` lines (RFC 8866 §5.9, §5.10).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
    /// `r=` values, verbatim.
    pub repeats: Vec<String>,
}

impl Timing {
    /// `t=0 0`: a permanent session, what every SIP call uses.
    pub fn permanent() -> Timing {
        Timing::default()
    }
}

/// `a=<name>` or `a=<name>:<value>` (RFC 8866 §5.13). `value` is `None` for a property
/// attribute like `a=sendrecv`, `Some("")` for `a=name:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Attribute {
        Attribute { name: name.into(), value: Some(value.into()) }
    }
    pub fn flag(name: impl Into<String>) -> Attribute {
        Attribute { name: name.into(), value: None }
    }
}

/// A line of a type this parser does not know, e.g. `y=` (RFC 8866 §5: ignored, but we
/// keep it so that relaying a description loses nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: char,
    pub value: String,
}

/// One media section: the `m=` line and the lines after it up to the next `m=`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaDescription {
    /// `audio`, `video`, `text`, `application`, `message`, or anything else.
    pub kind: String,
    /// 0 means the stream is disabled/rejected (RFC 3264 §5.1, §6).
    pub port: u16,
    /// The `/<number of ports>` suffix, if written.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub protocol: String,
    /// Payload type numbers for RTP; opaque tokens otherwise.
    pub formats: Vec<String>,
    /// `i=`
    pub information: Option<String>,
    /// Media-level `c=`; overrides the session-level one. A second `c=` (multicast
    /// layering) lands in `other_lines`.
    pub connection: Option<Connection>,
    pub bandwidth: Vec<Bandwidth>,
    /// `k=`
    pub key: Option<String>,
    pub other_lines: Vec<Line>,
    pub attributes: Vec<Attribute>,
}

/// Attribute lookup shared by the session and media levels.
fn find_attribute<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn attrs_direction(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .find_map(|a| a.value.is_none().then(|| Direction::from_attribute(&a.name)).flatten())
}

/// `a=ptime:20`, tolerating a fractional value like `20.0` (rounded down).
fn parse_millis(value: &str) -> Option<u32> {
    let v = value.trim();
    v.parse::<u32>().ok().or_else(|| {
        let f = v.parse::<f64>().ok()?;
        (f.is_finite() && f >= 0.0 && f < u32::MAX as f64).then_some(f as u32)
    })
}

impl MediaDescription {
    pub fn new(
        kind: impl Into<String>,
        port: u16,
        protocol: impl Into<String>,
    ) -> MediaDescription {
        MediaDescription {
            kind: kind.into(),
            port,
            protocol: protocol.into(),
            ..Default::default()
        }
    }

    pub fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// Plain RTP, with or without RTCP feedback (`RTP/AVP`, `RTP/AVPF`): the profiles we
    /// can terminate. SRTP and DTLS-SRTP profiles are not.
    pub fn is_plain_rtp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/AVP")
            || self.protocol.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// First attribute called `name` (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find_attribute(&self.attributes, name)
    }

    /// Value of the first attribute called `name` that has one.
    pub fn attribute_value(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case(name))
            .find_map(|a| a.value.as_deref())
    }

    pub fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// The media-level direction attribute, if any (see [`SessionDescription::direction_of`]
    /// for the effective one).
    pub fn direction(&self) -> Option<Direction> {
        attrs_direction(&self.attributes)
    }

    /// Replaces any direction attributes with `dir`.
    pub fn set_direction(&mut self, dir: Direction) {
        self.attributes
            .retain(|a| !(a.value.is_none() && Direction::from_attribute(&a.name).is_some()));
        self.attributes.push(Attribute::flag(dir.as_str()));
    }

    /// `a=ptime` in milliseconds (RFC 8866 §6.4).
    pub fn ptime(&self) -> Option<u32> {
        self.attribute_value("ptime").and_then(parse_millis).filter(|p| *p > 0)
    }

    /// `a=maxptime` in milliseconds (RFC 8866 §6.5).
    pub fn maxptime(&self) -> Option<u32> {
        self.attribute_value("maxptime").and_then(parse_millis).filter(|p| *p > 0)
    }

    /// The `a=rtpmap` for payload type `pt`, if present and well formed.
    pub fn rtpmap(&self, pt: u8) -> Option<Codec> {
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|a| Codec::from_rtpmap(a.value.as_deref()?))
            .find(|c| c.payload_type == pt)
    }

    /// The `a=fmtp` parameters for payload type `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes.iter().filter(|a| a.name.eq_ignore_ascii_case("fmtp")).find_map(|a| {
            let (p, params) =
                a.value.as_deref()?.trim_start().split_once(|c: char| c.is_ascii_whitespace())?;
            (parse_payload_type(p)? == pt).then(|| params.trim())
        })
    }

    /// The formats of this m-line resolved to codecs, in `m=` order (the sender's
    /// preference, RFC 3264 §5.1): `a=rtpmap` first, else the RFC 3551 static table.
    /// Dynamic types without an rtpmap, and non-numeric formats, are skipped.
    pub fn codecs(&self) -> Vec<Codec> {
        let mut out: Vec<Codec> = Vec::new();
        for f in &self.formats {
            let Some(pt) = parse_payload_type(f) else { continue };
            if out.iter().any(|c| c.payload_type == pt) {
                continue;
            }
            let Some(mut codec) = self.rtpmap(pt).or_else(|| Codec::from_static(pt)) else {
                continue;
            };
            codec.fmtp = self.fmtp(pt).map(str::to_owned);
            out.push(codec);
        }
        out
    }

    /// Adds the format with its `a=rtpmap` and, if it has parameters, `a=fmtp`.
    pub fn push_codec(&mut self, codec: &Codec) {
        self.formats.push(codec.payload_type.to_string());
        self.attributes.push(Attribute::new("rtpmap", codec.rtpmap_value()));
        if let Some(f) = &codec.fmtp {
            self.attributes.push(Attribute::new("fmtp", format!("{} {}", codec.payload_type, f)));
        }
    }
}

/// The essentials of one audio stream as the remote side described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    /// Where to send RTP: the media (else session) `c=` address and the `m=` port.
    /// `None` when the port is 0 (stream disabled), the address is `0.0.0.0`/`::`
    /// (RFC 2543 hold) or not an IP literal.
    pub addr: Option<SocketAddr>,
    /// Where to send RTCP without multiplexing: `a=rtcp` (RFC 3605) if present, else RTP
    /// port + 1. (Our answers never accept `a=rtcp-mux`, and RFC 5761 §5.1.1 then has
    /// the offerer fall back to this address.)
    pub rtcp: Option<SocketAddr>,
    /// `a=rtcp-mux` (RFC 5761) was present: the writer can take RTCP on the RTP port.
    pub rtcp_mux: bool,
    /// Formats in the writer's order of preference, telephone-event and CN included.
    pub codecs: Vec<Codec>,
    /// The writer's direction: the media-level attribute, else the session-level one,
    /// else sendrecv (RFC 8866 §6.7). A `0.0.0.0` connection address folds in as "does
    /// not receive" (RFC 3264 §8.4), so an RFC 2543 hold reads as sendonly.
    pub direction: Direction,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
}

impl AudioInfo {
    /// Formats usable as the stream's codec: everything but telephone-event, CN & co.
    pub fn voice_codecs(&self) -> impl Iterator<Item = &Codec> {
        self.codecs.iter().filter(|c| !c.is_auxiliary())
    }

    /// The telephone-event format to pair with a codec clocked at `clock_rate`: one at
    /// the same rate (RFC 4733 §2.1 wants the event clock to match the audio clock),
    /// else one at 8000, else none.
    pub fn telephone_event_for(&self, clock_rate: u32) -> Option<&Codec> {
        let events = || self.codecs.iter().filter(|c| c.is_telephone_event());
        events()
            .find(|c| c.clock_rate == clock_rate)
            .or_else(|| events().find(|c| c.clock_rate == 8000))
    }
}

impl SessionDescription {
    /// Parses a description. Tolerates LF or CRLF line ends, blank lines, trailing
    /// whitespace, lines of unknown type and missing `s=`/`t=`; rejects anything not
    /// starting with `v=0`, a missing or malformed `o=`, malformed `c=`/`b=`/`t=`/`m=`
    /// lines, and session-only lines inside a media section.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        parse(text)
    }

    /// First attribute called `name` at session level (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find_attribute(&self.attributes, name)
    }

    /// The effective connection of media section `m`: its own `c=`, else the session's.
    pub fn connection_of<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }

    /// The effective direction attribute of media section `m`: its own, else the
    /// session-level one, else sendrecv. (Does not consider `c=0.0.0.0`; see [`AudioInfo`].)
    pub fn direction_of(&self, m: &MediaDescription) -> Direction {
        m.direction().or_else(|| attrs_direction(&self.attributes)).unwrap_or_default()
    }

    /// First audio m-line's negotiated essentials.
    pub fn audio(&self) -> Option<AudioInfo> {
        let index = self.media.iter().position(MediaDescription::is_audio)?;
        self.media_info(index)
    }

    /// The [`AudioInfo`] view of media section `index` (of any kind).
    pub fn media_info(&self, index: usize) -> Option<AudioInfo> {
        let m = self.media.get(index)?;
        let conn = self.connection_of(m);
        let ip = conn.and_then(Connection::ip).filter(|ip| !ip.is_unspecified());
        let addr = ip.filter(|_| m.port != 0).map(|ip| SocketAddr::new(ip, m.port));
        let rtcp_mux = m.has_attribute("rtcp-mux");
        let rtcp = match (addr, m.attribute_value("rtcp").and_then(parse_rtcp_attribute)) {
            (None, _) => None,
            (Some(a), Some((port, ip))) => Some(SocketAddr::new(ip.unwrap_or(a.ip()), port)),
            (Some(a), None) => a.port().checked_add(1).map(|p| SocketAddr::new(a.ip(), p)),
        };
        let mut direction = self.direction_of(m);
        if conn.is_some_and(Connection::is_unspecified) {
            direction = Direction::from_flags(direction.sends(), false);
        }
        Some(AudioInfo {
            addr,
            rtcp,
            rtcp_mux,
            codecs: m.codecs(),
            direction,
            ptime: m.ptime(),
            maxptime: m.maxptime(),
        })
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605 §2.1).
fn parse_rtcp_attribute(value: &str) -> Option<(u16, Option<IpAddr>)> {
    let mut it = value.split_ascii_whitespace();
    let port = it.next()?.parse::<u16>().ok().filter(|p| *p != 0)?;
    let ip = match (it.next(), it.next(), it.next()) {
        (Some(n), Some(a), Some(addr)) => {
            Connection { net_type: n.into(), addr_type: a.into(), address: addr.into() }.ip()
        }
        _ => None,
    };
    Some((port, ip))
}

// ---------------------------------------------------------------------------------------
// Parsing

fn perr(line: usize, msg: impl fmt::Display) -> SdpError {
    SdpError::Parse(format!("line {line}: {msg}"))
}

/// Splits `x=value` into its type letter and value.
fn split_line(n: usize, line: &str) -> Result<(char, &str), SdpError> {
    let b = line.as_bytes();
    if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_alphabetic() {
        return Err(perr(n, "not a <type>=<value> line"));
    }
    Ok((b[0] as char, &line[2..]))
}

fn parse_u64(n: usize, what: &str, s: &str) -> Result<u64, SdpError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(perr(n, format_args!("{what} is not a number")));
    }
    s.parse().map_err(|_| perr(n, format_args!("{what} out of range")))
}

fn parse_origin(n: usize, v: &str) -> Result<Origin, SdpError> {
    let t: Vec<&str> = v.split_ascii_whitespace().collect();
    let [username, id, version, net_type, addr_type, address] = t[..] else {
        return Err(perr(n, "o= needs 6 fields"));
    };
    Ok(Origin {
        username: username.into(),
        session_id: parse_u64(n, "sess-id", id)?,
        session_version: parse_u64(n, "sess-version", version)?,
        net_type: net_type.into(),
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn parse_connection(n: usize, v: &str) -> Result<Connection, SdpError> {
    let t: Vec<&str> = v.split_ascii_whitespace().collect();
    let [net_type, addr_type, address] = t[..] else {
        return Err(perr(n, "c= needs 3 fields"));
    };
    Ok(Connection {
        net_type: net_type.into(),
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn parse_bandwidth(n: usize, v: &str) -> Result<Bandwidth, SdpError> {
    let (t, value) = v.split_once(':').ok_or_else(|| perr(n, "b= needs <type>:<value>"))?;
    let t = t.trim();
    if t.is_empty() || t.contains(char::is_whitespace) {
        return Err(perr(n, "bad b= type"));
    }
    Ok(Bandwidth { bw_type: t.into(), value: parse_u64(n, "bandwidth", value.trim())? })
}

fn parse_timing(n: usize, v: &str) -> Result<Timing, SdpError> {
    let t: Vec<&str> = v.split_ascii_whitespace().collect();
    let [start, stop] = t[..] else {
        return Err(perr(n, "t= needs 2 fields"));
    };
    Ok(Timing {
        start: parse_u64(n, "start time", start)?,
        stop: parse_u64(n, "stop time", stop)?,
        repeats: Vec::new(),
    })
}

fn parse_media(n: usize, v: &str) -> Result<MediaDescription, SdpError> {
    let mut t = v.split_ascii_whitespace();
    let (Some(kind), Some(port_spec), Some(protocol)) = (t.next(), t.next(), t.next()) else {
        return Err(perr(n, "m= needs <media> <port> <proto> <fmt>..."));
    };
    let num = |s: &str| -> Result<u16, SdpError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(perr(n, "bad m= port"));
        }
        s.parse().map_err(|_| perr(n, "m= port out of range"))
    };
    let (port, port_count) = match port_spec.split_once('/') {
        Some((p, c)) => (num(p)?, Some(num(c)?)),
        None => (num(port_spec)?, None),
    };
    Ok(MediaDescription {
        kind: kind.into(),
        port,
        port_count,
        protocol: protocol.into(),
        formats: t.map(str::to_owned).collect(),
        ..Default::default()
    })
}

fn parse_attribute(n: usize, v: &str) -> Result<Attribute, SdpError> {
    let attr = match v.split_once(':') {
        Some((name, value)) => Attribute { name: name.into(), value: Some(value.into()) },
        None => Attribute::flag(v),
    };
    if attr.name.is_empty() {
        return Err(perr(n, "empty attribute name"));
    }
    Ok(attr)
}

fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.is_empty());

    match lines.next() {
        Some((n, l)) => {
            let (kind, v) = split_line(n, l)?;
            if kind != 'v' {
                return Err(perr(n, "description must start with v="));
            }
            if v.trim() != "0" {
                return Err(perr(n, "unsupported SDP version"));
            }
        }
        None => return Err(SdpError::Parse("empty description".into())),
    }

    let mut sd = SessionDescription::default();
    let mut origin = None;
    let mut name = None;
    // The media section being filled; pushed to `sd.media` at the next m= or at the end.
    let mut media: Option<MediaDescription> = None;

    for (n, line) in lines {
        let (kind, v) = split_line(n, line)?;
        if let Some(m) = media.as_mut() {
            match kind {
                'm' => {
                    let next = parse_media(n, v)?;
                    sd.media.push(std::mem::replace(m, next));
                }
                'i' if m.information.is_none() => m.information = Some(v.into()),
                'c' if m.connection.is_none() => m.connection = Some(parse_connection(n, v)?),
                'c' => {
                    parse_connection(n, v)?;
                    m.other_lines.push(Line { kind, value: v.into() });
                }
                'b' => m.bandwidth.push(parse_bandwidth(n, v)?),
                'k' if m.key.is_none() => m.key = Some(v.into()),
                'a' => m.attributes.push(parse_attribute(n, v)?),
                'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' | 'i' | 'k' => {
                    return Err(perr(n, format_args!("{kind}= line not allowed here")));
                }
                _ => m.other_lines.push(Line { kind, value: v.into() }),
            }
            continue;
        }
        match kind {
            'o' if origin.is_none() => origin = Some(parse_origin(n, v)?),
            's' if name.is_none() => name = Some(v.to_owned()),
            'i' if sd.information.is_none() => sd.information = Some(v.into()),
            'u' if sd.uri.is_none() => sd.uri = Some(v.into()),
            'e' => sd.emails.push(v.into()),
            'p' => sd.phones.push(v.into()),
            'c' if sd.connection.is_none() => sd.connection = Some(parse_connection(n, v)?),
            'b' => sd.bandwidth.push(parse_bandwidth(n, v)?),
            't' => sd.times.push(parse_timing(n, v)?),
            'r' => match sd.times.last_mut() {
                Some(t) => t.repeats.push(v.into()),
                None => return Err(perr(n, "r= without t=")),
            },
            'z' if sd.time_zones.is_none() => sd.time_zones = Some(v.into()),
            'k' if sd.key.is_none() => sd.key = Some(v.into()),
            'a' => sd.attributes.push(parse_attribute(n, v)?),
            'm' => {
                if origin.is_none() {
                    return Err(perr(n, "m= before o="));
                }
                media = Some(parse_media(n, v)?);
            }
            'v' | 'o' | 's' | 'i' | 'u' | 'c' | 'z' | 'k' => {
                return Err(perr(n, format_args!("duplicate {kind}= line")));
            }
            _ => sd.other_lines.push(Line { kind, value: v.into() }),
        }
    }
    sd.media.extend(media);
    sd.origin = origin.ok_or_else(|| SdpError::Parse("missing o= line".into()))?;
    sd.session_name = name.unwrap_or_else(|| "-".into());
    Ok(sd)
}

// ---------------------------------------------------------------------------------------
// Printing

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.bw_type, self.value)
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Display for MediaDescription {
    /// The media section, each line CRLF-terminated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(c) = self.port_count {
            write!(f, "/{c}")?;
        }
        write!(f, " {}", self.protocol)?;
        for fmt_ in &self.formats {
            write!(f, " {fmt_}")?;
        }
        f.write_str("\r\n")?;
        if let Some(i) = &self.information {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidth {
            write!(f, "b={b}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for l in &self.other_lines {
            write!(f, "{}={}\r\n", l.kind, l.value)?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for SessionDescription {
    /// The whole description in RFC 8866 §5 order, CRLF line ends: the SIP body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.session_name)?;
        if let Some(i) = &self.information {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidth {
            write!(f, "b={b}\r\n")?;
        }
        for t in &self.times {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.time_zones {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for l in &self.other_lines {
            write!(f, "{}={}\r\n", l.kind, l.value)?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal() {
        let sd = SessionDescription::parse("v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nt=0 0\n").unwrap();
        assert_eq!(sd.origin.session_id, 1);
        assert_eq!(sd.origin.session_version, 2);
        assert_eq!(sd.times, vec![Timing::permanent()]);
        assert!(sd.media.is_empty());
        assert_eq!(sd.to_string(), "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "\r\n\r\n",
            "o=- 1 2 IN IP4 1.2.3.4\r\nv=0\r\n",
            "v=1\r\no=- 1 2 IN IP4 1.2.3.4\r\n",
            "v=0\r\ns=-\r\n",
            "v=0\r\no=- x 2 IN IP4 1.2.3.4\r\n",
            "v=0\r\no=- 1 2 IN IP4\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nhello\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio -1 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 0/x RTP/AVP 0\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\nt=0 0\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\nv=0\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nb=AS\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nr=7d 1h 0 25h\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\na=\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\n=x\r\n",
            "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\no=- 1 2 IN IP4 1.2.3.4\r\n",
        ] {
            assert!(SessionDescription::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn rtcp_attribute() {
        assert_eq!(parse_rtcp_attribute("53020"), Some((53020, None)));
        assert_eq!(
            parse_rtcp_attribute("53020 IN IP4 126.16.64.4"),
            Some((53020, Some("126.16.64.4".parse().unwrap())))
        );
        assert_eq!(parse_rtcp_attribute("x"), None);
    }

    #[test]
    fn millis() {
        assert_eq!(parse_millis("20"), Some(20));
        assert_eq!(parse_millis(" 30.0"), Some(30));
        assert_eq!(parse_millis("NaN"), None);
        assert_eq!(parse_millis("-5"), None);
    }
}
