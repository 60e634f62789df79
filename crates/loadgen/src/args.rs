//! Command-line options of `sb-load` (hand-rolled: a dozen flags do not need a parser
//! crate). `sb-load --help` prints [`USAGE`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

pub const USAGE: &str = "\
sb-load: place N real SIP calls (UDP, INVITE with PCMU SDP -> 200 -> ACK, BYE at the end),
stream G.711 RTP at 20 ms on every call, and measure what comes back.

  --target URI            Request-URI; '{room}' is replaced by the room number and
                          '{call}' by the call's index (0-based, six digits),
                          e.g. 'sip:conf-{room}@127.0.0.1:5060' or sip:echo@127.0.0.1:5060
  --rooms R --per-room K  R rooms of K participants (N = R*K); needs '{room}'
  --calls N               N calls to the target (no rooms)
  --room-base B           first room number (default 1)
  --rate CPS              call setups per second (default 200); BYEs go at the same rate
  --max-pending P         INVITEs without a final answer at once (default 2*rate)
  --speakers-per-room S   participants 0..S-1 of each room send a tone; the others send
                          low-level noise (see --silence). Default 3 with rooms, all with --calls
  --silence noise|none    what non-speakers send: noise = comfort-noise-level random
                          samples (about -50 dBFS, so the server decodes and mixes real
                          frames), none = nothing (default noise)
  --warmup S              seconds of media after the last setup before measuring (default 3)
  --duration S            measurement window in seconds (default 20)
  --threads T             RTP threads (default 1)
  --local-ip IP           our address for SIP and RTP (default 127.0.0.2, so our RTP ports
                          never collide with a server bound to 127.0.0.1)
  --rtp-base PORT         first local RTP port; participant i uses the next free even port
                          (default 45000)
  --sip-port PORT         our SIP port (default 0 = any)
  --send raw|socket       raw: one IP_HDRINCL raw socket per thread and sendmmsg over all its
                          participants (needs CAP_NET_RAW); socket: one sendto per packet
                          from the participant's own socket. Default raw, socket if raw fails
  --rx-interval-ms MS     drain receive queues every MS ms (default 100; arrival times come
                          from kernel timestamps, so this only sets batching)
  --rx-poll scan|epoll    how receive queues are found: scan = recvmmsg on every
                          participant's socket each interval; epoll = the sockets sit in an
                          epoll set and only ready ones are read. On loopback the kernel
                          delivers our packets inside the server's send call, so epoll's
                          per-packet wake-up bookkeeping is charged to the server's CPU;
                          scan avoids that (default scan)
  --server-pid PID        report this process's CPU over the measurement window
  --report-every S        progress line every S seconds (default 5)
  --t1-ms MS              SIP T1 for INVITE/BYE retransmission (default 500); timer B = 64*T1
  --help

Two-party calls (sb-load is both ends of every call):
  --answer-on IP:PORT     also run the callees: a UAS on IP:PORT, which the server must
                          use as its gateway ('--gateway sip:IP:PORT', and the callers'
                          address in [security] trusted_networks so they may dial numbers
                          without digest). Needs --calls N and a number target such as
                          'sip:+1555{call}@127.0.0.1:5060': the server bridges call i to
                          the gateway, callee i answers (200 + SDP; no 1xx), and its RTP
                          flows from the ACK until the server's BYE. Both groups' streams
                          are measured; with --server-pid the summary gives calls per
                          server core (calls / CPU-seconds per second of the window).
  --callee-codec C        what the callees answer with: pcmu (both legs PCMU: the
                          server's relay path), pcma, g722 or opus (transcoded against
                          the callers' PCMU). Default pcmu
  --callee-voice V        what the callees send: noise (about -50 dBFS, a listening
                          party; default) or tone (440 Hz). The callers send a tone
Prints progress lines, a summary, and one final line 'RESULT {json}'.";

#[derive(Debug, Clone)]
pub enum Silence {
    Noise,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RxPoll {
    Scan,
    Epoll,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SendMode {
    Raw,
    Socket,
}

#[derive(Debug, Clone)]
pub struct Args {
    pub target: String,
    /// Rooms and participants per room; `--calls N` is one "room" of N with no '{room}'.
    pub rooms: u32,
    pub per_room: u32,
    pub room_base: u32,
    pub rate: f64,
    pub max_pending: usize,
    pub speakers_per_room: u32,
    pub silence: Silence,
    pub warmup: Duration,
    pub duration: Duration,
    pub threads: usize,
    pub local_ip: Ipv4Addr,
    pub rtp_base: u16,
    pub sip_port: u16,
    pub send: SendMode,
    pub rx_interval_ms: u64,
    pub rx_poll: RxPoll,
    pub server_pid: Option<u32>,
    pub report_every: Duration,
    pub t1: Duration,
    /// Where SIP goes: host:port of the target URI (must be an IPv4 literal).
    pub server: SocketAddr,
    /// Two-party mode: the callees' SIP address (the server's gateway).
    pub answer_on: Option<SocketAddrV4>,
    pub callee_codec: String,
    pub callee_tone: bool,
}

impl Args {
    pub fn calls(&self) -> usize {
        self.rooms as usize * self.per_room as usize
    }
    pub fn has_rooms(&self) -> bool {
        self.target.contains("{room}")
    }
    /// The Request-URI for participant `i`.
    pub fn uri_for(&self, i: usize) -> String {
        let room = self.room_base as usize + i / self.per_room as usize;
        self.target
            .replace("{room}", &room.to_string())
            .replace("{call}", &format!("{i:06}"))
    }
}

pub fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut target = None;
    let (mut rooms, mut per_room, mut calls) = (None, None, None);
    let mut a = Args {
        target: String::new(),
        rooms: 1,
        per_room: 1,
        room_base: 1,
        rate: 200.0,
        max_pending: 0,
        speakers_per_room: u32::MAX,
        silence: Silence::Noise,
        warmup: Duration::from_secs(3),
        duration: Duration::from_secs(20),
        threads: 1,
        local_ip: Ipv4Addr::new(127, 0, 0, 2),
        rtp_base: 45000,
        sip_port: 0,
        send: SendMode::Raw,
        rx_interval_ms: 100,
        rx_poll: RxPoll::Scan,
        server_pid: None,
        report_every: Duration::from_secs(5),
        t1: Duration::from_millis(500),
        server: "127.0.0.1:5060".parse().unwrap(),
        answer_on: None,
        callee_codec: "pcmu".into(),
        callee_tone: false,
    };
    let mut speakers = None;
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--target" => target = Some(val()?),
            "--rooms" => rooms = Some(num(val()?)? as u32),
            "--per-room" => per_room = Some(num(val()?)? as u32),
            "--calls" => calls = Some(num(val()?)? as u32),
            "--room-base" => a.room_base = num(val()?)? as u32,
            "--rate" => a.rate = num(val()?)?,
            "--max-pending" => a.max_pending = num(val()?)? as usize,
            "--speakers-per-room" => speakers = Some(num(val()?)? as u32),
            "--silence" => {
                a.silence = match val()?.as_str() {
                    "noise" => Silence::Noise,
                    "none" => Silence::None,
                    v => return Err(format!("--silence: noise or none, not {v}")),
                }
            }
            "--warmup" => a.warmup = Duration::from_secs_f64(num(val()?)?),
            "--duration" => a.duration = Duration::from_secs_f64(num(val()?)?),
            "--threads" => a.threads = (num(val()?)? as usize).max(1),
            "--local-ip" => a.local_ip = val()?.parse().map_err(|e| format!("--local-ip: {e}"))?,
            "--rtp-base" => a.rtp_base = num(val()?)? as u16,
            "--sip-port" => a.sip_port = num(val()?)? as u16,
            "--send" => {
                a.send = match val()?.as_str() {
                    "raw" => SendMode::Raw,
                    "socket" => SendMode::Socket,
                    v => return Err(format!("--send: raw or socket, not {v}")),
                }
            }
            "--rx-interval-ms" => a.rx_interval_ms = (num(val()?)? as u64).max(1),
            "--rx-poll" => {
                a.rx_poll = match val()?.as_str() {
                    "scan" => RxPoll::Scan,
                    "epoll" => RxPoll::Epoll,
                    v => return Err(format!("--rx-poll: scan or epoll, not {v}")),
                }
            }
            "--server-pid" => a.server_pid = Some(num(val()?)? as u32),
            "--report-every" => a.report_every = Duration::from_secs_f64(num(val()?)?),
            "--t1-ms" => a.t1 = Duration::from_millis(num(val()?)? as u64),
            "--answer-on" => {
                a.answer_on = Some(val()?.parse().map_err(|e| format!("--answer-on: IP:PORT, {e}"))?)
            }
            "--callee-codec" => {
                a.callee_codec = val()?.to_ascii_lowercase();
                if crate::uas::codec_named(&a.callee_codec).is_none() {
                    return Err(format!("--callee-codec: pcmu, pcma, g722 or opus, not {}", a.callee_codec));
                }
            }
            "--callee-voice" => {
                a.callee_tone = match val()?.as_str() {
                    "tone" => true,
                    "noise" => false,
                    v => return Err(format!("--callee-voice: tone or noise, not {v}")),
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    a.target = target.ok_or("--target is required")?;
    match (rooms, per_room, calls) {
        (Some(r), Some(k), None) if a.has_rooms() => {
            a.rooms = r;
            a.per_room = k;
        }
        (None, None, Some(n)) => {
            a.rooms = 1;
            a.per_room = n;
        }
        _ => {
            return Err(
                "give either --rooms R --per-room K (target with {room}) or --calls N".into(),
            )
        }
    }
    if a.calls() == 0 {
        return Err("no calls to place".into());
    }
    if a.answer_on.is_some() && (a.rooms != 1 || !a.target.contains("{call}")) {
        return Err("--answer-on needs --calls N and a target with '{call}' (e.g. 'sip:+1555{call}@127.0.0.1:5060'), so each call dials its own callee".into());
    }
    a.speakers_per_room = match speakers {
        Some(s) => s,
        None if a.has_rooms() => 3,
        None => u32::MAX,
    };
    if a.max_pending == 0 {
        a.max_pending = ((a.rate * 2.0) as usize).max(16);
    }
    a.server = server_of(&a.target.replace("{room}", "0").replace("{call}", "0"))?;
    Ok(a)
}

/// host:port of a `sip:user@host:port` URI; the host must be an IPv4 literal.
fn server_of(uri: &str) -> Result<SocketAddr, String> {
    let u = sip::parse::parse_uri(uri).map_err(|e| format!("--target: {e}"))?;
    let ip: Ipv4Addr = u
        .host
        .parse()
        .map_err(|_| format!("--target: host must be an IPv4 literal, not {}", u.host))?;
    Ok(SocketAddr::new(ip.into(), u.port.unwrap_or(5060)))
}
