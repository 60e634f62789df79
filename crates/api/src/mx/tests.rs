//! The MX routes over a real socket (plain and TLS), on the in-memory token backend.

use super::*;
use crate::tokens::memory::MemoryBackend;
use crate::tokens::{AppInfo, TokenConfig};
use engine::users::{DirectorySnapshot, Domain, Role};
use std::net::SocketAddr;

fn user(id: i64, login: &str, ext: &str, role: Role) -> User {
    User { id, domain_id: 1, login: login.into(), ext: Some(ext.into()), first_name: Some(login.to_uppercase()), role, enabled: true, ..Default::default() }
}

async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> (SocketAddr, Arc<MemoryBackend>) {
    let alpha = Domain { id: 1, name: "alpha.test".into(), aliases: vec![], realm: "alpha.test".into(), enabled: true };
    let beta = Domain { id: 2, name: "beta.test".into(), aliases: vec![], realm: "beta.test".into(), enabled: true };
    let mut carol = user(9, "carol", "100", Role::User);
    carol.domain_id = 2;
    let mut bob = user(8, "bob", "20", Role::Admin);
    bob.email = Some("bob@alpha.test".into());
    let users = vec![user(7, "alice", "3044", Role::User), bob.clone(), carol.clone()];
    let dir = Arc::new(DirectorySnapshot::new(1, vec![alpha, beta], users.clone(), vec![]));
    let backend = Arc::new(MemoryBackend {
        users: users.into_iter().map(|u| (u, "pw".to_string())).collect(),
        apps: vec![(AppInfo { client_id: "phone".into(), name: Some("Phone app".into()), domain_id: Some(1), enabled: true }, "s3cret".into())],
        ..Default::default()
    });
    let rx = tokio::sync::watch::channel(dir).1;
    let svc = TokenService::start(TokenConfig { default_domain: "alpha.test".into(), ..TokenConfig::default() }, backend.clone(), rx, None).await.unwrap();
    let app = routes(MxState::new(svc.clone(), None))
        .merge(Router::new().nest("/admin", admin::routes(admin::AdminState { tokens: svc, api_token: Some("root".into()), verifiers: vec![], store: None })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::tls::serve(listener, app, tls, std::future::pending()));
    (addr, backend)
}

/// (status, headers we look at, body) of a blocking request, off the runtime's threads.
async fn call(agent: ureq::Agent, method: &'static str, url: String, auth: Option<String>, form: Option<&'static str>) -> (u16, Option<String>, Value) {
    tokio::task::spawn_blocking(move || {
        let mut req = agent.request(method, &url);
        if let Some(a) = &auth {
            req = req.set("Authorization", a);
        }
        let resp = match form {
            Some(f) => req.set("Content-Type", "application/x-www-form-urlencoded").send_string(f),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{url}: {e}"),
        };
        let status = resp.status();
        let www = resp.header("WWW-Authenticate").map(String::from);
        let body = resp.into_string().unwrap();
        (status, www, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    })
    .await
    .unwrap()
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_grant_then_user_info_contacts_and_logout() {
    let (addr, backend) = server(None).await;
    let a = ureq::Agent::new();
    let u = |p: &str| format!("http://{addr}{p}");
    let grant = "grant_type=password&username=alice&password=pw";

    let (s, www, body) = call(a.clone(), "POST", u("/auth"), None, Some(grant)).await;
    assert_eq!((s, www.as_deref(), body), (401, Some("Basic realm=\"Switchboard client application\""), json!({"error": "unauthorized"})));
    let (s, _, body) = call(a.clone(), "POST", u("/auth"), Some(basic("phone", "nope")), Some(grant)).await;
    assert_eq!((s, body), (403, json!({"error": "bad client-id or app secret"})));
    let (s, _, body) = call(a.clone(), "POST", u("/auth"), Some(basic("phone", "s3cret")), Some("grant_type=client_credentials")).await;
    assert_eq!((s, body), (403, json!({"error": "bad grant_type"})));
    let (s, _, body) = call(a.clone(), "POST", u("/auth"), Some(basic("phone", "s3cret")), Some("grant_type=password&username=alice&password=x")).await;
    assert_eq!((s, body), (403, json!({"error": "bad username or password"})));
    // The app belongs to alpha.test: beta's carol cannot log in through it.
    let (s, _, _) = call(a.clone(), "POST", u("/auth"), Some(basic("phone", "s3cret")), Some("grant_type=password&username=carol@beta.test&password=pw")).await;
    assert_eq!(s, 403);

    let (s, _, body) = call(a.clone(), "POST", u("/auth"), Some(basic("phone", "s3cret")), Some(grant)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!((body["token_type"].as_str(), body["expires_in"].as_u64()), (Some("Bearer"), Some(3600)));
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());

    let (s, _, info) = call(a.clone(), "GET", u("/auth"), Some(bearer.clone()), None).await;
    assert_eq!(s, 200);
    assert_eq!((info["ext"].as_str(), info["jid"].as_str()), (Some("3044"), Some("7")));
    let pwd = info["softPhonePwd"].as_str().unwrap().to_string();
    assert_eq!(backend.devices.lock().unwrap().iter().map(|d| (d.0, d.1.clone(), d.2.clone())).collect::<Vec<_>>(), vec![(7, "alice".into(), pwd)]);

    let (s, _, c) = call(a.clone(), "GET", u("/contacts"), Some(bearer.clone()), None).await;
    assert_eq!(s, 200);
    // Sorted by ext as text ("20" < "3044"); beta's carol absent; email only where set.
    assert_eq!(
        c,
        json!({"contacts": [
            {"jid": "8", "firstName": "BOB", "lastName": "", "ext": "20", "email": "bob@alpha.test"},
            {"jid": "7", "firstName": "ALICE", "lastName": "", "ext": "3044"}]})
    );

    let (s, _, body) = call(a.clone(), "DELETE", u("/auth/logout"), Some(bearer.clone()), None).await;
    assert_eq!((s, body), (200, json!({"userLogout": "alice"})));
    assert!(backend.devices.lock().unwrap().is_empty());
    let (s, www, body) = call(a.clone(), "GET", u("/auth"), Some(bearer.clone()), None).await;
    assert_eq!((s, www.as_deref(), body), (401, Some("Bearer realm=\"Switchboard\""), json!({"error": "invalid token: token revoked"})));
    let (s, _, body) = call(a.clone(), "DELETE", u("/auth"), Some(bearer), None).await;
    assert_eq!((s, body), (403, json!({"error": "invalid token: token revoked"})));
    let (s, _, body) = call(a.clone(), "GET", u("/contacts"), Some("Bearer garbage".into()), None).await;
    assert_eq!((s, body), (401, json!({"error": "invalid token: invalid token"})));
    let (s, _, body) = call(a.clone(), "PUT", u("/contacts"), None, None).await;
    assert_eq!((s, body), (405, json!({"error": "method not allowed"})));
    let (s, _, body) = call(a.clone(), "GET", u("/debug/log"), Some(basic("phone", "s3cret")), None).await;
    assert_eq!((s, body), (404, json!({"error": "not found"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_web_needs_an_admin_and_shows_no_secrets() {
    let (addr, _) = server(None).await;
    let a = ureq::Agent::new();
    let u = |p: &str| format!("http://{addr}/admin{p}");
    let (s, _, _) = call(a.clone(), "GET", u("/apps"), None, None).await;
    assert_eq!(s, 401);
    let (s, _, body) = call(a.clone(), "GET", u("/apps"), Some(basic("alice", "pw")), None).await;
    assert_eq!((s, body), (403, json!({"error": "admin credential required"})));
    let (s, _, body) = call(a.clone(), "GET", u("/apps"), Some(basic("bob@alpha.test", "pw")), None).await;
    assert_eq!((s, body), (200, json!({"apps": {"phone": "Phone app"}})));
    let (s, _, body) = call(a.clone(), "GET", u("/users"), Some(basic("bob", "pw")), None).await;
    assert_eq!(s, 200);
    assert!(body["users"]["alice"].is_object() && body["users"].get("carol").is_none(), "{body}");
    assert!(!body.to_string().contains("pw\""), "no secrets: {body}");
    let (s, _, body) = call(a.clone(), "GET", u("/tokens"), Some("Bearer root".into()), None).await;
    assert_eq!((s, body), (200, json!({"tokens": {}})));

    let h = format!("http://{addr}");
    let (_, _, t) = call(a.clone(), "POST", format!("{h}/auth"), Some(basic("phone", "s3cret")), Some("grant_type=password&username=alice&password=pw")).await;
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let (s, _, body) = call(a.clone(), "GET", u("/connections"), Some(basic("bob", "pw")), None).await;
    assert_eq!((s, body), (200, json!({"connections": ["alice"]})));
    let (s, _, body) = call(a.clone(), "POST", u("/users"), Some(basic("bob", "pw")), Some("login=alice")).await;
    assert_eq!((s, body), (200, json!({"userLogout": "alice"})));
    let (s, _, _) = call(a.clone(), "GET", format!("{h}/auth"), Some(bearer), None).await;
    assert_eq!(s, 401);
    let (s, _, body) = call(a.clone(), "POST", u("/users"), Some(basic("bob", "pw")), Some("login=carol@beta.test")).await;
    assert_eq!((s, body), (404, json!({"error": "not found"})), "another domain's user is not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let dir = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
    let (cert, key) = crate::tls::self_signed(&dir, &[]).unwrap();
    let (addr, _) = server(Some(crate::tls::server_config(&cert, &key).unwrap())).await;
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let agent = ureq::AgentBuilder::new().tls_config(Arc::new(client)).build();
    let (s, _, body) = call(agent, "GET", format!("https://localhost:{}/.well-known/jwks.json", addr.port()), None, None).await;
    assert_eq!(s, 200);
    assert_eq!(body["keys"][0]["alg"], "ES256");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = tokio::task::spawn_blocking(move || ureq::get(&format!("http://{addr}/.well-known/jwks.json")).call().is_err()).await.unwrap();
    assert!(plain);
    let _ = std::fs::remove_dir_all(dir);
}

/// (status, Allow, body) of a JSON request with a bearer token.
async fn call_json(method: &'static str, url: String, bearer: Option<String>, body: Option<Value>) -> (u16, Option<String>, Value) {
    tokio::task::spawn_blocking(move || {
        let mut req = ureq::request(method, &url);
        if let Some(b) = &bearer {
            req = req.set("Authorization", &format!("Bearer {b}"));
        }
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{url}: {e}"),
        };
        let status = resp.status();
        let allow = resp.header("Allow").map(String::from);
        let text = resp.into_string().unwrap();
        (status, allow, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    })
    .await
    .unwrap()
}

async fn poked(n: &tokio::sync::Notify) {
    tokio::time::timeout(std::time::Duration::from_secs(2), n.notified()).await.expect("the directory reload is poked");
}

/// Scheduled conferences on the real store (SQLite in memory): MX's item shape, the
/// owner's list only, 404 for another's, 403 for another ownerId, the store's 400s,
/// `/conferences/info`, and every write poking the directory reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_conferences_are_booked_listed_replaced_and_deleted() {
    let db = store::Store::open_url("sqlite::memory:").await.unwrap();
    db.ensure_domain("alpha.test").await.unwrap();
    let new = |login: &str, ext: &str| store::NewUser { domain: "alpha.test".into(), login: login.into(), password: "pw".into(), ext: Some(ext.into()), ..Default::default() };
    let alice = db.add_user(&new("alice", "3044")).await.unwrap();
    let bob = db.add_user(&new("bob", "3045")).await.unwrap();
    let rx = tokio::sync::watch::channel(Arc::new(db.load_directory().await.unwrap())).1;
    let svc = TokenService::start(TokenConfig { default_domain: "alpha.test".into(), ..TokenConfig::default() }, Arc::new(db.clone()), rx, None).await.unwrap();
    let poke = Arc::new(tokio::sync::Notify::new());
    let info = conferences::ConferenceInfo { ext: "7000".into(), did: "+15550100".into(), ..Default::default() };
    let state = MxState { store: Some(db.clone()), directory_changed: Some(poke.clone()), conferences: Arc::new(info), ..MxState::new(svc.clone(), None) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::tls::serve(listener, routes(state), None, std::future::pending()));
    let u = |p: &str| format!("http://{addr}{p}");
    let a = Some(svc.issue(&alice, "alpha.test").await.unwrap().access_token);
    let b = Some(svc.issue(&bob, "alpha.test").await.unwrap().access_token);

    let (s, _, body) = call_json("GET", u("/conferences"), a.clone(), None).await;
    assert_eq!((s, body), (200, json!({ "conferences": null })));
    let (s, _, body) = call_json("GET", u("/conferences"), None, None).await;
    assert_eq!((s, body), (401, json!({ "error": "unauthorized" })));

    let sample = json!({"Id": "", "ownerId": 0, "name": "Test Conf", "accessId": 47281964, "type": "Once", "startDate": 1516021200,
        "duration": 30, "waitForOwner": false, "delOnOwnerLeave": false, "ws": "None", "wsType": "Undefined"});
    let (s, _, body) = call_json("POST", u("/conferences"), a.clone(), Some(sample.clone())).await;
    assert_eq!(s, 200, "{body}");
    poked(&poke).await;
    let conf = body["conference"].clone();
    let id = conf["Id"].as_str().expect("Id is a string").to_owned();
    assert_eq!(
        conf,
        json!({"Id": id, "ownerId": alice.id, "name": "Test Conf", "accessId": 47281964, "type": "Once", "startDate": 1516021200,
            "duration": 30, "waitForOwner": false, "delOnOwnerLeave": false, "ws": "None", "wsType": "Undefined"})
    );
    let keys: Vec<&String> = conf.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Id", "ownerId", "name", "accessId", "type", "startDate", "duration", "waitForOwner", "delOnOwnerLeave", "ws", "wsType"], "MX's order");
    let (s, _, body) = call_json("GET", u("/conferences"), a.clone(), None).await;
    assert_eq!((s, body), (200, json!({ "conferences": [conf.clone()] })));
    let (_, _, body) = call_json("GET", u("/conferences"), b.clone(), None).await;
    assert_eq!(body, json!({ "conferences": null }), "only the owner's");

    // Refusals: the store's text, nothing written.
    let with = |k: &str, v: Value| {
        let mut x = sample.clone();
        x[k] = v;
        x
    };
    for (body, text) in [
        (with("type", json!("Monthly")), "invalid type \"Monthly\": expected one of Once, Daily, Weekly, Permanent"),
        (with("duration", json!(0)), "invalid duration 0: expected 1 to 1440 minutes (0 only for a Permanent conference)"),
        (with("accessId", json!(47281964)), "accessId 47281964 is already used by another conference in this domain"),
        (with("name", json!("")), "the conference name must not be empty"),
    ] {
        let (s, _, got) = call_json("POST", u("/conferences"), b.clone(), Some(body)).await;
        assert_eq!((s, got), (400, json!({ "error": text })));
    }
    let (s, _, got) = call_json("POST", u("/conferences"), b.clone(), Some(with("ownerId", json!(alice.id)))).await;
    assert_eq!((s, got), (403, json!({ "error": "forbidden" })));

    // PUT replaces; description shows once set; another's is 404.
    let mut put = with("description", json!("agenda"));
    put["duration"] = json!(45);
    put["ownerId"] = json!(alice.id);
    let (s, _, got) = call_json("PUT", u(&format!("/conferences/{id}")), a.clone(), Some(put.clone())).await;
    assert_eq!(s, 200, "{got}");
    poked(&poke).await;
    assert_eq!((got["conference"]["Id"].as_str(), got["conference"]["description"].as_str(), got["conference"]["duration"].as_u64()), (Some(id.as_str()), Some("agenda"), Some(45)));
    let (s, _, got) = call_json("PUT", u(&format!("/conferences/{id}")), b.clone(), Some(put.clone())).await;
    assert_eq!((s, got), (404, json!({ "error": "not found" })));
    let (s, _, _) = call_json("PUT", u("/conferences/99999"), a.clone(), Some(put)).await;
    assert_eq!(s, 404);
    let (s, _, got) = call_json("DELETE", u(&format!("/conferences/{id}")), b.clone(), None).await;
    assert_eq!((s, got), (404, json!({ "error": "not found" })));

    let (s, _, got) = call_json("GET", u("/conferences/info"), a.clone(), None).await;
    assert_eq!(s, 200);
    assert_eq!(got["conferences"]["ext"], "7000");
    assert_eq!(got["conferences"]["did"], "+15550100");
    assert_eq!(got["conferences"]["subject"], conferences::DEFAULT_SUBJECT);
    let (s, allow, got) = call_json("PATCH", u("/conferences"), a.clone(), Some(json!({}))).await;
    assert_eq!((s, allow.as_deref(), got), (405, Some("GET, POST"), json!({ "error": "method not allowed" })));
    // The join needs the engine.
    let (s, _, _) = call_json("POST", u("/conferences/12"), a.clone(), Some(json!({"accessId": 47281964}))).await;
    assert_eq!(s, 503);

    let (s, _, got) = call_json("DELETE", u(&format!("/conferences/{id}")), a.clone(), None).await;
    assert_eq!((s, got), (204, Value::Null));
    poked(&poke).await;
    let (s, _, _) = call_json("DELETE", u(&format!("/conferences/{id}")), a.clone(), None).await;
    assert_eq!(s, 404);
    let (_, _, body) = call_json("GET", u("/conferences"), a, None).await;
    assert_eq!(body, json!({ "conferences": null }));
}
