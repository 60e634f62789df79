//! Scheduled conferences on SQLite and PostgreSQL (`both_backends!`; see tests/common):
//! created, listed per owner, replaced and deleted; refused with clear text; carried in
//! the directory snapshot; every write bumps the directory version; deleting the owner
//! or the domain leaves no row behind.

mod common;

use common::TestDb;
use engine::schedule::Recurrence;
use store::{ConferenceInput, NewUser, StoreError};

both_backends!(
    conferences_are_created_listed_replaced_and_deleted_per_owner,
    bad_values_and_access_id_clashes_are_refused_clearly,
    conferences_go_with_their_owner_and_their_domain,
);

fn user(domain: &str, login: &str, ext: &str) -> NewUser {
    NewUser { domain: domain.into(), login: login.into(), password: "pw-1".into(), ext: Some(ext.into()), ..Default::default() }
}

fn booking(owner_id: i64, access_id: i64) -> ConferenceInput {
    ConferenceInput {
        owner_id,
        name: "Test Conf".into(),
        access_id,
        kind: "Once".into(),
        start_s: 1_516_021_200,
        duration_min: 30,
        ..Default::default()
    }
}

async fn conferences_are_created_listed_replaced_and_deleted_per_owner(db: &TestDb) {
    let s = &db.store;
    s.add_domain("alpha.test", None).await.unwrap();
    let alice = s.add_user(&user("alpha.test", "alice", "3044")).await.unwrap();
    let bob = s.add_user(&user("alpha.test", "bob", "3045")).await.unwrap();

    let v0 = s.directory_version().await.unwrap();
    let a = s.create_conference(&booking(alice.id, 47_281_964)).await.unwrap();
    assert!(s.directory_version().await.unwrap() > v0, "a create bumps the directory version");
    assert_eq!(
        (a.domain_id, a.owner_id, a.name.as_str(), a.description.as_deref(), a.access_id, a.kind, a.start_s, a.duration_min),
        (alice.domain_id, alice.id, "Test Conf", None, 47_281_964, Recurrence::Once, 1_516_021_200, 30)
    );
    assert_eq!((a.ws.as_str(), a.ws_type.as_str(), a.wait_for_owner, a.del_on_owner_leave), ("None", "Undefined", false, false));
    assert!(a.created_ms > 0 && a.created_ms == a.updated_ms);
    assert!(a.id > bob.id, "ids come from the directory's counter");

    // accessId 0 = a random unused 8-digit number.
    let b = s.create_conference(&ConferenceInput { kind: "".into(), description: Some("  ".into()), ..booking(alice.id, 0) }).await.unwrap();
    assert!((10_000_000..=99_999_999).contains(&b.access_id), "{b:?}");
    assert_eq!((b.kind, b.description), (Recurrence::Once, None));
    let c = s.create_conference(&ConferenceInput { name: "Bob's".into(), ..booking(bob.id, 555) }).await.unwrap();

    let mine: Vec<i64> = s.conferences_of(alice.id).await.unwrap().iter().map(|c| c.id).collect();
    assert_eq!(mine, vec![a.id, b.id]);
    assert_eq!(s.conferences_of(bob.id).await.unwrap(), vec![c.clone()]);
    assert_eq!(s.conference(a.id).await.unwrap(), Some(a.clone()));

    // The snapshot carries them, found by (domain, access id).
    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.conferences.len(), 3);
    assert_eq!(dir.conference_by_access(alice.domain_id, 47_281_964).map(|c| c.id), Some(a.id));
    assert_eq!(dir.conference_by_access(alice.domain_id, 555).map(|c| c.owner_id), Some(bob.id));

    // A full replacement; accessId 0 keeps the current one.
    let v1 = s.directory_version().await.unwrap();
    let new = ConferenceInput {
        name: "Weekly sync".into(),
        description: Some("agenda: numbers".into()),
        kind: "weekly".into(),
        duration_min: 60,
        wait_for_owner: true,
        del_on_owner_leave: true,
        ws: "Screen".into(),
        ws_type: "Presenter".into(),
        ..booking(alice.id, 0)
    };
    let a2 = s.update_conference(a.id, &new).await.unwrap();
    assert!(s.directory_version().await.unwrap() > v1, "an update bumps the directory version");
    assert_eq!(
        (a2.id, a2.name.as_str(), a2.description.as_deref(), a2.access_id, a2.kind, a2.duration_min, a2.wait_for_owner, a2.del_on_owner_leave),
        (a.id, "Weekly sync", Some("agenda: numbers"), 47_281_964, Recurrence::Weekly, 60, true, true)
    );
    assert_eq!((a2.ws.as_str(), a2.ws_type.as_str(), a2.created_ms), ("Screen", "Presenter", a.created_ms));
    let a3 = s.update_conference(a.id, &ConferenceInput { access_id: 12_345, ..new.clone() }).await.unwrap();
    assert_eq!(a3.access_id, 12_345);
    let dir = s.load_directory().await.unwrap();
    assert!(dir.conference_by_access(alice.domain_id, 47_281_964).is_none());
    assert_eq!(dir.conference_by_access(alice.domain_id, 12_345).map(|c| c.id), Some(a.id));
    // Its own access id again is no clash.
    s.update_conference(a.id, &ConferenceInput { access_id: 12_345, ..new.clone() }).await.unwrap();

    // Another owner's conference is not found, for update and delete alike.
    let other = s.update_conference(c.id, &booking(alice.id, 0)).await.unwrap_err();
    assert!(matches!(other, StoreError::NotFound(_)), "{other}");
    assert!(matches!(s.delete_conference(alice.id, c.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(s.conference(c.id).await.unwrap().map(|c| c.name), Some("Bob's".into()));

    let v2 = s.directory_version().await.unwrap();
    s.delete_conference(alice.id, a.id).await.unwrap();
    assert!(s.directory_version().await.unwrap() > v2, "a delete bumps the directory version");
    assert!(matches!(s.delete_conference(alice.id, a.id).await, Err(StoreError::NotFound(_))));
    assert!(s.conference(a.id).await.unwrap().is_none());
    assert_eq!(s.conferences_of(alice.id).await.unwrap().len(), 1);
}

async fn bad_values_and_access_id_clashes_are_refused_clearly(db: &TestDb) {
    let s = &db.store;
    s.add_domain("alpha.test", None).await.unwrap();
    s.add_domain("beta.test", None).await.unwrap();
    let alice = s.add_user(&user("alpha.test", "alice", "3044")).await.unwrap();
    let bob = s.add_user(&user("alpha.test", "bob", "3045")).await.unwrap();
    let carol = s.add_user(&user("beta.test", "carol", "3044")).await.unwrap();
    s.create_conference(&booking(alice.id, 4728)).await.unwrap();

    let text = |r: Result<_, StoreError>| r.err().expect("refused").to_string();
    let clash = text(s.create_conference(&booking(bob.id, 4728)).await);
    assert_eq!(clash, "accessId 4728 is already used by another conference in this domain");
    // Another domain has its own access ids.
    s.create_conference(&booking(carol.id, 4728)).await.unwrap();
    let own = s.create_conference(&booking(bob.id, 4729)).await.unwrap();
    assert_eq!(text(s.update_conference(own.id, &booking(bob.id, 4728)).await), clash);

    assert_eq!(text(s.create_conference(&ConferenceInput { kind: "Monthly".into(), ..booking(alice.id, 0) }).await), "invalid type \"Monthly\": expected one of Once, Daily, Weekly, Permanent");
    assert!(text(s.create_conference(&ConferenceInput { duration_min: 0, ..booking(alice.id, 0) }).await).starts_with("invalid duration 0: expected 1 to 1440 minutes"));
    assert!(text(s.create_conference(&ConferenceInput { duration_min: 2000, ..booking(alice.id, 0) }).await).starts_with("invalid duration 2000"));
    assert_eq!(text(s.create_conference(&ConferenceInput { name: " ".into(), ..booking(alice.id, 0) }).await), "the conference name must not be empty");
    assert!(text(s.create_conference(&booking(alice.id, 100_000_000_000)).await).starts_with("invalid accessId 100000000000"));
    assert!(matches!(s.create_conference(&booking(999_999, 0)).await, Err(StoreError::NotFound(_))), "an unknown owner");
    let permanent = s.create_conference(&ConferenceInput { kind: "Permanent".into(), duration_min: 0, ..booking(alice.id, 0) }).await.unwrap();
    assert_eq!((permanent.kind, permanent.duration_min), (Recurrence::Permanent, 0));
    assert_eq!(s.conferences_of(alice.id).await.unwrap().len(), 2, "nothing refused was written");
}

async fn conferences_go_with_their_owner_and_their_domain(db: &TestDb) {
    let s = &db.store;
    s.add_domain("alpha.test", None).await.unwrap();
    let beta = s.add_domain("beta.test", None).await.unwrap();
    let alice = s.add_user(&user("alpha.test", "alice", "3044")).await.unwrap();
    let bob = s.add_user(&user("alpha.test", "bob", "3045")).await.unwrap();
    let carol = s.add_user(&user("beta.test", "carol", "3044")).await.unwrap();
    let a = s.create_conference(&booking(alice.id, 1)).await.unwrap();
    let b = s.create_conference(&booking(bob.id, 2)).await.unwrap();
    let c = s.create_conference(&booking(carol.id, 1)).await.unwrap();

    s.delete_user(alice.id).await.unwrap();
    assert!(s.conference(a.id).await.unwrap().is_none());
    assert!(s.conference(b.id).await.unwrap().is_some());
    s.delete_domain_cascade(beta.id).await.unwrap();
    assert!(s.conference(c.id).await.unwrap().is_none());
    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.conferences.iter().map(|c| c.id).collect::<Vec<_>>(), vec![b.id]);
    // The freed access id can be booked again.
    let bob2 = s.create_conference(&booking(bob.id, 1)).await.unwrap();
    assert_eq!(bob2.access_id, 1);
}
