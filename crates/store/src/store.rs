//! The database: opening it, its schema, and every statement the server runs.
//!
//! Two backends behind one pool type (sqlx `Any`), chosen by the URL at run time:
//!
//! - SQLite by default: one file, `<data_dir>/switchboard.db`, in WAL mode with
//!   `synchronous = NORMAL`. WAL lets the APIs read history while the recorder writes
//!   (readers never wait for the writer), and a commit is an append to the log rather
//!   than an fsync of the database; after a power cut the last few commits may be lost
//!   but the file is never corrupt, which is the right trade for call records written
//!   from a background task. A writer that finds the file locked (another connection or
//!   process writing, e.g. the admin CLI beside a running server) waits up to
//!   [`BUSY_TIMEOUT`] before failing.
//! - PostgreSQL for `postgres://…` URLs (no TLS: meant for loopback or a socket).
//!
//! The schema lives in `migrations/` and is compiled into the binary
//! (`sqlx::migrate!`); opening a database applies whatever it lacks, so opening an
//! up-to-date database again changes nothing. One set of migrations serves both
//! backends because the SQL is portable: BIGINT for every integer (times in ms,
//! flags as 0/1), TEXT for the rest (binary as hex), `$n` placeholders, `ON CONFLICT
//! … DO UPDATE`, `RETURNING`, no AUTOINCREMENT or SERIAL (ids come from a counter
//! row, see [`crate::directory`]). The one backend-specific statement is the
//! generated multi-row INSERT of the recorder (`insert_legs_sql`).
//!
//! Statements use sqlx's plain query API, never the `query!` macros, so building
//! never needs a database.
//!
//! Write cost, from `examples/record_bench.rs` (2 shared cores): one leg per commit
//! runs at a few thousand legs/s; the recorder's batches (one transaction, 64 legs a
//! statement) at tens of thousands. The table's key is chosen for this too: see the
//! migration.

use crate::error::StoreError;
use crate::records::{CallRecord, RoomRecord};
use engine::{Direction, LegId, LegInfo, RoomInfo};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::AnyPool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Any, ConnectOptions, Connection, Executor, Row};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The database file inside the data directory.
pub const DB_FILE: &str = "switchboard.db";

/// How long a statement waits for another writer's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in a file database's pool. Writes are serialised by SQLite anyway;
/// more connections only let more reads run beside them.
const FILE_POOL_SIZE: u32 = 4;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections to a PostgreSQL server: it serves them in parallel, unlike SQLite's
/// one writer, but the server's own needs are modest (a recorder, the APIs, a poll).
const POSTGRES_POOL_SIZE: u32 = 8;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

/// One write the store can apply on its own or inside a batch (see [`Store::apply_batch`]).
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Leg { info: LegInfo, confid: Option<String> },
    RoomStarted(RoomInfo),
    RoomEnded { confid: String, ended_ms: u64, max_participants: u32 },
    BindingSaved(engine::users::Binding),
    BindingRemoved { user_id: engine::users::UserId, contact: String },
    /// A two-party call's record (crate::calls).
    Call(Box<engine::call::CallInfo>),
}

impl Store {
    /// Opens (creating it and the directory if needed) `<data_dir>/switchboard.db`,
    /// switches it to WAL mode and brings its schema up to date.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|source| StoreError::DataDir { path: data_dir.to_owned(), source })?;
        let options = SqliteConnectOptions::new().filename(data_dir.join(DB_FILE)).create_if_missing(true);
        Store::open_file(options).await
    }

    /// Opens a database by URL: `sqlite://PATH` (created if missing unless the URL
    /// sets `mode=`), `sqlite::memory:` for a private in-memory database that lives as
    /// long as this `Store` and its clones, or `postgres://USER@HOST:PORT/DB` (the
    /// database must exist; its schema is brought up to date).
    pub async fn open_url(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Store::open_postgres(url).await;
        }
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Store::open_memory(url).await;
        }
        let mut options = SqliteConnectOptions::from_str(url)?;
        if !url.contains("mode=") {
            options = options.create_if_missing(true);
        }
        Store::open_file(options).await
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn open_file(options: SqliteConnectOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let options = options.busy_timeout(BUSY_TIMEOUT);
        // WAL is a property of the file, and switching to it takes an exclusive lock
        // that busy_timeout cannot wait for: do it once, on one connection, before the
        // pool opens others (which then find the file in WAL mode already).
        let mut first = options.clone().journal_mode(SqliteJournalMode::Wal).connect().await?;
        MIGRATOR.run(&mut first).await?;
        first.close().await?;
        // The Any pool is configured by URL, which carries the file and its mode; the
        // busy timeout is sqlx's default (5 s, = BUSY_TIMEOUT) and the per-connection
        // pragma is set on every new connection.
        let any = AnyConnectOptions::from_url(&options.to_url_lossy())?;
        let pool = AnyPoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
            .connect_with(any)
            .await?;
        Ok(Store { pool, backend: Backend::Sqlite })
    }

    /// An in-memory database vanishes with its last connection, and SQLite's shared
    /// cache (how several connections would see one) reports lock conflicts at once
    /// instead of waiting: so exactly one connection, kept open for the pool's life.
    async fn open_memory(url: &str) -> Result<Store, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(AnyConnectOptions::from_str(url)?)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool, backend: Backend::Sqlite })
    }

    async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_POOL_SIZE)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(AnyConnectOptions::from_str(url)?)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool, backend: Backend::Postgres })
    }

    /// Closes every connection once its statement in progress is done, for a clean
    /// shutdown (the last connection to close checkpoints the write-ahead log into
    /// the database file). Every clone of this `Store` fails from then on. Dropping
    /// the last clone closes too, but without waiting.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes one leg's call detail record; `confid` is the room it was in, if any.
    /// Recording the same leg again (same `leg_id` and `started_ms`) replaces its
    /// record, keeping a known confid when the new one is `None`: a leg recorded
    /// while live and again at its end leaves one row.
    pub async fn record_leg(&self, leg: &LegInfo, confid: Option<&str>) -> Result<(), StoreError> {
        insert_legs(&self.pool, self.backend, &[LegRow::new(leg, confid)?]).await
    }

    /// Writes a room's history row as it starts. Recording the same start again
    /// (same confid and startts) only refreshes its descriptive fields.
    pub async fn record_room_started(&self, room: &RoomInfo) -> Result<(), StoreError> {
        insert_room(&self.pool, room).await
    }

    /// Closes the open row of room `confid` (the latest, should a previous run have
    /// left one open too). [`StoreError::UnknownRoom`] when there is none.
    pub async fn record_room_ended(
        &self,
        confid: &str,
        ended_ms: u64,
        max_participants: u32,
    ) -> Result<(), StoreError> {
        end_room(&self.pool, confid, ended_ms, max_participants).await
    }

    /// Marks every room still open as ended at `ended_ms`; returns how many. Run at
    /// startup, this closes the rooms a previous run left open when it stopped
    /// without ending them (a crash, a kill).
    pub async fn close_open_rooms(&self, ended_ms: u64) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE rooms SET ended_ms = $1 WHERE ended_ms IS NULL")
            .bind(to_db("ended_ms", ended_ms)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Call records, newest start first, at most `limit` of them. `before_ms` pages
    /// back: only legs that started strictly before it (pass the last page's oldest
    /// `started_ms`; legs sharing that very millisecond with it are then skipped).
    pub async fn recent_calls(&self, limit: u32, before_ms: Option<u64>) -> Result<Vec<CallRecord>, StoreError> {
        const COLUMNS: &str = "SELECT leg_id, call_id, direction, service, remote_uri, local_uri, local_tag, \
             remote_tag, started_ms, answered_ms, ended_ms, end_status, end_reason, codec, confid FROM call_records";
        const ORDER: &str = "ORDER BY started_ms DESC, leg_id DESC LIMIT $1";
        let rows = match before_ms {
            None => sqlx::query(&format!("{COLUMNS} {ORDER}")).bind(i64::from(limit)).fetch_all(&self.pool).await?,
            Some(before) => {
                sqlx::query(&format!("{COLUMNS} WHERE started_ms < $2 {ORDER}"))
                    .bind(i64::from(limit))
                    .bind(to_db("before_ms", before)?)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(call_from_row).collect()
    }

    /// Rooms, newest start first, at most `limit` of them.
    pub async fn rooms_history(&self, limit: u32) -> Result<Vec<RoomRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT confid, confnumber, confroomnum, confuri, site, startts, ended_ms, max_participants \
             FROM rooms ORDER BY startts DESC, confid DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(room_from_row).collect()
    }

    /// Applies `writes` in one transaction, the legs among them [`LEGS_PER_INSERT`]
    /// to a statement: a commit costs far more than a row, and a statement far more
    /// than a row in it, so this is what lets the recorder catch up after a burst.
    /// A write that is wrong on its own (a value out of range, an end for an unknown
    /// room) is skipped and reported by index in the `Ok` list without spoiling the
    /// rest; `Err` means the database failed and nothing of the batch was written.
    pub(crate) async fn apply_batch(&self, writes: &[Write]) -> Result<Vec<(usize, StoreError)>, StoreError> {
        let mut rejected = Vec::new();
        let mut legs = Vec::new();
        for (i, write) in writes.iter().enumerate() {
            if let Write::Leg { info, confid } = write {
                match LegRow::new(info, confid.as_deref()) {
                    Ok(row) => legs.push(row),
                    Err(e) => rejected.push((i, e)),
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        // Rooms, bindings and calls in queue order (a start before its end, a save before its
        // removal); legs do not depend on them.
        for (i, write) in writes.iter().enumerate() {
            let result = match write {
                Write::Leg { .. } => continue,
                Write::RoomStarted(room) => insert_room(&mut *tx, room).await,
                Write::BindingSaved(b) => crate::directory::save_binding(&mut *tx, b).await,
                Write::BindingRemoved { user_id, contact } => {
                    crate::directory::delete_binding(&mut *tx, *user_id, contact).await
                }
                Write::RoomEnded { confid, ended_ms, max_participants } => {
                    end_room(&mut *tx, confid, *ended_ms, *max_participants).await
                }
                Write::Call(info) => crate::calls::insert_call(&mut *tx, info).await,
            };
            match result {
                Ok(()) => {}
                Err(e @ (StoreError::OutOfRange { .. } | StoreError::UnknownRoom(_))) => rejected.push((i, e)),
                Err(e) => return Err(e), // dropping `tx` rolls it back
            }
        }
        for chunk in statement_chunks(&legs) {
            insert_legs(&mut *tx, self.backend, chunk).await?;
        }
        tx.commit().await?;
        rejected.sort_by_key(|(i, _)| *i);
        Ok(rejected)
    }
}

/// A leg's values converted for the database, borrowed from its `LegInfo`.
struct LegRow<'a> {
    leg: &'a LegInfo,
    confid: Option<&'a str>,
    direction: &'static str,
    service: String,
    started_ms: i64,
    answered_ms: Option<i64>,
    ended_ms: Option<i64>,
}

impl<'a> LegRow<'a> {
    fn new(leg: &'a LegInfo, confid: Option<&'a str>) -> Result<LegRow<'a>, StoreError> {
        Ok(LegRow {
            leg,
            confid,
            direction: match leg.direction {
                Direction::Inbound => "inbound",
                Direction::Outbound => "outbound",
            },
            service: service_name(&leg.service),
            started_ms: to_db("started_ms", leg.started_ms)?,
            answered_ms: leg.answered_ms.map(|v| to_db("answered_ms", v)).transpose()?,
            ended_ms: leg.ended_ms.map(|v| to_db("ended_ms", v)).transpose()?,
        })
    }
}

/// The service's name as the engine serialises it (`"echo"`); a service that carries
/// data (should one appear) is stored as its compact JSON.
fn service_name(service: &engine::Service) -> String {
    match serde_json::to_value(service) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => format!("{service:?}"),
    }
}

/// Most legs in one INSERT: 64 rows of 15 parameters stays under SQLite's oldest
/// limit of 999 parameters a statement (and far under PostgreSQL's 65535).
pub const LEGS_PER_INSERT: usize = 64;

const LEG_COLUMNS: usize = 15;

/// `rows` of at most [`LEGS_PER_INSERT`] consecutive legs, none twice in one slice
/// (PostgreSQL refuses to upsert one row twice in a statement; a repeat starts the
/// next slice, which then sees the earlier row as SQLite would).
fn statement_chunks<'r, 'a>(rows: &'r [LegRow<'a>]) -> impl Iterator<Item = &'r [LegRow<'a>]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut ids = std::collections::HashSet::new();
        let len = rest.iter().take(LEGS_PER_INSERT).take_while(|row| ids.insert(row.leg.leg_id.0.as_str())).count();
        let (chunk, after) = rest.split_at(len);
        rest = after;
        Some(chunk)
    })
}

/// `INSERT … VALUES (?, … ?), (?, … ?) … ON CONFLICT …` for `rows` rows.
///
/// On SQLite, anonymous `?` placeholders, unlike the `$n` of every other statement
/// here: to bind a `$n`, sqlx asks SQLite each parameter's name, a linear search, so
/// binding 960 numbered parameters was two thirds of the recorder's CPU time.
/// PostgreSQL knows only `$n` (and its names cost nothing).
fn insert_legs_sql(rows: usize, backend: Backend) -> String {
    let mut sql = String::with_capacity(700 + rows * 50);
    sql.push_str(
        "INSERT INTO call_records (leg_id, call_id, direction, service, remote_uri, local_uri, local_tag, \
             remote_tag, started_ms, answered_ms, ended_ms, end_status, end_reason, codec, confid) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..LEG_COLUMNS {
            if col > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    use std::fmt::Write as _;
                    let _ = write!(sql, "${}", row * LEG_COLUMNS + col + 1);
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(
        " ON CONFLICT (started_ms, leg_id) DO UPDATE SET call_id = excluded.call_id, direction = excluded.direction, \
             service = excluded.service, remote_uri = excluded.remote_uri, local_uri = excluded.local_uri, \
             local_tag = excluded.local_tag, remote_tag = excluded.remote_tag, answered_ms = excluded.answered_ms, \
             ended_ms = excluded.ended_ms, end_status = excluded.end_status, end_reason = excluded.end_reason, codec = excluded.codec, \
             confid = COALESCE(excluded.confid, call_records.confid)",
    );
    sql
}

/// Writes (or rewrites) `rows` in one statement; see [`statement_chunks`] for the limits.
async fn insert_legs<'e>(
    ex: impl Executor<'e, Database = Any>,
    backend: Backend,
    rows: &[LegRow<'_>],
) -> Result<(), StoreError> {
    debug_assert!(!rows.is_empty() && rows.len() <= LEGS_PER_INSERT);
    let sql = insert_legs_sql(rows.len(), backend);
    let mut query = sqlx::query(&sql);
    for row in rows {
        let leg = row.leg;
        query = query
            .bind(leg.leg_id.0.as_str())
            .bind(leg.call_id.as_str())
            .bind(row.direction)
            .bind(row.service.as_str())
            .bind(leg.remote_uri.as_str())
            .bind(leg.local_uri.as_str())
            .bind(leg.local_tag.as_deref())
            .bind(leg.remote_tag.as_deref())
            .bind(row.started_ms)
            .bind(row.answered_ms)
            .bind(row.ended_ms)
            .bind(leg.end_status.map(i64::from))
            .bind(leg.end_reason.as_deref())
            .bind(leg.codec.as_deref())
            .bind(row.confid);
    }
    query.execute(ex).await?;
    Ok(())
}

async fn insert_room<'e>(ex: impl Executor<'e, Database = Any>, room: &RoomInfo) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rooms (confid, confnumber, confroomnum, confuri, site, startts) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (confid, startts) DO UPDATE SET confnumber = excluded.confnumber, \
             confroomnum = excluded.confroomnum, confuri = excluded.confuri, site = excluded.site",
    )
    .bind(room.confid.as_str())
    .bind(room.confnumber.as_str())
    .bind(room.confroomnum.as_str())
    .bind(room.confuri.as_str())
    .bind(room.site.as_str())
    .bind(to_db("startts", room.startts)?)
    .execute(ex)
    .await?;
    Ok(())
}

async fn end_room<'e>(
    ex: impl Executor<'e, Database = Any>,
    confid: &str,
    ended_ms: u64,
    max_participants: u32,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE rooms SET ended_ms = $1, max_participants = $2 \
         WHERE confid = $3 AND ended_ms IS NULL \
           AND startts = (SELECT MAX(startts) FROM rooms WHERE confid = $3 AND ended_ms IS NULL)",
    )
    .bind(to_db("ended_ms", ended_ms)?)
    .bind(i64::from(max_participants))
    .bind(confid)
    .execute(ex)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::UnknownRoom(confid.to_owned()));
    }
    Ok(())
}

fn call_from_row(row: &AnyRow) -> Result<CallRecord, StoreError> {
    let direction: String = row.try_get("direction")?;
    Ok(CallRecord {
        leg_id: LegId(row.try_get("leg_id")?),
        call_id: row.try_get("call_id")?,
        direction: match direction.as_str() {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            other => return Err(StoreError::Corrupt(format!("call_records.direction = {other:?}"))),
        },
        service: row.try_get("service")?,
        remote_uri: row.try_get("remote_uri")?,
        local_uri: row.try_get("local_uri")?,
        local_tag: row.try_get("local_tag")?,
        remote_tag: row.try_get("remote_tag")?,
        started_ms: from_db("call_records.started_ms", row.try_get("started_ms")?)?,
        answered_ms: opt_from_db("call_records.answered_ms", row.try_get("answered_ms")?)?,
        ended_ms: opt_from_db("call_records.ended_ms", row.try_get("ended_ms")?)?,
        end_status: opt_from_db("call_records.end_status", row.try_get("end_status")?)?,
        end_reason: row.try_get("end_reason")?,
        codec: row.try_get("codec")?,
        confid: row.try_get("confid")?,
    })
}

fn room_from_row(row: &AnyRow) -> Result<RoomRecord, StoreError> {
    Ok(RoomRecord {
        confid: row.try_get("confid")?,
        confnumber: row.try_get("confnumber")?,
        confroomnum: row.try_get("confroomnum")?,
        confuri: row.try_get("confuri")?,
        site: row.try_get("site")?,
        startts: from_db("rooms.startts", row.try_get("startts")?)?,
        ended_ms: opt_from_db("rooms.ended_ms", row.try_get("ended_ms")?)?,
        max_participants: from_db("rooms.max_participants", row.try_get("max_participants")?)?,
    })
}

/// Databases have signed 64-bit integers only.
pub(crate) fn to_db(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field, value })
}

pub(crate) fn from_db<T: TryFrom<i64>>(column: &str, value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
}

pub(crate) fn opt_from_db<T: TryFrom<i64>>(column: &str, value: Option<i64>) -> Result<Option<T>, StoreError> {
    value.map(|v| from_db(column, v)).transpose()
}
