//! The SEMS webconference dialect over XML-RPC (issue 11; reference notes
//! `sems-webconference.md`).
//!
//! - [`http`]: the listener (any path; every answer 200, faults included).
//! - [`service`]: the webconference functions and xmlrpc2di's built-ins on the engine.
//! - [`codec`]: reading a `<methodCall>`, writing a reply or a fault.
//! - [`resolve`]: one method call, in whichever form SEMS's xmlrpc2di accepts it,
//!   turned into an [`Invocation`]: a webconference [`Function`] with its arguments, a
//!   [`Builtin`], or a `system.multicall`; or the [`Fault`] SEMS answers instead.
//! - [`multicall`]: `system.multicall`, given the dialect's dispatch.
//! - [`server_info`]: the status line every function's result ends with.
//!
//! The three forms of a webconference call, all giving the same invocation:
//! `di("webconference", "roomInfo", room, pin)`, `roomInfo(room, pin)` and
//! `webconference.roomInfo(room, pin)`. As in SEMS, only the functions in the module's
//! `_list` have the last two forms; the others are reached through `di` alone.

pub mod codec;
pub mod http;
pub mod service;

#[cfg(test)]
mod tests;

pub use codec::{parse_call, write_fault, write_response, MethodCall, Value, XmlRpcError};

use std::future::Future;

/// The DI factory name of the webconference module: `di`'s first argument, and the
/// prefix of the dotted method names.
pub const FACTORY: &str = "webconference";

/// The webconference functions, by their SEMS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    RoomCreate,
    RoomDelete,
    RoomInfo,
    Dialout,
    Mute,
    Unmute,
    Kickout,
    ChangeRoomAdminpin,
    ServerInfo,
    VqConferenceFeedback,
    VqCallFeedback,
    VqRoomFeedback,
    GetRoomPassword,
    ListRooms,
    FindParticipant,
    AddParticipant,
    ResetFeedback,
    FlushFeedback,
    Help,
    /// `_list`: the names of the directly exported functions.
    List,
}

impl Function {
    /// Every function; the first fifteen are `_list`'s, in its order.
    pub const ALL: [Function; 20] = [
        Function::RoomCreate,
        Function::RoomDelete,
        Function::RoomInfo,
        Function::Dialout,
        Function::Mute,
        Function::Unmute,
        Function::Kickout,
        Function::ChangeRoomAdminpin,
        Function::ServerInfo,
        Function::VqConferenceFeedback,
        Function::VqCallFeedback,
        Function::VqRoomFeedback,
        Function::GetRoomPassword,
        Function::ListRooms,
        Function::FindParticipant,
        Function::AddParticipant,
        Function::ResetFeedback,
        Function::FlushFeedback,
        Function::Help,
        Function::List,
    ];

    /// The functions `_list` names, which alone are callable by bare and dotted names.
    pub fn listed() -> &'static [Function] {
        &Function::ALL[..15]
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::RoomCreate => "roomCreate",
            Function::RoomDelete => "roomDelete",
            Function::RoomInfo => "roomInfo",
            Function::Dialout => "dialout",
            Function::Mute => "mute",
            Function::Unmute => "unmute",
            Function::Kickout => "kickout",
            Function::ChangeRoomAdminpin => "changeRoomAdminpin",
            Function::ServerInfo => "serverInfo",
            Function::VqConferenceFeedback => "vqConferenceFeedback",
            Function::VqCallFeedback => "vqCallFeedback",
            Function::VqRoomFeedback => "vqRoomFeedback",
            Function::GetRoomPassword => "getRoomPassword",
            Function::ListRooms => "listRooms",
            Function::FindParticipant => "findParticipant",
            Function::AddParticipant => "addParticipant",
            Function::ResetFeedback => "resetFeedback",
            Function::FlushFeedback => "flushFeedback",
            Function::Help => "help",
            Function::List => "_list",
        }
    }

    /// Case-sensitive, as SEMS's lookup is.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    fn from_listed_name(name: &str) -> Option<Function> {
        Function::listed().iter().copied().find(|f| f.name() == name)
    }
}

/// xmlrpc2di's own methods, present whatever modules are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// Active sessions server-wide (int).
    Calls,
    GetLoglevel,
    GetCallsavg,
    GetCallsmax,
    GetCpsavg,
    GetCpsmax,
    /// bool
    GetShutdownmode,
    /// string `"a b"`
    GetCpslimit,
    SetLoglevel,
    SetShutdownmode,
    SetCpslimit,
}

impl Builtin {
    pub const ALL: [Builtin; 11] = [
        Builtin::Calls,
        Builtin::GetLoglevel,
        Builtin::GetCallsavg,
        Builtin::GetCallsmax,
        Builtin::GetCpsavg,
        Builtin::GetCpsmax,
        Builtin::GetShutdownmode,
        Builtin::GetCpslimit,
        Builtin::SetLoglevel,
        Builtin::SetShutdownmode,
        Builtin::SetCpslimit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Calls => "calls",
            Builtin::GetLoglevel => "get_loglevel",
            Builtin::GetCallsavg => "get_callsavg",
            Builtin::GetCallsmax => "get_callsmax",
            Builtin::GetCpsavg => "get_cpsavg",
            Builtin::GetCpsmax => "get_cpsmax",
            Builtin::GetShutdownmode => "get_shutdownmode",
            Builtin::GetCpslimit => "get_cpslimit",
            Builtin::SetLoglevel => "set_loglevel",
            Builtin::SetShutdownmode => "set_shutdownmode",
            Builtin::SetCpslimit => "set_cpslimit",
        }
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// An XML-RPC fault, with the codes and texts SEMS answers (reference notes §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: i32,
    pub message: String,
}

impl Fault {
    pub fn new(code: i32, message: impl Into<String>) -> Fault {
        Fault { code, message: message.into() }
    }

    pub fn unknown_method(method_name: &str) -> Fault {
        Fault::new(-1, format!("{method_name}: unknown method name"))
    }

    pub fn missing_di_names() -> Fault {
        Fault::new(400, "need at least factory name and function name to call")
    }

    /// Also our answer when the factory or function name is not a string at all
    /// (the notes do not say what SEMS does then).
    pub fn unknown_factory() -> Fault {
        Fault::new(500, "could not get factory")
    }

    pub fn not_implemented(function: &str) -> Fault {
        Fault::new(504, format!("Exception: AmDynInvoke::NotImplemented: {function}"))
    }

    /// A `dateTime.iso8601` or `base64` argument, which DI has no type for.
    pub fn unsupported_type() -> Fault {
        Fault::new(400, "unsupported parameter type")
    }

    pub fn type_mismatch() -> Fault {
        Fault::new(300, "Exception: Type mismatch in arguments.")
    }

    pub fn too_few_args() -> Fault {
        Fault::new(300, "Exception: AmArg out of bounds - parameter number mismatch.")
    }

    pub fn exception(what: &str) -> Fault {
        Fault::new(500, format!("Exception: {what}"))
    }

    /// The fault as a whole reply.
    pub fn to_xml(&self) -> String {
        write_fault(self.code, &self.message)
    }

    /// The fault as one entry of a `system.multicall` result.
    pub fn to_value(&self) -> Value {
        Value::Struct(vec![
            ("faultCode".to_owned(), Value::Int(self.code)),
            ("faultString".to_owned(), Value::string(self.message.clone())),
        ])
    }
}

/// What a method call asks for, once its name is understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// A webconference function and its arguments (without `di`'s two names).
    Webconference { function: Function, args: Vec<Value> },
    Builtin { builtin: Builtin, params: Vec<Value> },
    /// `system.multicall` with its parameters, for [`multicall`].
    Multicall(Vec<Value>),
}

const MULTICALL: &str = "system.multicall";

/// Turns a method call into what it asks for, or the fault SEMS would answer.
///
/// The checks of a `di` call run in xmlrpc2di's order: at least two parameters, the
/// factory, the argument types (before the function is looked up), the function.
pub fn resolve(call: MethodCall) -> Result<Invocation, Fault> {
    let MethodCall { method_name, params } = call;
    if method_name == "di" {
        let mut params = params.into_iter();
        let (Some(factory), Some(function)) = (params.next(), params.next()) else {
            return Err(Fault::missing_di_names());
        };
        if factory.as_str() != Some(FACTORY) {
            return Err(Fault::unknown_factory());
        }
        let args: Vec<Value> = params.collect();
        check_argument_types(&args)?;
        let function = function.as_str().ok_or_else(Fault::unknown_factory)?;
        let function = Function::from_name(function).ok_or_else(|| Fault::not_implemented(function))?;
        return Ok(Invocation::Webconference { function, args });
    }
    if method_name == MULTICALL {
        return Ok(Invocation::Multicall(params));
    }
    if let Some(builtin) = Builtin::from_name(&method_name) {
        return Ok(Invocation::Builtin { builtin, params });
    }
    let bare = method_name.strip_prefix(FACTORY).and_then(|rest| rest.strip_prefix('.')).unwrap_or(&method_name);
    match Function::from_listed_name(bare) {
        Some(function) => {
            check_argument_types(&params)?;
            Ok(Invocation::Webconference { function, args: params })
        }
        None => Err(Fault::unknown_method(&method_name)),
    }
}

/// DI arguments have no date or binary type, at any depth.
fn check_argument_types(args: &[Value]) -> Result<(), Fault> {
    for arg in args {
        match arg {
            Value::DateTime(_) | Value::Base64(_) => return Err(Fault::unsupported_type()),
            Value::Array(items) => check_argument_types(items)?,
            Value::Struct(members) => {
                for (_, member) in members {
                    check_argument_types(std::slice::from_ref(member))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs a `system.multicall`: its one parameter is an array of structs
/// `{methodName, params}`; each is handed to `dispatch` in order, and the result is an
/// array with, per call, a one-element array holding its value or its fault struct.
/// A call that is itself a `system.multicall` is refused rather than recursed into.
pub async fn multicall<F, Fut>(params: Vec<Value>, mut dispatch: F) -> Result<Value, Fault>
where
    F: FnMut(MethodCall) -> Fut,
    Fut: Future<Output = Result<Value, Fault>>,
{
    let calls = match <[Value; 1]>::try_from(params) {
        Ok([Value::Array(calls)]) => calls,
        _ => return Err(Fault::new(-1, format!("{MULTICALL}: takes one parameter, an array of calls"))),
    };
    let mut results = Vec::with_capacity(calls.len());
    for entry in calls {
        let outcome = match multicall_entry(entry) {
            Ok(call) if call.method_name == MULTICALL => Err(Fault::new(-1, format!("{MULTICALL}: a call inside it cannot be {MULTICALL}"))),
            Ok(call) => dispatch(call).await,
            Err(fault) => Err(fault),
        };
        results.push(match outcome {
            Ok(value) => Value::Array(vec![value]),
            Err(fault) => fault.to_value(),
        });
    }
    Ok(Value::Array(results))
}

fn multicall_entry(entry: Value) -> Result<MethodCall, Fault> {
    let malformed = || Fault::new(-1, format!("{MULTICALL}: each call is a struct of methodName (a string) and params (an array)"));
    let Value::Struct(members) = entry else { return Err(malformed()) };
    let mut method_name = None;
    let mut params = None;
    for (name, value) in members {
        match (name.as_str(), value) {
            ("methodName", Value::String(s)) => method_name = Some(s),
            ("params", Value::Array(p)) => params = Some(p),
            _ => {}
        }
    }
    match (method_name, params) {
        (Some(method_name), Some(params)) => Ok(MethodCall { method_name, params }),
        _ => Err(malformed()),
    }
}

/// The counters in the status line (reference notes §2, "serverInfo tail").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// Active sessions, all applications.
    pub active: u64,
    /// Ended webconference calls.
    pub ended: u64,
    /// Those of the ended calls that joined and left the mix.
    pub connected: u64,
    /// The connected calls' time in the mix, summed.
    pub connected_seconds: u64,
}

/// The line every webconference function but `_list` appends to its result, e.g.
/// `Server: Sip Express Media Server (1.6.0-dev (x86_64/Linux)) calls: 2 active/10
/// total/7 connect/31 min`. `platform` is as [`platform`] gives it.
pub fn server_info(version: &str, platform: &str, counters: &CallCounters) -> String {
    format!(
        "Server: Sip Express Media Server ({version} ({platform})) calls: {} active/{} total/{} connect/{} min",
        counters.active,
        counters.ended,
        counters.connected,
        counters.connected_seconds / 60
    )
}

/// `<arch>/<os>` as SEMS prints it, the OS as `uname -s` names it.
pub fn platform() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "freebsd" => "FreeBSD",
        "netbsd" => "NetBSD",
        "openbsd" => "OpenBSD",
        "macos" => "Darwin",
        other => other,
    };
    format!("{}/{os}", std::env::consts::ARCH)
}
