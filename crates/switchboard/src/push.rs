//! Push to wake a mobile app (reference 001 §8): given a user and a CSTA-shaped event,
//! post it to every push token the user registered (`PUT /tokens/…`).
//!
//! - APNs: one `POST <apns_url>/3/device/<token>` per token (the sandbox URL for topics
//!   ending in `~`), body the bare event JSON (no `aps`: the legacy VoIP PushKit shape
//!   MX sends), headers `user-agent` and `Content-Type` only. A 200 is delivered; the
//!   reasons MissingDeviceToken, BadDeviceToken, DeviceTokenNotForTopic and
//!   Unregistered delete the token.
//! - FCM (legacy HTTP): one `POST <fcm_url>` per app id, `Authorization: key=<server
//!   key>`, body `{"registration_ids":[…],"data":<event>,"time_to_live":0}`. Per result:
//!   a canonical `registration_id` replaces the token, `Unavailable` keeps it, any other
//!   error deletes it.
//!
//! Only topics still configured are pushed to. Requests run on the blocking pool
//! (ureq), one task per wake, so the signalling task never waits on a push service.
//!
//! Partial: real APNs needs HTTP/2 and a client certificate (or a token-signed JWT);
//! this sender speaks HTTP/1.1 without a client certificate, which is what the stand-in
//! servers of the tests (and an HTTP/1.1 relay in front of APNs) take. FCM's legacy API
//! works as is over HTTPS.
//!
//! The engine asks for a wake with `EngineEvent::WakeUser` (a call for a user with
//! tokens); [`PushSender::wake`] builds the `Delivered` event and sends it.

use crate::config::PushSection;
use engine::call::CallInfo;
use engine::users::{DirectorySnapshot, UserId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// APNs reasons that mean the token is no good any more.
const APNS_DEAD_TOKEN: [&str; 4] = ["MissingDeviceToken", "BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered"];

/// What one push did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Tokens the service accepted the push for.
    pub delivered: usize,
    /// Tokens it failed for (kept or deleted).
    pub failed: usize,
    /// Tokens deleted because the service called them dead.
    pub removed: usize,
    /// Tokens replaced by FCM's canonical id.
    pub replaced: usize,
}

/// The topics `PUT /tokens` accepts: the configured APNs topics and FCM app ids.
pub fn topics(cfg: &PushSection) -> api::mx::push::PushTopics {
    api::mx::push::PushTopics { apns: cfg.apns_topics.iter().cloned().collect(), fcm: cfg.fcm.keys().cloned().collect() }
}

#[derive(Clone)]
pub struct PushSender {
    store: store::Store,
    apns_url: String,
    apns_sandbox_url: String,
    apns_topics: HashSet<String>,
    fcm_url: String,
    fcm_keys: BTreeMap<String, String>,
    agent: ureq::Agent,
    /// For the events' `globalCallId` (the same node name as `GET /auth`'s `mx`).
    node: String,
}

impl PushSender {
    pub fn new(cfg: &PushSection, store: store::Store, node: String) -> PushSender {
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        PushSender {
            store,
            apns_url: cfg.apns_url.trim_end_matches('/').to_owned(),
            apns_sandbox_url: cfg.apns_sandbox_url.trim_end_matches('/').to_owned(),
            apns_topics: cfg.apns_topics.iter().cloned().collect(),
            fcm_url: cfg.fcm_url.clone(),
            fcm_keys: cfg.fcm.clone(),
            agent: ureq::AgentBuilder::new().timeout(timeout).user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION"))).build(),
            node,
        }
    }

    /// Sends `user_id` a `Delivered` event for `call` in the background.
    pub fn wake(&self, user_id: UserId, call: CallInfo, directory: Arc<DirectorySnapshot>) {
        let Some(user) = directory.user(user_id).cloned() else {
            debug!(user = user_id, "wake for an unknown user; no push");
            return;
        };
        let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let event = api::mx::csta::delivered(&self.node, &call, &user, now_s);
        let sender = self.clone();
        tokio::spawn(async move {
            let report = sender.send(user_id, &event).await;
            info!(user = %user.login, call = %call.call_id, ?report, "wake-up push sent");
        });
    }

    /// Posts `event` to every token of `user_id`; bad tokens are deleted as §8 says.
    pub async fn send(&self, user_id: UserId, event: &Value) -> PushReport {
        let tokens = match self.store.push_tokens_of(user_id).await {
            Ok(t) => t,
            Err(e) => {
                warn!(user = user_id, "push tokens not read: {e}");
                return PushReport::default();
            }
        };
        let mut report = PushReport::default();
        let mut fcm: HashMap<String, Vec<String>> = HashMap::new();
        for t in tokens {
            match t.kind.as_str() {
                "apn" if self.apns_topics.contains(&t.topic) => self.send_apns(&t.topic, &t.token, event, &mut report).await,
                "fcm" if self.fcm_keys.contains_key(&t.topic) => fcm.entry(t.topic).or_default().push(t.token),
                _ => debug!(kind = %t.kind, topic = %t.topic, "push topic no longer configured; token skipped"),
            }
        }
        for (app, tokens) in fcm {
            self.send_fcm(&app, tokens, event, &mut report).await;
        }
        report
    }

    async fn send_apns(&self, topic: &str, token: &str, event: &Value, report: &mut PushReport) {
        let base = if topic.ends_with('~') { &self.apns_sandbox_url } else { &self.apns_url };
        let url = format!("{base}/3/device/{token}");
        let body = event.to_string();
        let agent = self.agent.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            match agent.post(&url).set("Content-Type", "application/json").send_string(&body) {
                Ok(_) => Ok(()),
                Err(ureq::Error::Status(code, resp)) => {
                    let reason = resp.into_json::<Value>().ok().and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned));
                    Err((Some(code), reason.unwrap_or_default()))
                }
                Err(e) => Err((None, e.to_string())),
            }
        })
        .await
        .unwrap_or_else(|e| Err((None, e.to_string())));
        match outcome {
            Ok(()) => report.delivered += 1,
            Err((status, reason)) => {
                report.failed += 1;
                debug!(%topic, ?status, %reason, "APNs push refused");
                if APNS_DEAD_TOKEN.contains(&reason.as_str()) {
                    self.forget("apn", topic, token, report).await;
                }
            }
        }
    }

    async fn send_fcm(&self, app: &str, tokens: Vec<String>, event: &Value, report: &mut PushReport) {
        let Some(key) = self.fcm_keys.get(app) else { return };
        let body = json!({ "registration_ids": tokens, "data": event, "time_to_live": 0 }).to_string();
        let (agent, url, auth) = (self.agent.clone(), self.fcm_url.clone(), format!("key={key}"));
        let reply = tokio::task::spawn_blocking(move || {
            let resp = agent.post(&url).set("Content-Type", "application/json").set("Authorization", &auth).send_string(&body);
            match resp {
                Ok(r) => r.into_json::<Value>().map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let reply = match reply {
            Ok(v) => v,
            Err(e) => {
                // The whole request failed (network, 401 bad key, 5xx): no token is to blame.
                warn!(%app, "FCM push failed: {e}");
                report.failed += tokens.len();
                return;
            }
        };
        let results = reply.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
        for (token, result) in tokens.iter().zip(results.iter()) {
            let error = result.get("error").and_then(Value::as_str).unwrap_or("");
            match error {
                "" => {
                    report.delivered += 1;
                    if let Some(canonical) = result.get("registration_id").and_then(Value::as_str).filter(|c| !c.is_empty() && c != token) {
                        match self.store.replace_push_token("fcm", app, token, canonical).await {
                            Ok(()) => report.replaced += 1,
                            Err(e) => warn!(%app, "FCM canonical token not stored: {e}"),
                        }
                    }
                }
                "Unavailable" => report.failed += 1,
                other => {
                    report.failed += 1;
                    debug!(%app, error = %other, "FCM refused a token");
                    self.forget("fcm", app, token, report).await;
                }
            }
        }
    }

    async fn forget(&self, kind: &str, topic: &str, token: &str, report: &mut PushReport) {
        match self.store.remove_push_token(kind, topic, token).await {
            Ok(()) => report.removed += 1,
            Err(store::StoreError::NotFound(_)) => {}
            Err(e) => warn!(%kind, %topic, "dead push token not removed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
