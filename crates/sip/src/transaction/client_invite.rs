//! Client INVITE transaction (RFC 3261 §17.1.1, RFC 6026 §8.4).
//!
//! ```text
//!  Calling --1xx--> Proceeding --2xx--> Accepted --M--> Terminated
//!     |  A: resend       |                  (every 2xx passed up)
//!     |  B: Timeout      +--300-699--> Completed --D--> Terminated
//!     +--2xx / 300-699 (same as from Proceeding)  (ACK resent per final copy)
//! ```
//! The ACK for a 300-699 is built here (§17.1.1.3); the ACK for a 2xx is the TU's.

use super::timer::{Timer, TimerTable};
use super::{backoff, Io, TxEvent, TxId};
use crate::message::{CSeq, Method, Peer, Request, Response};
use std::sync::Arc;
use std::time::Duration;

/// Timer D on unreliable transports (RFC 3261 Table 4: "> 32 s").
const TIMER_D: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

pub(crate) struct ClientInvite {
    id: TxId,
    pub state: State,
    /// The INVITE, for building the ACK and a CANCEL.
    pub request: Box<Request>,
    bytes: Arc<[u8]>,
    pub to: Peer,
    ack: Option<Arc<[u8]>>,
    interval_a: Duration,
    pub timers: TimerTable,
    /// The CANCEL transaction the TU started with `cancel()`, if any.
    pub cancel: Option<TxId>,
}

impl ClientInvite {
    /// Sends the INVITE and arms A (UDP) and B.
    pub fn start(id: TxId, request: Request, to: Peer, io: &mut Io) -> ClientInvite {
        let bytes: Arc<[u8]> = request.to_bytes().into();
        io.transmit(to, &bytes);
        let mut timers = TimerTable::default();
        if !to.transport.is_reliable() {
            timers.set(Timer::A, io.now + io.cfg.t1);
        }
        timers.set(Timer::B, io.now + io.cfg.t64());
        ClientInvite {
            id,
            state: State::Calling,
            request: Box::new(request),
            bytes,
            to,
            ack: None,
            interval_a: io.cfg.t1,
            timers,
            cancel: None,
        }
    }

    pub fn on_response(&mut self, resp: Response, io: &mut Io) {
        match (self.state, resp.status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                self.state = State::Proceeding;
                io.event(TxEvent::Response { tx: self.id, resp });
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.timers.stop_all();
                self.timers.set(Timer::M, io.now + io.cfg.t64());
                self.state = State::Accepted;
                io.event(TxEvent::Response { tx: self.id, resp });
            }
            (State::Calling | State::Proceeding, 300..) => {
                let ack: Arc<[u8]> = ack_for(&self.request, &resp).to_bytes().into();
                io.transmit(self.to, &ack);
                self.ack = Some(ack);
                self.timers.stop_all();
                io.event(TxEvent::Response { tx: self.id, resp });
                if self.to.transport.is_reliable() {
                    self.state = State::Terminated;
                } else {
                    self.timers.set(Timer::D, io.now + TIMER_D);
                    self.state = State::Completed;
                }
            }
            (State::Accepted, 200..=299) => io.event(TxEvent::Response { tx: self.id, resp }),
            (State::Completed, 300..) => {
                if let Some(ack) = &self.ack {
                    io.transmit(self.to, ack);
                }
            }
            _ => {}
        }
    }

    pub fn on_timer(&mut self, timer: Timer, io: &mut Io) {
        match (timer, self.state) {
            (Timer::A, State::Calling) => {
                io.transmit(self.to, &self.bytes);
                self.interval_a = backoff(self.interval_a, None);
                self.timers.set(Timer::A, io.now + self.interval_a);
            }
            (Timer::B, State::Calling) => {
                io.event(TxEvent::Timeout { tx: self.id });
                self.terminate();
            }
            (Timer::D, State::Completed) | (Timer::M, State::Accepted) => self.terminate(),
            _ => {}
        }
    }

    fn terminate(&mut self) {
        self.timers.stop_all();
        self.state = State::Terminated;
    }
}

/// The ACK for a 300-699 final (§17.1.1.3): the INVITE's Request-URI, Call-ID, From,
/// CSeq number, top Via and Route; To from the response.
pub(crate) fn ack_for(invite: &Request, resp: &Response) -> Request {
    let h = &invite.headers;
    let mut headers = h.clone();
    headers.via.truncate(1);
    headers.to = resp.headers.to.clone();
    headers.cseq = CSeq {
        seq: h.cseq.seq,
        method: Method::Ack,
    };
    headers.max_forwards = Some(h.max_forwards.unwrap_or(70));
    headers.contact.clear();
    headers.record_route.clear();
    headers.content_type = None;
    headers.extra.clear();
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}

/// The CANCEL for a pending INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq
/// number, the INVITE's top Via only, Route copied.
pub(crate) fn cancel_for(invite: &Request) -> Request {
    let h = &invite.headers;
    let mut headers = h.clone();
    headers.via.truncate(1);
    headers.cseq = CSeq {
        seq: h.cseq.seq,
        method: Method::Cancel,
    };
    headers.max_forwards = Some(h.max_forwards.unwrap_or(70));
    headers.contact.clear();
    headers.record_route.clear();
    headers.content_type = None;
    headers.extra.clear();
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}
