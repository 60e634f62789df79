//! `/v1/calls`: place, list, inspect and hang up calls (legs). The first callable
//! surface; the conference API builds on the same engine calls.

use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::formats;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use engine::{DialOutRequest, LegId, LegInfo, Service};
use serde::Deserialize;
use std::time::Duration;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/calls", get(list).post(place))
        .route("/v1/calls/{leg_id}", get(get_one).delete(hang_up))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceCall {
    /// SIP URI to call (`sip:bob@10.0.0.5:5070`, `<sip:...>` or `bob@10.0.0.5`), or a
    /// number (digits, `+`, `*`, `#`; `tel:` too), which rings that directory user's registered phone when it is one (extension, login or number), else goes to `[routing] gateway`.
    pub to: String,
    /// What the answered call is connected to: `echo` (default).
    #[serde(default)]
    pub service: Option<String>,
    /// User part of our From.
    #[serde(default)]
    pub from: Option<String>,
    /// Hang up this many milliseconds after answer.
    #[serde(default, deserialize_with = "opt_whole_u64")]
    pub hangup_after_ms: Option<u64>,
}

/// null, or a whole JSON number from 0 to 2^64-1 (`30000` or `30000.0`).
fn opt_whole_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => formats::whole_u64(&n).map(Some).ok_or_else(|| D::Error::custom(format!("expected an integer from 0 to 2^64-1, not {n}"))),
        other => Err(D::Error::custom(format!("expected an integer from 0 to 2^64-1, not {other}"))),
    }
}

/// Place a call.
#[utoipa::path(post, path = "/v1/calls", operation_id = "place_call", tag = "calls", request_body = PlaceCall,
    responses((status = 201, description = "The new leg (leg_id, call_id, state, ...)", body = Object),
        (status = 400, description = "Bad input: not JSON, not `Content-Type: application/json`, a missing or unknown field, a `to` that is neither a SIP URI nor a number, an unknown service (message says what)", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 422, description = "No route: a directory user with no registered device, a number with no `[routing] gateway` configured, or a host name that does not resolve (within 3 s)", body = ErrorBody),
        (status = 503, description = "Out of RTP ports, or the server is shutting down", body = ErrorBody)))]
pub async fn place(State(st): State<AppState>, scope: Scope, body: Result<Json<PlaceCall>, axum::extract::rejection::JsonRejection>) -> Result<(StatusCode, Json<LegInfo>), ApiError> {
    let Json(p) = body?;
    // One rule for where dial-outs go, shared with the conference dialect.
    // A directory user (extension, login, number) wins over the gateway.
    let (to, peer) = match st.engine.route_user(scope.principal.domain, &p.to).await? {
        Some(found) => {
            let (uri, peer) = found?;
            (uri, Some(peer))
        }
        None => (st.routing.target(&p.to)?, None),
    };
    let service = match p.service.as_deref() {
        None | Some("echo") => Service::Echo,
        Some(other) => return Err(ApiError::bad_request(format!("unknown service `{other}` (known: echo)"))),
    };
    let leg = st
        .engine
        .dial_out(DialOutRequest {
            to,
            peer,
            from_user: p.from,
            service,
            hangup_after: p.hangup_after_ms.map(Duration::from_millis),
            domain: scope.call_domain(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(leg)))
}

/// Every leg, live and recently ended.
#[utoipa::path(get, path = "/v1/calls", operation_id = "list_calls", tag = "calls",
    responses((status = 200, description = "Legs", body = [Object]), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn list(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<LegInfo>>, ApiError> {
    let mut legs = st.engine.legs().await?;
    legs.retain(|l| scope.sees_leg(l));
    Ok(Json(legs))
}

/// One leg.
#[utoipa::path(get, path = "/v1/calls/{leg_id}", operation_id = "get_call", tag = "calls", params(("leg_id" = String, Path, description = "Leg id")),
    responses((status = 200, description = "The leg", body = Object),
        (status = 400, description = "A leg id that is not UTF-8 once percent-decoded", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn get_one(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<LegInfo>, ApiError> {
    st.engine.leg(LegId(id)).await?.filter(|l| scope.sees_leg(l)).map(Json).ok_or_else(ApiError::participant_not_found)
}

/// Hang up: BYE, or CANCEL while unanswered.
#[utoipa::path(delete, path = "/v1/calls/{leg_id}", operation_id = "hang_up_call", tag = "calls", params(("leg_id" = String, Path, description = "Leg id")),
    responses((status = 200, description = "The leg", body = Object),
        (status = 400, description = "A leg id that is not UTF-8 once percent-decoded", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody),
        (status = 409, description = "Call has already ended", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn hang_up(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<LegInfo>, ApiError> {
    // another domain's call is not found, like a missing one (a leg never changes domain)
    if !scope.is_superuser() {
        st.engine.leg(LegId(id.clone())).await?.filter(|l| scope.sees_leg(l)).ok_or_else(ApiError::participant_not_found)?;
    }
    Ok(Json(st.engine.hangup(LegId(id)).await?))
}
