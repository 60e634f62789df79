//! HTTP APIs. One module per dialect, each a thin translation: parse the request,
//! call the [`engine::EngineHandle`], render the reply. Errors of every JSON dialect
//! are one type, [`error::ApiError`].

pub mod auth;
pub mod calls;
pub mod error;

use axum::routing::get;
use axum::{Json, Router};
use engine::EngineHandle;
use serde_json::json;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    /// Bearer token required on every endpoint but `/health`; None = open (loopback only).
    pub api_token: Option<String>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let protected = calls::routes()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .fallback(error::not_found)
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
