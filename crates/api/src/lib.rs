//! HTTP APIs. One module per dialect, each a thin translation: parse the request,
//! call the [`engine::EngineHandle`], render the reply. Errors of every JSON dialect
//! are one type, [`error::ApiError`].
//!
//! | module | what |
//! |---|---|
//! | [`conferences`] | the conference management REST API (`/rest/v1/uc/conferences`) |
//! | [`calls`] | single calls (`/v1/calls`) |
//! | [`callcontroller`] | the sipXcallController dialect (`/callcontroller/{calling}/{called}`, reference 002) |
//! | [`status`] | server status and recent engine events (`/v1/status`, `/v1/events`) |
//! | [`event_stream`] | the durable event outbox as Server-Sent Events (`/v1/events/stream`) |
//! | [`webhooks`] | webhooks of the outbox (`/v1/webhooks`) and how deliveries are signed |
//! | [`auth`] | bearer credentials on everything but `/health`, `/openapi.json`, `/docs`; who sees what |
//! | [`admin`] | the directory's administration (`/v1/domains`, `/v1/users`, `/v1/apps`, `/v1/keys`, `/v1/registrations`) |
//! | [`openapi`] | the OpenAPI 3.1 description and Swagger UI |
//! | [`routing`] | where a dial-out target goes (SIP URI as is, numbers to the gateway) |
//! | [`formats`] | the text formats of inputs, checked here and published in the OpenAPI |
//! | [`live_audio`] | live audio out: a room's or a leg's audio streamed to a WebSocket receiver |
//! | [`idempotency`] | `Idempotency-Key` replay cache |
//! | [`wcs`] | the Web Call Server dialect (reference 004): browsers over WebSocket at `/`, REST hooks, `/rest-api/call/*` |
//! | [`xmlrpc`] | the SEMS webconference XML-RPC dialect (issue 11), on its own listener (`[xmlrpc] listen`) |

pub mod admin;
pub mod auth;
pub mod callcontroller;
pub mod call_control;
pub mod calls;
pub mod conferences;
pub mod error;
pub mod event_stream;
pub mod formats;
pub mod idempotency;
pub mod messages;
pub mod live_audio;
pub mod openapi;
pub mod routing;
pub mod status;
pub mod tls;
pub mod mx;
pub mod tokens;
pub mod wcs;
pub mod webhooks;
pub mod xmlrpc;

use axum::routing::get;
use axum::{Json, Router};
use engine::users::DirectorySnapshot;
use engine::EngineHandle;
use std::sync::Arc;
use serde_json::json;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    /// Bearer token required on every endpoint but `/health`; None = open (loopback only).
    pub api_token: Option<String>,
    /// Where dial-outs to numbers go.
    pub routing: routing::Routing,
    /// `Idempotency-Key` answers of recent dial-outs.
    pub idempotency: idempotency::IdempotencyCache,
    /// The rendered plain conference list of the current room-list generation.
    pub conference_list: conferences::ListCache,
    /// Bearer credentials besides the static token (JWTs, API keys); see [`auth`].
    pub verifiers: auth::Verifiers,
    /// The database, for the directory's administration and tokens (None in tests of
    /// the call APIs alone).
    pub store: Option<store::Store>,
    /// The directory as last loaded from the store (the shell republishes it after
    /// every change, including ones made by the CLI while the server runs).
    pub directory: tokio::sync::watch::Receiver<Arc<DirectorySnapshot>>,
    /// Verified API keys, remembered briefly (see [`auth::ApiKeyCache`]).
    pub api_keys: auth::ApiKeyCache,
    /// Notified after every directory write through the API: the shell's reload loop
    /// waits on it (besides its poll) to republish the directory at once.
    pub directory_changed: Arc<tokio::sync::Notify>,
    /// The server's data dir (room recordings are files under it); None in tests of
    /// the call APIs alone.
    pub data_dir: Option<std::path::PathBuf>,
    /// The durable event outbox: its live feed, the webhook master key, the default
    /// domain (all None without an outbox).
    pub events: event_stream::EventsState,
    /// The Web Call Server dialect (None: `[wcs]` off).
    pub wcs: Option<wcs::WcsState>,
}

impl AppState {
    pub fn new(engine: EngineHandle, api_token: Option<String>) -> AppState {
        AppState {
            engine,
            api_token,
            routing: Default::default(),
            idempotency: Default::default(),
            conference_list: Default::default(),
            verifiers: Vec::new(),
            store: None,
            directory: tokio::sync::watch::channel(Arc::default()).1,
            api_keys: Default::default(),
            directory_changed: Default::default(),
            data_dir: None,
            events: Default::default(),
            wcs: None,
        }
    }

    pub fn with_routing(self, routing: routing::Routing) -> AppState {
        AppState { routing, ..self }
    }

    pub fn with_directory(self, store: store::Store, directory: tokio::sync::watch::Receiver<Arc<DirectorySnapshot>>) -> AppState {
        AppState { store: Some(store), directory, ..self }
    }

    /// The directory now (an `Arc` clone; never waits on the store).
    pub fn directory_now(&self) -> Arc<DirectorySnapshot> {
        self.directory.borrow().clone()
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let mut protected = calls::routes();
    let mut open = Router::new();
    if let Some(w) = &state.wcs {
        protected = protected.merge(wcs::rest_routes(w.clone()));
        open = open.merge(wcs::socket_routes(w.clone()));
    }
    let protected = protected
        .merge(conferences::routes())
        .merge(status::routes())
        .merge(admin::routes())
        .merge(messages::routes())
        .merge(call_control::routes())
        .merge(live_audio::routes())
        .merge(webhooks::routes())
        .route("/v1/events/stream", get(event_stream::stream))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/health", get(health))
        .merge(open)
        .merge(openapi::routes())
        .merge(protected)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Liveness: always 200 while the process serves HTTP. No token needed.
#[utoipa::path(get, path = "/health", tag = "service", security(()),
    responses((status = 200, description = "Alive", example = json!({"status": "ok", "version": "0.1.0"}))))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
