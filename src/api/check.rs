//! The check: `GET /v1/check` (the auth middleware's decision: 200 empty or 401) and
//! `POST /v1/check` (the same look-up with its reason, for apps), with how a request's
//! credentials are collected and turned into denylist keys.
//!
//! Data flow: the request path, not the log path: middleware → **api check** → `denylist`
//! (a memory look-up). The detector's stages (parse → … → publish) fill the denylist it reads.
//!
//! Invariants: `GET` answers 200 with an empty body or 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"` (revoked) or
//! `Bearer error="insufficient_user_authentication"` (step up, RFC 9470) and nothing else; a
//! revocation of any credential wins over a step-up of another; every credential of
//! the request is checked (Authorization headers, session cookies, `access_token` in the
//! check's URI and the original one); an oversized credential (or too many) is a deny; the
//! check reads only memory, never the journal; a raw token is never logged or echoed.
//!
//! What it does NOT do: verify signatures (claims are read unverified: a forged token can only
//! be denied here, never allowed), authenticate callers (the check is open), or write the
//! denylist.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};

use crate::config::NoTokenPolicy;
use crate::credential::{Canonical, Collector, lossy};
use crate::denylist::{CheckQuery, Entry, EntryAction, MAX_KEY_BYTES, wall_clock_ms};
use crate::event::{EventTime, Fingerprint, RawToken};
use crate::identify::unverified_claims_of;
use crate::metrics::Metrics;

use super::errors::ApiError;
use super::{ApiState, MAX_COOKIE_BYTES};

const DENY_CHALLENGE: HeaderValue = HeaderValue::from_static(r#"Bearer error="invalid_token""#);
/// RFC 9470 §3: the token is fine, but the user must authenticate again.
const STEP_UP_CHALLENGE: HeaderValue =
    HeaderValue::from_static(r#"Bearer error="insufficient_user_authentication""#);

/// `check_requests_total{result}` counters, resolved once so the hot path does no label lookup.
pub(super) struct CheckCounters {
    allow: IntCounter,
    revoked: IntCounter,
    step_up: IntCounter,
    no_token: IntCounter,
    oversized: IntCounter,
}

impl CheckCounters {
    pub(super) fn new(metrics: &Metrics) -> Self {
        let counter = |result: &str| metrics.check_requests.with_label_values(&[result]);
        CheckCounters {
            allow: counter("allow"),
            revoked: counter("revoked"),
            step_up: counter("step_up"),
            no_token: counter("no_token"),
            oversized: counter("oversized"),
        }
    }
}

impl ApiState {
    /// Every denylist key a bare token maps to: the fingerprint of its canonical form, plus
    /// `iss`/`jti`/`sid`/`sub`/`iat` read (unverified) from a JWT's decoded payload.
    pub(super) fn query_for_token(&self, token: &str) -> CheckQuery {
        let canonical = Canonical::of(token);
        let fingerprint = Some(self.fingerprinter.fingerprint_canonical(&canonical));
        match unverified_claims_of(&canonical) {
            Some(c) => CheckQuery {
                fingerprint,
                iss: c.iss,
                jti: c.jti,
                sid: c.sid,
                sub: c.sub,
                iat: c.iat,
            },
            None => CheckQuery {
                fingerprint,
                ..CheckQuery::default()
            },
        }
    }
}

/// Headers that carry the original request target when the check is a subrequest (nginx
/// `X-Original-URI` by convention, Traefik and Caddy `X-Forwarded-Uri`): their
/// `access_token` parameters are credentials too.
const ORIGINAL_URI_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-uri"),
];

/// What a request carried as credentials.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Credentials<'h> {
    None,
    /// A credential over `max_token_bytes`, `Cookie` headers over [`MAX_COOKIE_BYTES`] in
    /// total, or more than [`crate::credential::MAX_CREDENTIALS`] credentials.
    Oversized,
    /// Every bare token found (DESIGN §4), not yet in canonical form.
    Tokens(Vec<Cow<'h, str>>),
}

/// Every credential of the request (DESIGN §4, [`crate::credential`]): every `Authorization`
/// header, every session cookie across all `Cookie` headers, `access_token` in the query of
/// the check's own URI and of the original request's. All are checked: the check cannot know
/// which one the application will use.
pub(super) fn credentials<'h>(
    headers: &'h HeaderMap,
    uri: &'h Uri,
    cookie_name: &'h str,
    max_token: usize,
) -> Credentials<'h> {
    let mut collector = Collector::new(cookie_name);
    for value in headers.get_all(header::AUTHORIZATION) {
        collector.authorization(lossy(value.as_bytes()));
    }
    let mut cookie_bytes = 0usize;
    for value in headers.get_all(header::COOKIE) {
        cookie_bytes += value.len();
        collector.cookies(lossy(value.as_bytes()));
    }
    if cookie_bytes > MAX_COOKIE_BYTES {
        return Credentials::Oversized;
    }
    if let Some(query) = uri.query() {
        collector.query(Cow::Borrowed(query));
    }
    for name in &ORIGINAL_URI_HEADERS {
        for value in headers.get_all(name) {
            collector.query(lossy(value.as_bytes()));
        }
    }
    match collector.finish() {
        Err(_) => Credentials::Oversized,
        Ok(found) if found.is_empty() => Credentials::None,
        Ok(found) if found.iter().any(|(_, token)| token.len() > max_token) => {
            Credentials::Oversized
        }
        Ok(found) => Credentials::Tokens(found.into_iter().map(|(_, token)| token).collect()),
    }
}

fn challenge(value: HeaderValue) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, value);
    response
}

fn deny_response() -> Response {
    challenge(DENY_CHALLENGE)
}

/// The answer for one credential, or a whole request: the strongest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Allow,
    StepUp,
    Revoke,
}

impl Verdict {
    fn of(entry: Option<&Entry>) -> Self {
        match entry.map(|e| e.action) {
            None => Verdict::Allow,
            Some(EntryAction::StepUp) => Verdict::StepUp,
            Some(EntryAction::Revoke) => Verdict::Revoke,
        }
    }

    fn count(self, counters: &CheckCounters) {
        match self {
            Verdict::Allow => counters.allow.inc(),
            Verdict::StepUp => counters.step_up.inc(),
            Verdict::Revoke => counters.revoked.inc(),
        }
    }
}

/// `GET /v1/check`: the decision for the middleware. 200 with an empty body allows; 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` denies; 401 with
/// `WWW-Authenticate: Bearer error="insufficient_user_authentication"` asks the app for a
/// fresh authentication (RFC 9470). Every credential is looked up; a revocation of any of them
/// wins over a step-up.
///
/// A credential over `tokens.max_token_bytes` (or `Cookie` headers over [`MAX_COOKIE_BYTES`],
/// or more than [`crate::credential::MAX_CREDENTIALS`] credentials) is denied: the detector rejects such records
/// without tracking them, so they could never be revoked — allowing them would let an attacker
/// pad a token past every control. No legitimate request looks like that. No credential at
/// all: `api.no_token`.
pub(super) async fn check_get(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let started = Instant::now();
    let counters = &state.check_counters;
    let response = match credentials(
        request.headers(),
        request.uri(),
        &state.session_cookie,
        state.max_token_bytes,
    ) {
        Credentials::None => {
            counters.no_token.inc();
            match state.config.no_token {
                NoTokenPolicy::Allow => StatusCode::OK.into_response(),
                NoTokenPolicy::Deny => deny_response(),
            }
        }
        Credentials::Oversized => {
            counters.oversized.inc();
            deny_response()
        }
        Credentials::Tokens(tokens) => {
            let now_ms = wall_clock_ms();
            let mut verdict = Verdict::Allow;
            for token in &tokens {
                let hit = state.denylist.check(&state.query_for_token(token), now_ms);
                verdict = verdict.max(Verdict::of(hit.as_ref().map(|(_, entry)| entry)));
                if verdict == Verdict::Revoke {
                    break;
                }
            }
            verdict.count(counters);
            match verdict {
                Verdict::Allow => StatusCode::OK.into_response(),
                Verdict::StepUp => challenge(STEP_UP_CHALLENGE),
                Verdict::Revoke => deny_response(),
            }
        }
    };
    state
        .metrics
        .check_duration
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `POST /v1/check` body: exactly one of `{"token"}`, `{"fingerprint"}`, `{"iss","jti"}`.
/// No `Debug`: it may hold a raw token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    token: Option<String>,
    fingerprint: Option<String>,
    iss: Option<String>,
    jti: Option<String>,
}

/// `POST /v1/check` answer (DESIGN §7): `action` is `allow`, `step_up` or `revoke`; `revoked`
/// is true for `revoke` only.
#[derive(Debug, Serialize)]
struct CheckView {
    action: Verdict,
    revoked: bool,
    key: Option<String>,
    reasons: Vec<String>,
    expires_at: Option<String>,
}

pub(super) fn parse_fingerprint(text: &str) -> Option<Fingerprint> {
    Fingerprint::from_hex(text.strip_prefix("fp:").unwrap_or(text))
}

/// `POST /v1/check`: the same look-up as `GET`, with the action and reason. 400 on bad input.
pub(super) async fn check_post(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let request: CheckBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let query = match request {
        CheckBody {
            token: Some(token),
            fingerprint: None,
            iss: None,
            jti: None,
        } => {
            let token = RawToken::new(token);
            if token.len() > state.max_token_bytes {
                return Err(ApiError::bad_request(
                    "token_too_large",
                    "the token exceeds tokens.max_token_bytes",
                ));
            }
            if token.is_empty() {
                return Err(ApiError::bad_request("invalid_token", "empty token"));
            }
            state.query_for_token(token.expose())
        }
        CheckBody {
            token: None,
            fingerprint: Some(text),
            iss: None,
            jti: None,
        } => CheckQuery {
            fingerprint: Some(parse_fingerprint(&text).ok_or_else(|| {
                ApiError::bad_request("invalid_fingerprint", "expected 32 hex characters")
            })?),
            ..CheckQuery::default()
        },
        CheckBody {
            token: None,
            fingerprint: None,
            iss: Some(iss),
            jti: Some(jti),
        } if !iss.is_empty() && !jti.is_empty() && iss.len() + jti.len() <= MAX_KEY_BYTES => {
            CheckQuery {
                iss: Some(iss),
                jti: Some(jti),
                ..CheckQuery::default()
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "send exactly one of {\"token\"}, {\"fingerprint\"} or {\"iss\",\"jti\"}",
            ));
        }
    };
    let hit = state.denylist.check(&query, wall_clock_ms());
    let verdict = Verdict::of(hit.as_ref().map(|(_, entry)| entry));
    verdict.count(&state.check_counters);
    let view = match hit {
        Some((key, entry)) => CheckView {
            action: verdict,
            revoked: verdict == Verdict::Revoke,
            key: Some(key.to_string()),
            expires_at: Some(EventTime(entry.expires_at_ms).to_rfc3339()),
            reasons: entry.reasons,
        },
        None => CheckView {
            action: Verdict::Allow,
            revoked: false,
            key: None,
            reasons: Vec::new(),
            expires_at: None,
        },
    };
    Ok(axum::Json(view).into_response())
}
