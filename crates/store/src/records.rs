//! What the store gives back: one call detail record per leg, one history row per
//! room. Both serialise to JSON as the APIs will show them.

use engine::{Direction, LegId};
use serde::Serialize;

/// One leg as it ended: the call detail record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    pub leg_id: LegId,
    pub call_id: String,
    pub direction: Direction,
    /// The engine's service name (`echo`, `ring`, …), as its JSON shows it. A string,
    /// not `engine::Service`, so records written by a newer build still read back.
    pub service: String,
    pub remote_uri: String,
    pub local_uri: String,
    pub local_tag: Option<String>,
    pub remote_tag: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// `None`: never answered.
    pub answered_ms: Option<u64>,
    /// `None`: the leg was still up when it was recorded.
    pub ended_ms: Option<u64>,
    /// SIP status of the end (e.g. 487), or 0 for a local hang-up.
    pub end_status: Option<u16>,
    pub end_reason: Option<String>,
    pub codec: Option<String>,
    /// The room the leg was a participant of, if any.
    pub confid: Option<String>,
}

/// One room's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomRecord {
    pub confid: String,
    pub confnumber: String,
    pub confroomnum: String,
    pub confuri: String,
    pub site: String,
    /// Milliseconds since the Unix epoch when the room started.
    pub startts: u64,
    /// `None`: still open, or the server stopped before it ended.
    pub ended_ms: Option<u64>,
    /// Most participants present at once; 0 until the room has ended.
    pub max_participants: u32,
}
