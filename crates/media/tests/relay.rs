//! The relay fast path in the sans-IO media core, under virtual time: a listener whose
//! only audible speaker has its codec gets that speaker's own payloads, byte for byte,
//! in its own stream (our SSRC, sequence and clock); when that stops being true (a
//! third speaker, mute, topology) it gets the mix, and back, with the stream
//! continuous across each switch. See `crates/media/src/engine.rs`, "Relay fast path".

use media::codec::{g722, new_decoder, new_encoder, AudioEncoder, CodecKind};
use media::engine::{Command, CoreConfig, Input, MediaCore, Output, Socket};
use media::mixer::Publication;
use media::{Attachment, LegId, LegParams, MediaEvent, RoomId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);

fn remote_of(leg: u64) -> SocketAddr {
    format!("127.0.0.1:{}", 40_000 + 2 * leg).parse().unwrap()
}

fn params(leg: u64, codec: CodecKind, pt: u8) -> LegParams {
    LegParams { remote: Some(remote_of(leg)), codec, payload_type: pt, telephone_event_pt: Some(101), send: true, recv: true }
}

fn add(core: &mut MediaCore, now: Instant, leg: u64, room: RoomId, codec: CodecKind, pt: u8) {
    let id = LegId(leg);
    core.handle_input(now, Input::Command(Command::AddLeg { leg: id, local_rtp: "127.0.0.1:1".parse().unwrap() }));
    core.handle_input(now, Input::Command(Command::Configure(id, params(leg, codec, pt))));
    core.handle_input(now, Input::Command(Command::Attach(id, Attachment::Room(room))));
}

/// A phone sending a tone (or silence) in its codec, 20 ms per packet.
struct Talker {
    leg: u64,
    pt: u8,
    freq: Option<f64>,
    enc: Box<dyn AudioEncoder>,
    samples_per_frame: u32,
    phase: f64,
    seq: u16,
    ts: u32,
    /// Payloads sent, in order.
    sent: Vec<Vec<u8>>,
}

impl Talker {
    fn new(leg: u64, codec: CodecKind, pt: u8, freq: Option<f64>) -> Talker {
        Talker {
            leg,
            pt,
            freq,
            enc: new_encoder(codec),
            samples_per_frame: codec.rtp_samples_per_frame(),
            phase: 0.0,
            seq: 1000 * leg as u16,
            ts: 7 * leg as u32,
            sent: Vec::new(),
        }
    }

    fn frame(&mut self) -> [i16; 320] {
        let mut frame = [0i16; 320];
        if let Some(f) = self.freq {
            for s in frame.iter_mut() {
                *s = (8000.0 * self.phase.sin()) as i16;
                self.phase += 2.0 * std::f64::consts::PI * f / 16_000.0;
            }
        }
        frame
    }

    fn packet(&mut self) -> Vec<u8> {
        let frame = self.frame();
        let mut payload = [0u8; 1500];
        let n = self.enc.encode(&frame, &mut payload);
        let mut p = vec![0x80, self.pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, self.leg as u8];
        p[2..4].copy_from_slice(&self.seq.to_be_bytes());
        p[4..8].copy_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&payload[..n]);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.samples_per_frame);
        self.sent.push(payload[..n].to_vec());
        p
    }

    /// A packet that never arrives (lost on the way): the stream moves on.
    fn lose(&mut self) {
        let _ = self.packet();
        self.sent.pop();
        self.sent.push(Vec::new());
    }
}

#[derive(Clone, Debug)]
struct Sent {
    leg: LegId,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

#[derive(Default)]
struct Collected {
    packets: Vec<Sent>,
    events: Vec<MediaEvent>,
}

impl Collected {
    fn to(&self, leg: u64) -> Vec<&Sent> {
        self.packets.iter().filter(|p| p.leg == LegId(leg)).collect()
    }
}

fn drain(core: &mut MediaCore, out: &mut Collected) {
    while let Some(o) = core.poll_output() {
        match o {
            Output::Event(e) => out.events.push(e),
            Output::Transmit(t) if t.socket == Socket::Rtp => {
                let d = t.data;
                out.packets.push(Sent {
                    leg: t.leg,
                    pt: d[1] & 0x7f,
                    marker: d[1] & 0x80 != 0,
                    seq: u16::from_be_bytes([d[2], d[3]]),
                    ts: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                    ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
                    payload: d[12..].to_vec(),
                });
            }
            Output::Transmit(_) => {}
        }
    }
}

/// One single-worker core with its talkers, ticked in virtual time.
struct Room {
    core: MediaCore,
    talkers: Vec<Talker>,
    out: Collected,
    now: Instant,
    /// Legs whose next packet is lost.
    lose_next: Vec<u64>,
}

impl Room {
    fn new() -> Room {
        Room { core: MediaCore::new(CoreConfig::default()), talkers: Vec::new(), out: Collected::default(), now: Instant::now(), lose_next: Vec::new() }
    }

    fn join(&mut self, leg: u64, codec: CodecKind, pt: u8, freq: Option<f64>) {
        add(&mut self.core, self.now, leg, RoomId(1), codec, pt);
        self.talkers.push(Talker::new(leg, codec, pt, freq));
    }

    fn leave(&mut self, leg: u64) {
        self.core.handle_input(self.now, Input::Command(Command::Release(LegId(leg))));
        self.talkers.retain(|t| t.leg != leg);
    }

    fn command(&mut self, c: Command) {
        self.core.handle_input(self.now, Input::Command(c));
    }

    fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.now += TICK;
            for t in self.talkers.iter_mut() {
                if let Some(i) = self.lose_next.iter().position(|&l| l == t.leg) {
                    self.lose_next.swap_remove(i);
                    t.lose();
                    continue;
                }
                let pkt = t.packet();
                self.core.handle_input(self.now, Input::Receive { leg: LegId(t.leg), socket: Socket::Rtp, from: remote_of(t.leg), data: &pkt });
            }
            self.core.handle_input(self.now, Input::Tick);
            drain(&mut self.core, &mut self.out);
        }
    }

    /// A payload-less packet from `leg` (as Chrome sends): the next sequence number,
    /// the last packet's timestamp.
    fn payload_less(&mut self, leg: u64) {
        let t = self.talkers.iter_mut().find(|t| t.leg == leg).unwrap();
        let mut p = vec![0x80, t.pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, leg as u8];
        p[2..4].copy_from_slice(&t.seq.to_be_bytes());
        p[4..8].copy_from_slice(&t.ts.wrapping_sub(t.samples_per_frame).to_be_bytes());
        t.seq = t.seq.wrapping_add(1);
        self.core.handle_input(self.now, Input::Receive { leg: LegId(leg), socket: Socket::Rtp, from: remote_of(leg), data: &p });
    }

    fn sent_by(&self, leg: u64) -> &[Vec<u8>] {
        &self.talkers.iter().find(|t| t.leg == leg).unwrap().sent
    }
}

/// Every packet to `leg` from index `from` on: sequence numbers consecutive, timestamps
/// one frame apart, one SSRC, no marker (no restart of the stream).
fn assert_continuous(packets: &[&Sent], from: usize, spf: u32, what: &str) {
    for w in packets[from..].windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "{what}: sequence continuous at {:?}", w[1]);
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(spf), "{what}: timestamp continuous at {:?}", w[1]);
        assert_eq!(w[1].ssrc, w[0].ssrc, "{what}: one SSRC");
        assert!(!w[1].marker, "{what}: no marker at {:?}", w[1]);
    }
}

/// Position of `needle` as a contiguous run in `hay`.
fn find_run(hay: &[Vec<u8>], needle: &[Vec<u8>]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn room_of_two_forwards_each_speakers_payloads_byte_identical() {
    let mut r = Room::new();
    r.join(1, CodecKind::Pcmu, 0, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, Some(1000.0));
    r.run(100);
    for (listener, speaker) in [(2u64, 1u64), (1, 2)] {
        let got = r.out.to(listener);
        // One packet per tick: silence until the speaker's jitter buffer plays, then
        // the speaker's own payloads.
        assert_eq!(got.len(), 100, "one packet per tick to {listener}");
        // After the first ticks (jitter buffer fill + look-ahead) every packet is the
        // speaker's own payload, in order, none missing.
        let tail: Vec<Vec<u8>> = got[10..].iter().map(|p| p.payload.clone()).collect();
        let at = find_run(r.sent_by(speaker), &tail).unwrap_or_else(|| panic!("{listener} gets {speaker}'s payloads verbatim"));
        assert!(at > 0 && at < 10, "forwarded with a small, fixed delay ({at} frames)");
        assert_continuous(&got, 0, 160, &format!("to {listener}"));
        assert!(got.iter().all(|p| p.pt == 0));
        assert_eq!(got[0].ssrc, r.core.leg_ssrc(LegId(listener)).unwrap(), "our SSRC, not the speaker's");
    }
}

#[test]
fn third_speaker_switches_to_mix_and_back_with_continuous_stream() {
    let mut r = Room::new();
    r.join(1, CodecKind::Pcmu, 0, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, None);
    r.run(50);
    let relayed = r.out.to(2).len();
    r.join(3, CodecKind::Pcmu, 0, Some(1500.0));
    r.run(50);
    let mixed = r.out.to(2).len();
    r.leave(3);
    r.run(50);
    let got = r.out.to(2);
    assert_eq!(got.len(), 150, "a packet every tick across the switches");
    assert_continuous(&got, 1, 160, "to 2 across relay -> mix -> relay");
    let payloads = |range: std::ops::Range<usize>| got[range].iter().map(|p| p.payload.clone()).collect::<Vec<_>>();
    let speaker = r.sent_by(1).to_vec();
    assert!(find_run(&speaker, &payloads(20..relayed)).is_some(), "relayed before the third speaker");
    // With 1 and 3 talking, 2 hears a mix: not 1's payloads.
    let mix = payloads(relayed + 10..mixed);
    assert!(mix.iter().all(|p| !speaker.contains(p)), "mixed while three are in the room");
    let mut dec = new_decoder(CodecKind::Pcmu);
    let mut audio = Vec::new();
    for p in &mix {
        let mut pcm = [0i16; 1920];
        let n = dec.decode(p, &mut pcm);
        audio.extend_from_slice(&pcm[..n]);
    }
    assert!(tone_share(&audio, 440.0) > 0.2 && tone_share(&audio, 1500.0) > 0.2, "the mix holds both speakers");
    assert!(find_run(&speaker, &payloads(mixed + 5..got.len())).is_some(), "relayed again once the third left");
}

#[test]
fn muted_third_party_leaves_the_two_on_relay_and_hears_both() {
    // Supervisor "listen": a muted third leg hears both; the two keep their relay.
    let mut r = Room::new();
    r.join(1, CodecKind::Pcmu, 0, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, Some(1000.0));
    r.command(Command::AddLeg { leg: LegId(3), local_rtp: "127.0.0.1:1".parse().unwrap() });
    r.command(Command::Configure(LegId(3), params(3, CodecKind::Pcmu, 0)));
    r.command(Command::SetMuted(LegId(3), true));
    r.command(Command::Attach(LegId(3), Attachment::Room(RoomId(1))));
    r.talkers.push(Talker::new(3, CodecKind::Pcmu, 0, Some(1500.0)));
    r.run(80);
    for (listener, speaker) in [(1u64, 2u64), (2, 1)] {
        let tail: Vec<Vec<u8>> = r.out.to(listener)[20..].iter().map(|p| p.payload.clone()).collect();
        assert!(find_run(r.sent_by(speaker), &tail).is_some(), "{listener} still relayed from {speaker}");
    }
    let mut dec = new_decoder(CodecKind::Pcmu);
    let mut audio = Vec::new();
    for p in &r.out.to(3)[30..] {
        let mut pcm = [0i16; 1920];
        let n = dec.decode(&p.payload, &mut pcm);
        audio.extend_from_slice(&pcm[..n]);
    }
    assert!(tone_share(&audio, 440.0) > 0.2 && tone_share(&audio, 1000.0) > 0.2, "the muted leg hears both");
    assert!(tone_share(&audio, 1500.0) < 0.01);
}

/// A packet lost before it reached us: the listener sees the same one-packet gap as on
/// a direct call (its decoder conceals it), whatever the codec.
#[test]
fn lost_packet_is_a_sequence_gap_for_the_listener() {
    for (codec, pt) in [(CodecKind::G722, 9u8), (CodecKind::Pcmu, 0)] {
        let mut r = Room::new();
        r.join(1, codec, pt, Some(500.0));
        r.join(2, codec, pt, None);
        r.run(30);
        r.lose_next.push(1);
        r.run(30);
        let got = r.out.to(2);
        let gaps: Vec<_> = got.windows(2).filter(|w| w[1].seq != w[0].seq.wrapping_add(1)).collect();
        assert_eq!(gaps.len(), 1, "{codec:?}: exactly one gap");
        let w = gaps[0];
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(2), "{codec:?}: one sequence number missing");
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(320), "{codec:?}: and one frame of time");
        assert!(!w[1].marker, "{codec:?}: a loss, not a new talkspurt");
    }
}

/// A speaker that pauses (DTX: no packets): a G.711 listener gets silence meanwhile
/// (after the gap of the frames the jitter buffer reported lost); a G.722 listener gets nothing, as on a direct call, and the
/// first packet after the pause carries the marker.
#[test]
fn speaker_pause_is_silence_for_g711_and_nothing_for_g722() {
    for (codec, pt) in [(CodecKind::Pcmu, 0u8), (CodecKind::G722, 9)] {
        let mut r = Room::new();
        r.join(1, codec, pt, Some(500.0));
        r.join(2, codec, pt, None);
        r.run(30);
        // Leg 1 stops sending for 1 s; leg 2 keeps sending.
        let paused = r.talkers.remove(0);
        r.run(50);
        r.talkers.insert(0, paused);
        r.run(30);
        let got = r.out.to(2);
        if codec == CodecKind::Pcmu {
            // The ticks the jitter buffer reports lost before it calls the stream idle
            // are a gap; then silence every tick until the speaker is back.
            let gaps: Vec<u16> = got.windows(2).map(|w| w[1].seq.wrapping_sub(w[0].seq)).filter(|&d| d != 1).collect();
            assert_eq!(gaps.len(), 1, "G.711: one gap ({gaps:?})");
            assert!(gaps[0] <= 8, "G.711: a short gap ({gaps:?})");
            assert!(got.len() >= 100, "G.711: silence through the pause ({} packets in 110 ticks)", got.len());
        } else {
            assert!(got.len() < 70, "G.722: no packets while the speaker pauses ({})", got.len());
            let resumed = got.windows(2).find(|w| w[1].ts.wrapping_sub(w[0].ts) > 160 * 10).expect("a pause in the clock");
            assert!(resumed[1].marker, "G.722: the first packet after the pause has the marker");
            // The ticks the jitter buffer reports lost before it calls the stream idle
            // are gaps (sequence numbers used); the idle ones are not.
            let gap = resumed[1].seq.wrapping_sub(resumed[0].seq);
            assert!((2..=8).contains(&gap), "G.722: a short sequence gap over a 1 s pause ({gap})");
        }
    }
}

#[test]
fn opus_payloads_forwarded_with_the_listeners_payload_type() {
    let mut r = Room::new();
    r.join(1, CodecKind::Opus, 111, Some(440.0));
    r.join(2, CodecKind::Opus, 96, None);
    r.run(60);
    let got = r.out.to(2);
    assert!(got.iter().all(|p| p.pt == 96), "the listener's payload type");
    assert_continuous(&got, 0, 960, "Opus to 2");
    let tail: Vec<Vec<u8>> = got[15..].iter().map(|p| p.payload.clone()).collect();
    assert!(find_run(r.sent_by(1), &tail).is_some(), "Opus frames forwarded verbatim");
}

#[test]
fn different_codecs_are_mixed_not_relayed() {
    let mut r = Room::new();
    r.join(1, CodecKind::G722, 9, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, None);
    r.run(60);
    let got = r.out.to(2);
    assert!(got.iter().all(|p| p.pt == 0 && p.payload.len() == 160));
    assert!(got.iter().all(|p| !r.sent_by(1).contains(&p.payload)), "transcoded");
}

#[test]
fn telephone_events_are_reported_not_forwarded() {
    let mut r = Room::new();
    r.join(1, CodecKind::Pcmu, 0, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, None);
    r.run(20);
    // Digit 5 from leg 1: three RFC 4733 packets (PT 101), the last with the end bit.
    let mut seq = r.talkers[0].seq;
    let ts = r.talkers[0].ts;
    for (i, end) in [(0u16, false), (1, false), (2, true)] {
        let dur: u16 = 160 * (i + 1);
        let mut p = vec![0x80, 101 | if i == 0 { 0x80 } else { 0 }, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[5, if end { 0x80 | 10 } else { 10 }, (dur >> 8) as u8, dur as u8]);
        seq = seq.wrapping_add(1);
        r.core.handle_input(r.now, Input::Receive { leg: LegId(1), socket: Socket::Rtp, from: remote_of(1), data: &p });
    }
    r.talkers[0].seq = seq;
    r.run(20);
    assert!(r.out.events.iter().any(|e| matches!(e, MediaEvent::Dtmf { leg: LegId(1), digit: '5', .. })), "digit reported");
    // (The digit's sequence numbers are a gap in the audio, which the listener
    // conceals, as it does on the mixed path.)
    assert!(r.out.to(2).iter().all(|p| p.pt == 0), "no telephone-event forwarded");
}

/// The two legs on two workers (the runtime spreads legs round-robin): the speaker's
/// payload crosses through the publications.
#[test]
fn relay_across_two_workers() {
    let room = RoomId(5);
    let t0 = Instant::now();
    let mut a = MediaCore::new(CoreConfig::default());
    let mut b = MediaCore::new(CoreConfig::default());
    add(&mut a, t0, 1, room, CodecKind::Pcmu, 0);
    add(&mut b, t0, 2, room, CodecKind::Pcmu, 0);
    let mut talkers = [Talker::new(1, CodecKind::Pcmu, 0, Some(440.0)), Talker::new(2, CodecKind::Pcmu, 0, Some(1000.0))];
    let (mut pa, mut pb) = (Publication::default(), Publication::default());
    let (mut out_a, mut out_b) = (Collected::default(), Collected::default());
    let mut now = t0;
    for _ in 0..60 {
        now += TICK;
        for t in talkers.iter_mut() {
            let pkt = t.packet();
            let core = if t.leg == 1 { &mut a } else { &mut b };
            core.handle_input(now, Input::Receive { leg: LegId(t.leg), socket: Socket::Rtp, from: remote_of(t.leg), data: &pkt });
        }
        a.tick_publish(now, &mut pa);
        b.tick_publish(now, &mut pb);
        a.tick_mix(now, &[&pa, &pb]);
        b.tick_mix(now, &[&pa, &pb]);
        drain(&mut a, &mut out_a);
        drain(&mut b, &mut out_b);
    }
    for (out, listener, speaker) in [(&out_b, 2u64, 0usize), (&out_a, 1, 1)] {
        let got = out.to(listener);
        let tail: Vec<Vec<u8>> = got[10..].iter().map(|p| p.payload.clone()).collect();
        assert!(find_run(&talkers[speaker].sent, &tail).is_some(), "{listener} gets the other worker's payloads");
        assert_continuous(&got, 0, 160, "across workers");
    }
}

/// G.722: a listener on relay whose stream goes back to the mix keeps decoding cleanly:
/// our encoder took over the speaker's decoder state, so the listener's decoder (which
/// decoded the forwarded frames) meets the state it expects.
#[test]
fn g722_hand_over_from_relay_to_mix_is_seamless() {
    let mut r = Room::new();
    // 500 Hz: ten periods per 20 ms frame, so each frame of the tone measures ~1.0.
    r.join(1, CodecKind::G722, 9, Some(500.0));
    r.join(2, CodecKind::G722, 9, None);
    r.run(60);
    let relayed = r.out.to(2).len();
    // A third, silent party: 2 now hears two legs, so it is mixed (1's decoded tone).
    r.join(3, CodecKind::G722, 9, None);
    r.run(40);
    let got = r.out.to(2);
    assert_continuous(&got, 1, 160, "G.722 to 2");
    let tail: Vec<Vec<u8>> = got[20..relayed].iter().map(|p| p.payload.clone()).collect();
    assert!(find_run(r.sent_by(1), &tail).is_some(), "relayed at first");
    assert!(got[relayed + 2..].iter().all(|p| !r.sent_by(1).contains(&p.payload)), "then mixed");
    // The listener's decoder, run over the whole stream: each 20 ms frame around the
    // switch is the clean tone (a state mismatch shows as distortion over several
    // frames: without the hand-over the three frames from the switch measure about
    // 0.90, 0.84, 0.85). The first mixed frame alone carries one seam that no state
    // can remove: mixed audio passed through our decoder and encoder once more, so it
    // lags the forwarded audio by the G.722 filter-bank delay (23 samples, 1.4 ms).
    let mut dec = g722::G722Decoder::new();
    let mut frames = Vec::new();
    for p in &got {
        let mut pcm = [0i16; 320];
        let n = dec.decode_samples(&p.payload, &mut pcm);
        frames.push(pcm[..n].to_vec());
    }
    // The first mixed frame (the relay may run a tick into the three-party room, see
    // the engine docs on leaving out relayed candidates).
    let switch = (relayed..got.len()).find(|&i| !r.sent_by(1).contains(&got[i].payload)).expect("a mixed frame");
    assert!(switch <= relayed + 1, "mixed from the tick after the third joined at the latest");
    for (i, f) in frames.iter().enumerate().take(switch + 20).skip(relayed - 5) {
        let share = tone_share(f, 500.0);
        let want = if i == switch { 0.85 } else { 0.97 };
        assert!(share > want, "frame {i} ({} after the switch): 500 Hz share {share:.3}", i as i64 - switch as i64);
    }
}

/// After a G.722 relay ends, the listener keeps its own encoder (its decoder follows
/// ours); its mix must still leave out itself and any speaker it may not hear. Here a
/// two-party call is put on hold (both paths blocked): each must get silence, not the
/// whole room (before the fix: the other's tone and its own echo).
#[test]
fn after_a_g722_relay_ends_the_mix_still_leaves_out_self_and_blocked_speakers() {
    let mut r = Room::new();
    r.join(1, CodecKind::G722, 9, Some(500.0));
    r.join(2, CodecKind::G722, 9, Some(1000.0));
    r.run(60);
    let relayed = r.out.to(2).len();
    assert!(r.sent_by(1).contains(&r.out.to(2)[relayed - 1].payload), "2 hears 1 on the relay path first");
    r.command(Command::SetBlocked(RoomId(1), vec![(LegId(1), LegId(2)), (LegId(2), LegId(1))]));
    r.run(40);
    for listener in [1u64, 2] {
        let got = r.out.to(listener);
        let mut dec = g722::G722Decoder::new();
        let mut pcm = Vec::new();
        for p in &got {
            let mut frame = [0i16; 320];
            let n = dec.decode_samples(&p.payload, &mut frame);
            pcm.push(frame[..n].to_vec());
        }
        // from five frames after the block on (the decoder's filters settle)
        for (i, f) in pcm.iter().enumerate().skip(relayed + 5) {
            let rms = (f.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / f.len() as f64).sqrt();
            assert!(rms < 50.0, "listener {listener}, frame {i} after the block: rms {rms:.0} (500 Hz share {:.2}, 1000 Hz share {:.2})", tone_share(f, 500.0), tone_share(f, 1000.0));
        }
    }
}

/// The encoder hand-over itself: an encoder given a decoder's state and the true input
/// history continues with exactly the codes of the encoder that made the stream.
#[test]
fn g722_encoder_continues_bit_exact_from_a_decoders_state() {
    let pcm: Vec<i16> = (0..3200).map(|k| ((k as f64 * 0.3).sin() * 6000.0 + (k as f64 * 1.7).sin() * 3000.0) as i16).collect();
    let mut original = g722::G722Encoder::new();
    let mut codes = vec![0u8; 1600];
    original.encode_samples(&pcm, &mut codes);
    let mut decoder = g722::G722Decoder::new();
    let mut out = vec![0i16; 1600];
    decoder.decode_samples(&codes[..800], &mut out);
    let mut successor = g722::G722Encoder::new();
    successor.continue_from(&decoder.adpcm_state(), &pcm[..1600]);
    let mut more = vec![0u8; 800];
    successor.encode_samples(&pcm[1600..], &mut more);
    assert_eq!(more, codes[800..], "the successor's codes are the original's");
}

/// Share of `freq` in 16 kHz audio (≈1.0 for a pure tone).
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    media::dsp::goertzel::tone_share(samples, 16_000, freq, 0.0)
}

/// Chrome sends a payload-less RTP packet now and then (a keep-alive while its track is
/// disabled, e.g. on hold, and every few seconds after), on the sequence and the
/// timestamp of its stream. It is no frame: the relay goes on with the next one, and
/// the listener is never sent an empty packet.
#[test]
fn a_payload_less_packet_does_not_stop_the_relay() {
    let mut r = Room::new();
    r.join(1, CodecKind::Pcmu, 0, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, Some(1000.0));
    r.run(50);
    for _ in 0..3 {
        r.payload_less(1);
        r.run(50);
    }
    let got = r.out.to(2);
    let tail: Vec<Vec<u8>> = got[got.len() - 20..].iter().map(|p| p.payload.clone()).collect();
    assert!(find_run(r.sent_by(1), &tail).is_some(), "leg 2 still gets leg 1's payloads: {:?}", &tail[..3]);
    assert!(got.iter().all(|p| !p.payload.is_empty()), "no empty packet is passed on");
}

#[test]
fn reconfiguring_a_speaker_for_a_hold_and_back_keeps_its_relay() {
    let mut r = Room::new();
    r.join(1, CodecKind::Pcmu, 0, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, Some(1000.0));
    r.run(50);
    r.command(Command::Configure(LegId(1), LegParams { send: false, ..params(1, CodecKind::Pcmu, 0) }));
    r.run(50);
    r.command(Command::Configure(LegId(1), params(1, CodecKind::Pcmu, 0)));
    r.run(50);
    let got = r.out.to(2);
    let tail: Vec<Vec<u8>> = got[got.len() - 20..].iter().map(|p| p.payload.clone()).collect();
    assert!(find_run(r.sent_by(1), &tail).is_some(), "leg 2 still gets leg 1's payloads: {:?}", &tail[..3]);
}

#[test]
fn a_speaker_silent_with_payload_less_packets_is_heard_again_when_it_talks() {
    let mut r = Room::new();
    r.join(1, CodecKind::Pcmu, 0, Some(440.0));
    r.join(2, CodecKind::Pcmu, 0, Some(1000.0));
    r.run(50);
    // Leg 1's track is disabled (a browser on hold): digital silence, and a
    // payload-less packet now and then.
    r.talkers.iter_mut().find(|t| t.leg == 1).unwrap().freq = None;
    for _ in 0..3 {
        r.payload_less(1);
        r.run(20);
    }
    r.talkers.iter_mut().find(|t| t.leg == 1).unwrap().freq = Some(440.0);
    r.run(100);
    let got = r.out.to(2);
    let mut dec = new_decoder(CodecKind::Pcmu);
    let mut pcm = Vec::new();
    for p in &got[got.len() - 25..] {
        let mut out = [0i16; 960];
        let n = dec.decode(&p.payload, &mut out);
        pcm.extend_from_slice(&out[..n]);
    }
    let energy: f64 = pcm.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / pcm.len().max(1) as f64;
    assert!(energy.sqrt() > 1000.0, "leg 2 hears leg 1 again: rms {:.0} over {} samples", energy.sqrt(), pcm.len());
}
