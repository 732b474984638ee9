//! The model's feature schema: name, order, unit and transform of every feature, in one place,
//! and the extraction of a feature vector from an [`Observation`].
//!
//! STUB: interface only; the implementation is being written.

use crate::event::Observation;

/// One feature of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FeatureSpec {
    /// Stable name.
    pub name: &'static str,
    /// Unit before the transform.
    pub unit: &'static str,
    /// Transform applied (`identity`, `log1p`, `min(x, 1)`, …).
    pub transform: &'static str,
}

/// The schema, in vector order.
pub const FEATURES: &[FeatureSpec] = &[];

/// Feature vector of one observation, in [`FEATURES`] order.
pub fn extract(_observation: &Observation) -> Vec<f64> {
    Vec::new()
}
