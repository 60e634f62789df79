//! Voicemail end to end (issue 11), with real pjsua2 phones and an MX app session:
//! bob's phone rings and never answers; after bob's `vmDelay` (2 s, set with MX
//! `PATCH /calls`) alice's call goes to bob's voicemail (greeting, beep, recording);
//! alice's phone plays an 800 Hz tone for 3 s of recording and hangs up. Then:
//! - `GET /voicemails` lists one VoiceMail from 3044 to 3045 of about 3 s;
//! - `GET /voicemails/{id}` is the WAV (`audio/wave`, an attachment) and holds the
//!   800 Hz tone (Goertzel), not bob's 1000 Hz ringing-side tone;
//! - bob's phone got an unsolicited MWI NOTIFY (`Messages-Waiting: yes`, `1/0`), and
//!   `Messages-Waiting: no` (`0/1`) once the message is marked read;
//! - bob calls the voicemail number from his phone (authenticated, so his own mailbox),
//!   keys his PIN and hears the message: alice's tone is in what he recorded;
//! - `PATCH` echoes only the keys sent, neither is 400 `bad request`; `DELETE` is 204
//!   then 404; a bad id or media gets MX's error body.

mod support;

use std::time::Duration;
use support::phone::{wav_samples, Phone};
use support::*;

const DOMAIN: &str = "switchboard.test";
const PASSWORD: &str = "correct-horse-7";
const CLIENT: &str = "phone-app";
const SECRET: &str = "app-secret-1";
/// Alice's tone; bob's phone plays 1000 Hz (which must not be in the message).
const TONE: u32 = 800;
/// The directory PIN the voicemail number asks for.
const BOB_PIN: &str = "2468";

fn seed(env: &TestEnv) {
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = store::Store::open(&data).await.expect("store");
        let d = db.ensure_domain(DOMAIN).await.unwrap();
        for (login, ext, first) in [("alice", "3044", "Alice"), ("bob", "3045", "Bob")] {
            let u = store::NewUser {
                first_name: Some(first.into()),
                last_name: Some("Example".into()),
                pin: Some(BOB_PIN.into()),
                ..new_user(DOMAIN, login, ext, PASSWORD)
            };
            db.add_user(&u).await.unwrap();
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

/// Seconds a prompt of the built-in set lasts.
fn prompt_secs(name: &str) -> f64 {
    let bytes = std::fs::read(workspace_root().join("prompts/en").join(format!("{name}.wav"))).unwrap();
    let (rate, samples) = wav_samples(&bytes);
    samples.len() as f64 / rate as f64
}

/// Power of `f` in `x` (Goertzel), normalised by length.
fn goertzel(x: &[i16], rate: u32, f: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f / rate as f64;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v as f64 + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len() as f64).powi(2)
}

#[test]
fn an_unanswered_call_leaves_a_message_listed_downloaded_marked_and_deleted_with_mwi() {
    let env = TestEnv::new("voicemail");
    let _media = env.media_lock();
    seed(&env);
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, "[calls]\nring_time_s = 30\n[voicemail]\nenabled = true\nmax_message_s = 20\n[mx]\nadmin_listen = \"\"\n").unwrap();
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });

    // bob: voicemail after 2 s of ringing.
    let r = session(&server, "bob", &json!([{"method": "PATCH", "path": "/calls", "json": {"vmDelay": 2}}]));
    assert_eq!(r[0]["body"]["callMode"]["vmDelay"], 2, "{}", r[0]);
    let bob = Phone::start(&env, &server, 0, ("bob", DOMAIN, PASSWORD), 1000, None, &["--ring-only"]);
    // The call mode reaches the engine with the next directory snapshot.
    std::thread::sleep(Duration::from_secs(1));

    // alice: media from voicemail's answer; greeting and beep, then 3 s of her tone.
    let lead = prompt_secs("vm_greeting") + prompt_secs("beep");
    let alice = Phone::start(&env, &server, 1, ("alice", DOMAIN, PASSWORD), TONE, Some("3045"), &[]);
    // Answered by voicemail (media up) after bob's 2 s of ringing.
    alice.record_t0();
    std::thread::sleep(Duration::from_secs_f64(lead + 3.0));
    alice.command("hangup");
    std::thread::sleep(Duration::from_millis(500));
    alice.quit();

    // The message is listed once the shell has trimmed and stored it.
    let list = poll(Duration::from_secs(20), "the message is listed", || {
        let r = session(&server, "bob", &json!([{"method": "GET", "path": "/voicemails"}]));
        let items = r[0]["body"]["voiceMails"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    });
    assert_eq!(list.len(), 1, "{list:?}");
    let vm = &list[0];
    let id = vm["id"].as_str().expect("id is a string").to_owned();
    assert_eq!((vm["from"].as_str(), vm["to"].as_str(), vm["mediaType"].as_str(), vm["ownerType"].as_str()), (Some("3044"), Some("3045"), Some("VoiceMail"), Some("user")), "{vm}");
    assert_eq!(vm["fromName"], "Alice Example", "{vm}");
    let secs = vm["duration"].as_u64().expect("duration");
    assert!((2..=4).contains(&secs), "about 3 s of message: {vm}");
    assert!(vm.get("read").is_none() && vm.get("note").is_none(), "unread, no note: {vm}");
    let received = vm["received"].as_u64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(received <= now && received + 60 > now, "{vm}");

    // MWI: bob's phone hears that a message waits.
    let mwi = bob.wait_event("MWI: a message waits", 15, |e| e["event"] == "mwi" && e["msg"].as_str().is_some_and(|m| m.contains("Messages-Waiting: yes")));
    let text = mwi["msg"].as_str().unwrap();
    assert!(text.starts_with("NOTIFY ") && text.contains("Voice-Message: 1/0") && text.to_ascii_lowercase().contains("event: message-summary"), "{text}");

    // The WAV holds alice's tone, not bob's.
    let wav = env.path("message.wav");
    env.report_on_failure(&wav);
    let r = session(&server, "bob", &json!([
        {"method": "GET", "path": format!("/voicemails/{id}"), "save": wav.display().to_string()},
        {"method": "GET", "path": format!("/voicemails/{id}?media=Recording")},
        {"method": "GET", "path": "/voicemails/abc"},
        {"method": "GET", "path": "/voicemails?media=Fax"},
        {"method": "GET", "path": "/voicemails?media=Recording"},
    ]));
    assert_eq!(r[0]["status"], 200, "{}", r[0]);
    assert_eq!(r[0]["content_type"], "audio/wave");
    // MX's names: `u` + the owner padded to 20 digits, `/m` + the message, 4 digits.
    let disposition = r[0]["disposition"].as_str().unwrap();
    let name = disposition.strip_prefix("attachment; filename=\"u").and_then(|n| n.strip_suffix('"')).unwrap_or_else(|| panic!("{disposition}"));
    let (owner, file) = name.split_once('/').unwrap();
    assert!(owner.len() == 20 && owner.bytes().all(|b| b.is_ascii_digit()), "{disposition}");
    assert_eq!(file, format!("m{:04}.wav", id.parse::<u64>().unwrap()), "{disposition}");
    assert_eq!(sb(&r[1]), (404, json!({"error": "not found"})), "a VoiceMail is not a Recording");
    assert_eq!(sb(&r[2]), (404, json!({"error": "not found"})));
    assert_eq!(sb(&r[3]).0, 400);
    assert_eq!(sb(&r[4]), (200, json!({"voiceMails": []})));
    let (rate, samples) = wav_samples(&std::fs::read(&wav).unwrap());
    assert_eq!(rate, 16_000);
    let secs_in_file = samples.len() as f64 / rate as f64;
    assert!((2.0..=4.5).contains(&secs_in_file), "trimmed to the tone: {secs_in_file} s");
    let tone = goertzel(&samples, rate, TONE as f64);
    let other = goertzel(&samples, rate, 1000.0);
    let off = goertzel(&samples, rate, 1900.0);
    assert!(tone > 100.0 * other && tone > 100.0 * off, "the message is alice's {TONE} Hz: {tone:.1} vs 1000 Hz {other:.1}, 1900 Hz {off:.1}");

    // The voicemail number: bob's phone is authenticated, so his own mailbox opens;
    // after his PIN he hears the count, then the message, alice's tone.
    bob.command(&format!("call sip:voicemail@{DOMAIN}"));
    bob.record_t0();
    std::thread::sleep(Duration::from_millis(1500));
    bob.command(&format!("dtmf {BOB_PIN}#"));
    poll(Duration::from_secs(15), "bob's mailbox opens", || {
        std::fs::read_to_string(&server.log).unwrap_or_default().contains("voicemail: mailbox opened").then_some(())
    });
    let count = prompt_secs("vm_you_have") + prompt_secs("1") + prompt_secs("vm_new_message") + prompt_secs("vm_message") + prompt_secs("1");
    std::thread::sleep(Duration::from_secs_f64(count + 4.0));
    bob.command("hangup");
    std::thread::sleep(Duration::from_millis(500));
    // (What bob heard is checked at the end: pjsua finishes the WAV when it quits.)
    let bob_rec = bob.record.clone();

    // PATCH: only the keys sent come back; read clears the lamp.
    let r = session(&server, "bob", &json!([
        {"method": "PATCH", "path": format!("/voicemails/{id}"), "json": {"read": true}},
        {"method": "PATCH", "path": format!("/voicemails/{id}"), "json": {"note": "call alice back"}},
        {"method": "PATCH", "path": format!("/voicemails/{id}"), "json": {}},
        {"method": "PATCH", "path": "/voicemails/999999", "json": {"read": true}},
        {"method": "GET", "path": "/voicemails?media=VoiceMail"},
    ]));
    assert_eq!(sb(&r[0]), (200, json!({"vm": {"read": true}})));
    assert_eq!(sb(&r[1]), (200, json!({"vm": {"note": "call alice back"}})));
    assert_eq!(sb(&r[2]), (400, json!({"error": "bad request"})));
    assert_eq!(sb(&r[3]), (404, json!({"error": "not found"})));
    let item = &r[4]["body"]["voiceMails"][0];
    assert_eq!((item["read"].as_bool(), item["note"].as_str()), (Some(true), Some("call alice back")), "{item}");
    bob.wait_event("MWI: nothing waits", 15, |e| e["event"] == "mwi" && e["msg"].as_str().is_some_and(|m| m.contains("Messages-Waiting: no") && m.contains("Voice-Message: 0/1")));

    // alice cannot see bob's message; DELETE is 204, then 404, and the file is gone.
    let r = session(&server, "alice", &json!([
        {"method": "GET", "path": "/voicemails"},
        {"method": "DELETE", "path": format!("/voicemails/{id}")},
    ]));
    assert_eq!(sb(&r[0]), (200, json!({"voiceMails": []})));
    assert_eq!(sb(&r[1]).0, 404);
    let files = |dir: &std::path::Path| std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".wav")).count()).unwrap_or(0);
    let boxes = env.path("data").join("voicemail");
    let bob_dir = std::fs::read_dir(&boxes).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).next().expect("bob's mailbox dir");
    assert_eq!(files(&bob_dir), 1);
    let r = session(&server, "bob", &json!([
        {"method": "DELETE", "path": format!("/voicemails/{id}")},
        {"method": "DELETE", "path": format!("/voicemails/{id}")},
        {"method": "GET", "path": "/voicemails"},
    ]));
    assert_eq!(sb(&r[0]).0, 204, "{}", r[0]);
    assert_eq!(sb(&r[1]), (404, json!({"error": "not found"})));
    assert_eq!(sb(&r[2]), (200, json!({"voiceMails": []})));
    assert_eq!(files(&bob_dir), 0, "the message's file is deleted with it");
    bob.quit();
    let (rate, heard) = wav_samples(&std::fs::read(&bob_rec).unwrap());
    let half = rate as usize / 2;
    let toned = heard.chunks(half).filter(|c| c.len() == half && goertzel(c, rate, TONE as f64) > 20.0 * goertzel(c, rate, 1000.0).max(goertzel(c, rate, 1900.0))).count();
    assert!(toned >= 4, "bob heard his message at the voicemail number: {toned} half-seconds of alice's tone");
}
