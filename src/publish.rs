//! `publish` (work in progress).
