//! The shared denylist (DESIGN §6, embedded mode): a concurrent map behind a guard-free type,
//! with a journal that is fsynced before a revocation is acknowledged.
//!
//! STUB: interface only; the implementation is being written.

use std::path::Path;

use crate::event::Fingerprint;

/// A denylist key (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DenyKey {
    /// `fp:<fingerprint>`.
    Fingerprint(Fingerprint),
    /// `jti:<iss>:<jti>`.
    Jti {
        /// Issuer.
        iss: String,
        /// Token id.
        jti: String,
    },
    /// `sid:<iss>:<sid>`.
    Sid {
        /// Issuer.
        iss: String,
        /// Session id.
        sid: String,
    },
    /// `sub:<iss>:<sub>` (with `not_before` on the entry).
    Sub {
        /// Issuer.
        iss: String,
        /// Subject.
        sub: String,
    },
}

/// Who revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The detection pipeline.
    Detector,
    /// An admin through the API.
    Admin,
}

/// One denylist entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Reason codes or free text from an admin.
    pub reasons: Vec<String>,
    /// Who revoked.
    pub origin: Origin,
    /// Wall-clock ms when revoked.
    pub created_at_ms: i64,
    /// Wall-clock ms when the entry lapses.
    pub expires_at_ms: i64,
    /// For `sub` keys: tokens issued (`iat`) before this many epoch seconds are revoked.
    pub not_before: Option<i64>,
    /// Detector score, if any.
    pub score: Option<f64>,
}

/// What a check looks up: every key a token maps to.
#[derive(Debug, Clone, Default)]
pub struct CheckQuery {
    /// The token's fingerprint.
    pub fingerprint: Option<Fingerprint>,
    /// `iss`.
    pub iss: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `sid`.
    pub sid: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `iat`, epoch seconds.
    pub iat: Option<i64>,
}

/// Journal failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DenylistError(pub String);

/// The denylist.
pub struct Denylist {}

impl Denylist {
    /// Open (replaying and compacting the journal) or in memory only.
    pub fn open(_journal: Option<&Path>) -> Result<Self, DenylistError> {
        Ok(Denylist {})
    }
    /// Add or replace entries; durable before it returns.
    pub fn revoke_many(&self, _entries: Vec<(DenyKey, Entry)>) -> Result<(), DenylistError> {
        Ok(())
    }
    /// The first matching, unexpired entry.
    pub fn check(&self, _query: &CheckQuery, _now_ms: i64) -> Option<(DenyKey, Entry)> {
        None
    }
    /// Live entries.
    pub fn len(&self) -> usize {
        0
    }
    /// No entries.
    pub fn is_empty(&self) -> bool {
        true
    }
}

impl std::str::FromStr for DenyKey {
    type Err = DenylistError;
    fn from_str(_s: &str) -> Result<Self, Self::Err> {
        Err(DenylistError("stub".into()))
    }
}

impl Denylist {
    /// Whether an admin allowlisted this session.
    pub fn is_allowlisted(&self, _fingerprint: Fingerprint) -> bool {
        false
    }
}
