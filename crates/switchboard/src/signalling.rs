//! The signalling task: the one place the [`Engine`] lives. It feeds the engine SIP
//! messages, API commands, media events and timer ticks, and carries out what the
//! engine asks to send. One task, no locks: everything else talks to it by channel.

use crate::transport::{tcp_connect, Inbound};
use engine::{Command, Engine, EngineEvent};
use media::MediaEvent;
use sip::{Peer, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// How long a graceful shutdown waits for BYEs to be answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Inputs handled before flushing output, so bursts cost fewer wake-ups.
const BATCH: usize = 64;

pub struct Signalling {
    pub engine: Engine,
    pub udp: Arc<UdpSocket>,
    pub inbound: mpsc::Receiver<Inbound>,
    /// Given to outbound TCP connections so they report like accepted ones.
    pub inbound_tx: mpsc::Sender<Inbound>,
    pub commands: mpsc::Receiver<Command>,
    pub media_events: mpsc::UnboundedReceiver<MediaEvent>,
    pub shutdown: watch::Receiver<bool>,
    /// Where engine events go for `/v1/events`.
    pub events: engine::EventLog,
    /// The room list the API reads without asking the engine.
    pub rooms: engine::RoomDirectory,
    /// Persists call records and room history (never blocks; drops when backed up).
    pub recorder: store::Recorder,
    /// The directory, republished on every change (crate::directory_sync).
    pub directory: watch::Receiver<Arc<engine::users::DirectorySnapshot>>,
    /// Sends the wake-up pushes `EngineEvent::WakeUser` asks for (None: no pushes).
    pub push: Option<crate::push::PushSender>,
    /// Stores voicemail messages, checks mailbox PINs and sends MWI, off this task.
    pub voicemail: crate::voicemail::Mailboxes,
    /// The durable event outbox (crate::outbox): queued without waiting, written in batches.
    pub outbox: crate::outbox::Outbox,
    /// Stores instant messages and sends pending ones when their user registers.
    pub messages: crate::messages::Messages,
    /// Carries live audio streams, which report back when their socket ends (crate::live_audio).
    pub live_audio: crate::live_audio::Client,
}

impl Signalling {
    pub async fn run(mut self) {
        let mut tcp: HashMap<SocketAddr, mpsc::Sender<Arc<[u8]>>> = HashMap::new();
        // SIP WebSockets by the browser's address: the only way back to a `.invalid` contact.
        let mut ws: HashMap<SocketAddr, mpsc::Sender<Arc<[u8]>>> = HashMap::new();
        // Bytes waiting for a TCP connection we are opening.
        let mut connecting: HashMap<SocketAddr, Vec<Arc<[u8]>>> = HashMap::new();
        let mut stop_by: Option<Instant> = None;
        loop {
            let wake = self.engine.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                changed = self.shutdown.changed(), if stop_by.is_none() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        info!(live = self.engine.live_legs(), "shutting down: hanging up live calls");
                        self.engine.shutdown(Instant::now());
                        stop_by = Some(Instant::now() + SHUTDOWN_GRACE);
                    }
                }
                Some(first) = self.inbound.recv() => {
                    let now = Instant::now();
                    let mut next = Some(first);
                    let mut n = 0;
                    while let Some(inb) = next.take() {
                        match inb {
                            Inbound::Message { msg, from } => self.engine.handle_sip(now, msg, from),
                            Inbound::TcpOpened { peer, writer } => {
                                for bytes in connecting.remove(&peer).unwrap_or_default() {
                                    let _ = writer.try_send(bytes);
                                }
                                tcp.insert(peer, writer);
                            }
                            Inbound::TcpClosed { peer } => {
                                tcp.remove(&peer);
                                connecting.remove(&peer);
                            }
                            Inbound::WsOpened { peer, writer } => {
                                ws.insert(peer, writer);
                            }
                            Inbound::WsClosed { peer } => {
                                ws.remove(&peer);
                            }
                        }
                        n += 1;
                        if n < BATCH {
                            next = self.inbound.try_recv().ok();
                        }
                    }
                }
                Some(cmd) = self.commands.recv() => cmd.apply(&mut self.engine, Instant::now(), &self.rooms),
                Ok(()) = self.directory.changed() => {
                    let snapshot = self.directory.borrow_and_update().clone();
                    self.engine.set_directory(snapshot);
                }
                Some(ev) = self.media_events.recv() => self.engine.handle_media_event(Instant::now(), ev),
                _ = sleep_until(wake) => self.engine.handle_timeout(Instant::now()),
                _ = tokio::time::sleep(Duration::from_millis(100)), if stop_by.is_some() => {}
            }
            // Before anything goes out: whoever hears of a new room can list it.
            self.rooms.refresh(&self.engine);
            while let Some((peer, bytes)) = self.engine.poll_transmit() {
                self.transmit(peer, bytes, &mut tcp, &mut connecting, &ws).await;
            }
            // Live audio streams to connect: each in a task of its own.
            while let Some(stream) = self.engine.poll_live_audio() {
                crate::live_audio::connect(&self.live_audio, stream);
            }
            while let Some(ev) = self.engine.poll_event() {
                log_event(&ev);
                self.outbox.push(&ev);
                self.recorder.record(&ev);
                // A wake-up is sent in the background; the engine waits for the app's REGISTER.
                if let (EngineEvent::WakeUser { user_id, call }, Some(push)) = (&ev, &self.push) {
                    push.wake(*user_id, call.clone(), self.directory.borrow().clone());
                }
                self.voicemail.on_event(&ev);
                self.messages.on_event(&ev);
                // Registrations are the registrar's bookkeeping (persisted above, listed
                // by /v1/registrations) and wake-ups the push sender's, not call events:
                // /v1/events stays calls and rooms.
                // Mailbox work (a login carries the PIN) is the voicemail shell's alone.
                let mailbox = matches!(ev, EngineEvent::VoicemailRecorded { .. } | EngineEvent::VoicemailLogin { .. } | EngineEvent::VoicemailPlayed { .. });
                if !mailbox && !matches!(ev, EngineEvent::BindingSaved(_) | EngineEvent::BindingRemoved { .. } | EngineEvent::WakeUser { .. }) {
                    self.events.push(ev);
                }
            }
            if let Some(deadline) = stop_by {
                let done = self.engine.live_legs() == 0 && self.engine.byes_in_flight() == 0;
                if done || Instant::now() >= deadline {
                    if !done {
                        warn!(byes = self.engine.byes_in_flight(), "shutdown grace over with BYEs unanswered");
                    }
                    return;
                }
            }
        }
    }

    async fn transmit(
        &self,
        peer: Peer,
        bytes: Arc<[u8]>,
        tcp: &mut HashMap<SocketAddr, mpsc::Sender<Arc<[u8]>>>,
        connecting: &mut HashMap<SocketAddr, Vec<Arc<[u8]>>>,
        ws: &HashMap<SocketAddr, mpsc::Sender<Arc<[u8]>>>,
    ) {
        match peer.transport {
            Transport::Udp => match self.udp.try_send_to(&bytes, peer.addr) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.udp.send_to(&bytes, peer.addr).await {
                        debug!(to = %peer.addr, error = %e, "udp send failed");
                    }
                }
                Err(e) => debug!(to = %peer.addr, error = %e, "udp send failed"),
            },
            Transport::Tcp => {
                if let Some(w) = tcp.get(&peer.addr) {
                    if w.try_send(bytes).is_err() {
                        debug!(to = %peer.addr, "tcp writer full or gone; message dropped");
                    }
                } else {
                    let queue = connecting.entry(peer.addr).or_default();
                    if queue.is_empty() {
                        tokio::spawn(tcp_connect(peer.addr, self.inbound_tx.clone()));
                    }
                    queue.push(bytes);
                }
            }
            Transport::Ws | Transport::Wss => match ws.get(&peer.addr) {
                Some(w) => {
                    if w.try_send(bytes).is_err() {
                        debug!(to = %peer.addr, "websocket writer full or gone; message dropped");
                    }
                }
                None => debug!(to = %peer.addr, "no websocket from that address (closed?); message dropped"),
            },
            other => debug!(transport = ?other, "transport not supported; message dropped"),
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn log_event(ev: &EngineEvent) {
    match ev {
        EngineEvent::LegStarted(l) => debug!(leg = %l.leg_id, call_id = %l.call_id, "leg started"),
        EngineEvent::LegAnswered(l) => debug!(leg = %l.leg_id, "leg answered"),
        EngineEvent::LegEnded(l) => debug!(leg = %l.leg_id, status = ?l.end_status, "leg ended"),
        EngineEvent::Dtmf { leg_id, digit, .. } => info!(leg = %leg_id, %digit, "DTMF"),
        EngineEvent::RoomStarted(r) => debug!(confid = %r.confid, "room started"),
        EngineEvent::RoomEnded { info, max_participants, .. } => debug!(confid = %info.confid, max_participants, "room ended"),
        EngineEvent::BindingSaved(b) => info!(user = b.user_id, contact = %b.contact, source = %b.source, "registered"),
        EngineEvent::BindingRemoved { user_id, contact } => info!(user = user_id, %contact, "unregistered"),
        EngineEvent::CallStarted(c) => info!(call = %c.call_id, caller = %c.caller.uri, callee = %c.callee.uri, "call started"),
        EngineEvent::CallRinging(c) => debug!(call = %c.call_id, "call ringing"),
        EngineEvent::CallAnswered(c) => info!(call = %c.call_id, "call answered"),
        EngineEvent::CallHeld(c) => info!(call = %c.call_id, side = ?c.held, "call held"),
        EngineEvent::CallRetrieved(c) => info!(call = %c.call_id, "call retrieved"),
        EngineEvent::CallTransferred { info: c, target } => info!(call = %c.call_id, %target, "call transferred"),
        EngineEvent::CallEnded(c) => info!(call = %c.call_id, disposition = ?c.disposition, "call ended"),
        EngineEvent::RecordingStarted { info: c, file } => info!(call = %c.call_id, %file, "recording started"),
        EngineEvent::RecordingStopped { info: c, file } => info!(call = %c.call_id, %file, "recording stopped"),
        EngineEvent::WakeUser { user_id, call } => info!(user = user_id, call = %call.call_id, "waking the user's app by push"),
        EngineEvent::PromptEnded { confid, participantid, prompt_id, end, .. } => {
            debug!(%confid, participant = participantid.as_deref().unwrap_or("*"), prompt_id, %end, "prompt ended")
        }
        EngineEvent::RoomRecordingStarted(r) => info!(confid = %r.confid, number = r.number, tracks = r.tracks, "room recording started"),
        EngineEvent::RoomRecordingStopped(r) => info!(confid = %r.confid, number = r.number, "room recording stopped"),
        EngineEvent::RecordingCompleted { file, duration_ms, failed, .. } => info!(%file, duration_ms, failed, "recording complete"),
        EngineEvent::VoicemailRecorded { user_id, file, .. } => info!(user = user_id, %file, "voicemail recorded"),
        EngineEvent::VoicemailLogin { leg_id, user_id, .. } => info!(leg = %leg_id, user = user_id, "voicemail login"),
        EngineEvent::VoicemailPlayed { user_id, id } => debug!(user = user_id, id, "voicemail played"),
        EngineEvent::MessageAccepted(m) => info!(message = %m.message_id, user = m.user_id, from = %m.from, origin = ?m.origin, "message accepted"),
        EngineEvent::MessageDelivered { message_id, user_id, .. } => info!(message = %message_id, user = user_id, "message delivered"),
        EngineEvent::MessageDeferred { message_id, user_id, reason, .. } => info!(message = %message_id, user = user_id, %reason, "message kept for the next registration"),
        EngineEvent::MessageFailed { message_id, user_id, status, reason, .. } => info!(message = %message_id, user = user_id, status, %reason, "message refused by every device"),
        EngineEvent::StreamStarted(s) => info!(stream = %s.stream_id, url = %s.url, "live audio stream started"),
        EngineEvent::StreamStopped { info: s, reason } => info!(stream = %s.stream_id, %reason, "live audio stream stopped"),
    }
}
