//! The trained model as a [`Scorer`]: loads the artifact from `models/`, checks its feature
//! schema against the code's, scores batches and explains each score.
//!
//! STUB: interface only; the implementation is being written.

use std::path::Path;

use crate::config::DetectConfig;
use crate::event::{Assessment, Observation};
use crate::score::Scorer;

/// A model artifact that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// Scores with a trained model plus the hard rules.
pub struct ModelScorer {}

impl ModelScorer {
    /// Load and check an artifact.
    pub fn load(_path: &Path, _detect: &DetectConfig) -> Result<ModelScorer, ModelError> {
        Err(ModelError("model scoring is not built yet".into()))
    }
}

impl Scorer for ModelScorer {
    fn score_batch(&self, _observations: &[Observation]) -> Vec<Assessment> {
        Vec::new()
    }

    fn version(&self) -> &str {
        "none"
    }
}
