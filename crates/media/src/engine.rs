//! The sans-IO media core: one [`MediaCore`] per worker thread owns that worker's legs
//! and its share of each room, takes packets, control commands and 20 ms ticks with the
//! current time, and yields packets to send and events for the signalling engine.
//! It owns no socket, no thread and no clock, so tests drive it with virtual time.
//!
//! # Run loop
//!
//! ```text
//! loop {
//!     // 1. control: drain the worker's command queue (never waits on signalling)
//!     core.handle_input(now, Input::Command(cmd));
//!     // 2. I/O: for each datagram read (batched) from the RTP or RTCP sockets
//!     core.handle_input(now, Input::Receive { leg, socket, from, data });
//!     // 3. every 20 ms: the mixer tick (single worker: Input::Tick does both phases)
//!     core.tick_publish(now, &mut my_publication);   // measure, detect talk, decode + offer speakers
//!     barrier.wait();                                // all workers published this tick
//!     core.tick_mix(now, &all_publications);         // select, mix, encode, packetize
//!     // 4. drain outputs
//!     while let Some(out) = core.poll_output() {
//!         match out {
//!             Output::Transmit(t) => send_batch.push(socket_of(t.leg, t.socket), t.dest, t.data),
//!             Output::Event(e) => (events)(e),
//!         }
//!     }
//!     send_batch.flush();                            // sendmmsg
//! }
//! ```
//!
//! # Rooms spanning workers
//!
//! Legs are spread over workers round-robin at allocation, so a big room has legs on
//! every worker. Each tick has two phases around one barrier:
//!
//! 1. *publish*: each worker pulls a frame from each of its room legs' jitter buffers,
//!    measures its energy (G.711: from the payload bytes, no decoding) and runs talk
//!    detection; then it decodes only its N best talking, unmuted legs per room and
//!    copies their frames into its [`Publication`] (double-buffered by tick parity, so
//!    a fast worker writing tick t+1 never disturbs a slow one still reading tick t).
//!    The frame decoded and published is the one pulled the tick before: talk
//!    detection looks one frame ahead of the mix, so that the frame that starts a talk
//!    spurt is mixed too (see `leg.rs`; it costs 20 ms of delay).
//! 2. *mix*: after the barrier every worker reads all publications for the rooms it
//!    has legs in, selects the same N loudest speakers (a pure function of the
//!    published data, see [`crate::mixer`]), sums them once, and for each of its
//!    listeners sends either the room's shared encode (one per codec per worker) or,
//!    for selected speakers and topology exceptions, a personal mix.
//!
//! No lock is taken per packet; one read lock per publication per tick.
//!
//! # Relay fast path
//!
//! Wherever a listener can hear exactly one speaker and that speaker has the
//! listener's codec (a room of two, which is how a two-party call is built; or a room
//! whose topology or mutes leave a listener one audible leg, e.g. both parties of a
//! call with a muted supervisor listening), the listener gets the speaker's own
//! encoded frames: no decode, no mix, no encode, so no tandem coding loss (G.722 lost
//! 0.27 PESQ to it) and a fraction of the cost.
//!
//! *Who is audible* is a property of the room, not of who talks: a leg is audible when
//! it is configured, not muted and receiving (`Leg::audible`); a listener's
//! audible speakers are the room's audible legs minus itself and the ones the topology
//! blocks for it (none if it is deaf). So the choice between relay and mix changes only
//! when membership, mute, deafness, topology or a codec changes, never with talk
//! spurts, and background noise passes as it would on a direct call.
//!
//! *Across workers*: in phase 1 each worker counts its audible legs per room and, for
//! rooms that can have a relay listener (at most two audible legs last tick, or a
//! non-default topology), offers each of them as a [`RelaySource`]: the payload of the
//! frame this tick mixes (copied into the publication's byte arena), a gap, or nothing;
//! whether it talks; and for G.722 its decoder state (below). In phase 2 every worker
//! sees the room's total and finds, per listener, the one source if there is exactly
//! one (see `only_audible_speaker`). Cost per relayed listener per tick: one
//! publication lookup per worker, a 12-byte header and a payload copy; no allocation
//! (the arena keeps its capacity), no lock beyond the publication's read lock.
//!
//! *Not decoding what nobody mixes*: in a room of two where both listeners were on
//! relay and nobody mixed (last tick, everywhere; this tick, on this worker), the next
//! tick leaves relayed packets out of the mix candidates (no G.711 decode, no frame
//! copy; it is most of a relayed call's cost). A listener whose relay ends in such a
//! tick (a third party joined, ...) gets the speaker's packet forwarded one tick more,
//! so its first mixed frame, a tick later, has the speaker in it.
//!
//! *Timing*: the frame forwarded is the one the mix would use this tick (pulled from
//! the speaker's jitter buffer last tick), so relay and mix carry the same audio at the
//! same moment and a switch between them neither skips nor repeats a frame. The
//! listener's stream is ours throughout: our SSRC, our sequence numbers, our media
//! clock advancing one frame per tick, with the listener's payload type. So sequence
//! numbers and timestamps are continuous across every switch and no marker bit is set
//! (a marker would make many receivers re-synchronise their jitter buffer: an audible
//! glitch for no reason). A packet the speaker's jitter buffer gave up on is forwarded
//! as a gap, the sequence number and clock advancing without a packet, so the
//! listener's decoder conceals it as on a direct call. A pause (nothing to play: DTX,
//! idle, not started): a G.711 listener gets the mix, i.e. silence, so its stream stays
//! as steady as it always was (G.711 has no state to mind, so it switches back at the
//! next packet); a G.722 or Opus listener gets nothing, as on a direct call with DTX
//! (the clock advances, the next packet carries the marker), which keeps it on the
//! speaker's own stream.
//! carries the marker. Only packets of exactly one 20 ms frame are forwarded (G.711 and
//! G.722: 160 bytes; Opus: by its TOC byte); others are mixed. RFC 4733 events are
//! taken out at receive as before (reported as [`MediaEvent::Dtmf`], not forwarded).
//!
//! *Switching, and the state of stateful codecs*. A G.711 stream has no state to
//! mind: it switches at once both ways. G.722 is backward-adaptive ADPCM: the
//! listener's decoder tracks the state of the encoder that made the stream, and a
//! change of encoder leaves it mistracking (distortion until it re-converges). Opus
//! carries prediction across frames too.
//! - Relay to mix (a third speaker joins, the speaker is muted, ...): the listener's
//!   stream continues from the listener's own encoder, which already holds exactly the
//!   state its decoder has. For G.722 that is by construction: the sub-band state is
//!   the same in encoder and decoder, and our decoder of the speaker's stream decoded
//!   the very frames we forwarded; each source publishes its decoder state as of the
//!   frame forwarded (taken before the look-ahead frame is decoded) with the last
//!   samples it decoded, and each relayed tick hands them to the listener's encoder
//!   ([`crate::codec::AudioEncoder::continue_from`]: the encoder's codes are then
//!   bit-exact with those of the speaker's encoder on the same input). What is left is
//!   the one seam tandem coding cannot avoid: the mixed audio went through our decoder
//!   and encoder once more, so it lags the forwarded audio by the G.722 filter-bank
//!   delay (23 samples, 1.4 ms), in the first mixed frame only (without the hand-over,
//!   three frames are distorted; `tests/relay.rs`). For Opus the encoder restarts (a fresh stream the decoder takes as a
//!   splice at a frame edge). After a hand-over the listener stays on its own encoder
//!   (its mixes are personal, never the room's shared encode, which its decoder never
//!   followed).
//! - Mix to relay: the speaker's encoder state is not ours to set, so for G.722 and
//!   Opus the switch waits until the speaker pauses (its talk detector says silent), at
//!   most `RELAY_WAIT_TICKS` (1 s); whatever mismatch is left then re-converges in
//!   low-level audio. A two-party call starts on relay at once (a party that just
//!   joined is not talking yet).
//!
//! # Per-packet cost (receive)
//!
//! Echo: header parse + 12-byte header rewrite + copy into the transmit arena.
//! Room: header parse + receive stats + jitter buffer insert (a copy of the payload);
//! per tick, every G.711 leg costs an energy measurement (160 table lookups) and only
//! the candidate speakers a decode.

use crate::codec::CodecKind;
use crate::fastmap::FastMap;
use crate::leg::Leg;
use crate::codec::CONTINUE_HISTORY;
use crate::mixer::{self, Candidate, Frame, MixSum, NarrowFrame, Publication, RelayFrame, RelaySource, NARROW_SILENCE, SILENCE};
use crate::rtcp;
use crate::rtp;
use crate::player::{Playing, PromptEnd, PromptId};
use crate::topology::Topology;
use crate::FRAME_SAMPLES;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A call leg: one RTP/RTCP port pair and the remote endpoint behind it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// A conference room.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub u64);

/// Offer/answer results for a leg.
#[derive(Clone, Debug, PartialEq)]
pub struct LegParams {
    /// Remote RTP address from SDP; `None` = latch from the first packet.
    pub remote: Option<SocketAddr>,
    pub codec: CodecKind,
    pub payload_type: u8,
    pub telephone_event_pt: Option<u8>,
    /// We may send audio (false: on hold / recvonly).
    pub send: bool,
    /// We take audio from the remote (false: sendonly / inactive).
    pub recv: bool,
}

/// What a leg's received media goes to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// Nothing: media is received (stats, DTMF, timeout) but not used; nothing is sent.
    None,
    /// Every RTP packet is sent back to the remote, re-stamped as our stream.
    Echo,
    /// The leg is a participant of a room.
    Room(RoomId),
}

/// Events for the signalling engine.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    Dtmf { leg: LegId, digit: char, duration_ms: u32 },
    Talking { leg: LegId, talking: bool },
    RtpTimeout { leg: LegId },
    FirstPacket { leg: LegId, from: SocketAddr },
    /// The leg's media is gone (after [`Command::Release`]); what it received and sent,
    /// for the log (a call's audio problems are read off these).
    Released { leg: LegId, stats: LegMediaStats },
    /// A prompt is over (see [`crate::player`]). A room prompt is reported by every
    /// worker that played it: the first report counts.
    PromptEnded { target: PromptTarget, prompt: PromptId, end: PromptEnd },
    /// A recording file started with [`crate::MediaHandle::start_recording`] is complete
    /// (`failed`: it could not be written; see the log).
    RecordingFinished { recording: u64, samples: u64, dropped: u64, failed: bool },
}

/// Who hears a prompt: one leg (mixed over what it hears from its room, if any), or
/// everyone in a room (mixed into the room's mix, so it passes topology and relay).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PromptTarget {
    Leg(LegId),
    Room(RoomId),
}

/// A leg's RTP counters over its life: received and sent packets, and what its jitter
/// buffer had to do (late, lost, dropped, restarts).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LegMediaStats {
    pub received: u32,
    pub sent: u32,
    /// Packets played out as missing (lost, or too late).
    pub lost: u64,
    /// Packets that came after their playout time.
    pub late: u64,
    /// Packets dropped to bound or reduce the delay.
    pub discarded: u64,
    /// Sequence or timestamp discontinuities the buffer restarted on.
    pub resyncs: u64,
    /// RFC 3550 interarrival jitter, and the playout delay the buffer aimed for at the end.
    pub jitter_us: u32,
    pub target_delay_ms: u32,
}

/// Which socket of the leg's port pair.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Socket {
    Rtp,
    Rtcp,
}

/// Control commands, queued by [`crate::runtime::MediaHandle`] to the owning worker.
#[derive(Debug)]
pub enum Command {
    AddLeg { leg: LegId, local_rtp: SocketAddr },
    Configure(LegId, LegParams),
    Attach(LegId, Attachment),
    SetBlocked(RoomId, Vec<(LegId, LegId)>),
    SetMuted(LegId, bool),
    SetDeaf(LegId, bool),
    SendDtmf { leg: LegId, digit: char, duration_ms: u32 },
    Release(LegId),
    /// Record the room's full mix into this tap (None: stop). See [`crate::recorder`].
    Tap(RoomId, Option<crate::recorder::Tap>),
    /// Play a prompt (replacing the one playing there, which ends `Stopped`).
    Play(PromptTarget, Box<Playing>),
    /// Stop the prompt playing there, if it is this one (None: whichever).
    StopPrompt(PromptTarget, Option<PromptId>),
    /// Gain on what the leg says and on what it hears, in dB (see [`db_to_gain`]).
    SetGain { leg: LegId, in_db: f32, out_db: f32 },
    /// Record what the leg says (its own track of a room recording; None: stop).
    RecordLeg(LegId, Option<crate::recorder::Tap>),
    /// Stream the room's mix live, and play the stream's playback into it (None:
    /// stop). On one worker, like [`Command::Tap`]. See [`crate::live`].
    LiveRoom(RoomId, Option<crate::live::LiveAudio>),
    /// Stream what the leg says and/or hears live, and play the stream's playback to
    /// it (None: stop). See [`crate::live`].
    LiveLeg(LegId, Option<crate::live::LiveAudio>),
}

/// Most gain a leg may get either way, in dB: beyond this a quiet line is mostly
/// noise, and a loud one is better muted.
pub const MAX_GAIN_DB: f32 = 24.0;

/// dB to a linear factor, clamped to ±[`MAX_GAIN_DB`]; 0 dB is exactly 1.0 (no work).
pub fn db_to_gain(db: f32) -> f32 {
    if db == 0.0 || !db.is_finite() {
        return 1.0;
    }
    10f32.powf(db.clamp(-MAX_GAIN_DB, MAX_GAIN_DB) / 20.0)
}

/// Scales a frame by `gain`, saturating.
fn apply_gain(frame: &mut [i16], gain: f32) {
    for s in frame.iter_mut() {
        *s = (*s as f32 * gain).clamp(i16::MIN as f32, i16::MAX as f32) as i16;
    }
}

pub enum Input<'a> {
    Receive { leg: LegId, socket: Socket, from: SocketAddr, data: &'a [u8] },
    Command(Command),
    /// A 20 ms mixer tick for a core that is the only worker (both phases).
    Tick,
}

pub struct Transmit<'a> {
    pub leg: LegId,
    pub socket: Socket,
    pub dest: SocketAddr,
    pub data: &'a [u8],
}

pub enum Output<'a> {
    Transmit(Transmit<'a>),
    Event(MediaEvent),
}

/// Core settings.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// No RTP for this long => [`MediaEvent::RtpTimeout`] (once, until packets resume).
    pub rtp_timeout: Duration,
    /// CNAME in our RTCP SDES.
    pub cname: String,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig { rtp_timeout: Duration::from_secs(60), cname: "switchboard".into() }
    }
}

struct TxMeta {
    leg: LegId,
    socket: Socket,
    dest: SocketAddr,
    start: u32,
    len: u32,
}

/// Packets produced since the last drain: one byte arena and their metadata, both
/// reused (cleared, capacity kept) so the steady state does not allocate.
struct TxQueue {
    bytes: Vec<u8>,
    meta: Vec<TxMeta>,
    /// Next packet `poll_output` hands out.
    cursor: usize,
}

impl TxQueue {
    /// Queue an RTP packet: header written, payload copied into the arena.
    fn push_rtp(&mut self, leg: LegId, socket: Socket, dest: SocketAddr, header: &rtp::RtpHeader, payload: &[u8]) {
        let start = self.bytes.len();
        let mut h = [0u8; rtp::RTP_HEADER_LEN];
        rtp::write_header(header, &mut h);
        self.bytes.extend_from_slice(&h);
        self.bytes.extend_from_slice(payload);
        self.meta.push(TxMeta { leg, socket, dest, start: start as u32, len: (self.bytes.len() - start) as u32 });
    }
}

/// The room's common encode for one codec this tick, shared by every listener that
/// hears exactly the common mix.
struct SharedEncode {
    codec: CodecKind,
    encoder: Box<dyn crate::codec::AudioEncoder>,
    payload: Vec<u8>,
    len: usize,
    /// Tick number this payload was encoded for.
    tick: u64,
}

/// This worker's part of a room.
struct Room {
    /// Slab indices of this worker's legs in the room.
    members: Vec<usize>,
    topology: Topology,
    shared: Vec<SharedEncode>,
    /// Audible legs in the whole room last tick (every worker computes the same from
    /// the publications): beyond two, with the default topology, nobody can be on the
    /// relay path, so no relay sources are offered.
    last_audible: u32,
    /// This worker's listeners in the room that got a mix last tick (published).
    mixed_last: u32,
    /// Leave relayed speakers out of the mix candidates next tick: a room of two with
    /// both on relay and nobody mixing needs no decoded speaker (see the module docs).
    skip_candidates: bool,
    /// Recording of the room's mix (see `crate::recorder`); while set, the room's mix is
    /// computed even when every listener is on the relay path.
    tap: Option<crate::recorder::Tap>,
    /// A prompt everyone in the room hears (join and leave sounds, announcements).
    prompt: Option<Box<Playing>>,
    /// A live stream of the room's mix (see `crate::live`); its playback is one more
    /// speaker, published by this worker so that every worker's listeners hear it.
    live: Option<crate::live::LiveAudio>,
    /// This tick's playback frame, and whether there is one (published).
    live_frame: Frame,
    live_voiced: bool,
}

impl Default for Room {
    fn default() -> Room {
        Room {
            members: Vec::new(),
            topology: Topology::default(),
            shared: Vec::new(),
            last_audible: 0,
            mixed_last: 0,
            skip_candidates: false,
            tap: None,
            prompt: None,
            live: None,
            live_frame: SILENCE,
            live_voiced: false,
        }
    }
}

/// Ticks a switch from mix to relay waits for the speaker to pause (stateful codecs).
const RELAY_WAIT_TICKS: u16 = 50;

/// Whether a relay source's frame can go out as one of the listener's 20 ms frames.
fn relayable(kind: CodecKind, frame: RelayFrame, payload: &[u8]) -> bool {
    match frame {
        // A lost packet is forwarded as a gap: the listener's decoder conceals it, as
        // on a direct call. A pause: G.711 has no state to mind, so the mix (silence)
        // fills it and the stream stays as steady as it always was; stateful codecs
        // forward the pause as such.
        RelayFrame::Lost => true,
        RelayFrame::Nothing => !kind.is_g711(),
        RelayFrame::Packet { .. } => match kind {
            // One byte per 8 kHz sample (G.711) or per 16 kHz sample pair (G.722).
            CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722 => payload.len() == 160,
            CodecKind::Opus => opus_is_20ms(payload),
        },
    }
}

/// An Opus packet (RFC 6716 section 3.1) that carries exactly 20 ms.
fn opus_is_20ms(payload: &[u8]) -> bool {
    let Some(&toc) = payload.first() else { return false };
    let config = toc >> 3;
    // Frame duration in units of 2.5 ms.
    let frame = match config {
        0..=11 => [4, 8, 16, 24][(config % 4) as usize],
        12..=15 => [4, 8][(config % 2) as usize],
        _ => [1, 2, 4, 8][(config % 4) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => match payload.get(1) {
            Some(b) => (b & 0x3f) as u32,
            None => return false,
        },
    };
    frame * frames == 8
}

/// The only speaker `l` can hear in the room, if there is exactly one, it has `l`'s
/// codec and its frame this tick fits `l`'s stream. Cost for a room of two: a couple
/// of comparisons per publication.
fn only_audible_speaker<'p>(
    pubs: &[&'p Publication],
    room: RoomId,
    topology: &Topology,
    l: &Leg,
    total_audible: u32,
) -> Option<(&'p Publication, &'p RelaySource)> {
    if l.deaf {
        return None;
    }
    let kind = l.codec.as_ref()?.kind;
    let check_topology = topology.has_exceptions(l.id);
    if !check_topology && total_audible.saturating_sub(l.audible() as u32) != 1 {
        return None;
    }
    let mut found = None;
    for p in pubs {
        for r in p.relay_room(room).1 {
            if r.leg == l.id || (check_topology && topology.blocks(r.leg, l.id)) {
                continue;
            }
            if found.is_some() {
                return None;
            }
            found = Some((*p, r));
        }
    }
    let (p, r) = found?;
    (r.codec == kind && relayable(kind, r.frame, p.relay_payload(r))).then_some((p, r))
}

/// Max RTP payload we produce (Opus at 20 ms stays far below).
const MAX_PAYLOAD: usize = 1500;

/// Encode an 8 kHz mix with an encoder of a G.711 codec (which always takes one).
fn encode_narrow(encoder: &mut dyn crate::codec::AudioEncoder, pcm8: &NarrowFrame, out: &mut [u8]) -> usize {
    encoder.encode_narrow(pcm8, out).expect("G.711 encoders take 8 kHz frames")
}

pub struct MediaCore {
    cfg: CoreConfig,
    legs: Vec<Option<Leg>>,
    free_slots: Vec<usize>,
    index: FastMap<LegId, usize>,
    rooms: FastMap<RoomId, Room>,
    /// Legs with DTMF being sent (checked every tick whatever their attachment).
    dtmf_legs: Vec<usize>,
    /// Legs with a prompt playing (see `play_leg_prompts`).
    prompt_legs: Vec<usize>,
    /// Legs recording their own track: rooms skip the per-member track pass at 0.
    recording_legs: usize,
    /// Legs with a live stream (see `crate::live`): likewise for the live pass.
    live_legs: usize,
    /// This tick's playback frame for the listener being mixed (live streams).
    playback_frame: Frame,
    /// This tick's prompt frame for the listener being mixed.
    prompt_frame: Frame,
    events: VecDeque<MediaEvent>,
    tx: TxQueue,
    /// For single-worker ticks.
    own_publication: Publication,
    mix: MixSum,
    scratch_frame: Frame,
    scratch_narrow: NarrowFrame,
    scratch_payload: Vec<u8>,
    tick_count: u64,
    /// Round-robin cursor for the once-a-second housekeeping (timeouts, RTCP).
    housekeeping_cursor: usize,
    epoch: Instant,
}

impl MediaCore {
    pub fn new(cfg: CoreConfig) -> MediaCore {
        MediaCore {
            cfg,
            legs: Vec::new(),
            free_slots: Vec::new(),
            index: FastMap::default(),
            rooms: FastMap::default(),
            dtmf_legs: Vec::new(),
            prompt_legs: Vec::new(),
            recording_legs: 0,
            live_legs: 0,
            playback_frame: SILENCE,
            prompt_frame: SILENCE,
            events: VecDeque::with_capacity(256),
            tx: TxQueue { bytes: Vec::with_capacity(64 * 1024), meta: Vec::with_capacity(1024), cursor: 0 },
            own_publication: Publication::default(),
            mix: MixSum::default(),
            scratch_frame: SILENCE,
            scratch_narrow: NARROW_SILENCE,
            scratch_payload: vec![0; MAX_PAYLOAD],
            tick_count: 0,
            housekeeping_cursor: 0,
            epoch: Instant::now(),
        }
    }

    pub fn leg_count(&self) -> usize {
        self.index.len()
    }

    /// Our SSRC on a leg (tests, diagnostics).
    pub fn leg_ssrc(&self, leg: LegId) -> Option<u32> {
        self.index.get(&leg).and_then(|&i| self.legs[i].as_ref()).map(|l| l.tx.ssrc)
    }

    /// The local RTP address of a leg.
    pub fn leg_local_rtp(&self, leg: LegId) -> Option<SocketAddr> {
        self.index.get(&leg).and_then(|&i| self.legs[i].as_ref()).map(|l| l.local_rtp)
    }

    /// The remote's last RTCP report about our stream on a leg.
    pub fn remote_report(&self, leg: LegId) -> Option<&rtcp::RemoteReport> {
        self.index.get(&leg).and_then(|&i| self.legs[i].as_ref()).map(|l| &l.remote_report)
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Receive { leg, socket, from, data } => self.receive(now, leg, socket, from, data),
            Input::Command(c) => self.command(now, c),
            Input::Tick => {
                let mut p = std::mem::take(&mut self.own_publication);
                self.tick_publish(now, &mut p);
                self.tick_mix(now, &[&p]);
                self.own_publication = p;
            }
        }
    }

    /// Next output: events first, then packets. `None` when drained.
    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        if let Some(e) = self.events.pop_front() {
            return Some(Output::Event(e));
        }
        let tx = &mut self.tx;
        if tx.cursor < tx.meta.len() {
            let m = &tx.meta[tx.cursor];
            tx.cursor += 1;
            let data = &tx.bytes[m.start as usize..(m.start + m.len) as usize];
            return Some(Output::Transmit(Transmit { leg: m.leg, socket: m.socket, dest: m.dest, data }));
        }
        tx.meta.clear();
        tx.bytes.clear();
        tx.cursor = 0;
        None
    }

    fn queue_packet(&mut self, leg: LegId, socket: Socket, dest: SocketAddr, header: &rtp::RtpHeader, payload: &[u8]) {
        self.tx.push_rtp(leg, socket, dest, header, payload);
    }

    fn arrival_units(&self, now: Instant, clock_rate: u32) -> u32 {
        let us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        (us * clock_rate as u64 / 1_000_000) as u32
    }

    // ---- receive path -------------------------------------------------------------

    /// One received datagram. Cost: see the module docs; no allocation.
    fn receive(&mut self, now: Instant, leg: LegId, socket: Socket, from: SocketAddr, data: &[u8]) {
        let Some(&slot) = self.index.get(&leg) else { return };
        if socket == Socket::Rtcp || rtp::looks_like_rtcp(data) {
            let l = self.legs[slot].as_mut().expect("indexed leg");
            rtcp::parse_into(data, l.tx.ssrc, now, &mut l.remote_report);
            l.remote_rtcp = Some(from);
            return;
        }
        let Some(pkt) = rtp::parse(data) else { return };
        let arrival = {
            let l = self.legs[slot].as_ref().expect("indexed leg");
            self.arrival_units(now, l.clock_rate())
        };
        let l = self.legs[slot].as_mut().expect("indexed leg");
        l.last_rx = now;
        l.timeout_reported = false;
        if let Some(e) = l.latch(from) {
            self.events.push_back(e);
        }
        l.rx.on_packet(&pkt.header, arrival);
        if !l.may_receive() {
            return;
        }
        let h = pkt.header;
        // RFC 4733 telephone-events: digits go to the engine whatever the attachment.
        let te_pt = l.params.as_ref().and_then(|p| p.telephone_event_pt);
        if te_pt == Some(h.payload_type) {
            if let Some(d) = l.dtmf_rx.push(h.timestamp, h.marker, pkt.payload) {
                self.events.push_back(MediaEvent::Dtmf { leg, digit: d.digit, duration_ms: d.duration_ms });
                // Barge-in: the digit stops the prompt now, not a signalling round trip later.
                if l.prompt.as_ref().is_some_and(|p| p.barge_in) {
                    let p = l.prompt.take().expect("checked");
                    self.events.push_back(MediaEvent::PromptEnded { target: PromptTarget::Leg(leg), prompt: p.id, end: PromptEnd::Interrupted(d.digit) });
                }
            }
            if l.attachment != Attachment::Echo {
                return;
            }
        }
        match l.attachment {
            Attachment::None => {}
            Attachment::Echo => {
                if l.dtmf_tx.is_some() || !l.may_send() {
                    return;
                }
                // Re-stamp into our stream: our SSRC and sequence, the remote's
                // timestamps shifted by a per-remote-SSRC offset (continuous per source).
                if l.echo.remote_ssrc != Some(h.ssrc) {
                    l.echo.remote_ssrc = Some(h.ssrc);
                    l.echo.ts_offset = l.tx.next_timestamp().wrapping_sub(h.timestamp);
                }
                let ts = h.timestamp.wrapping_add(l.echo.ts_offset);
                let out = l.tx.next_with_timestamp(h.payload_type, h.marker, ts, pkt.payload.len());
                let dest = l.remote.expect("may_send implies a remote");
                self.queue_packet(leg, Socket::Rtp, dest, &out, pkt.payload);
            }
            Attachment::Room(_) => {
                let Some(c) = l.codec.as_mut() else { return };
                if h.payload_type == c.payload_type {
                    c.jitter.push(now, h.sequence, h.timestamp, h.marker, pkt.payload);
                }
            }
        }
    }

    // ---- control ------------------------------------------------------------------

    fn command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::AddLeg { leg, local_rtp } => {
                let l = Leg::new(leg, local_rtp, now);
                let slot = match self.free_slots.pop() {
                    Some(s) => {
                        self.legs[s] = Some(l);
                        s
                    }
                    None => {
                        self.legs.push(Some(l));
                        self.legs.len() - 1
                    }
                };
                self.index.insert(leg, slot);
            }
            Command::Configure(leg, p) => {
                if let Some(l) = self.leg_mut(leg) {
                    l.configure(p);
                }
            }
            Command::Attach(leg, a) => self.attach(leg, a),
            Command::SetBlocked(room, blocked) => {
                self.rooms.entry(room).or_default().topology.set_blocked(blocked);
            }
            Command::SetMuted(leg, m) => {
                if let Some(l) = self.leg_mut(leg) {
                    l.muted = m;
                }
            }
            Command::SetDeaf(leg, d) => {
                if let Some(l) = self.leg_mut(leg) {
                    l.deaf = d;
                }
            }
            Command::Tap(room, tap) => self.rooms.entry(room).or_default().tap = tap,
            Command::Play(target, playing) => {
                let old = match target {
                    PromptTarget::Leg(leg) => {
                        let Some(&slot) = self.index.get(&leg) else { return };
                        if !self.prompt_legs.contains(&slot) {
                            self.prompt_legs.push(slot);
                        }
                        self.legs[slot].as_mut().expect("indexed leg").prompt.replace(playing)
                    }
                    PromptTarget::Room(room) => self.rooms.entry(room).or_default().prompt.replace(playing),
                };
                if let Some(old) = old {
                    self.events.push_back(MediaEvent::PromptEnded { target, prompt: old.id, end: PromptEnd::Stopped });
                }
            }
            Command::RecordLeg(leg, tap) => {
                if let Some(&slot) = self.index.get(&leg) {
                    let l = self.legs[slot].as_mut().expect("indexed leg");
                    let (was, is) = (l.record.is_some(), tap.is_some());
                    l.record = tap;
                    self.recording_legs = self.recording_legs + is as usize - was as usize;
                }
            }
            Command::LiveRoom(room, live) => {
                let r = self.rooms.entry(room).or_default();
                r.live = live;
                r.live_voiced = false;
            }
            Command::LiveLeg(leg, live) => {
                if let Some(&slot) = self.index.get(&leg) {
                    let l = self.legs[slot].as_mut().expect("indexed leg");
                    let (was, is) = (l.live.is_some(), live.is_some());
                    l.live = live;
                    self.live_legs = self.live_legs + is as usize - was as usize;
                }
            }
            Command::SetGain { leg, in_db, out_db } => {
                if let Some(l) = self.leg_mut(leg) {
                    l.gain_in = db_to_gain(in_db);
                    l.gain_out = db_to_gain(out_db);
                }
            }
            Command::StopPrompt(target, id) => {
                let slot = match target {
                    PromptTarget::Leg(leg) => self.leg_mut(leg).map(|l| &mut l.prompt),
                    PromptTarget::Room(room) => self.rooms.get_mut(&room).map(|r| &mut r.prompt),
                };
                if let Some(slot) = slot {
                    if slot.as_ref().is_some_and(|p| id.is_none_or(|id| p.id == id)) {
                        let p = slot.take().expect("checked");
                        self.events.push_back(MediaEvent::PromptEnded { target, prompt: p.id, end: PromptEnd::Stopped });
                    }
                }
            }
            Command::SendDtmf { leg, digit, duration_ms } => {
                let Some(&slot) = self.index.get(&leg) else { return };
                let l = self.legs[slot].as_mut().expect("indexed leg");
                l.dtmf_queue.push_back((digit, duration_ms));
                if !self.dtmf_legs.contains(&slot) {
                    self.dtmf_legs.push(slot);
                }
            }
            Command::Release(leg) => {
                self.attach(leg, Attachment::None);
                let mut stats = LegMediaStats::default();
                if let Some(slot) = self.index.remove(&leg) {
                    if let Some(l) = &self.legs[slot] {
                        stats = l.media_stats();
                        self.recording_legs -= l.record.is_some() as usize;
                        self.live_legs -= l.live.is_some() as usize;
                    }
                    self.legs[slot] = None;
                    self.free_slots.push(slot);
                    self.dtmf_legs.retain(|&s| s != slot);
                    self.prompt_legs.retain(|&s| s != slot);
                }
                for r in self.rooms.values_mut() {
                    r.topology.remove_leg(leg);
                }
                self.events.push_back(MediaEvent::Released { leg, stats });
            }
        }
    }

    fn leg_mut(&mut self, leg: LegId) -> Option<&mut Leg> {
        let slot = *self.index.get(&leg)?;
        self.legs[slot].as_mut()
    }

    fn attach(&mut self, leg: LegId, a: Attachment) {
        let Some(&slot) = self.index.get(&leg) else { return };
        let l = self.legs[slot].as_mut().expect("indexed leg");
        let old = std::mem::replace(&mut l.attachment, a);
        if old == a {
            return;
        }
        l.echo = Default::default();
        l.selected = false;
        l.relay = Default::default();
        l.forget_pulled();
        if let Some(t) = l.talk.reset() {
            self.events.push_back(MediaEvent::Talking { leg, talking: t });
        }
        if let Attachment::Room(r) = old {
            if let Some(room) = self.rooms.get_mut(&r) {
                room.members.retain(|&s| s != slot);
                if room.members.is_empty() && room.topology.is_default() && room.prompt.is_none() {
                    self.rooms.remove(&r);
                }
            }
        }
        if let Attachment::Room(r) = a {
            self.rooms.entry(r).or_default().members.push(slot);
        }
    }

    // ---- tick ---------------------------------------------------------------------

    /// Phase 1 of a tick: pull each room leg's frame, detect talk, publish speakers.
    ///
    /// The frame published is the one pulled last tick; this tick's frame only feeds
    /// talk detection (one frame of look-ahead: a leg's first loud frame is still here
    /// to mix when its second makes it a speaker). Every leg is measured (G.711:
    /// energy straight from the payload bytes, see [`Leg::pull`]), but only this
    /// worker's [`mixer::MAX_SPEAKERS`] best talking, unmuted legs of each room are
    /// decoded and published: a leg that is not among
    /// its own worker's best cannot be among the room's best (selection ranks with the
    /// same key everywhere). So a 3,000-leg room with three speakers decodes three
    /// frames a tick, not 3,000.
    pub fn tick_publish(&mut self, now: Instant, publication: &mut Publication) {
        publication.clear();
        let legs = &mut self.legs;
        let events = &mut self.events;
        let any_tracks = self.recording_legs > 0 || self.live_legs > 0;
        for (&room_id, room) in self.rooms.iter_mut() {
            if room.members.is_empty() {
                continue;
            }
            let offer_relays = !room.topology.is_default() || room.last_audible <= 2;
            publication.begin_room(room_id);
            let mut best = mixer::Best::default();
            for &slot in &room.members {
                let l = legs[slot].as_mut().expect("room member");
                let mut energy = l.pull(now);
                if l.gain_in != 1.0 {
                    // A quiet caller turned up must also be detected as talking.
                    energy = (energy as f64 * (l.gain_in as f64).powi(2)) as u64;
                }
                if let Some(t) = l.talk.update(energy) {
                    events.push_back(MediaEvent::Talking { leg: l.id, talking: t });
                }
                // A leg with input gain is counted but not offered: its own frames are
                // not what the room must hear, so nobody can be relayed them.
                if l.audible() && publication.count_audible() && offer_relays && l.gain_in == 1.0 {
                    let c = l.codec.as_ref().expect("audible legs have a codec");
                    let state = c.state.map(|s| (s, &l.frame[FRAME_SAMPLES - CONTINUE_HISTORY..]));
                    publication.push_relay(l.id, c.kind, l.talk.talking(), l.relay_frame(), state);
                }
                if l.pulled_audio() && !l.muted && l.talk.talking() {
                    best.offer(mixer::rank(l.id, l.talk.level(), l.selected), slot);
                }
            }
            // A live stream's playback: an audible voice for as long as the stream
            // plays back (so the room's relay choice does not flap with it), and a
            // candidate speaker whenever a frame is there.
            room.live_voiced = false;
            if let Some(live) = room.live.as_ref().filter(|l| l.plays_back()) {
                publication.count_audible();
                if live.next_playback(&mut room.live_frame) {
                    room.live_voiced = true;
                    let level = crate::live::LiveAudio::voice_level(&room.live_frame);
                    publication.push_with_narrow(live.voice(), level, live.voice_was_selected(), &room.live_frame, None);
                }
            }
            let mut skipped = false;
            for slot in best.items() {
                let l = legs[slot].as_mut().expect("room member");
                if room.skip_candidates {
                    if let (Some(c), Some(Some(p))) = (l.codec.as_ref(), l.relay_frame()) {
                        if relayable(c.kind, RelayFrame::Packet { start: 0, len: p.len() as u32 }, p) {
                            skipped = true;
                            continue;
                        }
                    }
                }
                l.decode_pulled();
                if l.has_frame && l.gain_in != 1.0 {
                    apply_gain(&mut l.frame, l.gain_in);
                    if l.has_narrow {
                        apply_gain(&mut l.narrow, l.gain_in);
                    }
                }
                if l.has_frame {
                    let narrow = l.has_narrow.then_some(&l.narrow);
                    publication.push_with_narrow(l.id, l.talk.level(), l.selected, &l.frame, narrow);
                }
            }
            // Participants' own tracks: every tick, talking or not, what they said.
            for &slot in room.members.iter().filter(|_| any_tracks) {
                let l = legs[slot].as_mut().expect("room member");
                let live_says = l.live.as_ref().is_some_and(|s| s.direction() != crate::live::Direction::Hears);
                if l.record.is_none() && !live_says {
                    continue;
                }
                if !l.has_frame {
                    l.decode_pulled();
                    if l.has_frame && l.gain_in != 1.0 {
                        apply_gain(&mut l.frame, l.gain_in);
                    }
                }
                let frame = if l.has_frame && !l.muted { &l.frame } else { &SILENCE };
                if let Some(r) = &l.record {
                    r.push(frame);
                }
                if live_says {
                    l.live_says = *frame;
                }
            }
            publication.set_room_info(room.members.len() as u32, room.mixed_last, skipped);
            publication.end_room();
        }
    }

    /// Phase 2 of a tick: select speakers, mix, encode and packetize for this worker's
    /// listeners; send DTMF; once-a-second housekeeping (RTP timeout, RTCP).
    pub fn tick_mix(&mut self, now: Instant, pubs: &[&Publication]) {
        self.tick_count += 1;
        let tick = self.tick_count;
        let mut rooms = std::mem::take(&mut self.rooms);
        for (&room_id, room) in rooms.iter_mut() {
            if !room.members.is_empty() {
                self.mix_room(now, tick, room_id, room, pubs);
            } else if let Some(p) = &room.prompt {
                // Nobody of the room here: the prompt still runs its course, so that
                // it ends when it ends on the workers that play it.
                if p.next_frame(&mut self.prompt_frame).is_none() {
                    let p = room.prompt.take().expect("checked");
                    self.events.push_back(MediaEvent::PromptEnded { target: PromptTarget::Room(room_id), prompt: p.id, end: p.end() });
                }
            }
        }
        self.rooms = rooms;
        self.play_leg_prompts();
        self.send_dtmf_packets();
        self.housekeeping(now);
    }

    /// Mix one room for this worker's listeners. Cost per listener on the shared path:
    /// a 12-byte header and a payload copy; the shared encode is done once per codec.
    /// A personal mix (selected speakers, topology exceptions) costs a subtraction and
    /// an encode: for G.711 listeners of an all-G.711 selection, at 8 kHz straight from
    /// the narrowband sum (no resampling, see [`crate::mixer`]).
    fn mix_room(&mut self, _now: Instant, tick: u64, room_id: RoomId, room: &mut Room, pubs: &[&Publication]) {
        let sel = mixer::select_speakers(room_id, pubs);
        let mut speakers: [&Candidate; mixer::MAX_SPEAKERS] = [&mixer::NO_SPEAKER; mixer::MAX_SPEAKERS];
        for (i, s) in sel.slots[..sel.len].iter().enumerate() {
            speakers[i] = mixer::selected_candidate(pubs, room_id, *s);
        }
        self.mix.compute_speakers(&speakers[..sel.len]);
        // A room prompt is one more voice in everyone's mix (and in a recording). It
        // is wideband, so the room's G.711 listeners take the 16 kHz path meanwhile.
        let mut room_prompt = false;
        if let Some(p) = &room.prompt {
            match p.next_frame(&mut self.prompt_frame) {
                Some(_) => {
                    room_prompt = true;
                    self.mix.add_frame(&self.prompt_frame);
                }
                None => {
                    let p = room.prompt.take().expect("checked");
                    self.events.push_back(MediaEvent::PromptEnded { target: PromptTarget::Room(room_id), prompt: p.id, end: p.end() });
                }
            }
        }
        if let Some(tap) = &room.tap {
            tap.push_sum(&self.mix.sum);
        }
        if let Some(live) = &room.live {
            // The receiver does not get its own playback back.
            let voiced = room.live_voiced && sel.contains(live.voice());
            live.set_voice_selected(voiced);
            live.push_sum(&self.mix.sum, voiced.then_some(&room.live_frame));
        }
        if self.live_legs > 0 {
            self.push_live_legs(room, &sel, &speakers[..sel.len]);
        }

        // Relay context: the room's audible legs, from every worker's publication.
        let mut total_audible = 0;
        let mut sources_complete = true;
        let (mut total_members, mut mixed_before, mut any_skipped) = (0, 0, false);
        for p in pubs {
            let (audible, sources) = p.relay_room(room_id);
            total_audible += audible;
            // While a room prompt plays nobody can hear just one speaker: no relay.
            sources_complete &= audible as usize == sources.len() && !room_prompt;
            let (members, mixed, skipped) = p.room_info(room_id);
            total_members += members;
            mixed_before += mixed;
            any_skipped |= skipped;
        }
        room.last_audible = total_audible;
        let mut mixed_here = 0;

        for &slot in &room.members {
            let l = self.legs[slot].as_mut().expect("room member");
            l.selected = sel.contains(l.id);
            let spf = l.samples_per_frame();
            if !l.may_send() || l.codec.is_none() {
                l.tx.skip(spf);
                continue;
            }
            if l.dtmf_tx.is_some() || !l.dtmf_queue.is_empty() {
                // Audio suppressed while an event is sent; the event packets go out in
                // send_dtmf_packets and the clock advances there.
                continue;
            }
            // A prompt for this listener alone: mixed over the room, personally.
            let mut leg_prompt = false;
            if let Some(p) = &l.prompt {
                match p.next_frame(&mut self.prompt_frame) {
                    Some(_) => leg_prompt = true,
                    None => {
                        let p = l.prompt.take().expect("checked");
                        self.events.push_back(MediaEvent::PromptEnded { target: PromptTarget::Leg(l.id), prompt: p.id, end: p.end() });
                    }
                }
            }
            // A live stream's playback to this listener: mixed over the room like a
            // prompt for it alone (and with one).
            if let Some(live) = l.live.as_ref().filter(|s| s.plays_back()) {
                if live.next_playback(&mut self.playback_frame) {
                    if leg_prompt {
                        mixer::add_saturating(&mut self.prompt_frame, &self.playback_frame);
                    } else {
                        self.prompt_frame = self.playback_frame;
                        leg_prompt = true;
                    }
                }
            }
            // Relay fast path: one audible speaker with this listener's codec gets its
            // own frames forwarded (see the module docs for the switches).
            // Output gain: a personal mix, scaled.
            let gain_out = l.gain_out != 1.0;
            let mut source = if sources_complete && !leg_prompt && !gain_out {
                only_audible_speaker(pubs, room_id, &room.topology, l, total_audible)
            } else {
                None
            };
            if let (Some(from), true, false, false) = (l.relay.from, any_skipped, l.deaf, leg_prompt || gain_out) {
                // Relay ends in a tick whose candidates left relayed speakers out: the
                // mix would lack the speaker, so forward it one tick more (the room's
                // next candidates are complete: see `skip_candidates`).
                if source.map(|(_, r)| r.leg) != Some(from) {
                    let kind = l.codec.as_ref().map(|c| c.kind);
                    let grace = pubs.iter().find_map(|p| {
                        p.relay_room(room_id).1.iter().find(|r| r.leg == from).map(|r| (*p, r))
                    });
                    if let Some((p, r)) = grace {
                        if Some(r.codec) == kind && matches!(r.frame, RelayFrame::Packet { .. }) && relayable(r.codec, r.frame, p.relay_payload(r)) {
                            source = Some((p, r));
                            mixed_here += 1;
                        }
                    }
                }
            }
            let c = l.codec.as_mut().expect("checked");
            let stateful = !c.kind.is_g711();
            if let Some(from) = l.relay.from {
                if source.map(|(_, r)| r.leg) != Some(from) {
                    // Relay ends: the listener's decoder continues on our encoder, which
                    // holds the speaker's decoder state (G.722, kept warm below) or
                    // starts a fresh stream (Opus); either way it stays personal.
                    l.relay.from = None;
                    if stateful {
                        if c.kind != CodecKind::G722 {
                            c.encoder.reset();
                        }
                        l.relay.own_encoder = true;
                    }
                }
            }
            match source {
                Some((_, r)) if l.relay.from.is_none() => {
                    // Mix to relay: the listener's decoder met our encoder's state and
                    // now meets the speaker's; for a stateful codec do it in a pause.
                    if !stateful || !r.talking || l.relay.waited >= RELAY_WAIT_TICKS {
                        l.relay.from = Some(r.leg);
                        l.relay.waited = 0;
                    } else {
                        l.relay.waited += 1;
                    }
                }
                Some(_) => {}
                None => l.relay.waited = 0,
            }
            if let (Some((p, r)), Some(_)) = (source, l.relay.from) {
                let spf = c.samples_per_frame;
                match r.frame {
                    RelayFrame::Packet { .. } => {
                        let payload = p.relay_payload(r);
                        let header = l.tx.next_audio(c.payload_type, spf, payload.len());
                        let dest = l.remote.expect("may_send");
                        self.tx.push_rtp(l.id, Socket::Rtp, dest, &header, payload);
                    }
                    RelayFrame::Lost => l.tx.skip_lost(spf),
                    RelayFrame::Nothing => l.tx.skip(spf),
                }
                // Keep our encoder where the listener's decoder is, for the hand-over.
                if let Some((state, recent)) = p.relay_state(r) {
                    c.encoder.continue_from(state, recent);
                }
                continue;
            }
            mixed_here += 1;
            // Which selected speakers this listener must not hear.
            let mut excluded: [&Candidate; mixer::MAX_SPEAKERS] = [&mixer::NO_SPEAKER; mixer::MAX_SPEAKERS];
            let mut n_ex = 0;
            // A listener with its own encoder (after a relay) still must not hear
            // itself or a blocked speaker: the exclusions hold for every personal mix.
            let personal = if l.deaf {
                true
            } else {
                let check_topology = room.topology.has_exceptions(l.id);
                for (i, s) in sel.slots[..sel.len].iter().enumerate() {
                    if s.0 == l.id || (check_topology && room.topology.blocks(s.0, l.id)) {
                        excluded[n_ex] = speakers[i];
                        n_ex += 1;
                    }
                }
                n_ex > 0 || l.relay.own_encoder
            } || leg_prompt
                || gain_out;
            let c = l.codec.as_mut().expect("checked");
            let (pt, kind) = (c.payload_type, c.kind);
            let narrow = self.mix.narrow && kind.is_g711() && !leg_prompt && !gain_out;
            let len;
            // The room's shared encode this listener gets, if not a personal mix.
            let mut shared_at = None;
            if personal {
                let excluded = &excluded[..n_ex];
                len = if narrow {
                    if l.deaf {
                        self.scratch_narrow = NARROW_SILENCE;
                    } else {
                        let mut ex: [&NarrowFrame; mixer::MAX_SPEAKERS] = [&NARROW_SILENCE; mixer::MAX_SPEAKERS];
                        for (e, c) in ex.iter_mut().zip(excluded) {
                            *e = &c.narrow;
                        }
                        self.mix.mix_without_narrow(&ex[..n_ex], &mut self.scratch_narrow);
                    }
                    encode_narrow(c.encoder.as_mut(), &self.scratch_narrow, &mut self.scratch_payload)
                } else {
                    if l.deaf {
                        self.scratch_frame = SILENCE;
                    } else {
                        let mut ex: [&Frame; mixer::MAX_SPEAKERS] = [&SILENCE; mixer::MAX_SPEAKERS];
                        for (e, c) in ex.iter_mut().zip(excluded) {
                            *e = &c.frame;
                        }
                        self.mix.mix_without(&ex[..n_ex], &mut self.scratch_frame);
                    }
                    if gain_out {
                        apply_gain(&mut self.scratch_frame, l.gain_out);
                    }
                    if leg_prompt {
                        mixer::add_saturating(&mut self.scratch_frame, &self.prompt_frame);
                    }
                    c.encoder.encode(&self.scratch_frame, &mut self.scratch_payload)
                };
            } else {
                let i = match room.shared.iter().position(|s| s.codec == kind) {
                    Some(i) => i,
                    None => {
                        room.shared.push(SharedEncode {
                            codec: kind,
                            encoder: crate::codec::new_encoder(kind),
                            payload: vec![0; MAX_PAYLOAD],
                            len: 0,
                            tick: 0,
                        });
                        room.shared.len() - 1
                    }
                };
                let shared = &mut room.shared[i];
                if shared.tick != tick {
                    shared.len = if narrow {
                        self.mix.mix_without_narrow(&[], &mut self.scratch_narrow);
                        encode_narrow(shared.encoder.as_mut(), &self.scratch_narrow, &mut shared.payload)
                    } else {
                        self.mix.mix_without(&[], &mut self.scratch_frame);
                        shared.encoder.encode(&self.scratch_frame, &mut shared.payload)
                    };
                    shared.tick = tick;
                }
                len = shared.len;
                shared_at = Some(i);
            }
            let header = l.tx.next_audio(pt, spf, len);
            let (id, dest) = (l.id, l.remote.expect("may_send"));
            let payload = match shared_at {
                Some(i) => &room.shared[i].payload[..len],
                None => &self.scratch_payload[..len],
            };
            self.tx.push_rtp(id, Socket::Rtp, dest, &header, payload);
        }
        // A recording here counts as mixing: the other workers see it in this tick's
        // publication and keep decoding their speakers for it (`skip_candidates`).
        // So does a live stream.
        room.mixed_last = mixed_here + (room.tap.is_some() || room.live.is_some() || self.live_legs > 0) as u32;
        // Decoded speakers are needed next tick unless this is a room of two, both on
        // relay, with nobody here mixing now and nobody anywhere mixing last tick.
        // A recording needs the decoded speakers too.
        room.skip_candidates = room.tap.is_none()
            && room.live.is_none()
            && self.live_legs == 0
            && room.prompt.is_none()
            && total_members == 2
            && total_audible == 2
            && sources_complete
            && room.topology.is_default()
            && mixed_before == 0
            && mixed_here == 0;
    }

    /// Live streams of this worker's legs in the room: what each says (decoded in
    /// phase 1), what it hears (the room's mix less its own voice; nothing when deaf),
    /// or both summed. Cost per streaming leg: a mix pass and a frame copy.
    fn push_live_legs(&mut self, room: &Room, sel: &mixer::Selection, speakers: &[&Candidate]) {
        use crate::live::Direction;
        for &slot in &room.members {
            let l = self.legs[slot].as_ref().expect("room member");
            let Some(live) = &l.live else { continue };
            let mut f = SILENCE;
            if live.direction() != Direction::Says && !l.deaf {
                let own = sel.slots[..sel.len].iter().position(|s| s.0 == l.id).map(|i| &speakers[i].frame);
                match own {
                    Some(own) => self.mix.mix_without(&[own], &mut f),
                    None => self.mix.mix_without(&[], &mut f),
                }
            }
            if live.direction() != Direction::Hears {
                mixer::add_saturating(&mut f, &l.live_says);
            }
            live.push(&f);
        }
    }

    /// Prompts to legs that are not in a room (an IVR menu, voicemail): the prompt is
    /// all they hear, encoded with the leg's own encoder. Room members' prompts are
    /// mixed in `mix_room`.
    fn play_leg_prompts(&mut self) {
        let mut i = 0;
        while i < self.prompt_legs.len() {
            let slot = self.prompt_legs[i];
            let Some(l) = self.legs[slot].as_mut() else {
                self.prompt_legs.swap_remove(i);
                continue;
            };
            let Some(p) = &l.prompt else {
                self.prompt_legs.swap_remove(i);
                continue;
            };
            i += 1;
            if matches!(l.attachment, Attachment::Room(_)) {
                continue;
            }
            let Some(_) = p.next_frame(&mut self.prompt_frame) else {
                let p = l.prompt.take().expect("checked");
                self.events.push_back(MediaEvent::PromptEnded { target: PromptTarget::Leg(l.id), prompt: p.id, end: p.end() });
                continue;
            };
            // An echo leg sends what it receives; a leg sending a digit sends the event.
            if l.attachment == Attachment::Echo || l.dtmf_tx.is_some() || !l.dtmf_queue.is_empty() {
                continue;
            }
            if !l.may_send() || l.codec.is_none() {
                l.tx.skip(l.samples_per_frame());
                continue;
            }
            let c = l.codec.as_mut().expect("checked");
            let len = c.encoder.encode(&self.prompt_frame, &mut self.scratch_payload);
            let header = l.tx.next_audio(c.payload_type, c.samples_per_frame, len);
            let dest = l.remote.expect("may_send");
            self.tx.push_rtp(l.id, Socket::Rtp, dest, &header, &self.scratch_payload[..len]);
        }
    }

    /// One RFC 4733 packet per tick for each leg sending a digit; the leg's audio is
    /// suppressed meanwhile and its media clock keeps running underneath.
    fn send_dtmf_packets(&mut self) {
        let mut i = 0;
        while i < self.dtmf_legs.len() {
            let slot = self.dtmf_legs[i];
            let Some(l) = self.legs[slot].as_mut() else {
                self.dtmf_legs.swap_remove(i);
                continue;
            };
            let te_pt = l.params.as_ref().and_then(|p| p.telephone_event_pt);
            if l.dtmf_tx.is_none() {
                if let (Some((digit, ms)), Some(_)) = (l.dtmf_queue.pop_front(), te_pt) {
                    // Without a negotiated telephone-event PT the digit is dropped.
                    let start = l.tx.next_timestamp();
                    l.dtmf_tx = crate::dtmf::DtmfSender::new(digit, ms, l.clock_rate()).map(|s| s.starting_at(start));
                }
            }
            let Some(sender) = l.dtmf_tx.as_mut() else {
                if l.dtmf_queue.is_empty() {
                    self.dtmf_legs.swap_remove(i);
                } else {
                    i += 1;
                }
                continue;
            };
            let packet = sender.next_packet();
            let spf = l.samples_per_frame();
            let can_send = l.params.as_ref().map(|p| p.send).unwrap_or(true);
            if let (Some(p), Some(dest), Some(pt), true) = (packet, l.remote, te_pt, can_send) {
                let h = l.tx.next_with_timestamp(pt, p.marker, p.timestamp, p.payload.len());
                let id = l.id;
                self.tx_meta_push(id, dest, &h, &p.payload);
            }
            let l = self.legs[slot].as_mut().expect("checked");
            if packet.map(|p| p.is_last).unwrap_or(true) {
                l.dtmf_tx = None;
            }
            // The media clock keeps running under the event; the next audio packet
            // starts a new talkspurt (marker).
            l.tx.skip(spf);
            i += 1;
        }
    }

    fn tx_meta_push(&mut self, leg: LegId, dest: SocketAddr, h: &rtp::RtpHeader, payload: &[u8]) {
        self.queue_packet(leg, Socket::Rtp, dest, h, payload);
    }

    /// Each tick, look at 1/50 of the legs (every leg once a second): RTP timeout and
    /// RTCP reports.
    fn housekeeping(&mut self, now: Instant) {
        let n = self.legs.len();
        if n == 0 {
            return;
        }
        let batch = n.div_ceil(50);
        let mut buf = [0u8; 256];
        for _ in 0..batch {
            let slot = self.housekeeping_cursor % n;
            self.housekeeping_cursor = (slot + 1) % n;
            let Some(l) = self.legs[slot].as_mut() else { continue };
            if !l.timeout_reported && now.saturating_duration_since(l.last_rx) >= self.cfg.rtp_timeout {
                l.timeout_reported = true;
                self.events.push_back(MediaEvent::RtpTimeout { leg: l.id });
            }
            if now >= l.next_rtcp {
                l.next_rtcp = now + rtcp::REPORT_INTERVAL;
                let Some(dest) = l.remote_rtcp else { continue };
                let sent_since = l.tx.packets_sent != l.packets_at_last_report;
                l.packets_at_last_report = l.tx.packets_sent;
                let sender = sent_since.then(|| rtcp::SenderInfo {
                    ntp: rtcp::ntp_now(),
                    rtp_timestamp: l.tx.next_timestamp(),
                    packets: l.tx.packets_sent,
                    octets: l.tx.octets_sent,
                });
                let len = rtcp::build_report(&mut buf, l.tx.ssrc, sender, &mut l.rx, &l.remote_report, now, &self.cfg.cname);
                let id = l.id;
                let start = self.tx.bytes.len();
                self.tx.bytes.extend_from_slice(&buf[..len]);
                self.tx.meta.push(TxMeta { leg: id, socket: Socket::Rtcp, dest, start: start as u32, len: len as u32 });
            }
        }
    }
}
