//! One call leg's media state: its RTP streams in both directions, symmetric-RTP
//! latching, its codec pair and jitter buffer, DTMF in both directions, RTCP timing and
//! talk detection.
//!
//! The leg knows nothing about sockets or rooms: [`crate::engine::MediaCore`] routes
//! packets to it and asks it for its decoded frame each tick. This is also the one
//! place that touches the codec crate's API, so a change there is a change here.

use crate::codec::{new_decoder, new_encoder, AudioDecoder, AudioEncoder, CodecKind};
use crate::dtmf::{DtmfReceiver, DtmfSender};
use crate::engine::{Attachment, LegId, LegParams, MediaEvent};
use crate::jitter::{JitterBuffer, Pop};
use crate::mixer::{Frame, TalkDetector, SILENCE};
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
    /// This tick's decoded frame (valid when `has_frame`).
    pub frame: Frame,
    pub has_frame: bool,
    /// Was this leg a selected speaker in its room last tick.
    pub selected: bool,
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
            frame: SILENCE,
            has_frame: false,
            selected: false,
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

    /// Pull this tick's frame out of the jitter buffer into `self.frame`: decoded,
    /// concealed (lost packet) or absent (nothing buffered). Cost: one decode.
    pub fn pull_frame(&mut self, now: Instant) {
        self.has_frame = false;
        let Some(c) = self.codec.as_mut() else { return };
        // Packets longer than 20 ms: the first 20 ms is mixed (senders of conference
        // legs use the ptime we answered, 20 ms).
        let n = match c.jitter.pop(now) {
            Pop::Frame(payload) => c.decoder.decode(payload, &mut c.decoded[..]),
            Pop::Lost => c.decoder.conceal(&mut c.decoded[..]),
            Pop::Empty => 0,
        };
        if n > 0 {
            let n = n.min(FRAME_SAMPLES);
            self.frame[..n].copy_from_slice(&c.decoded[..n]);
            self.frame[n..].fill(0);
            self.has_frame = true;
        }
    }
}
