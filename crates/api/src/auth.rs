//! Bearer-token check for every API endpoint. Not layered on `/health`, `/openapi.json`
//! and `/docs` (see `openapi.rs` for why the docs are open). No token configured = open;
//! the binary refuses to serve HTTP off loopback in that case.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(expected) = &state.api_token {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
            return Err(ApiError::unauthorized());
        }
    }
    Ok(next.run(req).await)
}

/// Compares without an early exit, so response time does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
