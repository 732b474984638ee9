//! One user's state (keyed by JWT `iss` + `sub`): the latest located uses by two different
//! tokens, for concurrent use, and per login session (`sid`) the networks its refreshed
//! tokens used; and the tracker's per-event step on it ([`SessionTracker::observe_user`]).
//!
//! Data flow: `identify` (verified claims) → **track** → `features`: `user_travel` and the
//! login session's network returns.
//!
//! Invariants: bounded per user (two uses, [`SIDS_PER_USER`] login sessions, each a bounded
//! `networks::NetworkHistory`); a user's state is shared only when two independent 64-bit
//! hashes of `(iss, sub)` collide; another token counts for concurrent use only within
//! [`USER_TRAVEL_WINDOW_S`]; users count against the same byte budget as sessions.
//!
//! What it does NOT do: track unverified identities (opaque tokens have no user), evict
//! users (`eviction`), or keep the claims themselves (only hashes).

use std::cmp::Reverse;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;

use dashmap::mapref::entry::Entry;

use crate::event::{Claims, EventTime, Fingerprint, GeoPoint, IdentifiedEvent, Observation};

use super::SessionTracker;
use super::eviction::adjust;
use super::session::{LocatedUse, geo_heap_bytes};
use super::{memory, networks};

/// How far back a user's other token counts for concurrent use: two tokens of one user used
/// hours apart in two places is travel, not theft, once the gap is this long.
pub const USER_TRAVEL_WINDOW_S: i64 = 6 * 3600;

/// Login sessions (`sid`) remembered per user for their network switches: a phone, a
/// laptop, a tablet and one more.
const SIDS_PER_USER: usize = 4;

/// One user: the last two located uses by different tokens, and per login session (`sid`)
/// the networks its tokens used.
#[derive(Debug)]
pub(super) struct UserState {
    pub(super) generation: u64,
    /// [`UserKey::check`], for telling a collision of 64-bit map keys from the same user
    /// (rather than the first token's claims, which would keep them allocated).
    check: u64,
    /// Latest event time of any use, for eviction.
    pub(super) last_seen_ms: i64,
    latest: Option<UserUse>,
    /// The most recent use by a fingerprint other than `latest`'s.
    other: Option<UserUse>,
    /// Most recently used last, at most [`SIDS_PER_USER`].
    sids: Vec<SidNetworks>,
    /// What this entry was last charged to the byte budget.
    pub(super) charged_bytes: usize,
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
fn sid_key(sid: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    sid.hash(&mut hasher);
    hasher.finish()
}

/// Where a user's state lives, and how to tell it is this user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UserKey {
    /// The users map key: a hash of `(iss, sub)`.
    pub(super) key: u64,
    /// A second hash of `(iss, sub)`, kept in the entry and compared: two users share state
    /// only if both 64-bit hashes collide (2^-128 for a pair); a key collision alone only
    /// replaces one user's state with the other's.
    check: u64,
}

pub(super) fn user_key(claims: &Claims) -> Option<UserKey> {
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

impl SessionTracker {
    /// The user's view of `event`: concurrent use (travel from the same user's most recent
    /// located use by another token, into `obs.user_travel`) and, for a JWT with a `sid`, the
    /// network signals of its login session across refreshed tokens. `here`: where the
    /// request puts its user ([`NetworkRole::place`](super::geometry::NetworkRole::place)); `spot`: its network.
    pub(super) fn observe_user(
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
                located: LocatedUse::of(event, here),
            };
            obs.user_travel = user
                .latest_other_than(current.fingerprint)
                .filter(|other| {
                    other.located.ip != current.located.ip
                        && (now.0 - other.located.at.0).abs() <= USER_TRAVEL_WINDOW_S * 1000
                })
                .map(|other| other.located.leg_to(&current.located))
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
}
