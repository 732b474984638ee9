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
//! # What this module does NOT do
//!
//! It does not check token size or shape, verify or fingerprint tokens (`identify`), resolve
//! trusted proxies beyond taking the first entry of a comma list, look up addresses (`enrich`),
//! or count outcomes (the caller labels metrics with [`ParseError::code`]). It never logs, and
//! its errors never carry a field's value, so a raw token cannot leak through them.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::config::{FieldOverrides, InputFormat};
use crate::credential::{Collector, MAX_CREDENTIALS, Source};
use crate::event::{AccessEvent, Credential, EventTime, Fingerprint, RawToken};

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

impl ParseError {
    /// Every value [`code`](Self::code) can return, for pre-registering metric labels.
    pub const CODES: [&'static str; 11] = [
        "too_large",
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "missing_time",
        "bad_time",
        "missing_client_ip",
        "bad_client_ip",
        "bad_fingerprint",
        "too_many_credentials",
        "future",
    ];

    /// Bounded reason code (metric label `parse_errors_total{reason}`).
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::TooLarge { .. } => "too_large",
            ParseError::InvalidUtf8 => "invalid_utf8",
            ParseError::InvalidJson { .. } => "invalid_json",
            ParseError::NotAnObject => "not_an_object",
            ParseError::MissingTime => "missing_time",
            ParseError::BadTime => "bad_time",
            ParseError::MissingClientIp => "missing_client_ip",
            ParseError::BadClientIp => "bad_client_ip",
            ParseError::BadFingerprint => "bad_fingerprint",
            ParseError::TooManyCredentials => "too_many_credentials",
            ParseError::FutureTime => "future",
        }
    }
}

/// The fields a record is read for, in [`FIELDS`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
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

const FIELD_COUNT: usize = 10;

const FIELDS: [Field; FIELD_COUNT] = [
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
    fn name(self) -> &'static str {
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
    fn is_credential(self) -> bool {
        matches!(
            self,
            Field::Authorization | Field::Cookie | Field::Token | Field::TokenFingerprint
        )
    }

    fn overridden(self, overrides: &FieldOverrides) -> Option<&str> {
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
fn preset(format: InputFormat) -> [&'static [&'static str]; FIELD_COUNT] {
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

/// One step of a compiled path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Longest accepted path, in segments (serde_json stops at depth 128 anyway).
const MAX_PATH_SEGMENTS: usize = 32;

/// Parse path text (`request.headers.Authorization[0]`, `a["b.c"]`) into segments.
fn compile_path(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut rest = text;
    // At the start and after '.', a key must follow.
    let mut need_key = true;
    while need_key || !rest.is_empty() {
        let at = text.len() - rest.len();
        if let Some(quoted) = rest.strip_prefix("[\"") {
            let end = quoted
                .find("\"]")
                .ok_or_else(|| format!("unterminated quoted key at byte {at}"))?;
            if end == 0 {
                return Err(format!("empty key at byte {at}"));
            }
            segments.push(Segment::Key(quoted[..end].to_owned()));
            rest = &quoted[end + 2..];
            need_key = false;
        } else if need_key {
            let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
            if end == 0 {
                return Err(format!("expected a key at byte {at}"));
            }
            segments.push(Segment::Key(rest[..end].to_owned()));
            rest = &rest[end..];
            need_key = false;
        } else if let Some(after) = rest.strip_prefix('.') {
            rest = after;
            need_key = true;
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unterminated index at byte {at}"))?;
            let digits = &after[..end];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("index at byte {at} is not a number"));
            }
            let index = digits
                .parse::<usize>()
                .map_err(|_| format!("index at byte {at} is too large"))?;
            segments.push(Segment::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(format!("expected '.' or '[' at byte {at}"));
        }
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(format!("more than {MAX_PATH_SEGMENTS} segments"));
        }
    }
    Ok(segments)
}

/// A node of the path trie: what to do with the value found at this point of the record.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Object keys that lead further, with the child node.
    keys: Vec<(Box<str>, usize)>,
    /// Array indexes that lead further, with the child node.
    indexes: Vec<(usize, usize)>,
    /// Capture slots that receive this value (a path ends here).
    slots: Vec<usize>,
}

impl Node {
    fn key_child(&self, key: &str) -> Option<usize> {
        self.keys
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, child)| *child)
    }

    fn index_child(&self, index: usize) -> Option<usize> {
        self.indexes
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, child)| *child)
    }
}

/// Most capture slots a parser can have: every field with a few candidates.
const MAX_SLOTS: usize = 16;

/// All compiled paths as one trie; node 0 is the record (an object).
#[derive(Debug, Clone)]
struct Selector {
    nodes: Vec<Node>,
}

impl Selector {
    fn new() -> Self {
        Selector {
            nodes: vec![Node::default()],
        }
    }

    fn insert(&mut self, path: &[Segment], slot: usize) {
        let mut node = 0;
        for segment in path {
            let existing = match segment {
                Segment::Key(key) => self.nodes[node].key_child(key),
                Segment::Index(index) => self.nodes[node].index_child(*index),
            };
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    match segment {
                        Segment::Key(key) => {
                            self.nodes[node].keys.push((key.as_str().into(), child))
                        }
                        Segment::Index(index) => self.nodes[node].indexes.push((*index, child)),
                    }
                    child
                }
            };
        }
        self.nodes[node].slots.push(slot);
    }
}

/// A value found at a path, borrowed from the line when it has no escapes.
#[derive(Debug, Clone, Default, PartialEq)]
enum Captured<'a> {
    #[default]
    Absent,
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    /// An object, or an array whose first element was not read.
    Compound,
}

impl Captured<'_> {
    fn is_present(&self, credential: bool) -> bool {
        match self {
            Captured::Absent | Captured::Null => false,
            Captured::Str(s) => {
                let s = s.trim();
                !(s.is_empty() || s == "-" || (credential && s == "REDACTED"))
            }
            _ => true,
        }
    }
}

type Captures<'a> = [Captured<'a>; MAX_SLOTS];

/// Walks one JSON value with the trie node that describes it, filling capture slots.
struct NodeSeed<'s, 'c, 'de> {
    selector: &'s Selector,
    node: usize,
    captures: &'c mut Captures<'de>,
    /// Reading element 0 of an array a path ended at: capture scalars, do not descend.
    first_element: bool,
}

impl<'de> NodeSeed<'_, '_, 'de> {
    fn slots(&self) -> &[usize] {
        &self.selector.nodes[self.node].slots
    }

    fn store(self, value: Captured<'de>) {
        let slots = &self.selector.nodes[self.node].slots;
        if let Some((last, rest)) = slots.split_last() {
            for slot in rest {
                self.captures[*slot] = value.clone();
            }
            self.captures[*last] = value;
        }
    }

    fn child(&mut self, node: usize, first_element: bool) -> NodeSeed<'_, '_, 'de> {
        NodeSeed {
            selector: self.selector,
            node,
            captures: self.captures,
            first_element,
        }
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.store(Captured::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.store(Captured::I64(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.store(Captured::U64(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.store(Captured::F64(v));
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.store(Captured::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        // Only strings with escapes land here; copy them only when a path wants them.
        if !self.slots().is_empty() {
            self.store(Captured::Str(Cow::Owned(v.to_owned())));
        }
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.store(Captured::Str(Cow::Owned(v)));
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.store(Captured::Null);
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.store(Captured::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        if self.first_element {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        } else {
            let selector = self.selector;
            let node = &selector.nodes[self.node];
            while let Some(child) = map.next_key_seed(KeySeed { node })? {
                match child {
                    Some(child) => map.next_value_seed(self.child(child, false))?,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        self.store(Captured::Compound);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.first_element {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            self.store(Captured::Compound);
            return Ok(());
        }
        let selector = self.selector;
        let node = &selector.nodes[self.node];
        let ends_here = !node.slots.is_empty();
        let mut first_read = false;
        let mut index = 0usize;
        loop {
            let more = if let Some(child) = node.index_child(index) {
                seq.next_element_seed(self.child(child, false))?.is_some()
            } else if index == 0 && ends_here {
                // A path ending at an array reads its first element.
                let this = self.node;
                let more = seq.next_element_seed(self.child(this, true))?.is_some();
                first_read = more;
                more
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                break;
            }
            index += 1;
        }
        if index == 0 {
            self.store(Captured::Null);
        } else if !first_read {
            self.store(Captured::Compound);
        }
        Ok(())
    }
}

/// Resolves an object key to the trie child it leads to, without copying the key.
struct KeySeed<'n> {
    node: &'n Node,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.node.key_child(key))
    }
}

/// The record itself: an object walked with the root node; anything else is reported.
struct RootSeed<'s, 'c, 'de> {
    inner: NodeSeed<'s, 'c, 'de>,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_, '_, 'de> {
    /// `true` when the record is an object.
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_, '_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.inner.visit_map(map)?;
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
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

/// 9999-12-31T23:59:59.999Z: later times are absurd (and overflow RFC 3339's year).
const MAX_EVENT_MS: i64 = 253_402_300_799_999;

/// Numbers at or above this are epoch milliseconds (10^11 s would be the year 5138).
const MILLIS_THRESHOLD: u64 = 100_000_000_000;

fn event_time(value: &Captured<'_>) -> Option<EventTime> {
    let ms = match value {
        Captured::U64(n) => epoch_integer(*n, 0)?,
        Captured::F64(x) => epoch_float(*x)?,
        Captured::Str(text) => {
            let text = text.trim();
            if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                epoch_text(text)?
            } else {
                EventTime::parse_rfc3339(text)?.0
            }
        }
        _ => return None,
    };
    (0..=MAX_EVENT_MS).contains(&ms).then_some(EventTime(ms))
}

/// Integer epoch: milliseconds at or above [`MILLIS_THRESHOLD`], else seconds + `frac_ms`.
fn epoch_integer(n: u64, frac_ms: i64) -> Option<i64> {
    if n >= MILLIS_THRESHOLD {
        i64::try_from(n).ok()
    } else {
        // n < 10^11, so this cannot overflow.
        Some(n as i64 * 1000 + frac_ms)
    }
}

fn epoch_float(x: f64) -> Option<i64> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let ms = if x >= MILLIS_THRESHOLD as f64 {
        x
    } else {
        x * 1000.0
    };
    // The binary float for 1700000000.123 s is a hair below …123 ms; 1 µs of slack recovers
    // the written digits before truncating to the millisecond.
    let ms = (ms + 1e-3).floor();
    if ms > MAX_EVENT_MS as f64 {
        return None;
    }
    Some(ms as i64)
}

/// `1700000000`, `1700000000.123`, `1700000000123`: digits with an optional fraction.
fn epoch_text(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.is_empty() || whole.len() > 19 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut frac_ms = 0i64;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        for (i, digit) in fraction.bytes().take(3).enumerate() {
            frac_ms += i64::from(digit - b'0') * [100, 10, 1][i];
        }
    }
    epoch_integer(whole.parse().ok()?, frac_ms)
}

/// Longest address text considered (a full IPv6 with zone and port fits easily).
const MAX_IP_TEXT: usize = 64;

/// IPv4/IPv6 text with optional port (`1.2.3.4:80`, `[::1]:80`) or zone (`fe80::1%eth0`); a
/// comma list takes its first entry. IPv4-mapped IPv6 becomes IPv4 so one client is one address.
fn parse_client_ip(text: &str) -> Option<IpAddr> {
    let first = text.split(',').next()?.trim();
    if first.is_empty() || first.len() > MAX_IP_TEXT {
        return None;
    }
    let ip = if let Some(rest) = first.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(parse_ipv6(inner)?)
    } else if let Ok(ip) = first.parse::<IpAddr>() {
        ip
    } else {
        match first.split_once(':') {
            // Exactly one colon: IPv4 with a port.
            Some((host, port)) if !port.contains(':') => {
                if !is_port(port) {
                    return None;
                }
                IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
            }
            // Several colons: IPv6, perhaps with a zone.
            Some(_) => IpAddr::V6(parse_ipv6(first)?),
            None => return None,
        }
    };
    Some(ip.to_canonical())
}

fn parse_ipv6(text: &str) -> Option<Ipv6Addr> {
    let address = match text.split_once('%') {
        Some((address, zone)) if !zone.is_empty() => address,
        Some(_) => return None,
        None => text,
    };
    address.parse().ok()
}

fn is_port(text: &str) -> bool {
    (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

fn status(value: &Captured<'_>) -> Option<u16> {
    let code = match value {
        Captured::U64(n) => *n,
        Captured::F64(x) if x.fract() == 0.0 && *x >= 0.0 && *x < 1000.0 => *x as u64,
        Captured::Str(text) => {
            let text = text.trim();
            if text.len() != 3 {
                return None;
            }
            text.parse().ok()?
        }
        _ => return None,
    };
    if (100..=999).contains(&code) {
        u16::try_from(code).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test fixture: a JWT-shaped string, not signed by any real key.
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWZpeHR1cmU";
    const FP: &str = "9f86d081884c7d659a2feaa0c55ad015";
    /// 2023-11-14T22:13:20.123Z.
    const T_MS: i64 = 1_700_000_000_123;
    const T_S: i64 = 1_700_000_000_000;

    fn parser(format: InputFormat) -> Parser {
        Parser::new(format, &FieldOverrides::default(), "sid", 64 * 1024).expect("preset")
    }

    fn with(overrides: FieldOverrides) -> Parser {
        Parser::new(InputFormat::Json, &overrides, "sid", 64 * 1024).expect("overrides")
    }

    fn event(parser: &Parser, line: &str) -> AccessEvent {
        match parser.parse(line.as_bytes()) {
            Ok(Some(event)) => event,
            other => panic!("expected an event from {line}, got {other:?}"),
        }
    }

    fn error_code(parser: &Parser, line: &[u8]) -> &'static str {
        match parser.parse(line) {
            Err(error) => error.code(),
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }

    /// `("bearer" | "cookie" | "fingerprint", value)`: tests may look at the raw token.
    /// Kind and normalized value (as the application reads it) of one credential.
    fn shown(credential: &Credential) -> (&'static str, String) {
        let normalized = |t: &RawToken| crate::credential::normalize(t.expose()).into_owned();
        match credential {
            Credential::Bearer(t) => ("bearer", normalized(t)),
            Credential::Cookie(t) => ("cookie", normalized(t)),
            Credential::Query(t) => ("query", normalized(t)),
            Credential::Fingerprint(fp) => ("fingerprint", fp.to_hex()),
        }
    }

    /// The first credential (the one the old first-present-wins precedence picked).
    fn credential(event: &AccessEvent) -> (&'static str, String) {
        shown(&event.credentials[0])
    }

    #[test]
    fn every_credential_of_a_record_is_collected() {
        let p = parser(InputFormat::Json);
        let got = event(
            &p,
            &json_line(
                r#""token":"t","authorization":"bearer\ta","cookie":"sid=junk; x=1, sid=%52EV","path":"/p?access_token=q""#,
            ),
        );
        let all: Vec<_> = got.credentials.iter().map(shown).collect();
        let want = [
            ("bearer", "t"),
            ("bearer", "a"),
            ("cookie", "junk"),
            ("cookie", "REV"),
            ("query", "q"),
        ];
        assert_eq!(
            all,
            want.map(|(k, v)| (k, v.to_owned())).to_vec(),
            "every one, in order"
        );
        assert_eq!(
            got.path.as_deref(),
            Some("/p"),
            "the query is still cut off"
        );
        let decoys = (0..9)
            .map(|i| format!("sid=d{i}"))
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(
            p.parse(json_line(&format!(r#""cookie":"{decoys}""#)).as_bytes())
                .map(|_| ()),
            Err(ParseError::TooManyCredentials)
        );
    }

    /// A minimal valid json-preset record plus `extra` members.
    fn json_line(extra: &str) -> String {
        let sep = if extra.is_empty() { "" } else { "," };
        format!(r#"{{"time":1700000000,"client_ip":"203.0.113.7"{sep}{extra}}}"#)
    }

    struct Expected {
        time: i64,
        ip: &'static str,
        method: Option<&'static str>,
        path: Option<&'static str>,
        status: Option<u16>,
        user_agent: Option<&'static str>,
        credential: (&'static str, &'static str),
    }

    const CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36";

    #[test]
    fn every_preset_reads_what_its_server_writes() {
        let cases: Vec<(&str, InputFormat, String, Expected)> = vec![
            (
                "json preset, DESIGN §2 names",
                InputFormat::Json,
                format!(
                    r#"{{"time":"2023-11-14T22:13:20.123Z","client_ip":"203.0.113.7","method":"GET","path":"/api/orders?page=2","status":200,"user_agent":"{CHROME}","authorization":"Bearer {JWT}","bytes":512}}"#
                ),
                Expected {
                    time: T_MS,
                    ip: "203.0.113.7",
                    method: Some("GET"),
                    path: Some("/api/orders"),
                    status: Some(200),
                    user_agent: Some(CHROME),
                    credential: ("bearer", JWT),
                },
            ),
            (
                // Exactly what the documented log_format writes; absent cookie is "".
                "nginx escape=json with $msec",
                InputFormat::Nginx,
                format!(
                    r#"{{"msec":"1700000000.123","remote_addr":"198.51.100.23","request_method":"POST","uri":"/api/login","status":"401","http_user_agent":"{CHROME}","http_authorization":"Bearer {JWT}","http_cookie":""}}"#
                ),
                Expected {
                    time: T_MS,
                    ip: "198.51.100.23",
                    method: Some("POST"),
                    path: Some("/api/login"),
                    status: Some(401),
                    user_agent: Some(CHROME),
                    credential: ("bearer", JWT),
                },
            ),
            (
                "nginx with $time_iso8601 and $request_uri, cookie session, no UA",
                InputFormat::Nginx,
                r#"{"time_iso8601":"2023-11-14T23:13:20+01:00","remote_addr":"2001:db8::7","request_method":"GET","request_uri":"/account?tab=1","status":"200","http_user_agent":"","http_authorization":"","http_cookie":"_ga=GA1.2.3; sid=opaque-session-42; theme=dark"}"#.to_owned(),
                Expected {
                    time: T_S,
                    ip: "2001:db8::7",
                    method: Some("GET"),
                    path: Some("/account"),
                    status: Some(200),
                    user_agent: None,
                    credential: ("cookie", "opaque-session-42"),
                },
            ),
            (
                "envoy json_format, IPv6 peer with port, null cookie",
                InputFormat::Envoy,
                format!(
                    r#"{{"authorization":"Bearer {JWT}","cookie":null,"downstream_remote_address":"[2001:db8::7]:51234","method":"DELETE","path":"/v1/items/9?force=true","response_code":204,"start_time":"2023-11-14T22:13:20.123Z","user_agent":"curl/8.4.0"}}"#
                ),
                Expected {
                    time: T_MS,
                    ip: "2001:db8::7",
                    method: Some("DELETE"),
                    path: Some("/v1/items/9"),
                    status: Some(204),
                    user_agent: Some("curl/8.4.0"),
                    credential: ("bearer", JWT),
                },
            ),
            (
                "envoy, IPv4 peer with port, text placeholders",
                InputFormat::Envoy,
                r#"{"authorization":"-","cookie":"sid=abc","downstream_remote_address":"192.0.2.10:40000","method":"GET","path":"/","response_code":0,"start_time":"2023-11-14T22:13:20.123Z","user_agent":"-"}"#.to_owned(),
                Expected {
                    time: T_MS,
                    ip: "192.0.2.10",
                    method: Some("GET"),
                    path: Some("/"),
                    status: None,
                    user_agent: None,
                    credential: ("cookie", "abc"),
                },
            ),
            (
                "traefik JSON access log with kept headers",
                InputFormat::Traefik,
                format!(
                    r#"{{"ClientAddr":"192.0.2.10:53012","ClientHost":"192.0.2.10","ClientPort":"53012","ClientUsername":"-","DownstreamContentSize":512,"DownstreamStatus":200,"Duration":1234567,"OriginContentSize":512,"OriginDuration":1100000,"OriginStatus":200,"Overhead":134567,"RequestAddr":"api.example.com","RequestContentSize":0,"RequestCount":42,"RequestHost":"api.example.com","RequestMethod":"GET","RequestPath":"/v1/orders?limit=10","RequestPort":"-","RequestProtocol":"HTTP/2.0","RequestScheme":"https","RetryAttempts":0,"RouterName":"api@docker","ServiceAddr":"10.0.0.5:8080","ServiceName":"api@docker","ServiceURL":"http://10.0.0.5:8080","StartLocal":"2023-11-14T23:13:20.123456789+01:00","StartUTC":"2023-11-14T22:13:20.123456789Z","entryPointName":"websecure","level":"info","msg":"","request_Authorization":"Bearer {JWT}","request_User-Agent":"{CHROME}","time":"2023-11-14T23:13:20+01:00"}}"#
                ),
                Expected {
                    time: T_MS,
                    ip: "192.0.2.10",
                    method: Some("GET"),
                    path: Some("/v1/orders"),
                    status: Some(200),
                    user_agent: Some(CHROME),
                    credential: ("bearer", JWT),
                },
            ),
            (
                "caddy 2.7+ with log_credentials: cookie session",
                InputFormat::Caddy,
                format!(
                    r#"{{"level":"info","ts":1700000000.1234567,"logger":"http.log.access.log0","msg":"handled request","request":{{"remote_ip":"10.0.0.2","remote_port":"41342","client_ip":"198.51.100.23","proto":"HTTP/2.0","method":"GET","host":"app.example.com","uri":"/dashboard?tab=security","headers":{{"User-Agent":["{CHROME}"],"Accept":["text/html"],"Cookie":["theme=dark; sid=s3ss10n-abc; _ga=GA1.2.3"],"Accept-Encoding":["gzip, deflate, br"]}},"tls":{{"resumed":false,"version":772,"cipher_suite":4865,"proto":"h2","server_name":"app.example.com"}}}},"bytes_read":0,"user_id":"","duration":0.001234,"size":5120,"status":200,"resp_headers":{{"Server":["Caddy"],"Content-Type":["text/html; charset=utf-8"]}}}}"#
                ),
                Expected {
                    time: T_MS,
                    ip: "198.51.100.23",
                    method: Some("GET"),
                    path: Some("/dashboard"),
                    status: Some(200),
                    user_agent: Some(CHROME),
                    credential: ("cookie", "s3ss10n-abc"),
                },
            ),
            (
                "caddy 2.5/2.6: no client_ip, falls back to remote_ip; bearer",
                InputFormat::Caddy,
                format!(
                    r#"{{"level":"info","ts":1700000000.123,"logger":"http.log.access","msg":"handled request","request":{{"remote_ip":"198.51.100.24","remote_port":"5000","proto":"HTTP/1.1","method":"PUT","host":"api.example.com","uri":"/v1/me","headers":{{"Authorization":["Bearer {JWT}"],"User-Agent":["python-requests/2.31.0"]}}}},"status":200}}"#
                ),
                Expected {
                    time: T_MS,
                    ip: "198.51.100.24",
                    method: Some("PUT"),
                    path: Some("/v1/me"),
                    status: Some(200),
                    user_agent: Some("python-requests/2.31.0"),
                    credential: ("bearer", JWT),
                },
            ),
            (
                "caddy < 2.5: remote_addr with port",
                InputFormat::Caddy,
                r#"{"level":"info","ts":1700000000,"logger":"http.log.access","msg":"handled request","request":{"remote_addr":"[2001:db8::9]:443","proto":"HTTP/1.1","method":"GET","uri":"/","headers":{"Cookie":["sid=\"quoted-value\""]}},"status":302}"#.to_owned(),
                Expected {
                    time: T_S,
                    ip: "2001:db8::9",
                    method: Some("GET"),
                    path: Some("/"),
                    status: Some(302),
                    user_agent: None,
                    credential: ("cookie", "quoted-value"),
                },
            ),
        ];
        for (name, format, line, want) in cases {
            let got = event(&parser(format), &line);
            assert_eq!(got.time, EventTime(want.time), "{name}: time");
            assert_eq!(got.client_ip.to_string(), want.ip, "{name}: client_ip");
            assert_eq!(got.method.as_deref(), want.method, "{name}: method");
            assert_eq!(got.path.as_deref(), want.path, "{name}: path");
            assert_eq!(got.status, want.status, "{name}: status");
            assert_eq!(
                got.user_agent.as_deref(),
                want.user_agent,
                "{name}: user_agent"
            );
            let (kind, value) = credential(&got);
            assert_eq!(
                (kind, value.as_str()),
                want.credential,
                "{name}: credential"
            );
        }
    }

    #[test]
    fn redacted_credentials_are_absent() {
        let caddy_default = format!(
            r#"{{"ts":1700000000.5,"request":{{"client_ip":"198.51.100.23","method":"GET","uri":"/","headers":{{"Authorization":["REDACTED"],"Cookie":["REDACTED"],"User-Agent":["{CHROME}"]}}}},"status":200}}"#
        );
        assert!(
            parser(InputFormat::Caddy)
                .parse(caddy_default.as_bytes())
                .expect("valid")
                .is_none()
        );
        for empty in ["[]", r#"[""]"#] {
            let caddy_2_5 = format!(
                r#"{{"ts":1700000000.5,"request":{{"remote_ip":"198.51.100.23","headers":{{"Authorization":{empty},"Cookie":{empty}}}}}}}"#
            );
            let parsed = parser(InputFormat::Caddy).parse(caddy_2_5.as_bytes());
            assert!(parsed.expect("valid").is_none(), "{empty}");
        }
        let traefik_redact = r#"{"StartUTC":"2023-11-14T22:13:20Z","ClientHost":"192.0.2.1","request_Authorization":"REDACTED","request_Cookie":"sid=kept"}"#;
        let got = event(&parser(InputFormat::Traefik), traefik_redact);
        assert_eq!(credential(&got), ("cookie", "kept".to_owned()));
    }

    #[test]
    fn every_preset_path_compiles() {
        for (index, field) in FIELDS.iter().enumerate() {
            assert_eq!(
                *field as usize, index,
                "Field discriminants index `candidates`"
            );
        }
        for format in [
            InputFormat::Json,
            InputFormat::Nginx,
            InputFormat::Envoy,
            InputFormat::Traefik,
            InputFormat::Caddy,
        ] {
            for paths in preset(format) {
                for path in paths {
                    assert!(compile_path(path).is_ok(), "{format:?}: {path}");
                }
            }
        }
    }

    #[test]
    fn timestamp_forms() {
        let ok: &[(&str, i64)] = &[
            (r#""2023-11-14T22:13:20Z""#, T_S),
            (r#""2023-11-14T22:13:20.123Z""#, T_MS),
            (r#""2023-11-14T22:13:20.123456789Z""#, T_MS),
            (r#""2023-11-14T22:13:20.1239999999999Z""#, T_MS),
            (r#""2023-11-14T22:13:20.1Z""#, T_S + 100),
            (r#""2023-11-15T03:43:20.123+05:30""#, T_MS),
            (r#""2023-11-14T17:13:20.123-05:00""#, T_MS),
            (r#""2023-11-14T23:13:20+0100""#, T_S),
            (r#""2023-11-14t22:13:20z""#, T_S),
            (r#""2023-11-14 22:13:20Z""#, T_S),
            (r#"" 2023-11-14T22:13:20Z ""#, T_S),
            (r#""1970-01-01T00:00:00Z""#, 0),
            (r#""2024-02-29T00:00:00Z""#, 1_709_164_800_000),
            (r#""2016-12-31T23:59:60Z""#, 1_483_228_799_999),
            (r#""9999-12-31T23:59:59.999Z""#, MAX_EVENT_MS),
            ("1700000000", T_S),
            ("1700000000.123", T_MS),
            ("1700000000.1234567", T_MS),
            ("1.700000000123e9", T_MS),
            ("1700000000123", T_MS),
            ("1700000000123.0", T_MS),
            ("99999999999", 99_999_999_999_000),
            ("100000000000", 100_000_000_000),
            ("0", 0),
            (r#""1700000000.123""#, T_MS),
            (r#""1700000000""#, T_S),
            (r#""1700000000123""#, T_MS),
            (r#""1700000000.9999""#, T_S + 999),
        ];
        let p = parser(InputFormat::Json);
        for (time, want) in ok {
            let line = format!(r#"{{"time":{time},"client_ip":"192.0.2.1","token":"t"}}"#);
            assert_eq!(event(&p, &line).time, EventTime(*want), "{time}");
        }
        let bad: &[(&str, &str)] = &[
            ("null", "missing_time"),
            (r#""""#, "missing_time"),
            (r#""-""#, "missing_time"),
            ("[]", "missing_time"),
            ("-1", "bad_time"),
            ("-0.5", "bad_time"),
            ("1e300", "bad_time"),
            ("253402300800000", "bad_time"),
            ("true", "bad_time"),
            (r#"{"s":1}"#, "bad_time"),
            (r#""NaN""#, "bad_time"),
            (r#""inf""#, "bad_time"),
            (r#""-1700000000""#, "bad_time"),
            (r#""1700000000.""#, "bad_time"),
            (r#""1.2.3""#, "bad_time"),
            (r#""99999999999999999999""#, "bad_time"),
            (r#""yesterday""#, "bad_time"),
            (r#""2023-11-14T22:13:20""#, "bad_time"),
            (r#""2023-11-14T22:13:20.Z""#, "bad_time"),
            (r#""2023-11-14T22:13:20Zjunk""#, "bad_time"),
            (r#""2023-02-29T00:00:00Z""#, "bad_time"),
            (r#""2023-13-01T00:00:00Z""#, "bad_time"),
            (r#""2023-11-14T24:00:00Z""#, "bad_time"),
            (r#""2023-11-14T22:13:20+24:00""#, "bad_time"),
            (r#""1969-12-31T23:59:59Z""#, "bad_time"),
            (r#""9999-12-31T23:59:59-01:00""#, "bad_time"),
            (r#""14/Nov/2023:22:13:20 +0000""#, "bad_time"),
        ];
        for (time, want) in bad {
            let line = format!(r#"{{"time":{time},"client_ip":"192.0.2.1","token":"t"}}"#);
            assert_eq!(error_code(&p, line.as_bytes()), *want, "{time}");
        }
    }

    #[test]
    fn rfc3339_agrees_with_the_time_crate() {
        use time::format_description::well_known::Rfc3339;
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:34:56.789+02:00",
            "2023-11-14T22:13:20.123Z",
            "2038-01-19T03:14:08Z",
            "2100-03-01T00:00:00-11:59",
            "1999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let expected = time::OffsetDateTime::parse(text, &Rfc3339).expect(text);
            let expected_ms =
                i64::try_from(expected.unix_timestamp_nanos() / 1_000_000).expect("ms");
            assert_eq!(
                EventTime::parse_rfc3339(text).map(|t| t.0),
                Some(expected_ms),
                "{text}"
            );
        }
    }

    #[test]
    fn nested_paths_indexes_and_overrides() {
        let overrides = FieldOverrides {
            time: Some("meta.when[1].at".into()),
            client_ip: Some("net.addrs[2]".into()),
            method: Some("req.line.method".into()),
            path: Some(r#"req["url.path"]"#.into()),
            status: Some("resp.code".into()),
            user_agent: Some("req.headers.User-Agent".into()),
            authorization: Some("req.headers.Authorization[0]".into()),
            ..FieldOverrides::default()
        };
        let p = with(overrides);
        let line = format!(
            r#"{{"meta":{{"when":[{{"at":1}},{{"at":"2023-11-14T22:13:20.123Z"}}]}},"net":{{"addrs":["10.0.0.1","10.0.0.2","192.0.2.55"]}},"req":{{"line":{{"method":"PATCH"}},"url.path":"/x?y","url":{{"path":"/wrong"}},"headers":{{"User-Agent":["{CHROME}","second"],"Authorization":["Bearer {JWT}"]}}}},"resp":{{"code":"503"}}}}"#
        );
        let got = event(&p, &line);
        assert_eq!(got.time, EventTime(T_MS));
        assert_eq!(got.client_ip.to_string(), "192.0.2.55");
        assert_eq!(got.method.as_deref(), Some("PATCH"));
        assert_eq!(got.path.as_deref(), Some("/x"));
        assert_eq!(got.status, Some(503));
        assert_eq!(
            got.user_agent.as_deref(),
            Some(CHROME),
            "array leaf reads element 0"
        );
        assert_eq!(credential(&got), ("bearer", JWT.to_owned()));
        // The old names no longer count once overridden.
        let old_names = json_line(r#""time_unused":1,"authorization":"Bearer x""#)
            .replace("\"time\"", "\"old_time\"");
        assert_eq!(error_code(&p, old_names.as_bytes()), "missing_time");
    }

    #[test]
    fn override_of_one_preset_field_keeps_the_others() {
        let overrides = FieldOverrides {
            client_ip: Some("request.headers.X-Forwarded-For[0]".into()),
            ..FieldOverrides::default()
        };
        let p = Parser::new(InputFormat::Caddy, &overrides, "session", 4096).expect("valid");
        let line = r#"{"ts":1700000000,"request":{"client_ip":"10.0.0.1","uri":"/a","headers":{"X-Forwarded-For":["203.0.113.9, 10.0.0.1"],"Cookie":["sid=no; session=yes"]}}}"#;
        let got = event(&p, line);
        assert_eq!(got.client_ip.to_string(), "203.0.113.9");
        assert_eq!(got.path.as_deref(), Some("/a"));
        assert_eq!(
            credential(&got),
            ("cookie", "yes".to_owned()),
            "configured cookie name"
        );
    }

    #[test]
    fn two_fields_may_share_a_path() {
        let overrides = FieldOverrides {
            cookie: Some("h".into()),
            authorization: Some("h".into()),
            ..FieldOverrides::default()
        };
        let p = with(overrides);
        let got = event(&p, &json_line(r#""h":"sid=from-cookie""#));
        assert_eq!(credential(&got), ("cookie", "from-cookie".to_owned()));
        let got = event(&p, &json_line(r#""h":"Bearer from-auth""#));
        assert_eq!(credential(&got), ("bearer", "from-auth".to_owned()));
    }

    #[test]
    fn bad_path_syntax_is_rejected_naming_the_field() {
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "[0]",
            "a.[0]",
            "a[",
            "a[x]",
            "a[-1]",
            "a[]",
            "a]b",
            "a[0]b",
            r#"a[""]"#,
            r#"a["b"#,
            "a[99999999999999999999999]",
        ] {
            let overrides = FieldOverrides {
                user_agent: Some(bad.into()),
                ..FieldOverrides::default()
            };
            let err = Parser::new(InputFormat::Json, &overrides, "sid", 4096)
                .expect_err(&format!("{bad:?} should not compile"));
            assert!(
                err.starts_with("input.fields.user_agent: "),
                "{bad:?}: {err}"
            );
        }
        let deep = vec!["k"; MAX_PATH_SEGMENTS + 1].join(".");
        assert!(compile_path(&deep).is_err());
        assert!(Parser::new(InputFormat::Json, &FieldOverrides::default(), "", 4096).is_err());
    }

    #[test]
    fn path_syntax_compiles_to_segments() {
        use Segment::{Index, Key};
        let key = |k: &str| Key(k.to_owned());
        let cases: Vec<(&str, Vec<Segment>)> = vec![
            ("time", vec![key("time")]),
            ("request_User-Agent", vec![key("request_User-Agent")]),
            (
                "request.headers.Authorization[0]",
                vec![
                    key("request"),
                    key("headers"),
                    key("Authorization"),
                    Index(0),
                ],
            ),
            ("a[1][2].b", vec![key("a"), Index(1), Index(2), key("b")]),
            (r#"a["b.c"].d"#, vec![key("a"), key("b.c"), key("d")]),
            (r#"["x[0]"]"#, vec![key("x[0]")]),
            (r#"a.["b"]"#, vec![key("a"), key("b")]),
            ("@timestamp", vec![key("@timestamp")]),
        ];
        for (text, want) in cases {
            assert_eq!(compile_path(text).expect(text), want, "{text}");
        }
    }

    #[test]
    fn every_reject_reason() {
        let p = Parser::new(InputFormat::Json, &FieldOverrides::default(), "sid", 300).expect("ok");
        let long = json_line(&format!(r#""pad":"{}""#, "x".repeat(300)));
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("longer than max_line_bytes", long.into_bytes(), "too_large"),
            ("binary", vec![0xff, 0xfe, 0x00, 0x9c], "invalid_utf8"),
            (
                "bad byte outside strings",
                b"{\"time\":1,\xc3}".to_vec(),
                "invalid_utf8",
            ),
            (
                "truncated JSON",
                br#"{"time":1,"client_ip":"#.to_vec(),
                "invalid_json",
            ),
            ("empty line", Vec::new(), "invalid_json"),
            (
                "trailing garbage",
                br#"{"time":1} x"#.to_vec(),
                "invalid_json",
            ),
            (
                "two records",
                br#"{"time":1}{"time":2}"#.to_vec(),
                "invalid_json",
            ),
            ("plain text", b"GET / HTTP/1.1".to_vec(), "invalid_json"),
            ("array", br#"[{"time":1}]"#.to_vec(), "not_an_object"),
            ("string", br#""hello""#.to_vec(), "not_an_object"),
            ("number", b"42".to_vec(), "not_an_object"),
            ("null", b"null".to_vec(), "not_an_object"),
            (
                "no time",
                br#"{"client_ip":"192.0.2.1"}"#.to_vec(),
                "missing_time",
            ),
            (
                "bad time",
                br#"{"time":"soon","client_ip":"192.0.2.1"}"#.to_vec(),
                "bad_time",
            ),
            (
                "no client ip",
                br#"{"time":1700000000}"#.to_vec(),
                "missing_client_ip",
            ),
            (
                "dash client ip",
                br#"{"time":1,"client_ip":"-"}"#.to_vec(),
                "missing_client_ip",
            ),
            (
                "host name",
                br#"{"time":1,"client_ip":"example.com"}"#.to_vec(),
                "bad_client_ip",
            ),
            (
                "numeric ip",
                br#"{"time":1,"client_ip":3232235777}"#.to_vec(),
                "bad_client_ip",
            ),
            (
                "short fingerprint",
                json_line(r#""token_fingerprint":"abc123""#).into_bytes(),
                "bad_fingerprint",
            ),
            (
                "non-hex fingerprint",
                json_line(r#""token_fingerprint":"zz86d081884c7d659a2feaa0c55ad015""#).into_bytes(),
                "bad_fingerprint",
            ),
            (
                "numeric fingerprint",
                json_line(r#""token_fingerprint":12345"#).into_bytes(),
                "bad_fingerprint",
            ),
        ];
        for (name, line, want) in cases {
            assert_eq!(error_code(&p, &line), want, "{name}");
        }
        let every_variant = [
            ParseError::TooLarge { len: 2, max: 1 },
            ParseError::InvalidUtf8,
            ParseError::InvalidJson { column: 1 },
            ParseError::NotAnObject,
            ParseError::MissingTime,
            ParseError::BadTime,
            ParseError::MissingClientIp,
            ParseError::BadClientIp,
            ParseError::BadFingerprint,
            ParseError::TooManyCredentials,
            ParseError::FutureTime,
        ];
        let codes: Vec<&str> = every_variant.iter().map(ParseError::code).collect();
        assert_eq!(
            codes,
            ParseError::CODES,
            "CODES lists every code once, in order"
        );
    }

    #[test]
    fn placeholders_are_absent() {
        let p = parser(InputFormat::Json);
        for placeholder in [r#""""#, r#""-""#, r#"" ""#, "null", "[]"] {
            for field in ["method", "path", "user_agent", "status"] {
                let line = json_line(&format!(r#""{field}":{placeholder},"token":"t""#));
                let got = event(&p, &line);
                let value = match field {
                    "method" => got.method.is_some(),
                    "path" => got.path.is_some(),
                    "user_agent" => got.user_agent.is_some(),
                    _ => got.status.is_some(),
                };
                assert!(!value, "{field} = {placeholder} should be absent");
            }
            for field in ["authorization", "cookie", "token", "token_fingerprint"] {
                let line = json_line(&format!(r#""{field}":{placeholder}"#));
                assert!(
                    p.parse(line.as_bytes()).expect("valid").is_none(),
                    "{field} = {placeholder} should be anonymous"
                );
            }
        }
        for field in ["authorization", "cookie", "token", "token_fingerprint"] {
            let line = json_line(&format!(r#""{field}":"REDACTED""#));
            assert!(
                p.parse(line.as_bytes()).expect("valid").is_none(),
                "{field}"
            );
        }
        // REDACTED is only a placeholder for credentials; a method could be anything.
        let got = event(&p, &json_line(r#""user_agent":"REDACTED","token":"t""#));
        assert_eq!(got.user_agent.as_deref(), Some("REDACTED"));
    }

    #[test]
    fn credential_precedence() {
        let cases: &[(&str, (&str, &str))] = &[
            (
                r#""token_fingerprint":"9F86D081884C7D659A2FEAA0C55AD015","token":"t","authorization":"Bearer a","cookie":"sid=c""#,
                ("fingerprint", FP),
            ),
            (
                r#""token":"t","authorization":"Bearer a","cookie":"sid=c""#,
                ("bearer", "t"),
            ),
            (r#""token":" Bearer t2 ""#, ("bearer", "t2")),
            (
                r#""token":"","authorization":"Bearer a","cookie":"sid=c""#,
                ("bearer", "a"),
            ),
            (
                r#""authorization":"Bearer a","cookie":"sid=c""#,
                ("bearer", "a"),
            ),
            (
                r#""authorization":"Basic dXNlcjpwYXNz","cookie":"sid=c""#,
                ("cookie", "c"),
            ),
            (
                r#""authorization":"Bearer   ","cookie":"sid=c""#,
                ("cookie", "c"),
            ),
            (
                r#""authorization":"Digest username=x","cookie":"sid=c""#,
                ("cookie", "c"),
            ),
            (r#""token":42,"cookie":"sid=c""#, ("cookie", "c")),
            (
                r#""token_fingerprint":"-","cookie":"sid=c""#,
                ("cookie", "c"),
            ),
        ];
        let p = parser(InputFormat::Json);
        for (members, (kind, value)) in cases {
            let got = event(&p, &json_line(members));
            assert_eq!(credential(&got), (*kind, (*value).to_owned()), "{members}");
        }
        let none = [
            r#""authorization":"Basic dXNlcjpwYXNz""#,
            r#""cookie":"other=1; sidx=2""#,
            r#""cookie":"sid=""#,
        ];
        for members in none {
            let line = json_line(members);
            assert!(
                p.parse(line.as_bytes()).expect("valid").is_none(),
                "{members}"
            );
        }
    }

    #[test]
    fn client_ip_forms() {
        let ok: &[(&str, &str)] = &[
            ("192.0.2.1", "192.0.2.1"),
            (" 192.0.2.1 ", "192.0.2.1"),
            ("192.0.2.1:8080", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("::1", "::1"),
            ("[::1]:80", "::1"),
            ("fe80::1%eth0", "fe80::1"),
            ("[fe80::1%25eth0]:443", "fe80::1"),
            ("::ffff:192.0.2.9", "192.0.2.9"),
            ("[::ffff:192.0.2.9]:1234", "192.0.2.9"),
            ("203.0.113.9, 10.0.0.1, 10.0.0.2", "203.0.113.9"),
            ("2001:db8::5,192.0.2.1", "2001:db8::5"),
        ];
        for (text, want) in ok {
            assert_eq!(
                parse_client_ip(text).map(|ip| ip.to_string()).as_deref(),
                Some(*want),
                "{text}"
            );
        }
        for bad in [
            "example.com",
            "unknown, 1.2.3.4",
            "192.0.2.1:",
            "192.0.2.1:http",
            "192.0.2.1:123456",
            "256.0.0.1",
            "[2001:db8::1",
            "[2001:db8::1]443",
            "[192.0.2.1]:80",
            "fe80::1%",
            ",192.0.2.1",
            "/var/run/envoy.sock",
            &"1".repeat(100),
        ] {
            assert_eq!(parse_client_ip(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_forms() {
        let cases: &[(&str, Option<u16>)] = &[
            ("200", Some(200)),
            (r#""404""#, Some(404)),
            (r#"" 499 ""#, Some(499)),
            ("200.0", Some(200)),
            ("999", Some(999)),
            ("0", None),
            ("99", None),
            ("1000", None),
            ("-200", None),
            ("200.5", None),
            (r#""OK""#, None),
            (r#""2000""#, None),
            ("true", None),
            ("[200]", Some(200)),
        ];
        let p = parser(InputFormat::Json);
        for (status, want) in cases {
            let got = event(&p, &json_line(&format!(r#""status":{status},"token":"t""#)));
            assert_eq!(got.status, *want, "{status}");
        }
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let p = parser(InputFormat::Json);
        let got = event(
            &p,
            &json_line(
                r#""authorization":"Bearer a\/b\u0063","user_agent":"say \"hi\"","path":"\/x\u003fy""#,
            ),
        );
        assert_eq!(credential(&got), ("bearer", "a/bc".to_owned()));
        assert_eq!(got.user_agent.as_deref(), Some(r#"say "hi""#));
        assert_eq!(
            got.path.as_deref(),
            Some("/x"),
            "escaped '?' still cuts the query"
        );
    }

    #[test]
    fn duplicate_keys_last_wins_and_unwanted_values_are_skipped() {
        let p = parser(InputFormat::Json);
        let line = json_line(
            r#""token":"first","skip":{"token":"nested","a":[1,{"b":[null,true,-1.5e3]}]},"token":"second""#,
        );
        assert_eq!(
            credential(&event(&p, &line)),
            ("bearer", "second".to_owned())
        );
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        let p = Parser::new(
            InputFormat::Json,
            &FieldOverrides::default(),
            "sid",
            1 << 20,
        )
        .expect("ok");
        let deep = 100_000;
        let (open, close) = ("[".repeat(deep), "]".repeat(deep));
        let cases: Vec<(String, &str)> = vec![
            // Skipped values are walked without recursion.
            (format!(r#"{{"x":{open}{close}}}"#), "missing_time"),
            (
                format!(r#"{{"time":{open}1{close},"client_ip":"192.0.2.1"}}"#),
                "bad_time",
            ),
            (format!(r#"{{"x":{open}}}"#), "invalid_json"),
            (format!("{open}{close}"), "not_an_object"),
            (
                format!(
                    r#"{{"x":{}1{}}}"#,
                    r#"{"a":"#.repeat(deep),
                    "}".repeat(deep)
                ),
                "missing_time",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(error_code(&p, line.as_bytes()), want, "{}", &line[..12]);
        }
    }

    #[test]
    fn one_mebibyte_line() {
        let padding = "x".repeat(1 << 20);
        let line = json_line(&format!(r#""pad":"{padding}","token":"big-line-token""#));
        let roomy = Parser::new(
            InputFormat::Json,
            &FieldOverrides::default(),
            "sid",
            2 << 20,
        )
        .expect("ok");
        assert_eq!(
            credential(&event(&roomy, &line)),
            ("bearer", "big-line-token".to_owned())
        );
        let default_limit = parser(InputFormat::Json);
        assert_eq!(
            default_limit.parse(line.as_bytes()).expect_err("too large"),
            ParseError::TooLarge {
                len: line.len(),
                max: 64 * 1024
            }
        );
        // A 1 MiB token is passed on whole: identify, not parse, enforces the token limit.
        let big_token = "t".repeat(1 << 20);
        let line = json_line(&format!(r#""token":"{big_token}""#));
        let got = event(&roomy, &line);
        assert!(matches!(&got.credentials[0], Credential::Bearer(t) if t.len() == 1 << 20));
    }

    #[test]
    fn binary_garbage_never_panics() {
        let p = parser(InputFormat::Json);
        // xorshift64: deterministic garbage without a dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let len = 16 + (next() % 512) as usize;
            let mut line: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                // Make it look like a record so the parser gets past the first byte.
                line[0] = b'{';
                line[1] = b'"';
            }
            let code = error_code(&p, &line);
            assert!(
                matches!(code, "invalid_utf8" | "invalid_json"),
                "round {round}: {code}"
            );
        }
    }

    #[test]
    fn invalid_utf8_inside_a_record_is_repaired_not_dropped() {
        let p = parser(InputFormat::Nginx);
        // nginx escape=json passes raw bytes through: a client-chosen UA must not hide a token.
        let mut line =
            br#"{"msec":"1700000000.123","remote_addr":"192.0.2.1","http_user_agent":"evil"#
                .to_vec();
        line.extend_from_slice(&[0xff, 0xc3]);
        line.extend_from_slice(br#"","http_authorization":"Bearer stolen"}"#);
        let got = p.parse(&line).expect("repaired").expect("credential");
        assert_eq!(got.user_agent.as_deref(), Some("evil\u{fffd}\u{fffd}"));
        assert_eq!(credential(&got), ("bearer", "stolen".to_owned()));
        assert_eq!(got.time, EventTime(T_MS));
    }

    #[test]
    fn byte_order_mark_and_crlf_are_tolerated() {
        let p = parser(InputFormat::Json);
        let line = format!("\u{feff}{}\r", json_line(r#""token":"t""#));
        assert_eq!(credential(&event(&p, &line)), ("bearer", "t".to_owned()));
    }

    #[test]
    fn anonymous_records_are_still_validated() {
        let p = parser(InputFormat::Json);
        assert!(p.parse(json_line("").as_bytes()).expect("valid").is_none());
        assert_eq!(
            error_code(&p, br#"{"time":"x","client_ip":"192.0.2.1"}"#),
            "bad_time"
        );
        assert_eq!(
            error_code(&p, br#"{"time":1,"client_ip":"x"}"#),
            "bad_client_ip"
        );
    }

    #[test]
    fn errors_and_events_do_not_print_tokens() {
        let p = parser(InputFormat::Json);
        let got = event(
            &p,
            &json_line(&format!(r#""authorization":"Bearer {JWT}""#)),
        );
        assert!(!format!("{got:?}").contains(JWT));
        let overrides = FieldOverrides {
            time: Some("authorization".into()),
            ..FieldOverrides::default()
        };
        let misconfigured = with(overrides);
        let err = misconfigured
            .parse(json_line(&format!(r#""authorization":"Bearer {JWT}""#)).as_bytes())
            .expect_err("not a time");
        assert!(!format!("{err} {err:?}").contains(JWT));
    }
}
