//! Legs that call us: taking the INVITE, ringing, answering, refusing.

use super::*;
use sip::sdp;

impl Legs {
    /// Takes a new INVITE as an inbound leg owned by `owner`, after the engine has
    /// routed it. Checks what every inbound leg needs (no unsupported `Require`, a
    /// Contact, parseable SDP) and answers the INVITE itself when they fail (None).
    pub(crate) fn incoming(&mut self, now: Instant, tx: TxId, req: Request, from: Peer, local_tag: String, service: Service, owner: Owner, domain: String) -> Option<LegId> {
        if let Some(required) = req.headers.get("Require") {
            // We support no extensions that a caller may require (e.g. 100rel).
            let mut resp = self.response(&req, 420, Some(&local_tag));
            resp.headers.push("Unsupported", required.to_owned());
            self.txl.send_response(now, tx, resp);
            return None;
        }
        if req.headers.contact.is_empty() {
            self.reply_reason(now, tx, &req, 400, Some(&local_tag), "Missing Contact");
            return None;
        }
        let offer = match parse_sdp_body(&req.headers, &req.body) {
            Ok(o) => o,
            Err(reason) => {
                self.reply_reason(now, tx, &req, 400, Some(&local_tag), &reason);
                return None;
            }
        };
        let mut leg = Leg::new(Direction::Inbound, service, req, Some(tx), local_tag, from);
        leg.remote_offer = offer;
        leg.owner = owner;
        leg.domain = domain;
        let id = leg.id.clone();
        self.insert_leg(leg);
        Some(id)
    }

    /// Sends a provisional response (180 Ringing, or 183 with our SDP for early media
    /// when `early_media`) on an inbound leg still unanswered.
    pub(crate) fn ring(&mut self, now: Instant, id: &LegId, status: u16, early_media: bool) {
        let transport = match self.legs.get(id) {
            Some(l) if l.direction == Direction::Inbound && matches!(l.state, LegState::Calling | LegState::Ringing) => l.peer.transport,
            _ => return,
        };
        let contact = self.contact(transport);
        let leg = self.legs.get_mut(id).expect("checked");
        let Some(tx) = leg.invite_tx else { return };
        let mut resp = leg.invite.response(status, Some(&leg.local_tag.clone()));
        resp.headers.push("Server", self.cfg.user_agent.clone());
        resp.headers.contact = vec![contact];
        if early_media {
            if let Some(body) = self.local_answer(id) {
                resp.headers.content_type = Some("application/sdp".into());
                resp.body = body.into_bytes();
            }
        }
        let leg = self.legs.get_mut(id).expect("checked");
        leg.state = LegState::Ringing;
        self.txl.send_response(now, tx, resp);
        self.pump(now);
    }

    /// Our answer to the caller's offer (allocating media on first use), or our offer
    /// when the INVITE carried none. None: no media port, or no common codec.
    fn local_answer(&mut self, id: &LegId) -> Option<String> {
        let leg = self.legs.get_mut(id)?;
        if leg.media.is_none() {
            let alloc = self.media.allocate().ok()?;
            leg.media = Some(alloc.id);
            leg.media_addr = Some(alloc.rtp_addr);
            self.by_media.insert(alloc.id, id.clone());
        }
        let leg = self.legs.get_mut(id)?;
        let addr = leg.media_addr?;
        if leg.local_sdp.is_some() {
            return leg.local_sdp.clone();
        }
        let text = match leg.remote_offer.clone() {
            Some(offer) => {
                let (answer, neg) = sdp::answer(&offer, &self.caps, addr, sdp::Direction::SendRecv, &mut leg.sdp_session).ok()?;
                apply_negotiation(&self.media, leg, &neg);
                answer.to_string()
            }
            None => {
                // Delayed offer: we offer in the 2xx, the answer comes in the ACK.
                let o = sdp::offer(&self.caps, addr, sdp::Direction::SendRecv, &mut leg.sdp_session);
                leg.pending_offer = Some(o.clone());
                o.to_string()
            }
        };
        leg.local_sdp = Some(text.clone());
        Some(text)
    }

    /// Answers an inbound leg (200 with our SDP) and starts its dialog. On failure the
    /// caller has been refused (503 no media, 488 no common codec) and the leg is over.
    pub(crate) fn answer(&mut self, now: Instant, id: &LegId) -> Result<(), EngineError> {
        let leg = self.legs.get(id).ok_or(EngineError::LegNotFound)?;
        if leg.direction != Direction::Inbound || !matches!(leg.state, LegState::Calling | LegState::Ringing) || leg.invite_tx.is_none() {
            return Err(EngineError::BadRequest("the leg is not an unanswered inbound call".into()));
        }
        let transport = leg.peer.transport;
        let had_media = leg.media.is_some();
        let Some(body) = self.local_answer(id) else {
            let has_media = self.legs.get(id).is_some_and(|l| l.media.is_some());
            let (status, reason) = if has_media || had_media { (488, "Not Acceptable Here") } else { (503, "Out of media ports") };
            self.reject(now, id, status, Some(reason));
            self.end_leg(now, id, status, reason, false);
            return Err(EngineError::MediaUnavailable(reason.into()));
        };
        let contact = self.contact(transport);
        let leg = self.legs.get_mut(id).expect("checked");
        let dialog = match Dialog::new_uas(&leg.invite, &leg.local_tag, contact.clone()) {
            Ok(d) => d,
            Err(r) => {
                self.reject(now, id, r.0, None);
                self.end_leg(now, id, r.0, "Bad request", false);
                return Err(EngineError::BadRequest("the INVITE cannot start a dialog".into()));
            }
        };
        let tx = leg.invite_tx.expect("checked");
        let mut ok = leg.invite.response(200, Some(&leg.local_tag.clone()));
        if leg.invite.headers.to.tag().is_some() {
            ok.headers.record_route.clear();
        }
        ok.headers.push("Server", self.cfg.user_agent.clone());
        ok.headers.push("Allow", ALLOW);
        ok.headers.contact = vec![contact];
        ok.headers.content_type = Some("application/sdp".into());
        ok.body = body.into_bytes();
        self.by_dialog.insert(dialog.id.clone(), id.clone());
        leg.dialog = Some(dialog);
        leg.answered = Some(SystemTime::now());
        if matches!(leg.state, LegState::Calling | LegState::Ringing) {
            leg.state = if leg.held_by_remote { LegState::Held } else { LegState::Active };
        }
        let info = leg.info();
        self.txl.send_response(now, tx, ok);
        self.public.push_back(EngineEvent::LegAnswered(info));
        self.pump(now);
        Ok(())
    }

    /// Refuses an unanswered inbound leg with a final status (the leg's end is the
    /// caller's business: [`Legs::end_leg`]).
    pub(crate) fn reject(&mut self, now: Instant, id: &LegId, status: u16, reason: Option<&str>) {
        let Some(leg) = self.legs.get_mut(id) else { return };
        let Some(tx) = leg.invite_tx.take() else { return };
        self.by_tx.remove(&tx);
        let mut resp = leg.invite.response(status, Some(&leg.local_tag.clone()));
        resp.headers.record_route.clear();
        resp.headers.push("Server", self.cfg.user_agent.clone());
        if let Some(r) = reason {
            resp.reason = r.to_owned();
        }
        self.txl.send_response(now, tx, resp);
    }
}
