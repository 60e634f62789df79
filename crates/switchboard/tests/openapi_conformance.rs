//! `/openapi.json` says exactly what the server does: Schemathesis (the test venv's,
//! 4.x) generates requests from the document, valid and invalid, against the real
//! server with conference rooms in it, and checks every answer against the document
//! with all its default checks: status codes and bodies as documented, valid input
//! accepted, invalid input rejected, errors in the `ErrorBody` format, no 5xx, `Allow`
//! on 405, a deleted resource gone, the token enforced, ...
//!
//! | test | what |
//! |---|---|
//! | `openapi_document_matches_the_server` | Schemathesis, fixed seed, while SIPp callers keep two rooms populated; its report is `schemathesis.txt` in the work dir |
//!
//! How the run is kept inside this test:
//! - Rooms: four SIPp callers (`uac_call.xml`, holding the call for minutes) in rooms 1
//!   and 2. Schemathesis learns confids and participant ids from the lists and kicks
//!   people and ends rooms; a caller that is gone is replaced while the run lasts, so
//!   the run keeps meeting live rooms, not only 404s.
//! - Dial-outs: Schemathesis posts calls to targets drawn from the documented pattern.
//!   `tests/kit/schemathesis/hooks.py` points each SIP target's host and port at a port
//!   of this test's block that nothing listens on (the "sink"), and the server's
//!   `--gateway` for numbers is the same sink: no DNS look-up, no INVITE to another
//!   program. `--sip-t1-ms 10` makes the unanswered INVITEs time out in 0.64 s, and
//!   `--media-port-mode shared` means hundreds of dial-outs need no RTP port each (in
//!   per-leg mode the block's 25 port pairs run out and the server rightly says 503).
//! - No operation is excluded. One check, `use_after_free`, is off for the two GETs
//!   of a single leg or participant (`schemathesis.toml` below): that they still show
//!   an ended one after its DELETE is documented and wanted. The live audio stream
//!   POSTs may answer valid input with 400: a well-formed `url` outside `[live_audio]
//!   allowed_urls` (none here) is refused, as documented.
//!
//! Run it against another build with `SWITCHBOARD_TEST_SERVER_BIN=/path/to/switchboard`
//! (one from before the document was made exact, a1a2ede, fails with 14 to 18
//! findings: undocumented statuses, valid input rejected, invalid input accepted,
//! answers off their schema).

mod support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const TOKEN: &str = "openapi-conformance-token";
/// Fixed, so a failure can be reproduced (Schemathesis prints the seed and `st replay`
/// ids); `SWITCHBOARD_TEST_SCHEMATHESIS_SEED` overrides it to explore.
const SEED: &str = "20261201";
/// Test cases per operation and phase (`--max-examples`): about half a minute on two
/// busy cores; `SWITCHBOARD_TEST_SCHEMATHESIS_EXAMPLES` overrides it.
const EXAMPLES: &str = "100";
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// (peer slot, room) of the callers kept in the rooms.
const CALLERS: [(u16, &str); 4] = [(0, "1"), (1, "1"), (2, "2"), (3, "2")];

/// Per-operation settings. Both are documented behaviour, not leniency: a leg or
/// participant that has ended stays readable (`state` `ended`, `end_status`,
/// `end_reason`) for a while, so a GET after its DELETE is a 200 by design. (PATCH and
/// a second DELETE of it are 404s, and are checked.)
///
/// 422 is a valid answer to a valid call request: "well-formed, but no route" (a user
/// with no registered device, a number with no gateway, a name nobody has) depends on
/// the directory and registrations, like 404 and 409 do.
const CONFIG: &str = r#"
# A live audio stream's `url` may be well-formed and still not be one the server is
# configured to stream to (`[live_audio] allowed_urls`, empty here): a documented 400.
# First, because the first entry that applies decides; selected by operation id, which
# names these two alone (each `include-*` key is a filter of its own: one on the method
# would select every POST).
[[operations]]
include-operation-id = ["start_room_stream", "start_leg_stream"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-path-regex = "^/v1/calls(/\\{leg_id\\}/(redirect|intercept|supervise|transfer))?$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]


[[operations]]
include-path = "/v1/calls/{leg_id}"
include-method = "GET"
checks.use_after_free.enabled = false

[[operations]]
include-path = "/rest/v1/uc/conferences/{confid}/participants/{participantid}"
include-method = "GET"
checks.use_after_free.enabled = false
"#;

#[test]
fn openapi_document_matches_the_server() {
    let env = TestEnv::new("openapi_conformance");
    let sink = format!("127.0.0.1:{}", env.ports.peer_sip(7));
    let mut server = Server::start_with(
        &env,
        ServerOptions {
            api_token: Some(TOKEN.into()),
            t1_ms: Some(10),
            extra_args: ["--media-port-mode", "shared", "--gateway", &format!("sip:{sink}")].map(String::from).to_vec(),
        },
    );
    let mut rooms = Rooms::default();
    rooms.keep(&env, &server);
    wait_rooms(&server, 2);

    let config = env.path("schemathesis.toml");
    fs::write(&config, CONFIG).expect("write schemathesis.toml");
    let report = env.path("schemathesis.txt");
    let schemathesis = venv_bin("schemathesis");
    assert!(schemathesis.is_file(), "no {} (scripts/install-test-deps installs it)", schemathesis.display());
    let url = format!("http://{}/openapi.json", server.http);
    let mut cmd = Command::new(&schemathesis);
    cmd.arg("--config-file")
        .arg(&config)
        .args(["run", &url, "-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", &setting("EXAMPLES", EXAMPLES), "--seed", &setting("SEED", SEED)])
        // no example database: every run draws the same cases, whatever ran before
        .args(["--generation-database", "none", "--request-timeout", "10", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", kit_dir().join("schemathesis/hooks.py"))
        .env("SWITCHBOARD_DIAL_SINK", &sink)
        .current_dir(&env.work)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&report).expect("schemathesis.txt"))
        .stderr(fs::File::create(env.path("schemathesis.stderr.txt")).expect("schemathesis.stderr.txt"));
    env.report_on_failure(&report);
    let started = Instant::now();
    let mut child = die_with_parent(&mut cmd).spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", schemathesis.display()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        rooms.keep(&env, &server);
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = fs::read_to_string(env.path("schemathesis.stderr.txt")).unwrap_or_default();
    let output = fs::read_to_string(&report).unwrap_or_default();
    eprintln!("schemathesis: {} after {:?}; SIPp callers started: {}", describe(status), started.elapsed(), rooms.spawned);
    server.assert_alive();

    let summary = output.lines().rev().find(|l| l.starts_with('=') && l.contains(" in ")).unwrap_or("(no summary)");
    assert!(
        status.is_some_and(|s| s.success()) && output.contains("Test cases:") && !output.contains("FAILURES") && !output.contains("ERRORS"),
        "Schemathesis found the document and the server disagree ({}): {summary}\n\
         full report: {}\n{}\n{stderr}",
        describe(status),
        report.display(),
        findings(&output),
    );
}

/// `$SWITCHBOARD_TEST_SCHEMATHESIS_<name>`, or `default`.
fn setting(name: &str, default: &str) -> String {
    std::env::var(format!("SWITCHBOARD_TEST_SCHEMATHESIS_{name}")).unwrap_or_else(|_| default.to_owned())
}

/// The failures and errors sections of a report (what to read first).
fn findings(output: &str) -> String {
    let start = output.find("=== ERRORS").or_else(|| output.find("=== FAILURES")).unwrap_or(0);
    let text = &output[start..];
    text.chars().take(12_000).collect()
}

/// The SIPp callers that keep rooms 1 and 2 populated.
#[derive(Default)]
struct Rooms {
    /// Per slot: the caller and when it was started.
    callers: Vec<Option<(SippChild, Instant)>>,
    spawned: usize,
}

impl Rooms {
    /// Starts a caller in every slot whose caller is not running (first time, or kicked,
    /// or its room ended), at most once a second per slot.
    fn keep(&mut self, env: &TestEnv, server: &Server) {
        self.callers.resize_with(CALLERS.len(), || None);
        for (i, (slot, room)) in CALLERS.into_iter().enumerate() {
            if let Some((caller, started)) = self.callers[i].as_mut() {
                if caller.running() || started.elapsed() < Duration::from_secs(1) {
                    continue;
                }
            }
            // the SIP and media ports of the slot are free once the old SIPp exited
            let label = format!("caller{slot}_{}", self.spawned);
            let sipp = Sipp::new(env, "uac_call.xml", &label)
                .remote(server.sip)
                .slot(slot)
                .service(&format!("conf-{room}"))
                .hold_ms(600_000)
                .timeout_s(900);
            self.callers[i] = Some((sipp.spawn(), Instant::now()));
            self.spawned += 1;
        }
    }
}

/// Waits until `n` rooms each have an active participant.
fn wait_rooms(server: &Server, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rooms = server.get("/rest/v1/uc/conferences").json();
        let active = rooms
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                let c = r["confid"].as_str().unwrap_or_default();
                let list = server.get(&format!("/rest/v1/uc/conferences/{c}/participants")).json();
                list.as_array().is_some_and(|ps| ps.iter().any(|p| p["state"] == "active"))
            })
            .count();
        if active >= n {
            return;
        }
        assert!(Instant::now() < deadline, "rooms never got active participants: {rooms}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
