//! The connection cap and the check's own budget, against `tokenwatch run` as a process
//! started under a low open-file limit (`ulimit -n` in `bash -c`).
//!
//! - 600 idle connections with the limit at 256 and `api.max_connections = 64`: idle
//!   connections are closed to make room (oldest first) and `GET /v1/check` keeps answering.
//! - Hundreds of slow admin requests (bodies that never finish): at most
//!   `api.max_concurrent_requests` hold the admin budget, the rest are shed with 503 and
//!   `Retry-After`, and `GET /v1/check` keeps answering.
//!
//! Before the cap the first scenario stalled the check for up to 30 s (accept failing with
//! `EMFILE` until the idle connections timed out), and the second until the admin requests
//! timed out. Every connection goes to 127.0.0.1; every wait is bounded.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound on every answer the tests wait for (a functional bound, not a latency claim).
const BOUND: Duration = Duration::from_secs(5);

/// `tokenwatch run` under `ulimits` (bash `ulimit` commands).
fn start_under(f: &Fixture, ulimits: &str) -> Daemon {
    let wrap = ["bash", "-c", &format!("{ulimits} && exec \"$0\" \"$@\"")].map(String::from);
    Daemon::start_wrapped(f, &wrap)
}

fn fixture(api: &str) -> Fixture {
    Fixture::new(&format!(
        "[denylist]\njournal = \"deny.journal\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n{api}\n"
    ))
}

/// A client that opens a new connection for every request, each answered within [`BOUND`].
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(BOUND)
        .build()
        .unwrap()
}

/// `GET /v1/check` with a bearer token answers a decision (200 here) within [`BOUND`].
async fn check_answers(client: &reqwest::Client, d: &Daemon, token: &str, round: usize) {
    let response = client
        .get(d.url("/v1/check"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("check {round}: no answer within {BOUND:?}: {e}"));
    assert_eq!(response.status(), 200, "check {round}");
}

/// The value of a series that must be there.
fn series(text: &str, name: &str) -> f64 {
    metric(text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// The server has closed `stream` (EOF or reset) within [`BOUND`].
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 512];
    let drain = async {
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
async fn six_hundred_idle_connections_do_not_starve_the_check() {
    let f = fixture("max_connections = 64\nmax_concurrent_requests = 8\n");
    let daemon = start_under(&f, "ulimit -n 256");
    let client = client();
    wait_ready(&client, &daemon).await;
    let token = f.jwt("alice", now_secs());

    let mut idle = Vec::with_capacity(600);
    for _ in 0..600 {
        idle.push(TcpStream::connect(&daemon.addr).await.expect("connect"));
    }
    for round in 0..20 {
        check_answers(&client, &daemon, &token, round).await;
    }
    assert!(
        closed_by_server(&mut idle[0]).await,
        "the connection idle the longest was closed to make room"
    );

    let text = metrics_text(&client, &daemon).await;
    assert_eq!(series(&text, "tokenwatch_api_connections_max"), 64.0);
    // The connection closed to make room for this very request may not be reaped yet.
    assert!(
        series(&text, "tokenwatch_api_connections_open") <= 65.0,
        "{text}"
    );
    let made_room = series(
        &text,
        "tokenwatch_api_connections_shed_total{action=\"close_idle\"}",
    );
    assert!(
        made_room >= 600.0 - 64.0,
        "closed to make room: {made_room}"
    );
    let refused = series(
        &text,
        "tokenwatch_api_connections_shed_total{action=\"refuse\"}",
    );
    assert_eq!(refused, 0.0, "there was always an idle connection to close");
    assert!(
        !daemon.printed("lowered to"),
        "64 fits under 256 open files"
    );
}

/// A `POST /v1/revoke` whose declared body is [`SLOW_BODY`] bytes; only `PARTIAL` are sent.
const SLOW_BODY: usize = 1000;
const PARTIAL: usize = 10;

fn slow_revocation(i: usize) -> (String, Vec<u8>) {
    let key = format!("fp:{i:032x}");
    let mut body = format!("{{\"key\":\"{key}\"}}").into_bytes();
    body.resize(SLOW_BODY, b' ');
    let head = format!(
        "POST /v1/revoke HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {ADMIN_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {SLOW_BODY}\r\n\r\n"
    );
    (head, body)
}

/// What became of a slow admin request.
#[derive(Debug, PartialEq)]
enum Fate {
    /// 503 with `Retry-After` (load-shed).
    Shed,
    /// Closed without an answer (an idle connection closed to make room).
    Closed,
    /// Any other answer (the first line).
    Other(String),
}

/// Read until a response head or the end of the connection.
async fn fate(stream: &mut TcpStream) -> Fate {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    if text.is_empty() {
        Fate::Closed
    } else if text.starts_with("http/1.1 503") && text.contains("\r\nretry-after: 1\r\n") {
        Fate::Shed
    } else {
        Fate::Other(text.lines().next().unwrap_or("").to_owned())
    }
}

#[tokio::test]
async fn slow_admin_requests_are_shed_and_do_not_starve_the_check() {
    // Soft limit 128, hard 256: the daemon raises the soft limit to 256 and lowers the cap
    // of 1000 to 256 - 64 = 192 (64 had it kept the soft limit).
    let f =
        fixture("max_connections = 1000\nmax_concurrent_requests = 8\nrequest_timeout = \"60s\"\n");
    let daemon = start_under(&f, "ulimit -Sn 128 && ulimit -Hn 256");
    let client = client();
    wait_ready(&client, &daemon).await;
    assert!(
        daemon.printed("api.max_connections 1000 lowered to 192"),
        "a WARN names both numbers: {}",
        daemon.log()
    );
    let token = f.jwt("bob", now_secs());

    const SLOW: usize = 300;
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let (head, body) = slow_revocation(i);
        let mut stream = TcpStream::connect(&daemon.addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&body[..PARTIAL]).await.expect("body");
        slow.push(stream);
    }
    for round in 0..20 {
        check_answers(&client, &daemon, &token, round).await;
    }
    let post_check = client
        .post(daemon.url("/v1/check"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .expect("POST /v1/check has its own budget");
    assert_eq!(post_check.status(), 200);
    let metrics = client.get(daemon.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 503, "metrics share the admin budget");
    assert_eq!(metrics.headers()["retry-after"], "1");

    // Every slow request but those holding the budget is answered (shed) or closed; the ones
    // still waiting then get the rest of their bodies and are served.
    let mut waiting = Vec::new();
    let mut shed = 0;
    for (i, (stream, fate)) in fates(slow).await.into_iter().enumerate() {
        match fate {
            None => waiting.push((i, stream)),
            Some(Fate::Shed) => shed += 1,
            Some(Fate::Closed) => {}
            Some(Fate::Other(line)) => panic!("slow request {i}: {line}"),
        }
    }
    assert_eq!(waiting.len(), 8, "exactly the budget holds requests");
    assert!(
        shed >= SLOW - 8 - 192,
        "shed with 503 + Retry-After: {shed}"
    );
    for (i, mut stream) in waiting {
        let (_, body) = slow_revocation(i);
        stream
            .write_all(&body[PARTIAL..])
            .await
            .expect("rest of body");
        let mut head = [0u8; 12];
        tokio::time::timeout(BOUND, stream.read_exact(&mut head))
            .await
            .expect("answered once the body is in")
            .expect("read");
        assert_eq!(&head, b"HTTP/1.1 200", "request {i}");
    }
    let text = metrics_text(&client, &daemon).await;
    assert_eq!(series(&text, "tokenwatch_api_connections_max"), 192.0);
    let shed_503 = series(
        &text,
        "tokenwatch_api_requests_total{route=\"/v1/revoke\",status=\"503\"}",
    );
    assert_eq!(shed_503, shed as f64);
}

/// Wait for every stream's fate at once, each within [`BOUND`]: `None` for those that have
/// none by then (they hold the budget). The streams are handed back in order.
async fn fates(streams: Vec<TcpStream>) -> Vec<(TcpStream, Option<Fate>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        set.spawn(async move {
            let fate = tokio::time::timeout(BOUND, fate(&mut stream)).await.ok();
            (i, stream, fate)
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = set.join_next().await {
        done.push(joined.unwrap());
    }
    done.sort_by_key(|(i, _, _)| *i);
    done.into_iter().map(|(_, s, f)| (s, f)).collect()
}
