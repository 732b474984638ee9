//! The trained session-risk model as a [`Scorer`]: loads the artifact (`models/*.json`),
//! checks its feature schema against the code's, scores each observation and explains the score.
//!
//! Data flow: `track` → [`Observation`] → `features::extract` → **model** → [`Assessment`] →
//! `decide`. The pipeline calls [`Scorer::score`] on its detection thread, off the async
//! runtime, once per event (between tracking it and deciding it).
//!
//! The artifact ([`Artifact`], JSON) carries the feature schema and its hash, the model — a
//! logistic regression (weights, intercept and the feature scaling it was fitted with) or a
//! forest of binary trees exported into plain node arrays by `train` — the operating
//! threshold, and the training provenance and held-out metrics (opaque here, written for the
//! model card and for people). Inference is this module's own code: no linfa at run time.
//!
//! Scores: the model's probability `p` is mapped so that the trained threshold `t` lands on
//! [`Artifact::operating_score`] (0.8, the default `detect.threshold`): below `t` by odds,
//! `s = 0.8·odds(p)/odds(t)` (`odds(p) = p/(1 − p)`), above linearly,
//! `s = 0.8 + 0.2·(p − t)/(1 − t)`. By odds below, so the flag and step-up bands mean the same
//! whatever the model: 0.5 is odds 5/8 of the threshold's, where a linear map would put it at
//! `p = 0.62` even for a model whose threshold is 0.9999999. Monotone, so the order of
//! events is the model's; `detect.threshold = 0.8` reproduces the card's metrics whatever the
//! model, and moving it still means stricter or laxer (the daemon's threshold stays a knob,
//! which mapping `t` onto whatever `detect.threshold` says would have removed).
//!
//! Evidence gate: a row without any evidence feature (no travel leg, no rate above the
//! session's baseline, no device or network change; `features::carries_evidence`) scores 0
//! whatever the model says, so context alone (age, counts, gaps) never revokes or flags and
//! every non-zero score has a concrete reason. `train` evaluates and thresholds the gated
//! probability, so the card's numbers are the scorer's.
//!
//! Explanations: per-feature contributions (logistic: `wᵢ·(xᵢ − μᵢ)/σᵢ` in log-odds; forest:
//! Saabas path attribution, the change in node value at every split on the path, averaged
//! over trees) are summed per [`Reason`] — a signal the observation shows evidence of (each
//! feature names its signal in `features::FEATURES`). Context (age, counts, an anonymising
//! network, a signal feature without evidence) is no reason of its own: its share is spread
//! over the evidenced signals. The score is shared out among them, so the weights sum to the
//! score and every reason has its evidence in the decision record. The hard rules of [`RuleScorer`] stay explicit overrides: impossible travel and
//! concurrent use revoke whatever the model says, with their own reason codes.
//!
//! What it does NOT do: train (that is `train`), read the clock, or decide.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::DetectConfig;
use crate::event::{Assessment, Contribution, Observation, Reason};
use crate::features::{self, FEATURE_COUNT, FEATURES, FeatureRecord};
use crate::score::{RuleScorer, Scorer, combine};

/// Artifact format understood by this code.
pub const ARTIFACT_FORMAT: u32 = 1;

/// The score the trained threshold is mapped to: the default `detect.threshold`.
pub const OPERATING_SCORE: f64 = 0.8;

/// A model artifact that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file cannot be read.
    #[error("cannot read the model artifact: {0}")]
    Io(#[from] std::io::Error),
    /// Not JSON of the artifact's shape.
    #[error("not a model artifact: {0}")]
    Parse(String),
    /// Written by another artifact format.
    #[error("artifact format {found}, this tokenwatch reads format {expected}")]
    Format {
        /// Format in the file.
        found: u32,
        /// Format this code reads.
        expected: u32,
    },
    /// The feature schema differs from the code's.
    #[error(
        "feature schema differs from this tokenwatch's (artifact {artifact_hash}, code {code_hash}): {difference}; retrain the model with `tokenwatch train`"
    )]
    Schema {
        /// Hash recorded in the artifact.
        artifact_hash: String,
        /// Hash of the code's schema.
        code_hash: String,
        /// What differs, feature by feature.
        difference: String,
    },
    /// Internally inconsistent (bad indices, non-finite numbers, …).
    #[error("invalid model artifact: {0}")]
    Invalid(String),
}

impl ModelError {
    /// Bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::Io(_) => "io",
            ModelError::Parse(_) => "parse",
            ModelError::Format { .. } => "format",
            ModelError::Schema { .. } => "schema",
            ModelError::Invalid(_) => "invalid",
        }
    }
}

/// The feature schema as stored in an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaRecord {
    /// `features::schema_hash_of(features)`.
    pub hash: String,
    /// Name, unit and transform of every feature, in vector order.
    pub features: Vec<FeatureRecord>,
}

impl SchemaRecord {
    /// The code's schema.
    pub fn current() -> Self {
        let features = features::schema_records();
        SchemaRecord {
            hash: features::schema_hash_of(&features),
            features,
        }
    }
}

/// Logistic regression over standardised features: `p = σ(b + Σ wᵢ·(xᵢ − μᵢ)/σᵢ)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// Feature means μ (training data).
    pub mean: Vec<f64>,
    /// Feature scales σ (standard deviations; 1 for a constant feature).
    pub scale: Vec<f64>,
    /// Weights w on the standardised features.
    pub weights: Vec<f64>,
    /// Intercept b.
    pub intercept: f64,
}

/// One binary tree as node arrays (pre-order: a node's children come after it). Node `i` is
/// a leaf when `feature[i] < 0`; otherwise `x[feature[i]] <= threshold[i]` goes to `left[i]`,
/// else to `right[i]`. `value[i]` is the share of attacker requests among the (class-balanced)
/// training samples that reached node `i`: the leaf's is the prediction, the internal ones
/// feed the path attribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Split feature index, −1 for leaves.
    pub feature: Vec<i32>,
    /// Split threshold (0 for leaves).
    pub threshold: Vec<f64>,
    /// Left child (0 for leaves).
    pub left: Vec<u32>,
    /// Right child (0 for leaves).
    pub right: Vec<u32>,
    /// Node value in [0, 1].
    pub value: Vec<f64>,
}

/// A forest: `p` is the mean of the trees' leaf values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// The trees.
    pub trees: Vec<Tree>,
}

/// Logistic regression and forest side by side: a request is as risky as the member that
/// finds it riskier, each measured against its own held-out threshold. The two see
/// different things (the linear model: strong single signals such as far travel or a
/// scripted client; the forest: combinations such as a new network with a scraper's rate),
/// so the pair catches what either alone misses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Either {
    /// The linear member.
    pub logistic: Logistic,
    /// The tree member.
    pub forest: Forest,
    /// The logistic member's own threshold, as log-odds.
    pub logistic_threshold_logit: f64,
    /// The forest member's own threshold, as log-odds.
    pub forest_threshold_logit: f64,
}

impl Either {
    /// Log-odds of the riskier member, each shifted so its own threshold sits at 0; with the
    /// winner's per-feature contributions when asked.
    fn margin(&self, x: &[f64; FEATURE_COUNT], out: Option<&mut [f64; FEATURE_COUNT]>) -> f64 {
        let mut linear = [0.0; FEATURE_COUNT];
        let mut trees = [0.0; FEATURE_COUNT];
        let l = self.logistic.logit(x, Some(&mut linear)) - self.logistic_threshold_logit;
        let f = logit(self.forest.predict(x, Some(&mut trees))) - self.forest_threshold_logit;
        if let Some(out) = out {
            *out = if l >= f { linear } else { trees };
        }
        l.max(f)
    }
}

/// The fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// Logistic regression.
    Logistic(Logistic),
    /// Tree ensemble.
    Forest(Forest),
    /// Both, the riskier verdict wins.
    Either(Either),
}

impl Model {
    /// `logistic` or `forest`.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::Logistic(_) => "logistic",
            Model::Forest(_) => "forest",
            Model::Either(_) => "either",
        }
    }

    /// Probability of an attacker request; 0 for a row without evidence
    /// (`features::carries_evidence`).
    pub fn probability(&self, x: &[f64; FEATURE_COUNT]) -> f64 {
        if !features::carries_evidence(x) {
            return 0.0;
        }
        match self {
            Model::Logistic(m) => sigmoid(m.logit(x, None)),
            Model::Forest(m) => m.predict(x, None),
            Model::Either(m) => sigmoid(m.margin(x, None)),
        }
    }

    /// Probability, with per-feature contributions written into `contributions`
    /// (log-odds for logistic, probability for forests).
    pub fn explain(
        &self,
        x: &[f64; FEATURE_COUNT],
        contributions: &mut [f64; FEATURE_COUNT],
    ) -> f64 {
        *contributions = [0.0; FEATURE_COUNT];
        if !features::carries_evidence(x) {
            return 0.0;
        }
        match self {
            Model::Logistic(m) => sigmoid(m.logit(x, Some(contributions))),
            Model::Forest(m) => m.predict(x, Some(contributions)),
            Model::Either(m) => sigmoid(m.margin(x, Some(contributions))),
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Model::Logistic(m) => m.validate(),
            Model::Forest(f) => f.validate(),
            Model::Either(m) => {
                m.logistic.validate()?;
                m.forest.validate()?;
                [m.logistic_threshold_logit, m.forest_threshold_logit]
                    .iter()
                    .all(|v| v.is_finite())
                    .then_some(())
                    .ok_or_else(|| "either: non-finite member threshold".into())
            }
        }
    }
}

/// The logistic function, inverse of [`logit`].
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Log-odds of a probability, clamped away from 0 and 1 (a forest can say exactly 0 or 1).
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

impl Logistic {
    fn validate(&self) -> Result<(), String> {
        for (what, v) in [
            ("mean", &self.mean),
            ("scale", &self.scale),
            ("weights", &self.weights),
        ] {
            if v.len() != FEATURE_COUNT {
                return Err(format!(
                    "logistic {what} has {} values for {FEATURE_COUNT} features",
                    v.len()
                ));
            }
            if !v.iter().all(|x| x.is_finite()) {
                return Err(format!("{what}: non-finite value"));
            }
        }
        if self.scale.iter().any(|s| *s <= 0.0) {
            return Err("logistic scale must be positive".into());
        }
        if !self.intercept.is_finite() {
            return Err("intercept: non-finite value".into());
        }
        Ok(())
    }

    fn logit(&self, x: &[f64; FEATURE_COUNT], mut out: Option<&mut [f64; FEATURE_COUNT]>) -> f64 {
        let mut z = self.intercept;
        for i in 0..FEATURE_COUNT {
            let c = self.weights[i] * (x[i] - self.mean[i]) / self.scale[i];
            z += c;
            if let Some(out) = out.as_deref_mut() {
                out[i] = c;
            }
        }
        z
    }
}

impl Forest {
    fn validate(&self) -> Result<(), String> {
        if self.trees.is_empty() {
            return Err("forest has no trees".into());
        }
        for (t, tree) in self.trees.iter().enumerate() {
            tree.validate().map_err(|e| format!("tree {t}: {e}"))?;
        }
        Ok(())
    }

    fn predict(&self, x: &[f64; FEATURE_COUNT], mut out: Option<&mut [f64; FEATURE_COUNT]>) -> f64 {
        let mut sum = 0.0;
        for tree in &self.trees {
            sum += tree.predict(x, out.as_deref_mut());
        }
        let n = self.trees.len() as f64;
        if let Some(out) = out {
            for c in out.iter_mut() {
                *c /= n;
            }
        }
        sum / n
    }
}

impl Tree {
    /// Leaf value for `x`; adds the Saabas attribution (value change at each split, credited
    /// to the split's feature) into `out` when given.
    fn predict(&self, x: &[f64; FEATURE_COUNT], mut out: Option<&mut [f64; FEATURE_COUNT]>) -> f64 {
        let mut node = 0usize;
        // Validated at load: indices in range and increasing, so this terminates.
        while let Ok(feature) = usize::try_from(self.feature[node]) {
            let next = if x[feature] <= self.threshold[node] {
                self.left[node]
            } else {
                self.right[node]
            } as usize;
            if let Some(out) = out.as_deref_mut() {
                out[feature] += self.value[next] - self.value[node];
            }
            node = next;
        }
        self.value[node]
    }

    fn validate(&self) -> Result<(), String> {
        let n = self.feature.len();
        if n == 0 {
            return Err("no nodes".into());
        }
        if [
            self.threshold.len(),
            self.left.len(),
            self.right.len(),
            self.value.len(),
        ]
        .iter()
        .any(|len| *len != n)
        {
            return Err("node arrays differ in length".into());
        }
        for i in 0..n {
            if !(self.value[i].is_finite() && (0.0..=1.0).contains(&self.value[i])) {
                return Err(format!("node {i}: value outside [0, 1]"));
            }
            if self.feature[i] < 0 {
                continue;
            }
            if self.feature[i] as usize >= FEATURE_COUNT {
                return Err(format!(
                    "node {i}: feature {} out of range",
                    self.feature[i]
                ));
            }
            if !self.threshold[i].is_finite() {
                return Err(format!("node {i}: non-finite threshold"));
            }
            for child in [self.left[i] as usize, self.right[i] as usize] {
                // Children after their parent: no cycles, every walk ends at a leaf.
                if child <= i || child >= n {
                    return Err(format!("node {i}: child {child} out of order"));
                }
            }
        }
        Ok(())
    }
}

/// Everything a trained model ships with (`models/session-risk.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// [`ARTIFACT_FORMAT`].
    pub format: u32,
    /// `session-risk-<kind>-<content hash>`: changes whenever the model does; shown as
    /// `model_info{version}`.
    pub version: String,
    /// Feature schema and its hash.
    pub schema: SchemaRecord,
    /// The model.
    pub model: Model,
    /// Operating threshold on the model's probability, chosen by `train` for a target
    /// benign false-revocation rate.
    pub threshold: f64,
    /// The score the threshold is mapped to ([`OPERATING_SCORE`]): what to put in
    /// `detect.threshold` to operate at the trained point.
    pub operating_score: f64,
    /// Training provenance (seeds, events, class balance, command), for people.
    #[serde(default)]
    pub training: serde_json::Value,
    /// Held-out metrics of every candidate, for people.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

impl Artifact {
    /// Parse and check an artifact's JSON text.
    pub fn from_json(text: &str) -> Result<Artifact, ModelError> {
        // Format first, so an incompatible file says so rather than "missing field".
        let probe: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::Parse(e.to_string()))?;
        let found = probe
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| ModelError::Parse("no `format` field".into()))?;
        if found != u64::from(ARTIFACT_FORMAT) {
            return Err(ModelError::Format {
                found: u32::try_from(found).unwrap_or(u32::MAX),
                expected: ARTIFACT_FORMAT,
            });
        }
        let artifact: Artifact =
            serde_json::from_value(probe).map_err(|e| ModelError::Parse(e.to_string()))?;
        artifact.check()?;
        Ok(artifact)
    }

    /// Read and check an artifact file.
    pub fn load(path: &Path) -> Result<Artifact, ModelError> {
        Artifact::from_json(&std::fs::read_to_string(path)?)
    }

    /// Schema equal to the code's, and the model internally consistent.
    pub fn check(&self) -> Result<(), ModelError> {
        let code = SchemaRecord::current();
        let recorded = features::schema_hash_of(&self.schema.features);
        if recorded != self.schema.hash {
            return Err(ModelError::Invalid(format!(
                "schema hash {} does not match its own feature list ({recorded})",
                self.schema.hash
            )));
        }
        if let Some(difference) = features::schema_difference(&self.schema.features) {
            return Err(ModelError::Schema {
                artifact_hash: self.schema.hash.clone(),
                code_hash: code.hash,
                difference,
            });
        }
        self.model.validate().map_err(ModelError::Invalid)?;
        let unit_open = |v: f64| v.is_finite() && v > 0.0 && v < 1.0;
        if !unit_open(self.threshold) || !unit_open(self.operating_score) {
            return Err(ModelError::Invalid(
                "threshold and operating_score must lie strictly between 0 and 1".into(),
            ));
        }
        Ok(())
    }

    /// The JSON text `train` writes: indented, with number arrays (weights, tree nodes) kept
    /// on one line each so the file stays readable and diffs stay small.
    pub fn to_json(&self) -> Result<String, ModelError> {
        let value = serde_json::to_value(self).map_err(|e| ModelError::Parse(e.to_string()))?;
        let mut out = String::new();
        write_json(&value, 0, &mut out);
        out.push('\n');
        Ok(out)
    }

    /// Version for a model: kind plus the first 12 hex chars of SHA-256 over the model's
    /// JSON and the threshold, so equal models have equal versions on every machine.
    pub fn version_for(model: &Model, threshold: f64) -> String {
        let text = format!(
            "{}|{threshold}",
            serde_json::to_string(model).unwrap_or_default()
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        format!(
            "session-risk-{}-{}",
            model.kind(),
            &hex::encode(digest.as_ref())[..12]
        )
    }

    /// The probability → score map (see the module doc).
    pub fn calibrate(&self, p: f64) -> f64 {
        let (t, s) = (self.threshold, self.operating_score);
        let score = if p < t {
            // s · odds(p) / odds(t), written without dividing by 1 − t.
            s * p * (1.0 - t) / ((1.0 - p) * t)
        } else {
            s + (1.0 - s) * (p - t) / (1.0 - t)
        };
        if score.is_nan() {
            0.0
        } else {
            score.clamp(0.0, 1.0)
        }
    }
}

/// Pretty JSON with scalar arrays inline.
fn write_json(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() => {
            let entries = map.iter().map(|(k, v)| (Some(k), v));
            write_nested(('{', '}'), entries, map.len(), indent, out);
        }
        Value::Array(items)
            if items
                .iter()
                .any(|v| matches!(v, Value::Object(_) | Value::Array(_))) =>
        {
            let entries = items.iter().map(|v| (None, v));
            write_nested(('[', ']'), entries, items.len(), indent, out);
        }
        other => out.push_str(&other.to_string()),
    }
}

/// One object or array over several lines: each entry (`"key": ` for objects) on its own
/// line, one level deeper.
fn write_nested<'a>(
    (open, close): (char, char),
    entries: impl Iterator<Item = (Option<&'a String>, &'a serde_json::Value)>,
    len: usize,
    indent: usize,
    out: &mut String,
) {
    let pad = |n: usize| "  ".repeat(n);
    out.push(open);
    out.push('\n');
    for (i, (key, v)) in entries.enumerate() {
        out.push_str(&pad(indent + 1));
        if let Some(key) = key {
            out.push_str(&serde_json::Value::String(key.clone()).to_string());
            out.push_str(": ");
        }
        write_json(v, indent + 1, out);
        if i + 1 < len {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str(&pad(indent));
    out.push(close);
}

/// The shipped model's artifact, embedded so that a config copied anywhere can use it.
pub const SHIPPED_MODEL: &str = include_str!("../models/session-risk.json");

/// A reason's share below this fraction of the score is left out of the explanation.
const MIN_SHARE: f64 = 0.02;

/// Scores with a trained model plus the hard rules.
pub struct ModelScorer {
    artifact: Artifact,
    rules: RuleScorer,
}

impl ModelScorer {
    /// Load and check an artifact; the hard rules take their limits from `detect`.
    pub fn load(path: &Path, detect: &DetectConfig) -> Result<ModelScorer, ModelError> {
        Ok(ModelScorer::new(Artifact::load(path)?, detect))
    }

    /// The shipped model (`models/session-risk.json`), embedded in the binary
    /// (`detect.model = "builtin"`).
    pub fn builtin(detect: &DetectConfig) -> Result<ModelScorer, ModelError> {
        Ok(ModelScorer::new(
            Artifact::from_json(SHIPPED_MODEL)?,
            detect,
        ))
    }

    /// A scorer over an already checked artifact.
    pub fn new(artifact: Artifact, detect: &DetectConfig) -> ModelScorer {
        ModelScorer {
            artifact,
            rules: RuleScorer::new(detect),
        }
    }

    /// The artifact.
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// Score one observation.
    pub fn assess(&self, observation: &Observation) -> Assessment {
        // The operator vouches for the network: nothing from it counts, not even its rate.
        if observation.vouched_network {
            return Assessment::default();
        }
        let x = features::extract(observation);
        let mut per_feature = [0.0; FEATURE_COUNT];
        let p = self.artifact.model.explain(&x, &mut per_feature);
        let score = self.artifact.calibrate(p);
        let model = explain(score, &per_feature, &x);

        // Hard rules override: their reasons first, the model's other reasons after. The
        // rules' own verdict at the operating score is a floor too: a combination of
        // evidenced signals each rule weighs (a leg too long for any GeoIP error, a device
        // and country change on one token) steps up whatever the model says. The model adds
        // what the rules miss; it never talks down what they see.
        let rules = self.rules.assess(observation);
        let mut contributions = if rules.hard_rule {
            rules
                .contributions
                .into_iter()
                .filter(|c| matches!(c.reason, Reason::ImpossibleTravel | Reason::ConcurrentUse))
                .collect()
        } else if rules.score >= OPERATING_SCORE && rules.score > score {
            rules.contributions
        } else {
            return Assessment {
                score,
                contributions: model,
                hard_rule: false,
            };
        };
        let hard_rule = rules.hard_rule;
        let rule_score = combine(&contributions);
        for c in model {
            if !contributions.iter().any(|h| h.reason == c.reason) {
                contributions.push(c);
            }
        }
        sort_strongest_first(&mut contributions);
        Assessment {
            score: rule_score.max(score),
            contributions,
            hard_rule,
        }
    }
}

/// Share `score` among the signals (reasons) the observation shows evidence of.
///
/// A feature whose signal has evidence here adds its positive contribution to that signal.
/// Context — features that are no signal (age, counts, an anonymising network) and signal
/// features without evidence (a travel feature at 0) — only modulates evidence, so its
/// positive share is spread over the evidenced signals in proportion to their own shares
/// (evenly when none pushed the score up by itself). There is no "the model said so" reason:
/// every weight sits on a signal whose evidence is in the decision record.
fn explain(
    score: f64,
    per_feature: &[f64; FEATURE_COUNT],
    x: &[f64; FEATURE_COUNT],
) -> Vec<Contribution> {
    if score <= 0.0 {
        return Vec::new();
    }
    let mut by_reason: Vec<(Reason, f64)> = Reason::ALL
        .into_iter()
        .filter(|r| features::evidence_for(*r, x))
        .map(|r| (r, 0.0))
        .collect();
    if by_reason.is_empty() {
        // The evidence gate scores such a row 0; never name a reason without evidence.
        return Vec::new();
    }
    let mut context = 0.0;
    for (spec, c) in FEATURES.iter().zip(per_feature) {
        if !(*c > 0.0 && c.is_finite()) {
            continue;
        }
        match spec
            .reason
            .and_then(|r| by_reason.iter_mut().find(|(have, _)| *have == r))
        {
            Some((_, sum)) => *sum += c,
            None => context += c,
        }
    }
    let direct: f64 = by_reason.iter().map(|(_, c)| c).sum();
    let evidenced = by_reason.len() as f64;
    for (_, c) in &mut by_reason {
        *c += if direct > 0.0 {
            context * *c / direct
        } else {
            context / evidenced
        };
    }
    let total: f64 = by_reason.iter().map(|(_, c)| c).sum();
    if !(total > 0.0 && total.is_finite()) {
        // Nothing pushed the score up (a model whose intercept alone clears the threshold):
        // the evidenced signals share it evenly.
        for (_, c) in &mut by_reason {
            *c = 1.0;
        }
    }
    let total: f64 = by_reason.iter().map(|(_, c)| c).sum();
    // Small shares are dropped and the rest renormalised: weights sum to the score.
    by_reason.retain(|(_, c)| c / total >= MIN_SHARE);
    let kept: f64 = by_reason.iter().map(|(_, c)| c).sum();
    let mut out: Vec<Contribution> = by_reason
        .into_iter()
        .map(|(reason, c)| Contribution {
            reason,
            weight: score * c / kept,
        })
        .collect();
    sort_strongest_first(&mut out);
    out
}

fn sort_strongest_first(contributions: &mut [Contribution]) {
    contributions.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| a.reason.cmp(&b.reason))
    });
}

impl Scorer for ModelScorer {
    fn score(&self, observation: &Observation) -> Assessment {
        self.assess(observation)
    }

    fn version(&self) -> &str {
        &self.artifact.version
    }
}

#[cfg(test)]
mod tests;
