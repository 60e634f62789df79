//! REST hooks (reference 004 §2): each client action and each status event of a WCS
//! session is POSTed as JSON to the app's REST URL + "/" + method name, with the
//! context fields `nodeId`, `sessionId` and `appKey`.
//!
//! - **Invocations** (`connect`, `call`, `answer`, `hold`, `transfer`, `sendDtmf`,
//!   `OnCallEvent`, ...) wait for the backend: a 200 allows, and under the `OVERWRITE`
//!   policy its body may change the fields `restOverwrite` names (e.g. `callee`).
//!   Any other HTTP status refuses, unless that method's `restOnError` was set to `LOG`
//!   explicitly. A timeout or an unreachable backend refuses only under `FAIL` (the
//!   default `LOG` logs it and goes on).
//! - **Events** (`…StatusEvent`) are queued and POSTed in order by one task per
//!   session, so the backend sees them in the order they happened; they cannot refuse.
//!
//! The backend shapes all this per connection with `restClientConfig` in its `connect`
//! answer: per method `clientExclude`, `restExclude`, `restOnError`, `restPolicy`
//! (`NOTIFY`, `OVERWRITE`, `DISABLE`) and `restOverwrite`.
//!
//! POSTs run on blocking threads (ureq, the client the rest of the crate uses): hooks
//! are control-plane, a handful per call.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Log,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    Notify,
    Overwrite,
    Disable,
}

/// One method's entry of `restClientConfig`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodPolicy {
    pub client_exclude: Vec<String>,
    pub rest_exclude: Vec<String>,
    /// None: not given (non-200 refuses, transport errors are logged).
    pub rest_on_error: Option<OnError>,
    pub rest_policy: Policy,
    pub rest_overwrite: Vec<String>,
}

fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

impl MethodPolicy {
    fn from_json(v: &Value) -> MethodPolicy {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_ascii_uppercase);
        MethodPolicy {
            client_exclude: list(v.get("clientExclude")),
            rest_exclude: list(v.get("restExclude")),
            rest_on_error: match s("restOnError").as_deref() {
                Some("FAIL") => Some(OnError::Fail),
                Some("LOG") => Some(OnError::Log),
                _ => None,
            },
            rest_policy: match s("restPolicy").as_deref() {
                Some("OVERWRITE") => Policy::Overwrite,
                Some("DISABLE") => Policy::Disable,
                _ => Policy::Notify,
            },
            rest_overwrite: list(v.get("restOverwrite")),
        }
    }
}

/// What the backend said to an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on; `changes` are the fields the backend may overwrite, from its body.
    Allow { changes: Map<String, Value>, body: Option<Map<String, Value>> },
    /// Stop; `info` is the text the client gets (the backend's `reason`, else the
    /// HTTP reason phrase).
    Refuse { status: u16, info: String },
}

/// Who this session is, for every hook body.
#[derive(Debug, Clone)]
pub struct HookContext {
    pub node_id: String,
    pub session_id: String,
    pub app_key: String,
    /// The app's REST URL; None: no hooks.
    pub base_url: Option<String>,
    /// The methods and events the app's backend gets (WCS's per-app REST methods);
    /// None: every one. The others are not POSTed: invocations go ahead as if allowed.
    pub methods: Option<Vec<String>>,
    pub timeout: Duration,
}

impl HookContext {
    /// Whether `method` is POSTed at all for this app.
    fn posts(&self, method: &str) -> bool {
        self.base_url.is_some() && self.methods.as_ref().is_none_or(|m| m.iter().any(|x| x == method))
    }
}

/// A session's hooks.
#[derive(Clone)]
pub struct Hooks {
    ctx: Arc<HookContext>,
    policies: Arc<std::sync::RwLock<HashMap<String, MethodPolicy>>>,
    events: mpsc::UnboundedSender<(String, Map<String, Value>)>,
}

/// The outcome of one POST.
enum Posted {
    Status(u16, String, Option<Map<String, Value>>),
    Transport(String),
}

fn post(agent: &ureq::Agent, url: &str, body: &Map<String, Value>) -> Posted {
    let text = Value::Object(body.clone()).to_string();
    let res = agent.post(url).set("Content-Type", "application/json;charset=UTF-8").send_string(&text);
    let (code, reason, resp) = match res {
        Ok(r) => (r.status(), r.status_text().to_owned(), r),
        Err(ureq::Error::Status(code, r)) => (code, r.status_text().to_owned(), r),
        Err(e) => return Posted::Transport(e.to_string()),
    };
    let body = resp.into_string().ok().and_then(|s| serde_json::from_str::<Value>(&s).ok()).and_then(|v| match v {
        Value::Object(m) => Some(m),
        _ => None,
    });
    Posted::Status(code, reason, body)
}

impl Hooks {
    /// Hooks of one session; starts its event sender task (on the current runtime).
    pub fn new(ctx: HookContext) -> Hooks {
        let ctx = Arc::new(ctx);
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, Map<String, Value>)>();
        let task_ctx = ctx.clone();
        let agent = ureq::AgentBuilder::new().timeout(ctx.timeout).build();
        tokio::spawn(async move {
            while let Some((method, body)) = rx.recv().await {
                let Some(base) = task_ctx.base_url.clone() else { continue };
                let agent = agent.clone();
                let url = format!("{base}/{method}");
                let done = tokio::task::spawn_blocking(move || post(&agent, &url, &body)).await;
                match done {
                    Ok(Posted::Status(200, ..)) => {}
                    Ok(Posted::Status(code, reason, _)) => debug!(%method, code, %reason, "WCS event hook not accepted (events cannot refuse)"),
                    Ok(Posted::Transport(e)) => warn!(%method, error = %e, "WCS event hook not delivered"),
                    Err(_) => {}
                }
            }
        });
        Hooks { ctx, policies: Default::default(), events: tx }
    }

    pub fn context(&self) -> &HookContext {
        &self.ctx
    }

    /// Takes `restClientConfig` from the backend's `connect` answer.
    pub fn set_rest_client_config(&self, v: &Value) {
        let Some(o) = v.as_object() else { return };
        let mut p = self.policies.write().unwrap_or_else(|e| e.into_inner());
        for (method, entry) in o {
            p.insert(method.clone(), MethodPolicy::from_json(entry));
        }
    }

    pub fn policy(&self, method: &str) -> MethodPolicy {
        self.policies.read().unwrap_or_else(|e| e.into_inner()).get(method).cloned().unwrap_or_default()
    }

    /// The body as POSTed: the fields, the context, minus `restExclude`.
    fn body(&self, method: &str, fields: &Map<String, Value>) -> Map<String, Value> {
        let mut b = fields.clone();
        b.insert("nodeId".into(), self.ctx.node_id.clone().into());
        b.insert("sessionId".into(), self.ctx.session_id.clone().into());
        b.insert("appKey".into(), self.ctx.app_key.clone().into());
        for k in self.policy(method).rest_exclude {
            b.remove(&k);
        }
        b
    }

    /// Strips the method's `clientExclude` fields from what goes to the browser.
    pub fn for_client(&self, method: &str, mut fields: Map<String, Value>) -> Map<String, Value> {
        for k in self.policy(method).client_exclude {
            fields.remove(&k);
        }
        fields
    }

    /// An invocation: POSTs and waits for the backend's verdict.
    pub async fn invoke(&self, method: &str, fields: &Map<String, Value>) -> Verdict {
        let policy = self.policy(method);
        let allow = || Verdict::Allow { changes: Map::new(), body: None };
        let Some(base) = self.ctx.base_url.clone() else { return allow() };
        if policy.rest_policy == Policy::Disable || !self.ctx.posts(method) {
            return allow();
        }
        let body = self.body(method, fields);
        let agent = ureq::AgentBuilder::new().timeout(self.ctx.timeout).build();
        let url = format!("{base}/{method}");
        let posted = tokio::task::spawn_blocking(move || post(&agent, &url, &body)).await;
        match posted {
            Ok(Posted::Status(200, _, body)) => {
                let mut changes = Map::new();
                if policy.rest_policy == Policy::Overwrite {
                    if let Some(b) = &body {
                        for k in &policy.rest_overwrite {
                            if let Some(v) = b.get(k) {
                                changes.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
                Verdict::Allow { changes, body }
            }
            Ok(Posted::Status(code, reason, body)) => {
                warn!(%method, code, %reason, "WCS hook refused");
                if policy.rest_on_error == Some(OnError::Log) {
                    return allow();
                }
                Verdict::Refuse { status: code, info: custom_reason(body.as_ref()).unwrap_or(reason) }
            }
            Ok(Posted::Transport(e)) => {
                warn!(%method, error = %e, "WCS hook failed");
                match policy.rest_on_error {
                    Some(OnError::Fail) => Verdict::Refuse { status: 500, info: format!("REST hook {method} failed: {e}") },
                    _ => allow(),
                }
            }
            Err(e) => Verdict::Refuse { status: 500, info: format!("REST hook {method} failed: {e}") },
        }
    }

    /// An event: queued, POSTed in order; never waits.
    pub fn notify(&self, method: &str, fields: &Map<String, Value>) {
        if !self.ctx.posts(method) || self.policy(method).rest_policy == Policy::Disable {
            return;
        }
        let _ = self.events.send((method.to_owned(), self.body(method, fields)));
    }
}

/// The backend's own reason: a body that is exactly `{"status": n, "reason": "..."}`.
fn custom_reason(body: Option<&Map<String, Value>>) -> Option<String> {
    let b = body?;
    if b.len() == 2 && b.get("status").is_some_and(Value::is_number) {
        return b.get("reason").and_then(Value::as_str).map(str::to_owned);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rest_client_config_reads_lists_and_policies() {
        let p = MethodPolicy::from_json(&json!({"restExclude": "sdp, custom", "restOnError": "fail", "restPolicy": "OVERWRITE", "restOverwrite": "callee"}));
        assert_eq!(p.rest_exclude, vec!["sdp", "custom"]);
        assert_eq!(p.rest_on_error, Some(OnError::Fail));
        assert_eq!(p.rest_policy, Policy::Overwrite);
        assert_eq!(p.rest_overwrite, vec!["callee"]);
        assert_eq!(MethodPolicy::from_json(&json!({})), MethodPolicy::default());
    }

    #[test]
    fn only_an_exact_status_reason_body_gives_the_reason() {
        let m = |v: Value| v.as_object().cloned();
        assert_eq!(custom_reason(m(json!({"status": 403, "reason": "no credit"})).as_ref()), Some("no credit".into()));
        assert_eq!(custom_reason(m(json!({"status": 403, "reason": "x", "more": 1})).as_ref()), None);
        assert_eq!(custom_reason(None), None);
    }
}
