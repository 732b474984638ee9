//! Fuzzes the denylist journal reader through the public API that opens a journal file:
//! the input is written to a file and opened with `Denylist::open_at` (`open` with a fixed
//! clock, so a run is reproducible). Seeds: `fuzz/corpus/journal/`.
//!
//! Deliberately small and format-agnostic, so it keeps working when the journal format
//! changes: only `open_at`, `snapshot`, `replay_stats` and `DenylistError::code` are used.
//! When the format gains new read errors, add their codes to [`READ_ERRORS`]; replace the
//! seeds with journals in the new format.
//!
//! Asserts, besides "no panic":
//! - opening gives a denylist, or an error whose code is one reading a damaged file may give
//!   (not `io`: the file is on a healthy disk);
//! - a denylist opened from whatever was in the file compacted it into a journal that opens
//!   again, with the same entries and no torn, expired or dropped records.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenwatch::denylist::Denylist;

/// 2023-11-14T22:13:20Z: the wall clock the journal is opened at.
const NOW_MS: i64 = 1_700_000_000_000;

/// Error codes a journal's contents alone may cause.
const READ_ERRORS: &[&str] = &["corrupt"];

/// A private folder for the journal, on tmpfs when there is one (fsync is then cheap).
fn journal_path() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = DIR.get_or_init(|| {
            let dir = if shm.is_dir() {
                tempfile::tempdir_in(shm)
            } else {
                tempfile::tempdir()
            };
            dir.expect("temp folder")
        });
        dir.path().join("denylist.journal")
    })
}

fn sorted(denylist: &Denylist) -> Vec<String> {
    let mut entries: Vec<String> = denylist
        .snapshot()
        .into_iter()
        .map(|(key, entry)| format!("{key} {entry:?}"))
        .collect();
    entries.sort();
    entries
}

fuzz_target!(|data: &[u8]| {
    let path = journal_path();
    std::fs::write(path, data).expect("write the journal");
    let first = match Denylist::open_at(Some(path), NOW_MS) {
        Ok(denylist) => denylist,
        Err(error) => {
            assert!(
                READ_ERRORS.contains(&error.code()),
                "unexpected error opening a journal: {error}"
            );
            return;
        }
    };
    let entries = sorted(&first);
    drop(first);
    let second = match Denylist::open_at(Some(path), NOW_MS) {
        Ok(denylist) => denylist,
        Err(error) => panic!("the compacted journal does not open again: {error}"),
    };
    let stats = second.replay_stats();
    assert_eq!(stats.torn_line, None, "compaction wrote a torn record");
    assert_eq!(stats.expired_skipped, 0, "compaction kept a lapsed entry");
    assert_eq!(sorted(&second), entries, "compaction changed the entries");
});
