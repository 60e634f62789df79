//! The Web Call Server event hooks' outbox (migration 0010): each event POST of a WCS
//! session (`CallStatusEvent`, `ConnectionStatusEvent`, …) is stored before it is
//! sent and deleted once its backend took it, so neither a backend that is down nor a
//! `kill -9` of the server loses one.
//!
//! Rows are ordered per `queue` (the app key) by `id`: the deliverer (the server's
//! shell) sends a queue's head first and does not pass it while it is being retried,
//! so a backend sees its events in the order they happened. The shell is the only
//! writer (one task appends), so the next id is the largest plus one.

use crate::error::StoreError;
use crate::store::{from_db, opt_from_db, to_db, Store};
use sqlx::any::AnyRow;
use sqlx::Row;

/// An event POST to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHookEvent {
    /// Delivery order key: the app key.
    pub queue: String,
    /// Where it goes: the app's REST URL + "/" + the event's name.
    pub url: String,
    /// The event's name (`CallStatusEvent`).
    pub method: String,
    /// The JSON body, exactly as POSTed.
    pub body: String,
}

/// A stored event POST and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEvent {
    pub id: i64,
    pub queue: String,
    pub url: String,
    pub method: String,
    pub body: String,
    pub created_ms: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// No attempt before this (ms since the epoch; 0 = now).
    pub next_attempt_ms: u64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// One queue's backlog, for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookQueue {
    pub queue: String,
    pub pending: u64,
    pub oldest_ms: u64,
    /// The head's state: what the next attempt is waiting on.
    pub head_attempts: u32,
    pub next_attempt_ms: u64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// Rows per INSERT statement (7 parameters each: under SQLite's 999).
const PER_INSERT: usize = 100;

fn hook_event(r: &AnyRow) -> Result<HookEvent, StoreError> {
    Ok(HookEvent {
        id: r.try_get(0)?,
        queue: r.try_get(1)?,
        url: r.try_get(2)?,
        method: r.try_get(3)?,
        body: r.try_get(4)?,
        created_ms: from_db("wcs_hook_outbox.created_ms", r.try_get(5)?)?,
        attempts: from_db("wcs_hook_outbox.attempts", r.try_get(6)?)?,
        next_attempt_ms: from_db("wcs_hook_outbox.next_attempt_ms", r.try_get(7)?)?,
        last_status: opt_from_db("wcs_hook_outbox.last_status", r.try_get(8)?)?,
        last_error: r.try_get(9)?,
    })
}

impl Store {
    /// Stores `events` in one transaction, in the order given; returns their ids.
    pub async fn append_hook_events(&self, events: &[NewHookEvent], now_ms: u64) -> Result<Vec<i64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM wcs_hook_outbox").fetch_one(&mut *tx).await?;
        let first: i64 = row.try_get::<i64, _>(0)? + 1;
        let now = to_db("created_ms", now_ms)?;
        let ids: Vec<i64> = (first..first + events.len() as i64).collect();
        for (chunk, chunk_ids) in events.chunks(PER_INSERT).zip(ids.chunks(PER_INSERT)) {
            let mut sql = String::from("INSERT INTO wcs_hook_outbox (id, queue, url, method, body, created_ms, next_attempt_ms) VALUES ");
            for i in 0..chunk.len() {
                let b = i * 7;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("(${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7));
            }
            let mut q = sqlx::query(&sql);
            for (e, id) in chunk.iter().zip(chunk_ids) {
                q = q.bind(*id).bind(e.queue.as_str()).bind(e.url.as_str()).bind(e.method.as_str()).bind(e.body.as_str()).bind(now).bind(0i64);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// The queues with something to deliver.
    pub async fn hook_queues(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT queue FROM wcs_hook_outbox ORDER BY queue").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The first `limit` rows of `queue`, oldest first.
    pub async fn hook_events(&self, queue: &str, limit: u32) -> Result<Vec<HookEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, queue, url, method, body, created_ms, attempts, next_attempt_ms, last_status, last_error \
             FROM wcs_hook_outbox WHERE queue = $1 ORDER BY id LIMIT $2",
        )
        .bind(queue)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hook_event).collect()
    }

    /// Deletes rows: delivered, or given up.
    pub async fn hook_events_done(&self, ids: &[i64]) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("DELETE FROM wcs_hook_outbox WHERE id IN ({})", list.join(","));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Records a failed attempt at row `id`: no new one before `next_attempt_ms`.
    pub async fn hook_event_failed(&self, id: i64, status: Option<u16>, error: &str, next_attempt_ms: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE wcs_hook_outbox SET attempts = attempts + 1, last_status = $1, last_error = $2, next_attempt_ms = $3 WHERE id = $4")
            .bind(status.map(i64::from))
            .bind(error)
            .bind(to_db("next_attempt_ms", next_attempt_ms)?)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every queue's backlog and its head's state.
    pub async fn hook_backlog(&self) -> Result<Vec<HookQueue>, StoreError> {
        let rows = sqlx::query("SELECT queue, COUNT(*), MIN(created_ms), MIN(id) FROM wcs_hook_outbox GROUP BY queue ORDER BY queue").fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let head_id: i64 = r.try_get(3)?;
            let head = sqlx::query(
                "SELECT id, queue, url, method, body, created_ms, attempts, next_attempt_ms, last_status, last_error FROM wcs_hook_outbox WHERE id = $1",
            )
            .bind(head_id)
            .fetch_optional(&self.pool)
            .await?;
            let head = head.as_ref().map(hook_event).transpose()?;
            out.push(HookQueue {
                queue: r.try_get(0)?,
                pending: from_db("count", r.try_get(1)?)?,
                oldest_ms: from_db("wcs_hook_outbox.created_ms", r.try_get(2)?)?,
                head_attempts: head.as_ref().map_or(0, |h| h.attempts),
                next_attempt_ms: head.as_ref().map_or(0, |h| h.next_attempt_ms),
                last_status: head.as_ref().and_then(|h| h.last_status),
                last_error: head.and_then(|h| h.last_error),
            });
        }
        Ok(out)
    }
}
