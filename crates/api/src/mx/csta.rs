//! Reference 001 §4: the CSTA-shaped event objects MX pushes to apps (and, with `type`
//! empty and `timestamp` 0, answers some REST calls with). Built from the engine's
//! `CallInfo` as one user sees it: `deviceId` is that user's extension, `callId` the
//! call's integer id, `globalCallId` the same string as the call log's `gcid`.

use super::calls::{global_call_id, party_number};
use engine::call::CallInfo;
use engine::users::User;
use serde_json::{json, Value};

/// `Delivered`: the call is ringing `user` (the push that wakes a mobile app).
pub fn delivered(node: &str, call: &CallInfo, user: &User, timestamp_s: u64) -> Value {
    let ext = user.ext.clone().unwrap_or_default();
    json!({
        "type": "Delivered",
        "callId": call.call_id.0,
        "deviceId": ext,
        "timestamp": timestamp_s,
        "globalCallId": global_call_id(node, call.call_id.0),
        "callingDevice": party_number(&call.caller),
        "calledDevice": party_number(&call.callee),
        "alertingDevice": ext,
        "lastRedirectionDevice": "",
        "localConnectionInfo": "alerting",
        "cause": "normal",
    })
}

#[cfg(test)]
mod unit {
    use super::*;
    use engine::call::{CallId, CallState, Party};

    #[test]
    fn delivered_has_every_field_mx_sends() {
        let call = CallInfo {
            call_id: CallId(42),
            domain: "alpha.test".into(),
            state: CallState::Ringing,
            caller: Party { uri: "sip:alice@alpha.test".into(), user_id: Some(1), ext: Some("3044".into()), display_name: Some("Alice".into()) },
            callee: Party { uri: "sip:bob@alpha.test".into(), user_id: Some(2), ext: Some("3045".into()), display_name: None },
            caller_leg: None,
            callee_leg: None,
            ringing_legs: vec![],
            started_ms: 1_000,
            answered_ms: None,
            ended_ms: None,
            disposition: None,
            hangup_by: None,
            caller_codec: None,
            callee_codec: None,
            held: None,
            recordings: vec![],
            api_originated: false,
        };
        let bob = User { id: 2, login: "bob".into(), ext: Some("3045".into()), ..Default::default() };
        let ev = delivered("node1", &call, &bob, 1_700_000_000);
        assert_eq!(
            ev,
            json!({"type": "Delivered", "callId": 42, "deviceId": "3045", "timestamp": 1_700_000_000u64, "globalCallId": "node1-2A",
                   "callingDevice": "3044", "calledDevice": "3045", "alertingDevice": "3045", "lastRedirectionDevice": "",
                   "localConnectionInfo": "alerting", "cause": "normal"})
        );
    }
}
