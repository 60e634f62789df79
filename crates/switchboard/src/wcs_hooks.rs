//! Delivery of the Web Call Server event hooks (`…StatusEvent`): the sessions hand
//! each event POST to [`spawn`]'s channel; a writer task stores it
//! (`store::hook_outbox`), and one deliverer task per queue (app key) POSTs the stored
//! rows in order and deletes each once its backend took it.
//!
//! - **2xx**: delivered. **5xx, 408, 429, or no answer**: the queue's head is tried
//!   again after 1 s, doubling up to `[wcs] event_retry_max_s` (±20 %), and nothing
//!   behind it passes, so the backend still sees its events in order. **Any other
//!   status**: the backend refused it; events cannot refuse, so it is logged and
//!   dropped, as WCS does. The event's session is told ([`Settings::on_refused`]): under
//!   `restOnError: FAIL` its page gets an `ErrorEvent`.
//! - A row older than `[wcs] event_max_age_s` is dropped with an error in the log: a
//!   backend gone for a day does not keep the server's disk.
//! - A row is deleted after its POST, in one write per round: a `kill -9` between the
//!   two re-sends that round's events after the restart (at least once). Events still
//!   in the channel when the process dies (a few ms worth) are lost, as the engine
//!   outbox's queue is.

use api::wcs::hooks::{post, EventOutbox, Posted};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{HookEvent, NewHookEvent, Store};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Rows per delivery round, and per write.
const BATCH: u32 = 100;

/// Told of an event its backend refused: (sessionId, event name, status, reason).
pub type OnRefused = Arc<dyn Fn(&str, &str, u16, &str) + Send + Sync>;

#[derive(Clone)]
pub struct Settings {
    pub timeout: Duration,
    pub secret: Option<Arc<str>>,
    pub retry_max: Duration,
    pub max_age: Duration,
    pub on_refused: Option<OnRefused>,
}

/// Starts the writer and the deliverers; returns the sessions' end.
pub fn spawn(store: Store, settings: Settings) -> EventOutbox {
    let (tx, rx) = mpsc::unbounded_channel();
    let (commits_tx, commits_rx) = watch::channel(0u64);
    tokio::spawn(write(store.clone(), rx, commits_tx));
    tokio::spawn(supervise(store, commits_rx, settings));
    tx
}

/// Stores what the sessions send, in their order; bumps `commits` after each write.
async fn write(store: Store, mut rx: mpsc::UnboundedReceiver<NewHookEvent>, commits: watch::Sender<u64>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH as usize {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        // A failed write is retried with the same batch: the channel holds the rest.
        loop {
            match store.append_hook_events(&batch, crate::outbox::now_ms()).await {
                Ok(_) => break,
                Err(e) => {
                    warn!(error = %e, events = batch.len(), "WCS event hooks: cannot store them; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        batch.clear();
        commits.send_modify(|n| *n += 1);
    }
}

/// Starts a deliverer for each queue with rows, on each write and every few seconds
/// (rows left by an earlier run are found at start).
async fn supervise(store: Store, mut commits: watch::Receiver<u64>, settings: Settings) {
    let agent = ureq::AgentBuilder::new().timeout(settings.timeout).redirects(0).max_idle_connections_per_host(4).build();
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        running.retain(|_, t| !t.is_finished());
        match store.hook_queues().await {
            Ok(queues) => {
                for q in queues {
                    if running.contains_key(&q) {
                        continue;
                    }
                    debug!(queue = %q, "WCS event hook deliverer started");
                    let d = Deliverer { queue: q.clone(), store: store.clone(), commits: commits.clone(), agent: agent.clone(), settings: settings.clone() };
                    running.insert(q, tokio::spawn(d.run()));
                }
            }
            Err(e) => warn!(error = %e, "WCS event hooks: cannot list their queues"),
        }
        tokio::select! {
            r = commits.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

struct Deliverer {
    queue: String,
    store: Store,
    commits: watch::Receiver<u64>,
    agent: ureq::Agent,
    settings: Settings,
}

/// What became of one row.
enum Outcome {
    Delivered,
    /// Refused (a 4xx): dropped, since events cannot refuse.
    Refused(u16, String),
    /// Try the head again later.
    Retry(Option<u16>, String),
}

impl Deliverer {
    async fn run(mut self) {
        loop {
            self.commits.borrow_and_update();
            let rows = match self.store.hook_events(&self.queue, BATCH).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(queue = %self.queue, error = %e, "WCS event hooks: cannot read the outbox");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(head) = rows.first() else {
                tokio::select! {
                    r = self.commits.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                continue;
            };
            let now = crate::outbox::now_ms();
            if head.next_attempt_ms > now {
                tokio::time::sleep(Duration::from_millis((head.next_attempt_ms - now).min(2_000))).await;
                continue;
            }
            let (agent, secret, max_age) = (self.agent.clone(), self.settings.secret.clone(), self.settings.max_age);
            let round = tokio::task::spawn_blocking(move || deliver(&agent, secret.as_deref(), max_age, &rows)).await;
            let Ok((done, refused, failed)) = round else { continue };
            if let Some(tell) = &self.settings.on_refused {
                for (row, code, reason) in &refused {
                    let session = serde_json::from_str::<serde_json::Value>(&row.body).ok().and_then(|b| b["sessionId"].as_str().map(str::to_owned)).unwrap_or_default();
                    tell(&session, &row.method, *code, reason);
                }
            }
            if let Err(e) = self.store.hook_events_done(&done).await {
                warn!(queue = %self.queue, error = %e, "WCS event hooks: cannot mark them delivered (they will be sent again)");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if let Some((row, status, err)) = failed {
                let wait = crate::webhooks::backoff(
                    &crate::webhooks::Settings { timeout: self.settings.timeout, retry_initial: Duration::from_secs(1), retry_max: self.settings.retry_max },
                    row.attempts + 1,
                );
                info!(queue = %self.queue, url = %row.url, error = %err, attempts = row.attempts + 1, retry_in_ms = wait.as_millis() as u64, "WCS event hook not delivered; will retry");
                let next = crate::outbox::now_ms() + wait.as_millis() as u64;
                if let Err(e) = self.store.hook_event_failed(row.id, status, &err, next).await {
                    warn!(queue = %self.queue, error = %e, "WCS event hooks: cannot save a retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The row a round stopped at, to try again: with its status (None: no answer) and error.
type Retry = (HookEvent, Option<u16>, String);

/// A row its backend refused, with the status and reason.
type Refusal = (HookEvent, u16, String);

/// POSTs `rows` in order until one is to be retried (blocking). Returns the rows done
/// with (delivered, refused or too old), the refused ones, and the one to retry.
fn deliver(agent: &ureq::Agent, secret: Option<&str>, max_age: Duration, rows: &[HookEvent]) -> (Vec<i64>, Vec<Refusal>, Option<Retry>) {
    let mut done = Vec::with_capacity(rows.len());
    let mut refused = Vec::new();
    let now = crate::outbox::now_ms();
    for row in rows {
        if now.saturating_sub(row.created_ms) > max_age.as_millis() as u64 {
            error!(url = %row.url, attempts = row.attempts, last_error = row.last_error.as_deref().unwrap_or(""), "WCS event hook DROPPED: its backend did not take it within [wcs] event_max_age_s");
            done.push(row.id);
            continue;
        }
        let outcome = match post(agent, &row.url, &row.body, secret) {
            Posted::Status(code, ..) if (200..300).contains(&code) => Outcome::Delivered,
            Posted::Status(code, reason, _) if code >= 500 || code == 408 || code == 429 => Outcome::Retry(Some(code), format!("HTTP {code} {reason}")),
            Posted::Status(code, reason, _) => Outcome::Refused(code, reason),
            Posted::Transport { error, .. } => Outcome::Retry(None, error),
        };
        match outcome {
            Outcome::Delivered => done.push(row.id),
            Outcome::Refused(code, reason) => {
                debug!(url = %row.url, code, "WCS event hook not accepted (events cannot refuse): dropped");
                done.push(row.id);
                refused.push((row.clone(), code, reason));
            }
            Outcome::Retry(status, err) => return (done, refused, Some((row.clone(), status, err))),
        }
    }
    (done, refused, None)
}
