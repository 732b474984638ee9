//! The shared denylist (DESIGN §6, embedded mode): which tokens, sessions and users are revoked.
//!
//! Where it sits: `publish` (detector decisions) and the admin API write to it; `GET /v1/check`
//! reads it on every request the application's auth middleware forwards. It is the only state
//! the check path touches.
//!
//! Invariants:
//! - An entry revokes or steps up ([`EntryAction`], DESIGN §5); [`Denylist::check`] returns a
//!   revocation whenever one matches, a step-up only when none does, and a detector step-up
//!   never replaces a revocation in force.
//! - The in-memory maps (DashMap) are wrapped so that no guard ever leaves this module: methods
//!   return owned values or inspect entries inside the call. A guard can therefore never be held
//!   across an `.await` or while the same shard is locked again.
//! - Every change is appended to the journal (`journal.rs`) and `fsync`ed before
//!   `revoke*`/`unrevoke` return `Ok`, so a revocation acknowledged by the API survives
//!   `kill -9`. A batch passed to [`Denylist::revoke_many`] costs one `fsync` (group commit).
//! - Writers are serialized by the writer mutex, so the order of records in the file is the
//!   order the changes were applied in memory; replay reproduces the same state.
//! - Fail-safe ordering: a revocation is visible in memory *before* its `fsync` (denying early
//!   is safe, and it stays denied even if the write fails); an un-revocation takes effect in
//!   memory only *after* its `fsync` (a token is never allowed on the strength of a change that
//!   may not survive a crash).
//! - Entries lapse at `expires_at_ms` (wall clock). Lapsed entries never match; they are dropped
//!   from memory by [`Denylist::purge_expired`] and from disk at the next compaction.
//! - `check` allocates nothing on a miss: keys are looked up with borrowed parts of the query.
//! - One process per journal: opening takes an exclusive lock on `<journal>.lock` (holding the
//!   pid) for the denylist's life; a second process refuses to start, naming the holder's pid
//!   ([`DenylistError::Locked`]). `journal-repair` takes the same lock.
//! - Startup never destroys evidence: a torn final record is cut only after its bytes are
//!   durable in `<journal>.torn-<unix seconds>`; a format-1 file is rewritten only after it is
//!   kept as `<journal>.v1.bak`; any other damage refuses to start
//!   ([`DenylistError::Corrupt`], file untouched) until [`repair`](fn@repair) has kept a copy
//!   (`<journal>.damaged-<unix seconds>`) and salvaged every record with a valid checksum.
//! - A journal that existed stays noticed: `<journal>.created` is written once the journal
//!   first exists, and a missing journal beside it refuses to start ([`DenylistError::Missing`]).
//! - The file is replaced only by rename of a complete, fsynced file (then the folder is
//!   fsynced): the previous file stays whole until the new one is durable.
//! - Writability is a state: after a failed append or rewrite (or a startup rewrite that could
//!   not be written, e.g. on a full disk) nothing more is appended to that file — changes are
//!   refused with [`DenylistError::Poisoned`] while revocations still apply in memory — until
//!   a rewrite of the whole in-memory state to a fresh file succeeds ([`Denylist::compact`],
//!   tried by every [`Denylist::maintain`]). [`Denylist::is_writable`], the observers of
//!   [`Denylist::on_writable_change`] (readiness) and the `journal_writable` gauge follow it.
//! - `fp:` keys read with another fingerprint version than [`FINGERPRINT_VERSION`] (format-1
//!   files: HMAC over the raw token) keep that label through rewrites, are counted in
//!   [`ReplayStats`] and logged; they are kept (an opaque token's fingerprint is unchanged),
//!   and lapse at their expiry.
//!
//! Files: this one holds [`Denylist`] (open, revoke, check, maintain) and the entry types;
//! `key` the key types and their text form, `state` the in-memory maps, `journal` the
//! on-disk format and replay, `files` locking and durable file operations, `repair`
//! `journal-repair`, `error` [`DenylistError`].
//!
//! Distributed mode (DESIGN §6): the journal's place is taken by a [`SharedLog`] — the
//! compacted denylist topic (`publish/topic.rs`) — with the same ordering: a revocation is in
//! memory before the log acknowledges it, an un-revocation only after. Changes read back from
//! the topic (every replica's, this one's included) come in through
//! [`Denylist::apply_shared`], which touches memory only. Allowlistings travel the same way
//! (an admin's allowlisting on one replica binds every detector).
//!
//! It does NOT: verify tokens (a forged token can only be denied here, never allowed), read
//! Kafka itself (`publish/topic.rs` does, and calls [`Denylist::apply_shared`]), take the wall clock on the check path (callers
//! pass `now_ms`), translate old fingerprints into new ones (it never sees tokens), notice a
//! journal lost together with its whole folder (marker included), or guard a journal against
//! processes that ignore its lock (older releases) or against locking on network file systems.

mod error;
mod feed;
mod files;
mod journal;
mod key;
mod repair;
mod state;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::event::Fingerprint;
use crate::metrics::Metrics;

use key::NamedKind;
use state::{Change, NamedKeyView, State, purge};

pub use error::DenylistError;
pub use feed::{
    ChangeFeed, Cursor, CursorParseError, DEFAULT_RETAIN as DEFAULT_FEED_RETAIN, FeedChange,
    FeedError, FeedOp, FeedPage,
};
pub use journal::{
    DroppedLine, FINGERPRINT_VERSION, FORMAT_VERSION, MAX_LINE_BYTES, MAX_RECORD_BYTES, ReplayStats,
};
pub use key::{DenyKey, KeyParseError, MAX_KEY_BYTES};
pub use repair::{RepairReport, repair, repair_at};

/// The current wall clock in milliseconds since the Unix epoch. Used only for denylist expiry
/// and latency metrics (DESIGN §1), never for detection.
pub fn wall_clock_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock before 1970 is broken; 0 makes every entry look live rather than expired.
        Err(_) => 0,
    }
}

/// Who revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The detection pipeline.
    Detector,
    /// An admin through the API.
    Admin,
}

impl Origin {
    /// Bounded label value (`revocations_total{origin}`).
    pub fn label(self) -> &'static str {
        match self {
            Origin::Detector => "detector",
            Origin::Admin => "admin",
        }
    }
}

/// What a matching entry does to a token (DESIGN §5, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryAction {
    /// Denied: the check answers 401 `invalid_token`. What every entry of earlier releases is
    /// (their journal records have no `action`).
    #[default]
    Revoke,
    /// Challenged: the check answers 401 `insufficient_user_authentication` (RFC 9470) until
    /// the app issues a new token (for a `sid:` entry, one issued at or after `not_before`).
    StepUp,
}

impl EntryAction {
    /// Wire value (`revoke`, `step_up`).
    pub fn label(self) -> &'static str {
        match self {
            EntryAction::Revoke => "revoke",
            EntryAction::StepUp => "step_up",
        }
    }

    fn is_revoke(&self) -> bool {
        *self == EntryAction::Revoke
    }
}

/// One denylist entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Revoke or step up. Absent from journal records of earlier releases (and omitted when
    /// writing a revocation, so revocations are written as before): revoke.
    #[serde(default, skip_serializing_if = "EntryAction::is_revoke")]
    pub action: EntryAction,
    /// Reason codes or free text from an admin.
    pub reasons: Vec<String>,
    /// Who revoked.
    pub origin: Origin,
    /// Wall-clock ms when revoked.
    pub created_at_ms: i64,
    /// Wall-clock ms when the entry lapses (it matches while `now < expires_at_ms`).
    pub expires_at_ms: i64,
    /// For `sub` keys, and `sid` keys of a step-up: only tokens issued (`iat`) before this many
    /// epoch seconds match; the ones issued at or after it (after the password reset, after
    /// the fresh authentication) pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// Detector score, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl Entry {
    /// True while the entry is in force at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// What a check looks up: every key a token maps to.
#[derive(Debug, Clone, Default)]
pub struct CheckQuery {
    /// The token's fingerprint.
    pub fingerprint: Option<Fingerprint>,
    /// `iss`.
    pub iss: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `sid`.
    pub sid: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `iat`, epoch seconds.
    pub iat: Option<i64>,
}

/// Whether a named (`sub`, or step-up `sid`) entry with `not_before` covers a token issued at
/// `iat`.
///
/// The entry matches tokens issued strictly before `not_before` (a token issued at or after it —
/// after the password reset, after the fresh authentication of a step-up — is allowed). A token
/// **without `iat`** cannot show it is newer, so it matches: conservative, because these
/// entries exist for "the account (session) is compromised". An entry without `not_before`
/// matches every token of the subject (session).
fn named_entry_covers(not_before: Option<i64>, iat: Option<i64>) -> bool {
    match (not_before, iat) {
        (Some(not_before), Some(iat)) => iat < not_before,
        _ => true,
    }
}
/// Distributed mode's durable log of denylist changes (the compacted denylist topic, DESIGN
/// §6), in the journal's place.
pub trait SharedLog: Send + Sync {
    /// Make `changes` durable, in order. Blocks until acknowledged; the error text never
    /// holds a key or an entry.
    fn append(&self, changes: &[SharedChange]) -> Result<(), String>;
}

/// One change as the shared log carries it, written by the replica that makes it and read
/// back by every replica ([`Denylist::apply_shared`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SharedChange {
    /// Add or replace the key's entry.
    Put(DenyKey, Entry),
    /// Remove the key's entry (a tombstone).
    Remove(DenyKey),
    /// An admin allowlisted the token until this wall-clock ms: no detector anywhere revokes
    /// it again (shared, or the detectors of other replicas would).
    Allow(Fingerprint, i64),
    /// An admin revoked the token again, lifting its allowlisting.
    Unallow(Fingerprint),
}

/// Where changes go, as the writer mutex sees it.
enum Sink {
    /// Memory only: nothing to write.
    Memory,
    /// Distributed mode: to the shared log (the denylist topic).
    Shared(Arc<dyn SharedLog>),
    /// Appending to this journal.
    Open(journal::Journal),
    /// A journal is configured but is not written until it has been rewritten from memory.
    Unwritable(Unwritable),
}

/// A journal that cannot be appended to, and what must be kept before it may be replaced.
struct Unwritable {
    path: PathBuf,
    /// Keep the format-1 file (`<journal>.v1.bak`) before rewriting it as format 2.
    keep_v1: bool,
    /// Keep the torn final record's bytes (`<journal>.torn-<unix seconds>`) before cutting it.
    keep_torn: Option<Vec<u8>>,
}

impl Unwritable {
    fn new(path: PathBuf) -> Self {
        Unwritable {
            path,
            keep_v1: false,
            keep_torn: None,
        }
    }
}

/// Simulated write failures (unit tests of the failure paths).
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    /// Appends that fail before touching the file.
    appends: u32,
}

#[cfg(test)]
fn take_fault(count: &mut u32, path: &Path, action: &'static str) -> Result<(), DenylistError> {
    if *count == 0 {
        return Ok(());
    }
    *count -= 1;
    Err(DenylistError::Io {
        path: path.to_path_buf(),
        action,
        source: std::io::Error::other("injected failure: no space left on device"),
    })
}

/// What the writer mutex protects.
struct Writer {
    sink: Sink,
    #[cfg(test)]
    faults: Faults,
}

type WritableObserver = Box<dyn Fn(bool) + Send + Sync>;

/// The denylist: revoked keys in memory, backed by an fsynced journal (or memory only).
pub struct Denylist {
    state: State,
    writer: Mutex<Writer>,
    /// The journal's lock, held for as long as this denylist lives (`None` in memory mode).
    lock: Option<files::JournalLock>,
    replay: Mutex<ReplayStats>,
    metrics: Option<Arc<Metrics>>,
    /// Changes are being made durable (always true in memory mode).
    writable: AtomicBool,
    /// Told of every change of `writable` (readiness).
    observers: Mutex<Vec<WritableObserver>>,
    /// Every change of the in-memory state, numbered (`GET /v1/revocations?since=`).
    feed: ChangeFeed,
}

impl fmt::Debug for Denylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Denylist")
            .field("entries", &self.len())
            .field("writable", &self.is_writable())
            .field("replay", &self.replay_stats())
            .finish()
    }
}

impl Denylist {
    /// Open (replaying and compacting the journal) or, with `None`, in memory only (not
    /// durable: for tests and API-only replicas fed from elsewhere).
    ///
    /// Takes the journal's lock first ([`DenylistError::Locked`] naming the pid of the process
    /// holding it). Replay skips expired entries and reads format 1 as well as 2. A torn final
    /// record is cut (logged, counted in [`replay_stats`](Self::replay_stats), its bytes kept
    /// in `<journal>.torn-<unix seconds>`); any other damage is [`DenylistError::Corrupt`]
    /// naming the line and offset, and the file is left untouched. A missing journal is
    /// created, unless its marker (`<journal>.created`) shows it existed
    /// ([`DenylistError::Missing`]); a missing folder is an error.
    ///
    /// The live state is then written to a new format-2 file (temp file, fsync, rename, fsync
    /// folder; a format-1 file is kept as `<journal>.v1.bak` first). If that cannot be written
    /// — a full disk — the denylist still opens, serving what was replayed, but not writable
    /// ([`is_writable`](Self::is_writable) false, changes refused) until
    /// [`compact`](Self::compact) succeeds.
    pub fn open(journal: Option<&Path>) -> Result<Self, DenylistError> {
        Self::open_at(journal, wall_clock_ms())
    }

    /// [`open`](Self::open) with an explicit wall clock (tests).
    pub fn open_at(journal: Option<&Path>, now_ms: i64) -> Result<Self, DenylistError> {
        Self::open_inner(journal, now_ms)
    }

    /// Distributed mode: in memory, every change made durable on `log` (the denylist topic)
    /// instead of a journal; the state itself comes from reading the topic back
    /// ([`apply_shared`](Self::apply_shared)).
    pub fn shared(log: Arc<dyn SharedLog>) -> Self {
        let denylist = Denylist::assemble(
            State::default(),
            Sink::Shared(log),
            None,
            ReplayStats::default(),
        );
        denylist.writable.store(true, Ordering::Release);
        denylist
    }

    /// Apply a change read from the shared log, in memory only. Returns the entry's age at
    /// this replica (wall clock now − `created_at_ms`, for `revocation_propagation_seconds`)
    /// when it added or replaced an entry this replica did not hold yet, else `None` (its own
    /// change read back, a step-up under a revocation in force, a removal, an allowlisting).
    pub fn apply_shared(&self, change: SharedChange, now_ms: i64) -> Option<i64> {
        let _writer = self.lock_writer();
        let age = match change {
            SharedChange::Remove(key) => {
                if self.state.apply(Change::Unrevoke(key.clone())) {
                    self.feed.record(FeedOp::Remove, key, None);
                }
                None
            }
            SharedChange::Allow(fp, until_ms) => {
                // A lapsed allowlisting (read back from the start of the topic) is not kept.
                if now_ms < until_ms {
                    self.state.apply(Change::Allow(fp, until_ms));
                }
                None
            }
            SharedChange::Unallow(fp) => {
                self.state.allowlist.remove(&fp);
                None
            }
            SharedChange::Put(key, entry) => {
                if self.state.get(&key).as_ref() == Some(&entry) || self.would_weaken(&key, &entry)
                {
                    return None;
                }
                let age = now_ms.saturating_sub(entry.created_at_ms).max(0);
                self.state.apply(Change::Revoke(key.clone(), entry.clone()));
                self.feed.record(FeedOp::Add, key, Some(entry));
                Some(age)
            }
        };
        self.report_len();
        age
    }

    fn open_inner(journal: Option<&Path>, now_ms: i64) -> Result<Self, DenylistError> {
        let Some(path) = journal else {
            return Ok(Denylist::assemble(
                State::default(),
                Sink::Memory,
                None,
                ReplayStats::default(),
            ));
        };
        let lock = files::JournalLock::acquire(path)?;
        let state = State::default();
        let replayed = journal::replay(path, now_ms, &mut |change, version| {
            state.apply_replayed(change, version);
        })?;
        let mut stats = replayed.stats;
        if stats.created {
            let marker = files::marker_path(path);
            if marker.exists() {
                return Err(DenylistError::Missing {
                    path: path.to_path_buf(),
                    marker,
                });
            }
            tracing::info!(journal = %path.display(), "no denylist journal yet: starting an empty one");
        }
        purge(&state, now_ms);
        (
            stats.previous_fingerprint_entries,
            stats.previous_fingerprint_allowlisted,
        ) = state.legacy_counts();
        let unwritable = Unwritable {
            path: path.to_path_buf(),
            keep_v1: stats.format == Some(1),
            keep_torn: replayed.torn,
        };
        let denylist = Denylist::assemble(state, Sink::Unwritable(unwritable), Some(lock), stats);
        {
            let mut writer = denylist.lock_writer();
            if let Err(error) = denylist.rebuild(&mut writer, now_ms) {
                tracing::error!(
                    %error,
                    "the denylist journal cannot be written at startup: checks are served from \
                     the replayed state, changes are refused and /readyz fails until a rewrite \
                     succeeds (retried at every maintenance)"
                );
            }
        }
        denylist.log_replay(path);
        Ok(denylist)
    }

    fn assemble(
        state: State,
        sink: Sink,
        lock: Option<files::JournalLock>,
        replay: ReplayStats,
    ) -> Self {
        Denylist {
            state,
            writable: AtomicBool::new(matches!(sink, Sink::Memory)),
            writer: Mutex::new(Writer {
                sink,
                #[cfg(test)]
                faults: Faults::default(),
            }),
            lock,
            replay: Mutex::new(replay),
            metrics: None,
            observers: Mutex::new(Vec::new()),
            feed: ChangeFeed::default(),
        }
    }

    fn log_replay(&self, path: &Path) {
        let stats = self.replay_stats();
        if let (Some(line), Some(offset)) = (stats.torn_line, stats.torn_offset) {
            tracing::warn!(
                journal = %path.display(),
                line,
                offset,
                bytes = stats.torn_bytes,
                kept_in = %stats.torn_saved.as_deref().map_or_else(
                    || "(not written yet: the journal folder cannot be written)".into(),
                    |p| p.display().to_string()
                ),
                records = stats.records,
                "denylist journal ended in a torn record (usually a write cut short by a crash, \
                 never acknowledged); it was cut, its bytes kept, and the records before it \
                 replayed"
            );
        }
        if stats.format == Some(1) {
            tracing::warn!(
                journal = %path.display(),
                backup = %stats.v1_backup.as_deref().map_or_else(
                    || "(not written yet: the journal folder cannot be written)".into(),
                    |p| p.display().to_string()
                ),
                records = stats.records,
                previous_fingerprint_entries = stats.previous_fingerprint_entries,
                previous_fingerprint_allowlisted = stats.previous_fingerprint_allowlisted,
                "denylist journal upgraded from format 1 to {FORMAT_VERSION}: {} fp: entries \
                 (and {} allowlistings) are keyed on the previous fingerprint version (HMAC over \
                 the raw token) and no longer match JWTs, whose fingerprint is now taken over \
                 their canonical form; they lapse at their expiry. jti:, sid: and sub: entries \
                 are unaffected",
                stats.previous_fingerprint_entries,
                stats.previous_fingerprint_allowlisted,
            );
        }
    }

    /// Write the live state to a fresh journal — first keeping what must be kept (the format-1
    /// file, a torn record's bytes) — and append to it from then on. On failure the journal is
    /// unwritable until a later call succeeds. A no-op in memory mode.
    fn rebuild(&self, writer: &mut Writer, now_ms: i64) -> Result<(), DenylistError> {
        let path = match &writer.sink {
            Sink::Memory | Sink::Shared(_) => return Ok(()),
            Sink::Open(journal) => journal.path().to_path_buf(),
            Sink::Unwritable(pending) => pending.path.clone(),
        };
        // Not appendable while it is being replaced (nor if this fails).
        let mut pending = match std::mem::replace(
            &mut writer.sink,
            Sink::Unwritable(Unwritable::new(path.clone())),
        ) {
            Sink::Unwritable(pending) => pending,
            _ => Unwritable::new(path),
        };
        let was_writable = self.is_writable();
        match self.try_rebuild(&mut pending, now_ms) {
            Ok(journal) => {
                writer.sink = Sink::Open(journal);
                if let Err(error) = files::ensure_marker(&pending.path) {
                    tracing::warn!(%error, "could not write the denylist journal's marker; retried at the next compaction");
                }
                if !was_writable {
                    tracing::info!(journal = %pending.path.display(), "denylist journal rewritten from memory: changes are durable again");
                }
                self.set_writable(true);
                Ok(())
            }
            Err(error) => {
                if was_writable {
                    tracing::error!(
                        %error,
                        "denylist journal compaction failed: changes are refused and /readyz \
                         fails until the journal is rewritten from memory (retried at every \
                         maintenance); the previous file is left whole"
                    );
                }
                writer.sink = Sink::Unwritable(pending);
                self.set_writable(false);
                self.write_failed("compact");
                Err(error)
            }
        }
    }

    fn try_rebuild(
        &self,
        pending: &mut Unwritable,
        now_ms: i64,
    ) -> Result<journal::Journal, DenylistError> {
        if pending.keep_v1 {
            let backup = files::keep_copy(&pending.path, ".v1.bak")?;
            pending.keep_v1 = false;
            self.lock_replay().v1_backup = Some(backup);
        }
        if let Some(bytes) = &pending.keep_torn {
            let suffix = format!(".torn-{}", files::unix_seconds());
            let saved = files::write_side_file(&pending.path, &suffix, bytes)?;
            pending.keep_torn = None;
            self.lock_replay().torn_saved = Some(saved);
        }
        let live = self.state.live_changes(now_ms);
        journal::Journal::rewrite(&pending.path, &live, &|fp| self.state.legacy_version(fp))
    }

    /// Append encoded changes, durably. A failure (or an already unwritable journal) leaves the
    /// journal unwritable until a rewrite from memory succeeds.
    fn append(
        &self,
        writer: &mut Writer,
        bytes: &[u8],
        op: &'static str,
    ) -> Result<(), DenylistError> {
        let result = match &mut writer.sink {
            Sink::Memory | Sink::Shared(_) => return Ok(()),
            Sink::Unwritable(pending) => Err(DenylistError::Poisoned {
                path: pending.path.clone(),
            }),
            Sink::Open(journal) => {
                let started = Instant::now();
                #[cfg(test)]
                let injected = take_fault(&mut writer.faults.appends, journal.path(), "append to");
                #[cfg(not(test))]
                let injected = Ok(());
                let result = injected.and_then(|()| journal.append(bytes));
                if result.is_ok() {
                    self.observe_fsync(op, started);
                }
                result
            }
        };
        if let Err(error) = &result {
            if let Sink::Open(journal) = &writer.sink {
                tracing::error!(
                    %error,
                    "denylist journal write failed: changes are refused and /readyz fails until \
                     the journal is rewritten from memory (retried at every maintenance)"
                );
                let path = journal.path().to_path_buf();
                writer.sink = Sink::Unwritable(Unwritable::new(path));
                self.set_writable(false);
            }
            self.write_failed(op);
        }
        result
    }

    /// Report `journal_fsync_seconds{op}`, `denylist_entries`, `journal_writable`,
    /// `journal_write_failures_total{op}` and `journal_torn_records_total` to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.denylist_entries.set(gauge_value(self.len()));
        metrics.journal_writable.set(i64::from(self.is_writable()));
        if !self.is_writable() {
            // The only failure before metrics are attached: the startup rewrite.
            metrics
                .journal_write_failures
                .with_label_values(&["compact"])
                .inc();
        }
        if self.replay_stats().torn_line.is_some() {
            metrics.journal_torn_records.inc();
        }
        self.metrics = Some(metrics);
        self
    }

    /// What replay found when the journal was opened (and where the files it kept went).
    pub fn replay_stats(&self) -> ReplayStats {
        self.lock_replay().clone()
    }

    fn lock_replay(&self) -> MutexGuard<'_, ReplayStats> {
        self.replay.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether changes are being made durable: true in memory mode and while the journal is
    /// written; false from a failed write (or a startup rewrite that could not be written)
    /// until a rewrite from memory succeeds ([`compact`](Self::compact), run by
    /// [`maintain`](Self::maintain)).
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// Call `observer` now with [`is_writable`](Self::is_writable), and again whenever it
    /// changes (from the thread that changed it; keep it short, e.g. setting a flag).
    pub fn on_writable_change(&self, observer: impl Fn(bool) + Send + Sync + 'static) {
        // Under the writer mutex, so no change slips between the first call and registration.
        let _writer = self.lock_writer();
        observer(self.is_writable());
        self.observers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(observer));
    }

    /// Called with the writer mutex held.
    fn set_writable(&self, writable: bool) {
        let was = self.writable.swap(writable, Ordering::AcqRel);
        if let Some(m) = &self.metrics {
            m.journal_writable.set(i64::from(writable));
        }
        if was != writable {
            for observer in self
                .observers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                observer(writable);
            }
        }
    }

    fn write_failed(&self, op: &'static str) {
        if let Some(m) = &self.metrics {
            m.journal_write_failures.with_label_values(&[op]).inc();
        }
    }

    /// The journal's path, if this denylist is durable.
    pub fn journal_path(&self) -> Option<PathBuf> {
        match &self.lock_writer().sink {
            Sink::Memory | Sink::Shared(_) => None,
            Sink::Open(journal) => Some(journal.path().to_path_buf()),
            Sink::Unwritable(pending) => Some(pending.path.clone()),
        }
    }

    /// The journal's lock file (`<journal>.lock`), held while this denylist lives.
    pub fn lock_path(&self) -> Option<&Path> {
        self.lock.as_ref().map(files::JournalLock::path)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave `Writer` half-updated in a way we rely
        // on (the sink is replaced whole), so a poisoned mutex is recovered.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add or replace one entry; durable before it returns. Returns whether it was applied
    /// (see [`revoke_many`](Self::revoke_many) for when it is not).
    pub fn revoke(&self, key: DenyKey, entry: Entry) -> Result<bool, DenylistError> {
        Ok(self.revoke_many(vec![(key, entry)])? == 1)
    }

    /// Add or replace entries; durable before it returns, with one `fsync` for the batch.
    ///
    /// Detector revocations of an allowlisted token are skipped (an admin said that session
    /// is fine); admin revocations apply and lift the allowlisting. Returns how many entries
    /// were applied. The entries are visible to `check` before the `fsync` completes; if the
    /// write fails (or the journal is unwritable) they stay in memory (fail-safe), the error
    /// is returned, and the next successful rewrite from memory makes them durable.
    pub fn revoke_many(&self, entries: Vec<(DenyKey, Entry)>) -> Result<usize, DenylistError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut writer = self.lock_writer();
        let changes: Vec<Change> = entries
            .into_iter()
            .filter(|(key, entry)| match key {
                DenyKey::Fingerprint(fp) => {
                    entry.origin == Origin::Admin || !self.state.allowlist.contains_key(fp)
                }
                _ => true,
            })
            .filter(|(key, entry)| !self.would_weaken(key, entry))
            .map(|(key, entry)| Change::Revoke(key, entry))
            .collect();
        let applied = changes.len();
        if applied == 0 {
            return Ok(0);
        }
        // Serialize first: a record too large to replay is refused before anything changes.
        let encoded = match writer.sink {
            Sink::Memory => None,
            _ => Some(journal::encode(&changes, &|_| None)?),
        };
        let shared: Option<Vec<SharedChange>> = match &writer.sink {
            Sink::Shared(_) => Some(
                changes
                    .iter()
                    .flat_map(|change| match change {
                        // An admin revocation lifts an allowlisting on every replica, whether
                        // or not this one has read it yet.
                        Change::Revoke(DenyKey::Fingerprint(fp), entry)
                            if entry.origin == Origin::Admin =>
                        {
                            vec![
                                SharedChange::Put(DenyKey::Fingerprint(*fp), entry.clone()),
                                SharedChange::Unallow(*fp),
                            ]
                        }
                        Change::Revoke(key, entry) => {
                            vec![SharedChange::Put(key.clone(), entry.clone())]
                        }
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            _ => None,
        };
        for change in changes {
            if let Change::Revoke(key, entry) = &change {
                self.feed
                    .record(FeedOp::Add, key.clone(), Some(entry.clone()));
            }
            self.state.apply(change);
        }
        self.report_len();
        if let (Some(shared), Sink::Shared(log)) = (shared, &writer.sink) {
            log.append(&shared)
                .map_err(|reason| DenylistError::Topic { reason })?;
        } else if let Some(bytes) = encoded {
            self.append(&mut writer, &bytes, "revoke")?;
        }
        Ok(applied)
    }

    /// A step-up entry never replaces a revocation in force under the same key: the weaker
    /// action would let a revoked token through after a fresh authentication.
    fn would_weaken(&self, key: &DenyKey, entry: &Entry) -> bool {
        entry.action == EntryAction::StepUp
            && self.state.get(key).is_some_and(|held| {
                held.action == EntryAction::Revoke && held.is_live(entry.created_at_ms)
            })
    }

    /// Remove `key`; durable before it returns. Returns whether an entry was present.
    ///
    /// With `allowlist`, the token (`fp:` keys only, else [`DenylistError::NotAFingerprint`])
    /// is also allowlisted so the detector will not revoke it again: until the removed entry
    /// would have lapsed (the token's expiry), or with no entry present, until un-allowlisted
    /// by an admin revocation. The entry stays in force until the journal write is durable
    /// (and stays in force if it fails).
    pub fn unrevoke(&self, key: &DenyKey, allowlist: bool) -> Result<bool, DenylistError> {
        let allow_fp = match (allowlist, key) {
            (false, _) => None,
            (true, DenyKey::Fingerprint(fp)) => Some(*fp),
            (true, _) => return Err(DenylistError::NotAFingerprint),
        };
        let mut writer = self.lock_writer();
        let mut changes = vec![Change::Unrevoke(key.clone())];
        if let Some(fp) = allow_fp {
            let until_ms = self
                .state
                .get(key)
                .map_or(i64::MAX, |entry| entry.expires_at_ms);
            changes.push(Change::Allow(fp, until_ms));
        }
        if let Sink::Shared(log) = &writer.sink {
            let shared: Vec<SharedChange> = changes
                .iter()
                .filter_map(|change| match change {
                    Change::Unrevoke(key) => Some(SharedChange::Remove(key.clone())),
                    Change::Allow(fp, until_ms) => Some(SharedChange::Allow(*fp, *until_ms)),
                    Change::Revoke(..) => None,
                })
                .collect();
            log.append(&shared)
                .map_err(|reason| DenylistError::Topic { reason })?;
        } else if !matches!(writer.sink, Sink::Memory) {
            let bytes = journal::encode(&changes, &|_| None)?;
            self.append(&mut writer, &bytes, "unrevoke")?;
        }
        let mut removed = false;
        for change in changes {
            removed |= self.state.apply(change);
        }
        if removed {
            self.feed.record(FeedOp::Remove, key.clone(), None);
        }
        self.report_len();
        Ok(removed)
    }

    /// The matching, unexpired entry that enforces most: the first revocation, looking up in
    /// order `fp:`, `jti:`, `sid:`, `sub:`, else the first step-up in that order (a revocation
    /// wins over a step-up).
    ///
    /// The named keys need `iss`. A named entry with `not_before` (`sub:`, a step-up's `sid:`)
    /// matches only tokens issued before it; a token without `iat` matches (it cannot show it
    /// is newer). Allocates only to return a hit.
    pub fn check(&self, query: &CheckQuery, now_ms: i64) -> Option<(DenyKey, Entry)> {
        let mut step_up = None;
        if let Some(fp) = query.fingerprint
            && let Some(entry) = self.state.fingerprints.get(&fp)
            && entry.is_live(now_ms)
        {
            let hit = (DenyKey::Fingerprint(fp), entry.value().clone());
            if entry.action == EntryAction::Revoke {
                return Some(hit);
            }
            step_up = Some(hit);
        }
        let Some(iss) = query.iss.as_deref() else {
            return step_up;
        };
        let candidates = [
            (NamedKind::Jti, query.jti.as_deref()),
            (NamedKind::Sid, query.sid.as_deref()),
            (NamedKind::Sub, query.sub.as_deref()),
        ];
        for (kind, id) in candidates {
            let Some(id) = id else { continue };
            let probe = (kind, iss, id);
            let Some(entry) = self.state.named.get(&probe as &dyn NamedKeyView) else {
                continue;
            };
            if !(entry.is_live(now_ms) && named_entry_covers(entry.not_before, query.iat)) {
                continue;
            }
            if entry.action == EntryAction::Revoke {
                return Some((DenyKey::from_named(kind, iss, id), entry.value().clone()));
            }
            if step_up.is_none() {
                step_up = Some((DenyKey::from_named(kind, iss, id), entry.value().clone()));
            }
        }
        step_up
    }

    /// The entry stored under `key`, expired or not.
    pub fn get(&self, key: &DenyKey) -> Option<Entry> {
        self.state.get(key)
    }

    /// Whether the detector is told to leave this token alone (an admin un-revoked it with
    /// `allowlist`). Lapsed allowlistings count until [`purge_expired`](Self::purge_expired).
    pub fn is_allowlisted(&self, fingerprint: Fingerprint) -> bool {
        self.state.allowlist.contains_key(&fingerprint)
    }

    /// Until when (wall-clock ms) a token is allowlisted, if it is.
    pub fn allowlisted_until(&self, fingerprint: Fingerprint) -> Option<i64> {
        self.state.allowlist.get(&fingerprint).map(|r| *r.value())
    }

    /// Drop entries and allowlistings that lapsed by `now_ms` from memory. Returns how many
    /// were dropped. Nothing is written: the next compaction leaves them out of the file.
    pub fn purge_expired(&self, now_ms: i64) -> usize {
        let purged = purge(&self.state, now_ms);
        self.report_len();
        purged
    }

    /// Rewrite the journal to hold only the live state at `now_ms` (temp file, fsync, rename,
    /// fsync folder), bounding its size in a long-running process. Writers wait meanwhile;
    /// checks do not. A no-op in memory mode.
    ///
    /// This is also the way out of an unwritable journal: on success changes are accepted
    /// again ([`is_writable`](Self::is_writable)); on failure the journal is (or stays)
    /// unwritable, and the old file is left whole.
    pub fn compact(&self, now_ms: i64) -> Result<(), DenylistError> {
        let mut writer = self.lock_writer();
        if matches!(writer.sink, Sink::Memory | Sink::Shared(_)) {
            return Ok(());
        }
        let started = Instant::now();
        self.rebuild(&mut writer, now_ms)?;
        self.observe_fsync("compact", started);
        Ok(())
    }

    /// Housekeeping for a periodic task: purge lapsed entries; rewrite an unwritable journal
    /// from memory; and compact when the journal holds more than twice as many records as
    /// there are live entries (and at least 1024 appended since the last compaction). Returns
    /// whether it rewrote the journal.
    pub fn maintain(&self, now_ms: i64) -> Result<bool, DenylistError> {
        self.purge_expired(now_ms);
        let live = self.len() + self.state.allowlist.len();
        let due = match &self.lock_writer().sink {
            Sink::Memory | Sink::Shared(_) => false,
            // The way back to a writable journal.
            Sink::Unwritable(_) => true,
            Sink::Open(journal) => {
                let appended = journal.appended_records();
                appended >= 1024 && appended > live as u64
            }
        };
        if due {
            self.compact(now_ms)?;
        }
        Ok(due)
    }

    /// Every entry held (lapsed ones included until purged), for listing and export.
    pub fn snapshot(&self) -> Vec<(DenyKey, Entry)> {
        self.state
            .live_changes(i64::MIN)
            .into_iter()
            .filter_map(|change| match change {
                Change::Revoke(key, entry) => Some((key, entry)),
                _ => None,
            })
            .collect()
    }

    /// The entries in force at `now_ms` and the feed's cursor after them, taken together
    /// (no change slips between them): the snapshot a change-feed client starts from.
    pub fn feed_snapshot(&self, now_ms: i64) -> (Vec<(DenyKey, Entry)>, Cursor) {
        let _writer = self.lock_writer();
        let entries = self
            .state
            .live_changes(now_ms)
            .into_iter()
            .filter_map(|change| match change {
                Change::Revoke(key, entry) if entry.is_live(now_ms) => Some((key, entry)),
                _ => None,
            })
            .collect();
        (entries, self.feed.cursor())
    }

    /// The numbered changes (`GET /v1/revocations?since=`, `…/stream`).
    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// Entries held, lapsed ones included until [`purge_expired`](Self::purge_expired).
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// No entries held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn report_len(&self) {
        if let Some(m) = &self.metrics {
            m.denylist_entries.set(gauge_value(self.len()));
        }
    }

    fn observe_fsync(&self, op: &str, started: Instant) {
        if let Some(m) = &self.metrics {
            m.journal_fsync
                .with_label_values(&[op])
                .observe(started.elapsed().as_secs_f64());
        }
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
