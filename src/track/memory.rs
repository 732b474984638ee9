//! What the tracker's state really allocates, for the `detect.max_session_bytes` budget.
//!
//! Data flow: part of stage 5, `track`. `SessionTracker` charges every session and every user
//! the block its boxed state takes and every block it owns (vector capacities, not lengths;
//! strings; shared `Arc`s), each rounded the way the allocator rounds it ([`block`]); and it
//! charges the hash tables of its two maps ([`MapTables`]) and the buffers of its eviction
//! queues ([`binary_heap`]) as they are, grown and never shrunk.
//!
//! Invariants: pure arithmetic on sizes, no allocation; never below what the allocator hands
//! out for the blocks it is told about. An allocation several holders share (a city name, the
//! claims of a token that the verification cache holds too) is charged to each holder, so the
//! sum is an upper bound.
//!
//! What it does NOT do: walk the state (each holder lists what it owns), or know about memory
//! it is not told about (the verification cache, enrich's User-Agent cache, batches in
//! flight: config/default.toml lists what bounds each).

use std::collections::BinaryHeap;
use std::hash::Hash;
use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

/// The allocator's bookkeeping per block: glibc's malloc keeps an 8-byte size header and
/// hands out chunks in steps of 16 bytes, 32 at the least.
const BLOCK_HEADER: usize = 8;
const BLOCK_STEP: usize = 16;
const BLOCK_MIN: usize = 32;

/// Control bytes hashbrown adds past a table's buckets (one SSE2 group).
const TABLE_GROUP: usize = 16;

/// Bytes the allocator takes for a request of `size` bytes (0 for none): glibc's chunk size.
/// Blocks of 128 KiB and more (big tables and queues) are mapped and rounded to pages instead,
/// which this ignores (at most 4 KiB on such a block).
pub(crate) const fn block(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    let chunk = (size + BLOCK_HEADER).next_multiple_of(BLOCK_STEP);
    if chunk < BLOCK_MIN { BLOCK_MIN } else { chunk }
}

/// A `Box<T>`'s block.
pub(crate) const fn boxed<T>() -> usize {
    block(size_of::<T>())
}

/// An `Arc<T>`'s block: two counters and the value.
pub(crate) const fn arc<T>() -> usize {
    block(2 * size_of::<usize>() + size_of::<T>())
}

/// An `Arc<str>`'s block: two counters and the text.
pub(crate) fn arc_str(text: &Arc<str>) -> usize {
    block(2 * size_of::<usize>() + text.len())
}

/// A vector's buffer (its capacity, not its length).
pub(crate) fn vec<T>(items: &Vec<T>) -> usize {
    block(items.capacity() * size_of::<T>())
}

/// A string's buffer.
pub(crate) fn string(text: &String) -> usize {
    block(text.capacity())
}

/// A binary heap's buffer.
pub(crate) fn binary_heap<T>(heap: &BinaryHeap<T>) -> usize {
    block(heap.capacity() * size_of::<T>())
}

/// Push onto a vector that grows one item at a time: the few-item vectors of session state
/// would otherwise take room for four on their first push, which most never use.
pub(crate) fn push_exact<T>(items: &mut Vec<T>, item: T) {
    if items.len() == items.capacity() {
        items.reserve_exact(1);
    }
    items.push(item);
}

/// One hashbrown table of `buckets` entries of `slot` bytes: the entries, padded to the
/// control bytes' alignment, one control byte per bucket and one trailing group.
const fn table(buckets: usize, slot: usize) -> usize {
    if buckets == 0 {
        return 0;
    }
    block((buckets * slot).next_multiple_of(TABLE_GROUP) + buckets + TABLE_GROUP)
}

/// The hash tables of one `DashMap` (one per shard) and its shard array. A table may grow at
/// every `entry` call (hashbrown makes room before it looks, even for a key that is there)
/// and keeps its buckets when entries go, so the caller reads back the shard's table after
/// every `entry` call ([`MapTables::refresh`]); `get`, `get_mut` and removals never resize.
pub(crate) struct MapTables {
    /// Buckets of each shard's table, as last read.
    buckets: Box<[AtomicUsize]>,
    /// Bytes of one bucket's entry (key and value).
    slot: usize,
    /// Sum of the tables, plus the shard array.
    bytes: AtomicUsize,
}

impl MapTables {
    /// The tables of `map`, as they are now.
    pub(crate) fn new<K: Eq + Hash, V>(map: &DashMap<K, V>) -> Self {
        let shards = map.shards();
        let tables = MapTables {
            buckets: shards.iter().map(|_| AtomicUsize::new(0)).collect(),
            slot: size_of::<(K, V)>(),
            bytes: AtomicUsize::new(block(std::mem::size_of_val(shards))),
        };
        for shard in 0..shards.len() {
            tables.read_shard(map, shard);
        }
        tables
    }

    /// Read back the table of the shard `key` belongs to (after an `entry` call). The caller
    /// must hold no guard into `map`.
    pub(crate) fn refresh<K: Eq + Hash, V>(&self, map: &DashMap<K, V>, key: &K) {
        self.read_shard(map, map.determine_map(key));
    }

    fn read_shard<K: Eq + Hash, V>(&self, map: &DashMap<K, V>, shard: usize) {
        let now = map.shards()[shard].read().buckets();
        let before = self.buckets[shard].swap(now, Ordering::Relaxed);
        let (now, before) = (table(now, self.slot), table(before, self.slot));
        if now > before {
            self.bytes.fetch_add(now - before, Ordering::Relaxed);
        } else if before > now {
            self.bytes.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    /// Bytes of the tables and the shard array.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_like_glibc_malloc() {
        let cases = [
            (0, 0),
            (1, 32),
            (24, 32),
            (25, 48),
            (40, 48),
            (41, 64),
            (1000, 1008),
        ];
        for (size, want) in cases {
            assert_eq!(block(size), want, "block({size})");
        }
    }

    #[test]
    fn tables_follow_the_map_as_it_grows() {
        let map: DashMap<u64, [u8; 40]> = DashMap::new();
        let tables = MapTables::new(&map);
        let empty = tables.bytes();
        assert!(empty > 0, "the shard array");
        for key in 0..10_000u64 {
            map.entry(key).or_insert([0; 40]);
            tables.refresh(&map, &key);
        }
        let grown = tables.bytes() - empty;
        let buckets: usize = map.shards().iter().map(|s| s.read().buckets()).sum();
        assert!(buckets >= 10_000 * 8 / 7, "{buckets}");
        assert!(grown >= buckets * 48, "{grown} bytes for {buckets} buckets");
        // Removing entries keeps the tables.
        for key in 0..10_000u64 {
            map.remove(&key);
        }
        assert_eq!(tables.bytes() - empty, grown);
    }

    #[test]
    fn exact_pushes_take_no_spare_room() {
        let mut items = Vec::new();
        for n in 0..5u64 {
            push_exact(&mut items, n);
            assert_eq!(items.capacity(), items.len());
        }
    }
}
