//! Stage 2, parse: one access-log line (bytes) → an [`AccessEvent`], or a reason it was rejected.
//!
//! Sits between `source` (which hands over [`RawLine`](crate::event::RawLine) bytes, already
//! capped) and `identify` (which fingerprints and verifies the credential). Pure: no I/O, no
//! wall clock, no shared state; one [`Parser`] is built at startup and shared by every worker.
//!
//! # What a record must carry
//!
//! Every line is one JSON object. Ten fields are read from it (DESIGN §2); each is found by a
//! *path* into the object. A preset gives every field one or more candidate paths (the first
//! candidate holding a value wins); `[input.fields]` replaces a field's candidates with one path.
//!
//! Path syntax: keys separated by `.`, array indexes in brackets, e.g.
//! `request.headers.Authorization[0]`. Keys may contain any character except `.`, `[` and `]`
//! (so `User-Agent` and Traefik's `request_User-Agent` work as written); a key that contains
//! those can be quoted: `labels["app.kubernetes.io/name"]`. A path ending at an array (say
//! `request.headers.Cookie`) reads the array's first element. Paths are compiled once, in
//! [`Parser::new`], into a small trie; a line is then walked once with `serde_json`, borrowing
//! strings from the line and skipping (not building) every value no path asks for.
//!
//! Values read as **absent**: a missing key, `null`, an empty array, `""` and `-` (nginx's and
//! Envoy's text placeholder). For the credential fields (`authorization`, `cookie`, `token`,
//! `token_fingerprint`) `REDACTED` is absent too: Caddy writes it unless `log_credentials` is on,
//! and Traefik writes it for headers in `redact` mode.
//!
//! | field | accepted | when absent | when malformed |
//! |---|---|---|---|
//! | `time` | RFC 3339 text (`T`, `t` or space; any offset; any fraction), epoch seconds as a number or numeric text (`1700000000.123`), epoch milliseconds as an integer (any number ≥ 10^11 is taken as milliseconds) | `missing_time` | `bad_time` (also negative, non-finite, no offset, after 9999) |
//! | `client_ip` | IPv4/IPv6 text, optionally with a port (`1.2.3.4:80`, `[::1]:80`) or zone; a comma list takes the first entry; IPv4-mapped IPv6 becomes IPv4 | `missing_client_ip` | `bad_client_ip` |
//! | `method`, `user_agent` | text | `None` | `None` (not text) |
//! | `path` | text; the query string is cut off | `None` | `None` |
//! | `status` | integer 100–999 as a number or text | `None` | `None` |
//! | credential | see below | — | `bad_fingerprint`, `too_many_credentials` |
//!
//! Sub-millisecond fractions are truncated. Times are never guessed: text without an offset
//! (local time) is `bad_time`.
//!
//! Credentials (DESIGN §4, [`crate::credential`]): a `token_fingerprint` (exactly 32 hex
//! characters, else `bad_fingerprint`) stands alone. Otherwise every credential is collected,
//! the same way the check API collects them from a live request: the bare `token` (a stray
//! `Bearer ` prefix removed), the Bearer token of `authorization` (scheme in any case; `Basic`
//! and other schemes are ignored), every cookie with the session cookie's name in `cookie`
//! (split on `;` and `,`), and `access_token` in the query of `path` (log `$request_uri`
//! rather than `$uri` for it). More than eight is `too_many_credentials`. A valid record
//! without a credential parses to `Ok(None)` (the caller counts it `anonymous`). Tokens are
//! copied out as found; trimming, quotes and percent-decoding are the canonical form's job
//! (`identify`), and so is the size check (`too_large`).
//!
//! A line that is not valid UTF-8 is detected before JSON parsing. Because nginx's
//! `escape=json` passes bytes ≥ 0x80 through unchanged, a client can put invalid UTF-8 into its
//! own User-Agent; rejecting such a record would let anyone with a stolen token hide from
//! detection. So invalid sequences are replaced by U+FFFD and the repaired line is parsed; only
//! if that still fails is the line rejected, as `invalid_utf8`.
//!
//! # Presets
//!
//! ## `json` — DESIGN §2 names
//!
//! `time`, `client_ip`, `method`, `path`, `status`, `user_agent`, `authorization`, `cookie`,
//! `token`, `token_fingerprint`, all at the top level.
//!
//! ## `nginx`
//!
//! Keys named after the nginx variables (nginx ≥ 1.11.8 for `escape=json`). Paste into the
//! `http` block:
//!
//! ```nginx
//! log_format tokenwatch escape=json
//!   '{"msec":"$msec",'
//!   '"remote_addr":"$remote_addr",'
//!   '"request_method":"$request_method",'
//!   '"uri":"$uri",'
//!   '"status":"$status",'
//!   '"http_user_agent":"$http_user_agent",'
//!   '"http_authorization":"$http_authorization",'
//!   '"http_cookie":"$http_cookie"}';
//! access_log /var/log/nginx/tokenwatch.json tokenwatch;
//! ```
//!
//! `$msec` gives millisecond precision; `"time_iso8601":"$time_iso8601"` (whole seconds) is read
//! when `msec` is missing. `$uri` may be replaced by `"request_uri":"$request_uri"`. Behind a load
//! balancer, make `$remote_addr` the real client with `set_real_ip_from` + `real_ip_header`
//! (ngx_http_realip_module). nginx writes `""` for an absent header with `escape=json`.
//!
//! | field | candidates |
//! |---|---|
//! | time | `msec`, `time_iso8601`, `time` |
//! | client_ip | `remote_addr` |
//! | method / path / status | `request_method` / `uri`, `request_uri` / `status` |
//! | user_agent / authorization / cookie | `http_user_agent` / `http_authorization` / `http_cookie` |
//! | token / token_fingerprint | `token` / `token_fingerprint` |
//!
//! ## `envoy`
//!
//! Envoy has no default JSON format; use this `log_format` in the HTTP connection manager's
//! access log (key names follow Istio's JSON access log, so Istio logs work too, minus the
//! credential headers):
//!
//! ```yaml
//! access_log:
//! - name: envoy.access_loggers.file
//!   typed_config:
//!     "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
//!     path: /var/log/envoy/tokenwatch.json
//!     log_format:
//!       json_format:
//!         start_time: "%START_TIME%"
//!         downstream_remote_address: "%DOWNSTREAM_REMOTE_ADDRESS%"
//!         method: "%REQ(:METHOD)%"
//!         path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"
//!         response_code: "%RESPONSE_CODE%"
//!         user_agent: "%REQ(USER-AGENT)%"
//!         authorization: "%REQ(AUTHORIZATION)%"
//!         cookie: "%REQ(COOKIE)%"
//! ```
//!
//! `%START_TIME%` is RFC 3339 with milliseconds; `%DOWNSTREAM_REMOTE_ADDRESS%` is `ip:port` or
//! `[v6]:port` (the port is stripped) and honours `use_remote_address` / `xff_num_trusted_hops`.
//! Do not truncate the headers (`%REQ(AUTHORIZATION):N%`): a cut token fingerprints differently.
//!
//! ## `traefik`
//!
//! Traefik's JSON access log. Traefik drops request headers from the log unless told to keep
//! them (static configuration):
//!
//! ```yaml
//! accessLog:
//!   format: json
//!   filePath: /var/log/traefik/access.json
//!   fields:
//!     defaultMode: keep
//!     headers:
//!       defaultMode: drop
//!       names:
//!         User-Agent: keep
//!         Authorization: keep
//!         Cookie: keep
//! ```
//!
//! Fields read: `StartUTC`, `ClientHost`, `RequestMethod`, `RequestPath` (query cut off),
//! `DownstreamStatus`, `request_User-Agent`, `request_Authorization`, `request_Cookie`.
//! `ClientHost` is the TCP peer; behind another proxy, keep `X-Forwarded-For` too and set
//! `client_ip = "request_X-Forwarded-For"` — its first entry is used, which is only trustworthy
//! if the proxy in front overwrites (not appends to) that header.
//!
//! ## `caddy`
//!
//! Caddy's JSON access log (`log { format json }`). Fields read: `ts` (epoch seconds, float),
//! `request.client_ip` falling back to `request.remote_ip` and, for Caddy < 2.5,
//! `request.remote_addr` (`ip:port`), `request.method`, `request.uri` (query cut off), `status`,
//! `request.headers.User-Agent[0]`, `request.headers.Authorization[0]`,
//! `request.headers.Cookie[0]`. Caddy logs `Authorization` and `Cookie` as `REDACTED` (2.5 and
//! 2.6: as empty values) unless credentials logging is on — without it every record is
//! anonymous:
//!
//! ```caddyfile
//! {
//!     servers {
//!         log_credentials
//!     }
//! }
//! ```
//!
//! # Files
//!
//! This one holds [`Parser`] (building it, parsing a line, collecting credentials) and
//! [`ParseError`]; `presets` the fields and each preset's paths, `path` the path compiler and
//! trie, `walk` the one-pass JSON walker, `values` the time, IP and status conversions.
//!
//! # What this module does NOT do
//!
//! It does not check token size or shape, verify or fingerprint tokens (`identify`), resolve
//! trusted proxies beyond taking the first entry of a comma list, look up addresses (`enrich`),
//! or count outcomes (the caller labels metrics with [`ParseError::code`]). It never logs, and
//! its errors never carry a field's value, so a raw token cannot leak through them.

use std::borrow::Cow;

use serde::de::DeserializeSeed;

use crate::config::{FieldOverrides, InputFormat};
use crate::credential::{Collector, MAX_CREDENTIALS, Source};
use crate::event::{AccessEvent, Credential, Fingerprint, RawToken};

mod path;
mod presets;
#[cfg(test)]
mod tests;
mod values;
mod walk;

use path::{MAX_SLOTS, Selector, compile_path};
use presets::{FIELD_COUNT, FIELDS, Field, preset};
use values::{event_time, parse_client_ip, status, strip_query};
use walk::{Captured, Captures, NodeSeed, RootSeed};

/// Why a line was rejected. `code()` is a bounded metric label.
///
/// No variant carries a field's value: a misconfigured path could point at a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line is longer than `input.max_line_bytes` (or the source had to cut it).
    #[error("line of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the line as received.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The line is not UTF-8 and is not a JSON object even after repairing it.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// The line is not JSON.
    #[error("invalid JSON at column {column}")]
    InvalidJson {
        /// 1-based column where `serde_json` gave up.
        column: usize,
    },
    /// The line is JSON but not an object.
    #[error("JSON value is not an object")]
    NotAnObject,
    /// No `time` field.
    #[error("record has no time")]
    MissingTime,
    /// A `time` field in no accepted form, or outside 1970..=9999.
    #[error("record time is not a valid timestamp")]
    BadTime,
    /// No `client_ip` field.
    #[error("record has no client IP")]
    MissingClientIp,
    /// A `client_ip` field that is not an IP address.
    #[error("record client IP is not an IP address")]
    BadClientIp,
    /// A `token_fingerprint` that is not 32 hex characters.
    #[error("token fingerprint is not 32 hex characters")]
    BadFingerprint,
    /// More than [`MAX_CREDENTIALS`] credentials: no client sends that many, an attacker
    /// hiding a revoked token among decoys does (the check denies such requests).
    #[error("more than {MAX_CREDENTIALS} credentials in one record")]
    TooManyCredentials,
    /// A time more than `input.max_future_skew` ahead of the wall clock: no log comes from the
    /// future, and one such record would move the event-time watermark. A kind of `bad_time`,
    /// told apart so that a clock problem upstream is visible. Checked by the pipeline (this
    /// module reads no clock).
    #[error("record time is in the future")]
    FutureTime,
}

/// Why a record was rejected, without the details: what parse errors are counted by
/// (`parse_errors_total{reason}`, the replay summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseReason {
    /// [`ParseError::TooLarge`].
    TooLarge,
    /// [`ParseError::InvalidUtf8`].
    InvalidUtf8,
    /// [`ParseError::InvalidJson`].
    InvalidJson,
    /// [`ParseError::NotAnObject`].
    NotAnObject,
    /// [`ParseError::MissingTime`].
    MissingTime,
    /// [`ParseError::BadTime`].
    BadTime,
    /// [`ParseError::MissingClientIp`].
    MissingClientIp,
    /// [`ParseError::BadClientIp`].
    BadClientIp,
    /// [`ParseError::BadFingerprint`].
    BadFingerprint,
    /// [`ParseError::TooManyCredentials`].
    TooManyCredentials,
    /// [`ParseError::FutureTime`].
    FutureTime,
}

impl ParseReason {
    /// Every reason, in declaration order.
    pub const ALL: [ParseReason; 11] = [
        ParseReason::TooLarge,
        ParseReason::InvalidUtf8,
        ParseReason::InvalidJson,
        ParseReason::NotAnObject,
        ParseReason::MissingTime,
        ParseReason::BadTime,
        ParseReason::MissingClientIp,
        ParseReason::BadClientIp,
        ParseReason::BadFingerprint,
        ParseReason::TooManyCredentials,
        ParseReason::FutureTime,
    ];

    /// Bounded reason code (metric label `parse_errors_total{reason}`).
    pub fn code(self) -> &'static str {
        match self {
            ParseReason::TooLarge => "too_large",
            ParseReason::InvalidUtf8 => "invalid_utf8",
            ParseReason::InvalidJson => "invalid_json",
            ParseReason::NotAnObject => "not_an_object",
            ParseReason::MissingTime => "missing_time",
            ParseReason::BadTime => "bad_time",
            ParseReason::MissingClientIp => "missing_client_ip",
            ParseReason::BadClientIp => "bad_client_ip",
            ParseReason::BadFingerprint => "bad_fingerprint",
            ParseReason::TooManyCredentials => "too_many_credentials",
            ParseReason::FutureTime => "future",
        }
    }
}

/// By code, so the replay summary lists reasons alphabetically (the codes are distinct, so
/// this agrees with equality).
impl Ord for ParseReason {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(other.code())
    }
}

impl PartialOrd for ParseReason {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl ParseError {
    /// The reason, without the details.
    pub fn reason(&self) -> ParseReason {
        match self {
            ParseError::TooLarge { .. } => ParseReason::TooLarge,
            ParseError::InvalidUtf8 => ParseReason::InvalidUtf8,
            ParseError::InvalidJson { .. } => ParseReason::InvalidJson,
            ParseError::NotAnObject => ParseReason::NotAnObject,
            ParseError::MissingTime => ParseReason::MissingTime,
            ParseError::BadTime => ParseReason::BadTime,
            ParseError::MissingClientIp => ParseReason::MissingClientIp,
            ParseError::BadClientIp => ParseReason::BadClientIp,
            ParseError::BadFingerprint => ParseReason::BadFingerprint,
            ParseError::TooManyCredentials => ParseReason::TooManyCredentials,
            ParseError::FutureTime => ParseReason::FutureTime,
        }
    }

    /// Bounded reason code (metric label `parse_errors_total{reason}`).
    pub fn code(&self) -> &'static str {
        self.reason().code()
    }
}

/// Parses lines of one configured format.
#[derive(Debug, Clone)]
pub struct Parser {
    selector: Selector,
    /// Capture slots per field, in [`FIELDS`] order; the first present one wins.
    candidates: [Vec<usize>; FIELD_COUNT],
    session_cookie: Box<str>,
    max_line_bytes: usize,
}

impl Parser {
    /// Build from the format preset, field overrides and the session cookie's name.
    ///
    /// Fails, naming the field, when an override's path does not compile.
    pub fn new(
        format: InputFormat,
        overrides: &FieldOverrides,
        session_cookie: &str,
        max_line_bytes: usize,
    ) -> Result<Parser, String> {
        let defaults = preset(format);
        let mut selector = Selector::new();
        let mut candidates: [Vec<usize>; FIELD_COUNT] = Default::default();
        let mut next_slot = 0;
        for (index, field) in FIELDS.iter().enumerate() {
            let paths: Vec<(&str, bool)> = match field.overridden(overrides) {
                Some(path) => vec![(path, true)],
                None => defaults[index].iter().map(|p| (*p, false)).collect(),
            };
            for (text, from_config) in paths {
                let path = compile_path(text).map_err(|reason| {
                    let origin = if from_config {
                        "input.fields"
                    } else {
                        "preset"
                    };
                    format!("{origin}.{}: {reason} in {text:?}", field.name())
                })?;
                if next_slot == MAX_SLOTS {
                    return Err(format!("input.fields.{}: too many paths", field.name()));
                }
                selector.insert(&path, next_slot);
                candidates[index].push(next_slot);
                next_slot += 1;
            }
        }
        if session_cookie.is_empty() {
            return Err("tokens.session_cookie: must not be empty".into());
        }
        Ok(Parser {
            selector,
            candidates,
            session_cookie: session_cookie.into(),
            max_line_bytes,
        })
    }

    /// `Ok(None)`: a valid record without any credential (`anonymous`).
    pub fn parse(&self, line: &[u8]) -> Result<Option<AccessEvent>, ParseError> {
        if line.len() > self.max_line_bytes {
            return Err(ParseError::TooLarge {
                len: line.len(),
                max: self.max_line_bytes,
            });
        }
        match std::str::from_utf8(line) {
            Ok(text) => self.parse_text(text),
            Err(_) => {
                // See the module doc: repair instead of letting a client hide behind one byte.
                let repaired = String::from_utf8_lossy(line);
                match self.parse_text(&repaired) {
                    Err(ParseError::InvalidJson { .. } | ParseError::NotAnObject) => {
                        Err(ParseError::InvalidUtf8)
                    }
                    other => other,
                }
            }
        }
    }

    fn parse_text(&self, text: &str) -> Result<Option<AccessEvent>, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut captures: Captures<'_> = Default::default();
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let seed = RootSeed {
            inner: NodeSeed {
                selector: &self.selector,
                node: 0,
                captures: &mut captures,
                first_element: false,
            },
        };
        let is_object = seed.deserialize(&mut deserializer).map_err(json_error)?;
        deserializer.end().map_err(json_error)?;
        if !is_object {
            return Err(ParseError::NotAnObject);
        }

        let time = match self.field(&captures, Field::Time) {
            None => return Err(ParseError::MissingTime),
            Some(value) => event_time(value).ok_or(ParseError::BadTime)?,
        };
        let client_ip = match self.field(&captures, Field::ClientIp) {
            None => return Err(ParseError::MissingClientIp),
            Some(Captured::Str(text)) => parse_client_ip(text).ok_or(ParseError::BadClientIp)?,
            Some(_) => return Err(ParseError::BadClientIp),
        };
        // Before copying any other field: most anonymous records stop here.
        let credentials = self.credentials(&captures)?;
        if credentials.is_empty() {
            return Ok(None);
        }
        let text_of = |field| match self.field(&captures, field) {
            Some(Captured::Str(text)) => Some(text.trim()),
            _ => None,
        };
        Ok(Some(AccessEvent {
            time,
            client_ip,
            method: text_of(Field::Method).map(str::to_owned),
            path: text_of(Field::Path).map(|path| strip_query(path).to_owned()),
            status: self.field(&captures, Field::Status).and_then(status),
            user_agent: text_of(Field::UserAgent).map(str::to_owned),
            credentials,
        }))
    }

    /// The first present candidate of `field`.
    fn field<'c, 'a>(&self, captures: &'c Captures<'a>, field: Field) -> Option<&'c Captured<'a>> {
        let credential = field.is_credential();
        self.candidates[field as usize]
            .iter()
            .map(|slot| &captures[*slot])
            .find(|value| value.is_present(credential))
    }

    /// Every credential of the record (see [`crate::credential`]): an upstream fingerprint
    /// alone, or else the bare `token`, every Bearer token of `authorization`, every session
    /// cookie of `cookie` and `access_token` in the path's query.
    fn credentials(&self, captures: &Captures<'_>) -> Result<Vec<Credential>, ParseError> {
        if let Some(value) = self.field(captures, Field::TokenFingerprint) {
            return match value {
                Captured::Str(text) => Fingerprint::from_hex(text.trim())
                    .map(|fp| vec![Credential::Fingerprint(fp)])
                    .ok_or(ParseError::BadFingerprint),
                _ => Err(ParseError::BadFingerprint),
            };
        }
        let text_of = |field| match self.field(captures, field) {
            Some(Captured::Str(text)) => Some(Cow::Borrowed(&**text)),
            _ => None,
        };
        let mut collector = Collector::new(&self.session_cookie);
        if let Some(token) = text_of(Field::Token) {
            collector.bare_token(token);
        }
        if let Some(header) = text_of(Field::Authorization) {
            collector.authorization(header);
        }
        if let Some(header) = text_of(Field::Cookie) {
            collector.cookies(header);
        }
        if let Some(target) = text_of(Field::Path) {
            collector.query(target);
        }
        let found = collector
            .finish()
            .map_err(|_| ParseError::TooManyCredentials)?;
        Ok(found
            .into_iter()
            .map(|(source, value)| {
                let token = RawToken::new(value.into_owned());
                match source {
                    Source::Bearer => Credential::Bearer(token),
                    Source::Cookie => Credential::Cookie(token),
                    Source::Query => Credential::Query(token),
                }
            })
            .collect())
    }
}

fn json_error(error: serde_json::Error) -> ParseError {
    ParseError::InvalidJson {
        column: error.column(),
    }
}
