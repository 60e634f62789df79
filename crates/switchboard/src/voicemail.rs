//! The shell's side of voicemail: what the sans-IO engine asks for and cannot do
//! itself, each done in a task of its own so the signalling task never waits.
//!
//! - `VoicemailRecorded`: wait for the media engine's writer to close the WAV, trim
//!   its silence and measure it (blocking file I/O, on a blocking thread), store the
//!   message, send MWI. A message that is all silence (the caller hung up at the beep)
//!   is dropped with its file.
//! - `CallEnded` with recordings: each recording is listed in the mailboxes of the
//!   call's users as `Recording` (reference 001 `media=Recording`), once complete.
//! - `VoicemailLogin`: check the PIN (argon2, slow on purpose) and answer the engine
//!   with the mailbox's new messages, or None.
//! - `VoicemailPlayed`: mark the message read, send MWI.

use engine::{Command, EngineEvent};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::voicemail::{NewVoicemail, RECORDING, VOICEMAIL};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// How long a finished recording may take to be closed by its writer thread.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Mailboxes {
    db: store::Store,
    data_dir: PathBuf,
    engine: mpsc::Sender<Command>,
    directory: watch::Receiver<Arc<store::DirectorySnapshot>>,
}

impl Mailboxes {
    pub fn new(db: store::Store, data_dir: PathBuf, engine: mpsc::Sender<Command>, directory: watch::Receiver<Arc<store::DirectorySnapshot>>) -> Mailboxes {
        Mailboxes { db, data_dir, engine, directory }
    }

    /// Starts whatever `ev` asks of us; returns at once.
    pub fn on_event(&self, ev: &EngineEvent) {
        match ev {
            EngineEvent::VoicemailRecorded { user_id, to, caller, file, started_ms, .. } => {
                let msg = NewVoicemail {
                    user_id: *user_id,
                    media: VOICEMAIL.into(),
                    from_number: caller.ext.clone().or_else(|| uri_user(&caller.uri)).unwrap_or_else(|| "anonymous".into()),
                    from_name: caller.display_name.clone(),
                    caller_name: caller.display_name.clone(),
                    to_number: to.clone(),
                    file: file.clone(),
                    received_ms: *started_ms,
                    duration_ms: 0,
                };
                tokio::spawn(self.clone().store_message(msg, true));
            }
            EngineEvent::CallEnded(info) if !info.recordings.is_empty() => {
                let number = |p: &engine::Party| p.ext.clone().or_else(|| uri_user(&p.uri)).unwrap_or_default();
                for file in &info.recordings {
                    for (owner, other) in [(&info.caller, &info.callee), (&info.callee, &info.caller)] {
                        let Some(user_id) = owner.user_id else { continue };
                        let msg = NewVoicemail {
                            user_id,
                            media: RECORDING.into(),
                            from_number: number(other),
                            from_name: other.display_name.clone(),
                            caller_name: None,
                            to_number: number(owner),
                            file: file.clone(),
                            received_ms: info.answered_ms.unwrap_or(info.started_ms),
                            duration_ms: 0,
                        };
                        tokio::spawn(self.clone().store_message(msg, false));
                    }
                }
            }
            EngineEvent::VoicemailLogin { leg_id, user_id, ext, domain, pin } => {
                let me = self.clone();
                let (leg, user_id, ext, domain, pin) = (leg_id.clone(), *user_id, ext.clone(), domain.clone(), pin.0.clone());
                tokio::spawn(async move {
                    let result = me.login(user_id, ext.as_deref(), &domain, &pin).await;
                    let _ = me.engine.send(Command::VoicemailLogin(leg, result)).await;
                });
            }
            EngineEvent::VoicemailPlayed { user_id, id } => {
                let (me, user_id, id) = (self.clone(), *user_id, *id);
                tokio::spawn(async move {
                    if let Err(e) = me.db.update_voicemail(user_id, id, Some(true), None).await {
                        warn!(user = user_id, id, error = %e, "voicemail: cannot mark read");
                    }
                    me.mwi(user_id).await;
                });
            }
            _ => {}
        }
    }

    /// Finishes the file (trim only for voicemail: a call recording is kept as made),
    /// measures it and stores the row.
    async fn store_message(self, mut msg: NewVoicemail, trim: bool) {
        let path = self.data_dir.join(&msg.file);
        let p = path.clone();
        let done = tokio::task::spawn_blocking(move || {
            if trim {
                store::voicemail::finish_recording(&p, CLOSE_WAIT)
            } else {
                store::voicemail::wait_closed(&p, CLOSE_WAIT).and_then(|()| store::voicemail::wav_duration(&p))
            }
        })
        .await;
        let duration = match done {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return warn!(file = %path.display(), error = %e, "voicemail: recording not usable"),
            Err(e) => return warn!(error = %e, "voicemail: trimming task failed"),
        };
        if trim && duration.is_zero() {
            info!(file = %path.display(), "voicemail: nothing was said; message dropped");
            let _ = tokio::fs::remove_file(&path).await;
            return;
        }
        msg.duration_ms = duration.as_millis() as u64;
        match self.db.add_voicemail(&msg).await {
            Ok(v) => info!(user = v.user_id, id = v.id, media = %v.media, duration_ms = v.duration_ms, "voicemail stored"),
            Err(e) => return warn!(file = %msg.file, error = %e, "voicemail: cannot store"),
        }
        if msg.media == VOICEMAIL {
            self.mwi(msg.user_id).await;
        }
    }

    /// The mailbox and its new messages when `pin` is its user's PIN.
    async fn login(&self, user_id: i64, ext: Option<&str>, domain: &str, pin: &str) -> Option<(i64, Vec<(i64, String)>)> {
        let user_id = match ext {
            None => user_id,
            Some(ext) => {
                let dir = self.directory.borrow().clone();
                let d = dir.domain_by_name(domain)?.id;
                dir.user_by_key(d, ext).filter(|u| u.enabled)?.id
            }
        };
        match self.db.verify_user_pin(user_id, pin).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                warn!(user = user_id, error = %e, "voicemail: PIN check failed");
                return None;
            }
        }
        let list = self.db.voicemails(user_id, Some(VOICEMAIL)).await.ok()?;
        Some((user_id, list.into_iter().filter(|v| !v.read).map(|v| (v.id, v.file)).collect()))
    }

    async fn mwi(&self, user_id: i64) {
        mwi(&self.db, &self.engine, user_id).await
    }
}

/// Sends MWI with the user's current counts.
pub async fn mwi(db: &store::Store, engine: &mpsc::Sender<Command>, user_id: i64) {
    match db.voicemail_counts(user_id).await {
        Ok((new, old)) => {
            let _ = engine.send(Command::NotifyMwi(user_id, new, old)).await;
        }
        Err(e) => warn!(user = user_id, error = %e, "voicemail: cannot count messages"),
    }
}

fn uri_user(uri: &str) -> Option<String> {
    sip::parse::parse_uri(uri.trim().trim_start_matches('<').trim_end_matches('>')).ok()?.user
}
