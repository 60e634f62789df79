//! The media runtime: worker threads that own the RTP/RTCP sockets and drive one
//! [`MediaCore`] each, and the [`MediaHandle`] the signalling engine uses to control
//! them.
//!
//! Threads: `workers` media threads (default: one per core), nothing else. Each worker
//! runs the loop written down in [`crate::engine`]: epoll over its legs' sockets and a
//! wake-up eventfd, `recvmmsg` per readable socket, its command queue drained between
//! I/O batches, the 20 ms tick (aligned across workers by a barrier so that rooms can
//! span workers), and `sendmmsg` of everything the core produced.
//!
//! Control never waits on media: [`MediaHandle`] methods push a command onto the owning
//! worker's queue and poke its eventfd. Only [`MediaHandle::allocate`] does real work
//! on the caller's thread: binding the port pair (so the SDP answer has the address
//! at once). A leg lives on one worker for its whole life: the worker index is encoded
//! in the low byte of its [`LegId`]; legs are spread round-robin.

mod sys;

use crate::engine::{Attachment, Command, CoreConfig, Input, LegId, LegParams, MediaCore, MediaEvent, Output, RoomId, Socket};
use crate::mixer::Publication;
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
const RECV_BATCH: usize = 32;
/// Datagrams queued per `sendmmsg` flush.
const SEND_BATCH: usize = 256;
/// Max legs per worker is unbounded; bits of the LegId reserved for the worker index.
const WORKER_BITS: u32 = 8;
const WAKE_TOKEN: u64 = u64::MAX;

#[derive(Clone, Debug)]
pub struct MediaConfig {
    pub bind_ip: IpAddr,
    /// Inclusive range; RTP ports are the even ones, RTCP = RTP + 1.
    pub rtp_ports: (u16, u16),
    /// 0 = one per available core.
    pub workers: usize,
    /// No RTP for this long => [`MediaEvent::RtpTimeout`].
    pub rtp_timeout: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            rtp_ports: (20_000, 29_999),
            workers: 0,
            rtp_timeout: Duration::from_secs(60),
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

enum WorkerMsg {
    AddLeg { leg: LegId, port: u16, rtp: UdpSocket, rtcp: UdpSocket },
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
    stopped: AtomicBool,
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
        let free: VecDeque<u16> = (first..hi).step_by(2).filter(|p| p.checked_add(1).is_some_and(|r| r <= hi)).collect();
        if free.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "RTP port range holds no even/odd pair"));
        }
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
            stopped: AtomicBool::new(false),
        });
        let start = Instant::now() + TICK;
        let mut threads = Vec::with_capacity(n);
        for (index, (rx, waker)) in receivers.into_iter().enumerate() {
            let worker = Worker {
                index,
                core: MediaCore::new(CoreConfig { rtp_timeout: cfg.rtp_timeout, ..CoreConfig::default() }),
                epoll: sys::Epoll::new(1024)?,
                waker,
                commands: rx,
                sockets: Vec::new(),
                free_slots: Vec::new(),
                slot_of: HashMap::new(),
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

    /// Bind an RTP/RTCP port pair from the range; returns the leg id and the local RTP
    /// address for SDP. Waits (briefly) only when the pool is empty but released ports
    /// are on their way back from a worker.
    pub fn allocate(&self) -> Result<LegMedia, MediaError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(MediaError::Stopped);
        }
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
            match bind_pair(self.shared.bind_ip, port) {
                Ok((rtp, rtcp)) => {
                    drop(pool);
                    let rtp_addr = rtp.local_addr().map_err(MediaError::Io)?;
                    let n = self.shared.links.len();
                    let worker = self.shared.next_worker.fetch_add(1, Ordering::Relaxed) % n;
                    let seq = self.shared.next_leg.fetch_add(1, Ordering::Relaxed);
                    let id = LegId((seq << WORKER_BITS) | worker as u64);
                    self.shared.in_use.fetch_add(1, Ordering::AcqRel);
                    self.send(worker, WorkerMsg::AddLeg { leg: id, port, rtp, rtcp });
                    return Ok(LegMedia { id, rtp_addr });
                }
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
    pub fn send_dtmf(&self, leg: LegId, digit: char, duration_ms: u32) {
        self.to_leg(leg, Command::SendDtmf { leg, digit, duration_ms });
    }

    /// Stop media and return the ports to the pool.
    pub fn release(&self, leg: LegId) {
        {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.returning += 1;
        }
        self.shared.in_use.fetch_sub(1, Ordering::AcqRel);
        self.to_leg(leg, Command::Release(leg));
    }

    /// Legs allocated and not released.
    pub fn ports_in_use(&self) -> usize {
        self.shared.in_use.load(Ordering::Acquire)
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    sys::set_buffers(rtp.as_raw_fd(), 256 * 1024);
    Ok((rtp, rtcp))
}

struct LegSockets {
    leg: LegId,
    port: u16,
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

struct Worker {
    index: usize,
    core: MediaCore,
    epoll: sys::Epoll,
    waker: Arc<sys::Waker>,
    commands: mpsc::Receiver<WorkerMsg>,
    sockets: Vec<Option<LegSockets>>,
    free_slots: Vec<usize>,
    slot_of: HashMap<LegId, usize>,
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
        loop {
            // 1. Wait for packets, a command, or the next tick.
            let timeout = self.next_tick.saturating_duration_since(Instant::now());
            self.ready.clear();
            self.ready.extend(self.epoll.wait(timeout));
            let now = Instant::now();
            for i in 0..self.ready.len() {
                let token = self.ready[i];
                if token == WAKE_TOKEN {
                    self.waker.drain();
                } else {
                    self.read_socket(now, token);
                }
            }
            // 2. Control commands, between I/O batches.
            while let Ok(msg) = self.commands.try_recv() {
                self.control(now, msg);
            }
            // 3. The tick.
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
            // 4. Send what the core produced.
            self.drain_outputs();
        }
        // Return the ports of legs still allocated.
        for s in self.sockets.drain(..).flatten() {
            drop((s.rtp, s.rtcp));
            self.shared.return_port(s.port);
        }
    }

    /// Read everything waiting on one socket. Cost per datagram: one recvmmsg slot,
    /// one core input; a syscall per batch of up to RECV_BATCH datagrams.
    fn read_socket(&mut self, now: Instant, token: u64) {
        let slot = (token >> 1) as usize;
        let socket = if token & 1 == 1 { Socket::Rtcp } else { Socket::Rtp };
        let Some(Some(s)) = self.sockets.get(slot) else { return };
        let fd = if socket == Socket::Rtp { s.rtp.as_raw_fd() } else { s.rtcp.as_raw_fd() };
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

    fn control(&mut self, now: Instant, msg: WorkerMsg) {
        match msg {
            WorkerMsg::AddLeg { leg, port, rtp, rtcp } => {
                let local_rtp = rtp.local_addr().unwrap_or_else(|_| SocketAddr::new(self.shared.bind_ip, port));
                let slot = self.free_slots.pop().unwrap_or_else(|| {
                    self.sockets.push(None);
                    self.sockets.len() - 1
                });
                let ok = self.epoll.add(rtp.as_raw_fd(), (slot as u64) << 1).is_ok()
                    && self.epoll.add(rtcp.as_raw_fd(), ((slot as u64) << 1) | 1).is_ok();
                if !ok {
                    tracing::warn!(leg = leg.0, "media: cannot watch leg sockets");
                }
                self.sockets[slot] = Some(LegSockets { leg, port, rtp, rtcp });
                self.slot_of.insert(leg, slot);
                self.core.handle_input(now, Input::Command(Command::AddLeg { leg, local_rtp }));
            }
            WorkerMsg::Core(Command::Release(leg)) => {
                self.core.handle_input(now, Input::Command(Command::Release(leg)));
                if let Some(slot) = self.slot_of.remove(&leg) {
                    if let Some(s) = self.sockets[slot].take() {
                        self.epoll.remove(s.rtp.as_raw_fd());
                        self.epoll.remove(s.rtcp.as_raw_fd());
                        drop((s.rtp, s.rtcp));
                        self.shared.return_port(s.port);
                    }
                    self.free_slots.push(slot);
                } else {
                    // Unknown leg (double release): the returning count must still drop.
                    let mut p = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
                    p.returning = p.returning.saturating_sub(1);
                }
            }
            WorkerMsg::Core(c) => self.core.handle_input(now, Input::Command(c)),
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

    /// Hand events to the engine and queue packets for sendmmsg.
    fn drain_outputs(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Event(e) => (self.events)(e),
                Output::Transmit(t) => {
                    let Some(&slot) = self.slot_of.get(&t.leg) else { continue };
                    let Some(s) = self.sockets[slot].as_ref() else { continue };
                    let fd = if t.socket == Socket::Rtp { s.rtp.as_raw_fd() } else { s.rtcp.as_raw_fd() };
                    self.send.push(fd, &t.dest, t.data);
                }
            }
        }
        self.send.flush();
    }
}
