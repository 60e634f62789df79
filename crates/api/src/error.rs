//! The one error type of the JSON APIs: `{"error_code","error_message"}` with the
//! matching HTTP status. Handlers return it; none builds an error body by hand.
//!
//! `error_code` is 1000 + the HTTP status (1400 bad input, 1401 no token, 1404 not
//! found, 1405 wrong method, 1409 conflict, 1422 unroutable...), so clients of the
//! reference API that switch on 1404 keep working.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::EngineError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Numeric code: 1000 + HTTP status for the common cases (1400, 1401, 1404...).
    pub code: u32,
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error_code": 1404, "error_message": "Conference not found"}))]
pub struct ErrorBody {
    /// 1000 + the HTTP status: 1400 bad input, 1401 missing/invalid token, 1404 not
    /// found, 1405 method not allowed, 1409 conflict, 1422 no route, 1503 unavailable.
    pub error_code: u32,
    /// Human-readable; the 1404 texts are fixed: `Conference not found`,
    /// `Call/Participant not found`.
    pub error_message: String,
}

/// The reference API's fixed 404 texts.
pub const CONFERENCE_NOT_FOUND: &str = "Conference not found";
pub const PARTICIPANT_NOT_FOUND: &str = "Call/Participant not found";

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, code: 1000 + status.as_u16() as u32, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conference_not_found() -> Self {
        Self::not_found(CONFERENCE_NOT_FOUND)
    }
    pub fn participant_not_found() -> Self {
        Self::not_found(PARTICIPANT_NOT_FOUND)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Missing or invalid bearer token")
    }
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, format!("Method {method} is not allowed here"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// Well-formed input that cannot be carried out (e.g. a number with no route).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error_code: self.code, error_message: self.message })).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::LegNotFound => ApiError::participant_not_found(),
            EngineError::LegEnded => ApiError::conflict("Call has already ended"),
            EngineError::BadTarget(m) => ApiError::bad_request(m),
            EngineError::Unroutable(m) => ApiError::unprocessable(m),
            EngineError::MediaUnavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            EngineError::RoomNotFound => ApiError::conference_not_found(),
            EngineError::ParticipantNotFound => ApiError::participant_not_found(),
            EngineError::BadRequest(m) => ApiError::bad_request(m),
            EngineError::Conflict(m) => ApiError::conflict(m),
            EngineError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Server is shutting down"),
        }
    }
}

/// Bad JSON, a missing or wrong `Content-Type`, an unknown field: always 400.
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("No such endpoint")
}

/// A known path with a method it does not serve: 405 in our format (axum adds `Allow`).
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::method_not_allowed(method.as_str())
}

/// [`axum::extract::Path`] whose rejection (a segment that is not UTF-8 once
/// percent-decoded, say) is an [`ApiError`] 400 like every other bad input.
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(t) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(t))
    }
}
