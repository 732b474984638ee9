//! The change feed against the real binary over real HTTP (DESIGN §7, issue 17):
//! `GET /v1/revocations?since=&limit=` pages and cursors, the Server-Sent Events stream with
//! `Last-Event-ID`, expired cursors (410), and the read-only reader key, which reads the feed
//! but is refused on every route that changes the denylist.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_KEY, Daemon, daemon_fixture, wait_ready};
use serde_json::{Value, json};

/// A reader key generated for this run (a test fixture, never a real secret).
fn reader_key() -> String {
    format!("reader-{:032x}", rand::random::<u128>())
}

fn fp_key(n: u8) -> String {
    format!("fp:{}", format!("{n:02x}").repeat(16))
}

async fn get(client: &reqwest::Client, d: &Daemon, path: &str, key: &str) -> (u16, Value) {
    let response = client
        .get(d.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn revoke(client: &reqwest::Client, d: &Daemon, key: &str, body: Value) -> u16 {
    client
        .post(d.url("/v1/revoke"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("revoke")
        .status()
        .as_u16()
}

async fn unrevoke(client: &reqwest::Client, d: &Daemon, key: &str, deny_key: &str) -> u16 {
    client
        .delete(d.url(&format!("/v1/revocations/{deny_key}")))
        .bearer_auth(key)
        .send()
        .await
        .expect("unrevoke")
        .status()
        .as_u16()
}

fn keys_of(page: &Value) -> Vec<(String, String)> {
    page["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["op"].as_str().expect("op").to_string(),
                c["key"].as_str().expect("key").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn pages_follow_cursors_and_expired_cursors_are_gone() {
    let reader = reader_key();
    let f = daemon_fixture(&format!("[feed]\nreader_key = \"{reader}\"\nretain = 4\n"));
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;

    // One entry before anyone looks: the snapshot holds it.
    let step_up = json!({"key": fp_key(1), "reason": "on-call", "ttl": "1h", "action": "step_up"});
    assert_eq!(revoke(&client, &daemon, ADMIN_KEY, step_up).await, 200);
    let (status, snapshot) = get(&client, &daemon, "/v1/revocations", &reader).await;
    assert_eq!(status, 200, "{snapshot}");
    assert_eq!(snapshot["snapshot"], true);
    assert_eq!(keys_of(&snapshot), [("add".into(), fp_key(1))]);
    let first = &snapshot["changes"][0];
    assert_eq!(first["action"], "step_up");
    assert_eq!(first["reasons"], json!(["on-call"]));
    assert!(first["expires_at"].as_str().is_some(), "{first}");
    let cursor0 = snapshot["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();

    // Nothing new yet: an empty page keeps the cursor.
    let (status, empty) = get(
        &client,
        &daemon,
        &format!("/v1/revocations?since={cursor0}"),
        &reader,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(empty["snapshot"], false);
    assert_eq!(keys_of(&empty), []);
    assert_eq!(empty["next_cursor"], cursor0.as_str());

    // add 2, add 3, remove 1: pages of 2 then 1, in order.
    for n in [2, 3] {
        let body = json!({"key": fp_key(n), "reason": format!("r{n}")});
        assert_eq!(revoke(&client, &daemon, ADMIN_KEY, body).await, 200);
    }
    assert_eq!(unrevoke(&client, &daemon, ADMIN_KEY, &fp_key(1)).await, 200);
    let (_, page1) = get(
        &client,
        &daemon,
        &format!("/v1/revocations?since={cursor0}&limit=2"),
        &reader,
    )
    .await;
    assert_eq!(
        keys_of(&page1),
        [("add".into(), fp_key(2)), ("add".into(), fp_key(3))]
    );
    assert_eq!(page1["more"], true);
    assert_eq!(page1["changes"][0]["action"], "revoke");
    assert_eq!(page1["changes"][1]["cursor"], page1["next_cursor"]);
    let cursor1 = page1["next_cursor"].as_str().expect("cursor").to_string();
    let (_, page2) = get(
        &client,
        &daemon,
        &format!("/v1/revocations?since={cursor1}&limit=2"),
        &reader,
    )
    .await;
    assert_eq!(keys_of(&page2), [("remove".into(), fp_key(1))]);
    assert_eq!(page2["more"], false);
    assert!(page2["changes"][0].get("action").is_none(), "{page2}");

    // A fresh snapshot no longer holds the removed entry.
    let (_, snapshot) = get(&client, &daemon, "/v1/revocations", ADMIN_KEY).await;
    let mut held: Vec<String> = keys_of(&snapshot).into_iter().map(|(_, k)| k).collect();
    held.sort();
    assert_eq!(held, [fp_key(2), fp_key(3)]);

    // The entry itself, for `revocations show`.
    let (status, entry) = get(
        &client,
        &daemon,
        &format!("/v1/revocations/{}", fp_key(2)),
        &reader,
    )
    .await;
    assert_eq!(
        (status, entry["key"].as_str()),
        (200, Some(fp_key(2).as_str()))
    );
    assert_eq!(entry["reasons"], json!(["r2"]));
    let (status, missing) = get(
        &client,
        &daemon,
        &format!("/v1/revocations/{}", fp_key(9)),
        &reader,
    )
    .await;
    assert_eq!(
        (status, missing["error"].as_str()),
        (404, Some("not_found"))
    );

    // retain = 4: two more changes push cursor0's successors out of the ring.
    for n in [4, 5] {
        let body = json!({"key": fp_key(n)});
        assert_eq!(revoke(&client, &daemon, ADMIN_KEY, body).await, 200);
    }
    let (status, gone) = get(
        &client,
        &daemon,
        &format!("/v1/revocations?since={cursor0}"),
        &reader,
    )
    .await;
    assert_eq!(status, 410, "{gone}");
    assert_eq!(gone["error"], "cursor_expired");
    // cursor1 (after change 3 of 6) is still within the last 4.
    let (status, tail) = get(
        &client,
        &daemon,
        &format!("/v1/revocations?since={cursor1}"),
        &reader,
    )
    .await;
    assert_eq!(status, 200, "{tail}");
    assert_eq!(keys_of(&tail).len(), 3);
    // Malformed cursor and limit.
    let (status, bad) = get(&client, &daemon, "/v1/revocations?since=nonsense", &reader).await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let (status, _) = get(
        &client,
        &daemon,
        "/v1/revocations?since=0-0&limit=0",
        &reader,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_cursor_from_before_a_restart_is_gone_and_the_snapshot_survives() {
    let f = daemon_fixture("");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    assert_eq!(
        revoke(&client, &daemon, ADMIN_KEY, json!({"key": fp_key(7)})).await,
        200
    );
    let (_, snapshot) = get(&client, &daemon, "/v1/revocations", ADMIN_KEY).await;
    let cursor = snapshot["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    drop(daemon);

    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    let (status, gone) = get(
        &client,
        &daemon,
        &format!("/v1/revocations?since={cursor}"),
        ADMIN_KEY,
    )
    .await;
    assert_eq!(
        (status, gone["error"].as_str()),
        (410, Some("cursor_expired"))
    );
    let (_, snapshot) = get(&client, &daemon, "/v1/revocations", ADMIN_KEY).await;
    assert_eq!(keys_of(&snapshot), [("add".into(), fp_key(7))]);
}

#[tokio::test]
async fn the_reader_key_reads_the_feed_and_changes_nothing() {
    let reader = reader_key();
    let f = daemon_fixture(&format!("[feed]\nreader_key = \"{reader}\"\n"));
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    assert_eq!(
        revoke(&client, &daemon, ADMIN_KEY, json!({"key": fp_key(1)})).await,
        200
    );

    for path in ["/v1/revocations", "/v1/revocations?since=0-0"] {
        let (status, _) = get(&client, &daemon, path, &reader).await;
        assert_ne!(status, 401, "{path}: the reader key reads the feed");
    }
    // Refused where the denylist changes, and on the session view.
    let status = revoke(&client, &daemon, &reader, json!({"key": fp_key(2)})).await;
    assert_eq!(status, 401, "POST /v1/revoke with the reader key");
    let form = client
        .post(daemon.url("/v1/revoke"))
        .bearer_auth(&reader)
        .form(&[("token", "some-opaque-token-value")])
        .send()
        .await
        .expect("revoke");
    assert_eq!(form.status(), 401, "RFC 7009 with the reader key");
    assert_eq!(unrevoke(&client, &daemon, &reader, &fp_key(1)).await, 401);
    let (status, _) = get(
        &client,
        &daemon,
        &format!("/v1/sessions/{}", "01".repeat(16)),
        &reader,
    )
    .await;
    assert_eq!(status, 401, "GET /v1/sessions with the reader key");
    // Nothing changed: the entry is still there, the other was never added.
    let (_, snapshot) = get(&client, &daemon, "/v1/revocations", ADMIN_KEY).await;
    assert_eq!(keys_of(&snapshot), [("add".into(), fp_key(1))]);
    // No key, or a wrong one: 401.
    let (status, _) = get(&client, &daemon, "/v1/revocations", "not-a-key-0123456789").await;
    assert_eq!(status, 401);
    let anonymous = client
        .get(daemon.url("/v1/revocations/stream"))
        .send()
        .await
        .expect("stream");
    assert_eq!(anonymous.status(), 401);
}

/// Server-Sent Events read from a streaming response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

#[derive(Debug, Default, Clone)]
struct Event {
    kind: String,
    id: Option<String>,
    data: String,
}

impl Events {
    async fn open(client: &reqwest::Client, d: &Daemon, key: &str, last_id: Option<&str>) -> Self {
        let mut request = client.get(d.url("/v1/revocations/stream")).bearer_auth(key);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream");
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within 10 s.
    async fn next(&mut self) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.kind = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().into());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim());
                    }
                }
                if event.kind.is_empty() && event.data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                return event;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("an event within 10 s")
                .expect("stream read")
                .expect("stream still open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).expect("JSON data")
}

#[tokio::test]
async fn the_stream_sends_a_snapshot_then_live_changes_and_resumes_from_last_event_id() {
    let reader = reader_key();
    let f = daemon_fixture(&format!(
        "[feed]\nreader_key = \"{reader}\"\nkeepalive = \"1s\"\n"
    ));
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    assert_eq!(
        revoke(&client, &daemon, ADMIN_KEY, json!({"key": fp_key(1)})).await,
        200
    );

    let mut events = Events::open(&client, &daemon, &reader, None).await;
    let snapshot = events.next().await;
    assert_eq!(snapshot.kind, "add");
    assert_eq!(snapshot.id, None, "snapshot entries carry no id");
    assert_eq!(data(&snapshot)["key"], fp_key(1));
    let sync = events.next().await;
    assert_eq!(sync.kind, "sync");
    let synced = sync.id.clone().expect("sync has the cursor as id");
    assert_eq!(data(&sync)["cursor"], synced.as_str());

    // A live change arrives.
    assert_eq!(
        revoke(&client, &daemon, ADMIN_KEY, json!({"key": fp_key(2)})).await,
        200
    );
    let live = events.next().await;
    assert_eq!(live.kind, "add");
    assert_eq!(data(&live)["key"], fp_key(2));
    let after_add = live.id.clone().expect("live events carry their cursor");
    assert_eq!(data(&live)["cursor"], after_add.as_str());
    assert_eq!(unrevoke(&client, &daemon, ADMIN_KEY, &fp_key(1)).await, 200);
    let removed = events.next().await;
    assert_eq!(
        (removed.kind.as_str(), data(&removed)["key"].clone()),
        ("remove", json!(fp_key(1)))
    );
    drop(events);

    // While disconnected: one more change. Resuming after the add gets the removal and it,
    // not the snapshot.
    assert_eq!(
        revoke(&client, &daemon, ADMIN_KEY, json!({"key": fp_key(3)})).await,
        200
    );
    let mut resumed = Events::open(&client, &daemon, &reader, Some(&after_add)).await;
    let first = resumed.next().await;
    assert_eq!(
        (first.kind.as_str(), data(&first)["key"].clone()),
        ("remove", json!(fp_key(1)))
    );
    let second = resumed.next().await;
    assert_eq!(
        (second.kind.as_str(), data(&second)["key"].clone()),
        ("add", json!(fp_key(3)))
    );
    drop(resumed);

    // A cursor the feed does not know: reset, then the snapshot.
    let mut reset = Events::open(&client, &daemon, &reader, Some("0-1")).await;
    assert_eq!(reset.next().await.kind, "reset");
    let mut held = Vec::new();
    loop {
        let event = reset.next().await;
        if event.kind == "sync" {
            break;
        }
        assert_eq!(event.kind, "add");
        held.push(data(&event)["key"].as_str().expect("key").to_string());
    }
    held.sort();
    assert_eq!(held, [fp_key(2), fp_key(3)]);
}

#[tokio::test]
async fn streams_are_capped() {
    let f = daemon_fixture("[feed]\nmax_streams = 1\nkeepalive = \"1s\"\n");
    let client = reqwest::Client::new();
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    let mut first = Events::open(&client, &daemon, ADMIN_KEY, None).await;
    assert_eq!(first.next().await.kind, "sync");
    let second = client
        .get(daemon.url("/v1/revocations/stream"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("stream");
    assert_eq!(second.status(), 503);
    drop(first);
    // The slot is given back when the client goes away.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = client
            .get(daemon.url("/v1/revocations/stream"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("stream");
        if again.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the stream slot was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
