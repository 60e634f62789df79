//! Domain isolation over every endpoint: two domains (`alpha.test`, `beta.test`), each
//! with an admin API key, a user and a room that a real SIPp caller dialled into
//! (`conf-1@alpha.test`, `conf-1@beta.test`, both sent to the server's address: the
//! Request-URI host names the domain). Then, for every operation `/openapi.json` lists
//! (so a new endpoint cannot be forgotten: an operation this test does not know fails
//! it) plus the LOOKUP verb, alpha's key is aimed at beta's objects: the answer is a
//! 404 exactly like for a missing object (never 403, never beta's data), lists and
//! counts hold none of beta's objects, and afterwards beta's objects are all still
//! there, unchanged. Beta's own key reaching the same objects (200s) shows the 404s
//! are about the domain, not about broken paths.
//!
//! | test | what |
//! |---|---|
//! | `a_domain_admin_cannot_see_or_touch_another_domain` | the above |
//!
//! The domains, keys and users are made with the `store` crate on the data dir before
//! the server starts (as the CLI would), so the server's first directory has them.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

const SUPER: &str = "isolation-superuser-token";

/// Alpha's and beta's credentials and objects.
struct Tenant {
    domain: &'static str,
    key: String,
    key_name: String,
    user_id: i64,
    user_login: &'static str,
    app: &'static str,
}

fn provision(data: &std::path::Path) -> (Tenant, Tenant) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let db = store::Store::open(data).await.expect("store");
        let mut made = Vec::new();
        for (domain, login, ext, app) in [("alpha.test", "alpha-alice", "3044", "alpha-app"), ("beta.test", "beta-bob", "3044", "beta-app")] {
            let d = db.add_domain(domain, None).await.expect("domain");
            let key_name = format!("{}-admin", &domain[..domain.find('.').unwrap()]);
            let (_, key) = db.add_api_key(&key_name, Some(d.id), store::Role::Admin).await.expect("key");
            let user = db
                .add_user(&store::NewUser {
                    domain: domain.into(),
                    login: login.into(),
                    password: "correct horse".into(),
                    ext: Some(ext.into()),
                    ..Default::default()
                })
                .await
                .expect("user");
            db.add_app(app, "app secret", Some("An app"), Some(d.id)).await.expect("app");
            made.push(Tenant { domain, key, key_name, user_id: user.id, user_login: login, app });
        }
        db.close().await;
        let beta = made.pop().unwrap();
        let alpha = made.pop().unwrap();
        (alpha, beta)
    })
}

fn as_key(server: &Server, key: &str, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
    let body = body.map(Value::to_string);
    http_request(server.http, method, path, body.as_deref(), Some(key))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}; server log:\n{}", tail(&server.log, 30)))
}

fn json_of(r: &HttpResponse) -> Value {
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

/// One live room of `key`'s domain with an active participant: (confid, participant).
fn wait_room(server: &Server, key: &str) -> (String, Value) {
    poll(Duration::from_secs(20), "a room with an active participant", || {
        let rooms = json_of(&as_key(server, key, "GET", "/rest/v1/uc/conferences", None));
        let confid = rooms.as_array()?.first()?["confid"].as_str()?.to_owned();
        let ps = json_of(&as_key(server, key, "GET", &format!("/rest/v1/uc/conferences/{confid}/participants"), None));
        let p = ps.as_array()?.iter().find(|p| p["state"] == "active")?.clone();
        Some((confid, p))
    })
}

#[test]
fn a_domain_admin_cannot_see_or_touch_another_domain() {
    let env = TestEnv::new("domain_isolation");
    env.make_tones();
    let (alpha, beta) = provision(&env.path("data"));
    let sink = format!("127.0.0.1:{}", env.ports.peer_sip(7));
    let mut server = Server::start_with(
        &env,
        ServerOptions { api_token: Some(SUPER.into()), t1_ms: Some(10), extra_args: vec!["--gateway".into(), format!("sip:{sink}")] },
    );
    // a caller in conf-1 of each domain, for as long as the test runs
    let _callers: Vec<SippChild> = [(0, alpha.domain), (1, beta.domain)]
        .into_iter()
        .map(|(slot, domain)| {
            Sipp::new(&env, "uac_call_domain.xml", &format!("caller_{domain}"))
                .remote(server.sip)
                .slot(slot)
                .service("conf-1")
                .arg("-key")
                .arg("sip_domain")
                .arg(domain)
                .hold_ms(120_000)
                .timeout_s(180)
                .spawn()
        })
        .collect();
    let (alpha_conf, _) = wait_room(&server, &alpha.key);
    let (beta_conf, beta_p) = wait_room(&server, &beta.key);
    assert_ne!(alpha_conf, beta_conf, "room 1 of each domain is its own room");
    let room = |key: &str, confid: &str| json_of(&as_key(&server, key, "GET", &format!("/rest/v1/uc/conferences/{confid}"), None));
    assert_eq!(room(&alpha.key, &alpha_conf)["confuri"], "<sip:conf-1@alpha.test>");
    assert_eq!(room(&beta.key, &beta_conf)["confuri"], "<sip:conf-1@beta.test>");
    let beta_pid = beta_p["participantid"].as_str().unwrap().to_owned();
    let beta_callid = beta_p["callid"].as_str().unwrap().to_owned();
    let beta_legs = json_of(&as_key(&server, &beta.key, "GET", "/v1/calls", None));
    let beta_leg = beta_legs.as_array().unwrap().iter().find(|l| l["call_id"] == beta_callid.as_str()).expect("beta's leg").clone();
    assert_eq!(beta_leg["domain"], "beta.test");
    let beta_leg_id = beta_leg["leg_id"].as_str().unwrap().to_owned();

    // a webhook of beta's, made with beta's key
    let r = as_key(&server, &beta.key, "POST", "/v1/webhooks", Some(&json!({ "url": format!("http://{sink}/beta-hook") })));
    assert_eq!(r.status, 201, "{r:?}");
    let beta_hook = json_of(&r)["id"].as_i64().unwrap().to_string();

    // Every operation of the document, aimed at beta's objects. The table says what each
    // path parameter is and which body makes the request valid apart from the domain.
    let doc = json_of(&server.get("/openapi.json"));
    let mut seen = BTreeSet::new();
    let beta_user = beta.user_id.to_string();
    let fill = |path: &str| {
        path.replace("{confid}", &beta_conf)
            .replace("{participantid}", &beta_pid)
            .replace("{leg_id}", &beta_leg_id)
            .replace("{webhook_id}", &beta_hook)
            .replace("{client_id}", beta.app)
            .replace("{recording_id}", &format!("{beta_conf}~1-mix"))
            .replace("{id}", &beta_user)
            .replace("/v1/domains/{name}", &format!("/v1/domains/{}", beta.domain))
            .replace("/v1/keys/{name}", &format!("/v1/keys/{}", beta.key_name))
    };
    let dial_target = json!({ "to": format!("sip:nobody@{sink}") });
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().expect("operationId").to_owned();
            seen.insert(id.clone());
            let method = method.to_uppercase();
            let mut url = fill(path);
            // (body, what alpha must get)
            let (body, expect): (Option<Value>, Expect) = match id.as_str() {
                "health" => continue,
                // objects of beta, by id: not found
                "get_conference" | "end_conference" | "list_participants" | "get_topology" | "get_participant" | "kick_participant"
                | "get_call" | "hang_up_call" | "get_domain" | "delete_domain" | "get_user" | "delete_user" | "get_app"
                | "delete_app" | "delete_key" => (None, Expect::NotFound),
                "dial_out" => (Some(dial_target.clone()), Expect::NotFound),
                // control of beta's call (by its leg id), with bodies that are valid
                "hold_call" => (Some(json!({ "side": "caller" })), Expect::NotFound),
                "unhold_call" | "record_call" | "stop_recording_call" => (None, Expect::NotFound),
                "transfer_call" => (Some(json!({ "side": "caller", "to": "3046" })), Expect::NotFound),
                "send_dtmf" => (Some(json!({ "side": "caller", "digits": "1" })), Expect::NotFound),
                "conference_call" => (Some(json!({ "room": "1" })), Expect::NotFound),
                "supervise_call" => (Some(json!({ "to": "3046", "mode": "listen" })), Expect::NotFound),
                "redirect_call" => (Some(json!({ "to": "3046" })), Expect::NotFound),
                "intercept_call" => (Some(json!({ "device": "3046" })), Expect::NotFound),
                "patch_participant" => (Some(json!({ "muted": true })), Expect::NotFound),
                // prompts and recordings of beta's room
                "play_room_prompt" | "play_participant_prompt" => (Some(json!({ "tones": "440/100" })), Expect::NotFound),
                "stop_room_prompt" | "stop_participant_prompt" | "get_room_recording" | "stop_room_recording" => (None, Expect::NotFound),
                "start_room_recording" => (Some(json!({ "tracks": true })), Expect::NotFound),
                "pause_room_recording" => (Some(json!({ "paused": true })), Expect::NotFound),
                "get_recording" => (None, Expect::NotFound),
                // live audio of beta's room or call
                "start_room_stream" | "start_leg_stream" => (Some(json!({ "url": "ws://127.0.0.1:9/mallory" })), Expect::NotFound),
                "stop_room_stream" | "stop_leg_stream" => (None, Expect::NotFound),
                // instant messages to and of beta's user
                "send_message" => (Some(json!({ "body": "hi" })), Expect::NotFound),
                "list_messages" => (None, Expect::NotFound),
                "list_recordings" => (None, Expect::NoLeak),
                "change_topology" => (Some(json!([{ "from": "*", "to": "*", "enabled": true }])), Expect::NotFound),
                "patch_domain" => (Some(json!({ "enabled": false })), Expect::NotFound),
                "patch_user" => (Some(json!({ "first_name": "Mallory" })), Expect::NotFound),
                "set_user_password" => (Some(json!({ "password": "pwned" })), Expect::NotFound),
                "patch_app" => (Some(json!({ "enabled": false })), Expect::NotFound),
                // beta's objects found by a key: not found
                "lookup_conferences" => (Some(json!({ "callid": beta_callid })), Expect::NotFound),
                // creating in beta's domain: not found; a domain admin creates no domain
                "create_user" => (Some(json!({ "login": "mallory", "password": "x", "domain": beta.domain })), Expect::NotFound),
                "create_app" => (Some(json!({ "client_id": "mallory-app", "secret": "x", "domain": beta.domain })), Expect::NotFound),
                "create_key" => (Some(json!({ "name": "mallory-key", "domain": beta.domain })), Expect::NotFound),
                "create_domain" => (Some(json!({ "name": "gamma.test" })), Expect::Forbidden),
                // collections: none of beta's in them
                "list_conferences" | "list_calls" | "get_status" | "list_events" | "list_domains" | "list_users" | "list_apps"
                | "list_keys" | "list_registrations" => (None, Expect::NoLeak),
                // a call alpha places is alpha's
                "place_call" => (Some(dial_target.clone()), Expect::Created),
                // beta's webhooks and event stream
                "get_webhook" | "delete_webhook" | "rotate_webhook" => (None, Expect::NotFound),
                "patch_webhook" => (Some(json!({ "url": "http://127.0.0.1:9/mallory" })), Expect::NotFound),
                "create_webhook" => (Some(json!({ "url": "http://127.0.0.1:9/mallory", "domain": beta.domain })), Expect::NotFound),
                "list_webhooks" => (None, Expect::NoLeak),
                "list_wcs_hooks" => (None, Expect::NoLeak),
                "list_streams" => (None, Expect::NoLeak),
                "stream_events" => {
                    url.push_str(&format!("?follow=false&domain={}", beta.domain));
                    (None, Expect::NotFound)
                }
                other => panic!("operation {other} ({method} {path}) is new: say here what alpha may do with beta's objects through it"),
            };
            let r = as_key(&server, &alpha.key, &method, &url, body.as_ref());
            check(&id, &r, &expect, &[&beta_conf, &beta_pid, &beta_leg_id, &beta_callid, beta.domain, beta.app, &beta.key_name, beta.user_login, "beta-hook"]);
            if expect == Expect::Created {
                assert_eq!(json_of(&r)["domain"], "alpha.test", "{id}: the call is alpha's");
                let leg = json_of(&r)["leg_id"].as_str().unwrap().to_owned();
                let r = as_key(&server, &beta.key, "GET", &format!("/v1/calls/{leg}"), None);
                assert_eq!(r.status, 404, "beta cannot see alpha's call: {r:?}");
            }
        }
    }
    // alpha's own stream and webhooks hold nothing of beta's (beta's calls made events)
    let own = as_key(&server, &alpha.key, "GET", "/v1/events/stream?follow=false", None);
    check("stream_events (own)", &own, &Expect::NoLeak, &[&beta_conf, &beta_pid, &beta_leg_id, &beta_callid, beta.domain]);
    assert!(own.body.contains("alpha.test"), "alpha's own events are there: {}", own.body);
    let beta_stream = as_key(&server, &beta.key, "GET", "/v1/events/stream?follow=false", None);
    assert!(beta_stream.body.contains(&beta_leg_id), "beta's stream has beta's leg: {}", beta_stream.body);
    let r = as_key(&server, &beta.key, "GET", &format!("/v1/webhooks/{beta_hook}"), None);
    assert_eq!((r.status, json_of(&r)["url"].clone()), (200, json!(format!("http://{sink}/beta-hook"))), "beta's webhook unchanged: {r:?}");
    for must in ["list_conferences", "lookup_conferences", "end_conference", "place_call", "create_domain", "list_registrations", "create_key"] {
        assert!(seen.contains(must), "{must} missing from /openapi.json");
    }
    // LOOKUP, the custom verb the document shows as POST .../lookup, and the "from a
    // script" path forms
    for (method, path, body) in [
        ("LOOKUP", "/rest/v1/uc/conferences".to_owned(), Some(json!({ "callid": beta_callid }))),
        ("LOOKUP", "/rest/v1/uc/conferences".to_owned(), Some(json!({ "sipuserlogin": beta.user_login }))),
        ("LOOKUP", "/rest/v1/uc/conferences".to_owned(), Some(json!({ "confid": beta_conf }))),
        ("GET", format!("/rest/v1/uc/conferences/callid={beta_callid}"), None),
        ("DELETE", format!("/rest/v1/uc/conferences/confid={beta_conf}"), None),
        ("GET", format!("/rest/v1/uc/conferences/confnumber={}/participants", &beta_conf[beta_conf.len() - 6..]), None),
    ] {
        let r = as_key(&server, &alpha.key, method, &path, body.as_ref());
        check(&format!("{method} {path}"), &r, &Expect::NotFound, &[&beta_conf, &beta_pid]);
    }
    // alpha's counts are alpha's: one room, its caller's leg and the call it placed
    let status = json_of(&as_key(&server, &alpha.key, "GET", "/v1/status", None));
    assert_eq!(status["rooms"], 1, "{status}");
    assert_eq!(status["legs"], 2, "{status}");
    assert!(status.get("transactions").is_none(), "no server-wide figures for a domain: {status}");
    let count = json_of(&as_key(&server, &alpha.key, "GET", "/rest/v1/uc/conferences?countonly=1", None));
    assert_eq!(count["count"], 1, "{count}");
    let users = json_of(&as_key(&server, &alpha.key, "GET", "/v1/users", None));
    assert_eq!(users.as_array().map(|u| u.len()), Some(1), "{users}");
    assert_eq!(users[0]["login"], alpha.user_login, "{users}");
    let domains = json_of(&as_key(&server, &alpha.key, "GET", "/v1/domains", None));
    assert_eq!(domains.as_array().map(|d| d.len()), Some(1), "{domains}");
    // a user's lookup key finds the user's room in alpha only (alice is no participant)
    let r = as_key(&server, &alpha.key, "LOOKUP", "/rest/v1/uc/conferences", Some(&json!({ "sipuserlogin": alpha.user_login })));
    assert_eq!(r.status, 404, "{r:?}");
    // alpha's own room 1 is what `confroomnum=1` means for alpha
    let r = as_key(&server, &alpha.key, "GET", "/rest/v1/uc/conferences/confroomnum=1", None);
    assert_eq!(json_of(&r)["confid"], alpha_conf.as_str(), "{r:?}");

    // beta's objects are all still there, unchanged, and beta reaches them
    let ok = |path: &str| {
        let r = as_key(&server, &beta.key, "GET", path, None);
        assert_eq!(r.status, 200, "beta GET {path}: {r:?}");
        json_of(&r)
    };
    assert_eq!(ok(&format!("/rest/v1/uc/conferences/{beta_conf}/participants/{beta_pid}"))["state"], "active");
    assert_eq!(ok(&format!("/rest/v1/uc/conferences/{beta_conf}/participants/{beta_pid}"))["muted"], false);
    assert_eq!(ok(&format!("/v1/calls/{beta_leg_id}"))["state"], "active");
    assert_eq!(ok(&format!("/v1/domains/{}", beta.domain))["enabled"], true);
    assert_eq!(ok(&format!("/v1/users/{}", beta.user_id))["first_name"], Value::Null);
    assert_eq!(ok(&format!("/v1/apps/{}", beta.app))["enabled"], true);
    assert!(ok("/v1/keys").as_array().unwrap().iter().any(|k| k["name"] == beta.key_name.as_str()));
    assert_eq!(ok(&format!("/rest/v1/uc/conferences/{beta_conf}/topology")).as_array().unwrap().len(), 1);
    assert!(ok("/v1/users").as_array().unwrap().iter().all(|u| u["login"] != "mallory"));
    // and the superuser sees both domains
    let all = json_of(&server.get("/rest/v1/uc/conferences"));
    let confids: BTreeSet<&str> = all.as_array().unwrap().iter().filter_map(|r| r["confid"].as_str()).collect();
    assert!(confids.contains(alpha_conf.as_str()) && confids.contains(beta_conf.as_str()), "{all}");
    server.assert_alive();
}

#[derive(Debug, PartialEq)]
enum Expect {
    /// 404 in the dialect's format, with nothing of beta's in it.
    NotFound,
    /// 403: a domain admin may not do this at all.
    Forbidden,
    /// 200 with none of beta's objects in the answer.
    NoLeak,
    /// 201: alpha made its own object.
    Created,
}

fn check(what: &str, r: &HttpResponse, expect: &Expect, beta_values: &[&str]) {
    let want = match expect {
        Expect::NotFound => 404,
        Expect::Forbidden => 403,
        Expect::NoLeak => 200,
        Expect::Created => 201,
    };
    assert_eq!(r.status, want, "{what}: {r:?}");
    if want >= 400 {
        let body: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {r:?}"));
        assert_eq!(body["error_code"], 1000 + want as u64, "{what}: {body}");
    }
    for v in beta_values {
        assert!(!r.body.contains(v), "{what}: the answer leaks beta's {v:?}: {}", r.body);
    }
}
