//! The signing keys: ES256 (ECDSA P-256). One current key signs; older ones stay for
//! verification until the last token they can have signed has expired.
//!
//! A key is named (`kid`) by its creation time in milliseconds, base 36, like MX
//! Proxy's seconds-based kid but unique even when keys are made in the same second.
//! Keys are persisted (PKCS#8 DER) so tokens survive a restart.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// One key as the database keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub pkcs8_der: Vec<u8>,
    pub created_ms: u64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never goes to a log.
        f.debug_struct("StoredKey").field("kid", &self.kid).field("created_ms", &self.created_ms).finish()
    }
}

/// A key ready for use: both halves parsed once.
pub struct SigningKey {
    pub kid: String,
    pub created_ms: u64,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// Public point coordinates, base64url, for the JWKS.
    pub x: String,
    pub y: String,
}

impl SigningKey {
    /// A fresh random key created at `now_ms`.
    pub fn generate(now_ms: u64) -> Result<(SigningKey, StoredKey), String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| "cannot generate a P-256 key".to_string())?;
        let stored = StoredKey { kid: kid_of(now_ms), pkcs8_der: pkcs8.as_ref().to_vec(), created_ms: now_ms };
        Ok((SigningKey::from_stored(&stored)?, stored))
    }

    pub fn from_stored(k: &StoredKey) -> Result<SigningKey, String> {
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &k.pkcs8_der, &rng)
            .map_err(|e| format!("signing key {}: not a P-256 PKCS#8 key ({e})", k.kid))?;
        // Uncompressed SEC1 point: 0x04 ‖ x (32) ‖ y (32).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(format!("signing key {}: unexpected public key encoding", k.kid));
        }
        Ok(SigningKey {
            kid: k.kid.clone(),
            created_ms: k.created_ms,
            encoding: EncodingKey::from_ec_der(&k.pkcs8_der),
            decoding: DecodingKey::from_ec_der(point),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..]),
        })
    }

    /// The public half as a JWK (RFC 7517/7518).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y, "kid": self.kid, "use": "sig", "alg": "ES256"})
    }
}

/// `kid` for a key made at `ms`: base 36, lowercase.
pub fn kid_of(ms: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = ms;
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Every key in use, oldest first.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    pub fn insert(&mut self, key: SigningKey) {
        self.keys.retain(|k| k.kid != key.kid);
        self.keys.push(key);
        self.keys.sort_by_key(|k| k.created_ms);
    }

    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().rev().find(|k| k.kid == kid)
    }

    /// The newest key, if it is still young enough to sign at `now_ms`.
    pub fn current(&self, now_ms: u64, sign_key_ttl_ms: u64) -> Option<&SigningKey> {
        self.keys.last().filter(|k| now_ms < k.created_ms.saturating_add(sign_key_ttl_ms))
    }

    pub fn iter(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter()
    }

    /// Keys no token can still need at `now_ms`: a key stops signing once a newer key
    /// exists, so its last token expires at most `token_ttl` after the next key's
    /// creation (plus a margin for clock skew between issue and `exp`).
    pub fn obsolete(&self, now_ms: u64, token_ttl_ms: u64) -> Vec<String> {
        const MARGIN_MS: u64 = 60_000;
        self.keys
            .windows(2)
            .filter(|w| w[1].created_ms.saturating_add(token_ttl_ms).saturating_add(MARGIN_MS) < now_ms)
            .map(|w| w[0].kid.clone())
            .collect()
    }

    pub fn remove(&mut self, kid: &str) {
        self.keys.retain(|k| k.kid != kid);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_base36_of_the_creation_time() {
        assert_eq!(kid_of(0), "0");
        assert_eq!(kid_of(35), "z");
        assert_eq!(kid_of(36), "10");
        // MX Proxy's example: 1504627646 s = "ovte4e".
        assert_eq!(kid_of(1504627646), "ovte4e");
    }

    #[test]
    fn stored_key_round_trips() {
        let (k, stored) = SigningKey::generate(1_000).unwrap();
        let again = SigningKey::from_stored(&stored).unwrap();
        assert_eq!((k.x.clone(), k.y.clone()), (again.x, again.y));
        assert_eq!(k.x.len(), 43);
        assert!(SigningKey::from_stored(&StoredKey { kid: "x".into(), pkcs8_der: vec![1, 2, 3], created_ms: 0 }).is_err());
    }

    #[test]
    fn old_keys_go_only_after_the_next_key_plus_a_token_life() {
        let mut ring = KeyRing::default();
        ring.insert(SigningKey::generate(0).unwrap().0);
        ring.insert(SigningKey::generate(10_000).unwrap().0);
        let ttl = 3_600_000;
        assert!(ring.obsolete(10_000 + ttl, ttl).is_empty());
        assert_eq!(ring.obsolete(10_000 + ttl + 61_000, ttl), vec!["0".to_string()]);
        assert!(ring.current(10_000 + 5, 100).is_some());
        assert!(ring.current(10_000 + 100, 100).is_none());
    }
}
