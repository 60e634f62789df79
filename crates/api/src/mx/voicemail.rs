//! Reference 001 §6: the user's mailbox. `GET /voicemails[?media=VoiceMail|Recording]`
//! lists messages left for the user and recordings of its calls; `GET
//! /voicemails/{id}` is the WAV (`audio/wave`, as MX sends it for IE); `DELETE` removes
//! one; `PATCH` sets `read` and/or `note` and echoes only the keys sent. Another
//! user's message is 404 like a missing one. Reading, deleting and marking messages
//! updates the user's phones' message-waiting lamps (MWI).

use super::{bearer_claims, mx_json, parse_body, MxError, MxState};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use store::voicemail::{Voicemail, RECORDING, VOICEMAIL};

fn store(state: &MxState) -> Result<&store::Store, MxError> {
    state.store.as_ref().ok_or_else(|| MxError::unavailable("no store behind the MX voicemail endpoints".into()))
}

/// `media=` of the query: None = both.
fn media(query: Option<&str>) -> Result<Option<&'static str>, MxError> {
    let mut media = None;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| MxError::bad_request(e.to_string()))?;
    for (k, v) in pairs {
        if k == "media" {
            media = match v.as_str() {
                "" => None,
                VOICEMAIL => Some(VOICEMAIL),
                RECORDING => Some(RECORDING),
                other => return Err(MxError::bad_request(format!("unsupported media type {other:?}"))),
            };
        }
    }
    Ok(media)
}

/// The item MX lists: always from, to, ownerType, id, mediaType, received; the rest when set.
fn item(v: &Voicemail) -> Value {
    let mut m = Map::new();
    m.insert("from".into(), json!(v.from_number));
    if let Some(n) = v.from_name.as_deref().filter(|n| !n.is_empty()) {
        m.insert("fromName".into(), json!(n));
    }
    if let Some(n) = v.caller_name.as_deref().filter(|n| !n.is_empty()) {
        m.insert("callerName".into(), json!(n));
    }
    m.insert("to".into(), json!(v.to_number));
    m.insert("ownerType".into(), json!("user"));
    m.insert("id".into(), json!(v.id.to_string()));
    m.insert("mediaType".into(), json!(v.media));
    m.insert("received".into(), json!(v.received_ms / 1000));
    let secs = (v.duration_ms + 500) / 1000;
    if secs > 0 {
        m.insert("duration".into(), json!(secs));
    }
    if v.read {
        m.insert("read".into(), json!(true));
    }
    if let Some(n) = v.note.as_deref().filter(|n| !n.is_empty()) {
        m.insert("note".into(), json!(n));
    }
    Value::Object(m)
}

/// `GET /voicemails`: oldest first.
pub(super) async fn list(State(state): State<MxState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let media = media(query.as_deref())?;
    let list = store(&state)?.voicemails(claims.sb_uid, media).await.map_err(|e| MxError::unavailable(e.to_string()))?;
    Ok(mx_json(StatusCode::OK, &json!({ "voiceMails": list.iter().map(item).collect::<Vec<_>>() })))
}

/// The user's message `{id}` of the media asked for; 404 otherwise (a non-numeric id too).
async fn find(state: &MxState, user_id: i64, id: &str, query: Option<&str>) -> Result<Voicemail, MxError> {
    let media = media(query)?;
    let Ok(id) = id.parse::<i64>() else { return Err(MxError::not_found()) };
    let v = store(state)?.voicemail(user_id, id).await.map_err(|e| MxError::unavailable(e.to_string()))?;
    v.filter(|v| media.is_none_or(|m| m == v.media)).ok_or_else(MxError::not_found)
}

/// `GET /voicemails/{id}`: the WAV as an attachment named as MX names them.
pub(super) async fn download(State(state): State<MxState>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let v = find(&state, claims.sb_uid, &id, query.as_deref()).await?;
    let Some(dir) = &state.data_dir else { return Err(MxError::unavailable("no data dir behind the MX voicemail endpoints".into())) };
    let bytes = tokio::fs::read(dir.join(&v.file)).await.map_err(|_| MxError::not_found())?;
    let name = format!("u{:020}/m{:04}.wav", v.user_id, v.id);
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wave"));
    if let Ok(h) = HeaderValue::from_str(&format!("attachment; filename={name:?}")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, h);
    }
    Ok(r)
}

/// `DELETE /voicemails/{id}` → 204. A voicemail's file goes with it; a recording's
/// stays (it is the call's, and the other party's too).
pub(super) async fn delete(State(state): State<MxState>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let v = find(&state, claims.sb_uid, &id, query.as_deref()).await?;
    let gone = store(&state)?.delete_voicemail(claims.sb_uid, v.id).await.map_err(|e| MxError::unavailable(e.to_string()))?;
    if gone.is_none() {
        return Err(MxError::not_found());
    }
    if v.media == VOICEMAIL {
        if let Some(dir) = &state.data_dir {
            let _ = tokio::fs::remove_file(dir.join(&v.file)).await;
        }
        mwi(&state, claims.sb_uid).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
struct Patch {
    read: Option<bool>,
    note: Option<String>,
}

/// `PATCH /voicemails/{id}`: `read` then `note`; neither is 400 `bad request`.
pub(super) async fn patch(State(state): State<MxState>, headers: HeaderMap, Path(id): Path<String>, RawQuery(query): RawQuery, body: Bytes) -> Result<Response, MxError> {
    let claims = bearer_claims(&state, &headers)?;
    let p: Patch = parse_body(&headers, &body)?;
    if p.read.is_none() && p.note.is_none() {
        return Err(MxError::bad_request("bad request"));
    }
    if p.note.as_ref().is_some_and(|n| n.len() > 4096 || n.chars().any(|c| c.is_control() && c != '\n')) {
        return Err(MxError::bad_request("bad note"));
    }
    let v = find(&state, claims.sb_uid, &id, query.as_deref()).await?;
    store(&state)?
        .update_voicemail(claims.sb_uid, v.id, p.read, p.note.as_deref())
        .await
        .map_err(|e| MxError::unavailable(e.to_string()))?
        .ok_or_else(MxError::not_found)?;
    if p.read.is_some() && v.media == VOICEMAIL {
        mwi(&state, claims.sb_uid).await;
    }
    let mut echo = Map::new();
    if let Some(r) = p.read {
        echo.insert("read".into(), json!(r));
    }
    if let Some(n) = p.note {
        echo.insert("note".into(), json!(n));
    }
    Ok(mx_json(StatusCode::OK, &json!({ "vm": echo })))
}

/// The user's phones hear the new counts (best effort: the change is made either way).
async fn mwi(state: &MxState, user_id: i64) {
    let (Some(engine), Ok(store)) = (&state.engine, store(state)) else { return };
    if let Ok((new, old)) = store.voicemail_counts(user_id).await {
        let _ = engine.notify_mwi(user_id, new, old).await;
    }
}
