//! Unit tests of the artifact, inference, explanations and the hard-rule overrides.

use super::*;
use crate::event::{EventTime, RateEvidence};
use crate::track::test_support::{berlin, london, sao_paulo};
use crate::track::travel_leg;

fn index(name: &str) -> usize {
    FEATURES
        .iter()
        .position(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name}"))
}

/// A hand-made logistic model: UA change, country change and rate ratio raise the risk.
fn logistic() -> Logistic {
    let mut weights = vec![0.0; FEATURE_COUNT];
    weights[index("user_agent_change")] = 3.0;
    weights[index("country_change")] = 2.0;
    weights[index("rate_ratio")] = 1.0;
    weights[index("travel_speed_kmh")] = 0.5;
    Logistic {
        mean: vec![0.0; FEATURE_COUNT],
        scale: vec![1.0; FEATURE_COUNT],
        weights,
        intercept: -6.0,
    }
}

/// A two-tree forest: tree 1 splits on UA change, tree 2 on rate ratio.
fn forest() -> Forest {
    let stump = |feature: usize, threshold: f64, low: f64, high: f64| Tree {
        feature: vec![i32::try_from(feature).expect("small"), -1, -1],
        threshold: vec![threshold, 0.0, 0.0],
        left: vec![1, 0, 0],
        right: vec![2, 0, 0],
        value: vec![(low + high) / 2.0, low, high],
    };
    Forest {
        trees: vec![
            stump(index("user_agent_change"), 0.5, 0.02, 0.9),
            stump(index("rate_ratio"), 2.0, 0.1, 0.8),
        ],
    }
}

fn artifact(model: Model) -> Artifact {
    let threshold = 0.3;
    Artifact {
        format: ARTIFACT_FORMAT,
        version: Artifact::version_for(&model, threshold),
        schema: SchemaRecord::current(),
        model,
        threshold,
        operating_score: OPERATING_SCORE,
        training: serde_json::json!({"seeds": [1]}),
        metrics: serde_json::Value::Null,
    }
}

fn scorer(model: Model) -> ModelScorer {
    ModelScorer::new(artifact(model), &DetectConfig::default())
}

fn stolen_cookie() -> Observation {
    Observation {
        user_agent_change: Some(("Chrome".into(), "Firefox".into())),
        country_change: Some(("DE".into(), "RU".into())),
        rate: Some(RateEvidence {
            per_minute: 60.0,
            baseline_per_minute: 5.0,
        }),
        session_requests: 40,
        ..Default::default()
    }
}

#[test]
fn json_round_trip_is_exact() {
    for model in [Model::Logistic(logistic()), Model::Forest(forest())] {
        let a = artifact(model);
        let text = a.to_json().expect("json");
        let back = Artifact::from_json(&text).expect("loads");
        assert_eq!(back, a);
        assert_eq!(back.to_json().expect("json"), text, "stable bytes");
        // Number arrays stay on one line.
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("\"weights\": [")
                    || l.trim_start().starts_with("\"feature\": ["))
        );
    }
}

#[test]
fn a_different_feature_schema_refuses_to_load_and_says_why() {
    let mut a = artifact(Model::Logistic(logistic()));
    a.schema.features[2].name = "peer_speed_kmh".into();
    a.schema.hash = features::schema_hash_of(&a.schema.features);
    let err = Artifact::from_json(&a.to_json().expect("json")).expect_err("schema differs");
    assert_eq!(err.code(), "schema");
    let text = err.to_string();
    assert!(
        text.contains("feature 2")
            && text.contains("peer_speed_kmh")
            && text.contains("user_travel_speed_kmh"),
        "{text}"
    );
    assert!(text.contains("retrain"), "{text}");

    // One feature fewer.
    let mut b = artifact(Model::Logistic(logistic()));
    b.schema.features.pop();
    b.schema.hash = features::schema_hash_of(&b.schema.features);
    let err = Artifact::from_json(&b.to_json().expect("json")).expect_err("shorter");
    assert!(err.to_string().contains("missing"), "{err}");

    // A hash that does not match its own list is tampering or a hand edit.
    let mut c = artifact(Model::Logistic(logistic()));
    c.schema.hash = "0".repeat(32);
    let err = Artifact::from_json(&c.to_json().expect("json")).expect_err("bad hash");
    assert_eq!(err.code(), "invalid");
}

#[test]
fn broken_artifacts_are_rejected() {
    let mut cyclic = forest();
    cyclic.trees[0].left[0] = 0;
    let mut short = logistic();
    short.weights.pop();
    let mut nan = logistic();
    nan.intercept = f64::NAN;
    let cases: Vec<(&str, Model, &str)> = vec![
        ("cycle", Model::Forest(cyclic), "out of order"),
        ("short weights", Model::Logistic(short), "values"),
        (
            "empty forest",
            Model::Forest(Forest { trees: vec![] }),
            "no trees",
        ),
    ];
    for (what, model, needle) in cases {
        let err = artifact(model).check().expect_err(what);
        assert_eq!(err.code(), "invalid", "{what}");
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
    // NaN does not survive JSON at all: null where a number belongs.
    let text = artifact(Model::Logistic(nan)).to_json().expect("json");
    assert!(Artifact::from_json(&text).is_err());
    let mut wrong_format = serde_json::to_value(artifact(Model::Logistic(logistic()))).expect("v");
    wrong_format["format"] = 99.into();
    let err = Artifact::from_json(&wrong_format.to_string()).expect_err("format");
    assert_eq!(err.code(), "format");
    assert!(Artifact::from_json("{}").is_err());
}

#[test]
fn calibration_puts_the_threshold_on_the_operating_score() {
    let a = artifact(Model::Logistic(logistic()));
    assert!((a.calibrate(a.threshold) - OPERATING_SCORE).abs() < 1e-12);
    assert_eq!(a.calibrate(0.0), 0.0);
    assert_eq!(a.calibrate(1.0), 1.0);
    let mut last = -1.0;
    for i in 0..=100 {
        let s = a.calibrate(f64::from(i) / 100.0);
        assert!(s >= last, "monotone");
        last = s;
    }
    assert!(a.calibrate(0.29) < OPERATING_SCORE && a.calibrate(0.31) > OPERATING_SCORE);
    // Below the threshold by odds: 5/8 of the threshold's odds is the 0.5 band's edge, for a
    // saturated model too.
    let odds = |p: f64| p / (1.0 - p);
    for t in [a.threshold, 0.999_999_96] {
        let b = Artifact {
            threshold: t,
            ..a.clone()
        };
        let edge = 0.625 * odds(t);
        let p = edge / (1.0 + edge);
        assert!(
            (b.calibrate(p) - 0.5).abs() < 1e-6,
            "{t}: {}",
            b.calibrate(p)
        );
        assert!(
            b.calibrate(0.9) < 0.01 || t < 0.99,
            "{t}: p = 0.9 is no flag"
        );
    }
}

#[test]
fn contributions_sum_to_the_score_and_name_the_evidence() {
    for model in [Model::Logistic(logistic()), Model::Forest(forest())] {
        let kind = model.kind();
        let s = scorer(model);
        let a = s.assess(&stolen_cookie());
        assert!(!a.hard_rule, "{kind}");
        assert!(a.score >= OPERATING_SCORE, "{kind}: {}", a.score);
        let sum: f64 = a.contributions.iter().map(|c| c.weight).sum();
        assert!((sum - a.score).abs() < 1e-9, "{kind}: {sum} vs {}", a.score);
        assert!(
            a.contributions
                .windows(2)
                .all(|w| w[0].weight >= w[1].weight),
            "{kind}"
        );
        let reasons = a.reasons();
        assert!(
            reasons.contains(&Reason::UserAgentChange),
            "{kind}: {reasons:?}"
        );
        assert!(
            reasons.contains(&Reason::RateAnomaly),
            "{kind}: {reasons:?}"
        );
        // Quiet traffic scores low and is never revoked.
        let quiet = s.assess(&Observation::default());
        assert!(quiet.score < 0.5, "{kind}: {}", quiet.score);
    }
    // Logistic: country change is its own reason.
    let a = scorer(Model::Logistic(logistic())).assess(&stolen_cookie());
    assert_eq!(a.reasons()[0], Reason::UserAgentChange);
    assert!(a.reasons().contains(&Reason::CountryChange));
}

#[test]
fn context_is_explained_through_the_evidenced_signals() {
    // A negative-mean standardisation makes an absent travel leg push the score up: the
    // explanation must not then claim impossible travel, and its share goes to the signals
    // the request does show, so the weights still sum to the score.
    let mut m = logistic();
    m.mean[index("travel_speed_kmh")] = -10.0;
    let observation = stolen_cookie();
    let a = scorer(Model::Logistic(m)).assess(&observation);
    assert!(a.score > 0.0);
    let reasons = a.reasons();
    assert!(!reasons.contains(&Reason::ImpossibleTravel), "{reasons:?}");
    assert!(!reasons.is_empty());
    let x = crate::features::extract(&observation);
    for reason in &reasons {
        assert!(crate::features::evidence_for(*reason, &x), "{reason:?}");
    }
    let sum: f64 = a.contributions.iter().map(|c| c.weight).sum();
    assert!((sum - a.score).abs() < 1e-9, "{sum} vs {}", a.score);
}

#[test]
fn hard_rules_override_the_model() {
    let impossible = travel_leg(&berlin(), EventTime(0), &sao_paulo(), EventTime(600_000));
    // A model that never fires.
    let mut never = logistic();
    never.weights = vec![0.0; FEATURE_COUNT];
    never.intercept = -30.0;
    let s = scorer(Model::Logistic(never));
    for (what, obs, reason) in [
        (
            "travel",
            Observation {
                travel: Some(impossible.clone()),
                ..Default::default()
            },
            Reason::ImpossibleTravel,
        ),
        (
            "concurrent",
            Observation {
                user_travel: Some(impossible.clone()),
                ..Default::default()
            },
            Reason::ConcurrentUse,
        ),
    ] {
        let a = s.assess(&obs);
        assert!(a.hard_rule, "{what}");
        assert!(a.score >= 0.95, "{what}: {}", a.score);
        assert_eq!(a.reasons()[0], reason, "{what}");
    }
    // On a privacy relay the tracker's travel (from the relay's region) overrides too; an
    // allowlisted network gets none from the tracker (track's tests).
    let a = s.assess(&Observation {
        travel: Some(impossible),
        allowlisted_network: true,
        ..Default::default()
    });
    assert!(a.hard_rule);
    // A plane ride is no hard rule either; the model alone decides.
    let plane = travel_leg(&berlin(), EventTime(0), &london(), EventTime(3 * 3_600_000));
    assert!(
        !s.assess(&Observation {
            travel: Some(plane),
            ..Default::default()
        })
        .hard_rule
    );
}

#[test]
fn the_rules_verdict_at_the_operating_score_is_a_floor() {
    // A model that never fires.
    let mut never = logistic();
    never.weights = vec![0.0; FEATURE_COUNT];
    never.intercept = -30.0;
    let s = scorer(Model::Logistic(never));
    // Berlin to São Paulo in ten minutes from a mobile carrier (a region, no country): no
    // hard rule, but the rules step it up, and the model cannot talk it down.
    let mut carrier = berlin();
    carrier.country = None;
    carrier.radius_km = 500.0;
    let far = travel_leg(&carrier, EventTime(0), &sao_paulo(), EventTime(600_000));
    let a = s.assess(&Observation {
        travel: Some(far),
        ..Default::default()
    });
    assert!(!a.hard_rule);
    assert!(a.score >= OPERATING_SCORE, "{}", a.score);
    assert_eq!(a.reasons(), [Reason::ImpossibleTravel]);
    // A browser change from another country at twelve times the session's rate: the
    // rules' verdict stands.
    let a = s.assess(&stolen_cookie());
    assert!(!a.hard_rule && a.score >= OPERATING_SCORE, "{}", a.score);
    // Below the operating score the model decides alone.
    let quiet = Observation {
        asn_change: Some((1, 2)),
        ..Default::default()
    };
    assert!(s.assess(&quiet).score < 1e-9);
}

#[test]
fn a_forest_model_names_its_version() {
    let s = scorer(Model::Forest(forest()));
    assert!(
        s.version().starts_with("session-risk-forest-"),
        "{}",
        s.version()
    );
}

#[test]
fn load_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let a = artifact(Model::Forest(forest()));
    std::fs::write(&path, a.to_json().expect("json")).expect("write");
    let s = ModelScorer::load(&path, &DetectConfig::default()).expect("loads");
    assert_eq!(s.artifact(), &a);
    let err = ModelScorer::load(&dir.path().join("missing.json"), &DetectConfig::default())
        .err()
        .expect("missing file");
    assert_eq!(err.code(), "io");
}

#[test]
fn either_takes_the_riskier_member_against_its_own_threshold() {
    let members = Either {
        logistic: logistic(),
        forest: forest(),
        logistic_threshold_logit: logit(0.9),
        forest_threshold_logit: logit(0.5),
    };
    let model = Model::Either(members.clone());
    let x_of = |ua: f64, rate: f64| {
        let mut x = [0.0; FEATURE_COUNT];
        x[index("user_agent_change")] = ua;
        x[index("rate_ratio")] = rate;
        x
    };
    // A rate burst alone: the logistic is far below its threshold (-6 + 3 = -3 log-odds),
    // the forest at (0.02 + 0.8) / 2 = 0.41, just under its own 0.5. The forest wins.
    let burst = x_of(0.0, 3.0);
    let l = members.logistic.logit(&burst, None) - logit(0.9);
    let f = logit(members.forest.predict(&burst, None)) - logit(0.5);
    assert!(f > l);
    assert!((model.probability(&burst) - sigmoid(f)).abs() < 1e-12);
    let mut contributions = [0.0; FEATURE_COUNT];
    model.explain(&burst, &mut contributions);
    let mut from_forest = [0.0; FEATURE_COUNT];
    members.forest.predict(&burst, Some(&mut from_forest));
    assert_eq!(contributions, from_forest, "the winner explains");
    // A User-Agent change and a burst: both are over their thresholds; the probability is
    // over 0.5 exactly when either member is over its own threshold.
    let both = x_of(1.0, 3.0);
    assert!(model.probability(&both) > 0.5);
    assert!(model.probability(&x_of(0.0, 1.0)) < 0.5);
    // The artifact round-trips, and a non-finite member threshold is refused.
    let a = artifact(model);
    assert_eq!(Artifact::from_json(&a.to_json().unwrap()).unwrap(), a);
    let mut broken = members;
    broken.forest_threshold_logit = f64::NAN;
    assert!(artifact(Model::Either(broken)).check().is_err());
}

#[test]
fn per_network_evidence_reports_under_its_own_reason() {
    // Owner and thief interleaving on one token from one city: no travel, no rate baseline.
    let interleaved = Observation {
        asn_change: Some((3320, 64500)),
        network_returns: 4,
        network_rate_per_minute: 45,
        session_requests: 30,
        ..Default::default()
    };
    let mut m = logistic();
    m.weights[index("network_returns")] = 3.0;
    m.weights[index("network_rate_per_minute")] = 2.0;
    let a = scorer(Model::Logistic(m)).assess(&interleaved);
    let reasons = a.reasons();
    assert!(reasons.contains(&Reason::ConcurrentUse), "{reasons:?}");
    assert!(reasons.contains(&Reason::RateAnomaly), "{reasons:?}");
    // Without them, the same weights have nothing to report under those reasons.
    let quiet = Observation {
        network_returns: 0,
        network_rate_per_minute: 10,
        ..interleaved
    };
    let mut m = logistic();
    m.weights[index("network_returns")] = 3.0;
    m.weights[index("network_rate_per_minute")] = 2.0;
    let reasons = scorer(Model::Logistic(m)).assess(&quiet).reasons();
    assert!(!reasons.contains(&Reason::ConcurrentUse), "{reasons:?}");
    assert!(!reasons.contains(&Reason::RateAnomaly), "{reasons:?}");

    // A low-and-slow thief: lone requests from a second network, nothing else.
    let polling = Observation {
        network_lone_requests: 6,
        session_requests: 40,
        ..Default::default()
    };
    let mut m = logistic();
    m.weights[index("network_lone_requests")] = 3.0;
    let reasons = scorer(Model::Logistic(m)).assess(&polling).reasons();
    assert_eq!(reasons.first(), Some(&Reason::AsnChange), "{reasons:?}");
}

#[test]
fn the_builtin_model_loads_and_is_the_shipped_file() {
    let detect = crate::config::DetectConfig::default();
    let builtin = ModelScorer::builtin(&detect).expect("embedded model loads");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/session-risk.json");
    let shipped = ModelScorer::load(&path, &detect).expect("shipped model loads");
    assert_eq!(
        builtin.artifact().schema.hash,
        shipped.artifact().schema.hash
    );
}
