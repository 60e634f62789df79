//! Character classes of the RFC 3261 §25 grammar, shared by the parser and the printer
//! so that whatever one accepts unquoted/unescaped the other writes the same way.

/// `alphanum / mark` (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')')
}

/// `token` characters (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
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
