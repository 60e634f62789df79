//! (ours) A room's audio besides the mix: prompts played to the room or to one
//! participant, and the room's recording (start, pause/resume, stop; the mix and, on
//! request, one track per participant). Finished files are listed and downloaded
//! under `/v1/recordings`.
//!
//! Prompts are named from the server's prompt set (`prompts_dir`), never by a path:
//! an API client cannot make the server read arbitrary files.

use super::lookup::ConfRef;
use crate::auth::Scope;
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::AppState;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::{PromptRequest, RecordOp, RoomRecordingInfo};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use utoipa::ToSchema;

/// Body of POST on `.../prompts`: a prompt of the set by name, tones, or both (the
/// prompt first).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptBody {
    /// A prompt of the server's set, e.g. `beep`, `first_participant` (letters, digits,
    /// `_`, `-`). A name the set lacks plays nothing and ends `failed`.
    pub prompt: Option<String>,
    /// Tone steps `f1[+f2]/ms`, comma-separated, e.g. `440+480/2000,0/4000`; 0 Hz is silence.
    pub tones: Option<String>,
    /// Play again and again until stopped.
    #[serde(default)]
    pub repeat: bool,
    /// (participant prompts) A digit from the participant stops it.
    #[serde(default)]
    pub barge_in: bool,
}

/// A prompt started: its end is the event `prompt_ended` with this id.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptStarted {
    pub prompt_id: u64,
}

fn request(body: PromptBody) -> Result<PromptRequest, ApiError> {
    if body.prompt.is_none() && body.tones.is_none() {
        return Err(ApiError::bad_request("give `prompt` (a prompt name) and/or `tones`"));
    }
    // Well-formed steps out of range (a frequency above 7900 Hz, 0 ms) cannot be played.
    if let Some(t) = &body.tones {
        engine::room::check_tones(t).map_err(|e| ApiError::unprocessable(format!("tones: {e}")))?;
    }
    Ok(PromptRequest { prompt: body.prompt, tones: body.tones, repeat: body.repeat, barge_in: body.barge_in })
}

/// Play a prompt to everyone in the room.
#[utoipa::path(post, path = "/rest/v1/uc/conferences/{confid}/prompts", operation_id = "play_room_prompt", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    request_body = PromptBody,
    responses((status = 202, description = "Playing; the end comes as a `prompt_ended` event", body = PromptStarted),
        (status = 400, description = "Bad JSON, no prompt or tones, a bad prompt name or tone step", body = ErrorBody),
        (status = 422, description = "A tone step out of range (above 7900 Hz; 0 ms or over 600000 ms)", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn play_room(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    body: Result<Json<PromptBody>, JsonRejection>,
) -> Result<(StatusCode, Json<PromptStarted>), ApiError> {
    let Json(body) = body?;
    let req = request(body)?;
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    let prompt_id = st.engine.play_prompt(&confid, None, req).await?;
    Ok((StatusCode::ACCEPTED, Json(PromptStarted { prompt_id })))
}

/// Stop the prompt playing to the room.
#[utoipa::path(delete, path = "/rest/v1/uc/conferences/{confid}/prompts", operation_id = "stop_room_prompt", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    responses((status = 204, description = "Stopped (or nothing was playing)"),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn stop_room(State(st): State<AppState>, scope: Scope, ApiPath(conf): ApiPath<String>) -> Result<StatusCode, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    st.engine.stop_prompt(&confid, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Play a prompt to one participant (over what it hears from the room).
#[utoipa::path(post, path = "/rest/v1/uc/conferences/{confid}/participants/{participantid}/prompts", operation_id = "play_participant_prompt", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression"), ("participantid" = String, Path, description = "Participant id")),
    request_body = PromptBody,
    responses((status = 202, description = "Playing; the end comes as a `prompt_ended` event", body = PromptStarted),
        (status = 400, description = "Bad JSON, no prompt or tones, a bad prompt name or tone step", body = ErrorBody),
        (status = 422, description = "A tone step out of range (above 7900 Hz; 0 ms or over 600000 ms)", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found / Call/Participant not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn play_participant(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath((conf, pid)): ApiPath<(String, String)>,
    body: Result<Json<PromptBody>, JsonRejection>,
) -> Result<(StatusCode, Json<PromptStarted>), ApiError> {
    let Json(body) = body?;
    let req = request(body)?;
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    let prompt_id = st.engine.play_prompt(&confid, Some(&pid), req).await?;
    Ok((StatusCode::ACCEPTED, Json(PromptStarted { prompt_id })))
}

/// Stop the prompt playing to one participant.
#[utoipa::path(delete, path = "/rest/v1/uc/conferences/{confid}/participants/{participantid}/prompts", operation_id = "stop_participant_prompt", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression"), ("participantid" = String, Path, description = "Participant id")),
    responses((status = 204, description = "Stopped (or nothing was playing)"),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found / Call/Participant not found", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn stop_participant(State(st): State<AppState>, scope: Scope, ApiPath((conf, pid)): ApiPath<(String, String)>) -> Result<StatusCode, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    st.engine.stop_prompt(&confid, Some(&pid)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One file of a room recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingFileView {
    /// null: the room's mix; else that participant's own voice.
    pub participantid: Option<String>,
    /// Its id under `/v1/recordings`.
    pub recording_id: String,
}

/// A room's recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomRecording {
    pub confid: String,
    /// Its number in the room (a room can be recorded more than once).
    pub number: u32,
    pub started_ms: u64,
    pub paused: bool,
    /// One file per participant besides the mix.
    pub tracks: bool,
    pub files: Vec<RecordingFileView>,
}

impl From<RoomRecordingInfo> for RoomRecording {
    fn from(r: RoomRecordingInfo) -> Self {
        RoomRecording {
            confid: r.confid,
            number: r.number,
            started_ms: r.started_ms,
            paused: r.paused,
            tracks: r.tracks,
            files: r.files.into_iter().map(|f| RecordingFileView { participantid: f.participantid, recording_id: recording_id(&f.file) }).collect(),
        }
    }
}

/// Body of POST on `.../recording`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// Also record each participant's own voice, one file each.
    #[serde(default)]
    pub tracks: bool,
}

/// Body of PATCH on `.../recording`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordPatchBody {
    /// true: leave what follows out of the files; false: record again.
    pub paused: bool,
}

/// The room's recording, if one runs.
#[utoipa::path(get, path = "/rest/v1/uc/conferences/{confid}/recording", operation_id = "get_room_recording", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    responses((status = 200, description = "The recording", body = RoomRecording),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found, or it is not being recorded", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn get_recording(State(st): State<AppState>, scope: Scope, ApiPath(conf): ApiPath<String>) -> Result<Json<RoomRecording>, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    match st.engine.room_recording(&confid).await? {
        Some(r) => Ok(Json(r.into())),
        None => Err(ApiError::not_found("the room is not being recorded")),
    }
}

/// Start recording the room.
#[utoipa::path(post, path = "/rest/v1/uc/conferences/{confid}/recording", operation_id = "start_room_recording", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    request_body = RecordBody,
    responses((status = 201, description = "Recording; each file's completion is a `recording_completed` event", body = RoomRecording),
        (status = 400, description = "Bad JSON or a malformed lookup expression", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody),
        (status = 409, description = "Already being recorded", body = ErrorBody),
        (status = 503, description = "Server is shutting down, or nobody in the room has media", body = ErrorBody)))]
pub async fn start_recording(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<RoomRecording>), ApiError> {
    // No body at all means the defaults.
    let body: RecordBody = if body.iter().all(u8::is_ascii_whitespace) {
        RecordBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?
    };
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    let r = st.engine.room_record(&confid, RecordOp::Start { tracks: body.tracks }).await?;
    Ok((StatusCode::CREATED, Json(r.into())))
}

/// Pause or resume the room's recording.
#[utoipa::path(patch, path = "/rest/v1/uc/conferences/{confid}/recording", operation_id = "pause_room_recording", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    request_body = RecordPatchBody,
    responses((status = 200, description = "The recording after the change", body = RoomRecording),
        (status = 400, description = "Bad JSON or a malformed lookup expression", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody),
        (status = 409, description = "Not being recorded", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn pause_recording(
    State(st): State<AppState>,
    scope: Scope,
    ApiPath(conf): ApiPath<String>,
    body: Result<Json<RecordPatchBody>, JsonRejection>,
) -> Result<Json<RoomRecording>, ApiError> {
    let Json(body) = body?;
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    Ok(Json(st.engine.room_record(&confid, RecordOp::Pause(body.paused)).await?.into()))
}

/// Stop recording the room.
#[utoipa::path(delete, path = "/rest/v1/uc/conferences/{confid}/recording", operation_id = "stop_room_recording", tag = "media",
    params(("confid" = String, Path, description = "Conference id, or a lookup expression")),
    responses((status = 200, description = "The recording as it ended", body = RoomRecording),
        (status = 400, description = "A malformed lookup expression in place of the confid", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "Conference not found", body = ErrorBody),
        (status = 409, description = "Not being recorded", body = ErrorBody), (status = 503, description = "Server is shutting down", body = ErrorBody)))]
pub async fn stop_recording(State(st): State<AppState>, scope: Scope, ApiPath(conf): ApiPath<String>) -> Result<Json<RoomRecording>, ApiError> {
    let confid = ConfRef::parse(&conf)?.confid(&st, &scope).await?;
    Ok(Json(st.engine.room_record(&confid, RecordOp::Stop).await?.into()))
}

// ---- /v1/recordings: the files -------------------------------------------------------

/// Room recordings live in `recordings/rooms/<domain>/<confid>/<n>-<mix|participantid>.wav`.
const ROOMS_DIR: &str = "recordings/rooms";

/// The id of a file: `<confid>~<n>-<mix|participantid>` (confids and participant ids
/// hold neither `~` nor `/`).
fn recording_id(file: &str) -> String {
    let mut parts = file.rsplit('/');
    let name = parts.next().unwrap_or_default().trim_end_matches(".wav");
    let confid = parts.next().unwrap_or_default();
    format!("{confid}~{name}")
}

fn valid_id_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') && s != "." && s != ".."
}

/// A finished (or running) room recording file.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingView {
    pub recording_id: String,
    pub confid: String,
    /// null: the room's mix; else that participant's own voice.
    pub participantid: Option<String>,
    pub domain: String,
    /// Audio so far (16 kHz mono), from the file's size.
    pub duration_ms: u64,
    pub bytes: u64,
    /// The file's header has its final sizes: the recording is complete.
    pub complete: bool,
    pub modified_ms: u64,
}

fn describe(domain: &str, confid: &str, path: &Path) -> Option<RecordingView> {
    let name = path.file_name()?.to_str()?.strip_suffix(".wav")?;
    let meta = std::fs::metadata(path).ok()?;
    let bytes = meta.len();
    let mut header = [0u8; 44];
    let complete = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header)).is_ok()
        && u32::from_le_bytes(header[40..44].try_into().ok()?) as u64 == bytes.saturating_sub(44)
        && bytes > 44;
    let (_, who) = name.split_once('-')?;
    Some(RecordingView {
        recording_id: format!("{confid}~{name}"),
        confid: confid.to_owned(),
        participantid: (who != "mix").then(|| who.to_owned()),
        domain: domain.to_owned(),
        duration_ms: bytes.saturating_sub(44) / 32,
        bytes,
        complete,
        modified_ms: meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64,
    })
}

/// Every room recording file a credential may see, newest first.
fn scan(root: &Path, sees: impl Fn(&str) -> bool) -> Vec<RecordingView> {
    let mut out = Vec::new();
    let Ok(domains) = std::fs::read_dir(root.join(ROOMS_DIR)) else { return out };
    for d in domains.flatten() {
        let domain = d.file_name().to_string_lossy().into_owned();
        if !sees(&domain) {
            continue;
        }
        let Ok(rooms) = std::fs::read_dir(d.path()) else { continue };
        for r in rooms.flatten() {
            let confid = r.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(r.path()) else { continue };
            out.extend(files.flatten().filter_map(|f| describe(&domain, &confid, &f.path())));
        }
    }
    out.sort_by(|a, b| b.modified_ms.cmp(&a.modified_ms).then_with(|| a.recording_id.cmp(&b.recording_id)));
    out
}

/// The file of an id, if a credential may see it.
fn locate(root: &Path, id: &str, sees: impl Fn(&str) -> bool) -> Option<(PathBuf, RecordingView)> {
    let (confid, name) = id.split_once('~')?;
    if !valid_id_part(confid) || !valid_id_part(name) {
        return None;
    }
    let domains = std::fs::read_dir(root.join(ROOMS_DIR)).ok()?;
    for d in domains.flatten() {
        let domain = d.file_name().to_string_lossy().into_owned();
        let path = d.path().join(confid).join(format!("{name}.wav"));
        if path.is_file() && sees(&domain) {
            let view = describe(&domain, confid, &path)?;
            return Some((path, view));
        }
    }
    None
}

fn data_dir(st: &AppState) -> Result<PathBuf, ApiError> {
    st.data_dir.clone().ok_or_else(|| ApiError::not_found("this server keeps no recordings"))
}

/// Room recordings (files), newest first.
#[utoipa::path(get, path = "/v1/recordings", operation_id = "list_recordings", tag = "media",
    responses((status = 200, description = "The files, newest first", body = [RecordingView]),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "This server keeps no recordings", body = ErrorBody)))]
pub async fn list_recordings(State(st): State<AppState>, scope: Scope) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let root = data_dir(&st)?;
    if scope.is_user() {
        return Ok(Json(Vec::new()));
    }
    let list = tokio::task::spawn_blocking(move || scan(&root, |d| scope.sees_domain_name(d)))
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the listing failed"))?;
    Ok(Json(list))
}

/// Download one recording: the WAV (16 kHz, 16-bit, mono).
#[utoipa::path(get, path = "/v1/recordings/{recording_id}", operation_id = "get_recording", tag = "media",
    params(("recording_id" = String, Path, description = "From the list, or a room recording's `files`")),
    responses((status = 200, description = "The WAV file", content_type = "audio/wave"),
        (status = 401, description = "Missing or invalid bearer token", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody)))]
pub async fn download_recording(State(st): State<AppState>, scope: Scope, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let root = data_dir(&st)?;
    if scope.is_user() {
        return Err(ApiError::not_found("no such recording"));
    }
    let id2 = id.clone();
    let found = tokio::task::spawn_blocking(move || locate(&root, &id2, |d| scope.sees_domain_name(d)))
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the lookup failed"))?;
    let Some((path, view)) = found else { return Err(ApiError::not_found("no such recording")) };
    let file = tokio::fs::File::open(&path).await.map_err(|_| ApiError::not_found("no such recording"))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wave".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.wav\"", view.recording_id.replace('~', "-"))),
        ],
        body,
    )
        .into_response())
}
