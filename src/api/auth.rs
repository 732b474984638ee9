//! Route authentication: admin routes need `Authorization: Bearer <admin key>`, the change
//! feed the admin key or the read-only reader key, `POST /v1/events` the ingest key; all are
//! checked before the body is read.
//!
//! Data flow: the **api** middleware in front of `admin` and `ingest` (`router` layers it).
//!
//! Invariants: keys are compared in constant time over their SHA-256 (neither content nor
//! length shows in the timing); no key configured means the routes answer 403 (disabled),
//! never "open"; ingestion refuses early when it is off or the pipeline channel is full.
//!
//! What it does NOT do: authenticate the check (it is open by design) or know about users
//! or roles beyond the three keys.

use std::sync::Arc;

use aws_lc_rs::digest;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::credential::{bearer_token, lossy};

use super::ApiState;
use super::errors::{ApiError, busy};
use super::ingest::ingest_disabled;

/// Compare a presented key with the configured one in constant time: both are hashed first,
/// so neither their contents nor their lengths show in the timing.
pub(super) fn keys_match(presented: &[u8], expected: &[u8]) -> bool {
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
pub(super) async fn require_admin(
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

/// Change-feed routes (`GET /v1/revocations…`): the admin key or the read-only reader key.
/// The reader key is accepted here only — never by [`require_admin`].
pub(super) async fn require_reader(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.admin_key.is_none() && state.reader_key.is_none() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "disabled",
            "the change feed is disabled: no admin or reader key is configured",
        )
        .into_response();
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| lossy(v.as_bytes()));
    let key = presented.as_deref().and_then(bearer_token);
    // Both compared, whatever the first gives: the timing does not tell which key matched.
    let matches = |expected: Option<&str>| {
        key.zip(expected)
            .is_some_and(|(k, e)| keys_match(k.as_bytes(), e.as_bytes()))
    };
    let admin = matches(state.admin_key.as_deref());
    let reader = matches(state.reader_key.as_deref());
    if admin | reader {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

/// `POST /v1/events`: `Authorization: Bearer <ingest key>`; refuses early (before reading the
/// body) when ingestion is off or the pipeline channel is full.
pub(super) async fn require_ingest(
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
