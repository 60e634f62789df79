//! Instant messages on SQLite and PostgreSQL (`both_backends!`; see tests/common): a
//! message is stored once however often its event is written, pending ones come back
//! oldest first, a delivered one stays delivered, a failed one leaves the pending list.

mod common;

use common::TestDb;
use engine::{MessageInfo, MessageOrigin};
use store::messages::{DELIVERED, FAILED, PENDING};

both_backends!(messages_are_kept_until_delivered_or_failed);

fn message(id: &str, user_id: i64, created_ms: u64) -> MessageInfo {
    MessageInfo {
        message_id: id.into(),
        domain: "alpha.test".into(),
        domain_id: 1,
        user_id,
        to: "sip:3045@alpha.test".into(),
        from: "sip:3044@alpha.test".into(),
        from_user_id: Some(1),
        content_type: "text/plain;charset=UTF-8".into(),
        body: format!("héllo {id}"),
        origin: MessageOrigin::Sip,
        created_ms,
    }
}

async fn messages_are_kept_until_delivered_or_failed(db: &TestDb) {
    let s = &db.store;
    let (a, b, c) = (message("msg_a", 2, 1_000), message("msg_b", 2, 900), message("msg_c", 2, 1_100));
    for m in [&a, &b, &c, &a] {
        s.add_message(m).await.unwrap();
    }
    s.add_message(&message("msg_other", 3, 1)).await.unwrap();
    let pending: Vec<String> = s.pending_messages(2).await.unwrap().into_iter().map(|m| m.message_id).collect();
    assert_eq!(pending, ["msg_b", "msg_a", "msg_c"], "oldest first, each once, only the user's");
    let stored = s.message("msg_a").await.unwrap().unwrap();
    assert_eq!((stored.body.as_str(), stored.state.as_str(), stored.origin.as_str(), stored.attempts), ("héllo msg_a", PENDING, "sip", 0));
    assert_eq!(stored.info("alpha.test").body, a.body);

    s.message_not_delivered("msg_a", false, Some(408), "408 no answer", 2_000).await.unwrap();
    s.message_delivered("msg_b", 200, 2_000).await.unwrap();
    s.message_not_delivered("msg_b", false, None, "a late round", 2_100).await.unwrap();
    s.message_not_delivered("msg_c", true, Some(603), "603 Decline", 2_000).await.unwrap();
    let a2 = s.message("msg_a").await.unwrap().unwrap();
    assert_eq!((a2.state.as_str(), a2.attempts, a2.last_status), (PENDING, 1, Some(408)));
    let b2 = s.message("msg_b").await.unwrap().unwrap();
    assert_eq!((b2.state.as_str(), b2.last_status), (DELIVERED, Some(200)), "a late round does not undo delivery");
    assert_eq!(s.message("msg_c").await.unwrap().unwrap().state, FAILED);
    let pending: Vec<String> = s.pending_messages(2).await.unwrap().into_iter().map(|m| m.message_id).collect();
    assert_eq!(pending, ["msg_a"]);

    let newest: Vec<String> = s.messages_of_user(2, None, 2).await.unwrap().into_iter().map(|m| m.message_id).collect();
    assert_eq!(newest, ["msg_c", "msg_a"], "newest first, limited");
    let failed: Vec<String> = s.messages_of_user(2, Some(FAILED), 10).await.unwrap().into_iter().map(|m| m.message_id).collect();
    assert_eq!(failed, ["msg_c"]);
    assert!(s.message("msg_nope").await.unwrap().is_none());
}
