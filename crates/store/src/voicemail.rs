//! Mailboxes (issue 11): voicemail messages and call recordings, as reference 001's
//! `GET/PATCH/DELETE /voicemails` see them, and the WAV work done on a message once
//! its recording is complete.
//!
//! - A row per message ([`Voicemail`]); the audio is a WAV file under the data dir.
//!   `media` is `VoiceMail` (left for the user) or `Recording` (a recording of a call
//!   the user took part in). Message-waiting counts ([`Store::voicemail_counts`]) are
//!   of `VoiceMail` only: a recording is not a message to listen to.
//! - [`finish_recording`]: waits until the media engine's writer has closed the file,
//!   then trims leading and trailing silence in place and returns the duration. It is
//!   plain blocking file I/O, run by the server's shell on a blocking thread, never by
//!   the engine (which is sans-IO) nor on the signalling task.

use crate::error::StoreError;
use crate::store::{from_db, to_db, Store};
use engine::users::UserId;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// `media` of a voicemail left for the user.
pub const VOICEMAIL: &str = "VoiceMail";
/// `media` of a call recording.
pub const RECORDING: &str = "Recording";

/// One message in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Voicemail {
    pub id: i64,
    pub user_id: UserId,
    /// [`VOICEMAIL`] or [`RECORDING`].
    pub media: String,
    pub from_number: String,
    pub from_name: Option<String>,
    pub caller_name: Option<String>,
    pub to_number: String,
    /// Relative to the data dir.
    pub file: String,
    pub received_ms: u64,
    pub duration_ms: u64,
    pub read: bool,
    pub note: Option<String>,
}

/// A message to store (the id, read flag and note are the store's).
#[derive(Debug, Clone, Default)]
pub struct NewVoicemail {
    pub user_id: UserId,
    pub media: String,
    pub from_number: String,
    pub from_name: Option<String>,
    pub caller_name: Option<String>,
    pub to_number: String,
    pub file: String,
    pub received_ms: u64,
    pub duration_ms: u64,
}

const COLUMNS: &str = "id, user_id, media, from_number, from_name, caller_name, to_number, file, received_ms, duration_ms, is_read, note";

impl Store {
    /// Stores a message; returns it with its id.
    pub async fn add_voicemail(&self, v: &NewVoicemail) -> Result<Voicemail, StoreError> {
        if v.media != VOICEMAIL && v.media != RECORDING {
            return Err(StoreError::Invalid(format!("media {:?}: expected {VOICEMAIL} or {RECORDING}", v.media)));
        }
        // Ids are MAX + 1 in the same statement; two writers racing on PostgreSQL can
        // pick the same one, and the loser simply tries again.
        let mut last = None;
        for _ in 0..5 {
            let r = sqlx::query(
                "INSERT INTO voicemails (id, user_id, media, from_number, from_name, caller_name, to_number, file, received_ms, duration_ms, is_read, note) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL FROM voicemails RETURNING id",
            )
            .bind(v.user_id)
            .bind(&v.media)
            .bind(&v.from_number)
            .bind(&v.from_name)
            .bind(&v.caller_name)
            .bind(&v.to_number)
            .bind(&v.file)
            .bind(to_db("received_ms", v.received_ms)?)
            .bind(to_db("duration_ms", v.duration_ms)?)
            .fetch_one(&self.pool)
            .await;
            match r {
                Ok(row) => {
                    let id: i64 = row.try_get("id")?;
                    return self.voicemail(v.user_id, id).await?.ok_or_else(|| StoreError::Corrupt("voicemail vanished".into()));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried").into())
    }

    /// A user's messages of one media (None: both), oldest first.
    pub async fn voicemails(&self, user_id: UserId, media: Option<&str>) -> Result<Vec<Voicemail>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM voicemails WHERE user_id = $1 AND ($2 = '' OR media = $2) ORDER BY received_ms, id"))
            .bind(user_id)
            .bind(media.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(voicemail_from_row).collect()
    }

    /// One of the user's messages (another user's is None, like a missing one).
    pub async fn voicemail(&self, user_id: UserId, id: i64) -> Result<Option<Voicemail>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM voicemails WHERE user_id = $1 AND id = $2"))
            .bind(user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(voicemail_from_row).transpose()
    }

    /// Sets the read flag and/or the note (`Some("")` clears it); None if no such message.
    pub async fn update_voicemail(&self, user_id: UserId, id: i64, read: Option<bool>, note: Option<&str>) -> Result<Option<Voicemail>, StoreError> {
        if let Some(r) = read {
            sqlx::query("UPDATE voicemails SET is_read = $1 WHERE user_id = $2 AND id = $3").bind(i64::from(r)).bind(user_id).bind(id).execute(&self.pool).await?;
        }
        if let Some(n) = note {
            let n = (!n.is_empty()).then_some(n);
            sqlx::query("UPDATE voicemails SET note = $1 WHERE user_id = $2 AND id = $3").bind(n).bind(user_id).bind(id).execute(&self.pool).await?;
        }
        self.voicemail(user_id, id).await
    }

    /// Removes the message's row and returns it (the caller removes the file); None if
    /// the user has no such message.
    pub async fn delete_voicemail(&self, user_id: UserId, id: i64) -> Result<Option<Voicemail>, StoreError> {
        let Some(v) = self.voicemail(user_id, id).await? else { return Ok(None) };
        let done = sqlx::query("DELETE FROM voicemails WHERE user_id = $1 AND id = $2").bind(user_id).bind(id).execute(&self.pool).await?;
        Ok((done.rows_affected() > 0).then_some(v))
    }

    /// (new, old) voicemail messages of the user: what MWI reports.
    pub async fn voicemail_counts(&self, user_id: UserId) -> Result<(u32, u32), StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN is_read = 0 THEN 1 ELSE 0 END), 0) AS n, COALESCE(SUM(CASE WHEN is_read = 0 THEN 0 ELSE 1 END), 0) AS o \
             FROM voicemails WHERE user_id = $1 AND media = $2",
        )
        .bind(user_id)
        .bind(VOICEMAIL)
        .fetch_one(&self.pool)
        .await?;
        Ok((from_db("voicemails new", row.try_get::<i64, _>("n")?)?, from_db("voicemails old", row.try_get::<i64, _>("o")?)?))
    }
}

fn voicemail_from_row(row: &AnyRow) -> Result<Voicemail, StoreError> {
    Ok(Voicemail {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        media: row.try_get("media")?,
        from_number: row.try_get("from_number")?,
        from_name: row.try_get("from_name")?,
        caller_name: row.try_get("caller_name")?,
        to_number: row.try_get("to_number")?,
        file: row.try_get("file")?,
        received_ms: from_db("voicemails.received_ms", row.try_get("received_ms")?)?,
        duration_ms: from_db("voicemails.duration_ms", row.try_get("duration_ms")?)?,
        read: row.try_get::<i64, _>("is_read")? != 0,
        note: row.try_get("note")?,
    })
}

// ---- the WAV side -----------------------------------------------------------------------

/// The media engine's recordings: a 44-byte header, then 16 kHz 16-bit mono PCM.
const HEADER: u64 = 44;
const RATE: u32 = 16_000;
/// Trimming looks at 20 ms frames (the mixer's).
const FRAME: usize = 320;
/// A frame whose peak is below this (about -40 dBFS) is silence. The recording is the
/// room's mix, which holds the caller only while the talk detector hears speech, so
/// silence there is digital zero or close to it.
pub const SILENCE_PEAK: i16 = 330;
/// Kept on each side of what is heard, so a word's soft start and end are not cut.
const MARGIN_FRAMES: usize = 5;

/// Waits (polling, up to `wait`) until the recorder has closed `path` (its header holds
/// the real size), then trims silence as [`trim_silence`]. Returns the duration left.
pub fn finish_recording(path: &Path, wait: Duration) -> io::Result<Duration> {
    wait_closed(path, wait)?;
    trim_silence(path, SILENCE_PEAK)
}

/// Waits (polling, up to `wait`) until the recorder has closed `path`.
pub fn wait_closed(path: &Path, wait: Duration) -> io::Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        if is_complete(path)? {
            break;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the recording was not finished in time"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The duration of a complete 16 kHz 16-bit mono WAV, from its size.
pub fn wav_duration(path: &Path) -> io::Result<Duration> {
    let len = std::fs::metadata(path)?.len().saturating_sub(HEADER);
    Ok(Duration::from_micros(len / 2 * 1_000_000 / RATE as u64))
}

/// The writer rewrites the header with the sizes as its last act.
fn is_complete(path: &Path) -> io::Result<bool> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len < HEADER {
        return Ok(false);
    }
    let mut h = [0u8; 44];
    f.read_exact(&mut h)?;
    let data = u32::from_le_bytes([h[40], h[41], h[42], h[43]]) as u64;
    Ok(data > 0 && data + HEADER == len)
}

/// Cuts leading and trailing silence (frames with no sample above `peak`, less a
/// margin) from a 16 kHz 16-bit mono WAV in place; returns the duration left (zero if
/// it was all silence). Cost: one read and one write of the file and one pass over the
/// samples (`BENCHMARKS.md`: trimming a minute of audio).
pub fn trim_silence(path: &Path, peak: i16) -> io::Result<Duration> {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    if bytes.len() < HEADER as usize || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a WAV file"));
    }
    let samples: Vec<i16> = bytes[HEADER as usize..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let (start, end) = audible_span(&samples, peak);
    let kept = &samples[start..end];
    let mut out = Vec::with_capacity(HEADER as usize + kept.len() * 2);
    out.extend_from_slice(&wav_header((kept.len() * 2) as u32));
    for s in kept {
        out.extend_from_slice(&s.to_le_bytes());
    }
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&out)?;
    f.set_len(out.len() as u64)?;
    f.flush()?;
    Ok(Duration::from_micros(kept.len() as u64 * 1_000_000 / RATE as u64))
}

/// The samples to keep: from the first frame above `peak` to the last, widened by the
/// margin; (0, 0) when nothing is.
pub fn audible_span(samples: &[i16], peak: i16) -> (usize, usize) {
    let loud = |c: &[i16]| c.iter().any(|s| s.unsigned_abs() > peak as u16);
    let frames = samples.len().div_ceil(FRAME);
    let Some(first) = samples.chunks(FRAME).position(loud) else { return (0, 0) };
    let last = frames - 1 - samples.chunks(FRAME).rev().position(loud).expect("one is loud");
    let start = first.saturating_sub(MARGIN_FRAMES) * FRAME;
    let end = ((last + 1 + MARGIN_FRAMES) * FRAME).min(samples.len());
    (start, end)
}

fn wav_header(data_bytes: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_bytes).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Writes a 16 kHz mono WAV of `samples` (tests and benchmarks).
pub fn write_wav(path: &Path, samples: &[i16]) -> io::Result<()> {
    let mut out = wav_header((samples.len() * 2) as u32).to_vec();
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<i16> {
        (0..n).map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / RATE as f32).sin() * 8000.0) as i16).collect()
    }

    #[test]
    fn silence_around_speech_is_cut_to_the_margin() {
        let mut s = vec![0i16; RATE as usize * 2];
        s.extend(tone(RATE as usize));
        s.extend(vec![3i16; RATE as usize * 3]); // a little noise is still silence
        let (a, b) = audible_span(&s, SILENCE_PEAK);
        assert_eq!(a, 2 * RATE as usize - MARGIN_FRAMES * FRAME);
        assert_eq!(b, 3 * RATE as usize + MARGIN_FRAMES * FRAME);
        assert_eq!(audible_span(&[0; 1000], SILENCE_PEAK), (0, 0));
        // Speech at the very edges: nothing to cut, nothing out of bounds.
        let t = tone(1000);
        assert_eq!(audible_span(&t, SILENCE_PEAK), (0, 1000));
    }

    #[test]
    fn a_finished_recording_is_trimmed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.wav");
        let mut s = vec![0i16; RATE as usize];
        s.extend(tone(RATE as usize * 3));
        s.extend(vec![0i16; RATE as usize]);
        write_wav(&p, &s).unwrap();
        let d = finish_recording(&p, Duration::from_secs(1)).unwrap();
        assert_eq!(d, Duration::from_millis(3000 + 2 * 100));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 44 + 2 * (3 * RATE as u64 + 2 * 1600));
        // An unfinished one (header size still 0) is waited for, then given up on.
        let q = dir.path().join("open.wav");
        let mut bytes = wav_header(0).to_vec();
        bytes.extend_from_slice(&[1, 0, 2, 0]);
        std::fs::write(&q, bytes).unwrap();
        assert_eq!(finish_recording(&q, Duration::from_millis(120)).unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
