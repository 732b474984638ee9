//! `source` (work in progress).
