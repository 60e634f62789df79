//! Who is calling: every protected request carries a [`Principal`], found from its
//! `Authorization: Bearer …` by the first credential kind that recognises it:
//! - the static `--api-token`: a superuser (no domain), for bootstrapping;
//! - a JWT issued by `/auth` or an API key, through [`AppState::verifiers`]: a domain and a role.
//!
//! Handlers read the [`Principal`] from the request extensions and scope every lookup
//! to its domain. Not layered on `/health`, `/openapi.json` and `/docs` (see
//! `openapi.rs` for why the docs are open). No credential configured at all = open
//! (a superuser); the binary refuses to serve HTTP off loopback in that case.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use engine::users::{DomainId, Role, UserId};
use std::sync::Arc;

/// The caller of one request, as its credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// None = every domain (the static token, or an open server).
    pub domain: Option<DomainId>,
    pub role: Role,
    /// Set when the credential belongs to a user (a JWT from `/auth`).
    pub user_id: Option<UserId>,
    /// The JWT's `jti`, for logout.
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
}

/// A kind of bearer credential (JWTs, API keys). `Ok(None)`: not mine, ask the next;
/// `Err`: mine but refused (expired, revoked), with the reason for the 401.
pub trait CredentialVerifier: Send + Sync {
    fn verify(&self, bearer: &str) -> Result<Option<Principal>, String>;
}

pub type Verifiers = Vec<Arc<dyn CredentialVerifier>>;

pub async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let principal = {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        identify(&state, given)?
    };
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

fn identify(state: &AppState, given: Option<&str>) -> Result<Principal, ApiError> {
    // No static token = the loopback development mode: open, but a bearer that a
    // verifier recognises still scopes the request (and a refused one is refused).
    let open = state.api_token.is_none();
    let Some(given) = given else {
        return if open { Ok(Principal::superuser()) } else { Err(ApiError::unauthorized()) };
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
    if open {
        return Ok(Principal::superuser());
    }
    Err(ApiError::unauthorized())
}

/// Compares without an early exit, so response time does not leak the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
