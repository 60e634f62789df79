//! Live audio out: a room's mix, or what one leg says and/or hears, handed frame by
//! frame to whoever streams it (the shell's WebSocket client), and optionally audio
//! from there played back into the room or to the leg.
//!
//! Two bounded, lock-free queues of whole 20 ms frames (16 kHz, [`crate::MIX_RATE`])
//! sit between the media worker and the shell: `out` (worker -> shell) and `back`
//! (shell -> worker). Their slots are allocated once, when the stream starts, so
//! neither side allocates or locks per frame. The worker never waits:
//! - `out` full (the shell or the receiver is behind): the oldest frame is replaced
//!   and counted, so a stream that catches up is late by at most [`QUEUE_FRAMES`];
//! - `back` full (the receiver sends faster than real time): the frame is refused
//!   and counted;
//! - `back` empty: nothing is played. Playback (re)starts only once
//!   [`PLAYBACK_PREBUFFER`] frames are queued, so a receiver's jitter does not turn
//!   into a click every frame.
//!
//! The engine keeps a clone of the [`LiveAudio`] (to move it to another worker when
//! the leg it is mixed through leaves, and to close it); the shell holds another and
//! polls it. Closing is a flag with a reason: the shell sends its `stop` message and
//! closes the socket when it sees it.
//!
//! Per-frame cost on the worker: one 640-byte copy into a preallocated slot and two
//! atomic operations (a room's tap also saturates the i32 mix into i16: 320 clamps).

use crate::mixer::{frame_energy, Frame};
use crate::{LegId, FRAME_SAMPLES};
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Frames each queue holds (1 s).
pub const QUEUE_FRAMES: usize = 50;
/// Frames of playback queued before it starts (or restarts after running dry): 60 ms.
pub const PLAYBACK_PREBUFFER: usize = 3;

/// What a leg's stream carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// What the leg says (its own voice, before the room).
    Says,
    /// What the leg hears (the room's mix without its own voice).
    Hears,
    /// Both, summed: the conversation as a recording of the call would have it.
    Both,
}

/// One live stream, shared by the media worker, the engine and the shell.
#[derive(Clone, Debug)]
pub struct LiveAudio {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    out: ArrayQueue<Frame>,
    /// Playback frames; None when the stream plays nothing back.
    back: Option<ArrayQueue<Frame>>,
    direction: Direction,
    /// The id the playback is mixed under in a room (a speaker no real leg has).
    voice: LegId,
    /// Playback is past its prebuffer (only the worker that plays it touches this).
    playing: AtomicBool,
    /// Whether the playback voice was selected last tick (the mixer's hysteresis).
    voice_selected: AtomicBool,
    dropped_out: AtomicU64,
    dropped_back: AtomicU64,
    underruns: AtomicU64,
    /// Set once, by the engine, when the stream stops (never by the worker).
    stop: Mutex<Option<String>>,
    stopped: AtomicBool,
}

/// What a stream has counted so far.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveCounters {
    /// Frames the shell did not take in time (overwritten).
    pub dropped_out: u64,
    /// Playback frames refused because too much was queued.
    pub dropped_back: u64,
    /// Times playback ran dry after it had started.
    pub underruns: u64,
}

impl LiveAudio {
    /// A new stream. `id` must be unique among live streams: it names the playback's
    /// voice in the mixer (ids count down from the top of the leg id space, where no
    /// real leg is).
    pub fn new(id: u64, direction: Direction, play_back: bool) -> LiveAudio {
        LiveAudio {
            shared: Arc::new(Shared {
                out: ArrayQueue::new(QUEUE_FRAMES),
                back: play_back.then(|| ArrayQueue::new(QUEUE_FRAMES)),
                direction,
                voice: LegId(u64::MAX - id),
                playing: AtomicBool::new(false),
                voice_selected: AtomicBool::new(false),
                dropped_out: AtomicU64::new(0),
                dropped_back: AtomicU64::new(0),
                underruns: AtomicU64::new(0),
                stop: Mutex::new(None),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    pub fn direction(&self) -> Direction {
        self.shared.direction
    }

    pub fn plays_back(&self) -> bool {
        self.shared.back.is_some()
    }

    /// The mixer's id for the playback voice.
    pub fn voice(&self) -> LegId {
        self.shared.voice
    }

    // ---- the media worker's side -----------------------------------------------------

    /// Queues one frame for the shell; never blocks (a full queue loses its oldest).
    pub fn push(&self, frame: &Frame) {
        if self.shared.out.force_push(*frame).is_some() {
            self.shared.dropped_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues a room's full mix: the i32 sum of its speakers, saturated, less
    /// `minus` (the playback, so a receiver does not hear itself back).
    pub fn push_sum(&self, sum: &[i32; FRAME_SAMPLES], minus: Option<&Frame>) {
        let mut f = [0i16; FRAME_SAMPLES];
        match minus {
            None => f.iter_mut().zip(sum).for_each(|(o, &s)| *o = saturate(s)),
            Some(m) => f.iter_mut().zip(sum).zip(m).for_each(|((o, &s), &m)| *o = saturate(s - m as i32)),
        }
        self.push(&f);
    }

    /// The next playback frame into `out`, if playback is running; false when there is
    /// nothing to play (no playback, still prebuffering, or ran dry).
    pub fn next_playback(&self, out: &mut Frame) -> bool {
        let Some(back) = &self.shared.back else { return false };
        if !self.shared.playing.load(Ordering::Relaxed) {
            if back.len() < PLAYBACK_PREBUFFER {
                return false;
            }
            self.shared.playing.store(true, Ordering::Relaxed);
        }
        match back.pop() {
            Some(f) => {
                *out = f;
                true
            }
            None => {
                self.shared.playing.store(false, Ordering::Relaxed);
                self.shared.underruns.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The playback voice's rank in the room's speaker selection: its frame's energy,
    /// so it competes with the participants like one of them.
    pub fn voice_level(frame: &Frame) -> u64 {
        frame_energy(frame)
    }

    pub fn voice_was_selected(&self) -> bool {
        self.shared.voice_selected.load(Ordering::Relaxed)
    }

    pub fn set_voice_selected(&self, selected: bool) {
        self.shared.voice_selected.store(selected, Ordering::Relaxed);
    }

    // ---- the shell's side ------------------------------------------------------------

    /// The oldest frame not yet taken.
    pub fn take(&self) -> Option<Frame> {
        self.shared.out.pop()
    }

    /// Queues a frame to play; false (and counted) when too much is queued already or
    /// the stream plays nothing back.
    pub fn queue_playback(&self, frame: Frame) -> bool {
        let Some(back) = &self.shared.back else { return false };
        let ok = back.push(frame).is_ok();
        if !ok {
            self.shared.dropped_back.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub fn counters(&self) -> LiveCounters {
        LiveCounters {
            dropped_out: self.shared.dropped_out.load(Ordering::Relaxed),
            dropped_back: self.shared.dropped_back.load(Ordering::Relaxed),
            underruns: self.shared.underruns.load(Ordering::Relaxed),
        }
    }

    // ---- the engine's side -----------------------------------------------------------

    /// Marks the stream stopped, with why; the first reason stays.
    pub fn close(&self, reason: &str) {
        let mut g = self.shared.stop.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(reason.to_owned());
        }
        self.shared.stopped.store(true, Ordering::Release);
    }

    /// Why the stream stopped, once it has.
    pub fn stopped(&self) -> Option<String> {
        if !self.shared.stopped.load(Ordering::Acquire) {
            return None;
        }
        self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn saturate(s: i32) -> i16 {
    s.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_keeps_the_newest_frames_and_counts_the_rest() {
        let live = LiveAudio::new(1, Direction::Both, false);
        for i in 0..QUEUE_FRAMES + 5 {
            live.push(&[i as i16; FRAME_SAMPLES]);
        }
        assert_eq!(live.counters().dropped_out, 5);
        assert_eq!(live.take().unwrap()[0], 5, "the oldest five were replaced");
    }

    #[test]
    fn playback_waits_for_its_prebuffer_and_refuses_an_overflow() {
        let live = LiveAudio::new(2, Direction::Hears, true);
        let mut f = [0; FRAME_SAMPLES];
        live.queue_playback([1; FRAME_SAMPLES]);
        assert!(!live.next_playback(&mut f), "one frame is not enough to start");
        for _ in 1..QUEUE_FRAMES + 3 {
            live.queue_playback([1; FRAME_SAMPLES]);
        }
        assert_eq!(live.counters().dropped_back, 3);
        for _ in 0..QUEUE_FRAMES {
            assert!(live.next_playback(&mut f));
        }
        assert!(!live.next_playback(&mut f), "ran dry");
        assert_eq!(live.counters().underruns, 1);
        live.queue_playback([2; FRAME_SAMPLES]);
        assert!(!live.next_playback(&mut f), "prebuffers again after running dry");
    }

    #[test]
    fn the_first_stop_reason_stays() {
        let live = LiveAudio::new(3, Direction::Says, false);
        assert_eq!(live.stopped(), None);
        live.close("stopped");
        live.close("room_ended");
        assert_eq!(live.stopped().as_deref(), Some("stopped"));
    }
}
