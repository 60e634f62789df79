//! Wiring of the sipXcallController dialect (reference 002): its routes on the HTTP
//! listener, and on `[callcontroller] listen` when set.

use crate::config::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

/// The dialect's routes over the API state; merge into the HTTP router.
pub fn routes(cfg: &Config, app: api::AppState) -> Result<axum::Router, String> {
    let trusted = cfg
        .callcontroller
        .trusted_networks
        .iter()
        .map(|c| c.parse::<engine::registrar::Cidr>().map_err(|e| format!("[callcontroller] trusted_networks: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let state = api::callcontroller::CallControllerState { app, default_domain: cfg.domain.to_ascii_lowercase(), trusted: Arc::new(trusted) };
    Ok(api::callcontroller::routes(state))
}

/// Serves `routes` alone on `[callcontroller] listen` (plain HTTP, like the
/// reference's ports); nothing when it is empty.
pub async fn spawn_listener(cfg: &Config, routes: axum::Router, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    let listen = cfg.callcontroller.listen.trim();
    if listen.is_empty() {
        return Ok(());
    }
    let addr: SocketAddr = listen.parse().map_err(|e| format!("[callcontroller] listen `{listen}`: {e}"))?;
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("[callcontroller] listen {addr}: {e}"))?;
    info!(%addr, "call controller listening");
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = api::tls::serve(listener, routes, None, stop).await {
            warn!("call controller listener: {e}");
        }
    });
    Ok(())
}
