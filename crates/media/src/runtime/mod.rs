//! The media runtime: worker threads that own the RTP/RTCP sockets and drive one
//! [`MediaCore`] each, and the [`MediaHandle`] the signalling engine uses to control
//! them.
//!
//! Threads: `workers` media threads (default: one per core), nothing else. Each worker
//! runs the loop written down in [`crate::engine`]: read what arrived (batched
//! `recvmmsg`), its command queue drained between I/O batches, the 20 ms tick (aligned
//! across workers by a barrier so that rooms can span workers), and `sendmmsg` of
//! everything the core produced.
//!
//! # Port modes
//!
//! - [`PortMode::PerLeg`] (default): every leg binds its own RTP/RTCP port pair from
//!   the configured range, returned to the pool on release. The worker epolls all its
//!   legs' sockets, so a readable socket usually holds one datagram and each
//!   `sendmmsg` carries the packets of one leg: about three system calls per packet.
//! - [`PortMode::Shared`]: each worker binds one RTP/RTCP pair from the range at start;
//!   every leg on that worker advertises that port in SDP. Inbound datagrams are
//!   matched to legs by source address, with symmetric-RTP latching for legs behind a
//!   NAT: the rule is in `runtime/demux.rs`. The worker does not wake per datagram:
//!   it drains the shared sockets every [`SHARED_POLL`] and right before each tick,
//!   with `recvmmsg` of [`RECV_BATCH`] datagrams per call, and sends everything a tick
//!   produced in `sendmmsg` calls of up to [`SEND_BATCH`] datagrams. Legs are not
//!   limited by the port range; [`MediaHandle::ports_in_use`] still counts live legs.
//!
//! Control never waits on media: [`MediaHandle`] methods push a command onto the owning
//! worker's queue and poke its eventfd. Only [`MediaHandle::allocate`] in per-leg mode
//! does real work on the caller's thread: binding the port pair (so the SDP answer has
//! the address at once). A leg lives on one worker for its whole life: the worker index
//! is encoded in the low byte of its [`LegId`]; legs are spread round-robin.

mod demux;
/// Public only for `examples/udp_floor.rs`, which measures the kernel's share of the
/// relay path with the very batches the workers use.
#[doc(hidden)]
pub mod sys;

use demux::Demux;

use crate::engine::{Attachment, Command, CoreConfig, Input, LegId, LegParams, MediaCore, MediaEvent, Output, RoomId, Socket};
use crate::engine::PromptTarget;
use crate::mixer::Publication;
use crate::player::{PromptId, PromptReader, PromptSpec};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The mixer tick.
pub const TICK: Duration = Duration::from_millis(20);

/// Datagrams read per `recvmmsg` call.
pub const RECV_BATCH: usize = 64;
/// Datagrams queued per `sendmmsg` flush.
pub const SEND_BATCH: usize = 1024;
/// Shared-port mode: how often a worker drains its shared sockets between ticks. Bounds
/// the delay added to echoed packets and the error on jitter-buffer arrival times.
pub const SHARED_POLL: Duration = Duration::from_millis(2);
/// `recvmmsg` calls per drain of a shared socket before the worker looks at its
/// commands and the tick again (it comes straight back if data is left).
const SHARED_DRAIN_CALLS: usize = 64;
/// Kernel buffer of a shared socket: one worker's traffic for ~40 ms at 4,000 legs.
const SHARED_SOCKET_BUFFER: i32 = 8 << 20;
/// Max legs per worker is unbounded; bits of the LegId reserved for the worker index.
const WORKER_BITS: u32 = 8;
const WAKE_TOKEN: u64 = u64::MAX;

/// How legs get their local RTP port; see the module docs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum PortMode {
    /// One RTP/RTCP port pair per leg from the range, returned on release.
    #[default]
    PerLeg,
    /// One RTP/RTCP port pair per worker from the range, shared by its legs; inbound
    /// packets are matched to legs by source address.
    Shared,
}

#[derive(Clone, Debug)]
pub struct MediaConfig {
    pub bind_ip: IpAddr,
    /// Inclusive range; RTP ports are the even ones, RTCP = RTP + 1.
    pub rtp_ports: (u16, u16),
    /// 0 = one per available core.
    pub workers: usize,
    /// No RTP for this long => [`MediaEvent::RtpTimeout`].
    pub rtp_timeout: Duration,
    pub port_mode: PortMode,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            rtp_ports: (20_000, 29_999),
            workers: 0,
            rtp_timeout: Duration::from_secs(60),
            port_mode: PortMode::PerLeg,
        }
    }
}

#[derive(Debug)]
pub enum MediaError {
    /// Every port pair of the range is in use.
    PortsExhausted,
    Io(io::Error),
    /// The engine has been shut down.
    Stopped,
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::PortsExhausted => write!(f, "no free RTP port pair"),
            MediaError::Io(e) => write!(f, "media socket error: {e}"),
            MediaError::Stopped => write!(f, "media engine stopped"),
        }
    }
}

impl std::error::Error for MediaError {}

/// A freshly allocated leg.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LegMedia {
    pub id: LegId,
    /// Local RTP address to put in SDP.
    pub rtp_addr: SocketAddr,
}

type EventSink = Arc<dyn Fn(MediaEvent) + Send + Sync>;

/// A bound RTP/RTCP pair (RTCP = RTP + 1).
struct PortPair {
    port: u16,
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

enum WorkerMsg {
    /// A new leg; `pair` is its own port pair in per-leg mode, `None` in shared mode.
    AddLeg { leg: LegId, pair: Option<PortPair> },
    Core(Command),
}

struct WorkerLink {
    queue: mpsc::Sender<WorkerMsg>,
    waker: Arc<sys::Waker>,
}

/// Free RTP ports (even). FIFO so that a released port is reused last, which keeps
/// late packets of an ended call away from the next one when the range allows.
struct PortPool {
    free: VecDeque<u16>,
    /// Releases queued to workers whose ports are not back yet.
    returning: usize,
}

struct Shared {
    links: Vec<WorkerLink>,
    pool: Mutex<PortPool>,
    pool_returned: Condvar,
    in_use: AtomicUsize,
    next_leg: AtomicU64,
    next_worker: AtomicUsize,
    bind_ip: IpAddr,
    mode: PortMode,
    /// Shared-port mode: each worker's RTP address (what its legs put in SDP).
    worker_rtp: Vec<SocketAddr>,
    stopped: AtomicBool,
    /// Reads prompts ahead of the workers (see [`crate::player`]).
    prompts: PromptReader,
    next_prompt: AtomicU64,
    next_recording: AtomicU64,
    /// Where workers' events go; recordings report their end here too.
    events: EventSink,
}

impl Shared {
    fn return_port(&self, port: u16) {
        let mut p = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        p.free.push_back(port);
        p.returning = p.returning.saturating_sub(1);
        self.pool_returned.notify_all();
    }
}

/// Barrier that also carries the shutdown decision, so that every worker leaves at the
/// same tick (a plain barrier plus a flag could strand one worker in `wait`).
struct TickBarrier {
    state: Mutex<(usize, u64, bool)>, // (arrived, generation, stop decided for it)
    cv: Condvar,
    n: usize,
    stop_requested: AtomicBool,
}

impl TickBarrier {
    /// Returns true when all workers must stop after this tick.
    fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let gen = s.1;
        s.0 += 1;
        if s.0 == self.n {
            s.0 = 0;
            s.1 += 1;
            s.2 = self.stop_requested.load(Ordering::Acquire);
            self.cv.notify_all();
            return s.2;
        }
        while s.1 == gen {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.2
    }
}

/// Owns the worker threads.
pub struct MediaEngine {
    shared: Arc<Shared>,
    barrier: Arc<TickBarrier>,
    threads: Vec<JoinHandle<()>>,
}

/// Cheap, cloneable control handle; every method returns without waiting for media.
#[derive(Clone)]
pub struct MediaHandle {
    shared: Arc<Shared>,
}

impl MediaEngine {
    pub fn start(cfg: MediaConfig, events: Box<dyn Fn(MediaEvent) + Send + Sync>) -> io::Result<MediaEngine> {
        let n = if cfg.workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            cfg.workers
        }
        .min(1 << WORKER_BITS);
        let (lo, hi) = cfg.rtp_ports;
        let first = lo + (lo & 1);
        let mut free: VecDeque<u16> = (first..hi).step_by(2).filter(|p| p.checked_add(1).is_some_and(|r| r <= hi)).collect();
        if free.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "RTP port range holds no even/odd pair"));
        }
        // Shared-port mode: each worker's pair, the first free ones of the range.
        let mut worker_pairs = Vec::new();
        if cfg.port_mode == PortMode::Shared {
            while worker_pairs.len() < n {
                let Some(port) = free.pop_front() else {
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, "no free RTP port pair for every media worker"));
                };
                if let Ok(pair) = bind_pair(cfg.bind_ip, port, SHARED_SOCKET_BUFFER) {
                    worker_pairs.push(pair);
                }
            }
        }
        let worker_rtp = worker_pairs.iter().map(|p| p.rtp.local_addr()).collect::<io::Result<Vec<_>>>()?;
        let events: EventSink = Arc::from(events);
        let barrier = Arc::new(TickBarrier {
            state: Mutex::new((0, 0, false)),
            cv: Condvar::new(),
            n,
            stop_requested: AtomicBool::new(false),
        });
        let publications: Arc<Vec<[RwLock<Publication>; 2]>> =
            Arc::new((0..n).map(|_| [RwLock::new(Publication::default()), RwLock::new(Publication::default())]).collect());

        let mut links = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel();
            let waker = Arc::new(sys::Waker::new()?);
            links.push(WorkerLink { queue: tx, waker: waker.clone() });
            receivers.push((rx, waker));
        }
        let shared = Arc::new(Shared {
            links,
            pool: Mutex::new(PortPool { free, returning: 0 }),
            pool_returned: Condvar::new(),
            in_use: AtomicUsize::new(0),
            next_leg: AtomicU64::new(1),
            next_worker: AtomicUsize::new(0),
            bind_ip: cfg.bind_ip,
            mode: cfg.port_mode,
            worker_rtp,
            stopped: AtomicBool::new(false),
            prompts: PromptReader::start()?,
            next_prompt: AtomicU64::new(1),
            next_recording: AtomicU64::new(1),
            events: events.clone(),
        });
        let start = Instant::now() + TICK;
        let mut threads = Vec::with_capacity(n);
        let mut worker_pairs = worker_pairs.into_iter();
        for (index, (rx, waker)) in receivers.into_iter().enumerate() {
            let io = match worker_pairs.next() {
                Some(pair) => LegIo::Shared { pair, demux: Demux::default(), reported_unmatched: 0 },
                None => LegIo::PerLeg { sockets: Vec::new(), free_slots: Vec::new(), slot_of: HashMap::new() },
            };
            let worker = Worker {
                index,
                core: MediaCore::new(CoreConfig { rtp_timeout: cfg.rtp_timeout, ..CoreConfig::default() }),
                epoll: sys::Epoll::new(1024)?,
                waker,
                commands: rx,
                io,
                recv: sys::RecvBatch::new(RECV_BATCH),
                send: sys::SendBatch::new(SEND_BATCH),
                ready: Vec::with_capacity(1024),
                shared: shared.clone(),
                barrier: barrier.clone(),
                publications: publications.clone(),
                events: events.clone(),
                next_tick: start,
                tick: 0,
            };
            worker.epoll.add(worker.waker.raw(), WAKE_TOKEN)?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("media-{index}"))
                    .spawn(move || worker.run())?,
            );
        }
        Ok(MediaEngine { shared, barrier, threads })
    }

    pub fn handle(&self) -> MediaHandle {
        MediaHandle { shared: self.shared.clone() }
    }

    /// Stop and join the workers. Legs still allocated are dropped with them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.barrier.stop_requested.store(true, Ordering::Release);
        for l in &self.shared.links {
            l.waker.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}

impl MediaHandle {
    fn worker_of(leg: LegId) -> usize {
        (leg.0 & ((1 << WORKER_BITS) - 1)) as usize
    }

    fn send(&self, worker: usize, msg: WorkerMsg) {
        if let Some(link) = self.shared.links.get(worker) {
            if link.queue.send(msg).is_ok() {
                link.waker.wake();
            }
        }
    }

    fn to_leg(&self, leg: LegId, c: Command) {
        self.send(Self::worker_of(leg), WorkerMsg::Core(c));
    }

    /// A new leg on the next worker (round-robin): returns its id and the local RTP
    /// address for SDP. Per-leg mode binds an RTP/RTCP port pair from the range, and
    /// waits (briefly) only when the pool is empty but released ports are on their way
    /// back from a worker; shared-port mode hands out the worker's address.
    pub fn allocate(&self) -> Result<LegMedia, MediaError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(MediaError::Stopped);
        }
        let pair = match self.shared.mode {
            PortMode::Shared => None,
            PortMode::PerLeg => Some(self.bind_from_pool()?),
        };
        let worker = self.shared.next_worker.fetch_add(1, Ordering::Relaxed) % self.shared.links.len();
        let rtp_addr = match &pair {
            Some(p) => p.rtp.local_addr().map_err(MediaError::Io)?,
            None => self.shared.worker_rtp[worker],
        };
        let seq = self.shared.next_leg.fetch_add(1, Ordering::Relaxed);
        let id = LegId((seq << WORKER_BITS) | worker as u64);
        self.shared.in_use.fetch_add(1, Ordering::AcqRel);
        self.send(worker, WorkerMsg::AddLeg { leg: id, pair });
        Ok(LegMedia { id, rtp_addr })
    }

    /// Per-leg mode: bind the next free port pair of the pool.
    fn bind_from_pool(&self) -> Result<PortPair, MediaError> {
        let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
        let mut tries = pool.free.len() + pool.returning;
        loop {
            let port = match pool.free.pop_front() {
                Some(p) => p,
                None if pool.returning > 0 => {
                    let (g, t) = self
                        .shared
                        .pool_returned
                        .wait_timeout(pool, Duration::from_millis(500))
                        .unwrap_or_else(|e| e.into_inner());
                    pool = g;
                    if t.timed_out() && pool.free.is_empty() {
                        return Err(MediaError::PortsExhausted);
                    }
                    continue;
                }
                None => return Err(MediaError::PortsExhausted),
            };
            match bind_pair(self.shared.bind_ip, port, PER_LEG_SOCKET_BUFFER) {
                Ok(pair) => return Ok(pair),
                Err(e) => {
                    // Taken by another process: put it at the back and try the next.
                    pool.free.push_back(port);
                    tries = tries.saturating_sub(1);
                    if tries == 0 {
                        return Err(if e.kind() == io::ErrorKind::AddrInUse {
                            MediaError::PortsExhausted
                        } else {
                            MediaError::Io(e)
                        });
                    }
                }
            }
        }
    }

    /// (Re)configure after offer/answer.
    pub fn configure(&self, leg: LegId, p: LegParams) {
        self.to_leg(leg, Command::Configure(leg, p));
    }

    pub fn attach(&self, leg: LegId, a: Attachment) {
        self.to_leg(leg, Command::Attach(leg, a));
    }

    /// Replace the room's set of blocked voice paths `(speaker, listener)`.
    pub fn set_blocked(&self, room: RoomId, blocked: Vec<(LegId, LegId)>) {
        for w in 0..self.shared.links.len() {
            self.send(w, WorkerMsg::Core(Command::SetBlocked(room, blocked.clone())));
        }
    }

    /// Nobody hears the leg.
    pub fn set_muted(&self, leg: LegId, muted: bool) {
        self.to_leg(leg, Command::SetMuted(leg, muted));
    }

    /// The leg hears nobody.
    pub fn set_deaf(&self, leg: LegId, deaf: bool) {
        self.to_leg(leg, Command::SetDeaf(leg, deaf));
    }

    /// Send an RFC 4733 digit in the leg's stream (needs a telephone-event PT).
    /// Records room `room`'s mix into `tap` (None: stops), on the worker of `via`, a
    /// leg in the room (that worker mixes the room; one tap, so one copy of each frame).
    pub fn tap_room(&self, via: LegId, room: RoomId, tap: Option<crate::recorder::Tap>) {
        self.to_leg(via, Command::Tap(room, tap));
    }

    /// Streams room `room`'s mix live (None: stops), on the worker of `via`, a leg in
    /// the room (as [`Self::tap_room`]); the stream's playback is mixed in as a speaker
    /// everyone in the room hears. See [`crate::live`].
    pub fn live_room(&self, via: LegId, room: RoomId, live: Option<crate::live::LiveAudio>) {
        self.to_leg(via, Command::LiveRoom(room, live));
    }

    /// Streams what the leg says and/or hears live (None: stops), while it is in a
    /// room; the stream's playback is mixed into what it hears.
    pub fn live_leg(&self, leg: LegId, live: Option<crate::live::LiveAudio>) {
        self.to_leg(leg, Command::LiveLeg(leg, live));
    }

    /// Plays a prompt to one leg, over whatever it hears (see [`crate::player`]); it
    /// replaces a prompt playing there. Returns at once; the reader thread opens the
    /// file. The end comes as [`MediaEvent::PromptEnded`].
    pub fn play(&self, leg: LegId, spec: PromptSpec) -> PromptId {
        let id = PromptId(self.shared.next_prompt.fetch_add(1, Ordering::Relaxed));
        let playing = self.shared.prompts.open(id, spec);
        self.to_leg(leg, Command::Play(PromptTarget::Leg(leg), Box::new(playing)));
        id
    }

    /// Plays a prompt into a room's mix: everyone there hears it. Every worker mixes
    /// its own share of the room, so each gets its own reading of the prompt (they run
    /// in step: one frame per tick from the same start) and each reports the end.
    pub fn play_to_room(&self, room: RoomId, mut spec: PromptSpec) -> PromptId {
        spec.barge_in = false;
        let id = PromptId(self.shared.next_prompt.fetch_add(1, Ordering::Relaxed));
        for w in 0..self.shared.links.len() {
            let playing = self.shared.prompts.open(id, spec.clone());
            self.send(w, WorkerMsg::Core(Command::Play(PromptTarget::Room(room), Box::new(playing))));
        }
        id
    }

    /// Starts a WAV file (see [`crate::recorder`]): the tap to give [`Self::tap_room`]
    /// or [`Self::record_leg`], and the id its [`MediaEvent::RecordingFinished`] will
    /// carry once every clone of the tap is dropped. The writer thread creates the file.
    pub fn start_recording(&self, path: &std::path::Path) -> io::Result<(u64, crate::recorder::Tap)> {
        let id = self.shared.next_recording.fetch_add(1, Ordering::Relaxed);
        let events = self.shared.events.clone();
        let tap = crate::recorder::start_notify(path, move |s| {
            events(MediaEvent::RecordingFinished { recording: id, samples: s.samples, dropped: s.dropped, failed: s.error.is_some() })
        })?;
        Ok((id, tap))
    }

    /// Records what the leg says into `tap` (None: stops), every tick while it is in a
    /// room (a participant's own track).
    pub fn record_leg(&self, leg: LegId, tap: Option<crate::recorder::Tap>) {
        self.to_leg(leg, Command::RecordLeg(leg, tap));
    }

    /// Gain on what the leg says (into its room) and on what it hears, in dB; 0 = none.
    pub fn set_gain(&self, leg: LegId, in_db: f32, out_db: f32) {
        self.to_leg(leg, Command::SetGain { leg, in_db, out_db });
    }

    /// Stops the leg's prompt if it is `id` (None: whichever plays).
    pub fn stop_prompt(&self, leg: LegId, id: Option<PromptId>) {
        self.to_leg(leg, Command::StopPrompt(PromptTarget::Leg(leg), id));
    }

    /// Stops the room's prompt if it is `id` (None: whichever plays).
    pub fn stop_room_prompt(&self, room: RoomId, id: Option<PromptId>) {
        for w in 0..self.shared.links.len() {
            self.send(w, WorkerMsg::Core(Command::StopPrompt(PromptTarget::Room(room), id)));
        }
    }

    pub fn send_dtmf(&self, leg: LegId, digit: char, duration_ms: u32) {
        self.to_leg(leg, Command::SendDtmf { leg, digit, duration_ms });
    }

    /// Stop media and (per-leg mode) return the ports to the pool.
    pub fn release(&self, leg: LegId) {
        if self.shared.mode == PortMode::PerLeg {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.returning += 1;
        }
        self.shared.in_use.fetch_sub(1, Ordering::AcqRel);
        self.to_leg(leg, Command::Release(leg));
    }

    /// Legs allocated and not released (in per-leg mode, also the port pairs taken).
    pub fn ports_in_use(&self) -> usize {
        self.shared.in_use.load(Ordering::Acquire)
    }

    /// The port mode the engine runs in.
    pub fn port_mode(&self) -> PortMode {
        self.shared.mode
    }
}

/// Kernel buffer of a per-leg RTP socket.
const PER_LEG_SOCKET_BUFFER: i32 = 256 * 1024;

fn bind_pair(ip: IpAddr, port: u16, buffer: i32) -> io::Result<PortPair> {
    let rtp = UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    sys::set_buffers(rtp.as_raw_fd(), buffer);
    Ok(PortPair { port, rtp, rtcp })
}

/// A leg's own port pair (per-leg mode).
struct LegSockets {
    leg: LegId,
    pair: PortPair,
}

/// How a worker's legs map to sockets.
enum LegIo {
    /// Each leg its own pair, all in the worker's epoll; token = slot << 1 | is_rtcp.
    PerLeg { sockets: Vec<Option<LegSockets>>, free_slots: Vec<usize>, slot_of: HashMap<LegId, usize> },
    /// One pair for all the worker's legs, drained by polling; legs found by source.
    Shared { pair: PortPair, demux: Demux, reported_unmatched: u64 },
}

struct Worker {
    index: usize,
    core: MediaCore,
    epoll: sys::Epoll,
    waker: Arc<sys::Waker>,
    commands: mpsc::Receiver<WorkerMsg>,
    io: LegIo,
    recv: sys::RecvBatch,
    send: sys::SendBatch,
    ready: Vec<u64>,
    shared: Arc<Shared>,
    barrier: Arc<TickBarrier>,
    publications: Arc<Vec<[RwLock<Publication>; 2]>>,
    events: EventSink,
    next_tick: Instant,
    tick: u64,
}

impl Worker {
    fn run(mut self) {
        let mut backlog = false;
        loop {
            // 1. Wait for packets (per-leg mode), a command, or the next tick; in shared
            //    mode at most SHARED_POLL, then drain the shared sockets.
            let mut timeout = self.next_tick.saturating_duration_since(Instant::now());
            if let LegIo::Shared { .. } = self.io {
                timeout = if backlog { Duration::ZERO } else { timeout.min(SHARED_POLL) };
            }
            self.ready.clear();
            self.ready.extend(self.epoll.wait(timeout));
            let now = Instant::now();
            // 2. Control commands first: the engine queues a leg's AddLeg and Configure
            //    before it sends the SDP answer, so by the time the leg's first packet
            //    is read, its SDP address is known (shared-port latching depends on it).
            while let Ok(msg) = self.commands.try_recv() {
                self.control(now, msg);
            }
            // 3. Read what arrived.
            for i in 0..self.ready.len() {
                let token = self.ready[i];
                if token == WAKE_TOKEN {
                    self.waker.drain();
                } else {
                    self.read_leg_socket(now, token);
                }
            }
            backlog = self.read_shared(now);
            // 4. The tick.
            let now = Instant::now();
            if now >= self.next_tick {
                if self.run_tick(now) {
                    self.drain_outputs();
                    break;
                }
                self.next_tick += TICK;
                if now > self.next_tick + 5 * TICK {
                    // We fell far behind (machine stalled): resynchronise instead of
                    // bursting; the barrier keeps workers in step anyway.
                    self.next_tick = now + TICK;
                }
            }
            // 5. Send what the core produced.
            self.drain_outputs();
        }
        // Return the ports of legs still allocated.
        if let LegIo::PerLeg { sockets, .. } = &mut self.io {
            for s in sockets.drain(..).flatten() {
                let port = s.pair.port;
                drop(s.pair);
                self.shared.return_port(port);
            }
        }
    }

    /// Per-leg mode: read everything waiting on one leg's socket. Cost per datagram:
    /// one recvmmsg slot, one core input; a syscall per batch of up to RECV_BATCH
    /// datagrams (in practice one or two datagrams per call).
    fn read_leg_socket(&mut self, now: Instant, token: u64) {
        let LegIo::PerLeg { sockets, .. } = &self.io else { return };
        let slot = (token >> 1) as usize;
        let socket = if token & 1 == 1 { Socket::Rtcp } else { Socket::Rtp };
        let Some(Some(s)) = sockets.get(slot) else { return };
        let fd = if socket == Socket::Rtp { s.pair.rtp.as_raw_fd() } else { s.pair.rtcp.as_raw_fd() };
        let leg = s.leg;
        loop {
            let n = self.recv.recv(fd);
            for i in 0..n {
                let (from, data) = self.recv.get(i);
                if let Some(from) = from {
                    self.core.handle_input(now, Input::Receive { leg, socket, from, data });
                }
            }
            if n < RECV_BATCH {
                break;
            }
        }
    }

    /// Shared-port mode: drain both shared sockets, each datagram to the leg its source
    /// belongs to. Cost per datagram: 1/RECV_BATCH of a syscall, one hash lookup, one
    /// core input. Stops early, with data still queued, when the tick is due (the tick
    /// keeps its pace; the rest is read right after it) or after SHARED_DRAIN_CALLS
    /// calls; returns true then.
    fn read_shared(&mut self, now: Instant) -> bool {
        let fds = match &self.io {
            LegIo::Shared { pair, .. } => [pair.rtp.as_raw_fd(), pair.rtcp.as_raw_fd()],
            LegIo::PerLeg { .. } => return false,
        };
        let mut backlog = false;
        for (socket, fd) in [(Socket::Rtp, fds[0]), (Socket::Rtcp, fds[1])] {
            let mut calls = 0;
            loop {
                let n = self.recv.recv(fd);
                if n > 0 {
                    // A leg's setup queued before its phone's packet was sent is in the
                    // queue by now: apply it before matching, or a packet that arrived
                    // between the command drain and this read would find no leg.
                    while let Ok(msg) = self.commands.try_recv() {
                        self.control(now, msg);
                    }
                }
                let LegIo::Shared { demux, .. } = &mut self.io else { return false };
                for i in 0..n {
                    let (from, data) = self.recv.get(i);
                    let Some(from) = from else { continue };
                    let leg = if socket == Socket::Rtp { demux.rtp_leg(from) } else { demux.rtcp_leg(from) };
                    if let Some(leg) = leg {
                        self.core.handle_input(now, Input::Receive { leg, socket, from, data });
                    }
                }
                calls += 1;
                if n < RECV_BATCH {
                    break;
                }
                if calls == SHARED_DRAIN_CALLS || Instant::now() >= self.next_tick {
                    backlog = true;
                    break;
                }
            }
        }
        let LegIo::Shared { demux, reported_unmatched, .. } = &mut self.io else { return backlog };
        // Rate-limited: at most one line per 1,000 unmatched datagrams.
        if demux.unmatched >= *reported_unmatched + 1_000 || (*reported_unmatched == 0 && demux.unmatched > 0) {
            tracing::debug!(worker = self.index, unmatched = demux.unmatched, legs = demux.len(), "media: datagrams from unknown sources dropped");
            *reported_unmatched = demux.unmatched;
        }
        backlog
    }

    fn control(&mut self, now: Instant, msg: WorkerMsg) {
        match (&mut self.io, msg) {
            (LegIo::PerLeg { sockets, free_slots, slot_of }, WorkerMsg::AddLeg { leg, pair: Some(pair) }) => {
                let local_rtp = pair.rtp.local_addr().unwrap_or_else(|_| SocketAddr::new(self.shared.bind_ip, pair.port));
                let slot = free_slots.pop().unwrap_or_else(|| {
                    sockets.push(None);
                    sockets.len() - 1
                });
                let ok = self.epoll.add(pair.rtp.as_raw_fd(), (slot as u64) << 1).is_ok()
                    && self.epoll.add(pair.rtcp.as_raw_fd(), ((slot as u64) << 1) | 1).is_ok();
                if !ok {
                    tracing::warn!(leg = leg.0, "media: cannot watch leg sockets");
                }
                sockets[slot] = Some(LegSockets { leg, pair });
                slot_of.insert(leg, slot);
                self.core.handle_input(now, Input::Command(Command::AddLeg { leg, local_rtp }));
            }
            (LegIo::Shared { demux, .. }, WorkerMsg::AddLeg { leg, .. }) => {
                demux.add(leg);
                let local_rtp = self.shared.worker_rtp[self.index];
                self.core.handle_input(now, Input::Command(Command::AddLeg { leg, local_rtp }));
            }
            (LegIo::PerLeg { .. }, WorkerMsg::AddLeg { leg, pair: None }) => {
                tracing::warn!(leg = leg.0, "media: leg without a port pair in per-leg mode");
            }
            (LegIo::PerLeg { sockets, free_slots, slot_of }, WorkerMsg::Core(Command::Release(leg))) => {
                self.core.handle_input(now, Input::Command(Command::Release(leg)));
                if let Some(slot) = slot_of.remove(&leg) {
                    if let Some(s) = sockets[slot].take() {
                        self.epoll.remove(s.pair.rtp.as_raw_fd());
                        self.epoll.remove(s.pair.rtcp.as_raw_fd());
                        let port = s.pair.port;
                        drop(s.pair);
                        self.shared.return_port(port);
                    }
                    free_slots.push(slot);
                } else {
                    // Unknown leg (double release): the returning count must still drop.
                    let mut p = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
                    p.returning = p.returning.saturating_sub(1);
                }
            }
            (LegIo::Shared { demux, .. }, WorkerMsg::Core(Command::Release(leg))) => {
                demux.remove(leg);
                self.core.handle_input(now, Input::Command(Command::Release(leg)));
            }
            (LegIo::Shared { demux, .. }, WorkerMsg::Core(Command::Configure(leg, p))) => {
                demux.configure(leg, p.remote);
                self.core.handle_input(now, Input::Command(Command::Configure(leg, p)));
            }
            (_, WorkerMsg::Core(c)) => self.core.handle_input(now, Input::Command(c)),
        }
    }

    /// Both tick phases around the barrier. Returns true when the engine stops.
    fn run_tick(&mut self, now: Instant) -> bool {
        let parity = (self.tick & 1) as usize;
        self.tick += 1;
        {
            let mut mine = self.publications[self.index][parity].write().unwrap_or_else(|e| e.into_inner());
            self.core.tick_publish(now, &mut mine);
        }
        let stop = self.barrier.wait();
        if stop {
            return true;
        }
        let guards: Vec<_> =
            self.publications.iter().map(|p| p[parity].read().unwrap_or_else(|e| e.into_inner())).collect();
        let refs: Vec<&Publication> = guards.iter().map(|g| &**g).collect();
        self.core.tick_mix(now, &refs);
        false
    }

    /// Hand events to the engine and queue packets for sendmmsg. In shared-port mode
    /// every RTP packet goes out of the same socket, so a tick's packets leave in
    /// runs of SEND_BATCH per sendmmsg.
    fn drain_outputs(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Event(e) => (self.events)(e),
                Output::Transmit(t) => {
                    let pair = match &self.io {
                        LegIo::Shared { pair, .. } => pair,
                        LegIo::PerLeg { sockets, slot_of, .. } => {
                            let Some(&slot) = slot_of.get(&t.leg) else { continue };
                            let Some(s) = sockets[slot].as_ref() else { continue };
                            &s.pair
                        }
                    };
                    let fd = if t.socket == Socket::Rtp { pair.rtp.as_raw_fd() } else { pair.rtcp.as_raw_fd() };
                    self.send.push(fd, &t.dest, t.data);
                }
            }
        }
        self.send.flush();
    }
}
