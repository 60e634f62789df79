use super::*;
use engine::users::{Domain, User};

fn directory() -> DirectorySnapshot {
    let domains = vec![
        Domain { id: 1, name: "alpha.test".into(), aliases: vec![], realm: "alpha realm".into(), enabled: true },
        Domain { id: 2, name: "off.test".into(), aliases: vec![], realm: "off.test".into(), enabled: false },
    ];
    let users = vec![
        User { id: 10, domain_id: 1, login: "alice".into(), ext: Some("201".into()), display_name: Some("Alice A".into()), enabled: true, ..Default::default() },
        User { id: 11, domain_id: 1, login: "gone".into(), enabled: false, ..Default::default() },
        User { id: 12, domain_id: 2, login: "carol".into(), enabled: true, ..Default::default() },
    ];
    DirectorySnapshot::new(1, domains, users, Vec::new())
}

#[test]
fn agents_resolve_by_login_alias_and_domain() {
    let dir = directory();
    let a = find_agent(&dir, "alice", "alpha.test").unwrap();
    assert_eq!((a.identity.as_str(), a.realm.as_str(), a.display.as_str()), ("alice@alpha.test", "alpha realm", "Alice A"));
    // an alias gives the same identity, so the same record key
    assert_eq!(find_agent(&dir, "201@alpha.test", "other.test").unwrap().identity, "alice@alpha.test");
    assert_eq!(find_agent(&dir, "201", "alpha.test").unwrap().user_id, 10);
    assert!(find_agent(&dir, "alice", "beta.test").is_none());
    assert!(find_agent(&dir, "gone", "alpha.test").is_none(), "disabled user");
    assert!(find_agent(&dir, "carol@off.test", "alpha.test").is_none(), "disabled domain");
}

#[test]
fn basic_credentials_parse() {
    assert_eq!(basic_credentials("Basic YWxpY2U6MTIzNA=="), Some(("alice".into(), "1234".into())));
    assert_eq!(basic_credentials("basic YWxpY2U6MTIzNA=="), Some(("alice".into(), "1234".into())));
    assert_eq!(basic_credentials("Bearer abc"), None);
    assert_eq!(basic_credentials("Basic !!!"), None);
    // no colon
    assert_eq!(basic_credentials("Basic YWxpY2U="), None);
}

#[test]
fn parties_take_the_agents_domain() {
    assert_eq!(with_domain("bob", "alpha.test"), "bob@alpha.test");
    assert_eq!(with_domain("bob@127.0.0.1:5070", "alpha.test"), "bob@127.0.0.1:5070");
}

#[tokio::test]
async fn replies_render_with_their_content_types() {
    let r = Reply::Status(StatusCode::NOT_ACCEPTABLE, 403, "Call not found.".into()).into_response();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/xml; charset=UTF-8");
    let r = Reply::Challenge("alpha realm".into()).into_response();
    assert_eq!(r.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(r.headers()[header::PROXY_AUTHENTICATE], "Basic realm=\"alpha realm\"");
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"alpha realm\"");
    let r = Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, "java.lang.NumberFormatException: For input string: \"x\"".into()).into_response();
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain; charset=UTF-8");
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    assert_eq!(&body[..], b"java.lang.NumberFormatException: For input string: \"x\"");
}
