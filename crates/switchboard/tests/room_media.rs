//! A room's prompts and recordings over REST, with real phones (pjsua2) and checked by
//! ear (Goertzel on what the phones recorded and on the files we wrote):
//! - a tone prompt to the room reaches both participants; one to a participant reaches
//!   only that one; each ends with a `prompt_ended` event;
//! - a recording with tracks writes the mix (both voices and the room prompt) and one
//!   file per participant (that voice only); a paused stretch is left out; each file's
//!   completion is a `recording_completed` event; `/v1/recordings` lists and serves them;
//! - bad requests get 400/404/409 in the API's error format.
//!
//! The test takes the machine-wide media lock (see `support`).

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::phone::{server_events, share, Caller};
use support::*;

/// 16 kHz mono 16-bit samples of a WAV we wrote.
fn samples(wav: &[u8]) -> Vec<i16> {
    let (rate, samples) = support::phone::wav_samples(wav);
    assert_eq!(rate, 16_000);
    samples
}

/// Whether `hz` is the strongest of the given tones in some 100 ms of `s`, at
/// least `share_min` of that window's power.
fn heard_somewhere(s: &[i16], rate: u32, hz: f64, share_min: f64) -> bool {
    s.chunks(rate as usize / 10).any(|w| w.len() == rate as usize / 10 && share(w, rate, hz) > share_min)
}

#[test]
fn prompts_and_a_recording_with_tracks_over_rest() {
    let env = TestEnv::new("room_prompts_recording");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let uri = format!("sip:conf-555@{}", server.sip);
    let alice = Caller::call(&env, 0, "alice", &uri, 400);
    alice.wait_media();
    let bob = Caller::call(&env, 1, "bob", &uri, 1000);
    bob.wait_media();
    let confid = poll(Duration::from_secs(10), "room 555 with two", || {
        let rooms = server.get("/rest/v1/uc/conferences").json();
        let room = rooms.as_array()?.iter().find(|r| r["confroomnum"] == "555")?.clone();
        let confid = room["confid"].as_str()?.to_owned();
        let parts = server.get(&format!("/rest/v1/uc/conferences/{confid}/participants")).json();
        (parts.as_array()?.iter().filter(|p| p["state"] == "active").count() == 2).then_some(confid)
    });
    let parts = server.get(&format!("/rest/v1/uc/conferences/{confid}/participants")).json();
    let pid = |user: &str| -> String {
        parts.as_array().unwrap().iter().find(|p| p["ruri"].as_str().unwrap().contains(&format!("sip:{user}@"))).unwrap()["participantid"].as_str().unwrap().to_owned()
    };
    let (alice_id, bob_id) = (pid("alice"), pid("bob"));
    let base = format!("/rest/v1/uc/conferences/{confid}");

    // Bad requests first: nothing changes.
    for (body, why, status) in [
        (json!({}), "no prompt", 400),
        (json!({"prompt": "../../etc/passwd"}), "a path", 400),
        (json!({"tones": "440/0"}), "a step of 0 ms", 422),
        (json!({"tones": "9000/100"}), "a frequency too high", 422),
    ] {
        let r = server.post(&format!("{base}/prompts"), &body);
        assert_eq!(r.status, status, "{why}: {}", r.body);
        assert_eq!(r.json()["error_code"], 1000 + status);
    }
    assert_eq!(server.request("PATCH", &format!("{base}/recording"), Some(r#"{"paused":true}"#)).status, 409);
    assert_eq!(server.get(&format!("{base}/recording")).status, 404);
    assert_eq!(server.post(&format!("{base}/participants/nobody/prompts"), &json!({"tones": "500/100"})).status, 404);

    // Record with tracks.
    let r = server.post(&format!("{base}/recording"), &json!({"tracks": true}));
    assert_eq!(r.status, 201, "{}", r.body);
    let rec = r.json();
    assert_eq!(rec["files"].as_array().unwrap().len(), 3, "{rec}");
    assert_eq!(server.post(&format!("{base}/recording"), &json!({})).status, 409, "twice");
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));

    // A prompt to the room, then one to alice alone.
    let r = server.post(&format!("{base}/prompts"), &json!({"tones": "1600/1000"}));
    assert_eq!(r.status, 202, "{}", r.body);
    let room_prompt = r.json()["prompt_id"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let r = server.post(&format!("{base}/participants/{alice_id}/prompts"), &json!({"tones": "2400/1000"}));
    assert_eq!(r.status, 202, "{}", r.body);
    let alice_prompt = r.json()["prompt_id"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    // Pause for 2 s, then record 1.5 s more and stop.
    let r = server.request("PATCH", &format!("{base}/recording"), Some(r#"{"paused":true}"#));
    assert_eq!((r.status, r.json()["paused"].clone()), (200, json!(true)), "{}", r.body);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server.request("PATCH", &format!("{base}/recording"), Some(r#"{"paused":false}"#)).status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let r = server.delete(&format!("{base}/recording"));
    assert_eq!(r.status, 200, "{}", r.body);
    let wall = started.elapsed().as_secs_f64();

    // Every file completes; the prompts ended.
    let done = poll(Duration::from_secs(10), "3 recordings complete", || {
        let v = server_events(&server, "recording_completed");
        (v.len() == 3).then_some(v)
    });
    assert!(done.iter().all(|e| e["failed"] == false && e["confid"] == confid.as_str()), "{done:?}");
    let ended = server_events(&server, "prompt_ended");
    for id in [room_prompt, alice_prompt] {
        assert!(ended.iter().any(|e| e["prompt_id"] == id && e["end"] == "finished"), "prompt {id} not ended: {ended:?}");
    }
    let (a, a_rec) = alice.quit();
    a.assert_ok();
    let (b, b_rec) = bob.quit();
    b.assert_ok();

    // The phones: both heard the room prompt, only alice hers.
    let (alice_heard, ra) = support::phone::read_wav(&a_rec);
    let (bob_heard, rb) = support::phone::read_wav(&b_rec);
    // The prompts are at -13 dBFS under a voice at -6 dBFS: about a sixth of the power.
    assert!(heard_somewhere(&alice_heard, ra, 1600.0, 0.1) && heard_somewhere(&bob_heard, rb, 1600.0, 0.1), "the room prompt reached both");
    assert!(heard_somewhere(&alice_heard, ra, 2400.0, 0.1), "alice heard her prompt");
    assert!(!heard_somewhere(&bob_heard, rb, 2400.0, 0.02), "bob heard alice's prompt");

    // The files, through the API.
    let list = server.get("/v1/recordings").json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|f| f["complete"] == true && f["confid"] == confid.as_str()), "{list:?}");
    let file_of = |who: Option<&str>| -> Vec<i16> {
        let f = list.iter().find(|f| f["participantid"].as_str() == who).unwrap_or_else(|| panic!("no file for {who:?}"));
        let r = server.get(&format!("/v1/recordings/{}", f["recording_id"].as_str().unwrap()));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("audio/wave"));
        samples(&r.bytes)
    };
    let mix = file_of(None);
    let mix_s = mix.len() as f64 / 16_000.0;
    // The pause (2 s) is left out of the file.
    assert!(mix_s < wall - 1.5 && mix_s > wall - 3.0, "mix {mix_s:.2} s of {wall:.2} s with a 2 s pause");
    // Two voices at -6 dBFS and the prompt at -13 dBFS: the prompt is ~9 % of the power.
    for (hz, min) in [(400.0, 0.3), (1000.0, 0.3), (1600.0, 0.05)] {
        assert!(heard_somewhere(&mix, 16_000, hz, min), "the mix lacks {hz} Hz");
    }
    // A participant's prompt is what it heard, not what the room said.
    assert!(!heard_somewhere(&mix, 16_000, 2400.0, 0.02), "alice's prompt is in the mix");
    let alice_track = file_of(Some(&alice_id));
    let bob_track = file_of(Some(&bob_id));
    let mid = |s: &[i16]| s[s.len() / 4..s.len() * 3 / 4].to_vec();
    assert!(share(&mid(&alice_track), 16_000, 400.0) > 0.8 && share(&mid(&alice_track), 16_000, 1000.0) < 0.01, "alice's track is her voice only");
    assert!(share(&mid(&bob_track), 16_000, 1000.0) > 0.8 && share(&mid(&bob_track), 16_000, 400.0) < 0.01, "bob's track is his voice only");
    assert_eq!(server.get("/v1/recordings/nope~1-mix").status, 404);
    assert_eq!(server.get("/v1/recordings/..~..").status, 404);
    let _: Value = server.get("/v1/events?after=0").json();
}
