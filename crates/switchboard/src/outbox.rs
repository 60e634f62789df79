//! The durable event outbox's writer: engine events go into the store, numbered per
//! domain, off the signalling path.
//!
//! The signalling task calls [`Outbox::push`] for each engine event: a `try_send` on a
//! bounded queue (`[events] queue`), never a wait. Should the queue be full (the
//! database stalled for long), the event is dropped, counted
//! (`EventsState::dropped`) and logged at error level: a lost event is bad, a stalled
//! call is worse. The writer task takes the first event, collects more for up to
//! `[events] batch_ms` or `batch_max` events, and appends the batch in one transaction
//! (`Store::append_events`). Then it publishes each event on the live feed (SSE
//! readers) and bumps `commits` (webhook deliverers wait on it). A failed append is
//! retried with the same batch every second until it succeeds: the queue absorbs the
//! wait.
//!
//! What is not in the outbox: wake-up pushes and voicemail logins (they carry nothing
//! for an application, a login its PIN's request). Everything else is, registrations and
//! mailbox messages included. An event is attributed to the domain it names (a leg's,
//! a call's, a room's, a binding's, a user's); an event of no known domain goes to the
//! server's own domain.
//!
//! On `kill -9` the events still in the queue (at most `batch_ms` worth, plus whatever
//! a stalled database held back) are lost; a committed one never is.

use engine::users::{DirectorySnapshot, DomainId};
use engine::EngineEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{NewEvent, Store, StoredEvent};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{error, warn};

/// Capacity of the live feed: an SSE reader this far behind re-reads from the store.
pub const LIVE_CAPACITY: usize = 4096;

/// The signalling task's end of the outbox queue.
pub struct Outbox {
    tx: mpsc::Sender<(u64, EngineEvent)>,
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// Queues `ev` (a clone) if it belongs in the outbox; never waits.
    pub fn push(&self, ev: &EngineEvent) {
        if matches!(ev, EngineEvent::WakeUser { .. } | EngineEvent::VoicemailLogin { .. }) {
            return;
        }
        let ts = now_ms();
        if let Err(e) = self.tx.try_send((ts, ev.clone())) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // every drop counts; the log says so at powers of two, not per event
            if n.is_power_of_two() {
                error!(dropped = n, reason = %e, "event outbox queue full: events DROPPED (the database is not keeping up)");
            }
        }
    }
}

/// What the writer needs.
pub struct Writer {
    pub store: Store,
    pub directory: watch::Receiver<Arc<DirectorySnapshot>>,
    pub default_domain: DomainId,
    pub live: broadcast::Sender<Arc<StoredEvent>>,
    /// Bumped after every committed batch.
    pub commits: watch::Sender<u64>,
    pub batch: Duration,
    pub batch_max: usize,
}

/// Starts the writer; the task ends once every [`Outbox`] is dropped and the queue is
/// written.
pub fn spawn(w: Writer, queue: usize, dropped: Arc<AtomicU64>) -> (Outbox, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(queue.max(1));
    (Outbox { tx, dropped }, tokio::spawn(w.run(rx)))
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<(u64, EngineEvent)>) {
        let mut batch: Vec<NewEvent> = Vec::with_capacity(self.batch_max);
        while let Some(first) = rx.recv().await {
            let dir = self.directory.borrow().clone();
            batch.push(self.new_event(&dir, first));
            let until = tokio::time::Instant::now() + self.batch;
            while batch.len() < self.batch_max {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(ev)) => batch.push(self.new_event(&dir, ev)),
                    Ok(None) | Err(_) => break,
                }
            }
            let started = Instant::now();
            let stored = loop {
                match self.store.append_events(&batch).await {
                    Ok(s) => break s,
                    Err(e) => {
                        error!(error = %e, events = batch.len(), "event outbox: append failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            if started.elapsed() > Duration::from_millis(500) {
                warn!(events = batch.len(), took_ms = started.elapsed().as_millis() as u64, "event outbox: slow append");
            }
            batch.clear();
            for e in stored {
                let _ = self.live.send(Arc::new(e));
            }
            self.commits.send_modify(|n| *n += 1);
        }
    }

    fn new_event(&self, dir: &DirectorySnapshot, (ts_ms, ev): (u64, EngineEvent)) -> NewEvent {
        let domain_id = domain_of(dir, &ev).unwrap_or(self.default_domain);
        let body = serde_json::to_value(&ev).unwrap_or_default();
        let event_type = body["type"].as_str().unwrap_or("unknown").to_owned();
        NewEvent { domain_id, ts_ms, event_type, body: body.to_string() }
    }
}

/// The domain an event is about, if the directory knows it.
pub fn domain_of(dir: &DirectorySnapshot, ev: &EngineEvent) -> Option<DomainId> {
    let by_name = |name: &str| dir.domain_by_name(name).map(|d| d.id);
    let by_user = |id| dir.user(id).map(|u| u.domain_id);
    match ev {
        EngineEvent::LegStarted(l) | EngineEvent::LegAnswered(l) | EngineEvent::LegEnded(l) => by_name(&l.domain),
        EngineEvent::Dtmf { domain, .. } | EngineEvent::PromptEnded { domain, .. } | EngineEvent::RecordingCompleted { domain, .. } => {
            by_name(domain)
        }
        EngineEvent::RoomStarted(r) | EngineEvent::RoomEnded { info: r, .. } => by_name(&r.domain),
        EngineEvent::BindingSaved(b) => Some(b.domain_id),
        EngineEvent::BindingRemoved { user_id, .. } | EngineEvent::VoicemailRecorded { user_id, .. } | EngineEvent::VoicemailPlayed { user_id, .. } => {
            by_user(*user_id)
        }
        EngineEvent::CallStarted(c)
        | EngineEvent::CallRinging(c)
        | EngineEvent::CallAnswered(c)
        | EngineEvent::CallHeld(c)
        | EngineEvent::CallRetrieved(c)
        | EngineEvent::CallEnded(c)
        | EngineEvent::CallTransferred { info: c, .. }
        | EngineEvent::RecordingStarted { info: c, .. }
        | EngineEvent::RecordingStopped { info: c, .. } => by_name(&c.domain),
        EngineEvent::RoomRecordingStarted(r) | EngineEvent::RoomRecordingStopped(r) => by_name(&r.domain),
        EngineEvent::StreamStarted(s) | EngineEvent::StreamStopped { info: s, .. } => by_name(&s.domain),
        EngineEvent::WakeUser { call, .. } => by_name(&call.domain),
        EngineEvent::VoicemailLogin { domain, .. } => by_name(domain),
        EngineEvent::MessageAccepted(m) => Some(m.domain_id),
        EngineEvent::MessageDelivered { domain, .. } | EngineEvent::MessageDeferred { domain, .. } | EngineEvent::MessageFailed { domain, .. } => by_name(domain),
    }
}

/// Deletes old delivered events every ten minutes (`[events] retention_hours`).
pub fn spawn_pruner(store: Store, retention: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            let before = now_ms().saturating_sub(retention.as_millis() as u64);
            match store.prune_events(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "event outbox: old delivered events deleted"),
                Err(e) => warn!(error = %e, "event outbox: pruning failed"),
            }
        }
    })
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
