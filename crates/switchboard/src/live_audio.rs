//! The shell's side of live audio out: one task per stream carries the media tap's
//! frames over a WebSocket client to the receiver, and the receiver's frames back into
//! the tap (protocol: `docs/live-audio.md`; the streams' life: `engine::apps::live_audio`).
//!
//! Nothing here can hold up a call. The media worker only ever writes into and reads
//! from the tap's bounded queues; this task drains them every 20 ms. A receiver that
//! reads slowly blocks this task's send, not the worker (whose queue then overwrites
//! its oldest frames, counted); one that sends too much has the excess dropped at the
//! tap; one that fails ends the stream (`receiver_closed`) and the call goes on.
//!
//! Rates: the tap carries 16 kHz frames (the mixing rate). An 8 kHz stream is
//! decimated here, and 8 kHz playback interpolated, with the media crate's half-band
//! filters (continuous across frames).

use engine::{Command, StreamConnect};
use futures_util::{SinkExt, StreamExt};
use media::dsp::resample::{Downsampler, Upsampler};
use media::mixer::Frame;
use media::FRAME_SAMPLES;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info};

/// How long the receiver has to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the `stop` message and the close may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Playback bytes kept while waiting for a whole frame: beyond this the receiver is
/// sending faster than it can be played, and what is buffered is dropped.
const MAX_PENDING_BYTES: usize = 64 * 1024;

/// Reasons the shell ends a stream with (the engine's are in `engine::apps::live_audio::reason`).
const CONNECT_FAILED: &str = "connect_failed";
const RECEIVER_CLOSED: &str = "receiver_closed";

/// How streams reach their receivers: where they report back, and the TLS of `wss://`.
#[derive(Clone)]
pub struct Client {
    pub engine: mpsc::Sender<Command>,
    pub tls: Arc<rustls::ClientConfig>,
}

/// The TLS client of `wss://` receivers: the public web roots, and the CAs of
/// `ca_file` (`[live_audio] ca_file`) if given. Fails on a file with no certificate.
pub fn tls_client(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let why = |e: &dyn std::fmt::Display| format!("[live_audio] ca_file {}: {e}", path.display());
        let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
            rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| why(&e))?.collect::<Result<_, _>>().map_err(|e| why(&e))?;
        if certs.is_empty() {
            return Err(why(&"no certificate in the file"));
        }
        for c in certs {
            roots.add(c).map_err(|e| why(&e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Starts carrying a stream the engine asked for; returns at once.
pub fn connect(client: &Client, c: StreamConnect) {
    let (engine, tls) = (client.engine.clone(), client.tls.clone());
    tokio::spawn(async move {
        let id = c.id;
        if let Err(why) = carry(&c, tls).await {
            // The engine ends the stream and publishes `stream_stopped`.
            let _ = engine.send(Command::StreamEnded(id, why.to_owned())).await;
        }
    });
}

/// Runs one stream until the engine stops it (Ok) or the socket fails (Err: why).
async fn carry(c: &StreamConnect, tls: Arc<rustls::ClientConfig>) -> Result<(), &'static str> {
    let info = &c.info;
    // The connector only applies to wss:// (a ws:// URL stays plain).
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let connecting = tokio_tungstenite::connect_async_tls_with_config(info.url.as_str(), None, false, Some(connector));
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await;
    let (ws, _) = match connected {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            info!(stream = %info.stream_id, url = %info.url, error = %e, "live audio: cannot connect");
            return Err(CONNECT_FAILED);
        }
        Err(_) => {
            info!(stream = %info.stream_id, url = %info.url, "live audio: connect timed out");
            return Err(CONNECT_FAILED);
        }
    };
    let (mut tx, mut rx) = ws.split();
    let mut start = json!({
        "event": "start", "stream_id": info.stream_id, "sample_rate": info.sample_rate,
        "encoding": "s16le", "channels": 1, "frame_ms": 20, "play_back": info.play_back,
    });
    match (&info.confid, &info.leg_id) {
        (Some(confid), _) => start["room"] = json!(confid),
        (None, Some(leg)) => {
            start["leg"] = json!(leg.0);
            start["direction"] = json!(info.direction);
        }
        (None, None) => {}
    }
    tx.send(Message::text(start.to_string())).await.map_err(|_| RECEIVER_CLOSED)?;

    let narrow = info.sample_rate == 8000;
    let mut out = Outgoing { down: Downsampler::new(), narrow, pcm: Vec::with_capacity(FRAME_SAMPLES) };
    let mut back = Playback { up: Upsampler::new(), narrow, pending: Vec::new(), samples: Vec::with_capacity(2 * FRAME_SAMPLES) };
    let mut every = tokio::time::interval(Duration::from_millis(20));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {
                // What is queued goes out first, then the stop (so the tail is not lost).
                while let Some(frame) = c.audio.take() {
                    tx.send(Message::binary(out.encode(&frame))).await.map_err(|_| RECEIVER_CLOSED)?;
                }
                if let Some(reason) = c.audio.stopped() {
                    let stop = json!({ "event": "stop", "stream_id": info.stream_id, "reason": reason });
                    // A clean close: the stop, our close frame, then the receiver's
                    // close (reading what it still sends meanwhile), so that closing the
                    // socket with unread playback does not reset the connection under
                    // the receiver before it has read the stop.
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                        tx.send(Message::text(stop.to_string())).await?;
                        tx.close().await?;
                        while let Some(Ok(m)) = rx.next().await {
                            if m.is_close() {
                                break;
                            }
                        }
                        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
                    })
                    .await;
                    let counters = c.audio.counters();
                    debug!(stream = %info.stream_id, dropped_out = counters.dropped_out, dropped_back = counters.dropped_back, "live audio: closed");
                    return Ok(());
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(data))) if info.play_back => back.feed(&data, &c.audio),
                // Text (and binary without playback) is not ours to act on; pings are
                // answered by tungstenite itself.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    if c.audio.stopped().is_some() {
                        return Ok(());
                    }
                    return Err(RECEIVER_CLOSED);
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Frames to the receiver's rate and byte order.
struct Outgoing {
    down: Downsampler,
    narrow: bool,
    pcm: Vec<i16>,
}

impl Outgoing {
    fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        let samples: &[i16] = if self.narrow {
            self.pcm.resize(FRAME_SAMPLES / 2, 0);
            let n = self.down.process(frame, &mut self.pcm);
            &self.pcm[..n]
        } else {
            frame
        };
        // The message owns its bytes (tungstenite queues them): one allocation a frame,
        // on this task, never on the media thread.
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }
}

/// The receiver's bytes, in any message sizes, back into 20 ms frames at 16 kHz.
struct Playback {
    up: Upsampler,
    narrow: bool,
    /// Samples at the mixing rate not yet a whole frame.
    pending: Vec<i16>,
    samples: Vec<i16>,
}

impl Playback {
    fn feed(&mut self, data: &[u8], audio: &media::live::LiveAudio) {
        // An odd trailing byte cannot be a sample; the format is whole samples.
        let input: Vec<i16> = data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        if self.narrow {
            self.samples.resize(2 * input.len(), 0);
            let n = self.up.process(&input, &mut self.samples);
            self.pending.extend_from_slice(&self.samples[..n]);
        } else {
            self.pending.extend_from_slice(&input);
        }
        if self.pending.len() * 2 > MAX_PENDING_BYTES {
            self.pending.clear();
            return;
        }
        let whole = self.pending.len() / FRAME_SAMPLES * FRAME_SAMPLES;
        for chunk in self.pending[..whole].chunks_exact(FRAME_SAMPLES) {
            let mut f = [0i16; FRAME_SAMPLES];
            f.copy_from_slice(chunk);
            // Refused (and counted) when too much is queued: the receiver is ahead.
            audio.queue_playback(f);
        }
        self.pending.drain(..whole);
    }
}

#[cfg(test)]
mod tests {
    use super::tls_client;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        assert!(tls_client(None).is_ok(), "the web roots alone");
        let dir = std::env::temp_dir().join(format!("sb-live-audio-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = tls_client(Some(&empty)).unwrap_err();
        assert!(e.contains("ca_file") && e.contains("no certificate"), "{e}");
        let missing = dir.join("missing.pem");
        assert!(tls_client(Some(&missing)).unwrap_err().contains("missing.pem"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
