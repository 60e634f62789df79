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
        // While we hold the party ourselves, our side of any answer stays sendonly.
        let ours = if leg.held_locally { sdp::Direction::SendOnly } else { sdp::Direction::SendRecv };
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
