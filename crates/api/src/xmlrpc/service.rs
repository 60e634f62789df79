//! The SEMS webconference functions and xmlrpc2di's built-ins, on the engine
//! (reference notes `sems-webconference.md` §1–§4, §7).
//!
//! A thin translation: rooms, legs, mute and kick are the engine's, reached through
//! [`EngineHandle`] only. What is SEMS's alone lives here: each room's adminpin, the
//! invited entries of `addParticipant`, participant IDs given to `dialout`, the
//! feedback file, the call counters of the serverInfo line and the values the
//! built-in setters store.
//!
//! Rooms are the engine's rooms of the server's own domain, by room number, so a room
//! a caller opened by dialling `conf-<n>` is room `<n>` here, and a room made here is
//! listed by the conference REST API. A room this dialect touches is opened in the
//! engine ([`EngineHandle::open_room`]): it then stays while empty, as SEMS's rooms do,
//! until `roomDelete`, expiry (`rooms_expire_delay`) or its `roomCreate` timeout.
//!
//! Statuses (§3) are derived from the engine's participant record when asked, not
//! tracked by events: 1/2 from the last response to a dial-out's INVITE, 3 once
//! answered, 4 `disconnect` after a kick while the leg winds down, 5 once ended.

use super::{multicall, resolve, server_info, Builtin, CallCounters, Fault, Function, Invocation, MethodCall, Value};
use engine::{Direction, EngineError, EngineEvent, EngineHandle, LegState, ParticipantInfo, ParticipantPatch, RoomDialOutRequest, RoomSnapshot, Service};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// The dialect's settings (`[xmlrpc]` in the server's configuration; SEMS's
/// webconference.conf keys of the same names).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Rooms must exist beforehand: no call creates one implicitly.
    pub private_rooms: bool,
    /// No adminpin checks at all.
    pub ignore_pin: bool,
    /// Needed by getRoomPassword and listRooms; empty = those always refuse.
    pub master_password: String,
    /// Feedback lines are appended here; None = feedback is answered but not written.
    pub feedback_file: Option<PathBuf>,
    /// `room:pin;room2:pin2`, opened at start (they still expire).
    pub predefined_rooms: String,
    /// An empty room idle this long is deleted; zero = never.
    pub rooms_expire_delay: Duration,
    /// A Finished participant is dropped from roomInfo after this long; zero = never.
    pub participants_expire_delay: Duration,
    /// roomCreate's timeout argument ends the room when it passes.
    pub support_rooms_timeout: bool,
    /// The version in the serverInfo line.
    pub version: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            private_rooms: false,
            ignore_pin: false,
            master_password: String::new(),
            feedback_file: None,
            predefined_rooms: String::new(),
            rooms_expire_delay: Duration::from_secs(7200),
            participants_expire_delay: Duration::from_secs(10),
            support_rooms_timeout: false,
            version: concat!("switchboard-", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The one answer to every adminpin or room failure (§2, "Room/adminpin rule").
pub const WRONG_PIN: &str = "wrong adminpin or inexisting room";

/// What `_list` names and `help` says.
const HELP: &str = "help text goes here";

/// A participant announced by `addParticipant`, before (and after) it is dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invited {
    participant_id: String,
    number: String,
    /// The dial-out that filled it (its call tag).
    tag: Option<String>,
}

/// What this dialect knows of a room beyond the engine's record.
#[derive(Debug, Default)]
struct RoomState {
    adminpin: String,
    invited: Vec<Invited>,
    /// roomCreate's timeout (with `support_rooms_timeout`): ended then.
    ends_at: Option<Instant>,
    /// Call tag → participant ID given to its dialout.
    participant_ids: HashMap<String, String>,
    /// Call tags kicked whose legs have not ended yet (status 4 `disconnect`).
    kicked: HashSet<String>,
}

/// The serverInfo counters and the built-ins' load figures, kept from the engine's
/// event log (read up to `seen`).
#[derive(Debug, Default)]
struct Observed {
    seen: u64,
    /// Ended conference legs, those answered, and their answered seconds.
    ended: u64,
    connected: u64,
    connected_ms: u64,
    /// Live legs now, as far as the log tells (re-based on every engine status read).
    live: i64,
    /// Since the last `get_callsavg`: live-legs × milliseconds, and the start.
    calls_area: u128,
    calls_since: Option<u64>,
    calls_last_ts: u64,
    /// Since the last `get_callsmax`.
    calls_max: i64,
    /// Leg starts since the last `get_cpsavg`, and the start of that window.
    cps_starts: u64,
    cps_since: Option<u64>,
    /// Starts per whole second, and the most of any second since `get_cpsmax`.
    cps_second: (u64, u64),
    cps_max: u64,
}

/// The values xmlrpc2di's setters store and its getters report. SEMS acts on them
/// (log level, refusing calls in shutdown mode, a CPS limit); here they are only
/// kept and reported: the engine's logging and admission are configured elsewhere.
#[derive(Debug)]
struct Knobs {
    loglevel: i32,
    shutdown_mode: bool,
    cps_limit: i32,
}

struct State {
    rooms: HashMap<String, RoomState>,
    feedback: Option<BufWriter<File>>,
    observed: Observed,
    knobs: Knobs,
}

/// The dialect: settings, SEMS-side state and the engine handle.
#[derive(Clone)]
pub struct WebConference {
    engine: EngineHandle,
    settings: Arc<Settings>,
    platform: Arc<str>,
    state: Arc<Mutex<State>>,
}

/// A function's argument list, read as SEMS's `assertArgCStr` and friends do.
struct Args<'a>(&'a [Value]);

impl<'a> Args<'a> {
    fn string(&self, i: usize) -> Result<&'a str, Fault> {
        match self.0.get(i) {
            None => Err(Fault::too_few_args()),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(Fault::type_mismatch()),
        }
    }

    fn int(&self, i: usize) -> Result<i32, Fault> {
        match self.0.get(i) {
            None => Err(Fault::too_few_args()),
            Some(Value::Int(n)) => Ok(*n),
            Some(_) => Err(Fault::type_mismatch()),
        }
    }

    /// An optional string: absent or of another type is the default (dialout, §2).
    fn opt_string(&self, i: usize) -> Option<&'a str> {
        self.0.get(i).and_then(Value::as_str)
    }
}

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A new adminpin: six decimal digits, as SEMS makes them.
fn new_pin() -> String {
    format!("{:06}", rand_below(1_000_000))
}

fn rand_below(n: u32) -> u32 {
    let mut b = [0u8; 4];
    // ring's system random: pins are secrets
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("system random");
    u32::from_le_bytes(b) % n
}

/// Status and reason of a participant (§3 "Status"): `kicked` = we hung it up and
/// its leg has not ended yet.
pub fn participant_status(p: &ParticipantInfo, kicked: bool) -> (i32, String) {
    let progress = || match (p.progress_status, &p.progress_reason) {
        (Some(code), Some(reason)) => Some((code, format!("{code} {reason}"))),
        _ => None,
    };
    match p.state {
        LegState::Ended => (5, String::new()),
        _ if kicked => (4, "disconnect".into()),
        LegState::Calling | LegState::Ringing => match (p.direction, progress()) {
            (Direction::Outbound, Some((180 | 183, reason))) => (2, reason),
            (Direction::Outbound, Some((_, reason))) => (1, reason),
            (Direction::Outbound, None) => (1, "INVITE".into()),
            (Direction::Inbound, _) => (1, String::new()),
        },
        LegState::Active | LegState::Held => match (p.direction, progress()) {
            (Direction::Outbound, Some((_, reason))) => (3, reason),
            (Direction::Outbound, None) => (3, "200 OK".into()),
            // a caller dialling conf-<n> names its room: SEMS's direct access
            (Direction::Inbound, _) => (3, "direct access: entered".into()),
        },
    }
}

/// The three feedback lines (§2); `|||` separates fields, each line ends in a newline.
pub fn room_feedback_line(room: &str, pin: &str, opinion: i32, ts: u64) -> String {
    format!("RO {room}|||{pin}|||{opinion}|||{ts}|||\n")
}

pub fn call_feedback_line(room: &str, pin: &str, tag: &str, opinion: i32, ts: u64) -> String {
    format!("CA|||{room}|||{pin}|||{tag}|||{opinion}|||{ts}|||\n")
}

pub fn conference_feedback_line(room: &str, pin: &str, sender: &str, comment: &str, opinion: i32, ts: u64) -> String {
    format!("CO|||{room}|||{pin}|||{opinion}|||{sender}|||{comment}|||{ts}|||\n")
}

/// dialout's `headers` argument as header lines: `|` separates them (§2). Empty
/// parts are skipped; a part that is not `Name: value`, or that would smuggle a line
/// break into the INVITE, makes the whole argument unusable.
pub fn parse_extra_headers(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in text.split('|') {
        if line.trim().is_empty() {
            continue;
        }
        if line.contains(['\r', '\n']) {
            return None;
        }
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return None;
        }
        out.push((name.to_owned(), value.trim().to_owned()));
    }
    Some(out)
}

/// `room:pin;room2:pin2`; a room with no `:` has an empty pin.
pub fn parse_predefined_rooms(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                return None;
            }
            let (room, pin) = entry.split_once(':').unwrap_or((entry, ""));
            Some((room.trim().to_owned(), pin.trim().to_owned()))
        })
        .collect()
}

/// How the room/adminpin rule came out.
enum Access {
    Granted(RoomSnapshot),
    Refused,
}

impl WebConference {
    /// Opens the feedback file (append) and the predefined rooms. A feedback file that
    /// cannot be opened is logged, and feedback is then not written (as in SEMS).
    pub async fn start(engine: EngineHandle, settings: Settings) -> Result<WebConference, String> {
        let feedback = match &settings.feedback_file {
            Some(path) => match open_feedback(path, false) {
                Ok(f) => Some(f),
                Err(e) => {
                    warn!(path = %path.display(), "feedback file: {e}; feedback is not written");
                    None
                }
            },
            None => None,
        };
        let predefined = parse_predefined_rooms(&settings.predefined_rooms);
        let this = WebConference {
            engine,
            settings: Arc::new(settings),
            platform: super::platform().into(),
            state: Arc::new(Mutex::new(State {
                rooms: HashMap::new(),
                feedback,
                observed: Observed::default(),
                knobs: Knobs { loglevel: 2, shutdown_mode: false, cps_limit: 0 },
            })),
        };
        for (room, pin) in predefined {
            this.engine.open_room(None, &room).await.map_err(|e| format!("predefined room {room:?}: {e}"))?;
            this.lock().rooms.entry(room).or_default().adminpin = pin;
        }
        Ok(this)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One method call, whatever its form; a fault is a value here, the HTTP layer
    /// writes it.
    pub async fn call(&self, call: MethodCall) -> Result<Value, Fault> {
        match resolve(call)? {
            Invocation::Multicall(params) => {
                multicall(params, |c| async move {
                    match resolve(c)? {
                        // multicall() itself refuses a nested one before dispatching
                        Invocation::Multicall(_) => Err(Fault::unknown_method("system.multicall")),
                        other => self.execute(other).await,
                    }
                })
                .await
            }
            other => self.execute(other).await,
        }
    }

    async fn execute(&self, inv: Invocation) -> Result<Value, Fault> {
        match inv {
            Invocation::Webconference { function, args } => self.function(function, &args).await,
            Invocation::Builtin { builtin, params } => self.builtin(builtin, &params).await,
            Invocation::Multicall(_) => Err(Fault::unknown_method("system.multicall")),
        }
    }

    // ---- the serverInfo line and the event log ----------------------------------------

    /// Reads the engine's events since last time into the counters.
    fn observe(&self) {
        let mut st = self.lock();
        let o = &mut st.observed;
        loop {
            let batch = self.engine.events_after(o.seen, 1000);
            let Some(last) = batch.last() else { break };
            o.seen = last.seq;
            for ev in &batch {
                let ts = ev.ts;
                let area_until = |o: &mut Observed, ts: u64| {
                    if o.calls_since.is_some() && ts > o.calls_last_ts {
                        o.calls_area += o.live.max(0) as u128 * (ts - o.calls_last_ts) as u128;
                        o.calls_last_ts = ts;
                    }
                };
                match &ev.event {
                    EngineEvent::LegStarted(_) => {
                        area_until(o, ts);
                        o.live += 1;
                        o.calls_max = o.calls_max.max(o.live);
                        o.cps_starts += 1;
                        let second = ts / 1000;
                        o.cps_second = if o.cps_second.0 == second { (second, o.cps_second.1 + 1) } else { (second, 1) };
                        o.cps_max = o.cps_max.max(o.cps_second.1);
                    }
                    EngineEvent::LegEnded(leg) => {
                        area_until(o, ts);
                        o.live -= 1;
                        if matches!(leg.service, Service::Room(_)) {
                            o.ended += 1;
                            if let (Some(a), Some(e)) = (leg.answered_ms, leg.ended_ms) {
                                o.connected += 1;
                                o.connected_ms += e.saturating_sub(a);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if batch.len() < 1000 {
                break;
            }
        }
    }

    /// The status line (§2): active legs from the engine, the rest from the log.
    async fn info(&self) -> Result<String, Fault> {
        let status = self.engine.status().await.map_err(engine_fault)?;
        self.observe();
        let mut st = self.lock();
        st.observed.live = status.live_legs as i64;
        let o = &st.observed;
        let counters = CallCounters { active: status.live_legs as u64, ended: o.ended, connected: o.connected, connected_seconds: o.connected_ms / 1000 };
        Ok(server_info(&self.settings.version, &self.platform, &counters))
    }

    // ---- rooms ------------------------------------------------------------------------

    /// The room now, if it exists and has not expired; an expired one is ended here
    /// (§2: the call that finds it expired fails).
    async fn live_room(&self, room: &str) -> Result<Option<RoomSnapshot>, Fault> {
        let snap = match self.engine.room_by_number(None, room).await {
            Ok(s) => s,
            Err(EngineError::RoomNotFound) => {
                self.lock().rooms.remove(room);
                return Ok(None);
            }
            Err(e) => return Err(engine_fault(e)),
        };
        if self.expired(&snap) {
            info!(room, "room expired");
            self.end(room, &snap.room.confid).await;
            return Ok(None);
        }
        Ok(Some(snap))
    }

    /// Empty and idle for longer than `rooms_expire_delay`.
    fn expired(&self, snap: &RoomSnapshot) -> bool {
        let delay = self.settings.rooms_expire_delay;
        if delay.is_zero() || snap.participants.iter().any(|p| p.state != LegState::Ended) {
            return false;
        }
        let idle_since = snap.participants.iter().filter_map(|p| p.ended_ms).max().unwrap_or(0).max(snap.room.startts);
        epoch_ms().saturating_sub(idle_since) > delay.as_millis() as u64
    }

    async fn end(&self, room: &str, confid: &str) {
        if let Err(e) = self.engine.end_room(confid).await {
            warn!(room, "ending room: {e}");
        }
        self.lock().rooms.remove(room);
    }

    /// Opens `room` in the engine and gives it `pin` (a new room).
    async fn create(&self, room: &str, pin: &str) -> Result<Option<RoomSnapshot>, Fault> {
        match self.engine.open_room(None, room).await {
            Ok(_) => {}
            Err(EngineError::BadRequest(why)) => return Err(Fault::exception(&why)),
            Err(e) => return Err(engine_fault(e)),
        }
        self.lock().rooms.insert(room.to_owned(), RoomState { adminpin: pin.to_owned(), ..Default::default() });
        self.live_room(room).await
    }

    /// The room/adminpin rule (§2).
    async fn access(&self, room: &str, pin: &str) -> Result<Access, Fault> {
        let Some(snap) = self.live_room(room).await? else {
            if self.settings.private_rooms {
                return Ok(Access::Refused);
            }
            return Ok(match self.create(room, pin).await? {
                Some(snap) => Access::Granted(snap),
                None => Access::Refused,
            });
        };
        let first_pin = {
            let mut st = self.lock();
            let entry = st.rooms.entry(room.to_owned()).or_default();
            if entry.adminpin.is_empty() {
                // first caller wins
                entry.adminpin = pin.to_owned();
                true
            } else if entry.adminpin != pin && !self.settings.ignore_pin {
                return Ok(Access::Refused);
            } else {
                false
            }
        };
        if first_pin {
            // a room a caller opened now has a pin: keep it when its callers leave
            self.engine.open_room(None, room).await.map_err(engine_fault)?;
        }
        Ok(Access::Granted(snap))
    }

    /// roomInfo's participant tuples (§2): the engine's participants in join order,
    /// then invited entries nobody has dialled yet.
    fn participants(&self, room: &str, snap: &RoomSnapshot) -> Vec<Value> {
        let expire = self.settings.participants_expire_delay.as_millis() as u64;
        let now = epoch_ms();
        let mut st = self.lock();
        let mut empty = RoomState::default();
        let r = st.rooms.get_mut(room).unwrap_or(&mut empty);
        // forget what is about calls no longer in the engine's record, or over
        r.kicked.retain(|tag| snap.participants.iter().any(|p| p.ltag == *tag && p.state != LegState::Ended));
        r.participant_ids.retain(|tag, _| snap.participants.iter().any(|p| p.ltag == *tag));
        let r = &*r;
        let mut out = Vec::new();
        for p in &snap.participants {
            if expire > 0 && p.ended_ms.is_some_and(|e| now.saturating_sub(e) > expire) {
                continue;
            }
            let (status, reason) = participant_status(p, r.kicked.contains(&p.ltag));
            let number = match p.direction {
                Direction::Outbound => p.ruri.clone(),
                Direction::Inbound => format!("<{}>", p.ruri),
            };
            let pid = r.participant_ids.get(&p.ltag).cloned().unwrap_or_default();
            out.push(Value::Array(vec![s(p.ltag.clone()), s(number), Value::Int(status), s(reason), Value::Int(p.muted as i32), s(pid)]));
        }
        for inv in r.invited.iter().filter(|i| i.tag.is_none()) {
            out.push(Value::Array(vec![s(""), s(inv.number.clone()), Value::Int(0), s(""), Value::Int(0), s(inv.participant_id.clone())]));
        }
        out
    }

    /// Ends rooms past their roomCreate timeout and empty rooms past
    /// `rooms_expire_delay`. The server calls this every second (SEMS's sweep).
    pub async fn sweep(&self) {
        let now = Instant::now();
        let known: Vec<(String, Option<Instant>)> = self.lock().rooms.iter().map(|(k, r)| (k.clone(), r.ends_at)).collect();
        for (room, ends_at) in known {
            let timed_out = self.settings.support_rooms_timeout && ends_at.is_some_and(|t| t <= now);
            match self.engine.room_by_number(None, &room).await {
                Ok(snap) if timed_out => {
                    info!(room, "room timeout: ending");
                    self.end(&room, &snap.room.confid).await;
                }
                Ok(snap) if self.expired(&snap) => {
                    info!(room, "room expired");
                    self.end(&room, &snap.room.confid).await;
                }
                Ok(_) => {}
                Err(EngineError::RoomNotFound) => {
                    self.lock().rooms.remove(&room);
                }
                Err(_) => return,
            }
        }
    }

    // ---- functions -------------------------------------------------------------------

    async fn function(&self, f: Function, args: &[Value]) -> Result<Value, Fault> {
        let a = Args(args);
        let out = match f {
            Function::List => return Ok(Value::Array(Function::listed().iter().map(|f| s(f.name())).collect())),
            Function::RoomCreate => self.room_create(&a).await?,
            Function::RoomDelete => self.room_delete(&a).await?,
            Function::RoomInfo => self.room_info(&a).await?,
            Function::Dialout => self.dialout(&a).await?,
            Function::Mute => self.set_muted(&a, true).await?,
            Function::Unmute => self.set_muted(&a, false).await?,
            Function::Kickout => self.kickout(&a).await?,
            Function::ChangeRoomAdminpin => {
                let (room, pin, new) = (a.string(0)?, a.string(1)?, a.string(2)?);
                match self.access(room, pin).await? {
                    Access::Granted(_) => {
                        self.lock().rooms.entry(room.to_owned()).or_default().adminpin = new.to_owned();
                        vec![Value::Int(0), s("OK")]
                    }
                    Access::Refused => vec![Value::Int(1), s(WRONG_PIN)],
                }
            }
            Function::ServerInfo => {
                let info = self.info().await?;
                return Ok(Value::Array(vec![s(info.clone()), s(info)]));
            }
            Function::VqRoomFeedback => {
                let (room, pin, opinion) = (a.string(0)?, a.string(1)?, a.int(2)?);
                self.feedback(&room_feedback_line(room, pin, opinion, epoch_ms() / 1000));
                vec![Value::Int(0), s("OK")]
            }
            Function::VqCallFeedback => {
                let (room, pin, tag, opinion) = (a.string(0)?, a.string(1)?, a.string(2)?, a.int(3)?);
                self.feedback(&call_feedback_line(room, pin, tag, opinion, epoch_ms() / 1000));
                vec![Value::Int(0), s("OK")]
            }
            Function::VqConferenceFeedback => {
                let (room, pin, sender, comment, opinion) = (a.string(0)?, a.string(1)?, a.string(2)?, a.string(3)?, a.int(4)?);
                self.feedback(&conference_feedback_line(room, pin, sender, comment, opinion, epoch_ms() / 1000));
                vec![Value::Int(0), s("OK")]
            }
            Function::ResetFeedback => {
                let file = a.string(0)?;
                if file.is_empty() {
                    vec![Value::Int(-2), s("no filename given")]
                } else {
                    match open_feedback(Path::new(file), true) {
                        Ok(f) => {
                            self.lock().feedback = Some(f);
                            vec![Value::Int(0), s("OK")]
                        }
                        Err(e) => {
                            warn!(file, "resetFeedback: {e}");
                            vec![Value::Int(-1), s("error opening new feedback file")]
                        }
                    }
                }
            }
            Function::FlushFeedback => {
                if let Some(f) = self.lock().feedback.as_mut() {
                    if let Err(e) = f.flush() {
                        warn!("flushing the feedback file: {e}");
                    }
                }
                vec![]
            }
            Function::Help => vec![s(HELP)],
            Function::GetRoomPassword => {
                let (master, room) = (a.string(0)?, a.string(1)?);
                if !self.master_ok(master) {
                    vec![Value::Int(403), s("Wrong Master Password.")]
                } else if self.live_room(room).await?.is_none() {
                    vec![Value::Int(404), s("Room does not exist.")]
                } else {
                    let pin = self.lock().rooms.get(room).map(|r| r.adminpin.clone()).unwrap_or_default();
                    vec![Value::Int(0), s(pin)]
                }
            }
            Function::ListRooms => {
                let master = a.string(0)?;
                if !self.master_ok(master) {
                    vec![Value::Int(407), Value::Array(vec![s("Wrong Master Password.")])]
                } else {
                    vec![Value::Int(200), Value::Array(self.room_names().await?.into_iter().map(s).collect())]
                }
            }
            Function::FindParticipant => {
                let pid = a.string(0)?;
                let st = self.lock();
                let mut rooms: Vec<String> = st
                    .rooms
                    .iter()
                    .filter(|(_, r)| r.invited.iter().any(|i| i.participant_id == pid))
                    .map(|(name, _)| name.clone())
                    .collect();
                rooms.sort();
                vec![Value::Array(rooms.into_iter().map(s).collect())]
            }
            Function::AddParticipant => {
                let (room, pid, number) = (a.string(0)?, a.string(1)?, a.string(2)?);
                let exists = self.live_room(room).await?.is_some();
                if !exists && self.settings.private_rooms {
                    vec![Value::Int(400), s("Failed")]
                } else {
                    if !exists {
                        self.create(room, "").await?;
                    }
                    let invited = Invited { participant_id: pid.to_owned(), number: number.to_owned(), tag: None };
                    self.lock().rooms.entry(room.to_owned()).or_default().invited.push(invited);
                    vec![Value::Int(200), s("OK")]
                }
            }
        };
        let mut out = out;
        out.push(s(self.info().await?));
        Ok(Value::Array(out))
    }

    fn master_ok(&self, given: &str) -> bool {
        let want = &self.settings.master_password;
        !want.is_empty() && want.as_bytes() == given.as_bytes()
    }

    /// The names of the live, unexpired rooms of our domain, sorted.
    async fn room_names(&self) -> Result<Vec<String>, Fault> {
        let mut names = Vec::new();
        for snap in self.engine.rooms().await.map_err(engine_fault)? {
            let number = &snap.room.confroomnum;
            // the same number in another domain is another room, not ours
            if let Some(ours) = self.live_room(number).await? {
                if ours.room.confid == snap.room.confid && !names.contains(number) {
                    names.push(number.clone());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    async fn room_create(&self, a: &Args<'_>) -> Result<Vec<Value>, Fault> {
        let room = a.string(0)?;
        let timeout = match a.0.get(1) {
            None => 0,
            Some(Value::Int(t)) => *t,
            Some(_) => return Err(Fault::exception("roomCreate: the timeout must be an integer (seconds)")),
        };
        if self.live_room(room).await?.is_some() {
            let pin = {
                let mut st = self.lock();
                let entry = st.rooms.entry(room.to_owned()).or_default();
                if !entry.adminpin.is_empty() {
                    return Ok(vec![Value::Int(1), s("room already opened"), s("")]);
                }
                entry.adminpin = new_pin();
                entry.adminpin.clone()
            };
            // a room a caller opened stays now that it has a pin
            self.engine.open_room(None, room).await.map_err(engine_fault)?;
            return Ok(vec![Value::Int(0), s("OK"), s(pin)]);
        }
        let pin = new_pin();
        self.create(room, &pin).await?;
        if timeout > 0 {
            if let Some(r) = self.lock().rooms.get_mut(room) {
                r.ends_at = Some(Instant::now() + Duration::from_secs(timeout as u64));
            }
        }
        Ok(vec![Value::Int(0), s("OK"), s(pin)])
    }

    async fn room_delete(&self, a: &Args<'_>) -> Result<Vec<Value>, Fault> {
        let (room, pin) = (a.string(0)?, a.string(1)?);
        let Some(snap) = self.live_room(room).await? else {
            return Ok(vec![Value::Int(2), s("room does not exist\n")]);
        };
        let known_pin = self.lock().rooms.get(room).map(|r| r.adminpin.clone()).unwrap_or_default();
        if !known_pin.is_empty() && known_pin != pin && !self.settings.ignore_pin {
            return Ok(vec![Value::Int(1), s(WRONG_PIN)]);
        }
        self.end(room, &snap.room.confid).await;
        Ok(vec![Value::Int(0), s("OK")])
    }

    async fn room_info(&self, a: &Args<'_>) -> Result<Vec<Value>, Fault> {
        let (room, pin) = (a.string(0)?, a.string(1)?);
        Ok(match self.access(room, pin).await? {
            Access::Granted(snap) => vec![Value::Int(0), s("OK"), Value::Array(self.participants(room, &snap))],
            Access::Refused => vec![Value::Int(1), s(WRONG_PIN), Value::Array(vec![])],
        })
    }

    async fn dialout(&self, a: &Args<'_>) -> Result<Vec<Value>, Fault> {
        let (room, pin, callee, from_user, domain, auth_user, auth_pwd) =
            (a.string(0)?, a.string(1)?, a.string(2)?, a.string(3)?, a.string(4)?, a.string(5)?, a.string(6)?);
        let headers = a.opt_string(7).unwrap_or("");
        let callee_domain = a.opt_string(8).filter(|d| !d.is_empty()).unwrap_or(domain);
        let participant_id = a.opt_string(9).unwrap_or("");
        let snap = match self.access(room, pin).await? {
            Access::Granted(snap) => snap,
            Access::Refused => return Ok(vec![Value::Int(1), s(WRONG_PIN), s("")]),
        };
        let internal_error = || Ok(vec![Value::Int(1), s("internal error"), s("")]);
        let Ok(to) = sip::parse::parse_uri(&format!("sip:{callee}@{callee_domain}")) else { return internal_error() };
        let Some(extra_headers) = parse_extra_headers(headers) else { return internal_error() };
        let req = RoomDialOutRequest {
            to,
            peer: None,
            from_user: Some(from_user.to_owned()).filter(|u| !u.is_empty()),
            from_host: Some(domain.to_owned()).filter(|d| !d.is_empty()),
            extra_headers,
            credentials: (!auth_user.is_empty()).then(|| engine::DigestCredentials { username: auth_user.to_owned(), password: auth_pwd.to_owned() }),
        };
        let p = match self.engine.dial_into_room_as(&snap.room.confid, req).await {
            Ok(p) => p,
            Err(e) => {
                warn!(room, callee, "dialout: {e}");
                return internal_error();
            }
        };
        let tag = p.ltag.clone();
        if !participant_id.is_empty() {
            let mut st = self.lock();
            let r = st.rooms.entry(room.to_owned()).or_default();
            r.participant_ids.insert(tag.clone(), participant_id.to_owned());
            if let Some(inv) = r.invited.iter_mut().find(|i| i.participant_id == participant_id && i.tag.is_none()) {
                inv.tag = Some(tag.clone());
            }
        }
        Ok(vec![Value::Int(0), s("OK"), s(tag)])
    }

    /// The participant of `snap` with call tag `tag`; `Err` = answer 0 without acting
    /// (an invited entry, or one already over: §7), `Ok(None)` = no such call.
    fn find_call<'s>(&self, room: &str, snap: &'s RoomSnapshot, tag: &str) -> Result<Option<&'s ParticipantInfo>, ()> {
        if let Some(p) = snap.participants.iter().find(|p| p.ltag == tag) {
            return if p.state == LegState::Ended { Err(()) } else { Ok(Some(p)) };
        }
        let invited = tag.is_empty() && self.lock().rooms.get(room).is_some_and(|r| r.invited.iter().any(|i| i.tag.is_none()));
        if invited {
            Err(())
        } else {
            Ok(None)
        }
    }

    async fn set_muted(&self, a: &Args<'_>, muted: bool) -> Result<Vec<Value>, Fault> {
        let (room, pin, tag) = (a.string(0)?, a.string(1)?, a.string(2)?);
        let snap = match self.access(room, pin).await? {
            Access::Granted(snap) => snap,
            Access::Refused => return Ok(vec![Value::Int(1), s(WRONG_PIN)]),
        };
        match self.find_call(room, &snap, tag) {
            Err(()) => Ok(vec![Value::Int(0), s("OK")]),
            Ok(None) => Ok(vec![Value::Int(2), s("call does not exist")]),
            Ok(Some(p)) => {
                let patch = ParticipantPatch { muted: Some(muted), ..Default::default() };
                match self.engine.patch_participant(&snap.room.confid, &p.participantid, patch).await {
                    // it left between the look-up and now: as SEMS, over is still OK
                    Ok(_) | Err(EngineError::ParticipantNotFound) => Ok(vec![Value::Int(0), s("OK")]),
                    Err(e) => Err(engine_fault(e)),
                }
            }
        }
    }

    async fn kickout(&self, a: &Args<'_>) -> Result<Vec<Value>, Fault> {
        let (room, pin, tag) = (a.string(0)?, a.string(1)?, a.string(2)?);
        let snap = match self.access(room, pin).await? {
            Access::Granted(snap) => snap,
            Access::Refused => return Ok(vec![Value::Int(1), s(WRONG_PIN)]),
        };
        match self.find_call(room, &snap, tag) {
            Err(()) => Ok(vec![Value::Int(0), s("OK")]),
            Ok(None) => Ok(vec![Value::Int(2), s("call does not exist")]),
            Ok(Some(p)) => match self.engine.kick(&snap.room.confid, &p.participantid).await {
                Ok(after) => {
                    if after.state != LegState::Ended {
                        self.lock().rooms.entry(room.to_owned()).or_default().kicked.insert(tag.to_owned());
                    }
                    Ok(vec![Value::Int(0), s("OK")])
                }
                Err(EngineError::ParticipantNotFound) => Ok(vec![Value::Int(0), s("OK")]),
                Err(e) => Err(engine_fault(e)),
            },
        }
    }

    fn feedback(&self, line: &str) {
        if let Some(f) = self.lock().feedback.as_mut() {
            if let Err(e) = f.write_all(line.as_bytes()) {
                warn!("writing the feedback file: {e}");
            }
        }
    }

    // ---- built-ins --------------------------------------------------------------------

    async fn builtin(&self, b: Builtin, params: &[Value]) -> Result<Value, Fault> {
        let a = Args(params);
        if b == Builtin::Calls {
            let status = self.engine.status().await.map_err(engine_fault)?;
            return Ok(Value::Int(status.live_legs.min(i32::MAX as usize) as i32));
        }
        self.observe();
        let now = epoch_ms();
        let mut st = self.lock();
        let State { observed: o, knobs, .. } = &mut *st;
        let clamp = |n: u128| n.min(i32::MAX as u128) as i32;
        Ok(match b {
            Builtin::Calls => unreachable!("answered above"),
            Builtin::GetLoglevel => Value::Int(knobs.loglevel),
            Builtin::GetShutdownmode => Value::Boolean(knobs.shutdown_mode),
            Builtin::GetCpslimit => s(format!("{} 0", knobs.cps_limit)),
            Builtin::SetLoglevel => {
                knobs.loglevel = a.int(0)?;
                s("200 OK")
            }
            Builtin::SetShutdownmode => {
                knobs.shutdown_mode = match a.0.first() {
                    Some(Value::Boolean(b)) => *b,
                    Some(Value::Int(n)) => *n != 0,
                    None => return Err(Fault::too_few_args()),
                    Some(_) => return Err(Fault::type_mismatch()),
                };
                s("200 OK")
            }
            Builtin::SetCpslimit => {
                knobs.cps_limit = a.int(0)?;
                s("200 OK")
            }
            // Averages and maxima since the same getter was last asked, as SEMS's are.
            Builtin::GetCallsavg => {
                let since = o.calls_since.replace(now).unwrap_or(now);
                let last = o.calls_last_ts.max(since);
                let area = o.calls_area + o.live.max(0) as u128 * now.saturating_sub(last) as u128;
                o.calls_area = 0;
                o.calls_last_ts = now;
                let span = now.saturating_sub(since);
                Value::Int(if span == 0 { o.live.max(0) as i32 } else { clamp(area / span as u128) })
            }
            Builtin::GetCallsmax => {
                let max = o.calls_max.max(o.live).max(0);
                o.calls_max = o.live.max(0);
                Value::Int(clamp(max as u128))
            }
            Builtin::GetCpsavg => {
                let since = o.cps_since.replace(now).unwrap_or(now);
                let starts = std::mem::take(&mut o.cps_starts);
                let secs = now.saturating_sub(since) / 1000;
                Value::Int(if secs == 0 { 0 } else { clamp((starts / secs) as u128) })
            }
            Builtin::GetCpsmax => Value::Int(clamp(std::mem::take(&mut o.cps_max) as u128)),
        })
    }
}

fn open_feedback(path: &Path, truncate: bool) -> std::io::Result<BufWriter<File>> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path).map(BufWriter::new)
}

/// An engine failure SEMS has no code for (the engine stopping): a 500 exception.
fn engine_fault(e: EngineError) -> Fault {
    Fault::exception(&e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::LegId;

    fn participant(direction: Direction, state: LegState, progress: Option<(u16, &str)>) -> ParticipantInfo {
        ParticipantInfo {
            participantid: "p".into(),
            confid: "c".into(),
            state,
            callid: "call".into(),
            luri: "sip:conf@x".into(),
            ltag: "tag".into(),
            ruri: "sip:bob@y".into(),
            rtag: String::new(),
            direction,
            dialogid: "d".into(),
            inviteid: LegId("l".into()),
            muted: false,
            deaf: false,
            gain_in_db: 0.0,
            gain_out_db: 0.0,
            talking: false,
            joined_ms: 0,
            ended_ms: None,
            end_status: None,
            end_reason: None,
            progress_status: progress.map(|(c, _)| c),
            progress_reason: progress.map(|(_, r)| r.to_owned()),
        }
    }

    #[test]
    fn statuses_follow_the_dial_out() {
        use Direction::*;
        let st = |d, s, p, k| participant_status(&participant(d, s, p), k);
        assert_eq!(st(Outbound, LegState::Calling, None, false), (1, "INVITE".into()));
        assert_eq!(st(Outbound, LegState::Calling, Some((100, "Trying")), false), (1, "100 Trying".into()));
        assert_eq!(st(Outbound, LegState::Ringing, Some((180, "Ringing")), false), (2, "180 Ringing".into()));
        assert_eq!(st(Outbound, LegState::Ringing, Some((183, "Session Progress")), false), (2, "183 Session Progress".into()));
        assert_eq!(st(Outbound, LegState::Active, Some((200, "OK")), false), (3, "200 OK".into()));
        assert_eq!(st(Outbound, LegState::Held, Some((200, "OK")), false), (3, "200 OK".into()));
        assert_eq!(st(Outbound, LegState::Active, Some((200, "OK")), true), (4, "disconnect".into()));
        assert_eq!(st(Outbound, LegState::Ringing, Some((180, "Ringing")), true), (4, "disconnect".into()));
        // session destroyed: 5 with an empty reason, whatever the last response was
        assert_eq!(st(Outbound, LegState::Ended, Some((486, "Busy Here")), false), (5, String::new()));
        assert_eq!(st(Outbound, LegState::Ended, Some((200, "OK")), true), (5, String::new()));
        assert_eq!(st(Inbound, LegState::Active, None, false), (3, "direct access: entered".into()));
    }

    #[test]
    fn feedback_lines_as_sems_writes_them() {
        assert_eq!(room_feedback_line("4711", "123", 5, 1700000000), "RO 4711|||123|||5|||1700000000|||\n");
        assert_eq!(call_feedback_line("4711", "123", "t-1", -2, 7), "CA|||4711|||123|||t-1|||-2|||7|||\n");
        assert_eq!(conference_feedback_line("4711", "", "bob", "so so", 3, 7), "CO|||4711||||||3|||bob|||so so|||7|||\n");
    }

    #[test]
    fn dialout_headers() {
        assert_eq!(parse_extra_headers(""), Some(vec![]));
        assert_eq!(
            parse_extra_headers("X-A: 1|X-B:two words|"),
            Some(vec![("X-A".into(), "1".into()), ("X-B".into(), "two words".into())])
        );
        // no way to smuggle a line break or a bad name into the INVITE
        assert_eq!(parse_extra_headers("X-A: 1\r\nVia: evil"), None);
        assert_eq!(parse_extra_headers("no colon"), None);
        assert_eq!(parse_extra_headers("Bad Name: x"), None);
    }

    #[test]
    fn predefined_rooms() {
        assert_eq!(parse_predefined_rooms(""), vec![]);
        assert_eq!(
            parse_predefined_rooms("100:1234; 200:;300"),
            vec![("100".into(), "1234".into()), ("200".into(), String::new()), ("300".into(), String::new())]
        );
    }

    #[test]
    fn arguments_as_sems_checks_them() {
        let args = [Value::string("a"), Value::Int(3), Value::Double(1.0)];
        let a = Args(&args);
        assert_eq!(a.string(0), Ok("a"));
        assert_eq!(a.string(1), Err(Fault::type_mismatch()));
        assert_eq!(a.int(1), Ok(3));
        assert_eq!(a.int(0), Err(Fault::type_mismatch()));
        assert_eq!(a.string(3), Err(Fault::too_few_args()));
        assert_eq!(a.opt_string(2), None, "another type falls back to the default");
        assert_eq!(a.opt_string(9), None);
    }

    #[test]
    fn pins_are_six_digits() {
        for _ in 0..200 {
            let p = new_pin();
            assert!(p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit()), "{p}");
        }
    }
}
