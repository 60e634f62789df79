//! The gateway thread and its handle. One thread owns the ICE socket(s), every leg's
//! plain socket and all timers, and drives the legs' sans-IO cores (`leg.rs`) with the
//! loop written down in the module docs of `webrtc`.
//!
//! Why one thread: a leg is a few hundred packets a second, and a WebRTC leg costs
//! mostly crypto (SRTP both ways), which does not get cheaper by spreading; one thread
//! keeps the ICE demultiplexing (by source address, then `Rtc::accepts`) lock-free.
//! `examples/webrtc_bench.rs` measures how many legs that thread carries: about 2.5 ms
//! of CPU per leg-second (50 packets each way), ~400 legs per core. In a profile a good
//! share is the kernel waking the thread per datagram; capping wakes at 1 kHz to batch
//! them made no measurable difference at 200 legs, so the thread simply wakes per
//! datagram and adds no delay.
//!
//! Control calls that must answer with SDP at once ([`WebRtcGateway::accept_offer`],
//! [`WebRtcGateway::create_offer`]) build the leg on the caller's thread and hand it
//! over; the rest queue a command and poke the thread's eventfd.

use super::leg::{LegOutput, LegSetup, WebRtcLeg};
use super::{GatewayConfig, GatewayError, GatewayEvent, PlainCodec, PlainSide, WebRtcId, WebRtcStats};
use crate::player::{PromptId, PromptReader, PromptSpec};
use crate::runtime::sys::{Epoll, RecvBatch, Waker};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use str0m::net::{Protocol, Receive};
use str0m::Input;

const WAKE_TOKEN: u64 = u64::MAX;
/// Tokens of ICE sockets: this bit plus the socket's index. Leg ids stay below it.
const ICE_TOKEN: u64 = 1 << 62;
/// Datagrams read per `recvmmsg`.
const RECV_BATCH: usize = 32;
/// Kernel receive buffer of the shared ICE socket (all legs' browser traffic).
const ICE_SOCKET_BUFFER: i32 = 4 << 20;

/// The gateway: a cheap, cloneable handle to its thread.
#[derive(Clone)]
pub struct WebRtcGateway {
    shared: Arc<Shared>,
}

struct Shared {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    setup: LegSetup,
    relay_ip: IpAddr,
    local_ice: SocketAddr,
    next_id: AtomicU64,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        self.waker.wake();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

enum Command {
    Add { leg: Box<WebRtcLeg>, plain: UdpSocket },
    AcceptAnswer { id: WebRtcId, sdp: String, reply: mpsc::SyncSender<Result<PlainSide, GatewayError>> },
    SetPlainRemote(WebRtcId, SocketAddr),
    SetForwarding(WebRtcId, bool),
    Dtmf(WebRtcId, String, u32),
    Inject(WebRtcId, PromptSpec),
    Close(WebRtcId),
    Stats(WebRtcId, mpsc::SyncSender<Option<WebRtcStats>>),
    Stop,
}

impl WebRtcGateway {
    /// Bind the ICE socket(s) and start the gateway thread.
    pub fn start(cfg: GatewayConfig) -> io::Result<(WebRtcGateway, mpsc::Receiver<GatewayEvent>)> {
        if cfg.candidates.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no ICE candidates configured"));
        }
        let ice = bind_ice(&cfg)?;
        let candidates: Vec<SocketAddr> = if cfg.bind.ip().is_unspecified() {
            ice.iter().map(|(_, a)| *a).collect()
        } else {
            cfg.candidates.iter().map(|ip| SocketAddr::new(*ip, ice[0].1.port())).collect()
        };
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| io::Error::other("DTLS certificate generation failed"))?;
        let setup = LegSetup { candidates, media_timeout: cfg.media_timeout, connect_timeout: cfg.connect_timeout, crypto, cert };
        let local_ice = ice[0].0.local_addr()?;
        let waker = Arc::new(Waker::new()?);
        let (commands, command_rx) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let mut worker = Worker::new(ice, waker.clone(), command_rx, events_tx)?;
        let thread = std::thread::Builder::new().name("webrtc-gw".into()).spawn(move || worker.run())?;
        let shared = Shared {
            commands,
            waker,
            setup,
            relay_ip: cfg.relay_ip,
            local_ice,
            next_id: AtomicU64::new(1),
            thread: std::sync::Mutex::new(Some(thread)),
        };
        Ok((WebRtcGateway { shared: Arc::new(shared) }, events))
    }

    /// The (first) ICE socket's address.
    pub fn local_ice_addr(&self) -> SocketAddr {
        self.shared.local_ice
    }

    /// The browser offers. Returns the answer for it and the plain side for SIP.
    pub fn accept_offer(&self, browser_offer: &str, allowed: &[&str]) -> Result<(WebRtcId, String, PlainSide), GatewayError> {
        let id = self.next_id();
        let (leg, answer) = WebRtcLeg::accept_offer(id, Instant::now(), &self.shared.setup, browser_offer, allowed)?;
        let plain = self.bind_plain()?;
        let side = plain_side(&leg, plain.local_addr()?);
        self.send(Command::Add { leg: Box::new(leg), plain })?;
        Ok((id, answer, side))
    }

    /// SIP offered first: an offer for the browser with exactly these codecs.
    pub fn create_offer(&self, codecs: &[PlainCodec], telephone_event: Option<(u8, u32)>) -> Result<(WebRtcId, String), GatewayError> {
        let id = self.next_id();
        let (leg, offer) = WebRtcLeg::create_offer(id, Instant::now(), &self.shared.setup, codecs, telephone_event)?;
        let plain = self.bind_plain()?;
        self.send(Command::Add { leg: Box::new(leg), plain })?;
        Ok((id, offer))
    }

    /// The browser's answer to [`WebRtcGateway::create_offer`].
    pub fn accept_answer(&self, id: WebRtcId, browser_answer: &str) -> Result<PlainSide, GatewayError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Command::AcceptAnswer { id, sdp: browser_answer.to_owned(), reply })?;
        rx.recv().map_err(|_| GatewayError::Stopped)?
    }

    /// Where the SIP side's RTP goes (until learnt from what arrives).
    pub fn set_plain_remote(&self, id: WebRtcId, addr: SocketAddr) {
        let _ = self.send(Command::SetPlainRemote(id, addr));
    }

    /// Pause/resume relaying browser -> SIP.
    pub fn set_forwarding(&self, id: WebRtcId, on: bool) {
        let _ = self.send(Command::SetForwarding(id, on));
    }

    /// RFC 4733 digits toward SIP.
    pub fn send_dtmf(&self, id: WebRtcId, digits: &str, duration_ms: u32) {
        let _ = self.send(Command::Dtmf(id, digits.to_owned(), duration_ms));
    }

    /// Play a sound toward SIP in place of the browser's audio until it ends (WCS
    /// `inject_sound`). Files are read by a reader thread of the gateway's, never by
    /// the gateway thread; a file that cannot be read plays as nothing.
    pub fn inject(&self, id: WebRtcId, spec: PromptSpec) {
        let _ = self.send(Command::Inject(id, spec));
    }

    /// Close the leg; `Closed` follows on the event channel.
    pub fn close(&self, id: WebRtcId) {
        let _ = self.send(Command::Close(id));
    }

    pub fn stats(&self, id: WebRtcId) -> Option<WebRtcStats> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Command::Stats(id, reply)).ok()?;
        rx.recv().ok().flatten()
    }

    fn next_id(&self) -> WebRtcId {
        WebRtcId(self.shared.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn bind_plain(&self) -> io::Result<UdpSocket> {
        let s = UdpSocket::bind(SocketAddr::new(self.shared.relay_ip, 0))?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    fn send(&self, c: Command) -> Result<(), GatewayError> {
        self.shared.commands.send(c).map_err(|_| GatewayError::Stopped)?;
        self.shared.waker.wake();
        Ok(())
    }
}

fn plain_side(leg: &WebRtcLeg, local: SocketAddr) -> PlainSide {
    let te = leg.telephone_event();
    PlainSide { local, codecs: leg.codecs(), telephone_event: te.map(|t| t.0), telephone_event_clock: te.map_or(8000, |t| t.1) }
}

/// The ICE sockets and the address each is known by in ICE (the datagrams' destination).
fn bind_ice(cfg: &GatewayConfig) -> io::Result<Vec<(UdpSocket, SocketAddr)>> {
    let prepare = |s: &UdpSocket| -> io::Result<()> {
        s.set_nonblocking(true)?;
        crate::runtime::sys::set_buffers(s.as_raw_fd(), ICE_SOCKET_BUFFER);
        Ok(())
    };
    if !cfg.bind.ip().is_unspecified() {
        let s = UdpSocket::bind(cfg.bind)?;
        prepare(&s)?;
        let port = s.local_addr()?.port();
        let ip = cfg.candidates.iter().copied().find(|ip| *ip == cfg.bind.ip()).unwrap_or(cfg.candidates[0]);
        return Ok(vec![(s, SocketAddr::new(ip, port))]);
    }
    // One socket per candidate IP, all on one port; with an ephemeral port, retry when
    // the port the first socket got is taken on another address.
    let mut last_err = None;
    for _ in 0..20 {
        let mut port = cfg.bind.port();
        let mut out = Vec::new();
        let mut ok = true;
        for ip in &cfg.candidates {
            match UdpSocket::bind(SocketAddr::new(*ip, port)) {
                Ok(s) => {
                    prepare(&s)?;
                    let a = s.local_addr()?;
                    port = a.port();
                    out.push((s, a));
                }
                Err(e) if cfg.bind.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                    last_err = Some(e);
                    ok = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if ok {
            return Ok(out);
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no ICE port")))
}

struct LegEntry {
    leg: Box<WebRtcLeg>,
    plain: UdpSocket,
    /// The deadline last pushed on the timer heap (older heap entries are stale).
    deadline: Option<Instant>,
}

struct Worker {
    ice: Vec<(UdpSocket, SocketAddr)>,
    epoll: Epoll,
    waker: Arc<Waker>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<GatewayEvent>,
    legs: HashMap<u64, LegEntry>,
    /// Browser address -> leg, learnt from accepted datagrams and our transmits.
    by_source: HashMap<SocketAddr, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    batch: RecvBatch,
    ready: Vec<u64>,
    stop: bool,
    /// Reads injected sounds ahead (started on the first one).
    reader: Option<PromptReader>,
    next_prompt: u64,
}

impl Worker {
    fn new(ice: Vec<(UdpSocket, SocketAddr)>, waker: Arc<Waker>, commands: mpsc::Receiver<Command>, events: mpsc::Sender<GatewayEvent>) -> io::Result<Worker> {
        let epoll = Epoll::new(1024)?;
        epoll.add(waker.raw(), WAKE_TOKEN)?;
        for (i, (s, _)) in ice.iter().enumerate() {
            epoll.add(s.as_raw_fd(), ICE_TOKEN | i as u64)?;
        }
        Ok(Worker {
            ice,
            epoll,
            waker,
            commands,
            events,
            legs: HashMap::new(),
            by_source: HashMap::new(),
            timers: BinaryHeap::new(),
            batch: RecvBatch::new(RECV_BATCH),
            ready: Vec::with_capacity(256),
            stop: false,
            reader: None,
            next_prompt: 1,
        })
    }

    fn run(&mut self) {
        while !self.stop {
            let now = Instant::now();
            while let Some(Reverse((t, id))) = self.timers.peek().copied() {
                if t > now {
                    break;
                }
                self.timers.pop();
                if let Some(e) = self.legs.get_mut(&id) {
                    if e.deadline == Some(t) {
                        e.deadline = None;
                        e.leg.handle_timeout(now);
                        self.drain(id);
                    }
                }
            }
            let wait = self.timers.peek().map_or(Duration::from_secs(1), |Reverse((t, _))| t.saturating_duration_since(now));
            self.ready.clear();
            let ready = &mut self.ready;
            ready.extend(self.epoll.wait(wait));
            for i in 0..self.ready.len() {
                match self.ready[i] {
                    WAKE_TOKEN => self.commands(),
                    t if t & ICE_TOKEN != 0 => self.read_ice((t & !ICE_TOKEN) as usize),
                    id => self.read_plain(id),
                }
            }
        }
    }

    fn read_ice(&mut self, sock: usize) {
        let fd = self.ice[sock].0.as_raw_fd();
        let to = self.ice[sock].1;
        loop {
            let n = self.batch.recv(fd);
            let now = Instant::now();
            for i in 0..n {
                let (Some(from), data) = self.batch.get(i) else { continue };
                // Parsed once (str0m's Receive borrows the datagram), routed, then handled.
                let Ok(r) = Receive::new(Protocol::Udp, from, to, data) else { continue };
                let input = Input::Receive(now, r);
                let id = match self.by_source.get(&from) {
                    Some(id) if self.legs.contains_key(id) => Some(*id),
                    _ => {
                        // A new address: STUN is matched by ufrag, the rest by the pairs
                        // ICE has seen. Linear in legs, once per browser address.
                        let found = self.legs.iter().find(|(_, e)| e.leg.accepts_input(&input)).map(|(id, _)| *id);
                        if let Some(id) = found {
                            self.by_source.insert(from, id);
                        }
                        found
                    }
                };
                let Some(id) = id else { continue };
                if let Some(e) = self.legs.get_mut(&id) {
                    e.leg.handle_input(now, input);
                }
                self.drain(id);
            }
            if n < RECV_BATCH {
                break;
            }
        }
    }

    fn read_plain(&mut self, id: u64) {
        let Some(e) = self.legs.get(&id) else { return };
        let fd = e.plain.as_raw_fd();
        loop {
            let n = self.batch.recv(fd);
            let now = Instant::now();
            for i in 0..n {
                let (Some(from), data) = self.batch.get(i) else { continue };
                if let Some(e) = self.legs.get_mut(&id) {
                    e.leg.handle_plain(now, from, data);
                }
                self.drain(id);
            }
            if n < RECV_BATCH || !self.legs.contains_key(&id) {
                break;
            }
        }
    }

    /// Drain a leg's output until its next deadline; drop it when dead.
    fn drain(&mut self, id: u64) {
        let Some(e) = self.legs.get_mut(&id) else { return };
        loop {
            match e.leg.poll_output() {
                LegOutput::Transmit(t) => {
                    let sock = self.ice.iter().find(|(_, a)| *a == t.source).unwrap_or(&self.ice[0]);
                    let _ = sock.0.send_to(&t.contents, t.destination);
                    self.by_source.entry(t.destination).or_insert(id);
                }
                LegOutput::Plain { to, data } => {
                    let _ = e.plain.send_to(data, to);
                }
                LegOutput::Event(ev) => {
                    let _ = self.events.send(ev);
                }
                LegOutput::Timeout(t) => {
                    if e.deadline != Some(t) && !e.leg.is_dead() {
                        e.deadline = Some(t);
                        self.timers.push(Reverse((t, id)));
                    }
                    break;
                }
            }
        }
        if e.leg.is_dead() {
            self.epoll.remove(e.plain.as_raw_fd());
            self.legs.remove(&id);
            self.by_source.retain(|_, v| *v != id);
        }
    }

    fn commands(&mut self) {
        self.waker.drain();
        while let Ok(c) = self.commands.try_recv() {
            let now = Instant::now();
            match c {
                Command::Add { leg, plain } => {
                    let id = leg.id().0;
                    if let Err(e) = self.epoll.add(plain.as_raw_fd(), id) {
                        tracing::warn!("webrtc leg {id}: epoll: {e}");
                        continue;
                    }
                    self.legs.insert(id, LegEntry { leg, plain, deadline: None });
                    self.drain(id);
                }
                Command::AcceptAnswer { id, sdp, reply } => {
                    let r = match self.legs.get_mut(&id.0) {
                        None => Err(GatewayError::UnknownLeg(id)),
                        Some(e) => {
                            let r = e.leg.accept_answer(now, &sdp).and_then(|()| Ok(plain_side(&e.leg, e.plain.local_addr()?)));
                            if r.is_err() {
                                e.leg.discard();
                            }
                            r
                        }
                    };
                    let _ = reply.send(r);
                    self.drain(id.0);
                }
                Command::SetPlainRemote(id, addr) => self.with(id, |l| l.set_plain_remote(addr)),
                Command::SetForwarding(id, on) => self.with(id, |l| l.set_forwarding(on)),
                Command::Dtmf(id, digits, ms) => self.with(id, |l| l.send_dtmf(now, &digits, ms)),
                Command::Inject(id, spec) => {
                    if !self.legs.contains_key(&id.0) {
                        continue;
                    }
                    if self.reader.is_none() {
                        match PromptReader::start() {
                            Ok(r) => self.reader = Some(r),
                            Err(e) => {
                                tracing::warn!("webrtc gateway: cannot start the sound reader: {e}");
                                continue;
                            }
                        }
                    }
                    let playing = self.reader.as_ref().expect("started").open(PromptId(self.next_prompt), spec);
                    self.next_prompt += 1;
                    self.with(id, |l| {
                        if let Err(e) = l.inject(now, playing) {
                            tracing::info!(leg = %l.id(), "cannot inject a sound: {e}");
                        }
                    });
                }
                Command::Close(id) => self.with(id, |l| l.close()),
                Command::Stats(id, reply) => {
                    let _ = reply.send(self.legs.get(&id.0).map(|e| e.leg.stats()));
                }
                Command::Stop => {
                    for e in self.legs.values_mut() {
                        e.leg.close();
                    }
                    let ids: Vec<u64> = self.legs.keys().copied().collect();
                    for id in ids {
                        self.drain(id);
                    }
                    self.stop = true;
                }
            }
        }
    }

    fn with(&mut self, id: WebRtcId, f: impl FnOnce(&mut WebRtcLeg)) {
        if let Some(e) = self.legs.get_mut(&id.0) {
            f(&mut e.leg);
            self.drain(id.0);
        }
    }
}
