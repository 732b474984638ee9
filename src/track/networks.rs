//! Per-network history of one session: the few networks (ASNs) it used lately, how busy
//! each is now, how it has been used, and how often the session switched back to a network
//! it had just left.
//!
//! Data flow: part of stage 5, `track`. `SessionState::observe` calls
//! [`NetworkHistory::observe`] for every request with a known ASN, allowlisted networks
//! included; the returned [`NetworkSignals`] become the `network_*` fields of the
//! `Observation`.
//!
//! Why per network: the session-wide view blurs two parties sharing one token. A scraper
//! behind a residential proxy hides its rate inside the session's baseline (which it drags
//! up within minutes); a thief interleaving with the owner looks like many "network
//! changes" that a phone changing networks also makes; a low-and-slow thief sends a lone
//! request every few minutes from a network the owner never uses like that. Kept per
//! network, each shows plainly: the rate from the new network alone, the *returns* to a
//! network just left (A → B → A, which one moving device does not do within minutes), and
//! requests that stand alone instead of arriving in a page load's burst.
//!
//! Invariants: pure (event time only); bounded (at most [`NETWORKS_CAP`] networks and
//! [`RETURNS_CAP`] return times per session, least recently used network forgotten first);
//! a late event counts towards rates and companions but never moves "current" or "left".
//!
//! Allowlisted networks (VPN egress, privacy relays) take part: the allowlist says their
//! location and ASN say nothing about where the user is, not that they cannot be one of two
//! parties. A session begun on a relay has the relay as its first network, and a thief's
//! network beside it is a second one.
//!
//! What it does NOT do: decide what is suspicious (the model weighs the signals), or
//! compare places (travel and ASN changes are the caller's, and skip allowlisted networks).

use super::MinuteWindow;
use crate::event::EventTime;

/// Networks remembered per session: home, carrier, office and one more.
pub(crate) const NETWORKS_CAP: usize = 4;

/// Return times kept per session; more within the window already say "interleaved".
pub(crate) const RETURNS_CAP: usize = 16;

/// Window over which returns count (the same as for network changes).
pub(crate) const RETURN_WINDOW_MS: i64 = 10 * 60 * 1000;

/// A switch back is a return only when the network was in use this recently: both networks
/// in use within two minutes is concurrent use. A phone that left Wi-Fi mid-visit and is
/// back home for the next visit was away longer.
pub(crate) const RETURN_GAP_MS: i64 = 2 * 60 * 1000;

/// A request with no other request from its network within this gap, before or after,
/// stands alone. A page load's API calls follow it within a few seconds.
pub(crate) const LONE_GAP_MS: i64 = 10_000;

/// One network's use by the session.
#[derive(Debug, Clone)]
struct NetworkUse {
    asn: u32,
    first_ms: i64,
    last_ms: i64,
    /// No other request from this network came within `LONE_GAP_MS` before the latest one.
    latest_alone_so_far: bool,
    /// Earlier requests that stood alone on both sides.
    lone: u32,
    window: MinuteWindow,
}

/// What the network history says about one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct NetworkSignals {
    /// Returns to a network just left, within the window, this one included.
    pub returns: u32,
    /// Requests from this network in the last minute, this one included; 0 on the network
    /// the session started on (whose rate is the session's own, judged against its
    /// baseline).
    pub rate_per_minute: u32,
    /// Seconds since the session first used this network (as far as remembered).
    pub age_s: f64,
    /// Earlier requests from this network that stood alone; 0 on the network the session
    /// started on (an API client's steady polling is how that session is used, not a
    /// second party).
    pub lone_requests: u32,
}

/// The per-network state of one session.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetworkHistory {
    /// Most recently used last.
    networks: Vec<NetworkUse>,
    /// The network the session started on.
    origin: Option<u32>,
    /// Network of the latest in-order request.
    current: Option<u32>,
    /// The network used before `current`.
    left: Option<u32>,
    /// Event times (ms) of returns, oldest first.
    returns: Vec<i64>,
}

impl NetworkHistory {
    /// Fold in a request from `asn` at `now` and report what it shows. `in_order`: `now` is
    /// not older than the session's latest request.
    pub(crate) fn observe(&mut self, asn: u32, now: EventTime, in_order: bool) -> NetworkSignals {
        let t = now.0;
        let origin = *self.origin.get_or_insert(asn);
        if in_order {
            if let Some(current) = self.current.filter(|c| *c != asn) {
                // Back to the network just left, which was in use moments ago: A → B → A.
                let last_use = self
                    .networks
                    .iter()
                    .find(|n| n.asn == asn)
                    .map(|n| n.last_ms);
                if self.left.is_some_and(|left| left == asn)
                    && last_use.is_some_and(|at| t - at <= RETURN_GAP_MS)
                {
                    self.note_return(t);
                }
                self.left = Some(current);
            }
            self.current = Some(asn);
        }
        let returns = self.recent_returns(t);
        let (network, new) = self.touch(asn, now);
        // A new network's first request has no companion before it (`latest_alone_so_far`
        // starts true).
        if !new {
            if t >= network.last_ms {
                let gap = t - network.last_ms;
                if gap > LONE_GAP_MS && network.latest_alone_so_far {
                    network.lone = network.lone.saturating_add(1);
                }
                network.latest_alone_so_far = gap > LONE_GAP_MS;
                network.last_ms = t;
            } else if network.last_ms - t <= LONE_GAP_MS {
                // A late companion of the latest request.
                network.latest_alone_so_far = false;
            }
        }
        network.first_ms = network.first_ms.min(t);
        network.window.record(now);
        let secondary = asn != origin;
        NetworkSignals {
            returns,
            rate_per_minute: if secondary { network.window.count() } else { 0 },
            age_s: (t - network.first_ms).max(0) as f64 / 1000.0,
            lone_requests: if secondary { network.lone } else { 0 },
        }
    }

    /// The entry for `asn`, moved to the most-recent end, and whether it is new (created,
    /// evicting the least recently used one when full).
    fn touch(&mut self, asn: u32, now: EventTime) -> (&mut NetworkUse, bool) {
        touch_recent(
            &mut self.networks,
            NETWORKS_CAP,
            |n| n.asn == asn,
            || NetworkUse {
                asn,
                first_ms: now.0,
                last_ms: now.0,
                latest_alone_so_far: true,
                lone: 0,
                window: MinuteWindow::new(now),
            },
        )
    }

    fn note_return(&mut self, t: i64) {
        self.returns.retain(|r| (t - r).abs() <= RETURN_WINDOW_MS);
        if self.returns.len() >= RETURNS_CAP {
            self.returns.remove(0);
        }
        self.returns.push(t);
    }

    fn recent_returns(&self, t: i64) -> u32 {
        let n = self
            .returns
            .iter()
            .filter(|r| (t - **r).abs() <= RETURN_WINDOW_MS)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Heap bytes, for the session byte budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.networks.capacity() * std::mem::size_of::<NetworkUse>()
            + self.returns.capacity() * std::mem::size_of::<i64>()
    }
}

/// The entry of `entries` (most recently used last) that `is` picks, moved to the end, or a
/// new one from `make` (the least recently used evicted when `cap` is reached); and whether it
/// was created. A few entries at most, so a scan beats a map.
pub(crate) fn touch_recent<T>(
    entries: &mut Vec<T>,
    cap: usize,
    is: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> (&mut T, bool) {
    let (entry, new) = match entries.iter().position(is) {
        Some(i) => (entries.remove(i), false),
        None => {
            if entries.len() >= cap {
                entries.remove(0);
            }
            (make(), true)
        }
    };
    entries.push(entry);
    let last = entries.len() - 1;
    (&mut entries[last], new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: u32 = 3320;
    const THIEF: u32 = 64500;
    const CARRIER: u32 = 6805;

    fn at(secs: i64) -> EventTime {
        EventTime::from_secs(1_800_000_000 + secs)
    }

    /// Feed `(second, asn)` requests in order; the signals of each.
    fn run(requests: &[(i64, u32)]) -> Vec<NetworkSignals> {
        let mut h = NetworkHistory::default();
        requests
            .iter()
            .map(|(s, asn)| h.observe(*asn, at(*s), true))
            .collect()
    }

    #[test]
    fn one_switch_is_not_a_return_but_interleaving_is() {
        // A phone leaving home Wi-Fi: one switch, never back within the window.
        let phone = run(&[(0, HOME), (30, HOME), (60, CARRIER), (90, CARRIER)]);
        assert!(phone.iter().all(|s| s.returns == 0), "{phone:?}");
        // Owner and thief alternating: every switch after the first returns.
        let shared = run(&[(0, HOME), (20, THIEF), (40, HOME), (60, THIEF), (80, HOME)]);
        let returns: Vec<u32> = shared.iter().map(|s| s.returns).collect();
        assert_eq!(returns, [0, 0, 1, 2, 3]);
        // Returns older than the window no longer count.
        let spread = run(&[(0, HOME), (20, THIEF), (40, HOME), (40 + 601, HOME)]);
        assert_eq!(spread[2].returns, 1);
        assert_eq!(spread[3].returns, 0);
        // Going back to a network last used more than two minutes ago is no return: the
        // phone left Wi-Fi mid-visit, and is home again for the next visit.
        let later = run(&[(0, HOME), (20, CARRIER), (100, CARRIER), (141, HOME)]);
        assert_eq!(later[3].returns, 0);
        let sooner = run(&[(0, HOME), (20, CARRIER), (100, CARRIER), (120, HOME)]);
        assert_eq!(sooner[3].returns, 1);
    }

    #[test]
    fn rate_and_age_are_per_network() {
        let mut requests: Vec<(i64, u32)> = (0..10).map(|i| (i * 6, HOME)).collect();
        // A scraper on another network: 30 requests in 30 s, starting at 60 s.
        requests.extend((0..30).map(|i| (60 + i, THIEF)));
        requests.push((95, HOME));
        let s = run(&requests);
        assert_eq!(s[9].rate_per_minute, 0, "home is where the session started");
        assert_eq!(s[39].rate_per_minute, 30, "thief: its own 30 only");
        assert_eq!(s[39].age_s, 29.0);
        assert_eq!(s[40].age_s, 95.0, "home was first used at 0 s");
    }

    #[test]
    fn lone_requests_are_counted_once_confirmed() {
        // A page load: a burst within seconds, never alone.
        let burst = run(&[(0, HOME), (1, HOME), (2, HOME), (40, HOME), (41, HOME)]);
        assert!(burst.iter().all(|s| s.lone_requests == 0), "{burst:?}");
        // A lone request every few minutes from a second network: each one confirms the
        // previous stood alone.
        let slow = run(&[
            (0, HOME),
            (60, THIEF),
            (600, THIEF),
            (1500, THIEF),
            (1505, THIEF),
        ]);
        let lone: Vec<u32> = slow.iter().map(|s| s.lone_requests).collect();
        assert_eq!(
            lone,
            [0, 0, 1, 2, 2],
            "the request at 1500 s has a companion"
        );
        // On the network the session started on, polling is how the session is used (an API
        // client), not a second party.
        let poller = run(&[(0, HOME), (600, HOME), (1200, HOME), (1800, HOME)]);
        assert!(poller.iter().all(|s| s.lone_requests == 0), "{poller:?}");
        // A late companion makes the latest request not alone.
        let mut h = NetworkHistory::default();
        h.observe(HOME, at(-60), true);
        h.observe(THIEF, at(0), true);
        h.observe(THIEF, at(600), true);
        h.observe(THIEF, at(595), false);
        assert_eq!(h.observe(THIEF, at(1200), true).lone_requests, 1);
    }

    #[test]
    fn late_events_do_not_move_current_and_state_stays_bounded() {
        let mut h = NetworkHistory::default();
        h.observe(HOME, at(100), true);
        h.observe(THIEF, at(50), false);
        // Still on HOME: going to CARRIER is a plain switch, not a return.
        assert_eq!(h.observe(CARRIER, at(110), true).returns, 0);
        for i in 0..100u32 {
            h.observe(i % 7, at(200 + i64::from(i)), true);
        }
        assert!(h.networks.len() <= NETWORKS_CAP);
        assert!(h.returns.len() <= RETURNS_CAP);
    }
}
