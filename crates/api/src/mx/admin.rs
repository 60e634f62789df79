//! The admin web (MX Proxy's `-admin` listener), on its own address (`[mx] admin_listen`).
//!
//! Unlike MX Proxy's, it needs an admin credential: HTTP Basic of an admin user
//! (`login@domain:password`, or `login:password` in the default domain), or a Bearer
//! that the API accepts with the admin role (the static token, an admin JWT or API
//! key). It never shows a secret: `/apps` maps client ids to names, `/users` has no
//! passwords. A domain's admin sees only its domain; the static token sees all.

use super::{mx_json, parse_basic, with_405, MxError};
use crate::auth::{constant_time_eq, Principal, Verifiers};
use crate::tokens::TokenService;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use engine::users::Role;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const ADMIN_REALM: &str = "Switchboard admin";

#[derive(Clone)]
pub struct AdminState {
    pub tokens: Arc<TokenService>,
    pub api_token: Option<String>,
    pub verifiers: Verifiers,
    /// For `/tokens` (None: the list is empty).
    pub store: Option<store::Store>,
}

pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/apps", with_405(get(apps), "GET"))
        .route("/connections", with_405(get(connections), "GET"))
        .route("/users", with_405(get(users).post(logout_user), "GET, POST"))
        .route("/tokens", with_405(get(tokens), "GET"))
        .fallback(|| async { MxError::not_found() })
        .with_state(state)
}

/// The caller, if it is an admin.
async fn admin(state: &AdminState, headers: &HeaderMap) -> Result<Principal, MxError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(MxError::basic(ADMIN_REALM));
    };
    let principal = if let Some(bearer) = value.strip_prefix("Bearer ") {
        let bearer = bearer.trim();
        if state.api_token.as_deref().is_some_and(|t| constant_time_eq(t.as_bytes(), bearer.as_bytes())) {
            Principal::superuser()
        } else {
            let mut found = None;
            for v in &state.verifiers {
                match v.verify(bearer) {
                    Ok(Some(p)) => {
                        found = Some(p);
                        break;
                    }
                    Ok(None) => {}
                    Err(reason) => return Err(MxError::bearer(format!("invalid token: {reason}"))),
                }
            }
            found.ok_or_else(|| MxError::bearer("invalid token: invalid token"))?
        }
    } else {
        let (user, password) = parse_basic(value).map_err(|_| MxError::forbidden("forbidden"))?;
        let dir = state.tokens.directory();
        let (login, domain) = match user.rsplit_once('@') {
            Some((l, d)) => (l.to_string(), dir.domain_by_name(&d.to_ascii_lowercase()).map(|d| d.id)),
            None => (user.clone(), dir.domain_by_name(&state.tokens.cfg.default_domain).map(|d| d.id)),
        };
        drop(dir);
        let bad = || MxError::forbidden("bad username or password");
        let domain = domain.ok_or_else(bad)?;
        let u = match state.tokens.backend().verify_user_password(domain, &login, &password).await {
            Ok(Some(u)) if u.enabled => u,
            Ok(_) => return Err(bad()),
            Err(e) => return Err(MxError::unavailable(e)),
        };
        Principal { domain: Some(u.domain_id), role: u.role, user_id: Some(u.id), token_id: None }
    };
    if principal.role != Role::Admin {
        return Err(MxError::forbidden("admin credential required"));
    }
    Ok(principal)
}

/// `{"apps":{"<client_id>":"<name, else domain, else empty>"}}`.
async fn apps(State(state): State<AdminState>, headers: HeaderMap) -> Result<Response, MxError> {
    let p = admin(&state, &headers).await?;
    let list = state.tokens.backend().list_apps().await.map_err(MxError::unavailable)?;
    let dir = state.tokens.directory();
    let mut m = serde_json::Map::new();
    for a in list.into_iter().filter(|a| p.domain.is_none() || a.domain_id == p.domain) {
        let label = a.name.clone().or_else(|| a.domain_id.and_then(|d| dir.domain(d)).map(|d| d.name.clone())).unwrap_or_default();
        m.insert(a.client_id, json!(label));
    }
    Ok(mx_json(StatusCode::OK, &json!({ "apps": m })))
}

/// `{"connections":["<login>",…]}`: logins with a live token (`login@domain` for the
/// superuser, who sees several domains); `null` when none, like MX.
async fn connections(State(state): State<AdminState>, headers: HeaderMap) -> Result<Response, MxError> {
    let p = admin(&state, &headers).await?;
    let dir = state.tokens.directory();
    let list: Vec<String> = state
        .tokens
        .connections(p.domain)
        .into_iter()
        .map(|(d, login)| match p.domain {
            Some(_) => login,
            None => format!("{login}@{}", dir.domain(d).map(|d| d.name.as_str()).unwrap_or("?")),
        })
        .collect();
    let v = if list.is_empty() { Value::Null } else { json!(list) };
    Ok(mx_json(StatusCode::OK, &json!({ "connections": v })))
}

/// `{"users":{"<login>":{…}}}`: the directory's users, no secrets.
async fn users(State(state): State<AdminState>, headers: HeaderMap) -> Result<Response, MxError> {
    let p = admin(&state, &headers).await?;
    let dir = state.tokens.directory();
    let mut m = serde_json::Map::new();
    for u in dir.users.iter().filter(|u| p.sees_domain(u.domain_id)) {
        let dname = dir.domain(u.domain_id).map(|d| d.name.clone()).unwrap_or_default();
        let key = if p.domain.is_some() { u.login.clone() } else { format!("{}@{dname}", u.login) };
        m.insert(
            key,
            json!({"login": u.login, "domain": dname, "jid": u.id.to_string(), "ext": u.ext.clone().unwrap_or_default(),
                   "role": u.role.as_str(), "enabled": u.enabled}),
        );
    }
    Ok(mx_json(StatusCode::OK, &json!({ "users": m })))
}

/// `{"tokens":{"apn:<topic>:<token>":"<login>"}}`: the push tokens of the admin's
/// domain (`login@domain` for the superuser, who sees several domains).
async fn tokens(State(state): State<AdminState>, headers: HeaderMap) -> Result<Response, MxError> {
    let p = admin(&state, &headers).await?;
    let list = match &state.store {
        Some(store) => store.list_push_tokens(p.domain).await.map_err(|e| MxError::unavailable(e.to_string()))?,
        None => Vec::new(),
    };
    let dir = state.tokens.directory();
    let mut m = serde_json::Map::new();
    for t in list {
        let Some(u) = dir.user(t.user_id) else { continue };
        let login = match p.domain {
            Some(_) => u.login.clone(),
            None => format!("{}@{}", u.login, dir.domain(u.domain_id).map(|d| d.name.as_str()).unwrap_or("?")),
        };
        m.insert(format!("{}:{}:{}", t.kind, t.topic, t.token), json!(login));
    }
    Ok(mx_json(StatusCode::OK, &json!({ "tokens": m })))
}

#[derive(Deserialize, Default)]
struct LogoutForm {
    #[serde(default)]
    login: String,
}

/// `POST /users` with `login`: every token of that user revoked → `{"userLogout":…}`.
async fn logout_user(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let p = admin(&state, &headers).await?;
    let form: LogoutForm = super::parse_body(&headers, &body)?;
    let dir = state.tokens.directory();
    let (login, domain) = match form.login.rsplit_once('@') {
        Some((l, d)) => (l.to_string(), dir.domain_by_name(&d.to_ascii_lowercase()).map(|d| d.id)),
        None => (form.login.clone(), p.domain.or_else(|| dir.domain_by_name(&state.tokens.cfg.default_domain).map(|d| d.id))),
    };
    let user = domain
        .filter(|d| p.sees_domain(*d))
        .and_then(|d| dir.users_of(d).find(|u| u.login == login).map(|u| u.id))
        .ok_or_else(MxError::not_found)?;
    drop(dir);
    state.tokens.revoke_user(user).await.map_err(MxError::unavailable)?;
    tracing::info!(%login, "admin web: user logged out everywhere");
    Ok(mx_json(StatusCode::OK, &json!({ "userLogout": login })))
}
