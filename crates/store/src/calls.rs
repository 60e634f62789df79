//! Two-party call records, users' call modes and push tokens (issue 10).
//!
//! - A call record is one row per call, written by the recorder from
//!   `EngineEvent::CallEnded` (see [`crate::recorder`]). It is keyed by the engine's
//!   integer `CallId`; [`Store::next_call_id_floor`] tells the server where to start
//!   numbering so ids stay unique across restarts. [`Store::call_log`] is what reference
//!   001's `GET /calls` reads: one user's calls, as caller or callee, in id order.
//! - A call mode (001 `PATCH /calls`) and the push tokens (001 `PUT /tokens/…`) are
//!   per user and matter to the engine (the bridge honours the mode; a user with tokens
//!   is woken by a push before ringing), so they travel in the directory snapshot:
//!   their writes bump the directory version like any directory write, and
//!   [`Store::load_directory`] fills `User::call_mode` and `User::has_push_tokens`.

use crate::error::StoreError;
use crate::store::{from_db, opt_from_db, to_db, Store};
use engine::call::{CallInfo, Party};
use engine::users::{CallMode, DomainId, UserId};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

/// One call as recorded when it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecordRow {
    pub call_id: u64,
    pub domain: String,
    pub caller: Party,
    pub callee: Party,
    /// Milliseconds since the Unix epoch.
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: u64,
    /// The engine's `Disposition` as its JSON names it (`answered`, `no_answer`, …); a
    /// string, so records written by a newer build still read back.
    pub disposition: String,
    /// `caller` or `callee`; None = the server ended it.
    pub hangup_by: Option<String>,
    pub caller_codec: Option<String>,
    pub callee_codec: Option<String>,
    /// Recording files, relative to the data dir, oldest first.
    pub recordings: Vec<String>,
    pub api_originated: bool,
}

impl CallRecordRow {
    pub fn answered(&self) -> bool {
        self.answered_ms.is_some() || self.disposition == "answered"
    }
}

/// A mobile app's push token (reference 001 §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushToken {
    /// `apn` or `fcm`.
    pub kind: String,
    /// The APNs topic (bundle id, `~` appended for the sandbox) or the FCM app id.
    pub topic: String,
    pub token: String,
    pub user_id: UserId,
    pub created_ms: u64,
}

const CALL_COLUMNS: &str = "call_id, domain, caller_uri, caller_user_id, caller_ext, caller_name, callee_uri, \
     callee_user_id, callee_ext, callee_name, started_ms, answered_ms, ended_ms, disposition, hangup_by, \
     caller_codec, callee_codec, recordings, api_originated";

impl Store {
    /// Writes (or rewrites: same call id) a call's record from its final snapshot.
    pub async fn record_call(&self, info: &CallInfo) -> Result<(), StoreError> {
        insert_call(&self.pool, info).await
    }

    /// One call's record.
    pub async fn call_record(&self, call_id: u64) -> Result<Option<CallRecordRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE call_id = $1"))
            .bind(to_db("call_id", call_id)?)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(call_from_row).transpose()
    }

    /// The calls of `user_id` in `domain` (as caller or callee) that ended at or after
    /// `since_ms` (None: all), by call id.
    pub async fn call_log(&self, domain: &str, user_id: UserId, since_ms: Option<i64>) -> Result<Vec<CallRecordRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls \
             WHERE domain = $1 AND (caller_user_id = $2 OR callee_user_id = $2) AND ended_ms >= $3 \
             ORDER BY call_id"
        ))
        .bind(domain.to_ascii_lowercase())
        .bind(user_id)
        .bind(since_ms.unwrap_or(i64::MIN))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(call_from_row).collect()
    }

    /// The largest call id recorded (0 if none): the engine numbers new calls above it.
    pub async fn next_call_id_floor(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT MAX(call_id) AS m FROM calls").fetch_one(&self.pool).await?;
        let max: Option<i64> = row.try_get("m")?;
        Ok(opt_from_db("calls.call_id", max)?.unwrap_or(0))
    }

    /// Sets a user's call mode (keeping a device name bound earlier); returns it.
    pub async fn set_call_mode(&self, user_id: UserId, remote: bool, device: &str, ring_delay_s: u16, vm_delay_s: u16) -> Result<CallMode, StoreError> {
        let mut tx = self.directory_write().await?;
        sqlx::query(
            "INSERT INTO call_modes (user_id, remote, device, ring_delay_s, vm_delay_s, assigned_device, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6) \
             ON CONFLICT (user_id) DO UPDATE SET remote = excluded.remote, device = excluded.device, \
                 ring_delay_s = excluded.ring_delay_s, vm_delay_s = excluded.vm_delay_s, updated_ms = excluded.updated_ms",
        )
        .bind(user_id)
        .bind(i64::from(remote))
        .bind(device)
        .bind(i64::from(ring_delay_s))
        .bind(i64::from(vm_delay_s))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let mode = select_call_mode(&mut *tx, user_id).await?.ok_or_else(|| StoreError::Corrupt("call mode vanished".into()))?;
        tx.commit().await?;
        Ok(mode)
    }

    /// Binds a device name to the user (001 `PATCH /calls/{name}`); a user without a
    /// call mode gets MX's defaults with it.
    pub async fn assign_device(&self, user_id: UserId, name: &str) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        sqlx::query(
            "INSERT INTO call_modes (user_id, remote, device, ring_delay_s, vm_delay_s, assigned_device, updated_ms) \
             VALUES ($1, 0, '', 1, 30, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET assigned_device = excluded.assigned_device, updated_ms = excluded.updated_ms",
        )
        .bind(user_id)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's call mode, if ever set.
    pub async fn call_mode(&self, user_id: UserId) -> Result<Option<CallMode>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        select_call_mode(&mut *conn, user_id).await
    }

    /// Stores a push token for `user_id`, moving it from whoever had it.
    pub async fn add_push_token(&self, kind: &str, topic: &str, token: &str, user_id: UserId) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        upsert_push_token(&mut *tx, kind, topic, token, user_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a push token; [`StoreError::NotFound`] if there is none.
    pub async fn remove_push_token(&self, kind: &str, topic: &str, token: &str) -> Result<(), StoreError> {
        self.remove_push_token_of(None, kind, topic, token).await
    }

    /// Like [`Store::remove_push_token`], but only a token of `user` (None: anyone's):
    /// `NotFound` when that user has no such token.
    pub async fn remove_push_token_of(&self, user: Option<UserId>, kind: &str, topic: &str, token: &str) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        let done = sqlx::query("DELETE FROM push_tokens WHERE kind = $1 AND topic = $2 AND token = $3 AND ($4 IS NULL OR user_id = $4)")
            .bind(kind)
            .bind(topic)
            .bind(token)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no push token {kind}:{topic}:{token}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a token by the one the push service says is current (FCM's canonical
    /// `registration_id`), for the same user.
    pub async fn replace_push_token(&self, kind: &str, topic: &str, old: &str, new: &str) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        let Some(row) = sqlx::query("SELECT user_id FROM push_tokens WHERE kind = $1 AND topic = $2 AND token = $3")
            .bind(kind)
            .bind(topic)
            .bind(old)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(StoreError::NotFound(format!("no push token {kind}:{topic}:{old}")));
        };
        let user_id: i64 = row.try_get(0)?;
        sqlx::query("DELETE FROM push_tokens WHERE kind = $1 AND topic = $2 AND token = $3")
            .bind(kind)
            .bind(topic)
            .bind(old)
            .execute(&mut *tx)
            .await?;
        upsert_push_token(&mut *tx, kind, topic, new, user_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's push tokens, by kind, topic and token.
    pub async fn push_tokens_of(&self, user_id: UserId) -> Result<Vec<PushToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, topic, token, user_id, created_ms FROM push_tokens WHERE user_id = $1 ORDER BY kind, topic, token",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Every push token, or those of one domain's users.
    pub async fn list_push_tokens(&self, domain: Option<DomainId>) -> Result<Vec<PushToken>, StoreError> {
        const COLS: &str = "SELECT t.kind, t.topic, t.token, t.user_id, t.created_ms FROM push_tokens t";
        let rows = match domain {
            None => sqlx::query(&format!("{COLS} ORDER BY t.kind, t.topic, t.token")).fetch_all(&self.pool).await?,
            Some(d) => {
                sqlx::query(&format!(
                    "{COLS} JOIN users u ON u.id = t.user_id WHERE u.domain_id = $1 ORDER BY t.kind, t.topic, t.token"
                ))
                .bind(d)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(token_from_row).collect()
    }
}

/// Writes a call's record (the recorder calls this inside its batch transaction).
pub(crate) async fn insert_call<'e>(ex: impl Executor<'e, Database = Any>, info: &CallInfo) -> Result<(), StoreError> {
    let call_id = to_db("call_id", info.call_id.0)?;
    let started = to_db("started_ms", info.started_ms)?;
    let answered = info.answered_ms.map(|v| to_db("answered_ms", v)).transpose()?;
    // A record is written at the end; a snapshot without an end time (never expected)
    // is recorded as ending at its last known moment.
    let ended = to_db("ended_ms", info.ended_ms.or(info.answered_ms).unwrap_or(info.started_ms))?;
    let disposition = info.disposition.map(json_name).unwrap_or_else(|| if info.answered_ms.is_some() { "answered".into() } else { "failed".into() });
    let hangup_by = info.hangup_by.map(json_name);
    let recordings = serde_json::to_string(&info.recordings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO calls (call_id, domain, caller_uri, caller_user_id, caller_ext, caller_name, callee_uri, \
             callee_user_id, callee_ext, callee_name, started_ms, answered_ms, ended_ms, disposition, hangup_by, \
             caller_codec, callee_codec, recordings, api_originated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (call_id) DO UPDATE SET domain = excluded.domain, caller_uri = excluded.caller_uri, \
             caller_user_id = excluded.caller_user_id, caller_ext = excluded.caller_ext, caller_name = excluded.caller_name, \
             callee_uri = excluded.callee_uri, callee_user_id = excluded.callee_user_id, callee_ext = excluded.callee_ext, \
             callee_name = excluded.callee_name, started_ms = excluded.started_ms, answered_ms = excluded.answered_ms, \
             ended_ms = excluded.ended_ms, disposition = excluded.disposition, hangup_by = excluded.hangup_by, \
             caller_codec = excluded.caller_codec, callee_codec = excluded.callee_codec, recordings = excluded.recordings, \
             api_originated = excluded.api_originated",
    )
    .bind(call_id)
    .bind(info.domain.to_ascii_lowercase())
    .bind(info.caller.uri.as_str())
    .bind(info.caller.user_id)
    .bind(info.caller.ext.as_deref())
    .bind(info.caller.display_name.as_deref())
    .bind(info.callee.uri.as_str())
    .bind(info.callee.user_id)
    .bind(info.callee.ext.as_deref())
    .bind(info.callee.display_name.as_deref())
    .bind(started)
    .bind(answered)
    .bind(ended)
    .bind(disposition)
    .bind(hangup_by)
    .bind(info.caller_codec.as_deref())
    .bind(info.callee_codec.as_deref())
    .bind(recordings)
    .bind(i64::from(info.api_originated))
    .execute(ex)
    .await?;
    Ok(())
}

/// Call modes and who has push tokens, for the directory snapshot.
pub(crate) async fn load_user_extras(
    conn: &mut sqlx::AnyConnection,
) -> Result<(std::collections::HashMap<UserId, CallMode>, std::collections::HashSet<UserId>), StoreError> {
    let modes = sqlx::query("SELECT user_id, remote, device, ring_delay_s, vm_delay_s, assigned_device FROM call_modes")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get::<i64, _>("user_id")?, mode_from_row(row)?)))
        .collect::<Result<_, StoreError>>()?;
    let with_tokens = sqlx::query("SELECT DISTINCT user_id FROM push_tokens")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    Ok((modes, with_tokens))
}

/// Stores `token` for `user_id`, taking it from whoever had it: a token names one
/// device, so it belongs to whoever registered it last, as of now.
async fn upsert_push_token<'e>(
    ex: impl Executor<'e, Database = Any>,
    kind: &str,
    topic: &str,
    token: &str,
    user_id: UserId,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO push_tokens (kind, topic, token, user_id, created_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (kind, topic, token) DO UPDATE SET user_id = excluded.user_id, created_ms = excluded.created_ms",
    )
    .bind(kind)
    .bind(topic)
    .bind(token)
    .bind(user_id)
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(())
}

async fn select_call_mode<'e>(ex: impl Executor<'e, Database = Any>, user_id: UserId) -> Result<Option<CallMode>, StoreError> {
    let row = sqlx::query("SELECT user_id, remote, device, ring_delay_s, vm_delay_s, assigned_device FROM call_modes WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(mode_from_row).transpose()
}

fn mode_from_row(row: &AnyRow) -> Result<CallMode, StoreError> {
    Ok(CallMode {
        remote: row.try_get::<i64, _>("remote")? != 0,
        device: row.try_get("device")?,
        ring_delay_s: from_db("call_modes.ring_delay_s", row.try_get("ring_delay_s")?)?,
        vm_delay_s: from_db("call_modes.vm_delay_s", row.try_get("vm_delay_s")?)?,
        assigned_device: row.try_get("assigned_device")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<PushToken, StoreError> {
    Ok(PushToken {
        kind: row.try_get("kind")?,
        topic: row.try_get("topic")?,
        token: row.try_get("token")?,
        user_id: row.try_get("user_id")?,
        created_ms: from_db("push_tokens.created_ms", row.try_get("created_ms")?)?,
    })
}

fn call_from_row(row: &AnyRow) -> Result<CallRecordRow, StoreError> {
    let recordings: String = row.try_get("recordings")?;
    let party = |prefix: &str| -> Result<Party, StoreError> {
        Ok(Party {
            uri: row.try_get(format!("{prefix}_uri").as_str())?,
            user_id: row.try_get(format!("{prefix}_user_id").as_str())?,
            ext: row.try_get(format!("{prefix}_ext").as_str())?,
            display_name: row.try_get(format!("{prefix}_name").as_str())?,
        })
    };
    Ok(CallRecordRow {
        call_id: from_db("calls.call_id", row.try_get("call_id")?)?,
        domain: row.try_get("domain")?,
        caller: party("caller")?,
        callee: party("callee")?,
        started_ms: from_db("calls.started_ms", row.try_get("started_ms")?)?,
        answered_ms: opt_from_db("calls.answered_ms", row.try_get("answered_ms")?)?,
        ended_ms: from_db("calls.ended_ms", row.try_get("ended_ms")?)?,
        disposition: row.try_get("disposition")?,
        hangup_by: row.try_get("hangup_by")?,
        caller_codec: row.try_get("caller_codec")?,
        callee_codec: row.try_get("callee_codec")?,
        recordings: serde_json::from_str(&recordings).map_err(|e| StoreError::Corrupt(format!("calls.recordings: {e}")))?,
        api_originated: row.try_get::<i64, _>("api_originated")? != 0,
    })
}

/// An enum's name as its serde JSON gives it (`no_answer`, `callee`).
fn json_name<T: Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => format!("unnamed: {e}"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
