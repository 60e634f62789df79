//! A bounded, numbered log of recent engine events, for APIs that let applications
//! catch up (`GET /v1/events?after=N`). The signalling task appends; HTTP handlers
//! read. One short lock per event — signalling rate, never the media path.

use crate::engine::EngineEvent;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many events are kept; older ones are dropped (readers see a gap in `seq`).
pub const EVENT_LOG_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct LoggedEvent {
    /// Increases by one per event, from 1.
    pub seq: u64,
    /// Milliseconds since the epoch.
    pub ts: u64,
    #[serde(flatten)]
    pub event: EngineEvent,
}

#[derive(Clone, Default)]
pub struct EventLog {
    inner: Arc<Mutex<(u64, VecDeque<LoggedEvent>)>>,
}

impl EventLog {
    pub fn push(&self, event: EngineEvent) {
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let seq = g.0;
        if g.1.len() == EVENT_LOG_CAPACITY {
            g.1.pop_front();
        }
        g.1.push_back(LoggedEvent { seq, ts, event });
    }

    /// Events with `seq > after`, oldest first, at most `limit`.
    pub fn after(&self, after: u64, limit: usize) -> Vec<LoggedEvent> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let start = g.1.partition_point(|e| e.seq <= after);
        g.1.iter().skip(start).take(limit).cloned().collect()
    }

    /// The newest sequence number handed out (0 before the first event).
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leg::LegId;

    fn dtmf(d: char) -> EngineEvent {
        EngineEvent::Dtmf { leg_id: LegId("x".into()), digit: d, duration_ms: 100, domain: "switchboard.local".into() }
    }

    #[test]
    fn numbered_bounded_and_paged() {
        let log = EventLog::default();
        for _ in 0..EVENT_LOG_CAPACITY + 5 {
            log.push(dtmf('1'));
        }
        assert_eq!(log.last_seq(), EVENT_LOG_CAPACITY as u64 + 5);
        let all = log.after(0, usize::MAX);
        assert_eq!(all.len(), EVENT_LOG_CAPACITY);
        assert_eq!(all[0].seq, 6, "the five oldest were dropped");
        let tail = log.after(EVENT_LOG_CAPACITY as u64 + 3, 10);
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![EVENT_LOG_CAPACITY as u64 + 4, EVENT_LOG_CAPACITY as u64 + 5]);
        let json = serde_json::to_value(&tail[0]).unwrap();
        assert_eq!(json["type"], "dtmf");
        assert_eq!(json["digit"], "1");
    }
}
