#!/usr/bin/env python3
"""PESQ (ITU-T P.862, the `pesq` package) of a recording against the speech it carries.

  pesq_score.py REF.wav DEG.wav --mode wb|nb

REF is the clean speech that was played into a call; DEG is a recording of what the far
end heard: longer, starting at some unknown time before the speech arrived. The speech is
found in DEG by cross-correlation, the matching stretch (REF's length) is cut out, and both
go to `pesq.pesq`: mode `wb` (P.862.2 wideband, at 16 kHz) or `nb` (P.862, both low-passed
and taken to 8 kHz).
Both files must be mono 16-bit; 8, 16 or 48 kHz (resampled to 16 kHz here).

Prints one JSON line: {"score": ..., "offset_s": ..., "correlation": ...}. `correlation`
(normalised, 0..1) tells whether the speech was found at all; the caller checks it.
"""
import argparse, json, sys, wave
import numpy as np
from pesq import pesq

RATE = 16000


def read(path):
    with wave.open(path, 'rb') as w:
        if w.getsampwidth() != 2:
            raise SystemExit('%s: not 16-bit PCM' % path)
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype='<i2').astype(np.float64)
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return resample(x, rate)


def lowpass(n_taps, cutoff):
    """Windowed-sinc FIR, cutoff as a fraction of the sampling rate."""
    k = np.arange(n_taps) - (n_taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * k) * np.blackman(n_taps)
    return h / h.sum()


def resample(x, rate):
    if rate == RATE:
        return x
    if rate == 48000:
        return np.convolve(x, lowpass(191, 7600 / 48000), mode='same')[::3]
    if rate == 8000:
        up = np.zeros(2 * len(x))
        up[::2] = x
        return 2 * np.convolve(up, lowpass(127, 3900 / 16000), mode='same')
    raise SystemExit('unsupported rate %d' % rate)


def align(ref, deg):
    """Offset of REF inside DEG (samples, >= 0) and the normalised correlation there."""
    n = 1 << int(np.ceil(np.log2(len(ref) + len(deg))))
    xc = np.fft.irfft(np.fft.rfft(deg, n) * np.conj(np.fft.rfft(ref, n)), n)[:len(deg)]
    off = int(np.argmax(xc))
    seg = deg[off:off + len(ref)]
    denom = np.sqrt(np.sum(ref[:len(seg)] ** 2) * np.sum(seg ** 2)) or 1.0
    return off, float(xc[off] / denom)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('ref')
    ap.add_argument('deg')
    ap.add_argument('--mode', choices=['wb', 'nb'], default='wb')
    a = ap.parse_args()
    ref, deg = read(a.ref), read(a.deg)
    off, corr = align(ref, deg)
    cut = deg[off:off + len(ref)]
    if len(cut) < len(ref):
        cut = np.concatenate([cut, np.zeros(len(ref) - len(cut))])
    rate = RATE
    if a.mode == 'nb':
        # Narrowband PESQ compares telephone-band signals: both at 8 kHz.
        h = lowpass(127, 3800 / 16000)
        ref, cut, rate = np.convolve(ref, h, mode='same')[::2], np.convolve(cut, h, mode='same')[::2], 8000
    score = pesq(rate, np.clip(ref, -32768, 32767).astype(np.int16), np.clip(cut, -32768, 32767).astype(np.int16), a.mode)
    print(json.dumps(dict(score=round(float(score), 3), offset_s=round(off / RATE, 3), correlation=round(corr, 3),
                          mode=a.mode)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
