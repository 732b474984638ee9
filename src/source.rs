//! Stage 1, source: where access-log lines come from (DESIGN §1–2).
//!
//! A [`Source`] turns a file, standard input or the HTTP ingest channel into batches of
//! [`RawLine`]s. Every line is capped at `input.max_line_bytes` while it is read — a 1 GiB
//! line costs at most the cap in memory — and a line that had to be cut is passed on with
//! `truncated = true`, so `parse` counts it (`too_large`) instead of it vanishing.
//!
//! A file is read to EOF (`replay`) or followed like `tail -F` (`run`, `source/file.rs`: woken
//! by inotify, across rotation and truncation, resuming after a restart where the last run's
//! published lines end, `source/position.rs`). A last line without a newline is held back
//! while following (it may still be written) and processed at EOF when reading to the end.
//!
//! This module does blocking I/O on its own threads and does not parse, batch across sources
//! or know what a line means. The Kafka consumer group (`source/kafka.rs`, cargo feature
//! `kafka`) feeds the same channel; it is not a [`Source`] variant because detection must tell
//! it when a batch is published (at-least-once).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::event::{RawLine, SourceKind};

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod position;
pub mod repartition;

pub use position::{FileCheckpoints, FilePosition, PositionStore};

/// Reads newline-terminated lines, capping each at `max` bytes.
///
/// A line may arrive over several calls (a followed file at EOF): the caller keeps the same
/// `buf` and the reader remembers whether the line already overflowed.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    overflowed: bool,
    /// Bytes consumed from `inner` up to the end of the last complete line (its newline
    /// included): where a restart resumes (`source/file.rs`).
    line_end: u64,
    /// Bytes consumed from `inner` so far, a partial line included.
    consumed: u64,
}

/// One step of a [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum ReadLine {
    /// A complete line is in the buffer (newline and `\r` stripped).
    Line {
        /// Bytes beyond the cap were discarded.
        truncated: bool,
    },
    /// EOF; the buffer holds the unterminated rest of a line, if any.
    Eof {
        /// Bytes beyond the cap were discarded from that rest.
        truncated: bool,
    },
}

impl<R: BufRead> LineReader<R> {
    /// Wrap a buffered reader.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            overflowed: false,
            line_end: 0,
            consumed: 0,
        }
    }

    /// Bytes read up to the end of the last complete line, from where reading started.
    pub fn line_end(&self) -> u64 {
        self.line_end
    }

    /// Bytes read so far, from where reading started (a partial last line included).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The reader underneath.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Append the next line (or the rest of a partial one) to `buf`, keeping at most `max`
    /// bytes of it.
    pub fn read_line(&mut self, buf: &mut Vec<u8>) -> io::Result<ReadLine> {
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                return Ok(ReadLine::Eof {
                    truncated: self.overflowed,
                });
            }
            let (take, found_newline) = match memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let room = self.max.saturating_sub(buf.len());
            self.overflowed |= take > room;
            buf.extend_from_slice(&chunk[..take.min(room)]);
            let used = if found_newline { take + 1 } else { take };
            self.inner.consume(used);
            self.consumed += used as u64;
            if found_newline {
                self.line_end = self.consumed;
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                let truncated = std::mem::take(&mut self.overflowed);
                return Ok(ReadLine::Line { truncated });
            }
        }
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

/// Where lines come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file. `follow`: keep reading as it grows and across rotation (`run`); otherwise stop
    /// at EOF (`replay`).
    File {
        /// The path.
        path: PathBuf,
        /// Follow like `tail -F`.
        follow: bool,
    },
    /// Standard input, to EOF.
    Stdin,
}

/// Settings shared by all sources.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    /// Longest line kept, bytes.
    pub max_line_bytes: usize,
    /// Lines per batch sent downstream.
    pub batch_size: usize,
    /// How often a followed file is polled at EOF.
    pub poll_interval: Duration,
}

/// Why a source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

impl SourceError {
    /// Bounded code.
    pub fn code(&self) -> &'static str {
        "io"
    }
}

/// Collects lines into batches and sends them; `false` when the receiver is gone.
struct Batcher<'a> {
    kind: SourceKind,
    batch: Vec<RawLine>,
    size: usize,
    tx: &'a mpsc::Sender<Vec<RawLine>>,
    /// A followed file's acknowledgement path: told each batch's end position before it is
    /// sent.
    checkpoints: Option<&'a FileCheckpoints>,
    /// Where the last line pushed ends (followed files).
    end: Option<FilePosition>,
}

impl<'a> Batcher<'a> {
    fn new(kind: SourceKind, size: usize, tx: &'a mpsc::Sender<Vec<RawLine>>) -> Self {
        Batcher {
            kind,
            batch: Vec::with_capacity(size),
            size,
            tx,
            checkpoints: None,
            end: None,
        }
    }
    fn push(&mut self, bytes: Vec<u8>, truncated: bool) -> bool {
        self.batch.push(RawLine {
            source: self.kind,
            bytes,
            truncated,
        });
        if self.batch.len() >= self.size {
            return self.flush();
        }
        true
    }
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        // Noted before sending: detection may acknowledge the batch before `send` returns.
        if let (Some(checkpoints), Some(end)) = (self.checkpoints, self.end) {
            checkpoints.sent(end);
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.size));
        self.tx.blocking_send(batch).is_ok()
    }
}

impl Source {
    /// Read until EOF (or forever when following, until `stop` is set), sending batches.
    /// Blocking: run it on its own thread.
    pub fn run(
        &self,
        limits: SourceLimits,
        tx: &mpsc::Sender<Vec<RawLine>>,
        stop: &AtomicBool,
    ) -> Result<u64, SourceError> {
        match self {
            Source::Stdin => {
                let stdin = io::stdin().lock();
                read_to_eof(SourceKind::Stdin, stdin, limits, tx, stop).map_err(|e| {
                    SourceError::Io {
                        path: "-".into(),
                        source: e,
                    }
                })
            }
            Source::File {
                path,
                follow: false,
            } => {
                let file = open(path)?;
                read_to_eof(
                    SourceKind::File,
                    BufReader::with_capacity(1 << 16, file),
                    limits,
                    tx,
                    stop,
                )
                .map_err(|e| io_error(path, e))
            }
            Source::File { path, follow: true } => file::follow(path, limits, tx, stop, None),
        }
    }

    /// Start on a dedicated thread; the handle yields the number of lines read.
    pub fn spawn(
        self,
        limits: SourceLimits,
        tx: mpsc::Sender<Vec<RawLine>>,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<Result<u64, SourceError>> {
        std::thread::Builder::new()
            .name("tokenwatch-source".into())
            .spawn(move || self.run(limits, &tx, &stop))
            .unwrap_or_else(|e| panic!("cannot spawn source thread: {e}"))
    }
}

/// Follow `path` on a dedicated thread (`run`), resuming where the last run stopped and
/// noting each batch's end in `checkpoints` (detection acknowledges them:
/// [`FileCheckpoints::published`]). Without `checkpoints`, from the file's start.
pub fn spawn_follow(
    path: PathBuf,
    limits: SourceLimits,
    tx: mpsc::Sender<Vec<RawLine>>,
    stop: Arc<AtomicBool>,
    checkpoints: Option<Arc<FileCheckpoints>>,
) -> std::thread::JoinHandle<Result<u64, SourceError>> {
    std::thread::Builder::new()
        .name("tokenwatch-source".into())
        .spawn(move || file::follow(&path, limits, &tx, &stop, checkpoints.as_deref()))
        .unwrap_or_else(|e| panic!("cannot spawn source thread: {e}"))
}

fn open(path: &Path) -> Result<File, SourceError> {
    File::open(path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: io::Error) -> SourceError {
    SourceError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_to_eof<R: BufRead>(
    kind: SourceKind,
    reader: R,
    limits: SourceLimits,
    tx: &mpsc::Sender<Vec<RawLine>>,
    stop: &AtomicBool,
) -> io::Result<u64> {
    let mut reader = LineReader::new(reader, limits.max_line_bytes);
    let mut batcher = Batcher::new(kind, limits.batch_size, tx);
    let mut lines = 0u64;
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut buf)? {
            ReadLine::Line { truncated } => {
                lines += 1;
                if !batcher.push(std::mem::take(&mut buf), truncated) {
                    return Ok(lines);
                }
            }
            ReadLine::Eof { truncated } => {
                if !buf.is_empty() || truncated {
                    lines += 1;
                    batcher.push(std::mem::take(&mut buf), truncated);
                }
                break;
            }
        }
    }
    batcher.flush();
    Ok(lines)
}

/// Read a whole input (a path, or `-` for stdin) to EOF on a background thread: for `replay`.
pub fn read_all(
    input: &str,
    limits: SourceLimits,
) -> (
    mpsc::Receiver<Vec<RawLine>>,
    std::thread::JoinHandle<Result<u64, SourceError>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let source = if input == "-" {
        Source::Stdin
    } else {
        Source::File {
            path: PathBuf::from(input),
            follow: false,
        }
    };
    let handle = source.spawn(limits, tx, Arc::new(AtomicBool::new(false)));
    (rx, handle)
}

/// Drain a reader into capped lines (tests and the HTTP ingest body).
pub fn split_lines(kind: SourceKind, body: &[u8], max_line_bytes: usize) -> Vec<RawLine> {
    let mut reader = LineReader::new(body, max_line_bytes);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_line(&mut buf) {
            Ok(ReadLine::Line { truncated }) => {
                if !buf.is_empty() || truncated {
                    out.push(RawLine {
                        source: kind,
                        bytes: std::mem::take(&mut buf),
                        truncated,
                    });
                }
            }
            Ok(ReadLine::Eof { truncated }) => {
                if !buf.is_empty() || truncated {
                    out.push(RawLine {
                        source: kind,
                        bytes: std::mem::take(&mut buf),
                        truncated,
                    });
                }
                break;
            }
            Err(_) => break, // reading a slice cannot fail
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_are_split_and_capped_table() {
        type Case<'a> = (&'a [u8], usize, &'a [(&'a [u8], bool)]);
        let cases: &[Case] = &[
            (b"a\nbb\n", 8, &[(b"a", false), (b"bb", false)]),
            (b"a\r\nb", 8, &[(b"a", false), (b"b", false)]),
            (b"0123456789\nok\n", 4, &[(b"0123", true), (b"ok", false)]),
            (b"\n\nx\n", 4, &[(b"x", false)]),
            (b"0123456789", 4, &[(b"0123", true)]),
        ];
        for (input, cap, want) in cases {
            let got = split_lines(SourceKind::Stdin, input, *cap);
            let got: Vec<(&[u8], bool)> = got
                .iter()
                .map(|l| (l.bytes.as_slice(), l.truncated))
                .collect();
            assert_eq!(&got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_huge_line_never_holds_more_than_the_cap() {
        let mut input = vec![b'x'; 3 << 20];
        input.extend_from_slice(b"\nafter\n");
        let mut reader = LineReader::new(BufReader::with_capacity(1024, input.as_slice()), 1000);
        let mut buf = Vec::new();
        assert_eq!(
            reader.read_line(&mut buf).unwrap(),
            ReadLine::Line { truncated: true }
        );
        assert_eq!(buf.len(), 1000);
        assert!(
            buf.capacity() < 1 << 20,
            "buffer grew to {}",
            buf.capacity()
        );
        buf.clear();
        assert_eq!(
            reader.read_line(&mut buf).unwrap(),
            ReadLine::Line { truncated: false }
        );
        assert_eq!(buf, b"after");
    }

    fn limits() -> SourceLimits {
        SourceLimits {
            max_line_bytes: 1024,
            batch_size: 2,
            poll_interval: Duration::from_millis(20),
        }
    }

    fn recv_lines(rx: &mut mpsc::Receiver<Vec<RawLine>>, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.len() < n && std::time::Instant::now() < deadline {
            match rx.try_recv() {
                Ok(batch) => out.extend(
                    batch
                        .into_iter()
                        .map(|l| String::from_utf8(l.bytes).unwrap()),
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        out
    }

    #[test]
    fn follow_reads_appends_across_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Source::File {
            path: path.clone(),
            follow: true,
        }
        .spawn(limits(), tx, stop.clone());
        assert_eq!(recv_lines(&mut rx, 2), ["one", "two"]);

        // Append, including a line written in two parts.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"thr").unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(80));
        f.write_all(b"ee\n").unwrap();
        assert_eq!(recv_lines(&mut rx, 1), ["three"]);

        // Rotate: rename away, create anew (logrotate's default).
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        f.write_all(b"late-in-old\n").unwrap();
        std::thread::sleep(Duration::from_millis(60));
        std::fs::write(&path, "four\n").unwrap();
        assert_eq!(recv_lines(&mut rx, 2), ["late-in-old", "four"]);

        // copytruncate: the file shrinks under us.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"five\n").unwrap();
        assert_eq!(recv_lines(&mut rx, 1), ["five"]);

        stop.store(true, Ordering::Relaxed);
        assert!(handle.join().unwrap().unwrap() >= 6);
    }

    #[test]
    fn read_all_delivers_every_line_including_an_unterminated_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "a\nb\nc").unwrap();
        let (mut rx, handle) = read_all(path.to_str().unwrap(), limits());
        let mut got = Vec::new();
        while let Some(batch) = rx.blocking_recv() {
            got.extend(
                batch
                    .into_iter()
                    .map(|l| String::from_utf8(l.bytes).unwrap()),
            );
        }
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(handle.join().unwrap().unwrap(), 3);
    }
}
