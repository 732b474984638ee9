//! Stage 3, identify: fingerprint every credential (DESIGN §4) and verify JWTs (DESIGN §3).
//!
//! Data flow: `parse` hands over an [`AccessEvent`](crate::event::AccessEvent) whose
//! [`Credential`] is a bearer token, a session cookie or an upstream fingerprint; this stage
//! turns it into an [`Identity`] (fingerprint, kind, verified claims) for `enrich` and `track`,
//! or into a [`RejectReason`] that the pipeline counts (a failed verification is itself a signal
//! of forgery or tampering and never reaches session state).
//!
//! Per credential:
//! 1. size cap (`tokens.max_token_bytes`) before anything else reads the token → `too_large`;
//! 2. canonical form ([`crate::credential::Canonical`]: trimmed, unquoted, percent-decoded; a
//!    JWT's header and payload re-encoded, its signature left out) and fingerprint = first 16
//!    bytes of HMAC-SHA256(pepper, canonical form) ([`Fingerprinter`]), the same function every
//!    check route uses;
//! 3. a token with three dot-separated parts, when keys are configured, is a JWT: its signature
//!    is verified once and the result (claims or a time-independent rejection) is cached by
//!    fingerprint *and* signature (the `cache` submodule), so a forged signature over a real
//!    header and payload can neither borrow the real token's verdict nor poison it; `exp`/`nbf`
//!    are then checked against the **event time** of every event, so a cached token still
//!    expires on time. Anything else is an opaque session id.
//!
//! Invariants:
//! - The algorithm is chosen by *our* key (selected by `kid`), never by the token header alone:
//!   the header's `alg` must be in `tokens.jwt.algorithms` *and* permitted for the selected key
//!   (its family, curve, and explicit algorithm). `jku`, `x5u`, `jwk` and `x5c` are ignored —
//!   never fetched, never trusted. A header with `crit` is rejected (we implement no extension).
//! - Deterministic: no wall clock, no I/O after [`Identifier::from_config`] (which reads key
//!   files once). jsonwebtoken is used for signature verification only
//!   ([`jsonwebtoken::crypto::verify`]), so its wall-clock `exp`/`nbf` checks can never run.
//! - The raw token is never stored, logged or returned; the cache is keyed by fingerprint and
//!   holds only the claims this crate uses ([`Claims`]).
//! - The verification cache never holds more than `tokens.verification_cache_entries` entries
//!   (≈ 450 bytes each for a valid JWT: the `cache` submodule).
//!
//! Not done here: denylist look-ups (`denylist`/`api`), key rotation by re-reading JWKS files
//! (keys are fixed at build time; restart to rotate), token introspection of opaque tokens, JWE.

mod cache;
mod fingerprint;
mod jwt;
mod keys;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::Algorithm;

use crate::config::{Secrets, TokensConfig};
use crate::credential::Canonical;
use crate::event::{Claims, Credential, EventTime, Identity, TokenKind};

pub use fingerprint::Fingerprinter;

use cache::VerificationCache;
use keys::KeyRing;

/// At most this many keys are tried for one token (same `kid`, or no `kid`), so a token cannot
/// make us run an unbounded number of signature checks.
const MAX_KEYS_TRIED: usize = 8;

/// Why a token was rejected. `code()` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RejectReason {
    /// `alg` is `none`, unknown, unsupported (ES512, Ed448), not in `tokens.jwt.algorithms`,
    /// or not permitted for the key the `kid` selects (algorithm/key confusion).
    #[error("algorithm not allowed")]
    AlgNotAllowed,
    /// No configured key verified the signature (or the signature is empty).
    #[error("bad signature")]
    BadSignature,
    /// `exp` (plus leeway) is at or before the event time.
    #[error("token expired")]
    Expired,
    /// `nbf` (minus leeway) is after the event time.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` missing or not one of `tokens.jwt.issuers`.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` missing or none of its values in `tokens.jwt.audiences`.
    #[error("wrong audience")]
    WrongAudience,
    /// Not three base64url parts, header or claims not a JSON object, a claim of the wrong type
    /// (e.g. a string `exp`), a required `exp` missing, `crit` present, `kid` too long, or an
    /// empty token.
    #[error("malformed token")]
    Malformed,
    /// The token (or its header) is longer than allowed.
    #[error("token too large")]
    TooLarge,
    /// The header's `kid` (or its absence) selects no configured key.
    #[error("unknown key id")]
    UnknownKid,
}

impl RejectReason {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::AlgNotAllowed,
        RejectReason::BadSignature,
        RejectReason::Expired,
        RejectReason::NotYetValid,
        RejectReason::WrongIssuer,
        RejectReason::WrongAudience,
        RejectReason::Malformed,
        RejectReason::TooLarge,
        RejectReason::UnknownKid,
    ];

    /// Bounded reason code.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::AlgNotAllowed => "alg_not_allowed",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::WrongIssuer => "wrong_issuer",
            RejectReason::WrongAudience => "wrong_audience",
            RejectReason::Malformed => "malformed",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnknownKid => "unknown_kid",
        }
    }

    /// Rejections that depend on the event time are re-evaluated per event, never cached.
    fn is_time_dependent(self) -> bool {
        matches!(self, RejectReason::Expired | RejectReason::NotYetValid)
    }
}

/// Key material or settings that cannot be used. The message names every offending key
/// (`tokens.jwt.keys[2]: …`), one problem per line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdentifyBuildError(pub String);

/// What JWT verification checks besides the signature.
struct ClaimPolicy {
    issuers: Vec<String>,
    audiences: Vec<String>,
    require_exp: bool,
}

/// The JWT half of the stage: keys, allowed algorithms, claim policy.
struct JwtVerifier {
    keys: KeyRing,
    algorithms: Vec<Algorithm>,
    policy: ClaimPolicy,
    /// Signature checks performed (each key tried counts once); cache hits do none.
    signature_checks: AtomicU64,
}

impl JwtVerifier {
    /// Everything about a token that does not depend on the event time.
    fn verify(&self, token: &str) -> Result<Claims, RejectReason> {
        let parsed = jwt::parse(token, &self.algorithms)?;
        let candidates = self.keys.candidates(parsed.kid.as_deref());
        if candidates.is_empty() {
            return Err(RejectReason::UnknownKid);
        }
        // The key decides which algorithms it can be used with; the header only picks among
        // them. An HS256 header on an RSA key's kid stops here, before any HMAC is computed.
        let mut usable = candidates
            .iter()
            .filter(|key| key.algorithms.contains(&parsed.alg))
            .take(MAX_KEYS_TRIED)
            .peekable();
        if usable.peek().is_none() {
            return Err(RejectReason::AlgNotAllowed);
        }
        if parsed.signature_b64.is_empty() {
            // "Null signature" attack: nothing to verify, and never valid.
            return Err(RejectReason::BadSignature);
        }
        let mut verified = false;
        for key in usable {
            self.signature_checks.fetch_add(1, Ordering::Relaxed);
            if jwt::signature_valid(&parsed, &key.key) {
                verified = true;
                break;
            }
        }
        if !verified {
            return Err(RejectReason::BadSignature);
        }
        let claims = jwt::checked_claims(&parsed.payload)?;
        self.policy.check(&claims)?;
        Ok(claims.claims)
    }
}

impl ClaimPolicy {
    fn check(&self, claims: &jwt::CheckedClaims) -> Result<(), RejectReason> {
        if self.require_exp && claims.claims.exp.is_none() {
            return Err(RejectReason::Malformed);
        }
        if !self.issuers.is_empty() {
            let known = claims
                .claims
                .iss
                .as_ref()
                .is_some_and(|iss| self.issuers.iter().any(|allowed| allowed == iss));
            if !known {
                return Err(RejectReason::WrongIssuer);
            }
        }
        if !self.audiences.is_empty()
            && !claims
                .audiences
                .iter()
                .any(|aud| self.audiences.iter().any(|allowed| allowed == aud))
        {
            return Err(RejectReason::WrongAudience);
        }
        Ok(())
    }
}

/// Fingerprints credentials and verifies JWTs, caching verifications per fingerprint.
pub struct Identifier {
    fingerprinter: Fingerprinter,
    max_token_bytes: usize,
    leeway_ms: i64,
    /// `None` when no JWT keys are configured: every token is then opaque.
    jwt: Option<JwtVerifier>,
    cache: VerificationCache,
    /// Keys the signature tags of cache entries; random per process, so nobody can aim a
    /// forged signature at a cached one.
    signature_tags: RandomState,
}

impl Identifier {
    /// Build from `[tokens]` (reads PEM and JWKS files). Every unusable key is reported at once.
    pub fn from_config(
        tokens: &TokensConfig,
        secrets: &Secrets,
    ) -> Result<Self, IdentifyBuildError> {
        let jwt_config = &tokens.jwt;
        let leeway_ms = i64::try_from(jwt_config.leeway.0.as_millis()).unwrap_or(i64::MAX);
        let jwt = if jwt_config.keys.is_empty() {
            None
        } else {
            let mut errors = Vec::new();
            let mut algorithms = Vec::new();
            for (i, name) in jwt_config.algorithms.iter().enumerate() {
                match keys::supported_algorithm(name) {
                    Ok(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
                    Ok(_) => {}
                    Err(why) => errors.push(format!("tokens.jwt.algorithms[{i}]: {why}")),
                }
            }
            if jwt_config.algorithms.is_empty() {
                errors.push("tokens.jwt.algorithms: list the algorithms your keys use".into());
            }
            let ring = KeyRing::build(&jwt_config.keys, secrets, &algorithms, MAX_KEYS_TRIED);
            match ring {
                Ok(ring) if errors.is_empty() => Some(JwtVerifier {
                    keys: ring,
                    algorithms,
                    policy: ClaimPolicy {
                        issuers: jwt_config.issuers.clone(),
                        audiences: jwt_config.audiences.clone(),
                        require_exp: jwt_config.require_exp,
                    },
                    signature_checks: AtomicU64::new(0),
                }),
                Ok(_) => return Err(IdentifyBuildError(errors.join("\n"))),
                Err(key_errors) => {
                    errors.extend(key_errors);
                    return Err(IdentifyBuildError(errors.join("\n")));
                }
            }
        };
        Ok(Identifier {
            fingerprinter: Fingerprinter::new(&secrets.pepper),
            max_token_bytes: tokens.max_token_bytes,
            leeway_ms,
            jwt,
            cache: VerificationCache::new(tokens.verification_cache_entries),
            signature_tags: RandomState::new(),
        })
    }

    /// Identify one credential at event time `at`.
    pub fn identify(
        &self,
        credential: &Credential,
        at: EventTime,
    ) -> Result<Identity, RejectReason> {
        let token = match credential {
            Credential::Fingerprint(fingerprint) => {
                return Ok(Identity {
                    fingerprint: *fingerprint,
                    kind: TokenKind::Upstream,
                    claims: None,
                });
            }
            Credential::Bearer(token) | Credential::Cookie(token) | Credential::Query(token) => {
                token
            }
        };
        // The cap comes first: nothing below (HMAC, base64, JSON) ever sees an oversized token.
        if token.len() > self.max_token_bytes {
            return Err(RejectReason::TooLarge);
        }
        let canonical = Canonical::of(token.expose());
        let normalized = canonical.token();
        if normalized.is_empty() {
            return Err(RejectReason::Malformed);
        }
        let fingerprint = self.fingerprinter.fingerprint_canonical(&canonical);
        let three_parts = normalized.bytes().filter(|b| *b == b'.').count() == 2;
        let Some(jwt) = self.jwt.as_ref().filter(|_| three_parts) else {
            return Ok(Identity {
                fingerprint,
                kind: TokenKind::Opaque,
                claims: None,
            });
        };
        let signature = normalized.rsplit('.').next().unwrap_or_default();
        let signature_tag = self.signature_tags.hash_one(signature);
        let outcome = match self.cache.get(&fingerprint, signature_tag) {
            Some(outcome) => outcome,
            None => {
                let outcome = jwt.verify(normalized).map(Arc::new);
                let lapses_at_ms = match &outcome {
                    Ok(claims) => claims.exp.map(|exp| self.expiry_ms(exp)),
                    Err(_) => None,
                };
                self.cache.insert(
                    fingerprint,
                    signature_tag,
                    outcome.clone(),
                    lapses_at_ms,
                    at.0,
                );
                outcome
            }
        };
        let claims = outcome?;
        self.check_time(&claims, at)?;
        Ok(Identity {
            fingerprint,
            kind: TokenKind::Jwt,
            claims: Some(claims),
        })
    }

    /// The fingerprinter (shared with the check API).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Signature checks performed so far (one per key tried; cache hits perform none).
    pub fn signature_verifications(&self) -> u64 {
        self.jwt
            .as_ref()
            .map_or(0, |jwt| jwt.signature_checks.load(Ordering::Relaxed))
    }

    /// Tokens currently in the verification cache.
    pub fn cached_verifications(&self) -> usize {
        self.cache.len()
    }

    /// Event time (ms) from which a token with this `exp` is rejected: `exp + leeway`.
    fn expiry_ms(&self, exp: i64) -> i64 {
        exp.saturating_mul(1000).saturating_add(self.leeway_ms)
    }

    /// `exp` and `nbf` against the event time, with leeway (RFC 7519 §4.1.4–5).
    fn check_time(&self, claims: &Claims, at: EventTime) -> Result<(), RejectReason> {
        if let Some(exp) = claims.exp
            && at.0 >= self.expiry_ms(exp)
        {
            return Err(RejectReason::Expired);
        }
        if let Some(nbf) = claims.nbf
            && at.0 < nbf.saturating_mul(1000).saturating_sub(self.leeway_ms)
        {
            return Err(RejectReason::NotYetValid);
        }
        Ok(())
    }
}

/// Claims read from a JWT *without* verifying it: only for denylist look-ups at the check
/// endpoint, where a forged token can only ever be denied, never allowed by us.
///
/// Why that is safe: the check endpoint answers "is this token revoked?", never "is this token
/// valid?" — signature verification stays with the application. These claims only select
/// denylist keys (`jti:`, `sid:`, `sub:`) to look up; a hit denies, a miss changes nothing. A
/// forger who writes someone else's revoked `jti` into a token gets that token denied; one who
/// writes an unrevoked `jti` gains nothing the application would not reject anyway. Callers must
/// never use the result to *allow* a request or to skip a lookup they would otherwise make
/// (e.g. treat a missing or unparseable `iat` as "issued before" for `sub:` cut-offs).
///
/// Size-capped at `max_bytes` before any decoding; `None` for anything that is not a JWT with
/// a JSON-object payload. Claims of the wrong type are left out rather than failing the whole
/// look-up, so a token with, say, a string `exp` can still be denied by its `jti`.
pub fn unverified_claims(token: &str, max_bytes: usize) -> Option<Claims> {
    if token.len() > max_bytes {
        return None;
    }
    unverified_claims_of(&Canonical::of(token))
}

/// [`unverified_claims`] of a token already in canonical form (read from its decoded payload,
/// so every encoding of the token reads the same claims). The caller has capped its size.
pub fn unverified_claims_of(canonical: &Canonical<'_>) -> Option<Claims> {
    jwt::unverified_claims(canonical.jwt_payload()?)
}
