//! Health and metrics: the [`Readiness`] flags the app sets as it loads, `GET /healthz`,
//! `GET /readyz` and the Prometheus text at `GET /metrics`.
//!
//! Data flow: beside the pipeline: orchestrators and Prometheus → **api health**; `app`
//! marks readiness as the denylist, GeoIP and the model load.
//!
//! Invariants: `/healthz` is 200 while the server serves; `/readyz` is 200 only when every
//! required flag is set, else 503 naming what is missing; neither waits on anything.
//!
//! What it does NOT do: probe dependencies itself (flags are set by their owners) or record
//! metrics (`crate::metrics` does; this only renders them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;

/// Named readiness flags that the app sets as it loads; `/readyz` is 200 only when all are set.
#[derive(Debug)]
pub struct Readiness {
    flags: Vec<(&'static str, AtomicBool)>,
}

impl Readiness {
    /// The journal (or denylist topic) has been replayed.
    pub const DENYLIST: &'static str = "denylist";
    /// The GeoIP databases are loaded.
    pub const GEOIP: &'static str = "geoip";
    /// The scoring model is loaded.
    pub const MODEL: &'static str = "model";
    /// The denylist journal accepts writes (cleared while it cannot be written; see
    /// `Denylist::on_writable_change`).
    pub const JOURNAL: &'static str = "journal";

    /// Readiness that waits for each of `required` (an API-only replica needs only
    /// [`DENYLIST`](Self::DENYLIST)).
    pub fn new(required: &[&'static str]) -> Self {
        Readiness {
            flags: required
                .iter()
                .map(|name| (*name, AtomicBool::new(false)))
                .collect(),
        }
    }

    /// Set or clear a flag. Returns false for a name that is not required.
    pub fn set(&self, name: &str, ready: bool) -> bool {
        match self.flags.iter().find(|(n, _)| *n == name) {
            Some((_, flag)) => {
                flag.store(ready, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Mark one thing loaded. Returns false for a name that is not required.
    pub fn mark_ready(&self, name: &str) -> bool {
        self.set(name, true)
    }

    /// The flags not yet set, in the order they were declared.
    pub fn missing(&self) -> Vec<&'static str> {
        self.flags
            .iter()
            .filter(|(_, flag)| !flag.load(Ordering::Acquire))
            .map(|(name, _)| *name)
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

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
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
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when every readiness flag is set, else 503 naming what is missing.
pub(super) async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    let missing = state.readiness.missing();
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"ready": missing.is_empty(), "missing": missing});
    (status, axum::Json(body)).into_response()
}
