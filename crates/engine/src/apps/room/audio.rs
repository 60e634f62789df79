//! What a room's applications do with its audio besides mixing it: prompts played to
//! the room or to one participant, and recordings (the mix, and on request one track
//! per participant) that can be paused.
//!
//! Recording files are `recordings/rooms/<domain>/<confid>/<n>-mix.wav` and
//! `<n>-<participantid>.wav` under the data dir (16 kHz mono). The mix is recorded on
//! one media worker, through one participant's leg ("via"); when that participant
//! leaves, the tap moves to another one. A track ends when its participant leaves.
//! A file is complete when the media layer says so (`RecordingFinished`), which the
//! engine publishes as [`EngineEvent::RecordingCompleted`].

use super::{Room, Rooms};
use crate::engine::{EngineError, EngineEvent};
use crate::legs::{LegId, Legs};
use crate::room::{PromptRequest, RoomRecordingInfo, RecordingFile};
use media::{PromptEnd, PromptId, PromptSpec};
use std::time::SystemTime;
use tracing::info;

/// A prompt started over an API, whose end is published.
pub(crate) struct ApiPrompt {
    pub confid: String,
    pub participantid: Option<String>,
    pub domain: String,
}

/// A running recording of a room.
pub(crate) struct Recording {
    pub info: RoomRecordingInfo,
    /// The mix: the worker it is recorded on (through this participant's media leg)
    /// and our clone of the tap (dropped when the recording stops, so the file can
    /// complete).
    pub via: Option<(LegId, media::LegId)>,
    pub mix: Option<media::recorder::Tap>,
    /// One per participant, while the participant is there.
    pub tracks: Vec<(LegId, media::recorder::Tap)>,
    /// Recordings so far in this room (numbers the files).
    pub seq: u32,
}

/// A file being written, until the media layer says it is complete.
pub(crate) struct PendingFile {
    pub confid: String,
    pub domain: String,
    pub file: String,
    pub participantid: Option<String>,
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A prompt name must name a file of the prompt set, nothing else on the disk.
fn valid_prompt_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Rooms {
    fn spec_of(&self, req: &PromptRequest) -> Result<PromptSpec, EngineError> {
        let mut parts = Vec::new();
        if let Some(name) = &req.prompt {
            if !valid_prompt_name(name) {
                return Err(EngineError::BadRequest(format!("prompt `{name}`: a prompt name is letters, digits, `_` and `-`")));
            }
            parts.push(self.cfg.prompts.part(name));
        }
        if let Some(tones) = &req.tones {
            parts.extend(media::player::parse_tones(tones).map_err(|e| EngineError::BadRequest(format!("tones: {e}")))?);
        }
        if parts.is_empty() {
            return Err(EngineError::BadRequest("give `prompt` (a prompt name) and/or `tones`".into()));
        }
        Ok(PromptSpec { parts, repeat: req.repeat, barge_in: req.barge_in })
    }

    /// Plays a prompt to the whole room, or to one participant present (over what it
    /// hears). Returns the prompt's id; its end is published as an event.
    pub fn play(&mut self, legs: &mut Legs, confid: &str, participantid: Option<&str>, req: &PromptRequest) -> Result<u64, EngineError> {
        let spec = self.spec_of(req)?;
        let room = self.live_room(confid)?;
        let domain = room.info.domain.clone();
        let id = match participantid {
            Some(pid) => {
                let leg = self.present_participant_leg(legs, confid, pid)?;
                legs.play(&leg, spec).ok_or_else(|| EngineError::MediaUnavailable("the participant has no media".into()))?
            }
            None => legs.media.play_to_room(room.media_id, spec),
        };
        info!(confid, participant = participantid.unwrap_or("*"), prompt = id.0, "prompt");
        self.api_prompts.insert(id, ApiPrompt { confid: confid.to_owned(), participantid: participantid.map(str::to_owned), domain });
        Ok(id.0)
    }

    /// Stops the prompt playing to the room, or to one participant.
    pub fn stop_prompt(&mut self, legs: &mut Legs, confid: &str, participantid: Option<&str>) -> Result<(), EngineError> {
        let room = self.live_room(confid)?;
        match participantid {
            Some(pid) => {
                let leg = self.present_participant_leg(legs, confid, pid)?;
                legs.stop_prompt(&leg, None);
            }
            None => legs.media.stop_room_prompt(room.media_id, None),
        }
        Ok(())
    }

    /// A prompt ended (a room prompt is reported by each media worker: the first counts).
    pub(crate) fn prompt_ended(&mut self, legs: &mut Legs, prompt: PromptId, end: PromptEnd) {
        let Some(p) = self.api_prompts.remove(&prompt) else { return };
        let end = match end {
            PromptEnd::Finished => "finished".to_owned(),
            PromptEnd::Interrupted(d) => format!("interrupted by {d}"),
            PromptEnd::Stopped => "stopped".to_owned(),
            PromptEnd::Failed => "failed".to_owned(),
        };
        legs.public.push_back(EngineEvent::PromptEnded { confid: p.confid, participantid: p.participantid, prompt_id: prompt.0, end, domain: p.domain });
    }

    /// The room's recording now (None: not being recorded).
    pub fn recording(&self, confid: &str) -> Result<Option<RoomRecordingInfo>, EngineError> {
        let room = self.live_room(confid)?;
        Ok(room.recording.as_ref().filter(|r| r.mix.is_some()).map(|r| r.info.clone()))
    }

    /// Starts recording the room's mix and, with `tracks`, each participant's voice.
    pub fn record_start(&mut self, legs: &mut Legs, confid: &str, tracks: bool) -> Result<RoomRecordingInfo, EngineError> {
        let room = self.live_room(confid)?;
        if room.recording.as_ref().is_some_and(|r| r.mix.is_some()) {
            return Err(EngineError::Conflict("the room is already being recorded".into()));
        }
        let present = present_media(legs, room);
        let Some(via) = present.first().cloned() else { return Err(EngineError::MediaUnavailable("nobody in the room has media".into())) };
        let seq = room.recording.as_ref().map_or(0, |r| r.seq) + 1;
        let dir = format!("recordings/rooms/{}/{}", room.info.domain, room.info.confid);
        let (domain, media_room) = (room.info.domain.clone(), room.media_id);
        let start = |legs: &mut Legs, file: &str| {
            legs.media.start_recording(&self.cfg.data_dir.join(file)).map_err(|e| EngineError::MediaUnavailable(format!("cannot record: {e}")))
        };
        let mix_file = format!("{dir}/{seq}-mix.wav");
        let (mix_id, mix) = start(legs, &mix_file)?;
        let mut pending = vec![(mix_id, PendingFile { confid: confid.to_owned(), domain: domain.clone(), file: mix_file.clone(), participantid: None })];
        legs.media.tap_room(via.1, media_room, Some(mix.clone()));
        let mut files = vec![RecordingFile { participantid: None, file: mix_file }];
        let mut track_taps = Vec::new();
        if tracks {
            for (leg, m) in &present {
                let pid = self.participant_id_of(confid, leg).unwrap_or_default();
                let file = format!("{dir}/{seq}-{pid}.wav");
                let (id, tap) = start(legs, &file)?;
                legs.media.record_leg(*m, Some(tap.clone()));
                track_taps.push((leg.clone(), tap));
                pending.push((id, PendingFile { confid: confid.to_owned(), domain: domain.clone(), file: file.clone(), participantid: Some(pid.clone()) }));
                files.push(RecordingFile { participantid: Some(pid), file });
            }
        }
        let info = RoomRecordingInfo { confid: confid.to_owned(), number: seq, started_ms: epoch_ms(), paused: false, tracks, files, domain };
        self.pending_files.extend(pending);
        let room = self.rooms.get_mut(confid).expect("checked");
        room.recording = Some(Recording { info: info.clone(), via: Some(via), mix: Some(mix), tracks: track_taps, seq });
        info!(confid, tracks, "room recording started");
        legs.public.push_back(EngineEvent::RoomRecordingStarted(info.clone()));
        Ok(info)
    }

    /// Pauses or resumes the recording: paused stretches are left out of the files.
    pub fn record_pause(&mut self, confid: &str, paused: bool) -> Result<RoomRecordingInfo, EngineError> {
        self.live_room(confid)?;
        let room = self.rooms.get_mut(confid).expect("checked");
        let Some(r) = room.recording.as_mut().filter(|r| r.mix.is_some()) else {
            return Err(EngineError::Conflict("the room is not being recorded".into()));
        };
        if let Some(t) = &r.mix {
            t.set_paused(paused);
        }
        for (_, t) in &r.tracks {
            t.set_paused(paused);
        }
        r.info.paused = paused;
        info!(confid, paused, "room recording paused or resumed");
        Ok(r.info.clone())
    }

    /// Stops the recording; the files complete once the media workers let go of them.
    pub fn record_stop(&mut self, legs: &mut Legs, confid: &str) -> Result<RoomRecordingInfo, EngineError> {
        self.live_room(confid)?;
        let info = self.stop_recording(legs, confid).ok_or(EngineError::Conflict("the room is not being recorded".into()))?;
        Ok(info)
    }

    /// Stops a running recording (also when the room ends); None if there is none.
    pub(crate) fn stop_recording(&mut self, legs: &mut Legs, confid: &str) -> Option<RoomRecordingInfo> {
        let room = self.rooms.get_mut(confid)?;
        let media_room = room.media_id;
        let r = room.recording.as_mut().filter(|r| r.mix.is_some())?;
        if let Some((_, via)) = r.via.take() {
            legs.media.tap_room(via, media_room, None);
        }
        r.mix = None;
        for (leg, _) in r.tracks.drain(..) {
            if let Some(m) = legs.media_of(&leg) {
                legs.media.record_leg(m, None);
            }
        }
        info!(confid, "room recording stopped");
        let info = r.info.clone();
        legs.public.push_back(EngineEvent::RoomRecordingStopped(info.clone()));
        Some(info)
    }

    /// A participant joined a room being recorded with tracks: its own track starts.
    pub(crate) fn record_joiner(&mut self, legs: &mut Legs, confid: &str, id: &LegId) {
        let Some(m) = legs.media_of(id) else { return };
        let pid = self.participant_id_of(confid, id).unwrap_or_default();
        let Some(room) = self.rooms.get_mut(confid) else { return };
        let media_room = room.media_id;
        let Some(r) = room.recording.as_mut().filter(|r| r.mix.is_some()) else { return };
        if r.via.is_none() {
            // Everyone had left: the mix continues through the newcomer.
            if let Some(mix) = &r.mix {
                legs.media.tap_room(m, media_room, Some(mix.clone()));
                r.via = Some((id.clone(), m));
            }
        }
        if !r.info.tracks || r.tracks.iter().any(|(l, _)| l == id) {
            return;
        }
        let file = format!("recordings/rooms/{}/{}/{}-{}.wav", r.info.domain, confid, r.seq, pid);
        let Ok((rec_id, tap)) = legs.media.start_recording(&self.cfg.data_dir.join(&file)) else { return };
        tap.set_paused(r.info.paused);
        legs.media.record_leg(m, Some(tap.clone()));
        r.tracks.push((id.clone(), tap));
        r.info.files.push(RecordingFile { participantid: Some(pid.clone()), file: file.clone() });
        let domain = r.info.domain.clone();
        self.pending_files.push((rec_id, PendingFile { confid: confid.to_owned(), domain, file, participantid: Some(pid) }));
    }

    /// A participant left a room being recorded: its track ends; if the mix was
    /// recorded through it, another participant takes over.
    pub(crate) fn record_leaver(&mut self, legs: &mut Legs, confid: &str, id: &LegId) {
        let Some(room) = self.rooms.get(confid) else { return };
        let present = present_media(legs, room);
        let room = self.rooms.get_mut(confid).expect("checked");
        let media_room = room.media_id;
        let Some(r) = room.recording.as_mut().filter(|r| r.mix.is_some()) else { return };
        r.tracks.retain(|(l, _)| l != id);
        if r.via.as_ref().is_some_and(|(l, _)| l == id) {
            if let Some((_, old)) = r.via.take() {
                legs.media.tap_room(old, media_room, None);
            }
            if let (Some((next_leg, next)), Some(mix)) = (present.iter().find(|(l, _)| l != id), &r.mix) {
                legs.media.tap_room(*next, media_room, Some(mix.clone()));
                r.via = Some((next_leg.clone(), *next));
            }
        }
    }

    /// A recording file is complete: publish it.
    pub(crate) fn recording_finished(&mut self, legs: &mut Legs, recording: u64, samples: u64, dropped: u64, failed: bool) {
        let Some(i) = self.pending_files.iter().position(|(id, _)| *id == recording) else { return };
        let (_, f) = self.pending_files.swap_remove(i);
        info!(confid = %f.confid, file = %f.file, samples, dropped, failed, "recording file complete");
        legs.public.push_back(EngineEvent::RecordingCompleted {
            confid: f.confid,
            participantid: f.participantid,
            file: f.file,
            duration_ms: samples * 1000 / media::MIX_RATE as u64,
            dropped_frames: dropped,
            failed,
            domain: f.domain,
        });
    }

    /// A live room's domain, media room and participants present with media (in join
    /// order): where a live stream of its mix can be tapped.
    pub(crate) fn media_members(&self, legs: &Legs, confid: &str) -> Result<MediaMembers, EngineError> {
        let room = self.live_room(confid)?;
        Ok((room.info.domain.clone(), room.media_id, present_media(legs, room)))
    }

    fn participant_id_of(&self, confid: &str, id: &LegId) -> Option<String> {
        self.rooms.get(confid)?.participants.iter().find(|p| &p.leg == id).map(|p| p.participant_id.clone())
    }
}

/// A room's domain, media room, and participants present with media (leg, media leg).
pub(crate) type MediaMembers = (String, media::RoomId, Vec<(LegId, media::LegId)>);

/// The room's participants present with media: (leg, media leg), in join order.
fn present_media(legs: &Legs, room: &Room) -> Vec<(LegId, media::LegId)> {
    room.participants
        .iter()
        .filter(|p| legs.get(&p.leg).is_some_and(|l| !l.is_over()))
        .filter_map(|p| Some((p.leg.clone(), legs.media_of(&p.leg)?)))
        .collect()
}
