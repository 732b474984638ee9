//! The denylist journal: an append-only file of checksummed JSON lines, one change per line,
//! after a header line naming the format.
//!
//! Format version 2 (written by this release):
//!
//! ```text
//! 824c598d {"journal":"tokenwatch-denylist","format":2,"fingerprint":2}
//! 11d3d232 {"op":"revoke","key":"fp:9f86d081884c7d659a2feaa0c55ad015","entry":{"reasons":["impossible_travel"],"origin":"detector","created_at_ms":1795435260000,"expires_at_ms":1795449600000,"score":0.97}}
//! 466176fb {"op":"revoke","key":"fp:2e955a9bfbe905eef944dbefcfc9c4d8","entry":{"reasons":["admin"],"origin":"admin","created_at_ms":1795435300000,"expires_at_ms":1795521700000},"fingerprint":1}
//! 42999c19 {"op":"unrevoke","key":"sub:https://id.example.com:user-123"}
//! 4f2ca2db {"op":"allow","key":"fp:9f86d081884c7d659a2feaa0c55ad015","until_ms":1795449600000}
//! ```
//!
//! A record's `entry` has an optional `action`: `"step_up"` for a step-up entry (DESIGN §5;
//! its `sid:` key then carries `not_before`); absent means revoke, which is how every record of
//! earlier releases reads and how revocations are still written (their bytes are unchanged).
//! The format version stays 2: an older release that ignores the field reads a step-up as a
//! revocation, which fails safe.
//!
//! Every line is `<crc> <json>\n`, where `<crc>` is the CRC-32C (Castagnoli) of the JSON bytes
//! as 8 lowercase hex digits. The first line is the header: `format` is the version of this
//! layout, `fingerprint` the version of the token fingerprint (DESIGN §4) the file's `fp:` keys
//! were computed with (2: HMAC over the token's canonical form; 1: HMAC over the raw token). A
//! record carried over from a file of another fingerprint version keeps saying so itself
//! (`"fingerprint":1`), so rewriting a file never relabels an old key.
//!
//! Format version 1 (earlier releases) is the same JSON records without header or checksums.
//! It is still read — all its `fp:` keys are fingerprint version 1 — and the caller rewrites
//! it as version 2 at startup.
//!
//! Where it sits: below [`Denylist`](super::Denylist), which serializes writers and decides
//! what to do about damage; this module only encodes, appends + fsyncs, replays, salvages and
//! rewrites.
//!
//! Invariants:
//! - A batch is written with one `write` and one `fdatasync`; the caller acknowledges only
//!   after it returns. A crash can therefore only leave a prefix of the last batch: complete
//!   records, then at most one partial record.
//! - The writer never writes a NUL byte (JSON escapes control characters) nor an empty line.
//! - Replay applies records in file order and classifies every line that is not a valid
//!   record: the **last** line, when nothing but empty lines follows it, is a torn final
//!   record (handed back, bytes and all, for the caller to keep and cut); anything else is
//!   [`DenylistError::Corrupt`] naming the line and byte offset: a bad line followed by more
//!   data, any NUL byte (blocks the file system never wrote: not a prefix of our writes), a
//!   line over [`MAX_LINE_BYTES`], a missing or bad header, or a record whose checksum is valid
//!   but which cannot be read. A header of a newer format is [`DenylistError::NewerFormat`].
//! - Every record is at most [`MAX_RECORD_BYTES`] of JSON (checked on write, so replay can cap
//!   its reads).
//! - A rewrite writes the header and records to a temp file in the journal's folder, fsyncs
//!   it, renames it over the journal and fsyncs the folder: the old file stays whole until the
//!   new one is durable, and a crash leaves one or the other. On failure the temp file is
//!   removed (it may be what filled the disk).
//!
//! It does NOT: decide what damage means for startup (the caller refuses, `repair` salvages),
//! lock the file or write side files (`files.rs`), or remember a failed write (the caller stops
//! appending after one: after a failed `fsync` the file's contents are unknown).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::files::{io_error, private_options, sibling, sync_folder};
use super::{Change, DenyKey, DenylistError, Entry};
use crate::config::folder_of;
use crate::event::Fingerprint;

/// The journal layout written by this release.
pub const FORMAT_VERSION: u32 = 2;
/// The token fingerprint version (DESIGN §4) of the `fp:` keys this release computes.
pub const FINGERPRINT_VERSION: u32 = 2;
/// Largest journal record's JSON, bytes. Admin reasons are capped well below.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// `<8 hex digits><space>` before each record's JSON.
const PREFIX_BYTES: usize = 9;
/// Largest journal line, bytes, excluding its newline.
pub const MAX_LINE_BYTES: usize = MAX_RECORD_BYTES + PREFIX_BYTES;
/// The header's `journal` field.
const JOURNAL_KIND: &str = "tokenwatch-denylist";

/// What replaying a journal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Format version of the file read (1 or 2); `None` when there was no file.
    pub format: Option<u32>,
    /// Records read and applied.
    pub records: u64,
    /// Revocations that had already lapsed and were skipped.
    pub expired_skipped: u64,
    /// 1-based line number of a torn final record that was cut, if there was one.
    pub torn_line: Option<u64>,
    /// Byte offset where the torn final record started (the file was cut there).
    pub torn_offset: Option<u64>,
    /// Bytes cut with the torn final record.
    pub torn_bytes: u64,
    /// Where the torn bytes were kept (`<journal>.torn-<unix seconds>`), once written.
    pub torn_saved: Option<PathBuf>,
    /// The journal did not exist and was created.
    pub created: bool,
    /// Where the format-1 file was kept (`<journal>.v1.bak`) when it was rewritten as format 2.
    pub v1_backup: Option<PathBuf>,
    /// Live `fp:` revocations keyed on a previous fingerprint version (1: HMAC over the raw
    /// token). Those of JWTs no longer match a token; opaque tokens' still do.
    pub previous_fingerprint_entries: u64,
    /// Live allowlistings keyed on a previous fingerprint version.
    pub previous_fingerprint_allowlisted: u64,
}

#[derive(serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RecordOut<'a> {
    Revoke {
        key: &'a DenyKey,
        entry: &'a Entry,
        #[serde(skip_serializing_if = "Option::is_none")]
        fingerprint: Option<u32>,
    },
    Unrevoke {
        key: &'a DenyKey,
    },
    Allow {
        key: DenyKey,
        until_ms: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        fingerprint: Option<u32>,
    },
}

#[derive(serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum RecordIn {
    Revoke {
        key: DenyKey,
        entry: Entry,
        #[serde(default)]
        fingerprint: Option<u32>,
    },
    Unrevoke {
        key: DenyKey,
    },
    Allow {
        key: DenyKey,
        until_ms: i64,
        #[serde(default)]
        fingerprint: Option<u32>,
    },
}

#[derive(serde::Serialize)]
struct HeaderOut {
    journal: &'static str,
    format: u32,
    fingerprint: u32,
}

#[derive(serde::Deserialize)]
struct HeaderIn {
    journal: String,
    format: u32,
    fingerprint: u32,
}

/// The fingerprint version of an `fp:` key, when it is not the current one.
pub(super) type LegacyVersion<'a> = &'a dyn Fn(&Fingerprint) -> Option<u32>;

fn hex8(value: u32) -> [u8; 8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (28 - 4 * i)) & 0xf) as usize];
    }
    out
}

fn parse_hex8(text: &[u8]) -> Option<u32> {
    if text.len() != 8 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok()
}

/// Append one checksummed line holding `value`'s JSON to `out`.
fn push_line(out: &mut Vec<u8>, value: &impl serde::Serialize) -> Result<(), DenylistError> {
    let start = out.len();
    out.extend_from_slice(b"00000000 ");
    let json = out.len();
    // Serializing plain structs into a Vec cannot fail; treat a failure as oversize.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        return Err(DenylistError::RecordTooLarge { size: usize::MAX });
    }
    let size = out.len() - json;
    if size > MAX_RECORD_BYTES {
        out.truncate(start);
        return Err(DenylistError::RecordTooLarge { size });
    }
    let crc = crc32c::crc32c(&out[json..]);
    out[start..start + 8].copy_from_slice(&hex8(crc));
    out.push(b'\n');
    Ok(())
}

/// Encode changes as journal lines, refusing any record over [`MAX_RECORD_BYTES`]. `legacy`
/// names the fingerprint version of `fp:` keys that are not of the current one.
pub(super) fn encode(
    changes: &[Change],
    legacy: LegacyVersion<'_>,
) -> Result<Vec<u8>, DenylistError> {
    let mut out = Vec::with_capacity(256 * changes.len());
    for change in changes {
        let record = match change {
            Change::Revoke(key, entry) => RecordOut::Revoke {
                key,
                entry,
                fingerprint: match key {
                    DenyKey::Fingerprint(fp) => legacy(fp),
                    _ => None,
                },
            },
            Change::Unrevoke(key) => RecordOut::Unrevoke { key },
            Change::Allow(fp, until_ms) => RecordOut::Allow {
                key: DenyKey::Fingerprint(*fp),
                until_ms: *until_ms,
                fingerprint: legacy(fp),
            },
        };
        push_line(&mut out, &record)?;
    }
    Ok(out)
}

/// The header line of a new journal.
fn header() -> Result<Vec<u8>, DenylistError> {
    let mut out = Vec::with_capacity(80);
    push_line(
        &mut out,
        &HeaderOut {
            journal: JOURNAL_KIND,
            format: FORMAT_VERSION,
            fingerprint: FINGERPRINT_VERSION,
        },
    )?;
    Ok(out)
}

/// The JSON of a format-2 line whose checksum is right.
fn verify(line: &[u8]) -> Result<&[u8], String> {
    if line.len() <= PREFIX_BYTES || line[8] != b' ' {
        return Err("not a checksummed record (`<crc32c> <json>`)".into());
    }
    let Some(stored) = parse_hex8(&line[..8]) else {
        return Err("the checksum is not 8 hex digits".into());
    };
    let json = &line[PREFIX_BYTES..];
    let computed = crc32c::crc32c(json);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        ));
    }
    Ok(json)
}

enum HeaderError {
    Bad(String),
    Newer(u32),
}

/// The fingerprint version named by a valid format-2 header line.
fn parse_header(line: &[u8]) -> Result<u32, HeaderError> {
    let json = verify(line).map_err(HeaderError::Bad)?;
    let header: HeaderIn = serde_json::from_slice(json)
        .map_err(|e| HeaderError::Bad(format!("not a journal header ({e})")))?;
    if header.journal != JOURNAL_KIND {
        return Err(HeaderError::Bad(format!(
            "the header names {:?}, not {JOURNAL_KIND:?}",
            header.journal
        )));
    }
    if header.format > FORMAT_VERSION {
        return Err(HeaderError::Newer(header.format));
    }
    if header.format != FORMAT_VERSION {
        return Err(HeaderError::Bad(format!(
            "the header names format {}, which has no header",
            header.format
        )));
    }
    Ok(header.fingerprint)
}

/// A record's change and the fingerprint version of its `fp:` key.
fn decode(
    json: &[u8],
    default_fingerprint: u32,
    now_ms: i64,
    stats: &mut ReplayStats,
) -> Result<(Change, u32), String> {
    let record: RecordIn = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(match record {
        RecordIn::Revoke {
            key,
            entry,
            fingerprint,
        } => {
            let version = fingerprint.unwrap_or(default_fingerprint);
            if entry.is_live(now_ms) {
                (Change::Revoke(key, entry), version)
            } else {
                // A lapsed revocation still replaces an earlier one for the same key.
                stats.expired_skipped += 1;
                (Change::Unrevoke(key), version)
            }
        }
        RecordIn::Unrevoke { key } => (Change::Unrevoke(key), default_fingerprint),
        RecordIn::Allow {
            key: DenyKey::Fingerprint(fp),
            until_ms,
            fingerprint,
        } => (
            Change::Allow(fp, until_ms),
            fingerprint.unwrap_or(default_fingerprint),
        ),
        RecordIn::Allow { .. } => return Err("allow record for a key that is not fp:".into()),
    })
}

/// One line read from a journal.
struct LineInfo {
    /// 1-based line number.
    no: u64,
    /// Byte offset of its first byte.
    offset: u64,
    /// Bytes it took, newline included.
    len: u64,
    /// Longer than [`MAX_LINE_BYTES`] (only the start was kept).
    too_long: bool,
}

/// Reads a journal line by line, each capped, keeping byte offsets.
struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
    body: usize,
    offset: u64,
    no: u64,
}

impl Lines {
    fn new(file: File) -> Self {
        Lines {
            reader: BufReader::with_capacity(64 * 1024, file),
            buf: Vec::with_capacity(1024),
            body: 0,
            offset: 0,
            no: 0,
        }
    }

    fn next(&mut self) -> std::io::Result<Option<LineInfo>> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        let mut len = read as u64;
        let terminated = self.buf.last() == Some(&b'\n');
        let mut body = self.buf.len() - usize::from(terminated);
        if body > 0 && self.buf[body - 1] == b'\r' {
            body -= 1;
        }
        let too_long = body > MAX_LINE_BYTES;
        if too_long && !terminated {
            len += self.reader.skip_until(b'\n')? as u64;
        }
        self.body = body.min(MAX_LINE_BYTES + 1);
        self.no += 1;
        let info = LineInfo {
            no: self.no,
            offset: self.offset,
            len,
            too_long,
        };
        self.offset += len;
        Ok(Some(info))
    }

    /// The current line without its line ending (only the start of a line that is too long).
    fn body(&self) -> &[u8] {
        &self.buf[..self.body]
    }

    /// Everything from `offset` to the end of the file.
    fn rest_from(self, offset: u64) -> std::io::Result<Vec<u8>> {
        let mut file = self.reader.into_inner();
        file.seek(SeekFrom::Start(offset))?;
        let mut rest = Vec::new();
        file.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// How the lines of a file are read.
#[derive(Clone, Copy)]
enum Layout {
    /// Format 1: plain JSON records.
    V1,
    /// Format 2: checksummed records; `fp:` keys of this fingerprint version unless a record
    /// says otherwise.
    V2 { fingerprint: u32 },
}

/// What reading one line gave.
enum LineRead {
    Record(Change, u32),
    /// Not a valid record; may be a torn final record if nothing follows it.
    Bad(String),
    /// Damage wherever it is.
    Damage(String),
}

fn read_line(layout: Layout, body: &[u8], now_ms: i64, stats: &mut ReplayStats) -> LineRead {
    match layout {
        Layout::V1 => match decode(body, 1, now_ms, stats) {
            Ok((change, version)) => LineRead::Record(change, version),
            Err(reason) => LineRead::Bad(reason),
        },
        Layout::V2 { fingerprint } => match verify(body) {
            Err(reason) => LineRead::Bad(reason),
            Ok(json) => match decode(json, fingerprint, now_ms, stats) {
                Ok((change, version)) => LineRead::Record(change, version),
                Err(reason) => LineRead::Damage(format!(
                    "its checksum is valid but the record cannot be read ({reason})"
                )),
            },
        },
    }
}

fn nul_reason(offset: u64, body: &[u8]) -> Option<String> {
    let at = body.iter().position(|b| *b == 0)?;
    let run = body[at..].iter().take_while(|b| **b == 0).count();
    Some(format!(
        "NUL bytes ({run} from byte offset {}): the file system lost data here; tokenwatch \
         never writes a NUL, so this is not a write cut short by a crash",
        offset + at as u64
    ))
}

/// What [`replay`] found.
pub(super) struct Replayed {
    /// Counts, format and the torn record's place.
    pub(super) stats: ReplayStats,
    /// The torn final record's bytes (to the end of the file), if there was one.
    pub(super) torn: Option<Vec<u8>>,
}

fn corrupt(path: &Path, line: &LineInfo, reason: String) -> DenylistError {
    DenylistError::Corrupt {
        path: path.to_path_buf(),
        line: line.no,
        offset: line.offset,
        reason,
    }
}

/// Replay `path` into `apply` (each change with the fingerprint version of its `fp:` key), in
/// file order. A missing file is reported as `created`; an empty one is an empty format-1
/// journal (format 1 wrote nothing for an empty denylist).
pub(super) fn replay(
    path: &Path,
    now_ms: i64,
    apply: &mut dyn FnMut(Change, u32),
) -> Result<Replayed, DenylistError> {
    let mut stats = ReplayStats::default();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            stats.created = true;
            return Ok(Replayed { stats, torn: None });
        }
        Err(e) => return Err(io_error(path, "open")(e)),
    };
    let mut lines = Lines::new(file);
    let mut layout: Option<Layout> = None;
    // A bad line is damage only if more data follows it; at the end it is a torn record.
    let mut pending_bad: Option<(LineInfo, String)> = None;
    while let Some(line) = lines.next().map_err(io_error(path, "read"))? {
        let body = lines.body();
        if body.is_empty() && !line.too_long {
            continue;
        }
        if let Some((bad, reason)) = pending_bad.take() {
            return Err(corrupt(
                path,
                &bad,
                format!("{reason}; more data follows it, so it is not a torn final record"),
            ));
        }
        if let Some(reason) = nul_reason(line.offset, body) {
            return Err(corrupt(path, &line, reason));
        }
        if line.too_long {
            return Err(corrupt(
                path,
                &line,
                format!("longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let current = match layout {
            Some(layout) => layout,
            None if body.first() == Some(&b'{') => {
                stats.format = Some(1);
                *layout.insert(Layout::V1)
            }
            None => match parse_header(body) {
                Ok(fingerprint) => {
                    stats.format = Some(FORMAT_VERSION);
                    layout = Some(Layout::V2 { fingerprint });
                    continue;
                }
                Err(HeaderError::Newer(format)) => {
                    return Err(DenylistError::NewerFormat {
                        path: path.to_path_buf(),
                        format,
                    });
                }
                Err(HeaderError::Bad(reason)) => {
                    return Err(corrupt(path, &line, format!("bad header: {reason}")));
                }
            },
        };
        match read_line(current, body, now_ms, &mut stats) {
            LineRead::Record(change, version) => {
                stats.records += 1;
                apply(change, version);
            }
            LineRead::Bad(reason) => pending_bad = Some((line, reason)),
            LineRead::Damage(reason) => return Err(corrupt(path, &line, reason)),
        }
    }
    if layout.is_none() {
        stats.format = Some(1);
    }
    let torn = match pending_bad {
        None => None,
        Some((line, _)) => {
            let bytes = lines
                .rest_from(line.offset)
                .map_err(io_error(path, "read"))?;
            stats.torn_line = Some(line.no);
            stats.torn_offset = Some(line.offset);
            stats.torn_bytes = bytes.len() as u64;
            Some(bytes)
        }
    };
    Ok(Replayed { stats, torn })
}

/// A line `journal-repair` could not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of its first byte.
    pub offset: u64,
    /// Its length, newline included.
    pub bytes: u64,
    /// Why it was dropped.
    pub reason: String,
}

/// What [`salvage`] kept and dropped.
pub(super) struct Salvaged {
    /// Format, records kept and lapsed.
    pub(super) stats: ReplayStats,
    /// Every line that was not a valid record, in file order.
    pub(super) dropped: Vec<DroppedLine>,
}

/// Read every valid record of a damaged journal into `apply`, in file order, and list the
/// lines that are not. A format-2 file keeps every record whose checksum is valid (the header's
/// fingerprint version applies when the header is readable, the current one otherwise); a
/// format-1 file (first line a plain JSON record) keeps every line that parses.
pub(super) fn salvage(
    path: &Path,
    now_ms: i64,
    apply: &mut dyn FnMut(Change, u32),
) -> Result<Salvaged, DenylistError> {
    let file = File::open(path).map_err(io_error(path, "open"))?;
    let mut lines = Lines::new(file);
    let mut stats = ReplayStats::default();
    let mut dropped = Vec::new();
    let mut layout: Option<Layout> = None;
    // Why the first line was not a header, until it is known whether it was a record.
    let mut bad_header: Option<String> = None;
    while let Some(line) = lines.next().map_err(io_error(path, "read"))? {
        let body = lines.body();
        if body.is_empty() && !line.too_long {
            continue;
        }
        let mut drop_line = |reason: String| {
            dropped.push(DroppedLine {
                line: line.no,
                offset: line.offset,
                bytes: line.len,
                reason,
            });
        };
        if line.too_long {
            drop_line(format!("longer than {MAX_LINE_BYTES} bytes"));
            continue;
        }
        if let Some(reason) = nul_reason(line.offset, body) {
            drop_line(reason);
            continue;
        }
        let current = match layout {
            Some(layout) => layout,
            None if body.first() == Some(&b'{') => {
                stats.format = Some(1);
                *layout.insert(Layout::V1)
            }
            None => {
                stats.format = Some(FORMAT_VERSION);
                match parse_header(body) {
                    Ok(fingerprint) => {
                        layout = Some(Layout::V2 { fingerprint });
                        continue;
                    }
                    Err(HeaderError::Newer(format)) => {
                        return Err(DenylistError::NewerFormat {
                            path: path.to_path_buf(),
                            format,
                        });
                    }
                    // The header is lost: assume this release's fingerprint version, and read
                    // this line as a record in case it is one.
                    Err(HeaderError::Bad(reason)) => {
                        bad_header = Some(reason);
                        *layout.insert(Layout::V2 {
                            fingerprint: FINGERPRINT_VERSION,
                        })
                    }
                }
            }
        };
        let header_reason = bad_header.take();
        match read_line(current, body, now_ms, &mut stats) {
            LineRead::Record(change, version) => {
                stats.records += 1;
                apply(change, version);
            }
            LineRead::Bad(reason) | LineRead::Damage(reason) => match header_reason {
                Some(header) => drop_line(format!("bad header: {header}")),
                None => drop_line(reason),
            },
        }
    }
    Ok(Salvaged { stats, dropped })
}

/// Write a fresh journal holding `live` to `temp` and fsync it.
fn write_fresh(
    temp: &Path,
    live: &[Change],
    legacy: LegacyVersion<'_>,
) -> Result<File, DenylistError> {
    let file = private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)
        .map_err(io_error(temp, "create"))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    out.write_all(&header()?).map_err(io_error(temp, "write"))?;
    for chunk in live.chunks(1024) {
        out.write_all(&encode(chunk, legacy)?)
            .map_err(io_error(temp, "write"))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| io_error(temp, "write")(e.into_error()))?;
    file.sync_all().map_err(io_error(temp, "fsync"))?;
    Ok(file)
}

/// An open journal, positioned at its end.
pub(super) struct Journal {
    path: PathBuf,
    file: File,
    appended: u64,
}

impl Journal {
    /// Replace the journal at `path` with a format-2 file holding exactly `live`, durably, and
    /// open it for appending. Until the rename the old file is untouched; on failure the temp
    /// file is removed.
    pub(super) fn rewrite(
        path: &Path,
        live: &[Change],
        legacy: LegacyVersion<'_>,
    ) -> Result<Journal, DenylistError> {
        let temp = sibling(path, ".compact-tmp");
        let written = write_fresh(&temp, live, legacy).and_then(|file| {
            std::fs::rename(&temp, path)
                .map_err(io_error(path, "rename the compacted file over"))?;
            Ok(file)
        });
        let file = match written {
            Ok(file) => file,
            Err(error) => {
                let _ = std::fs::remove_file(&temp);
                return Err(error);
            }
        };
        sync_folder(folder_of(path))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            appended: 0,
        })
    }

    /// Append encoded records and `fdatasync`. Durable when it returns `Ok`; after an error
    /// the file's contents are unknown and the caller must not append again.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), DenylistError> {
        self.file
            .write_all(bytes)
            .map_err(io_error(&self.path, "append to"))?;
        self.file
            .sync_data()
            .map_err(io_error(&self.path, "fsync"))?;
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
