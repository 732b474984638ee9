//! Stage 5, track: bounded per-session (and per-user) state, turned into an [`Observation`].
//!
//! Data flow: `enrich` → **track** → `score` → `decide`. For every [`IdentifiedEvent`] the
//! pipeline calls [`SessionTracker::observe`], which compares the request with what the session
//! (keyed by token fingerprint) and the user (keyed by JWT `iss` + `sub`, with the networks
//! of each login session `sid` across refreshed tokens) did before, updates
//! that state and returns the features: travel legs, request rate against the session's own
//! baseline, User-Agent / OS / ASN / country changes. After scoring and deciding, the pipeline
//! calls [`SessionTracker::record`] so the session remembers its last assessment and the action
//! already taken (the policy never decides twice for one session).
//!
//! Invariants:
//! - Pure: no I/O, no wall clock. Every comparison uses event time, so a replay gives the same
//!   observations as the live run.
//! - State is bounded: at most `detect.max_sessions` sessions (and as many users), and at most
//!   `detect.max_session_bytes` of tracker state, the least recently seen session or user
//!   evicted first (one order for both: a user is seen whenever one of its tokens is, so its
//!   sessions go before it). [`SessionTracker::evict_idle`] forgets sessions idle past
//!   `detect.session_idle_timeout` or whose token expired, and users idle past the
//!   concurrent-use window. Eviction uses lazily-maintained min-heaps (one entry per session
//!   or user, re-queued only when found stale), so it costs amortized O(log n) per event,
//!   never a scan per event.
//! - The byte bound counts what the allocator hands out (`memory`), not what the state
//!   "contains": every session's and user's boxed state (608 and 264 bytes) and every block
//!   it owns by capacity (vectors, strings, `Arc`s — shared ones in full, to each holder),
//!   rounded as glibc's malloc rounds blocks; the hash tables of both maps as they are (a
//!   bucket is a key and a box pointer, 24 or 16 bytes, and a control byte; a table holds 8/7
//!   to 16/7 buckets per entry and keeps its buckets when entries go, so it is sized by the
//!   most entries ever held); the shard arrays; and the three eviction queues' buffers (32 or
//!   24 bytes an entry; a queue may hold entries of gone sessions up to twice the live ones
//!   before it is compacted). Measured (`BENCHMARKS.md`): ≈ 1.1 KiB per session of an opaque
//!   token used once, ≈ 2.3 KiB per JWT session with its user and login session; a busy
//!   session (several networks, an explained signal) takes up to ≈ 3 KiB. Sharing is charged
//!   to every holder, so the allocator really holds ~10 % less than the budget says.
//!   Outside the bound, and not growing with tokens: this struct and its settings (< 1 KiB
//!   plus the allow and relay lists), the moment a table or queue grows (old and new buffer
//!   both live: up to twice one shard's table or one queue), and a session's growth by one
//!   event before the eviction it triggers. The verification cache (`identify`), enrich's
//!   User-Agent cache and batches in flight are bounded by their own settings
//!   (config/default.toml).
//! - The maps are `DashMap`s behind this type; no guard ever leaves a method and no guard is
//!   held while another lock is taken in the opposite order (queue lock → map shard only; the
//!   session queue before the user queue where both are held).
//! - Allowlisted networks (`detect.allow_cidrs`, `detect.allow_asns`) yield no travel and no
//!   network change, and do not overwrite the session's last location, ASN or country: a VPN
//!   hop neither triggers nor poisons the next comparison. Privacy relays
//!   (`detect.relay_cidrs`, `detect.relay_asns`) are the same except for travel: a relay
//!   keeps its user's region, so its location counts with an accuracy of [`RELAY_RADIUS_KM`],
//!   kept apart from the last direct location (a coarse place never replaces a precise one).
//! - Out-of-order events (event time going backwards) compare by absolute elapsed time and do
//!   not overwrite newer "last" values; nothing here panics on any input.
//!
//! What it does NOT do: decide whether a feature is suspicious (that is `score`), keep or print
//! raw tokens (only fingerprints and verified claims), or look anything up (GeoIP and
//! User-Agent parsing happened in `enrich`).

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod memory;
mod networks;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use ipnet::IpNet;
use serde::Serialize;

use crate::config::DetectConfig;
use crate::event::{
    Action, Assessment, Claims, EventTime, Fingerprint, GeoPoint, IdentifiedEvent, Observation,
    RateEvidence, TokenKind, TravelEvidence, UserAgentInfo,
};

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Accuracy radius (km) of a privacy relay's location. Relays keep the user's region, not
/// the city (iCloud Private Relay's egress "maintains general location"; where a country has
/// no egress nearby it can be hundreds of km off), so a relay use says "within this of its
/// egress": enough to show a replay from another continent, never a move within a region.
pub const RELAY_RADIUS_KM: f64 = 500.0;

/// How far back a user's other token counts for concurrent use: two tokens of one user used
/// hours apart in two places is travel, not theft, once the gap is this long.
pub const USER_TRAVEL_WINDOW_S: i64 = 6 * 3600;

/// Recent IPs and countries kept per session. Eight covers a phone moving between home Wi-Fi,
/// office and carrier NAT pools without letting one session grow without bound.
const RECENT_SET_CAP: usize = 8;

/// Rate ring: 12 slots of 5 s cover the last 55–60 s in 24 bytes. Per-second buckets would be
/// exact but cost 5× the memory for a feature that only needs "about a minute".
const RATE_SLOT_S: i64 = 5;
const RATE_SLOTS: usize = 12;

/// EWMA weight of the minute just closed. 0.25 makes the baseline follow a genuine change of
/// habit within a few minutes while one odd minute moves it by a quarter at most.
const BASELINE_ALPHA: f64 = 0.25;

/// A closed minute counts at most this multiple of the current baseline into the EWMA, so a
/// burst (an attacker's scraping) cannot normalise itself within a minute or two.
const BASELINE_WINSOR: f64 = 3.0;

/// Full minutes a session must have been active before its rate is compared with its
/// baseline; earlier, the "baseline" is noise.
const BASELINE_MIN_MINUTES: u32 = 3;

/// Sessions are kept this long past their token's `exp`: JWTs are still accepted within the
/// verification leeway, and such a request should not look like a brand-new session.
const EXPIRY_GRACE_MS: i64 = 5 * 60 * 1000;

/// Window over which ASN changes are counted for `Observation::recent_network_changes`.
const NETWORK_CHANGE_WINDOW_MS: i64 = 10 * 60 * 1000;

/// ASN-change times kept per session: more changes than this within the window already say
/// "interleaved networks"; the count saturates here.
const NETWORK_CHANGES_CAP: usize = 16;

/// Observations waiting for `record` per session, at most (a batch rarely holds more of one
/// session's signal-carrying events).
const MAX_PENDING: usize = 64;

/// Lazily-maintained min-heap of `(stamp ms, generation, key)`.
type Queue<K> = BinaryHeap<Reverse<(i64, u64, K)>>;

/// Great-circle distance between two points (haversine), km.
/// A non-finite coordinate (a corrupt database record) gives 0: no travel rather than a
/// made-up one.
pub fn haversine_km(from: &GeoPoint, to: &GeoPoint) -> f64 {
    great_circle_km((from.lat, from.lon), (to.lat, to.lon))
}

/// Great-circle distance in km between two `(lat, lon)` points in degrees (haversine, mean
/// Earth radius); 0 for non-finite input.
pub fn great_circle_km(from: (f64, f64), to: (f64, f64)) -> f64 {
    if ![from.0, from.1, to.0, to.1].iter().all(|v| v.is_finite()) {
        return 0.0;
    }
    let (lat1, lat2) = (from.0.to_radians(), to.0.to_radians());
    let d_lat = lat2 - lat1;
    let d_lon = (to.1 - from.1).to_radians();
    let a = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    // Rounding can push `a` a hair above 1 for antipodes.
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// The uncertainty-aware travel leg between two located uses (DESIGN §5).
///
/// Distance is the lower bound `max(0, d − r1 − r2)` (both GeoIP accuracy radii subtracted);
/// elapsed is the absolute event-time difference floored at 1 s, so out-of-order events and
/// same-second pairs never divide by zero or go negative; speed is km/h.
pub fn travel_leg(
    from: &GeoPoint,
    from_time: EventTime,
    to: &GeoPoint,
    to_time: EventTime,
) -> TravelEvidence {
    let radii = finite_non_negative(from.radius_km) + finite_non_negative(to.radius_km);
    let distance_km = (haversine_km(from, to) - radii).max(0.0);
    let elapsed_s = to_time.seconds_since(from_time).abs().max(1.0);
    TravelEvidence {
        from: from.clone(),
        to: to.clone(),
        distance_km,
        elapsed_s,
        speed_kmh: distance_km / elapsed_s * 3600.0,
    }
}

fn finite_non_negative(value: f64) -> f64 {
    if value.is_finite() {
        value.max(0.0)
    } else {
        0.0
    }
}

/// An eviction queue, and the bytes its buffer takes (for the budget), brought up to date
/// whenever a guard is let go.
struct EvictionQueue<K> {
    heap: Mutex<Queue<K>>,
    bytes: AtomicUsize,
}

/// The locked queue; dereferences to it.
struct QueueGuard<'a, K> {
    heap: MutexGuard<'a, Queue<K>>,
    bytes: &'a AtomicUsize,
}

impl<K: Ord> EvictionQueue<K> {
    fn new() -> Self {
        EvictionQueue {
            heap: Mutex::new(BinaryHeap::new()),
            bytes: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> QueueGuard<'_, K> {
        QueueGuard {
            // A panic elsewhere while holding a queue leaves it a valid heap; keep going.
            heap: self.heap.lock().unwrap_or_else(PoisonError::into_inner),
            bytes: &self.bytes,
        }
    }

    /// Bytes of the buffer, as of the last guard let go.
    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl<K> Deref for QueueGuard<'_, K> {
    type Target = Queue<K>;
    fn deref(&self) -> &Queue<K> {
        &self.heap
    }
}

impl<K> DerefMut for QueueGuard<'_, K> {
    fn deref_mut(&mut self) -> &mut Queue<K> {
        &mut self.heap
    }
}

impl<K> Drop for QueueGuard<'_, K> {
    fn drop(&mut self) {
        self.bytes
            .store(memory::binary_heap(&self.heap), Ordering::Relaxed);
    }
}

/// "unknown" (or empty) says nothing about the device, so it is never compared.
fn is_known(name: &str) -> bool {
    !name.is_empty() && !name.eq_ignore_ascii_case("unknown")
}

/// A small set that keeps the most recently seen values (most recent last). It grows one
/// item at a time: most sessions only ever see one address, country and ASN.
#[derive(Debug, Clone)]
struct RecentSet<T> {
    items: Vec<T>,
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

/// Requests in the last minute of event time: 12 slots of 5 s (`RATE_SLOTS`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinuteWindow {
    /// Requests per 5-s slot; slot `s` lives at `s mod 12`.
    slots: [u16; RATE_SLOTS],
    /// Newest slot index seen (`secs div 5`).
    head_slot: i64,
}

impl MinuteWindow {
    pub(crate) fn new(time: EventTime) -> Self {
        MinuteWindow {
            slots: [0; RATE_SLOTS],
            head_slot: time.secs().div_euclid(RATE_SLOT_S),
        }
    }

    fn slot_index(slot: i64) -> usize {
        // rem_euclid of a positive modulus is in 0..RATE_SLOTS.
        slot.rem_euclid(RATE_SLOTS as i64) as usize
    }

    /// Count a request at `time`. A late event still inside the window counts; an older one
    /// does not.
    pub(crate) fn record(&mut self, time: EventTime) {
        let slot = time.secs().div_euclid(RATE_SLOT_S);
        if slot > self.head_slot {
            let advance = (slot - self.head_slot).min(RATE_SLOTS as i64);
            for cleared in (slot - advance + 1)..=slot {
                self.slots[Self::slot_index(cleared)] = 0;
            }
            self.head_slot = slot;
        }
        if slot > self.head_slot - RATE_SLOTS as i64 {
            let i = Self::slot_index(slot);
            self.slots[i] = self.slots[i].saturating_add(1);
        }
    }

    /// Requests in the minute up to the newest recorded one.
    pub(crate) fn count(&self) -> u32 {
        self.slots.iter().map(|c| u32::from(*c)).sum()
    }
}

/// Request-rate windows of one session, on event time.
#[derive(Debug, Clone)]
struct RateState {
    /// The last minute.
    window: MinuteWindow,
    /// Minute being counted (`secs div 60`).
    minute: i64,
    /// Requests in `minute`.
    minute_count: u32,
    /// The session's first minute is partial by construction (and holds the login burst):
    /// it never enters the baseline.
    in_first_minute: bool,
    /// EWMA of requests per active minute.
    baseline: f64,
    /// Full active minutes folded into `baseline`.
    baseline_minutes: u32,
}

impl RateState {
    fn new(time: EventTime) -> Self {
        RateState {
            window: MinuteWindow::new(time),
            minute: time.secs().div_euclid(60),
            minute_count: 0,
            in_first_minute: true,
            baseline: 0.0,
            baseline_minutes: 0,
        }
    }

    fn record(&mut self, time: EventTime) {
        self.window.record(time);
        let minute = time.secs().div_euclid(60);
        if minute > self.minute {
            self.close_minute();
            self.minute = minute;
            self.minute_count = 0;
        }
        if minute == self.minute {
            self.minute_count = self.minute_count.saturating_add(1);
        }
    }

    /// Fold the minute just ended into the baseline. Idle minutes are skipped, not counted as
    /// zeros: a lunch break says nothing about how intensely the owner uses the token, and
    /// zeros would make every return from idle look like an anomaly.
    fn close_minute(&mut self) {
        if std::mem::take(&mut self.in_first_minute) || self.minute_count == 0 {
            return;
        }
        let count = f64::from(self.minute_count);
        if self.baseline_minutes == 0 {
            self.baseline = count;
        } else {
            let capped = count.min(self.baseline.max(1.0) * BASELINE_WINSOR);
            self.baseline = BASELINE_ALPHA * capped + (1.0 - BASELINE_ALPHA) * self.baseline;
        }
        self.baseline_minutes = self.baseline_minutes.saturating_add(1);
    }

    fn per_minute(&self) -> u32 {
        self.window.count()
    }

    fn baseline(&self) -> Option<f64> {
        (self.baseline_minutes >= BASELINE_MIN_MINUTES).then_some(self.baseline)
    }

    fn evidence(&self) -> Option<RateEvidence> {
        self.baseline().map(|baseline| RateEvidence {
            per_minute: f64::from(self.per_minute()),
            baseline_per_minute: baseline,
        })
    }
}

/// What a request's network says about where its user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetworkKind {
    /// The user's own connection: its location, ASN and country describe the user.
    Direct,
    /// A privacy relay: shared egress that keeps the user's region ([`RELAY_RADIUS_KM`]).
    Relay,
    /// Allowlisted (VPN egress, satellite): nothing about where the user is.
    Allowlisted,
}

impl NetworkKind {
    /// Shared egress: no ASN, country or network change (`allowlisted_network`).
    fn is_shared(self) -> bool {
        self != NetworkKind::Direct
    }

    /// Where a request on this network puts its user, for travel.
    fn place(self, geo: Option<&GeoPoint>) -> Option<Cow<'_, GeoPoint>> {
        let geo = geo?;
        match self {
            NetworkKind::Direct => Some(Cow::Borrowed(geo)),
            NetworkKind::Relay => Some(Cow::Owned(GeoPoint {
                radius_km: geo.radius_km.max(RELAY_RADIUS_KM),
                // The egress may sit across a border from its users: no border to cross.
                country: None,
                ..geo.clone()
            })),
            NetworkKind::Allowlisted => None,
        }
    }

    /// The request's spot in the network history: its ASN, address family and, on a direct
    /// connection, the place GeoIP gives it. A shared egress's place says nothing about which
    /// party is there.
    fn spot(self, asn: u32, ip: IpAddr, geo: Option<&GeoPoint>) -> networks::Spot {
        networks::Spot {
            asn,
            ipv6: ip.to_canonical().is_ipv6(),
            place: geo
                .filter(|_| self == NetworkKind::Direct)
                .map(|g| (g.lat, g.lon)),
        }
    }
}

/// A located use: where and when, and from which address.
#[derive(Debug, Clone)]
struct LocatedUse {
    point: GeoPoint,
    at: EventTime,
    ip: IpAddr,
}

/// The device a session was established on.
#[derive(Debug, Clone)]
struct DeviceIdentity {
    family: Arc<str>,
    os: Arc<str>,
    scripted: bool,
}

/// An observation waiting for its assessment (kept only when it carries a signal). The
/// pipeline observes a whole batch before it records, so several can wait; `index` (the
/// session's request number) pairs each with its `record` call, which come in the same order.
#[derive(Debug, Clone)]
struct PendingObservation {
    index: u64,
    seq: u64,
    at: EventTime,
    observation: Observation,
}

/// The most recent assessment with a non-zero score, with what it rested on.
#[derive(Debug, Clone, Serialize)]
pub struct SignalSnapshot {
    /// Input position of the event.
    pub seq: u64,
    /// Its event time.
    pub event_time: EventTime,
    /// The scorer's verdict (score, contributions strongest first, hard rule).
    pub assessment: Assessment,
    /// The features it was computed from.
    pub observation: Observation,
}

/// One session's state. Small: a few hundred bytes plus bounded sets.
#[derive(Debug)]
struct SessionState {
    /// Distinguishes this incarnation from an evicted-and-recreated one in the queues.
    generation: u64,
    kind: TokenKind,
    claims: Option<Arc<Claims>>,
    first_seen: EventTime,
    last_seen: EventTime,
    requests: u64,
    last_ip: IpAddr,
    recent_ips: RecentSet<IpAddr>,
    /// IPs that were new when seen (approximate distinct count: the set is bounded).
    distinct_ips: u32,
    countries: RecentSet<Arc<str>>,
    last_located: Option<LocatedUse>,
    /// The latest use through a privacy relay, at its coarse place. Kept apart from
    /// `last_located` so a relay hop never blurs a precise place; both bound the next leg.
    /// Boxed: most sessions never use a relay.
    last_relayed: Option<Box<LocatedUse>>,
    asn: Option<u32>,
    /// Recently seen ASNs (non-allowlisted), for `new_asn`.
    recent_asns: RecentSet<u32>,
    /// ASNs that were new when seen (approximate distinct count: the set is bounded).
    distinct_asns: u32,
    /// Event times (ms) of the latest ASN changes, oldest first, within the window.
    network_changes: Vec<i64>,
    /// Per-network rates, age, lone requests and returns.
    networks: networks::NetworkHistory,
    country: Option<Arc<str>>,
    /// First browser use; the first scripted use until a browser shows up.
    device: Option<DeviceIdentity>,
    scripted_seen: bool,
    rate: RateState,
    /// Token `exp` in ms, when known.
    expires_ms: Option<i64>,
    last_score: f64,
    last_action: Option<Action>,
    /// Requests whose assessment has been recorded.
    recorded: u64,
    /// Signal-carrying observations not yet recorded, oldest first (at most `MAX_PENDING`).
    pending: Vec<PendingObservation>,
    last_signal: Option<Box<SignalSnapshot>>,
    /// What this entry was last charged to the byte budget.
    charged_bytes: usize,
}

impl SessionState {
    fn start(event: &IdentifiedEvent, generation: u64) -> Self {
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
    /// `place`: where the request puts its user ([`NetworkKind::place`]); `spot`: its network
    /// ([`NetworkKind::spot`]), when the ASN is known.
    fn observe(
        &mut self,
        event: &IdentifiedEvent,
        kind: NetworkKind,
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
            obs.travel = [self.last_located.as_ref(), self.last_relayed.as_deref()]
                .into_iter()
                .flatten()
                .filter(|prev| prev.ip != ip)
                .map(|prev| travel_leg(&prev.point, prev.at, here, now))
                .filter(|leg| leg.distance_km > 0.0)
                .max_by(|a, b| a.speed_kmh.total_cmp(&b.speed_kmh));
            let latest = LocatedUse {
                point: here.clone(),
                at: now,
                ip,
            };
            match (kind, &mut self.last_relayed) {
                (NetworkKind::Relay, Some(prev)) if now >= prev.at => **prev = latest,
                (NetworkKind::Relay, Some(_)) => {}
                (NetworkKind::Relay, slot @ None) => *slot = Some(Box::new(latest)),
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
    fn approx_bytes(&self) -> usize {
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

    fn snapshot(&self, fingerprint: Fingerprint) -> SessionSnapshot {
        let claims = self.claims.as_deref();
        SessionSnapshot {
            fingerprint,
            kind: self.kind,
            iss: claims.and_then(|c| c.iss.clone()),
            sub: claims.and_then(|c| c.sub.clone()),
            sid: claims.and_then(|c| c.sid.clone()),
            token_expires_at: self.expires_ms.map(EventTime),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            age_s: self.last_seen.seconds_since(self.first_seen).max(0.0),
            requests: self.requests,
            last_ip: self.last_ip,
            recent_ips: self.recent_ips.items.clone(),
            distinct_ips: self.distinct_ips,
            countries: self.countries.items.iter().map(|c| c.to_string()).collect(),
            last_location: self.last_located.as_ref().map(|l| LocationSnapshot {
                at: l.at,
                ip: l.ip,
                point: l.point.clone(),
            }),
            asn: self.asn,
            device: self.device.as_ref().map(|d| DeviceSnapshot {
                family: d.family.to_string(),
                os: d.os.to_string(),
                scripted: d.scripted,
            }),
            scripted_seen: self.scripted_seen,
            rate: RateSnapshot {
                per_minute: self.rate.per_minute(),
                baseline_per_minute: self.rate.baseline(),
                baseline_minutes: self.rate.baseline_minutes,
            },
            last_score: self.last_score,
            action: self.last_action,
            last_signal: self.last_signal.as_deref().cloned(),
        }
    }
}

/// The blocks a place owns: its city and country names.
fn geo_heap_bytes(point: &GeoPoint) -> usize {
    point.city.as_ref().map_or(0, memory::arc_str)
        + point.country.as_ref().map_or(0, memory::arc_str)
}

/// The blocks an observation owns beyond itself: the places of its travel legs and the
/// names of its changes.
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
fn carries_signal(obs: &Observation) -> bool {
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

/// Login sessions (`sid`) remembered per user for their network switches: a phone, a
/// laptop, a tablet and one more.
const SIDS_PER_USER: usize = 4;

/// One user: the last two located uses by different tokens, and per login session (`sid`)
/// the networks its tokens used.
#[derive(Debug)]
struct UserState {
    generation: u64,
    /// [`UserKey::check`], for telling a collision of 64-bit map keys from the same user
    /// (rather than the first token's claims, which would keep them allocated).
    check: u64,
    /// Latest event time of any use, for eviction.
    last_seen_ms: i64,
    latest: Option<UserUse>,
    /// The most recent use by a fingerprint other than `latest`'s.
    other: Option<UserUse>,
    /// Most recently used last, at most [`SIDS_PER_USER`].
    sids: Vec<SidNetworks>,
    /// What this entry was last charged to the byte budget.
    charged_bytes: usize,
}

/// The networks of one login session across its refreshed tokens. A thief on a stolen token
/// and the owner on its refreshed successor are two tokens but one `sid`: only here does their
/// back-and-forth between two networks show.
#[derive(Debug)]
struct SidNetworks {
    sid: u64,
    last_ms: i64,
    history: networks::NetworkHistory,
}

#[derive(Debug, Clone)]
struct UserUse {
    fingerprint: Fingerprint,
    located: LocatedUse,
}

impl UserState {
    fn same_user(&self, key: UserKey) -> bool {
        self.check == key.check
    }

    /// What the user takes from the allocator: its boxed state and the blocks it owns (for
    /// the byte budget).
    fn approx_bytes(&self) -> usize {
        let places = [&self.latest, &self.other]
            .into_iter()
            .flatten()
            .map(|u| geo_heap_bytes(&u.located.point))
            .sum::<usize>();
        memory::boxed::<UserState>()
            + places
            + memory::vec(&self.sids)
            + self
                .sids
                .iter()
                .map(|s| s.history.heap_bytes())
                .sum::<usize>()
    }

    /// The user's most recent located use by a token other than `fingerprint`.
    fn latest_other_than(&self, fingerprint: Fingerprint) -> Option<&UserUse> {
        match &self.latest {
            Some(latest) if latest.fingerprint != fingerprint => Some(latest),
            _ => self.other.as_ref(),
        }
    }

    /// Keeps `other.fingerprint != latest.fingerprint` true.
    fn remember(&mut self, current: UserUse) {
        let Some(latest) = &mut self.latest else {
            self.latest = Some(current);
            return;
        };
        if current.fingerprint == latest.fingerprint {
            if current.located.at >= latest.located.at {
                *latest = current;
            }
        } else if current.located.at >= latest.located.at {
            self.other = Some(std::mem::replace(latest, current));
        } else if self
            .other
            .as_ref()
            .is_none_or(|o| current.located.at >= o.located.at)
        {
            self.other = Some(current);
        }
    }

    /// Fold a request of login session `sid` from `spot` into that session's networks.
    fn observe_sid(
        &mut self,
        sid: u64,
        spot: networks::Spot,
        now: EventTime,
    ) -> networks::NetworkSignals {
        let (entry, _) = networks::touch_recent(
            &mut self.sids,
            SIDS_PER_USER,
            |s| s.sid == sid,
            || SidNetworks {
                sid,
                last_ms: now.0,
                history: networks::NetworkHistory::default(),
            },
        );
        let in_order = now.0 >= entry.last_ms;
        entry.last_ms = entry.last_ms.max(now.0);
        entry.history.observe(spot, now, in_order)
    }
}

/// Move a byte counter from `before` to `after`; most events change nothing and touch no
/// shared cache line.
fn adjust(counter: &AtomicUsize, before: usize, after: usize) {
    if after > before {
        counter.fetch_add(after - before, Ordering::Relaxed);
    } else if before > after {
        counter.fetch_sub(before - after, Ordering::Relaxed);
    }
}

fn sid_key(sid: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    sid.hash(&mut hasher);
    hasher.finish()
}

/// Where a user's state lives, and how to tell it is this user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UserKey {
    /// The users map key: a hash of `(iss, sub)`.
    key: u64,
    /// A second hash of `(iss, sub)`, kept in the entry and compared: two users share state
    /// only if both 64-bit hashes collide (2^-128 for a pair); a key collision alone only
    /// replaces one user's state with the other's.
    check: u64,
}

fn user_key(claims: &Claims) -> Option<UserKey> {
    let sub = claims.sub.as_deref()?;
    let iss = claims.iss.as_deref().unwrap_or("");
    // SipHash with fixed keys: deterministic across runs and instances; the check hash is
    // the same over a prefix byte, which makes it independent of the key.
    let hash = |prefix: Option<u8>| {
        let mut hasher = std::hash::DefaultHasher::new();
        if let Some(prefix) = prefix {
            hasher.write_u8(prefix);
        }
        iss.hash(&mut hasher);
        sub.hash(&mut hasher);
        hasher.finish()
    };
    Some(UserKey {
        key: hash(None),
        check: hash(Some(1)),
    })
}

/// What `GET /v1/sessions/{fingerprint}` shows on-call: the session as it is now, its last
/// score and the latest explained signal. Never a raw token.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSnapshot {
    /// The token's fingerprint.
    pub fingerprint: Fingerprint,
    /// JWT, opaque or upstream fingerprint.
    pub kind: TokenKind,
    /// JWT `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// JWT `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// JWT `sid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// JWT `exp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<EventTime>,
    /// First use (event time).
    pub first_seen: EventTime,
    /// Latest use (event time).
    pub last_seen: EventTime,
    /// Seconds from first to latest use.
    pub age_s: f64,
    /// Requests seen.
    pub requests: u64,
    /// Client address of the latest use.
    pub last_ip: IpAddr,
    /// Recently seen addresses, most recent last (at most 8).
    pub recent_ips: Vec<IpAddr>,
    /// Distinct addresses seen (approximate beyond the 8 remembered).
    pub distinct_ips: u32,
    /// Recently seen countries, most recent last (at most 8).
    pub countries: Vec<String>,
    /// The latest located, non-allowlisted use: the reference for the next travel leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_location: Option<LocationSnapshot>,
    /// Latest non-allowlisted ASN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// The device the session was established on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSnapshot>,
    /// A scripted client was seen at least once.
    pub scripted_seen: bool,
    /// Request rate at the latest use.
    pub rate: RateSnapshot,
    /// Score of the latest event.
    pub last_score: f64,
    /// Action already taken on this session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The latest event that scored above zero, with its explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_signal: Option<SignalSnapshot>,
}

/// A located use in the session view.
#[derive(Debug, Clone, Serialize)]
pub struct LocationSnapshot {
    /// When.
    pub at: EventTime,
    /// From which address.
    pub ip: IpAddr,
    /// Where (with accuracy radius).
    #[serde(flatten)]
    pub point: GeoPoint,
}

/// The session's reference device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSnapshot {
    /// User-Agent family.
    pub family: String,
    /// OS family.
    pub os: String,
    /// Established by a scripted client (no browser use yet).
    pub scripted: bool,
}

/// Rate state in the session view.
#[derive(Debug, Clone, Serialize)]
pub struct RateSnapshot {
    /// Requests in the minute up to the latest use.
    pub per_minute: u32,
    /// EWMA baseline, once the session has enough full active minutes.
    pub baseline_per_minute: Option<f64>,
    /// Full active minutes in the baseline.
    pub baseline_minutes: u32,
}

/// Per-session state keyed by fingerprint; per-user state keyed by `iss`+`sub`.
pub struct SessionTracker {
    /// Boxed: a table slot holds a pointer, not the state, so the buckets a table keeps free
    /// (an eighth to over half of them) cost 24 bytes each instead of a whole state's.
    sessions: DashMap<Fingerprint, Box<SessionState>>,
    users: DashMap<u64, Box<UserState>>,
    session_tables: memory::MapTables,
    user_tables: memory::MapTables,
    /// Sessions by last-seen stamp at queueing time (LRU and idle eviction).
    session_queue: EvictionQueue<Fingerprint>,
    /// Sessions by token expiry.
    expiry_queue: EvictionQueue<Fingerprint>,
    /// Users by latest use at queueing time.
    user_queue: EvictionQueue<u64>,
    session_count: AtomicUsize,
    /// Sum of the sessions' `charged_bytes`.
    session_bytes: AtomicUsize,
    user_count: AtomicUsize,
    /// Sum of the users' `charged_bytes`.
    user_bytes: AtomicUsize,
    next_generation: AtomicU64,
    allow_cidrs: Vec<IpNet>,
    allow_asns: Vec<u32>,
    relay_cidrs: Vec<IpNet>,
    relay_asns: Vec<u32>,
    max_sessions: usize,
    max_session_bytes: usize,
    idle_timeout_ms: i64,
}

enum Probe {
    /// No such entry (or a newer incarnation): drop the queue entry.
    Gone,
    /// The entry exists; its current stamp.
    Live(i64),
}

impl SessionTracker {
    /// Empty tracker with the configured limits.
    pub fn new(config: &DetectConfig) -> Self {
        let sorted = |asns: &[u32]| {
            let mut asns = asns.to_vec();
            asns.sort_unstable();
            asns.dedup();
            asns
        };
        let sessions = DashMap::new();
        let users = DashMap::new();
        SessionTracker {
            session_tables: memory::MapTables::new(&sessions),
            user_tables: memory::MapTables::new(&users),
            sessions,
            users,
            session_queue: EvictionQueue::new(),
            expiry_queue: EvictionQueue::new(),
            user_queue: EvictionQueue::new(),
            session_count: AtomicUsize::new(0),
            session_bytes: AtomicUsize::new(0),
            user_count: AtomicUsize::new(0),
            user_bytes: AtomicUsize::new(0),
            next_generation: AtomicU64::new(1),
            allow_cidrs: config.allow_cidrs.clone(),
            allow_asns: sorted(&config.allow_asns),
            relay_cidrs: config.relay_cidrs.clone(),
            relay_asns: sorted(&config.relay_asns),
            max_sessions: config.max_sessions.max(1),
            max_session_bytes: config.max_session_bytes,
            idle_timeout_ms: i64::try_from(config.session_idle_timeout.0.as_millis())
                .unwrap_or(i64::MAX),
        }
    }

    fn network_kind(&self, ip: IpAddr, asn: Option<u32>) -> NetworkKind {
        let listed = |cidrs: &[IpNet], asns: &[u32]| {
            asn.is_some_and(|asn| asns.binary_search(&asn).is_ok())
                || cidrs.iter().any(|net| net.contains(&ip))
        };
        if listed(&self.allow_cidrs, &self.allow_asns) {
            NetworkKind::Allowlisted
        } else if listed(&self.relay_cidrs, &self.relay_asns) {
            NetworkKind::Relay
        } else {
            NetworkKind::Direct
        }
    }

    /// Update the session with one event and return its features. Events of one session must
    /// arrive in order (the pipeline guarantees it); a late one is handled, not trusted.
    pub fn observe(&self, event: &IdentifiedEvent) -> Observation {
        let fingerprint = event.identity.fingerprint;
        let kind = self.network_kind(event.event.client_ip, event.enrichment.asn);
        let place = kind.place(event.enrichment.geo.as_ref());
        let spot = event
            .enrichment
            .asn
            .map(|asn| kind.spot(asn, event.event.client_ip, event.enrichment.geo.as_ref()));
        let mut obs = Observation {
            allowlisted_network: kind.is_shared(),
            ..Observation::default()
        };
        let user = event
            .identity
            .claims
            .as_ref()
            .and_then(|claims| Some((user_key(claims)?, claims)));
        let sid_signals = user.and_then(|(key, claims)| {
            self.observe_user(event, key, claims, place.as_deref(), spot, &mut obs)
        });

        // `get_mut` first: `entry` makes room before it looks, so it may grow the table even
        // for a session already there, and the table is read back after every `entry`.
        let mut entered = false;
        let (created, bytes_before, bytes_after, expires_ms) = {
            let (created, mut session) = match self.sessions.get_mut(&fingerprint) {
                Some(session) => (None, session),
                None => {
                    entered = true;
                    match self.sessions.entry(fingerprint) {
                        Entry::Occupied(o) => (None, o.into_ref()),
                        Entry::Vacant(v) => {
                            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                            (
                                Some(generation),
                                v.insert(Box::new(SessionState::start(event, generation))),
                            )
                        }
                    }
                }
            };
            session.observe(event, kind, place.as_deref(), spot, &mut obs);
            if let Some(sid) = sid_signals {
                // The login session's switches count too (owner and thief on two tokens).
                obs.network_returns = obs.network_returns.max(sid.returns);
            }
            if carries_signal(&obs) {
                if session.pending.len() >= MAX_PENDING {
                    // The caller is not recording; stay bounded.
                    session.pending.remove(0);
                }
                let index = session.requests;
                let pending = PendingObservation {
                    index,
                    seq: event.seq,
                    at: event.event.time,
                    observation: obs.clone(),
                };
                memory::push_exact(&mut session.pending, pending);
            }
            let before = session.charged_bytes;
            session.charged_bytes = session.approx_bytes();
            (created, before, session.charged_bytes, session.expires_ms)
        };
        adjust(&self.session_bytes, bytes_before, bytes_after);
        if entered {
            self.session_tables.refresh(&self.sessions, &fingerprint);
        }

        if let Some(generation) = created {
            self.session_count.fetch_add(1, Ordering::Relaxed);
            self.session_queue
                .lock()
                .push(Reverse((event.event.time.0, generation, fingerprint)));
            if let Some(exp) = expires_ms {
                self.expiry_queue.lock().push(Reverse((
                    exp.saturating_add(EXPIRY_GRACE_MS),
                    generation,
                    fingerprint,
                )));
            }
        }
        if self.over_session_limits() {
            self.evict_least_recent(fingerprint, user.map(|(user, _)| user.key));
        }
        obs
    }

    /// The user's view of `event`: concurrent use (travel from the same user's most recent
    /// located use by another token, into `obs.user_travel`) and, for a JWT with a `sid`, the
    /// network signals of its login session across refreshed tokens. `here`: where the
    /// request puts its user ([`NetworkKind::place`]); `spot`: its network.
    fn observe_user(
        &self,
        event: &IdentifiedEvent,
        user_key: UserKey,
        claims: &Claims,
        here: Option<&GeoPoint>,
        spot: Option<networks::Spot>,
        obs: &mut Observation,
    ) -> Option<networks::NetworkSignals> {
        let sid = claims.sid.as_deref().map(sid_key).zip(spot);
        if here.is_none() && sid.is_none() {
            return None;
        }
        let key = user_key.key;
        let now = event.event.time;
        let fresh = || UserState {
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            check: user_key.check,
            last_seen_ms: now.0,
            latest: None,
            other: None,
            sids: Vec::new(),
            charged_bytes: 0,
        };
        // `queue`: a new incarnation to queue for eviction, and whether the map grew;
        // `before`: what the slot was charged.
        // An entry found: what it was charged, and a new incarnation if it was another user's.
        let claim = |user: &mut UserState| {
            let before = user.charged_bytes;
            if user.same_user(user_key) {
                (None, before)
            } else {
                // 64-bit collision: the newcomer takes the slot (old user's state is lost).
                *user = fresh();
                (Some((user.generation, false)), before)
            }
        };
        // `get_mut` first, as for sessions: `entry` may grow the table.
        let mut entered = false;
        let (mut user, queue, before) = match self.users.get_mut(&key) {
            Some(mut user) => {
                let (queue, before) = claim(&mut user);
                (user, queue, before)
            }
            None => {
                entered = true;
                match self.users.entry(key) {
                    Entry::Occupied(o) => {
                        let mut user = o.into_ref();
                        let (queue, before) = claim(&mut user);
                        (user, queue, before)
                    }
                    Entry::Vacant(v) => {
                        let user = v.insert(Box::new(fresh()));
                        let generation = user.generation;
                        (user, Some((generation, true)), 0)
                    }
                }
            }
        };
        user.last_seen_ms = user.last_seen_ms.max(now.0);
        if let Some(here) = here {
            let current = UserUse {
                fingerprint: event.identity.fingerprint,
                located: LocatedUse {
                    point: here.clone(),
                    at: now,
                    ip: event.event.client_ip,
                },
            };
            obs.user_travel = user
                .latest_other_than(current.fingerprint)
                .filter(|other| {
                    other.located.ip != current.located.ip
                        && (now.0 - other.located.at.0).abs() <= USER_TRAVEL_WINDOW_S * 1000
                })
                .map(|other| travel_leg(&other.located.point, other.located.at, here, now))
                .filter(|leg| leg.distance_km > 0.0);
            user.remember(current);
        }
        let sid_signals = sid.map(|(sid, spot)| user.observe_sid(sid, spot, now));
        user.charged_bytes = user.approx_bytes();
        let after = user.charged_bytes;
        drop(user);
        adjust(&self.user_bytes, before, after);
        if entered {
            self.user_tables.refresh(&self.users, &key);
        }
        if let Some((generation, grew)) = queue {
            if grew {
                self.user_count.fetch_add(1, Ordering::Relaxed);
            }
            let mut queue = self.user_queue.lock();
            queue.push(Reverse((now.0, generation, key)));
            if self.user_count.load(Ordering::Relaxed) > self.max_sessions {
                self.drain_users(&mut queue, None, Some(key));
            }
        }
        sid_signals
    }

    /// Bytes of tracker state: sessions and users (their boxes and what they own), both
    /// maps' tables and the eviction queues (the `max_session_bytes` budget).
    fn state_bytes(&self) -> usize {
        self.session_bytes.load(Ordering::Relaxed)
            + self.user_bytes.load(Ordering::Relaxed)
            + self.session_tables.bytes()
            + self.user_tables.bytes()
            + self.session_queue.bytes()
            + self.expiry_queue.bytes()
            + self.user_queue.bytes()
    }

    fn over_session_limits(&self) -> bool {
        self.session_count.load(Ordering::Relaxed) > self.max_sessions
            || self.state_bytes() > self.max_session_bytes
    }

    fn probe_session(&self, fingerprint: Fingerprint, generation: u64) -> Probe {
        match self.sessions.get(&fingerprint) {
            Some(s) if s.generation == generation => Probe::Live(s.last_seen.0),
            _ => Probe::Gone,
        }
    }

    /// Remove a session if it is still incarnation `generation` and `due(last_seen)` holds.
    fn remove_session_if(
        &self,
        fingerprint: Fingerprint,
        generation: u64,
        due: impl FnOnce(i64) -> bool,
    ) -> bool {
        let removed = self.sessions.remove_if(&fingerprint, |_, s| {
            s.generation == generation && due(s.last_seen.0)
        });
        match removed {
            Some((_, state)) => {
                self.session_count.fetch_sub(1, Ordering::Relaxed);
                adjust(&self.session_bytes, state.charged_bytes, 0);
                true
            }
            None => false,
        }
    }

    /// Evict the least recently seen sessions and users until within limits, sparing
    /// `protect` (the session being observed or recorded) and `protect_user` (its user).
    /// Sessions and users go in one order, by when they were last seen (a user is seen
    /// whenever any of its tokens is, so its sessions go before it); only sessions count
    /// against `max_sessions`. Amortized: an entry is re-queued only if its session or user was
    /// used since it was queued, once per such use.
    fn evict_least_recent(&self, protect: Fingerprint, protect_user: Option<u64>) {
        // Lock order: the session queue, then the user queue (wherever both are held).
        let mut queue = self.session_queue.lock();
        let mut users = self.user_queue.lock();
        let mut spared = Vec::new();
        let mut spared_users = Vec::new();
        let mut budget = (queue.len() + users.len())
            .saturating_mul(2)
            .saturating_add(8);
        while budget > 0 {
            budget -= 1;
            let too_many = self.session_count.load(Ordering::Relaxed) > self.max_sessions;
            if !too_many && self.state_bytes() <= self.max_session_bytes {
                break;
            }
            let oldest_session = queue.peek().map(|Reverse((stamp, ..))| *stamp);
            let oldest_user = users.peek().map(|Reverse((stamp, ..))| *stamp);
            let user_first = !too_many
                && match (oldest_session, oldest_user) {
                    (Some(session), Some(user)) => user < session,
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
            if user_first {
                let Some(Reverse(entry)) = users.pop() else {
                    break;
                };
                if Some(entry.2) == protect_user {
                    spared_users.push(Reverse(entry));
                } else {
                    self.evict_user_entry(&mut users, entry);
                }
                continue;
            }
            let Some(Reverse((stamp, generation, fingerprint))) = queue.pop() else {
                break;
            };
            if fingerprint == protect {
                spared.push(Reverse((stamp, generation, fingerprint)));
                continue;
            }
            match self.probe_session(fingerprint, generation) {
                Probe::Gone => {}
                Probe::Live(last_seen) if last_seen > stamp => {
                    queue.push(Reverse((last_seen, generation, fingerprint)));
                }
                Probe::Live(_) => {
                    if !self.remove_session_if(fingerprint, generation, |seen| seen <= stamp)
                        && let Probe::Live(seen) = self.probe_session(fingerprint, generation)
                    {
                        queue.push(Reverse((seen, generation, fingerprint)));
                    }
                }
            }
        }
        queue.extend(spared);
        users.extend(spared_users);
        self.compact_session_queue(&mut queue);
        self.compact_user_queue(&mut users);
    }

    /// Drop queue entries of sessions that are gone, when they make up half the queue.
    fn compact_session_queue(&self, queue: &mut Queue<Fingerprint>) {
        let live = self.session_count.load(Ordering::Relaxed);
        if queue.len() > live.saturating_mul(2).saturating_add(1024) {
            queue.retain(|Reverse((_, g, fp))| {
                matches!(self.probe_session(*fp, *g), Probe::Live(_))
            });
        }
    }

    /// Drop queue entries of users that are gone, when they make up half the queue.
    fn compact_user_queue(&self, queue: &mut Queue<u64>) {
        let live = self.user_count.load(Ordering::Relaxed);
        if queue.len() > live.saturating_mul(2).saturating_add(1024) {
            queue.retain(|Reverse((_, g, key))| {
                self.users.get(key).is_some_and(|u| u.generation == *g)
            });
        }
    }

    /// Pop users that are stale (latest use before `cutoff`) or, with no cutoff, the least
    /// recent ones while over capacity; `protect` is spared.
    fn drain_users(&self, queue: &mut Queue<u64>, cutoff: Option<i64>, protect: Option<u64>) {
        let mut spared = Vec::new();
        let mut budget = queue.len().saturating_mul(2).saturating_add(8);
        while budget > 0 {
            budget -= 1;
            let Some(&Reverse((stamp, generation, key))) = queue.peek() else {
                break;
            };
            let due_now = match cutoff {
                Some(cutoff) => stamp < cutoff,
                None => self.user_count.load(Ordering::Relaxed) > self.max_sessions,
            };
            if !due_now {
                break;
            }
            queue.pop();
            if Some(key) == protect {
                spared.push(Reverse((stamp, generation, key)));
                continue;
            }
            self.evict_user_entry(queue, (stamp, generation, key));
        }
        queue.extend(spared);
        self.compact_user_queue(queue);
    }

    /// A user queue entry just popped: dropped if its user is gone, re-queued if the user was
    /// used since it was queued, else the user is removed.
    fn evict_user_entry(&self, queue: &mut Queue<u64>, (stamp, generation, key): (i64, u64, u64)) {
        let probe = match self.users.get(&key) {
            Some(u) if u.generation == generation => Probe::Live(u.last_seen_ms),
            _ => Probe::Gone,
        };
        match probe {
            Probe::Gone => {}
            Probe::Live(latest) if latest > stamp => {
                queue.push(Reverse((latest, generation, key)));
            }
            Probe::Live(_) => {
                let removed = self.users.remove_if(&key, |_, u| {
                    u.generation == generation && u.last_seen_ms <= stamp
                });
                if let Some((_, user)) = removed {
                    self.user_count.fetch_sub(1, Ordering::Relaxed);
                    adjust(&self.user_bytes, user.charged_bytes, 0);
                } else if let Some(u) = self.users.get(&key)
                    && u.generation == generation
                {
                    queue.push(Reverse((u.last_seen_ms, generation, key)));
                }
            }
        }
    }

    /// Remember the latest assessment and action, for the session view and to suppress
    /// duplicate decisions. A revoke is never downgraded by a later flag.
    pub fn record(
        &self,
        fingerprint: Fingerprint,
        assessment: &Assessment,
        action: Option<Action>,
    ) {
        let charged = self.sessions.get_mut(&fingerprint).map(|mut session| {
            session.last_score = assessment.score;
            session.last_action = match (session.last_action, action) {
                (Some(Action::Revoke), _) | (_, Some(Action::Revoke)) => Some(Action::Revoke),
                (prior, None) => prior,
                (_, Some(Action::Flag)) => Some(Action::Flag),
            };
            session.recorded = session.recorded.saturating_add(1);
            let index = session.recorded;
            let older = session
                .pending
                .iter()
                .take_while(|p| p.index < index)
                .count();
            session.pending.drain(..older);
            let matched = match session.pending.first() {
                Some(p) if p.index == index => Some(session.pending.remove(0)),
                _ => None,
            };
            if session.pending.is_empty() && session.pending.capacity() > 0 {
                // Observations are big; an idle session must not keep room for them.
                session.pending = Vec::new();
            }
            if assessment.score > 0.0 {
                let (seq, at, observation) = match matched {
                    Some(p) => (p.seq, p.at, p.observation),
                    None => (0, session.last_seen, Observation::default()),
                };
                let signal = SignalSnapshot {
                    seq,
                    event_time: at,
                    assessment: assessment.clone(),
                    observation,
                };
                match &mut session.last_signal {
                    Some(slot) => **slot = signal,
                    None => session.last_signal = Some(Box::new(signal)),
                }
            }
            let before = session.charged_bytes;
            session.charged_bytes = session.approx_bytes();
            (before, session.charged_bytes)
        });
        if let Some((before, after)) = charged {
            adjust(&self.session_bytes, before, after);
            if after > before && self.over_session_limits() {
                self.evict_least_recent(fingerprint, None);
            }
        }
    }

    /// The action already taken on this session, if any.
    pub fn prior_action(&self, fingerprint: Fingerprint) -> Option<Action> {
        self.sessions.get(&fingerprint).and_then(|s| s.last_action)
    }

    /// Forget sessions idle since before `now - idle_timeout` or whose token expired (plus a
    /// short grace), and users whose latest use is older than the concurrent-use
    /// window. Returns the number of sessions removed. Cost is proportional to what is removed
    /// (plus re-queued entries of sessions used since they were queued).
    pub fn evict_idle(&self, now: EventTime) -> usize {
        let mut evicted = 0;
        let idle_cutoff = now.0.saturating_sub(self.idle_timeout_ms);
        {
            let mut queue = self.session_queue.lock();
            while let Some(&Reverse((stamp, generation, fingerprint))) = queue.peek() {
                if stamp >= idle_cutoff {
                    break;
                }
                queue.pop();
                match self.probe_session(fingerprint, generation) {
                    Probe::Gone => {}
                    Probe::Live(last_seen) if last_seen >= idle_cutoff => {
                        queue.push(Reverse((last_seen, generation, fingerprint)));
                    }
                    Probe::Live(_) => {
                        if self
                            .remove_session_if(fingerprint, generation, |seen| seen < idle_cutoff)
                        {
                            evicted += 1;
                        } else if let Probe::Live(seen) =
                            self.probe_session(fingerprint, generation)
                        {
                            queue.push(Reverse((seen, generation, fingerprint)));
                        }
                    }
                }
            }
        }
        {
            let mut queue = self.expiry_queue.lock();
            while let Some(&Reverse((deadline, generation, fingerprint))) = queue.peek() {
                if deadline > now.0 {
                    break;
                }
                queue.pop();
                if self.remove_session_if(fingerprint, generation, |_| true) {
                    evicted += 1;
                }
            }
            let live = self.session_count.load(Ordering::Relaxed);
            if queue.len() > live.saturating_mul(2).saturating_add(1024) {
                queue.retain(|Reverse((_, g, fp))| {
                    matches!(self.probe_session(*fp, *g), Probe::Live(_))
                });
            }
        }
        self.compact_session_queue(&mut self.session_queue.lock());
        let user_cutoff = now.0.saturating_sub(USER_TRAVEL_WINDOW_S * 1000);
        self.drain_users(&mut self.user_queue.lock(), Some(user_cutoff), None);
        evicted
    }

    /// A session's state, as an owned value.
    pub fn snapshot(&self, fingerprint: Fingerprint) -> Option<SessionSnapshot> {
        self.sessions
            .get(&fingerprint)
            .map(|s| s.snapshot(fingerprint))
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.session_count.load(Ordering::Relaxed)
    }

    /// No sessions held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of tracker state held, as the allocator hands them out: sessions and users with
    /// everything they own, both maps' tables and the eviction queues. What
    /// `detect.max_session_bytes` bounds.
    pub fn approx_bytes(&self) -> usize {
        self.state_bytes()
    }

    /// Users held for concurrent-use detection.
    pub fn users_len(&self) -> usize {
        self.user_count.load(Ordering::Relaxed)
    }
}

/// Hand-built events for the detection tests (no GeoIP files, no real tokens).
#[cfg(test)]
pub(crate) mod test_support {
    use std::net::IpAddr;
    use std::sync::Arc;

    use crate::event::{
        AccessEvent, AddressClass, Claims, Credential, Enrichment, EventTime, Fingerprint,
        GeoPoint, IdentifiedEvent, Identity, TokenKind, UserAgentInfo,
    };

    /// A test fingerprint: `n` repeated.
    pub fn fp(n: u8) -> Fingerprint {
        Fingerprint([n; 16])
    }

    /// A GeoPoint fixture.
    pub fn place(city: &str, country: &str, lat: f64, lon: f64, radius_km: f64) -> GeoPoint {
        GeoPoint {
            city: Some(Arc::from(city)),
            country: Some(Arc::from(country)),
            lat,
            lon,
            radius_km,
        }
    }

    pub fn berlin() -> GeoPoint {
        place("Berlin", "DE", 52.52, 13.405, 20.0)
    }
    pub fn sao_paulo() -> GeoPoint {
        place("São Paulo", "BR", -23.55, -46.633, 50.0)
    }
    pub fn london() -> GeoPoint {
        place("London", "GB", 51.5074, -0.1278, 20.0)
    }
    pub fn paris() -> GeoPoint {
        place("Paris", "FR", 48.8566, 2.3522, 20.0)
    }

    pub fn ua(family: &str, os: &str, scripted: bool) -> UserAgentInfo {
        UserAgentInfo {
            family: Arc::from(family),
            os: Arc::from(os),
            scripted,
        }
    }

    pub fn chrome_windows() -> UserAgentInfo {
        ua("Chrome", "Windows 10", false)
    }

    /// 2026-11-23T17:00:00Z, the base time of the scenarios.
    pub const T0: i64 = 1_795_453_200;

    /// One event; tweak with the builder methods.
    pub struct Ev(pub IdentifiedEvent);

    /// An opaque-token event of session `n` at `T0 + offset_s`, from a public address in
    /// Berlin on Chrome/Windows (AS 3320).
    pub fn ev(n: u8, offset_s: i64) -> Ev {
        Ev(IdentifiedEvent {
            seq: 0,
            event: AccessEvent {
                time: EventTime::from_secs(T0 + offset_s),
                client_ip: "203.0.113.10".parse().expect("ip"),
                method: Some("GET".into()),
                path: Some("/api".into()),
                status: Some(200),
                user_agent: None,
                credentials: vec![Credential::Fingerprint(fp(n))],
            },
            identity: Identity {
                fingerprint: fp(n),
                kind: TokenKind::Opaque,
                claims: None,
            },
            enrichment: Enrichment {
                geo: Some(berlin()),
                asn: Some(3320),
                address_class: Some(AddressClass::Public),
                user_agent: Some(chrome_windows()),
            },
        })
    }

    impl Ev {
        pub fn seq(mut self, seq: u64) -> Self {
            self.0.seq = seq;
            self
        }
        pub fn ip(mut self, ip: &str) -> Self {
            self.0.event.client_ip = ip.parse::<IpAddr>().expect("ip");
            self
        }
        pub fn geo(mut self, geo: Option<GeoPoint>) -> Self {
            self.0.enrichment.geo = geo;
            self
        }
        pub fn asn(mut self, asn: Option<u32>) -> Self {
            self.0.enrichment.asn = asn;
            self
        }
        pub fn ua(mut self, ua: UserAgentInfo) -> Self {
            self.0.enrichment.user_agent = Some(ua);
            self
        }
        pub fn private(mut self, ip: &str) -> Self {
            self.0.event.client_ip = ip.parse::<IpAddr>().expect("ip");
            self.0.enrichment.geo = None;
            self.0.enrichment.asn = None;
            self.0.enrichment.address_class = Some(AddressClass::Private);
            self
        }
        /// A verified JWT of `sub` at `https://id.example.com`, expiring at `exp`.
        pub fn jwt(mut self, sub: &str, sid: Option<&str>, exp: i64) -> Self {
            self.0.identity.kind = TokenKind::Jwt;
            self.0.identity.claims = Some(Arc::new(Claims {
                iss: Some("https://id.example.com".into()),
                sub: Some(sub.into()),
                jti: Some(format!("jti-{}", self.0.identity.fingerprint)),
                sid: sid.map(str::to_string),
                exp: Some(exp),
                iat: Some(exp - 3600),
                nbf: None,
            }));
            self
        }
        pub fn build(self) -> IdentifiedEvent {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::test_support::*;
    use super::*;
    use crate::config::HumanDuration;
    use crate::event::Contribution;

    fn tracker() -> SessionTracker {
        SessionTracker::new(&DetectConfig::default())
    }

    fn observe_all(tracker: &SessionTracker, events: Vec<Ev>) -> Vec<Observation> {
        events
            .into_iter()
            .map(|e| tracker.observe(&e.build()))
            .collect()
    }

    #[test]
    fn haversine_matches_known_distances() {
        // Reference figures: published great-circle distances (Berlin–São Paulo is 10,250 km,
        // not the "about 10,000" of rough summaries; the haversine sphere is within 0.5 % of
        // the ellipsoid everywhere).
        let cases = [
            (berlin(), sao_paulo(), 10_250.0, 0.01),
            (london(), paris(), 344.0, 0.01),
            (berlin(), berlin(), 0.0, 0.0),
        ];
        for (from, to, expected, tolerance) in cases {
            let d = haversine_km(&from, &to);
            assert!(
                (d - expected).abs() <= expected * tolerance + 1e-9,
                "{:?} → {:?}: {d} km, expected {expected}",
                from.city,
                to.city
            );
            assert!((haversine_km(&to, &from) - d).abs() < 1e-6, "symmetric");
        }
        let nowhere = place("x", "XX", f64::NAN, 0.0, 1.0);
        assert_eq!(
            haversine_km(&nowhere, &berlin()),
            0.0,
            "non-finite gives 0, not NaN"
        );
    }

    #[test]
    fn travel_leg_subtracts_radii_and_floors() {
        let t = |s: i64| EventTime::from_secs(T0 + s);
        let mut tight_london = london();
        tight_london.radius_km = 10.0;
        let mut wide_paris = paris();
        wide_paris.radius_km = 500.0;
        let gc = haversine_km(&london(), &paris());
        // (from, to, elapsed, expected lower-bound distance, expected elapsed)
        let cases = [
            (london(), paris(), 3600, gc - 40.0, 3600.0),
            (tight_london.clone(), wide_paris, 60, 0.0, 60.0),
            (london(), paris(), 0, gc - 40.0, 1.0),
            (london(), paris(), -120, gc - 40.0, 120.0),
        ];
        for (from, to, elapsed, distance, expected_elapsed) in cases {
            let leg = travel_leg(&from, t(0), &to, t(elapsed));
            assert!((leg.distance_km - distance).abs() < 1e-6, "{leg:?}");
            assert_eq!(leg.elapsed_s, expected_elapsed);
            assert!((leg.speed_kmh - distance / expected_elapsed * 3600.0).abs() < 1e-6);
            assert!(leg.speed_kmh >= 0.0);
        }
    }

    #[test]
    fn travel_is_reported_between_located_uses_only() {
        let tracker = tracker();
        let obs = observe_all(
            &tracker,
            vec![
                ev(1, 0),
                ev(1, 60).ip("198.51.100.7").geo(Some(sao_paulo())),
                ev(1, 120).private("10.0.0.5"),
                ev(1, 180).ip("203.0.113.99").geo(Some(sao_paulo())),
                ev(1, 240).ip("203.0.113.99").geo(Some(berlin())),
            ],
        );
        assert!(obs[0].travel.is_none(), "first use has nothing to compare");
        let leg = obs[1].travel.as_ref().expect("Berlin → São Paulo");
        assert_eq!(leg.from.city.as_deref(), Some("Berlin"));
        assert_eq!(leg.elapsed_s, 60.0);
        assert!(obs[2].travel.is_none(), "private address: no travel");
        assert!(
            obs[2].country_change.is_none(),
            "private address: no country change"
        );
        assert!(
            obs[3].travel.is_none(),
            "same place as the last located use"
        );
        assert!(obs[4].travel.is_none(), "same IP twice is the same place");
    }

    #[test]
    fn rate_window_and_ewma_baseline() {
        let tracker = tracker();
        // Start on a minute boundary: minute 0 is the partial first minute (never in the
        // baseline); then 5 requests a minute.
        let mut last = Observation::default();
        for minute in 0..4 {
            for k in 0..5 {
                last = tracker.observe(&ev(1, minute * 60 + k * 12).build());
            }
        }
        // Closed full minutes: 1, 2 → no baseline yet (needs 3).
        assert!(last.rate.is_none(), "{:?}", last.rate);
        let obs = tracker.observe(&ev(1, 4 * 60).build());
        let rate = obs.rate.expect("baseline after three full minutes");
        assert_eq!(rate.baseline_per_minute, 5.0);
        // Window: the last 55–60 s (events at 192..=240 s) → 5 requests.
        assert_eq!(rate.per_minute, 5.0);

        // A burst of 40 in the next 20 s: the window counts them, the baseline (previous
        // minutes only) does not move until the minute closes.
        let mut burst = obs;
        for k in 0..40 {
            burst = tracker.observe(&ev(1, 4 * 60 + 1 + k / 2).build());
        }
        let rate = burst.rate.expect("rate");
        assert_eq!(rate.baseline_per_minute, 5.0);
        // Window at 260 s: slots 205–264 s → 216, 228, 240 and the 40 of the burst.
        assert_eq!(rate.per_minute, 43.0);
        // Next minute closes minute 4 (41 requests): winsorized at 3 × 5 = 15 →
        // 0.25·15 + 0.75·5 = 7.5.
        let after = tracker.observe(&ev(1, 5 * 60 + 30).build());
        assert_eq!(after.rate.expect("rate").baseline_per_minute, 7.5);
        // The 60-s window has moved past the burst.
        assert_eq!(after.rate.expect("rate").per_minute, 1.0);

        // Idle minutes are skipped, not folded in as zeros.
        let back = tracker.observe(&ev(1, 60 * 60).build());
        assert_eq!(
            back.rate.expect("rate").baseline_per_minute,
            0.25 * 1.0 + 0.75 * 7.5
        );
    }

    #[test]
    fn out_of_order_events_never_go_negative() {
        let tracker = tracker();
        let obs = observe_all(
            &tracker,
            vec![
                ev(1, 100),
                ev(1, 90).ip("198.51.100.7").geo(Some(paris())),
                ev(1, 95).ip("198.51.100.8").geo(Some(london())),
                ev(1, -100_000),
            ],
        );
        for o in &obs {
            assert!(o.session_age_s >= 0.0);
            for leg in [&o.travel, &o.user_travel].into_iter().flatten() {
                assert!(leg.elapsed_s >= 1.0 && leg.speed_kmh >= 0.0, "{leg:?}");
            }
        }
        let leg = obs[1].travel.as_ref().expect("compared despite lateness");
        assert_eq!(leg.elapsed_s, 10.0);
        // The late Paris use did not replace the newer Berlin one as the reference.
        let snap = tracker.snapshot(fp(1)).expect("session");
        assert_eq!(
            snap.last_location.expect("located").point.city.as_deref(),
            Some("Berlin")
        );
        assert_eq!(snap.last_seen, EventTime::from_secs(T0 + 100));
        assert_eq!(snap.requests, 4);
    }

    #[test]
    fn context_changes_against_the_established_device() {
        // (UA of the second request, expected UA change, OS change, scripted)
        let cases = [
            (ua("Chrome", "Windows 10", false), false, false, false),
            (ua("Firefox", "Windows 10", false), true, false, false),
            (ua("Chrome", "Mac OSX", false), false, true, false),
            (ua("Safari", "iPhone", false), true, true, false),
            (ua("python-requests", "unknown", true), true, false, true),
            (ua("unknown", "unknown", false), false, false, false),
        ];
        for (second, ua_change, os_change, scripted) in cases {
            let tracker = tracker();
            let obs = observe_all(&tracker, vec![ev(1, 0), ev(1, 10).ua(second.clone())]);
            let o = &obs[1];
            assert_eq!(o.user_agent_change.is_some(), ua_change, "{second:?}");
            assert_eq!(o.os_change.is_some(), os_change, "{second:?}");
            assert_eq!(o.scripted_client, scripted, "{second:?}");
        }
        // A script-only session is not a "scripted client on a browser session".
        let tracker = super::tests::tracker();
        let curl = ua("curl", "unknown", true);
        let obs = observe_all(
            &tracker,
            vec![ev(2, 0).ua(curl.clone()), ev(2, 10).ua(curl)],
        );
        assert!(!obs[1].scripted_client && obs[1].user_agent_change.is_none());
        // The reference stays the first browser: the owner coming back is not a change, the
        // attacker's browser is, every time.
        let tracker = super::tests::tracker();
        let obs = observe_all(
            &tracker,
            vec![
                ev(3, 0),
                ev(3, 10).ua(ua("Firefox", "Linux", false)),
                ev(3, 20),
                ev(3, 30).ua(ua("Firefox", "Linux", false)),
            ],
        );
        assert!(obs[2].user_agent_change.is_none());
        assert_eq!(
            obs[3].user_agent_change,
            Some(("Chrome".to_string(), "Firefox".to_string()))
        );
    }

    #[test]
    fn network_changes_and_distinct_counts() {
        let tracker = tracker();
        let obs = observe_all(
            &tracker,
            vec![
                ev(1, 0),
                ev(1, 10).ip("198.51.100.20").asn(Some(6805)),
                ev(1, 20).ip("203.0.113.10").asn(Some(3320)),
                ev(1, 30)
                    .ip("192.0.2.1")
                    .asn(Some(5089))
                    .geo(Some(london())),
            ],
        );
        assert!(!obs[0].new_ip);
        assert_eq!(obs[1].asn_change, Some((3320, 6805)));
        assert!(obs[1].new_ip);
        assert!(!obs[2].new_ip, "seen before");
        assert_eq!(obs[3].country_change, Some(("DE".into(), "GB".into())));
        assert_eq!(obs[3].distinct_ips, 3);
        assert_eq!(obs[3].distinct_countries, 2);
        assert_eq!(obs[3].session_requests, 4);
        assert_eq!(obs[3].session_age_s, 30.0);
    }

    #[test]
    fn new_networks_gaps_and_recent_network_changes() {
        let tracker = tracker();
        let obs = observe_all(
            &tracker,
            vec![
                ev(1, 0),
                ev(1, 10).ip("198.51.100.20").asn(Some(6805)),
                ev(1, 20),
                ev(1, 25).ip("198.51.100.20").asn(Some(6805)),
                ev(1, 15), // late: compared, no gap
                ev(1, 1000),
                ev(1, 1010).ip("192.0.2.1").asn(Some(5089)),
            ],
        );
        // Session-wide: (new_asn, distinct_asns, recent_network_changes, since_previous_s);
        // per network (the session started on 3320): (network_returns,
        // network_rate_per_minute, network_age_s). The late event is compared but moves
        // nothing; the switch back at 1000 s is no return (3320 was idle for 980 s).
        let expected = [
            ((false, 1, 0, 0.0), (0, 0, 0.0)),
            ((true, 2, 1, 10.0), (0, 1, 0.0)),
            ((false, 2, 2, 10.0), (1, 0, 20.0)),
            ((false, 2, 3, 5.0), (2, 2, 15.0)),
            ((false, 2, 4, 0.0), (2, 0, 15.0)), // a late event is still compared (3320 vs 6805)
            ((false, 2, 1, 975.0), (0, 0, 1000.0)),
            ((true, 3, 2, 10.0), (0, 1, 0.0)),
        ];
        for (i, (o, e)) in obs.iter().zip(expected).enumerate() {
            let got = (
                (
                    o.new_asn,
                    o.distinct_asns,
                    o.recent_network_changes,
                    o.since_previous_s,
                ),
                (
                    o.network_returns,
                    o.network_rate_per_minute,
                    o.network_age_s,
                ),
            );
            assert_eq!(got, e, "event {i}");
        }
    }

    #[test]
    fn allowlisted_networks_neither_trigger_nor_poison() {
        let config = DetectConfig {
            allow_cidrs: vec!["198.51.100.0/24".parse().expect("cidr")],
            allow_asns: vec![64500],
            ..DetectConfig::default()
        };
        for (name, hop) in [
            (
                "cidr",
                ev(1, 60)
                    .ip("198.51.100.9")
                    .asn(Some(1))
                    .geo(Some(sao_paulo())),
            ),
            (
                "asn",
                ev(1, 60)
                    .ip("192.0.2.9")
                    .asn(Some(64500))
                    .geo(Some(sao_paulo())),
            ),
        ] {
            let tracker = SessionTracker::new(&config);
            let obs = observe_all(&tracker, vec![ev(1, 0), hop, ev(1, 120)]);
            let vpn = &obs[1];
            assert!(vpn.allowlisted_network, "{name}");
            assert_eq!((vpn.network_returns, vpn.network_age_s), (0, 0.0), "{name}");
            // Per network it is still a network: home, VPN and home again within two
            // minutes is what a second party on the VPN looks like.
            assert_eq!(obs[2].network_returns, 1, "{name}");
            assert!(vpn.travel.is_none() && vpn.asn_change.is_none(), "{name}");
            assert!(vpn.country_change.is_none(), "{name}");
            // Back home: compared with Berlin (not the VPN exit), so nothing changed.
            let back = &obs[2];
            assert!(back.travel.is_none(), "{name}: {:?}", back.travel);
            assert!(
                back.asn_change.is_none() && back.country_change.is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_session_begun_on_a_relay_sees_a_second_network() {
        let config = DetectConfig {
            allow_asns: vec![64500],
            ..DetectConfig::default()
        };
        let tracker = SessionTracker::new(&config);
        // The owner browses through a privacy relay (location unknown); a thief polls from
        // its own network every ten minutes.
        let relay = |s| ev(1, s).ip("192.0.2.9").asn(Some(64500));
        let mut events = vec![relay(0), relay(1), relay(2)];
        events.extend((1..=4).map(|i| ev(1, i * 600).asn(Some(3320))));
        let obs = observe_all(&tracker, events);
        let thief: Vec<u32> = obs[3..].iter().map(|o| o.network_lone_requests).collect();
        assert_eq!(thief, [0, 1, 2, 3], "the relay was the first network");
        // No place or ASN to compare with: the relay says nothing about where the owner is.
        assert!(obs[3].travel.is_none() && obs[3].asn_change.is_none());
    }

    #[test]
    fn a_relay_keeps_its_users_region() {
        let config = DetectConfig {
            relay_asns: vec![64501],
            ..DetectConfig::default()
        };
        let relay = |s, geo| ev(1, s).ip("192.0.2.9").asn(Some(64501)).geo(Some(geo));
        let far = |s| ev(1, s).ip("198.51.100.7").geo(Some(sao_paulo()));

        // A session seen only through a relay (egress in Paris), then São Paulo a minute
        // later: the relay's region is enough to show the replay.
        let obs = observe_all(
            &SessionTracker::new(&config),
            vec![relay(0, paris()), relay(1, paris()), far(60)],
        );
        assert!(obs[0].allowlisted_network && obs[1].travel.is_none());
        let leg = obs[2].travel.as_ref().expect("relay region to São Paulo");
        let expected = haversine_km(&paris(), &sao_paulo()) - RELAY_RADIUS_KM - 50.0;
        assert!((leg.distance_km - expected).abs() < 1e-6, "{leg:?}");
        assert_eq!(
            leg.from.country, None,
            "no border to cross from a relay egress"
        );
        assert!(obs[2].asn_change.is_none() && obs[2].country_change.is_none());

        // Within the region it is no signal: London direct, Paris relay, London direct.
        let london_direct = |s| ev(1, s).ip("198.51.100.8").geo(Some(london()));
        let obs = observe_all(
            &SessionTracker::new(&config),
            vec![london_direct(0), relay(30, paris()), london_direct(60)],
        );
        assert!(obs.iter().all(|o| o.travel.is_none()), "{obs:?}");

        // A relay hop never blurs a precise place: Berlin direct, a relay exiting in
        // Berlin, then Paris; the tighter bound is the one from the precise Berlin.
        let obs = observe_all(
            &SessionTracker::new(&config),
            vec![
                ev(1, 0),
                relay(30, berlin()),
                ev(1, 60).ip("198.51.100.9").geo(Some(paris())),
            ],
        );
        let leg = obs[2].travel.as_ref().expect("Berlin to Paris in a minute");
        let precise = haversine_km(&berlin(), &paris()) - 20.0 - 20.0;
        assert!((leg.distance_km - precise).abs() < 1e-6, "{leg:?}");
        assert_eq!(leg.from.radius_km, 20.0);
    }

    #[test]
    fn concurrent_use_by_two_tokens_of_one_user() {
        let tracker = tracker();
        let exp = T0 + 3600;
        let obs = observe_all(
            &tracker,
            vec![
                ev(1, 0).jwt("alice", None, exp),
                ev(1, 30).jwt("alice", None, exp),
                ev(2, 60)
                    .jwt("alice", None, exp)
                    .ip("198.51.100.7")
                    .geo(Some(sao_paulo())),
                ev(3, 90)
                    .jwt("bob", None, exp)
                    .ip("198.51.100.8")
                    .geo(Some(sao_paulo())),
                ev(1, 120).jwt("alice", None, exp),
                ev(2, 7 * 3600)
                    .jwt("alice", None, exp)
                    .ip("198.51.100.7")
                    .geo(Some(sao_paulo())),
            ],
        );
        assert!(
            obs[1].user_travel.is_none(),
            "same token: session travel, not concurrency"
        );
        let leg = obs[2]
            .user_travel
            .as_ref()
            .expect("alice's second token far away");
        assert_eq!(leg.from.city.as_deref(), Some("Berlin"));
        assert_eq!(leg.elapsed_s, 30.0);
        assert!(obs[2].travel.is_none(), "token 2's own first use");
        assert!(obs[3].user_travel.is_none(), "bob is another user");
        let back = obs[4]
            .user_travel
            .as_ref()
            .expect("token 1 vs token 2's latest use");
        assert_eq!(back.from.city.as_deref(), Some("São Paulo"));
        assert!(obs[5].user_travel.is_none(), "outside the 6-h window");
        assert_eq!(tracker.users_len(), 2);
    }

    #[test]
    fn a_login_session_interleaving_on_two_tokens_shows_returns() {
        // Token 1 is used from its own network in the same city, token 2 from home; owner and
        // thief alternate every 20 s.
        let interleaved = |sid_1: &str, sid_2: &str| {
            let exp = T0 + 3600;
            let far = |s| {
                ev(1, s)
                    .jwt("alice", Some(sid_1), exp)
                    .ip("198.51.100.7")
                    .asn(Some(64500))
            };
            let home = |s| ev(2, s).jwt("alice", Some(sid_2), exp);
            let obs = observe_all(&tracker(), vec![home(0), far(20), home(40), far(60)]);
            obs.iter().map(|o| o.network_returns).collect::<Vec<u32>>()
        };
        // Token 1 was stolen; the owner has refreshed to token 2 (one sid). Each token alone
        // never switches networks; the login session does.
        assert_eq!(interleaved("s-1", "s-1"), [0, 0, 1, 2]);
        // Two devices of one user (two sids) on two networks are two parties by design.
        assert_eq!(interleaved("phone", "laptop"), [0, 0, 0, 0]);
    }

    #[test]
    fn returns_tell_places_of_one_asn_apart_on_direct_networks() {
        // Owner in Berlin and thief on the same ISP (AS 3320), alternating every 20 s; the
        // thief's address placed `thief_at`.
        let hamburg = || Some(place("Hamburg", "DE", 53.551, 9.993, 20.0));
        let potsdam = || Some(place("Potsdam", "DE", 52.39, 13.065, 20.0));
        let returns = |config: &DetectConfig, thief_at: Option<GeoPoint>, sids: Option<&str>| {
            let exp = T0 + 3600;
            // With a sid, owner and thief hold two tokens of one login session; else one.
            let token = |n, s| match sids {
                Some(sid) => ev(n, s).jwt("alice", Some(sid), exp),
                None => ev(1, s),
            };
            let owner = |s| token(2, s);
            let thief = |s| token(1, s).ip("198.51.100.7").geo(thief_at.clone());
            let tracker = SessionTracker::new(config);
            let events = vec![owner(0), thief(20), owner(40), thief(60)];
            observe_all(&tracker, events)
                .iter()
                .map(|o| o.network_returns)
                .collect::<Vec<u32>>()
        };
        let direct = DetectConfig::default();
        let allowlisted = DetectConfig {
            allow_asns: vec![3320],
            ..DetectConfig::default()
        };
        let cases = [
            ("one token, Hamburg", &direct, hamburg(), None, [0, 0, 1, 2]),
            (
                "one login session on two tokens",
                &direct,
                hamburg(),
                Some("s-1"),
                [0, 0, 1, 2],
            ),
            ("a block within 100 km", &direct, potsdam(), None, [0; 4]),
            (
                "one city, another address",
                &direct,
                Some(berlin()),
                None,
                [0; 4],
            ),
            ("unlocated", &direct, None, None, [0; 4]),
            // An allowlisted egress's place says nothing about who is there.
            ("allowlisted ASN", &allowlisted, hamburg(), None, [0; 4]),
        ];
        for (what, config, thief_at, sids, want) in cases {
            assert_eq!(returns(config, thief_at, sids), want, "{what}");
        }
    }

    #[test]
    fn eviction_by_count_keeps_the_most_recent() {
        let config = DetectConfig {
            max_sessions: 3,
            ..DetectConfig::default()
        };
        let tracker = SessionTracker::new(&config);
        for n in 1..=3 {
            tracker.observe(&ev(n, i64::from(n)).build());
        }
        tracker.observe(&ev(1, 10).build()); // 1 is now the most recent
        tracker.observe(&ev(4, 11).build());
        assert_eq!(tracker.len(), 3);
        assert!(
            tracker.snapshot(fp(2)).is_none(),
            "least recently seen goes first"
        );
        for n in [1, 3, 4] {
            assert!(tracker.snapshot(fp(n)).is_some(), "session {n}");
        }
        // A new session is never its own victim, even with an older event time.
        tracker.observe(&ev(5, -1000).build());
        assert!(tracker.snapshot(fp(5)).is_some());
        assert_eq!(tracker.len(), 3);
    }

    #[test]
    fn eviction_by_bytes() {
        // The shard arrays of both maps, there before any session.
        let empty = tracker().approx_bytes();
        let one = {
            let t = tracker();
            t.observe(&ev(1, 0).build());
            t.approx_bytes() - empty
        };
        assert!(one > 100, "{one}");
        let config = DetectConfig {
            max_session_bytes: empty + one * 5 + one / 2,
            ..DetectConfig::default()
        };
        let tracker = SessionTracker::new(&config);
        for n in 0..20 {
            tracker.observe(&ev(n, i64::from(n)).build());
        }
        assert!(
            tracker.len() <= 5 && tracker.len() >= 4,
            "{}",
            tracker.len()
        );
        assert!(tracker.approx_bytes() <= config.max_session_bytes);
        assert!(tracker.snapshot(fp(19)).is_some());
        assert!(tracker.snapshot(fp(0)).is_none());
    }

    #[test]
    fn users_count_against_the_byte_budget() {
        let token = |n: u8| {
            ev(n, i64::from(n))
                .jwt(&format!("user-{n}"), Some(&format!("sid-{n}")), T0 + 3600)
                .build()
        };
        let empty = tracker().approx_bytes();
        let (session_and_user, user) = {
            let t = tracker();
            t.observe(&token(0));
            (
                t.approx_bytes() - empty,
                t.user_bytes.load(Ordering::Relaxed),
            )
        };
        assert!(user > 300, "a user with a login session: {user}");
        let config = DetectConfig {
            max_session_bytes: empty + 10 * session_and_user,
            ..DetectConfig::default()
        };
        let tracker = SessionTracker::new(&config);
        for n in 0..100 {
            tracker.observe(&token(n));
            assert!(tracker.approx_bytes() <= config.max_session_bytes);
        }
        // Users go with their sessions, least recently seen first, not at max_sessions.
        assert!(
            (7..=10).contains(&tracker.users_len()),
            "{}",
            tracker.users_len()
        );
        assert!((7..=10).contains(&tracker.len()), "{}", tracker.len());
        assert!(tracker.snapshot(fp(99)).is_some());
        assert!(tracker.snapshot(fp(0)).is_none());
        let first = user_key(&Claims {
            iss: Some("https://id.example.com".into()),
            sub: Some("user-0".into()),
            ..Claims::default()
        });
        assert!(first.is_some_and(|user| !tracker.users.contains_key(&user.key)));
    }

    #[test]
    fn eviction_by_idle_timeout_and_token_expiry() {
        let config = DetectConfig {
            session_idle_timeout: HumanDuration(Duration::from_secs(600)),
            ..DetectConfig::default()
        };
        let tracker = SessionTracker::new(&config);
        tracker.observe(&ev(1, 0).build());
        tracker.observe(&ev(2, 0).build());
        tracker.observe(&ev(3, 0).jwt("carol", None, T0 + 300).build());
        tracker.observe(&ev(2, 500).build()); // still active
        tracker.observe(&ev(3, 500).jwt("carol", None, T0 + 300).build());
        let at = |s: i64| EventTime::from_secs(T0 + s);

        assert_eq!(
            tracker.evict_idle(at(300)),
            0,
            "nothing idle, exp grace not over"
        );
        // exp + 5 min grace passed for 3; 1 idle for 601 s.
        assert_eq!(tracker.evict_idle(at(601)), 2);
        assert!(tracker.snapshot(fp(1)).is_none() && tracker.snapshot(fp(3)).is_none());
        assert!(tracker.snapshot(fp(2)).is_some(), "re-queued, not evicted");
        assert_eq!(tracker.evict_idle(at(1101)), 1);
        assert!(tracker.is_empty());
        assert_eq!(
            tracker.session_bytes.load(Ordering::Relaxed),
            0,
            "bytes returned with the sessions"
        );
        // Users older than the concurrent-use window go too.
        tracker.evict_idle(at(USER_TRAVEL_WINDOW_S + 1000));
        assert_eq!(tracker.users_len(), 0);
        assert_eq!(tracker.user_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn users_are_bounded_like_sessions() {
        let config = DetectConfig {
            max_sessions: 4,
            ..DetectConfig::default()
        };
        let tracker = SessionTracker::new(&config);
        for n in 0..10u8 {
            let sub = format!("user-{n}");
            tracker.observe(&ev(n, i64::from(n)).jwt(&sub, None, T0 + 3600).build());
        }
        assert_eq!(tracker.users_len(), 4);
        assert_eq!(tracker.users.len(), 4);
        assert_eq!(tracker.len(), 4);
    }

    #[test]
    fn counters_match_the_maps_under_churn() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let config = DetectConfig {
            max_sessions: 50,
            session_idle_timeout: HumanDuration(Duration::from_secs(300)),
            ..DetectConfig::default()
        };
        let tracker = SessionTracker::new(&config);
        let mut rng = SmallRng::seed_from_u64(11);
        let mut now = 0i64;
        for step in 0..5_000 {
            now += rng.random_range(0..5);
            let n: u8 = rng.random_range(0..120);
            // Jitter: some events arrive a little late.
            let at = now - rng.random_range(0..3);
            let mut e = ev(n, at).ip(&format!("192.0.2.{}", rng.random_range(1..20u8)));
            if n.is_multiple_of(3) {
                e = e.jwt(
                    &format!("u{}", n % 7),
                    None,
                    T0 + rng.random_range(100..4000),
                );
            }
            if rng.random_bool(0.2) {
                e = e.geo(Some(sao_paulo()));
            }
            let obs = tracker.observe(&e.build());
            let score = if obs.travel.is_some() { 0.99 } else { 0.0 };
            let a = Assessment {
                score,
                contributions: vec![],
                hard_rule: false,
            };
            tracker.record(fp(n), &a, None);
            if step % 97 == 0 {
                tracker.evict_idle(EventTime::from_secs(T0 + now));
            }
            assert!(tracker.len() <= 50);
        }
        assert_eq!(tracker.len(), tracker.sessions.len());
        assert_eq!(tracker.users_len(), tracker.users.len());
        let charged: usize = tracker.sessions.iter().map(|s| s.charged_bytes).sum();
        assert_eq!(tracker.session_bytes.load(Ordering::Relaxed), charged);
        let charged: usize = tracker.users.iter().map(|u| u.charged_bytes).sum();
        assert_eq!(tracker.user_bytes.load(Ordering::Relaxed), charged);
        // The tables as read back after each insert are the tables as they are.
        assert_eq!(
            tracker.session_tables.bytes(),
            memory::MapTables::new(&tracker.sessions).bytes()
        );
        assert_eq!(
            tracker.user_tables.bytes(),
            memory::MapTables::new(&tracker.users).bytes()
        );
        assert!(tracker.session_queue.lock().len() <= 2 * tracker.len() + 1024);
        // Every live session still has a queue entry, so it can be evicted.
        tracker.evict_idle(EventTime::from_secs(T0 + now + 100_000));
        assert!(tracker.is_empty(), "{} left", tracker.len());
        assert_eq!(tracker.session_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(tracker.users_len(), 0);
        assert_eq!(tracker.user_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn record_keeps_the_strongest_action_and_explains() {
        let tracker = tracker();
        let quiet = Assessment {
            score: 0.0,
            contributions: vec![],
            hard_rule: false,
        };
        tracker.observe(&ev(1, 0).build());
        tracker.record(fp(1), &quiet, None);
        let obs = tracker.observe(
            &ev(1, 60)
                .seq(7)
                .ua(ua("Firefox", "Windows 10", false))
                .build(),
        );
        assert!(obs.user_agent_change.is_some());
        let assessment = Assessment {
            score: 0.65,
            contributions: vec![Contribution {
                reason: crate::event::Reason::UserAgentChange,
                weight: 0.65,
            }],
            hard_rule: false,
        };
        assert_eq!(tracker.prior_action(fp(1)), None);
        tracker.record(fp(1), &assessment, Some(Action::Flag));
        assert_eq!(tracker.prior_action(fp(1)), Some(Action::Flag));
        // (action recorded, action remembered afterwards)
        for (action, remembered) in [
            (None, Action::Flag),
            (Some(Action::Revoke), Action::Revoke),
            (Some(Action::Flag), Action::Revoke),
            (None, Action::Revoke),
        ] {
            tracker.observe(&ev(1, 61).build());
            tracker.record(fp(1), &quiet, action);
            assert_eq!(tracker.prior_action(fp(1)), Some(remembered), "{action:?}");
        }
        tracker.record(fp(9), &assessment, Some(Action::Revoke)); // unknown: ignored
        assert_eq!(tracker.prior_action(fp(9)), None);

        let snap = tracker.snapshot(fp(1)).expect("session");
        assert_eq!(snap.last_score, 0.0, "the latest event was quiet");
        let signal = snap
            .last_signal
            .as_ref()
            .expect("the latest signal is kept");
        assert_eq!(signal.seq, 7);
        assert_eq!(signal.observation.user_agent_change, obs.user_agent_change);
        let json = serde_json::to_value(&snap).expect("serializes");
        assert_eq!(json["fingerprint"], fp(1).to_hex());
        assert_eq!(json["action"], "revoke");
        assert_eq!(
            json["last_signal"]["assessment"]["contributions"][0]["reason"],
            "user_agent_change"
        );
        assert_eq!(json["last_location"]["city"], "Berlin");
        assert_eq!(json["device"]["family"], "Chrome");
    }

    #[test]
    fn explanations_pair_with_their_event_when_a_batch_is_observed_first() {
        let tracker = tracker();
        let batch = [
            ev(1, 0).seq(0).build(),
            ev(1, 10)
                .seq(1)
                .ua(ua("Firefox", "Windows 10", false))
                .build(),
            ev(1, 20).seq(2).build(),
            ev(1, 30).seq(3).ip("192.0.2.77").asn(Some(6805)).build(),
        ];
        let observations: Vec<_> = batch.iter().map(|e| tracker.observe(e)).collect();
        let score = |o: &Observation| Assessment {
            score: if o.user_agent_change.is_some() {
                0.65
            } else {
                0.0
            },
            contributions: vec![],
            hard_rule: false,
        };
        let mut explained = Vec::new();
        for o in &observations {
            tracker.record(fp(1), &score(o), None);
            explained.push(
                tracker
                    .snapshot(fp(1))
                    .and_then(|s| s.last_signal)
                    .map(|s| s.seq),
            );
        }
        assert_eq!(explained, vec![None, Some(1), Some(1), Some(1)]);
        let signal = tracker
            .snapshot(fp(1))
            .and_then(|s| s.last_signal)
            .expect("signal");
        assert!(signal.observation.user_agent_change.is_some());
        assert!(
            signal.observation.asn_change.is_none(),
            "not the later event's features"
        );
    }

    #[test]
    fn snapshot_shows_claims_but_never_a_token() {
        let tracker = tracker();
        tracker.observe(&ev(1, 0).jwt("dave", Some("s-1"), T0 + 3600).build());
        let json =
            serde_json::to_string(&tracker.snapshot(fp(1)).expect("session")).expect("serializes");
        for needle in ["\"sub\":\"dave\"", "\"sid\":\"s-1\"", "\"kind\":\"jwt\""] {
            assert!(json.contains(needle), "{needle} in {json}");
        }
        assert!(
            !json.contains("Bearer") && !json.contains("token\":"),
            "{json}"
        );
    }

    #[test]
    fn concurrent_observers_agree_on_counts() {
        let tracker = Arc::new(tracker());
        std::thread::scope(|scope| {
            for worker in 0..4u8 {
                let tracker = tracker.clone();
                scope.spawn(move || {
                    for k in 0..200 {
                        // Each worker owns its sessions, as the pipeline routes them.
                        let n = worker * 50 + (k % 50) as u8;
                        tracker.observe(&ev(n, i64::from(k)).build());
                        let _ = tracker.snapshot(fp(n));
                    }
                });
            }
        });
        assert_eq!(tracker.len(), 200);
        let total: u64 = (0..200u8)
            .map(|n| tracker.snapshot(fp(n)).expect("session").requests)
            .sum();
        assert_eq!(total, 800);
    }
}
