//! The browser's media, as the WCS dialect sees it: a gateway that terminates WebRTC
//! (ICE-lite, DTLS-SRTP) and relays the RTP payloads unchanged to a plain RTP socket,
//! which the session's SIP leg puts in its SDP. The shell plugs the media crate's
//! `WebRtcGateway` in behind [`MediaGateway`]; the dialect only ever sees SDP text,
//! plain sockets and notes about a leg's health.

use sip::sdp::Codec;
use std::net::SocketAddr;

/// The plain-RTP side of one WebRTC leg: what the SIP SDP offers or answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainMedia {
    pub local: SocketAddr,
    /// Kept codecs, with the browser's payload types, in preference order.
    pub codecs: Vec<Codec>,
    /// The telephone-event payload type, if negotiated...
    pub telephone_event: Option<u8>,
    /// ...and its clock (8000, or 48000 beside Opus).
    pub telephone_event_clock: u32,
}

/// What happened to a WebRTC leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaNote {
    Connected(u64),
    /// Dead media: `info` is one of the texts the SDK knows ("Failed by ICE error",
    /// "Failed by DTLS error", "Failed by RTP activity", "No common codecs").
    Failed(u64, String),
    Closed(u64),
}

/// The WebRTC media gateway, as the sessions drive it. Never blocks on media work.
pub trait MediaGateway: Send + Sync + 'static {
    /// The browser offered: our answer for it and the plain side.
    fn accept_offer(&self, offer: &str, allowed: &[String]) -> Result<(u64, String, PlainMedia), String>;
    /// The SIP side offered: an offer for the browser with these codecs (their payload
    /// types) and telephone-event (pt, clock).
    fn create_offer(&self, codecs: &[Codec], telephone_event: Option<(u8, u32)>) -> Result<(u64, String), String>;
    fn accept_answer(&self, id: u64, answer: &str) -> Result<PlainMedia, String>;
    fn set_plain_remote(&self, id: u64, addr: SocketAddr);
    /// Hold on the SIP side: stop (or resume) relaying the browser's audio.
    fn set_forwarding(&self, id: u64, on: bool);
    /// RFC 4733 digits toward the SIP side.
    fn send_dtmf(&self, id: u64, digits: &str, duration_ms: u32);
    /// Play a sound file to the SIP side in place of the browser's audio until it ends
    /// (`/rest-api/call/inject_sound`). The file is read off the media thread.
    fn inject_sound(&self, id: u64, file: &std::path::Path);
    fn close(&self, id: u64);
}

/// The SIP SDP for a plain side (offer or answer): `c=` and `m=` at its socket.
pub fn sip_sdp(plain: &PlainMedia, session_id: u64, version: u64, direction: &str, extra: &[String]) -> String {
    let ip = plain.local.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts: Vec<String> = plain.codecs.iter().map(|c| c.payload_type.to_string()).collect();
    if let Some(te) = plain.telephone_event {
        pts.push(te.to_string());
    }
    let mut s = format!(
        "v=0\r\no=- {session_id} {version} IN {fam} {ip}\r\ns=Switchboard WCS\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
        plain.local.port(),
        pts.join(" ")
    );
    for c in &plain.codecs {
        if c.channels > 1 {
            s.push_str(&format!("a=rtpmap:{} {}/{}/{}\r\n", c.payload_type, c.name, c.clock_rate, c.channels));
        } else {
            s.push_str(&format!("a=rtpmap:{} {}/{}\r\n", c.payload_type, c.name, c.clock_rate));
        }
        if let Some(f) = &c.fmtp {
            s.push_str(&format!("a=fmtp:{} {}\r\n", c.payload_type, f));
        }
    }
    if let Some(te) = plain.telephone_event {
        s.push_str(&format!("a=rtpmap:{te} telephone-event/{}\r\na=fmtp:{te} 0-15\r\n", plain.telephone_event_clock));
    }
    s.push_str("a=ptime:20\r\n");
    s.push_str(&format!("a={direction}\r\n"));
    for line in extra {
        let l = line.trim();
        // The page's `sipSDP` lines: only attributes, never lines that would change
        // the session's shape.
        if l.starts_with("a=") && !l.contains(['\r', '\n']) {
            s.push_str(l);
            s.push_str("\r\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_sdp_lists_the_kept_codecs_at_the_plain_socket() {
        let mut opus = Codec::new(111, "opus", 48000, 2);
        opus.fmtp = Some("minptime=10;useinbandfec=1".into());
        let p = PlainMedia { local: "127.0.0.1:40000".parse().unwrap(), codecs: vec![opus, Codec::pcmu()], telephone_event: Some(126), telephone_event_clock: 8000 };
        let s = sip_sdp(&p, 7, 1, "sendrecv", &["a=x-test:1".into(), "m=video 0".into()]);
        let d = sip::sdp::SessionDescription::parse(&s).unwrap();
        let a = d.audio().unwrap();
        assert_eq!(a.addr, Some("127.0.0.1:40000".parse().unwrap()));
        let names: Vec<_> = a.codecs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["opus", "PCMU", "telephone-event"]);
        assert!(s.contains("a=x-test:1") && !s.contains("m=video"));
    }
}
