//! The detection pipeline over one batch of lines: parse → identify → enrich → track → score
//! → decide (DESIGN §1).
//!
//! A batch runs in two phases:
//!
//! 1. **Stateless, in parallel** (rayon): parse, identify (verification cache is shared and
//!    concurrent) and enrich every line. Order is kept: results come back by position.
//! 2. **Stateful, in input order** on the calling thread: track, score, decide and record each
//!    event before the next. Running this phase in order, one event at a time, is what makes
//!    per-session state correct and output deterministic: the same input gives the same
//!    decisions, byte for byte, however many cores phase 1 used and however the input was
//!    cut into batches (a file read in 2,048-line batches, a Kafka consumer's polls).
//!
//! The pipeline does no I/O and never reads the wall clock for detection; it reads it only for
//! the `event_lag_seconds` metric. Publishing decisions is `publish`'s job.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::decide::Policy;
use crate::enrich::Enricher;
use crate::event::{
    Action, Assessment, Decision, EventTime, IdentifiedEvent, Identity, Observation, RawLine,
    SourceKind, TokenKind,
};
use crate::identify::{Identifier, RejectReason};
use crate::metrics::Metrics;
use crate::parse::{ParseReason, Parser};
use crate::score::Scorer;
use crate::track::SessionTracker;

/// The stages, built once by `app`.
pub struct Stages {
    /// Stage 2.
    pub parser: Parser,
    /// Stage 3.
    pub identifier: Identifier,
    /// Stage 4 (shared with the GeoIP reloader).
    pub enricher: Arc<Enricher>,
    /// Stage 5 (shared with the sessions API).
    pub tracker: Arc<SessionTracker>,
    /// Stage 6.
    pub scorer: Arc<dyn Scorer>,
    /// Stage 7.
    pub policy: Policy,
    /// `input.max_future_skew`: records dated further ahead of the wall clock are rejected.
    pub max_future_skew: std::time::Duration,
}

/// What happened to one line, for counting.
enum Front {
    /// One event per distinct token of the line (usually one), with every credential's
    /// identification result for the verification counts.
    Ready(Vec<IdentifiedEvent>, Vec<Verification>),
    Anonymous,
    ParseError(ParseReason),
    /// Every credential was rejected; one reason per credential.
    Rejected(Vec<Verification>),
}

/// What became of one line: the `outcome` label of `events_total{source,outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// At least one of its tokens reached detection.
    Processed,
    /// No credential at all.
    Anonymous,
    /// Rejected by parse (or dated in the future).
    ParseError,
    /// Every credential was rejected by identify.
    Rejected,
}

impl Outcome {
    /// Bounded label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Anonymous => "anonymous",
            Outcome::ParseError => "parse_error",
            Outcome::Rejected => "rejected",
        }
    }
}

/// One credential's identification result: the `result` label of
/// `token_verifications_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verification {
    /// Identified: a verified JWT, an opaque token or an upstream fingerprint.
    Identified(TokenKind),
    /// Rejected, with identify's reason.
    Rejected(RejectReason),
}

impl Verification {
    /// Bounded label value: `valid`, `opaque`, `upstream` or the rejection's code.
    pub fn code(self) -> &'static str {
        match self {
            Verification::Identified(kind) => kind.verification_label(),
            Verification::Rejected(reason) => reason.code(),
        }
    }

    /// The token was rejected.
    pub fn is_rejected(self) -> bool {
        matches!(self, Verification::Rejected(_))
    }
}

/// By label, so the summary table lists results alphabetically (the codes are distinct, so
/// this agrees with equality).
impl Ord for Verification {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(other.code())
    }
}

impl PartialOrd for Verification {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Running totals, for the summary table and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Lines seen.
    pub lines: u64,
    /// Events that reached detection.
    pub processed: u64,
    /// Records without a credential.
    pub anonymous: u64,
    /// Rejected by parse, by reason.
    pub parse_errors: BTreeMap<ParseReason, u64>,
    /// Identification results.
    pub verifications: BTreeMap<Verification, u64>,
    /// Decisions by action.
    pub decisions: BTreeMap<Action, u64>,
    /// Latest event time seen.
    pub watermark: Option<EventTime>,
}

impl Totals {
    /// Lines rejected by parse.
    pub fn parse_error_count(&self) -> u64 {
        self.parse_errors.values().sum()
    }
    /// Tokens rejected by identify.
    pub fn rejected_count(&self) -> u64 {
        self.verifications
            .iter()
            .filter(|(k, _)| k.is_rejected())
            .map(|(_, v)| v)
            .sum()
    }
    /// Decisions taken with `action`.
    pub fn decided(&self, action: Action) -> u64 {
        self.decisions.get(&action).copied().unwrap_or(0)
    }
}

/// Runs batches through the stages.
pub struct Pipeline {
    stages: Stages,
    metrics: Arc<Metrics>,
    /// Read once per batch, only to reject records from the future.
    wall_clock_ms: fn() -> i64,
    next_seq: u64,
    batches: u64,
    totals: Totals,
}

/// How many batches between idle-session sweeps.
const EVICT_EVERY_BATCHES: u64 = 16;

impl Pipeline {
    /// A pipeline over `stages`, reporting to `metrics`.
    pub fn new(stages: Stages, metrics: Arc<Metrics>) -> Self {
        Pipeline {
            stages,
            metrics,
            wall_clock_ms: crate::denylist::wall_clock_ms,
            next_seq: 0,
            batches: 0,
            totals: Totals::default(),
        }
    }

    /// The same pipeline with another wall clock (tests of the future-time rejection).
    pub fn with_wall_clock(mut self, wall_clock_ms: fn() -> i64) -> Self {
        self.wall_clock_ms = wall_clock_ms;
        self
    }

    /// Totals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The session tracker (for the API).
    pub fn tracker(&self) -> &Arc<SessionTracker> {
        &self.stages.tracker
    }

    /// Process one batch; returns its decisions in input order.
    pub fn process_batch(&mut self, lines: &[RawLine]) -> Vec<Decision> {
        self.process_batch_observed(lines, |_, _, _| {})
    }

    /// Like [`Pipeline::process_batch`], and shows every event that reached detection to
    /// `inspect` with its observation and assessment, in input order (`train` and `evaluate`
    /// use it; the daemon does not).
    pub fn process_batch_observed(
        &mut self,
        lines: &[RawLine],
        inspect: impl FnMut(&IdentifiedEvent, &Observation, &Assessment),
    ) -> Vec<Decision> {
        self.process(lines, inspect, |_, _| {})
    }

    /// Like [`Pipeline::process_batch`], and tells `rejected` the position in `lines` and
    /// the reason of every line that could not be parsed (the Kafka source sends those to the
    /// dead-letter topic).
    pub fn process_batch_reporting(
        &mut self,
        lines: &[RawLine],
        rejected: impl FnMut(usize, ParseReason),
    ) -> Vec<Decision> {
        self.process(lines, |_, _, _| {}, rejected)
    }

    /// Phase 1 only — parse, identify, enrich, with their counts — returning the identified
    /// events in input order, for detection elsewhere (repartitioning's first stage, which
    /// re-keys them by session onto a topic). `rejected` as in
    /// [`process_batch_reporting`](Self::process_batch_reporting).
    pub fn identify_batch(
        &mut self,
        lines: &[RawLine],
        rejected: impl FnMut(usize, ParseReason),
    ) -> Vec<IdentifiedEvent> {
        self.front_and_count(lines, rejected)
    }

    /// Enrich, then phase 2 — track, score, decide — on events identified elsewhere
    /// (repartitioning's second stage; their `enrichment` is ignored), in the order given.
    /// Counted as processed events of `source`.
    pub fn detect_identified(
        &mut self,
        mut events: Vec<IdentifiedEvent>,
        source: SourceKind,
    ) -> Vec<Decision> {
        let enricher = &self.stages.enricher;
        events.par_iter_mut().with_min_len(64).for_each(|e| {
            e.enrichment = enricher.enrich(e.event.client_ip, e.event.user_agent.as_deref());
        });
        for event in &mut events {
            event.seq = self.next_seq;
            self.next_seq += 1;
        }
        self.batches += 1;
        self.totals.lines += events.len() as u64;
        self.totals.processed += events.len() as u64;
        self.metrics
            .events
            .with_label_values(&[source.label(), Outcome::Processed.label()])
            .inc_by(events.len() as u64);
        self.detect(events, |_, _, _| {})
    }

    fn process(
        &mut self,
        lines: &[RawLine],
        inspect: impl FnMut(&IdentifiedEvent, &Observation, &Assessment),
        rejected: impl FnMut(usize, ParseReason),
    ) -> Vec<Decision> {
        let events = self.front_and_count(lines, rejected);
        self.detect(events, inspect)
    }

    /// Phase 1 and its counts.
    fn front_and_count(
        &mut self,
        lines: &[RawLine],
        mut rejected: impl FnMut(usize, ParseReason),
    ) -> Vec<IdentifiedEvent> {
        let first_seq = self.next_seq;
        self.next_seq += lines.len() as u64;
        self.batches += 1;

        // Phase 1: stateless, parallel, order-preserving.
        let stages = &self.stages;
        let skew_ms = i64::try_from(stages.max_future_skew.as_millis()).unwrap_or(i64::MAX);
        let not_after = EventTime((self.wall_clock_ms)().saturating_add(skew_ms));
        let fronts: Vec<Front> = lines
            .par_iter()
            .enumerate()
            .with_min_len(64)
            .map(|(i, line)| front(stages, line, first_seq + i as u64, not_after))
            .collect();

        // Phase 2: stateful, in order.
        let mut events = Vec::with_capacity(fronts.len());
        let mut counts: BTreeMap<(SourceKind, Outcome), u64> = BTreeMap::new();
        let mut verifications: BTreeMap<Verification, u64> = BTreeMap::new();
        for (position, (front, line)) in fronts.into_iter().zip(lines).enumerate() {
            let outcome = match front {
                Front::Ready(identified, results) => {
                    for result in results {
                        *verifications.entry(result).or_default() += 1;
                    }
                    events.extend(identified);
                    Outcome::Processed
                }
                Front::Anonymous => Outcome::Anonymous,
                Front::ParseError(reason) => {
                    rejected(position, reason);
                    *self.totals.parse_errors.entry(reason).or_default() += 1;
                    self.metrics
                        .parse_errors
                        .with_label_values(&[reason.code()])
                        .inc();
                    Outcome::ParseError
                }
                Front::Rejected(reasons) => {
                    for reason in reasons {
                        *verifications.entry(reason).or_default() += 1;
                    }
                    Outcome::Rejected
                }
            };
            *counts.entry((line.source, outcome)).or_default() += 1;
        }
        self.totals.lines += lines.len() as u64;
        self.totals.processed += events.len() as u64;
        self.totals.anonymous += counts
            .iter()
            .filter(|((_, o), _)| *o == Outcome::Anonymous)
            .map(|(_, n)| n)
            .sum::<u64>();
        for (result, n) in verifications {
            *self.totals.verifications.entry(result).or_default() += n;
            self.metrics
                .token_verifications
                .with_label_values(&[result.code()])
                .inc_by(n);
        }
        for ((source, outcome), n) in counts {
            self.metrics
                .events
                .with_label_values(&[source.label(), outcome.label()])
                .inc_by(n);
        }

        events
    }

    /// Phase 2: stateful, in order.
    fn detect(
        &mut self,
        events: Vec<IdentifiedEvent>,
        mut inspect: impl FnMut(&IdentifiedEvent, &Observation, &Assessment),
    ) -> Vec<Decision> {
        let tracker = &self.stages.tracker;
        let mut decisions = Vec::new();
        // Wall clock for the lag metric only; detection never reads it.
        let now_s = crate::denylist::wall_clock_ms() as f64 / 1000.0;
        for event in &events {
            let (observation, assessment, decision) = detect_event(
                tracker,
                self.stages.scorer.as_ref(),
                &self.stages.policy,
                event,
            );
            inspect(event, &observation, &assessment);
            self.metrics.risk_score.observe(assessment.score);
            self.metrics
                .event_lag
                .observe((now_s - event.event.time.0 as f64 / 1000.0).max(0.0));
            if let Some(decision) = decision {
                *self.totals.decisions.entry(decision.action).or_default() += 1;
                decisions.push(decision);
            }
        }
        if let Some(last) = events.iter().map(|e| e.event.time).max() {
            let watermark = self.totals.watermark.map_or(last, |w| w.max(last));
            self.totals.watermark = Some(watermark);
            if self.batches.is_multiple_of(EVICT_EVERY_BATCHES) {
                tracker.evict_idle(watermark);
            }
        }
        self.metrics.sessions_active.set(tracker.len() as i64);
        // The tracker counts; the counter catches up (one tracker per process).
        let evicted = tracker.capacity_evictions();
        let counted = self.metrics.sessions_evicted.get();
        self.metrics
            .sessions_evicted
            .inc_by(evicted.saturating_sub(counted));
        decisions
    }
}

/// Stages 5–7 for one event: track, score, decide, and record the decision before the next
/// event is tracked. Tracking reads the decisions already taken (a stopped token places
/// nobody), so one event at a time — never a batch tracked first — is what keeps decisions
/// independent of where a source cut its batches. The pipeline, its benches and the policy's
/// scenario tests all go through here.
pub fn detect_event(
    tracker: &SessionTracker,
    scorer: &dyn Scorer,
    policy: &Policy,
    event: &IdentifiedEvent,
) -> (Observation, Assessment, Option<Decision>) {
    let observation = tracker.observe(event);
    let assessment = scorer.score(&observation);
    let fingerprint = event.identity.fingerprint;
    let decision = policy.decide(
        event,
        &observation,
        &assessment,
        tracker.prior_action(fingerprint),
    );
    tracker.record(
        fingerprint,
        &assessment,
        decision.as_ref().map(|d| d.action),
    );
    (observation, assessment, decision)
}

/// Phase 1 for one line: parse, then identify every credential; a token carried twice (say
/// in the header and the query) is one event.
fn front(stages: &Stages, line: &RawLine, seq: u64, not_after: EventTime) -> Front {
    if line.truncated {
        // The source cut it at the cap.
        return Front::ParseError(ParseReason::TooLarge);
    }
    let event = match stages.parser.parse(&line.bytes) {
        Ok(Some(event)) => event,
        Ok(None) => return Front::Anonymous,
        Err(e) => return Front::ParseError(e.reason()),
    };
    if event.time > not_after {
        return Front::ParseError(ParseReason::FutureTime);
    }
    let mut identities: Vec<Identity> = Vec::with_capacity(event.credentials.len());
    let mut results = Vec::with_capacity(event.credentials.len());
    for credential in &event.credentials {
        match stages.identifier.identify(credential, event.time) {
            Ok(identity) => {
                results.push(Verification::Identified(identity.kind));
                if !identities
                    .iter()
                    .any(|i| i.fingerprint == identity.fingerprint)
                {
                    identities.push(identity);
                }
            }
            Err(reason) => results.push(Verification::Rejected(reason)),
        }
    }
    let Some(last) = identities.pop() else {
        return Front::Rejected(results);
    };
    let enrichment = stages
        .enricher
        .enrich(event.client_ip, event.user_agent.as_deref());
    // Usually one token: only extra ones pay for a copy of the event.
    let mut identified: Vec<IdentifiedEvent> = identities
        .into_iter()
        .map(|identity| IdentifiedEvent {
            seq,
            event: event.clone(),
            identity,
            enrichment: enrichment.clone(),
        })
        .collect();
    identified.push(IdentifiedEvent {
        seq,
        event,
        identity: last,
        enrichment,
    });
    Front::Ready(identified, results)
}
