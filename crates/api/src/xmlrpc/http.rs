//! The XML-RPC listener as SEMS's xmlrpc2di (XmlRpc++ 0.8) answers (notes §1): any
//! path, every answer `200 OK` with `Server: XMLRPC++ 0.8` and `Content-Type:
//! text/xml`, faults included. A body that is not a method call, too large, or not
//! UTF-8 gets a fault (-1, as XmlRpc++ answers a parse error), never a 4xx or 5xx.

use super::codec::{parse_call, write_response, MAX_BODY_BYTES};
use super::service::WebConference;
use super::Fault;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The router: one handler for every method and path.
pub fn router(service: WebConference) -> Router {
    Router::new().fallback(handle).with_state(service)
}

async fn handle(State(service): State<WebConference>, req: Request) -> Response {
    // read one byte past the cap so that "too large" is told apart from "just fits"
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES + 1).await {
        Ok(b) => b,
        Err(e) => return reply(Fault::new(-1, format!("cannot read the request body: {e}")).to_xml()),
    };
    reply(answer(&service, &body).await)
}

/// The reply body for a request body.
pub async fn answer(service: &WebConference, body: &Bytes) -> String {
    let call = match parse_call(body) {
        Ok(c) => c,
        Err(e) => return Fault::new(-1, e.to_string()).to_xml(),
    };
    match service.call(call).await {
        Ok(value) => write_response(&value),
        Err(fault) => fault.to_xml(),
    }
}

fn reply(xml: String) -> Response {
    let mut resp = (StatusCode::OK, Body::from(xml)).into_response();
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("XMLRPC++ 0.8"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}
