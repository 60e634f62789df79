//! The background recorder: it drains what it is given (on SQLite and PostgreSQL),
//! and a full queue costs records, never time.

mod common;

use common::{TestDb, data_dir, ended_leg, numbered_room, room, room_leg};
use engine::{EngineEvent, LegId};
use sqlx::{Connection, SqliteConnection};
use std::time::{Duration, Instant};
use store::{spawn_recorder, spawn_recorder_with_capacity, RecorderStats, Store};

// Each runs on SQLite and on PostgreSQL (tests/common: both_backends!).
both_backends!(
    the_recorder_writes_every_ended_leg_and_ignores_the_rest,
    rooms_through_the_recorder_and_a_bad_write_spoils_nothing_else,
    room_legs_get_their_rooms_confid,
    two_domains_rooms_with_one_number_keep_their_own_legs,
    repeats_and_big_batches_are_written_like_single_writes,
);

/// Room numbers are per domain: alpha's room 100 and beta's room 100 are open at once,
/// and each one's legs get its own confid.
async fn two_domains_rooms_with_one_number_keep_their_own_legs(db: &TestDb) {
    let store = &db.store;
    let (recorder, writer) = spawn_recorder(store.clone());
    let in_domain = |r: engine::RoomInfo, d: &str| engine::RoomInfo { domain: d.into(), ..r };
    let alpha = in_domain(numbered_room("ALPHA1", "100", 1_000), "alpha.test");
    let beta = in_domain(numbered_room("BETA01", "100", 1_100), "beta.test");
    let leg = |n: u32, d: &str| engine::LegInfo { domain: d.into(), ..room_leg(n, "100", 1_200) };
    for ev in [
        EngineEvent::RoomStarted(alpha.clone()),
        EngineEvent::RoomStarted(beta.clone()),
        EngineEvent::LegEnded(leg(1, "beta.test")),
        EngineEvent::LegEnded(leg(2, "alpha.test")),
    ] {
        assert!(recorder.record(&ev));
    }
    drop(recorder);
    writer.await.unwrap();
    let mut confids: Vec<(String, Option<String>)> =
        store.recent_calls(10, None).await.unwrap().into_iter().map(|c| (c.leg_id.0, c.confid)).collect();
    confids.sort();
    assert_eq!(confids, [("leg-000001".to_owned(), Some(beta.confid.clone())), ("leg-000002".to_owned(), Some(alpha.confid.clone()))]);
}

async fn the_recorder_writes_every_ended_leg_and_ignores_the_rest(db: &TestDb) {
    let store = &db.store;
    let (recorder, writer) = spawn_recorder(store.clone());
    for n in 0..1_000u32 {
        let leg = ended_leg(n, 1_000 + u64::from(n));
        assert!(recorder.record(&EngineEvent::LegStarted(leg.clone())));
        assert!(recorder.record(&EngineEvent::LegAnswered(leg.clone())));
        assert!(recorder.record(&EngineEvent::Dtmf { leg_id: LegId(format!("leg-{n}")), digit: '5', duration_ms: 80, domain: "switchboard.local".into() }));
        assert!(recorder.record(&EngineEvent::LegEnded(leg)));
        if n % 100 == 0 {
            tokio::task::yield_now().await; // let the writer take batches as they come
        }
    }
    let clone = recorder.clone();
    drop(recorder);
    // The writer keeps going while any clone lives.
    assert!(clone.leg_ended(&ended_leg(5_000, 999), Some("rCF-node1-ZZZZZZ")));
    let stats_before_close = clone.stats();
    drop(clone);
    writer.await.expect("writer task");

    assert_eq!(stats_before_close.queued, 1_001);
    assert_eq!(stats_before_close.dropped, 0);
    let calls = store.recent_calls(5_000, None).await.unwrap();
    assert_eq!(calls.len(), 1_001);
    assert_eq!(calls[0].started_ms, 1_999);
    assert_eq!(calls.last().unwrap().confid.as_deref(), Some("rCF-node1-ZZZZZZ"));
}

async fn rooms_through_the_recorder_and_a_bad_write_spoils_nothing_else(db: &TestDb) {
    let store = &db.store;
    let (recorder, writer) = spawn_recorder(store.clone());
    let a = room("AAAAAA", 1_000);
    // All queued before the writer runs (current-thread runtime): one batch.
    recorder.room_started(&a);
    recorder.leg_ended(&ended_leg(1, 1_100), Some(&a.confid));
    recorder.room_ended("rCF-node1-NEVER1", 3_000, 1); // unknown room: fails alone
    let mut huge = ended_leg(2, 1_200);
    huge.answered_ms = Some(u64::MAX); // out of range: fails alone
    recorder.leg_ended(&huge, None);
    recorder.room_ended(&a.confid, 2_000, 4);
    let stats = loop {
        let stats = recorder.stats();
        if stats.written + stats.failed == stats.queued {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    drop(recorder);
    writer.await.unwrap();

    assert_eq!(stats, RecorderStats { queued: 5, dropped: 0, written: 3, failed: 2 });
    let rooms = store.rooms_history(10).await.unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!((rooms[0].ended_ms, rooms[0].max_participants), (Some(2_000), 4));
    let calls = store.recent_calls(10, None).await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].confid.as_deref(), Some(a.confid.as_str()));
}

/// The engine's own order of events for a room's life: the room's end comes just
/// before its last participant's leg end. Every room leg gets its room's confid.
async fn room_legs_get_their_rooms_confid(db: &TestDb) {
    let store = &db.store;
    let (recorder, writer) = spawn_recorder(store.clone());
    let first = numbered_room("FIRST1", "4711", 1_000);
    let other = numbered_room("OTHER1", "100", 1_500);
    let again = numbered_room("AGAIN1", "4711", 9_000);
    let events = [
        EngineEvent::RoomStarted(first.clone()),
        EngineEvent::RoomStarted(other.clone()),
        EngineEvent::LegEnded(room_leg(1, "4711", 1_000)), // left while others stayed
        EngineEvent::LegEnded(room_leg(2, "100", 1_500)),
        EngineEvent::RoomEnded { info: first.clone(), ended_ms: 8_000, max_participants: 2 },
        EngineEvent::LegEnded(room_leg(3, "4711", 1_100)), // the last one out
        EngineEvent::RoomStarted(again.clone()),           // the same number, a new room
        EngineEvent::LegEnded(room_leg(4, "4711", 9_000)),
        EngineEvent::LegEnded(room_leg(5, "999", 9_500)), // a room never seen
        EngineEvent::LegEnded(ended_leg(6, 9_600)),       // not a room leg
    ];
    for (i, ev) in events.iter().enumerate() {
        assert!(recorder.record(ev));
        if i % 3 == 0 {
            tokio::task::yield_now().await; // spread them over several batches
        }
    }
    drop(recorder);
    writer.await.unwrap();

    let mut confids: Vec<(String, Option<String>)> =
        store.recent_calls(10, None).await.unwrap().into_iter().map(|c| (c.leg_id.0, c.confid)).collect();
    confids.sort();
    let confid = |r: &engine::RoomInfo| Some(r.confid.clone());
    assert_eq!(
        confids,
        [
            ("leg-000001".to_owned(), confid(&first)),
            ("leg-000002".to_owned(), confid(&other)),
            ("leg-000003".to_owned(), confid(&first)),
            ("leg-000004".to_owned(), confid(&again)),
            ("leg-000005".to_owned(), None),
            ("leg-000006".to_owned(), None),
        ]
    );
    let rooms = store.rooms_history(10).await.unwrap();
    assert_eq!(rooms.len(), 3);
    assert_eq!(rooms.iter().find(|r| r.confid == first.confid).unwrap().ended_ms, Some(8_000));
    let service = &store
        .recent_calls(10, None)
        .await
        .unwrap()
        .iter()
        .find(|c| c.leg_id.0 == "leg-000004")
        .unwrap()
        .service
        .clone();
    assert_eq!(service, r#"{"room":"4711"}"#);
}

/// One leg recorded twice in one batch (the lead may record a live leg with its room,
/// then its end without): one row, the latest values, the room kept; and batches
/// bigger than one statement's worth of legs.
async fn repeats_and_big_batches_are_written_like_single_writes(db: &TestDb) {
    let store = &db.store;
    let (recorder, writer) = spawn_recorder(store.clone());
    let mut live = ended_leg(1, 1_000);
    live.ended_ms = None;
    recorder.leg_ended(&live, Some("rCF-node1-ROOM01"));
    for n in 2..=200 {
        recorder.record(&EngineEvent::LegEnded(ended_leg(n, 1_000 + u64::from(n))));
        if n == 10 {
            recorder.record(&EngineEvent::LegEnded(ended_leg(1, 1_000))); // within one statement's worth
        }
    }
    drop(recorder);
    writer.await.unwrap();

    let calls = store.recent_calls(1_000, None).await.unwrap();
    assert_eq!(calls.len(), 200);
    let first = calls.iter().find(|c| c.leg_id.0 == "leg-000001").unwrap();
    assert_eq!(first.ended_ms, Some(31_000));
    assert_eq!(first.confid.as_deref(), Some("rCF-node1-ROOM01"));
    for n in 2..=200u32 {
        let call = calls.iter().find(|c| c.leg_id.0 == format!("leg-{n:06}")).unwrap();
        assert_eq!(call, &expected_record(&ended_leg(n, 1_000 + u64::from(n))));
    }
}

fn expected_record(leg: &engine::LegInfo) -> store::CallRecord {
    store::CallRecord {
        leg_id: leg.leg_id.clone(),
        call_id: leg.call_id.clone(),
        direction: leg.direction,
        service: "echo".into(),
        remote_uri: leg.remote_uri.clone(),
        local_uri: leg.local_uri.clone(),
        local_tag: leg.local_tag.clone(),
        remote_tag: leg.remote_tag.clone(),
        started_ms: leg.started_ms,
        answered_ms: leg.answered_ms,
        ended_ms: leg.ended_ms,
        end_status: leg.end_status,
        end_reason: leg.end_reason.clone(),
        codec: leg.codec.clone(),
        confid: None,
    }
}

/// On a current-thread runtime the writer cannot run until the test awaits, so the
/// queue's arithmetic is exact.
#[tokio::test]
async fn a_full_queue_drops_and_counts_exactly_what_does_not_fit() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    let (recorder, writer) = spawn_recorder_with_capacity(store.clone(), 8);
    let accepted: Vec<bool> =
        (0..20u32).map(|n| recorder.record(&EngineEvent::LegEnded(ended_leg(n, 1_000 + u64::from(n))))).collect();
    assert_eq!(accepted.iter().filter(|a| **a).count(), 8);
    assert!(accepted[..8].iter().all(|a| *a) && accepted[8..].iter().all(|a| !*a));
    assert_eq!(recorder.stats(), RecorderStats { queued: 8, dropped: 12, written: 0, failed: 0 });

    // Once it drains, there is room again.
    while recorder.stats().written < 8 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(recorder.record(&EngineEvent::LegEnded(ended_leg(100, 5_000))));
    drop(recorder);
    writer.await.unwrap();
    assert_eq!(store.recent_calls(100, None).await.unwrap().len(), 9);
}

/// A database stalled by another writer's lock: the recorder's writer waits on it,
/// the queue fills, and `record` still returns, every time, without writing. (How
/// fast it returns is `examples/record_bench.rs`'s business, not a test's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_never_waits_on_a_stalled_database() {
    const CAPACITY: usize = 64;
    const OFFERS: u32 = 20_000;

    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    // Another connection takes the write lock and sits on it until every offer has
    // returned (in WAL mode readers go on; writers wait up to BUSY_TIMEOUT).
    let url = format!("sqlite://{}", dir.path.join("switchboard.db").display());
    let mut blocker = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();
    let stalled_at = Instant::now();

    let (recorder, writer) = spawn_recorder_with_capacity(store.clone(), CAPACITY);
    for n in 0..OFFERS {
        recorder.record(&EngineEvent::LegEnded(ended_leg(n, 1_000 + u64::from(n))));
    }
    let stats = recorder.stats();
    eprintln!("{OFFERS} offers to a stalled recorder: {stats:?}");

    // Every offer returned while the lock was held, none was written, and each one
    // was queued or dropped: `record` did not wait for the database.
    assert_eq!(stats.written, 0);
    assert_eq!(stats.queued + stats.dropped, u64::from(OFFERS));
    // The queue, plus at most one batch the writer took out before it stalled.
    assert!(stats.queued >= CAPACITY as u64 && stats.queued <= (CAPACITY + store::recorder::MAX_BATCH) as u64);

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    let held = stalled_at.elapsed();
    blocker.close().await.unwrap();

    // Once the lock is gone the writer catches up: every queued record is written, or
    // counted failed, which the writer may do only if the stall outlasted its
    // statement's BUSY_TIMEOUT (a machine slow enough to take that long over the
    // offers; then the batch it was holding is lost, and counted).
    let deadline = Instant::now() + Duration::from_secs(60);
    let end = loop {
        let now = recorder.stats();
        if now.written + now.failed >= stats.queued {
            break now;
        }
        assert!(Instant::now() < deadline, "the writer did not catch up after the stall: {now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(end.written + end.failed, stats.queued, "{end:?}");
    assert!(end.failed == 0 || held >= store::store::BUSY_TIMEOUT, "writes failed after a {held:?} stall: {end:?}");

    drop(recorder);
    writer.await.unwrap();
    let written = store.recent_calls(OFFERS, None).await.unwrap().len() as u64;
    assert_eq!(written, end.written);
}

#[tokio::test]
async fn a_stopped_writer_turns_records_into_drops_not_errors() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    let (recorder, writer) = spawn_recorder(store);
    writer.abort();
    let _ = writer.await;
    assert!(!recorder.record(&EngineEvent::LegEnded(ended_leg(1, 1_000))));
    assert_eq!(recorder.stats().dropped, 1);
}
