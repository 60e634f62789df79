//! The directory as the engine sees it: domains (tenants), users, their SIP digest
//! credentials, and contact bindings. Plain data, no I/O: the store loads a
//! [`DirectorySnapshot`] from the database and hands it to the engine (and the APIs)
//! whole; every change to the directory is a new snapshot. Bindings are the one part
//! the engine itself changes (REGISTER), so they live in the registrar and are
//! persisted from its events.
//!
//! Lookups are what the hot paths need: a domain by any SIP name it answers to, a
//! user by extension, login or number within a domain (the routing lookup), and a
//! user's HA1 by digest username and algorithm.

use sip::digest::Algorithm;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub type DomainId = i64;
pub type UserId = i64;

/// A tenant: its users, rooms and calls are invisible to every other domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Domain {
    pub id: DomainId,
    /// The primary SIP domain name (`alpha.test`); lowercase.
    pub name: String,
    /// Further SIP names (hosts) this domain answers to; lowercase.
    pub aliases: Vec<String>,
    /// Digest realm of challenges for this domain (default: `name`).
    pub realm: String,
    pub enabled: bool,
}

/// What a user or API credential may do: an admin manages its own domain (or, with no
/// domain, every domain); a user sees its own calls and the rooms it takes part in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    #[default]
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// A person (or device account) in a domain.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct User {
    pub id: UserId,
    pub domain_id: DomainId,
    /// Unique in the domain; also a digest username.
    pub login: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Unique in the domain when set.
    pub ext: Option<String>,
    /// Direct inward dialling number.
    pub did: Option<String>,
    pub cell_phone: Option<String>,
    pub home_phone: Option<String>,
    pub email: Option<String>,
    pub role: Role,
    pub enabled: bool,
    /// How the user wants calls delivered (reference 001 `PATCH /calls`); None = never set
    /// (ring the registered devices at once, no remote number).
    pub call_mode: Option<CallMode>,
    /// The user has push tokens (reference 001 `PUT /tokens`): an incoming call should
    /// wake the app ([`crate::EngineEvent::WakeUser`]) and give it time to register.
    pub has_push_tokens: bool,
}

/// A user's call mode, as set by `PATCH /calls` (reference 001): for the bridge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallMode {
    /// Calls also ring `device` (the user's own number, e.g. a mobile) instead of only
    /// the registered SIP devices.
    pub remote: bool,
    /// The number (or SIP URI) rung when `remote` is set; empty = the user's cell phone.
    pub device: String,
    /// Seconds to wait before ringing the remote device (MX default 1).
    pub ring_delay_s: u16,
    /// Seconds of ringing before voicemail takes the call (MX default 30).
    pub vm_delay_s: u16,
    /// The device name bound by `PATCH /calls/{name}`, if any.
    pub assigned_device: Option<String>,
}

impl User {
    /// What callers see (From display name): display name, else first and last name, else login.
    pub fn caller_name(&self) -> String {
        if let Some(d) = self.display_name.as_deref().filter(|d| !d.is_empty()) {
            return d.to_owned();
        }
        let full = [self.first_name.as_deref(), self.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        if full.trim().is_empty() {
            self.login.clone()
        } else {
            full
        }
    }
}

/// One SIP digest secret: HA1 of (username, realm, password) for one algorithm. A user
/// has one per algorithm and digest username (login, and extension if it has one);
/// a device password issued at API login (`softPhonePwd`) adds more, tagged with the
/// token id that revokes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SipCredential {
    pub user_id: UserId,
    pub username: String,
    #[serde(serialize_with = "algorithm_token")]
    pub algorithm: Algorithm,
    /// Lowercase hex.
    #[serde(skip)]
    pub ha1: String,
    /// `jti` of the API login that issued this device password; None = the user's own.
    pub device_jti: Option<String>,
}

/// A contact a user agent registered (RFC 3261 §10.3).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Binding {
    pub user_id: UserId,
    pub domain_id: DomainId,
    /// The Contact URI as registered.
    pub contact: String,
    /// `q` in thousandths (1000 = 1.0); absent = 1000.
    pub q: u16,
    /// Unix time (ms) when the binding lapses.
    pub expires_at_ms: u64,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from: requests to this contact go there (NAT, RFC 3581).
    pub source: SocketAddr,
    /// `udp` or `tcp`: the transport the REGISTER came over.
    pub transport: String,
    pub user_agent: Option<String>,
}

/// The whole directory at one moment. Cheap to share: an `Arc` per version.
#[derive(Debug, Default)]
pub struct DirectorySnapshot {
    /// Bumped by every change in the store; tells readers whether to reload.
    pub version: i64,
    pub domains: Vec<Domain>,
    pub users: Vec<User>,
    pub credentials: Vec<SipCredential>,
    /// Scheduled conferences (see [`crate::schedule`]), set by [`Self::with_conferences`].
    pub conferences: Vec<crate::schedule::ScheduledConference>,
    /// (domain, access id) → index into `conferences`.
    conference_by_access: HashMap<(DomainId, u64), usize>,
    domain_by_name: HashMap<String, usize>,
    domain_by_id: HashMap<DomainId, usize>,
    user_by_id: HashMap<UserId, usize>,
    /// (domain, key) for login, extension and every phone number.
    user_by_key: HashMap<(DomainId, String), usize>,
    /// (domain, digest username, algorithm) → indices into `credentials`.
    creds_by_name: HashMap<(DomainId, String, Algorithm), Vec<usize>>,
}

impl DirectorySnapshot {
    pub fn new(version: i64, domains: Vec<Domain>, users: Vec<User>, credentials: Vec<SipCredential>) -> DirectorySnapshot {
        let mut s = DirectorySnapshot { version, domains, users, credentials, ..Default::default() };
        for (i, d) in s.domains.iter().enumerate() {
            s.domain_by_id.insert(d.id, i);
            s.domain_by_name.insert(d.name.to_ascii_lowercase(), i);
            for a in &d.aliases {
                s.domain_by_name.entry(a.to_ascii_lowercase()).or_insert(i);
            }
        }
        for (i, u) in s.users.iter().enumerate() {
            s.user_by_id.insert(u.id, i);
            // Login first, then extension, then numbers: an earlier key is not overwritten.
            let keys = [Some(&u.login), u.ext.as_ref(), u.did.as_ref(), u.cell_phone.as_ref(), u.home_phone.as_ref()];
            for k in keys.into_iter().flatten() {
                s.user_by_key.entry((u.domain_id, normalize_key(k))).or_insert(i);
            }
        }
        for (i, c) in s.credentials.iter().enumerate() {
            if let Some(u) = s.user_by_id.get(&c.user_id).map(|&ui| &s.users[ui]) {
                s.creds_by_name.entry((u.domain_id, c.username.clone(), c.algorithm)).or_default().push(i);
            }
        }
        s
    }

    /// The snapshot with these scheduled conferences.
    pub fn with_conferences(mut self, conferences: Vec<crate::schedule::ScheduledConference>) -> DirectorySnapshot {
        self.conference_by_access = conferences.iter().enumerate().map(|(i, c)| ((c.domain_id, c.access_id), i)).collect();
        self.conferences = conferences;
        self
    }

    /// The scheduled conference a caller of `domain` reaches by keying `access_id`.
    pub fn conference_by_access(&self, domain: DomainId, access_id: u64) -> Option<&crate::schedule::ScheduledConference> {
        self.conference_by_access.get(&(domain, access_id)).map(|&i| &self.conferences[i])
    }

    pub fn shared(self) -> Arc<DirectorySnapshot> {
        Arc::new(self)
    }

    /// The domain a SIP host (Request-URI or To host) names, case-insensitively.
    pub fn domain_by_name(&self, host: &str) -> Option<&Domain> {
        self.domain_by_name.get(&host.to_ascii_lowercase()).map(|&i| &self.domains[i])
    }

    pub fn domain(&self, id: DomainId) -> Option<&Domain> {
        self.domain_by_id.get(&id).map(|&i| &self.domains[i])
    }

    pub fn user(&self, id: UserId) -> Option<&User> {
        self.user_by_id.get(&id).map(|&i| &self.users[i])
    }

    /// The routing lookup: a Request-URI user or dial target that is a login,
    /// extension or phone number (DID, cell, home) of a user of the domain.
    /// Numbers match with spaces, dashes, dots and brackets removed.
    pub fn user_by_key(&self, domain: DomainId, key: &str) -> Option<&User> {
        self.user_by_key.get(&(domain, normalize_key(key))).map(|&i| &self.users[i])
    }

    /// Every credential of the domain with this digest username and algorithm
    /// (several when devices have their own passwords).
    pub fn credentials(&self, domain: DomainId, username: &str, alg: Algorithm) -> impl Iterator<Item = &SipCredential> {
        self.creds_by_name
            .get(&(domain, username.to_owned(), alg))
            .into_iter()
            .flatten()
            .map(|&i| &self.credentials[i])
    }

    /// Users of a domain, in id order.
    pub fn users_of(&self, domain: DomainId) -> impl Iterator<Item = &User> {
        self.users.iter().filter(move |u| u.domain_id == domain)
    }
}

fn algorithm_token<S: serde::Serializer>(a: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

/// Keys compare without the punctuation people write numbers with.
fn normalize_key(k: &str) -> String {
    let compact: String = k.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    if compact.is_empty() {
        k.to_owned()
    } else {
        compact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> DirectorySnapshot {
        let domains = vec![
            Domain { id: 1, name: "alpha.test".into(), aliases: vec!["127.0.0.1".into()], realm: "alpha.test".into(), enabled: true },
            Domain { id: 2, name: "beta.test".into(), aliases: vec![], realm: "beta.test".into(), enabled: true },
        ];
        let users = vec![
            User { id: 10, domain_id: 1, login: "alice".into(), ext: Some("3044".into()), did: Some("+1 555 0100".into()), enabled: true, ..Default::default() },
            User { id: 11, domain_id: 2, login: "alice".into(), ext: Some("3044".into()), enabled: true, ..Default::default() },
        ];
        let creds = vec![SipCredential { user_id: 10, username: "alice".into(), algorithm: Algorithm::Md5, ha1: "x".into(), device_jti: None }];
        DirectorySnapshot::new(1, domains, users, creds)
    }

    #[test]
    fn lookups_stay_inside_their_domain() {
        let s = snapshot();
        let alpha = s.domain_by_name("ALPHA.test").unwrap().id;
        assert_eq!(s.domain_by_name("127.0.0.1").unwrap().id, alpha);
        assert_eq!(s.user_by_key(alpha, "3044").unwrap().id, 10);
        assert_eq!(s.user_by_key(alpha, "+15550100").unwrap().id, 10);
        assert_eq!(s.user_by_key(2, "3044").unwrap().id, 11);
        assert!(s.user_by_key(2, "+15550100").is_none());
        assert_eq!(s.credentials(alpha, "alice", Algorithm::Md5).count(), 1);
        assert_eq!(s.credentials(2, "alice", Algorithm::Md5).count(), 0);
    }
}
