//! The shell's side of instant messages (see `engine::apps::messages`): the store
//! keeps every message until a device takes it, and a user's pending messages go out
//! again when one of their devices registers.
//!
//! One task takes the engine's message events in order, so a message is stored before
//! its delivery is recorded, and a registration that follows a message finds it.
//! A message handed back to the engine is remembered until its round ends, so a
//! phone registering twice in a row does not get it twice.

use engine::{Command, EngineEvent};
use std::collections::HashSet;
use std::sync::Arc;
use store::{DirectorySnapshot, Store};
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Queue between the signalling task and the message task: messages are
/// signalling-rate, so this only fills if the database stalls for long.
const QUEUE: usize = 4096;

#[derive(Clone)]
pub struct Messages {
    tx: mpsc::Sender<EngineEvent>,
}

impl Messages {
    pub fn spawn(db: Store, engine: mpsc::Sender<Command>, directory: watch::Receiver<Arc<DirectorySnapshot>>, restored: Vec<engine::users::UserId>) -> Messages {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, engine, directory, rx, restored));
        Messages { tx }
    }

    /// Queues what concerns messages; never waits.
    pub fn on_event(&self, ev: &EngineEvent) {
        let ours = matches!(
            ev,
            EngineEvent::MessageAccepted(_)
                | EngineEvent::MessageDelivered { .. }
                | EngineEvent::MessageDeferred { .. }
                | EngineEvent::MessageFailed { .. }
                | EngineEvent::BindingSaved(_)
        );
        if ours && self.tx.try_send(ev.clone()).is_err() {
            warn!("message queue full: a message event was not recorded (its message stays as it was in the store)");
        }
    }
}

async fn run(
    db: Store,
    engine: mpsc::Sender<Command>,
    directory: watch::Receiver<Arc<DirectorySnapshot>>,
    mut rx: mpsc::Receiver<EngineEvent>,
    restored: Vec<engine::users::UserId>,
) {
    let mut in_flight: HashSet<String> = HashSet::new();
    // Registrations restored at start-up: their users may have messages left from
    // before the restart, and may not register again for a while.
    for user in restored {
        send_pending(&db, &engine, &directory, &mut in_flight, user).await;
    }
    while let Some(ev) = rx.recv().await {
        let now = crate::outbox::now_ms();
        let r = match &ev {
            EngineEvent::MessageAccepted(m) => db.add_message(m).await,
            EngineEvent::MessageDelivered { message_id, status, .. } => {
                in_flight.remove(message_id);
                db.message_delivered(message_id, *status, now).await
            }
            EngineEvent::MessageDeferred { message_id, reason, .. } => {
                in_flight.remove(message_id);
                db.message_not_delivered(message_id, false, None, reason, now).await
            }
            EngineEvent::MessageFailed { message_id, status, reason, .. } => {
                in_flight.remove(message_id);
                db.message_not_delivered(message_id, true, Some(*status), &format!("{status} {reason}"), now).await
            }
            EngineEvent::BindingSaved(b) => {
                send_pending(&db, &engine, &directory, &mut in_flight, b.user_id).await;
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            warn!(error = %e, "messages: store failed");
        }
    }
}

async fn send_pending(
    db: &Store,
    engine: &mpsc::Sender<Command>,
    directory: &watch::Receiver<Arc<DirectorySnapshot>>,
    in_flight: &mut HashSet<String>,
    user: engine::users::UserId,
) {
    let pending = match db.pending_messages(user).await {
        Ok(p) => p,
        Err(e) => return warn!(user, error = %e, "messages: pending ones not read"),
    };
    let dir = directory.borrow().clone();
    for m in pending {
        if !in_flight.insert(m.message_id.clone()) {
            continue;
        }
        let domain = dir.domain(m.domain_id).map(|d| d.name.to_ascii_lowercase()).unwrap_or_default();
        if engine.send(Command::DeliverStoredMessage(Box::new(m.info(&domain)))).await.is_err() {
            return;
        }
    }
}
