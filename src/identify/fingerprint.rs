//! The token fingerprint of DESIGN §4, exactly, so any language can compute it:
//! `lowercase_hex(HMAC-SHA256(key = pepper, message = canonical(token)))[0..32]`, i.e. the
//! first 16 bytes of the MAC, where `canonical` is [`crate::credential::Canonical`].
//!
//! Sits at the start of `identify` (and in every check route): every piece of state, every
//! denylist key and every metric that refers to a token uses this value, never the token.
//!
//! Invariants: the pepper is used as its UTF-8 bytes (no decoding, no trimming); the token is
//! the bare credential (the caller strips `Bearer ` and the cookie name), in its canonical
//! form, so every encoding of one token that a framework or verifier accepts has one
//! fingerprint. The pepper never leaves the HMAC key (`Debug` is redacted). Does NOT cap the
//! token's size: callers do, before calling.

use std::fmt;

use aws_lc_rs::hmac;

use crate::credential::{Canonical, lossy};
use crate::event::Fingerprint;

/// Computes DESIGN §4 fingerprints: `hex(HMAC-SHA256(pepper, canonical(token)))[..32]`.
#[derive(Clone)]
pub struct Fingerprinter {
    key: hmac::Key,
}

impl Fingerprinter {
    /// Key with the pepper's UTF-8 bytes.
    pub fn new(pepper: &str) -> Self {
        Fingerprinter {
            key: hmac::Key::new(hmac::HMAC_SHA256, pepper.as_bytes()),
        }
    }

    /// Fingerprint of a bare token, as bytes from a header or a log (invalid UTF-8 becomes
    /// U+FFFD on both sides alike).
    pub fn fingerprint(&self, token: &[u8]) -> Fingerprint {
        self.fingerprint_canonical(&Canonical::of(&lossy(token)))
    }

    /// Fingerprint of a token already in canonical form.
    pub fn fingerprint_canonical(&self, canonical: &Canonical<'_>) -> Fingerprint {
        self.mac(canonical.message())
    }

    /// The first 16 bytes of HMAC-SHA256(pepper, message).
    fn mac(&self, message: &[u8]) -> Fingerprint {
        let tag = hmac::sign(&self.key, message);
        let mut out = [0u8; 16];
        for (byte, mac) in out.iter_mut().zip(tag.as_ref()) {
            *byte = *mac;
        }
        Fingerprint(out)
    }
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprinter(<pepper redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed outside Rust, with Python's standard library:
    ///
    /// ```text
    /// python3 -c 'import hmac,hashlib; print(hmac.new(PEPPER.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()[:32])'
    /// ```
    ///
    /// e.g. `python3 -c 'import hmac,hashlib; print(hmac.new(b"test-pepper-0123456789",
    /// b"eyJhbGciOiJIUzI1NiJ9.e30.sig", hashlib.sha256).hexdigest()[:32])'`
    /// → `adf086e6c3066f98d36faefa87c63614`.
    #[test]
    fn matches_vectors_computed_with_python_hmac() {
        let cases = [
            (
                "test-pepper-0123456789",
                "eyJhbGciOiJIUzI1NiJ9.e30.sig",
                "adf086e6c3066f98d36faefa87c63614",
            ),
            // Non-ASCII pepper and token: both are used as UTF-8 bytes, nothing else.
            (
                "pépper-ünïcode-0123",
                "opaque-session-id-ä",
                "87e52ef29a94a52897e99fec438b8498",
            ),
            (
                "test-pepper-0123456789",
                "",
                "49e8fe7083e0346720d260831ef5d1bd",
            ),
        ];
        for (pepper, token, expected) in cases {
            let fingerprint = Fingerprinter::new(pepper).mac(token.as_bytes());
            assert_eq!(
                fingerprint.to_hex(),
                expected,
                "pepper {pepper:?} token {token:?}"
            );
        }
    }

    #[test]
    fn different_peppers_give_unrelated_fingerprints() {
        let a = Fingerprinter::new("pepper-one-0123456789").fingerprint(b"token");
        let b = Fingerprinter::new("pepper-two-0123456789").fingerprint(b"token");
        assert_ne!(a, b);
    }

    #[test]
    fn debug_does_not_print_the_pepper() {
        let shown = format!("{:?}", Fingerprinter::new("super-secret-pepper"));
        assert!(!shown.contains("super-secret"), "{shown}");
    }
}
