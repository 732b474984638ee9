//! The HTTP API (DESIGN §7): the check endpoint the auth middleware calls on every request,
//! admin revocation, session inspection, log ingestion, metrics and health.
//!
//! Where it sits: an edge of the daemon. It reads the [`Denylist`] (and writes it for admin
//! revocations), reads the session tracker for `GET /v1/sessions/…`, and hands
//! `POST /v1/events` bodies to the pipeline through a bounded channel. `app` builds the
//! [`ApiState`], calls [`router`] and runs [`serve_with`] with its listener, shutdown future
//! and connection cap. The server itself (accepting, the connection cap, hyper) is in
//! `api/serve.rs`.
//!
//! | route | who | auth |
//! |---|---|---|
//! | `GET /v1/check` | nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz, Caddy `forward_auth` | none |
//! | `POST /v1/check` | apps and SDKs | none |
//! | `POST /v1/revoke` | admins, IdP hooks (RFC 7009 form or JSON) | admin key |
//! | `DELETE /v1/revocations/{key}` | admins | admin key |
//! | `GET /v1/sessions/{fingerprint}` | on-call | admin key |
//! | `POST /v1/events` | log shippers (NDJSON) | ingest key |
//! | `GET /metrics`, `/healthz`, `/readyz` | Prometheus, orchestrators | none |
//!
//! Invariants:
//! - `GET /v1/check` answers a decision with **200 and an empty body** (allow) or **401** with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (deny) and nothing else: Envoy allows
//!   only on 200 and nginx turns other codes into 500 (REFERENCES "Auth middleware
//!   contracts"). It reads only memory, so it keeps answering whatever happens to the
//!   journal or Kafka. Fail-open vs fail-closed when tokenwatch is unreachable is the
//!   middleware's setting.
//! - Admin and ingest keys are compared in constant time (SHA-256 of both sides, then
//!   `subtle`), so neither content nor length leaks through timing. With no admin key
//!   configured the admin routes answer **403** (disabled), never "open".
//! - Limits: every body is capped (`api.max_body_bytes`, `api.max_ingest_bytes` for events;
//!   413 above), every route runs under `api.request_timeout` (503 on expiry), and headers
//!   are capped twice: by hyper in [`serve`] (request line + headers within
//!   [`ServeOptions::max_header_bytes`], default 64 KiB; at most
//!   [`ServeOptions::max_headers`] fields, default 100; 431 and the connection closed above
//!   either; [`ServeOptions::header_read_timeout`] to send them), and per field here
//!   (`Authorization` ≤ 16 KiB, `Cookie` ≤ 32 KiB in total: 431 on non-check routes, while
//!   an oversized credential on the check route is a deny).
//! - The check cannot be starved. Connections are capped ([`ServeOptions::max_connections`],
//!   `api.max_connections` fitted to the open-file limit): at the cap the connection idle the
//!   longest is closed to make room, and with none idle the new one is closed at once, never
//!   left waiting. Routes that read a body or do more work than a memory look-up have
//!   budgets of `api.max_concurrent_requests` in flight, shed at once with 503 and
//!   `Retry-After` beyond it — `POST /v1/check` one, admin + ingest + `/metrics` another —
//!   while `GET /v1/check`, `/healthz` and `/readyz` have none. So at most two budgets of
//!   connections are ever busy with anything but the check, and the rest of the cap is
//!   idle (closable) or answering a check.
//! - A raw token is never logged, stored or echoed; only its fingerprint is.
//! - Admin revocations are durable before they are acknowledged: the journal `fsync` runs on
//!   the blocking pool (`spawn_blocking`), never on a runtime worker.
//!
//! It does NOT: verify JWT signatures (the check reads claims unverified — a forged token can
//! only be denied here, never allowed, since the application still verifies it), serve
//! `GET /v1/revocations?since=` (pull caches; a later issue), or speak TLS (terminate it in
//! front, or bind to localhost/a private network).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tower_http::timeout::TimeoutLayer;

use crate::config::{ApiConfig, Config, DenylistConfig, InputConfig, NoTokenPolicy, Role, Secrets};
use crate::credential::{Canonical, Collector, bearer_token, lossy};
use crate::denylist::{
    CheckQuery, DenyKey, Denylist, DenylistError, Entry, MAX_KEY_BYTES, Origin, wall_clock_ms,
};
use crate::event::{Credential, EventTime, Fingerprint, RawLine, RawToken, SourceKind};
use crate::identify::{Fingerprinter, Identifier, unverified_claims_of};
use crate::metrics::Metrics;
use crate::track::{SessionSnapshot, SessionTracker};

/// Largest `Authorization` header accepted on non-check routes, bytes (431 above).
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;
/// Largest total of `Cookie` headers, bytes: 431 on non-check routes, a deny on the check.
pub const MAX_COOKIE_BYTES: usize = 32 * 1024;
/// Largest admin reason text, bytes (400 above).
pub const MAX_REASON_BYTES: usize = 1024;

const DENY_CHALLENGE: HeaderValue = HeaderValue::from_static(r#"Bearer error="invalid_token""#);
const ADMIN_CHALLENGE: HeaderValue = HeaderValue::from_static(r#"Bearer realm="tokenwatch""#);

/// One thing `/readyz` can wait for; its name is what `/readyz` lists as missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyFlag {
    /// The journal (or denylist topic) has been replayed.
    Denylist,
    /// The GeoIP databases are loaded.
    Geoip,
    /// The scoring model is loaded.
    Model,
    /// The denylist journal accepts writes.
    Journal,
}

impl ReadyFlag {
    /// The name `/readyz` reports.
    pub fn name(self) -> &'static str {
        match self {
            ReadyFlag::Denylist => "denylist",
            ReadyFlag::Geoip => "geoip",
            ReadyFlag::Model => "model",
            ReadyFlag::Journal => "journal",
        }
    }
}

/// Readiness flags that the app sets as it loads; `/readyz` is 200 only when all are set.
#[derive(Debug)]
pub struct Readiness {
    flags: Vec<(ReadyFlag, AtomicBool)>,
}

impl Readiness {
    /// The journal (or denylist topic) has been replayed.
    pub const DENYLIST: ReadyFlag = ReadyFlag::Denylist;
    /// The GeoIP databases are loaded.
    pub const GEOIP: ReadyFlag = ReadyFlag::Geoip;
    /// The scoring model is loaded.
    pub const MODEL: ReadyFlag = ReadyFlag::Model;
    /// The denylist journal accepts writes (cleared while it cannot be written; see
    /// `Denylist::on_writable_change`).
    pub const JOURNAL: ReadyFlag = ReadyFlag::Journal;

    /// Readiness that waits for each of `required` (an API-only replica needs only
    /// [`DENYLIST`](Self::DENYLIST)).
    pub fn new(required: &[ReadyFlag]) -> Self {
        Readiness {
            flags: required
                .iter()
                .map(|flag| (*flag, AtomicBool::new(false)))
                .collect(),
        }
    }

    /// Set or clear a flag. Returns false for a flag that is not required.
    pub fn set(&self, flag: ReadyFlag, ready: bool) -> bool {
        match self.flags.iter().find(|(f, _)| *f == flag) {
            Some((_, state)) => {
                state.store(ready, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Mark one thing loaded. Returns false for a flag that is not required.
    pub fn mark_ready(&self, flag: ReadyFlag) -> bool {
        self.set(flag, true)
    }

    /// The names of the flags not yet set, in the order they were declared.
    pub fn missing(&self) -> Vec<&'static str> {
        self.flags
            .iter()
            .filter(|(_, state)| !state.load(Ordering::Acquire))
            .map(|(flag, _)| flag.name())
            .collect()
    }

    /// Every flag is set.
    pub fn is_ready(&self) -> bool {
        self.flags.iter().all(|(_, f)| f.load(Ordering::Acquire))
    }
}

impl Default for Readiness {
    /// Waits for the denylist, GeoIP and the model (the `all` role).
    fn default() -> Self {
        Readiness::new(&[Readiness::DENYLIST, Readiness::GEOIP, Readiness::MODEL])
    }
}

/// `check_requests_total{result}` counters, resolved once so the hot path does no label lookup.
struct CheckCounters {
    allow: IntCounter,
    revoked: IntCounter,
    no_token: IntCounter,
    oversized: IntCounter,
}

impl CheckCounters {
    fn new(metrics: &Metrics) -> Self {
        let counter = |result: &str| metrics.check_requests.with_label_values(&[result]);
        CheckCounters {
            allow: counter("allow"),
            revoked: counter("revoked"),
            no_token: counter("no_token"),
            oversized: counter("oversized"),
        }
    }
}

/// Everything the handlers share. Build with [`ApiState::new`] or [`ApiState::from_config`],
/// then set the optional parts (`tracker`, `ingest`, keys) before calling [`router`].
pub struct ApiState {
    denylist: Arc<Denylist>,
    metrics: Arc<Metrics>,
    check_counters: CheckCounters,
    /// Computes token fingerprints (DESIGN §4); the same pepper as the detector.
    pub fingerprinter: Fingerprinter,
    /// The session cookie's name (`tokens.session_cookie`).
    pub session_cookie: String,
    /// Largest token, bytes (`tokens.max_token_bytes`).
    pub max_token_bytes: usize,
    /// Session state for `GET /v1/sessions/…` (absent in API-only replicas).
    pub tracker: Option<Arc<SessionTracker>>,
    /// What `/readyz` waits for.
    pub readiness: Arc<Readiness>,
    /// Admin key; `None` disables the admin routes (403).
    pub admin_key: Option<String>,
    /// Ingest key for `POST /v1/events`; `None` disables ingestion (403).
    pub ingest_key: Option<String>,
    /// `[api]`: body caps, timeout, no-token policy.
    pub config: ApiConfig,
    /// TTL of admin revocations by key that name none (`denylist.default_ttl`).
    pub default_ttl: Duration,
    /// TTL of RFC 7009 revocations whose token has no verified `exp` (`tokens.opaque_ttl`).
    pub opaque_ttl: Duration,
    /// No revocation outlives this (`tokens.max_ttl`).
    pub max_ttl: Duration,
    /// Verifies JWTs for RFC 7009 revocations, so only a verified `exp` sets an entry's
    /// expiry; `None` when no JWT keys are configured (every token then gets the opaque TTL).
    pub verifier: Option<Arc<Identifier>>,
    /// Added to a JWT's `exp` for the entry's expiry (`tokens.jwt.leeway`).
    pub jwt_leeway: Duration,
    /// Where `POST /v1/events` sends its lines; `None` = ingestion not enabled (503).
    pub ingest: Option<mpsc::Sender<Vec<RawLine>>>,
    /// Longest ingested line, bytes (`input.max_line_bytes`); longer lines are cut and flagged.
    pub max_line_bytes: usize,
}

impl ApiState {
    /// State with the configuration defaults, no tracker, no ingestion and no keys.
    pub fn new(
        denylist: Arc<Denylist>,
        metrics: Arc<Metrics>,
        fingerprinter: Fingerprinter,
    ) -> Self {
        let check_counters = CheckCounters::new(&metrics);
        ApiState {
            denylist,
            metrics,
            check_counters,
            fingerprinter,
            // The `[tokens]` defaults (their default functions are private to `config`).
            session_cookie: "sid".into(),
            max_token_bytes: 8 * 1024,
            opaque_ttl: Duration::from_secs(24 * 3600),
            max_ttl: Duration::from_secs(400 * 24 * 3600),
            verifier: None,
            tracker: None,
            readiness: Arc::new(Readiness::default()),
            admin_key: None,
            ingest_key: None,
            config: ApiConfig::default(),
            default_ttl: DenylistConfig::default().default_ttl.0,
            jwt_leeway: crate::config::JwtConfig::default().leeway.0,
            ingest: None,
            max_line_bytes: InputConfig::default().max_line_bytes,
        }
    }

    /// State from a validated configuration and its secrets. Readiness waits for the
    /// denylist, plus — when this instance detects (role `all` or `detector`) — the GeoIP
    /// database and the model if they are configured.
    pub fn from_config(
        config: &Config,
        secrets: &Secrets,
        denylist: Arc<Denylist>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut state = ApiState::new(denylist, metrics, Fingerprinter::new(&secrets.pepper));
        state.session_cookie = config.tokens.session_cookie.clone();
        state.max_token_bytes = config.tokens.max_token_bytes;
        state.opaque_ttl = config.tokens.opaque_ttl.0;
        state.max_ttl = config.tokens.max_ttl.0;
        state.jwt_leeway = config.tokens.jwt.leeway.0;
        state.admin_key = secrets.admin_key.clone();
        state.ingest_key = secrets.ingest_key.clone();
        state.config = config.api.clone();
        state.default_ttl = config.denylist.default_ttl.0;
        state.max_line_bytes = config.input.max_line_bytes;
        let detects = config.role != Role::Api;
        let mut required = vec![Readiness::DENYLIST];
        if config.denylist.journal.is_some() {
            required.push(Readiness::JOURNAL);
        }
        if detects && config.geoip.city_db.is_some() {
            required.push(Readiness::GEOIP);
        }
        if detects && config.detect.model.is_some() {
            required.push(Readiness::MODEL);
        }
        state.readiness = Arc::new(Readiness::new(&required));
        state
    }

    /// The denylist the API reads and writes.
    pub fn denylist(&self) -> &Arc<Denylist> {
        &self.denylist
    }

    /// The metrics the API reports to and renders.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Every denylist key a bare token maps to: the fingerprint of its canonical form, plus
    /// `iss`/`jti`/`sid`/`sub`/`iat` read (unverified) from a JWT's decoded payload.
    fn query_for_token(&self, token: &str) -> CheckQuery {
        let canonical = Canonical::of(token);
        let fingerprint = Some(self.fingerprinter.fingerprint_canonical(&canonical));
        match unverified_claims_of(&canonical) {
            Some(c) => CheckQuery {
                fingerprint,
                iss: c.iss,
                jti: c.jti,
                sid: c.sid,
                sub: c.sub,
                iat: c.iat,
            },
            None => CheckQuery {
                fingerprint,
                ..CheckQuery::default()
            },
        }
    }
}

/// Headers that carry the original request target when the check is a subrequest (nginx
/// `X-Original-URI` by convention, Traefik and Caddy `X-Forwarded-Uri`): their
/// `access_token` parameters are credentials too.
const ORIGINAL_URI_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-uri"),
];

/// What a request carried as credentials.
#[derive(Debug, PartialEq, Eq)]
enum Credentials<'h> {
    None,
    /// A credential over `max_token_bytes`, `Cookie` headers over [`MAX_COOKIE_BYTES`] in
    /// total, or more than [`crate::credential::MAX_CREDENTIALS`] credentials.
    Oversized,
    /// Every bare token found (DESIGN §4), not yet in canonical form.
    Tokens(Vec<Cow<'h, str>>),
}

/// Every credential of the request (DESIGN §4, [`crate::credential`]): every `Authorization`
/// header, every session cookie across all `Cookie` headers, `access_token` in the query of
/// the check's own URI and of the original request's. All are checked: the check cannot know
/// which one the application will use.
fn credentials<'h>(
    headers: &'h HeaderMap,
    uri: &'h Uri,
    cookie_name: &'h str,
    max_token: usize,
) -> Credentials<'h> {
    let mut collector = Collector::new(cookie_name);
    for value in headers.get_all(header::AUTHORIZATION) {
        collector.authorization(lossy(value.as_bytes()));
    }
    let mut cookie_bytes = 0usize;
    for value in headers.get_all(header::COOKIE) {
        cookie_bytes += value.len();
        collector.cookies(lossy(value.as_bytes()));
    }
    if cookie_bytes > MAX_COOKIE_BYTES {
        return Credentials::Oversized;
    }
    if let Some(query) = uri.query() {
        collector.query(Cow::Borrowed(query));
    }
    for name in &ORIGINAL_URI_HEADERS {
        for value in headers.get_all(name) {
            collector.query(lossy(value.as_bytes()));
        }
    }
    match collector.finish() {
        Err(_) => Credentials::Oversized,
        Ok(found) if found.is_empty() => Credentials::None,
        Ok(found) if found.iter().any(|(_, token)| token.len() > max_token) => {
            Credentials::Oversized
        }
        Ok(found) => Credentials::Tokens(found.into_iter().map(|(_, token)| token).collect()),
    }
}

fn deny_response() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, DENY_CHALLENGE);
    response
}

/// `GET /v1/check`: the decision for the middleware. 200 with an empty body allows; 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` denies.
///
/// A credential over `tokens.max_token_bytes` (or `Cookie` headers over [`MAX_COOKIE_BYTES`],
/// or more than [`crate::credential::MAX_CREDENTIALS`] credentials) is denied: the detector rejects such records
/// without tracking them, so they could never be revoked — allowing them would let an attacker
/// pad a token past every control. No legitimate request looks like that. No credential at
/// all: `api.no_token`.
async fn check_get(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let started = Instant::now();
    let counters = &state.check_counters;
    let response = match credentials(
        request.headers(),
        request.uri(),
        &state.session_cookie,
        state.max_token_bytes,
    ) {
        Credentials::None => {
            counters.no_token.inc();
            match state.config.no_token {
                NoTokenPolicy::Allow => StatusCode::OK.into_response(),
                NoTokenPolicy::Deny => deny_response(),
            }
        }
        Credentials::Oversized => {
            counters.oversized.inc();
            deny_response()
        }
        Credentials::Tokens(tokens) => {
            let now_ms = wall_clock_ms();
            let revoked = tokens.iter().any(|token| {
                state
                    .denylist
                    .check(&state.query_for_token(token), now_ms)
                    .is_some()
            });
            if revoked {
                counters.revoked.inc();
                deny_response()
            } else {
                counters.allow.inc();
                StatusCode::OK.into_response()
            }
        }
    };
    state
        .metrics
        .check_duration
        .observe(started.elapsed().as_secs_f64());
    response
}

/// An error answer: `{"error": code, "error_description": text}` (the OAuth shape, so RFC 7009
/// clients read it too).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
    retry_after: Option<&'static str>,
    challenge: bool,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            code,
            description: description.into(),
            retry_after: None,
            challenge: false,
        }
    }

    fn bad_request(code: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, description)
    }

    fn unauthorized() -> Self {
        ApiError {
            challenge: true,
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <key>",
            )
        }
    }

    fn body(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, rejection.body_text())
    }

    fn journal(error: DenylistError) -> Self {
        tracing::error!(code = error.code(), %error, "denylist write failed");
        match error {
            DenylistError::NotAFingerprint => {
                ApiError::bad_request("not_a_fingerprint", "only fp: keys can be allowlisted")
            }
            DenylistError::RecordTooLarge { .. } => {
                ApiError::bad_request("too_large", error.to_string())
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal_failed",
                format!("the change could not be made durable ({})", other.code()),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        if self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, ADMIN_CHALLENGE);
        }
        response
    }
}

/// An entry as the API shows it: times in RFC 3339.
#[derive(Debug, Serialize)]
struct EntryView {
    key: String,
    /// In force now.
    revoked: bool,
    origin: Origin,
    reasons: Vec<String>,
    created_at: String,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

impl EntryView {
    fn new(key: &DenyKey, entry: Entry, now_ms: i64) -> Self {
        EntryView {
            key: key.to_string(),
            revoked: entry.is_live(now_ms),
            origin: entry.origin,
            created_at: EventTime(entry.created_at_ms).to_rfc3339(),
            expires_at: EventTime(entry.expires_at_ms).to_rfc3339(),
            not_before: entry
                .not_before
                .map(|s| EventTime::from_secs(s).to_rfc3339()),
            score: entry.score,
            reasons: entry.reasons,
        }
    }
}

/// `POST /v1/check` body: exactly one of `{"token"}`, `{"fingerprint"}`, `{"iss","jti"}`.
/// No `Debug`: it may hold a raw token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    token: Option<String>,
    fingerprint: Option<String>,
    iss: Option<String>,
    jti: Option<String>,
}

#[derive(Debug, Serialize)]
struct CheckView {
    revoked: bool,
    key: Option<String>,
    reasons: Vec<String>,
    expires_at: Option<String>,
}

fn parse_fingerprint(text: &str) -> Option<Fingerprint> {
    Fingerprint::from_hex(text.strip_prefix("fp:").unwrap_or(text))
}

/// `POST /v1/check`: the same look-up as `GET`, with the reason. 400 on bad input.
async fn check_post(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let request: CheckBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let query = match request {
        CheckBody {
            token: Some(token),
            fingerprint: None,
            iss: None,
            jti: None,
        } => {
            let token = RawToken::new(token);
            if token.len() > state.max_token_bytes {
                return Err(ApiError::bad_request(
                    "token_too_large",
                    "the token exceeds tokens.max_token_bytes",
                ));
            }
            if token.is_empty() {
                return Err(ApiError::bad_request("invalid_token", "empty token"));
            }
            state.query_for_token(token.expose())
        }
        CheckBody {
            token: None,
            fingerprint: Some(text),
            iss: None,
            jti: None,
        } => CheckQuery {
            fingerprint: Some(parse_fingerprint(&text).ok_or_else(|| {
                ApiError::bad_request("invalid_fingerprint", "expected 32 hex characters")
            })?),
            ..CheckQuery::default()
        },
        CheckBody {
            token: None,
            fingerprint: None,
            iss: Some(iss),
            jti: Some(jti),
        } if !iss.is_empty() && !jti.is_empty() && iss.len() + jti.len() <= MAX_KEY_BYTES => {
            CheckQuery {
                iss: Some(iss),
                jti: Some(jti),
                ..CheckQuery::default()
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "send exactly one of {\"token\"}, {\"fingerprint\"} or {\"iss\",\"jti\"}",
            ));
        }
    };
    let view = match state.denylist.check(&query, wall_clock_ms()) {
        Some((key, entry)) => {
            state.check_counters.revoked.inc();
            CheckView {
                revoked: true,
                key: Some(key.to_string()),
                expires_at: Some(EventTime(entry.expires_at_ms).to_rfc3339()),
                reasons: entry.reasons,
            }
        }
        None => {
            state.check_counters.allow.inc();
            CheckView {
                revoked: false,
                key: None,
                reasons: Vec::new(),
                expires_at: None,
            }
        }
    };
    Ok(axum::Json(view).into_response())
}

/// RFC 7009 revocation request. Unknown parameters (`client_id`, …) are ignored.
/// No `Debug`: it holds a raw token.
#[derive(Deserialize)]
struct RevocationForm {
    token: Option<String>,
    #[allow(dead_code)] // accepted per RFC 7009 §2.1; every token is revoked by fingerprint
    token_type_hint: Option<String>,
}

/// `not_before` as epoch seconds or RFC 3339 text.
#[derive(Deserialize)]
#[serde(untagged)]
enum TimeInput {
    Seconds(i64),
    Text(String),
}

/// JSON revocation by key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRevocation {
    key: String,
    reason: Option<String>,
    ttl: Option<String>,
    not_before: Option<TimeInput>,
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `POST /v1/revoke` (admin).
///
/// - `application/x-www-form-urlencoded`: RFC 7009 (`token`, optional `token_type_hint`).
///   Revokes `fp:` of the token until the JWT's *verified* `exp` + leeway, else for
///   `tokens.opaque_ttl`; never longer than `tokens.max_ttl`. Answers 200 for any token,
///   unknown or garbage ones included (RFC 7009 §2.2); a token over `tokens.max_token_bytes` is
///   not stored (the check denies it anyway).
///   Only a missing `token` is a 400 (`invalid_request`).
/// - `application/json`: `{"key", "reason"?, "ttl"?, "not_before"?}`; `ttl` defaults to
///   `denylist.default_ttl`; `not_before` (epoch seconds or RFC 3339) is for `sub:` keys only
///   and defaults to now. A `sub:` entry must outlive every token issued before `not_before`,
///   so give it a `ttl` of at least the longest token lifetime.
///
/// Durable before it answers. Returns the entry.
async fn revoke(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let now_ms = wall_clock_ms();
    let (key, entry) = match media_type(&headers).as_str() {
        "application/x-www-form-urlencoded" => {
            let form: RevocationForm = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
            let Some(token) = form.token.filter(|t| !t.is_empty()).map(RawToken::new) else {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "the token parameter is required",
                ));
            };
            if token.len() > state.max_token_bytes {
                return Ok(axum::Json(serde_json::json!({"revoked": false})).into_response());
            }
            let query = state.query_for_token(token.expose());
            let expires_at_ms = match verified_exp(&state, &token, now_ms) {
                Some(exp) => exp
                    .saturating_mul(1000)
                    .saturating_add(duration_ms(state.jwt_leeway)),
                None => now_ms.saturating_add(duration_ms(state.opaque_ttl)),
            }
            .min(now_ms.saturating_add(duration_ms(state.max_ttl)));
            let Some(fingerprint) = query.fingerprint else {
                return Err(ApiError::bad_request("invalid_request", "no fingerprint"));
            };
            let entry = Entry {
                reasons: vec!["rfc7009".into()],
                origin: Origin::Admin,
                created_at_ms: now_ms,
                expires_at_ms,
                not_before: None,
                score: None,
            };
            (DenyKey::Fingerprint(fingerprint), entry)
        }
        "application/json" => {
            let request: KeyRevocation = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
            key_revocation(&state, request, now_ms)?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/x-www-form-urlencoded (RFC 7009) or application/json",
            ));
        }
    };
    let denylist = state.denylist.clone();
    let (stored_key, stored_entry) = (key.clone(), entry.clone());
    tokio::task::spawn_blocking(move || denylist.revoke(stored_key, stored_entry))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "revocation task failed",
            )
        })?
        .map_err(ApiError::journal)?;
    state
        .metrics
        .revocations
        .with_label_values(&[Origin::Admin.label()])
        .inc();
    Ok(axum::Json(EntryView::new(&key, entry, now_ms)).into_response())
}

/// The `exp` of a token whose signature and claims verify now; anyone can write any `exp`
/// into an unverified token, so nothing else may set how long an entry lasts.
fn verified_exp(state: &ApiState, token: &RawToken, now_ms: i64) -> Option<i64> {
    let identity = state
        .verifier
        .as_ref()?
        .identify(&Credential::Bearer(token.clone()), EventTime(now_ms))
        .ok()?;
    identity.claims?.exp
}

fn key_revocation(
    state: &ApiState,
    request: KeyRevocation,
    now_ms: i64,
) -> Result<(DenyKey, Entry), ApiError> {
    let key: DenyKey = request
        .key
        .parse()
        .map_err(|e: crate::denylist::KeyParseError| {
            ApiError::bad_request("invalid_key", e.to_string())
        })?;
    let ttl = match request.ttl.as_deref() {
        None => state.default_ttl,
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| ApiError::bad_request("invalid_ttl", format!("ttl {text:?}: {e}")))?,
    };
    if ttl.is_zero() || ttl > state.max_ttl {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            format!(
                "ttl must be positive and at most tokens.max_ttl ({})",
                humantime::format_duration(state.max_ttl)
            ),
        ));
    }
    let reason = request.reason.unwrap_or_else(|| "admin".into());
    if reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "reason must be at most 1024 bytes without control characters",
        ));
    }
    let not_before = match (&key, request.not_before) {
        (DenyKey::Sub { .. }, None) => Some(now_ms.div_euclid(1000)),
        (DenyKey::Sub { .. }, Some(TimeInput::Seconds(secs))) => Some(secs),
        (DenyKey::Sub { .. }, Some(TimeInput::Text(text))) => Some(
            crate::event::EventTime::parse_rfc3339(&text)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_not_before",
                        format!("not_before {text:?}: expected epoch seconds or RFC 3339"),
                    )
                })?
                .secs(),
        ),
        (_, None) => None,
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_not_before",
                "not_before applies to sub: keys only",
            ));
        }
    };
    let entry = Entry {
        reasons: vec![reason],
        origin: Origin::Admin,
        created_at_ms: now_ms,
        expires_at_ms: now_ms.saturating_add(duration_ms(ttl)),
        not_before,
        score: None,
    };
    Ok((key, entry))
}

#[derive(Deserialize)]
struct UnrevokeParams {
    #[serde(default)]
    allowlist: bool,
}

/// `DELETE /v1/revocations/{key}` (admin): un-revoke a false positive. The key is
/// URL-encoded (slashes may be left as they are). `?allowlist=true` also allowlists an `fp:`
/// token so the detector will not revoke it again (400 for other keys).
///
/// Always 200 with `{"removed": bool, "allowlisted": bool}`: `removed: false` when the key
/// was not on the list. Deleting is idempotent, so a retried request is not an error.
async fn unrevoke(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    params: Result<Query<UnrevokeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let key: DenyKey = key.parse().map_err(|e: crate::denylist::KeyParseError| {
        ApiError::bad_request("invalid_key", e.to_string())
    })?;
    let denylist = state.denylist.clone();
    let removed = tokio::task::spawn_blocking(move || denylist.unrevoke(&key, params.allowlist))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "un-revocation task failed",
            )
        })?
        .map_err(ApiError::journal)?;
    Ok(axum::Json(serde_json::json!({
        "removed": removed,
        "allowlisted": params.allowlist,
    }))
    .into_response())
}

#[derive(Serialize)]
struct SessionView {
    fingerprint: Fingerprint,
    /// The tracker's state, when this instance tracks the session.
    session: Option<SessionSnapshot>,
    denylist: DenylistStatus,
}

#[derive(Serialize)]
struct DenylistStatus {
    revoked: bool,
    entry: Option<EntryView>,
    allowlisted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowlisted_until: Option<String>,
}

/// `GET /v1/sessions/{fingerprint}` (admin): the tracker's snapshot and the token's denylist
/// status. 404 when neither the tracker nor the denylist knows the fingerprint.
async fn session(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    let fingerprint = parse_fingerprint(&text).ok_or_else(|| {
        ApiError::bad_request("invalid_fingerprint", "expected 32 hex characters")
    })?;
    let session = state.tracker.as_ref().and_then(|t| t.snapshot(fingerprint));
    let key = DenyKey::Fingerprint(fingerprint);
    let entry = state.denylist.get(&key);
    let allowlisted_until = state.denylist.allowlisted_until(fingerprint);
    if session.is_none() && entry.is_none() && allowlisted_until.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no session state or denylist entry for this fingerprint",
        ));
    }
    let now_ms = wall_clock_ms();
    let entry = entry.map(|e| EntryView::new(&key, e, now_ms));
    let view = SessionView {
        fingerprint,
        session,
        denylist: DenylistStatus {
            revoked: entry.as_ref().is_some_and(|e| e.revoked),
            entry,
            allowlisted: allowlisted_until.is_some(),
            allowlisted_until: allowlisted_until.map(|ms| EventTime(ms).to_rfc3339()),
        },
    };
    Ok(axum::Json(view).into_response())
}

/// Split an NDJSON body into lines (CRLF tolerated, blank lines skipped), each cut at
/// `max_line` bytes and flagged `truncated` (parse rejects those as `too_large`).
fn split_lines(body: &[u8], max_line: usize) -> Vec<RawLine> {
    body.split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.trim_ascii().is_empty() {
                return None;
            }
            let truncated = line.len() > max_line;
            Some(RawLine {
                source: SourceKind::Http,
                bytes: line[..line.len().min(max_line)].to_vec(),
                truncated,
            })
        })
        .collect()
}

fn busy(code: &'static str, description: &'static str) -> ApiError {
    ApiError {
        retry_after: Some("1"),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, description)
    }
}

/// `POST /v1/events` (ingest key): NDJSON access-log records for the pipeline. 202
/// `{"accepted": n}`; 413 over `api.max_ingest_bytes`; 503 with `Retry-After` when the
/// pipeline is behind (the whole body is refused — resend it); 503 when ingestion is not
/// enabled. Never waits for the pipeline.
async fn ingest(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let Some(sender) = state.ingest.as_ref() else {
        return Err(ingest_disabled());
    };
    let lines = split_lines(&body, state.max_line_bytes);
    let accepted = lines.len();
    if accepted > 0 {
        sender.try_send(lines).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                busy("ingest_busy", "the pipeline is behind; retry shortly")
            }
            mpsc::error::TrySendError::Closed(_) => {
                busy("ingest_closed", "the pipeline is shutting down")
            }
        })?;
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "accepted": accepted })),
    )
        .into_response())
}

fn ingest_disabled() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ingest_disabled",
        "ingestion over HTTP is not enabled on this instance",
    )
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let entries = i64::try_from(state.denylist.len()).unwrap_or(i64::MAX);
    state.metrics.denylist_entries.set(entries);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: 200 while the server is serving.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when every readiness flag is set, else 503 naming what is missing.
async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    let missing = state.readiness.missing();
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"ready": missing.is_empty(), "missing": missing});
    (status, axum::Json(body)).into_response()
}

/// Compare a presented key with the configured one in constant time: both are hashed first,
/// so neither their contents nor their lengths show in the timing.
fn keys_match(presented: &[u8], expected: &[u8]) -> bool {
    let presented = digest::digest(&digest::SHA256, presented);
    let expected = digest::digest(&digest::SHA256, expected);
    presented.as_ref().ct_eq(expected.as_ref()).into()
}

fn authorize(
    expected: Option<&str>,
    headers: &HeaderMap,
    what: &'static str,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "disabled", what));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| lossy(v.as_bytes()));
    match presented.as_deref().and_then(bearer_token) {
        Some(key) if keys_match(key.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Admin routes: `Authorization: Bearer <admin key>`. Runs before the body is read.
async fn require_admin(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    match authorize(
        state.admin_key.as_deref(),
        request.headers(),
        "admin routes are disabled: no admin key is configured",
    ) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// `POST /v1/events`: `Authorization: Bearer <ingest key>`; refuses early (before reading the
/// body) when ingestion is off or the pipeline channel is full.
async fn require_ingest(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(error) = authorize(
        state.ingest_key.as_deref(),
        request.headers(),
        "ingestion is disabled: no ingest key is configured",
    ) {
        return error.into_response();
    }
    match &state.ingest {
        None => ingest_disabled().into_response(),
        Some(sender) if sender.capacity() == 0 => {
            busy("ingest_busy", "the pipeline is behind; retry shortly").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// Non-check routes: cap the credential headers (431).
async fn limit_credential_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let authorization_too_large = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .any(|v| v.len() > MAX_AUTHORIZATION_BYTES);
    let cookie_bytes: usize = headers
        .get_all(header::COOKIE)
        .iter()
        .map(|v| v.len())
        .sum();
    if authorization_too_large || cookie_bytes > MAX_COOKIE_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "Authorization or Cookie header too large",
        )
        .into_response();
    }
    next.run(request).await
}

/// `api_requests_total{route,status}` for every route but `GET /v1/check` (counted by
/// `check_requests_total` without a label lookup). `route` is the route template: bounded.
async fn count_requests(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state
        .metrics
        .api_requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

/// A concurrency budget with immediate load-shedding: a request that finds every permit taken
/// is answered 503 with `Retry-After: 1` at once, never queued.
async fn within_budget(
    State(budget): State<Arc<tokio::sync::Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    match budget.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => busy("busy", "too many requests in flight; retry shortly").into_response(),
    }
}

/// The API's routes with their limits, timeouts and auth.
///
/// Concurrency: `GET /v1/check`, `/healthz` and `/readyz` answer from memory without waiting
/// on anything and are limited only by the connection cap ([`serve_with`]). Everything that
/// reads a body or does more work has a budget of `api.max_concurrent_requests` requests in
/// flight, beyond which it is shed at once: `POST /v1/check` has its own, and the admin,
/// ingest and metrics routes share one. So slow or many admin, ingest, metrics or
/// `POST /v1/check` clients hold at most two budgets' worth of connections busy, and never
/// make the middleware's check wait behind them.
pub fn router(state: Arc<ApiState>) -> Router {
    let budget = || {
        let permits = tokio::sync::Semaphore::new(state.config.max_concurrent_requests);
        middleware::from_fn_with_state(Arc::new(permits), within_budget)
    };
    let admin = Router::new()
        .route("/v1/revoke", post(revoke))
        .route("/v1/revocations/{*key}", delete(unrevoke))
        .route("/v1/sessions/{fingerprint}", get(session))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let ingestion = Router::new()
        .route(
            "/v1/events",
            post(ingest).layer(DefaultBodyLimit::max(state.config.max_ingest_bytes)),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_ingest,
        ));
    let shared_budget = Router::new()
        .route("/metrics", get(metrics))
        .merge(admin)
        .merge(ingestion)
        .route_layer(budget());
    let counted = Router::new()
        .route("/v1/check", post(check_post).route_layer(budget()))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(shared_budget)
        .layer(middleware::from_fn(limit_credential_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ));
    Router::new()
        .route("/v1/check", get(check_get))
        .merge(counted)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.request_timeout.0,
        ))
        .with_state(state)
}

mod serve;
pub use serve::{ServeOptions, connection_cap, serve, serve_with};

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    /// Name, request URI and headers, expected tokens (`None` = oversized).
    type HeaderCase<'a> = (
        &'a str,
        &'a str,
        Vec<(&'static str, &'a str)>,
        Option<Vec<&'a str>>,
    );

    #[test]
    fn credentials_are_every_bearer_cookie_and_access_token() {
        let big = "x".repeat(101);
        let (big_bearer, big_cookie) = (format!("Bearer {big}"), format!("sid={big}"));
        let decoys = (0..9)
            .map(|i| format!("sid=d{i}"))
            .collect::<Vec<_>>()
            .join("; ");
        let cases: Vec<HeaderCase<'_>> = vec![
            ("nothing", "/v1/check", vec![], Some(vec![])),
            (
                "bearer",
                "/v1/check",
                vec![("authorization", "Bearer abc")],
                Some(vec!["abc"]),
            ),
            (
                "scheme is case-insensitive, tab or spaces",
                "/v1/check",
                vec![("authorization", "bEaReR\t  abc  ")],
                Some(vec!["abc"]),
            ),
            (
                "every Authorization header, junk first",
                "/v1/check",
                vec![
                    ("authorization", "Bearer junk"),
                    ("authorization", "Bearer REV"),
                ],
                Some(vec!["junk", "REV"]),
            ),
            (
                "basic auth is not a token",
                "/v1/check",
                vec![("authorization", "Basic dXNlcjpwdw==")],
                Some(vec![]),
            ),
            (
                "empty bearer",
                "/v1/check",
                vec![("authorization", "Bearer ")],
                Some(vec![]),
            ),
            (
                "every session cookie across Cookie headers and separators, as sent",
                "/v1/check",
                vec![
                    ("cookie", "theme=dark; sid=junk; sid=\"s-1\""),
                    ("cookie", "a=b, sid=%6Fpaque"),
                ],
                Some(vec!["junk", "\"s-1\"", "%6Fpaque"]),
            ),
            (
                "a cookie whose name only ends in sid",
                "/v1/check",
                vec![("cookie", "xsid=s-1")],
                Some(vec![]),
            ),
            (
                "access_token in the check's query and in the original URI",
                "/v1/check?access_token=q1",
                vec![("x-original-uri", "/api/x?access_token=q2&y=1")],
                Some(vec!["q1", "q2"]),
            ),
            (
                "both",
                "/v1/check",
                vec![("authorization", "Bearer abc"), ("cookie", "sid=s-2")],
                Some(vec!["abc", "s-2"]),
            ),
            (
                "oversized bearer",
                "/v1/check",
                vec![("authorization", &big_bearer)],
                None,
            ),
            (
                "oversized cookie",
                "/v1/check",
                vec![("cookie", &big_cookie)],
                None,
            ),
            (
                "nine decoy cookies",
                "/v1/check",
                vec![("cookie", &decoys)],
                None,
            ),
        ];
        for (name, uri, pairs, want) in cases {
            let map = headers(&pairs);
            let uri: Uri = uri.parse().expect("uri");
            let got = match credentials(&map, &uri, "sid", 100) {
                Credentials::None => Some(vec![]),
                Credentials::Oversized => None,
                Credentials::Tokens(tokens) => {
                    Some(tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>())
                }
            };
            let want = want.map(|w| w.iter().map(|t| t.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{name}");
        }
        let huge_cookie = format!("other={}", "y".repeat(MAX_COOKIE_BYTES));
        let map = headers(&[("cookie", &huge_cookie)]);
        let uri: Uri = "/v1/check".parse().expect("uri");
        assert_eq!(credentials(&map, &uri, "sid", 100), Credentials::Oversized);
    }

    #[test]
    fn ndjson_lines_are_split_capped_and_flagged() {
        let body = b"{\"a\":1}\r\n\n   \n{\"b\":22222}\n{\"c\":3}";
        let lines = split_lines(body, 8);
        let got: Vec<(&[u8], bool)> = lines
            .iter()
            .map(|l| (l.bytes.as_slice(), l.truncated))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"{\"a\":1}"[..], false),
                (&b"{\"b\":222"[..], true),
                (&b"{\"c\":3}"[..], false),
            ]
        );
        assert!(lines.iter().all(|l| l.source == SourceKind::Http));
    }

    #[test]
    fn keys_match_only_the_exact_key() {
        let cases = [
            ("admin-key-0123456789", true),
            ("admin-key-012345678", false),
            ("admin-key-01234567890", false),
            ("", false),
        ];
        for (presented, want) in cases {
            assert_eq!(
                keys_match(presented.as_bytes(), b"admin-key-0123456789"),
                want,
                "{presented:?}"
            );
        }
    }

    #[test]
    fn readiness_from_config_waits_only_for_what_this_role_loads() {
        let cases = [
            ("role = \"all\"\n", vec!["denylist"]),
            (
                "role = \"all\"\n[geoip]\ncity_db = \"/c.mmdb\"\n[detect]\nmodel = \"m.json\"\n",
                vec!["denylist", "geoip", "model"],
            ),
            // `role = "api"` is a config error until distributed mode (issue 16).
            (
                "role = \"all\"\n[denylist]\njournal = \"deny.journal\"\n",
                vec!["denylist", "journal"],
            ),
        ];
        for (text, want) in cases {
            let text = text.replacen('\n', "\n[tokens]\npepper = \"test-pepper-0123456789\"\n", 1);
            let config = Config::parse(&text, std::path::Path::new("/etc/tw")).expect(&text);
            let secrets = config.validate(&[("X", "y")]).expect("valid");
            let denylist = Arc::new(Denylist::open(None).expect("memory"));
            let state =
                ApiState::from_config(&config, &secrets, denylist, Arc::new(Metrics::new()));
            assert_eq!(state.readiness.missing(), want, "{text}");
        }
    }

    #[test]
    fn readiness_names_what_is_missing() {
        let readiness = Readiness::default();
        assert_eq!(readiness.missing(), vec!["denylist", "geoip", "model"]);
        assert!(readiness.mark_ready(Readiness::GEOIP));
        assert!(
            !readiness.mark_ready(Readiness::JOURNAL),
            "not a required flag"
        );
        assert_eq!(readiness.missing(), vec!["denylist", "model"]);
        readiness.mark_ready(Readiness::DENYLIST);
        readiness.mark_ready(Readiness::MODEL);
        assert!(readiness.is_ready());
        readiness.set(Readiness::MODEL, false);
        assert!(!readiness.is_ready());
    }
}
