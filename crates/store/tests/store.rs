//! The store against a real SQLite file in a temporary directory.

mod common;

use common::{cancelled_leg, data_dir, ended_leg, room};
use engine::Direction;
use store::{Store, StoreError};

#[tokio::test]
async fn open_creates_the_file_in_wal_mode_and_reopening_keeps_data() {
    let dir = data_dir();
    assert!(!dir.path.exists());
    let store = Store::open(&dir.path).await.expect("first open");
    assert!(dir.path.join("switchboard.db").is_file());
    store.record_leg(&ended_leg(1, 1_000), None).await.unwrap();
    // A write in WAL mode goes to the log beside the database.
    assert!(dir.path.join("switchboard.db-wal").is_file(), "WAL mode");

    // A second open while the first is live finds the schema applied: no-op migration.
    let again = Store::open(&dir.path).await.expect("second open");
    assert_eq!(again.recent_calls(10, None).await.unwrap().len(), 1);
    store.close().await;
    again.close().await;

    let reopened = Store::open(&dir.path).await.expect("reopen");
    let calls = reopened.recent_calls(10, None).await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].leg_id.0, "leg-000001");

    // Closed, a store refuses; the data is on disk for the next open.
    reopened.close().await;
    assert!(reopened.recent_calls(10, None).await.is_err());
    assert_eq!(Store::open(&dir.path).await.unwrap().recent_calls(10, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_leg_reads_back_as_recorded() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    let answered = ended_leg(1, 1_700_000_000_000);
    let cancelled = cancelled_leg(2, 1_700_000_001_000);
    store.record_leg(&answered, Some("rCF-node1-ABC123")).await.unwrap();
    store.record_leg(&cancelled, None).await.unwrap();

    let calls = store.recent_calls(10, None).await.unwrap();
    assert_eq!(calls.len(), 2);
    let (c, a) = (&calls[0], &calls[1]);

    assert_eq!(a.leg_id, answered.leg_id);
    assert_eq!(a.call_id, answered.call_id);
    assert_eq!(a.direction, Direction::Inbound);
    assert_eq!(a.service, "echo");
    assert_eq!(a.remote_uri, answered.remote_uri);
    assert_eq!(a.local_uri, answered.local_uri);
    assert_eq!(a.local_tag, answered.local_tag);
    assert_eq!(a.remote_tag, answered.remote_tag);
    assert_eq!(a.started_ms, answered.started_ms);
    assert_eq!(a.answered_ms, answered.answered_ms);
    assert_eq!(a.ended_ms, answered.ended_ms);
    assert_eq!(a.end_status, Some(200));
    assert_eq!(a.end_reason.as_deref(), Some("BYE"));
    assert_eq!(a.codec.as_deref(), Some("PCMU"));
    assert_eq!(a.confid.as_deref(), Some("rCF-node1-ABC123"));

    assert_eq!(c.leg_id, cancelled.leg_id);
    assert_eq!(c.direction, Direction::Outbound);
    assert_eq!(c.service, "ring");
    assert_eq!(c.remote_tag, None);
    assert_eq!(c.answered_ms, None);
    assert_eq!(c.end_status, Some(487));
    assert_eq!(c.codec, None);
    assert_eq!(c.confid, None);

    // As the APIs will show it.
    let json = serde_json::to_value(a).unwrap();
    assert_eq!(json["leg_id"], "leg-000001");
    assert_eq!(json["direction"], "inbound");
    assert_eq!(json["service"], "echo");
}

#[tokio::test]
async fn recording_a_leg_again_replaces_its_row_and_keeps_its_room() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    let mut leg = ended_leg(7, 5_000);
    leg.ended_ms = None;
    leg.end_status = None;
    store.record_leg(&leg, Some("rCF-node1-ROOM01")).await.unwrap();
    leg.ended_ms = Some(9_000);
    leg.end_status = Some(0);
    leg.end_reason = Some("hung up by API".into());
    store.record_leg(&leg, None).await.unwrap();

    let calls = store.recent_calls(10, None).await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].ended_ms, Some(9_000));
    assert_eq!(calls[0].end_status, Some(0));
    assert_eq!(calls[0].end_reason.as_deref(), Some("hung up by API"));
    assert_eq!(calls[0].confid.as_deref(), Some("rCF-node1-ROOM01"));
}

#[tokio::test]
async fn recent_calls_are_newest_first_limited_and_page_back_with_before_ms() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    // 25 legs 10 ms apart, written out of order.
    let mut order: Vec<u32> = (0..25).collect();
    order.sort_by_key(|n| (n * 7) % 25);
    for n in order {
        store.record_leg(&ended_leg(n, 10_000 + u64::from(n) * 10), None).await.unwrap();
    }

    let first = store.recent_calls(10, None).await.unwrap();
    let starts: Vec<u64> = first.iter().map(|c| c.started_ms).collect();
    assert_eq!(starts, (15..25).rev().map(|n| 10_000 + n * 10).collect::<Vec<_>>());

    // Page back until nothing is left.
    let mut seen = first;
    loop {
        let before = seen.last().unwrap().started_ms;
        let page = store.recent_calls(10, Some(before)).await.unwrap();
        assert!(page.len() <= 10);
        assert!(page.iter().all(|c| c.started_ms < before));
        if page.is_empty() {
            break;
        }
        seen.extend(page);
    }
    let all: Vec<u64> = seen.iter().map(|c| c.started_ms).collect();
    assert_eq!(all, (0..25).rev().map(|n| 10_000 + n * 10).collect::<Vec<_>>());

    assert!(store.recent_calls(0, None).await.unwrap().is_empty());
    assert_eq!(store.recent_calls(3, Some(10_000 + 5 * 10)).await.unwrap().len(), 3);
    assert!(store.recent_calls(10, Some(10_000)).await.unwrap().is_empty());
}

#[tokio::test]
async fn legs_starting_in_the_same_millisecond_order_by_leg_id() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    for n in [3, 1, 2] {
        store.record_leg(&ended_leg(n, 42_000), None).await.unwrap();
    }
    let ids: Vec<String> = store.recent_calls(10, None).await.unwrap().into_iter().map(|c| c.leg_id.0).collect();
    assert_eq!(ids, ["leg-000003", "leg-000002", "leg-000001"]);
}

#[tokio::test]
async fn rooms_are_recorded_started_then_ended() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    let a = room("AAAAAA", 1_000);
    let b = room("BBBBBB", 2_000);
    store.record_room_started(&a).await.unwrap();
    store.record_room_started(&b).await.unwrap();
    store.record_room_started(&a).await.unwrap(); // the same start again: still one row
    store.record_room_ended(&a.confid, 61_000, 5).await.unwrap();

    let history = store.rooms_history(10).await.unwrap();
    assert_eq!(history.len(), 2);
    let (hb, ha) = (&history[0], &history[1]);
    assert_eq!(hb.confid, b.confid);
    assert_eq!(hb.ended_ms, None);
    assert_eq!(hb.max_participants, 0);
    assert_eq!(ha.confid, a.confid);
    assert_eq!(ha.confnumber, "AAAAAA");
    assert_eq!(ha.confroomnum, "4711");
    assert_eq!(ha.confuri, "<sip:conf-4711@switchboard.local>");
    assert_eq!(ha.site, "main");
    assert_eq!(ha.startts, 1_000);
    assert_eq!(ha.ended_ms, Some(61_000));
    assert_eq!(ha.max_participants, 5);

    assert_eq!(store.rooms_history(1).await.unwrap().len(), 1);

    // Ending it again, or a room never started, is an error that names the room.
    match store.record_room_ended(&a.confid, 62_000, 9).await {
        Err(StoreError::UnknownRoom(confid)) => assert_eq!(confid, a.confid),
        other => panic!("{other:?}"),
    }
    assert!(matches!(store.record_room_ended("rCF-node1-NOSUCH", 1, 1).await, Err(StoreError::UnknownRoom(_))));
    assert_eq!(store.rooms_history(10).await.unwrap()[1].max_participants, 5);
}

#[tokio::test]
async fn a_confid_reused_by_a_later_run_is_a_new_room_and_left_open_rooms_can_be_closed() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    // Run 1 starts the room and stops without ending it.
    store.record_room_started(&room("REUSED", 1_000)).await.unwrap();
    // Run 2 reuses the confid; ending it closes the newest open row only.
    store.record_room_started(&room("REUSED", 50_000)).await.unwrap();
    store.record_room_ended("rCF-node1-REUSED", 80_000, 3).await.unwrap();
    let history = store.rooms_history(10).await.unwrap();
    assert_eq!((history[0].startts, history[0].ended_ms), (50_000, Some(80_000)));
    assert_eq!((history[1].startts, history[1].ended_ms), (1_000, None));

    assert_eq!(store.close_open_rooms(90_000).await.unwrap(), 1);
    assert_eq!(store.rooms_history(10).await.unwrap()[1].ended_ms, Some(90_000));
    assert_eq!(store.close_open_rooms(95_000).await.unwrap(), 0);
}

#[tokio::test]
async fn times_beyond_i64_are_refused_not_wrapped() {
    let dir = data_dir();
    let store = Store::open(&dir.path).await.unwrap();
    let mut leg = ended_leg(1, 1_000);
    leg.ended_ms = Some(u64::MAX);
    match store.record_leg(&leg, None).await {
        Err(StoreError::OutOfRange { field, value }) => assert_eq!((field, value), ("ended_ms", u64::MAX)),
        other => panic!("{other:?}"),
    }
    assert!(store.recent_calls(10, None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing() {
    let dir = data_dir();
    // Two independent pools on one file, as two processes would be, and 8 writers
    // spread over them, while a reader keeps listing.
    let one = Store::open(&dir.path).await.unwrap();
    let two = Store::open(&dir.path).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..8u32 {
        let store = if w % 2 == 0 { one.clone() } else { two.clone() };
        writers.push(tokio::spawn(async move {
            for i in 0..100u32 {
                let n = w * 1_000 + i;
                store.record_leg(&ended_leg(n, 1_000_000 + u64::from(n)), None).await.expect("write");
                if i % 10 == 0 {
                    let room = room(&format!("R{w}{i:04}"), 1_000 + u64::from(n));
                    store.record_room_started(&room).await.expect("room start");
                    store.record_room_ended(&room.confid, 2_000 + u64::from(n), 2).await.expect("room end");
                }
            }
        }));
    }
    let reader = {
        let store = one.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            for _ in 0..50 {
                let n = store.recent_calls(1000, None).await.expect("read").len();
                assert!(n <= 800);
                reads += 1;
            }
            reads
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(reader.await.unwrap(), 50);

    let calls = one.recent_calls(1000, None).await.unwrap();
    assert_eq!(calls.len(), 800);
    let mut ids: Vec<&str> = calls.iter().map(|c| c.leg_id.0.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 800);
    let rooms = two.rooms_history(1000).await.unwrap();
    assert_eq!(rooms.len(), 80);
    assert!(rooms.iter().all(|r| r.ended_ms.is_some() && r.max_participants == 2));
}

#[tokio::test]
async fn open_url_takes_sqlite_files_and_memory_and_refuses_others() {
    let dir = data_dir();
    std::fs::create_dir_all(&dir.path).unwrap();
    let file = dir.path.join("by-url.db");
    let url = format!("sqlite://{}", file.display());
    let store = Store::open_url(&url).await.unwrap();
    store.record_leg(&ended_leg(1, 1_000), None).await.unwrap();
    assert!(file.is_file());
    drop(store);
    assert_eq!(Store::open_url(&url).await.unwrap().recent_calls(10, None).await.unwrap().len(), 1);

    // In memory: clones share the one database; a second open is a different one.
    let memory = Store::open_url("sqlite::memory:").await.unwrap();
    let clone = memory.clone();
    memory.record_leg(&ended_leg(2, 2_000), None).await.unwrap();
    assert_eq!(clone.recent_calls(10, None).await.unwrap().len(), 1);
    let other = Store::open_url("sqlite::memory:").await.unwrap();
    assert!(other.recent_calls(10, None).await.unwrap().is_empty());

    assert!(matches!(Store::open_url("mysql://localhost/switchboard").await, Err(StoreError::UnsupportedUrl(_))));
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_is_reported() {
    let dir = data_dir();
    std::fs::create_dir_all(dir.path.parent().unwrap()).unwrap();
    std::fs::write(&dir.path, b"a file, not a directory").unwrap();
    match Store::open(&dir.path.join("sub")).await {
        Err(e @ StoreError::DataDir { .. }) => assert!(e.to_string().contains("cannot create data directory")),
        other => panic!("{other:?}"),
    }
}
