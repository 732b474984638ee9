//! The HTTP/1.1 server under the API's [`router`](fn@super::router): accepts connections, keeps
//! them under a cap, and runs hyper on each (DESIGN §7: "connections are capped").
//!
//! Where it sits: the bottom of `api`. `app` binds the listener, fits `api.max_connections`
//! under the open-file limit with [`connection_cap`] and runs [`serve_with`]; tests run
//! [`serve`] on `127.0.0.1:0`. It knows nothing of routes: the router's budgets
//! (`api.max_concurrent_requests`) keep every route but `GET /v1/check`, `/healthz` and
//! `/readyz` from holding more than two budgets' worth of connections busy, so the rest of
//! the cap is always there for the check.
//!
//! Invariants:
//! - A connection is *idle* from its accept, and again from the end of each response, until
//!   its next request reaches the router; in between it is *serving*. Marking it costs one
//!   relaxed atomic store at each edge, no lock.
//! - At most [`ServeOptions::max_connections`] connections count against the cap. A new
//!   connection at the cap closes the connection idle the longest to make room (as nginx
//!   reuses keep-alive connections when it runs out of worker connections); when none is idle
//!   it is accepted and closed at once (refused). Either way it is dealt with as it arrives,
//!   never left waiting in the backlog.
//! - A connection told to close — to make room, or at shutdown — closes now when it is idle
//!   (a request whose headers are still arriving is cut: it reached no handler), and finishes
//!   its request first when it is serving (hyper's graceful shutdown: keep-alive off). It
//!   stops counting against the cap when it is told; its socket is counted in
//!   `api_connections_open` until it is closed.
//! - Idle connections close after [`ServeOptions::header_read_timeout`]: hyper starts that
//!   timer whenever a connection waits for a request, the first one included.
//! - Only the accept loop reads or changes the set of connections; each connection task
//!   shares only its own [`Slot`] with it.
//!
//! It does NOT: limit requests per route (the router's budgets do), limit connections per
//! client address, queue connections, speak HTTP/2 or TLS, or raise the open-file limit
//! (`app` does, at start). Closing an idle keep-alive connection races a request the client
//! may be sending on it at that moment, as in every HTTP/1.1 server; closing the one idle the
//! longest makes that the least likely.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::Hash;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounter, IntGauge};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{self, JoinSet};
use tower::ServiceExt;

use crate::config::ApiConfig;
use crate::metrics::Metrics;

/// Connection-level limits for [`serve_with`] (hyper, HTTP/1.1).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send a request's headers (slow-loris guard). hyper starts this
    /// timer whenever the connection waits for a request, so it is also the idle keep-alive
    /// timeout: keep the middleware's upstream keep-alive idle time below it (nginx
    /// `keepalive_timeout` in the `upstream` block, Envoy `idle_timeout`) so it never sends a
    /// check on a connection we are closing.
    pub header_read_timeout: Duration,
    /// Largest request line + headers, bytes: 431 and the connection closed above it. Keep it
    /// above `tokens.max_token_bytes` plus the other headers a proxy forwards.
    pub max_header_bytes: usize,
    /// Most header fields per request (431 above). hyper's default is 100; any other value
    /// makes hyper allocate the header array per request (about 5% slower).
    pub max_headers: usize,
    /// How long shutdown waits for in-flight requests before it returns anyway (the
    /// connections still open are then dropped).
    pub drain_timeout: Duration,
    /// Most connections counted against the cap (`api.max_connections` fitted to the
    /// open-file limit by [`connection_cap`]). At least 1.
    pub max_connections: usize,
    /// Where the `api_connections_*` metrics go; `None` reports to a registry nobody reads.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_headers: HYPER_DEFAULT_MAX_HEADERS,
            drain_timeout: Duration::from_secs(10),
            max_connections: ApiConfig::default().max_connections,
            metrics: None,
        }
    }
}

const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// The connection cap that fits the open-file limit: `configured`, lowered to
/// `open_file_limit - reserved` (at least 1) when the limit leaves less room than that.
/// `reserved` is what the rest of the process may hold open (journal, GeoIP, logs, stdio).
pub fn connection_cap(configured: usize, open_file_limit: u64, reserved: u64) -> usize {
    let room = usize::try_from(open_file_limit.saturating_sub(reserved)).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

/// Serve `router` on `listener` until `shutdown` completes, then stop accepting, let in-flight
/// requests finish (idle keep-alive connections are closed) and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit connection limits.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_header_size(options.max_header_bytes);
    if options.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        builder.max_headers(options.max_headers);
    }
    let metrics = ConnectionMetrics::new(&options.metrics.unwrap_or_default());
    let max_connections = options.max_connections.max(1);
    metrics
        .max
        .set(i64::try_from(max_connections).unwrap_or(i64::MAX));
    let epoch = Instant::now();
    let mut slots = Slots::new(max_connections);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            // Ended connections first, so their slots are free before the next admission.
            biased;
            Some(ended) = tasks.join_next_with_id() => {
                let id = match ended {
                    Ok((id, ())) => id,
                    Err(error) => {
                        tracing::error!(%error, "connection task failed");
                        error.id()
                    }
                };
                slots.remove(id);
                metrics.set_open(tasks.len());
                continue;
            }
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    if accept_failed(error, &mut slots).await {
                        metrics.close_idle.inc();
                    }
                    continue;
                }
            },
        };
        match slots.admit() {
            Admission::Room => {}
            Admission::MadeRoom => metrics.close_idle.inc(),
            Admission::Refused => {
                // Every connection is serving: close this one now rather than let it wait.
                metrics.refuse.inc();
                drop(stream);
                continue;
            }
        }
        // Latency matters more than packet count for one small answer per request.
        let _ = stream.set_nodelay(true);
        let slot = Arc::new(Slot::new(epoch));
        let service = marking_service(router.clone(), slot.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let task_slot = slot.clone();
        let id = tasks
            .spawn(async move {
                let mut connection = pin!(connection);
                let mut closing = false;
                loop {
                    tokio::select! {
                        ended = connection.as_mut() => {
                            if let Err(error) = ended {
                                tracing::debug!(%error, "connection ended with an error");
                            }
                            return;
                        }
                        () = task_slot.close.notified(), if !closing => {
                            if !task_slot.is_serving() {
                                return; // idle: dropping the connection closes it now
                            }
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
            })
            .id();
        slots.insert(id, slot);
        metrics.set_open(tasks.len());
    }
    drop(listener);
    slots.close_all();
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            timeout_s = options.drain_timeout.as_secs(),
            "API shutdown: some requests did not finish in time"
        );
    }
    drop(tasks);
    metrics.set_open(0);
    Ok(())
}

/// Per-connection accept errors (the peer went away) are skipped. Out of file descriptors, the
/// connection idle the longest is closed and accept retried after a moment (returns true);
/// with none idle, or on other errors, a warning and a pause rather than spinning.
async fn accept_failed(error: std::io::Error, slots: &mut Slots<task::Id>) -> bool {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return false;
    }
    if is_out_of_files(&error) && slots.close_oldest_idle() {
        tracing::debug!(%error, "accept failed; closed the connection idle the longest");
        tokio::time::sleep(Duration::from_millis(10)).await;
        return true;
    }
    tracing::warn!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
    false
}

/// `EMFILE` (this process) or `ENFILE` (the whole system).
fn is_out_of_files(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The `api_connections_*` metrics, resolved once.
struct ConnectionMetrics {
    open: IntGauge,
    max: IntGauge,
    close_idle: IntCounter,
    refuse: IntCounter,
}

impl ConnectionMetrics {
    fn new(metrics: &Metrics) -> Self {
        let shed = |action: &str| metrics.api_connections_shed.with_label_values(&[action]);
        ConnectionMetrics {
            open: metrics.api_connections_open.clone(),
            max: metrics.api_connections_max.clone(),
            close_idle: shed("close_idle"),
            refuse: shed("refuse"),
        }
    }

    fn set_open(&self, open: usize) {
        self.open.set(i64::try_from(open).unwrap_or(i64::MAX));
    }
}

/// `Slot::idle_since` while the connection is serving.
const SERVING: u64 = u64::MAX;

/// What a connection's task, its service and the accept loop share.
#[derive(Debug)]
struct Slot {
    /// When the connection last became idle, nanoseconds after `epoch`; [`SERVING`] while a
    /// request is being served.
    idle_since: AtomicU64,
    /// Told to close: to make room, or at shutdown.
    close: Notify,
    epoch: Instant,
}

impl Slot {
    /// A new connection: idle from now.
    fn new(epoch: Instant) -> Slot {
        let slot = Slot {
            idle_since: AtomicU64::new(SERVING),
            close: Notify::new(),
            epoch,
        };
        slot.mark_idle();
        slot
    }

    fn mark_serving(&self) {
        self.idle_since.store(SERVING, Ordering::Relaxed);
    }

    fn mark_idle(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(SERVING - 1);
        self.idle_since
            .store(nanos.min(SERVING - 1), Ordering::Relaxed);
    }

    fn idle_since(&self) -> Option<u64> {
        let since = self.idle_since.load(Ordering::Relaxed);
        (since != SERVING).then_some(since)
    }

    fn is_serving(&self) -> bool {
        self.idle_since().is_none()
    }
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Below the cap.
    Room,
    /// At the cap: the connection idle the longest was told to close.
    MadeRoom,
    /// At the cap and none idle: close the new one.
    Refused,
}

/// The connections that count against the cap, by key (the connection task's id). Owned by
/// the accept loop.
#[derive(Debug)]
struct Slots<K> {
    max: usize,
    live: HashMap<K, Arc<Slot>>,
}

impl<K: Copy + Eq + Hash> Slots<K> {
    fn new(max: usize) -> Self {
        Slots {
            max,
            live: HashMap::new(),
        }
    }

    /// Whether a new connection may be served, making room when needed.
    fn admit(&mut self) -> Admission {
        if self.live.len() < self.max {
            Admission::Room
        } else if self.close_oldest_idle() {
            Admission::MadeRoom
        } else {
            Admission::Refused
        }
    }

    fn insert(&mut self, key: K, slot: Arc<Slot>) {
        self.live.insert(key, slot);
    }

    /// A connection ended (a no-op for one already told to close).
    fn remove(&mut self, key: K) {
        self.live.remove(&key);
    }

    /// Tell the connection idle the longest to close; it stops counting at once. False when
    /// none is idle. Scans every connection: this runs only at the cap.
    fn close_oldest_idle(&mut self) -> bool {
        let oldest = self
            .live
            .iter()
            .filter_map(|(key, slot)| Some((slot.idle_since()?, *key)))
            .min_by_key(|(since, _)| *since);
        match oldest.and_then(|(_, key)| self.live.remove(&key)) {
            Some(slot) => {
                slot.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Shutdown: tell every connection to close.
    fn close_all(&mut self) {
        for (_, slot) in self.live.drain() {
            slot.close.notify_one();
        }
    }
}

/// The router as a hyper service that marks `slot` serving from the moment a request reaches
/// it until its response body is done.
fn marking_service(
    router: Router,
    slot: Arc<Slot>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<MarkedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<MarkedBody>, Infallible>> + Send,
> {
    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let serving = Serving::start(&slot);
        let response = router.clone().oneshot(request);
        async move {
            let response = match response.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(|body| MarkedBody {
                body,
                _serving: serving,
            }))
        }
    })
}

/// Keeps its connection marked serving while it lives.
struct Serving(Arc<Slot>);

impl Serving {
    fn start(slot: &Arc<Slot>) -> Serving {
        slot.mark_serving();
        Serving(slot.clone())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.mark_idle();
    }
}

/// A response body that keeps its connection marked serving until hyper is done with it.
struct MarkedBody {
    body: Body,
    _serving: Serving,
}

impl hyper::body::Body for MarkedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
