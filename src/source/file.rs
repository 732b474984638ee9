//! Stage 1, source (followed file): `tokenwatch run` following `input.path` like `tail -F`.
//!
//! - **At once**: the file's folder is watched with inotify (the `notify` crate), so a line
//!   written is read as soon as the kernel reports the write, not at the next poll. Polling
//!   every `input.poll_interval` stays as the safety net (a watcher that cannot start, a
//!   filesystem that reports nothing, such as NFS) and catches what an event could miss.
//! - **Across rotation**: when the path names another file (rename and create, logrotate's
//!   default) the old file is read to its end first, then the new one from its start; when the
//!   file shrinks (copytruncate) it is read again from its start.
//! - **Across restarts**: with [`FileCheckpoints`], every batch's end position goes to
//!   detection's acknowledgement path and the published one is saved in the state folder
//!   (`source/position.rs`). At start the saved position is resumed: the same file → from the
//!   saved offset; a file rotated while tokenwatch was down and still in the same folder
//!   (found by its inode and head hash, e.g. `access.log.1`) → finished from the saved offset,
//!   then the current file from its start; a file truncated since → from its start.
//!
//! Blocking I/O on the source's own thread. It does not parse or know what a line means; a
//! partial last line is held back (it may still be written) until its newline comes or the
//! file is rotated away.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::position::{FileCheckpoints, FileIdentity, FilePosition};
use super::{Batcher, LineReader, ReadLine, SourceError, SourceLimits, io_error};
use crate::config::folder_of;
use crate::event::{RawLine, SourceKind};

/// Longest a wait lasts before `stop` is looked at again.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Most folder entries looked at when searching for a file rotated while tokenwatch was down.
const MAX_ROTATION_SCAN: usize = 10_000;

/// One file being read.
struct OpenFile {
    reader: LineReader<BufReader<File>>,
    identity: FileIdentity,
    /// Offset reading started at (the resumed position, else 0).
    start: u64,
    /// A file rotated away while tokenwatch was down: read to its end, then the path.
    finishing: bool,
}

impl OpenFile {
    fn new(file: File, start: u64, finishing: bool, max_line_bytes: usize) -> io::Result<Self> {
        let identity = FileIdentity::of(&file)?;
        let mut file = file;
        file.seek(SeekFrom::Start(start))?;
        Ok(OpenFile {
            reader: LineReader::new(BufReader::with_capacity(1 << 16, file), max_line_bytes),
            identity,
            start,
            finishing,
        })
    }

    /// Just past the last complete line read.
    fn line_end(&self) -> FilePosition {
        FilePosition {
            identity: self.identity,
            offset: self.start + self.reader.line_end(),
        }
    }

    /// Just past everything read (a partial last line included).
    fn read_end(&self) -> FilePosition {
        FilePosition {
            identity: self.identity,
            offset: self.start + self.reader.consumed(),
        }
    }
}

/// Where to start reading after a restart.
enum Start {
    /// The path's file, from this offset.
    At(u64),
    /// First this file (the one the saved position is of, rotated away) from this offset.
    Rotated(File, u64),
}

/// Decide where to start from the saved position and the file now at the path.
fn resume(path: &Path, current: &File, saved: Option<FilePosition>) -> io::Result<Start> {
    let Some(saved) = saved else {
        return Ok(Start::At(0));
    };
    if saved.identity.matches(current)? {
        let len = current.metadata()?.len();
        if len >= saved.offset {
            tracing::info!(path = %path.display(), offset = saved.offset, "resuming the input file where the last run stopped");
            return Ok(Start::At(saved.offset));
        }
        tracing::info!(path = %path.display(), "input file truncated since the last run; reading it from the start");
        return Ok(Start::At(0));
    }
    if let Some(rotated) = find_rotated(path, &saved) {
        tracing::info!(path = %path.display(), offset = saved.offset, "input file rotated since the last run; finishing the rotated file, then the new one from its start");
        return Ok(Start::Rotated(rotated, saved.offset));
    }
    tracing::warn!(path = %path.display(), "the file the last run was reading is gone (rotated out of the folder or truncated); reading input.path from its start");
    Ok(Start::At(0))
}

/// The file the saved position is of, if it is still in the path's folder under another name.
fn find_rotated(path: &Path, saved: &FilePosition) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(folder_of(path)).ok()?;
    for entry in entries.take(MAX_ROTATION_SCAN).flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file()
            || meta.ino() != saved.identity.ino
            || meta.dev() != saved.identity.dev
            || meta.len() < saved.offset
        {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if saved.identity.matches(&file).unwrap_or(false) {
            return Some(file);
        }
    }
    None
}

/// What wakes the follower at EOF: an inotify event in the file's folder, else the poll.
struct Wakeup {
    events: Option<std_mpsc::Receiver<()>>,
    /// Kept alive: dropping it stops the watch.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Wakeup {
    fn watch(path: &Path) -> Wakeup {
        use notify::Watcher;
        let folder = folder_of(path).to_path_buf();
        // One pending wakeup is enough: the follower reads everything there is when it wakes.
        let (tx, rx) = std_mpsc::sync_channel(1);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut watcher| {
            watcher
                .watch(&folder, notify::RecursiveMode::NonRecursive)
                .map(|()| watcher)
        });
        match watcher {
            Ok(watcher) => Wakeup {
                events: Some(rx),
                _watcher: Some(watcher),
            },
            Err(error) => {
                tracing::warn!(%error, folder = %folder.display(), "cannot watch the input file's folder; polling every input.poll_interval instead");
                Wakeup {
                    events: None,
                    _watcher: None,
                }
            }
        }
    }

    /// Wait until the folder changes or `poll` passed (or `stop`), running `idle` every
    /// [`STOP_CHECK`].
    fn wait(&mut self, poll: Duration, stop: &AtomicBool, mut idle: impl FnMut()) {
        let deadline = Instant::now() + poll;
        loop {
            idle();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stop.load(Ordering::Relaxed) {
                return;
            }
            let slice = left.min(STOP_CHECK);
            match &self.events {
                Some(events) => match events.recv_timeout(slice) {
                    Ok(()) => return,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                        tracing::warn!("the input file watcher stopped; polling instead");
                        self.events = None;
                    }
                },
                None => std::thread::sleep(slice),
            }
        }
    }
}

/// Follow `path` until `stop`, sending batches; with `checkpoints`, resume where the last run
/// stopped and note each batch's end position.
pub(crate) fn follow(
    path: &Path,
    limits: SourceLimits,
    tx: &mpsc::Sender<Vec<RawLine>>,
    stop: &AtomicBool,
    checkpoints: Option<&FileCheckpoints>,
) -> Result<u64, SourceError> {
    let mut batcher = Batcher::new(SourceKind::File, limits.batch_size, tx);
    batcher.checkpoints = checkpoints;
    let mut wakeup = Wakeup::watch(path);
    let idle = || {
        if let Some(c) = checkpoints {
            c.save_if_due();
        }
    };
    let mut lines = 0u64;
    let mut saved = checkpoints.and_then(FileCheckpoints::resume_point);
    // Wait for the file to appear rather than failing: logs are often created lazily.
    let mut current: Option<OpenFile> = None;
    let mut buf = Vec::new();
    let mut warned_missing = false;
    let max = limits.max_line_bytes;
    while !stop.load(Ordering::Relaxed) {
        let Some(open) = current.as_mut() else {
            match File::open(path) {
                Ok(file) => {
                    let opened = match resume(path, &file, saved.take()) {
                        Ok(Start::At(offset)) => OpenFile::new(file, offset, false, max),
                        Ok(Start::Rotated(rotated, offset)) => {
                            OpenFile::new(rotated, offset, true, max)
                        }
                        Err(e) => Err(e),
                    };
                    current = Some(opened.map_err(|e| io_error(path, e))?);
                    buf.clear();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !warned_missing {
                        tracing::warn!(path = %path.display(), "input file does not exist yet; waiting for it");
                        warned_missing = true;
                    }
                    wakeup.wait(limits.poll_interval, stop, idle);
                }
                Err(e) => return Err(io_error(path, e)),
            }
            continue;
        };
        match open
            .reader
            .read_line(&mut buf)
            .map_err(|e| io_error(path, e))?
        {
            ReadLine::Line { truncated } => {
                lines += 1;
                batcher.end = Some(open.line_end());
                if !batcher.push(std::mem::take(&mut buf), truncated) {
                    return Ok(lines);
                }
            }
            ReadLine::Eof { truncated } => {
                if open.finishing {
                    // Nobody writes a file rotated away while we were down: a partial last
                    // line is complete.
                    if !buf.is_empty() || truncated {
                        lines += 1;
                        batcher.end = Some(open.read_end());
                        batcher.push(std::mem::take(&mut buf), truncated);
                    }
                    if !batcher.flush() {
                        return Ok(lines);
                    }
                    current = None;
                    continue;
                }
                // Caught up: hand over what we have, then look for rotation or truncation.
                if !batcher.flush() {
                    return Ok(lines);
                }
                let read_to = open.read_end().offset;
                let file = open.reader.get_ref().get_ref();
                if let Ok(meta) = file.metadata() {
                    let _ = open.identity.refresh_head(file, meta.len());
                }
                match std::fs::metadata(path) {
                    Ok(meta) if !same_inode(&meta, &open.identity) => {
                        // Rotated: the old file is fully drained (we are at its EOF); a
                        // partial last line in it is complete now that nobody writes it.
                        if !buf.is_empty() || truncated {
                            lines += 1;
                            batcher.end = Some(open.read_end());
                            batcher.push(std::mem::take(&mut buf), truncated);
                            if !batcher.flush() {
                                return Ok(lines);
                            }
                        }
                        tracing::info!(path = %path.display(), "input file rotated; reopening");
                        current = None;
                        continue;
                    }
                    Ok(meta) if meta.len() < read_to => {
                        // copytruncate: reopen the same path and read it from the top.
                        tracing::info!(path = %path.display(), "input file truncated; reading from the start");
                        buf.clear();
                        current = None;
                        continue;
                    }
                    Ok(_) => {}
                    Err(_) => {} // Mid-rotation: the new file is not there yet.
                }
                wakeup.wait(limits.poll_interval, stop, idle);
            }
        }
    }
    batcher.flush();
    Ok(lines)
}

fn same_inode(meta: &std::fs::Metadata, identity: &FileIdentity) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.dev() == identity.dev && meta.ino() == identity.ino
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::position::PositionStore;
    use std::io::Write;
    use std::sync::Arc;

    fn limits(poll: Duration) -> SourceLimits {
        SourceLimits {
            max_line_bytes: 1024,
            batch_size: 2,
            poll_interval: poll,
        }
    }

    /// A follower on its own thread that acknowledges every batch as published.
    struct Follower {
        stop: Arc<AtomicBool>,
        lines: std_mpsc::Receiver<String>,
        thread: Option<std::thread::JoinHandle<()>>,
        detection: Option<std::thread::JoinHandle<()>>,
        checkpoints: Arc<FileCheckpoints>,
    }

    impl Follower {
        fn start(path: &Path, state: &Path, poll: Duration) -> Follower {
            let checkpoints = Arc::new(FileCheckpoints::open(PositionStore::new(state, path)));
            let (tx, mut rx) = mpsc::channel::<Vec<RawLine>>(4);
            let stop = Arc::new(AtomicBool::new(false));
            let (out, lines) = std_mpsc::channel();
            let acks = checkpoints.clone();
            // Plays detection: every batch "published", then acknowledged.
            let detection = std::thread::spawn(move || {
                while let Some(batch) = rx.blocking_recv() {
                    for line in batch {
                        let _ = out.send(String::from_utf8(line.bytes).unwrap());
                    }
                    acks.published(true, false);
                }
            });
            let source = {
                let (path, stop, checkpoints) =
                    (path.to_path_buf(), stop.clone(), checkpoints.clone());
                std::thread::spawn(move || {
                    follow(&path, limits(poll), &tx, &stop, Some(&checkpoints)).unwrap();
                })
            };
            Follower {
                stop,
                lines,
                thread: Some(source),
                detection: Some(detection),
                checkpoints,
            }
        }

        /// The next `n` lines, waiting at most 20 s for them.
        fn next(&self, n: usize) -> Vec<String> {
            self.next_within(n, Duration::from_secs(20))
        }

        fn next_within(&self, n: usize, wait: Duration) -> Vec<String> {
            let deadline = Instant::now() + wait;
            let mut got = Vec::new();
            while got.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) => got.push(line),
                    Err(_) => break,
                }
            }
            got
        }

        /// Stop as `run` does at shutdown: the source, then a last save.
        fn stop(mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                thread.join().unwrap();
            }
            // The source's sender is gone: detection ends once it acknowledged every batch.
            if let Some(detection) = self.detection.take() {
                detection.join().unwrap();
            }
            self.checkpoints.flush();
        }
    }

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    const POLL: Duration = Duration::from_millis(20);

    #[test]
    fn a_restart_resumes_after_the_last_published_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(follower.next(2), ["one", "two"]);
        append(&path, "three\npart");
        assert_eq!(follower.next(1), ["three"]);
        follower.stop();

        // Written while tokenwatch was down, the partial line completed.
        append(&path, "ial\nfour\n");
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(
            follower.next(2),
            ["partial", "four"],
            "resumed, nothing repeated"
        );
        assert!(
            follower
                .next_within(1, Duration::from_millis(300))
                .is_empty(),
            "nothing more"
        );
        follower.stop();
    }

    #[test]
    fn a_file_rotated_while_down_is_finished_before_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "one\n").unwrap();
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(follower.next(1), ["one"]);
        follower.stop();

        append(&path, "two\n");
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&path, "three\n").unwrap();
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(follower.next(2), ["two", "three"]);
        follower.stop();

        // Rotated out of the folder (deleted): the new file from its start.
        std::fs::remove_file(dir.path().join("access.log.1")).unwrap();
        std::fs::rename(&path, dir.path().join("gone")).unwrap();
        std::fs::remove_file(dir.path().join("gone")).unwrap();
        std::fs::write(&path, "four\n").unwrap();
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(follower.next(1), ["four"]);
        follower.stop();
    }

    #[test]
    fn a_file_truncated_while_down_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "first-line\nsecond-line\n").unwrap();
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(follower.next(2), ["first-line", "second-line"]);
        follower.stop();

        // copytruncate, then new lines: same inode, shorter than the saved offset.
        std::fs::write(&path, "new\n").unwrap();
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(follower.next(1), ["new"]);
        follower.stop();

        // Truncated and rewritten past the saved offset: the head tells.
        let follower_offset = std::fs::metadata(&path).unwrap().len();
        std::fs::write(&path, "x".repeat(follower_offset as usize * 3) + "\nyy\n").unwrap();
        let follower = Follower::start(&path, dir.path(), POLL);
        assert_eq!(follower.next(2)[1], "yy");
        follower.stop();
    }

    #[test]
    fn an_appended_line_is_read_without_waiting_for_the_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "one\n").unwrap();
        // A poll far longer than the wait below: only an inotify event can deliver the line.
        let follower = Follower::start(&path, dir.path(), Duration::from_secs(600));
        assert_eq!(follower.next(1), ["one"]);
        append(&path, "two\n");
        assert_eq!(follower.next(1), ["two"], "not woken by the write");
        // Rotation is noticed the same way.
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&path, "three\n").unwrap();
        assert_eq!(follower.next(1), ["three"]);
        follower.stop();
    }
}
