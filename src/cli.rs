//! The on-call CLI (stub).
