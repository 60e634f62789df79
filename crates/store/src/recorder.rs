//! The recorder: writes engine events to the store in the background, so the
//! signalling task never waits on the database.
//!
//! ```text
//! signalling task ── Recorder::record(&ev) ──try_send──▶ [bounded queue] ──▶ writer task
//!   (never awaits)     full? count it dropped,             recv_many ≤ 256 writes,
//!                      log at 1, 2, 4, 8… drops            one transaction each
//! ```
//!
//! The queue is bounded ([`DEFAULT_CAPACITY`]) because a stalled disk must cost
//! records, not memory or call handling: when it is full the event is counted in
//! [`RecorderStats::dropped`] and logged (at the 1st, 2nd, 4th, 8th… drop, so an
//! overload does not become a log flood), and `record` returns at once either way.
//! The writer takes whatever has queued up, up to [`MAX_BATCH`], and writes it in one
//! transaction with up to 64 legs a statement: a commit costs far more than a
//! statement, and a statement far more than a row, so batching is what lets the
//! writer catch up after a burst.
//!
//! Shutdown: drop every `Recorder` clone; the writer drains what is queued, writes
//! it, and its `JoinHandle` completes.
//!
//! Only what is persisted is queued: a leg's record when it ends
//! (`EngineEvent::LegEnded`), a two-party call's record when it ends (`CallEnded`),
//! a room's start and end (`RoomStarted`, `RoomEnded`), and the registrar's binding changes (`BindingSaved`, `BindingRemoved`), so
//! registrations survive a restart. Leg starts, answers and DTMF are not stored.
//!
//! A leg's `LegInfo` names its room only by number (`Service::Room("4711")`), so the
//! writer fills in the confid from the rooms it has seen start: the room with that
//! number that is open, or else one that has just ended (the engine reports a room's
//! end just before its last participant's). A room whose start was dropped leaves
//! its legs without a confid.

use crate::store::{Store, Write};
use engine::{EngineEvent, LegInfo, RoomInfo, Service};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Writes the queue holds by default before new ones are dropped: a few seconds of
/// call endings at any plausible call rate, and at most a few MB of memory.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// Queues writes for the writer task. Cheap to clone; every method returns at once.
#[derive(Debug, Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Write>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
}

/// What the recorder has done so far (counts of writes: one per leg record or room
/// start/end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Accepted into the queue.
    pub queued: u64,
    /// Refused because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Committed to the database.
    pub written: u64,
    /// Taken from the queue but not written (database error, value out of range,
    /// end of an unknown room); each is logged.
    pub failed: u64,
}

/// Starts the writer task (on the current tokio runtime) with a queue of
/// [`DEFAULT_CAPACITY`]. The task ends once every `Recorder` clone is dropped and
/// the queue is written out.
pub fn spawn_recorder(store: Store) -> (Recorder, JoinHandle<()>) {
    spawn_recorder_with_capacity(store, DEFAULT_CAPACITY)
}

/// [`spawn_recorder`] with a queue of `capacity` writes (at least 1).
pub fn spawn_recorder_with_capacity(store: Store, capacity: usize) -> (Recorder, JoinHandle<()>) {
    let (queue, rx) = mpsc::channel(capacity.max(1));
    let counters = Arc::new(Counters::default());
    let writer = tokio::spawn(write_loop(store, rx, counters.clone()));
    (Recorder { queue, counters }, writer)
}

impl Recorder {
    /// Queues what `ev` means for the database, if anything: a `LegEnded` becomes the
    /// leg's call record, a `RoomStarted`/`RoomEnded` the room's history row.
    /// Returns false if it had to be dropped. Costs a clone of the event's info and a
    /// `try_send`: about 1 µs (`examples/record_bench.rs`), whatever the database does.
    pub fn record(&self, ev: &EngineEvent) -> bool {
        // Exhaustive on purpose: a new event kind should be a decision here.
        match ev {
            EngineEvent::LegEnded(info) => self.leg_ended(info, None),
            EngineEvent::RoomStarted(room) => self.room_started(room),
            EngineEvent::RoomEnded { info, ended_ms, max_participants } => {
                self.room_ended(&info.confid, *ended_ms, *max_participants)
            }
            EngineEvent::LegStarted(_) | EngineEvent::LegAnswered(_) | EngineEvent::Dtmf { .. } => true,
            EngineEvent::BindingSaved(b) => self.offer(Write::BindingSaved(b.clone())),
            EngineEvent::BindingRemoved { user_id, contact } => {
                self.offer(Write::BindingRemoved { user_id: *user_id, contact: contact.clone() })
            }
            // A call's record is written once, from its final snapshot (which carries
            // its answer and end, codecs and recordings).
            EngineEvent::CallEnded(info) => self.offer(Write::Call(Box::new(info.clone()))),
            // Messages are stored by the shell once their file is complete and trimmed.
            EngineEvent::VoicemailRecorded { .. } | EngineEvent::VoicemailLogin { .. } | EngineEvent::VoicemailPlayed { .. } => true,
            // Instant messages are stored by the shell (it also reads them back).
            EngineEvent::MessageAccepted(_) | EngineEvent::MessageDelivered { .. } | EngineEvent::MessageDeferred { .. } | EngineEvent::MessageFailed { .. } => true,
            EngineEvent::CallStarted(_)
            | EngineEvent::CallRinging(_)
            | EngineEvent::CallAnswered(_)
            | EngineEvent::CallHeld(_)
            | EngineEvent::CallRetrieved(_)
            | EngineEvent::CallTransferred { .. }
            | EngineEvent::RecordingStarted { .. }
            | EngineEvent::RecordingStopped { .. }
            | EngineEvent::WakeUser { .. } => true,
            // Room recordings are files under the data dir, listed from there; prompts
            // are transient.
            EngineEvent::PromptEnded { .. }
            | EngineEvent::RoomRecordingStarted(_)
            | EngineEvent::RoomRecordingStopped(_)
            | EngineEvent::RecordingCompleted { .. } => true,
            // Live audio streams are transient too.
            EngineEvent::StreamStarted(_) | EngineEvent::StreamStopped { .. } => true,
        }
    }

    /// Queues a leg's call record, in room `confid` if any (when `None`, the writer
    /// finds the room from the leg's `Service::Room` number, as for `record`).
    pub fn leg_ended(&self, info: &LegInfo, confid: Option<&str>) -> bool {
        self.offer(Write::Leg { info: info.clone(), confid: confid.map(str::to_owned) })
    }

    /// Queues a room's start ([`Store::record_room_started`]).
    pub fn room_started(&self, room: &RoomInfo) -> bool {
        self.offer(Write::RoomStarted(room.clone()))
    }

    /// Queues a room's end ([`Store::record_room_ended`]).
    pub fn room_ended(&self, confid: &str, ended_ms: u64, max_participants: u32) -> bool {
        self.offer(Write::RoomEnded { confid: confid.to_owned(), ended_ms, max_participants })
    }

    pub fn stats(&self) -> RecorderStats {
        self.counters.snapshot()
    }

    fn offer(&self, write: Write) -> bool {
        let why = match self.queue.try_send(write) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(TrySendError::Full(_)) => "queue full",
            Err(TrySendError::Closed(_)) => "writer stopped",
        };
        let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            warn!(dropped, "store recorder: {why}; record not written");
        }
        false
    }
}

impl Counters {
    fn snapshot(&self) -> RecorderStats {
        RecorderStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Counts `n` failed writes; true when this crosses a power of two (time to log).
    fn fail(&self, n: u64) -> bool {
        let before = self.failed.fetch_add(n, Ordering::Relaxed);
        (before + 1..=before + n).any(u64::is_power_of_two)
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Write>, counters: Arc<Counters>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut rooms = RoomNumbers::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for write in &mut batch {
            rooms.follow(write);
        }
        match store.apply_batch(&batch).await {
            Ok(rejected) => {
                let written = (batch.len() - rejected.len()) as u64;
                counters.written.fetch_add(written, Ordering::Relaxed);
                for (i, error) in rejected {
                    if counters.fail(1) {
                        warn!(failed = counters.failed.load(Ordering::Relaxed), write = ?batch[i], %error,
                            "store recorder: record not written");
                    }
                }
            }
            Err(error) => {
                // Not retried: the statement already waited BUSY_TIMEOUT for locks, and
                // retrying while the queue fills would only turn a lost batch into drops.
                if counters.fail(batch.len() as u64) {
                    warn!(failed = counters.failed.load(Ordering::Relaxed), lost = batch.len(), %error,
                        "store recorder: batch not written");
                }
            }
        }
        batch.clear();
    }
    debug!(stats = ?counters.snapshot(), "store recorder stopped: queue drained");
}

/// (Domain, room number) → confid of the rooms the writer has seen start, to give room
/// legs their confid (two domains may both have a room 1 open at once). Bounded: the
/// open rooms plus the last [`RoomNumbers::ENDED_KEPT`] ended.
#[derive(Default)]
struct RoomNumbers {
    open: HashMap<String, String>,
    /// Newest last.
    ended: VecDeque<(String, String)>,
}

impl RoomNumbers {
    /// Ended rooms remembered. A room's last participant's record follows the room's
    /// end straight away in the queue; this is ample slack for that.
    const ENDED_KEPT: usize = 64;

    /// Learns from `write`, in queue order, and fills in a room leg's missing confid.
    fn follow(&mut self, write: &mut Write) {
        match write {
            Write::RoomStarted(room) => {
                self.open.insert(room_key(&room.domain, &room.confroomnum), room.confid.clone());
            }
            Write::RoomEnded { confid, .. } => {
                let number = self.open.iter().find(|(_, c)| *c == confid).map(|(n, _)| n.clone());
                if let Some(number) = number {
                    let confid = self.open.remove(&number).expect("present");
                    if self.ended.len() == Self::ENDED_KEPT {
                        self.ended.pop_front();
                    }
                    self.ended.push_back((number, confid));
                }
            }
            Write::Leg { info, confid } => {
                if let (None, Service::Room(number)) = (&confid, &info.service) {
                    *confid = self.confid_of(&room_key(&info.domain, number)).map(str::to_owned);
                }
            }
            Write::BindingSaved(_) | Write::BindingRemoved { .. } | Write::Call(_) => {}
        }
    }

    fn confid_of(&self, key: &str) -> Option<&str> {
        if let Some(confid) = self.open.get(key) {
            return Some(confid);
        }
        self.ended.iter().rev().find(|(k, _)| k == key).map(|(_, c)| c.as_str())
    }
}

/// A room's key in [`RoomNumbers`]: its domain and number (a newline never occurs in either).
fn room_key(domain: &str, number: &str) -> String {
    format!("{}\n{number}", domain.to_ascii_lowercase())
}
