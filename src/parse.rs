//! Stage 2, parse: one access-log line (bytes) → an [`AccessEvent`], or a reason it was rejected.
//!
//! STUB: interface only; the implementation is being written.

use crate::config::{FieldOverrides, InputFormat};
use crate::event::AccessEvent;

/// Why a line was rejected. `code()` is a bounded metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Placeholder.
    #[error("not implemented")]
    Invalid,
}

impl ParseError {
    /// Bounded reason code (metric label `parse_errors_total{reason}`).
    pub fn code(&self) -> &'static str {
        "invalid"
    }
}

/// Parses lines of one configured format.
#[derive(Debug, Clone)]
pub struct Parser {}

impl Parser {
    /// Build from the format preset, field overrides and the session cookie's name.
    pub fn new(
        _format: InputFormat,
        _overrides: &FieldOverrides,
        _session_cookie: &str,
        _max_line_bytes: usize,
    ) -> Result<Parser, String> {
        Ok(Parser {})
    }

    /// `Ok(None)`: a valid record without any credential (`anonymous`).
    pub fn parse(&self, _line: &[u8]) -> Result<Option<AccessEvent>, ParseError> {
        Err(ParseError::Invalid)
    }
}
