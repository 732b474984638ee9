//! The ten fields a record is read for and each preset's candidate paths per field (the
//! `# Presets` section of the `parse` module doc describes them for operators).
//!
//! Data flow: `source` → **parse** (this file is read once, by [`Parser::new`], when the
//! field paths are compiled) → `identify`.
//!
//! Invariants: [`FIELDS`] order is the order of every per-field array (`preset`, the parser's
//! candidates); every preset path compiles (tested); a field overridden under
//! `[input.fields]` replaces all of that field's candidates.
//!
//! What it does NOT do: compile paths (`path`) or read any value from a line (`walk`).
//!
//! [`Parser::new`]: super::Parser::new

use crate::config::{FieldOverrides, InputFormat};

/// The fields a record is read for, in [`FIELDS`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Time,
    ClientIp,
    Method,
    Path,
    Status,
    UserAgent,
    Authorization,
    Cookie,
    Token,
    TokenFingerprint,
}

pub(super) const FIELD_COUNT: usize = 10;

pub(super) const FIELDS: [Field; FIELD_COUNT] = [
    Field::Time,
    Field::ClientIp,
    Field::Method,
    Field::Path,
    Field::Status,
    Field::UserAgent,
    Field::Authorization,
    Field::Cookie,
    Field::Token,
    Field::TokenFingerprint,
];

impl Field {
    /// The key under `[input.fields]`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Field::Time => "time",
            Field::ClientIp => "client_ip",
            Field::Method => "method",
            Field::Path => "path",
            Field::Status => "status",
            Field::UserAgent => "user_agent",
            Field::Authorization => "authorization",
            Field::Cookie => "cookie",
            Field::Token => "token",
            Field::TokenFingerprint => "token_fingerprint",
        }
    }

    /// Credential fields also treat `REDACTED` as absent.
    pub(super) fn is_credential(self) -> bool {
        matches!(
            self,
            Field::Authorization | Field::Cookie | Field::Token | Field::TokenFingerprint
        )
    }

    pub(super) fn overridden(self, overrides: &FieldOverrides) -> Option<&str> {
        match self {
            Field::Time => overrides.time.as_deref(),
            Field::ClientIp => overrides.client_ip.as_deref(),
            Field::Method => overrides.method.as_deref(),
            Field::Path => overrides.path.as_deref(),
            Field::Status => overrides.status.as_deref(),
            Field::UserAgent => overrides.user_agent.as_deref(),
            Field::Authorization => overrides.authorization.as_deref(),
            Field::Cookie => overrides.cookie.as_deref(),
            Field::Token => overrides.token.as_deref(),
            Field::TokenFingerprint => overrides.token_fingerprint.as_deref(),
        }
    }
}

/// Candidate paths per field, in [`FIELDS`] order. Every preset path must compile (tested).
pub(super) fn preset(format: InputFormat) -> [&'static [&'static str]; FIELD_COUNT] {
    match format {
        InputFormat::Json => [
            &["time"],
            &["client_ip"],
            &["method"],
            &["path"],
            &["status"],
            &["user_agent"],
            &["authorization"],
            &["cookie"],
            &["token"],
            &["token_fingerprint"],
        ],
        InputFormat::Nginx => [
            &["msec", "time_iso8601", "time"],
            &["remote_addr"],
            &["request_method"],
            &["uri", "request_uri"],
            &["status"],
            &["http_user_agent"],
            &["http_authorization"],
            &["http_cookie"],
            &["token"],
            &["token_fingerprint"],
        ],
        InputFormat::Envoy => [
            &["start_time"],
            &["downstream_remote_address"],
            &["method"],
            &["path"],
            &["response_code"],
            &["user_agent"],
            &["authorization"],
            &["cookie"],
            &["token"],
            &["token_fingerprint"],
        ],
        InputFormat::Traefik => [
            &["StartUTC", "StartLocal"],
            &["ClientHost", "ClientAddr"],
            &["RequestMethod"],
            &["RequestPath"],
            &["DownstreamStatus"],
            &["request_User-Agent"],
            &["request_Authorization"],
            &["request_Cookie"],
            &["token"],
            &["token_fingerprint"],
        ],
        InputFormat::Caddy => [
            &["ts"],
            &[
                "request.client_ip",
                "request.remote_ip",
                "request.remote_addr",
            ],
            &["request.method"],
            &["request.uri"],
            &["status"],
            &["request.headers.User-Agent[0]"],
            &["request.headers.Authorization[0]"],
            &["request.headers.Cookie[0]"],
            &["token"],
            &["token_fingerprint"],
        ],
    }
}
