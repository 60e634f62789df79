//! The transaction timers: RFC 3261 Table 4 plus RFC 6026's L and M.
//!
//! Each transaction owns one fixed [`TimerTable`]; its next deadline is simply the
//! earliest armed entry. The layer mirrors every armed entry into its single deadline
//! queue, so nothing here sleeps or reads a clock.

use std::time::Instant;

/// One named transaction timer. Which machine uses which is fixed by the RFC.
#[derive(Debug, Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Client INVITE, Calling: retransmit the INVITE (UDP only), T1 doubling (§17.1.1.2).
    A = 0,
    /// Client INVITE, Calling: no response within 64*T1, the transaction times out (§17.1.1.2).
    B,
    /// Client INVITE, Completed: stop absorbing final retransmissions, terminate (§17.1.1.2).
    D,
    /// Client non-INVITE: retransmit the request (UDP only), T1 doubling to T2 (§17.1.2.2).
    E,
    /// Client non-INVITE: no final within 64*T1, the transaction times out (§17.1.2.2).
    F,
    /// Server INVITE, Completed: retransmit the 300-699 final (UDP only), T1 doubling to T2 (§17.2.1).
    G,
    /// Server INVITE, Completed: no ACK for the 300-699 final within 64*T1, terminate (§17.2.1).
    H,
    /// Server INVITE, Confirmed: stop absorbing ACK retransmissions, terminate (§17.2.1).
    I,
    /// Server non-INVITE, Completed: stop answering request retransmissions, terminate (§17.2.2).
    J,
    /// Client non-INVITE, Completed: stop absorbing response retransmissions, terminate (§17.1.2.2).
    K,
    /// Server INVITE, Accepted: 64*T1 after the 2xx; terminate, AckTimeout if no ACK came (RFC 6026 §8.7, RFC 3261 §13.3.1.4).
    L,
    /// Client INVITE, Accepted: stop passing 2xx retransmissions to the TU, terminate (RFC 6026 §8.4).
    M,
    /// Server INVITE, Accepted: retransmit the 2xx (UDP only), T1 doubling to T2, until the ACK (§13.3.1.4).
    Retransmit2xx,
}

impl Timer {
    pub const VALUES: [Timer; 13] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::Retransmit2xx,
    ];
}

/// Deadlines of one transaction, indexed by [`Timer`].
#[derive(Debug, Copy, Clone, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    data: [Option<Instant>; Timer::VALUES.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer as usize] = Some(at);
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    pub fn stop(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    pub fn stop_all(&mut self) {
        self.data = Default::default();
    }

    /// Every armed timer with its deadline.
    pub fn armed(&self) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        Timer::VALUES
            .iter()
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
    }
}
