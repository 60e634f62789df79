//! The directory in the database: domains, users and their secrets, OAuth2 apps, API
//! keys; plus the registrar's bindings, token signing keys and revoked tokens.
//!
//! Readers on hot paths never come here: the server loads the whole directory as an
//! immutable [`DirectorySnapshot`] ([`Store::load_directory`]) and reloads it when
//! [`Store::directory_version`] changes. Every directory write bumps that version in
//! its own transaction, as its *first* statement: on SQLite that takes the write lock
//! at once (a transaction that read first and then tried to write could fail with
//! "database is locked" instead of waiting); on PostgreSQL the row lock serialises
//! directory writers, which is what makes the id counter and the uniqueness checks
//! below race-free.
//!
//! Secrets, and why each is kept the way it is:
//! - SIP digest: HA1 = H(username:realm:password) for MD5 and SHA-256, for the login
//!   and (when set) the extension as digest usernames. The registrar needs HA1, not
//!   the password, and HA1 is useless outside its realm. The plaintext is never kept,
//!   so changing an extension without a new password drops the extension's HA1s
//!   (the login's stay); setting the password again restores them.
//! - Password, PIN and app secret: argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's
//!   minimum recommendation for argon2id). These are low-entropy human secrets, so the
//!   hash must be slow; they are checked only at `POST /auth`, PIN entry and the CLI,
//!   never per SIP request, so ~20–40 ms a check is affordable. Hashing runs on the
//!   blocking pool, not on the async workers.
//! - API keys: 32 random bytes, shown once as `sbk_` + 64 hex digits and stored as
//!   SHA-256: a key has 256 bits of entropy, so a fast hash is enough and lets a
//!   request's key be found by its hash in one indexed lookup.
//!
//! No method returns a stored hash: the public types have no field for one.
//!
//! Validation happens here, so every way in (CLI, REST) refuses the same things with
//! the same messages: domain names and aliases are lowercase hostnames or IP
//! literals; logins and client ids `[A-Za-z0-9._-]+`; extensions digits; phone numbers
//! `+` and digits (spaces, dashes, dots and brackets are dropped).

use crate::error::StoreError;
use crate::store::{from_db, to_db, Store};
use engine::users::{Binding, DirectorySnapshot, Domain, DomainId, SipCredential, User, UserId};
use rand::RngCore;
use sip::digest::{self, Algorithm};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};
use std::time::{SystemTime, UNIX_EPOCH};

pub use engine::users::Role;

/// What `add_user` needs. `role` defaults to `User`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct NewUser {
    pub domain: String,
    pub login: String,
    pub password: String,
    pub pin: Option<String>,
    pub ext: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub did: Option<String>,
    pub cell_phone: Option<String>,
    pub home_phone: Option<String>,
    pub email: Option<String>,
    pub role: Role,
}

/// A change to a user: `None` leaves a field alone; for the optional text fields (and
/// the PIN) `Some("")` clears it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub ext: Option<String>,
    pub did: Option<String>,
    pub cell_phone: Option<String>,
    pub home_phone: Option<String>,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub enabled: Option<bool>,
    pub password: Option<String>,
    pub pin: Option<String>,
}

/// An OAuth2 client. Its secret is kept only as an argon2 hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct App {
    pub id: i64,
    pub client_id: String,
    pub name: Option<String>,
    /// The domain whose users may log in through it; None = any domain.
    pub domain_id: Option<DomainId>,
    pub enabled: bool,
    pub created_ms: u64,
    /// Web Call Server hooks (reference 004): where `<rest_url>/<method>` is POSTed
    /// for sessions that connect with this app's client id as their `appKey`.
    pub rest_url: Option<String>,
    /// The hooks it gets (method and event names); None = every one.
    pub rest_methods: Option<Vec<String>>,
}

/// An API key's description; the key itself is shown once, when created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// None = every domain (a superuser key when `role` is admin).
    pub domain_id: Option<DomainId>,
    pub role: Role,
    /// The key's first characters (`sbk_1a2b3c4d`), to tell keys apart.
    pub prefix: String,
    pub created_ms: u64,
}

/// A token signing key (PKCS#8 DER of the private key).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub pkcs8_der: Vec<u8>,
    pub created_ms: u64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("created_ms", &self.created_ms).finish_non_exhaustive()
    }
}

/// What an API key looks like: this prefix, then 64 hex digits.
pub const API_KEY_PREFIX: &str = "sbk_";

/// Characters of a key kept (and shown) as its prefix.
const API_KEY_SHOWN: usize = API_KEY_PREFIX.len() + 8;

const USER_COLUMNS: &str = "id, domain_id, login, display_name, first_name, last_name, ext, did, cell_phone, \
     home_phone, email, role, enabled";
const APP_COLUMNS: &str = "id, client_id, name, domain_id, enabled, created_ms, rest_url, rest_methods";
const KEY_COLUMNS: &str = "id, name, domain_id, role, prefix, created_ms";

impl Store {
    // ---- version -------------------------------------------------------------------

    /// The directory's version: changes with every directory write (any process).
    pub async fn directory_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM directory_meta WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get("version")?)
    }

    /// The whole directory (every domain, user and SIP credential, enabled or not:
    /// callers check `enabled`), with the version it was read at.
    pub async fn load_directory(&self) -> Result<DirectorySnapshot, StoreError> {
        // The version first: a write landing between the reads leaves newer data under
        // an older version, so the next poll reloads again (never the reverse).
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query("SELECT version FROM directory_meta WHERE id = 1").fetch_one(&mut *tx).await?.try_get(0)?;
        let domains = select_domains(&mut tx, None).await?;
        let users = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<User>, _>>()?;
        // What the bridge needs of issue 10's per-user settings (see crate::calls).
        let (mut modes, with_tokens) = crate::calls::load_user_extras(&mut tx).await?;
        let users = users
            .into_iter()
            .map(|mut u| {
                u.call_mode = modes.remove(&u.id);
                u.has_push_tokens = with_tokens.contains(&u.id);
                u
            })
            .collect::<Vec<_>>();
        let credentials = sqlx::query("SELECT user_id, username, algorithm, ha1, device_jti FROM sip_credentials ORDER BY user_id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                let alg: String = row.try_get("algorithm")?;
                Ok(SipCredential {
                    user_id: row.try_get("user_id")?,
                    username: row.try_get("username")?,
                    algorithm: Algorithm::from_token(&alg)
                        .ok_or_else(|| StoreError::Corrupt(format!("sip_credentials.algorithm = {alg:?}")))?,
                    ha1: row.try_get("ha1")?,
                    device_jti: row.try_get("device_jti")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let conferences = crate::conferences::select_all(&mut tx).await?;
        tx.commit().await?;
        Ok(DirectorySnapshot::new(version, domains, users, credentials).with_conferences(conferences))
    }

    /// True when someone can administer the server: an enabled admin user or an admin
    /// API key exists. (The static `--api-token` is not in the database.)
    pub async fn has_admin(&self) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM users WHERE role = 'admin' AND enabled = 1) \
                  + (SELECT COUNT(*) FROM api_keys WHERE role = 'admin') AS n",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    // ---- domains -------------------------------------------------------------------

    /// Adds a domain; `realm` defaults to its name.
    pub async fn add_domain(&self, name: &str, realm: Option<&str>) -> Result<Domain, StoreError> {
        let name = valid_host(name, "domain name")?;
        let realm = match realm {
            Some(r) => valid_realm(r)?,
            None => name.clone(),
        };
        let mut tx = self.directory_write().await?;
        ensure_host_free(&mut tx, &name).await?;
        let id = next_id(&mut tx).await?;
        sqlx::query("INSERT INTO domains (id, name, realm, enabled, created_ms) VALUES ($1, $2, $3, 1, $4)")
            .bind(id)
            .bind(&name)
            .bind(&realm)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Domain { id, name, aliases: vec![], realm, enabled: true })
    }

    /// The domain called `name`, added (realm = name) if it does not exist.
    pub async fn ensure_domain(&self, name: &str) -> Result<Domain, StoreError> {
        if let Some(d) = self.domain_by_name(name).await? {
            return Ok(d);
        }
        match self.add_domain(name, None).await {
            // Another process added it between the two steps.
            Err(StoreError::AlreadyExists(_)) => {
                self.domain_by_name(name).await?.ok_or_else(|| StoreError::NotFound(format!("domain {name:?} not found")))
            }
            other => other,
        }
    }

    /// Every domain, by name.
    pub async fn list_domains(&self) -> Result<Vec<Domain>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut domains = select_domains(&mut conn, None).await?;
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(domains)
    }

    /// The domain with this name or alias (case-insensitive).
    pub async fn domain_by_name(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        let name = name.trim().to_ascii_lowercase();
        let row = sqlx::query(
            "SELECT id FROM domains WHERE name = $1 UNION SELECT domain_id FROM domain_aliases WHERE alias = $1",
        )
        .bind(&name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => self.domain(row.try_get(0)?).await,
            None => Ok(None),
        }
    }

    pub async fn domain(&self, id: DomainId) -> Result<Option<Domain>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(select_domains(&mut conn, Some(id)).await?.pop())
    }

    pub async fn set_domain_enabled(&self, id: DomainId, enabled: bool) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        let done = sqlx::query("UPDATE domains SET enabled = $1 WHERE id = $2").bind(flag(enabled)).bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(domain_not_found(id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a domain with no users; [`StoreError::InUse`] if it has some (see
    /// [`Store::delete_domain_cascade`]). Its aliases, and apps and API keys bound to
    /// it, go with it.
    pub async fn delete_domain(&self, id: DomainId) -> Result<(), StoreError> {
        self.remove_domain(id, false).await
    }

    /// Deletes a domain and everything in it: users, their credentials, bindings and
    /// scheduled conferences, its aliases, apps and API keys.
    pub async fn delete_domain_cascade(&self, id: DomainId) -> Result<(), StoreError> {
        self.remove_domain(id, true).await
    }

    async fn remove_domain(&self, id: DomainId, cascade: bool) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        let Some(name) = sqlx::query("SELECT name FROM domains WHERE id = $1").bind(id).fetch_optional(&mut *tx).await? else {
            return Err(domain_not_found(id));
        };
        let name: String = name.try_get(0)?;
        let users: i64 = sqlx::query("SELECT COUNT(*) FROM users WHERE domain_id = $1").bind(id).fetch_one(&mut *tx).await?.try_get(0)?;
        if users > 0 && !cascade {
            return Err(StoreError::InUse(format!("domain {name:?} still has {users} user(s); delete them first or force")));
        }
        for sql in [
            "DELETE FROM sip_credentials WHERE user_id IN (SELECT id FROM users WHERE domain_id = $1)",
            "DELETE FROM bindings WHERE domain_id = $1",
            "DELETE FROM call_modes WHERE user_id IN (SELECT id FROM users WHERE domain_id = $1)",
            "DELETE FROM push_tokens WHERE user_id IN (SELECT id FROM users WHERE domain_id = $1)",
            "DELETE FROM scheduled_conferences WHERE domain_id = $1",
            "DELETE FROM messages WHERE domain_id = $1",
            "DELETE FROM users WHERE domain_id = $1",
            "DELETE FROM apps WHERE domain_id = $1",
            "DELETE FROM api_keys WHERE domain_id = $1",
            "DELETE FROM domain_aliases WHERE domain_id = $1",
            "DELETE FROM domains WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Another SIP host name the domain answers to.
    pub async fn add_domain_alias(&self, id: DomainId, alias: &str) -> Result<(), StoreError> {
        let alias = valid_host(alias, "domain alias")?;
        let mut tx = self.directory_write().await?;
        if sqlx::query("SELECT id FROM domains WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?.is_none() {
            return Err(domain_not_found(id));
        }
        ensure_host_free(&mut tx, &alias).await?;
        sqlx::query("INSERT INTO domain_aliases (alias, domain_id) VALUES ($1, $2)").bind(&alias).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_domain_alias(&self, alias: &str) -> Result<(), StoreError> {
        let alias = alias.trim().to_ascii_lowercase();
        let mut tx = self.directory_write().await?;
        let done = sqlx::query("DELETE FROM domain_aliases WHERE alias = $1").bind(&alias).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("domain alias {alias:?} not found")));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- users ---------------------------------------------------------------------

    /// Adds a user to `new.domain` (a domain name or alias): HA1s for MD5 and SHA-256
    /// under its login (and extension), argon2 hashes of the password and PIN.
    pub async fn add_user(&self, new: &NewUser) -> Result<User, StoreError> {
        let login = valid_login(&new.login, "login")?;
        let ext = opt_valid(new.ext.as_deref(), valid_ext)?;
        let did = opt_valid(new.did.as_deref(), |n| valid_number(n, "number"))?;
        let cell = opt_valid(new.cell_phone.as_deref(), |n| valid_number(n, "cell phone"))?;
        let home = opt_valid(new.home_phone.as_deref(), |n| valid_number(n, "home phone"))?;
        let email = opt_valid(new.email.as_deref(), valid_email)?;
        let display_name = opt_valid(new.display_name.as_deref(), |s| valid_name(s, "display name"))?;
        let first_name = opt_valid(new.first_name.as_deref(), |s| valid_name(s, "first name"))?;
        let last_name = opt_valid(new.last_name.as_deref(), |s| valid_name(s, "last name"))?;
        valid_password(&new.password)?;
        let pin = opt_valid(new.pin.as_deref(), valid_pin)?;
        let domain = self
            .domain_by_name(&new.domain)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("domain {:?} not found", new.domain.trim())))?;
        // The slow hashes before the transaction: it holds the directory's write lock.
        let password_hash = hash_secret(new.password.clone()).await?;
        let pin_hash = match pin {
            Some(p) => Some(hash_secret(p).await?),
            None => None,
        };

        let mut tx = self.directory_write().await?;
        ensure_user_keys_free(&mut tx, domain.id, None, &login, ext.as_deref()).await?;
        let id = next_id(&mut tx).await?;
        sqlx::query(
            "INSERT INTO users (id, domain_id, login, display_name, first_name, last_name, ext, did, cell_phone, \
                 home_phone, email, role, enabled, password_hash, pin_hash, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $14, $15)",
        )
        .bind(id)
        .bind(domain.id)
        .bind(&login)
        .bind(&display_name)
        .bind(&first_name)
        .bind(&last_name)
        .bind(&ext)
        .bind(&did)
        .bind(&cell)
        .bind(&home)
        .bind(&email)
        .bind(new.role.as_str())
        .bind(&password_hash)
        .bind(&pin_hash)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        write_sip_credentials(&mut tx, id, &login, ext.as_deref(), &domain.realm, &new.password).await?;
        tx.commit().await?;
        Ok(User {
            id,
            domain_id: domain.id,
            login,
            display_name,
            first_name,
            last_name,
            ext,
            did,
            cell_phone: cell,
            home_phone: home,
            email,
            role: new.role,
            enabled: true,
            ..Default::default()
        })
    }

    /// Users of one domain (or of all), by domain and login.
    pub async fn list_users(&self, domain: Option<DomainId>) -> Result<Vec<User>, StoreError> {
        let rows = match domain {
            Some(d) => {
                sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE domain_id = $1 ORDER BY login"))
                    .bind(d)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY domain_id, login")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(user_from_row).collect()
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_login(&self, domain_id: DomainId, login: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE domain_id = $1 AND login = $2"))
            .bind(domain_id)
            .bind(login)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Applies `patch`. A new password rewrites every HA1 of the user; a new (or
    /// cleared) extension without a password drops the extension's HA1s, since the
    /// plaintext to compute new ones is not kept.
    pub async fn update_user(&self, id: UserId, patch: &UserPatch) -> Result<User, StoreError> {
        let text = |v: &Option<String>, check: &dyn Fn(&str) -> Result<String, StoreError>| -> Result<Option<Option<String>>, StoreError> {
            match v.as_deref().map(str::trim) {
                None => Ok(None),
                Some("") => Ok(Some(None)),
                Some(s) => Ok(Some(Some(check(s)?))),
            }
        };
        let display_name = text(&patch.display_name, &|s| valid_name(s, "display name"))?;
        let first_name = text(&patch.first_name, &|s| valid_name(s, "first name"))?;
        let last_name = text(&patch.last_name, &|s| valid_name(s, "last name"))?;
        let ext = text(&patch.ext, &valid_ext)?;
        let did = text(&patch.did, &|n| valid_number(n, "number"))?;
        let cell = text(&patch.cell_phone, &|n| valid_number(n, "cell phone"))?;
        let home = text(&patch.home_phone, &|n| valid_number(n, "home phone"))?;
        let email = text(&patch.email, &valid_email)?;
        let pin = text(&patch.pin, &valid_pin)?;
        if let Some(p) = &patch.password {
            valid_password(p)?;
        }
        let password_hash = match &patch.password {
            Some(p) => Some(hash_secret(p.clone()).await?),
            None => None,
        };
        let pin_hash = match pin {
            Some(Some(p)) => Some(Some(hash_secret(p).await?)),
            Some(None) => Some(None),
            None => None,
        };

        let mut tx = self.directory_write().await?;
        let current = select_user(&mut tx, id).await?.ok_or_else(|| user_not_found(id))?;
        if let Some(Some(new_ext)) = &ext {
            ensure_user_keys_free(&mut tx, current.domain_id, Some(id), &current.login, Some(new_ext)).await?;
        }
        let mut u = current.clone();
        let set = |field: &mut Option<String>, v: Option<Option<String>>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut u.display_name, display_name);
        set(&mut u.first_name, first_name);
        set(&mut u.last_name, last_name);
        set(&mut u.ext, ext);
        set(&mut u.did, did);
        set(&mut u.cell_phone, cell);
        set(&mut u.home_phone, home);
        set(&mut u.email, email);
        if let Some(r) = patch.role {
            u.role = r;
        }
        if let Some(e) = patch.enabled {
            u.enabled = e;
        }
        sqlx::query(
            "UPDATE users SET display_name = $1, first_name = $2, last_name = $3, ext = $4, did = $5, \
                 cell_phone = $6, home_phone = $7, email = $8, role = $9, enabled = $10 WHERE id = $11",
        )
        .bind(&u.display_name)
        .bind(&u.first_name)
        .bind(&u.last_name)
        .bind(&u.ext)
        .bind(&u.did)
        .bind(&u.cell_phone)
        .bind(&u.home_phone)
        .bind(&u.email)
        .bind(u.role.as_str())
        .bind(flag(u.enabled))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(hash) = &password_hash {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(id).execute(&mut *tx).await?;
        }
        if let Some(hash) = &pin_hash {
            sqlx::query("UPDATE users SET pin_hash = $1 WHERE id = $2").bind(hash).bind(id).execute(&mut *tx).await?;
        }
        if let Some(password) = &patch.password {
            let realm = realm_of(&mut tx, u.domain_id).await?;
            sqlx::query("DELETE FROM sip_credentials WHERE user_id = $1 AND device_jti IS NULL").bind(id).execute(&mut *tx).await?;
            write_sip_credentials(&mut tx, id, &u.login, u.ext.as_deref(), &realm, password).await?;
        } else if u.ext != current.ext {
            if let Some(old) = &current.ext {
                sqlx::query("DELETE FROM sip_credentials WHERE user_id = $1 AND username = $2 AND device_jti IS NULL")
                    .bind(id)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(u)
    }

    pub async fn set_user_password(&self, id: UserId, password: &str) -> Result<(), StoreError> {
        self.update_user(id, &UserPatch { password: Some(password.to_owned()), ..Default::default() }).await.map(drop)
    }

    /// Sets the PIN; an empty `pin` removes it.
    pub async fn set_user_pin(&self, id: UserId, pin: &str) -> Result<(), StoreError> {
        self.update_user(id, &UserPatch { pin: Some(pin.to_owned()), ..Default::default() }).await.map(drop)
    }

    pub async fn set_user_enabled(&self, id: UserId, enabled: bool) -> Result<(), StoreError> {
        self.update_user(id, &UserPatch { enabled: Some(enabled), ..Default::default() }).await.map(drop)
    }

    /// Deletes a user with its credentials (device ones too), bindings, call mode, push
    /// tokens, scheduled conferences and instant messages.
    pub async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        sqlx::query("DELETE FROM sip_credentials WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM bindings WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM call_modes WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM push_tokens WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM scheduled_conferences WHERE owner_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM messages WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(user_not_found(id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// The user, if `login` in the domain names an enabled user of an enabled domain
    /// whose password is `password`. Unknown logins cost the same argon2 check as
    /// known ones, so timing does not tell which logins exist.
    pub async fn verify_user_password(&self, domain_id: DomainId, login: &str, password: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users \
             WHERE domain_id = $1 AND login = $2 AND enabled = 1 \
               AND domain_id IN (SELECT id FROM domains WHERE enabled = 1)"
        ))
        .bind(domain_id)
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        let hash: Option<String> = match &row {
            Some(r) => r.try_get("password_hash")?,
            None => None,
        };
        if verify_secret(password.to_owned(), hash).await? {
            row.as_ref().map(user_from_row).transpose()
        } else {
            Ok(None)
        }
    }

    /// True if the user has a PIN and it is `pin`.
    pub async fn verify_user_pin(&self, user_id: UserId, pin: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT pin_hash FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.pool).await?;
        let hash: Option<String> = match &row {
            Some(r) => r.try_get("pin_hash")?,
            None => None,
        };
        verify_secret(pin.to_owned(), hash).await
    }

    /// Which secrets a user has, for `show` ("set"/"not set"; never the values).
    pub async fn user_secrets(&self, id: UserId) -> Result<UserSecrets, StoreError> {
        let row = sqlx::query(
            "SELECT password_hash IS NOT NULL AS pw, pin_hash IS NOT NULL AS pin, \
                 (SELECT COUNT(*) FROM sip_credentials WHERE user_id = $1 AND device_jti IS NULL) AS creds, \
                 (SELECT COUNT(*) FROM sip_credentials WHERE user_id = $1 AND device_jti IS NOT NULL) AS devices \
             FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| user_not_found(id))?;
        let b = |name: &str| -> Result<bool, StoreError> {
            // A boolean expression is INTEGER in SQLite and BOOLEAN in PostgreSQL.
            Ok(match row.try_get::<bool, _>(name) {
                Ok(b) => b,
                Err(_) => row.try_get::<i64, _>(name)? != 0,
            })
        };
        Ok(UserSecrets {
            password: b("pw")?,
            pin: b("pin")?,
            sip_credentials: from_db("sip credentials", row.try_get::<i64, _>("creds")?)?,
            device_credentials: from_db("device credentials", row.try_get::<i64, _>("devices")?)?,
        })
    }

    // ---- device credentials (softPhonePwd) -----------------------------------------

    /// Adds HA1s (MD5, SHA-256) of `password` under digest `username` for the user,
    /// tagged with the API login `jti` that revokes them.
    pub async fn add_device_credential(&self, user_id: UserId, username: &str, password: &str, jti: &str) -> Result<(), StoreError> {
        let username = valid_login(username, "device username")?;
        let mut tx = self.directory_write().await?;
        let user = select_user(&mut tx, user_id).await?.ok_or_else(|| user_not_found(user_id))?;
        let realm = realm_of(&mut tx, user.domain_id).await?;
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            sqlx::query("INSERT INTO sip_credentials (user_id, username, algorithm, ha1, device_jti) VALUES ($1, $2, $3, $4, $5)")
                .bind(user_id)
                .bind(&username)
                .bind(alg.as_str())
                .bind(digest::ha1(alg, &username, &realm, password))
                .bind(jti)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the device credentials issued with token `jti`; returns how many rows.
    pub async fn delete_device_credentials(&self, jti: &str) -> Result<u64, StoreError> {
        let mut tx = self.directory_write().await?;
        let done = sqlx::query("DELETE FROM sip_credentials WHERE device_jti = $1").bind(jti).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    // ---- apps ----------------------------------------------------------------------

    pub async fn add_app(&self, client_id: &str, secret: &str, name: Option<&str>, domain: Option<DomainId>) -> Result<App, StoreError> {
        let client_id = valid_login(client_id, "client id")?;
        valid_password(secret).map_err(|_| StoreError::Invalid("the app secret must not be empty".into()))?;
        let name = opt_valid(name, |s| valid_name(s, "app name"))?;
        let hash = hash_secret(secret.to_owned()).await?;
        let mut tx = self.directory_write().await?;
        if let Some(d) = domain {
            realm_of(&mut tx, d).await?;
        }
        if sqlx::query("SELECT id FROM apps WHERE client_id = $1").bind(&client_id).fetch_optional(&mut *tx).await?.is_some() {
            return Err(StoreError::AlreadyExists(format!("app {client_id:?} already exists")));
        }
        let id = next_id(&mut tx).await?;
        let created = now_ms();
        sqlx::query("INSERT INTO apps (id, client_id, secret_hash, name, domain_id, enabled, created_ms) VALUES ($1, $2, $3, $4, $5, 1, $6)")
            .bind(id)
            .bind(&client_id)
            .bind(&hash)
            .bind(&name)
            .bind(domain)
            .bind(created)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(App { id, client_id, name, domain_id: domain, enabled: true, created_ms: from_db("apps.created_ms", created)?, rest_url: None, rest_methods: None })
    }

    /// Apps bound to `domain` (and, with `None`, every app), by client id.
    pub async fn list_apps(&self, domain: Option<DomainId>) -> Result<Vec<App>, StoreError> {
        let rows = match domain {
            Some(d) => {
                sqlx::query(&format!("SELECT {APP_COLUMNS} FROM apps WHERE domain_id = $1 ORDER BY client_id"))
                    .bind(d)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(&format!("SELECT {APP_COLUMNS} FROM apps ORDER BY client_id")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(app_from_row).collect()
    }

    pub async fn app(&self, client_id: &str) -> Result<Option<App>, StoreError> {
        let row = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM apps WHERE client_id = $1")).bind(client_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(app_from_row).transpose()
    }

    /// The app, if it exists, is enabled and `secret` is its secret.
    pub async fn verify_app(&self, client_id: &str, secret: &str) -> Result<Option<App>, StoreError> {
        let row = sqlx::query(&format!("SELECT {APP_COLUMNS}, secret_hash FROM apps WHERE client_id = $1 AND enabled = 1"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        let hash: Option<String> = match &row {
            Some(r) => r.try_get("secret_hash")?,
            None => None,
        };
        if verify_secret(secret.to_owned(), hash).await? {
            row.as_ref().map(app_from_row).transpose()
        } else {
            Ok(None)
        }
    }

    pub async fn set_app_secret(&self, client_id: &str, secret: &str) -> Result<(), StoreError> {
        valid_password(secret).map_err(|_| StoreError::Invalid("the app secret must not be empty".into()))?;
        let hash = hash_secret(secret.to_owned()).await?;
        self.app_update(client_id, "UPDATE apps SET secret_hash = $1 WHERE client_id = $2", hash).await
    }

    pub async fn set_app_enabled(&self, client_id: &str, enabled: bool) -> Result<(), StoreError> {
        self.app_update(client_id, "UPDATE apps SET enabled = $1 WHERE client_id = $2", flag(enabled)).await
    }

    /// Sets (or with None clears) the app's WCS REST URL: `http://` or `https://`,
    /// without a trailing slash (hook names are appended after one).
    pub async fn set_app_rest_url(&self, client_id: &str, url: Option<&str>) -> Result<(), StoreError> {
        let url = url.map(valid_rest_url).transpose()?;
        self.app_update(client_id, "UPDATE apps SET rest_url = $1 WHERE client_id = $2", url).await
    }

    /// Sets which hooks the app's backend gets (see [`valid_rest_methods`]); None = every one.
    pub async fn set_app_rest_methods(&self, client_id: &str, methods: Option<&[String]>) -> Result<(), StoreError> {
        let joined = match methods.map(valid_rest_methods).transpose()?.flatten() {
            Some(m) => Some(m.join(",")),
            None => None,
        };
        self.app_update(client_id, "UPDATE apps SET rest_methods = $1 WHERE client_id = $2", joined).await
    }

    async fn app_update<T>(&self, client_id: &str, sql: &str, value: T) -> Result<(), StoreError>
    where
        T: for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + 'static,
    {
        let mut tx = self.directory_write().await?;
        let done = sqlx::query(sql).bind(value).bind(client_id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(app_not_found(client_id));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_app(&self, client_id: &str) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        let done = sqlx::query("DELETE FROM apps WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(app_not_found(client_id));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- API keys ------------------------------------------------------------------

    /// Creates a key; returns its description and the key itself, which is not kept
    /// (show it once).
    pub async fn add_api_key(&self, name: &str, domain: Option<DomainId>, role: Role) -> Result<(ApiKey, String), StoreError> {
        let name = valid_login(name, "key name")?;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let key = format!("{API_KEY_PREFIX}{}", hex::encode(bytes));
        let prefix = key[..API_KEY_SHOWN].to_owned();
        let mut tx = self.directory_write().await?;
        if let Some(d) = domain {
            realm_of(&mut tx, d).await?;
        }
        if sqlx::query("SELECT id FROM api_keys WHERE name = $1").bind(&name).fetch_optional(&mut *tx).await?.is_some() {
            return Err(StoreError::AlreadyExists(format!("API key {name:?} already exists")));
        }
        let id = next_id(&mut tx).await?;
        let created = now_ms();
        sqlx::query("INSERT INTO api_keys (id, name, domain_id, role, prefix, key_hash, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(&name)
            .bind(domain)
            .bind(role.as_str())
            .bind(&prefix)
            .bind(key_hash(&key))
            .bind(created)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((ApiKey { id, name, domain_id: domain, role, prefix, created_ms: from_db("api_keys.created_ms", created)? }, key))
    }

    /// The key's description if `key` is a current API key.
    pub async fn verify_api_key(&self, key: &str) -> Result<Option<ApiKey>, StoreError> {
        if !key.starts_with(API_KEY_PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"))
            .bind(key_hash(key))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Every API key, by name.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn delete_api_key(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        let done = sqlx::query("DELETE FROM api_keys WHERE name = $1").bind(name).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("API key {name:?} not found")));
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- bindings (not part of the directory version) ------------------------------

    /// Writes (or rewrites) a binding, keyed by user and contact.
    pub async fn save_binding(&self, b: &Binding) -> Result<(), StoreError> {
        save_binding(&self.pool, b).await
    }

    pub async fn delete_binding(&self, user_id: UserId, contact: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM bindings WHERE user_id = $1 AND contact = $2").bind(user_id).bind(contact).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn delete_bindings_of(&self, user_id: UserId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM bindings WHERE user_id = $1").bind(user_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Every stored binding, expired ones included (the registrar drops those).
    pub async fn load_bindings(&self) -> Result<Vec<Binding>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, domain_id, contact, q, expires_at_ms, call_id, cseq, source, transport, user_agent \
             FROM bindings ORDER BY user_id, contact",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let source: String = row.try_get("source")?;
                Ok(Binding {
                    user_id: row.try_get("user_id")?,
                    domain_id: row.try_get("domain_id")?,
                    contact: row.try_get("contact")?,
                    q: from_db("bindings.q", row.try_get("q")?)?,
                    expires_at_ms: from_db("bindings.expires_at_ms", row.try_get("expires_at_ms")?)?,
                    call_id: row.try_get("call_id")?,
                    cseq: from_db("bindings.cseq", row.try_get("cseq")?)?,
                    source: source.parse().map_err(|_| StoreError::Corrupt(format!("bindings.source = {source:?}")))?,
                    transport: row.try_get("transport")?,
                    user_agent: row.try_get("user_agent")?,
                })
            })
            .collect()
    }

    // ---- signing keys and revoked tokens -------------------------------------------

    pub async fn add_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (kid, pkcs8_hex, created_ms) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(hex::encode(&key.pkcs8_der))
            .bind(to_db("created_ms", key.created_ms)?)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, || format!("signing key {:?} already exists", key.kid)))?;
        Ok(())
    }

    /// Every signing key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let rows = sqlx::query("SELECT kid, pkcs8_hex, created_ms FROM signing_keys ORDER BY created_ms, kid").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let der: String = row.try_get("pkcs8_hex")?;
                Ok(SigningKey {
                    kid: row.try_get("kid")?,
                    pkcs8_der: hex::decode(&der).map_err(|_| StoreError::Corrupt("signing_keys.pkcs8_hex".into()))?,
                    created_ms: from_db("signing_keys.created_ms", row.try_get("created_ms")?)?,
                })
            })
            .collect()
    }

    pub async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1").bind(kid).execute(&self.pool).await?;
        Ok(())
    }

    /// Remembers that token `jti` is revoked until it expires at `expires_ms`.
    pub async fn revoke_token(&self, jti: &str, expires_ms: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_ms) VALUES ($1, $2) \
             ON CONFLICT (jti) DO UPDATE SET expires_ms = excluded.expires_ms",
        )
        .bind(jti)
        .bind(to_db("expires_ms", expires_ms)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The revoked tokens that have not expired by `now_ms`.
    pub async fn revoked_tokens(&self, now_ms: u64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT jti FROM revoked_tokens WHERE expires_ms > $1 ORDER BY jti")
            .bind(to_db("now_ms", now_ms)?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Forgets revocations of tokens expired by `now_ms`; returns how many.
    pub async fn purge_revoked(&self, now_ms: u64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_ms <= $1").bind(to_db("now_ms", now_ms)?).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Starts a directory write: a transaction whose first statement bumps the version
    /// (see the module docs for why first).
    pub(crate) async fn directory_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE directory_meta SET version = version + 1 WHERE id = 1").execute(&mut *tx).await?;
        Ok(tx)
    }
}

/// Which secrets a user has (never their values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UserSecrets {
    pub password: bool,
    pub pin: bool,
    /// HA1 rows of the user's own password (2 per digest username).
    pub sip_credentials: u32,
    /// HA1 rows of device passwords issued at API logins.
    pub device_credentials: u32,
}

pub(crate) async fn save_binding<'e>(ex: impl Executor<'e, Database = Any>, b: &Binding) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO bindings (user_id, domain_id, contact, q, expires_at_ms, call_id, cseq, source, transport, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (user_id, contact) DO UPDATE SET domain_id = excluded.domain_id, q = excluded.q, \
             expires_at_ms = excluded.expires_at_ms, call_id = excluded.call_id, cseq = excluded.cseq, \
             source = excluded.source, transport = excluded.transport, user_agent = excluded.user_agent",
    )
    .bind(b.user_id)
    .bind(b.domain_id)
    .bind(&b.contact)
    .bind(i64::from(b.q))
    .bind(to_db("expires_at_ms", b.expires_at_ms)?)
    .bind(&b.call_id)
    .bind(i64::from(b.cseq))
    .bind(b.source.to_string())
    .bind(&b.transport)
    .bind(&b.user_agent)
    .execute(ex)
    .await?;
    Ok(())
}

pub(crate) async fn delete_binding<'e>(ex: impl Executor<'e, Database = Any>, user_id: UserId, contact: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM bindings WHERE user_id = $1 AND contact = $2").bind(user_id).bind(contact).execute(ex).await?;
    Ok(())
}

pub(crate) async fn next_id(tx: &mut Transaction<'static, Any>) -> Result<i64, StoreError> {
    let row = sqlx::query("UPDATE directory_meta SET last_id = last_id + 1 WHERE id = 1 RETURNING last_id").fetch_one(&mut **tx).await?;
    Ok(row.try_get(0)?)
}

async fn select_domains(conn: &mut sqlx::AnyConnection, id: Option<DomainId>) -> Result<Vec<Domain>, StoreError> {
    let rows = match id {
        Some(id) => sqlx::query("SELECT id, name, realm, enabled FROM domains WHERE id = $1").bind(id).fetch_all(&mut *conn).await?,
        None => sqlx::query("SELECT id, name, realm, enabled FROM domains ORDER BY id").fetch_all(&mut *conn).await?,
    };
    let mut domains = rows
        .iter()
        .map(|row| {
            Ok(Domain {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                aliases: vec![],
                realm: row.try_get("realm")?,
                enabled: row.try_get::<i64, _>("enabled")? != 0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let aliases = sqlx::query("SELECT alias, domain_id FROM domain_aliases ORDER BY alias").fetch_all(&mut *conn).await?;
    for row in &aliases {
        let domain_id: i64 = row.try_get("domain_id")?;
        if let Some(d) = domains.iter_mut().find(|d| d.id == domain_id) {
            d.aliases.push(row.try_get("alias")?);
        }
    }
    Ok(domains)
}

pub(crate) async fn select_user(tx: &mut Transaction<'static, Any>, id: UserId) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(id).fetch_optional(&mut **tx).await?;
    row.as_ref().map(user_from_row).transpose()
}

async fn realm_of(tx: &mut Transaction<'static, Any>, domain: DomainId) -> Result<String, StoreError> {
    let row = sqlx::query("SELECT realm FROM domains WHERE id = $1").bind(domain).fetch_optional(&mut **tx).await?;
    match row {
        Some(r) => Ok(r.try_get(0)?),
        None => Err(domain_not_found(domain)),
    }
}

/// A domain name or alias must not be taken by any domain, as name or alias.
async fn ensure_host_free(tx: &mut Transaction<'static, Any>, host: &str) -> Result<(), StoreError> {
    let taken = sqlx::query("SELECT name FROM domains WHERE name = $1 UNION SELECT alias FROM domain_aliases WHERE alias = $1")
        .bind(host)
        .fetch_optional(&mut **tx)
        .await?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists(format!("domain {host:?} already exists")));
    }
    Ok(())
}

/// Logins and extensions are both digest usernames and routing keys: neither may
/// repeat another user's login or extension in the domain.
async fn ensure_user_keys_free(
    tx: &mut Transaction<'static, Any>,
    domain: DomainId,
    except: Option<UserId>,
    login: &str,
    ext: Option<&str>,
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT id, login, ext FROM users WHERE domain_id = $1 AND (login = $2 OR ext = $2 OR login = $3 OR ext = $3)")
        .bind(domain)
        .bind(login)
        .bind(ext.unwrap_or(login))
        .fetch_all(&mut **tx)
        .await?;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        if Some(id) == except {
            continue;
        }
        let other: String = row.try_get("login")?;
        let other_ext: Option<String> = row.try_get("ext")?;
        // On an update the login is not changing: only the extension can clash.
        if except.is_none() && (other == login || other_ext.as_deref() == Some(login)) {
            return Err(StoreError::AlreadyExists(format!("login {login:?} is already taken in this domain (by user {other:?})")));
        }
        if let Some(ext) = ext {
            if other == ext || other_ext.as_deref() == Some(ext) {
                return Err(StoreError::AlreadyExists(format!(
                    "extension {ext:?} is already taken in this domain (by user {other:?})"
                )));
            }
        }
    }
    Ok(())
}

async fn write_sip_credentials(
    tx: &mut Transaction<'static, Any>,
    user_id: UserId,
    login: &str,
    ext: Option<&str>,
    realm: &str,
    password: &str,
) -> Result<(), StoreError> {
    for username in std::iter::once(login).chain(ext) {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            sqlx::query("INSERT INTO sip_credentials (user_id, username, algorithm, ha1, device_jti) VALUES ($1, $2, $3, $4, NULL)")
                .bind(user_id)
                .bind(username)
                .bind(alg.as_str())
                .bind(digest::ha1(alg, username, realm, password))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        domain_id: row.try_get("domain_id")?,
        login: row.try_get("login")?,
        display_name: row.try_get("display_name")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        ext: row.try_get("ext")?,
        did: row.try_get("did")?,
        cell_phone: row.try_get("cell_phone")?,
        home_phone: row.try_get("home_phone")?,
        email: row.try_get("email")?,
        role: parse_role(&role)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        // Filled by load_directory; single-user reads leave them unset.
        call_mode: None,
        has_push_tokens: false,
    })
}

/// A hook base URL: absolute http(s), no query or fragment, trailing `/` dropped.
pub fn valid_rest_url(url: &str) -> Result<String, StoreError> {
    // Printable ASCII only (an IDN host goes in punycode), so the OpenAPI
    // pattern and this check agree on every string.
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    let url_char = |c: char| matches!(c, '!'..='~') && c != '?' && c != '#';
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && r.chars().all(url_char) && url.len() <= 2000 => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => Err(StoreError::Invalid(format!(
            "the REST URL must be an http:// or https:// URL in printable ASCII, with a host and without query or fragment, not {url:?}"
        ))),
    }
}

/// Most names an app's hook list holds (WCS has fewer than 40 methods and events).
pub const REST_METHODS_MAX: usize = 64;

/// An app's hook list: method and event names (`connect`, `CallStatusEvent`: a letter,
/// then letters and digits, at most 64), duplicates dropped. `*` among them means every
/// method: `Ok(None)` (the other names must still be names).
pub fn valid_rest_methods(methods: &[String]) -> Result<Option<Vec<String>>, StoreError> {
    if methods.len() > REST_METHODS_MAX {
        return Err(StoreError::Invalid(format!("at most {REST_METHODS_MAX} REST methods, not {}", methods.len())));
    }
    let mut out: Vec<String> = Vec::new();
    let mut every = false;
    for m in methods {
        if m == "*" {
            every = true;
            continue;
        }
        let name = m.len() <= 64 && m.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && m.chars().all(|c| c.is_ascii_alphanumeric());
        if !name {
            return Err(StoreError::Invalid(format!("REST method {m:?}: a method or event name (letters and digits), or * for all")));
        }
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    Ok((!every).then_some(out))
}

fn app_from_row(row: &AnyRow) -> Result<App, StoreError> {
    Ok(App {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_ms: from_db("apps.created_ms", row.try_get("created_ms")?)?,
        rest_url: row.try_get("rest_url")?,
        rest_methods: row
            .try_get::<Option<String>, _>("rest_methods")?
            .map(|s| s.split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect()),
    })
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        role: parse_role(&role)?,
        prefix: row.try_get("prefix")?,
        created_ms: from_db("api_keys.created_ms", row.try_get("created_ms")?)?,
    })
}

fn parse_role(s: &str) -> Result<Role, StoreError> {
    match s {
        "admin" => Ok(Role::Admin),
        "user" => Ok(Role::User),
        other => Err(StoreError::Corrupt(format!("role = {other:?}"))),
    }
}

pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn domain_not_found(id: DomainId) -> StoreError {
    StoreError::NotFound(format!("domain {id} not found"))
}

pub(crate) fn user_not_found(id: UserId) -> StoreError {
    StoreError::NotFound(format!("user {id} not found"))
}

fn app_not_found(client_id: &str) -> StoreError {
    StoreError::NotFound(format!("app {client_id:?} not found"))
}

fn unique_violation(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists(what()),
        _ => StoreError::Database(e),
    }
}

fn key_hash(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.as_bytes()))
}

// ---- argon2 -------------------------------------------------------------------------

/// argon2id, m = 19 MiB, t = 2, p = 1: see the module docs.
fn argon2() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

async fn hash_secret(secret: String) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        argon2().hash_password(secret.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| StoreError::Invalid(format!("cannot hash secret: {e}")))
    })
    .await
    .map_err(|e| StoreError::Invalid(format!("hashing task failed: {e}")))?
}

/// Checks `secret` against a PHC hash. With no hash it still runs one argon2 check
/// (against a fixed hash) and answers false, so a missing user costs the same time.
async fn verify_secret(secret: String, hash: Option<String>) -> Result<bool, StoreError> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let salt = SaltString::encode_b64(b"switchboard-none").expect("salt");
            argon2().hash_password(b"no such secret", &salt).expect("hash").to_string()
        });
        let (phc, real) = match &hash {
            Some(h) => (h.as_str(), true),
            None => (dummy.as_str(), false),
        };
        let ok = match PasswordHash::new(phc) {
            Ok(parsed) => argon2().verify_password(secret.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        };
        ok && real
    })
    .await
    .map_err(|e| StoreError::Invalid(format!("hashing task failed: {e}")))
}

// ---- validation ---------------------------------------------------------------------

fn opt_valid(v: Option<&str>, check: impl Fn(&str) -> Result<String, StoreError>) -> Result<Option<String>, StoreError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => check(s).map(Some),
    }
}

/// A hostname (RFC 1123 labels) or an IP literal, lowercased.
pub fn valid_host(name: &str, what: &str) -> Result<String, StoreError> {
    let name = name.trim().to_ascii_lowercase();
    let bad = || StoreError::Invalid(format!("invalid {what} {name:?}: expected a hostname such as alpha.example.com"));
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(name);
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().map(|_| name.clone()).map_err(|_| bad());
    }
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(name)
}

fn valid_realm(realm: &str) -> Result<String, StoreError> {
    let realm = realm.trim();
    if realm.is_empty() || realm.len() > 128 || realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(StoreError::Invalid(format!("invalid realm {realm:?}: expected printable text without quotes")));
    }
    Ok(realm.to_owned())
}

/// `[A-Za-z0-9._-]+`, at most 64 characters.
pub fn valid_login(s: &str, what: &str) -> Result<String, StoreError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(StoreError::Invalid(format!("invalid {what} {s:?}: use letters, digits, '.', '_' and '-' (at most 64)")));
    }
    Ok(s.to_owned())
}

fn valid_ext(s: &str) -> Result<String, StoreError> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::Invalid(format!("invalid extension {s:?}: expected 1 to 16 digits")));
    }
    Ok(s.to_owned())
}

/// `+` and digits; the punctuation people write numbers with is dropped.
fn valid_number(s: &str, what: &str) -> Result<String, StoreError> {
    let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::Invalid(format!("invalid {what} {s:?}: expected digits, optionally after '+'")));
    }
    Ok(compact)
}

fn valid_email(s: &str) -> Result<String, StoreError> {
    let ok = s.len() <= 254
        && s.split_once('@').is_some_and(|(local, host)| !local.is_empty() && !host.is_empty())
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(StoreError::Invalid(format!("invalid email {s:?}")));
    }
    Ok(s.to_owned())
}

fn valid_name(s: &str, what: &str) -> Result<String, StoreError> {
    if s.len() > 128 || s.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!("invalid {what}: at most 128 printable characters")));
    }
    Ok(s.to_owned())
}

fn valid_password(s: &str) -> Result<(), StoreError> {
    if s.is_empty() {
        return Err(StoreError::Invalid("the password must not be empty".into()));
    }
    if s.len() > 256 {
        return Err(StoreError::Invalid("the password is too long (at most 256 bytes)".into()));
    }
    Ok(())
}

fn valid_pin(s: &str) -> Result<String, StoreError> {
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::Invalid("invalid PIN: expected 1 to 32 digits".into()));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_accepts_and_refuses() {
        assert_eq!(valid_host("Alpha.Test", "d").unwrap(), "alpha.test");
        assert_eq!(valid_host("127.0.0.1", "d").unwrap(), "127.0.0.1");
        assert!(valid_host("bad_host", "d").is_err());
        assert!(valid_host("-a.test", "d").is_err());
        assert!(valid_host("a..test", "d").is_err());
        assert!(valid_login("alice.b-c_d", "login").is_ok());
        assert!(valid_login("alice smith", "login").is_err());
        assert!(valid_ext("3044").is_ok());
        assert!(valid_ext("30a4").is_err());
        assert_eq!(valid_number("+1 (555) 010-0", "n").unwrap(), "+15550100");
        assert!(valid_number("call me", "n").is_err());
        assert!(valid_email("a@b.c").is_ok());
        assert!(valid_email("ab.c").is_err());
        assert!(valid_pin("1234").is_ok());
        assert!(valid_pin("12a4").is_err());
        assert_eq!(valid_rest_url("https://hooks.example.com/wcs/").unwrap(), "https://hooks.example.com/wcs");
        assert!(valid_rest_url("http://127.0.0.1:9000").is_ok());
        // Whatever the OpenAPI pattern refuses, this refuses too: non-ASCII
        // (schemathesis found U+0085, whitespace to Rust, not to the pattern).
        for bad in ["https://\u{f3}\u{85}", "https:///x", "https://a?b=1", "https://a#f", "https://a b", "ftp://a", "https://"] {
            assert!(valid_rest_url(bad).is_err(), "{bad:?}");
        }
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(valid_rest_methods(&names(&["connect", "call", "connect", "CallStatusEvent"])).unwrap(), Some(names(&["connect", "call", "CallStatusEvent"])));
        assert_eq!(valid_rest_methods(&names(&["call", "*"])).unwrap(), None, "* is every method");
        assert_eq!(valid_rest_methods(&[]).unwrap(), Some(vec![]), "none");
        for bad in ["", "1call", "call,hangup", "on call", "caf\u{e9}", &"a".repeat(65)] {
            assert!(valid_rest_methods(&names(&[bad])).is_err(), "{bad:?}");
        }
        assert!(valid_rest_methods(&vec!["call".to_owned(); REST_METHODS_MAX + 1]).is_err());
    }
}
