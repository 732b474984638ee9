//! Detection quality from a detector's stops and ground truth: per attack type the share of
//! stolen tokens stopped, attacker requests served before the stop and time to detect; honest
//! sessions revoked or stepped up; session-level precision / recall / F1 (of stops and of
//! revocations alone); and precision–recall curves over session scores.
//!
//! Data flow: `evaluate` runs every detector over the same events, turns each detector's
//! output into [`Stop`]s (tokenwatch: its `revoke` and `step_up` decisions; a baseline: its
//! first alert per token, a revocation — baselines only revoke) and per-session maximum
//! scores, and hands them here with the [`Truth`] gathered from the labels. Pure: no I/O, no
//! clock.
//!
//! Definitions (issues 3 and 15, made exact):
//! - A **stop** is a revocation or a step-up (the middleware challenges the user to
//!   authenticate again). A step-up is a stop, never a revocation: every revocation-only
//!   number below ignores step-ups.
//! - An attacked session is **stopped** when any of its tokens is revoked or stepped up at or
//!   after its `attack_start`, and **detected** (revocation-only) when one is revoked then. A
//!   session counts once however many stops it gets (a revocation after a step-up adds
//!   nothing); times and requests are measured to the first.
//! - **Attacker requests served before the stop**: the attacker's requests (those with
//!   `Labels::is_attacker_request`) from the attack start up to and including the request
//!   whose log line led to the first stop. An access log line is written once its request
//!   was answered, so that request was served too; 1 means the attacker's first request was
//!   the one that stopped the token, 0 that a victim's request stopped it before the attacker
//!   made one. The revocation-only "requests until revoked, the revoking one included" is the
//!   same count, to the first revocation. Time to detect is in seconds of event time from the
//!   attack start to the first revocation.
//! - A revocation or step-up is **false** when its session is benign, or attacked but the
//!   decision came before `attack_start` (the owner was challenged or cut off before any
//!   attacker showed up). A benign session stopped after another session of its user came
//!   under attack is **collateral**: the account is in a thief's hands, and cutting off the
//!   user's other sessions is what incident response does anyway. It is not false (the
//!   collateral column counts such revocations). **Honest sessions revoked per 1,000** counts sessions with a false revocation per
//!   thousand benign-labelled sessions; **honest sessions stepped up per 1,000** counts those
//!   with a false step-up and no false revocation, per thousand benign-labelled sessions;
//!   false revocations per million counts false revocation events per million requests that
//!   are not the attacker's.
//! - Session level: positives are attacked sessions; a session is predicted positive when any
//!   of its tokens was stopped (revoked, for the revocation-only numbers) at all; a true
//!   positive is a stopped (detected) attacked session.
//! - Percentiles are nearest-rank (the value at rank ⌈p·n⌉), so a median number of requests
//!   is a number of requests that happened, not a half.
//!
//! What it does NOT do: run detectors, read files or decide what a stop is.

use crate::event::EventTime;
use crate::lab::labels::{ATTACK_TYPES, SessionLabel};

/// What a detector did to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// Revoked: the check answers 401 until the token expires.
    Revoke,
    /// Stepped up: the user is asked to authenticate again (tokenwatch only).
    StepUp,
}

/// One stop of a token by a detector: a revocation or a step-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// Index of the token's session in [`Truth::sessions`].
    pub session: usize,
    /// Input position of the event the decision was made on.
    pub seq: u64,
    /// Its event time.
    pub time: EventTime,
    /// Revocation or step-up.
    pub kind: StopKind,
}

impl Stop {
    /// Whether the stop is a revocation.
    pub fn is_revocation(&self) -> bool {
        self.kind == StopKind::Revoke
    }
}

/// Ground truth for one run, shared by every detector row.
#[derive(Debug, Clone, Copy)]
pub struct Truth<'a> {
    /// Every labelled session.
    pub sessions: &'a [SessionLabel],
    /// Per session (same index): input positions of the attacker's requests, ascending.
    pub attacker_requests: &'a [Vec<u64>],
    /// Requests of labelled tokens that are not the attacker's.
    pub benign_requests: u64,
}

/// Median and 95th percentile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median (nearest rank).
    pub median: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
}

/// Quality on one attack type.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackTypeMetrics {
    /// The attack type.
    pub attack_type: String,
    /// Attacked sessions of this type.
    pub sessions: usize,
    /// Of which stopped (revoked or stepped up at or after the attack start).
    pub stopped: usize,
    /// Attacker requests served before the stop, over stopped sessions.
    pub served: Option<Spread>,
    /// Of which detected (revoked at or after the attack start).
    pub detected: usize,
    /// Time to detect in seconds, over detected sessions.
    pub seconds: Option<Spread>,
    /// Time to detect in attacker requests, over detected sessions.
    pub requests: Option<Spread>,
}

impl AttackTypeMetrics {
    /// Detected / attacked, revocations only (`None` when no session has this type).
    pub fn recall(&self) -> Option<f64> {
        ratio(self.detected as f64, self.sessions as f64)
    }
    /// Stopped / attacked (`None` when no session has this type).
    pub fn stop_rate(&self) -> Option<f64> {
        ratio(self.stopped as f64, self.sessions as f64)
    }
}

/// Everything measured for one detector row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowMetrics {
    /// Per attack type, in [`attack_types`] order.
    pub by_type: Vec<AttackTypeMetrics>,
    /// Benign-labelled sessions.
    pub benign_sessions: usize,
    /// Sessions with at least one false revocation.
    pub falsely_revoked_sessions: usize,
    /// Sessions with at least one false step-up and no false revocation.
    pub falsely_stepped_up_sessions: usize,
    /// False revocation events.
    pub false_revocations: usize,
    /// Benign sessions revoked only after another session of the same user came under attack:
    /// collateral of a real attack, counted apart from false revocations.
    pub collateral_sessions: usize,
    /// Requests that are not the attacker's.
    pub benign_requests: u64,
    /// Attacked sessions.
    pub attacked_sessions: usize,
    /// Sessions with any revocation.
    pub revoked_sessions: usize,
    /// Attacked sessions detected (revoked at or after the attack start).
    pub true_positives: usize,
    /// Sessions with any stop.
    pub stopped_sessions: usize,
    /// Attacked sessions stopped at or after the attack start.
    pub stop_true_positives: usize,
    /// Attacker requests served before the stop, over every stopped attacked session.
    pub served: Option<Spread>,
}

impl RowMetrics {
    /// Honest sessions revoked per thousand benign sessions (sessions with a false
    /// revocation).
    pub fn false_sessions_per_thousand(&self) -> Option<f64> {
        ratio(
            self.falsely_revoked_sessions as f64 * 1e3,
            self.benign_sessions as f64,
        )
    }
    /// Honest sessions stepped up and not revoked, per thousand benign sessions.
    pub fn stepped_up_sessions_per_thousand(&self) -> Option<f64> {
        ratio(
            self.falsely_stepped_up_sessions as f64 * 1e3,
            self.benign_sessions as f64,
        )
    }
    /// False revocations per million benign requests.
    pub fn false_revocations_per_million(&self) -> Option<f64> {
        ratio(
            self.false_revocations as f64 * 1e6,
            self.benign_requests as f64,
        )
    }
    /// Session-level precision of revocations.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.true_positives as f64, self.revoked_sessions as f64)
    }
    /// Session-level recall of revocations.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.true_positives as f64, self.attacked_sessions as f64)
    }
    /// Session-level F1 of revocations (0 when nothing was detected).
    pub fn f1(&self) -> Option<f64> {
        f1(self.precision(), self.recall())
    }
    /// Session-level precision of stops.
    pub fn stop_precision(&self) -> Option<f64> {
        ratio(
            self.stop_true_positives as f64,
            self.stopped_sessions as f64,
        )
    }
    /// Session-level recall of stops.
    pub fn stop_recall(&self) -> Option<f64> {
        ratio(
            self.stop_true_positives as f64,
            self.attacked_sessions as f64,
        )
    }
    /// Session-level F1 of stops (0 when nothing was stopped).
    pub fn stop_f1(&self) -> Option<f64> {
        f1(self.stop_precision(), self.stop_recall())
    }
    /// The metrics of one attack type.
    pub fn of_type(&self, attack_type: &str) -> Option<&AttackTypeMetrics> {
        self.by_type.iter().find(|t| t.attack_type == attack_type)
    }
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// F1 of a precision and a recall; `None` without a recall, 0 without a precision.
fn f1(precision: Option<f64>, recall: Option<f64>) -> Option<f64> {
    let (p, r) = (precision.unwrap_or(0.0), recall?);
    Some(if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    })
}

/// Attack types present in `sessions`: the simulator's ([`ATTACK_TYPES`]) in their order
/// first, then any other (an older or newer simulator's) alphabetically.
pub fn attack_types(sessions: &[SessionLabel]) -> Vec<String> {
    let mut others: Vec<&str> = sessions
        .iter()
        .filter_map(|s| s.attack_type.as_deref())
        .filter(|t| !ATTACK_TYPES.contains(t))
        .collect();
    others.sort_unstable();
    others.dedup();
    ATTACK_TYPES
        .iter()
        .copied()
        .filter(|t| {
            sessions
                .iter()
                .any(|s| s.attack_type.as_deref() == Some(*t))
        })
        .chain(others)
        .map(str::to_string)
        .collect()
}

/// Nearest-rank percentile `p` in (0, 1] of `values` (any order); `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

fn spread(values: &[f64]) -> Option<Spread> {
    Some(Spread {
        median: percentile(values, 0.5)?,
        p95: percentile(values, 0.95)?,
    })
}

/// One session's false stops — those before `cut_off` (`None`: every stop is false) — and
/// whether its revocations were all collateral.
#[derive(Debug, Default)]
struct Honest {
    false_revocations: usize,
    false_step_up: bool,
    collateral: bool,
}

fn honest(stops: &[Stop], cut_off: Option<EventTime>) -> Honest {
    let is_false = |s: &&Stop| cut_off.is_none_or(|at| s.time < at);
    let mut out = Honest::default();
    for stop in stops.iter().filter(is_false) {
        match stop.kind {
            StopKind::Revoke => out.false_revocations += 1,
            StopKind::StepUp => out.false_step_up = true,
        }
    }
    out.collateral = out.false_revocations == 0 && stops.iter().any(Stop::is_revocation);
    out
}

/// Score one detector's stops against the truth.
pub fn measure(truth: &Truth<'_>, stops: &[Stop]) -> RowMetrics {
    let n = truth.sessions.len();
    let mut per_session: Vec<Vec<Stop>> = vec![Vec::new(); n];
    for s in stops.iter().filter(|s| s.session < n) {
        per_session[s.session].push(*s);
    }

    let user_attack_start = crate::lab::labels::attack_starts_by_user(truth.sessions);
    let types = attack_types(truth.sessions);
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); types.len()];
    let mut requests: Vec<Vec<f64>> = vec![Vec::new(); types.len()];
    let mut served: Vec<Vec<f64>> = vec![Vec::new(); types.len()];
    let mut by_type: Vec<AttackTypeMetrics> = types
        .iter()
        .map(|t| AttackTypeMetrics {
            attack_type: t.clone(),
            sessions: 0,
            stopped: 0,
            served: None,
            detected: 0,
            seconds: None,
            requests: None,
        })
        .collect();
    let mut m = RowMetrics {
        by_type: Vec::new(),
        benign_sessions: 0,
        falsely_revoked_sessions: 0,
        falsely_stepped_up_sessions: 0,
        false_revocations: 0,
        collateral_sessions: 0,
        benign_requests: truth.benign_requests,
        attacked_sessions: 0,
        revoked_sessions: 0,
        true_positives: 0,
        stopped_sessions: 0,
        stop_true_positives: 0,
        served: None,
    };

    for (i, (label, stops)) in truth.sessions.iter().zip(&mut per_session).enumerate() {
        // Stable: a step-up and a revocation on one event keep their order.
        stops.sort_by_key(|s| s.seq);
        m.stopped_sessions += usize::from(!stops.is_empty());
        m.revoked_sessions += usize::from(stops.iter().any(Stop::is_revocation));
        // A session labelled attack without a start time has no attack to find: its stops
        // can only be judged false, like a benign session's.
        let attack = label.attack_type.as_deref().zip(label.attack_start);
        let cut_off = match attack {
            Some((_, start)) => Some(start),
            None => user_attack_start.get(&label.user).copied(),
        };
        let h = honest(stops, cut_off);
        m.false_revocations += h.false_revocations;
        m.falsely_revoked_sessions += usize::from(h.false_revocations > 0);
        m.falsely_stepped_up_sessions += usize::from(h.false_revocations == 0 && h.false_step_up);
        let Some((attack_type, start)) = attack else {
            m.benign_sessions += usize::from(!label.is_attack());
            m.collateral_sessions += usize::from(h.collateral);
            continue;
        };
        m.attacked_sessions += 1;
        let Some(t) = types.iter().position(|t| t == attack_type) else {
            continue;
        };
        by_type[t].sessions += 1;
        let attacker = truth.attacker_requests.get(i).map_or(&[][..], |v| v);
        let served_by = |stop: &Stop| attacker.partition_point(|seq| *seq <= stop.seq) as f64;
        if let Some(first) = stops.iter().find(|s| s.time >= start) {
            m.stop_true_positives += 1;
            by_type[t].stopped += 1;
            served[t].push(served_by(first));
        }
        if let Some(hit) = stops.iter().find(|s| s.is_revocation() && s.time >= start) {
            m.true_positives += 1;
            by_type[t].detected += 1;
            seconds[t].push(hit.time.seconds_since(start));
            requests[t].push(served_by(hit));
        }
    }
    for (t, metrics) in by_type.iter_mut().enumerate() {
        metrics.seconds = spread(&seconds[t]);
        metrics.requests = spread(&requests[t]);
        metrics.served = spread(&served[t]);
    }
    m.served = spread(&served.concat());
    m.by_type = by_type;
    m
}

/// A session's highest scores, split at its attack start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionScore {
    /// The session is attacked (has an attack start).
    pub attacked: bool,
    /// Highest score before the attack started (the whole session, if benign).
    pub before: f64,
    /// Highest score at or after the attack started (attacked sessions only).
    pub after: f64,
}

impl SessionScore {
    /// Fold in one event's score.
    pub fn observe(&mut self, score: f64, after_attack_start: bool) {
        // NaN never raises a maximum.
        let slot = if after_attack_start {
            &mut self.after
        } else {
            &mut self.before
        };
        if score > *slot {
            *slot = score;
        }
    }
}

/// One point of a precision–recall curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrPoint {
    /// Revoke at scores ≥ this.
    pub threshold: f64,
    /// Session-level precision.
    pub precision: f64,
    /// Session-level recall.
    pub recall: f64,
}

/// The precision–recall curve of a threshold swept over sessions' maximum scores, highest
/// threshold first. At threshold τ a session is predicted positive when its highest score
/// anywhere is ≥ τ, and a true positive when it is attacked and its highest score at or after
/// the attack start is ≥ τ — the same definitions as [`measure`].
pub fn pr_curve(sessions: &[SessionScore]) -> Vec<PrPoint> {
    let attacked = sessions.iter().filter(|s| s.attacked).count();
    if attacked == 0 {
        return Vec::new();
    }
    let descending = |v: &mut Vec<f64>| v.sort_by(|a, b| b.total_cmp(a));
    let mut predicted: Vec<f64> = sessions
        .iter()
        .map(|s| s.before.max(s.after))
        .filter(|s| *s > 0.0)
        .collect();
    let mut hits: Vec<f64> = sessions
        .iter()
        .filter(|s| s.attacked)
        .map(|s| s.after)
        .filter(|s| *s > 0.0)
        .collect();
    descending(&mut predicted);
    descending(&mut hits);
    // Every distinct score at which a session becomes predicted positive or a true positive
    // (a true positive's score after the attack start may be below its highest score).
    let mut thresholds: Vec<f64> = predicted.iter().chain(&hits).copied().collect();
    descending(&mut thresholds);
    thresholds.dedup();
    let mut out = Vec::new();
    let (mut p, mut h) = (0, 0);
    for threshold in thresholds {
        while p < predicted.len() && predicted[p] >= threshold {
            p += 1;
        }
        while h < hits.len() && hits[h] >= threshold {
            h += 1;
        }
        out.push(PrPoint {
            threshold,
            precision: h as f64 / p as f64,
            recall: h as f64 / attacked as f64,
        });
    }
    out
}

/// Average precision: the area under the step curve, Σ (Rₙ − Rₙ₋₁) · Pₙ.
pub fn average_precision(curve: &[PrPoint]) -> f64 {
    let mut last_recall = 0.0;
    let mut area = 0.0;
    for point in curve {
        area += (point.recall - last_recall) * point.precision;
        last_recall = point.recall;
    }
    area
}

/// At most about `max_points` points of `curve` for drawing: keeps the ends and every point
/// that moves a visible distance from the last kept one.
pub fn thin(curve: &[PrPoint], max_points: usize) -> Vec<PrPoint> {
    let step = 1.0 / max_points.max(1) as f64;
    let mut out: Vec<PrPoint> = Vec::new();
    for (i, point) in curve.iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(last) => {
                i + 1 == curve.len()
                    || (point.recall - last.recall).abs() >= step
                    || (point.precision - last.precision).abs() >= step
            }
        };
        if keep {
            out.push(*point);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn session(n: u64, attack: Option<(&str, i64)>) -> SessionLabel {
        SessionLabel {
            session: n,
            user: format!("user-{n}"),
            sid: None,
            tokens: vec![format!("{n:032x}")],
            label: if attack.is_some() { "attack" } else { "benign" }.into(),
            attack_type: attack.map(|(t, _)| t.to_string()),
            attack_start: attack.map(|(_, at)| EventTime(at)),
            attacker_ips: vec![],
            behaviours: vec![],
        }
    }

    fn revoke(session: usize, seq: u64, time: i64) -> Stop {
        Stop {
            session,
            seq,
            time: EventTime(time),
            kind: StopKind::Revoke,
        }
    }

    fn step_up(session: usize, seq: u64, time: i64) -> Stop {
        Stop {
            kind: StopKind::StepUp,
            ..revoke(session, seq, time)
        }
    }

    /// Six sessions: three attacked (two far replays, one low-and-slow), three benign.
    fn fixture() -> (Vec<SessionLabel>, Vec<Vec<u64>>) {
        let sessions = vec![
            session(0, Some(("far_replay_active", 10 * MIN))),
            session(1, Some(("far_replay_active", 20 * MIN))),
            session(2, Some(("low_and_slow", 30 * MIN))),
            session(3, None),
            session(4, None),
            session(5, None),
        ];
        let attacker = vec![
            vec![100, 105, 110, 120],
            vec![200, 201, 202],
            vec![300, 310, 320, 330, 340],
            vec![],
            vec![],
            vec![],
        ];
        (sessions, attacker)
    }

    #[test]
    fn recall_and_time_to_detect_in_seconds_and_requests() {
        let (sessions, attacker) = fixture();
        let truth = Truth {
            sessions: &sessions,
            attacker_requests: &attacker,
            benign_requests: 200_000,
        };
        let revocations = [
            // Session 0: revoked on the attacker's third request, 90 s in.
            revoke(0, 110, 10 * MIN + 90_000),
            // Session 1: a false revocation before the attack, then a victim's request after
            // the attacker's first two requests revokes another of its tokens 30 s in.
            revoke(1, 150, 15 * MIN),
            revoke(1, 201, 20 * MIN + 30_000),
            // Session 2: never detected. Session 4: benign, revoked twice (two tokens).
            revoke(4, 400, 40 * MIN),
            revoke(4, 401, 41 * MIN),
        ];
        let m = measure(&truth, &revocations);
        assert_eq!(
            m.by_type
                .iter()
                .map(|t| t.attack_type.as_str())
                .collect::<Vec<_>>(),
            ["far_replay_active", "low_and_slow"]
        );
        let far = m.of_type("far_replay_active").unwrap();
        assert_eq!((far.sessions, far.detected), (2, 2));
        assert_eq!(far.recall(), Some(1.0));
        // Nearest rank over [30, 90]: median is the 1st, p95 the 2nd.
        assert_eq!(
            far.seconds,
            Some(Spread {
                median: 30.0,
                p95: 90.0
            })
        );
        // Requests up to and including the revoking event: [3, 2].
        assert_eq!(
            far.requests,
            Some(Spread {
                median: 2.0,
                p95: 3.0
            })
        );
        let slow = m.of_type("low_and_slow").unwrap();
        assert_eq!(
            (slow.sessions, slow.detected, slow.recall()),
            (1, 0, Some(0.0))
        );
        assert_eq!((slow.seconds, slow.requests), (None, None));

        // False: session 1's early revocation and session 4's two.
        assert_eq!(m.false_revocations, 3);
        assert_eq!(m.falsely_revoked_sessions, 2);
        assert_eq!(m.benign_sessions, 3);
        // 2 sessions per 3 benign sessions = 666.7 per thousand; 3 per 200k = 15 per million.
        assert!((m.false_sessions_per_thousand().unwrap() - 2000.0 / 3.0).abs() < 1e-9);
        assert!((m.false_revocations_per_million().unwrap() - 15.0).abs() < 1e-9);
        // Sessions revoked: 0, 1, 4; true positives 0, 1. Precision 2/3, recall 2/3.
        assert_eq!((m.revoked_sessions, m.true_positives), (3, 2));
        assert!((m.precision().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.f1().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_sibling_session_revoked_after_its_user_was_attacked_is_collateral() {
        let (mut sessions, attacker) = fixture();
        // Session 5 is the second device of session 0's user, attacked at 10 min.
        sessions[5].user = sessions[0].user.clone();
        let truth = Truth {
            sessions: &sessions,
            attacker_requests: &attacker,
            benign_requests: 1000,
        };
        let after = measure(&truth, &[revoke(5, 500, 12 * MIN)]);
        assert_eq!((after.false_revocations, after.collateral_sessions), (0, 1));
        assert_eq!(after.falsely_revoked_sessions, 0);
        // Before the user's attack started, it is a false revocation like any other.
        let before = measure(&truth, &[revoke(5, 50, 5 * MIN)]);
        assert_eq!(
            (before.false_revocations, before.collateral_sessions),
            (1, 0)
        );
        // Another user's benign session is never collateral.
        let other = measure(&truth, &[revoke(4, 500, 12 * MIN)]);
        assert_eq!((other.false_revocations, other.collateral_sessions), (1, 0));
    }

    #[test]
    fn revoking_the_attackers_first_request_is_one_request_and_zero_seconds() {
        let (sessions, attacker) = fixture();
        let truth = Truth {
            sessions: &sessions,
            attacker_requests: &attacker,
            benign_requests: 1,
        };
        let m = measure(&truth, &[revoke(2, 300, 30 * MIN)]);
        let slow = m.of_type("low_and_slow").unwrap();
        assert_eq!(
            (slow.seconds.unwrap().median, slow.requests.unwrap().median),
            (0.0, 1.0)
        );
        // A revocation at exactly the attack start is a detection, not a false one.
        assert_eq!(m.false_revocations, 0);
        assert_eq!(m.precision(), Some(1.0));
    }

    #[test]
    fn a_step_up_is_a_stop_and_not_a_revocation() {
        let (sessions, attacker) = fixture();
        let truth = Truth {
            sessions: &sessions,
            attacker_requests: &attacker,
            benign_requests: 1000,
        };
        // Session 0 stepped up on the attacker's second request; benign session 3 stepped up.
        let m = measure(
            &truth,
            &[step_up(0, 105, 10 * MIN + 5_000), step_up(3, 7, MIN)],
        );
        let far = m.of_type("far_replay_active").unwrap();
        assert_eq!((far.stopped, far.detected), (1, 0));
        assert_eq!((far.stop_rate(), far.recall()), (Some(0.5), Some(0.0)));
        assert_eq!(far.requests, None, "no revocation, no time to revoke");
        // Revocation-only numbers see nothing.
        assert_eq!((m.revoked_sessions, m.true_positives), (0, 0));
        assert_eq!((m.false_revocations, m.falsely_revoked_sessions), (0, 0));
        assert_eq!(m.false_sessions_per_thousand(), Some(0.0));
        // Stops: sessions 0 and 3 stopped, one of them attacked.
        assert_eq!((m.stopped_sessions, m.stop_true_positives), (2, 1));
        assert_eq!(m.stop_precision(), Some(0.5));
        assert!((m.stop_recall().unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // One honest session of three stepped up.
        assert_eq!(m.falsely_stepped_up_sessions, 1);
        assert!((m.stepped_up_sessions_per_thousand().unwrap() - 1000.0 / 3.0).abs() < 1e-9);
        // A step-up before the attack starts is an honest session stepped up, not a stop.
        let early = measure(&truth, &[step_up(1, 150, 15 * MIN)]);
        assert_eq!(
            (early.falsely_stepped_up_sessions, early.stop_true_positives),
            (1, 0)
        );
    }

    #[test]
    fn a_revocation_after_a_step_up_counts_once() {
        let (sessions, attacker) = fixture();
        let truth = Truth {
            sessions: &sessions,
            attacker_requests: &attacker,
            benign_requests: 1000,
        };
        let m = measure(
            &truth,
            &[
                // Listed out of order: the stop is the step-up, the earlier of the two.
                revoke(0, 120, 10 * MIN + 60_000),
                step_up(0, 105, 10 * MIN + 5_000),
                // A benign session stepped up and then revoked: revoked, not stepped up.
                step_up(4, 40, 4 * MIN),
                revoke(4, 41, 5 * MIN),
            ],
        );
        let far = m.of_type("far_replay_active").unwrap();
        assert_eq!((far.stopped, far.detected), (1, 1));
        assert_eq!((m.stopped_sessions, m.stop_true_positives), (2, 1));
        assert_eq!((m.revoked_sessions, m.true_positives), (2, 1));
        // Served before the stop: 100, 105 (the step-up's own); until revoked: all four.
        assert_eq!(far.served.unwrap().median, 2.0);
        assert_eq!(far.requests.unwrap().median, 4.0);
        assert_eq!(m.served.unwrap().median, 2.0);
        assert_eq!(
            (m.falsely_revoked_sessions, m.falsely_stepped_up_sessions),
            (1, 0)
        );
    }

    #[test]
    fn requests_served_before_the_stop_count_the_attackers_only() {
        let (sessions, attacker) = fixture();
        let truth = Truth {
            sessions: &sessions,
            attacker_requests: &attacker,
            benign_requests: 1000,
        };
        let m = measure(
            &truth,
            &[
                // Session 0: stopped on the attacker's first request: 1 served.
                step_up(0, 100, 10 * MIN),
                // Session 1: a victim's request (seq 199) after the attack start, before the
                // attacker's first: 0 served.
                step_up(1, 199, 20 * MIN),
                // Session 2: revoked at its fifth attacker request.
                revoke(2, 340, 40 * MIN),
            ],
        );
        let far = m.of_type("far_replay_active").unwrap();
        assert_eq!(
            far.served,
            Some(Spread {
                median: 0.0,
                p95: 1.0
            })
        );
        let slow = m.of_type("low_and_slow").unwrap();
        assert_eq!(slow.served.unwrap().median, 5.0);
        // Over every stopped attacked session: [1, 0, 5].
        assert_eq!(
            m.served,
            Some(Spread {
                median: 1.0,
                p95: 5.0
            })
        );
    }

    #[test]
    fn nothing_revoked() {
        let (sessions, attacker) = fixture();
        let truth = Truth {
            sessions: &sessions,
            attacker_requests: &attacker,
            benign_requests: 0,
        };
        let m = measure(&truth, &[]);
        assert_eq!(m.precision(), None);
        assert_eq!(m.recall(), Some(0.0));
        assert_eq!(m.f1(), Some(0.0));
        assert_eq!(m.false_sessions_per_thousand(), Some(0.0));
        assert_eq!(m.false_revocations_per_million(), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.95), Some(19.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn attack_types_follow_the_issue_order_then_others() {
        let sessions = vec![
            session(0, Some(("scripted_scraping", 0))),
            session(1, Some(("low_and_slow", 0))),
            session(2, Some(("far_replay_active", 0))),
            session(3, Some(("impossible_travel", 0))),
            session(4, None),
        ];
        assert_eq!(
            attack_types(&sessions),
            [
                "far_replay_active",
                "low_and_slow",
                "impossible_travel",
                "scripted_scraping"
            ]
        );
    }

    #[test]
    fn pr_curve_counts_pre_attack_scores_as_false_positives() {
        let s = |attacked, before, after| SessionScore {
            attacked,
            before,
            after,
        };
        let sessions = [
            s(true, 0.1, 0.99),
            s(true, 0.9, 0.2), // high before the attack only
            s(false, 0.5, 0.0),
            s(false, 0.0, 0.0),
        ];
        let curve = pr_curve(&sessions);
        let points: Vec<(f64, f64, f64)> = curve
            .iter()
            .map(|p| (p.threshold, p.precision, p.recall))
            .collect();
        assert_eq!(
            points,
            [
                (0.99, 1.0, 0.5),
                (0.9, 0.5, 0.5),
                (0.5, 1.0 / 3.0, 0.5),
                // The second attack counts only once its after-start score is reached.
                (0.2, 2.0 / 3.0, 1.0),
            ]
        );
        // AP = 0.5 · 1.0 + 0.5 · 2/3.
        assert!((average_precision(&curve) - (0.5 + 1.0 / 3.0)).abs() < 1e-12);

        let mut folded = SessionScore {
            attacked: true,
            ..Default::default()
        };
        for (score, after) in [(0.3, false), (f64::NAN, true), (0.8, true), (0.6, true)] {
            folded.observe(score, after);
        }
        assert_eq!((folded.before, folded.after), (0.3, 0.8));
    }

    #[test]
    fn thinning_keeps_the_ends() {
        let curve: Vec<PrPoint> = (0..1000)
            .map(|i| PrPoint {
                threshold: 1.0 - i as f64 / 1000.0,
                precision: 1.0,
                recall: i as f64 / 1000.0,
            })
            .collect();
        let thin = thin(&curve, 100);
        assert!(thin.len() <= 101, "{}", thin.len());
        assert_eq!(thin.first(), curve.first());
        assert_eq!(thin.last(), curve.last());
    }
}
