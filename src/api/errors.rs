//! The API's error answers: [`ApiError`], rendered as
//! `{"error": code, "error_description": text}` (the OAuth shape, so RFC 7009 clients read it
//! too) with the right status, `Retry-After` for load shedding and the admin challenge for 401.
//!
//! Data flow: returned by every **api** route and middleware except `GET /v1/check` (whose
//! deny is a bare 401 by contract).
//!
//! Invariants: `code` is a fixed, bounded string (clients and tests match on it); a
//! description never carries a raw token; journal failures are logged here, once, with their
//! bounded code.
//!
//! What it does NOT do: choose when to fail (the routes do) or count errors (`count_requests`
//! in `router` labels every answer by status).

use std::borrow::Cow;

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::denylist::DenylistError;

const ADMIN_CHALLENGE: HeaderValue = HeaderValue::from_static(r#"Bearer realm="tokenwatch""#);

/// An error answer: `{"error": code, "error_description": text}` (the OAuth shape, so RFC 7009
/// clients read it too).
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
    retry_after: Option<&'static str>,
    challenge: bool,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            code,
            description: description.into(),
            retry_after: None,
            challenge: false,
        }
    }

    pub(super) fn bad_request(
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, description)
    }

    pub(super) fn unauthorized() -> Self {
        ApiError {
            challenge: true,
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <key>",
            )
        }
    }

    pub(super) fn body(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, rejection.body_text())
    }

    pub(super) fn journal(error: DenylistError) -> Self {
        tracing::error!(code = error.code(), %error, "denylist write failed");
        match error {
            DenylistError::NotAFingerprint => {
                ApiError::bad_request("not_a_fingerprint", "only fp: keys can be allowlisted")
            }
            DenylistError::RecordTooLarge { .. } => {
                ApiError::bad_request("too_large", error.to_string())
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "journal_failed",
                format!("the change could not be made durable ({})", other.code()),
            ),
        }
    }
}

/// The error code of an answer, kept in its extensions so the audit record can name it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ErrorCode(pub(super) &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        if self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, ADMIN_CHALLENGE);
        }
        response
    }
}

/// A 503 with `Retry-After: 1`: shed load, the client may retry shortly.
pub(super) fn busy(code: &'static str, description: &'static str) -> ApiError {
    ApiError {
        retry_after: Some("1"),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, description)
    }
}
