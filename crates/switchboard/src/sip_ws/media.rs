//! Media anchoring at the WebSocket edge: a browser's WebRTC offer is answered by a
//! WebRTC gateway leg, and the engine, which speaks plain RTP only, is shown a plain
//! SDP at that leg's plain socket instead. The engine's answer goes the other way: its
//! `c=`/`m=` is where the leg relays the browser's RTP, and the browser gets the
//! gateway's answer in its place. RTP is relayed unchanged, so the browser's call is
//! held to one codec the engine takes ([`Anchors`]'s `codecs`, first offered wins):
//! the engine's answer can then only pick that one.
//!
//! The engine calling a browser (a user registered over WebSocket) is the mirror image:
//! its plain offer becomes a gateway offer with the codecs both take, and the browser's
//! answer becomes the plain answer of the gateway leg.
//!
//! State is per WebSocket (one [`Anchors`] in its connection task), keyed by Call-ID.
//! A leg is closed by BYE either way, by a failure answer to the initial INVITE (a
//! digest challenge too: the retried INVITE anchors afresh) and when the socket closes.
//!
//! Re-offers (hold, resume, an engine re-INVITE of any kind) change the direction and
//! nothing else: the gateway leg keeps its ICE, DTLS and codec, and relays whatever
//! comes. A browser's re-INVITE is shown to the engine as the plain SDP again, with the
//! browser's direction and the next `o=` version; the engine's answer goes back as the
//! browser's first answer with the engine's direction, the next version and our DTLS
//! role. An engine re-INVITE goes to the browser as the WebRTC SDP it already holds,
//! re-offered (`a=setup:actpass`, the engine's direction, the next version), and the
//! browser's answer goes back as the plain SDP with its direction.

use api::wcs::media::{sip_sdp, PlainMedia};
use api::wcs::MediaGatewayBox;
use sip::parse::parse_datagram;
use sip::sdp::{Direction, SessionDescription};
use sip::{Message, Method, Request};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{debug, info};

/// What became of a message from the browser.
// Returned and consumed at once, never stored: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Inward {
    /// On to the engine (its body rewritten if it carried a WebRTC offer).
    Forward(Message),
    /// Answered here: the bytes of the response.
    Refuse(Vec<u8>),
}

/// The media anchors of one WebSocket's calls.
pub struct Anchors {
    gateway: Option<MediaGatewayBox>,
    codecs: Arc<[String]>,
    by_call_id: HashMap<String, Anchor>,
    /// Told of each anchored leg, so dead media can end its call (None: unit tests).
    calls: Option<super::CallEnder>,
}

struct Anchor {
    /// The gateway leg.
    leg: u64,
    /// The engine offered (it called the browser); else the browser did.
    engine_offered: bool,
    /// Engine offered: the plain answer made from the browser's, once it came.
    plain_answer: Option<String>,
    /// The gateway's answer to the browser's offer, sent in place of the engine's.
    browser_answer: String,
    /// The plain offer the engine was shown (again for a re-INVITE).
    plain_offer: String,
    /// A 2xx came: later failures are of re-INVITEs and leave the leg up.
    answered: bool,
    /// The plain side, for the SDP the engine gets on re-offers, and its `o=` numbers.
    plain: Option<PlainMedia>,
    plain_session: u64,
    plain_version: u64,
    /// The WebRTC SDP the browser holds from us (our answer, or our offer) and its
    /// `o=` version: what re-offers and re-answers are made of.
    webrtc: String,
    webrtc_version: u64,
    /// Our DTLS role once negotiated (`active` or `passive`), for re-answers.
    our_setup: String,
    /// A re-INVITE in flight: its CSeq number, and whether the browser sent it.
    reinvite: Option<(u32, bool)>,
}

impl Anchor {
    fn new(leg: u64, engine_offered: bool, webrtc: String) -> Anchor {
        Anchor {
            leg,
            engine_offered,
            plain_answer: None,
            browser_answer: String::new(),
            plain_offer: String::new(),
            answered: false,
            plain: None,
            plain_session: rand::random::<u32>() as u64,
            plain_version: 1,
            our_setup: setup_of(&webrtc).filter(|s| s != "actpass").unwrap_or_default(),
            webrtc_version: version_of(&webrtc).unwrap_or(1),
            webrtc,
            reinvite: None,
        }
    }

    /// The next plain SDP for the engine, with `dir`.
    fn next_plain(&mut self, dir: Direction) -> Option<String> {
        let plain = self.plain.as_ref()?;
        self.plain_version += 1;
        Some(sip_sdp(plain, self.plain_session, self.plain_version, dir.as_str(), &[]))
    }

    /// The next WebRTC SDP for the browser, with `dir` and DTLS role `setup`.
    fn next_webrtc(&mut self, dir: Direction, setup: &str) -> String {
        self.webrtc_version += 1;
        rewrite_webrtc(&self.webrtc, self.webrtc_version, dir, setup)
    }
}

/// The direction of an SDP's audio, if it parses.
fn direction_in(body: &[u8]) -> Option<Direction> {
    std::str::from_utf8(body).ok().and_then(|t| SessionDescription::parse(t).ok()).and_then(|d| d.audio()).map(|a| a.direction)
}

fn setup_of(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=setup:")).map(str::to_owned)
}

fn version_of(sdp: &str) -> Option<u64> {
    sdp.lines().find_map(|l| l.strip_prefix("o=")).and_then(|o| o.split_whitespace().nth(2)).and_then(|v| v.parse().ok())
}

/// `sdp` with its `o=` version, its direction lines and its `a=setup` replaced (a
/// missing direction is added after the first `m=` line).
fn rewrite_webrtc(sdp: &str, version: u64, dir: Direction, setup: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut dir_written = false;
    for line in sdp.lines() {
        let l = line.trim_end_matches('\r');
        if let Some(o) = l.strip_prefix("o=") {
            let mut f: Vec<&str> = o.split(' ').collect();
            let v = version.to_string();
            if f.len() >= 3 {
                f[2] = &v;
            }
            out.push_str(&format!("o={}\r\n", f.join(" ")));
        } else if matches!(l, "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive") {
            if !dir_written {
                out.push_str(&format!("a={}\r\n", dir.as_str()));
                dir_written = true;
            }
        } else if l.starts_with("a=setup:") && !setup.is_empty() {
            out.push_str(&format!("a=setup:{setup}\r\n"));
        } else if !l.is_empty() {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    if !dir_written {
        if let Some(at) = out.find("\r\nm=").map(|i| i + 2).and_then(|i| out[i..].find("\r\n").map(|j| i + j + 2)) {
            out.insert_str(at, &format!("a={}\r\n", dir.as_str()));
        }
    }
    out
}

impl Anchors {
    pub fn new(gateway: Option<MediaGatewayBox>, codecs: Arc<[String]>, calls: Option<super::CallEnder>) -> Anchors {
        Anchors { gateway, codecs, by_call_id: HashMap::new(), calls }
    }

    fn anchor(&mut self, call_id: String, a: Anchor) {
        if let Some(c) = &self.calls {
            c.anchored(a.leg, &call_id);
        }
        self.by_call_id.insert(call_id, a);
    }

    /// A message from the browser, before the engine sees it.
    pub fn inward(&mut self, msg: Message) -> Inward {
        let mut req = match msg {
            Message::Request(req) => req,
            Message::Response(resp) => return Inward::Forward(Message::Response(self.browser_answered(resp))),
        };
        match req.method {
            Method::Invite if is_webrtc_offer(&req) => {}
            Method::Bye => {
                self.close(&req.headers.call_id);
                return Inward::Forward(Message::Request(req));
            }
            _ => return Inward::Forward(Message::Request(req)),
        }
        let call_id = req.headers.call_id.clone();
        if req.headers.to.tag().is_some() {
            // A re-INVITE of an anchored call: the plain SDP again, with the browser's
            // direction (see the module docs).
            if let Some(a) = self.by_call_id.get_mut(&call_id) {
                let dir = direction_in(&req.body).unwrap_or_default();
                let body = a.next_plain(dir).unwrap_or_else(|| a.plain_offer.clone());
                a.reinvite = Some((req.headers.cseq.seq, true));
                debug!(%call_id, direction = dir.as_str(), "browser re-offer shown to the engine");
                req.body = body.into_bytes();
                req.headers.content_type = Some("application/sdp".into());
                return Inward::Forward(Message::Request(req));
            }
            return Inward::Refuse(refusal(&req, 488, "WebRTC re-offer of a call not anchored here"));
        }
        // A new call, or the same INVITE again after a digest challenge.
        self.close(&call_id);
        let Some(gw) = &self.gateway else {
            return Inward::Refuse(refusal(&req, 488, "WebRTC media needs the server's WebRTC gateway"));
        };
        let offer = String::from_utf8_lossy(&req.body).into_owned();
        let mut last_err = String::from("No common codecs");
        for codec in self.codecs.iter() {
            match gw.accept_offer(&offer, std::slice::from_ref(codec)) {
                Ok((leg, browser_answer, plain)) => {
                    let mut a = Anchor::new(leg, false, browser_answer.clone());
                    // Re-offers keep this `o=` session id and count its version up.
                    let plain_offer = sip_sdp(&plain, a.plain_session, a.plain_version, "sendrecv", &[]);
                    debug!(%call_id, leg, %codec, plain = %plain.local, "browser media anchored");
                    req.body = plain_offer.clone().into_bytes();
                    req.headers.content_type = Some("application/sdp".into());
                    a.browser_answer = browser_answer;
                    a.plain_offer = plain_offer;
                    a.plain = Some(plain);
                    self.anchor(call_id, a);
                    return Inward::Forward(Message::Request(req));
                }
                // Try the next codec: the browser did not offer this one.
                Err(e) if e == "No common codecs" => {}
                Err(e) => {
                    last_err = e;
                    break;
                }
            }
        }
        info!(%call_id, reason = %last_err, "browser offer refused");
        Inward::Refuse(refusal(&req, 488, &last_err))
    }

    /// The browser's response to an INVITE the engine sent: its WebRTC answer becomes
    /// the gateway leg's plain answer.
    fn browser_answered(&mut self, mut resp: sip::Response) -> sip::Response {
        if resp.headers.cseq.method != Method::Invite {
            return resp;
        }
        let call_id = resp.headers.call_id.clone();
        // The browser's answer to an engine re-INVITE: the plain SDP with its direction.
        if let Some(a) = self.by_call_id.get_mut(&call_id).filter(|a| a.reinvite == Some((resp.headers.cseq.seq, false))) {
            if resp.status >= 200 {
                a.reinvite = None;
            }
            if resp.is_success() && !resp.body.is_empty() {
                let dir = direction_in(&resp.body).unwrap_or_default();
                if let Some(plain) = a.next_plain(dir) {
                    resp.body = plain.into_bytes();
                    resp.headers.content_type = Some("application/sdp".into());
                }
            }
            return resp;
        }
        let Some(a) = self.by_call_id.get_mut(&call_id).filter(|a| a.engine_offered) else { return resp };
        if resp.status >= 300 {
            if !a.answered {
                self.close(&call_id);
            }
            return resp;
        }
        if resp.is_success() {
            a.answered = true;
        }
        if a.plain_answer.is_none() && !resp.body.is_empty() {
            // Our DTLS role is the one the browser's answer leaves us.
            a.our_setup = match setup_of(&String::from_utf8_lossy(&resp.body)).as_deref() {
                Some("active") => "passive".into(),
                _ => "active".into(),
            };
            if let Some(gw) = &self.gateway {
                match gw.accept_answer(a.leg, &String::from_utf8_lossy(&resp.body)) {
                    Ok(mut plain) => {
                        // The engine gets the one codec the browser took: its re-offers
                        // must not let the engine pick another (the leg relays, never
                        // transcodes).
                        let chosen = std::str::from_utf8(&resp.body).ok().and_then(|t| SessionDescription::parse(t).ok()).and_then(|d| d.audio()).and_then(|a| a.codecs.first().map(|c| c.payload_type));
                        if let Some(pt) = chosen {
                            if plain.codecs.iter().any(|c| c.payload_type == pt) {
                                plain.codecs.retain(|c| c.payload_type == pt);
                            }
                        }
                        a.plain_answer = Some(sip_sdp(&plain, a.plain_session, a.plain_version, "sendrecv", &[]));
                        a.plain = Some(plain);
                    }
                    Err(e) => info!(%call_id, reason = %e, "browser answer refused by the gateway"),
                }
            }
        }
        // Every later copy of the answer (183, then 200) reads the same to the engine.
        if let Some(plain) = &a.plain_answer {
            if !resp.body.is_empty() {
                resp.body = plain.clone().into_bytes();
                resp.headers.content_type = Some("application/sdp".into());
            }
        }
        resp
    }

    /// The engine calls the browser: its plain offer becomes a gateway offer.
    fn engine_offers(&mut self, mut req: Request) -> Option<Vec<u8>> {
        let gw = self.gateway.as_ref()?;
        let call_id = req.headers.call_id.clone();
        let audio = std::str::from_utf8(&req.body).ok().and_then(|t| SessionDescription::parse(t).ok()).and_then(|d| d.audio())?;
        let addr = audio.addr?;
        // The codecs both take, in our order: the browser answers with one of them and
        // its RTP reaches the engine unchanged.
        let mut codecs: Vec<sip::sdp::Codec> = audio.codecs.iter().filter(|c| self.codecs.iter().any(|k| k.eq_ignore_ascii_case(&c.name))).cloned().collect();
        codecs.sort_by_key(|c| self.codecs.iter().position(|k| k.eq_ignore_ascii_case(&c.name)));
        let te = audio.codecs.iter().find(|c| c.name.eq_ignore_ascii_case("telephone-event")).map(|c| (c.payload_type, c.clock_rate));
        if codecs.is_empty() {
            info!(%call_id, "engine offer has no codec a browser call may use; sent unchanged");
            return None;
        }
        let (leg, offer) = match gw.create_offer(&codecs, te) {
            Ok(x) => x,
            Err(e) => {
                info!(%call_id, reason = %e, "no gateway offer for the browser; INVITE sent unchanged");
                return None;
            }
        };
        gw.set_plain_remote(leg, addr);
        debug!(%call_id, leg, engine = %addr, "browser media anchored (engine offered)");
        self.close(&call_id);
        self.anchor(call_id, Anchor::new(leg, true, offer.clone()));
        req.body = offer.into_bytes();
        req.headers.content_type = Some("application/sdp".into());
        Some(Message::Request(req).to_bytes())
    }

    /// A message for the browser, after the engine made it: None = send it as it is.
    pub fn outward(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        // Only a new call (an INVITE) or a message of an anchored one is looked into.
        if self.by_call_id.is_empty() && !bytes.starts_with(b"INVITE ") {
            return None;
        }
        let msg = parse_datagram(bytes).ok()?;
        match msg {
            Message::Request(mut req) => {
                if req.method == Method::Invite && req.headers.to.tag().is_none() && !req.body.is_empty() {
                    return self.engine_offers(req);
                }
                if req.method == Method::Invite && !req.body.is_empty() {
                    // An engine re-INVITE of an anchored call: the browser's own WebRTC
                    // SDP, re-offered with the engine's direction.
                    let a = self.by_call_id.get_mut(&req.headers.call_id)?;
                    let sdp = std::str::from_utf8(&req.body).ok().and_then(|t| SessionDescription::parse(t).ok());
                    let audio = sdp.as_ref().and_then(|d| d.audio());
                    if let (Some(addr), Some(gw)) = (audio.as_ref().and_then(|a| a.addr), &self.gateway) {
                        gw.set_plain_remote(a.leg, addr);
                    }
                    let dir = audio.map(|a| a.direction).unwrap_or_default();
                    a.reinvite = Some((req.headers.cseq.seq, false));
                    debug!(call_id = %req.headers.call_id, direction = dir.as_str(), "engine re-offer sent to the browser");
                    req.body = a.next_webrtc(dir, "actpass").into_bytes();
                    req.headers.content_type = Some("application/sdp".into());
                    return Some(Message::Request(req).to_bytes());
                }
                if req.method == Method::Bye {
                    self.close(&req.headers.call_id);
                }
                None
            }
            Message::Response(mut resp) => {
                if resp.headers.cseq.method != Method::Invite {
                    return None;
                }
                // The engine's answer to a browser re-INVITE: the browser's answer again,
                // with the engine's direction and our DTLS role.
                if let Some(a) = self.by_call_id.get_mut(&resp.headers.call_id).filter(|a| a.reinvite == Some((resp.headers.cseq.seq, true))) {
                    if resp.status >= 200 {
                        a.reinvite = None;
                    }
                    if !resp.is_success() || resp.body.is_empty() {
                        return None;
                    }
                    let sdp = std::str::from_utf8(&resp.body).ok().and_then(|t| SessionDescription::parse(t).ok());
                    let audio = sdp.as_ref().and_then(|d| d.audio());
                    if let (Some(addr), Some(gw)) = (audio.as_ref().and_then(|a| a.addr), &self.gateway) {
                        gw.set_plain_remote(a.leg, addr);
                    }
                    let dir = audio.map(|a| a.direction).unwrap_or_default();
                    let setup = a.our_setup.clone();
                    resp.body = a.next_webrtc(dir, &setup).into_bytes();
                    resp.headers.content_type = Some("application/sdp".into());
                    return Some(Message::Response(resp).to_bytes());
                }
                let a = self.by_call_id.get_mut(&resp.headers.call_id).filter(|a| !a.engine_offered)?;
                if resp.status >= 300 {
                    if !a.answered {
                        let call_id = resp.headers.call_id.clone();
                        self.close(&call_id);
                    }
                    return None;
                }
                if resp.is_success() {
                    a.answered = true;
                }
                if resp.body.is_empty() {
                    return None;
                }
                // Where the engine wants the browser's RTP: its answer's c=/m=.
                let sdp = std::str::from_utf8(&resp.body).ok().and_then(|t| SessionDescription::parse(t).ok());
                match sdp.as_ref().and_then(|d| d.audio()).and_then(|a| a.addr) {
                    Some(addr) => {
                        if let Some(gw) = &self.gateway {
                            gw.set_plain_remote(a.leg, addr);
                        }
                    }
                    None => debug!(call_id = %resp.headers.call_id, "engine answer without an audio address"),
                }
                resp.body = a.browser_answer.clone().into_bytes();
                resp.headers.content_type = Some("application/sdp".into());
                Some(Message::Response(resp).to_bytes())
            }
        }
    }

    /// The socket closed: every leg goes, and the engine is asked to end its calls (no
    /// BYE can come from the browser any more, nor reach it).
    pub fn close_all(&mut self) {
        let ids: Vec<String> = self.by_call_id.keys().cloned().collect();
        for id in ids {
            self.close(&id);
            if let Some(c) = &self.calls {
                c.end(id, "the browser's WebSocket closed".into());
            }
        }
    }

    fn close(&mut self, call_id: &str) {
        if let Some(a) = self.by_call_id.remove(call_id) {
            if let Some(gw) = &self.gateway {
                gw.close(a.leg);
            }
            if let Some(c) = &self.calls {
                c.released(a.leg);
            }
            debug!(%call_id, leg = a.leg, "browser media released");
        }
    }
}

/// A WebRTC offer: secure RTP profile (UDP/TLS/RTP/SAVPF) or a DTLS fingerprint. Plain
/// SDP (a SIP phone behind a WebSocket proxy) goes to the engine untouched.
fn is_webrtc_offer(req: &Request) -> bool {
    if req.body.is_empty() {
        return false;
    }
    let text = String::from_utf8_lossy(&req.body);
    text.lines().any(|l| (l.starts_with("m=") && l.contains("/SAVP")) || l.starts_with("a=fingerprint:"))
}

fn refusal(req: &Request, status: u16, reason: &str) -> Vec<u8> {
    let mut resp = req.response(status, Some(&sip::dialog::random_token(10)));
    resp.headers.record_route.clear();
    resp.headers.push("Warning", format!("399 switchboard \"{}\"", reason.replace('"', "'")));
    Message::Response(resp).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::wcs::media::{MediaGateway, PlainMedia};
    use sip::sdp::Codec;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    /// A gateway that offers PCMA only and records what it is told.
    #[derive(Default)]
    struct FakeGateway {
        log: Mutex<Vec<String>>,
    }

    impl MediaGateway for FakeGateway {
        fn accept_offer(&self, _offer: &str, allowed: &[String]) -> Result<(u64, String, PlainMedia), String> {
            self.log.lock().unwrap().push(format!("accept {}", allowed.join(",")));
            if allowed != ["PCMA"] {
                return Err("No common codecs".into());
            }
            let plain = PlainMedia { local: "127.0.0.1:40000".parse().unwrap(), codecs: vec![Codec::pcma()], telephone_event: None, telephone_event_clock: 8000 };
            Ok((7, "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=x-gateway-answer\r\n".into(), plain))
        }
        fn create_offer(&self, codecs: &[Codec], te: Option<(u8, u32)>) -> Result<(u64, String), String> {
            let names: Vec<&str> = codecs.iter().map(|c| c.name.as_str()).collect();
            self.log.lock().unwrap().push(format!("offer {} te {te:?}", names.join(",")));
            Ok((9, "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=x-gateway-offer\r\n".into()))
        }
        fn accept_answer(&self, id: u64, _: &str) -> Result<PlainMedia, String> {
            self.log.lock().unwrap().push(format!("answer {id}"));
            Ok(PlainMedia { local: "127.0.0.1:40002".parse().unwrap(), codecs: vec![Codec::pcmu()], telephone_event: None, telephone_event_clock: 8000 })
        }
        fn set_plain_remote(&self, id: u64, addr: SocketAddr) {
            self.log.lock().unwrap().push(format!("remote {id} {addr}"));
        }
        fn set_forwarding(&self, _: u64, _: bool) {}
        fn send_dtmf(&self, _: u64, _: &str, _: u32) {}
        fn inject_sound(&self, _: u64, _: &std::path::Path) {}
        fn close(&self, id: u64) {
            self.log.lock().unwrap().push(format!("close {id}"));
        }
    }

    const BROWSER_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=fingerprint:sha-256 AA:BB\r\na=rtpmap:111 opus/48000/2\r\n";

    fn invite(to_tag: &str, body: &str) -> Message {
        let text = format!(
            "INVITE sip:conf-1@switchboard.test SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nFrom: <sip:alice@switchboard.test>;tag=a\r\n\
             To: <sip:conf-1@switchboard.test>{to_tag}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@x.invalid;transport=ws>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        parse_datagram(text.as_bytes()).unwrap()
    }

    fn engine_response(status: u16, body: &str) -> Vec<u8> {
        let ct = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".into() };
        format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1;received=127.0.0.1\r\nFrom: <sip:alice@switchboard.test>;tag=a\r\n\
             To: <sip:conf-1@switchboard.test>;tag=b\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn anchors() -> (Anchors, Arc<FakeGateway>) {
        let gw = Arc::new(FakeGateway::default());
        (Anchors::new(Some(gw.clone()), vec!["PCMU".to_owned(), "PCMA".to_owned()].into(), None), gw)
    }

    #[test]
    fn the_engine_sees_a_plain_offer_and_the_browser_gets_the_gateway_answer() {
        let (mut calls, gw) = anchors();
        let Inward::Forward(Message::Request(req)) = calls.inward(invite("", BROWSER_OFFER)) else { panic!("forwarded") };
        let plain = String::from_utf8(req.body).unwrap();
        assert!(plain.contains("m=audio 40000 RTP/AVP 8") && plain.contains("c=IN IP4 127.0.0.1"), "{plain}");
        assert!(!plain.contains("fingerprint"), "{plain}");

        let ok = calls.outward(&engine_response(200, "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8\r\n")).expect("rewritten");
        let ok = String::from_utf8(ok).unwrap();
        assert!(ok.contains("a=x-gateway-answer") && !ok.contains("m=audio 30000"), "{ok}");
        assert!(ok.contains(&format!("Content-Length: {}", "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=x-gateway-answer\r\n".len())), "{ok}");
        assert_eq!(*gw.log.lock().unwrap(), ["accept PCMU", "accept PCMA", "remote 7 127.0.0.1:30000"]);

        // A BYE from the engine releases the leg; later messages pass untouched.
        let bye = b"BYE sip:a@x.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bK2\r\nFrom: <sip:conf-1@switchboard.test>;tag=b\r\nTo: <sip:alice@switchboard.test>;tag=a\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        assert!(calls.outward(bye).is_none());
        assert_eq!(gw.log.lock().unwrap().last().unwrap(), "close 7");
        assert!(calls.by_call_id.is_empty());
    }

    #[test]
    fn re_offers_change_the_direction_and_keep_ice_dtls_and_the_codec() {
        let (mut calls, gw) = anchors();
        assert!(matches!(calls.inward(invite("", BROWSER_OFFER)), Inward::Forward(_)));
        let engine_sdp = |v: u32, dir: &str| format!("v=0\r\no=- 1 {v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8\r\na={dir}\r\n");
        assert!(calls.outward(&engine_response(200, &engine_sdp(1, "sendrecv"))).is_some());

        // The browser holds: the engine sees the plain SDP again, sendonly, version 2.
        let hold = "v=0\r\no=- 1 3 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8\r\nc=IN IP4 0.0.0.0\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\na=sendonly\r\na=rtpmap:8 PCMA/8000\r\n";
        let reinvite = String::from_utf8(invite(";tag=b", hold).to_bytes()).unwrap().replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
        let Inward::Forward(Message::Request(req)) = calls.inward(parse_datagram(reinvite.as_bytes()).unwrap()) else { panic!("forwarded") };
        let plain = String::from_utf8(req.body).unwrap();
        let first = calls.by_call_id["c1"].plain_offer.clone();
        assert!(plain.contains("m=audio 40000 RTP/AVP 8") && plain.contains("a=sendonly") && !plain.contains("fingerprint"), "{plain}");
        assert_eq!(version_of(&plain), Some(2), "{plain}");
        assert_eq!(plain.lines().find(|l| l.starts_with("o=")).map(|o| o.split(' ').nth(1)), first.lines().find(|l| l.starts_with("o=")).map(|o| o.split(' ').nth(1)), "the same o= session: {plain} / {first}");
        // The engine answers recvonly: the browser gets the gateway's answer again.
        let ok = String::from_utf8(engine_response(200, &engine_sdp(2, "recvonly"))).unwrap().replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
        let ok = String::from_utf8(calls.outward(ok.as_bytes()).expect("rewritten")).unwrap();
        assert!(ok.contains("a=x-gateway-answer") && ok.contains("a=recvonly") && !ok.contains("RTP/AVP"), "{ok}");

        // The engine resumes with a re-INVITE: the browser gets its WebRTC SDP re-offered.
        let resume = engine_sdp(3, "sendrecv");
        let engine_reinvite = format!(
            "INVITE sip:a@x.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bK9\r\nFrom: <sip:conf-1@switchboard.test>;tag=b\r\n\
             To: <sip:alice@switchboard.test>;tag=a\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{resume}",
            resume.len()
        );
        let out = String::from_utf8(calls.outward(engine_reinvite.as_bytes()).expect("rewritten")).unwrap();
        assert!(out.contains("a=x-gateway-answer") && out.contains("a=sendrecv") && !out.contains("RTP/AVP"), "{out}");
        // The browser answers: the engine gets the plain SDP, version 3.
        let answer = "v=0\r\no=- 1 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=setup:active\r\na=sendrecv\r\n";
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bK9\r\nFrom: <sip:conf-1@switchboard.test>;tag=b\r\nTo: <sip:alice@switchboard.test>;tag=a\r\n\
             Call-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        let Inward::Forward(Message::Response(r)) = calls.inward(parse_datagram(ok.as_bytes()).unwrap()) else { panic!("forwarded") };
        let plain = String::from_utf8(r.body).unwrap();
        assert!(plain.contains("m=audio 40000 RTP/AVP 8") && plain.contains("a=sendrecv"), "{plain}");
        assert_eq!(version_of(&plain), Some(3), "{plain}");
        assert!(!gw.log.lock().unwrap().iter().any(|l| l.starts_with("close")), "the leg stays up: {:?}", gw.log.lock().unwrap());
    }

    #[test]
    fn a_webrtc_sdp_is_rewritten_in_version_direction_and_role() {
        let sdp = "v=0\r\no=- 99 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:passive\r\na=sendrecv\r\na=mid:0\r\n";
        let r = rewrite_webrtc(sdp, 5, Direction::SendOnly, "actpass");
        assert_eq!(r, "v=0\r\no=- 99 5 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:actpass\r\na=sendonly\r\na=mid:0\r\n");
        let none = rewrite_webrtc("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n", 2, Direction::Inactive, "");
        assert_eq!(none, "v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=inactive\r\na=mid:0\r\n");
    }

    #[test]
    fn a_challenge_releases_the_leg_and_the_retry_anchors_afresh() {
        let (mut calls, gw) = anchors();
        assert!(matches!(calls.inward(invite("", BROWSER_OFFER)), Inward::Forward(_)));
        assert!(calls.outward(&engine_response(407, "")).is_none());
        assert!(gw.log.lock().unwrap().contains(&"close 7".to_owned()));
        assert!(matches!(calls.inward(invite("", BROWSER_OFFER)), Inward::Forward(_)));
        assert_eq!(calls.by_call_id.len(), 1);
    }

    #[test]
    fn without_a_gateway_a_webrtc_offer_is_refused_and_plain_sdp_passes() {
        let mut calls = Anchors::new(None, vec!["PCMU".to_owned()].into(), None);
        let Inward::Refuse(r) = calls.inward(invite("", BROWSER_OFFER)) else { panic!("refused") };
        assert!(String::from_utf8(r).unwrap().starts_with("SIP/2.0 488 "));
        let plain = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let Inward::Forward(Message::Request(req)) = calls.inward(invite("", plain)) else { panic!("forwarded") };
        assert_eq!(req.body, plain.as_bytes());
    }

    #[test]
    fn the_engine_calls_a_browser_through_a_gateway_offer() {
        let (mut calls, gw) = anchors();
        let engine_offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30002 RTP/AVP 9 8 0 101\r\n\
                            a=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let invite = format!(
            "INVITE sip:k7@x.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bK5\r\nFrom: <sip:bob@switchboard.test>;tag=e\r\n\
             To: <sip:alice@switchboard.test>\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{engine_offer}",
            engine_offer.len()
        );
        let out = String::from_utf8(calls.outward(invite.as_bytes()).expect("rewritten")).unwrap();
        assert!(out.contains("a=x-gateway-offer") && !out.contains("m=audio 30002"), "{out}");
        // G.722 is no browser codec here; PCMU before PCMA, our order.
        assert_eq!(gw.log.lock().unwrap()[..2], ["offer PCMU,PCMA te Some((101, 8000))".to_owned(), "remote 9 127.0.0.1:30002".to_owned()]);

        let ringing = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bK5\r\nFrom: <sip:bob@switchboard.test>;tag=e\r\n\
                       To: <sip:alice@switchboard.test>;tag=b\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let Inward::Forward(Message::Response(r)) = calls.inward(parse_datagram(ringing.as_bytes()).unwrap()) else { panic!("forwarded") };
        assert!(r.body.is_empty());
        let ok = ringing.replace("180 Ringing", "200 OK").replace("Content-Length: 0\r\n\r\n", "Content-Type: application/sdp\r\nContent-Length: 36\r\n\r\nv=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n");
        let Inward::Forward(Message::Response(r)) = calls.inward(parse_datagram(ok.as_bytes()).unwrap()) else { panic!("forwarded") };
        let plain = String::from_utf8(r.body).unwrap();
        assert!(plain.contains("m=audio 40002 RTP/AVP 0"), "the engine gets the plain answer: {plain}");
        assert_eq!(gw.log.lock().unwrap().last().unwrap(), "answer 9");
    }
}
