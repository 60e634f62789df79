//! The engine's async face: what the HTTP APIs and the CLI hold.
//!
//! The engine itself is a plain state machine owned by one signalling task in the
//! binary; [`EngineHandle`] sends it [`Command`]s and awaits the replies. Every API
//! dialect goes through this handle and nothing else.

use crate::apps::controller::{ControllerError, ControllerRecord, ControllerRequest, Target, TransferRequest};
use crate::call::{CallId, CallInfo};
use crate::directory::{RoomDirectory, RoomList};
use crate::engine::{resolve_literal, DialOut, EngineError, EngineStatus};
use crate::events::{EventLog, LoggedEvent};
use crate::leg::{LegId, LegInfo, Service};
use crate::room::{ParticipantInfo, ParticipantPatch, RoomInfo, RoomSnapshot, TopologyRule};
use crate::users::{Binding, DomainId};
use crate::call::{Side, SuperviseMode};
use crate::legs::DtmfMethod;
use crate::apps::live_audio::{StreamInfo, StreamRequest, StreamTarget};
use crate::Engine;
use sip::{Peer, Transport, Uri};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A request to the engine, with the channel its answer goes back on.
pub enum Command {
    ListLegs(oneshot::Sender<Vec<LegInfo>>),
    GetLeg(LegId, oneshot::Sender<Option<LegInfo>>),
    DialOut(DialOut, oneshot::Sender<Result<LegInfo, EngineError>>),
    Hangup(LegId, oneshot::Sender<Result<LegInfo, EngineError>>),
    /// A sound into an announcement call (see [`crate::apps::announcement`]).
    PlayToLeg(LegId, media::PromptSpec, oneshot::Sender<Result<u64, EngineError>>),
    DtmfToLeg(LegId, String, DtmfMethod, oneshot::Sender<Result<(), EngineError>>),
    Status(oneshot::Sender<EngineStatus>),
    Rooms(oneshot::Sender<Vec<RoomSnapshot>>),
    Room(String, oneshot::Sender<Result<RoomSnapshot, EngineError>>),
    EndRoom(String, oneshot::Sender<Result<RoomInfo, EngineError>>),
    DialIntoRoom(String, DialOut, oneshot::Sender<Result<ParticipantInfo, EngineError>>),
    Kick(String, String, oneshot::Sender<Result<ParticipantInfo, EngineError>>),
    PatchParticipant(String, String, ParticipantPatch, oneshot::Sender<Result<ParticipantInfo, EngineError>>),
    Topology(String, oneshot::Sender<Result<Vec<TopologyRule>, EngineError>>),
    /// domain (None = ours), room number.
    OpenRoom(Option<String>, String, oneshot::Sender<Result<(RoomInfo, bool), EngineError>>),
    RoomByNumber(Option<String>, String, oneshot::Sender<Result<RoomSnapshot, EngineError>>),
    ChangeTopology(String, Vec<TopologyRule>, oneshot::Sender<Result<Vec<TopologyRule>, EngineError>>),
    /// Every registered contact.
    Registrations(oneshot::Sender<Vec<Binding>>),
    /// The routing lookup for a dial target (see [`Engine::route_user`]).
    RouteUser(Option<DomainId>, String, oneshot::Sender<Option<Result<(Uri, Peer), EngineError>>>),
    /// Third-party call control (reference 002; see [`crate::apps::controller`]).
    ControllerCall(ControllerRequest, oneshot::Sender<Result<(), ControllerError>>),
    ControllerTransfer(TransferRequest, oneshot::Sender<Result<(), ControllerError>>),
    ControllerRecord(String, oneshot::Sender<Option<ControllerRecord>>),
    // Two-party calls (the bridge).
    ListCalls(oneshot::Sender<Vec<CallInfo>>),
    GetCall(CallId, oneshot::Sender<Option<CallInfo>>),
    CallOfLeg(LegId, oneshot::Sender<Option<CallId>>),
    /// from, to, the API caller's domain.
    MakeCall(String, String, Option<DomainId>, oneshot::Sender<Result<CallInfo, EngineError>>),
    ClearCall(CallId, oneshot::Sender<Result<CallInfo, EngineError>>),
    RedirectCall(CallId, String, oneshot::Sender<Result<CallInfo, EngineError>>),
    InterceptCall(CallId, String, oneshot::Sender<Result<CallInfo, EngineError>>),
    /// Mid-call control of a two-party call (see `apps/bridge/control.rs`).
    CallControl(CallId, CallOp, oneshot::Sender<Result<CallInfo, EngineError>>),
    /// A prompt to a room (participant None) or a participant; stopping one.
    PlayPrompt(String, Option<String>, crate::room::PromptRequest, oneshot::Sender<Result<u64, EngineError>>),
    StopPrompt(String, Option<String>, oneshot::Sender<Result<(), EngineError>>),
    RoomRecording(String, oneshot::Sender<Result<Option<crate::room::RoomRecordingInfo>, EngineError>>),
    RoomRecord(String, crate::engine::RecordOp, oneshot::Sender<Result<crate::room::RoomRecordingInfo, EngineError>>),
    /// The shell's answer to `EngineEvent::VoicemailLogin` (see [`Engine::voicemail_login`]).
    VoicemailLogin(LegId, Option<(crate::users::UserId, Vec<crate::apps::voicemail::MessageRef>)>),
    /// Sends MWI to a user's devices: (user, new, old) (see [`Engine::notify_mwi`]).
    NotifyMwi(crate::users::UserId, u32, u32),
    /// An instant message for a user (see [`Engine::send_message`]).
    SendMessage(Box<OutgoingMessage>, oneshot::Sender<Result<crate::apps::messages::MessageInfo, EngineError>>),
    /// A stored message, tried again (see [`Engine::deliver_stored_message`]).
    DeliverStoredMessage(Box<crate::apps::messages::MessageInfo>),
    /// Live audio (see [`crate::apps::live_audio`]): start or stop the stream of a
    /// room or leg; the shell's report that a stream's socket ended (id, reason).
    StartStream(StreamTarget, StreamRequest, oneshot::Sender<Result<StreamInfo, EngineError>>),
    StopStream(StreamTarget, oneshot::Sender<Result<StreamInfo, EngineError>>),
    /// Every live stream.
    Streams(oneshot::Sender<Vec<crate::apps::live_audio::StreamState>>),
    StreamEnded(u64, String),
}

/// What `POST /v1/users/{id}/messages` asks for.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// The API caller's domain (None: any).
    pub domain: Option<DomainId>,
    pub user_id: crate::users::UserId,
    pub from: Option<String>,
    pub content_type: String,
    pub body: String,
}

/// What mid-call control does to a call.
#[derive(Debug, Clone)]
pub enum CallOp {
    /// Nothing: the call as it is (for checking who may see it).
    Inspect,
    Hold { side: Side, inactive: bool },
    Unhold,
    /// Blind (`to`) or attended (`replaces`: the other call).
    Transfer { side: Side, to: Option<String>, replaces: Option<CallId> },
    Dtmf { side: Side, digits: String, method: DtmfMethod },
    Supervise { to: String, mode: SuperviseMode },
    RecordStart,
    RecordStop,
    /// Into the room with this number (created if needed) or confid.
    Conference { room: String },
    /// Into the scheduled conference with this access id (see [`crate::schedule`]),
    /// on behalf of `user`: its window is enforced (Conflict outside it), and the
    /// call's party that is `user` counts as the owner when `user` booked it.
    JoinScheduled { access_id: u64, user: crate::users::UserId },
}

impl Command {
    /// Applies the command to the engine and answers it. Called by the signalling task,
    /// which owns `rooms`: it is republished before the answer goes out, so the caller
    /// reads its own writes (a hang-up may have ended a room).
    pub fn apply(self, engine: &mut Engine, now: Instant, rooms: &RoomDirectory) {
        fn answer<T>(reply: oneshot::Sender<T>, value: T, engine: &Engine, rooms: &RoomDirectory) {
            rooms.refresh(engine);
            // A dropped receiver means the HTTP client went away; nothing to do then.
            drop(reply.send(value));
        }
        match self {
            Command::ListLegs(reply) => answer(reply, engine.legs(), engine, rooms),
            Command::GetLeg(id, reply) => answer(reply, engine.leg(&id), engine, rooms),
            Command::DialOut(d, reply) => {
                let r = engine.dial_out(now, d);
                answer(reply, r, engine, rooms)
            }
            Command::Hangup(id, reply) => {
                let r = engine.hangup(now, &id);
                answer(reply, r, engine, rooms)
            }
            Command::PlayToLeg(id, spec, reply) => {
                let r = engine.play_to_leg(&id, spec);
                answer(reply, r, engine, rooms)
            }
            Command::DtmfToLeg(id, digits, method, reply) => {
                let r = engine.dtmf_to_leg(now, &id, &digits, method);
                answer(reply, r, engine, rooms)
            }
            Command::Status(reply) => answer(reply, engine.status(), engine, rooms),
            Command::Rooms(reply) => answer(reply, engine.rooms(), engine, rooms),
            Command::Room(confid, reply) => answer(reply, engine.room(&confid), engine, rooms),
            Command::EndRoom(confid, reply) => {
                let r = engine.end_room(now, &confid);
                answer(reply, r, engine, rooms)
            }
            Command::DialIntoRoom(confid, d, reply) => {
                let r = engine.dial_into_room(now, &confid, d);
                answer(reply, r, engine, rooms)
            }
            Command::Kick(confid, pid, reply) => {
                let r = engine.kick(now, &confid, &pid);
                answer(reply, r, engine, rooms)
            }
            Command::PatchParticipant(confid, pid, patch, reply) => {
                let r = engine.patch_participant(&confid, &pid, patch);
                answer(reply, r, engine, rooms)
            }
            Command::Topology(confid, reply) => answer(reply, engine.topology(&confid), engine, rooms),
            Command::OpenRoom(domain, number, reply) => {
                let r = engine.open_room(now, domain.as_deref(), &number);
                answer(reply, r, engine, rooms)
            }
            Command::RoomByNumber(domain, number, reply) => answer(reply, engine.room_by_number(domain.as_deref(), &number), engine, rooms),
            Command::Registrations(reply) => answer(reply, engine.bindings(), engine, rooms),
            Command::RouteUser(domain, target, reply) => answer(reply, engine.route_user(domain, &target), engine, rooms),
            Command::ControllerCall(req, reply) => {
                let r = crate::apps::controller::call(engine, now, req);
                answer(reply, r, engine, rooms)
            }
            Command::ControllerTransfer(req, reply) => {
                let r = crate::apps::controller::transfer(engine, now, req);
                answer(reply, r, engine, rooms)
            }
            Command::ControllerRecord(key, reply) => {
                let r = crate::apps::controller::record(engine, now, &key);
                answer(reply, r, engine, rooms)
            }
            Command::ListCalls(reply) => answer(reply, engine.calls(), engine, rooms),
            Command::GetCall(id, reply) => answer(reply, engine.call(id), engine, rooms),
            Command::CallOfLeg(leg, reply) => answer(reply, engine.call_of_leg(&leg), engine, rooms),
            Command::VoicemailLogin(leg, result) => engine.voicemail_login(now, &leg, result),
            Command::NotifyMwi(user, new, old) => engine.notify_mwi(now, user, new, old),
            Command::SendMessage(m, reply) => {
                let r = engine.send_message(now, *m);
                answer(reply, r, engine, rooms)
            }
            Command::DeliverStoredMessage(info) => engine.deliver_stored_message(now, *info),
            Command::MakeCall(from, to, domain, reply) => {
                let r = engine.make_call(now, &from, &to, domain);
                answer(reply, r, engine, rooms)
            }
            Command::ClearCall(id, reply) => {
                let r = engine.clear_call(now, id);
                answer(reply, r, engine, rooms)
            }
            Command::RedirectCall(id, target, reply) => {
                let r = engine.redirect_call(now, id, &target);
                answer(reply, r, engine, rooms)
            }
            Command::InterceptCall(id, device, reply) => {
                let r = engine.intercept_call(now, id, &device);
                answer(reply, r, engine, rooms)
            }
            Command::CallControl(id, op, reply) => {
                let r = engine.call_control(now, id, op);
                answer(reply, r, engine, rooms)
            }
            Command::PlayPrompt(confid, pid, req, reply) => {
                let r = engine.play_prompt(&confid, pid.as_deref(), &req);
                answer(reply, r, engine, rooms)
            }
            Command::StopPrompt(confid, pid, reply) => {
                let r = engine.stop_prompt(&confid, pid.as_deref());
                answer(reply, r, engine, rooms)
            }
            Command::RoomRecording(confid, reply) => answer(reply, engine.room_recording(&confid), engine, rooms),
            Command::RoomRecord(confid, op, reply) => {
                let r = engine.room_record(now, &confid, op);
                answer(reply, r, engine, rooms)
            }
            Command::ChangeTopology(confid, rules, reply) => {
                let r = engine.change_topology(&confid, rules);
                answer(reply, r, engine, rooms)
            }
            Command::StartStream(target, req, reply) => {
                let r = engine.live_audio.start(&mut engine.legs, &engine.rooms, &engine.cfg.live_audio_urls, target, req);
                answer(reply, r, engine, rooms)
            }
            Command::StopStream(target, reply) => {
                let r = engine.live_audio.stop(&mut engine.legs, &engine.rooms, &target);
                answer(reply, r, engine, rooms)
            }
            Command::Streams(reply) => {
                let r = engine.live_audio.list();
                answer(reply, r, engine, rooms)
            }
            Command::StreamEnded(id, why) => engine.live_audio.shell_ended(&mut engine.legs, id, &why),
        }
    }
}

/// A dial-out into a room with the caller's own identity and credentials (what a
/// conference controller asks for); the handle resolves the target.
#[derive(Debug, Clone)]
pub struct RoomDialOutRequest {
    /// Request-URI and To.
    pub to: Uri,
    /// Where to send the INVITE; None = resolve the host of `to`.
    pub peer: Option<Peer>,
    /// From `sip:<from_user>@<from_host>`; None = `switchboard` / our domain.
    pub from_user: Option<String>,
    pub from_host: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    /// Answer a 401/407 to the INVITE with these.
    pub credentials: Option<crate::legs::DigestCredentials>,
}

/// What an API asks for when it places a call; the handle resolves the target.
#[derive(Debug, Clone)]
pub struct DialOutRequest {
    pub to: Uri,
    /// Where to send the INVITE when the routing lookup already knows (a registered
    /// device's source address); None = resolve the host of `to`.
    pub peer: Option<Peer>,
    pub from_user: Option<String>,
    pub service: Service,
    pub hangup_after: Option<Duration>,
    /// The domain the call belongs to (the API caller's); None = the server's own.
    pub domain: Option<String>,
    /// Our From: display name, and host (None: our domain).
    pub from_display: Option<String>,
    pub from_host: Option<String>,
    /// Answer a 401/407 to the INVITE with these (a call placed as an account of an
    /// outside server).
    pub credentials: Option<crate::legs::DigestCredentials>,
}

#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    events: EventLog,
    rooms: RoomDirectory,
}

impl EngineHandle {
    /// `events` is the log the signalling task appends the engine's events to; `rooms`
    /// the room list it publishes.
    pub fn new(tx: mpsc::Sender<Command>, events: EventLog, rooms: RoomDirectory) -> Self {
        EngineHandle { tx, events, rooms }
    }

    /// The live rooms, oldest first, without a round trip to the engine (see
    /// [`RoomDirectory`]). Participants need [`EngineHandle::room`].
    pub fn room_list(&self) -> Arc<RoomList> {
        self.rooms.current()
    }

    /// Recent events with `seq > after` (see [`EventLog`]).
    pub fn events_after(&self, after: u64, limit: usize) -> Vec<LoggedEvent> {
        self.events.after(after, limit)
    }

    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        self.ask(Command::Status).await
    }

    /// Answers a voicemail PIN check (see [`Engine::voicemail_login`]).
    pub async fn voicemail_login(&self, leg: LegId, result: Option<(crate::users::UserId, Vec<crate::apps::voicemail::MessageRef>)>) -> Result<(), EngineError> {
        self.tx.send(Command::VoicemailLogin(leg, result)).await.map_err(|_| EngineError::ShuttingDown)
    }

    /// Tells a user's devices how many voicemails wait (see [`Engine::notify_mwi`]).
    pub async fn notify_mwi(&self, user: crate::users::UserId, new: u32, old: u32) -> Result<(), EngineError> {
        self.tx.send(Command::NotifyMwi(user, new, old)).await.map_err(|_| EngineError::ShuttingDown)
    }

    /// Sends an instant message to a user's devices, or has it kept for them.
    pub async fn send_message(&self, m: OutgoingMessage) -> Result<crate::apps::messages::MessageInfo, EngineError> {
        self.ask(|r| Command::SendMessage(Box::new(m), r)).await?
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| EngineError::ShuttingDown)?;
        rx.await.map_err(|_| EngineError::ShuttingDown)
    }

    pub async fn legs(&self) -> Result<Vec<LegInfo>, EngineError> {
        self.ask(Command::ListLegs).await
    }

    pub async fn leg(&self, id: LegId) -> Result<Option<LegInfo>, EngineError> {
        self.ask(|r| Command::GetLeg(id, r)).await
    }

    pub async fn hangup(&self, id: LegId) -> Result<LegInfo, EngineError> {
        self.ask(|r| Command::Hangup(id, r)).await?
    }

    /// Every room with its participants (live and recently ended), oldest room first.
    pub async fn rooms(&self) -> Result<Vec<RoomSnapshot>, EngineError> {
        self.ask(Command::Rooms).await
    }

    pub async fn room(&self, confid: &str) -> Result<RoomSnapshot, EngineError> {
        self.ask(|r| Command::Room(confid.to_owned(), r)).await?
    }

    /// Ends a room: BYE to answered participants, CANCEL to unanswered dial-outs.
    /// Returns at once; the legs end as their transactions complete.
    pub async fn end_room(&self, confid: &str) -> Result<RoomInfo, EngineError> {
        self.ask(|r| Command::EndRoom(confid.to_owned(), r)).await?
    }

    /// Every registered contact (`GET /v1/registrations`).
    pub async fn registrations(&self) -> Result<Vec<Binding>, EngineError> {
        self.ask(Command::Registrations).await
    }

    /// Whether a dial target is a directory user, and where its device is (see
    /// [`Engine::route_user`]); `None` = not a user.
    pub async fn route_user(&self, domain: Option<DomainId>, target: &str) -> Result<Option<Result<(Uri, Peer), EngineError>>, EngineError> {
        self.ask(|r| Command::RouteUser(domain, target.to_owned(), r)).await
    }

    /// Dials a participant out into a room; returns as soon as the INVITE is sent.
    /// `peer` is where to send it when already known (a registered device), else the
    /// target's host is resolved. The participant takes the room's domain (the engine sets it).
    pub async fn dial_into_room(&self, confid: &str, to: Uri, peer: Option<Peer>, from_user: Option<String>) -> Result<ParticipantInfo, EngineError> {
        let peer = match peer {
            Some(p) => p,
            None => resolve(&to).await?,
        };
        let d = DialOut { to, peer, from_user, service: Service::Echo, hangup_after: None, domain: None, from_display: None, extra_headers: Vec::new(), from_host: None, credentials: None };
        self.ask(|r| Command::DialIntoRoom(confid.to_owned(), d, r)).await?
    }

    /// As [`EngineHandle::dial_into_room`], with From, extra headers and credentials.
    pub async fn dial_into_room_as(&self, confid: &str, req: RoomDialOutRequest) -> Result<ParticipantInfo, EngineError> {
        let peer = match req.peer {
            Some(p) => p,
            None => resolve(&req.to).await?,
        };
        let d = DialOut {
            to: req.to,
            peer,
            from_user: req.from_user,
            service: Service::Echo,
            hangup_after: None,
            domain: None,
            from_display: None,
            extra_headers: req.extra_headers,
            from_host: req.from_host,
            credentials: req.credentials,
        };
        self.ask(|r| Command::DialIntoRoom(confid.to_owned(), d, r)).await?
    }

    /// Opens room `number` in `domain` (None = the server's): created with nobody in it
    /// if needed, and from now on kept while empty, until [`EngineHandle::end_room`].
    /// True when it was created.
    pub async fn open_room(&self, domain: Option<&str>, number: &str) -> Result<(RoomInfo, bool), EngineError> {
        self.ask(|r| Command::OpenRoom(domain.map(str::to_owned), number.to_owned(), r)).await?
    }

    /// The live room numbered `number` in `domain` (None = the server's), whether a
    /// caller or an API started it.
    pub async fn room_by_number(&self, domain: Option<&str>, number: &str) -> Result<RoomSnapshot, EngineError> {
        self.ask(|r| Command::RoomByNumber(domain.map(str::to_owned), number.to_owned(), r)).await?
    }

    /// Removes a participant: BYE, or CANCEL while its dial-out is unanswered.
    pub async fn kick(&self, confid: &str, participantid: &str) -> Result<ParticipantInfo, EngineError> {
        self.ask(|r| Command::Kick(confid.to_owned(), participantid.to_owned(), r)).await?
    }

    pub async fn patch_participant(&self, confid: &str, participantid: &str, patch: ParticipantPatch) -> Result<ParticipantInfo, EngineError> {
        self.ask(|r| Command::PatchParticipant(confid.to_owned(), participantid.to_owned(), patch, r)).await?
    }

    /// Plays a prompt to a room, or to one of its participants; returns the prompt id
    /// (its end comes as a `prompt_ended` event).
    pub async fn play_prompt(&self, confid: &str, participantid: Option<&str>, req: crate::room::PromptRequest) -> Result<u64, EngineError> {
        self.ask(|r| Command::PlayPrompt(confid.to_owned(), participantid.map(str::to_owned), req, r)).await?
    }

    pub async fn stop_prompt(&self, confid: &str, participantid: Option<&str>) -> Result<(), EngineError> {
        self.ask(|r| Command::StopPrompt(confid.to_owned(), participantid.map(str::to_owned), r)).await?
    }

    /// The room's running recording (None: none).
    pub async fn room_recording(&self, confid: &str) -> Result<Option<crate::room::RoomRecordingInfo>, EngineError> {
        self.ask(|r| Command::RoomRecording(confid.to_owned(), r)).await?
    }

    /// Starts, pauses/resumes or stops the room's recording.
    pub async fn room_record(&self, confid: &str, op: crate::engine::RecordOp) -> Result<crate::room::RoomRecordingInfo, EngineError> {
        self.ask(|r| Command::RoomRecord(confid.to_owned(), op, r)).await?
    }

    /// Starts streaming a room's or a leg's audio live (see [`crate::apps::live_audio`]).
    pub async fn start_stream(&self, target: StreamTarget, req: StreamRequest) -> Result<StreamInfo, EngineError> {
        self.ask(|r| Command::StartStream(target, req, r)).await?
    }

    /// Stops the live stream of a room or leg.
    pub async fn stop_stream(&self, target: StreamTarget) -> Result<StreamInfo, EngineError> {
        self.ask(|r| Command::StopStream(target, r)).await?
    }

    /// Every live stream, with its counters.
    pub async fn streams(&self) -> Result<Vec<crate::apps::live_audio::StreamState>, EngineError> {
        self.ask(Command::Streams).await
    }

    pub async fn topology(&self, confid: &str) -> Result<Vec<TopologyRule>, EngineError> {
        self.ask(|r| Command::Topology(confid.to_owned(), r)).await?
    }

    /// Applies rules in order (merging into the current topology); returns the result.
    pub async fn change_topology(&self, confid: &str, rules: Vec<TopologyRule>) -> Result<Vec<TopologyRule>, EngineError> {
        self.ask(|r| Command::ChangeTopology(confid.to_owned(), rules, r)).await?
    }

    /// Mid-call control of two-party call `id` (hold, transfer, DTMF, record, merge,
    /// supervise); answers the call as it is after the command.
    pub async fn call_control(&self, id: CallId, op: CallOp) -> Result<CallInfo, EngineError> {
        self.ask(|r| Command::CallControl(id, op, r)).await?
    }

    /// Places a call. Host names in the target are resolved here (DNS A/AAAA; SRV
    /// and NAPTR are not used yet), so the engine only ever sees addresses.
    /// Two-party calls, oldest first (ended ones for a while).
    pub async fn calls(&self) -> Result<Vec<CallInfo>, EngineError> {
        self.ask(Command::ListCalls).await
    }

    pub async fn call(&self, id: CallId) -> Result<Option<CallInfo>, EngineError> {
        self.ask(|r| Command::GetCall(id, r)).await
    }

    /// The call a leg belongs to, if any.
    pub async fn call_of_leg(&self, leg: LegId) -> Result<Option<CallId>, EngineError> {
        self.ask(|r| Command::CallOfLeg(leg, r)).await
    }

    /// Click-to-call: rings `from`, then `to`, and bridges them. Targets are users
    /// (extension, login, number), numbers (the gateway) or SIP URIs with IP hosts.
    pub async fn make_call(&self, from: &str, to: &str, domain: Option<DomainId>) -> Result<CallInfo, EngineError> {
        self.ask(|r| Command::MakeCall(from.to_owned(), to.to_owned(), domain, r)).await?
    }

    pub async fn clear_call(&self, id: CallId) -> Result<CallInfo, EngineError> {
        self.ask(|r| Command::ClearCall(id, r)).await?
    }

    pub async fn redirect_call(&self, id: CallId, target: &str) -> Result<CallInfo, EngineError> {
        self.ask(|r| Command::RedirectCall(id, target.to_owned(), r)).await?
    }

    pub async fn intercept_call(&self, id: CallId, device: &str) -> Result<CallInfo, EngineError> {
        self.ask(|r| Command::InterceptCall(id, device.to_owned(), r)).await?
    }

    pub async fn dial_out(&self, req: DialOutRequest) -> Result<LegInfo, EngineError> {
        let peer = match req.peer {
            Some(p) => p,
            None => resolve(&req.to).await?,
        };
        let d = DialOut {
            to: req.to,
            peer,
            from_user: req.from_user,
            service: req.service,
            hangup_after: req.hangup_after,
            domain: req.domain,
            from_display: req.from_display,
            extra_headers: Vec::new(),
            from_host: req.from_host,
            credentials: req.credentials,
        };
        self.ask(|r| Command::DialOut(d, r)).await?
    }

    /// Plays a sound file (WAV) into an announcement call (one placed with
    /// [`Service::Announcement`]) once, replacing what it played; returns the prompt id.
    pub async fn play_file_to_leg(&self, id: LegId, file: std::path::PathBuf) -> Result<u64, EngineError> {
        let spec = media::PromptSpec::once(vec![media::PromptPart::File(file)]);
        self.ask(|r| Command::PlayToLeg(id, spec, r)).await?
    }

    /// Sends digits into an announcement call.
    pub async fn dtmf_to_leg(&self, id: LegId, digits: &str, method: DtmfMethod) -> Result<(), EngineError> {
        self.ask(|r| Command::DtmfToLeg(id, digits.to_owned(), method, r)).await?
    }
}

impl EngineHandle {
    /// Third-party call control, `action=call` (reference 002): calls the calling
    /// party and connects it to the called party as `req.method` says. Returns once
    /// the first INVITE has left; the outcome shows in [`EngineHandle::controller_record`].
    pub async fn controller_call(&self, mut req: ControllerRequest) -> Result<(), ControllerError> {
        resolve_target(&mut req.calling).await?;
        if req.method == crate::apps::controller::SetupMethod::Invite {
            resolve_target(&mut req.called).await?;
        }
        self.ask(|r| Command::ControllerCall(req, r)).await?
    }

    /// `action=transfer`: moves the calling side of an INVITE-mode record to `target`.
    pub async fn controller_transfer(&self, mut req: TransferRequest) -> Result<(), ControllerError> {
        resolve_target(&mut req.target).await?;
        self.ask(|r| Command::ControllerTransfer(req, r)).await?
    }

    /// The record under `key` (`<agent identity>:<callingParty>:<calledParty>`), while it lives.
    pub async fn controller_record(&self, key: &str) -> Result<Option<ControllerRecord>, EngineError> {
        self.ask(|r| Command::ControllerRecord(key.to_owned(), r)).await
    }
}

/// Fills in the address of a device target whose host is a name.
async fn resolve_target(t: &mut Target) -> Result<(), EngineError> {
    if let Target::Device { uri, peer: peer @ None } = t {
        *peer = Some(resolve(uri).await?);
    }
    Ok(())
}

/// Longest a dial-out waits for its target's host name to resolve.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

async fn resolve(uri: &Uri) -> Result<Peer, EngineError> {
    if let Some(p) = resolve_literal(uri, Transport::Udp) {
        return Ok(p);
    }
    let probe = resolve_literal(&Uri { host: "127.0.0.1".into(), ..uri.clone() }, Transport::Udp)
        .ok_or_else(|| EngineError::BadTarget(uri.to_string()))?;
    let host = format!("{}:{}", uri.host, probe.addr.port());
    // A name that does not resolve (or not in time) is a well-formed target with no
    // route, not bad input; the request never waits on DNS longer than this.
    let addr = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(&host))
        .await
        .map_err(|_| EngineError::Unroutable(format!("cannot resolve {}: no answer within {RESOLVE_TIMEOUT:?}", uri.host)))?
        .map_err(|e| EngineError::Unroutable(format!("cannot resolve {}: {e}", uri.host)))?
        .next()
        .ok_or_else(|| EngineError::Unroutable(format!("{} has no address", uri.host)))?;
    Ok(Peer { addr, transport: probe.transport })
}
