//! Tokens of the MX dialect (`/auth`): ES256 JWTs this server issues and verifies.
//!
//! Design:
//! - Issuing (`POST /auth`) is rare and may touch the database (password check, a new
//!   device password, a new signing key at rotation). Verifying happens on every API
//!   request and never does: the keys, the revoked `jti`s and a cache of tokens already
//!   verified live in memory, loaded from the store at start and written through on change.
//! - Signing keys rotate every `sign_key_ttl` (see [`keys`]); old public keys stay until
//!   their last token has expired; all are persisted, so tokens survive a restart.
//! - Logout revokes by `jti` until the token's `exp`. Logging a user out everywhere (the
//!   admin web) revokes every token of that user issued before now: a marker
//!   `user:<id>:<ms>` in the same revocation table, so it also survives a restart.
//! - `softPhonePwd`: a random SIP password made at `POST /auth` for this login's device.
//!   The store keeps only its HA1 (tagged with the token's `jti`, removed at logout);
//!   the plaintext is held in memory for the token's life so `GET /auth` can return it.
//!   After a restart the plaintext is gone: the next `GET /auth` issues a new one and
//!   drops the old HA1.
//!
//! The store is reached through [`TokenBackend`] so this module can be tested without a
//! database; `store_backend` implements it for [`store::Store`].

pub mod keys;
pub mod oidc;
mod store_backend;

use crate::auth::{CredentialVerifier, Principal};
use engine::users::{DirectorySnapshot, DomainId, Role, User, UserId};
use jsonwebtoken::{Algorithm, Header, Validation};
use keys::{KeyRing, SigningKey, StoredKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// An OAuth2 client application as the token code needs it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    pub client_id: String,
    pub name: Option<String>,
    pub domain_id: Option<DomainId>,
    pub enabled: bool,
}

/// What the tokens need from the database. Errors are texts for the log.
pub trait TokenBackend: Send + Sync {
    /// The app when `secret` is its secret (argon2 check in the store).
    fn verify_app<'a>(&'a self, client_id: &'a str, secret: &'a str) -> BoxFut<'a, Option<AppInfo>>;
    fn list_apps(&self) -> BoxFut<'_, Vec<AppInfo>>;
    /// The user when `password` is its API password.
    fn verify_user_password<'a>(&'a self, domain: DomainId, login: &'a str, password: &'a str) -> BoxFut<'a, Option<User>>;
    fn add_signing_key<'a>(&'a self, key: &'a StoredKey) -> BoxFut<'a, ()>;
    fn signing_keys(&self) -> BoxFut<'_, Vec<StoredKey>>;
    fn delete_signing_key<'a>(&'a self, kid: &'a str) -> BoxFut<'a, ()>;
    fn revoke_token<'a>(&'a self, jti: &'a str, expires_ms: u64) -> BoxFut<'a, ()>;
    fn revoked_tokens(&self, now_ms: u64) -> BoxFut<'_, Vec<String>>;
    fn purge_revoked(&self, now_ms: u64) -> BoxFut<'_, ()>;
    fn add_device_credential<'a>(&'a self, user_id: UserId, username: &'a str, password: &'a str, jti: &'a str) -> BoxFut<'a, ()>;
    fn delete_device_credentials<'a>(&'a self, jti: &'a str) -> BoxFut<'a, ()>;
}

/// `[auth]` settings.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub token_ttl: Duration,
    pub sign_key_ttl: Duration,
    /// `iss` of our tokens; None = `https://<the user's domain>`.
    pub issuer: Option<String>,
    /// The domain of a login given without `@domain` to an app that has no domain.
    pub default_domain: String,
    /// What `GET /auth` reports as `mx` (our node name).
    pub node: String,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            token_ttl: Duration::from_secs(3600),
            sign_key_ttl: Duration::from_secs(6 * 3600),
            issuer: None,
            default_domain: "switchboard.local".into(),
            node: "switchboard".into(),
        }
    }
}

/// The claims of our tokens. `sb_*` are ours (private claims, RFC 7519 §4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    pub sb_uid: UserId,
    pub sb_dom: DomainId,
    pub sb_dname: String,
    pub sb_role: Role,
}

impl Claims {
    pub fn principal(&self) -> Principal {
        Principal { domain: Some(self.sb_dom), role: self.sb_role, user_id: Some(self.sb_uid), token_id: Some(self.jti.clone()) }
    }
}

/// A live API login (for `GET /auth` and the admin web's `/connections`).
#[derive(Debug, Clone)]
pub struct Session {
    pub login: String,
    pub user_id: UserId,
    pub domain_id: DomainId,
    pub exp_ms: u64,
    pub soft_phone_pwd: Option<String>,
}

/// A token just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub claims: Claims,
}

/// Tokens already verified, by their text: a repeat costs a hash lookup, not an ECDSA
/// verification. Bounded: cleared when full (a cold miss only costs one verification).
const VERIFIED_CACHE_MAX: usize = 20_000;

pub struct TokenService {
    pub cfg: TokenConfig,
    backend: Arc<dyn TokenBackend>,
    directory: watch::Receiver<Arc<DirectorySnapshot>>,
    keys: RwLock<KeyRing>,
    /// Serialises key rotation (one new key, not one per concurrent login).
    rotating: tokio::sync::Mutex<()>,
    /// Revoked jti → when the entry may be forgotten (ms).
    revoked: RwLock<HashMap<String, u64>>,
    /// User → tokens issued before this time (ms) are revoked.
    users_logged_out: RwLock<HashMap<UserId, u64>>,
    sessions: Mutex<HashMap<String, Session>>,
    verified: RwLock<HashMap<String, Claims>>,
    pub oidc: Option<oidc::OidcIssuer>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `n` random characters from [A-Za-z0-9].
pub fn random_text(n: usize) -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut buf = [0u8; 32];
        rng.fill(&mut buf).expect("system random");
        // 248 = 4 × 62: rejecting above it keeps the choice uniform.
        out.extend(buf.iter().filter(|b| **b < 248).map(|b| ALPHABET[(*b % 62) as usize] as char).take(n - out.len()));
    }
    out
}

const USER_MARK: &str = "user:";

impl TokenService {
    /// Loads keys and revocations from the store; makes a first key if there is none.
    pub async fn start(
        cfg: TokenConfig,
        backend: Arc<dyn TokenBackend>,
        directory: watch::Receiver<Arc<DirectorySnapshot>>,
        oidc: Option<oidc::OidcIssuer>,
    ) -> Result<Arc<TokenService>, String> {
        let now = now_ms();
        let mut ring = KeyRing::default();
        for k in backend.signing_keys().await? {
            match SigningKey::from_stored(&k) {
                Ok(key) => ring.insert(key),
                Err(e) => tracing::warn!("ignoring signing key: {e}"),
            }
        }
        let svc = TokenService {
            cfg,
            backend,
            directory,
            keys: RwLock::new(ring),
            rotating: Default::default(),
            revoked: Default::default(),
            users_logged_out: Default::default(),
            sessions: Default::default(),
            verified: Default::default(),
            oidc,
        };
        for jti in svc.backend.revoked_tokens(now).await? {
            svc.remember_revoked(&jti, now + svc.token_ttl_ms());
        }
        svc.current_key(now).await?;
        Ok(Arc::new(svc))
    }

    fn token_ttl_ms(&self) -> u64 {
        self.cfg.token_ttl.as_millis() as u64
    }

    fn remember_revoked(&self, jti: &str, forget_at: u64) {
        if let Some(rest) = jti.strip_prefix(USER_MARK) {
            if let Some((uid, ms)) = rest.split_once(':').and_then(|(u, m)| Some((u.parse().ok()?, m.parse().ok()?))) {
                let mut m = self.users_logged_out.write().expect("lock");
                let e = m.entry(uid).or_insert(0);
                *e = (*e).max(ms);
            }
            return;
        }
        self.revoked.write().expect("lock").insert(jti.to_string(), forget_at);
    }

    /// The key to sign with now, made (and persisted) when the current one is too old.
    async fn current_key(&self, now: u64) -> Result<String, String> {
        let ttl = self.cfg.sign_key_ttl.as_millis() as u64;
        if let Some(k) = self.keys.read().expect("lock").current(now, ttl) {
            return Ok(k.kid.clone());
        }
        let _one = self.rotating.lock().await;
        if let Some(k) = self.keys.read().expect("lock").current(now, ttl) {
            return Ok(k.kid.clone());
        }
        let mut at = now;
        // Two keys in the same millisecond would share a kid.
        if let Some(last) = self.keys.read().expect("lock").iter().last() {
            at = at.max(last.created_ms + 1);
        }
        let (key, stored) = SigningKey::generate(at)?;
        self.backend.add_signing_key(&stored).await?;
        tracing::info!(kid = %key.kid, "new token signing key");
        let kid = key.kid.clone();
        self.keys.write().expect("lock").insert(key);
        Ok(kid)
    }

    /// Signs a token for `user` (whose domain is `domain_name`).
    pub async fn issue(&self, user: &User, domain_name: &str) -> Result<Issued, String> {
        let now = now_ms();
        let kid = self.current_key(now).await?;
        let now_s = now / 1000;
        let ttl_s = self.cfg.token_ttl.as_secs();
        let claims = Claims {
            sub: user.login.clone(),
            // 10 s early, like MX Proxy: a verifier whose clock is slightly behind accepts it.
            iat: now_s.saturating_sub(10),
            exp: now_s + ttl_s,
            jti: random_text(16),
            iss: Some(self.cfg.issuer.clone().unwrap_or_else(|| format!("https://{domain_name}"))),
            sb_uid: user.id,
            sb_dom: user.domain_id,
            sb_dname: domain_name.to_string(),
            sb_role: user.role,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        let token = {
            let keys = self.keys.read().expect("lock");
            let key = keys.get(&kid).ok_or("signing key vanished")?;
            jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|e| format!("signing: {e}"))?
        };
        self.sessions.lock().expect("lock").insert(
            claims.jti.clone(),
            Session { login: user.login.clone(), user_id: user.id, domain_id: user.domain_id, exp_ms: claims.exp * 1000, soft_phone_pwd: None },
        );
        Ok(Issued { access_token: token, expires_in: ttl_s, claims })
    }

    /// Checks a token of ours. `Ok(None)`: not a JWT at all (another credential kind);
    /// `Err(reason)`: a JWT we refuse, reason in MX Proxy's words.
    pub fn verify_claims(&self, token: &str) -> Result<Option<Claims>, String> {
        let now = now_ms();
        let cached = self.verified.read().expect("lock").get(token).cloned();
        let claims = match cached {
            Some(c) => {
                if c.exp * 1000 <= now {
                    return Err("token expired".into());
                }
                c
            }
            None => {
                let Ok(header) = jsonwebtoken::decode_header(token) else { return Ok(None) };
                if header.alg != Algorithm::ES256 {
                    return Err("invalid token".into());
                }
                let kid = header.kid.ok_or("token not signed")?;
                let claims = {
                    let keys = self.keys.read().expect("lock");
                    let key = keys.get(&kid).ok_or("unknown or obsolete signing key")?;
                    let mut v = Validation::new(Algorithm::ES256);
                    v.leeway = 0;
                    v.validate_aud = false;
                    v.set_required_spec_claims(&["exp", "sub", "iat", "jti"]);
                    jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|e| reason(&e))?.claims
                };
                if claims.iat * 1000 > now + 60_000 {
                    return Err("token created after now".into());
                }
                let mut cache = self.verified.write().expect("lock");
                if cache.len() >= VERIFIED_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(token.to_string(), claims.clone());
                claims
            }
        };
        // A user disabled or deleted (or its domain) loses its tokens at once: the
        // directory snapshot is in memory, so this costs two hash lookups.
        {
            let dir = self.directory.borrow();
            let live = dir.user(claims.sb_uid).is_some_and(|u| u.enabled && u.domain_id == claims.sb_dom)
                && dir.domain(claims.sb_dom).is_some_and(|d| d.enabled);
            if !live {
                return Err("unknown or disabled user".into());
            }
        }
        if self.revoked.read().expect("lock").contains_key(&claims.jti) {
            return Err("token revoked".into());
        }
        if let Some(before) = self.users_logged_out.read().expect("lock").get(&claims.sb_uid) {
            // iat is issue − 10 s; +10 s gives the issue second.
            if (claims.iat + 10) * 1000 <= *before {
                return Err("token revoked".into());
            }
        }
        Ok(Some(claims))
    }

    /// Live session of a verified token (rebuilt after a restart).
    pub fn session(&self, claims: &Claims) -> Session {
        self.sessions
            .lock()
            .expect("lock")
            .entry(claims.jti.clone())
            .or_insert_with(|| Session {
                login: claims.sub.clone(),
                user_id: claims.sb_uid,
                domain_id: claims.sb_dom,
                exp_ms: claims.exp * 1000,
                soft_phone_pwd: None,
            })
            .clone()
    }

    /// This login's device SIP password: the one held in memory, else a new one (its HA1
    /// stored, tagged with the jti; any older one of this jti dropped).
    pub async fn soft_phone_password(&self, claims: &Claims) -> Result<String, String> {
        if let Some(p) = self.session(claims).soft_phone_pwd {
            return Ok(p);
        }
        let pwd = random_text(20);
        self.backend.delete_device_credentials(&claims.jti).await?;
        self.backend.add_device_credential(claims.sb_uid, &claims.sub, &pwd, &claims.jti).await?;
        if let Some(s) = self.sessions.lock().expect("lock").get_mut(&claims.jti) {
            // A concurrent GET may have won: keep the first so both callers agree.
            return Ok(s.soft_phone_pwd.get_or_insert(pwd).clone());
        }
        Ok(pwd)
    }

    /// Logout of one token: revoked until its `exp`, its device password removed.
    pub async fn revoke(&self, claims: &Claims) -> Result<(), String> {
        let exp_ms = claims.exp * 1000;
        self.remember_revoked(&claims.jti, exp_ms);
        self.sessions.lock().expect("lock").remove(&claims.jti);
        self.backend.revoke_token(&claims.jti, exp_ms).await?;
        self.backend.delete_device_credentials(&claims.jti).await
    }

    /// Logs `user` out everywhere: every token issued until now is refused.
    pub async fn revoke_user(&self, user: UserId) -> Result<(), String> {
        let now = now_ms();
        // Tokens are stamped in whole seconds: round up so one issued this second is covered.
        let before = (now / 1000 + 1) * 1000;
        let mark = format!("{USER_MARK}{user}:{before}");
        self.remember_revoked(&mark, now + self.token_ttl_ms());
        let jtis: Vec<String> = {
            let mut sessions = self.sessions.lock().expect("lock");
            let jtis = sessions.iter().filter(|(_, s)| s.user_id == user).map(|(j, _)| j.clone()).collect::<Vec<_>>();
            sessions.retain(|_, s| s.user_id != user);
            jtis
        };
        self.backend.revoke_token(&mark, now + self.token_ttl_ms()).await?;
        for jti in jtis {
            self.backend.delete_device_credentials(&jti).await?;
        }
        Ok(())
    }

    /// The public keys (JWKS, RFC 7517 §5).
    pub fn jwks(&self) -> serde_json::Value {
        let keys = self.keys.read().expect("lock");
        serde_json::json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
    }

    /// Logins with a live token, per domain (the admin web's `/connections`).
    pub fn connections(&self, domain: Option<DomainId>) -> Vec<(DomainId, String)> {
        let now = now_ms();
        let mut v: Vec<_> = self
            .sessions
            .lock()
            .expect("lock")
            .values()
            .filter(|s| s.exp_ms > now && domain.is_none_or(|d| d == s.domain_id))
            .map(|s| (s.domain_id, s.login.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn backend(&self) -> &Arc<dyn TokenBackend> {
        &self.backend
    }

    pub fn directory(&self) -> Arc<DirectorySnapshot> {
        self.directory.borrow().clone()
    }

    /// Housekeeping, run every few seconds: forget expired revocations and sessions,
    /// delete signing keys no live token can need.
    pub async fn maintain(&self) -> Result<(), String> {
        let now = now_ms();
        self.revoked.write().expect("lock").retain(|_, forget_at| *forget_at > now);
        let ttl = self.token_ttl_ms();
        self.users_logged_out.write().expect("lock").retain(|_, before| *before + ttl > now);
        self.sessions.lock().expect("lock").retain(|_, s| s.exp_ms > now);
        self.verified.write().expect("lock").retain(|_, c| c.exp * 1000 > now);
        let obsolete = self.keys.read().expect("lock").obsolete(now, ttl);
        for kid in obsolete {
            self.backend.delete_signing_key(&kid).await?;
            self.keys.write().expect("lock").remove(&kid);
            tracing::info!(%kid, "signing key retired");
        }
        self.backend.purge_revoked(now).await
    }

    /// Runs [`TokenService::maintain`] until the process ends.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            let every = svc.cfg.sign_key_ttl.min(Duration::from_secs(60)).max(Duration::from_secs(1));
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = svc.maintain().await {
                    tracing::warn!("token housekeeping: {e}");
                }
            }
        })
    }

    #[cfg(test)]
    pub fn key_count(&self) -> usize {
        self.keys.read().expect("lock").len()
    }
}

/// MX Proxy's words for why a token is refused.
fn reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::InvalidSignature => "bad ecdsa signature",
        ErrorKind::ImmatureSignature => "token created after now",
        _ => "invalid token",
    }
    .into()
}

/// Our JWTs as a credential of every API (`Authorization: Bearer`).
pub struct JwtVerifier(pub Arc<TokenService>);

impl CredentialVerifier for JwtVerifier {
    fn verify(&self, bearer: &str) -> Result<Option<Principal>, String> {
        Ok(self.0.verify_claims(bearer)?.map(|c| c.principal()))
    }
}

#[cfg(test)]
pub(crate) mod memory;

#[cfg(test)]
mod tests;
