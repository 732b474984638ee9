//! Credentials of one request and their canonical form (DESIGN §4): the one place that says
//! which tokens a request carries and when two encodings are the same token.
//!
//! Where it sits: beside `event`, below the stages. `parse` collects a log record's
//! credentials with [`Collector`]; `identify` fingerprints each through [`Canonical`]; every
//! check route in `api` collects the live request's headers and query with the same
//! [`Collector`] and fingerprints with the same [`Canonical`]. So the detector and the check
//! can never disagree about what a token is — the disagreement every re-encoding attack needs.
//!
//! # Extraction
//!
//! A request can carry several credentials, and frameworks disagree about which one wins
//! (Python's `SimpleCookie` takes the last duplicate cookie, Express the first), so **every**
//! one is collected and the check denies when any is denied:
//! - every `Authorization` value whose scheme is `Bearer` (any case), followed by spaces or
//!   tabs;
//! - every cookie named like the session cookie across all `Cookie` values, split on `;` and
//!   `,` (RFC 2965 separators some parsers still honour);
//! - RFC 6750's `access_token` query parameter (the parameter name percent-decoded);
//! - the log's bare `token` field (a stray `Bearer ` prefix removed).
//!
//! More than [`MAX_CREDENTIALS`] is not a request any client sends: the check denies it and
//! the detector rejects it, so padding a request with decoys never hides a revoked token.
//!
//! # Canonical form
//!
//! The bare token is first **normalized** the way frameworks read cookie and query values:
//! surrounding ASCII whitespace (space, tab, LF, FF, CR) trimmed, one pair of surrounding
//! double quotes removed, then `%XX` escapes percent-decoded; bytes that are not UTF-8 (in the
//! header or after decoding) become U+FFFD, on both sides alike. If the result is a **JWT** —
//! three `.`-separated segments whose first decodes to a JSON object with an `alg` member and
//! whose second decodes — the fingerprint's message is
//! `b64url(decode(seg0)) + "." + b64url(decode(seg1))`, where `decode` takes base64url or
//! standard base64 with or without `=` padding (trailing bits ignored) and `b64url` writes
//! base64url without padding. The signature is left out: every valid signature over a header
//! and payload names the same token, and ECDSA's (r, s) → (r, n−s) makes a second one for
//! free. Anything else is **opaque**: the message is the normalized text.
//!
//! Normalizing before the JWT test (rather than only for opaque values) is what keeps a
//! percent-encoded or quoted JWT cookie — which Express decodes before the app verifies it —
//! on the JWT's fingerprint.
//!
//! Invariants: pure (no I/O, no clock, no secrets: the pepper is applied by `identify`);
//! never copies when the token is already canonical (the common case); never stores or
//! prints a token. It does NOT verify anything or cap sizes (callers cap before calling).

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Most credentials one request may carry. Above it the check denies and the detector
/// rejects the record (`too_many_credentials`).
pub const MAX_CREDENTIALS: usize = 8;

/// The query parameter RFC 6750 §2.3 names.
pub const ACCESS_TOKEN_PARAM: &str = "access_token";

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An `Authorization: Bearer` value, or the log's bare `token` field.
    Bearer,
    /// The session cookie.
    Cookie,
    /// The `access_token` query parameter.
    Query,
}

/// Collects every credential of one request, in the order given. Borrows the values it is
/// handed; nothing is decoded until [`Canonical::of`].
#[derive(Debug)]
pub struct Collector<'a> {
    cookie_name: &'a str,
    found: Vec<(Source, Cow<'a, str>)>,
    too_many: bool,
}

/// More than [`MAX_CREDENTIALS`] credentials in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {MAX_CREDENTIALS} credentials in one request")]
pub struct TooManyCredentials;

impl<'a> Collector<'a> {
    /// A collector for requests whose session cookie is called `cookie_name`.
    pub fn new(cookie_name: &'a str) -> Self {
        Collector {
            cookie_name,
            found: Vec::new(),
            too_many: false,
        }
    }

    fn push(&mut self, source: Source, value: Cow<'a, str>) {
        if self.found.len() == MAX_CREDENTIALS {
            self.too_many = true;
        } else {
            self.found.push((source, value));
        }
    }

    /// One `Authorization` value: its token when the scheme is `Bearer`.
    pub fn authorization(&mut self, value: Cow<'a, str>) {
        if let Some(range) = bearer_range(&value) {
            self.push(Source::Bearer, slice(&value, range));
        }
    }

    /// A bare token (the log's `token` field); a stray `Bearer ` prefix is removed.
    pub fn bare_token(&mut self, value: Cow<'a, str>) {
        let range = bearer_range(&value).unwrap_or(0..value.len());
        if !value[range.clone()].trim_ascii().is_empty() {
            self.push(Source::Bearer, slice(&value, range));
        }
    }

    /// One `Cookie` value: every cookie with the session cookie's name.
    pub fn cookies(&mut self, value: Cow<'a, str>) {
        let ranges: Vec<_> = cookie_ranges(&value, self.cookie_name).collect();
        for range in ranges {
            self.push(Source::Cookie, slice(&value, range));
        }
    }

    /// A request target or query string (`/p?a=b&access_token=…`, or `a=b&…`): every
    /// `access_token` parameter. A target without `?` has no query.
    pub fn query(&mut self, target: Cow<'a, str>) {
        let Some(start) = query_start(&target) else {
            return;
        };
        let end = target[start..]
            .find('#')
            .map_or(target.len(), |i| start + i);
        let mut offset = start;
        let mut ranges = Vec::new();
        for pair in target[start..end].split('&') {
            let range = offset..offset + pair.len();
            offset += pair.len() + 1;
            let Some((name, _)) = pair.split_once('=') else {
                continue;
            };
            if percent_decode(name) == ACCESS_TOKEN_PARAM {
                ranges.push(range.start + name.len() + 1..range.end);
            }
        }
        for range in ranges {
            if !target[range.clone()].trim_ascii().is_empty() {
                self.push(Source::Query, slice(&target, range));
            }
        }
    }

    /// The credentials found, or [`TooManyCredentials`].
    pub fn finish(self) -> Result<Vec<(Source, Cow<'a, str>)>, TooManyCredentials> {
        if self.too_many {
            Err(TooManyCredentials)
        } else {
            Ok(self.found)
        }
    }
}

/// Where a query string starts in `target`: after the first `?`, or at 0 when `target` has
/// no `/` (a bare query string such as `a=b&c=d`).
fn query_start(target: &str) -> Option<usize> {
    match target.find('?') {
        Some(i) => Some(i + 1),
        None if !target.contains('/') && target.contains('=') => Some(0),
        None => None,
    }
}

/// The token of one `Authorization: Bearer` value (as [`Collector::authorization`] reads it).
pub fn bearer_token(value: &str) -> Option<&str> {
    bearer_range(value).map(|range| &value[range])
}

/// `value[range]`, borrowed when `value` is (no copy), owned otherwise.
fn slice<'a>(value: &Cow<'a, str>, range: std::ops::Range<usize>) -> Cow<'a, str> {
    match value {
        Cow::Borrowed(text) => Cow::Borrowed(&text[range]),
        Cow::Owned(text) => Cow::Owned(text[range].to_owned()),
    }
}

/// The token's byte range in an `Authorization` value: scheme `Bearer` in any case, then at
/// least one space or tab (RFC 7235 `1*SP`; tabs accepted as lenient servers do).
fn bearer_range(value: &str) -> Option<std::ops::Range<usize>> {
    let start = value.len() - value.trim_ascii_start().len();
    let rest = &value[start..];
    let scheme = rest.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest[6..].starts_with([' ', '\t']) {
        return None;
    }
    let token = rest[6..].trim_ascii();
    if token.is_empty() {
        return None;
    }
    let token_start = start + 6 + (rest[6..].len() - rest[6..].trim_ascii_start().len());
    Some(token_start..token_start + token.len())
}

/// Byte ranges of the values of every cookie called `name` in one `Cookie` value.
fn cookie_ranges<'v>(
    value: &'v str,
    name: &'v str,
) -> impl Iterator<Item = std::ops::Range<usize>> + 'v {
    let mut offset = 0;
    value.split([';', ',']).filter_map(move |pair| {
        let start = offset;
        offset += pair.len() + 1;
        let (key, cookie) = pair.split_once('=')?;
        if key.trim_ascii() != name || cookie.trim_ascii().is_empty() {
            return None;
        }
        let value_start = start + key.len() + 1;
        Some(value_start..value_start + cookie.len())
    })
}

/// `%XX` escapes decoded; invalid escapes left as they are; non-UTF-8 results → U+FFFD.
fn percent_decode(text: &str) -> Cow<'_, str> {
    if text.contains('%') {
        percent_encoding::percent_decode_str(text).decode_utf8_lossy()
    } else {
        Cow::Borrowed(text)
    }
}

/// The normalization of DESIGN §4: trim ASCII whitespace, remove one pair of surrounding
/// double quotes, percent-decode.
pub fn normalize(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim_matches([' ', '\t', '\n', '\x0c', '\r']);
    let unquoted = trimmed
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(trimmed);
    percent_decode(unquoted)
}

/// base64url or standard base64, `=` padding optional, trailing bits ignored.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Decode one JWT segment as lenient verifiers do (PyJWT, jose): base64url or standard
/// base64, with or without `=` padding, trailing bits ignored. `None` for anything else.
pub fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    let unpadded = segment.trim_end_matches('=');
    if unpadded.contains(['+', '/']) {
        let mapped: String = unpadded
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        LENIENT.decode(mapped).ok()
    } else {
        LENIENT.decode(unpadded).ok()
    }
}

/// Segment decoded, and whether the segment was already canonical (base64url, unpadded, no
/// stray trailing bits), so that it can be used in place.
fn decode_canonical(segment: &str) -> Option<(Vec<u8>, bool)> {
    match URL_SAFE_NO_PAD.decode(segment) {
        Ok(bytes) => Some((bytes, true)),
        Err(_) => decode_segment(segment).map(|bytes| (bytes, false)),
    }
}

/// Does `header` hold exactly one JSON object with an `alg` member? Runs on every check of a
/// JWT, so it allocates nothing: keys are compared where they lie, values skipped.
fn is_jose_header(header: &[u8]) -> bool {
    /// A member name, answered as "is it `alg`?".
    struct IsAlg;
    impl<'de> DeserializeSeed<'de> for IsAlg {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
            deserializer.deserialize_str(self)
        }
    }
    impl Visitor<'_> for IsAlg {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a member name")
        }
        fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
            Ok(key == "alg")
        }
    }
    struct HasAlg;
    impl<'de> Visitor<'de> for HasAlg {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut has_alg = false;
            while let Some(is_alg) = map.next_key_seed(IsAlg)? {
                has_alg |= is_alg;
                map.next_value::<IgnoredAny>()?;
            }
            Ok(has_alg)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(header);
    matches!(deserializer.deserialize_map(HasAlg), Ok(true)) && deserializer.end().is_ok()
}

/// A JWT's parts as the canonical form needs them.
#[derive(Debug)]
struct JwtForm {
    /// `b64url(header).b64url(payload)` when the token was not already canonical; `None` when
    /// the token's own first two segments are the canonical form.
    reencoded: Option<String>,
    /// Bytes of the token's own `seg0.seg1` (the signing input).
    signing_len: usize,
    /// The decoded payload.
    payload: Vec<u8>,
}

/// A token in its canonical form (see the module doc). Holds the normalized token, so it is a
/// secret like the token itself: no `Display`, and `Debug` is redacted.
pub struct Canonical<'a> {
    token: Cow<'a, str>,
    jwt: Option<JwtForm>,
}

impl std::fmt::Debug for Canonical<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Canonical(<{} bytes redacted>, jwt: {})",
            self.token.len(),
            self.jwt.is_some()
        )
    }
}

impl<'a> Canonical<'a> {
    /// The canonical form of a bare token (no `Bearer `, no cookie name).
    pub fn of(raw: &'a str) -> Self {
        let token = normalize(raw);
        let jwt = jwt_form(&token);
        Canonical { token, jwt }
    }

    /// The token as the application's framework reads it (normalized): what a verifier sees.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The fingerprint's HMAC message.
    pub fn message(&self) -> &[u8] {
        match &self.jwt {
            Some(JwtForm {
                reencoded: Some(text),
                ..
            }) => text.as_bytes(),
            Some(JwtForm { signing_len, .. }) => &self.token.as_bytes()[..*signing_len],
            None => self.token.as_bytes(),
        }
    }

    /// Is it a JWT (by the canonical form's definition)?
    pub fn is_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// A JWT's decoded payload (unverified).
    pub fn jwt_payload(&self) -> Option<&[u8]> {
        self.jwt.as_ref().map(|jwt| jwt.payload.as_slice())
    }
}

fn jwt_form(token: &str) -> Option<JwtForm> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (header_bytes, header_in_place) = decode_canonical(header)?;
    if !is_jose_header(&header_bytes) {
        return None;
    }
    let (payload_bytes, payload_in_place) = decode_canonical(payload)?;
    let reencoded = (!(header_in_place && payload_in_place)).then(|| {
        let mut text = URL_SAFE_NO_PAD.encode(&header_bytes);
        text.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload_bytes, &mut text);
        text
    });
    Some(JwtForm {
        reencoded,
        signing_len: header.len() + 1 + payload.len(),
        payload: payload_bytes,
    })
}

/// Lossy UTF-8 view of header bytes: the check reads raw bytes, the detector reads lines the
/// source repaired the same way, so both fingerprint the same text.
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Runs of token characters at least this long are taken for credentials by
/// [`redact_unparsed`]: session ids, API keys and JWT segments are longer; timestamps, addresses,
/// paths and user agents break into shorter runs at `:`, `/` and spaces.
pub const REDACT_MIN_RUN: usize = 16;

/// What [`redact_unparsed`] puts in place of a run it removes.
pub const REDACTED: &[u8] = b"[redacted]";

/// A record that could not be parsed, fit to keep (a dead-letter copy) without its
/// credentials: where the credentials are cannot be known, so every run of
/// [`REDACT_MIN_RUN`] or more token characters (letters, digits, `-_.~+%`; a JWT's segments
/// and dots, a base64 or hex id, a percent-encoded cookie value; `=` ends a run, so a cookie's
/// name stays) is replaced with [`REDACTED`]. The rest (field names, times, addresses, paths, the reason it failed to
/// parse) stays readable.
pub fn redact_unparsed(line: &[u8]) -> Vec<u8> {
    let is_token_byte =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'%');
    let mut out = Vec::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let run = rest.iter().take_while(|b| is_token_byte(**b)).count();
        if run >= REDACT_MIN_RUN {
            out.extend_from_slice(REDACTED);
        } else {
            out.extend_from_slice(&rest[..run]);
        }
        let other = rest[run..]
            .iter()
            .take_while(|b| !is_token_byte(**b))
            .count();
        out.extend_from_slice(&rest[run..run + other]);
        rest = &rest[run + other..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(f: impl FnOnce(&mut Collector<'static>)) -> Vec<(Source, String)> {
        let mut collector = Collector::new("sid");
        f(&mut collector);
        collector
            .finish()
            .expect("within the cap")
            .into_iter()
            .map(|(source, value)| (source, value.into_owned()))
            .collect()
    }

    #[test]
    fn authorization_values_any_case_spaces_or_tabs() {
        for (value, want) in [
            ("Bearer tok", Some("tok")),
            ("bearer tok", Some("tok")),
            ("BEARER\ttok", Some("tok")),
            ("Bearer \t  tok  ", Some("tok")),
            ("  Bearer tok", Some("tok")),
            ("Bearertok", None),
            ("Basic dXNlcjpwdw==", None),
            ("Bearer ", None),
            ("Bear", None),
        ] {
            let got = collect(|c| c.authorization(Cow::Borrowed(value)));
            let got: Vec<_> = got.iter().map(|(_, v)| v.as_str()).collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{value:?}");
        }
    }

    #[test]
    fn every_session_cookie_across_separators() {
        let got = collect(|c| {
            c.cookies(Cow::Borrowed("sid=junk; a=b; sid=REV"));
            c.cookies(Cow::Borrowed("a=b, sid=\"quoted\""));
            c.cookies(Cow::Borrowed("xsid=no; sid=; sid = spaced "));
        });
        let values: Vec<_> = got.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["junk", "REV", "\"quoted\"", " spaced "]);
        assert!(got.iter().all(|(s, _)| *s == Source::Cookie));
    }

    #[test]
    fn cookie_header_forms() {
        let cases: &[(&str, &[&str])] = &[
            ("sid=xyz", &["xyz"]),
            ("a=b;sid=xyz;c=d", &["xyz"]),
            ("  sid = xyz  ; a=b", &["xyz"]),
            (r#"sid="quoted value""#, &["quoted value"]),
            ("sid=first; sid=second", &["first", "second"]),
            ("sid=; sid=second", &["second"]),
            ("xsid=1; sidx=2; SID=3", &[]),
            ("a=b; flag; sid=after-flag", &["after-flag"]),
            ("sid=a=b=c", &["a=b=c"]),
            ("sid=eyJ.x.y; Path=/", &["eyJ.x.y"]),
            ("", &[]),
            (";;;", &[]),
        ];
        for (header, want) in cases {
            let got = collect(|c| c.cookies(Cow::Borrowed(header)));
            let got: Vec<_> = got.iter().map(|(_, v)| normalize(v).into_owned()).collect();
            assert_eq!(got, *want, "{header:?}");
        }
    }

    #[test]
    fn access_token_in_the_query() {
        let got = collect(|c| {
            c.query(Cow::Borrowed("/api/x?a=1&access_token=T1#frag"));
            c.query(Cow::Borrowed("access%5Ftoken=T2&b=2"));
            c.query(Cow::Borrowed("/no/query"));
            c.query(Cow::Borrowed("/p?access_token="));
        });
        let values: Vec<_> = got.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["T1", "T2"]);
    }

    #[test]
    fn bare_token_drops_a_stray_bearer_prefix() {
        let got = collect(|c| {
            c.bare_token(Cow::Borrowed("Bearer abc"));
            c.bare_token(Cow::Borrowed("xyz"));
            c.bare_token(Cow::Borrowed("  "));
        });
        let values: Vec<_> = got.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["abc", "xyz"]);
    }

    #[test]
    fn more_than_the_cap_is_an_error_not_a_truncation() {
        let header = (0..=MAX_CREDENTIALS)
            .map(|i| format!("sid=v{i}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut collector = Collector::new("sid");
        collector.cookies(Cow::Owned(header));
        assert_eq!(collector.finish().unwrap_err(), TooManyCredentials);
    }

    #[test]
    fn normalize_trims_unquotes_and_percent_decodes() {
        for (raw, want) in [
            ("abc", "abc"),
            ("  abc\t", "abc"),
            ("\"abc\"", "abc"),
            ("\"abc", "\"abc"),
            ("%6Fpaque", "opaque"),
            ("a%2Bb+c", "a+b+c"),
            ("bad%zz%4", "bad%zz%4"),
            ("%FF", "\u{FFFD}"),
            ("\"%22\"", "\""),
        ] {
            assert_eq!(normalize(raw), want, "{raw:?}");
        }
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn jwt_variants_share_one_message_and_in_place_tokens_are_not_copied() {
        let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64(br#"{"sub":"user-1","exp":1900000000}"#);
        let token = format!("{header}.{payload}.c2lnbmF0dXJl");
        let canonical = Canonical::of(&token);
        assert!(canonical.is_jwt());
        assert_eq!(
            canonical.message(),
            format!("{header}.{payload}").as_bytes()
        );
        assert!(
            canonical
                .jwt
                .as_ref()
                .is_some_and(|j| j.reencoded.is_none())
        );
        let standard = |s: &str| s.replace('-', "+").replace('_', "/");
        let variants = [
            format!("{header}.{payload}.c2lnbmF0dXJl=="),
            format!("{header}==.{payload}=.other-signature"),
            format!("{}.{}.x", standard(&header), standard(&payload)),
            format!("\"{token}\""),
            format!(" {token} "),
            token.replacen('.', "%2E", 2),
            format!("{header}.{payload}."),
        ];
        for variant in variants {
            assert_eq!(
                Canonical::of(&variant).message(),
                canonical.message(),
                "{variant}"
            );
        }
    }

    #[test]
    fn what_is_not_a_jwt_is_opaque() {
        for token in [
            "a.b.c",
            &format!("{}.{}.s", b64(br#"{"typ":"JWT"}"#), b64(b"{}")),
            &format!("{}.{}.s", b64(br#"["alg"]"#), b64(b"{}")),
            &format!("{}.!!.s", b64(br#"{"alg":"none"}"#)),
            &format!("{}.{}", b64(br#"{"alg":"none"}"#), b64(b"{}")),
            &format!("{}.{}.s.t.u", b64(br#"{"alg":"none"}"#), b64(b"{}")),
        ] {
            let canonical = Canonical::of(token);
            assert!(!canonical.is_jwt(), "{token}");
            assert_eq!(canonical.message(), token.as_bytes());
        }
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", Canonical::of("secret-session-value"));
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn an_unparsed_record_keeps_no_credential() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let line = format!(
            "{{\"time\":\"2026-11-23T12:00:05.878Z\",\"client_ip\":\"2001:db8::1\",\
             \"path\":\"/api/v1/me\",\"authorization\":\"Bearer {jwt}\",\
             \"cookie\":\"theme=dark; sid=-famcn3skhm1EckiourpPcYSiXK4Bule9nQySRB4N_o\",\
             \"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\",\"status\":20"
        );
        let redacted = String::from_utf8(redact_unparsed(line.as_bytes())).expect("utf-8");
        for secret in [
            jwt,
            "eyJzdWIiOiJhbGljZSJ9",
            "famcn3skhm1EckiourpPcYSiXK4Bule9nQySRB4N_o",
        ] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        // What says why the record failed stays readable.
        for kept in [
            "2026-11-23T12:00:05.878Z",
            "2001:db8::1",
            "/api/v1/me",
            "theme=dark; sid=[redacted]",
            "Bearer [redacted]",
            "Mozilla/5.0 (X11; Linux x86_64)",
            "\"status\":20",
        ] {
            assert!(redacted.contains(kept), "{kept} in {redacted}");
        }
        assert_eq!(redact_unparsed(b""), b"");
        assert_eq!(redact_unparsed(&[0xff; 40]), vec![0xff; 40]);
    }
}
