//! Persistence, in SQLite (`<data_dir>/switchboard.db`, the default) or PostgreSQL
//! (`database_url = "postgres://…"`): the directory (domains, users and their secrets,
//! apps, API keys; see [`directory`]), registrar bindings, token signing keys and
//! revocations, call detail records (one row per leg, written when it ends), room
//! history (one row per room), two-party call records, call modes and push tokens
//! (see [`calls`]), mailboxes: voicemail messages and call recordings (see
//! [`voicemail`]), scheduled conferences (see [`conferences`]), and the event outbox
//! with its webhooks (see [`events`]).
//!
//! Two ways in:
//! - [`Store`]: async reads and writes (`record_leg`, `recent_calls`, …) for code
//!   that can wait on the database, such as the HTTP APIs listing history.
//! - [`Recorder`] (from [`spawn_recorder`]): for the signalling task, which must
//!   never wait on a disk. It queues engine events without blocking and a background
//!   task writes them in batches; a full queue drops records (counted and logged)
//!   rather than calls.
//!
//! ```no_run
//! # async fn run(events: Vec<engine::EngineEvent>) -> Result<(), store::StoreError> {
//! let store = store::Store::open(std::path::Path::new("./data")).await?;
//! let (recorder, writer) = store::spawn_recorder(store.clone());
//! for ev in &events {
//!     recorder.record(ev); // never waits
//! }
//! drop(recorder); // shutdown: close the queue…
//! writer.await.expect("recorder task"); // …and wait until it is all written
//! let newest = store.recent_calls(50, None).await?;
//! # Ok(()) }
//! ```
//!
//! The schema and why the database is set up the way it is: [`store`]'s
//! module docs. The queue, batching and dropping: [`recorder`]'s.

pub mod calls;
pub mod conferences;
pub mod directory;
pub mod error;
pub mod events;
pub mod hook_outbox;
pub mod messages;
pub mod recorder;
pub mod records;
pub mod store;
pub mod voicemail;

pub use error::StoreError;
pub use events::{Attempt, NewEvent, StoredEvent, Webhook};
pub use hook_outbox::{HookEvent, HookQueue, NewHookEvent};
pub use recorder::{spawn_recorder, spawn_recorder_with_capacity, Recorder, RecorderStats};
pub use records::{CallRecord, RoomRecord};
pub use calls::{CallRecordRow, PushToken};
pub use conferences::ConferenceInput;
pub use directory::{valid_rest_methods, valid_rest_url, ApiKey, App, NewUser, Role, SigningKey, UserPatch, UserSecrets, API_KEY_PREFIX};
pub use engine::users::{Binding, DirectorySnapshot, Domain, DomainId, SipCredential, User, UserId};
pub use store::{Backend, Store};
pub use messages::StoredMessage;
pub use voicemail::{NewVoicemail, Voicemail};
