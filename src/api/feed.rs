//! The change feed (DESIGN §7), read with the admin key or the read-only reader key:
//! `GET /v1/revocations?since=<cursor>&limit=N` (pages), `GET /v1/revocations/stream`
//! (Server-Sent Events) and `GET /v1/revocations/{key}` (one entry, for `tokenwatch
//! revocations show`).
//!
//! Data flow: `denylist` numbers every change of its state (`denylist/feed.rs`), whether it
//! came from the detector, an admin, or — in distributed mode — the denylist topic; **api feed**
//! pages through those numbers for middleware caches, SDKs and the on-call CLI.
//!
//! Contract:
//! - A page is `{"snapshot", "changes", "next_cursor", "more"}`. Without `since` it is a
//!   snapshot: every entry in force as an `add`, and the cursor to continue from. With `since`
//!   it is the changes after that cursor, oldest first, at most `limit` (default 100, at most
//!   `feed.max_limit`); `more` says another page is already there.
//! - A change is `{"op":"add"|"remove","cursor","key", …}`; an `add` also has `action`
//!   (`revoke`/`step_up`), `expires_at`, `not_before` (when set), `reasons`, `origin`,
//!   `created_at`. Lapsed entries produce no `remove`: drop an entry at its `expires_at`.
//! - A cursor the feed no longer holds — older than the last `feed.retain` changes, from before
//!   a restart, or from another replica — is answered **410** `{"error":"cursor_expired"}`:
//!   start again from a snapshot. A malformed one is 400 `invalid_cursor`.
//! - The stream sends, without `Last-Event-ID` (or `?since=`): the snapshot as `add` events
//!   without an id, then a `sync` event whose `id:` is the cursor; then every change as an
//!   `add`/`remove` event whose `id:` is its cursor. With a valid `Last-Event-ID` it sends only
//!   the changes after it. With an expired one it first sends `reset` (drop what you hold),
//!   then the snapshot. A client that falls more than `feed.retain` changes behind is sent
//!   `reset` and disconnected; its reconnect (with its last id) gets `reset` and a snapshot.
//!   Keep-alive comments every `feed.keepalive`. At most `feed.max_streams` streams (503).
//!
//! Invariants: no per-client queue — each stream holds only its cursor and pulls at most
//! [`STREAM_PULL`] changes at a time from the shared ring, so a slow client costs memory only
//! for its snapshot; streams end at shutdown; no handler holds a lock across an `.await`.
//!
//! What it does NOT do: authenticate (the `auth` middleware runs first) or keep cursors across
//! restarts (the feed's epoch changes; clients resync).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::denylist::{
    Cursor, DenyKey, Denylist, Entry, FeedChange, FeedError, FeedOp, wall_clock_ms,
};

use super::ApiState;
use super::admin::{EntryFields, EntryView};
use super::errors::{ApiError, busy};

/// Changes a stream takes from the ring per pull.
const STREAM_PULL: usize = 256;
/// Page size when a request names none.
const DEFAULT_LIMIT: usize = 100;

/// One change as the feed shows it: an `add` carries the entry's fields.
#[derive(Debug, Serialize)]
struct ChangeView {
    op: FeedOp,
    /// The cursor just after this change (absent on snapshot entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    key: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    entry: Option<EntryFields>,
}

impl ChangeView {
    fn new(op: FeedOp, cursor: Option<Cursor>, key: &DenyKey, entry: Option<&Entry>) -> Self {
        ChangeView {
            op,
            cursor: cursor.map(|c| c.to_string()),
            key: key.to_string(),
            entry: entry.cloned().map(EntryFields::from),
        }
    }

    fn of(change: &FeedChange, epoch: u64) -> Self {
        let cursor = Cursor {
            epoch,
            seq: change.seq,
        };
        ChangeView::new(change.op, Some(cursor), &change.key, change.entry.as_ref())
    }
}

#[derive(Debug, Serialize)]
struct PageView {
    snapshot: bool,
    changes: Vec<ChangeView>,
    next_cursor: String,
    more: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageParams {
    since: Option<String>,
    limit: Option<usize>,
}

fn parse_cursor(text: &str) -> Result<Cursor, ApiError> {
    text.parse()
        .map_err(|e: crate::denylist::CursorParseError| {
            ApiError::bad_request("invalid_cursor", e.to_string())
        })
}

fn expired(error: FeedError) -> ApiError {
    ApiError::new(StatusCode::GONE, error.code(), error.to_string())
}

fn snapshot_changes(denylist: &Denylist, now_ms: i64) -> (Vec<ChangeView>, Cursor) {
    let (entries, cursor) = denylist.feed_snapshot(now_ms);
    let changes = entries
        .iter()
        .map(|(key, entry)| ChangeView::new(FeedOp::Add, None, key, Some(entry)))
        .collect();
    (changes, cursor)
}

/// `GET /v1/revocations?since=<cursor>&limit=N` (admin or reader key).
pub(super) async fn page(
    State(state): State<Arc<ApiState>>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = match params.limit {
        None => DEFAULT_LIMIT.min(state.feed.max_limit),
        Some(0) => {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be positive",
            ));
        }
        Some(n) => n.min(state.feed.max_limit),
    };
    let denylist = state.denylist.clone();
    let view = match params.since.as_deref().filter(|s| !s.is_empty()) {
        None => {
            // A whole-list copy: off the runtime's workers.
            let (changes, cursor) =
                tokio::task::spawn_blocking(move || snapshot_changes(&denylist, wall_clock_ms()))
                    .await
                    .map_err(|_| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            "snapshot failed",
                        )
                    })?;
            PageView {
                snapshot: true,
                changes,
                next_cursor: cursor.to_string(),
                more: false,
            }
        }
        Some(text) => {
            let cursor = parse_cursor(text)?;
            let feed = denylist.feed();
            let page = feed.page(cursor, limit).map_err(expired)?;
            PageView {
                snapshot: false,
                changes: page
                    .changes
                    .iter()
                    .map(|c| ChangeView::of(c, cursor.epoch))
                    .collect(),
                next_cursor: page.next.to_string(),
                more: page.more,
            }
        }
    };
    Ok(axum::Json(view).into_response())
}

/// `GET /v1/revocations/{key}` (admin or reader key): the entry held under `key`, 404 when
/// there is none.
pub(super) async fn show(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key: DenyKey = key.parse().map_err(|e: crate::denylist::KeyParseError| {
        ApiError::bad_request("invalid_key", e.to_string())
    })?;
    match state.denylist.get(&key) {
        Some(entry) => Ok(axum::Json(EntryView::new(&key, entry, wall_clock_ms())).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no denylist entry under this key",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamParams {
    since: Option<String>,
}

/// Where a stream is.
enum Phase {
    /// Send `reset` first (an expired cursor), then the snapshot.
    Snapshot { reset: bool },
    /// Emitting the snapshot's entries, then `sync`.
    Entries {
        entries: std::vec::IntoIter<(DenyKey, Entry)>,
        cursor: Cursor,
    },
    /// Following changes after `cursor`.
    Live { cursor: Cursor },
    /// Ended (after a `reset` for a client that fell behind, or at shutdown).
    Done,
}

struct StreamState {
    phase: Phase,
    denylist: Arc<Denylist>,
    news: tokio::sync::watch::Receiver<u64>,
    shutdown: CancellationToken,
    pending: std::collections::VecDeque<Event>,
    /// Held for the stream's life: counts against `feed.max_streams`.
    _permit: OwnedSemaphorePermit,
}

fn json_event(kind: &'static str, data: &impl Serialize) -> Event {
    Event::default()
        .event(kind)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(kind))
}

impl StreamState {
    /// The next event, waiting for news when caught up; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Snapshot { reset } => {
                    if reset {
                        self.pending.push_back(json_event(
                            "reset",
                            &serde_json::json!({"error": FeedError::Stale.code()}),
                        ));
                    }
                    let denylist = self.denylist.clone();
                    let (entries, cursor) = tokio::task::spawn_blocking(move || {
                        denylist.feed_snapshot(wall_clock_ms())
                    })
                    .await
                    .ok()?;
                    self.phase = Phase::Entries {
                        entries: entries.into_iter(),
                        cursor,
                    };
                }
                Phase::Entries {
                    mut entries,
                    cursor,
                } => match entries.next() {
                    Some((key, entry)) => {
                        let view = ChangeView::new(FeedOp::Add, None, &key, Some(&entry));
                        self.phase = Phase::Entries { entries, cursor };
                        return Some(json_event("add", &view));
                    }
                    None => {
                        self.phase = Phase::Live { cursor };
                        let data = serde_json::json!({"cursor": cursor.to_string()});
                        return Some(json_event("sync", &data).id(cursor.to_string()));
                    }
                },
                Phase::Live { cursor } => {
                    // Mark the news seen before reading, so a change recorded meanwhile
                    // wakes the wait below.
                    self.news.borrow_and_update();
                    match self.denylist.feed().page(cursor, STREAM_PULL) {
                        Err(error) => {
                            self.pending.push_back(json_event(
                                "reset",
                                &serde_json::json!({"error": error.code()}),
                            ));
                            // Phase stays Done: the client reconnects and resyncs.
                        }
                        Ok(page) if !page.changes.is_empty() => {
                            for change in &page.changes {
                                let view = ChangeView::of(change, cursor.epoch);
                                let kind = match change.op {
                                    FeedOp::Add => "add",
                                    FeedOp::Remove => "remove",
                                };
                                let id = view.cursor.clone().unwrap_or_default();
                                self.pending.push_back(json_event(kind, &view).id(id));
                            }
                            self.phase = Phase::Live { cursor: page.next };
                        }
                        Ok(_) => {
                            tokio::select! {
                                () = self.shutdown.cancelled() => return None,
                                changed = self.news.changed() => changed.ok()?,
                            }
                            self.phase = Phase::Live { cursor };
                        }
                    }
                }
            }
        }
    }
}

/// `GET /v1/revocations/stream` (admin or reader key): Server-Sent Events, see the module
/// documentation for the events.
pub(super) async fn stream(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let permit = state
        .stream_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            busy(
                "too_many_streams",
                "too many change-feed streams are open; retry shortly",
            )
        })?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(params.since)
        .filter(|s| !s.trim().is_empty());
    let phase = match resume {
        None => Phase::Snapshot { reset: false },
        Some(text) => match text.parse::<Cursor>() {
            Ok(cursor) if state.denylist.feed().page(cursor, 1).is_ok() => Phase::Live { cursor },
            // Expired, foreign or malformed: the client's copy cannot be trusted.
            _ => Phase::Snapshot { reset: true },
        },
    };
    let stream_state = StreamState {
        phase,
        news: state.denylist.feed().subscribe(),
        denylist: state.denylist.clone(),
        shutdown: state.shutdown.clone(),
        pending: std::collections::VecDeque::new(),
        _permit: permit,
    };
    let events = futures_util::stream::unfold(stream_state, |mut s| async move {
        let event = s.next().await?;
        Some((Ok::<Event, Infallible>(event), s))
    });
    let keepalive: Duration = state.feed.keepalive.0;
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keepalive).text("keep-alive"))
        .into_response())
}
