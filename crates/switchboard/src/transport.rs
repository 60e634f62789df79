//! SIP transports: the sockets. UDP datagrams and TCP streams become parsed messages
//! for the signalling task; bytes from the signalling task go out on the right socket.
//! WebSockets are `crate::sip_ws`'s (they also anchor the browsers' media).
//!
//! Parsing happens here, in the receiving task, so a flood of garbage costs the
//! receive task and never the signalling task. A malformed request that still shows
//! its Via/From/To/Call-ID/CSeq is answered 400 right here; anything else is dropped.

use sip::parse::{frame_stream, parse_datagram, parse_stream_message, Frame, MAX_MESSAGE_SIZE};
use sip::{Message, Peer, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// What the transports tell the signalling task.
pub enum Inbound {
    Message { msg: Message, from: Peer },
    /// A TCP connection is up (accepted or connected); bytes for `peer` go to `writer`.
    TcpOpened { peer: SocketAddr, writer: mpsc::Sender<Arc<[u8]>> },
    TcpClosed { peer: SocketAddr },
    /// A SIP WebSocket is up (`crate::sip_ws`); messages for `peer` over WS/WSS go to
    /// `writer`. Browsers cannot be dialled, so there is no connecting side.
    WsOpened { peer: SocketAddr, writer: mpsc::Sender<Arc<[u8]>> },
    WsClosed { peer: SocketAddr },
}

/// Kernel receive buffer asked for the SIP UDP socket: a burst of thousands of INVITEs
/// must wait in the kernel, not be dropped, while the receive task catches up.
const SIP_RCVBUF: usize = 8 << 20;

pub async fn udp_receiver(sock: Arc<UdpSocket>, tx: mpsc::Sender<Inbound>) {
    let got = enlarge_receive_buffer(&sock, SIP_RCVBUF);
    if got < SIP_RCVBUF / 2 {
        info!(wanted = SIP_RCVBUF, got, "SIP UDP receive buffer capped by net.core.rmem_max; bursts may drop");
    }
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP port-unreachable from an earlier send surfaces here on Linux.
            Err(e) => {
                debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let data = &buf[..n];
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ' | 0)) {
            continue; // keep-alive
        }
        match parse_datagram(data) {
            Ok(msg) => {
                let inbound = Inbound::Message { msg, from: Peer { addr: from, transport: Transport::Udp } };
                let inbound = match tx.try_send(inbound) {
                    Ok(()) => continue,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    Err(mpsc::error::TrySendError::Full(inbound)) => inbound,
                };
                // The signalling task is behind. Refuse new calls at once (the caller
                // retries later or elsewhere) rather than let the kernel drop datagrams
                // of calls already up; everything else waits for room in the queue.
                if let Some(refusal) = overload_refusal(&inbound) {
                    let _ = sock.send_to(&refusal, from).await;
                    continue;
                }
                if tx.send(inbound).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                debug!(%from, reason = %e.reason, "malformed datagram");
                if let Some(s) = e.salvage {
                    let resp = s.bad_request(&e.reason, &sip::dialog::random_token(10));
                    let _ = sock.send_to(&resp, from).await;
                }
            }
        }
    }
}

/// Asks for `bytes` of receive buffer (SO_RCVBUFFORCE where privileged, else
/// SO_RCVBUF, which the kernel caps at net.core.rmem_max); returns what the socket has.
fn enlarge_receive_buffer(sock: &UdpSocket, bytes: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let val = bytes as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = &val as *const libc::c_int as *const libc::c_void;
    // SAFETY: fd is a live socket owned by `sock`; val outlives the calls.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, ptr, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, ptr, len);
        }
    }
    let mut got: libc::c_int = 0;
    let mut got_len = len;
    // SAFETY: as above; got/got_len are valid for writes.
    let ok = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &mut got as *mut libc::c_int as *mut libc::c_void, &mut got_len) };
    // Linux reports double the requested size (bookkeeping overhead included).
    if ok == 0 { got as usize / 2 } else { 0 }
}

/// Seconds a caller refused with 503 is asked to wait (RFC 3261 §21.5.4).
const OVERLOAD_RETRY_AFTER: &str = "5";

/// The 503 for a dialog-creating INVITE when the signalling queue is full; None for
/// anything else (ACKs, BYEs, responses, in-dialog requests must get through).
fn overload_refusal(inbound: &Inbound) -> Option<Vec<u8>> {
    let Inbound::Message { msg: Message::Request(req), .. } = inbound else { return None };
    if req.method != sip::Method::Invite || req.headers.to.tag().is_some() {
        return None;
    }
    let mut resp = req.response(503, Some(&sip::dialog::random_token(10)));
    resp.headers.record_route.clear();
    resp.headers.push("Retry-After", OVERLOAD_RETRY_AFTER);
    Some(resp.to_bytes())
}

pub async fn tcp_acceptor(listener: TcpListener, tx: mpsc::Sender<Inbound>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(tcp_connection(stream, peer, tx.clone()));
            }
            Err(e) => {
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Opens a connection for an outgoing message to a peer we have no connection to.
pub async fn tcp_connect(peer: SocketAddr, tx: mpsc::Sender<Inbound>) {
    match tokio::time::timeout(std::time::Duration::from_secs(5), TcpStream::connect(peer)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            tcp_connection(stream, peer, tx).await
        }
        Ok(Err(e)) => {
            info!(%peer, error = %e, "tcp connect failed");
            let _ = tx.send(Inbound::TcpClosed { peer }).await;
        }
        Err(_) => {
            info!(%peer, "tcp connect timed out");
            let _ = tx.send(Inbound::TcpClosed { peer }).await;
        }
    }
}

/// One TCP connection: frames messages out of the byte stream (Content-Length is
/// mandatory there), answers CRLF keep-alive pings, and writes what it is given.
async fn tcp_connection(stream: TcpStream, peer: SocketAddr, tx: mpsc::Sender<Inbound>) {
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::channel::<Arc<[u8]>>(256);
    if tx.send(Inbound::TcpOpened { peer, writer: wtx.clone() }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(bytes) = wrx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    'read: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match frame_stream(&buf) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive(k)) => {
                    // RFC 5626 §3.5.1: a double-CRLF ping gets a single-CRLF pong.
                    if k >= 4 {
                        let _ = wtx.send(Arc::from(&b"\r\n"[..])).await;
                    }
                    buf.drain(..k);
                }
                Ok(Frame::Message(len)) => {
                    match parse_stream_message(&buf[..len]) {
                        Ok(msg) => {
                            let from = Peer { addr: peer, transport: Transport::Tcp };
                            if tx.send(Inbound::Message { msg, from }).await.is_err() {
                                break 'read;
                            }
                        }
                        Err(e) => {
                            debug!(%peer, reason = %e.reason, "malformed message on tcp");
                            if let Some(s) = e.salvage {
                                let _ = wtx.send(Arc::from(s.bad_request(&e.reason, &sip::dialog::random_token(10)))).await;
                            }
                        }
                    }
                    buf.drain(..len);
                }
                Err(e) => {
                    // The framing itself is broken: we cannot find the next message, so
                    // answer if we can and close the connection.
                    debug!(%peer, reason = %e.reason, "unframeable tcp stream; closing");
                    if let Some(s) = e.salvage {
                        let _ = wtx.send(Arc::from(s.bad_request(&e.reason, &sip::dialog::random_token(10)))).await;
                    }
                    break 'read;
                }
            }
        }
    }
    drop(wtx);
    let _ = tx.send(Inbound::TcpClosed { peer }).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(text: &str) -> Inbound {
        let msg = parse_datagram(text.as_bytes()).expect("test message parses");
        Inbound::Message { msg, from: Peer { addr: "127.0.0.1:5999".parse().unwrap(), transport: Transport::Udp } }
    }

    fn request(method: &str, to_tag: &str) -> String {
        format!(
            "{method} sip:conf-1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1\r\n\
             From: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:conf-1@127.0.0.1>{to_tag}\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\
             Contact: <sip:a@127.0.0.1:5999>\r\nContent-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn only_new_calls_are_refused_when_overloaded() {
        let refusal = overload_refusal(&inbound(&request("INVITE", ""))).expect("a new INVITE is refused");
        let text = String::from_utf8(refusal).unwrap();
        assert!(text.starts_with("SIP/2.0 503 "), "{text}");
        assert!(text.contains("\r\nRetry-After: 5\r\n"), "{text}");
        assert!(text.contains("Call-ID: c1") && text.contains("CSeq: 1 INVITE"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("To:") && l.contains(";tag=")), "a final response carries a To tag: {text}");
        for kept in [request("INVITE", ";tag=b"), request("BYE", ";tag=b"), request("ACK", ";tag=b"), request("OPTIONS", "")] {
            assert!(overload_refusal(&inbound(&kept)).is_none(), "must reach the engine: {kept}");
        }
    }
}
