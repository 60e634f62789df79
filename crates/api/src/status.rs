//! `/v1/status` (what the server holds right now) and `/v1/events` (recent engine
//! events — DTMF digits, legs and rooms starting and ending — for applications that
//! poll instead of taking hooks).
//!
//! Both are scoped like everything else (see [`crate::auth`]): the superuser sees the
//! whole server; anyone else sees the counts of its own domain's (or, for a user, its
//! own) calls and rooms, without the server-wide figures (SIP transactions, RTP ports),
//! and only the events of those calls and rooms (plus its domain's registrations, for
//! an admin). Other domains' events are skipped, so `seq` jumps over them.

use crate::conferences::list::parse_count;
use crate::auth::Scope;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use engine::{EngineEvent, LoggedEvent};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/status", get(status)).route("/v1/events", get(events))
}

/// Live legs, rooms, SIP transactions and RTP ports in use, and the engine events the
/// durable outbox had to drop (`events_dropped`, see docs/events.md). For a credential
/// of one domain: only `live_legs`, `legs`, `rooms` (its own) and `shutting_down`.
#[utoipa::path(get, path = "/v1/status", operation_id = "get_status", tag = "service",
    responses((status = 200, description = "Counts", body = Object,
        example = json!({"live_legs": 3, "legs": 5, "rooms": 1, "transactions": 2, "rtp_ports_in_use": 6, "shutting_down": false})),
        (status = 401, description = "Missing or invalid bearer token", body = crate::error::ErrorBody),
        (status = 503, description = "Server is shutting down", body = crate::error::ErrorBody)))]
pub async fn status(State(st): State<AppState>, scope: Scope) -> Result<Json<serde_json::Value>, ApiError> {
    let all = st.engine.status().await?;
    if scope.is_superuser() {
        let mut v = serde_json::to_value(all).unwrap_or_default();
        if st.events.live.is_some() {
            v["events_dropped"] = st.events.dropped.load(std::sync::atomic::Ordering::Relaxed).into();
        }
        return Ok(Json(v));
    }
    let legs = st.engine.legs().await?;
    let mine = legs.iter().filter(|l| scope.sees_leg(l));
    let (count, live) = mine.fold((0, 0), |(n, live), l| (n + 1, live + usize::from(l.state != engine::LegState::Ended)));
    let rooms = if scope.is_user() {
        st.engine.rooms().await?.iter().filter(|r| scope.sees_room(r)).count()
    } else {
        st.engine.room_list().rooms.iter().filter(|r| scope.sees_room_info(r)).count()
    };
    Ok(Json(serde_json::json!({ "live_legs": live, "legs": count, "rooms": rooms, "shutting_down": all.shutting_down })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a larger `seq` (default 0: everything still kept).
    #[param(value_type = Option<u64>)]
    pub after: Option<String>,
    /// At most this many, 0 to 10,000 (default 1000).
    #[param(value_type = Option<u64>, maximum = 10000)]
    pub limit: Option<String>,
}

/// Most events one poll returns (the log keeps that many).
pub const MAX_EVENTS: u64 = engine::events::EVENT_LOG_CAPACITY as u64;

/// Recent engine events, oldest first, each with `seq`, `ts` and `type`
/// (`leg_started`, `leg_answered`, `leg_ended`, `dtmf`, `room_started`, `room_ended`).
/// Poll with `after` = the last `seq` seen; a jump in `seq` means events were dropped
/// (the log keeps the newest 10,000).
#[utoipa::path(get, path = "/v1/events", operation_id = "list_events", tag = "service", params(EventsQuery),
    responses((status = 200, description = "Events, oldest first", body = Object,
        example = json!([{"seq": 7, "ts": 1795349968214u64, "type": "dtmf", "leg_id": "9274845f-f4df-43a6-a9ed-b75019a11854", "digit": "5", "duration_ms": 160}])),
        (status = 400, description = "Bad query: `after` not an integer from 0 to 2^64-1, `limit` not one from 0 to 10000, or another parameter", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = crate::error::ErrorBody)))]
pub async fn events(
    State(st): State<AppState>,
    scope: Scope,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<LoggedEvent>>, ApiError> {
    let Query(q) = q?;
    let after = parse_count("after", q.after.as_deref(), u64::MAX)?.unwrap_or(0);
    let limit = parse_count("limit", q.limit.as_deref(), MAX_EVENTS)?.unwrap_or(1000);
    if scope.is_superuser() {
        return Ok(Json(st.engine.events_after(after, limit as usize)));
    }
    let dir = st.directory_now();
    let visible = |e: &LoggedEvent| match &e.event {
        EngineEvent::LegStarted(l) | EngineEvent::LegAnswered(l) | EngineEvent::LegEnded(l) => scope.sees_leg(l),
        // a user is told about its calls, not about rooms or digits it cannot place
        EngineEvent::Dtmf { domain, .. } => !scope.is_user() && scope.sees_domain_name(domain),
        EngineEvent::RoomStarted(r) | EngineEvent::RoomEnded { info: r, .. } => scope.sees_room_info(r),
        EngineEvent::BindingSaved(b) => !scope.is_user() && scope.sees_domain_id(b.domain_id),
        EngineEvent::BindingRemoved { user_id, .. } => {
            !scope.is_user() && dir.user(*user_id).is_some_and(|u| scope.sees_domain_id(u.domain_id))
        }
        EngineEvent::CallStarted(c)
        | EngineEvent::CallRinging(c)
        | EngineEvent::CallAnswered(c)
        | EngineEvent::CallHeld(c)
        | EngineEvent::CallRetrieved(c)
        | EngineEvent::CallEnded(c)
        | EngineEvent::CallTransferred { info: c, .. }
        | EngineEvent::RecordingStarted { info: c, .. }
        | EngineEvent::RecordingStopped { info: c, .. } => scope.sees_call(c),
        // a wake-up is the push sender's business, never logged (see the shell)
        EngineEvent::WakeUser { .. } => false,
        // rooms' prompts and recordings: for those who may see the room's domain
        EngineEvent::PromptEnded { domain, .. } | EngineEvent::RecordingCompleted { domain, .. } => {
            !scope.is_user() && scope.sees_domain_name(domain)
        }
        EngineEvent::RoomRecordingStarted(r) | EngineEvent::RoomRecordingStopped(r) => !scope.is_user() && scope.sees_domain_name(&r.domain),
        EngineEvent::StreamStarted(s) | EngineEvent::StreamStopped { info: s, .. } => !scope.is_user() && scope.sees_domain_name(&s.domain),
        // mailbox work is the voicemail shell's, never logged either
        EngineEvent::VoicemailRecorded { .. } | EngineEvent::VoicemailLogin { .. } | EngineEvent::VoicemailPlayed { .. } => false,
        // a message is its recipient's, and their domain admins'
        EngineEvent::MessageAccepted(m) => scope.sees_user(m.user_id, m.domain_id),
        EngineEvent::MessageDelivered { user_id, .. } | EngineEvent::MessageDeferred { user_id, .. } | EngineEvent::MessageFailed { user_id, .. } => {
            dir.user(*user_id).is_some_and(|u| scope.sees_user(u.id, u.domain_id))
        }
    };
    let events = st.engine.events_after(after, usize::MAX);
    Ok(Json(events.into_iter().filter(|e| visible(e)).take(limit as usize).collect()))
}
