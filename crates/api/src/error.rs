//! The one error type of the JSON APIs: `{"error_code","error_message"}` with the
//! matching HTTP status. Handlers return it; none builds an error body by hand.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::EngineError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Numeric code: 1000 + HTTP status for the common cases (1400, 1401, 1404...).
    pub code: u32,
    pub message: String,
}

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
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Missing or invalid bearer token")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error_code": self.code, "error_message": self.message }))).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::LegNotFound => ApiError::not_found("Call/Participant not found"),
            EngineError::BadTarget(m) => ApiError::bad_request(m),
            EngineError::MediaUnavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            EngineError::RoomNotFound => ApiError::not_found("Conference not found"),
            EngineError::ParticipantNotFound => ApiError::not_found("Call/Participant not found"),
            EngineError::BadRequest(m) => ApiError::bad_request(m),
            EngineError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Server is shutting down"),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("No such endpoint")
}
