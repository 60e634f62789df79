//! The engine: calls, legs, rooms and participants — the one core that every API
//! dialect drives. [`Engine`] is a sans-IO state machine (see its module docs for the
//! run loop); [`EngineHandle`] is how async code talks to it.

pub mod call;
pub mod directory;
pub mod engine;
pub mod events;
pub mod handle;
pub mod legs;
pub use legs::leg;
pub mod registrar;
pub mod room;
pub mod users;
pub mod apps;

pub use engine::{local_capabilities, DialOut, Engine, EngineConfig, EngineError, EngineEvent, EngineStatus, ALLOW};
pub use call::{CallId, CallInfo, CallState, Disposition, Party, Side, SuperviseMode};
pub use directory::{RoomDirectory, RoomList};
pub use events::{EventLog, LoggedEvent};
pub use handle::{CallOp, Command, DialOutRequest, EngineHandle};
pub use legs::{DtmfMethod, Replaces};
pub use leg::{Direction, LegId, LegInfo, LegState, Service};
pub use room::{ParticipantInfo, ParticipantPatch, RoomInfo, RoomSnapshot, TopologyRule};
