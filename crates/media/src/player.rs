//! Prompts: WAV files and tone sequences played to a leg or to a whole room.
//!
//! Media never waits on disk. A prompt's audio is read, decoded and resampled to the
//! mixing format (16 kHz, 20 ms frames) by one reader thread per media engine
//! ([`PromptReader`]), which keeps each playing prompt [`AHEAD_FRAMES`] frames ahead
//! in a bounded queue. The media worker takes one frame per tick with `try_recv`: no
//! lock, no allocation, no system call. A queue that is empty (the reader fell behind)
//! plays silence for that tick; a queue the reader has closed means the prompt is over.
//! Files are streamed, never loaded whole, so a prompt may be any length.
//!
//! A prompt is a list of [`PromptPart`]s played back to back: files (8, 16 or 48 kHz;
//! 16-bit PCM, 8-bit PCM, µ-law or A-law; mono or stereo), tone steps and silences.
//! A part that cannot be played (missing file, unsupported format) is logged and
//! skipped, so a broken prompt set degrades to silence rather than a stuck caller; the
//! prompt's end then says [`PromptEnd::Failed`] if nothing at all could be played.

use crate::dsp::resample::Upsampler;
use crate::mixer::{Frame, SILENCE};
use crate::FRAME_SAMPLES;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Frames a prompt is read ahead of playout (500 ms): covers a reader thread that is
/// descheduled for a while, without holding much memory per prompt (20 KB).
pub const AHEAD_FRAMES: usize = 25;
/// How often the reader tops its queues up when it has prompts playing.
const REFILL_EVERY: Duration = Duration::from_millis(10);

/// Identifies one prompt, unique per media engine.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(pub u64);

/// One piece of a prompt.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptPart {
    File(PathBuf),
    /// A tone step: up to two frequencies summed (DTMF, ringback: 440+480 Hz) at
    /// `level_dbfs` each, for `ms`. No frequencies = silence.
    Tone { freqs: Vec<f32>, ms: u32, level_dbfs: f32 },
}

impl PromptPart {
    pub fn silence(ms: u32) -> PromptPart {
        PromptPart::Tone { freqs: Vec::new(), ms, level_dbfs: 0.0 }
    }
}

/// What a prompt is: its parts, played once or repeated until stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptSpec {
    pub parts: Vec<PromptPart>,
    /// Start again after the last part (music on hold, ringback, "you are alone").
    pub repeat: bool,
    /// A digit from the leg stops the prompt at once (barge-in). Leg prompts only.
    pub barge_in: bool,
}

impl PromptSpec {
    pub fn once(parts: Vec<PromptPart>) -> PromptSpec {
        PromptSpec { parts, repeat: false, barge_in: false }
    }
}

/// Parses a tone sequence written as `f1[+f2]/ms` steps separated by commas, e.g.
/// `440+480/2000,0/4000` (US ringback) or `1000/200` (a beep); frequency 0 is silence.
/// Levels are -13 dBFS per frequency, as tone generators in telephony usually use.
pub fn parse_tones(s: &str) -> Result<Vec<PromptPart>, String> {
    let mut parts = Vec::new();
    for step in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (freqs, ms) = step.split_once('/').ok_or_else(|| format!("tone step `{step}`: expected <freq>[+<freq>]/<ms>"))?;
        let ms: u32 = ms.trim().parse().map_err(|_| format!("tone step `{step}`: bad duration"))?;
        if ms == 0 || ms > 600_000 {
            return Err(format!("tone step `{step}`: duration must be 1..600000 ms"));
        }
        let mut fs = Vec::new();
        for f in freqs.split('+') {
            let f: f32 = f.trim().parse().map_err(|_| format!("tone step `{step}`: bad frequency"))?;
            if !(0.0..=7_900.0).contains(&f) {
                return Err(format!("tone step `{step}`: frequency must be 0..7900 Hz"));
            }
            if f > 0.0 {
                fs.push(f);
            }
        }
        if fs.len() > 2 {
            return Err(format!("tone step `{step}`: at most two frequencies"));
        }
        parts.push(PromptPart::Tone { freqs: fs, ms, level_dbfs: -13.0 });
    }
    if parts.is_empty() {
        return Err("empty tone sequence".into());
    }
    Ok(parts)
}

/// How a prompt ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PromptEnd {
    /// Played to the end.
    Finished,
    /// A digit from the leg stopped it (barge-in); the digit is reported as usual too.
    Interrupted(char),
    /// Stopped by a command, replaced by another prompt, or its leg left the room.
    Stopped,
    /// Nothing of it could be played (see the log for why).
    Failed,
}

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const FAILED: u8 = 2;

/// The media worker's end of a playing prompt.
pub struct Playing {
    pub id: PromptId,
    pub barge_in: bool,
    frames: Receiver<Frame>,
    state: Arc<AtomicU8>,
}

impl std::fmt::Debug for Playing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playing").field("id", &self.id).field("barge_in", &self.barge_in).finish()
    }
}

impl Playing {
    /// This tick's frame into `out`: `Some(true)` audio, `Some(false)` nothing ready
    /// (silence this tick), `None` the prompt is over ([`Playing::end`] says how).
    pub fn next_frame(&self, out: &mut Frame) -> Option<bool> {
        match self.frames.try_recv() {
            Ok(f) => {
                *out = f;
                Some(true)
            }
            Err(TryRecvError::Empty) => {
                *out = SILENCE;
                Some(false)
            }
            Err(TryRecvError::Disconnected) => None,
        }
    }

    /// How it ended, once [`Playing::next_frame`] said it is over.
    pub fn end(&self) -> PromptEnd {
        match self.state.load(Ordering::Acquire) {
            FAILED => PromptEnd::Failed,
            _ => PromptEnd::Finished,
        }
    }
}

/// The reader's end of a prompt.
struct Job {
    spec: PromptSpec,
    tx: SyncSender<Frame>,
    state: Arc<AtomicU8>,
    source: Option<Box<dyn FrameSource>>,
    /// Index of the next part to open.
    next_part: usize,
    /// A frame the queue had no room for yet.
    pending: Option<Frame>,
    /// Something has been played (a prompt whose every part fails is `Failed`).
    played_any: bool,
    /// Samples of the current 20 ms frame already filled (parts are joined without gaps).
    partial: Frame,
    partial_len: usize,
}

/// The thread that reads prompts ahead of the media workers.
pub struct PromptReader {
    jobs: mpsc::Sender<Job>,
}

impl PromptReader {
    pub fn start() -> io::Result<PromptReader> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new().name("prompts".into()).spawn(move || run_reader(rx))?;
        Ok(PromptReader { jobs: tx })
    }

    /// Starts reading a prompt; returns the worker's end. Does no I/O on the caller's
    /// thread (the file is opened by the reader).
    pub fn open(&self, id: PromptId, spec: PromptSpec) -> Playing {
        let (tx, rx) = mpsc::sync_channel(AHEAD_FRAMES);
        let state = Arc::new(AtomicU8::new(RUNNING));
        let barge_in = spec.barge_in;
        let job = Job {
            spec,
            tx,
            state: state.clone(),
            source: None,
            next_part: 0,
            pending: None,
            played_any: false,
            partial: SILENCE,
            partial_len: 0,
        };
        if self.jobs.send(job).is_err() {
            // The reader is gone (shutdown): the prompt ends at once.
            state.store(FAILED, Ordering::Release);
        }
        Playing { id, barge_in, frames: rx, state }
    }
}

fn run_reader(rx: Receiver<Job>) {
    let mut active: Vec<Job> = Vec::new();
    loop {
        let next = if active.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(REFILL_EVERY)
        };
        match next {
            Ok(job) => active.push(job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(job) = rx.try_recv() {
            active.push(job);
        }
        active.retain_mut(fill);
    }
}

/// Tops one prompt's queue up. False when the job is done (played out or abandoned).
fn fill(job: &mut Job) -> bool {
    loop {
        let frame = match job.pending.take() {
            Some(f) => f,
            None => match next_frame(job) {
                Some(f) => f,
                None => {
                    let end = if job.played_any { FINISHED } else { FAILED };
                    job.state.store(end, Ordering::Release);
                    return false; // dropping the sender tells the worker
                }
            },
        };
        match job.tx.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(f)) => {
                job.pending = Some(f);
                return true;
            }
            // The worker dropped the prompt (stopped, replaced, leg gone).
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// The next full 20 ms frame of the prompt, crossing part boundaries; the last frame
/// is padded with silence. None when every part (and repetition) is played.
fn next_frame(job: &mut Job) -> Option<Frame> {
    let mut repeats_without_audio = 0;
    loop {
        if job.source.is_none() {
            if job.next_part >= job.spec.parts.len() {
                // Repeat only a prompt that produced audio, or it would spin forever.
                if job.spec.repeat && job.played_any && repeats_without_audio == 0 {
                    job.next_part = 0;
                    repeats_without_audio += 1;
                } else if job.partial_len > 0 {
                    job.partial[job.partial_len..].fill(0);
                    job.partial_len = 0;
                    return Some(job.partial);
                } else {
                    return None;
                }
            }
            let part = job.spec.parts[job.next_part].clone();
            job.next_part += 1;
            match open_part(&part) {
                Ok(s) => job.source = Some(s),
                Err(e) => {
                    tracing::warn!(part = ?part, error = %e, "prompt part cannot be played; skipped");
                    continue;
                }
            }
        }
        let source = job.source.as_mut().expect("opened above");
        let want = FRAME_SAMPLES - job.partial_len;
        match source.read(&mut job.partial[job.partial_len..]) {
            Ok(0) => job.source = None,
            Ok(n) => {
                repeats_without_audio = 0;
                job.played_any = true;
                job.partial_len += n;
                if n == want {
                    job.partial_len = 0;
                    return Some(job.partial);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "prompt file read failed; rest of the part skipped");
                job.source = None;
            }
        }
    }
}

/// 16 kHz mono samples from one part.
trait FrameSource: Send {
    /// Fills `out` with up to `out.len()` samples; 0 = the part is over.
    fn read(&mut self, out: &mut [i16]) -> io::Result<usize>;
}

fn open_part(part: &PromptPart) -> io::Result<Box<dyn FrameSource>> {
    match part {
        PromptPart::File(path) => Ok(Box::new(WavSource::open(path)?)),
        PromptPart::Tone { freqs, ms, level_dbfs } => Ok(Box::new(ToneSource::new(freqs, *ms, *level_dbfs))),
    }
}

struct ToneSource {
    /// Phase increments (radians per sample) and current phases.
    steps: Vec<(f64, f64)>,
    amplitude: f64,
    left: usize,
}

impl ToneSource {
    fn new(freqs: &[f32], ms: u32, level_dbfs: f32) -> ToneSource {
        let rate = crate::MIX_RATE as f64;
        ToneSource {
            steps: freqs.iter().map(|&f| (2.0 * std::f64::consts::PI * f as f64 / rate, 0.0)).collect(),
            amplitude: 32767.0 * 10f64.powf(level_dbfs as f64 / 20.0),
            left: (ms as usize * crate::MIX_RATE as usize) / 1000,
        }
    }
}

impl FrameSource for ToneSource {
    fn read(&mut self, out: &mut [i16]) -> io::Result<usize> {
        let n = out.len().min(self.left);
        for o in out[..n].iter_mut() {
            let mut v = 0.0;
            for (step, phase) in self.steps.iter_mut() {
                v += phase.sin();
                *phase += *step;
            }
            *o = (v * self.amplitude).clamp(-32768.0, 32767.0) as i16;
        }
        self.left -= n;
        Ok(n)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SampleFormat {
    Pcm16,
    Pcm8,
    Ulaw,
    Alaw,
}

/// A WAV file read a block at a time, mixed down to mono and resampled to 16 kHz.
struct WavSource {
    file: BufReader<File>,
    format: SampleFormat,
    channels: usize,
    rate: u32,
    /// Bytes of sample data left in the `data` chunk.
    left: u64,
    /// Source-rate mono samples decoded and not yet resampled.
    raw: Vec<i16>,
    /// 16 kHz samples ready.
    ready: VecDeque<i16>,
    up: Upsampler,
    down3: Decimator3,
}

/// Source samples decoded per refill (about 20 ms at 48 kHz).
const READ_SAMPLES: usize = 960;

impl WavSource {
    fn open(path: &Path) -> io::Result<WavSource> {
        let mut file = BufReader::new(File::open(path)?);
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let mut hdr = [0u8; 12];
        file.read_exact(&mut hdr)?;
        if &hdr[0..4] != b"RIFF" || &hdr[8..12] != b"WAVE" {
            return Err(bad("not a RIFF/WAVE file"));
        }
        let mut fmt: Option<(SampleFormat, usize, u32)> = None;
        loop {
            let mut ch = [0u8; 8];
            file.read_exact(&mut ch).map_err(|_| bad("no data chunk"))?;
            let size = u32::from_le_bytes(ch[4..8].try_into().expect("4 bytes")) as u64;
            match &ch[0..4] {
                b"fmt " => {
                    if !(16..=64).contains(&size) {
                        return Err(bad("bad fmt chunk"));
                    }
                    let mut f = vec![0u8; size as usize];
                    file.read_exact(&mut f)?;
                    let mut tag = u16::from_le_bytes([f[0], f[1]]);
                    let channels = u16::from_le_bytes([f[2], f[3]]) as usize;
                    let rate = u32::from_le_bytes(f[4..8].try_into().expect("4 bytes"));
                    let bits = u16::from_le_bytes([f[14], f[15]]);
                    // WAVE_FORMAT_EXTENSIBLE: the real format is the sub-format GUID's first two bytes.
                    if tag == 0xFFFE && f.len() >= 26 {
                        tag = u16::from_le_bytes([f[24], f[25]]);
                    }
                    let format = match (tag, bits) {
                        (1, 16) => SampleFormat::Pcm16,
                        (1, 8) => SampleFormat::Pcm8,
                        (7, 8) => SampleFormat::Ulaw,
                        (6, 8) => SampleFormat::Alaw,
                        _ => return Err(bad(&format!("unsupported sample format (tag {tag}, {bits} bits): use 16-bit PCM, 8-bit PCM, µ-law or A-law"))),
                    };
                    if !(1..=2).contains(&channels) {
                        return Err(bad("only mono and stereo files are played"));
                    }
                    if ![8_000, 16_000, 48_000].contains(&rate) {
                        return Err(bad(&format!("sample rate {rate} Hz: prompts must be 8, 16 or 48 kHz")));
                    }
                    if size % 2 == 1 {
                        file.seek(SeekFrom::Current(1))?;
                    }
                    fmt = Some((format, channels, rate));
                }
                b"data" => {
                    let (format, channels, rate) = fmt.ok_or_else(|| bad("data chunk before fmt chunk"))?;
                    return Ok(WavSource {
                        file,
                        format,
                        channels,
                        rate,
                        left: size,
                        raw: Vec::with_capacity(READ_SAMPLES),
                        ready: VecDeque::with_capacity(READ_SAMPLES * 2),
                        up: Upsampler::new(),
                        down3: Decimator3::new(),
                    });
                }
                _ => {
                    file.seek(SeekFrom::Current((size + (size & 1)) as i64))?;
                }
            }
        }
    }

    /// Decodes the next block of the file into `ready`. False at the end of the data.
    fn refill(&mut self) -> io::Result<bool> {
        let bytes_per_sample = if self.format == SampleFormat::Pcm16 { 2 } else { 1 };
        let frame_bytes = bytes_per_sample * self.channels;
        let want = (READ_SAMPLES * frame_bytes) as u64;
        let n = want.min(self.left - self.left % frame_bytes as u64) as usize;
        if n == 0 {
            return Ok(false);
        }
        let mut buf = [0u8; READ_SAMPLES * 4];
        let got = read_up_to(&mut self.file, &mut buf[..n])?;
        let got = got - got % frame_bytes;
        if got == 0 {
            // A file shorter than its header says: play what there was.
            self.left = 0;
            return Ok(false);
        }
        self.left -= got as u64;
        self.raw.clear();
        for fr in buf[..got].chunks_exact(frame_bytes) {
            let mut acc = 0i32;
            for s in fr.chunks_exact(bytes_per_sample) {
                acc += match self.format {
                    SampleFormat::Pcm16 => i16::from_le_bytes([s[0], s[1]]) as i32,
                    SampleFormat::Pcm8 => (s[0] as i32 - 128) << 8,
                    SampleFormat::Ulaw => crate::codec::g711::ulaw_decode(s[0]) as i32,
                    SampleFormat::Alaw => crate::codec::g711::alaw_decode(s[0]) as i32,
                };
            }
            self.raw.push((acc / self.channels as i32) as i16);
        }
        let mut out = [0i16; READ_SAMPLES * 2];
        let produced = match self.rate {
            8_000 => self.up.process(&self.raw, &mut out),
            16_000 => {
                out[..self.raw.len()].copy_from_slice(&self.raw);
                self.raw.len()
            }
            _ => self.down3.process(&self.raw, &mut out),
        };
        self.ready.extend(&out[..produced]);
        Ok(true)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl FrameSource for WavSource {
    fn read(&mut self, out: &mut [i16]) -> io::Result<usize> {
        while self.ready.len() < out.len() {
            if !self.refill()? {
                break;
            }
        }
        let n = out.len().min(self.ready.len());
        for (o, s) in out[..n].iter_mut().zip(self.ready.drain(..n)) {
            *o = s;
        }
        Ok(n)
    }
}

/// 48 kHz → 16 kHz: a windowed-sinc low-pass at 7.2 kHz, keeping every third output.
/// Runs on the reader thread only, so it is written plainly.
struct Decimator3 {
    taps: Vec<f32>,
    history: VecDeque<f32>,
    /// Input samples since the last output (0..3).
    phase: usize,
}

impl Decimator3 {
    const TAPS: usize = 95;

    fn new() -> Decimator3 {
        let n = Self::TAPS;
        let fc = 7_200.0 / 48_000.0; // cutoff as a fraction of the input rate
        let mid = (n - 1) as f64 / 2.0;
        let mut taps: Vec<f32> = (0..n)
            .map(|i| {
                let x = i as f64 - mid;
                let sinc = if x == 0.0 { 2.0 * fc } else { (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x) };
                // Blackman window: ~75 dB stopband, enough for prompts.
                let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos()
                    + 0.08 * (4.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
                (sinc * w) as f32
            })
            .collect();
        let sum: f32 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        Decimator3 { taps, history: VecDeque::from(vec![0.0; n]), phase: 0 }
    }

    fn process(&mut self, input: &[i16], out: &mut [i16]) -> usize {
        let mut written = 0;
        for &s in input {
            self.history.pop_front();
            self.history.push_back(s as f32);
            self.phase += 1;
            if self.phase == 3 {
                self.phase = 0;
                if written < out.len() {
                    let v: f32 = self.history.iter().zip(&self.taps).map(|(h, t)| h * t).sum();
                    out[written] = v.round().clamp(-32768.0, 32767.0) as i16;
                    written += 1;
                }
            }
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::goertzel;

    fn write_wav(path: &Path, rate: u32, channels: u16, tag: u16, bits: u16, samples: &[u8]) {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + 12 + samples.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVE");
        // An unknown chunk before fmt, as some editors write.
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(b"INFO");
        v.extend_from_slice(b"fmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        v.extend_from_slice(&(rate * block as u32).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        v.extend_from_slice(samples);
        std::fs::write(path, v).unwrap();
    }

    fn tone_pcm16(rate: u32, freq: f64, ms: u32, channels: u16) -> Vec<u8> {
        let n = rate as usize * ms as usize / 1000;
        let mut v = Vec::new();
        for i in 0..n {
            let s = (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16;
            for _ in 0..channels {
                v.extend_from_slice(&s.to_le_bytes());
            }
        }
        v
    }

    /// Plays a prompt through the reader as a worker would, collecting every frame.
    fn play_all(spec: PromptSpec) -> (Vec<i16>, PromptEnd) {
        let reader = PromptReader::start().unwrap();
        let p = reader.open(PromptId(1), spec);
        let mut out = Vec::new();
        let mut f = SILENCE;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match p.next_frame(&mut f) {
                Some(true) => out.extend_from_slice(&f),
                Some(false) => std::thread::sleep(Duration::from_millis(1)),
                None => return (out, p.end()),
            }
            assert!(std::time::Instant::now() < deadline, "prompt never ended");
        }
    }

    /// Share of the power at `freq` (about 1.0 for a pure tone).
    fn share(samples: &[i16], freq: f64) -> f64 {
        goertzel::tone_share(samples, 16_000, freq, 100.0)
    }

    #[test]
    fn files_at_8_16_and_48_khz_play_at_the_mixing_rate() {
        let dir = std::env::temp_dir().join(format!("sb-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (rate, channels) in [(8_000, 1), (16_000, 1), (48_000, 2)] {
            let path = dir.join(format!("t{rate}.wav"));
            write_wav(&path, rate, channels, 1, 16, &tone_pcm16(rate, 1_000.0, 1_000, channels));
            let (pcm, end) = play_all(PromptSpec::once(vec![PromptPart::File(path)]));
            assert_eq!(end, PromptEnd::Finished);
            // One second of audio, in whole frames.
            assert_eq!(pcm.len(), 16_000, "{rate} Hz");
            let mid = &pcm[4_000..12_000];
            let on = share(mid, 1_000.0);
            assert!(on > 0.95, "{rate} Hz: share of 1 kHz {on}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn parts_join_tones_repeat_and_bad_parts_are_skipped() {
        let parts = parse_tones("440+480/100,0/50").unwrap();
        assert_eq!(parts.len(), 2);
        let mut spec = PromptSpec::once(vec![PromptPart::File("/nonexistent/x.wav".into())]);
        spec.parts.extend(parts);
        let (pcm, end) = play_all(spec);
        assert_eq!(end, PromptEnd::Finished);
        assert_eq!(pcm.len(), 2_560); // 150 ms, the last frame padded
        let (a, b) = (share(&pcm[..1_600], 440.0), share(&pcm[..1_600], 480.0));
        assert!(a > 0.4 && b > 0.4 && a + b > 0.95, "440 {a}, 480 {b}");
        assert!(pcm[1_700..].iter().all(|&s| s == 0));

        let (pcm, end) = play_all(PromptSpec::once(vec![PromptPart::File("/nonexistent/x.wav".into())]));
        assert_eq!((pcm.len(), end), (0, PromptEnd::Failed));

        assert!(parse_tones("440/0").is_err());
        assert!(parse_tones("9000/10").is_err());
        assert!(parse_tones("1+2+3/10").is_err());
        assert!(parse_tones("").is_err());
    }

    #[test]
    fn a_repeating_prompt_plays_until_dropped_and_the_reader_lets_it_go() {
        let reader = PromptReader::start().unwrap();
        let p = reader.open(PromptId(2), PromptSpec { parts: parse_tones("1000/30").unwrap(), repeat: true, barge_in: false });
        let mut f = SILENCE;
        let mut frames = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while frames < 100 {
            if p.next_frame(&mut f) == Some(true) {
                frames += 1;
            }
            assert!(std::time::Instant::now() < deadline);
        }
        drop(p); // the reader sees the queue closed and forgets the job
    }

    #[test]
    fn ulaw_and_alaw_files_play() {
        let dir = std::env::temp_dir().join(format!("sb-prompt-law-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for tag in [6u16, 7] {
            let pcm = tone_pcm16(8_000, 600.0, 500, 1);
            let bytes: Vec<u8> = pcm
                .chunks_exact(2)
                .map(|b| {
                    let s = i16::from_le_bytes([b[0], b[1]]);
                    if tag == 7 { crate::codec::g711::ulaw_encode(s) } else { crate::codec::g711::alaw_encode(s) }
                })
                .collect();
            let path = dir.join(format!("law{tag}.wav"));
            write_wav(&path, 8_000, 1, tag, 8, &bytes);
            let (out, end) = play_all(PromptSpec::once(vec![PromptPart::File(path)]));
            assert_eq!((out.len(), end), (8_000, PromptEnd::Finished));
            assert!(share(&out[2_000..6_000], 600.0) > 0.95);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
