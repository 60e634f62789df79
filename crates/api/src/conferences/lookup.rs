//! LOOKUP: which conferences does a key point at? And the "from a script" mode: a
//! `{confid}` path segment may be a lookup expression instead of a confid.
//!
//! Keys, highest priority first (reference 000): dialog keys `dialogid`, `inviteid`,
//! `callid`, `uri`, `from` (+ `mode`), `sipuserid`, `sipuserlogin`,
//! `sipuserphonenumber`, `userid`; then direct keys `confid`, `confuri`, `confroomnum`,
//! `confnumber`. The keys given are tried in that order and the first that matches
//! anything decides the answer, so `{"callid":"x","confroomnum":"9"}` finds the room of
//! call `x` if there is one and room 9 otherwise.
//!
//! Dialog keys match the room's live participants (ended ones are ignored): `dialogid`,
//! `inviteid` and `callid` exactly; `uri` as a SIP URI against the participant's `ruri`
//! (scheme `sip`/`sips` alike, host case-insensitive, port only if the key has one).
//! User keys resolve through the directory, in the room's domain (so never across
//! domains): `sipuserid` and `userid` name a user by id (`userid` also takes a login),
//! `sipuserlogin` by login, `sipuserphonenumber` by extension or number (DID, cell,
//! home), `from` by number with `mode` `number`, by login with `mode` `sipuser`, and by
//! either without `mode`. A room matches when a live participant's `ruri` user part is
//! one of that user's names (login, extension, numbers; numbers without punctuation).
//! A value that names no user of the domain matches the `ruri` user part as it is, so
//! callers from outside the directory (a number dialled out to) are still found.
//!
//! Path expressions ("from a script"): a `{confid}` segment that contains `=` is
//! `key=value` with one of the same keys (`from` may carry `&mode=number|sipuser`,
//! in either order), e.g. `/rest/v1/uc/conferences/callid=abc123@host/participants` or
//! `.../from=2216&mode=number/topology`; percent-encode `/`, `<`, `>`, `?`, `#` and `%`
//! in values; values cannot contain `&`. The first matching room (oldest first) is used.
//! The exact syntax is [`formats::conference_ref`], also published in `/openapi.json`.
//!
//! Values are checked as `/openapi.json` describes them: strings or numbers, except
//! `uri`/`confuri` ([`formats::lookup_uri`], strings only) and `mode` (`number` or
//! `sipuser`, never null); `mode` needs `from`, and with `mode` `number`, `from` must be
//! a number ([`formats::FROM_NUMBER`], or a JSON integer).

use crate::auth::Scope;
use crate::error::ApiError;
use crate::formats;
use crate::AppState;
use engine::users::{DirectorySnapshot, User};
use engine::{LegState, ParticipantInfo, RoomSnapshot};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sip::Uri;
use utoipa::ToSchema;

/// Body of LOOKUP (and POST .../lookup): one or more keys. Values may be strings or numbers.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sipuserphonenumber": "12"}))]
pub struct LookupBody {
    /// Dialog id (`dialogid` of a participant).
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub dialogid: Option<String>,
    /// Id of the call (INVITE) that made the dialog (`inviteid` of a participant).
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub inviteid: Option<String>,
    /// Call-ID of a participant's leg.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub callid: Option<String>,
    /// A participant's SIP URI, `<sip:user@domain>`.
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    pub uri: Option<String>,
    /// A participant's number or SIP login (user part of its URI until the directory exists).
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub from: Option<String>,
    /// With `from` only: `number` or `sipuser`.
    #[serde(default, deserialize_with = "opt_mode")]
    pub mode: Option<FromMode>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub sipuserid: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub sipuserlogin: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub sipuserphonenumber: Option<String>,
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub userid: Option<String>,
    /// Conference id.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub confid: Option<String>,
    /// Conference URI, `<sip:conf-9@domain>`.
    #[serde(default, deserialize_with = "opt_string")]
    #[schema(value_type = Option<String>)]
    pub confuri: Option<String>,
    /// Room number.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub confroomnum: Option<String>,
    /// The short code inside `confid`.
    #[serde(default, deserialize_with = "opt_string_or_number")]
    #[schema(value_type = Option<String>)]
    pub confnumber: Option<String>,
}

/// How `from` is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FromMode {
    /// A phone number.
    Number,
    /// A SIP user login.
    Sipuser,
}

/// How a user key names its user (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// `sipuserid`.
    Id(String),
    /// `userid`: an id, else a login.
    IdOrLogin(String),
    /// `sipuserlogin`, `from` with `mode` `sipuser`.
    Login(String),
    /// `sipuserphonenumber`, `from` with `mode` `number`: extension or number.
    Number(String),
    /// `from` without `mode`: login, extension or number.
    Any(String),
}

impl UserKey {
    fn value(&self) -> &str {
        match self {
            UserKey::Id(v) | UserKey::IdOrLogin(v) | UserKey::Login(v) | UserKey::Number(v) | UserKey::Any(v) => v,
        }
    }

    /// The user this names in the domain called `domain`, if any.
    fn resolve<'d>(&self, dir: &'d DirectorySnapshot, domain: &str) -> Option<&'d User> {
        let d = dir.domain_by_name(domain)?.id;
        let by_id = |v: &str| v.parse().ok().and_then(|id| dir.user(id)).filter(|u| u.domain_id == d);
        let by_login = |v: &str| dir.user_by_key(d, v).filter(|u| u.login == v);
        match self {
            UserKey::Id(v) => by_id(v),
            UserKey::IdOrLogin(v) => by_id(v).or_else(|| by_login(v)),
            UserKey::Login(v) => by_login(v),
            UserKey::Number(v) => dir.users_of(d).find(|u| user_numbers(u).any(|n| normalize(n) == normalize(v))),
            UserKey::Any(v) => dir.user_by_key(d, v),
        }
    }

    /// The URI user parts that mean this user in the domain called `domain`.
    fn names(&self, dir: &DirectorySnapshot, domain: &str) -> Vec<String> {
        match self.resolve(dir, domain) {
            Some(u) => std::iter::once(u.login.as_str()).chain(user_numbers(u)).map(normalize).collect(),
            None => vec![normalize(self.value())],
        }
    }
}

/// A user's extension and phone numbers.
fn user_numbers(u: &User) -> impl Iterator<Item = &str> {
    [u.ext.as_deref(), u.did.as_deref(), u.cell_phone.as_deref(), u.home_phone.as_deref()].into_iter().flatten()
}

/// Numbers compare without the punctuation people write them with.
fn normalize(k: &str) -> String {
    let compact: String = k.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    if compact.is_empty() {
        k.to_owned()
    } else {
        compact
    }
}

/// One key, in priority order (the derive order is the priority order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupKey {
    DialogId(String),
    InviteId(String),
    CallId(String),
    Uri(Uri),
    /// `from` (+ `mode`), `sipuserid`, `sipuserlogin`, `sipuserphonenumber`, `userid`.
    User(UserKey),
    ConfId(String),
    ConfUri(Uri),
    ConfRoomNum(String),
    ConfNumber(String),
}

impl LookupBody {
    /// The keys given, highest priority first; 400 if none or if one is malformed.
    pub fn keys(self) -> Result<Vec<LookupKey>, ApiError> {
        if self.mode.is_some() && self.from.is_none() {
            return Err(ApiError::bad_request("`mode` is only meaningful together with `from`"));
        }
        if let (Some(FromMode::Number), Some(from)) = (self.mode, &self.from) {
            if !is_number(from) {
                return Err(ApiError::bad_request(format!("`from` `{from}` is not a number (mode is `number`)")));
            }
        }
        let keys: Vec<LookupKey> = [
            self.dialogid.map(LookupKey::DialogId),
            self.inviteid.map(LookupKey::InviteId),
            self.callid.map(LookupKey::CallId),
            self.uri.map(|u| parse_sip_uri("uri", &u).map(LookupKey::Uri)).transpose()?,
            self.from.map(|v| {
                LookupKey::User(match self.mode {
                    Some(FromMode::Number) => UserKey::Number(v),
                    Some(FromMode::Sipuser) => UserKey::Login(v),
                    None => UserKey::Any(v),
                })
            }),
            self.sipuserid.map(|v| LookupKey::User(UserKey::Id(v))),
            self.sipuserlogin.map(|v| LookupKey::User(UserKey::Login(v))),
            self.sipuserphonenumber.map(|v| LookupKey::User(UserKey::Number(v))),
            self.userid.map(|v| LookupKey::User(UserKey::IdOrLogin(v))),
            self.confid.map(LookupKey::ConfId),
            self.confuri.map(|u| parse_sip_uri("confuri", &u).map(LookupKey::ConfUri)).transpose()?,
            self.confroomnum.map(LookupKey::ConfRoomNum),
            self.confnumber.map(LookupKey::ConfNumber),
        ]
        .into_iter()
        .flatten()
        .collect();
        if keys.is_empty() {
            return Err(ApiError::bad_request(
                "no lookup key: give one of dialogid, inviteid, callid, uri, from, sipuserid, sipuserlogin, \
                 sipuserphonenumber, userid, confid, confuri, confroomnum, confnumber",
            ));
        }
        Ok(keys)
    }
}

impl LookupKey {
    fn matches(&self, room: &RoomSnapshot, dir: &DirectorySnapshot) -> bool {
        let live = || room.participants.iter().filter(|p| p.state != LegState::Ended);
        let any = |f: &dyn Fn(&ParticipantInfo) -> bool| live().any(|p| f(p));
        match self {
            LookupKey::DialogId(v) => any(&|p| p.dialogid == *v),
            LookupKey::InviteId(v) => any(&|p| p.inviteid.0 == *v),
            LookupKey::CallId(v) => any(&|p| p.callid == *v),
            LookupKey::Uri(want) => any(&|p| uri_matches(&p.ruri, want)),
            LookupKey::User(k) => {
                let names = k.names(dir, &room.room.domain);
                any(&|p| user_part(&p.ruri).is_some_and(|u| names.contains(&normalize(&u))))
            }
            LookupKey::ConfId(v) => room.room.confid == *v,
            LookupKey::ConfUri(want) => uri_matches(&room.room.confuri, want),
            LookupKey::ConfRoomNum(v) => room.room.confroomnum == *v,
            LookupKey::ConfNumber(v) => room.room.confnumber == *v,
        }
    }
}

/// Rooms the keys point at: the matches of the highest-priority key that matches any.
/// `rooms` are the ones the caller may see; user keys resolve in each room's domain.
pub fn find<'a>(keys: &[LookupKey], rooms: &'a [RoomSnapshot], dir: &DirectorySnapshot) -> Vec<&'a RoomSnapshot> {
    keys.iter()
        .map(|k| rooms.iter().filter(|r| k.matches(r, dir)).collect::<Vec<_>>())
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

/// What a `{confid}` path segment names: a confid, or a lookup expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfRef {
    Id(String),
    Lookup(Vec<LookupKey>),
}

impl ConfRef {
    /// A segment with `=` is a lookup expression `key=value` (`from=...&mode=...`).
    pub fn parse(segment: &str) -> Result<ConfRef, ApiError> {
        if !segment.contains('=') {
            return Ok(ConfRef::Id(segment.to_owned()));
        }
        if !formats::matches(&formats::conference_ref(), segment) {
            // the precise complaint where there is one (unknown key, bad URI...), else the syntax
            Self::parse_pairs(segment)?;
            return Err(ApiError::bad_request(format!(
                "lookup expression `{segment}` must be one key=value (from=...&mode=number|sipuser), \
                 with a key of dialogid, inviteid, callid, uri, from, sipuserid, sipuserlogin, sipuserphonenumber, \
                 userid, confid, confuri, confroomnum, confnumber and no & in the value"
            )));
        }
        Self::parse_pairs(segment)
    }

    fn parse_pairs(segment: &str) -> Result<ConfRef, ApiError> {
        let mut map = serde_json::Map::new();
        for pair in segment.split('&') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ApiError::bad_request(format!("lookup expression `{segment}`: `{pair}` is not key=value")))?;
            if map.insert(k.to_owned(), Value::String(v.to_owned())).is_some() {
                return Err(ApiError::bad_request(format!("lookup expression `{segment}`: key `{k}` given twice")));
            }
        }
        let body: LookupBody = serde_json::from_value(Value::Object(map))
            .map_err(|e| ApiError::bad_request(format!("lookup expression `{segment}`: {e}")))?;
        Ok(ConfRef::Lookup(body.keys()?))
    }

    /// The confid this names, among the rooms `scope` sees (another domain's room is
    /// not found); a lookup runs over the current rooms and the first match wins.
    pub async fn confid(&self, st: &AppState, scope: &Scope) -> Result<String, ApiError> {
        match self {
            ConfRef::Id(id) if scope.is_superuser() => Ok(id.clone()),
            // an admin's rooms are told by their domain alone: the published list will do
            ConfRef::Id(id) if !scope.is_user() => {
                let list = st.engine.room_list();
                list.get(id).filter(|r| scope.sees_room_info(r)).map(|r| r.confid.clone()).ok_or_else(ApiError::conference_not_found)
            }
            _ => Ok(self.snapshot(st, scope).await?.room.confid),
        }
    }

    /// The room this names, with its participants (live and recently ended), among
    /// the rooms `scope` sees.
    pub async fn snapshot(&self, st: &AppState, scope: &Scope) -> Result<RoomSnapshot, ApiError> {
        match self {
            ConfRef::Id(id) => Some(st.engine.room(id).await?).filter(|r| scope.sees_room(r)).ok_or_else(ApiError::conference_not_found),
            ConfRef::Lookup(keys) => {
                let rooms: Vec<RoomSnapshot> = st.engine.rooms().await?.into_iter().filter(|r| scope.sees_room(r)).collect();
                let first = find(keys, &rooms, &st.directory_now()).first().map(|r| r.room.confid.clone()).ok_or_else(ApiError::conference_not_found)?;
                Ok(rooms.into_iter().find(|r| r.room.confid == first).expect("found above"))
            }
        }
    }
}

/// Numbers as dialled: digits with an optional leading `+`, and `*`/`#`.
pub fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// Parses `<sip:u@h>`, `"Name" <sip:u@h>;tag=x`, `sip:u@h`, `tel:+123` or bare `u@h`.
pub fn parse_loose_uri(s: &str) -> Option<Uri> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let has_scheme = ["sip:", "sips:", "tel:"].iter().any(|p| lower.starts_with(p));
    if has_scheme {
        return sip::parse::parse_uri(s).ok();
    }
    if s.starts_with('<') || s.starts_with('"') || s.contains('<') {
        return sip::parse::parse_name_addr(s).ok().map(|na| na.uri);
    }
    if s.contains('@') {
        return sip::parse::parse_uri(&format!("sip:{s}")).ok();
    }
    None
}

fn parse_sip_uri(key: &str, s: &str) -> Result<Uri, ApiError> {
    formats::matches(&formats::lookup_uri(), s)
        .then(|| parse_loose_uri(s))
        .flatten()
        .ok_or_else(|| ApiError::bad_request(format!("`{key}` `{s}` is not a SIP URI (sip:user@host, <sip:user@host:port>, user@host)")))
}

fn user_part(uri: &str) -> Option<String> {
    parse_loose_uri(uri)?.user
}

/// `have` (as the engine prints it) is the URI `want` names: same user and host, port
/// only if `want` gives one; `sip` and `sips` alike.
fn uri_matches(have: &str, want: &Uri) -> bool {
    let Some(have) = parse_loose_uri(have) else { return false };
    have.user == want.user && have.host.eq_ignore_ascii_case(&want.host) && (want.port.is_none() || have.port == want.port)
}

/// Accepts a JSON string or number as a string (`{"confroomnum": 9}` is fine).
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(formats::number_text(&n)),
        other => Err(D::Error::custom(format!("expected a string or a number, not {other}"))),
    }
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string_or_number(d).map(Some)
}

/// A key given must be a string (`uri`, `confuri`): not a number, not null.
fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(Some(s)),
        other => Err(D::Error::custom(format!("expected a string, not {other}"))),
    }
}

/// `mode`, when given, is `number` or `sipuser`; null is refused like for every other key.
fn opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FromMode>, D::Error> {
    FromMode::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Direction, LegId, RoomInfo};

    fn participant(confid: &str, n: u32, user: &str, state: LegState) -> ParticipantInfo {
        ParticipantInfo {
            participantid: format!("p{n}"),
            confid: confid.into(),
            state,
            callid: format!("call{n}@host"),
            luri: "<sip:conf-9@sb.test>".into(),
            ltag: format!("lt{n}"),
            ruri: format!("<sip:{user}@10.0.0.{n}:5060>"),
            rtag: format!("rt{n}"),
            direction: Direction::Inbound,
            dialogid: format!("dlg{n}"),
            inviteid: LegId(format!("inv{n}")),
            muted: false,
            deaf: false,
            gain_in_db: 0.0,
            gain_out_db: 0.0,
            talking: false,
            joined_ms: 1000 + n as u64,
            ended_ms: None,
            end_status: None,
            end_reason: None,
            progress_status: None,
            progress_reason: None,
        }
    }

    fn room(confid: &str, roomnum: &str, participants: Vec<ParticipantInfo>) -> RoomSnapshot {
        RoomSnapshot {
            room: RoomInfo {
                confid: confid.into(),
                confnumber: confid.rsplit('-').next().unwrap().into(),
                confroomnum: roomnum.into(),
                confuri: format!("<sip:conf-{roomnum}@sb.test>"),
                site: "sb.test".into(),
                startts: 1,
                domain: "sb.test".into(),
            },
            participants,
        }
    }

    /// sb.test has carol (id 7, ext 3044, cell +1 555-0100), who dialled in from her
    /// cell phone; other.test has a carol too, whose id must not find sb.test's rooms.
    fn directory() -> DirectorySnapshot {
        use engine::users::{Domain, User};
        let domain = |id, name: &str| Domain { id, name: name.into(), aliases: vec![], realm: name.into(), enabled: true };
        let users = vec![
            User { id: 7, domain_id: 1, login: "carol".into(), ext: Some("3044".into()), cell_phone: Some("+1 555-0100".into()), enabled: true, ..Default::default() },
            User { id: 8, domain_id: 2, login: "carol".into(), ext: Some("12".into()), enabled: true, ..Default::default() },
        ];
        DirectorySnapshot::new(1, vec![domain(1, "sb.test"), domain(2, "other.test")], users, vec![])
    }

    fn rooms() -> Vec<RoomSnapshot> {
        vec![
            room("rCF-001-AAAAAA", "9", vec![participant("rCF-001-AAAAAA", 1, "alice", LegState::Active), participant("rCF-001-AAAAAA", 2, "12", LegState::Active)]),
            room("rCF-001-BBBBBB", "10", vec![participant("rCF-001-BBBBBB", 3, "12", LegState::Ringing), participant("rCF-001-BBBBBB", 4, "bob", LegState::Ended)]),
            room("rCF-001-CCCCCC", "11", vec![participant("rCF-001-CCCCCC", 5, "+15550100", LegState::Active)]),
        ]
    }

    fn lookup(body: Value) -> Result<Vec<String>, ApiError> {
        let keys = serde_json::from_value::<LookupBody>(body).map_err(|e| ApiError::bad_request(e.to_string()))?.keys()?;
        let rooms = rooms();
        Ok(find(&keys, &rooms, &directory()).iter().map(|r| r.room.confid.clone()).collect())
    }

    #[test]
    fn each_key_finds_its_room() {
        let a = vec!["rCF-001-AAAAAA".to_string()];
        let b = vec!["rCF-001-BBBBBB".to_string()];
        assert_eq!(lookup(serde_json::json!({"dialogid": "dlg1"})).unwrap(), a);
        assert_eq!(lookup(serde_json::json!({"inviteid": "inv3"})).unwrap(), b);
        assert_eq!(lookup(serde_json::json!({"callid": "call2@host"})).unwrap(), a);
        assert_eq!(lookup(serde_json::json!({"uri": "<sip:alice@10.0.0.1>"})).unwrap(), a);
        assert_eq!(lookup(serde_json::json!({"uri": "sips:ALICE@10.0.0.1:5060"})).unwrap(), Vec::<String>::new());
        assert_eq!(lookup(serde_json::json!({"uri": "alice@10.0.0.1:5060"})).unwrap(), a);
        assert_eq!(lookup(serde_json::json!({"sipuserlogin": "alice"})).unwrap(), a);
        assert_eq!(lookup(serde_json::json!({"confid": "rCF-001-BBBBBB"})).unwrap(), b);
        assert_eq!(lookup(serde_json::json!({"confuri": "sip:conf-10@SB.test"})).unwrap(), b);
        assert_eq!(lookup(serde_json::json!({"confroomnum": 9})).unwrap(), a);
        assert_eq!(lookup(serde_json::json!({"confnumber": "BBBBBB"})).unwrap(), b);
    }

    #[test]
    fn a_user_in_several_rooms_finds_all_oldest_first() {
        let both = vec!["rCF-001-AAAAAA".to_string(), "rCF-001-BBBBBB".to_string()];
        assert_eq!(lookup(serde_json::json!({"sipuserphonenumber": "12"})).unwrap(), both);
        assert_eq!(lookup(serde_json::json!({"from": 12, "mode": "number"})).unwrap(), both);
    }

    #[test]
    fn user_keys_resolve_through_the_directory_in_the_rooms_domain() {
        let c = vec!["rCF-001-CCCCCC".to_string()];
        // carol is in room 11 by her cell number: every key that names her finds it
        assert_eq!(lookup(serde_json::json!({"sipuserid": 7})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"userid": "7"})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"userid": "carol"})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"sipuserlogin": "carol"})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"sipuserphonenumber": "3044"})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"sipuserphonenumber": "+1 555 0100"})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"from": "carol", "mode": "sipuser"})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"from": 3044, "mode": "number"})).unwrap(), c);
        assert_eq!(lookup(serde_json::json!({"from": "3044"})).unwrap(), c);
        // other.test's carol (id 8, ext 12) is not sb.test's: her id finds nothing, and
        // 12 is still the raw user part of the participants of rooms 9 and 10
        assert_eq!(lookup(serde_json::json!({"sipuserid": 8})).unwrap(), Vec::<String>::new());
        assert_eq!(lookup(serde_json::json!({"sipuserlogin": "carol", "mode": null})).unwrap_err().code, 1400);
        assert_eq!(lookup(serde_json::json!({"from": "3044", "mode": "sipuser"})).unwrap(), Vec::<String>::new(), "3044 is no login");
    }

    #[test]
    fn ended_participants_are_not_found() {
        assert_eq!(lookup(serde_json::json!({"callid": "call4@host"})).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn highest_priority_key_that_matches_wins() {
        // callid outranks confroomnum
        assert_eq!(lookup(serde_json::json!({"confroomnum": "9", "callid": "call3@host"})).unwrap(), vec!["rCF-001-BBBBBB"]);
        // a key that matches nothing falls through to the next
        assert_eq!(lookup(serde_json::json!({"callid": "nope", "confroomnum": "9"})).unwrap(), vec!["rCF-001-AAAAAA"]);
    }

    #[test]
    fn bad_bodies_are_400() {
        assert_eq!(lookup(serde_json::json!({})).unwrap_err().code, 1400);
        assert!(lookup(serde_json::json!({"colour": "red"})).unwrap_err().message.contains("unknown field `colour`"));
        assert!(lookup(serde_json::json!({"mode": "number"})).unwrap_err().message.contains("only meaningful together with `from`"));
        assert!(lookup(serde_json::json!({"from": "alice", "mode": "number"})).unwrap_err().message.contains("not a number"));
        assert!(lookup(serde_json::json!({"from": "12", "mode": "phone"})).unwrap_err().message.contains("unknown variant"));
        assert!(lookup(serde_json::json!({"callid": true})).unwrap_err().message.contains("string or a number"));
        assert!(lookup(serde_json::json!({"uri": "not a uri"})).unwrap_err().message.contains("not a SIP URI"));
        assert!(lookup(serde_json::json!({"uri": 12})).unwrap_err().message.contains("expected a string"));
        assert_eq!(lookup(serde_json::json!({"callid": "x", "mode": null})).unwrap_err().code, 1400, "null mode");
    }

    #[test]
    fn path_segments() {
        assert_eq!(ConfRef::parse("rCF-001-AAAAAA").unwrap(), ConfRef::Id("rCF-001-AAAAAA".into()));
        assert_eq!(ConfRef::parse("callid=a=b@host").unwrap(), ConfRef::Lookup(vec![LookupKey::CallId("a=b@host".into())]));
        assert_eq!(
            ConfRef::parse("from=2216&mode=number").unwrap(),
            ConfRef::Lookup(vec![LookupKey::User(UserKey::Number("2216".into()))])
        );
        assert!(ConfRef::parse("bogus=1").unwrap_err().message.contains("unknown field `bogus`"));
        assert!(ConfRef::parse("callid=1&callid=2").unwrap_err().message.contains("given twice"));
        assert!(ConfRef::parse("callid=1&x").unwrap_err().message.contains("not key=value"));
        assert!(ConfRef::parse("callid=1&confroomnum=2").unwrap_err().message.contains("must be one key=value"));
        assert!(ConfRef::parse("uri=bob").unwrap_err().message.contains("not a SIP URI"));
        assert_eq!(ConfRef::parse("mode=sipuser&from=bob").unwrap(), ConfRef::Lookup(vec![LookupKey::User(UserKey::Login("bob".into()))]));
    }
}
