//! The controller's SIP flows (reference 002 §3), signalling only: the controller
//! never touches media. Its legs are plain SIP dialogs driven straight over the
//! transaction layer, lent by the engine for each input as a [`Cx`]; the engine hands
//! us the responses to our transactions, the in-dialog requests of our dialogs, and
//! our timers (see `Controller::owns_tx`, `owns_dialog`, `poll_timeout`).
//!
//! REFER mode: INVITE the caller with the dummy offer; on 200, ACK and REFER it to the
//! called party; every INVITE response and every NOTIFY sipfrag goes into the record;
//! a NOTIFY saying the referred call rings (or the subscription ended) makes us BYE
//! the caller; 32 s after the REFER's answer the caller leg is forgotten regardless.
//!
//! INVITE mode (RFC 3725 flow IV): INVITE the caller with the dummy offer; on 200,
//! ACK and INVITE the called party with no SDP; its 200 carries offer2, which goes to
//! the caller in a re-INVITE (`o=` version + 1); the caller's answer goes back in the
//! ACK to the called party (`o=` version - 1). A BYE from either side is answered and
//! passed to the other. `action=transfer` replaces the caller by a new target.

use super::*;
use crate::legs::{resolve_literal, Legs, RawSip};
use sip::dialog::{random_token, Dialog, DialogId};
use sip::transaction::TxId;
use sip::uri::Params as _;
use sip::{CSeq, Headers, Message, Method, NameAddr, Param, Request, Response, Transport, Via};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::time::SystemTime;
use tracing::{debug, info};

/// What the engine lends the controller for one input: the leg layer, whose raw
/// signalling the controller uses (see [`RawSip`]).
pub(crate) struct Cx<'a> {
    pub legs: &'a mut Legs,
}

/// How long a REFER-mode caller leg is kept after the REFER's answer (reference: 32 s).
pub const REFER_LINGER: Duration = Duration::from_secs(32);
/// How long an ended leg still answers late requests of its dialog (NOTIFYs after our BYE).
const ENDED_LINGER: Duration = Duration::from_secs(32);

type LegNo = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The calling party (first INVITE).
    Calling,
    /// The called party (INVITE mode's second INVITE).
    Called,
    /// The target of `action=transfer`.
    Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Calling,
    Early,
    Confirmed,
    Ended,
}

/// What one of our client transactions is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Invite,
    Reinvite,
    Refer,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The ring time is over: CANCEL if still unanswered.
    Cancel,
    /// `timeout` + 1 s after the request: an unconfirmed leg is forgotten.
    Unconfirmed,
    /// 32 s after the REFER's answer: the caller leg is forgotten (no BYE).
    ReferLinger,
    /// An ended leg stops answering its dialog's requests.
    Purge,
}

#[derive(Debug)]
struct CtlLeg {
    key: String,
    /// The record generation this leg belongs to (a new POST on the key replaces it).
    record_id: u64,
    method: SetupMethod,
    role: Role,
    phase: Phase,
    /// Our INVITE (dialog creation, ACK, CANCEL).
    invite: Request,
    invite_tx: Option<TxId>,
    peer: Peer,
    dialog: Option<Dialog>,
    /// We sent BYE (NOTIFYs after it are not recorded).
    byed: bool,
    cancelled: bool,
    /// The other leg of an INVITE-mode call.
    partner: Option<LegNo>,
    /// The SDP this party last gave (INVITE mode: offer2 of the called party, the
    /// target's answer).
    last_sdp: Option<Vec<u8>>,
    /// INVITE mode, called leg: its 2xx waits for the caller's answer before we ACK.
    awaiting_answer: bool,
    /// The ACK we sent to this leg's 2xx, re-sent when the 2xx is retransmitted.
    ack: Option<Request>,
    /// REFER mode: the REFER's answer has come (starts the linger timer once).
    refer_answered: bool,
    /// Request parameters kept for the next steps.
    called_party: String,
    calling_party: String,
    confpin: Option<String>,
    agent: Uri,
    timeout: Duration,
    called: Option<Target>,
}

/// The controller's legs and their plumbing.
#[derive(Debug, Default)]
pub struct Flows {
    legs: HashMap<LegNo, CtlLeg>,
    next_leg: LegNo,
    next_record: u64,
    by_tx: HashMap<TxId, (LegNo, Sent)>,
    by_dialog: HashMap<DialogId, LegNo>,
    timers: BinaryHeap<Reverse<(Instant, Timer, LegNo)>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn status_line(resp: &Response) -> String {
    format!("SIP/2.0 {} {}", resp.status, resp.reason)
}

impl Cx<'_> {
    fn host(&self) -> String {
        match self.legs.cfg.sip_addr.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        }
    }

    fn via(&self, transport: Transport) -> Via {
        self.legs.via(transport)
    }

    fn user_agent(&self) -> String {
        self.legs.cfg.user_agent.clone()
    }

    fn send(&mut self, now: Instant, req: Request, peer: Peer) -> TxId {
        self.legs.send_raw_request(now, req, peer)
    }

    fn cancel(&mut self, now: Instant, tx: TxId) {
        self.legs.txl.cancel(now, tx);
    }

    fn stateless(&mut self, msg: &Message, peer: Peer) {
        self.legs.txl.send_stateless(msg, peer);
    }

    /// `<sip:callcontroller@ip:port>`: the reference's Contact user.
    fn contact(&self, transport: Transport) -> NameAddr {
        let mut uri = Uri::sip(Some("callcontroller"), &self.host(), Some(self.legs.cfg.sip_addr.port()));
        if transport == Transport::Tcp {
            uri.params.push(Param::new("transport", Some("tcp")));
        }
        NameAddr::new(uri)
    }
}

impl Controller {
    /// A SIP event of one of our dialogs (see [`RawSip`]).
    pub(crate) fn on_raw(&mut self, cx: &mut Cx, now: Instant, ev: RawSip) {
        match ev {
            RawSip::Response { tx, resp } => self.on_response(cx, now, tx, resp),
            RawSip::Timeout { tx } => self.on_tx_timeout(cx, now, tx),
            RawSip::Terminated { tx } => self.on_tx_terminated(tx),
            RawSip::Request { tx, req } => self.on_request(cx, now, tx, req),
        }
    }

    /// The next instant a timer or a record falls due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.flows.timers.peek().map(|Reverse((at, _, _))| *at);
        match (ours, self.records.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- requests from the API --------------------------------------------------

    pub(crate) fn call(&mut self, cx: &mut Cx, now: Instant, req: ControllerRequest) -> Result<(), ControllerError> {
        self.records.expire(now);
        self.records.check_call(&req.key, req.method)?;
        self.flows.next_record += 1;
        let mut record = Record::new(now, req.method, req.result_cache_time);
        record.id = self.flows.next_record;
        let record_id = record.id;
        if let Some(old) = self.records.insert(req.key.clone(), record) {
            self.tear_down_record(cx, now, old.id);
        }
        info!(key = %req.key, method = ?req.method, "call controller: placing call");
        let from = NameAddr { display: req.agent_display.clone().filter(|d| !d.is_empty()), uri: req.agent.clone(), params: Vec::new() };
        let to = NameAddr::new(party_uri(&req.calling_party));
        let body = dummy_offer(&cx.host(), rand::random::<u32>() as u64);
        let leg = self.place(
            cx,
            now,
            Placement {
                key: req.key.clone(),
                record_id,
                method: req.method,
                role: Role::Calling,
                target: req.calling.clone(),
                from,
                to,
                hints: request_uri_params(req.forwarding_allowed),
                subject: req.subject.clone(),
                body: Some(body.into_bytes()),
                full_headers: true,
                timeout: Some(req.timeout),
            },
        );
        if let Some(no) = leg {
            let l = self.flows.legs.get_mut(&no).expect("just placed");
            l.called_party = req.called_party.clone();
            l.calling_party = req.calling_party.clone();
            l.confpin = req.confpin.clone();
            l.called = Some(req.called.clone());
        }
        Ok(())
    }

    pub(crate) fn transfer(&mut self, cx: &mut Cx, now: Instant, req: TransferRequest) -> Result<(), ControllerError> {
        self.records.expire(now);
        self.records.check_transfer(&req.key)?;
        let Some(old) = self.records.remove(&req.key) else { return Err(ControllerError::CallNotFound) };
        let legs: Vec<LegNo> = self.legs_of(old.id);
        let called = legs.iter().copied().find(|n| self.flows.legs[n].role != Role::Calling && self.flows.legs[n].phase == Phase::Confirmed);
        let Some(called) = called else { return Err(ControllerError::CallNotFound) };
        // The old calling side goes at once.
        for n in legs.iter().copied().filter(|&n| n != called) {
            self.bye(cx, now, n, None);
            self.end(now, n);
        }
        self.flows.next_record += 1;
        let mut record = Record::new(now, SetupMethod::Invite, req.result_cache_time);
        record.id = self.flows.next_record;
        let record_id = record.id;
        // The called leg moves to the new record.
        self.records.insert(req.new_key.clone(), record);
        self.records.leg_started(&req.new_key);
        let (agent, sdp) = {
            let l = self.flows.legs.get_mut(&called).expect("listed");
            l.key = req.new_key.clone();
            l.record_id = record_id;
            (l.dialog.as_ref().map(|d| d.local_uri.uri.clone()).unwrap_or_else(|| l.agent.clone()), l.last_sdp.clone())
        };
        info!(key = %req.new_key, "call controller: transferring");
        let placed = self.place(
            cx,
            now,
            Placement {
                key: req.new_key.clone(),
                record_id,
                method: SetupMethod::Invite,
                role: Role::Target,
                target: req.target.clone(),
                from: NameAddr::new(agent),
                to: NameAddr::new(party_uri(&req.target_party)),
                hints: vec![("sipx-noroute", "Voicemail"), ("sipx-userforward", "false")],
                subject: None,
                body: sdp,
                full_headers: false,
                timeout: None,
            },
        );
        if let Some(t) = placed {
            self.flows.legs.get_mut(&t).expect("placed").partner = Some(called);
            self.flows.legs.get_mut(&called).expect("listed").partner = Some(t);
        }
        Ok(())
    }

    /// The record under `key`, with INVITE-mode dialogs as they are now.
    pub(crate) fn record(&mut self, now: Instant, key: &str) -> Option<ControllerRecord> {
        self.records.expire(now);
        let r = self.records.get(key)?;
        let mut view = r.view.clone();
        if view.method == SetupMethod::Invite {
            view.dialogs = self
                .legs_of(r.id)
                .into_iter()
                .map(|n| {
                    let l = &self.flows.legs[&n];
                    let state = match l.phase {
                        Phase::Calling | Phase::Early => DialogState::Early,
                        Phase::Confirmed => DialogState::Confirmed,
                        Phase::Ended => DialogState::Terminated,
                    };
                    let (id, local, remote) = match &l.dialog {
                        Some(d) => (format!("{}:{}:{}", d.id.call_id, d.id.local_tag, d.id.remote_tag), d.local_uri.uri.to_string(), d.remote_uri.uri.to_string()),
                        None => (
                            format!("{}:{}", l.invite.headers.call_id, l.invite.headers.from.tag().unwrap_or("")),
                            l.invite.headers.from.uri.to_string(),
                            l.invite.headers.to.uri.to_string(),
                        ),
                    };
                    DialogLine { dialog_id: id, local_party: local, remote_party: remote, state }
                })
                .collect();
        }
        Some(view)
    }

    // ---- inputs from the engine -------------------------------------------------

    pub(crate) fn on_response(&mut self, cx: &mut Cx, now: Instant, tx: TxId, resp: Response) {
        let Some(&(no, sent)) = self.flows.by_tx.get(&tx) else { return };
        if resp.status >= 200 && sent != Sent::Invite {
            self.flows.by_tx.remove(&tx);
        }
        match sent {
            Sent::Invite => self.on_invite_response(cx, now, tx, no, resp),
            Sent::Reinvite => self.on_reinvite_response(cx, now, no, resp),
            Sent::Refer if resp.status >= 200 => self.on_refer_answered(now, no, resp.status),
            _ => {}
        }
    }

    pub(crate) fn on_tx_timeout(&mut self, cx: &mut Cx, now: Instant, tx: TxId) {
        let Some((no, sent)) = self.flows.by_tx.remove(&tx) else { return };
        match sent {
            Sent::Invite | Sent::Reinvite => {
                debug!(leg = no, "call controller: transaction timed out");
                if sent == Sent::Reinvite {
                    self.hang_up_call(cx, now, no, None);
                } else {
                    self.end(now, no);
                }
            }
            Sent::Refer => self.on_refer_answered(now, no, 408),
            Sent::Other => {}
        }
    }

    pub(crate) fn on_tx_terminated(&mut self, tx: TxId) {
        self.flows.by_tx.remove(&tx);
    }

    /// An in-dialog request on one of our dialogs.
    pub(crate) fn on_request(&mut self, cx: &mut Cx, now: Instant, tx: TxId, req: Request) {
        let Some(no) = DialogId::for_incoming(&req).and_then(|id| self.flows.by_dialog.get(&id).copied()) else {
            return respond(cx, now, tx, &req, 481, None);
        };
        let transport = req.headers.via.first().map(|v| v.transport).unwrap_or(Transport::Udp);
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        let accepted = leg.dialog.as_mut().map(|d| d.accept_request(&req));
        if let Some(Err(refusal)) = accepted {
            return respond(cx, now, tx, &req, refusal.0, None);
        }
        let ended = leg.phase == Phase::Ended;
        match req.method {
            Method::Notify => {
                let contact = cx.contact(transport);
                respond(cx, now, tx, &req, 200, Some(contact));
                if !ended && !leg.byed {
                    self.on_notify(cx, now, no, &req);
                }
            }
            Method::Bye => {
                respond(cx, now, tx, &req, 200, None);
                if !ended {
                    info!(leg = no, "call controller: party hung up");
                    self.end(now, no);
                    // INVITE mode: the other side goes too (the reference relays the BYE).
                    if let Some(p) = self.flows.legs.get(&no).and_then(|l| l.partner) {
                        if self.flows.legs.get(&p).is_some_and(|l| l.phase != Phase::Ended) {
                            let reason = req.headers.get("Reason").map(str::to_owned);
                            self.bye(cx, now, p, reason.as_deref());
                            self.end(now, p);
                        }
                    }
                }
            }
            Method::Options | Method::Info => {
                let contact = cx.contact(transport);
                respond(cx, now, tx, &req, if ended { 481 } else { 200 }, Some(contact))
            }
            // A re-offer from a party would need relaying to the other party; refused
            // for now, which leaves the session as it was (RFC 3261 §14.2).
            Method::Invite => respond(cx, now, tx, &req, if ended { 481 } else { 488 }, None),
            _ => respond(cx, now, tx, &req, 405, None),
        }
    }

    pub(crate) fn on_timeout(&mut self, cx: &mut Cx, now: Instant) {
        self.records.expire(now);
        while let Some(Reverse((at, _, _))) = self.flows.timers.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, timer, no)) = self.flows.timers.pop().expect("peeked");
            let Some(leg) = self.flows.legs.get_mut(&no) else { continue };
            match timer {
                Timer::Cancel => {
                    if matches!(leg.phase, Phase::Calling | Phase::Early) && !leg.cancelled {
                        if let Some(tx) = leg.invite_tx {
                            info!(leg = no, "call controller: ring time over, cancelling");
                            leg.cancelled = true;
                            cx.cancel(now, tx);
                        }
                    }
                }
                Timer::Unconfirmed => {
                    if matches!(leg.phase, Phase::Calling | Phase::Early) {
                        self.end(now, no);
                    }
                }
                Timer::ReferLinger => {
                    if leg.phase != Phase::Ended {
                        debug!(leg = no, "call controller: REFER linger over, forgetting the caller leg");
                        self.end(now, no);
                    }
                }
                Timer::Purge => self.purge(cx, no),
            }
        }
        self.records.expire(now);
    }

    /// Shutdown: BYE every confirmed leg, CANCEL the ringing ones.
    pub(crate) fn shutdown(&mut self, cx: &mut Cx, now: Instant) {
        let live: Vec<LegNo> = self.flows.legs.iter().filter(|(_, l)| l.phase != Phase::Ended).map(|(n, _)| *n).collect();
        for no in live {
            self.hang_up(cx, now, no, None);
        }
    }

    // ---- the flows ----------------------------------------------------------------

    fn on_invite_response(&mut self, cx: &mut Cx, now: Instant, tx: TxId, no: LegNo, resp: Response) {
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        if leg.method == SetupMethod::Refer && leg.phase != Phase::Ended {
            let line = StatusLine { timestamp_ms: now_ms(), call_id: leg.invite.headers.call_id.clone(), method: "INVITE".into(), status_line: status_line(&resp) };
            self.records.push_line_for(&leg.key, leg.record_id, line);
        }
        let leg = self.flows.legs.get_mut(&no).expect("present");
        if resp.status < 200 {
            if resp.status > 100 && leg.phase == Phase::Calling {
                leg.phase = Phase::Early;
            }
            return;
        }
        if resp.status >= 300 {
            if leg.invite_tx == Some(tx) {
                leg.invite_tx = None;
            }
            self.flows.by_tx.remove(&tx);
            info!(leg = no, status = resp.status, "call controller: INVITE refused");
            self.end(now, no);
            return;
        }
        // 2xx (first, forked, or retransmitted)
        leg.invite_tx = None;
        let same_dialog = leg.dialog.as_ref().map(|d| Some(d.id.remote_tag.as_str()) == resp.headers.to.tag());
        match same_dialog {
            Some(true) => {
                // retransmission: re-ACK (a held ACK is sent once the answer exists)
                if let Some(ack) = leg.ack.clone() {
                    let peer = next_hop(leg.dialog.as_ref().expect("some"), leg.peer);
                    cx.stateless(&Message::Request(ack), peer);
                }
                return;
            }
            Some(false) => {
                // A second fork answered: this call needs only one; ACK and BYE it.
                if let Ok(mut d) = Dialog::new_uac(&leg.invite, &resp) {
                    let via = cx.via(leg.peer.transport);
                    let ack = d.ack(leg.invite.headers.cseq.seq, via);
                    let peer = next_hop(&d, leg.peer);
                    cx.stateless(&Message::Request(ack), peer);
                    let mut bye = d.request(Method::Bye, cx.via(leg.peer.transport));
                    bye.headers.push("User-Agent", cx.user_agent());
                    cx.send(now, bye, peer);
                }
                return;
            }
            None => {}
        }
        let Ok(dialog) = Dialog::new_uac(&leg.invite, &resp) else { return };
        self.flows.by_dialog.insert(dialog.id.clone(), no);
        cx.legs.claim_dialog(dialog.id.clone());
        leg.dialog = Some(dialog);
        if !resp.body.is_empty() {
            leg.last_sdp = Some(resp.body.clone());
        }
        let was_cancelled = leg.cancelled;
        leg.phase = Phase::Confirmed;
        let hold_ack = leg.method == SetupMethod::Invite && leg.role == Role::Called && !resp.body.is_empty();
        if !hold_ack {
            self.send_ack(cx, no, None);
        }
        if was_cancelled {
            // our CANCEL crossed the 2xx: the call exists now, so end it with BYE
            self.hang_up(cx, now, no, None);
            return;
        }
        let leg = self.flows.legs.get(&no).expect("present");
        info!(leg = no, role = ?leg.role, "call controller: answered");
        match (leg.method, leg.role) {
            (SetupMethod::Refer, _) => self.send_refer(cx, now, no),
            (SetupMethod::Invite, Role::Calling) => self.call_called_party(cx, now, no),
            (SetupMethod::Invite, Role::Called) => {
                if resp.body.is_empty() {
                    self.hang_up_call(cx, now, no, Some(NO_SDP_REASON));
                } else {
                    let l = self.flows.legs.get_mut(&no).expect("present");
                    l.awaiting_answer = true;
                    if let Some(p) = l.partner {
                        let offer = shift_origin_version(&String::from_utf8_lossy(&resp.body), 1);
                        self.reinvite(cx, now, p, offer.into_bytes());
                    }
                }
            }
            (SetupMethod::Invite, Role::Target) => {
                // the target answered the called party's SDP: give the called party the
                // target's SDP as a new offer
                if let Some(p) = leg.partner {
                    let sdp = shift_origin_version(&String::from_utf8_lossy(&resp.body), 1);
                    self.reinvite(cx, now, p, sdp.into_bytes());
                }
            }
        }
    }

    /// The answer to a re-INVITE we sent to `no`.
    fn on_reinvite_response(&mut self, cx: &mut Cx, now: Instant, no: LegNo, resp: Response) {
        if resp.status < 200 {
            return;
        }
        let Some(leg) = self.flows.legs.get(&no) else { return };
        let partner = leg.partner;
        if resp.is_success() {
            // ACK to the re-INVITE's 2xx (same CSeq).
            let seq = resp.headers.cseq.seq;
            if let Some(d) = leg.dialog.as_ref() {
                let ack = d.ack(seq, cx.via(leg.peer.transport));
                let peer = next_hop(d, leg.peer);
                cx.stateless(&Message::Request(ack), peer);
            }
            if let Some(p) = partner {
                let waiting = self.flows.legs.get(&p).is_some_and(|l| l.awaiting_answer);
                if waiting && !resp.body.is_empty() {
                    // flow IV step 4: the caller's answer completes the called party's offer
                    let answer = shift_origin_version(&String::from_utf8_lossy(&resp.body), -1);
                    self.send_ack(cx, p, Some(answer.into_bytes()));
                    self.flows.legs.get_mut(&p).expect("present").awaiting_answer = false;
                }
            }
            if !resp.body.is_empty() {
                self.flows.legs.get_mut(&no).expect("present").last_sdp = Some(resp.body);
            }
        } else {
            info!(leg = no, status = resp.status, "call controller: re-INVITE refused; ending the call");
            self.hang_up_call(cx, now, no, None);
        }
    }

    fn send_refer(&mut self, cx: &mut Cx, now: Instant, no: LegNo) {
        let leg = self.flows.legs.get_mut(&no).expect("caller checked");
        let transport = leg.peer.transport;
        let Some(dialog) = leg.dialog.as_mut() else { return };
        let mut refer = dialog.request(Method::Refer, cx.via(transport));
        refer.headers.push("Refer-To", refer_to(&leg.called_party, leg.confpin.as_deref()));
        refer.headers.push("Referred-By", format!("<sip:{}>", leg.calling_party));
        refer.headers.push("User-Agent", cx.user_agent());
        let peer = next_hop(dialog, leg.peer);
        let tx = cx.send(now, refer, peer);
        self.flows.by_tx.insert(tx, (no, Sent::Refer));
        info!(leg = no, to = %leg.called_party, "call controller: REFER sent");
    }

    fn on_refer_answered(&mut self, now: Instant, no: LegNo, status: u16) {
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        debug!(leg = no, status, "call controller: REFER answered");
        if !leg.refer_answered {
            leg.refer_answered = true;
            self.flows.timers.push(Reverse((now + REFER_LINGER, Timer::ReferLinger, no)));
        }
    }

    fn on_notify(&mut self, cx: &mut Cx, now: Instant, no: LegNo, req: &Request) {
        let leg = self.flows.legs.get(&no).expect("caller checked");
        let body = String::from_utf8_lossy(&req.body).trim().to_owned();
        if leg.method == SetupMethod::Refer && !body.is_empty() {
            let line = StatusLine { timestamp_ms: now_ms(), call_id: req.headers.call_id.clone(), method: "NOTIFY".into(), status_line: body.clone() };
            let (key, id) = (leg.key.clone(), leg.record_id);
            self.records.push_line_for(&key, id, line);
        }
        if let NotifyOutcome::Bye { busy } = notify_outcome(&body, req.headers.get("Subscription-State")) {
            info!(leg = no, busy, "call controller: referred call progressing; leaving the caller");
            self.bye(cx, now, no, busy.then_some(BUSY_REASON));
            self.end(now, no);
        }
    }

    /// INVITE mode step 2: the called party, with no SDP.
    fn call_called_party(&mut self, cx: &mut Cx, now: Instant, caller: LegNo) {
        let l = self.flows.legs.get(&caller).expect("caller checked");
        let Some(target) = l.called.clone() else { return };
        let p = Placement {
            key: l.key.clone(),
            record_id: l.record_id,
            method: SetupMethod::Invite,
            role: Role::Called,
            target,
            from: NameAddr::new(l.agent.clone()),
            to: NameAddr::new(party_uri(&l.called_party)),
            hints: request_uri_params(false),
            subject: None,
            body: None,
            full_headers: true,
            timeout: Some(l.timeout),
        };
        if let Some(called) = self.place(cx, now, p) {
            self.flows.legs.get_mut(&called).expect("placed").partner = Some(caller);
            self.flows.legs.get_mut(&caller).expect("present").partner = Some(called);
        }
    }

    fn reinvite(&mut self, cx: &mut Cx, now: Instant, no: LegNo, sdp: Vec<u8>) {
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        let transport = leg.peer.transport;
        let Some(dialog) = leg.dialog.as_mut() else { return };
        let mut inv = dialog.request(Method::Invite, cx.via(transport));
        inv.headers.content_type = Some("application/sdp".into());
        inv.headers.push("User-Agent", cx.user_agent());
        inv.body = sdp;
        let peer = next_hop(dialog, leg.peer);
        let tx = cx.send(now, inv, peer);
        self.flows.by_tx.insert(tx, (no, Sent::Reinvite));
    }

    /// ACKs the leg's INVITE 2xx, with `body` as the SDP answer if given; kept for
    /// retransmitted 2xx.
    fn send_ack(&mut self, cx: &mut Cx, no: LegNo, body: Option<Vec<u8>>) {
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        let Some(dialog) = leg.dialog.as_ref() else { return };
        let mut ack = dialog.ack(leg.invite.headers.cseq.seq, cx.via(leg.peer.transport));
        if let Some(b) = body {
            ack.headers.content_type = Some("application/sdp".into());
            ack.body = b;
        }
        let peer = next_hop(dialog, leg.peer);
        cx.stateless(&Message::Request(ack.clone()), peer);
        leg.ack = Some(ack);
    }

    /// BYE on a confirmed leg, optionally with a `Reason`.
    fn bye(&mut self, cx: &mut Cx, now: Instant, no: LegNo, reason: Option<&str>) {
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        if leg.byed || leg.phase != Phase::Confirmed {
            return;
        }
        let transport = leg.peer.transport;
        let Some(dialog) = leg.dialog.as_mut() else { return };
        let mut bye = dialog.request(Method::Bye, cx.via(transport));
        if let Some(r) = reason {
            bye.headers.push("Reason", r.to_owned());
        }
        bye.headers.push("User-Agent", cx.user_agent());
        let peer = next_hop(dialog, leg.peer);
        let tx = cx.send(now, bye, peer);
        self.flows.by_tx.insert(tx, (no, Sent::Other));
        leg.byed = true;
    }

    /// Ends a leg the polite way for its state: BYE when confirmed, CANCEL while ringing.
    fn hang_up(&mut self, cx: &mut Cx, now: Instant, no: LegNo, reason: Option<&str>) {
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        match leg.phase {
            Phase::Confirmed => {
                self.bye(cx, now, no, reason);
                self.end(now, no);
            }
            Phase::Calling | Phase::Early => {
                if let (Some(tx), false) = (leg.invite_tx, leg.cancelled) {
                    leg.cancelled = true;
                    cx.cancel(now, tx);
                }
            }
            Phase::Ended => {}
        }
    }

    /// Ends a leg and its partner.
    fn hang_up_call(&mut self, cx: &mut Cx, now: Instant, no: LegNo, reason: Option<&str>) {
        let partner = self.flows.legs.get(&no).and_then(|l| l.partner);
        self.hang_up(cx, now, no, reason);
        if let Some(p) = partner {
            self.hang_up(cx, now, p, reason);
        }
    }

    /// Marks a leg ended (no signalling) and tells its record.
    fn end(&mut self, now: Instant, no: LegNo) {
        let Some(leg) = self.flows.legs.get_mut(&no) else { return };
        if leg.phase == Phase::Ended {
            return;
        }
        leg.phase = Phase::Ended;
        let (key, id) = (leg.key.clone(), leg.record_id);
        if self.records.get(&key).is_some_and(|r| r.id == id) {
            self.records.leg_ended(&key);
        }
        self.flows.timers.push(Reverse((now + ENDED_LINGER, Timer::Purge, no)));
    }

    fn purge(&mut self, cx: &mut Cx, no: LegNo) {
        if self.flows.legs.get(&no).is_some_and(|l| l.phase == Phase::Ended) {
            if let Some(leg) = self.flows.legs.remove(&no) {
                if let Some(d) = leg.dialog {
                    self.flows.by_dialog.remove(&d.id);
                    cx.legs.release_dialog(&d.id);
                }
                self.flows.by_tx.retain(|_, (n, _)| *n != no);
            }
        }
    }

    fn legs_of(&self, record_id: u64) -> Vec<LegNo> {
        let mut v: Vec<LegNo> = self.flows.legs.iter().filter(|(_, l)| l.record_id == record_id).map(|(n, _)| *n).collect();
        v.sort_unstable();
        v
    }

    /// A record replaced by a new request on its key: BYE its confirmed legs, forget
    /// the others without CANCEL (the reference's behaviour).
    fn tear_down_record(&mut self, cx: &mut Cx, now: Instant, record_id: u64) {
        for no in self.legs_of(record_id) {
            self.bye(cx, now, no, None);
            self.end(now, no);
        }
    }

    /// Sends an INVITE for a new leg; None when the target is unreachable (the record
    /// then shows what a proxy would have answered).
    fn place(&mut self, cx: &mut Cx, now: Instant, p: Placement) -> Option<LegNo> {
        let call_id = format!("{}@{}", random_token(20), cx.host());
        let (uri, peer) = match p.target {
            Target::Device { uri, peer: Some(peer) } => (uri, peer),
            Target::Device { uri, peer: None } => match resolve_literal(&uri, Transport::Udp) {
                Some(peer) => (uri, peer),
                None => return self.unreachable(now, &p.key, p.record_id, p.method, &call_id, 503, "Service Unavailable"),
            },
            Target::Unreachable { status, reason } => return self.unreachable(now, &p.key, p.record_id, p.method, &call_id, status, &reason),
        };
        let mut ruri = uri.clone();
        ruri.headers.clear();
        for (name, value) in &p.hints {
            ruri.set_param(name, Some(value));
        }
        let local_tag = rand::random::<u32>().to_string();
        let mut headers = Headers {
            via: vec![cx.via(peer.transport)],
            from: p.from.clone().with_tag(&local_tag),
            to: p.to.clone(),
            call_id,
            cseq: CSeq { seq: 1, method: Method::Invite },
            max_forwards: Some(70),
            contact: vec![cx.contact(peer.transport)],
            route: Vec::new(),
            record_route: Vec::new(),
            content_type: p.body.as_ref().map(|_| "application/sdp".to_owned()),
            extra: Vec::new(),
        };
        if p.full_headers {
            for m in ["INVITE", "ACK", "OPTIONS", "CANCEL", "BYE", "REFER", "NOTIFY"] {
                headers.push("Allow", m);
            }
            headers.push("Accept", "application/sdp");
        }
        if let Some(s) = &p.subject {
            headers.push("Subject", s.clone());
        }
        headers.push("User-Agent", cx.user_agent());
        let invite = Request { method: Method::Invite, uri: ruri, headers, body: p.body.unwrap_or_default() };
        let tx = cx.send(now, invite.clone(), peer);
        self.flows.next_leg += 1;
        let no = self.flows.next_leg;
        let timeout = p.timeout.unwrap_or(Duration::from_secs(180));
        self.flows.legs.insert(
            no,
            CtlLeg {
                key: p.key.clone(),
                record_id: p.record_id,
                method: p.method,
                role: p.role,
                phase: Phase::Calling,
                invite,
                invite_tx: Some(tx),
                peer,
                dialog: None,
                byed: false,
                cancelled: false,
                partner: None,
                last_sdp: None,
                awaiting_answer: false,
                ack: None,
                refer_answered: false,
                called_party: String::new(),
                calling_party: String::new(),
                confpin: None,
                agent: p.from.uri.clone(),
                timeout,
                called: None,
            },
        );
        self.flows.by_tx.insert(tx, (no, Sent::Invite));
        self.records.leg_started(&p.key);
        if let Some(t) = p.timeout {
            self.flows.timers.push(Reverse((now + t, Timer::Cancel, no)));
            self.flows.timers.push(Reverse((now + t + Duration::from_secs(1), Timer::Unconfirmed, no)));
        }
        info!(leg = no, to = %uri, "call controller: INVITE sent");
        Some(no)
    }

    fn unreachable(&mut self, now: Instant, key: &str, record_id: u64, method: SetupMethod, call_id: &str, status: u16, reason: &str) -> Option<LegNo> {
        let _ = now;
        info!(key, status, "call controller: party unreachable");
        if method == SetupMethod::Refer {
            let line = StatusLine { timestamp_ms: now_ms(), call_id: call_id.to_owned(), method: "INVITE".into(), status_line: format!("SIP/2.0 {status} {reason}") };
            self.records.push_line_for(key, record_id, line);
        }
        None
    }
}

/// What [`Controller::place`] sends.
struct Placement {
    key: String,
    record_id: u64,
    method: SetupMethod,
    role: Role,
    target: Target,
    from: NameAddr,
    to: NameAddr,
    hints: Vec<(&'static str, &'static str)>,
    subject: Option<String>,
    body: Option<Vec<u8>>,
    /// Allow and Accept (the first INVITEs; the transfer's INVITE has neither).
    full_headers: bool,
    /// Ring time before CANCEL (none for the transfer's INVITE).
    timeout: Option<Duration>,
}

/// `sip:<party>` as To shows it (a party that does not parse is kept as its user part).
fn party_uri(party: &str) -> Uri {
    sip::parse::parse_uri(&format!("sip:{party}")).unwrap_or_else(|_| Uri::sip(Some(party), "invalid", None))
}

/// Where an in-dialog request goes (see the engine's `next_hop_peer`).
fn next_hop(dialog: &Dialog, fallback: Peer) -> Peer {
    if fallback.transport.is_reliable() {
        return fallback;
    }
    resolve_literal(dialog.next_hop(), fallback.transport).unwrap_or(fallback)
}

fn respond(cx: &mut Cx, now: Instant, tx: TxId, req: &Request, status: u16, contact: Option<NameAddr>) {
    let mut resp = req.response(status, Some(&random_token(10)));
    resp.headers.record_route.clear();
    if let Some(c) = contact {
        resp.headers.contact = vec![c];
    }
    resp.headers.push("Server", cx.user_agent());
    cx.legs.send_response(now, tx, resp);
}
