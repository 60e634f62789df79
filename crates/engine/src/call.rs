//! Calls: what people and the call-control APIs mean by "a call".
//!
//! A call groups the legs that take part in one conversation: for a two-party call the
//! caller's leg and the leg to whoever answered (while ringing, one leg per forked
//! contact). A call is owned by an application (the bridge for two-party calls; see
//! `crate::apps`). Its [`CallId`] is a small integer, stable for the call's life and
//! unique on the server, because reference 001 (MX Proxy) clients carry call ids as
//! integers; the native API uses the same number.

use crate::leg::LegId;
use serde::Serialize;
use std::fmt;

/// A call's stable integer alias (MX `callId`), shown in the native API too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// The callee's devices are being rung.
    Ringing,
    /// Answered; both parties connected.
    Active,
    /// Answered, one party on hold.
    Held,
    /// Over.
    Ended,
}

/// How a call ended, in call-log terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Answered (whatever happened after).
    Answered,
    /// The callee was busy (486/600).
    Busy,
    /// Rang until the ring time ran out, or the callee declined (603).
    NoAnswer,
    /// Nobody to ring: no registered device, unreachable, 404/480/503.
    Unavailable,
    /// The caller hung up before the answer.
    Cancelled,
    /// Anything else (bad SDP, server error).
    Failed,
}

/// Which end of a two-party call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The party that placed the call (for `makeCall`, the first party rung).
    Caller,
    /// The party that was called.
    Callee,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

/// One party of a call as the call log shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Party {
    /// The SIP URI of the party (From of the caller, Request-URI/To of the callee).
    pub uri: String,
    /// The directory user, when the party is one.
    pub user_id: Option<i64>,
    /// The user's extension (MX `deviceId`), when known.
    pub ext: Option<String>,
    /// Display name (from the directory for users, else from the From header).
    pub display_name: Option<String>,
}

/// A supervisor's way of joining a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuperviseMode {
    /// Hears both parties; nobody hears the supervisor.
    Listen,
    /// Hears both parties; only the agent (the callee side) hears the supervisor.
    Whisper,
    /// Hears and is heard by both.
    Barge,
}

/// A snapshot of a call, for the APIs, the events and the call record.
#[derive(Debug, Clone, Serialize)]
pub struct CallInfo {
    pub call_id: CallId,
    /// The domain (tenant) the call belongs to, lowercase.
    pub domain: String,
    pub state: CallState,
    pub caller: Party,
    pub callee: Party,
    /// The caller's leg.
    pub caller_leg: Option<LegId>,
    /// The callee's answering leg (None while ringing or if never answered).
    pub callee_leg: Option<LegId>,
    /// Every leg rung for the callee (forking), answered or not.
    pub ringing_legs: Vec<LegId>,
    /// Milliseconds since the Unix epoch.
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub disposition: Option<Disposition>,
    /// Who hung up, once ended (None: the server, e.g. a `clear`).
    pub hangup_by: Option<Side>,
    /// Codec of each side as negotiated (caller's, callee's).
    pub caller_codec: Option<String>,
    pub callee_codec: Option<String>,
    /// Which side is on hold, if any.
    pub held: Option<Side>,
    /// Recording files (paths relative to the data dir), oldest first.
    pub recordings: Vec<String>,
    /// `true` for calls the server placed for an API (`makeCall`, click-to-call).
    pub api_originated: bool,
}

/// Calls as tests build them. They live beside [`CallInfo`] because tests in several
/// crates (store, api, the server's unit and end-to-end tests) need the same ones, and
/// a test-only module cannot be shared between crates; nothing but tests calls them.
#[doc(hidden)]
pub mod fixtures {
    use super::*;

    /// A party; `user_id` and `ext` when it is a directory user.
    pub fn party(uri: &str, user_id: Option<i64>, ext: Option<&str>, name: Option<&str>) -> Party {
        Party { uri: uri.into(), user_id, ext: ext.map(Into::into), display_name: name.map(Into::into) }
    }

    /// Call `id` in alpha.test from `caller` to `callee`, ringing since `started_ms`:
    /// no legs, no answer, no codecs yet.
    pub fn ringing_call(id: u64, started_ms: u64, caller: Party, callee: Party) -> CallInfo {
        CallInfo {
            call_id: CallId(id),
            domain: "alpha.test".into(),
            state: CallState::Ringing,
            caller,
            callee,
            caller_leg: None,
            callee_leg: None,
            ringing_legs: vec![],
            started_ms,
            answered_ms: None,
            ended_ms: None,
            disposition: None,
            hangup_by: None,
            caller_codec: None,
            callee_codec: None,
            held: None,
            recordings: vec![],
            api_originated: false,
        }
    }

    /// The same call ended as a call record has it: answered 2 s after `started_ms` (or
    /// never, then no answer), over at 10 s, hung up by the caller, PCMU both ways,
    /// placed by a phone, nothing recorded.
    pub fn ended_call(id: u64, started_ms: u64, caller: Party, callee: Party, answered: bool) -> CallInfo {
        CallInfo {
            state: CallState::Ended,
            answered_ms: answered.then_some(started_ms + 2_000),
            ended_ms: Some(started_ms + 10_000),
            disposition: Some(if answered { Disposition::Answered } else { Disposition::NoAnswer }),
            hangup_by: Some(Side::Caller),
            caller_codec: Some("PCMU".into()),
            callee_codec: answered.then(|| "PCMU".into()),
            ..ringing_call(id, started_ms, caller, callee)
        }
    }
}
