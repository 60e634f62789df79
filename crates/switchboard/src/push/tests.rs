//! The sender against a stand-in APNs/FCM server on a real socket (axum on 127.0.0.1),
//! with the real store (SQLite in memory): what goes on the wire, and what happens to
//! tokens the services call dead or replace.

use super::*;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use engine::call::fixtures::{party, ringing_call};
use std::sync::Mutex;

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// APNs: tokens starting with `dead` answer 400 BadDeviceToken, `busy` 503
/// (kept), others 200. FCM: per token, `canon…` gets a canonical id, `gone…`
/// NotRegistered, `away…` Unavailable, others success.
async fn stand_in() -> (String, Log) {
    async fn apns(State(log): State<Log>, Path(token): Path<String>, headers: HeaderMap, body: String) -> (StatusCode, String) {
        let path = format!("/3/device/{token}");
        log.lock().unwrap().push(Seen { path, headers, body: serde_json::from_str(&body).unwrap_or(Value::String(body)) });
        if token.starts_with("dead") {
            (StatusCode::BAD_REQUEST, json!({"reason": "BadDeviceToken"}).to_string())
        } else if token.starts_with("busy") {
            (StatusCode::SERVICE_UNAVAILABLE, json!({"reason": "ServiceUnavailable"}).to_string())
        } else {
            (StatusCode::OK, String::new())
        }
    }
    async fn sandbox(state: State<Log>, token: Path<String>, mut headers: HeaderMap, body: String) -> (StatusCode, String) {
        headers.insert("x-stand-in-gateway", "sandbox".parse().unwrap());
        apns(state, token, headers, body).await
    }
    async fn fcm(State(log): State<Log>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
        log.lock().unwrap().push(Seen { path: "/fcm/send".into(), headers, body: body.clone() });
        let results: Vec<Value> = body["registration_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let t = t.as_str().unwrap();
                if t.starts_with("canon") {
                    json!({"message_id": "1", "registration_id": "fcm-canonical-token-000001"})
                } else if t.starts_with("gone") {
                    json!({"error": "NotRegistered"})
                } else if t.starts_with("away") {
                    json!({"error": "Unavailable"})
                } else {
                    json!({"message_id": "2"})
                }
            })
            .collect();
        Json(json!({"multicast_id": 7, "success": 2, "failure": 2, "canonical_ids": 1, "results": results}))
    }
    let log: Log = Arc::default();
    let app = Router::new()
        .route("/3/device/{token}", post(apns))
        .route("/sandbox/3/device/{token}", post(sandbox))
        .route("/fcm/send", post(fcm))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

async fn store_with_alice() -> (store::Store, UserId) {
    let s = store::Store::open_url("sqlite::memory:").await.unwrap();
    s.add_domain("alpha.test", None).await.unwrap();
    let alice = s
        .add_user(&store::NewUser { domain: "alpha.test".into(), login: "alice".into(), password: "pw-alice".into(), ext: Some("3044".into()), ..Default::default() })
        .await
        .unwrap();
    (s, alice.id)
}

fn section(base: &str) -> PushSection {
    PushSection {
        apns_url: base.into(),
        apns_sandbox_url: format!("{base}/sandbox"),
        apns_topics: vec!["com.example.app".into(), "com.example.app~".into()],
        fcm_url: format!("{base}/fcm/send"),
        fcm: [("example-app".to_string(), "server-key-1".to_string())].into_iter().collect(),
        wake_wait_ms: 5000,
        timeout_ms: 5000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_and_fcm_get_the_event_and_dead_tokens_are_dropped() {
    let (base, log) = stand_in().await;
    let (s, alice) = store_with_alice().await;
    let good = "0123456789abcdef0123456789abcdef";
    for (kind, topic, token) in [
        ("apn", "com.example.app", good),
        ("apn", "com.example.app", "dead456789abcdef0123456789abcdef"),
        ("apn", "com.example.app", "busy456789abcdef0123456789abcdef"),
        ("apn", "com.example.app~", "sandbox789abcdef0123456789abcdef"),
        ("apn", "com.retired.app", "retired789abcdef0123456789abcdef"),
        ("fcm", "example-app", "fcm-token-plain-000000001"),
        ("fcm", "example-app", "canon-token-000000000001"),
        ("fcm", "example-app", "gone-token-0000000000001"),
        ("fcm", "example-app", "away-token-0000000000001"),
    ] {
        s.add_push_token(kind, topic, token, alice).await.unwrap();
    }
    let sender = PushSender::new(&section(&base), s.clone(), "node1".into());
    let event = json!({"type": "Delivered", "callId": 42, "deviceId": "3044"});
    let report = sender.send(alice, &event).await;
    assert_eq!(report, PushReport { delivered: 4, failed: 4, removed: 2, replaced: 1 });

    let seen = log.lock().unwrap().clone();
    // Four APNs requests (the retired topic is not configured any more) and one FCM.
    let apns: Vec<&Seen> = seen.iter().filter(|r| r.path.contains("/3/device/")).collect();
    assert_eq!(apns.len(), 4, "{seen:?}");
    let to_good = apns.iter().find(|r| r.path == format!("/3/device/{good}")).expect("push to the good token");
    assert_eq!(to_good.body, event, "the bare event, no aps");
    assert_eq!(to_good.headers.get("content-type").unwrap(), "application/json");
    assert!(to_good.headers.get("user-agent").unwrap().to_str().unwrap().starts_with("Switchboard/"));
    assert!(to_good.headers.get("apns-topic").is_none());
    let sandboxed = apns.iter().find(|r| r.path.contains("sandbox789")).unwrap();
    assert_eq!(sandboxed.headers.get("x-stand-in-gateway").unwrap(), "sandbox", "a ~ topic goes to the development gateway");

    let fcm: Vec<&Seen> = seen.iter().filter(|r| r.path == "/fcm/send").collect();
    assert_eq!(fcm.len(), 1);
    assert_eq!(fcm[0].headers.get("authorization").unwrap(), "key=server-key-1");
    assert_eq!(fcm[0].body["data"], event);
    assert_eq!(fcm[0].body["time_to_live"], json!(0));
    let mut ids: Vec<&str> = fcm[0].body["registration_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["away-token-0000000000001", "canon-token-000000000001", "fcm-token-plain-000000001", "gone-token-0000000000001"]);

    // Dead tokens gone, the canonical one in place of its old token, the rest kept.
    let mut left: Vec<String> = s.push_tokens_of(alice).await.unwrap().into_iter().map(|t| t.token).collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            good.to_string(),
            "away-token-0000000000001".into(),
            "busy456789abcdef0123456789abcdef".into(),
            "fcm-canonical-token-000001".into(),
            "fcm-token-plain-000000001".into(),
            "retired789abcdef0123456789abcdef".into(),
            "sandbox789abcdef0123456789abcdef".into(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_sends_delivered_for_the_call_to_the_callees_tokens() {
    let (base, log) = stand_in().await;
    let (s, alice) = store_with_alice().await;
    s.add_push_token("apn", "com.example.app", "0123456789abcdef0123456789abcdef", alice).await.unwrap();
    let directory = Arc::new(s.load_directory().await.unwrap());
    assert!(directory.user(alice).unwrap().has_push_tokens);
    let sender = PushSender::new(&section(&base), s.clone(), "node1".into());
    let bob = party("sip:bob@alpha.test", None, Some("3045"), Some("Bob"));
    let call = ringing_call(77, 1, bob, party("sip:3044@alpha.test", Some(alice), Some("3044"), None));
    sender.wake(alice, call, directory);
    // The wake runs in the background: wait for the stand-in to see it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        if let Some(r) = log.lock().unwrap().first().cloned() {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "no push reached the stand-in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(seen.path, "/3/device/0123456789abcdef0123456789abcdef");
    assert_eq!(seen.body["type"], "Delivered");
    assert_eq!(seen.body["callId"], 77);
    assert_eq!(seen.body["deviceId"], "3044");
    assert_eq!(seen.body["callingDevice"], "3045");
    assert_eq!(seen.body["globalCallId"], "node1-4D");
    assert_eq!(seen.body["localConnectionInfo"], "alerting");
}
