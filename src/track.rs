//! Stage 5, track: bounded per-session (and per-user) state, turned into an [`Observation`].
//!
//! STUB: interface only; the implementation is being written.

use crate::config::DetectConfig;
use crate::event::{Action, Assessment, EventTime, Fingerprint, IdentifiedEvent, Observation};

/// What `GET /v1/sessions/{fingerprint}` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionSnapshot {}

/// Per-session state keyed by fingerprint; per-user state keyed by `iss`+`sub`.
pub struct SessionTracker {}

impl SessionTracker {
    /// Empty tracker with the configured limits.
    pub fn new(_config: &DetectConfig) -> Self {
        SessionTracker {}
    }
    /// Update the session with one event and return its features. Events of one session must
    /// arrive in order (the pipeline guarantees it).
    pub fn observe(&self, _event: &IdentifiedEvent) -> Observation {
        Observation::default()
    }
    /// Remember the latest assessment and action, for the session view and to suppress
    /// duplicate decisions. Returns the action already taken on this session, if any.
    pub fn record(
        &self,
        _fingerprint: Fingerprint,
        _assessment: &Assessment,
        _action: Option<Action>,
    ) {
    }
    /// The action already taken on this session, if any.
    pub fn prior_action(&self, _fingerprint: Fingerprint) -> Option<Action> {
        None
    }
    /// Forget sessions idle since before `now - idle_timeout` or whose token expired.
    pub fn evict_idle(&self, _now: EventTime) -> usize {
        0
    }
    /// A session's state.
    pub fn snapshot(&self, _fingerprint: Fingerprint) -> Option<SessionSnapshot> {
        None
    }
    /// Sessions held.
    pub fn len(&self) -> usize {
        0
    }
    /// No sessions held.
    pub fn is_empty(&self) -> bool {
        true
    }
}
