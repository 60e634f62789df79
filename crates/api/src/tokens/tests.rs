use super::memory::MemoryBackend;
use super::*;

fn alice() -> User {
    User { id: 7, domain_id: 1, login: "alice".into(), ext: Some("3044".into()), role: Role::User, enabled: true, ..Default::default() }
}

fn directory() -> Arc<DirectorySnapshot> {
    let alpha = engine::users::Domain { id: 1, name: "alpha.test".into(), aliases: vec![], realm: "alpha.test".into(), enabled: true };
    let bob = User { id: 8, login: "bob".into(), ..alice() };
    Arc::new(DirectorySnapshot::new(1, vec![alpha], vec![alice(), bob], vec![]))
}

async fn service(backend: Arc<MemoryBackend>, cfg: TokenConfig) -> Arc<TokenService> {
    let dir = watch::channel(directory()).1;
    TokenService::start(cfg, backend, dir, None).await.unwrap()
}

#[tokio::test]
async fn issued_token_verifies_and_carries_domain_role_and_kid() {
    let backend = Arc::new(MemoryBackend::default());
    let svc = service(backend.clone(), TokenConfig::default()).await;
    let issued = svc.issue(&alice(), "alpha.test").await.unwrap();
    let header = jsonwebtoken::decode_header(&issued.access_token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(backend.keys.lock().unwrap()[0].kid.as_str()));
    let claims = svc.verify_claims(&issued.access_token).unwrap().unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.iss.as_deref(), Some("https://alpha.test"));
    assert_eq!(claims.exp - claims.iat, 3600 + 10);
    let p = JwtVerifier(svc.clone()).verify(&issued.access_token).unwrap().unwrap();
    assert_eq!(p, Principal { domain: Some(1), role: Role::User, user_id: Some(7), token_id: Some(claims.jti.clone()) });
    // Not a JWT: another verifier's business.
    assert_eq!(JwtVerifier(svc.clone()).verify("sk_live_abc").unwrap(), None);
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused_with_a_reason() {
    let svc = service(Arc::new(MemoryBackend::default()), TokenConfig::default()).await;
    let t = svc.issue(&alice(), "alpha.test").await.unwrap().access_token;
    let mut parts: Vec<String> = t.split('.').map(String::from).collect();
    // Another user's claims under alice's signature.
    let claims = svc.verify_claims(&t).unwrap().unwrap();
    let forged = Claims { sb_role: Role::Admin, ..claims };
    use base64::Engine as _;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    assert_eq!(svc.verify_claims(&parts.join(".")).unwrap_err(), "bad ecdsa signature");
    // Signed by a key that is not ours.
    let other = service(Arc::new(MemoryBackend::default()), TokenConfig::default()).await;
    let theirs = other.issue(&alice(), "alpha.test").await.unwrap().access_token;
    let err = svc.verify_claims(&theirs).unwrap_err();
    assert!(err == "unknown or obsolete signing key" || err == "bad ecdsa signature", "{err}");
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_keys_survive_a_restart() {
    let backend = Arc::new(MemoryBackend::default());
    let cfg = TokenConfig { sign_key_ttl: Duration::from_millis(50), ..TokenConfig::default() };
    let svc = service(backend.clone(), cfg.clone()).await;
    let old = svc.issue(&alice(), "alpha.test").await.unwrap().access_token;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let new = svc.issue(&alice(), "alpha.test").await.unwrap().access_token;
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_ne!(kid(&old), kid(&new));
    assert_eq!(svc.key_count(), 2);
    svc.maintain().await.unwrap();
    assert_eq!(svc.key_count(), 2, "the old key is needed until its last token expires");
    // "Restart": a new service over the same store.
    let again = service(backend, cfg).await;
    assert!(again.verify_claims(&old).unwrap().is_some());
    assert!(again.verify_claims(&new).unwrap().is_some());
}

#[tokio::test]
async fn expired_keys_are_deleted() {
    let backend = Arc::new(MemoryBackend::default());
    let now = now_ms();
    for at in [now - 10_000_000, now - 9_000_000] {
        backend.keys.lock().unwrap().push(keys::SigningKey::generate(at).unwrap().1);
    }
    let cfg = TokenConfig { sign_key_ttl: Duration::from_secs(3600), token_ttl: Duration::from_secs(3600), ..TokenConfig::default() };
    let svc = service(backend.clone(), cfg).await;
    // Both stored keys are older than the TTL: start made a current one.
    assert_eq!(svc.key_count(), 3);
    svc.maintain().await.unwrap();
    // The first is obsolete (the second came 9e6 ms ago > token TTL); the second is
    // needed until the third's creation + token TTL.
    assert_eq!(svc.key_count(), 2);
    assert_eq!(backend.keys.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn logout_revokes_until_expiry_also_after_a_restart() {
    let backend = Arc::new(MemoryBackend::default());
    let svc = service(backend.clone(), TokenConfig::default()).await;
    let t = svc.issue(&alice(), "alpha.test").await.unwrap().access_token;
    let claims = svc.verify_claims(&t).unwrap().unwrap();
    let pwd = svc.soft_phone_password(&claims).await.unwrap();
    assert_eq!(pwd.len(), 20);
    assert_eq!(svc.soft_phone_password(&claims).await.unwrap(), pwd, "stable for the token's life");
    assert_eq!(backend.devices.lock().unwrap().len(), 1);
    svc.revoke(&claims).await.unwrap();
    assert_eq!(svc.verify_claims(&t).unwrap_err(), "token revoked");
    assert!(backend.devices.lock().unwrap().is_empty());
    let again = service(backend, TokenConfig::default()).await;
    assert_eq!(again.verify_claims(&t).unwrap_err(), "token revoked");
}

#[tokio::test]
async fn logging_a_user_out_everywhere_revokes_all_its_tokens() {
    let backend = Arc::new(MemoryBackend::default());
    let svc = service(backend.clone(), TokenConfig::default()).await;
    let a = svc.issue(&alice(), "alpha.test").await.unwrap().access_token;
    let bob = User { id: 8, login: "bob".into(), ..alice() };
    let b = svc.issue(&bob, "alpha.test").await.unwrap().access_token;
    assert_eq!(svc.connections(Some(1)), vec![(1, "alice".to_string()), (1, "bob".to_string())]);
    svc.revoke_user(7).await.unwrap();
    assert_eq!(svc.verify_claims(&a).unwrap_err(), "token revoked");
    assert!(svc.verify_claims(&b).unwrap().is_some());
    let again = service(backend, TokenConfig::default()).await;
    assert_eq!(again.verify_claims(&a).unwrap_err(), "token revoked");
}

#[tokio::test]
async fn a_disabled_user_loses_its_tokens() {
    let (tx, rx) = watch::channel(directory());
    let svc = TokenService::start(TokenConfig::default(), Arc::new(MemoryBackend::default()), rx, None).await.unwrap();
    let t = svc.issue(&alice(), "alpha.test").await.unwrap().access_token;
    assert!(svc.verify_claims(&t).unwrap().is_some());
    let alpha = directory().domains[0].clone();
    tx.send(Arc::new(DirectorySnapshot::new(2, vec![alpha], vec![User { enabled: false, ..alice() }], vec![]))).unwrap();
    assert_eq!(svc.verify_claims(&t).unwrap_err(), "unknown or disabled user");
}

#[test]
fn random_text_is_alphanumeric_and_varies() {
    let a = random_text(20);
    assert_eq!(a.len(), 20);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, random_text(20));
}

/// Verification cost (run with --ignored --nocapture in release for BENCHMARKS.md).
#[tokio::test]
#[ignore]
async fn verification_cost() {
    let svc = service(Arc::new(MemoryBackend::default()), TokenConfig::default()).await;
    let n = 2000;
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(svc.issue(&alice(), "alpha.test").await.unwrap().access_token);
    }
    svc.verified.write().unwrap().clear();
    let t0 = std::time::Instant::now();
    for t in &tokens {
        svc.verify_claims(t).unwrap().unwrap();
    }
    let cold = t0.elapsed() / n as u32;
    let t0 = std::time::Instant::now();
    for _ in 0..10 {
        for t in &tokens {
            svc.verify_claims(t).unwrap().unwrap();
        }
    }
    let warm = t0.elapsed() / (10 * n as u32);
    let t0 = std::time::Instant::now();
    for _ in 0..200 {
        svc.issue(&alice(), "alpha.test").await.unwrap();
    }
    let sign = t0.elapsed() / 200;
    println!("JWT ES256: sign {sign:?}/token, verify first use {cold:?}/token, verify cached {warm:?}/token");
}

/// `POST /auth`'s work without HTTP, on the real store (SQLite in a temp dir): app
/// secret and user password checks (argon2id), token signing, the device password's
/// HA1s written. Run with --ignored --nocapture in release for BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn post_auth_cost() {
    let dir = std::env::temp_dir().join(format!("sb-auth-bench-{}", std::process::id()));
    let db = store::Store::open(&dir).await.unwrap();
    let d = db.ensure_domain("alpha.test").await.unwrap();
    db.add_user(&store::NewUser { domain: "alpha.test".into(), login: "alice".into(), password: "alice-pw".into(), ext: Some("3044".into()), ..Default::default() })
        .await
        .unwrap();
    db.add_app("phone", "secret", None, Some(d.id)).await.unwrap();
    let rx = watch::channel(Arc::new(db.load_directory().await.unwrap())).1;
    let svc = TokenService::start(TokenConfig::default(), Arc::new(db.clone()), rx, None).await.unwrap();
    let n = 20;
    let (mut app_t, mut user_t, mut issue_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let t0 = std::time::Instant::now();
        assert!(svc.backend().verify_app("phone", "secret").await.unwrap().is_some());
        let t1 = std::time::Instant::now();
        let user = svc.backend().verify_user_password(d.id, "alice", "alice-pw").await.unwrap().unwrap();
        let t2 = std::time::Instant::now();
        let issued = svc.issue(&user, "alpha.test").await.unwrap();
        svc.soft_phone_password(&issued.claims).await.unwrap();
        let t3 = std::time::Instant::now();
        app_t += t1 - t0;
        user_t += t2 - t1;
        issue_t += t3 - t2;
    }
    println!(
        "POST /auth work: app secret check {:?}, user password check {:?}, sign + device password (2 HA1 rows) {:?}, total {:?}",
        app_t / n,
        user_t / n,
        issue_t / n,
        (app_t + user_t + issue_t) / n
    );
    db.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
