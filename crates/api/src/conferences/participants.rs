//! `/rest/v1/uc/conferences/{confid}/participants[/{participantid}]`: list, dial out,
//! get, kick, and (ours) mute/deaf.
//!
//! The list shows live participants in join order; ended ones (kept by the engine for
//! about five minutes) appear only when the filter asks about `state`, e.g.
//! `filter={"state":"ended"}`. Dial-out answers as soon as the INVITE is sent; its
//! progress shows in the participant's `state` (calling → ringing → active, or ended
//! with `end_status`).

use super::list::{render, ItemOptions, ItemQuery, ListOptions, ListQuery};
use super::lookup::ConfRef;
use super::wire::{DialOutBody, Participant, ParticipantPatchBody, ParticipantRef};
use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::idempotency::{Claim, IdempotencyCache};
use crate::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::{LegState, ParticipantPatch};
use serde_json::Value;
use std::time::Instant;

/// List participants.
#[utoipa::path(get, path = "/rest/v1/uc/conferences/{confid}/participants", operation_id = "list_participants", tag = "participants",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression such as `callid=abc@host`"), ListQuery),
    responses(
        (status = 200, description = "Participants in join order (live ones unless `filter` names `state`); with `countonly`, `{\"count\":N}`", body = [Participant]),
        (status = 400, description = "Bad list option (e.g. unknown field in `filter`), unknown query parameter, or a malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody), (status = 404, description = "Conference not found", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let opts = ListOptions::parse(&q, Participant::FIELDS)?;
    let room = ConfRef::parse(&conf)?.snapshot(&st, &scope).await?;
    let show_ended = opts.filters_on("state");
    let participants = room.participants.iter().filter(|p| show_ended || p.state != LegState::Ended).map(Participant::from);
    if opts.is_identity() {
        return Ok(Json(participants.collect::<Vec<_>>()).into_response());
    }
    Ok(Json(opts.apply(participants.map(|p| render(&p)).collect())).into_response())
}

/// Dial a participant out into the conference.
///
/// Answers at once with the new participant's id; the call's progress shows in its
/// `state`. With an `Idempotency-Key` header a retry within 10 minutes gets the first
/// answer (header `Idempotent-Replayed: true`) instead of a second call.
#[utoipa::path(post, path = "/rest/v1/uc/conferences/{confid}/participants", operation_id = "dial_out", tag = "participants",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 characters; retries with the same key and body replay the first answer")),
    request_body = DialOutBody,
    responses(
        (status = 200, description = "INVITE sent", body = ParticipantRef),
        (status = 400, description = "Bad JSON, `to` neither a SIP URI nor a number, a bad Idempotency-Key, or a malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody), (status = 404, description = "Conference not found", body = ErrorBody),
        (status = 409, description = "Idempotency-Key in flight or used for a different request", body = ErrorBody),
        (status = 422, description = "No route to the target: a directory user (extension, login, number) with no registered device, a number with no `[routing] gateway` configured, or a host name that does not resolve (within 3 s)", body = ErrorBody),
        (status = 503, description = "Out of RTP ports, or the server is shutting down", body = ErrorBody)))]
pub async fn dial_out(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<DialOutBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let Some(key) = IdempotencyCache::key_of(&headers)? else {
        return Ok(Json(place(&st, &scope, &conf, &body).await?).into_response());
    };
    let fingerprint = IdempotencyCache::fingerprint(&[&conf, &body.to]);
    // keys are per principal: another's key neither replays nor conflicts with ours
    let key = format!("{}#{key}", scope.partition());
    match st.idempotency.claim(key, fingerprint, Instant::now())? {
        Claim::Replay(response) => Ok(response),
        Claim::Run(pending) => {
            let reply = place(&st, &scope, &conf, &body).await?;
            let bytes = serde_json::to_vec(&reply).expect("plain struct serialises");
            Ok(pending.complete(StatusCode::OK, bytes.into()))
        }
    }
}

/// Places the call with the room as the caller (`From: conf-<n>@<domain>`), so the
/// callee sees the conference calling.
async fn place(st: &AppState, scope: &Scope, conf: &str, body: &DialOutBody) -> Result<ParticipantRef, ApiError> {
    // A directory user (extension, login, number) of the caller's domain wins over the
    // gateway; a user with no registered device is a 422 saying so.
    let (target, peer) = match st.engine.route_user(scope.principal.domain, &body.to).await? {
        Some(found) => {
            let (uri, peer) = found?;
            (uri, Some(peer))
        }
        None => (st.routing.target(&body.to)?, None),
    };
    let room = ConfRef::parse(conf)?.snapshot(st, scope).await?.room;
    let p = st.engine.dial_into_room(&room.confid, target, peer, Some(format!("conf-{}", room.confroomnum))).await?;
    Ok(ParticipantRef { confid: p.confid, participantid: p.participantid })
}

/// One participant (ended ones too, while the engine keeps them).
#[utoipa::path(get, path = "/rest/v1/uc/conferences/{confid}/participants/{participantid}", operation_id = "get_participant", tag = "participants",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression"),
        ("participantid" = String, Path, description = "Participant id"), ItemQuery),
    responses((status = 200, description = "The participant (ended ones too, `state` `ended`, for about 5 minutes); with `mask`, only the fields named", body = Participant),
        (status = 400, description = "Bad `mask`/`flat`, unknown query parameter, or a malformed lookup expression in place of the confid", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found / Call/Participant not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn get_one(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath((conf, pid)): ApiPath<(String, String)>,
    q: Result<Query<ItemQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let opts = ItemOptions::parse(&q)?;
    let room = ConfRef::parse(&conf)?.snapshot(&st, &scope).await?;
    let p = room.participants.iter().find(|p| p.participantid == pid).ok_or_else(ApiError::participant_not_found)?;
    Ok(Json(opts.project(render(&Participant::from(p)))))
}

/// Kick a participant: BYE (CANCEL while its dial-out is unanswered). Answers at once.
///
/// A participant who has already left (kicked before, hung up, or a dial-out whose
/// CANCEL is under way) is a 404 `Call/Participant not found`, so a script that kicks
/// twice is told. GET still shows such a participant, `ended`, for a while.
#[utoipa::path(delete, path = "/rest/v1/uc/conferences/{confid}/participants/{participantid}", operation_id = "kick_participant", tag = "participants",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression"),
        ("participantid" = String, Path, description = "Participant id")),
    responses((status = 200, description = "BYE (or CANCEL) sent", body = ParticipantRef),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found / Call/Participant not found (also for a participant who has already left: kicked, hung up, or being cancelled)", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn kick(State(st): State<AppState>, scope: Scope, ApiPath((conf, pid)): ApiPath<(String, String)>) -> Result<Json<ParticipantRef>, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    let p = st.engine.kick(&confid, &pid).await?;
    Ok(Json(ParticipantRef { confid: p.confid, participantid: p.participantid }))
}

/// (ours) Mute/unmute, deafen/undeafen a participant still present (one who has left
/// is a 404).
#[utoipa::path(patch, path = "/rest/v1/uc/conferences/{confid}/participants/{participantid}", operation_id = "patch_participant", tag = "participants",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression"),
        ("participantid" = String, Path, description = "Participant id")),
    request_body = ParticipantPatchBody,
    responses((status = 200, description = "The participant after the change", body = Participant),
        (status = 400, description = "Bad JSON, unknown field, nothing to change, or a malformed lookup expression in place of the confid", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found / Call/Participant not found (also for a participant who has left)", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn patch(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath((conf, pid)): ApiPath<(String, String)>,
    body: Result<Json<ParticipantPatchBody>, JsonRejection>,
) -> Result<Json<Participant>, ApiError> {
    let Json(body) = body?;
    if body.muted.is_none() && body.deaf.is_none() && body.gain_in_db.is_none() && body.gain_out_db.is_none() {
        return Err(ApiError::bad_request("nothing to change: give `muted`, `deaf`, `gain_in_db` and/or `gain_out_db`"));
    }
    let max = engine::room::MAX_GAIN_DB;
    for (name, g) in [("gain_in_db", body.gain_in_db), ("gain_out_db", body.gain_out_db)] {
        if let Some(g) = g {
            if !g.is_finite() || g.abs() > max {
                return Err(ApiError::bad_request(format!("`{name}` must be a number from -{max} to {max} (dB)")));
            }
        }
    }
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    let patch = ParticipantPatch { muted: body.muted, deaf: body.deaf, gain_in_db: body.gain_in_db, gain_out_db: body.gain_out_db };
    let p = st.engine.patch_participant(&confid, &pid, patch).await?;
    Ok(Json(Participant::from(&p)))
}
