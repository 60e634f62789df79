//! The RTP side: threads that each own a share of the participants, send one G.711
//! packet per participant every 20 ms and count what the server sends back.
//!
//! Why this shape: the server latches each leg to the source address of its first
//! packet, so every participant has its own local port and its own receiving socket.
//! Sending does not need one syscall per packet, though: in `raw` mode each thread
//! writes whole IPv4+UDP packets (source = the participant's address) into one
//! `IPPROTO_RAW` socket and hands up to 1024 of them to the kernel per `sendmmsg`.
//! Receiving drains every socket with `recvmmsg` every `--rx-interval-ms` (default
//! 100 ms, about 5 packets per call), either all of them in turn (`--rx-poll scan`,
//! the default: nobody waits on the sockets, so delivering to them costs the sender
//! the least) or the ready ones from an epoll set; arrival times are the kernel's
//! `SO_TIMESTAMPNS` stamps, so our own batching and scheduling delay do not show up
//! in the inter-packet gaps we report — those are the server's pacing plus loopback.
//!
//! Run loop of one thread, top to bottom:
//! 1. sleep until the next 20 ms tick (absolute deadline, `clock_nanosleep`);
//! 2. note how late we woke (our own send jitter, reported separately);
//! 3. for each participant with a known remote address: RTP header + 160 bytes of
//!    µ-law from a precomputed one-second table (tone for speakers, noise otherwise);
//! 4. every few ticks: `recvmmsg` on each socket (or each ready one, after
//!    `epoll_wait(0)`); per packet: RTP parse, sequence bookkeeping, gap histogram.
//!
//! Two-party mode adds callee participants (group 1) that send their codec's frames
//! from [`Tables::with_callee`] with the payload type their answer negotiated (packed
//! into the remote address word, [`pack_pt`]); receiving is the same for both groups,
//! plus a per-group payload-type count and, for callers, whether the payload is a
//! callee's own bytes (relay path) or not (transcoded).
//!
//! Per packet cost on our side: send ≈ a 200-byte copy into the batch; receive ≈ a
//! fifth of a `recvmmsg` call plus a header parse and a histogram increment.

use crate::args::{RxPoll, SendMode, Silence};
use crate::stats::{Histogram, StreamRx};
use crate::sys;
use media::codec::g711::ulaw_encode;
use media::codec::CodecKind;
use media::rtp::{self, RtpHeader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

pub const PHASE_RAMP: u8 = 0;
pub const PHASE_MEASURE: u8 = 1;
pub const PHASE_STOP: u8 = 2;

const TICK_NS: u64 = 20_000_000;
const SAMPLES: usize = 160;
const PT_PCMU: u8 = 0;

/// State shared between the SIP thread and the RTP threads.
pub struct Shared {
    pub phase: AtomicU8,
    /// Per participant: where to send RTP, packed by [`pack`]; 0 = not (yet) sending.
    pub remotes: Vec<AtomicU64>,
    /// Per thread: packets sent and received so far (progress lines).
    pub sent: Vec<AtomicU64>,
    pub received: Vec<AtomicU64>,
}

impl Shared {
    pub fn new(participants: usize, threads: usize) -> Shared {
        Shared {
            phase: AtomicU8::new(PHASE_RAMP),
            remotes: (0..participants).map(|_| AtomicU64::new(0)).collect(),
            sent: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            received: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    pub fn total_sent(&self) -> u64 {
        self.sent.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
    pub fn total_received(&self) -> u64 {
        self.received
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }
}

pub fn pack(a: SocketAddrV4) -> u64 {
    pack_pt(a, PT_PCMU)
}

/// [`pack`] with the RTP payload type to send (bits 56..63; a callee answering with
/// G.722 or Opus sends the payload type the offer gave that codec).
pub fn pack_pt(a: SocketAddrV4, pt: u8) -> u64 {
    (pt as u64) << 56 | 1 << 48 | (u32::from(*a.ip()) as u64) << 16 | a.port() as u64
}

fn unpack(v: u64) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from((v >> 16) as u32), v as u16)
}

fn unpack_pt(v: u64) -> u8 {
    (v >> 56) as u8 & 0x7f
}

/// What a participant sends.
#[derive(Clone, Copy)]
pub enum Voice {
    /// A sine tone (index into the tone tables).
    Tone(usize),
    /// Low-level random noise.
    Noise,
    /// Nothing (the media clock still runs).
    Mute,
    /// The two-party callees' stream: [`Tables::callee`] frames in their codec.
    Callee,
}

/// One second of µ-law audio per voice, so a packet is a 160-byte slice of it.
pub struct Tables {
    tones: Vec<Vec<u8>>,
    noise: Vec<u8>,
    /// Two-party mode: one second (50 frames) of the callees' audio, encoded once in
    /// their codec (G.711, G.722 or Opus), looped.
    callee: Vec<Vec<u8>>,
    /// The first 8 bytes of each callee frame, sorted: a caller receiving one of them
    /// got the callee's own payload, i.e. the server relayed it without transcoding.
    callee_keys: Vec<u64>,
}

/// Tone frequencies: whole numbers of periods per second, so the table loops cleanly.
const TONES_HZ: [f64; 5] = [300.0, 440.0, 600.0, 800.0, 1000.0];

impl Tables {
    pub fn new() -> Tables {
        let tones = TONES_HZ
            .iter()
            .map(|hz| {
                (0..8000)
                    .map(|n| {
                        // -12 dBFS sine.
                        let s =
                            8192.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin();
                        ulaw_encode(s as i16)
                    })
                    .collect()
            })
            .collect();
        // About -50 dBFS of uniform noise: a comfort-noise level that still makes the
        // server decode and consider a real frame every 20 ms.
        let mut x: u32 = 0x1234_5678;
        let noise = (0..8000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ulaw_encode((x >> 16) as i16 >> 6)
            })
            .collect();
        Tables { tones, noise, callee: Vec::new(), callee_keys: Vec::new() }
    }

    /// Adds the callees' frames: `tone` = a 440 Hz tone at -12 dBFS, else noise at
    /// about -50 dBFS, as 16 kHz PCM through the codec's own encoder (one encoder for
    /// the whole second, so G.722's ADPCM state runs on; the loop point is one
    /// discontinuity per second). None when this build lacks the codec.
    pub fn with_callee(mut self, kind: CodecKind, tone: bool) -> Option<Tables> {
        let mut enc = media::codec::try_new_encoder(kind)?;
        let mut x: u32 = 0x9e37_79b9;
        let mut out = vec![0u8; 1500];
        for f in 0..50 {
            let pcm: Vec<i16> = (0..320)
                .map(|k| {
                    let n = f * 320 + k;
                    if tone {
                        (8192.0 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / 16000.0).sin()) as i16
                    } else {
                        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (x >> 16) as i16 >> 6
                    }
                })
                .collect();
            let len = enc.encode(&pcm, &mut out);
            // The raw send buffers hold 160 payload bytes (G.711/G.722 are exactly
            // that; Opus at 24 kbit/s is about 60).
            assert!(len <= SAMPLES, "{kind:?} frame of {len} bytes does not fit the send buffers");
            self.callee.push(out[..len].to_vec());
        }
        self.callee_keys = self.callee.iter().filter_map(|f| frame_key(f)).collect();
        self.callee_keys.sort_unstable();
        Some(self)
    }

    fn frame(&self, v: Voice, n: u32) -> Option<&[u8]> {
        let off = (n as usize % 50) * SAMPLES;
        match v {
            Voice::Tone(i) => Some(&self.tones[i % self.tones.len()][off..off + SAMPLES]),
            Voice::Noise => Some(&self.noise[off..off + SAMPLES]),
            Voice::Mute => None,
            Voice::Callee => self.callee.get(n as usize % 50).map(|v| v.as_slice()),
        }
    }
}

fn frame_key(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

pub fn voice_for(index_in_room: u32, speakers: u32, silence: &Silence, room: usize) -> Voice {
    if index_in_room < speakers {
        Voice::Tone(room + index_in_room as usize)
    } else {
        match silence {
            Silence::Noise => Voice::Noise,
            Silence::None => Voice::Mute,
        }
    }
}

/// One participant as an RTP thread sees it.
pub struct Participant {
    /// Index into `Shared::remotes`.
    pub global: usize,
    pub socket: OwnedFd,
    pub local: SocketAddrV4,
    pub voice: Voice,
    /// 0 = callers (or the only group), 1 = two-party callees: results are per group.
    pub group: u8,
    /// RTP timestamp step per 20 ms frame (160 at 8 kHz; 960 for Opus' 48 kHz clock).
    pub ts_step: u32,
    tx_seq: u16,
    tx_ts: u32,
    tx_count: u32,
    ssrc: u32,
    rx: StreamRx,
}

impl Participant {
    pub fn new(global: usize, socket: OwnedFd, local: SocketAddrV4, voice: Voice) -> Participant {
        Participant {
            global,
            socket,
            local,
            voice,
            group: 0,
            ts_step: SAMPLES as u32,
            tx_seq: rtp::random_u32() as u16,
            tx_ts: rtp::random_u32(),
            tx_count: 0,
            ssrc: rtp::random_u32(),
            rx: StreamRx::default(),
        }
    }
}

/// What one thread measured inside the window.
pub struct ThreadReport {
    /// Inter-packet gaps of the callers (or of everyone outside two-party mode)…
    pub gaps: Histogram,
    /// …and of the two-party callees.
    pub callee_gaps: Histogram,
    pub late: Histogram,
    /// Per participant (group, expected, received) inside the window.
    pub streams: Vec<(u8, u64, u64)>,
    pub sent_in_window: u64,
    pub received_in_window: u64,
    pub send_errors: u64,
    pub skipped_ticks: u64,
    /// Packets received per group and RTP payload type (whole run): shows which codec
    /// each side of a two-party call really got.
    pub rx_pt: [[u64; 128]; 2],
    /// Two-party: packets the callers received carrying a callee's payload byte for
    /// byte (the relay path; transcoding changes the bytes).
    pub verbatim: u64,
}

pub struct Worker {
    pub index: usize,
    pub parts: Vec<Participant>,
    pub mode: SendMode,
    pub rx_every: u64,
    pub rx_poll: RxPoll,
    pub shared: Arc<Shared>,
    pub tables: Arc<Tables>,
}

impl Worker {
    pub fn run(mut self) -> ThreadReport {
        let raw = match self.mode {
            SendMode::Raw => Some(sys::raw_socket().expect("raw socket (checked at start)")),
            SendMode::Socket => None,
        };
        let epoll = sys::Epoll::new().expect("epoll_create1");
        if self.rx_poll == RxPoll::Epoll {
            for (i, p) in self.parts.iter().enumerate() {
                epoll
                    .add(p.socket.as_raw_fd(), i as u64)
                    .expect("epoll_ctl");
            }
        }
        let mut events =
            vec![libc::epoll_event { events: 0, u64: 0 }; self.parts.len().clamp(1, 8192)];
        let mut rxb = sys::RxBatch::new();
        let mut txb = sys::RawTxBatch::new();
        let mut pkt = [0u8; 12 + SAMPLES];
        let mut rep = ThreadReport {
            gaps: Histogram::default(),
            callee_gaps: Histogram::default(),
            late: Histogram::default(),
            streams: Vec::new(),
            sent_in_window: 0,
            received_in_window: 0,
            send_errors: 0,
            skipped_ticks: 0,
            rx_pt: [[0; 128]; 2],
            verbatim: 0,
        };
        let (mut sent, mut received) = (0u64, 0u64);
        let mut window_base = (0u64, 0u64);
        let mut phase = PHASE_RAMP;
        let mut next = sys::mono_ns() + TICK_NS;
        let mut tick = 0u64;
        loop {
            sys::sleep_until_ns(next);
            let now = sys::mono_ns();
            let p = self.shared.phase.load(Ordering::Acquire);
            if p != phase {
                if p == PHASE_MEASURE {
                    self.parts.iter_mut().for_each(|x| x.rx.open_window());
                    window_base = (sent, received);
                }
                if p == PHASE_STOP {
                    self.drain(
                        &epoll,
                        &mut events,
                        &mut rxb,
                        &mut rep,
                        &mut received,
                        phase == PHASE_MEASURE,
                    );
                    break;
                }
                phase = p;
            }
            let measuring = phase == PHASE_MEASURE;
            if measuring {
                rep.late.record(now.saturating_sub(next));
            }

            // Send this tick's packet for every participant that has a remote.
            for part in self.parts.iter_mut() {
                let remote = self.shared.remotes[part.global].load(Ordering::Relaxed);
                if remote == 0 {
                    continue;
                }
                let Some(payload) = self.tables.frame(part.voice, part.tx_count) else {
                    part.tx_ts = part.tx_ts.wrapping_add(part.ts_step);
                    part.tx_count += 1;
                    continue;
                };
                let h = RtpHeader {
                    marker: part.tx_count == 0,
                    payload_type: unpack_pt(remote),
                    sequence: part.tx_seq,
                    timestamp: part.tx_ts,
                    ssrc: part.ssrc,
                };
                part.tx_seq = part.tx_seq.wrapping_add(1);
                part.tx_ts = part.tx_ts.wrapping_add(part.ts_step);
                part.tx_count += 1;
                let dst = unpack(remote);
                match &raw {
                    Some(_) => {
                        txb.push(part.local, dst, |buf| {
                            rtp::write_header(&h, buf);
                            buf[12..12 + payload.len()].copy_from_slice(payload);
                            12 + payload.len()
                        });
                        if txb.is_full() {
                            flush_counted(&mut txb, raw.as_ref().unwrap().as_raw_fd(), &mut sent, &mut rep.send_errors);
                        }
                    }
                    None => {
                        rtp::write_header(&h, &mut pkt);
                        pkt[12..12 + payload.len()].copy_from_slice(payload);
                        if sys::send_to(part.socket.as_raw_fd(), &pkt[..12 + payload.len()], dst) {
                            sent += 1;
                        } else {
                            rep.send_errors += 1;
                        }
                    }
                }
            }
            if let Some(fd) = &raw {
                flush_counted(&mut txb, fd.as_raw_fd(), &mut sent, &mut rep.send_errors);
            }

            tick += 1;
            if tick.is_multiple_of(self.rx_every) {
                self.drain(
                    &epoll,
                    &mut events,
                    &mut rxb,
                    &mut rep,
                    &mut received,
                    measuring,
                );
            }
            self.shared.sent[self.index].store(sent, Ordering::Relaxed);
            self.shared.received[self.index].store(received, Ordering::Relaxed);

            next += TICK_NS;
            // Hopelessly behind (over a second): resynchronise rather than burst.
            let after = sys::mono_ns();
            if after > next + 1_000_000_000 {
                rep.skipped_ticks += (after - next) / TICK_NS;
                next = after + TICK_NS;
            }
        }
        self.shared.sent[self.index].store(sent, Ordering::Relaxed);
        self.shared.received[self.index].store(received, Ordering::Relaxed);
        rep.sent_in_window = sent - window_base.0;
        rep.received_in_window = received - window_base.1;
        rep.streams = self
            .parts
            .iter()
            .map(|p| {
                let (e, g) = p.rx.window();
                (p.group, e, g)
            })
            .collect();
        rep
    }

    /// Reads everything queued on every socket (`scan`) or every ready one (`epoll`).
    fn drain(
        &mut self,
        epoll: &sys::Epoll,
        events: &mut [libc::epoll_event],
        rxb: &mut sys::RxBatch,
        rep: &mut ThreadReport,
        received: &mut u64,
        measuring: bool,
    ) {
        if self.rx_poll == RxPoll::Scan {
            for part in self.parts.iter_mut() {
                Self::drain_one(part, &self.tables, rxb, rep, received, measuring);
            }
            return;
        }
        loop {
            let n = epoll.poll_now(events);
            for ev in &events[..n] {
                let part = &mut self.parts[ev.u64 as usize];
                Self::drain_one(part, &self.tables, rxb, rep, received, measuring);
            }
            if n < events.len() {
                break;
            }
        }
    }

    /// Reads everything queued on one participant's socket.
    fn drain_one(
        part: &mut Participant,
        tables: &Tables,
        rxb: &mut sys::RxBatch,
        rep: &mut ThreadReport,
        received: &mut u64,
        measuring: bool,
    ) {
        let pts = &mut rep.rx_pt[part.group as usize & 1];
        loop {
            let k = rxb.recv(part.socket.as_raw_fd());
            for j in 0..k {
                let (data, ts) = rxb.get(j);
                if rtp::looks_like_rtcp(data) {
                    continue;
                }
                let Some(pkt) = rtp::parse(data) else {
                    continue;
                };
                *received += 1;
                pts[pkt.header.payload_type as usize & 0x7f] += 1;
                if part.group == 0 && !tables.callee_keys.is_empty() {
                    if let Some(k) = frame_key(pkt.payload) {
                        rep.verbatim += tables.callee_keys.binary_search(&k).is_ok() as u64;
                    }
                }
                let gap = part.rx.on_packet(pkt.header.sequence, ts);
                if measuring && gap > 0 {
                    if part.group == 0 {
                        rep.gaps.record(gap);
                    } else {
                        rep.callee_gaps.record(gap);
                    }
                }
            }
            if k < sys::RX_BATCH {
                break;
            }
        }
    }
}

/// Sends the queued batch, counting what the kernel took and what it refused.
fn flush_counted(txb: &mut sys::RawTxBatch, fd: std::os::fd::RawFd, sent: &mut u64, errors: &mut u64) {
    let queued = txb.len;
    let ok = txb.flush(fd);
    *sent += ok as u64;
    *errors += (queued - ok) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_keeps_the_payload_type_apart_from_the_address() {
        let a: SocketAddrV4 = "127.0.0.1:44010".parse().unwrap();
        let v = pack_pt(a, 111);
        assert_eq!((unpack(v), unpack_pt(v)), (a, 111));
        assert_eq!((unpack(pack(a)), unpack_pt(pack(a))), (a, PT_PCMU));
        assert_ne!(pack(a), 0, "0 means 'not sending'");
    }

    #[test]
    fn callee_tables_hold_a_second_of_frames_that_fit_the_send_buffers() {
        for (kind, size) in [(CodecKind::Pcmu, Some(160)), (CodecKind::G722, Some(160)), (CodecKind::Opus, None)] {
            for tone in [true, false] {
                let t = Tables::new().with_callee(kind, tone).expect("codec in this build");
                assert_eq!(t.callee.len(), 50);
                for f in &t.callee {
                    match size {
                        Some(n) => assert_eq!(f.len(), n, "{kind:?}"),
                        // Opus, VBR at 24 kbit/s: about 60 bytes.
                        None => assert!((2..=120).contains(&f.len()), "{kind:?}: {} bytes", f.len()),
                    }
                }
                assert!(t.frame(Voice::Callee, 73).is_some());
                assert!(!t.callee_keys.is_empty());
            }
        }
        assert!(Tables::new().frame(Voice::Callee, 0).is_none(), "no callee frames outside two-party mode");
    }
}
