//! Webhook delivery: every event of a domain's outbox, in order, to each enabled webhook
//! of the domain, signed (see `api::webhooks` for the headers and the secret).
//!
//! One task per enabled webhook, started by a supervisor that looks at the table on
//! every change made over the API and every few seconds (the CLI or another server may
//! change it too). A webhook's task loops:
//!
//! 1. read the webhook (gone or disabled: the task ends; backing off: sleep, reading it
//!    again at least every 2 s so a PATCH or DELETE is seen);
//! 2. read up to [`BATCH`] events after its cursor; none: wait for the outbox writer's
//!    next commit;
//! 3. POST them one by one, in order, on a blocking thread (ureq, the client the push
//!    sender uses; rustls on ring), each with `X-Switchboard-Event-Seq`; stop at the
//!    first failure (not 2xx, or no answer within `[events] webhook_timeout_ms`);
//! 4. store the outcome in one write: the cursor after the last event delivered (or
//!    skipped by the type filter), the counters, and on failure the next attempt time,
//!    `retry_initial_ms` doubling per consecutive failure up to `retry_max_ms`, with
//!    ±20 % jitter.
//!
//! The cursor is persisted once per round, so a `kill -9` in the middle of a round
//! re-delivers that round's events after the restart: delivery is at least once, and
//! receivers drop repeats by `X-Switchboard-Event-Seq` (a number is never reused).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{Attempt, Store, StoredEvent, Webhook};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

/// Events per delivery round.
pub const BATCH: u32 = 100;

#[derive(Clone)]
pub struct Settings {
    pub timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// Starts the supervisor.
pub fn spawn(store: Store, master: Arc<[u8; 32]>, commits: watch::Receiver<u64>, changed: Arc<Notify>, settings: Settings) {
    tokio::spawn(async move {
        let agent = ureq::AgentBuilder::new().timeout(settings.timeout).redirects(0).max_idle_connections_per_host(4).build();
        let mut running: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            running.retain(|_, t| !t.is_finished());
            match store.webhooks(None).await {
                Ok(hooks) => {
                    for w in hooks.into_iter().filter(|w| w.enabled) {
                        if running.contains_key(&w.id) {
                            continue;
                        }
                        debug!(webhook = w.id, url = %w.url, "webhook deliverer started");
                        let d = Deliverer { id: w.id, store: store.clone(), master: master.clone(), commits: commits.clone(), agent: agent.clone(), settings: settings.clone() };
                        running.insert(w.id, tokio::spawn(d.run()));
                    }
                }
                Err(e) => warn!(error = %e, "webhooks: cannot list them"),
            }
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
}

struct Deliverer {
    id: i64,
    store: Store,
    master: Arc<[u8; 32]>,
    commits: watch::Receiver<u64>,
    agent: ureq::Agent,
    settings: Settings,
}

/// How one round went.
struct Round {
    /// Last seq delivered or skipped.
    cursor: u64,
    delivered: u64,
    status: Option<u16>,
    error: Option<String>,
}

impl Deliverer {
    async fn run(mut self) {
        loop {
            let w = match self.store.webhook(self.id).await {
                Ok(Some(w)) if w.enabled => w,
                Ok(_) => return,
                Err(e) => {
                    warn!(webhook = self.id, error = %e, "webhook: cannot read it");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let now = crate::outbox::now_ms();
            if w.next_attempt_ms > now {
                tokio::time::sleep(Duration::from_millis((w.next_attempt_ms - now).min(2_000))).await;
                continue;
            }
            // Mark what is committed now as seen before reading, so a commit after the read wakes us.
            self.commits.borrow_and_update();
            let events = match self.store.events_after(w.domain_id, w.cursor, BATCH).await {
                Ok(e) => e,
                Err(e) => {
                    warn!(webhook = self.id, error = %e, "webhook: cannot read the outbox");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if events.is_empty() {
                tokio::select! {
                    r = self.commits.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                continue;
            }
            let secret = api::webhooks::webhook_secret(&self.master, w.id, w.key_version);
            let agent = self.agent.clone();
            let hook = w.clone();
            let round = match tokio::task::spawn_blocking(move || deliver(&agent, &hook, &secret, &events)).await {
                Ok(r) => r,
                Err(e) => Round { cursor: w.cursor, delivered: 0, status: None, error: Some(format!("delivery task failed: {e}")) },
            };
            let at_ms = crate::outbox::now_ms();
            let next_attempt_ms = match &round.error {
                Some(err) => {
                    let wait = backoff(&self.settings, w.failures + 1);
                    info!(webhook = w.id, url = %w.url, error = %err, failures = w.failures + 1, retry_in_ms = wait.as_millis() as u64, "webhook delivery failed");
                    at_ms + wait.as_millis() as u64
                }
                None => 0,
            };
            let attempt = Attempt { at_ms, cursor: round.cursor, delivered: round.delivered, status: round.status, error: round.error, next_attempt_ms };
            if let Err(e) = self.store.webhook_attempted(w.id, &attempt).await {
                warn!(webhook = w.id, error = %e, "webhook: cannot save its delivery state");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// POSTs `events` in order until one fails (blocking).
fn deliver(agent: &ureq::Agent, w: &Webhook, secret: &str, events: &[StoredEvent]) -> Round {
    let key_id = api::webhooks::key_id(w.id, w.key_version);
    let mut round = Round { cursor: w.cursor, delivered: 0, status: None, error: None };
    for e in events {
        if !w.wants(&e.event_type) {
            round.cursor = e.seq;
            continue;
        }
        let body = e.to_json();
        let ts = crate::outbox::now_ms() / 1000;
        let result = agent
            .post(&w.url)
            .set("Content-Type", "application/json")
            .set("User-Agent", concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .set("X-Switchboard-Timestamp", &ts.to_string())
            .set("X-Switchboard-Key-Id", &key_id)
            .set("X-Switchboard-Event-Seq", &e.seq.to_string())
            .set("X-Switchboard-Event-Type", &e.event_type)
            .set("X-Switchboard-Signature", &api::webhooks::signature(secret, ts, body.as_bytes()))
            .send_string(&body);
        match result {
            Ok(resp) if (200..300).contains(&resp.status()) => {
                round.status = Some(resp.status());
                round.cursor = e.seq;
                round.delivered += 1;
                let _ = resp.into_string(); // drain: the connection is reused
            }
            Ok(resp) => {
                round.status = Some(resp.status());
                round.error = Some(format!("HTTP {} at seq {}", resp.status(), e.seq));
                return round;
            }
            Err(ureq::Error::Status(code, resp)) => {
                let _ = resp.into_string();
                round.status = Some(code);
                round.error = Some(format!("HTTP {code} at seq {}", e.seq));
                return round;
            }
            Err(err) => {
                round.status = None;
                round.error = Some(format!("{err} at seq {}", e.seq));
                return round;
            }
        }
    }
    round
}

/// The wait after the `failures`-th consecutive failure: initial × 2^(failures-1), at
/// most the max, ±20 %.
pub fn backoff(s: &Settings, failures: u32) -> Duration {
    let base = s.retry_initial.saturating_mul(1u32 << failures.saturating_sub(1).min(20)).min(s.retry_max);
    base.mul_f64(0.8 + 0.4 * pseudo_random())
}

/// A number in [0, 1] that differs between calls (jitter needs no cryptography).
fn pseudo_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::outbox::now_ms());
    (h.finish() % 10_001) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max_with_jitter() {
        let s = Settings { timeout: Duration::from_secs(10), retry_initial: Duration::from_secs(1), retry_max: Duration::from_secs(300) };
        for (n, base) in [(1u32, 1.0f64), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (40, 300.0)] {
            let w = backoff(&s, n).as_secs_f64();
            assert!(w >= base * 0.8 - 1e-9 && w <= base * 1.2 + 1e-9, "failure {n}: {w} s, base {base}");
        }
    }
}
