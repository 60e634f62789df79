//! RFC 3264 offer/answer for one audio stream.
//!
//! Switchboard terminates every leg's media itself (it mixes conferences), so each leg
//! settles on exactly one voice codec plus, optionally, telephone-event. Our answers
//! therefore list a single codec: RFC 3264 §6.1 lets an answerer list a subset of the
//! offered formats, and listing one means the peer cannot switch codecs mid-call.

use super::codec::{Codec, Direction};
use super::description::{
    Attribute, AudioInfo, Connection, MediaDescription, Origin, SessionDescription, Timing,
};
use super::SdpError;
use std::net::{IpAddr, SocketAddr};

/// The packetisation interval when the peer asks for none (RFC 3551 §4.2's default).
pub const DEFAULT_PTIME: u32 = 20;

/// The payload type we offer telephone-event on, the de-facto convention.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// What we can do, in our order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCapabilities {
    /// Voice codecs, most preferred first. The payload types are the ones we use in our
    /// own offers; in answers the offerer's numbers win. Entries for telephone-event or
    /// CN are ignored: use `telephone_event`.
    pub codecs: Vec<Codec>,
    /// Whether we send and receive RFC 4733 DTMF events.
    pub telephone_event: bool,
}

impl Default for LocalCapabilities {
    /// PCMU, PCMA and telephone-event: what every SIP endpoint can do.
    fn default() -> Self {
        LocalCapabilities { codecs: vec![Codec::pcmu(), Codec::pcma()], telephone_event: true }
    }
}

/// Per-dialog `o=` state (RFC 3264 §5, §8): the session id stays fixed for the dialog,
/// the version goes up by one for each description we send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub session_id: u64,
    /// The `sess-version` the next description we build will carry.
    pub version: u64,
    /// The `o=` username; `-` (RFC 8866 §5.2) unless there is a reason to say more.
    pub username: String,
}

impl SessionState {
    /// Starts with version = id, the common convention. Pick `session_id` at random
    /// (below 2^62, since some stacks read it into a signed 64-bit integer).
    pub fn new(session_id: u64) -> SessionState {
        SessionState { session_id, version: session_id, username: "-".into() }
    }

    /// The `o=` line for a new description at `ip`, and bumps the version. Incrementing
    /// even when nothing changed is allowed (RFC 3264 §8 only forbids changing content
    /// without incrementing).
    pub fn next_origin(&mut self, ip: IpAddr) -> Origin {
        let origin = Origin::new(self.username.clone(), self.session_id, self.version, ip);
        self.version = self.version.wrapping_add(1);
        origin
    }
}

/// The outcome of an offer/answer exchange, from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec both directions use. `payload_type` is the number on the wire; `name`,
    /// `clock_rate` and `channels` are spelt as in our capabilities; `fmtp` is the
    /// *peer's* parameters for it, i.e. the constraints on what we send.
    pub codec: Codec,
    /// Payload type of telephone-event, if both sides do it.
    pub telephone_event: Option<u8>,
    /// RTP clock rate of that telephone-event format: the codec's clock when the peer
    /// offered such a format, else 8000. Meaningless when `telephone_event` is `None`.
    pub telephone_event_rate: u32,
    /// Where to send RTP; `None` when the peer gave no usable address (`0.0.0.0` hold,
    /// FQDN).
    pub remote: Option<SocketAddr>,
    /// Where to send RTCP (`a=rtcp`, else RTP port + 1).
    pub remote_rtcp: Option<SocketAddr>,
    /// OUR direction: whether we may send and should expect to receive.
    pub direction: Direction,
    /// Packetisation interval to send with, in ms: the peer's `a=ptime`, capped by its
    /// `a=maxptime`, else [`DEFAULT_PTIME`]. A hint (RFC 8866 §6.4), not validated
    /// against the codec's frame size; the media engine rounds it to what it can do.
    pub ptime: u32,
    /// The peer's `a=maxptime`, if any.
    pub maxptime: Option<u32>,
}

/// Whose preference order picks the codec in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecPreference {
    /// Our `LocalCapabilities` order wins: we take our most preferred codec that the
    /// offer contains. The default: RFC 3264 §6.1 recommends following the offer's order
    /// "unless there is a specific reason", and ours is that the server pays for every
    /// codec it encodes and decodes.
    #[default]
    Local,
    /// The offer's `m=` order wins: we take the first offered codec we support.
    Offerer,
}

/// RFC 3264 §6: build the answer to `offer` for our media at `local` (IP + RTP port),
/// choosing the codec by our preference ([`CodecPreference::Local`]).
///
/// The first audio m-line with a non-zero port and a plain RTP profile is accepted; every
/// other m-line (video, a second audio, SRTP audio) is answered with port 0, keeping the
/// number and order of m-lines (§6). Direction per §6.1: the offer's direction reversed,
/// intersected with `local_direction` (pass `SendRecv` normally, `SendOnly`/`Inactive`
/// when we are holding). A `c=0.0.0.0` offer is an RFC 2543 hold: we do not send.
///
/// Err(NoCommonCodec), Err(NoAudio) and Err(UnsupportedTransport) → the caller answers 488.
pub fn answer(
    offer: &SessionDescription,
    caps: &LocalCapabilities,
    local: SocketAddr,
    local_direction: Direction,
    session: &mut SessionState,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    answer_with(offer, caps, local, local_direction, session, CodecPreference::Local)
}

/// [`answer`] with the offerer's codec order winning instead of ours.
pub fn answer_prefer_offerer(
    offer: &SessionDescription,
    caps: &LocalCapabilities,
    local: SocketAddr,
    local_direction: Direction,
    session: &mut SessionState,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    answer_with(offer, caps, local, local_direction, session, CodecPreference::Offerer)
}

/// [`answer`] with an explicit codec preference policy. `session` is only advanced on
/// success.
pub fn answer_with(
    offer: &SessionDescription,
    caps: &LocalCapabilities,
    local: SocketAddr,
    local_direction: Direction,
    session: &mut SessionState,
    preference: CodecPreference,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    let mut unsupported = None;
    let index = offer.media.iter().position(|m| {
        let usable = m.is_audio() && m.port != 0;
        if usable && !m.is_plain_rtp() {
            unsupported.get_or_insert_with(|| m.protocol.clone());
        }
        usable && m.is_plain_rtp()
    });
    let Some(index) = index else {
        return Err(unsupported.map_or(SdpError::NoAudio, SdpError::UnsupportedTransport));
    };
    let info = offer.media_info(index).ok_or(SdpError::NoAudio)?;
    let (theirs, ours) = choose_codec(&info, caps, preference).ok_or(SdpError::NoCommonCodec)?;

    let event = caps.telephone_event.then(|| info.telephone_event_for(ours.clock_rate)).flatten();
    let ptime = negotiated_ptime(&info);
    let direction = info.direction.reverse().intersect(local_direction);

    // Our m-line: the offerer's payload type (§6.1), our spelling and fmtp.
    let offered = &offer.media[index];
    let mut audio = MediaDescription::new("audio", local.port(), offered.protocol.clone());
    audio.push_codec(&Codec { payload_type: theirs.payload_type, ..ours.clone() });
    if let Some(ev) = event {
        audio.push_codec(&Codec::telephone_event(ev.payload_type, ev.clock_rate));
    }
    audio.attributes.push(Attribute::new("ptime", ptime.to_string()));
    audio.set_direction(direction);

    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == index {
                audio.clone()
            } else {
                // Rejected (§6): port 0, same protocol and formats as offered.
                MediaDescription {
                    formats: m.formats.clone(),
                    ..MediaDescription::new(m.kind.clone(), 0, m.protocol.clone())
                }
            }
        })
        .collect();

    let answer = SessionDescription {
        origin: session.next_origin(local.ip()),
        session_name: "-".into(),
        connection: Some(Connection::from_ip(local.ip())),
        // §6: "The t= line in the answer MUST equal that of the offer."
        times: if offer.times.is_empty() { vec![Timing::permanent()] } else { offer.times.clone() },
        media,
        ..Default::default()
    };
    let negotiated = Negotiated {
        codec: Codec {
            payload_type: theirs.payload_type,
            fmtp: theirs.fmtp.clone(),
            ..ours.clone()
        },
        telephone_event: event.map(|e| e.payload_type),
        telephone_event_rate: event.map_or(8000, |e| e.clock_rate),
        remote: info.addr,
        remote_rtcp: info.rtcp,
        direction,
        ptime,
        maxptime: info.maxptime,
    };
    Ok((answer, negotiated))
}

/// The (offered, ours) pair the policy picks, if any codec is shared.
fn choose_codec<'a>(
    info: &'a AudioInfo,
    caps: &'a LocalCapabilities,
    preference: CodecPreference,
) -> Option<(&'a Codec, &'a Codec)> {
    let ours = || caps.codecs.iter().filter(|c| !c.is_auxiliary());
    match preference {
        CodecPreference::Local => {
            ours().find_map(|o| info.voice_codecs().find(|t| t.same_encoding(o)).map(|t| (t, o)))
        }
        CodecPreference::Offerer => {
            info.voice_codecs().find_map(|t| ours().find(|o| o.same_encoding(t)).map(|o| (t, o)))
        }
    }
}

fn negotiated_ptime(info: &AudioInfo) -> u32 {
    let p = info.ptime.unwrap_or(DEFAULT_PTIME);
    info.maxptime.map_or(p, |max| p.min(max))
}

/// An offer from us (dial-out INVITE, re-INVITE for hold/resume): one audio m-line with
/// all our voice codecs in preference order, telephone-event if we do it, `a=ptime:20`
/// and `direction`. For holding, pass `SendOnly` (or `Inactive`); the address stays real
/// (RFC 3264 §8.4 prefers the direction attribute over `c=0.0.0.0`).
///
/// telephone-event goes on PT 101 at 8000 Hz, plus one more format per other RTP clock
/// among our codecs (e.g. 48000 for Opus) on the next free dynamic PTs, so events can
/// match whichever codec the answerer picks (RFC 4733 §2.1).
pub fn offer(
    caps: &LocalCapabilities,
    local: SocketAddr,
    direction: Direction,
    session: &mut SessionState,
) -> SessionDescription {
    let mut audio = MediaDescription::new("audio", local.port(), "RTP/AVP");
    let voice: Vec<&Codec> = caps.codecs.iter().filter(|c| !c.is_auxiliary()).collect();
    for c in &voice {
        audio.push_codec(c);
    }
    if caps.telephone_event {
        let mut used: Vec<u8> = voice.iter().map(|c| c.payload_type).collect();
        let mut rates = vec![8000];
        for c in &voice {
            if !rates.contains(&c.clock_rate) {
                rates.push(c.clock_rate);
            }
        }
        for rate in rates {
            let Some(pt) = free_dynamic_pt(&used) else { break };
            used.push(pt);
            audio.push_codec(&Codec::telephone_event(pt, rate));
        }
    }
    audio.attributes.push(Attribute::new("ptime", DEFAULT_PTIME.to_string()));
    audio.set_direction(direction);

    SessionDescription {
        origin: session.next_origin(local.ip()),
        session_name: "-".into(),
        connection: Some(Connection::from_ip(local.ip())),
        times: vec![Timing::permanent()],
        media: vec![audio],
        ..Default::default()
    }
}

/// The first dynamic payload type not in `used`, starting at 101.
fn free_dynamic_pt(used: &[u8]) -> Option<u8> {
    (TELEPHONE_EVENT_PT..=127).chain(96..TELEPHONE_EVENT_PT).find(|pt| !used.contains(pt))
}

/// Processes the answer to our offer (RFC 3264 §7): the codec the answerer picked (the
/// first format of its audio m-line that we offered), telephone-event if both sides
/// listed it, the remote address, and our direction (the answer's reversed, within what
/// we offered).
pub fn accept_answer(
    our_offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    let index = our_offer
        .media
        .iter()
        .position(|m| m.is_audio() && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    if answer.media.len() != our_offer.media.len() {
        return Err(SdpError::AnswerMismatch(format!(
            "{} m-lines offered, {} answered",
            our_offer.media.len(),
            answer.media.len()
        )));
    }
    let m = &answer.media[index];
    if !m.is_audio() {
        return Err(SdpError::AnswerMismatch(format!(
            "m-line {} answered as {}",
            index + 1,
            m.kind
        )));
    }
    if m.port == 0 {
        return Err(SdpError::AudioRejected);
    }
    let mine = our_offer.media_info(index).ok_or(SdpError::NoAudio)?;
    let theirs = answer.media_info(index).ok_or(SdpError::NoAudio)?;

    let (t, o) = theirs
        .voice_codecs()
        .find_map(|t| mine.voice_codecs().find(|o| o.same_encoding(t)).map(|o| (t, o)))
        .ok_or(SdpError::NoCommonCodec)?;
    let we_offered_events = mine.codecs.iter().any(Codec::is_telephone_event);
    let event = we_offered_events.then(|| theirs.telephone_event_for(o.clock_rate)).flatten();

    Ok(Negotiated {
        codec: Codec { payload_type: t.payload_type, fmtp: t.fmtp.clone(), ..o.clone() },
        telephone_event: event.map(|e| e.payload_type),
        telephone_event_rate: event.map_or(8000, |e| e.clock_rate),
        remote: theirs.addr,
        remote_rtcp: theirs.rtcp,
        direction: theirs.direction.reverse().intersect(mine.direction),
        ptime: negotiated_ptime(&theirs),
        maxptime: theirs.maxptime,
    })
}
