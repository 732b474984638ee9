//! The files beside the journal: its lock, and the helpers that name, write and sync them.
//!
//! | file | what |
//! |---|---|
//! | `<journal>.lock` | held with an exclusive OS advisory lock (`flock`) for the life of the process that opened the journal; holds that process's pid |
//!
//! Invariants:
//! - At most one process has the journal open: [`JournalLock::acquire`] takes the lock with
//!   `try_lock` (never waits) before the journal is read, and the lock is released only when the
//!   owning [`Denylist`](super::Denylist) (or repair) drops it, or the process dies.
//! - The lock file is never deleted: deleting it would let a second process lock a new inode
//!   while the first still holds the old one.
//!
//! It does NOT: lock across machines (an advisory lock on a network file system is only as good
//! as that file system's locking), or stop a process that ignores the lock (an older tokenwatch).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::DenylistError;

/// `path` with `suffix` appended to its file name (`deny.journal` → `deny.journal.lock`).
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The folder holding `path` (`.` for a bare file name).
pub(super) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An [`DenylistError::Io`] builder for `map_err`.
pub(super) fn io_error(
    path: &Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> DenylistError {
    let path = path.to_path_buf();
    move |source| DenylistError::Io {
        path,
        action,
        source,
    }
}

/// Options for a new file readable by the daemon's user only (keys name users and sessions).
pub(super) fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// The exclusive lock on a journal, held while this value lives.
#[derive(Debug)]
pub(super) struct JournalLock {
    // Closing the file releases the lock.
    _file: File,
    path: PathBuf,
}

impl JournalLock {
    /// Lock `<journal>.lock` (created if missing) and write this process's pid into it, or fail
    /// with [`DenylistError::Locked`] naming the pid written by the process that holds it.
    pub(super) fn acquire(journal: &Path) -> Result<JournalLock, DenylistError> {
        let path = sibling(journal, ".lock");
        let mut file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path, "open the lock file"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder writes its pid right after locking; it may not have yet.
                let _ = file.read_to_string(&mut text);
                return Err(DenylistError::Locked {
                    journal: journal.to_path_buf(),
                    lock: path,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error(&path, "lock")(e));
            }
        }
        // The pid is for people and for the next instance's error message; failing to write it
        // (a full disk) does not weaken the lock.
        let pid = format!("{}\n", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()));
        if let Err(error) = written {
            tracing::warn!(lock = %path.display(), %error, "could not write the pid into the journal lock file");
        }
        Ok(JournalLock { _file: file, path })
    }

    /// The lock file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}
