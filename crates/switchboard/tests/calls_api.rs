//! `/v1/calls` error paths against the real server: every bad request gets its exact
//! status and the dialect's `{"error_code","error_message"}` body (never a 5xx), and
//! places no call.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

/// POST /v1/calls with a hand-made body and Content-Type (None = no such header).
fn post_raw(server: &Server, content_type: Option<&str>, body: &str) -> HttpResponse {
    let mut req = format!("POST /v1/calls HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", server.http);
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(server.http).expect("connect HTTP");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse { status, headers, body: body.to_string(), bytes: body.as_bytes().to_vec() }
}

/// `resp` is exactly `status` with a JSON error body `{"error_code": 1000 + status,
/// "error_message": "...<needle>..."}` and nothing else.
fn assert_error(what: &str, resp: &HttpResponse, status: u16, needle: &str) {
    assert_eq!(resp.status, status, "{what}: status; response {resp:?}");
    assert!(
        resp.header("content-type").is_some_and(|ct| ct.starts_with("application/json")),
        "{what}: error body is not JSON: {resp:?}"
    );
    let body: Value = serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {resp:?}"));
    let obj = body.as_object().unwrap_or_else(|| panic!("{what}: body is not an object: {body}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error_code", "error_message"], "{what}: body {body}");
    assert_eq!(body["error_code"], 1000 + status as u64, "{what}: body {body}");
    let message = body["error_message"].as_str().unwrap_or("");
    assert!(message.contains(needle), "{what}: error_message {message:?} lacks {needle:?}");
}

const JSON: Option<&str> = Some("application/json");

/// Bad `to`, unknown service, broken JSON, missing and unknown fields, wrong types,
/// wrong or missing Content-Type: 400 each, and no leg appears.
#[test]
fn bad_place_requests_get_400_and_place_nothing() {
    let env = TestEnv::new("calls_api_bad_place_requests");
    let server = Server::start(&env);
    // A target that would be reachable: only the bad part of each request may fail it.
    let ok_to = format!("sip:nobody@127.0.0.1:{}", env.ports.peer_sip(0));
    let cases: Vec<(&str, Option<&str>, String, &str)> = vec![
        // `to`
        ("`to` not a SIP URI", JSON, json!({"to": "bob"}).to_string(), "neither a SIP URI nor a number"),
        ("`to` garbage", JSON, json!({"to": "%%%<>\u{1}garbage"}).to_string(), "neither a SIP URI nor a number"),
        ("`to` another scheme", JSON, json!({"to": "http://example.com/"}).to_string(), "neither a SIP URI nor a number"),
        ("`to` scheme only", JSON, json!({"to": "sip:"}).to_string(), "neither a SIP URI nor a number"),
        ("`to` empty", JSON, json!({"to": ""}).to_string(), "`to` is empty"),
        ("`to` blank", JSON, json!({"to": "   "}).to_string(), "`to` is empty"),
        ("`to` port 0", JSON, json!({"to": "sip:bob@127.0.0.1:0"}).to_string(), "port 0"),
        ("`to` over TLS", JSON, json!({"to": "sips:bob@127.0.0.1:5061"}).to_string(), "only UDP and TCP"),
        ("`to` a number", JSON, json!({"to": 5}).to_string(), "invalid type"),
        ("`to` null", JSON, json!({"to": null}).to_string(), "invalid type"),
        // service
        ("unknown service", JSON, json!({"to": ok_to, "service": "nope"}).to_string(), "unknown service `nope`"),
        ("service not a string", JSON, json!({"to": ok_to, "service": 1}).to_string(), "invalid type"),
        // JSON itself
        ("truncated JSON", JSON, format!("{{\"to\": \"{ok_to}\""), "Failed to parse the request body as JSON"),
        ("empty body", JSON, String::new(), "Failed to parse the request body as JSON"),
        ("not JSON at all", JSON, "to=sip:bob@127.0.0.1".into(), "Failed to parse the request body as JSON"),
        ("a JSON array", JSON, "[]".into(), "Failed to deserialize"),
        ("a JSON string", JSON, json!(ok_to).to_string(), "Failed to deserialize"),
        // fields
        ("no fields", JSON, "{}".into(), "missing field `to`"),
        ("no `to`", JSON, json!({"service": "echo"}).to_string(), "missing field `to`"),
        ("unknown field", JSON, json!({"to": ok_to, "hangup": 5}).to_string(), "unknown field `hangup`"),
        ("negative hangup_after_ms", JSON, json!({"to": ok_to, "hangup_after_ms": -5}).to_string(), "hangup_after_ms"),
        ("hangup_after_ms a string", JSON, json!({"to": ok_to, "hangup_after_ms": "soon"}).to_string(), "hangup_after_ms"),
        // Content-Type
        ("text/plain", Some("text/plain"), json!({"to": ok_to}).to_string(), "Content-Type: application/json"),
        ("form", Some("application/x-www-form-urlencoded"), format!("to={ok_to}"), "Content-Type: application/json"),
        ("no Content-Type", None, json!({"to": ok_to}).to_string(), "Content-Type: application/json"),
    ];
    for (what, ct, body, needle) in &cases {
        let resp = post_raw(&server, *ct, body);
        assert_error(what, &resp, 400, needle);
    }
    assert!(server.legs().is_empty(), "a bad request placed a call: {:?}", server.legs());

    // The same target in a good request does place a call: the cases above failed on
    // their bad part alone.
    let resp = post_raw(&server, JSON, &json!({"to": ok_to}).to_string());
    assert_eq!(resp.status, 201, "good request: {resp:?}");
}

/// A number (or `tel:`) with no `[routing] gateway` has no route: 422.
#[test]
fn number_without_gateway_gets_422() {
    let env = TestEnv::new("calls_api_number_without_gateway");
    let server = Server::start(&env);
    for to in ["2216", "+1 555 0100", "tel:+12345"] {
        let resp = post_raw(&server, JSON, &json!({"to": to}).to_string());
        assert_error(&format!("`to` {to}"), &resp, 422, "[routing] gateway");
    }
    assert!(server.legs().is_empty(), "an unroutable number placed a call: {:?}", server.legs());
}

/// Unknown leg ids (GET and DELETE) are 404 `Call/Participant not found`; a leg id that
/// is not UTF-8 is a 400; other methods are 405 with the JSON body too.
#[test]
fn unknown_legs_and_wrong_methods() {
    let env = TestEnv::new("calls_api_unknown_legs");
    let server = Server::start(&env);
    for id in ["nope", "00000000-0000-0000-0000-000000000000", "a%20b"] {
        let path = format!("/v1/calls/{id}");
        assert_error(&format!("GET {path}"), &server.get(&path), 404, "Call/Participant not found");
        assert_error(&format!("DELETE {path}"), &server.delete(&path), 404, "Call/Participant not found");
    }
    assert_error("GET /v1/calls/%FF", &server.get("/v1/calls/%FF"), 400, "UTF-8");
    assert_error("DELETE /v1/calls/%FF", &server.delete("/v1/calls/%FF"), 400, "UTF-8");
    for (method, path) in [("PUT", "/v1/calls"), ("DELETE", "/v1/calls"), ("PATCH", "/v1/calls/nope"), ("POST", "/v1/calls/nope")] {
        let resp = server.request(method, path, Some("{}"));
        assert_error(&format!("{method} {path}"), &resp, 405, method);
    }
}

/// DELETE of a leg that has ended is a 409 (nothing to hang up); the leg stays readable.
#[test]
fn delete_of_an_ended_leg_gets_409() {
    let env = TestEnv::new("calls_api_delete_ended_leg");
    let server = Server::start(&env);
    // The server calls a user of its own that does not exist: its inbound side answers
    // 404, which ends the outbound leg.
    let resp = server.post("/v1/calls", &json!({"to": format!("sip:nobody-here@{}", server.sip)}));
    assert_eq!(resp.status, 201, "POST /v1/calls: {resp:?}");
    let leg_id = field(&resp.json(), "leg_id").to_string();
    let ended = server.wait_for_leg(Duration::from_secs(5), "ended by the 404", |l| {
        l["leg_id"] == leg_id.as_str() && l["state"] == "ended"
    });
    assert_eq!(ended["end_status"], 404, "leg: {ended}");

    let path = format!("/v1/calls/{leg_id}");
    assert_error(&format!("DELETE {path}"), &server.delete(&path), 409, "already ended");
    assert_error(&format!("DELETE {path} again"), &server.delete(&path), 409, "already ended");
    let leg = server.get(&path);
    assert_eq!(leg.status, 200, "GET {path}: {leg:?}");
    assert_eq!(field(&leg.json(), "state"), "ended", "GET {path}: {leg:?}");
}
