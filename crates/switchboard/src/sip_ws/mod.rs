//! SIP over WebSocket (RFC 7118): browser phones — JsSIP, SIP.js — register and call
//! like any phone, over a WebSocket that asked for the `sip` subprotocol.
//!
//! Where: at `/` on the HTTP listener, beside the Web Call Server dialect's WebSocket
//! (the Flashphoner SDK asks for no subprotocol, so the `Sec-WebSocket-Protocol: sip`
//! header alone tells the two apart; see [`SipWs::dispatch`]), and on `[sip_ws] listen`
//! if set, where an upgrade without `sip` is refused.
//!
//! Shape: one task per WebSocket ([`connection`]) is a connection-oriented transport as
//! TCP's is — one SIP message per frame (§5), parsed there, handed to the signalling
//! task as `Inbound::Message` from `Peer { addr, transport: Ws | Wss }`; the signalling
//! task writes back through the `Inbound::WsOpened` writer keyed by the browser's
//! address, the only way back to a contact at a `.invalid` host. The engine sees
//! nothing new: the registrar keeps the binding's transport (`ws`/`wss`) and requests
//! to it come back down the same socket.
//!
//! Media: browsers speak WebRTC (ICE, DTLS-SRTP), the engine plain RTP. As rtpengine
//! does beside Kamailio, the edge anchors each call's media at the WebRTC gateway the
//! WCS dialect also uses ([`media`]): the browser's offer is answered by a gateway leg
//! and the engine is shown a plain SDP at the leg's plain socket; the engine's answer
//! tells the leg where to send, and the browser gets the gateway's answer. Signalling
//! never waits on media beyond the gateway's own setup call. When a browser's media
//! dies (the gateway's note: ICE or DTLS never up, RTP stopped) or its socket closes,
//! the edge hangs up the engine's leg of that call ([`CallEnder`]), so the room or the
//! other party is freed at once rather than at the engine's RTP timeout.

pub mod connection;
pub mod media;

use crate::config::Config;
use crate::transport::Inbound;
use api::wcs::media::MediaNote;
use api::wcs::MediaGatewayBox;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use engine::EngineHandle;
use sip::Transport;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::info;

/// Largest WebSocket message taken: a SIP message is far smaller; a WebRTC offer with
/// video and many candidates stays under 16 KB.
const MAX_FRAME: usize = 64 * 1024;

/// What every SIP WebSocket shares.
#[derive(Clone)]
pub struct SipWs {
    inbound: mpsc::Sender<Inbound>,
    /// The WebRTC gateway (None: built without `webrtc`; WebRTC offers get 488).
    gateway: Option<MediaGatewayBox>,
    /// Codecs a browser's call may use, in preference order.
    codecs: Arc<[String]>,
    /// WS, or WSS when the listener is TLS.
    transport: Transport,
    /// Ends the engine's side of browser calls whose media died.
    calls: CallEnder,
}

/// The browser calls anchored at the gateway, by gateway leg: what ends a call whose
/// media is gone. Without it a dead browser leg (ICE or DTLS never up, RTP stopped, the
/// socket closed) would stay in its room or call until the engine's 60 s RTP timeout.
#[derive(Clone)]
pub struct CallEnder {
    /// Gateway leg id -> the SIP Call-ID of its call.
    legs: Arc<std::sync::Mutex<HashMap<u64, String>>>,
    engine: EngineHandle,
    runtime: tokio::runtime::Handle,
}

impl CallEnder {
    pub fn anchored(&self, leg: u64, call_id: &str) {
        self.legs.lock().unwrap_or_else(|e| e.into_inner()).insert(leg, call_id.to_owned());
    }

    pub fn released(&self, leg: u64) {
        self.legs.lock().unwrap_or_else(|e| e.into_inner()).remove(&leg);
    }

    /// Hangs up the engine's leg of SIP call `call_id` (a BYE to the browser, and the
    /// call or room goes on as for any hangup). Never waits: the engine is asked on the
    /// runtime.
    pub fn end(&self, call_id: String, why: String) {
        let engine = self.engine.clone();
        self.runtime.spawn(async move {
            let Ok(legs) = engine.legs().await else { return };
            for leg in legs.into_iter().filter(|l| l.call_id == call_id) {
                info!(%call_id, leg = %leg.leg_id, reason = %why, "browser media gone: ending its call");
                let _ = engine.hangup(leg.leg_id).await;
            }
        });
    }

    /// A gateway note for a leg of ours: dead media ends its call.
    pub fn media_note(&self, note: &MediaNote) {
        if let MediaNote::Failed(leg, why) = note {
            let call_id = self.legs.lock().unwrap_or_else(|e| e.into_inner()).get(leg).cloned();
            if let Some(call_id) = call_id {
                self.end(call_id, why.clone());
            }
        }
    }
}

impl SipWs {
    /// None when `[sip_ws] enabled = false`.
    /// Must run on the runtime (ending calls is spawned on it).
    pub fn setup(cfg: &Config, inbound: mpsc::Sender<Inbound>, gateway: Option<MediaGatewayBox>, http_tls: bool, engine: EngineHandle) -> Result<Option<SipWs>, String> {
        let s = &cfg.sip_ws;
        if !s.enabled {
            return Ok(None);
        }
        for c in &s.codecs {
            if !["opus", "PCMU", "PCMA"].iter().any(|k| k.eq_ignore_ascii_case(c)) {
                return Err(format!("[sip_ws] codecs: {c:?} is not one of PCMU, PCMA, opus"));
            }
        }
        if gateway.is_none() {
            info!("SIP over WebSocket without the WebRTC gateway: browsers can register, their calls are refused (488)");
        }
        let transport = if http_tls { Transport::Wss } else { Transport::Ws };
        let calls = CallEnder { legs: Default::default(), engine, runtime: tokio::runtime::Handle::current() };
        Ok(Some(SipWs { inbound, gateway, codecs: s.codecs.clone().into(), transport, calls }))
    }

    /// Where the gateway's notes for SIP-over-WebSocket legs go.
    pub fn call_ender(&self) -> CallEnder {
        self.calls.clone()
    }

    /// Middleware for the HTTP listener: an upgrade asking for the `sip` subprotocol is
    /// ours; everything else (the WCS SDK's upgrade at `/`, the APIs) goes on.
    pub async fn dispatch(State(edge): State<SipWs>, req: Request, next: Next) -> Response {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        match peer {
            Some(peer) if asks_for_sip(req.headers()) => edge.upgrade(req, peer).await,
            _ => next.run(req).await,
        }
    }

    /// `[sip_ws] listen`: a listener of its own (plain `ws://`, any path).
    pub async fn spawn_listener(&self, cfg: &Config, stop: watch::Receiver<bool>) -> Result<(), String> {
        let edge = SipWs { transport: Transport::Ws, ..self.clone() };
        let app = axum::Router::new().fallback(move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| async move {
            if asks_for_sip(req.headers()) {
                edge.upgrade(req, peer).await
            } else {
                refuse(StatusCode::BAD_REQUEST, "this is a SIP WebSocket (RFC 7118): upgrade with Sec-WebSocket-Protocol: sip")
            }
        });
        crate::listeners::spawn("[sip_ws] listen", &cfg.sip_ws.listen, "SIP WebSocket", app, stop).await
    }

    async fn upgrade(self, req: Request, peer: SocketAddr) -> Response {
        let (mut parts, _) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws,
            Err(rejection) => return rejection.into_response(),
        };
        let ws = ws.protocols(["sip"]);
        if ws.selected_protocol().is_none() {
            return refuse(StatusCode::BAD_REQUEST, "the sip subprotocol was not offered");
        }
        ws.max_message_size(MAX_FRAME).on_upgrade(move |socket| connection::run(self, socket, peer))
    }
}

/// Does the upgrade offer the `sip` subprotocol (RFC 7118 §4.1)?
fn asks_for_sip(headers: &HeaderMap) -> bool {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"))
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error_code": status.as_u16(), "error_message": why}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_upgrade_offering_sip_is_ours() {
        let mut h = HeaderMap::new();
        assert!(!asks_for_sip(&h), "the WCS SDK offers no subprotocol");
        h.insert("sec-websocket-protocol", "chat, SIP".parse().unwrap());
        assert!(asks_for_sip(&h));
        h.insert("sec-websocket-protocol", "sipx".parse().unwrap());
        assert!(!asks_for_sip(&h));
    }
}
