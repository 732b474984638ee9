//! `tokenwatch evaluate` end to end: the real binary simulates small labelled logs (worlds),
//! then evaluates them; stdout must have the per-world and targets tables, the markdown file
//! every detector row, the HTML an inline SVG chart, and the same inputs must give the same
//! report bytes. A world whose config sets `detect.step_up_threshold` shows its step-ups.
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

    /// The world's name in the report: its folder's, as it has no `world.json`.
    /// The world's name: `simulate` writes it into `world.json` beside the log.
    fn world(&self) -> String {
        let text = std::fs::read_to_string(self.root.join("world.json")).unwrap();
        let world: serde_json::Value = serde_json::from_str(&text).unwrap();
        world["name"].as_str().unwrap().to_string()
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

/// The cells of a markdown table line.
fn cells(line: &str) -> Vec<&str> {
    line.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The lines of the markdown table under the heading that starts with `heading`.
fn table<'a>(markdown: &'a str, heading: &str) -> Vec<&'a str> {
    let (_, after) = markdown
        .split_once(heading)
        .unwrap_or_else(|| panic!("no table {heading}:\n{markdown}"));
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect()
}

/// The row of `first_cell` in the table under `heading`.
fn row_in<'a>(markdown: &'a str, heading: &str, first_cell: &str) -> Vec<&'a str> {
    let line = table(markdown, heading)
        .into_iter()
        .find(|l| l.starts_with(&format!("| {first_cell} ")))
        .unwrap_or_else(|| panic!("no row {first_cell} under {heading}:\n{markdown}"));
    cells(line)
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

    // With --out, stdout has the per-world and targets tables; the files have the rest.
    assert!(
        stdout.starts_with("### Per world: tokenwatch rules only (worst world first)"),
        "{stdout}"
    );
    assert!(stdout.contains("### Targets (issue 15): tokenwatch rules only"));
    assert!(
        !stdout.contains("| CrowdSec impossible-travel "),
        "{stdout}"
    );
    // No model anywhere: the model row is left out, with a note saying so.
    assert!(!stdout.contains("Per world: tokenwatch model"), "{stdout}");
    assert!(stdout.contains("tokenwatch model: left out"), "{stdout}");

    let md = text(&sim.path("report/evaluation.md"));
    // Stops row: detector, precision, recall, F1, …. Baselines see only travel between
    // city centroids: the scripted and same-city attacks are beyond them, not beyond
    // tokenwatch (which stops them by a step-up, DESIGN §5).
    let stops = |name: &str| -> (f64, f64) {
        let row = row_in(&md, "### Stops: revoked or stepped up", name);
        (
            row[2].trim_end_matches(" %").parse().unwrap(),
            row[3].parse().unwrap(),
        )
    };
    let (recall, f1) = stops("tokenwatch rules only");
    assert!((0.0..=100.0).contains(&recall), "{md}");
    // Without the model the rules stop about as many as CrowdSec's, with fewer honest
    // sessions stopped: the better F1.
    assert!(f1 > stops("CrowdSec impossible-travel").1, "{md}");

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
        text(&sim.path("alone/evaluation.md"))
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
    let revocations = "### Revocations only";
    for name in ROWS {
        let (p, x, y) = (
            row_in(&stdout, revocations, name),
            row_in(&alone_a, revocations, name),
            row_in(&alone_b, revocations, name),
        );
        for column in [4, 5, 6] {
            let n = |cells: &[&str]| -> u64 { count_in(cells[column]).parse().unwrap() };
            assert_eq!(n(&p), n(&x) + n(&y), "{name} column {column}:\n{stdout}");
        }
    }

    // One line per world in the per-world table (named by its folder), each with that
    // world's own stop counts per attack type, then the pooled line.
    let per_world = table(&stdout, "### Per world: tokenwatch rules only");
    let header = cells(per_world[0]);
    assert_eq!(
        cells(per_world.last().unwrap())[0],
        "pooled (every world)",
        "{stdout}"
    );
    for (sim, alone) in [(&a, &alone_a), (&b, &alone_b)] {
        let world = sim.world();
        let line = row_in(&stdout, "### Per world: tokenwatch rules only", &world);
        // The stop table's rules row: "pct (stopped/sessions)" per attack type.
        let stopped = table(alone, "### Stopped by attack type");
        let types = cells(stopped[0]);
        let rules = row_in(alone, "### Stopped by attack type", "tokenwatch rules only");
        for (attack_type, cell) in types.iter().zip(&rules).skip(1) {
            let column = header.iter().position(|h| h == attack_type).unwrap();
            let counts = count_in(line[column].trim_end_matches(" ✗"));
            assert_eq!(counts, count_in(cell), "{world} {attack_type}:\n{stdout}");
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

/// Badness of a per-world line as the report orders it: honest revoked and stepped up per
/// 1,000 (higher is worse), then the lowest stop rate of the ≥ 99 % group (lower is worse).
fn badness(header: &[&str], line: &[&str]) -> (f64, f64, f64) {
    let number = |cell: &str| -> f64 {
        cell.split([' ', '%'])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a number: {cell}"))
    };
    let lowest = [
        "1 far replay",
        "2 foreign idle",
        "3 scripted",
        "5 concurrent",
    ]
    .iter()
    .filter_map(|t| header.iter().position(|h| h == t))
    .filter(|&c| line[c] != "—")
    .map(|c| number(line[c]) / 100.0)
    .fold(1.0, f64::min);
    (number(line[2]), number(line[3]), -lowest)
}

#[test]
fn evaluate_lists_each_world_worst_first_with_its_step_ups() {
    let (plain, stepping) = (Sim::new(11), Sim::new(12));
    // The second world steps up from 0.3 (flagged from there too) and is named by world.json.
    let config = stepping.path("tokenwatch.toml");
    let text_before = text(&config);
    let with_band = text_before.replacen(
        "\nthreshold = 0.8\n",
        "\nthreshold = 0.8\nstep_up_threshold = 0.3\nflag_threshold = 0.3\n",
        1,
    );
    assert_ne!(
        with_band, text_before,
        "the simulated config sets threshold = 0.8"
    );
    std::fs::write(&config, with_band).unwrap();
    std::fs::write(
        stepping.path("world.json"),
        r#"{"name": "world-12", "seed": 12}"#,
    )
    .unwrap();

    let report = plain.path("report");
    let mut args = vec!["evaluate".to_string()];
    for sim in [&plain, &stepping] {
        for (flag, file) in [
            ("--logs", "access.jsonl"),
            ("--labels", "labels.jsonl"),
            ("--config", "tokenwatch.toml"),
        ] {
            args.extend([flag.to_string(), sim.arg(file)]);
        }
    }
    args.extend(["--out".to_string(), report.to_str().unwrap().to_string()]);
    let out = tokenwatch(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let heading = "### Per world: tokenwatch rules only (worst world first)";
    let lines: Vec<Vec<&str>> = table(&stdout, heading).into_iter().map(cells).collect();
    let header = &lines[0];
    assert_eq!(header[3], "honest stepped up /1k", "{stdout}");
    // Header, separator, both worlds, pooled.
    assert_eq!(lines.len(), 5, "{stdout}");
    let names: Vec<&str> = lines[2..].iter().map(|l| l[0]).collect();
    let plain_name = plain.world();
    assert!(names.contains(&"world-12"), "{stdout}");
    assert!(names.contains(&plain_name.as_str()), "{stdout}");
    assert_eq!(names[2], "pooled (every world)");
    // Worst first.
    let (first, second) = (badness(header, &lines[2]), badness(header, &lines[3]));
    assert!(
        first.partial_cmp(&second).is_some_and(|o| o.is_ge()),
        "{first:?} before {second:?}:\n{stdout}"
    );

    // Honest sessions stepped up show in the step-up column of the world with the band only;
    // a world without one never steps up.
    let stepped = |name: &str| -> String {
        let line = lines.iter().find(|l| l[0] == name).unwrap();
        count_in(line[3].trim_end_matches(" ✗"))
    };
    assert_ne!(stepped("world-12"), "0", "{stdout}");
    assert_eq!(stepped(&plain_name), "0", "{stdout}");
    let pooled: u64 = stepped("pooled (every world)").parse().unwrap();
    assert_eq!(pooled, stepped("world-12").parse::<u64>().unwrap());

    // The targets table checks the worst world and the pooled sample.
    let targets = table(&stdout, "### Targets (issue 15): tokenwatch rules only");
    let step_up = targets
        .iter()
        .map(|l| cells(l))
        .find(|c| c[0].starts_with("honest sessions stepped up"))
        .unwrap();
    assert!(step_up[1].ends_with("(world-12)"), "{stdout}");
    assert!(["✅", "❌"].contains(&step_up[3]), "{stdout}");

    // The full report keeps the revocation-only tables: a step-up is not a revocation.
    let md = text(&report.join("evaluation.md"));
    assert!(md.contains("### Revocations only (sessions)"), "{md}");
    assert!(md.contains(heading), "{md}");
}
