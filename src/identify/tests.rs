//! End-to-end tests of the identify stage: real keys (generated here, never checked in), real
//! PEM and JWKS files in a temporary folder, tokens signed with jsonwebtoken or by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::config::{HumanDuration, JwtConfig, JwtKeyConfig};
use crate::event::{Fingerprint, RawToken};

const PEPPER: &str = "test-pepper-0123456789";
/// Test fixture, not a real secret.
const HMAC_SECRET: &str = "test-hmac-secret-0123456789-abcdef";
const ISSUER: &str = "https://id.example.com";
/// Event time the tests run at (seconds).
const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 30;

const ALL_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// A signing key generated for the tests and its public half in PEM.
struct TestKey {
    signing: EncodingKey,
    public_pem: String,
    /// The JWK of the public key (no kid, no alg).
    jwk: Jwk,
}

struct TestKeys {
    rsa: TestKey,
    p256: TestKey,
    p384: TestKey,
    ed25519: TestKey,
    /// An attacker's keys: same types, not configured anywhere.
    other_p256: TestKey,
    other_ed25519: TestKey,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn bare_jwk(signing: &EncodingKey, alg: Algorithm) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(signing, alg).expect("jwk");
    jwk.common.key_algorithm = None;
    jwk
}

fn rsa_key() -> TestKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("rsa");
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("pkcs8");
    let signing =
        EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).expect("rsa");
    let spki = pair.public_key().as_der().expect("spki");
    let jwk = bare_jwk(&signing, Algorithm::RS256);
    TestKey {
        signing,
        public_pem: pem("PUBLIC KEY", spki.as_ref()),
        jwk,
    }
}

fn ec_key(alg: Algorithm) -> TestKey {
    let signing_alg = match alg {
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
        _ => &ECDSA_P384_SHA384_FIXED_SIGNING,
    };
    let pair = EcdsaKeyPair::generate(signing_alg).expect("ec");
    let signing = EncodingKey::from_ec_der(pair.to_pkcs8v1().expect("pkcs8").as_ref());
    let spki = pair.public_key().as_der().expect("spki");
    let jwk = bare_jwk(&signing, alg);
    TestKey {
        signing,
        public_pem: pem("PUBLIC KEY", spki.as_ref()),
        jwk,
    }
}

fn ed_key() -> TestKey {
    let pair = Ed25519KeyPair::generate().expect("ed25519");
    let signing = EncodingKey::from_ed_der(pair.to_pkcs8v1().expect("pkcs8").as_ref());
    let spki = pair.public_key().as_der().expect("spki");
    let jwk = bare_jwk(&signing, Algorithm::EdDSA);
    TestKey {
        signing,
        public_pem: pem("PUBLIC KEY", spki.as_ref()),
        jwk,
    }
}

fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| TestKeys {
        rsa: rsa_key(),
        p256: ec_key(Algorithm::ES256),
        p384: ec_key(Algorithm::ES384),
        ed25519: ed_key(),
        other_p256: ec_key(Algorithm::ES256),
        other_ed25519: ed_key(),
    })
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn good_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": "api", "sub": "user-1", "jti": "jti-1", "sid": "sid-1",
        "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 600,
    })
}

fn with(claims: Value, changes: Value) -> Value {
    let mut claims = claims;
    if let (Value::Object(target), Value::Object(changes)) = (&mut claims, changes) {
        for (name, value) in changes {
            if value.is_null() {
                target.remove(&name);
            } else {
                target.insert(name, value);
            }
        }
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// HS256 over arbitrary header and payload JSON, for tokens jsonwebtoken would not produce.
fn hs256_raw(header: &Value, payload: &str, secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header.to_string()), b64(payload));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write key file");
    path
}

fn tokens_config(keys: Vec<JwtKeyConfig>, algorithms: &[&str]) -> TokensConfig {
    TokensConfig {
        pepper_env: None,
        pepper: Some(PEPPER.into()),
        session_cookie: "sid".into(),
        max_token_bytes: 8 * 1024,
        opaque_ttl: HumanDuration(Duration::from_secs(3600)),
        max_ttl: HumanDuration(Duration::from_secs(400 * 24 * 3600)),
        verification_cache_entries: 1000,
        jwt: JwtConfig {
            issuers: vec![ISSUER.into()],
            audiences: vec!["api".into()],
            algorithms: algorithms.iter().map(|a| a.to_string()).collect(),
            leeway: HumanDuration(Duration::from_secs(LEEWAY as u64)),
            require_exp: true,
            keys,
        },
    }
}

fn secrets_for(keys: &[JwtKeyConfig]) -> Secrets {
    let jwt_secrets: BTreeMap<usize, String> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| key.secret.clone().map(|s| (i, s)))
        .collect();
    Secrets {
        pepper: PEPPER.into(),
        jwt_secrets,
        ..Secrets::default()
    }
}

fn pem_key(kid: Option<&str>, path: PathBuf) -> JwtKeyConfig {
    JwtKeyConfig {
        kid: kid.map(str::to_string),
        public_key_pem: Some(path),
        ..JwtKeyConfig::default()
    }
}

fn secret_key(kid: Option<&str>, alg: &str) -> JwtKeyConfig {
    JwtKeyConfig {
        kid: kid.map(str::to_string),
        algorithm: Some(alg.into()),
        secret: Some(HMAC_SECRET.into()),
        ..JwtKeyConfig::default()
    }
}

fn jwk_value(key: &TestKey, kid: &str, alg: Option<KeyAlgorithm>) -> Value {
    let mut jwk = key.jwk.clone();
    jwk.common.key_id = Some(kid.into());
    jwk.common.key_algorithm = alg;
    serde_json::to_value(jwk).expect("jwk json")
}

/// An identifier with one key of every kind: HMAC secrets, PEM files, a JWKS file, and an
/// Ed25519 key without kid. The temporary folder lives as long as the fixture.
struct Fixture {
    _dir: tempfile::TempDir,
    identifier: Identifier,
}

fn build(keys: Vec<JwtKeyConfig>, algorithms: &[&str]) -> Result<Identifier, IdentifyBuildError> {
    let secrets = secrets_for(&keys);
    Identifier::from_config(&tokens_config(keys, algorithms), &secrets)
}

fn full_fixture() -> Fixture {
    let k = keys();
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = json!({"keys": [
        jwk_value(&k.rsa, "jwks-rsa", Some(KeyAlgorithm::RS256)),
        jwk_value(&k.p256, "jwks-ec", Some(KeyAlgorithm::ES256)),
        jwk_value(&k.ed25519, "jwks-ed", None),
        // Keys we cannot use are skipped, not fatal: an encryption key and an Ed448 key.
        with(jwk_value(&k.p384, "jwks-enc", None), json!({"use": "enc"})),
        {"kty": "OKP", "crv": "Ed448", "kid": "jwks-ed448", "x": b64([7u8; 57])},
    ]});
    let keys = vec![
        secret_key(Some("hs256"), "HS256"),
        secret_key(Some("hs384"), "HS384"),
        secret_key(Some("hs512"), "HS512"),
        pem_key(Some("rsa"), write(dir.path(), "rsa.pem", &k.rsa.public_pem)),
        pem_key(
            Some("p256"),
            write(dir.path(), "p256.pem", &k.p256.public_pem),
        ),
        pem_key(
            Some("p384"),
            write(dir.path(), "p384.pem", &k.p384.public_pem),
        ),
        pem_key(
            Some("ed"),
            write(dir.path(), "ed.pem", &k.ed25519.public_pem),
        ),
        JwtKeyConfig {
            jwks_file: Some(write(dir.path(), "jwks.json", &jwks.to_string())),
            ..JwtKeyConfig::default()
        },
        pem_key(
            None,
            write(dir.path(), "ed-nokid.pem", &k.ed25519.public_pem),
        ),
    ];
    let identifier = build(keys, &ALL_ALGORITHMS).expect("identifier builds");
    Fixture {
        _dir: dir,
        identifier,
    }
}

fn bearer(token: &str) -> Credential {
    Credential::Bearer(RawToken::new(token))
}

fn at(secs: i64) -> EventTime {
    EventTime::from_secs(secs)
}

#[test]
fn every_algorithm_family_verifies() {
    let fixture = full_fixture();
    let k = keys();
    let hmac = EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let cases: [(&str, Algorithm, Option<&str>, &EncodingKey); 17] = [
        ("HS256 secret", Algorithm::HS256, Some("hs256"), &hmac),
        ("HS384 secret", Algorithm::HS384, Some("hs384"), &hmac),
        ("HS512 secret", Algorithm::HS512, Some("hs512"), &hmac),
        ("RS256 PEM", Algorithm::RS256, Some("rsa"), &k.rsa.signing),
        ("RS384 PEM", Algorithm::RS384, Some("rsa"), &k.rsa.signing),
        ("RS512 PEM", Algorithm::RS512, Some("rsa"), &k.rsa.signing),
        ("PS256 PEM", Algorithm::PS256, Some("rsa"), &k.rsa.signing),
        ("PS384 PEM", Algorithm::PS384, Some("rsa"), &k.rsa.signing),
        ("PS512 PEM", Algorithm::PS512, Some("rsa"), &k.rsa.signing),
        ("ES256 PEM", Algorithm::ES256, Some("p256"), &k.p256.signing),
        ("ES384 PEM", Algorithm::ES384, Some("p384"), &k.p384.signing),
        (
            "EdDSA PEM",
            Algorithm::EdDSA,
            Some("ed"),
            &k.ed25519.signing,
        ),
        (
            "RS256 JWKS",
            Algorithm::RS256,
            Some("jwks-rsa"),
            &k.rsa.signing,
        ),
        (
            "ES256 JWKS",
            Algorithm::ES256,
            Some("jwks-ec"),
            &k.p256.signing,
        ),
        (
            "EdDSA JWKS",
            Algorithm::EdDSA,
            Some("jwks-ed"),
            &k.ed25519.signing,
        ),
        ("EdDSA no kid", Algorithm::EdDSA, None, &k.ed25519.signing),
        // RFC 7519 allows an audience array; one match is enough.
        ("HS256 aud array", Algorithm::HS256, Some("hs256"), &hmac),
    ];
    for (name, alg, kid, key) in cases {
        let claims = if name.ends_with("aud array") {
            with(good_claims(), json!({"aud": ["other", "api"]}))
        } else {
            good_claims()
        };
        let token = sign(alg, kid, key, &claims);
        let identity = fixture
            .identifier
            .identify(&bearer(&token), at(NOW))
            .unwrap_or_else(|reason| panic!("{name}: rejected as {}", reason.code()));
        assert_eq!(identity.kind, TokenKind::Jwt, "{name}");
        assert_eq!(
            identity.fingerprint,
            fixture
                .identifier
                .fingerprinter()
                .fingerprint(token.as_bytes()),
            "{name}"
        );
        let expected = Claims {
            iss: Some(ISSUER.into()),
            sub: Some("user-1".into()),
            jti: Some("jti-1".into()),
            sid: Some("sid-1".into()),
            exp: Some(NOW + 600),
            iat: Some(NOW - 60),
            nbf: Some(NOW - 60),
        };
        assert_eq!(identity.claims.as_deref(), Some(&expected), "{name}");
    }
}

#[test]
fn every_rejection_reason() {
    let fixture = full_fixture();
    let k = keys();
    let hmac = EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let secret = HMAC_SECRET.as_bytes();
    let good = good_claims();
    let hs = |claims: Value| sign(Algorithm::HS256, Some("hs256"), &hmac, &claims);
    let valid_hs = hs(good.clone());
    let (valid_head, _) = valid_hs.rsplit_once('.').expect("three parts");
    let (valid_header, _) = valid_head.split_once('.').expect("three parts");
    let jwk_injection = {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("ed".into());
        header.jwk = Some(k.other_ed25519.jwk.clone());
        header.jku = Some("https://attacker.example/jwks.json".into());
        jsonwebtoken::encode(&header, &good, &k.other_ed25519.signing).expect("sign")
    };
    let rsa_pem_as_secret = EncodingKey::from_secret(k.rsa.public_pem.as_bytes());
    let payload = good.to_string();

    let cases: Vec<(&str, String, RejectReason)> = vec![
        // alg_not_allowed
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","kid":"hs256"}"#),
                b64(&payload)
            ),
            RejectReason::AlgNotAllowed,
        ),
        (
            "alg none, no kid",
            format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&payload)),
            RejectReason::AlgNotAllowed,
        ),
        (
            "ES512",
            hs256_raw(&json!({"alg": "ES512", "kid": "p256"}), &payload, secret),
            RejectReason::AlgNotAllowed,
        ),
        (
            "Ed448",
            hs256_raw(&json!({"alg": "Ed448", "kid": "ed"}), &payload, secret),
            RejectReason::AlgNotAllowed,
        ),
        (
            "HS256 on the RSA key's kid, PEM bytes as secret",
            sign(Algorithm::HS256, Some("rsa"), &rsa_pem_as_secret, &good),
            RejectReason::AlgNotAllowed,
        ),
        (
            "RS256 on an HMAC key's kid",
            sign(Algorithm::RS256, Some("hs256"), &k.rsa.signing, &good),
            RejectReason::AlgNotAllowed,
        ),
        (
            "HS384 on the HS256 key",
            sign(Algorithm::HS384, Some("hs256"), &hmac, &good),
            RejectReason::AlgNotAllowed,
        ),
        (
            "ES384 on a P-256 key",
            sign(Algorithm::ES384, Some("p256"), &k.p384.signing, &good),
            RejectReason::AlgNotAllowed,
        ),
        (
            "PS256 on a JWK whose alg is RS256",
            sign(Algorithm::PS256, Some("jwks-rsa"), &k.rsa.signing, &good),
            RejectReason::AlgNotAllowed,
        ),
        // bad_signature
        (
            "tampered payload",
            format!(
                "{valid_header}.{}.{}",
                b64(with(good.clone(), json!({"sub": "admin"})).to_string()),
                valid_hs.rsplit_once('.').expect("sig").1
            ),
            RejectReason::BadSignature,
        ),
        (
            "wrong secret",
            sign(
                Algorithm::HS256,
                Some("hs256"),
                &EncodingKey::from_secret(b"guess"),
                &good,
            ),
            RejectReason::BadSignature,
        ),
        (
            "other P-256 key",
            sign(Algorithm::ES256, Some("p256"), &k.other_p256.signing, &good),
            RejectReason::BadSignature,
        ),
        (
            "null signature",
            format!("{valid_head}."),
            RejectReason::BadSignature,
        ),
        (
            "embedded jwk and jku are not trusted",
            jwk_injection,
            RejectReason::BadSignature,
        ),
        // expired / not_yet_valid (leeway 30 s)
        (
            "expired",
            hs(with(good.clone(), json!({"exp": NOW - LEEWAY - 1}))),
            RejectReason::Expired,
        ),
        (
            "exp + leeway == event time",
            hs(with(good.clone(), json!({"exp": NOW - LEEWAY}))),
            RejectReason::Expired,
        ),
        (
            "not yet valid",
            hs(with(good.clone(), json!({"nbf": NOW + LEEWAY + 1}))),
            RejectReason::NotYetValid,
        ),
        // wrong_issuer / wrong_audience
        (
            "other issuer",
            hs(with(good.clone(), json!({"iss": "https://evil.example"}))),
            RejectReason::WrongIssuer,
        ),
        (
            "no issuer",
            hs(with(good.clone(), json!({"iss": null}))),
            RejectReason::WrongIssuer,
        ),
        (
            "other audience",
            hs(with(good.clone(), json!({"aud": "billing"}))),
            RejectReason::WrongAudience,
        ),
        (
            "audience array without ours",
            hs(with(good.clone(), json!({"aud": ["billing", "admin"]}))),
            RejectReason::WrongAudience,
        ),
        (
            "no audience",
            hs(with(good.clone(), json!({"aud": null}))),
            RejectReason::WrongAudience,
        ),
        // malformed
        (
            "string exp (CVE-2026-25537)",
            hs(with(
                good.clone(),
                json!({"exp": (NOW - 999_999).to_string()}),
            )),
            RejectReason::Malformed,
        ),
        (
            "string nbf",
            hs(with(
                good.clone(),
                json!({"nbf": (NOW + 999_999).to_string()}),
            )),
            RejectReason::Malformed,
        ),
        (
            "missing exp",
            hs(with(good.clone(), json!({"exp": null}))),
            RejectReason::Malformed,
        ),
        (
            "crit header",
            hs256_raw(
                &json!({"alg": "HS256", "kid": "hs256", "crit": ["exp"], "exp": 1}),
                &payload,
                secret,
            ),
            RejectReason::Malformed,
        ),
        (
            "kid too long",
            hs256_raw(
                &json!({"alg": "HS256", "kid": "k".repeat(300)}),
                &payload,
                secret,
            ),
            RejectReason::Malformed,
        ),
        (
            "payload not JSON",
            hs256_raw(&json!({"alg": "HS256", "kid": "hs256"}), "not json", secret),
            RejectReason::Malformed,
        ),
        (
            "garbage parts",
            "abc.d!f.ghi".into(),
            RejectReason::Malformed,
        ),
        // too_large (default cap 8 KiB), before anything decodes it
        (
            "oversized JWT",
            hs(with(good.clone(), json!({"pad": "x".repeat(9000)}))),
            RejectReason::TooLarge,
        ),
        (
            "oversized opaque token",
            "o".repeat(8 * 1024 + 1),
            RejectReason::TooLarge,
        ),
        // unknown_kid
        (
            "unknown kid",
            sign(Algorithm::HS256, Some("nope"), &hmac, &good),
            RejectReason::UnknownKid,
        ),
        (
            "skipped JWKS key's kid",
            sign(
                Algorithm::EdDSA,
                Some("jwks-ed448"),
                &k.ed25519.signing,
                &good,
            ),
            RejectReason::UnknownKid,
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (name, token, expected) in cases {
        let got = fixture.identifier.identify(&bearer(&token), at(NOW));
        match got {
            Ok(_) => panic!("{name}: accepted"),
            Err(reason) => assert_eq!(reason.code(), expected.code(), "{name}"),
        }
        seen.insert(expected);
    }
    assert_eq!(
        seen.len(),
        RejectReason::ALL.len(),
        "every reason is exercised"
    );
}

#[test]
fn time_checks_use_event_time_with_leeway_at_the_boundaries() {
    let fixture = full_fixture();
    let hmac = EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let claims = with(good_claims(), json!({"nbf": NOW, "exp": NOW + 100}));
    let token = sign(Algorithm::HS256, Some("hs256"), &hmac, &claims);
    let cases = [
        (NOW - LEEWAY - 1, Err(RejectReason::NotYetValid)),
        (NOW - LEEWAY, Ok(())),
        (NOW + 100 + LEEWAY - 1, Ok(())),
        (NOW + 100 + LEEWAY, Err(RejectReason::Expired)),
        // Far in the wall-clock past or future: only the event time matters.
        (0, Err(RejectReason::NotYetValid)),
        (NOW * 2, Err(RejectReason::Expired)),
    ];
    for (secs, expected) in cases {
        let got = fixture
            .identifier
            .identify(&bearer(&token), at(secs))
            .map(|_| ());
        assert_eq!(got, expected, "event time {secs}");
    }
    // Millisecond precision: one ms before exp + leeway is still valid.
    let last_ms = EventTime((NOW + 100 + LEEWAY) * 1000 - 1);
    assert!(
        fixture
            .identifier
            .identify(&bearer(&token), last_ms)
            .is_ok()
    );
}

#[test]
fn key_confusion_is_impossible_even_when_both_families_are_allowed() {
    let k = keys();
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa_path = write(dir.path(), "rsa.pem", &k.rsa.public_pem);
    // A permissive operator allows HS256 and RS256; the only key is the RSA public key.
    let identifier =
        build(vec![pem_key(None, rsa_path.clone())], &["RS256", "HS256"]).expect("builds");
    let good = good_claims();
    let pem_bytes = std::fs::read(&rsa_path).expect("pem");
    let cases = [
        ("PEM file bytes", EncodingKey::from_secret(&pem_bytes)),
        (
            "PEM text",
            EncodingKey::from_secret(k.rsa.public_pem.as_bytes()),
        ),
    ];
    for (name, forged_key) in cases {
        let forged = sign(Algorithm::HS256, None, &forged_key, &good);
        let got = identifier.identify(&bearer(&forged), at(NOW));
        assert_eq!(got.map(|_| ()), Err(RejectReason::AlgNotAllowed), "{name}");
    }
    assert_eq!(
        identifier.signature_verifications(),
        0,
        "no HMAC was ever computed"
    );
    // The real RS256 token passes; PS256 is not configured, so the same key refuses it.
    let real = sign(Algorithm::RS256, None, &k.rsa.signing, &good);
    assert!(identifier.identify(&bearer(&real), at(NOW)).is_ok());
    let pss = sign(Algorithm::PS256, None, &k.rsa.signing, &good);
    assert_eq!(
        identifier.identify(&bearer(&pss), at(NOW)).map(|_| ()),
        Err(RejectReason::AlgNotAllowed)
    );
}

#[test]
fn tokens_without_kid_only_try_keys_without_kid() {
    let identifier = build(vec![secret_key(Some("only"), "HS256")], &["HS256"]).expect("builds");
    let hmac = EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let no_kid = sign(Algorithm::HS256, None, &hmac, &good_claims());
    assert_eq!(
        identifier.identify(&bearer(&no_kid), at(NOW)).map(|_| ()),
        Err(RejectReason::UnknownKid)
    );
    let with_kid = sign(Algorithm::HS256, Some("only"), &hmac, &good_claims());
    assert!(identifier.identify(&bearer(&with_kid), at(NOW)).is_ok());
}

#[test]
fn a_cached_token_is_verified_once_and_still_expires_on_time() {
    let fixture = full_fixture();
    let identifier = &fixture.identifier;
    let hmac = EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let token = sign(Algorithm::HS256, Some("hs256"), &hmac, &good_claims());
    let credential = bearer(&token);
    let before = identifier.signature_verifications();
    let steps = [
        (NOW, Ok(())),
        (NOW + 1, Ok(())),
        (NOW + 600 + LEEWAY, Err(RejectReason::Expired)),
        (NOW - 3600, Err(RejectReason::NotYetValid)),
        (NOW + 2, Ok(())),
    ];
    for (secs, expected) in steps {
        let got = identifier.identify(&credential, at(secs)).map(|_| ());
        assert_eq!(got, expected, "event time {secs}");
        assert_eq!(
            identifier.signature_verifications(),
            before + 1,
            "at {secs}"
        );
    }
    // Rejections that do not depend on time are cached too.
    let forged = sign(
        Algorithm::HS256,
        Some("hs256"),
        &EncodingKey::from_secret(b"x"),
        &with(good_claims(), json!({"jti": "jti-forged"})),
    );
    for _ in 0..3 {
        let got = identifier.identify(&bearer(&forged), at(NOW)).map(|_| ());
        assert_eq!(got, Err(RejectReason::BadSignature));
    }
    assert_eq!(identifier.signature_verifications(), before + 2);
}

#[test]
fn a_forged_signature_over_a_real_token_neither_passes_nor_poisons_it() {
    let fixture = full_fixture();
    let identifier = &fixture.identifier;
    let hmac = EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let token = sign(Algorithm::HS256, Some("hs256"), &hmac, &good_claims());
    let (signed, _) = token.rsplit_once('.').expect("three parts");
    let forged = format!("{signed}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // The forged copy comes first (a thief trying to get the real token rejected as forged).
    assert_eq!(
        identifier.identify(&bearer(&forged), at(NOW)).map(|_| ()),
        Err(RejectReason::BadSignature)
    );
    let real = identifier.identify(&bearer(&token), at(NOW)).expect("real");
    let padded = identifier
        .identify(&bearer(&format!("{token}==")), at(NOW))
        .expect("a padded signature is the same signature");
    assert_eq!(real.fingerprint, padded.fingerprint);
    assert_eq!(
        identifier.identify(&bearer(&forged), at(NOW)).map(|_| ()),
        Err(RejectReason::BadSignature),
        "a verified copy never lends its verdict to another signature"
    );
    assert!(identifier.identify(&bearer(&token), at(NOW)).is_ok());
}

#[test]
fn the_cache_stays_within_its_bound_and_drops_lapsed_tokens_first() {
    let mut config = tokens_config(vec![secret_key(Some("hs"), "HS256")], &["HS256"]);
    config.verification_cache_entries = 4;
    let secrets = secrets_for(&config.jwt.keys);
    let identifier = Identifier::from_config(&config, &secrets).expect("builds");
    let hmac = EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    let token = |n: i64, exp: i64| {
        let claims = with(good_claims(), json!({"jti": format!("t{n}"), "exp": exp}));
        sign(Algorithm::HS256, Some("hs"), &hmac, &claims)
    };
    for n in 0..40 {
        let t = token(n, NOW + 10_000);
        assert!(identifier.identify(&bearer(&t), at(NOW)).is_ok());
        assert!(identifier.cached_verifications() <= 4, "after {n} tokens");
    }
    // A fresh cache full of short-lived tokens; a later event evicts all of them at once.
    let identifier = Identifier::from_config(&config, &secrets).expect("builds");
    let short: Vec<String> = (0..4).map(|n| token(100 + n, NOW + 10)).collect();
    for t in &short {
        assert!(identifier.identify(&bearer(t), at(NOW)).is_ok());
    }
    assert_eq!(identifier.cached_verifications(), 4);
    let long = token(200, NOW + 10_000);
    assert!(identifier.identify(&bearer(&long), at(NOW + 1000)).is_ok());
    assert_eq!(
        identifier.cached_verifications(),
        1,
        "lapsed entries evicted"
    );
    let checks = identifier.signature_verifications();
    assert!(identifier.identify(&bearer(&long), at(NOW + 1001)).is_ok());
    assert_eq!(
        identifier.signature_verifications(),
        checks,
        "survivor still cached"
    );
}

#[test]
fn opaque_upstream_and_unconfigured_credentials() {
    let fixture = full_fixture();
    let fingerprinter = fixture.identifier.fingerprinter().clone();
    let opaque = fixture
        .identifier
        .identify(
            &Credential::Cookie(RawToken::new("opaque-session-id")),
            at(NOW),
        )
        .expect("opaque");
    assert_eq!(opaque.kind, TokenKind::Opaque);
    assert_eq!(
        opaque.fingerprint,
        fingerprinter.fingerprint(b"opaque-session-id")
    );
    assert!(opaque.claims.is_none());

    let upstream = Fingerprint([9; 16]);
    let identity = fixture
        .identifier
        .identify(&Credential::Fingerprint(upstream), at(NOW))
        .expect("upstream");
    assert_eq!(
        (identity.kind, identity.fingerprint),
        (TokenKind::Upstream, upstream)
    );

    assert_eq!(
        fixture
            .identifier
            .identify(&bearer(""), at(NOW))
            .map(|_| ()),
        Err(RejectReason::Malformed)
    );

    // Without keys, a JWT-shaped token is just an opaque token (and never parsed).
    let no_keys = build(vec![], &[]).expect("builds");
    let jwt_like = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
    let identity = no_keys
        .identify(&bearer(&jwt_like), at(NOW))
        .expect("opaque");
    assert_eq!(identity.kind, TokenKind::Opaque);
    assert_eq!(no_keys.signature_verifications(), 0);
}

#[test]
fn unusable_keys_are_build_errors_that_name_the_key() {
    let k = keys();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good_first = || secret_key(Some("ok"), "HS256");
    let rsa_private = {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("rsa");
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("pkcs8");
        pem("PRIVATE KEY", der.as_ref())
    };
    let only_enc = json!({"keys": [with(jwk_value(&k.p256, "e", None), json!({"use": "enc"}))]});
    let secret_no_alg = JwtKeyConfig {
        secret: Some(HMAC_SECRET.into()),
        ..JwtKeyConfig::default()
    };
    let unresolved_env = JwtKeyConfig {
        algorithm: Some("HS256".into()),
        secret_env: Some("NOT_RESOLVED".into()),
        ..JwtKeyConfig::default()
    };
    let with_alg = |path: PathBuf, alg: &str| JwtKeyConfig {
        algorithm: Some(alg.into()),
        ..pem_key(None, path)
    };
    let cases: Vec<(&str, Vec<JwtKeyConfig>, &[&str], &str)> = vec![
        (
            "unreadable file",
            vec![good_first(), pem_key(None, d.join("missing.pem"))],
            &ALL_ALGORITHMS,
            "tokens.jwt.keys[1]: cannot read",
        ),
        (
            "not PEM",
            vec![pem_key(None, write(d, "garbage.pem", "hello"))],
            &ALL_ALGORITHMS,
            "tokens.jwt.keys[0]: ",
        ),
        (
            "private key",
            vec![pem_key(None, write(d, "private.pem", &rsa_private))],
            &ALL_ALGORITHMS,
            "private key",
        ),
        (
            "HS256 configured on an RSA PEM",
            vec![
                good_first(),
                with_alg(write(d, "rsa.pem", &k.rsa.public_pem), "HS256"),
            ],
            &ALL_ALGORITHMS,
            "tokens.jwt.keys[1]: algorithm HS256 does not fit an RSA key",
        ),
        (
            "ES384 configured on a P-256 PEM",
            vec![with_alg(write(d, "p256.pem", &k.p256.public_pem), "ES384")],
            &ALL_ALGORITHMS,
            "does not fit an EC P-256 key",
        ),
        (
            "key algorithm not in the allowed list",
            vec![with_alg(write(d, "rsa2.pem", &k.rsa.public_pem), "PS256")],
            &["RS256"],
            "PS256 is not in tokens.jwt.algorithms",
        ),
        (
            "allowed list has nothing for this key",
            vec![pem_key(None, write(d, "ed.pem", &k.ed25519.public_pem))],
            &["RS256"],
            "allows none of EdDSA",
        ),
        (
            "secret without algorithm",
            vec![secret_no_alg],
            &["HS256"],
            "need algorithm",
        ),
        (
            "secret not resolved",
            vec![unresolved_env],
            &["HS256"],
            "was not resolved",
        ),
        (
            "JWKS not JSON",
            vec![JwtKeyConfig {
                jwks_file: Some(write(d, "bad.json", "{nope")),
                ..JwtKeyConfig::default()
            }],
            &ALL_ALGORITHMS,
            "tokens.jwt.keys[0]: ",
        ),
        (
            "JWKS without a signature key",
            vec![JwtKeyConfig {
                jwks_file: Some(write(d, "enc.json", &only_enc.to_string())),
                ..JwtKeyConfig::default()
            }],
            &ALL_ALGORITHMS,
            "no usable signature key",
        ),
        (
            "ES512 in the allowed list",
            vec![good_first()],
            &["ES512", "HS256"],
            "tokens.jwt.algorithms[0]: ES512 is not supported",
        ),
    ];
    for (name, keys, algorithms, needle) in cases {
        let err = match build(keys, algorithms) {
            Ok(_) => panic!("{name}: built"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(needle), "{name}: {err}");
        assert!(
            !err.contains(HMAC_SECRET),
            "{name}: secret leaked into {err}"
        );
    }

    // Several bad keys: all reported at once.
    let err = build(
        vec![
            good_first(),
            pem_key(None, d.join("missing-1.pem")),
            pem_key(None, d.join("missing-2.pem")),
        ],
        &ALL_ALGORITHMS,
    )
    .err()
    .expect("fails")
    .to_string();
    assert!(
        err.contains("tokens.jwt.keys[1]") && err.contains("tokens.jwt.keys[2]"),
        "{err}"
    );
}

#[test]
fn unverified_claims_read_forged_tokens_for_deny_lookups_only() {
    let forged = format!(
        "{}.{}.",
        b64(r#"{"alg":"none"}"#),
        b64(r#"{"iss":"https://id.example.com","jti":"revoked-jti","sub":"u1","iat":5}"#)
    );
    let claims = unverified_claims(&forged, 8192).expect("claims");
    assert_eq!(claims.jti.as_deref(), Some("revoked-jti"));
    assert_eq!(claims.iss.as_deref(), Some(ISSUER));
    assert_eq!(claims.iat, Some(5));
    assert!(
        unverified_claims(&forged, forged.len() - 1).is_none(),
        "size cap"
    );
    assert!(unverified_claims("opaque-session-id", 8192).is_none());
}

#[test]
fn reason_codes_are_the_contract() {
    let codes: Vec<&str> = RejectReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [
            "alg_not_allowed",
            "bad_signature",
            "expired",
            "not_yet_valid",
            "wrong_issuer",
            "wrong_audience",
            "malformed",
            "too_large",
            "unknown_kid",
        ]
    );
}

#[test]
fn the_identifier_can_be_shared_across_workers() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Identifier>();
    shareable::<Fingerprinter>();
}
