#!/usr/bin/env python3
"""Self-test of wav_tones.py on synthetic recordings made here with numpy.

Each case writes a WAV into a temporary directory, runs wav_tones.py's command line on
it (as the end-to-end tests do) and checks the exit code and the verdicts.  The cases
are the ways the old whole-window FFT check was fooled (issue 8, finding 1) plus the
shapes real recordings have.  Prints one line per case, then 'N passed, M failed';
exits 0 only if nothing failed.  Run by crates/switchboard/tests/kit_checks.rs.

  test_wav_tones.py [-k SUBSTRING] [--keep DIR]
"""
import argparse, contextlib, io, json, os, subprocess, sys, tempfile, wave
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, 'wav_tones.py')
sys.path.insert(0, HERE)
import wav_tones
RATE = 16000                      # pjsua2 records at its bridge clock, 16 kHz
FRAME = RATE // 50                # 20 ms
RNG = np.random.default_rng(8)    # fixed seed: the same inputs every run


def tone(hz, seconds, rate=RATE, amp=0.5, phase=0.0):
    t = np.arange(int(round(seconds * rate))) / rate
    return amp * np.sin(2 * np.pi * hz * t + phase)


def write_wav(path, x, rate=RATE, channels=1, finalise=True):
    pcm = (np.clip(x, -1, 32767 / 32768) * 32768).astype('<i2')
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
    with wave.open(path, 'wb') as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    if not finalise:              # as pjsua leaves it until the recorder is destroyed
        with open(path, 'r+b') as f:
            f.seek(4); f.write(b'\0\0\0\0')
            f.seek(40); f.write(b'\0\0\0\0')


def ulaw_roundtrip(x):
    """G.711 mu-law companding and back (continuous approximation, 8-bit quantised)."""
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round(y * 127) / 127
    return np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu


def zero_frames(x, frac, frame=FRAME, offset=0, run=1, rate=RATE):
    """Zero `frac` of the 20 ms frames, in runs of `run` frames, on a grid starting at `offset` samples."""
    x = x.copy()
    n = (len(x) - offset) // frame
    starts = np.arange(0, n - run, run)
    k = int(round(frac * n / run))
    for s in RNG.choice(starts, size=k, replace=False):
        x[offset + s * frame: offset + (s + run) * frame] = 0.0
    return x


class Suite:
    def __init__(self, tmp, only):
        self.tmp, self.only = tmp, only
        self.passed = self.failed = 0

    def run(self, wav, *args):
        """The checker's command line, in this process (numpy loads once): (exit code, verdict)."""
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = wav_tones.main([wav] + [str(a) for a in args])
        lines = [l for l in buf.getvalue().splitlines() if l.startswith('{')]
        return rc, (json.loads(lines[-1]) if lines else {'stdout': buf.getvalue()})

    def case(self, name, x, args, want_rc, check=None, rate=RATE, **wav_kw):
        """Writes x, runs the checker with args; passes if the exit code is want_rc and check(verdict) holds."""
        if self.only and self.only not in name:
            return
        path = os.path.join(self.tmp, name.replace(' ', '_').replace('/', '_') + '.wav')
        write_wav(path, x, rate=rate, **wav_kw)
        rc, v = self.run(path, *args)
        problem = None
        if rc != want_rc:
            problem = 'exit %d, wanted %d' % (rc, want_rc)
        elif check is not None:
            try:
                check(v)
            except AssertionError as e:
                problem = 'check failed: %s' % e
        if problem:
            self.failed += 1
            print('FAIL %s: %s\n     %s' % (name, problem, json.dumps(v)))
        else:
            self.passed += 1
            t = v.get('tones', {})
            brief = ' '.join('%s:%s/%s%%/gap%s' % (f, d.get('verdict', '-'), d['present_pct'], d['longest_gap_ms'])
                             for f, d in t.items())
            print('PASS %s  [%s; %s]' % (name, v.get('verdict'), brief))


def need(cond, v):
    if not cond:
        raise AssertionError(json.dumps(v))


def tone_of(v, f):
    return v['tones'][str(f)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-k', default='', help='run only cases whose name contains this')
    ap.add_argument('--keep', default='', help='write the WAVs here and keep them')
    a = ap.parse_args()
    tmp = a.keep or tempfile.mkdtemp(prefix='wav_tones_test.')
    os.makedirs(tmp, exist_ok=True)
    s = Suite(tmp, a.k)
    W = ['--from', '0.5', '--until', '4.5']         # the usual window: 4 s = 200 frames

    # --- clean signals pass --------------------------------------------------------------
    clean = tone(440, 5)
    def heard_fully(f):
        def c(v):
            t = tone_of(v, f)
            assert t['verdict'] == 'hears' and t['present_pct'] == 100.0 and t['longest_gap_ms'] == 0, t
        return c
    s.case('clean 440 hears', clean, ['--expect', 440] + W, 0, heard_fully(440))
    s.case('clean 440, 1000 absent', clean, ['--expect', 440, '--absent', 1000] + W, 0,
           lambda v: need(tone_of(v, 1000)['verdict'] == 'does not hear', v))
    s.case('clean 440 after G.711 with noise at -40 dB',
           ulaw_roundtrip(clean + RNG.normal(0, 0.005, len(clean))),
           ['--expect', 440, '--absent', 1000, '--absent', 1700] + W, 0, heard_fully(440))
    s.case('clean 1000 at 48 kHz stereo (baresip)', tone(1000, 5, rate=48000),
           ['--expect', 1000, '--absent', 440] + W, 0, heard_fully(1000), rate=48000, channels=2)
    s.case('clean 440 at 8 kHz', tone(440, 5, rate=8000), ['--expect', 440, '--absent', 1000] + W, 0,
           heard_fully(440), rate=8000)
    s.case('unfinished WAV header is read to the end', clean, ['--expect', 440] + W, 0, heard_fully(440),
           finalise=False)

    # --- finding 1: drop-outs the old check missed ------------------------------------------
    holes = zero_frames(clean, 0.15, offset=int(0.013 * RATE))
    def partial(f, lo, hi):
        def c(v):
            t = tone_of(v, f)
            assert t['verdict'] == 'partial' and lo <= t['present_pct'] <= hi, t
        return c
    s.case('15 % of 20 ms frames zeroed fails hears', holes, ['--expect', 440] + W, 1, partial(440, 80, 88))
    halves = clean.copy()                  # 10 ms holes inside frames: 10 % of frames touched
    for start in np.arange(int(0.6 * RATE), int(4.4 * RATE), int(0.2 * RATE)):
        halves[start + 37: start + 37 + RATE // 100] = 0.0
    s.case('10 ms holes inside frames fail hears', halves, ['--expect', 440] + W, 1, partial(440, 80, 92))
    long_gap = clean.copy()
    long_gap[int(2.0 * RATE): int(2.1 * RATE)] = 0.0   # 98 % present but one 100 ms hole
    s.case('one 100 ms hole fails hears', long_gap, ['--expect', 440] + W, 1,
           lambda v: need(tone_of(v, 440)['longest_gap_ms'] >= 100, v))
    s.case('one 100 ms hole passes a stated looser gap bound', long_gap,
           ['--expect', 440, '--max-gap-ms', 120] + W, 0)
    early = np.concatenate([tone(1000, 0.8), np.zeros(int(4.5 * RATE))])   # 1000 Hz in 0.5-0.8 s only
    s.case('1000 Hz only in the first 0.3 s of 4.3 s fails', early,
           ['--expect', 1000, '--from', 0.5, '--until', 4.8], 1,
           lambda v: need(tone_of(v, 1000)['present_pct'] < 10, v))
    early_live = np.concatenate([tone(1000, 0.8), tone(440, 4.5)])
    s.case('1000 Hz only in the first 0.3 s, 440 after, fails', early_live,
           ['--expect', 1000, '--expect', 440, '--from', 0.5, '--until', 4.8], 1,
           lambda v: need(tone_of(v, 1000)['verdict'] == 'partial'
                      and tone_of(v, 440)['verdict'] == 'partial', v))

    # --- absent tones cannot hide at the window's edges --------------------------------------
    for name, lo, hi in [('last 60 ms', 4.44, 4.5), ('first 40 ms', 0.5, 0.54), ('last 15 ms', 4.485, 4.5)]:
        x = clean.copy()
        x[int(lo * RATE): int(hi * RATE)] += tone(1000, hi - lo, phase=0.3)
        s.case('1000 Hz in the window\'s %s fails absent' % name, x, ['--expect', 440, '--absent', 1000] + W, 1,
               lambda v: need(tone_of(v, 1000)['detected_frames'] >= 1
                          and tone_of(v, 440)['verdict'] == 'hears', v))
    outside = clean.copy()                  # ...but just outside the window it is not counted
    outside[int(0.40 * RATE): int(0.48 * RATE)] += tone(1000, 0.08)
    outside[int(4.52 * RATE): int(4.6 * RATE)] += tone(1000, 0.08)
    s.case('1000 Hz 20 ms outside the window passes absent', outside, ['--expect', 440, '--absent', 1000] + W, 0)
    residue = clean.copy()                  # a -48 dBFS blip where the stream stops: codec residue
    residue[int(4.0 * RATE):] = 0.0
    residue[int(4.0 * RATE): int(4.04 * RATE)] = tone(1000, 0.04, amp=0.0056) + tone(440, 0.04, amp=0.01)
    s.case('1000 Hz residue at -48 dBFS is not detected', residue, ['--absent', 1000, '--allow-silent'] + W, 0)
    weak = clean + tone(1000, 5, amp=0.5 * 10 ** (-13 / 20))       # a leak 13 dB down, throughout
    s.case('1000 Hz 13 dB under 440 fails absent', weak, ['--expect', 440, '--absent', 1000] + W, 1)

    # --- silence is its own verdict ---------------------------------------------------------
    silent = np.zeros(5 * RATE)
    def is_silent(v):
        assert v['silent'] and v['verdict'] == 'silent', v
    s.case('silent recording is silent and fails absent', silent, ['--absent', 440] + W, 1, is_silent)
    s.case('silent recording fails expect', silent, ['--expect', 440] + W, 1,
           lambda v: need(tone_of(v, 440)['verdict'] == 'silent', v))
    s.case('silent recording passes absent with --allow-silent', silent, ['--absent', 440, '--allow-silent'] + W, 0,
           is_silent)
    s.case('near-silent (-60 dBFS noise) is silent', RNG.normal(0, 0.0005, 5 * RATE), ['--absent', 440] + W, 1,
           is_silent)
    half_dead = np.concatenate([tone(1700, 2.5), np.zeros(int(2.5 * RATE))])
    s.case('absent-only on a half-dead stream fails', half_dead, ['--absent', 440] + W, 1)
    s.case('absent-only on a live stream passes', tone(1700, 5), ['--absent', 440] + W, 0)

    # --- losses a jitter buffer would leave, and a looser bound ------------------------------
    lossy = zero_frames(clean, 0.03, offset=int(0.007 * RATE), run=2)   # 3 % of frames, 40 ms holes
    s.case('97 % with 40 ms gaps passes', lossy, ['--expect', 440] + W, 0,
           lambda v: need(94 <= tone_of(v, 440)['present_pct'] <= 98.5
                      and tone_of(v, 440)['longest_gap_ms'] == 40, v))
    s.case('85 % passes a stated looser bound', holes, ['--expect', 440, '--min-pct', 80, '--max-gap-ms', 200] + W, 0)
    fade = clean.copy()                     # concealment: repeat then fade over 80 ms, tone back after
    for start in np.arange(int(0.7 * RATE), int(4.3 * RATE), int(0.5 * RATE)):
        env = np.concatenate([np.ones(RATE // 100), np.linspace(1, 0.3, 3 * RATE // 100 - RATE // 100)])
        fade[start:start + len(env)] *= env
    s.case('concealment fades (to -10 dB over 60 ms) still hear', fade, ['--expect', 440] + W, 0, heard_fully(440))

    # --- mixes --------------------------------------------------------------------------------
    mix = tone(440, 5, amp=0.35) + tone(1000, 5, amp=0.35)
    s.case('two tones mixed, both heard, third absent', mix,
           ['--expect', 440, '--expect', 1000, '--absent', 1700] + W, 0,
           lambda v: need(tone_of(v, 440)['verdict'] == tone_of(v, 1000)['verdict'] == 'hears'
                      and tone_of(v, 1700)['verdict'] == 'does not hear', v))
    three = tone(440, 5, amp=0.3) + tone(1000, 5, amp=0.3) + tone(1700, 5, amp=0.3)
    s.case('three tones mixed, all heard', ulaw_roundtrip(three),
           ['--expect', 440, '--expect', 1000, '--expect', 1700, '--absent', 2500] + W, 0)
    mix_gap = mix.copy()
    mix_gap[int(2.0 * RATE): int(2.1 * RATE)] = tone(440, 0.1, amp=0.35, phase=2 * np.pi * 440 * 2.0)
    s.case('two tones, 1000 missing for 100 ms, fails', mix_gap, ['--expect', 440, '--expect', 1000] + W, 1,
           lambda v: need(tone_of(v, 440)['verdict'] == 'hears'
                      and tone_of(v, 1000)['longest_gap_ms'] >= 100, v))
    s.case('two tones mixed: 1000 is not absent', mix, ['--expect', 440, '--absent', 1000] + W, 1)

    # --- the window must fit the recording ------------------------------------------------------
    s.case('window past the end fails', clean, ['--expect', 440, '--from', 0.5, '--until', 7.0], 1,
           lambda v: v['problems'])

    # --- the command line as the harness runs it: a separate process, exit code --------------
    if not a.k or a.k in 'command line':
        path = os.path.join(tmp, 'cli.wav')
        write_wav(path, np.concatenate([clean[:2 * RATE], np.zeros(3 * RATE)]))
        rcs = [subprocess.run([sys.executable, CHECKER, path] + args, capture_output=True, timeout=120).returncode
               for args in (['--expect', '440', '--until', '1.9'], ['--expect', '440'])]
        if rcs == [0, 1]:
            s.passed += 1
            print('PASS command line exit codes %s' % rcs)
        else:
            s.failed += 1
            print('FAIL command line exit codes %s, wanted [0, 1]' % rcs)

    print('%d passed, %d failed' % (s.passed, s.failed))
    if not a.keep:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return 0 if s.failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
