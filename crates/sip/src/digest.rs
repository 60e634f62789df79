//! HTTP Digest for SIP (RFC 3261 §22, RFC 7616 hashing, RFC 8760 algorithms): the
//! hashes only. A user's secret is kept as HA1 = H(username ":" realm ":" password),
//! once per algorithm, so the server never needs, or stores, the password itself.

use md5::Md5;
use sha2::{Digest, Sha256};
use std::fmt;

/// The digest algorithms we accept (RFC 8760 §2.4: SHA-256 preferred, MD5 for old phones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The token in `algorithm=` (case-insensitive on input).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn from_token(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Lowercase hex of H(data).
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data)),
            Algorithm::Sha256 => hex(&Sha256::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HA1 = H(username:realm:password), lowercase hex.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The `response` a client computes for `qop=auth` (RFC 7616 §3.4.1), from HA1.
#[allow(clippy::too_many_arguments)]
pub fn response_qop_auth(alg: Algorithm, ha1: &str, nonce: &str, nc: &str, cnonce: &str, method: &str, uri: &str) -> String {
    let ha2 = alg.hash_hex(format!("{method}:{uri}").as_bytes());
    alg.hash_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes())
}

/// The `response` without qop (RFC 2069 compatibility, RFC 3261 §22.4).
pub fn response_no_qop(alg: Algorithm, ha1: &str, nonce: &str, method: &str, uri: &str) -> String {
    let ha2 = alg.hash_hex(format!("{method}:{uri}").as_bytes());
    alg.hash_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1's worked example (an HTTP one, but the hashing is the same).
    #[test]
    fn rfc7616_example() {
        let uri = "/dir/index.html";
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, want) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (Algorithm::Sha256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ] {
            let h = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
            assert_eq!(response_qop_auth(alg, &h, nonce, "00000001", cnonce, "GET", uri), want);
        }
    }
}
