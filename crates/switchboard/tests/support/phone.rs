//! A pjsua2 phone for end-to-end call tests (`pj_peer.py` with `--control`/`--events`),
//! and the server's event log as those tests read it.

use super::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A 30 s sine of `hz` at 8 kHz (made once per test dir).
pub fn tone(env: &TestEnv, hz: u32) -> PathBuf {
    let wav = env.path(&format!("tone{hz}.wav"));
    if !wav.exists() {
        let sox = require_tool("sox");
        let ok = Command::new(sox)
            .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
            .arg(&wav)
            .args(["synth", "30", "sine", &hz.to_string(), "vol", "0.5"])
            .status()
            .expect("sox");
        assert!(ok.success(), "sox made no tone");
    }
    wav
}

/// A registered pjsua2 phone (pj_peer.py) driven through its control file, reporting
/// through its events file (JSON lines; `t` = seconds since the phone started).
pub struct Phone {
    pub peer: PjPeer,
    pub control: PathBuf,
    pub events: PathBuf,
    pub record: PathBuf,
    pub log: PathBuf,
}

impl Phone {
    /// A phone registered as `user@domain` through `server`, playing a tone of `hz` and
    /// recording what it hears. `call`: the extension to call once registered (None:
    /// answer every call). `extra`: more pj_peer.py options.
    pub fn start(env: &TestEnv, server: &Server, slot: u16, (user, domain, password): (&str, &str, &str), hz: u32, call: Option<&str>, extra: &[&str]) -> Phone {
        let control = env.path(&format!("{user}.control"));
        let events = env.path(&format!("{user}.events"));
        let record = env.path(&format!("{user}_rx.wav"));
        std::fs::write(&control, "").unwrap();
        let (rtp, rtp_range) = env.ports.phone_rtp(slot);
        let mut args: Vec<String> = vec![if call.is_some() { "call".into() } else { "answer".into() }];
        if let Some(ext) = call {
            args.push(format!("sip:{ext}@{domain}"));
        }
        args.extend(
            [
                "--registrar", &format!("sip:{domain}"), "--proxy", &format!("sip:{};lr", server.sip), "--domain", domain,
                "--user", user, "--password", password,
                "--sip-port", &env.ports.peer_sip(slot).to_string(),
                "--rtp-port", &rtp.to_string(), "--rtp-range", &rtp_range.to_string(),
                "--play", &tone(env, hz).display().to_string(), "--loop",
                "--record", &record.display().to_string(),
                "--control", &control.display().to_string(), "--events", &events.display().to_string(),
                "--max-time", "60",
            ]
            .map(String::from),
        );
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut peer = PjPeer::spawn(env, user, &args);
        peer.wait_ready(Duration::from_secs(15));
        let log = env.path(&format!("{user}.pj.log"));
        let phone = Phone { peer, control, events, record, log };
        phone.wait_event("registered", 15, |e| e["event"] == "reg" && e["code"] == 200);
        phone
    }

    pub fn command(&self, line: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.control).unwrap();
        writeln!(f, "{line}").unwrap();
    }

    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Waits for an event matching `pred`; returns it.
    pub fn wait_event(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        poll(Duration::from_secs(secs), what, || self.events().into_iter().find(|e| pred(e)))
    }

    /// When the recording started (the first active media), in the phone's time.
    pub fn record_t0(&self) -> f64 {
        self.wait_event("media active", 20, |e| e["event"] == "media" && e["status"] == "active")["t"].as_f64().unwrap()
    }

    pub fn quit(self) -> PjRun {
        self.command("quit");
        self.peer.wait()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The phones' own clock, now (the newest event time is a lower bound; a command
/// echo gives a fresh one).
pub fn phone_now(p: &Phone) -> f64 {
    let n = p.events().len();
    p.command("noop");
    let e = poll(Duration::from_secs(5), "the phone's clock", || p.events().get(n..).and_then(|v| v.iter().find(|e| e["event"] == "error" || e["event"] == "command").cloned()));
    e["t"].as_f64().unwrap()
}

/// Server events of `kind` so far.
pub fn server_events(server: &Server, kind: &str) -> Vec<Value> {
    let r = server.get("/v1/events?after=0&limit=10000");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().cloned().unwrap_or_default().into_iter().filter(|e| e["type"] == kind).collect()
}

pub fn wait_server_event(server: &Server, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    poll(Duration::from_secs(20), kind, || server_events(server, kind).into_iter().find(|e| pred(e)))
}

/// 16-bit PCM samples and the rate of a WAV file (pjsua2's recordings).
pub fn read_wav(path: &Path) -> (Vec<i16>, u32) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (rate, samples) = wav_samples(&data);
    (samples, rate)
}

/// The rate and 16-bit PCM samples of a WAV file's bytes (recordings, downloads).
pub fn wav_samples(data: &[u8]) -> (u32, Vec<i16>) {
    assert_eq!(&data[0..4], b"RIFF", "not a WAV");
    let mut at = 12;
    let mut rate = 0;
    while at + 8 <= data.len() {
        let id = &data[at..at + 4];
        let size = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &data[at + 8..(at + 8 + size).min(data.len())];
        if id == b"fmt " {
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            assert_eq!(u16::from_le_bytes([body[14], body[15]]), 16, "16-bit recordings");
        } else if id == b"data" {
            return (rate, body.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect());
        }
        at += 8 + size + (size & 1);
    }
    panic!("no data chunk");
}

/// Share of the power at `hz` in `s` (about 1 for a pure tone; 0 for silence).
pub fn share(s: &[i16], rate: u32, hz: f64) -> f64 {
    media::dsp::goertzel::tone_share(s, rate, hz, 0.0)
}

pub fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

/// A pjsua2 phone calling `uri` (no registration), playing `hz`, driven by its control
/// file: `dtmf 12#`, `dtmf_info 12#`, `quit`.
pub struct Caller {
    peer: PjPeer,
    control: PathBuf,
    events: PathBuf,
    record: PathBuf,
}

impl Caller {
    pub fn call(env: &TestEnv, slot: u16, user: &str, uri: &str, hz: u32) -> Caller {
        let control = env.path(&format!("{user}.control"));
        let events = env.path(&format!("{user}.events"));
        let record = env.path(&format!("{user}_rx.wav"));
        std::fs::write(&control, "").unwrap();
        let (rtp, range) = env.ports.phone_rtp(slot);
        let args: Vec<String> = [
            "call", uri, "--user", user,
            "--sip-port", &env.ports.peer_sip(slot).to_string(),
            "--rtp-port", &rtp.to_string(), "--rtp-range", &range.to_string(),
            "--play", &phone::tone(env, hz).display().to_string(), "--loop",
            "--record", &record.display().to_string(),
            "--control", &control.display().to_string(), "--events", &events.display().to_string(),
            "--max-time", "60", "--codec", "PCMU",
        ]
        .map(String::from)
        .to_vec();
        env.report_on_failure(&record);
        let mut peer = PjPeer::spawn(env, user, &args);
        peer.wait_ready(Duration::from_secs(15));
        Caller { peer, control, events, record }
    }

    pub fn command(&self, line: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.control).unwrap();
        writeln!(f, "{line}").unwrap();
    }

    pub fn wait_media(&self) {
        poll(Duration::from_secs(15), "media active", || {
            std::fs::read_to_string(&self.events)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["event"] == "media" && e["status"] == "active")
        });
    }

    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Waits until the call is over (hung up by the far end, or failed).
    pub fn wait_disconnected(&self, secs: u64) -> Value {
        poll(Duration::from_secs(secs), "the call is disconnected", || self.events().into_iter().find(|e| e["event"] == "state" && e["state"] == "DISCONNECTED"))
    }

    /// Hangs up and ends the phone: its run, and its recording.
    pub fn quit(self) -> (PjRun, PathBuf) {
        self.command("quit");
        (self.peer.wait(), self.record)
    }
}
