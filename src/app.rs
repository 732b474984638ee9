//! `app` (work in progress).
