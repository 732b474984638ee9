//! Prometheus metrics (DESIGN §8) on an owned registry, prefix `tokenwatch_`.
//!
//! Every stage reports through [`Metrics`]; the API renders it at `GET /metrics`. Labels are
//! small enums (reason codes, outcomes, sources) — never an IP, token, user or path. Label
//! values known up front are pre-registered so a dashboard sees zeros, not gaps.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::event::{Action, Mode, Reason};

/// All of tokenwatch's metrics.
pub struct Metrics {
    registry: Registry,
    /// `events_total{source,outcome}`; outcome ∈ processed, anonymous, parse_error, rejected.
    pub events: IntCounterVec,
    /// `parse_errors_total{reason}`.
    pub parse_errors: IntCounterVec,
    /// `token_verifications_total{result}`; result = `valid`, `opaque`, `upstream` or a reject code.
    pub token_verifications: IntCounterVec,
    /// `detections_total{reason,action,mode}`.
    pub detections: IntCounterVec,
    /// `revocations_total{origin}`.
    pub revocations: IntCounterVec,
    /// `check_requests_total{result}`; result ∈ allow, revoked, step_up, no_token, oversized.
    pub check_requests: IntCounterVec,
    /// `dead_letters_total`: records sent to the dead-letter topic (DESIGN §1). Only Kafka
    /// mode has one (issue 16); in embedded mode, the only mode of this release, no record is
    /// ever sent there and the counter stays 0 — bad records are counted by
    /// `parse_errors_total{reason}` and `events_total{outcome}` instead. Registered now so
    /// dashboards and alerts written against DESIGN §8 find it.
    pub dead_letters: IntCounter,
    /// `denylist_entries`.
    pub denylist_entries: IntGauge,
    /// `sessions_active`.
    pub sessions_active: IntGauge,
    /// `geoip_build_timestamp_seconds`.
    pub geoip_build_timestamp: Gauge,
    /// `model_info{version}`.
    pub model_info: IntGaugeVec,
    /// `check_duration_seconds`.
    pub check_duration: Histogram,
    /// `event_lag_seconds`: event time → processed (wall clock).
    pub event_lag: Histogram,
    /// `kafka_consumer_lag{partition}`: records between the consumer's position and the end of
    /// each assigned access-log partition (Kafka mode; one series per assigned partition).
    pub kafka_consumer_lag: IntGaugeVec,
    /// `revocation_propagation_seconds`: decision → visible at this replica.
    pub revocation_propagation: Histogram,
    /// `risk_score`.
    pub risk_score: Histogram,
    /// `api_requests_total{route,status}` (route is the matched route template).
    pub api_requests: IntCounterVec,
    /// `journal_fsync_seconds`.
    pub journal_fsync: HistogramVec,
    /// `api_connections_open`: API connections open now (those told to close and still
    /// finishing their request included).
    pub api_connections_open: IntGauge,
    /// `api_connections_max`: the connection cap in force (`api.max_connections`, lowered to
    /// fit the open-file limit).
    pub api_connections_max: IntGauge,
    /// `api_connections_shed_total{action}`: connections dealt with at the cap; action ∈
    /// `close_idle` (an idle connection closed to make room), `refuse` (none idle: the new
    /// connection closed at once).
    pub api_connections_shed: IntCounterVec,
    /// `journal_writable`: 1 while denylist changes are made durable (or no journal is
    /// configured), 0 while the journal cannot be written (changes refused, `/readyz` failing).
    pub journal_writable: IntGauge,
    /// `journal_write_failures_total{op}`: changes (`revoke`, `unrevoke`) that could not be
    /// made durable and journal rewrites (`compact`, startup and recovery included) that failed.
    pub journal_write_failures: IntCounterVec,
    /// `journal_torn_records_total`: torn final records cut from the journal at startup.
    pub journal_torn_records: IntCounter,
    /// `ready`: 1 while `/readyz` answers 200, 0 while it answers 503 (set when `/metrics` is
    /// rendered, so an alert can tell "not ready for N minutes" from "down").
    pub ready: IntGauge,
    /// `sessions_evicted_total`: sessions forgotten early because `detect.max_sessions` or
    /// `detect.max_session_bytes` was reached (memory pressure; idle expiry is not counted).
    /// Each one loses its history: a stolen token's replay then looks like a new session.
    pub sessions_evicted: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("tokenwatch"), labels)
        .expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(
        HistogramOpts::new(name, help)
            .namespace("tokenwatch")
            .buckets(buckets),
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    #[allow(clippy::expect_used)] // metric definitions are static: a failure is a programming error
    pub fn new() -> Self {
        let r = Registry::new();
        let events = counter_vec(
            &r,
            "events_total",
            "Access-log records by source and outcome.",
            &["source", "outcome"],
        );
        let parse_errors = counter_vec(
            &r,
            "parse_errors_total",
            "Rejected records by reason.",
            &["reason"],
        );
        let token_verifications = counter_vec(
            &r,
            "token_verifications_total",
            "Credential identifications by result (valid, opaque, upstream or a rejection reason).",
            &["result"],
        );
        let detections = counter_vec(
            &r,
            "detections_total",
            "Decisions by reason, action and mode.",
            &["reason", "action", "mode"],
        );
        let revocations = counter_vec(
            &r,
            "revocations_total",
            "Denylist additions by origin.",
            &["origin"],
        );
        let check_requests = counter_vec(
            &r,
            "check_requests_total",
            "Check answers by result.",
            &["result"],
        );
        let dead_letters = IntCounter::with_opts(
            Opts::new(
                "dead_letters_total",
                "Records sent to the dead-letter topic (Kafka mode only: always 0 in embedded mode).",
            )
            .namespace("tokenwatch"),
        )
        .expect("valid metric");
        r.register(Box::new(dead_letters.clone()))
            .expect("unique metric");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help).namespace("tokenwatch"))
                .expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let denylist_entries = gauge("denylist_entries", "Live denylist entries.");
        let sessions_active = gauge("sessions_active", "Sessions held in detector state.");
        let geoip_build_timestamp = Gauge::with_opts(
            Opts::new(
                "geoip_build_timestamp_seconds",
                "Build time of the loaded GeoIP city database.",
            )
            .namespace("tokenwatch"),
        )
        .expect("valid metric");
        r.register(Box::new(geoip_build_timestamp.clone()))
            .expect("unique metric");
        let model_info = IntGaugeVec::new(
            Opts::new(
                "model_info",
                "The loaded scoring model (1 for the active version).",
            )
            .namespace("tokenwatch"),
            &["version"],
        )
        .expect("valid metric");
        r.register(Box::new(model_info.clone()))
            .expect("unique metric");
        let kafka_consumer_lag = IntGaugeVec::new(
            Opts::new(
                "kafka_consumer_lag",
                "Records between the consumer's position and the end of each assigned \
                 access-log partition (Kafka mode only).",
            )
            .namespace("tokenwatch"),
            &["partition"],
        )
        .expect("valid metric");
        r.register(Box::new(kafka_consumer_lag.clone()))
            .expect("unique metric");
        let latency_buckets = vec![
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 1.0,
        ];
        let check_duration = histogram(
            &r,
            "check_duration_seconds",
            "Check handler latency.",
            latency_buckets.clone(),
        );
        let event_lag = histogram(
            &r,
            "event_lag_seconds",
            "Event time to processed, wall clock.",
            vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0],
        );
        let revocation_propagation = histogram(
            &r,
            "revocation_propagation_seconds",
            "Decision to visible at this replica.",
            latency_buckets,
        );
        let risk_score = histogram(
            &r,
            "risk_score",
            "Risk scores of processed events.",
            vec![
                0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
            ],
        );
        let api_requests = counter_vec(
            &r,
            "api_requests_total",
            "API requests by route and status.",
            &["route", "status"],
        );
        let journal_fsync = HistogramVec::new(
            HistogramOpts::new(
                "journal_fsync_seconds",
                "Denylist journal append + fsync latency.",
            )
            .namespace("tokenwatch")
            .buckets(vec![0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5]),
            &["op"],
        )
        .expect("valid metric");
        r.register(Box::new(journal_fsync.clone()))
            .expect("unique metric");
        let api_connections_open = gauge(
            "api_connections_open",
            "Open API connections, those finishing a request before they close included.",
        );
        let api_connections_max = gauge(
            "api_connections_max",
            "The API connection cap in force (api.max_connections fitted to the open-file limit).",
        );
        let api_connections_shed = counter_vec(
            &r,
            "api_connections_shed_total",
            "API connections dealt with at the cap: close_idle = an idle one closed to make room, refuse = none idle, the new one closed at once.",
            &["action"],
        );
        let journal_writable = gauge(
            "journal_writable",
            "1 while denylist changes are made durable in the journal (or none is configured), \
             0 while it cannot be written.",
        );
        let journal_write_failures = counter_vec(
            &r,
            "journal_write_failures_total",
            "Denylist changes that could not be made durable, and failed journal rewrites, by op.",
            &["op"],
        );
        let journal_torn_records = IntCounter::with_opts(
            Opts::new(
                "journal_torn_records_total",
                "Torn final records (writes cut short by a crash) cut from the journal at startup.",
            )
            .namespace("tokenwatch"),
        )
        .expect("valid metric");
        r.register(Box::new(journal_torn_records.clone()))
            .expect("unique metric");
        let ready = gauge(
            "ready",
            "1 while /readyz answers 200 (everything loaded, journal writable), else 0.",
        );
        let sessions_evicted = IntCounter::with_opts(
            Opts::new(
                "sessions_evicted_total",
                "Sessions forgotten early because detect.max_sessions or \
                 detect.max_session_bytes was reached (idle expiry not counted).",
            )
            .namespace("tokenwatch"),
        )
        .expect("valid metric");
        r.register(Box::new(sessions_evicted.clone()))
            .expect("unique metric");

        for reason in Reason::ALL {
            for action in Action::ALL {
                for mode in [Mode::Enforce, Mode::Shadow] {
                    detections.with_label_values(&[reason.code(), action.label(), mode.label()]);
                }
            }
        }
        for origin in ["detector", "admin"] {
            revocations.with_label_values(&[origin]);
        }
        for result in ["allow", "revoked", "step_up", "no_token", "oversized"] {
            check_requests.with_label_values(&[result]);
        }
        for action in ["close_idle", "refuse"] {
            api_connections_shed.with_label_values(&[action]);
        }
        for op in ["revoke", "unrevoke", "compact"] {
            journal_write_failures.with_label_values(&[op]);
        }

        Metrics {
            registry: r,
            events,
            parse_errors,
            token_verifications,
            detections,
            revocations,
            check_requests,
            dead_letters,
            denylist_entries,
            sessions_active,
            geoip_build_timestamp,
            model_info,
            kafka_consumer_lag,
            check_duration,
            event_lag,
            revocation_propagation,
            risk_score,
            api_requests,
            journal_fsync,
            api_connections_open,
            api_connections_max,
            api_connections_shed,
            journal_writable,
            journal_write_failures,
            journal_torn_records,
            ready,
            sessions_evicted,
        }
    }

    /// Register a metric owned by a module outside this list (the audit writer's counters),
    /// so `render` includes it. Fails on a name already registered.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding our own registered families cannot fail except on I/O into a Vec.
        let _ = encoder.encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_names_with_preregistered_labels() {
        let m = Metrics::new();
        m.parse_errors.with_label_values(&["invalid_json"]).inc();
        let text = m.render();
        assert!(
            text.contains("tokenwatch_parse_errors_total{reason=\"invalid_json\"} 1"),
            "{text}"
        );
        assert!(text.contains("tokenwatch_detections_total{action=\"revoke\",mode=\"shadow\",reason=\"impossible_travel\"} 0"));
        assert!(text.contains("tokenwatch_check_duration_seconds_bucket"));
        assert!(text.contains("tokenwatch_detections_total{action=\"step_up\",mode=\"enforce\",reason=\"user_agent_change\"} 0"));
        assert!(text.contains("tokenwatch_check_requests_total{result=\"step_up\"} 0"));
        assert!(text.contains("tokenwatch_api_connections_shed_total{action=\"refuse\"} 0"));
        assert!(text.contains("tokenwatch_api_connections_open 0"));
    }
}
