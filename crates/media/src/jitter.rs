//! Adaptive jitter buffer: turns one leg's RTP packets, arriving unevenly, out of
//! order, duplicated or not at all, into one payload per mixer tick.
//!
//! # Driving it
//! ```text
//! on RTP packet:   jb.push(now, seq, timestamp, marker, payload)
//! every 20 ms:     match jb.pop(now) {
//!                      Pop::Frame(p) => decoder.decode(p, pcm),
//!                      Pop::Lost     => decoder.conceal(pcm),
//!                      Pop::Empty    => silence (stream not started or idle),
//!                  }
//! ```
//! Payloads are released in sequence-number order (which is timestamp order for
//! one stream), one per `pop`. If the far end sends 10 ms packets, pop until a
//! 20 ms frame is decoded; [`JitterBuffer::packet_duration`] says how long each is.
//!
//! # Playout
//! The buffer first fills to the *target delay*, then plays. When the next packet
//! is missing it is declared lost (`Lost`, skip it) if the target delay of later
//! audio is already buffered or it is later than the delay percentile (below);
//! otherwise the buffer *stalls* — reports `Lost` so the decoder conceals, but
//! keeps waiting for that packet. A stall is how the playout delay grows when
//! packets come later than planned. After 100 ms
//! with nothing to play the stream is treated as idle (end of talkspurt, DTX, hold)
//! and the buffer refills to the target before playing again — as it also does
//! for a marker-bit packet (new talkspurt) that ends a stall. When the buffer has
//! held a frame more than the target for a whole second, one frame is dropped to
//! bring the delay back down; it never holds more than the maximum delay.
//!
//! # Target delay
//! For each packet, the *relative delay* is its transit time (arrival clock minus
//! RTP timestamp) above the smallest transit seen recently (a two-window running
//! minimum, which also follows clock drift). A decaying histogram of relative
//! delays (5 ms bins, memory ≈ 10 s) gives its 95th percentile; the target is that
//! plus one packet, between the configured minimum (20 ms) and maximum (200 ms).
//! The RFC 3550 interarrival jitter is computed alongside for RTCP.
//!
//! # Discontinuities
//! Sequence numbers are extended across the 16-bit wrap. A jump of more than
//! [`SLOTS`] packets forward or 100 back is a new stream (restarted sender, SSRC
//! change behind a relay): after a second packet confirms it (RFC 3550 A.1
//! probation), the buffer flushes and refills. A timestamp jump with contiguous
//! sequence numbers (upstream source switch) restarts the delay estimate instead
//! of being mistaken for jitter. Call [`JitterBuffer::reset`] on an SSRC change.
//!
//! # Cost
//! Payloads are copied into a fixed ring of [`SLOTS`] preallocated slots of
//! [`MAX_PAYLOAD`] bytes (48 KB per leg), so nothing allocates after `new`. Per
//! packet: one copy plus a 64-bin histogram update; per pop: O(1).

use std::time::Instant;

/// Ring slots: packets buffered at most (640 ms of 20 ms packets).
pub const SLOTS: usize = 32;
/// Largest payload kept; bigger ones are discarded (never produced by our codecs at 20 ms).
pub const MAX_PAYLOAD: usize = 1500;

/// Default delay limits.
const DEFAULT_MIN_DELAY_MS: u32 = 20;
const DEFAULT_MAX_DELAY_MS: u32 = 200;
/// Consecutive empty pops before the stream counts as idle (100 ms).
const IDLE_POPS: u32 = 5;
/// Pops per delay-reduction window (1 s).
const SHRINK_WINDOW_POPS: u32 = 50;
/// A packet this far behind the newest one is not late but a restarted stream.
const MAX_MISORDER: i64 = 100;
/// Relative-delay histogram: bins of 5 ms, the last one collecting everything above.
const DELAY_BINS: usize = 64;
const BINS_PER_SECOND: u32 = 200;
/// Per-packet decay of the histogram: memory of ~500 packets (10 s at 50 packets/s).
const HISTOGRAM_DECAY: f32 = 0.998;
/// Share of packets the target delay should cover.
const DELAY_PERCENTILE: f32 = 0.95;
/// Packets per window of the running minimum transit.
const TRANSIT_WINDOW: u32 = 128;

/// A payload [`JitterBuffer::pop`] returned, named so that it can be read again
/// ([`JitterBuffer::played_frame`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Played(i64);

/// What the mixer should do for this tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<'a> {
    /// Decode this payload.
    Frame(&'a [u8]),
    /// A packet is missing (lost or late): run the decoder's concealment.
    Lost,
    /// Nothing to play (not started, or idle between talkspurts): silence, no PLC.
    Empty,
}

/// Counters and current state, for RTCP reports and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JitterStats {
    /// Delay the buffer currently aims for.
    pub target_delay_ms: u32,
    /// Audio currently buffered (including gaps not yet played out).
    pub buffered_ms: u32,
    /// Packets pushed.
    pub received: u64,
    /// Packets skipped at playout because they had not arrived (includes late ones).
    pub lost: u64,
    /// Packets that arrived after their playout time (dropped).
    pub late: u64,
    /// Packets received twice (second copy dropped).
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number (still played if in time).
    pub reordered: u64,
    /// Packets dropped to bound or reduce the delay, or too large.
    pub discarded: u64,
    /// Restarts: sequence-number discontinuities and timestamp jumps.
    pub resyncs: u64,
    /// RFC 3550 interarrival jitter in RTP timestamp units (for RTCP receiver reports).
    pub jitter: u32,
    /// The same jitter in milliseconds.
    pub jitter_ms: f64,
}

/// What one ring slot holds. Kept apart from the payload bytes, in a 512-byte array
/// inside the buffer: push and pop look at a slot's state for every packet, and with
/// thousands of legs a lookup that lands next to the 1,500-byte payload is a cache
/// miss each time (it was most of their cost).
#[derive(Clone, Copy)]
struct Slot {
    /// Extended sequence number of the packet in (or last in) this slot.
    ext_seq: i64,
    /// Payload bytes in `payloads[slot]`.
    len: u16,
    /// Holds a packet not yet played.
    filled: bool,
    /// The packet `ext_seq` was played (so a copy arriving now is a duplicate).
    played: bool,
    marker: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting until the target delay is buffered.
    Buffering,
    Playing,
}

/// Relative-delay statistics that set the target delay, plus RFC 3550 jitter.
struct DelayEstimator {
    /// Timestamp unwrapping: last timestamp seen and its extended value.
    last_ts: u32,
    last_ts_ext: i64,
    /// Transit (arrival − timestamp, RTP units) of the previous packet.
    last_transit: Option<i64>,
    /// Running minimum over the current and previous windows.
    window_min: i64,
    previous_window_min: i64,
    window_count: u32,
    /// Decaying histogram of relative delays, and its total mass.
    histogram: [f32; DELAY_BINS],
    mass: f32,
    /// RFC 3550 A.8 jitter, scaled by 16.
    jitter_x16: i64,
}

impl DelayEstimator {
    fn new() -> Self {
        Self {
            last_ts: 0,
            last_ts_ext: 0,
            last_transit: None,
            window_min: i64::MAX,
            previous_window_min: i64::MAX,
            window_count: 0,
            histogram: [0.0; DELAY_BINS],
            mass: 0.0,
            jitter_x16: 0,
        }
    }

    /// Account one packet. Returns false if its transit jumped by more than
    /// `max_step` (a timestamp discontinuity): the estimate restarts from it.
    /// Also returns the packet's extended timestamp.
    fn observe(&mut self, arrival: i64, ts: u32, bin_units: i64, max_step: i64) -> (bool, i64) {
        let ts_ext = if self.last_transit.is_none() {
            i64::from(ts)
        } else {
            self.last_ts_ext + i64::from(ts.wrapping_sub(self.last_ts) as i32)
        };
        self.last_ts = ts;
        self.last_ts_ext = ts_ext;
        let transit = arrival - ts_ext;

        let mut continuous = true;
        match self.last_transit {
            Some(last) if (transit - last).abs() > max_step => {
                // New timeline: forget the old minimum, keep the delay histogram.
                self.window_min = transit;
                self.previous_window_min = transit;
                self.window_count = 0;
                continuous = false;
            }
            Some(last) => {
                let d = (transit - last).abs();
                self.jitter_x16 += d - ((self.jitter_x16 + 8) >> 4);
            }
            None => {}
        }
        self.last_transit = Some(transit);

        self.window_min = self.window_min.min(transit);
        self.window_count += 1;
        if self.window_count == TRANSIT_WINDOW {
            self.previous_window_min = self.window_min;
            self.window_min = i64::MAX;
            self.window_count = 0;
        }
        let base = self.window_min.min(self.previous_window_min);

        let bin = ((transit - base).max(0) / bin_units).min(DELAY_BINS as i64 - 1) as usize;
        for weight in &mut self.histogram {
            *weight *= HISTOGRAM_DECAY;
        }
        self.histogram[bin] += 1.0;
        self.mass = self.mass * HISTOGRAM_DECAY + 1.0;
        (continuous, ts_ext)
    }

    /// Upper edge (RTP units) of the bin holding the delay percentile.
    fn percentile_delay(&self, bin_units: i64) -> i64 {
        let wanted = self.mass * DELAY_PERCENTILE;
        let mut cumulative = 0.0;
        for (bin, weight) in self.histogram.iter().enumerate() {
            cumulative += weight;
            if cumulative >= wanted {
                return (bin as i64 + 1) * bin_units;
            }
        }
        DELAY_BINS as i64 * bin_units
    }

    fn jitter(&self) -> u32 {
        (self.jitter_x16 >> 4) as u32
    }

    /// Smallest recent transit: the delay of a packet that met no queueing.
    fn base_transit(&self) -> i64 {
        self.window_min.min(self.previous_window_min)
    }

    /// Start a new timeline (new stream): keep only the delay histogram and jitter.
    fn restart(&mut self) {
        self.last_transit = None;
        self.window_min = i64::MAX;
        self.previous_window_min = i64::MAX;
        self.window_count = 0;
    }
}

/// The adaptive jitter buffer of one incoming RTP stream.
pub struct JitterBuffer {
    clock_rate: u32,
    samples_per_frame: u32,
    slots: [Slot; SLOTS],
    /// The payload bytes of each slot.
    payloads: Box<[[u8; MAX_PAYLOAD]]>,
    state: State,
    /// Arrival clock origin (first packet).
    epoch: Option<Instant>,
    /// Highest extended sequence number received, and its timestamp (raw and extended).
    max_ext: i64,
    max_ts: u32,
    max_ts_ext: i64,
    /// Next extended sequence number to play.
    next_ext: i64,
    /// Last one played, if any (nothing at or below it is accepted).
    last_played: Option<i64>,
    /// Filled slots.
    buffered: usize,
    /// Timestamp units per packet, learned from consecutive packets.
    packet_duration: u32,
    /// Consecutive pops that found the buffer empty.
    starved_pops: u32,
    /// Lowest level seen in the current shrink window, and pops in it.
    window_min_level: i64,
    window_pops: u32,
    /// Probation for a sequence discontinuity: the sequence number that confirms it.
    resync_candidate: Option<u16>,
    min_delay: i64,
    max_delay: i64,
    delay: DelayEstimator,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Buffer for a stream with RTP clock `clock_rate` whose packets normally carry
    /// `samples_per_frame` timestamp units (20 ms).
    pub fn new(clock_rate: u32, samples_per_frame: u32) -> Self {
        let slots = [Slot { ext_seq: i64::MIN, len: 0, filled: false, played: false, marker: false }; SLOTS];
        let payloads = vec![[0u8; MAX_PAYLOAD]; SLOTS].into_boxed_slice();
        let mut buffer = Self {
            clock_rate,
            samples_per_frame,
            slots,
            payloads,
            state: State::Buffering,
            epoch: None,
            max_ext: 0,
            max_ts: 0,
            max_ts_ext: 0,
            next_ext: 0,
            last_played: None,
            buffered: 0,
            packet_duration: samples_per_frame,
            starved_pops: 0,
            window_min_level: i64::MAX,
            window_pops: 0,
            resync_candidate: None,
            min_delay: 0,
            max_delay: 0,
            delay: DelayEstimator::new(),
            stats: JitterStats::default(),
        };
        buffer.set_delay_limits(DEFAULT_MIN_DELAY_MS, DEFAULT_MAX_DELAY_MS);
        buffer
    }

    /// Bound the playout delay (defaults 20 ms and 200 ms). The maximum is also
    /// limited by the [`SLOTS`] ring.
    pub fn set_delay_limits(&mut self, min_ms: u32, max_ms: u32) {
        self.min_delay = self.ms_to_units(min_ms);
        self.max_delay = self.ms_to_units(max_ms.max(min_ms));
    }

    /// Timestamp units per packet, as observed (initially `samples_per_frame`).
    pub fn packet_duration(&self) -> u32 {
        self.packet_duration
    }

    /// Forget everything buffered and the stream's numbering (e.g. on an SSRC
    /// change); statistics counters are kept.
    pub fn reset(&mut self) {
        for slot in self.slots.iter_mut() {
            slot.filled = false;
            slot.played = false;
            slot.ext_seq = i64::MIN;
        }
        self.state = State::Buffering;
        self.epoch = None;
        self.last_played = None;
        self.buffered = 0;
        self.starved_pops = 0;
        self.window_min_level = i64::MAX;
        self.window_pops = 0;
        self.resync_candidate = None;
        self.delay.restart();
    }

    /// A packet arrived at `now`.
    pub fn push(&mut self, now: Instant, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) {
        self.stats.received += 1;
        if payload.len() > MAX_PAYLOAD {
            self.stats.discarded += 1;
            return;
        }
        let epoch = *self.epoch.get_or_insert(now);
        let mut fresh = self.delay.last_transit.is_none();
        let mut ext = if fresh {
            self.start_stream(seq, timestamp);
            self.max_ext
        } else {
            self.max_ext + i64::from(seq.wrapping_sub(self.max_ext as u16) as i16)
        };

        // Sequence discontinuity: restart once a second packet confirms it.
        if ext - self.max_ext > SLOTS as i64 || self.max_ext - ext > MAX_MISORDER {
            if self.resync_candidate != Some(seq) {
                self.resync_candidate = Some(seq.wrapping_add(1));
                self.stats.discarded += 1;
                return;
            }
            self.stats.resyncs += 1;
            self.flush();
            self.delay.restart();
            self.start_stream(seq, timestamp);
            ext = self.max_ext;
            fresh = true;
        }
        self.resync_candidate = None;

        let arrival = self.arrival_units(now, epoch);
        let bin_units = self.bin_units();
        let (continuous, ts_ext) =
            self.delay
                .observe(arrival, timestamp, bin_units, 2 * self.max_delay);
        if !continuous {
            self.stats.resyncs += 1;
        }

        // Behind the playout point: already played (duplicate) or too late.
        let below_floor = self.last_played.is_some_and(|played| ext <= played);
        if ext < self.next_ext && (self.state == State::Playing || below_floor) {
            let slot = &self.slots[slot_index(ext)];
            if slot.ext_seq == ext && slot.played {
                self.stats.duplicates += 1;
            } else {
                self.stats.late += 1;
            }
            return;
        }
        let index = slot_index(ext);
        if self.slots[index].filled && self.slots[index].ext_seq == ext {
            self.stats.duplicates += 1;
            return;
        }
        if ext < self.next_ext {
            // Buffering and nothing played yet: an earlier packet extends the start.
            if self.max_ext - ext >= SLOTS as i64 {
                self.stats.late += 1;
                return;
            }
            self.next_ext = ext;
        }
        // Make room: the ring holds SLOTS consecutive sequence numbers from next_ext.
        while ext - self.next_ext >= SLOTS as i64 {
            self.drop_head();
        }

        let slot = &mut self.slots[index];
        slot.ext_seq = ext;
        slot.filled = true;
        slot.played = false;
        slot.marker = marker;
        slot.len = payload.len() as u16;
        self.payloads[index][..payload.len()].copy_from_slice(payload);
        self.buffered += 1;

        if ext < self.max_ext {
            self.stats.reordered += 1;
        } else if ext > self.max_ext || fresh {
            if ext == self.max_ext + 1 {
                // Learn the packet duration from consecutive packets (ignore silence gaps).
                let step = timestamp.wrapping_sub(self.max_ts);
                if step > 0 && step <= 6 * self.samples_per_frame {
                    self.packet_duration = step;
                }
            }
            self.max_ext = ext;
            self.max_ts = timestamp;
            self.max_ts_ext = ts_ext;
        }

        // Never hold more than the maximum delay.
        while self.level() > self.max_delay + i64::from(self.packet_duration) && self.buffered > 1 {
            self.drop_head();
        }
    }

    /// The mixer's 20 ms tick: what to play now.
    pub fn pop(&mut self, now: Instant) -> Pop<'_> {
        if self.epoch.is_none() {
            return Pop::Empty;
        }
        let target = self.target_delay();
        if self.state == State::Buffering {
            if self.buffered == 0 || self.level() < target {
                return Pop::Empty;
            }
            // Start at the oldest packet actually here.
            while !self.head_present() {
                self.next_ext += 1;
                self.stats.lost += 1;
            }
            self.state = State::Playing;
            self.starved_pops = 0;
            self.window_min_level = i64::MAX;
            self.window_pops = 0;
        }

        // Delay reduction: a whole window spent a frame or more above target.
        let level = self.level();
        self.window_min_level = self.window_min_level.min(level);
        self.window_pops += 1;
        if self.window_pops >= SHRINK_WINDOW_POPS {
            if self.window_min_level >= target + i64::from(self.packet_duration)
                && self.buffered > 1
            {
                self.drop_head();
            }
            self.window_min_level = i64::MAX;
            self.window_pops = 0;
        }

        if self.head_present() {
            let index = slot_index(self.next_ext);
            if self.slots[index].marker && self.starved_pops > 0 && self.level() < target {
                // A new talkspurt after a pause: rebuild the target delay first.
                self.state = State::Buffering;
                return Pop::Empty;
            }
            let slot = &mut self.slots[index];
            slot.filled = false;
            slot.played = true;
            self.buffered -= 1;
            self.last_played = Some(self.next_ext);
            self.next_ext += 1;
            self.starved_pops = 0;
            let len = self.slots[index].len as usize;
            return Pop::Frame(&self.payloads[index][..len]);
        }

        if self.buffered > 0 {
            self.starved_pops = 0;
            if self.level() >= target || self.head_overdue(now) {
                // Later audio is here and the missing packet is later than the
                // delay we are sized for: give up on it.
                self.stats.lost += 1;
                self.next_ext += 1;
            }
            // Otherwise stall: conceal this tick but keep waiting (delay grows).
            return Pop::Lost;
        }
        // Nothing buffered: conceal a while (the packet may be late), then go idle.
        self.starved_pops += 1;
        if self.starved_pops > IDLE_POPS {
            self.state = State::Buffering;
            return Pop::Empty;
        }
        Pop::Lost
    }

    /// The payload the last [`pop`](Self::pop) returned as [`Pop::Frame`], while its
    /// slot still holds it (see [`played_frame`](Self::played_frame)).
    pub fn last_frame(&self) -> Option<&[u8]> {
        self.played_frame(self.last_played()?)
    }

    /// Names the payload the last [`pop`](Self::pop) returned as [`Pop::Frame`], to
    /// read it again later with [`played_frame`](Self::played_frame).
    pub fn last_played(&self) -> Option<Played> {
        self.last_played.map(Played)
    }

    /// A payload an earlier [`pop`](Self::pop) returned, while its slot still holds it:
    /// until the packet [`SLOTS`] sequence numbers later is stored there, or the buffer
    /// is flushed or reset (then `None`). Lets the mixer measure a frame when it is
    /// popped and decode it a tick later (its look-ahead), without a copy.
    pub fn played_frame(&self, played: Played) -> Option<&[u8]> {
        let ext = played.0;
        let index = slot_index(ext);
        let slot = &self.slots[index];
        (slot.ext_seq == ext && slot.played && !slot.filled).then(|| &self.payloads[index][..slot.len as usize])
    }

    /// Whether the missing packet at the playout point is already later than the
    /// percentile delay: its expected timestamp (counted back from the newest
    /// packet) plus the base transit and that delay lies before `now`.
    fn head_overdue(&self, now: Instant) -> bool {
        let Some(epoch) = self.epoch else {
            return false;
        };
        let behind = self.max_ext - self.next_ext;
        let head_ts = self.max_ts_ext - behind * i64::from(self.packet_duration);
        let relative = self.arrival_units(now, epoch) - head_ts - self.delay.base_transit();
        relative > self.delay.percentile_delay(self.bin_units())
    }

    /// Current statistics.
    pub fn stats(&self) -> JitterStats {
        let mut stats = self.stats;
        stats.target_delay_ms = self.units_to_ms(self.target_delay());
        stats.buffered_ms = self.units_to_ms(self.level());
        stats.jitter = self.delay.jitter();
        stats.jitter_ms = f64::from(stats.jitter) * 1000.0 / f64::from(self.clock_rate);
        stats
    }

    /// Delay to aim for, RTP units: percentile relative delay plus one packet.
    fn target_delay(&self) -> i64 {
        if self.delay.mass == 0.0 {
            return self.min_delay;
        }
        let wanted =
            self.delay.percentile_delay(self.bin_units()) + i64::from(self.packet_duration);
        wanted.clamp(self.min_delay, self.max_delay)
    }

    /// Audio buffered from the playout point to the newest packet, RTP units.
    fn level(&self) -> i64 {
        if self.buffered == 0 {
            return 0;
        }
        (self.max_ext - self.next_ext + 1).max(0) * i64::from(self.packet_duration)
    }

    fn head_present(&self) -> bool {
        let slot = &self.slots[slot_index(self.next_ext)];
        slot.filled && slot.ext_seq == self.next_ext
    }

    /// Skip the packet at the playout point (dropped if here, lost if not).
    fn drop_head(&mut self) {
        let index = slot_index(self.next_ext);
        if self.head_present() {
            self.slots[index].filled = false;
            self.buffered -= 1;
            self.stats.discarded += 1;
        } else if self.buffered > 0 {
            self.stats.lost += 1;
        }
        self.next_ext += 1;
    }

    fn start_stream(&mut self, seq: u16, timestamp: u32) {
        // Keep extended numbers well away from zero so reordering before the first packet stays positive.
        let ext = (1 << 32) + i64::from(seq);
        self.max_ext = ext;
        self.max_ts = timestamp;
        self.next_ext = ext;
        self.last_played = None;
        self.state = State::Buffering;
    }

    fn flush(&mut self) {
        for slot in self.slots.iter_mut() {
            slot.filled = false;
            slot.played = false;
        }
        self.buffered = 0;
        self.starved_pops = 0;
    }

    fn arrival_units(&self, now: Instant, epoch: Instant) -> i64 {
        let nanos = now.saturating_duration_since(epoch).as_nanos();
        (nanos * u128::from(self.clock_rate) / 1_000_000_000) as i64
    }

    fn bin_units(&self) -> i64 {
        i64::from((self.clock_rate / BINS_PER_SECOND).max(1))
    }

    fn ms_to_units(&self, ms: u32) -> i64 {
        i64::from(ms) * i64::from(self.clock_rate) / 1000
    }

    fn units_to_ms(&self, units: i64) -> u32 {
        (units * 1000 / i64::from(self.clock_rate)) as u32
    }
}

fn slot_index(ext: i64) -> usize {
    ext.rem_euclid(SLOTS as i64) as usize
}
