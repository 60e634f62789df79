//! Reference 001 §8: `PUT` and `DELETE /tokens/{apn|fcm}/{topic}/{token}` store and
//! remove a mobile app's push token for the requesting user.
//!
//! The checks run in MX's order, each with its status and text: the push type (404
//! `unsupported push type "<t>"`), the topic against the configured ones (404
//! `unsupported APNS topic ID or sandbox flag` / `unsupported FCM application ID`; a
//! `sandbox` query key appends `~` to an APNs topic, the development gateway), then the
//! token's length (400 `bad push token` under 20 characters). Success is 204. A token
//! belongs to one user: registering it again moves it. Unlike MX, `DELETE` removes only
//! the caller's own token; anyone else's answers 404 like an unknown one.
//!
//! The pushes themselves are sent by the shell (crates/switchboard/src/push.rs).

use super::{bearer_claims, MxError, MxState};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;

/// The push topics this server can deliver to (`[push]` in the configuration).
#[derive(Debug, Clone, Default)]
pub struct PushTopics {
    /// APNs topics (bundle ids); a sandbox (development gateway) topic ends in `~`.
    pub apns: HashSet<String>,
    /// FCM application ids.
    pub fcm: HashSet<String>,
}

/// Shortest token accepted (MX's check).
pub const MIN_TOKEN_LEN: usize = 20;

/// `(kind, topic)` as stored, or MX's 404.
fn checked_topic(topics: &PushTopics, kind: &str, topic: &str, query: Option<&str>) -> Result<String, MxError> {
    match kind {
        "apn" => {
            let sandbox = serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or("")).unwrap_or_default().iter().any(|(k, _)| k == "sandbox");
            let topic = if sandbox { format!("{topic}~") } else { topic.to_owned() };
            if !topics.apns.contains(&topic) {
                return Err(MxError::new(StatusCode::NOT_FOUND, "unsupported APNS topic ID or sandbox flag"));
            }
            Ok(topic)
        }
        "fcm" => {
            if !topics.fcm.contains(topic) {
                return Err(MxError::new(StatusCode::NOT_FOUND, "unsupported FCM application ID"));
            }
            Ok(topic.to_owned())
        }
        other => Err(MxError::new(StatusCode::NOT_FOUND, format!("unsupported push type {other:?}"))),
    }
}

fn checked_token(token: &str) -> Result<(), MxError> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(MxError::bad_request("bad push token"));
    }
    Ok(())
}

/// `PUT /tokens/{kind}/{topic}/{token}` → 204.
pub(super) async fn put_token(
    State(state): State<MxState>,
    headers: HeaderMap,
    Path((kind, topic, token)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, MxError> {
    let (claims, topic, store) = token_request(&state, &headers, &kind, &topic, &token, query.as_deref())?;
    store.add_push_token(&kind, &topic, &token, claims.sb_uid).await.map_err(|e| MxError::unavailable(e.to_string()))?;
    state.directory_changed();
    tracing::info!(login = %claims.sub, %kind, %topic, "push token registered");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What both token routes check, in MX's order: the bearer, the topic, the token; then
/// the store they need.
fn token_request<'s>(
    state: &'s MxState,
    headers: &HeaderMap,
    kind: &str,
    topic: &str,
    token: &str,
    query: Option<&str>,
) -> Result<(crate::tokens::Claims, String, &'s store::Store), MxError> {
    let claims = bearer_claims(state, headers)?;
    let topic = checked_topic(&state.push, kind, topic, query)?;
    checked_token(token)?;
    let store = state.store.as_ref().ok_or_else(|| MxError::unavailable("no store for push tokens".into()))?;
    Ok((claims, topic, store))
}

/// `DELETE /tokens/{kind}/{topic}/{token}` → 204, or 404 when the caller has no such token.
pub(super) async fn delete_token(
    State(state): State<MxState>,
    headers: HeaderMap,
    Path((kind, topic, token)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, MxError> {
    let (claims, topic, store) = token_request(&state, &headers, &kind, &topic, &token, query.as_deref())?;
    match store.remove_push_token_of(Some(claims.sb_uid), &kind, &topic, &token).await {
        Ok(()) => {}
        Err(store::StoreError::NotFound(_)) => return Err(MxError::not_found()),
        Err(e) => return Err(MxError::unavailable(e.to_string())),
    }
    state.directory_changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}
