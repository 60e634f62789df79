//! Nonces only this process could have issued, and the nonce-count replay check.
//!
//! A nonce is `hex(issued_ms ‖ random ‖ HMAC-SHA256(secret, issued_ms ‖ random)[..16])`,
//! `issued_ms` counted from the mint's creation. Checking one needs no table: the MAC
//! proves it is ours and the timestamp says whether it expired. State is kept only for
//! nonces that authenticated something (their highest nonce-count), so a scanner
//! collecting challenges costs us nothing.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct NonceMint {
    secret: [u8; 32],
    epoch: Instant,
    ttl: Duration,
    /// nonce → (highest nc seen, when it stops mattering).
    counts: HashMap<String, (u32, Instant)>,
    last_prune: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    /// Ours, but older than the TTL: challenge again with `stale=true`.
    Stale,
    /// Not ours (forged, mangled, or from before a restart).
    Invalid,
}

impl NonceMint {
    pub fn new(now: Instant, ttl: Duration) -> NonceMint {
        NonceMint { secret: rand::random(), epoch: now, ttl, counts: HashMap::new(), last_prune: now }
    }

    pub fn issue(&self, now: Instant) -> String {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&ms.to_be_bytes());
        body[8..].copy_from_slice(&rand::random::<[u8; 8]>());
        let mac = self.mac(&body);
        let mut s = hex(&body);
        s.push_str(&hex(&mac[..16]));
        s
    }

    pub fn check(&self, nonce: &str, now: Instant) -> NonceCheck {
        let Some(raw) = unhex(nonce).filter(|r| r.len() == 32) else { return NonceCheck::Invalid };
        let mac = self.mac(&raw[..16]);
        // Constant-time compare of the MAC.
        if mac[..16].iter().zip(&raw[16..]).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
            return NonceCheck::Invalid;
        }
        let ms = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        let issued = self.epoch + Duration::from_millis(ms);
        if issued > now + Duration::from_secs(1) {
            return NonceCheck::Invalid;
        }
        if now.saturating_duration_since(issued) > self.ttl {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh
        }
    }

    /// Records a use of `nonce` with count `nc`; false when `nc` does not exceed every
    /// count seen before for it (a replay). Without qop there is no count: such a nonce
    /// is good for one use (`nc` 0 is accepted once).
    pub fn accept_count(&mut self, nonce: &str, nc: u32, now: Instant) -> bool {
        let until = now + self.ttl * 2;
        match self.counts.get_mut(nonce) {
            Some((last, _)) if nc <= *last => false,
            Some((last, _)) => {
                *last = nc;
                true
            }
            None => {
                // Remembered even for nc 0 (no qop): a second use then fails, 0 <= 0.
                self.counts.insert(nonce.to_owned(), (nc, until));
                true
            }
        }
    }

    /// Forgets counts of nonces that can no longer be used (they are stale by now).
    pub fn prune(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_prune) < Duration::from_secs(10) {
            return;
        }
        self.last_prune = now;
        self.counts.retain(|_, (_, until)| *until > now);
    }

    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.secret, msg)
    }
}

/// HMAC-SHA256 (RFC 2104) for a key of at most one block.
fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new().chain_update(ipad).chain_update(msg).finalize();
    Sha256::new().chain_update(opad).chain_update(inner).finalize().into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2_shape() {
        // RFC 4231 test case 1 uses a 20-byte key; ours is zero-padded the same way.
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        let mac = hmac_sha256(&key, b"Hi There");
        assert_eq!(hex(&mac), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    }

    #[test]
    fn issue_check_expire_forge() {
        let t0 = Instant::now();
        let m = NonceMint::new(t0, Duration::from_secs(300));
        let n = m.issue(t0 + Duration::from_secs(5));
        assert_eq!(m.check(&n, t0 + Duration::from_secs(100)), NonceCheck::Fresh);
        assert_eq!(m.check(&n, t0 + Duration::from_secs(306)), NonceCheck::Stale);
        let mut forged = n.clone().into_bytes();
        forged[3] = if forged[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(m.check(std::str::from_utf8(&forged).unwrap(), t0 + Duration::from_secs(6)), NonceCheck::Invalid);
        assert_eq!(m.check("nonsense", t0), NonceCheck::Invalid);
        let other = NonceMint::new(t0, Duration::from_secs(300));
        assert_eq!(other.check(&n, t0 + Duration::from_secs(6)), NonceCheck::Invalid, "another process's nonce");
    }

    #[test]
    fn nonce_count_must_increase() {
        let t0 = Instant::now();
        let mut m = NonceMint::new(t0, Duration::from_secs(300));
        assert!(m.accept_count("n", 1, t0));
        assert!(m.accept_count("n", 2, t0));
        assert!(!m.accept_count("n", 2, t0));
        assert!(!m.accept_count("n", 1, t0));
        assert!(m.accept_count("m", 0, t0));
        assert!(!m.accept_count("m", 0, t0), "no-qop nonce is single use");
    }
}
