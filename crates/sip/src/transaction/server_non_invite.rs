//! Server non-INVITE transaction (RFC 3261 §17.2.2).
//!
//! ```text
//!  Trying --1xx--> Proceeding --200-699--> Completed --J--> Terminated
//!     +-----------200-699-------------^
//! ```
//! Request retransmissions are absorbed in Trying and answered with the last response
//! otherwise. Nothing is retransmitted on a timer.

use super::timer::{Timer, TimerTable};
use super::Io;
use crate::message::{Peer, Response};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

pub(crate) struct ServerNonInvite {
    pub state: State,
    resp_to: Peer,
    last: Option<Arc<[u8]>>,
    pub timers: TimerTable,
}

impl ServerNonInvite {
    pub fn new(resp_to: Peer) -> ServerNonInvite {
        ServerNonInvite {
            state: State::Trying,
            resp_to,
            last: None,
            timers: TimerTable::default(),
        }
    }

    pub fn on_retransmit(&mut self, io: &mut Io) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            if let Some(last) = &self.last {
                io.transmit(self.resp_to, last);
            }
        }
    }

    /// False if the state forbids it (ignored).
    pub fn send_response(&mut self, resp: Response, io: &mut Io) -> bool {
        match (self.state, resp.status) {
            (State::Trying | State::Proceeding, 100..=199) => self.state = State::Proceeding,
            (State::Trying | State::Proceeding, 200..) => {
                if self.resp_to.transport.is_reliable() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::J, io.now + io.cfg.t64());
                    self.state = State::Completed;
                }
            }
            _ => return false,
        }
        let bytes: Arc<[u8]> = resp.to_bytes().into();
        io.transmit(self.resp_to, &bytes);
        self.last = Some(bytes);
        true
    }

    pub fn on_timer(&mut self, timer: Timer) {
        if timer == Timer::J && self.state == State::Completed {
            self.timers.stop_all();
            self.state = State::Terminated;
        }
    }
}
