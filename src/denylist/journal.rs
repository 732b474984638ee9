//! The denylist journal: an append-only file of JSON lines, one change per line.
//!
//! ```text
//! {"op":"revoke","key":"fp:9f86d081884c7d659a2feaa0c55ad015","entry":{"reasons":["impossible_travel"],"origin":"detector","created_at_ms":…,"expires_at_ms":…,"score":0.97}}
//! {"op":"unrevoke","key":"sub:https://id.example.com:user-123"}
//! {"op":"allow","key":"fp:9f86d081884c7d659a2feaa0c55ad015","until_ms":…}
//! ```
//!
//! Where it sits: below [`Denylist`](super::Denylist), which serializes writers; this module
//! only encodes, appends + fsyncs, replays and rewrites.
//!
//! Invariants:
//! - A batch is written with one `write` and one `fdatasync`; the caller acknowledges only
//!   after it returns. A crash can therefore only cut the *last* line short.
//! - Replay applies records in file order; a bad last line is a torn write (counted, dropped);
//!   a bad line with anything after it is damage, reported with its line number.
//! - Every record is at most [`MAX_RECORD_BYTES`] (checked on write, so replay can cap reads).
//! - Compaction writes a temp file in the journal's folder, fsyncs it, renames it over the
//!   journal and fsyncs the folder, so a crash leaves either the old or the new file whole.
//! - After a failed write or `fsync` the journal is poisoned: a retried `fsync` can report
//!   success for data the kernel already dropped, so nothing more is written until a restart.
//!
//! It does NOT: lock the file against a second process, or rotate it (compaction bounds it).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::files::{folder_of, io_error, private_options, sibling};
use super::{Change, DenyKey, DenylistError, Entry};

/// Largest journal record, bytes, excluding its newline. Admin reasons are capped well below.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// What replaying a journal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records read and applied.
    pub records: u64,
    /// Revocations that had already lapsed and were skipped.
    pub expired_skipped: u64,
    /// 1-based number of a torn last line that was dropped, if there was one.
    pub torn_line: Option<u64>,
    /// The journal did not exist and was created.
    pub created: bool,
}

#[derive(serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RecordOut<'a> {
    Revoke { key: &'a DenyKey, entry: &'a Entry },
    Unrevoke { key: &'a DenyKey },
    Allow { key: DenyKey, until_ms: i64 },
}

#[derive(serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RecordIn {
    Revoke { key: DenyKey, entry: Entry },
    Unrevoke { key: DenyKey },
    Allow { key: DenyKey, until_ms: i64 },
}

/// Encode changes as journal lines, refusing any record over [`MAX_RECORD_BYTES`].
pub(super) fn encode(changes: &[Change]) -> Result<Vec<u8>, DenylistError> {
    let mut out = Vec::with_capacity(256 * changes.len());
    for change in changes {
        let start = out.len();
        let record = match change {
            Change::Revoke(key, entry) => RecordOut::Revoke { key, entry },
            Change::Unrevoke(key) => RecordOut::Unrevoke { key },
            Change::Allow(fp, until_ms) => RecordOut::Allow {
                key: DenyKey::Fingerprint(*fp),
                until_ms: *until_ms,
            },
        };
        // Serializing plain structs into a Vec cannot fail; treat a failure as oversize.
        if serde_json::to_writer(&mut out, &record).is_err() {
            return Err(DenylistError::RecordTooLarge { size: usize::MAX });
        }
        let size = out.len() - start;
        if size > MAX_RECORD_BYTES {
            return Err(DenylistError::RecordTooLarge { size });
        }
        out.push(b'\n');
    }
    Ok(out)
}

fn decode(line: &[u8], now_ms: i64, stats: &mut ReplayStats) -> Result<Change, String> {
    let record: RecordIn = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok(match record {
        RecordIn::Revoke { key, entry } if entry.is_live(now_ms) => Change::Revoke(key, entry),
        RecordIn::Revoke { key, .. } => {
            // A lapsed revocation still replaces an earlier one for the same key.
            stats.expired_skipped += 1;
            Change::Unrevoke(key)
        }
        RecordIn::Unrevoke { key } => Change::Unrevoke(key),
        RecordIn::Allow {
            key: DenyKey::Fingerprint(fp),
            until_ms,
        } => Change::Allow(fp, until_ms),
        RecordIn::Allow { .. } => return Err("allow record for a key that is not fp:".into()),
    })
}

/// Replay `path` into `apply`, in file order. A missing file is an empty journal.
pub(super) fn replay(
    path: &Path,
    now_ms: i64,
    apply: &mut dyn FnMut(Change),
) -> Result<ReplayStats, DenylistError> {
    let mut stats = ReplayStats::default();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            stats.created = true;
            return Ok(stats);
        }
        Err(e) => return Err(io_error(path, "open")(e)),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::with_capacity(1024);
    let mut line_no: u64 = 0;
    // A bad line is an error only if another record follows it; at the end it is a torn write.
    let mut pending_bad: Option<(u64, String)> = None;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_RECORD_BYTES as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(io_error(path, "read"))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let terminated = line.last() == Some(&b'\n');
        let mut body: &[u8] = &line;
        if terminated {
            body = &body[..body.len() - 1];
        }
        if body.last() == Some(&b'\r') {
            body = &body[..body.len() - 1];
        }
        let too_long = body.len() > MAX_RECORD_BYTES;
        if too_long && !terminated {
            reader.skip_until(b'\n').map_err(io_error(path, "read"))?;
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some((line, reason)) = pending_bad.take() {
            return Err(DenylistError::Corrupt {
                path: path.to_path_buf(),
                line,
                reason,
            });
        }
        if too_long {
            pending_bad = Some((line_no, format!("longer than {MAX_RECORD_BYTES} bytes")));
            continue;
        }
        match decode(body, now_ms, &mut stats) {
            Ok(change) => {
                stats.records += 1;
                apply(change);
            }
            Err(reason) => pending_bad = Some((line_no, reason)),
        }
    }
    stats.torn_line = pending_bad.map(|(line, _)| line);
    Ok(stats)
}

/// An open journal, positioned at its end.
pub(super) struct Journal {
    path: PathBuf,
    file: File,
    poisoned: bool,
    appended: u64,
}

impl Journal {
    /// Replace the journal at `path` with exactly `live`, durably, and open it for appending.
    pub(super) fn rewrite(path: &Path, live: &[Change]) -> Result<Journal, DenylistError> {
        let dir = folder_of(path);
        let temp = sibling(path, ".compact-tmp");
        let file = private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io_error(&temp, "create"))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        for chunk in live.chunks(1024) {
            out.write_all(&encode(chunk)?)
                .map_err(io_error(&temp, "write"))?;
        }
        let file = out
            .into_inner()
            .map_err(|e| io_error(&temp, "write")(e.into_error()))?;
        file.sync_all().map_err(io_error(&temp, "fsync"))?;
        std::fs::rename(&temp, path).map_err(io_error(path, "rename the compacted file over"))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&dir, "fsync the folder of"))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            poisoned: false,
            appended: 0,
        })
    }

    /// Append encoded records and `fdatasync`. Durable when it returns `Ok`.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), DenylistError> {
        if self.poisoned {
            return Err(DenylistError::Poisoned {
                path: self.path.clone(),
            });
        }
        let result = self
            .file
            .write_all(bytes)
            .map_err(io_error(&self.path, "append to"))
            .and_then(|()| self.file.sync_data().map_err(io_error(&self.path, "fsync")));
        if result.is_err() {
            self.poisoned = true;
        }
        result?;
        self.appended += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(())
    }

    /// The journal file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Records appended since the journal was last rewritten.
    pub(super) fn appended_records(&self) -> u64 {
        self.appended
    }
}
