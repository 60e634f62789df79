//! The registrar (RFC 3261 §10.3) and digest authentication of callers.
//!
//! Sans-IO like the rest of the engine: [`Registrar::register`] takes a REGISTER, the
//! peer it came from, the directory snapshot and `now`, and returns the response to
//! send (or nothing: scanners are dropped) plus binding events for the store;
//! [`Registrar::tick`] expires bindings. [`Registrar::authenticate`] is the digest
//! check the engine also uses for INVITEs (407).
//!
//! Design choices:
//! - **Nothing leaks who exists.** Unknown domains and unknown users get the same 401
//!   (realm = the domain's realm, or the host as written when the domain is unknown) as
//!   known ones; a response for a user that does not exist fails like a wrong password
//!   and counts toward the same lock-outs. `svwar` sees one answer for every extension.
//! - **Nonces are stateless until used** (see [`nonce`]): HMAC-signed, expiring,
//!   `stale=true` for expired genuine ones, nonce-count must grow per nonce.
//! - **Several challenges, configured order** (`digest_algorithms`, default MD5 then
//!   SHA-256): RFC 8760 lets the server list them by preference, but Debian's SIPp
//!   3.6.1 and many deployed phones read only the first one and speak only MD5, while
//!   pjsua2 2.15 picks SHA-256 wherever it is listed. MD5 first registers both.
//! - **NAT**: a binding keeps the source address and transport of its REGISTER
//!   (received/rport); calls to the contact go there, not to the Contact host.
//! - Bindings expire on a heap of deadlines; every add/refresh emits
//!   `BindingSaved`, every removal `BindingRemoved`, which the store persists.

pub mod guard;
pub mod nonce;

use crate::engine::EngineEvent;
use crate::users::{Binding, DirectorySnapshot, UserId};
pub use guard::{Cidr, Guard, SecurityConfig, DEFAULT_SCANNERS};
use nonce::{NonceCheck, NonceMint};
use sip::digest::{Algorithm, Challenge, Credentials};
use sip::{NameAddr, Params, Peer, Request, Response, Transport, Uri};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// `[registrar]` settings.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Shorter registrations get 423 with Min-Expires.
    pub min_expires: u32,
    /// Longer ones are shortened to this.
    pub max_expires: u32,
    /// When the REGISTER names no expiry.
    pub default_expires: u32,
    /// How long a nonce is good for; older genuine ones get `stale=true`.
    pub nonce_ttl: Duration,
    /// Challenges are sent in this order, one header per algorithm.
    pub digest_algorithms: Vec<Algorithm>,
    /// Contacts one user may have registered at once.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_ttl: Duration::from_secs(300),
            digest_algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            max_contacts: 16,
        }
    }
}

/// What [`Registrar::authenticate`] decided.
#[derive(Debug)]
pub enum AuthOutcome {
    /// Verified: the user and its domain.
    Authenticated { user_id: UserId, domain_id: i64 },
    /// Send this status (401/407 with `challenges`, 403, 400) and stop.
    Refuse { status: u16, reason: Option<String>, challenges: Vec<Challenge> },
    /// Say nothing (a scanner).
    Drop,
}

/// A binding and its deadline on our clock.
struct Live {
    b: Binding,
    expires: Instant,
}

pub struct Registrar {
    pub cfg: RegistrarConfig,
    pub guard: Guard,
    mint: NonceMint,
    bindings: HashMap<UserId, Vec<Live>>,
    deadlines: BinaryHeap<Reverse<(Instant, UserId, String)>>,
    /// Wall-clock anchor: `now` (virtual or real) maps to Unix ms through it.
    anchor: (Instant, u64),
}

impl Registrar {
    pub fn new(cfg: RegistrarConfig, security: SecurityConfig, now: Instant) -> Registrar {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Registrar {
            mint: NonceMint::new(now, cfg.nonce_ttl),
            cfg,
            guard: Guard::new(security),
            bindings: HashMap::new(),
            deadlines: BinaryHeap::new(),
            anchor: (now, wall),
        }
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0).as_millis() as u64
    }

    fn instant_of(&self, unix_ms: u64) -> Instant {
        self.anchor.0 + Duration::from_millis(unix_ms.saturating_sub(self.anchor.1))
    }

    // ---- authentication -----------------------------------------------------------

    /// Checks the digest credentials of `req` for the domain named by `host`.
    /// `proxy` selects 407/Proxy-Authorization (INVITE) over 401/Authorization.
    pub fn authenticate(&mut self, now: Instant, req: &Request, from: Peer, dir: &DirectorySnapshot, host: &str, proxy: bool) -> AuthOutcome {
        if self.guard.is_scanner(req.headers.get("User-Agent")) {
            debug!(source = %from.addr, "scanner User-Agent");
            return if self.guard.cfg.drop_scanners { AuthOutcome::Drop } else { forbidden("Forbidden") };
        }
        if self.guard.ip_locked(from.addr.ip(), now) {
            return forbidden("Too many failed authentications");
        }
        let domain = dir.domain_by_name(host).filter(|d| d.enabled);
        let realm = domain.map(|d| d.realm.clone()).unwrap_or_else(|| host.to_ascii_lowercase());
        let status = if proxy { 407 } else { 401 };
        let header = if proxy { "Proxy-Authorization" } else { "Authorization" };
        // A UA may carry credentials for several realms; ours is the one to check.
        let mut creds = None;
        for (name, value) in &req.headers.extra {
            if !name.eq_ignore_ascii_case(header) {
                continue;
            }
            match Credentials::parse(value) {
                Ok(c) if c.realm.eq_ignore_ascii_case(&realm) => {
                    creds = Some(c);
                    break;
                }
                Ok(_) => {}
                Err(e) => return AuthOutcome::Refuse { status: 400, reason: Some(format!("Bad {header}: {e}")), challenges: vec![] },
            }
        }
        let Some(c) = creds else { return self.challenge(now, status, &realm, false) };
        if self.guard.user_locked(&realm, &c.username, now) {
            return forbidden("Too many failed authentications");
        }
        match self.mint.check(&c.nonce, now) {
            NonceCheck::Invalid => return self.challenge(now, status, &realm, false),
            NonceCheck::Stale => return self.challenge(now, status, &realm, true),
            NonceCheck::Fresh => {}
        }
        let alg = c.algorithm().filter(|a| self.cfg.digest_algorithms.contains(a));
        let Some(alg) = alg else { return self.challenge(now, status, &realm, false) };
        if c.qop.as_deref().is_some_and(|q| !q.eq_ignore_ascii_case("auth")) {
            return self.challenge(now, status, &realm, false);
        }
        let method = req.method.as_str();
        let user = domain.and_then(|d| {
            dir.credentials(d.id, &c.username, alg)
                .find(|cred| c.verify(alg, &cred.ha1, method))
                .and_then(|cred| dir.user(cred.user_id))
                .filter(|u| u.enabled)
        });
        let Some(user) = user else {
            info!(%realm, username = %c.username, source = %from.addr, method, "authentication failed");
            if self.guard.failed(&realm, &c.username, from.addr.ip(), now) {
                return forbidden("Too many failed authentications");
            }
            return self.challenge(now, status, &realm, false);
        };
        if !self.mint.accept_count(&c.nonce, c.nonce_count(), now) {
            warn!(%realm, username = %c.username, source = %from.addr, nc = c.nonce_count(), "replayed nonce-count refused");
            return self.challenge(now, status, &realm, false);
        }
        self.guard.succeeded(&realm, &c.username);
        AuthOutcome::Authenticated { user_id: user.id, domain_id: user.domain_id }
    }

    fn challenge(&self, now: Instant, status: u16, realm: &str, stale: bool) -> AuthOutcome {
        let nonce = self.mint.issue(now);
        let challenges = self
            .cfg
            .digest_algorithms
            .iter()
            .map(|&algorithm| Challenge { realm: realm.to_owned(), nonce: nonce.clone(), opaque: None, algorithm, stale })
            .collect();
        AuthOutcome::Refuse { status, reason: None, challenges }
    }

    // ---- REGISTER -----------------------------------------------------------------

    /// Handles a REGISTER. `None` = send nothing.
    pub fn register(&mut self, now: Instant, req: &Request, from: Peer, dir: &DirectorySnapshot, to_tag: &str, events: &mut Vec<EngineEvent>) -> Option<Response> {
        let host = req.headers.to.uri.host.clone();
        let (user_id, domain_id) = match self.authenticate(now, req, from, dir, &host, false) {
            AuthOutcome::Drop => return None,
            AuthOutcome::Refuse { status, reason, challenges } => {
                let mut r = req.response(status, Some(to_tag));
                if let Some(reason) = reason {
                    r.reason = reason;
                }
                for c in challenges {
                    r.headers.push("WWW-Authenticate", c.to_string());
                }
                return Some(r);
            }
            AuthOutcome::Authenticated { user_id, domain_id } => (user_id, domain_id),
        };
        // The address-of-record must be the authenticated user's (by login, extension
        // or number): nobody registers for someone else.
        let aor_user = req.headers.to.uri.user.as_deref().and_then(|k| dir.user_by_key(domain_id, k)).map(|u| u.id);
        if aor_user != Some(user_id) {
            return Some(reply(req, 403, to_tag, Some("Credentials do not match the To user")));
        }
        let header_expires = match req.headers.get("Expires").map(|e| e.trim().parse::<u32>()) {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return Some(reply(req, 400, to_tag, Some("Bad Expires"))),
        };
        let star = req.headers.extra.iter().any(|(n, v)| n.eq_ignore_ascii_case("Contact") && v.trim() == "*");
        if star {
            if header_expires != Some(0) || !req.headers.contact.is_empty() {
                return Some(reply(req, 400, to_tag, Some("Contact: * needs Expires: 0 and no other contact")));
            }
            for l in self.bindings.remove(&user_id).unwrap_or_default() {
                events.push(EngineEvent::BindingRemoved { user_id, contact: l.b.contact });
            }
            info!(user = user_id, "all contacts removed");
            return Some(self.ok(now, req, user_id, to_tag));
        }
        // Validate every contact before changing anything (the request is atomic).
        let mut wanted = Vec::with_capacity(req.headers.contact.len());
        for c in &req.headers.contact {
            let expires = match c.param("expires") {
                None | Some(None) => header_expires.unwrap_or(self.cfg.default_expires),
                Some(Some(v)) => match v.trim().parse::<u32>() {
                    Ok(e) => e,
                    Err(_) => return Some(reply(req, 400, to_tag, Some("Bad expires parameter"))),
                },
            };
            if expires != 0 && expires < self.cfg.min_expires {
                let mut r = reply(req, 423, to_tag, None);
                r.headers.push("Min-Expires", self.cfg.min_expires.to_string());
                return Some(r);
            }
            let q = match c.param("q") {
                None | Some(None) => 1000,
                Some(Some(v)) => match parse_q(v) {
                    Some(q) => q,
                    None => return Some(reply(req, 400, to_tag, Some("Bad q parameter"))),
                },
            };
            wanted.push((contact_key(&c.uri), expires.min(self.cfg.max_expires), q));
        }
        let call_id = &req.headers.call_id;
        let cseq = req.headers.cseq.seq;
        let wall = self.unix_ms(now);
        let existing = self.bindings.entry(user_id).or_default();
        for (contact, _, _) in &wanted {
            if let Some(l) = existing.iter().find(|l| &l.b.contact == contact) {
                if &l.b.call_id == call_id && cseq <= l.b.cseq {
                    // RFC 3261 §10.3 step 7 says 500: a stale or reordered REGISTER.
                    return Some(reply(req, 500, to_tag, Some("Out of order REGISTER (CSeq not higher)")));
                }
            }
        }
        let adds = wanted.iter().filter(|(c, e, _)| *e > 0 && !existing.iter().any(|l| &l.b.contact == c)).count();
        let removes = wanted.iter().filter(|(c, e, _)| *e == 0 && existing.iter().any(|l| &l.b.contact == c)).count();
        if existing.len() + adds - removes > self.cfg.max_contacts {
            return Some(reply(req, 403, to_tag, Some("Too many registered contacts")));
        }
        let user_agent = req.headers.get("User-Agent").map(str::to_owned);
        let transport = match from.transport {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            // RFC 7118: reachable only over the WebSocket it registered on.
            Transport::Ws => "ws",
            Transport::Wss => "wss",
            _ => "udp",
        };
        for (contact, expires, q) in wanted {
            existing.retain(|l| l.b.contact != contact);
            if expires == 0 {
                events.push(EngineEvent::BindingRemoved { user_id, contact });
                continue;
            }
            let b = Binding {
                user_id,
                domain_id,
                contact: contact.clone(),
                q,
                expires_at_ms: wall + expires as u64 * 1000,
                call_id: call_id.clone(),
                cseq,
                source: from.addr,
                transport: transport.into(),
                user_agent: user_agent.clone(),
            };
            let at = now + Duration::from_secs(expires as u64);
            self.deadlines.push(Reverse((at, user_id, contact)));
            events.push(EngineEvent::BindingSaved(b.clone()));
            existing.push(Live { b, expires: at });
        }
        if existing.is_empty() {
            self.bindings.remove(&user_id);
        }
        Some(self.ok(now, req, user_id, to_tag))
    }

    /// 200 listing every current contact of the user with its remaining time.
    fn ok(&self, now: Instant, req: &Request, user_id: UserId, to_tag: &str) -> Response {
        let mut r = req.response(200, Some(to_tag));
        for l in self.bindings.get(&user_id).into_iter().flatten() {
            let left = l.expires.saturating_duration_since(now).as_secs();
            let mut na = match sip::parse::parse_uri(&l.b.contact) {
                Ok(uri) => NameAddr::new(uri),
                Err(_) => continue,
            };
            na.set_param("expires", Some(&left.to_string()));
            if l.b.q != 1000 {
                na.set_param("q", Some(&format_q(l.b.q)));
            }
            r.headers.contact.push(na);
        }
        r
    }

    // ---- timers, queries, start-up ------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Expires bindings whose time is up.
    pub fn tick(&mut self, now: Instant, events: &mut Vec<EngineEvent>) {
        while let Some(Reverse((at, _, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Reverse((at, user_id, contact)) = self.deadlines.pop().expect("peeked");
            let Some(list) = self.bindings.get_mut(&user_id) else { continue };
            // A refreshed binding has a later deadline: this entry is an old one.
            if let Some(pos) = list.iter().position(|l| l.b.contact == contact && l.expires <= at) {
                list.remove(pos);
                debug!(user = user_id, %contact, "binding expired");
                events.push(EngineEvent::BindingRemoved { user_id, contact });
            }
            if list.is_empty() {
                self.bindings.remove(&user_id);
            }
        }
        self.mint.prune(now);
        self.guard.prune(now);
    }

    /// Bindings loaded from the store at start-up; lapsed ones are dropped (and
    /// reported removed, so the store forgets them too).
    pub fn restore(&mut self, now: Instant, bindings: Vec<Binding>, events: &mut Vec<EngineEvent>) {
        let wall = self.unix_ms(now);
        for b in bindings {
            if b.expires_at_ms <= wall {
                events.push(EngineEvent::BindingRemoved { user_id: b.user_id, contact: b.contact });
                continue;
            }
            let at = self.instant_of(b.expires_at_ms);
            let list = self.bindings.entry(b.user_id).or_default();
            list.retain(|l| l.b.contact != b.contact);
            self.deadlines.push(Reverse((at, b.user_id, b.contact.clone())));
            list.push(Live { b, expires: at });
        }
    }

    /// Every current binding, by user then contact.
    pub fn bindings(&self) -> Vec<Binding> {
        let mut v: Vec<Binding> = self.bindings.values().flatten().map(|l| l.b.clone()).collect();
        v.sort_by(|a, b| (a.user_id, &a.contact).cmp(&(b.user_id, &b.contact)));
        v
    }

    /// A user's contacts, best `q` first (then most recently registered).
    pub fn contacts_of(&self, user_id: UserId) -> Vec<Binding> {
        let mut v: Vec<Binding> = self.bindings.get(&user_id).into_iter().flatten().map(|l| l.b.clone()).collect();
        v.sort_by(|a, b| b.q.cmp(&a.q).then(b.expires_at_ms.cmp(&a.expires_at_ms)));
        v
    }
}

fn forbidden(reason: &str) -> AuthOutcome {
    AuthOutcome::Refuse { status: 403, reason: Some(reason.to_owned()), challenges: vec![] }
}

fn reply(req: &Request, status: u16, to_tag: &str, reason: Option<&str>) -> Response {
    let mut r = req.response(status, Some(to_tag));
    if let Some(reason) = reason {
        r.reason = reason.to_owned();
    }
    r
}

/// Contacts compare as printed URIs, without URI headers (§10.3 compares URIs; the
/// printed form of the parsed URI is canonical enough for the same UA's refreshes).
fn contact_key(uri: &Uri) -> String {
    let mut u = uri.clone();
    u.headers.clear();
    u.to_string()
}

/// `q` is `0`..`1` with up to three decimals; in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let frac_n: u16 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    let q = int * 1000 + frac_n;
    (q <= 1000).then_some(q)
}

fn format_q(q: u16) -> String {
    format!("{}.{:03}", q / 1000, q % 1000).trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests;
