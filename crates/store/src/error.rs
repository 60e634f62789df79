//! The one error type of the store.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    /// `open_url` was given a URL this build has no driver for.
    #[error("unsupported database URL {0:?}: expected sqlite:PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    /// The database refused or failed a statement (I/O, lock timeout, constraint…).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date (e.g. an applied migration differs
    /// from the one compiled in, or the database is newer than this build).
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value does not fit the database's signed 64-bit integers.
    #[error("{field} = {value} is out of range for the database")]
    OutOfRange { field: &'static str, value: u64 },
    /// `record_room_ended` for a room with no open row (never recorded as started,
    /// e.g. because the recorder dropped that event, or already ended).
    #[error("no open room {0:?} to end")]
    UnknownRoom(String),
    /// The named object (domain, user, app, key…) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An object with that name (or login, extension, client id…) exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A value was refused by validation (bad hostname, login, extension, number…).
    #[error("{0}")]
    Invalid(String),
    /// The object is still used by others (e.g. a domain that has users).
    #[error("{0}")]
    InUse(String),
    /// A stored row holds something this build cannot read back.
    #[error("unreadable row: {0}")]
    Corrupt(String),
}
