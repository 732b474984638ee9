//! The hardening review's attacks (issue "no encoding of a revoked credential passes the
//! check"), each replayed against the real binary: `tokenwatch run` with its check API on
//! 127.0.0.1, or `tokenwatch replay`. Every case here failed on the release before the fix.
//!
//! | id | attack | case |
//! |---|---|---|
//! | H1 | `=` padding appended to a revoked JWT's signature | `h1_padded_jwt_*` |
//! | H2 | an ES256 signature (r, s) turned into (r, n−s) | `h2_ecdsa_twin_*` |
//! | M1 | a revoked cookie after a decoy, in a second header, percent-encoded, quoted, after `a=b,` | `m1_cookie_encodings_are_denied` |
//! | L2 | `Bearer<TAB>`, lowercase `bearer`, a decoy Authorization header first, `?access_token=` | `l2_authorization_forms_are_denied` |
//! | L3 | a token whose bytes are not UTF-8 | `l3_invalid_utf8_token_is_one_token_on_both_sides` |
//! | M2 | one log line dated 9999-12-31 | `m2_a_line_from_the_future_moves_nothing` |
//! | L4 | RFC 7009 revocation of a token with an unverified `exp` of 2^63−1 | `l4_only_a_verified_exp_sets_the_expiry` |
//!
//! The journal rows (M3 second instance, M5 damaged or missing journal, L1 full disk, L6 flipped
//! byte) are in `tests/journal.rs`, M4 (idle connections at the open-file limit) in
//! `tests/connections.rs`, L5 (memory bound) in `tests/memory_bound.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use common::*;
use tokenwatch::lab::world::NetKind;

/// A request header as name and raw bytes.
type Header<'a> = (&'a str, &'a [u8]);

/// Revoke `token` the RFC 7009 way through the admin API.
async fn revoke(client: &reqwest::Client, d: &Daemon, token: &str) -> Value {
    let r = client
        .post(d.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// `GET /v1/check` with these headers (and query).
async fn check_with(
    client: &reqwest::Client,
    d: &Daemon,
    query: &str,
    headers: &[Header<'_>],
) -> u16 {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    client
        .get(d.url(&format!("/v1/check{query}")))
        .headers(map)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn started(f: &Fixture) -> (reqwest::Client, Daemon) {
    let client = reqwest::Client::new();
    let daemon = Daemon::start(f);
    wait_ready(&client, &daemon).await;
    (client, daemon)
}

/// Poll until the check denies `headers` (the detector is asynchronous to the API).
async fn until_denied(client: &reqwest::Client, d: &Daemon, headers: &[Header<'_>]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while check_with(client, d, "", headers).await != 401 {
        assert!(Instant::now() < deadline, "never revoked");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An owner's honest request in Berlin, then a thief's in São Paulo ten minutes later: the
/// impossible travel every case below uses to make the detector revoke.
fn owner_then_thief(owner: &str, thief: &str) -> Vec<String> {
    vec![
        line(
            recent(0),
            ip("Berlin", NetKind::Residential, 4),
            CHROME,
            owner,
            "/",
        ),
        line(
            recent(60),
            ip("Berlin", NetKind::Residential, 4),
            CHROME,
            owner,
            "/a",
        ),
        line(
            recent(600),
            ip("São Paulo", NetKind::AltResidential, 4),
            CHROME,
            thief,
            "/b",
        ),
    ]
}

#[tokio::test]
async fn h1_padded_jwt_is_denied_and_tracked_as_the_same_token() {
    let f = daemon_fixture("");
    let token = f.jwt("hana", recent(0).secs());
    let padded = format!("{token}==");
    let (client, daemon) = started(&f).await;
    revoke(&client, &daemon, &token).await;
    assert_eq!(check(&client, &daemon, &token).await, 401);
    assert_eq!(
        check(&client, &daemon, &padded).await,
        401,
        "padded signature"
    );
    drop(daemon);

    // The detector verifies the padded token (PyJWT-style applications accept it) and sees
    // it as the owner's token: a thief using it far away is revoked, on the same fingerprint.
    let (decisions, _) = f.replay(&owner_then_thief(&token, &padded));
    let revoked = about(&decisions, &f.fingerprint(&token));
    assert!(
        revoked.iter().any(|d| d["action"] == "revoke"),
        "padded thief not detected: {decisions:?}"
    );
    assert_eq!(f.fingerprint(&padded), f.fingerprint(&token));
}

/// P-256's group order n, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The other valid ECDSA signature over the same message: (r, s) → (r, n − s).
fn ecdsa_twin(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(sig.len(), 64, "ES256 signatures are r || s");
    let s: Vec<u8> = sig[32..].to_vec();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        sig[32 + i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A fixture that also accepts ES256 tokens of a freshly generated key (a JWKS file), and a
/// signer for them.
fn es256_fixture() -> (Fixture, impl Fn(&str) -> String) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    let f =
        daemon_fixture("[[tokens.jwt.keys]]\njwks_file = \"jwks.json\"\nalgorithm = \"ES256\"\n");
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "es1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]});
    std::fs::write(f.path("jwks.json"), jwks.to_string()).unwrap();
    let config = std::fs::read_to_string(&f.config).unwrap().replace(
        "algorithms = [\"HS256\"]",
        "algorithms = [\"HS256\", \"ES256\"]",
    );
    std::fs::write(&f.config, config).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let sign = move |sub: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("es1".into());
        let iat = recent(0).secs();
        let claims = json!({
            "iss": ISSUER, "aud": "api", "sub": sub, "jti": format!("jti-{sub}"),
            "iat": iat, "exp": iat + 4 * 3600,
        });
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    (f, sign)
}

#[tokio::test]
async fn h2_ecdsa_twin_is_denied_and_tracked_as_the_same_token() {
    let (f, sign) = es256_fixture();
    let token = sign("ines");
    let twin = ecdsa_twin(&token);
    assert_ne!(twin, token);
    let (client, daemon) = started(&f).await;
    revoke(&client, &daemon, &token).await;
    assert_eq!(check(&client, &daemon, &twin).await, 401, "(r, n−s) twin");
    drop(daemon);

    let (decisions, stderr) = f.replay(&owner_then_thief(&token, &twin));
    assert!(
        about(&decisions, &f.fingerprint(&token))
            .iter()
            .any(|d| d["action"] == "revoke"),
        "twin thief not detected: {decisions:?}\n{stderr}"
    );
}

#[tokio::test]
async fn m1_cookie_encodings_are_denied() {
    let f = daemon_fixture("");
    let session = "opaque-session-7f3a9c2e";
    let (client, daemon) = started(&f).await;
    revoke(&client, &daemon, session).await;
    let encoded = format!("sid=%{:02X}{}", session.as_bytes()[0], &session[1..]);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("plain", vec![("cookie", format!("sid={session}"))]),
        (
            "after a decoy",
            vec![("cookie", format!("sid=junk; sid={session}"))],
        ),
        (
            "in a second Cookie header",
            vec![
                ("cookie", "sid=junk".into()),
                ("cookie", format!("sid={session}")),
            ],
        ),
        ("percent-encoded", vec![("cookie", encoded)]),
        ("quoted", vec![("cookie", format!("sid=\"{session}\""))]),
        (
            "after a=b,",
            vec![("cookie", format!("a=b, sid={session}"))],
        ),
    ];
    for (name, headers) in cases {
        let headers: Vec<Header<'_>> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        assert_eq!(
            check_with(&client, &daemon, "", &headers).await,
            401,
            "{name}"
        );
    }
    let honest = [("cookie", &b"sid=another-session"[..])];
    assert_eq!(check_with(&client, &daemon, "", &honest).await, 200);
    let decoys = (0..9)
        .map(|i| format!("sid=d{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(
        check_with(&client, &daemon, "", &[("cookie", decoys.as_bytes())]).await,
        401,
        "a revoked cookie cannot hide behind more decoys than the cap"
    );
}

#[tokio::test]
async fn l2_authorization_forms_are_denied() {
    let f = daemon_fixture("");
    let token = f.jwt("jonas", recent(0).secs());
    let (client, daemon) = started(&f).await;
    revoke(&client, &daemon, &token).await;
    let tab = format!("Bearer\t{token}");
    let lower = format!("bearer {token}");
    let real = format!("Bearer {token}");
    let cases: [(&str, Vec<Header<'_>>); 3] = [
        ("tab", vec![("authorization", tab.as_bytes())]),
        ("lowercase", vec![("authorization", lower.as_bytes())]),
        (
            "junk Authorization first",
            vec![
                ("authorization", b"Bearer junk"),
                ("authorization", real.as_bytes()),
            ],
        ),
    ];
    for (name, headers) in cases {
        assert_eq!(
            check_with(&client, &daemon, "", &headers).await,
            401,
            "{name}"
        );
    }
    let query = format!("?access_token={token}");
    assert_eq!(
        check_with(&client, &daemon, &query, &[]).await,
        401,
        "RFC 6750 query"
    );
    let original = format!("/api/orders?page=2&access_token={token}");
    assert_eq!(
        check_with(
            &client,
            &daemon,
            "",
            &[("x-original-uri", original.as_bytes())]
        )
        .await,
        401,
        "access_token in the original request (nginx X-Original-URI)"
    );
    let other = format!("Bearer {}", f.jwt("karl", recent(0).secs()));
    assert_eq!(
        check_with(&client, &daemon, "", &[("authorization", other.as_bytes())]).await,
        200
    );
}

#[tokio::test]
async fn l3_invalid_utf8_token_is_one_token_on_both_sides() {
    let f = daemon_fixture("");
    let log = f.path("access.jsonl");
    follow(&f, &log, "");
    let (client, daemon) = started(&f).await;
    // A session cookie with bytes that are not UTF-8, logged as nginx's escape=json writes
    // them (bytes ≥ 0x80 unchanged).
    let cookie: &[u8] = b"sess\xff\xfeion-42";
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for (secs, city, kind) in [
        (0, "Berlin", NetKind::Residential),
        (60, "Berlin", NetKind::Residential),
        (600, "São Paulo", NetKind::AltResidential),
    ] {
        let mut record = json!({
            "time": recent(secs).to_rfc3339(), "client_ip": ip(city, kind, 4).to_string(),
            "method": "GET", "path": "/", "status": 200, "user_agent": CHROME,
            "cookie": "sid=COOKIE",
        })
        .to_string()
        .into_bytes();
        let at = record.windows(6).position(|w| w == b"COOKIE").unwrap();
        record.splice(at..at + 6, cookie.iter().copied());
        record.push(b'\n');
        file.write_all(&record).unwrap();
    }
    file.flush().unwrap();
    let mut header = b"sid=".to_vec();
    header.extend_from_slice(cookie);
    until_denied(&client, &daemon, &[("cookie", &header)]).await;
}

#[tokio::test]
async fn m2_a_line_from_the_future_moves_nothing() {
    let f = daemon_fixture("");
    let log = f.path("access.jsonl");
    // One line per batch, so the idle sweep (every 16 batches) runs between the lines.
    follow(&f, &log, "batch_size = 1");
    let (client, daemon) = started(&f).await;
    let token = f.jwt("lena", recent(0).secs());
    let berlin = ip("Berlin", NetKind::Residential, 4);
    let mut lines = vec![
        line(recent(0), berlin, CHROME, &token, "/"),
        line(recent(60), berlin, CHROME, &token, "/a"),
    ];
    let other = f.jwt("mallory", recent(0).secs());
    let mut future = line(recent(61), berlin, CHROME, &other, "/");
    future = future.replace(&recent(61).to_rfc3339(), "9999-12-31T00:00:00Z");
    lines.push(future);
    for i in 0..40 {
        let filler = f.jwt(&format!("filler-{i}"), recent(0).secs());
        lines.push(line(recent(62 + i), berlin, CHROME, &filler, "/"));
    }
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for l in &lines {
        writeln!(file, "{l}").unwrap();
    }
    file.flush().unwrap();
    // Let the sweeps run over every filler line before the thief shows up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = metrics_text(&client, &daemon).await;
        if metrics.contains("tokenwatch_events_total{outcome=\"processed\",source=\"file\"} 42") {
            assert!(
                metrics.contains("tokenwatch_parse_errors_total{reason=\"future\"} 1"),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "lines not processed: {metrics}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let thief = line(
        recent(600),
        ip("São Paulo", NetKind::AltResidential, 4),
        CHROME,
        &token,
        "/b",
    );
    writeln!(file, "{thief}").unwrap();
    file.flush().unwrap();
    let bearer = format!("Bearer {token}");
    until_denied(&client, &daemon, &[("authorization", bearer.as_bytes())]).await;
}

#[tokio::test]
async fn l4_only_a_verified_exp_sets_the_expiry() {
    let f = daemon_fixture("");
    let (client, daemon) = started(&f).await;
    // Anyone can write any `exp` into a token whose signature does not verify.
    let forged = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
        let claims = json!({"iss": ISSUER, "sub": "nadia", "exp": i64::MAX});
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode([7u8; 32]))
    };
    let entry = revoke(&client, &daemon, &forged).await;
    let expires =
        tokenwatch::event::EventTime::parse_rfc3339(entry["expires_at"].as_str().unwrap())
            .unwrap_or_else(|| panic!("expires_at is a time: {entry}"));
    let now_ms = tokenwatch::denylist::wall_clock_ms();
    // tokens.opaque_ttl defaults to 24 h.
    assert!(
        expires.0 <= now_ms + 24 * 3600 * 1000 && expires.0 > now_ms,
        "{entry}"
    );
    // A verified token keeps its own expiry.
    let token = f.jwt("olga", recent(0).secs());
    let entry = revoke(&client, &daemon, &token).await;
    let expires =
        tokenwatch::event::EventTime::parse_rfc3339(entry["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.secs(),
        recent(0).secs() + 4 * 3600 + 30,
        "exp + leeway"
    );
}
