//! SIP transports: the sockets. UDP datagrams and TCP streams become parsed messages
//! for the signalling task; bytes from the signalling task go out on the right socket.
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
}

pub async fn udp_receiver(sock: Arc<UdpSocket>, tx: mpsc::Sender<Inbound>) {
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
                if tx.send(Inbound::Message { msg, from: Peer { addr: from, transport: Transport::Udp } }).await.is_err() {
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
