//! Unit tests of the HTTP server: the connection cap and its slots, refusing and closing at
//! the cap, the header read timeout, graceful shutdown and accept errors.

use super::*;

#[test]
fn the_cap_fits_under_the_open_file_limit() {
    // (configured, open-file limit, reserved, want)
    let cases = [
        (4096, 1_048_576, 64, 4096),
        (4096, 1024, 64, 960),
        (100, 256, 64, 100),
        (192, 256, 64, 192),
        (193, 256, 64, 192),
        (100, 64, 64, 1),
        (100, 10, 64, 1),
        (100, u64::MAX, 64, 100),
    ];
    for (configured, limit, reserved, want) in cases {
        assert_eq!(
            connection_cap(configured, limit, reserved),
            want,
            "{configured} under {limit} - {reserved}"
        );
    }
}

fn slot_idle_at(epoch: Instant, nanos: Option<u64>) -> Arc<Slot> {
    let slot = Arc::new(Slot::new(epoch));
    slot.idle_since
        .store(nanos.unwrap_or(SERVING), Ordering::Relaxed);
    slot
}

#[test]
fn at_the_cap_the_longest_idle_is_closed_else_the_new_one_is_refused() {
    let epoch = Instant::now();
    // Name, connections (key, idle since or serving), cap, admission, key told to close.
    type Case<'a> = (
        &'a str,
        Vec<(u32, Option<u64>)>,
        usize,
        Admission,
        Option<u32>,
    );
    let cases: [Case<'_>; 5] = [
        (
            "room",
            vec![(1, Some(5)), (2, None)],
            3,
            Admission::Room,
            None,
        ),
        (
            "the one idle the longest goes",
            vec![(1, Some(30)), (2, Some(10)), (3, None), (4, Some(20))],
            4,
            Admission::MadeRoom,
            Some(2),
        ),
        (
            "a serving one is never chosen",
            vec![(1, None), (2, Some(99))],
            2,
            Admission::MadeRoom,
            Some(2),
        ),
        (
            "all serving: refused",
            vec![(1, None), (2, None)],
            2,
            Admission::Refused,
            None,
        ),
        (
            "cap of one",
            vec![(7, Some(1))],
            1,
            Admission::MadeRoom,
            Some(7),
        ),
    ];
    for (name, connections, cap, want, closed) in cases {
        let mut slots = Slots::new(cap);
        let mut all = Vec::new();
        for (key, since) in connections {
            let slot = slot_idle_at(epoch, since);
            slots.insert(key, slot.clone());
            all.push((key, slot));
        }
        let before = slots.live.len();
        assert_eq!(slots.admit(), want, "{name}");
        for (key, slot) in &all {
            let told = slot.close.notified();
            let mut told = pin!(told);
            // A stored permit makes the first poll ready.
            let was_told = told.as_mut().enable();
            assert_eq!(was_told, Some(*key) == closed, "{name}: key {key}");
            assert_eq!(slots.live.contains_key(key), Some(*key) != closed, "{name}");
        }
        let after = before - usize::from(closed.is_some());
        assert_eq!(
            slots.live.len(),
            after,
            "{name}: one told to close stops counting"
        );
    }
}

#[test]
fn a_connection_is_serving_from_its_request_to_the_end_of_its_response() {
    let slot = Arc::new(Slot::new(Instant::now()));
    assert!(!slot.is_serving(), "idle from accept");
    let serving = Serving::start(&slot);
    assert!(slot.is_serving());
    let body = MarkedBody {
        body: Body::from("ok"),
        _serving: serving,
    };
    assert!(slot.is_serving(), "until the body is done");
    drop(body);
    assert!(!slot.is_serving());
}

/// A server on `127.0.0.1:0` whose `/slow` answers once `gate` has a permit (after
/// saying so on `entered`) and whose `/fast` answers at once.
struct TestServer {
    addr: std::net::SocketAddr,
    gate: Arc<tokio::sync::Semaphore>,
    entered: tokio::sync::mpsc::UnboundedReceiver<()>,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Every wait in these tests is bounded by this (a functional bound, not a timing claim).
const BOUND: Duration = Duration::from_secs(10);

async fn start(max_connections: usize, header_read_timeout: Duration) -> TestServer {
    use axum::routing::get;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel();
    let slow_gate = gate.clone();
    let router = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(move || {
                let (gate, entered) = (slow_gate.clone(), entered_tx.clone());
                async move {
                    let _ = entered.send(());
                    let _permit = gate.acquire().await;
                    "slow"
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics = Arc::new(Metrics::new());
    let options = ServeOptions {
        max_connections,
        header_read_timeout,
        metrics: Some(metrics.clone()),
        ..ServeOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(
        listener,
        router,
        async move {
            let _ = stopped.await;
        },
        options,
    ));
    TestServer {
        addr,
        gate,
        entered,
        metrics,
        stop: Some(stop),
        task,
    }
}

impl TestServer {
    async fn connect(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect")
    }

    /// Send `GET path` and wait until the handler has it (for `/slow`).
    async fn send(&mut self, stream: &mut tokio::net::TcpStream, path: &str) {
        use tokio::io::AsyncWriteExt;
        let request = format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        if path == "/slow" {
            tokio::time::timeout(BOUND, self.entered.recv())
                .await
                .expect("the slow handler is reached")
                .expect("entered");
        }
    }

    fn shed(&self, action: &str) -> u64 {
        self.metrics
            .api_connections_shed
            .with_label_values(&[action])
            .get()
    }
}

/// Read one response (small, with `content-length`) and return its body.
async fn response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a response");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                if body.len() >= length {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body.to_owned();
                }
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("a response in time")
}

/// The server closed `stream` (EOF or reset), whatever it sent before.
async fn closed(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let drain = async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(BOUND, drain).await.is_ok()
}

#[tokio::test]
async fn at_the_cap_the_connection_idle_the_longest_makes_room() {
    let mut server = start(2, Duration::from_secs(60)).await;
    let mut never_asked = server.connect().await;
    let mut asked_once = server.connect().await;
    server.send(&mut asked_once, "/fast").await;
    assert_eq!(response(&mut asked_once).await, "fast");

    let mut newcomer = server.connect().await;
    server.send(&mut newcomer, "/fast").await;
    assert_eq!(response(&mut newcomer).await, "fast", "served at the cap");
    assert!(closed(&mut never_asked).await, "idle the longest: closed");
    server.send(&mut asked_once, "/fast").await;
    assert_eq!(response(&mut asked_once).await, "fast", "kept");
    assert_eq!(server.shed("close_idle"), 1);
    assert_eq!(server.shed("refuse"), 0);
    assert_eq!(server.metrics.api_connections_max.get(), 2);
}

#[tokio::test]
async fn when_every_connection_is_serving_a_new_one_is_refused_at_once() {
    let mut server = start(2, Duration::from_secs(60)).await;
    let mut first = server.connect().await;
    server.send(&mut first, "/slow").await;
    let mut second = server.connect().await;
    server.send(&mut second, "/slow").await;

    let mut refused = server.connect().await;
    assert!(closed(&mut refused).await, "closed, not left waiting");
    assert_eq!(server.shed("refuse"), 1);

    server.gate.add_permits(2);
    assert_eq!(
        response(&mut first).await,
        "slow",
        "serving ones are never cut"
    );
    assert_eq!(response(&mut second).await, "slow");
    let mut next = server.connect().await;
    server.send(&mut next, "/fast").await;
    assert_eq!(
        response(&mut next).await,
        "fast",
        "idle again: room is made"
    );
    assert_eq!(server.shed("close_idle"), 1);
}

#[tokio::test]
async fn idle_connections_close_after_the_header_read_timeout() {
    let mut server = start(8, Duration::from_millis(200)).await;
    let mut silent = server.connect().await;
    assert!(closed(&mut silent).await, "a connection that never asks");
    let mut kept_alive = server.connect().await;
    server.send(&mut kept_alive, "/fast").await;
    assert_eq!(response(&mut kept_alive).await, "fast");
    assert!(closed(&mut kept_alive).await, "idle after a response");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_finishes_requests() {
    let mut server = start(8, Duration::from_secs(60)).await;
    let mut idle = server.connect().await;
    let mut busy = server.connect().await;
    server.send(&mut busy, "/slow").await;
    let _ = server.stop.take().expect("once").send(());
    assert!(closed(&mut idle).await);
    server.gate.add_permits(1);
    assert_eq!(response(&mut busy).await, "slow");
    assert!(closed(&mut busy).await, "closed after its request");
    tokio::time::timeout(BOUND, server.task)
        .await
        .expect("serve returns")
        .expect("task")
        .expect("serve");
    assert_eq!(server.metrics.api_connections_open.get(), 0);
}

#[test]
fn out_of_files_is_told_apart_from_other_accept_errors() {
    let cases = [
        (std::io::Error::from_raw_os_error(libc::EMFILE), true),
        (std::io::Error::from_raw_os_error(libc::ENFILE), true),
        (std::io::Error::from_raw_os_error(libc::ENOBUFS), false),
        (std::io::Error::other("x"), false),
    ];
    for (error, want) in cases {
        assert_eq!(is_out_of_files(&error), want, "{error}");
    }
}
