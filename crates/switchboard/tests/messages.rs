//! Instant messages end to end (issue 12 item 6, SIP MESSAGE, RFC 3428), with real
//! pjsua2 phones registered to the server:
//! - alice's phone sends bob a MESSAGE (challenged and authenticated like a call): she
//!   gets 202, bob's phone shows it from alice's extension, and the server reports
//!   `message_accepted` (from alice's user) and `message_delivered`;
//! - `POST /v1/users/{bob}/messages` from a name in the domain reaches bob's phone,
//!   and `GET /v1/users/{bob}/messages` shows it `delivered`;
//! - carol has no phone registered: an API message and a phone's MESSAGE to her are
//!   kept (`pending`, one attempt each); the server is restarted; carol's phone
//!   registers and receives both, oldest first, and both become `delivered`;
//! - bad input gets the native error body: a bad media type or sender, an unknown
//!   field, a user nobody has, a bad query.

mod support;

use std::time::Duration;
use support::phone::{wait_server_event, Phone};
use support::*;

const DOMAIN: &str = "switchboard.test";
const PASSWORD: &str = "correct-horse-7";

fn seed(env: &TestEnv) {
    let users: Vec<store::NewUser> = [("alice", "3044"), ("bob", "3045"), ("carol", "3046")].iter().map(|(l, e)| new_user(DOMAIN, l, e, PASSWORD)).collect();
    seed_directory(env, DOMAIN, &users);
}

fn user_id(server: &Server, login: &str) -> i64 {
    let users = server.get("/v1/users").json();
    users.as_array().unwrap().iter().find(|u| u["login"] == login).and_then(|u| u["id"].as_i64()).unwrap_or_else(|| panic!("no user {login}: {users}"))
}

fn messages_of(server: &Server, user: i64) -> Vec<Value> {
    let r = server.get(&format!("/v1/users/{user}/messages"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap()
}

fn message_in(server: &Server, user: i64, id: &str) -> Value {
    messages_of(server, user).into_iter().find(|m| m["message_id"] == id).unwrap_or_else(|| panic!("no message {id}"))
}

#[test]
fn messages_reach_phones_at_once_or_when_they_register_even_after_a_restart() {
    let env = TestEnv::new("messages");
    seed(&env);
    let mut server = Server::start(&env);
    let (alice_id, bob_id, carol_id) = (user_id(&server, "alice"), user_id(&server, "bob"), user_id(&server, "carol"));

    let alice = Phone::start(&env, &server, 0, ("alice", DOMAIN, PASSWORD), 1000, None, &[]);
    let bob = Phone::start(&env, &server, 1, ("bob", DOMAIN, PASSWORD), 1000, None, &[]);

    // Phone to phone.
    alice.command(&format!("message sip:3045@{DOMAIN} Hello bob, it's alice"));
    let got = bob.wait_event("bob's phone gets alice's message", 15, |e| e["event"] == "message");
    assert_eq!(got["body"], "Hello bob, it's alice", "{got}");
    assert!(got["from_uri"].as_str().unwrap().contains(&format!("sip:alice@{DOMAIN}")), "from alice, as her phone says: {got}");
    assert!(got["content_type"].as_str().unwrap().starts_with("text/plain"), "{got}");
    let status = alice.wait_event("alice's MESSAGE is answered", 15, |e| e["event"] == "message_status");
    assert_eq!(status["code"], 202, "a relay accepts: {status}");
    let accepted = wait_server_event(&server, "message_accepted", |e| e["body"] == "Hello bob, it's alice");
    assert_eq!((accepted["origin"].as_str(), accepted["from_user_id"].as_i64(), accepted["user_id"].as_i64()), (Some("sip"), Some(alice_id), Some(bob_id)), "{accepted}");
    assert_eq!(accepted["to"], format!("sip:3045@{DOMAIN}"), "{accepted}");
    let first_id = accepted["message_id"].as_str().unwrap().to_owned();
    let delivered = wait_server_event(&server, "message_delivered", |e| e["message_id"] == first_id.as_str());
    assert_eq!(delivered["status"], 200, "{delivered}");

    // The API to bob, from a name of the domain.
    let r = server.post(&format!("/v1/users/{bob_id}/messages"), &json!({"body": "Your 3 pm is here", "from": "reception"}));
    assert_eq!(r.status, 202, "{}", r.body);
    let sent = r.json();
    assert_eq!((sent["state"].as_str(), sent["origin"].as_str(), sent["from"].as_str()), (Some("pending"), Some("api"), Some("sip:reception@switchboard.test")), "{sent}");
    let api_id = sent["message_id"].as_str().unwrap().to_owned();
    let got = bob.wait_event("bob's phone gets the API's message", 15, |e| e["event"] == "message" && e["body"] == "Your 3 pm is here");
    assert!(got["from_uri"].as_str().unwrap().contains("sip:reception@switchboard.test"), "{got}");
    poll(Duration::from_secs(10), "the API message is delivered", || (message_in(&server, bob_id, &api_id)["state"] == "delivered").then_some(()));
    assert_eq!(message_in(&server, bob_id, &first_id)["state"], "delivered", "the phone's message is stored too");

    // Carol has no phone: both messages are kept.
    let r = server.post(&format!("/v1/users/{carol_id}/messages"), &json!({"body": "first, from the API", "from": "3044", "content_type": "text/plain;charset=UTF-8"}));
    assert_eq!(r.status, 202, "{}", r.body);
    let carol_first = r.json()["message_id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["from_user_id"].as_i64(), Some(alice_id), "from names alice by her extension");
    let n = alice.events().iter().filter(|e| e["event"] == "message_status").count();
    alice.command(&format!("message sip:3046@{DOMAIN} second, from alice's phone"));
    let status = poll(Duration::from_secs(15), "alice's second MESSAGE is answered", || {
        alice.events().into_iter().filter(|e| e["event"] == "message_status").nth(n)
    });
    assert_eq!(status["code"], 202, "kept for carol: {status}");
    let kept = poll(Duration::from_secs(10), "carol's two messages are pending", || {
        let m = messages_of(&server, carol_id);
        (m.len() == 2 && m.iter().all(|m| m["state"] == "pending" && m["attempts"] == 1)).then_some(m)
    });
    assert_eq!(kept[0]["body"], "second, from alice's phone", "newest first: {kept:?}");
    assert_eq!(kept[1]["message_id"], carol_first.as_str());
    assert!(kept[0]["last_error"].as_str().unwrap().contains("no registered device"), "{kept:?}");

    // Bad input: the native error body, nothing stored.
    let bad = |path: String, body: Value, status: u16| {
        let r = server.post(&path, &body);
        assert_eq!(r.status, status, "{path} {body}: {}", r.body);
        assert_eq!(r.json()["error_code"], 1000 + status as i64, "{}", r.body);
    };
    bad(format!("/v1/users/{carol_id}/messages"), json!({"body": "x", "content_type": "text"}), 400);
    bad(format!("/v1/users/{carol_id}/messages"), json!({"body": "x", "from": "not a name"}), 400);
    bad(format!("/v1/users/{carol_id}/messages"), json!({"body": "x", "urgent": true}), 400);
    bad(format!("/v1/users/{carol_id}/messages"), json!({"text": "x"}), 400);
    bad("/v1/users/999999/messages".into(), json!({"body": "x"}), 404);
    bad("/v1/users/carol/messages".into(), json!({"body": "x"}), 400);
    assert_eq!(server.get(&format!("/v1/users/{carol_id}/messages?limit=0")).status, 400);
    assert_eq!(server.get(&format!("/v1/users/{carol_id}/messages?state=lost")).status, 400);
    let pending = server.get(&format!("/v1/users/{carol_id}/messages?state=pending&limit=1")).json();
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(messages_of(&server, carol_id).len(), 2, "bad input stored nothing");

    alice.quit();
    bob.quit();

    // A restart: the pending messages wait in the store.
    server.terminate(Duration::from_secs(10));
    let server = Server::start(&env);
    let carol = Phone::start(&env, &server, 2, ("carol", DOMAIN, PASSWORD), 1000, None, &[]);
    let got = poll(Duration::from_secs(15), "carol's phone gets both messages", || {
        let m: Vec<Value> = carol.events().into_iter().filter(|e| e["event"] == "message").collect();
        (m.len() >= 2).then_some(m)
    });
    assert_eq!(got.len(), 2, "each once: {got:?}");
    assert_eq!((got[0]["body"].as_str(), got[1]["body"].as_str()), (Some("first, from the API"), Some("second, from alice's phone")), "oldest first");
    assert!(got[0]["from_uri"].as_str().unwrap().contains(&format!("sip:3044@{DOMAIN}")), "{:?}", got[0]);
    poll(Duration::from_secs(10), "both delivered", || {
        messages_of(&server, carol_id).iter().all(|m| m["state"] == "delivered").then_some(())
    });
    // A second registration does not send them again.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(carol.events().iter().filter(|e| e["event"] == "message").count(), 2);
    carol.quit();
}
