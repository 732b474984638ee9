//! Wiring: builds the stages from a validated config and runs them — `replay` (offline, to
//! EOF), `run` (the daemon) and `demo`.
//!
//! This is the one place that knows every stage. It owns threads, channels, signals and the
//! API server; the stages themselves stay pure. The detection thread is a plain OS thread
//! (CPU work, rayon inside), fed batches over a bounded channel by the sources and by
//! `POST /v1/events`; backpressure is the channel's bound.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::{Config, Secrets};
use crate::decide::Policy;
use crate::enrich::Enricher;
use crate::identify::Identifier;
use crate::metrics::Metrics;
use crate::parse::Parser;
use crate::pipeline::{Pipeline, Stages, Totals};
use crate::publish::Publisher;
use crate::score::{RuleScorer, Scorer};
use crate::source::{self, SourceLimits};
use crate::track::SessionTracker;

/// Build the stages (opens key files and GeoIP databases).
pub fn build_stages(config: &Config, secrets: &Secrets) -> anyhow::Result<Stages> {
    let parser = Parser::new(
        config.input.format,
        &config.input.fields,
        &config.tokens.session_cookie,
        config.input.max_line_bytes,
    )
    .map_err(|e| anyhow::anyhow!("input.fields: {e}"))?;
    let identifier = Identifier::from_config(&config.tokens, secrets).context("tokens")?;
    let enricher = Arc::new(Enricher::from_config(&config.geoip).context("geoip")?);
    let tracker = Arc::new(SessionTracker::new(&config.detect));
    let scorer: Arc<dyn Scorer> = Arc::new(RuleScorer::new(&config.detect));
    let policy = Policy::new(&config.detect, &config.tokens);
    Ok(Stages {
        parser,
        identifier,
        enricher,
        tracker,
        scorer,
        policy,
    })
}

/// Source limits from `[input]`.
pub fn source_limits(config: &Config) -> SourceLimits {
    SourceLimits {
        max_line_bytes: config.input.max_line_bytes,
        batch_size: config.input.batch_size,
        poll_interval: config.input.poll_interval.0,
    }
}

/// Result of a replay.
pub struct ReplayReport {
    /// Counts.
    pub totals: Totals,
    /// Wall time.
    pub elapsed: Duration,
    /// The metrics registry (for tests).
    pub metrics: Arc<Metrics>,
}

/// `tokenwatch replay`: read `input` (a path or `-`) to EOF on event time, writing decision
/// records as JSON lines to `decisions` (stdout when `None`). Publishes to no denylist.
pub fn replay(
    config: &Config,
    secrets: &Secrets,
    input: &str,
    decisions: Option<&Path>,
) -> anyhow::Result<ReplayReport> {
    let metrics = Arc::new(Metrics::new());
    let stages = build_stages(config, secrets)?;
    let mut pipeline = Pipeline::new(stages, metrics.clone());
    let sink: Box<dyn Write + Send> = match decisions {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut publisher = Publisher::new(None, Some(sink), metrics.clone(), false);
    let started = Instant::now();
    let (mut rx, reader) = source::read_all(input, source_limits(config));
    let progress = Progress::new("replay");
    while let Some(batch) = rx.blocking_recv() {
        let decided = Instant::now();
        let decisions = pipeline.process_batch(&batch);
        publisher.publish(decisions, decided)?;
        progress.tick(pipeline.totals().lines);
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("source thread panicked"))??;
    progress.done();
    Ok(ReplayReport {
        totals: pipeline.totals().clone(),
        elapsed: started.elapsed(),
        metrics,
    })
}

/// Progress on stderr for long commands, only when stderr is a terminal.
struct Progress {
    what: &'static str,
    started: Instant,
    last: std::cell::Cell<Instant>,
    enabled: bool,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        use std::io::IsTerminal;
        let now = Instant::now();
        Progress {
            what,
            started: now,
            last: std::cell::Cell::new(now),
            enabled: std::io::stderr().is_terminal(),
        }
    }
    fn tick(&self, lines: u64) {
        if self.enabled && self.last.get().elapsed() >= Duration::from_millis(500) {
            self.last.set(Instant::now());
            let rate = lines as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            eprint!("\r{}: {lines} lines, {rate:.0} lines/s   ", self.what);
        }
    }
    fn done(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The short summary table `replay` prints on stderr.
pub fn summary_table(totals: &Totals, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut rows: Vec<(String, String)> = vec![
        ("lines".into(), totals.lines.to_string()),
        ("processed".into(), totals.processed.to_string()),
        ("anonymous".into(), totals.anonymous.to_string()),
        (
            "parse errors".into(),
            totals.parse_error_count().to_string(),
        ),
        (
            "rejected tokens".into(),
            totals.rejected_count().to_string(),
        ),
        (
            "revoked".into(),
            totals
                .decisions
                .get("revoke")
                .copied()
                .unwrap_or(0)
                .to_string(),
        ),
        (
            "flagged".into(),
            totals
                .decisions
                .get("flag")
                .copied()
                .unwrap_or(0)
                .to_string(),
        ),
        ("elapsed".into(), format!("{secs:.2} s")),
        (
            "throughput".into(),
            format!("{:.0} lines/s", totals.lines as f64 / secs),
        ),
    ];
    for (reason, n) in &totals.parse_errors {
        rows.push((format!("  parse error: {reason}"), n.to_string()));
    }
    for (result, n) in &totals.verifications {
        rows.push((format!("  token: {result}"), n.to_string()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v:>12}\n"))
        .collect()
}

/// Resolve `--config`: the given file, else `./tokenwatch.toml`, else `config/default.toml`.
pub fn config_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let local = PathBuf::from("tokenwatch.toml");
        if local.exists() {
            local
        } else {
            PathBuf::from("config/default.toml")
        }
    })
}

/// `tokenwatch simulate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Access log to write (JSON lines). The GeoIP databases, labels and a config to replay
    /// it are written beside it.
    #[arg(long)]
    pub out: PathBuf,
    /// Labels file (default: `labels.jsonl` beside `--out`).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// RNG seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Approximate number of events (sets the number of users).
    #[arg(long, conflicts_with = "users")]
    pub events: Option<u64>,
    /// Number of users (one session each).
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Simulated span, e.g. `30m`.
    #[arg(long, default_value = "30m")]
    pub duration: humantime::Duration,
    /// First event time (RFC 3339).
    #[arg(long, default_value = "2026-11-23T12:00:00Z")]
    pub start: String,
    /// Fraction of sessions an attacker replays.
    #[arg(long, default_value_t = 0.05)]
    pub attack_fraction: f64,
}

/// Parse RFC 3339 text into event time.
pub fn parse_rfc3339(text: &str) -> anyhow::Result<crate::event::EventTime> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("not an RFC 3339 time: {text:?}"))?;
    Ok(crate::event::EventTime(
        (t.unix_timestamp_nanos() / 1_000_000) as i64,
    ))
}

/// Files written next to a simulated access log.
pub struct SimFiles {
    /// City database.
    pub city_db: PathBuf,
    /// ASN database.
    pub asn_db: PathBuf,
    /// Config that replays the simulation.
    pub config: PathBuf,
}

/// Write the GeoIP databases and a replay config for `keys` into `dir`.
pub fn write_sim_support(
    dir: &Path,
    keys: &crate::simulate::SimKeys,
    journal: Option<&Path>,
) -> anyhow::Result<SimFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = SimFiles {
        city_db: dir.join("geo-city.mmdb"),
        asn_db: dir.join("geo-asn.mmdb"),
        config: dir.join("tokenwatch.toml"),
    };
    crate::geodb::write_databases(&files.city_db, &files.asn_db)
        .context("writing GeoIP databases")?;
    let journal = journal.map(|j| j.display().to_string());
    let text =
        crate::simulate::config_toml(keys, "geo-city.mmdb", "geo-asn.mmdb", journal.as_deref());
    std::fs::write(&files.config, text)
        .with_context(|| format!("cannot write {}", files.config.display()))?;
    Ok(files)
}

/// `tokenwatch simulate`.
pub fn simulate_to_files(args: &SimulateArgs) -> anyhow::Result<()> {
    use crate::simulate::{SimKeys, SimSpec, simulate};
    let duration_s = args.duration.as_secs().max(60);
    let users = match args.events {
        Some(events) => SimSpec::users_for_events(events, duration_s),
        None => args.users,
    };
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.attack_fraction),
        "--attack-fraction must be within [0, 1]"
    );
    let spec = SimSpec {
        seed: args.seed,
        start: parse_rfc3339(&args.start)?,
        duration_s,
        users,
        attack_fraction: args.attack_fraction,
    };
    let keys = SimKeys::from_seed(args.seed);
    let dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let files = write_sim_support(dir, &keys, None)?;
    let sim = simulate(&spec, &keys);

    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?,
    );
    for line in &sim.lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    let labels_path = args
        .labels
        .clone()
        .unwrap_or_else(|| dir.join("labels.jsonl"));
    let mut labels = std::io::BufWriter::new(
        std::fs::File::create(&labels_path)
            .with_context(|| format!("cannot create {}", labels_path.display()))?,
    );
    for label in &sim.labels {
        serde_json::to_writer(&mut labels, label)?;
        labels.write_all(b"\n")?;
    }
    labels.flush()?;
    let attacks = sim
        .labels
        .iter()
        .filter(|l| l.attack_type.is_some())
        .count();
    eprintln!(
        "simulated {} events, {} sessions ({} attacked)\n  log     {}\n  labels  {}\n  geoip   {} {}\n  config  {}\nreplay it: tokenwatch replay {} --config {}",
        sim.lines.len(),
        sim.labels.len(),
        attacks,
        args.out.display(),
        labels_path.display(),
        files.city_db.display(),
        files.asn_db.display(),
        files.config.display(),
        args.out.display(),
        files.config.display(),
    );
    Ok(())
}

/// `tokenwatch demo` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// API listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// RNG seed of the simulated traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Users in the simulation.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Playback speed: simulated seconds per wall second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Exit after the demo instead of serving the API until Ctrl-C.
    #[arg(long)]
    pub no_serve: bool,
}

/// `tokenwatch run` (placeholder until the API lands).
pub fn run_blocking(_config: Config, _secrets: Secrets) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}

/// `tokenwatch demo` (placeholder until the API lands).
pub fn demo(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
