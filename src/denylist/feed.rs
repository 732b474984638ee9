//! The denylist's change feed (DESIGN §7 `GET /v1/revocations?since=`, `…/stream`): every
//! change applied to the in-memory state, numbered, kept in a bounded ring so caches and SDKs
//! can follow the denylist by cursor instead of polling the whole list.
//!
//! Where it sits: inside [`Denylist`](super::Denylist). Every path that changes the state —
//! `revoke_many` (detector and admin), `unrevoke`, `apply_shared` (changes read back from the
//! Kafka denylist topic in distributed mode) — records here while it holds the writer mutex, so
//! sequence order is the order the state changed in. The API (`api/feed.rs`) reads pages and
//! waits for news on a `watch` channel.
//!
//! Invariants:
//! - A [`Cursor`] names a point in this feed: its *epoch* (random, chosen when the denylist
//!   was built) and the sequence number of the last change seen (0: none). Sequence numbers
//!   start at 1 and never repeat within an epoch.
//! - The ring holds at most `retain` changes; the oldest are dropped first. A cursor older than
//!   the oldest retained change, from another epoch (another process, a restart, another
//!   replica) or from the future is [`FeedError::Stale`]: the client must resync from a
//!   snapshot. Nothing else is ever skipped silently.
//! - Entries that lapse (expiry) produce no `remove`: every `add` carries its expiry and a cache
//!   drops it then, as the check does.
//! - Allowlistings are not in the feed: they are local to the replica that made them and are
//!   not denylist entries.
//!
//! It does NOT: persist anything (cursors do not survive a restart; the epoch changes), hold a
//! lock while a client reads, or buffer per client (clients pull pages by cursor).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{DenyKey, Entry};

/// Changes kept for cursors to resume from, unless configured otherwise (`feed.retain`).
pub const DEFAULT_RETAIN: usize = 10_000;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedOp {
    /// The key's entry was added or replaced.
    Add,
    /// The key's entry was removed (un-revoked).
    Remove,
}

/// One numbered change.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedChange {
    /// Its sequence number in the feed's epoch.
    pub seq: u64,
    /// Add or remove.
    pub op: FeedOp,
    /// The key.
    pub key: DenyKey,
    /// The entry added (`None` for a removal).
    pub entry: Option<Entry>,
}

/// A position in the feed: `<epoch hex>-<seq>` in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The feed's epoch.
    pub epoch: u64,
    /// The last change seen (0: none).
    pub seq: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}-{}", self.epoch, self.seq)
    }
}

/// A cursor's text is not `<hex>-<digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor: expected <hex>-<number>, as returned in next_cursor or an event id")]
pub struct CursorParseError;

impl FromStr for Cursor {
    type Err = CursorParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (epoch, seq) = text.trim().split_once('-').ok_or(CursorParseError)?;
        if epoch.is_empty() || epoch.len() > 16 || seq.is_empty() || seq.len() > 20 {
            return Err(CursorParseError);
        }
        Ok(Cursor {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| CursorParseError)?,
            seq: seq.parse().map_err(|_| CursorParseError)?,
        })
    }
}

/// Why a page could not be read from a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The cursor is from another epoch, older than what is retained, or ahead of the feed:
    /// resync from a snapshot.
    #[error("cursor expired: resync from a snapshot (request without a cursor)")]
    Stale,
}

impl FeedError {
    /// Bounded code.
    pub fn code(self) -> &'static str {
        match self {
            FeedError::Stale => "cursor_expired",
        }
    }
}

/// A page of changes after a cursor.
#[derive(Debug, Clone)]
pub struct FeedPage {
    /// The changes, oldest first.
    pub changes: Vec<Arc<FeedChange>>,
    /// The cursor to continue from (the last change's, or the request's when empty).
    pub next: Cursor,
    /// More changes follow `next` already.
    pub more: bool,
}

struct Ring {
    changes: VecDeque<Arc<FeedChange>>,
    /// The last sequence number given out.
    last_seq: u64,
    /// The highest sequence number dropped from the ring (0: none).
    dropped_through: u64,
    retain: usize,
}

/// The numbered, bounded change feed.
pub struct ChangeFeed {
    epoch: u64,
    ring: Mutex<Ring>,
    /// The last sequence number, for waiters.
    notify: tokio::sync::watch::Sender<u64>,
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("cursor", &self.cursor().to_string())
            .finish()
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed::new(DEFAULT_RETAIN)
    }
}

/// A fresh epoch: 48 random bits, so a cursor of another process (a restart, another
/// replica) is recognised as foreign.
fn fresh_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes[2..]).is_err() {
        // No system randomness: the wall clock still differs from one process to the next.
        return super::wall_clock_ms().unsigned_abs() & 0xffff_ffff_ffff;
    }
    u64::from_be_bytes(bytes)
}

impl ChangeFeed {
    /// An empty feed keeping the last `retain` changes (at least 1), in a fresh epoch.
    pub fn new(retain: usize) -> Self {
        let (notify, _) = tokio::sync::watch::channel(0);
        ChangeFeed {
            epoch: fresh_epoch(),
            ring: Mutex::new(Ring {
                changes: VecDeque::new(),
                last_seq: 0,
                dropped_through: 0,
                retain: retain.max(1),
            }),
            notify,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep the last `retain` changes from now on (at least 1).
    pub fn set_retain(&self, retain: usize) {
        let mut ring = self.lock();
        ring.retain = retain.max(1);
        trim(&mut ring);
    }

    /// Number and keep one change; wakes waiters.
    pub(super) fn record(&self, op: FeedOp, key: DenyKey, entry: Option<Entry>) {
        let seq = {
            let mut ring = self.lock();
            ring.last_seq += 1;
            let seq = ring.last_seq;
            ring.changes.push_back(Arc::new(FeedChange {
                seq,
                op,
                key,
                entry,
            }));
            trim(&mut ring);
            seq
        };
        self.notify.send_replace(seq);
    }

    /// The cursor after the last change.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            epoch: self.epoch,
            seq: self.lock().last_seq,
        }
    }

    /// Up to `limit` changes after `after`, oldest first.
    pub fn page(&self, after: Cursor, limit: usize) -> Result<FeedPage, FeedError> {
        let ring = self.lock();
        if after.epoch != self.epoch
            || after.seq > ring.last_seq
            || after.seq < ring.dropped_through
        {
            return Err(FeedError::Stale);
        }
        // Sequence numbers in the ring are consecutive: index by offset.
        let first_seq = ring.dropped_through + 1;
        let start = usize::try_from(after.seq + 1 - first_seq).unwrap_or(usize::MAX);
        let changes: Vec<Arc<FeedChange>> = ring
            .changes
            .iter()
            .skip(start)
            .take(limit.max(1))
            .cloned()
            .collect();
        let next = changes.last().map_or(after, |c| Cursor {
            epoch: self.epoch,
            seq: c.seq,
        });
        Ok(FeedPage {
            more: next.seq < ring.last_seq,
            changes,
            next,
        })
    }

    /// A receiver that sees the last sequence number change (for streams).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }
}

fn trim(ring: &mut Ring) {
    while ring.changes.len() > ring.retain {
        if let Some(dropped) = ring.changes.pop_front() {
            ring.dropped_through = dropped.seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denylist::Origin;
    use crate::event::Fingerprint;

    fn key(n: u8) -> DenyKey {
        DenyKey::Fingerprint(Fingerprint([n; 16]))
    }

    fn entry() -> Entry {
        Entry {
            action: Default::default(),
            reasons: vec!["admin".into()],
            origin: Origin::Admin,
            created_at_ms: 1,
            expires_at_ms: 2,
            not_before: None,
            score: None,
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            epoch: 0xabc,
            seq: 42,
        };
        assert_eq!(cursor.to_string(), "000000000abc-42");
        assert_eq!("000000000abc-42".parse(), Ok(cursor));
        for bad in [
            "",
            "-",
            "abc",
            "abc-",
            "-1",
            "xyz-1",
            "abc-1x",
            "1-99999999999999999999999",
        ] {
            assert_eq!(bad.parse::<Cursor>(), Err(CursorParseError), "{bad:?}");
        }
    }

    #[test]
    fn pages_follow_the_cursor_and_stale_cursors_are_refused() {
        let feed = ChangeFeed::new(3);
        let start = feed.cursor();
        assert_eq!(start.seq, 0);
        for n in 1..=2 {
            feed.record(FeedOp::Add, key(n), Some(entry()));
        }
        let page = feed.page(start, 10).expect("page");
        assert_eq!(page.changes.len(), 2);
        assert_eq!(page.changes[0].seq, 1);
        assert!(!page.more);
        let first = feed.page(start, 1).expect("page");
        assert_eq!(
            (first.changes.len(), first.more, first.next.seq),
            (1, true, 1)
        );
        let rest = feed.page(first.next, 10).expect("page");
        assert_eq!(rest.changes[0].key, key(2));
        // Caught up: an empty page keeps the cursor.
        let empty = feed.page(rest.next, 10).expect("page");
        assert!(empty.changes.is_empty());
        assert_eq!(empty.next, rest.next);
        // Two more: change 1 is dropped (retain 3), so cursor 0 is stale, cursor 1 is not.
        feed.record(FeedOp::Remove, key(1), None);
        feed.record(FeedOp::Add, key(3), Some(entry()));
        assert_eq!(feed.page(start, 10).err(), Some(FeedError::Stale));
        let from_one = feed.page(first.next, 10).expect("page");
        assert_eq!(
            from_one.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        // Another epoch, or the future: stale.
        let foreign = Cursor {
            epoch: feed.cursor().epoch ^ 1,
            seq: 4,
        };
        assert_eq!(feed.page(foreign, 10).err(), Some(FeedError::Stale));
        let ahead = Cursor {
            seq: 5,
            ..feed.cursor()
        };
        assert_eq!(feed.page(ahead, 10).err(), Some(FeedError::Stale));
    }

    #[test]
    fn waiters_see_the_last_sequence_number() {
        let feed = ChangeFeed::new(10);
        let mut rx = feed.subscribe();
        assert_eq!(*rx.borrow_and_update(), 0);
        feed.record(FeedOp::Add, key(1), Some(entry()));
        assert!(rx.has_changed().expect("open"));
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
