//! The verification cache: each JWT's signature is checked once, then its outcome is reused
//! for every later request carrying the same token (looked up by fingerprint).
//!
//! What is cached is everything about a token that does not depend on the event time: its
//! verified [`Claims`], or a rejection such as `bad_signature`. `exp`/`nbf` are re-checked by
//! the caller against each event's time, so a cached token still expires on time. A valid
//! token's entry lapses at `exp + leeway` (event time): from then on every event rejects it
//! anyway, so it is the first thing evicted.
//!
//! Invariants:
//! - Never more than `capacity` entries, even under concurrent inserts: a slot is reserved in an
//!   atomic counter before an entry is added, and released only after one has been removed.
//! - When full, room is made in one sweep (by one thread at a time) down to a low-water mark:
//!   lapsed entries first, then cached rejections (cheap to recompute, and what a flood of
//!   garbage tokens would fill the cache with), then arbitrary entries. Sweeps are O(capacity)
//!   but free 1/16 of the capacity, so their cost per insert stays constant.
//! - No DashMap guard is held across calls or handed out; values are cloned out (an `Arc`).
//! - Keys are fingerprints; the raw token is never stored.
//! - Memory: an entry is a 48-byte table slot (fingerprint and `CachedVerification`; the
//!   table keeps 8/7 to 16/7 slots per entry, plus a control byte each: 56–112 bytes) and, for
//!   a valid token, its [`Claims`] in an `Arc` (160 bytes, 176 as allocated) with their
//!   strings (`iss`, `sub`, `jti`, `sid`: ≈ 180 bytes for typical ones). ≈ 450 bytes a valid
//!   JWT, shared with its session in `track` while it has one; 56–112 bytes a rejection.
//!
//! Not done here: single-flight (two workers seeing a new token at once may both verify it;
//! harmless, both store the same outcome).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::RejectReason;
use crate::event::{Claims, Fingerprint};

/// A cached verification outcome.
pub(super) type Outcome = Result<Arc<Claims>, RejectReason>;

#[derive(Clone)]
struct CachedVerification {
    /// Tag of the signature this outcome is about: the fingerprint leaves the signature out
    /// (DESIGN §4), so one fingerprint can arrive with a forged signature too.
    signature: u64,
    outcome: Outcome,
    /// Event time (ms) from which the entry is useless (`exp + leeway`); `None` = no expiry.
    lapses_at_ms: Option<i64>,
}

pub(super) struct VerificationCache {
    map: DashMap<Fingerprint, CachedVerification>,
    capacity: usize,
    /// Entries present plus slots reserved for inserts in flight; never above `capacity`.
    reserved: AtomicUsize,
    sweeping: AtomicBool,
}

impl VerificationCache {
    /// A cache of at most `capacity` entries; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        VerificationCache {
            map: DashMap::new(),
            capacity,
            reserved: AtomicUsize::new(0),
            sweeping: AtomicBool::new(false),
        }
    }

    /// The outcome cached for this fingerprint *and* signature.
    pub fn get(&self, fingerprint: &Fingerprint, signature: u64) -> Option<Outcome> {
        self.map
            .get(fingerprint)
            .filter(|entry| entry.signature == signature)
            .map(|entry| entry.outcome.clone())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Remember an outcome. `now_ms` is the current event's time, used to find lapsed entries
    /// when room must be made. Time-dependent rejections are never stored, and a rejection
    /// never replaces a verified signature of the same token (a forged copy of a real token's
    /// header and payload must not make the real one look forged).
    pub fn insert(
        &self,
        fingerprint: Fingerprint,
        signature: u64,
        outcome: Outcome,
        lapses_at_ms: Option<i64>,
        now_ms: i64,
    ) {
        if self.capacity == 0 || matches!(outcome, Err(reason) if reason.is_time_dependent()) {
            return;
        }
        let entry = CachedVerification {
            signature,
            outcome,
            lapses_at_ms,
        };
        if let Some(mut existing) = self.map.get_mut(&fingerprint) {
            if existing.outcome.is_ok() && entry.outcome.is_err() {
                return;
            }
            *existing = entry;
            return;
        }
        if !self.reserve_slot() {
            self.make_room(now_ms);
            if !self.reserve_slot() {
                // Another thread is sweeping, or everything left is in use: skip caching this
                // one rather than wait or grow past the bound.
                return;
            }
        }
        match self.map.entry(fingerprint) {
            Entry::Occupied(mut occupied) => {
                // Lost a race with another insert of the same token: reuse its slot.
                occupied.insert(entry);
                self.reserved.fetch_sub(1, Ordering::Relaxed);
            }
            Entry::Vacant(vacant) => {
                vacant.insert(entry);
            }
        }
    }

    fn reserve_slot(&self) -> bool {
        self.reserved
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used < self.capacity).then_some(used + 1)
            })
            .is_ok()
    }

    /// Evict down to the low-water mark: lapsed entries, then rejections, then any.
    fn make_room(&self, now_ms: i64) {
        if self.sweeping.swap(true, Ordering::Acquire) {
            return;
        }
        let low_water = self.capacity - (self.capacity / 16).max(1);
        self.remove_where(usize::MAX, |entry| {
            entry.lapses_at_ms.is_some_and(|lapse| now_ms >= lapse)
        });
        let excess = self
            .reserved
            .load(Ordering::Relaxed)
            .saturating_sub(low_water);
        if excess > 0 {
            self.remove_where(excess, |entry| entry.outcome.is_err());
        }
        let excess = self
            .reserved
            .load(Ordering::Relaxed)
            .saturating_sub(low_water);
        if excess > 0 {
            self.remove_where(excess, |_| true);
        }
        self.sweeping.store(false, Ordering::Release);
    }

    /// Remove up to `limit` entries matching `evict`, then release their slots. Releasing only
    /// after `retain` returns keeps `reserved` an upper bound on the entries present at every
    /// instant (an entry is gone before its slot can be reused).
    fn remove_where(&self, limit: usize, evict: impl Fn(&CachedVerification) -> bool) {
        let mut removed = 0;
        self.map.retain(|_, entry| {
            if removed < limit && evict(entry) {
                removed += 1;
                false
            } else {
                true
            }
        });
        self.reserved.fetch_sub(removed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u32) -> Fingerprint {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        Fingerprint(bytes)
    }

    fn valid() -> Outcome {
        Ok(Arc::new(Claims::default()))
    }

    #[test]
    fn never_grows_past_capacity_and_evicts_lapsed_then_rejected_first() {
        let cache = VerificationCache::new(32);
        // 10 valid entries lapsing at t=1000, 10 rejections, 12 valid entries without expiry.
        for n in 0..10 {
            cache.insert(fp(n), 0, valid(), Some(1000), 0);
        }
        for n in 10..20 {
            cache.insert(fp(n), 0, Err(RejectReason::BadSignature), None, 0);
        }
        for n in 20..32 {
            cache.insert(fp(n), 0, valid(), None, 0);
        }
        assert_eq!(cache.len(), 32);
        // Full at t=2000: the 10 lapsed entries go, nothing else needs to.
        cache.insert(fp(100), 0, valid(), None, 2000);
        assert_eq!(cache.len(), 23);
        assert!(
            (0..10).all(|n| cache.get(&fp(n), 0).is_none()),
            "lapsed evicted"
        );
        assert!((10..32).all(|n| cache.get(&fp(n), 0).is_some()));
        // Fill again; with nothing lapsed, rejections go before valid entries.
        for n in 200..209 {
            cache.insert(fp(n), 0, valid(), None, 2000);
        }
        assert_eq!(cache.len(), 32);
        cache.insert(fp(300), 0, valid(), None, 2000);
        assert!(cache.len() <= 32);
        let rejections_left = (10..20).filter(|n| cache.get(&fp(*n), 0).is_some()).count();
        assert!(rejections_left < 10, "some rejections evicted");
        assert!(
            (20..32).all(|n| cache.get(&fp(n), 0).is_some()),
            "valid entries kept"
        );
        assert!(cache.get(&fp(300), 0).is_some());
    }

    #[test]
    fn a_forged_signature_neither_borrows_nor_poisons_the_real_verdict() {
        let cache = VerificationCache::new(4);
        // The forged copy arrives first and is rejected; the real signature is verified later.
        cache.insert(fp(1), 666, Err(RejectReason::BadSignature), None, 0);
        assert!(
            cache.get(&fp(1), 7).is_none(),
            "another signature is a miss"
        );
        cache.insert(fp(1), 7, valid(), None, 0);
        assert!(matches!(cache.get(&fp(1), 7), Some(Ok(_))));
        // A forged copy after the real one: still a miss, and it does not evict the real one.
        assert!(cache.get(&fp(1), 666).is_none());
        cache.insert(fp(1), 666, Err(RejectReason::BadSignature), None, 0);
        assert!(matches!(cache.get(&fp(1), 7), Some(Ok(_))));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn replacing_an_entry_does_not_use_a_slot() {
        let cache = VerificationCache::new(2);
        for _ in 0..5 {
            cache.insert(fp(1), 0, valid(), None, 0);
        }
        cache.insert(fp(2), 0, valid(), None, 0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.reserved.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn time_dependent_rejections_and_zero_capacity_cache_nothing() {
        let cache = VerificationCache::new(4);
        cache.insert(fp(1), 0, Err(RejectReason::Expired), None, 0);
        cache.insert(fp(2), 0, Err(RejectReason::NotYetValid), None, 0);
        assert_eq!(cache.len(), 0);
        let disabled = VerificationCache::new(0);
        disabled.insert(fp(1), 0, valid(), None, 0);
        assert_eq!(disabled.len(), 0);
    }

    #[test]
    fn concurrent_inserts_respect_the_bound() {
        let cache = Arc::new(VerificationCache::new(100));
        let workers: Vec<_> = (0..4u32)
            .map(|worker| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for n in 0..2_000u32 {
                        cache.insert(
                            fp(worker * 10_000 + n),
                            0,
                            valid(),
                            Some(i64::from(n)),
                            1000,
                        );
                        // `len()` sums shards one by one, so it is no snapshot under concurrent
                        // moves; `reserved` is the bound the cache enforces on the real count.
                        assert!(cache.reserved.load(Ordering::Relaxed) <= 100);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        assert!(cache.len() <= 100);
        assert_eq!(cache.len(), cache.reserved.load(Ordering::Relaxed));
    }
}
