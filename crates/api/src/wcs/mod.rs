//! The Web Call Server dialect (reference 004): browsers running Flashphoner's
//! `@flashphoner/websdk` connect over a WebSocket at `/` on the HTTP listener (the
//! SDK dials `ws://host:port` with no path) and place and take SIP calls; every
//! action and event is POSTed to the app's backend ([`hooks`]).
//!
//! Shape, as WCS itself: each browser session is a SIP user agent of its own
//! ([`agent`], the `sip` crate's `UserAgent`) that registers with the session's
//! `sipLogin` (to us, or to an outside registrar), and each call's media goes through
//! the WebRTC gateway ([`media`]), which relays the browser's RTP unchanged to a plain
//! RTP socket that the SIP leg offers. So a browser call is, to the engine, a call
//! from a registered phone like any other: it is routed through the directory, bridged
//! (a G.711 browser to a G.711 phone without transcoding), held, transferred and
//! recorded as any call is. Hold and transfer are done on the SIP side; the browser is
//! negotiated once (the SDK breaks on a second `setRemoteSDP`).
//!
//! | file | what |
//! |---|---|
//! | [`protocol`] | the `{"message","data":[..]}` framing and status names |
//! | [`session`] | one browser connection: `connection`, calls, hooks, keep-alive |
//! | [`hooks`] | REST hooks and `restClientConfig` |
//! | [`agent`] | the session's SIP user agent on its own socket |
//! | [`media`] | the WebRTC gateway interface and the SIP SDP of a plain side |
//! | [`rest_call`] | calls started over the server REST API (`/rest-api/call/startup`) |

pub mod agent;
#[cfg(feature = "webrtc")]
pub mod gateway;
pub mod hooks;
pub mod media;
pub mod protocol;
pub mod rest_call;
pub mod session;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use media::{MediaGateway, MediaNote};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The gateway as the sessions share it.
pub type MediaGatewayBox = Arc<dyn MediaGateway>;

/// `[wcs]`: how browsers reach us.
#[derive(Debug, Clone)]
pub struct WcsConfig {
    /// `defaultApp`'s REST URL (the app exists without being in the directory).
    pub rest_url: Option<String>,
    /// The hooks `defaultApp`'s backend gets; None: every one.
    pub rest_methods: Option<Vec<String>>,
    /// Our SIP listener: where a session's UA registers and calls when the page names
    /// no outbound proxy and its domain is ours.
    pub sip_server: SocketAddr,
    /// The address a session's UA binds (its Contact).
    pub sip_bind_ip: IpAddr,
    /// `sipDomain` when the page gives none.
    pub default_domain: String,
    /// Our domains: a `sipDomain` among them registers with us.
    pub our_domains: Vec<String>,
    /// Codecs offered to browsers, in preference order.
    pub codecs: Vec<String>,
    pub hook_timeout: Duration,
    /// Signs every hook POST (`Authorization: WCS <HMAC-MD5>`); None: unsigned.
    pub hook_secret: Option<Arc<str>>,
    /// Further tries of an invocation whose backend could not be reached.
    pub hook_retries: u32,
    /// `ping` every this long; a client that misses `ping_probes` pongs in a row is dropped.
    pub ping_interval: Duration,
    pub ping_probes: u32,
    /// Allowed `Origin`s of the WebSocket upgrade; empty: any (the SDK's pages are
    /// served from anywhere).
    pub allowed_origins: Vec<String>,
    /// `nodeId` of every hook: `<random>@<server ip>`.
    pub node_id: String,
    pub user_agent: String,
    /// Where `/rest-api/call/inject_sound` finds its `fileName`s (WCS's media folder).
    pub sounds_dir: std::path::PathBuf,
    /// How long a `keepAlive` session outlives its socket, waiting for its page to come
    /// back with its `authToken` (zero: not kept).
    pub keep_alive: Duration,
}

/// What every WCS connection shares.
#[derive(Clone)]
pub struct WcsState {
    pub cfg: Arc<WcsConfig>,
    pub gateway: Option<Arc<dyn MediaGateway>>,
    /// WebRTC leg id → the session that owns it.
    media_routes: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<MediaNote>>>>,
    /// Live calls by `callId`, for `/rest-api/call/*`.
    pub(crate) calls: Arc<Mutex<HashMap<String, session::CallEntry>>>,
    pub store: Option<store::Store>,
    /// Where sessions' event hooks are stored for delivery; None: each session POSTs
    /// its own, once.
    pub event_outbox: Option<hooks::EventOutbox>,
    /// Kept sessions (keepAlive, socket gone) by `authToken`: where a new socket goes.
    kept: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<session::Reattach>>>>,
    /// Places the calls `/rest-api/call/startup` starts (None: it refuses them).
    pub engine: Option<engine::EngineHandle>,
    /// Live sessions by `sessionId`: where an event its backend refused is reported.
    refusals: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<session::Refusal>>>>,
}

impl WcsState {
    pub fn new(cfg: WcsConfig, gateway: Option<Arc<dyn MediaGateway>>, store: Option<store::Store>) -> WcsState {
        WcsState { cfg: Arc::new(cfg), gateway, media_routes: Default::default(), calls: Default::default(), store, event_outbox: None, kept: Default::default(), engine: None, refusals: Default::default() }
    }

    /// Routes a gateway note to the session owning the leg (the shell's media-event
    /// thread calls this); false: no session owns it.
    pub fn media_note(&self, note: MediaNote) -> bool {
        let id = match &note {
            MediaNote::Connected(i) | MediaNote::Failed(i, _) | MediaNote::Closed(i) => *i,
        };
        let mut routes = self.media_routes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = routes.get(&id) else { return false };
        let _ = tx.send(note.clone());
        if matches!(note, MediaNote::Closed(_)) {
            routes.remove(&id);
        }
        true
    }

    /// The backend refused an event of session `session_id` (the shell's deliverer
    /// calls this): the session reports it to its page if the event's `restOnError` is
    /// FAIL. A session that is gone has nobody to tell.
    pub fn event_refused(&self, session_id: &str, event: &str, status: u16, reason: &str) {
        if let Some(tx) = self.refusals.lock().unwrap_or_else(|e| e.into_inner()).get(session_id) {
            let _ = tx.send(session::Refusal { event: event.to_owned(), status, reason: reason.to_owned() });
        }
    }

    pub(crate) fn hear_refusals(&self, session_id: &str, tx: mpsc::UnboundedSender<session::Refusal>) {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).insert(session_id.to_owned(), tx);
    }

    pub(crate) fn forget_refusals(&self, session_id: &str) {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner()).remove(session_id);
    }

    pub(crate) fn kept_session(&self, token: &str) -> Option<mpsc::UnboundedSender<session::Reattach>> {
        if token.is_empty() {
            return None;
        }
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).get(token).cloned()
    }

    pub(crate) fn keep_session(&self, token: &str, tx: mpsc::UnboundedSender<session::Reattach>) {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).insert(token.to_owned(), tx);
    }

    pub(crate) fn forget_kept(&self, token: &str) {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).remove(token);
    }

    pub(crate) fn route_media(&self, id: u64, tx: mpsc::UnboundedSender<MediaNote>) {
        self.media_routes.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
    }

    pub(crate) fn unroute_media(&self, id: u64) {
        self.media_routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

/// `GET /`: the WebSocket upgrade (open: the backend's `connect` hook is the
/// authentication point, as in WCS).
pub fn socket_routes<S: Clone + Send + Sync + 'static>(state: WcsState) -> Router<S> {
    Router::new().route("/", get(upgrade)).with_state(state)
}

/// `/rest-api/call/*` (behind the API's bearer credentials, unlike WCS's open default).
pub fn rest_routes<S: Clone + Send + Sync + 'static>(state: WcsState) -> Router<S> {
    session::rest_api_routes().with_state(state)
}

async fn upgrade(
    State(st): State<WcsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return (
            axum::http::StatusCode::UPGRADE_REQUIRED,
            Json(serde_json::json!({"error_code": 426, "error_message": "this is the Web Call Server WebSocket endpoint: connect with ws:// (the Flashphoner Web SDK's urlServer)"})),
        )
            .into_response();
    };
    if !st.cfg.allowed_origins.is_empty() {
        let origin = headers.get("origin").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !st.cfg.allowed_origins.iter().any(|o| o == origin) {
            return (axum::http::StatusCode::FORBIDDEN, Json(serde_json::json!({"error_code": 403, "error_message": format!("origin {origin:?} is not allowed ([wcs] allowed_origins)")}))).into_response();
        }
    }
    let local = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_owned();
    ws.max_message_size(1 << 20).on_upgrade(move |socket| session::run(st, socket, peer, local))
}
