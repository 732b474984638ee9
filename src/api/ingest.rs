//! `POST /v1/events` (ingest key): NDJSON access-log records handed to the pipeline.
//!
//! Data flow: log shippers → **api ingest** → the pipeline's bounded channel → `source` →
//! parse → identify → enrich → track → features → score → decide → publish.
//!
//! Invariants: never waits for the pipeline (a full channel refuses the whole body with 503
//! and `Retry-After`, to be resent); lines are cut at `input.max_line_bytes` and flagged
//! `truncated` so parse rejects them as `too_large`; CRLF is tolerated and blank lines skipped.
//!
//! What it does NOT do: parse records (the pipeline does, with every other source's lines) or
//! authenticate (`auth::require_ingest` runs first).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::event::{RawLine, SourceKind};

use super::ApiState;
use super::errors::{ApiError, busy};

/// Split an NDJSON body into lines (CRLF tolerated, blank lines skipped), each cut at
/// `max_line` bytes and flagged `truncated` (parse rejects those as `too_large`).
pub(super) fn split_lines(body: &[u8], max_line: usize) -> Vec<RawLine> {
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

/// `POST /v1/events` (ingest key): NDJSON access-log records for the pipeline. 202
/// `{"accepted": n}`; 413 over `api.max_ingest_bytes`; 503 with `Retry-After` when the
/// pipeline is behind (the whole body is refused — resend it); 503 when ingestion is not
/// enabled. Never waits for the pipeline.
pub(super) async fn ingest(
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

pub(super) fn ingest_disabled() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ingest_disabled",
        "ingestion over HTTP is not enabled on this instance",
    )
}
