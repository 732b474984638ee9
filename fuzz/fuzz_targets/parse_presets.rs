//! Fuzzes `parse::Parser::parse` for every log preset (json, nginx, envoy, traefik, caddy).
//!
//! Input: one selector byte, then the log line. `j`, `n`, `e`, `t`, `c` pick the preset with
//! the default 64 KiB line limit; `J`, `N`, `E`, `T`, `C` the same preset with the smallest
//! limit the config accepts (256 bytes); any other byte picks `byte % 5` with the default
//! limit. The seeds in `fuzz/corpus/parse_presets/` are the presets' log lines from the unit
//! tests in `src/parse.rs`, each behind its selector letter.
//!
//! Asserts, besides "no panic":
//! - an error is never `future` (the parser reads no clock),
//!   and is `too_large` exactly when the line is longer than the limit;
//! - an `Ok(Some(event))` carries 1..=`MAX_CREDENTIALS` credentials; an upstream fingerprint
//!   stands alone; every raw token has a non-blank value;
//! - the event's fields are in their documented domains: time in 1970..=9999, canonical
//!   client IP (no IPv4-mapped IPv6), status 100..=999, no query left on the path, method and
//!   User-Agent trimmed and non-empty;
//! - a byte-order mark in front of the line changes nothing.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenwatch::config::{FieldOverrides, InputFormat};
use tokenwatch::credential::MAX_CREDENTIALS;
use tokenwatch::event::{AccessEvent, Credential};
use tokenwatch::parse::{ParseError, ParseReason, Parser};

const PRESETS: [InputFormat; 5] = [
    InputFormat::Json,
    InputFormat::Nginx,
    InputFormat::Envoy,
    InputFormat::Traefik,
    InputFormat::Caddy,
];
const DEFAULT_LIMIT: usize = 64 * 1024;
const SMALL_LIMIT: usize = 256;
/// 9999-12-31T23:59:59.999Z in epoch milliseconds.
const MAX_EVENT_MS: i64 = 253_402_300_799_999;

/// Preset index and line limit chosen by the selector byte.
fn select(byte: u8) -> (usize, usize) {
    match byte {
        b'j' => (0, DEFAULT_LIMIT),
        b'n' => (1, DEFAULT_LIMIT),
        b'e' => (2, DEFAULT_LIMIT),
        b't' => (3, DEFAULT_LIMIT),
        b'c' => (4, DEFAULT_LIMIT),
        b'J' => (0, SMALL_LIMIT),
        b'N' => (1, SMALL_LIMIT),
        b'E' => (2, SMALL_LIMIT),
        b'T' => (3, SMALL_LIMIT),
        b'C' => (4, SMALL_LIMIT),
        other => (usize::from(other) % 5, DEFAULT_LIMIT),
    }
}

/// The parser of preset `index` with line limit `limit`, built once.
fn parser(index: usize, limit: usize) -> &'static Parser {
    static PARSERS: OnceLock<Vec<(usize, usize, Parser)>> = OnceLock::new();
    let all = PARSERS.get_or_init(|| {
        let mut all = Vec::new();
        for (i, format) in PRESETS.into_iter().enumerate() {
            for limit in [
                DEFAULT_LIMIT,
                SMALL_LIMIT,
                DEFAULT_LIMIT + 3,
                SMALL_LIMIT + 3,
            ] {
                let parser = Parser::new(format, &FieldOverrides::default(), "sid", limit)
                    .expect("every preset builds");
                all.push((i, limit, parser));
            }
        }
        all
    });
    all.iter()
        .find(|(i, l, _)| (*i, *l) == (index, limit))
        .map(|(_, _, parser)| parser)
        .expect("built above")
}

fn check_event(event: &AccessEvent) {
    let n = event.credentials.len();
    assert!(
        (1..=MAX_CREDENTIALS).contains(&n),
        "{n} credentials in one event"
    );
    for credential in &event.credentials {
        match credential {
            Credential::Fingerprint(_) => assert_eq!(n, 1, "an upstream fingerprint stands alone"),
            Credential::Bearer(t) | Credential::Cookie(t) | Credential::Query(t) => {
                assert!(!t.expose().trim_ascii().is_empty(), "blank token collected");
            }
        }
    }
    assert!(
        (0..=MAX_EVENT_MS).contains(&event.time.0),
        "time {} out of range",
        event.time.0
    );
    assert_eq!(
        event.client_ip,
        event.client_ip.to_canonical(),
        "IPv4-mapped address kept"
    );
    if let Some(status) = event.status {
        assert!((100..=999).contains(&status), "status {status}");
    }
    if let Some(path) = &event.path {
        assert!(!path.contains('?'), "query left on the path");
    }
    for text in [&event.method, &event.user_agent].into_iter().flatten() {
        assert!(
            !text.is_empty() && text.trim() == text,
            "untrimmed {text:?}"
        );
    }
}

/// What must not change when a byte-order mark is put in front of the line.
fn shape(result: &Result<Option<AccessEvent>, ParseError>) -> String {
    match result {
        Err(ParseError::InvalidJson { .. }) => "invalid_json".to_owned(),
        Err(e) => format!("{e:?}"),
        Ok(None) => "anonymous".to_owned(),
        Ok(Some(e)) => format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            e.time,
            e.client_ip,
            e.method,
            e.path,
            e.status,
            e.user_agent,
            e.credentials
                .iter()
                .map(|c| match c {
                    Credential::Bearer(t) => format!("bearer {:?}", t.expose()),
                    Credential::Cookie(t) => format!("cookie {:?}", t.expose()),
                    Credential::Query(t) => format!("query {:?}", t.expose()),
                    Credential::Fingerprint(fp) => format!("fp {fp:?}"),
                })
                .collect::<Vec<_>>()
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, line)) = data.split_first() else {
        return;
    };
    let (preset, limit) = select(selector);
    let result = parser(preset, limit).parse(line);
    match &result {
        Err(error) => {
            assert_ne!(
                error.reason(),
                ParseReason::FutureTime,
                "the parser reads no clock"
            );
            assert_eq!(
                matches!(error, ParseError::TooLarge { .. }),
                line.len() > limit,
                "too_large iff longer than the limit"
            );
        }
        Ok(Some(event)) => check_event(event),
        Ok(None) => {}
    }
    if line.len() > limit || line.starts_with("\u{feff}".as_bytes()) {
        return;
    }
    let mut with_bom = "\u{feff}".as_bytes().to_vec();
    with_bom.extend_from_slice(line);
    let roomy = parser(preset, limit + 3);
    assert_eq!(
        shape(&roomy.parse(&with_bom)),
        shape(&result),
        "a byte-order mark changed the result"
    );
});
