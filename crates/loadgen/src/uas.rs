//! The two-party callees: a small UAS on its own UDP socket, which the server under
//! test uses as its `[routing] gateway`. The callers ([`crate::ua`]) dial numbers; the
//! server bridges each call to the gateway, i.e. to us, so every call is a real
//! two-leg B2BUA call with RTP both ways.
//!
//! Per incoming call: INVITE → 200 with an SDP answer in `--callee-codec` (no 1xx: we
//! answer at once) → ACK starts the callee's media; the server's BYE → 200 stops it.
//! The 200 is retransmitted on RFC 3261 timer G (T1 doubling, capped at T2) until the
//! ACK, and given up on timer H (64*T1). A retransmitted INVITE gets the same 200; a
//! re-INVITE is answered from its new offer; OPTIONS, CANCEL and anything else get a
//! plain 200 (an unknown dialog's BYE gets 481). We send no requests, so the server
//! always hangs up this side.
//!
//! Which call an INVITE belongs to: its Request-URI user is the number the caller
//! dialled (the server puts it in the gateway URI), looked up in the table the caller
//! side filled; callee `i` answers caller `i`'s call with its own RTP socket.

use sip::sdp::{self, Codec, Direction, LocalCapabilities, SessionDescription, SessionState};
use sip::{Message, Method, Request};
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use crate::endpoint;

const T2_NS: u64 = 4_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// No INVITE for this number yet.
    Idle,
    /// 200 sent, no ACK yet (timer G running).
    Answered,
    /// ACK received: media flows.
    Confirmed,
    /// BYE received, or the 200 was never ACKed.
    Ended,
}

/// One callee: the incoming leg of call `i`.
pub struct Leg {
    pub state: LegState,
    call_id: String,
    invite_cseq: u32,
    /// Our 200 to the INVITE, kept for retransmissions.
    ok: Vec<u8>,
    /// Where the INVITE came from (the server's SIP address).
    peer: SocketAddr,
    rtp: SocketAddrV4,
    /// Where to send RTP and with which payload type, from the offer and our answer.
    media: Option<(SocketAddrV4, u8)>,
    retx_at: u64,
    retx_iv: u64,
    give_up_at: u64,
}

/// What happened to a callee, for the RTP side.
pub enum UasEvent {
    /// ACK received: send RTP to this address with this payload type.
    Up(usize, SocketAddrV4, u8),
    /// BYE received (or never ACKed): stop sending.
    Gone(usize),
}

#[derive(Default, Debug)]
pub struct UasCounters {
    pub invites: u64,
    pub answered: u64,
    pub confirmed: u64,
    pub ok_retx: u64,
    pub invite_retx: u64,
    pub no_ack: u64,
    pub byes: u64,
    /// INVITEs for a number no caller dialled (404) or with an offer we cannot answer (488).
    pub rejected: u64,
    pub other_requests: u64,
    pub stray: u64,
    pub parse_errors: u64,
}

pub struct Uas {
    sock: UdpSocket,
    local: SocketAddrV4,
    t1: u64,
    caps: LocalCapabilities,
    pub legs: Vec<Leg>,
    by_number: HashMap<String, usize>,
    by_call_id: HashMap<String, usize>,
    /// Legs whose 200 awaits its ACK.
    pending: Vec<usize>,
    pub counters: UasCounters,
    pub events: Vec<UasEvent>,
    session: SessionState,
    tag: String,
    buf: Vec<u8>,
}

impl Uas {
    /// A UAS on `local` answering with `codec` (its SDP spelling; the payload type on
    /// the wire is the one the offer gives it).
    pub fn new(local: SocketAddrV4, codec: Codec, t1_ns: u64) -> std::io::Result<Uas> {
        let (sock, local) = endpoint::bind_sip_socket(local)?;
        let run = media::rtp::random_u32();
        Ok(Uas {
            sock,
            local,
            t1: t1_ns,
            caps: LocalCapabilities {
                codecs: vec![codec],
                telephone_event: false,
            },
            legs: Vec::new(),
            by_number: HashMap::new(),
            by_call_id: HashMap::new(),
            pending: Vec::new(),
            counters: UasCounters::default(),
            events: Vec::new(),
            session: SessionState::new((run as u64) << 8 | 0x80),
            tag: format!("{run:x}c"),
            buf: vec![0; 65536],
        })
    }

    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Adds callee `i`, answering INVITEs whose Request-URI user is `number`.
    pub fn add_callee(&mut self, number: &str, rtp: SocketAddrV4) -> usize {
        let i = self.legs.len();
        self.by_number.insert(number.to_owned(), i);
        self.legs.push(Leg {
            state: LegState::Idle,
            call_id: String::new(),
            invite_cseq: 0,
            ok: Vec::new(),
            peer: SocketAddr::V4(self.local),
            rtp,
            media: None,
            retx_at: 0,
            retx_iv: 0,
            give_up_at: 0,
        });
        i
    }

    /// Callees whose media is flowing (ACKed, not hung up).
    pub fn live(&self) -> usize {
        self.legs
            .iter()
            .filter(|l| l.state == LegState::Confirmed)
            .count()
    }

    /// Reads and handles every datagram waiting on the SIP socket.
    pub fn receive(&mut self, now: u64) {
        loop {
            let (n, from) = match self.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            match sip::parse::parse_datagram(&self.buf[..n]) {
                Ok(Message::Request(r)) => self.on_request(r, from, now),
                Ok(Message::Response(_)) => self.counters.stray += 1,
                Err(_) => self.counters.parse_errors += 1,
            }
        }
    }

    fn reply(&self, r: &Request, status: u16, to: SocketAddr) {
        let resp = r.response(status, Some(&self.tag));
        let _ = self.sock.send_to(&resp.to_bytes(), to);
    }

    fn on_request(&mut self, r: Request, from: SocketAddr, now: u64) {
        let known = self.by_call_id.get(&r.headers.call_id).copied();
        match r.method {
            Method::Invite => self.on_invite(r, from, known, now),
            Method::Ack => {
                let Some(i) = known else { return };
                let leg = &mut self.legs[i];
                if leg.state == LegState::Answered {
                    leg.state = LegState::Confirmed;
                    self.counters.confirmed += 1;
                    if let Some((addr, pt)) = leg.media {
                        self.events.push(UasEvent::Up(i, addr, pt));
                    }
                }
            }
            Method::Bye => {
                let Some(i) = known else {
                    return self.reply(&r, 481, from);
                };
                let leg = &mut self.legs[i];
                if matches!(leg.state, LegState::Answered | LegState::Confirmed) {
                    leg.state = LegState::Ended;
                    self.counters.byes += 1;
                    self.events.push(UasEvent::Gone(i));
                }
                self.reply(&r, 200, from);
            }
            _ => {
                self.counters.other_requests += 1;
                self.reply(&r, 200, from);
            }
        }
    }

    fn on_invite(&mut self, r: Request, from: SocketAddr, known: Option<usize>, now: u64) {
        if let Some(i) = known {
            let leg = &self.legs[i];
            if r.headers.cseq.seq == leg.invite_cseq {
                // A retransmission: our 200 again (it may have been lost).
                self.counters.invite_retx += 1;
                if !leg.ok.is_empty() {
                    let _ = self.sock.send_to(&leg.ok, from);
                }
                return;
            }
            // A re-INVITE: answer its offer, keep the dialog.
            self.counters.other_requests += 1;
            return match self.answer(&r, i) {
                Some((ok, media)) => {
                    let leg = &mut self.legs[i];
                    leg.invite_cseq = r.headers.cseq.seq;
                    leg.media = media.or(leg.media);
                    leg.ok = ok;
                    let _ = self.sock.send_to(&leg.ok, from);
                    if let (LegState::Confirmed, Some((addr, pt))) = (leg.state, leg.media) {
                        self.events.push(UasEvent::Up(i, addr, pt));
                    }
                }
                None => self.reply(&r, 488, from),
            };
        }
        self.counters.invites += 1;
        let number = r.uri.user.clone().unwrap_or_default();
        let Some(i) = self
            .by_number
            .get(&number)
            .copied()
            .filter(|&i| self.legs[i].state == LegState::Idle)
        else {
            self.counters.rejected += 1;
            return self.reply(&r, 404, from);
        };
        let Some((ok, media)) = self.answer(&r, i) else {
            self.counters.rejected += 1;
            return self.reply(&r, 488, from);
        };
        self.counters.answered += 1;
        let t1 = self.t1;
        let leg = &mut self.legs[i];
        leg.state = LegState::Answered;
        leg.call_id = r.headers.call_id.clone();
        leg.invite_cseq = r.headers.cseq.seq;
        leg.ok = ok;
        leg.peer = from;
        leg.media = media;
        leg.retx_iv = t1;
        leg.retx_at = now + t1;
        leg.give_up_at = now + 64 * t1;
        let _ = self.sock.send_to(&leg.ok, from);
        self.by_call_id.insert(leg.call_id.clone(), i);
        self.pending.push(i);
    }

    /// The 200 to `r` with our SDP answer for callee `i`, and where its media goes.
    /// None when the offer is unusable (no body, no common codec).
    #[allow(clippy::type_complexity)]
    fn answer(&mut self, r: &Request, i: usize) -> Option<(Vec<u8>, Option<(SocketAddrV4, u8)>)> {
        let offer = SessionDescription::parse(std::str::from_utf8(&r.body).ok()?).ok()?;
        let rtp = self.legs[i].rtp;
        let (sdp, neg) = sdp::answer(
            &offer,
            &self.caps,
            SocketAddr::V4(rtp),
            Direction::SendRecv,
            &mut self.session,
        )
        .ok()?;
        let media = match neg.remote {
            Some(SocketAddr::V4(a)) => Some((a, neg.codec.payload_type)),
            _ => None,
        };
        let ok = endpoint::ok_with_sdp(
            r,
            Some(&self.tag),
            endpoint::contact("callee", self.local),
            sdp.to_string().into_bytes(),
        );
        Some((ok.to_bytes(), media))
    }

    /// 200 retransmissions (timer G) and give-ups (timer H) due at `now`.
    pub fn on_timers(&mut self, now: u64) {
        let mut keep = Vec::with_capacity(self.pending.len());
        for &i in &self.pending {
            let leg = &mut self.legs[i];
            if leg.state != LegState::Answered {
                continue;
            }
            if now >= leg.give_up_at {
                leg.state = LegState::Ended;
                self.counters.no_ack += 1;
                self.events.push(UasEvent::Gone(i));
                continue;
            }
            if now >= leg.retx_at {
                let _ = self.sock.send_to(&leg.ok, leg.peer);
                self.counters.ok_retx += 1;
                leg.retx_iv = (leg.retx_iv * 2).min(T2_NS);
                leg.retx_at = now + leg.retx_iv;
            }
            keep.push(i);
        }
        self.pending = keep;
    }
}

/// The SDP spelling of a callee codec named on the command line.
pub fn codec_named(name: &str) -> Option<(Codec, media::codec::CodecKind)> {
    use media::codec::CodecKind;
    Some(match name.to_ascii_lowercase().as_str() {
        "pcmu" => (Codec::pcmu(), CodecKind::Pcmu),
        "pcma" => (Codec::pcma(), CodecKind::Pcma),
        "g722" => (Codec::g722(), CodecKind::G722),
        "opus" => (Codec::opus(111), CodecKind::Opus),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server-like offer: every codec, telephone-event, Opus on PT 111.
    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 44010 RTP/AVP 111 9 0 8 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=0\r\n\
a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n";

    fn invite(call_id: &str, user: &str, cseq: u32) -> Vec<u8> {
        format!(
            "INVITE sip:{user}@127.0.0.2:30999 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7260;branch=z9hG4bK{call_id}{cseq}\r\n\
From: <sip:load@127.0.0.2>;tag=abc\r\nTo: <sip:{user}@127.0.0.2:30999>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
Contact: <sip:sb@127.0.0.1:7260>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
            OFFER.len()
        )
        .into_bytes()
    }

    fn request(method: &str, call_id: &str, user: &str, cseq: u32) -> Vec<u8> {
        format!(
            "{method} sip:callee@127.0.0.2:30999 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7260;branch=z9hG4bK{method}{cseq}\r\n\
From: <sip:load@127.0.0.2>;tag=abc\r\nTo: <sip:{user}@127.0.0.2:30999>;tag=x\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    /// A UAS for codec `name` with callee 0 = +15550, and a "server" socket.
    fn setup(name: &str) -> (Uas, UdpSocket) {
        let (codec, _) = codec_named(name).unwrap();
        let mut uas = Uas::new("127.0.0.1:0".parse().unwrap(), codec, 500_000_000).unwrap();
        uas.add_callee("+15550", "127.0.0.1:44100".parse().unwrap());
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        (uas, server)
    }

    fn exchange(uas: &mut Uas, server: &UdpSocket, msg: &[u8], now: u64) -> sip::Response {
        server.send_to(msg, uas.local()).unwrap();
        // Loopback delivery is immediate, but give the kernel a moment.
        for _ in 0..200 {
            uas.receive(now);
            let mut b = [0u8; 4096];
            server.set_nonblocking(true).unwrap();
            if let Ok((n, _)) = server.recv_from(&mut b) {
                match sip::parse::parse_datagram(&b[..n]).unwrap() {
                    Message::Response(r) => return r,
                    Message::Request(_) => panic!("UAS sent a request"),
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("no response");
    }

    #[test]
    fn answers_g722_with_the_offered_payload_type_and_starts_media_on_ack() {
        let (mut uas, server) = setup("g722");
        let r = exchange(&mut uas, &server, &invite("c1", "+15550", 1), 0);
        assert_eq!(r.status, 200);
        assert!(r.headers.to.tag().is_some());
        let sdp = SessionDescription::parse(std::str::from_utf8(&r.body).unwrap()).unwrap();
        let a = sdp.audio().unwrap();
        assert_eq!(a.addr, Some("127.0.0.1:44100".parse().unwrap()));
        assert_eq!(a.voice_codecs().next().unwrap().payload_type, 9);
        assert!(uas.events.is_empty(), "no media before the ACK");
        server
            .send_to(&request("ACK", "c1", "+15550", 1), uas.local())
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        uas.receive(0);
        match uas.events.as_slice() {
            [UasEvent::Up(0, addr, 9)] => assert_eq!(*addr, "127.0.0.1:44010".parse().unwrap()),
            _ => panic!("expected Up(0, offer address, PT 9)"),
        }
        assert_eq!(uas.live(), 1);
    }

    #[test]
    fn opus_takes_the_offers_dynamic_payload_type() {
        let (mut uas, server) = setup("opus");
        let r = exchange(&mut uas, &server, &invite("c2", "+15550", 1), 0);
        let sdp = SessionDescription::parse(std::str::from_utf8(&r.body).unwrap()).unwrap();
        let c = sdp.audio().unwrap().voice_codecs().next().unwrap().clone();
        assert!(c.is_named("opus"));
        assert_eq!(c.payload_type, 111);
    }

    #[test]
    fn retransmitted_invite_gets_the_same_200_and_bye_ends_the_leg() {
        let (mut uas, server) = setup("pcmu");
        let first = exchange(&mut uas, &server, &invite("c3", "+15550", 1), 0);
        let again = exchange(&mut uas, &server, &invite("c3", "+15550", 1), 0);
        assert_eq!(first.to_bytes(), again.to_bytes());
        assert_eq!(uas.counters.invite_retx, 1);
        assert_eq!(uas.counters.answered, 1);
        let bye = exchange(&mut uas, &server, &request("BYE", "c3", "+15550", 2), 0);
        assert_eq!(bye.status, 200);
        assert_eq!(uas.legs[0].state, LegState::Ended);
        assert!(matches!(uas.events.last(), Some(UasEvent::Gone(0))));
        let stray = exchange(&mut uas, &server, &request("BYE", "nope", "+15550", 2), 0);
        assert_eq!(stray.status, 481);
    }

    #[test]
    fn unknown_number_is_404_and_unanswered_200_is_retransmitted_then_given_up() {
        let (mut uas, server) = setup("pcmu");
        assert_eq!(
            exchange(&mut uas, &server, &invite("c4", "+19999", 1), 0).status,
            404
        );
        assert_eq!(
            exchange(&mut uas, &server, &invite("c5", "+15550", 1), 0).status,
            200
        );
        uas.on_timers(500_000_000);
        assert_eq!(uas.counters.ok_retx, 1);
        uas.on_timers(64 * 500_000_000);
        assert_eq!(uas.legs[0].state, LegState::Ended);
        assert_eq!(uas.counters.no_ack, 1);
    }
}
