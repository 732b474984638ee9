//! The HTTP API (DESIGN §7).
//!
//! STUB: interface only; the implementation is being written.
