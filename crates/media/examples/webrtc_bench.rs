//! How many WebRTC legs the gateway's one thread carries: N str0m "browsers" over
//! loopback UDP, each a full ICE + DTLS-SRTP peer sending a 20 ms Opus-sized packet
//! (80 bytes of payload) every 20 ms; the plain side is one RTP echo socket, so every
//! packet crosses the gateway twice (browser -> plain, plain -> browser): per leg 50
//! SRTP decrypts + 50 encrypts a second, plus 100 plain-side datagrams.
//!
//!   cargo run -p media --example webrtc_bench -- [N ...]       (default 50 100 200)
//!   optional: --seconds S (measuring time per N, default 10)
//!             --codec pcmu (G.711 as relayed to a SIP phone: 160 B payloads, PT 0;
//!             default opus: 80 B, PT 111)
//!
//! For each N it prints the gateway thread's CPU (from /proc/self/task/<tid>/stat, so
//! the browsers' and the echo's CPU is not counted), the packet rates, the packets lost
//! on the round trip, and legs per core extrapolated from the CPU per leg. The browsers
//! run in this process on other threads; on a small machine they compete with the
//! gateway for cores, so watch the loss column: numbers with loss are not sustainable.

use media::runtime::sys::Epoll;
use media::webrtc::{GatewayConfig, GatewayEvent, WebRtcGateway};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// What the browsers send: the negotiated codec, its payload type, payload size and
/// RTP clock per 20 ms.
#[derive(Clone, Copy)]
struct Media {
    name: &'static str,
    pt: u8,
    payload: usize,
    ts_step: u32,
}

const OPUS: Media = Media { name: "opus", pt: 111, payload: 80, ts_step: 960 };
const PCMU: Media = Media { name: "PCMU", pt: 0, payload: 160, ts_step: 160 };
const PTIME: Duration = Duration::from_millis(20);
/// Browser sockets per browser thread.
const BROWSERS_PER_THREAD: usize = 100;

struct Browser {
    rtc: Rtc,
    sock: UdpSocket,
    addr: SocketAddr,
    mid: Mid,
    next: Instant,
    connected: bool,
    seq: u64,
    ts: u32,
}

impl Browser {
    fn drain(&mut self, received: &AtomicU64) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let _ = self.sock.send_to(&t.contents, t.destination);
                }
                Ok(Output::Timeout(t)) => {
                    self.next = t;
                    return;
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::RtpPacket(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    eprintln!("browser: {e}");
                    self.next = Instant::now() + Duration::from_secs(1);
                    return;
                }
            }
        }
    }
}

/// CPU seconds (user + system) of one thread of this process.
fn thread_cpu(tid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the ")" from field 3.
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn thread_id(name: &str) -> Option<String> {
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return Some(e.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

fn run(n: usize, seconds: u64, m: Media) {
    let (gw, events) = WebRtcGateway::start(GatewayConfig { media_timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(60), ..GatewayConfig::default() }).expect("gateway");
    // The thread names itself once it runs: look for a moment.
    let gw_tid = (0..100)
        .find_map(|_| thread_id("webrtc-gw").or_else(|| {
            std::thread::sleep(Duration::from_millis(10));
            None
        }))
        .expect("gateway thread");

    // The SIP side: one echo socket for every leg.
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    echo.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = stop.clone();
    let echo_thread = std::thread::Builder::new()
        .name("bench-echo".into())
        .spawn(move || {
            let mut buf = [0u8; 1500];
            while !echo_stop.load(Ordering::Relaxed) {
                if let Ok((len, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..len], from);
                }
            }
        })
        .unwrap();

    let t_setup = Instant::now();
    let mut browsers = Vec::with_capacity(n);
    for _ in 0..n {
        let builder = Rtc::builder().set_rtp_mode(true).clear_codecs();
        let builder = if m.pt == PCMU.pt { builder.enable_pcmu(true, false) } else { builder.enable_opus(true, false) };
        let mut rtc = builder.build(Instant::now());
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let (id, answer, _side) = gw.accept_offer(&offer.to_sdp_string(), &[m.name]).expect("accept_offer");
        rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();
        gw.set_plain_remote(id, echo_addr);
        browsers.push(Browser { rtc, sock, addr, mid, next: Instant::now(), connected: false, seq: 1, ts: 0 });
    }
    let setup_time = t_setup.elapsed();

    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let mut groups = Vec::new();
    while !browsers.is_empty() {
        let rest = browsers.split_off(browsers.len().min(BROWSERS_PER_THREAD));
        groups.push(std::mem::replace(&mut browsers, rest));
    }
    for (g, mut group) in groups.into_iter().enumerate() {
        let (sent, received, stop) = (sent.clone(), received.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("bench-browsers-{g}"))
                .spawn(move || {
                    let mut epoll = Epoll::new(group.len() + 1).unwrap();
                    for (i, b) in group.iter().enumerate() {
                        epoll.add(b.sock.as_raw_fd(), i as u64).unwrap();
                    }
                    for b in group.iter_mut() {
                        b.drain(&received);
                    }
                    let payload = vec![0x5au8; m.payload];
                    let mut next_tick = Instant::now() + PTIME;
                    let mut buf = [0u8; 2000];
                    let mut ready = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        let wake = group.iter().map(|b| b.next).min().unwrap_or(next_tick).min(next_tick);
                        ready.clear();
                        ready.extend(epoll.wait(wake.saturating_duration_since(now)));
                        for &i in &ready {
                            let b = &mut group[i as usize];
                            while let Ok((len, from)) = b.sock.recv_from(&mut buf) {
                                if let Ok(r) = Receive::new(Protocol::Udp, from, b.addr, &buf[..len]) {
                                    let _ = b.rtc.handle_input(Input::Receive(Instant::now(), r));
                                    b.drain(&received);
                                }
                            }
                        }
                        let now = Instant::now();
                        for b in group.iter_mut().filter(|b| b.next <= now) {
                            let _ = b.rtc.handle_input(Input::Timeout(now));
                            b.drain(&received);
                        }
                        if now >= next_tick {
                            next_tick += PTIME;
                            for b in group.iter_mut().filter(|b| b.connected) {
                                b.seq += 1;
                                b.ts = b.ts.wrapping_add(m.ts_step);
                                let w = RtpWrite::new(m.pt.into(), SeqNo::from(b.seq), b.ts, now, &payload[..]);
                                let mid = b.mid;
                                if let Some(tx) = b.rtc.direct_api().stream_tx_by_mid(mid, None) {
                                    tx.write_rtp(w);
                                    sent.fetch_add(1, Ordering::Relaxed);
                                }
                                b.drain(&received);
                            }
                        }
                    }
                })
                .unwrap(),
        );
    }

    // Wait for every leg to connect.
    let mut connected = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected < n && Instant::now() < deadline {
        match events.recv_timeout(Duration::from_secs(1)) {
            Ok(GatewayEvent::Connected(_)) => connected += 1,
            Ok(e) => eprintln!("unexpected {e:?}"),
            Err(_) => {}
        }
    }
    let connect_time = t_setup.elapsed();
    std::thread::sleep(Duration::from_secs(2));

    let (cpu0, s0, r0, t0) = (thread_cpu(&gw_tid), sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, s1, r1, t1) = (thread_cpu(&gw_tid), sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed), Instant::now());
    let wall = (t1 - t0).as_secs_f64();
    let cpu = (cpu1 - cpu0) / wall;
    let (s, r) = ((s1 - s0) as f64 / wall, (r1 - r0) as f64 / wall);
    let loss = if s > 0.0 { (1.0 - r / s).max(0.0) * 100.0 } else { 100.0 };
    let per_leg_us = cpu * 1e6 / n as f64;
    println!(
        "legs {n:4}  connected {connected:4} (offer/answer {:5.2} s, all connected {:5.2} s)  gateway thread CPU {:5.1}% of a core  {:7.0} pkt/s in from browsers, {:7.0} pkt/s back  round-trip loss {:5.2}%  => {:5.0} us CPU/leg/s, ~{:.0} legs/core",
        setup_time.as_secs_f64(),
        connect_time.as_secs_f64(),
        cpu * 100.0,
        s,
        r,
        loss,
        per_leg_us,
        if cpu > 0.0 { n as f64 / cpu } else { f64::INFINITY }
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = echo_thread.join();
    drop(gw);
}

fn main() {
    let mut counts = Vec::new();
    let mut seconds = 10;
    let mut media = OPUS;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args.next().and_then(|s| s.parse().ok()).expect("--seconds S");
        } else if a == "--codec" {
            media = match args.next().as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("pcmu") => PCMU,
                Some("opus") => OPUS,
                other => panic!("--codec opus|pcmu, not {other:?}"),
            };
        } else {
            counts.push(a.parse::<usize>().expect("leg count"));
        }
    }
    if counts.is_empty() {
        counts = vec![50, 100, 200];
    }
    println!(
        "webrtc_bench: {} packets ({} B, PT {}) every 20 ms each way per leg; {seconds} s per run; {} cores",
        media.name,
        media.payload,
        media.pt,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for n in counts {
        run(n, seconds, media);
    }
}
