//! Stage 8, publish: apply decisions (DESIGN §1, §6).
//!
//! For every decision of a batch, in order: downgrade a revocation or step-up of an
//! admin-allowlisted session to a flag, count it (`detections_total`), and — in `enforce`
//! mode — add it to the denylist: a revocation as a revoke entry, a step-up as a step-up entry
//! (DESIGN §5) whose `sid:` key carries `not_before` = the decision's time in epoch seconds
//! (`decided_at`, the wall clock in live mode), so the session's tokens issued after the
//! challenge pass. All of a batch's entries go to the denylist in one call, so the journal is
//! fsynced once per batch (group commit), and they are visible to `GET /v1/check` when that
//! call returns. Then every decision is written as one JSON line to the decision sink, if any.
//! `revocations_total` and `revocation_propagation_seconds` count revocations only; step-ups
//! are counted by `detections_total{action="step_up"}`.
//!
//! [`Publisher::live`] (`run`, `demo`) restamps `decided_at` with the wall clock;
//! [`Publisher::replay`] keeps event time so its output is deterministic, and publishes to no
//! denylist at all: an offline run must not revoke production tokens.
//!
//! In distributed mode (DESIGN §6) the denylist's durable log is the compacted denylist topic
//! instead of a journal (`publish/topic.rs`, cargo feature `kafka`): the same call produces
//! the batch's entries and returns once the broker acknowledged them.
//!
//! On a failure the batch stops where it failed and the error says which side: a denylist
//! error (`denylist`) means none of the batch's revocations were acknowledged and no record
//! was written; a sink error (`output`) comes after the revocations are durable.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "kafka")]
pub mod topic;

use crate::denylist::{DenyKey, Denylist, Entry, EntryAction, Origin, wall_clock_ms};
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

/// Applies decisions to the denylist and the decision sink. Build it with
/// [`Publisher::live`] (the daemon) or [`Publisher::replay`] (offline).
pub struct Publisher {
    denylist: Option<Arc<Denylist>>,
    sink: Option<Box<dyn Write + Send>>,
    metrics: Arc<Metrics>,
    clock: DecidedAt,
}

/// What a decision record's `decided_at` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecidedAt {
    /// The wall clock when published (`run`, `demo`): when the revocation took effect.
    WallClock,
    /// The event time `decide` stamped (`replay`): the same input gives the same bytes.
    EventTime,
}

impl Publisher {
    /// The daemon's publisher (`run`, `demo`): enforced revocations go to `denylist`, and
    /// `decided_at` is restamped with the wall clock. No decision records unless
    /// [`with_sink`](Self::with_sink) adds a sink.
    pub fn live(denylist: Arc<Denylist>, metrics: Arc<Metrics>) -> Self {
        Publisher {
            denylist: Some(denylist),
            sink: None,
            metrics,
            clock: DecidedAt::WallClock,
        }
    }

    /// `replay`'s publisher: decision records to `sink`, on event time, and no denylist at
    /// all — an offline run must not revoke production tokens, whatever `detect.mode` says.
    pub fn replay(sink: Box<dyn Write + Send>, metrics: Arc<Metrics>) -> Self {
        Publisher {
            denylist: None,
            sink: Some(sink),
            metrics,
            clock: DecidedAt::EventTime,
        }
    }

    /// Also write every decision record, as a JSON line, to `sink`.
    pub fn with_sink(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.sink = Some(sink);
        self
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
        let mut step_ups = Vec::new();
        for decision in &mut decisions {
            if self.clock == DecidedAt::WallClock {
                decision.decided_at = EventTime(now_ms);
            }
            if matches!(decision.action, Action::Revoke | Action::StepUp)
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
            // Shadow mode records what would have been done; only enforce touches the
            // denylist (and `replay` has none to touch).
            let action = match decision.action {
                Action::Revoke => EntryAction::Revoke,
                Action::StepUp => EntryAction::StepUp,
                Action::Flag => continue,
            };
            if decision.mode == Mode::Enforce && self.denylist.is_some() {
                let not_before = match (&decision.key, action) {
                    (DenyKey::Sid { .. }, EntryAction::StepUp) => {
                        Some(decision.decided_at.0.div_euclid(1000))
                    }
                    _ => None,
                };
                let entry = Entry {
                    action,
                    reasons: decision
                        .reasons
                        .iter()
                        .map(|r| r.code().to_string())
                        .collect(),
                    origin: Origin::Detector,
                    created_at_ms: now_ms,
                    expires_at_ms: decision.expires_at.0,
                    not_before,
                    score: Some(decision.score),
                };
                match action {
                    EntryAction::Revoke => revocations.push((decision.key.clone(), entry)),
                    EntryAction::StepUp => step_ups.push((decision.key.clone(), entry)),
                }
            }
        }
        if let Some(denylist) = &self.denylist
            && !(revocations.is_empty() && step_ups.is_empty())
        {
            let revoking = revocations.len();
            revocations.append(&mut step_ups);
            let applied = denylist.revoke_many(revocations)?;
            // Revocations come first and are skipped only for a token an admin allowlisted
            // since the check above (a rare race): then this may count one too many.
            let count = applied.min(revoking) as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DenyKey;
    use crate::event::{Evidence, Fingerprint, Reason};
    use std::sync::Mutex;

    /// A sink the test can read back after the publisher took it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().expect("sink").clone();
            String::from_utf8(bytes)
                .expect("UTF-8")
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
                .collect()
        }
    }

    /// A sink whose every write fails.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }

    fn fp(n: u8) -> Fingerprint {
        Fingerprint([n; 16])
    }

    fn decision(n: u8, action: Action, mode: Mode) -> Decision {
        let event_time = EventTime::from_secs(1_800_000_000);
        Decision {
            action,
            mode,
            key: DenyKey::Fingerprint(fp(n)),
            fingerprint: fp(n),
            iss: None,
            sub: None,
            jti: None,
            score: 0.9,
            reasons: vec![Reason::ImpossibleTravel],
            evidence: Evidence::default(),
            event_time,
            decided_at: event_time,
            // Far ahead of the wall clock, so the entry is live when the test looks.
            expires_at: EventTime(wall_clock_ms() + 3_600_000),
            seq: u64::from(n),
        }
    }

    fn denylist() -> Arc<Denylist> {
        Arc::new(Denylist::open(None).expect("in-memory denylist"))
    }

    fn detections(metrics: &Metrics, action: Action, mode: Mode) -> u64 {
        metrics
            .detections
            .with_label_values(&[
                Reason::ImpossibleTravel.code(),
                action.label(),
                mode.label(),
            ])
            .get()
    }

    #[test]
    fn enforce_writes_denylist_and_records_shadow_only_records() {
        // (mode, on the denylist afterwards)
        for (mode, enforced) in [(Mode::Enforce, true), (Mode::Shadow, false)] {
            let metrics = Arc::new(Metrics::new());
            let deny = denylist();
            let sink = Shared::default();
            let mut publisher =
                Publisher::live(deny.clone(), metrics.clone()).with_sink(Box::new(sink.clone()));
            let published = publisher
                .publish(
                    vec![
                        decision(1, Action::Revoke, mode),
                        decision(2, Action::Flag, mode),
                    ],
                    Instant::now(),
                )
                .expect("published");
            assert_eq!(published.len(), 2, "{mode:?}");
            assert_eq!(
                deny.get(&DenyKey::Fingerprint(fp(1))).is_some(),
                enforced,
                "{mode:?}: revocation on the denylist"
            );
            assert!(
                deny.get(&DenyKey::Fingerprint(fp(2))).is_none(),
                "{mode:?}: a flag is never enforced"
            );
            assert_eq!(deny.len(), usize::from(enforced), "{mode:?}");
            let lines = sink.lines();
            assert_eq!(lines.len(), 2, "{mode:?}: every decision is recorded");
            assert_eq!(lines[0]["key"], format!("fp:{}", fp(1)));
            assert_eq!(lines[0]["mode"], mode.label());
            assert_eq!(lines[0]["action"], "revoke");
            assert_eq!(lines[1]["action"], "flag");
            assert_eq!(
                metrics.revocations.with_label_values(&["detector"]).get(),
                u64::from(enforced),
                "{mode:?}"
            );
            assert_eq!(detections(&metrics, Action::Revoke, mode), 1, "{mode:?}");
            assert_eq!(detections(&metrics, Action::Flag, mode), 1, "{mode:?}");
        }
    }

    #[test]
    fn live_restamps_decided_at_and_replay_keeps_event_time() {
        let before = wall_clock_ms();
        let mut live = Publisher::live(denylist(), Arc::new(Metrics::new()));
        let out = live
            .publish(
                vec![decision(1, Action::Flag, Mode::Enforce)],
                Instant::now(),
            )
            .expect("published");
        assert!(out[0].decided_at.0 >= before, "{:?}", out[0].decided_at);
        assert_ne!(out[0].decided_at, out[0].event_time);

        let sink = Shared::default();
        let mut replay = Publisher::replay(Box::new(sink.clone()), Arc::new(Metrics::new()));
        let out = replay
            .publish(
                vec![decision(1, Action::Revoke, Mode::Enforce)],
                Instant::now(),
            )
            .expect("published");
        assert_eq!(out[0].decided_at, out[0].event_time);
        assert_eq!(sink.lines()[0]["decided_at"], "2027-01-15T08:00:00Z");
    }

    #[test]
    fn replay_never_revokes_even_in_enforce_mode() {
        let metrics = Arc::new(Metrics::new());
        let sink = Shared::default();
        let mut replay = Publisher::replay(Box::new(sink.clone()), metrics.clone());
        replay
            .publish(
                vec![decision(1, Action::Revoke, Mode::Enforce)],
                Instant::now(),
            )
            .expect("published");
        assert_eq!(sink.lines().len(), 1);
        assert_eq!(
            metrics.revocations.with_label_values(&["detector"]).get(),
            0
        );
        // Counted as what was decided: the record says enforce.
        assert_eq!(detections(&metrics, Action::Revoke, Mode::Enforce), 1);
    }

    #[test]
    fn an_allowlisted_session_is_flagged_not_revoked() {
        let deny = denylist();
        deny.unrevoke(&DenyKey::Fingerprint(fp(1)), true)
            .expect("allowlisted");
        assert!(deny.is_allowlisted(fp(1)));
        let metrics = Arc::new(Metrics::new());
        let mut publisher = Publisher::live(deny.clone(), metrics.clone());
        let out = publisher
            .publish(
                vec![
                    decision(1, Action::Revoke, Mode::Enforce),
                    decision(2, Action::Revoke, Mode::Enforce),
                ],
                Instant::now(),
            )
            .expect("published");
        assert_eq!(out[0].action, Action::Flag);
        assert_eq!(out[1].action, Action::Revoke);
        assert!(deny.get(&DenyKey::Fingerprint(fp(1))).is_none());
        assert!(deny.get(&DenyKey::Fingerprint(fp(2))).is_some());
        assert_eq!(detections(&metrics, Action::Flag, Mode::Enforce), 1);
        assert_eq!(detections(&metrics, Action::Revoke, Mode::Enforce), 1);
    }

    #[test]
    fn step_ups_are_enforced_as_step_up_entries_with_not_before_on_sid_keys() {
        for mode in [Mode::Enforce, Mode::Shadow] {
            let deny = denylist();
            deny.unrevoke(&DenyKey::Fingerprint(fp(3)), true)
                .expect("allowlisted");
            let metrics = Arc::new(Metrics::new());
            let sink = Shared::default();
            let mut publisher =
                Publisher::live(deny.clone(), metrics.clone()).with_sink(Box::new(sink.clone()));
            let sid: DenyKey = "sid:https://id.example.com:s-1".parse().expect("key");
            let mut session = decision(1, Action::StepUp, mode);
            session.key = sid.clone();
            let before = wall_clock_ms() / 1000;
            let out = publisher
                .publish(
                    vec![
                        session,
                        decision(2, Action::StepUp, mode),
                        decision(3, Action::StepUp, mode),
                    ],
                    Instant::now(),
                )
                .expect("published");
            let actions: Vec<_> = out.iter().map(|d| d.action).collect();
            assert_eq!(
                actions,
                [Action::StepUp, Action::StepUp, Action::Flag],
                "an allowlisted token is flagged, as with a revocation"
            );
            let lines = sink.lines();
            assert_eq!(lines[0]["action"], "step_up");
            assert_eq!(lines[2]["action"], "flag");
            assert_eq!(detections(&metrics, Action::StepUp, mode), 2, "{mode:?}");
            assert_eq!(
                metrics.revocations.with_label_values(&["detector"]).get(),
                0,
                "a step-up is not a revocation"
            );
            if mode == Mode::Shadow {
                assert!(deny.is_empty(), "shadow mode enforces nothing");
                continue;
            }
            let entry = deny.get(&sid).expect("session stepped up");
            assert_eq!(entry.action, EntryAction::StepUp);
            assert_eq!(entry.not_before, Some(out[0].decided_at.0.div_euclid(1000)));
            assert!(
                entry.not_before >= Some(before),
                "the decision's (wall-clock) time"
            );
            let opaque = deny
                .get(&DenyKey::Fingerprint(fp(2)))
                .expect("token stepped up");
            assert_eq!(
                (opaque.action, opaque.not_before),
                (EntryAction::StepUp, None)
            );
            assert!(deny.get(&DenyKey::Fingerprint(fp(3))).is_none());
        }
    }

    #[test]
    fn a_sink_failure_is_an_output_error_after_the_revocations_are_durable() {
        let deny = denylist();
        let mut publisher =
            Publisher::live(deny.clone(), Arc::new(Metrics::new())).with_sink(Box::new(Broken));
        let err = publisher
            .publish(
                vec![decision(1, Action::Revoke, Mode::Enforce)],
                Instant::now(),
            )
            .expect_err("the sink fails");
        assert_eq!(err.code(), "output");
        assert!(
            deny.get(&DenyKey::Fingerprint(fp(1))).is_some(),
            "the revocation does not wait for the record"
        );
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let sink = Shared::default();
        let mut publisher =
            Publisher::live(denylist(), Arc::new(Metrics::new())).with_sink(Box::new(sink.clone()));
        assert!(
            publisher
                .publish(vec![], Instant::now())
                .expect("ok")
                .is_empty()
        );
        assert!(sink.lines().is_empty());
    }
}
