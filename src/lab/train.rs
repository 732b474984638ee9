//! `tokenwatch train`: fit the session-risk model on labelled simulated traffic with linfa,
//! pick the better of two candidates on held-out seeds, and write the artifact and its model
//! card.
//!
//! Steps (one command, reproducible: no wall clock and no temp paths reach the outputs):
//! 1. **Data** (`data`): every training and held-out seed is a world of its own: the
//!    simulator ([`crate::lab::simulate::write_files`], called directly with the `simulate`
//!    command's defaults but `--seed N --world-seed N`, about E events, and `--geoip` /
//!    `--asn-csv` when given) writes into a temp folder (GeoIP databases and config
//!    included), then the log runs
//!    through the real pipeline stages; every event becomes a feature row, its target from
//!    `data::targets` (the attacker's requests, and the owner's after the attack began that
//!    carry evidence). Logs given with `--logs/--labels/--config` are
//!    added the same way.
//! 2. **Fit** (`fit`): a logistic regression (`linfa-logistic`) and a balanced random forest
//!    (`linfa-trees` with our own seeded, class-balanced bagging), both on the training rows.
//! 3. **Threshold and selection** (`metrics`): for each candidate, the threshold that keeps
//!    false stops within `--target-fp-per-million` and `--target-benign-per-thousand` on
//!    every held-out world (seed) separately — the strictest world's threshold, so the worst
//!    world stays within budget, not only the pooled mean; the candidate with
//!    the better session F1 at its threshold wins (ties: fewer false revocations, then the
//!    simpler logistic model).
//! 4. **Write** the artifact (`model::Artifact`) and the card (`card`).
//!
//! What it does NOT do: evaluate against the published baseline rules (`evaluate` does), or
//! touch the daemon's state.

mod card;
pub mod data;
pub mod fit;
pub mod metrics;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::model::{ARTIFACT_FORMAT, Artifact, Model, OPERATING_SCORE, SchemaRecord};
use data::DataSet;
use fit::{ForestParams, LogisticParams};
use metrics::Evaluation;

/// Which candidates to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    /// Logistic, forest, and the two side by side ("either"); keep the best on held-out F1.
    Auto,
    /// Logistic regression only.
    Logistic,
    /// Forest only.
    Forest,
}

/// `tokenwatch train` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Training seeds, comma-separated ("none" for none: train on --logs only).
    #[arg(long, default_value = "1,2,3,4")]
    pub seeds: String,
    /// Held-out seeds (threshold choice and metrics), comma-separated. Twelve seeds give
    /// some 4,000 benign sessions: enough to place a threshold for "≤ 1 revoked in 1,000"
    /// that holds on new seeds (six were not: the threshold sat on the edge).
    #[arg(
        long,
        default_value = "101,102,103,104,105,106,107,108,109,110,111,112"
    )]
    pub holdout_seeds: String,
    /// Events simulated per seed.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Fraction of simulated sessions attacked (more than in real traffic, so every attack
    /// type has enough examples; the threshold is still chosen for a benign false-positive
    /// rate, which does not depend on it).
    #[arg(long, default_value_t = 0.15)]
    pub attack_fraction: f64,
    /// A real City database (DB-IP Lite, `scripts/fetch-dbip.sh`) the simulated worlds draw
    /// their networks from, as `simulate --geoip` does; without it, the made-up world.
    #[arg(long)]
    pub geoip: Option<PathBuf>,
    /// ip-location-db's `asn-ipv4.csv` (`scripts/fetch-asn.sh`): with `--geoip`, real ASNs,
    /// organisations and network kinds, as `simulate --asn-csv` does.
    #[arg(long, requires = "geoip")]
    pub asn_csv: Option<PathBuf>,
    /// Extra training log (repeatable; each with a --labels and a --config, in order).
    #[arg(long)]
    pub logs: Vec<PathBuf>,
    /// Labels of each --logs.
    #[arg(long)]
    pub labels: Vec<PathBuf>,
    /// Config of each --logs (keys, GeoIP databases).
    #[arg(long)]
    pub config: Vec<PathBuf>,
    /// Extra held-out log (repeatable; with --holdout-labels and --holdout-config).
    #[arg(long)]
    pub holdout_logs: Vec<PathBuf>,
    /// Labels of each --holdout-logs.
    #[arg(long)]
    pub holdout_labels: Vec<PathBuf>,
    /// Config of each --holdout-logs.
    #[arg(long)]
    pub holdout_config: Vec<PathBuf>,
    /// Target: false revocations per million benign requests on held-out data.
    #[arg(long, default_value_t = 5.0)]
    pub target_fp_per_million: f64,
    /// Target: benign sessions revoked per thousand on held-out data (the threshold meets
    /// both targets). Half the issue-3 bound of 1: on unseen 2M-event seeds the benign count
    /// varies from seed to seed (0 to 5 per ~3,800 sessions at a threshold chosen for 1).
    #[arg(long, default_value_t = 0.5)]
    pub target_benign_per_thousand: f64,
    /// Candidates to fit.
    #[arg(long, value_enum, default_value_t = ModelChoice::Auto)]
    pub model: ModelChoice,
    /// Trees in the forest.
    #[arg(long, default_value_t = 48)]
    pub trees: usize,
    /// Maximum tree depth.
    #[arg(long, default_value_t = 10)]
    pub max_depth: usize,
    /// Seed of the forest's bagging.
    #[arg(long, default_value_t = 7)]
    pub forest_seed: u64,
    /// Artifact to write.
    #[arg(long, default_value = "models/session-risk.json")]
    pub out: PathBuf,
    /// Model card to write (default: the artifact's path with `.md`).
    #[arg(long)]
    pub card: Option<PathBuf>,
}

/// One data set's provenance.
#[derive(Debug, Clone, Serialize)]
pub struct SetRecord {
    /// `train` or `holdout`.
    pub role: &'static str,
    /// `seed N` or the log's file name.
    pub source: String,
    /// Lines read.
    pub lines: u64,
    /// Rows (events that reached detection).
    pub rows: usize,
    /// Attacker rows.
    pub positives: usize,
    /// Attacked sessions.
    pub attacked_sessions: usize,
    /// SHA-256 (first 16 bytes) of the log and labels.
    pub digest: String,
}

/// Training provenance, stored in the artifact and shown in the card.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingRecord {
    /// What generated the data.
    pub simulator: String,
    /// Training seeds.
    pub seeds: Vec<u64>,
    /// Held-out seeds.
    pub holdout_seeds: Vec<u64>,
    /// Events simulated per seed.
    pub events_per_seed: u64,
    /// Every data set.
    pub sets: Vec<SetRecord>,
    /// Training rows.
    pub train_rows: usize,
    /// Positive rows among them ([`data::targets`]: the attacker's requests and the owner's
    /// evidence after the attack began).
    pub train_positives: usize,
    /// How the class imbalance was handled.
    pub balance: String,
    /// Target false revocations per million benign requests.
    pub target_fp_per_million: f64,
    /// Target benign sessions revoked per thousand.
    pub target_benign_per_thousand: f64,
    /// Logistic settings.
    pub logistic: LogisticParams,
    /// Forest settings.
    pub forest: ForestParams,
    /// The command that rebuilds this artifact.
    pub command: String,
}

/// A fitted candidate with its held-out evaluation.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The model.
    pub model: Model,
    /// At its chosen threshold.
    pub evaluation: Evaluation,
    /// Whether the false-revocation target could be met at all.
    pub target_reachable: bool,
}

/// Everything `train` produced.
pub struct TrainOutcome {
    /// The artifact written.
    pub artifact: Artifact,
    /// Every candidate.
    pub candidates: Vec<Candidate>,
    /// Held-out rows.
    pub holdout: DataSet,
    /// The card's text.
    pub card: String,
}

fn parse_seeds(text: &str, what: &str) -> anyhow::Result<Vec<u64>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .with_context(|| format!("{what}: {s:?} is not a seed"))
        })
        .collect()
}

fn join<T: std::fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The command line that reproduces a run (canonical: every setting spelled out).
fn command_line(args: &TrainArgs, seeds: &[u64], holdout: &[u64]) -> String {
    let mut c = format!(
        "tokenwatch train --seeds {} --holdout-seeds {} --events {} --attack-fraction {} --target-fp-per-million {} --target-benign-per-thousand {} --model {} --trees {} --max-depth {} --forest-seed {} --out {}",
        if seeds.is_empty() {
            "none".into()
        } else {
            join(seeds)
        },
        if holdout.is_empty() {
            "none".into()
        } else {
            join(holdout)
        },
        args.events,
        args.attack_fraction,
        args.target_fp_per_million,
        args.target_benign_per_thousand,
        match args.model {
            ModelChoice::Auto => "auto",
            ModelChoice::Logistic => "logistic",
            ModelChoice::Forest => "forest",
        },
        args.trees,
        args.max_depth,
        args.forest_seed,
        args.out.display(),
    );
    for (flag, path) in [("--geoip", &args.geoip), ("--asn-csv", &args.asn_csv)] {
        if let Some(path) = path {
            c += &format!(" {flag} {}", path.display());
        }
    }
    for (flag, paths) in [
        ("--logs", &args.logs),
        ("--labels", &args.labels),
        ("--config", &args.config),
        ("--holdout-logs", &args.holdout_logs),
        ("--holdout-labels", &args.holdout_labels),
        ("--holdout-config", &args.holdout_config),
    ] {
        for p in paths {
            c += &format!(" {flag} {}", p.display());
        }
    }
    if let Some(card) = &args.card {
        c += &format!(" --card {}", card.display());
    }
    c
}

/// Simulate world `seed` into `dir` (`simulate --seed N --world-seed N` with the `simulate`
/// command's other defaults and the run's address source).
fn simulate_seed(
    args: &TrainArgs,
    seed: u64,
    dir: &Path,
) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let log = dir.join("access.jsonl");
    let labels = dir.join("labels.jsonl");
    crate::lab::simulate::write_files(&crate::lab::simulate::Options {
        out: log.clone(),
        labels: Some(labels.clone()),
        seed,
        events: Some(args.events),
        attack_fraction: args.attack_fraction,
        geoip: args.geoip.clone(),
        asn_csv: args.asn_csv.clone(),
        // Domain randomisation: every seed is its own world, its behaviours' prevalences and
        // parameters drawn from the seed (docs/worlds.md).
        world_seed: Some(seed),
        ..crate::lab::simulate::Options::default()
    })?;
    // `write_support` names the config beside the log.
    Ok((log, labels, dir.join("tokenwatch.toml")))
}

fn record(role: &'static str, source: String, data: &DataSet, digest: String) -> SetRecord {
    SetRecord {
        role,
        source,
        lines: data.lines,
        rows: data.rows.len(),
        positives: data.positives(),
        attacked_sessions: data
            .sessions
            .iter()
            .filter(|s| s.attack_type.is_some())
            .count(),
        digest,
    }
}

/// Build the training and held-out sets.
fn gather(
    args: &TrainArgs,
    seeds: &[u64],
    holdout_seeds: &[u64],
) -> anyhow::Result<(DataSet, DataSet, Vec<SetRecord>)> {
    for (what, logs, labels, configs) in [
        ("--logs", &args.logs, &args.labels, &args.config),
        (
            "--holdout-logs",
            &args.holdout_logs,
            &args.holdout_labels,
            &args.holdout_config,
        ),
    ] {
        anyhow::ensure!(
            logs.len() == labels.len() && logs.len() == configs.len(),
            "{what}: every log needs its labels and config ({} logs, {} labels, {} configs)",
            logs.len(),
            labels.len(),
            configs.len()
        );
    }
    let mut train = DataSet::default();
    let mut holdout = DataSet::default();
    let mut records = Vec::new();
    let total = seeds.len() + holdout_seeds.len() + args.logs.len() + args.holdout_logs.len();
    let mut step = 0;
    let tmp = tempfile::Builder::new()
        .prefix("tokenwatch-train-")
        .tempdir()?;
    let generated = seeds
        .iter()
        .map(|s| ("train", *s))
        .chain(holdout_seeds.iter().map(|s| ("holdout", *s)));
    for (role, seed) in generated {
        step += 1;
        let started = Instant::now();
        let dir = tmp.path().join(format!("{role}-{seed}"));
        eprintln!(
            "[{step}/{total}] {role} seed {seed}: simulating {} events",
            args.events
        );
        let (log, labels, config) = simulate_seed(args, seed, &dir)?;
        let set = data::load_set(&log, &labels, &config)?;
        let digest = data::digest_files(&[&log, &labels])?;
        eprintln!(
            "        {} rows, {} attacker requests ({:.1} s)",
            set.rows.len(),
            set.positives(),
            started.elapsed().as_secs_f64()
        );
        records.push(record(role, format!("seed {seed}"), &set, digest));
        // The folder is large; free it as soon as the rows are in memory.
        std::fs::remove_dir_all(&dir).ok();
        if role == "train" {
            train.append(set);
        } else {
            holdout.append(set);
        }
    }
    let given = args
        .logs
        .iter()
        .zip(&args.labels)
        .zip(&args.config)
        .map(|((l, b), c)| ("train", l, b, c))
        .chain(
            args.holdout_logs
                .iter()
                .zip(&args.holdout_labels)
                .zip(&args.holdout_config)
                .map(|((l, b), c)| ("holdout", l, b, c)),
        );
    for (role, log, labels, config) in given {
        step += 1;
        eprintln!("[{step}/{total}] {role} log {}", log.display());
        let set = data::load_set(log, labels, config)?;
        let digest = data::digest_files(&[log, labels])?;
        let name = log
            .file_name()
            .map_or_else(|| log.display().to_string(), |n| n.to_string_lossy().into());
        records.push(record(role, name, &set, digest));
        if role == "train" {
            train.append(set);
        } else {
            holdout.append(set);
        }
    }
    Ok((train, holdout, records))
}

/// Threshold a candidate on the held-out rows and evaluate it there. The threshold is the
/// strictest of the held-out worlds' own: the worst world stays within the targets, not
/// only the pooled mean (issue 15).
fn assess(model: Model, holdout: &DataSet, target: metrics::Targets) -> Candidate {
    use rayon::prelude::*;
    let scores: Vec<f64> = holdout.x.par_iter().map(|x| model.probability(x)).collect();
    let (threshold, target_reachable) =
        metrics::choose_threshold_worst_world(holdout, &scores, target);
    Candidate {
        evaluation: metrics::evaluate(holdout, &scores, threshold),
        model,
        target_reachable,
    }
}

/// Train, choose, and write the artifact and card. Returns what was written.
pub fn train(args: &TrainArgs) -> anyhow::Result<TrainOutcome> {
    let seeds = parse_seeds(&args.seeds, "--seeds")?;
    let holdout_seeds = parse_seeds(&args.holdout_seeds, "--holdout-seeds")?;
    for (flag, value) in [
        ("--target-fp-per-million", args.target_fp_per_million),
        (
            "--target-benign-per-thousand",
            args.target_benign_per_thousand,
        ),
    ] {
        anyhow::ensure!(
            value.is_finite() && value >= 0.0,
            "{flag} must be a non-negative number"
        );
    }
    let targets = metrics::Targets {
        fp_per_million: args.target_fp_per_million,
        benign_per_thousand: args.target_benign_per_thousand,
    };
    let started = Instant::now();
    let (train_set, holdout, sets) = gather(args, &seeds, &holdout_seeds)?;
    anyhow::ensure!(
        !train_set.rows.is_empty(),
        "no training data: give --seeds or --logs"
    );
    anyhow::ensure!(
        !holdout.rows.is_empty(),
        "no held-out data: give --holdout-seeds or --holdout-logs"
    );
    let y = data::targets(&train_set);
    let train_positives = y.iter().filter(|t| **t).count();

    let logistic_params = LogisticParams {
        alpha: 1.0,
        max_iterations: 200,
    };
    let forest_params = ForestParams {
        trees: args.trees,
        max_depth: args.max_depth,
        min_leaf: 5.0,
        neg_ratio: 3.0,
        max_positives_per_tree: fit::MAX_POSITIVES_PER_TREE,
        feature_fraction: 0.7,
        seed: args.forest_seed,
    };
    let mut candidates = Vec::new();
    let mut repeat = None;
    if args.model != ModelChoice::Forest {
        let t = Instant::now();
        let (logistic, r) = fit::fit_logistic(&train_set.x, &y, &logistic_params)?;
        repeat = Some(r);
        eprintln!(
            "fitted logistic regression on {} rows ({:.1} s)",
            train_set.rows.len() + train_positives * (r - 1),
            t.elapsed().as_secs_f64()
        );
        candidates.push(assess(Model::Logistic(logistic), &holdout, targets));
    }
    if args.model != ModelChoice::Logistic {
        let t = Instant::now();
        let forest = fit::fit_forest(&train_set.x, &y, &forest_params)?;
        eprintln!(
            "fitted forest of {} trees ({:.1} s)",
            forest.trees.len(),
            t.elapsed().as_secs_f64()
        );
        candidates.push(assess(Model::Forest(forest), &holdout, targets));
    }
    if let [linear, trees] = candidates.as_slice()
        && let (Model::Logistic(logistic), Model::Forest(forest)) = (&linear.model, &trees.model)
    {
        let either = crate::model::Either {
            logistic: logistic.clone(),
            forest: forest.clone(),
            logistic_threshold_logit: crate::model::logit(linear.evaluation.threshold),
            forest_threshold_logit: crate::model::logit(trees.evaluation.threshold),
        };
        candidates.push(assess(Model::Either(either), &holdout, targets));
    }
    // Better F1, then fewer false revocations, then the earlier (simpler) candidate.
    let best = candidates
        .iter()
        .enumerate()
        .max_by(|(ia, a), (ib, b)| {
            a.evaluation
                .session_f1
                .total_cmp(&b.evaluation.session_f1)
                .then_with(|| {
                    b.evaluation
                        .false_revocations
                        .cmp(&a.evaluation.false_revocations)
                })
                .then_with(|| ib.cmp(ia))
        })
        .map(|(i, _)| i)
        .context("no candidate")?;
    let chosen = &candidates[best];

    let balance = format!(
        "logistic regression: positive rows repeated {}× (class weight by replication); forest: \
         each tree bootstraps up to {} positive rows and {}× as many negative rows (balanced \
         bagging).",
        repeat.map_or("–".into(), |r| r.to_string()),
        forest_params.max_positives_per_tree,
        forest_params.neg_ratio
    );
    let training = TrainingRecord {
        simulator: format!("tokenwatch {} `simulate`", env!("CARGO_PKG_VERSION")),
        seeds: seeds.clone(),
        holdout_seeds: holdout_seeds.clone(),
        events_per_seed: args.events,
        sets,
        train_rows: train_set.rows.len(),
        train_positives,
        balance,
        target_fp_per_million: args.target_fp_per_million,
        target_benign_per_thousand: args.target_benign_per_thousand,
        logistic: logistic_params,
        forest: forest_params,
        command: command_line(args, &seeds, &holdout_seeds),
    };
    let metrics = serde_json::json!({
        "chosen": chosen.model.kind(),
        "selection": "session F1 on held-out seeds at each candidate's threshold",
        "candidates": candidates.iter().map(|c| serde_json::json!({
            "kind": c.model.kind(),
            "target_reachable": c.target_reachable,
            "held_out": c.evaluation,
        })).collect::<Vec<_>>(),
    });
    let threshold = chosen.evaluation.threshold;
    let artifact = Artifact {
        format: ARTIFACT_FORMAT,
        version: Artifact::version_for(&chosen.model, threshold),
        schema: SchemaRecord::current(),
        model: chosen.model.clone(),
        threshold,
        operating_score: OPERATING_SCORE,
        training: serde_json::to_value(&training)?,
        metrics,
    };
    artifact.check().context("the trained artifact")?;
    let card = card::render(&artifact, &training, &candidates);

    if let Some(dir) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = artifact.to_json()?;
    std::fs::write(&args.out, json)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let card_path = args
        .card
        .clone()
        .unwrap_or_else(|| args.out.with_extension("md"));
    std::fs::write(&card_path, &card)
        .with_context(|| format!("cannot write {}", card_path.display()))?;

    eprintln!("\n{}", summary(&candidates, best));
    eprintln!(
        "wrote {} ({}) and {} in {:.1} s",
        args.out.display(),
        artifact.version,
        card_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(TrainOutcome {
        artifact,
        candidates,
        holdout,
        card,
    })
}

/// The short table printed at the end.
fn summary(candidates: &[Candidate], best: usize) -> String {
    let mut s = format!(
        "{:<10} {:>10} {:>8} {:>9} {:>7} {:>10} {:>11}\n",
        "candidate", "threshold", "recall", "precision", "F1", "FP/M req", "benign/1000"
    );
    for (i, c) in candidates.iter().enumerate() {
        let e = &c.evaluation;
        s += &format!(
            "{:<10} {:>10.6} {:>7.1}% {:>8.1}% {:>7.4} {:>10.2} {:>11.2}{}\n",
            c.model.kind(),
            e.threshold,
            e.session_recall * 100.0,
            e.session_precision * 100.0,
            e.session_f1,
            e.false_revocations_per_million,
            e.benign_sessions_revoked_per_thousand,
            if i == best { "  ← chosen" } else { "" }
        );
        for t in &e.per_type {
            s += &format!(
                "  {:<26} {:>4}/{:<4} {:>6.1}%  median {} requests\n",
                t.attack_type,
                t.detected,
                t.sessions,
                t.recall * 100.0,
                t.median_requests_to_detect
                    .map_or("–".into(), |v| format!("{v:.1}"))
            );
        }
    }
    s
}

/// Run `tokenwatch train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    train(args).map(|_| ())
}
