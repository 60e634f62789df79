//! Reference 001's call log, call mode, services and push tokens on the real server,
//! driven by an MX app session in Python `requests` (tests/kit/mx/mx_session.py): the
//! exact bodies, statuses and errors; the admin web's `/tokens`; what is persisted.
//!
//! Users, the app and the call records are written with the store crate before the
//! server starts (two-party calls are recorded by the bridge at integration; the
//! records here are what it writes, `CallInfo` as `CallEnded` carries it).

mod support;

use engine::call::fixtures::{ended_call, party};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::*;

const CLIENT: &str = "phone-app";
const SECRET: &str = "app-secret-1";
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// alpha.test with alice (user, 3044) and bob (admin, 3045), the app, and four calls:
/// 5 alice→bob answered, 6 bob→alice missed, 7 alice→a number unanswered, 8 bob→a
/// number (not alice's). Returns (alice, bob) ids.
fn seed(data: &Path) -> (i64, i64) {
    rt().block_on(async {
        std::fs::create_dir_all(data).unwrap();
        let db = store::Store::open(data).await.expect("store");
        let d = db.ensure_domain("alpha.test").await.unwrap();
        let mut ids = vec![];
        for (login, ext, role, first) in [("alice", "3044", store::Role::User, "Alice"), ("bob", "3045", store::Role::Admin, "Bob")] {
            let u = db
                .add_user(&store::NewUser {
                    domain: "alpha.test".into(),
                    login: login.into(),
                    password: format!("{login}-pw"),
                    ext: Some(ext.into()),
                    first_name: Some(first.into()),
                    last_name: Some("Example".into()),
                    role,
                    ..Default::default()
                })
                .await
                .unwrap();
            ids.push(u.id);
        }
        db.add_app(CLIENT, SECRET, Some("Phone"), Some(d.id)).await.unwrap();
        let (a, b) = (ids[0], ids[1]);
        let alice = party("sip:alice@alpha.test", Some(a), Some("3044"), Some("Alice Example"));
        let bob = party("sip:3045@alpha.test", Some(b), Some("3045"), Some("Bob Example"));
        let number = party("sip:+15550100@gw.example;user=phone", None, None, None);
        db.record_call(&ended_call(5, T0, alice.clone(), bob.clone(), true)).await.unwrap();
        db.record_call(&ended_call(6, T0 + 60_000, bob.clone(), alice.clone(), false)).await.unwrap();
        db.record_call(&ended_call(7, T0 + 120_000, alice, number.clone(), false)).await.unwrap();
        db.record_call(&ended_call(8, T0 + 180_000, bob, number, true)).await.unwrap();
        db.close().await;
        (a, b)
    })
}

fn write_config(env: &TestEnv) -> (PathBuf, u16) {
    let path = env.path("switchboard.toml");
    let admin = env.ports.peer_sip(7);
    std::fs::write(
        &path,
        format!(
            "[mx]\nadmin_listen = \"127.0.0.1:{admin}\"\nnode = \"node1\"\n\
             [push]\napns_topics = [\"com.example.app\", \"com.example.app~\"]\n\
             [push.fcm]\n\"example-app\" = \"fcm-server-key\"\n"
        ),
    )
    .unwrap();
    (path, admin)
}

/// Runs the plan as `user` (password `<user>-pw`) through mx_session.py.
fn session(server: &Server, user: &str, plan: &Value) -> Vec<Value> {
    mx_session(server, (CLIENT, SECRET), (user, &format!("{user}-pw")), plan)
}

fn get(path: &str) -> Value {
    json!({"method": "GET", "path": path})
}

/// (status, body) of a result, for compact asserts.
fn sb(r: &Value) -> (u64, Value) {
    (r["status"].as_u64().unwrap(), r["body"].clone())
}

#[test]
fn call_log_is_the_users_calls_from_their_side_with_mx_timestamps() {
    let env = TestEnv::new("mx_call_log");
    seed(&env.path("data"));
    let (cfg, _) = write_config(&env);
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });

    let s = |ms: u64| ms / 1000;
    let call5 = json!({"missed": false, "direction": "outgoing", "record_id": 5, "gcid": "node1-5",
        "connectTimestamp": s(T0 + 2_000), "disconnectTimestamp": s(T0 + 10_000),
        "callingPartyNo": "3044", "originalCalledPartyNo": "3045", "firstName": "Bob", "lastName": "Example", "ext": "3045",
        "callType": 1, "legType": 1, "selfLegType": 1});
    let call6 = json!({"missed": true, "direction": "incoming", "record_id": 6, "gcid": "node1-6",
        "disconnectTimestamp": s(T0 + 70_000),
        "callingPartyNo": "3045", "originalCalledPartyNo": "3044", "firstName": "Bob", "lastName": "Example", "ext": "3045",
        "callType": 1, "legType": 1, "selfLegType": 9});
    let call7 = json!({"missed": false, "direction": "outgoing", "record_id": 7, "gcid": "node1-7",
        "disconnectTimestamp": s(T0 + 130_000),
        "callingPartyNo": "3044", "originalCalledPartyNo": "+15550100", "callType": 1, "legType": 1, "selfLegType": 1});

    let r = session(&server, "alice", &json!([
        get("/calls"),
        // Unix seconds: calls that ended at or after it (call 5 ended at T0 + 10 s).
        get(&format!("/calls?timestamp={}", s(T0 + 10_000) + 1)),
        // RFC 3339 with an offset: the same instant as T0 + 70 s (call 6's end).
        get("/calls?timestamp=2023-11-15T00:14:30%2B02:00"),
        get("/calls?timestamp=2023-11-14T22:14:30.5Z"),
        get("/calls?timestamp=-1"),
        get("/calls?timestamp=4102444800"),
        get("/calls?timestamp=yesterday"),
        get("/calls?timestamp=2023-11-14T22:14:30"),
        {"method": "GET", "path": "/calls", "auth": false},
        {"method": "POST", "path": "/calls/5/hold", "json": {}},
    ]));
    assert_eq!(r[0]["content_type"], "application/json; charset=utf-8");
    assert_eq!(sb(&r[0]), (200, json!({"callLog": [call5, call6, call7]})));
    assert_eq!(sb(&r[1]), (200, json!({"callLog": [call6, call7]})));
    assert_eq!(sb(&r[2]), (200, json!({"callLog": [call6, call7]})));
    assert_eq!(sb(&r[3]), (200, json!({"callLog": [call7]})), "a fraction past call 6's end");
    assert_eq!(sb(&r[4]), (200, json!({"callLog": [call5, call6, call7]})));
    assert_eq!(sb(&r[5]), (200, json!({"callLog": null})), "nothing yet: null, as MX");
    assert_eq!(sb(&r[6]), (400, json!({"error": "bad timestamp format"})));
    assert_eq!(sb(&r[7]), (400, json!({"error": "bad timestamp format"})), "RFC 3339 needs a zone");
    assert_eq!(sb(&r[8]), (401, json!({"error": "unauthorized"})));
    assert!(r[8]["www"].as_str().unwrap().starts_with("Bearer realm="));
    // MX holds with PUT: a POST is 405 and names it
    assert_eq!((r[9]["status"].as_u64(), r[9]["allow"].as_str()), (Some(405), Some("PUT")), "{}", r[9]);

    // Bob sees call 5 as answered incoming (no selfLegType), 6 as outgoing, and his own 8.
    let r = session(&server, "bob", &json!([get("/calls")]));
    let log = r[0]["body"]["callLog"].as_array().unwrap().clone();
    assert_eq!(log.iter().map(|e| e["record_id"].as_u64().unwrap()).collect::<Vec<_>>(), vec![5, 6, 8]);
    assert_eq!(log[0], json!({"missed": false, "direction": "incoming", "record_id": 5, "gcid": "node1-5",
        "connectTimestamp": s(T0 + 2_000), "disconnectTimestamp": s(T0 + 10_000),
        "callingPartyNo": "3044", "originalCalledPartyNo": "3045", "firstName": "Alice", "lastName": "Example", "ext": "3044",
        "callType": 1, "legType": 1}));
    assert_eq!((log[1]["direction"].as_str(), log[1]["missed"].as_bool(), log[1]["selfLegType"].as_u64()), (Some("outgoing"), Some(false), Some(1)));
}

#[test]
fn call_mode_device_and_services_persist_with_mx_defaults_and_errors() {
    let env = TestEnv::new("mx_call_mode");
    let (alice, _) = seed(&env.path("data"));
    let (cfg, _) = write_config(&env);
    let mut server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });

    let r = session(&server, "alice", &json!([
        {"method": "PATCH", "path": "/calls", "json": {"remote": true, "device": "+15550100"}},
        {"method": "PATCH", "path": "/calls", "form": {"remote": "false", "ringDelay": "5", "vmDelay": "20"}},
        {"method": "PATCH", "path": "/calls", "data": "remote=true", "content_type": "text/plain"},
        {"method": "PATCH", "path": "/calls", "json": {"ringDelay": -1}},
        {"method": "PATCH", "path": "/calls/desk-phone.1"},
        {"method": "PATCH", "path": "/calls/bad%20name"},
        get("/services"),
        {"method": "PUT", "path": "/calls"},
    ]));
    assert_eq!(sb(&r[0]), (200, json!({"callMode": {"remote": true, "device": "+15550100", "ringDelay": 1, "vmDelay": 30}})));
    assert_eq!(sb(&r[1]), (200, json!({"callMode": {"remote": false, "device": "", "ringDelay": 5, "vmDelay": 20}})));
    assert_eq!(sb(&r[2]), (400, json!({"error": "unsupported content type"})));
    assert_eq!(r[3]["status"], 400, "{}", r[3]);
    assert_eq!((r[4]["status"].as_u64(), r[4]["body"].clone()), (Some(204), json!("")));
    assert_eq!(sb(&r[5]), (400, json!({"error": "bad device name \"bad name\""})));
    assert_eq!(sb(&r[6]), (200, json!({"services": [
        {"id": "echo", "name": "Echo test", "type": "Echo", "ext": "echo"},
        {"id": "conference", "name": "Conference rooms", "type": "Conference", "ext": "*9"},
    ]})));
    assert_eq!(sb(&r[7]), (405, json!({"error": "method not allowed"})));
    assert_eq!(r[7]["allow"], "GET, PATCH, POST");

    // Persisted per user, and what the directory snapshot hands the engine.
    server.terminate(std::time::Duration::from_secs(10));
    let (mode, snap) = rt().block_on(async {
        let db = store::Store::open(&env.path("data")).await.unwrap();
        (db.call_mode(alice).await.unwrap(), db.load_directory().await.unwrap())
    });
    let mode = mode.expect("call mode stored");
    assert_eq!((mode.remote, mode.device.as_str(), mode.ring_delay_s, mode.vm_delay_s), (false, "", 5, 20));
    assert_eq!(mode.assigned_device.as_deref(), Some("desk-phone.1"));
    assert_eq!(snap.user(alice).unwrap().call_mode, Some(mode));
}

#[test]
fn push_tokens_register_move_and_delete_with_mx_errors_and_show_on_the_admin_web() {
    let env = TestEnv::new("mx_push_tokens");
    let (alice, bob) = seed(&env.path("data"));
    let (cfg, admin_port) = write_config(&env);
    let mut server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });
    let admin = format!("http://127.0.0.1:{admin_port}");
    let apn = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let fcm = "fcm-registration-token:APA91bH-example_0001";
    let put = |path: String| json!({"method": "PUT", "path": path});
    let admin_tokens = json!({"method": "GET", "path": "/tokens", "base": admin, "basic": ["bob@alpha.test", "bob-pw"]});

    let r = session(&server, "alice", &json!([
        put(format!("/tokens/apn/com.example.app/{apn}")),
        put(format!("/tokens/apn/com.example.app/{apn}?sandbox")),
        put(format!("/tokens/fcm/example-app/{fcm}")),
        put(format!("/tokens/apn/com.other.app/{apn}")),
        put(format!("/tokens/apn/com.example.app/{apn}?sandbox=1").replace("com.example.app/", "com.example.app~/")),
        put(format!("/tokens/fcm/other-app/{fcm}")),
        put(format!("/tokens/gcm/example-app/{fcm}")),
        put("/tokens/fcm/example-app/0123456789abcdefghi".to_string()),
        {"method": "POST", "path": format!("/tokens/fcm/example-app/{fcm}")},
        {"method": "PUT", "path": format!("/tokens/apn/com.example.app/{apn}"), "auth": false},
        admin_tokens.clone(),
    ]));
    for (i, res) in r[..3].iter().enumerate() {
        assert_eq!((res["status"].as_u64(), res["body"].clone()), (Some(204), json!("")), "step {i}: {res}");
    }
    assert_eq!(sb(&r[3]), (404, json!({"error": "unsupported APNS topic ID or sandbox flag"})));
    assert_eq!(sb(&r[4]), (404, json!({"error": "unsupported APNS topic ID or sandbox flag"})), "~~ is no topic");
    assert_eq!(sb(&r[5]), (404, json!({"error": "unsupported FCM application ID"})));
    assert_eq!(sb(&r[6]), (404, json!({"error": "unsupported push type \"gcm\""})));
    assert_eq!(sb(&r[7]), (400, json!({"error": "bad push token"})), "19 characters");
    assert_eq!(sb(&r[8]), (405, json!({"error": "method not allowed"})));
    assert_eq!(r[8]["allow"], "PUT, DELETE");
    assert_eq!(sb(&r[9]), (401, json!({"error": "unauthorized"})));
    assert_eq!(sb(&r[10]), (200, json!({"tokens": {
        format!("apn:com.example.app:{apn}"): "alice",
        format!("apn:com.example.app~:{apn}"): "alice",
        format!("fcm:example-app:{fcm}"): "alice",
    }})));

    // Bob cannot delete alice's token; registering it himself moves it to him.
    let r = session(&server, "bob", &json!([
        {"method": "DELETE", "path": format!("/tokens/fcm/example-app/{fcm}")},
        put(format!("/tokens/fcm/example-app/{fcm}")),
        admin_tokens.clone(),
    ]));
    assert_eq!(sb(&r[0]), (404, json!({"error": "not found"})));
    assert_eq!(r[1]["status"], 204);
    assert_eq!(r[2]["body"]["tokens"][format!("fcm:example-app:{fcm}")], "bob");

    // Alice deletes her sandbox token: 204, then 404; the other stays.
    let r = session(&server, "alice", &json!([
        {"method": "DELETE", "path": format!("/tokens/apn/com.example.app/{apn}?sandbox")},
        {"method": "DELETE", "path": format!("/tokens/apn/com.example.app/{apn}?sandbox")},
        {"method": "DELETE", "path": "/tokens/apn/com.example.app/short"},
        admin_tokens,
    ]));
    assert_eq!(r[0]["status"], 204, "{}", r[0]);
    assert_eq!(sb(&r[1]), (404, json!({"error": "not found"})));
    assert_eq!(sb(&r[2]), (400, json!({"error": "bad push token"})));
    assert_eq!(sb(&r[3]), (200, json!({"tokens": {
        format!("apn:com.example.app:{apn}"): "alice",
        format!("fcm:example-app:{fcm}"): "bob",
    }})));

    // The admin web wants an admin.
    let r = session(&server, "alice", &json!([{"method": "GET", "path": "/tokens", "base": format!("http://127.0.0.1:{admin_port}"), "basic": ["alice@alpha.test", "alice-pw"]}]));
    assert_eq!(sb(&r[0]), (403, json!({"error": "admin credential required"})));

    // Stored, and the directory snapshot knows who can be woken.
    server.terminate(std::time::Duration::from_secs(10));
    let (mine, snap) = rt().block_on(async {
        let db = store::Store::open(&env.path("data")).await.unwrap();
        (db.push_tokens_of(alice).await.unwrap(), db.load_directory().await.unwrap())
    });
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].kind.as_str(), mine[0].topic.as_str(), mine[0].token.as_str()), ("apn", "com.example.app", apn));
    assert!(snap.user(alice).unwrap().has_push_tokens);
    assert!(snap.user(bob).unwrap().has_push_tokens);
}
