//! The directory's store methods, each test run on SQLite and on PostgreSQL
//! (`both_backends!`; see tests/common for how the PostgreSQL database is found).

mod common;

use common::TestDb;
use engine::users::Binding;
use sip::digest::{self, Algorithm};
use store::{NewUser, Role, SigningKey, Store, StoreError, UserPatch};

both_backends!(
    migrations_apply_from_empty_and_reopening_changes_nothing,
    domains_add_list_alias_enable_delete,
    users_add_with_ha1_for_login_and_ext,
    duplicates_and_invalid_values_are_refused_clearly,
    passwords_and_pins_verify_right_and_refuse_wrong,
    updates_rewrite_credentials_and_bump_the_version,
    apps_and_api_keys,
    device_credentials_come_and_go_with_their_token,
    bindings_round_trip,
    signing_keys_and_revoked_tokens,
    no_method_returns_a_secret,
    call_records_and_rooms_on_this_backend,
);

fn alice(domain: &str) -> NewUser {
    NewUser {
        domain: domain.into(),
        login: "alice".into(),
        password: "s3cret-alice".into(),
        pin: Some("4321".into()),
        ext: Some("3044".into()),
        first_name: Some("Alice".into()),
        last_name: Some("Liddell".into()),
        did: Some("+1 555 0100".into()),
        email: Some("alice@alpha.test".into()),
        ..Default::default()
    }
}

async fn migrations_apply_from_empty_and_reopening_changes_nothing(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.directory_version().await.unwrap(), 0);
    assert!(s.list_domains().await.unwrap().is_empty());
    s.add_domain("alpha.test", None).await.unwrap();
    let v = s.directory_version().await.unwrap();
    let again = Store::open_url(&db.url).await.expect("reopen");
    assert_eq!(again.directory_version().await.unwrap(), v);
    assert_eq!(again.list_domains().await.unwrap().len(), 1);
    again.close().await;
}

async fn domains_add_list_alias_enable_delete(db: &TestDb) {
    let s = &db.store;
    let v0 = s.directory_version().await.unwrap();
    let alpha = s.add_domain("Alpha.TEST", None).await.unwrap();
    assert_eq!(alpha.name, "alpha.test");
    assert_eq!(alpha.realm, "alpha.test");
    let beta = s.add_domain("beta.test", Some("Beta Realm")).await.unwrap();
    assert_eq!(beta.realm, "Beta Realm");
    assert_ne!(alpha.id, beta.id);
    let v1 = s.directory_version().await.unwrap();
    assert!(v1 >= v0 + 2, "each write bumps the version");

    s.add_domain_alias(alpha.id, "127.0.0.1").await.unwrap();
    s.add_domain_alias(alpha.id, "pbx.alpha.test").await.unwrap();
    let found = s.domain_by_name("PBX.alpha.test").await.unwrap().expect("by alias");
    assert_eq!(found.id, alpha.id);
    assert_eq!(found.aliases, vec!["127.0.0.1".to_string(), "pbx.alpha.test".to_string()]);
    assert!(matches!(s.add_domain_alias(beta.id, "127.0.0.1").await, Err(StoreError::AlreadyExists(_))));
    assert!(matches!(s.add_domain("pbx.alpha.test", None).await, Err(StoreError::AlreadyExists(_))));

    let names: Vec<_> = s.list_domains().await.unwrap().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["alpha.test", "beta.test"]);

    // ensure_domain: the existing one, or a new one.
    assert_eq!(s.ensure_domain("alpha.test").await.unwrap().id, alpha.id);
    let gamma = s.ensure_domain("gamma.test").await.unwrap();
    assert_eq!(s.ensure_domain("gamma.test").await.unwrap().id, gamma.id);

    s.set_domain_enabled(beta.id, false).await.unwrap();
    assert!(!s.domain(beta.id).await.unwrap().unwrap().enabled);
    let snap = s.load_directory().await.unwrap();
    assert_eq!(snap.version, s.directory_version().await.unwrap());
    assert_eq!(snap.domain_by_name("127.0.0.1").unwrap().id, alpha.id);
    assert!(!snap.domain(beta.id).unwrap().enabled);

    // A domain with users is refused unless cascaded.
    s.add_user(&alice("alpha.test")).await.unwrap();
    assert!(matches!(s.delete_domain(alpha.id).await, Err(StoreError::InUse(_))));
    s.delete_domain(beta.id).await.unwrap();
    assert!(matches!(s.delete_domain(beta.id).await, Err(StoreError::NotFound(_))));
    s.delete_domain_cascade(alpha.id).await.unwrap();
    assert!(s.domain_by_name("127.0.0.1").await.unwrap().is_none());
    assert!(s.list_users(None).await.unwrap().is_empty());
    let snap = s.load_directory().await.unwrap();
    assert!(snap.credentials.is_empty());
}

async fn users_add_with_ha1_for_login_and_ext(db: &TestDb) {
    let s = &db.store;
    let d = s.add_domain("alpha.test", Some("alpha-realm")).await.unwrap();
    let u = s.add_user(&NewUser { role: Role::Admin, ..alice("alpha.test") }).await.unwrap();
    assert_eq!(u.domain_id, d.id);
    assert_eq!(u.ext.as_deref(), Some("3044"));
    assert_eq!(u.did.as_deref(), Some("+15550100"), "numbers are kept without punctuation");
    assert_eq!(u.role, Role::Admin);
    assert!(u.enabled);
    assert_eq!(s.user(u.id).await.unwrap().unwrap(), u);
    assert_eq!(s.user_by_login(d.id, "alice").await.unwrap().unwrap(), u);
    assert!(s.user_by_login(d.id, "bob").await.unwrap().is_none());
    assert_eq!(s.list_users(Some(d.id)).await.unwrap(), vec![u.clone()]);
    assert!(s.has_admin().await.unwrap());

    let snap = s.load_directory().await.unwrap();
    assert_eq!(snap.user_by_key(d.id, "3044").unwrap().id, u.id);
    assert_eq!(snap.user_by_key(d.id, "+1-555-0100").unwrap().id, u.id);
    for username in ["alice", "3044"] {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let creds: Vec<_> = snap.credentials(d.id, username, alg).collect();
            assert_eq!(creds.len(), 1, "{username} {alg:?}");
            assert_eq!(creds[0].ha1, digest::ha1(alg, username, "alpha-realm", "s3cret-alice"));
            assert_eq!(creds[0].user_id, u.id);
            assert!(creds[0].device_jti.is_none());
        }
    }
    assert_eq!(snap.credentials.len(), 4);
    let secrets = s.user_secrets(u.id).await.unwrap();
    assert!(secrets.password && secrets.pin);
    assert_eq!(secrets.sip_credentials, 4);

    // No extension: credentials for the login only; no PIN.
    let bob = s
        .add_user(&NewUser { domain: "alpha.test".into(), login: "bob".into(), password: "pw-bob".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(bob.role, Role::User);
    let secrets = s.user_secrets(bob.id).await.unwrap();
    assert!(secrets.password && !secrets.pin);
    assert_eq!(secrets.sip_credentials, 2);
    assert_eq!(s.list_users(None).await.unwrap().iter().map(|u| u.login.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
}

async fn duplicates_and_invalid_values_are_refused_clearly(db: &TestDb) {
    let s = &db.store;
    s.add_domain("alpha.test", None).await.unwrap();
    s.add_domain("beta.test", None).await.unwrap();
    s.add_user(&alice("alpha.test")).await.unwrap();
    let v = s.directory_version().await.unwrap();

    match s.add_domain("alpha.test", None).await {
        Err(StoreError::AlreadyExists(m)) => assert_eq!(m, "domain \"alpha.test\" already exists"),
        other => panic!("{other:?}"),
    }
    match s.add_user(&alice("alpha.test")).await {
        Err(StoreError::AlreadyExists(m)) => assert!(m.contains("login \"alice\" is already taken"), "{m}"),
        other => panic!("{other:?}"),
    }
    let other = NewUser { login: "carol".into(), ..alice("alpha.test") };
    match s.add_user(&other).await {
        Err(StoreError::AlreadyExists(m)) => assert!(m.contains("extension \"3044\" is already taken"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A login equal to another user's extension would make the digest username ambiguous.
    let numeric = NewUser { login: "3044".into(), ext: None, ..alice("alpha.test") };
    assert!(matches!(s.add_user(&numeric).await, Err(StoreError::AlreadyExists(_))));
    // The same login and extension in another domain are fine.
    s.add_user(&alice("beta.test")).await.unwrap();

    match s.add_user(&alice("nowhere.test")).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "domain \"nowhere.test\" not found"),
        other => panic!("{other:?}"),
    }
    for (bad, what) in [
        (NewUser { login: "al ice".into(), ..alice("alpha.test") }, "invalid login"),
        (NewUser { login: "dave".into(), ext: Some("30x".into()), ..alice("alpha.test") }, "invalid extension"),
        (NewUser { login: "dave".into(), ext: None, did: Some("call me".into()), ..alice("alpha.test") }, "invalid number"),
        (NewUser { login: "dave".into(), ext: None, email: Some("nope".into()), ..alice("alpha.test") }, "invalid email"),
        (NewUser { login: "dave".into(), ext: None, password: String::new(), ..alice("alpha.test") }, "password"),
        (NewUser { login: "dave".into(), ext: None, pin: Some("12ab".into()), ..alice("alpha.test") }, "invalid PIN"),
    ] {
        match s.add_user(&bad).await {
            Err(StoreError::Invalid(m)) => assert!(m.contains(what), "{m} should mention {what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    for bad in ["bad_name.test", "", "a..b", "-x.test"] {
        assert!(matches!(s.add_domain(bad, None).await, Err(StoreError::Invalid(_))), "{bad:?}");
    }
    assert!(matches!(s.add_domain("ok.test", Some("has \"quote\"")).await, Err(StoreError::Invalid(_))));
    // Refused writes changed nothing, the version included (beta's alice was one write).
    assert_eq!(s.directory_version().await.unwrap(), v + 1);
}

async fn passwords_and_pins_verify_right_and_refuse_wrong(db: &TestDb) {
    let s = &db.store;
    let d = s.add_domain("alpha.test", None).await.unwrap();
    let u = s.add_user(&alice("alpha.test")).await.unwrap();
    assert_eq!(s.verify_user_password(d.id, "alice", "s3cret-alice").await.unwrap().unwrap().id, u.id);
    assert!(s.verify_user_password(d.id, "alice", "wrong").await.unwrap().is_none());
    assert!(s.verify_user_password(d.id, "nobody", "s3cret-alice").await.unwrap().is_none());
    assert!(s.verify_user_pin(u.id, "4321").await.unwrap());
    assert!(!s.verify_user_pin(u.id, "1234").await.unwrap());
    assert!(!s.verify_user_pin(u.id + 1000, "4321").await.unwrap());

    // Disabled user, disabled domain: refused with the right password.
    s.set_user_enabled(u.id, false).await.unwrap();
    assert!(s.verify_user_password(d.id, "alice", "s3cret-alice").await.unwrap().is_none());
    s.set_user_enabled(u.id, true).await.unwrap();
    s.set_domain_enabled(d.id, false).await.unwrap();
    assert!(s.verify_user_password(d.id, "alice", "s3cret-alice").await.unwrap().is_none());
    s.set_domain_enabled(d.id, true).await.unwrap();

    s.set_user_password(u.id, "new-pass").await.unwrap();
    assert!(s.verify_user_password(d.id, "alice", "s3cret-alice").await.unwrap().is_none());
    assert!(s.verify_user_password(d.id, "alice", "new-pass").await.unwrap().is_some());
    s.set_user_pin(u.id, "999999").await.unwrap();
    assert!(s.verify_user_pin(u.id, "999999").await.unwrap());
    s.set_user_pin(u.id, "").await.unwrap();
    assert!(!s.verify_user_pin(u.id, "999999").await.unwrap());
    assert!(!s.user_secrets(u.id).await.unwrap().pin);
}

async fn updates_rewrite_credentials_and_bump_the_version(db: &TestDb) {
    let s = &db.store;
    let d = s.add_domain("alpha.test", None).await.unwrap();
    let u = s.add_user(&alice("alpha.test")).await.unwrap();
    let v = s.directory_version().await.unwrap();

    let patched = s
        .update_user(u.id, &UserPatch { display_name: Some("Al".into()), email: Some(String::new()), role: Some(Role::Admin), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(patched.display_name.as_deref(), Some("Al"));
    assert_eq!(patched.email, None, "empty clears");
    assert_eq!(patched.last_name.as_deref(), Some("Liddell"), "absent keeps");
    assert_eq!(patched.role, Role::Admin);
    assert_eq!(s.user(u.id).await.unwrap().unwrap(), patched);
    assert_eq!(s.directory_version().await.unwrap(), v + 1);

    // A new extension without a password: the old extension's HA1s go, the login's stay.
    s.update_user(u.id, &UserPatch { ext: Some("3055".into()), ..Default::default() }).await.unwrap();
    let snap = s.load_directory().await.unwrap();
    assert_eq!(snap.credentials(d.id, "3044", Algorithm::Md5).count(), 0);
    assert_eq!(snap.credentials(d.id, "3055", Algorithm::Md5).count(), 0);
    assert_eq!(snap.credentials(d.id, "alice", Algorithm::Sha256).count(), 1);
    assert_eq!(snap.user_by_key(d.id, "3055").unwrap().id, u.id);
    // With a password, every HA1 is rewritten, the new extension's included.
    s.update_user(u.id, &UserPatch { password: Some("pw2".into()), ..Default::default() }).await.unwrap();
    let snap = s.load_directory().await.unwrap();
    let c = snap.credentials(d.id, "3055", Algorithm::Sha256).next().expect("ext credential");
    assert_eq!(c.ha1, digest::ha1(Algorithm::Sha256, "3055", "alpha.test", "pw2"));
    assert_eq!(snap.credentials.len(), 4);

    let bob = s.add_user(&NewUser { domain: "alpha.test".into(), login: "bob".into(), password: "b".into(), ..Default::default() }).await.unwrap();
    assert!(matches!(
        s.update_user(bob.id, &UserPatch { ext: Some("3055".into()), ..Default::default() }).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(s.update_user(9_999_999, &UserPatch::default()).await, Err(StoreError::NotFound(_))));

    s.delete_user(bob.id).await.unwrap();
    assert!(s.user(bob.id).await.unwrap().is_none());
    assert!(matches!(s.delete_user(bob.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.load_directory().await.unwrap().users.len(), 1);
}

async fn apps_and_api_keys(db: &TestDb) {
    let s = &db.store;
    let d = s.add_domain("alpha.test", None).await.unwrap();
    let app = s.add_app("softphone", "app-secret", Some("Soft phone"), Some(d.id)).await.unwrap();
    assert_eq!(app.client_id, "softphone");
    assert_eq!(app.domain_id, Some(d.id));
    assert!(matches!(s.add_app("softphone", "x", None, None).await, Err(StoreError::AlreadyExists(_))));
    assert!(matches!(s.add_app("other", "x", None, Some(9_999_999)).await, Err(StoreError::NotFound(_))));
    let global = s.add_app("web", "web-secret", None, None).await.unwrap();
    assert_eq!(s.list_apps(None).await.unwrap(), vec![app.clone(), global.clone()]);
    assert_eq!(s.list_apps(Some(d.id)).await.unwrap(), vec![app.clone()]);
    assert_eq!(s.app("softphone").await.unwrap().unwrap(), app);
    assert_eq!(s.verify_app("softphone", "app-secret").await.unwrap().unwrap(), app);
    assert!(s.verify_app("softphone", "wrong").await.unwrap().is_none());
    assert!(s.verify_app("nobody", "app-secret").await.unwrap().is_none());
    s.set_app_secret("softphone", "rotated").await.unwrap();
    assert!(s.verify_app("softphone", "app-secret").await.unwrap().is_none());
    assert!(s.verify_app("softphone", "rotated").await.unwrap().is_some());
    s.set_app_enabled("softphone", false).await.unwrap();
    assert!(s.verify_app("softphone", "rotated").await.unwrap().is_none());
    assert!(!s.app("softphone").await.unwrap().unwrap().enabled);
    // WCS hooks: the URL and which methods its backend gets (None: every one).
    s.set_app_rest_url("web", Some("https://hooks.example.com/wcs/")).await.unwrap();
    let names = |v: &[&str]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
    s.set_app_rest_methods("web", Some(&names(&["connect", "call", "connect", "CallStatusEvent"]))).await.unwrap();
    let web = s.app("web").await.unwrap().unwrap();
    assert_eq!((web.rest_url.as_deref(), web.rest_methods), (Some("https://hooks.example.com/wcs"), Some(names(&["connect", "call", "CallStatusEvent"]))));
    s.set_app_rest_methods("web", Some(&[])).await.unwrap();
    assert_eq!(s.app("web").await.unwrap().unwrap().rest_methods, Some(vec![]), "none");
    s.set_app_rest_methods("web", Some(&names(&["*"]))).await.unwrap();
    assert_eq!(s.app("web").await.unwrap().unwrap().rest_methods, None, "* is every method");
    assert!(matches!(s.set_app_rest_methods("web", Some(&names(&["call,hangup"]))).await, Err(StoreError::Invalid(_))));
    assert!(matches!(s.set_app_rest_methods("nobody", None).await, Err(StoreError::NotFound(_))));
    s.delete_app("softphone").await.unwrap();
    assert!(matches!(s.delete_app("softphone").await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.set_app_enabled("softphone", true).await, Err(StoreError::NotFound(_))));

    assert!(!s.has_admin().await.unwrap());
    let (key, plain) = s.add_api_key("ops", None, Role::Admin).await.unwrap();
    assert!(s.has_admin().await.unwrap());
    assert!(plain.starts_with("sbk_") && plain.len() == 4 + 64, "{plain}");
    assert!(plain.starts_with(&key.prefix) && key.prefix.len() == 12);
    assert_eq!(s.verify_api_key(&plain).await.unwrap().unwrap(), key);
    assert!(s.verify_api_key(&plain.replace('a', "b").replace('1', "2")).await.unwrap().is_none());
    assert!(s.verify_api_key("not-a-key").await.unwrap().is_none());
    let (user_key, plain2) = s.add_api_key("alpha-reader", Some(d.id), Role::User).await.unwrap();
    assert_ne!(plain, plain2);
    assert_eq!(user_key.domain_id, Some(d.id));
    assert!(matches!(s.add_api_key("ops", None, Role::User).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(s.list_api_keys().await.unwrap(), vec![user_key, key]);
    s.delete_api_key("ops").await.unwrap();
    assert!(s.verify_api_key(&plain).await.unwrap().is_none());
    assert!(matches!(s.delete_api_key("ops").await, Err(StoreError::NotFound(_))));
}

async fn device_credentials_come_and_go_with_their_token(db: &TestDb) {
    let s = &db.store;
    let d = s.add_domain("alpha.test", None).await.unwrap();
    let u = s.add_user(&alice("alpha.test")).await.unwrap();
    let v = s.directory_version().await.unwrap();
    s.add_device_credential(u.id, "alice", "device-pw", "jti-1").await.unwrap();
    assert!(s.directory_version().await.unwrap() > v);
    let snap = s.load_directory().await.unwrap();
    let creds: Vec<_> = snap.credentials(d.id, "alice", Algorithm::Md5).collect();
    assert_eq!(creds.len(), 2, "own and device password");
    let device = creds.iter().find(|c| c.device_jti.is_some()).unwrap();
    assert_eq!(device.device_jti.as_deref(), Some("jti-1"));
    assert_eq!(device.ha1, digest::ha1(Algorithm::Md5, "alice", "alpha.test", "device-pw"));
    assert_eq!(s.user_secrets(u.id).await.unwrap().device_credentials, 2);
    // A new own password leaves device passwords alone.
    s.set_user_password(u.id, "pw3").await.unwrap();
    assert_eq!(s.user_secrets(u.id).await.unwrap().device_credentials, 2);
    assert_eq!(s.delete_device_credentials("jti-1").await.unwrap(), 2);
    assert_eq!(s.load_directory().await.unwrap().credentials(d.id, "alice", Algorithm::Md5).count(), 1);
    assert!(matches!(s.add_device_credential(9_999_999, "x", "y", "z").await, Err(StoreError::NotFound(_))));
}

fn binding(user_id: i64, domain_id: i64, contact: &str, cseq: u32) -> Binding {
    Binding {
        user_id,
        domain_id,
        contact: contact.into(),
        q: 500,
        expires_at_ms: 1_900_000_000_000,
        call_id: "reg-1@phone".into(),
        cseq,
        source: "192.0.2.7:5062".parse().unwrap(),
        transport: "udp".into(),
        user_agent: Some("pjsua2".into()),
    }
}

async fn bindings_round_trip(db: &TestDb) {
    let s = &db.store;
    let d = s.add_domain("alpha.test", None).await.unwrap();
    let u = s.add_user(&alice("alpha.test")).await.unwrap();
    let a = binding(u.id, d.id, "sip:alice@192.0.2.7:5062", 1);
    let b = Binding { user_agent: None, q: 1000, ..binding(u.id, d.id, "sip:alice@198.51.100.1:5060;transport=tcp", 2) };
    s.save_binding(&a).await.unwrap();
    s.save_binding(&b).await.unwrap();
    let a2 = Binding { cseq: 7, expires_at_ms: 1_900_000_600_000, ..a.clone() };
    s.save_binding(&a2).await.unwrap();
    assert_eq!(s.load_bindings().await.unwrap(), vec![a2.clone(), b.clone()], "by user, then contact");
    s.delete_binding(u.id, &b.contact).await.unwrap();
    assert_eq!(s.load_bindings().await.unwrap(), vec![a2.clone()]);
    s.delete_bindings_of(u.id).await.unwrap();
    assert!(s.load_bindings().await.unwrap().is_empty());

    // Through the recorder, as the registrar's events arrive.
    let (rec, writer) = store::spawn_recorder(s.clone());
    rec.record(&engine::EngineEvent::BindingSaved(a.clone()));
    rec.record(&engine::EngineEvent::BindingSaved(b.clone()));
    rec.record(&engine::EngineEvent::BindingRemoved { user_id: u.id, contact: a.contact.clone() });
    drop(rec);
    writer.await.unwrap();
    assert_eq!(s.load_bindings().await.unwrap(), vec![b.clone()]);
    // Deleting the user takes its bindings.
    s.delete_user(u.id).await.unwrap();
    assert!(s.load_bindings().await.unwrap().is_empty());
}

async fn signing_keys_and_revoked_tokens(db: &TestDb) {
    let s = &db.store;
    let k1 = SigningKey { kid: "k1".into(), pkcs8_der: vec![0x30, 0x81, 0x87, 0, 255], created_ms: 1_000 };
    let k2 = SigningKey { kid: "k2".into(), pkcs8_der: vec![1, 2, 3], created_ms: 2_000 };
    s.add_signing_key(&k2).await.unwrap();
    s.add_signing_key(&k1).await.unwrap();
    assert!(matches!(s.add_signing_key(&k1).await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(s.signing_keys().await.unwrap(), vec![k1.clone(), k2.clone()]);
    s.delete_signing_key("k1").await.unwrap();
    assert_eq!(s.signing_keys().await.unwrap(), vec![k2]);

    s.revoke_token("jti-a", 5_000).await.unwrap();
    s.revoke_token("jti-b", 9_000).await.unwrap();
    s.revoke_token("jti-a", 6_000).await.unwrap(); // again: no error
    assert_eq!(s.revoked_tokens(4_000).await.unwrap(), ["jti-a", "jti-b"]);
    assert_eq!(s.revoked_tokens(6_000).await.unwrap(), ["jti-b"]);
    assert_eq!(s.purge_revoked(6_000).await.unwrap(), 1);
    assert_eq!(s.revoked_tokens(0).await.unwrap(), ["jti-b"]);
}

async fn no_method_returns_a_secret(db: &TestDb) {
    let s = &db.store;
    let d = s.add_domain("alpha.test", None).await.unwrap();
    let u = s.add_user(&alice("alpha.test")).await.unwrap();
    let app = s.add_app("softphone", "app-secret", None, None).await.unwrap();
    let (key, plain) = s.add_api_key("ops", None, Role::Admin).await.unwrap();
    let ha1 = digest::ha1(Algorithm::Md5, "alice", "alpha.test", "s3cret-alice");
    // Everything a reader can get, as the APIs would serialise it.
    let shown = serde_json::json!({
        "domains": s.list_domains().await.unwrap(),
        "users": s.list_users(None).await.unwrap(),
        "user": s.user(u.id).await.unwrap(),
        "by_login": s.user_by_login(d.id, "alice").await.unwrap(),
        "verified": s.verify_user_password(d.id, "alice", "s3cret-alice").await.unwrap(),
        "apps": s.list_apps(None).await.unwrap(),
        "app": app,
        "keys": s.list_api_keys().await.unwrap(),
        "key": key,
        "secrets": s.user_secrets(u.id).await.unwrap(),
        "snapshot_credentials": s.load_directory().await.unwrap().credentials,
    })
    .to_string();
    for secret in ["s3cret-alice", "4321", "app-secret", plain.as_str(), &plain[12..], ha1.as_str(), "$argon2"] {
        assert!(!shown.contains(secret), "{secret:?} leaked in {shown}");
    }
}

async fn call_records_and_rooms_on_this_backend(db: &TestDb) {
    use common::{ended_leg, room, room_leg};
    let s = &db.store;
    let leg = ended_leg(1, 1_700_000_000_000);
    s.record_leg(&leg, Some("rCF-node1-A")).await.unwrap();
    s.record_leg(&leg, None).await.unwrap(); // again: one row, room kept
    let calls = s.recent_calls(10, None).await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].confid.as_deref(), Some("rCF-node1-A"));
    assert_eq!(calls[0].answered_ms, leg.answered_ms);

    s.record_room_started(&room("A", 1_000)).await.unwrap();
    s.record_room_ended("rCF-node1-A", 2_000, 3).await.unwrap();
    assert!(matches!(s.record_room_ended("rCF-node1-A", 3_000, 1).await, Err(StoreError::UnknownRoom(_))));
    let rooms = s.rooms_history(10).await.unwrap();
    assert_eq!(rooms[0].ended_ms, Some(2_000));
    assert_eq!(rooms[0].max_participants, 3);

    // The recorder's multi-row statements (placeholders differ per backend), with a
    // repeated leg in one batch.
    let (rec, writer) = store::spawn_recorder(s.clone());
    rec.room_started(&room("B", 10_000));
    for n in 0..150u32 {
        rec.leg_ended(&room_leg(100 + n, "4711", 10_000 + u64::from(n)), None);
    }
    rec.leg_ended(&room_leg(100, "4711", 10_000), None);
    drop(rec);
    writer.await.unwrap();
    let calls = s.recent_calls(500, None).await.unwrap();
    assert_eq!(calls.len(), 151);
    assert!(calls.iter().filter(|c| c.leg_id.0 != "leg-000001").all(|c| c.confid.as_deref() == Some("rCF-node1-B")));
    let page = s.recent_calls(10, Some(10_100)).await.unwrap();
    assert_eq!(page[0].started_ms, 10_099);
}
