//! Live audio out: a room's mix, or what one leg says and/or hears, streamed to a
//! WebSocket receiver, with what the receiver sends back optionally played into the
//! room or to the leg (issue 12 item 8; wire protocol in `docs/live-audio.md`).
//!
//! The engine owns the streams' life; it never touches the socket. Starting one
//! makes the media tap ([`media::live::LiveAudio`]), attaches it on a media worker
//! and queues a [`StreamConnect`] that the shell picks up with
//! [`crate::Engine::poll_live_audio`] and carries over its WebSocket client. A stream
//! ends when an API stops it, when its room or leg ends, or when the shell reports
//! that the socket failed ([`LiveStreams::shell_ended`]); each start and end is an
//! event (`stream_started`, `stream_stopped` with the reason).
//!
//! A room's mix is tapped on one worker, through one present participant's leg, as
//! a room recording is; when that participant leaves the tap moves to another one
//! (checked after every dispatch: streams are few, so a scan is cheaper than hooks).
//!
//! Which URLs a stream may go to is configuration (`[live_audio] allowed_urls`,
//! prefixes): the API must not become a way to make the server connect anywhere.

use crate::engine::{EngineError, EngineEvent};
use crate::legs::{LegId, Legs};
use media::live::LiveAudio;
/// What a leg's stream carries (the media layer's own type).
pub use media::live::Direction;
use serde::Serialize;
use std::collections::VecDeque;
use tracing::info;

use super::room::Rooms;

/// Why a stream stopped, as its `stream_stopped` event and `stop` message say.
pub mod reason {
    /// An API stopped it.
    pub const STOPPED: &str = "stopped";
    /// The room ended.
    pub const ROOM_ENDED: &str = "room_ended";
    /// The leg's call ended.
    pub const LEG_ENDED: &str = "leg_ended";
    /// The server is shutting down.
    pub const SHUTDOWN: &str = "shutdown";
}

/// What is streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamTarget {
    /// A room's mix, by confid.
    Room(String),
    /// One leg.
    Leg(LegId),
}

/// An API's request to start a stream.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    /// `ws://` or `wss://`, within `[live_audio] allowed_urls`.
    pub url: String,
    /// 8000 or 16000 Hz.
    pub sample_rate: u32,
    /// Play what the receiver sends back.
    pub play_back: bool,
    /// For a leg: what it says, hears, or both (ignored for a room).
    pub direction: Direction,
}

/// A stream as the APIs and events show it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub stream_id: String,
    /// The room streamed, or None for a leg.
    pub confid: Option<String>,
    /// The leg streamed, or None for a room.
    pub leg_id: Option<LegId>,
    /// For a leg: `says`, `hears` or `both`.
    pub direction: Option<&'static str>,
    pub url: String,
    pub sample_rate: u32,
    pub play_back: bool,
    pub started_ms: u64,
    pub domain: String,
}

/// A live stream and how it is going (`GET /v1/streams`).
#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    pub info: StreamInfo,
    /// Frames the receiver did not take in time (the tap overwrote them).
    pub dropped_out: u64,
    /// Playback frames refused because too much was queued.
    pub dropped_back: u64,
    /// Times playback ran dry after it had started.
    pub underruns: u64,
}

/// What the shell is asked to carry: the stream, and the media tap to read and feed.
pub struct StreamConnect {
    pub id: u64,
    pub info: StreamInfo,
    pub audio: LiveAudio,
}

struct Stream {
    id: u64,
    info: StreamInfo,
    audio: LiveAudio,
    at: At,
}

/// Where the tap sits in the media engine.
enum At {
    /// A room's mix, through this present participant (None: nobody with media now).
    Room { confid: String, room: media::RoomId, via: Option<(LegId, media::LegId)> },
    Leg { leg: LegId, media: media::LegId },
}

/// Every live stream.
#[derive(Default)]
pub(crate) struct LiveStreams {
    next: u64,
    streams: Vec<Stream>,
    connects: VecDeque<StreamConnect>,
}

pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Says => "says",
        Direction::Hears => "hears",
        Direction::Both => "both",
    }
}

/// Whether `url` is one a stream may go to: `ws://` or `wss://`, printable ASCII, and
/// starting with one of the configured prefixes (none configured: none allowed).
pub fn url_allowed(allowed: &[String], url: &str) -> bool {
    let scheme = url.starts_with("ws://") || url.starts_with("wss://");
    let printable = url.bytes().all(|b| b.is_ascii_graphic());
    scheme && printable && url.len() <= 2048 && allowed.iter().any(|p| !p.is_empty() && url.starts_with(p.as_str()))
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl LiveStreams {
    /// Starts a stream; the shell connects it once it polls the request.
    pub(crate) fn start(
        &mut self,
        legs: &mut Legs,
        rooms: &Rooms,
        allowed: &[String],
        target: StreamTarget,
        req: StreamRequest,
    ) -> Result<StreamInfo, EngineError> {
        if req.sample_rate != 8000 && req.sample_rate != 16000 {
            return Err(EngineError::BadRequest("`sample_rate` must be 8000 or 16000".into()));
        }
        // Not found before not allowed: a caller learns nothing about URLs from a
        // room or leg it cannot see.
        let (at, domain, direction) = match &target {
            StreamTarget::Room(confid) => {
                let (domain, room, present) = rooms.media_members(legs, confid)?;
                (At::Room { confid: confid.clone(), room, via: present.into_iter().next() }, domain, None)
            }
            StreamTarget::Leg(leg) => {
                let l = legs.get(leg).ok_or(EngineError::LegNotFound)?;
                if l.is_over() {
                    return Err(EngineError::LegEnded);
                }
                let domain = l.domain.clone();
                let media = legs.media_of(leg).ok_or_else(|| EngineError::Conflict("the leg has no media yet".into()))?;
                (At::Leg { leg: leg.clone(), media }, domain, Some(direction_name(req.direction)))
            }
        };
        if !url_allowed(allowed, &req.url) {
            return Err(EngineError::BadRequest("`url` is not one live audio may go to (see `[live_audio] allowed_urls`)".into()));
        }
        if self.streams.iter().any(|s| s.targets(&target)) {
            return Err(EngineError::Conflict("already streaming".into()));
        }
        self.next += 1;
        let id = self.next;
        let audio = LiveAudio::new(id, req.direction, req.play_back);
        let info = StreamInfo {
            stream_id: format!("ls-{id}"),
            confid: match &target {
                StreamTarget::Room(c) => Some(c.clone()),
                StreamTarget::Leg(_) => None,
            },
            leg_id: match &target {
                StreamTarget::Leg(l) => Some(l.clone()),
                StreamTarget::Room(_) => None,
            },
            direction,
            url: req.url,
            sample_rate: req.sample_rate,
            play_back: req.play_back,
            started_ms: epoch_ms(),
            domain,
        };
        match &at {
            At::Room { room, via: Some((_, m)), .. } => legs.media.live_room(*m, *room, Some(audio.clone())),
            At::Room { via: None, .. } => {}
            At::Leg { media, .. } => legs.media.live_leg(*media, Some(audio.clone())),
        }
        info!(stream = %info.stream_id, url = %info.url, "live audio stream started");
        self.connects.push_back(StreamConnect { id, info: info.clone(), audio: audio.clone() });
        legs.public.push_back(EngineEvent::StreamStarted(info.clone()));
        self.streams.push(Stream { id, info: info.clone(), audio, at });
        Ok(info)
    }

    /// Every live stream, oldest first, with its tap's counters.
    pub(crate) fn list(&self) -> Vec<StreamState> {
        self.streams
            .iter()
            .map(|s| {
                let c = s.audio.counters();
                StreamState { info: s.info.clone(), dropped_out: c.dropped_out, dropped_back: c.dropped_back, underruns: c.underruns }
            })
            .collect()
    }

    /// Stops the stream of `target` (an API).
    pub(crate) fn stop(&mut self, legs: &mut Legs, rooms: &Rooms, target: &StreamTarget) -> Result<StreamInfo, EngineError> {
        match target {
            StreamTarget::Room(confid) => drop(rooms.media_members(legs, confid)?),
            StreamTarget::Leg(leg) => {
                legs.get(leg).ok_or(EngineError::LegNotFound)?;
            }
        }
        let i = self.streams.iter().position(|s| s.targets(target)).ok_or_else(|| EngineError::Conflict("not streaming".into()))?;
        Ok(self.end(legs, i, reason::STOPPED))
    }

    /// The shell's socket ended (connect failed, receiver closed or failed).
    pub(crate) fn shell_ended(&mut self, legs: &mut Legs, id: u64, why: &str) {
        if let Some(i) = self.streams.iter().position(|s| s.id == id) {
            self.end(legs, i, why);
        }
    }

    /// Every stream ends (shutdown).
    pub(crate) fn stop_all(&mut self, legs: &mut Legs) {
        while !self.streams.is_empty() {
            self.end(legs, 0, reason::SHUTDOWN);
        }
    }

    /// After each dispatch: streams of ended rooms and legs end; a room's tap moves off
    /// a participant who left.
    pub(crate) fn reconcile(&mut self, legs: &mut Legs, rooms: &Rooms) {
        let mut i = 0;
        while i < self.streams.len() {
            let ended = match &mut self.streams[i].at {
                At::Leg { leg, .. } => legs.get(leg).is_none_or(|l| l.is_over()).then_some(reason::LEG_ENDED),
                At::Room { confid, room, via } => match rooms.media_members(legs, confid) {
                    Err(_) => Some(reason::ROOM_ENDED),
                    Ok((_, _, present)) => {
                        let gone = via.as_ref().is_none_or(|(l, _)| !present.iter().any(|(p, _)| p == l));
                        if gone {
                            if let Some((_, old)) = via.take() {
                                legs.media.live_room(old, *room, None);
                            }
                            if let Some((l, m)) = present.into_iter().next() {
                                legs.media.live_room(m, *room, Some(self.streams[i].audio.clone()));
                                if let At::Room { via, .. } = &mut self.streams[i].at {
                                    *via = Some((l, m));
                                }
                            }
                        }
                        None
                    }
                },
            };
            match ended {
                Some(why) => drop(self.end(legs, i, why)),
                None => i += 1,
            }
        }
    }

    /// Detaches the tap, tells the shell (the tap's stop flag) and publishes the end.
    fn end(&mut self, legs: &mut Legs, i: usize, why: &str) -> StreamInfo {
        let s = self.streams.swap_remove(i);
        match s.at {
            At::Room { room, via: Some((_, m)), .. } => legs.media.live_room(m, room, None),
            At::Room { via: None, .. } => {}
            At::Leg { media, .. } => legs.media.live_leg(media, None),
        }
        s.audio.close(why);
        let c = s.audio.counters();
        info!(stream = %s.info.stream_id, reason = why, dropped = c.dropped_out, "live audio stream stopped");
        legs.public.push_back(EngineEvent::StreamStopped { info: s.info.clone(), reason: why.to_owned() });
        s.info
    }

    /// The next stream for the shell to connect.
    pub(crate) fn poll_connect(&mut self) -> Option<StreamConnect> {
        self.connects.pop_front()
    }
}

impl Stream {
    fn targets(&self, t: &StreamTarget) -> bool {
        match (t, &self.at) {
            (StreamTarget::Room(c), At::Room { confid, .. }) => c == confid,
            (StreamTarget::Leg(l), At::Leg { leg, .. }) => l == leg,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_prefixes_of_ws_urls_are_allowed() {
        let allowed = vec!["ws://127.0.0.1:".to_owned(), "wss://media.example.com/".to_owned()];
        assert!(url_allowed(&allowed, "ws://127.0.0.1:9000/audio"));
        assert!(url_allowed(&allowed, "wss://media.example.com/x?y=1"));
        assert!(!url_allowed(&allowed, "ws://127.0.0.2:9000/"));
        assert!(!url_allowed(&allowed, "wss://media.example.com.evil/"));
        assert!(!url_allowed(&allowed, "ws://127.0.0.1:9000/a b"), "not printable");
        assert!(!url_allowed(&allowed, "ws://127.0.0.1:9000/\u{85}"));
        assert!(!url_allowed(&[], "ws://127.0.0.1:9000/"), "nothing configured: nothing allowed");
        assert!(!url_allowed(&["http://".to_owned()], "http://x/"), "WebSocket URLs only");
    }
}
