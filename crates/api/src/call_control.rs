//! Mid-call control on the native API: `/v1/calls/{id}/hold`, `/unhold`, `/transfer`,
//! `/record`, `/record/stop`, `/dtmf`, `/conference` and `/supervise`, where `{id}` is
//! the two-party call's integer id (`call_id` of the call events and the call log), or
//! one of its legs' ids.
//!
//! Each answers the call as it is once the command is under way (SIP work such as a
//! re-INVITE or REFER completes afterwards and shows in `/v1/events`).

use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::formats;
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use engine::{CallId, CallInfo, CallOp, DtmfMethod, Side, SuperviseMode};
use serde::Deserialize;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    // `{leg_id}` names the same path segment as `/v1/calls/{leg_id}` (the router
    // needs one name per position); here it is the call's integer id.
    Router::new()
        .route("/v1/calls/{leg_id}/hold", post(hold))
        .route("/v1/calls/{leg_id}/unhold", post(unhold))
        .route("/v1/calls/{leg_id}/transfer", post(transfer))
        .route("/v1/calls/{leg_id}/record", post(record))
        .route("/v1/calls/{leg_id}/record/stop", post(record_stop))
        .route("/v1/calls/{leg_id}/dtmf", post(dtmf))
        .route("/v1/calls/{leg_id}/conference", post(conference))
        .route("/v1/calls/{leg_id}/supervise", post(supervise))
}

/// How the held party is offered our media.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HoldMode {
    /// We keep sending (music or silence), they do not.
    #[default]
    Sendonly,
    /// No media either way.
    Inactive,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// Which party is put on hold: `caller` or `callee`.
    #[schema(value_type = String)]
    pub side: Side,
    #[serde(default)]
    pub mode: HoldMode,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The party that is sent elsewhere (it receives the REFER): `caller` or `callee`.
    #[schema(value_type = String)]
    pub side: Side,
    /// Blind transfer target: an extension, login, number or SIP URI.
    #[serde(default)]
    pub to: Option<String>,
    /// Attended transfer: the other call (by id) whose leg the party takes over.
    #[serde(default, deserialize_with = "crate::calls::opt_whole_u64")]
    #[schema(value_type = Option<u64>)]
    pub replaces: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DtmfBody {
    /// Which party hears the digits: `caller` or `callee`.
    #[schema(value_type = String)]
    pub side: Side,
    /// 1 to 64 of `0-9 * # A-D`.
    pub digits: String,
    /// `rfc4733` (default, in the media) or `info` (SIP INFO, application/dtmf-relay).
    #[serde(default = "default_dtmf")]
    #[schema(value_type = String)]
    pub method: DtmfMethod,
}

fn default_dtmf() -> DtmfMethod {
    DtmfMethod::Rfc4733
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConferenceBody {
    /// An existing conference's confid...
    #[serde(default)]
    pub confid: Option<String>,
    /// ...or a room number (the room is created if needed).
    #[serde(default)]
    pub room: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuperviseBody {
    /// The supervisor: an extension, login, number or SIP URI; it is called.
    pub to: String,
    /// `listen` (hears both, heard by nobody), `whisper` (heard by the callee side) or
    /// `barge` (heard by both).
    #[schema(value_type = String)]
    pub mode: SuperviseMode,
}

/// A transfer or supervisor target, in [`formats::call_party`].
fn check_party(what: &str, to: &str) -> Result<(), ApiError> {
    if formats::matches(&formats::call_party(), to) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("`{what}` must be a login, extension, number or SIP URI")))
    }
}

/// Runs `op` on a call the caller may see; another domain's call is not found.
/// `raw`: the call's integer id, or one of its legs' ids.
async fn run(st: &AppState, scope: &Scope, raw: &str, op: CallOp) -> Result<Json<CallInfo>, ApiError> {
    run_on(st, scope, crate::calls::resolve_call_id(st, scope, raw).await?, op).await
}

async fn run_on(st: &AppState, scope: &Scope, id: CallId, op: CallOp) -> Result<Json<CallInfo>, ApiError> {
    let not_found = || ApiError::not_found("Call not found");
    let map = |e: engine::EngineError| match e {
        engine::EngineError::LegNotFound => not_found(),
        e => ApiError::from(e),
    };
    if !scope.is_superuser() {
        let info = st.engine.call_control(id, CallOp::Inspect).await.map_err(map)?;
        if !scope.sees_call(&info) {
            return Err(not_found());
        }
    }
    st.engine.call_control(id, op).await.map(Json).map_err(map)
}


/// Put one side of a call on hold.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/hold", operation_id = "hold_call", tag = "call control", request_body = HoldBody,
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call; a re-INVITE (sendonly or inactive) is on its way, `call_held` follows", body = Object),
        (status = 400, description = "Bad input (message says what)", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call not found", body = ErrorBody), (status = 409, description = "The call has ended, is not answered yet, or its other side is already held", body = ErrorBody)))]
pub async fn hold(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>, body: Result<Json<HoldBody>, JsonRejection>) -> Result<Json<CallInfo>, ApiError> {
    let Json(b) = body?;
    run(&st, &scope, &id, CallOp::Hold { side: b.side, inactive: matches!(b.mode, HoldMode::Inactive) }).await
}

/// Take the held side off hold.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/unhold", operation_id = "unhold_call", tag = "call control",
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call; a re-INVITE (sendrecv) is on its way, `call_retrieved` follows", body = Object),
                (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call not found", body = ErrorBody), (status = 409, description = "The call has ended or is not on hold", body = ErrorBody)))]
pub async fn unhold(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<CallInfo>, ApiError> {
    run(&st, &scope, &id, CallOp::Unhold).await
}

/// Transfer one side: blind (`to`) or attended (`replaces`).
#[utoipa::path(post, path = "/v1/calls/{leg_id}/transfer", operation_id = "transfer_call", tag = "call control", request_body = TransferBody,
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call; the REFER is sent, `call_transferred` follows when the party's new call is up", body = Object),
        (status = 400, description = "Bad input: neither `to` nor `replaces`, a malformed target", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call not found", body = ErrorBody), (status = 409, description = "The call (or the one to replace) has ended or is not answered yet, or a transfer is already under way", body = ErrorBody),
        (status = 422, description = "No route to the target", body = ErrorBody)))]
pub async fn transfer(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>, body: Result<Json<TransferBody>, JsonRejection>) -> Result<Json<CallInfo>, ApiError> {
    let Json(b) = body?;
    if b.to.is_none() && b.replaces.is_none() {
        return Err(ApiError::bad_request("a transfer needs `to` (blind) or `replaces` (attended)"));
    }
    if let Some(to) = b.to.as_deref() {
        check_party("to", to)?;
    }
    if let Some(other) = b.replaces {
        // the other call must be one this caller may see too
        let _ = run_on(&st, &scope, CallId(other), CallOp::Inspect).await?;
    }
    run(&st, &scope, &id, CallOp::Transfer { side: b.side, to: b.to, replaces: b.replaces.map(CallId) }).await
}

/// Start recording the call (both parties, one WAV).
#[utoipa::path(post, path = "/v1/calls/{leg_id}/record", operation_id = "record_call", tag = "call control",
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call; `recordings` lists the new file", body = Object),
                (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call not found", body = ErrorBody), (status = 409, description = "The call has ended, is not answered yet, or is already being recorded", body = ErrorBody)))]
pub async fn record(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<CallInfo>, ApiError> {
    run(&st, &scope, &id, CallOp::RecordStart).await
}

/// Stop recording the call.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/record/stop", operation_id = "stop_recording_call", tag = "call control",
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call", body = Object),
                (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call not found", body = ErrorBody), (status = 409, description = "The call has ended or is not being recorded", body = ErrorBody)))]
pub async fn record_stop(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<CallInfo>, ApiError> {
    run(&st, &scope, &id, CallOp::RecordStop).await
}

/// Send DTMF digits to one side.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/dtmf", operation_id = "send_dtmf", tag = "call control", request_body = DtmfBody,
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call; the digits are on their way", body = Object),
        (status = 400, description = "Bad input (digits, method)", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call not found", body = ErrorBody), (status = 409, description = "The call has ended or is not answered yet", body = ErrorBody)))]
pub async fn dtmf(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>, body: Result<Json<DtmfBody>, JsonRejection>) -> Result<Json<CallInfo>, ApiError> {
    let Json(b) = body?;
    if !formats::matches(formats::DTMF_DIGITS, &b.digits) {
        return Err(ApiError::bad_request("`digits` must be 1 to 64 of 0-9, *, #, A-D"));
    }
    run(&st, &scope, &id, CallOp::Dtmf { side: b.side, digits: b.digits, method: b.method }).await
}

/// Merge the call into a conference room.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/conference", operation_id = "conference_call", tag = "call control", request_body = ConferenceBody,
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call (its parties are now the room's)", body = Object),
        (status = 400, description = "Bad input: neither or both of `confid` and `room`", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call or conference not found", body = ErrorBody), (status = 409, description = "Call has already ended", body = ErrorBody)))]
pub async fn conference(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>, body: Result<Json<ConferenceBody>, JsonRejection>) -> Result<Json<CallInfo>, ApiError> {
    let Json(b) = body?;
    let room = match (b.confid, b.room) {
        (Some(c), None) => c,
        (None, Some(r)) if !r.is_empty() && r.len() <= 32 && r.bytes().all(|c| c.is_ascii_digit()) => r,
        (None, Some(r)) => return Err(ApiError::bad_request(format!("`{r}` is not a room number (1 to 32 digits)"))),
        _ => return Err(ApiError::bad_request("give exactly one of `confid` and `room`")),
    };
    run(&st, &scope, &id, CallOp::Conference { room }).await
}

/// Call a supervisor into the call: listen, whisper or barge.
#[utoipa::path(post, path = "/v1/calls/{leg_id}/supervise", operation_id = "supervise_call", tag = "call control", request_body = SuperviseBody,
    params(("leg_id" = String, Path, description = "The call's integer id, or one of its leg ids")),
    responses((status = 200, description = "The call; the supervisor is being called", body = Object),
        (status = 400, description = "Bad input (message says what)", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Call not found", body = ErrorBody), (status = 409, description = "The call has ended or is not answered yet", body = ErrorBody),
        (status = 422, description = "The supervisor cannot be reached (no registered device, no route)", body = ErrorBody)))]
pub async fn supervise(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>, body: Result<Json<SuperviseBody>, JsonRejection>) -> Result<Json<CallInfo>, ApiError> {
    let Json(b) = body?;
    check_party("to", &b.to)?;
    run(&st, &scope, &id, CallOp::Supervise { to: b.to, mode: b.mode }).await
}
