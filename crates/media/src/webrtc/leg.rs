//! The sans-IO core of one WebRTC leg: a `str0m::Rtc` in RTP mode toward the browser and
//! the bookkeeping of the plain-RTP side toward SIP. No socket, no clock, no thread.
//!
//! Driving it (what `runtime.rs` does, and what tests can do with a fake clock):
//! feed one input — [`WebRtcLeg::handle_datagram`] (ICE socket), [`WebRtcLeg::handle_plain`]
//! (the leg's plain socket), [`WebRtcLeg::handle_timeout`] or a control call — then drain
//! [`WebRtcLeg::poll_output`] until it returns [`LegOutput::Timeout`]. That is str0m's
//! "single-mutation invariant" passed straight through: every mutation of the `Rtc`
//! is followed by a full drain before the next.
//!
//! Per-packet cost, browser -> SIP: SRTP decrypt and header parse inside str0m (which
//! hands the payload over in an `Arc<[u8]>` it allocated), then a 12-byte header and a
//! copy of the payload into the leg's scratch buffer, which the runtime sends from.
//! SIP -> browser: our header parse, one `Arc<[u8]>` allocation for the payload (str0m's
//! `write_rtp` takes ownership), SRTP encrypt inside str0m. Header extensions and CSRCs
//! the browser adds are not relayed; SSRC, payload type, marker and timestamp are, and
//! the sequence number is too except that DTMF we inject shifts it (see `PlainTx`).

use super::{FailReason, GatewayError, GatewayEvent, PlainCodec, WebRtcId, WebRtcStats};
use crate::codec::{AudioEncoder, CodecKind};
use crate::dtmf::DtmfSender;
use crate::mixer::{Frame, SILENCE};
use crate::player::Playing;
use crate::rtp;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec, FormatParams, PayloadParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig, RtcError};

/// After an ICE disconnect of a connected leg, how long it may come back before the
/// leg fails. Chromium's consent checks run every ~2.5 s, so one late check is not a
/// dead browser.
pub const ICE_GRACE: Duration = Duration::from_secs(2);
/// Pause between two DTMF digits sent toward SIP (RFC 4733 leaves it to us; str0m and
/// most gateways use 50 ms or more).
const DTMF_GAP_TICKS: u32 = 3;
const DTMF_TICK: Duration = Duration::from_millis(20);
/// Telephone-event payload types offered to str0m when answering; the browser's own
/// numbers win in the answer. Chromium offers 110 (48 kHz) and 126 (8 kHz).
const TE_48K_PT: u8 = 110;
const TE_8K_PT: u8 = 126;

/// What a leg needs from the gateway that does not change per leg.
#[derive(Clone)]
pub struct LegSetup {
    /// ICE host candidates: every advertised IP with the ICE socket's port.
    pub candidates: Vec<SocketAddr>,
    pub media_timeout: Duration,
    pub connect_timeout: Duration,
    pub crypto: Arc<CryptoProvider>,
    /// One certificate for all legs (generating one per leg costs ~1 ms of CPU).
    pub cert: DtlsCert,
}

/// One thing for the driver to do; drain until `Timeout`.
pub enum LegOutput<'a> {
    /// A datagram for the browser, from our ICE socket `t.source`.
    Transmit(Transmit),
    /// An RTP packet for the SIP side, to be sent from the leg's plain socket.
    Plain { to: SocketAddr, data: &'a [u8] },
    Event(GatewayEvent),
    /// Nothing more until this instant (or the next input).
    Timeout(Instant),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// We offered; waiting for the browser's answer.
    Offered,
    /// Negotiated; ICE and DTLS not up yet.
    Connecting,
    Connected,
    /// Failed or closed; the events are out, the driver drops the leg.
    Dead,
}

/// One browser leg.
pub struct WebRtcLeg {
    id: WebRtcId,
    rtc: Rtc,
    mid: Mid,
    state: State,
    pending_offer: Option<SdpPendingOffer>,
    media_timeout: Duration,
    connect_timeout: Duration,
    /// ICE + DTLS must be up by then. Runs from the end of negotiation: a leg we offered
    /// may ring in the browser for a long time before its answer comes.
    connect_deadline: Instant,
    /// The ICE agent has been connected at least once (tells an ICE from a DTLS failure).
    ice_was_connected: bool,
    /// Set while ICE is disconnected after having been connected.
    ice_lost_at: Option<Instant>,
    last_browser_rtp: Instant,
    rtc_timeout: Instant,
    /// The time of the latest input: what str0m's events during the drain happened at.
    now: Instant,
    /// Payload types the browser negotiated (codecs and telephone-event); RTP from SIP
    /// with any other is dropped, as str0m could not send it.
    pts: Vec<u8>,
    /// The order the plain side lists codecs in, whatever order the browser's SDP had:
    /// the SIP side's when we offered, `allowed`'s when we answered.
    plain_order: Vec<u8>,
    telephone_event: Option<(u8, u32)>,
    plain: PlainTx,
    to_browser: SeqExtend,
    dtmf: DtmfQueue,
    events: VecDeque<GatewayEvent>,
    /// DTMF packets made by `handle_timeout`, waiting for `poll_output`.
    plain_queue: VecDeque<([u8; 16], usize)>,
    /// A sound played toward SIP in place of the browser's audio (WCS `inject_sound`).
    inject: Option<Box<Injection>>,
    /// The browser's audio resumes after an injection: its next packet continues our
    /// sequence (and is marked as a new talkspurt).
    resync: bool,
    scratch: Box<[u8; 1500]>,
    stats: WebRtcStats,
}

/// The plain side's send state (browser -> SIP).
struct PlainTx {
    /// Where to send; from `set_plain_remote`, then from what arrives (symmetric RTP).
    remote: Option<SocketAddr>,
    forwarding: bool,
    /// Added to the browser's sequence numbers: one per DTMF packet we injected, so the
    /// SIP side sees one gapless sequence.
    seq_shift: u16,
    last_seq: u16,
    ssrc: u32,
    /// Timestamp of the last relayed packet and when it went: DTMF events start at the
    /// media clock "now" extrapolated from it.
    last_ts: u32,
    last_ts_at: Option<Instant>,
}

/// Turns the SIP side's 16-bit sequence numbers into str0m's extended ones, staying
/// continuous across an SSRC change (a re-INVITE, a transfer on the SIP side).
struct SeqExtend {
    ssrc: Option<u32>,
    last: u16,
    ext: u64,
}

/// A sound going to the SIP side instead of the browser's audio: the prompt reader's
/// frames (read off this thread), encoded in the plain side's first codec, one packet
/// per 20 ms tick on the leg's own stream (same SSRC, continuing sequence and clock).
struct Injection {
    playing: Playing,
    encoder: Box<dyn AudioEncoder>,
    pt: u8,
    /// RTP clock ticks per 20 ms packet.
    step: u32,
    next_tick: Instant,
    /// Timestamp of the next packet (None: start at the media clock "now").
    ts: Option<u32>,
    frame: Box<Frame>,
    /// An encoded packet waiting for `poll_output` (header + the 1500 bytes an
    /// encoder may write).
    packet: Vec<u8>,
    pending: usize,
}

struct DtmfQueue {
    digits: VecDeque<(char, u32)>,
    current: Option<DtmfSender>,
    next_tick: Option<Instant>,
}

impl WebRtcLeg {
    /// The browser offered: answer it keeping the codecs named in `allowed` (in that
    /// preference order) plus telephone-event.
    pub fn accept_offer(
        id: WebRtcId,
        now: Instant,
        setup: &LegSetup,
        offer: &str,
        allowed: &[&str],
    ) -> Result<(WebRtcLeg, String), GatewayError> {
        let mid = first_audio_mid(offer).ok_or_else(|| GatewayError::Sdp("no audio m-line with a=mid".into()))?;
        let parsed = SdpOffer::from_sdp_string(offer).map_err(|e| GatewayError::Sdp(e.to_string()))?;
        let mut cfg = rtc_config(setup).clear_codecs();
        for name in allowed {
            let c = cfg.codec_config();
            match name.to_ascii_lowercase().as_str() {
                "opus" => c.enable_opus(true, false),
                "pcmu" => c.enable_pcmu(true, false),
                "pcma" => c.enable_pcma(true, false),
                "g722" => c.enable_g722(true, false),
                _ => {}
            }
        }
        for (pt, hz) in [(TE_48K_PT, 48_000), (TE_8K_PT, 8_000)] {
            cfg.codec_config().add_config(pt.into(), None, Codec::Tele, freq(hz), None, FormatParams::parse_line("0-16"));
        }
        let mut rtc = cfg.build(now);
        add_candidates(&mut rtc, setup);
        let answer = rtc.sdp_api().accept_offer(parsed).map_err(|e| GatewayError::Sdp(e.to_string()))?;
        let mut leg = WebRtcLeg::new(id, now, setup, rtc, mid, State::Connecting);
        leg.learn_codecs();
        let codecs = leg.codecs();
        if codecs.is_empty() {
            return Err(GatewayError::NoCommonCodecs);
        }
        // Our preference, not the offer's, decides what the browser sends: str0m answers
        // in the offer's order, so reorder the answer (and the plain side with it).
        let rank = |c: &PlainCodec| allowed.iter().position(|a| a.eq_ignore_ascii_case(&c.name)).unwrap_or(usize::MAX);
        let mut preferred = codecs;
        preferred.sort_by_key(rank);
        leg.plain_order = preferred.iter().map(|c| c.pt).collect();
        leg.learn_codecs();
        let answer = order_formats(&answer.to_sdp_string(), &leg.pts);
        Ok((leg, answer))
    }

    /// SIP offered first: offer the browser exactly these codecs and payload types.
    pub fn create_offer(
        id: WebRtcId,
        now: Instant,
        setup: &LegSetup,
        codecs: &[PlainCodec],
        telephone_event: Option<(u8, u32)>,
    ) -> Result<(WebRtcLeg, String), GatewayError> {
        let mut cfg = rtc_config(setup).clear_codecs();
        let mut any = false;
        for c in codecs {
            let Some((codec, hz, channels)) = str0m_codec(c) else { continue };
            let fmtp = c.fmtp.as_deref().map(FormatParams::parse_line).unwrap_or_default();
            cfg.codec_config().add_config(c.pt.into(), None, codec, freq(hz), channels, fmtp);
            any = true;
        }
        if !any {
            return Err(GatewayError::NoCommonCodecs);
        }
        if let Some((pt, hz)) = telephone_event {
            cfg.codec_config().add_config(pt.into(), None, Codec::Tele, freq(hz), None, FormatParams::parse_line("0-16"));
        }
        let mut rtc = cfg.build(now);
        add_candidates(&mut rtc, setup);
        let mut change = rtc.sdp_api();
        let stream = format!("switchboard-{}", id.0);
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, Some(stream), Some("audio".into()), None);
        let (offer, pending) = change.apply().ok_or_else(|| GatewayError::Sdp("nothing to offer".into()))?;
        let mut leg = WebRtcLeg::new(id, now, setup, rtc, mid, State::Offered);
        leg.pending_offer = Some(pending);
        let mut order: Vec<u8> = codecs.iter().map(|c| c.pt).collect();
        order.extend(telephone_event.map(|t| t.0));
        let offer = order_formats(&offer.to_sdp_string(), &order);
        leg.plain_order = order;
        Ok((leg, offer))
    }

    /// The browser's answer to [`WebRtcLeg::create_offer`]. On an error the leg is of no
    /// further use: the caller drops it ([`WebRtcLeg::discard`]).
    pub fn accept_answer(&mut self, now: Instant, answer: &str) -> Result<(), GatewayError> {
        let pending = self.pending_offer.take().ok_or_else(|| GatewayError::Sdp("no offer outstanding".into()))?;
        let parsed = SdpAnswer::from_sdp_string(answer).map_err(|e| GatewayError::Sdp(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(pending, parsed).map_err(|e| GatewayError::Sdp(e.to_string()))?;
        self.state = State::Connecting;
        self.connect_deadline = now + self.connect_timeout;
        self.learn_codecs();
        if self.codecs().is_empty() {
            return Err(GatewayError::NoCommonCodecs);
        }
        Ok(())
    }

    fn new(id: WebRtcId, now: Instant, setup: &LegSetup, rtc: Rtc, mid: Mid, state: State) -> WebRtcLeg {
        WebRtcLeg {
            id,
            rtc,
            mid,
            state,
            pending_offer: None,
            media_timeout: setup.media_timeout,
            connect_timeout: setup.connect_timeout,
            connect_deadline: now + setup.connect_timeout,
            ice_was_connected: false,
            ice_lost_at: None,
            last_browser_rtp: now,
            rtc_timeout: now,
            now,
            pts: Vec::new(),
            plain_order: Vec::new(),
            telephone_event: None,
            plain: PlainTx {
                remote: None,
                forwarding: true,
                seq_shift: 0,
                last_seq: rtp::random_u32() as u16,
                ssrc: rtp::random_u32(),
                last_ts: rtp::random_u32(),
                last_ts_at: None,
            },
            to_browser: SeqExtend { ssrc: None, last: 0, ext: 0 },
            dtmf: DtmfQueue { digits: VecDeque::new(), current: None, next_tick: None },
            events: VecDeque::new(),
            plain_queue: VecDeque::new(),
            inject: None,
            resync: false,
            scratch: Box::new([0; 1500]),
            stats: WebRtcStats::default(),
        }
    }

    /// Read the negotiated payload types back from str0m.
    fn learn_codecs(&mut self) {
        let Some(media) = self.rtc.media(self.mid) else { return };
        let remote: Vec<Pt> = media.remote_pts().to_vec();
        let config = self.rtc.codec_config();
        self.pts.clear();
        self.telephone_event = None;
        let mut first_clock = None;
        let mut tes = Vec::new();
        for pt in remote {
            let Some(p) = config.find(|p| p.pt() == pt) else { continue };
            let spec = p.spec();
            match spec.codec {
                Codec::Opus | Codec::PCMU | Codec::PCMA | Codec::G722 => {
                    self.pts.push(*pt);
                    first_clock.get_or_insert(wire_clock(p));
                }
                Codec::Tele => tes.push((*pt, spec.clock_rate.get())),
                _ => {}
            }
        }
        if !self.plain_order.is_empty() {
            let order = &self.plain_order;
            self.pts.sort_by_key(|pt| order.iter().position(|o| o == pt).unwrap_or(usize::MAX));
            first_clock = self.pts.first().and_then(|pt| config.find(|p| *p.pt() == *pt)).map(wire_clock);
        }
        // One telephone-event for the plain side: the one on the first codec's clock.
        let te = tes.iter().find(|(_, hz)| Some(*hz) == first_clock).or(tes.first()).copied();
        if let Some((pt, hz)) = te {
            self.pts.push(pt);
            self.telephone_event = Some((pt, hz));
        }
    }

    pub fn id(&self) -> WebRtcId {
        self.id
    }

    /// The codecs negotiated with the browser, in its order, as the SIP side writes them.
    pub fn codecs(&self) -> Vec<PlainCodec> {
        let config = self.rtc.codec_config();
        self.pts
            .iter()
            .filter_map(|pt| config.find(|p| *p.pt() == *pt))
            .filter(|p| p.spec().codec != Codec::Tele)
            .map(plain_codec)
            .collect()
    }

    /// The negotiated telephone-event payload type and clock.
    pub fn telephone_event(&self) -> Option<(u8, u32)> {
        self.telephone_event
    }

    pub fn stats(&self) -> WebRtcStats {
        self.stats
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Failed or closed: the driver drops it once drained.
    pub fn is_dead(&self) -> bool {
        self.state == State::Dead
    }

    /// Whether a datagram on the ICE socket belongs to this leg (STUN by ufrag, the rest
    /// by the browser's address). Only asked on a cache miss of the driver's address map.
    pub fn accepts(&self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) -> bool {
        match Receive::new(Protocol::Udp, from, to, bytes) {
            Ok(r) => self.accepts_input(&Input::Receive(now, r)),
            Err(_) => false,
        }
    }

    /// [`WebRtcLeg::accepts`] for a datagram parsed once and asked of many legs.
    pub fn accepts_input(&self, input: &Input) -> bool {
        self.state != State::Dead && self.rtc.accepts(input)
    }

    /// [`WebRtcLeg::handle_datagram`] for a datagram already parsed.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.state == State::Dead {
            return;
        }
        self.now = now;
        let res = self.rtc.handle_input(input);
        self.check(now, res);
    }

    /// A datagram from the browser side (STUN, DTLS, SRTP, SRTCP).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        if self.state == State::Dead {
            return;
        }
        let Ok(r) = Receive::new(Protocol::Udp, from, to, bytes) else { return };
        self.now = now;
        let res = self.rtc.handle_input(Input::Receive(now, r));
        self.check(now, res);
    }

    /// A datagram on the leg's plain socket (RTP from SIP).
    pub fn handle_plain(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.state == State::Dead || rtp::looks_like_rtcp(bytes) {
            return;
        }
        let Some(p) = rtp::parse(bytes) else { return };
        self.now = now;
        let h = p.header;
        if !self.pts.contains(&h.payload_type) {
            return;
        }
        // Symmetric RTP: answer where the SIP side really sends from.
        self.plain.remote = Some(from);
        self.stats.from_plain_packets += 1;
        self.stats.from_plain_bytes += p.payload.len() as u64;
        if self.state != State::Connected {
            return;
        }
        let (seq, restarted) = self.to_browser.extend(h.ssrc, h.sequence);
        let write = RtpWrite::new(h.payload_type.into(), SeqNo::from(seq), h.timestamp, now, p.payload).marker(h.marker || restarted);
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(self.mid, None) else { return };
        tx.write_rtp(write);
        self.stats.to_browser_packets += 1;
        self.stats.to_browser_bytes += p.payload.len() as u64;
    }

    /// Time passed: str0m's timers, ours (connect, media, ICE grace), the DTMF tick.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Dead {
            return;
        }
        self.now = now;
        match self.state {
            State::Connecting if now >= self.connect_deadline => {
                let reason = if self.ice_was_connected { FailReason::Dtls } else { FailReason::Ice };
                return self.fail(reason);
            }
            State::Connected if now >= self.last_browser_rtp + self.media_timeout => {
                return self.fail(FailReason::RtpActivity);
            }
            _ => {}
        }
        if self.ice_lost_at.is_some_and(|t| now >= t + ICE_GRACE) {
            return self.fail(FailReason::Ice);
        }
        if self.dtmf.next_tick.is_some_and(|t| now >= t) {
            self.dtmf_tick(now);
        }
        if self.inject.as_ref().is_some_and(|i| now >= i.next_tick) {
            self.inject_tick(now);
        }
        let res = self.rtc.handle_input(Input::Timeout(now));
        self.check(now, res);
    }

    /// Where the SIP side's RTP is (from its SDP).
    pub fn set_plain_remote(&mut self, addr: SocketAddr) {
        self.plain.remote = Some(addr);
    }

    /// Pause/resume relaying browser -> SIP.
    pub fn set_forwarding(&mut self, on: bool) {
        self.plain.forwarding = on;
    }

    /// Queue RFC 4733 digits toward SIP; they go out on the next 20 ms ticks.
    pub fn send_dtmf(&mut self, now: Instant, digits: &str, duration_ms: u32) {
        if self.telephone_event.is_none() || self.state == State::Dead {
            return;
        }
        self.dtmf.digits.extend(digits.chars().filter(|c| crate::dtmf::digit_to_event(*c).is_some()).map(|c| (c, duration_ms)));
        if self.dtmf.next_tick.is_none() {
            self.dtmf.next_tick = Some(now);
        }
    }

    /// Play a sound toward SIP instead of the browser's audio until it ends (replacing a
    /// sound already playing). The encoder is made here, on the control path, so the
    /// ticks allocate nothing. Errors when no codec is negotiated or this build cannot
    /// encode it.
    pub fn inject(&mut self, now: Instant, playing: Playing) -> Result<(), GatewayError> {
        if self.state == State::Dead {
            return Err(GatewayError::UnknownLeg(self.id));
        }
        let codec = self.codecs().into_iter().next().ok_or(GatewayError::NoCommonCodecs)?;
        let kind = CodecKind::from_sdp_name(&codec.name).ok_or(GatewayError::NoCommonCodecs)?;
        let encoder = crate::codec::try_new_encoder(kind).ok_or(GatewayError::NoCommonCodecs)?;
        self.inject = Some(Box::new(Injection {
            playing,
            encoder,
            pt: codec.pt,
            step: kind.rtp_samples_per_frame(),
            next_tick: now,
            ts: None,
            frame: Box::new(SILENCE),
            packet: vec![0; rtp::RTP_HEADER_LEN + 1500],
            pending: 0,
        }));
        Ok(())
    }

    /// Drop the leg without an event (its creator already has the error).
    pub fn discard(&mut self) {
        self.state = State::Dead;
    }

    /// Close toward the browser (DTLS close_notify, RTCP BYE), then report `Closed`.
    pub fn close(&mut self) {
        if self.state == State::Dead {
            return;
        }
        let _ = self.rtc.close();
        self.state = State::Dead;
        self.events.push_back(GatewayEvent::Closed(self.id));
    }

    /// The next thing to do. Drain until `Timeout` after every input.
    pub fn poll_output(&mut self) -> LegOutput<'_> {
        if let Some(e) = self.events.pop_front() {
            return LegOutput::Event(e);
        }
        if let Some((pkt, n)) = self.plain_queue.pop_front() {
            if let Some(to) = self.plain.remote {
                self.scratch[..n].copy_from_slice(&pkt[..n]);
                return LegOutput::Plain { to, data: &self.scratch[..n] };
            }
        }
        let injected = self.inject.as_ref().map_or(0, |i| i.pending);
        if let (true, Some(to)) = (injected > 0, self.plain.remote) {
            let inj = self.inject.as_mut().expect("pending");
            inj.pending = 0;
            return LegOutput::Plain { to, data: &inj.packet[..injected] };
        }
        loop {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    let now = self.now;
                    self.check(now, Err(e));
                    return match self.events.pop_front() {
                        Some(e) => LegOutput::Event(e),
                        None => LegOutput::Timeout(self.deadline()),
                    };
                }
            };
            match out {
                Output::Transmit(t) => return LegOutput::Transmit(t),
                Output::Timeout(t) => {
                    self.rtc_timeout = t;
                    break;
                }
                Output::Event(Event::RtpPacket(p)) => {
                    if let Some((to, n)) = self.relay_to_plain(&p.header, &p.payload, p.timestamp) {
                        return LegOutput::Plain { to, data: &self.scratch[..n] };
                    }
                }
                Output::Event(e) => {
                    self.on_event(e);
                    if let Some(e) = self.events.pop_front() {
                        return LegOutput::Event(e);
                    }
                }
            }
        }
        if self.state != State::Dead && !self.rtc.is_alive() {
            // The browser closed DTLS.
            self.state = State::Dead;
            return LegOutput::Event(GatewayEvent::Closed(self.id));
        }
        LegOutput::Timeout(self.deadline())
    }

    /// The earliest of str0m's deadline and ours.
    fn deadline(&self) -> Instant {
        let mut d = self.rtc_timeout;
        match self.state {
            State::Offered => {}
            State::Connecting => d = d.min(self.connect_deadline),
            State::Connected => d = d.min(self.last_browser_rtp + self.media_timeout),
            State::Dead => return self.rtc_timeout + Duration::from_secs(3600),
        }
        if let Some(t) = self.ice_lost_at {
            d = d.min(t + ICE_GRACE);
        }
        if let Some(t) = self.dtmf.next_tick {
            d = d.min(t);
        }
        if let Some(i) = &self.inject {
            d = d.min(i.next_tick);
        }
        d
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected if self.state == State::Connecting => {
                self.state = State::Connected;
                self.last_browser_rtp = self.now.max(self.last_browser_rtp);
                self.events.push_back(GatewayEvent::Connected(self.id));
            }
            Event::IceConnectionStateChange(s) => match s {
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.ice_was_connected = true;
                    self.ice_lost_at = None;
                }
                IceConnectionState::Disconnected if self.ice_was_connected => {
                    self.ice_lost_at.get_or_insert(self.now);
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Write one browser RTP packet for the SIP side into `scratch`.
    fn relay_to_plain(&mut self, h: &str0m::rtp::RtpHeader, payload: &[u8], at: Instant) -> Option<(SocketAddr, usize)> {
        self.last_browser_rtp = self.last_browser_rtp.max(at);
        self.stats.from_browser_packets += 1;
        self.stats.from_browser_bytes += payload.len() as u64;
        let to = self.plain.remote?;
        if payload.is_empty() && !self.resync {
            // Chrome sends a payload-less packet now and then (while its track is
            // disabled, on hold, and every 5 s after): no frame. Dropped, and the
            // sequence closes over it, so the SIP side sees no loss.
            self.plain.seq_shift = self.plain.seq_shift.wrapping_sub(1);
            return None;
        }
        if !self.plain.forwarding || self.inject.is_some() || payload.len() > self.scratch.len() - rtp::RTP_HEADER_LEN {
            return None;
        }
        let mut marker = h.marker;
        if std::mem::take(&mut self.resync) {
            // After a sound we played: carry on from our last sequence number.
            self.plain.seq_shift = self.plain.last_seq.wrapping_add(1).wrapping_sub(h.sequence_number);
            marker = true;
        }
        let seq = h.sequence_number.wrapping_add(self.plain.seq_shift);
        let ssrc = *h.ssrc;
        self.plain.last_seq = seq;
        self.plain.ssrc = ssrc;
        self.plain.last_ts = h.timestamp;
        self.plain.last_ts_at = Some(at);
        let hdr = rtp::RtpHeader { marker, payload_type: *h.payload_type, sequence: seq, timestamp: h.timestamp, ssrc };
        let n = rtp::write_header(&hdr, &mut self.scratch[..]);
        self.scratch[n..n + payload.len()].copy_from_slice(payload);
        self.stats.to_plain_packets += 1;
        self.stats.to_plain_bytes += payload.len() as u64;
        Some((to, n + payload.len()))
    }

    /// The media clock "now" at `clock` Hz, extrapolated from the last packet we sent.
    fn media_clock_now(&self, now: Instant, clock: u32) -> u32 {
        match self.plain.last_ts_at {
            Some(at) => self.plain.last_ts.wrapping_add((now.saturating_duration_since(at).as_micros() as u64 * clock as u64 / 1_000_000) as u32),
            None => self.plain.last_ts,
        }
    }

    /// One 20 ms tick of an injected sound: its next frame as one packet, or its end.
    fn inject_tick(&mut self, now: Instant) {
        let Some(mut inj) = self.inject.take() else { return };
        let Some(_) = inj.playing.next_frame(&mut inj.frame) else {
            tracing::debug!(leg = %self.id, end = ?inj.playing.end(), "injected sound over");
            self.resync = true;
            return;
        };
        let first = inj.ts.is_none();
        let ts = match inj.ts {
            Some(ts) => ts,
            None => self.media_clock_now(now, inj.step * 50),
        };
        let n = inj.encoder.encode(&inj.frame[..], &mut inj.packet[rtp::RTP_HEADER_LEN..]);
        self.plain.last_seq = self.plain.last_seq.wrapping_add(1);
        let hdr = rtp::RtpHeader { marker: first, payload_type: inj.pt, sequence: self.plain.last_seq, timestamp: ts, ssrc: self.plain.ssrc };
        rtp::write_header(&hdr, &mut inj.packet[..]);
        self.plain.last_ts = ts;
        self.plain.last_ts_at = Some(inj.next_tick);
        inj.ts = Some(ts.wrapping_add(inj.step));
        if self.plain.remote.is_some() {
            inj.pending = rtp::RTP_HEADER_LEN + n;
            self.stats.to_plain_packets += 1;
            self.stats.to_plain_bytes += n as u64;
        }
        // Paced from the first tick, not from when we were woken: no drift.
        inj.next_tick += DTMF_TICK;
        if inj.next_tick + DTMF_TICK < now {
            inj.next_tick = now;
        }
        self.inject = Some(inj);
    }

    /// One 20 ms DTMF tick: the current digit's next packet, or the start of the next digit.
    fn dtmf_tick(&mut self, now: Instant) {
        let Some((pt, clock)) = self.telephone_event else {
            self.dtmf = DtmfQueue { digits: VecDeque::new(), current: None, next_tick: None };
            return;
        };
        let tick = self.dtmf.next_tick.unwrap_or(now);
        if self.dtmf.current.is_none() {
            let Some((digit, ms)) = self.dtmf.digits.pop_front() else {
                self.dtmf.next_tick = None;
                return;
            };
            // The event starts at the media clock "now", extrapolated from the last
            // relayed packet (RFC 4733: same SSRC and clock as the audio).
            let ts = self.media_clock_now(now, clock);
            self.dtmf.current = DtmfSender::new(digit, ms, clock).map(|s| s.starting_at(ts));
        }
        let Some(sender) = self.dtmf.current.as_mut() else { return };
        match sender.next_packet() {
            Some(pkt) => {
                self.plain.seq_shift = self.plain.seq_shift.wrapping_add(1);
                self.plain.last_seq = self.plain.last_seq.wrapping_add(1);
                let hdr = rtp::RtpHeader { marker: pkt.marker, payload_type: pt, sequence: self.plain.last_seq, timestamp: pkt.timestamp, ssrc: self.plain.ssrc };
                let mut buf = [0u8; 16];
                rtp::write_header(&hdr, &mut buf);
                buf[12..].copy_from_slice(&pkt.payload);
                if self.plain.remote.is_some() {
                    self.plain_queue.push_back((buf, 16));
                    self.stats.dtmf_packets += 1;
                }
                if pkt.is_last {
                    self.dtmf.current = None;
                    self.dtmf.next_tick = Some(tick + DTMF_TICK * DTMF_GAP_TICKS);
                } else {
                    self.dtmf.next_tick = Some(tick + DTMF_TICK);
                }
            }
            None => {
                self.dtmf.current = None;
                self.dtmf.next_tick = Some(tick + DTMF_TICK);
            }
        }
        if self.dtmf.current.is_none() && self.dtmf.digits.is_empty() {
            self.dtmf.next_tick = None;
        }
    }

    /// Errors from str0m: DTLS and ICE ones kill the leg, the rest (a malformed packet)
    /// are the packet's problem, not the leg's.
    fn check(&mut self, _now: Instant, res: Result<(), RtcError>) {
        match res {
            Ok(()) => {}
            Err(RtcError::Dtls(e)) => {
                tracing::info!(leg = %self.id, "DTLS failed: {e}");
                self.fail(FailReason::Dtls);
            }
            Err(RtcError::Ice(e)) => {
                tracing::info!(leg = %self.id, "ICE failed: {e}");
                self.fail(FailReason::Ice);
            }
            Err(e) => tracing::debug!(leg = %self.id, "dropped input: {e}"),
        }
    }

    fn fail(&mut self, reason: FailReason) {
        if self.state == State::Dead {
            return;
        }
        tracing::info!(leg = %self.id, "{reason}");
        self.state = State::Dead;
        let _ = self.rtc.close();
        self.events.push_back(GatewayEvent::Failed { id: self.id, reason });
    }
}

impl SeqExtend {
    /// The extended sequence number for str0m, and whether the source restarted.
    fn extend(&mut self, ssrc: u32, seq: u16) -> (u64, bool) {
        match self.ssrc {
            None => {
                self.ssrc = Some(ssrc);
                self.last = seq;
                // A non-zero ROC on the first packet would need signalling: start at ROC 0.
                self.ext = u64::from(seq);
                (self.ext, false)
            }
            Some(s) if s != ssrc => {
                self.ssrc = Some(ssrc);
                self.last = seq;
                self.ext += 1;
                (self.ext, true)
            }
            Some(_) => {
                let delta = seq.wrapping_sub(self.last) as i16 as i64;
                let ext = (self.ext as i64 + delta).max(0) as u64;
                if delta > 0 {
                    self.last = seq;
                    self.ext = ext;
                }
                (ext, false)
            }
        }
    }
}

fn rtc_config(setup: &LegSetup) -> RtcConfig {
    Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_crypto_provider(setup.crypto.clone())
        .set_dtls_cert(setup.cert.clone())
        // Audio only: no bandwidth estimation, no per-leg stats events.
        .set_stats_interval(None)
}

fn add_candidates(rtc: &mut Rtc, setup: &LegSetup) {
    for addr in &setup.candidates {
        match Candidate::host(*addr, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => tracing::warn!("candidate {addr}: {e}"),
        }
    }
}

fn freq(hz: u32) -> Frequency {
    Frequency::new(hz).unwrap_or(Frequency::EIGHT_KHZ)
}

/// The str0m codec for a SIP codec: (codec, str0m clock, channels).
fn str0m_codec(c: &PlainCodec) -> Option<(Codec, u32, Option<u8>)> {
    Some(match c.name.to_ascii_lowercase().as_str() {
        "opus" => (Codec::Opus, 48_000, Some(2)),
        "pcmu" => (Codec::PCMU, 8_000, None),
        "pcma" => (Codec::PCMA, 8_000, None),
        // str0m calls G722 16 kHz everywhere but on the wire (see CodecSpec::rtp_clock_rate).
        "g722" => (Codec::G722, 16_000, None),
        _ => return None,
    })
}

/// The clock as SDP and RTP timestamps know it.
fn wire_clock(p: &PayloadParams) -> u32 {
    if p.spec().codec == Codec::G722 {
        8_000
    } else {
        p.spec().clock_rate.get()
    }
}

fn plain_codec(p: &PayloadParams) -> PlainCodec {
    let spec = p.spec();
    let (name, channels, fmtp) = match spec.codec {
        Codec::Opus => {
            let mut f = Vec::new();
            if let Some(m) = spec.format.min_p_time {
                f.push(format!("minptime={m}"));
            }
            f.push(format!("useinbandfec={}", u8::from(spec.format.use_inband_fec.unwrap_or(true))));
            ("opus", 2, Some(f.join(";")))
        }
        Codec::PCMU => ("PCMU", 1, None),
        Codec::PCMA => ("PCMA", 1, None),
        Codec::G722 => ("G722", 1, None),
        _ => ("unknown", 1, None),
    };
    PlainCodec { pt: *p.pt(), name: name.into(), clock: wire_clock(p), channels, fmtp }
}

/// Put the audio m-line's payload types in the SIP side's preference order (str0m
/// writes them sorted by its own rules); types not in `order` keep their place after.
fn order_formats(sdp: &str, order: &[u8]) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive("\r\n") {
        let body = line.trim_end_matches("\r\n");
        match body.strip_prefix("m=audio ") {
            Some(rest) => {
                let mut parts: Vec<&str> = rest.split(' ').collect();
                if parts.len() > 2 {
                    let mut fmts = parts.split_off(2);
                    let rank = |f: &&str| f.parse::<u8>().ok().and_then(|pt| order.iter().position(|o| *o == pt)).unwrap_or(usize::MAX);
                    fmts.sort_by_key(rank);
                    parts.extend(fmts);
                }
                out.push_str("m=audio ");
                out.push_str(&parts.join(" "));
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The `a=mid` of the first audio m-line (str0m answers by mid; we need it at once).
fn first_audio_mid(sdp: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio");
        } else if in_audio {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                return Some(Mid::from(mid));
            }
        }
    }
    None
}
