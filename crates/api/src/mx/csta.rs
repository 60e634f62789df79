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
    use engine::call::fixtures::{party, ringing_call};

    #[test]
    fn delivered_has_every_field_mx_sends() {
        let alice = party("sip:alice@alpha.test", Some(1), Some("3044"), Some("Alice"));
        let call = ringing_call(42, 1_000, alice, party("sip:bob@alpha.test", Some(2), Some("3045"), None));
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
