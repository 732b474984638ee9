//! The audit trail and JSON logs against the real binary (issue 17): `run` writes every
//! decision as the decision record `replay` writes, and every admin action as an
//! `"type":"admin"` record with the admin key's id — never a raw token nor the key — to a
//! size-rotated JSON-lines file; `--log-format json` makes the log lines JSON objects.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    ADMIN_KEY, CHROME, Daemon, check, daemon_fixture, follow, ip, line, recent, wait_ready,
};
use serde_json::{Value, json};
use tokenwatch::lab::world::NetKind;

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Poll `path` until `done` holds for its records (10 s at most).
async fn wait_for(path: &std::path::Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = records(path);
        if done(&found) || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn run_records_decisions_and_admin_actions_without_secrets() {
    let f = daemon_fixture("[audit]\noutput = \"file\"\npath = \"audit.jsonl\"\n");
    let log = f.path("access.jsonl");
    follow(&f, &log, "");
    let audit = f.path("audit.jsonl");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;

    // A token used in Berlin, then in São Paulo ten minutes later: revoked.
    let token = f.jwt("grace", recent(0).secs());
    let fingerprint = f.fingerprint(&token);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    for (i, city, kind) in [
        (0, "Berlin", NetKind::Residential),
        (60, "Berlin", NetKind::Residential),
        (600, "São Paulo", NetKind::AltResidential),
    ] {
        let text = line(recent(i), ip(city, kind, 4), CHROME, &token, "/");
        writeln!(file, "{text}").expect("write");
    }
    file.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(20);
    while check(&client, &daemon, &token).await != 401 {
        assert!(Instant::now() < deadline, "stolen token never revoked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Admin actions: a revocation by RFC 7009 (a raw token in the request), one by key, a
    // removal with allowlisting, and one refused (bad key).
    let other_token = f.jwt("heidi", recent(0).secs());
    let response = client
        .post(daemon.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .form(&[("token", other_token.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 200);
    let by_key = format!("fp:{}", "ab".repeat(16));
    let response = client
        .post(daemon.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"key": by_key, "reason": "ticket-42", "ttl": "1h"}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 200);
    let response = client
        .delete(daemon.url(&format!("/v1/revocations/fp:{fingerprint}?allowlist=true")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("unrevoke");
    assert_eq!(response.status(), 200);
    let response = client
        .post(daemon.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"key": "nonsense"}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 400);

    let found = wait_for(&audit, |r| {
        r.iter().filter(|v| v["type"] == "admin").count() >= 4
            && r.iter()
                .any(|v| v["action"] == "revoke" && v["type"].is_null())
    })
    .await;
    let decision = found
        .iter()
        .find(|v| v["type"].is_null() && v["fingerprint"] == fingerprint.as_str())
        .unwrap_or_else(|| panic!("no decision record for the token: {found:?}"));
    // The decision record `replay` writes (DESIGN §5).
    assert_eq!(decision["action"], "revoke");
    assert_eq!(decision["mode"], "enforce");
    assert_eq!(decision["key"], format!("fp:{fingerprint}"));
    assert!(
        decision["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r == "impossible_travel"),
        "{decision}"
    );
    for field in [
        "score",
        "evidence",
        "event_time",
        "decided_at",
        "expires_at",
    ] {
        assert!(decision.get(field).is_some(), "{field} missing: {decision}");
    }

    let admin: Vec<&Value> = found.iter().filter(|v| v["type"] == "admin").collect();
    let key_id = tokenwatch::audit::key_id(ADMIN_KEY);
    for record in &admin {
        assert_eq!(record["admin_key_id"], key_id.as_str(), "{record}");
        assert!(
            record["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{record}"
        );
    }
    let route_outcome: Vec<(String, String, String)> = admin
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap_or("").to_string(),
                r["action"].as_str().unwrap_or("").to_string(),
                r["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        route_outcome,
        [
            ("POST /v1/revoke".into(), "revoke".into(), "ok".into()),
            ("POST /v1/revoke".into(), "revoke".into(), "ok".into()),
            (
                "DELETE /v1/revocations/{key}".into(),
                "allowlist".into(),
                "ok".into()
            ),
            (
                "POST /v1/revoke".into(),
                "revoke".into(),
                "invalid_key".into()
            ),
        ]
    );
    assert_eq!(admin[1]["key"], by_key.as_str());
    assert_eq!(admin[1]["reason"], "ticket-42");
    assert_eq!(admin[2]["key"], format!("fp:{fingerprint}"));
    assert_eq!(admin[2]["removed"], true);
    assert_eq!(admin[3]["status"], 400);
    // The RFC 7009 revocation is recorded by the token's fingerprint.
    assert_eq!(
        admin[0]["key"],
        format!("fp:{}", f.fingerprint(&other_token))
    );

    // The INFO line of each admin action, with the key's id.
    assert!(
        daemon.printed("admin action") && daemon.printed(&key_id),
        "{}",
        daemon.log()
    );

    // No secret anywhere in the file: not a token, not the admin key.
    let text = std::fs::read_to_string(&audit).expect("audit file");
    for secret in [token.as_str(), other_token.as_str(), ADMIN_KEY] {
        assert!(!text.contains(secret), "a secret reached the audit file");
    }
    // Nor a token's payload or signature part.
    for part in token.split('.') {
        assert!(!text.contains(part), "a token part reached the audit file");
    }
    assert!(
        !daemon.log().contains(ADMIN_KEY),
        "the admin key reached the log"
    );
}

#[tokio::test]
async fn the_audit_file_rotates_at_max_bytes_keeping_n_files() {
    let f = daemon_fixture(
        "[audit]\noutput = \"file\"\npath = \"audit.jsonl\"\nmax_bytes = 4096\nkeep = 2\n",
    );
    let audit = f.path("audit.jsonl");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    // About 400 bytes per admin record: 40 of them are about four files' worth.
    for n in 0..40u32 {
        let response = client
            .post(daemon.url("/v1/revoke"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"key": format!("fp:{n:032x}"), "reason": "x".repeat(100)}))
            .send()
            .await
            .expect("revoke");
        assert_eq!(response.status(), 200);
    }
    let rotated = |n: u32| f.path(&format!("audit.jsonl.{n}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rotated(2).exists() {
        assert!(Instant::now() < deadline, "the file never rotated twice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(daemon);
    for path in [audit.clone(), rotated(1), rotated(2)] {
        let bytes = std::fs::metadata(&path).expect("file").len();
        assert!(bytes <= 4096, "{} holds {bytes} bytes", path.display());
        for record in records(&path) {
            assert_eq!(record["type"], "admin", "whole records only");
        }
    }
    assert!(!rotated(3).exists(), "keep = 2: no third rotated file");
    // The newest records are in the current file, the last one among them.
    let last = records(&audit).pop().expect("a record in the current file");
    assert_eq!(last["key"], format!("fp:{:032x}", 39));
}

#[test]
fn log_format_json_writes_json_log_lines() {
    let f = daemon_fixture("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&f.config)
        .env("TOKENWATCH_ADMIN_KEY", ADMIN_KEY)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut listening = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while listening.is_none() && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        if value["message"] == "API listening" {
            listening = Some(value);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let listening = listening.expect("the API listening line within 30 s");
    assert!(
        listening["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "fields at the top level: {listening}"
    );
}
