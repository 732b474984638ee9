//! The model card (`models/session-risk.md`): what the artifact is, what it was trained on,
//! how well each candidate did on held-out seeds, which threshold to use and how to rebuild
//! it. Written by `train` beside the artifact; pure text, no clock, so a retrain on the same
//! seeds writes the same bytes.

use std::fmt::Write as _;

use super::{Candidate, TrainingRecord};
use crate::features::FEATURES;
use crate::model::{Artifact, Model};

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The card's markdown.
pub fn render(artifact: &Artifact, training: &TrainingRecord, candidates: &[Candidate]) -> String {
    let mut s = String::new();
    let chosen = artifact.model.kind();
    let _ = writeln!(s, "# Model card: session risk (`{}`)\n", artifact.version);
    let _ = writeln!(
        s,
        "Written by `tokenwatch train`; do not edit by hand — retrain instead.\n\n\
         | | |\n|---|---|\n\
         | version | `{}` |\n\
         | model | {} |\n\
         | artifact format | {} |\n\
         | feature schema | {} features, hash `{}` |\n\
         | threshold (model probability) | {:.6} |\n\
         | operating score (`detect.threshold`) | {} |\n\
         | target | ≤ {} false revocations per million benign requests and ≤ {} benign sessions revoked per 1,000 (held-out) |\n",
        artifact.version,
        describe(&artifact.model),
        artifact.format,
        artifact.schema.features.len(),
        artifact.schema.hash,
        artifact.threshold,
        artifact.operating_score,
        training.target_fp_per_million,
        training.target_benign_per_thousand,
    );
    let _ = writeln!(
        s,
        "## Use it\n\n```toml\n[detect]\nmodel = \"models/session-risk.json\"\nthreshold = {}\n```\n\n\
         The scorer maps the model's probability `p` onto the score (by odds below the \
         threshold, linearly above) so the trained threshold {:.6} lands on {}: `detect.threshold = {}` operates at the point \
         measured below; higher is stricter, lower catches more. Impossible travel and \
         concurrent use still revoke through the hard rules whatever the model says.\n",
        artifact.operating_score,
        artifact.threshold,
        artifact.operating_score,
        artifact.operating_score
    );
    let _ = writeln!(
        s,
        "## Reproduce\n\n```sh\n{}\n```\n\nSame seeds, same code: same artifact, byte for byte \
         (data digests below).\n",
        training.command
    );

    let _ = writeln!(s, "## Training data\n");
    let _ = writeln!(
        s,
        "Simulator: {}. Each seed is simulated with `tokenwatch simulate --seed N --events {}` \
         (its other settings at their defaults) and replayed through the real pipeline stages \
         (parse → identify → enrich → track, rule scorer); every event becomes one row. The \
         model learns to flag the attacker's requests (`labels::Labels::is_attacker_request`) \
         and the owner's requests after the attack began that carry evidence \
         (`train::data::targets`).\n",
        training.simulator, training.events_per_seed
    );
    let _ = writeln!(
        s,
        "| set | source | lines | rows | attacker rows | attacked sessions | data digest |\n|---|---|---:|---:|---:|---:|---|"
    );
    for d in &training.sets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | `{}` |",
            d.role, d.source, d.lines, d.rows, d.positives, d.attacked_sessions, d.digest
        );
    }
    let _ = writeln!(
        s,
        "\nTraining rows: {} ({} positive: the attacker's requests and the owner's evidence \
         after the attack began, {:.2} %). Class imbalance: {}\n",
        training.train_rows,
        training.train_positives,
        100.0 * training.train_positives as f64 / training.train_rows.max(1) as f64,
        training.balance
    );

    let _ = writeln!(s, "## Held-out metrics\n");
    let _ = writeln!(
        s,
        "On the held-out seeds only (never used for fitting). Each candidate's threshold is \
         chosen on these seeds for the target, so `tokenwatch evaluate` on further seeds is the \
         unbiased check. A session is revoked at its first event over the threshold (or a hard \
         rule); before its attack started that is a false revocation.\n"
    );
    let _ = writeln!(
        s,
        "| candidate | threshold | session recall | session precision | session F1 | false revocations / M benign requests | benign sessions revoked / 1000 | request AP | chosen |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for c in candidates {
        let e = &c.evaluation;
        let _ = writeln!(
            s,
            "| {} | {:.6} | {} | {} | {:.4} | {:.2} ({} stopped, {} by the rules alone) | {:.2} | {:.4} | {} |",
            c.model.kind(),
            e.threshold,
            pct(e.session_recall),
            pct(e.session_precision),
            e.session_f1,
            e.false_revocations_per_million,
            e.false_revocations,
            e.hard_rule_false_revocations,
            e.benign_sessions_revoked_per_thousand,
            e.request_average_precision,
            if c.model.kind() == chosen {
                "**yes**"
            } else {
                ""
            },
        );
    }
    for c in candidates {
        let _ = writeln!(
            s,
            "\n**{}** per attack type:\n\n| attack type | sessions | detected | recall | median requests to detect | median seconds to detect |\n|---|---:|---:|---:|---:|---:|",
            c.model.kind()
        );
        for t in &c.evaluation.per_type {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                t.attack_type,
                t.sessions,
                t.detected,
                pct(t.recall),
                opt(t.median_requests_to_detect, 1),
                opt(t.median_seconds_to_detect, 1)
            );
        }
        if !c.target_reachable {
            let _ = writeln!(
                s,
                "\nThe false-stop targets are not reachable for this candidate: the rules alone \
                 (hard rules, and the rules' step-ups at the operating score) stop more benign sessions than \
                 they allow."
            );
        }
    }

    let _ = writeln!(
        s,
        "\n## Features\n\nIn vector order (`src/features.rs` is the source of truth). Logistic \
         weights are on standardised features (log-odds per standard deviation); forest splits \
         count the internal nodes that split on the feature over all trees.\n"
    );
    let _ = writeln!(
        s,
        "| # | name | unit | transform | reported as | logistic weight | forest splits | meaning |\n|---:|---|---|---|---|---:|---:|---|"
    );
    let logistic = candidates.iter().find_map(|c| match &c.model {
        Model::Logistic(m) => Some(m),
        _ => None,
    });
    let splits = candidates.iter().find_map(|c| match &c.model {
        Model::Forest(f) => {
            let mut n = vec![0usize; FEATURES.len()];
            for t in &f.trees {
                for i in t.feature.iter().filter_map(|f| usize::try_from(*f).ok()) {
                    n[i] += 1;
                }
            }
            Some(n)
        }
        _ => None,
    });
    for (i, f) in FEATURES.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {i} | `{}` | {} | {} | `{}` | {} | {} | {} |",
            f.name,
            f.unit,
            f.transform.name(),
            f.reason.map_or("context", |r| r.code()),
            logistic.map_or("–".into(), |m| format!("{:+.3}", m.weights[i])),
            splits.as_ref().map_or("–".into(), |n| n[i].to_string()),
            f.doc
        );
    }
    let _ = writeln!(
        s,
        "\nA `context` feature is no reason of its own: its share of a score is explained \
         through the signals the request shows evidence of. `anonymiser_network` is what the \
         shipped network catalog (`config/networks.toml`) says, not what the simulator knows."
    );
    s
}

fn describe(model: &Model) -> String {
    const LOGISTIC: &str = "logistic regression (linfa-logistic), standardised features";
    let forest = |f: &crate::model::Forest| {
        let nodes: usize = f.trees.iter().map(|t| t.feature.len()).sum();
        format!(
            "balanced random forest (linfa-trees, own bagging): {} trees, {} nodes",
            f.trees.len(),
            nodes
        )
    };
    match model {
        Model::Logistic(_) => LOGISTIC.into(),
        Model::Forest(f) => forest(f),
        Model::Either(m) => format!(
            "either: the riskier of {LOGISTIC} and {}, each against its own held-out threshold",
            forest(&m.forest)
        ),
    }
}
