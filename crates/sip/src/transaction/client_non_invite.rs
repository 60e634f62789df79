//! Client non-INVITE transaction (RFC 3261 §17.1.2).
//!
//! ```text
//!  (Pending) --start--> Trying --1xx--> Proceeding --200-699--> Completed --K--> Terminated
//!                         |  E: resend, T1 doubling to T2   E: resend every T2
//!                         |  F: Timeout                     F: Timeout
//!                         +--200-699--> Completed
//! ```
//! Pending is ours: a CANCEL the TU asked for before any 1xx to its INVITE waits there
//! (§9.1) without sending or timing.

use super::timer::{Timer, TimerTable};
use super::{backoff, Io, TxEvent, TxId};
use crate::message::{Method, Peer, Request, Response};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Pending,
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

pub(crate) struct ClientNonInvite {
    id: TxId,
    pub state: State,
    pub method: Method,
    bytes: Arc<[u8]>,
    to: Peer,
    interval_e: Duration,
    pub timers: TimerTable,
}

impl ClientNonInvite {
    /// A transaction that has sent nothing yet; `start` sends it.
    pub fn pending(id: TxId, request: &Request, to: Peer) -> ClientNonInvite {
        ClientNonInvite {
            id,
            state: State::Pending,
            method: request.method.clone(),
            bytes: request.to_bytes().into(),
            to,
            interval_e: Duration::ZERO,
            timers: TimerTable::default(),
        }
    }

    /// Sends the request and arms E (UDP) and F.
    pub fn start(&mut self, io: &mut Io) {
        if self.state != State::Pending {
            return;
        }
        io.transmit(self.to, &self.bytes);
        if !self.to.transport.is_reliable() {
            self.interval_e = io.cfg.t1;
            self.timers.set(Timer::E, io.now + io.cfg.t1);
        }
        self.timers.set(Timer::F, io.now + io.cfg.t64());
        self.state = State::Trying;
    }

    pub fn on_response(&mut self, resp: Response, io: &mut Io) {
        match (self.state, resp.status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                io.event(TxEvent::Response { tx: self.id, resp });
            }
            (State::Trying | State::Proceeding, 200..) => {
                self.timers.stop_all();
                io.event(TxEvent::Response { tx: self.id, resp });
                if self.to.transport.is_reliable() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::K, io.now + io.cfg.t4);
                    self.state = State::Completed;
                }
            }
            _ => {}
        }
    }

    pub fn on_timer(&mut self, timer: Timer, io: &mut Io) {
        match (timer, self.state) {
            (Timer::E, State::Trying) => {
                io.transmit(self.to, &self.bytes);
                self.interval_e = backoff(self.interval_e, Some(io.cfg.t2));
                self.timers.set(Timer::E, io.now + self.interval_e);
            }
            (Timer::E, State::Proceeding) => {
                io.transmit(self.to, &self.bytes);
                self.timers.set(Timer::E, io.now + io.cfg.t2);
            }
            (Timer::F, State::Trying | State::Proceeding) => {
                io.event(TxEvent::Timeout { tx: self.id });
                self.terminate();
            }
            (Timer::K, State::Completed) => self.terminate(),
            _ => {}
        }
    }

    pub fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = State::Terminated;
    }
}
