//! Measurement bookkeeping: a fixed-bucket latency histogram and per-stream RTP
//! receive counters (RFC 3550 A.1 style extended sequence numbers).

/// Histogram of durations with 10 µs buckets up to 2 s; longer values land in the
/// last bucket, and the exact maximum is kept aside. Recording is one increment.
#[derive(Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    pub count: u64,
    pub max_ns: u64,
}

const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 200_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let b = ((ns / BUCKET_NS) as usize).min(BUCKETS - 1);
        self.buckets[b] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.max_ns = self.max_ns.max(o.max_ns);
    }

    /// The `q` quantile (0..1) in milliseconds, at bucket resolution (upper edge).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want {
                return ((i as u64 + 1) * BUCKET_NS).min(self.max_ns.max(BUCKET_NS)) as f64 / 1e6;
            }
        }
        self.max_ns as f64 / 1e6
    }

    pub fn max_ms(&self) -> f64 {
        self.max_ns as f64 / 1e6
    }
}

/// What we have received on one participant's RTP socket.
#[derive(Clone, Default)]
pub struct StreamRx {
    started: bool,
    first_seq: u16,
    max_seq: u16,
    cycles: u32,
    pub received: u64,
    /// Kernel arrival time of the last packet (ns, realtime clock).
    pub last_arrival: u64,
    /// (extended max, received) when the measurement window opened.
    window_start: Option<(u64, u64)>,
}

impl StreamRx {
    /// Counts a packet with sequence number `seq`; returns the gap since the previous
    /// packet in ns (0 for the first). Cost: a few compares.
    #[inline]
    pub fn on_packet(&mut self, seq: u16, arrival: u64) -> u64 {
        self.received += 1;
        if !self.started {
            self.started = true;
            self.max_seq = seq;
            self.first_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < 0x8000 {
                if seq < self.max_seq {
                    self.cycles += 1;
                }
                self.max_seq = seq;
            }
        }
        let gap = if self.last_arrival != 0 && arrival > self.last_arrival {
            arrival - self.last_arrival
        } else {
            0
        };
        self.last_arrival = arrival;
        gap
    }

    pub fn extended_max(&self) -> u64 {
        ((self.cycles as u64) << 16) | self.max_seq as u64
    }

    pub fn open_window(&mut self) {
        self.window_start = Some((self.extended_max(), self.received));
    }

    /// (expected, received) inside the window. A stream that had nothing before the
    /// window counts from its first packet in it.
    pub fn window(&self) -> (u64, u64) {
        if !self.started {
            return (0, 0);
        }
        match self.window_start {
            Some((m0, r0)) if r0 > 0 => {
                (self.extended_max().saturating_sub(m0), self.received - r0)
            }
            // Nothing had arrived when the window opened: count from the first packet.
            _ => (
                self.extended_max() - self.first_seq as u64 + 1,
                self.received,
            ),
        }
    }
}
