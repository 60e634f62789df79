//! Calls the server places: `POST /v1/calls` and `switchboard call` to a SIPp UAS,
//! CANCEL of an unanswered outbound call by `DELETE`, and the API token.

mod support;

use std::time::Duration;
use support::*;

/// Starts a SIPp UAS on peer slot 0 and waits until it listens.
fn spawn_uas<'a>(env: &'a TestEnv, scenario: &str) -> (SippChild, String) {
    spawn_uas_ringing(env, scenario, 0)
}

/// [`spawn_uas`] whose `uas_answer.xml` rings `ring_ms` before it answers.
fn spawn_uas_ringing<'a>(env: &'a TestEnv, scenario: &str, ring_ms: u64) -> (SippChild, String) {
    let sipp = Sipp::new(env, scenario, "uas").hold_ms(ring_ms);
    let port = sipp.local_port();
    let child = sipp.spawn();
    wait_udp_bound(port, Duration::from_secs(5));
    (child, format!("sip:uas@127.0.0.1:{port}"))
}

/// How far the server's timed hang-up may stray from answer + the hang-up time.
const TIMER_SLACK_S: f64 = 0.3;

/// The server's BYE came `after` the answer, within [`TIMER_SLACK_S`]. The origin is the
/// server's ACK of our 200 (it ACKs the moment it sees the answer, which is when the
/// timer starts), both times from the UAS's own trace. The UAS rang `ring_ms` before
/// answering, so a timer counted from the INVITE would fire that much early.
fn assert_bye_after_answer(run: &SippRun, ring_ms: u64, after: Duration) {
    let first = |prefix: &str, received: bool| {
        run.traced()
            .into_iter()
            .find(|m| (m.direction == "received") == received && m.first_line().starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in the UAS trace\n{}", run.report()))
            .seconds()
    };
    let invite = first("INVITE ", true);
    let ok = first("SIP/2.0 200", false);
    let ack = first("ACK ", true);
    let byes = run.received("BYE ");
    assert_eq!(byes.len(), 1, "expected one BYE from the server\n{}", run.report());
    let rang = ok - invite;
    assert!(
        rang >= ring_ms as f64 / 1000.0 * 0.9,
        "the UAS answered after {rang:.3} s, not after ringing {ring_ms} ms: the check would not tell answer from INVITE\n{}",
        run.report()
    );
    let waited = byes[0].seconds() - ack;
    let want = after.as_secs_f64();
    eprintln!("rang {rang:.3} s; BYE {waited:.3} s after the answer (want {want:.3} s)");
    assert!(
        (waited - want).abs() <= TIMER_SLACK_S,
        "BYE came {waited:.3} s after the answer (ACK); expected {want:.3} s ± {TIMER_SLACK_S} s \
         (INVITE→200 {rang:.3} s)\n{}",
        run.report()
    );
}

#[test]
fn api_call_to_sipp_uas_hangs_up_after_timer() {
    let env = TestEnv::new("api_call_to_sipp_uas_hangs_up_after_timer");
    let server = Server::start(&env);
    let ring_ms = 1500;
    let (uas, uri) = spawn_uas_ringing(&env, "uas_answer.xml", ring_ms);

    let resp = server.post(
        "/v1/calls",
        &json!({"to": uri, "service": "echo", "hangup_after_ms": 2000}),
    );
    assert_eq!(resp.status, 201, "POST /v1/calls: {resp:?}");
    let created = resp.json();
    let leg_id = field(&created, "leg_id").to_string();
    let call_id = field(&created, "call_id").to_string();
    assert!(
        !leg_id.is_empty() && !call_id.is_empty(),
        "201 body lacks leg_id/call_id: {created}"
    );

    let leg = server.get(&format!("/v1/calls/{leg_id}"));
    assert_eq!(leg.status, 200, "GET /v1/calls/{leg_id}: {leg:?}");
    let leg = leg.json();
    assert_eq!(field(&leg, "direction"), "outbound", "leg: {leg}");
    assert_eq!(field(&leg, "remote_uri"), uri, "leg: {leg}");

    let run = uas.wait();
    run.assert_ok();
    let invites = run.received("INVITE ");
    assert_eq!(invites.len(), 1, "expected one INVITE\n{}", run.report());
    assert_eq!(
        invites[0].header("Call-ID"),
        Some(call_id.as_str()),
        "INVITE's Call-ID differs from the API's call_id"
    );
    assert_bye_after_answer(&run, ring_ms, Duration::from_millis(2000));

    let ended = server.wait_for_leg(Duration::from_secs(3), "ended", |l| {
        l["leg_id"] == leg_id.as_str() && l["state"] == "ended"
    });
    assert_eq!(field(&ended, "direction"), "outbound");
}

#[test]
fn api_delete_cancels_unanswered_call() {
    let env = TestEnv::new("api_delete_cancels_unanswered_call");
    let server = Server::start(&env);
    let (uas, uri) = spawn_uas(&env, "uas_ring_cancel.xml");

    let resp = server.post("/v1/calls", &json!({"to": uri, "service": "echo"}));
    assert_eq!(resp.status, 201, "POST /v1/calls: {resp:?}");
    let leg_id = field(&resp.json(), "leg_id").to_string();
    server.wait_for_leg(Duration::from_secs(5), "ringing", |l| {
        l["leg_id"] == leg_id.as_str() && l["state"] == "ringing"
    });

    let resp = server.delete(&format!("/v1/calls/{leg_id}"));
    assert!(
        (200..300).contains(&resp.status),
        "DELETE /v1/calls/{leg_id}: {resp:?}"
    );
    let run = uas.wait();
    run.assert_ok();
    server.wait_all_ended(Duration::from_secs(3));
}

/// With `--api-token` the API refuses requests without it (health stays open), and the
/// `switchboard call` CLI places a call with `--token`.
#[test]
fn cli_call_with_api_token() {
    let env = TestEnv::new("cli_call_with_api_token");
    let token = "e2e-secret-token";
    let server = Server::start_with(
        &env,
        ServerOptions {
            api_token: Some(token.into()),
            ..Default::default()
        },
    );

    let health = http_request(server.http, "GET", "/health", None, None).expect("GET /health");
    assert_eq!(
        health.status, 200,
        "/health must not need the token: {health:?}"
    );
    let anon = http_request(server.http, "GET", "/v1/calls", None, None).expect("GET /v1/calls");
    assert!(
        anon.status == 401 || anon.status == 403,
        "GET /v1/calls without token: {anon:?}"
    );
    let wrong =
        http_request(server.http, "GET", "/v1/calls", None, Some("wrong")).expect("GET /v1/calls");
    assert!(
        wrong.status == 401 || wrong.status == 403,
        "GET /v1/calls with a wrong token: {wrong:?}"
    );
    assert_eq!(server.get("/v1/calls").status, 200);

    let ring_ms = 1000;
    let (uas, uri) = spawn_uas_ringing(&env, "uas_answer.xml", ring_ms);
    let base = format!("http://{}", server.http);
    // without the token the CLI must fail and place no call
    let anon = run_cli(
        &env,
        "cli_no_token",
        &["call", &uri, "--server", &base],
        Duration::from_secs(20),
    );
    assert!(
        !anon.success(),
        "`switchboard call` without --token succeeded: {}",
        anon.stdout
    );
    let out = run_cli(
        &env,
        "cli",
        &[
            "call",
            &uri,
            "--server",
            &base,
            "--token",
            token,
            "--hangup-after",
            "1.5",
        ],
        Duration::from_secs(20),
    );
    assert!(
        out.success(),
        "`switchboard call` failed ({}):\nstdout: {}\nstderr: {}",
        describe(out.status),
        out.stdout,
        out.stderr
    );
    let run = uas.wait();
    run.assert_ok();
    assert_eq!(
        run.received("INVITE ").len(),
        1,
        "expected exactly one INVITE (the tokenless CLI must not call)\n{}",
        run.report()
    );
    // --hangup-after is in seconds: 1.5 must not be cut to 1 or read as milliseconds.
    assert_bye_after_answer(&run, ring_ms, Duration::from_millis(1500));
}
