//! The event outbox and webhooks on SQLite and PostgreSQL (`both_backends!`; see
//! tests/common): events are numbered per domain with no gaps across batches and
//! domains, read back by cursor, pruned only once old and delivered; webhooks keep
//! their delivery state (cursor, failures, back-off) and their key version; WCS event
//! hooks wait in their outbox in order per queue, keep a failed head's state, and go
//! once delivered.

mod common;

use common::TestDb;
use store::{Attempt, NewEvent, NewHookEvent};

both_backends!(events_are_numbered_per_domain_without_gaps, webhooks_keep_their_delivery_state, wcs_event_hooks_wait_in_order_until_delivered);

fn ev(domain: i64, ts_ms: u64, n: u32) -> NewEvent {
    NewEvent { domain_id: domain, ts_ms, event_type: "dtmf".into(), body: format!("{{\"type\":\"dtmf\",\"digit\":\"{}\"}}", n % 10) }
}

async fn events_are_numbered_per_domain_without_gaps(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.last_event_seq(1).await.unwrap(), 0);
    // interleaved domains in one batch, then more batches (one bigger than an INSERT)
    let first = s.append_events(&[ev(1, 1_000, 1), ev(2, 1_000, 2), ev(1, 1_001, 3)]).await.unwrap();
    assert_eq!(first.iter().map(|e| (e.domain_id, e.seq)).collect::<Vec<_>>(), vec![(1, 1), (2, 1), (1, 2)]);
    // a webhook added now owes everything after seq 2
    let hook2 = s.add_webhook(1, "http://127.0.0.1:9/h2", &[], true, 5_000).await.unwrap();
    assert_eq!(hook2.cursor, 2, "a new webhook starts at the domain's last event");
    let big: Vec<NewEvent> = (0..250).map(|n| ev(1, 2_000 + n as u64, n)).collect();
    let stored = s.append_events(&big).await.unwrap();
    assert_eq!(stored.first().unwrap().seq, 3);
    assert_eq!(stored.last().unwrap().seq, 252);
    assert!(s.append_events(&[]).await.unwrap().is_empty());
    assert_eq!(s.last_event_seq(1).await.unwrap(), 252);
    assert_eq!(s.last_event_seq(2).await.unwrap(), 1);

    // read back by cursor, pages without gaps
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.events_after(1, after, 100).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().seq;
        seen.extend(page.into_iter().map(|e| e.seq));
    }
    assert_eq!(seen, (1..=252).collect::<Vec<u64>>());
    let e = &s.events_after(2, 0, 10).await.unwrap()[0];
    assert_eq!(e.to_json(), r#"{"seq":1,"ts":1000,"type":"dtmf","digit":"2"}"#);
    assert_eq!(s.count_events(1).await.unwrap(), 252);

    // retention: old ones go unless an enabled webhook still owes them
    let hook = s.add_webhook(1, "http://127.0.0.1:9/h", &[], true, 5_000).await.unwrap();
    assert_eq!(hook.cursor, 252);
    s.webhook_skipped(hook.id, 100).await.unwrap();
    assert_eq!(s.webhook(hook.id).await.unwrap().unwrap().cursor, 252, "the cursor never goes back");
    s.webhook_skipped(hook2.id, 10).await.unwrap();
    let pruned = s.prune_events(2_100).await.unwrap();
    assert_eq!(pruned, 10 + 1, "old and delivered by every enabled webhook (domain 1: 1..=10; domain 2: its one)");
    assert_eq!(s.events_after(1, 0, 1).await.unwrap()[0].seq, 11);
    s.update_webhook(hook2.id, None, None, Some(false)).await.unwrap();
    assert_eq!(s.prune_events(2_100).await.unwrap(), 100 - 10 + 2, "a disabled webhook holds nothing back");
    // numbering continues after pruning
    assert_eq!(s.append_events(&[ev(2, 9_000, 0)]).await.unwrap()[0].seq, 2);
}

async fn webhooks_keep_their_delivery_state(db: &TestDb) {
    let s = &db.store;
    s.append_events(&[ev(7, 1, 1), ev(7, 2, 2)]).await.unwrap();
    let types = vec!["call_started".to_string(), "dtmf".to_string()];
    let w = s.add_webhook(7, "https://hooks.example/a", &types, true, 1_000).await.unwrap();
    assert_eq!((w.cursor, w.key_version, w.failures, w.enabled), (2, 1, 0, true));
    assert_eq!(w.event_types, types);
    assert!(w.wants("dtmf") && !w.wants("leg_started"));
    let other = s.add_webhook(8, "http://x.example/", &[], false, 1_000).await.unwrap();
    assert!(other.id > w.id);
    assert!(other.wants("anything"));
    assert_eq!(s.webhooks(Some(7)).await.unwrap().len(), 1);
    assert_eq!(s.webhooks(None).await.unwrap().len(), 2);

    // a failure counts and backs off; a success resets
    let fail = Attempt { at_ms: 2_000, cursor: 2, delivered: 0, status: Some(503), error: Some("HTTP 503".into()), next_attempt_ms: 3_000 };
    s.webhook_attempted(w.id, &fail).await.unwrap();
    s.webhook_attempted(w.id, &Attempt { at_ms: 3_000, ..fail.clone() }).await.unwrap();
    let h = s.webhook(w.id).await.unwrap().unwrap();
    assert_eq!((h.failures, h.last_status, h.last_error.as_deref(), h.next_attempt_ms, h.last_attempt_ms), (2, Some(503), Some("HTTP 503"), 3_000, Some(3_000)));
    s.webhook_attempted(w.id, &Attempt { at_ms: 4_000, cursor: 9, delivered: 7, status: Some(200), error: None, next_attempt_ms: 0 }).await.unwrap();
    let h = s.webhook(w.id).await.unwrap().unwrap();
    assert_eq!((h.failures, h.cursor, h.delivered, h.next_attempt_ms, h.last_error), (0, 9, 7, 0, None));

    let r = s.rotate_webhook(w.id).await.unwrap().unwrap();
    assert_eq!(r.key_version, 2);
    let u = s.update_webhook(w.id, Some("http://new.example/"), Some(&[]), Some(false)).await.unwrap().unwrap();
    assert_eq!((u.url.as_str(), u.event_types.len(), u.enabled), ("http://new.example/", 0, false));
    assert!(s.update_webhook(999, None, None, Some(true)).await.unwrap().is_none());
    assert!(s.delete_webhook(w.id).await.unwrap());
    assert!(!s.delete_webhook(w.id).await.unwrap());
    assert!(s.webhook(w.id).await.unwrap().is_none());
}

fn hook(queue: &str, n: u32) -> NewHookEvent {
    NewHookEvent { queue: queue.into(), url: format!("http://127.0.0.1:9/{queue}/CallStatusEvent"), method: "CallStatusEvent".into(), body: format!("{{\"n\":{n}}}") }
}

async fn wcs_event_hooks_wait_in_order_until_delivered(db: &TestDb) {
    let s = &db.store;
    assert!(s.hook_queues().await.unwrap().is_empty());
    // two queues interleaved, then a batch bigger than one INSERT
    let ids = s.append_hook_events(&[hook("shop", 1), hook("defaultApp", 2), hook("shop", 3)], 1_000).await.unwrap();
    assert_eq!(ids, vec![1, 2, 3]);
    let big: Vec<NewHookEvent> = (4..253).map(|n| hook("shop", n)).collect();
    assert_eq!(s.append_hook_events(&big, 2_000).await.unwrap().last(), Some(&252));
    assert_eq!(s.hook_queues().await.unwrap(), vec!["defaultApp".to_string(), "shop".to_string()]);
    let head = s.hook_events("shop", 3).await.unwrap();
    assert_eq!(head.iter().map(|e| e.body.as_str()).collect::<Vec<_>>(), vec![r#"{"n":1}"#, r#"{"n":3}"#, r#"{"n":4}"#], "in order, this queue only");
    assert_eq!((head[0].created_ms, head[0].attempts, head[0].next_attempt_ms, head[0].last_status), (1_000, 0, 0, None));
    // the head fails twice: its state says why and when next
    s.hook_event_failed(head[0].id, Some(503), "503 Service Unavailable", 5_000).await.unwrap();
    s.hook_event_failed(head[0].id, None, "connection refused", 9_000).await.unwrap();
    let h = &s.hook_events("shop", 1).await.unwrap()[0];
    assert_eq!((h.id, h.attempts, h.next_attempt_ms, h.last_status, h.last_error.as_deref()), (1, 2, 9_000, None, Some("connection refused")));
    let backlog = s.hook_backlog().await.unwrap();
    assert_eq!(backlog.len(), 2);
    assert_eq!((backlog[1].queue.as_str(), backlog[1].pending, backlog[1].oldest_ms, backlog[1].head_attempts), ("shop", 251, 1_000, 2));
    assert_eq!(backlog[1].last_error.as_deref(), Some("connection refused"));
    // delivered rows go; the rest stay in order
    let shop: Vec<i64> = s.hook_events("shop", 500).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(shop.len(), 251);
    s.hook_events_done(&shop[..250]).await.unwrap();
    assert_eq!(s.hook_events("shop", 10).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), vec![252]);
    s.hook_events_done(&[2, 252]).await.unwrap();
    assert!(s.hook_queues().await.unwrap().is_empty());
    // an empty table starts again from 1
    assert_eq!(s.append_hook_events(&[hook("shop", 9)], 3_000).await.unwrap(), vec![1]);
}
