//! RFC 3261 §17 transactions, as a sans-IO state machine (with RFC 6026's Accepted
//! states, §8.2.2.2 request merging, §9.2 CANCEL and RFC 3581 `rport`).
//!
//! [`TransactionLayer`] owns every client and server transaction. It never touches a
//! socket or a clock: the driver feeds it what arrived and what time it is, and pulls
//! out bytes to send and events for the transaction user (TU), quinn-proto style:
//!
//! ```text
//! loop {
//!     // on a datagram / stream message:  layer.handle_message(now, msg, from)
//!     // on the wake-up instant:          layer.handle_timeout(now)
//!     // TU actions:                      layer.send_request / send_response / cancel
//!     while let Some(out) = layer.poll_output() {
//!         match out {
//!             Output::Transmit { to, data } => socket_send(to, &data),
//!             Output::Event(ev) => tu.handle(ev),
//!         }
//!     }
//!     sleep_until(layer.poll_timeout());
//! }
//! ```
//!
//! Layout: one file per machine (`client_invite`, `client_non_invite`, `server_invite`,
//! `server_non_invite`), each a plain struct with its state, its [`timer::TimerTable`]
//! and methods that take an [`Io`]; `layer` does matching (`key`), response routing
//! (`route`), the cross-transaction rules (CANCEL, merging, ACK for 2xx) and keeps the
//! one deadline queue for all transactions.
//!
//! Deviations from the letter of RFC 3261, on purpose:
//! - Server INVITE sends `100 Trying` at once rather than after 200 ms.
//! - The 2xx retransmissions of §13.3.1.4 (a UAS core duty) are done here, in the
//!   server INVITE's Accepted state, and an ACK for the 2xx ends them.
//! - Timers D, I, J and K are zero on reliable transports: the machine terminates on
//!   the spot instead of arming a zero timer.

mod client_invite;
mod client_non_invite;
mod key;
mod layer;
mod route;
mod server_invite;
mod server_non_invite;
mod timer;

pub use layer::TransactionLayer;
pub use route::{response_peer, stamp_via};
pub use timer::Timer;

use crate::message::{Peer, Request, Response};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The RFC 3261 §17.1.1.1 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; the base of every retransmission interval.
    pub t1: Duration,
    /// Cap on non-INVITE request and INVITE response retransmission intervals.
    pub t2: Duration,
    /// How long a message may linger in the network.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: timers B, F, H, J, L, M.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Opaque handle of one transaction, unique for the layer's lifetime.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// What the driver must do next.
#[allow(clippy::large_enum_variant)] // moved once through the queue; boxing costs more
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes. Retransmissions hand out the same `Arc`.
    Transmit {
        to: Peer,
        data: Arc<[u8]>,
    },
    Event(TxEvent),
}

/// Events for the transaction user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// A new server transaction (any method but ACK and CANCEL: CANCEL is answered by
    /// the layer and surfaces only as [`TxEvent::Cancelled`]).
    Request { tx: TxId, req: Request, from: Peer },
    /// An ACK. `tx` is the server INVITE transaction whose 2xx it acknowledges, for the
    /// first ACK and for its retransmissions as long as that transaction lives (timer
    /// L); `None` when it matches nothing. ACKs for 300-699 never surface.
    Ack {
        tx: Option<TxId>,
        req: Request,
        from: Peer,
    },
    /// A CANCEL matched a pending server INVITE: the layer has already answered 200 to
    /// the CANCEL and 487 to the INVITE.
    Cancelled { invite_tx: TxId, cancel: Request },
    /// A response for a client transaction: every 1xx, the final, and for INVITE every
    /// 2xx retransmission (RFC 6026 Accepted) so the TU can re-ACK.
    Response { tx: TxId, resp: Response },
    /// Timer B or F fired: treat as 408.
    Timeout { tx: TxId },
    /// We sent a 2xx to INVITE and no ACK came within 64*T1: the TU should send BYE.
    AckTimeout { tx: TxId, req: Request },
    /// The transaction is gone.
    Terminated { tx: TxId },
}

/// What a machine method may touch: the time, the timer values and the output queue.
pub(crate) struct Io<'a> {
    pub now: Instant,
    pub cfg: &'a TimerConfig,
    pub out: &'a mut VecDeque<Output>,
}

impl Io<'_> {
    pub fn transmit(&mut self, to: Peer, data: &Arc<[u8]>) {
        self.out.push_back(Output::Transmit {
            to,
            data: Arc::clone(data),
        });
    }
    pub fn event(&mut self, ev: TxEvent) {
        self.out.push_back(Output::Event(ev));
    }
}

/// Next retransmission interval: doubled, capped at `cap` when given.
pub(crate) fn backoff(interval: Duration, cap: Option<Duration>) -> Duration {
    let next = interval * 2;
    match cap {
        Some(cap) => next.min(cap),
        None => next,
    }
}

/// A random tag or branch suffix: 16 hex digits.
pub(crate) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}
