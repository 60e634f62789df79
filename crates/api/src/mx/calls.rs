//! Reference 001's call log and call mode: `GET /calls?timestamp=`, `PATCH /calls`,
//! `PATCH /calls/{name}`, and `GET /services`.
//!
//! The call log is the store's two-party call records (`store::calls`), seen from the
//! requesting user's side: `direction` is `outgoing` when the user placed the call,
//! `missed` when an incoming call was never answered, and the name and extension are
//! the other party's (from the directory when the other party is a user). `record_id`
//! is the call id; `gcid` is `<node>-<call id in hex>`, the same string the push events
//! carry as `globalCallId`, so an app can match a push to its log entry.
//! `selfLegType` is 1 for outgoing and 9 for missed incoming, as MX; an answered
//! incoming call leaves it out (MX's value for it is not known). `callType` and
//! `legType` are 1 (a plain two-party call).
//!
//! `GET /services`: MX lists its auto attendants, voicemail and park servers. We have
//! none of those yet; we list what a caller can dial instead: the echo test and the
//! conference rooms (their dial prefix as `ext`), with our own types `Echo` and
//! `Conference`.

use super::{bearer_claims, mx_json, parse_body, MxError, MxState};
use crate::tokens::Claims;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::users::{DirectorySnapshot, User};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `gcid` / `globalCallId` of a call: opaque to apps, unique per node.
pub fn global_call_id(node: &str, call_id: u64) -> String {
    format!("{node}-{call_id:X}")
}

/// The store, or 503 when this server runs without one.
fn store(state: &MxState) -> Result<&store::Store, MxError> {
    state.store.as_ref().ok_or_else(|| MxError::unavailable("no store behind the MX call endpoints".into()))
}

/// `GET /calls?timestamp=`: the user's call log since the time (all when empty).
pub(super) async fn call_log(State(state): State<MxState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let timestamp = query_value(query.as_deref(), "timestamp").unwrap_or_default();
    let since_ms = parse_timestamp(&timestamp).map_err(|()| MxError::bad_request("bad timestamp format"))?;
    let rows = store(&state)?.call_log(&claims.sb_dname, claims.sb_uid, since_ms).await.map_err(|e| MxError::unavailable(e.to_string()))?;
    let dir = state.tokens.directory();
    let log: Vec<Value> = rows.iter().map(|r| log_entry(&state.tokens.cfg.node, &dir, claims.sb_uid, r)).collect();
    let log = if log.is_empty() { Value::Null } else { Value::Array(log) };
    Ok(mx_json(StatusCode::OK, &json!({ "callLog": log })))
}

/// The first value of `key` in a raw query string (form-decoded).
pub(super) fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// MX's `timestamp`: empty = everything (None); base-10 Unix seconds, sign allowed;
/// else RFC 3339 with `Z` or an offset, fractions allowed. Returns milliseconds.
pub fn parse_timestamp(text: &str) -> Result<Option<i64>, ()> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(Some(secs.saturating_mul(1000)));
    }
    rfc3339_ms(text).map(Some).ok_or(())
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → ms since the epoch.
fn rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, min, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't')) || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (k, d) in b[i + 1..i + 1 + digits].iter().take(3).enumerate() {
            frac_ms += i64::from(d - b'0') * [100, 10, 1][k];
        }
        i += 1 + digits;
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            if *sign == b'+' { oh * 60 + om } else { -(oh * 60 + om) }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60) * 1000) + frac_ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The number a party is known by: its extension, else the user part of its URI.
pub fn party_number(p: &engine::call::Party) -> String {
    if let Some(ext) = p.ext.as_deref().filter(|e| !e.is_empty()) {
        return ext.to_owned();
    }
    let uri = p.uri.trim().trim_start_matches('<').trim_end_matches('>');
    let rest = ["sips:", "sip:", "tel:"].iter().find_map(|s| uri.strip_prefix(s)).unwrap_or(uri);
    let user = rest.split(['@', ';', '?']).next().unwrap_or(rest);
    user.to_owned()
}

/// One call log entry from `me`'s side.
fn log_entry(node: &str, dir: &DirectorySnapshot, me: engine::users::UserId, r: &store::CallRecordRow) -> Value {
    let outgoing = r.caller.user_id == Some(me);
    let missed = !outgoing && !r.answered();
    let other = if outgoing { &r.callee } else { &r.caller };
    let mut m = Map::new();
    m.insert("missed".into(), json!(missed));
    m.insert("direction".into(), json!(if outgoing { "outgoing" } else { "incoming" }));
    m.insert("record_id".into(), json!(r.call_id));
    m.insert("gcid".into(), json!(global_call_id(node, r.call_id)));
    if let Some(a) = r.answered_ms {
        m.insert("connectTimestamp".into(), json!(a / 1000));
    }
    m.insert("disconnectTimestamp".into(), json!(r.ended_ms / 1000));
    m.insert("callingPartyNo".into(), json!(party_number(&r.caller)));
    m.insert("originalCalledPartyNo".into(), json!(party_number(&r.callee)));
    let user: Option<&User> = other.user_id.and_then(|id| dir.user(id));
    let (first, last) = match user {
        Some(u) => (u.first_name.clone(), u.last_name.clone()),
        None => (other.display_name.clone(), None),
    };
    let ext = other.ext.clone().or_else(|| user.and_then(|u| u.ext.clone()));
    for (key, v) in [("firstName", first), ("lastName", last), ("ext", ext)] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            m.insert(key.into(), json!(v));
        }
    }
    m.insert("callType".into(), json!(1));
    m.insert("legType".into(), json!(1));
    if outgoing {
        m.insert("selfLegType".into(), json!(1));
    } else if missed {
        m.insert("selfLegType".into(), json!(9));
    }
    Value::Object(m)
}

/// `PATCH /calls` body and reply (MX defaults: ringDelay 1, vmDelay 30).
#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
struct CallModeBody {
    remote: bool,
    device: String,
    #[serde(rename = "ringDelay")]
    ring_delay: u16,
    #[serde(rename = "vmDelay")]
    vm_delay: u16,
}

impl Default for CallModeBody {
    fn default() -> Self {
        CallModeBody { remote: false, device: String::new(), ring_delay: 1, vm_delay: 30 }
    }
}

/// `PATCH /calls`: the user's call mode, persisted; the bridge reads it from the directory.
pub(super) async fn set_call_mode(State(state): State<MxState>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let mut b: CallModeBody = parse_body(&headers, &body)?;
    b.device = b.device.trim().to_owned();
    if b.device.len() > 128 || b.device.chars().any(char::is_control) {
        return Err(MxError::bad_request(format!("bad device {:?}", b.device)));
    }
    let mode = store(&state)?
        .set_call_mode(claims.sb_uid, b.remote, &b.device, b.ring_delay, b.vm_delay)
        .await
        .map_err(|e| MxError::unavailable(e.to_string()))?;
    state.directory_changed();
    let reply = CallModeBody { remote: mode.remote, device: mode.device, ring_delay: mode.ring_delay_s, vm_delay: mode.vm_delay_s };
    Ok(mx_json(StatusCode::OK, &json!({ "callMode": reply })))
}

/// `PATCH /calls/{name}`: binds a device name to the user → 204.
pub(super) async fn assign_device(State(state): State<MxState>, headers: HeaderMap, Path(name): Path<String>) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@:+".contains(c));
    if !ok {
        return Err(MxError::bad_request(format!("bad device name {name:?}")));
    }
    store(&state)?.assign_device(claims.sb_uid, &name).await.map_err(|e| MxError::unavailable(e.to_string()))?;
    state.directory_changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /services`: what a user can dial besides people (see the module docs).
pub(super) async fn services(State(state): State<MxState>, headers: HeaderMap) -> Result<Response, MxError> {
    let _claims: Claims = bearer_claims(&state, &headers)?;
    let rooms = engine::EngineConfig::default().room_prefix;
    let list = json!([
        {"id": "echo", "name": "Echo test", "type": "Echo", "ext": "echo"},
        {"id": "conference", "name": "Conference rooms", "type": "Conference", "ext": rooms},
    ]);
    Ok(mx_json(StatusCode::OK, &json!({ "services": list })))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn timestamps_parse_as_mx_does() {
        assert_eq!(parse_timestamp(""), Ok(None));
        assert_eq!(parse_timestamp("0"), Ok(Some(0)));
        assert_eq!(parse_timestamp("1503223469"), Ok(Some(1_503_223_469_000)));
        assert_eq!(parse_timestamp("-60"), Ok(Some(-60_000)));
        assert_eq!(parse_timestamp("+60"), Ok(Some(60_000)));
        assert_eq!(parse_timestamp("2017-08-20T10:04:29Z"), Ok(Some(1_503_223_469_000)));
        assert_eq!(parse_timestamp("2017-08-20T12:04:29+02:00"), Ok(Some(1_503_223_469_000)));
        assert_eq!(parse_timestamp("2017-08-20T10:04:29.25Z"), Ok(Some(1_503_223_469_250)));
        assert_eq!(parse_timestamp("2017-08-20T10:04:29.123456789-00:30"), Ok(Some(1_503_223_469_123 + 1_800_000)));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), Ok(Some(-1000)));
        assert_eq!(parse_timestamp("2024-02-29T00:00:00Z"), Ok(Some(1_709_164_800_000)));
        for bad in ["yesterday", "2017-08-20", "2017-08-20T10:04:29", "2017-08-20 10:04:29Z", "2017-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z", "2017-08-20T10:04:29.Z", "2017-08-20T10:04:29+0200", "1.5", "2017-08-20T25:00:00Z"] {
            assert_eq!(parse_timestamp(bad), Err(()), "{bad}");
        }
    }

    #[test]
    fn a_party_is_known_by_its_extension_else_its_uri_user() {
        let p = |uri: &str, ext: Option<&str>| engine::call::Party { uri: uri.into(), ext: ext.map(Into::into), ..Default::default() };
        assert_eq!(party_number(&p("sip:alice@alpha.test", Some("3044"))), "3044");
        assert_eq!(party_number(&p("<sip:+15550100@gw.example;user=phone>", None)), "+15550100");
        assert_eq!(party_number(&p("tel:+15550100", None)), "+15550100");
        assert_eq!(party_number(&p("sips:bob@x", Some(""))), "bob");
    }
}
