//! The conference mix: who is talking, which speakers are mixed, and the saturating sum.
//!
//! What: the pure, clock-free building blocks of the 20 ms mix that
//! [`crate::engine::MediaCore`] runs each tick for every room:
//!
//! - [`TalkDetector`]: per-leg voice activity with hysteresis (attack 40 ms = 2 frames
//!   above threshold, release 500 ms = 25 frames below), driving `Talking` events and
//!   deciding who is a speaker candidate at all (silent legs are skipped entirely).
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
//! Why N loudest: summing every participant of a 3,000-leg room would add 3,000 noise
//! floors and cost 3,000 adds per sample. Mixing at most N speakers bounds the work
//! per room per tick to N frames, and means that every listener who is not a selected
//! speaker and has no topology exception hears exactly the same mix, which is encoded
//! once per codec and sent to all of them.

use crate::engine::{LegId, RoomId};
use crate::FRAME_SAMPLES;
use std::collections::HashMap;

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
}

/// The candidates one worker offers this tick, grouped by room. Cleared and refilled
/// every tick; its vectors keep their capacity, so the steady state does not allocate.
#[derive(Default)]
pub struct Publication {
    candidates: Vec<Candidate>,
    /// Room -> range in `candidates`. Rooms are published contiguously.
    rooms: HashMap<RoomId, (u32, u32)>,
    open: Option<(RoomId, u32)>,
}

impl Publication {
    pub fn clear(&mut self) {
        self.candidates.clear();
        self.rooms.clear();
        self.open = None;
    }

    /// Start publishing the candidates of `room` (call once per room per tick).
    pub fn begin_room(&mut self, room: RoomId) {
        self.end_room();
        self.open = Some((room, self.candidates.len() as u32));
    }

    /// Publish one candidate for the room opened by [`begin_room`](Self::begin_room).
    /// Copies the 640-byte frame into a slot reused from earlier ticks.
    pub fn push(&mut self, leg: LegId, level: u64, was_selected: bool, frame: &Frame) {
        self.candidates.push(Candidate { leg, level, was_selected, frame: *frame });
    }

    pub fn end_room(&mut self) {
        if let Some((room, start)) = self.open.take() {
            let end = self.candidates.len() as u32;
            if end > start {
                self.rooms.insert(room, (start, end));
            }
        }
    }

    /// This worker's candidates for `room`.
    pub fn room(&self, room: RoomId) -> &[Candidate] {
        match self.rooms.get(&room) {
            Some(&(s, e)) => &self.candidates[s as usize..e as usize],
            None => &[],
        }
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
    let bonus = if c.was_selected { 2 } else { 1 };
    // Ties broken by leg id so that every worker picks the same set.
    (c.level.saturating_mul(bonus), c.leg.0)
}

/// Pick the [`MAX_SPEAKERS`] best candidates of `room` across all publications.
/// Cost: O(candidates × N) comparisons; only talking, unmuted legs are candidates.
pub fn select_speakers(room: RoomId, pubs: &[&Publication]) -> Selection {
    let mut sel = Selection::default();
    let mut scores = [(0u64, 0u64); MAX_SPEAKERS];
    for (pi, p) in pubs.iter().enumerate() {
        for (ci, c) in p.room(room).iter().enumerate() {
            let s = score(c);
            // Insertion into a tiny sorted array (descending).
            let mut pos = sel.len;
            while pos > 0 && scores[pos - 1] < s {
                pos -= 1;
            }
            if pos >= MAX_SPEAKERS {
                continue;
            }
            let end = (sel.len + 1).min(MAX_SPEAKERS);
            for k in (pos + 1..end).rev() {
                scores[k] = scores[k - 1];
                sel.slots[k] = sel.slots[k - 1];
            }
            scores[pos] = s;
            sel.slots[pos] = (c.leg, pi as u16, ci as u32);
            sel.len = end;
        }
    }
    sel
}

/// The frame of a selected speaker.
pub fn selected_frame<'a>(pubs: &[&'a Publication], room: RoomId, slot: (LegId, u16, u32)) -> &'a Frame {
    &pubs[slot.1 as usize].room(room)[slot.2 as usize].frame
}

/// i32 sum of the selected speakers' frames, from which each listener's mix is derived.
pub struct MixSum {
    pub sum: [i32; FRAME_SAMPLES],
}

impl Default for MixSum {
    fn default() -> Self {
        MixSum { sum: [0; FRAME_SAMPLES] }
    }
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
    }

    /// The mix without the `excluded` frames, saturated to i16. Cost: 320 × (1 + k).
    pub fn mix_without(&self, excluded: &[&Frame], out: &mut Frame) {
        let mut acc = self.sum;
        for f in excluded {
            for (a, &s) in acc.iter_mut().zip(f.iter()) {
                *a -= s as i32;
            }
        }
        for (o, a) in out.iter_mut().zip(acc.iter()) {
            *o = (*a).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
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
