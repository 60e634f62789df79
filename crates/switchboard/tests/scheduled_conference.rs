//! Scheduled conferences end to end (issue 11 item 7, reference 001 §7), with real
//! pjsua2 phones and an MX app session:
//! - alice books three conferences over MX REST (`POST /conferences`): one open now
//!   with `waitForOwner` and `delOnOwnerLeave`, one that starts in an hour, one that
//!   ended an hour ago;
//! - bob (anonymous) calls the conference number and keys the open one's accessId:
//!   he hears the entering prompt, `wait_for_owner`, then music (checked by ear: the
//!   arpeggio's notes, none of alice's tone) and is in no room yet;
//! - alice calls the conference number from her registered phone and keys the same
//!   accessId: she is the owner, so both are in room `<accessId>` and bob hears her
//!   tone instead of the music;
//! - alice hangs up: the room ends and bob gets a BYE;
//! - carol keys the future conference's id and hears `conference_not_started`, then
//!   BYE; dave dials the ended one's id as a room (`conf-<id>`) and hears
//!   `conference_ended`, then BYE.
//!
//! A second test moves a live call into a booked conference: alice calls carol
//! (MX `POST /calls`), then `POST /conferences/{callId}` with the accessId puts both
//! in the room at once, alice counting as the owner (nobody waits), and the room ends
//! when she hangs up; outside the window the join is 403 with the reason.
//!
//! The tests take the machine-wide media lock (see `support`).

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::phone::{read_wav, rms, share, Caller, Phone};
use support::*;

const DOMAIN: &str = "switchboard.test";
const PASSWORD: &str = "correct-horse-7";
const CLIENT: &str = "phone-app";
const SECRET: &str = "app-secret-1";
const OPEN: u64 = 47281964;
const FUTURE: u64 = 5550001;
const PAST: u64 = 5550002;
/// Alice's tone (the owner's); bob's is 1000 Hz.
const ALICE_HZ: u32 = 400;
/// The notes of the waiting music (prompts/en/music.wav).
const MUSIC: [f64; 3] = [523.0, 659.0, 784.0];

fn seed(env: &TestEnv) {
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let db = store::Store::open(&data).await.expect("store");
        let d = db.ensure_domain(DOMAIN).await.unwrap();
        db.add_user(&new_user(DOMAIN, "alice", "3044", PASSWORD)).await.unwrap();
        db.add_user(&new_user(DOMAIN, "carol", "3046", PASSWORD)).await.unwrap();
        db.add_app(CLIENT, SECRET, Some("Phone"), Some(d.id)).await.unwrap();
        db.close().await;
    });
}

fn room_exists(server: &Server, number: &str) -> bool {
    server.get("/rest/v1/uc/conferences").json().as_array().is_some_and(|a| a.iter().any(|r| r["confroomnum"] == number))
}

fn booking(name: &str, access_id: u64, start: u64, minutes: u64) -> Value {
    json!({
        "Id": "", "ownerId": 0, "name": name, "accessId": access_id, "type": "Once",
        "startDate": start, "duration": minutes, "waitForOwner": true, "delOnOwnerLeave": true,
        "ws": "None", "wsType": "Undefined",
    })
}

#[test]
fn a_booked_conference_waits_for_its_owner_ends_with_the_owner_and_keeps_its_window() {
    let env = TestEnv::new("scheduled_conference");
    let _media = env.media_lock();
    seed(&env);
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, "[mx]\nadmin_listen = \"\"\n").unwrap();
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let r = mx_session(
        &server,
        (CLIENT, SECRET),
        ("alice", PASSWORD),
        &json!([
            {"method": "POST", "path": "/conferences", "json": booking("Standup", OPEN, now - 60, 30)},
            {"method": "POST", "path": "/conferences", "json": booking("Later", FUTURE, now + 3600, 30)},
            {"method": "POST", "path": "/conferences", "json": booking("Earlier", PAST, now - 7200, 30)},
            {"method": "GET", "path": "/conferences"},
        ]),
    );
    for (i, id) in [OPEN, FUTURE, PAST].iter().enumerate() {
        assert_eq!(r[i]["status"], 200, "{}", r[i]);
        let c = &r[i]["body"]["conference"];
        assert_eq!(c["accessId"], *id, "{c}");
        assert!(c["Id"].as_str().is_some_and(|s| !s.is_empty()), "Id is a non-empty string: {c}");
        assert_eq!((c["waitForOwner"].as_bool(), c["delOnOwnerLeave"].as_bool()), (Some(true), Some(true)), "{c}");
    }
    assert_eq!(r[3]["body"]["conferences"].as_array().map(Vec::len), Some(3), "{}", r[3]);
    // The writes poke the directory reload; give the engine its new snapshot.
    std::thread::sleep(Duration::from_secs(1));

    // bob keys the open conference: the entering prompt, wait_for_owner, then music.
    let bob = Caller::call(&env, 0, "bob", &format!("sip:conference@{}", server.sip), 1000);
    bob.wait_media();
    let bob_t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    bob.command(&format!("dtmf {OPEN}#"));
    poll(Duration::from_secs(15), "bob waits for the owner", || (log_count(&server, "waiting for the owner of the scheduled conference") == 1).then_some(()));
    // The announcement (about 3.5 s) and a few seconds of music: 6 s or more of it,
    // so the 4 s heard below stay clear of the announcement on a loaded machine.
    std::thread::sleep(Duration::from_secs(10));
    assert!(room_participants(&server, &OPEN.to_string()).is_empty(), "nobody is in the room before the owner");
    assert!(!room_exists(&server, &OPEN.to_string()), "the room starts with its owner");
    let owner_calls = bob_t0.elapsed().as_secs_f64();

    // alice, the owner, keys it from her registered (authenticated) phone.
    let alice = Phone::start(&env, &server, 1, ("alice", DOMAIN, PASSWORD), ALICE_HZ, Some("conference"), &[]);
    alice.record_t0();
    std::thread::sleep(Duration::from_millis(1000));
    alice.command(&format!("dtmf {OPEN}#"));
    poll(Duration::from_secs(20), "alice and bob in the room", || (room_participants(&server, &OPEN.to_string()).len() == 2).then_some(()));
    let joined = bob_t0.elapsed().as_secs_f64();
    assert_eq!(log_count(&server, "the owner joined the scheduled conference"), 1);
    assert_eq!(log_count(&server, "the lobby joins the scheduled conference"), 1);
    std::thread::sleep(Duration::from_secs(4));

    // alice leaves: the room ends with her, and bob is hung up.
    alice.command("hangup");
    bob.wait_disconnected(10);
    poll(Duration::from_secs(10), "the room is gone", || (!room_exists(&server, &OPEN.to_string())).then_some(()));
    assert_eq!(log_count(&server, "the owner left: ending the room"), 1);
    alice.quit();
    let (_, bob_rec) = bob.quit();

    // By ear: music before the owner came (the last 4 s before she called: two turns
    // of the 2 s arpeggio), her tone after she joined.
    let (rec, rate) = read_wav(&bob_rec);
    let at = |t: f64| ((t * rate as f64) as usize).min(rec.len());
    let waiting = &rec[at(owner_calls - 4.5)..at(owner_calls - 0.5)];
    // Note by note: most 0.1 s pieces are one of the arpeggio's notes (0.4 s each, then
    // a 0.4 s rest; a piece in the rest is not: about 80%).
    let piece = rate as usize / 10;
    let pieces: Vec<&[i16]> = waiting.chunks(piece).filter(|c| c.len() == piece).collect();
    let heard: Vec<Option<f64>> = pieces
        .iter()
        .map(|c| MUSIC.iter().copied().find(|&hz| share(c, rate, hz) > 0.5))
        .collect();
    let notes = pieces.iter().filter(|c| MUSIC.iter().map(|&hz| share(c, rate, hz)).sum::<f64>() > 0.5).count();
    let profile: Vec<String> = heard.iter().zip(&pieces).map(|(n, c)| n.map_or(format!("-({:.0})", rms(c)), |hz| format!("{hz}"))).collect();
    println!("bob while waiting, by 0.1 s piece: {}", profile.join(" "));
    assert!(notes * 2 >= pieces.len(), "bob heard no music while waiting: {notes} of {} pieces are its notes", pieces.len());
    for hz in MUSIC {
        assert!(heard.contains(&Some(hz)), "bob heard no {hz} Hz note while waiting: {}", profile.join(" "));
    }
    assert!(share(waiting, rate, ALICE_HZ as f64) < 0.05, "bob heard alice before she joined");
    tone_check(&bob_rec).window(joined + 1.0, Some(joined + 3.5)).expect(&[ALICE_HZ]).absent(&[523, 784]).assert("bob hears the owner, not the music, once she joined");

    // Outside their windows: a prompt says so, then BYE.
    let carol = Caller::call(&env, 2, "carol", &format!("sip:conference@{}", server.sip), 1000);
    let dave = Caller::call(&env, 3, "dave", &format!("sip:conf-{PAST}@{}", server.sip), 1000);
    carol.wait_media();
    std::thread::sleep(Duration::from_millis(1000));
    carol.command(&format!("dtmf {FUTURE}#"));
    carol.wait_disconnected(20);
    dave.wait_disconnected(20);
    assert_eq!(log_count(&server, "IVR: scheduled conference not started"), 1);
    assert_eq!(log_count(&server, "IVR: scheduled conference ended"), 1);
    for (who, c) in [("carol", carol), ("dave", dave)] {
        let (_, wav) = c.quit();
        let (rec, rate) = read_wav(&wav);
        let n = rec.len().min(3 * rate as usize);
        assert!(rms(&rec[rec.len() - n..]) > 300.0, "{who} heard no prompt before the BYE");
    }
    assert!(!room_exists(&server, &FUTURE.to_string()) && !room_exists(&server, &PAST.to_string()));
}

#[test]
fn a_call_moved_into_a_booked_conference_brings_its_owner() {
    let env = TestEnv::new("scheduled_from_call");
    let _media = env.media_lock();
    seed(&env);
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, "[mx]\nadmin_listen = \"\"\n[calls]\nring_time_s = 30\n").unwrap();
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });
    let mx = |plan: Value| mx_session(&server, (CLIENT, SECRET), ("alice", PASSWORD), &plan);

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let r = mx(json!([
        {"method": "POST", "path": "/conferences", "json": booking("Call", OPEN, now - 60, 30)},
        {"method": "POST", "path": "/conferences", "json": booking("Later", FUTURE, now + 3600, 30)},
    ]));
    assert!(r.iter().all(|r| r["status"] == 200), "{r:?}");
    let alice = Phone::start(&env, &server, 0, ("alice", DOMAIN, PASSWORD), ALICE_HZ, None, &[]);
    let carol = Phone::start(&env, &server, 1, ("carol", DOMAIN, PASSWORD), 1000, None, &[]);

    // makeCall: alice's phone rings first, then carol's; both answer.
    let r = mx(json!([{"method": "POST", "path": "/calls", "json": {"to": "3046"}}]));
    let id = r[0]["body"]["makeCall"]["callId"].as_u64().unwrap_or_else(|| panic!("{}", r[0]));
    support::phone::wait_server_event(&server, "call_answered", |e| e["call_id"] == id);

    let r = mx(json!([
        {"method": "POST", "path": format!("/conferences/{id}"), "json": {"accessId": FUTURE}},
        {"method": "POST", "path": format!("/conferences/{id}"), "json": {"accessId": 999}},
        {"method": "POST", "path": format!("/conferences/{id}"), "json": {"accessId": OPEN}},
    ]));
    assert_eq!((r[0]["status"].as_u64(), &r[0]["body"]), (Some(403), &json!({"error": "conference has not started"})));
    assert_eq!(r[1]["status"], 404, "{}", r[1]);
    assert_eq!(r[2]["status"], 204, "{}", r[2]);
    // Alice is the owner, so nobody waits: both are in the room at once.
    poll(Duration::from_secs(10), "alice and carol in the room", || (room_participants(&server, &OPEN.to_string()).len() == 2).then_some(()));
    assert_eq!(log_count(&server, "the owner joined the scheduled conference"), 1);
    assert_eq!(log_count(&server, "waiting for the owner"), 0);
    std::thread::sleep(Duration::from_secs(2));

    // delOnOwnerLeave: alice hangs up, carol gets a BYE and the room is gone.
    alice.command("hangup");
    carol.wait_event("carol is hung up with the room", 10, |e| e["event"] == "state" && e["state"] == "DISCONNECTED");
    poll(Duration::from_secs(10), "the room is gone", || (!room_exists(&server, &OPEN.to_string())).then_some(()));
    alice.quit();
    carol.quit();
}
