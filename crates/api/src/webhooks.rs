//! Webhooks of the event outbox (native dialect): `/v1/webhooks`, and how deliveries
//! are signed.
//!
//! A webhook is a URL of a domain, with an optional filter of event types. The server's
//! shell delivers every event of the domain's outbox to it, in order, one POST per event
//! (`crates/switchboard/src/webhooks.rs`); the delivery state is part of the view here.
//!
//! **Signing.** No secret is kept in the database: a webhook's secret is
//! `hex(HMAC-SHA256(master key, "<id>.<key version>"))`, the master key being 32 random
//! bytes in `<data dir>/webhook.key` (made at first start, mode 0600). The secret is
//! shown in the answer to `POST /v1/webhooks` and to `POST /v1/webhooks/{id}/rotate`
//! (which bumps the version) and never again. Each delivery carries
//! `X-Switchboard-Timestamp` (Unix seconds), `X-Switchboard-Key-Id` (`<id>.<version>`),
//! `X-Switchboard-Event-Seq` and `X-Switchboard-Signature: v1=<hex HMAC-SHA256(secret,
//! "<timestamp>.<body>")>`, the secret's hex text being the HMAC key.
//!
//! Who may: admins of the webhook's domain and the superuser (users get 403); another
//! domain's webhook is a 404 like a missing one. The superuser's webhooks go to the
//! domain named in `domain`, by default the server's own.

use crate::admin::{check, check_domain_name, parse_id, store_of, visible_domain};
use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::formats;
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::users::DomainId;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use store::Webhook;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route("/v1/webhooks/{webhook_id}", get(get_webhook).patch(patch_webhook).delete(delete_webhook))
        .route("/v1/webhooks/{webhook_id}/rotate", post(rotate_webhook))
}

// ---- keys and signatures -----------------------------------------------------------

/// The master key's file in the data dir.
pub const MASTER_KEY_FILE: &str = "webhook.key";

/// The server's webhook master key: read from `<data_dir>/webhook.key`, made (32 random
/// bytes, mode 0600) if there is none.
pub fn load_or_create_master_key(data_dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(MASTER_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => return Ok(bytes.try_into().expect("32 bytes")),
        Ok(_) => return Err(std::io::Error::other(format!("{} is not 32 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).map_err(|_| std::io::Error::other("no randomness"))?;
    let tmp = data_dir.join(format!("{MASTER_KEY_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(&key)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(key)
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), data);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook's signing secret (64 hex characters).
pub fn webhook_secret(master: &[u8; 32], id: i64, version: u32) -> String {
    hmac_hex(master, format!("{id}.{version}").as_bytes())
}

/// `X-Switchboard-Key-Id`.
pub fn key_id(id: i64, version: u32) -> String {
    format!("{id}.{version}")
}

/// `X-Switchboard-Signature`: `v1=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut data = format!("{timestamp}.").into_bytes();
    data.extend_from_slice(body);
    format!("v1={}", hmac_hex(secret.as_bytes(), &data))
}

// ---- wire types --------------------------------------------------------------------

/// A webhook and where its deliveries stand.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: i64,
    /// The domain whose events it gets.
    pub domain: String,
    pub url: String,
    /// Event types delivered; empty = every type.
    pub events: Vec<String>,
    pub enabled: bool,
    /// `X-Switchboard-Key-Id` of its deliveries: `<id>.<key version>`.
    pub key_id: String,
    pub created_ms: u64,
    /// Last event seq delivered (or skipped by the filter).
    pub cursor: u64,
    /// The domain's last event seq.
    pub last_seq: u64,
    /// Events after the cursor (`last_seq - cursor`, those the filter will skip included).
    pub pending: u64,
    /// Events delivered so far.
    pub delivered: u64,
    /// Consecutive failed attempts (0 after a success).
    pub failures: u32,
    pub last_attempt_ms: Option<u64>,
    /// HTTP status of the last attempt (null: none, or no answer).
    pub last_status: Option<u16>,
    /// Why the last attempt failed (null after a success).
    pub last_error: Option<String>,
    /// No attempt before this (null: as soon as there is an event).
    pub next_attempt_ms: Option<u64>,
}

/// A webhook just made or rotated: the view and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewWebhookView {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// HMAC-SHA256 key of `X-Switchboard-Signature` (its hex text is the key).
    pub secret: String,
}

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Only these event types (default: all).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Whose events (superuser only; default the server's domain). A domain admin may
    /// name only its own.
    #[serde(default)]
    pub domain: Option<String>,
}

/// Body of `PATCH /v1/webhooks/{webhook_id}`: the fields to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchBody {
    #[serde(default)]
    pub url: Option<String>,
    /// `[]` = every type.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Enabling also retries at once, dropping a pending back-off.
    #[serde(default)]
    pub enabled: Option<bool>,
}

// ---- handlers ----------------------------------------------------------------------

fn webhook_not_found() -> ApiError {
    ApiError::not_found("Webhook not found")
}

fn check_url(url: &str) -> Result<(), ApiError> {
    if url.len() > formats::WEBHOOK_URL_MAX {
        return Err(ApiError::bad_request(format!("`url` is longer than {} characters", formats::WEBHOOK_URL_MAX)));
    }
    if !formats::matches(formats::WEBHOOK_URL, url) {
        return Err(ApiError::bad_request(format!("`url` {url:?} is not an http:// or https:// URL (pattern {})", formats::WEBHOOK_URL)));
    }
    Ok(())
}

fn check_types(types: &[String]) -> Result<(), ApiError> {
    if types.len() > 64 {
        return Err(ApiError::bad_request("`events`: at most 64 types"));
    }
    types.iter().try_for_each(|t| check("events", formats::EVENT_TYPE, t))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The master key, or 503 when the server runs without an outbox (tests of other APIs).
fn master_of(st: &AppState) -> Result<Arc<[u8; 32]>, ApiError> {
    st.events.master_key.clone().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "No event outbox configured"))
}

async fn view(st: &AppState, w: Webhook) -> Result<WebhookView, ApiError> {
    let last_seq = store_of(st)?.last_event_seq(w.domain_id).await?;
    let domain = st.directory_now().domain(w.domain_id).map(|d| d.name.clone()).unwrap_or_default();
    Ok(WebhookView {
        id: w.id,
        domain,
        url: w.url,
        events: w.event_types,
        enabled: w.enabled,
        key_id: key_id(w.id, w.key_version),
        created_ms: w.created_ms,
        cursor: w.cursor,
        last_seq,
        pending: last_seq.saturating_sub(w.cursor),
        delivered: w.delivered,
        failures: w.failures,
        last_attempt_ms: w.last_attempt_ms,
        last_status: w.last_status,
        last_error: w.last_error,
        next_attempt_ms: (w.next_attempt_ms > 0).then_some(w.next_attempt_ms),
    })
}

/// The webhook `id` if the caller may see it, else 404.
async fn visible_webhook(st: &AppState, scope: &Scope, id: &str) -> Result<Webhook, ApiError> {
    scope.require_admin()?;
    let id = parse_id(id)?;
    let w = store_of(st)?.webhook(id).await?;
    w.filter(|w| scope.sees_domain_id(w.domain_id)).ok_or_else(webhook_not_found)
}

/// The domain a request is about: the caller's own; for the superuser the one named,
/// else the server's default domain.
pub(crate) async fn domain_of_request(st: &AppState, scope: &Scope, named: Option<&str>) -> Result<DomainId, ApiError> {
    if let Some(name) = named {
        check_domain_name("domain", name)?;
        return Ok(visible_domain(st, scope, name).await?.id);
    }
    match scope.principal.domain {
        Some(own) => Ok(own),
        None => st.events.default_domain.ok_or_else(|| ApiError::bad_request("`domain` is required (the server has no default domain)")),
    }
}

/// Webhooks of the caller's domain (superuser: all), with their delivery state.
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "events",
    responses((status = 200, description = "Webhooks, by id", body = [WebhookView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 503, description = "No store or no event outbox", body = ErrorBody)))]
pub async fn list_webhooks(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<WebhookView>>, ApiError> {
    scope.require_admin()?;
    let hooks = store_of(&st)?.webhooks(scope.principal.domain).await?;
    let mut out = Vec::with_capacity(hooks.len());
    for w in hooks {
        out.push(view(&st, w).await?);
    }
    Ok(Json(out))
}

/// Create a webhook. It is sent the domain's events from now on; the answer is the
/// only time its signing `secret` is shown.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "events", request_body = NewWebhookBody,
    responses((status = 201, description = "Created, with its secret", body = NewWebhookView),
        (status = 400, description = "Bad JSON, a URL that is not http(s), or another field not in its format", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 503, description = "No store or no event outbox", body = ErrorBody)))]
pub async fn create_webhook(
    State(st): State<AppState>,
    scope: Scope,
    body: Result<Json<NewWebhookBody>, JsonRejection>,
) -> Result<(StatusCode, Json<NewWebhookView>), ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    check_url(&b.url)?;
    let types = b.events.unwrap_or_default();
    check_types(&types)?;
    let domain = domain_of_request(&st, &scope, b.domain.as_deref()).await?;
    let master = master_of(&st)?;
    let w = store_of(&st)?.add_webhook(domain, &b.url, &types, b.enabled.unwrap_or(true), now_ms()).await?;
    st.events.webhooks_changed.notify_one();
    let secret = webhook_secret(&master, w.id, w.key_version);
    Ok((StatusCode::CREATED, Json(NewWebhookView { webhook: view(&st, w).await?, secret })))
}

/// A webhook with its delivery state.
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}", operation_id = "get_webhook", tag = "events",
    params(("webhook_id" = String, Path, description = "Webhook id", pattern = r"^[0-9]{1,18}$")),
    responses((status = 200, description = "The webhook", body = WebhookView),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Webhook not found", body = ErrorBody),
        (status = 503, description = "No store", body = ErrorBody)))]
pub async fn get_webhook(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<WebhookView>, ApiError> {
    let w = visible_webhook(&st, &scope, &id).await?;
    Ok(Json(view(&st, w).await?))
}

/// Change a webhook's URL, filter or enabled flag.
#[utoipa::path(patch, path = "/v1/webhooks/{webhook_id}", operation_id = "patch_webhook", tag = "events", request_body = WebhookPatchBody,
    params(("webhook_id" = String, Path, description = "Webhook id", pattern = r"^[0-9]{1,18}$")),
    responses((status = 200, description = "The webhook as changed", body = WebhookView),
        (status = 400, description = "Not an id, bad JSON, no field to change, or a field not in its format", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Webhook not found", body = ErrorBody),
        (status = 503, description = "No store", body = ErrorBody)))]
pub async fn patch_webhook(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<WebhookPatchBody>, JsonRejection>,
) -> Result<Json<WebhookView>, ApiError> {
    let w = visible_webhook(&st, &scope, &id).await?;
    let Json(b) = body?;
    if b.url.is_none() && b.events.is_none() && b.enabled.is_none() {
        return Err(ApiError::bad_request("nothing to change: give `url`, `events` or `enabled`"));
    }
    if let Some(u) = &b.url {
        check_url(u)?;
    }
    if let Some(t) = &b.events {
        check_types(t)?;
    }
    let w = store_of(&st)?.update_webhook(w.id, b.url.as_deref(), b.events.as_deref(), b.enabled).await?.ok_or_else(webhook_not_found)?;
    st.events.webhooks_changed.notify_one();
    Ok(Json(view(&st, w).await?))
}

/// Delete a webhook: its deliveries stop.
#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", operation_id = "delete_webhook", tag = "events",
    params(("webhook_id" = String, Path, description = "Webhook id", pattern = r"^[0-9]{1,18}$")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Webhook not found", body = ErrorBody),
        (status = 503, description = "No store", body = ErrorBody)))]
pub async fn delete_webhook(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    let w = visible_webhook(&st, &scope, &id).await?;
    if !store_of(&st)?.delete_webhook(w.id).await? {
        return Err(webhook_not_found());
    }
    st.events.webhooks_changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a webhook's signing secret: deliveries from now on are signed with the new
/// one (a new key id); the answer is the only time it is shown.
#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/rotate", operation_id = "rotate_webhook", tag = "events",
    params(("webhook_id" = String, Path, description = "Webhook id", pattern = r"^[0-9]{1,18}$")),
    responses((status = 200, description = "Rotated, with the new secret", body = NewWebhookView),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Webhook not found", body = ErrorBody),
        (status = 503, description = "No store or no event outbox", body = ErrorBody)))]
pub async fn rotate_webhook(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<NewWebhookView>, ApiError> {
    let w = visible_webhook(&st, &scope, &id).await?;
    let master = master_of(&st)?;
    let w = store_of(&st)?.rotate_webhook(w.id).await?.ok_or_else(webhook_not_found)?;
    st.events.webhooks_changed.notify_one();
    let secret = webhook_secret(&master, w.id, w.key_version);
    Ok(Json(NewWebhookView { webhook: view(&st, w).await?, secret }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_over_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let sig = signature("Jefe", 0, b"").len();
        assert_eq!(sig, 3 + 64);
        assert_eq!(hmac_hex(b"Jefe", b"what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let s = signature("Jefe", 1_700_000_000, br#"{"seq":1}"#);
        assert_eq!(s, format!("v1={}", hmac_hex(b"Jefe", br#"1700000000.{"seq":1}"#)));
        let m = [7u8; 32];
        assert_ne!(webhook_secret(&m, 1, 1), webhook_secret(&m, 1, 2), "a rotation changes the secret");
        assert_eq!(webhook_secret(&m, 1, 1).len(), 64);
        assert!(formats::matches(formats::WEBHOOK_URL, "http://127.0.0.1:8080/hook?a=1"));
        assert!(formats::matches(formats::WEBHOOK_URL, "https://hooks.example"));
        assert!(!formats::matches(formats::WEBHOOK_URL, "ftp://hooks.example/"));
        assert!(!formats::matches(formats::WEBHOOK_URL, "file:///etc/passwd"));
    }
}
