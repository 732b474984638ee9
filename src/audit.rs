//! The audit trail (issue 17): every decision `run` makes, as the decision record `replay`
//! writes (DESIGN §5), and every admin action (`"type":"admin"`: revoke, un-revoke,
//! allowlist, with time, route, outcome and the admin key's id), as JSON lines to stdout
//! and/or a size-rotated file (`[audit]`).
//!
//! Where it sits: beside `publish` and the admin API. `app` builds one [`AuditLog`] for `run`;
//! the publisher writes decision records into [`AuditLog::decision_sink`], the admin routes
//! call [`AuditLog::admin`]. A writer thread of its own does the I/O.
//!
//! Invariants:
//! - Off the hot path: records are handed over through a bounded queue (`audit.queue`) with
//!   `try_send`. When the writer lags and the queue is full, the record is dropped and counted
//!   (`tokenwatch_audit_dropped_total{kind}`): detection and the API never wait for the audit
//!   file.
//! - Rotation by size: before a record would take the file past `audit.max_bytes`, the file is
//!   renamed `<path>.1` (older ones shift to `.2` … `.<keep>`, the oldest is removed) and a
//!   fresh one started. A single record larger than the limit is still written whole.
//! - No secret in any record: decision records carry fingerprints and claims, never a token
//!   (the publisher's record type has none); admin records carry the admin key's id — the first
//!   8 hex characters of its SHA-256 — never the key, and a denylist key only once it parsed
//!   as one (a mistyped path that might be a raw token is not recorded).
//! - Written lines are flushed whenever the queue runs empty, so a record is in the file a
//!   moment after it was made; there is no fsync per record.
//!
//! It does NOT: decide what is recorded (the callers do), sign or chain records, or ship them
//! anywhere (a log shipper tails the file).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, Opts};

use crate::config::AuditConfig;
use crate::metrics::Metrics;

/// Largest decision record accepted from the publisher, bytes (a record is a few KiB at most;
/// this only bounds the line being assembled).
const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The audit trail could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened.
    #[error("audit.path: cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

impl AuditError {
    /// Bounded code.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Open { .. } => "open",
            AuditError::Thread(_) => "thread",
        }
    }
}

/// Which kind of record (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A decision record.
    Decision,
    /// An admin action.
    Admin,
}

impl RecordKind {
    fn label(self) -> &'static str {
        match self {
            RecordKind::Decision => "decision",
            RecordKind::Admin => "admin",
        }
    }
}

enum Message {
    Line(Vec<u8>),
    /// Flush, then say so.
    Flush(SyncSender<()>),
}

/// An admin action as recorded (`"type":"admin"`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminRecord {
    /// Always `"admin"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When (wall clock, RFC 3339).
    pub time: String,
    /// Method and route template, e.g. `POST /v1/revoke`.
    pub route: &'static str,
    /// `revoke`, `unrevoke` or `allowlist`.
    pub action: &'static str,
    /// The denylist key acted on, when the request named a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `ok`, or the error code answered.
    pub outcome: String,
    /// HTTP status answered.
    pub status: u16,
    /// The admin key's id: first 8 hex characters of its SHA-256.
    pub admin_key_id: String,
    /// The reason given, for revocations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Until when the entry holds, for revocations (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// For un-revocations: whether an entry was there to remove.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
}

/// The id of an API key as it may be shown and logged: the first 8 hex characters of its
/// SHA-256. Names which key acted without letting anyone use it.
pub fn key_id(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    hex::encode(&digest.as_ref()[..4])
}

/// The audit trail: a bounded queue in front of a writer thread.
pub struct AuditLog {
    tx: SyncSender<Message>,
    dropped: IntCounterVec,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// Start the writer for `config`; `None` when `audit.output = "off"`. Opens (creates) the
    /// file at once, so a bad path fails at start, not at the first record.
    pub fn start(config: &AuditConfig, metrics: &Metrics) -> Result<Option<Arc<Self>>, AuditError> {
        if !(config.output.stdout() || config.output.file()) {
            return Ok(None);
        }
        let file = match (&config.output.file(), &config.path) {
            (true, Some(path)) => Some(RotatingFile::open(
                path.clone(),
                config.max_bytes,
                config.keep,
            )?),
            _ => None,
        };
        let dropped = IntCounterVec::new(
            Opts::new(
                "tokenwatch_audit_dropped_total",
                "Audit records dropped because the audit writer lagged (queue full)",
            ),
            &["kind"],
        )
        .unwrap_or_else(|e| panic!("audit metric definition: {e}"));
        let write_errors = IntCounter::new(
            "tokenwatch_audit_write_errors_total",
            "Audit records that could not be written (I/O errors)",
        )
        .unwrap_or_else(|e| panic!("audit metric definition: {e}"));
        for kind in [RecordKind::Decision, RecordKind::Admin] {
            dropped.with_label_values(&[kind.label()]);
        }
        // A second log in one process (tests) keeps counting on its own counters.
        let _ = metrics.register(Box::new(dropped.clone()));
        let _ = metrics.register(Box::new(write_errors.clone()));
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let mut writer = Writer {
            file,
            stdout: config.output.stdout(),
            write_errors,
            last_error_log: None,
        };
        let handle = std::thread::Builder::new()
            .name("tokenwatch-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(AuditError::Thread)?;
        Ok(Some(Arc::new(AuditLog {
            tx,
            dropped,
            writer: Mutex::new(Some(handle)),
        })))
    }

    /// Queue one line (with its newline); dropped and counted when the queue is full.
    fn submit(&self, kind: RecordKind, line: Vec<u8>) {
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.with_label_values(&[kind.label()]).inc();
            }
        }
    }

    /// Record an admin action: to the audit output (if any) by the caller holding an
    /// `AuditLog`; the INFO line is [`log_admin`]'s.
    pub fn admin(&self, record: &AdminRecord) {
        match serde_json::to_vec(record) {
            Ok(mut line) => {
                line.push(b'\n');
                self.submit(RecordKind::Admin, line);
            }
            Err(_) => self.dropped.with_label_values(&["admin"]).inc(),
        }
    }

    /// A `Write` for [`Publisher::with_sink`](crate::publish::Publisher::with_sink): the
    /// publisher's JSON lines, each queued as one decision record.
    pub fn decision_sink(self: &Arc<Self>) -> Box<dyn Write + Send> {
        Box::new(DecisionLines {
            log: self.clone(),
            pending: Vec::new(),
            oversized: false,
        })
    }

    /// Records dropped so far (both kinds).
    pub fn dropped(&self) -> u64 {
        [RecordKind::Decision, RecordKind::Admin]
            .iter()
            .map(|k| self.dropped.with_label_values(&[k.label()]).get())
            .sum()
    }

    /// Wait (at most `timeout`) until every record queued so far is written and flushed.
    /// Returns false on timeout. Called at shutdown, after detection drained.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
        let mut message = Message::Flush(ack_tx);
        loop {
            match self.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Whether the writer thread is still running (tests).
    pub fn is_running(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }
}

/// The INFO log line of an admin action (always written, with or without an audit output).
pub fn log_admin(record: &AdminRecord) {
    tracing::info!(
        target: "tokenwatch::audit",
        route = record.route,
        action = record.action,
        key = record.key.as_deref().unwrap_or("-"),
        outcome = %record.outcome,
        status = record.status,
        admin_key_id = %record.admin_key_id,
        "admin action"
    );
}

/// Splits the publisher's writes into lines, one queued record each.
struct DecisionLines {
    log: Arc<AuditLog>,
    pending: Vec<u8>,
    /// The line being assembled passed [`MAX_RECORD_BYTES`]: drop it up to its newline.
    oversized: bool,
}

impl Write for DecisionLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    if !self.oversized {
                        self.pending.extend_from_slice(&rest[..=end]);
                        let line = std::mem::take(&mut self.pending);
                        self.log.submit(RecordKind::Decision, line);
                    } else {
                        self.log.dropped.with_label_values(&["decision"]).inc();
                    }
                    self.pending.clear();
                    self.oversized = false;
                    rest = &rest[end + 1..];
                }
                None => {
                    if !self.oversized {
                        self.pending.extend_from_slice(rest);
                        if self.pending.len() > MAX_RECORD_BYTES {
                            self.pending = Vec::new();
                            self.oversized = true;
                        }
                    }
                    rest = &[];
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Records are flushed by the writer thread when its queue runs empty.
        Ok(())
    }
}

/// The writer thread's side.
struct Writer {
    file: Option<RotatingFile>,
    stdout: bool,
    write_errors: IntCounter,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Message>) {
        loop {
            // Block for the next record; flush whenever the queue runs empty.
            let message = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.handle(message);
            while let Ok(message) = rx.try_recv() {
                self.handle(message);
            }
            self.flush();
        }
        self.flush();
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Line(line) => {
                if let Some(file) = &mut self.file
                    && let Err(error) = file.write_line(&line)
                {
                    self.failed("file", &error);
                }
                if self.stdout {
                    let mut out = std::io::stdout().lock();
                    if let Err(error) = out.write_all(&line) {
                        self.failed("stdout", &error);
                    }
                }
            }
            Message::Flush(ack) => {
                self.flush();
                let _ = ack.try_send(());
            }
        }
    }

    fn flush(&mut self) {
        if let Some(file) = &mut self.file
            && let Err(error) = file.flush()
        {
            self.failed("file", &error);
        }
        if self.stdout
            && let Err(error) = std::io::stdout().lock().flush()
        {
            self.failed("stdout", &error);
        }
    }

    /// Count the failure; log at most once a minute.
    fn failed(&mut self, output: &'static str, error: &std::io::Error) {
        self.write_errors.inc();
        if self
            .last_error_log
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            self.last_error_log = Some(Instant::now());
            tracing::error!(output, %error, "audit record could not be written");
        }
    }
}

/// A JSON-lines file rotated by size: `<path>`, `<path>.1` (newest rotated) … `<path>.<keep>`.
struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path).map_err(|source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    })
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: u64, keep: usize) -> Result<Self, AuditError> {
        let file = open_append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile {
            path,
            file: BufWriter::new(file),
            size,
            max_bytes,
            keep,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    /// Shift `<path>.N` to `.N+1` (the oldest beyond `keep` removed), `<path>` to `.1`, and
    /// start a fresh `<path>`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, self.keep));
            for n in (1..self.keep).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        let file = open_append(&self.path).map_err(|e| match e {
            AuditError::Open { source, .. } => source,
            AuditError::Thread(source) => source,
        })?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuditOutput;

    fn config(dir: &Path, max_bytes: u64, keep: usize) -> AuditConfig {
        AuditConfig {
            output: AuditOutput::File,
            path: Some(dir.join("audit.jsonl")),
            max_bytes,
            keep,
            queue: 1024,
        }
    }

    #[test]
    fn key_ids_are_short_stable_and_not_the_key() {
        let id = key_id("admin-key-0123456789");
        assert_eq!(id.len(), 8);
        assert_eq!(id, key_id("admin-key-0123456789"));
        assert_ne!(id, key_id("admin-key-0123456788"));
        assert!(!"admin-key-0123456789".contains(&id));
    }

    #[test]
    fn decision_lines_are_split_and_files_rotate_keeping_n() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Metrics::new();
        let log = AuditLog::start(&config(dir.path(), 4096, 2), &metrics)
            .expect("started")
            .expect("on");
        let mut sink = log.decision_sink();
        let record = format!("{{\"action\":\"flag\",\"pad\":\"{}\"}}\n", "x".repeat(1000));
        for _ in 0..20 {
            // Written in pieces, as serde_json does.
            let (a, b) = record.as_bytes().split_at(7);
            sink.write_all(a).expect("write");
            sink.write_all(b).expect("write");
        }
        assert!(log.flush(Duration::from_secs(10)), "flushed");
        let path = dir.path().join("audit.jsonl");
        for file in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            let text = std::fs::read_to_string(&file).expect("file exists");
            assert!(
                text.len() as u64 <= 4096,
                "{}: {}",
                file.display(),
                text.len()
            );
            for line in text.lines() {
                assert_eq!(format!("{line}\n"), record, "whole records only");
            }
        }
        assert!(!rotated(&path, 3).exists(), "only keep = 2 rotated files");
        assert_eq!(log.dropped(), 0);
        let text = metrics.render();
        assert!(
            text.contains("tokenwatch_audit_dropped_total{kind=\"decision\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer that never drains: the queue holds one record, the rest are dropped.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let dropped = IntCounterVec::new(Opts::new("d", "d"), &["kind"]).expect("metric");
        let log = AuditLog {
            tx,
            dropped,
            writer: Mutex::new(None),
        };
        let record = AdminRecord {
            kind: "admin",
            time: "2026-01-01T00:00:00Z".into(),
            route: "POST /v1/revoke",
            action: "revoke",
            key: None,
            outcome: "ok".into(),
            status: 200,
            admin_key_id: key_id("k"),
            reason: None,
            expires_at: None,
            removed: None,
        };
        for _ in 0..10 {
            log.admin(&record);
        }
        assert_eq!(log.dropped(), 9);
        let Ok(Message::Line(line)) = rx.try_recv() else {
            panic!("one record queued")
        };
        let value: serde_json::Value = serde_json::from_slice(&line).expect("JSON line");
        assert_eq!(value["type"], "admin");
        assert!(!log.flush(Duration::from_millis(50)), "nobody acknowledges");
    }
}
