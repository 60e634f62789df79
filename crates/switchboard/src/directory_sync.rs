//! Keeps the server's copy of the directory current.
//!
//! The directory is read on every REGISTER, INVITE and API request, so readers get an
//! immutable `Arc<DirectorySnapshot>` and never touch the database. Writers may be
//! anywhere: the admin REST API in this process, or the admin CLI in another process
//! on the same database. So rather than being told about changes, this task polls the
//! store's `directory_version()` (one indexed one-row read) every
//! [`POLL_INTERVAL`] and, when it moved, loads a whole new snapshot and publishes it
//! on a `watch` channel: the signalling task hands it to the engine, the APIs read it
//! from their receiver. A change shows up within about a second, whoever made it.
//!
//! A failed poll or load (database restarting, locked too long) is logged and retried
//! at the next tick; the last good snapshot stays in service meanwhile.

use std::sync::Arc;
use std::time::Duration;
use store::{DirectorySnapshot, Store, StoreError};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How often the version is checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Loads the directory now and starts the task that reloads it on change. The
/// receiver always holds the newest snapshot; the task ends when every receiver
/// is dropped.
/// `poke`: a write through the admin API asks for a reload at once instead of at the next poll.
pub async fn start(store: Store, poke: Arc<tokio::sync::Notify>) -> Result<(watch::Receiver<Arc<DirectorySnapshot>>, tokio::task::JoinHandle<()>), StoreError> {
    let first = store.load_directory().await?;
    info!(version = first.version, domains = first.domains.len(), users = first.users.len(), conferences = first.conferences.len(), "directory loaded");
    let (tx, rx) = watch::channel(first.shared());
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = poke.notified() => {}
                _ = tx.closed() => return,
            }
            let current = tx.borrow().version;
            match reload_if_changed(&store, current).await {
                Ok(Some(snapshot)) => {
                    info!(
                        version = snapshot.version,
                        domains = snapshot.domains.len(),
                        users = snapshot.users.len(),
                        conferences = snapshot.conferences.len(),
                        "directory reloaded (version {})",
                        snapshot.version
                    );
                    failing = false;
                    tx.send_replace(snapshot.shared());
                }
                Ok(None) => {
                    if failing {
                        info!("directory store reachable again");
                    }
                    failing = false;
                }
                Err(e) => {
                    // Once per outage, not once a second.
                    if !failing {
                        warn!(error = %e, "directory reload failed; keeping version {current}");
                    } else {
                        debug!(error = %e, "directory reload still failing");
                    }
                    failing = true;
                }
            }
        }
    });
    Ok((rx, task))
}

/// A new snapshot if the stored version differs from `current`.
async fn reload_if_changed(store: &Store, current: i64) -> Result<Option<DirectorySnapshot>, StoreError> {
    if store.directory_version().await? == current {
        return Ok(None);
    }
    Ok(Some(store.load_directory().await?))
}
