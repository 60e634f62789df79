//! Talk spurts through the real server over real UDP (issue 8: every spurt lost its
//! first 20 ms). Two raw RTP legs dial one room with hand-written SIP: one sends a
//! 200 ms burst each second, its ten 20 ms PCMU frames each a tone of its own
//! frequency (the tag), the other records what the server sends it and names the tag
//! of every packet. A tone survives anything the room does to a lone speaker (the
//! 8 kHz shortcut forwards a G.711 speaker to a G.711 listener nearly byte for byte;
//! the 16 kHz path resamples), so every frame of every burst must be heard, in order.
//!
//! The speaker is silent between bursts the way a phone with DTX is: no packets, and
//! the marker bit on each burst's first packet. So the jitter buffer starts afresh at
//! each burst, and a late wake-up of the sending thread can only delay frames (the
//! buffer waits for a missing packet until later ones arrive, and on loopback nothing
//! is reordered), never drop one: the test needs no timing margins.
//!
//! Takes the machine-wide media lock (see `support`).

mod support;

use media::codec::{new_decoder, new_encoder, CodecKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const BURSTS: usize = 6;
/// Frames per burst (200 ms), ticks per burst period (1 s).
const FRAMES: usize = 10;
const PERIOD: usize = 50;

/// The tag tone of frame `i`: 500, 750, ..., 2750 Hz (a 20 ms frame resolves 50 Hz).
fn tag_freq(i: usize) -> f64 {
    500.0 + 250.0 * i as f64
}

/// A call to the room from a raw SIP socket, with an RTP socket of its own.
struct RawLeg {
    sip: RawSip,
    rtp: UdpSocket,
    call_id: String,
    to_tag: String,
    /// Where the server wants our RTP (its SDP answer).
    server_rtp: SocketAddr,
}

impl RawLeg {
    /// INVITE `sip:<room>@server` offering PCMU on RTP port `rtp_port`, wait for the 200, ACK.
    fn call(env: &TestEnv, server: &Server, slot: u16, rtp_port: u16, room: &str) -> RawLeg {
        let sip = RawSip::new(env, slot, server.sip);
        let rtp = UdpSocket::bind(("127.0.0.1", rtp_port)).expect("bind RTP socket");
        let call_id = format!("spurt-{slot}-{}", std::process::id());
        let sdp = format!(
            "v=0\r\no=raw {slot} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            Self::headers(&sip, server, room, &call_id, "INVITE", 1, "inv", ""),
            sdp.len()
        );
        sip.send(invite.as_bytes());
        let ok = loop {
            let r = sip.response_for(&call_id, Duration::from_secs(10)).expect("a response to the INVITE");
            match status_code(&r) {
                Some(200) => break r,
                Some(s) if s < 200 => continue,
                other => panic!("INVITE to {room} answered {other:?}:\n{r}"),
            }
        };
        let to = header_value(&ok, "To", "t").expect("To in the 200");
        let to_tag = to.split(";tag=").nth(1).expect("To tag").split(';').next().unwrap().trim().to_string();
        let body = ok.split("\r\n\r\n").nth(1).unwrap_or_default();
        let port: u16 = body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no m=audio in the answer:\n{ok}"));
        let ip = body.lines().find_map(|l| l.strip_prefix("c=IN IP4 ")).map(str::trim).unwrap_or("127.0.0.1");
        let server_rtp: SocketAddr = format!("{ip}:{port}").parse().expect("answer address");
        let leg = RawLeg { sip, rtp, call_id, to_tag, server_rtp };
        let ack = format!("{}Content-Length: 0\r\n\r\n", leg.in_dialog(server, room, "ACK", 1, "ack"));
        leg.sip.send(ack.as_bytes());
        leg
    }

    fn headers(sip: &RawSip, server: &Server, room: &str, call_id: &str, method: &str, cseq: u32, branch: &str, to_tag: &str) -> String {
        let port = sip.local_port();
        format!(
            "{method} sip:{room}@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:raw@127.0.0.1:{port}>;tag=raw{port}\r\nTo: <sip:{room}@{server}>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:raw@127.0.0.1:{port}>\r\n",
            server = server.sip
        )
    }

    fn in_dialog(&self, server: &Server, room: &str, method: &str, cseq: u32, branch: &str) -> String {
        Self::headers(&self.sip, server, room, &self.call_id, method, cseq, branch, &format!(";tag={}", self.to_tag))
    }

    fn hang_up(&self, server: &Server, room: &str) {
        let bye = format!("{}Content-Length: 0\r\n\r\n", self.in_dialog(server, room, "BYE", 2, "bye"));
        self.sip.send(bye.as_bytes());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.sip.response_for(&self.call_id, Duration::from_secs(10)).expect("a response to the BYE");
            if status_code(&r) == Some(200) && header_value(&r, "CSeq", "CSeq").is_some_and(|c| c.ends_with("BYE")) {
                return;
            }
            assert!(Instant::now() < deadline, "no 200 to the BYE");
        }
    }
}

fn rtp_packet(marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, if marker { 0x80 } else { 0 }, 0, 0, 0, 0, 0, 0, 0x5b, 0x0a, 0x7e, 0x01];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Share of `freq` in 16 kHz audio (≈1.0 for a pure tone), 0 for near silence.
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    media::dsp::goertzel::tone_share(samples, 16_000, freq, 1e6)
}

/// The tag of a PCMU payload, if one tag tone holds most of its power.
fn tag_of(payload: &[u8], dec: &mut dyn media::codec::AudioDecoder) -> Option<usize> {
    let mut pcm = [0i16; 1920];
    let n = dec.decode(payload, &mut pcm);
    let shares: Vec<f64> = (0..FRAMES).map(|i| tone_share(&pcm[..n], tag_freq(i))).collect();
    let (best, share) = shares.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    (*share > 0.5).then_some(best)
}

#[test]
fn every_frame_of_every_talk_spurt_reaches_the_listener() {
    let env = TestEnv::new("talk_spurts_reach_the_listener_whole");
    let _media = env.media_lock();
    let server = Server::start(&env);
    let room = "conf-808";
    let listener = RawLeg::call(&env, &server, 0, env.ports.sipp_media(0), room);
    let speaker = RawLeg::call(&env, &server, 1, env.ports.sipp_media(1), room);
    wait_room_active(&server, 2);

    // The listener records (arrival, RTP sequence number, payload) of every packet.
    let stop = Arc::new(AtomicBool::new(false));
    let heard: Arc<Mutex<Vec<(Instant, u16, Vec<u8>)>>> = Default::default();
    let recorder = {
        let (socket, stop, heard) = (listener.rtp.try_clone().unwrap(), stop.clone(), heard.clone());
        std::thread::spawn(move || {
            socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, _)) = socket.recv_from(&mut buf) {
                    if n > 12 && buf[1] & 0x7f == 0 {
                        heard.lock().unwrap().push((Instant::now(), u16::from_be_bytes([buf[2], buf[3]]), buf[12..n].to_vec()));
                    }
                }
            }
        })
    };

    // The speaker: frame k of the call at start + 20 ms * k; bursts at k = 50, 100, ...
    let mut enc = new_encoder(CodecKind::Pcmu);
    let mut sent_at = vec![[None::<Instant>; FRAMES]; BURSTS];
    let start = Instant::now();
    let (mut seq, mut ts) = (7000u16, 160_000u32);
    for k in 0..PERIOD * (BURSTS + 1) {
        let (burst, i) = (k / PERIOD, k % PERIOD);
        if burst >= 1 && i < FRAMES {
            if let Some(d) = (start + Duration::from_millis(20 * k as u64)).checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let w = 2.0 * std::f64::consts::PI * tag_freq(i) / 16_000.0;
            let frame: Vec<i16> = (0..320).map(|n| (8000.0 * (w * n as f64).sin()) as i16).collect();
            let mut payload = [0u8; 1500];
            let n = enc.encode(&frame, &mut payload);
            speaker.rtp.send_to(&rtp_packet(i == 0, seq, ts, &payload[..n]), speaker.server_rtp).unwrap();
            sent_at[burst - 1][i] = Some(Instant::now());
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(160);
    }
    // Wait until the server has sent the listener another half second of packets (25
    // ticks) after the last frame went out, so the last burst is through the mix.
    let sent_last = Instant::now();
    let deadline = sent_last + Duration::from_secs(20);
    while heard.lock().unwrap().iter().filter(|(at, _, _)| *at > sent_last).count() < 25 {
        assert!(Instant::now() < deadline, "the server stopped sending to the listener");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    recorder.join().unwrap();
    speaker.hang_up(&server, room);
    listener.hang_up(&server, room);

    // Tag every packet; split into bursts where the server's own stream (one packet per
    // 20 ms tick, sequence numbers without gaps) has 20 untagged ticks in a row.
    let mut dec = new_decoder(CodecKind::Pcmu);
    let heard = heard.lock().unwrap();
    let mut bursts: Vec<Vec<(Instant, usize)>> = Vec::new();
    let mut last_tagged: Option<u16> = None;
    for (at, seq, payload) in heard.iter() {
        let Some(tag) = tag_of(payload, dec.as_mut()) else { continue };
        if last_tagged.map_or(true, |last| seq.wrapping_sub(last) > 20) {
            bursts.push(Vec::new());
        }
        last_tagged = Some(*seq);
        let burst = bursts.last_mut().unwrap();
        // A frame repeated by concealment (after the burst's last packet, or while a late
        // packet is awaited) is the same frame, not a new one.
        if burst.last().map(|&(_, t)| t) != Some(tag) {
            burst.push((*at, tag));
        }
    }
    let tags: Vec<Vec<usize>> = bursts.iter().map(|b| b.iter().map(|&(_, t)| t).collect()).collect();
    eprintln!("frames heard, by tag, per burst: {tags:?}");
    // The delay from sending a frame to hearing it, per frame position (for the record).
    let mut per_frame = vec![Vec::new(); FRAMES];
    for (burst, sent) in bursts.iter().zip(&sent_at) {
        for &(at, tag) in burst {
            if let Some(s) = sent[tag] {
                per_frame[tag].push(at.saturating_duration_since(s).as_secs_f64() * 1000.0);
            }
        }
    }
    let medians: Vec<String> = per_frame
        .iter_mut()
        .map(|d| {
            d.sort_by(f64::total_cmp);
            d.get(d.len() / 2).map_or("-".into(), |m| format!("{m:.1}"))
        })
        .collect();
    eprintln!("median send-to-hear delay per frame of a burst (ms): {}", medians.join(", "));

    let whole: Vec<usize> = (0..FRAMES).collect();
    assert_eq!(tags.len(), BURSTS, "bursts heard: {tags:?}");
    for (b, t) in tags.iter().enumerate() {
        assert_eq!(t, &whole, "burst {b}: frames heard (by tag) instead of all ten in order; all bursts: {tags:?}");
    }
}
