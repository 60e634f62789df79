//! Instant messages to users over REST (native dialect): `POST` and `GET
//! /v1/users/{id}/messages`.
//!
//! A message goes to every registered device of the user as a SIP MESSAGE (RFC 3428);
//! with none registered it is kept and sent when one registers. The answer is 202:
//! the outcome comes later, as the `message_delivered`, `message_deferred` or
//! `message_failed` event, and as the message's `state` here.
//!
//! Who may: a domain admin, for its domain's users (from anyone: a user of the domain
//! or a SIP URI); a user, to any user of its domain, always from itself, and reads its
//! own messages only. Another domain's user is a 404 like a missing one.

use crate::admin::{check, parse_id, store_of};
use crate::formats;
use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use engine::users::User;
use engine::OutgoingMessage;
use serde::{Deserialize, Serialize};
use store::messages::StoredMessage;
use utoipa::{IntoParams, ToSchema};

/// Most messages one `GET` lists.
pub const MAX_LIST: u32 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/users/{id}/messages", post(send).get(list))
}

/// Body of `POST /v1/users/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessageBody {
    /// The text: at most 16384 characters, no NUL.
    pub body: String,
    /// Its media type; `text/plain` by default.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Who it is from: a user of the domain (login or extension) or a `sip:` URI;
    /// the server (`sip:switchboard@<domain>`) by default. A user sending is always
    /// the sender.
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Not yet taken by a device: sent again when the user next registers.
    Pending,
    Delivered,
    /// Every device refused it.
    Failed,
}

/// A message and how its delivery went.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub message_id: String,
    /// The recipient.
    pub user_id: i64,
    pub to: String,
    pub from: String,
    /// The sender, when a user of ours.
    pub from_user_id: Option<i64>,
    pub content_type: String,
    pub body: String,
    /// `sip` (a phone sent it) or `api`.
    pub origin: String,
    pub state: MessageState,
    /// Delivery rounds that ended with no device taking it.
    pub attempts: u32,
    /// The last final status a device answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// A message just accepted: pending, not tried yet.
impl From<engine::MessageInfo> for MessageView {
    fn from(m: engine::MessageInfo) -> Self {
        let origin = match m.origin {
            engine::MessageOrigin::Sip => "sip",
            engine::MessageOrigin::Api => "api",
        };
        MessageView {
            message_id: m.message_id,
            user_id: m.user_id,
            to: m.to,
            from: m.from,
            from_user_id: m.from_user_id,
            content_type: m.content_type,
            body: m.body,
            origin: origin.into(),
            state: MessageState::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            created_ms: m.created_ms,
            updated_ms: m.created_ms,
        }
    }
}

impl From<StoredMessage> for MessageView {
    fn from(m: StoredMessage) -> Self {
        let state = match m.state.as_str() {
            store::messages::DELIVERED => MessageState::Delivered,
            store::messages::FAILED => MessageState::Failed,
            _ => MessageState::Pending,
        };
        MessageView {
            message_id: m.message_id,
            user_id: m.user_id,
            to: m.to,
            from: m.from,
            from_user_id: m.from_user_id,
            content_type: m.content_type,
            body: m.body,
            origin: m.origin,
            state,
            attempts: m.attempts,
            last_status: m.last_status,
            last_error: m.last_error,
            created_ms: m.created_ms,
            updated_ms: m.updated_ms,
        }
    }
}

/// Query of `GET /v1/users/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Only messages in this state.
    pub state: Option<MessageState>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// The user `id`, if the caller may reach it (its domain's admin, or a user of it).
async fn reachable_user(st: &AppState, scope: &Scope, id: &str) -> Result<User, ApiError> {
    let id = parse_id(id)?;
    let u = store_of(st)?.user(id).await?;
    u.filter(|u| scope.sees_domain_id(u.domain_id)).ok_or_else(|| ApiError::not_found("User not found"))
}

/// Send a user an instant message.
#[utoipa::path(post, path = "/v1/users/{id}/messages", operation_id = "send_message", tag = "messages",
    params(("id" = i64, Path, description = "User id")), request_body = NewMessageBody,
    responses((status = 202, description = "Accepted: sent to the user's devices, or kept until one registers", body = MessageView),
        (status = 400, description = "Bad JSON, not an id, a bad media type or sender, a body too long", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential whose user is gone", body = ErrorBody),
        (status = 404, description = "User not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn send(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<NewMessageBody>, JsonRejection>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let Json(b) = body?;
    let user = reachable_user(&st, &scope, &id).await?;
    if b.body.chars().count() > formats::MESSAGE_BODY_MAX || b.body.contains('\0') {
        return Err(ApiError::bad_request(format!("`body` must be at most {} characters, none of them NUL", formats::MESSAGE_BODY_MAX)));
    }
    if let Some(ct) = &b.content_type {
        check("content_type", formats::CONTENT_TYPE, ct)?;
    }
    if let Some(f) = &b.from {
        check("from", formats::MESSAGE_FROM, f)?;
    }
    let from = if scope.is_user() {
        // A user speaks for itself only.
        let me = scope.principal.user_id.ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "This credential names no user"))?;
        if b.from.is_some() {
            return Err(ApiError::bad_request("`from` is for admins: a user's messages are from that user"));
        }
        let login = st.directory_now().user(me).map(|u| u.login.clone());
        Some(login.ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "This credential's user is not in the directory"))?)
    } else {
        b.from
    };
    let m = OutgoingMessage {
        domain: Some(user.domain_id),
        user_id: user.id,
        from,
        content_type: b.content_type.unwrap_or_else(|| "text/plain".into()),
        body: b.body,
    };
    let info = st.engine.send_message(m).await.map_err(|e| match e {
        // The directory the engine holds lags a just-created user by a moment.
        engine::EngineError::LegNotFound => ApiError::not_found("User not found"),
        e => e.into(),
    })?;
    Ok((StatusCode::ACCEPTED, Json(info.into())))
}

/// A user's messages, newest first, with their delivery state.
#[utoipa::path(get, path = "/v1/users/{id}/messages", operation_id = "list_messages", tag = "messages",
    params(("id" = i64, Path, description = "User id"), MessagesQuery),
    responses((status = 200, description = "Messages, newest first", body = [MessageView]),
        (status = 400, description = "Not an id, a bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "User not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(id): ApiPath<String>,
    q: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let Query(q) = q?;
    let user = reachable_user(&st, &scope, &id).await?;
    if !scope.sees_user(user.id, user.domain_id) {
        return Err(ApiError::not_found("User not found"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::bad_request(format!("`limit` must be 1 to {MAX_LIST}")));
    }
    let state = q.state.map(|s| match s {
        MessageState::Pending => store::messages::PENDING,
        MessageState::Delivered => store::messages::DELIVERED,
        MessageState::Failed => store::messages::FAILED,
    });
    let rows = store_of(&st)?.messages_of_user(user.id, state, limit).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}
