//! `simulate` (work in progress).
