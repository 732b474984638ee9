//! Stage 1, source (followed file): where `run` stopped reading, so a restart resumes there
//! instead of reading the log again from byte 0 (issue 17).
//!
//! The file source records, for every batch it sends to detection, the position just past its
//! last line ([`FilePosition`]: the file's identity and a byte offset). Detection reports back
//! once that batch's decisions are published ([`FileCheckpoints::published`]); only then does
//! the position become the one saved, in `<state folder>/input.position` (the folder of
//! `denylist.journal`), by writing a temporary file and renaming it over the old one. So the
//! saved position never passes a line whose decisions were not handed on: at-least-once, as
//! the Kafka source commits offsets. A restart may repeat the lines of the last second (the
//! position is saved at most once a second, and at once after a batch that decided
//! something), never skip one.
//!
//! A file's identity is its device and inode plus a short hash of its first bytes
//! ([`HEAD_BYTES`]): an inode freed by a deleted log and reused by a new one, or a file
//! truncated and rewritten in place (copytruncate), keeps its inode but not its head.
//!
//! What this module does not do: read the log, decide where to start (`source/file.rs` does,
//! from [`FileCheckpoints::resume_point`]), or keep detection state (sessions are rebuilt
//! from the lines read after the restart; README "Restarts and state").

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Bytes at the start of a file hashed into its identity.
pub const HEAD_BYTES: u64 = 256;

/// How often a position that moved is saved when no batch decided anything.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The file name of the saved position inside the state folder.
pub const POSITION_FILE: &str = "input.position";

/// Which file: device, inode and the hash of its first `head_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// How many bytes `head` hashes (fewer than [`HEAD_BYTES`] while the file is shorter).
    pub head_len: u64,
    /// The first 8 bytes of SHA-256 over the head.
    pub head: u64,
}

impl FileIdentity {
    /// The identity of an open file, hashing up to [`HEAD_BYTES`] of it.
    pub fn of(file: &File) -> io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        let (head_len, head) = head_hash(file, HEAD_BYTES.min(meta.len()))?;
        Ok(FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            head_len,
            head,
        })
    }

    /// Hash more of the head if the file has grown since (the identity of a file opened while
    /// empty would otherwise say nothing about its content).
    pub fn refresh_head(&mut self, file: &File, file_len: u64) -> io::Result<()> {
        if self.head_len < HEAD_BYTES && file_len > self.head_len {
            (self.head_len, self.head) = head_hash(file, HEAD_BYTES.min(file_len))?;
        }
        Ok(())
    }

    /// Whether `file` is this file: same device and inode, and the same first `head_len`
    /// bytes (an inode reused by another file, or a file truncated and rewritten, is not).
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        if meta.dev() != self.dev || meta.ino() != self.ino || meta.len() < self.head_len {
            return Ok(false);
        }
        let (len, head) = head_hash(file, self.head_len)?;
        Ok(len == self.head_len && head == self.head)
    }
}

/// SHA-256 (first 8 bytes) of the first `len` bytes of `file`; returns how many it could read.
fn head_hash(file: &File, len: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; usize::try_from(len.min(HEAD_BYTES)).unwrap_or(0)];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &buf[..filled]);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    Ok((filled as u64, u64::from_be_bytes(first)))
}

/// Where reading stopped: just past the last line of a batch, in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePosition {
    /// The file.
    pub identity: FileIdentity,
    /// Bytes from its start, at a line boundary.
    pub offset: u64,
}

/// The saved form (`input.position`), readable by a person on call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    /// `input.path` when it was saved: a position of another log is not resumed.
    path: PathBuf,
    dev: u64,
    ino: u64,
    head_len: u64,
    /// Hex.
    head_sha256: String,
    offset: u64,
}

/// Why the saved position could not be used or written.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The position file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a saved position.
    #[error("{path}: not a saved input position: {reason}")]
    Invalid {
        /// The position file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl PositionError {
    /// Bounded code.
    pub fn code(&self) -> &'static str {
        match self {
            PositionError::Io { .. } => "io",
            PositionError::Invalid { .. } => "invalid",
        }
    }
}

/// The saved position of one followed file, in the state folder.
#[derive(Debug, Clone)]
pub struct PositionStore {
    /// `<state folder>/input.position`.
    file: PathBuf,
    /// The followed path (`input.path`).
    input: PathBuf,
}

impl PositionStore {
    /// The store for `input` in `state_dir`.
    pub fn new(state_dir: &Path, input: &Path) -> PositionStore {
        PositionStore {
            file: state_dir.join(POSITION_FILE),
            input: input.to_path_buf(),
        }
    }

    /// The position file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn io(&self, source: io::Error) -> PositionError {
        PositionError::Io {
            path: self.file.display().to_string(),
            source,
        }
    }

    /// The saved position of this input; `None` when there is none or it names another path.
    pub fn load(&self) -> Result<Option<FilePosition>, PositionError> {
        let text = match std::fs::read(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let invalid = |reason: String| PositionError::Invalid {
            path: self.file.display().to_string(),
            reason,
        };
        // A position file is ~200 bytes; anything large is not one.
        if text.len() > 64 * 1024 {
            return Err(invalid("larger than 64 KiB".into()));
        }
        let saved: Saved = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
        if saved.path != self.input {
            tracing::info!(
                saved = %saved.path.display(),
                input = %self.input.display(),
                "the saved input position is of another file; reading input.path from its start"
            );
            return Ok(None);
        }
        let head = u64::from_str_radix(&saved.head_sha256, 16)
            .map_err(|_| invalid(format!("head_sha256 {:?} is not hex", saved.head_sha256)))?;
        Ok(Some(FilePosition {
            identity: FileIdentity {
                dev: saved.dev,
                ino: saved.ino,
                head_len: saved.head_len.min(HEAD_BYTES),
                head,
            },
            offset: saved.offset,
        }))
    }

    /// Save `position` atomically: a temporary file beside it, fsynced, renamed over it.
    pub fn save(&self, position: &FilePosition) -> Result<(), PositionError> {
        let saved = Saved {
            path: self.input.clone(),
            dev: position.identity.dev,
            ino: position.identity.ino,
            head_len: position.identity.head_len,
            head_sha256: format!("{:016x}", position.identity.head),
            offset: position.offset,
        };
        let dir = self.file.parent().unwrap_or(Path::new("."));
        let mut text = serde_json::to_vec_pretty(&saved).map_err(|e| self.io(e.into()))?;
        text.push(b'\n');
        // One writer per state folder (the journal's lock), so a fixed temporary name is safe.
        let temp = dir.join(format!(".{POSITION_FILE}.tmp"));
        let written = File::create(&temp).and_then(|mut file| {
            file.write_all(&text)?;
            file.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&temp, &self.file)) {
            let _ = std::fs::remove_file(&temp);
            return Err(self.io(e));
        }
        // The rename is durable once the folder is.
        if let Ok(folder) = File::open(dir) {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

/// Positions sent to detection and not yet published, and the latest published one.
#[derive(Debug, Default)]
struct Ledger {
    /// The end of each file batch sent to detection, oldest first.
    in_flight: VecDeque<FilePosition>,
    /// The end of the latest batch whose decisions are published.
    handed_on: Option<FilePosition>,
    /// What the store holds.
    saved: Option<FilePosition>,
    last_save: Option<Instant>,
    /// A batch could not be published: the position stays before it until the next start,
    /// which reads it again.
    held_back: bool,
}

/// The file source's acknowledgement path: the source notes each batch it sends
/// ([`sent`](Self::sent)), detection what it published ([`published`](Self::published)), and
/// the position published is saved (periodically, at once after a decision, and at shutdown).
#[derive(Debug)]
pub struct FileCheckpoints {
    store: PositionStore,
    /// Where the previous run stopped, read once at start.
    resume: Option<FilePosition>,
    ledger: Mutex<Ledger>,
}

impl FileCheckpoints {
    /// Open the store and read where the previous run stopped. An unreadable position is
    /// logged and ignored (the file is then read from its start).
    pub fn open(store: PositionStore) -> FileCheckpoints {
        let resume = match store.load() {
            Ok(resume) => resume,
            Err(error) => {
                tracing::warn!(%error, code = error.code(), "cannot use the saved input position; reading input.path from its start");
                None
            }
        };
        FileCheckpoints {
            store,
            ledger: Mutex::new(Ledger {
                saved: resume,
                ..Ledger::default()
            }),
            resume,
        }
    }

    /// The store.
    pub fn store(&self) -> &PositionStore {
        &self.store
    }

    /// Where the previous run stopped, if it saved a position for this input.
    pub fn resume_point(&self) -> Option<FilePosition> {
        self.resume
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Every update leaves the ledger consistent; a panic elsewhere does not poison it.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The source is about to send a batch ending at `end`.
    pub fn sent(&self, end: FilePosition) {
        self.ledger().in_flight.push_back(end);
    }

    /// Detection handed on the oldest file batch in flight (`ok`), or could not (`!ok`: its
    /// lines are read again at the next start). `decided`: the batch produced decisions,
    /// so its position is saved at once (a restart must not decide them again).
    pub fn published(&self, ok: bool, decided: bool) {
        let mut ledger = self.ledger();
        let Some(end) = ledger.in_flight.pop_front() else {
            return;
        };
        if !ok && !ledger.held_back {
            ledger.held_back = true;
            tracing::warn!(
                "a batch of the followed file could not be published: its position is not \
                 saved past it, so the next start reads it again"
            );
        }
        if !ledger.held_back {
            ledger.handed_on = Some(end);
            if decided {
                self.save_locked(&mut ledger);
            }
        }
    }

    /// Save the handed-on position if it moved and the last save is older than a second.
    pub fn save_if_due(&self) {
        let mut ledger = self.ledger();
        if ledger
            .last_save
            .is_none_or(|last| last.elapsed() >= SAVE_EVERY)
        {
            self.save_locked(&mut ledger);
        }
    }

    /// Save the handed-on position now if it moved (shutdown, after detection drained).
    pub fn flush(&self) {
        let mut ledger = self.ledger();
        self.save_locked(&mut ledger);
    }

    /// The position saved last (tests, logs).
    pub fn saved(&self) -> Option<FilePosition> {
        self.ledger().saved
    }

    fn save_locked(&self, ledger: &mut Ledger) {
        let Some(position) = ledger.handed_on else {
            return;
        };
        if ledger.saved == Some(position) {
            return;
        }
        ledger.last_save = Some(Instant::now());
        match self.store.save(&position) {
            Ok(()) => ledger.saved = Some(position),
            Err(error) => {
                tracing::warn!(%error, code = error.code(), "cannot save the input position; a restart would read again from the last saved one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_of(path: &Path) -> FileIdentity {
        FileIdentity::of(&File::open(path).unwrap()).unwrap()
    }

    #[test]
    fn identity_tells_a_rewritten_file_from_the_same_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "first line\n").unwrap();
        let id = identity_of(&path);
        assert!(id.matches(&File::open(&path).unwrap()).unwrap());
        // Grown: still the same file.
        std::fs::write(&path, "first line\nsecond\n").unwrap();
        assert!(id.matches(&File::open(&path).unwrap()).unwrap());
        // Truncated and rewritten in place: same inode, another head.
        std::fs::write(&path, "other line\n").unwrap();
        assert!(!id.matches(&File::open(&path).unwrap()).unwrap());
        // Shorter than the hashed head.
        std::fs::write(&path, "first").unwrap();
        assert!(!id.matches(&File::open(&path).unwrap()).unwrap());
    }

    #[test]
    fn a_position_round_trips_and_is_of_its_input_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, "x\n").unwrap();
        let store = PositionStore::new(dir.path(), &log);
        assert_eq!(store.load().unwrap(), None);
        let position = FilePosition {
            identity: identity_of(&log),
            offset: 2,
        };
        store.save(&position).unwrap();
        assert_eq!(store.load().unwrap(), Some(position));
        // Another input path: not resumed.
        let other = PositionStore::new(dir.path(), &dir.path().join("b.log"));
        assert_eq!(other.load().unwrap(), None);
        // Garbage is an error (logged by the caller), not a panic.
        std::fs::write(store.file(), "{").unwrap();
        assert!(matches!(store.load(), Err(PositionError::Invalid { .. })));
    }

    #[test]
    fn only_published_positions_are_saved_and_a_failed_batch_holds_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        let identity = identity_of(&log);
        let at = |offset| FilePosition { identity, offset };
        let checkpoints = FileCheckpoints::open(PositionStore::new(dir.path(), &log));
        checkpoints.sent(at(2));
        checkpoints.sent(at(4));
        checkpoints.flush();
        assert_eq!(checkpoints.saved(), None, "nothing published yet");
        checkpoints.published(true, true);
        assert_eq!(checkpoints.saved(), Some(at(2)), "a decision saves at once");
        checkpoints.published(true, false);
        checkpoints.flush();
        assert_eq!(checkpoints.saved(), Some(at(4)));
        checkpoints.sent(at(6));
        checkpoints.sent(at(8));
        checkpoints.published(false, true);
        checkpoints.published(true, true);
        checkpoints.flush();
        assert_eq!(
            checkpoints.saved(),
            Some(at(4)),
            "never past a batch that was not published"
        );
        let reopened = FileCheckpoints::open(PositionStore::new(dir.path(), &log));
        assert_eq!(reopened.resume_point(), Some(at(4)));
    }
}
