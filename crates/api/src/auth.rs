//! Who is calling, and what it may see.
//!
//! Every protected request carries a [`Principal`], found from its
//! `Authorization: Bearer …` by the first credential kind that recognises it:
//! - the static `--api-token`: a superuser (no domain), for bootstrapping;
//! - a credential of [`AppState::verifiers`] (the JWTs `/auth` issues): a domain and a role;
//! - an API key (`/v1/keys`, or the CLI), checked against the store: a domain and a role.
//!   Checking a key costs a database read and a hash, so verified keys (and refused
//!   ones) are remembered for [`API_KEY_TTL`]; deleting a key through the API forgets
//!   them all at once, a key deleted by the CLI stops working within the TTL.
//!
//! Handlers take a [`Scope`] (the principal plus its domain's name and, for a user,
//! the names its calls are recognised by) and filter everything through it:
//! - a superuser sees every domain;
//! - an admin sees its own domain's rooms, calls, users, apps, keys and registrations;
//! - a user sees its own calls (legs whose local or remote URI's user part is its
//!   login, extension or one of its numbers) and the rooms it takes part in (the same
//!   test on a live participant), and no admin endpoint (403).
//!
//! Another domain's object is a 404 exactly like a missing one, and never counts in
//! lists, counts or events. Not layered on `/health`, `/openapi.json` and `/docs` (see
//! `openapi.rs` for why the docs are open). With no `--api-token` configured, a request
//! without credentials is the superuser (the binary refuses to serve HTTP off loopback
//! in that case); a request with a key or token is held to it either way.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use engine::users::{DirectorySnapshot, DomainId, Role, UserId};
use engine::{LegInfo, RoomInfo, RoomSnapshot};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The caller of one request, as its credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// None = every domain (the static token, or an open server).
    pub domain: Option<DomainId>,
    pub role: Role,
    /// Set when the credential belongs to a user (a JWT from `/auth`).
    pub user_id: Option<UserId>,
    /// The JWT's `jti`, for logout (`key:<id>` for an API key).
    pub token_id: Option<String>,
}

impl Principal {
    pub fn superuser() -> Principal {
        Principal { domain: None, role: Role::Admin, user_id: None, token_id: None }
    }

    /// True when this caller may see objects of `domain`.
    pub fn sees_domain(&self, domain: DomainId) -> bool {
        self.domain.is_none_or(|d| d == domain)
    }

    pub fn is_superuser(&self) -> bool {
        self.domain.is_none() && self.role == Role::Admin
    }

    /// Admin endpoints: an admin (of its domain, or the superuser) passes; a user gets 403.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// A kind of bearer credential (JWTs, API keys). `Ok(None)`: not mine, ask the next;
/// `Err`: mine but refused (expired, revoked), with the reason for the 401.
pub trait CredentialVerifier: Send + Sync {
    fn verify(&self, bearer: &str) -> Result<Option<Principal>, String>;
}

pub type Verifiers = Vec<Arc<dyn CredentialVerifier>>;

pub async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let principal = identify(&state, given.as_deref()).await?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// The principal of a bearer credential; 401 when there is none or it is not valid.
pub async fn identify(state: &AppState, given: Option<&str>) -> Result<Principal, ApiError> {
    let Some(given) = given else {
        // No static token configured = the open development mode (the binary serves
        // HTTP only on loopback then): a request without credentials is the superuser.
        // One that brings a key or a token is still held to it.
        return if state.api_token.is_none() { Ok(Principal::superuser()) } else { Err(ApiError::unauthorized()) };
    };
    if let Some(expected) = &state.api_token {
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Ok(Principal::superuser());
        }
    }
    for v in &state.verifiers {
        match v.verify(given) {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(_reason) => return Err(ApiError::unauthorized()),
        }
    }
    if let (Some(store), true) = (&state.store, given.starts_with(store::API_KEY_PREFIX)) {
        if let Some(p) = state.api_keys.verify(store, given).await {
            return Ok(p);
        }
    }
    Err(ApiError::unauthorized())
}

/// Compares without an early exit, so response time does not leak the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a verified (or refused) API key is believed without asking the store.
pub const API_KEY_TTL: Duration = Duration::from_secs(10);
/// Most keys remembered; beyond that the memory starts afresh (a flood of wrong keys
/// must not grow it without bound).
const API_KEY_CACHE_MAX: usize = 10_000;

/// Verified API keys, by a hash of the key (the plaintext is not kept).
#[derive(Clone, Default)]
pub struct ApiKeyCache {
    inner: Arc<Mutex<HashMap<[u8; 32], (Instant, Option<Principal>)>>>,
}

impl ApiKeyCache {
    async fn verify(&self, store: &store::Store, key: &str) -> Option<Principal> {
        use sha2::Digest;
        let id: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
        let now = Instant::now();
        if let Some((at, p)) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            if now.duration_since(*at) < API_KEY_TTL {
                return p.clone();
            }
        }
        let found = match store.verify_api_key(key).await {
            Ok(found) => found.map(|k| Principal { domain: k.domain_id, role: k.role, user_id: None, token_id: Some(format!("key:{}", k.id)) }),
            Err(e) => {
                // not remembered: the next request asks again
                tracing::warn!(error = %e, "API key check failed");
                return None;
            }
        };
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= API_KEY_CACHE_MAX {
            map.clear();
        }
        map.insert(id, (now, found.clone()));
        found
    }

    /// Forgets every remembered key (after a key is deleted or changed).
    pub fn forget_all(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// What one request may see: its [`Principal`] with the name of its domain and, for a
/// user, the names its calls are recognised by. Extracted by handlers; see the module
/// docs for the rules.
#[derive(Debug, Clone)]
pub struct Scope {
    pub principal: Principal,
    /// The domain's name, lowercase (as rooms and legs carry it); None = every domain.
    /// A domain missing from the directory is the empty name, which nothing has.
    pub domain: Option<String>,
    /// A user principal's login, extension and numbers; None for admins.
    user_keys: Option<Vec<String>>,
}

impl Scope {
    pub fn new(principal: Principal, dir: &DirectorySnapshot) -> Scope {
        let domain = principal.domain.map(|id| dir.domain(id).map(|d| d.name.to_ascii_lowercase()).unwrap_or_default());
        let user_keys = (principal.role == Role::User).then(|| {
            let Some(u) = principal.user_id.and_then(|id| dir.user(id)).filter(|u| Some(u.domain_id) == principal.domain) else {
                return Vec::new();
            };
            [Some(&u.login), u.ext.as_ref(), u.did.as_ref(), u.cell_phone.as_ref(), u.home_phone.as_ref()]
                .into_iter()
                .flatten()
                .map(|k| normalize(k))
                .filter(|k| !k.is_empty())
                .collect()
        });
        Scope { principal, domain, user_keys }
    }

    pub fn superuser() -> Scope {
        Scope { principal: Principal::superuser(), domain: None, user_keys: None }
    }

    pub fn is_superuser(&self) -> bool {
        self.domain.is_none() && self.user_keys.is_none()
    }

    /// A user principal: its rooms must be told by their participants.
    pub fn is_user(&self) -> bool {
        self.user_keys.is_some()
    }

    pub fn sees_domain_name(&self, name: &str) -> bool {
        self.domain.as_deref().is_none_or(|d| d.eq_ignore_ascii_case(name))
    }

    pub fn sees_domain_id(&self, id: DomainId) -> bool {
        self.principal.sees_domain(id)
    }

    /// The room's domain is ours (enough for admins; users need [`Scope::sees_room`]).
    pub fn sees_room_info(&self, room: &RoomInfo) -> bool {
        self.sees_domain_name(&room.domain) && !self.is_user()
    }

    /// The room is ours: its domain, and for a user, a live participant who is it.
    pub fn sees_room(&self, room: &RoomSnapshot) -> bool {
        if !self.sees_domain_name(&room.room.domain) {
            return false;
        }
        match &self.user_keys {
            None => true,
            Some(keys) => room.participants.iter().any(|p| p.state != engine::LegState::Ended && self.names_user(keys, &p.ruri)),
        }
    }

    /// The call is ours: its domain, and for a user, one of its ends is that user.
    pub fn sees_leg(&self, leg: &LegInfo) -> bool {
        if !self.sees_domain_name(&leg.domain) {
            return false;
        }
        match &self.user_keys {
            None => true,
            Some(keys) => self.names_user(keys, &leg.remote_uri) || self.names_user(keys, &leg.local_uri),
        }
    }

    /// A call is seen by its domain's admins, and by the users who are one of its parties.
    pub fn sees_call(&self, call: &engine::CallInfo) -> bool {
        if !self.sees_domain_name(&call.domain) {
            return false;
        }
        match &self.user_keys {
            None => true,
            Some(keys) => {
                let me = self.principal.user_id;
                [&call.caller, &call.callee].iter().any(|p| (me.is_some() && p.user_id == me) || self.names_user(keys, &p.uri))
            }
        }
    }

    /// A user's own things (messages, mailbox) are seen by that user and their domain's
    /// admins.
    pub fn sees_user(&self, user_id: engine::users::UserId, domain: DomainId) -> bool {
        self.sees_domain_id(domain) && (!self.is_user() || self.principal.user_id == Some(user_id))
    }

    fn names_user(&self, keys: &[String], uri: &str) -> bool {
        crate::conferences::lookup::parse_loose_uri(uri)
            .and_then(|u| u.user)
            .is_some_and(|user| keys.iter().any(|k| *k == normalize(&user)))
    }

    /// The domain a call or room made by this request belongs to (None: the server's).
    pub fn call_domain(&self) -> Option<String> {
        self.domain.clone()
    }

    /// 403 for users (see [`Principal::require_admin`]).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.principal.require_admin()
    }

    /// A key that keeps one principal's cached answers (idempotency) from another's.
    pub fn partition(&self) -> String {
        format!("{}|{}|{}", self.domain.as_deref().unwrap_or("*"), self.principal.role.as_str(), self.principal.user_id.unwrap_or(0))
    }
}

/// Numbers compare without the punctuation people write them with (as the directory does).
fn normalize(k: &str) -> String {
    let compact: String = k.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    if compact.is_empty() {
        k.to_owned()
    } else {
        compact
    }
}

impl FromRequestParts<AppState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Scope, ApiError> {
        // The middleware always puts a principal in; a route outside it would be a bug,
        // refused rather than served as a superuser.
        let principal = parts.extensions.get::<Principal>().cloned().ok_or_else(ApiError::unauthorized)?;
        Ok(Scope::new(principal, &state.directory_now()))
    }
}

impl ApiError {
    /// A user principal on an admin endpoint.
    pub fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden: this needs an admin credential")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::users::{Domain, User};
    use engine::{Direction, LegId, LegState, ParticipantInfo, Service};

    fn directory() -> DirectorySnapshot {
        let domain = |id, name: &str| Domain { id, name: name.into(), aliases: vec![], realm: name.into(), enabled: true };
        let users = vec![
            User { id: 10, domain_id: 1, login: "alice".into(), ext: Some("3044".into()), cell_phone: Some("+1 555-0100".into()), enabled: true, ..Default::default() },
            User { id: 20, domain_id: 2, login: "alice".into(), ext: Some("3044".into()), enabled: true, ..Default::default() },
        ];
        DirectorySnapshot::new(1, vec![domain(1, "alpha.test"), domain(2, "beta.test")], users, vec![])
    }

    fn leg(domain: &str, remote: &str, local: &str) -> LegInfo {
        LegInfo {
            leg_id: LegId("l".into()),
            call_id: "c".into(),
            direction: Direction::Inbound,
            state: LegState::Active,
            service: Service::Echo,
            remote_uri: remote.into(),
            local_uri: local.into(),
            local_tag: None,
            remote_tag: None,
            started_ms: 0,
            answered_ms: None,
            ended_ms: None,
            end_status: None,
            end_reason: None,
            codec: None,
            domain: domain.into(),
        }
    }

    fn room(domain: &str, participants: &[(&str, LegState)]) -> RoomSnapshot {
        let info = RoomInfo {
            confid: "rCF-001-AAAAAA".into(),
            confnumber: "AAAAAA".into(),
            confroomnum: "1".into(),
            confuri: format!("<sip:conf-1@{domain}>"),
            site: "s".into(),
            startts: 0,
            domain: domain.into(),
        };
        let participants = participants
            .iter()
            .map(|(ruri, state)| ParticipantInfo {
                participantid: "p".into(),
                confid: info.confid.clone(),
                state: *state,
                callid: "c".into(),
                luri: info.confuri.clone(),
                ltag: String::new(),
                ruri: ruri.to_string(),
                rtag: String::new(),
                direction: Direction::Inbound,
                dialogid: "d".into(),
                inviteid: LegId("l".into()),
                muted: false,
                deaf: false,
                gain_in_db: 0.0,
                gain_out_db: 0.0,
                talking: false,
                joined_ms: 0,
                ended_ms: None,
                end_status: None,
                end_reason: None,
                progress_status: None,
                progress_reason: None,
            })
            .collect();
        RoomSnapshot { room: info, participants }
    }

    fn principal(domain: Option<DomainId>, role: Role, user_id: Option<UserId>) -> Principal {
        Principal { domain, role, user_id, token_id: None }
    }

    #[test]
    fn admins_see_their_domain_and_the_superuser_all() {
        let dir = directory();
        let admin = Scope::new(principal(Some(1), Role::Admin, None), &dir);
        assert!(admin.sees_leg(&leg("alpha.test", "sip:x@h", "sip:y@h")));
        assert!(!admin.sees_leg(&leg("beta.test", "sip:x@h", "sip:y@h")));
        assert!(admin.sees_room(&room("alpha.test", &[])) && admin.sees_room_info(&room("alpha.test", &[]).room));
        assert!(!admin.sees_room(&room("beta.test", &[])) && !admin.sees_room_info(&room("beta.test", &[]).room));
        assert_eq!(admin.call_domain().as_deref(), Some("alpha.test"));
        assert!(admin.require_admin().is_ok() && !admin.is_superuser());
        let su = Scope::new(Principal::superuser(), &dir);
        assert!(su.is_superuser() && su.sees_leg(&leg("beta.test", "sip:x@h", "sip:y@h")) && su.call_domain().is_none());
        // a domain the directory does not (or no longer) have: nothing
        let gone = Scope::new(principal(Some(9), Role::Admin, None), &dir);
        assert!(!gone.sees_leg(&leg("alpha.test", "sip:x@h", "sip:y@h")) && !gone.sees_room(&room("alpha.test", &[])));
    }

    #[test]
    fn users_see_their_own_calls_and_the_rooms_they_are_in() {
        let dir = directory();
        let alice = Scope::new(principal(Some(1), Role::User, Some(10)), &dir);
        assert!(alice.is_user());
        assert_eq!(alice.require_admin().unwrap_err().status, StatusCode::FORBIDDEN);
        assert!(alice.sees_leg(&leg("alpha.test", "<sip:alice@10.0.0.1>", "sip:conf-1@alpha.test")));
        assert!(alice.sees_leg(&leg("alpha.test", "sip:echo@alpha.test", "sip:3044@10.0.0.1")), "by extension, either end");
        assert!(alice.sees_leg(&leg("alpha.test", "sip:+15550100@gw", "sip:x@h")), "by number without punctuation");
        assert!(!alice.sees_leg(&leg("alpha.test", "sip:bob@10.0.0.1", "sip:echo@alpha.test")), "someone else's call");
        assert!(!alice.sees_leg(&leg("beta.test", "sip:alice@10.0.0.1", "sip:x@h")), "beta's alice is another person");
        assert!(alice.sees_room(&room("alpha.test", &[("sip:bob@h", LegState::Active), ("<sip:alice@h:5060>", LegState::Active)])));
        assert!(!alice.sees_room(&room("alpha.test", &[("sip:bob@h", LegState::Active), ("sip:alice@h", LegState::Ended)])), "left");
        assert!(!alice.sees_room_info(&room("alpha.test", &[]).room), "a user's rooms need their participants");
        // a user credential naming a user of another domain sees nothing of its own domain
        let odd = Scope::new(principal(Some(1), Role::User, Some(20)), &dir);
        assert!(!odd.sees_leg(&leg("alpha.test", "sip:alice@h", "sip:x@h")));
    }
}
