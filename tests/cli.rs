//! The on-call CLI against a live daemon (issue 17): `tokenwatch revocations list|show|add|rm`
//! and `tokenwatch sessions show`, as tables and `--json`, with keys and tokens only from the
//! environment, and clear non-zero failures (wrong key, unknown entry, unreachable server).

mod common;

use std::process::{Command, Output};

use common::{ADMIN_KEY, Daemon, daemon_fixture, wait_ready};
use serde_json::Value;

/// `tokenwatch <args>` against `url` with `env` set (and no other tokenwatch variable).
fn cli(url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenwatch"));
    command
        .args(args)
        .env("TOKENWATCH_URL", url)
        .env_remove("TOKENWATCH_ADMIN_KEY")
        .env_remove("TOKENWATCH_READER_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run the CLI")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

#[tokio::test]
async fn list_show_add_rm_and_sessions_show_against_a_live_daemon() {
    let f = daemon_fixture("");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    let url = daemon.url("");
    let admin = [("TOKENWATCH_ADMIN_KEY", ADMIN_KEY)];

    let empty = ok(cli(&url, &admin, &["revocations", "list"]));
    assert!(empty.contains("no entries in force"), "{empty}");

    // add: by fingerprint (step-up), by key, and a raw token from an environment variable.
    let fp = "ab".repeat(16);
    let added = ok(cli(
        &url,
        &admin,
        &[
            "revocations",
            "add",
            "--fingerprint",
            &fp,
            "--reason",
            "on-call test",
            "--ttl",
            "2h",
            "--step-up",
        ],
    ));
    assert!(added.contains(&format!("fp:{fp}")), "{added}");
    assert!(
        added.contains("step_up") && added.contains("on-call test"),
        "{added}"
    );
    let sub_key = "sub:https://id.example.com:user 7";
    ok(cli(&url, &admin, &["revocations", "add", "--key", sub_key]));
    let token = f.jwt("mallory", common::now_secs());
    let with_token = [
        ("TOKENWATCH_ADMIN_KEY", ADMIN_KEY),
        ("STOLEN_TOKEN", token.as_str()),
    ];
    let by_token = ok(cli(
        &url,
        &with_token,
        &["revocations", "add", "--token-env", "STOLEN_TOKEN"],
    ));
    let token_fp = f.fingerprint(&token);
    assert!(by_token.contains(&token_fp), "{by_token}");
    assert!(!by_token.contains(&token), "the token is never printed");
    assert_eq!(common::check(&client, &daemon, &token).await, 401);

    // list: an aligned table of the three, then the cursor.
    let table = ok(cli(&url, &admin, &["revocations", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("KEY"), "{table}");
    let action_column = lines[0].find("ACTION").expect("ACTION column");
    let rows: Vec<&&str> = lines[1..].iter().take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in &rows {
        let action = &row[action_column..];
        assert!(
            action.starts_with("revoke") || action.starts_with("step_up"),
            "columns aligned: {table}"
        );
    }
    assert!(table.contains(sub_key), "{table}");
    let cursor = table
        .split("next cursor: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("next cursor")
        .to_string();

    // list --json is the API's page.
    let json: Value =
        serde_json::from_str(&ok(cli(&url, &admin, &["revocations", "list", "--json"])))
            .expect("JSON");
    assert_eq!(json["snapshot"], true);
    assert_eq!(json["changes"].as_array().map(Vec::len), Some(3));

    // show: the entry, as key/value lines and as JSON; reads work with the reader key too
    // only when one is configured — here the admin key.
    let shown = ok(cli(&url, &admin, &["revocations", "show", sub_key]));
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("key") && l.contains(sub_key)),
        "{shown}"
    );
    let shown: Value = serde_json::from_str(&ok(cli(
        &url,
        &admin,
        &["revocations", "show", &format!("fp:{fp}"), "--json"],
    )))
    .expect("JSON");
    assert_eq!(shown["action"], "step_up");
    assert_eq!(shown["reasons"][0], "on-call test");

    // rm, then list --since shows the removal.
    let removed = ok(cli(&url, &admin, &["revocations", "rm", sub_key]));
    assert!(removed.starts_with("removed "), "{removed}");
    let again = ok(cli(&url, &admin, &["revocations", "rm", sub_key]));
    assert!(again.contains("was not on the denylist"), "{again}");
    let since = ok(cli(
        &url,
        &admin,
        &["revocations", "list", "--since", &cursor],
    ));
    assert!(since.starts_with("OP"), "{since}");
    assert!(
        since
            .lines()
            .any(|l| l.starts_with("remove") && l.contains(sub_key)),
        "{since}"
    );
    let allowlisted = ok(cli(
        &url,
        &admin,
        &[
            "revocations",
            "rm",
            &format!("fp:{token_fp}"),
            "--allowlist",
            "--json",
        ],
    ));
    let allowlisted: Value = serde_json::from_str(&allowlisted).expect("JSON");
    assert_eq!(allowlisted["removed"], true);
    assert_eq!(allowlisted["allowlisted"], true);

    // sessions show: the denylist status of a fingerprint.
    let session = ok(cli(&url, &admin, &["sessions", "show", &token_fp]));
    assert!(
        session
            .lines()
            .any(|l| l.starts_with("denylist.allowlisted") && l.ends_with("true")),
        "{session}"
    );
    let session: Value = serde_json::from_str(&ok(cli(
        &url,
        &admin,
        &["sessions", "show", &token_fp, "--json"],
    )))
    .expect("JSON");
    assert_eq!(session["fingerprint"], token_fp.as_str());
}

#[tokio::test]
async fn failures_are_clear_and_exit_non_zero() {
    let f = daemon_fixture("");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    let url = daemon.url("");

    let wrong = [("TOKENWATCH_ADMIN_KEY", "wrong-key-0123456789abcdef")];
    let refused = cli(&url, &wrong, &["revocations", "list"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));
    assert!(
        !stderr(&refused).contains("wrong-key-0123456789abcdef"),
        "the key is never echoed"
    );

    let no_key = cli(
        &url,
        &[],
        &[
            "revocations",
            "add",
            "--key",
            "fp:00000000000000000000000000000001",
        ],
    );
    assert!(!no_key.status.success());
    assert!(
        stderr(&no_key).contains("TOKENWATCH_ADMIN_KEY"),
        "{}",
        stderr(&no_key)
    );

    let admin = [("TOKENWATCH_ADMIN_KEY", ADMIN_KEY)];
    let missing = cli(
        &url,
        &admin,
        &["revocations", "show", "fp:00000000000000000000000000000001"],
    );
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));

    let expired = cli(&url, &admin, &["revocations", "list", "--since", "1-1"]);
    assert!(!expired.status.success());
    assert!(
        stderr(&expired).contains("cursor has expired"),
        "{}",
        stderr(&expired)
    );

    // Nothing listens on the daemon's port once it is gone.
    drop(daemon);
    let unreachable = cli(&url, &admin, &["revocations", "list"]);
    assert!(!unreachable.status.success());
    assert!(
        stderr(&unreachable).contains("cannot connect"),
        "{}",
        stderr(&unreachable)
    );
}
