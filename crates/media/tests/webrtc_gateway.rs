//! The WebRTC gateway over real loopback UDP against a "browser" that is a plain str0m
//! `Rtc` (full ICE, DTLS client, RTP mode) driven here on the test thread, and a plain
//! UDP socket playing the SIP side. Checks: SDP answer shape, RTP relayed both ways with
//! payload type, marker, timestamp and payload intact, RFC 4733 DTMF toward SIP, a sound
//! injected toward SIP, the media and connect timeouts, the create_offer/accept_answer
//! direction, and close.
#![cfg(feature = "webrtc")]

use media::webrtc::{FailReason, GatewayConfig, GatewayEvent, PlainCodec, PlainSide, WebRtcGateway, WebRtcId};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn gateway(media_timeout: Duration, connect_timeout: Duration) -> (WebRtcGateway, Receiver<GatewayEvent>) {
    WebRtcGateway::start(GatewayConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        candidates: vec![LOCALHOST],
        relay_ip: LOCALHOST,
        media_timeout,
        connect_timeout,
    })
    .unwrap()
}

/// What the browser got: (pt, marker, timestamp, payload).
type Got = (u8, bool, u32, Vec<u8>);

/// A str0m peer standing in for Chromium: opus/111, PCMU/0, telephone-event 110 and 126.
struct Browser {
    rtc: Rtc,
    sock: UdpSocket,
    addr: SocketAddr,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    got: Vec<Got>,
    connected: bool,
    next: Instant,
    seq: u64,
}

impl Browser {
    fn new() -> Browser {
        let mut cfg = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).enable_pcmu(true, false).enable_pcma(true, false);
        for (pt, hz) in [(110u8, 48_000), (126, 8_000)] {
            cfg.codec_config().add_config(pt.into(), None, Codec::Tele, Frequency::new(hz).unwrap(), None, FormatParams::parse_line("0-16"));
        }
        let mut rtc = cfg.build(Instant::now());
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Browser { rtc, sock, addr, mid: None, pending: None, got: Vec::new(), connected: false, next: Instant::now(), seq: 1000 }
    }

    fn offer(&mut self) -> String {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, Some("mic".into()), Some("track".into()), None);
        let (offer, pending) = change.apply().unwrap();
        self.mid = Some(mid);
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    fn accept_answer(&mut self, answer: &str) {
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap()).unwrap();
        self.drain();
    }

    fn answer(&mut self, offer: &str) -> String {
        let answer = self.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(offer).unwrap()).unwrap();
        self.drain();
        answer.to_sdp_string()
    }

    fn drain(&mut self) {
        loop {
            let Ok(out) = self.rtc.poll_output() else {
                self.next = Instant::now() + Duration::from_millis(10);
                return;
            };
            match out {
                Output::Transmit(t) => {
                    self.sock.send_to(&t.contents, t.destination).unwrap();
                }
                Output::Timeout(t) => {
                    self.next = t;
                    return;
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(m)) => self.mid = Some(m.mid),
                Output::Event(Event::RtpPacket(p)) => self.got.push((*p.header.payload_type, p.header.marker, p.header.timestamp, p.payload.to_vec())),
                Output::Event(_) => {}
            }
        }
    }

    /// Run the peer for `d` of wall time.
    fn run(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 2000];
        while Instant::now() < end {
            let now = Instant::now();
            let wait = self.next.saturating_duration_since(now).clamp(Duration::from_millis(1), end.saturating_duration_since(now).max(Duration::from_millis(1)));
            self.sock.set_read_timeout(Some(wait)).unwrap();
            let input = match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => Receive::new(Protocol::Udp, from, self.addr, &buf[..n]).map(|r| Input::Receive(Instant::now(), r)).ok(),
                Err(_) => None,
            };
            // An error (the DTLS test's rejected certificate) is the peer's verdict, not ours.
            let _ = match input {
                Some(i) => self.rtc.handle_input(i),
                None => self.rtc.handle_input(Input::Timeout(Instant::now())),
            };
            self.drain();
        }
    }

    fn run_until(&mut self, what: &str, timeout: Duration, mut cond: impl FnMut(&Browser) -> bool) {
        let end = Instant::now() + timeout;
        while !cond(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            self.run(Duration::from_millis(10));
        }
    }

    fn send(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        self.seq += 1;
        let w = RtpWrite::new(pt.into(), SeqNo::from(self.seq), ts, Instant::now(), payload.to_vec()).marker(marker);
        let mid = self.mid.unwrap();
        self.rtc.direct_api().stream_tx_by_mid(mid, None).expect("tx stream").write_rtp(w);
        self.drain();
    }
}

/// The SIP side: a plain UDP socket.
struct Sip {
    sock: UdpSocket,
}

impl Sip {
    fn new() -> Sip {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        Sip { sock }
    }
    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }
    /// Every RTP packet waiting: (pt, marker, seq, ts, ssrc, payload).
    fn recv_all(&self) -> Vec<(u8, bool, u16, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            let b = &buf[..n];
            out.push((
                b[1] & 0x7f,
                b[1] & 0x80 != 0,
                u16::from_be_bytes([b[2], b[3]]),
                u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
                b[12..].to_vec(),
            ));
        }
        out
    }
    fn send(&self, to: SocketAddr, pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x5157_1234u32.to_be_bytes());
        p.extend_from_slice(payload);
        self.sock.send_to(&p, to).unwrap();
    }
}

fn wait_event(events: &Receiver<GatewayEvent>, b: &mut Browser, timeout: Duration) -> GatewayEvent {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(e) = events.try_recv() {
            return e;
        }
        assert!(Instant::now() < end, "no gateway event within {timeout:?}");
        b.run(Duration::from_millis(10));
    }
}

/// Browser offers, gateway answers, both connect.
fn connected_call(gw: &WebRtcGateway, events: &Receiver<GatewayEvent>, allowed: &[&str]) -> (Browser, WebRtcId, PlainSide, String) {
    let mut b = Browser::new();
    let offer = b.offer();
    let (id, answer, side) = gw.accept_offer(&offer, allowed).unwrap();
    b.accept_answer(&answer);
    assert_eq!(wait_event(events, &mut b, Duration::from_secs(5)), GatewayEvent::Connected(id));
    b.run_until("browser connected", Duration::from_secs(5), |b| b.connected);
    (b, id, side, answer)
}

#[test]
fn browser_offer_is_answered_and_rtp_relayed_both_ways() {
    let (gw, events) = gateway(Duration::from_secs(10), Duration::from_secs(15));
    let (mut b, id, side, answer) = connected_call(&gw, &events, &["opus", "PCMU"]);

    for needle in ["a=ice-lite", "a=setup:passive", "a=fingerprint:sha-256 ", "a=rtcp-mux", "a=msid:", "a=candidate:"] {
        assert!(answer.contains(needle), "answer lacks {needle}:\n{answer}");
    }
    assert!(answer.contains(&format!("a=mid:{}", b.mid.unwrap())), "answer mid:\n{answer}");
    assert!(answer.contains(&format!(" 127.0.0.1 {} typ host", gw.local_ice_addr().port())), "candidate:\n{answer}");
    assert!(!answer.contains("PCMA"), "PCMA was not allowed:\n{answer}");
    let names: Vec<(u8, &str, u32)> = side.codecs.iter().map(|c| (c.pt, c.name.as_str(), c.clock)).collect();
    assert_eq!(names, vec![(111, "opus", 48_000), (0, "PCMU", 8000)]);
    assert_eq!((side.telephone_event, side.telephone_event_clock), (Some(110), 48_000));
    assert_eq!(side.local.ip(), LOCALHOST);

    // Browser -> SIP.
    let sip = Sip::new();
    gw.set_plain_remote(id, sip.addr());
    b.run(Duration::from_millis(50));
    for i in 0..20u32 {
        b.send(111, i == 0, 5000 + i * 960, &[i as u8; 60]);
        b.run(Duration::from_millis(5));
    }
    b.run(Duration::from_millis(100));
    let got = sip.recv_all();
    assert_eq!(got.len(), 20, "browser -> SIP packets");
    for (i, (pt, marker, _, ts, _, payload)) in got.iter().enumerate() {
        assert_eq!((*pt, *marker, *ts), (111, i == 0, 5000 + i as u32 * 960));
        assert_eq!(payload, &vec![i as u8; 60]);
    }
    let seqs: Vec<u16> = got.iter().map(|p| p.2).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "gapless sequence: {seqs:?}");

    // SIP -> browser, on the other codec.
    for i in 0..20u16 {
        sip.send(side.local, 0, i == 0, 300 + i, 70_000 + u32::from(i) * 160, &[0x55 ^ i as u8; 160]);
        b.run(Duration::from_millis(5));
    }
    b.run_until("20 packets at the browser", Duration::from_secs(2), |b| b.got.len() >= 20);
    for (i, (pt, marker, ts, payload)) in b.got.iter().enumerate() {
        assert_eq!((*pt, *marker, *ts), (0, i == 0, 70_000 + i as u32 * 160), "packet {i}");
        assert_eq!(payload, &vec![0x55 ^ i as u8; 160]);
    }
    // A payload type the browser did not negotiate never reaches it.
    sip.send(side.local, 8, false, 400, 0, &[1; 160]);
    b.run(Duration::from_millis(100));
    assert_eq!(b.got.len(), 20);

    let st = gw.stats(id).unwrap();
    assert_eq!((st.from_browser_packets, st.to_plain_packets, st.from_plain_packets, st.to_browser_packets), (20, 20, 20, 20));
    assert_eq!(st.to_plain_bytes, 20 * 60);

    // Forwarding off: the browser's RTP stops at the gateway.
    gw.set_forwarding(id, false);
    b.run(Duration::from_millis(20));
    b.send(111, false, 99_000, &[7; 60]);
    b.run(Duration::from_millis(100));
    assert!(sip.recv_all().is_empty(), "forwarding was off");

    gw.close(id);
    assert_eq!(wait_event(&events, &mut b, Duration::from_secs(2)), GatewayEvent::Closed(id));
    assert!(gw.stats(id).is_none());
}

#[test]
fn dtmf_goes_to_sip_as_rfc4733_in_the_audio_stream() {
    let (gw, events) = gateway(Duration::from_secs(10), Duration::from_secs(15));
    let (mut b, id, side, _) = connected_call(&gw, &events, &["opus"]);
    let sip = Sip::new();
    gw.set_plain_remote(id, sip.addr());
    b.run(Duration::from_millis(50));
    for i in 0..3u32 {
        b.send(111, false, 10_000 + i * 960, &[1; 40]);
        b.run(Duration::from_millis(20));
    }
    b.run(Duration::from_millis(50));
    let audio = sip.recv_all();
    assert_eq!(audio.len(), 3);
    let (_, _, last_seq, last_ts, ssrc, _) = audio[2].clone();

    gw.send_dtmf(id, "1#", 100);
    b.run(Duration::from_millis(700));
    let ev = sip.recv_all();
    let te: Vec<_> = ev.iter().filter(|p| Some(p.0) == side.telephone_event).collect();
    assert_eq!(te.len(), ev.len(), "only DTMF arrived");
    // 100 ms at 48 kHz = 4800 units: 5 updates, the last repeated 3 times => 7 per digit.
    assert_eq!(te.len(), 14, "{te:?}");
    for (digit, pkts) in [(1u8, &te[..7]), (11, &te[7..])] {
        let ts = pkts[0].3;
        assert!(pkts.iter().all(|p| p.3 == ts && p.4 == ssrc && p.5[0] == digit), "one event, one timestamp, the audio SSRC");
        assert!(pkts[0].1 && pkts[1..].iter().all(|p| !p.1), "marker on the first only");
        let ends: Vec<bool> = pkts.iter().map(|p| p.5[1] & 0x80 != 0).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true], "three end packets");
        let last = &pkts[6].5;
        assert_eq!(u16::from_be_bytes([last[2], last[3]]), 4800);
        assert!(ts.wrapping_sub(last_ts) < 48_000, "event starts near the media clock: {ts} vs {last_ts}");
    }
    let seqs: Vec<u16> = te.iter().map(|p| p.2).collect();
    assert_eq!(seqs[0], last_seq.wrapping_add(1), "DTMF continues the audio's sequence");
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));

    // Audio after the digits continues the sequence too.
    b.send(111, false, 200_000, &[2; 40]);
    b.run(Duration::from_millis(100));
    let after = sip.recv_all();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].2, seqs[13].wrapping_add(1));
    assert_eq!(gw.stats(id).unwrap().dtmf_packets, 14);
}

/// A 16-bit mono WAV of a sine at `hz`.
fn write_tone_wav(path: &std::path::Path, rate: u32, hz: f64, seconds: f64) {
    let n = (rate as f64 * seconds) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + n * 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(n * 2).to_le_bytes());
    for i in 0..n {
        let v = (f64::sin(2.0 * std::f64::consts::PI * hz * i as f64 / rate as f64) * 12_000.0) as i16;
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// Zero crossings per second of a µ-law stream: twice the frequency of a pure tone.
fn ulaw_crossings_hz(payloads: &[Vec<u8>]) -> f64 {
    let pcm: Vec<i16> = payloads.iter().flatten().map(|&c| media::codec::g711::ulaw_decode(c)).collect();
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (pcm.len() as f64 / 8000.0)
}

#[test]
fn an_injected_sound_replaces_the_browser_toward_sip_then_the_browser_resumes() {
    let (gw, events) = gateway(Duration::from_secs(10), Duration::from_secs(15));
    let (mut b, id, side, _) = connected_call(&gw, &events, &["PCMU"]);
    assert_eq!(side.codecs[0].name, "PCMU");
    let sip = Sip::new();
    gw.set_plain_remote(id, sip.addr());
    b.run(Duration::from_millis(50));
    let mut ts = 50_000u32;
    let mut talk = |b: &mut Browser, packets: u32| {
        for _ in 0..packets {
            b.send(0, false, ts, &[0x55; 160]);
            ts = ts.wrapping_add(160);
            b.run(Duration::from_millis(20));
        }
    };
    talk(&mut b, 3);
    b.run(Duration::from_millis(50));
    let before = sip.recv_all();
    assert_eq!(before.len(), 3, "the browser's audio is relayed");
    let (_, _, last_seq, _, ssrc, _) = before[2].clone();

    // 300 ms of 1000 Hz while the browser keeps talking: the SIP side hears the file only.
    let dir = std::env::temp_dir().join(format!("sb-inject-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("tone.wav");
    write_tone_wav(&wav, 8000, 1000.0, 0.3);
    gw.inject(id, media::PromptSpec::once(vec![media::PromptPart::File(wav)]));
    talk(&mut b, 25);
    b.run(Duration::from_millis(100));
    let during = sip.recv_all();
    let injected: Vec<_> = during.iter().take_while(|p| p.5 != [0x55; 160]).cloned().collect();
    let resumed: Vec<_> = during[injected.len()..].to_vec();
    assert!((14..=17).contains(&injected.len()), "300 ms of sound is 15 packets (a tick either way): {}", injected.len());
    assert!(injected.iter().all(|p| p.0 == 0 && p.4 == ssrc && p.5.len() == 160), "PCMU on the browser's own stream");
    assert!(injected[0].1 && injected[1..].iter().all(|p| !p.1), "a new talkspurt: marker on the first packet only");
    let seqs: Vec<u16> = during.iter().map(|p| p.2).collect();
    assert_eq!(seqs[0], last_seq.wrapping_add(1), "the sound continues the browser's sequence");
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "one gapless sequence through the sound and after it: {seqs:?}");
    assert!(injected.windows(2).all(|w| w[1].3 == w[0].3.wrapping_add(160)), "20 ms of clock per packet");
    let voiced: Vec<Vec<u8>> = injected[1..injected.len() - 2].iter().map(|p| p.5.clone()).collect();
    let hz = ulaw_crossings_hz(&voiced);
    assert!((hz - 1000.0).abs() < 30.0, "the sound is the file's 1000 Hz: {hz:.0} Hz");
    assert!(!resumed.is_empty() && resumed.iter().all(|p| p.5 == [0x55; 160]), "the browser's audio is back after the sound");
    assert!(resumed[0].1, "marked as a new talkspurt");
    let total = injected.len() + resumed.len();
    assert!(
        (23..=30).contains(&total),
        "the browser's packets during the sound were dropped, not queued: {total} for 25 sent (queued would be 40; the loop here runs a little slower than 20 ms a packet)"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn no_rtp_from_the_browser_fails_the_leg() {
    let (gw, events) = gateway(Duration::from_millis(800), Duration::from_secs(15));
    let (mut b, id, _, _) = connected_call(&gw, &events, &["opus"]);
    let t0 = Instant::now();
    let e = wait_event(&events, &mut b, Duration::from_secs(5));
    assert_eq!(e, GatewayEvent::Failed { id, reason: FailReason::RtpActivity });
    assert!(t0.elapsed() >= Duration::from_millis(500), "too early: {:?}", t0.elapsed());
    assert_eq!(FailReason::RtpActivity.to_string(), "Failed by RTP activity");
    assert!(gw.stats(id).is_none(), "failed legs are removed");
}

#[test]
fn rtp_keeps_a_leg_alive_past_the_media_timeout() {
    let (gw, events) = gateway(Duration::from_millis(500), Duration::from_secs(15));
    let (mut b, id, _, _) = connected_call(&gw, &events, &["opus"]);
    for i in 0..60u32 {
        b.send(111, false, i * 960, &[0; 20]);
        b.run(Duration::from_millis(20));
    }
    assert!(events.try_recv().is_err(), "no failure while RTP flows");
    assert!(gw.stats(id).unwrap().from_browser_packets >= 60);
}

#[test]
fn a_browser_that_never_connects_fails_by_ice() {
    let (gw, events) = gateway(Duration::from_secs(10), Duration::from_millis(700));
    let mut b = Browser::new();
    let offer = b.offer();
    let (id, _answer, _) = gw.accept_offer(&offer, &["opus"]).unwrap();
    // The browser never gets the answer: no STUN checks ever arrive.
    let e = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(e, GatewayEvent::Failed { id, reason: FailReason::Ice });
    assert_eq!(FailReason::Ice.to_string(), "Failed by ICE error");
}

#[test]
fn no_common_codecs_is_refused() {
    let (gw, _events) = gateway(Duration::from_secs(10), Duration::from_secs(15));
    let mut b = Browser::new();
    let offer = b.offer();
    let err = gw.accept_offer(&offer, &["G722"]).unwrap_err();
    assert_eq!(err.fail_reason(), Some(FailReason::NoCommonCodecs));
    assert_eq!(FailReason::NoCommonCodecs.to_string(), "No common codecs");
}

#[test]
fn sip_first_offer_to_the_browser_then_answer() {
    let (gw, events) = gateway(Duration::from_secs(10), Duration::from_secs(15));
    let codecs = vec![
        PlainCodec { pt: 8, name: "PCMA".into(), clock: 8000, channels: 1, fmtp: None },
        PlainCodec { pt: 0, name: "PCMU".into(), clock: 8000, channels: 1, fmtp: None },
    ];
    let (id, offer) = gw.create_offer(&codecs, Some((101, 8000))).unwrap();
    for needle in ["a=ice-lite", "a=setup:actpass", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=msid:", "a=rtcp-mux"] {
        assert!(offer.contains(needle), "offer lacks {needle}:\n{offer}");
    }
    assert!(offer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 8 0 101\r\n"), "the SIP side's order:\n{offer}");
    let mut b = Browser::new();
    // (str0m answers actpass with passive, Chromium with active: either way round works.)
    let answer = b.answer(&offer);
    let side = gw.accept_answer(id, &answer).unwrap();
    let names: Vec<(u8, &str)> = side.codecs.iter().map(|c| (c.pt, c.name.as_str())).collect();
    assert_eq!(names, vec![(8, "PCMA"), (0, "PCMU")]);
    assert_eq!((side.telephone_event, side.telephone_event_clock), (Some(101), 8000));
    assert_eq!(wait_event(&events, &mut b, Duration::from_secs(5)), GatewayEvent::Connected(id));
    b.run_until("browser connected", Duration::from_secs(5), |b| b.connected);

    let sip = Sip::new();
    gw.set_plain_remote(id, sip.addr());
    b.run(Duration::from_millis(50));
    for i in 0..5u32 {
        b.send(8, false, 800 + i * 160, &[0xd5; 160]);
        b.run(Duration::from_millis(10));
    }
    b.run(Duration::from_millis(100));
    let got = sip.recv_all();
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|p| p.0 == 8 && p.5 == vec![0xd5; 160]));
    // And back, from the address the SIP side really sends from (symmetric RTP).
    let other = Sip::new();
    for i in 0..5u16 {
        other.send(side.local, 0, false, i, u32::from(i) * 160, &[0xff; 160]);
        b.run(Duration::from_millis(10));
    }
    b.run_until("5 packets at the browser", Duration::from_secs(2), |b| b.got.len() >= 5);
    b.send(8, false, 2000, &[0xd5; 160]);
    b.run(Duration::from_millis(100));
    assert_eq!(other.recv_all().len(), 1, "the gateway latched onto the SIP side's source");
}

/// An offer exactly as Chromium 156 writes it (captured from examples/webrtc_loopback
/// with WEBRTC_LOOPBACK_SDP=1): no candidates, RED, CN and two telephone-events.
const CHROMIUM_OFFER: &str = "v=0\r\n\
o=- 4685213196506950063 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS ee42ac2c-a83e-4f92-bded-6622b2bd8f5c\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:gW++\r\n\
a=ice-pwd:pShuP+/fOZeu7wu4ejL9YtZK\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 09:FA:E0:33:97:81:6E:8B:AD:CD:8F:FA:5C:69:1D:54:FB:E7:4F:DC:BC:48:4E:D4:FF:54:51:E3:01:9E:70:01\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendrecv\r\n\
a=msid:ee42ac2c-a83e-4f92-bded-6622b2bd8f5c cdf545f5-c3e4-4171-a79b-98f8ed4df614\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtcp-xr:rcvr-rtt=all\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:3241511922 cname:RhD7QA39QAWp9SU3\r\n\
a=ssrc:3241511922 msid:ee42ac2c-a83e-4f92-bded-6622b2bd8f5c cdf545f5-c3e4-4171-a79b-98f8ed4df614\r\n";

#[test]
fn chromium_offer_keeps_its_payload_types() {
    let (gw, _events) = gateway(Duration::from_secs(10), Duration::from_secs(15));
    let (_, answer, side) = gw.accept_offer(CHROMIUM_OFFER, &["opus", "PCMU", "PCMA"]).unwrap();
    assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 110 126\r\n"), "{answer}");
    assert!(answer.contains("a=mid:0\r\n") && answer.contains("a=ice-lite") && answer.contains("a=setup:passive"), "{answer}");
    assert!(!answer.contains("red/") && !answer.contains("CN/"), "RED and CN are not relayed:\n{answer}");
    let pts: Vec<u8> = side.codecs.iter().map(|c| c.pt).collect();
    assert_eq!(pts, [111, 0, 8]);
    assert_eq!(side.codecs[0].fmtp.as_deref(), Some("minptime=10;useinbandfec=1"));
    assert_eq!((side.telephone_event, side.telephone_event_clock), (Some(110), 48_000));

    // Our preference order wins over the offer's, in the answer and on the plain side;
    // the telephone-event follows the first codec's clock.
    let (_, answer, side) = gw.accept_offer(CHROMIUM_OFFER, &["PCMA", "opus"]).unwrap();
    assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 8 111 126 110\r\n"), "{answer}");
    let pts: Vec<u8> = side.codecs.iter().map(|c| c.pt).collect();
    assert_eq!(pts, [8, 111]);
    assert_eq!((side.telephone_event, side.telephone_event_clock), (Some(126), 8000));

    // G.722 alone: its 8000 Hz RTP clock, and the 8 kHz telephone-event to match it.
    let (_, answer, side) = gw.accept_offer(CHROMIUM_OFFER, &["G722"]).unwrap();
    assert!(answer.contains("a=rtpmap:9 G722/8000"), "{answer}");
    let codecs: Vec<(u8, &str, u32)> = side.codecs.iter().map(|c| (c.pt, c.name.as_str(), c.clock)).collect();
    assert_eq!(codecs, [(9, "G722", 8000)]);
    assert_eq!((side.telephone_event, side.telephone_event_clock), (Some(126), 8000));
}

#[test]
fn a_dtls_handshake_that_never_completes_fails_by_dtls() {
    let (gw, events) = gateway(Duration::from_secs(10), Duration::from_millis(1500));
    let mut b = Browser::new();
    let offer = b.offer();
    let (id, answer, _) = gw.accept_offer(&offer, &["opus"]).unwrap();
    // The browser is told a wrong fingerprint: ICE connects, the browser rejects our certificate.
    let i = answer.find("a=fingerprint:sha-256 ").unwrap() + "a=fingerprint:sha-256 ".len();
    let mut tampered = answer.clone();
    let flip = if &answer[i..i + 2] == "00" { "11" } else { "00" };
    tampered.replace_range(i..i + 2, flip);
    b.accept_answer(&tampered);
    let end = Instant::now() + Duration::from_secs(5);
    let e = loop {
        if let Ok(e) = events.try_recv() {
            break e;
        }
        assert!(Instant::now() < end, "no failure");
        b.run(Duration::from_millis(10));
    };
    assert_eq!(e, GatewayEvent::Failed { id, reason: FailReason::Dtls });
    assert_eq!(FailReason::Dtls.to_string(), "Failed by DTLS error");
}

#[test]
fn the_handle_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<WebRtcGateway>();
}

#[test]
fn a_leg_we_offered_may_ring_longer_than_the_connect_timeout() {
    let (gw, events) = gateway(Duration::from_secs(10), Duration::from_millis(500));
    let codecs = [PlainCodec { pt: 0, name: "PCMU".into(), clock: 8000, channels: 1, fmtp: None }];
    let (id, offer) = gw.create_offer(&codecs, None).unwrap();
    // The browser rings; its answer comes after twice the connect timeout.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(events.try_recv().is_err(), "the connect timer runs from the answer");
    let mut b = Browser::new();
    let answer = b.answer(&offer);
    gw.accept_answer(id, &answer).unwrap();
    assert_eq!(wait_event(&events, &mut b, Duration::from_secs(5)), GatewayEvent::Connected(id));
    // A bad answer kills the leg without an event: the caller has the error.
    let (id2, _) = gw.create_offer(&codecs, None).unwrap();
    assert!(gw.accept_answer(id2, "v=0\r\nnonsense\r\n").is_err());
    assert!(gw.stats(id2).is_none());
}

/// A browser that vanishes (no STUN consent checks, no RTP) with the media timeout out of
/// the way: str0m's ICE-lite agent drops the pair after 15 s without a binding request,
/// and the leg fails by ICE after its grace. Takes ~17 s.
#[test]
fn a_browser_that_goes_silent_fails_by_ice() {
    let (gw, events) = gateway(Duration::from_secs(120), Duration::from_secs(15));
    let (b, id, _, _) = connected_call(&gw, &events, &["opus"]);
    let t0 = Instant::now();
    drop(b);
    let e = events.recv_timeout(Duration::from_secs(30)).expect("no failure within 30 s");
    assert_eq!(e, GatewayEvent::Failed { id, reason: FailReason::Ice });
    assert!(t0.elapsed() >= Duration::from_secs(10), "too early: {:?}", t0.elapsed());
}
