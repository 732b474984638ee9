//! The observing end of the flow: a live `tokenwatch run` with traffic (honest use, one stolen
//! token revoked, one unparsable line) is scraped by a real Prometheus (Debian package
//! `prometheus`, `/usr/bin/prometheus`) loading `deploy/prometheus/alerts.yml`; every query of
//! the Grafana dashboard `deploy/grafana/tokenwatch.json` is then run through Prometheus' HTTP
//! API and must be valid and return data. Before that, every `tokenwatch_*` name used by the
//! alert rules and the dashboard must be one the daemon exports (a typo in a rule or panel
//! would otherwise just stay silent).
//!
//! Prometheus missing: the Prometheus half skips, printing why — except under `CI=true`, where
//! it fails (`scripts/install-deps.sh` installs it). The scrape job is deliberately not called
//! "tokenwatch": no rule or panel may depend on the job's name.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokenwatch::lab::world::NetKind;

/// What the dashboard's Grafana variables stand for in the queries sent here. `$instance`
/// is the "All" value (`allValue` in the dashboard); the rate window spans several of the
/// 1 s scrapes.
const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("$__rate_interval", "30s"),
    ("$__interval", "5s"),
    ("$__range", "5m"),
    ("$instance", ".+"),
];

/// Metrics only distributed mode (Kafka) sets: registered, but without a series in embedded
/// mode, so their panels and rules cannot return data here. Each must still be a name
/// `src/metrics.rs` registers.
const KAFKA_ONLY: &[&str] = &["tokenwatch_kafka_consumer_lag"];

/// Every bounded wait in this file.
const DEADLINE: Duration = Duration::from_secs(60);

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every `tokenwatch_…` metric name in `text`, histogram series suffixes folded into the
/// family name.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tokenwatch_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        // `tokenwatch_*` in prose names no metric.
        if family.len() > "tokenwatch_".len() {
            names.insert(family.to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The dashboard's panel queries: (panel title, expr), row panels' children included.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                out.push((
                    panel["title"].as_str().unwrap_or("").to_string(),
                    expr.into(),
                ));
            }
            walk(panel["panels"].as_array().map_or(&[], Vec::as_slice), out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().expect("panels"), &mut out);
    out
}

fn substitute(expr: &str) -> String {
    SUBSTITUTIONS
        .iter()
        .fold(expr.to_string(), |e, (var, value)| e.replace(var, value))
}

/// `/usr/bin/prometheus` (or `$TOKENWATCH_PROMETHEUS`); `None` with a printed reason when
/// missing outside CI, a failure under `CI=true`.
fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os("TOKENWATCH_PROMETHEUS")
        .map_or_else(|| PathBuf::from("/usr/bin/prometheus"), PathBuf::from);
    if path.is_file() {
        return Some(path);
    }
    let how = format!(
        "no Prometheus at {} (Debian package `prometheus`: scripts/install-deps.sh)",
        path.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {how}"
    );
    // Straight to the process's stderr: a skip must be visible in a green run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP observability (Prometheus half): {how}"
    );
    None
}

/// A Prometheus process, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrape `target` every second under the job `job`, with the alert rules loaded.
    fn start(binary: &Path, dir: &Path, target: &str, job: &str) -> Prometheus {
        let rules = repo_file("deploy/prometheus/alerts.yml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules:?}\n\
                 scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{target:?}]\n"
            ),
        )
        .unwrap();
        // A free port: bound, read, released (another process could take it in between; the
        // readiness wait below would then fail loudly, not hang).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// An instant query: the JSON answer, whatever its status.
    async fn query(&self, client: &reqwest::Client, expr: &str) -> Option<Value> {
        let response = client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }
}

/// Write honest use of one token from Berlin, then the same token from São Paulo ten minutes
/// later (impossible travel: revoked), plus an unparsable line; wait until the revocation is
/// counted.
async fn traffic_with_a_revocation(f: &Fixture, log: &Path, client: &reqwest::Client, d: &Daemon) {
    let token = f.jwt("grace", recent(0).secs());
    let honest = f.jwt("heidi", recent(0).secs());
    let mut file = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    for i in 0..5 {
        let berlin = ip("Berlin", NetKind::Residential, 4);
        writeln!(
            file,
            "{}",
            line(recent(i * 60), berlin, CHROME, &token, "/")
        )
        .unwrap();
        let london = ip("London", NetKind::Residential, 7);
        writeln!(
            file,
            "{}",
            line(recent(i * 60), london, FIREFOX, &honest, "/")
        )
        .unwrap();
    }
    writeln!(file, "this is not an access-log record").unwrap();
    let far = ip("São Paulo", NetKind::AltResidential, 4);
    writeln!(file, "{}", line(recent(600), far, CHROME, &token, "/api")).unwrap();
    file.flush().unwrap();

    let deadline = Instant::now() + DEADLINE;
    let counted = "tokenwatch_revocations_total{origin=\"detector\"} 1";
    while !metrics_text(client, d).await.contains(counted) {
        assert!(
            Instant::now() < deadline,
            "stolen token never revoked:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Check answers, so the check latency histogram has observations.
    assert_eq!(check(client, d, &token).await, 401);
    assert_eq!(check(client, d, &honest).await, 200);
}

#[tokio::test]
async fn every_alert_and_panel_metric_exists_and_every_panel_query_returns_data() {
    let started = Instant::now();
    // Enforce explicitly: the default mode of a fresh install may be shadow.
    let f = daemon_fixture("[detect]\nmode = \"enforce\"\n");
    let log = f.path("access.jsonl");
    follow(&f, &log, "");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    traffic_with_a_revocation(&f, &log, &client, &daemon).await;

    // 1. Every metric name the rules and the dashboard use is exported (or Kafka-only and
    //    registered), so none of them watches a series that can never exist.
    let exported = metrics_text(&client, &daemon).await;
    assert!(exported.contains("tokenwatch_ready 1"), "{exported}");
    let alerts = std::fs::read_to_string(repo_file("deploy/prometheus/alerts.yml")).unwrap();
    let dashboard_text =
        std::fs::read_to_string(repo_file("deploy/grafana/tokenwatch.json")).unwrap();
    let registered = std::fs::read_to_string(repo_file("src/metrics.rs")).unwrap();
    let used: BTreeSet<String> = metric_names(&alerts)
        .into_iter()
        .chain(metric_names(&dashboard_text))
        .collect();
    assert!(used.len() >= 20, "too few names found: {used:?}");
    for name in &used {
        if KAFKA_ONLY.contains(&name.as_str()) {
            let short = name.trim_start_matches("tokenwatch_");
            assert!(
                registered.contains(&format!("\"{short}\"")),
                "{name} is not registered in src/metrics.rs"
            );
            continue;
        }
        assert!(
            exported.contains(&format!("# TYPE {name} ")),
            "{name} (used in alerts.yml or the dashboard) is not exported by the daemon"
        );
    }

    // 2. The dashboard's queries through a real Prometheus scraping the daemon.
    let dashboard: Value = serde_json::from_str(&dashboard_text).unwrap();
    let datasource_vars: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "datasource" && v["name"] == "datasource")
        .collect();
    assert_eq!(datasource_vars.len(), 1, "a ${{datasource}} variable");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "{queries:?}");
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let prometheus = Prometheus::start(&binary, f.dir.path(), &daemon.addr, "tw-under-test");

    // Every query valid; each returns data once a few scrapes are in (bounded poll).
    let deadline = Instant::now() + DEADLINE;
    let mut pending: Vec<(String, String)> = queries;
    let mut last_answer = String::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (title, expr) in pending {
            let sent = substitute(&expr);
            let Some(answer) = prometheus.query(&client, &sent).await else {
                still.push((title, expr));
                continue;
            };
            assert_eq!(
                answer["status"], "success",
                "panel {title:?}: query {sent} is invalid: {answer}"
            );
            let kafka_only = KAFKA_ONLY.iter().any(|name| expr.contains(name));
            let empty = answer["data"]["result"]
                .as_array()
                .is_none_or(|r| r.is_empty());
            if empty && !kafka_only {
                last_answer = format!("panel {title:?}: {sent} → {answer}");
                still.push((title, expr));
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "queries without data after {DEADLINE:?}: {pending:?}\nlast: {last_answer}\n\
                 prometheus log:\n{}",
                std::fs::read_to_string(f.path("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // The scrape under a job not named "tokenwatch" is up, and the alert rules loaded and
    // evaluate without error on live data.
    let up = prometheus
        .query(&client, "up{job=\"tw-under-test\"}")
        .await
        .unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let rules: Value = client
        .get(format!("{}/api/v1/rules", prometheus.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let loaded: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(loaded.len() >= 15, "{rules}");
    for rule in loaded {
        assert_eq!(rule["health"], "ok", "rule failed on live data: {rule}");
    }
    // Nothing is wrong with this instance: no rule fires on it.
    let firing = prometheus
        .query(&client, "ALERTS{alertstate=\"firing\"}")
        .await
        .unwrap();
    assert_eq!(firing["data"]["result"], serde_json::json!([]), "{firing}");
    let _ = writeln!(
        std::io::stderr(),
        "observability: {} panel queries checked in {:.1?}",
        dashboard_queries(&dashboard).len(),
        started.elapsed()
    );
}
