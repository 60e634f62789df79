//! Legs and rooms for the store's tests, and a fresh data directory for each test.
#![allow(dead_code)]

use engine::{Direction, LegId, LegInfo, LegState, RoomInfo, Service};

/// A fresh temporary data directory (removed when dropped); the store's file goes
/// in a subdirectory that does not exist yet, as on a first start.
pub struct DataDir {
    _tmp: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

pub fn data_dir() -> DataDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("data");
    DataDir { _tmp: tmp, path }
}

/// An ended inbound echo leg, answered and hung up by the caller; `n` makes its ids unique.
pub fn ended_leg(n: u32, started_ms: u64) -> LegInfo {
    LegInfo {
        leg_id: LegId(format!("leg-{n:06}")),
        call_id: format!("call-{n}@client.example"),
        direction: Direction::Inbound,
        state: LegState::Ended,
        service: Service::Echo,
        remote_uri: format!("sip:alice{n}@client.example"),
        local_uri: "sip:echo@switchboard.local".into(),
        local_tag: Some(format!("lt{n}")),
        remote_tag: Some(format!("rt{n}")),
        started_ms,
        answered_ms: Some(started_ms + 120),
        ended_ms: Some(started_ms + 30_000),
        end_status: Some(200),
        end_reason: Some("BYE".into()),
        codec: Some("PCMU".into()),
        domain: "switchboard.local".into(),
    }
}

/// An outbound `ring` leg cancelled before answer: every optional field empty.
pub fn cancelled_leg(n: u32, started_ms: u64) -> LegInfo {
    LegInfo {
        leg_id: LegId(format!("leg-{n:06}")),
        call_id: format!("out-{n}@switchboard.local"),
        direction: Direction::Outbound,
        state: LegState::Ended,
        service: Service::Ring,
        remote_uri: "sip:bob@10.0.0.5".into(),
        local_uri: "sip:switchboard@switchboard.local".into(),
        local_tag: Some("ours".into()),
        remote_tag: None,
        started_ms,
        answered_ms: None,
        ended_ms: Some(started_ms + 5_000),
        end_status: Some(487),
        end_reason: Some("Request Terminated".into()),
        codec: None,
        domain: "switchboard.local".into(),
    }
}

/// Room number 4711.
pub fn room(confnumber: &str, startts: u64) -> RoomInfo {
    numbered_room(confnumber, "4711", startts)
}

pub fn numbered_room(confnumber: &str, number: &str, startts: u64) -> RoomInfo {
    RoomInfo {
        confid: format!("rCF-node1-{confnumber}"),
        confnumber: confnumber.into(),
        confroomnum: number.into(),
        confuri: format!("<sip:conf-{number}@switchboard.local>"),
        site: "main".into(),
        startts,
        domain: "switchboard.local".into(),
    }
}

/// An ended leg of a participant who dialled room `number`.
pub fn room_leg(n: u32, number: &str, started_ms: u64) -> LegInfo {
    LegInfo {
        service: Service::Room(number.into()),
        local_uri: format!("sip:conf-{number}@switchboard.local"),
        ..ended_leg(n, started_ms)
    }
}

/// A store on a fresh database of one backend, and the URL to open it again.
/// SQLite: a file in a temporary directory. PostgreSQL: a new database on the server
/// of `SWITCHBOARD_TEST_POSTGRES_URL`, dropped when this is dropped.
pub struct TestDb {
    pub store: store::Store,
    pub url: String,
    _dir: Option<DataDir>,
    pg: Option<(String, String)>,
}

pub async fn sqlite_db() -> TestDb {
    let dir = data_dir();
    let store = store::Store::open(&dir.path).await.expect("open sqlite");
    let url = format!("sqlite://{}", dir.path.join("switchboard.db").display());
    TestDb { store, url, _dir: Some(dir), pg: None }
}

/// The PostgreSQL server the tests use, or None to skip them (only when
/// `SWITCHBOARD_TEST_SKIP_POSTGRES=1` and not under CI). Anything else without a
/// server fails, saying how to get one.
pub fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") {
        if !url.is_empty() {
            return Some(url);
        }
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let skip = std::env::var("SWITCHBOARD_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1");
    if ci {
        panic!(
            "SWITCHBOARD_TEST_POSTGRES_URL is not set, and under CI the PostgreSQL tests must run: \
             run the tests through scripts/with-postgres (scripts/test does), or set it to a server's URL, \
             e.g. postgres://postgres@127.0.0.1:5432/postgres"
        );
    }
    if skip {
        eprintln!("SWITCHBOARD_TEST_SKIP_POSTGRES=1: PostgreSQL test skipped");
        return None;
    }
    panic!(
        "SWITCHBOARD_TEST_POSTGRES_URL is not set: run through scripts/with-postgres (e.g. \
         `scripts/with-postgres cargo test -p store`), set it to a PostgreSQL server's URL \
         (postgres://postgres@127.0.0.1:5432/postgres; the tests create and drop their own databases), \
         or set SWITCHBOARD_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
    );
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    let host_end = rest.find('/').map(|i| base.len() - rest.len() + i).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub async fn postgres_db() -> Option<TestDb> {
    use sqlx::Connection;
    let admin = postgres_url()?;
    let name = format!("sbtest_{}_{}", std::process::id(), rand_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to SWITCHBOARD_TEST_POSTGRES_URL");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
    conn.close().await.ok();
    let url = with_database(&admin, &name);
    let store = store::Store::open_url(&url).await.expect("open postgres");
    Some(TestDb { store, url, _dir: None, pg: Some((admin, name)) })
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}_{}", N.fetch_add(1, Ordering::Relaxed), nanos)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs inside the test's runtime, which cannot block on itself: a
            // thread with its own runtime drops the database (FORCE ends any connection
            // the store's pool still holds).
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::Executor::execute(&mut conn, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                        let _ = conn.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// `both_backends!(a, b)` makes modules `a` and `b`, each with tests `sqlite` and
/// `postgres` that run `async fn a(db: &TestDb)` on a fresh database of that backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::sqlite_db().await;
                super::$name(&db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::common::postgres_db().await {
                    super::$name(&db).await;
                }
            }
        }
    )*};
}
