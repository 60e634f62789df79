//! Live audio out on the native API (issue 12 item 8): stream a room's mix, or what
//! one leg says and/or hears, as 16-bit PCM over a WebSocket to a configured URL, and
//! optionally play what the receiver sends back. The wire protocol is in
//! `docs/live-audio.md`; the streams themselves are the engine's
//! ([`engine::apps::live_audio`]) and the socket the shell's.
//!
//! | verb | path | what |
//! |---|---|---|
//! | POST | `/rest/v1/uc/conferences/{confid}/stream` | stream the room's mix |
//! | DELETE | `/rest/v1/uc/conferences/{confid}/stream` | stop it |
//! | POST | `/v1/calls/{leg_id}/stream` | stream a leg (`direction`: `says`, `hears`, `both`) |
//! | POST | `/v1/calls/{leg_id}/stream/stop` | stop it (as `/record` and `/record/stop`) |
//! | GET | `/v1/streams` | every live stream the caller may see, with its counters |

use crate::auth::Scope;
use crate::conferences::lookup::ConfRef;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::formats;
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use engine::apps::live_audio::Direction;
use engine::{LegId, StreamInfo, StreamRequest, StreamTarget};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rest/v1/uc/conferences/{confid}/stream", post(start_room).delete(stop_room))
        .route("/v1/calls/{leg_id}/stream", post(start_leg))
        .route("/v1/calls/{leg_id}/stream/stop", post(stop_leg))
        .route("/v1/streams", axum::routing::get(list_streams))
}

/// The sample rate when none is given: the mixing rate, so nothing is lost.
pub const DEFAULT_SAMPLE_RATE: u32 = 16_000;

/// Body of POST on a room's `.../stream`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomStreamBody {
    /// Where to stream: `ws://` or `wss://`, printable ASCII, and within the server's
    /// `[live_audio] allowed_urls` (else 400).
    pub url: String,
    /// 8000 or 16000 (default).
    #[serde(default, deserialize_with = "crate::calls::opt_whole_u64")]
    #[schema(value_type = Option<u32>)]
    pub sample_rate: Option<u64>,
    /// Play what the receiver sends back into the room (everyone hears it; the stream
    /// leaves it out).
    #[serde(default)]
    pub play_back: bool,
}

/// What a leg's stream carries.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamDirection {
    /// What the leg says.
    Says,
    /// What it hears (its room's mix without its own voice).
    Hears,
    /// Both, summed: the conversation.
    #[default]
    Both,
}

/// Body of POST on `/v1/calls/{leg_id}/stream`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegStreamBody {
    /// As for a room.
    pub url: String,
    /// 8000 or 16000 (default).
    #[serde(default, deserialize_with = "crate::calls::opt_whole_u64")]
    #[schema(value_type = Option<u32>)]
    pub sample_rate: Option<u64>,
    /// `says`, `hears` or `both` (default).
    #[serde(default)]
    pub direction: StreamDirection,
    /// Play what the receiver sends back to the leg (over what it hears).
    #[serde(default)]
    pub play_back: bool,
}

/// A live audio stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    /// `ls-<n>`; also in the `start` message and the `stream_started`/`stream_stopped` events.
    pub stream_id: String,
    /// The room streamed (null for a leg).
    pub confid: Option<String>,
    /// The leg streamed (null for a room).
    pub leg_id: Option<String>,
    /// For a leg: `says`, `hears` or `both` (null for a room).
    pub direction: Option<String>,
    pub url: String,
    pub sample_rate: u32,
    pub play_back: bool,
    pub started_ms: u64,
    pub domain: String,
}

impl From<StreamInfo> for StreamView {
    fn from(s: StreamInfo) -> Self {
        StreamView {
            stream_id: s.stream_id,
            confid: s.confid,
            leg_id: s.leg_id.map(|l| l.0),
            direction: s.direction.map(str::to_owned),
            url: s.url,
            sample_rate: s.sample_rate,
            play_back: s.play_back,
            started_ms: s.started_ms,
            domain: s.domain,
        }
    }
}

/// A live stream and how it is going.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamStateView {
    #[serde(flatten)]
    pub stream: StreamView,
    /// Frames the receiver did not take in time (the server's queue overwrote them).
    pub dropped_out: u64,
    /// Frames sent back that were refused because too much was queued to play.
    pub dropped_back: u64,
    /// Times playback ran dry after it had started.
    pub underruns: u64,
}

fn request(url: String, sample_rate: Option<u64>, play_back: bool, direction: Direction) -> Result<StreamRequest, ApiError> {
    if !formats::matches(formats::WS_URL, &url) {
        return Err(ApiError::bad_request("`url` must be a ws:// or wss:// URL of printable ASCII"));
    }
    let sample_rate = match sample_rate {
        None => DEFAULT_SAMPLE_RATE,
        Some(r @ (8000 | 16000)) => r as u32,
        Some(_) => return Err(ApiError::bad_request("`sample_rate` must be 8000 or 16000")),
    };
    Ok(StreamRequest { url, sample_rate, play_back, direction })
}

/// A leg the caller may see; another domain's is not found, like a missing one.
async fn visible_leg(st: &AppState, scope: &Scope, id: String) -> Result<LegId, ApiError> {
    let leg = LegId(id);
    st.engine.leg(leg.clone()).await?.filter(|l| scope.sees_leg(l)).ok_or_else(ApiError::participant_not_found)?;
    Ok(leg)
}

/// Stream the room's mix live.
#[utoipa::path(post, path = "/rest/v1/uc/conferences/{confid}/stream", operation_id = "start_room_stream", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    request_body = RoomStreamBody,
    responses((status = 201, description = "Streaming: the server connects to `url` (protocol in docs/live-audio.md); `stream_started` follows, `stream_stopped` at the end", body = StreamView),
        (status = 400, description = "Bad input: bad JSON, a `url` that is not ws(s):// or not within `[live_audio] allowed_urls`, a `sample_rate` other than 8000 or 16000, a malformed lookup expression", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody),
        (status = 409, description = "The room is already being streamed", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn start_room(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    body: Result<Json<RoomStreamBody>, JsonRejection>,
) -> Result<(StatusCode, Json<StreamView>), ApiError> {
    let Json(b) = body?;
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    let req = request(b.url, b.sample_rate, b.play_back, Direction::Both)?;
    let s = st.engine.start_stream(StreamTarget::Room(confid), req).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// Stop streaming the room.
#[utoipa::path(delete, path = "/rest/v1/uc/conferences/{confid}/stream", operation_id = "stop_room_stream", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    responses((status = 200, description = "The stream as it ended: the receiver gets the `stop` message, then the close", body = StreamView),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody),
        (status = 409, description = "The room is not being streamed", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn stop_room(State(st): State<AppState>, scope: Scope, ApiPath(conf): ApiPath<String>) -> Result<Json<StreamView>, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    Ok(Json(st.engine.stop_stream(StreamTarget::Room(confid)).await?.into()))
}

/// Stream what one leg says and/or hears live.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/stream", operation_id = "start_leg_stream", tag = "call control",
    params(("leg_id" = String, Path, description = "The leg's id")),
    request_body = LegStreamBody,
    responses((status = 201, description = "Streaming: the server connects to `url` (protocol in docs/live-audio.md); `stream_started` follows, `stream_stopped` at the end", body = StreamView),
        (status = 400, description = "Bad input: bad JSON, a `url` that is not ws(s):// or not within `[live_audio] allowed_urls`, a `sample_rate` other than 8000 or 16000, an unknown `direction`", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody),
        (status = 409, description = "The leg has ended, has no media yet, or is already being streamed", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn start_leg(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<LegStreamBody>, JsonRejection>,
) -> Result<(StatusCode, Json<StreamView>), ApiError> {
    let Json(b) = body?;
    let direction = match b.direction {
        StreamDirection::Says => Direction::Says,
        StreamDirection::Hears => Direction::Hears,
        StreamDirection::Both => Direction::Both,
    };
    let leg = visible_leg(&st, &scope, id).await?;
    let req = request(b.url, b.sample_rate, b.play_back, direction)?;
    let s = st.engine.start_stream(StreamTarget::Leg(leg), req).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// Stop streaming the leg.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/stream/stop", operation_id = "stop_leg_stream", tag = "call control",
    params(("leg_id" = String, Path, description = "The leg's id")),
    responses((status = 200, description = "The stream as it ended: the receiver gets the `stop` message, then the close", body = StreamView),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody),
        (status = 409, description = "The leg is not being streamed", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn stop_leg(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<StreamView>, ApiError> {
    let leg = visible_leg(&st, &scope, id).await?;
    Ok(Json(st.engine.stop_stream(StreamTarget::Leg(leg)).await?.into()))
}

/// Every live stream the caller may see (a domain's key: its domain's), oldest first.
#[utoipa::path(get, path = "/v1/streams", operation_id = "list_streams", tag = "media",
    responses((status = 200, description = "Live streams of rooms and legs, with what was dropped on the way", body = [StreamStateView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn list_streams(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<StreamStateView>>, ApiError> {
    let streams = st.engine.streams().await?;
    Ok(Json(
        streams
            .into_iter()
            .filter(|s| scope.sees_domain_name(&s.info.domain))
            .map(|s| StreamStateView { stream: s.info.into(), dropped_out: s.dropped_out, dropped_back: s.dropped_back, underruns: s.underruns })
            .collect(),
    ))
}
