//! Two-party call records, call modes and push tokens, on SQLite and PostgreSQL
//! (`both_backends!`; see tests/common).

mod common;

use common::TestDb;
use engine::call::fixtures::{ended_call, party};
use engine::call::{CallInfo, CallState, Party, Side};
use engine::EngineEvent;
use store::{NewUser, StoreError};

both_backends!(
    a_call_ended_event_becomes_one_record_through_the_recorder,
    the_call_log_is_one_users_calls_in_id_order_since_a_time,
    next_call_id_floor_is_the_largest_recorded_id,
    call_mode_and_device_persist_and_reach_the_directory_snapshot,
    push_tokens_move_between_users_are_listed_and_removed,
);

fn alice() -> Party {
    party("sip:alice@alpha.test", Some(1), Some("3044"), Some("Alice A"))
}
fn bob() -> Party {
    party("sip:3045@alpha.test", Some(2), Some("3045"), Some("Bob B"))
}
fn outsider() -> Party {
    party("sip:+15550100@gw.example", None, None, None)
}

async fn a_call_ended_event_becomes_one_record_through_the_recorder(db: &TestDb) {
    let s = &db.store;
    let (recorder, writer) = store::spawn_recorder(s.clone());
    // Set apart from the fixture's plain values, so that the record must keep them.
    let info = CallInfo {
        domain: "Alpha.Test".into(),
        hangup_by: Some(Side::Callee),
        callee_codec: Some("G722".into()),
        recordings: vec!["recordings/7.wav".into(), "recordings/7b.wav".into()],
        ..ended_call(7, 1_700_000_000_000, alice(), bob(), true)
    };
    // Only the end is recorded; the other call events are not written.
    assert!(recorder.record(&EngineEvent::CallStarted(CallInfo { state: CallState::Ringing, ..info.clone() })));
    assert!(recorder.record(&EngineEvent::CallAnswered(info.clone())));
    assert!(recorder.record(&EngineEvent::CallEnded(info.clone())));
    assert!(recorder.record(&EngineEvent::WakeUser { user_id: 2, call: info.clone() }));
    drop(recorder);
    writer.await.unwrap();

    let r = s.call_record(7).await.unwrap().expect("recorded");
    assert_eq!(r.call_id, 7);
    assert_eq!(r.domain, "alpha.test", "domains are kept lowercase");
    assert_eq!(r.caller, alice());
    assert_eq!(r.callee, bob());
    assert_eq!((r.started_ms, r.answered_ms, r.ended_ms), (1_700_000_000_000, Some(1_700_000_002_000), 1_700_000_010_000));
    assert_eq!(r.disposition, "answered");
    assert_eq!(r.hangup_by.as_deref(), Some("callee"));
    assert_eq!((r.caller_codec.as_deref(), r.callee_codec.as_deref()), (Some("PCMU"), Some("G722")));
    assert_eq!(r.recordings, vec!["recordings/7.wav".to_string(), "recordings/7b.wav".to_string()]);
    assert!(!r.api_originated);
    assert!(r.answered());
    assert!(s.call_record(8).await.unwrap().is_none());

    // The same call recorded again is rewritten, not duplicated.
    let again = CallInfo { hangup_by: None, api_originated: true, ..ended_call(7, 1_700_000_000_000, alice(), outsider(), false) };
    s.record_call(&again).await.unwrap();
    let r = s.call_record(7).await.unwrap().unwrap();
    assert_eq!((r.disposition.as_str(), r.hangup_by.as_deref(), r.callee.user_id, r.api_originated), ("no_answer", None, None, true));
    assert_eq!(r.recordings, Vec::<String>::new());
    assert!(!r.answered());
}

async fn the_call_log_is_one_users_calls_in_id_order_since_a_time(db: &TestDb) {
    let s = &db.store;
    let t = 1_700_000_000_000;
    // Written out of id order: the log orders by id.
    s.record_call(&ended_call(12, t + 60_000, bob(), alice(), false)).await.unwrap(); // alice missed bob's call
    s.record_call(&ended_call(10, t, alice(), bob(), true)).await.unwrap();
    s.record_call(&ended_call(11, t + 30_000, alice(), outsider(), true)).await.unwrap();
    s.record_call(&ended_call(13, t + 90_000, bob(), outsider(), true)).await.unwrap(); // not alice's
    let mut other_domain = ended_call(14, t + 90_000, alice(), bob(), true);
    other_domain.domain = "beta.test".into();
    s.record_call(&other_domain).await.unwrap();

    let ids = |v: Vec<store::CallRecordRow>| v.into_iter().map(|r| r.call_id).collect::<Vec<_>>();
    assert_eq!(ids(s.call_log("alpha.test", 1, None).await.unwrap()), vec![10, 11, 12]);
    assert_eq!(ids(s.call_log("ALPHA.test", 2, None).await.unwrap()), vec![10, 12, 13]);
    assert_eq!(ids(s.call_log("beta.test", 1, None).await.unwrap()), vec![14]);
    // Since: calls that ended at or after the time (call 11 ended at t + 40 s).
    assert_eq!(ids(s.call_log("alpha.test", 1, Some((t + 40_000) as i64)).await.unwrap()), vec![11, 12]);
    assert_eq!(ids(s.call_log("alpha.test", 1, Some((t + 40_001) as i64)).await.unwrap()), vec![12]);
    assert_eq!(ids(s.call_log("alpha.test", 1, Some(-5_000)).await.unwrap()), vec![10, 11, 12]);
    assert!(s.call_log("alpha.test", 99, None).await.unwrap().is_empty());
}

async fn next_call_id_floor_is_the_largest_recorded_id(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.next_call_id_floor().await.unwrap(), 0);
    s.record_call(&ended_call(41, 1_000, alice(), bob(), true)).await.unwrap();
    s.record_call(&ended_call(5, 2_000, alice(), bob(), true)).await.unwrap();
    assert_eq!(s.next_call_id_floor().await.unwrap(), 41);
    // An id the database cannot hold is refused, not wrapped.
    let too_big = ended_call(u64::MAX, 3_000, alice(), bob(), true);
    assert!(matches!(s.record_call(&too_big).await, Err(StoreError::OutOfRange { field: "call_id", .. })));
    // Reopened (a restart), the floor is still there.
    let again = store::Store::open_url(&db.url).await.unwrap();
    assert_eq!(again.next_call_id_floor().await.unwrap(), 41);
}

async fn add_alice_and_bob(s: &store::Store) -> (i64, i64) {
    s.add_domain("alpha.test", None).await.unwrap();
    let a = s
        .add_user(&NewUser { domain: "alpha.test".into(), login: "alice".into(), password: "alice-pw-1".into(), ext: Some("3044".into()), ..Default::default() })
        .await
        .unwrap();
    let b = s
        .add_user(&NewUser { domain: "alpha.test".into(), login: "bob".into(), password: "bob-pw-12".into(), ext: Some("3045".into()), ..Default::default() })
        .await
        .unwrap();
    (a.id, b.id)
}

async fn call_mode_and_device_persist_and_reach_the_directory_snapshot(db: &TestDb) {
    let s = &db.store;
    let (alice, bob) = add_alice_and_bob(s).await;
    assert_eq!(s.call_mode(alice).await.unwrap(), None);
    let snap = s.load_directory().await.unwrap();
    assert_eq!(snap.user(alice).unwrap().call_mode, None);

    let v = s.directory_version().await.unwrap();
    let mode = s.set_call_mode(alice, true, "+15550100", 3, 20).await.unwrap();
    assert_eq!((mode.remote, mode.device.as_str(), mode.ring_delay_s, mode.vm_delay_s, mode.assigned_device.as_deref()), (true, "+15550100", 3, 20, None));
    assert!(s.directory_version().await.unwrap() > v, "a call mode reloads the directory");

    // Binding a device keeps the mode; a new mode keeps the device.
    s.assign_device(alice, "desk-phone").await.unwrap();
    let mode = s.set_call_mode(alice, false, "", 1, 30).await.unwrap();
    assert_eq!((mode.remote, mode.device.as_str(), mode.ring_delay_s, mode.vm_delay_s), (false, "", 1, 30));
    assert_eq!(mode.assigned_device.as_deref(), Some("desk-phone"));
    // A device bound before any mode gets MX's defaults with it.
    s.assign_device(bob, "softphone").await.unwrap();
    let bm = s.call_mode(bob).await.unwrap().unwrap();
    assert_eq!((bm.remote, bm.ring_delay_s, bm.vm_delay_s, bm.assigned_device.as_deref()), (false, 1, 30, Some("softphone")));

    let snap = s.load_directory().await.unwrap();
    assert_eq!(snap.user(alice).unwrap().call_mode, Some(mode));
    assert_eq!(snap.user(bob).unwrap().call_mode, Some(bm));

    // Deleting the user takes its mode along.
    s.delete_user(alice).await.unwrap();
    assert_eq!(s.call_mode(alice).await.unwrap(), None);
}

async fn push_tokens_move_between_users_are_listed_and_removed(db: &TestDb) {
    let s = &db.store;
    let (alice, bob) = add_alice_and_bob(s).await;
    s.add_domain("beta.test", None).await.unwrap();
    let carol = s
        .add_user(&NewUser { domain: "beta.test".into(), login: "carol".into(), password: "carol-pw-1".into(), ..Default::default() })
        .await
        .unwrap()
        .id;
    let tok = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let v = s.directory_version().await.unwrap();
    s.add_push_token("apn", "com.example.app~", tok, alice).await.unwrap();
    s.add_push_token("fcm", "example-app", "fcm-token-000000000000001", alice).await.unwrap();
    s.add_push_token("fcm", "example-app", "fcm-token-000000000000002", carol).await.unwrap();
    assert!(s.directory_version().await.unwrap() > v);
    let snap = s.load_directory().await.unwrap();
    assert!(snap.user(alice).unwrap().has_push_tokens);
    assert!(!snap.user(bob).unwrap().has_push_tokens);

    let mine = s.push_tokens_of(alice).await.unwrap();
    assert_eq!(mine.iter().map(|t| (t.kind.as_str(), t.topic.as_str(), t.token.as_str())).collect::<Vec<_>>(),
        vec![("apn", "com.example.app~", tok), ("fcm", "example-app", "fcm-token-000000000000001")]);
    assert_eq!(s.list_push_tokens(None).await.unwrap().len(), 3);
    let alpha = s.domain_by_name("alpha.test").await.unwrap().unwrap().id;
    assert_eq!(s.list_push_tokens(Some(alpha)).await.unwrap().len(), 2, "carol is in another domain");

    // Registering the same token again for bob moves it.
    s.add_push_token("apn", "com.example.app~", tok, bob).await.unwrap();
    assert_eq!(s.push_tokens_of(alice).await.unwrap().len(), 1);
    assert_eq!(s.push_tokens_of(bob).await.unwrap()[0].token, tok);
    // The same token under another topic is another token.
    s.add_push_token("apn", "com.example.app", tok, alice).await.unwrap();
    assert_eq!(s.push_tokens_of(alice).await.unwrap().len(), 2);

    // FCM's canonical id replaces a token for the same user.
    s.replace_push_token("fcm", "example-app", "fcm-token-000000000000001", "fcm-token-canonical-00001").await.unwrap();
    assert!(s.push_tokens_of(alice).await.unwrap().iter().any(|t| t.token == "fcm-token-canonical-00001"));
    assert!(matches!(s.replace_push_token("fcm", "example-app", "nope-nope-nope-nope-nope", "x").await, Err(StoreError::NotFound(_))));

    s.remove_push_token("apn", "com.example.app~", tok).await.unwrap();
    assert!(s.push_tokens_of(bob).await.unwrap().is_empty());
    assert!(matches!(s.remove_push_token("apn", "com.example.app~", tok).await, Err(StoreError::NotFound(_))));
    assert!(!s.load_directory().await.unwrap().user(bob).unwrap().has_push_tokens);

    // A deleted domain takes its users' tokens along.
    s.delete_domain_cascade(s.domain_by_name("beta.test").await.unwrap().unwrap().id).await.unwrap();
    assert_eq!(s.list_push_tokens(None).await.unwrap().len(), 2);
}
