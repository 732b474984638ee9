//! `tokenwatch run` across restarts and on inotify (issue 17): the followed log's position is
//! kept in the state folder, so a restart (even `kill -9`) neither reads the log again from
//! byte 0 nor revokes again a false positive an admin un-revoked; and an appended line is
//! decided at once, not at the next poll.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokenwatch::lab::world::NetKind;

/// Append an honest hour in Berlin and then a use from São Paulo: impossible travel.
fn write_stolen_token_lines(log: &Path, token: &str, start: i64) {
    let mut file = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    for i in 0..5 {
        let at = recent(start + i * 60);
        let berlin = ip("Berlin", NetKind::Residential, 4);
        writeln!(file, "{}", line(at, berlin, CHROME, token, "/")).unwrap();
    }
    let far = ip("São Paulo", NetKind::AltResidential, 4);
    writeln!(
        file,
        "{}",
        line(recent(start + 600), far, CHROME, token, "/api")
    )
    .unwrap();
    file.flush().unwrap();
}

async fn wait_for_status(client: &reqwest::Client, daemon: &Daemon, token: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(25);
    while check(client, daemon, token).await != want {
        assert!(
            Instant::now() < deadline,
            "check never answered {want}:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn session(client: &reqwest::Client, daemon: &Daemon, fingerprint: &str) -> Value {
    client
        .get(daemon.url(&format!("/v1/sessions/{fingerprint}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The saved position's offset, once `input.position` exists.
fn saved_offset(f: &Fixture) -> Option<u64> {
    let text = std::fs::read_to_string(f.path("input.position")).ok()?;
    let saved: Value = serde_json::from_str(&text).ok()?;
    saved["offset"].as_u64()
}

#[tokio::test]
async fn a_restart_resumes_and_does_not_revoke_an_unrevoked_false_positive_again() {
    let f = daemon_fixture("");
    let log = f.path("access.jsonl");
    follow(&f, &log, "");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;

    let false_positive = f.jwt("ivan", recent(0).secs());
    let stolen = f.jwt("judy", recent(0).secs());
    write_stolen_token_lines(&log, &false_positive, 0);
    write_stolen_token_lines(&log, &stolen, 0);
    wait_for_status(&client, &daemon, &false_positive, 401).await;
    wait_for_status(&client, &daemon, &stolen, 401).await;
    let stolen_fp = f.fingerprint(&stolen);
    let revoked_at =
        session(&client, &daemon, &stolen_fp).await["denylist"]["entry"]["created_at"].clone();
    assert!(revoked_at.is_string(), "{revoked_at}");

    // On-call: a false positive, un-revoked with a plain DELETE (no allowlisting).
    let key = format!("fp:{}", f.fingerprint(&false_positive));
    let r = client
        .delete(daemon.url(&format!("/v1/revocations/{key}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(check(&client, &daemon, &false_positive).await, 200);

    // Every line's decisions are published, so the saved position reaches the end of the log.
    let end = std::fs::metadata(&log).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while saved_offset(&f) != Some(end) {
        assert!(
            Instant::now() < deadline,
            "position never saved at {end}: {:?}",
            saved_offset(&f)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // SIGKILL: nothing is flushed at shutdown; what was saved is all there is.
    drop(daemon);
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    // A new stolen token after the restart: once it is revoked, everything before it in the
    // log has been read (lines are decided in order).
    let later = f.jwt("ken", recent(0).secs());
    write_stolen_token_lines(&log, &later, 0);
    wait_for_status(&client, &daemon, &later, 401).await;

    assert_eq!(
        check(&client, &daemon, &false_positive).await,
        200,
        "the un-revoked false positive was revoked again after the restart"
    );
    assert_eq!(check(&client, &daemon, &stolen).await, 401);
    let after = session(&client, &daemon, &stolen_fp).await;
    assert_eq!(
        after["denylist"]["entry"]["created_at"], revoked_at,
        "the revocation was made again: {after}"
    );
    let metrics = metrics_text(&client, &daemon).await;
    assert_eq!(
        metric(
            &metrics,
            "tokenwatch_revocations_total{origin=\"detector\"}"
        ),
        Some(1.0),
        "only the new token is revoked by this run:\n{metrics}"
    );
    assert!(
        daemon.printed("resuming the input file"),
        "{}",
        daemon.log()
    );
}

#[tokio::test]
async fn an_appended_line_is_decided_without_waiting_for_the_poll_interval() {
    let f = daemon_fixture("");
    let log = f.path("access.jsonl");
    follow(&f, &log, "");
    // A poll interval far beyond the wait below: only an inotify event can deliver the lines.
    let config = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("poll_interval = \"50ms\"", "poll_interval = \"60s\"");
    assert!(config.contains("poll_interval = \"60s\""));
    std::fs::write(&f.config, config).unwrap();

    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    let token = f.jwt("lena", recent(0).secs());
    write_stolen_token_lines(&log, &token, 0);
    // wait_for_status gives up after 25 s, well inside the 60 s poll.
    wait_for_status(&client, &daemon, &token, 401).await;
}
