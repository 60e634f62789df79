//! `/rest/v1/uc/conferences/{confid}/topology`: who hears whom.
//!
//! GET returns the rules, the fixed `{"from":"*","to":"*","enabled":true}` first. POST
//! takes a list of rules (or one rule) and applies them in order, merging into the
//! current topology; `*` expands to the participants present now. Every rule is checked
//! before any is applied: each `from`/`to` must be `*` or a participant present in the
//! room, else 404 `Call/Participant not found` and nothing changes. Answers with the
//! resulting rules.

use super::lookup::ConfRef;
use super::wire::TopologyRule;
use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use engine::LegState;
use serde::Deserialize;
use utoipa::ToSchema;

/// A list of rules, or a single rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TopologyChange {
    Many(Vec<TopologyRule>),
    One(TopologyRule),
}

/// The current rules.
#[utoipa::path(get, path = "/rest/v1/uc/conferences/{confid}/topology", operation_id = "get_topology", tag = "topology",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    responses((status = 200, description = "Rules in order; the first is always `*`→`*` enabled", body = [TopologyRule]),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody), (status = 404, description = "Conference not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn get(State(st): State<AppState>, scope: Scope, ApiPath(conf): ApiPath<String>) -> Result<Json<Vec<TopologyRule>>, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    Ok(Json(st.engine.topology(&confid).await?.into_iter().map(Into::into).collect()))
}

/// Apply rules in order.
#[utoipa::path(post, path = "/rest/v1/uc/conferences/{confid}/topology", operation_id = "change_topology", tag = "topology",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    request_body(content = [TopologyRule], description = "Rules to apply in order (a single rule object is accepted too)"),
    responses((status = 200, description = "The rules after the change", body = [TopologyRule]),
        (status = 400, description = "Bad JSON or a rule not `{from, to, enabled}`; bad lookup expression", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found; Call/Participant not found (a rule names someone not present)", body = ErrorBody),
        (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn change(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Vec<TopologyRule>>, ApiError> {
    let Json(body) = body?;
    let rules = match serde_json::from_value::<TopologyChange>(body) {
        Ok(TopologyChange::Many(rules)) => rules,
        Ok(TopologyChange::One(rule)) => vec![rule],
        Err(_) => {
            return Err(ApiError::bad_request(
                "topology change must be a list of {\"from\":ID|\"*\",\"to\":ID|\"*\",\"enabled\":true|false} (no other fields)",
            ))
        }
    };
    let room = ConfRef::parse(&conf)?.snapshot(&st, &scope).await?;
    let present = |id: &String| id == "*" || room.participants.iter().any(|p| p.participantid == *id && p.state != LegState::Ended);
    if !rules.iter().all(|rule| present(&rule.from) && present(&rule.to)) {
        return Err(ApiError::participant_not_found());
    }
    let result = st.engine.change_topology(&room.room.confid, rules.into_iter().map(Into::into).collect()).await?;
    Ok(Json(result.into_iter().map(Into::into).collect()))
}
