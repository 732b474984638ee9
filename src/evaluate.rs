//! `tokenwatch evaluate`: precision, recall and time to detect per attack type, for
//! tokenwatch and the published impossible-travel rules, side by side, on labelled logs.
//!
//! Data flow: the log is read once, in batches (`source::read_all`). Each batch goes through a
//! full [`Pipeline`] per tokenwatch row — the rules-only config (`detect.model` unset) and,
//! when a model is given, the model config — built by `app::build_stages`, exactly as `replay`
//! runs it. `Pipeline::process_batch_observed` shows every event that reached detection with
//! its assessment: its score feeds the precision–recall curves and its `revoke` decisions are
//! the row's revocations. The first pipeline's identified and enriched events also give the
//! ground truth per event (`Labels::is_attacker_request`) and, per token fingerprint, the
//! located uses the baselines ([`baselines`]) run over — so baselines see the very same parse,
//! identify and enrich results, with no second parser. [`metrics`] turns revocations into the
//! numbers; [`report`] renders the markdown and HTML.
//!
//! Invariants: deterministic for the same inputs (event time only; pipelines keep input
//! order); nothing here prints or stores a token — only fingerprints ever reach this module.
//! Memory grows with the located uses of labelled tokens (about 50 bytes each), not with the
//! log's bytes.
//!
//! What it does NOT do: train, simulate or publish to a denylist; `flag` decisions are not
//! revocations.

pub mod baselines;
pub mod metrics;
pub mod report;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rayon::prelude::*;

use crate::config::{Config, ProcessEnv, Secrets};
use crate::event::{Action, Decision, Fingerprint};
use crate::labels::{Labels, LabelsError};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

use baselines::{BASELINES, Point};
use metrics::{PrPoint, Revocation, RowMetrics, SessionScore, Truth};

/// `tokenwatch evaluate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// Access log to evaluate on (JSON lines, as `simulate` writes it).
    #[arg(long)]
    pub logs: PathBuf,
    /// Ground truth: `labels.jsonl`, one session per line.
    #[arg(long)]
    pub labels: PathBuf,
    /// Config: input format, token keys, GeoIP and detection settings (`simulate` writes one
    /// beside its log).
    #[arg(long, short)]
    pub config: PathBuf,
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
    /// Things the reader must know (a row left out, unlabelled events …).
    pub notes: Vec<String>,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

/// One tokenwatch row while the log is read.
struct ScoredRow {
    name: &'static str,
    definition: String,
    kind: RowKind,
    pipeline: Pipeline,
    scores: Vec<SessionScore>,
    revocations: Vec<Revocation>,
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
        let scores = &mut self.scores;
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
        self.revocations.extend(revocations_of(&decisions, labels));
    }
}

/// Ground truth and baseline inputs, gathered from the first pipeline's events.
struct Gathered {
    attacker_requests: Vec<Vec<u64>>,
    /// Per labelled token: its session and its located uses in input order.
    uses: HashMap<Fingerprint, (usize, Vec<Point>)>,
    stats: RunStats,
}

/// Run every row over `logs` and measure them against `labels`.
///
/// `model` is the artifact of the model row (`None`: the row is left out with a note). The
/// config's own `detect.model` is ignored here; the caller decides which model to use.
pub fn evaluate(
    config: &Config,
    secrets: &Secrets,
    labels: &Labels,
    logs: &Path,
    model: Option<&Path>,
) -> anyhow::Result<Evaluation> {
    let started = Instant::now();
    if !labels.sessions.iter().any(|s| s.is_attack()) {
        return Err(EvaluateError::NoAttacks.into());
    }
    let sessions = labels.sessions.len();
    let blank_scores: Vec<SessionScore> = labels
        .sessions
        .iter()
        .map(|s| SessionScore {
            attacked: s.is_attack() && s.attack_start.is_some(),
            ..SessionScore::default()
        })
        .collect();
    let mut notes = Vec::new();

    let mut rows = vec![scored_row(
        config,
        secrets,
        None,
        "tokenwatch rules only",
        &blank_scores,
    )?];
    match model {
        Some(path) => rows.push(scored_row(
            config,
            secrets,
            Some(path),
            "tokenwatch model",
            &blank_scores,
        )?),
        None => notes.push(
            "tokenwatch model: left out — neither --model nor the config's detect.model names \
             a model artifact."
                .to_string(),
        ),
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
        return Err(EvaluateError::NoLabelledEvents {
            events: stats.events,
        }
        .into());
    }
    if stats.unlabelled_events > 0 {
        notes.push(format!(
            "{} of {} events carry tokens that are not in the labels; they are left out of \
             every metric.",
            stats.unlabelled_events, stats.events
        ));
    }

    let truth = Truth {
        sessions: &labels.sessions,
        attacker_requests: &gathered.attacker_requests,
        benign_requests: gathered.stats.benign_requests,
    };
    let mut out: Vec<Row> = BASELINES
        .iter()
        .map(|baseline| {
            let revocations: Vec<Revocation> = gathered
                .uses
                .par_iter()
                .filter_map(|(_, (session, points))| {
                    let i = (baseline.first_alert)(points)?;
                    Some(Revocation {
                        session: *session,
                        seq: points[i].seq,
                        time: points[i].time,
                    })
                })
                .collect();
            Row {
                name: baseline.name.to_string(),
                definition: baseline.definition.to_string(),
                kind: RowKind::Baseline,
                metrics: metrics::measure(&truth, &revocations),
                curve: Vec::new(),
            }
        })
        .collect();
    for row in rows {
        out.push(Row {
            name: row.name.to_string(),
            definition: row.definition,
            kind: row.kind,
            metrics: metrics::measure(&truth, &row.revocations),
            curve: metrics::pr_curve(&row.scores),
        });
    }

    let attack_types = metrics::attack_types(&labels.sessions);
    let attacked_by_type = attack_types
        .iter()
        .map(|t| {
            labels
                .sessions
                .iter()
                .filter(|s| s.attack_type.as_deref() == Some(t.as_str()))
                .count()
        })
        .collect();
    Ok(Evaluation {
        rows: out,
        attack_types,
        attacked_by_type,
        stats: gathered.stats,
        notes,
        elapsed: started.elapsed(),
    })
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
        name,
        definition,
        kind: if model.is_some() {
            RowKind::Model
        } else {
            RowKind::Rules
        },
        pipeline: Pipeline::new(stages, Arc::new(Metrics::new())),
        scores: blank_scores.to_vec(),
        revocations: Vec::new(),
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

/// `revoke` decisions on labelled tokens as revocations (shadow-mode ones count: they are
/// what would have been revoked).
fn revocations_of<'a>(
    decisions: &'a [Decision],
    labels: &'a Labels,
) -> impl Iterator<Item = Revocation> + 'a {
    decisions
        .iter()
        .filter(|d| d.action == Action::Revoke)
        .filter_map(|d| {
            Some(Revocation {
                session: labels.index_of(d.fingerprint)?,
                seq: d.seq,
                time: d.event_time,
            })
        })
}

/// Run `tokenwatch evaluate`.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<()> {
    let (config, secrets) = Config::load(&args.config, &ProcessEnv)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    let labels = Labels::load(&args.labels)
        .map_err(EvaluateError::from)
        .with_context(|| args.labels.display().to_string())?;
    let model = args.model.clone().or_else(|| config.detect.model.clone());

    // Hash the log on another thread while the pipelines read it.
    let (evaluation, logs_sha256) = std::thread::scope(|scope| {
        let digest = scope.spawn(|| sha256_file(&args.logs));
        let evaluation = evaluate(&config, &secrets, &labels, &args.logs, model.as_deref());
        (evaluation, digest.join().ok().and_then(Result::ok))
    });
    let evaluation = evaluation?;

    let inputs = report::Inputs {
        title: args.title.clone(),
        files: vec![
            file_info("logs", &args.logs, logs_sha256),
            file_info("labels", &args.labels, sha256_file(&args.labels).ok()),
            file_info("config", &args.config, sha256_file(&args.config).ok()),
        ]
        .into_iter()
        .chain(
            model
                .as_deref()
                .map(|m| file_info("model", m, sha256_file(m).ok())),
        )
        .collect(),
        detect: report::detect_summary(&config.detect),
    };
    let markdown = report::markdown(&evaluation, &inputs, false);
    print!("{markdown}");
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
