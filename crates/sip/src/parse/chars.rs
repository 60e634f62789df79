//! Character classes of the RFC 3261 §25 grammar, shared by the parser and the printer
//! so that whatever one accepts unquoted/unescaped the other writes the same way.

/// `alphanum / mark` (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// `token` characters (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Characters of an unquoted header-parameter value: `token / host` (the host part
/// adds `:` and brackets for IPv6; `/` and `@` are tolerated for real-world values).
#[inline]
pub(crate) fn is_param_value(b: u8) -> bool {
    is_token(b) || matches!(b, b':' | b'[' | b']' | b'/' | b'@')
}

/// Unescaped characters of the SIP URI `user` part.
#[inline]
pub(crate) fn is_user(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// Unescaped characters of a `tel:` number: like `user`, minus `;` and `?`, which
/// would read as parameter/header delimiters.
#[inline]
pub(crate) fn is_tel_number(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b'/')
}

/// Unescaped characters of the URI `password` part.
#[inline]
pub(crate) fn is_password(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar` of URI parameters.
#[inline]
pub(crate) fn is_uri_param(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// Characters of URI `?name=value` headers (`hnv-unreserved / unreserved`).
#[inline]
pub(crate) fn is_uri_header(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// Host names, IPv4 literals (`_` tolerated as many deployments use it).
#[inline]
pub(crate) fn is_hostname(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// A well-formed `quoted-string` spanning all of `s` (quotes included).
pub(crate) fn is_quoted_string(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'"' {
        return false;
    }
    matches!(quoted_string_end(b, 0), Some(end) if end == b.len())
}

/// Given `b[start] == b'"'`, the index just past the closing quote. Backslash escapes
/// any following character except CR/LF (`quoted-pair`).
pub(crate) fn quoted_string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                if matches!(b.get(i + 1), None | Some(b'\r') | Some(b'\n')) {
                    return None;
                }
                i += 2;
            }
            b'\r' | b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

/// A display name that may be written without quotes: `token *(LWS token)`.
pub(crate) fn is_token_display(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !is_lws(b[0])
        && !is_lws(b[b.len() - 1])
        && b.iter().all(|&c| is_token(c) || is_lws(c))
}

/// Position of ASCII byte `needle` in `s`. For the short strings of header values a
/// plain loop beats `str::find`'s memchr set-up; an ASCII needle always lands on a
/// char boundary.
#[inline]
pub(crate) fn find_byte(s: &str, needle: u8) -> Option<usize> {
    debug_assert!(needle.is_ascii());
    s.as_bytes().iter().position(|&b| b == needle)
}

/// `str::split_once` for an ASCII byte (see [`find_byte`]).
#[inline]
pub(crate) fn split_once_byte(s: &str, needle: u8) -> Option<(&str, &str)> {
    let i = find_byte(s, needle)?;
    Some((&s[..i], &s[i + 1..]))
}

// Word-at-a-time (SWAR) byte search, for scans over whole header sections.

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` equal to `b`; the lowest flag is exact (higher
/// ones may be false positives), which is all a forward search needs.
#[inline]
pub(crate) fn byte_eq_mask(w: u64, b: u8) -> u64 {
    let x = w ^ (LOW_BITS * u64::from(b));
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

/// The 8 bytes at `buf[i..]`, if there are that many.
#[inline]
pub(crate) fn word_at(buf: &[u8], i: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Whether `s` holds a CR or LF (the printer's injection guard).
pub(crate) fn has_cr_or_lf(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(w) = word_at(s, i) {
        if byte_eq_mask(w, b'\n') | byte_eq_mask(w, b'\r') != 0 {
            return true;
        }
        i += 8;
    }
    s.get(i..)
        .is_some_and(|t| t.iter().any(|&b| b == b'\r' || b == b'\n'))
}
