//! Random draws and local time for the simulator: exponential and log-normal waits, weighted
//! picks, and the diurnal rhythm of a user's local time (from the city's longitude).
//!
//! Pure functions of the RNG passed in and event time (ms); no wall clock.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One minute, ms.
pub(super) const MINUTE: i64 = 60_000;
/// One hour, ms.
pub(super) const HOUR: i64 = 60 * MINUTE;

/// An exponential wait with the given mean, ms (at least 1 ms).
pub(super) fn exp_ms(rng: &mut ChaCha8Rng, mean_ms: f64) -> i64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    ((-u.ln() * mean_ms) as i64).max(1)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal duration with the given median and shape, ms, clamped to `[lo, hi]`.
pub(super) fn lognormal_ms(
    rng: &mut ChaCha8Rng,
    median_ms: f64,
    sigma: f64,
    lo: i64,
    hi: i64,
) -> i64 {
    ((median_ms * (sigma * normal(rng)).exp()) as i64).clamp(lo, hi)
}

/// Uniform in `[lo, hi)`, or `lo` when the range is empty.
pub(super) fn between(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

/// The point at fraction `q` of `[lo, hi]` on a log scale.
pub(super) fn log_lerp(lo: f64, hi: f64, q: f64) -> f64 {
    (lo.ln() + q.clamp(0.0, 1.0) * (hi.ln() - lo.ln())).exp()
}

/// A uniformly chosen element (the slice must not be empty).
pub(super) fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// An index chosen with probability proportional to `weight(item)`.
pub(super) fn pick_weighted<T>(
    rng: &mut ChaCha8Rng,
    items: &[T],
    weight: impl Fn(&T) -> u32,
) -> usize {
    let total: u32 = items.iter().map(&weight).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (i, item) in items.iter().enumerate() {
        let w = weight(item);
        if x < w {
            return i;
        }
        x -= w;
    }
    items.len() - 1
}

/// Relative activity by local hour: asleep at night, busy from mid-morning to evening.
const DIURNAL: [f64; 24] = [
    0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.25, 0.5, 0.75, 0.9, 0.95, 0.95, 0.9, 0.9, 0.95, 0.95,
    0.9, 0.85, 0.85, 0.9, 0.95, 0.85, 0.55, 0.2,
];

/// Local solar time at longitude `lon`, ms since the epoch (close enough to the civil zone
/// for a daily rhythm).
fn local_ms(t: i64, lon: f64) -> i64 {
    t + (lon / 15.0 * HOUR as f64) as i64
}

/// Local hour 0–23 at longitude `lon`.
pub(super) fn local_hour(t: i64, lon: f64) -> usize {
    (local_ms(t, lon).rem_euclid(24 * HOUR) / HOUR) as usize
}

/// Relative activity at event time `t` for someone at longitude `lon`.
pub(super) fn activity(t: i64, lon: f64) -> f64 {
    DIURNAL[local_hour(t, lon)]
}

/// Monday to Friday, 08:00–18:00 local.
pub(super) fn is_work_time(t: i64, lon: f64) -> bool {
    let local = local_ms(t, lon);
    // 1970-01-01 was a Thursday: day 0 → weekday 3 (Monday = 0).
    let weekday = (local.div_euclid(24 * HOUR) + 3).rem_euclid(7);
    weekday < 5 && (8..18).contains(&local_hour(t, lon))
}

/// The start of the next period of activity after `after`: a Poisson process of
/// `peak_per_hour` thinned by the local diurnal activity.
pub(super) fn next_active(rng: &mut ChaCha8Rng, after: i64, lon: f64, peak_per_hour: f64) -> i64 {
    let mean = HOUR as f64 / peak_per_hour;
    let mut t = after;
    // Bounded: at the lowest activity (0.02) 500 candidates accept with near certainty.
    for _ in 0..500 {
        t += exp_ms(rng, mean);
        if rng.random::<f64>() < activity(t, lon) {
            break;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn local_time_and_work_hours() {
        // 2026-11-23 is a Monday; 12:00 UTC is 12:54 solar time in Berlin (13.4° E).
        let noon = crate::event::EventTime::parse_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .0;
        assert_eq!(local_hour(noon, 13.4), 12);
        assert_eq!(local_hour(noon, 139.7), 21); // Tokyo: evening
        assert!(is_work_time(noon, 13.4));
        assert!(!is_work_time(noon, 139.7));
        assert!(!is_work_time(noon + 5 * 24 * HOUR, 13.4), "Saturday");
        assert_eq!(local_hour(noon, -74.0), 7); // New York: morning
    }

    #[test]
    fn activity_follows_the_day() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let start = crate::event::EventTime::parse_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .0;
        let mut by_hour = [0u32; 24];
        let mut t = start;
        for _ in 0..5000 {
            t = next_active(&mut rng, t, 0.0, 2.0);
            by_hour[local_hour(t, 0.0)] += 1;
        }
        let night: u32 = by_hour[1..5].iter().sum();
        let day: u32 = by_hour[10..14].iter().sum();
        assert!(day > 10 * night.max(1), "day {day} night {night}");
    }

    #[test]
    fn draws_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..1000 {
            let x = lognormal_ms(&mut rng, 300_000.0, 0.8, 60_000, 3_600_000);
            assert!((60_000..=3_600_000).contains(&x));
            assert!(exp_ms(&mut rng, 10.0) >= 1);
            let q: f64 = rng.random();
            let l = log_lerp(2.0, 30.0, q);
            assert!((2.0..=30.0).contains(&l));
        }
        assert_eq!(between(&mut rng, 5, 5), 5);
        assert!((log_lerp(2.0, 32.0, 0.5) - 8.0).abs() < 1e-9);
        let w = [1u32, 0, 3];
        for _ in 0..100 {
            assert_ne!(pick_weighted(&mut rng, &w, |x| *x), 1);
        }
    }
}
