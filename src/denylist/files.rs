//! The files beside the journal (its lock, its marker, the evidence kept before it is
//! replaced) and the helpers that name, write and sync them.
//!
//! | file | what |
//! |---|---|
//! | `<journal>.lock` | held with an exclusive OS advisory lock (`flock`) for the life of the process that opened the journal; holds that process's pid |
//! | `<journal>.created` | written once the journal first exists: a journal missing beside it was lost, not never made |
//! | `<journal>.compact-tmp` | a rewrite in progress (`journal.rs`); removed when it fails |
//! | `<journal>.torn-<unix seconds>` | the bytes of a torn final record, cut at startup |
//! | `<journal>.v1.bak` | the format-1 file, as it was before its rewrite as format 2 |
//! | `<journal>.damaged-<unix seconds>` | the file as it was before `journal-repair` |
//!
//! A name already taken gets `.1`, `.2`, … appended: nothing here overwrites a kept file.
//!
//! Invariants:
//! - At most one process has the journal open: [`JournalLock::acquire`] takes the lock with
//!   `try_lock` (never waits) before the journal is read, and the lock is released only when the
//!   owning [`Denylist`](super::Denylist) (or repair) drops it, or the process dies.
//! - The lock file is never deleted: deleting it would let a second process lock a new inode
//!   while the first still holds the old one.
//! - Every file kept as evidence is durable (file and folder fsynced) before the caller goes on
//!   to replace the journal; a side file that could not be written whole is removed.
//!
//! It does NOT: delete or rotate kept files (the operator does), lock across machines (an advisory lock on a network file system is only as good
//! as that file system's locking), or stop a process that ignores the lock (an older tokenwatch).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::folder_of;

use super::DenylistError;

/// `path` with `suffix` appended to its file name (`deny.journal` → `deny.journal.lock`).
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
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

/// Fsync a folder, so the names created, renamed or removed in it are durable.
pub(super) fn sync_folder(dir: &Path) -> Result<(), DenylistError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "fsync the folder of"))
}

/// `<path><suffix>`, or `<path><suffix>.1`, `.2`, … if that name is taken.
pub(super) fn unused_sibling(path: &Path, suffix: &str) -> PathBuf {
    let first = sibling(path, suffix);
    if !first.exists() {
        return first;
    }
    (1u32..)
        .map(|n| sibling(path, &format!("{suffix}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Seconds since the Unix epoch, for naming side files.
pub(super) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Keep the file at `path` as it is now under `<path><suffix>` (a hard link, which costs no
/// space and works on a full disk; a copy where links are not supported), durably. Returns
/// the new name. Safe only because nothing appends to `path` afterwards: the caller replaces
/// it by rename.
pub(super) fn keep_copy(path: &Path, suffix: &str) -> Result<PathBuf, DenylistError> {
    let dest = unused_sibling(path, suffix);
    if std::fs::hard_link(path, &dest).is_err() {
        std::fs::copy(path, &dest).map_err(io_error(&dest, "copy the journal to"))?;
        File::open(&dest)
            .and_then(|f| f.sync_all())
            .map_err(io_error(&dest, "fsync"))?;
    }
    sync_folder(folder_of(path))?;
    Ok(dest)
}

/// Write `bytes` to a new file `<path><suffix>` (never overwriting one), durably. Returns its
/// name.
pub(super) fn write_side_file(
    path: &Path,
    suffix: &str,
    bytes: &[u8],
) -> Result<PathBuf, DenylistError> {
    let dest = unused_sibling(path, suffix);
    let written = private_options()
        .write(true)
        .create_new(true)
        .open(&dest)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
    if let Err(error) = written {
        // A half-written side file would pass for evidence; remove it.
        let _ = std::fs::remove_file(&dest);
        return Err(io_error(&dest, "write")(error));
    }
    sync_folder(folder_of(path))?;
    Ok(dest)
}

/// `<journal>.created`: written once the journal first exists, so a journal that disappears
/// later is noticed instead of silently replaced by an empty one.
pub(super) fn marker_path(journal: &Path) -> PathBuf {
    sibling(journal, ".created")
}

/// Write the marker if it is missing (durably). Returns whether it had to be written.
pub(super) fn ensure_marker(journal: &Path) -> Result<bool, DenylistError> {
    let marker = marker_path(journal);
    if marker.exists() {
        return Ok(false);
    }
    let text = format!(
        "tokenwatch created the denylist journal {} here (unix time {}).\n\
         While this file exists, tokenwatch refuses to start if that journal is missing:\n\
         restore it, or run `tokenwatch journal-repair` to start an empty one deliberately.\n",
        journal
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        unix_seconds()
    );
    write_side_file(journal, ".created", text.as_bytes())?;
    Ok(true)
}
