//! Server INVITE transaction (RFC 3261 §17.2.1, RFC 6026 §8.6–§8.7, §13.3.1.4).
//!
//! ```text
//!  Proceeding --300-699--> Completed --ACK--> Confirmed --I--> Terminated
//!     |  (100 sent at once)   G: resend final     (ACKs absorbed)
//!     |                       H: Terminated
//!     +--2xx--> Accepted --L--> Terminated (AckTimeout first if no ACK came)
//!                 Retransmit2xx: resend 2xx, T1 doubling to T2, until the ACK
//! ```
//! Request retransmissions are answered with the last response sent (none in
//! Confirmed). The ACK for a 2xx has its own branch; the layer matches it by dialog
//! identifiers and calls [`ServerInvite::on_2xx_ack`].

use super::timer::{Timer, TimerTable};
use super::{backoff, new_tag, Io, TxEvent, TxId};
use crate::message::{Peer, Request, Response};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

pub(crate) struct ServerInvite {
    id: TxId,
    pub state: State,
    /// The INVITE that created the transaction.
    pub request: Box<Request>,
    resp_to: Peer,
    /// Last response sent: what request retransmissions get, and what G and
    /// Retransmit2xx resend.
    last: Option<Arc<[u8]>>,
    /// The To tag the TU put on its responses so far (reused for a 487).
    pub to_tag: Option<String>,
    interval: Duration,
    acked: bool,
    pub timers: TimerTable,
}

impl ServerInvite {
    /// A new transaction; with `trying`, answers `100 Trying` at once.
    pub fn new(
        id: TxId,
        request: Request,
        resp_to: Peer,
        trying: bool,
        io: &mut Io,
    ) -> ServerInvite {
        let mut tx = ServerInvite {
            id,
            state: State::Proceeding,
            request: Box::new(request),
            resp_to,
            last: None,
            to_tag: None,
            interval: Duration::ZERO,
            acked: false,
            timers: TimerTable::default(),
        };
        if trying {
            let bytes: Arc<[u8]> = tx.request.response(100, None).to_bytes().into();
            io.transmit(resp_to, &bytes);
            tx.last = Some(bytes);
        }
        tx
    }

    /// The INVITE came again.
    pub fn on_retransmit(&mut self, io: &mut Io) {
        if matches!(
            self.state,
            State::Proceeding | State::Completed | State::Accepted
        ) {
            if let Some(last) = &self.last {
                io.transmit(self.resp_to, last);
            }
        }
    }

    /// The TU (or the layer) answers. False if the state forbids it (ignored).
    pub fn send_response(&mut self, resp: Response, io: &mut Io) -> bool {
        let unreliable = !self.resp_to.transport.is_reliable();
        match (self.state, resp.status) {
            (State::Proceeding, 100..=199) => {}
            (State::Proceeding | State::Accepted, 200..=299) => {
                if self.state == State::Proceeding {
                    self.state = State::Accepted;
                    if unreliable {
                        self.interval = io.cfg.t1;
                        self.timers.set(Timer::Retransmit2xx, io.now + io.cfg.t1);
                    }
                    self.timers.set(Timer::L, io.now + io.cfg.t64());
                }
            }
            (State::Proceeding, 300..) => {
                self.state = State::Completed;
                if unreliable {
                    self.interval = io.cfg.t1;
                    self.timers.set(Timer::G, io.now + io.cfg.t1);
                }
                self.timers.set(Timer::H, io.now + io.cfg.t64());
            }
            _ => return false,
        }
        if let Some(tag) = resp.headers.to.tag() {
            if self.to_tag.is_none() {
                self.to_tag = Some(tag.to_owned());
            }
        }
        let bytes: Arc<[u8]> = resp.to_bytes().into();
        io.transmit(self.resp_to, &bytes);
        self.last = Some(bytes);
        true
    }

    /// The To tag for a response the layer makes (487, 200 to CANCEL): the TU's if it
    /// used one, else a new one.
    pub fn tag(&self) -> String {
        self.to_tag.clone().unwrap_or_else(new_tag)
    }

    /// A CANCEL matched while in Proceeding: answer 487 with To tag `tag`.
    pub fn cancel(&mut self, tag: &str, io: &mut Io) {
        let resp = self.request.response(487, Some(tag));
        self.send_response(resp, io);
    }

    /// An ACK with the INVITE's branch: the ACK for our 300-699.
    pub fn on_ack(&mut self, io: &mut Io) {
        if self.state == State::Completed {
            self.timers.stop_all();
            if self.resp_to.transport.is_reliable() {
                self.state = State::Terminated;
            } else {
                self.timers.set(Timer::I, io.now + io.cfg.t4);
                self.state = State::Confirmed;
            }
        }
    }

    /// The ACK for our 2xx: retransmission stops; the transaction stays until L.
    pub fn on_2xx_ack(&mut self) {
        self.acked = true;
        self.timers.stop(Timer::Retransmit2xx);
    }

    pub fn on_timer(&mut self, timer: Timer, io: &mut Io) {
        match (timer, self.state) {
            (Timer::G, State::Completed) | (Timer::Retransmit2xx, State::Accepted) => {
                if let Some(last) = &self.last {
                    io.transmit(self.resp_to, last);
                }
                self.interval = backoff(self.interval, Some(io.cfg.t2));
                self.timers.set(timer, io.now + self.interval);
            }
            (Timer::H, State::Completed) | (Timer::I, State::Confirmed) => self.terminate(),
            (Timer::L, State::Accepted) => {
                if !self.acked {
                    io.event(TxEvent::AckTimeout {
                        tx: self.id,
                        req: (*self.request).clone(),
                    });
                }
                self.terminate();
            }
            _ => {}
        }
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = State::Terminated;
    }
}
