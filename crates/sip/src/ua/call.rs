//! Calls: INVITE sessions in both directions and every request inside their dialogs.
//!
//! ```text
//! outgoing:  Calling --1xx--> Early --2xx (ACK sent)--> Confirmed --BYE--> Terminating --> Ended
//!               \--- hangup: CANCEL ... 487 ---> Ended; failure response / timeout ---> Ended
//! incoming:  Calling --ringing--> Early --answer (200, resent until ACK)--> Answered --ACK--> Confirmed
//!               \--- reject / hangup (486) / their CANCEL (487) ---> Ended
//! ```
//! Dialog state (tags, CSeqs, route set, remote target) is [`crate::dialog::Dialog`]'s;
//! the transaction layer retransmits, absorbs duplicates, ACKs non-2xx finals, answers
//! CANCEL and resends our 2xx until its ACK. What stays here is the UA core's part:
//! ACK for 2xx (and again for each 2xx retransmission), BYE, re-INVITE/UPDATE answers
//! with our SDP mirrored, REFER and its NOTIFYs, INFO DTMF.
//!
//! SDP: the application gives whole descriptions; we only keep the `o=` version
//! strictly increasing (RFC 3264 §8) and, when the peer re-offers, mirror its hold:
//! each of our m-lines answers with our own direction intersected with the reverse of
//! theirs (their sendonly → our recvonly, inactive → inactive, sendrecv → ours).

use super::{body_text, resolve, AuthState, ClientTx, Purpose, UaEvent, UserAgent, CallRef};
use crate::dialog::{random_token, Dialog, Refusal};
use crate::message::{Message, Method, Peer, Request, Response};
use crate::parse::parse_name_addr;
use crate::sdp::SessionDescription;
use crate::transaction::TxId;
use crate::uri::{NameAddr, Uri};
use std::net::SocketAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// Outgoing: INVITE sent. Incoming: INVITE received, nothing sent but 100.
    Calling,
    /// Outgoing: a 1xx came. Incoming: we sent 180.
    Early,
    /// Incoming: our 200 is out, its ACK is not in yet.
    Answered,
    Confirmed,
    /// Our BYE is out.
    Terminating,
    Ended,
}

pub(super) struct Call {
    pub outgoing: bool,
    pub state: CallState,
    pub call_id: String,
    /// Our tag: From of an outgoing call, To of an incoming one.
    pub local_tag: String,
    /// Where the INVITE went or came from: the fallback next hop.
    pub remote_addr: SocketAddr,
    pub dialog: Option<Dialog>,
    /// Outgoing: the current INVITE client transaction (for CANCEL).
    pub invite_tx: Option<TxId>,
    /// Our CANCEL is out (or waits for a 1xx).
    pub cancelling: bool,
    /// Hang up as soon as a BYE may be sent (incoming: after the ACK).
    pub hangup_pending: bool,
    /// The last ACK for a 2xx we sent: (CSeq, request, next hop), resent on each 2xx
    /// retransmission with that CSeq.
    pub last_ack: Option<(u32, Request, SocketAddr)>,
    /// Incoming: the INVITE and its server transaction while unanswered.
    pub invite_server_tx: Option<TxId>,
    pub incoming_invite: Option<Request>,
    /// Our re-INVITE in flight.
    pub reinvite_tx: Option<TxId>,
    /// The SDP the application last gave us (its direction is "ours").
    pub sdp_base: Option<String>,
    /// Last `o=` version we sent.
    pub sdp_version: Option<u64>,
}

impl Call {
    fn new(outgoing: bool, call_id: String, local_tag: String, remote_addr: SocketAddr) -> Call {
        Call {
            outgoing,
            state: CallState::Calling,
            call_id,
            local_tag,
            remote_addr,
            dialog: None,
            invite_tx: None,
            cancelling: false,
            hangup_pending: false,
            last_ack: None,
            invite_server_tx: None,
            incoming_invite: None,
            reinvite_tx: None,
            sdp_base: None,
            sdp_version: None,
        }
    }

    /// `sdp` with its `o=` version made strictly greater than the last one we sent.
    fn stamp(&mut self, sdp: &str) -> String {
        let Ok(mut d) = SessionDescription::parse(sdp) else { return sdp.to_owned() };
        let v = match self.sdp_version {
            Some(last) => d.origin.session_version.max(last + 1),
            None => d.origin.session_version,
        };
        d.origin.session_version = v;
        self.sdp_version = Some(v);
        d.to_string()
    }
}

/// Our SDP `base` answering the peer's `offer`: per m-line, our direction intersected
/// with the reverse of theirs. Unparseable input leaves `base` unchanged.
fn mirror(base: &str, offer: Option<&str>) -> String {
    let (Ok(mut ours), Some(Ok(theirs))) = (SessionDescription::parse(base), offer.map(SessionDescription::parse)) else {
        return base.to_owned();
    };
    for i in 0..ours.media.len() {
        let Some(their_m) = theirs.media.get(i) else { continue };
        let their_dir = theirs.direction_of(their_m);
        let our_dir = ours.direction_of(&ours.media[i]);
        ours.media[i].set_direction(our_dir.intersect(their_dir.reverse()));
    }
    ours.to_string()
}

/// A DTMF digit from an INFO body: `application/dtmf-relay` (`Signal=5`, `Duration=160`)
/// or `application/dtmf` (the digit alone).
fn parse_dtmf(content_type: &str, body: &str) -> Option<(char, u32)> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let valid = |c: char| c.is_ascii_digit() || matches!(c.to_ascii_uppercase(), '*' | '#' | 'A' | 'B' | 'C' | 'D');
    if ct.eq_ignore_ascii_case("application/dtmf-relay") {
        let (mut digit, mut duration) = (None, 250);
        for line in body.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            match k.trim().to_ascii_lowercase().as_str() {
                "signal" => digit = v.trim().chars().next(),
                "duration" => duration = v.trim().parse().unwrap_or(duration),
                _ => {}
            }
        }
        return digit.filter(|&c| valid(c)).map(|d| (d.to_ascii_uppercase(), duration));
    }
    if ct.eq_ignore_ascii_case("application/dtmf") {
        let t = body.trim();
        let digit = match t {
            "10" => '*',
            "11" => '#',
            _ => t.chars().next()?,
        };
        return valid(digit).then(|| (digit.to_ascii_uppercase(), 250));
    }
    None
}

/// `SIP/2.0 200 OK` (a message/sipfrag body) → (200, "OK").
fn parse_sipfrag(body: &str) -> Option<(u16, String)> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok().filter(|c| (100..700).contains(c))?;
    Some((code, reason.trim().to_owned()))
}

impl UserAgent {
    // --- the application's calls ---

    /// Places a call to `target`, sending the INVITE to `destination` (or the outbound
    /// proxy). `extra_headers` are added as given.
    pub fn invite(&mut self, now: Instant, target: Uri, destination: SocketAddr, sdp: String, extra_headers: Vec<(String, String)>) -> CallRef {
        let id = self.next_ref();
        let local_tag = random_token(16);
        let call_id = format!("{}@{}", random_token(20), super::host_of(self.cfg.local.ip()));
        let dest = self.first_hop(destination);
        let mut call = Call::new(true, call_id.clone(), local_tag.clone(), dest);
        let body = if sdp.is_empty() { Vec::new() } else { call.stamp(&sdp).into_bytes() };
        call.sdp_base = (!sdp.is_empty()).then_some(sdp);
        let mut req = Request {
            method: Method::Invite,
            uri: target.clone(),
            headers: crate::message::Headers {
                via: vec![self.via()],
                from: self.aor().with_tag(&local_tag),
                to: NameAddr::new(target),
                call_id,
                cseq: crate::message::CSeq { seq: 1, method: Method::Invite },
                max_forwards: Some(70),
                contact: vec![self.contact()],
                route: Vec::new(),
                record_route: Vec::new(),
                content_type: (!body.is_empty()).then(|| "application/sdp".to_owned()),
                extra: Vec::new(),
            },
            body,
        };
        req.headers.push("Allow", super::ALLOW);
        for (name, value) in extra_headers {
            req.headers.push(&name, value);
        }
        self.decorate(&mut req);
        let tx = self.send_request(now, req, dest, Purpose::Invite(id), AuthState::default());
        call.invite_tx = Some(tx);
        self.calls.insert(id, call);
        self.pump(now);
        CallRef(id)
    }

    /// 180 Ringing to an incoming INVITE.
    pub fn ringing(&mut self, now: Instant, call: CallRef) {
        self.respond_invite(now, call.0, 180, None, None);
        self.pump(now);
    }

    /// 200 with our SDP to an incoming INVITE; the layer resends it until the ACK.
    pub fn answer(&mut self, now: Instant, call: CallRef, sdp: String) {
        self.respond_invite(now, call.0, 200, None, Some(sdp));
        self.pump(now);
    }

    /// A final failure to an incoming INVITE (486, 603, ...); ends the call.
    pub fn reject(&mut self, now: Instant, call: CallRef, status: u16, reason: &str) {
        let status = if (300..700).contains(&status) { status } else { 603 };
        self.respond_invite(now, call.0, status, Some(reason), None);
        self.pump(now);
    }

    /// Ends the call whatever its state: CANCEL while an outgoing call is early, 486 to
    /// an unanswered incoming one, BYE once confirmed. Ended follows.
    pub fn hangup(&mut self, now: Instant, call: CallRef) {
        let c = call.0;
        let Some(st) = self.calls.get(&c).map(|k| (k.state, k.outgoing, k.invite_tx)) else { return };
        match st {
            (CallState::Calling | CallState::Early, true, invite_tx) => {
                let cancelled = invite_tx.and_then(|tx| self.layer.cancel(now, tx));
                if let Some(k) = self.calls.get_mut(&c) {
                    k.cancelling = true;
                    k.hangup_pending = cancelled.is_none();
                }
            }
            (CallState::Calling | CallState::Early, false, _) => self.respond_invite(now, c, 486, None, None),
            (CallState::Answered, _, _) => {
                if let Some(k) = self.calls.get_mut(&c) {
                    k.hangup_pending = true;
                }
            }
            (CallState::Confirmed, _, _) => self.send_bye(now, c),
            (CallState::Terminating | CallState::Ended, _, _) => {}
        }
        self.pump(now);
    }

    /// Re-INVITEs with `sdp` (hold: the caller makes it sendonly; unhold: sendrecv).
    /// The outcome comes as [`UaEvent::ReinviteResult`].
    pub fn reinvite(&mut self, now: Instant, call: CallRef, sdp: String) {
        let c = call.0;
        let Some(k) = self.calls.get_mut(&c) else { return };
        if k.state != CallState::Confirmed || k.reinvite_tx.is_some() {
            self.events.push_back(UaEvent::ReinviteResult { call, status: 491 });
            return;
        }
        let body = k.stamp(&sdp);
        k.sdp_base = Some(sdp);
        let tx = self.send_in_dialog(now, c, Method::Invite, Purpose::Reinvite(c), Some(("application/sdp", body)), Vec::new());
        if let Some(k) = self.calls.get_mut(&c) {
            k.reinvite_tx = tx;
        }
        self.pump(now);
    }

    /// Blind transfer: REFER the peer to `target`; progress comes as TransferStatus.
    pub fn refer(&mut self, now: Instant, call: CallRef, target: Uri) {
        let c = call.0;
        if self.calls.get(&c).map(|k| k.state) != Some(CallState::Confirmed) {
            self.events.push_back(UaEvent::TransferStatus { call, status: 481, reason: "Call Does Not Exist".into(), done: true });
            return;
        }
        let headers = vec![("Refer-To".to_owned(), NameAddr::new(target).to_string()), ("Referred-By".to_owned(), NameAddr::new(self.aor().uri).to_string())];
        self.send_in_dialog(now, c, Method::Refer, Purpose::Refer(c), None, headers);
        self.pump(now);
    }

    /// After [`UaEvent::Referred`]: the NOTIFY telling the referrer how the new call
    /// went (`status` ≥ 200 ends the implicit subscription).
    pub fn notify_refer(&mut self, now: Instant, call: CallRef, status: u16, reason: &str) {
        self.send_refer_notify(now, call.0, status, reason);
        self.pump(now);
    }

    /// Sends one DTMF digit as INFO `application/dtmf-relay`.
    pub fn info_dtmf(&mut self, now: Instant, call: CallRef, digit: char, duration_ms: u32) {
        let c = call.0;
        if self.calls.get(&c).map(|k| k.state) != Some(CallState::Confirmed) {
            return;
        }
        let body = format!("Signal={digit}\r\nDuration={duration_ms}\r\n");
        self.send_in_dialog(now, c, Method::Info, Purpose::Info(c), Some(("application/dtmf-relay", body)), Vec::new());
        self.pump(now);
    }

    // --- building and sending ---

    /// Where requests of `call`'s dialog go: the outbound proxy, else the first route
    /// or remote target if it is an IP, else where the INVITE went or came from.
    fn dialog_hop(&self, call: &Call) -> SocketAddr {
        if let Some(p) = self.cfg.outbound_proxy {
            return p;
        }
        call.dialog.as_ref().and_then(|d| resolve(d.next_hop())).unwrap_or(call.remote_addr)
    }

    /// Sends an in-dialog request of `call` with an optional (content type, body).
    fn send_in_dialog(&mut self, now: Instant, c: u64, method: Method, purpose: Purpose, body: Option<(&str, String)>, extra: Vec<(String, String)>) -> Option<TxId> {
        let via = self.via();
        let call = self.calls.get_mut(&c)?;
        let mut req = call.dialog.as_mut()?.request(method, via);
        let hop = self.dialog_hop(self.calls.get(&c)?);
        if let Some((ct, b)) = body {
            req.headers.content_type = Some(ct.to_owned());
            req.body = b.into_bytes();
        }
        for (n, v) in extra {
            req.headers.push(&n, v);
        }
        self.decorate(&mut req);
        Some(self.send_request(now, req, hop, purpose, AuthState::default()))
    }

    fn send_bye(&mut self, now: Instant, c: u64) {
        if let Some(k) = self.calls.get_mut(&c) {
            k.state = CallState::Terminating;
        }
        if self.send_in_dialog(now, c, Method::Bye, Purpose::Bye(c), None, Vec::new()).is_none() {
            self.end_call(c, 200, "OK", false, None);
        }
    }

    /// The ACK for a 2xx to the INVITE `invite` (§13.2.2.4): from the dialog, with the
    /// INVITE's CSeq and credentials.
    fn send_ack(&mut self, c: u64, invite: &Request) {
        let via = self.via();
        let Some(call) = self.calls.get(&c) else { return };
        let Some(dialog) = call.dialog.as_ref() else { return };
        let mut ack = dialog.ack(invite.headers.cseq.seq, via);
        for (n, v) in &invite.headers.extra {
            if n.eq_ignore_ascii_case("Authorization") || n.eq_ignore_ascii_case("Proxy-Authorization") {
                ack.headers.push(n, v.clone());
            }
        }
        let hop = self.dialog_hop(call);
        self.layer.send_stateless(&Message::Request(ack.clone()), super::udp(hop));
        if let Some(call) = self.calls.get_mut(&c) {
            call.last_ack = Some((invite.headers.cseq.seq, ack, hop));
        }
    }

    /// Resends the ACK of the 2xx with CSeq `seq`, if that is the one we last ACKed.
    fn resend_ack(&mut self, c: u64, seq: u32) -> bool {
        let Some((s, ack, hop)) = self.calls.get(&c).and_then(|k| k.last_ack.clone()) else { return false };
        if s != seq {
            return false;
        }
        self.layer.send_stateless(&Message::Request(ack), super::udp(hop));
        true
    }

    /// Answers the pending incoming INVITE of call `c`.
    fn respond_invite(&mut self, now: Instant, c: u64, status: u16, reason: Option<&str>, sdp: Option<String>) {
        let contact = self.contact();
        let Some(call) = self.calls.get_mut(&c) else { return };
        if call.outgoing || !matches!(call.state, CallState::Calling | CallState::Early) {
            return;
        }
        let (Some(tx), Some(invite)) = (call.invite_server_tx, call.incoming_invite.as_ref()) else { return };
        let mut resp = invite.response(status, Some(&call.local_tag));
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            resp.reason = r.to_owned();
        }
        if status < 300 {
            resp.headers.contact = vec![contact];
            resp.headers.push("Allow", super::ALLOW);
        } else {
            resp.headers.record_route.clear();
        }
        if let Some(sdp) = sdp.filter(|s| !s.is_empty()) {
            resp.body = call.stamp(&sdp).into_bytes();
            resp.headers.content_type = Some("application/sdp".to_owned());
            call.sdp_base = Some(sdp);
        }
        if !self.cfg.user_agent.is_empty() {
            resp.headers.push("Server", self.cfg.user_agent.clone());
        }
        match status {
            101..=199 => call.state = CallState::Early,
            200..=299 => {
                call.state = CallState::Answered;
                call.incoming_invite = None;
            }
            _ => {
                call.incoming_invite = None;
                call.invite_server_tx = None;
            }
        }
        let reason = resp.reason.clone();
        self.layer.send_response(now, tx, resp);
        if status >= 300 {
            self.end_call(c, status, &reason, false, None);
        }
    }

    /// Marks call `c` ended and reports it (once).
    fn end_call(&mut self, c: u64, status: u16, reason: &str, by_remote: bool, raw: Option<String>) {
        let Some(call) = self.calls.get_mut(&c) else { return };
        if call.state == CallState::Ended {
            return;
        }
        call.state = CallState::Ended;
        self.events.push_back(UaEvent::Ended { call: CallRef(c), status, reason: reason.to_owned(), by_remote, raw });
        // Kept while a transaction of it lives (late 2xx to re-ACK...), else dropped now.
        self.forget_call_if_done(c);
    }

    /// Drops an ended call once none of its transactions is left.
    pub(super) fn forget_call_if_done(&mut self, c: u64) {
        let ended = self.calls.get(&c).is_some_and(|k| k.state == CallState::Ended);
        let busy = self.client_txs.values().any(|t| t.purpose.call() == Some(c)) || self.server_invites.values().any(|&k| k == c);
        if ended && !busy {
            self.calls.remove(&c);
        }
    }

    /// The call whose dialog an in-dialog request (To tag set) belongs to.
    pub(super) fn call_for_request(&self, req: &Request) -> Option<u64> {
        let tag = req.headers.to.tag()?;
        self.calls.iter().find(|(_, k)| k.call_id == req.headers.call_id && k.local_tag == tag).map(|(&c, _)| c)
    }

    // --- responses to our requests ---

    pub(super) fn on_invite_response(&mut self, now: Instant, tx: TxId, c: u64, ctx: &ClientTx, resp: &Response, raw: Option<String>) {
        let Some(call) = self.calls.get_mut(&c) else { return };
        if call.invite_tx != Some(tx) && !resp.is_success() {
            return; // a superseded INVITE (answered with credentials since)
        }
        let call_ref = CallRef(c);
        match resp.status {
            100 => {}
            101..=199 => {
                if call.state == CallState::Calling {
                    call.state = CallState::Early;
                }
                if !call.cancelling {
                    let raw = raw.unwrap_or_default();
                    self.events.push_back(UaEvent::Progress { call: call_ref, status: resp.status, reason: resp.reason.clone(), sdp: body_text(&resp.body), raw });
                }
            }
            200..=299 => {
                let remote_tag = resp.headers.to.tag().unwrap_or("");
                if let Some(d) = &call.dialog {
                    if d.id.remote_tag == remote_tag {
                        self.resend_ack(c, resp.headers.cseq.seq);
                    } else {
                        self.drop_fork(now, &ctx.req, resp);
                    }
                    return;
                }
                let Ok(dialog) = Dialog::new_uac(&ctx.req, resp) else { return };
                call.dialog = Some(dialog);
                call.invite_tx = None;
                self.send_ack(c, &ctx.req);
                let Some(call) = self.calls.get_mut(&c) else { return };
                if call.cancelling || call.hangup_pending || call.state == CallState::Ended {
                    // Our CANCEL lost the race with their 200: the call is up, so BYE it.
                    call.state = CallState::Confirmed;
                    self.send_bye(now, c);
                    return;
                }
                call.state = CallState::Confirmed;
                self.events.push_back(UaEvent::Answered { call: call_ref, sdp: body_text(&resp.body), raw: raw.unwrap_or_default() });
            }
            _ => {
                call.invite_tx = None;
                let by_remote = !call.cancelling && resp.status != 408;
                self.end_call(c, resp.status, &resp.reason, by_remote, raw);
            }
        }
    }

    /// A 2xx from a second branch of a forked INVITE: ACK it and BYE it at once.
    fn drop_fork(&mut self, now: Instant, invite: &Request, resp: &Response) {
        let Ok(mut d) = Dialog::new_uac(invite, resp) else { return };
        let hop = self.cfg.outbound_proxy.or_else(|| resolve(d.next_hop())).unwrap_or(self.cfg.registrar);
        let ack = d.ack(invite.headers.cseq.seq, self.via());
        self.layer.send_stateless(&Message::Request(ack), super::udp(hop));
        let bye = d.request(Method::Bye, self.via());
        self.send_request(now, bye, hop, Purpose::Fire, AuthState::default());
    }

    pub(super) fn on_reinvite_response(&mut self, _now: Instant, c: u64, ctx: &ClientTx, resp: &Response) {
        if resp.status < 200 {
            return;
        }
        let seq = ctx.req.headers.cseq.seq;
        if resp.is_success() && self.resend_ack(c, seq) {
            return; // a retransmitted 2xx
        }
        let Some(call) = self.calls.get_mut(&c) else { return };
        call.reinvite_tx = None;
        if resp.is_success() {
            if let Some(d) = call.dialog.as_mut() {
                d.accept_refresh_response(resp);
            }
            self.send_ack(c, &ctx.req);
        }
        self.events.push_back(UaEvent::ReinviteResult { call: CallRef(c), status: resp.status });
        if resp.status == 481 || resp.status == 408 {
            // §12.2.1.2: the dialog is gone.
            self.end_call(c, resp.status, &resp.reason, resp.status == 481, None);
        }
    }

    pub(super) fn on_bye_response(&mut self, c: u64, resp: &Response, raw: Option<String>) {
        if resp.status >= 200 {
            self.end_call(c, resp.status, &resp.reason, false, raw);
        }
    }

    pub(super) fn on_refer_response(&mut self, c: u64, resp: &Response) {
        if resp.status >= 200 {
            let done = !resp.is_success();
            self.events.push_back(UaEvent::TransferStatus { call: CallRef(c), status: resp.status, reason: resp.reason.clone(), done });
        }
    }

    // --- requests from the peer ---

    pub(super) fn on_incoming_invite(&mut self, now: Instant, tx: TxId, req: Request, from: Peer) {
        let local_tag = random_token(16);
        let dialog = match Dialog::new_uas(&req, &local_tag, self.contact()) {
            Ok(d) => d,
            Err(Refusal(code)) => return self.respond(now, tx, &req, code, None),
        };
        let id = self.next_ref();
        let mut call = Call::new(false, req.headers.call_id.clone(), local_tag, from.addr);
        call.dialog = Some(dialog);
        call.invite_server_tx = Some(tx);
        let raw = self.raw_of(&Message::Request(req.clone()));
        let ev = UaEvent::Incoming {
            call: CallRef(id),
            from: req.headers.from.uri.to_string(),
            from_display: req.headers.from.display.clone(),
            to: req.headers.to.uri.to_string(),
            sdp: body_text(&req.body),
            raw,
        };
        call.incoming_invite = Some(req);
        self.calls.insert(id, call);
        self.server_invites.insert(tx, id);
        self.events.push_back(ev);
    }

    /// Their CANCEL for an INVITE we had not answered: the layer sent 200 and 487.
    pub(super) fn on_cancelled(&mut self, _now: Instant, invite_tx: TxId, cancel: &Request) {
        let Some(&c) = self.server_invites.get(&invite_tx) else { return };
        if let Some(call) = self.calls.get_mut(&c) {
            call.incoming_invite = None;
            call.invite_server_tx = None;
        }
        let raw = Some(self.raw_of(&Message::Request(cancel.clone())));
        self.end_call(c, 487, "Request Terminated", true, raw);
    }

    /// An ACK: for our 200 to their INVITE, the call is up.
    pub(super) fn on_ack(&mut self, now: Instant, tx: Option<TxId>, ack: &Request) {
        let c = tx.and_then(|t| self.server_invites.get(&t).copied()).or_else(|| self.call_for_request(ack));
        let Some(c) = c else { return };
        let Some(call) = self.calls.get_mut(&c) else { return };
        if call.state != CallState::Answered {
            return; // ACK for a re-INVITE's 200, or a retransmission
        }
        call.state = CallState::Confirmed;
        call.invite_server_tx = None;
        if let Some(d) = call.dialog.as_mut() {
            let _ = d.accept_request(ack);
        }
        let pending = call.hangup_pending;
        let raw = self.raw_of(&Message::Request(ack.clone()));
        self.events.push_back(UaEvent::Answered { call: CallRef(c), sdp: body_text(&ack.body), raw });
        if pending {
            self.send_bye(now, c);
        }
    }

    /// Our 200 got no ACK in 64*T1: give up on the call (BYE, §13.3.1.4).
    pub(super) fn on_ack_timeout(&mut self, now: Instant, tx: TxId) {
        let Some(&c) = self.server_invites.get(&tx) else { return };
        if self.calls.get(&c).map(|k| k.state) != Some(CallState::Answered) {
            return;
        }
        self.send_in_dialog(now, c, Method::Bye, Purpose::Fire, None, Vec::new());
        self.end_call(c, 408, "No ACK", false, None);
    }

    pub(super) fn on_in_dialog_request(&mut self, now: Instant, tx: TxId, c: u64, req: Request) {
        let Some(call) = self.calls.get_mut(&c) else { return };
        if call.state == CallState::Ended {
            return self.respond(now, tx, &req, 481, None);
        }
        let Some(dialog) = call.dialog.as_mut() else { return self.respond(now, tx, &req, 481, None) };
        if let Err(Refusal(code)) = dialog.accept_request(&req) {
            return self.respond(now, tx, &req, code, None);
        }
        let raw = self.raw_of(&Message::Request(req.clone()));
        match req.method {
            Method::Bye => {
                self.respond(now, tx, &req, 200, None);
                // Unanswered INVITE of an early dialog: it ends too.
                if let Some(call) = self.calls.get_mut(&c) {
                    if let (Some(itx), Some(inv)) = (call.invite_server_tx.take(), call.incoming_invite.take()) {
                        let resp = inv.response(487, Some(&call.local_tag));
                        self.layer.send_response(now, itx, resp);
                    }
                }
                self.end_call(c, 200, "OK", true, Some(raw));
            }
            Method::Invite | Method::Update => self.on_remote_offer(now, tx, c, &req),
            Method::Info => {
                self.respond(now, tx, &req, 200, None);
                let ct = req.headers.content_type.clone().unwrap_or_default();
                if let Some((digit, duration_ms)) = parse_dtmf(&ct, &String::from_utf8_lossy(&req.body)) {
                    self.events.push_back(UaEvent::Dtmf { call: CallRef(c), digit, duration_ms });
                }
            }
            Method::Message => self.on_incoming_message(now, tx, &req),
            Method::Options => self.on_options(now, tx, &req),
            Method::Refer => self.on_refer(now, tx, c, &req),
            Method::Notify => {
                self.respond(now, tx, &req, 200, None);
                let is_refer = req.headers.get("Event").is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
                if let Some((status, reason)) = is_refer.then(|| parse_sipfrag(&String::from_utf8_lossy(&req.body))).flatten() {
                    let terminated = req.headers.get("Subscription-State").is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
                    self.events.push_back(UaEvent::TransferStatus { call: CallRef(c), status, reason, done: status >= 200 || terminated });
                }
            }
            Method::Prack => self.respond(now, tx, &req, 200, None),
            _ => self.respond(now, tx, &req, 501, None),
        }
    }

    /// A re-INVITE or UPDATE: answer 200 with our SDP mirrored, tell the application.
    fn on_remote_offer(&mut self, now: Instant, tx: TxId, c: u64, req: &Request) {
        let contact = self.contact();
        let Some(call) = self.calls.get_mut(&c) else { return };
        if req.method == Method::Invite {
            if call.reinvite_tx.is_some() {
                return self.respond(now, tx, req, 491, None); // glare (§14.2)
            }
            if call.state != CallState::Confirmed {
                let mut resp = req.response(500, None);
                resp.headers.push("Retry-After", "1");
                return self.layer.send_response(now, tx, resp);
            }
        }
        let offer = body_text(&req.body);
        let mut resp = req.response(200, None);
        resp.headers.contact = vec![contact];
        // An UPDATE without SDP needs none back; an INVITE without SDP gets our offer.
        if offer.is_some() || req.method == Method::Invite {
            if let Some(base) = call.sdp_base.clone() {
                let mirrored = mirror(&base, offer.as_deref());
                resp.body = call.stamp(&mirrored).into_bytes();
                resp.headers.content_type = Some("application/sdp".to_owned());
            }
        }
        if req.method == Method::Invite {
            self.server_invites.insert(tx, c);
        }
        self.layer.send_response(now, tx, resp);
        self.events.push_back(UaEvent::Reinvited { call: CallRef(c), sdp: offer });
    }

    /// Their REFER: 202, NOTIFY 100 Trying, and the application decides.
    fn on_refer(&mut self, now: Instant, tx: TxId, c: u64, req: &Request) {
        let target = req.headers.get("Refer-To").map(|v| parse_name_addr(v).map(|na| na.uri.to_string()).unwrap_or_else(|_| v.trim().to_owned()));
        let Some(target) = target else { return self.respond(now, tx, req, 400, None) };
        self.respond(now, tx, req, 202, None);
        self.send_refer_notify(now, c, 100, "Trying");
        self.events.push_back(UaEvent::Referred { call: CallRef(c), target });
    }

    fn send_refer_notify(&mut self, now: Instant, c: u64, status: u16, reason: &str) {
        if !self.calls.get(&c).is_some_and(|k| matches!(k.state, CallState::Confirmed | CallState::Terminating)) {
            return;
        }
        let state = if status >= 200 { "terminated;reason=noresource".to_owned() } else { "active;expires=60".to_owned() };
        let headers = vec![("Event".to_owned(), "refer".to_owned()), ("Subscription-State".to_owned(), state)];
        let body = format!("SIP/2.0 {status} {reason}\r\n");
        self.send_in_dialog(now, c, Method::Notify, Purpose::Notify(c), Some(("message/sipfrag;version=2.0", body)), headers);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn dtmf_bodies() {
        assert_eq!(parse_dtmf("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"), Some(('5', 160)));
        assert_eq!(parse_dtmf("Application/DTMF-Relay", "Signal= #\nDuration= 100"), Some(('#', 100)));
        assert_eq!(parse_dtmf("application/dtmf", "11"), Some(('#', 250)));
        assert_eq!(parse_dtmf("application/dtmf-relay", "Signal=x"), None);
        assert_eq!(parse_dtmf("text/plain", "5"), None);
    }

    #[test]
    fn sipfrag_status_lines() {
        assert_eq!(parse_sipfrag("SIP/2.0 200 OK\r\n"), Some((200, "OK".into())));
        assert_eq!(parse_sipfrag("SIP/2.0 180 Ringing"), Some((180, "Ringing".into())));
        assert_eq!(parse_sipfrag("INVITE sip:x SIP/2.0"), None);
    }

    #[test]
    fn mirror_follows_their_hold() {
        let ours = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";
        let theirs = |dir: &str| format!("v=0\r\no=- 9 9 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na={dir}\r\n");
        assert!(mirror(ours, Some(&theirs("sendonly"))).contains("a=recvonly"));
        assert!(mirror(ours, Some(&theirs("inactive"))).contains("a=inactive"));
        assert!(mirror(ours, Some(&theirs("sendrecv"))).contains("a=sendrecv"));
        assert!(mirror(ours, Some(&theirs("recvonly"))).contains("a=sendonly"));
        assert_eq!(mirror(ours, None), ours);
    }
}
