//! The JSON shapes of the conference API: field names as in reference 000 (restored in
//! `shared/reference/NOTES.md`), plus our additions marked as such. Engine snapshots
//! are translated into these, so the dialect owns its wire format and its OpenAPI
//! schema in one place.

use engine::{Direction, LegState, ParticipantInfo, RoomInfo};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::sync::Arc;
use utoipa::ToSchema;

/// An active conference (room).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"confid": "rCF-001-PhKjyX", "confnumber": "PhKjyX", "confroomnum": "9",
    "confuri": "<sip:conf-9@switchboard.local>", "site": "switchboard.local", "startts": 1572033454296u64}))]
pub struct Conference {
    /// Conference id, unique while the server runs (may repeat after a restart).
    pub confid: String,
    /// The short code inside `confid`.
    pub confnumber: String,
    /// Decimal room number, dialled as `conf-<n>` or after the feature-code prefix (`*9<n>`).
    pub confroomnum: String,
    /// The room's URI, `<sip:conf-<n>@<domain>>`.
    pub confuri: String,
    /// The site whose server hosts the room.
    pub site: String,
    /// Milliseconds since the epoch when the INVITE that started the room arrived.
    pub startts: u64,
}

impl Conference {
    /// Every field, for validating `filter` and `order`.
    pub const FIELDS: &'static [&'static str] = &["confid", "confnumber", "confroomnum", "confuri", "site", "startts"];
}

/// A room serialized exactly as [`Conference`] (a test keeps the two in step) but
/// without copying it: lists and gets without options go straight from the published
/// room list to JSON.
pub struct ConferenceRef<'a>(pub &'a RoomInfo);

impl Serialize for ConferenceRef<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut s = ser.serialize_struct("Conference", 6)?;
        s.serialize_field("confid", &r.confid)?;
        s.serialize_field("confnumber", &r.confnumber)?;
        s.serialize_field("confroomnum", &r.confroomnum)?;
        s.serialize_field("confuri", &r.confuri)?;
        s.serialize_field("site", &r.site)?;
        s.serialize_field("startts", &r.startts)?;
        s.end()
    }
}

/// A whole room list as a JSON array of [`ConferenceRef`]s.
pub struct ConferenceListRef<'a>(pub &'a [Arc<RoomInfo>]);

impl Serialize for ConferenceListRef<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.iter().map(|r| ConferenceRef(r)))
    }
}

impl From<&RoomInfo> for Conference {
    fn from(r: &RoomInfo) -> Self {
        Conference {
            confid: r.confid.clone(),
            confnumber: r.confnumber.clone(),
            confroomnum: r.confroomnum.clone(),
            confuri: r.confuri.clone(),
            site: r.site.clone(),
            startts: r.startts,
        }
    }
}

/// Where a participant's leg is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantState {
    /// Dial-out INVITE sent, no ringing yet.
    Calling,
    /// 180/183 received (dial-out) or sent (dial-in).
    Ringing,
    /// Answered; media flowing.
    Active,
    /// Answered but on hold.
    Held,
    /// Left; listed only with `filter={"state":"ended"}`, for about 5 minutes.
    Ended,
}

impl From<LegState> for ParticipantState {
    fn from(s: LegState) -> Self {
        match s {
            LegState::Calling => ParticipantState::Calling,
            LegState::Ringing => ParticipantState::Ringing,
            LegState::Active => ParticipantState::Active,
            LegState::Held => ParticipantState::Held,
            LegState::Ended => ParticipantState::Ended,
        }
    }
}

/// Who placed the participant's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    /// The participant dialled in.
    Inbound,
    /// The conference dialled the participant out (POST .../participants).
    Outbound,
}

impl From<Direction> for CallDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Inbound => CallDirection::Inbound,
            Direction::Outbound => CallDirection::Outbound,
        }
    }
}

/// A participant: one call leg in a conference. The first eight fields are the
/// reference's; the rest are ours.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Participant {
    /// Participant id (UUID-shaped), stable for the participant's lifetime.
    pub participantid: String,
    pub state: ParticipantState,
    /// Call-ID of the leg between the conference and the participant.
    pub callid: String,
    /// Conference side URI (same for every participant: the room's `confuri`).
    pub luri: String,
    /// Conference side tag.
    pub ltag: String,
    /// Participant side URI.
    pub ruri: String,
    /// Participant side tag (empty until a dial-out is answered).
    pub rtag: String,
    /// (ours) The conference this participant is in.
    pub confid: String,
    /// (ours) `inbound` (dialled in) or `outbound` (dialled out over the API).
    pub direction: CallDirection,
    /// (ours) Dialog id, a LOOKUP key.
    pub dialogid: String,
    /// (ours) Id of the call (INVITE) that made the dialog, a LOOKUP key.
    pub inviteid: String,
    /// (ours) Others do not hear this participant.
    pub muted: bool,
    /// (ours) This participant hears nobody.
    pub deaf: bool,
    /// (ours) Gain on what the participant says, in dB (0: none).
    pub gain_in_db: f32,
    /// (ours) Gain on what the participant hears, in dB (0: none).
    pub gain_out_db: f32,
    /// (ours) Voice activity right now.
    pub talking: bool,
    /// (ours) Milliseconds since the epoch when the participant's INVITE was sent or received.
    pub joined_ms: u64,
    /// (ours) When the participant left, ms since the epoch; null while present.
    pub ended_ms: Option<u64>,
    /// (ours) SIP status that ended the leg (e.g. 487 after CANCEL), if any.
    pub end_status: Option<u16>,
    /// (ours) Why the leg ended, e.g. `BYE from participant`.
    pub end_reason: Option<String>,
}

impl Participant {
    /// Every field, for validating `filter` and `order`.
    pub const FIELDS: &'static [&'static str] = &[
        "participantid", "state", "callid", "luri", "ltag", "ruri", "rtag", "confid", "direction", "dialogid", "inviteid",
        "muted", "deaf", "gain_in_db", "gain_out_db", "talking", "joined_ms", "ended_ms", "end_status", "end_reason",
    ];
}

impl From<&ParticipantInfo> for Participant {
    fn from(p: &ParticipantInfo) -> Self {
        Participant {
            participantid: p.participantid.clone(),
            state: p.state.into(),
            callid: p.callid.clone(),
            luri: p.luri.clone(),
            ltag: p.ltag.clone(),
            ruri: p.ruri.clone(),
            rtag: p.rtag.clone(),
            confid: p.confid.clone(),
            direction: p.direction.into(),
            dialogid: p.dialogid.clone(),
            inviteid: p.inviteid.0.clone(),
            muted: p.muted,
            deaf: p.deaf,
            gain_in_db: p.gain_in_db,
            gain_out_db: p.gain_out_db,
            talking: p.talking,
            joined_ms: p.joined_ms,
            ended_ms: p.ended_ms,
            end_status: p.end_status,
            end_reason: p.end_reason.clone(),
        }
    }
}

/// Reply of DELETE on a conference.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfidReply {
    pub confid: String,
}

/// Reply of a dial-out and of a kick.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantRef {
    pub confid: String,
    pub participantid: String,
}

/// Reply of a list with `countonly=true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    pub count: usize,
}

/// Body of a dial-out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialOutBody {
    /// A SIP URI (`sip:bob@10.0.0.5:5070`, `<sip:bob@host>`, `bob@host`) or a number
    /// (digits, optional leading `+`, `*`, `#`; a JSON integer too). A directory user's
    /// extension, login or number rings that user's registered phone; other numbers go
    /// to the `[routing] gateway`. Exact syntax: [`crate::formats::dial_target`].
    #[schema(value_type = String, example = "2216")]
    #[serde(deserialize_with = "string_or_unsigned")]
    pub to: String,
}

/// A JSON string, or a whole JSON number from 0 to 2^64-1 as its decimal text.
fn string_or_unsigned<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => crate::formats::whole_u64(&n)
            .map(|u| u.to_string())
            .ok_or_else(|| D::Error::custom(format!("expected a string or an integer from 0 to 2^64-1, not {n}"))),
        other => Err(D::Error::custom(format!("expected a string or an integer from 0 to 2^64-1, not {other}"))),
    }
}

/// Body of PATCH on a participant (ours). At least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatchBody {
    /// true: nobody hears this participant; false: undo.
    pub muted: Option<bool>,
    /// true: this participant hears nobody; false: undo.
    pub deaf: Option<bool>,
    /// Gain on what the participant says, in dB from -24 to 24 (0: none): for a quiet
    /// or loud caller. Everyone hears the change.
    pub gain_in_db: Option<f32>,
    /// Gain on what the participant hears, in dB from -24 to 24 (0: none).
    pub gain_out_db: Option<f32>,
}

/// One who-hears-whom rule. `{"from":A,"to":B,"enabled":false}`: B no longer hears A.
/// `*` means every participant present when the rule is applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from": "e846809b-0180-4b7a-aebb-7cd30a921f58", "to": "*", "enabled": false}))]
pub struct TopologyRule {
    /// Speaker: a participant id or `*`.
    pub from: String,
    /// Listener: a participant id or `*`.
    pub to: String,
    pub enabled: bool,
}

impl From<engine::TopologyRule> for TopologyRule {
    fn from(r: engine::TopologyRule) -> Self {
        TopologyRule { from: r.from, to: r.to, enabled: r.enabled }
    }
}

impl From<TopologyRule> for engine::TopologyRule {
    fn from(r: TopologyRule) -> Self {
        engine::TopologyRule { from: r.from, to: r.to, enabled: r.enabled }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conference_ref_serializes_as_conference() {
        let info = RoomInfo {
            confid: "rCF-001-PhKjyX".into(),
            confnumber: "PhKjyX".into(),
            confroomnum: "9".into(),
            confuri: "<sip:conf-9@switchboard.local>".into(),
            site: "local".into(),
            startts: 1_572_033_454_296,
            domain: "sb.test".into(),
        };
        let owned = serde_json::to_string(&Conference::from(&info)).unwrap();
        assert_eq!(serde_json::to_string(&ConferenceRef(&info)).unwrap(), owned, "same fields, same order");
        let list = [Arc::new(info.clone()), Arc::new(info)];
        assert_eq!(serde_json::to_string(&ConferenceListRef(&list)).unwrap(), format!("[{owned},{owned}]"));
    }
}
