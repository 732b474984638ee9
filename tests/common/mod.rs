//! Shared fixtures for integration tests that drive the real `tokenwatch` binary: a temp
//! folder with generated GeoIP databases, a generated HS256 key and pepper, a config, and
//! helpers to write access-log lines and run commands.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tokenwatch::event::EventTime;
use tokenwatch::lab::world::{self, NetKind};

pub const ISSUER: &str = "https://id.example.com";

/// A generated test world in a temp folder.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// Generated per test run (test fixture, never a real secret).
    pub jwt_secret: String,
    pub pepper: String,
    pub config: PathBuf,
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

impl Fixture {
    /// A fixture whose config has `extra` TOML appended.
    pub fn new(extra: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let city = dir.path().join("city.mmdb");
        let asn = dir.path().join("asn.mmdb");
        world::write_databases(&city, &asn).expect("write mmdb");
        let jwt_secret = random_hex(32);
        let pepper = random_hex(16);
        let config = dir.path().join("tokenwatch.toml");
        let text = format!(
            r#"
[input]
format = "json"
{extra_input}

[tokens]
pepper = "{pepper}"
session_cookie = "sid"

[tokens.jwt]
issuers = ["{ISSUER}"]
audiences = ["api"]
algorithms = ["HS256"]

[[tokens.jwt.keys]]
kid = "k1"
algorithm = "HS256"
secret = "{jwt_secret}"

[geoip]
city_db = "city.mmdb"
asn_db = "asn.mmdb"

{extra}
"#,
            extra_input = "",
        );
        std::fs::write(&config, text).expect("write config");
        Fixture {
            dir,
            jwt_secret,
            pepper,
            config,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A signed JWT for `sub` valid around `iat`.
    pub fn jwt(&self, sub: &str, iat: i64) -> String {
        self.jwt_with(json!({
            "iss": ISSUER, "aud": "api", "sub": sub, "sid": format!("sid-{sub}"),
            "jti": format!("jti-{sub}-{iat}"), "iat": iat, "exp": iat + 4 * 3600,
        }))
    }

    pub fn jwt_with(&self, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.jwt_secret.as_bytes()),
        )
        .expect("sign")
    }

    /// The fingerprint of a token under this fixture's pepper.
    pub fn fingerprint(&self, token: &str) -> String {
        tokenwatch::identify::Fingerprinter::new(&self.pepper)
            .fingerprint(token.as_bytes())
            .to_hex()
    }

    /// Run the binary with `args` (the config is appended).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run tokenwatch")
    }

    /// Write `lines` to a log file and replay it; returns (decisions, stderr).
    pub fn replay(&self, lines: &[String]) -> (Vec<Value>, String) {
        let log = self.path("access.jsonl");
        std::fs::write(&log, lines.join("\n") + "\n").expect("write log");
        self.replay_file(&log)
    }

    pub fn replay_file(&self, log: &Path) -> (Vec<Value>, String) {
        let out = self.path("decisions.jsonl");
        let output = self.run(&[
            "replay",
            log.to_str().expect("utf8"),
            "--decisions",
            out.to_str().expect("utf8"),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "replay failed: {stderr}");
        let decisions = std::fs::read_to_string(&out)
            .expect("decisions")
            .lines()
            .map(|l| serde_json::from_str(l).expect("decision is JSON"))
            .collect();
        (decisions, stderr)
    }
}

/// Event time from `2026-11-23T12:00:00Z` plus `secs`.
pub fn at(secs: i64) -> EventTime {
    EventTime((1_795_435_200 + secs) * 1000)
}

pub fn ip(city: &str, kind: NetKind, host: u32) -> IpAddr {
    world::address(
        world::city_index(city).unwrap_or_else(|| panic!("no city {city}")),
        kind,
        host,
    )
}

pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";
pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";
pub const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0";
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1";

/// One access-log line (DESIGN §2 default fields) with a bearer token.
pub fn line(time: EventTime, ip: IpAddr, user_agent: &str, token: &str, path: &str) -> String {
    json!({
        "time": time.to_rfc3339(), "client_ip": ip.to_string(), "method": "GET", "path": path,
        "status": 200, "user_agent": user_agent, "authorization": format!("Bearer {token}"),
    })
    .to_string()
}

/// Decisions about one fingerprint.
pub fn about<'a>(decisions: &'a [Value], fingerprint: &str) -> Vec<&'a Value> {
    decisions
        .iter()
        .filter(|d| d["fingerprint"] == fingerprint)
        .collect()
}

/// Whether a decision lists `reason`.
pub fn has_reason(decision: &Value, reason: &str) -> bool {
    decision["reasons"]
        .as_array()
        .is_some_and(|r| r.iter().any(|x| x == reason))
}

/// Event time `secs` after a quarter of an hour ago (wall clock: for `run`).
pub fn recent(secs: i64) -> EventTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    EventTime((now - 900 + secs) * 1000)
}

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// Seconds since the epoch (wall clock).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A running `tokenwatch run`, the address its API listens on, and what it printed on stderr
/// (line by line, as it arrives); killed (SIGKILL) on drop.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(f: &Fixture) -> Daemon {
        Daemon::start_wrapped(f, &[])
    }

    /// Started through `wrap` (a program and its arguments, the binary and its arguments
    /// following), e.g. `nsenter …` or `bash -c 'ulimit -n 256 && exec "$0" "$@"'`.
    pub fn start_wrapped(f: &Fixture, wrap: &[String]) -> Daemon {
        let bin = env!("CARGO_BIN_EXE_tokenwatch");
        let mut command = match wrap.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(&f.config)
            .env("TOKENWATCH_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tokenwatch run");
        let pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                lines.lock().expect("stderr lines").push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Daemon {
                child,
                addr,
                stderr,
            },
            Err(_) => {
                // Never leak the process when the test fails here.
                let _ = child.kill();
                let _ = child.wait();
                let printed = stderr.lock().expect("stderr lines").join("\n");
                panic!("daemon did not announce its address within 30 s:\n{printed}");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything it printed on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// Whether a line it printed contains `text`.
    pub fn printed(&self, text: &str) -> bool {
        self.stderr
            .lock()
            .expect("stderr lines")
            .iter()
            .any(|l| l.contains(text))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` as text.
pub async fn metrics_text(client: &reqwest::Client, d: &Daemon) -> String {
    client
        .get(d.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of an unlabelled metric, or of one series (`name{label="value"}`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A fixture with a journal and the API on an ephemeral port, plus `extra` TOML.
pub fn daemon_fixture(extra: &str) -> Fixture {
    Fixture::new(&format!(
        "[denylist]\njournal = \"deny.journal\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n{extra}"
    ))
}

/// Make the fixture's daemon follow `log` (created empty), polling every 50 ms.
pub fn follow(f: &Fixture, log: &Path, input_extra: &str) {
    let config = std::fs::read_to_string(&f.config).expect("config").replace(
        "format = \"json\"",
        &format!(
            "format = \"json\"\npath = {:?}\npoll_interval = \"50ms\"\n{input_extra}",
            log.display().to_string()
        ),
    );
    std::fs::write(&f.config, config).expect("write config");
    std::fs::write(log, "").expect("create log");
}

pub async fn wait_ready(client: &reqwest::Client, d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(d.url("/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "daemon never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn check(client: &reqwest::Client, d: &Daemon, token: &str) -> u16 {
    client
        .get(d.url("/v1/check"))
        .bearer_auth(token)
        .send()
        .await
        .expect("check")
        .status()
        .as_u16()
}
