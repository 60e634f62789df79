//! Transfers and digits inside a dialog: REFER both ways (RFC 3515) with the implicit
//! `refer` subscription and its `message/sipfrag` NOTIFYs, the Replaces header
//! (RFC 3891) that turns an INVITE into a take-over of an existing dialog, and DTMF
//! sent in the media (RFC 4733) or as SIP INFO (`application/dtmf-relay`), and taken
//! from an INFO (`application/dtmf-relay` or `application/dtmf`).
//!
//! The leg layer speaks the protocol; what a transfer *means* (whom to call, which
//! legs to join) is the owner's: it hears [`LegEvent::Referred`] and
//! [`LegEvent::ReferProgress`] and answers with [`Legs::notify_refer`].

use super::*;

/// The REFER subscriptions of one leg.
#[derive(Debug, Default)]
pub(crate) struct ReferState {
    /// We sent a REFER and its subscription is live: NOTIFYs with `Event: refer` are ours.
    pub outgoing: bool,
    /// We accepted a REFER and have not sent its final NOTIFY yet.
    pub incoming: bool,
}

/// How to send digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfMethod {
    /// RFC 4733 telephone-events in the RTP stream.
    Rfc4733,
    /// One SIP INFO per digit, `application/dtmf-relay`.
    Info,
}

/// How long each digit lasts.
pub const DTMF_DURATION_MS: u32 = 160;

/// The dialog a Replaces header names (RFC 3891 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    /// `early-only`: replace only a dialog not yet answered.
    pub early_only: bool,
}

impl Replaces {
    /// Parses `callid;to-tag=x;from-tag=y[;early-only]`. None when a part is missing.
    pub fn parse(s: &str) -> Option<Replaces> {
        let mut parts = s.split(';').map(str::trim);
        let call_id = parts.next().filter(|c| !c.is_empty())?.to_owned();
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (name, value) = p.split_once('=').map(|(n, v)| (n.trim(), Some(v.trim()))).unwrap_or((p, None));
            match (name.to_ascii_lowercase().as_str(), value) {
                ("to-tag", Some(v)) => to_tag = Some(v.to_owned()),
                ("from-tag", Some(v)) => from_tag = Some(v.to_owned()),
                ("early-only", _) => early_only = true,
                _ => {}
            }
        }
        Some(Replaces { call_id, to_tag: to_tag?, from_tag: from_tag?, early_only })
    }

    /// The header value (unescaped; as a Refer-To URI header it is escaped by the printer).
    pub fn to_header_value(&self) -> String {
        let mut s = format!("{};to-tag={};from-tag={}", self.call_id, self.to_tag, self.from_tag);
        if self.early_only {
            s.push_str(";early-only");
        }
        s
    }

    /// The Replaces header of a request, if it has a usable one.
    pub fn from_request(req: &Request) -> Option<Replaces> {
        req.headers.get("Replaces").and_then(Replaces::parse)
    }
}

/// Whether a NOTIFY belongs to a `refer` subscription.
pub(crate) fn is_refer_notify(req: &Request) -> bool {
    req.headers.get("Event").or_else(|| req.headers.get("o")).is_some_and(|e| {
        e.split(';').next().is_some_and(|pkg| pkg.trim().eq_ignore_ascii_case("refer"))
    })
}

/// The status line of a `message/sipfrag` body: `SIP/2.0 180 Ringing`.
pub(crate) fn sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok().filter(|c| (100..700).contains(c))?;
    Some((code, reason.trim().to_owned()))
}

/// The body of an INFO carrying one digit.
fn dtmf_relay_body(digit: char, duration_ms: u32) -> Vec<u8> {
    format!("Signal={digit}\r\nDuration={duration_ms}\r\n").into_bytes()
}

/// The digit an INFO carries, if it is a DTMF INFO: `application/dtmf-relay`
/// (`Signal=5` and an optional `Duration=160` in ms, as most phones send; `Signal=10`
/// and `11` are `*` and `#` for the phones that number them) or `application/dtmf` (the
/// digit alone). `None`: not a DTMF INFO; `Some(None)`: one whose body names no digit.
pub(crate) fn info_digit(req: &Request) -> Option<Option<(char, u32)>> {
    let ctype = req.headers.content_type.as_deref()?;
    let ctype = ctype.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let text = std::str::from_utf8(&req.body).unwrap_or_default();
    let digit = |v: &str| -> Option<char> {
        match v.trim() {
            "10" => Some('*'),
            "11" => Some('#'),
            v => {
                let mut chars = v.chars();
                let d = chars.next()?.to_ascii_uppercase();
                (chars.next().is_none() && matches!(d, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(d)
            }
        }
    };
    match ctype.as_str() {
        "application/dtmf-relay" => {
            let mut signal = None;
            let mut duration = DTMF_DURATION_MS;
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else { continue };
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => signal = digit(value),
                    "duration" => duration = value.trim().parse().unwrap_or(DTMF_DURATION_MS),
                    _ => {}
                }
            }
            Some(signal.map(|d| (d, duration)))
        }
        "application/dtmf" => Some(digit(text).map(|d| (d, DTMF_DURATION_MS))),
        _ => None,
    }
}

impl Legs {
    /// Asks the remote party to call `target` (REFER, with Referred-By). A Replaces
    /// header for an attended transfer goes in `target`'s URI headers. Progress comes
    /// back as [`LegEvent::ReferProgress`].
    pub(crate) fn refer(&mut self, now: Instant, id: &LegId, target: &Uri, referred_by: Option<&str>) -> Result<(), EngineError> {
        let leg = self.legs.get(id).ok_or(EngineError::LegNotFound)?;
        if leg.refer.outgoing {
            return Err(EngineError::Conflict("a transfer is already in progress on this leg".into()));
        }
        let referred_by = referred_by.map(str::to_owned).unwrap_or_else(|| {
            let local = leg.dialog.as_ref().map(|d| d.local_uri.uri.to_string()).unwrap_or_else(|| format!("sip:switchboard@{}", self.cfg.domain));
            local
        });
        let extra = vec![("Refer-To".to_owned(), format!("<{target}>")), ("Referred-By".to_owned(), format!("<{referred_by}>"))];
        self.send_in_dialog(now, id, Method::Refer, extra, None)?;
        if let Some(l) = self.legs.get_mut(id) {
            l.refer.outgoing = true;
        }
        info!(leg = %id, target = %target, "REFER sent");
        Ok(())
    }

    /// The final response to our REFER: a failure ends the transfer at once.
    pub(super) fn on_refer_response(&mut self, id: &LegId, status: u16, reason: &str) {
        if (200..300).contains(&status) {
            return; // accepted: the NOTIFYs tell the rest
        }
        if let Some(l) = self.legs.get_mut(id) {
            l.refer.outgoing = false;
        }
        self.events.push_back(LegEvent::ReferProgress { leg: id.clone(), status, reason: reason.to_owned(), done: true });
    }

    /// A NOTIFY for our REFER: its sipfrag says how the referred call is going.
    pub(super) fn on_refer_notify(&mut self, now: Instant, tx: TxId, id: &LegId, req: Request) {
        let Some((status, reason)) = sipfrag_status(&req.body) else {
            return self.reply_reason(now, tx, &req, 400, None, "NOTIFY needs a message/sipfrag status line");
        };
        self.reply(now, tx, &req, 200, None);
        let terminated = req.headers.get("Subscription-State").is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
        let done = terminated || status >= 200;
        if done {
            if let Some(l) = self.legs.get_mut(id) {
                l.refer.outgoing = false;
            }
        }
        info!(leg = %id, status, "transfer progress");
        self.events.push_back(LegEvent::ReferProgress { leg: id.clone(), status, reason, done });
    }

    /// A REFER from the remote party: 202 and a first `100 Trying` NOTIFY, then the
    /// owner hears [`LegEvent::Referred`].
    pub(super) fn on_refer(&mut self, now: Instant, tx: TxId, id: &LegId, req: Request) {
        let refer_to: Vec<&str> = req.headers.extra.iter().filter(|(n, _)| n.eq_ignore_ascii_case("Refer-To") || n == "r").map(|(_, v)| v.as_str()).collect();
        let [refer_to] = refer_to[..] else {
            return self.reply_reason(now, tx, &req, 400, None, "REFER needs exactly one Refer-To");
        };
        let Ok(target) = sip::parse::parse_name_addr(refer_to) else {
            return self.reply_reason(now, tx, &req, 400, None, "Unparseable Refer-To");
        };
        let mut target = target.uri;
        if !matches!(target.scheme, sip::Scheme::Sip | sip::Scheme::Sips | sip::Scheme::Tel) {
            return self.reply_reason(now, tx, &req, 400, None, "Refer-To must be a SIP or tel URI");
        }
        if self.legs.get(id).is_some_and(|l| l.refer.incoming) {
            // One transfer at a time: the first is still being carried out.
            return self.reply(now, tx, &req, 491, None);
        }
        let replaces = target.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("Replaces")).and_then(|(_, v)| Replaces::parse(v));
        target.headers.clear();
        let referred_by = req.headers.get("Referred-By").or_else(|| req.headers.get("b")).map(|v| v.trim().trim_start_matches('<').split('>').next().unwrap_or("").to_owned());
        self.reply(now, tx, &req, 202, None);
        if let Some(l) = self.legs.get_mut(id) {
            l.refer.incoming = true;
        }
        info!(leg = %id, target = %target, attended = replaces.is_some(), "REFER accepted");
        self.send_refer_notify(now, id, 100, "Trying");
        self.events.push_back(LegEvent::Referred { leg: id.clone(), target, replaces, referred_by });
    }

    /// Tells the party that sent us a REFER how the call it asked for is going: a
    /// provisional status keeps the subscription active, a final one ends it.
    pub(crate) fn notify_refer(&mut self, now: Instant, id: &LegId, status: u16, reason: &str) {
        if !self.legs.get(id).is_some_and(|l| l.refer.incoming && !l.is_over()) {
            return;
        }
        self.send_refer_notify(now, id, status, reason);
        if status >= 200 {
            if let Some(l) = self.legs.get_mut(id) {
                l.refer.incoming = false;
            }
        }
    }

    fn send_refer_notify(&mut self, now: Instant, id: &LegId, status: u16, reason: &str) {
        let state = if status >= 200 { "terminated;reason=noresource".to_owned() } else { "active;expires=60".to_owned() };
        let extra = vec![("Event".to_owned(), "refer".to_owned()), ("Subscription-State".to_owned(), state)];
        let body = format!("SIP/2.0 {status} {reason}\r\n").into_bytes();
        if let Err(e) = self.send_in_dialog(now, id, Method::Notify, extra, Some(("message/sipfrag;version=2.0", body))) {
            debug!(leg = %id, error = %e, "NOTIFY not sent");
        }
    }

    /// The Replaces value naming this leg's dialog, as a party we refer to it should
    /// send it back to us: our tag is the `to-tag` (RFC 3891 §3: the dialog as seen by
    /// the recipient of the INVITE, which is us).
    pub(crate) fn replaces_for(&self, id: &LegId) -> Option<Replaces> {
        let d = self.legs.get(id)?.dialog.as_ref()?;
        Some(Replaces { call_id: d.id.call_id.clone(), to_tag: d.id.local_tag.clone(), from_tag: d.id.remote_tag.clone(), early_only: false })
    }

    /// The live leg whose dialog `r` names. Tags are matched either way round, since
    /// phones differ on whose view the header takes.
    pub(crate) fn find_replaced(&self, r: &Replaces) -> Option<LegId> {
        self.legs
            .values()
            .filter(|l| !l.is_over() && l.call_id == r.call_id)
            .find(|l| {
                let Some(d) = l.dialog.as_ref() else { return false };
                let (a, b) = (d.id.local_tag.as_str(), d.id.remote_tag.as_str());
                (a == r.to_tag && b == r.from_tag) || (a == r.from_tag && b == r.to_tag)
            })
            .map(|l| l.id.clone())
    }

    /// Sends digits to the leg's party. Digits are `0-9 * # A-D`.
    pub(crate) fn send_dtmf(&mut self, now: Instant, id: &LegId, digits: &str, method: DtmfMethod) -> Result<(), EngineError> {
        if digits.is_empty() || digits.len() > 64 {
            return Err(EngineError::BadRequest("digits must be 1 to 64 of 0-9, *, #, A-D".into()));
        }
        if let Some(bad) = digits.chars().find(|c| !matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D')) {
            return Err(EngineError::BadRequest(format!("{bad:?} is not a DTMF digit (0-9, *, #, A-D)")));
        }
        let leg = self.legs.get(id).ok_or(EngineError::LegNotFound)?;
        if leg.is_over() {
            return Err(EngineError::LegEnded);
        }
        if !matches!(leg.state, LegState::Active | LegState::Held) {
            return Err(EngineError::Conflict("the call is not answered yet".into()));
        }
        match method {
            DtmfMethod::Rfc4733 => {
                let m = leg.media.ok_or_else(|| EngineError::MediaUnavailable("the leg has no media".into()))?;
                // The media engine queues them and sends one after another.
                for d in digits.chars() {
                    self.media.send_dtmf(m, d.to_ascii_uppercase(), DTMF_DURATION_MS);
                }
            }
            DtmfMethod::Info => {
                for d in digits.chars() {
                    let body = dtmf_relay_body(d.to_ascii_uppercase(), DTMF_DURATION_MS);
                    self.send_in_dialog(now, id, Method::Info, Vec::new(), Some(("application/dtmf-relay", body)))?;
                }
            }
        }
        info!(leg = %id, digits, ?method, "DTMF sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_round_trips_and_needs_both_tags() {
        let r = Replaces::parse("abc@h;to-tag=1;from-tag=2").unwrap();
        assert_eq!(r, Replaces { call_id: "abc@h".into(), to_tag: "1".into(), from_tag: "2".into(), early_only: false });
        assert_eq!(Replaces::parse(&r.to_header_value()), Some(r));
        assert!(Replaces::parse("abc;to-tag=1;early-only").is_none());
        assert!(Replaces::parse("x;from-tag=2;to-tag=1;early-only").unwrap().early_only);
    }

    /// An INFO with this Content-Type (none if empty) and body, as the parser makes it.
    fn info(ctype: &str, body: &str) -> Request {
        let ctype = if ctype.is_empty() { String::new() } else { format!("Content-Type: {ctype}\r\n") };
        let text = format!(
            "INFO sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n\
             To: <sip:u@example.com>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 INFO\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match sip::parse::parse_datagram(text.as_bytes()) {
            Ok(sip::Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn info_digits_of_both_content_types() {
        assert_eq!(info_digit(&info("application/dtmf-relay", "Signal=5\r\nDuration=250\r\n")), Some(Some(('5', 250))));
        assert_eq!(info_digit(&info("Application/DTMF-Relay", "signal= #\nduration=x")), Some(Some(('#', DTMF_DURATION_MS))));
        assert_eq!(info_digit(&info("application/dtmf-relay", "Signal=10\r\n")), Some(Some(('*', DTMF_DURATION_MS))));
        assert_eq!(info_digit(&info("application/dtmf-relay", "Signal=b\r\n")), Some(Some(('B', DTMF_DURATION_MS))));
        assert_eq!(info_digit(&info("application/dtmf", "7")), Some(Some(('7', DTMF_DURATION_MS))));
        assert_eq!(info_digit(&info("application/dtmf;charset=x", " 9\r\n")), Some(Some(('9', DTMF_DURATION_MS))));
        // DTMF INFOs that name no digit
        assert_eq!(info_digit(&info("application/dtmf-relay", "Signal=55\r\n")), Some(None));
        assert_eq!(info_digit(&info("application/dtmf-relay", "Duration=160")), Some(None));
        assert_eq!(info_digit(&info("application/dtmf", "x")), Some(None));
        // Not DTMF
        assert_eq!(info_digit(&info("application/media_control+xml", "<x/>")), None);
        assert_eq!(info_digit(&info("", "")), None);
    }

    #[test]
    fn sipfrag_status_line() {
        assert_eq!(sipfrag_status(b"SIP/2.0 180 Ringing\r\n"), Some((180, "Ringing".into())));
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some((200, "OK".into())));
        assert_eq!(sipfrag_status(b"SIP/2.0 abc"), None);
        assert_eq!(sipfrag_status(b"hello"), None);
    }
}
