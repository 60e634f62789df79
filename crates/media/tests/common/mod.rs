//! Test phones for the media engine: real UDP sockets on 127.0.0.1 that send a G.711
//! µ-law tone as paced 20 ms RTP and record what they receive, plus a Goertzel
//! detector to tell which tones a recording contains.
//!
//! The engine's RTP ports come from a `testports` block (locked across processes), and
//! the tests wait for conditions with a deadline ([`wait_until`]), never for a fixed
//! time.
#![allow(dead_code)]

use media::{Attachment, CodecKind, LegMedia, LegParams, MediaConfig, MediaEngine, MediaEvent, MediaHandle, PortMode};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const TE_PT: u8 = 101;

pub fn ulaw_encode(s: i16) -> u8 {
    let mut x = s as i32;
    let sign = if x < 0 { 0x80 } else { 0 };
    if x < 0 {
        x = -x;
    }
    x = (x + 0x84).min(32635 + 0x84);
    let exp = (31 - (x as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mant = (x >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mant as u8)
}

pub fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let exp = ((u >> 4) & 7) as i32;
    let mant = (u & 0x0f) as i32;
    let x = (((mant << 3) + 0x84) << exp) - 0x84;
    (if u & 0x80 != 0 { -x } else { x }) as i16
}

/// Relative power of `freq` in `samples` (8 kHz): Goertzel power over total power,
/// normalised so that a pure tone gives about 1.0.
pub fn tone_share(samples: &[i16], freq: f64) -> f64 {
    media::dsp::goertzel::tone_share(samples, 8000, freq, 0.0)
}

/// A runtime with `workers` workers whose RTP range is the first `pairs` port pairs of
/// `block`, and the channel its events arrive on.
pub fn start_engine(block: &testports::PortBlock, pairs: u16, workers: usize, port_mode: PortMode) -> (MediaEngine, mpsc::Receiver<MediaEvent>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: block.range(0, 2 * pairs),
        workers,
        rtp_timeout: Duration::from_secs(60),
        port_mode,
    };
    let engine = MediaEngine::start(cfg, Box::new(move |e| {
        let _ = tx.lock().unwrap().send(e);
    }))
    .unwrap();
    (engine, rx)
}

pub fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// How long a test waits for something that normally takes milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Some`, for up to [`PATIENCE`]; panics naming `what`.
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub struct TestEngine {
    pub engine: Option<MediaEngine>,
    pub media: MediaHandle,
    pub events: mpsc::Receiver<MediaEvent>,
    /// The RTP range's port block; released after the engine (see `Drop`).
    _ports: testports::PortBlock,
}

impl TestEngine {
    /// Per-leg ports, the whole block (50 port pairs) as the RTP range.
    pub fn start(workers: usize) -> TestEngine {
        TestEngine::start_in(testports::BLOCK_SIZE / 2, workers, PortMode::PerLeg)
    }

    /// An engine whose RTP range is the first `pairs` port pairs of a fresh block.
    pub fn start_in(pairs: u16, workers: usize, port_mode: PortMode) -> TestEngine {
        let block = testports::PortBlock::take();
        let (engine, rx) = start_engine(&block, pairs, workers, port_mode);
        let media = engine.handle();
        TestEngine { engine: Some(engine), media, events: rx, _ports: block }
    }

    /// Wait for an event matching `f`.
    pub fn wait_event(&self, timeout: Duration, f: impl Fn(&MediaEvent) -> bool) -> Option<MediaEvent> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(e) if f(&e) => return Some(e),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        if let Some(e) = self.engine.take() {
            e.shutdown();
        }
    }
}

/// Audio packets received: (arrival, RTP sequence number, samples).
type Recording = Arc<Mutex<Vec<(Instant, u16, Vec<i16>)>>>;
/// Telephone-event packets received: (marker, payload).
type EventLog = Arc<Mutex<Vec<(bool, Vec<u8>)>>>;

/// A phone in a room: sends a tone (or silence when `tone` is None), records audio.
pub struct Phone {
    pub leg: LegMedia,
    pub socket: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    /// Sequence numbers the sender must skip (simulated loss).
    pub drop_seqs: Arc<Mutex<Vec<u16>>>,
    pub sending: Arc<AtomicBool>,
    /// Frames the sender has passed (sent or dropped): the next is sequence number 100 + this.
    frames: Arc<AtomicU32>,
    recorded: Recording,
    /// Telephone-event packets received: (marker, payload).
    pub events_received: EventLog,
    threads: Vec<JoinHandle<()>>,
}

impl Phone {
    pub fn join(media: &MediaHandle, room: media::RoomId, tone: Option<f64>) -> Phone {
        let leg = media.allocate().expect("allocate");
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        media.configure(
            leg.id,
            LegParams {
                remote: Some(socket.local_addr().unwrap()),
                codec: CodecKind::Pcmu,
                payload_type: 0,
                telephone_event_pt: Some(TE_PT),
                send: true,
                recv: true,
            },
        );
        media.attach(leg.id, Attachment::Room(room));
        let stop = Arc::new(AtomicBool::new(false));
        let sending = Arc::new(AtomicBool::new(true));
        let drop_seqs = Arc::new(Mutex::new(Vec::new()));
        let frames = Arc::new(AtomicU32::new(0));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let events_received = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        {
            let (socket, stop, sending, drop_seqs, frames) =
                (socket.clone(), stop.clone(), sending.clone(), drop_seqs.clone(), frames.clone());
            let dest = leg.rtp_addr;
            threads.push(std::thread::spawn(move || {
                let ssrc = 0x1000 + dest.port() as u32;
                let start = Instant::now();
                let mut seq: u16 = 100;
                let mut phase = 0.0f64;
                let mut k = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let mut payload = [0xffu8; 160];
                    if let Some(f) = tone {
                        for b in payload.iter_mut() {
                            *b = ulaw_encode((8000.0 * phase.sin()) as i16);
                            phase += 2.0 * std::f64::consts::PI * f / 8000.0;
                        }
                    }
                    if sending.load(Ordering::Relaxed) && !drop_seqs.lock().unwrap().contains(&seq) {
                        let _ = socket.send_to(&rtp(0, k == 0, seq, k * 160, ssrc, &payload), dest);
                    }
                    seq = seq.wrapping_add(1);
                    k += 1;
                    frames.store(k, Ordering::Relaxed);
                    let next = start + Duration::from_millis(20 * k as u64);
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                }
            }));
        }
        {
            let (socket, stop, recorded, events_received) =
                (socket.clone(), stop.clone(), recorded.clone(), events_received.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
                    if n < 12 {
                        continue;
                    }
                    let pt = buf[1] & 0x7f;
                    if pt == 0 {
                        let pcm: Vec<i16> = buf[12..n].iter().map(|&b| ulaw_decode(b)).collect();
                        let seq = u16::from_be_bytes([buf[2], buf[3]]);
                        recorded.lock().unwrap().push((Instant::now(), seq, pcm));
                    } else if pt == TE_PT {
                        events_received.lock().unwrap().push((buf[1] & 0x80 != 0, buf[12..n].to_vec()));
                    }
                }
            }));
        }
        Phone { leg, socket, stop, drop_seqs, sending, frames, recorded, events_received, threads }
    }

    /// Frames the sender has passed so far (its next sequence number is 100 + this).
    pub fn frames_sent(&self) -> u32 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Forget what was recorded so far.
    pub fn clear(&self) {
        self.recorded.lock().unwrap().clear();
    }

    /// Audio received since the last clear (concatenated 8 kHz samples).
    pub fn audio(&self) -> Vec<i16> {
        self.recorded.lock().unwrap().iter().flat_map(|(_, _, p)| p.iter().copied()).collect()
    }

    /// Audio received after `since`.
    pub fn audio_since(&self, since: Instant) -> Vec<i16> {
        self.recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| *t >= since)
            .flat_map(|(_, _, p)| p.iter().copied())
            .collect()
    }

    /// The last `packets` packets' audio received after `since`, once that many arrived.
    pub fn last_packets_since(&self, since: Instant, packets: usize) -> Option<Vec<i16>> {
        let rec = self.recorded.lock().unwrap();
        let after: Vec<_> = rec.iter().filter(|(t, _, _)| *t >= since).collect();
        (after.len() >= packets).then(|| after[after.len() - packets..].iter().flat_map(|(_, _, p)| p.iter().copied()).collect())
    }

    /// RTP sequence numbers of the audio packets received since the last clear.
    pub fn seqs(&self) -> Vec<u16> {
        self.recorded.lock().unwrap().iter().map(|(_, s, _)| *s).collect()
    }

    pub fn packets(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }

    pub fn hangup(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub const TONES: [f64; 3] = [440.0, 1000.0, 1700.0];

/// Which of TONES are present (share > 0.05) in the audio.
pub fn tones_heard(audio: &[i16]) -> [bool; 3] {
    let mut r = [false; 3];
    for (i, f) in TONES.iter().enumerate() {
        r[i] = tone_share(audio, *f) > 0.05;
    }
    r
}
