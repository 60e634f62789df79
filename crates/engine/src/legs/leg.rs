//! A leg: one SIP dialog between Switchboard and one remote party, with its media.
//!
//! Every call the server takes part in is made of legs. An inbound leg starts with an
//! INVITE we receive; an outbound leg with an INVITE we send (dial-out). What the leg
//! is connected to on our side (the echo service, a ringing placeholder, a room) is its
//! [`Service`].

use crate::apps::Owner;
use media::LegId as MediaLegId;
use serde::Serialize;
use sip::dialog::Dialog;
use sip::sdp::{SessionDescription, SessionState};
use sip::transaction::TxId;
use sip::{Peer, Request};
use std::fmt;
use std::time::{Instant, SystemTime};

/// Public identifier of a leg: UUID-shaped, stable for the leg's lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LegId(pub String);

impl LegId {
    pub fn new() -> LegId {
        let t = sip::dialog::random_token(32);
        LegId(format!("{}-{}-4{}-a{}-{}", &t[0..8], &t[8..12], &t[13..16], &t[17..20], &t[20..32]))
    }
}

impl Default for LegId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Where a leg is in its life. Serialised lower-case; these are the participant
/// states of the conference API too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LegState {
    /// Outbound INVITE sent, nothing heard yet (or only 100 Trying).
    Calling,
    /// 180/183 sent or received.
    Ringing,
    /// Answered and media flowing both ways.
    Active,
    /// Answered but on hold (either side sendonly/recvonly/inactive).
    Held,
    /// Over; kept for a while so APIs can report how it ended.
    Ended,
}

/// What the leg is connected to on our side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Sends the caller's own audio back.
    Echo,
    /// Rings and never answers (for testing CANCEL and ring timeouts).
    Ring,
    /// A participant of the room with this room number.
    Room(String),
    /// One party of a two-party call (see [`crate::apps::bridge`]).
    Call,
    /// A caller at the conference access number, keying in a room (see
    /// [`crate::apps::ivr`]); a room participant once it has entered.
    Ivr,
    /// A caller at the voicemail number (see [`crate::apps::voicemail`]). A caller
    /// leaving a message stays `Call`: it is the caller of a two-party call.
    Voicemail,
    /// A call the server placed to play sounds into (see [`crate::apps::announcement`]).
    Announcement,
}

impl Service {
    /// What a Request-URI user part asks for: `echo`, `ring`, `conf-<n>`, or the room
    /// feature-code prefix followed by the room number (`*9` + `123`).
    pub fn from_user(user: &str, room_prefix: &str) -> Option<Service> {
        let room_number = |n: &str| !n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_digit());
        match user {
            "echo" => Some(Service::Echo),
            "ring" => Some(Service::Ring),
            _ => {
                if let Some(n) = user.strip_prefix("conf-").filter(|n| room_number(n)) {
                    return Some(Service::Room(n.to_owned()));
                }
                if !room_prefix.is_empty() {
                    if let Some(n) = user.strip_prefix(room_prefix).filter(|n| room_number(n)) {
                        return Some(Service::Room(n.to_owned()));
                    }
                }
                None
            }
        }
    }
}

/// A snapshot of a leg, as the APIs show it.
#[derive(Debug, Clone, Serialize)]
pub struct LegInfo {
    pub leg_id: LegId,
    pub call_id: String,
    pub direction: Direction,
    pub state: LegState,
    pub service: Service,
    pub remote_uri: String,
    pub local_uri: String,
    pub local_tag: Option<String>,
    pub remote_tag: Option<String>,
    /// Milliseconds since the Unix epoch when the leg started.
    pub started_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// SIP status (or 0) and reason for the end, e.g. 487 "Request Terminated".
    pub end_status: Option<u16>,
    pub end_reason: Option<String>,
    pub codec: Option<String>,
    /// The domain (tenant) the leg belongs to, lowercase (see [`crate::RoomInfo::domain`]).
    pub domain: String,
}

/// Engine-internal leg state.
pub(crate) struct Leg {
    pub id: LegId,
    pub direction: Direction,
    pub state: LegState,
    pub service: Service,
    pub call_id: String,
    /// The INVITE that created the leg (received or sent).
    pub invite: Request,
    /// Its transaction while it is pending.
    pub invite_tx: Option<TxId>,
    /// Our tag (inbound legs choose it at the first response).
    pub local_tag: String,
    pub dialog: Option<Dialog>,
    /// Where signalling for this leg goes when the dialog's target cannot be resolved.
    pub peer: Peer,
    pub media: Option<MediaLegId>,
    /// Our RTP address, as put in SDP.
    pub media_addr: Option<std::net::SocketAddr>,
    pub sdp_session: SessionState,
    /// Inbound: the SDP we answered (or offered) with, once made (the 183 and the 200 carry the same).
    pub local_sdp: Option<String>,
    /// Our last offer, while waiting for its answer (dial-out, or a 2xx without SDP offer).
    pub pending_offer: Option<SessionDescription>,
    pub codec: Option<String>,
    pub started: SystemTime,
    pub answered: Option<SystemTime>,
    pub ended: Option<SystemTime>,
    pub ended_at: Option<Instant>,
    pub end_status: Option<u16>,
    pub end_reason: Option<String>,
    /// Dial-out: hang up this long after answer.
    pub hangup_after: Option<std::time::Duration>,
    /// A CANCEL was asked for before any provisional arrived (sent once one does).
    pub cancel_requested: bool,
    /// The application deciding for this leg (see [`crate::apps`]).
    pub owner: Owner,
    /// Inbound: the caller's SDP offer, until the leg is answered.
    pub remote_offer: Option<SessionDescription>,
    /// The media engine hears speech on it.
    pub talking: bool,
    /// Held by us (we sent sendonly/inactive) or by the remote party (it did).
    pub held_locally: bool,
    pub held_by_remote: bool,
    /// Our hold is `inactive` rather than `sendonly` (only meaningful with `held_locally`).
    pub hold_inactive: bool,
    /// Our re-INVITE (hold or resume) while it is pending (see `legs/session.rs`).
    pub reinvite: Option<super::session::Reinvite>,
    /// The REFER subscriptions on this leg (see `legs/refer.rs`).
    pub refer: super::refer::ReferState,
    /// Outbound: the last response to our INVITE (status, reason phrase), provisional
    /// or final, e.g. `(180, "Ringing")`: how far the call got.
    pub last_response: Option<(u16, String)>,
    /// Outbound: what answers a 401/407 to our INVITE (see `legs/uac.rs`).
    pub credentials: Option<super::DigestCredentials>,
    /// Outbound: INVITEs re-sent with credentials so far.
    pub auth_attempts: u8,
    /// Its domain, lowercase: set when the leg is inserted (inbound: from the
    /// Request-URI host; outbound: the API caller's domain or the room's).
    pub domain: String,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Leg {
    /// A leg at its start: `invite` is the INVITE received (inbound) or about to be
    /// sent (outbound); `peer` is where its signalling comes from or goes to.
    pub fn new(direction: Direction, service: Service, invite: Request, invite_tx: Option<TxId>, local_tag: String, peer: Peer) -> Leg {
        Leg {
            id: LegId::new(),
            direction,
            state: LegState::Calling,
            service,
            call_id: invite.headers.call_id.clone(),
            invite,
            invite_tx,
            local_tag,
            dialog: None,
            peer,
            media: None,
            media_addr: None,
            sdp_session: SessionState { session_id: rand::random::<u32>() as u64, version: 1, username: "switchboard".into() },
            pending_offer: None,
            local_sdp: None,
            codec: None,
            started: SystemTime::now(),
            answered: None,
            ended: None,
            ended_at: None,
            end_status: None,
            end_reason: None,
            hangup_after: None,
            cancel_requested: false,
            owner: Owner::Nobody,
            remote_offer: None,
            talking: false,
            held_locally: false,
            held_by_remote: false,
            hold_inactive: false,
            reinvite: None,
            refer: Default::default(),
            last_response: None,
            credentials: None,
            auth_attempts: 0,
            domain: String::new(),
        }
    }

    pub fn info(&self) -> LegInfo {
        let (local_uri, remote_uri) = match self.direction {
            Direction::Inbound => (&self.invite.headers.to, &self.invite.headers.from),
            Direction::Outbound => (&self.invite.headers.from, &self.invite.headers.to),
        };
        LegInfo {
            leg_id: self.id.clone(),
            call_id: self.call_id.clone(),
            direction: self.direction,
            state: self.state,
            service: self.service.clone(),
            remote_uri: remote_uri.uri.to_string(),
            local_uri: local_uri.uri.to_string(),
            local_tag: (!self.local_tag.is_empty()).then(|| self.local_tag.clone()),
            remote_tag: self.dialog.as_ref().map(|d| d.id.remote_tag.clone()).or_else(|| match self.direction {
                Direction::Inbound => self.invite.headers.from.tag().map(str::to_owned),
                Direction::Outbound => None,
            }),
            started_ms: epoch_ms(self.started),
            answered_ms: self.answered.map(epoch_ms),
            ended_ms: self.ended.map(epoch_ms),
            end_status: self.end_status,
            end_reason: self.end_reason.clone(),
            codec: self.codec.clone(),
            domain: self.domain.clone(),
        }
    }

    pub fn is_over(&self) -> bool {
        self.state == LegState::Ended
    }
}
