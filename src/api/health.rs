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

/// One thing `/readyz` can wait for; its name is what `/readyz` lists as missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyFlag {
    /// The journal has been replayed, or (distributed mode) the denylist topic read to its end.
    Denylist,
    /// The GeoIP databases are loaded.
    Geoip,
    /// The scoring model is loaded.
    Model,
    /// The denylist journal accepts writes.
    Journal,
    /// Distributed mode: a Kafka broker is reachable (the denylist topic can be read and
    /// written).
    Kafka,
}

impl ReadyFlag {
    /// The name `/readyz` reports.
    pub fn name(self) -> &'static str {
        match self {
            ReadyFlag::Denylist => "denylist",
            ReadyFlag::Geoip => "geoip",
            ReadyFlag::Model => "model",
            ReadyFlag::Journal => "journal",
            ReadyFlag::Kafka => "kafka",
        }
    }
}

/// Readiness flags that the app sets as it loads; `/readyz` is 200 only when all are set.
#[derive(Debug)]
pub struct Readiness {
    flags: Vec<(ReadyFlag, AtomicBool)>,
}

impl Readiness {
    /// Readiness that waits for each of `required`.
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
        Readiness::new(&[ReadyFlag::Denylist, ReadyFlag::Geoip, ReadyFlag::Model])
    }
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let entries = i64::try_from(state.denylist.len()).unwrap_or(i64::MAX);
    state.metrics.denylist_entries.set(entries);
    state
        .metrics
        .ready
        .set(i64::from(state.readiness.is_ready()));
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
