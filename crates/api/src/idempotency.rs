//! `Idempotency-Key` on requests that create something (dial-out): a retried request
//! with the same key gets the first one's answer instead of placing a second call.
//!
//! The cache maps key → (fingerprint of the request, outcome). While the first request
//! runs, the key is *in flight* and a concurrent duplicate gets 409. A successful
//! answer is kept for [`TTL`] and replayed byte for byte with `Idempotent-Replayed:
//! true`; a failed one releases the key, so the client may retry. The same key with a
//! different request (another path or body) is a 409 too. At most [`CAPACITY`] keys are
//! kept; when full, expired ones go first, then the oldest. A `std::sync::Mutex` is
//! enough: it is held for a map operation, never across an await, and only on this
//! request path (never media).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a completed answer is replayed.
pub const TTL: Duration = Duration::from_secs(600);
/// Most keys kept at once.
pub const CAPACITY: usize = 10_000;
pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

#[derive(Clone, Default)]
pub struct IdempotencyCache {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

struct Entry {
    fingerprint: u64,
    created: Instant,
    outcome: Option<(StatusCode, Bytes)>,
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// First time: run it, then [`Pending::complete`].
    Run(Pending),
    /// Seen and answered: send this.
    Replay(Response),
}

/// A key in flight. Dropped without `complete` (the request failed) it releases the key.
pub struct Pending {
    cache: IdempotencyCache,
    key: String,
    done: bool,
}

impl IdempotencyCache {
    /// The key of a request, if it has a valid one; 400 for an empty or overlong key.
    pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let Some(v) = headers.get(HEADER) else { return Ok(None) };
        let key = std::str::from_utf8(v.as_bytes()).ok().filter(|k| crate::formats::matches(crate::formats::IDEMPOTENCY_KEY, k));
        let key = key.ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters (spaces and tabs only inside)"))?;
        Ok(Some(key.to_owned()))
    }

    /// A stable fingerprint of what the request asks for.
    pub fn fingerprint(parts: &[&str]) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        parts.hash(&mut h);
        h.finish()
    }

    pub fn claim(&self, key: String, fingerprint: u64, now: Instant) -> Result<Claim, ApiError> {
        let mut map = self.inner.lock().expect("idempotency cache poisoned");
        if let Some(e) = map.get(&key) {
            if now.duration_since(e.created) < TTL {
                if e.fingerprint != fingerprint {
                    return Err(ApiError::conflict("Idempotency-Key was already used for a different request"));
                }
                return match &e.outcome {
                    None => Err(ApiError::conflict("A request with this Idempotency-Key is still in progress")),
                    Some((status, body)) => Ok(Claim::Replay(replay(*status, body.clone()))),
                };
            }
            map.remove(&key);
        }
        if map.len() >= CAPACITY {
            map.retain(|_, e| now.duration_since(e.created) < TTL);
            if map.len() >= CAPACITY {
                let oldest = map.iter().filter(|(_, e)| e.outcome.is_some()).min_by_key(|(_, e)| e.created).map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => drop(map.remove(&k)),
                    None => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Too many requests in flight")),
                }
            }
        }
        map.insert(key.clone(), Entry { fingerprint, created: now, outcome: None });
        Ok(Claim::Run(Pending { cache: self.clone(), key, done: false }))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().len()
    }
}

impl Pending {
    /// Stores the answer for replay and returns it as the response.
    pub fn complete(mut self, status: StatusCode, body: Bytes) -> Response {
        if let Some(e) = self.cache.inner.lock().expect("idempotency cache poisoned").get_mut(&self.key) {
            e.outcome = Some((status, body.clone()));
        }
        self.done = true;
        json_response(status, body)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.cache.inner.lock().expect("idempotency cache poisoned").remove(&self.key);
        }
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn replay(status: StatusCode, body: Bytes) -> Response {
    let mut r = json_response(status, body);
    r.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: &IdempotencyCache, key: &str, fp: u64, now: Instant) -> Result<Claim, ApiError> {
        c.claim(key.into(), fp, now)
    }

    #[test]
    fn replays_a_completed_answer_and_rejects_a_different_request() {
        let c = IdempotencyCache::default();
        let t0 = Instant::now();
        let Claim::Run(p) = run(&c, "k", 1, t0).unwrap() else { panic!("first claim must run") };
        // concurrent duplicate while in flight
        assert_eq!(run(&c, "k", 1, t0).err().unwrap().code, 1409);
        p.complete(StatusCode::OK, Bytes::from_static(b"{\"a\":1}"));
        let Claim::Replay(r) = run(&c, "k", 1, t0 + Duration::from_secs(5)).unwrap() else { panic!("must replay") };
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers().get(REPLAYED_HEADER).unwrap(), "true");
        assert_eq!(run(&c, "k", 2, t0).err().unwrap().code, 1409);
        // after the TTL the key is fresh again
        assert!(matches!(run(&c, "k", 2, t0 + TTL + Duration::from_secs(1)).unwrap(), Claim::Run(_)));
    }

    #[test]
    fn a_failed_request_releases_its_key() {
        let c = IdempotencyCache::default();
        let t0 = Instant::now();
        let Claim::Run(p) = run(&c, "k", 1, t0).unwrap() else { panic!() };
        drop(p);
        assert_eq!(c.len(), 0);
        assert!(matches!(run(&c, "k", 1, t0).unwrap(), Claim::Run(_)));
    }

    #[test]
    fn capacity_is_bounded_evicting_expired_then_oldest() {
        let c = IdempotencyCache::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY {
            let Claim::Run(p) = run(&c, &format!("k{i}"), 1, t0 + Duration::from_millis(i as u64)).unwrap() else { panic!() };
            p.complete(StatusCode::OK, Bytes::new());
        }
        assert_eq!(c.len(), CAPACITY);
        let Claim::Run(p) = run(&c, "new", 1, t0 + Duration::from_secs(20)).unwrap() else { panic!() };
        p.complete(StatusCode::OK, Bytes::new());
        assert_eq!(c.len(), CAPACITY);
        // the oldest (k0) went; k1 is still replayed
        assert!(matches!(run(&c, "k0", 1, t0 + Duration::from_secs(21)).unwrap(), Claim::Run(_)));
        assert!(matches!(run(&c, "k2", 1, t0 + Duration::from_secs(21)).unwrap(), Claim::Replay(_)));
    }

    #[test]
    fn key_validation() {
        let mut h = HeaderMap::new();
        assert_eq!(IdempotencyCache::key_of(&h).unwrap(), None);
        h.insert(HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(IdempotencyCache::key_of(&h).unwrap().as_deref(), Some("abc-123"));
        h.insert(HEADER, HeaderValue::from_static(" "));
        assert_eq!(IdempotencyCache::key_of(&h).unwrap_err().code, 1400);
    }
}
