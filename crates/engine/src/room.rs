//! Conference rooms and their participants, as the APIs see them.
//!
//! A room is created by the first INVITE to `conf-<room>` (or the feature-code prefix
//! plus the room number) and ends when its last participant leaves; or it is opened
//! by an API ([`crate::EngineHandle::open_room`]), and then it exists with nobody in
//! it until it is ended. Each participant
//! is one leg; its media joins the room's mix in the media engine. Who hears whom is
//! the room's topology: an ordered list of `{from, to, enabled}` rules whose first,
//! fixed rule is "everyone hears everyone"; `*` in a rule means "every participant
//! present when the rule is applied", so later joiners hear and are heard by all.

use crate::leg::{Direction, LegId, LegState};
use serde::{Deserialize, Serialize};

/// A room as listed by the conference API (reference 000 field names).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoomInfo {
    /// `rCF-<node>-<confnumber>`: unique while the server runs.
    pub confid: String,
    /// The six-character code inside `confid`.
    pub confnumber: String,
    /// The room number dialled after the feature-code prefix (or in `conf-<n>`).
    pub confroomnum: String,
    /// `<sip:conf-<n>@<domain>>`.
    pub confuri: String,
    pub site: String,
    /// Milliseconds since the epoch when the INVITE that started the room arrived.
    pub startts: u64,
    /// The domain (tenant) the room belongs to, lowercase: the Request-URI host of the
    /// INVITE that started it when that names a domain, else the server's own domain.
    /// Room numbers are per domain; no API principal of another domain sees the room.
    pub domain: String,
}

/// A participant: one leg in a room.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParticipantInfo {
    /// Stable for the participant's lifetime (UUID-shaped).
    pub participantid: String,
    pub confid: String,
    pub state: LegState,
    /// Call-ID of the leg between the room and the participant.
    pub callid: String,
    /// Room side URI and tag.
    pub luri: String,
    pub ltag: String,
    /// Participant side URI and tag (rtag empty until the far end answers).
    pub ruri: String,
    pub rtag: String,
    /// `inbound` (dialled in) or `outbound` (dialled out by the API).
    pub direction: Direction,
    /// Our dialog identifier (`<callid>;<ltag>;<rtag>` style key is `dialogid`).
    pub dialogid: String,
    /// The leg id created when the INVITE was sent or received.
    pub inviteid: LegId,
    pub muted: bool,
    pub deaf: bool,
    /// Gain on what the participant says and on what it hears, dB (0 = none).
    pub gain_in_db: f32,
    pub gain_out_db: f32,
    pub talking: bool,
    /// Milliseconds since the epoch.
    pub joined_ms: u64,
    pub ended_ms: Option<u64>,
    pub end_status: Option<u16>,
    pub end_reason: Option<String>,
    /// Dial-outs: the last response to the INVITE, e.g. `180` `Ringing`, `200` `OK`,
    /// `486` `Busy Here` (None before any, and for dial-ins). Not on the REST wire.
    #[serde(skip)]
    pub progress_status: Option<u16>,
    #[serde(skip)]
    pub progress_reason: Option<String>,
}

/// One who-hears-whom rule: `from` is the speaker, `to` the listener; each is a
/// participant id or `*`. `{"from":A,"to":B,"enabled":false}` means B no longer hears A.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TopologyRule {
    pub from: String,
    pub to: String,
    pub enabled: bool,
}

impl TopologyRule {
    /// The fixed first rule.
    pub fn everyone() -> TopologyRule {
        TopologyRule { from: "*".into(), to: "*".into(), enabled: true }
    }
}

/// A room together with its participants (live and recently ended), in join order:
/// what the APIs list, filter and look up from.
#[derive(Debug, Clone, Serialize)]
pub struct RoomSnapshot {
    pub room: RoomInfo,
    pub participants: Vec<ParticipantInfo>,
}

/// A prompt to play to a room or a participant: a prompt of the set by name, tones
/// (`440+480/2000,0/4000`), or both one after the other.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PromptRequest {
    pub prompt: Option<String>,
    pub tones: Option<String>,
    #[serde(default)]
    pub repeat: bool,
    /// A digit from the participant stops it (participant prompts only).
    #[serde(default)]
    pub barge_in: bool,
}

/// Whether a tone sequence can be played (see [`PromptRequest::tones`]).
pub fn check_tones(tones: &str) -> Result<(), String> {
    media::player::parse_tones(tones).map(|_| ())
}

/// One file of a room recording (relative to the data dir).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordingFile {
    /// None: the room's mix; else that participant's own voice.
    pub participantid: Option<String>,
    pub file: String,
}

/// A room's recording.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoomRecordingInfo {
    pub confid: String,
    /// The recording's number in its room (files are `<number>-mix.wav`, ...).
    pub number: u32,
    pub started_ms: u64,
    pub paused: bool,
    /// One file per participant besides the mix.
    pub tracks: bool,
    pub files: Vec<RecordingFile>,
    pub domain: String,
}

/// Most gain a participant may get either way, in dB.
pub const MAX_GAIN_DB: f32 = media::engine::MAX_GAIN_DB;

/// Changes to one participant besides topology.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatch {
    pub muted: Option<bool>,
    pub deaf: Option<bool>,
    /// dB, within ±[`media::engine::MAX_GAIN_DB`]; 0 = none.
    #[serde(default)]
    pub gain_in_db: Option<f32>,
    #[serde(default)]
    pub gain_out_db: Option<f32>,
}
