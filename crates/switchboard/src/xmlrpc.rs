//! Wiring of the SEMS webconference dialect (reference 003): its own listener on
//! `[xmlrpc] listen` (SEMS's xmlrpc2di port, 8090), and the once-a-second sweep that
//! ends expired and timed-out rooms.

use crate::config::Config;
use api::xmlrpc::service::{Settings, WebConference};
use engine::EngineHandle;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub async fn spawn_listener(cfg: &Config, engine: EngineHandle, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    let x = &cfg.xmlrpc;
    let listen = x.listen.trim();
    if listen.is_empty() {
        return Ok(());
    }
    let addr: SocketAddr = listen.parse().map_err(|e| format!("[xmlrpc] listen `{listen}`: {e}"))?;
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("[xmlrpc] listen {addr}: {e}"))?;
    let settings = Settings {
        private_rooms: x.private_rooms,
        ignore_pin: x.ignore_pin,
        master_password: x.master_password.clone(),
        feedback_file: x.feedback_file.clone(),
        predefined_rooms: x.predefined_rooms.clone(),
        rooms_expire_delay: Duration::from_secs(x.rooms_expire_delay),
        participants_expire_delay: Duration::from_secs(x.participants_expire_delay),
        support_rooms_timeout: x.support_rooms_timeout,
        ..Settings::default()
    };
    let service = WebConference::start(engine, settings).await.map_err(|e| format!("[xmlrpc] {e}"))?;
    info!(%addr, "SEMS webconference XML-RPC listening");
    let sweeper = service.clone();
    let mut sweep_stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = sweep_stop.changed() => true,
            };
            if stopping {
                return;
            }
            sweeper.sweep().await;
        }
    });
    tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = api::tls::serve(listener, api::xmlrpc::http::router(service), None, stop).await {
            warn!("XML-RPC listener: {e}");
        }
    });
    Ok(())
}
