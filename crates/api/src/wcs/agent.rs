//! The SIP side of a WCS session: one [`sip::ua::UserAgent`] (the browser's SIP
//! identity) on its own UDP socket, driven by a task. The session acts on the UA
//! through [`SipAgent::act`] and hears its events on a channel.

use sip::ua::{UaConfig, UaEvent, UserAgent};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

#[derive(Clone)]
pub struct SipAgent {
    ua: Arc<Mutex<UserAgent>>,
    kick: Arc<Notify>,
    stop: Arc<Notify>,
}

impl SipAgent {
    /// Starts the UA on `socket` (already bound; `cfg.local` is its address).
    pub fn start(cfg: UaConfig, socket: UdpSocket) -> (SipAgent, mpsc::UnboundedReceiver<UaEvent>) {
        let ua = Arc::new(Mutex::new(UserAgent::new(cfg)));
        let agent = SipAgent { ua, kick: Arc::new(Notify::new()), stop: Arc::new(Notify::new()) };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(agent.clone(), socket, tx));
        (agent, rx)
    }

    /// Runs `f` on the UA now, then lets the driver send what it queued.
    pub fn act<R>(&self, f: impl FnOnce(&mut UserAgent, Instant) -> R) -> R {
        let r = f(&mut self.ua.lock().unwrap_or_else(|e| e.into_inner()), Instant::now());
        self.kick.notify_one();
        r
    }

    /// Ends the driver (after the last acts are sent).
    pub fn stop(&self) {
        self.stop.notify_one();
    }
}

async fn drive(agent: SipAgent, socket: UdpSocket, events: mpsc::UnboundedSender<UaEvent>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        // Send what is queued, hand out events, and learn the next deadline.
        let (out, evs, deadline) = {
            let mut ua = agent.ua.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            while let Some(t) = ua.poll_transmit() {
                out.push(t);
            }
            let mut evs = Vec::new();
            while let Some(e) = ua.poll_event() {
                evs.push(e);
            }
            (out, evs, ua.poll_timeout())
        };
        for (to, bytes) in out {
            let _ = socket.send_to(&bytes, to).await;
        }
        for e in evs {
            let _ = events.send(e);
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    agent.ua.lock().unwrap_or_else(|e| e.into_inner()).handle_datagram(Instant::now(), &buf[..n], from);
                }
            }
            _ = sleep => agent.ua.lock().unwrap_or_else(|e| e.into_inner()).handle_timeout(Instant::now()),
            _ = agent.kick.notified() => {}
            _ = agent.stop.notified() => {
                // A last flush: the BYEs and un-REGISTER just queued go out, and their
                // answers get a moment to come back.
                let until = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
                loop {
                    let out: Vec<_> = { let mut ua = agent.ua.lock().unwrap_or_else(|e| e.into_inner()); std::iter::from_fn(|| ua.poll_transmit()).collect() };
                    for (to, bytes) in out {
                        let _ = socket.send_to(&bytes, to).await;
                    }
                    tokio::select! {
                        r = socket.recv_from(&mut buf) => if let Ok((n, from)) = r {
                            agent.ua.lock().unwrap_or_else(|e| e.into_inner()).handle_datagram(Instant::now(), &buf[..n], from);
                        },
                        _ = tokio::time::sleep_until(until) => return,
                    }
                }
            }
        }
    }
}
