//! Reference 001's call control against real phones: registered pjsua2 users (alice
//! plays 440 Hz, bob 1000 Hz, carol 1500 Hz, each records what it hears), driven by an
//! MX app session in Python `requests` (tests/kit/mx/mx_session.py, the OAuth2
//! password grant then Bearer calls), audio checked by FFT on the recordings.
//!
//! | test | what |
//! |---|---|
//! | `make_call_hold_unhold_record_and_clear` | `POST /calls` rings alice, then bob; both hear each other; `PUT …/hold` silences alice for bob, `/unhold` restores her; `POST …/record` + `/record/stop` leave a WAV with both tones, linked from the call record; `DELETE` clears the call on both phones; the call log shows it |
//! | `a_push_wakes_the_app_before_the_call_rings_and_a_colleague_intercepts` | bob has an APNs token and no phone registered: alice's call pushes to a stand-in APNs server, and only then does bob's app (started on the push) register and ring; carol picks the call up with `PUT /calls/{id}` and alice hears her |

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::phone::*;
use support::*;

const DOMAIN: &str = "alpha.test";
const CLIENT: &str = "phone-app";
const SECRET: &str = "app-secret-1";
const TOPIC: &str = "com.example.app";

fn user(login: &str) -> (&str, &'static str, String) {
    (login, DOMAIN, format!("{login}-pw"))
}

/// alpha.test with alice 3044, bob 3045, carol 3046 (password `<login>-pw`) and the app.
fn seed(data: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        std::fs::create_dir_all(data).unwrap();
        let db = store::Store::open(data).await.expect("store");
        let d = db.ensure_domain(DOMAIN).await.unwrap();
        for (login, ext) in [("alice", "3044"), ("bob", "3045"), ("carol", "3046")] {
            let u = store::NewUser { domain: DOMAIN.into(), login: login.into(), password: format!("{login}-pw"), ext: Some(ext.into()), ..Default::default() };
            db.add_user(&u).await.unwrap();
        }
        db.add_app(CLIENT, SECRET, Some("Phone"), Some(d.id)).await.unwrap();
        db.close().await;
    });
}

fn start_server(env: &TestEnv, apns: Option<&str>) -> Server {
    seed(&env.path("data"));
    let cfg = env.path("switchboard.toml");
    let mut text = String::from("[mx]\nadmin_listen = \"\"\n[calls]\nring_time_s = 30\n");
    if let Some(url) = apns {
        text += &format!("[push]\napns_url = \"{url}\"\napns_topics = [\"{TOPIC}\"]\nwake_wait_ms = 15000\n");
    }
    std::fs::write(&cfg, text).unwrap();
    Server::start_with(env, ServerOptions { t1_ms: Some(100), extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() })
}

/// Runs the plan as `user` (password `<user>-pw`) through mx_session.py (one login per plan).
fn mx(server: &Server, user: &str, plan: Value) -> Vec<Value> {
    mx_session(server, (CLIENT, SECRET), (user, &format!("{user}-pw")), &plan)
}

/// One MX request; its (status, body).
fn mx1(server: &Server, user: &str, method: &str, path: &str, body: Option<Value>) -> (u64, Value) {
    let mut step = json!({"method": method, "path": path});
    if let Some(b) = body {
        step["json"] = b;
    }
    let r = mx(server, user, json!([step])).remove(0);
    (r["status"].as_u64().unwrap(), r["body"].clone())
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn make_call_hold_unhold_record_and_clear() {
    let env = TestEnv::new("mx_call_control");
    let _media = env.media_lock();
    let server = start_server(&env, None);
    let (a, b) = (user("alice"), user("bob"));
    let alice = Phone::start(&env, &server, 0, (a.0, a.1, &a.2), 440, None, &[]);
    let bob = Phone::start(&env, &server, 1, (b.0, b.1, &b.2), 1000, None, &[]);

    // makeCall: the server rings alice's phone first, then bob's.
    let (status, body) = mx1(&server, "alice", "POST", "/calls", Some(json!({"to": "3045"})));
    assert_eq!(status, 200, "{body}");
    let id = body["makeCall"]["callId"].as_u64().expect("integer callId");
    assert_eq!(body, json!({"makeCall": {"callId": id, "deviceId": "3044", "calledDevice": "3045"}}));
    wait_server_event(&server, "call_answered", |e| e["call_id"] == id);
    let (a0, b0) = (alice.record_t0(), bob.record_t0());
    std::thread::sleep(Duration::from_millis(1500));
    let before = phone_now(&bob);
    let before_a = phone_now(&alice);

    // hold: alice holds bob; bob gets our sendonly re-INVITE and hears nothing of her
    let (status, body) = mx1(&server, "alice", "PUT", &format!("/calls/{id}/hold"), None);
    assert_eq!((status, body), (200, json!({"held": {"type": "", "callId": id, "deviceId": "3044", "timestamp": 0, "releasingDevice": "3044", "cause": "normal"}})));
    wait_server_event(&server, "call_held", |e| e["call_id"] == id);
    bob.wait_event("bob sees the remote hold", 10, |e| e["event"] == "media" && e["status"] == "remote_hold");
    let held_at = phone_now(&bob);
    std::thread::sleep(Duration::from_millis(2500));
    let unhold_at = phone_now(&bob);
    let (status, body) = mx1(&server, "alice", "PUT", &format!("/calls/{id}/unhold"), None);
    assert_eq!((status, body["retrieved"]["callId"].as_u64()), (200, Some(id)), "{body}");
    wait_server_event(&server, "call_retrieved", |e| e["call_id"] == id);
    bob.wait_event("bob's media active again", 10, |e| e["event"] == "media" && e["status"] == "active" && e["t"].as_f64().unwrap() > unhold_at);
    let resumed = phone_now(&bob);

    // record both parties for a while
    let (status, _) = mx1(&server, "alice", "POST", &format!("/calls/{id}/record"), Some(json!({"deviceID": "3044"})));
    assert_eq!(status, 204);
    wait_server_event(&server, "recording_started", |e| e["info"]["call_id"] == id);
    std::thread::sleep(Duration::from_millis(2500));
    let (status, _) = mx1(&server, "alice", "POST", &format!("/calls/{id}/record/stop"), Some(json!({"deviceID": "3044"})));
    assert_eq!(status, 204);
    let stopped = wait_server_event(&server, "recording_stopped", |e| e["info"]["call_id"] == id);
    let end_b = phone_now(&bob);

    // callInfo while up, then clear: both phones are hung up
    let r = mx(&server, "alice", json!([
        {"method": "GET", "path": format!("/calls/{id}")},
        {"method": "DELETE", "path": format!("/calls/{id}")},
    ]));
    assert_eq!(r[0]["status"], 200, "{}", r[0]);
    assert_eq!(r[0]["body"]["callInfo"]["type"], "Established", "{}", r[0]);
    assert_eq!(r[1]["status"], 200, "{}", r[1]);
    assert_eq!(r[1]["body"]["connectionCleared"]["callId"], id, "{}", r[1]);
    for p in [&alice, &bob] {
        p.wait_event("hung up by the clear", 10, |e| e["event"] == "state" && e["state"] == "DISCONNECTED");
    }
    let ended = wait_server_event(&server, "call_ended", |e| e["call_id"] == id);
    let (status, _) = mx1(&server, "alice", "GET", &format!("/calls/{id}"), None);
    assert_eq!(status, 404, "a cleared call is gone");
    let (bob_rec, alice_rec) = (bob.record.clone(), alice.record.clone());
    alice.quit();
    bob.quit();

    // bob hears alice before the hold and after it, nothing of her while held
    let bw = |t: f64| t - b0;
    tone_check(&bob_rec).window(0.5, Some(bw(before) - 0.2)).expect(&[440]).assert("bob hears alice before the hold");
    tone_check(&bob_rec).window(bw(held_at) + 0.5, Some(bw(unhold_at) - 0.2)).absent(&[440]).allow_silent("held: silence").assert("held bob hears nothing of alice");
    tone_check(&bob_rec).window(bw(resumed) + 0.7, Some(bw(end_b) - 0.2)).expect(&[440]).assert("bob hears alice after unhold");
    tone_check(&alice_rec).window(0.5, Some(before_a - a0 - 0.2)).expect(&[1000]).assert("alice hears bob before the hold");

    // the recording holds both parties, and the call record links it
    let file = stopped["file"].as_str().expect("recording file").to_owned();
    assert_eq!(ended["recordings"], json!([file.clone()]), "{ended}");
    tone_check(&env.path("data").join(&file)).window(0.3, None).expect(&[440, 1000]).assert("the recording holds both tones");
    let (status, log) = mx1(&server, "alice", "GET", "/calls", None);
    assert_eq!(status, 200);
    let entry = log["callLog"].as_array().and_then(|l| l.iter().find(|c| c["record_id"] == id)).unwrap_or_else(|| panic!("call {id} in the call log: {log}"));
    assert_eq!(entry["direction"], "outgoing", "{entry}");
}

/// A stand-in APNs server: answers 200 to every POST and keeps (epoch ms, path, body).
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<(u64, String, Value)>>>,
}

fn stand_in_apns() -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<(u64, String, Value)>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(stream) = conn else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    log.lock().unwrap().push((epoch_ms(), path, body));
                    if out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    StandIn { url, seen }
}

#[test]
fn a_push_wakes_the_app_before_the_call_rings_and_a_colleague_intercepts() {
    let env = TestEnv::new("mx_push_intercept");
    let _media = env.media_lock();
    let apns = stand_in_apns();
    let server = start_server(&env, Some(&apns.url));
    let token = "a1".repeat(32);
    let (status, _) = mx1(&server, "bob", "PUT", &format!("/tokens/apn/{TOPIC}/{token}"), None);
    assert!(status == 200 || status == 204, "token stored: {status}");
    let (a, b, c) = (user("alice"), user("bob"), user("carol"));
    let alice = Phone::start(&env, &server, 0, (a.0, a.1, &a.2), 440, None, &[]);
    let carol = Phone::start(&env, &server, 2, (c.0, c.1, &c.2), 1500, None, &[]);
    // the directory has reloaded with bob's token once his call mode says so
    std::thread::sleep(Duration::from_millis(1500));

    // alice calls bob, who has no phone registered: the push goes out, nothing rings
    alice.command(&format!("call sip:3045@{DOMAIN}"));
    let (pushed_at, path, body) = poll(Duration::from_secs(10), "the push at the stand-in APNs", || apns.seen.lock().unwrap().first().cloned());
    assert_eq!(path, format!("/3/device/{token}"));
    let started = wait_server_event(&server, "call_started", |_| true);
    let id = started["call_id"].as_u64().unwrap();
    assert!(body.to_string().contains(&id.to_string()), "the push names the call: {body}");
    assert!(server_events(&server, "call_ringing").is_empty(), "nothing rang before bob's app woke");

    // bob's app wakes on the push and registers: now it rings (and stays ringing)
    let bob = Phone::start(&env, &server, 1, (b.0, b.1, &b.2), 1000, None, &["--ring-only"]);
    let ringing = wait_server_event(&server, "call_ringing", |e| e["call_id"] == id);
    assert!(ringing["ts"].as_u64().unwrap() >= pushed_at, "the push ({pushed_at}) came before the ring ({})", ringing["ts"]);
    bob.wait_event("bob's app rings", 10, |e| e["event"] == "state" && e["state"] == "INCOMING");

    // carol picks it up on her phone; bob's ringing stops
    let (status, body) = mx1(&server, "carol", "PUT", &format!("/calls/{id}"), Some(json!({"device": "3046"})));
    assert_eq!((status, body["sipAnswer"]["callId"].as_u64()), (200, Some(id)), "{body}");
    wait_server_event(&server, "call_answered", |e| e["call_id"] == id);
    bob.wait_event("bob's ringing is cancelled", 10, |e| e["event"] == "state" && e["state"] == "DISCONNECTED");
    let a0 = alice.record_t0();
    let t = phone_now(&alice);
    std::thread::sleep(Duration::from_millis(2500));
    let t_end = phone_now(&alice);
    alice.quit();
    bob.quit();
    carol.quit();
    tone_check(&env.path("alice_rx.wav")).window(t - a0 + 0.3, Some(t_end - a0 - 0.2)).expect(&[1500]).absent(&[1000]).assert("alice hears carol, who picked up");
}
