//! OAuth2 `/auth` and its JWTs, with independent libraries: requests-oauthlib's password
//! grant gets a token, PyJWT verifies it against our JWKS, `GET /auth` answers with it;
//! logout revokes it; tokens outlive key rotation and a restart; a stand-in OpenID
//! Connect issuer (PyJWT-signed id_tokens) logs a user in; the admin web wants an admin
//! and shows no secret, also over HTTPS.
//!
//! Users and apps are written with the store crate before the server starts.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

const CLIENT: &str = "phone-app";
const SECRET: &str = "app-secret-1";

/// alpha.test with alice (user, ext 3044) and bob (admin, ext 20), and the app.
fn seed(data: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        std::fs::create_dir_all(data).unwrap();
        let db = store::Store::open(data).await.expect("store");
        let d = db.ensure_domain("alpha.test").await.unwrap();
        for (login, ext, role, first) in [("alice", "3044", store::Role::User, "Alice"), ("bob", "20", store::Role::Admin, "Bob")] {
            db.add_user(&store::NewUser {
                domain: "alpha.test".into(),
                login: login.into(),
                password: format!("{login}-pw"),
                ext: Some(ext.into()),
                first_name: Some(first.into()),
                last_name: Some("Example".into()),
                email: (login == "bob").then(|| "bob@alpha.test".to_string()),
                role,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        db.add_app(CLIENT, SECRET, Some("Phone"), Some(d.id)).await.unwrap();
        db.close().await;
    });
}

/// Device credentials (softPhonePwd HA1s) of a token, read from the database.
fn device_credentials(data: &Path, jti: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = store::Store::open(data).await.expect("store");
        let dir = db.load_directory().await.unwrap();
        db.close().await;
        dir.credentials.iter().filter(|c| c.device_jti.as_deref() == Some(jti)).count()
    })
}

fn write_config(env: &TestEnv, extra: &str) -> PathBuf {
    let path = env.path("switchboard.toml");
    let admin = env.ports.peer_sip(7);
    std::fs::write(&path, format!("[mx]\nadmin_listen = \"127.0.0.1:{admin}\"\n{extra}\n")).unwrap();
    path
}

fn start(env: &TestEnv, config: &Path) -> Server {
    Server::start_with(env, ServerOptions { extra_args: vec!["--config".into(), config.display().to_string()], ..Default::default() })
}

fn kit(script: &str) -> PathBuf {
    kit_dir().join("oauth").join(script)
}

/// Runs a kit script with the venv's Python; its stdout as JSON, and whether it succeeded.
fn python(script: &str, args: &[&str]) -> (bool, Value) {
    let out = Command::new(venv_python()).arg(kit(script)).args(args).output().expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("{script}: not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.success(), v)
}

fn oauth_login(server: &Server, user: &str, password: &str) -> Value {
    let base = format!("http://{}", server.http);
    let (ok, v) = python("oauth_client.py", &[&base, CLIENT, SECRET, user, password]);
    assert!(ok, "OAuth2 client failed: {v}");
    v
}

/// One request with any Authorization header and a form body.
fn request(addr: std::net::SocketAddr, method: &str, path: &str, authorization: Option<&str>, form: Option<&str>) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        req.push_str(&format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    HttpResponse { status, headers, body: body.to_string(), bytes: body.as_bytes().to_vec() }
}

fn basic(user: &str, pw: &str) -> String {
    // base64 without a crate: the test's inputs are ASCII.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{pw}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

#[test]
fn oauth2_library_gets_a_token_that_pyjwt_verifies_and_logout_revokes() {
    let env = TestEnv::new("oauth_login");
    seed(&env.path("data"));
    let log_file = env.path("debug.log");
    std::fs::write(&log_file, "a line of the debug log\n").unwrap();
    let cfg = write_config(&env, &format!("log_file = \"{}\"\n[auth]\ntoken_ttl_s = 600\n", log_file.display()));
    let server = start(&env, &cfg);

    let v = oauth_login(&server, "alice", "alice-pw");
    assert_eq!(v["token"]["token_type"], "Bearer");
    assert_eq!(v["token"]["expires_in"], 600);
    assert_eq!(v["header"]["alg"], "ES256");
    assert!(v["header"]["kid"].as_str().is_some_and(|k| !k.is_empty()), "{v}");
    let claims = &v["claims"];
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], "https://alpha.test");
    assert_eq!(claims["sb_dname"], "alpha.test");
    assert_eq!(claims["sb_role"], "user");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 610);
    let auth = &v["auth"];
    assert_eq!(auth["status"], 200, "{v}");
    assert_eq!(auth["body"]["ext"], "3044");
    assert_eq!(auth["body"]["jid"], claims["sb_uid"].to_string());
    let soft = auth["body"]["softPhonePwd"].as_str().unwrap().to_string();
    assert!(soft.len() >= 16, "{soft}");
    let jti = claims["jti"].as_str().unwrap().to_string();
    let token = v["token"]["access_token"].as_str().unwrap().to_string();
    // The device password is stored only as HA1s (MD5 and SHA-256), tagged with the jti.
    assert!(device_credentials(&env.path("data"), &jti) >= 1);
    for entry in std::fs::read_dir(env.path("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(!bytes.windows(soft.len()).any(|w| w == soft.as_bytes()), "softPhonePwd in plaintext on disk");
    }
    // The same token works on the native API (the JWT verifier is in the chain).
    assert_eq!(http_request(server.http, "GET", "/v1/calls", None, Some(&token)).unwrap().status, 200);

    // The directory, MX style.
    let c = http_request(server.http, "GET", "/contacts", None, Some(&token)).unwrap();
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(c.header("content-type"), Some("application/json; charset=utf-8"));
    let contacts = c.json()["contacts"].clone();
    assert_eq!(contacts[0]["ext"], "20");
    assert_eq!(contacts[0]["email"], "bob@alpha.test");
    assert_eq!(contacts[1]["ext"], "3044");
    assert!(contacts[1].get("email").is_none(), "empty fields left out: {contacts}");
    assert!(contacts[1]["jid"].is_string());

    // /debug/log: app credentials.
    assert_eq!(request(server.http, "GET", "/debug/log", None, None).status, 401);
    assert_eq!(request(server.http, "GET", "/debug/log", Some(&basic(CLIENT, "nope")), None).status, 403);
    let log = request(server.http, "GET", "/debug/log", Some(&basic(CLIENT, SECRET)), None);
    assert_eq!((log.status, log.body.as_str()), (200, "a line of the debug log\n"));

    // Refusals through the library, and in the MX shape.
    let (ok, err) = python("oauth_client.py", &[&format!("http://{}", server.http), CLIENT, SECRET, "alice", "wrong"]);
    assert!(!ok && err["error"].as_str().unwrap().contains("bad username or password"), "{err}");
    let r = request(server.http, "POST", "/auth", Some(&basic(CLIENT, "nope")), Some("grant_type=password&username=alice&password=alice-pw"));
    assert_eq!((r.status, r.json()), (403, serde_json::json!({"error": "bad client-id or app secret"})));
    let r = request(server.http, "POST", "/auth", None, Some("grant_type=password"));
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic realm="));

    // Logout: the token is refused everywhere, and its device password is gone.
    let out = http_request(server.http, "DELETE", "/auth", None, Some(&token)).unwrap();
    assert_eq!((out.status, out.json()), (200, serde_json::json!({"userLogout": "alice"})));
    let after = http_request(server.http, "GET", "/auth", None, Some(&token)).unwrap();
    assert_eq!(after.status, 401);
    assert_eq!(after.header("www-authenticate"), Some("Bearer realm=\"Switchboard\""));
    assert_eq!(after.json()["error"], "invalid token: token revoked");
    assert_eq!(http_request(server.http, "GET", "/v1/calls", None, Some(&token)).unwrap().status, 401);
    assert_eq!(device_credentials(&env.path("data"), &jti), 0);
}

#[test]
fn tokens_outlive_key_rotation_and_a_restart() {
    let env = TestEnv::new("oauth_rotation");
    seed(&env.path("data"));
    let cfg = write_config(&env, "[auth]\nsign_key_ttl_s = 2\ntoken_ttl_s = 600\n");
    let mut server = start(&env, &cfg);
    let first = oauth_login(&server, "alice", "alice-pw");
    let kid = |v: &Value| v["header"]["kid"].as_str().unwrap().to_string();
    // Logins until one is signed by the next key (the first key is 2 s old at most).
    let second = poll(Duration::from_secs(15), "a token signed by a rotated key", || {
        let v = oauth_login(&server, "bob", "bob-pw");
        (kid(&v) != kid(&first)).then_some(v)
    });
    let base = format!("http://{}", server.http);
    let jwks = http_request(server.http, "GET", "/.well-known/jwks.json", None, None).unwrap().json();
    assert!(jwks["keys"].as_array().unwrap().len() >= 2, "old key still published: {jwks}");
    for v in [&first, &second] {
        let token = v["token"]["access_token"].as_str().unwrap();
        let (ok, out) = python("verify_token.py", &[&base, token]);
        assert!(ok, "PyJWT after rotation: {out}");
        assert_eq!(http_request(server.http, "GET", "/auth", None, Some(token)).unwrap().status, 200);
    }

    server.terminate(Duration::from_secs(10));
    let server = start(&env, &cfg);
    let base = format!("http://{}", server.http);
    for v in [&first, &second] {
        let token = v["token"]["access_token"].as_str().unwrap();
        let (ok, out) = python("verify_token.py", &[&base, token]);
        assert!(ok, "PyJWT after restart: {out}");
        let info = http_request(server.http, "GET", "/auth", None, Some(token)).unwrap();
        assert_eq!(info.status, 200, "{}", info.body);
        // The plaintext device password died with the process: a new one is issued.
        assert!(info.json()["softPhonePwd"].as_str().is_some_and(|p| p != v["auth"]["body"]["softPhonePwd"].as_str().unwrap()));
    }
}

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn federated_login_with_an_oidc_issuer() {
    let env = TestEnv::new("oauth_oidc");
    seed(&env.path("data"));
    let port = env.ports.peer_sip(6);
    let issuer_url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(venv_python());
    cmd.arg(kit("oidc_issuer.py")).args([&port.to_string(), &issuer_url, "switchboard-test"]).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = die_with_parent(&mut cmd).spawn().expect("issuer");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let _issuer = Killed(child);
    let issuer_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = write_config(
        &env,
        &format!("[oidc]\nissuer = \"{issuer_url}\"\njwks_url = \"{issuer_url}/jwks.json\"\naudience = \"switchboard-test\"\ndomain = \"alpha.test\"\n"),
    );
    let server = start(&env, &cfg);
    let id_token = |q: &str| http_request(issuer_addr, "GET", &format!("/id_token?{q}"), None, None).unwrap().json()["id_token"].as_str().unwrap().to_string();

    for alg in ["RS256", "ES256"] {
        let r = http_request(server.http, "POST", "/auth", None, Some(&id_token(&format!("user=alice&alg={alg}")))).unwrap();
        assert_eq!(r.status, 200, "{alg}: {}", r.body);
        let token = r.json()["access_token"].as_str().unwrap().to_string();
        let info = http_request(server.http, "GET", "/auth", None, Some(&token)).unwrap();
        assert_eq!((info.status, info.json()["ext"].as_str()), (200, Some("3044")));
    }
    let refused = |q: &str| {
        let r = http_request(server.http, "POST", "/auth", None, Some(&id_token(q))).unwrap();
        (r.status, r.json()["error"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(refused("user=alice&aud=someone-else"), (401, "invalid token: wrong audience".into()));
    assert_eq!(refused("user=alice&iss=http://evil.example"), (401, "invalid token: wrong issuer".into()));
    assert_eq!(refused("user=alice&exp_in=-120"), (401, "invalid token: token expired".into()));
    assert_eq!(refused("user=mallory").0, 403);
    // Unknown kids make at most one refetch per 10 s, not one per request.
    let before = http_request(issuer_addr, "GET", "/stats", None, None).unwrap().json()["jwks_fetches"].as_u64().unwrap();
    for _ in 0..5 {
        assert_eq!(refused("user=alice&kid=nope"), (401, "invalid token: unknown signing key".into()));
    }
    let after = http_request(issuer_addr, "GET", "/stats", None, None).unwrap().json()["jwks_fetches"].as_u64().unwrap();
    assert!(after - before <= 1, "JWKS fetched {} times", after - before);
}

#[test]
fn admin_web_wants_an_admin_shows_no_secret_and_speaks_https() {
    let env = TestEnv::new("oauth_admin");
    seed(&env.path("data"));
    let cfg = write_config(&env, "admin_tls = true\n[tls]\nself_signed = true\nhttp = false\n");
    let server = start(&env, &cfg);
    let token = oauth_login(&server, "alice", "alice-pw")["token"]["access_token"].as_str().unwrap().to_string();
    let ca = env.path("data").join("tls").join("cert.pem");
    let admin = format!("https://127.0.0.1:{}", env.ports.peer_sip(7));
    let (ok, v) = python("admin_web.py", &[&admin, &ca.display().to_string(), "bob-pw", "alice-pw", SECRET]);
    assert!(ok, "{v}");
    assert_eq!(v["anonymous"], 401);
    assert_eq!(v["user_not_admin"], 403);
    assert_eq!(v["apps"], serde_json::json!({"apps": {CLIENT: "Phone"}}));
    assert_eq!(v["connections"], serde_json::json!({"connections": ["alice"]}));
    assert_eq!(v["users"]["users"]["alice"]["ext"], "3044");
    assert_eq!(v["tokens"], serde_json::json!({"tokens": {}}));
    assert_eq!(v["logout"], serde_json::json!({"userLogout": "alice"}));
    assert_eq!(v["secrets_shown"], false);
    assert_eq!(v["plain_http_refused"], true);
    assert_eq!(http_request(server.http, "GET", "/auth", None, Some(&token)).unwrap().status, 401, "logged out by the admin");
}

/// The API listener over HTTPS (self-signed certificate made into the data dir): the
/// OAuth2 library and PyJWT, trusting only that certificate, work as over HTTP. The
/// harness's `Server` checks health over plain HTTP, so this test runs the binary itself.
#[test]
fn oauth2_over_https_with_the_generated_certificate() {
    let env = TestEnv::new("oauth_https");
    let data = env.path("data");
    seed(&data);
    let cfg = write_config(&env, "[tls]\nself_signed = true\n");
    let http = env.ports.http();
    let (rtp_lo, rtp_hi) = env.ports.server_rtp();
    let log = std::fs::File::create(env.path("server.log")).unwrap();
    env.report_on_failure(&env.path("server.log"));
    let mut cmd = Command::new(server_bin());
    cmd.arg("serve")
        .args(["--sip-listen", &format!("127.0.0.1:{}", env.ports.sip())])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .args(["--rtp-ports", &format!("{rtp_lo}-{rtp_hi}")])
        .arg("--data-dir")
        .arg(&data)
        .args(["--domain", "switchboard.test", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log);
    let child = die_with_parent(&mut cmd).spawn().expect("server");
    let _server = Killed(child);
    let ca = data.join("tls").join("cert.pem");
    poll(Duration::from_secs(20), "HTTPS listener up", || {
        (ca.exists() && std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()).then_some(())
    });
    let base = format!("https://localhost:{http}");
    let (ok, v) = python("oauth_client.py", &[&base, CLIENT, SECRET, "alice", "alice-pw", "--ca", &ca.display().to_string()]);
    assert!(ok, "OAuth2 over HTTPS: {v}");
    assert_eq!(v["auth"]["body"]["ext"], "3044");
    // Plain HTTP on the TLS port is not served.
    let plain = http_request(format!("127.0.0.1:{http}").parse().unwrap(), "GET", "/health", None, None);
    assert!(plain.map(|r| r.status != 200).unwrap_or(true), "plain HTTP answered on the HTTPS port");
}
