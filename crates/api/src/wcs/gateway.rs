//! The media crate's WebRTC gateway behind [`MediaGateway`]: the same operations, with
//! the gateway's codec and event types turned into the dialect's.

use super::media::{MediaGateway, MediaNote, PlainMedia};
use media::webrtc::{FailReason, GatewayConfig, GatewayEvent, PlainCodec, PlainSide, WebRtcGateway, WebRtcId};
use sip::sdp::Codec;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

struct Gateway(WebRtcGateway);

fn plain_media(p: PlainSide) -> PlainMedia {
    PlainMedia {
        local: p.local,
        codecs: p
            .codecs
            .into_iter()
            .map(|c| Codec { payload_type: c.pt, name: c.name, clock_rate: c.clock, channels: c.channels, fmtp: c.fmtp })
            .collect(),
        telephone_event: p.telephone_event,
        telephone_event_clock: p.telephone_event_clock,
    }
}

impl MediaGateway for Gateway {
    fn accept_offer(&self, offer: &str, allowed: &[String]) -> Result<(u64, String, PlainMedia), String> {
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let (id, answer, plain) = self.0.accept_offer(offer, &allowed).map_err(|e| e.to_string())?;
        Ok((id.0, answer, plain_media(plain)))
    }

    fn create_offer(&self, codecs: &[Codec], telephone_event: Option<(u8, u32)>) -> Result<(u64, String), String> {
        let codecs: Vec<PlainCodec> = codecs
            .iter()
            .map(|c| PlainCodec { pt: c.payload_type, name: c.name.clone(), clock: c.clock_rate, channels: c.channels, fmtp: c.fmtp.clone() })
            .collect();
        let (id, offer) = self.0.create_offer(&codecs, telephone_event).map_err(|e| e.to_string())?;
        Ok((id.0, offer))
    }

    fn accept_answer(&self, id: u64, answer: &str) -> Result<PlainMedia, String> {
        self.0.accept_answer(WebRtcId(id), answer).map(plain_media).map_err(|e| e.to_string())
    }

    fn set_plain_remote(&self, id: u64, addr: SocketAddr) {
        self.0.set_plain_remote(WebRtcId(id), addr)
    }

    fn set_forwarding(&self, id: u64, on: bool) {
        self.0.set_forwarding(WebRtcId(id), on)
    }

    fn send_dtmf(&self, id: u64, digits: &str, duration_ms: u32) {
        self.0.send_dtmf(WebRtcId(id), digits, duration_ms)
    }

    fn inject_sound(&self, id: u64, file: &std::path::Path) {
        self.0.inject(WebRtcId(id), media::PromptSpec::once(vec![media::PromptPart::File(file.to_owned())]))
    }

    fn close(&self, id: u64) {
        self.0.close(WebRtcId(id))
    }
}

/// Starts the gateway; its notes arrive on the receiver (route them with
/// [`super::WcsState::media_note`]). Also returns the ICE socket's address.
pub fn start(
    bind: SocketAddr,
    candidates: Vec<IpAddr>,
    relay_ip: IpAddr,
    media_timeout: Duration,
) -> std::io::Result<((super::MediaGatewayBox, SocketAddr), std::sync::mpsc::Receiver<MediaNote>)> {
    let cfg = GatewayConfig { bind, candidates, relay_ip, media_timeout, connect_timeout: Duration::from_secs(15) };
    let (gw, events) = WebRtcGateway::start(cfg)?;
    let ice = gw.local_ice_addr();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("webrtc-notes".into()).spawn(move || {
        while let Ok(ev) = events.recv() {
            let note = match ev {
                GatewayEvent::Connected(id) => MediaNote::Connected(id.0),
                GatewayEvent::Failed { id, reason } => MediaNote::Failed(id.0, fail_text(reason)),
                GatewayEvent::Closed(id) => MediaNote::Closed(id.0),
            };
            if tx.send(note).is_err() {
                break;
            }
        }
    })?;
    Ok(((Arc::new(Gateway(gw)), ice), rx))
}

fn fail_text(r: FailReason) -> String {
    r.to_string()
}
