//! The event outbox and webhooks (issue 12 item 7, "lossless events"; migration 0006).
//!
//! - [`Store::append_events`]: a batch of engine events in one transaction, each
//!   numbered in its domain by the domain's counter row (`event_counters`), bumped in
//!   the same transaction: per domain the numbers are 1, 2, 3, … with no gap and no
//!   repeat, whatever crashes. The server's shell is the only writer (one task).
//! - [`Store::events_after`]: what a reader (the SSE stream, a webhook's deliverer)
//!   has not seen yet, by domain and cursor.
//! - [`Webhook`]s: a URL of a domain with its delivery state (cursor, retries). No
//!   secret is stored; see `api::webhooks` for how the signing secret is derived.
//! - [`Store::prune_events`]: retention, keeping what an enabled webhook still owes.

use crate::error::StoreError;
use crate::store::{from_db, opt_from_db, to_db, Store};
use engine::users::DomainId;
use sqlx::any::AnyRow;
use sqlx::Row;

/// An event to append (its number is the store's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub domain_id: DomainId,
    pub ts_ms: u64,
    pub event_type: String,
    /// The event's JSON object (with `type`, without `seq` and `ts`).
    pub body: String,
}

/// An event of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub domain_id: DomainId,
    /// Per domain, from 1, no gaps.
    pub seq: u64,
    pub ts_ms: u64,
    pub event_type: String,
    pub body: String,
}

impl StoredEvent {
    /// The JSON object readers get: `seq`, `ts`, then the event's fields (`type`, …),
    /// the shape of `/v1/events`.
    pub fn to_json(&self) -> String {
        let rest = self.body.trim_start().strip_prefix('{').unwrap_or("}");
        let sep = if rest.trim_start().starts_with('}') { "" } else { "," };
        format!("{{\"seq\":{},\"ts\":{}{sep}{rest}", self.seq, self.ts_ms)
    }
}

/// Rows per INSERT statement (5 parameters each: under SQLite's 999).
const EVENTS_PER_INSERT: usize = 100;

/// A webhook and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: i64,
    pub domain_id: DomainId,
    pub url: String,
    /// Event types delivered; empty = all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Part of the key id (`<id>.<version>`); bumped by a rotation.
    pub key_version: u32,
    pub created_ms: u64,
    /// Last seq delivered (or skipped by the type filter).
    pub cursor: u64,
    /// Events delivered (2xx) so far.
    pub delivered: u64,
    /// Consecutive failed attempts (0 after a success).
    pub failures: u32,
    pub last_attempt_ms: Option<u64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// No attempt before this (ms since the epoch; 0 = now).
    pub next_attempt_ms: u64,
}

impl Webhook {
    /// Whether the filter lets `event_type` through.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

/// The outcome of one delivery round, for [`Store::webhook_attempted`].
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub at_ms: u64,
    /// The new cursor (≥ the old).
    pub cursor: u64,
    /// Events delivered in the round.
    pub delivered: u64,
    pub status: Option<u16>,
    /// Set when the round ended in a failure.
    pub error: Option<String>,
    /// On failure: when to try again.
    pub next_attempt_ms: u64,
}

const WEBHOOK_COLUMNS: &str = "id, domain_id, url, event_types, enabled, key_version, created_ms, cursor_seq, delivered, failures, \
     last_attempt_ms, last_status, last_error, next_attempt_ms";

impl Store {
    /// Appends `events` in one transaction, numbering each in its domain; returns them
    /// numbered, in the order given.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // How many per domain, then one counter bump per domain.
        let mut counts: Vec<(DomainId, i64)> = Vec::new();
        for e in events {
            match counts.iter_mut().find(|(d, _)| *d == e.domain_id) {
                Some((_, n)) => *n += 1,
                None => counts.push((e.domain_id, 1)),
            }
        }
        let mut tx = self.pool.begin().await?;
        let mut next: Vec<(DomainId, u64)> = Vec::with_capacity(counts.len());
        for (domain, n) in counts {
            let row = sqlx::query(
                "INSERT INTO event_counters (domain_id, last_seq) VALUES ($1, $2) \
                 ON CONFLICT (domain_id) DO UPDATE SET last_seq = event_counters.last_seq + $2 RETURNING last_seq",
            )
            .bind(domain)
            .bind(n)
            .fetch_one(&mut *tx)
            .await?;
            let last: u64 = from_db("event_counters.last_seq", row.try_get::<i64, _>(0)?)?;
            next.push((domain, last + 1 - n as u64));
        }
        let mut stored = Vec::with_capacity(events.len());
        for e in events {
            let slot = next.iter_mut().find(|(d, _)| *d == e.domain_id).expect("counted");
            stored.push(StoredEvent { domain_id: e.domain_id, seq: slot.1, ts_ms: e.ts_ms, event_type: e.event_type.clone(), body: e.body.clone() });
            slot.1 += 1;
        }
        for chunk in stored.chunks(EVENTS_PER_INSERT) {
            let mut sql = String::from("INSERT INTO events (domain_id, seq, ts_ms, event_type, body) VALUES ");
            for i in 0..chunk.len() {
                use std::fmt::Write as _;
                let b = i * 5;
                let _ = write!(sql, "{}(${}, ${}, ${}, ${}, ${})", if i == 0 { "" } else { ", " }, b + 1, b + 2, b + 3, b + 4, b + 5);
            }
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q.bind(e.domain_id).bind(to_db("seq", e.seq)?).bind(to_db("ts_ms", e.ts_ms)?).bind(e.event_type.as_str()).bind(e.body.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Events of `domain` with `seq > after`, oldest first, at most `limit`.
    pub async fn events_after(&self, domain: DomainId, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT domain_id, seq, ts_ms, event_type, body FROM events WHERE domain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(domain)
        .bind(to_db("after", after)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    domain_id: r.try_get("domain_id")?,
                    seq: from_db("events.seq", r.try_get("seq")?)?,
                    ts_ms: from_db("events.ts_ms", r.try_get("ts_ms")?)?,
                    event_type: r.try_get("event_type")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    /// The last seq handed out in `domain` (0 before its first event).
    pub async fn last_event_seq(&self, domain: DomainId) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT last_seq FROM event_counters WHERE domain_id = $1").bind(domain).fetch_optional(&self.pool).await?;
        match row {
            Some(r) => from_db("event_counters.last_seq", r.try_get::<i64, _>(0)?),
            None => Ok(0),
        }
    }

    /// Events kept in `domain` (all seqs, for tests and the API's counts).
    pub async fn count_events(&self, domain: DomainId) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM events WHERE domain_id = $1").bind(domain).fetch_one(&self.pool).await?;
        from_db("events count", row.try_get::<i64, _>(0)?)
    }

    /// Deletes events older than `before_ms` that every enabled webhook of their domain
    /// has delivered (or skipped); returns how many. The counters stay, so numbering
    /// continues.
    pub async fn prune_events(&self, before_ms: u64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM events WHERE ts_ms < $1 AND seq <= COALESCE( \
                 (SELECT MIN(w.cursor_seq) FROM webhooks w WHERE w.domain_id = events.domain_id AND w.enabled = 1), seq)",
        )
        .bind(to_db("before_ms", before_ms)?)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Adds a webhook of `domain`; its cursor starts at the domain's last event, so it
    /// is sent what happens from now on.
    pub async fn add_webhook(&self, domain: DomainId, url: &str, event_types: &[String], enabled: bool, now_ms: u64) -> Result<Webhook, StoreError> {
        let cursor = self.last_event_seq(domain).await?;
        let types = event_types.join(",");
        // Ids are MAX + 1 (as voicemails'); a racing writer on PostgreSQL retries.
        let mut last = None;
        for _ in 0..5 {
            let r = sqlx::query(
                "INSERT INTO webhooks (id, domain_id, url, event_types, enabled, key_version, created_ms, cursor_seq) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, 1, $5, $6 FROM webhooks RETURNING id",
            )
            .bind(domain)
            .bind(url)
            .bind(types.as_str())
            .bind(i64::from(enabled))
            .bind(to_db("created_ms", now_ms)?)
            .bind(to_db("cursor", cursor)?)
            .fetch_one(&self.pool)
            .await;
            match r {
                Ok(row) => {
                    let id: i64 = row.try_get(0)?;
                    return self.webhook(id).await?.ok_or_else(|| StoreError::Corrupt("webhook vanished".into()));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried").into())
    }

    /// Webhooks of one domain (None: all), by id.
    pub async fn webhooks(&self, domain: Option<DomainId>) -> Result<Vec<Webhook>, StoreError> {
        let rows = match domain {
            Some(d) => sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE domain_id = $1 ORDER BY id")).bind(d).fetch_all(&self.pool).await?,
            None => sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(webhook_from_row).collect()
    }

    pub async fn webhook(&self, id: i64) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    /// Changes what is given; enabling also clears a pending back-off. None if missing.
    pub async fn update_webhook(&self, id: i64, url: Option<&str>, event_types: Option<&[String]>, enabled: Option<bool>) -> Result<Option<Webhook>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(u) = url {
            sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2").bind(u).bind(id).execute(&mut *tx).await?;
        }
        if let Some(t) = event_types {
            sqlx::query("UPDATE webhooks SET event_types = $1 WHERE id = $2").bind(t.join(",")).bind(id).execute(&mut *tx).await?;
        }
        if let Some(e) = enabled {
            sqlx::query("UPDATE webhooks SET enabled = $1, next_attempt_ms = 0 WHERE id = $2").bind(i64::from(e)).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.webhook(id).await
    }

    /// Bumps the key version (a new signing secret); None if missing.
    pub async fn rotate_webhook(&self, id: i64) -> Result<Option<Webhook>, StoreError> {
        sqlx::query("UPDATE webhooks SET key_version = key_version + 1 WHERE id = $1").bind(id).execute(&self.pool).await?;
        self.webhook(id).await
    }

    /// True if it existed.
    pub async fn delete_webhook(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a delivery round: the cursor moves (never back), a success resets the
    /// failure count, a failure counts and schedules the next attempt.
    pub async fn webhook_attempted(&self, id: i64, a: &Attempt) -> Result<(), StoreError> {
        let failed = a.error.is_some();
        sqlx::query(
            "UPDATE webhooks SET cursor_seq = CASE WHEN cursor_seq > $1 THEN cursor_seq ELSE $1 END, delivered = delivered + $2, \
                 failures = CASE WHEN $3 = 1 THEN failures + 1 ELSE 0 END, last_attempt_ms = $4, last_status = $5, last_error = $6, \
                 next_attempt_ms = $7 WHERE id = $8",
        )
        .bind(to_db("cursor", a.cursor)?)
        .bind(to_db("delivered", a.delivered)?)
        .bind(i64::from(failed))
        .bind(to_db("at_ms", a.at_ms)?)
        .bind(a.status.map(i64::from))
        .bind(a.error.as_deref())
        .bind(to_db("next_attempt_ms", if failed { a.next_attempt_ms } else { 0 })?)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves the cursor past events the filter skips, without counting an attempt.
    pub async fn webhook_skipped(&self, id: i64, cursor: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhooks SET cursor_seq = CASE WHEN cursor_seq > $1 THEN cursor_seq ELSE $1 END WHERE id = $2")
            .bind(to_db("cursor", cursor)?)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn webhook_from_row(row: &AnyRow) -> Result<Webhook, StoreError> {
    let types: String = row.try_get("event_types")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        domain_id: row.try_get("domain_id")?,
        url: row.try_get("url")?,
        event_types: types.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        key_version: from_db("webhooks.key_version", row.try_get("key_version")?)?,
        created_ms: from_db("webhooks.created_ms", row.try_get("created_ms")?)?,
        cursor: from_db("webhooks.cursor_seq", row.try_get("cursor_seq")?)?,
        delivered: from_db("webhooks.delivered", row.try_get("delivered")?)?,
        failures: from_db("webhooks.failures", row.try_get("failures")?)?,
        last_attempt_ms: opt_from_db("webhooks.last_attempt_ms", row.try_get("last_attempt_ms")?)?,
        last_status: opt_from_db("webhooks.last_status", row.try_get("last_status")?)?,
        last_error: row.try_get("last_error")?,
        next_attempt_ms: from_db("webhooks.next_attempt_ms", row.try_get("next_attempt_ms")?)?,
    })
}
