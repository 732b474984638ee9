//! Admin routes (admin key): `POST /v1/revoke` (RFC 7009 form or JSON by key),
//! `DELETE /v1/revocations/{key}` (un-revoke, optionally allowlist) and
//! `GET /v1/sessions/{fingerprint}` (the tracker's snapshot and the denylist status), with
//! the request and response shapes they use.
//!
//! Data flow: admins and IdP hooks → **api admin** → `denylist` (write, journaled) and
//! `track` (read, for the session view). Next to `decide` → `publish`, the other writer.
//!
//! Every revoke and un-revoke (allowlist) is logged at INFO and recorded in the audit trail
//! (`audit.rs`) with its route, outcome and the admin key's id.
//!
//! Invariants: a revocation is durable before it is acknowledged (the journal `fsync` runs on
//! the blocking pool); only a *verified* JWT `exp` sets an RFC 7009 entry's expiry, and no
//! entry outlives `tokens.max_ttl`; RFC 7009 answers 200 for any token (§2.2); deleting is
//! idempotent; raw tokens are never stored or echoed, only their fingerprints.
//!
//! What it does NOT do: authenticate (the `auth` middleware runs before the body is read) or
//! decide anything automatically (that is `decide`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::audit::AdminRecord;
use crate::denylist::{DenyKey, Entry, EntryAction, Origin, wall_clock_ms};
use crate::event::{Credential, EventTime, Fingerprint, RawToken};
use crate::track::SessionSnapshot;

use super::check::parse_fingerprint;
use super::errors::ApiError;
use super::{ApiState, MAX_REASON_BYTES};

/// An entry as the API shows it: times in RFC 3339.
#[derive(Debug, Serialize)]
pub(super) struct EntryView {
    key: String,
    /// In force now.
    revoked: bool,
    #[serde(flatten)]
    fields: EntryFields,
}

impl EntryView {
    pub(super) fn new(key: &DenyKey, entry: Entry, now_ms: i64) -> Self {
        EntryView {
            key: key.to_string(),
            revoked: entry.is_live(now_ms),
            fields: EntryFields::from(entry),
        }
    }
}

/// What an entry holds, as every API answer (an entry, a change of the feed) shows it.
#[derive(Debug, Serialize)]
pub(super) struct EntryFields {
    /// `revoke` or `step_up`.
    action: EntryAction,
    origin: Origin,
    reasons: Vec<String>,
    created_at: String,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

impl From<Entry> for EntryFields {
    fn from(entry: Entry) -> Self {
        EntryFields {
            action: entry.action,
            origin: entry.origin,
            created_at: EventTime(entry.created_at_ms).to_rfc3339(),
            expires_at: EventTime(entry.expires_at_ms).to_rfc3339(),
            not_before: entry
                .not_before
                .map(|s| EventTime::from_secs(s).to_rfc3339()),
            score: entry.score,
            reasons: entry.reasons,
        }
    }
}

/// RFC 7009 revocation request. Unknown parameters (`client_id`, …) are ignored.
/// No `Debug`: it holds a raw token.
#[derive(Deserialize)]
struct RevocationForm {
    token: Option<String>,
    #[allow(dead_code)] // accepted per RFC 7009 §2.1; every token is revoked by fingerprint
    token_type_hint: Option<String>,
}

/// `not_before` as epoch seconds or RFC 3339 text.
#[derive(Deserialize)]
#[serde(untagged)]
enum TimeInput {
    Seconds(i64),
    Text(String),
}

/// JSON revocation by key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRevocation {
    key: String,
    reason: Option<String>,
    ttl: Option<String>,
    not_before: Option<TimeInput>,
    /// `revoke` (the default) or `step_up` (RFC 9470 challenge; on a `sid:` key the session's
    /// tokens issued after now pass).
    #[serde(default)]
    action: EntryAction,
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `POST /v1/revoke` (admin).
///
/// - `application/x-www-form-urlencoded`: RFC 7009 (`token`, optional `token_type_hint`).
///   Revokes `fp:` of the token until the JWT's *verified* `exp` + leeway, else for
///   `tokens.opaque_ttl`; never longer than `tokens.max_ttl`. Answers 200 for any token,
///   unknown or garbage ones included (RFC 7009 §2.2); a token over `tokens.max_token_bytes` is
///   not stored (the check denies it anyway).
///   Only a missing `token` is a 400 (`invalid_request`).
/// - `application/json`: `{"key", "reason"?, "ttl"?, "not_before"?, "action"?}`; `action` is
///   `revoke` (default) or `step_up` (a `sid:` step-up gets `not_before` = now); `ttl` defaults to
///   `denylist.default_ttl`; `not_before` (epoch seconds or RFC 3339) is for `sub:` keys only
///   and defaults to now. A `sub:` entry must outlive every token issued before `not_before`,
///   so give it a `ttl` of at least the longest token lifetime.
///
/// Durable before it answers. Returns the entry.
pub(super) async fn revoke(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let now_ms = wall_clock_ms();
    let result = revoke_entry(&state, &headers, body, now_ms).await;
    let mut record = admin_record(&state, "POST /v1/revoke", "revoke", now_ms);
    let response = match result {
        Ok(Some((key, entry))) => {
            record.key = Some(key.to_string());
            record.action = entry.action.label();
            record.reason = entry.reasons.first().cloned();
            record.expires_at = Some(EventTime(entry.expires_at_ms).to_rfc3339());
            axum::Json(EntryView::new(&key, entry, now_ms)).into_response()
        }
        // RFC 7009: an oversized token is answered 200 but not stored.
        Ok(None) => axum::Json(serde_json::json!({"revoked": false})).into_response(),
        Err(error) => error.into_response(),
    };
    finish_record(&state, record, &response);
    response
}

/// The admin record of an action, before its outcome is known.
fn admin_record(
    state: &ApiState,
    route: &'static str,
    action: &'static str,
    now_ms: i64,
) -> AdminRecord {
    AdminRecord {
        kind: "admin",
        time: EventTime(now_ms).to_rfc3339(),
        route,
        action,
        key: None,
        outcome: String::new(),
        status: 0,
        // The route ran behind `require_admin`: the admin key is the one presented.
        admin_key_id: state
            .admin_key
            .as_deref()
            .map_or_else(|| "-".into(), crate::audit::key_id),
        reason: None,
        expires_at: None,
        removed: None,
    }
}

/// Fill in the outcome from the answer, log it and hand it to the audit trail.
fn finish_record(state: &ApiState, mut record: AdminRecord, response: &Response) {
    record.status = response.status().as_u16();
    record.outcome = if response.status().is_success() {
        "ok".into()
    } else {
        response
            .extensions()
            .get::<super::errors::ErrorCode>()
            .map_or_else(|| "error".into(), |code| code.0.to_string())
    };
    crate::audit::log_admin(&record);
    if let Some(audit) = &state.audit {
        audit.admin(&record);
    }
}

/// `POST /v1/revoke`'s work: the entry stored (durable), or `None` for an RFC 7009 token
/// too large to store.
async fn revoke_entry(
    state: &Arc<ApiState>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    now_ms: i64,
) -> Result<Option<(DenyKey, Entry)>, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let (key, entry) = match media_type(headers).as_str() {
        "application/x-www-form-urlencoded" => {
            let form: RevocationForm = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
            let Some(token) = form.token.filter(|t| !t.is_empty()).map(RawToken::new) else {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "the token parameter is required",
                ));
            };
            if token.len() > state.max_token_bytes {
                return Ok(None);
            }
            let query = state.query_for_token(token.expose());
            let expires_at_ms = match verified_exp(state, &token, now_ms) {
                Some(exp) => exp
                    .saturating_mul(1000)
                    .saturating_add(duration_ms(state.jwt_leeway)),
                None => now_ms.saturating_add(duration_ms(state.opaque_ttl)),
            }
            .min(now_ms.saturating_add(duration_ms(state.max_ttl)));
            let Some(fingerprint) = query.fingerprint else {
                return Err(ApiError::bad_request("invalid_request", "no fingerprint"));
            };
            let entry = Entry {
                action: EntryAction::Revoke,
                reasons: vec!["rfc7009".into()],
                origin: Origin::Admin,
                created_at_ms: now_ms,
                expires_at_ms,
                not_before: None,
                score: None,
            };
            (DenyKey::Fingerprint(fingerprint), entry)
        }
        "application/json" => {
            let request: KeyRevocation = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
            key_revocation(state, request, now_ms)?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/x-www-form-urlencoded (RFC 7009) or application/json",
            ));
        }
    };
    let denylist = state.denylist.clone();
    let (stored_key, stored_entry) = (key.clone(), entry.clone());
    tokio::task::spawn_blocking(move || denylist.revoke(stored_key, stored_entry))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "revocation task failed",
            )
        })?
        .map_err(ApiError::journal)?;
    state
        .metrics
        .revocations
        .with_label_values(&[Origin::Admin.label()])
        .inc();
    Ok(Some((key, entry)))
}

/// The `exp` of a token whose signature and claims verify now; anyone can write any `exp`
/// into an unverified token, so nothing else may set how long an entry lasts.
fn verified_exp(state: &ApiState, token: &RawToken, now_ms: i64) -> Option<i64> {
    let identity = state
        .verifier
        .as_ref()?
        .identify(&Credential::Bearer(token.clone()), EventTime(now_ms))
        .ok()?;
    identity.claims?.exp
}

fn key_revocation(
    state: &ApiState,
    request: KeyRevocation,
    now_ms: i64,
) -> Result<(DenyKey, Entry), ApiError> {
    let key: DenyKey = request
        .key
        .parse()
        .map_err(|e: crate::denylist::KeyParseError| {
            ApiError::bad_request("invalid_key", e.to_string())
        })?;
    let ttl = match request.ttl.as_deref() {
        None => state.default_ttl,
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| ApiError::bad_request("invalid_ttl", format!("ttl {text:?}: {e}")))?,
    };
    if ttl.is_zero() || ttl > state.max_ttl {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            format!(
                "ttl must be positive and at most tokens.max_ttl ({})",
                humantime::format_duration(state.max_ttl)
            ),
        ));
    }
    let reason = request.reason.unwrap_or_else(|| "admin".into());
    if reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_reason",
            "reason must be at most 1024 bytes without control characters",
        ));
    }
    let not_before = match (&key, request.not_before) {
        (DenyKey::Sub { .. }, None) => Some(now_ms.div_euclid(1000)),
        // As the detector's step-up: tokens of the session issued after the challenge pass.
        (DenyKey::Sid { .. }, None) if request.action == EntryAction::StepUp => {
            Some(now_ms.div_euclid(1000))
        }
        (DenyKey::Sub { .. }, Some(TimeInput::Seconds(secs))) => Some(secs),
        (DenyKey::Sub { .. }, Some(TimeInput::Text(text))) => Some(
            crate::event::EventTime::parse_rfc3339(&text)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_not_before",
                        format!("not_before {text:?}: expected epoch seconds or RFC 3339"),
                    )
                })?
                .secs(),
        ),
        (_, None) => None,
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_not_before",
                "not_before applies to sub: keys only",
            ));
        }
    };
    let entry = Entry {
        action: request.action,
        reasons: vec![reason],
        origin: Origin::Admin,
        created_at_ms: now_ms,
        expires_at_ms: now_ms.saturating_add(duration_ms(ttl)),
        not_before,
        score: None,
    };
    Ok((key, entry))
}

#[derive(Deserialize)]
pub(super) struct UnrevokeParams {
    #[serde(default)]
    allowlist: bool,
}

/// `DELETE /v1/revocations/{key}` (admin): un-revoke a false positive. The key is
/// URL-encoded (slashes may be left as they are). `?allowlist=true` also allowlists an `fp:`
/// token so the detector will not revoke it again (400 for other keys).
///
/// Always 200 with `{"removed": bool, "allowlisted": bool}`: `removed: false` when the key
/// was not on the list. Deleting is idempotent, so a retried request is not an error.
pub(super) async fn unrevoke(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
    params: Result<Query<UnrevokeParams>, QueryRejection>,
) -> Response {
    let now_ms = wall_clock_ms();
    let allowlist = params.as_ref().is_ok_and(|Query(p)| p.allowlist);
    let action = if allowlist { "allowlist" } else { "unrevoke" };
    let mut record = admin_record(&state, "DELETE /v1/revocations/{key}", action, now_ms);
    // Recorded only once it parsed as a key: a mistyped path might be a raw token.
    let parsed: Option<DenyKey> = key.parse().ok();
    record.key = parsed.as_ref().map(ToString::to_string);
    let response = match unrevoke_key(&state, key, params).await {
        Ok(removed) => {
            record.removed = Some(removed);
            axum::Json(serde_json::json!({
                "removed": removed,
                "allowlisted": allowlist,
            }))
            .into_response()
        }
        Err(error) => error.into_response(),
    };
    finish_record(&state, record, &response);
    response
}

/// `DELETE /v1/revocations/{key}`'s work: whether an entry was removed (durable).
async fn unrevoke_key(
    state: &Arc<ApiState>,
    key: String,
    params: Result<Query<UnrevokeParams>, QueryRejection>,
) -> Result<bool, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let key: DenyKey = key.parse().map_err(|e: crate::denylist::KeyParseError| {
        ApiError::bad_request("invalid_key", e.to_string())
    })?;
    let denylist = state.denylist.clone();
    let removed = tokio::task::spawn_blocking(move || denylist.unrevoke(&key, params.allowlist))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "un-revocation task failed",
            )
        })?
        .map_err(ApiError::journal)?;
    Ok(removed)
}

#[derive(Serialize)]
struct SessionView {
    fingerprint: Fingerprint,
    /// The tracker's state, when this instance tracks the session.
    session: Option<SessionSnapshot>,
    denylist: DenylistStatus,
}

#[derive(Serialize)]
struct DenylistStatus {
    revoked: bool,
    entry: Option<EntryView>,
    allowlisted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowlisted_until: Option<String>,
}

/// `GET /v1/sessions/{fingerprint}` (admin): the tracker's snapshot and the token's denylist
/// status. 404 when neither the tracker nor the denylist knows the fingerprint.
pub(super) async fn session(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    let fingerprint = parse_fingerprint(&text).ok_or_else(|| {
        ApiError::bad_request("invalid_fingerprint", "expected 32 hex characters")
    })?;
    let session = state.tracker.as_ref().and_then(|t| t.snapshot(fingerprint));
    let key = DenyKey::Fingerprint(fingerprint);
    let entry = state.denylist.get(&key);
    let allowlisted_until = state.denylist.allowlisted_until(fingerprint);
    if session.is_none() && entry.is_none() && allowlisted_until.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no session state or denylist entry for this fingerprint",
        ));
    }
    let now_ms = wall_clock_ms();
    let entry = entry.map(|e| EntryView::new(&key, e, now_ms));
    let view = SessionView {
        fingerprint,
        session,
        denylist: DenylistStatus {
            revoked: entry.as_ref().is_some_and(|e| e.revoked),
            entry,
            allowlisted: allowlisted_until.is_some(),
            allowlisted_until: allowlisted_until.map(|ms| EventTime(ms).to_rfc3339()),
        },
    };
    Ok(axum::Json(view).into_response())
}
