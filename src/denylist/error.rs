//! [`DenylistError`]: every way a journal or denylist operation fails, each with an
//! operator-facing message that says what to do, and a bounded `code()` for metrics.
//!
//! Data flow: returned by **denylist** (open, revoke, unrevoke, compact, repair) to `app`,
//! `publish` and the admin API, which maps it to an HTTP answer.
//!
//! Invariants: messages never carry a token or an entry's content (paths, line numbers and
//! sizes only); `code()` is a fixed set of labels.
//!
//! What it does NOT do: decide how to recover (the denylist's writability state and the
//! operator's `journal-repair` do).

use std::path::PathBuf;

use super::MAX_RECORD_BYTES;

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
    /// The journal is damaged other than by a torn final record: a bad record with more data
    /// after it, NUL bytes, an over-long line, or a missing or bad header. Nothing is changed:
    /// the operator runs `tokenwatch journal-repair`.
    #[error(
        "denylist journal {} is damaged at line {line} (byte offset {offset}): {reason}. \
         Only a torn final record (a write cut short by a crash) is cut automatically. The file \
         is left as it is; to salvage every intact record, stop tokenwatch and run \
         `tokenwatch journal-repair --config <your config>` (it keeps a copy of the damaged \
         file), or restore the journal from a backup",
        path.display()
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line's first byte.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The journal's header names a format newer than this release reads.
    #[error(
        "denylist journal {} is format {format}, written by a newer tokenwatch; this release \
         reads formats 1 and 2 (run the newer release, or restore a backup)",
        path.display()
    )]
    NewerFormat {
        /// The journal.
        path: PathBuf,
        /// The format its header names.
        format: u32,
    },
    /// The journal is missing although its marker shows it was created here: its revocations
    /// are gone (deleted, or another volume is mounted). Starting empty would quietly allow
    /// every revoked token again.
    #[error(
        "denylist journal {} is missing, but {} shows tokenwatch created it there: its \
         revocations are gone (the file was deleted, or the wrong volume is mounted). Restore \
         it from a backup, or run `tokenwatch journal-repair --config <your config>` to start \
         an empty journal deliberately",
        path.display(),
        marker.display()
    )]
    Missing {
        /// The journal.
        path: PathBuf,
        /// The marker written when it was first created.
        marker: PathBuf,
    },
    /// The journal cannot be written since an earlier write or `fsync` failed (after a failed
    /// `fsync` the file's contents are unknown, so nothing more is appended to it) or since the
    /// startup rewrite failed. The change is in memory only. Maintenance rewrites the journal
    /// from memory and accepts changes again once that succeeds.
    #[error(
        "denylist journal {} cannot be written since an earlier write failed; this change is \
         not durable. tokenwatch rewrites the journal from memory every few seconds and accepts \
         changes again once that succeeds (tokenwatch_journal_writable)",
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
    /// Distributed mode: the denylist topic did not acknowledge the change (DESIGN §6). A
    /// revocation stays in force in this replica's memory (fail-safe); an un-revocation did
    /// not happen.
    #[error("denylist topic: the change was not acknowledged by the broker: {reason}")]
    Topic {
        /// What the Kafka client said (no key, no entry).
        reason: String,
    },
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
            DenylistError::NewerFormat { .. } => "newer_format",
            DenylistError::Missing { .. } => "missing",
            DenylistError::Topic { .. } => "topic",
        }
    }
}
