//! `tokenwatch run` as a process: it follows a log and revokes through the check API, and a
//! revocation acknowledged by the API survives `kill -9`. Also `demo` end to end.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tokenwatch::geodb::NetKind;

/// Event time `secs` after a quarter of an hour ago.
fn recent(secs: i64) -> tokenwatch::event::EventTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    tokenwatch::event::EventTime((now - 900 + secs) * 1000)
}

const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A running daemon and the address its API listens on.
struct Daemon {
    child: Child,
    addr: String,
}

impl Daemon {
    fn start(f: &Fixture) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
            .args(["run", "--config"])
            .arg(&f.config)
            .env("TOKENWATCH_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tokenwatch run");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Daemon { child, addr },
            Err(_) => {
                // Never leak the process when the test fails here.
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon did not announce its address within 30 s");
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture(extra: &str) -> Fixture {
    Fixture::new(&format!(
        "[denylist]\njournal = \"deny.journal\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n{extra}"
    ))
}

async fn wait_ready(client: &reqwest::Client, d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(d.url("/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "daemon never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check(client: &reqwest::Client, d: &Daemon, token: &str) -> u16 {
    client
        .get(d.url("/v1/check"))
        .bearer_auth(token)
        .send()
        .await
        .expect("check")
        .status()
        .as_u16()
}

#[tokio::test]
async fn api_revocation_survives_kill_dash_nine() {
    let f = fixture("");
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
    let f = fixture("");
    let log = f.path("access.jsonl");
    let config = std::fs::read_to_string(&f.config).unwrap().replace(
        "format = \"json\"",
        &format!(
            "format = \"json\"\npath = {:?}\npoll_interval = \"50ms\"",
            log.display().to_string()
        ),
    );
    std::fs::write(&f.config, config).unwrap();
    std::fs::write(&log, "").unwrap();

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
            ip("São Paulo", NetKind::Hosting, 4),
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
        let metrics = client
            .get(daemon.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
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
