//! `pipeline` (work in progress).
