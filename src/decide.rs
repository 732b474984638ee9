//! Stage 7, decide: policy maps an [`Assessment`] to a [`Decision`] (revoke or flag), or none.
//!
//! STUB: interface only; the implementation is being written.

use crate::config::{DetectConfig, TokensConfig};
use crate::event::{Action, Assessment, Decision, IdentifiedEvent, Observation};

/// Threshold policy with `enforce` / `shadow` modes and subject allowlist.
pub struct Policy {}

impl Policy {
    /// From `[detect]` and `[tokens]` (opaque TTL, JWT leeway).
    pub fn new(_detect: &DetectConfig, _tokens: &TokensConfig) -> Self {
        Policy {}
    }
    /// `prior` is the action already taken on this session; no duplicate decision is made.
    pub fn decide(
        &self,
        _event: &IdentifiedEvent,
        _observation: &Observation,
        _assessment: &Assessment,
        _prior: Option<Action>,
    ) -> Option<Decision> {
        None
    }
}
