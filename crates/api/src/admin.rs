//! The directory's administration over REST (native dialect): `/v1/domains`,
//! `/v1/users`, `/v1/apps`, `/v1/keys` and `/v1/registrations`.
//!
//! Who may do what (see [`crate::auth`] for the principals):
//! - the superuser (static token, or a key/JWT of no domain) manages every domain, and
//!   alone creates and deletes domains;
//! - a domain admin manages its own domain's users, apps, keys and sees its
//!   registrations; its domain is the only one it sees (and may PATCH);
//! - a user principal gets 403 on every admin endpoint.
//!
//! Another domain's object is a 404 exactly like a missing one. Every input is checked
//! against the [`crate::formats`] pattern the OpenAPI publishes before the store sees
//! it (the store validates again, for the CLI). Secrets go in (passwords, PINs, app
//! secrets) and never come out; an API key is shown once, in the answer that creates it.
//!
//! Writes go to the store; each one then pokes [`AppState::directory_changed`] so the
//! shell reloads and republishes the directory at once instead of at its next poll.
//! Registrations are the bindings as persisted from the registrar's events (the
//! store's table), unexpired, of the caller's domain.

use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::formats;
use crate::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::users::{Binding, Domain, DomainId, Role, User, UserId};
use serde::{Deserialize, Serialize};
use store::{ApiKey, App, NewUser, Store, StoreError, UserPatch};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/domains", get(list_domains).post(create_domain))
        .route("/v1/domains/{name}", get(get_domain).patch(patch_domain).delete(delete_domain))
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{id}", get(get_user).patch(patch_user).delete(delete_user))
        .route("/v1/users/{id}/password", post(set_password))
        .route("/v1/apps", get(list_apps).post(create_app))
        .route("/v1/apps/{client_id}", get(get_app).patch(patch_app).delete(delete_app))
        .route("/v1/wcs/hooks", get(list_wcs_hooks))
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{name}", axum::routing::delete(delete_key))
        .route("/v1/registrations", get(list_registrations))
}

// ---- errors and checks ------------------------------------------------------------

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::AlreadyExists(m) | StoreError::InUse(m) => ApiError::conflict(m),
            StoreError::Invalid(m) => ApiError::bad_request(m),
            other => {
                tracing::error!(error = %other, "directory store failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Database error")
            }
        }
    }
}

pub(crate) fn domain_not_found() -> ApiError {
    ApiError::not_found("Domain not found")
}
fn user_not_found() -> ApiError {
    ApiError::not_found("User not found")
}
fn app_not_found() -> ApiError {
    ApiError::not_found("App not found")
}
fn key_not_found() -> ApiError {
    ApiError::not_found("API key not found")
}

/// The store, or 503 when the server runs without a directory (tests of the call APIs).
pub(crate) fn store_of(st: &AppState) -> Result<&Store, ApiError> {
    st.store.as_ref().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "No directory store configured"))
}

/// `value` in `format`, or a 400 naming `field`.
pub(crate) fn check(field: &str, format: &str, value: &str) -> Result<(), ApiError> {
    if formats::matches(format, value) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("`{field}` {value:?} does not match {format}")))
    }
}

fn check_opt(field: &str, format: &str, value: &Option<String>) -> Result<(), ApiError> {
    value.as_deref().map_or(Ok(()), |v| check(field, format, v))
}

pub(crate) fn check_domain_name(field: &str, v: &str) -> Result<(), ApiError> {
    if v.len() > formats::DOMAIN_NAME_MAX {
        return Err(ApiError::bad_request(format!("`{field}` is longer than {} characters", formats::DOMAIN_NAME_MAX)));
    }
    check(field, formats::DOMAIN_NAME, v)
}

fn check_secret(field: &str, v: &str) -> Result<(), ApiError> {
    let n = v.chars().count();
    if n == 0 || n > formats::SECRET_MAX {
        return Err(ApiError::bad_request(format!("`{field}` must be 1 to {} characters", formats::SECRET_MAX)));
    }
    Ok(())
}

/// Numeric ids in paths: 400 when not one.
pub(crate) fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| ApiError::bad_request(format!("`{s}` is not an id (an integer from 0)")))
}

fn after_write(st: &AppState) {
    st.directory_changed.notify_one();
}

/// The domain `name` if the caller sees it, else 404 (missing and foreign alike).
pub(crate) async fn visible_domain(st: &AppState, scope: &Scope, name: &str) -> Result<Domain, ApiError> {
    check_domain_name("name", name)?;
    let d = store_of(st)?.domain_by_name(&name.to_ascii_lowercase()).await?;
    d.filter(|d| scope.sees_domain_id(d.id)).ok_or_else(domain_not_found)
}

/// Where a new object goes: the caller's domain, or for the superuser the one named
/// (required when `required`). A domain admin naming another domain gets 404.
async fn target_domain(st: &AppState, scope: &Scope, named: Option<&str>, required: bool) -> Result<Option<DomainId>, ApiError> {
    match (scope.principal.domain, named) {
        (Some(own), None) => Ok(Some(own)),
        (_, Some(name)) => Ok(Some(visible_domain(st, scope, name).await?.id)),
        (None, None) if required => Err(ApiError::bad_request("`domain` is required (this credential belongs to no domain)")),
        (None, None) => Ok(None),
    }
}

// ---- domains -----------------------------------------------------------------------

/// A domain (tenant).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub id: i64,
    /// Primary SIP domain name, lowercase.
    pub name: String,
    /// Further SIP names the domain answers to.
    pub aliases: Vec<String>,
    /// Digest realm of its challenges.
    pub realm: String,
    pub enabled: bool,
}

impl From<Domain> for DomainView {
    fn from(d: Domain) -> Self {
        DomainView { id: d.id, name: d.name, aliases: d.aliases, realm: d.realm, enabled: d.enabled }
    }
}

/// Body of `POST /v1/domains`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomainBody {
    /// The domain's SIP name (a hostname; names that resolve nowhere are fine).
    pub name: String,
    /// Digest realm (default: the name).
    #[serde(default)]
    pub realm: Option<String>,
}

/// Body of `PATCH /v1/domains/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPatchBody {
    /// Disable (calls and logins refused) or enable the domain.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A further SIP name for the domain to answer to.
    #[serde(default)]
    pub add_alias: Option<String>,
}

/// Domains the caller sees (a domain admin: its own).
#[utoipa::path(get, path = "/v1/domains", operation_id = "list_domains", tag = "admin",
    responses((status = 200, description = "Domains, by name", body = [DomainView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn list_domains(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<DomainView>>, ApiError> {
    scope.require_admin()?;
    let all = store_of(&st)?.list_domains().await?;
    Ok(Json(all.into_iter().filter(|d| scope.sees_domain_id(d.id)).map(Into::into).collect()))
}

/// Create a domain (superuser only).
#[utoipa::path(post, path = "/v1/domains", operation_id = "create_domain", tag = "admin", request_body = NewDomainBody,
    responses((status = 201, description = "Created", body = DomainView),
        (status = 400, description = "Bad JSON, a name that is not a hostname, a bad realm", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "Not the superuser", body = ErrorBody),
        (status = 409, description = "The name is taken (by a domain or an alias)", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn create_domain(
    State(st): State<AppState>,
    scope: Scope,
    body: Result<Json<NewDomainBody>, JsonRejection>,
) -> Result<(StatusCode, Json<DomainView>), ApiError> {
    if !scope.is_superuser() {
        return Err(ApiError::forbidden());
    }
    let Json(b) = body?;
    check_domain_name("name", &b.name)?;
    check_opt("realm", formats::REALM, &b.realm)?;
    let d = store_of(&st)?.add_domain(&b.name, b.realm.as_deref()).await?;
    after_write(&st);
    Ok((StatusCode::CREATED, Json(d.into())))
}

/// One domain.
#[utoipa::path(get, path = "/v1/domains/{name}", operation_id = "get_domain", tag = "admin",
    params(("name" = String, Path, description = "Domain name")),
    responses((status = 200, description = "The domain", body = DomainView),
        (status = 400, description = "Not a domain name", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn get_domain(State(st): State<AppState>, scope: Scope, ApiPath(name): ApiPath<String>) -> Result<Json<DomainView>, ApiError> {
    scope.require_admin()?;
    Ok(Json(visible_domain(&st, &scope, &name).await?.into()))
}

/// Enable/disable a domain, or give it another SIP name.
#[utoipa::path(patch, path = "/v1/domains/{name}", operation_id = "patch_domain", tag = "admin",
    params(("name" = String, Path, description = "Domain name")), request_body = DomainPatchBody,
    responses((status = 200, description = "The domain after the change", body = DomainView),
        (status = 400, description = "Bad JSON, nothing to change, a bad alias", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 409, description = "The alias is taken", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn patch_domain(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(name): ApiPath<String>,
    body: Result<Json<DomainPatchBody>, JsonRejection>,
) -> Result<Json<DomainView>, ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    let d = visible_domain(&st, &scope, &name).await?;
    if b.enabled.is_none() && b.add_alias.is_none() {
        return Err(ApiError::bad_request("nothing to change: give `enabled` and/or `add_alias`"));
    }
    if let Some(a) = &b.add_alias {
        check_domain_name("add_alias", a)?;
    }
    let store = store_of(&st)?;
    if let Some(a) = &b.add_alias {
        store.add_domain_alias(d.id, a).await?;
    }
    if let Some(e) = b.enabled {
        store.set_domain_enabled(d.id, e).await?;
    }
    after_write(&st);
    Ok(Json(store.domain(d.id).await?.ok_or_else(domain_not_found)?.into()))
}

/// Delete a domain that has no users, apps or keys left (superuser only).
#[utoipa::path(delete, path = "/v1/domains/{name}", operation_id = "delete_domain", tag = "admin",
    params(("name" = String, Path, description = "Domain name")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Not a domain name", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "Not the superuser", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 409, description = "The domain still has users, apps or keys", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn delete_domain(State(st): State<AppState>, scope: Scope, ApiPath(name): ApiPath<String>) -> Result<StatusCode, ApiError> {
    scope.require_admin()?;
    let d = visible_domain(&st, &scope, &name).await?;
    if !scope.is_superuser() {
        return Err(ApiError::forbidden());
    }
    store_of(&st)?.delete_domain(d.id).await?;
    after_write(&st);
    Ok(StatusCode::NO_CONTENT)
}

// ---- users -------------------------------------------------------------------------

/// A user; secrets (password, PIN, SIP digests) are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub domain_id: i64,
    pub login: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub ext: Option<String>,
    pub did: Option<String>,
    pub cell_phone: Option<String>,
    pub home_phone: Option<String>,
    pub email: Option<String>,
    /// `admin` or `user`.
    pub role: String,
    pub enabled: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            domain_id: u.domain_id,
            login: u.login,
            display_name: u.display_name,
            first_name: u.first_name,
            last_name: u.last_name,
            ext: u.ext,
            did: u.did,
            cell_phone: u.cell_phone,
            home_phone: u.home_phone,
            email: u.email,
            role: u.role.as_str().to_owned(),
            enabled: u.enabled,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Admin,
    User,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::Admin => Role::Admin,
            RoleName::User => Role::User,
        }
    }
}

/// Body of `POST /v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// Unique in the domain; also the SIP digest username.
    pub login: String,
    /// API and SIP password (kept as argon2 and as digest HA1s; never shown).
    pub password: String,
    /// The user's domain: the caller's by default; the superuser must name one.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub ext: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub did: Option<String>,
    #[serde(default)]
    pub cell_phone: Option<String>,
    #[serde(default)]
    pub home_phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `user` (default) or `admin` (manages the domain).
    #[serde(default)]
    pub role: Option<RoleName>,
}

/// Body of `PATCH /v1/users/{id}`: fields to change; `""` clears an optional text field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub ext: Option<String>,
    #[serde(default)]
    pub did: Option<String>,
    #[serde(default)]
    pub cell_phone: Option<String>,
    #[serde(default)]
    pub home_phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub role: Option<RoleName>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Body of `POST /v1/users/{id}/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub password: String,
}

/// Query of `GET /v1/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Only this domain's users (the superuser; a domain admin sees its own anyway).
    pub domain: Option<String>,
}

/// Optional texts may be given empty (= clear) in a patch; a new user's are left out instead.
fn check_user_fields(
    clearable: bool,
    fields: [(&str, &Option<String>, &str); 8],
) -> Result<(), ApiError> {
    for (name, value, format) in fields {
        match value.as_deref() {
            Some("") if clearable => {}
            Some(v) => check(name, format, v)?,
            None => {}
        }
    }
    Ok(())
}

/// Users of the caller's domain (the superuser: every domain's, or `domain`'s).
#[utoipa::path(get, path = "/v1/users", operation_id = "list_users", tag = "admin", params(UsersQuery),
    responses((status = 200, description = "Users, by id", body = [UserView]),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn list_users(State(st): State<AppState>, scope: Scope, q: Result<Query<UsersQuery>, QueryRejection>) -> Result<Json<Vec<UserView>>, ApiError> {
    scope.require_admin()?;
    let Query(q) = q?;
    let domain = match &q.domain {
        Some(name) => Some(visible_domain(&st, &scope, name).await?.id),
        None => scope.principal.domain,
    };
    let users = store_of(&st)?.list_users(domain).await?;
    Ok(Json(users.into_iter().filter(|u| scope.sees_domain_id(u.domain_id)).map(Into::into).collect()))
}

/// Create a user.
#[utoipa::path(post, path = "/v1/users", operation_id = "create_user", tag = "admin", request_body = NewUserBody,
    responses((status = 201, description = "Created (no secrets shown)", body = UserView),
        (status = 400, description = "Bad JSON or a field not in its format", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 409, description = "Login or extension taken in the domain", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn create_user(
    State(st): State<AppState>,
    scope: Scope,
    body: Result<Json<NewUserBody>, JsonRejection>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    check("login", formats::LOGIN, &b.login)?;
    check_secret("password", &b.password)?;
    check_opt("pin", formats::PIN, &b.pin)?;
    check_user_fields(
        false,
        [
            ("ext", &b.ext, formats::EXTENSION),
            ("did", &b.did, formats::PHONE),
            ("cell_phone", &b.cell_phone, formats::PHONE),
            ("home_phone", &b.home_phone, formats::PHONE),
            ("email", &b.email, formats::EMAIL),
            ("first_name", &b.first_name, formats::PERSON_NAME),
            ("last_name", &b.last_name, formats::PERSON_NAME),
            ("display_name", &b.display_name, formats::PERSON_NAME),
        ],
    )?;
    if let Some(d) = &b.domain {
        check_domain_name("domain", d)?;
    }
    let domain_id = target_domain(&st, &scope, b.domain.as_deref(), true).await?.expect("required");
    let store = store_of(&st)?;
    let domain = store.domain(domain_id).await?.ok_or_else(domain_not_found)?;
    let new = NewUser {
        domain: domain.name,
        login: b.login,
        password: b.password,
        pin: b.pin,
        ext: b.ext,
        first_name: b.first_name,
        last_name: b.last_name,
        display_name: b.display_name,
        did: b.did,
        cell_phone: b.cell_phone,
        home_phone: b.home_phone,
        email: b.email,
        role: b.role.map(Into::into).unwrap_or_default(),
    };
    let u = store.add_user(&new).await?;
    after_write(&st);
    Ok((StatusCode::CREATED, Json(u.into())))
}

async fn visible_user(st: &AppState, scope: &Scope, id: &str) -> Result<User, ApiError> {
    let id: UserId = parse_id(id)?;
    let u = store_of(st)?.user(id).await?;
    u.filter(|u| scope.sees_domain_id(u.domain_id)).ok_or_else(user_not_found)
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{id}", operation_id = "get_user", tag = "admin",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "The user", body = UserView),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "User not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn get_user(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Json<UserView>, ApiError> {
    scope.require_admin()?;
    Ok(Json(visible_user(&st, &scope, &id).await?.into()))
}

/// Change a user's fields (and PIN, role, enabled).
#[utoipa::path(patch, path = "/v1/users/{id}", operation_id = "patch_user", tag = "admin",
    params(("id" = i64, Path, description = "User id")), request_body = UserPatchBody,
    responses((status = 200, description = "The user after the change", body = UserView),
        (status = 400, description = "Bad JSON, nothing to change, a field not in its format", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "User not found", body = ErrorBody),
        (status = 409, description = "Extension taken in the domain", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn patch_user(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<UserPatchBody>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    let u = visible_user(&st, &scope, &id).await?;
    check_user_fields(
        true,
        [
            ("ext", &b.ext, formats::EXTENSION),
            ("did", &b.did, formats::PHONE),
            ("cell_phone", &b.cell_phone, formats::PHONE),
            ("home_phone", &b.home_phone, formats::PHONE),
            ("email", &b.email, formats::EMAIL),
            ("first_name", &b.first_name, formats::PERSON_NAME),
            ("last_name", &b.last_name, formats::PERSON_NAME),
            ("display_name", &b.display_name, formats::PERSON_NAME),
        ],
    )?;
    match b.pin.as_deref() {
        Some("") | None => {}
        Some(p) => check("pin", formats::PIN, p)?,
    }
    let patch = UserPatch {
        display_name: b.display_name,
        first_name: b.first_name,
        last_name: b.last_name,
        ext: b.ext,
        did: b.did,
        cell_phone: b.cell_phone,
        home_phone: b.home_phone,
        email: b.email,
        role: b.role.map(Into::into),
        enabled: b.enabled,
        password: None,
        pin: b.pin,
    };
    let unchanged = patch.display_name.is_none()
        && patch.first_name.is_none()
        && patch.last_name.is_none()
        && patch.ext.is_none()
        && patch.did.is_none()
        && patch.cell_phone.is_none()
        && patch.home_phone.is_none()
        && patch.email.is_none()
        && patch.role.is_none()
        && patch.enabled.is_none()
        && patch.pin.is_none();
    if unchanged {
        return Err(ApiError::bad_request("nothing to change"));
    }
    let u = store_of(&st)?.update_user(u.id, &patch).await?;
    after_write(&st);
    Ok(Json(u.into()))
}

/// Delete a user (and its registrations and device passwords).
#[utoipa::path(delete, path = "/v1/users/{id}", operation_id = "delete_user", tag = "admin",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "User not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn delete_user(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    scope.require_admin()?;
    let u = visible_user(&st, &scope, &id).await?;
    store_of(&st)?.delete_user(u.id).await?;
    after_write(&st);
    Ok(StatusCode::NO_CONTENT)
}

/// Set a user's password (API and SIP).
#[utoipa::path(post, path = "/v1/users/{id}/password", operation_id = "set_user_password", tag = "admin",
    params(("id" = i64, Path, description = "User id")), request_body = PasswordBody,
    responses((status = 204, description = "Changed"),
        (status = 400, description = "Bad JSON, not an id, an empty or too long password", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "User not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn set_password(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    let u = visible_user(&st, &scope, &id).await?;
    check_secret("password", &b.password)?;
    store_of(&st)?.set_user_password(u.id, &b.password).await?;
    after_write(&st);
    Ok(StatusCode::NO_CONTENT)
}

// ---- apps --------------------------------------------------------------------------

/// An OAuth2 client; its secret is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub id: i64,
    pub client_id: String,
    pub name: Option<String>,
    /// The domain whose users may log in through it; null = any (superuser's apps).
    pub domain_id: Option<i64>,
    pub enabled: bool,
    pub created_ms: u64,
    /// Web Call Server hooks: POSTed to this URL + "/" + method (null: none).
    pub rest_url: Option<String>,
    /// The hooks its backend gets, by method or event name (null: every one).
    pub rest_methods: Option<Vec<String>>,
}

impl From<App> for AppView {
    fn from(a: App) -> Self {
        AppView {
            id: a.id,
            client_id: a.client_id,
            name: a.name,
            domain_id: a.domain_id,
            enabled: a.enabled,
            created_ms: a.created_ms,
            rest_url: a.rest_url,
            rest_methods: a.rest_methods,
        }
    }
}

/// Body of `POST /v1/apps`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppBody {
    pub client_id: String,
    /// The client secret (kept as argon2; never shown). May be left out for a Web Call
    /// Server app (one with `rest_url`): nobody logs in with it.
    #[serde(default)]
    pub secret: Option<String>,
    /// Web Call Server hooks (reference 004): the app's client id is the `appKey`
    /// browsers connect with, and `<rest_url>/<method>` is POSTed for their sessions.
    #[serde(default)]
    pub rest_url: Option<String>,
    /// Which hooks its backend gets (WCS's per-app REST methods): method and event names
    /// (`connect`, `call`, `CallStatusEvent`); `*` or left out: every one.
    #[serde(default)]
    pub rest_methods: Option<Vec<String>>,
    #[serde(default)]
    pub name: Option<String>,
    /// Its domain: the caller's by default; the superuser may leave it out (any domain).
    #[serde(default)]
    pub domain: Option<String>,
}

/// Body of `PATCH /v1/apps/{client_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppPatchBody {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A new client secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// A new WCS REST URL; "" removes it.
    #[serde(default)]
    pub rest_url: Option<String>,
    /// Which hooks its backend gets from now on; `["*"]`: every one, `[]`: none.
    #[serde(default)]
    pub rest_methods: Option<Vec<String>>,
}

/// A random value for secrets nobody is told (ring's system RNG, as the tokens').
fn rand_u128() -> Result<u128, ApiError> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no system randomness"))?;
    Ok(u128::from_le_bytes(b))
}

async fn visible_app(st: &AppState, scope: &Scope, client_id: &str) -> Result<App, ApiError> {
    check("client_id", formats::LOGIN, client_id)?;
    let a = store_of(st)?.app(client_id).await?;
    a.filter(|a| a.domain_id.map_or(scope.is_superuser(), |d| scope.sees_domain_id(d))).ok_or_else(app_not_found)
}

/// Apps of the caller's domain (the superuser: all).
#[utoipa::path(get, path = "/v1/apps", operation_id = "list_apps", tag = "admin",
    responses((status = 200, description = "Apps, by client id", body = [AppView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn list_apps(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<AppView>>, ApiError> {
    scope.require_admin()?;
    let apps = store_of(&st)?.list_apps(scope.principal.domain).await?;
    let visible = apps.into_iter().filter(|a| a.domain_id.map_or(scope.is_superuser(), |d| scope.sees_domain_id(d)));
    Ok(Json(visible.map(Into::into).collect()))
}

/// Register an OAuth2 client.
#[utoipa::path(post, path = "/v1/apps", operation_id = "create_app", tag = "admin", request_body = NewAppBody,
    responses((status = 201, description = "Created (the secret is not shown)", body = AppView),
        (status = 400, description = "Bad JSON or a field not in its format", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 409, description = "The client id is taken", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn create_app(
    State(st): State<AppState>,
    scope: Scope,
    body: Result<Json<NewAppBody>, JsonRejection>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    check("client_id", formats::LOGIN, &b.client_id)?;
    let secret = match (&b.secret, &b.rest_url) {
        (Some(s), _) => {
            check_secret("secret", s)?;
            s.clone()
        }
        // A WCS-only app: its OAuth2 secret is random and told to nobody.
        (None, Some(_)) => format!("{:032x}", rand_u128()?),
        (None, None) => return Err(ApiError::bad_request("`secret` is required (or `rest_url`, for a Web Call Server app)")),
    };
    if let Some(u) = &b.rest_url {
        store::valid_rest_url(u).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if let Some(m) = &b.rest_methods {
        store::valid_rest_methods(m).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    check_opt("name", formats::PERSON_NAME, &b.name)?;
    if let Some(d) = &b.domain {
        check_domain_name("domain", d)?;
    }
    let domain = target_domain(&st, &scope, b.domain.as_deref(), false).await?;
    let store = store_of(&st)?;
    let mut a = store.add_app(&b.client_id, &secret, b.name.as_deref(), domain).await?;
    if let Some(u) = &b.rest_url {
        store.set_app_rest_url(&a.client_id, Some(u)).await?;
    }
    if let Some(m) = &b.rest_methods {
        store.set_app_rest_methods(&a.client_id, Some(m)).await?;
    }
    if b.rest_url.is_some() || b.rest_methods.is_some() {
        a = store.app(&a.client_id).await?.ok_or_else(app_not_found)?;
    }
    after_write(&st);
    Ok((StatusCode::CREATED, Json(a.into())))
}

/// One app.
#[utoipa::path(get, path = "/v1/apps/{client_id}", operation_id = "get_app", tag = "admin",
    params(("client_id" = String, Path, description = "OAuth2 client id")),
    responses((status = 200, description = "The app", body = AppView),
        (status = 400, description = "Not a client id", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "App not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn get_app(State(st): State<AppState>, scope: Scope, ApiPath(client_id): ApiPath<String>) -> Result<Json<AppView>, ApiError> {
    scope.require_admin()?;
    Ok(Json(visible_app(&st, &scope, &client_id).await?.into()))
}

/// Enable/disable an app, or give it a new secret.
#[utoipa::path(patch, path = "/v1/apps/{client_id}", operation_id = "patch_app", tag = "admin",
    params(("client_id" = String, Path, description = "OAuth2 client id")), request_body = AppPatchBody,
    responses((status = 200, description = "The app after the change", body = AppView),
        (status = 400, description = "Bad JSON, nothing to change, a bad secret", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "App not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn patch_app(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(client_id): ApiPath<String>,
    body: Result<Json<AppPatchBody>, JsonRejection>,
) -> Result<Json<AppView>, ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    let a = visible_app(&st, &scope, &client_id).await?;
    if b.enabled.is_none() && b.secret.is_none() && b.rest_url.is_none() && b.rest_methods.is_none() {
        return Err(ApiError::bad_request("nothing to change: give `enabled`, `secret`, `rest_url` and/or `rest_methods`"));
    }
    if let Some(m) = &b.rest_methods {
        store::valid_rest_methods(m).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if let Some(s) = &b.secret {
        check_secret("secret", s)?;
    }
    let rest_url = b.rest_url.as_deref().map(|u| if u.is_empty() { Ok(None) } else { store::valid_rest_url(u).map(Some) });
    let rest_url = rest_url.transpose().map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = store_of(&st)?;
    if let Some(u) = &rest_url {
        store.set_app_rest_url(&a.client_id, u.as_deref()).await?;
    }
    if let Some(m) = &b.rest_methods {
        store.set_app_rest_methods(&a.client_id, Some(m)).await?;
    }
    if let Some(s) = &b.secret {
        store.set_app_secret(&a.client_id, s).await?;
    }
    if let Some(e) = b.enabled {
        store.set_app_enabled(&a.client_id, e).await?;
    }
    after_write(&st);
    Ok(Json(store.app(&a.client_id).await?.ok_or_else(app_not_found)?.into()))
}

/// Web Call Server event hooks waiting for an app's backend (down, or answering 5xx):
/// how many, since when, and why the first is not delivered yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookBacklogView {
    /// The app (its client id: the `appKey` browsers connect with; `defaultApp` too).
    pub app: String,
    pub pending: u64,
    /// When the oldest waiting event happened (ms since the epoch).
    pub oldest_ms: u64,
    /// Tries of the first waiting event so far.
    pub attempts: u32,
    /// Not tried again before this (ms since the epoch; 0: now).
    pub next_attempt_ms: u64,
    /// The last answer's HTTP status (null: no answer, or not tried yet).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// WCS event hooks not yet delivered, per app (none waiting: an empty list).
#[utoipa::path(get, path = "/v1/wcs/hooks", operation_id = "list_wcs_hooks", tag = "admin",
    responses((status = 200, description = "The apps with events waiting; a domain admin sees its domain's apps", body = [HookBacklogView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn list_wcs_hooks(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<HookBacklogView>>, ApiError> {
    scope.require_admin()?;
    let store = store_of(&st)?;
    let backlog = store.hook_backlog().await?;
    // The superuser sees every queue (`defaultApp` is no directory app); a domain admin
    // those of its domain's apps.
    let mine: Option<Vec<String>> = if scope.is_superuser() {
        None
    } else {
        let apps = store.list_apps(scope.principal.domain).await?;
        Some(apps.into_iter().filter(|a| a.domain_id.is_some_and(|d| scope.sees_domain_id(d))).map(|a| a.client_id).collect())
    };
    let views = backlog
        .into_iter()
        .filter(|q| mine.as_ref().is_none_or(|m| m.contains(&q.queue)))
        .map(|q| HookBacklogView {
            app: q.queue,
            pending: q.pending,
            oldest_ms: q.oldest_ms,
            attempts: q.head_attempts,
            next_attempt_ms: q.next_attempt_ms,
            last_status: q.last_status,
            last_error: q.last_error,
        })
        .collect();
    Ok(Json(views))
}

/// Delete an app.
#[utoipa::path(delete, path = "/v1/apps/{client_id}", operation_id = "delete_app", tag = "admin",
    params(("client_id" = String, Path, description = "OAuth2 client id")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Not a client id", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "App not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn delete_app(State(st): State<AppState>, scope: Scope, ApiPath(client_id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    scope.require_admin()?;
    let a = visible_app(&st, &scope, &client_id).await?;
    store_of(&st)?.delete_app(&a.client_id).await?;
    after_write(&st);
    Ok(StatusCode::NO_CONTENT)
}

// ---- API keys ----------------------------------------------------------------------

/// An API key's description (the key itself is shown only when created).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    /// null = every domain (a superuser key when the role is admin).
    pub domain_id: Option<i64>,
    /// `admin` or `user`.
    pub role: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub created_ms: u64,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        KeyView { id: k.id, name: k.name, domain_id: k.domain_id, role: k.role.as_str().to_owned(), prefix: k.prefix, created_ms: k.created_ms }
    }
}

/// The answer to `POST /v1/keys`: the description and, this once, the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyView {
    #[serde(flatten)]
    pub key_info: KeyView,
    /// The bearer credential (`sbk_` + 64 hex digits). Not kept by the server: copy it now.
    pub key: String,
}

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// Unique name.
    pub name: String,
    /// `admin` (default) or `user`.
    #[serde(default)]
    pub role: Option<RoleName>,
    /// Its domain: the caller's by default; the superuser may leave it out (every domain).
    #[serde(default)]
    pub domain: Option<String>,
}

fn key_visible(scope: &Scope, k: &ApiKey) -> bool {
    k.domain_id.map_or(scope.is_superuser(), |d| scope.sees_domain_id(d))
}

/// API keys of the caller's domain (the superuser: all).
#[utoipa::path(get, path = "/v1/keys", operation_id = "list_keys", tag = "admin",
    responses((status = 200, description = "Keys, by name (never the keys themselves)", body = [KeyView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn list_keys(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<KeyView>>, ApiError> {
    scope.require_admin()?;
    let keys = store_of(&st)?.list_api_keys().await?;
    Ok(Json(keys.into_iter().filter(|k| key_visible(&scope, k)).map(Into::into).collect()))
}

/// Create an API key; the answer is the only time the key is shown.
#[utoipa::path(post, path = "/v1/keys", operation_id = "create_key", tag = "admin", request_body = NewKeyBody,
    responses((status = 201, description = "Created: `key` is the bearer credential", body = NewKeyView),
        (status = 400, description = "Bad JSON or a field not in its format", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "Domain not found", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn create_key(
    State(st): State<AppState>,
    scope: Scope,
    body: Result<Json<NewKeyBody>, JsonRejection>,
) -> Result<(StatusCode, Json<NewKeyView>), ApiError> {
    scope.require_admin()?;
    let Json(b) = body?;
    check("name", formats::LOGIN, &b.name)?;
    if let Some(d) = &b.domain {
        check_domain_name("domain", d)?;
    }
    let domain = target_domain(&st, &scope, b.domain.as_deref(), false).await?;
    let role = b.role.map(Role::from).unwrap_or(Role::Admin);
    let (k, key) = store_of(&st)?.add_api_key(&b.name, domain, role).await?;
    Ok((StatusCode::CREATED, Json(NewKeyView { key_info: k.into(), key })))
}

/// Delete an API key: it stops working at once.
#[utoipa::path(delete, path = "/v1/keys/{name}", operation_id = "delete_key", tag = "admin",
    params(("name" = String, Path, description = "Key name")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Not a key name", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 404, description = "API key not found", body = ErrorBody),
        (status = 503, description = "No directory store", body = ErrorBody)))]
pub async fn delete_key(State(st): State<AppState>, scope: Scope, ApiPath(name): ApiPath<String>) -> Result<StatusCode, ApiError> {
    scope.require_admin()?;
    check("name", formats::LOGIN, &name)?;
    let store = store_of(&st)?;
    let k = store.list_api_keys().await?.into_iter().find(|k| k.name == name && key_visible(&scope, k)).ok_or_else(key_not_found)?;
    store.delete_api_key(&k.name).await?;
    st.api_keys.forget_all();
    Ok(StatusCode::NO_CONTENT)
}

// ---- registrations -----------------------------------------------------------------

/// A registered contact of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationView {
    pub user_id: i64,
    pub domain_id: i64,
    /// The user's login.
    pub login: Option<String>,
    /// The Contact URI as registered.
    pub contact: String,
    /// `q` in thousandths (1000 = 1.0).
    pub q: u16,
    pub expires_at_ms: u64,
    /// Where the REGISTER came from (requests to the contact go there).
    pub source: String,
    /// `udp` or `tcp`.
    pub transport: String,
    pub user_agent: Option<String>,
}

/// Current registrations (unexpired bindings) of the caller's domain (superuser: all).
#[utoipa::path(get, path = "/v1/registrations", operation_id = "list_registrations", tag = "admin",
    responses((status = 200, description = "Bindings, by user then contact", body = [RegistrationView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 403, description = "A user credential (admins only)", body = ErrorBody),
        (status = 503, description = "The server is shutting down", body = ErrorBody)))]
pub async fn list_registrations(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<RegistrationView>>, ApiError> {
    scope.require_admin()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let dir = st.directory_now();
    // The registrar's live bindings (the store's copy is written behind them).
    let mut bindings: Vec<Binding> = st.engine.registrations().await?;
    bindings.retain(|b| b.expires_at_ms > now && scope.sees_domain_id(b.domain_id));
    bindings.sort_by(|a, b| a.user_id.cmp(&b.user_id).then_with(|| a.contact.cmp(&b.contact)));
    Ok(Json(
        bindings
            .into_iter()
            .map(|b| RegistrationView {
                login: dir.user(b.user_id).map(|u| u.login.clone()),
                user_id: b.user_id,
                domain_id: b.domain_id,
                contact: b.contact,
                q: b.q,
                expires_at_ms: b.expires_at_ms,
                source: b.source.to_string(),
                transport: b.transport,
                user_agent: b.user_agent,
            })
            .collect(),
    ))
}
