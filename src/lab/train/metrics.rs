//! Held-out evaluation of a candidate at a threshold, and the choice of that threshold.
//!
//! Sessions are what gets revoked: a session is revoked at its first event whose probability
//! reaches the threshold or on which a hard rule fires (the policy never decides twice). A
//! revocation before the session's attack started (or of a benign session) is a **false
//! revocation**; an attacked session revoked at or after its attack start is **detected**,
//! with time to detect counted in the attacker's requests and seconds since the attack
//! started. "Benign requests" are all requests not made by an attacker.
//!
//! The threshold: the scores between the highest benign score that the false-revocation
//! target forces out and the lowest score that still catches every attacked session caught
//! there form a gap; the threshold sits in its middle in log-odds. The lowest admissible
//! threshold would catch the same sessions on these seeds, but sit a hair above a benign
//! session: on new traffic the middle of the gap is the robust choice on both sides.

use serde::Serialize;

use super::data::DataSet;

/// Per attack type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeMetrics {
    /// Attack type.
    pub attack_type: String,
    /// Attacked sessions.
    pub sessions: usize,
    /// Of which detected.
    pub detected: usize,
    /// `detected / sessions`.
    pub recall: f64,
    /// Median attacker requests until the revocation (1 = on the first one).
    pub median_requests_to_detect: Option<f64>,
    /// Median seconds from attack start to the revocation.
    pub median_seconds_to_detect: Option<f64>,
}

/// A candidate at a threshold, on held-out data.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Probability threshold.
    pub threshold: f64,
    /// Attacked sessions detected, over attacked sessions.
    pub session_recall: f64,
    /// Detected over all revocations.
    pub session_precision: f64,
    /// Harmonic mean of the two.
    pub session_f1: f64,
    /// Revocations of benign sessions or before the attack.
    pub false_revocations: usize,
    /// Benign sessions revoked after another session of their user came under attack (not
    /// counted as false).
    pub collateral_revocations: usize,
    /// Of which by a hard rule.
    pub hard_rule_false_revocations: usize,
    /// Per million benign requests.
    pub false_revocations_per_million: f64,
    /// Benign sessions revoked per thousand benign sessions.
    pub benign_sessions_revoked_per_thousand: f64,
    /// Benign sessions.
    pub benign_sessions: usize,
    /// Benign requests.
    pub benign_requests: usize,
    /// Attacker requests at or above the threshold (or hard) over all such requests.
    pub request_precision: f64,
    /// Attacker requests at or above the threshold (or hard) over attacker requests.
    pub request_recall: f64,
    /// Average precision of the raw score over attacker requests (threshold-free).
    pub request_average_precision: f64,
    /// Per attack type.
    pub per_type: Vec<TypeMetrics>,
}

/// Per attack type while counting: name, sessions, detected, requests and seconds to detect.
type TypeTally = (String, usize, usize, Vec<f64>, Vec<f64>);

/// What happened to one session at a threshold.
enum Outcome {
    Quiet,
    FalseRevocation {
        hard: bool,
    },
    /// A benign session revoked after its user came under attack.
    Collateral,
    Detected {
        requests: usize,
        seconds: f64,
    },
}

fn outcomes(data: &DataSet, scores: &[f64], threshold: f64) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = (0..data.sessions.len()).map(|_| Outcome::Quiet).collect();
    let mut attacker_requests = vec![0usize; data.sessions.len()];
    for (row, score) in data.rows.iter().zip(scores) {
        let s = row.session as usize;
        attacker_requests[s] += usize::from(row.attacker);
        if !matches!(out[s], Outcome::Quiet) {
            continue;
        }
        let hard = row.hard;
        if !(hard || *score >= threshold) {
            continue;
        }
        let info = &data.sessions[s];
        out[s] = match (info.attack_start, info.user_attack_start) {
            (Some(start), _) if row.time >= start => Outcome::Detected {
                requests: attacker_requests[s],
                seconds: row.time.seconds_since(start),
            },
            (_, Some(start)) if row.time >= start => Outcome::Collateral,
            _ => Outcome::FalseRevocation {
                hard: hard && *score < threshold,
            },
        };
    }
    out
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Average precision of `scores` for the attacker rows.
fn average_precision(data: &DataSet, scores: &[f64]) -> f64 {
    let positives = data.positives();
    if positives == 0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < order.len() {
        // Ties form one step of the curve.
        let mut j = i;
        let mut step_tp = 0;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            step_tp += usize::from(data.rows[order[j]].attacker);
            j += 1;
        }
        tp += step_tp;
        seen += j - i;
        ap += step_tp as f64 / positives as f64 * (tp as f64 / seen as f64);
        i = j;
    }
    ap
}

/// Evaluate `scores` (one per row) at `threshold`.
pub fn evaluate(data: &DataSet, scores: &[f64], threshold: f64) -> Evaluation {
    let outcomes = outcomes(data, scores, threshold);
    let benign_sessions = data
        .sessions
        .iter()
        .filter(|s| s.attack_type.is_none())
        .count();
    let benign_requests = data.rows.iter().filter(|r| !r.attacker).count();
    let mut false_revocations = 0;
    let mut hard_false = 0;
    let mut benign_revoked = 0;
    let mut collateral = 0;
    let mut types: Vec<TypeTally> = Vec::new();
    for (info, outcome) in data.sessions.iter().zip(&outcomes) {
        collateral += usize::from(matches!(outcome, Outcome::Collateral));
        if let Outcome::FalseRevocation { hard } = outcome {
            false_revocations += 1;
            hard_false += usize::from(*hard);
            benign_revoked += usize::from(info.attack_type.is_none());
        }
        let Some(t) = &info.attack_type else {
            continue;
        };
        let i = match types.iter().position(|e| e.0 == *t) {
            Some(i) => i,
            None => {
                types.push((t.clone(), 0, 0, Vec::new(), Vec::new()));
                types.len() - 1
            }
        };
        types[i].1 += 1;
        if let Outcome::Detected { requests, seconds } = outcome {
            types[i].2 += 1;
            types[i].3.push(*requests as f64);
            types[i].4.push(*seconds);
        }
    }
    // Issue order first, then any other name.
    types.sort_by_key(|t| {
        crate::lab::labels::ATTACK_TYPES
            .iter()
            .position(|a| *a == t.0)
            .unwrap_or(usize::MAX)
    });
    let attacked: usize = types.iter().map(|t| t.1).sum();
    let detected: usize = types.iter().map(|t| t.2).sum();
    let recall = ratio(detected, attacked);
    let precision = ratio(detected, detected + false_revocations);
    let f1 = if recall + precision > 0.0 {
        2.0 * recall * precision / (recall + precision)
    } else {
        0.0
    };
    let flagged = |r: &super::data::Row, s: f64| r.hard || s >= threshold;
    let (mut hit, mut flagged_all) = (0usize, 0usize);
    for (r, s) in data.rows.iter().zip(scores) {
        if flagged(r, *s) {
            flagged_all += 1;
            hit += usize::from(r.attacker);
        }
    }
    Evaluation {
        threshold,
        session_recall: recall,
        session_precision: precision,
        session_f1: f1,
        false_revocations,
        collateral_revocations: collateral,
        hard_rule_false_revocations: hard_false,
        false_revocations_per_million: ratio(false_revocations, benign_requests) * 1e6,
        benign_sessions_revoked_per_thousand: ratio(benign_revoked, benign_sessions) * 1e3,
        benign_sessions,
        benign_requests,
        request_precision: ratio(hit, flagged_all),
        request_recall: ratio(hit, data.positives()),
        request_average_precision: average_precision(data, scores),
        per_type: types
            .into_iter()
            .map(
                |(attack_type, sessions, detected, mut req, mut secs)| TypeMetrics {
                    recall: ratio(detected, sessions),
                    attack_type,
                    sessions,
                    detected,
                    median_requests_to_detect: median(&mut req),
                    median_seconds_to_detect: median(&mut secs),
                },
            )
            .collect(),
    }
}

/// What the threshold must hold on held-out data; both must hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Targets {
    /// False revocations per million benign requests, at most.
    pub fp_per_million: f64,
    /// Benign sessions revoked per thousand, at most.
    pub benign_per_thousand: f64,
}

impl Targets {
    /// False revocations allowed on `data`: the stricter of the two targets.
    pub fn allowed(&self, data: &DataSet) -> usize {
        let benign_requests = data.rows.iter().filter(|r| !r.attacker).count();
        let benign_sessions = data
            .sessions
            .iter()
            .filter(|s| s.attack_type.is_none())
            .count();
        let by_requests = self.fp_per_million.max(0.0) * benign_requests as f64 / 1e6;
        let by_sessions = self.benign_per_thousand.max(0.0) * benign_sessions as f64 / 1e3;
        by_requests.min(by_sessions).floor() as usize
    }
}

/// The threshold for at most the false stops `targets` allow among the sessions no hard rule
/// fires on (step-ups), and whether the hard rules' own false revocations, which do not
/// depend on the threshold, fit the same targets.
pub fn choose_threshold(data: &DataSet, scores: &[f64], targets: Targets) -> (f64, bool) {
    let allowed = targets.allowed(data);
    // Per session: the highest score before any attack and from the attack on, and whether
    // a hard rule fires before the attack or (as it fires regardless) from it on.
    let n = data.sessions.len();
    let mut worst = vec![f64::NEG_INFINITY; n];
    let mut hard = vec![false; n];
    let mut attack_best = vec![f64::NEG_INFINITY; n];
    let mut attack_hard = vec![false; n];
    for (row, score) in data.rows.iter().zip(scores) {
        let s = row.session as usize;
        let info = &data.sessions[s];
        if info
            .user_attack_start
            .is_some_and(|start| row.time >= start)
        {
            // Collateral of a real attack: neither a false revocation nor a detection.
            continue;
        }
        let before_attack = info.attack_start.is_none_or(|start| row.time < start);
        if before_attack {
            worst[s] = worst[s].max(*score);
            hard[s] |= row.hard;
        } else {
            attack_best[s] = attack_best[s].max(*score);
            attack_hard[s] |= row.hard;
        }
    }
    let hard_count = hard.iter().filter(|h| **h).count();
    let mut soft: Vec<f64> = worst
        .iter()
        .zip(&hard)
        .filter(|(w, h)| !**h && w.is_finite())
        .map(|(w, _)| *w)
        .collect();
    soft.sort_by(|a, b| b.total_cmp(a));
    let reachable = hard_count <= allowed;
    // A score ≥ t without a hard rule steps the session up (DESIGN §5): the budget is the
    // step-ups', and the hard rules' revocations, which no threshold changes, only decide
    // `reachable` — they must not starve the step-ups (a strict threshold would then stop
    // nothing the rules do not).
    let budget = allowed;
    // Every other session with a score ≥ t is stopped: t must exceed soft[budget].
    let Some(&must_exceed) = soft.get(budget) else {
        // Even the lowest threshold stays within the target; keep a floor that still means
        // "more likely attacker than not" in the balanced training sense.
        return (0.5, reachable);
    };
    // The highest threshold that still catches, by score, every attacked session the
    // lowest admissible one catches (sessions caught by a hard rule do not constrain it).
    let catch_all = (0..n)
        .filter(|s| !hard[*s] && !attack_hard[*s] && attack_best[*s] > must_exceed)
        .map(|s| attack_best[s])
        .fold(f64::INFINITY, f64::min);
    let upper = if catch_all.is_finite() {
        catch_all
    } else {
        // No attack to keep: halfway to the next observed score, or to 1.
        scores
            .iter()
            .copied()
            .filter(|s| *s > must_exceed)
            .fold(1.0, f64::min)
    };
    (logit_midpoint(must_exceed, upper), reachable)
}

/// The threshold that keeps every world of `data` ([`DataSet::worlds`]) within `targets` on
/// its own — the strictest world's — and whether every world's target is reachable. A
/// pooled threshold can hide one bad world behind the others' clean sessions. Worlds too
/// small for the target to allow one false stop are judged together, as one world.
pub fn choose_threshold_worst_world(
    data: &DataSet,
    scores: &[f64],
    targets: Targets,
) -> (f64, bool) {
    // A world too small for its budget to allow a single false stop (fewer benign sessions
    // than 1,000 / target) cannot tell 1 in 1,000 from 1 in 100: alone, its one outlier
    // session would veto every threshold below it. Such worlds are judged together.
    let mut groups: Vec<(DataSet, Vec<f64>)> = Vec::new();
    let mut small = (DataSet::default(), Vec::new());
    for span in &data.worlds {
        let world = data.world(span);
        let world_scores = scores[span.rows.clone()].to_vec();
        if targets.allowed(&world) == 0 {
            small.0.append(world);
            small.1.extend(world_scores);
        } else {
            groups.push((world, world_scores));
        }
    }
    if !small.0.rows.is_empty() {
        groups.push(small);
    }
    let per_world = groups
        .iter()
        .map(|(world, world_scores)| choose_threshold(world, world_scores, targets));
    let (threshold, reachable) = per_world.fold((f64::NEG_INFINITY, true), |(t, ok), (w, r)| {
        (t.max(w), ok && r)
    });
    if threshold.is_finite() {
        (threshold, reachable)
    } else {
        choose_threshold(data, scores, targets)
    }
}

/// The point halfway between two probabilities in log-odds (clamped away from 0 and 1).
fn logit_midpoint(low: f64, high: f64) -> f64 {
    use crate::model::{logit, sigmoid};
    sigmoid((logit(low) + logit(high)) / 2.0).clamp(1e-9, 1.0 - 1e-9)
}

#[cfg(test)]
mod tests {
    use super::super::data::{Row, SessionInfo};
    use super::*;
    use crate::event::EventTime;

    /// Two benign sessions (max scores 0.3 and 0.6), one attacked at t=10 (attacker rows
    /// score 0.9; the victim's pre-attack row 0.2).
    fn data() -> (DataSet, Vec<f64>) {
        let row = Row::at;
        let data = DataSet {
            x: vec![[0.0; crate::features::FEATURE_COUNT]; 7],
            rows: vec![
                row(0, false, 1),
                row(0, false, 2),
                row(1, false, 3),
                row(2, false, 5),
                row(2, true, 10),
                row(2, true, 11),
                row(1, false, 12),
            ],
            sessions: vec![
                SessionInfo {
                    attack_type: None,
                    attack_start: None,
                    user_attack_start: None,
                },
                SessionInfo {
                    attack_type: None,
                    attack_start: None,
                    user_attack_start: None,
                },
                SessionInfo {
                    attack_type: Some("far_replay_active".into()),
                    attack_start: Some(EventTime::from_secs(10)),
                    user_attack_start: None,
                },
            ],
            lines: 7,
            worlds: Vec::new(),
        };
        (data, vec![0.1, 0.3, 0.2, 0.2, 0.7, 0.9, 0.6])
    }

    #[test]
    fn session_outcomes_at_thresholds() {
        let (data, scores) = data();
        // (threshold, false revocations, recall, median requests to detect)
        for (t, fr, recall, requests) in [
            (0.25, 2, 1.0, Some(1.0)),
            (0.65, 0, 1.0, Some(1.0)),
            (0.8, 0, 1.0, Some(2.0)),
            (0.95, 0, 0.0, None),
        ] {
            let e = evaluate(&data, &scores, t);
            assert_eq!(e.false_revocations, fr, "t={t}");
            assert_eq!(e.session_recall, recall, "t={t}");
            assert_eq!(e.per_type[0].median_requests_to_detect, requests, "t={t}");
            assert_eq!(e.benign_requests, 5);
        }
        let e = evaluate(&data, &scores, 0.25);
        assert_eq!(e.benign_sessions_revoked_per_thousand, 1000.0);
        assert!((e.session_precision - 1.0 / 3.0).abs() < 1e-12);
    }

    fn targets(fp_per_million: f64, benign_per_thousand: f64) -> Targets {
        Targets {
            fp_per_million,
            benign_per_thousand,
        }
    }

    #[test]
    fn threshold_meets_the_target_in_the_middle_of_the_gap() {
        let (data, scores) = data();
        // 5 benign requests: 0 allowed at any realistic target → above 0.6; the attacked
        // session peaks at 0.9: the log-odds middle of (0.6, 0.9).
        let (t, ok) = choose_threshold(&data, &scores, targets(5.0, 1.0));
        assert!(ok);
        assert!((t - logit_midpoint(0.6, 0.9)).abs() < 1e-12, "{t}");
        assert!(t > 0.6 && t < 0.9, "{t}");
        let e = evaluate(&data, &scores, t);
        assert_eq!((e.false_revocations, e.session_recall), (0, 1.0));
        // 200,000 per million = 1 allowed: above 0.3 (the second-worst) is enough.
        let (t, _) = choose_threshold(&data, &scores, targets(200_000.0, 1000.0));
        assert!((t - logit_midpoint(0.3, 0.9)).abs() < 1e-12, "{t}");
        assert!(evaluate(&data, &scores, t).false_revocations <= 1);
        // The same per-million target, but at most 1 in 1,000 of the 2 benign sessions: 0.
        let (t, _) = choose_threshold(&data, &scores, targets(200_000.0, 1.0));
        assert!((t - logit_midpoint(0.6, 0.9)).abs() < 1e-12, "{t}");
        assert!((logit_midpoint(0.5, 0.5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_threshold_holds_in_the_worst_world_not_only_pooled() {
        // World A: benign sessions peak at 0.75 and 0.8; world B: all benign rows low.
        let (a, mut a_scores) = data();
        a_scores[1] = 0.75;
        a_scores[6] = 0.8;
        let (b, _) = data();
        let b_scores = vec![0.05, 0.05, 0.05, 0.2, 0.7, 0.9, 0.05];
        let mut both = DataSet::default();
        both.append(a.clone());
        both.append(b.clone());
        let scores: Vec<f64> = a_scores.iter().chain(&b_scores).copied().collect();
        assert_eq!(both.worlds.len(), 2);
        assert_eq!(both.world(&both.worlds[1]).sessions.len(), 3);
        // One benign session in two may be stopped, per world.
        let half = targets(1e9, 500.0);
        let (pooled, _) = choose_threshold(&both, &scores, half);
        assert!(
            evaluate(&a, &a_scores, pooled).false_revocations > 1,
            "{pooled}"
        );
        let (t, ok) = choose_threshold_worst_world(&both, &scores, half);
        assert!(ok);
        assert!((t - logit_midpoint(0.75, 0.9)).abs() < 1e-12, "{t}");
        assert!(evaluate(&a, &a_scores, t).false_revocations <= 1);
        assert_eq!(evaluate(&b, &b_scores, t).session_recall, 1.0);
    }

    #[test]
    fn worlds_too_small_for_one_false_stop_are_judged_together() {
        // Each world has 2 benign sessions; 1 in 3 of them may be stopped: 0.67 → none per
        // world alone, 1 in the two worlds together.
        let (a, mut a_scores) = data();
        a_scores[6] = 0.8;
        let (b, b_scores) = data();
        let mut both = DataSet::default();
        both.append(a.clone());
        both.append(b);
        let scores: Vec<f64> = a_scores.iter().chain(&b_scores).copied().collect();
        let third = targets(1e9, 1000.0 / 3.0);
        assert_eq!(third.allowed(&a), 0);
        let (alone, _) = choose_threshold(&a, &a_scores, third);
        assert!(alone > 0.8, "world A alone vetoes its outlier: {alone}");
        let (t, ok) = choose_threshold_worst_world(&both, &scores, third);
        assert!(ok);
        assert!(t <= 0.8, "the outlier is the pair's one allowed stop: {t}");
        assert_eq!(evaluate(&a, &a_scores, t).session_recall, 1.0);
    }

    #[test]
    fn collateral_revocations_are_neither_false_nor_budgeted() {
        let (mut data, scores) = data();
        // Session 1 belongs to the attacked user; its row at t=12 (score 0.6) comes after
        // the attack on session 2 began at t=10.
        data.sessions[1].user_attack_start = Some(EventTime::from_secs(10));
        let e = evaluate(&data, &scores, 0.5);
        assert_eq!((e.false_revocations, e.collateral_revocations), (0, 1));
        // Only session 0 (0.3) is left to keep under: the threshold drops below 0.6.
        let (t, ok) = choose_threshold(&data, &scores, targets(5.0, 1.0));
        assert!(ok);
        assert!((t - logit_midpoint(0.3, 0.9)).abs() < 1e-12, "{t}");
    }

    #[test]
    fn hard_rule_false_revocations_make_the_target_unreachable() {
        let (mut data, scores) = data();
        data.rows[0].hard = true;
        let (_, ok) = choose_threshold(&data, &scores, targets(5.0, 1.0));
        assert!(!ok);
        let e = evaluate(&data, &scores, 0.99);
        assert_eq!((e.false_revocations, e.hard_rule_false_revocations), (1, 1));
    }

    #[test]
    fn average_precision_of_a_perfect_ranking_is_one() {
        let (data, _) = data();
        let perfect = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        assert!((average_precision(&data, &perfect) - 1.0).abs() < 1e-12);
        let worst = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        assert!(average_precision(&data, &worst) < 0.5);
    }
}
