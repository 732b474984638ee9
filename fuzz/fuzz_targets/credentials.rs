//! Fuzzes credential extraction (`credential::Collector`) and the canonical form
//! (`credential::Canonical`, `identify::Fingerprinter`) on what one request can carry.
//!
//! Input: lines (lossy UTF-8, as the check API reads header bytes). The first byte of a line
//! says what the rest is: `A` an `Authorization` value, `C` a `Cookie` value (session cookie
//! `sid`), `Q` a request target or query string, `T` the log's bare `token` field; any other
//! byte picks one of the four by `byte % 4`. Seeds: `fuzz/corpus/credentials/`.
//!
//! Asserts, besides "no panic":
//! - extraction: never more than `MAX_CREDENTIALS` found, and `TooManyCredentials` exactly when
//!   the request carries more; one collector over every line finds what one collector per line
//!   finds, in order (nothing lost or invented by the cap); each value borrows from its line
//!   and is non-blank; a Bearer value follows a `Bearer` scheme; a query value holds no `&`/`#`;
//! - canonical form, for every token found (`n` is the token as a framework reads it):
//!   - the fingerprint of the raw token is that of its canonical form;
//!   - an opaque token's message is `n`;
//!   - a JWT's message re-parsed (with any signature) is a JWT with the same message, used in
//!     place (not copied), and its payload is the decoded second segment;
//!   - re-encodings that a framework reads back as `n` keep the fingerprint: every byte
//!     percent-encoded, some characters percent-encoded inside one pair of quotes, surrounding
//!     whitespace, quotes; for a JWT also `=` padding on every segment, the standard base64
//!     alphabet, and a different signature.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use tokenwatch::credential::{
    Canonical, Collector, MAX_CREDENTIALS, Source, TooManyCredentials, decode_segment,
};
use tokenwatch::identify::Fingerprinter;

const COOKIE: &str = "sid";
const PEPPER: &str = "fuzz-pepper-0123456789";
const WHITESPACE: [char; 5] = [' ', '\t', '\n', '\x0c', '\r'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Authorization,
    Cookie,
    Query,
    Bare,
}

impl Sink {
    fn of(byte: u8) -> Sink {
        match byte {
            b'A' => Sink::Authorization,
            b'C' => Sink::Cookie,
            b'Q' => Sink::Query,
            b'T' => Sink::Bare,
            other => {
                [Sink::Authorization, Sink::Cookie, Sink::Query, Sink::Bare][usize::from(other) % 4]
            }
        }
    }

    fn feed<'a>(self, collector: &mut Collector<'a>, value: &'a str) {
        let value = Cow::Borrowed(value);
        match self {
            Sink::Authorization => collector.authorization(value),
            Sink::Cookie => collector.cookies(value),
            Sink::Query => collector.query(value),
            Sink::Bare => collector.bare_token(value),
        }
    }
}

type Found<'a> = Result<Vec<(Source, Cow<'a, str>)>, TooManyCredentials>;

fn collect<'a>(lines: &[(Sink, &'a str)]) -> Found<'a> {
    let mut collector = Collector::new(COOKIE);
    for (sink, value) in lines {
        sink.feed(&mut collector, value);
    }
    collector.finish()
}

/// `value` is a slice of `line`; returns where it starts.
fn offset_in(value: &str, line: &str) -> usize {
    let start = value.as_ptr() as usize;
    let base = line.as_ptr() as usize;
    assert!(
        start >= base && start + value.len() <= base + line.len(),
        "a found value does not borrow from its line"
    );
    start - base
}

fn check_extraction<'a>(lines: &[(Sink, &'a str)]) -> Vec<Cow<'a, str>> {
    let mut expected = Vec::new();
    let mut total = 0usize;
    for line in lines {
        let (sink, text) = *line;
        match collect(std::slice::from_ref(line)) {
            Err(TooManyCredentials) => total += MAX_CREDENTIALS + 1,
            Ok(found) => {
                assert!(found.len() <= MAX_CREDENTIALS);
                total += found.len();
                for (source, value) in found {
                    let Cow::Borrowed(value) = value else {
                        panic!("a borrowed value was copied");
                    };
                    let at = offset_in(value, text);
                    assert!(!value.trim_ascii().is_empty(), "blank credential");
                    match sink {
                        Sink::Authorization => {
                            assert_eq!(source, Source::Bearer);
                            let scheme = text[..at].trim_ascii();
                            assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme {scheme:?}");
                            assert_eq!(value, value.trim_ascii());
                        }
                        Sink::Bare => assert_eq!(source, Source::Bearer),
                        Sink::Cookie => {
                            assert_eq!(source, Source::Cookie);
                            assert!(!value.contains([';', ',']));
                        }
                        Sink::Query => {
                            assert_eq!(source, Source::Query);
                            assert!(!value.contains(['&', '#']));
                        }
                    }
                    expected.push((source, value));
                }
            }
        }
    }
    match collect(lines) {
        Ok(found) => {
            assert!(total <= MAX_CREDENTIALS, "{total} found but no error");
            let found: Vec<_> = found.iter().map(|(s, v)| (*s, &**v)).collect();
            assert_eq!(found, expected, "one collector differs from one per line");
            expected
                .into_iter()
                .map(|(_, v)| Cow::Borrowed(v))
                .collect()
        }
        Err(TooManyCredentials) => {
            assert!(
                total > MAX_CREDENTIALS,
                "only {total} but TooManyCredentials"
            );
            // Canonicalize what a capped collector would still have seen.
            expected
                .into_iter()
                .take(MAX_CREDENTIALS)
                .map(|(_, v)| Cow::Borrowed(v))
                .collect()
        }
    }
}

/// Every byte as `%XX`.
fn percent_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Every `%` and every character picked by `seed` as `%XX`, the rest as it is.
fn percent_some(text: &str, seed: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if c == '%' || (i.wrapping_mul(7).wrapping_add(seed)) % 3 == 0 {
            let mut buf = [0u8; 4];
            out.push_str(&percent_all(c.encode_utf8(&mut buf)));
        } else {
            out.push(c);
        }
    }
    out
}

fn standard_alphabet(segment: &str) -> String {
    segment.replace('-', "+").replace('_', "/")
}

fn check_canonical(raw: &str, fingerprinter: &Fingerprinter, seed: usize) {
    let canonical = Canonical::of(raw);
    let fp = fingerprinter.fingerprint(raw.as_bytes());
    assert_eq!(fp, fingerprinter.fingerprint_canonical(&canonical));
    let n = canonical.token();

    let mut variants = vec![
        percent_all(n),
        format!(" \t\"{}\"\r\n", percent_all(n)),
        format!("\"{}\"", percent_some(n, seed)),
    ];
    if !n.contains('%') {
        variants.push(format!("\x0c\"{n}\" "));
        let quoted = n.len() >= 2 && n.starts_with('"') && n.ends_with('"');
        if !quoted && n.trim_matches(WHITESPACE) == n {
            variants.push(format!("  {n}\t"));
        }
    }

    if canonical.is_jwt() {
        let message = canonical.message();
        let message = std::str::from_utf8(message).expect("a JWT message is base64url text");
        assert!(
            message
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "message is not unpadded base64url"
        );
        let (header, payload) = message.split_once('.').expect("two segments");
        let again_text = format!("{message}.re-signed");
        let again = Canonical::of(&again_text);
        assert!(again.is_jwt(), "the canonical message is no longer a JWT");
        assert_eq!(
            again.message(),
            message.as_bytes(),
            "message not idempotent"
        );
        assert_eq!(
            again.message().as_ptr(),
            again_text.as_ptr(),
            "a canonical JWT was copied"
        );
        assert_eq!(
            canonical.jwt_payload(),
            decode_segment(payload).as_deref(),
            "payload is not the decoded second segment"
        );

        let parts: Vec<&str> = n.split('.').collect();
        let [h, p, s] = parts[..] else {
            panic!("a JWT has three segments");
        };
        variants.push(format!("{h}=.{p}==.AAAA="));
        variants.push(format!(
            "{}.{}.x+/",
            standard_alphabet(h),
            standard_alphabet(p)
        ));
        variants.push(format!("{h}.{p}.c2lnbmF0dXJl"));
        variants.push(format!("{h}.{p}."));
        // The signature is kept only where percent-decoding cannot turn it into more segments.
        if !s.contains('%') {
            variants.push(format!("{h}.{p}.{s}="));
            variants.push(format!("{header}.{payload}.{s}"));
            variants.push(format!(
                "{}.{}.{}",
                standard_alphabet(h),
                standard_alphabet(p),
                standard_alphabet(s)
            ));
        }
    } else {
        assert_eq!(canonical.message(), n.as_bytes(), "opaque message is not n");
    }

    for variant in variants {
        assert_eq!(
            fingerprinter.fingerprint(variant.as_bytes()),
            fp,
            "re-encoding {variant:?} of {n:?} changed the fingerprint"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<(Sink, &str)> = text
        .split('\n')
        .filter_map(|line| {
            let first = line.chars().next()?;
            let sink = Sink::of(u8::try_from(first).unwrap_or(first as u8));
            Some((sink, &line[first.len_utf8()..]))
        })
        .collect();
    let tokens = check_extraction(&lines);
    let fingerprinter = Fingerprinter::new(PEPPER);
    for (i, token) in tokens.iter().enumerate() {
        check_canonical(token, &fingerprinter, data.len() + i);
    }
});
