//! Stage 3, identify: fingerprint every credential (DESIGN §4) and verify JWTs (DESIGN §3).
//!
//! STUB: interface only; the implementation is being written.

use crate::config::{Secrets, TokensConfig};
use crate::event::{Claims, Credential, EventTime, Fingerprint, Identity};

/// Computes DESIGN §4 fingerprints: `hex(HMAC-SHA256(pepper, token))[..32]`.
#[derive(Clone)]
pub struct Fingerprinter {}

impl Fingerprinter {
    /// Key with the pepper's UTF-8 bytes.
    pub fn new(_pepper: &str) -> Self {
        Fingerprinter {}
    }
    /// Fingerprint of a bare token.
    pub fn fingerprint(&self, _token: &[u8]) -> Fingerprint {
        Fingerprint([0; 16])
    }
}

/// Why a token was rejected. `code()` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RejectReason {
    /// Placeholder.
    #[error("malformed token")]
    Malformed,
}

impl RejectReason {
    /// Bounded reason code.
    pub fn code(self) -> &'static str {
        "malformed"
    }
}

/// Key material or settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdentifyBuildError(pub String);

/// Fingerprints credentials and verifies JWTs, caching verifications per fingerprint.
pub struct Identifier {
    fingerprinter: Fingerprinter,
}

impl Identifier {
    /// Build from `[tokens]` (reads PEM and JWKS files).
    pub fn from_config(
        _tokens: &TokensConfig,
        secrets: &Secrets,
    ) -> Result<Self, IdentifyBuildError> {
        Ok(Identifier {
            fingerprinter: Fingerprinter::new(&secrets.pepper),
        })
    }
    /// Identify one credential at event time `at`.
    pub fn identify(
        &self,
        _credential: &Credential,
        _at: EventTime,
    ) -> Result<Identity, RejectReason> {
        Err(RejectReason::Malformed)
    }
    /// The fingerprinter (shared with the check API).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }
}

/// Claims read from a JWT *without* verifying it: only for denylist look-ups at the check
/// endpoint, where a forged token can only ever be denied, never allowed by us.
pub fn unverified_claims(_token: &str, _max_bytes: usize) -> Option<Claims> {
    None
}
