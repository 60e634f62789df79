//! Calls the server places: `POST /v1/calls` and `switchboard call` to a SIPp UAS,
//! CANCEL of an unanswered outbound call by `DELETE`, and the API token.

mod support;

use std::time::Duration;
use support::*;

/// Starts a SIPp UAS on peer slot 0 and waits until it listens.
fn spawn_uas<'a>(env: &'a TestEnv, scenario: &str) -> (SippChild, String) {
    let sipp = Sipp::new(env, scenario, "uas");
    let port = sipp.local_port();
    let child = sipp.spawn();
    wait_udp_bound(port, Duration::from_secs(5));
    (child, format!("sip:uas@127.0.0.1:{port}"))
}

#[test]
fn api_call_to_sipp_uas_hangs_up_after_timer() {
    let env = TestEnv::new("api_call_to_sipp_uas_hangs_up_after_timer");
    let server = Server::start(&env);
    let (uas, uri) = spawn_uas(&env, "uas_answer.xml");

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
    let byes = run.received("BYE ");
    assert_eq!(byes.len(), 1, "expected the server's BYE\n{}", run.report());

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

    let (uas, uri) = spawn_uas(&env, "uas_answer.xml");
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
            "2",
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
    assert_eq!(
        run.received("BYE ").len(),
        1,
        "expected the server's BYE after --hangup-after\n{}",
        run.report()
    );
}
