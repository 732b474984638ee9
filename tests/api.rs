//! Integration tests for the HTTP API: a real server on `127.0.0.1:0`, driven with `reqwest`.
//!
//! Tests whose names start with `claims_` revoke by JWT claims (`sub`, `jti`, `exp`) and need
//! the real `identify::unverified_claims`; with the interface stub (which reads no claims)
//! they fail. Every other test passes with the stubs too: expected fingerprints are computed
//! through `Fingerprinter`, never hard-coded.
//!
//! Keys, peppers and JWT secrets are generated per test.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use tokenwatch::api::{ApiState, ReadyFlag, router, serve};
use tokenwatch::config::{Config, NoTokenPolicy, ProcessEnv};
use tokenwatch::denylist::{DenyKey, Denylist, Entry, EntryAction, Origin, wall_clock_ms};
use tokenwatch::event::RawLine;
use tokenwatch::identify::{Fingerprinter, Identifier};
use tokenwatch::metrics::Metrics;

const ISS: &str = "https://id.example.com";
const DENY_CHALLENGE: &str = r#"Bearer error="invalid_token""#;
const STEP_UP_CHALLENGE: &str = r#"Bearer error="insufficient_user_authentication""#;

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// How to build the server under test.
struct Setup {
    journal: Option<PathBuf>,
    admin_key: Option<String>,
    ingest_capacity: Option<usize>,
    max_body_bytes: usize,
    max_ingest_bytes: usize,
    no_token: NoTokenPolicy,
    /// An HS256 secret the server verifies JWTs with (RFC 7009 expiry).
    jwt_secret: Option<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            journal: None,
            admin_key: Some(random_hex(16)),
            ingest_capacity: None,
            max_body_bytes: 64 * 1024,
            max_ingest_bytes: 1024 * 1024,
            no_token: NoTokenPolicy::Allow,
            jwt_secret: None,
        }
    }
}

/// A verifier for HS256 tokens of [`ISS`] signed with `secret` (no `kid`, any audience).
fn verifier(secret: &str, pepper: &str) -> Arc<Identifier> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokenwatch.toml");
    let text = format!(
        "[tokens]\npepper = \"{pepper}\"\n[tokens.jwt]\nissuers = [\"{ISS}\"]\n\
         algorithms = [\"HS256\"]\n[[tokens.jwt.keys]]\nalgorithm = \"HS256\"\nsecret = \"{secret}\"\n"
    );
    std::fs::write(&path, text).expect("write config");
    let (config, secrets) = Config::load(&path, &ProcessEnv).expect("config");
    Arc::new(Identifier::from_config(&config.tokens, &secrets).expect("verifier"))
}

struct Server {
    base: String,
    state: Arc<ApiState>,
    fingerprinter: Fingerprinter,
    admin_key: String,
    ingest_key: String,
    ingest_rx: Option<mpsc::Receiver<Vec<RawLine>>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

async fn start(setup: Setup) -> Server {
    let pepper = random_hex(16);
    let fingerprinter = Fingerprinter::new(&pepper);
    let metrics = Arc::new(Metrics::new());
    let denylist = Denylist::open(setup.journal.as_deref())
        .expect("journal opens")
        .with_metrics(metrics.clone());
    let mut state = ApiState::new(Arc::new(denylist), metrics, fingerprinter.clone());
    let ingest_key = random_hex(16);
    state.admin_key = setup.admin_key.clone();
    state.ingest_key = Some(ingest_key.clone());
    state.config.max_body_bytes = setup.max_body_bytes;
    state.config.max_ingest_bytes = setup.max_ingest_bytes;
    state.config.no_token = setup.no_token;
    state.max_line_bytes = 256;
    state.verifier = setup.jwt_secret.as_deref().map(|s| verifier(s, &pepper));
    let ingest_rx = setup.ingest_capacity.map(|capacity| {
        let (tx, rx) = mpsc::channel(capacity);
        state.ingest = Some(tx);
        rx
    });
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router(state.clone()), async move {
        let _ = shutdown_rx.await;
    }));
    Server {
        base,
        state,
        fingerprinter,
        admin_key: setup.admin_key.unwrap_or_default(),
        ingest_key,
        ingest_rx,
        shutdown: Some(shutdown_tx),
        task,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn fp_key(&self, token: &str) -> String {
        format!("fp:{}", self.fingerprinter.fingerprint(token.as_bytes()))
    }

    async fn check_bearer(&self, token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/v1/check"))
            .bearer_auth(token)
            .send()
            .await
            .expect("check")
    }

    async fn check_status(&self, token: &str) -> StatusCode {
        self.check_bearer(token).await.status()
    }

    async fn revoke_json(&self, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/revoke"))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .expect("revoke")
    }

    async fn revoke_form(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/v1/revoke"))
            .bearer_auth(&self.admin_key)
            .form(form)
            .send()
            .await
            .expect("revoke")
    }

    async fn unrevoke(&self, key: &str, query: &str) -> reqwest::Response {
        let encoded: String = key
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.http
            .delete(self.url(&format!("/v1/revocations/{encoded}{query}")))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .expect("unrevoke")
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("shutdown completes in time")
            .expect("serve task")
            .expect("serve result");
    }
}

fn jwt(secret: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode test JWT")
}

fn now_secs() -> i64 {
    wall_clock_ms() / 1000
}

#[tokio::test]
async fn check_allows_with_an_empty_body_and_denies_revoked_tokens() {
    let server = start(Setup::default()).await;
    let (stolen, other) = (random_hex(20), random_hex(20));

    let allowed = server.check_bearer(&stolen).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(allowed.headers().get("www-authenticate").is_none());
    assert!(
        allowed.bytes().await.expect("body").is_empty(),
        "empty body"
    );

    let response = server
        .revoke_form(&[("token", &stolen), ("token_type_hint", "access_token")])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let entry: Value = response.json().await.expect("json");
    assert_eq!(entry["key"], server.fp_key(&stolen));
    assert_eq!(entry["origin"], "admin");
    assert_eq!(entry["reasons"], json!(["rfc7009"]));

    let denied = server.check_bearer(&stolen).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        denied.headers().get("www-authenticate").expect("challenge"),
        DENY_CHALLENGE
    );

    let by_cookie = server
        .http
        .get(server.url("/v1/check"))
        .header("cookie", format!("theme=dark; sid={stolen}"))
        .send()
        .await
        .expect("check");
    assert_eq!(by_cookie.status(), StatusCode::UNAUTHORIZED);

    // A clean bearer does not launder a revoked cookie on the same request.
    let both = server
        .http
        .get(server.url("/v1/check"))
        .bearer_auth(&other)
        .header("cookie", format!("sid={stolen}"))
        .send()
        .await
        .expect("check");
    assert_eq!(both.status(), StatusCode::UNAUTHORIZED);

    if server.fingerprinter.fingerprint(other.as_bytes())
        != server.fingerprinter.fingerprint(stolen.as_bytes())
    {
        assert_eq!(server.check_status(&other).await, StatusCode::OK);
    }

    // RFC 7009: garbage is revoked by fingerprint and still answered with 200; only a
    // missing token is an error.
    let garbage = server.revoke_form(&[("token", "%%% not a token")]).await;
    assert_eq!(garbage.status(), StatusCode::OK);
    let missing = server
        .revoke_form(&[("token_type_hint", "access_token")])
        .await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let error: Value = missing.json().await.expect("json");
    assert_eq!(error["error"], "invalid_request");
    server.stop().await;
}

#[tokio::test]
async fn revoke_by_json_key_then_unrevoke_and_allowlist() {
    let server = start(Setup::default()).await;
    let token = random_hex(24);
    let key = server.fp_key(&token);

    let before = wall_clock_ms();
    let response = server
        .revoke_json(json!({"key": key, "reason": "stolen laptop", "ttl": "1h"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let entry: Value = response.json().await.expect("json");
    assert_eq!(entry["key"], key);
    assert_eq!(entry["revoked"], true);
    assert_eq!(entry["reasons"], json!(["stolen laptop"]));
    let stored = server
        .state
        .denylist()
        .get(&key.parse::<DenyKey>().expect("key"))
        .expect("stored");
    let ttl_ms = stored.expires_at_ms - before;
    assert!(
        (3_600_000..3_610_000).contains(&ttl_ms),
        "ttl of 1h, got {ttl_ms} ms"
    );
    assert_eq!(server.check_status(&token).await, StatusCode::UNAUTHORIZED);

    let removed: Value = server.unrevoke(&key, "").await.json().await.expect("json");
    assert_eq!(removed, json!({"removed": true, "allowlisted": false}));
    assert_eq!(server.check_status(&token).await, StatusCode::OK);
    let again: Value = server.unrevoke(&key, "").await.json().await.expect("json");
    assert_eq!(
        again["removed"], false,
        "idempotent: 200 with removed=false"
    );

    server.revoke_json(json!({"key": key})).await;
    let allowlisted = server.unrevoke(&key, "?allowlist=true").await;
    assert_eq!(allowlisted.status(), StatusCode::OK);
    let fp = server.fingerprinter.fingerprint(token.as_bytes());
    assert!(server.state.denylist().is_allowlisted(fp));
    assert_eq!(server.check_status(&token).await, StatusCode::OK);

    let sub_key = format!("sub:{ISS}:user-1");
    server.revoke_json(json!({"key": sub_key})).await;
    let not_fp = server.unrevoke(&sub_key, "?allowlist=true").await;
    assert_eq!(not_fp.status(), StatusCode::BAD_REQUEST);
    let not_fp: Value = not_fp.json().await.expect("json");
    assert_eq!(not_fp["error"], "not_a_fingerprint");
    // Slashes in the key may also be left unencoded.
    let raw = server
        .http
        .delete(server.url(&format!("/v1/revocations/{sub_key}")))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .expect("unrevoke");
    assert_eq!(raw.status(), StatusCode::OK);
    let raw: Value = raw.json().await.expect("json");
    assert_eq!(raw["removed"], true);
    let bad_key = server.unrevoke("nope:1", "").await;
    assert_eq!(bad_key.status(), StatusCode::BAD_REQUEST);

    let bad_inputs = [
        json!({"key": "fp:1234"}),
        json!({"key": "kid:x:y"}),
        json!({"key": key, "ttl": "soon"}),
        json!({"key": key, "ttl": "0s"}),
        json!({"key": key, "ttl": "1000d"}),
        json!({"key": key, "not_before": 1}),
        json!({"key": format!("sub:{ISS}:u"), "not_before": "yesterday"}),
        json!({"key": key, "reason": "x".repeat(2000)}),
        json!({"key": key, "surprise": true}),
    ];
    for body in bad_inputs {
        let response = server.revoke_json(body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let wrong_type = server
        .http
        .post(server.url("/v1/revoke"))
        .bearer_auth(&server.admin_key)
        .header("content-type", "text/plain")
        .body("token=abc")
        .send()
        .await
        .expect("revoke");
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server.stop().await;
}

#[tokio::test]
async fn claims_sub_revocation_honours_not_before() {
    let server = start(Setup::default()).await;
    let secret = random_hex(32);
    let now = now_secs();
    let token_at = |iat: i64, jti: &str| {
        jwt(
            secret.as_bytes(),
            json!({"iss": ISS, "sub": "user-1", "jti": jti, "iat": iat, "exp": now + 3600}),
        )
    };
    let old = token_at(now - 600, "a");
    let new = token_at(now + 60, "b");
    let other_user = jwt(
        secret.as_bytes(),
        json!({"iss": ISS, "sub": "user-2", "iat": now - 600, "exp": now + 3600}),
    );

    let response = server
        .revoke_json(
            json!({"key": format!("sub:{ISS}:user-1"), "reason": "password reset", "ttl": "2h"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let entry: Value = response.json().await.expect("json");
    assert!(entry["not_before"].is_string(), "defaults to now: {entry}");

    assert_eq!(server.check_status(&old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.check_status(&new).await, StatusCode::OK);
    assert_eq!(server.check_status(&other_user).await, StatusCode::OK);

    // An explicit not_before in RFC 3339 moves the boundary.
    let cutoff = time::OffsetDateTime::from_unix_timestamp(now + 120)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let response = server
        .revoke_json(json!({"key": format!("sub:{ISS}:user-1"), "not_before": cutoff}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.check_status(&new).await, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn claims_jti_revocation_and_rfc7009_expiry_follow_the_verified_jwt() {
    let secret = random_hex(32);
    let server = start(Setup {
        jwt_secret: Some(secret.clone()),
        ..Setup::default()
    })
    .await;
    let exp = now_secs() + 900;
    let token = jwt(
        secret.as_bytes(),
        json!({"iss": ISS, "sub": "user-3", "jti": "jti-1", "iat": now_secs(), "exp": exp}),
    );
    let response = server
        .revoke_json(json!({"key": format!("jti:{ISS}:jti-1")}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.check_status(&token).await, StatusCode::UNAUTHORIZED);
    let check: Value = server
        .http
        .post(server.url("/v1/check"))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(check["key"], format!("jti:{ISS}:jti-1"));

    let form = server.revoke_form(&[("token", &token)]).await;
    assert_eq!(form.status(), StatusCode::OK);
    let stored = server
        .state
        .denylist()
        .get(&server.fp_key(&token).parse::<DenyKey>().expect("key"))
        .expect("stored");
    let leeway_ms = server.state.jwt_leeway.as_millis() as i64;
    assert_eq!(stored.expires_at_ms, exp * 1000 + leeway_ms);

    // An `exp` nobody signed sets nothing: a forged far-future `exp` gets the opaque TTL, and
    // even a verified one is capped by tokens.max_ttl.
    let forged = jwt(
        b"not-the-issuer-key",
        json!({"iss": ISS, "sub": "user-4", "exp": i64::MAX}),
    );
    let long_lived = jwt(
        secret.as_bytes(),
        json!({"iss": ISS, "sub": "user-5", "exp": i64::MAX / 1000}),
    );
    let now_ms = wall_clock_ms();
    for (token, bound) in [
        (&forged, server.state.opaque_ttl),
        (&long_lived, server.state.max_ttl),
    ] {
        assert_eq!(
            server.revoke_form(&[("token", token)]).await.status(),
            StatusCode::OK
        );
        let stored = server
            .state
            .denylist()
            .get(&server.fp_key(token).parse::<DenyKey>().expect("key"))
            .expect("stored");
        let bound_ms = bound.as_millis() as i64;
        assert!(
            stored.expires_at_ms >= now_ms + bound_ms - 60_000
                && stored.expires_at_ms <= wall_clock_ms() + bound_ms,
            "expires {} for a bound of {bound:?}",
            stored.expires_at_ms
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn admin_routes_require_the_admin_key() {
    let server = start(Setup::default()).await;
    let fp = server.fingerprinter.fingerprint(b"x");
    let routes = [
        (reqwest::Method::POST, "/v1/revoke".to_string()),
        (reqwest::Method::DELETE, format!("/v1/revocations/fp:{fp}")),
        (reqwest::Method::GET, format!("/v1/sessions/{fp}")),
    ];
    let wrong_key = format!("{}x", server.admin_key);
    let authorizations = [
        None,
        Some(format!("Bearer {wrong_key}")),
        Some(format!("Bearer {}", &server.admin_key[1..])),
        Some(format!("Basic {}", server.admin_key)),
    ];
    for (method, path) in &routes {
        for authorization in &authorizations {
            let mut request = server
                .http
                .request(method.clone(), server.url(path))
                .json(&json!({"key": format!("fp:{fp}")}));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.expect("request");
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {authorization:?}"
            );
            assert!(response.headers().contains_key("www-authenticate"));
        }
    }
    assert!(server.state.denylist().is_empty(), "nothing was revoked");

    let huge = server
        .http
        .post(server.url("/v1/revoke"))
        .header("authorization", format!("Bearer {}", "k".repeat(20_000)))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(huge.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    server.stop().await;
}

#[tokio::test]
async fn admin_routes_are_disabled_without_an_admin_key() {
    let server = start(Setup {
        admin_key: None,
        ..Setup::default()
    })
    .await;
    for authorization in ["", "Bearer ", "Bearer anything-at-all"] {
        let response = server
            .http
            .post(server.url("/v1/revoke"))
            .header("authorization", authorization)
            .json(&json!({"key": format!("sub:{ISS}:u")}))
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{authorization:?}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "disabled");
    }
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let server = start(Setup {
        max_body_bytes: 1024,
        max_ingest_bytes: 4096,
        ingest_capacity: Some(4),
        ..Setup::default()
    })
    .await;
    let big_json = json!({"key": format!("sub:{ISS}:u"), "reason": "x".repeat(2000)});
    let revoke = server.revoke_json(big_json.clone()).await;
    assert_eq!(revoke.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let check = server
        .http
        .post(server.url("/v1/check"))
        .json(&json!({"token": "t".repeat(2000)}))
        .send()
        .await
        .expect("check");
    assert_eq!(check.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The events route has its own, larger cap.
    let line = format!("{}\n", json!({"pad": "y".repeat(100)}));
    let events = |body: String| {
        server
            .http
            .post(server.url("/v1/events"))
            .bearer_auth(&server.ingest_key)
            .body(body)
            .send()
    };
    let fits = events(line.repeat(20)).await.expect("events");
    assert_eq!(fits.status(), StatusCode::ACCEPTED, "2.3 KB fits in 4 KB");
    let too_big = events(line.repeat(50)).await.expect("events");
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    server.stop().await;
}

#[tokio::test]
async fn oversized_tokens_are_denied_and_missing_tokens_follow_policy() {
    let allow = start(Setup::default()).await;
    let oversized = "a".repeat(allow.state.max_token_bytes + 1);
    assert_eq!(
        allow.check_status(&oversized).await,
        StatusCode::UNAUTHORIZED
    );
    let at_cap = "a".repeat(allow.state.max_token_bytes);
    assert_eq!(allow.check_status(&at_cap).await, StatusCode::OK);
    let anonymous = allow
        .http
        .get(allow.url("/v1/check"))
        .send()
        .await
        .expect("check");
    assert_eq!(anonymous.status(), StatusCode::OK);
    allow.stop().await;

    let deny = start(Setup {
        no_token: NoTokenPolicy::Deny,
        ..Setup::default()
    })
    .await;
    let anonymous = deny
        .http
        .get(deny.url("/v1/check"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("check");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous
            .headers()
            .get("www-authenticate")
            .expect("challenge"),
        DENY_CHALLENGE
    );
    deny.stop().await;
}

#[tokio::test]
async fn post_check_explains_the_decision() {
    let server = start(Setup::default()).await;
    let token = random_hex(16);
    let key = server.fp_key(&token);
    server
        .revoke_json(json!({"key": key, "reason": "impossible_travel"}))
        .await;
    server
        .revoke_json(json!({"key": format!("jti:{ISS}:j-9")}))
        .await;
    let post = |body: Value| server.http.post(server.url("/v1/check")).json(&body).send();
    let fingerprint_hex = key.trim_start_matches("fp:").to_string();
    let revoked = [
        json!({"token": token}),
        json!({"fingerprint": fingerprint_hex}),
        json!({"fingerprint": key}),
        json!({"iss": ISS, "jti": "j-9"}),
    ];
    for body in revoked {
        let response = post(body.clone()).await.expect("check");
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        let view: Value = response.json().await.expect("json");
        assert_eq!(view["revoked"], true, "{body}: {view}");
        assert!(view["expires_at"].is_string(), "{view}");
        assert!(view["key"].is_string(), "{view}");
    }
    let innocent = random_hex(16);
    if server.fp_key(&innocent) != key {
        let view: Value = post(json!({"token": innocent}))
            .await
            .expect("check")
            .json()
            .await
            .expect("json");
        assert_eq!(view["revoked"], false, "another token is not revoked");
        assert_eq!(view["reasons"], json!([]));
        assert_eq!(view["key"], Value::Null);
    }

    let bad = [
        json!({}),
        json!({"token": token, "fingerprint": fingerprint_hex}),
        json!({"iss": ISS}),
        json!({"fingerprint": "xyz"}),
        json!({"token": ""}),
        json!({"token": "t".repeat(server.state.max_token_bytes + 1)}),
        json!({"sub": "u"}),
    ];
    for body in bad {
        let response = post(body.clone()).await.expect("check");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn session_view_shows_denylist_status() {
    let server = start(Setup::default()).await;
    let token = random_hex(16);
    let fp = server.fingerprinter.fingerprint(token.as_bytes());
    let get = |path: String| {
        server
            .http
            .get(server.url(&path))
            .bearer_auth(&server.admin_key)
            .send()
    };
    let unknown = get(format!("/v1/sessions/{fp}")).await.expect("get");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let bad = get("/v1/sessions/not-hex".into()).await.expect("get");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    server.revoke_form(&[("token", &token)]).await;
    let view: Value = get(format!("/v1/sessions/{fp}"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(view["fingerprint"], fp.to_hex());
    assert_eq!(view["denylist"]["revoked"], true);
    assert_eq!(view["denylist"]["entry"]["reasons"], json!(["rfc7009"]));
    assert_eq!(view["denylist"]["allowlisted"], false);
    server.stop().await;
}

#[tokio::test]
async fn readyz_waits_for_every_flag() {
    let server = start(Setup::default()).await;
    let readyz = || server.http.get(server.url("/readyz")).send();
    let response = readyz().await.expect("readyz");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["missing"], json!(["denylist", "geoip", "model"]));

    server.state.readiness.mark_ready(ReadyFlag::Denylist);
    server.state.readiness.mark_ready(ReadyFlag::Geoip);
    let body: Value = readyz().await.expect("readyz").json().await.expect("json");
    assert_eq!(body["missing"], json!(["model"]));

    server.state.readiness.mark_ready(ReadyFlag::Model);
    let response = readyz().await.expect("readyz");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["ready"], true);

    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn metrics_expose_the_counters() {
    let server = start(Setup::default()).await;
    let token = random_hex(16);
    server.check_status(&token).await;
    server.revoke_form(&[("token", &token)]).await;
    server.check_status(&token).await;
    server
        .http
        .get(server.url("/v1/check"))
        .send()
        .await
        .expect("check");

    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = response.text().await.expect("text");
    for line in [
        "tokenwatch_check_requests_total{result=\"allow\"} 1",
        "tokenwatch_check_requests_total{result=\"revoked\"} 1",
        "tokenwatch_check_requests_total{result=\"no_token\"} 1",
        "tokenwatch_revocations_total{origin=\"admin\"} 1",
        "tokenwatch_check_duration_seconds_count 3",
        "tokenwatch_denylist_entries 1",
        "tokenwatch_api_requests_total{route=\"/v1/revoke\",status=\"200\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn events_are_ingested_with_the_ingest_key() {
    let mut server = start(Setup {
        ingest_capacity: Some(1),
        ..Setup::default()
    })
    .await;
    let mut rx = server.ingest_rx.take().expect("receiver");
    let body = "{\"time\":1,\"client_ip\":\"192.0.2.1\"}\n\n{\"time\":2}\r\n";
    let post = |authorization: Option<String>, body: String| {
        let mut request = server.http.post(server.url("/v1/events")).body(body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    let no_key = post(None, body.into()).await.expect("post");
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let admin_key = post(Some(format!("Bearer {}", server.admin_key)), body.into())
        .await
        .expect("post");
    assert_eq!(
        admin_key.status(),
        StatusCode::UNAUTHORIZED,
        "admin key is not the ingest key"
    );

    let bearer = Some(format!("Bearer {}", server.ingest_key));
    let accepted = post(bearer.clone(), body.into()).await.expect("post");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let count: Value = accepted.json().await.expect("json");
    assert_eq!(count, json!({"accepted": 2}));

    // The channel (capacity 1) is now full: refuse at once, never block.
    let busy = post(bearer.clone(), body.into()).await.expect("post");
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "1");

    let lines = rx.recv().await.expect("a batch");
    let texts: Vec<&[u8]> = lines.iter().map(|l| l.bytes.as_slice()).collect();
    assert_eq!(
        texts,
        vec![
            &b"{\"time\":1,\"client_ip\":\"192.0.2.1\"}"[..],
            &b"{\"time\":2}"[..]
        ]
    );
    // A line over input.max_line_bytes (256 here) arrives cut and flagged.
    let long = format!("{{\"pad\":\"{}\"}}\n", "z".repeat(300));
    let accepted = post(bearer, long).await.expect("post");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let lines = rx.recv().await.expect("a batch");
    assert_eq!(lines.len(), 1);
    assert!(lines[0].truncated);
    assert_eq!(lines[0].bytes.len(), 256);
    server.stop().await;

    let disabled = start(Setup::default()).await;
    let response = disabled
        .http
        .post(disabled.url("/v1/events"))
        .bearer_auth(&disabled.ingest_key)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    disabled.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_completes_and_stops_accepting() {
    let server = start(Setup::default()).await;
    let http = server.http.clone();
    let url = server.url("/healthz");
    // Leaves an idle keep-alive connection in the client's pool.
    assert_eq!(
        http.get(&url).send().await.expect("healthz").status(),
        StatusCode::OK
    );
    server.stop().await;
    let after = http.get(&url).timeout(Duration::from_secs(2)).send().await;
    assert!(after.is_err(), "no longer serving");
}

fn journal_in(dir: &Path) -> PathBuf {
    dir.join("denylist.journal")
}

#[tokio::test]
async fn revocations_survive_a_crash_on_the_same_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = start(Setup {
        journal: Some(journal_in(dir.path())),
        ..Setup::default()
    })
    .await;
    let key = format!("sub:{ISS}:user-9");
    let response = first
        .revoke_json(json!({"key": key, "reason": "compromised", "ttl": "1h"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Simulate kill -9: no graceful shutdown, nothing flushed after the acknowledgement.
    first.task.abort();
    // A dead process leaves its file behind, not its lock: the journal stays locked while a
    // denylist on it lives, so wait until everything of the first server (its aborted task, its
    // connections) has let go of it. Dropping a denylist writes nothing.
    drop(first);
    let lock = std::fs::File::open(dir.path().join("denylist.journal.lock")).expect("lock file");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lock.try_lock().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first server never let go"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(lock);

    let second = start(Setup {
        journal: Some(journal_in(dir.path())),
        ..Setup::default()
    })
    .await;
    let stored = second
        .state
        .denylist()
        .get(&key.parse::<DenyKey>().expect("key"))
        .expect("the acknowledged revocation was replayed");
    assert_eq!(stored.reasons, vec!["compromised".to_string()]);
    let check: Value = second
        .http
        .post(second.url("/v1/check"))
        .json(&json!({"fingerprint": second.fingerprinter.fingerprint(b"t")}))
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(check["revoked"], false);
    second.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused_with_431() {
    let server = start(Setup::default()).await;
    let cases = [
        ("cookie", 40 * 1024, "our Cookie cap on non-check routes"),
        ("x-padding", 70 * 1024, "hyper's cap on all headers"),
    ];
    for (name, size, why) in cases {
        let response = server
            .http
            .get(server.url("/healthz"))
            .header(name, "p".repeat(size))
            .send()
            .await
            .expect("answered");
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{why}"
        );
    }
    // On the check route an oversized cookie is a decision: deny.
    let check = server
        .http
        .get(server.url("/v1/check"))
        .header("cookie", format!("sid=a; pad={}", "p".repeat(40 * 1024)))
        .send()
        .await
        .expect("answered");
    assert_eq!(check.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
}

/// A detector step-up entry, as `publish` writes it.
fn step_up_entry(not_before: Option<i64>) -> Entry {
    let now = wall_clock_ms();
    Entry {
        action: EntryAction::StepUp,
        reasons: vec!["user_agent_change".into()],
        origin: Origin::Detector,
        created_at_ms: now,
        expires_at_ms: now + 3_600_000,
        not_before,
        score: Some(0.7),
    }
}

async fn check_with(server: &Server, tokens: &[&str]) -> reqwest::Response {
    let mut request = server.http.get(server.url("/v1/check"));
    for token in tokens {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.send().await.expect("check")
}

#[tokio::test]
async fn step_up_answers_insufficient_user_authentication_and_a_revocation_wins() {
    let server = start(Setup::default()).await;
    let (challenged, revoked) = (random_hex(20), random_hex(20));
    let key: DenyKey = server.fp_key(&challenged).parse().expect("key");
    assert!(
        server
            .state
            .denylist()
            .revoke(key, step_up_entry(None))
            .expect("step up")
    );

    let response = server.check_bearer(&challenged).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], STEP_UP_CHALLENGE);
    assert!(response.bytes().await.expect("body").is_empty());

    // POST: the action, with `revoked` true for revoke only.
    let view: Value = server
        .http
        .post(server.url("/v1/check"))
        .json(&json!({"token": challenged}))
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(view["action"], "step_up", "{view}");
    assert_eq!(view["revoked"], false, "{view}");
    assert_eq!(view["key"], server.fp_key(&challenged));
    assert_eq!(view["reasons"], json!(["user_agent_change"]));

    // A request carrying a step-up token and a revoked one, in either order: revoked.
    server.revoke_form(&[("token", &revoked)]).await;
    for tokens in [[&challenged, &revoked], [&revoked, &challenged]] {
        let tokens = tokens.map(String::as_str);
        let response = check_with(&server, &tokens).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], DENY_CHALLENGE);
    }
    let view: Value = server
        .http
        .post(server.url("/v1/check"))
        .json(&json!({"token": revoked}))
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&view["action"], &view["revoked"]),
        (&json!("revoke"), &json!(true))
    );
    let fresh = random_hex(20);
    let view: Value = server
        .http
        .post(server.url("/v1/check"))
        .json(&json!({"token": fresh}))
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&view["action"], &view["revoked"]),
        (&json!("allow"), &json!(false))
    );

    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "tokenwatch_check_requests_total{result=\"step_up\"} 2",
        "tokenwatch_check_requests_total{result=\"revoked\"} 3",
        "tokenwatch_check_requests_total{result=\"allow\"} 1",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn claims_step_up_of_a_session_passes_its_tokens_issued_after_the_challenge() {
    let server = start(Setup::default()).await;
    let secret = random_hex(32);
    let now = now_secs();
    let token = |iat: i64, sid: &str| {
        jwt(
            secret.as_bytes(),
            json!({"iss": ISS, "sub": "user-1", "sid": sid, "iat": iat, "exp": now + 3600}),
        )
    };
    let stolen = token(now - 600, "s-1");
    let after_mfa = token(now + 5, "s-1");
    let at_challenge = token(now, "s-1");
    let other_session = token(now - 600, "s-2");
    server
        .state
        .denylist()
        .revoke(
            format!("sid:{ISS}:s-1").parse().expect("key"),
            step_up_entry(Some(now)),
        )
        .expect("step up");

    let response = server.check_bearer(&stolen).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], STEP_UP_CHALLENGE);
    for passes in [&after_mfa, &at_challenge, &other_session] {
        assert_eq!(server.check_status(passes).await, StatusCode::OK);
    }
    let view: Value = server
        .http
        .post(server.url("/v1/check"))
        .json(&json!({"token": stolen}))
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(view["action"], "step_up", "{view}");
    assert_eq!(view["key"], format!("sid:{ISS}:s-1"));

    // An admin revocation of the session replaces the step-up: now even fresh tokens fail.
    server
        .revoke_json(json!({"key": format!("sid:{ISS}:s-1")}))
        .await;
    let response = server.check_bearer(&after_mfa).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], DENY_CHALLENGE);
    server.stop().await;
}
