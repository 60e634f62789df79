//! Call recording: a tap on a room's mix, written to a WAV file by a thread of its own.
//!
//! The media worker that mixes the room hands each 20 ms frame of the full mix (every
//! speaker, nobody excluded: both parties of a call) to the [`Tap`]; a writer thread
//! owns the file. Frames are gathered into blocks of [`BLOCK_FRAMES`] (500 ms) and a
//! block goes to the writer with a non-blocking send: waking a thread per frame cost
//! about 10 µs a frame, a block costs that once per 25 frames. Blocks come back from
//! the writer to be filled again, so the steady state does not allocate. A slow disk
//! never stalls the media thread: when the queue (10 s) is full, the block is dropped
//! and its frames counted. Dropping the last clone of the tap (stop, or the room is
//! gone) sends what is gathered and closes the queue; the writer then finishes the
//! file (the sizes in the RIFF header) and ends.
//!
//! The WAV is 16 kHz, 16-bit, mono (the mixing format, [`crate::MIX_RATE`]).
//!
//! A tap can be paused (frames are then left out of the file, so the recording skips
//! the paused stretch), and [`start_notify`] reports when the file is complete.

use crate::FRAME_SAMPLES;
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Frames gathered before they go to the writer (500 ms).
pub const BLOCK_FRAMES: usize = 25;
/// Blocks queued between the media thread and the writer (10 s).
const QUEUE_BLOCKS: usize = 20;

/// The media side of a recording: where the room's mix goes, frame by frame. Clones
/// share one file (the engine keeps one to pause it); the file ends with the last.
#[derive(Clone, Debug)]
pub struct Tap {
    shared: Arc<TapShared>,
}

#[derive(Debug)]
struct TapShared {
    tx: SyncSender<Vec<i16>>,
    /// The block being filled, and the emptied blocks the writer handed back. Only the
    /// media worker that records pushes, so the lock is never contended.
    gathering: Mutex<(Vec<i16>, Receiver<Vec<i16>>)>,
    /// Shared with the writer, which reports the final count.
    dropped: Arc<AtomicU64>,
    paused: AtomicBool,
}

impl Drop for TapShared {
    fn drop(&mut self) {
        // The last clone is gone: the gathered frames go out; the queue then closes.
        let block = match self.gathering.get_mut() {
            Ok(g) => std::mem::take(&mut g.0),
            Err(e) => std::mem::take(&mut e.into_inner().0),
        };
        if !block.is_empty() {
            let frames = (block.len() / FRAME_SAMPLES) as u64;
            if self.tx.try_send(block).is_err() {
                self.dropped.fetch_add(frames, Ordering::Relaxed);
            }
        }
    }
}

impl Tap {
    /// Queues one frame; never blocks (a full queue drops a block of frames).
    pub fn push(&self, frame: &[i16; FRAME_SAMPLES]) {
        if self.shared.paused.load(Ordering::Relaxed) {
            return;
        }
        let mut g = self.shared.gathering.lock().unwrap_or_else(|e| e.into_inner());
        g.0.extend_from_slice(frame);
        if g.0.len() < BLOCK_FRAMES * FRAME_SAMPLES {
            return;
        }
        let fresh = g.1.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK_FRAMES * FRAME_SAMPLES));
        let block = std::mem::replace(&mut g.0, fresh);
        drop(g);
        if let Err(TrySendError::Full(_)) = self.shared.tx.try_send(block) {
            self.shared.dropped.fetch_add(BLOCK_FRAMES as u64, Ordering::Relaxed);
        }
    }

    /// Queues the full mix of a room: the i32 sum of its speakers, saturated.
    pub fn push_sum(&self, sum: &[i32; FRAME_SAMPLES]) {
        let mut f = [0i16; FRAME_SAMPLES];
        for (o, &s) in f.iter_mut().zip(sum) {
            *o = s.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        }
        self.push(&f);
    }

    /// Frames lost to a full queue so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Leaves frames out of the file while paused (every clone of the tap pauses).
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.shared.paused.load(Ordering::Relaxed)
    }
}

/// What a finished recording holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingSummary {
    pub path: PathBuf,
    /// Samples written (16 kHz).
    pub samples: u64,
    /// Frames lost to a full queue (a disk too slow).
    pub dropped: u64,
    /// Why the file could not be written, if it could not.
    pub error: Option<String>,
}

/// Starts a recording into `path`: returns the tap to give the media engine at once.
/// The writer thread creates the file (and its directory), so the caller does no disk
/// I/O (the engine calling this is sans-IO). The file is complete once every clone of
/// the tap is gone.
pub fn start(path: &Path) -> io::Result<Tap> {
    start_notify(path, |_| {})
}

/// [`start`], and `done` is called on the writer thread once the file is complete
/// (every clone of the tap dropped) or has failed.
pub fn start_notify(path: &Path, done: impl FnOnce(RecordingSummary) + Send + 'static) -> io::Result<Tap> {
    let (tx, rx) = sync_channel(QUEUE_BLOCKS);
    let (back_tx, back_rx) = channel();
    let owned: PathBuf = path.to_owned();
    let dropped = Arc::new(AtomicU64::new(0));
    let dropped_report = dropped.clone();
    let shared = Arc::new(TapShared {
        tx,
        gathering: Mutex::new((Vec::with_capacity(BLOCK_FRAMES * FRAME_SAMPLES), back_rx)),
        dropped,
        paused: AtomicBool::new(false),
    });
    let tap = Tap { shared };
    std::thread::Builder::new().name("recorder".into()).spawn(move || {
        let result = write_frames(&owned, rx, back_tx);
        if let Err(e) = &result {
            tracing::warn!(file = %owned.display(), error = %e, "recording failed");
        }
        done(RecordingSummary {
            path: owned,
            samples: *result.as_ref().unwrap_or(&0),
            dropped: dropped_report.load(Ordering::Relaxed),
            error: result.err().map(|e| e.to_string()),
        });
    })?;
    Ok(tap)
}

/// Writes every block until the queue closes, handing emptied blocks back; returns the
/// samples written.
fn write_frames(path: &Path, rx: Receiver<Vec<i16>>, back: Sender<Vec<i16>>) -> io::Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = BufWriter::new(File::create(path)?);
    write_header(&mut file, 0)?;
    let mut samples: u64 = 0;
    let mut buf = Vec::with_capacity(BLOCK_FRAMES * FRAME_SAMPLES * 2);
    for mut block in rx {
        buf.clear();
        buf.extend(block.iter().flat_map(|s| s.to_le_bytes()));
        file.write_all(&buf)?;
        samples += block.len() as u64;
        block.clear();
        // The tap may be gone already; then the block is simply freed.
        let _ = back.send(block);
    }
    // The queue is closed: finish the header with the real sizes.
    let data_bytes = (samples * 2).min(u32::MAX as u64 - 36) as u32;
    file.seek(SeekFrom::Start(0))?;
    write_header(&mut file, data_bytes)?;
    file.flush()?;
    Ok(samples)
}

/// The 44-byte RIFF/WAVE header of 16 kHz 16-bit mono PCM with `data_bytes` of samples.
fn write_header(w: &mut impl Write, data_bytes: u32) -> io::Result<()> {
    let rate = crate::MIX_RATE;
    w.write_all(b"RIFF")?;
    w.write_all(&(36 + data_bytes).to_le_bytes())?;
    w.write_all(b"WAVEfmt ")?;
    w.write_all(&16u32.to_le_bytes())?; // fmt chunk size
    w.write_all(&1u16.to_le_bytes())?; // PCM
    w.write_all(&1u16.to_le_bytes())?; // mono
    w.write_all(&rate.to_le_bytes())?;
    w.write_all(&(rate * 2).to_le_bytes())?; // byte rate
    w.write_all(&2u16.to_le_bytes())?; // block align
    w.write_all(&16u16.to_le_bytes())?; // bits per sample
    w.write_all(b"data")?;
    w.write_all(&data_bytes.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_land_in_a_valid_wav_once_the_tap_is_dropped() {
        let dir = std::env::temp_dir().join(format!("sb-rec-{}", std::process::id()));
        let path = dir.join("r/1-1.wav");
        let tap = start(&path).unwrap();
        let mut sum = [0i32; FRAME_SAMPLES];
        sum[0] = 100_000; // saturates
        sum[1] = -5;
        // Two whole blocks and a part of one: the part goes out when the tap is dropped.
        let keep = tap.clone();
        for _ in 0..57 {
            tap.push_sum(&sum);
        }
        drop(tap);
        drop(keep);
        // The writer finishes on its own; wait for the header's final size.
        let want = 44 + 57 * FRAME_SAMPLES * 2;
        let mut data = Vec::new();
        for _ in 0..200 {
            // The writer thread creates the file: it may not be there yet.
            data = std::fs::read(&path).unwrap_or_default();
            if data.len() == want && u32::from_le_bytes(data[40..44].try_into().unwrap()) as usize == want - 44 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(data.len(), want);
        assert_eq!(&data[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(data[24..28].try_into().unwrap()), 16_000);
        assert_eq!(u32::from_le_bytes(data[40..44].try_into().unwrap()) as usize, want - 44);
        assert_eq!(i16::from_le_bytes([data[44], data[45]]), i16::MAX);
        assert_eq!(i16::from_le_bytes([data[46], data[47]]), -5);
        std::fs::remove_dir_all(&dir).ok();
    }
}
