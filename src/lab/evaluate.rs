//! `tokenwatch evaluate`: how often tokenwatch stops a stolen token (revokes it or steps the
//! session up), how many attacker requests it serves first and how many honest sessions it
//! revokes or challenges, per attack type and per world, beside the published
//! impossible-travel rules, on labelled logs.
//!
//! Data flow: the log is read once, in batches (`source::read_all`). Each batch goes through a
//! full [`Pipeline`] per tokenwatch row — the rules-only config (`detect.model` unset) and,
//! when a model is given, the model config — built by `app::build_stages`, exactly as `replay`
//! runs it. `Pipeline::process_batch_observed` shows every event that reached detection with
//! its assessment: its score feeds the precision–recall curves, and its `revoke` and `step_up`
//! decisions are the row's stops ([`metrics::Stop`]; a step-up is a stop, never a
//! revocation). The first pipeline's identified and enriched events also give the ground
//! truth per event (`Labels::is_attacker_request`) and, per token fingerprint, the located
//! uses the baselines ([`baselines`]) run over — so baselines see the very same parse,
//! identify and enrich results, with no second parser; baselines only revoke. [`metrics`]
//! turns stops into the numbers, [`targets`] checks issue 15's targets and orders the worlds
//! worst first, [`report`] renders the markdown and HTML.
//!
//! Worlds: each `--logs/--labels/--config` triple is a world, named by the `name` of the
//! `world.json` beside its log, else by the log's folder ([`world_name`]). Each is replayed on
//! its own, through fresh pipelines built from its own config (its keys and GeoIP databases),
//! and its sessions join one pooled list with their indices offset and their user ids
//! prefixed by the world's position (a simulated user id in one world is not that user in
//! another). Per-world metrics are kept beside the pooled ones ([`Evaluation::per_input`]):
//! the report shows every world, worst first, and checks the targets on the worst world as
//! well as on the pooled sample, so one bad world stays visible.
//!
//! Invariants: deterministic for the same inputs (event time only; pipelines keep input
//! order; worlds are ordered with ties kept in command-line order); nothing here prints or
//! stores a token — only fingerprints ever reach this module. Memory grows with the located
//! uses of one log's labelled tokens (about 50 bytes each) and with the decisions made (at
//! most one step-up and one revocation per token), not with the logs' bytes.
//!
//! What it does NOT do: train, simulate or publish to a denylist; `flag` decisions are not
//! stops.

pub mod baselines;
pub mod metrics;
pub mod report;
pub mod targets;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rayon::prelude::*;

use crate::config::{Config, ProcessEnv, Secrets};
use crate::event::{Action, Decision, Fingerprint};
use crate::lab::labels::{Labels, LabelsError, SessionLabel};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

use baselines::{BASELINES, Point};
use metrics::{PrPoint, RowMetrics, SessionScore, Stop, StopKind, Truth};

/// `tokenwatch evaluate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// Access log to evaluate on (JSON lines, as `simulate` writes it). Repeatable: several
    /// logs (seeds) are pooled into one larger sample, each with its own --labels and
    /// --config in the same order, and the report adds a table per log.
    #[arg(long, required = true)]
    pub logs: Vec<PathBuf>,
    /// Ground truth: `labels.jsonl`, one session per line (one per --logs).
    #[arg(long, required = true)]
    pub labels: Vec<PathBuf>,
    /// Config: input format, token keys, GeoIP and detection settings (`simulate` writes one
    /// beside its log; one per --logs).
    #[arg(long, short, required = true)]
    pub config: Vec<PathBuf>,
    /// Model artifact for the "tokenwatch model" row (default: the config's `detect.model`;
    /// the row is left out when neither names one).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder to write `evaluation.md` and `report.html` into.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Title of the report.
    #[arg(long, default_value = "tokenwatch evaluation")]
    pub title: String,
}

/// Why an evaluation cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The labels file cannot be read.
    #[error("labels: {0}")]
    Labels(#[from] LabelsError),
    /// No event's token is in the labels: wrong labels, or a config with another pepper.
    #[error(
        "none of the {events} identified events carries a token from the labels: are the labels \
         from this log, and does the config use the simulation's pepper?"
    )]
    NoLabelledEvents {
        /// Events that reached detection.
        events: u64,
    },
    /// The labels name no attacked session: there is nothing to detect.
    #[error("the labels contain no attacked session")]
    NoAttacks,
    /// plotters failed to draw.
    #[error("drawing the precision–recall chart: {0}")]
    Chart(String),
}

impl EvaluateError {
    /// Bounded code.
    pub fn code(&self) -> &'static str {
        match self {
            EvaluateError::Labels(_) => "labels",
            EvaluateError::NoLabelledEvents { .. } => "no_labelled_events",
            EvaluateError::NoAttacks => "no_attacks",
            EvaluateError::Chart(_) => "chart",
        }
    }
}

/// Which detector a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// A published impossible-travel rule.
    Baseline,
    /// tokenwatch with the rule scorer.
    Rules,
    /// tokenwatch with the trained model.
    Model,
}

/// One detector's results.
#[derive(Debug, Clone)]
pub struct Row {
    /// Detector name.
    pub name: String,
    /// What it does.
    pub definition: String,
    /// Which kind.
    pub kind: RowKind,
    /// Its numbers.
    pub metrics: RowMetrics,
    /// Precision–recall curve of its score (tokenwatch rows; empty for baselines).
    pub curve: Vec<PrPoint>,
}

/// Counts over the run, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Lines read.
    pub lines: u64,
    /// Events that reached detection.
    pub events: u64,
    /// Of which GeoIP located (what the baselines see).
    pub located: u64,
    /// Events whose token is not in the labels (left out of every metric).
    pub unlabelled_events: u64,
    /// Requests by attackers.
    pub attacker_requests: u64,
    /// Other requests of labelled tokens.
    pub benign_requests: u64,
    /// Labelled sessions.
    pub sessions: usize,
    /// Of which attacked.
    pub attacked_sessions: usize,
}

impl RunStats {
    /// Fold in another log's counts.
    fn add(&mut self, other: &RunStats) {
        self.lines += other.lines;
        self.events += other.events;
        self.located += other.located;
        self.unlabelled_events += other.unlabelled_events;
        self.attacker_requests += other.attacker_requests;
        self.benign_requests += other.benign_requests;
        self.sessions += other.sessions;
        self.attacked_sessions += other.attacked_sessions;
    }
}

/// One world's own numbers: a world is one `--logs/--labels/--config` triple.
#[derive(Debug, Clone)]
pub struct InputMetrics {
    /// The world's name ([`world_name`]), unique within the evaluation.
    pub world: String,
    /// The log, as named on the command line.
    pub name: String,
    /// Its counts.
    pub stats: RunStats,
    /// Every row's metrics on this log alone, in [`Evaluation::rows`] order.
    pub metrics: Vec<RowMetrics>,
}

/// An evaluation: every row over the same events.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Rows in report order: baselines, then tokenwatch.
    pub rows: Vec<Row>,
    /// Attack types present, in report order.
    pub attack_types: Vec<String>,
    /// Attacked sessions per attack type (same order).
    pub attacked_by_type: Vec<usize>,
    /// Counts.
    pub stats: RunStats,
    /// Per world (input log), in command-line order (one entry for a single log).
    pub per_input: Vec<InputMetrics>,
    /// Things the reader must know (a row left out, unlabelled events …).
    pub notes: Vec<String>,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

/// One tokenwatch row while the log is read: its pipeline and what it has produced.
struct ScoredRow {
    pipeline: Pipeline,
    output: RowOutput,
}

impl ScoredRow {
    /// One batch through the row's pipeline; `gathered` also collects ground truth and the
    /// baselines' inputs (one row does, for all).
    fn process(
        &mut self,
        batch: &[crate::event::RawLine],
        labels: &Labels,
        mut gathered: Option<&mut Gathered>,
    ) {
        let scores = &mut self.output.scores;
        let decisions = self
            .pipeline
            .process_batch_observed(batch, |event, _, assessment| {
                let session = labels.index_of(event.identity.fingerprint);
                if let Some(gathered) = gathered.as_deref_mut() {
                    gather(gathered, labels, event, session);
                }
                if let Some(s) = session {
                    let after = labels.sessions[s]
                        .attack_start
                        .is_some_and(|start| event.event.time >= start);
                    scores[s].observe(assessment.score, after);
                }
            });
        self.output.stops.extend(stops_of(&decisions, labels));
    }
}

/// Ground truth and baseline inputs, gathered from the first pipeline's events.
struct Gathered {
    attacker_requests: Vec<Vec<u64>>,
    /// Per labelled token: its session and its located uses in input order.
    uses: HashMap<Fingerprint, (usize, Vec<Point>)>,
    stats: RunStats,
}

/// One labelled log and the config it is replayed with (its token keys and GeoIP
/// databases: every simulated seed has its own).
#[derive(Clone, Copy)]
pub struct LabelledLog<'a> {
    /// Access log (named by its path in the report).
    pub logs: &'a Path,
    /// Its ground truth.
    pub labels: &'a Labels,
    /// Its config.
    pub config: &'a Config,
    /// The config's secrets.
    pub secrets: &'a Secrets,
}

/// A tokenwatch row's output on one log.
struct RowOutput {
    name: &'static str,
    definition: String,
    kind: RowKind,
    scores: Vec<SessionScore>,
    stops: Vec<Stop>,
}

/// One log's pass: every row's stops and session scores, the ground truth and the
/// baselines' revocations, with session indices local to the log.
struct Pass {
    rows: Vec<RowOutput>,
    baselines: Vec<Vec<Stop>>,
    gathered: Gathered,
    notes: Vec<String>,
}

/// Run every row over each log and measure them against its labels, pooled: the sessions of
/// all logs together, as one larger sample (per-log numbers are in
/// [`Evaluation::per_input`]).
///
/// `model` is the artifact of the model row (`None`: the row is left out with a note). The
/// configs' own `detect.model` is ignored here; the caller decides which model to use.
pub fn evaluate(inputs: &[LabelledLog<'_>], model: Option<&Path>) -> anyhow::Result<Evaluation> {
    let started = Instant::now();
    if !inputs
        .iter()
        .any(|i| i.labels.sessions.iter().any(|s| s.is_attack()))
    {
        return Err(EvaluateError::NoAttacks.into());
    }
    let mut notes = Vec::new();
    if model.is_none() {
        notes.push(
            "tokenwatch model: left out — neither --model nor the config's detect.model names \
             a model artifact."
                .to_string(),
        );
    }

    // Pooled: sessions of later logs follow the earlier ones'; a user is the same user only
    // within one log (simulated user ids repeat from seed to seed).
    let mut sessions: Vec<SessionLabel> = Vec::new();
    let mut attacker_requests: Vec<Vec<u64>> = Vec::new();
    let mut stats = RunStats::default();
    let mut rows: Vec<RowOutput> = Vec::new();
    let mut baselines: Vec<Vec<Stop>> = vec![Vec::new(); BASELINES.len()];
    let mut per_input = Vec::new();
    let worlds = unique_names(inputs.iter().map(|i| world_name(i.logs)).collect());
    for ((i, input), world) in inputs.iter().enumerate().zip(worlds) {
        let name = input.logs.display().to_string();
        let pass = replay(input, model)?;
        let offset = sessions.len();
        let shift = |r: &Stop| Stop {
            session: r.session + offset,
            ..*r
        };
        per_input.push(InputMetrics {
            world,
            name: name.clone(),
            stats: pass.gathered.stats.clone(),
            metrics: measure_pass(input.labels, &pass),
        });
        notes.extend(pass.notes.into_iter().map(|n| match inputs.len() {
            1 => n,
            _ => format!("{name}: {n}"),
        }));
        sessions.extend(input.labels.sessions.iter().cloned().map(|mut s| {
            if inputs.len() > 1 {
                s.user = format!("{i}:{}", s.user);
            }
            s
        }));
        attacker_requests.extend(pass.gathered.attacker_requests);
        stats.add(&pass.gathered.stats);
        for (pooled, local) in baselines.iter_mut().zip(&pass.baselines) {
            pooled.extend(local.iter().map(shift));
        }
        for (k, mut row) in pass.rows.into_iter().enumerate() {
            row.stops.iter_mut().for_each(|r| *r = shift(r));
            match rows.get_mut(k) {
                Some(pooled) => {
                    if pooled.definition != row.definition {
                        notes.push(format!(
                            "{name}: {} is \"{}\" there",
                            row.name, row.definition
                        ));
                    }
                    pooled.scores.extend(row.scores);
                    pooled.stops.extend(row.stops);
                }
                None => rows.push(row),
            }
        }
    }

    let truth = Truth {
        sessions: &sessions,
        attacker_requests: &attacker_requests,
        benign_requests: stats.benign_requests,
    };
    let mut out: Vec<Row> = BASELINES
        .iter()
        .zip(&baselines)
        .map(|(baseline, stops)| Row {
            name: baseline.name.to_string(),
            definition: baseline.definition.to_string(),
            kind: RowKind::Baseline,
            metrics: metrics::measure(&truth, stops),
            curve: Vec::new(),
        })
        .collect();
    for row in rows {
        out.push(Row {
            name: row.name.to_string(),
            definition: row.definition,
            kind: row.kind,
            metrics: metrics::measure(&truth, &row.stops),
            curve: metrics::pr_curve(&row.scores),
        });
    }

    let attack_types = metrics::attack_types(&sessions);
    let attacked_by_type = attack_types
        .iter()
        .map(|t| {
            sessions
                .iter()
                .filter(|s| s.attack_type.as_deref() == Some(t.as_str()))
                .count()
        })
        .collect();
    Ok(Evaluation {
        rows: out,
        attack_types,
        attacked_by_type,
        stats,
        per_input,
        notes,
        elapsed: started.elapsed(),
    })
}

/// The name of the world a log was simulated in: the `name` field of `world.json` beside the
/// log when that file exists and has one (`simulate --world-seed N` writes
/// `{"name": "world-N", …}`), else the log's folder name, else the log's path.
pub fn world_name(log: &Path) -> String {
    let folder = log.parent().filter(|p| !p.as_os_str().is_empty());
    let from_file = folder
        .and_then(|dir| std::fs::read(dir.join("world.json")).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| Some(json.get("name")?.as_str()?.trim().to_string()))
        .filter(|name| !name.is_empty());
    from_file
        .or_else(|| {
            let dir = folder.map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            Some(dir.file_name()?.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| log.display().to_string())
}

/// Names made unique: a repeated name gets ` #2`, ` #3` … by command-line position, so two
/// worlds in folders of the same name stay apart in the per-world table.
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let repeats = names[..i].iter().filter(|n| *n == name).count();
        out.push(match repeats {
            0 => name.clone(),
            n => format!("{name} #{}", n + 1),
        });
    }
    out
}

/// One log through every tokenwatch row (one read, the rows side by side) and the baselines.
fn replay(input: &LabelledLog<'_>, model: Option<&Path>) -> anyhow::Result<Pass> {
    let LabelledLog {
        logs,
        labels,
        config,
        secrets,
    } = *input;
    let sessions = labels.sessions.len();
    let blank_scores: Vec<SessionScore> = labels
        .sessions
        .iter()
        .map(|s| SessionScore {
            attacked: s.is_attack() && s.attack_start.is_some(),
            ..SessionScore::default()
        })
        .collect();
    let mut rows = vec![scored_row(
        config,
        secrets,
        None,
        "tokenwatch rules only",
        &blank_scores,
    )?];
    if let Some(path) = model {
        rows.push(scored_row(
            config,
            secrets,
            Some(path),
            "tokenwatch model",
            &blank_scores,
        )?);
    }

    let mut gathered = Gathered {
        attacker_requests: vec![Vec::new(); sessions],
        uses: HashMap::new(),
        stats: RunStats::default(),
    };
    let input = logs
        .to_str()
        .with_context(|| format!("--logs: not UTF-8: {}", logs.display()))?;
    let (mut rx, reader) = crate::source::read_all(input, crate::app::source_limits(config));
    while let Some(batch) = rx.blocking_recv() {
        gathered.stats.lines += batch.len() as u64;
        // The rows' pipelines are independent: the model row runs beside the rules row, so
        // their in-order phases use both cores (phase 1 of each is parallel already).
        if let Some((first, rest)) = rows.split_first_mut() {
            rayon::join(
                || first.process(&batch, labels, Some(&mut gathered)),
                || {
                    for row in rest {
                        row.process(&batch, labels, None);
                    }
                },
            );
        }
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the log reader panicked"))?
        .with_context(|| format!("reading {}", logs.display()))?;

    let stats = &mut gathered.stats;
    stats.sessions = sessions;
    stats.attacked_sessions = labels.sessions.iter().filter(|s| s.is_attack()).count();
    stats.attacker_requests = gathered
        .attacker_requests
        .iter()
        .map(|v| v.len() as u64)
        .sum();
    if stats.events == stats.unlabelled_events {
        return Err(anyhow::Error::from(EvaluateError::NoLabelledEvents {
            events: stats.events,
        })
        .context(logs.display().to_string()));
    }
    let mut notes = Vec::new();
    if stats.unlabelled_events > 0 {
        notes.push(format!(
            "{} of {} events carry tokens that are not in the labels; they are left out of \
             every metric.",
            stats.unlabelled_events, stats.events
        ));
    }
    let baselines = BASELINES
        .iter()
        .map(|baseline| {
            gathered
                .uses
                .par_iter()
                .filter_map(|(_, (session, points))| {
                    let i = (baseline.first_alert)(points)?;
                    Some(Stop {
                        session: *session,
                        seq: points[i].seq,
                        time: points[i].time,
                        kind: StopKind::Revoke,
                    })
                })
                .collect()
        })
        .collect();
    Ok(Pass {
        // The pipelines and their session state go; only the outputs are pooled.
        rows: rows.into_iter().map(|r| r.output).collect(),
        baselines,
        gathered,
        notes,
    })
}

/// Every row's metrics on one log alone, in report order (baselines, then tokenwatch).
fn measure_pass(labels: &Labels, pass: &Pass) -> Vec<RowMetrics> {
    let truth = Truth {
        sessions: &labels.sessions,
        attacker_requests: &pass.gathered.attacker_requests,
        benign_requests: pass.gathered.stats.benign_requests,
    };
    pass.baselines
        .iter()
        .chain(pass.rows.iter().map(|r| &r.stops))
        .map(|stops| metrics::measure(&truth, stops))
        .collect()
}

/// A tokenwatch row: the real stages, from `config` with `detect.model` set to `model`.
fn scored_row(
    config: &Config,
    secrets: &Secrets,
    model: Option<&Path>,
    name: &'static str,
    blank_scores: &[SessionScore],
) -> anyhow::Result<ScoredRow> {
    let mut config = config.clone();
    config.detect.model = model.map(Path::to_path_buf);
    let stages = crate::app::build_stages(&config, secrets)
        .with_context(|| format!("building the \"{name}\" row"))?;
    let definition = match model {
        Some(path) => format!(
            "model {} ({}) + hard rules, threshold {}",
            path.display(),
            stages.scorer.version(),
            config.detect.threshold
        ),
        None => format!(
            "rule scorer ({}), threshold {}",
            stages.scorer.version(),
            config.detect.threshold
        ),
    };
    Ok(ScoredRow {
        pipeline: Pipeline::new(stages, Arc::new(Metrics::new())),
        output: RowOutput {
            name,
            definition,
            kind: if model.is_some() {
                RowKind::Model
            } else {
                RowKind::Rules
            },
            scores: blank_scores.to_vec(),
            stops: Vec::new(),
        },
    })
}

/// Ground truth and the baselines' located uses of one event.
fn gather(
    gathered: &mut Gathered,
    labels: &Labels,
    event: &crate::event::IdentifiedEvent,
    session: Option<usize>,
) {
    let stats = &mut gathered.stats;
    stats.events += 1;
    let Some(session) = session else {
        stats.unlabelled_events += 1;
        return;
    };
    let (fingerprint, ip, time) = (
        event.identity.fingerprint,
        event.event.client_ip,
        event.event.time,
    );
    if labels.is_attacker_request(fingerprint, ip, time) {
        gathered.attacker_requests[session].push(event.seq);
    } else {
        stats.benign_requests += 1;
    }
    if let Some(geo) = &event.enrichment.geo {
        stats.located += 1;
        gathered
            .uses
            .entry(fingerprint)
            .or_insert_with(|| (session, Vec::new()))
            .1
            .push(Point {
                seq: event.seq,
                time,
                lat: geo.lat,
                lon: geo.lon,
                ip,
            });
    }
}

/// `revoke` and `step_up` decisions on labelled tokens as stops (shadow-mode ones count: they
/// are what would have been enforced); `flag` decisions stop nothing.
fn stops_of<'a>(decisions: &'a [Decision], labels: &'a Labels) -> impl Iterator<Item = Stop> + 'a {
    decisions.iter().filter_map(|d| {
        let kind = match d.action {
            Action::Revoke => StopKind::Revoke,
            Action::StepUp => StopKind::StepUp,
            Action::Flag => return None,
        };
        Some(Stop {
            session: labels.index_of(d.fingerprint)?,
            seq: d.seq,
            time: d.event_time,
            kind,
        })
    })
}

/// Run `tokenwatch evaluate`.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.labels.len() == args.logs.len() && args.config.len() == args.logs.len(),
        "give one --labels and one --config per --logs, in the same order ({} logs, {} labels, \
         {} configs)",
        args.logs.len(),
        args.labels.len(),
        args.config.len()
    );
    let mut loaded = Vec::with_capacity(args.logs.len());
    for (labels, config) in args.labels.iter().zip(&args.config) {
        let (config_loaded, secrets) = Config::load(config, &ProcessEnv)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
        let labels = Labels::load(labels)
            .map_err(EvaluateError::from)
            .with_context(|| labels.display().to_string())?;
        loaded.push((config_loaded, secrets, labels));
    }
    let inputs: Vec<LabelledLog<'_>> = loaded
        .iter()
        .zip(&args.logs)
        .map(|((config, secrets, labels), logs)| LabelledLog {
            logs,
            labels,
            config,
            secrets,
        })
        .collect();
    let first_config = &loaded[0].0;
    let model = args
        .model
        .clone()
        .or_else(|| first_config.detect.model.clone());

    // Hash the logs on another thread while the pipelines read them.
    let (evaluation, logs_sha256) = std::thread::scope(|scope| {
        let digests = scope.spawn(|| {
            args.logs
                .iter()
                .map(|l| sha256_file(l).ok())
                .collect::<Vec<_>>()
        });
        let evaluation = evaluate(&inputs, model.as_deref());
        (evaluation, digests.join().unwrap_or_default())
    });
    let evaluation = evaluation?;

    let mut files = Vec::new();
    for (i, ((logs, labels), config)) in args
        .logs
        .iter()
        .zip(&args.labels)
        .zip(&args.config)
        .enumerate()
    {
        files.push(file_info(
            "logs",
            logs,
            logs_sha256.get(i).cloned().flatten(),
        ));
        files.push(file_info("labels", labels, sha256_file(labels).ok()));
        files.push(file_info("config", config, sha256_file(config).ok()));
    }
    files.extend(
        model
            .as_deref()
            .map(|m| file_info("model", m, sha256_file(m).ok())),
    );
    let inputs = report::Inputs {
        title: args.title.clone(),
        files,
        detect: report::detect_summary(&first_config.detect),
    };
    // With --out the files hold the full report and stdout the per-world and targets tables;
    // without, stdout gets every table (they start with those two).
    match &args.out {
        Some(_) => print!("{}", report::summary(&evaluation)),
        None => print!("{}", report::markdown(&evaluation, &inputs, false)),
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let md_path = dir.join("evaluation.md");
        std::fs::write(&md_path, report::markdown(&evaluation, &inputs, true))
            .with_context(|| format!("cannot write {}", md_path.display()))?;
        let html_path = dir.join("report.html");
        std::fs::write(&html_path, report::html(&evaluation, &inputs)?)
            .with_context(|| format!("cannot write {}", html_path.display()))?;
        eprintln!(
            "evaluated {} events in {:.1} s\n  {}\n  {}",
            evaluation.stats.lines,
            evaluation.elapsed.as_secs_f64(),
            md_path.display(),
            html_path.display()
        );
    } else {
        eprintln!(
            "evaluated {} events in {:.1} s",
            evaluation.stats.lines,
            evaluation.elapsed.as_secs_f64()
        );
    }
    Ok(())
}

fn file_info(role: &'static str, path: &Path, sha256: Option<String>) -> report::FileInfo {
    report::FileInfo {
        role,
        path: path.display().to_string(),
        bytes: std::fs::metadata(path).map(|m| m.len()).ok(),
        sha256,
    }
}

/// SHA-256 of a file, lowercase hex, for the report's provenance.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
    }
    Ok(hex::encode(context.finish().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_is_named_by_its_world_json_else_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("seed-7");
        let plain = dir.path().join("seed-8");
        for folder in [&named, &plain] {
            std::fs::create_dir(folder).unwrap();
        }
        std::fs::write(
            named.join("world.json"),
            r#"{"name": "world-7", "cities": 12}"#,
        )
        .unwrap();
        assert_eq!(world_name(&named.join("access.jsonl")), "world-7");
        assert_eq!(world_name(&plain.join("access.jsonl")), "seed-8");
        // A world.json without a name is no name.
        std::fs::write(plain.join("world.json"), r#"{"seed": 8}"#).unwrap();
        assert_eq!(world_name(&plain.join("access.jsonl")), "seed-8");
        assert_eq!(
            unique_names(vec!["a".into(), "b".into(), "a".into(), "a".into()]),
            ["a", "b", "a #2", "a #3"]
        );
    }
}
