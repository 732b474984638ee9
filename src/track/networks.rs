//! Per-network history of one session: the few networks (ASNs) it used lately, how busy
//! each is now, how it has been used, and how often the session switched back to a network
//! it had just left (a [`Spot`]: an ASN, and inside it the places GeoIP tells apart).
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
//! Returns compare [`Spot`]s, not bare ASNs: one ISP (or one carrier, for fixed and mobile
//! alike) covers a country, and a thief on the owner's own ISP two cities away is a second
//! party as plainly as one on another ISP. Two spots of one ASN differ when GeoIP places their
//! addresses more than [`PLACES_APART_KM`] apart: two address blocks GeoIP tells apart (a
//! carrier's gateway region and a city block, two cities), which one device behind one
//! address does not alternate between. The address pools of one office or one carrier NAT
//! (blocks GeoIP puts in the same city) stay one network, as does anything unlocated, and an
//! IPv4 and an IPv6 address of one ASN are never told apart by place (dual-stack clients use
//! both, and databases often locate the two families differently).
//!
//! Invariants: pure (event time only); bounded (at most [`NETWORKS_CAP`] networks,
//! [`SPOTS_CAP`] spots and [`RETURNS_CAP`] return times per session, least recently used
//! network or spot forgotten first);
//! a late event counts towards rates and companions but never moves "current" or "left".
//!
//! Allowlisted networks (VPN egress, privacy relays) take part: the allowlist says their
//! location and ASN say nothing about where the user is, not that they cannot be one of two
//! parties. A session begun on a relay has the relay as its first network, and a thief's
//! network beside it is a second one.
//!
//! What it does NOT do: decide what is suspicious (the model weighs the signals), or
//! compare places (travel and ASN changes are the caller's, and skip allowlisted networks).

use super::rate::MinuteWindow;
use crate::event::EventTime;

/// Networks remembered per session: home, carrier, office and one more.
pub(crate) const NETWORKS_CAP: usize = 4;

/// Two places of one ASN farther apart than this are two networks for returns: beyond the
/// spread of one metro area's blocks, so GeoIP's city-to-suburb jitter inside a pool is not
/// taken for a second party.
pub(crate) const PLACES_APART_KM: f64 = 100.0;

/// Spots remembered per session for returns (each ASN can hold a few places).
pub(crate) const SPOTS_CAP: usize = 6;

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

/// Where a request came from, as far as telling two parties apart goes: its ASN, its address
/// family and, for a located direct connection, GeoIP's place for it (`None` when unlocated
/// or on a shared egress, whose place says nothing about which party is there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spot {
    pub asn: u32,
    pub ipv6: bool,
    /// `(lat, lon)` in degrees.
    pub place: Option<(f64, f64)>,
    /// A shared egress (privacy relay, satellite link, allowlisted VPN): one honest device
    /// alternates between it and its own line (Safari through the relay, apps direct; a
    /// split tunnel), so a return involving one is weaker evidence than a return between two
    /// of a party's own connections.
    pub shared: bool,
    /// A catalogued hosting/VPN network: no honest device splits its traffic between one and
    /// a shared egress (a VPN carries the relay's traffic too), so such a return is direct.
    pub anonymiser: bool,
}

impl Spot {
    /// A switch between `self` and `other` that one honest device makes: through a shared
    /// egress and back to its own line.
    fn honest_split(&self, other: &Spot) -> bool {
        (self.shared && !other.anonymiser) || (other.shared && !self.anonymiser)
    }
}

impl Spot {
    /// Whether `self` and `other` may be one party's network: the same ASN, and no two places
    /// of one address family more than [`PLACES_APART_KM`] apart.
    fn same_as(&self, other: &Spot) -> bool {
        self.asn == other.asn
            && match (self.place, other.place) {
                (Some(here), Some(there)) if self.ipv6 == other.ipv6 => {
                    // One place (the common case) needs no trigonometry.
                    here == there
                        || super::geometry::great_circle_km(here, there) <= PLACES_APART_KM
                }
                _ => true,
            }
    }
}

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
    /// Of `returns`, those between two networks neither of which is a shared egress, or a
    /// shared egress and a hosting/VPN network: two parties' connections (home line,
    /// carrier, relay, hosting host) interleaving.
    pub direct_returns: u32,
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
    /// Spot of the latest in-order request.
    current: Option<Spot>,
    /// The spot used before `current`.
    left: Option<Spot>,
    /// When each recent spot was last used (most recently used last).
    spots: Vec<(Spot, i64)>,
    /// Event times (ms) of returns, oldest first.
    returns: Vec<i64>,
    /// Event times (ms) of the returns between two unshared networks, oldest first.
    direct_returns: Vec<i64>,
}

impl NetworkHistory {
    /// Fold in a request from `spot` at `now` and report what it shows. `in_order`: `now` is
    /// not older than the session's latest request.
    pub(crate) fn observe(&mut self, spot: Spot, now: EventTime, in_order: bool) -> NetworkSignals {
        let t = now.0;
        let asn = spot.asn;
        let origin = *self.origin.get_or_insert(asn);
        // One scan: the spot's previous use (none if new), then this one recorded.
        let ((_, last), new_spot) = touch_recent(
            &mut self.spots,
            SPOTS_CAP,
            |(s, _)| s.same_as(&spot),
            || (spot, t),
        );
        let last_use = (!new_spot).then_some(*last);
        *last = (*last).max(t);
        if in_order {
            if let Some(current) = self.current.filter(|c| !c.same_as(&spot)) {
                // Back to the spot just left, which was in use moments ago: A → B → A.
                if let Some(left) = self.left.filter(|left| left.same_as(&spot))
                    && last_use.is_some_and(|at| t - at <= RETURN_GAP_MS)
                {
                    note_return(&mut self.returns, t);
                    if !spot.honest_split(&current) && !left.honest_split(&current) {
                        note_return(&mut self.direct_returns, t);
                    }
                }
                self.left = Some(current);
            }
            self.current = Some(spot);
        }
        let returns = recent_returns(&self.returns, t);
        let direct_returns = recent_returns(&self.direct_returns, t);
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
            direct_returns,
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

    /// The blocks it owns (vector buffers), for the byte budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        super::memory::vec(&self.networks)
            + super::memory::vec(&self.spots)
            + super::memory::vec(&self.returns)
            + super::memory::vec(&self.direct_returns)
    }
}

/// Record a return at `t` in `times` (oldest first), keeping the window and the cap.
fn note_return(times: &mut Vec<i64>, t: i64) {
    times.retain(|r| (t - r).abs() <= RETURN_WINDOW_MS);
    if times.len() >= RETURNS_CAP {
        times.remove(0);
    }
    times.push(t);
}

/// Returns in `times` within the window around `t`.
fn recent_returns(times: &[i64], t: i64) -> u32 {
    let n = times
        .iter()
        .filter(|r| (t - **r).abs() <= RETURN_WINDOW_MS)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The entry of `entries` (most recently used last) that `is` picks, moved to the end, or a
/// new one from `make` (the least recently used evicted when `cap` is reached); and whether it
/// was created. A few entries at most, so a scan beats a map; the vector grows one entry at a
/// time (most sessions and login sessions only ever use one network).
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
    super::memory::push_exact(entries, entry);
    let last = entries.len() - 1;
    (&mut entries[last], new)
}

#[cfg(test)]
mod tests;
