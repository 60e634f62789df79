//! `/v1/calls`: place, list, inspect and hang up calls. Two kinds share the path:
//! - legs (a dial-out to echo, one SIP dialog), addressed by their UUID leg id;
//! - two-party calls (the bridge: a user calling a user, or `makeCall` with `from` and
//!   `to`), addressed by their integer call id, listed with `?kind=call`.
//!
//! `{id}` is a call id when it is all digits, else a leg id; [`resolve_call_id`] turns
//! either into a call id for the mid-call control routes (`call_control.rs`).

use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::formats;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use engine::{CallId, CallInfo, DialOutRequest, LegId, Service};
use serde::Deserialize;
use std::time::Duration;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/calls", get(list).post(place))
        .route("/v1/calls/{leg_id}", get(get_one).delete(hang_up))
        .route("/v1/calls/{leg_id}/redirect", post(redirect))
        .route("/v1/calls/{leg_id}/intercept", post(intercept))
}

/// `{id}` as a two-party call id: digits are the call id itself, anything else a leg
/// id whose call is looked up. 404 when there is no such call or the caller may not
/// see it (another domain's, or for a user, a call they are no party of); 409 for a
/// leg that is in no two-party call.
pub async fn resolve_call_id(st: &AppState, scope: &Scope, id: &str) -> Result<CallId, ApiError> {
    let call_id = match parse_call_id(id) {
        Some(c) => c,
        None => match st.engine.call_of_leg(LegId(id.to_owned())).await? {
            Some(c) => c,
            // a leg of ours that is no party of a two-party call (an echo dial-out, a
            // room's participant): it exists, the call operations do not apply to it
            None => {
                let leg = st.engine.leg(LegId(id.to_owned())).await?.filter(|l| scope.sees_leg(l)).ok_or_else(ApiError::participant_not_found)?;
                return Err(ApiError::conflict(format!("leg {} is not a party of a two-party call", leg.leg_id)));
            }
        },
    };
    st.engine.call(call_id).await?.filter(|c| scope.sees_call(c)).map(|c| c.call_id).ok_or_else(ApiError::participant_not_found)
}

fn parse_call_id(id: &str) -> Option<CallId> {
    (!id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.parse().ok().map(CallId)).flatten()
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
    /// Click-to-call (`makeCall`): ring this party first (a user's extension, login or
    /// number, another number, or a SIP URI), presenting `to` as the caller; when it
    /// answers, ring `to` and bridge the two. The answer is then the two-party call
    /// (`from_user` and `hangup_after_ms` do not apply and are ignored; `service` is still checked).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$")]
    pub from: Option<String>,
    /// User part of our From on a dial-out (without `from`).
    #[serde(default)]
    pub from_user: Option<String>,
    /// Hang up this many milliseconds after answer.
    #[serde(default, deserialize_with = "opt_whole_u64")]
    pub hangup_after_ms: Option<u64>,
}

/// null, or a whole JSON number from 0 to 2^64-1 (`30000` or `30000.0`).
pub(crate) fn opt_whole_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
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
pub async fn place(State(st): State<AppState>, scope: Scope, body: Result<Json<PlaceCall>, axum::extract::rejection::JsonRejection>) -> Result<Response, ApiError> {
    let Json(p) = body?;
    let service = match p.service.as_deref() {
        None | Some("echo") => Service::Echo,
        Some(other) => return Err(ApiError::bad_request(format!("unknown service `{other}` (known: echo)"))),
    };
    if let Some(from) = p.from.as_deref() {
        check_target("from", from)?;
        check_target("to", &p.to)?;
        let call = st.engine.make_call(from, &p.to, scope.principal.domain).await?;
        return Ok((StatusCode::CREATED, Json(call)).into_response());
    }
    // One rule for where dial-outs go, shared with the conference dialect.
    // A directory user (extension, login, number) wins over the gateway.
    let (to, peer) = match st.engine.route_user(scope.principal.domain, &p.to).await? {
        Some(found) => {
            let (uri, peer) = found?;
            (uri, Some(peer))
        }
        None => (st.routing.target(&p.to)?, None),
    };
    let leg = st
        .engine
        .dial_out(DialOutRequest {
            to,
            peer,
            from_user: p.from_user,
            service,
            hangup_after: p.hangup_after_ms.map(Duration::from_millis),
            domain: scope.call_domain(),
            from_display: None,
            from_host: None,
            credentials: None,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(leg)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `leg` (default): every leg; `call`: two-party calls (integer `call_id`).
    pub kind: Option<String>,
}

/// Every leg, live and recently ended; with `?kind=call`, every two-party call.
#[utoipa::path(get, path = "/v1/calls", operation_id = "list_calls", tag = "calls", params(ListQuery),
    responses((status = 200, description = "Legs, or with `kind=call` two-party calls (call_id, state, caller, callee, legs, times, disposition)", body = [Object]),
        (status = 400, description = "An unknown `kind` or query parameter", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn list(State(st): State<AppState>, scope: Scope, q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>) -> Result<Response, ApiError> {
    let Query(q) = q?;
    match q.kind.as_deref() {
        None | Some("leg") => {
            let mut legs = st.engine.legs().await?;
            legs.retain(|l| scope.sees_leg(l));
            Ok(Json(legs).into_response())
        }
        Some("call") => {
            let mut calls = st.engine.calls().await?;
            calls.retain(|c| scope.sees_call(c));
            Ok(Json(calls).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!("unknown kind `{other}` (leg, call)"))),
    }
}

/// One leg (a UUID leg id), or one two-party call (an integer call id).
#[utoipa::path(get, path = "/v1/calls/{leg_id}", operation_id = "get_call", tag = "calls", params(("leg_id" = String, Path, description = "Leg id, or a two-party call's integer call id")),
    responses((status = 200, description = "The leg, or the two-party call", body = Object),
        (status = 400, description = "A leg id that is not UTF-8 once percent-decoded", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn get_one(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    if let Some(call_id) = parse_call_id(&id) {
        let call = st.engine.call(call_id).await?.filter(|c| scope.sees_call(c)).ok_or_else(ApiError::participant_not_found)?;
        return Ok(Json(call).into_response());
    }
    let leg = st.engine.leg(LegId(id)).await?.filter(|l| scope.sees_leg(l)).ok_or_else(ApiError::participant_not_found)?;
    Ok(Json(leg).into_response())
}

/// Hang up: BYE, or CANCEL while unanswered. For a two-party call (integer id): clear
/// it (both parties hung up, forks cancelled).
#[utoipa::path(delete, path = "/v1/calls/{leg_id}", operation_id = "hang_up_call", tag = "calls", params(("leg_id" = String, Path, description = "Leg id, or a two-party call's integer call id")),
    responses((status = 200, description = "The leg, or the two-party call", body = Object),
        (status = 400, description = "A leg id that is not UTF-8 once percent-decoded", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody),
        (status = 409, description = "Call has already ended", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn hang_up(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    if parse_call_id(&id).is_some() {
        let call_id = resolve_call_id(&st, &scope, &id).await?;
        return Ok(Json(st.engine.clear_call(call_id).await?).into_response());
    }
    // another domain's call is not found, like a missing one (a leg never changes domain)
    if !scope.is_superuser() {
        st.engine.leg(LegId(id.clone())).await?.filter(|l| scope.sees_leg(l)).ok_or_else(ApiError::participant_not_found)?;
    }
    Ok(Json(st.engine.hangup(LegId(id)).await?).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectBody {
    /// Who to ring instead: a user's extension, login or number, a number, or a SIP URI.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$")]
    pub to: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterceptBody {
    /// The device (or user, whose devices all ring) picking the call up.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$")]
    pub device: String,
}

/// A ringing call only; 409 once answered or over.
async fn ringing_call(st: &AppState, scope: &Scope, id: &str) -> Result<CallId, ApiError> {
    let call_id = resolve_call_id(st, scope, id).await?;
    match st.engine.call(call_id).await? {
        Some(c) if c.state == engine::CallState::Ringing && c.caller_leg.is_some() => Ok(call_id),
        Some(c) if c.state == engine::CallState::Ringing => Err(ApiError::conflict("The call's first party has not answered yet")),
        Some(_) => Err(ApiError::conflict("The call is answered or over: only a ringing call can be redirected or picked up")),
        None => Err(ApiError::participant_not_found()),
    }
}

fn check_target(name: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() || v.chars().count() > 256 || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!("`{name}` must be a user, a number or a SIP URI")));
    }
    Ok(())
}

/// Redirect a ringing call: its forks are cancelled and `to` is rung instead.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/redirect", operation_id = "redirect_call", tag = "calls", request_body = RedirectBody,
    params(("leg_id" = String, Path, description = "A two-party call's integer call id, or one of its leg ids")),
    responses((status = 200, description = "The two-party call, ringing its new callee", body = Object),
        (status = 400, description = "Bad input (message says what)", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody),
        (status = 409, description = "The call is answered or over", body = ErrorBody),
        (status = 422, description = "No route to the target (a user with no registered device, a number with no gateway)", body = ErrorBody),
        (status = 503, description = "Out of RTP ports, or the server is shutting down", body = ErrorBody)))]
pub async fn redirect(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>, body: Result<Json<RedirectBody>, axum::extract::rejection::JsonRejection>) -> Result<Json<CallInfo>, ApiError> {
    let call_id = ringing_call(&st, &scope, &id).await?;
    let Json(b) = body?;
    check_target("to", &b.to)?;
    Ok(Json(st.engine.redirect_call(call_id, &b.to).await?))
}

/// Intercept (pick up) a ringing call: `device` is rung too, and takes the call when it answers.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/intercept", operation_id = "intercept_call", tag = "calls", request_body = InterceptBody,
    params(("leg_id" = String, Path, description = "A two-party call's integer call id, or one of its leg ids")),
    responses((status = 200, description = "The two-party call, ringing the intercepting device", body = Object),
        (status = 400, description = "Bad input (message says what)", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call/Participant not found", body = ErrorBody),
        (status = 409, description = "The call is answered or over", body = ErrorBody),
        (status = 422, description = "No route to the device", body = ErrorBody),
        (status = 503, description = "Out of RTP ports, or the server is shutting down", body = ErrorBody)))]
pub async fn intercept(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>, body: Result<Json<InterceptBody>, axum::extract::rejection::JsonRejection>) -> Result<Json<CallInfo>, ApiError> {
    let call_id = ringing_call(&st, &scope, &id).await?;
    let Json(b) = body?;
    check_target("device", &b.device)?;
    Ok(Json(st.engine.intercept_call(call_id, &b.device).await?))
}
