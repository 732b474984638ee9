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
//! - The network catalog (`enrich`'s `network_kind`, DESIGN §5 network knowledge) feeds the
//!   same roles after the operator's lists: a satellite or in-flight network is handled like
//!   an allowlisted one (no place, no network change), a catalogued relay like
//!   `detect.relay_*`. A hosting/VPN network is an anonymiser, not a place (DESIGN §5): no
//!   travel leg and no country from it (a consumer VPN's egress abroad is not a trip), but a
//!   move onto it is a network change, and the observation marks it as an anonymiser (a
//!   model feature, and shown in the decision's evidence). A mobile carrier (known by its
//!   organisation name) is the user's own network placed as a region: its place counts for
//!   travel with at least [`MOBILE_RADIUS_KM`], and all its blocks are one network.
//! - The operator's allowlist is vouched for: `vouched_network` tells the scorers that the
//!   request contributes nothing (no score, no decision).
//! - Out-of-order events (event time going backwards) compare by absolute elapsed time and do
//!   not overwrite newer "last" values; nothing here panics on any input.
//!
//! Files: this one holds [`SessionTracker`] and its per-event steps (`observe`, `record`);
//! `session` one session's state and comparisons, `user` one user's (concurrent use, login
//! sessions), `rate` the request-rate windows, `geometry` distances, travel legs and what a
//! network says about place, `networks` per-network history, `eviction` the queues and the
//! byte budget, `memory` the allocator's accounting, `snapshot` the API's session view.
//!
//! What it does NOT do: decide whether a feature is suspicious (that is `score`), keep or print
//! raw tokens (only fingerprints and verified claims), or look anything up (GeoIP and
//! User-Agent parsing happened in `enrich`).

use std::cmp::Reverse;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

mod cidrs;
mod eviction;
mod geometry;
mod memory;
mod networks;
mod rate;
mod session;
mod snapshot;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod user;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::config::DetectConfig;
use crate::event::{
    Action, Assessment, Enrichment, Fingerprint, IdentifiedEvent, NetworkEvidence, NetworkKind,
    Observation,
};

use eviction::{EvictionQueue, adjust};
use geometry::NetworkRole;
use session::{PendingObservation, SessionState, carries_signal};
use user::{UserState, user_key};

pub use geometry::{
    EARTH_RADIUS_KM, MOBILE_RADIUS_KM, RELAY_RADIUS_KM, great_circle_km, haversine_km, travel_leg,
};
pub use snapshot::{
    DeviceSnapshot, LocationSnapshot, RateSnapshot, SessionSnapshot, SignalSnapshot,
};
pub use user::USER_TRAVEL_WINDOW_S;

/// Sessions are kept this long past their token's `exp`: JWTs are still accepted within the
/// verification leeway, and such a request should not look like a brand-new session.
const EXPIRY_GRACE_MS: i64 = 5 * 60 * 1000;

/// Observations waiting for `record` per session, at most (a batch rarely holds more of one
/// session's signal-carrying events).
const MAX_PENDING: usize = 64;

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
    /// Sessions evicted because a capacity bound was reached (`sessions_evicted_total`).
    capacity_evictions: AtomicU64,
    allow_cidrs: cidrs::CidrSet,
    allow_asns: Vec<u32>,
    relay_cidrs: cidrs::CidrSet,
    relay_asns: Vec<u32>,
    max_sessions: usize,
    max_session_bytes: usize,
    idle_timeout_ms: i64,
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
            capacity_evictions: AtomicU64::new(0),
            allow_cidrs: cidrs::CidrSet::new(&config.allow_cidrs),
            allow_asns: sorted(&config.allow_asns),
            relay_cidrs: cidrs::CidrSet::new(&config.relay_cidrs),
            relay_asns: sorted(&config.relay_asns),
            max_sessions: config.max_sessions.max(1),
            max_session_bytes: config.max_session_bytes,
            idle_timeout_ms: i64::try_from(config.session_idle_timeout.0.as_millis())
                .unwrap_or(i64::MAX),
        }
    }

    /// The request's role: the operator's lists first (`detect.allow_*`, then
    /// `detect.relay_*`), then the catalog's kind from `enrich`: a satellite or in-flight
    /// link is no place, a catalogued relay is a relay, a hosting/VPN network an anonymiser
    /// (no place either, but a network change).
    fn network_role(&self, ip: IpAddr, enrichment: &Enrichment) -> NetworkRole {
        let asn = enrichment.asn;
        let listed = |cidrs: &cidrs::CidrSet, asns: &[u32]| {
            asn.is_some_and(|asn| asns.binary_search(&asn).is_ok()) || cidrs.contains(&ip)
        };
        if listed(&self.allow_cidrs, &self.allow_asns) {
            NetworkRole::Allowlisted
        } else if listed(&self.relay_cidrs, &self.relay_asns) {
            NetworkRole::Relay
        } else {
            match enrichment.network_kind {
                Some(NetworkKind::Satellite) => NetworkRole::NoPlace,
                Some(NetworkKind::Relay) => NetworkRole::Relay,
                Some(NetworkKind::Hosting) => NetworkRole::Anonymiser,
                Some(NetworkKind::Mobile) => NetworkRole::Mobile,
                None => NetworkRole::Direct,
            }
        }
    }

    /// Update the session with one event and return its features. Events of one session must
    /// arrive in order (the pipeline guarantees it); a late one is handled, not trusted.
    pub fn observe(&self, event: &IdentifiedEvent) -> Observation {
        let fingerprint = event.identity.fingerprint;
        let kind = self.network_role(event.event.client_ip, &event.enrichment);
        let place = kind.place(event.enrichment.geo.as_ref());
        let spot = event
            .enrichment
            .asn
            .map(|asn| kind.spot(asn, event.event.client_ip, event.enrichment.geo.as_ref()));
        let mut obs = Observation {
            allowlisted_network: kind.is_shared(),
            vouched_network: kind == NetworkRole::Allowlisted,
            network: event
                .enrichment
                .network_kind
                .map(|network_kind| NetworkEvidence {
                    kind: network_kind,
                    asn: event.enrichment.asn,
                    org: event.enrichment.network_org.clone(),
                    anonymiser: network_kind.is_anonymiser(),
                }),
            ..Observation::default()
        };
        let user = event
            .identity
            .claims
            .as_ref()
            .and_then(|claims| Some((user_key(claims)?, claims)));
        let sid_signals = user.and_then(|(key, claims)| {
            // A revoked or stepped-up token is refused at the check: whoever still sends it
            // (mostly the thief who lost it) is not where the user is, and must not make the
            // owner's other tokens look like concurrent use.
            let stopped = matches!(
                self.prior_action(fingerprint),
                Some(Action::Revoke | Action::StepUp)
            );
            let here = place.as_deref().filter(|_| !stopped);
            self.observe_user(event, key, claims, here, spot, &mut obs)
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
                obs.network_direct_returns = obs.network_direct_returns.max(sid.direct_returns);
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

    /// Remember the latest assessment and action, for the session view and to suppress
    /// duplicate decisions. A revoke (or step-up) is never downgraded by a later, weaker action.
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
                (Some(Action::StepUp), _) | (_, Some(Action::StepUp)) => Some(Action::StepUp),
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

    /// Sessions evicted so far because `max_sessions` or `max_session_bytes` was reached.
    pub fn capacity_evictions(&self) -> u64 {
        self.capacity_evictions.load(Ordering::Relaxed)
    }
}
