//! Criterion benches for the identify stage (DESIGN §3–§4), one per hot path:
//!
//! - `fingerprint/600B`: HMAC-SHA256 fingerprint of a 600-byte token (every event pays this);
//! - `identify/cached_rs256`: a JWT seen before (the common case: cache hit + time checks);
//! - `identify/uncached/{HS256,RS256,ES256,EdDSA}`: first sight of a token — full parse and
//!   signature verification (cache disabled, so every iteration verifies).
//!
//! Keys are generated at start-up (never checked in); public keys go through real PEM files.
//! Run: `cargo bench --bench identify -- --warm-up-time 1 --measurement-time 3`.

use std::path::Path;
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, black_box};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokenwatch::config::{HumanDuration, JwtConfig, JwtKeyConfig, Secrets, TokensConfig};
use tokenwatch::event::{Credential, EventTime, RawToken};
use tokenwatch::identify::{Fingerprinter, Identifier};

const PEPPER: &str = "bench-pepper-0123456789";
/// Bench fixture, not a real secret.
const HMAC_SECRET: &str = "bench-hmac-secret-0123456789-abcdef";
const NOW: i64 = 1_800_000_000;

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<String> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Signing keys and the key configs (PEM files in `dir`, an HMAC secret) that verify them.
struct Keys {
    hmac: EncodingKey,
    rsa: EncodingKey,
    ec: EncodingKey,
    ed: EncodingKey,
    configs: Vec<JwtKeyConfig>,
}

fn keys(dir: &Path) -> Keys {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let rsa_pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("rsa");
    let rsa_pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&rsa_pair).expect("pkcs8");
    let rsa = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", rsa_pkcs8.as_ref()).as_bytes())
        .expect("rsa key");
    let rsa_pub = pem(
        "PUBLIC KEY",
        rsa_pair.public_key().as_der().expect("spki").as_ref(),
    );

    let ec_pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
    let ec = EncodingKey::from_ec_der(ec_pair.to_pkcs8v1().expect("pkcs8").as_ref());
    let ec_pub = pem(
        "PUBLIC KEY",
        ec_pair.public_key().as_der().expect("spki").as_ref(),
    );

    let ed_pair = Ed25519KeyPair::generate().expect("ed25519");
    let ed = EncodingKey::from_ed_der(ed_pair.to_pkcs8v1().expect("pkcs8").as_ref());
    let ed_pub = pem(
        "PUBLIC KEY",
        ed_pair.public_key().as_der().expect("spki").as_ref(),
    );

    let pem_key = |kid: &str, path| JwtKeyConfig {
        kid: Some(kid.into()),
        public_key_pem: Some(path),
        ..JwtKeyConfig::default()
    };
    let configs = vec![
        JwtKeyConfig {
            kid: Some("hs".into()),
            algorithm: Some("HS256".into()),
            secret: Some(HMAC_SECRET.into()),
            ..JwtKeyConfig::default()
        },
        pem_key("rsa", write("rsa.pem", &rsa_pub)),
        pem_key("ec", write("ec.pem", &ec_pub)),
        pem_key("ed", write("ed.pem", &ed_pub)),
    ];
    Keys {
        hmac: EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
        rsa,
        ec,
        ed,
        configs,
    }
}

fn identifier(configs: &[JwtKeyConfig], cache_entries: usize) -> Identifier {
    let tokens = TokensConfig {
        pepper_env: None,
        pepper: Some(PEPPER.into()),
        session_cookie: "sid".into(),
        max_token_bytes: 8 * 1024,
        opaque_ttl: HumanDuration(Duration::from_secs(3600)),
        max_ttl: HumanDuration(Duration::from_secs(400 * 24 * 3600)),
        verification_cache_entries: cache_entries,
        jwt: JwtConfig {
            issuers: vec!["https://id.example.com".into()],
            audiences: vec!["api".into()],
            algorithms: ["HS256", "RS256", "ES256", "EdDSA"]
                .iter()
                .map(|a| a.to_string())
                .collect(),
            leeway: HumanDuration(Duration::from_secs(30)),
            require_exp: true,
            keys: configs.to_vec(),
        },
    };
    let mut secrets = Secrets {
        pepper: PEPPER.into(),
        ..Secrets::default()
    };
    secrets.jwt_secrets.insert(0, HMAC_SECRET.into());
    Identifier::from_config(&tokens, &secrets).expect("identifier")
}

fn token(alg: Algorithm, kid: &str, key: &EncodingKey) -> Credential {
    let claims = json!({
        "iss": "https://id.example.com", "aud": "api", "sub": "user-12345",
        "jti": "6f1c2a0e-93f4-4b8e-9a57-0c1f2d3e4b5a", "sid": "s-0123456789",
        "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3600,
    });
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let jwt = jsonwebtoken::encode(&header, &claims, key).expect("sign");
    Credential::Bearer(RawToken::new(jwt))
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = keys(dir.path());
    let at = EventTime::from_secs(NOW);

    let fingerprinter = Fingerprinter::new(PEPPER);
    let opaque = "t".repeat(600);
    c.bench_function("fingerprint/600B", |b| {
        b.iter(|| fingerprinter.fingerprint(black_box(opaque.as_bytes())))
    });

    let cached = identifier(&keys.configs, 1000);
    let rs256 = token(Algorithm::RS256, "rsa", &keys.rsa);
    cached.identify(&rs256, at).expect("valid");
    c.bench_function("identify/cached_rs256", |b| {
        b.iter(|| cached.identify(black_box(&rs256), at).expect("valid"))
    });

    // Cache disabled: every call parses and verifies.
    let uncached = identifier(&keys.configs, 0);
    let cases = [
        ("HS256", token(Algorithm::HS256, "hs", &keys.hmac)),
        ("RS256", rs256.clone()),
        ("ES256", token(Algorithm::ES256, "ec", &keys.ec)),
        ("EdDSA", token(Algorithm::EdDSA, "ed", &keys.ed)),
    ];
    let mut group = c.benchmark_group("identify/uncached");
    for (name, credential) in &cases {
        uncached.identify(credential, at).expect("valid");
        group.bench_function(*name, |b| {
            b.iter(|| uncached.identify(black_box(credential), at).expect("valid"))
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
