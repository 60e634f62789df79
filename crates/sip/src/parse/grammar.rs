//! Parsers for header values: URIs (RFC 3261 §19.1), name-addr/addr-spec (§20.10),
//! Via (§20.42, RFC 3581), generic `;name=value` parameters and comma lists.
//!
//! Errors are `&'static str` reasons; the public wrappers in the parent module turn
//! them into `ParseError`s. All slicing happens at ASCII delimiters, so it is always
//! on a char boundary.

use super::chars::*;
use crate::message::{Transport, Via};
use crate::uri::{NameAddr, Param, Scheme, Uri};
use std::net::Ipv6Addr;

pub(crate) type PResult<T> = Result<T, &'static str>;

/// Strips leading and trailing SP/HTAB (byte loop: cheaper than a char pattern).
#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_lws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_lws(c)).map_or(start, |i| i + 1);
    &s[start..end]
}

#[inline]
fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    i
}

/// Decimal digits only (no sign, unlike `str::parse`), with overflow reported.
pub(crate) fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes. Escapes that decode to invalid UTF-8 are replaced by
/// U+FFFD rather than refusing the message.
pub(crate) fn unescape(s: &str) -> PResult<String> {
    if !s.bytes().any(|b| b == b'%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex_val);
            let lo = b.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err("Bad Escape In URI"),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The contents of a quoted-string (without its quotes) with `\x` pairs resolved.
fn unquote(inner: &str) -> String {
    if !inner.bytes().any(|b| b == b'\\') {
        return inner.to_owned();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Calls `f` for each element of a comma-separated header value. Commas inside
/// quoted strings or `<...>` do not split; empty elements are skipped. Returns the
/// number of elements.
pub(crate) fn for_each_comma_item<'a>(
    s: &'a str,
    mut f: impl FnMut(&'a str) -> PResult<()>,
) -> PResult<usize> {
    let b = s.as_bytes();
    let (mut start, mut i, mut count) = (0, 0, 0);
    let mut in_angle = false;
    let mut emit = |piece: &'a str, count: &mut usize| -> PResult<()> {
        let piece = trim_lws(piece);
        if !piece.is_empty() {
            *count += 1;
            f(piece)?;
        }
        Ok(())
    };
    while i < b.len() {
        match b[i] {
            b'"' if !in_angle => {
                i = quoted_string_end(b, i).ok_or("Unterminated Quoted String")?;
                continue;
            }
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => {
                emit(&s[start..i], &mut count)?;
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    emit(&s[start..], &mut count)?;
    Ok(count)
}

/// `;name[=value]` header parameters (generic-param). Quoted values are kept
/// verbatim, quotes included, so that their meaning (RFC 3840 feature tags
/// distinguish quoted strings from tokens) survives a round trip.
pub(crate) fn parse_header_params(s: &str) -> PResult<Vec<Param>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = skip_lws(b, 0);
    while i < b.len() {
        if b[i] != b';' {
            return Err("Bad Header Parameter");
        }
        i = skip_lws(b, i + 1);
        let name_start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if name_start == i {
            return Err("Bad Header Parameter");
        }
        let name = &s[name_start..i];
        i = skip_lws(b, i);
        let value = if i < b.len() && b[i] == b'=' {
            i = skip_lws(b, i + 1);
            let value_start = i;
            if i < b.len() && b[i] == b'"' {
                i = quoted_string_end(b, i).ok_or("Bad Header Parameter")?;
            } else {
                while i < b.len() && is_param_value(b[i]) {
                    i += 1;
                }
            }
            Some(s[value_start..i].to_owned())
        } else {
            None
        };
        out.push(Param {
            name: name.to_owned(),
            value,
        });
        i = skip_lws(b, i);
    }
    Ok(out)
}

/// `host[:port]` where host is a name, IPv4 literal or bracketed IPv6 reference.
/// Whitespace around the colon is tolerated (Via's `COLON = SWS ":" SWS`).
fn parse_hostport(s: &str) -> PResult<(String, Option<u16>)> {
    let b = s.as_bytes();
    let host_end = if b.first() == Some(&b'[') {
        let close = find_byte(s, b']').ok_or("Bad IPv6 Reference")?;
        if s[1..close].parse::<Ipv6Addr>().is_err() {
            return Err("Bad IPv6 Reference");
        }
        close + 1
    } else {
        let end = b.iter().position(|&c| !is_hostname(c)).unwrap_or(b.len());
        if end == 0 {
            return Err("Bad Host");
        }
        end
    };
    let host = s[..host_end].to_owned();
    let rest = trim_lws(&s[host_end..]);
    if rest.is_empty() {
        return Ok((host, None));
    }
    let port = rest.strip_prefix(':').ok_or("Bad Host")?;
    let port = parse_digits(trim_lws(port)).ok_or("Bad Port")?;
    Ok((host, Some(port)))
}

/// `;name[=value]` URI parameters, %-unescaped.
fn parse_uri_params(s: &str, out: &mut Vec<Param>) -> PResult<()> {
    for seg in s.split(';') {
        let (name, value) = match split_once_byte(seg, b'=') {
            Some((n, v)) => (n, Some(unescape(v)?)),
            None => (seg, None),
        };
        if name.is_empty() {
            return Err("Bad URI Parameter");
        }
        out.push(Param {
            name: unescape(name)?,
            value,
        });
    }
    Ok(())
}

fn parse_uri_headers(s: &str, out: &mut Vec<(String, String)>) -> PResult<()> {
    for seg in s.split('&') {
        let (name, value) = split_once_byte(seg, b'=').unwrap_or((seg, ""));
        if name.is_empty() {
            return Err("Bad URI Header");
        }
        out.push((unescape(name)?, unescape(value)?));
    }
    Ok(())
}

/// A SIP, SIPS or TEL URI.
pub(crate) fn parse_uri(s: &str) -> PResult<Uri> {
    let s = trim_lws(s);
    if s.bytes()
        .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'<' | b'>' | b'"'))
    {
        return Err("Bad URI");
    }
    let (scheme, rest) = split_once_byte(s, b':').ok_or("Bad URI")?;
    let scheme = if scheme.eq_ignore_ascii_case("sip") {
        Scheme::Sip
    } else if scheme.eq_ignore_ascii_case("sips") {
        Scheme::Sips
    } else if scheme.eq_ignore_ascii_case("tel") {
        Scheme::Tel
    } else {
        return Err("Unsupported URI Scheme");
    };
    let mut uri = Uri {
        scheme,
        user: None,
        password: None,
        host: String::new(),
        port: None,
        params: Vec::new(),
        headers: Vec::new(),
    };
    if scheme == Scheme::Tel {
        let (number, params) = match split_once_byte(rest, b';') {
            Some((n, p)) => (n, Some(p)),
            None => (rest, None),
        };
        if number.is_empty() {
            return Err("Bad TEL URI");
        }
        uri.user = Some(unescape(number)?);
        if let Some(p) = params {
            parse_uri_params(p, &mut uri.params)?;
        }
        return Ok(uri);
    }
    // The user part may hold `;` and `?` (user-unreserved), but never a raw `@`.
    let hostpart = match split_once_byte(rest, b'@') {
        Some((userinfo, hostpart)) => {
            let (user, password) = match split_once_byte(userinfo, b':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err("Bad URI User");
            }
            uri.user = Some(unescape(user)?);
            uri.password = password.map(unescape).transpose()?;
            hostpart
        }
        None => rest,
    };
    let hp_end = hostpart
        .bytes()
        .position(|b| b == b';' || b == b'?')
        .unwrap_or(hostpart.len());
    let (host, port) = parse_hostport(&hostpart[..hp_end])?;
    uri.host = host;
    uri.port = port;
    let tail = &hostpart[hp_end..];
    let (params, headers) = match split_once_byte(tail, b'?') {
        Some((p, h)) => (p, Some(h)),
        None => (tail, None),
    };
    if let Some(p) = params.strip_prefix(';') {
        parse_uri_params(p, &mut uri.params)?;
    }
    if let Some(h) = headers {
        parse_uri_headers(h, &mut uri.headers)?;
    }
    Ok(uri)
}

/// `name-addr` (`["Display"] <uri>`) or bare `addr-spec`, then header parameters.
/// With a bare addr-spec every `;param` belongs to the header (RFC 3261 §20.10).
pub(crate) fn parse_name_addr(s: &str) -> PResult<NameAddr> {
    let s = trim_lws(s);
    let b = s.as_bytes();
    let (display, uri_str, rest) = if b.first() == Some(&b'"') {
        let end = quoted_string_end(b, 0).ok_or("Bad Display Name")?;
        let display = unquote(&s[1..end - 1]);
        let after = s[end..].trim_start_matches([' ', '\t']);
        let inner = after.strip_prefix('<').ok_or("Bad Name-Addr")?;
        let (uri, rest) = split_once_byte(inner, b'>').ok_or("Bad Name-Addr")?;
        (Some(display), uri, rest)
    } else if let Some((before, inner)) = split_once_byte(s, b'<') {
        let before = trim_lws(before);
        let display = if before.is_empty() {
            None
        } else if is_token_display(before) {
            Some(before.to_owned())
        } else {
            return Err("Bad Display Name");
        };
        let (uri, rest) = split_once_byte(inner, b'>').ok_or("Bad Name-Addr")?;
        (display, uri, rest)
    } else {
        let semi = find_byte(s, b';').unwrap_or(s.len());
        (None, &s[..semi], &s[semi..])
    };
    Ok(NameAddr {
        display,
        uri: parse_uri(uri_str)?,
        params: parse_header_params(rest)?,
    })
}

fn transport_from_token(s: &str) -> Option<Transport> {
    const ALL: [Transport; 6] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Sctp,
        Transport::Ws,
        Transport::Wss,
    ];
    ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(s))
}

/// One via-parm: `SIP / 2.0 / UDP host[:port] *(;param)`, LWS-tolerant.
fn parse_one_via(s: &str) -> PResult<Via> {
    let b = s.as_bytes();
    let mut i = 0;
    let next_token = |i: &mut usize| -> &str {
        *i = skip_lws(b, *i);
        let start = *i;
        while *i < b.len() && is_token(b[*i]) {
            *i += 1;
        }
        let tok = &s[start..*i];
        *i = skip_lws(b, *i);
        tok
    };
    let protocol = next_token(&mut i);
    if !protocol.eq_ignore_ascii_case("SIP") || b.get(i) != Some(&b'/') {
        return Err("Bad Via");
    }
    i += 1;
    let version = next_token(&mut i);
    if version != "2.0" || b.get(i) != Some(&b'/') {
        return Err("Bad Via");
    }
    i += 1;
    let transport = transport_from_token(next_token(&mut i)).ok_or("Bad Via Transport")?;
    let rest = &s[i..];
    let sent_by_end = find_byte(rest, b';').unwrap_or(rest.len());
    let (host, port) = parse_hostport(&rest[..sent_by_end]).map_err(|_| "Bad Via Sent-By")?;
    let params = parse_header_params(&rest[sent_by_end..]).map_err(|_| "Bad Via Parameter")?;
    Ok(Via {
        transport,
        host,
        port,
        params,
    })
}

/// A Via header value, possibly holding several comma-separated via-parms.
pub(crate) fn parse_via_into(s: &str, out: &mut Vec<Via>) -> PResult<()> {
    let n = for_each_comma_item(s, |item| {
        out.push(parse_one_via(item)?);
        Ok(())
    })?;
    if n == 0 {
        return Err("Bad Via");
    }
    Ok(())
}

/// A Contact/Route/Record-Route value: one or more comma-separated name-addrs.
pub(crate) fn parse_name_addr_list(s: &str, out: &mut Vec<NameAddr>) -> PResult<()> {
    let n = for_each_comma_item(s, |item| {
        out.push(parse_name_addr(item)?);
        Ok(())
    })?;
    if n == 0 {
        return Err("Empty Address List");
    }
    Ok(())
}
