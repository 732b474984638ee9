//! The shared denylist (DESIGN §6, embedded mode): which tokens, sessions and users are revoked.
//!
//! Where it sits: `publish` (detector decisions) and the admin API write to it; `GET /v1/check`
//! reads it on every request the application's auth middleware forwards. It is the only state
//! the check path touches.
//!
//! Invariants:
//! - The in-memory maps (DashMap) are wrapped so that no guard ever leaves this module: methods
//!   return owned values or inspect entries inside the call. A guard can therefore never be held
//!   across an `.await` or while the same shard is locked again.
//! - Every change is appended to the journal (`journal.rs`) and `fsync`ed before
//!   `revoke*`/`unrevoke` return, so a revocation acknowledged by the API survives `kill -9`.
//!   A batch passed to [`Denylist::revoke_many`] costs one `fsync` (group commit).
//! - Writers are serialized by the journal lock, so the order of records in the file is the
//!   order the changes were applied in memory; replay reproduces the same state.
//! - Fail-safe ordering: a revocation is visible in memory *before* its `fsync` (denying early
//!   is safe, and it stays denied even if the write fails); an un-revocation takes effect in
//!   memory only *after* its `fsync` (a token is never allowed on the strength of a change that
//!   may not survive a crash).
//! - Entries lapse at `expires_at_ms` (wall clock). Lapsed entries never match; they are dropped
//!   from memory by [`Denylist::purge_expired`] and from disk at the next compaction.
//! - `check` allocates nothing on a miss: keys are looked up with borrowed parts of the query.
//! - One process per journal: opening takes an exclusive lock on `<journal>.lock` (holding the
//!   pid) for the denylist's life; a second process refuses to start, naming the holder's pid.
//!
//! It does NOT: verify tokens (a forged token can only be denied here, never allowed), read
//! Kafka (distributed mode lives in `publish`), take the wall clock on the check path (callers
//! pass `now_ms`).

mod files;
mod journal;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dashmap::DashMap;

use crate::event::Fingerprint;
use crate::metrics::Metrics;

pub use journal::{MAX_RECORD_BYTES, ReplayStats};

/// Longest accepted text form of a key, bytes. Longer keys are rejected by [`DenyKey::from_str`]
/// (a key is an issuer plus an id; real ones are well under 300 bytes).
pub const MAX_KEY_BYTES: usize = 2048;

/// The current wall clock in milliseconds since the Unix epoch. Used only for denylist expiry
/// and latency metrics (DESIGN §1), never for detection.
pub fn wall_clock_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock before 1970 is broken; 0 makes every entry look live rather than expired.
        Err(_) => 0,
    }
}

/// A denylist key (DESIGN §4).
///
/// Text form, as in the API, the journal and decision records:
///
/// | key | text |
/// |---|---|
/// | one token | `fp:<32 hex>` (either case accepted, lowercase written) |
/// | one token id | `jti:<iss>:<jti>` |
/// | one session across refreshes | `sid:<iss>:<sid>` |
/// | every token of a user issued before the entry's `not_before` | `sub:<iss>:<sub>` |
///
/// **Parsing rule.** Issuers are usually URLs and contain `:` (`https://id.example.com`), so
/// the issuer is everything between the prefix and the **last** `:`, and the id is what
/// follows it. Ids therefore never contain a raw `:` in text form: when the text is written
/// ([`Display`](fmt::Display)), `%` in the id becomes `%25` and `:` becomes `%3A`; when it is
/// read, exactly those two escapes are decoded (`%3a` too) and any other `%` is kept as is.
/// Every key round-trips, and ids without `:` or `%` — nearly all of them — read the same as
/// the raw `jti:<iss>:<jti>` of DESIGN §4. Producers should build key text with this type's
/// `Display` rather than by hand. Neither part may be empty or contain control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DenyKey {
    /// `fp:<fingerprint>`.
    Fingerprint(Fingerprint),
    /// `jti:<iss>:<jti>`.
    Jti {
        /// Issuer.
        iss: String,
        /// Token id.
        jti: String,
    },
    /// `sid:<iss>:<sid>`.
    Sid {
        /// Issuer.
        iss: String,
        /// Session id.
        sid: String,
    },
    /// `sub:<iss>:<sub>` (with `not_before` on the entry).
    Sub {
        /// Issuer.
        iss: String,
        /// Subject.
        sub: String,
    },
}

/// Why a key's text was rejected. `code()` is a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// Longer than [`MAX_KEY_BYTES`].
    #[error("denylist key longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    /// Not one of the four prefixes.
    #[error("unknown denylist key kind (expected fp:, jti:, sid: or sub:)")]
    UnknownKind,
    /// `fp:` not followed by exactly 32 hex characters.
    #[error("fp: keys take exactly 32 hex characters")]
    BadFingerprint,
    /// No `:` between issuer and id, or one of them is empty.
    #[error("jti:, sid: and sub: keys take <iss>:<id>, neither empty")]
    MissingPart,
    /// A control character (newline, NUL, …) in the key.
    #[error("denylist keys must not contain control characters")]
    ControlCharacter,
}

impl KeyParseError {
    /// Bounded reason code.
    pub fn code(self) -> &'static str {
        match self {
            KeyParseError::TooLong => "too_long",
            KeyParseError::UnknownKind => "unknown_kind",
            KeyParseError::BadFingerprint => "bad_fingerprint",
            KeyParseError::MissingPart => "missing_part",
            KeyParseError::ControlCharacter => "control_character",
        }
    }
}

/// The three kinds of key that name an issuer and an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NamedKind {
    Jti,
    Sid,
    Sub,
}

impl NamedKind {
    fn prefix(self) -> &'static str {
        match self {
            NamedKind::Jti => "jti",
            NamedKind::Sid => "sid",
            NamedKind::Sub => "sub",
        }
    }
}

impl DenyKey {
    /// Which kind of key: `fp`, `jti`, `sid` or `sub` (a bounded label).
    pub fn kind(&self) -> &'static str {
        match self {
            DenyKey::Fingerprint(_) => "fp",
            DenyKey::Jti { .. } => "jti",
            DenyKey::Sid { .. } => "sid",
            DenyKey::Sub { .. } => "sub",
        }
    }

    fn named_parts(&self) -> Option<(NamedKind, &str, &str)> {
        match self {
            DenyKey::Fingerprint(_) => None,
            DenyKey::Jti { iss, jti } => Some((NamedKind::Jti, iss, jti)),
            DenyKey::Sid { iss, sid } => Some((NamedKind::Sid, iss, sid)),
            DenyKey::Sub { iss, sub } => Some((NamedKind::Sub, iss, sub)),
        }
    }

    fn from_named(kind: NamedKind, iss: &str, id: &str) -> DenyKey {
        let (iss, id) = (iss.to_owned(), id.to_owned());
        match kind {
            NamedKind::Jti => DenyKey::Jti { iss, jti: id },
            NamedKind::Sid => DenyKey::Sid { iss, sid: id },
            NamedKind::Sub => DenyKey::Sub { iss, sub: id },
        }
    }
}

fn write_escaped_id(f: &mut fmt::Formatter<'_>, id: &str) -> fmt::Result {
    let mut rest = id;
    while let Some(at) = rest.find([':', '%']) {
        f.write_str(&rest[..at])?;
        f.write_str(if rest.as_bytes()[at] == b':' {
            "%3A"
        } else {
            "%25"
        })?;
        rest = &rest[at + 1..];
    }
    f.write_str(rest)
}

fn unescape_id(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("%25") => out.push('%'),
            Some("%3A" | "%3a") => out.push(':'),
            _ => {
                out.push('%');
                rest = &rest[at + 1..];
                continue;
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for DenyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.named_parts() {
            None => match self {
                DenyKey::Fingerprint(fp) => write!(f, "fp:{fp}"),
                _ => Ok(()),
            },
            Some((kind, iss, id)) => {
                write!(f, "{}:{iss}:", kind.prefix())?;
                write_escaped_id(f, id)
            }
        }
    }
}

impl FromStr for DenyKey {
    type Err = KeyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_KEY_BYTES {
            return Err(KeyParseError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(KeyParseError::ControlCharacter);
        }
        let (prefix, rest) = text.split_once(':').ok_or(KeyParseError::UnknownKind)?;
        let kind = match prefix {
            "fp" => {
                return Fingerprint::from_hex(rest)
                    .map(DenyKey::Fingerprint)
                    .ok_or(KeyParseError::BadFingerprint);
            }
            "jti" => NamedKind::Jti,
            "sid" => NamedKind::Sid,
            "sub" => NamedKind::Sub,
            _ => return Err(KeyParseError::UnknownKind),
        };
        let (iss, id) = rest.rsplit_once(':').ok_or(KeyParseError::MissingPart)?;
        if iss.is_empty() || id.is_empty() {
            return Err(KeyParseError::MissingPart);
        }
        Ok(DenyKey::from_named(kind, iss, &unescape_id(id)))
    }
}

impl serde::Serialize for DenyKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DenyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
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

/// One denylist entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Reason codes or free text from an admin.
    pub reasons: Vec<String>,
    /// Who revoked.
    pub origin: Origin,
    /// Wall-clock ms when revoked.
    pub created_at_ms: i64,
    /// Wall-clock ms when the entry lapses (it matches while `now < expires_at_ms`).
    pub expires_at_ms: i64,
    /// For `sub` keys: tokens issued (`iat`) before this many epoch seconds are revoked.
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

/// Whether a `sub` entry with `not_before` covers a token issued at `iat`.
///
/// The entry revokes tokens issued strictly before `not_before` (a token issued at or after it —
/// after the password reset — is allowed). A token **without `iat`** cannot show it is newer,
/// so it matches: conservative, because `sub` revocation exists for "the account is
/// compromised". An entry without `not_before` revokes every token of the subject.
fn sub_entry_covers(not_before: Option<i64>, iat: Option<i64>) -> bool {
    match (not_before, iat) {
        (Some(not_before), Some(iat)) => iat < not_before,
        _ => true,
    }
}

/// Journal and denylist failures. `code()` is a bounded metric label.
#[derive(Debug, thiserror::Error)]
pub enum DenylistError {
    /// Reading, writing, syncing or renaming the journal failed.
    #[error("denylist journal {}: cannot {action}: {source}", path.display())]
    Io {
        /// The journal (or its temp file / folder).
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A record before the last line does not parse: the file was damaged, not torn by a crash.
    #[error(
        "denylist journal {} line {line} is corrupt ({reason}); only a torn last line is \
         tolerated — restore the file from a backup or move it aside (losing its revocations)",
        path.display()
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier write or `fsync` failed; after a failed `fsync` the file's contents are
    /// unknown, so no further writes are attempted until a restart replays and recompacts it.
    #[error(
        "denylist journal {}: an earlier write failed, so its contents on disk are unknown; \
         restart to replay and recompact it",
        path.display()
    )]
    Poisoned {
        /// The journal.
        path: PathBuf,
    },
    /// A record would exceed the replay cap, so it could never be read back.
    #[error("a journal record of {size} bytes exceeds the {MAX_RECORD_BYTES}-byte cap")]
    RecordTooLarge {
        /// Serialized size.
        size: usize,
    },
    /// Only single tokens (`fp:` keys) can be allowlisted.
    #[error("only fp: keys can be allowlisted")]
    NotAFingerprint,
    /// Another process holds the journal's lock: two processes appending to and compacting one
    /// journal lose each other's revocations, so the second one refuses to start.
    #[error(
        "denylist journal {} is in use by another tokenwatch process ({}) holding {}; stop \
         that process first, or give this instance a journal of its own",
        journal.display(),
        pid.map_or_else(|| "pid not known yet".to_string(), |pid| format!("pid {pid}")),
        lock.display()
    )]
    Locked {
        /// The journal.
        journal: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// The pid written in the lock file by the process holding it.
        pid: Option<u32>,
    },
}

impl DenylistError {
    /// Bounded error code.
    pub fn code(&self) -> &'static str {
        match self {
            DenylistError::Io { .. } => "io",
            DenylistError::Corrupt { .. } => "corrupt",
            DenylistError::Poisoned { .. } => "poisoned",
            DenylistError::RecordTooLarge { .. } => "record_too_large",
            DenylistError::NotAFingerprint => "not_a_fingerprint",
            DenylistError::Locked { .. } => "locked",
        }
    }
}

/// Map key for `jti:`, `sid:` and `sub:` entries.
///
/// Its `Hash`/`Eq` are those of `(kind, iss, id)`, and it borrows as `dyn NamedKeyView`, so the
/// map can be probed with a `(kind, &str, &str)` built from a query without allocating.
#[derive(Debug, Clone)]
struct NamedKey {
    kind: NamedKind,
    iss: Box<str>,
    id: Box<str>,
}

trait NamedKeyView {
    fn parts(&self) -> (NamedKind, &str, &str);
}

impl NamedKeyView for NamedKey {
    fn parts(&self) -> (NamedKind, &str, &str) {
        (self.kind, &self.iss, &self.id)
    }
}

impl NamedKeyView for (NamedKind, &str, &str) {
    fn parts(&self) -> (NamedKind, &str, &str) {
        *self
    }
}

impl<'a> Borrow<dyn NamedKeyView + 'a> for NamedKey {
    fn borrow(&self) -> &(dyn NamedKeyView + 'a) {
        self
    }
}

impl Hash for dyn NamedKeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn NamedKeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn NamedKeyView + '_ {}

impl Hash for NamedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must equal the hash of the borrowed form above.
        self.parts().hash(state);
    }
}

impl PartialEq for NamedKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for NamedKey {}

/// The in-memory state; mutated only through [`State::apply`], shared by live writes and replay.
#[derive(Default)]
struct State {
    fingerprints: DashMap<Fingerprint, Entry>,
    named: DashMap<NamedKey, Entry>,
    /// Allowlisted fingerprints and until when (wall-clock ms).
    allowlist: DashMap<Fingerprint, i64>,
}

/// One change, as applied in memory and written to the journal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Revoke(DenyKey, Entry),
    Unrevoke(DenyKey),
    Allow(Fingerprint, i64),
}

impl State {
    /// Apply one change. An admin revocation of a token lifts its allowlisting (the admin
    /// has changed their mind); the caller filters detector revocations of allowlisted tokens.
    /// Returns whether an entry was removed (for `Unrevoke`).
    fn apply(&self, change: Change) -> bool {
        match change {
            Change::Revoke(key, entry) => {
                match key {
                    DenyKey::Fingerprint(fp) => {
                        if entry.origin == Origin::Admin {
                            self.allowlist.remove(&fp);
                        }
                        self.fingerprints.insert(fp, entry);
                    }
                    named => {
                        if let Some((kind, iss, id)) = named.named_parts() {
                            let key = NamedKey {
                                kind,
                                iss: iss.into(),
                                id: id.into(),
                            };
                            self.named.insert(key, entry);
                        }
                    }
                }
                false
            }
            Change::Unrevoke(key) => self.remove(&key).is_some(),
            Change::Allow(fp, until_ms) => {
                self.allowlist.insert(fp, until_ms);
                false
            }
        }
    }

    fn remove(&self, key: &DenyKey) -> Option<Entry> {
        match key.named_parts() {
            None => match key {
                DenyKey::Fingerprint(fp) => self.fingerprints.remove(fp).map(|(_, e)| e),
                _ => None,
            },
            Some(parts) => self
                .named
                .remove(&parts as &dyn NamedKeyView)
                .map(|(_, e)| e),
        }
    }

    fn get(&self, key: &DenyKey) -> Option<Entry> {
        match key.named_parts() {
            None => match key {
                DenyKey::Fingerprint(fp) => self.fingerprints.get(fp).map(|r| r.value().clone()),
                _ => None,
            },
            Some(parts) => self
                .named
                .get(&parts as &dyn NamedKeyView)
                .map(|r| r.value().clone()),
        }
    }

    fn len(&self) -> usize {
        self.fingerprints.len() + self.named.len()
    }

    /// Every live entry and allowlisting, as changes that rebuild this state.
    fn live_changes(&self, now_ms: i64) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.len() + self.allowlist.len());
        for item in self.fingerprints.iter() {
            if item.value().is_live(now_ms) {
                out.push(Change::Revoke(
                    DenyKey::Fingerprint(*item.key()),
                    item.value().clone(),
                ));
            }
        }
        for item in self.named.iter() {
            if item.value().is_live(now_ms) {
                let (kind, iss, id) = item.key().parts();
                out.push(Change::Revoke(
                    DenyKey::from_named(kind, iss, id),
                    item.value().clone(),
                ));
            }
        }
        // Allowlistings last, so an admin revocation replayed before them cannot lift them.
        for item in self.allowlist.iter() {
            if now_ms < *item.value() {
                out.push(Change::Allow(*item.key(), *item.value()));
            }
        }
        out
    }
}

/// What the journal lock protects: the open journal, if any.
struct Writer {
    journal: Option<journal::Journal>,
}

/// The denylist: revoked keys in memory, backed by an fsynced journal (or memory only).
pub struct Denylist {
    state: State,
    writer: Mutex<Writer>,
    /// The journal's lock, held for as long as this denylist lives (`None` in memory mode).
    lock: Option<files::JournalLock>,
    replay: ReplayStats,
    metrics: Option<Arc<Metrics>>,
}

impl fmt::Debug for Denylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Denylist")
            .field("entries", &self.len())
            .field("replay", &self.replay)
            .finish()
    }
}

impl Denylist {
    /// Open (replaying and compacting the journal) or, with `None`, in memory only (not
    /// durable: for tests and API-only replicas fed from elsewhere).
    ///
    /// Replay skips expired entries, tolerates a torn last line (counted in
    /// [`replay_stats`](Self::replay_stats) and logged), and rejects a corrupt line before
    /// the last with [`DenylistError::Corrupt`] naming it. The live state is then written to a
    /// temp file in the same folder, fsynced, renamed over the journal, and the folder fsynced.
    /// A missing journal is created; a missing folder is an error.
    pub fn open(journal: Option<&Path>) -> Result<Self, DenylistError> {
        Self::open_at(journal, wall_clock_ms())
    }

    /// [`open`](Self::open) with an explicit wall clock (tests).
    pub fn open_at(journal: Option<&Path>, now_ms: i64) -> Result<Self, DenylistError> {
        let state = State::default();
        let lock = journal.map(files::JournalLock::acquire).transpose()?;
        let (journal, replay) = match journal {
            None => (None, ReplayStats::default()),
            Some(path) => {
                let stats = journal::replay(path, now_ms, &mut |change| {
                    state.apply(change);
                })?;
                purge(&state, now_ms);
                let live = state.live_changes(now_ms);
                let journal = journal::Journal::rewrite(path, &live)?;
                (Some(journal), stats)
            }
        };
        if replay.torn_line.is_some() {
            tracing::warn!(
                torn_line = replay.torn_line,
                records = replay.records,
                "denylist journal ended in a torn record (a write cut short by a crash); \
                 it was dropped and the rest replayed"
            );
        }
        Ok(Denylist {
            state,
            writer: Mutex::new(Writer { journal }),
            lock,
            replay,
            metrics: None,
        })
    }

    /// Report `journal_fsync_seconds{op}` and `denylist_entries` to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.denylist_entries.set(gauge_value(self.len()));
        self.metrics = Some(metrics);
        self
    }

    /// What replay found when the journal was opened.
    pub fn replay_stats(&self) -> &ReplayStats {
        &self.replay
    }

    /// The journal's path, if this denylist is durable.
    pub fn journal_path(&self) -> Option<PathBuf> {
        self.lock_writer()
            .journal
            .as_ref()
            .map(|j| j.path().to_path_buf())
    }

    /// The journal's lock file (`<journal>.lock`), held while this denylist lives.
    pub fn lock_path(&self) -> Option<&Path> {
        self.lock.as_ref().map(files::JournalLock::path)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave `Writer` half-updated in a way we rely
        // on (a failed write poisons the journal itself), so a poisoned mutex is recovered.
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
    /// write fails they stay in memory (fail-safe) and the error is returned.
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
            .map(|(key, entry)| Change::Revoke(key, entry))
            .collect();
        let applied = changes.len();
        if applied == 0 {
            return Ok(0);
        }
        // Serialize first: a record too large to replay is refused before anything changes.
        let encoded = match writer.journal.as_ref() {
            Some(_) => Some(journal::encode(&changes)?),
            None => None,
        };
        for change in changes {
            self.state.apply(change);
        }
        self.report_len();
        if let (Some(journal), Some(bytes)) = (writer.journal.as_mut(), encoded) {
            let started = Instant::now();
            journal.append(&bytes)?;
            self.observe_fsync("revoke", started);
        }
        Ok(applied)
    }

    /// Remove `key`; durable before it returns. Returns whether an entry was present.
    ///
    /// With `allowlist`, the token (`fp:` keys only, else [`DenylistError::NotAFingerprint`])
    /// is also allowlisted so the detector will not revoke it again: until the removed entry
    /// would have lapsed (the token's expiry), or with no entry present, until un-allowlisted
    /// by an admin revocation. The entry stays in force until the journal write is durable.
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
        if let Some(journal) = writer.journal.as_mut() {
            let bytes = journal::encode(&changes)?;
            let started = Instant::now();
            journal.append(&bytes)?;
            self.observe_fsync("unrevoke", started);
        }
        let mut removed = false;
        for change in changes {
            removed |= self.state.apply(change);
        }
        self.report_len();
        Ok(removed)
    }

    /// The first matching, unexpired entry, looking up in order `fp:`, `jti:`, `sid:`, `sub:`.
    ///
    /// The named keys need `iss`. A `sub:` entry matches only tokens issued before its
    /// `not_before`; a token without `iat` matches (it cannot show it is newer). Allocates
    /// only to return a hit.
    pub fn check(&self, query: &CheckQuery, now_ms: i64) -> Option<(DenyKey, Entry)> {
        if let Some(fp) = query.fingerprint {
            if let Some(entry) = self.state.fingerprints.get(&fp) {
                if entry.is_live(now_ms) {
                    return Some((DenyKey::Fingerprint(fp), entry.value().clone()));
                }
            }
        }
        let iss = query.iss.as_deref()?;
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
            let covers = kind != NamedKind::Sub || sub_entry_covers(entry.not_before, query.iat);
            if entry.is_live(now_ms) && covers {
                return Some((DenyKey::from_named(kind, iss, id), entry.value().clone()));
            }
        }
        None
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
    /// checks do not. A no-op in memory-only mode.
    pub fn compact(&self, now_ms: i64) -> Result<(), DenylistError> {
        let mut writer = self.lock_writer();
        let Some(journal) = writer.journal.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let live = self.state.live_changes(now_ms);
        let path = journal.path().to_path_buf();
        *journal = journal::Journal::rewrite(&path, &live)?;
        self.observe_fsync("compact", started);
        Ok(())
    }

    /// Housekeeping for a periodic task: purge lapsed entries, and compact when the journal
    /// holds more than twice as many records as there are live entries (and at least 1024
    /// appended since the last compaction). Returns whether it compacted.
    pub fn maintain(&self, now_ms: i64) -> Result<bool, DenylistError> {
        self.purge_expired(now_ms);
        let appended = self
            .lock_writer()
            .journal
            .as_ref()
            .map_or(0, |j| j.appended_records());
        let live = self.len() + self.state.allowlist.len();
        if appended >= 1024 && appended > live as u64 {
            self.compact(now_ms)?;
            return Ok(true);
        }
        Ok(false)
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

fn purge(state: &State, now_ms: i64) -> usize {
    let before = state.len() + state.allowlist.len();
    state.fingerprints.retain(|_, e| e.is_live(now_ms));
    state.named.retain(|_, e| e.is_live(now_ms));
    state.allowlist.retain(|_, until| now_ms < *until);
    before.saturating_sub(state.len() + state.allowlist.len())
}

#[cfg(test)]
mod tests;
