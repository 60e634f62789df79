//! The engine: calls, legs, rooms and participants — the one core that every API
//! dialect drives. [`Engine`] is a sans-IO state machine (see its module docs for the
//! run loop); [`EngineHandle`] is how async code talks to it.
//!
//! # Shape: legs under applications
//!
//! ```text
//!   API dialects ──EngineHandle──▶ Engine (routing only)
//!                                    │  new INVITE → the application its Request-URI names
//!                                    │  REGISTER   → registrar
//!                                    │  LegEvent   → the leg's Owner
//!          ┌─────────────────────────┼─────────────────────────┐
//!          ▼                         ▼                         ▼
//!   apps::services (echo, ring)  apps::room (conferences)  apps::bridge (two-party calls)
//!          └──────────── act through the narrow Legs interface ─┘
//!                                    ▼
//!   legs::Legs: SIP dialogs + media (transactions, INVITE in/out, answer, ring, reject,
//!               hang up, re-INVITE, in-dialog requests) ──▶ media::MediaHandle
//! ```
//!
//! - [`legs`]: a leg is one SIP dialog between Switchboard and one remote party, with
//!   its RTP. The leg layer knows SIP and offer/answer but not what a call is for.
//! - [`apps`]: each application owns legs ([`apps::Owner`]) and decides for them; it
//!   hears [`legs`]' events and acts only through the leg layer's methods. A new
//!   feature (prompts, voicemail, third-party call control) is a new application.
//! - A two-party call is a room of two in the media engine, so one mixer and one
//!   topology model serve calls and conferences (supervisor listen/whisper/barge are a
//!   third participant with some voice paths blocked); the media engine's relay fast
//!   path forwards a lone speaker's frames untouched to a listener with the same codec.
//! - [`call`]: the call model the call-control APIs see (integer [`CallId`]s).

pub mod apps;
pub mod call;
pub mod directory;
pub mod engine;
pub mod events;
pub mod handle;
pub mod legs;
pub use legs::leg;
pub mod registrar;
pub mod room;
pub mod schedule;
pub mod users;

pub use engine::{local_capabilities, DialOut, Engine, EngineConfig, EngineError, EngineEvent, EngineStatus, IvrConfig, PromptSet, RecordOp, ALLOW};
pub use call::{CallId, CallInfo, CallState, Disposition, Party, Side, SuperviseMode};
pub use directory::{RoomDirectory, RoomList};
pub use events::{EventLog, LoggedEvent};
pub use apps::messages::{MessageInfo, MessageOrigin};
pub use handle::{CallOp, Command, DialOutRequest, EngineHandle, OutgoingMessage, RoomDialOutRequest};
pub use legs::{DigestCredentials, DtmfMethod, Replaces};
pub use leg::{Direction, LegId, LegInfo, LegState, Service};
pub use apps::live_audio::{StreamConnect, StreamInfo, StreamRequest, StreamState, StreamTarget};
pub use room::{ParticipantInfo, ParticipantPatch, PromptRequest, RecordingFile, RoomInfo, RoomRecordingInfo, RoomSnapshot, TopologyRule};
