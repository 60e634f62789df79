//! The sipXcallController dialect (reference 002): `POST` and `GET` on
//! `/callcontroller/{callingParty}/{calledParty}`.
//!
//! `POST` asks the server to connect the two parties on behalf of an *agent* (the
//! `agent` parameter, else the calling party): it answers 200 with no body as soon as
//! the first INVITE has left, and the outcome is read back with `GET`, which returns
//! the call's record as XML. The engine side (records, SIP flows) is
//! [`engine::apps::controller`]; this module only translates:
//! - [`params`]: the query string, its defaults and quirks;
//! - authentication: HTTP Basic `agent:PIN`, the PIN checked against the directory,
//!   statuses and texts as the reference's filter gives them; sources in
//!   `[callcontroller] trusted_networks` need no PIN;
//! - the checks in the reference's order, each with its status and body
//!   (`<processing-status>` XML, or the plain-text Java exception text where the
//!   reference answered 500 with one; we never crash to produce it);
//! - [`xml`]: the documents, byte for byte.
//!
//! Deliberate differences from the reference, each safer and invisible to a client
//! that uses it correctly: a user with no PIN is refused (`pin mismatch`) instead of
//! let through; HTTP Digest is not offered (PINs are stored hashed, so there is no
//! `MD5(agent:realm:PIN)` to check against); XML values are escaped.

pub mod params;
pub mod xml;

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use engine::apps::controller::{ControllerError, ControllerRequest, SetupMethod, Target, TransferRequest};
use engine::registrar::Cidr;
use engine::users::DirectorySnapshot;
use params::{java_int, Params};
use sip::Uri;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the dialect needs besides the common API state.
#[derive(Clone)]
pub struct CallControllerState {
    pub app: AppState,
    /// The SIP domain of agents and parties written without `@domain`.
    pub default_domain: String,
    /// Sources that need no PIN (`[callcontroller] trusted_networks`).
    pub trusted: Arc<Vec<Cidr>>,
}

/// The dialect's routes with their state; merged into the API router by the binary,
/// and served alone on `[callcontroller] listen` when that is set.
pub fn routes(state: CallControllerState) -> Router {
    Router::new().route("/callcontroller/{calling}/{called}", any(handle)).with_state(state)
}

/// One answer of the dialect.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// A status with no body.
    Empty(StatusCode),
    /// `<processing-status>` with its own error code.
    Status(StatusCode, u16, String),
    /// text/plain (the reference's filter and its Java exception texts).
    Plain(StatusCode, String),
    /// 407 with a Basic challenge for the realm.
    Challenge(String),
    /// 200 text/xml: a record.
    Document(String),
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        const XML: &str = "text/xml; charset=UTF-8";
        const TEXT: &str = "text/plain; charset=UTF-8";
        match self {
            Reply::Empty(s) => s.into_response(),
            Reply::Status(s, code, text) => (s, [(header::CONTENT_TYPE, XML)], xml::processing_status(code, &text)).into_response(),
            Reply::Plain(s, text) => (s, [(header::CONTENT_TYPE, TEXT)], text).into_response(),
            Reply::Document(doc) => (StatusCode::OK, [(header::CONTENT_TYPE, XML)], doc).into_response(),
            Reply::Challenge(realm) => {
                let mut r = StatusCode::PROXY_AUTHENTICATION_REQUIRED.into_response();
                let challenge = format!("Basic realm=\"{}\"", realm.replace(['"', '\\'], ""));
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    // 407 is the reference's status; clients look for either header.
                    r.headers_mut().insert(header::PROXY_AUTHENTICATE, v.clone());
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                r
            }
        }
    }
}

/// The agent as the directory knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub user_id: engine::users::UserId,
    pub domain_id: engine::users::DomainId,
    /// `login@domain`: the record key's first part and our INVITEs' From.
    pub identity: String,
    pub login: String,
    pub domain: String,
    pub realm: String,
    pub display: String,
}

/// Finds an agent given as a login, extension or number, with or without `@domain`
/// (`default_domain` when without). Disabled users and domains are not found.
pub fn find_agent(dir: &DirectorySnapshot, given: &str, default_domain: &str) -> Option<Agent> {
    let (key, host) = match given.rsplit_once('@') {
        Some((k, h)) => (k, h),
        None => (given, default_domain),
    };
    let domain = dir.domain_by_name(host).filter(|d| d.enabled)?;
    let user = dir.user_by_key(domain.id, key).filter(|u| u.enabled)?;
    Some(Agent {
        user_id: user.id,
        domain_id: domain.id,
        identity: format!("{}@{}", user.login, domain.name),
        login: user.login.clone(),
        domain: domain.name.clone(),
        realm: domain.realm.clone(),
        display: user.caller_name(),
    })
}

/// A party written without a domain gets the agent's.
fn with_domain(party: &str, domain: &str) -> String {
    if party.contains('@') {
        party.to_owned()
    } else {
        format!("{party}@{domain}")
    }
}

async fn handle(State(st): State<CallControllerState>, req: Request) -> Reply {
    let (mut parts, _body) = req.into_parts();
    if parts.method != Method::GET && parts.method != Method::POST {
        return Reply::Empty(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Ok(Path((calling, called))) = Path::<(String, String)>::from_request_parts(&mut parts, &()).await else {
        return Reply::Status(StatusCode::BAD_REQUEST, 400, "Bad parameter path: not UTF-8".into());
    };
    let source = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let params = Params::parse(parts.uri.query());
    let agent_given = params.get("agent").unwrap_or(&calling).to_owned();
    let agent = find_agent(&st.app.directory_now(), &agent_given, &st.default_domain);

    let trusted = source.is_some_and(|ip| st.trusted.iter().any(|c| c.contains(ip)));
    if !trusted {
        if let Err(reply) = authenticate(&st, &parts.headers, &agent_given, agent.as_ref()).await {
            return reply;
        }
    }
    let Some(agent) = agent else {
        return Reply::Status(StatusCode::FORBIDDEN, 403, format!("could not find credentials for {agent_given}"));
    };
    let key = format!("{}:{calling}:{called}", agent.identity);
    if parts.method == Method::GET {
        return get_record(&st, &key, &params).await;
    }
    post(&st, &agent, &key, &calling, &called, &params).await
}

/// The reference filter's Basic path: unknown agent, no credentials (407), a
/// principal that is not the agent (200 and nothing done), wrong PIN.
async fn authenticate(st: &CallControllerState, headers: &HeaderMap, agent_given: &str, agent: Option<&Agent>) -> Result<(), Reply> {
    let Some(agent) = agent else {
        return Err(Reply::Plain(StatusCode::UNAUTHORIZED, format!("User Not found {agent_given}")));
    };
    let credentials = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(basic_credentials);
    let Some((user, pin)) = credentials else {
        return Err(Reply::Challenge(agent.realm.clone()));
    };
    if user != agent_given {
        return Err(Reply::Plain(StatusCode::OK, "Agent does not match principal ".into()));
    }
    let Some(store) = &st.app.store else {
        return Err(Reply::Plain(StatusCode::UNAUTHORIZED, "Processing Error no user database".into()));
    };
    match store.verify_user_pin(agent.user_id, &pin).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Reply::Plain(StatusCode::UNAUTHORIZED, "pin mismatch".into())),
        Err(e) => {
            tracing::warn!(error = %e, "call controller: PIN check failed");
            Err(Reply::Plain(StatusCode::UNAUTHORIZED, format!("Processing Error {e}")))
        }
    }
}

/// `Basic base64(user:pin)` (scheme case-insensitive) → (user, pin).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let (user, pin) = String::from_utf8(raw).ok()?.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned()))?;
    Some((user, pin))
}

/// GET: the record, or the empty document `sipMethod` picks.
async fn get_record(st: &CallControllerState, key: &str, params: &Params) -> Reply {
    match st.app.engine.controller_record(key).await {
        Ok(Some(r)) => Reply::Document(xml::record(&r)),
        Ok(None) if params.sip_method_text().eq_ignore_ascii_case("refer") => Reply::Document(xml::status_lines(&[])),
        Ok(None) => Reply::Document(xml::dialogs(&[])),
        Err(e) => Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A non-negative whole number of seconds, checked the reference's way.
fn seconds(params: &Params, name: &str, default: &str) -> Result<Duration, Reply> {
    let text = params.get(name).unwrap_or(default);
    let n = java_int(text).map_err(|e| Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    if n < 0 {
        return Err(Reply::Status(StatusCode::BAD_REQUEST, 400, format!("Bad parameter {name} = {n}")));
    }
    Ok(Duration::from_secs(n as u64))
}

async fn post(st: &CallControllerState, agent: &Agent, key: &str, calling: &str, called: &str, params: &Params) -> Reply {
    let timeout = match seconds(params, "timeout", params::DEFAULT_TIMEOUT_S) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let result_cache_time = match seconds(params, "resultCacheTime", params::DEFAULT_CACHE_TIME_S) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let outcome = match params.action() {
        "call" => {
            let Some(method) = params.sip_method() else {
                return Reply::Status(StatusCode::NOT_ACCEPTABLE, 406, format!("Call Setup Method {} not supported", params.sip_method_text()));
            };
            let calling_party = with_domain(calling, &agent.domain);
            let called_party = with_domain(called, &agent.domain);
            let calling_target = target_of(st, agent, &calling_party).await;
            let called_target = match method {
                SetupMethod::Invite => target_of(st, agent, &called_party).await,
                // REFER mode never calls the called party itself: the referred phone does.
                SetupMethod::Refer => Target::Unreachable { status: 0, reason: String::new() },
            };
            let req = ControllerRequest {
                key: key.to_owned(),
                agent: Uri::sip(Some(&agent.login), &agent.domain, None),
                agent_display: Some(agent.display.clone()),
                domain: agent.domain.clone(),
                calling_party,
                calling: calling_target,
                called_party,
                called: called_target,
                method,
                timeout,
                result_cache_time,
                subject: params.get("subject").map(str::to_owned),
                forwarding_allowed: params.forwarding_allowed(),
                confpin: params.get("confpin").map(str::to_owned),
            };
            st.app.engine.controller_call(req).await
        }
        "transfer" => {
            let Some(target) = params.get("target") else {
                return Reply::Status(StatusCode::BAD_REQUEST, 400, "Need a transfer target parameter".into());
            };
            let target_party = with_domain(target, &agent.domain);
            let req = TransferRequest {
                key: key.to_owned(),
                new_key: format!("{}:{target}:{called}", agent.identity),
                target: target_of(st, agent, &target_party).await,
                target_party,
                result_cache_time,
            };
            st.app.engine.controller_transfer(req).await
        }
        // Any other action: nothing happens (reference behaviour).
        _ => Ok(()),
    };
    match outcome {
        Ok(()) => Reply::Empty(StatusCode::OK),
        Err(ControllerError::CallInProgress) => {
            Reply::Status(StatusCode::NOT_ACCEPTABLE, 403, format!("Call in progress {} not supported", params.sip_method_text()))
        }
        Err(ControllerError::CallNotFound) => Reply::Status(StatusCode::NOT_ACCEPTABLE, 403, "Call not found.".into()),
        Err(ControllerError::CannotQueryCallState) => {
            Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, "java.lang.UnsupportedOperationException: Cannot query call state".into())
        }
        Err(ControllerError::Unavailable(m)) => Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, m),
        Err(ControllerError::Engine(e)) => Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Where a party's INVITE goes. We are the proxy the reference sent it through, so
/// what a proxy would have answered is what the record shows: a directory user rings
/// its registered device (480 with none), another name of one of our domains is 404
/// unless it is a number for the gateway, and a foreign SIP address is called as given.
async fn target_of(st: &CallControllerState, agent: &Agent, party: &str) -> Target {
    let unreachable = |status: u16, reason: &str| Target::Unreachable { status, reason: reason.to_owned() };
    match st.app.engine.route_user(Some(agent.domain_id), &format!("sip:{party}")).await {
        Ok(Some(Ok((uri, peer)))) => return Target::Device { uri, peer: Some(peer) },
        Ok(Some(Err(_))) => return unreachable(480, "Temporarily Unavailable"),
        Ok(None) => {}
        Err(_) => return unreachable(503, "Service Unavailable"),
    }
    let (user, host) = party.rsplit_once('@').unwrap_or((party, ""));
    if st.app.directory_now().domain_by_name(host).is_some() {
        return match st.app.routing.target(user) {
            Ok(uri) if crate::conferences::lookup::is_number(user) => Target::Device { uri, peer: None },
            _ => unreachable(404, "Not Found"),
        };
    }
    match sip::parse::parse_uri(&format!("sip:{party}")) {
        Ok(uri) => Target::Device { uri, peer: None },
        Err(_) => unreachable(400, "Bad Request"),
    }
}

#[cfg(test)]
mod tests;
