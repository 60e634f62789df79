//! The conference management REST API (reference 000), under `/rest/v1/uc/conferences`.
//!
//! A thin dialect: each handler parses the request, calls the [`engine::EngineHandle`]
//! and renders the reply in the reference's field names ([`wire`]). Where things live:
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | routes; conferences: list, get, end; LOOKUP (custom verb and `POST .../lookup`) |
//! | [`list`] | `filter`/`mask`/`order`/`offset`/`limit`/`flat`/`countonly` |
//! | [`lookup`] | LOOKUP keys and the "from a script" `{confid}` = `key=value` expressions |
//! | [`participants`] | participants: list, dial-out, get, kick, mute/deaf |
//! | [`topology`] | who hears whom |
//! | [`media`] | (ours) prompts to a room or participant; room recordings and their files |
//! | [`wire`] | the JSON shapes (and their OpenAPI schemas) |
//!
//! Nothing is cached here: every request asks the engine, so a room or dial-out is
//! visible the instant the call that created it has returned (read-your-writes).
//!
//! LOOKUP is a custom HTTP verb, which axum's method filters cannot name: the
//! collection route's method fallback handles it (any other unknown method there is a
//! 405). Clients that cannot send custom verbs use `POST /rest/v1/uc/conferences/lookup`.
//! Other routes' wrong methods get the router-wide 405 (`error::method_not_allowed`).

pub mod list;
pub mod lookup;
pub mod media;
pub mod participants;
pub mod topology;
pub mod wire;

use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::body::Bytes;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use list::{render, ItemOptions, ItemQuery, ListOptions, ListQuery};
use lookup::{ConfRef, LookupBody};
use wire::{ConferenceListRef, ConferenceRef, ConfidReply, Conference};
use engine::RoomList;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const BASE: &str = "/rest/v1/uc/conferences";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(BASE, get(list_conferences).fallback(custom_verb))
        .route("/rest/v1/uc/conferences/lookup", post(lookup_post))
        .route("/rest/v1/uc/conferences/{confid}", get(get_conference).delete(end_conference))
        .route(
            "/rest/v1/uc/conferences/{confid}/participants",
            get(participants::list).post(participants::dial_out),
        )
        .route(
            "/rest/v1/uc/conferences/{confid}/participants/{participantid}",
            get(participants::get_one).delete(participants::kick).patch(participants::patch),
        )
        .route("/rest/v1/uc/conferences/{confid}/topology", get(topology::get).post(topology::change))
        .route("/rest/v1/uc/conferences/{confid}/prompts", post(media::play_room).delete(media::stop_room))
        .route(
            "/rest/v1/uc/conferences/{confid}/participants/{participantid}/prompts",
            post(media::play_participant).delete(media::stop_participant),
        )
        .route(
            "/rest/v1/uc/conferences/{confid}/recording",
            get(media::get_recording).post(media::start_recording).patch(media::pause_recording).delete(media::stop_recording),
        )
        .route("/v1/recordings", get(media::list_recordings))
        .route("/v1/recordings/{recording_id}", get(media::download_recording))
}

/// List active conferences.
#[utoipa::path(get, path = "/rest/v1/uc/conferences", operation_id = "list_conferences", tag = "conferences", params(ListQuery),
    responses(
        (status = 200, description = "Conferences, oldest first; with `countonly`, `{\"count\":N}`", body = [Conference]),
        (status = 400, description = "Bad list option (e.g. unknown field in `filter`) or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody)))]
pub async fn list_conferences(State(st): State<AppState>, scope: Scope, q: Result<Query<ListQuery>, QueryRejection>) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let opts = ListOptions::parse(&q, Conference::FIELDS)?;
    if scope.is_user() {
        // a user's rooms are the ones it takes part in: that needs the participants
        let rooms = st.engine.rooms().await?;
        let mine = rooms.iter().filter(|r| scope.sees_room(r)).map(|r| render(&Conference::from(&r.room)));
        return Ok(Json(opts.apply(mine.collect())).into_response());
    }
    let list = st.engine.room_list();
    if opts.is_identity() {
        let body = st.conference_list.get_or_render(&list, scope.domain.as_deref());
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let visible = list.rooms.iter().filter(|r| scope.sees_room_info(r));
    Ok(Json(opts.apply(visible.map(|r| render(&ConferenceRef(r))).collect())).into_response())
}

/// The JSON of the plain conference list (no options), rendered once per room-list
/// generation and domain: the list changes only when a room starts or ends, while
/// dashboards poll it many times a second, and rendering was most of the cost of
/// serving it. Keyed by domain name (None = every domain, the superuser's list).
#[derive(Clone, Default)]
pub struct ListCache(Arc<Mutex<HashMap<Option<String>, (u64, Bytes)>>>);

impl ListCache {
    fn get_or_render(&self, list: &RoomList, domain: Option<&str>) -> Bytes {
        let key = domain.map(str::to_owned);
        if let Some((generation, body)) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if *generation == list.generation {
                return body.clone();
            }
        }
        let rendered = match domain {
            None => serde_json::to_vec(&ConferenceListRef(&list.rooms)),
            Some(d) => {
                let mine: Vec<Arc<engine::RoomInfo>> = list.rooms.iter().filter(|r| r.domain == d).cloned().collect();
                serde_json::to_vec(&ConferenceListRef(&mine))
            }
        };
        // Rendering a list of plain structs cannot fail.
        let body = Bytes::from(rendered.unwrap_or_else(|_| b"[]".to_vec()));
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // stale generations of every domain go at once (domains are few)
        map.retain(|_, (g, _)| *g == list.generation);
        map.insert(key, (list.generation, body.clone()));
        body
    }
}

/// `LOOKUP /rest/v1/uc/conferences` (and a 405 for any other unrouted method there).
async fn custom_verb(State(st): State<AppState>, scope: Scope, method: Method, body: Result<Json<LookupBody>, JsonRejection>) -> Response {
    if method.as_str() != "LOOKUP" {
        // axum's `Allow` (GET,HEAD) leaves LOOKUP out, as the OpenAPI description must
        return ApiError::method_not_allowed(method.as_str()).into_response();
    }
    lookup_post(State(st), scope, body).await.into_response()
}

/// Find conferences by key (LOOKUP).
///
/// The reference's `LOOKUP /rest/v1/uc/conferences` with a JSON body is served as is;
/// this `POST /rest/v1/uc/conferences/lookup` is the same for clients that cannot send
/// a custom verb. Keys are tried in priority order (dialogid, inviteid, callid, uri,
/// from (+mode), sipuserid, sipuserlogin, sipuserphonenumber, userid, confid, confuri,
/// confroomnum, confnumber); the first key that matches decides. Dialog and user keys
/// match live participants (user keys: the user part of their URI, until the directory exists).
#[utoipa::path(post, path = "/rest/v1/uc/conferences/lookup", operation_id = "lookup_conferences", tag = "conferences", request_body = LookupBody,
    responses(
        (status = 200, description = "Matching confids, oldest conference first", body = [String],
            example = json!(["rCF-001-PhKjyX", "rCF-001-Sglne4"])),
        (status = 400, description = "Bad JSON, unknown key, no key, a value of the wrong type or format, `mode` without `from`, or `from` not a number with `mode` `number`", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn lookup_post(State(st): State<AppState>, scope: Scope, body: Result<Json<LookupBody>, JsonRejection>) -> Result<Json<Vec<String>>, ApiError> {
    let Json(body) = body?;
    let keys = body.keys()?;
    let rooms: Vec<_> = st.engine.rooms().await?.into_iter().filter(|r| scope.sees_room(r)).collect();
    let found: Vec<String> = lookup::find(&keys, &rooms, &st.directory_now()).into_iter().map(|r| r.room.confid.clone()).collect();
    if found.is_empty() {
        return Err(ApiError::conference_not_found());
    }
    Ok(Json(found))
}

/// One conference.
#[utoipa::path(get, path = "/rest/v1/uc/conferences/{confid}", operation_id = "get_conference", tag = "conferences",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression such as `confroomnum=9`"), ItemQuery),
    responses((status = 200, description = "The conference; with `mask`, only the fields named", body = Conference),
        (status = 400, description = "Bad `mask`/`flat`, unknown query parameter, or a malformed lookup expression in place of the confid", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn get_conference(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    q: Result<Query<ItemQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let opts = ItemOptions::parse(&q)?;
    let conf = ConfRef::parse(&conf)?;
    if let (ConfRef::Id(confid), false) = (&conf, scope.is_user()) {
        // The published list is current (see engine::RoomDirectory): no engine round trip.
        let list = st.engine.room_list();
        let room = list.get(confid).filter(|r| scope.sees_room_info(r)).ok_or_else(ApiError::conference_not_found)?;
        if opts.is_identity() {
            return Ok(Json(ConferenceRef(room)).into_response());
        }
        return Ok(Json(opts.project(render(&ConferenceRef(room)))).into_response());
    }
    let room = conf.snapshot(&st, &scope).await?;
    Ok(Json(opts.project(render(&Conference::from(&room.room)))).into_response())
}

/// End a conference: BYE to every participant, CANCEL to every unanswered dial-out.
/// Answers at once, without waiting for the participants' devices; from then on the
/// conference is gone for the API (a second DELETE is a 404) while its calls wind down.
#[utoipa::path(delete, path = "/rest/v1/uc/conferences/{confid}", operation_id = "end_conference", tag = "conferences",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    responses((status = 200, description = "Ending: BYE/CANCEL sent", body = ConfidReply),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody), (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn end_conference(State(st): State<AppState>, scope: Scope, ApiPath(conf): ApiPath<String>) -> Result<Json<ConfidReply>, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    let room = st.engine.end_room(&confid).await?;
    Ok(Json(ConfidReply { confid: room.confid }))
}
