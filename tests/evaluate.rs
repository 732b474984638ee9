//! `tokenwatch evaluate` end to end: the real binary simulates a small labelled log, then
//! evaluates it; the markdown must have every detector row, the HTML an inline SVG chart, and
//! the same inputs must give the same report bytes.
//!
//! Labels: `evaluate` reads `labels::SessionLabel` lines. A simulator that still writes its
//! older format (one `fingerprint` per session, no `attacker_ips`) is adapted here: the
//! attacker's addresses are those the attacked token used from its attack start on and never
//! before — what the old simulator did (a fresh hosting address per attack).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROWS: [&str; 4] = [
    "CrowdSec impossible-travel",
    "Panther ImpossibleTravel",
    "Elastic impossible travel",
    "tokenwatch rules only",
];

fn tokenwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tokenwatch")
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A simulated log with labels in the `SessionLabel` format.
struct Sim {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let log = root.join("access.jsonl");
        let out = tokenwatch(&[
            "simulate",
            "--out",
            log.to_str().unwrap(),
            "--users",
            "120",
            "--duration",
            "20m",
            "--attack-fraction",
            "0.25",
            "--seed",
            &seed.to_string(),
        ]);
        assert!(
            out.status.success(),
            "simulate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sim { _dir: dir, root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    fn evaluate(&self, out_dir: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "evaluate".to_string(),
            "--logs".into(),
            self.arg("access.jsonl"),
            "--labels".into(),
            self.arg("labels.jsonl"),
            "--config".into(),
            self.arg("tokenwatch.toml"),
            "--out".into(),
            self.arg(out_dir),
            "--title".into(),
            "e2e <seed 5>".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        tokenwatch(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// The table row of `detector` in the first markdown table that has one.
fn row_of<'a>(markdown: &'a str, detector: &str) -> Vec<&'a str> {
    let line = markdown
        .lines()
        .find(|l| l.starts_with(&format!("| {detector} ")))
        .unwrap_or_else(|| panic!("no row {detector}:\n{markdown}"));
    line.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn evaluate_reports_every_row_with_charts_and_same_bytes_twice() {
    let sim = Sim::new(5);
    let first = sim.evaluate("report", &[]);
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        first.status.success(),
        "evaluate failed: {stderr}\n{stdout}"
    );

    for name in ROWS {
        assert!(stdout.contains(&format!("| {name} ")), "{name}:\n{stdout}");
    }
    // No model anywhere: the model row is left out, with a note saying so.
    assert!(!stdout.contains("| tokenwatch model "), "{stdout}");
    assert!(stdout.contains("tokenwatch model: left out"), "{stdout}");

    // Overall row: detector, precision, recall, F1, …. Baselines see only travel between city
    // centroids: the scripted and same-city attacks are beyond them, not beyond tokenwatch.
    let recall_of = |name: &str| -> f64 {
        let row = row_of(&stdout, name);
        row[2].trim_end_matches(" %").parse().unwrap()
    };
    let recall = recall_of("tokenwatch rules only");
    assert!((0.0..=100.0).contains(&recall), "{stdout}");
    assert!(recall > recall_of("CrowdSec impossible-travel"), "{stdout}");

    let md = text(&sim.path("report/evaluation.md"));
    assert!(md.starts_with("# e2e <seed 5>\n"), "{md}");
    for name in ROWS {
        assert!(md.contains(&format!("| {name} ")), "{name}:\n{md}");
    }
    assert!(md.contains("### Inputs"), "{md}");
    assert!(!md.contains("pepper"), "no secrets in the report:\n{md}");

    let html = text(&sim.path("report/report.html"));
    assert!(html.contains("<svg"), "no chart");
    assert!(html.contains("<title>e2e &lt;seed 5&gt;</title>"));
    for name in ROWS {
        assert!(html.contains(name), "{name} not in the HTML");
    }
    let config = text(&sim.path("tokenwatch.toml"));
    let secret = config
        .lines()
        .find_map(|l| l.strip_prefix("secret = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(!html.contains(secret) && !md.contains(secret));

    // Deterministic: same inputs, same report bytes.
    let second = sim.evaluate("again", &[]);
    assert!(second.status.success());
    assert_eq!(stdout, String::from_utf8_lossy(&second.stdout));
    assert_eq!(md, text(&sim.path("again/evaluation.md")));
    assert_eq!(html, text(&sim.path("again/report.html")));
}

#[test]
fn evaluate_refuses_a_model_it_cannot_load_and_labels_from_another_run() {
    let sim = Sim::new(6);
    let missing = sim.arg("no-such-model.json");
    let out = sim.evaluate("report", &["--model", &missing]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a missing model must fail the run");
    assert!(stderr.contains("tokenwatch model"), "{stderr}");

    // Labels of another simulation: no token matches (another pepper).
    let other = Sim::new(7);
    std::fs::copy(other.path("labels.jsonl"), sim.path("labels.jsonl")).unwrap();
    let out = sim.evaluate("report", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("none of the"), "{stderr}");
}

/// The count in a "rate (count)" or "pct (detected/sessions)" cell.
fn count_in(cell: &str) -> String {
    cell.rsplit_once('(')
        .map_or(cell, |(_, c)| c.trim_end_matches(')'))
        .to_string()
}

#[test]
fn evaluate_pools_several_logs_and_reports_each() {
    let (a, b) = (Sim::new(8), Sim::new(9));
    let single = |sim: &Sim| {
        let out = sim.evaluate("alone", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (alone_a, alone_b) = (single(&a), single(&b));

    let mut args = vec!["evaluate".to_string()];
    for sim in [&a, &b] {
        for (flag, file) in [
            ("--logs", "access.jsonl"),
            ("--labels", "labels.jsonl"),
            ("--config", "tokenwatch.toml"),
        ] {
            args.extend([flag.to_string(), sim.arg(file)]);
        }
    }
    let pooled = tokenwatch(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&pooled.stdout).into_owned();
    assert!(
        pooled.status.success(),
        "{}",
        String::from_utf8_lossy(&pooled.stderr)
    );

    // Pooled counts are the sums of each log's own: false revocations, collateral (a user id
    // of one seed is not the same user in the other) and sessions detected.
    let sessions = |md: &str| -> u64 {
        let line = md.lines().find(|l| l.contains(" sessions, ")).unwrap();
        line.split(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(sessions(&stdout), sessions(&alone_a) + sessions(&alone_b));
    for name in ROWS {
        let (p, x, y) = (
            row_of(&stdout, name),
            row_of(&alone_a, name),
            row_of(&alone_b, name),
        );
        for column in [4, 5, 6] {
            let n = |cells: &[&str]| -> u64 { count_in(cells[column]).parse().unwrap() };
            assert_eq!(n(&p), n(&x) + n(&y), "{name} column {column}:\n{stdout}");
        }
    }

    // One row per log in the per-input table, each with that log's own recall cells.
    let table = stdout
        .split("### Per input (tokenwatch rules only)")
        .nth(1)
        .unwrap();
    for (sim, alone) in [(&a, &alone_a), (&b, &alone_b)] {
        let line = table
            .lines()
            .find(|l| l.contains(&sim.arg("access.jsonl")))
            .unwrap_or_else(|| panic!("no row for {}:\n{table}", sim.arg("access.jsonl")));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // The recall table's rules row: "pct (detected/sessions)" per attack type, in order.
        let recall = alone.split("### Recall by attack type").nth(1).unwrap();
        let rules = row_of(recall, "tokenwatch rules only");
        for (k, cell) in rules[1..].iter().enumerate() {
            let per_input = cells[4 + k].split(',').next().unwrap();
            assert_eq!(per_input, count_in(cell), "{line}");
        }
    }

    // Each log needs its own labels and config.
    let out = tokenwatch(
        &args[..args.len() - 2]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("one --labels and one --config per --logs"),
        "{stderr}"
    );
}
