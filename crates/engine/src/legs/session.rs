//! The session inside a dialog: offer/answer after the INVITE (re-INVITE, UPDATE,
//! the answer in an ACK) and what it means for the leg's media.

use super::*;
use sip::sdp::{self, Negotiated};

impl Legs {
    /// re-INVITE or UPDATE inside a dialog: a new offer (hold, resume, new address or
    /// codec), or none (we offer in the answer, as for delayed-offer INVITEs). A hold
    /// offer (sendonly or inactive) is answered recvonly or inactive, never sendrecv.
    pub(super) fn on_session_refresh(&mut self, now: Instant, tx: TxId, id: &LegId, req: Request) {
        let offer = match parse_sdp_body(&req.headers, &req.body) {
            Ok(o) => o,
            Err(reason) => return self.reply_reason(now, tx, &req, 400, None, &reason),
        };
        let contact = self.contact(req.headers.via.first().map(|v| v.transport).unwrap_or(Transport::Udp));
        let leg = self.legs.get_mut(id).expect("caller checked");
        let Some(local_addr) = leg.media_addr else {
            return self.reply(now, tx, &req, 488, None);
        };
        if req.method == Method::Invite && leg.reinvite.as_ref().is_some_and(|r| !r.done) {
            // Glare with our own re-INVITE (§14.2): the peer retries after a back-off.
            return self.reply(now, tx, &req, 491, None);
        }
        // While we hold the party ourselves, our side of any answer stays sendonly
        // (or inactive).
        let ours = match (leg.held_locally, leg.hold_inactive) {
            (false, _) => sdp::Direction::SendRecv,
            (true, false) => sdp::Direction::SendOnly,
            (true, true) => sdp::Direction::Inactive,
        };
        let was_held = leg.held_by_remote;
        let body = match offer {
            Some(offer) => match sdp::answer(&offer, &self.caps, local_addr, ours, &mut leg.sdp_session) {
                Ok((answer, neg)) => {
                    leg.held_by_remote = offer_holds(&offer);
                    apply_negotiation(&self.media, leg, &neg);
                    answer
                }
                Err(_) => return self.reply(now, tx, &req, 488, None),
            },
            None => {
                let o = sdp::offer(&self.caps, local_addr, ours, &mut leg.sdp_session);
                leg.pending_offer = Some(o.clone());
                o
            }
        };
        let held_now = leg.held_by_remote;
        if req.method == Method::Invite {
            self.by_tx.insert(tx, id.clone());
        }
        let mut ok = self.response(&req, 200, None);
        ok.headers.contact = vec![contact];
        ok.headers.content_type = Some("application/sdp".into());
        ok.body = body.to_string().into_bytes();
        self.txl.send_response(now, tx, ok);
        if held_now != was_held {
            self.events.push_back(LegEvent::SessionChanged { leg: id.clone(), held_by_remote: held_now });
        }
    }

    pub(super) fn on_ack(&mut self, _now: Instant, req: Request) {
        let Some(id) = DialogId::for_incoming(&req).and_then(|d| self.by_dialog.get(&d).cloned()) else {
            return;
        };
        let Some(mut leg) = self.legs.remove(&id) else { return };
        if let Some(offer) = leg.pending_offer.take() {
            match parse_sdp_body(&req.headers, &req.body) {
                Ok(Some(answer)) => match sdp::accept_answer(&offer, &answer) {
                    Ok(neg) => apply_negotiation(&self.media, &mut leg, &neg),
                    Err(e) => warn!(leg = %id, error = %e, "unusable SDP answer in ACK"),
                },
                _ => {
                    // No answer in the ACK: keep the offer pending (it may still come).
                    leg.pending_offer = Some(offer);
                }
            }
        }
        self.legs.insert(id, leg);
    }
}

/// Whether an offer puts us on hold: its audio is sendonly or inactive (or its
/// address is the RFC 2543 `0.0.0.0`).
pub(crate) fn offer_holds(offer: &sdp::SessionDescription) -> bool {
    // `audio()` folds a 0.0.0.0 address into "sendonly" already.
    offer.audio().is_some_and(|info| matches!(info.direction, sdp::Direction::SendOnly | sdp::Direction::Inactive))
}

/// Applies an offer/answer result to the leg's media and state.
pub(crate) fn apply_negotiation(media: &MediaHandle, leg: &mut Leg, neg: &Negotiated) {
    let Some(media_id) = leg.media else { return };
    let Some(codec) = media::codec::CodecKind::from_sdp_name(&neg.codec.name) else {
        warn!(codec = %neg.codec.name, "negotiated a codec the media engine lacks");
        return;
    };
    let (send, recv) = match neg.direction {
        sdp::Direction::SendRecv => (true, true),
        sdp::Direction::SendOnly => (true, false),
        sdp::Direction::RecvOnly => (false, true),
        sdp::Direction::Inactive => (false, false),
    };
    media.configure(
        media_id,
        media::LegParams { remote: neg.remote, codec, payload_type: neg.codec.payload_type, telephone_event_pt: neg.telephone_event, send, recv },
    );
    leg.codec = Some(neg.codec.name.clone());
    if matches!(leg.state, LegState::Active | LegState::Held | LegState::Calling) || leg.answered.is_some() {
        leg.state = if send && recv { LegState::Active } else { LegState::Held };
    }
}

/// Our re-INVITE on a leg (hold or resume), kept until the next one replaces it: its
/// transaction, CSeq (the ACK for each 2xx copy needs it) and offer.
#[derive(Debug)]
pub(crate) struct Reinvite {
    pub tx: TxId,
    pub seq: u32,
    pub offer: sdp::SessionDescription,
    /// What we asked for: hold (sendonly, or inactive) or resume (sendrecv).
    pub hold: bool,
    pub inactive: bool,
    /// A final response arrived; later 2xx copies are only re-ACKed.
    pub done: bool,
}

/// How long to wait before retrying a re-INVITE refused with 491 (RFC 3261 §14.1
/// has the Call-ID owner wait 2.1–4 s; we may not own it, and anything in the range
/// clears the glare).
fn glare_backoff() -> std::time::Duration {
    std::time::Duration::from_millis(rand::random::<u64>() % 1900 + 2100)
}

impl Legs {
    /// Puts the remote party on hold: a re-INVITE offering our media `sendonly` (or
    /// `inactive`). The outcome comes as [`LegEvent::HoldResult`]; a 491 (glare) is
    /// retried after a back-off, a 481 or a timeout ends the leg (§14.1).
    pub(crate) fn hold(&mut self, now: Instant, id: &LegId, inactive: bool) -> Result<(), EngineError> {
        self.send_reinvite(now, id, true, inactive)
    }

    /// Takes the party off our hold: a re-INVITE offering `sendrecv` again.
    pub(crate) fn unhold(&mut self, now: Instant, id: &LegId) -> Result<(), EngineError> {
        self.send_reinvite(now, id, false, false)
    }

    pub(super) fn send_reinvite(&mut self, now: Instant, id: &LegId, hold: bool, inactive: bool) -> Result<(), EngineError> {
        let transport = self.legs.get(id).ok_or(EngineError::LegNotFound)?.peer.transport;
        let (via, contact) = (self.via(transport), self.contact(transport));
        let leg = self.legs.get_mut(id).ok_or(EngineError::LegNotFound)?;
        if leg.is_over() {
            return Err(EngineError::LegEnded);
        }
        if !matches!(leg.state, LegState::Active | LegState::Held) || leg.dialog.is_none() {
            return Err(EngineError::Conflict("the call is not answered yet".into()));
        }
        if leg.reinvite.as_ref().is_some_and(|r| !r.done) || leg.pending_offer.is_some() {
            return Err(EngineError::Conflict("a session change is already in progress on this leg; try again".into()));
        }
        let Some(addr) = leg.media_addr else {
            return Err(EngineError::MediaUnavailable("the leg has no media".into()));
        };
        let direction = match (hold, inactive) {
            (false, _) => sdp::Direction::SendRecv,
            (true, false) => sdp::Direction::SendOnly,
            (true, true) => sdp::Direction::Inactive,
        };
        // Offer only the codec in use, so holding never switches codecs mid-call.
        let mut caps = self.caps.clone();
        if let Some(current) = &leg.codec {
            let kept: Vec<_> = caps.codecs.iter().filter(|c| c.name.eq_ignore_ascii_case(current)).cloned().collect();
            if !kept.is_empty() {
                caps.codecs = kept;
            }
        }
        let offer = sdp::offer(&caps, addr, direction, &mut leg.sdp_session);
        let dialog = leg.dialog.as_mut().expect("checked");
        let mut req = dialog.request(Method::Invite, via);
        req.headers.contact = vec![contact];
        req.headers.content_type = Some("application/sdp".into());
        req.body = offer.to_string().into_bytes();
        let seq = req.headers.cseq.seq;
        let peer = next_hop_peer(dialog, leg.peer);
        self.common_headers(&mut req.headers);
        let tx = self.txl.send_request(now, req, peer);
        let leg = self.legs.get_mut(id).expect("checked");
        leg.reinvite = Some(Reinvite { tx, seq, offer, hold, inactive, done: false });
        self.by_tx.insert(tx, id.clone());
        info!(leg = %id, hold, inactive, "re-INVITE sent");
        self.pump(now);
        Ok(())
    }

    /// Whether `tx` is a re-INVITE of ours on leg `id` (its responses go to
    /// [`Legs::on_reinvite_response`], not to the initial INVITE's handling).
    pub(super) fn is_our_reinvite(&self, id: &LegId, tx: TxId) -> bool {
        self.legs.get(id).and_then(|l| l.reinvite.as_ref()).is_some_and(|r| r.tx == tx)
    }

    pub(super) fn on_reinvite_response(&mut self, now: Instant, id: &LegId, resp: Response) {
        if resp.status < 200 {
            return;
        }
        let transport = match self.legs.get(id) {
            Some(l) => l.peer.transport,
            None => return,
        };
        let via = self.via(transport);
        let leg = self.legs.get_mut(id).expect("checked");
        let Some(re) = leg.reinvite.as_mut() else { return };
        if resp.status < 300 {
            // Every 2xx copy is ACKed (the UAS retransmits until one arrives).
            if let Some(dialog) = leg.dialog.as_mut() {
                let mut ack = dialog.ack(re.seq, via);
                ack.headers.push("User-Agent", self.cfg.user_agent.clone());
                let peer = next_hop_peer(dialog, leg.peer);
                self.txl.send_stateless(&Message::Request(ack), peer);
            }
            let leg = self.legs.get_mut(id).expect("checked");
            let over = leg.is_over();
            let re = leg.reinvite.as_mut().expect("checked");
            if re.done || over {
                return;
            }
            re.done = true;
            let (hold, inactive) = (re.hold, re.inactive);
            if let Some(d) = leg.dialog.as_mut() {
                d.accept_refresh_response(&resp);
            }
            let applied = match parse_sdp_body(&resp.headers, &resp.body) {
                Ok(Some(answer)) => sdp::accept_answer(&re.offer, &answer).map_err(|e| e.to_string()),
                _ => Err("no SDP answer".to_owned()),
            };
            match applied {
                Ok(neg) => {
                    leg.held_locally = hold;
                    leg.hold_inactive = hold && inactive;
                    apply_negotiation(&self.media, leg, &neg);
                    // Remote-held and locally resumed still leaves the leg on hold.
                    if leg.held_by_remote && leg.state == LegState::Active {
                        leg.state = LegState::Held;
                    }
                    self.events.push_back(LegEvent::HoldResult { leg: id.clone(), hold, status: 200 });
                }
                Err(e) => {
                    warn!(leg = %id, error = %e, "unusable answer to our re-INVITE: the session stays as it was");
                    self.events.push_back(LegEvent::HoldResult { leg: id.clone(), hold, status: 488 });
                }
            }
            return;
        }
        if re.done {
            return;
        }
        re.done = true;
        let (hold, inactive) = (re.hold, re.inactive);
        match resp.status {
            491 => {
                // Glare: both sides re-INVITEd at once. Try again after the back-off.
                let at = now + glare_backoff();
                self.timers.push(Reverse((at, LegTimer::RetryReinvite { hold, inactive }, id.clone())));
            }
            481 | 408 => {
                // §14.1: the dialog is gone (or unreachable): end the leg.
                self.events.push_back(LegEvent::HoldResult { leg: id.clone(), hold, status: resp.status });
                let _ = self.hangup_with(now, id, Some((resp.status, "re-INVITE failed: the dialog is gone")));
            }
            status => {
                // The session is unchanged (§14.1).
                self.events.push_back(LegEvent::HoldResult { leg: id.clone(), hold, status });
            }
        }
    }

    /// Our re-INVITE got no final response at all: the peer is gone (§14.1).
    pub(super) fn on_reinvite_timeout(&mut self, now: Instant, id: &LegId) {
        let hold = match self.legs.get_mut(id).and_then(|l| l.reinvite.as_mut()) {
            Some(re) if !re.done => {
                re.done = true;
                re.hold
            }
            _ => return,
        };
        self.events.push_back(LegEvent::HoldResult { leg: id.clone(), hold, status: 408 });
        let _ = self.hangup_with(now, id, Some((408, "No answer to our re-INVITE")));
    }
}
