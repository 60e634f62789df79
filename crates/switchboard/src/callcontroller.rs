//! Wiring of the sipXcallController dialect (reference 002): its routes on the HTTP
//! listener, and on `[callcontroller] listen` when set.

use crate::config::Config;
use std::sync::Arc;
use tokio::sync::watch;

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
pub async fn spawn_listener(cfg: &Config, routes: axum::Router, stop: watch::Receiver<bool>) -> Result<(), String> {
    crate::listeners::spawn("[callcontroller] listen", &cfg.callcontroller.listen, "call controller", routes, stop).await
}
