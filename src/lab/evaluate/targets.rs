//! Issue 15's targets for the graduated response, checked on the worst world and on the
//! pooled sample, and the order that puts the worst world first.
//!
//! Data flow: `evaluate` measures each world (one `--logs/--labels/--config` triple) and the
//! pooled sample into [`RowMetrics`] → **targets** says which numbers miss which target and
//! which world is worst → `report` renders the per-world and targets tables. Pure: no I/O.
//!
//! Definitions:
//! - Targets are found by measure, and stop-rate targets by attack type **name**, never by
//!   position in `labels::ATTACK_TYPES`: a type absent from the labels has no value (shown
//!   "—") and is neither met nor missed.
//! - The **worst world for a measure** is the world with the worst value of that measure
//!   (highest for an upper bound, lowest for a lower bound; on a tie the first on the command
//!   line), over the worlds where the measure has a value. Each measure can have its own
//!   worst world.
//! - A target is met when both its worst-world value and its pooled value are within it; a
//!   value exactly at the target is within it.
//! - **Worst world first** ([`worst_first`]): worlds ordered by honest sessions revoked per
//!   1,000 (highest first), then honest sessions stepped up per 1,000 (highest first), then
//!   the lowest stop rate among the attack types with a ≥ 99 % target (lowest first); ties
//!   keep command-line order.
//!
//! What it does NOT do: measure (`metrics`) or render (`report`).

use super::metrics::RowMetrics;

/// Which side of its limit a target wants a value on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The value must be at most this.
    AtMost(f64),
    /// The value must be at least this.
    AtLeast(f64),
}

impl Bound {
    /// Whether `value` is within the bound (the limit itself is).
    pub fn met(self, value: f64) -> bool {
        match self {
            Bound::AtMost(limit) => value <= limit,
            Bound::AtLeast(limit) => value >= limit,
        }
    }

    /// Whether `a` is worse than `b` under this bound.
    fn worse(self, a: f64, b: f64) -> bool {
        match self {
            Bound::AtMost(_) => a > b,
            Bound::AtLeast(_) => a < b,
        }
    }
}

/// A number a target is set on, read from one row's [`RowMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Honest sessions revoked per 1,000 benign sessions.
    HonestRevokedPerThousand,
    /// Honest sessions stepped up (and not revoked) per 1,000 benign sessions.
    HonestSteppedUpPerThousand,
    /// Share of the attacked sessions of this attack type that were stopped.
    Stopped(&'static str),
    /// Median attacker requests served before the stop, over every stopped attacked session.
    ServedMedian,
    /// Session-level F1 of stops.
    StopF1,
}

impl Measure {
    /// The measure's value in `m`; `None` where it has none (an attack type absent from the
    /// labels, no benign session). With attacked sessions but none stopped, the median of
    /// requests served is infinite: every attacker request was served.
    pub fn of(self, m: &RowMetrics) -> Option<f64> {
        match self {
            Measure::HonestRevokedPerThousand => m.false_sessions_per_thousand(),
            Measure::HonestSteppedUpPerThousand => m.stepped_up_sessions_per_thousand(),
            Measure::Stopped(attack_type) => m.of_type(attack_type)?.stop_rate(),
            Measure::ServedMedian => m.served.map(|s| s.median).or_else(|| {
                (m.attacked_sessions > 0 && m.stop_true_positives == 0).then_some(f64::INFINITY)
            }),
            Measure::StopF1 => m.stop_f1(),
        }
    }

    /// The value as a person reads it, without the mark.
    fn text(self, value: f64, decimals: usize) -> String {
        match self {
            _ if value.is_infinite() => "none stopped".into(),
            Measure::Stopped(_) => format!("{:.*} %", decimals, value * 100.0),
            _ => format!("{value:.decimals$}"),
        }
    }

    /// Decimals shown by default.
    fn decimals(self) -> usize {
        match self {
            Measure::HonestRevokedPerThousand
            | Measure::HonestSteppedUpPerThousand
            | Measure::Stopped(_) => 2,
            Measure::ServedMedian => 0,
            Measure::StopF1 => 3,
        }
    }
}

/// One of issue 15's targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// What it says, for the report.
    pub what: &'static str,
    /// The number it is set on.
    pub measure: Measure,
    /// Where that number must be.
    pub bound: Bound,
}

impl Target {
    /// `value` as shown in a table, with enough decimals that rounding never moves it across
    /// the limit (98.996 % shows as "98.996 %", not as a passing-looking "99.00 %").
    pub fn show(&self, value: f64) -> String {
        let met = self.bound.met(value);
        let mut decimals = self.measure.decimals();
        loop {
            let text = self.measure.text(value, decimals);
            let scale = if matches!(self.measure, Measure::Stopped(_)) {
                100.0
            } else {
                1.0
            };
            let shown = text
                .trim_end_matches(" %")
                .parse::<f64>()
                .map_or(value, |v| v / scale);
            if self.bound.met(shown) == met || decimals >= 6 {
                return text;
            }
            decimals += 1;
        }
    }
}

/// Issue 15's targets, in the order of its table.
pub const TARGETS: [Target; 10] = [
    Target {
        what: "honest sessions revoked ≤ 1 /1k",
        measure: Measure::HonestRevokedPerThousand,
        bound: Bound::AtMost(1.0),
    },
    Target {
        what: "honest sessions stepped up ≤ 10 /1k",
        measure: Measure::HonestSteppedUpPerThousand,
        bound: Bound::AtMost(10.0),
    },
    Target {
        what: "far-away replay stopped ≥ 99 %",
        measure: Measure::Stopped("far_replay_active"),
        bound: Bound::AtLeast(0.99),
    },
    Target {
        what: "idle-victim replay stopped ≥ 99 %",
        measure: Measure::Stopped("foreign_replay_idle"),
        bound: Bound::AtLeast(0.99),
    },
    Target {
        what: "scripted client stopped ≥ 99 %",
        measure: Measure::Stopped("scripted_same_country"),
        bound: Bound::AtLeast(0.99),
    },
    Target {
        what: "concurrent use stopped ≥ 99 %",
        measure: Measure::Stopped("concurrent_interleaved"),
        bound: Bound::AtLeast(0.99),
    },
    Target {
        what: "residential proxy in the victim's city stopped ≥ 90 %",
        measure: Measure::Stopped("residential_proxy_scrape"),
        bound: Bound::AtLeast(0.90),
    },
    Target {
        what: "cloud host in the victim's country stopped ≥ 90 %",
        measure: Measure::Stopped("cloud_same_country"),
        bound: Bound::AtLeast(0.90),
    },
    Target {
        what: "attacker requests served before the stop, median ≤ 3",
        measure: Measure::ServedMedian,
        bound: Bound::AtMost(3.0),
    },
    Target {
        what: "F1 of stops ≥ 0.95",
        measure: Measure::StopF1,
        bound: Bound::AtLeast(0.95),
    },
];

/// The target set on `measure`, if any.
pub fn target_of(measure: Measure) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.measure == measure)
}

/// The stop-rate target of an attack type, by name (`None`: the type has none, as
/// `low_and_slow`, or is unknown).
pub fn stop_target(attack_type: &str) -> Option<&'static Target> {
    TARGETS
        .iter()
        .find(|t| matches!(t.measure, Measure::Stopped(name) if name == attack_type))
}

/// A value as shown in a per-world cell: "—" without a value, else the value, `detail` (say
/// a count) and " ✗" last when the value misses its target (a measure without a target is
/// never marked).
pub fn cell(measure: Measure, value: Option<f64>, detail: &str) -> String {
    let Some(value) = value else {
        return "—".into();
    };
    match target_of(measure) {
        Some(target) if target.bound.met(value) => format!("{}{detail}", target.show(value)),
        Some(target) => format!("{}{detail} ✗", target.show(value)),
        None => format!("{}{detail}", measure.text(value, measure.decimals())),
    }
}

/// One target checked on the worst world and on the pooled sample.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// The target.
    pub target: Target,
    /// The worst world's value and that world's name (`None`: no world has the measure).
    pub worst: Option<(f64, String)>,
    /// The pooled value.
    pub pooled: Option<f64>,
}

impl TargetCheck {
    /// Met (both values within the target), missed, or `None` when there is nothing to check
    /// (an attack type absent from the labels).
    pub fn met(&self) -> Option<bool> {
        let values: Vec<f64> = self
            .worst
            .iter()
            .map(|(v, _)| *v)
            .chain(self.pooled)
            .collect();
        (!values.is_empty()).then(|| values.iter().all(|v| self.target.bound.met(*v)))
    }
}

/// Every target on `pooled` and on the worst of `worlds` (name, metrics) for each measure.
pub fn check(pooled: &RowMetrics, worlds: &[(&str, &RowMetrics)]) -> Vec<TargetCheck> {
    TARGETS
        .iter()
        .map(|target| {
            let mut worst: Option<(f64, &str)> = None;
            for (name, m) in worlds {
                let Some(value) = target.measure.of(m) else {
                    continue;
                };
                if worst.is_none_or(|(w, _)| target.bound.worse(value, w)) {
                    worst = Some((value, name));
                }
            }
            TargetCheck {
                target: *target,
                worst: worst.map(|(v, name)| (v, name.to_string())),
                pooled: target.measure.of(pooled),
            }
        })
        .collect()
}

/// The lowest stop rate among the attack types with a ≥ 99 % target (1 when none is
/// present).
fn lowest_strict_stop_rate(m: &RowMetrics) -> f64 {
    TARGETS
        .iter()
        .filter(|t| matches!(t.measure, Measure::Stopped(_)) && t.bound == Bound::AtLeast(0.99))
        .filter_map(|t| t.measure.of(m))
        .fold(1.0, f64::min)
}

/// Indices of `worlds`, worst world first (see the module docs for the order).
pub fn worst_first(worlds: &[&RowMetrics]) -> Vec<usize> {
    let key = |m: &RowMetrics| {
        (
            m.false_sessions_per_thousand().unwrap_or(0.0),
            m.stepped_up_sessions_per_thousand().unwrap_or(0.0),
            lowest_strict_stop_rate(m),
        )
    };
    let mut order: Vec<usize> = (0..worlds.len()).collect();
    // Stable: ties keep command-line order.
    order.sort_by(|&a, &b| {
        let (ka, kb) = (key(worlds[a]), key(worlds[b]));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then(ka.2.total_cmp(&kb.2))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::evaluate::metrics::{AttackTypeMetrics, Spread};

    /// A row: `revoked` and `stepped_up` honest sessions of 1,000; per attack type (name,
    /// stopped, sessions); the median served.
    fn metrics(
        revoked: usize,
        stepped_up: usize,
        types: &[(&str, usize, usize)],
        served: f64,
    ) -> RowMetrics {
        let attacked: usize = types.iter().map(|t| t.2).sum();
        let stopped: usize = types.iter().map(|t| t.1).sum();
        RowMetrics {
            by_type: types
                .iter()
                .map(|(name, stopped, sessions)| AttackTypeMetrics {
                    attack_type: name.to_string(),
                    sessions: *sessions,
                    stopped: *stopped,
                    served: None,
                    detected: 0,
                    seconds: None,
                    requests: None,
                })
                .collect(),
            benign_sessions: 1000,
            falsely_revoked_sessions: revoked,
            falsely_stepped_up_sessions: stepped_up,
            false_revocations: revoked,
            collateral_sessions: 0,
            benign_requests: 1_000_000,
            attacked_sessions: attacked,
            revoked_sessions: revoked,
            true_positives: 0,
            stopped_sessions: stopped + revoked + stepped_up,
            stop_true_positives: stopped,
            served: Some(Spread {
                median: served,
                p95: served,
            }),
        }
    }

    fn get<'a>(checks: &'a [TargetCheck], what: &str) -> &'a TargetCheck {
        checks
            .iter()
            .find(|c| c.target.what.starts_with(what))
            .unwrap_or_else(|| panic!("{what}: {checks:?}"))
    }

    #[test]
    fn worlds_are_ordered_worst_first() {
        let far = "far_replay_active";
        let worlds = [
            metrics(0, 3, &[(far, 100, 100)], 1.0), // a: steps up 3 /1k
            metrics(1, 0, &[(far, 100, 100)], 1.0), // b: revokes 1 /1k: worst
            metrics(0, 3, &[(far, 97, 100)], 1.0),  // c: as a, but stops fewer
            metrics(0, 0, &[(far, 100, 100)], 1.0), // d: best
            metrics(0, 3, &[(far, 97, 100)], 1.0),  // e: tie with c: after it
        ];
        let refs: Vec<&RowMetrics> = worlds.iter().collect();
        assert_eq!(worst_first(&refs), [1, 2, 4, 0, 3]);
        // The lowest rate counts only the ≥ 99 % group: low_and_slow has no target.
        let slow = [
            metrics(0, 0, &[(far, 100, 100), ("low_and_slow", 0, 100)], 1.0),
            metrics(0, 0, &[(far, 99, 100), ("low_and_slow", 100, 100)], 1.0),
        ];
        let refs: Vec<&RowMetrics> = slow.iter().collect();
        assert_eq!(worst_first(&refs), [1, 0]);
    }

    #[test]
    fn a_value_exactly_at_the_target_passes() {
        let exact = metrics(
            1,
            10,
            &[
                ("far_replay_active", 99, 100),
                ("residential_proxy_scrape", 90, 100),
            ],
            3.0,
        );
        let checks = check(&exact, &[("w", &exact)]);
        for what in [
            "honest sessions revoked",
            "honest sessions stepped",
            "far-away",
        ] {
            assert_eq!(get(&checks, what).met(), Some(true), "{what}");
        }
        assert_eq!(get(&checks, "residential").met(), Some(true));
        assert_eq!(get(&checks, "attacker requests").met(), Some(true));
        assert_eq!(
            cell(Measure::HonestRevokedPerThousand, Some(1.0), ""),
            "1.00",
            "no mark at the target"
        );
        assert_eq!(
            cell(Measure::Stopped("far_replay_active"), Some(0.99), ""),
            "99.00 %"
        );
        // Just past it: marked, and never rounded onto the target.
        assert_eq!(
            cell(Measure::Stopped("far_replay_active"), Some(0.989_96), ""),
            "98.996 % ✗"
        );
        assert_eq!(
            cell(Measure::HonestRevokedPerThousand, Some(1.001), ""),
            "1.001 ✗"
        );
        assert_eq!(cell(Measure::ServedMedian, Some(4.0), ""), "4 ✗");
        // low_and_slow has no target: never marked.
        assert_eq!(
            cell(Measure::Stopped("low_and_slow"), Some(0.1), ""),
            "10.00 %"
        );
        assert_eq!(stop_target("low_and_slow"), None);
        assert_eq!(
            stop_target("cloud_same_country").map(|t| t.bound),
            Some(Bound::AtLeast(0.90))
        );
    }

    #[test]
    fn a_missing_attack_type_is_a_dash_not_a_failure() {
        let m = metrics(0, 0, &[("far_replay_active", 100, 100)], 1.0);
        let checks = check(&m, &[("w", &m)]);
        let cloud = get(&checks, "cloud host");
        assert_eq!((cloud.worst.as_ref(), cloud.pooled), (None, None));
        assert_eq!(cloud.met(), None);
        assert_eq!(cell(Measure::Stopped("cloud_same_country"), None, ""), "—");
        assert!(checks.iter().all(|c| c.met() != Some(false)), "{checks:?}");
    }

    #[test]
    fn the_worst_world_is_chosen_per_measure() {
        let far = "far_replay_active";
        let a = metrics(2, 0, &[(far, 100, 100)], 1.0);
        let b = metrics(0, 12, &[(far, 95, 100)], 5.0);
        let pooled = metrics(1, 6, &[(far, 195, 200)], 2.0);
        let checks = check(&pooled, &[("a", &a), ("b", &b)]);
        let revoked = get(&checks, "honest sessions revoked");
        assert_eq!(revoked.worst, Some((2.0, "a".to_string())));
        assert_eq!(revoked.pooled, Some(1.0));
        assert_eq!(revoked.met(), Some(false), "the worst world misses it");
        let far = get(&checks, "far-away");
        assert_eq!(far.worst, Some((0.95, "b".to_string())));
        assert_eq!(
            get(&checks, "attacker requests").worst.as_ref().unwrap().1,
            "b"
        );
        // Nothing stopped: every attacker request was served.
        let none = metrics(0, 0, &[("far_replay_active", 0, 10)], 0.0);
        let none = RowMetrics {
            served: None,
            ..none
        };
        let served = get(&check(&none, &[]), "attacker requests").clone();
        assert_eq!(served.pooled, Some(f64::INFINITY));
        assert_eq!(served.met(), Some(false));
        assert_eq!(served.target.show(f64::INFINITY), "none stopped");
    }
}
