//! One SIP WebSocket: frames in, parsed messages to the signalling task; bytes from the
//! signalling task out as frames. One task owns the socket and the connection's media
//! anchors, so the browser's offer (inbound) and the engine's answer (outbound) meet
//! without a lock.
//!
//! Per message, browser -> engine: one parse (as a UDP datagram: the frame delimits the
//! message, RFC 7118 §5), plus one gateway setup and a re-print for a WebRTC offer.
//! Engine -> browser: a copy into the frame; re-parsed only while a call is anchored.

use super::media::{Anchors, Inward};
use super::SipWs;
use crate::transport::Inbound;
use axum::extract::ws::{Message as Frame, WebSocket};
use sip::parse::parse_datagram;
use sip::Peer;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::debug;

pub async fn run(edge: SipWs, mut socket: WebSocket, peer: SocketAddr) {
    let (wtx, mut wrx) = mpsc::channel::<Arc<[u8]>>(256);
    if edge.inbound.send(Inbound::WsOpened { peer, writer: wtx }).await.is_err() {
        return;
    }
    debug!(%peer, transport = ?edge.transport, "SIP WebSocket open");
    let from = Peer { addr: peer, transport: edge.transport };
    let mut calls = Anchors::new(edge.gateway.clone(), edge.codecs.clone(), Some(edge.calls.clone()));
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let data = match frame {
                    Some(Ok(Frame::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(Frame::Binary(b))) => b.to_vec(),
                    // axum answers pings itself.
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                    Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => break,
                };
                let Some(reply) = inbound(&edge, &mut calls, &data, from).await else { continue };
                if send(&mut socket, reply).await.is_err() {
                    break;
                }
            }
            Some(bytes) = wrx.recv() => {
                let out = calls.outward(&bytes).or_else(|| md5_challenge_only(&bytes)).unwrap_or_else(|| bytes.to_vec());
                if send(&mut socket, out).await.is_err() {
                    break;
                }
            }
        }
    }
    calls.close_all();
    debug!(%peer, "SIP WebSocket closed");
    let _ = edge.inbound.send(Inbound::WsClosed { peer }).await;
}

/// Handles one frame from the browser; returns what to answer on the socket itself
/// (a keep-alive pong, a 400, a refused offer), if anything.
async fn inbound(edge: &SipWs, calls: &mut Anchors, data: &[u8], from: Peer) -> Option<Vec<u8>> {
    if data.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ')) {
        // SIP.js pings with a double CRLF (RFC 5626 §3.5.1 style) and wants one back.
        return data.windows(4).any(|w| w == b"\r\n\r\n").then(|| b"\r\n".to_vec());
    }
    match parse_datagram(data) {
        Ok(msg) => match calls.inward(msg) {
            Inward::Forward(msg) => {
                let _ = edge.inbound.send(Inbound::Message { msg, from }).await;
                None
            }
            Inward::Refuse(answer) => Some(answer),
        },
        Err(e) => {
            debug!(peer = %from.addr, reason = %e.reason, "malformed SIP on websocket");
            e.salvage.map(|s| s.bad_request(&e.reason, &sip::dialog::random_token(10)))
        }
    }
}

/// A 401/407 with several digest challenges (RFC 8760: one per algorithm) cut down to
/// its MD5 one, None when there is nothing to cut. Browser SIP stacks speak MD5 only, and
/// JsSIP keeps just the last `WWW-Authenticate` of a response, so with `MD5, SHA-256`
/// (our default order) it would see SHA-256 alone and give up.
fn md5_challenge_only(bytes: &[u8]) -> Option<Vec<u8>> {
    if !(bytes.starts_with(b"SIP/2.0 401 ") || bytes.starts_with(b"SIP/2.0 407 ")) {
        return None;
    }
    let sip::Message::Response(mut resp) = parse_datagram(bytes).ok()? else { return None };
    let name = if resp.status == 401 { "WWW-Authenticate" } else { "Proxy-Authenticate" };
    let is_md5 = |v: &str| sip::digest::Challenge::parse(v).is_ok_and(|(c, _)| c.algorithm == sip::digest::Algorithm::Md5);
    let challenges: Vec<&str> = resp.headers.extra.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect();
    if challenges.len() < 2 || !challenges.iter().any(|v| is_md5(v)) {
        return None;
    }
    resp.headers.extra.retain(|(n, v)| !n.eq_ignore_ascii_case(name) || is_md5(v));
    Some(sip::Message::Response(resp).to_bytes())
}

/// One SIP message per frame; text when it is UTF-8 (what JsSIP and SIP.js expect).
async fn send(socket: &mut WebSocket, bytes: Vec<u8>) -> Result<(), axum::Error> {
    let frame = match String::from_utf8(bytes) {
        Ok(text) => Frame::Text(text.into()),
        Err(e) => Frame::Binary(e.into_bytes().into()),
    };
    socket.send(frame).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_is_challenged_with_md5_alone() {
        let two = "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nFrom: <sip:a@d>;tag=1\r\nTo: <sip:a@d>;tag=2\r\n\
                   Call-ID: c\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"d\", nonce=\"n\", algorithm=MD5, qop=\"auth\"\r\n\
                   WWW-Authenticate: Digest realm=\"d\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"\r\nContent-Length: 0\r\n\r\n";
        let one = String::from_utf8(md5_challenge_only(two.as_bytes()).expect("cut")).unwrap();
        assert_eq!(one.matches("WWW-Authenticate:").count(), 1, "{one}");
        assert!(one.contains("algorithm=MD5"), "{one}");
        let sha_only = two.replace("algorithm=MD5", "algorithm=SHA-256");
        assert!(md5_challenge_only(sha_only.as_bytes()).is_none(), "nothing to keep: left as it is");
        assert!(md5_challenge_only(b"SIP/2.0 200 OK\r\n\r\n").is_none());
    }
}
