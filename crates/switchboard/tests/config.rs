//! Configuration layering as a user meets it: TOML file, `SWITCHBOARD_*` environment,
//! flags; typos in a file are errors, unrelated `SWITCHBOARD_*` variables are not.

mod support;

use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(10);

fn exit_code(run: &CliRun) -> Option<i32> {
    run.status.and_then(|s| s.code())
}

#[test]
fn environment_nests_sections_and_ignores_foreign_prefixed_variables() {
    let env = TestEnv::new("config_env");
    // A nested key from the environment reaches the config: a bad gateway stops start-up.
    let bad = run_cli_with_env(&env, "env_gateway", &["serve"], &[("SWITCHBOARD_ROUTING__GATEWAY", "not a uri")], T);
    assert_eq!(exit_code(&bad), Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("routing gateway"), "{}", bad.stderr);

    // A variable of another tool sharing the prefix is reported and otherwise ignored:
    // start-up goes on to the real check (here: no token off loopback).
    let http = format!("0.0.0.0:{}", env.ports.peer_sip(1));
    let run = run_cli_with_env(
        &env,
        "foreign_var",
        &["serve", "--http-listen", &http],
        &[("SWITCHBOARD_TEST_VENV", "/somewhere"), ("SWITCHBOARD_NOT_A_KEY", "1")],
        T,
    );
    assert!(run.status.is_some_and(|s| !s.success()), "{}", run.stderr);
    assert!(run.stderr.contains("without an API token"), "{}", run.stderr);
    assert!(run.stderr.contains("SWITCHBOARD_NOT_A_KEY is not a configuration key"), "{}", run.stderr);
    assert!(!run.stderr.contains("configuration error"), "{}", run.stderr);
}

#[test]
fn unknown_key_in_the_file_is_an_error_and_flags_beat_the_environment() {
    let env = TestEnv::new("config_file");
    let file = env.path("switchboard.toml");
    std::fs::write(&file, "sip_listen = \"127.0.0.1:5060\"\nsip_lisen = \"127.0.0.1:5070\"\n").unwrap();
    let typo = run_cli(&env, "typo", &["serve", "--config", &file.display().to_string()], T);
    assert_eq!(exit_code(&typo), Some(2), "{}", typo.stderr);
    assert!(typo.stderr.contains("configuration error") && typo.stderr.contains("sip_lisen"), "{}", typo.stderr);

    // The flag wins over the environment: the environment's bad gateway is overridden.
    let http = format!("0.0.0.0:{}", env.ports.peer_sip(1));
    let run = run_cli_with_env(
        &env,
        "flag_wins",
        &["serve", "--gateway", "sip:127.0.0.1:5099", "--http-listen", &http],
        &[("SWITCHBOARD_ROUTING__GATEWAY", "not a uri")],
        T,
    );
    assert!(run.stderr.contains("without an API token"), "{}", run.stderr);
}

/// One layer's value for each kind of key: an address, a string, numbers, a nested key,
/// an enum and the secret.
struct Layer {
    name: &'static str,
    http: std::net::SocketAddr,
    domain: String,
    t1_ms: u64,
    workers: u64,
    gateway: String,
    port_mode: &'static str,
    token: String,
}

impl Layer {
    /// Layer `i` (0 file, 1 env, 2 flags) of the test's block: distinct HTTP ports and
    /// gateway ports where nothing listens.
    fn new(env: &TestEnv, i: u16, name: &'static str) -> Layer {
        Layer {
            name,
            http: std::net::SocketAddr::from((LOCALHOST, env.ports.peer_sip(5 + i))),
            domain: format!("{name}.test"),
            t1_ms: 300 - 100 * i as u64,
            workers: 3 - i as u64,
            gateway: format!("sip:127.0.0.1:{}", env.ports.peer_sip(2 + i)),
            port_mode: if i == 1 { "per-leg" } else { "shared" },
            token: format!("{name}-token-{i}"),
        }
    }
    fn toml(&self) -> String {
        format!(
            "http_listen = \"{}\"\ndomain = \"{}\"\nsip_t1_ms = {}\nmedia_workers = {}\napi_token = \"{}\"\n\
             [routing]\ngateway = \"{}\"\n[media]\nport_mode = \"{}\"\n",
            self.http, self.domain, self.t1_ms, self.workers, self.token, self.gateway, self.port_mode
        )
    }
    fn vars(&self) -> Vec<(String, String)> {
        [
            ("SWITCHBOARD_HTTP_LISTEN", self.http.to_string()),
            ("SWITCHBOARD_DOMAIN", self.domain.clone()),
            ("SWITCHBOARD_SIP_T1_MS", self.t1_ms.to_string()),
            ("SWITCHBOARD_MEDIA_WORKERS", self.workers.to_string()),
            ("SWITCHBOARD_API_TOKEN", self.token.clone()),
            ("SWITCHBOARD_ROUTING__GATEWAY", self.gateway.clone()),
            ("SWITCHBOARD_MEDIA__PORT_MODE", self.port_mode.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
    fn flags(&self) -> Vec<String> {
        [
            ("--http-listen", self.http.to_string()),
            ("--domain", self.domain.clone()),
            ("--sip-t1-ms", self.t1_ms.to_string()),
            ("--media-workers", self.workers.to_string()),
            ("--api-token", self.token.clone()),
            ("--gateway", self.gateway.clone()),
            ("--media-port-mode", self.port_mode.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    }
}

/// `switchboard serve` with exactly these flags and `SWITCHBOARD_*` variables (the
/// test's own are removed), its stderr in `<label>.log`; SIGTERM on drop.
struct Serve {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Serve {
    fn start(env: &TestEnv, label: &str, args: &[String], vars: &[(String, String)]) -> Serve {
        let log = env.path(&format!("{label}.log"));
        let mut cmd = std::process::Command::new(server_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
        let child = die_with_parent(&mut cmd)
            .arg("serve")
            .args(args)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start switchboard");
        env.report_on_failure(&log);
        Serve { child, log }
    }

    /// Waits until `/health` answers on `http` (the server listens where the winning layer said).
    fn wait_healthy(&mut self, http: std::net::SocketAddr) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited ({status}):\n{}", tail(&self.log, 20));
            }
            if matches!(http_request(http, "GET", "/health", None, None), Ok(r) if r.status == 200) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "no /health on {http}:\n{}", tail(&self.log, 20));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The JSON of the server's `effective configuration:` start-up line.
    fn effective(&self) -> Value {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let line = text
            .lines()
            .find_map(|l| l.split_once("effective configuration: ").map(|(_, json)| json.to_string()))
            .unwrap_or_else(|| panic!("no effective configuration line in {}:\n{text}", self.log.display()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("effective configuration is not JSON ({e}): {line}"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        signal(&self.child, libc::SIGTERM);
        wait_timeout(&mut self.child, Duration::from_secs(10));
    }
}

/// Checks a running server took every value from `want`: from outside where the server
/// shows it (where HTTP listens, which token it takes, the domain in our From, the
/// gateway a number is sent to), and from its effective-configuration line for the rest.
fn assert_serves(run: &mut Serve, want: &Layer, losers: &[&Layer]) {
    run.wait_healthy(want.http);
    for other in losers {
        assert!(
            http_request(other.http, "GET", "/health", None, None).is_err(),
            "something answers HTTP on {}'s address {} too",
            other.name,
            other.http
        );
        let wrong = http_request(want.http, "GET", "/v1/calls", None, Some(&other.token)).unwrap();
        assert_eq!(wrong.status, 401, "the {} token was taken with {} winning: {wrong:?}", other.name, want.name);
    }
    // A number goes to the gateway; our From carries the domain.
    let placed = http_request(want.http, "POST", "/v1/calls", Some(&json!({"to": "2216"}).to_string()), Some(&want.token)).unwrap();
    assert_eq!(placed.status, 201, "dial a number with the {} token: {placed:?}", want.name);
    let leg = placed.json();
    let gw = want.gateway.trim_start_matches("sip:");
    assert_eq!(leg["remote_uri"], format!("sip:2216@{gw}"), "number not sent to the {} gateway: {leg}", want.name);
    assert_eq!(leg["local_uri"], format!("sip:switchboard@{}", want.domain), "not the {} domain: {leg}", want.name);

    let eff = run.effective();
    let summary = format!("{} should win; effective {eff}", want.name);
    assert_eq!(eff["http_listen"], want.http.to_string(), "{summary}");
    assert_eq!(eff["domain"], want.domain, "{summary}");
    assert_eq!(eff["sip_t1_ms"], want.t1_ms, "{summary}");
    assert_eq!(eff["media_workers"], want.workers, "{summary}");
    assert_eq!(eff["routing"]["gateway"], want.gateway, "{summary}");
    assert_eq!(eff["media"]["port_mode"], want.port_mode, "{summary}");
    assert_eq!(eff["api_token"], "<redacted>", "{summary}");
    let log = std::fs::read_to_string(&run.log).unwrap();
    for layer in [want].iter().chain(losers) {
        assert!(!log.contains(&layer.token), "the {} API token is in the log", layer.name);
    }
}

/// file < environment < flags, for a key of each kind: an address (`http_listen`), a
/// string (`domain`), numbers (`sip_t1_ms`, `media_workers`), a nested key
/// (`[routing] gateway`), an enum (`[media] port_mode`) and the secret (`api_token`).
/// Then flags over an environment whose every value is invalid: flags are layered
/// before anything is parsed, so the bad values never count.
#[test]
fn file_then_environment_then_flags_for_every_kind_of_key() {
    let env = TestEnv::new("config_precedence");
    let (file, vars, flags) = (Layer::new(&env, 0, "file"), Layer::new(&env, 1, "env"), Layer::new(&env, 2, "flag"));
    let (lo, hi) = env.ports.server_rtp();
    let toml = env.path("switchboard.toml");
    std::fs::write(
        &toml,
        format!(
            "sip_listen = \"127.0.0.1:{}\"\nrtp_ports = \"{lo}-{hi}\"\ndata_dir = \"{}\"\n{}",
            env.ports.sip(),
            env.path("data").display(),
            file.toml()
        ),
    )
    .unwrap();
    let config = vec!["--config".to_string(), toml.display().to_string()];

    // The file named by SWITCHBOARD_CONFIG (the same as --config, and no foreign variable).
    let by_env = [("SWITCHBOARD_CONFIG".to_string(), toml.display().to_string())];
    let mut run = Serve::start(&env, "file_only", &[], &by_env);
    assert_serves(&mut run, &file, &[&vars, &flags]);
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert!(!log.contains("is not a configuration key"), "SWITCHBOARD_CONFIG reported as foreign:\n{log}");
    drop(run);

    let mut run = Serve::start(&env, "file_env", &config, &vars.vars());
    assert_serves(&mut run, &vars, &[&file, &flags]);
    drop(run);

    let all_flags: Vec<String> = config.iter().cloned().chain(flags.flags()).collect();
    let mut run = Serve::start(&env, "file_env_flags", &all_flags, &vars.vars());
    assert_serves(&mut run, &flags, &[&file, &vars]);
    drop(run);

    let bad_env: Vec<(String, String)> = [
        ("SWITCHBOARD_HTTP_LISTEN", "not an address"),
        ("SWITCHBOARD_SIP_T1_MS", "soon"),
        ("SWITCHBOARD_MEDIA_WORKERS", "-1"),
        ("SWITCHBOARD_ROUTING__GATEWAY", "not a uri"),
        ("SWITCHBOARD_MEDIA__PORT_MODE", "bogus"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut run = Serve::start(&env, "bad_env_flags", &all_flags, &bad_env);
    assert_serves(&mut run, &flags, &[&file, &vars]);
}

/// The environment is text: a token or domain made of digits is a string, not a number
/// that fails a string key; digits still fill a numeric key.
#[test]
fn digits_in_the_environment_fill_string_keys() {
    let env = TestEnv::new("config_env_digits");
    let http = std::net::SocketAddr::from((LOCALHOST, env.ports.http()));
    let (lo, hi) = env.ports.server_rtp();
    let args: Vec<String> = vec![
        "--sip-listen".into(),
        format!("127.0.0.1:{}", env.ports.sip()),
        "--http-listen".into(),
        http.to_string(),
        "--rtp-ports".into(),
        format!("{lo}-{hi}"),
        "--data-dir".into(),
        env.path("data").display().to_string(),
    ];
    let vars: Vec<(String, String)> = [("SWITCHBOARD_API_TOKEN", "123456"), ("SWITCHBOARD_DOMAIN", "2024"), ("SWITCHBOARD_SIP_T1_MS", "250")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut run = Serve::start(&env, "digits", &args, &vars);
    run.wait_healthy(http);
    assert_eq!(http_request(http, "GET", "/v1/calls", None, Some("123456")).unwrap().status, 200);
    assert_eq!(http_request(http, "GET", "/v1/calls", None, None).unwrap().status, 401);
    let eff = run.effective();
    assert_eq!(eff["domain"], "2024", "{eff}");
    assert_eq!(eff["sip_t1_ms"], 250, "{eff}");
}
