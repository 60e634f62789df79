//! Calls started over the server REST API (`POST /rest-api/call/startup`, reference
//! 004 §2.5): a SIP call placed as the account the body names, with no browser on it.
//! The backend then plays sound files into it (`inject_sound`), sends it digits
//! (`send_dtmf`), finds it and ends it (`terminate`), as it does a browser's call;
//! its statuses reach the app's backend as `CallStatusEvent`s.
//!
//! To the engine such a call is an announcement leg ([`engine::Service::Announcement`]):
//! the called party hears silence until a sound is injected. One task per call follows
//! the leg and carries out the REST commands. Relaying the call to RTMP or to a stream
//! (`rtmpUrl`, `toStream`) is WCS's streaming side, which Switchboard does not have:
//! such a request is refused with a 400 that says so.

use super::hooks::{HookContext, Hooks};
use super::protocol::call_status_for_sip;
use super::session::{app_hooks, body_of, rest_error as error, str_of, target_uri, CallEntry, RestCommand};
use super::WcsState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::{DialOutRequest, DigestCredentials, DtmfMethod, EngineError, EngineHandle, LegId, LegInfo, LegState, Service};
use serde_json::{Map, Value};
use sip::{Peer, Transport, Uri};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How often a call's task looks at its leg.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// An engine refusal as the REST API's error: the caller's fault or a target with no
/// route is a 4xx; only a server in trouble is a 5xx.
fn engine_error(e: EngineError) -> Response {
    match e {
        EngineError::BadTarget(m) | EngineError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
        EngineError::Unroutable(m) => error(StatusCode::NOT_FOUND, m),
        EngineError::Conflict(m) => error(StatusCode::CONFLICT, m),
        EngineError::ShuttingDown => error(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"),
        e => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `POST /rest-api/call/startup`: 200 with an empty body once the INVITE is on its
/// way (the outcome shows in `find` and the `CallStatusEvent` hooks); 409 for a
/// `callId` in use; 400 for a body that names no call, or asks for RTMP or a stream.
pub(crate) async fn startup(State(st): State<WcsState>, body: axum::body::Bytes) -> Response {
    let b = match body_of(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let call_id = str_of(&b, "callId");
    let callee = str_of(&b, "callee").trim().to_owned();
    if call_id.is_empty() || call_id.len() > 128 {
        return error(StatusCode::BAD_REQUEST, "callId is required (1 to 128 characters): it names the call for find, terminate and inject_sound");
    }
    if callee.is_empty() {
        return error(StatusCode::BAD_REQUEST, "callee is required: a SIP URI, or a user or number");
    }
    if let Some(k) = ["rtmpUrl", "rtmpStream", "toStream"].into_iter().find(|k| !str_of(&b, k).is_empty()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{k}: Switchboard does not relay calls to RTMP or to streams; leave rtmpUrl, rtmpStream and toStream out to place a SIP call and play sounds into it"),
        );
    }
    let Some(engine) = st.engine.clone() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "this server places no calls (no engine)");
    };
    let app_key = match str_of(&b, "appKey") {
        k if k.is_empty() => "defaultApp".to_owned(),
        k => k,
    };
    let (base_url, methods) = match app_hooks(&st, &app_key).await {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let caller = str_of(&b, "sipLogin");
    let mut visible_name = str_of(&b, "visibleName");
    if visible_name.is_empty() {
        visible_name = caller.clone();
    }
    // The call is known under its id from here on: a second startup with it is a 409.
    let (tx, rx) = mpsc::unbounded_channel();
    let mut view = Map::new();
    view.insert("callId".into(), call_id.clone().into());
    view.insert("incoming".into(), false.into());
    view.insert("status".into(), "PENDING".into());
    view.insert("caller".into(), caller.clone().into());
    view.insert("callee".into(), callee.clone().into());
    view.insert("visibleName".into(), visible_name.clone().into());
    view.insert("hasAudio".into(), true.into());
    view.insert("hasVideo".into(), false.into());
    view.insert("isMsrp".into(), false.into());
    view.insert("nodeId".into(), st.cfg.node_id.clone().into());
    view.insert("sessionId".into(), format!("/rest-api/{call_id}").into());
    view.insert("appKey".into(), app_key.clone().into());
    {
        let mut calls = st.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.contains_key(&call_id) {
            return error(StatusCode::CONFLICT, format!("callId {call_id:?} is already in use"));
        }
        calls.insert(call_id.clone(), CallEntry { view: view.clone(), commands: tx });
    }
    let forget = |st: &WcsState| {
        st.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&call_id);
    };
    let (to, peer) = match route(&st, &engine, &b, &callee).await {
        Ok(x) => x,
        Err(r) => {
            forget(&st);
            return r;
        }
    };
    let password = str_of(&b, "sipPassword");
    let credentials = (!password.is_empty()).then(|| DigestCredentials {
        username: match str_of(&b, "sipAuthenticationName") {
            a if a.is_empty() => caller.clone(),
            a => a,
        },
        password,
    });
    let from_host = Some(str_of(&b, "sipDomain")).filter(|d| !d.is_empty());
    let req = DialOutRequest {
        to: to.clone(),
        peer,
        from_user: (!caller.is_empty()).then(|| caller.clone()),
        service: Service::Announcement,
        hangup_after: None,
        domain: None,
        from_display: (!visible_name.is_empty()).then(|| visible_name.clone()),
        from_host,
        credentials,
    };
    let leg = match engine.dial_out(req).await {
        Ok(l) => l,
        Err(e) => {
            forget(&st);
            return engine_error(e);
        }
    };
    info!(call = %call_id, leg = %leg.leg_id, to = %to, "WCS REST: call started");
    let hooks = Hooks::new(
        HookContext {
            node_id: st.cfg.node_id.clone(),
            session_id: format!("/rest-api/{call_id}"),
            app_key,
            base_url,
            methods,
            timeout: st.cfg.hook_timeout,
            secret: st.cfg.hook_secret.clone(),
            retries: st.cfg.hook_retries,
        },
        st.event_outbox.clone(),
    );
    let mut call = RestCall { st, engine, leg: leg.leg_id, call_id, view, hooks, status: String::new(), terminated: false, sound: None };
    // TRYING first, as for a page's call, however fast the callee is.
    call.report("TRYING", None, None);
    tokio::spawn(call.follow(rx));
    StatusCode::OK.into_response()
}

/// Where the INVITE goes: a directory user or number (ours) to its device; anything
/// else to the page's `sipOutboundProxy` (and `sipPort`) if given, else to the host of
/// the callee's URI. A bare user or number goes to `sipDomain` when that is not ours.
async fn route(st: &WcsState, engine: &EngineHandle, b: &Map<String, Value>, callee: &str) -> Result<(Uri, Option<Peer>), Response> {
    match engine.route_user(None, callee).await {
        Ok(Some(Ok((uri, peer)))) => return Ok((uri, Some(peer))),
        Ok(Some(Err(e))) => return Err(engine_error(e)),
        Ok(None) => {}
        Err(e) => return Err(engine_error(e)),
    }
    let ours = |host: &str| st.cfg.our_domains.iter().any(|d| d.eq_ignore_ascii_case(host));
    let domain = match str_of(b, "sipDomain") {
        d if d.is_empty() => st.cfg.default_domain.clone(),
        d => d,
    };
    let to = target_uri(callee, &domain).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let proxy = str_of(b, "sipOutboundProxy");
    if proxy.is_empty() && ours(&to.host) {
        return Err(error(StatusCode::NOT_FOUND, format!("callee {callee:?}: no user or number of that name here")));
    }
    if proxy.is_empty() {
        // The engine resolves the URI's host.
        return Ok((to, None));
    }
    let port: u16 = match str_of(b, "sipPort").parse() {
        Ok(p) if p > 0 => p,
        _ => 5060,
    };
    let addr = match proxy.parse::<std::net::SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            let lookup = tokio::net::lookup_host((proxy.as_str(), port));
            match tokio::time::timeout(engine::handle::RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(mut a)) => a.next().ok_or_else(|| error(StatusCode::NOT_FOUND, format!("sipOutboundProxy {proxy:?} has no address")))?,
                _ => return Err(error(StatusCode::NOT_FOUND, format!("cannot resolve sipOutboundProxy {proxy:?}"))),
            }
        }
    };
    Ok((to, Some(Peer { addr, transport: Transport::Udp })))
}

/// One REST-started call, as its task follows it.
struct RestCall {
    st: WcsState,
    engine: EngineHandle,
    leg: LegId,
    call_id: String,
    view: Map<String, Value>,
    hooks: Hooks,
    /// The last status reported.
    status: String,
    terminated: bool,
    /// A sound injected before the answer: it plays once the call is answered.
    sound: Option<PathBuf>,
}

impl RestCall {
    async fn follow(mut self, mut commands: mpsc::UnboundedReceiver<RestCommand>) {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(c) = commands.recv() => self.on_command(c).await,
                _ = tick.tick() => {}
            }
            let leg = match self.engine.leg(self.leg.clone()).await {
                Ok(Some(l)) => l,
                // Gone from the engine (or the engine is): the call is over.
                _ => {
                    self.report("FAILED", Some("the call is gone"), None);
                    break;
                }
            };
            if self.on_leg(&leg).await {
                break;
            }
        }
        self.st.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.call_id);
    }

    async fn on_command(&mut self, c: RestCommand) {
        match c {
            RestCommand::Terminate(_) => {
                self.terminated = true;
                if let Err(e) = self.engine.hangup(self.leg.clone()).await {
                    info!(call = %self.call_id, "terminate: {e}");
                }
            }
            RestCommand::SendDtmf { dtmf, kind, .. } => {
                let method = match kind.to_ascii_uppercase().as_str() {
                    "INFO" | "INFO_RELAY" => DtmfMethod::Info,
                    _ => DtmfMethod::Rfc4733,
                };
                let digits: String = dtmf.chars().filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d')).collect();
                if let Err(e) = self.engine.dtmf_to_leg(self.leg.clone(), &digits, method).await {
                    warn!(call = %self.call_id, "send_dtmf: {e}");
                }
            }
            RestCommand::InjectSound { file, .. } => {
                self.sound = Some(file);
                self.play_pending().await;
            }
        }
    }

    /// Plays the injected sound if the call is answered (else it waits for the answer).
    async fn play_pending(&mut self) {
        if !matches!(self.status.as_str(), "ESTABLISHED" | "HOLD") {
            return;
        }
        let Some(file) = self.sound.take() else { return };
        info!(call = %self.call_id, file = %file.display(), "WCS REST: injecting a sound");
        if let Err(e) = self.engine.play_file_to_leg(self.leg.clone(), file).await {
            warn!(call = %self.call_id, "inject_sound: {e}");
        }
    }

    /// Reports the leg's state if it changed; true once the call is over.
    async fn on_leg(&mut self, leg: &LegInfo) -> bool {
        let status = match leg.state {
            LegState::Calling => "TRYING",
            LegState::Ringing => "RING",
            LegState::Active => "ESTABLISHED",
            LegState::Held => "HOLD",
            LegState::Ended => {
                let code = leg.end_status.unwrap_or(0);
                let reason = leg.end_reason.clone().unwrap_or_default();
                let (status, info) = if leg.answered_ms.is_some() || self.terminated {
                    let info = if self.terminated { "Terminated by the REST API".to_owned() } else { format!("{code} {reason}").trim().to_owned() };
                    ("FINISH", info)
                } else {
                    (call_status_for_sip(code, false), format!("SIP {code} {reason}").trim().to_owned())
                };
                self.report(status, Some(&info), (code > 0).then_some(code));
                return true;
            }
        };
        if status != self.status {
            let sip_status = match leg.state {
                LegState::Ringing => Some(180),
                LegState::Active | LegState::Held => Some(200),
                _ => None,
            };
            self.report(status, None, sip_status);
            self.play_pending().await;
        }
        false
    }

    /// A new status: the REST API's view and the `CallStatusEvent` hook.
    fn report(&mut self, status: &str, info: Option<&str>, sip_status: Option<u16>) {
        self.status = status.to_owned();
        self.view.insert("status".into(), status.into());
        if let Some(s) = sip_status {
            self.view.insert("sipStatus".into(), s.into());
        }
        let mut fields = self.view.clone();
        for k in ["nodeId", "sessionId", "appKey"] {
            // The hook adds these itself.
            fields.remove(k);
        }
        if let Some(i) = info {
            fields.insert("info".into(), i.into());
        }
        self.hooks.notify("CallStatusEvent", &fields);
        if let Some(e) = self.st.calls.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&self.call_id) {
            e.view = self.view.clone();
        }
    }
}
