//! The MX Proxy dialect (reference 001): OAuth2 `/auth`, `/contacts`, `/debug/log`, and
//! our `/.well-known/jwks.json`, served at the root of the HTTP listener; the call log,
//! call mode and services ([`calls`]); voicemail ([`voicemail`]); scheduled conferences
//! ([`conferences`]); push tokens ([`push`]); the admin web on its own listener ([`admin`]).
//!
//! MX conventions kept here, not the native API's: every error body is
//! `{"error":"<text>"}`, JSON is indented by 4 spaces with `charset=utf-8`, bearer
//! failures are 401 with `WWW-Authenticate: Bearer realm=…` (403 on logout), and a
//! bad client credential is 403. A wrong user password is 403 `bad username or
//! password` (MX forwarded it to provisioning; ours is one text for unknown user and
//! wrong password, so it tells nothing about which logins exist).

pub mod admin;
pub mod call_control;
pub mod calls;
pub mod conferences;
pub mod csta;
pub mod push;
pub mod voicemail;

use crate::tokens::{AppInfo, Claims, Issued, TokenService};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use engine::users::User;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// The realm of our challenges.
pub const REALM: &str = "Switchboard";

#[derive(Clone)]
pub struct MxState {
    pub tokens: Arc<TokenService>,
    /// `[mx] log_file`, served by `/debug/log`.
    pub log_file: Option<PathBuf>,
    /// The database, for the call log, call modes and push tokens (None: those answer 503).
    pub store: Option<store::Store>,
    /// The push topics `PUT /tokens` accepts (`[push]`).
    pub push: Arc<push::PushTopics>,
    /// Poked after a write that changes the directory snapshot (call mode, push
    /// tokens, scheduled conferences), so the shell reloads it at once rather than at its next poll.
    pub directory_changed: Option<Arc<tokio::sync::Notify>>,
    /// The engine, for call control (None: those endpoints answer 503).
    pub engine: Option<engine::EngineHandle>,
    /// The data dir: voicemail files are under it (None: `GET /voicemails/{id}` is 503).
    pub data_dir: Option<PathBuf>,
    /// What `GET /conferences/info` shows (`[mx.conferences]`).
    pub conferences: Arc<conferences::ConferenceInfo>,
}

impl MxState {
    /// Just tokens and a log file: the call endpoints answer 503 and no push topic is known.
    pub fn new(tokens: Arc<TokenService>, log_file: Option<PathBuf>) -> MxState {
        MxState {
            tokens,
            log_file,
            store: None,
            push: Arc::default(),
            directory_changed: None,
            engine: None,
            data_dir: None,
            conferences: Arc::default(),
        }
    }

    fn directory_changed(&self) {
        if let Some(n) = &self.directory_changed {
            n.notify_one();
        }
    }
}

/// An MX error: `{"error":…}` with a status and maybe a challenge.
#[derive(Debug)]
pub struct MxError {
    pub status: StatusCode,
    pub text: String,
    pub challenge: Option<String>,
}

impl MxError {
    pub fn new(status: StatusCode, text: impl Into<String>) -> MxError {
        MxError { status, text: text.into(), challenge: None }
    }
    pub fn forbidden(text: impl Into<String>) -> MxError {
        Self::new(StatusCode::FORBIDDEN, text)
    }
    pub fn bad_request(text: impl Into<String>) -> MxError {
        Self::new(StatusCode::BAD_REQUEST, text)
    }
    pub fn not_found() -> MxError {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }
    /// 401 with a Bearer challenge.
    pub fn bearer(text: impl Into<String>) -> MxError {
        MxError { status: StatusCode::UNAUTHORIZED, text: text.into(), challenge: Some(format!("Bearer realm=\"{REALM}\"")) }
    }
    /// 401 with a Basic challenge.
    pub fn basic(realm: &str) -> MxError {
        MxError { status: StatusCode::UNAUTHORIZED, text: "unauthorized".into(), challenge: Some(format!("Basic realm=\"{realm}\"")) }
    }
    /// The store failed: not the caller's fault.
    pub fn unavailable(e: String) -> MxError {
        tracing::warn!("MX request: {e}");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service unavailable")
    }
}

impl IntoResponse for MxError {
    fn into_response(self) -> Response {
        let mut r = mx_json(self.status, &json!({ "error": self.text }));
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        r
    }
}

/// JSON the MX way: 4-space indent, `charset=utf-8`.
pub fn mx_json(status: StatusCode, v: &Value) -> Response {
    use serde::Serialize;
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    v.serialize(&mut ser).expect("JSON value serialises");
    buf.push(b'\n');
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], buf).into_response()
}

/// The MX routes, with their state; merged into the API router by the binary.
pub fn routes(state: MxState) -> Router {
    Router::new()
        .route("/auth", with_405(get(get_auth).post(post_auth).delete(delete_auth), "GET, POST, DELETE"))
        .route("/auth/logout", with_405(axum::routing::delete(delete_auth), "DELETE"))
        .route("/contacts", with_405(get(contacts), "GET"))
        .route("/calls", with_405(get(calls::call_log).patch(calls::set_call_mode).post(call_control::make_call), "GET, PATCH, POST"))
        .route(
            "/calls/{id}",
            with_405(
                axum::routing::patch(calls::assign_device)
                    .get(call_control::call_info)
                    .put(call_control::intercept)
                    .post(call_control::transfer)
                    .delete(call_control::clear),
                "GET, PUT, POST, DELETE, PATCH",
            ),
        )
        .route("/calls/{id}/hold", with_405(axum::routing::put(call_control::hold), "PUT"))
        .route("/calls/{id}/unhold", with_405(axum::routing::put(call_control::unhold), "PUT"))
        .route("/calls/{id}/record", with_405(axum::routing::post(call_control::record_start), "POST"))
        .route("/calls/{id}/record/stop", with_405(axum::routing::post(call_control::record_stop), "POST"))
        .route("/calls/{id}/conference", with_405(axum::routing::post(call_control::conference), "POST"))
        .route("/conferences", with_405(get(conferences::list).post(conferences::create), "GET, POST"))
        .route("/conferences/info", with_405(get(conferences::info), "GET"))
        .route(
            "/conferences/{id}",
            with_405(axum::routing::put(conferences::update).post(conferences::join).delete(conferences::delete), "PUT, POST, DELETE"),
        )
        .route("/services", with_405(get(calls::services), "GET"))
        .route("/voicemails", with_405(get(voicemail::list), "GET"))
        .route("/voicemails/{id}", with_405(get(voicemail::download).delete(voicemail::delete).patch(voicemail::patch), "GET, DELETE, PATCH"))
        .route("/tokens/{kind}/{topic}/{token}", with_405(axum::routing::put(push::put_token).delete(push::delete_token), "PUT, DELETE"))
        .route("/debug/log", with_405(get(debug_log), "GET"))
        .route("/.well-known/jwks.json", with_405(get(jwks), "GET"))
        .with_state(state)
}

/// 405 in the MX shape, with `Allow`.
pub fn with_405<S: Clone + Send + Sync + 'static>(m: MethodRouter<S>, allow: &'static str) -> MethodRouter<S> {
    m.fallback(move || async move {
        let mut r = MxError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        r
    })
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// `Basic base64(id:secret)` → (id, secret). `Err` = unparseable.
pub fn parse_basic(value: &str) -> Result<(String, String), ()> {
    use base64::Engine as _;
    let b64 = value.strip_prefix("Basic ").ok_or(())?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| ())?;
    let text = String::from_utf8(raw).map_err(|_| ())?;
    let (id, secret) = text.split_once(':').ok_or(())?;
    Ok((id.to_string(), secret.to_string()))
}

/// App credentials from HTTP Basic, MX's statuses on failure.
async fn app_from_basic(state: &MxState, headers: &HeaderMap, realm: &str) -> Result<AppInfo, MxError> {
    let Some(value) = authorization(headers) else { return Err(MxError::basic(realm)) };
    let (id, secret) = parse_basic(value).map_err(|_| MxError::forbidden("forbidden"))?;
    match state.tokens.backend().verify_app(&id, &secret).await {
        Ok(Some(app)) if app.enabled => Ok(app),
        Ok(_) => Err(MxError::forbidden("bad client-id or app secret")),
        Err(e) => Err(MxError::unavailable(e)),
    }
}

/// Our token from `Authorization: Bearer`, MX's 401s on failure.
fn bearer_claims(state: &MxState, headers: &HeaderMap) -> Result<Claims, MxError> {
    let Some(token) = authorization(headers).and_then(|v| v.strip_prefix("Bearer ")) else {
        return Err(MxError::bearer("unauthorized"));
    };
    match state.tokens.verify_claims(token.trim()) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(MxError::bearer("invalid token: invalid token")),
        Err(reason) => Err(MxError::bearer(format!("invalid token: {reason}"))),
    }
}

#[derive(Deserialize, Default)]
struct PasswordGrant {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// The body by its Content-Type (form or JSON), MX's 400s otherwise.
pub(crate) fn parse_body<T: for<'de> Deserialize<'de> + Default>(headers: &HeaderMap, body: &Bytes) -> Result<T, MxError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return if body.is_empty() { Ok(T::default()) } else { Err(MxError::bad_request("empty content type")) };
    };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body).map_err(|e| MxError::bad_request(e.to_string())),
        "application/json" => serde_json::from_slice(body).map_err(|e| MxError::bad_request(e.to_string())),
        _ => Err(MxError::bad_request("unsupported content type")),
    }
}

/// `POST /auth`: the OAuth2 password grant, or a federated id_token.
async fn post_auth(State(state): State<MxState>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    if let Some(id_token) = authorization(&headers).and_then(|v| v.strip_prefix("Bearer ")) {
        return federated(&state, id_token.trim()).await;
    }
    let app = app_from_basic(&state, &headers, &format!("{REALM} client application")).await?;
    let grant: PasswordGrant = parse_body(&headers, &body)?;
    if grant.grant_type != "password" {
        return Err(MxError::forbidden("bad grant_type"));
    }
    let refused = || MxError::forbidden("bad username or password");
    let dir = state.tokens.directory();
    let (login, domain) = match grant.username.rsplit_once('@') {
        Some((login, dom)) => (login, dir.domain_by_name(&dom.to_ascii_lowercase()).ok_or_else(refused)?),
        None => {
            let d = match app.domain_id {
                Some(id) => dir.domain(id),
                None => dir.domain_by_name(&state.tokens.cfg.default_domain),
            };
            (grant.username.as_str(), d.ok_or_else(refused)?)
        }
    };
    // An app of a domain logs in only that domain's users.
    if app.domain_id.is_some_and(|d| d != domain.id) || !domain.enabled || login.is_empty() {
        return Err(refused());
    }
    let user = match state.tokens.backend().verify_user_password(domain.id, login, &grant.password).await {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => return Err(refused()),
        Err(e) => return Err(MxError::unavailable(e)),
    };
    let domain_name = domain.name.clone();
    drop(dir);
    grant_token(&state, &user, &domain_name).await
}

/// Federated login: the issuer's id_token names a user of the configured domain.
async fn federated(state: &MxState, id_token: &str) -> Result<Response, MxError> {
    let Some(oidc) = &state.tokens.oidc else {
        return Err(MxError::bearer("invalid token: federated login is not configured"));
    };
    let login = oidc.verify(id_token).await.map_err(|reason| MxError::bearer(format!("invalid token: {reason}")))?;
    let dir = state.tokens.directory();
    let unknown = || MxError::forbidden(format!("unknown user {login}"));
    let domain = dir.domain_by_name(&oidc.cfg.domain.to_ascii_lowercase()).filter(|d| d.enabled).ok_or_else(unknown)?;
    let user = dir.users_of(domain.id).find(|u| u.login == login && u.enabled).cloned().ok_or_else(unknown)?;
    let domain_name = domain.name.clone();
    drop(dir);
    grant_token(state, &user, &domain_name).await
}

async fn grant_token(state: &MxState, user: &User, domain_name: &str) -> Result<Response, MxError> {
    let Issued { access_token, expires_in, claims } = state.tokens.issue(user, domain_name).await.map_err(MxError::unavailable)?;
    // The device password is made now, so GET /auth only reads it.
    state.tokens.soft_phone_password(&claims).await.map_err(MxError::unavailable)?;
    tracing::info!(login = %user.login, domain = %domain_name, jti = %claims.jti, "API login");
    let mut r = mx_json(StatusCode::OK, &json!({"token_type": "Bearer", "access_token": access_token, "expires_in": expires_in}));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /auth`: who the token belongs to, and its device SIP password.
async fn get_auth(State(state): State<MxState>, headers: HeaderMap) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let ext = state.tokens.directory().user(claims.sb_uid).map(|u| u.ext.clone().unwrap_or_default());
    let Some(ext) = ext else { return Err(MxError::bearer("invalid token: unknown user")) };
    let pwd = state.tokens.soft_phone_password(&claims).await.map_err(MxError::unavailable)?;
    Ok(mx_json(
        StatusCode::OK,
        &json!({"mx": state.tokens.cfg.node, "ext": ext, "jid": claims.sb_uid.to_string(), "softPhonePwd": pwd}),
    ))
}

/// `DELETE /auth`, `DELETE /auth/logout`: this token revoked, its device password gone.
async fn delete_auth(State(state): State<MxState>, headers: HeaderMap) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers).map_err(|e| {
        let text = if e.text == "unauthorized" { "bearer authorization token required".to_string() } else { e.text };
        MxError::forbidden(text)
    })?;
    state.tokens.revoke(&claims).await.map_err(MxError::unavailable)?;
    tracing::info!(login = %claims.sub, jti = %claims.jti, "API logout");
    Ok(mx_json(StatusCode::OK, &json!({ "userLogout": claims.sub })))
}

/// `GET /contacts`: the caller's domain's users, by extension (compared as text).
async fn contacts(State(state): State<MxState>, headers: HeaderMap) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let dir = state.tokens.directory();
    let mut users: Vec<&User> = dir.users_of(claims.sb_dom).filter(|u| u.enabled).collect();
    users.sort_by(|a, b| (a.ext.as_deref().unwrap_or(""), &a.login).cmp(&(b.ext.as_deref().unwrap_or(""), &b.login)));
    let list: Vec<Value> = users.into_iter().map(contact).collect();
    Ok(mx_json(StatusCode::OK, &json!({ "contacts": list })))
}

/// One contact: the four fields always, the others only when set.
fn contact(u: &User) -> Value {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let mut m = serde_json::Map::new();
    m.insert("jid".into(), json!(u.id.to_string()));
    m.insert("firstName".into(), json!(s(&u.first_name)));
    m.insert("lastName".into(), json!(s(&u.last_name)));
    m.insert("ext".into(), json!(s(&u.ext)));
    for (key, v) in [("homePhone", &u.home_phone), ("cellPhone", &u.cell_phone), ("email", &u.email), ("did", &u.did)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            m.insert(key.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// `GET /debug/log`: the configured log file, for an app's credentials.
async fn debug_log(State(state): State<MxState>, headers: HeaderMap) -> Result<Response, MxError> {
    app_from_basic(&state, &headers, &format!("{REALM} client application")).await?;
    let Some(path) = &state.log_file else { return Err(MxError::not_found()) };
    let text = tokio::fs::read(path).await.map_err(|e| {
        tracing::warn!("debug log {}: {e}", path.display());
        MxError::not_found()
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// `GET /.well-known/jwks.json`: our token signing keys' public halves.
async fn jwks(State(state): State<MxState>) -> Response {
    let mut r = mx_json(StatusCode::OK, &state.tokens.jwks());
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    r
}

#[cfg(test)]
mod tests;
