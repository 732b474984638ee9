//! Keeping the tracker within its bounds: the lazily-maintained min-heaps of sessions (by
//! last use and by token expiry) and users (by last use), the byte counters, and the
//! [`SessionTracker`] methods that evict by count, by bytes and by idleness.
//!
//! Data flow: part of **track**; runs inside `observe`/`record` when over a limit and from
//! the pipeline's periodic [`SessionTracker::evict_idle`].
//!
//! Invariants: at most `detect.max_sessions` sessions (and as many users) and at most
//! `detect.max_session_bytes`, least recently seen first, sessions and users in one order; a
//! queue holds one entry per live session or user plus stale ones up to twice the live count
//! before it is compacted; an entry is re-queued only when its owner was used since it was
//! queued, so eviction costs amortized O(log n) per event; lock order is the session queue,
//! then the user queue, then a map shard (never the reverse); the session being observed or
//! recorded (and its user) is never the one evicted.
//!
//! What it does NOT do: decide what a session or user costs (`session`, `user` and `memory`
//! measure it) or look at any wall clock (idleness is event time).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::event::{EventTime, Fingerprint};

use super::user::USER_TRAVEL_WINDOW_S;
use super::{SessionTracker, memory};

/// Lazily-maintained min-heap of `(stamp ms, generation, key)`.
type Queue<K> = BinaryHeap<Reverse<(i64, u64, K)>>;

/// An eviction queue, and the bytes its buffer takes (for the budget), brought up to date
/// whenever a guard is let go.
pub(super) struct EvictionQueue<K> {
    heap: Mutex<Queue<K>>,
    bytes: AtomicUsize,
}

/// The locked queue; dereferences to it.
pub(super) struct QueueGuard<'a, K> {
    heap: MutexGuard<'a, Queue<K>>,
    bytes: &'a AtomicUsize,
}

impl<K: Ord> EvictionQueue<K> {
    pub(super) fn new() -> Self {
        EvictionQueue {
            heap: Mutex::new(BinaryHeap::new()),
            bytes: AtomicUsize::new(0),
        }
    }

    pub(super) fn lock(&self) -> QueueGuard<'_, K> {
        QueueGuard {
            // A panic elsewhere while holding a queue leaves it a valid heap; keep going.
            heap: self.heap.lock().unwrap_or_else(PoisonError::into_inner),
            bytes: &self.bytes,
        }
    }

    /// Bytes of the buffer, as of the last guard let go.
    pub(super) fn bytes(&self) -> usize {
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

/// shared cache line.
pub(super) fn adjust(counter: &AtomicUsize, before: usize, after: usize) {
    if after > before {
        counter.fetch_add(after - before, Ordering::Relaxed);
    } else if before > after {
        counter.fetch_sub(before - after, Ordering::Relaxed);
    }
}

enum Probe {
    /// No such entry (or a newer incarnation): drop the queue entry.
    Gone,
    /// The entry exists; its current stamp.
    Live(i64),
}

impl SessionTracker {
    /// Bytes of tracker state: sessions and users (their boxes and what they own), both
    /// maps' tables and the eviction queues (the `max_session_bytes` budget).
    pub(super) fn state_bytes(&self) -> usize {
        self.session_bytes.load(Ordering::Relaxed)
            + self.user_bytes.load(Ordering::Relaxed)
            + self.session_tables.bytes()
            + self.user_tables.bytes()
            + self.session_queue.bytes()
            + self.expiry_queue.bytes()
            + self.user_queue.bytes()
    }

    pub(super) fn over_session_limits(&self) -> bool {
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
    pub(super) fn evict_least_recent(&self, protect: Fingerprint, protect_user: Option<u64>) {
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
                    if self.remove_session_if(fingerprint, generation, |seen| seen <= stamp) {
                        self.capacity_evictions.fetch_add(1, Ordering::Relaxed);
                    } else if let Probe::Live(seen) = self.probe_session(fingerprint, generation) {
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
    pub(super) fn drain_users(
        &self,
        queue: &mut Queue<u64>,
        cutoff: Option<i64>,
        protect: Option<u64>,
    ) {
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
}
