//! The SIP side: a deliberately small UAC for many calls on one UDP socket.
//!
//! Per call: INVITE (PCMU offer) → optional 1xx → 200 → ACK; BYE → 200 at the end.
//! Calls are found by Call-ID in a `HashMap`. INVITE and BYE are retransmitted on
//! RFC 3261 timer A/E (T1, doubling; BYE capped at T2 = 4 s) until a response, and
//! given up on timer B/F (64*T1). A retransmitted 200 gets the ACK again; a non-2xx
//! final gets the hop-by-hop ACK. Requests from the server (BYE, OPTIONS, re-INVITE…)
//! are answered 200 so no call hangs on us. Messages are built with the `sip` crate's
//! model and printer, and parsed with `sip::parse::parse_datagram`.

use crate::endpoint;
use crate::stats::Histogram;
use crate::sys;
use sip::sdp::{self, Codec, Direction, LocalCapabilities, SessionDescription, SessionState};
use sip::{
    CSeq, Headers, Message, Method, NameAddr, Param, Request, Response, Transport, Uri, Via,
};
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Idle,
    /// INVITE sent, no response yet (timer A running).
    Calling,
    /// 1xx received.
    Proceeding,
    Established,
    Failed,
    /// BYE sent, waiting for its response.
    Releasing,
    Ended,
}

pub struct Call {
    pub state: CallState,
    invite: Request,
    invite_bytes: Vec<u8>,
    rtp: SocketAddrV4,
    sent_at: u64,
    retx_at: u64,
    retx_iv: u64,
    give_up_at: u64,
    /// From the 2xx: To with the server's tag, remote target, route set.
    to: Option<NameAddr>,
    target: Option<Uri>,
    route: Vec<NameAddr>,
    ack: Vec<u8>,
    bye: Vec<u8>,
    pub final_status: u16,
}

/// What happened to a call, for the RTP side.
pub enum UaEvent {
    /// 200 received; where to send RTP (None when the answer had no usable address).
    Established(usize, Option<SocketAddrV4>),
    /// The server hung up (BYE) or the call failed after being set up.
    Gone(usize),
}

#[derive(Default, Debug, Clone)]
pub struct Counters {
    pub invites: u64,
    pub invite_retx: u64,
    pub established: u64,
    pub failed: u64,
    pub timeouts: u64,
    /// Final status → count, for failures.
    pub failure_status: HashMap<u16, u64>,
    pub no_media_addr: u64,
    pub byes: u64,
    pub bye_retx: u64,
    pub bye_ok: u64,
    pub bye_failed: u64,
    pub remote_byes: u64,
    pub other_requests: u64,
    pub stray: u64,
    pub parse_errors: u64,
}

pub struct Ua {
    sock: UdpSocket,
    local: SocketAddrV4,
    server: SocketAddr,
    t1: u64,
    pub calls: Vec<Call>,
    by_id: HashMap<String, usize>,
    /// Calls with a running retransmission or give-up timer.
    pending: Vec<usize>,
    pub pending_invites: usize,
    pub pending_byes: usize,
    pub counters: Counters,
    pub setup: Histogram,
    pub events: Vec<UaEvent>,
    buf: Vec<u8>,
    run_id: u32,
    session: SessionState,
}

const T2_NS: u64 = 4_000_000_000;

impl Ua {
    pub fn new(local: SocketAddrV4, server: SocketAddr, t1_ns: u64) -> std::io::Result<Ua> {
        let (sock, local) = endpoint::bind_sip_socket(local)?;
        let run_id = media::rtp::random_u32();
        Ok(Ua {
            sock,
            local,
            server,
            t1: t1_ns,
            calls: Vec::new(),
            by_id: HashMap::new(),
            pending: Vec::new(),
            pending_invites: 0,
            pending_byes: 0,
            counters: Counters::default(),
            setup: Histogram::default(),
            events: Vec::new(),
            buf: vec![0; 65536],
            run_id,
            session: SessionState::new((run_id as u64) << 8),
        })
    }

    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    fn contact(&self) -> NameAddr {
        endpoint::contact("load", self.local)
    }

    fn via(&self, branch: &str) -> Via {
        Via {
            transport: Transport::Udp,
            host: self.local.ip().to_string(),
            port: Some(self.local.port()),
            params: vec![
                Param::new("branch", Some(branch)),
                Param {
                    name: "rport".into(),
                    value: None,
                },
            ],
        }
    }

    fn offer(&mut self, rtp: SocketAddrV4) -> Vec<u8> {
        let caps = LocalCapabilities {
            codecs: vec![Codec::pcmu()],
            telephone_event: false,
        };
        sdp::offer(
            &caps,
            SocketAddr::V4(rtp),
            Direction::SendRecv,
            &mut self.session,
        )
        .to_string()
        .into_bytes()
    }

    /// Adds call `i` (to be placed later with [`Ua::start`]).
    pub fn add_call(&mut self, request_uri: &str, rtp: SocketAddrV4) -> Result<usize, String> {
        let i = self.calls.len();
        let uri = sip::parse::parse_uri(request_uri).map_err(|e| format!("{request_uri}: {e}"))?;
        let call_id = format!("{:08x}-{i}@sb-load", self.run_id);
        let tag = format!("{:x}{i}", self.run_id);
        let headers = Headers {
            via: vec![self.via(&format!("z9hG4bK{:x}i{i}", self.run_id))],
            from: self.contact().with_tag(&tag),
            to: NameAddr::new(uri.clone()),
            call_id: call_id.clone(),
            cseq: CSeq {
                seq: 1,
                method: Method::Invite,
            },
            max_forwards: Some(70),
            contact: vec![self.contact()],
            route: Vec::new(),
            record_route: Vec::new(),
            content_type: Some("application/sdp".into()),
            extra: Vec::new(),
        };
        let body = self.offer(rtp);
        let invite = Request {
            method: Method::Invite,
            uri,
            headers,
            body,
        };
        let invite_bytes = invite.to_bytes();
        self.calls.push(Call {
            state: CallState::Idle,
            invite,
            invite_bytes,
            rtp,
            sent_at: 0,
            retx_at: 0,
            retx_iv: 0,
            give_up_at: 0,
            to: None,
            target: None,
            route: Vec::new(),
            ack: Vec::new(),
            bye: Vec::new(),
            final_status: 0,
        });
        self.by_id.insert(call_id, i);
        Ok(i)
    }

    fn send(&self, bytes: &[u8]) {
        // A full socket buffer just looks like loss; the timers retransmit.
        let _ = self.sock.send_to(bytes, self.server);
    }

    /// Sends call `i`'s INVITE.
    pub fn start(&mut self, i: usize, now: u64) {
        let c = &mut self.calls[i];
        c.state = CallState::Calling;
        c.sent_at = now;
        c.retx_iv = self.t1;
        c.retx_at = now + self.t1;
        c.give_up_at = now + 64 * self.t1;
        let _ = self.sock.send_to(&c.invite_bytes, self.server);
        self.counters.invites += 1;
        self.pending_invites += 1;
        self.pending.push(i);
    }

    /// Sends call `i`'s BYE if it is established. Returns whether one was sent.
    pub fn hang_up(&mut self, i: usize, now: u64) -> bool {
        let local_via = self.via(&format!("z9hG4bK{:x}b{i}", self.run_id));
        let c = &mut self.calls[i];
        if c.state != CallState::Established {
            return false;
        }
        let mut h = c.invite.headers.clone();
        h.via = vec![local_via];
        h.to = c.to.clone().expect("established call has a To");
        h.cseq = CSeq {
            seq: 2,
            method: Method::Bye,
        };
        h.contact.clear();
        h.content_type = None;
        h.route = c.route.clone();
        let bye = Request {
            method: Method::Bye,
            uri: c.target.clone().unwrap_or_else(|| c.invite.uri.clone()),
            headers: h,
            body: Vec::new(),
        };
        c.bye = bye.to_bytes();
        c.state = CallState::Releasing;
        c.retx_iv = self.t1;
        c.retx_at = now + self.t1;
        c.give_up_at = now + 64 * self.t1;
        let _ = self.sock.send_to(&c.bye, self.server);
        self.counters.byes += 1;
        self.pending_byes += 1;
        self.pending.push(i);
        true
    }

    /// Waits up to `timeout_ms` for the SIP socket (or `also`, the two-party callees'
    /// socket) to become readable.
    pub fn wait(&self, also: Option<std::os::fd::RawFd>, timeout_ms: i32) {
        let pfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut p = [pfd(self.sock.as_raw_fd()), pfd(also.unwrap_or(-1))];
        // SAFETY: valid pollfds (a negative fd is ignored by poll).
        unsafe { libc::poll(p.as_mut_ptr(), 2, timeout_ms) };
    }

    /// Reads and handles every datagram waiting on the SIP socket.
    pub fn receive(&mut self) {
        loop {
            let (n, from) = match self.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            match sip::parse::parse_datagram(&self.buf[..n]) {
                Ok(Message::Response(r)) => self.on_response(r),
                Ok(Message::Request(r)) => self.on_request(r, from),
                Err(_) => self.counters.parse_errors += 1,
            }
        }
    }

    fn on_response(&mut self, r: Response) {
        let Some(&i) = self.by_id.get(&r.headers.call_id) else {
            self.counters.stray += 1;
            return;
        };
        match r.headers.cseq.method {
            Method::Invite => self.on_invite_response(i, r),
            Method::Bye if r.status >= 200 => {
                let c = &mut self.calls[i];
                if c.state == CallState::Releasing {
                    c.state = CallState::Ended;
                    self.pending_byes -= 1;
                    if r.is_success() {
                        self.counters.bye_ok += 1;
                    } else {
                        self.counters.bye_failed += 1;
                        *self.counters.failure_status.entry(r.status).or_default() += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, i: usize, r: Response) {
        let waiting = matches!(
            self.calls[i].state,
            CallState::Calling | CallState::Proceeding
        );
        if r.is_provisional() {
            if self.calls[i].state == CallState::Calling {
                self.calls[i].state = CallState::Proceeding;
            }
            return;
        }
        if r.is_success() {
            if waiting {
                let c = &mut self.calls[i];
                c.to = Some(r.headers.to.clone());
                c.target = r.headers.contact.first().map(|n| n.uri.clone());
                c.route = r.headers.record_route.iter().rev().cloned().collect();
                c.final_status = r.status;
                let mut h = c.invite.headers.clone();
                h.via = vec![Via {
                    params: vec![
                        Param::new("branch", Some(format!("z9hG4bK{:x}a{i}", self.run_id))),
                        Param {
                            name: "rport".into(),
                            value: None,
                        },
                    ],
                    ..h.via[0].clone()
                }];
                h.to = r.headers.to.clone();
                h.cseq = CSeq {
                    seq: 1,
                    method: Method::Ack,
                };
                h.contact.clear();
                h.content_type = None;
                h.route = c.route.clone();
                let ack = Request {
                    method: Method::Ack,
                    uri: c.target.clone().unwrap_or_else(|| c.invite.uri.clone()),
                    headers: h,
                    body: Vec::new(),
                };
                c.ack = ack.to_bytes();
                c.state = CallState::Established;
                // Fresh clock: the reply may be read in the same loop pass that sent the INVITE.
                self.setup.record(sys::mono_ns().saturating_sub(c.sent_at));
                self.pending_invites -= 1;
                self.counters.established += 1;
                let rtp = std::str::from_utf8(&r.body)
                    .ok()
                    .and_then(|t| SessionDescription::parse(t).ok())
                    .and_then(|d| d.audio())
                    .and_then(|a| a.addr)
                    .and_then(|a| match a {
                        SocketAddr::V4(a) => Some(a),
                        SocketAddr::V6(_) => None,
                    });
                if rtp.is_none() {
                    self.counters.no_media_addr += 1;
                }
                self.events.push(UaEvent::Established(i, rtp));
            }
            // First 200 or a retransmission of it: (re)send the ACK.
            if !self.calls[i].ack.is_empty() {
                self.send(&self.calls[i].ack);
            }
            return;
        }
        // Non-2xx final: hop-by-hop ACK on the INVITE's branch (§17.1.1.3).
        let c = &self.calls[i];
        let mut h = c.invite.headers.clone();
        h.to = r.headers.to.clone();
        h.cseq = CSeq {
            seq: 1,
            method: Method::Ack,
        };
        h.contact.clear();
        h.content_type = None;
        let ack = Request {
            method: Method::Ack,
            uri: c.invite.uri.clone(),
            headers: h,
            body: Vec::new(),
        };
        self.send(&ack.to_bytes());
        if waiting {
            let c = &mut self.calls[i];
            c.state = CallState::Failed;
            c.final_status = r.status;
            self.pending_invites -= 1;
            self.counters.failed += 1;
            *self.counters.failure_status.entry(r.status).or_default() += 1;
        }
    }

    fn on_request(&mut self, r: Request, from: SocketAddr) {
        if r.method == Method::Ack {
            return;
        }
        let idx = self.by_id.get(&r.headers.call_id).copied();
        let mut resp = r.response(200, None);
        match r.method {
            Method::Bye => {
                if let Some(i) = idx {
                    let c = &mut self.calls[i];
                    if c.state == CallState::Established {
                        c.state = CallState::Ended;
                        self.counters.remote_byes += 1;
                        self.events.push(UaEvent::Gone(i));
                    }
                }
            }
            Method::Invite => {
                // Re-INVITE: answer with our offer again (PCMU, same port). Outside a
                // dialog it gets the 481 below.
                if let Some(i) = idx {
                    let rtp = self.calls[i].rtp;
                    let offer = self.offer(rtp);
                    resp = endpoint::ok_with_sdp(&r, None, self.contact(), offer);
                }
                self.counters.other_requests += 1;
            }
            _ => self.counters.other_requests += 1,
        }
        if idx.is_none() && r.method != Method::Options {
            resp = r.response(481, None);
        }
        let _ = self.sock.send_to(&resp.to_bytes(), from);
    }

    /// Retransmissions and give-ups due at `now`.
    pub fn on_timers(&mut self, now: u64) {
        let mut keep = Vec::with_capacity(self.pending.len());
        for &i in &self.pending {
            let c = &mut self.calls[i];
            match c.state {
                CallState::Calling | CallState::Proceeding => {
                    if now >= c.give_up_at {
                        c.state = CallState::Failed;
                        c.final_status = 408;
                        self.pending_invites -= 1;
                        self.counters.failed += 1;
                        self.counters.timeouts += 1;
                        *self.counters.failure_status.entry(408).or_default() += 1;
                        continue;
                    }
                    if c.state == CallState::Calling && now >= c.retx_at {
                        let _ = self.sock.send_to(&c.invite_bytes, self.server);
                        self.counters.invite_retx += 1;
                        c.retx_iv *= 2;
                        c.retx_at = now + c.retx_iv;
                    }
                    keep.push(i);
                }
                CallState::Releasing => {
                    if now >= c.give_up_at {
                        c.state = CallState::Ended;
                        self.pending_byes -= 1;
                        self.counters.bye_failed += 1;
                        *self.counters.failure_status.entry(408).or_default() += 1;
                        continue;
                    }
                    if now >= c.retx_at {
                        let _ = self.sock.send_to(&c.bye, self.server);
                        self.counters.bye_retx += 1;
                        c.retx_iv = (c.retx_iv * 2).min(T2_NS);
                        c.retx_at = now + c.retx_iv;
                    }
                    keep.push(i);
                }
                _ => {}
            }
        }
        self.pending = keep;
    }
}
