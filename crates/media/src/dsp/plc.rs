//! Packet-loss concealment for codecs without their own (G.711, G.722).
//!
//! The approach is the one of ITU-T G.711 Appendix I, simplified: when a frame is
//! lost, find the pitch period of the last good audio (normalised
//! autocorrelation), and keep repeating that last period so voiced speech
//! continues smoothly instead of clicking or buzzing at the frame rate. The
//! repetition plays at full level for 10 ms, then fades linearly to silence by
//! 80 ms; a long gap is silence. When audio resumes, the first 5 ms of the good
//! frame are cross-faded from the continuing concealment, so there is no step.
//!
//! Works at the 16 kHz mixing rate on the decoder's output; fixed buffers only.

use crate::FRAME_SAMPLES;

/// Good audio kept for the pitch search and the repetition (40 ms).
const HISTORY: usize = 640;
/// Pitch search range: 400 Hz … ~67 Hz at 16 kHz.
const MIN_PITCH: usize = 40;
const MAX_PITCH: usize = 240;
/// Correlation window for the pitch search (10 ms).
const PITCH_WINDOW: usize = 160;
/// Concealed samples played at full level before the fade starts (10 ms).
const FULL_LEVEL: usize = 160;
/// Length of the fade to silence (70 ms), so concealment is silent from 80 ms.
const FADE: usize = 1120;
/// Cross-fade from concealment into the first good frame after a loss (5 ms).
const RECOVERY_OVERLAP: usize = 80;

/// Repeat-and-fade concealer for one decoder.
pub struct Concealer {
    /// The most recent good output, oldest first.
    history: [i16; HISTORY],
    /// How much of `history` holds real audio (0 before the first good frame).
    filled: usize,
    /// Repetition period chosen at the start of the current loss.
    pitch: usize,
    /// Samples concealed since the last good frame (0 = not in a loss).
    concealed: usize,
}

impl Default for Concealer {
    fn default() -> Self {
        Self::new()
    }
}

impl Concealer {
    pub fn new() -> Self {
        Self {
            history: [0; HISTORY],
            filled: 0,
            pitch: MIN_PITCH,
            concealed: 0,
        }
    }

    /// Record decoded audio. After a loss, first cross-fades its start from the
    /// concealment, in place.
    pub fn good_frame(&mut self, frame: &mut [i16]) {
        if self.concealed > 0 {
            let overlap = frame.len().min(RECOVERY_OVERLAP);
            for (i, sample) in frame[..overlap].iter_mut().enumerate() {
                let fade_in = (i + 1) as f32 / (overlap + 1) as f32;
                let continued = f32::from(self.synthesize(self.concealed + i));
                let mixed = fade_in * f32::from(*sample) + (1.0 - fade_in) * continued;
                *sample = mixed as i16;
            }
            self.concealed = 0;
        }
        let n = frame.len().min(HISTORY);
        self.history.copy_within(n.., 0);
        self.history[HISTORY - n..].copy_from_slice(&frame[frame.len() - n..]);
        self.filled = (self.filled + n).min(HISTORY);
    }

    /// Write one 20 ms frame of concealment into `out`; returns samples written.
    pub fn conceal(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(FRAME_SAMPLES);
        if self.concealed == 0 {
            self.pitch = self.find_pitch();
        }
        for (i, sample) in out[..n].iter_mut().enumerate() {
            *sample = self.synthesize(self.concealed + i);
        }
        // Saturate far beyond the fade so a long outage cannot overflow the counter.
        self.concealed = (self.concealed + n).min(FULL_LEVEL + FADE + RECOVERY_OVERLAP + 1);
        n
    }

    /// Concealment sample `k` samples into the loss: the last pitch period, repeated, faded.
    fn synthesize(&self, k: usize) -> i16 {
        if self.filled < MAX_PITCH || k >= FULL_LEVEL + FADE {
            return 0;
        }
        let gain = if k < FULL_LEVEL {
            1.0
        } else {
            1.0 - (k - FULL_LEVEL) as f32 / FADE as f32
        };
        let source = self.history[HISTORY - self.pitch + k % self.pitch];
        (gain * f32::from(source)) as i16
    }

    /// Lag in `MIN_PITCH..=MAX_PITCH` that best predicts the newest audio from
    /// the audio one lag earlier (normalised cross-correlation).
    fn find_pitch(&self) -> usize {
        // Work on 12-bit samples: 160 products then sum exactly in an i32, and the
        // integer dot products vectorise (this runs once per loss, ~200 lags).
        let mut scaled = [0i16; HISTORY];
        for (dst, &s) in scaled.iter_mut().zip(&self.history) {
            *dst = s >> 4;
        }
        let dot = |a: &[i16], b: &[i16]| -> i32 {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum()
        };
        let recent = &scaled[HISTORY - PITCH_WINDOW..];
        let mut best = (MIN_PITCH, f32::MIN);
        for lag in MIN_PITCH..=MAX_PITCH {
            let earlier = &scaled[HISTORY - PITCH_WINDOW - lag..HISTORY - lag];
            let energy = dot(earlier, earlier);
            let score = if energy > 0 {
                dot(recent, earlier) as f32 / (energy as f32).sqrt()
            } else {
                0.0
            };
            if score > best.1 {
                best = (lag, score);
            }
        }
        best.0
    }
}
