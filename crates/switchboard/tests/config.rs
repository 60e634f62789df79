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
