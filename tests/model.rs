//! The trained model end to end: `train` → artifact → load round trip; the shipped
//! `models/session-risk.json` catching every attack type the simulator emits through
//! `tokenwatch replay`; and an artifact with another feature schema refused at startup.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use tokenwatch::config::DetectConfig;
use tokenwatch::event::Observation;
use tokenwatch::lab::train::{self, TrainArgs};
use tokenwatch::model::{Artifact, ModelScorer};
use tokenwatch::score::Scorer;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/session-risk.json")
}

fn tokenwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .args(args)
        .output()
        .expect("run tokenwatch")
}

/// Simulate `seed` into `dir`; returns (log, labels, config).
fn simulate(dir: &Path, seed: u64, events: u64) -> (PathBuf, PathBuf, PathBuf) {
    let log = dir.join("access.jsonl");
    let out = tokenwatch(&[
        "simulate",
        "--out",
        log.to_str().unwrap(),
        "--seed",
        &seed.to_string(),
        "--events",
        &events.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (log, dir.join("labels.jsonl"), dir.join("tokenwatch.toml"))
}

/// The generated config with `detect.model` set.
fn with_model(config: &Path, model: &Path) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains("[detect]\n"), "{text}");
    let text = text.replacen(
        "[detect]\n",
        &format!("[detect]\nmodel = {:?}\n", model.display().to_string()),
        1,
    );
    let path = config.with_file_name("with-model.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn train_save_load_round_trip_gives_identical_scores() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let args = TrainArgs {
        seeds: "1".into(),
        holdout_seeds: "2".into(),
        events: 6_000,
        attack_fraction: 0.15,
        geoip: None,
        asn_csv: None,
        logs: vec![],
        labels: vec![],
        config: vec![],
        holdout_logs: vec![],
        holdout_labels: vec![],
        holdout_config: vec![],
        target_fp_per_million: 5.0,
        target_benign_per_thousand: 1.0,
        model: train::ModelChoice::Auto,
        trees: 6,
        max_depth: 6,
        forest_seed: 3,
        out: out.clone(),
        card: None,
    };
    let trained = train::train(&args).unwrap();
    assert_eq!(
        trained.candidates.len(),
        3,
        "logistic, forest and the two together compared"
    );
    let kinds: Vec<_> = trained.candidates.iter().map(|c| c.model.kind()).collect();
    assert_eq!(kinds, ["logistic", "forest", "either"]);

    let loaded = Artifact::load(&out).unwrap();
    assert_eq!(
        loaded, trained.artifact,
        "the file holds exactly what was trained"
    );
    for x in &trained.holdout.x {
        assert_eq!(
            loaded.model.probability(x).to_bits(),
            trained.artifact.model.probability(x).to_bits()
        );
    }
    // Every candidate survives the same trip (the forest's trees too).
    for c in &trained.candidates {
        let text = serde_json::to_string(&c.model).unwrap();
        let back: tokenwatch::model::Model = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c.model, "{}", c.model.kind());
    }
    let scorer = ModelScorer::load(&out, &DetectConfig::default()).unwrap();
    assert_eq!(scorer.version(), trained.artifact.version);
    let quiet = scorer.assess(&Observation::default());
    assert!(quiet.score < 0.8 && !quiet.hard_rule, "{quiet:?}");

    // The card: written beside the artifact, with the command that rebuilds it.
    let card = std::fs::read_to_string(dir.path().join("m.md")).unwrap();
    assert_eq!(card, trained.card);
    for needle in [
        "tokenwatch train --seeds 1 --holdout-seeds 2 --events 6000",
        "| logistic |",
        "| forest |",
        "travel_speed_kmh",
        &trained.artifact.version,
    ] {
        assert!(card.contains(needle), "card lacks {needle:?}");
    }

    // Same command, same bytes.
    let again_out = dir.path().join("again.json");
    train::train(&TrainArgs {
        out: again_out.clone(),
        ..args
    })
    .unwrap();
    // Only the recorded command (its --out) may differ.
    let again = std::fs::read_to_string(&again_out)
        .unwrap()
        .replace(again_out.to_str().unwrap(), out.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        again,
        "reproducible"
    );
}

#[test]
fn shipped_model_catches_every_simulated_attack_type() {
    let dir = tempfile::tempdir().unwrap();
    let (log, labels, config) = simulate(dir.path(), 17, 40_000);
    let config = with_model(&config, &shipped());
    let decisions = dir.path().join("decisions.jsonl");
    let out = tokenwatch(&[
        "replay",
        log.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--decisions",
        decisions.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let labels = tokenwatch::lab::labels::Labels::load(&labels).unwrap();
    // First stop (revoke or step-up) per session; sessions revoked.
    let mut revoked: HashMap<usize, tokenwatch::event::EventTime> = HashMap::new();
    let mut hard_revoked = std::collections::HashSet::new();
    for line in std::fs::read_to_string(&decisions).unwrap().lines() {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        if d["action"] != "revoke" && d["action"] != "step_up" {
            continue;
        }
        let reasons = d["reasons"].as_array().unwrap();
        assert!(!reasons.is_empty(), "every stop says why: {d}");
        assert!(
            reasons.iter().all(|r| r != "model_score"),
            "reasons are named signals: {d}"
        );
        let fingerprint =
            tokenwatch::event::Fingerprint::from_hex(d["fingerprint"].as_str().unwrap());
        let session = labels
            .index_of(fingerprint.unwrap())
            .expect("a labelled token");
        let at =
            tokenwatch::event::EventTime::parse_rfc3339(d["event_time"].as_str().unwrap()).unwrap();
        if d["action"] == "revoke" {
            hard_revoked.insert(session);
        }
        revoked
            .entry(session)
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }
    // (sessions, caught) per attack type; benign sessions revoked.
    let mut per_type: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut benign = (0, 0, 0);
    for (i, s) in labels.sessions.iter().enumerate() {
        match (&s.attack_type, s.attack_start) {
            (Some(t), Some(start)) => {
                let e = per_type.entry(t.as_str()).or_default();
                e.0 += 1;
                e.1 += usize::from(revoked.get(&i).is_some_and(|at| *at >= start));
            }
            _ => {
                benign.0 += 1;
                benign.1 += usize::from(revoked.contains_key(&i));
                benign.2 += usize::from(hard_revoked.contains(&i));
            }
        }
    }
    let emitted: Vec<&str> = tokenwatch::lab::labels::ATTACK_TYPES
        .iter()
        .copied()
        .filter(|t| per_type.contains_key(t))
        .collect();
    assert!(!emitted.is_empty(), "the seed has attacks: {per_type:?}");
    for t in emitted {
        let (n, caught) = per_type[t];
        assert!(
            caught >= 1 && caught * 2 >= n,
            "{t}: caught {caught} of {n} ({per_type:?})"
        );
    }
    assert!(
        benign.2 <= 1 && benign.1 <= 3,
        "benign sessions revoked {} and stopped {} of {}",
        benign.2,
        benign.1,
        benign.0
    );
}

#[test]
fn an_artifact_with_another_feature_schema_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, config) = simulate(dir.path(), 3, 2_000);
    let mut artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped()).unwrap()).unwrap();
    artifact["schema"]["features"][0]["name"] = "speed_from_last_hop".into();
    let records: Vec<tokenwatch::features::FeatureRecord> =
        serde_json::from_value(artifact["schema"]["features"].clone()).unwrap();
    artifact["schema"]["hash"] = tokenwatch::features::schema_hash_of(&records).into();
    let model = dir.path().join("other-schema.json");
    std::fs::write(&model, artifact.to_string()).unwrap();

    let out = tokenwatch(&[
        "check-config",
        "--config",
        with_model(&config, &model).to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "detect.model",
        "feature schema differs",
        "feature 0",
        "speed_from_last_hop",
        "travel_speed_kmh",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
    // The shipped artifact itself loads.
    let ok = tokenwatch(&[
        "check-config",
        "--config",
        with_model(&config, &shipped()).to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
