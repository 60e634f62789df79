//! One browser connection (reference 004 §1): `connection` → `connect` hook →
//! `getUserData` (→ SIP REGISTER → `registered`), calls both ways, `ping`/`pong`, and a
//! final FINISH for every call, whatever happened.
//!
//! The session is one task: it waits on the browser's frames, its SIP agent's events,
//! its WebRTC legs' notes and the keep-alive tick, one at a time, so a call's state
//! changes in one place. Invocation hooks are awaited inline (the backend's verdict is
//! needed before the call goes on); events are queued and never wait.
//!
//! A session that asked for `keepAlive` outlives its socket (reference 004 §1.2): its
//! calls end (their media was the page's), but its SIP identity stays registered for
//! `[wcs] keep_alive_s`, and a new socket whose `connection` carries the session's
//! `authToken` takes it over: `getUserData` again with the same token, `registered`,
//! and calls to the user reach the new page. While no page is attached, calls to it
//! get 480. A new socket hands itself to the kept session's task ([`Reattach`]).

use super::agent::SipAgent;
use super::hooks::{HookContext, Hooks, Verdict};
use super::media::{sip_sdp, MediaNote, PlainMedia};
use super::protocol::{self, call_status_for_sip, frame, set_remote_sdp, status_message, ClientFrame};
use super::WcsState;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use sip::sdp::SessionDescription;
use sip::ua::{CallRef, MessageRef, RegistrationStatus, UaConfig, UaEvent};
use sip::Uri;
use std::net::SocketAddr;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// A live call as `/rest-api/call/find` shows it, and how to reach its session.
#[derive(Clone)]
pub(crate) struct CallEntry {
    pub view: Map<String, Value>,
    pub commands: mpsc::UnboundedSender<RestCommand>,
}

/// What the server REST API asks of a session's call.
#[derive(Debug, Clone)]
pub(crate) enum RestCommand {
    Terminate(String),
    SendDtmf { call_id: String, dtmf: String, kind: String },
    /// A sound file (already found) for the SIP side of the call.
    InjectSound { call_id: String, file: std::path::PathBuf },
}

struct WcsCall {
    call_id: String,
    incoming: bool,
    status: String,
    caller: String,
    callee: String,
    visible_name: String,
    sip: Option<CallRef>,
    media: Option<u64>,
    plain: Option<PlainMedia>,
    /// The SIP side's offer (incoming calls), answered once the browser answers.
    sip_offer: Option<String>,
    sip_sdp_extra: Vec<String>,
    sdp_version: u64,
    held: bool,
    /// FINISH (or FAILED/BUSY) was sent to the browser.
    finished: bool,
}

struct Session {
    st: WcsState,
    out: mpsc::UnboundedSender<String>,
    hooks: Option<Hooks>,
    peer: SocketAddr,
    session_id: String,
    /// The connection fields as `getUserData` echoed them (after the backend's changes).
    conn: Map<String, Value>,
    established: bool,
    agent: Option<SipAgent>,
    calls: Vec<WcsCall>,
    media_tx: mpsc::UnboundedSender<MediaNote>,
    rest_tx: mpsc::UnboundedSender<RestCommand>,
    missed_pongs: u32,
    close: bool,
    /// Legacy `sendMessage`s on their way: the SIP MESSAGE and the client's fields.
    messages: Vec<(MessageRef, Map<String, Value>)>,
    /// The SIP registration is up (a re-attached page is told `registered`).
    registered: bool,
    /// Kept with no page attached: calls to it are refused.
    parked: bool,
    /// Where a new socket with this session's token goes (keepAlive).
    reattach: mpsc::UnboundedSender<Reattach>,
}

/// An event of this session that its backend refused (see [`WcsState::event_refused`]).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub event: String,
    pub status: u16,
    pub reason: String,
}

/// A new socket for a kept session: its read half, the sender its writer task reads,
/// where it came from, and its `connection` fields.
pub(crate) struct Reattach {
    stream: futures_util::stream::SplitStream<WebSocket>,
    out: mpsc::UnboundedSender<String>,
    writer: tokio::task::JoinHandle<()>,
    peer: SocketAddr,
    data: Map<String, Value>,
}

/// Runs one connection until the browser goes or we drop it (a kept session: until
/// its time is up with no page back).
pub async fn run(st: WcsState, socket: WebSocket, peer: SocketAddr, host: String) {
    let (mut sink, stream) = socket.split();
    let mut stream = Some(stream);
    let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
    let mut writer = tokio::spawn(async move {
        while let Some(text) = out_rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    let (rest_tx, mut rest_rx) = mpsc::unbounded_channel();
    // New sockets for this session (keepAlive).
    let (reattach_tx, mut reattach_rx) = mpsc::unbounded_channel::<Reattach>();
    let session_id = format!("/{peer}/{host}");
    let (refused_tx, mut refused_rx) = mpsc::unbounded_channel::<Refusal>();
    st.hear_refusals(&session_id, refused_tx);
    let mut s = Session {
        st: st.clone(),
        out,
        hooks: None,
        peer,
        session_id,
        conn: Map::new(),
        established: false,
        agent: None,
        calls: Vec::new(),
        media_tx,
        rest_tx,
        missed_pongs: 0,
        close: false,
        messages: Vec::new(),
        registered: false,
        parked: false,
        reattach: reattach_tx,
    };
    let (_ua_tx, mut ua_rx) = mpsc::unbounded_channel::<UaEvent>();
    let mut ua_rx_live = false;
    let mut ping = tokio::time::interval(st.cfg.ping_interval);
    ping.tick().await;
    // Kept (keepAlive, socket gone): until when.
    let mut kept_until: Option<tokio::time::Instant> = None;
    // This socket is for a kept session: its `connection` fields.
    let mut hand_over: Option<Map<String, Value>> = None;
    info!(peer = %peer, "WCS client connected");
    loop {
        tokio::select! {
            m = async { stream.as_mut().expect("guarded").next().await }, if stream.is_some() => match m {
                Some(Ok(Message::Text(t))) => {
                    s.missed_pongs = 0;
                    match protocol::parse(&t) {
                        Ok(f) => {
                            if f.message == "connection" || f.message == "connect" {
                                if !s.established && st.kept_session(&str_of(&f.data, "authToken")).is_some() {
                                    hand_over = Some(f.data);
                                    break;
                                }
                                if let Some(rx) = s.on_connection(f.data).await {
                                    ua_rx = rx;
                                    ua_rx_live = true;
                                }
                            } else {
                                s.on_frame(f).await;
                            }
                        }
                        Err(e) => s.send_fail("FAILED", &e, "ErrorEvent"),
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if !s.keeps() {
                        break;
                    }
                    stream = None;
                    kept_until = Some(tokio::time::Instant::now() + st.cfg.keep_alive);
                    s.park();
                }
                Some(Ok(_)) => {} // binary, ping, pong frames: not the call logic's
            },
            Some(r) = reattach_rx.recv() => {
                // The old writer ends with its sender, replaced here.
                stream = Some(r.stream);
                s.out = r.out;
                writer = r.writer;
                s.peer = r.peer;
                kept_until = None;
                s.missed_pongs = 0;
                s.reattached(&r.data);
            }
            _ = async { tokio::time::sleep_until(kept_until.expect("guarded")).await }, if kept_until.is_some() => {
                info!(session = %s.session_id, "kept WCS session: no page came back; ending it");
                break;
            }
            Some(ev) = ua_rx.recv(), if ua_rx_live => s.on_sip(ev).await,
            Some(n) = media_rx.recv() => s.on_media(n).await,
            Some(c) = rest_rx.recv() => s.on_rest(c).await,
            Some(r) = refused_rx.recv() => s.on_refused(r),
            _ = ping.tick(), if stream.is_some() => {
                if s.missed_pongs >= st.cfg.ping_probes {
                    info!(peer = %peer, "WCS client missed {} pings; dropping it", s.missed_pongs);
                    if !s.keeps() {
                        break;
                    }
                    stream = None;
                    kept_until = Some(tokio::time::Instant::now() + st.cfg.keep_alive);
                    s.park();
                    continue;
                }
                s.missed_pongs += 1;
                let _ = s.out.send(frame("ping", Value::Null));
            }
        }
        if s.close {
            break;
        }
    }
    st.forget_refusals(&s.session_id);
    if let (Some(data), Some(stream)) = (hand_over, stream) {
        // This socket belongs to a kept session: its task takes it over.
        let token = str_of(&data, "authToken");
        if let Some(tx) = st.kept_session(&token) {
            let r = Reattach { stream, out: s.out.clone(), writer, peer, data };
            if tx.send(r).is_ok() {
                info!(peer = %peer, "WCS client re-attached to its kept session");
                return;
            }
        }
        s.send_fail("FAILED", "the kept session ended", "ConnectionStatusEvent");
        drop(s.out);
        return;
    }
    st.forget_kept(&s.conn_token());
    s.teardown();
    drop(s.out);
    let _ = writer.await;
    info!(peer = %s.peer, "WCS client gone");
}

/// The app's REST URL and the hooks its backend gets (None: every one).
/// `defaultApp` takes `[wcs] rest_url` and `rest_methods` unless the directory
/// gives it its own.
pub(crate) async fn app_hooks(st: &WcsState, app_key: &str) -> Result<(Option<String>, Option<Vec<String>>), String> {
    let default = || (st.cfg.rest_url.clone(), st.cfg.rest_methods.clone());
    if let Some(store) = &st.store {
        match store.app(app_key).await {
            Ok(Some(app)) if app.enabled => {
                return Ok(match app.rest_url {
                    Some(url) => (Some(url), app.rest_methods),
                    None if app_key == "defaultApp" => default(),
                    None => (None, None),
                })
            }
            Ok(Some(_)) => return Err(format!("application {app_key} is disabled")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot look up application {app_key}: {e}")),
        }
    }
    if app_key == "defaultApp" {
        return Ok(default());
    }
    Err(format!("unknown application {app_key:?} (appKey)"))
}

/// A callee as the SIP URI to call: a SIP URI as it is, a user or number at `domain`.
pub(crate) fn target_uri(callee: &str, domain: &str) -> Result<Uri, String> {
    let text = if callee.starts_with("sip:") || callee.starts_with("sips:") { callee.to_owned() } else { format!("sip:{callee}@{domain}") };
    sip::parse::parse_uri(&text).map_err(|e| format!("callee {callee:?} is not a SIP URI or user: {e}"))
}

pub(crate) fn str_of(m: &Map<String, Value>, k: &str) -> String {
    match m.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// `true`, `"true"`: the docs send booleans as strings too.
fn bool_of(m: &Map<String, Value>, k: &str) -> bool {
    match m.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl Session {
    fn send(&self, text: String) {
        let _ = self.out.send(text);
    }

    fn send_fail(&self, status: &str, info: &str, api_method: &str) {
        self.send(frame("fail", json!({"status": status, "info": info, "apiMethod": api_method})));
    }

    fn hooks(&self) -> &Hooks {
        self.hooks.as_ref().expect("hooks exist once connected")
    }

    fn event(&self, name: &str, fields: &Map<String, Value>) {
        if let Some(h) = &self.hooks {
            h.notify(name, fields);
        }
    }

    // ---- connection ---------------------------------------------------------------

    /// `connection`: find the app, ask its backend, echo `getUserData`, register.
    async fn on_connection(&mut self, data: Map<String, Value>) -> Option<mpsc::UnboundedReceiver<UaEvent>> {
        if self.established {
            self.send_fail("FAILED", "already connected", "ConnectionStatusEvent");
            return None;
        }
        let app_key = match str_of(&data, "appKey") {
            k if k.is_empty() => "defaultApp".to_owned(),
            k => k,
        };
        let (rest_url, methods) = match app_hooks(&self.st, &app_key).await {
            Ok(u) => u,
            Err(info) => {
                self.send_fail("FAILED", &info, "ConnectionStatusEvent");
                self.close = true;
                return None;
            }
        };
        let hooks = Hooks::new(HookContext {
            node_id: self.st.cfg.node_id.clone(),
            session_id: self.session_id.clone(),
            app_key: app_key.clone(),
            base_url: rest_url,
            methods,
            timeout: self.st.cfg.hook_timeout,
            secret: self.st.cfg.hook_secret.clone(),
            retries: self.st.cfg.hook_retries,
        }, self.st.event_outbox.clone());
        self.hooks = Some(hooks.clone());
        let mut conn = data.clone();
        conn.insert("appKey".into(), app_key.into());
        match hooks.invoke("connect", &conn).await {
            Verdict::Refuse { info, .. } => {
                // A refused connect always declines the connection (reference 004 §2.2).
                let mut ev = Map::new();
                ev.insert("status".into(), "FAILED".into());
                ev.insert("info".into(), info.clone().into());
                hooks.notify("ConnectionStatusEvent", &ev);
                self.send_fail("FAILED", &info, "ConnectionStatusEvent");
                self.close = true;
                return None;
            }
            Verdict::Allow { body, .. } => {
                if let Some(b) = body {
                    if let Some(rcc) = b.get("restClientConfig") {
                        hooks.set_rest_client_config(rcc);
                    }
                    // The backend may hand out the SIP identity, so the page need not
                    // hold the credentials (WCS 4's documented use).
                    for (k, v) in b {
                        if k.starts_with("sip") || k == "custom" {
                            conn.insert(k, v);
                        }
                    }
                }
            }
        }
        let auth_token = format!("{:032x}", rand_u128());
        conn.insert("authToken".into(), auth_token.into());
        conn.insert("status".into(), "ESTABLISHED".into());
        conn.insert("useWsTunnel".into(), false.into());
        conn.insert("useWsTunnelPacketization2".into(), false.into());
        conn.insert("useBase64BinaryEncoding".into(), false.into());
        conn.insert("mediaProviders".into(), json!(["WebRTC"]));
        self.conn = conn;
        self.established = true;
        // The password stays here: the page does not need it back.
        let mut echo = self.conn.clone();
        echo.remove("sipPassword");
        self.send(frame("getUserData", Value::Object(hooks.for_client("ConnectionStatusEvent", echo.clone()))));
        hooks.notify("ConnectionStatusEvent", &echo);
        if self.keeps() {
            // From now on a new socket with this token takes the session over.
            self.st.keep_session(&self.conn_token(), self.reattach.clone());
        }

        // The SIP identity: needed for calls even without registering.
        let login = str_of(&self.conn, "sipLogin");
        if login.is_empty() {
            return None;
        }
        let (agent, rx) = match self.start_agent(&login).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "WCS: cannot start the SIP agent");
                self.send_fail("FAILED", &e, "RegistrationStatusEvent");
                return None;
            }
        };
        if bool_of(&self.conn, "sipRegisterRequired") {
            agent.act(|ua, now| ua.register(now));
        }
        self.agent = Some(agent);
        Some(rx)
    }

    /// Where SIP for this session goes: the page's outbound proxy, else its domain's
    /// registrar (us for our domains).
    fn sip_destination(&self) -> Result<SocketAddr, String> {
        let port: u16 = str_of(&self.conn, "sipPort").parse().unwrap_or(0);
        let host = match str_of(&self.conn, "sipOutboundProxy") {
            p if !p.is_empty() => p,
            _ => str_of(&self.conn, "sipDomain"),
        };
        if host.is_empty() || self.st.cfg.our_domains.iter().any(|d| d.eq_ignore_ascii_case(&host)) {
            return Ok(self.st.cfg.sip_server);
        }
        if let Ok(a) = host.parse::<SocketAddr>() {
            return Ok(a);
        }
        let port = if port == 0 { 5060 } else { port };
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("cannot resolve the SIP server {host:?}"))
    }

    fn domain(&self) -> String {
        match str_of(&self.conn, "sipDomain") {
            d if !d.is_empty() => d,
            _ => self.st.cfg.default_domain.clone(),
        }
    }

    async fn start_agent(&self, login: &str) -> Result<(SipAgent, mpsc::UnboundedReceiver<UaEvent>), String> {
        let server = self.sip_destination()?;
        let socket = tokio::net::UdpSocket::bind((self.st.cfg.sip_bind_ip, 0)).await.map_err(|e| format!("cannot bind a SIP socket: {e}"))?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let mut cfg = UaConfig::new(local, login, &self.domain(), server);
        let auth = str_of(&self.conn, "sipAuthenticationName");
        cfg.auth_user = (!auth.is_empty()).then_some(auth);
        let pw = str_of(&self.conn, "sipPassword");
        cfg.password = (!pw.is_empty()).then_some(pw);
        cfg.user_agent = self.st.cfg.user_agent.clone();
        let visible = str_of(&self.conn, "sipVisibleName");
        cfg.display_name = (!visible.is_empty()).then_some(visible);
        Ok(SipAgent::start(cfg, socket))
    }

    // ---- client frames ------------------------------------------------------------

    async fn on_frame(&mut self, f: ClientFrame) {
        let ClientFrame { message, data } = f;
        if message == "pong" {
            return;
        }
        if message == "ping" {
            self.send(frame("pong", Value::Null));
            return;
        }
        if !self.established {
            self.send_fail("FAILED", &format!("{message} before connection"), "ConnectionStatusEvent");
            return;
        }
        match message.as_str() {
            "call" => self.on_call(data).await,
            "answer" => self.on_answer(data).await,
            "hangup" => self.on_hangup(data).await,
            "hold" | "unhold" => self.on_hold(data, message == "hold").await,
            "transfer" => self.on_transfer(data).await,
            "sendDtmf" => self.on_dtmf(data).await,
            "sendData" => self.on_data(data).await,
            "sendMessage" => self.on_send_message(data).await,
            "submitBugReport" | "sessionDebug" | "pushLogs" => debug!(%message, "WCS: noted"),
            m if protocol::is_stream_method(m) => {
                let id = str_of(&data, "mediaSessionId");
                self.send(frame(
                    "fail",
                    json!({"status": "FAILED", "id": id, "apiMethod": "StreamStatusEvent",
                           "info": format!("{m} is not supported: Switchboard carries calls, not streams")}),
                ));
            }
            other => self.send_fail("FAILED", &format!("unknown method {other:?}"), "ErrorEvent"),
        }
    }

    fn call_index(&self, call_id: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.call_id == call_id)
    }

    fn call_fields(&self, c: &WcsCall) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("callId".into(), c.call_id.clone().into());
        m.insert("incoming".into(), c.incoming.into());
        m.insert("status".into(), c.status.clone().into());
        m.insert("caller".into(), c.caller.clone().into());
        m.insert("callee".into(), c.callee.clone().into());
        m.insert("visibleName".into(), c.visible_name.clone().into());
        m.insert("hasAudio".into(), true.into());
        m.insert("hasVideo".into(), false.into());
        m.insert("mediaProvider".into(), "WebRTC".into());
        m
    }

    /// Moves a call to `status`: the browser's message, the `CallStatusEvent` hook,
    /// the REST API's view. FINISH, FAILED and BUSY are final: sent once.
    fn set_status(&mut self, i: usize, status: &str, info: Option<&str>, sip_status: Option<u16>, raw: Option<&str>) {
        if self.calls[i].finished {
            return;
        }
        self.calls[i].status = status.to_owned();
        let final_ = matches!(status, "FINISH" | "FAILED" | "BUSY");
        if final_ {
            self.calls[i].finished = true;
        }
        let mut fields = self.call_fields(&self.calls[i]);
        if let Some(info) = info {
            fields.insert("info".into(), info.into());
        }
        if let Some(s) = sip_status {
            fields.insert("sipStatus".into(), s.into());
        }
        let mut hook_fields = fields.clone();
        if let Some(raw) = raw {
            hook_fields.insert("sipMessageRaw".into(), raw.into());
        }
        self.event("CallStatusEvent", &hook_fields);
        let client = self.hooks().for_client("CallStatusEvent", fields);
        self.send(frame(status_message(status), Value::Object(client)));
        let id = self.calls[i].call_id.clone();
        let mut reg = self.st.calls.lock().unwrap_or_else(|e| e.into_inner());
        if final_ {
            reg.remove(&id);
        } else {
            let mut view = self.call_fields(&self.calls[i]);
            view.insert("nodeId".into(), self.st.cfg.node_id.clone().into());
            view.insert("sessionId".into(), self.session_id.clone().into());
            view.insert("appKey".into(), self.hooks().context().app_key.clone().into());
            reg.insert(id, CallEntry { view, commands: self.rest_tx.clone() });
        }
    }

    /// Ends a call's media and forgets it once final.
    fn release(&mut self, i: usize) {
        if let Some(m) = self.calls[i].media.take() {
            if let Some(g) = &self.st.gateway {
                g.close(m);
            }
            self.st.unroute_media(m);
        }
        if self.calls[i].finished {
            self.calls.remove(i);
        }
    }

    fn target_uri(&self, callee: &str) -> Result<Uri, String> {
        target_uri(callee, &self.domain())
    }

    async fn on_call(&mut self, mut data: Map<String, Value>) {
        let call_id = str_of(&data, "callId");
        if call_id.is_empty() || call_id.len() > 128 || self.call_index(&call_id).is_some() {
            self.send_fail("FAILED", "call needs a new callId", "CallStatusEvent");
            return;
        }
        let mut c = WcsCall {
            call_id: call_id.clone(),
            incoming: false,
            status: "PENDING".into(),
            caller: str_of(&self.conn, "sipLogin"),
            callee: str_of(&data, "callee"),
            visible_name: str_of(&data, "visibleName"),
            sip: None,
            media: None,
            plain: None,
            sip_offer: None,
            sip_sdp_extra: data.get("sipSDP").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default(),
            sdp_version: 1,
            held: false,
            finished: false,
        };
        if c.visible_name.is_empty() {
            c.visible_name = c.caller.clone();
        }
        self.calls.push(c);
        let i = self.calls.len() - 1;
        // TRYING at once: until the first status, the SDK's hangup() sends nothing.
        self.set_status(i, "TRYING", None, None, None);
        data.insert("caller".into(), self.calls[i].caller.clone().into());
        match self.hooks().invoke("call", &data).await {
            Verdict::Refuse { status, info } => {
                let Some(i) = self.call_index(&call_id) else { return };
                self.set_status(i, "FAILED", Some(&info), Some(status), None);
                self.release(i);
                return;
            }
            Verdict::Allow { changes, .. } => {
                let Some(i) = self.call_index(&call_id) else { return };
                for (k, v) in changes {
                    match k.as_str() {
                        "callee" => self.calls[i].callee = v.as_str().unwrap_or_default().to_owned(),
                        "visibleName" => self.calls[i].visible_name = v.as_str().unwrap_or_default().to_owned(),
                        "caller" => self.calls[i].caller = v.as_str().unwrap_or_default().to_owned(),
                        _ => {}
                    }
                }
            }
        }
        let Some(i) = self.call_index(&call_id) else { return };
        if self.calls[i].finished {
            return;
        }
        let fail = |s: &mut Session, i: usize, info: &str| {
            s.set_status(i, "FAILED", Some(info), None, None);
            s.release(i);
        };
        let Some(agent) = self.agent.clone() else { return fail(self, i, "no SIP identity: connect with sipOptions (login)") };
        let target = match self.target_uri(&self.calls[i].callee) {
            Ok(t) => t,
            Err(e) => return fail(self, i, &e),
        };
        let Some(gw) = self.st.gateway.clone() else { return fail(self, i, "WebRTC is not available on this server") };
        let offer = str_of(&data, "sdp");
        let (mid, answer, plain) = match gw.accept_offer(&offer, &self.st.cfg.codecs) {
            Ok(x) => x,
            Err(e) => return fail(self, i, &e),
        };
        self.st.route_media(mid, self.media_tx.clone());
        self.calls[i].media = Some(mid);
        self.send(set_remote_sdp(&call_id, &answer));
        let sdp = sip_sdp(&plain, mid, 1, "sendrecv", &self.calls[i].sip_sdp_extra);
        self.calls[i].plain = Some(plain);
        let dest = if target.host.eq_ignore_ascii_case(&self.domain()) || self.st.cfg.our_domains.iter().any(|d| d.eq_ignore_ascii_case(&target.host)) {
            self.sip_destination()
        } else if !str_of(&self.conn, "sipOutboundProxy").is_empty() {
            self.sip_destination()
        } else {
            // A full SIP URI elsewhere: sent to its host.
            let port = target.port.unwrap_or(5060);
            std::net::ToSocketAddrs::to_socket_addrs(&(target.host.as_str(), port)).ok().and_then(|mut a| a.next()).ok_or_else(|| format!("cannot resolve {}", target.host))
        };
        let dest = match dest {
            Ok(d) => d,
            Err(e) => return fail(self, i, &e),
        };
        let call = agent.act(|ua, now| ua.invite(now, target, dest, sdp, Vec::new()));
        self.calls[i].sip = Some(call);
    }

    async fn on_answer(&mut self, data: Map<String, Value>) {
        let call_id = str_of(&data, "callId");
        let Some(i) = self.call_index(&call_id) else { return self.send_fail("FAILED", "answer: no such call", "CallStatusEvent") };
        if !self.calls[i].incoming || self.calls[i].finished {
            return;
        }
        if let Verdict::Refuse { status, info } = self.hooks().invoke("answer", &data).await {
            warn!(status, %info, "WCS: the backend refused answer");
            return self.finish_call(&call_id, "FAILED", Some(&info)).await;
        }
        let Some(i) = self.call_index(&call_id) else { return };
        let (Some(gw), Some(mid), Some(sip), Some(agent)) = (self.st.gateway.clone(), self.calls[i].media, self.calls[i].sip, self.agent.clone()) else { return };
        let plain = match gw.accept_answer(mid, &str_of(&data, "sdp")) {
            Ok(p) => p,
            Err(e) => return self.finish_call(&call_id, "FAILED", Some(&e)).await,
        };
        if let Some(addr) = self.calls[i].sip_offer.as_deref().and_then(|s| SessionDescription::parse(s).ok()).and_then(|d| d.audio()).and_then(|a| a.addr) {
            gw.set_plain_remote(mid, addr);
        }
        let sdp = sip_sdp(&plain, mid, 1, "sendrecv", &self.calls[i].sip_sdp_extra);
        self.calls[i].plain = Some(plain);
        agent.act(|ua, now| ua.answer(now, sip, sdp));
    }

    /// Ends a call from our side: BYE/CANCEL on SIP, then the final status.
    async fn finish_call(&mut self, call_id: &str, status: &str, info: Option<&str>) {
        let Some(i) = self.call_index(call_id) else { return };
        if let (Some(sip), Some(agent)) = (self.calls[i].sip.take(), &self.agent) {
            agent.act(|ua, now| ua.hangup(now, sip));
        }
        self.set_status(i, status, info, None, None);
        self.release(i);
    }

    async fn on_hangup(&mut self, data: Map<String, Value>) {
        let call_id = str_of(&data, "callId");
        self.event("hangup", &data);
        if self.call_index(&call_id).is_none() {
            // Always a final FINISH: the SDK keeps the call until it hears one.
            self.send(frame("finish", json!({"callId": call_id, "status": "FINISH"})));
            return;
        }
        self.finish_call(&call_id, "FINISH", Some("Normal call clearing")).await;
    }

    async fn on_hold(&mut self, data: Map<String, Value>, hold: bool) {
        let call_id = str_of(&data, "callId");
        let method = if hold { "hold" } else { "unhold" };
        if self.call_index(&call_id).is_none() {
            return self.send_fail("FAILED", &format!("{method}: no such call"), "CallStatusEvent");
        }
        if let Verdict::Refuse { info, .. } = self.hooks().invoke(method, &data).await {
            return self.send_fail("FAILED", &info, "CallStatusEvent");
        }
        let Some(i) = self.call_index(&call_id) else { return };
        let (Some(sip), Some(agent), Some(plain), Some(mid)) = (self.calls[i].sip, self.agent.clone(), self.calls[i].plain.clone(), self.calls[i].media) else { return };
        // Hold is the SIP side's business: the browser is never renegotiated.
        if let Some(gw) = &self.st.gateway {
            gw.set_forwarding(mid, !hold);
        }
        self.calls[i].sdp_version += 1;
        self.calls[i].held = hold;
        let sdp = sip_sdp(&plain, mid, self.calls[i].sdp_version, if hold { "sendonly" } else { "sendrecv" }, &self.calls[i].sip_sdp_extra);
        agent.act(|ua, now| ua.reinvite(now, sip, sdp));
    }

    async fn on_transfer(&mut self, data: Map<String, Value>) {
        let call_id = str_of(&data, "callId");
        let Some(_) = self.call_index(&call_id) else { return self.send_fail("FAILED", "transfer: no such call", "TransferStatusEvent") };
        if let Verdict::Refuse { info, .. } = self.hooks().invoke("transfer", &data).await {
            self.send(frame("notifyTransferEvent", json!({"callId": call_id, "status": "FAILED", "info": info})));
            return;
        }
        let Some(i) = self.call_index(&call_id) else { return };
        let target = match self.target_uri(&str_of(&data, "target")) {
            Ok(t) => t,
            Err(e) => {
                self.send(frame("notifyTransferEvent", json!({"callId": call_id, "status": "FAILED", "info": e})));
                return;
            }
        };
        if let (Some(sip), Some(agent)) = (self.calls[i].sip, &self.agent) {
            agent.act(|ua, now| ua.refer(now, sip, target));
        }
    }

    async fn on_dtmf(&mut self, data: Map<String, Value>) {
        let call_id = str_of(&data, "callId");
        if let Verdict::Refuse { info, .. } = self.hooks().invoke("sendDtmf", &data).await {
            return self.send_fail("FAILED", &info, "CallStatusEvent");
        }
        let kind = str_of(&data, "type");
        self.send_dtmf(&call_id, &str_of(&data, "dtmf"), &kind);
    }

    fn send_dtmf(&mut self, call_id: &str, digits: &str, kind: &str) -> bool {
        let Some(i) = self.call_index(call_id) else { return false };
        let digits: String = digits.chars().filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')).collect();
        match kind.to_ascii_uppercase().as_str() {
            "INFO" | "INFO_RELAY" => {
                if let (Some(sip), Some(agent)) = (self.calls[i].sip, &self.agent) {
                    agent.act(|ua, now| {
                        for d in digits.chars() {
                            ua.info_dtmf(now, sip, d, 160);
                        }
                    });
                }
            }
            _ => {
                if let (Some(gw), Some(mid)) = (&self.st.gateway, self.calls[i].media) {
                    gw.send_dtmf(mid, &digits, 160);
                }
            }
        }
        true
    }

    async fn on_data(&mut self, data: Map<String, Value>) {
        let op = str_of(&data, "operationId");
        let status = match self.hooks().invoke("OnDataEvent", &data).await {
            Verdict::Allow { .. } => json!({"operationId": op, "status": "ACCEPTED"}),
            Verdict::Refuse { info, .. } => json!({"operationId": op, "status": "FAILED", "info": info}),
        };
        if let Some(m) = status.as_object() {
            self.event("DataStatusEvent", m);
        }
        self.send(frame("DataStatusEvent", status));
    }

    /// The legacy SDK's `sendMessage` (`id`, `to`, `body`, `contentType`): the `sendMessage`
    /// hook may refuse or alter it, then a SIP MESSAGE goes out from the session's
    /// identity; its answer comes back as `notifyMessage` and `MessageStatusEvent`.
    async fn on_send_message(&mut self, mut data: Map<String, Value>) {
        let verdict = self.hooks().invoke("sendMessage", &data).await;
        let refused = match verdict {
            Verdict::Refuse { info, .. } => Some(info),
            Verdict::Allow { changes, .. } => {
                for (k, v) in changes {
                    if matches!(k.as_str(), "to" | "body" | "contentType") {
                        data.insert(k, v);
                    }
                }
                None
            }
        };
        let target = self.target_uri(&str_of(&data, "to"));
        let dest = self.sip_destination();
        let failed = match (refused, self.agent.clone(), target, dest) {
            (Some(info), ..) => Some(info),
            (None, None, ..) => Some("no SIP identity: connect with sipOptions (login)".to_owned()),
            (None, _, Err(e), _) | (None, _, _, Err(e)) => Some(e),
            (None, Some(agent), Ok(target), Ok(dest)) => {
                let ct = Some(str_of(&data, "contentType")).filter(|c| !c.is_empty()).unwrap_or_else(|| "text/plain".into());
                let body = str_of(&data, "body");
                let msg = agent.act(|ua, now| ua.message(now, target, dest, &ct, &body));
                self.messages.push((msg, data.clone()));
                None
            }
        };
        if let Some(info) = failed {
            data.insert("status".into(), "FAILED".into());
            data.insert("info".into(), info.into());
            self.event("MessageStatusEvent", &data);
            self.send(frame("notifyMessage", Value::Object(data)));
        }
    }

    // ---- SIP side -------------------------------------------------------------------

    fn call_of_sip(&self, r: CallRef) -> Option<usize> {
        self.calls.iter().position(|c| c.sip == Some(r))
    }

    async fn on_sip(&mut self, ev: UaEvent) {
        match ev {
            UaEvent::Registration { status, code, reason, raw } => {
                let s = match status {
                    RegistrationStatus::Registered => "REGISTERED",
                    RegistrationStatus::Unregistered => "UNREGISTERED",
                    RegistrationStatus::Failed => "FAILED",
                };
                let mut f = Map::new();
                f.insert("status".into(), s.into());
                f.insert("info".into(), format!("{code} {reason}").into());
                if let Some(r) = raw {
                    f.insert("sipMessageRaw".into(), r.into());
                }
                self.event("RegistrationStatusEvent", &f);
                self.registered = status == RegistrationStatus::Registered;
                match status {
                    RegistrationStatus::Registered => self.send(frame("registered", json!({"status": "REGISTERED"}))),
                    RegistrationStatus::Failed => self.send_fail("FAILED", &format!("SIP registration failed: {code} {reason}"), "RegistrationStatusEvent"),
                    RegistrationStatus::Unregistered => {}
                }
            }
            UaEvent::Progress { call, status, reason, sdp, raw } => {
                let Some(i) = self.call_of_sip(call) else { return };
                if let Some(addr) = sdp.as_deref().and_then(|s| SessionDescription::parse(s).ok()).and_then(|d| d.audio()).and_then(|a| a.addr) {
                    if let (Some(gw), Some(mid)) = (&self.st.gateway, self.calls[i].media) {
                        gw.set_plain_remote(mid, addr);
                    }
                }
                let st = call_status_for_sip(status, sdp.is_some());
                if self.calls[i].status != st {
                    self.set_status(i, st, Some(&format!("{status} {reason}")), Some(status), Some(&raw));
                }
            }
            UaEvent::Answered { call, sdp, raw } => {
                let Some(i) = self.call_of_sip(call) else { return };
                if let Some(addr) = sdp.as_deref().and_then(|s| SessionDescription::parse(s).ok()).and_then(|d| d.audio()).and_then(|a| a.addr) {
                    if let (Some(gw), Some(mid)) = (&self.st.gateway, self.calls[i].media) {
                        gw.set_plain_remote(mid, addr);
                    }
                }
                self.set_status(i, "ESTABLISHED", None, Some(200), Some(&raw));
            }
            UaEvent::Ended { call, status, reason, by_remote, raw } => {
                let Some(i) = self.call_of_sip(call) else { return };
                self.calls[i].sip = None;
                let st = if status >= 300 && self.calls[i].status != "ESTABLISHED" && self.calls[i].status != "HOLD" { call_status_for_sip(status, false) } else { "FINISH" };
                let info = if st == "FINISH" { if by_remote { "Normal call clearing".to_owned() } else { format!("{status} {reason}") } } else { format!("SIP {status} {reason}") };
                self.set_status(i, st, Some(&info), Some(status), raw.as_deref());
                self.release(i);
            }
            UaEvent::Incoming { call, from, from_display, to, sdp, raw } => self.on_incoming(call, from, from_display, to, sdp, raw).await,
            UaEvent::Reinvited { .. } => {} // answered by the UA; the browser is not renegotiated
            UaEvent::ReinviteResult { call, status } => {
                let Some(i) = self.call_of_sip(call) else { return };
                if (200..300).contains(&status) {
                    let st = if self.calls[i].held { "HOLD" } else { "ESTABLISHED" };
                    self.set_status(i, st, None, Some(status), None);
                }
            }
            UaEvent::TransferStatus { call, status, reason, done } => {
                let Some(i) = self.call_of_sip(call) else { return };
                let st = match status {
                    202 => "ACCEPTED",
                    100..=199 => "TRYING",
                    200..=299 if done => "COMPLETED",
                    200..=299 => "ACCEPTED",
                    _ => "FAILED",
                };
                let mut f = Map::new();
                f.insert("callId".into(), self.calls[i].call_id.clone().into());
                f.insert("status".into(), st.into());
                f.insert("info".into(), format!("{status} {reason}").into());
                f.insert("incoming".into(), false.into());
                self.event("TransferStatusEvent", &f);
                self.send(frame("notifyTransferEvent", Value::Object(f)));
            }
            UaEvent::Referred { call, .. } => {
                // Transfers asked of the browser are refused: it has one media session.
                if let Some(agent) = &self.agent {
                    agent.act(|ua, now| ua.notify_refer(now, call, 603, "Declined"));
                }
            }
            UaEvent::Dtmf { call, digit, .. } => {
                if let Some(i) = self.call_of_sip(call) {
                    let mut f = Map::new();
                    f.insert("callId".into(), self.calls[i].call_id.clone().into());
                    f.insert("dtmf".into(), digit.to_string().into());
                    self.event("OnDTMFEvent", &f);
                }
            }
            UaEvent::Message { from, to, content_type, body, raw } => {
                let mut f = Map::new();
                f.insert("from".into(), from.into());
                f.insert("to".into(), to.into());
                f.insert("contentType".into(), content_type.into());
                f.insert("body".into(), body.into());
                f.insert("status".into(), "RECEIVED".into());
                let client = f.clone();
                f.insert("sipMessageRaw".into(), raw.into());
                self.event("OnMessageEvent", &f);
                self.send(frame("notifyMessage", Value::Object(client)));
            }
            UaEvent::MessageStatus { msg, status, reason, raw } => {
                if status < 200 {
                    return;
                }
                let Some(i) = self.messages.iter().position(|(m, _)| *m == msg) else { return };
                let (_, mut f) = self.messages.remove(i);
                f.insert("status".into(), if status < 300 { "ACCEPTED" } else { "FAILED" }.into());
                f.insert("info".into(), format!("{status} {reason}").into());
                let client = f.clone();
                if let Some(r) = raw {
                    f.insert("sipMessageRaw".into(), r.into());
                }
                self.event("MessageStatusEvent", &f);
                self.send(frame("notifyMessage", Value::Object(client)));
            }
        }
    }

    async fn on_incoming(&mut self, call: CallRef, from: String, from_display: Option<String>, to: String, sdp: Option<String>, raw: String) {
        let Some(agent) = self.agent.clone() else { return };
        let caller = from.strip_prefix("sip:").map(|s| s.split(['@', ';']).next().unwrap_or(s)).unwrap_or(&from).to_owned();
        let call_id = format!("{:032x}", rand_u128());
        let mut fields = Map::new();
        fields.insert("callId".into(), call_id.clone().into());
        fields.insert("caller".into(), caller.clone().into());
        fields.insert("callee".into(), str_of(&self.conn, "sipLogin").into());
        fields.insert("visibleName".into(), from_display.clone().unwrap_or_else(|| caller.clone()).into());
        fields.insert("incoming".into(), true.into());
        fields.insert("status".into(), "PENDING".into());
        fields.insert("mediaProvider".into(), "WebRTC".into());
        fields.insert("hasVideo".into(), false.into());
        fields.insert("hasAudio".into(), true.into());
        let mut hook_fields = fields.clone();
        hook_fields.insert("sipMessageRaw".into(), raw.into());
        let _ = to;
        if self.parked {
            info!(session = %self.session_id, "WCS: a call for a kept session with no page attached: 480");
            agent.act(|ua, now| ua.reject(now, call, 480, "Temporarily Unavailable"));
            return;
        }
        if let Verdict::Refuse { info, .. } = self.hooks().invoke("OnCallEvent", &hook_fields).await {
            info!(%info, "WCS: the backend refused an incoming call");
            agent.act(|ua, now| ua.reject(now, call, 403, "Forbidden"));
            return;
        }
        let Some(gw) = self.st.gateway.clone() else {
            agent.act(|ua, now| ua.reject(now, call, 488, "Not Acceptable Here"));
            return;
        };
        let audio = sdp.as_deref().and_then(|s| SessionDescription::parse(s).ok()).and_then(|d| d.audio());
        let Some(audio) = audio else {
            agent.act(|ua, now| ua.reject(now, call, 488, "Not Acceptable Here"));
            return;
        };
        let codecs: Vec<_> = audio.voice_codecs().filter(|c| self.st.cfg.codecs.iter().any(|n| n.eq_ignore_ascii_case(&c.name))).cloned().collect();
        let te = audio.telephone_event_for(8000).map(|c| (c.payload_type, 8000));
        if codecs.is_empty() {
            agent.act(|ua, now| ua.reject(now, call, 488, "Not Acceptable Here"));
            return;
        }
        let (mid, offer) = match gw.create_offer(&codecs, te) {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "WCS: no offer for the browser");
                agent.act(|ua, now| ua.reject(now, call, 488, "Not Acceptable Here"));
                return;
            }
        };
        self.st.route_media(mid, self.media_tx.clone());
        self.calls.push(WcsCall {
            call_id: call_id.clone(),
            incoming: true,
            status: "PENDING".into(),
            caller,
            callee: str_of(&self.conn, "sipLogin"),
            visible_name: from_display.unwrap_or_default(),
            sip: Some(call),
            media: Some(mid),
            plain: None,
            sip_offer: sdp,
            sip_sdp_extra: Vec::new(),
            sdp_version: 1,
            held: false,
            finished: false,
        });
        // The order the SDK needs: the SDP first, then the call, then RING.
        self.send(set_remote_sdp(&call_id, &offer));
        let client = self.hooks().for_client("OnCallEvent", fields);
        self.send(frame("notifyIncomingCall", Value::Object(client)));
        let i = self.calls.len() - 1;
        self.set_status(i, "RING", None, None, None);
        agent.act(|ua, now| ua.ringing(now, call));
    }

    // ---- media and REST ---------------------------------------------------------------

    async fn on_media(&mut self, n: MediaNote) {
        if let MediaNote::Failed(mid, info) = n {
            let Some(i) = self.calls.iter().position(|c| c.media == Some(mid)) else { return };
            let id = self.calls[i].call_id.clone();
            warn!(call = %id, %info, "WCS: the browser's media died");
            self.finish_call(&id, "FAILED", Some(&info)).await;
        }
    }

    /// An event the backend refused: with `restOnError: FAIL` for it, the page gets an
    /// `ErrorEvent` (WCS: "logged, processing continues, client gets an ErrorEvent").
    fn on_refused(&self, r: Refusal) {
        let Some(h) = &self.hooks else { return };
        if !h.fails_on_refusal(&r.event) {
            return;
        }
        warn!(session = %self.session_id, event = %r.event, status = r.status, "WCS: the backend refused an event (restOnError FAIL): telling the page");
        let info = format!("{} refused by the backend: {} {}", r.event, r.status, r.reason);
        self.send_fail("FAILED", info.trim_end(), "ErrorEvent");
    }

    async fn on_rest(&mut self, c: RestCommand) {
        match c {
            RestCommand::Terminate(id) => self.finish_call(&id, "FINISH", Some("Terminated by the REST API")).await,
            RestCommand::SendDtmf { call_id, dtmf, kind } => {
                self.send_dtmf(&call_id, &dtmf, &kind);
            }
            RestCommand::InjectSound { call_id, file } => {
                let Some(i) = self.call_index(&call_id) else { return };
                if let (Some(gw), Some(mid)) = (&self.st.gateway, self.calls[i].media) {
                    info!(call = %call_id, file = %file.display(), "WCS: injecting a sound toward SIP");
                    gw.inject_sound(mid, &file);
                }
            }
        }
    }

    /// The browser is gone: hang up its calls, unregister, tell the backend.
    /// Whether the page asked to keep this session past its socket (and it is up).
    fn keeps(&self) -> bool {
        self.established && !self.close && bool_of(&self.conn, "keepAlive") && !self.st.cfg.keep_alive.is_zero()
    }

    fn conn_token(&self) -> String {
        str_of(&self.conn, "authToken")
    }

    /// The socket is gone, the session stays: its calls end (their media was the
    /// page's), its SIP identity stays; a new socket with its token finds it.
    fn park(&mut self) {
        info!(session = %self.session_id, keep_s = self.st.cfg.keep_alive.as_secs(), "WCS client gone; keeping its session (keepAlive)");
        self.end_calls("Connection closed");
        self.parked = true;
        // The old socket's writer ends with its sender and closes the socket (the close
        // handshake the page waits for); until a page is back, frames go nowhere.
        self.out = mpsc::unbounded_channel().0;
    }

    /// A page is back with this session's token: it gets the session as it was.
    fn reattached(&mut self, data: &Map<String, Value>) {
        if !self.parked {
            // The old socket had not closed yet (a page moving networks): its calls'
            // media was its own.
            self.end_calls("Connection replaced");
        }
        self.parked = false;
        info!(session = %self.session_id, peer = %self.peer, "kept WCS session re-attached");
        // The page's own fields (custom, versions) are its new ones; the SIP identity
        // and the token stay the session's.
        for (k, v) in data {
            if !k.starts_with("sip") && k != "authToken" && k != "appKey" {
                self.conn.insert(k.clone(), v.clone());
            }
        }
        let mut echo = self.conn.clone();
        echo.remove("sipPassword");
        let client = match &self.hooks {
            Some(h) => h.for_client("ConnectionStatusEvent", echo.clone()),
            None => echo.clone(),
        };
        self.send(frame("getUserData", Value::Object(client)));
        self.event("ConnectionStatusEvent", &echo);
        if self.registered {
            self.send(frame("registered", json!({"status": "REGISTERED"})));
        }
    }

    /// Ends every call: a BYE (or CANCEL) on the SIP side, FINISH to the backend.
    fn end_calls(&mut self, why: &str) {
        let ids: Vec<String> = self.calls.iter().map(|c| c.call_id.clone()).collect();
        for id in ids {
            if let Some(i) = self.call_index(&id) {
                if let (Some(sip), Some(agent)) = (self.calls[i].sip.take(), &self.agent) {
                    agent.act(|ua, now| ua.hangup(now, sip));
                }
                if self.hooks.is_some() {
                    self.set_status(i, "FINISH", Some(why), None, None);
                }
                self.calls[i].finished = true;
                self.release(i);
            }
        }
    }

    fn teardown(&mut self) {
        self.end_calls("Connection closed");
        if let Some(agent) = self.agent.take() {
            if bool_of(&self.conn, "sipRegisterRequired") {
                agent.act(|ua, now| ua.unregister(now));
            }
            agent.stop();
        }
        if self.established {
            let mut f = Map::new();
            f.insert("status".into(), "DISCONNECTED".into());
            self.event("ConnectionStatusEvent", &f);
        }
        let _ = self.peer;
    }
}

fn rand_u128() -> u128 {
    rand_bytes().map(u128::from_le_bytes).unwrap_or_else(|| {
        // Not a secret (ids and re-attach tokens of this process): time is enough.
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    })
}

fn rand_bytes() -> Option<[u8; 16]> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).ok()?;
    Some(b)
}

// ---- the server REST API (reference 004 §2.5) ---------------------------------------

pub(crate) fn rest_api_routes() -> Router<WcsState> {
    Router::new()
        .route("/rest-api/call/find", post(find))
        .route("/rest-api/call/find_all", post(find_all))
        .route("/rest-api/call/terminate", post(terminate))
        .route("/rest-api/call/send_dtmf", post(send_dtmf))
        .route("/rest-api/call/startup", post(super::rest_call::startup))
        .route("/rest-api/call/inject_sound", post(inject_sound))
}

pub(crate) fn body_of(body: &axum::body::Bytes) -> Result<Map<String, Value>, Response> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(rest_error(StatusCode::BAD_REQUEST, "the body must be a JSON object")),
    }
}

/// An error of the server REST API, in its format: `{"error_code", "error_message"}`.
pub(crate) fn rest_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error_code": status.as_u16(), "error_message": message.into()}))).into_response()
}

pub(crate) fn not_found(what: &str) -> Response {
    rest_error(StatusCode::NOT_FOUND, what)
}

fn matching(st: &WcsState, filter: &Map<String, Value>) -> Vec<Value> {
    let calls = st.calls.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<Value> = calls
        .values()
        .filter(|c| filter.iter().all(|(k, v)| c.view.get(k).is_none_or(|have| have == v || str_of(&c.view, k) == v.as_str().unwrap_or_default())))
        .map(|c| Value::Object(c.view.clone()))
        .collect();
    out.sort_by(|a, b| a["callId"].as_str().cmp(&b["callId"].as_str()));
    out
}

async fn find(State(st): State<WcsState>, body: axum::body::Bytes) -> Response {
    let filter = match body_of(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let found = matching(&st, &filter);
    if found.is_empty() {
        return not_found("no call matches");
    }
    Json(found).into_response()
}

async fn find_all(State(st): State<WcsState>) -> Response {
    let found = matching(&st, &Map::new());
    if found.is_empty() {
        return not_found("no calls");
    }
    Json(found).into_response()
}

fn entry(st: &WcsState, call_id: &str) -> Option<CallEntry> {
    st.calls.lock().unwrap_or_else(|e| e.into_inner()).get(call_id).cloned()
}

async fn terminate(State(st): State<WcsState>, body: axum::body::Bytes) -> Response {
    let b = match body_of(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let id = str_of(&b, "callId");
    let Some(e) = entry(&st, &id) else { return not_found("call not found") };
    let _ = e.commands.send(RestCommand::Terminate(id));
    StatusCode::OK.into_response()
}

async fn send_dtmf(State(st): State<WcsState>, body: axum::body::Bytes) -> Response {
    let b = match body_of(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let id = str_of(&b, "callId");
    let Some(e) = entry(&st, &id) else { return not_found("call not found") };
    let _ = e.commands.send(RestCommand::SendDtmf { call_id: id, dtmf: str_of(&b, "dtmf"), kind: str_of(&b, "type") });
    StatusCode::OK.into_response()
}

/// Plays `fileName` from the sounds folder (`[wcs] sounds_dir`) to the SIP side of the
/// call, in place of the browser's audio, until the file ends. As WCS: 404 for an
/// unknown call or file; the sound plays after the answer.
async fn inject_sound(State(st): State<WcsState>, body: axum::body::Bytes) -> Response {
    let b = match body_of(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let id = str_of(&b, "callId");
    let Some(e) = entry(&st, &id) else { return not_found("call not found") };
    let Some(file) = sound_file(&st.cfg.sounds_dir, &str_of(&b, "fileName")) else { return not_found("file not found") };
    let _ = e.commands.send(RestCommand::InjectSound { call_id: id, file });
    StatusCode::OK.into_response()
}

/// A file of the sounds folder by its name (`.wav` may be left out). Only plain names:
/// no path, so a request cannot read anything outside the folder.
fn sound_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
    if !plain {
        return None;
    }
    let mut candidates = vec![dir.join(name)];
    if !name.to_ascii_lowercase().ends_with(".wav") {
        candidates.push(dir.join(format!("{name}.wav")));
    }
    candidates.into_iter().find(|p| p.is_file())
}
