//! Stage 8, publish: apply decisions (DESIGN §1, §6).
//!
//! For every decision of a batch, in order: downgrade a revocation of an admin-allowlisted
//! session to a flag, count it (`detections_total`), and — in `enforce` mode — add it to the
//! denylist. All of a batch's revocations go to the denylist in one call, so the journal is
//! fsynced once per batch (group commit), and they are visible to `GET /v1/check` when that
//! call returns. Then every decision is written as one JSON line to the decision sink, if any.
//!
//! In live mode (`run`, `demo`) `decided_at` is restamped with the wall clock; `replay` keeps
//! event time so its output is deterministic. `replay` publishes to no denylist at all: an
//! offline run must not revoke production tokens.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use crate::denylist::{DenyKey, Denylist, Entry, Origin, wall_clock_ms};
use crate::event::{Action, Decision, EventTime, Mode};
use crate::metrics::Metrics;

/// A decision could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The denylist journal failed: the revocations of this batch are not durable.
    #[error("denylist: {0}")]
    Denylist(#[from] crate::denylist::DenylistError),
    /// The decision sink failed.
    #[error("decision output: {0}")]
    Output(#[from] std::io::Error),
}

impl PublishError {
    /// Bounded code.
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Denylist(_) => "denylist",
            PublishError::Output(_) => "output",
        }
    }
}

/// Applies decisions to the denylist and the decision sink.
pub struct Publisher {
    denylist: Option<Arc<Denylist>>,
    sink: Option<Box<dyn Write + Send>>,
    metrics: Arc<Metrics>,
    live: bool,
}

impl Publisher {
    /// `denylist`: where enforced revocations go (none for `replay`). `sink`: where decision
    /// records are written as JSON lines. `live`: restamp `decided_at` with the wall clock.
    pub fn new(
        denylist: Option<Arc<Denylist>>,
        sink: Option<Box<dyn Write + Send>>,
        metrics: Arc<Metrics>,
        live: bool,
    ) -> Self {
        Publisher {
            denylist,
            sink,
            metrics,
            live,
        }
    }

    /// Apply one batch of decisions made at `decided`; returns them as applied.
    pub fn publish(
        &mut self,
        mut decisions: Vec<Decision>,
        decided: Instant,
    ) -> Result<Vec<Decision>, PublishError> {
        if decisions.is_empty() {
            return Ok(decisions);
        }
        let now_ms = wall_clock_ms();
        let mut revocations = Vec::new();
        for decision in &mut decisions {
            if self.live {
                decision.decided_at = EventTime(now_ms);
            }
            if decision.action == Action::Revoke
                && self
                    .denylist
                    .as_ref()
                    .is_some_and(|d| d.is_allowlisted(decision.fingerprint))
            {
                decision.action = Action::Flag;
            }
            for reason in &decision.reasons {
                self.metrics
                    .detections
                    .with_label_values(&[
                        reason.code(),
                        decision.action.label(),
                        decision.mode.label(),
                    ])
                    .inc();
            }
            if decision.action == Action::Revoke && decision.mode == Mode::Enforce {
                match decision.key.parse::<DenyKey>() {
                    Ok(key) => revocations.push((
                        key,
                        Entry {
                            reasons: decision
                                .reasons
                                .iter()
                                .map(|r| r.code().to_string())
                                .collect(),
                            origin: Origin::Detector,
                            created_at_ms: now_ms,
                            expires_at_ms: decision.expires_at.0,
                            not_before: None,
                            score: Some(decision.score),
                        },
                    )),
                    Err(e) => {
                        tracing::error!(key = %decision.key, error = %e, "decision with an invalid denylist key")
                    }
                }
            }
        }
        if let Some(denylist) = &self.denylist
            && !revocations.is_empty()
        {
            let count = denylist.revoke_many(revocations)? as u64;
            self.metrics
                .revocations
                .with_label_values(&["detector"])
                .inc_by(count);
            let elapsed = decided.elapsed().as_secs_f64();
            for _ in 0..count {
                self.metrics.revocation_propagation.observe(elapsed);
            }
        }
        if let Some(sink) = &mut self.sink {
            for decision in &decisions {
                serde_json::to_writer(&mut *sink, decision).map_err(std::io::Error::from)?;
                sink.write_all(b"\n")?;
            }
            sink.flush()?;
        }
        for decision in &decisions {
            tracing::info!(
                action = decision.action.label(),
                mode = decision.mode.label(),
                key = %decision.key,
                score = decision.score,
                reasons = ?decision.reasons.iter().map(|r| r.code()).collect::<Vec<_>>(),
                "decision"
            );
        }
        Ok(decisions)
    }
}
