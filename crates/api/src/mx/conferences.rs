//! Reference 001 §7 (`mxproxy.md` §7): the user's scheduled conferences.
//!
//! - `GET /conferences/info`: the conference number and the invitation templates;
//! - `GET /conferences`: the user's own (`null` when none, as MX);
//! - `POST /conferences`, `PUT /conferences/{id}`: book and replace one
//!   (`{"conference":{…}}`), `DELETE /conferences/{id}`: 204;
//! - `POST /conferences/{id}` `{"accessId":n}`: MX sends the path id as a *call id*:
//!   the user's live call joins the conference with that access id (204).
//!
//! The store keeps them ([`store::conferences`], which validates: its text is the 400's)
//! and they travel in the directory snapshot, so every write pokes the shell to reload
//! it at once. Another user's conference is 404 like one that never was; booking for
//! another `ownerId` is 403.
//!
//! Items carry MX's quirks: `"Id"` is a string with a capital I, `ownerId` the user's
//! id (the `jid` of `GET /auth`) as a JSON number, `description` omitted when empty.

use super::call_control::{engine, live_call_of, no_content, parse_id, scheduled_error, user_of};
use super::{bearer_claims, mx_json, parse_body, MxError, MxState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use engine::handle::CallOp;
use engine::schedule::ScheduledConference;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use store::{ConferenceInput, StoreError};

/// What `GET /conferences/info` shows (`[mx.conferences]`, `[ivr] conference_number`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceInfo {
    /// The conference access number (`[ivr] conference_number`).
    pub ext: String,
    /// The number outside callers dial for it.
    pub did: String,
    /// Invitation templates (`%Date%`, `%Time%`, `%Subject%`, `%ID%`, `%DID%`, …), for
    /// the app to fill in.
    pub subject: String,
    pub body: String,
    pub meeting: String,
}

/// The invitation subject of reference 001's sample.
pub const DEFAULT_SUBJECT: &str = "Conference Call: %Date% @ %Time% - %Subject%";
/// The invitation text of reference 001's sample.
pub const DEFAULT_BODY: &str = "Please join my conference call\n\nSubject: %Subject%\n\nDate: %Date%\nTime: %Time% %Timezone%\nDuration: %Duration%\n\nAt the scheduled date and time please call - %DID%\nInternal participants please call - %Extension%-%ID%\n\nIf prompted, enter the following Conference ID: %ID%, followed by # key.";
/// The web-meeting line of reference 001's sample.
pub const DEFAULT_MEETING: &str = "View the MXmeeting web conference session at: http://<insert your domain name here>/join?id=%ID%";

impl Default for ConferenceInfo {
    fn default() -> Self {
        ConferenceInfo {
            ext: "conference".into(),
            did: String::new(),
            subject: DEFAULT_SUBJECT.into(),
            body: DEFAULT_BODY.into(),
            meeting: DEFAULT_MEETING.into(),
        }
    }
}

fn store(state: &MxState) -> Result<&store::Store, MxError> {
    state.store.as_ref().ok_or_else(|| MxError::unavailable("no store behind the MX conference endpoints".into()))
}

/// A store error as MX shows it: refusals are 400 with the store's text, a missing
/// conference 404, the rest 503.
fn store_error(e: StoreError) -> MxError {
    match e {
        StoreError::Invalid(t) | StoreError::AlreadyExists(t) | StoreError::InUse(t) => MxError::bad_request(t),
        StoreError::NotFound(_) => MxError::not_found(),
        other => MxError::unavailable(other.to_string()),
    }
}

/// One conference as MX lists it, in MX's field order.
pub(super) fn item(c: &ScheduledConference) -> Value {
    let mut m = Map::new();
    m.insert("Id".into(), json!(c.id.to_string()));
    m.insert("ownerId".into(), json!(c.owner_id));
    m.insert("name".into(), json!(c.name));
    m.insert("accessId".into(), json!(c.access_id));
    if let Some(d) = c.description.as_deref().filter(|d| !d.is_empty()) {
        m.insert("description".into(), json!(d));
    }
    m.insert("type".into(), json!(c.kind.as_str()));
    m.insert("startDate".into(), json!(c.start_s));
    m.insert("duration".into(), json!(c.duration_min));
    m.insert("waitForOwner".into(), json!(c.wait_for_owner));
    m.insert("delOnOwnerLeave".into(), json!(c.del_on_owner_leave));
    m.insert("ws".into(), json!(c.ws));
    m.insert("wsType".into(), json!(c.ws_type));
    Value::Object(m)
}

/// `GET /conferences/info`.
pub(super) async fn info(State(state): State<MxState>, headers: HeaderMap) -> Result<Response, MxError> {
    bearer_claims(&state, &headers)?;
    let i = &state.conferences;
    Ok(mx_json(StatusCode::OK, &json!({ "conferences": { "ext": i.ext, "did": i.did, "subject": i.subject, "body": i.body, "meeting": i.meeting } })))
}

/// `GET /conferences`: the user's, oldest first; `null` when none.
pub(super) async fn list(State(state): State<MxState>, headers: HeaderMap) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let list = store(&state)?.conferences_of(claims.sb_uid).await.map_err(store_error)?;
    let list = if list.is_empty() { Value::Null } else { Value::Array(list.iter().map(item).collect()) };
    Ok(mx_json(StatusCode::OK, &json!({ "conferences": list })))
}

/// The body of `POST /conferences` and `PUT /conferences/{id}` (MX's sample; `Id` is
/// ignored: the store numbers them, and `PUT` takes it from the path). Absent and
/// `null` fields are empty; the store fills the defaults and refuses what is wrong.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Body {
    owner_id: Option<i64>,
    name: Option<String>,
    description: Option<String>,
    access_id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    start_date: Option<i64>,
    duration: Option<i64>,
    wait_for_owner: Option<bool>,
    del_on_owner_leave: Option<bool>,
    ws: Option<String>,
    ws_type: Option<String>,
}

impl Body {
    /// The store's input for `user`: `ownerId` 0 or absent is the user; another
    /// user's is 403.
    fn input(self, user: i64) -> Result<ConferenceInput, MxError> {
        match self.owner_id {
            None | Some(0) => {}
            Some(id) if id == user => {}
            Some(_) => return Err(MxError::forbidden("forbidden")),
        }
        Ok(ConferenceInput {
            owner_id: user,
            name: self.name.unwrap_or_default(),
            description: self.description,
            access_id: self.access_id.unwrap_or(0),
            kind: self.kind.unwrap_or_default(),
            start_s: self.start_date.unwrap_or(0),
            duration_min: self.duration.unwrap_or(0),
            wait_for_owner: self.wait_for_owner.unwrap_or(false),
            del_on_owner_leave: self.del_on_owner_leave.unwrap_or(false),
            ws: self.ws.unwrap_or_default(),
            ws_type: self.ws_type.unwrap_or_default(),
        })
    }
}

/// `POST /conferences`: books one for the user → `{"conference":{…}}`.
pub(super) async fn create(State(state): State<MxState>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let input = parse_body::<Body>(&headers, &body)?.input(claims.sb_uid)?;
    let conf = store(&state)?.create_conference(&input).await.map_err(store_error)?;
    state.directory_changed();
    tracing::info!(owner = claims.sb_uid, id = conf.id, access_id = conf.access_id, "scheduled conference booked");
    Ok(mx_json(StatusCode::OK, &json!({ "conference": item(&conf) })))
}

/// The store id of `{id}`; anything else is not found.
fn conference_id(raw: &str) -> Result<i64, MxError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(MxError::not_found)
}

/// `PUT /conferences/{id}`: replaces the user's conference → `{"conference":{…}}`.
pub(super) async fn update(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let id = conference_id(&id)?;
    let b: Body = parse_body(&headers, &body)?;
    let db = store(&state)?;
    // Not the user's: 404 before anything about the body.
    db.conference(id).await.map_err(store_error)?.filter(|c| c.owner_id == claims.sb_uid).ok_or_else(MxError::not_found)?;
    let conf = db.update_conference(id, &b.input(claims.sb_uid)?).await.map_err(store_error)?;
    state.directory_changed();
    Ok(mx_json(StatusCode::OK, &json!({ "conference": item(&conf) })))
}

/// `DELETE /conferences/{id}` → 204.
pub(super) async fn delete(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let id = conference_id(&id)?;
    store(&state)?.delete_conference(claims.sb_uid, id).await.map_err(store_error)?;
    state.directory_changed();
    Ok(no_content())
}

#[derive(Deserialize, Default)]
struct JoinBody {
    #[serde(default, rename = "accessId")]
    access_id: Option<i64>,
}

/// `POST /conferences/{id}` `{"accessId":n}`: the user's live call `{id}` joins the
/// scheduled conference `n` (204). Outside its window: 403 with the reason; no such
/// conference: 404 `conference not found`.
pub(super) async fn join(State(state): State<MxState>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Result<Response, MxError> {
    let (_, user, _) = user_of(&state, &headers)?;
    let call = parse_id(&id)?;
    let b: JoinBody = parse_body(&headers, &body)?;
    let access_id = match b.access_id {
        Some(a) if a > 0 => a as u64,
        _ => return Err(MxError::bad_request("bad request: no accessId")),
    };
    live_call_of(&state, &user, call).await?;
    engine(&state)?.call_control(call, CallOp::JoinScheduled { access_id, user: user.id }).await.map_err(scheduled_error)?;
    Ok(no_content())
}
