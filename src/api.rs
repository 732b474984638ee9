//! The HTTP API (DESIGN §7): the check endpoint the auth middleware calls on every request,
//! admin revocation, session inspection, log ingestion, metrics and health.
//!
//! Where it sits: an edge of the daemon. It reads the [`Denylist`] (and writes it for admin
//! revocations), reads the session tracker for `GET /v1/sessions/…`, and hands
//! `POST /v1/events` bodies to the pipeline through a bounded channel. `app` builds the
//! [`ApiState`], calls [`router`](fn@router) and runs [`serve_with`] with its listener, shutdown future
//! and connection cap. The server itself (accepting, the connection cap, hyper) is in
//! `api/serve.rs`; the routes and their layers in `router`, the handlers in `check`,
//! `admin`, `ingest` and `health`, key checks in `auth` and the error answers in `errors`.
//! This file holds the shared [`ApiState`] and the header and reason limits.
//!
//! | route | who | auth |
//! |---|---|---|
//! | `GET /v1/check` | nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz, Caddy `forward_auth` | none |
//! | `POST /v1/check` | apps and SDKs | none |
//! | `POST /v1/revoke` | admins, IdP hooks (RFC 7009 form or JSON) | admin key |
//! | `DELETE /v1/revocations/{key}` | admins | admin key |
//! | `GET /v1/revocations?since=&limit=` | middleware caches, on-call | admin or reader key |
//! | `GET /v1/revocations/stream` | SDKs, caches (Server-Sent Events) | admin or reader key |
//! | `GET /v1/revocations/{key}` | on-call (`tokenwatch revocations show`) | admin or reader key |
//! | `GET /v1/sessions/{fingerprint}` | on-call | admin key |
//! | `POST /v1/events` | log shippers (NDJSON) | ingest key |
//! | `GET /metrics`, `/healthz`, `/readyz` | Prometheus, orchestrators | none |
//!
//! Invariants:
//! - `GET /v1/check` answers a decision with **200 and an empty body** (allow) or **401** with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (deny) and nothing else: Envoy allows
//!   only on 200 and nginx turns other codes into 500 (docs/DESIGN.md §7). It reads only
//!   memory, so it keeps answering whatever happens to the journal or Kafka. Fail-open vs fail-closed when tokenwatch is unreachable is the
//!   middleware's setting.
//! - Admin and ingest keys are compared in constant time (SHA-256 of both sides, then
//!   `subtle`), so neither content nor length leaks through timing. With no admin key
//!   configured the admin routes answer **403** (disabled), never "open".
//! - Limits: every body is capped (`api.max_body_bytes`, `api.max_ingest_bytes` for events;
//!   413 above), every route runs under `api.request_timeout` (503 on expiry), and headers
//!   are capped twice: by hyper in [`serve`](fn@serve) (request line + headers within
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
//! - Every admin action (revoke, un-revoke, allowlist) is logged at INFO and, with `[audit]`,
//!   recorded as an `"type":"admin"` record with the admin key's id (never the key).
//!
//! It does NOT: verify JWT signatures (the check reads claims unverified — a forged token can
//! only be denied here, never allowed, since the application still verifies it), or speak TLS (terminate it in
//! front, or bind to localhost/a private network).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::audit::AuditLog;
use crate::config::{ApiConfig, Config, DenylistConfig, FeedConfig, InputConfig, Secrets};
use crate::denylist::Denylist;
use crate::event::RawLine;
use crate::identify::{Fingerprinter, Identifier};
use crate::metrics::Metrics;
use crate::track::SessionTracker;

mod admin;
mod auth;
mod check;
mod errors;
mod feed;
mod health;
mod ingest;
mod router;
mod serve;
#[cfg(test)]
mod tests;

use check::CheckCounters;

pub use health::{Readiness, ReadyFlag};
pub use router::{health_router, router};
pub use serve::{ServeOptions, connection_cap, serve, serve_with};

/// Largest `Authorization` header accepted on non-check routes, bytes (431 above).
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;
/// Largest total of `Cookie` headers, bytes: 431 on non-check routes, a deny on the check.
pub const MAX_COOKIE_BYTES: usize = 32 * 1024;
/// Largest admin reason text, bytes (400 above).
pub const MAX_REASON_BYTES: usize = 1024;

/// Everything the handlers share. Build with [`ApiState::new`] or [`ApiState::from_config`],
/// then set the optional parts (`tracker`, `ingest`, keys) before calling [`router`](fn@router).
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
    /// Read-only key for the change feed (`GET /v1/revocations…`); never accepted on a route
    /// that changes anything. The admin key reads the feed too.
    pub reader_key: Option<String>,
    /// Where admin actions are recorded (besides the INFO log line); `None`: log only.
    pub audit: Option<Arc<AuditLog>>,
    /// `[feed]`: page and stream caps. Set with [`ApiState::set_feed`].
    feed: FeedConfig,
    /// Open change-feed streams (`feed.max_streams`).
    stream_permits: Arc<tokio::sync::Semaphore>,
    /// Cancelled at shutdown: change-feed streams end (they would otherwise hold the drain).
    pub shutdown: tokio_util::sync::CancellationToken,
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
        let feed = FeedConfig::default();
        ApiState {
            reader_key: None,
            audit: None,
            stream_permits: Arc::new(tokio::sync::Semaphore::new(feed.max_streams)),
            feed,
            shutdown: tokio_util::sync::CancellationToken::new(),
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
        state.reader_key = secrets.reader_key.clone();
        state.config = config.api.clone();
        // Streams hold their connections: at most half of what the budgets leave, so the
        // check always has room.
        let spare = config
            .api
            .max_connections
            .saturating_sub(config.api.max_concurrent_requests.saturating_mul(2));
        let mut feed = config.feed.clone();
        feed.max_streams = feed.max_streams.min(spare / 2).max(1);
        state.set_feed(feed);
        state.default_ttl = config.denylist.default_ttl.0;
        state.max_line_bytes = config.input.max_line_bytes;
        let mut required = vec![ReadyFlag::Denylist];
        if config.denylist.journal.is_some() {
            required.push(ReadyFlag::Journal);
        }
        let detects = config.role != crate::config::Role::Api;
        if detects && config.geoip.city_db.is_some() {
            required.push(ReadyFlag::Geoip);
        }
        if detects && config.detect.model.is_some() {
            required.push(ReadyFlag::Model);
        }
        if config.kafka.is_some() {
            required.push(ReadyFlag::Kafka);
        }
        state.readiness = Arc::new(Readiness::new(&required));
        state
    }

    /// Use `feed`'s caps (and its retention for the denylist's change feed).
    pub fn set_feed(&mut self, feed: FeedConfig) {
        self.stream_permits = Arc::new(tokio::sync::Semaphore::new(feed.max_streams));
        self.denylist.feed().set_retain(feed.retain);
        self.feed = feed;
    }

    /// The denylist the API reads and writes.
    pub fn denylist(&self) -> &Arc<Denylist> {
        &self.denylist
    }

    /// The metrics the API reports to and renders.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}
