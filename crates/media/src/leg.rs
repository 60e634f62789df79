//! One call leg's media state: its RTP streams in both directions, symmetric-RTP
//! latching, its codec pair and jitter buffer, DTMF in both directions, RTCP timing and
//! talk detection.
//!
//! The leg knows nothing about sockets or rooms: [`crate::engine::MediaCore`] routes
//! packets to it and, each tick, first pulls its packet out of the jitter buffer and
//! measures its energy ([`Leg::pull`]), then asks for the decoded frame of the few
//! legs that may be mixed ([`Leg::decode_pulled`]). This is also the one place that
//! touches the codec crate's API, so a change there is a change here.
//!
//! # One frame of look-ahead
//!
//! The frame a tick mixes is the one pulled the tick *before*; the frame pulled now
//! only feeds talk detection. Talk detection needs two loud frames before it lets a
//! speaker into the mix (its attack, so that a click is not mixed), so without the
//! look-ahead the first frame of every talk spurt was measured, found loud, and
//! dropped: each spurt lost its first 20 ms. With it, when the second loud frame makes
//! the leg a speaker, the first one is still waiting to be mixed. The cost is one
//! frame (20 ms) of delay on room audio; echo is not affected. Nothing is copied for
//! G.711 (the payload stays in its jitter-buffer slot, see
//! [`JitterBuffer::played_frame`]); other codecs decode as they pull, so their frame
//! waits in a second buffer.

use crate::codec::{g711, new_decoder, new_encoder, AudioDecoder, AudioEncoder, CodecKind, CodecState};
use crate::dtmf::{DtmfReceiver, DtmfSender};
use crate::engine::{Attachment, LegId, LegMediaStats, LegParams, MediaEvent};
use crate::jitter::{JitterBuffer, Played, Pop};
use crate::mixer::{self, Frame, NarrowFrame, TalkDetector, NARROW_SILENCE, SILENCE};
use crate::rtcp::RemoteReport;
use crate::rtp::{RtpReceiveStats, RtpSendStream};
use crate::FRAME_SAMPLES;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The negotiated codec of a leg with its stateful encoder, decoder and jitter buffer.
pub(crate) struct LegCodec {
    pub kind: CodecKind,
    pub payload_type: u8,
    /// RTP clock ticks per 20 ms frame (160 for G.711/G.722, 960 for Opus).
    pub samples_per_frame: u32,
    pub clock_rate: u32,
    pub encoder: Box<dyn AudioEncoder>,
    pub decoder: Box<dyn AudioDecoder>,
    pub jitter: JitterBuffer,
    /// Decoder output: room for the longest packet the decoders accept (120 ms).
    pub decoded: Box<[i16; FRAME_SAMPLES * 6]>,
    /// Codecs that decode as they pull: the newest frame, mixed next tick (look-ahead).
    /// Here rather than in [`Leg`] so that G.711 legs, the many, stay small.
    pub ahead_frame: Box<Frame>,
    /// Codecs with predictive state (G.722): the decoder's state right after decoding
    /// the frame this tick mixes, i.e. before the look-ahead frame was decoded. What a
    /// listener's decoder holds after that frame was forwarded to it (relay hand-over).
    pub state: Option<CodecState>,
}

impl LegCodec {
    pub fn new(kind: CodecKind, payload_type: u8) -> LegCodec {
        let clock_rate = kind.rtp_clock_rate();
        let samples_per_frame = kind.rtp_samples_per_frame();
        LegCodec {
            kind,
            payload_type,
            samples_per_frame,
            clock_rate,
            encoder: new_encoder(kind),
            decoder: new_decoder(kind),
            jitter: JitterBuffer::new(clock_rate, samples_per_frame),
            decoded: Box::new([0; FRAME_SAMPLES * 6]),
            ahead_frame: Box::new(SILENCE),
            state: None,
        }
    }
}

/// Rewrites echoed packets into our own stream (our SSRC, our sequence numbers, the
/// remote's timestamps shifted into our timestamp space).
#[derive(Default)]
pub(crate) struct EchoRewrite {
    pub remote_ssrc: Option<u32>,
    pub ts_offset: u32,
}

/// The relay fast path as seen from a listener (see [`crate::engine`], "Relay fast path").
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Relay {
    /// The speaker whose own frames this listener gets now; `None`: it gets a mix.
    pub from: Option<LegId>,
    /// Ticks a possible switch from mix to relay has waited for the speaker's pause.
    pub waited: u16,
    /// The listener's stream continues from its own encoder (handed the speaker's
    /// decoder state when a relay ended): its mixes are encoded personally, never
    /// from the room's shared encoder, whose state its decoder does not follow.
    pub own_encoder: bool,
}

/// What [`Leg::pull`] took out of the jitter buffer, until it is decoded or dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pulled {
    /// Nothing to play (not started, or idle).
    Nothing,
    /// A G.711 packet, measured but not decoded (its payload stays in the jitter
    /// buffer, see `JitterBuffer::played_frame`).
    Packet(Played),
    /// A G.711 gap to conceal.
    Lost,
    /// Audio decoded (or concealed: `None`) at once, in `ahead_frame`: codecs with
    /// predictive state decode every frame as it is pulled. The packet stays named for
    /// the relay path.
    Decoded(Option<Played>),
}

pub(crate) struct Leg {
    pub id: LegId,
    pub local_rtp: SocketAddr,
    pub params: Option<LegParams>,
    pub codec: Option<LegCodec>,
    pub attachment: Attachment,
    pub muted: bool,
    pub deaf: bool,

    /// Where we send RTP: the configured address until packets arrive, then the
    /// source they really come from (symmetric RTP).
    pub remote: Option<SocketAddr>,
    pub latched: bool,
    pub remote_rtcp: Option<SocketAddr>,

    pub tx: RtpSendStream,
    pub rx: RtpReceiveStats,
    pub remote_report: RemoteReport,
    pub echo: EchoRewrite,

    pub last_rx: Instant,
    pub timeout_reported: bool,
    pub next_rtcp: Instant,
    /// Packets sent as of the last RTCP report (SR only when we sent since).
    pub packets_at_last_report: u32,

    pub dtmf_rx: DtmfReceiver,
    pub dtmf_tx: Option<DtmfSender>,
    /// Digits queued behind the one being sent.
    pub dtmf_queue: std::collections::VecDeque<(char, u32)>,

    pub talk: TalkDetector,
    /// The newest frame pulled: measured for talk detection, mixed next tick (its
    /// audio is in `LegCodec::ahead_frame` when `Decoded`).
    pub ahead: Pulled,
    /// The frame pulled last tick, which this tick mixes; `Nothing` once decoded.
    pub current: Pulled,
    /// The energy of the last frame pulled.
    pub energy: u64,
    /// A G.711 frame was pulled and never decoded: the decoder's history is stale.
    pub decoder_stale: bool,
    /// This tick's frame to mix, decoded (valid when `has_frame`).
    pub frame: Frame,
    pub has_frame: bool,
    /// G.711: the same frame at 8 kHz (valid when `has_narrow`).
    pub narrow: NarrowFrame,
    pub has_narrow: bool,
    /// Was this leg a selected speaker in its room last tick.
    pub selected: bool,
    /// As a listener: relay or mix.
    pub relay: Relay,
    /// A prompt playing to this leg (boxed: most legs never have one).
    pub prompt: Option<Box<crate::player::Playing>>,
    /// Linear gain on what the leg says (into the room) and on what it hears; 1.0 =
    /// none. Either one off 1.0 takes the leg off the relay fast path.
    pub gain_in: f32,
    pub gain_out: f32,
    /// Its own track of a room recording: what it says, every tick.
    pub record: Option<crate::recorder::Tap>,
    /// A live stream of what it says and/or hears (see [`crate::live`]), and what it
    /// said this tick (kept from phase 1 for phase 2).
    pub live: Option<crate::live::LiveAudio>,
    pub live_says: crate::mixer::Frame,
}

impl Leg {
    pub fn new(id: LegId, local_rtp: SocketAddr, now: Instant) -> Leg {
        // Spread first reports over the interval so that legs allocated together do not
        // all report in the same tick.
        let jitter_ms = crate::rtp::random_u32() % 2_500;
        Leg {
            id,
            local_rtp,
            params: None,
            codec: None,
            attachment: Attachment::None,
            muted: false,
            deaf: false,
            remote: None,
            latched: false,
            remote_rtcp: None,
            tx: RtpSendStream::new(),
            rx: RtpReceiveStats::default(),
            remote_report: RemoteReport::default(),
            echo: EchoRewrite::default(),
            last_rx: now,
            timeout_reported: false,
            next_rtcp: now + Duration::from_millis(2_500 + jitter_ms as u64),
            packets_at_last_report: 0,
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            dtmf_queue: Default::default(),
            talk: TalkDetector::default(),
            ahead: Pulled::Nothing,
            current: Pulled::Nothing,
            energy: 0,
            decoder_stale: false,
            frame: SILENCE,
            has_frame: false,
            narrow: NARROW_SILENCE,
            has_narrow: false,
            selected: false,
            relay: Relay::default(),
            prompt: None,
            gain_in: 1.0,
            gain_out: 1.0,
            record: None,
            live: None,
            live_says: crate::mixer::SILENCE,
        }
    }

    /// Apply offer/answer results. Keeps codec state when the codec is unchanged.
    pub fn configure(&mut self, p: LegParams) {
        let same_codec = self.codec.as_ref().map(|c| c.kind == p.codec).unwrap_or(false);
        if same_codec {
            if let Some(c) = self.codec.as_mut() {
                c.payload_type = p.payload_type;
            }
        } else {
            self.codec = Some(LegCodec::new(p.codec, p.payload_type));
            // What was pulled names slots of the old jitter buffer.
            self.forget_pulled();
            // A new codec is a new stream for the listener: start from the mix.
            self.relay = Relay::default();
            // telephone-event runs on the audio codec's clock (RFC 4733 2.1).
            self.dtmf_rx = DtmfReceiver::with_clock_rate(p.codec.rtp_clock_rate());
        }
        if p.remote != self.params.as_ref().and_then(|o| o.remote) {
            // A new remote from SDP: send there until packets from it arrive.
            self.remote = p.remote;
            self.remote_rtcp = p.remote.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)));
            self.latched = false;
        }
        self.params = Some(p);
    }

    pub fn may_send(&self) -> bool {
        self.params.as_ref().map(|p| p.send).unwrap_or(true) && self.remote.is_some()
    }

    pub fn may_receive(&self) -> bool {
        self.params.as_ref().map(|p| p.recv).unwrap_or(true)
    }

    /// RTP clock ticks per frame (G.711 default before configure).
    pub fn samples_per_frame(&self) -> u32 {
        self.codec.as_ref().map(|c| c.samples_per_frame).unwrap_or(160)
    }

    pub fn clock_rate(&self) -> u32 {
        self.codec.as_ref().map(|c| c.clock_rate).unwrap_or(8_000)
    }

    pub fn media_stats(&self) -> LegMediaStats {
        let mut s = LegMediaStats { received: self.rx.received, sent: self.tx.packets_sent, ..Default::default() };
        if let Some(c) = &self.codec {
            let j = c.jitter.stats();
            s.lost = j.lost;
            s.late = j.late;
            s.discarded = j.discarded;
            s.resyncs = j.resyncs;
            s.jitter_us = (j.jitter_ms * 1000.0) as u32;
            s.target_delay_ms = j.target_delay_ms;
        }
        s
    }

    /// Symmetric RTP: latch to the source of the first packet (after each configure
    /// that changed the remote). Returns the event to report, if this latched.
    pub fn latch(&mut self, from: SocketAddr) -> Option<MediaEvent> {
        if self.latched {
            return None;
        }
        self.latched = true;
        self.remote = Some(from);
        self.remote_rtcp = Some(SocketAddr::new(from.ip(), from.port().wrapping_add(1)));
        Some(MediaEvent::FirstPacket { leg: self.id, from })
    }

    /// Phase 1 of a tick: last tick's frame becomes the one to mix (see the module
    /// docs on look-ahead); take this tick's packet (or gap) out of the jitter buffer
    /// and return its mean-square energy per sample, for talk detection.
    ///
    /// G.711: the energy is read from the payload bytes (a table lookup per byte) and
    /// decoding is left to [`decode_pulled`](Self::decode_pulled), which the mixer
    /// calls only for the legs it may mix; a gap counts as half the previous frame's
    /// energy (concealment repeats and fades it). Cost: 160 lookups.
    /// Other codecs carry predictive state from frame to frame, so they decode now
    /// and the energy is that of the frame. Cost: a decode + 320 multiply-adds, and a
    /// 640-byte copy of last tick's frame.
    pub fn pull(&mut self, now: Instant) -> u64 {
        self.has_frame = false;
        self.has_narrow = false;
        if matches!(self.current, Pulled::Packet(_) | Pulled::Lost) {
            // Last tick's frame to mix was never decoded.
            self.decoder_stale = true;
        }
        self.current = std::mem::replace(&mut self.ahead, Pulled::Nothing);
        let Some(c) = self.codec.as_mut() else { return 0 };
        if matches!(self.current, Pulled::Decoded(_)) {
            self.frame.copy_from_slice(&c.ahead_frame[..]);
        }
        let energy = match (c.jitter.pop(now), c.kind) {
            (Pop::Empty, _) => 0,
            (Pop::Frame(payload), CodecKind::Pcmu) => {
                let energy = g711::ulaw_energy(payload);
                self.ahead = Pulled::Packet(c.jitter.last_played().expect("a frame was just played"));
                energy
            }
            (Pop::Frame(payload), CodecKind::Pcma) => {
                let energy = g711::alaw_energy(payload);
                self.ahead = Pulled::Packet(c.jitter.last_played().expect("a frame was just played"));
                energy
            }
            (Pop::Lost, kind) if kind.is_g711() => {
                self.ahead = Pulled::Lost;
                self.energy / 2
            }
            (pop, _) => {
                // The state after the frame this tick mixes, before the next is decoded.
                c.state = c.decoder.state();
                let (n, played) = match pop {
                    Pop::Frame(payload) => (c.decoder.decode(payload, &mut c.decoded[..]), c.jitter.last_played()),
                    _ => (c.decoder.conceal(&mut c.decoded[..]), None),
                };
                let mut has = false;
                Self::take_decoded(&mut c.ahead_frame, &mut has, &c.decoded[..n]);
                if has {
                    self.ahead = Pulled::Decoded(played);
                    mixer::frame_energy(&c.ahead_frame)
                } else {
                    0
                }
            }
        };
        self.energy = energy;
        energy
    }

    /// Whether this tick has audio to mix (a packet or a gap to conceal, pulled last tick).
    pub fn pulled_audio(&self) -> bool {
        self.current != Pulled::Nothing
    }

    /// Phase 2 for a leg that may be mixed: make `self.frame` hold this tick's audio
    /// to mix, decoded (G.711 legs were only measured by [`pull`](Self::pull)) or
    /// concealed; `has_frame` says whether there is any. Cost: at most one decode.
    pub fn decode_pulled(&mut self) {
        let law = match self.current {
            Pulled::Nothing => return,
            Pulled::Decoded(_) => {
                // Decoded when pulled; `pull` moved it into `frame`.
                self.current = Pulled::Nothing;
                self.has_frame = true;
                return;
            }
            Pulled::Packet(_) | Pulled::Lost => {
                let Some(c) = self.codec.as_ref() else { return };
                if c.kind == CodecKind::Pcma { g711::Law::Alaw } else { g711::Law::Ulaw }
            }
        };
        let c = self.codec.as_mut().expect("checked");
        if self.decoder_stale {
            // Frames were skipped: start the filters afresh rather than from old audio.
            c.decoder.reset();
            self.decoder_stale = false;
        }
        let payload = match self.current {
            Pulled::Packet(played) => c.jitter.played_frame(played),
            _ => None,
        };
        let n = match payload {
            Some(payload) => {
                // The 8 kHz frame straight from the table, for narrowband mixing.
                let n8 = g711::expand(law, payload, &mut self.narrow);
                self.narrow[n8..].fill(0);
                c.decoder.decode(payload, &mut c.decoded[..])
            }
            None => {
                let n = c.decoder.conceal(&mut c.decoded[..]);
                // Concealment runs at 16 kHz; its even samples are its 8 kHz version
                // (it repeats band-limited audio).
                for (k, s) in self.narrow.iter_mut().enumerate() {
                    *s = c.decoded.get(2 * k).copied().filter(|_| 2 * k < n).unwrap_or(0);
                }
                n
            }
        };
        self.current = Pulled::Nothing;
        Self::take_decoded(&mut self.frame, &mut self.has_frame, &c.decoded[..n]);
        self.has_narrow = self.has_frame;
    }

    /// Whether listeners can hear this leg at all (configured, not muted, receiving):
    /// what the relay path counts to find a listener's only audible speaker.
    pub fn audible(&self) -> bool {
        self.codec.is_some() && !self.muted && self.may_receive()
    }

    /// The frame this tick mixes, as the relay path forwards it: `None` nothing to
    /// play, `Some(None)` a gap, `Some(Some(payload))` the packet as received. Call
    /// before [`decode_pulled`](Self::decode_pulled), which consumes it.
    pub fn relay_frame(&self) -> Option<Option<&[u8]>> {
        let c = self.codec.as_ref()?;
        match self.current {
            Pulled::Nothing => None,
            Pulled::Lost | Pulled::Decoded(None) => Some(None),
            // A slot reused since (more than a ring of packets in one tick) is a gap.
            Pulled::Packet(p) | Pulled::Decoded(Some(p)) => Some(c.jitter.played_frame(p)),
        }
    }

    /// Drop what was pulled and not mixed yet (the leg left its room, or its codec and
    /// jitter buffer were replaced).
    pub fn forget_pulled(&mut self) {
        if matches!(self.current, Pulled::Packet(_) | Pulled::Lost) || matches!(self.ahead, Pulled::Packet(_) | Pulled::Lost) {
            self.decoder_stale = true;
        }
        self.ahead = Pulled::Nothing;
        self.current = Pulled::Nothing;
        self.has_frame = false;
        self.has_narrow = false;
    }

    /// Copy decoder output into the 20 ms frame. Packets longer than 20 ms: the first
    /// 20 ms is mixed (senders of conference legs use the ptime we answered, 20 ms).
    fn take_decoded(frame: &mut Frame, has_frame: &mut bool, decoded: &[i16]) {
        let n = decoded.len().min(FRAME_SAMPLES);
        *has_frame = n > 0;
        if n > 0 {
            frame[..n].copy_from_slice(&decoded[..n]);
            frame[n..].fill(0);
        }
    }
}
