//! The Web Call Server dialect's shell: builds its state from `[wcs]`, starts the
//! WebRTC gateway (when built with it; shared with SIP over WebSocket, `crate::sip_ws`)
//! and routes the gateway's notes to the sessions, and serves `[wcs] listen` when set.
//! The dialect itself is `api::wcs`.

use crate::config::Config;
use api::wcs::{MediaGatewayBox, WcsConfig, WcsState};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::sync::watch;
use tracing::info;

/// The WebRTC gateway and its notes, started once for both browser dialects (the WCS
/// sessions and SIP over WebSocket share one ICE port and one DTLS certificate). None
/// when neither is enabled, or when built without the `webrtc` feature.
pub type SharedGateway = (MediaGatewayBox, std::sync::mpsc::Receiver<api::wcs::media::MediaNote>);

pub fn start_shared_gateway(cfg: &Config, sip: SocketAddr) -> Result<Option<SharedGateway>, String> {
    if !cfg.wcs.enabled && !cfg.sip_ws.enabled {
        return Ok(None);
    }
    let w = &cfg.wcs;
    let mut candidates = Vec::new();
    for c in &w.candidates {
        candidates.push(c.parse::<IpAddr>().map_err(|e| format!("[wcs] candidates: {c:?}: {e}"))?);
    }
    if candidates.is_empty() {
        candidates.push(sip.ip());
        // Browsers on this host pair their own interface address with ours; advertise
        // the outward one too (learnt without sending anything).
        if let Some(ip) = outward_ip() {
            if ip != sip.ip() {
                candidates.push(ip);
            }
        }
    }
    start_gateway(cfg, sip.ip(), candidates)
}

/// The dialect's state, or None when `[wcs] enabled = false`. The gateway's notes go to
/// the WCS session owning the leg, else to SIP over WebSocket (`sip_ws`), whose dead
/// legs end their calls.
/// `prompts_dir`: the prompt files' folder, where `inject_sound` looks by default.
pub fn setup(
    cfg: &Config,
    sip: SocketAddr,
    store: store::Store,
    gateway: Option<SharedGateway>,
    prompts_dir: &std::path::Path,
    sip_ws: Option<crate::sip_ws::CallEnder>,
) -> Result<Option<WcsState>, String> {
    let w = &cfg.wcs;
    let (gw, notes) = match gateway {
        Some((g, n)) => (Some(g), Some(n)),
        None => (None, None),
    };
    let state = if w.enabled { Some(wcs_state(cfg, sip, store, gw, prompts_dir)?) } else { None };
    if let Some(notes) = notes {
        let st = state.clone();
        std::thread::Builder::new()
            .name("wcs-media-notes".into())
            .spawn(move || {
                while let Ok(n) = notes.recv() {
                    if st.as_ref().is_some_and(|st| st.media_note(n.clone())) {
                        continue;
                    }
                    if let Some(ws) = &sip_ws {
                        ws.media_note(&n);
                    }
                }
            })
            .map_err(|e| format!("[wcs] thread: {e}"))?;
    }
    Ok(state)
}

fn wcs_state(cfg: &Config, sip: SocketAddr, store: store::Store, gateway: Option<MediaGatewayBox>, prompts_dir: &std::path::Path) -> Result<WcsState, String> {
    let w = &cfg.wcs;
    if let Some(u) = &w.rest_url {
        store::valid_rest_url(u).map_err(|e| format!("[wcs] rest_url: {e}"))?;
    }
    for c in &w.codecs {
        if !["opus", "PCMU", "PCMA"].iter().any(|k| k.eq_ignore_ascii_case(c)) {
            return Err(format!("[wcs] codecs: {c:?} is not one of opus, PCMU, PCMA"));
        }
    }
    let node_ip = sip.ip();
    let rest_methods = match &w.rest_methods {
        Some(m) => store::valid_rest_methods(m).map_err(|e| format!("[wcs] rest_methods: {e}"))?,
        None => None,
    };
    let hook_secret: Option<std::sync::Arc<str>> = match w.hook_secret.as_deref() {
        Some("") => return Err("[wcs] hook_secret: empty (leave it out for unsigned hooks)".into()),
        s => s.map(Into::into),
    };
    let config = WcsConfig {
        rest_url: w.rest_url.as_deref().map(|u| u.trim_end_matches('/').to_owned()),
        rest_methods,
        sip_server: sip,
        sip_bind_ip: sip.ip(),
        default_domain: cfg.domain.clone(),
        our_domains: vec![cfg.domain.clone(), sip.ip().to_string(), sip.to_string()],
        codecs: w.codecs.clone(),
        hook_timeout: Duration::from_secs(w.hook_timeout_s.max(1)),
        hook_secret: hook_secret.clone(),
        hook_retries: w.hook_retries.min(10),
        ping_interval: Duration::from_secs(w.ping_interval_s.max(1)),
        ping_probes: w.ping_probes.max(1),
        allowed_origins: w.allowed_origins.clone(),
        node_id: format!("{:08x}@{node_ip}", rand::random::<u32>()),
        user_agent: format!("Switchboard/{} WCS", env!("CARGO_PKG_VERSION")),
        sounds_dir: w.sounds_dir.clone().unwrap_or_else(|| prompts_dir.to_owned()),
        keep_alive: Duration::from_secs(w.keep_alive_s),
    };
    let mut state = WcsState::new(config, gateway, Some(store.clone()));
    // A refused event is its session's to report (restOnError: FAIL).
    let sessions = state.clone();
    let on_refused: crate::wcs_hooks::OnRefused = std::sync::Arc::new(move |session: &str, event: &str, code: u16, reason: &str| sessions.event_refused(session, event, code, reason));
    // Event hooks wait in the store until their backend takes them.
    state.event_outbox = Some(crate::wcs_hooks::spawn(
        store,
        crate::wcs_hooks::Settings {
            timeout: Duration::from_secs(w.hook_timeout_s.max(1)),
            secret: hook_secret,
            retry_max: Duration::from_secs(w.event_retry_max_s.max(1)),
            max_age: Duration::from_secs(w.event_max_age_s.max(1)),
            on_refused: Some(on_refused),
        },
    ));
    Ok(state)
}

/// The address this host would use toward the outside (a connected UDP socket's
/// local address; nothing is sent).
fn outward_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(feature = "webrtc")]
fn start_gateway(cfg: &Config, relay_ip: IpAddr, candidates: Vec<IpAddr>) -> Result<Option<SharedGateway>, String> {
    let (g, notes) = api::wcs::gateway::start(
        SocketAddr::new([0, 0, 0, 0].into(), cfg.wcs.ice_port),
        candidates,
        relay_ip,
        Duration::from_secs(cfg.wcs.media_timeout_s.max(1)),
    )
    .map_err(|e| format!("[wcs] WebRTC gateway: {e}"))?;
    info!(ice = %g.1, "WebRTC gateway ready");
    Ok(Some((g.0, notes)))
}

#[cfg(not(feature = "webrtc"))]
fn start_gateway(_: &Config, _: IpAddr, _: Vec<IpAddr>) -> Result<Option<SharedGateway>, String> {
    Ok(None)
}

/// `[wcs] listen`: the same WebSocket on a listener of its own.
pub async fn spawn_listener(cfg: &Config, state: Option<WcsState>, stop: watch::Receiver<bool>) -> Result<(), String> {
    let Some(state) = state else { return Ok(()) };
    crate::listeners::spawn("[wcs] listen", &cfg.wcs.listen, "WCS WebSocket", api::wcs::socket_routes::<()>(state), stop).await
}
