//! The conference access number with real phones (pjsua2): a caller dials
//! `sip:conference@…`, hears the PIN prompt, keys a room number and joins that room,
//! as in SEMS's webconference. Checked by ear: what the caller recorded before it
//! joined is speech from our prompt set, not the room; after it joined it hears the
//! other participant's tone, who heard the join sound and then the caller's tone.
//! Private mode (a wrong room gets the wrong-PIN prompt, the retry works), a room
//! PIN, digits by SIP INFO, and the lonely-user timer (bob, left alone, is hung up)
//! are the second test.
//!
//! The tests take the machine-wide media lock (see `support`).

mod support;

use std::time::Duration;
use support::phone::{read_wav, rms, share, Caller};
use support::*;

fn wait_participants(server: &Server, number: &str, n: usize) {
    poll(Duration::from_secs(20), &format!("{n} in room {number}"), || (room_participants(server, number).len() == n).then_some(()));
}

#[test]
fn keying_a_room_number_at_the_access_number_joins_that_room() {
    let env = TestEnv::new("ivr_rfc4733_entry");
    let _media = env.media_lock();
    let server = Server::start(&env);
    // The prompt set was written into the data dir at start.
    assert!(env.path("data/prompts/en/pin_prompt.wav").exists());

    let bob = Caller::call(&env, 0, "bob", &format!("sip:conf-1234@{}", server.sip), 1000);
    bob.wait_media();
    wait_participants(&server, "1234", 1);

    let alice = Caller::call(&env, 1, "alice", &format!("sip:conference@{}", server.sip), 400);
    alice.wait_media();
    // The PIN prompt plays for 2.5 s; the first digit cuts it short (barge-in).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(room_participants(&server, "1234").len(), 1, "alice must not be in the room before keying it");
    alice.command("dtmf 1234#");
    // "Entering the conference", then she is in.
    wait_participants(&server, "1234", 2);
    std::thread::sleep(Duration::from_secs(5));
    let (a, a_rec) = alice.quit();
    a.assert_ok();
    std::thread::sleep(Duration::from_millis(1500));
    let (b, b_rec) = bob.quit();
    b.assert_ok();

    assert_eq!(log_count(&server, "IVR: caller joined the room"), 1);
    let (rec, rate) = read_wav(&a_rec);
    let secs = |t: f64| (t * rate as f64) as usize;
    // Before keying (0.3–2.3 s into the call): our prompt, i.e. speech, not the room.
    let before = &rec[secs(0.3)..secs(2.3)];
    assert!(rms(before) > 300.0, "alice heard no prompt before keying the room (rms {:.0})", rms(before));
    assert!(share(before, rate, 1000.0) < 0.05, "alice heard the room before keying it");
    // Her last 3 s: bob's tone.
    let dur = rec.len() as f64 / rate as f64;
    tone_check(&a_rec).window(dur - 3.3, Some(dur - 0.4)).expect(&[1000]).assert("alice hears bob after joining");

    // Bob heard the join sound (660 Hz, then 880 Hz, 0.12 s each), then alice's tone.
    let (rec, rate) = read_wav(&b_rec);
    let win = (rate as usize) / 10;
    let best = |hz: f64| rec.chunks(win / 2).collect::<Vec<_>>().windows(2).map(|w| share(&[w[0], w[1]].concat(), rate, hz)).fold(0.0, f64::max);
    assert!(best(660.0) > 0.3 && best(880.0) > 0.3, "bob heard no join sound: 660 Hz {:.2}, 880 Hz {:.2}", best(660.0), best(880.0));
    let dur = rec.len() as f64 / rate as f64;
    // Alice was there for 5 s until about 3 s before bob's end (her hang-up, then 1.5 s).
    tone_check(&b_rec).window(dur - 6.3, Some(dur - 4.0)).expect(&[400]).assert("bob hears alice once she joined");
}

#[test]
fn private_rooms_refuse_unknown_numbers_and_room_pins_are_asked_for_with_info_digits() {
    let env = TestEnv::new("ivr_private_pin_info");
    let _media = env.media_lock();
    let config = env.path("ivr.toml");
    std::fs::write(&config, "[ivr]\nprivate_rooms = true\ninter_digit_timeout_ms = 3000\nlonely_user_timer_s = 3\n[ivr.room_pins]\n\"77\" = \"4321\"\n").unwrap();
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), config.display().to_string()], ..Default::default() });

    let bob = Caller::call(&env, 0, "bob", &format!("sip:conf-77@{}", server.sip), 1000);
    bob.wait_media();
    wait_participants(&server, "77", 1);

    let alice = Caller::call(&env, 1, "alice", &format!("sip:conference@{}", server.sip), 400);
    alice.wait_media();
    std::thread::sleep(Duration::from_millis(1000));
    // A room nobody is in: refused in private mode; she may try again.
    alice.command("dtmf_info 55#");
    poll(Duration::from_secs(10), "the wrong room refused", || (log_count(&server, "IVR: no such room") == 1).then_some(()));
    std::thread::sleep(Duration::from_millis(1000));
    // The right room: it asks for its PIN. A wrong PIN first, then the right one.
    alice.command("dtmf_info 77#");
    std::thread::sleep(Duration::from_millis(1500));
    alice.command("dtmf_info 1111#");
    poll(Duration::from_secs(10), "the wrong PIN refused", || (log_count(&server, "IVR: wrong room PIN") == 1).then_some(()));
    assert_eq!(room_participants(&server, "77").len(), 1);
    std::thread::sleep(Duration::from_millis(1000));
    // No terminator this time: the inter-digit timeout takes the entry.
    alice.command("dtmf_info 4321");
    wait_participants(&server, "77", 2);
    std::thread::sleep(Duration::from_secs(4));
    // Left alone once alice hangs up, bob is hung up after the lonely-user time (3 s).
    let alone = std::time::Instant::now();
    let (a, a_rec) = alice.quit();
    a.assert_ok();
    bob.wait_disconnected(15);
    assert!(alone.elapsed() > Duration::from_millis(2500), "bob was hung up before his lonely-user time: {:?}", alone.elapsed());
    assert_eq!(log_count(&server, "alone in the room for the lonely-user time"), 1);
    bob.quit().0.assert_ok();

    let (rec, rate) = read_wav(&a_rec);
    let dur = rec.len() as f64 / rate as f64;
    tone_check(&a_rec).window(dur - 3.3, Some(dur - 0.4)).expect(&[1000]).assert("alice hears bob in room 77");
    // Never in room 55: it was not made.
    assert!(room_participants(&server, "55").is_empty());
}
