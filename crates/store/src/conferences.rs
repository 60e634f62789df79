//! Scheduled conferences (issue 11, reference 001 §7): rooms users book for a time
//! window, entered by keying an access id at the conference number. The engine's model
//! is [`engine::schedule::ScheduledConference`]; this module keeps it.
//!
//! They are part of the directory: the engine finds a conference by (domain, access id)
//! in the [`engine::users::DirectorySnapshot`] without waiting on the database, so
//! every write here bumps the directory version as its first statement (see
//! [`crate::directory`]) and [`Store::load_directory`] attaches them all. Ids come from
//! the directory's id counter, unique across its tables and never reused.
//!
//! Validation happens here, so every way in (MX REST, a CLI) refuses the same things
//! with the same text: see [`ConferenceInput`].

use crate::directory::{flag, next_id, now_ms, select_user, user_not_found};
use crate::error::StoreError;
use crate::store::{from_db, Store};
use engine::schedule::{Recurrence, ScheduledConference};
use engine::users::{DomainId, UserId};
use rand::Rng;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// The largest access id: 11 digits, keyed on a phone.
pub const MAX_ACCESS_ID: i64 = 99_999_999_999;
/// The longest conference in minutes (a day).
pub const MAX_DURATION_MIN: i64 = 1440;
/// The longest name, in characters.
pub const MAX_NAME: usize = 200;
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 4000;

/// What a create or an update gives, unchecked (as a client sent it). An update
/// replaces every field (MX's `PUT` is a full replacement).
#[derive(Debug, Clone, Default)]
pub struct ConferenceInput {
    /// The owner; the conference belongs to the owner's domain.
    pub owner_id: UserId,
    /// Non-empty after trimming, at most [`MAX_NAME`] characters.
    pub name: String,
    /// Empty = none.
    pub description: Option<String>,
    /// 1..=[`MAX_ACCESS_ID`], unique in the domain. 0 = a random unused 8-digit number
    /// on create, the current one on update.
    pub access_id: i64,
    /// MX `type` ([`Recurrence::parse`]); empty = `Once`.
    pub kind: String,
    /// Unix seconds, not negative.
    pub start_s: i64,
    /// 1..=[`MAX_DURATION_MIN`] minutes; 0 is allowed for `Permanent`.
    pub duration_min: i64,
    pub wait_for_owner: bool,
    pub del_on_owner_leave: bool,
    /// Empty = `None`.
    pub ws: String,
    /// Empty = `Undefined`.
    pub ws_type: String,
}

/// A [`ConferenceInput`] that passed validation.
struct Valid {
    name: String,
    description: Option<String>,
    access_id: Option<i64>,
    kind: Recurrence,
    start_s: i64,
    duration_min: i64,
    ws: String,
    ws_type: String,
}

const COLUMNS: &str = "id, domain_id, owner_id, name, description, access_id, kind, start_s, duration_min, \
     wait_for_owner, del_on_owner_leave, ws, ws_type, created_ms, updated_ms";

impl Store {
    /// Books a conference for `c.owner_id`, in the owner's domain.
    pub async fn create_conference(&self, c: &ConferenceInput) -> Result<ScheduledConference, StoreError> {
        let v = validate(c)?;
        let mut tx = self.directory_write().await?;
        let owner = select_user(&mut tx, c.owner_id).await?.ok_or_else(|| user_not_found(c.owner_id))?;
        let access_id = match v.access_id {
            Some(a) => {
                ensure_access_free(&mut tx, owner.domain_id, a, None).await?;
                a
            }
            None => random_access_id(&mut tx, owner.domain_id).await?,
        };
        let id = next_id(&mut tx).await?;
        let now = now_ms();
        sqlx::query(&format!("INSERT INTO scheduled_conferences ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"))
            .bind(id)
            .bind(owner.domain_id)
            .bind(owner.id)
            .bind(&v.name)
            .bind(&v.description)
            .bind(access_id)
            .bind(v.kind.as_str())
            .bind(v.start_s)
            .bind(v.duration_min)
            .bind(flag(c.wait_for_owner))
            .bind(flag(c.del_on_owner_leave))
            .bind(&v.ws)
            .bind(&v.ws_type)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let conf = select_one(&mut tx, id).await?.ok_or_else(|| StoreError::Corrupt("conference vanished".into()))?;
        tx.commit().await?;
        Ok(conf)
    }

    /// Replaces every field of `c.owner_id`'s conference `id`. Another owner's
    /// conference is as missing as one that never was ([`StoreError::NotFound`]).
    pub async fn update_conference(&self, id: i64, c: &ConferenceInput) -> Result<ScheduledConference, StoreError> {
        let v = validate(c)?;
        let mut tx = self.directory_write().await?;
        let current = select_one(&mut tx, id).await?.filter(|cur| cur.owner_id == c.owner_id).ok_or_else(|| conference_not_found(id))?;
        let access_id = match v.access_id {
            Some(a) => {
                ensure_access_free(&mut tx, current.domain_id, a, Some(id)).await?;
                a
            }
            None => i64::try_from(current.access_id).map_err(|_| StoreError::Corrupt(format!("access_id = {}", current.access_id)))?,
        };
        sqlx::query(
            "UPDATE scheduled_conferences SET name = $1, description = $2, access_id = $3, kind = $4, start_s = $5, \
                 duration_min = $6, wait_for_owner = $7, del_on_owner_leave = $8, ws = $9, ws_type = $10, updated_ms = $11 \
             WHERE id = $12",
        )
        .bind(&v.name)
        .bind(&v.description)
        .bind(access_id)
        .bind(v.kind.as_str())
        .bind(v.start_s)
        .bind(v.duration_min)
        .bind(flag(c.wait_for_owner))
        .bind(flag(c.del_on_owner_leave))
        .bind(&v.ws)
        .bind(&v.ws_type)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let conf = select_one(&mut tx, id).await?.ok_or_else(|| conference_not_found(id))?;
        tx.commit().await?;
        Ok(conf)
    }

    /// Deletes `owner_id`'s conference `id` ([`StoreError::NotFound`] otherwise).
    pub async fn delete_conference(&self, owner_id: UserId, id: i64) -> Result<(), StoreError> {
        let mut tx = self.directory_write().await?;
        let done = sqlx::query("DELETE FROM scheduled_conferences WHERE id = $1 AND owner_id = $2").bind(id).bind(owner_id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(conference_not_found(id));
        }
        tx.commit().await?;
        Ok(())
    }

    /// One user's conferences, oldest first.
    pub async fn conferences_of(&self, owner_id: UserId) -> Result<Vec<ScheduledConference>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM scheduled_conferences WHERE owner_id = $1 ORDER BY id"))
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The conference with this id, whoever owns it.
    pub async fn conference(&self, id: i64) -> Result<Option<ScheduledConference>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM scheduled_conferences WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }
}

/// Every conference, for the directory snapshot.
pub(crate) async fn select_all(tx: &mut Transaction<'static, Any>) -> Result<Vec<ScheduledConference>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM scheduled_conferences ORDER BY id")).fetch_all(&mut **tx).await?;
    rows.iter().map(from_row).collect()
}

async fn select_one(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Option<ScheduledConference>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM scheduled_conferences WHERE id = $1")).bind(id).fetch_optional(&mut **tx).await?;
    row.as_ref().map(from_row).transpose()
}

/// The access id must not be another conference's in the domain.
async fn ensure_access_free(tx: &mut Transaction<'static, Any>, domain: DomainId, access_id: i64, except: Option<i64>) -> Result<(), StoreError> {
    match access_holder(tx, domain, access_id).await? {
        Some(holder) if Some(holder) != except => {
            Err(StoreError::AlreadyExists(format!("accessId {access_id} is already used by another conference in this domain")))
        }
        _ => Ok(()),
    }
}

/// The conference of the domain with this access id.
async fn access_holder(tx: &mut Transaction<'static, Any>, domain: DomainId, access_id: i64) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT id FROM scheduled_conferences WHERE domain_id = $1 AND access_id = $2")
        .bind(domain)
        .bind(access_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?)
}

/// A random 8-digit access id no conference of the domain has. The transaction holds
/// the directory's write lock, so nobody takes it before the insert.
async fn random_access_id(tx: &mut Transaction<'static, Any>, domain: DomainId) -> Result<i64, StoreError> {
    for _ in 0..100 {
        let candidate = rand::thread_rng().gen_range(10_000_000..=99_999_999_i64);
        if access_holder(tx, domain, candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(StoreError::InUse("no free 8-digit accessId found in this domain: give one".into()))
}

fn conference_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("conference {id} not found"))
}

fn validate(c: &ConferenceInput) -> Result<Valid, StoreError> {
    let name = c.name.trim();
    if name.is_empty() {
        return Err(StoreError::Invalid("the conference name must not be empty".into()));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!("invalid conference name: at most {MAX_NAME} printable characters")));
    }
    let description = match c.description.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) if d.chars().count() > MAX_DESCRIPTION || d.chars().any(|ch| ch.is_control() && ch != '\n' && ch != '\t') => {
            return Err(StoreError::Invalid(format!("invalid description: at most {MAX_DESCRIPTION} characters, no control characters but newlines")));
        }
        Some(d) => Some(d.to_owned()),
    };
    let kind = match c.kind.trim() {
        "" => Recurrence::Once,
        k => Recurrence::parse(k).ok_or_else(|| {
            let all: Vec<&str> = Recurrence::ALL.iter().map(|r| r.as_str()).collect();
            StoreError::Invalid(format!("invalid type {k:?}: expected one of {}", all.join(", ")))
        })?,
    };
    let min = if kind == Recurrence::Permanent { 0 } else { 1 };
    if !(min..=MAX_DURATION_MIN).contains(&c.duration_min) {
        return Err(StoreError::Invalid(format!(
            "invalid duration {}: expected {min} to {MAX_DURATION_MIN} minutes{}",
            c.duration_min,
            if kind == Recurrence::Permanent { "" } else { " (0 only for a Permanent conference)" }
        )));
    }
    let access_id = match c.access_id {
        0 => None,
        a if (1..=MAX_ACCESS_ID).contains(&a) => Some(a),
        a => return Err(StoreError::Invalid(format!("invalid accessId {a}: expected 1 to {MAX_ACCESS_ID} (digits keyed on a phone)"))),
    };
    if c.start_s < 0 {
        return Err(StoreError::Invalid(format!("invalid startDate {}: expected Unix seconds", c.start_s)));
    }
    let tag = |v: &str, default: &str, what: &str| -> Result<String, StoreError> {
        match v.trim() {
            "" => Ok(default.to_owned()),
            t if t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic()) => Ok(t.to_owned()),
            t => Err(StoreError::Invalid(format!("invalid {what} {t:?}: at most 64 letters or digits"))),
        }
    };
    Ok(Valid {
        name: name.to_owned(),
        description,
        access_id,
        kind,
        start_s: c.start_s,
        duration_min: c.duration_min,
        ws: tag(&c.ws, "None", "ws")?,
        ws_type: tag(&c.ws_type, "Undefined", "wsType")?,
    })
}

fn from_row(row: &AnyRow) -> Result<ScheduledConference, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(ScheduledConference {
        id: row.try_get("id")?,
        domain_id: row.try_get("domain_id")?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        access_id: from_db("scheduled_conferences.access_id", row.try_get("access_id")?)?,
        kind: Recurrence::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("scheduled_conferences.kind = {kind:?}")))?,
        start_s: row.try_get("start_s")?,
        duration_min: from_db("scheduled_conferences.duration_min", row.try_get("duration_min")?)?,
        wait_for_owner: row.try_get::<i64, _>("wait_for_owner")? != 0,
        del_on_owner_leave: row.try_get::<i64, _>("del_on_owner_leave")? != 0,
        ws: row.try_get("ws")?,
        ws_type: row.try_get("ws_type")?,
        created_ms: from_db("scheduled_conferences.created_ms", row.try_get("created_ms")?)?,
        updated_ms: from_db("scheduled_conferences.updated_ms", row.try_get("updated_ms")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ConferenceInput {
        ConferenceInput { owner_id: 7, name: " Test Conf ".into(), access_id: 47281964, kind: "Once".into(), start_s: 1516021200, duration_min: 30, ..Default::default() }
    }

    #[test]
    fn validation_trims_defaults_and_refuses() {
        let v = validate(&input()).unwrap();
        assert_eq!((v.name.as_str(), v.kind, v.access_id, v.ws.as_str(), v.ws_type.as_str()), ("Test Conf", Recurrence::Once, Some(47281964), "None", "Undefined"));
        assert_eq!(validate(&ConferenceInput { kind: "".into(), access_id: 0, ..input() }).unwrap().kind, Recurrence::Once);
        assert_eq!(validate(&ConferenceInput { access_id: 0, ..input() }).unwrap().access_id, None);
        let err = |c: ConferenceInput| validate(&c).err().expect("refused").to_string();
        assert_eq!(err(ConferenceInput { name: "  ".into(), ..input() }), "the conference name must not be empty");
        assert!(err(ConferenceInput { name: "x".repeat(201), ..input() }).contains("at most 200"));
        assert_eq!(err(ConferenceInput { kind: "Monthly".into(), ..input() }), "invalid type \"Monthly\": expected one of Once, Daily, Weekly, Permanent");
        assert!(err(ConferenceInput { duration_min: 0, ..input() }).starts_with("invalid duration 0: expected 1 to 1440 minutes"));
        assert!(err(ConferenceInput { duration_min: 1441, ..input() }).starts_with("invalid duration 1441"));
        assert!(validate(&ConferenceInput { duration_min: 0, kind: "permanent".into(), ..input() }).is_ok());
        assert_eq!(err(ConferenceInput { access_id: 100_000_000_000, ..input() }), "invalid accessId 100000000000: expected 1 to 99999999999 (digits keyed on a phone)");
        assert!(err(ConferenceInput { access_id: -1, ..input() }).starts_with("invalid accessId -1"));
        assert!(err(ConferenceInput { start_s: -1, ..input() }).starts_with("invalid startDate"));
        assert!(err(ConferenceInput { ws: "a b".into(), ..input() }).starts_with("invalid ws"));
    }
}
