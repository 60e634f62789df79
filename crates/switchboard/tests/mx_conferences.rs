//! Reference 001 §7's scheduled conferences over real HTTP on the real server, driven
//! by MX app sessions in Python `requests` (tests/kit/mx/mx_session.py): book, list,
//! replace and delete with MX's exact fields (`"Id"` a string, `ownerId` the number of
//! `GET /auth`'s `jid`, `description` only when set), `null` for an empty list, another
//! user's conference 404, another `ownerId` 403, the store's 400s, `/conferences/info`
//! from `[mx.conferences]` and `[ivr]`, 405 with `Allow`, and the join of
//! the directory snapshot carrying them at once, and `POST /conferences/{callId}`
//! reaching the engine (an unknown call is 404, not 500).
//! The join of a live call into a conference is the engine's test (scheduled_conference.rs).

mod support;

use support::*;

const DOMAIN: &str = "switchboard.test";
const PASSWORD: &str = "correct-horse-7";
const CLIENT: &str = "phone-app";
const SECRET: &str = "app-secret-1";

fn seed(env: &TestEnv) {
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = store::Store::open(&data).await.expect("store");
        let d = db.ensure_domain(DOMAIN).await.unwrap();
        for (login, ext) in [("alice", "3044"), ("bob", "3045")] {
            db.add_user(&new_user(DOMAIN, login, ext, PASSWORD)).await.unwrap();
        }
        db.add_app(CLIENT, SECRET, Some("Phone"), Some(d.id)).await.unwrap();
        db.close().await;
    });
}

fn session(server: &Server, user: &str, plan: &Value) -> Vec<Value> {
    mx_session(server, (CLIENT, SECRET), (user, PASSWORD), plan)
}

fn sb(r: &Value) -> (u64, Value) {
    (r["status"].as_u64().unwrap(), r["body"].clone())
}

/// Reference 001's sample body, with `ownerId` 0 (= the user).
fn sample() -> Value {
    json!({"Id": "", "ownerId": 0, "name": "Test Conf", "accessId": 47281964, "type": "Once", "startDate": 1516021200,
        "duration": 30, "waitForOwner": false, "delOnOwnerLeave": false, "ws": "None", "wsType": "Undefined"})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

#[test]
fn scheduled_conferences_are_booked_listed_replaced_and_deleted_over_mx() {
    let env = TestEnv::new("mx_conferences");
    seed(&env);
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, "[mx]\nadmin_listen = \"\"\n[mx.conferences]\ndid = \"+15550100\"\n[ivr]\nconference_number = \"7000\"\n").unwrap();
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });

    // alice books the sample.
    let r = session(
        &server,
        "alice",
        &json!([
            {"method": "GET", "path": "/auth"},
            {"method": "GET", "path": "/conferences"},
            {"method": "POST", "path": "/conferences", "json": sample()},
            {"method": "GET", "path": "/conferences"},
            {"method": "GET", "path": "/conferences/info"},
            {"method": "PATCH", "path": "/conferences", "json": {}},
            {"method": "PATCH", "path": "/conferences/1", "json": {}},
            {"method": "POST", "path": "/conferences", "json": with(sample(), "type", json!("Monthly"))},
            {"method": "POST", "path": "/conferences", "json": with(sample(), "duration", json!(0))},
            {"method": "POST", "path": "/conferences", "json": with(sample(), "accessId", json!(100_000_000_000_i64))},
            {"method": "POST", "path": "/conferences", "json": with(sample(), "ownerId", json!(987654321))},
            {"method": "POST", "path": "/conferences", "json": with(with(sample(), "accessId", json!(0)), "name", json!("Daily standup"))},
        ]),
    );
    let jid: u64 = r[0]["body"]["jid"].as_str().expect("jid is a string").parse().unwrap();
    assert_eq!(sb(&r[1]), (200, json!({"conferences": null})), "none yet: null, as MX");
    assert_eq!(r[2]["status"], 200, "{}", r[2]);
    assert_eq!(r[2]["content_type"], "application/json; charset=utf-8");
    let conf = r[2]["body"]["conference"].clone();
    let id = conf["Id"].as_str().expect("Id is a string").to_owned();
    assert!(id.parse::<u64>().is_ok(), "{conf}");
    assert_eq!(
        conf,
        json!({"Id": id, "ownerId": jid, "name": "Test Conf", "accessId": 47281964, "type": "Once", "startDate": 1516021200,
            "duration": 30, "waitForOwner": false, "delOnOwnerLeave": false, "ws": "None", "wsType": "Undefined"}),
        "ownerId is the number of GET /auth's jid; no description when empty"
    );
    assert_eq!(sb(&r[3]), (200, json!({"conferences": [conf.clone()]})));
    let info = &r[4]["body"]["conferences"];
    assert_eq!(r[4]["status"], 200);
    assert_eq!((info["ext"].as_str(), info["did"].as_str()), (Some("7000"), Some("+15550100")), "{info}");
    assert_eq!(info["subject"], "Conference Call: %Date% @ %Time% - %Subject%");
    assert!(info["body"].as_str().unwrap().starts_with("Please join my conference call\n\nSubject: %Subject%"), "{info}");
    assert!(info["meeting"].as_str().unwrap().ends_with("/join?id=%ID%"), "{info}");
    assert_eq!((sb(&r[5]), r[5]["allow"].as_str()), ((405, json!({"error": "method not allowed"})), Some("GET, POST")));
    assert_eq!((r[6]["status"].as_u64(), r[6]["allow"].as_str()), (Some(405), Some("PUT, POST, DELETE")));
    assert_eq!(sb(&r[7]), (400, json!({"error": "invalid type \"Monthly\": expected one of Once, Daily, Weekly, Permanent"})));
    assert_eq!(sb(&r[8]), (400, json!({"error": "invalid duration 0: expected 1 to 1440 minutes (0 only for a Permanent conference)"})));
    assert_eq!(sb(&r[9]), (400, json!({"error": "invalid accessId 100000000000: expected 1 to 99999999999 (digits keyed on a phone)"})));
    assert_eq!(sb(&r[10]), (403, json!({"error": "forbidden"})));
    assert_eq!(r[11]["status"], 200, "{}", r[11]);
    let daily = r[11]["body"]["conference"].clone();
    let random = daily["accessId"].as_u64().unwrap();
    assert!((10_000_000..=99_999_999).contains(&random), "accessId 0: a random 8-digit number: {daily}");
    let daily_id = daily["Id"].as_str().unwrap().to_owned();
    // Each write pokes the directory reload: the engine's snapshot has both at once.
    poll(std::time::Duration::from_secs(2), "the directory snapshot carries both conferences", || {
        let log = std::fs::read_to_string(&server.log).unwrap();
        log.lines().any(|l| l.contains("directory reloaded") && l.contains("conferences=2")).then_some(())
    });

    // bob: the access id is taken in the domain; alice's conference is not found.
    let path = format!("/conferences/{id}");
    let r = session(
        &server,
        "bob",
        &json!([
            {"method": "POST", "path": "/conferences", "json": sample()},
            {"method": "PUT", "path": path, "json": sample()},
            {"method": "DELETE", "path": path},
            {"method": "GET", "path": "/conferences"},
        ]),
    );
    assert_eq!(sb(&r[0]), (400, json!({"error": "accessId 47281964 is already used by another conference in this domain"})));
    assert_eq!(sb(&r[1]), (404, json!({"error": "not found"})));
    assert_eq!(sb(&r[2]), (404, json!({"error": "not found"})));
    assert_eq!(sb(&r[3]), (200, json!({"conferences": null})));

    // alice replaces, joins a call that does not exist, and deletes.
    let put = json!({"Id": "ignored", "ownerId": jid, "name": "Weekly sync", "description": "agenda: numbers", "accessId": 4728,
        "type": "Weekly", "startDate": 1516021200, "duration": 60, "waitForOwner": true, "delOnOwnerLeave": true, "ws": "None", "wsType": "Undefined"});
    let r = session(
        &server,
        "alice",
        &json!([
            {"method": "PUT", "path": path, "json": put},
            {"method": "GET", "path": "/conferences"},
            {"method": "PUT", "path": "/conferences/99999999", "json": sample()},
            {"method": "POST", "path": "/conferences/999999", "json": {"accessId": 4728}},
            {"method": "POST", "path": "/conferences/abc", "json": {"accessId": 4728}},
            {"method": "DELETE", "path": path},
            {"method": "DELETE", "path": path},
            {"method": "DELETE", "path": format!("/conferences/{daily_id}")},
            {"method": "GET", "path": "/conferences"},
        ]),
    );
    assert_eq!(r[0]["status"], 200, "{}", r[0]);
    let replaced = r[0]["body"]["conference"].clone();
    assert_eq!(
        replaced,
        json!({"Id": id, "ownerId": jid, "name": "Weekly sync", "accessId": 4728, "description": "agenda: numbers", "type": "Weekly",
            "startDate": 1516021200, "duration": 60, "waitForOwner": true, "delOnOwnerLeave": true, "ws": "None", "wsType": "Undefined"}),
        "the path's Id, not the body's"
    );
    assert_eq!(sb(&r[1]), (200, json!({"conferences": [replaced, daily]})));
    assert_eq!(sb(&r[2]), (404, json!({"error": "not found"})));
    assert_eq!(sb(&r[3]), (404, json!({"error": "not found"})), "no such call: 404, not 500");
    assert_eq!(r[4]["status"], 404, "a non-numeric call id: {}", r[4]);
    assert_eq!((r[5]["status"].as_u64(), r[5]["body"].as_str()), (Some(204), Some("")));
    assert_eq!(sb(&r[6]), (404, json!({"error": "not found"})));
    assert_eq!(r[7]["status"], 204);
    assert_eq!(sb(&r[8]), (200, json!({"conferences": null})));
}
