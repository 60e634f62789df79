//! MX Proxy's call control (reference 001, `mxproxy.md` §3–§4): make, answer
//! (intercept), transfer (redirect), clear, hold, retrieve, record and conference
//! calls of the token's user, with CSTA-shaped bodies.
//!
//! MX's ids are the integer CSTA callIDs; ours are the engine's [`CallId`]s, the same
//! numbers the native API shows. `deviceId` is the user's extension. As in MX, the
//! bodies of `connectionCleared`, `held` and `retrieved` carry `type: ""` and
//! `timestamp: 0` (MX decoded them afresh from the switch); `callInfo` carries the
//! latest `Delivered` (ringing) or `Established` (answered) event, and the call is not
//! found once it has ended (MX removes it on ConnectionCleared; its README's "404 once
//! answered" is not what it does).

use super::{bearer_claims, mx_json, parse_body, MxError, MxState};
use crate::tokens::Claims;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use engine::users::{DirectorySnapshot, User};
use engine::handle::CallOp;
use engine::{CallId, CallInfo, CallState, EngineError, EngineHandle, Party, Side};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The engine, which MX state carries once the shell has one.
pub(super) fn engine(state: &MxState) -> Result<&EngineHandle, MxError> {
    state.engine.as_ref().ok_or_else(|| MxError::new(StatusCode::SERVICE_UNAVAILABLE, "service unavailable"))
}

/// The token's user, or MX's 401.
pub(super) fn user_of(state: &MxState, headers: &HeaderMap) -> Result<(Claims, User, Arc<DirectorySnapshot>), MxError> {
    let claims = bearer_claims(state, headers)?;
    let dir = state.tokens.directory();
    let user = dir.user(claims.sb_uid).filter(|u| u.enabled).cloned().ok_or_else(|| MxError::bearer("active mx connection unavailable"))?;
    Ok((claims, user, dir))
}

/// `{id}` as Go's `strconv.ParseInt` would take it; MX answers 404 with its message.
pub(super) fn parse_id(raw: &str) -> Result<CallId, MxError> {
    match raw.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(CallId(n as u64)),
        Ok(_) => Err(MxError::new(StatusCode::NOT_FOUND, "not found")),
        Err(e) => {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
                _ => "invalid syntax",
            };
            Err(MxError::new(StatusCode::NOT_FOUND, format!("strconv.ParseInt: parsing {raw:?}: {why}")))
        }
    }
}

/// The user's extension (MX deviceId), else its login.
fn device_of(user: &User) -> String {
    user.ext.clone().unwrap_or_else(|| user.login.clone())
}

/// Which side of `call` the user is, if a party of it.
fn side_of(call: &CallInfo, user: &User) -> Option<Side> {
    let is = |p: &Party| p.user_id == Some(user.id);
    if is(&call.caller) {
        Some(Side::Caller)
    } else if is(&call.callee) {
        Some(Side::Callee)
    } else {
        None
    }
}

/// The user's call `id`, live; MX's 404 otherwise (another user's call is not found).
pub(super) async fn live_call_of(state: &MxState, user: &User, id: CallId) -> Result<(CallInfo, Side), MxError> {
    let call = engine(state)?.call(id).await.map_err(engine_error)?.ok_or_else(MxError::not_found)?;
    let side = side_of(&call, user).ok_or_else(MxError::not_found)?;
    if call.state == CallState::Ended {
        return Err(MxError::not_found());
    }
    Ok((call, side))
}

/// An error of [`CallOp::JoinScheduled`]: outside the conference's window is 403 with
/// the reason (not started, ended), an unknown access id 404 `conference not found`.
pub(super) fn scheduled_error(e: EngineError) -> MxError {
    match e {
        EngineError::Conflict(text) => MxError::forbidden(text),
        EngineError::RoomNotFound => MxError::new(StatusCode::NOT_FOUND, "conference not found"),
        other => engine_error(other),
    }
}

fn engine_error(e: EngineError) -> MxError {
    match e {
        EngineError::LegNotFound | EngineError::LegEnded => MxError::not_found(),
        EngineError::ShuttingDown => MxError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        // What MX answered for a CSTA error from the switch.
        other => MxError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// The user part of a party, as MX shows devices: the extension when a user, else the
/// URI's user part, else the URI.
fn device_name(p: &Party) -> String {
    if let Some(ext) = &p.ext {
        return ext.clone();
    }
    let uri = p.uri.trim_start_matches('<').trim_end_matches('>');
    let rest = uri.strip_prefix("sip:").or_else(|| uri.strip_prefix("sips:")).or_else(|| uri.strip_prefix("tel:")).unwrap_or(uri);
    rest.split(['@', ';']).next().unwrap_or(rest).to_owned()
}

fn epoch_s(ms: u64) -> u64 {
    ms / 1000
}

/// The CSTA event MX would have stored for this call: Delivered while it rings,
/// Established once answered.
fn call_info_event(call: &CallInfo, device: &str) -> Value {
    let (calling, called) = (device_name(&call.caller), device_name(&call.callee));
    let gcid = call.call_id.0.to_string();
    match call.state {
        CallState::Ringing => json!({
            "type": "Delivered", "callId": call.call_id.0, "deviceId": device, "timestamp": epoch_s(call.started_ms),
            "globalCallId": gcid, "callingDevice": calling, "calledDevice": called, "alertingDevice": called,
            "lastRedirectionDevice": "", "localConnectionInfo": "alerting", "cause": "normal",
        }),
        _ => json!({
            "type": "Established", "callId": call.call_id.0, "deviceId": device,
            "timestamp": epoch_s(call.answered_ms.unwrap_or(call.started_ms)),
            "globalCallId": gcid, "answeringDevice": called,
            "answeringDisplayName": call.callee.display_name.clone().unwrap_or_default(),
            "callingDevice": calling, "calledDevice": called,
            "callingDisplayName": call.caller.display_name.clone().unwrap_or_default(), "cause": "normal",
        }),
    }
}

/// The body MX sends for cleared / held / retrieved: decoded afresh, so no type and a
/// zero timestamp.
fn csta_body(call_id: CallId, device: &str, releasing: &str, cause: &str) -> Value {
    json!({ "type": "", "callId": call_id.0, "deviceId": device, "timestamp": 0, "releasingDevice": releasing, "cause": cause })
}

#[derive(Deserialize, Default)]
struct MakeCallBody {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    device: String,
}

/// `POST /calls`: makeCall. The server rings `from` (default: the user's own phones),
/// and when it answers, calls `to`.
pub(super) async fn make_call(State(state): State<MxState>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let (claims, user, _) = user_of(&state, &headers)?;
    let b: MakeCallBody = parse_body(&headers, &body)?;
    if b.to.trim().is_empty() {
        return Err(MxError::bad_request("bad request: no destination"));
    }
    let from = if b.from.trim().is_empty() { device_of(&user) } else { b.from.trim().to_owned() };
    let call = engine(&state)?
        .make_call(&from, b.to.trim(), Some(claims.sb_dom))
        .await
        .map_err(|e| match e {
            // A CSTA error on makeCall is MX's 400.
            EngineError::ShuttingDown => MxError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => MxError::bad_request(other.to_string()),
        })?;
    let _ = b.device;
    Ok(mx_json(
        StatusCode::OK,
        &json!({ "makeCall": { "callId": call.call_id.0, "deviceId": from, "calledDevice": b.to.trim() } }),
    ))
}

#[derive(Deserialize, Default)]
struct AnswerBody {
    #[serde(default)]
    device: String,
    #[serde(default)]
    timeout: Option<i64>,
    #[serde(default)]
    assign: Option<bool>,
}

/// `PUT /calls/{id}`: answer a ringing call on a SIP device (ours: intercept it there;
/// the device defaults to the user's own phones).
pub(super) async fn intercept(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    let b: AnswerBody = parse_body(&headers, &body)?;
    let call = engine(&state)?.call(id).await.map_err(engine_error)?.ok_or_else(MxError::not_found)?;
    // Pickup is for calls of the user's domain; the user need not be a party.
    if call.state == CallState::Ended || user_domain_mismatch(&state, &user, &call) {
        return Err(MxError::not_found());
    }
    let device = if b.device.trim().is_empty() { device_of(&user) } else { b.device.trim().to_owned() };
    engine(&state)?.intercept_call(id, &device).await.map_err(engine_error)?;
    Ok(mx_json(
        StatusCode::OK,
        &json!({ "sipAnswer": { "callId": id.0, "device": device, "timeout": b.timeout.unwrap_or(30), "assign": b.assign.unwrap_or(false) } }),
    ))
}

fn user_domain_mismatch(state: &MxState, user: &User, call: &CallInfo) -> bool {
    let dir = state.tokens.directory();
    dir.domain(user.domain_id).map(|d| d.name.to_ascii_lowercase()) != Some(call.domain.clone())
}

#[derive(Deserialize, Default)]
struct TransferBody {
    #[serde(default)]
    device: String,
    #[serde(default)]
    to: String,
}

/// `POST /calls/{id}`: single-step transfer. Ringing: the call is redirected to `to`;
/// answered: the other party is transferred to `to`.
pub(super) async fn transfer(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    let b: TransferBody = parse_body(&headers, &body)?;
    if b.to.trim().is_empty() {
        return Err(MxError::bad_request("bad request: no destination"));
    }
    let (call, side) = live_call_of(&state, &user, id).await?;
    if call.state == CallState::Ringing {
        engine(&state)?.redirect_call(id, b.to.trim()).await.map_err(engine_error)?;
    } else {
        engine(&state)?.call_control(id, CallOp::Transfer { side: side.other(), to: Some(b.to.trim().to_owned()), replaces: None }).await.map_err(engine_error)?;
    }
    let device = if b.device.trim().is_empty() { device_of(&user) } else { b.device.trim().to_owned() };
    Ok(mx_json(StatusCode::OK, &json!({ "transfer": { "callId": id.0, "device": device, "to": b.to.trim() } })))
}

/// `DELETE /calls/{id}`: clear the call.
pub(super) async fn clear(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    live_call_of(&state, &user, id).await?;
    engine(&state)?.clear_call(id).await.map_err(engine_error)?;
    let device = device_of(&user);
    Ok(mx_json(StatusCode::OK, &json!({ "connectionCleared": csta_body(id, &device, &device, "normal") })))
}

/// `GET /calls/{id}`: the latest Delivered or Established event of the call.
pub(super) async fn call_info(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    let (call, _) = live_call_of(&state, &user, id).await?;
    Ok(mx_json(StatusCode::OK, &json!({ "callInfo": call_info_event(&call, &device_of(&user)) })))
}

/// `PUT /calls/{id}/hold`: the user holds the other party.
pub(super) async fn hold(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    let (_, side) = live_call_of(&state, &user, id).await?;
    engine(&state)?.call_control(id, CallOp::Hold { side: side.other(), inactive: false }).await.map_err(engine_error)?;
    let device = device_of(&user);
    Ok(mx_json(StatusCode::OK, &json!({ "held": csta_body(id, &device, &device, "normal") })))
}

/// `PUT /calls/{id}/unhold`: the user takes the other party off hold.
pub(super) async fn unhold(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    live_call_of(&state, &user, id).await?;
    engine(&state)?.call_control(id, CallOp::Unhold).await.map_err(engine_error)?;
    let device = device_of(&user);
    Ok(mx_json(StatusCode::OK, &json!({ "retrieved": csta_body(id, &device, &device, "normal") })))
}

/// `POST /calls/{id}/record`: start recording both parties (204).
pub(super) async fn record_start(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    live_call_of(&state, &user, id).await?;
    engine(&state)?.call_control(id, CallOp::RecordStart).await.map_err(engine_error)?;
    Ok(no_content())
}

/// `POST /calls/{id}/record/stop` (204).
pub(super) async fn record_stop(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    live_call_of(&state, &user, id).await?;
    engine(&state)?.call_control(id, CallOp::RecordStop).await.map_err(engine_error)?;
    Ok(no_content())
}

#[derive(Deserialize, Default)]
struct ConferenceBody {
    #[serde(default, rename = "ownerCallId")]
    owner_call_id: Option<i64>,
    /// Ours: a scheduled conference to join instead of an ad-hoc room.
    #[serde(default, rename = "accessId")]
    access_id: Option<i64>,
}

/// `POST /calls/{id}/conference`: the call joins a conference room together with the
/// owner call (`ownerCallId`, default the same call): both calls' parties end up in
/// one room (204). With `accessId` (ours, not MX's), the room is that scheduled
/// conference's, with its window enforced (errors as `POST /conferences/{id}`).
pub(super) async fn conference(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let id = parse_id(&id)?;
    let b: ConferenceBody = parse_body(&headers, &body)?;
    live_call_of(&state, &user, id).await?;
    let owner = match b.owner_call_id {
        Some(n) if n >= 0 => CallId(n as u64),
        Some(_) => return Err(MxError::not_found()),
        None => id,
    };
    if owner != id {
        live_call_of(&state, &user, owner).await?;
    }
    if let Some(access_id) = b.access_id {
        let access_id = u64::try_from(access_id).ok().filter(|a| *a > 0).ok_or_else(|| MxError::bad_request("bad request: bad accessId"))?;
        let join = CallOp::JoinScheduled { access_id, user: user.id };
        engine(&state)?.call_control(owner, join.clone()).await.map_err(scheduled_error)?;
        if owner != id {
            engine(&state)?.call_control(id, join).await.map_err(scheduled_error)?;
        }
        return Ok(no_content());
    }
    // MX's conference has no room number: ours is 88 followed by the owner call's id.
    let room = format!("88{}", owner.0);
    engine(&state)?.call_control(owner, CallOp::Conference { room: room.clone() }).await.map_err(engine_error)?;
    if owner != id {
        engine(&state)?.call_control(id, CallOp::Conference { room }).await.map_err(engine_error)?;
    }
    Ok(no_content())
}

pub(super) fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
