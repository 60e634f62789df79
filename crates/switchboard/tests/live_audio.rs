//! Live audio out with real parts: pjsua2 phones in a room, the server's WebSocket
//! client, and a WebSocket receiver written here (tokio-tungstenite on 127.0.0.1):
//! - the receiver gets the `start` message and the room's PCM, and the tone a phone
//!   plays is in it (Goertzel); what it sends back (another tone) is played into the
//!   room, where the other phone records it, and is not streamed back to it; stopping
//!   gives the `stop` message and the close; `stream_started`/`stream_stopped` events;
//! - a URL outside `[live_audio] allowed_urls` is a 400, an unknown room a 404;
//! - a leg's stream (`direction: says`) carries that phone's voice only;
//! - a receiver killed mid-stream ends the stream (`receiver_closed`) and the call goes
//!   on: the phones still hear each other; a receiver nobody listens for ends it with
//!   `connect_failed`;
//! - a `wss://` receiver whose certificate a private CA signed (`[live_audio] ca_file`)
//!   gets the stream over TLS; one whose CA is not trusted is refused (`connect_failed`).
//!
//! The test takes the machine-wide media lock (see `support`).

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use support::phone::{share, wait_server_event, Caller};
use support::*;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// What the receiver got.
#[derive(Debug, Default)]
struct Received {
    start: Value,
    /// The PCM, as sent (little-endian 16-bit mono at the stream's rate).
    pcm: Vec<i16>,
    /// Sizes of the binary messages.
    sizes: Vec<usize>,
    stop: Option<Value>,
    /// A close frame came after the stop.
    closed: bool,
}

/// How the receiver behaves.
#[derive(Clone, Copy)]
struct Behaviour {
    /// Sends this tone back (8 kHz PCM, paced in real time).
    play_back_hz: Option<f64>,
    /// Drops the connection (no close frame) after this long.
    die_after: Option<Duration>,
}

/// Accepts one stream and reads it to its end.
async fn receive(listener: TcpListener, how: Behaviour) -> Received {
    let (tcp, _) = listener.accept().await.expect("the server connects");
    receive_on(tcp, how).await
}

/// Reads one stream, on a connection already accepted (plain or TLS), to its end.
async fn receive_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(conn: S, how: Behaviour) -> Received {
    let ws = tokio_tungstenite::accept_async(conn).await.expect("WebSocket handshake");
    let (mut tx, mut rx) = ws.split();
    let mut got = Received::default();
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    let died = tokio::time::sleep(how.die_after.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(died);
    let mut sent = 0usize;
    loop {
        tokio::select! {
            _ = &mut died => return got,
            _ = pace.tick(), if how.play_back_hz.is_some() && got.stop.is_none() => {
                // Three frames at first (the server's prebuffer), then one a frame time.
                let frames = if sent == 0 { 3 } else { 1 };
                for _ in 0..frames {
                    let hz = how.play_back_hz.unwrap_or_default();
                    let bytes: Vec<u8> = (0..160)
                        .map(|i| ((sent * 160 + i) as f64 / 8000.0 * hz * std::f64::consts::TAU).sin() * 13000.0)
                        .flat_map(|s| (s as i16).to_le_bytes())
                        .collect();
                    sent += 1;
                    if tx.send(Message::binary(bytes)).await.is_err() {
                        break;
                    }
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON text message");
                    match v["event"].as_str() {
                        Some("start") => got.start = v,
                        Some("stop") => got.stop = Some(v),
                        other => panic!("unexpected event {other:?}"),
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    got.sizes.push(b.len());
                    got.pcm.extend(b.chunks_exact(2).map(|p| i16::from_le_bytes([p[0], p[1]])));
                }
                Some(Ok(Message::Close(_))) => {
                    got.closed = true;
                    return got;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return got,
            },
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime")
}

/// A server that may stream to `ws://127.0.0.1:*`.
fn server(env: &TestEnv) -> Server {
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, "[live_audio]\nallowed_urls = [\"ws://127.0.0.1:\"]\n[mx]\nadmin_listen = \"\"\n").unwrap();
    Server::start_with(env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() })
}

/// The confid of room `number` once `n` participants are active in it.
fn room_with(server: &Server, number: &str, n: usize) -> String {
    poll(Duration::from_secs(10), "the room with its participants", || {
        let rooms = server.get("/rest/v1/uc/conferences").json();
        let room = rooms.as_array()?.iter().find(|r| r["confroomnum"] == number)?.clone();
        let confid = room["confid"].as_str()?.to_owned();
        let parts = server.get(&format!("/rest/v1/uc/conferences/{confid}/participants")).json();
        (parts.as_array()?.iter().filter(|p| p["state"] == "active").count() == n).then_some(confid)
    })
}

/// Whether `hz` is at least `min` of the power in some 100 ms of `s`.
fn heard_somewhere(s: &[i16], rate: u32, hz: f64, min: f64) -> bool {
    s.chunks(rate as usize / 10).any(|w| w.len() == rate as usize / 10 && share(w, rate, hz) > min)
}

/// Share of 100 ms windows of `s` where `hz` is at least `min` of the power.
fn windows_with(s: &[i16], rate: u32, hz: f64, min: f64) -> f64 {
    let w: Vec<&[i16]> = s.chunks_exact(rate as usize / 10).collect();
    w.iter().filter(|w| share(w, rate, hz) > min).count() as f64 / w.len().max(1) as f64
}

#[test]
fn a_receiver_gets_the_rooms_pcm_with_the_tone_and_plays_back_into_the_room() {
    let env = TestEnv::new("live_audio_room");
    let _media = env.media_lock();
    let server = server(&env);
    let uri = format!("sip:conf-321@{}", server.sip);
    let alice = Caller::call(&env, 0, "alice", &uri, 1000);
    alice.wait_media();
    let bob = Caller::call(&env, 1, "bob", &uri, 400);
    bob.wait_media();
    let confid = room_with(&server, "321", 2);
    let base = format!("/rest/v1/uc/conferences/{confid}/stream");

    // Refusals: nothing is connected.
    for (body, why, status) in [
        (json!({"url": "ws://127.0.0.2:9000/x"}), "a URL outside allowed_urls", 400),
        (json!({"url": "http://127.0.0.1:9000/x"}), "not a WebSocket URL", 400),
        (json!({"url": "ws://127.0.0.1:9000/\u{85}"}), "not printable ASCII", 400),
        (json!({"url": "ws://127.0.0.1:9000/x", "sample_rate": 44100}), "a rate we do not stream", 400),
        (json!({"url": "ws://127.0.0.1:9000/x", "loud": true}), "an unknown field", 400),
    ] {
        let r = server.post(&base, &body);
        assert_eq!(r.status, status, "{why}: {}", r.body);
        assert_eq!(r.json()["error_code"], 1000 + status, "{why}");
    }
    let r = server.post("/rest/v1/uc/conferences/rCF-nope/stream", &json!({"url": "ws://127.0.0.1:9000/x"}));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(server.delete(&base).status, 409, "nothing to stop yet");

    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = rt.spawn(receive(listener, Behaviour { play_back_hz: Some(700.0), die_after: None }));
    let r = server.post(&base, &json!({"url": format!("ws://127.0.0.1:{port}/room"), "sample_rate": 8000, "play_back": true}));
    assert_eq!(r.status, 201, "{}", r.body);
    let stream = r.json();
    assert_eq!((stream["confid"].as_str(), stream["sample_rate"].as_u64(), stream["play_back"].as_bool()), (Some(confid.as_str()), Some(8000), Some(true)));
    let stream_id = stream["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(server.post(&base, &json!({"url": format!("ws://127.0.0.1:{port}/again")})).status, 409, "one stream per room");
    std::thread::sleep(Duration::from_secs(4));
    let r = server.delete(&base);
    assert_eq!(r.status, 200, "{}", r.body);
    let got = rt.block_on(receiver).expect("receiver");

    // The protocol: start, 20 ms binary frames, stop, close.
    assert_eq!(got.start["stream_id"], stream_id.as_str());
    assert_eq!(got.start["room"], confid.as_str());
    assert_eq!((got.start["sample_rate"].as_u64(), got.start["encoding"].as_str(), got.start["channels"].as_u64(), got.start["frame_ms"].as_u64()), (Some(8000), Some("s16le"), Some(1), Some(20)));
    let stop = got.stop.as_ref().expect("a stop message");
    assert_eq!((stop["reason"].as_str(), stop["stream_id"].as_str()), (Some("stopped"), Some(stream_id.as_str())));
    assert!(got.closed, "the close frame follows the stop");
    assert!(got.sizes.iter().all(|&n| n == 320), "20 ms at 8 kHz is 320 bytes: {:?}", &got.sizes[..got.sizes.len().min(10)]);
    let secs = got.pcm.len() as f64 / 8000.0;
    assert!((3.0..5.5).contains(&secs), "about 4 s of audio, got {secs:.2} s");

    // The tone is in it, and bob's; the receiver's own playback is not.
    let tail = &got.pcm[got.pcm.len() / 4..];
    let with_1000 = windows_with(tail, 8000, 1000.0, 0.3);
    assert!(with_1000 > 0.95, "1000 Hz in {:.0} % of 100 ms windows", with_1000 * 100.0);
    assert!(windows_with(tail, 8000, 400.0, 0.3) > 0.95, "bob's 400 Hz is in the mix too");
    assert!(!heard_somewhere(tail, 8000, 700.0, 0.05), "the receiver's playback came back to it");

    // Events.
    let started = wait_server_event(&server, "stream_started", |e| e["stream_id"] == stream_id.as_str());
    assert_eq!(started["confid"], confid.as_str());
    let stopped = wait_server_event(&server, "stream_stopped", |e| e["info"]["stream_id"] == stream_id.as_str());
    assert_eq!(stopped["reason"], "stopped");

    // The playback reached the room: both phones heard 700 Hz over the other's tone.
    let (a, a_rec) = alice.quit();
    a.assert_ok();
    let (b, b_rec) = bob.quit();
    b.assert_ok();
    for rec in [a_rec, b_rec] {
        let (heard, rate) = support::phone::read_wav(&rec);
        // The playback is sent at -8 dBFS, the phones' tones are at -6 dBFS: ~40 % of the
        // power where both are heard; it played for 4 s of the call's ~5.
        let with_700 = windows_with(&heard, rate, 700.0, 0.2);
        assert!(with_700 > 0.5, "{} heard the playback in {:.0} % of 100 ms windows", rec.display(), with_700 * 100.0);
    }
}

#[test]
fn a_leg_stream_and_a_receiver_that_dies_do_not_hurt_the_call() {
    let env = TestEnv::new("live_audio_leg");
    let _media = env.media_lock();
    let server = server(&env);
    let uri = format!("sip:conf-322@{}", server.sip);
    let alice = Caller::call(&env, 0, "alice", &uri, 1000);
    alice.wait_media();
    let bob = Caller::call(&env, 1, "bob", &uri, 400);
    bob.wait_media();
    room_with(&server, "322", 2);
    let legs = server.get("/v1/calls").json();
    let alice_leg = legs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["remote_uri"].as_str().is_some_and(|u| u.contains("sip:alice@")) && l["state"] != "ended")
        .expect("alice's leg")["leg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/v1/calls/{alice_leg}/stream");
    assert_eq!(server.post("/v1/calls/no-such-leg/stream", &json!({"url": "ws://127.0.0.1:9/x"})).status, 404);
    assert_eq!(server.post(&base, &json!({"url": "ws://127.0.0.1:9/x", "direction": "sideways"})).status, 400);
    assert_eq!(server.post(&format!("{base}/stop"), &json!({})).status, 409, "nothing to stop yet");

    // What alice says, at 16 kHz (the default); the receiver dies after 3 s.
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = rt.spawn(receive(listener, Behaviour { play_back_hz: None, die_after: Some(Duration::from_secs(3)) }));
    let r = server.post(&base, &json!({"url": format!("ws://127.0.0.1:{port}/leg"), "direction": "says"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let stream_id = r.json()["stream_id"].as_str().unwrap().to_owned();
    let got = rt.block_on(receiver).expect("receiver");
    assert_eq!((got.start["leg"].as_str(), got.start["direction"].as_str(), got.start["sample_rate"].as_u64()), (Some(alice_leg.as_str()), Some("says"), Some(16000)));
    assert!(got.sizes.iter().all(|&n| n == 640), "20 ms at 16 kHz is 640 bytes");
    let tail = &got.pcm[got.pcm.len() / 4..];
    assert!(windows_with(tail, 16000, 1000.0, 0.8) > 0.95, "alice's voice");
    assert!(!heard_somewhere(tail, 16000, 400.0, 0.05), "not bob's: `says` is alice alone");

    // The receiver is gone: the stream ends, the call does not.
    let stopped = wait_server_event(&server, "stream_stopped", |e| e["info"]["stream_id"] == stream_id.as_str());
    assert_eq!(stopped["reason"], "receiver_closed");
    let killed_at = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    // Nobody listens there now: the next stream fails to connect, and that is all.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = nobody.local_addr().unwrap().port();
    drop(nobody);
    let r = server.post(&base, &json!({"url": format!("ws://127.0.0.1:{dead_port}/gone")}));
    assert_eq!(r.status, 201, "{}", r.body);
    let id2 = r.json()["stream_id"].as_str().unwrap().to_owned();
    let failed = wait_server_event(&server, "stream_stopped", |e| e["info"]["stream_id"] == id2.as_str());
    assert_eq!(failed["reason"], "connect_failed");
    std::thread::sleep(Duration::from_secs(1));
    let after = killed_at.elapsed().as_secs_f64();

    let r = server.get(&format!("/v1/calls/{alice_leg}"));
    assert_eq!(r.json()["state"], "active", "alice's call is up: {}", r.body);
    // Bob leaves first, so his recording ends while alice is still there.
    let (b, b_rec) = bob.quit();
    b.assert_ok();
    let (a, _) = alice.quit();
    a.assert_ok();
    // Bob still heard alice after the receiver died, all the way.
    let (heard, rate) = support::phone::read_wav(&b_rec);
    let last = &heard[heard.len().saturating_sub((after - 0.5) as usize * rate as usize)..];
    let share_1000 = windows_with(last, rate, 1000.0, 0.5);
    assert!(share_1000 > 0.95, "bob heard alice in {:.0} % of the last {after:.1} s", share_1000 * 100.0);
}

/// A CA, and a certificate it signed for 127.0.0.1, as a TLS acceptor; the CA's PEM.
fn tls_receiver() -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Switchboard test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg)), ca.pem())
}

#[test]
fn a_wss_receiver_signed_by_a_trusted_private_ca_gets_the_stream_and_another_does_not() {
    let env = TestEnv::new("live_audio_wss");
    let _media = env.media_lock();
    let (trusted, ca_pem) = tls_receiver();
    let (stranger, _) = tls_receiver();
    let ca_file = env.path("private-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let cfg = env.path("switchboard.toml");
    std::fs::write(&cfg, format!("[live_audio]\nallowed_urls = [\"wss://127.0.0.1:\"]\nca_file = \"{}\"\n[mx]\nadmin_listen = \"\"\n", ca_file.display())).unwrap();
    let server = Server::start_with(&env, ServerOptions { extra_args: vec!["--config".into(), cfg.display().to_string()], ..Default::default() });
    let alice = Caller::call(&env, 0, "alice", &format!("sip:conf-323@{}", server.sip), 1000);
    alice.wait_media();
    let confid = room_with(&server, "323", 1);
    let base = format!("/rest/v1/uc/conferences/{confid}/stream");

    // The trusted receiver: TLS, then the stream with alice's tone in it.
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = rt.spawn(async move {
        let (tcp, _) = listener.accept().await.expect("the server connects");
        let tls = trusted.accept(tcp).await.expect("TLS handshake with the server");
        receive_on(tls, Behaviour { play_back_hz: None, die_after: None }).await
    });
    let r = server.post(&base, &json!({"url": format!("wss://127.0.0.1:{port}/asr"), "sample_rate": 8000}));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["stream_id"].as_str().unwrap().to_owned();
    wait_server_event(&server, "stream_started", |e| e["stream_id"] == id.as_str());
    std::thread::sleep(Duration::from_secs(2));
    // While it runs, GET /v1/streams shows it and how it is going.
    let live = server.get("/v1/streams").json();
    let s = live.as_array().and_then(|a| a.iter().find(|s| s["stream_id"] == id.as_str())).unwrap_or_else(|| panic!("the stream in /v1/streams: {live}"));
    assert_eq!((&s["confid"], &s["url"], &s["sample_rate"]), (&json!(confid), &json!(format!("wss://127.0.0.1:{port}/asr")), &json!(8000)), "{s}");
    assert_eq!(s["dropped_out"], 0, "a receiver that keeps up loses nothing: {s}");
    assert!(s["dropped_back"].is_u64() && s["underruns"].is_u64(), "{s}");
    assert_eq!(server.request("DELETE", &base, None).status, 200);
    let after = server.get("/v1/streams").json();
    assert!(after.as_array().is_some_and(|a| a.iter().all(|s| s["stream_id"] != id.as_str())), "a stopped stream is gone from /v1/streams: {after}");
    let got = rt.block_on(receiver).expect("receiver");
    assert_eq!((got.start["stream_id"].as_str(), got.start["sample_rate"].as_u64()), (Some(id.as_str()), Some(8000)), "{:?}", got.start);
    assert!(got.stop.is_some() && got.closed, "the stop message, then the close: {got:?}");
    assert!(got.pcm.len() >= 8000, "at least a second of audio over TLS: {} samples", got.pcm.len());
    assert!(windows_with(&got.pcm[got.pcm.len() / 4..], 8000, 1000.0, 0.8) > 0.9, "alice's 1000 Hz in the stream");

    // A receiver whose CA nobody configured: the TLS handshake fails, and so does the stream.
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = rt.spawn(async move {
        let (tcp, _) = listener.accept().await.expect("the server connects");
        stranger.accept(tcp).await.is_err()
    });
    let r = server.post(&base, &json!({"url": format!("wss://127.0.0.1:{port}/asr")}));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["stream_id"].as_str().unwrap().to_owned();
    let stopped = wait_server_event(&server, "stream_stopped", |e| e["info"]["stream_id"] == id.as_str());
    assert_eq!(stopped["reason"], "connect_failed", "{stopped}");
    assert!(rt.block_on(refused).unwrap(), "the server refused the untrusted certificate");
    let (a, _) = alice.quit();
    a.assert_ok();
}
