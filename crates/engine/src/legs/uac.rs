//! Legs we place: the INVITE out, its provisional and final responses, CANCEL races,
//! and digest authentication toward a peer that challenges our INVITE (RFC 3261
//! §22.2: the INVITE is sent again, CSeq + 1, with `Authorization` or
//! `Proxy-Authorization`).

use super::*;
use crate::engine::DialOut;
use sip::sdp::{self, SessionState};
use sip::CSeq;

/// A username and password for the peers a dial-out reaches: a 401/407 to our INVITE
/// is answered with them, for whatever realm the challenge names.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for DigestCredentials {
    // never the password in logs
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Re-sent INVITEs per leg: one per challenge, and a second only for a `stale` nonce;
/// a peer that keeps challenging is refusing our credentials.
const MAX_AUTH_ATTEMPTS: u8 = 2;

impl Legs {
    /// Sends an INVITE for a new outbound leg owned by `owner`, with our SDP offer.
    pub(crate) fn place(&mut self, now: Instant, d: DialOut, owner: Owner) -> Result<LegId, EngineError> {
        self.place_preferring(now, d, owner, None)
    }

    /// [`Legs::place`], offering `prefer` first when we have it: a bridge offers the
    /// callee the caller's codec, so that two legs that can agree carry the same one and
    /// the bridge relays their frames instead of transcoding (a G.711 browser to a
    /// G.711 phone, say).
    pub(crate) fn place_preferring(&mut self, now: Instant, d: DialOut, owner: Owner, prefer: Option<&str>) -> Result<LegId, EngineError> {
        if self.shutting_down {
            return Err(EngineError::ShuttingDown);
        }
        if d.to.scheme == sip::Scheme::Tel {
            return Err(EngineError::BadTarget("tel: URIs need a gateway route".into()));
        }
        // WS/WSS: a browser registered over the shell's WebSocket, which carries it back.
        if !matches!(d.peer.transport, Transport::Udp | Transport::Tcp | Transport::Ws | Transport::Wss) {
            // Nothing could carry the INVITE: the call would only time out.
            return Err(EngineError::BadTarget(format!("{}: only UDP, TCP and (to registered browsers) WebSocket are supported", d.to)));
        }
        let media = self.media.allocate().map_err(|e| EngineError::MediaUnavailable(e.to_string()))?;
        let mut sdp_session = SessionState { session_id: rand::random::<u32>() as u64, version: 1, username: "switchboard".into() };
        let offer = match prefer.and_then(|p| self.caps.codecs.iter().position(|c| c.name.eq_ignore_ascii_case(p))) {
            Some(i) if i > 0 => {
                let mut caps = self.caps.clone();
                let c = caps.codecs.remove(i);
                caps.codecs.insert(0, c);
                sdp::offer(&caps, media.rtp_addr, sdp::Direction::SendRecv, &mut sdp_session)
            }
            _ => sdp::offer(&self.caps, media.rtp_addr, sdp::Direction::SendRecv, &mut sdp_session),
        };
        let local_tag = random_token(10);
        let from_user = d.from_user.clone().unwrap_or_else(|| "switchboard".into());
        let mut to_uri = d.to.clone();
        to_uri.headers.clear();
        let from_host = d.from_host.as_deref().filter(|h| !h.is_empty()).unwrap_or(&self.cfg.domain);
        let mut from = NameAddr::new(Uri::sip(Some(&from_user), from_host, None)).with_tag(&local_tag);
        from.display = d.from_display.clone();
        let mut invite = Request {
            method: Method::Invite,
            uri: to_uri.clone(),
            headers: Headers {
                via: vec![self.via(d.peer.transport)],
                from,
                to: NameAddr::new(to_uri),
                call_id: format!("{}@{}", random_token(20), self.cfg.domain),
                cseq: CSeq { seq: 1, method: Method::Invite },
                max_forwards: Some(70),
                contact: vec![self.contact(d.peer.transport)],
                route: Vec::new(),
                record_route: Vec::new(),
                content_type: Some("application/sdp".into()),
                extra: Vec::new(),
            },
            body: offer.to_string().into_bytes(),
        };
        self.common_headers(&mut invite.headers);
        for (name, value) in &d.extra_headers {
            invite.headers.push(name, value.clone());
        }
        let tx = self.txl.send_request(now, invite.clone(), d.peer);
        let mut leg = Leg::new(Direction::Outbound, d.service, invite, Some(tx), local_tag, d.peer);
        let id = leg.id.clone();
        leg.media = Some(media.id);
        leg.media_addr = Some(media.rtp_addr);
        leg.sdp_session = sdp_session;
        leg.pending_offer = Some(offer);
        leg.hangup_after = d.hangup_after;
        leg.credentials = d.credentials;
        leg.owner = owner;
        leg.domain = d.domain.map(|n| n.to_ascii_lowercase()).unwrap_or_else(|| self.cfg.domain.to_ascii_lowercase());
        info!(leg = %id, to = %d.to, "dialling out");
        self.insert_leg(leg);
        self.pump(now);
        Ok(id)
    }

    pub(super) fn on_invite_response(&mut self, now: Instant, tx: TxId, id: &LegId, resp: Response) {
        let Some(mut leg) = self.legs.remove(id) else { return };
        let status = resp.status;
        if leg.invite_tx == Some(tx) || status < 300 {
            leg.last_response = Some((status, resp.reason.clone()));
        }
        if matches!(status, 401 | 407) && leg.invite_tx == Some(tx) && !leg.cancel_requested && !leg.is_over() {
            if let Some(new_tx) = self.resend_with_credentials(now, &mut leg, &resp) {
                self.by_tx.insert(new_tx, id.clone());
                self.legs.insert(id.clone(), leg);
                return;
            }
        }
        if status < 200 {
            if status > 100 && leg.state == LegState::Calling {
                leg.state = LegState::Ringing;
            }
            if status > 100 && !leg.is_over() {
                let early = parse_sdp_body(&resp.headers, &resp.body).ok().flatten();
                let early_media = early.is_some();
                // Early media (183 with SDP): point our media at the remote now, so its
                // ringback or announcement can be heard before the answer. The offer
                // stays pending: the 2xx carries the answer again (no 100rel here).
                if let (Some(answer), Some(offer)) = (early, leg.pending_offer.as_ref()) {
                    if let Ok(neg) = sdp::accept_answer(offer, &answer) {
                        apply_negotiation(&self.media, &mut leg, &neg);
                    }
                }
                self.events.push_back(LegEvent::Progress { leg: id.clone(), status, reason: resp.reason.clone(), early_media });
            }
        } else if status < 300 {
            self.on_invite_success(now, &mut leg, resp);
        } else if leg.invite_tx == Some(tx) {
            leg.invite_tx = None;
            self.legs.insert(id.clone(), leg);
            let reason = resp.reason.clone();
            self.end_leg(now, id, status, &reason, true);
            return;
        }
        self.legs.insert(id.clone(), leg);
    }

    /// Answers a challenge to our INVITE: the same INVITE (same Call-ID, From tag and
    /// offer) with CSeq + 1, a new branch and the credentials. None when there is
    /// nothing to answer with: no credentials, no usable challenge, or the peer has
    /// already refused what we sent (then the 401/407 ends the leg as any failure does).
    fn resend_with_credentials(&mut self, now: Instant, leg: &mut Leg, resp: &Response) -> Option<TxId> {
        let creds = leg.credentials.as_ref()?;
        let (challenge_header, answer_header) = match resp.status {
            401 => ("WWW-Authenticate", "Authorization"),
            _ => ("Proxy-Authenticate", "Proxy-Authorization"),
        };
        // RFC 8760 §2.4: one header per algorithm, in the server's order; take the
        // first we speak.
        let (challenge, qop_auth) = resp
            .headers
            .extra
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(challenge_header))
            .find_map(|(_, v)| sip::digest::Challenge::parse(v).ok())?;
        let limit = if challenge.stale { MAX_AUTH_ATTEMPTS } else { 1 };
        if leg.auth_attempts >= limit {
            return None;
        }
        leg.auth_attempts += 1;
        let mut invite = leg.invite.clone();
        invite.headers.cseq.seq += 1;
        invite.headers.via = vec![self.via(leg.peer.transport)];
        invite.headers.remove("Authorization");
        invite.headers.remove("Proxy-Authorization");
        let uri = invite.uri.to_string();
        let value = challenge.answer(qop_auth, &creds.username, &creds.password, "INVITE", &uri, &random_token(16), 1);
        invite.headers.push(answer_header, value);
        let tx = self.txl.send_request(now, invite.clone(), leg.peer);
        debug!(leg = %leg.id, status = resp.status, realm = %challenge.realm, "INVITE challenged: sent again with credentials");
        leg.invite = invite;
        leg.invite_tx = Some(tx);
        Some(tx)
    }

    /// A 2xx to our INVITE: build the dialog on the first one, ACK every one (they are
    /// retransmitted until our ACK arrives), and start media.
    fn on_invite_success(&mut self, now: Instant, leg: &mut Leg, resp: Response) {
        if leg.dialog.is_none() {
            match Dialog::new_uac(&leg.invite, &resp) {
                Ok(d) => {
                    self.by_dialog.insert(d.id.clone(), leg.id.clone());
                    leg.dialog = Some(d);
                }
                Err(_) => {
                    warn!(leg = %leg.id, "2xx without To tag: ignored");
                    return;
                }
            }
        }
        let transport = leg.peer.transport;
        let via = self.via(transport);
        let dialog = leg.dialog.as_ref().expect("just set");
        let mut ack = dialog.ack(leg.invite.headers.cseq.seq, via);
        self.common_headers(&mut ack.headers);
        let peer = next_hop_peer(dialog, leg.peer);
        self.txl.send_stateless(&Message::Request(ack), peer);
        if leg.answered.is_some() {
            return; // a retransmitted 2xx: re-ACKed above, nothing else changes
        }
        leg.answered = Some(SystemTime::now());
        if leg.cancel_requested || leg.is_over() || self.shutting_down {
            // Our CANCEL crossed the 2xx: the call exists now, so end it with BYE.
            leg.state = LegState::Active;
            self.bye_for(now, leg);
            self.finish(now, leg, 487, "Cancelled (answered as we cancelled)", false);
            return;
        }
        let answer = match parse_sdp_body(&resp.headers, &resp.body) {
            Ok(Some(a)) => a,
            _ => {
                self.bye_for(now, leg);
                self.finish(now, leg, 488, "Answer carried no usable SDP", false);
                return;
            }
        };
        let offer = leg.pending_offer.take().expect("dial-out always offers");
        match sdp::accept_answer(&offer, &answer) {
            Ok(neg) => apply_negotiation(&self.media, leg, &neg),
            Err(e) => {
                warn!(leg = %leg.id, error = %e, "SDP answer not acceptable");
                self.bye_for(now, leg);
                self.finish(now, leg, 488, "SDP answer not acceptable", false);
                return;
            }
        }
        if leg.state != LegState::Held {
            leg.state = LegState::Active;
        }
        // a delay past what an Instant can hold (hangup_after_ms near 2^64) means never
        if let Some(at) = leg.hangup_after.and_then(|after| now.checked_add(after)) {
            self.timers.push(Reverse((at, LegTimer::HangupAfter, leg.id.clone())));
        }
        info!(leg = %leg.id, "dial-out answered");
        self.public.push_back(EngineEvent::LegAnswered(leg.info()));
        self.events.push_back(LegEvent::Answered { leg: leg.id.clone() });
    }
}
