//! Every codec through the mixer, by ear: a real client of one codec in a room with a
//! real client of another, each playing its tone, each hearing the other's continuously
//! (>= 95 % of 20 ms frames, no gap over 60 ms) and never its own (`support::tone_check`).
//! Unlike echo (which copies payloads), a room decodes what each client sends, mixes,
//! and encodes for each listener, so this is where our codecs meet real ones:
//!
//! | test | client A | client B |
//! |---|---|---|
//! | `pcmu_and_pcma_hear_each_other` | pjsua2 PCMU | pjsua2 PCMA |
//! | `g722_and_pcmu_hear_each_other` | pjsua2 G.722 | pjsua2 PCMU |
//! | `opus_baresip_and_pcmu_pjsua_hear_each_other` | baresip Opus (libopus) | pjsua2 PCMU |
//!
//! A capture of the RTP proves each codec was really used, both ways (payload types;
//! for Opus also the SDP of both sides and each packet's TOC byte). The Opus test is
//! the proof that our pure-Rust Opus (opus-rs) and libopus understand each other in
//! both directions.
//!
//! These tests take the machine-wide media lock (see `support`).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::*;

/// The RTP between the peer whose ports are `peer` and the server: (sent by the peer,
/// sent to the peer).
fn flows(env: &TestEnv, packets: &[UdpPacket], peer: std::ops::Range<u16>) -> (RtpFlow, RtpFlow) {
    let (lo, hi) = env.ports.server_rtp();
    let server = lo..=hi;
    (
        rtp_flow(packets, |p| peer.contains(&p.src.port()) && server.contains(&p.dst.port())),
        rtp_flow(packets, |p| peer.contains(&p.dst.port()) && server.contains(&p.src.port())),
    )
}

/// The peer on ports `peer` sent and got only payload type `pt`, and the server's stream
/// to it was steady over [t0, t1] (epoch s): a listener's own concealment would hide a
/// missing packet of a steady tone from its recording, so the wire is checked too.
fn assert_payload_type(env: &TestEnv, packets: &[UdpPacket], peer: std::ops::Range<u16>, pt: u8, window: (f64, f64), who: &str) {
    let (sent, got) = flows(env, packets, peer);
    got.assert_steady(window.0, window.1, 100.0, &format!("{who}: RTP from the server"));
    assert!(sent.times.len() > 100 && got.times.len() > 100, "{who}: {} RTP packets sent, {} received", sent.times.len(), got.times.len());
    let want = BTreeSet::from([pt]);
    assert_eq!(sent.payload_types, want, "{who}: payload types it sent");
    assert_eq!(got.payload_types, want, "{who}: payload types the server sent it");
}

/// Two pjsua2 clients, one codec each, in one room for 6 s.
fn two_codecs(name: &str, room: &str, a: (&str, u32, &str, u8), b: (&str, u32, &str, u8)) {
    let env = TestEnv::new(name);
    let _media = env.media_lock();
    let server = Server::start(&env);
    let (base, ports) = (env.ports.base, |i: u16| env.ports.base + 10 + 10 * i..env.ports.base + 20 + 10 * i);
    let capture = Capture::start(&env, "rtp", &format!("udp and portrange {}-{}", base + 10, base + 29));
    let parties = [a, b];
    let peers: Vec<(PjPeer, PathBuf)> = parties
        .iter()
        .enumerate()
        .map(|(i, &(user, hz, codec, _))| join_room(&env, &server, i as u16, &RoomParty { user, dial: room, hz, codec, duration: 6.0 }))
        .collect();
    let (_, parts) = wait_room_active(&server, 2);
    let joined: Vec<f64> = parties.iter().map(|p| joined_s(&parts, p.0)).collect();
    let (t0, t1) = (joined[0].max(joined[1]) + 0.8, joined[0].min(joined[1]) + 6.0 - 0.3);
    let recs: Vec<PathBuf> = peers.iter().map(|(_, r)| r.clone()).collect();
    for (peer, _) in peers {
        peer.wait().assert_ok();
    }
    let packets = capture.stop();
    for (i, &(user, hz, codec, pt)) in parties.iter().enumerate() {
        assert_payload_type(&env, &packets, ports(i as u16), pt, (t0, t1), &format!("{user} ({codec})"));
        let other = parties[1 - i];
        tone_check(&recs[i])
            .window(t0 - joined[i], Some(t1 - joined[i]))
            .expect(&[other.1])
            .absent(&[hz])
            .assert(&format!("{user} ({codec}) hears {} ({})", other.0, other.2));
    }
    server.wait_all_ended(Duration::from_secs(5));
}

#[test]
fn pcmu_and_pcma_hear_each_other() {
    two_codecs("codec_pcmu_pcma", "conf-61", ("alice", 440, "PCMU/8000", 0), ("bob", 1000, "PCMA/8000", 8));
}

#[test]
fn g722_and_pcmu_hear_each_other() {
    two_codecs("codec_g722_pcmu", "conf-62", ("carol", 1700, "G722/16000", 9), ("alice", 440, "PCMU/8000", 0));
}

/// An `a=rtpmap:<pt> opus/48000/2` line's payload type in an SDP body.
fn opus_pt(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (pt, enc) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        enc.eq_ignore_ascii_case("opus/48000/2").then(|| pt.parse().ok())?
    })
}

/// The payload types of the `m=audio` line.
fn audio_formats(sdp: &str) -> Vec<String> {
    let m = sdp.lines().find(|l| l.starts_with("m=audio ")).unwrap_or_else(|| panic!("no m=audio in {sdp}"));
    m.split_whitespace().skip(3).map(str::to_owned).collect()
}

/// Whether an RTP payload starts with an Opus TOC byte (RFC 6716 §3.1) for one 20 ms
/// frame: SILK configs 1, 5, 9; hybrid 13, 15; CELT 19, 23, 27, 31; frame count code 0.
/// A G.711 payload of a tone fails this for most packets.
fn opus_single_20ms_frame(payload: &[u8]) -> bool {
    let Some(&toc) = payload.first() else { return false };
    let config = toc >> 3;
    let twenty_ms = match config {
        0..=11 => config % 4 == 1,
        12..=15 => config % 2 == 1,
        _ => config % 4 == 3,
    };
    twenty_ms && toc & 3 == 0
}

/// baresip (Opus only: just `opus.so` loaded, `audio_codecs=opus`; its libopus) plays
/// 440 Hz, pjsua2 (PCMU) plays 1000 Hz, one room. baresip must hear 1000 Hz continuously
/// and never 440: PCMU decoded by us, mixed, encoded by opus-rs, decoded by libopus.
/// pjsua2 must hear 440 Hz continuously and never 1000: libopus encoded, opus-rs decoded.
#[test]
fn opus_baresip_and_pcmu_pjsua_hear_each_other() {
    let env = TestEnv::new("codec_opus_baresip_pcmu");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let base = env.ports.base;
    // baresip's aufile source does not resample: the WAV must be at Opus's 48 kHz.
    let tone48 = env.path("tone440_48k.wav");
    let sox = Command::new(require_tool("sox"))
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&tone48)
        .args(["synth", "20", "sine", "440", "vol", "0.5"])
        .status()
        .expect("run sox");
    assert!(sox.success(), "sox could not make the 48 kHz tone");
    let (bs_ports, pj_ports) = (base + 30..base + 40, base + 10..base + 20);
    let capture = Capture::start(&env, "rtp", &format!("udp and portrange {}-{}", base + 10, base + 39));

    // baresip first; pjsua2 once baresip is in the room, so each hears the other from
    // its own first second.
    let quit_after = 12;
    let bs_started = epoch_s();
    let bs = BaresipPeer::spawn(
        &env,
        "baresip",
        &BaresipConfig {
            user: "bs",
            sip_port: env.ports.peer_sip(2),
            rtp_ports: (bs_ports.start, bs_ports.end - 1),
            play: &tone48,
            srate: 48000,
            codec_modules: &["opus.so"],
            audio_codecs: "opus",
            dial: format!("sip:conf-63@{}", server.sip),
            quit_after_s: quit_after,
        },
    );
    wait_room_active(&server, 1);
    let pj_media = 7.0;
    let (pj, pj_rec) = join_room(&env, &server, 0, &RoomParty { user: "alice", dial: "conf-63", hz: 1000, codec: "PCMU/8000", duration: pj_media });
    let (_, parts) = wait_room_active(&server, 2);
    let (j_bs, j_pj) = (joined_s(&parts, "bs"), joined_s(&parts, "alice"));
    pj.wait().assert_ok();
    let run = bs.wait();
    let packets = capture.stop();
    run.assert_ok();
    assert!(
        run.output.contains("Call established"),
        "baresip never established the call:\n{}",
        run.output.chars().take(6000).collect::<String>()
    );

    // Opus was what both sides agreed: baresip offered only Opus (and events), the
    // server answered Opus first and no other audio codec.
    let sdps = run.sdp_bodies();
    assert!(sdps.len() >= 2, "no offer/answer in baresip's SIP trace ({}):\n{sdps:?}", run.output.len());
    let (offer, answer) = (&sdps[0], &sdps[1]);
    let pt = opus_pt(answer).unwrap_or_else(|| panic!("the server's answer has no opus/48000/2:\n{answer}"));
    assert_eq!(opus_pt(offer), Some(pt), "answer PT = offer PT (RFC 3264):\n{offer}\n{answer}");
    let fmts = audio_formats(answer);
    assert_eq!(fmts[0], pt.to_string(), "Opus first in the answer:\n{answer}");
    for f in &fmts[1..] {
        assert!(answer.contains(&format!("a=rtpmap:{f} telephone-event/")), "answer offers another codec ({f}):\n{answer}");
    }
    assert!(!offer.contains("PCMU") && !offer.contains("PCMA") && !offer.contains("G722"), "baresip offered more than Opus:\n{offer}");

    // ...and what went over the wire, both ways: Opus packets, one 20 ms frame each.
    let (from_bs, to_bs) = flows(&env, &packets, bs_ports);
    for (flow, dir) in [(&from_bs, "baresip -> server (libopus)"), (&to_bs, "server -> baresip (opus-rs)")] {
        assert!(flow.times.len() > 200, "{dir}: {} RTP packets", flow.times.len());
        assert_eq!(flow.payload_types, BTreeSet::from([pt]), "{dir}: payload types");
        let bad = flow.payloads.iter().filter(|p| !opus_single_20ms_frame(p)).count();
        assert_eq!(bad, 0, "{dir}: {bad} of {} payloads are not one 20 ms Opus frame", flow.payloads.len());
        let sizes: BTreeSet<usize> = flow.payloads.iter().map(|p| p.len()).collect();
        assert!(sizes.len() > 1, "{dir}: every payload {sizes:?} bytes: constant size, not Opus VBR");
    }
    // Both hear each other continuously over the time both were in the room, and
    // never themselves; the server's streams to both are steady meanwhile.
    let end = (j_pj + pj_media).min(bs_started + quit_after as f64);
    let (t0, t1) = (j_pj + 1.0, end - 0.4);
    assert!(t1 - t0 >= 3.0, "only {:.2} s with both in the room: baresip joined {j_bs:.2}, pjsua2 {j_pj:.2}, end {end:.2}", t1 - t0);
    assert_payload_type(&env, &packets, pj_ports, 0, (t0, t1), "alice (PCMU)");
    to_bs.assert_steady(t0, t1, 100.0, "server -> baresip");
    let heard = run.heard.as_ref().unwrap_or_else(|| panic!("baresip wrote no -dec.wav in {}", env.path("baresip/rec").display()));
    env.report_on_failure(heard);
    let v = tone_check(heard)
        .window(t0 - j_bs, Some(t1 - j_bs))
        .expect(&[1000])
        .absent(&[440])
        .assert("baresip (Opus, libopus decoding opus-rs) hears alice");
    assert_eq!(v["rate"], 48000, "baresip's recording is not at Opus's 48 kHz: {v}");
    tone_check(&pj_rec)
        .window(t0 - j_pj, Some(t1 - j_pj))
        .expect(&[440])
        .absent(&[1000])
        .assert("alice (PCMU) hears baresip (libopus encoding, opus-rs decoding)");
    server.wait_all_ended(Duration::from_secs(5));
}
