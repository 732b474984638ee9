//! JWT verification keys: loaded once from `[[tokens.jwt.keys]]`, indexed by `kid`.
//!
//! Sources: a PEM public key file (RSA, EC P-256/P-384 or Ed25519 — detected from the key, not
//! from the file name), an HMAC secret (inline or from the environment, resolved into
//! [`Secrets::jwt_secrets`] by `config`), or a JWKS file (every usable key in it, by its `kid`).
//!
//! Invariants:
//! - Every key carries the exact list of algorithms it may verify: its family and curve (an RSA
//!   key never does HS*, a P-256 key only ES256), narrowed by the configured `algorithm` or the
//!   JWK's `alg`, and by `tokens.jwt.algorithms`. This list — not the token header — decides
//!   which algorithm runs, which is what rules out algorithm/key confusion.
//! - Key material is validated here (on-curve points, RSA ≥ 2048 bits, 32-byte Ed25519 keys),
//!   so a bad key is a startup error naming `tokens.jwt.keys[i]`, not a stream of
//!   `bad_signature` at run time. Private keys and certificates are refused with a hint.
//! - Files are size-capped; nothing is fetched over the network (no `jku`, no JWKS URL).
//!
//! Not done here: reloading (restart to rotate keys), token parsing, verification.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde_json::Value;

use super::jwt::MAX_KID_BYTES;
use crate::config::{JwtKeyConfig, Secrets};

/// Largest PEM or JWKS file we read. Real ones are a few KiB.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// HMAC secrets shorter than the hash output are weak (RFC 7518 §3.2); warned about, not
/// refused, so existing deployments keep starting.
const MIN_HMAC_SECRET_BYTES: usize = 32;

/// What a key is, which decides the algorithms it can ever verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyShape {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyShape {
    fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyShape::Hmac => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            KeyShape::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            KeyShape::EcP256 => &[Algorithm::ES256],
            KeyShape::EcP384 => &[Algorithm::ES384],
            KeyShape::Ed25519 => &[Algorithm::EdDSA],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyShape::Hmac => "an HMAC secret",
            KeyShape::Rsa => "an RSA key",
            KeyShape::EcP256 => "an EC P-256 key",
            KeyShape::EcP384 => "an EC P-384 key",
            KeyShape::Ed25519 => "an Ed25519 key",
        }
    }
}

/// One usable key.
pub(super) struct VerifyingKey {
    pub key: DecodingKey,
    /// Algorithms this key may verify; never empty for keys in a [`KeyRing`].
    pub algorithms: Vec<Algorithm>,
}

/// All keys, indexed by `kid`; keys without a `kid` serve tokens without one.
pub(super) struct KeyRing {
    by_kid: HashMap<String, Vec<VerifyingKey>>,
    without_kid: Vec<VerifyingKey>,
}

impl KeyRing {
    /// Load every key; every problem is reported (one line each, naming the key).
    pub fn build(
        configs: &[JwtKeyConfig],
        secrets: &Secrets,
        allowed: &[Algorithm],
        max_per_kid: usize,
    ) -> Result<KeyRing, Vec<String>> {
        let mut ring = KeyRing {
            by_kid: HashMap::new(),
            without_kid: Vec::new(),
        };
        let mut errors = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let name = format!("tokens.jwt.keys[{index}]");
            match load(&name, index, config, secrets, allowed) {
                Ok(loaded) => {
                    for (kid, key) in loaded {
                        match kid {
                            Some(kid) => ring.by_kid.entry(kid).or_default().push(key),
                            None => ring.without_kid.push(key),
                        }
                    }
                }
                Err(why) => errors.push(format!("{name}: {why}")),
            }
        }
        if ring.without_kid.len() > max_per_kid {
            errors.push(format!(
                "tokens.jwt.keys: {} keys have no kid; at most {max_per_kid} are tried per \
                 token, so give them kids",
                ring.without_kid.len()
            ));
        }
        for (kid, keys) in &ring.by_kid {
            if keys.len() > max_per_kid {
                errors.push(format!(
                    "tokens.jwt.keys: {} keys share kid {kid:?}; at most {max_per_kid} are tried",
                    keys.len()
                ));
            }
        }
        if errors.is_empty() {
            Ok(ring)
        } else {
            Err(errors)
        }
    }

    /// The keys a token's `kid` (or its absence) selects; empty means `unknown_kid`.
    pub fn candidates(&self, kid: Option<&str>) -> &[VerifyingKey] {
        match kid {
            Some(kid) => self.by_kid.get(kid).map_or(&[], Vec::as_slice),
            None => &self.without_kid,
        }
    }
}

/// An algorithm name from config, if jsonwebtoken can verify it.
pub(super) fn supported_algorithm(name: &str) -> Result<Algorithm, String> {
    match name {
        "ES512" => Err("ES512 is not supported by the verifier".into()),
        _ => Algorithm::from_str(name).map_err(|_| format!("unknown algorithm {name:?}")),
    }
}

type Loaded = Vec<(Option<String>, VerifyingKey)>;

fn load(
    name: &str,
    index: usize,
    config: &JwtKeyConfig,
    secrets: &Secrets,
    allowed: &[Algorithm],
) -> Result<Loaded, String> {
    let explicit = config
        .algorithm
        .as_deref()
        .map(supported_algorithm)
        .transpose()?;
    let is_secret = config.secret.is_some() || config.secret_env.is_some();
    let sources = [
        config.public_key_pem.is_some(),
        is_secret,
        config.jwks_file.is_some(),
    ];
    if sources.iter().filter(|set| **set).count() != 1 {
        return Err("set exactly one of public_key_pem, secret_env, secret, jwks_file".into());
    }
    if let Some(path) = &config.jwks_file {
        if config.kid.is_some() {
            return Err("kid is not used with jwks_file: each JWK carries its own kid".into());
        }
        return load_jwks(name, path, explicit, allowed);
    }
    let (key, shape) = if let Some(path) = &config.public_key_pem {
        let pem = read_capped(path)?;
        pem_public_key(&pem).map_err(|why| format!("{}: {why}", path.display()))?
    } else {
        let secret = secrets
            .jwt_secrets
            .get(&index)
            .ok_or("the HMAC secret was not resolved (is secret_env set?)")?;
        if secret.is_empty() {
            return Err("the HMAC secret is empty".into());
        }
        if explicit.is_none() {
            return Err("HMAC secrets need algorithm = HS256, HS384 or HS512".into());
        }
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            tracing::warn!(
                key = name,
                "HMAC secret is shorter than {MIN_HMAC_SECRET_BYTES} bytes; RFC 7518 asks for \
                 at least the hash size"
            );
        }
        (DecodingKey::from_secret(secret.as_bytes()), KeyShape::Hmac)
    };
    let algorithms = permitted(shape, explicit, allowed)?;
    let key = VerifyingKey { key, algorithms };
    Ok(vec![(config.kid.clone(), key)])
}

/// The algorithms a key may verify, or why it can verify none.
fn permitted(
    shape: KeyShape,
    explicit: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<Vec<Algorithm>, String> {
    if let Some(alg) = explicit {
        if !shape.algorithms().contains(&alg) {
            return Err(format!(
                "algorithm {alg:?} does not fit {} (it can do {})",
                shape.describe(),
                names(shape.algorithms())
            ));
        }
        if !allowed.contains(&alg) {
            return Err(format!("algorithm {alg:?} is not in tokens.jwt.algorithms"));
        }
        return Ok(vec![alg]);
    }
    let algorithms: Vec<Algorithm> = shape
        .algorithms()
        .iter()
        .copied()
        .filter(|alg| allowed.contains(alg))
        .collect();
    if algorithms.is_empty() {
        return Err(format!(
            "this is {}, but tokens.jwt.algorithms allows none of {}",
            shape.describe(),
            names(shape.algorithms())
        ));
    }
    Ok(algorithms)
}

fn names(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|alg| format!("{alg:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_KEY_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// A single public key in PEM (`PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`), its type detected.
fn pem_public_key(pem: &[u8]) -> Result<(DecodingKey, KeyShape), String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM text file")?;
    let blocks = text.matches("-----BEGIN ").count();
    if blocks == 0 {
        return Err("no PEM block found".into());
    }
    if text.contains("PRIVATE KEY-----") {
        return Err("holds a private key; configure the public key only".into());
    }
    if text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(
            "holds a certificate; extract its key with `openssl x509 -pubkey -noout`".into(),
        );
    }
    if blocks > 1 {
        return Err(format!(
            "holds {blocks} PEM blocks; put one public key per file"
        ));
    }
    if !text.contains("-----BEGIN PUBLIC KEY-----")
        && !text.contains("-----BEGIN RSA PUBLIC KEY-----")
    {
        return Err("expected a PUBLIC KEY or RSA PUBLIC KEY PEM block".into());
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        check_rsa(&key)?;
        return Ok((key, KeyShape::Rsa));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        let shape = ec_curve(&key)?;
        return Ok((key, shape));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        check_ed25519(&key)?;
        return Ok((key, KeyShape::Ed25519));
    }
    Err("not an RSA, EC or Ed25519 public key (or a damaged one)".into())
}

/// RSA keys below 2048 bits would fail every verification at run time; refuse them now.
fn check_rsa(key: &DecodingKey) -> Result<(), String> {
    let bits = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => {
            // jsonwebtoken keeps the PKCS#1 RSAPublicKey; re-encode as SPKI to read its size.
            let public = aws_lc_rs::rsa::PublicKey::from_der(der)
                .map_err(|e| format!("invalid RSA public key: {e}"))?;
            let spki = public
                .as_der()
                .map_err(|_| "invalid RSA public key".to_string())?;
            aws_lc_rs::rsa::PublicEncryptingKey::from_der(spki.as_ref())
                .map_err(|e| format!("unusable RSA public key ({e}); 2048 to 8192 bits needed"))?
                .key_size_bits()
        }
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            let exponent_ok = e.last().is_some_and(|low| low & 1 == 1) && e.len() <= 8;
            if !exponent_ok {
                return Err("invalid RSA public exponent".into());
            }
            modulus_bits(n)
        }
    };
    if !(2048..=8192).contains(&bits) {
        return Err(format!(
            "RSA key has {bits} bits; 2048 to 8192 are accepted"
        ));
    }
    Ok(())
}

fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        Some(first) => (n.len() - first) * 8 - n[first].leading_zeros() as usize,
        None => 0,
    }
}

/// Which curve an EC point is on (it must be on one we support).
fn ec_curve(key: &DecodingKey) -> Result<KeyShape, String> {
    let point = key
        .try_get_as_bytes()
        .map_err(|_| "invalid EC public key".to_string())?;
    if ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).is_ok() {
        return Ok(KeyShape::EcP256);
    }
    if ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point).is_ok() {
        return Ok(KeyShape::EcP384);
    }
    Err("EC key is not a valid P-256 or P-384 key (ES512/P-521 is not supported)".into())
}

fn check_ed25519(key: &DecodingKey) -> Result<(), String> {
    let raw = key
        .try_get_as_bytes()
        .map_err(|_| "invalid Ed25519 public key".to_string())?;
    if raw.len() != 32 || ParsedPublicKey::new(&ED25519, raw).is_err() {
        return Err("invalid Ed25519 public key".into());
    }
    Ok(())
}

/// Every usable key of a JWKS file. A key we cannot use (encryption key, Ed448, P-521,
/// unknown type) is skipped with a warning rather than failing startup, because IdPs publish
/// such keys alongside the signing ones; a file with no usable key at all is an error.
fn load_jwks(
    name: &str,
    path: &Path,
    explicit: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<Loaded, String> {
    let bytes = read_capped(path)?;
    let document: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Err(format!(
            "{}: no \"keys\" array (not a JWKS)",
            path.display()
        ));
    };
    let mut loaded = Vec::new();
    for (position, entry) in entries.iter().enumerate() {
        let kid = entry.get("kid").and_then(Value::as_str).map(str::to_string);
        let label = match &kid {
            Some(kid) => format!("{name} (JWKS kid {kid:?})"),
            None => format!("{name} (JWKS keys[{position}])"),
        };
        match jwk_key(entry, explicit, allowed) {
            Ok((key, algorithms)) => loaded.push((kid, VerifyingKey { key, algorithms })),
            Err(why) => tracing::warn!(key = %label, "skipping JWK: {why}"),
        }
    }
    if loaded.is_empty() {
        return Err(format!(
            "{}: no usable signature key among {} JWK(s)",
            path.display(),
            entries.len()
        ));
    }
    Ok(loaded)
}

fn jwk_key(
    entry: &Value,
    explicit: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<(DecodingKey, Vec<Algorithm>), String> {
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|e| format!("unsupported JWK: {e}"))?;
    if jwk
        .common
        .key_id
        .as_ref()
        .is_some_and(|kid| kid.is_empty() || kid.len() > MAX_KID_BYTES)
    {
        return Err(format!("kid must be 1 to {MAX_KID_BYTES} bytes"));
    }
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("not a signature key (use is not \"sig\")".into());
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("key_ops does not include \"verify\"".into());
    }
    let shape = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyShape::Rsa,
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => KeyShape::EcP256,
            EllipticCurve::P384 => KeyShape::EcP384,
            _ => return Err("EC curve not supported (P-256 and P-384 are)".into()),
        },
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            KeyShape::Ed25519
        }
        AlgorithmParameters::OctetKeyPair(_) => {
            return Err("OKP curve not supported (Ed25519 is)".into());
        }
        AlgorithmParameters::OctetKey(_) => KeyShape::Hmac,
        _ => return Err("unsupported key type".into()),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("invalid key material: {e}"))?;
    match shape {
        KeyShape::Rsa => check_rsa(&key)?,
        KeyShape::EcP256 | KeyShape::EcP384 => {
            if ec_curve(&key)? != shape {
                return Err("EC point does not match its crv".into());
            }
        }
        KeyShape::Ed25519 => check_ed25519(&key)?,
        KeyShape::Hmac => {
            if key.try_get_as_bytes().map_or(true, <[u8]>::is_empty) {
                return Err("empty oct key".into());
            }
        }
    }
    // The JWK's own `alg` binds the key as firmly as a configured `algorithm`.
    let from_jwk = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(jwk_algorithm(alg)?),
    };
    let algorithms = match (explicit, from_jwk) {
        (Some(configured), Some(own)) if configured != own => {
            return Err(format!(
                "its alg {own:?} differs from the configured algorithm {configured:?}"
            ));
        }
        (Some(alg), _) | (None, Some(alg)) => permitted(shape, Some(alg), allowed)?,
        (None, None) => permitted(shape, None, allowed)?,
    };
    Ok((key, algorithms))
}

fn jwk_algorithm(alg: KeyAlgorithm) -> Result<Algorithm, String> {
    let signing = match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        other => {
            return Err(format!(
                "alg {other:?} is not a supported signature algorithm"
            ));
        }
    };
    Ok(signing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes_permit_only_their_family() {
        let all: Vec<Algorithm> = [
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "EdDSA",
        ]
        .iter()
        .map(|n| supported_algorithm(n).expect("supported"))
        .collect();
        let cases = [
            (
                KeyShape::Hmac,
                None,
                Ok(vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]),
            ),
            (KeyShape::EcP256, None, Ok(vec![Algorithm::ES256])),
            (KeyShape::Ed25519, None, Ok(vec![Algorithm::EdDSA])),
            (
                KeyShape::Rsa,
                Some(Algorithm::PS256),
                Ok(vec![Algorithm::PS256]),
            ),
            (
                KeyShape::Rsa,
                Some(Algorithm::HS256),
                Err("does not fit an RSA key"),
            ),
            (
                KeyShape::EcP256,
                Some(Algorithm::ES384),
                Err("does not fit an EC P-256 key"),
            ),
            (
                KeyShape::Hmac,
                Some(Algorithm::RS256),
                Err("does not fit an HMAC secret"),
            ),
        ];
        for (shape, explicit, expected) in cases {
            let got = permitted(shape, explicit, &all);
            match expected {
                Ok(algs) => assert_eq!(got, Ok(algs), "{shape:?} {explicit:?}"),
                Err(needle) => {
                    let err = got.expect_err("mismatch");
                    assert!(err.contains(needle), "{shape:?} {explicit:?}: {err}");
                }
            }
        }
        let only_rs = [Algorithm::RS256];
        let err = permitted(KeyShape::Ed25519, None, &only_rs).expect_err("nothing allowed");
        assert!(err.contains("allows none of EdDSA"), "{err}");
    }

    #[test]
    fn es512_and_unknown_algorithms_are_refused_in_config() {
        assert!(supported_algorithm("ES512").is_err());
        assert!(supported_algorithm("none").is_err());
        assert!(supported_algorithm("Ed448").is_err());
        assert_eq!(supported_algorithm("EdDSA"), Ok(Algorithm::EdDSA));
    }

    #[test]
    fn modulus_bits_ignore_leading_zeros() {
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }

    #[test]
    fn pem_texts_that_are_not_one_public_key_are_explained() {
        let cases = [
            ("just text", "no PEM block"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n\
                 -----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "2 PEM blocks",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "not an RSA, EC or Ed25519",
            ),
            (
                "-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----\n",
                "expected a PUBLIC KEY",
            ),
        ];
        for (pem, needle) in cases {
            let err = pem_public_key(pem.as_bytes()).expect_err("refused");
            assert!(err.contains(needle), "{pem:?}: {err}");
        }
    }
}
