//! `tokenwatch journal-repair`: salvage a damaged journal ([`repair`]) and the report it
//! prints ([`RepairReport`]).
//!
//! Data flow: offline, beside **denylist**: the operator runs it when startup refused a
//! damaged or missing journal; the daemon then starts from the repaired file.
//!
//! Invariants: takes the journal's lock (refused while tokenwatch runs on it); keeps the file
//! as it was (`<journal>.damaged-<unix seconds>`) before writing anything; keeps every record
//! with a valid checksum and lists the rest; writes the fresh journal by temp file, fsync,
//! rename and folder fsync; a missing journal is started empty, deliberately.
//!
//! What it does NOT do: run inside the daemon or guess lost records.

use std::fmt;
use std::path::{Path, PathBuf};

use super::state::{State, purge};
use super::{DenylistError, DroppedLine, FORMAT_VERSION, files, journal, wall_clock_ms};

/// What [`repair`] did, printed by `tokenwatch journal-repair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The journal.
    pub journal: PathBuf,
    /// The file as it was before the repair (`<journal>.damaged-<unix seconds>`); `None` when
    /// there was no journal.
    pub copy: Option<PathBuf>,
    /// Format of the file read (1 or 2); `None` when there was no journal.
    pub format: Option<u32>,
    /// Records kept (format 2: with a valid checksum; format 1: that parse).
    pub kept: u64,
    /// Lines dropped, in file order.
    pub dropped: Vec<DroppedLine>,
    /// Kept revocations that had lapsed and were left out.
    pub expired: u64,
    /// Live entries in the new journal.
    pub entries: usize,
    /// Live allowlistings in the new journal.
    pub allowlisted: usize,
    /// Of those entries, `fp:` keys of a previous fingerprint version.
    pub previous_fingerprint_entries: u64,
    /// There was no journal: an empty one was started.
    pub started_empty: bool,
}

/// How many dropped lines [`RepairReport`]'s text lists one by one.
const DROPPED_LISTED: usize = 20;

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let journal = self.journal.display();
        if self.started_empty {
            writeln!(
                f,
                "{journal}: there was no journal; started an empty one (format \
                 {FORMAT_VERSION}). Every revocation the old one held is gone: revoke again \
                 what must stay revoked."
            )?;
            return Ok(());
        }
        let format = self.format.map_or_else(|| "?".into(), |v| v.to_string());
        writeln!(f, "{journal} (format {format}) repaired")?;
        if let Some(copy) = &self.copy {
            writeln!(f, "  the file as it was:  {}", copy.display())?;
        }
        let dropped_bytes: u64 = self.dropped.iter().map(|d| d.bytes).sum();
        writeln!(
            f,
            "  kept:     {} records{}",
            self.kept,
            if self.format == Some(1) {
                " (format 1 has no checksums: every line that parses)"
            } else {
                " with valid checksums"
            }
        )?;
        writeln!(
            f,
            "  dropped:  {} lines ({dropped_bytes} bytes)",
            self.dropped.len()
        )?;
        for line in self.dropped.iter().take(DROPPED_LISTED) {
            writeln!(
                f,
                "    line {} at byte offset {} ({} bytes): {}",
                line.line, line.offset, line.bytes, line.reason
            )?;
        }
        if self.dropped.len() > DROPPED_LISTED {
            writeln!(
                f,
                "    … and {} more (compare with the copy)",
                self.dropped.len() - DROPPED_LISTED
            )?;
        }
        writeln!(f, "  lapsed:   {} revocations left out", self.expired)?;
        writeln!(
            f,
            "  written:  {} entries and {} allowlistings (format {FORMAT_VERSION}){}",
            self.entries,
            self.allowlisted,
            if self.previous_fingerprint_entries > 0 {
                format!(
                    "; {} fp: entries of the previous fingerprint version",
                    self.previous_fingerprint_entries
                )
            } else {
                String::new()
            }
        )?;
        if !self.dropped.is_empty() {
            writeln!(
                f,
                "  A dropped line may have been a revocation: check the log of decisions and \
                 admin actions for what it held, and revoke again what must stay revoked."
            )?;
        }
        Ok(())
    }
}

/// `tokenwatch journal-repair`: salvage a damaged journal so tokenwatch can start again.
///
/// Takes the journal's lock (refused while tokenwatch runs on it). Reads every line: keeps
/// every record whose checksum is valid (format 1: that parses), drops the rest — torn
/// records, NUL runs, a bad header — and lists them. Keeps the file as it was under
/// `<journal>.damaged-<unix seconds>`, then writes a fresh format-2 journal of the live
/// state (temp file, fsync, rename, fsync folder). A missing journal is started empty
/// (deliberately: this is how an operator accepts that its revocations are gone).
pub fn repair(journal: &Path) -> Result<RepairReport, DenylistError> {
    repair_at(journal, wall_clock_ms())
}

/// [`repair`] with an explicit wall clock (tests).
pub fn repair_at(path: &Path, now_ms: i64) -> Result<RepairReport, DenylistError> {
    let _lock = files::JournalLock::acquire(path)?;
    let state = State::default();
    let mut report = RepairReport {
        journal: path.to_path_buf(),
        copy: None,
        format: None,
        kept: 0,
        dropped: Vec::new(),
        expired: 0,
        entries: 0,
        allowlisted: 0,
        previous_fingerprint_entries: 0,
        started_empty: false,
    };
    let exists = path
        .try_exists()
        .map_err(files::io_error(path, "look for"))?;
    if exists {
        let salvaged = journal::salvage(path, now_ms, &mut |change, version| {
            state.apply_replayed(change, version);
        })?;
        purge(&state, now_ms);
        report.format = salvaged.stats.format;
        report.kept = salvaged.stats.records;
        report.expired = salvaged.stats.expired_skipped;
        report.dropped = salvaged.dropped;
        report.copy = Some(files::keep_copy(
            path,
            &format!(".damaged-{}", files::unix_seconds()),
        )?);
    } else {
        report.started_empty = true;
    }
    let live = state.live_changes(now_ms);
    journal::Journal::rewrite(path, &live, &|fp| state.legacy_version(fp))?;
    files::ensure_marker(path)?;
    report.entries = state.len();
    report.allowlisted = state.allowlist.len();
    report.previous_fingerprint_entries = state.legacy_counts().0;
    Ok(report)
}
