//! The conference mix: who is talking, which speakers are mixed, and the saturating sum.
//!
//! What: the pure, clock-free building blocks of the 20 ms mix that
//! [`crate::engine::MediaCore`] runs each tick for every room:
//!
//! - [`TalkDetector`]: per-leg voice activity with hysteresis (attack 40 ms = 2 frames
//!   above threshold, release 500 ms = 25 frames below), driving `Talking` events and
//!   deciding who is a speaker candidate at all (silent legs are skipped entirely).
//!   It runs one frame ahead of the mix (see `leg.rs`), so the attack delays the
//!   `Talking` event, never the audio: a spurt is mixed from its first frame.
//! - [`Publication`]: the candidate speaker frames one worker offers for each room this
//!   tick. A room whose legs live on several workers is mixed from all workers'
//!   publications (see the engine docs for the per-tick exchange).
//! - [`select_speakers`]: the N loudest candidates ([`MAX_SPEAKERS`] = 3), with
//!   hysteresis: a speaker selected last tick keeps a 2x (3 dB) bonus so that two
//!   voices of similar level do not flap. Selection is a pure function of the
//!   published data, so every worker computes the same set without talking to the
//!   others.
//! - [`MixSum`]: the i32 sum of the selected frames; a listener's mix is that sum minus
//!   the speakers it must not hear (itself, blocked pairs), saturated to i16.
//!
//! Narrowband shortcut: G.711 speakers also publish their frame at 8 kHz
//! ([`NarrowFrame`], straight from the G.711 tables). When every selected speaker has
//! one, [`MixSum`] also sums those, and G.711 listeners get their mix encoded from the
//! 8 kHz sum: no 16 → 8 kHz filter per listener, and no resampling colour either. A
//! room of G.711 phones never leaves that path; a wideband speaker in the selection
//! switches the room's G.711 listeners to the 16 kHz path (and back) at a frame edge.
//!
//! Why N loudest: summing every participant of a 3,000-leg room would add 3,000 noise
//! floors and cost 3,000 adds per sample. Mixing at most N speakers bounds the work
//! per room per tick to N frames, and means that every listener who is not a selected
//! speaker and has no topology exception hears exactly the same mix, which is encoded
//! once per codec and sent to all of them.

use crate::codec::{CodecKind, CodecState, CONTINUE_HISTORY};
use crate::engine::{LegId, RoomId};
use crate::FRAME_SAMPLES;
use crate::fastmap::FastMap;

/// Most speakers mixed into one room at once.
pub const MAX_SPEAKERS: usize = 3;

/// Mean-square energy per sample above which a frame counts as speech
/// (≈ -46 dBov; 16-bit full scale mean square is 2^30).
pub const SPEECH_ENERGY: u64 = 25_000;
/// Frames above threshold before a leg counts as talking (40 ms).
pub const ATTACK_FRAMES: u16 = 2;
/// Frames below threshold before a talking leg counts as silent again (500 ms).
pub const RELEASE_FRAMES: u16 = 25;

/// One 20 ms frame of 16 kHz linear audio.
pub type Frame = [i16; FRAME_SAMPLES];
/// Silence.
pub const SILENCE: Frame = [0; FRAME_SAMPLES];
/// One 20 ms frame of 8 kHz linear audio (a G.711 speaker's own rate).
pub type NarrowFrame = [i16; FRAME_SAMPLES / 2];
/// Narrowband silence.
pub const NARROW_SILENCE: NarrowFrame = [0; FRAME_SAMPLES / 2];

/// Mean-square energy of a frame. Cost: 320 multiply-adds.
pub fn frame_energy(frame: &Frame) -> u64 {
    let sum: i64 = frame.iter().map(|&s| s as i64 * s as i64).sum();
    sum as u64 / FRAME_SAMPLES as u64
}

/// Voice activity with hysteresis, one per leg.
#[derive(Clone, Debug, Default)]
pub struct TalkDetector {
    talking: bool,
    /// Consecutive frames on the other side of the threshold from `talking`.
    run: u16,
    /// Smoothed level: jumps up with the energy, decays by 1/8 per frame.
    level: u64,
}

impl TalkDetector {
    /// Feed one frame's energy; returns `Some(new_state)` when talking starts or stops.
    pub fn update(&mut self, energy: u64) -> Option<bool> {
        self.level = energy.max(self.level - self.level / 8);
        let loud = energy >= SPEECH_ENERGY;
        if loud == self.talking {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.talking { RELEASE_FRAMES } else { ATTACK_FRAMES };
        if self.run >= needed {
            self.talking = loud;
            self.run = 0;
            Some(loud)
        } else {
            None
        }
    }

    /// Force silence (leg detached, no packets): returns `Some(false)` if it was talking.
    pub fn reset(&mut self) -> Option<bool> {
        let was = self.talking;
        *self = TalkDetector::default();
        was.then_some(false)
    }

    pub fn talking(&self) -> bool {
        self.talking
    }

    /// Smoothed level used to rank speakers.
    pub fn level(&self) -> u64 {
        self.level
    }
}

/// A speaker candidate offered to a room for this tick.
#[derive(Clone)]
pub struct Candidate {
    pub leg: LegId,
    /// Ranking score: smoothed level.
    pub level: u64,
    /// Whether this leg was among the selected speakers last tick (hysteresis input).
    pub was_selected: bool,
    pub frame: Frame,
    /// The same audio at 8 kHz, valid when `has_narrow` (G.711 speakers).
    pub narrow: NarrowFrame,
    pub has_narrow: bool,
}

/// Placeholder for unused entries of fixed arrays of speakers.
pub static NO_SPEAKER: Candidate =
    Candidate { leg: LegId(0), level: 0, was_selected: false, frame: SILENCE, narrow: NARROW_SILENCE, has_narrow: false };

/// What a relay source's jitter buffer gave for this tick (see [`RelaySource`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RelayFrame {
    /// Nothing to play (not started, idle, DTX): a listener on relay gets nothing.
    Nothing,
    /// A packet is missing: a listener on relay sees a one-packet gap.
    Lost,
    /// A packet: `len` bytes at `start` of the publication's relay arena.
    Packet { start: u32, len: u32 },
}

/// One audible leg of a small room, offered so that a listener for whom it is the only
/// audible speaker can get its own encoded frames (the relay fast path, see
/// [`crate::engine`]).
#[derive(Copy, Clone, Debug)]
pub struct RelaySource {
    pub leg: LegId,
    pub codec: CodecKind,
    /// The frame this tick mixes (the one pulled last tick: relay and mix forward the
    /// same audio at the same time, so a switch between them neither skips nor repeats).
    pub frame: RelayFrame,
    /// The leg's talk detector says it is talking (a switch to relay waits for a pause).
    pub talking: bool,
    /// Index of its decoder state in the publication (`u32::MAX`: none).
    state: u32,
}

/// Most relay sources a worker offers per room; a worker with more audible legs in a
/// room offers none (only a topology can then leave a listener one audible speaker,
/// and such a listener is mixed).
pub const RELAY_SOURCES_MAX: usize = 4;

#[derive(Copy, Clone, Default)]
struct RoomEntry {
    /// Range in `candidates`.
    speakers: (u32, u32),
    /// Range in `relays`.
    relays: (u32, u32),
    /// This worker's audible legs in the room (unmuted, configured, receiving).
    audible: u32,
    /// This worker's members in the room, its listeners that got a mix last tick, and
    /// whether it left relayed speakers out of the candidates this tick.
    members: u32,
    mixed: u32,
    skipped: bool,
}

/// The candidates one worker offers this tick, grouped by room. Cleared and refilled
/// every tick; its vectors keep their capacity, so the steady state does not allocate.
#[derive(Default)]
pub struct Publication {
    /// `candidates[..len]` are this tick's; the rest are slots kept from earlier ticks.
    candidates: Vec<Candidate>,
    len: usize,
    /// Relay sources of this tick, their payload bytes, and their decoder states with
    /// the last samples decoded.
    relays: Vec<RelaySource>,
    relay_bytes: Vec<u8>,
    relay_states: Vec<(CodecState, [i16; CONTINUE_HISTORY])>,
    relay_states_len: usize,
    /// Room -> its ranges. Rooms are published contiguously.
    rooms: FastMap<RoomId, RoomEntry>,
    /// The room being published, and where its relay bytes and states start.
    open: Option<(RoomId, RoomEntry, (usize, usize))>,
}

impl Publication {
    pub fn clear(&mut self) {
        self.len = 0;
        self.relays.clear();
        self.relay_bytes.clear();
        self.relay_states_len = 0;
        self.rooms.clear();
        self.open = None;
    }

    /// Start publishing the candidates of `room` (call once per room per tick).
    pub fn begin_room(&mut self, room: RoomId) {
        self.end_room();
        let (c, r) = (self.len as u32, self.relays.len() as u32);
        let rewind = (self.relay_bytes.len(), self.relay_states_len);
        self.open = Some((room, RoomEntry { speakers: (c, c), relays: (r, r), ..RoomEntry::default() }, rewind));
    }

    /// Count one audible leg of the open room; returns whether it may be offered as a
    /// relay source (the room has at most [`RELAY_SOURCES_MAX`] so far). Past the limit
    /// the sources already offered for the room are withdrawn.
    pub fn count_audible(&mut self) -> bool {
        let Some((_, e, rewind)) = self.open.as_mut() else { return false };
        e.audible += 1;
        if e.audible as usize > RELAY_SOURCES_MAX {
            self.relays.truncate(e.relays.0 as usize);
            self.relay_bytes.truncate(rewind.0);
            self.relay_states_len = rewind.1;
            return false;
        }
        true
    }

    /// Offer a relay source for the open room (after [`count_audible`](Self::count_audible)
    /// allowed it). Copies the payload (≤ 1,500 bytes) and, for codecs with predictive
    /// state, the state and the last [`CONTINUE_HISTORY`] samples decoded.
    pub fn push_relay(
        &mut self,
        leg: LegId,
        codec: CodecKind,
        talking: bool,
        frame: Option<Option<&[u8]>>,
        state: Option<(CodecState, &[i16])>,
    ) {
        let frame = match frame {
            None => RelayFrame::Nothing,
            Some(None) => RelayFrame::Lost,
            Some(Some(p)) => {
                let start = self.relay_bytes.len() as u32;
                self.relay_bytes.extend_from_slice(p);
                RelayFrame::Packet { start, len: p.len() as u32 }
            }
        };
        let state = match state {
            None => u32::MAX,
            Some((st, recent)) => {
                let mut tail = [0i16; CONTINUE_HISTORY];
                let n = recent.len().min(CONTINUE_HISTORY);
                tail[CONTINUE_HISTORY - n..].copy_from_slice(&recent[recent.len() - n..]);
                if self.relay_states_len == self.relay_states.len() {
                    self.relay_states.push((st, tail));
                } else {
                    self.relay_states[self.relay_states_len] = (st, tail);
                }
                self.relay_states_len += 1;
                (self.relay_states_len - 1) as u32
            }
        };
        self.relays.push(RelaySource { leg, codec, frame, talking, state });
    }

    /// Publish one candidate for the room opened by [`begin_room`](Self::begin_room).
    /// Copies the 640-byte frame into a slot reused from earlier ticks.
    pub fn push(&mut self, leg: LegId, level: u64, was_selected: bool, frame: &Frame) {
        self.push_with_narrow(leg, level, was_selected, frame, None);
    }

    /// [`push`](Self::push) with the frame's 8 kHz version, if the speaker has one.
    pub fn push_with_narrow(&mut self, leg: LegId, level: u64, was_selected: bool, frame: &Frame, narrow: Option<&NarrowFrame>) {
        if self.len == self.candidates.len() {
            let (narrow, has_narrow) = match narrow {
                Some(n) => (*n, true),
                None => (NARROW_SILENCE, false),
            };
            self.candidates.push(Candidate { leg, level, was_selected, frame: *frame, narrow, has_narrow });
        } else {
            // Overwrite in place: one copy of the frame, no temporary.
            let c = &mut self.candidates[self.len];
            c.leg = leg;
            c.level = level;
            c.was_selected = was_selected;
            c.frame.copy_from_slice(frame);
            c.has_narrow = narrow.is_some();
            if let Some(n) = narrow {
                c.narrow.copy_from_slice(n);
            }
        }
        self.len += 1;
    }

    /// The open room's bookkeeping for the relay path: members here, listeners here
    /// that got a mix last tick, and whether relayed speakers were left out of the
    /// candidates (see the engine's "Relay fast path").
    pub fn set_room_info(&mut self, members: u32, mixed_last_tick: u32, skipped: bool) {
        if let Some((_, e, _)) = self.open.as_mut() {
            e.members = members;
            e.mixed = mixed_last_tick;
            e.skipped = skipped;
        }
    }

    /// What [`set_room_info`](Self::set_room_info) published for `room`.
    pub fn room_info(&self, room: RoomId) -> (u32, u32, bool) {
        self.rooms.get(&room).map(|e| (e.members, e.mixed, e.skipped)).unwrap_or((0, 0, false))
    }

    pub fn end_room(&mut self) {
        if let Some((room, mut e, _)) = self.open.take() {
            e.speakers.1 = self.len as u32;
            e.relays.1 = self.relays.len() as u32;
            if e.speakers.1 > e.speakers.0 || e.audible > 0 || e.members > 0 {
                self.rooms.insert(room, e);
            }
        }
    }

    /// This worker's candidates for `room`.
    pub fn room(&self, room: RoomId) -> &[Candidate] {
        match self.rooms.get(&room) {
            Some(e) => &self.candidates[e.speakers.0 as usize..e.speakers.1 as usize],
            None => &[],
        }
    }

    /// This worker's audible legs in `room` and the relay sources it offers: all of
    /// them, or none when the count is above [`RELAY_SOURCES_MAX`] (or the worker chose
    /// not to offer any).
    pub fn relay_room(&self, room: RoomId) -> (u32, &[RelaySource]) {
        match self.rooms.get(&room) {
            Some(e) => (e.audible, &self.relays[e.relays.0 as usize..e.relays.1 as usize]),
            None => (0, &[]),
        }
    }

    /// The payload of a relay source's packet (empty unless [`RelayFrame::Packet`]).
    pub fn relay_payload(&self, r: &RelaySource) -> &[u8] {
        match r.frame {
            RelayFrame::Packet { start, len } => &self.relay_bytes[start as usize..(start + len) as usize],
            _ => &[],
        }
    }

    /// A relay source's decoder state with its last samples decoded, if its codec has one.
    pub fn relay_state(&self, r: &RelaySource) -> Option<(&CodecState, &[i16])> {
        if r.state as usize >= self.relay_states_len {
            return None;
        }
        self.relay_states.get(r.state as usize).map(|(s, t)| (s, &t[..]))
    }
}

/// The speakers selected for a room this tick: (publication index, candidate index).
#[derive(Clone, Copy, Debug, Default)]
pub struct Selection {
    pub len: usize,
    pub slots: [(LegId, u16, u32); MAX_SPEAKERS],
}

impl Selection {
    pub fn legs(&self) -> impl Iterator<Item = LegId> + '_ {
        self.slots[..self.len].iter().map(|s| s.0)
    }
    pub fn contains(&self, leg: LegId) -> bool {
        self.legs().any(|l| l == leg)
    }
}

fn score(c: &Candidate) -> (u64, u64) {
    rank(c.leg, c.level, c.was_selected)
}

/// A candidate's ranking key, highest first: the smoothed level, doubled for a speaker
/// selected last tick; ties broken by leg id so that every worker picks the same set.
pub fn rank(leg: LegId, level: u64, was_selected: bool) -> (u64, u64) {
    let bonus = if was_selected { 2 } else { 1 };
    (level.saturating_mul(bonus), leg.0)
}

/// The best [`MAX_SPEAKERS`] of a stream of ranked items, kept in a fixed array (no
/// allocation): what a worker uses to decide which of its talking legs to decode.
#[derive(Clone, Copy, Debug)]
pub struct Best<T: Copy> {
    len: usize,
    items: [((u64, u64), Option<T>); MAX_SPEAKERS],
}

impl<T: Copy> Default for Best<T> {
    fn default() -> Self {
        Best { len: 0, items: [((0, 0), None); MAX_SPEAKERS] }
    }
}

impl<T: Copy> Best<T> {
    /// Offer an item with its [`rank`]; kept if among the best so far.
    pub fn offer(&mut self, key: (u64, u64), item: T) {
        let mut pos = self.len;
        while pos > 0 && self.items[pos - 1].0 < key {
            pos -= 1;
        }
        if pos >= MAX_SPEAKERS {
            return;
        }
        let end = (self.len + 1).min(MAX_SPEAKERS);
        for k in (pos + 1..end).rev() {
            self.items[k] = self.items[k - 1];
        }
        self.items[pos] = (key, Some(item));
        self.len = end;
    }

    /// The kept items, best first.
    pub fn items(&self) -> impl Iterator<Item = T> + '_ {
        self.items[..self.len].iter().filter_map(|(_, i)| *i)
    }
}

/// Pick the [`MAX_SPEAKERS`] best candidates of `room` across all publications.
/// Cost: O(candidates × N) comparisons; only talking, unmuted legs are candidates.
pub fn select_speakers(room: RoomId, pubs: &[&Publication]) -> Selection {
    let mut best = Best::default();
    for (pi, p) in pubs.iter().enumerate() {
        for (ci, c) in p.room(room).iter().enumerate() {
            best.offer(score(c), (c.leg, pi as u16, ci as u32));
        }
    }
    let mut sel = Selection::default();
    for slot in best.items() {
        sel.slots[sel.len] = slot;
        sel.len += 1;
    }
    sel
}

/// The frame of a selected speaker.
pub fn selected_frame<'a>(pubs: &[&'a Publication], room: RoomId, slot: (LegId, u16, u32)) -> &'a Frame {
    &selected_candidate(pubs, room, slot).frame
}

/// A selected speaker's candidate (both its frames).
pub fn selected_candidate<'a>(pubs: &[&'a Publication], room: RoomId, slot: (LegId, u16, u32)) -> &'a Candidate {
    &pubs[slot.1 as usize].room(room)[slot.2 as usize]
}

/// i32 sum of the selected speakers' frames, from which each listener's mix is derived.
pub struct MixSum {
    pub sum: [i32; FRAME_SAMPLES],
    /// The same at 8 kHz, valid when `narrow` (every speaker had a narrowband frame).
    pub narrow_sum: [i32; FRAME_SAMPLES / 2],
    pub narrow: bool,
}

impl Default for MixSum {
    fn default() -> Self {
        MixSum { sum: [0; FRAME_SAMPLES], narrow_sum: [0; FRAME_SAMPLES / 2], narrow: false }
    }
}

/// `out += add`, saturated (a prompt over a listener's mix).
pub fn add_saturating(out: &mut Frame, add: &Frame) {
    for (o, &a) in out.iter_mut().zip(add.iter()) {
        *o = o.saturating_add(a);
    }
}

fn saturate(a: i32) -> i16 {
    a.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

impl MixSum {
    /// Sum the selected frames. Cost: N × 320 adds.
    pub fn compute(&mut self, frames: &[&Frame]) {
        self.sum = [0; FRAME_SAMPLES];
        for f in frames {
            for (acc, &s) in self.sum.iter_mut().zip(f.iter()) {
                *acc += s as i32;
            }
        }
        self.narrow = false;
    }

    /// Sum the selected speakers' frames, and their 8 kHz frames too when every one has
    /// them (then `narrow`). Cost: N × (320 + 160) adds.
    pub fn compute_speakers(&mut self, speakers: &[&Candidate]) {
        self.sum = [0; FRAME_SAMPLES];
        self.narrow_sum = [0; FRAME_SAMPLES / 2];
        for c in speakers {
            for (acc, &s) in self.sum.iter_mut().zip(c.frame.iter()) {
                *acc += s as i32;
            }
            for (acc, &s) in self.narrow_sum.iter_mut().zip(c.narrow.iter()) {
                *acc += s as i32;
            }
        }
        self.narrow = speakers.iter().all(|c| c.has_narrow);
    }

    /// Adds one more voice (a room prompt) to the 16 kHz sum; the 8 kHz sum no longer
    /// matches, so `narrow` is cleared.
    pub fn add_frame(&mut self, frame: &Frame) {
        for (acc, &s) in self.sum.iter_mut().zip(frame.iter()) {
            *acc += s as i32;
        }
        self.narrow = false;
    }

    /// The 8 kHz mix without the `excluded` speakers' frames, saturated to i16 (only
    /// meaningful when `narrow`). Cost: 160 × (1 + k).
    pub fn mix_without_narrow(&self, excluded: &[&NarrowFrame], out: &mut NarrowFrame) {
        let mut acc = self.narrow_sum;
        for f in excluded {
            for (a, &s) in acc.iter_mut().zip(f.iter()) {
                *a -= s as i32;
            }
        }
        out.iter_mut().zip(&acc).for_each(|(o, &a)| *o = saturate(a));
    }

    /// The mix without the `excluded` frames, saturated to i16. Cost: 320 × (1 + k).
    pub fn mix_without(&self, excluded: &[&Frame], out: &mut Frame) {
        match excluded {
            [] => out.iter_mut().zip(&self.sum).for_each(|(o, &a)| *o = saturate(a)),
            [x] => {
                for ((o, &a), &x) in out.iter_mut().zip(&self.sum).zip(x.iter()) {
                    *o = saturate(a - x as i32);
                }
            }
            _ => {
                let mut acc = self.sum;
                for f in excluded {
                    for (a, &s) in acc.iter_mut().zip(f.iter()) {
                        *a -= s as i32;
                    }
                }
                out.iter_mut().zip(&acc).for_each(|(o, &a)| *o = saturate(a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amp: i16) -> Frame {
        let mut f = SILENCE;
        for (i, s) in f.iter_mut().enumerate() {
            *s = if i % 2 == 0 { amp } else { -amp };
        }
        f
    }

    #[test]
    fn talk_detector_hysteresis() {
        let mut t = TalkDetector::default();
        let loud = frame_energy(&tone(3000));
        assert_eq!(t.update(loud), None);
        assert_eq!(t.update(loud), Some(true), "attack after 40 ms");
        for _ in 0..RELEASE_FRAMES - 1 {
            assert_eq!(t.update(0), None);
        }
        assert_eq!(t.update(0), Some(false), "release after 500 ms");
        // A short blip does not start talking.
        assert_eq!(t.update(loud), None);
        assert_eq!(t.update(0), None);
        assert!(!t.talking());
    }

    #[test]
    fn selects_loudest_with_hysteresis() {
        let mut p = Publication::default();
        let room = RoomId(1);
        p.begin_room(room);
        for (id, level) in [(1u64, 100u64), (2, 500), (3, 300), (4, 400), (5, 200)] {
            p.push(LegId(id), level, false, &SILENCE);
        }
        p.end_room();
        let sel = select_speakers(room, &[&p]);
        assert_eq!(sel.legs().collect::<Vec<_>>(), vec![LegId(2), LegId(4), LegId(3)]);

        // Leg 1 was selected: its bonus (2x100=200) is not enough; leg 5 at 200 with a
        // bonus beats leg 3 at 300.
        p.clear();
        p.begin_room(room);
        p.push(LegId(3), 300, false, &SILENCE);
        p.push(LegId(5), 200, true, &SILENCE);
        p.push(LegId(2), 500, true, &SILENCE);
        p.push(LegId(4), 400, true, &SILENCE);
        p.end_room();
        let sel = select_speakers(room, &[&p]);
        assert_eq!(sel.legs().collect::<Vec<_>>(), vec![LegId(2), LegId(4), LegId(5)]);
    }

    #[test]
    fn selection_spans_publications() {
        let room = RoomId(9);
        let mut a = Publication::default();
        let mut b = Publication::default();
        a.begin_room(room);
        a.push(LegId(1), 10, false, &SILENCE);
        a.end_room();
        b.begin_room(RoomId(8));
        b.push(LegId(7), 1000, false, &SILENCE);
        b.begin_room(room);
        b.push(LegId(2), 20, false, &SILENCE);
        b.end_room();
        let sel = select_speakers(room, &[&a, &b]);
        assert_eq!(sel.legs().collect::<Vec<_>>(), vec![LegId(2), LegId(1)]);
    }

    #[test]
    fn narrow_sum_only_when_every_speaker_has_one() {
        let mut p = Publication::default();
        let room = RoomId(3);
        let mut n1 = NARROW_SILENCE;
        n1[0] = 1000;
        let mut n2 = NARROW_SILENCE;
        n2[0] = 32_000;
        p.begin_room(room);
        p.push_with_narrow(LegId(1), 10, false, &tone(100), Some(&n1));
        p.push_with_narrow(LegId(2), 20, false, &tone(200), Some(&n2));
        p.push(LegId(3), 5, false, &tone(300));
        p.end_room();
        let c = p.room(room);
        let mut m = MixSum::default();
        m.compute_speakers(&[&c[0], &c[1]]);
        assert!(m.narrow);
        let mut out = NARROW_SILENCE;
        m.mix_without_narrow(&[], &mut out);
        assert_eq!(out[0], i16::MAX, "saturates");
        m.mix_without_narrow(&[&c[1].narrow], &mut out);
        assert_eq!(out[0], 1000);
        let mut wide = SILENCE;
        m.mix_without(&[&c[0].frame], &mut wide);
        assert_eq!(wide, tone(200));
        // A speaker without an 8 kHz frame: the 16 kHz path only.
        m.compute_speakers(&[&c[0], &c[2]]);
        assert!(!m.narrow);
    }

    #[test]
    fn mix_saturates_and_excludes() {
        let a = tone(20_000);
        let b = tone(20_000);
        let mut m = MixSum::default();
        m.compute(&[&a, &b]);
        let mut out = SILENCE;
        m.mix_without(&[], &mut out);
        assert_eq!(out[0], i16::MAX);
        assert_eq!(out[1], i16::MIN);
        m.mix_without(&[&a], &mut out);
        assert_eq!(out, b);
    }
}
