//! Stage 6, score: an [`Observation`] → an [`Assessment`] (risk in [0, 1], reasons, hard rules).
//!
//! STUB: interface only; the implementation is being written.

use crate::config::DetectConfig;
use crate::event::{Assessment, Observation};

/// Anything that scores observations: the rule-based scorer now, the trained model later.
pub trait Scorer: Send + Sync {
    /// Score a batch (models score in batches; rules just map).
    fn score_batch(&self, observations: &[Observation]) -> Vec<Assessment>;
}

/// Transparent rule-based scorer.
pub struct RuleScorer {}

impl RuleScorer {
    /// From `[detect]`.
    pub fn new(_config: &DetectConfig) -> Self {
        RuleScorer {}
    }
}

impl Scorer for RuleScorer {
    fn score_batch(&self, observations: &[Observation]) -> Vec<Assessment> {
        observations
            .iter()
            .map(|_| Assessment {
                score: 0.0,
                contributions: vec![],
                hard_rule: false,
            })
            .collect()
    }
}
