//! The admin CLI (`switchboard domains|users|apps|keys …`), run as the real binary on
//! a data directory (and on PostgreSQL) while a real server runs on the same database:
//! exact exit codes and messages, secrets never printed, and the server picking up
//! changes through its directory reload loop within about a second.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{poll, server_bin, Server, ServerOptions, TestEnv};

/// One CLI run: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Every CLI output of a test, to check no secret was ever printed.
#[derive(Default)]
struct Transcript(std::cell::RefCell<String>);

impl Transcript {
    fn cli(&self, db: &[&str], args: &[&str]) -> Run {
        let mut cmd = Command::new(server_bin());
        cmd.args(args).args(db).stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
        let out = cmd.output().expect("run switchboard");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut t = self.0.borrow_mut();
        // Outputs only: the arguments hold the secrets given on purpose.
        t.push_str(&format!("$ switchboard {} …\n{}{}[exit {}]\n", args[..2.min(args.len())].join(" "), run.stdout, run.stderr, run.code));
        run
    }

    /// Runs and expects success.
    fn ok(&self, db: &[&str], args: &[&str]) -> String {
        let run = self.cli(db, args);
        assert_eq!(run.code, 0, "switchboard {args:?} failed: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.is_empty(), "stderr of {args:?}: {}", run.stderr);
        run.stdout
    }

    /// Runs and expects exit `code` with exactly `stderr` (one line).
    fn refused(&self, db: &[&str], args: &[&str], code: i32, stderr: &str) {
        let run = self.cli(db, args);
        assert_eq!((run.code, run.stderr.as_str()), (code, stderr), "switchboard {args:?}; stdout {}", run.stdout);
        assert!(run.stdout.is_empty(), "nothing on stdout when refused: {}", run.stdout);
    }

    fn text(&self) -> String {
        self.0.borrow().clone()
    }
}

/// Waits for the server to log a reload whose counts read `counts` (e.g.
/// `domains=2 users=1`), and returns how long it took from `since`.
fn wait_reload(server: &Server, counts: &str, since: Instant) -> Duration {
    let needle = counts;
    poll(Duration::from_secs(5), "the server reloads the directory", || {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        log.lines().any(|l| l.contains("directory reloaded (version") && l.contains(needle)).then(|| since.elapsed())
    })
}

const PASSWORD: &str = "Sup3r-Secret-pw";
const PIN: &str = "864213";
const APP_SECRET: &str = "app-secret-XYZ";

/// The CLI scenario, on whichever database `db` names.
fn exercise(env: &TestEnv, t: &Transcript, db: &[&str], server: &mut Server) {
    // The server's --domain exists from the first start, and it said how to make an admin.
    let log = std::fs::read_to_string(&server.log).unwrap();
    let hint: Vec<_> = log.lines().filter(|l| l.contains("no admin yet")).collect();
    assert_eq!(hint.len(), 1, "one bootstrap line: {hint:?}");
    assert!(hint[0].contains("switchboard users add admin --domain switchboard.test --password SECRET --admin"), "{}", hint[0]);
    let domains: serde_json::Value = serde_json::from_str(&t.ok(db, &["domains", "list", "--json"])).unwrap();
    assert_eq!(domains[0]["name"], "switchboard.test");

    // Add a domain and a user while the server runs; it reloads within ~a second.
    assert_eq!(t.ok(db, &["domains", "add", "alpha.test", "--alias", "pbx.alpha.test"]), "added domain alpha.test (realm \"alpha.test\")\n");
    let added = Instant::now();
    let out = t.ok(
        db,
        &[
            "users", "add", "alice", "--domain", "alpha.test", "--ext", "3044", "--password", PASSWORD, "--pin", PIN,
            "--first-name", "Alice", "--last-name", "Liddell", "--number", "+1 555 0100", "--email", "alice@alpha.test",
            "--admin",
        ],
    );
    assert_eq!(out, "added user alice@alpha.test, extension 3044 (admin)\n");
    let took = wait_reload(server, "domains=2 users=1", added);
    assert!(took < Duration::from_millis(2500), "reload took {took:?}");
    server.assert_alive();

    // Exact refusals: exit 1 and one line.
    t.refused(db, &["domains", "add", "alpha.test"], 1, "error: domain \"alpha.test\" already exists\n");
    t.refused(db, &["domains", "add", "pbx.alpha.test"], 1, "error: domain \"pbx.alpha.test\" already exists\n");
    t.refused(
        db,
        &["users", "add", "alice", "--domain", "alpha.test", "--ext", "3045", "--password", "x"],
        1,
        "error: login \"alice\" is already taken in this domain (by user \"alice\")\n",
    );
    t.refused(
        db,
        &["users", "add", "bob", "--domain", "alpha.test", "--ext", "3044", "--password", "x"],
        1,
        "error: extension \"3044\" is already taken in this domain (by user \"alice\")\n",
    );
    t.refused(db, &["users", "show", "bob", "--domain", "alpha.test"], 1, "error: user \"bob\" not found in domain \"alpha.test\"\n");
    t.refused(db, &["domains", "show", "nowhere.test"], 1, "error: domain \"nowhere.test\" not found\n");
    t.refused(
        db,
        &["users", "add", "bob", "--domain", "nowhere.test", "--password", "x"],
        1,
        "error: domain \"nowhere.test\" not found\n",
    );
    t.refused(
        db,
        &["users", "add", "bo b", "--domain", "alpha.test", "--password", "x"],
        1,
        "error: invalid login \"bo b\": use letters, digits, '.', '_' and '-' (at most 64)\n",
    );
    t.refused(
        db,
        &["domains", "add", "bad_name"],
        1,
        "error: invalid domain name \"bad_name\": expected a hostname such as alpha.example.com\n",
    );
    t.refused(db, &["apps", "show", "nope"], 1, "error: app \"nope\" not found\n");
    t.refused(db, &["keys", "delete", "nope"], 1, "error: API key \"nope\" not found\n");
    t.refused(
        db,
        &["domains", "delete", "alpha.test"],
        1,
        "error: domain \"alpha.test\" still has 1 user(s); delete them first or force (or pass --force)\n",
    );
    // Usage errors are clap's: exit 2.
    let usage = t.cli(db, &["users", "add", "bob", "--password", "x"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    assert!(usage.stderr.contains("--domain"), "{}", usage.stderr);
    assert_eq!(t.cli(db, &["keys", "add", "k", "--role", "root"]).code, 2);

    // show: which secrets are set, never what they are.
    let shown = t.ok(db, &["users", "show", "alice", "--domain", "alpha.test"]);
    assert!(shown.contains("extension:    3044\n"), "{shown}");
    assert!(shown.contains("number:       +15550100\n"), "{shown}");
    assert!(shown.contains("role:         admin\n"), "{shown}");
    assert!(shown.contains("password:     set (SIP digest: HA1 MD5 and SHA-256 for alice, 3044; API: argon2id)\n"), "{shown}");
    assert!(shown.contains("pin:          set (argon2id)\n"), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&t.ok(db, &["users", "show", "alice", "--domain", "alpha.test", "--json"])).unwrap();
    assert_eq!(json["login"], "alice");
    assert_eq!(json["domain"], "alpha.test");
    assert_eq!(json["ext"], "3044");
    assert_eq!(json["secrets"]["password"], true);
    let list: serde_json::Value = serde_json::from_str(&t.ok(db, &["users", "list", "--domain", "alpha.test", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let table = t.ok(db, &["users", "list"]);
    assert!(table.starts_with("LOGIN"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("alice") && l.contains("alpha.test") && l.contains("3044") && l.contains("Alice Liddell")), "{table}");

    // update: "" clears a field.
    assert_eq!(
        t.ok(db, &["users", "update", "alice", "--domain", "alpha.test", "--display-name", "Al", "--email", ""]),
        "updated user alice@alpha.test\n"
    );
    let json: serde_json::Value = serde_json::from_str(&t.ok(db, &["users", "show", "alice", "--domain", "alpha.test", "--json"])).unwrap();
    assert_eq!(json["display_name"], "Al");
    assert_eq!(json["email"], serde_json::Value::Null);

    // passwd, disable, enable: each reloads the server.
    assert_eq!(t.ok(db, &["users", "passwd", "alice", "--domain", "alpha.test", "--password", "N3w-Secret-pw"]), "password of alice@alpha.test changed\n");
    t.refused(db, &["users", "passwd", "alice", "--domain", "alpha.test"], 1, "error: nothing to change: give --password and/or --pin\n");
    assert_eq!(t.ok(db, &["users", "disable", "alice", "--domain", "alpha.test"]), "user alice@alpha.test disabled\n");
    assert_eq!(t.ok(db, &["users", "enable", "alice", "--domain", "alpha.test"]), "user alice@alpha.test enabled\n");
    assert_eq!(t.ok(db, &["domains", "disable", "alpha.test"]), "domain alpha.test disabled\n");
    let d: serde_json::Value = serde_json::from_str(&t.ok(db, &["domains", "show", "alpha.test", "--json"])).unwrap();
    assert_eq!(d["enabled"], false);
    assert_eq!(d["aliases"][0], "pbx.alpha.test");
    assert_eq!(d["users"], 1);
    t.ok(db, &["domains", "enable", "alpha.test"]);

    // Apps.
    assert_eq!(t.ok(db, &["apps", "add", "softphone", "--secret", APP_SECRET, "--domain", "alpha.test", "--name", "Soft Phone"]), "added app softphone for domain alpha.test\n");
    t.refused(db, &["apps", "add", "softphone", "--secret", "x"], 1, "error: app \"softphone\" already exists\n");
    let app = t.ok(db, &["apps", "show", "softphone"]);
    assert!(app.contains("secret:    set (argon2id)"), "{app}");
    assert!(app.contains("domain:    alpha.test"), "{app}");
    assert_eq!(t.ok(db, &["apps", "passwd", "softphone", "--secret", "rotated-secret-1"]), "secret of app softphone changed\n");
    assert_eq!(t.ok(db, &["apps", "disable", "softphone"]), "app softphone disabled\n");
    let apps: serde_json::Value = serde_json::from_str(&t.ok(db, &["apps", "list", "--json"])).unwrap();
    assert_eq!(apps[0]["enabled"], false);
    assert_eq!(t.ok(db, &["apps", "enable", "softphone"]), "app softphone enabled\n");
    assert_eq!(t.ok(db, &["apps", "delete", "softphone"]), "deleted app softphone\n");

    // Keys: the key is printed once, by `add`, and nowhere else.
    let added = t.ok(db, &["keys", "add", "ops", "--role", "admin"]);
    let key = added.lines().next().unwrap().to_owned();
    assert!(key.starts_with("sbk_") && key.len() == 68, "{added}");
    assert!(added.contains("shown once"), "{added}");
    t.refused(db, &["keys", "add", "ops", "--role", "user"], 1, "error: API key \"ops\" already exists\n");
    let keys = t.ok(db, &["keys", "list"]);
    assert!(keys.contains(&key[..12]) && !keys.contains(&key[12..]), "{keys}");
    let scoped: serde_json::Value = serde_json::from_str(&t.ok(db, &["keys", "add", "alpha-ro", "--role", "user", "--domain", "alpha.test", "--json"])).unwrap();
    assert_eq!(scoped["domain"], "alpha.test");
    assert_eq!(t.ok(db, &["keys", "delete", "ops"]), "deleted API key ops\n");

    // Delete with --force takes the users; the server follows.
    let deleted = Instant::now();
    assert_eq!(t.ok(db, &["domains", "delete", "alpha.test", "--force"]), "deleted domain alpha.test\n");
    // Only the server's own domain is left: a count no earlier reload showed.
    wait_reload(server, "domains=1 users=0", deleted);
    server.assert_alive();

    // No secret in any output, nor in the server's log (the one key aside, printed by its `add`).
    let transcript = t.text();
    let server_log = std::fs::read_to_string(&server.log).unwrap();
    for secret in [PASSWORD, PIN, APP_SECRET, "rotated-secret-1", "N3w-Secret-pw"] {
        assert!(!transcript.contains(secret), "{secret:?} printed:\n{transcript}");
        assert!(!server_log.contains(secret), "{secret:?} in server.log");
    }
    assert_eq!(transcript.matches(&key[12..]).count(), 1, "the key appears once");
    assert!(!server_log.contains(&key[12..]));
    std::fs::write(env.path("cli-transcript.txt"), &transcript).unwrap();
}

#[test]
fn cli_manages_the_directory_beside_a_running_server_on_sqlite() {
    let env = TestEnv::new("admin_cli_sqlite");
    let data = env.path("data");
    let db_args = ["--data-dir", data.to_str().unwrap()];
    let t = Transcript::default();
    let mut server = Server::start(&env);
    exercise(&env, &t, &db_args, &mut server);
    assert!(Path::new(&data).join("switchboard.db").is_file());
}

/// The PostgreSQL server to use (see crates/store/tests/common: same rules).
fn postgres_url() -> Option<String> {
    if let Some(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !ci && std::env::var("SWITCHBOARD_TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("SWITCHBOARD_TEST_SKIP_POSTGRES=1: PostgreSQL test skipped");
        return None;
    }
    panic!(
        "SWITCHBOARD_TEST_POSTGRES_URL is not set: run through scripts/with-postgres (scripts/test does), \
         or set it to a PostgreSQL server's URL, or (outside CI) set SWITCHBOARD_TEST_SKIP_POSTGRES=1 to skip"
    );
}

#[test]
fn cli_and_server_share_a_postgres_database() {
    let Some(admin_url) = postgres_url() else { return };
    let env = TestEnv::new("admin_cli_postgres");
    let psql = support::require_tool("psql");
    let name = format!("sb_cli_{}", std::process::id());
    let psql_run = |sql: &str| {
        let out = Command::new(&psql).arg(&admin_url).args(["-v", "ON_ERROR_STOP=1", "-qc", sql]).output().expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    psql_run(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    psql_run(&format!("CREATE DATABASE {name}"));
    let (base, _) = admin_url.rsplit_once('/').expect("URL with a database");
    let url = format!("{base}/{name}");
    let db_args = ["--database-url", url.as_str()];
    let t = Transcript::default();
    let mut server = Server::start_with(&env, ServerOptions { extra_args: vec!["--database-url".into(), url.clone()], ..Default::default() });
    exercise(&env, &t, &db_args, &mut server);
    assert!(!env.path("data").join("switchboard.db").exists(), "nothing went to SQLite");
    drop(server);
    psql_run(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
