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

