//! The WCS WebSocket framing: every text frame is `{"message": name, "data": [...]}`.
//!
//! The 2.0 SDK reads `data[0]` of every server frame, so `data` is always an array
//! here; the legacy client omitted `data` when empty, so a missing `data` is accepted
//! on the way in.

use serde_json::{json, Map, Value};

/// A client frame: its message name and `data[0]` (an empty object for `[null]` or no
/// data).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    pub message: String,
    pub data: Map<String, Value>,
}

/// Parses a client text frame; the error is the `info` of the `fail` we answer with.
pub fn parse(text: &str) -> Result<ClientFrame, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut o) = v else { return Err("a frame must be a JSON object".into()) };
    let message = match o.remove("message") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s,
        _ => return Err("`message` must be a non-empty string".into()),
    };
    let data = match o.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Array(mut a)) => match a.drain(..).next() {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(format!("`data[0]` of {message} must be an object")),
        },
        Some(Value::Object(m)) => m,
        Some(_) => return Err(format!("`data` of {message} must be an array")),
    };
    Ok(ClientFrame { message, data })
}

/// A server frame with one object.
pub fn frame(message: &str, data: Value) -> String {
    json!({ "message": message, "data": [data] }).to_string()
}

/// `setRemoteSDP [id, sdp]`: two positional elements.
pub fn set_remote_sdp(call_id: &str, sdp: &str) -> String {
    json!({ "message": "setRemoteSDP", "data": [call_id, sdp] }).to_string()
}

/// The message name a call status travels under: the SDK handles five names alike
/// (only `status` matters) and ignores the legacy `sessionProgress` and `busy`.
pub fn status_message(status: &str) -> &'static str {
    match status {
        "TRYING" => "notifyTryingResponse",
        "RING" | "RING_MEDIA" | "SESSION_PROGRESS" => "ring",
        "ESTABLISHED" => "talk",
        "HOLD" => "hold",
        _ => "finish",
    }
}

/// A call's status for the client and the hooks: TRYING..FAILED.
pub fn call_status_for_sip(code: u16, early_media: bool) -> &'static str {
    match code {
        100 => "TRYING",
        180 | 181 | 182 if early_media => "RING_MEDIA",
        180..=182 => "RING",
        183 => "SESSION_PROGRESS",
        101..=199 => "RING",
        200..=299 => "ESTABLISHED",
        486 | 600 => "BUSY",
        _ => "FAILED",
    }
}

/// The SDK's stream methods: out of scope, answered with a `fail` for that stream.
pub fn is_stream_method(name: &str) -> bool {
    matches!(
        name,
        "publishStream" | "playStream" | "unPublishStream" | "stopStream" | "snapshot" | "sendStreamEvent" | "availableStream" | "playHLS" | "playRTSP"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_in_every_shape_the_clients_send() {
        let f = parse(r#"{"message":"pong","data":[null]}"#).unwrap();
        assert_eq!(f.message, "pong");
        assert!(f.data.is_empty());
        let f = parse(r#"{"message":"hangup","data":[{"callId":"x"}]}"#).unwrap();
        assert_eq!(f.data["callId"], "x");
        assert!(parse(r#"{"message":"connect"}"#).unwrap().data.is_empty());
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"message":"call","data":[5]}"#).is_err());
        assert!(parse("nope").is_err());
    }

    #[test]
    fn server_frames_always_carry_an_array() {
        let v: Value = serde_json::from_str(&frame("ping", Value::Null)).unwrap();
        assert_eq!(v["data"], json!([null]));
        let v: Value = serde_json::from_str(&set_remote_sdp("c1", "v=0")).unwrap();
        assert_eq!(v["data"], json!(["c1", "v=0"]));
    }

    #[test]
    fn statuses_map_onto_the_five_names() {
        assert_eq!(status_message("TRYING"), "notifyTryingResponse");
        assert_eq!(status_message("SESSION_PROGRESS"), "ring");
        assert_eq!(status_message("BUSY"), "finish");
        assert_eq!(call_status_for_sip(486, false), "BUSY");
        assert_eq!(call_status_for_sip(180, true), "RING_MEDIA");
        assert_eq!(call_status_for_sip(404, false), "FAILED");
    }
}
