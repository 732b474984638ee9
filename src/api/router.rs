//! The API's routes and their layers: which handler answers which path, the body caps,
//! the request timeout, the concurrency budgets with load shedding, the credential-header
//! caps and the request counter.
//!
//! Data flow: `app` builds the [`ApiState`] and calls [`router`]; `serve` runs the result.
//! Handlers live in `check`, `admin`, `ingest` and `health`.
//!
//! Invariants: `GET /v1/check`, `/healthz` and `/readyz` have no budget (limited only by the
//! connection cap); `POST /v1/check` has its own budget and admin + ingest + `/metrics` share
//! another, each shedding at once with 503 and `Retry-After` when full; every route runs
//! under `api.request_timeout` and a body cap; non-check routes answer 431 for oversized
//! `Authorization` or `Cookie` headers; route labels are templates (bounded).
//!
//! What it does NOT do: accept connections or cap them (`serve`), or authenticate (`auth`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use tower_http::timeout::TimeoutLayer;

use super::admin::{revoke, session, unrevoke};
use super::auth::{require_admin, require_ingest, require_reader};
use super::check::{check_get, check_post};
use super::errors::{ApiError, busy};
use super::feed;
use super::health::{healthz, metrics, readyz};
use super::ingest::ingest;
use super::{ApiState, MAX_AUTHORIZATION_BYTES, MAX_COOKIE_BYTES};

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
/// on anything and are limited only by the connection cap ([`serve_with`](super::serve_with)). Everything that
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
    // The change feed: admin or reader key. Pages and entries share the admin budget; a
    // stream holds its connection for long, so it has its own cap (`feed.max_streams`).
    let feed_reads = Router::new()
        .route("/v1/revocations", get(feed::page))
        .route("/v1/revocations/{*key}", get(feed::show))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_reader,
        ));
    let feed_streams = Router::new()
        .route("/v1/revocations/stream", get(feed::stream))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_reader,
        ));
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
        .merge(feed_reads)
        .merge(ingestion)
        .route_layer(budget());
    let counted = Router::new()
        .route("/v1/check", post(check_post).route_layer(budget()))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(feed_streams)
        .merge(shared_budget)
        .layer(middleware::from_fn(limit_credential_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ));
    Router::new()
        .route("/v1/check", get(check_get))
        // Envoy's HTTP ext_authz (`path_prefix: /v1/check`) calls the prefix + the original
        // path with the original method: every such call is the same check. A catch-all
        // needs one character, hence `/v1/check/` for the original path `/`.
        .route("/v1/check/", any(check_get))
        .route("/v1/check/{*original_path}", any(check_get))
        .merge(counted)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.request_timeout.0,
        ))
        .with_state(state)
}

/// A detector's routes (role `detector`, DESIGN §9): `/metrics`, `/healthz` and `/readyz`
/// only — the check and admin API live on the `api` replicas — under the same timeout, body
/// cap and request counting.
pub fn health_router(state: Arc<ApiState>) -> Router {
    let permits = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_concurrent_requests,
    ));
    Router::new()
        .route(
            "/metrics",
            get(metrics).route_layer(middleware::from_fn_with_state(permits, within_budget)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.request_timeout.0,
        ))
        .with_state(state)
}
