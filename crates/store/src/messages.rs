//! Instant messages (SIP MESSAGE) for users: written from the engine's
//! `MessageAccepted` event, updated from its delivery events, and read back by the
//! shell to send pending ones when their recipient registers, and by the API.

use crate::error::StoreError;
use crate::store::{from_db, opt_from_db, to_db, Store};
use engine::users::{DomainId, UserId};
use engine::{MessageInfo, MessageOrigin};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// A message as stored, with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMessage {
    pub message_id: String,
    #[serde(skip)]
    pub domain_id: DomainId,
    pub user_id: UserId,
    pub to: String,
    pub from: String,
    pub from_user_id: Option<UserId>,
    pub content_type: String,
    pub body: String,
    /// `sip` or `api`.
    pub origin: String,
    /// [`PENDING`], [`DELIVERED`] or [`FAILED`].
    pub state: String,
    /// Delivery rounds that ended without a device taking it.
    pub attempts: u32,
    /// The last final status a device answered with.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl StoredMessage {
    /// What the engine needs to send it again.
    pub fn info(&self, domain: &str) -> MessageInfo {
        MessageInfo {
            message_id: self.message_id.clone(),
            domain: domain.to_owned(),
            domain_id: self.domain_id,
            user_id: self.user_id,
            to: self.to.clone(),
            from: self.from.clone(),
            from_user_id: self.from_user_id,
            content_type: self.content_type.clone(),
            body: self.body.clone(),
            origin: if self.origin == "api" { MessageOrigin::Api } else { MessageOrigin::Sip },
            created_ms: self.created_ms,
        }
    }
}

const COLUMNS: &str =
    "id, domain_id, user_id, to_uri, from_uri, from_user_id, content_type, body, origin, state, attempts, last_status, last_error, created_ms, updated_ms";

impl Store {
    /// Stores a new message as pending. Writing the same message twice changes nothing.
    pub async fn add_message(&self, m: &MessageInfo) -> Result<(), StoreError> {
        let origin = match m.origin {
            MessageOrigin::Sip => "sip",
            MessageOrigin::Api => "api",
        };
        sqlx::query(
            "INSERT INTO messages (id, domain_id, user_id, to_uri, from_uri, from_user_id, content_type, body, origin, state, attempts, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $11) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&m.message_id)
        .bind(m.domain_id)
        .bind(m.user_id)
        .bind(&m.to)
        .bind(&m.from)
        .bind(m.from_user_id)
        .bind(&m.content_type)
        .bind(&m.body)
        .bind(origin)
        .bind(PENDING)
        .bind(to_db("created_ms", m.created_ms)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A device took it.
    pub async fn message_delivered(&self, id: &str, status: u16, now_ms: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET state = $1, last_status = $2, last_error = NULL, updated_ms = $3 WHERE id = $4")
            .bind(DELIVERED)
            .bind(i64::from(status))
            .bind(to_db("updated_ms", now_ms)?)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A delivery round ended without a device taking it: `failed` for good, or kept
    /// pending. A delivered message stays delivered (a late round cannot undo that).
    pub async fn message_not_delivered(&self, id: &str, failed: bool, status: Option<u16>, error: &str, now_ms: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET state = $1, attempts = attempts + 1, last_status = $2, last_error = $3, updated_ms = $4 WHERE id = $5 AND state <> $6",
        )
        .bind(if failed { FAILED } else { PENDING })
        .bind(status.map(i64::from))
        .bind(error)
        .bind(to_db("updated_ms", now_ms)?)
        .bind(id)
        .bind(DELIVERED)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user's pending messages, oldest first (sent in that order).
    pub async fn pending_messages(&self, user_id: UserId) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM messages WHERE user_id = $1 AND state = $2 ORDER BY created_ms, id"))
            .bind(user_id)
            .bind(PENDING)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// The user's newest `limit` messages, newest first; `state` narrows them.
    pub async fn messages_of_user(&self, user_id: UserId, state: Option<&str>, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM messages WHERE user_id = $1 AND ($2 = '' OR state = $2) ORDER BY created_ms DESC, id DESC LIMIT $3"
        ))
        .bind(user_id)
        .bind(state.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub async fn message(&self, id: &str) -> Result<Option<StoredMessage>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM messages WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(message_from_row).transpose()
    }
}

fn message_from_row(row: &AnyRow) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        message_id: row.try_get("id")?,
        domain_id: row.try_get("domain_id")?,
        user_id: row.try_get("user_id")?,
        to: row.try_get("to_uri")?,
        from: row.try_get("from_uri")?,
        from_user_id: row.try_get("from_user_id")?,
        content_type: row.try_get("content_type")?,
        body: row.try_get("body")?,
        origin: row.try_get("origin")?,
        state: row.try_get("state")?,
        attempts: from_db("messages.attempts", row.try_get("attempts")?)?,
        last_status: opt_from_db("messages.last_status", row.try_get("last_status")?)?,
        last_error: row.try_get("last_error")?,
        created_ms: from_db("messages.created_ms", row.try_get("created_ms")?)?,
        updated_ms: from_db("messages.updated_ms", row.try_get("updated_ms")?)?,
    })
}
