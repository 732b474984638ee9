//! The HTTP/1.1 server under the API's router: accepts connections and runs hyper on each.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

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
    /// How long shutdown waits for in-flight requests before it returns anyway.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_headers: HYPER_DEFAULT_MAX_HEADERS,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

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
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        // Latency matters more than packet count for one small answer per request.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_s = options.drain_timeout.as_secs(),
            "API shutdown: some requests did not finish in time"
        );
    }
    Ok(())
}

/// Per-connection accept errors (the peer went away) are skipped; others — usually out of file
/// descriptors — are logged and retried after a pause rather than spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
