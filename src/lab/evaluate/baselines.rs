//! The published impossible-travel rules that `evaluate` compares tokenwatch against
//! (CrowdSec, Panther and Elastic, as each project publishes them), as pure functions over one
//! token's uses.
//!
//! Data flow: `evaluate` collects, per token fingerprint and in input (event) order, every use
//! that GeoIP located — `(time, lat, lon, ip)` from the same parse → identify → enrich stages
//! the pipeline runs — and asks each rule for the index of its first alert; a baseline
//! "revokes" the token there.
//!
//! Invariants, on purpose:
//! - Locations are GeoIP **city centroids only**: the rules ignore accuracy radii, which is
//!   how they are published and exactly the weakness tokenwatch's lower-bound distance fixes.
//! - Distances come from `track::great_circle_km`, the crate's one haversine.
//! - Elapsed time is the absolute event-time difference; two uses at the same millisecond are
//!   infinitely fast (any distance > 0 is an alert for the speed rules).
//!
//! What it does NOT do: skip known VPN, relay or satellite ASNs (Panther ships such a list; none
//! of the simulated networks is on it, so skipping nothing is the faithful reproduction),
//! grade severities (Panther's "< 50 km and < 10 min" low severity is still an alert), or
//! look at user-agents, ASNs or anything but time, place and address.

use std::net::IpAddr;

use crate::event::EventTime;
use crate::track::great_circle_km;

/// One located use of a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Input position of the event (decisions and ground truth refer to it).
    pub seq: u64,
    /// Event time.
    pub time: EventTime,
    /// City centroid latitude, degrees.
    pub lat: f64,
    /// City centroid longitude, degrees.
    pub lon: f64,
    /// Client address.
    pub ip: IpAddr,
}

/// A published rule: its row name, its definition, and the rule itself.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// Row name in the report.
    pub name: &'static str,
    /// What the rule says, for the report.
    pub definition: &'static str,
    /// Index of the first use that raises an alert, if any.
    pub first_alert: fn(&[Point]) -> Option<usize>,
}

/// The three baselines, in report order.
pub const BASELINES: [Baseline; 3] = [
    Baseline {
        name: "CrowdSec impossible-travel",
        definition: "two uses > 1000 km apart within 3 h",
        first_alert: crowdsec,
    },
    Baseline {
        name: "Panther ImpossibleTravel",
        definition: "> 900 km/h between consecutive locations; same IP never alerts",
        first_alert: panther,
    },
    Baseline {
        name: "Elastic impossible travel",
        definition: "≥ 500 km and ≥ 800 km/h within 90 min",
        first_alert: elastic,
    },
];

const HOUR_MS: i64 = 3_600_000;

/// CrowdSec hub `impossible-travel`: two uses more than 1000 km apart within 3 hours (distance
/// only: no speed, no radius).
pub fn crowdsec(points: &[Point]) -> Option<usize> {
    within_window(points, 3 * HOUR_MS, |km, _| km > 1000.0)
}

/// Elastic impossible-travel rules: at least 500 km and at least 800 km/h between two uses
/// within a 90-minute window.
pub fn elastic(points: &[Point]) -> Option<usize> {
    within_window(points, 90 * 60_000, |km, hours| {
        km >= 500.0 && speed_kmh(km, hours) >= 800.0
    })
}

/// Panther `Standard.ImpossibleTravel`: more than 900 km/h from the previous location; a use
/// from the same IP as the previous one never alerts.
pub fn panther(points: &[Point]) -> Option<usize> {
    points
        .windows(2)
        .position(|pair| {
            let (from, to) = (&pair[0], &pair[1]);
            from.ip != to.ip && speed_kmh(distance_km(from, to), elapsed_hours(from, to)) > 900.0
        })
        // `windows(2)` position `i` is the pair ending at use `i + 1`.
        .map(|i| i + 1)
}

fn distance_km(a: &Point, b: &Point) -> f64 {
    great_circle_km((a.lat, a.lon), (b.lat, b.lon))
}

fn elapsed_hours(a: &Point, b: &Point) -> f64 {
    (b.time.0 - a.time.0).abs() as f64 / HOUR_MS as f64
}

/// Speed in km/h; no time at all is infinitely fast unless nothing moved.
fn speed_kmh(km: f64, hours: f64) -> f64 {
    if hours > 0.0 {
        km / hours
    } else if km > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// First use that `fires` against any earlier use at most `window_ms` away in time.
///
/// Keeps one entry per distinct location with the latest time it was used: the latest use of
/// a place is the closest in time, so it is the one that can fire if any can (shorter elapsed
/// time means higher speed and is inside the window if any use of that place is). That keeps
/// the work per use proportional to the handful of places a token visits, not its requests.
fn within_window(
    points: &[Point],
    window_ms: i64,
    fires: impl Fn(f64, f64) -> bool,
) -> Option<usize> {
    // (lat, lon, latest time) of each place seen within the window.
    let mut places: Vec<(f64, f64, EventTime)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        places.retain(|(_, _, t)| p.time.0 - t.0 <= window_ms);
        let hit = places.iter().any(|(lat, lon, t)| {
            let elapsed = (p.time.0 - t.0).abs();
            elapsed <= window_ms
                && fires(
                    great_circle_km((*lat, *lon), (p.lat, p.lon)),
                    elapsed as f64 / HOUR_MS as f64,
                )
        });
        if hit {
            return Some(i);
        }
        match places
            .iter_mut()
            .find(|(lat, lon, _)| *lat == p.lat && *lon == p.lon)
        {
            Some(place) => place.2 = place.2.max(p.time),
            None => places.push((p.lat, p.lon, p.time)),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One degree of longitude on the equator, on the crate's Earth radius.
    fn km_per_degree() -> f64 {
        great_circle_km((0.0, 0.0), (0.0, 1.0))
    }

    /// A use `minutes` after the start, `km` east of (0, 0), from address `host`.
    fn at(minutes: f64, km: f64, host: u8) -> Point {
        Point {
            seq: 0,
            time: EventTime((minutes * 60_000.0).round() as i64),
            lat: 0.0,
            lon: km / km_per_degree(),
            ip: IpAddr::from([203, 0, 113, host]),
        }
    }

    fn run(rule: fn(&[Point]) -> Option<usize>, points: &[Point]) -> Option<usize> {
        let numbered: Vec<Point> = points
            .iter()
            .enumerate()
            .map(|(i, p)| Point {
                seq: i as u64,
                ..*p
            })
            .collect();
        rule(&numbered)
    }

    #[test]
    fn distance_helper_matches_the_fixture_scale() {
        let d = distance_km(&at(0.0, 0.0, 1), &at(0.0, 1000.0, 2));
        assert!((d - 1000.0).abs() < 1e-6, "{d}");
    }

    #[test]
    fn crowdsec_boundaries() {
        let cases: &[(&str, Vec<Point>, Option<usize>)] = &[
            (
                "just over 1000 km, 3 h",
                vec![at(0.0, 0.0, 1), at(180.0, 1000.01, 2)],
                Some(1),
            ),
            (
                "just under 1000 km",
                vec![at(0.0, 0.0, 1), at(1.0, 999.99, 2)],
                None,
            ),
            (
                "over 1000 km, 3 h + 1 min",
                vec![at(0.0, 0.0, 1), at(181.0, 1001.0, 2)],
                None,
            ),
            // Distance only: a slow, physically possible trip still alerts.
            (
                "slow trip",
                vec![at(0.0, 0.0, 1), at(170.0, 1100.0, 2)],
                Some(1),
            ),
            // Same address does not matter to CrowdSec.
            (
                "same ip",
                vec![at(0.0, 0.0, 1), at(5.0, 5000.0, 1)],
                Some(1),
            ),
            // Not only consecutive uses: the first place is still within 3 h of the third.
            (
                "non-consecutive",
                vec![at(0.0, 0.0, 1), at(30.0, 600.0, 2), at(60.0, -600.0, 3)],
                Some(2),
            ),
            // The latest use of a place counts: the first Berlin use is too old, the second
            // is not.
            (
                "latest use of a place",
                vec![at(0.0, 0.0, 1), at(100.0, 0.0, 1), at(250.0, 1500.0, 2)],
                Some(2),
            ),
            (
                "one place",
                vec![at(0.0, 0.0, 1), at(1.0, 0.0, 2), at(2.0, 0.0, 3)],
                None,
            ),
            ("empty", vec![], None),
        ];
        for (what, points, want) in cases {
            assert_eq!(run(crowdsec, points), *want, "{what}");
        }
    }

    #[test]
    fn panther_boundaries() {
        let cases: &[(&str, Vec<Point>, Option<usize>)] = &[
            // 910 km in one hour.
            (
                "just over 900 km/h",
                vec![at(0.0, 0.0, 1), at(60.0, 900.01, 2)],
                Some(1),
            ),
            (
                "just under 900 km/h",
                vec![at(0.0, 0.0, 1), at(60.0, 899.99, 2)],
                None,
            ),
            (
                "same ip never alerts",
                vec![at(0.0, 0.0, 7), at(1.0, 9000.0, 7)],
                None,
            ),
            // Same instant, different place: infinitely fast.
            (
                "same instant",
                vec![at(0.0, 0.0, 1), at(0.0, 1.0, 2)],
                Some(1),
            ),
            (
                "same instant, same place",
                vec![at(0.0, 0.0, 1), at(0.0, 0.0, 2)],
                None,
            ),
            // Consecutive only: A → B slow, B → C slow, although A → C would be fast.
            (
                "consecutive only",
                vec![at(0.0, 0.0, 1), at(60.0, 800.0, 2), at(120.0, 1600.0, 3)],
                None,
            ),
            // A short hop fast enough is an alert too (Panther grades it low, still alerts).
            (
                "short fast hop",
                vec![at(0.0, 0.0, 1), at(1.0, 40.0, 2)],
                Some(1),
            ),
            (
                "third use",
                vec![at(0.0, 0.0, 1), at(30.0, 10.0, 2), at(31.0, 5000.0, 3)],
                Some(2),
            ),
        ];
        for (what, points, want) in cases {
            assert_eq!(run(panther, points), *want, "{what}");
        }
    }

    #[test]
    fn elastic_boundaries() {
        let cases: &[(&str, Vec<Point>, Option<usize>)] = &[
            // 500.01 km in 37.5 min = 800.016 km/h: just over both bounds.
            (
                "at both bounds",
                vec![at(0.0, 0.0, 1), at(37.5, 500.01, 2)],
                Some(1),
            ),
            (
                "499.99 km, fast",
                vec![at(0.0, 0.0, 1), at(1.0, 499.99, 2)],
                None,
            ),
            (
                "500.01 km, 799 km/h",
                vec![at(0.0, 0.0, 1), at(37.55, 500.01, 2)],
                None,
            ),
            // 2000 km in 90 min = 1333 km/h: inside the window.
            (
                "window end",
                vec![at(0.0, 0.0, 1), at(90.0, 2000.0, 2)],
                Some(1),
            ),
            (
                "past the window",
                vec![at(0.0, 0.0, 1), at(91.0, 5000.0, 2)],
                None,
            ),
            (
                "same ip alerts",
                vec![at(0.0, 0.0, 1), at(10.0, 3000.0, 1)],
                Some(1),
            ),
            (
                "non-consecutive within window",
                vec![at(0.0, 0.0, 1), at(5.0, 100.0, 2), at(20.0, 900.0, 3)],
                Some(2),
            ),
        ];
        for (what, points, want) in cases {
            assert_eq!(run(elastic, points), *want, "{what}");
        }
    }

    #[test]
    fn the_table_names_each_rule_once() {
        let names: std::collections::HashSet<_> = BASELINES.iter().map(|b| b.name).collect();
        assert_eq!(names.len(), BASELINES.len());
        let far = [at(0.0, 0.0, 1), at(10.0, 5000.0, 2)];
        for b in BASELINES {
            assert_eq!((b.first_alert)(&far), Some(1), "{}", b.name);
        }
    }
}
