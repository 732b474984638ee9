//! `tokenwatch run` as a process: it follows a log and revokes through the check API, and a
//! revocation acknowledged by the API survives `kill -9`. Also `demo` end to end.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tokenwatch::lab::world::NetKind;

#[tokio::test]
async fn api_revocation_survives_kill_dash_nine() {
    let f = daemon_fixture("");
    let client = reqwest::Client::new();
    // Tokens issued now: a revocation lasts until the token's own expiry (wall clock).
    let stolen = f.jwt("erin", recent(0).secs());
    let innocent = f.jwt("frank", recent(0).secs());

    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    assert_eq!(check(&client, &daemon, &stolen).await, 200);
    let r = client
        .post(daemon.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .form(&[
            ("token", stolen.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    assert_eq!(check(&client, &daemon, &stolen).await, 401);

    // SIGKILL: no chance to flush anything that was not already durable.
    drop(daemon);

    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    assert_eq!(
        check(&client, &daemon, &stolen).await,
        401,
        "revocation lost across kill -9"
    );
    assert_eq!(check(&client, &daemon, &innocent).await, 200);
}

#[tokio::test]
async fn run_follows_a_log_and_the_check_api_revokes_the_stolen_token() {
    let f = daemon_fixture("");
    let log = f.path("access.jsonl");
    follow(&f, &log, "");

    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;

    let token = f.jwt("grace", recent(0).secs());
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..5 {
        writeln!(
            file,
            "{}",
            line(
                recent(i * 60),
                ip("Berlin", NetKind::Residential, 4),
                CHROME,
                &token,
                "/"
            )
        )
        .unwrap();
    }
    file.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        check(&client, &daemon, &token).await,
        200,
        "honest use is allowed"
    );

    writeln!(
        file,
        "{}",
        line(
            recent(600),
            ip("São Paulo", NetKind::AltResidential, 4),
            CHROME,
            &token,
            "/api"
        )
    )
    .unwrap();
    file.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while check(&client, &daemon, &token).await != 401 {
        assert!(Instant::now() < deadline, "stolen token never revoked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The check denies as soon as the revocation is in memory, before its fsync; the counter
    // follows once the journal write returns.
    let counted = "tokenwatch_revocations_total{origin=\"detector\"} 1";
    let metrics = loop {
        let metrics = metrics_text(&client, &daemon).await;
        if metrics.contains(counted) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(metrics.contains(counted), "{metrics}");
    assert!(
        metrics.contains("tokenwatch_detections_total{action=\"revoke\",mode=\"enforce\",reason=\"impossible_travel\"} 1"),
        "{metrics}"
    );
}

#[test]
fn demo_shows_revocations_and_answers_checks() {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .args([
            "demo",
            "--no-serve",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "100000",
            "--users",
            "120",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("REVOKED  fp:"), "{stdout}");
    assert!(stdout.contains("impossible_travel"), "{stdout}");
    assert!(
        stdout.contains("a stolen token           → 401"),
        "{stdout}"
    );
    assert!(
        stdout.contains("an honest user's token   → 200"),
        "{stdout}"
    );
}
