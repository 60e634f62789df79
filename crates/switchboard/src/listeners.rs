//! Listeners of their own for one dialect (`[wcs] listen`, `[sip_ws] listen`,
//! `[callcontroller] listen`): the references' clients expect their own ports, next to
//! the HTTP API's.

use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

/// Serves `routes` (plain HTTP, with the peer address as `ConnectInfo`) on `listen` until
/// `stop`; nothing when `listen` is empty. `key` names the setting in errors
/// (`[wcs] listen`), `what` the service in the log.
pub async fn spawn(key: &str, listen: &str, what: &'static str, routes: axum::Router, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    let listen = listen.trim();
    if listen.is_empty() {
        return Ok(());
    }
    let addr: SocketAddr = listen.parse().map_err(|e| format!("{key} `{listen}`: {e}"))?;
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("{key} {addr}: {e}"))?;
    info!(%addr, "{what} listening");
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = api::tls::serve(listener, routes, None, stop).await {
            warn!("{what} listener: {e}");
        }
    });
    Ok(())
}
