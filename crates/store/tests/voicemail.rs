//! Mailboxes on SQLite and PostgreSQL (`both_backends!`; see tests/common): messages
//! are numbered, listed per owner and media, counted for MWI, marked read, noted and
//! deleted; another user's message is as missing as one that never was.

mod common;

use common::TestDb;
use store::voicemail::{NewVoicemail, RECORDING, VOICEMAIL};

both_backends!(a_mailbox_lists_counts_updates_and_deletes_its_own_messages);

fn message(user_id: i64, media: &str, received_ms: u64) -> NewVoicemail {
    NewVoicemail {
        user_id,
        media: media.into(),
        from_number: "3044".into(),
        from_name: Some("Alice A".into()),
        caller_name: None,
        to_number: "3045".into(),
        file: format!("voicemail/{user_id}/{received_ms}.wav"),
        received_ms,
        duration_ms: 3_020,
    }
}

async fn a_mailbox_lists_counts_updates_and_deletes_its_own_messages(db: &TestDb) {
    let s = &db.store;
    let a = s.add_voicemail(&message(2, VOICEMAIL, 1_700_000_002_000)).await.unwrap();
    let b = s.add_voicemail(&message(2, VOICEMAIL, 1_700_000_001_000)).await.unwrap();
    let r = s.add_voicemail(&message(2, RECORDING, 1_700_000_003_000)).await.unwrap();
    let other = s.add_voicemail(&message(3, VOICEMAIL, 1_700_000_000_000)).await.unwrap();
    assert!(a.id < b.id && b.id < r.id && r.id < other.id, "ids are increasing: {a:?} {b:?}");
    assert_eq!((a.read, a.note.as_deref(), a.duration_ms, a.from_name.as_deref()), (false, None, 3_020, Some("Alice A")));
    assert!(s.add_voicemail(&message(2, "Fax", 1)).await.is_err(), "only the two media");

    // Oldest first; per media; only the owner's.
    let all: Vec<i64> = s.voicemails(2, None).await.unwrap().iter().map(|v| v.id).collect();
    assert_eq!(all, vec![b.id, a.id, r.id]);
    let vm: Vec<i64> = s.voicemails(2, Some(VOICEMAIL)).await.unwrap().iter().map(|v| v.id).collect();
    assert_eq!(vm, vec![b.id, a.id]);
    assert_eq!(s.voicemails(2, Some(RECORDING)).await.unwrap().len(), 1);
    assert!(s.voicemail(2, other.id).await.unwrap().is_none(), "another user's message is not found");

    // MWI counts voicemail only.
    assert_eq!(s.voicemail_counts(2).await.unwrap(), (2, 0));
    let v = s.update_voicemail(2, a.id, Some(true), Some("call back")).await.unwrap().unwrap();
    assert_eq!((v.read, v.note.as_deref()), (true, Some("call back")));
    assert_eq!(s.voicemail_counts(2).await.unwrap(), (1, 1));
    let v = s.update_voicemail(2, a.id, None, Some("")).await.unwrap().unwrap();
    assert_eq!((v.read, v.note), (true, None), "an empty note clears it; read is kept");
    assert!(s.update_voicemail(3, a.id, Some(false), None).await.unwrap().is_none());
    assert!(s.voicemail(2, a.id).await.unwrap().unwrap().read, "another user cannot change it");

    let gone = s.delete_voicemail(2, a.id).await.unwrap().expect("deleted");
    assert_eq!(gone.file, a.file);
    assert!(s.delete_voicemail(2, a.id).await.unwrap().is_none());
    assert!(s.delete_voicemail(2, other.id).await.unwrap().is_none());
    assert_eq!(s.voicemail_counts(2).await.unwrap(), (1, 0));
    assert_eq!(s.voicemail_counts(3).await.unwrap(), (1, 0));
    // Numbering continues above the largest id.
    let c = s.add_voicemail(&message(2, VOICEMAIL, 1_700_000_004_000)).await.unwrap();
    assert!(c.id > other.id);
}
