//! Shared-port media mode by ear: the server runs with `--media-port-mode shared` (one
//! RTP port per media worker for all its calls, packets told apart by source address),
//! three real pjsua2 clients dial one room, each playing its own tone, and what each
//! recorded must hold the other two continuously (>= 95 % of 20 ms frames, no gap over
//! 60 ms) and itself never (`support::tone_check`). The SDP the clients
//! got must carry the workers' ports only, and after everyone hung up no leg may be
//! left counted.
//!
//! Takes the machine-wide media lock (see `support`), like the other audio tests.

mod support;

use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn three_parties_on_shared_ports_hear_the_other_two_not_themselves() {
    let env = TestEnv::new("shared_port_three_parties");
    let _media = env.media_lock();
    let opts = ServerOptions {
        // Two workers: three legs share two ports, the first two pairs of the range.
        extra_args: ["--media-port-mode", "shared", "--media-workers", "2"].map(String::from).to_vec(),
        ..ServerOptions::default()
    };
    let server = Server::start_with(&env, opts);
    // Three codecs: G.711 legs take the measure-then-decode path, G.722 decodes always.
    let parties = [
        ("alice", 440, "PCMU/8000"),
        ("bob", 1000, "PCMA/8000"),
        ("carol", 1700, "G722/16000"),
    ];
    let peers: Vec<(PjPeer, PathBuf)> = parties
        .iter()
        .enumerate()
        .map(|(i, &(user, hz, codec))| {
            join_room(&env, &server, i as u16, &RoomParty { user, dial: "conf-41", hz, codec, duration: 6.0 })
        })
        .collect();
    let (_confid, parts) = wait_room_active(&server, 3);
    assert_eq!(parts.len(), 3, "one room: {parts:?}");
    let joined: Vec<f64> = parties.iter().map(|p| joined_s(&parts, p.0)).collect();
    let all_in = joined.iter().copied().fold(0.0, f64::max);
    let end = joined.iter().map(|j| j + 6.0).fold(f64::MAX, f64::min);
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }

    // The server's answers advertised the two workers' ports, nothing else.
    let (rtp_lo, _) = env.ports.server_rtp();
    let first_pair = rtp_lo + (rtp_lo & 1);
    let advertised: BTreeSet<u16> = parties
        .iter()
        .flat_map(|(user, _, _)| sdp_audio_ports(&env.path(&format!("{user}.pj.log"))))
        .filter(|p| (rtp_lo..rtp_lo + 50).contains(p))
        .collect();
    assert_eq!(
        advertised,
        BTreeSet::from([first_pair, first_pair + 2]),
        "server SDP ports in the pjsip logs (3 calls, 2 workers)"
    );

    // Each hears the other two, continuously, and not itself, from soon after the last
    // one joined until shortly before the first one hangs up.
    let tones: Vec<u32> = parties.iter().map(|p| p.1).collect();
    let (t0, t1) = (all_in + 0.8, end - 0.3);
    assert!(t1 - t0 >= 2.0, "window {t0:.2}..{t1:.2} too short: the clients joined {joined:?}");
    for (i, (user, hz, _)) in parties.iter().enumerate() {
        let others: Vec<u32> = tones.iter().copied().filter(|t| t != hz).collect();
        tone_check(&recs[i]).window(t0 - joined[i], Some(t1 - joined[i])).expect(&others).absent(&[*hz]).assert(user);
    }

    // Every leg released: nothing counted, no room left.
    server.wait_all_ended(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = server.get("/v1/status").json();
        if s["rooms"] == 0 && s["rtp_ports_in_use"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "room or legs left after everyone hung up: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.get("/rest/v1/uc/conferences").json(), json!([]));
}
