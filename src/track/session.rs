//! One session's state (keyed by token fingerprint): where and on what device it was used,
//! its networks, addresses, countries and request rate, and the observations waiting for
//! their assessment; [`SessionState::observe`] compares a request with it and folds it in.
//!
//! Data flow: `enrich` → **track** (`SessionTracker::observe` calls this per event) →
//! `features` → `score`; `record` after `decide` stores the verdict back here.
//!
//! Invariants: every collection is bounded (recent sets of 8, 16 network-change times,
//! `MAX_PENDING` waiting observations); a late event is compared but does not overwrite
//! newer "last" values; allowlisted and relay hops neither trigger nor poison the ASN,
//! country and network-change comparisons; [`SessionState::approx_bytes`] counts what the
//! allocator hands out for the byte budget (the `memory` rules).
//!
//! What it does NOT do: find, create or evict a session (the tracker and `eviction` do),
//! look at other tokens of the same user (`user`), or render the API view (`snapshot`).

use std::net::IpAddr;
use std::sync::Arc;

use crate::event::{
    Action, Claims, EventTime, GeoPoint, IdentifiedEvent, Observation, TokenKind, TravelEvidence,
    UserAgentInfo,
};

use super::geometry::{NetworkRole, travel_leg};
use super::rate::RateState;
use super::snapshot::SignalSnapshot;
use super::{memory, networks};

/// Recent IPs and countries kept per session. Eight covers a phone moving between home Wi-Fi,
/// office and carrier NAT pools without letting one session grow without bound.
const RECENT_SET_CAP: usize = 8;

/// Window over which ASN changes are counted for `Observation::recent_network_changes`.
const NETWORK_CHANGE_WINDOW_MS: i64 = 10 * 60 * 1000;

/// ASN-change times kept per session: more changes than this within the window already say
/// "interleaved networks"; the count saturates here.
const NETWORK_CHANGES_CAP: usize = 16;

/// "unknown" (or empty) says nothing about the device, so it is never compared.
fn is_known(name: &str) -> bool {
    !name.is_empty() && !name.eq_ignore_ascii_case("unknown")
}

/// A small set that keeps the most recently seen values (most recent last). It grows one
/// item at a time: most sessions only ever see one address, country and ASN.
#[derive(Debug, Clone)]
pub(super) struct RecentSet<T> {
    pub(super) items: Vec<T>,
}

impl<T> Default for RecentSet<T> {
    fn default() -> Self {
        RecentSet { items: Vec::new() }
    }
}

impl<T: PartialEq> RecentSet<T> {
    /// Insert or refresh `value`; true if it was not in the set.
    fn touch(&mut self, value: T) -> bool {
        if let Some(pos) = self.items.iter().position(|v| *v == value) {
            let existing = self.items.remove(pos);
            self.items.push(existing);
            false
        } else {
            if self.items.len() >= RECENT_SET_CAP {
                self.items.remove(0);
            }
            memory::push_exact(&mut self.items, value);
            true
        }
    }
    fn contains(&self, value: &T) -> bool {
        self.items.contains(value)
    }
    fn len(&self) -> usize {
        self.items.len()
    }
    /// The buffer.
    fn heap_bytes(&self) -> usize {
        memory::vec(&self.items)
    }
}

/// A located use: where and when, and from which address.
#[derive(Debug, Clone)]
pub(super) struct LocatedUse {
    pub(super) point: GeoPoint,
    pub(super) at: EventTime,
    pub(super) ip: IpAddr,
    /// Sent by a phone ([`crate::event::UserAgentInfo::is_phone`]).
    pub(super) phone: bool,
}

impl LocatedUse {
    /// A use of `event` at `point`.
    pub(super) fn of(event: &IdentifiedEvent, point: &GeoPoint) -> LocatedUse {
        LocatedUse {
            point: point.clone(),
            at: event.event.time,
            ip: event.event.client_ip,
            phone: event
                .enrichment
                .user_agent
                .as_ref()
                .is_some_and(|ua| ua.is_phone()),
        }
    }

    /// The leg from this use to `here`, a phone's if either end is one.
    pub(super) fn leg_to(&self, here: &LocatedUse) -> TravelEvidence {
        TravelEvidence {
            phone: self.phone || here.phone,
            ..travel_leg(&self.point, self.at, &here.point, here.at)
        }
    }
}

/// The device a session was established on.
#[derive(Debug, Clone)]
pub(super) struct DeviceIdentity {
    pub(super) family: Arc<str>,
    pub(super) os: Arc<str>,
    pub(super) scripted: bool,
}

/// An observation waiting for its assessment (kept only when it carries a signal). The
/// pipeline observes a whole batch before it records, so several can wait; `index` (the
/// session's request number) pairs each with its `record` call, which come in the same order.
#[derive(Debug, Clone)]
pub(super) struct PendingObservation {
    pub(super) index: u64,
    pub(super) seq: u64,
    pub(super) at: EventTime,
    pub(super) observation: Observation,
}

/// One session's state. Small: a few hundred bytes plus bounded sets.
#[derive(Debug)]
pub(super) struct SessionState {
    /// Distinguishes this incarnation from an evicted-and-recreated one in the queues.
    pub(super) generation: u64,
    pub(super) kind: TokenKind,
    pub(super) claims: Option<Arc<Claims>>,
    pub(super) first_seen: EventTime,
    pub(super) last_seen: EventTime,
    pub(super) requests: u64,
    pub(super) last_ip: IpAddr,
    pub(super) recent_ips: RecentSet<IpAddr>,
    /// IPs that were new when seen (approximate distinct count: the set is bounded).
    pub(super) distinct_ips: u32,
    pub(super) countries: RecentSet<Arc<str>>,
    pub(super) last_located: Option<LocatedUse>,
    /// The latest use through a privacy relay, at its coarse place. Kept apart from
    /// `last_located` so a relay hop never blurs a precise place; both bound the next leg.
    /// Boxed: most sessions never use a relay.
    pub(super) last_relayed: Option<Box<LocatedUse>>,
    pub(super) asn: Option<u32>,
    /// Recently seen ASNs (non-allowlisted), for `new_asn`.
    pub(super) recent_asns: RecentSet<u32>,
    /// ASNs that were new when seen (approximate distinct count: the set is bounded).
    pub(super) distinct_asns: u32,
    /// Event times (ms) of the latest ASN changes, oldest first, within the window.
    pub(super) network_changes: Vec<i64>,
    /// Per-network rates, age, lone requests and returns.
    pub(super) networks: networks::NetworkHistory,
    pub(super) country: Option<Arc<str>>,
    /// First browser use; the first scripted use until a browser shows up.
    pub(super) device: Option<DeviceIdentity>,
    pub(super) scripted_seen: bool,
    pub(super) rate: RateState,
    /// Token `exp` in ms, when known.
    pub(super) expires_ms: Option<i64>,
    pub(super) last_score: f64,
    pub(super) last_action: Option<Action>,
    /// Requests whose assessment has been recorded.
    pub(super) recorded: u64,
    /// Signal-carrying observations not yet recorded, oldest first (at most `MAX_PENDING`).
    pub(super) pending: Vec<PendingObservation>,
    pub(super) last_signal: Option<Box<SignalSnapshot>>,
    /// What this entry was last charged to the byte budget.
    pub(super) charged_bytes: usize,
}

impl SessionState {
    pub(super) fn start(event: &IdentifiedEvent, generation: u64) -> Self {
        let time = event.event.time;
        let claims = event.identity.claims.clone();
        let expires_ms = claims
            .as_ref()
            .and_then(|c| c.exp)
            .map(|exp| exp.saturating_mul(1000));
        SessionState {
            generation,
            kind: event.identity.kind,
            claims,
            first_seen: time,
            last_seen: time,
            requests: 0,
            last_ip: event.event.client_ip,
            recent_ips: RecentSet::default(),
            distinct_ips: 0,
            countries: RecentSet::default(),
            last_located: None,
            last_relayed: None,
            asn: None,
            recent_asns: RecentSet::default(),
            distinct_asns: 0,
            network_changes: Vec::new(),
            networks: networks::NetworkHistory::default(),
            country: None,
            device: None,
            scripted_seen: false,
            rate: RateState::new(time),
            expires_ms,
            last_score: 0.0,
            last_action: None,
            recorded: 0,
            pending: Vec::new(),
            last_signal: None,
            charged_bytes: 0,
        }
    }

    /// Compare `event` with the session so far, fill `obs`, then fold the event in.
    /// `place`: where the request puts its user ([`NetworkRole::place`]); `spot`: its network
    /// ([`NetworkRole::spot`]), when the ASN is known.
    pub(super) fn observe(
        &mut self,
        event: &IdentifiedEvent,
        kind: NetworkRole,
        place: Option<&GeoPoint>,
        spot: Option<networks::Spot>,
        obs: &mut Observation,
    ) {
        let now = event.event.time;
        let ip = event.event.client_ip;
        let enrichment = &event.enrichment;
        let is_first = self.requests == 0;
        let allowlisted = kind.is_shared();
        // A late event is compared, but does not replace newer "last" values.
        let in_order = now >= self.last_seen;

        // Travel from where the session was last seen: its latest direct and its latest
        // relay use each bound the distance, and the faster leg is the tighter bound. The
        // same address twice is the same place, whatever a reloaded GeoIP database now says
        // about it (Panther does the same).
        if let Some(here) = place {
            let latest = LocatedUse::of(event, here);
            obs.travel = [self.last_located.as_ref(), self.last_relayed.as_deref()]
                .into_iter()
                .flatten()
                .filter(|prev| prev.ip != ip)
                .map(|prev| prev.leg_to(&latest))
                .filter(|leg| leg.distance_km > 0.0)
                .max_by(|a, b| a.speed_kmh.total_cmp(&b.speed_kmh));
            match (kind, &mut self.last_relayed) {
                (NetworkRole::Relay, Some(prev)) if now >= prev.at => **prev = latest,
                (NetworkRole::Relay, Some(_)) => {}
                (NetworkRole::Relay, slot @ None) => *slot = Some(Box::new(latest)),
                _ if self.last_located.as_ref().is_none_or(|p| now >= p.at) => {
                    self.last_located = Some(latest);
                }
                _ => {}
            }
        }

        // Network changes: never for allowlisted hops, and they do not become the new normal.
        if !allowlisted {
            if let (Some(before), Some(after)) = (self.asn, enrichment.asn)
                && before != after
            {
                obs.asn_change = Some((before, after));
                self.note_network_change(now);
            }
            if let Some(asn) = enrichment.asn {
                obs.new_asn = self.recent_asns.len() > 0 && !self.recent_asns.contains(&asn);
                if self.recent_asns.touch(asn) {
                    self.distinct_asns = self.distinct_asns.saturating_add(1);
                }
            }
            obs.recent_network_changes = self.recent_network_changes(now);
            if enrichment.asn.is_some() && (in_order || self.asn.is_none()) {
                self.asn = enrichment.asn;
            }
            if let Some(country) = place.and_then(|g| g.country.as_ref()) {
                if let Some(before) = &self.country
                    && before != country
                {
                    obs.country_change = Some((before.to_string(), country.to_string()));
                }
                if in_order || self.country.is_none() {
                    self.country = Some(country.clone());
                }
                self.countries.touch(country.clone());
            }
        }

        // Per network, allowlisted ones included: a relay or VPN says nothing about where the
        // user is, but it is still one party's network. A session begun on a privacy relay
        // has the relay as its first network, so a thief's lone requests or scraping from
        // another network show as a second party's.
        if let Some(spot) = spot {
            let n = self.networks.observe(spot, now, in_order);
            obs.network_returns = n.returns;
            obs.network_direct_returns = n.direct_returns;
            obs.network_rate_per_minute = n.rate_per_minute;
            obs.network_age_s = n.age_s;
            obs.network_lone_requests = n.lone_requests;
        }

        if let Some(ua) = &enrichment.user_agent {
            self.observe_user_agent(ua, obs);
        }

        obs.new_ip = !is_first && !self.recent_ips.contains(&ip);
        if self.recent_ips.touch(ip) {
            self.distinct_ips = self.distinct_ips.saturating_add(1);
        }
        if in_order {
            self.last_ip = ip;
        }

        self.rate.record(now);
        obs.rate = self.rate.evidence();
        if !is_first {
            obs.since_previous_s = now.seconds_since(self.last_seen).max(0.0);
        }

        self.requests = self.requests.saturating_add(1);
        self.first_seen = self.first_seen.min(now);
        self.last_seen = self.last_seen.max(now);
        obs.session_requests = self.requests;
        obs.distinct_ips = self.distinct_ips;
        obs.distinct_countries = u32::try_from(self.countries.len()).unwrap_or(u32::MAX);
        obs.distinct_asns = self.distinct_asns;
        obs.session_age_s = now.seconds_since(self.first_seen).max(0.0);
    }

    /// Remember an ASN change at `now`, forgetting those outside the window (bounded).
    fn note_network_change(&mut self, now: EventTime) {
        self.network_changes
            .retain(|t| (now.0 - t).abs() <= NETWORK_CHANGE_WINDOW_MS);
        if self.network_changes.len() >= NETWORK_CHANGES_CAP {
            self.network_changes.remove(0);
        }
        self.network_changes.push(now.0);
    }

    /// ASN changes within the window around `now` (absolute difference: late events too).
    fn recent_network_changes(&self, now: EventTime) -> u32 {
        let n = self
            .network_changes
            .iter()
            .filter(|t| (now.0 - **t).abs() <= NETWORK_CHANGE_WINDOW_MS)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// UA family and OS are compared with the device the session was established on (its
    /// first browser use), not with the previous request: an attacker alternating with the
    /// owner must not make "their" browser the reference.
    fn observe_user_agent(&mut self, ua: &UserAgentInfo, obs: &mut Observation) {
        self.scripted_seen |= ua.scripted;
        if !is_known(&ua.family) {
            return;
        }
        match &self.device {
            None => {
                self.device = Some(DeviceIdentity {
                    family: ua.family.clone(),
                    os: ua.os.clone(),
                    scripted: ua.scripted,
                });
            }
            Some(device) => {
                if device.family != ua.family {
                    obs.user_agent_change =
                        Some((device.family.to_string(), ua.family.to_string()));
                }
                // A scripted client's "OS" is whatever its library reports (usually nothing).
                if !device.scripted
                    && !ua.scripted
                    && is_known(&device.os)
                    && is_known(&ua.os)
                    && device.os != ua.os
                {
                    obs.os_change = Some((device.os.to_string(), ua.os.to_string()));
                }
                obs.scripted_client = ua.scripted && !device.scripted;
                // A session first seen from a script takes its first browser use as the device.
                if device.scripted && !ua.scripted {
                    self.device = Some(DeviceIdentity {
                        family: ua.family.clone(),
                        os: ua.os.clone(),
                        scripted: false,
                    });
                }
            }
        }
    }

    /// What the session takes from the allocator: its boxed state and every block it owns
    /// (for the byte budget). Shared blocks (claims the verification cache holds too, city
    /// names, User-Agent names) are charged in full.
    pub(super) fn approx_bytes(&self) -> usize {
        let mut bytes = memory::boxed::<SessionState>();
        bytes += self.claims.as_deref().map_or(0, claims_bytes);
        bytes += self.recent_ips.heap_bytes();
        bytes += self.countries.heap_bytes();
        bytes += self
            .countries
            .items
            .iter()
            .map(memory::arc_str)
            .sum::<usize>();
        bytes += self.country.as_ref().map_or(0, memory::arc_str);
        bytes += self.recent_asns.heap_bytes();
        bytes += memory::vec(&self.network_changes);
        bytes += self.networks.heap_bytes();
        if let Some(located) = &self.last_located {
            bytes += geo_heap_bytes(&located.point);
        }
        if let Some(relayed) = &self.last_relayed {
            bytes += memory::boxed::<LocatedUse>() + geo_heap_bytes(&relayed.point);
        }
        if let Some(device) = &self.device {
            bytes += memory::arc_str(&device.family) + memory::arc_str(&device.os);
        }
        bytes += memory::vec(&self.pending);
        bytes += self
            .pending
            .iter()
            .map(|p| observation_heap_bytes(&p.observation))
            .sum::<usize>();
        if let Some(signal) = &self.last_signal {
            bytes += memory::boxed::<SignalSnapshot>()
                + memory::vec(&signal.assessment.contributions)
                + observation_heap_bytes(&signal.observation);
        }
        bytes
    }
}

/// The blocks a place owns: its city and country names.
pub(super) fn geo_heap_bytes(point: &GeoPoint) -> usize {
    point.city.as_ref().map_or(0, memory::arc_str)
        + point.country.as_ref().map_or(0, memory::arc_str)
}

/// The blocks an observation owns beyond itself: the places of its travel legs, the names of
/// its changes and its catalogued network's organisation (shared, so charged in full).
fn observation_heap_bytes(obs: &Observation) -> usize {
    let leg = |t: &Option<TravelEvidence>| {
        t.as_ref()
            .map_or(0, |t| geo_heap_bytes(&t.from) + geo_heap_bytes(&t.to))
    };
    let pair = |p: &Option<(String, String)>| {
        p.as_ref()
            .map_or(0, |(a, b)| memory::string(a) + memory::string(b))
    };
    leg(&obs.travel)
        + leg(&obs.user_travel)
        + obs
            .network
            .as_ref()
            .and_then(|n| n.org.as_ref())
            .map_or(0, memory::arc_str)
        + pair(&obs.user_agent_change)
        + pair(&obs.os_change)
        + pair(&obs.country_change)
}

/// Verified claims behind their `Arc`, with their strings.
fn claims_bytes(claims: &Claims) -> usize {
    memory::arc::<Claims>()
        + [&claims.iss, &claims.sub, &claims.jti, &claims.sid]
            .into_iter()
            .flatten()
            .map(memory::string)
            .sum::<usize>()
}

/// True when the observation carries anything a scorer could weigh; only those are kept for
/// the session view, so quiet sessions pay nothing for explanations.
pub(super) fn carries_signal(obs: &Observation) -> bool {
    obs.travel.is_some()
        || obs.user_travel.is_some()
        || obs.user_agent_change.is_some()
        || obs.os_change.is_some()
        || obs.asn_change.is_some()
        || obs.country_change.is_some()
        || obs.scripted_client
        || obs.network_returns > 0
        || obs
            .rate
            .is_some_and(|r| r.per_minute > 2.0 * r.baseline_per_minute.max(1.0))
}
