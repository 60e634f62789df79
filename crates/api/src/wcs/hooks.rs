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
//! - **Events** (`…StatusEvent`) cannot refuse. With an [`EventOutbox`] (the server
//!   has one) each is stored before it is sent and delivered by the shell in order per
//!   app, retried with back-off while the backend is down or answers 5xx, across
//!   restarts (`store::hook_outbox`). Without one (unit tests), one task per session
//!   POSTs them in order, once.
//!
//! Signing, as WCS's `rest_hook_send_hash`: with `[wcs] hook_secret` set every POST
//! carries `Authorization: WCS <hex HMAC-MD5 of the body>` ([`signature`]). An
//! invocation that cannot reach its backend is tried again `retries` times (WCS's
//! `rest_client_request_retry_count`), a short pause between; one that timed out is not,
//! since the backend may have acted on it.
//!
//! The backend shapes all this per connection with `restClientConfig` in its `connect`
//! answer: per method `clientExclude`, `restExclude`, `restOnError`, `restPolicy`
//! (`NOTIFY`, `OVERWRITE`, `DISABLE`) and `restOverwrite`.
//!
//! POSTs run on blocking threads (ureq, the client the rest of the crate uses): hooks
//! are control-plane, a handful per call.

use hmac::{Hmac, Mac};
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
    /// Signs every POST (WCS's `rest_hook_secret_key`); None: unsigned.
    pub secret: Option<Arc<str>>,
    /// Further tries of an invocation whose backend could not be reached.
    pub retries: u32,
}

impl HookContext {
    /// Whether `method` is POSTed at all for this app.
    fn posts(&self, method: &str) -> bool {
        self.base_url.is_some() && self.methods.as_ref().is_none_or(|m| m.iter().any(|x| x == method))
    }
}

/// Where event hooks go to be stored and delivered (the shell's writer): the event
/// POSTs of every session, in the order they happened.
pub type EventOutbox = mpsc::UnboundedSender<store::NewHookEvent>;

/// A session's hooks.
#[derive(Clone)]
pub struct Hooks {
    ctx: Arc<HookContext>,
    policies: Arc<std::sync::RwLock<HashMap<String, MethodPolicy>>>,
    events: EventSender,
}

#[derive(Clone)]
enum EventSender {
    Outbox(EventOutbox),
    /// No outbox: this session's own task POSTs each event once.
    Direct(mpsc::UnboundedSender<(String, String)>),
}

/// `Authorization` of a signed hook: `WCS <hex HMAC-MD5 of the body>` (WCS's
/// `rest_hook_send_hash`).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<md5::Md5>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(4 + 2 * tag.len());
    hex.push_str("WCS ");
    for b in tag {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The outcome of one POST.
pub enum Posted {
    Status(u16, String, Option<Map<String, Value>>),
    /// No answer: `sent` = the request may have reached the backend (a timeout).
    Transport { error: String, sent: bool },
}

/// POSTs `text` (a JSON object) to `url`, signed with `secret` when given.
pub fn post(agent: &ureq::Agent, url: &str, text: &str, secret: Option<&str>) -> Posted {
    let mut req = agent.post(url).set("Content-Type", "application/json;charset=UTF-8");
    if let Some(k) = secret {
        req = req.set("Authorization", &signature(k, text.as_bytes()));
    }
    let (code, reason, resp) = match req.send_string(text) {
        Ok(r) => (r.status(), r.status_text().to_owned(), r),
        Err(ureq::Error::Status(code, r)) => (code, r.status_text().to_owned(), r),
        Err(ureq::Error::Transport(t)) => {
            let sent = !matches!(t.kind(), ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns | ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme);
            return Posted::Transport { error: t.to_string(), sent };
        }
    };
    let body = resp.into_string().ok().and_then(|s| serde_json::from_str::<Value>(&s).ok()).and_then(|v| match v {
        Value::Object(m) => Some(m),
        _ => None,
    });
    Posted::Status(code, reason, body)
}

impl Hooks {
    /// Hooks of one session. Events go to `outbox`; without one, to a task of this
    /// session's own (started on the current runtime).
    pub fn new(ctx: HookContext, outbox: Option<EventOutbox>) -> Hooks {
        let ctx = Arc::new(ctx);
        let events = match outbox {
            Some(o) => EventSender::Outbox(o),
            None => {
                let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
                let task_ctx = ctx.clone();
                let agent = ureq::AgentBuilder::new().timeout(ctx.timeout).build();
                tokio::spawn(async move {
                    while let Some((method, body)) = rx.recv().await {
                        let Some(base) = task_ctx.base_url.clone() else { continue };
                        let (agent, secret) = (agent.clone(), task_ctx.secret.clone());
                        let url = format!("{base}/{method}");
                        let done = tokio::task::spawn_blocking(move || post(&agent, &url, &body, secret.as_deref())).await;
                        match done {
                            Ok(Posted::Status(200, ..)) => {}
                            Ok(Posted::Status(code, reason, _)) => debug!(%method, code, %reason, "WCS event hook not accepted (events cannot refuse)"),
                            Ok(Posted::Transport { error, .. }) => warn!(%method, %error, "WCS event hook not delivered"),
                            Err(_) => {}
                        }
                    }
                });
                EventSender::Direct(tx)
            }
        };
        Hooks { ctx, policies: Default::default(), events }
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

    /// Whether a refusal of `method` is reported to the page (`restOnError: FAIL`).
    pub fn fails_on_refusal(&self, method: &str) -> bool {
        self.policy(method).rest_on_error == Some(OnError::Fail)
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
        let text = Value::Object(self.body(method, fields)).to_string();
        let agent = ureq::AgentBuilder::new().timeout(self.ctx.timeout).build();
        let url = format!("{base}/{method}");
        let mut tries = 0;
        let posted = loop {
            let (agent, url, text, secret) = (agent.clone(), url.clone(), text.clone(), self.ctx.secret.clone());
            let posted = tokio::task::spawn_blocking(move || post(&agent, &url, &text, secret.as_deref())).await;
            match posted {
                Ok(Posted::Transport { error, sent: false }) if tries < self.ctx.retries => {
                    tries += 1;
                    debug!(%method, %error, tries, "WCS hook: backend unreachable, trying again");
                    tokio::time::sleep(Duration::from_millis(250 << tries.min(4))).await;
                }
                p => break p,
            }
        };
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
            Ok(Posted::Transport { error: e, .. }) => {
                warn!(%method, error = %e, tries = tries + 1, "WCS hook failed");
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
        let body = Value::Object(self.body(method, fields)).to_string();
        match &self.events {
            EventSender::Outbox(o) => {
                let Some(base) = &self.ctx.base_url else { return };
                let ev = store::NewHookEvent { queue: self.ctx.app_key.clone(), url: format!("{base}/{method}"), method: method.to_owned(), body };
                if o.send(ev).is_err() {
                    warn!(%method, "WCS event hook outbox closed: event not sent");
                }
            }
            EventSender::Direct(tx) => {
                let _ = tx.send((method.to_owned(), body));
            }
        }
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
    fn the_signature_is_wcs_and_hex_hmac_md5_of_the_body() {
        // RFC 2104's test case 2.
        assert_eq!(signature("Jefe", b"what do ya want for nothing?"), "WCS 750c783e6ab0b503eaa86e310a5db738");
    }

    /// A backend that starts listening `after` its port was first tried: answers one
    /// POST with 200 and `{"ok":1}`.
    fn late_backend(after: Duration) -> (std::net::SocketAddr, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(after);
            let l = std::net::TcpListener::bind(addr).unwrap();
            let (mut c, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&req).contains("\r\n\r\n{") || !req.ends_with(b"}") {
                let n = c.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"ok\":1}");
            String::from_utf8_lossy(&req).into_owned()
        });
        (addr, t)
    }

    fn context(addr: std::net::SocketAddr, retries: u32, secret: Option<&str>) -> HookContext {
        HookContext {
            node_id: "n@127.0.0.1".into(),
            session_id: "/127.0.0.1:1/127.0.0.1:2".into(),
            app_key: "defaultApp".into(),
            base_url: Some(format!("http://{addr}/hooks")),
            methods: None,
            timeout: Duration::from_secs(5),
            secret: secret.map(Into::into),
            retries,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_invocation_tries_a_backend_that_cannot_be_reached_again() {
        let fields = json!({"callee": "bob"}).as_object().cloned().unwrap();
        // Back 0.4 s later: the second try (0.5 s after the first) reaches it, signed.
        let (addr, backend) = late_backend(Duration::from_millis(400));
        let v = Hooks::new(context(addr, 3, Some("k")), None).invoke("call", &fields).await;
        let Verdict::Allow { body: Some(b), .. } = v else { panic!("the backend answered: {v:?}") };
        assert_eq!(b.get("ok"), Some(&json!(1)));
        let req = backend.join().unwrap();
        assert!(req.starts_with("POST /hooks/call "), "{req}");
        let body = &req[req.find("\r\n\r\n").unwrap() + 4..];
        assert!(req.contains(&format!("Authorization: {}", signature("k", body.as_bytes()))), "signed: {req}");
        // No retries: the unreachable backend is logged and the call goes ahead unanswered.
        let (addr, backend) = late_backend(Duration::from_millis(400));
        let v = Hooks::new(context(addr, 0, None), None).invoke("call", &fields).await;
        assert_eq!(v, Verdict::Allow { changes: Map::new(), body: None });
        drop(backend); // still waiting for a request: left to the process's end
    }

    #[test]
    fn only_an_exact_status_reason_body_gives_the_reason() {
        let m = |v: Value| v.as_object().cloned();
        assert_eq!(custom_reason(m(json!({"status": 403, "reason": "no credit"})).as_ref()), Some("no credit".into()));
        assert_eq!(custom_reason(m(json!({"status": 403, "reason": "x", "more": 1})).as_ref()), None);
        assert_eq!(custom_reason(None), None);
    }
}
