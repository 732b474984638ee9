//! Unit tests of the API: credential collection, errors, revocation requests, ingestion
//! splitting and readiness.

use axum::http::{HeaderMap, HeaderValue, Uri};

use super::auth::keys_match;
use super::check::{Credentials, credentials};
use super::ingest::split_lines;
use super::*;
use crate::event::SourceKind;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).expect("header"));
    }
    map
}

/// Name, request URI and headers, expected tokens (`None` = oversized).
type HeaderCase<'a> = (
    &'a str,
    &'a str,
    Vec<(&'static str, &'a str)>,
    Option<Vec<&'a str>>,
);

#[test]
fn credentials_are_every_bearer_cookie_and_access_token() {
    let big = "x".repeat(101);
    let (big_bearer, big_cookie) = (format!("Bearer {big}"), format!("sid={big}"));
    let decoys = (0..9)
        .map(|i| format!("sid=d{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let cases: Vec<HeaderCase<'_>> = vec![
        ("nothing", "/v1/check", vec![], Some(vec![])),
        (
            "bearer",
            "/v1/check",
            vec![("authorization", "Bearer abc")],
            Some(vec!["abc"]),
        ),
        (
            "scheme is case-insensitive, tab or spaces",
            "/v1/check",
            vec![("authorization", "bEaReR\t  abc  ")],
            Some(vec!["abc"]),
        ),
        (
            "every Authorization header, junk first",
            "/v1/check",
            vec![
                ("authorization", "Bearer junk"),
                ("authorization", "Bearer REV"),
            ],
            Some(vec!["junk", "REV"]),
        ),
        (
            "basic auth is not a token",
            "/v1/check",
            vec![("authorization", "Basic dXNlcjpwdw==")],
            Some(vec![]),
        ),
        (
            "empty bearer",
            "/v1/check",
            vec![("authorization", "Bearer ")],
            Some(vec![]),
        ),
        (
            "every session cookie across Cookie headers and separators, as sent",
            "/v1/check",
            vec![
                ("cookie", "theme=dark; sid=junk; sid=\"s-1\""),
                ("cookie", "a=b, sid=%6Fpaque"),
            ],
            Some(vec!["junk", "\"s-1\"", "%6Fpaque"]),
        ),
        (
            "a cookie whose name only ends in sid",
            "/v1/check",
            vec![("cookie", "xsid=s-1")],
            Some(vec![]),
        ),
        (
            "access_token in the check's query and in the original URI",
            "/v1/check?access_token=q1",
            vec![("x-original-uri", "/api/x?access_token=q2&y=1")],
            Some(vec!["q1", "q2"]),
        ),
        (
            "both",
            "/v1/check",
            vec![("authorization", "Bearer abc"), ("cookie", "sid=s-2")],
            Some(vec!["abc", "s-2"]),
        ),
        (
            "oversized bearer",
            "/v1/check",
            vec![("authorization", &big_bearer)],
            None,
        ),
        (
            "oversized cookie",
            "/v1/check",
            vec![("cookie", &big_cookie)],
            None,
        ),
        (
            "nine decoy cookies",
            "/v1/check",
            vec![("cookie", &decoys)],
            None,
        ),
    ];
    for (name, uri, pairs, want) in cases {
        let map = headers(&pairs);
        let uri: Uri = uri.parse().expect("uri");
        let got = match credentials(&map, &uri, "sid", 100) {
            Credentials::None => Some(vec![]),
            Credentials::Oversized => None,
            Credentials::Tokens(tokens) => {
                Some(tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>())
            }
        };
        let want = want.map(|w| w.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{name}");
    }
    let huge_cookie = format!("other={}", "y".repeat(MAX_COOKIE_BYTES));
    let map = headers(&[("cookie", &huge_cookie)]);
    let uri: Uri = "/v1/check".parse().expect("uri");
    assert_eq!(credentials(&map, &uri, "sid", 100), Credentials::Oversized);
}

#[test]
fn ndjson_lines_are_split_capped_and_flagged() {
    let body = b"{\"a\":1}\r\n\n   \n{\"b\":22222}\n{\"c\":3}";
    let lines = split_lines(body, 8);
    let got: Vec<(&[u8], bool)> = lines
        .iter()
        .map(|l| (l.bytes.as_slice(), l.truncated))
        .collect();
    assert_eq!(
        got,
        vec![
            (&b"{\"a\":1}"[..], false),
            (&b"{\"b\":222"[..], true),
            (&b"{\"c\":3}"[..], false),
        ]
    );
    assert!(lines.iter().all(|l| l.source == SourceKind::Http));
}

#[test]
fn keys_match_only_the_exact_key() {
    let cases = [
        ("admin-key-0123456789", true),
        ("admin-key-012345678", false),
        ("admin-key-01234567890", false),
        ("", false),
    ];
    for (presented, want) in cases {
        assert_eq!(
            keys_match(presented.as_bytes(), b"admin-key-0123456789"),
            want,
            "{presented:?}"
        );
    }
}

#[test]
fn readiness_from_config_waits_only_for_what_is_configured() {
    let cases = [
        ("role = \"all\"\n", vec!["denylist"]),
        (
            "role = \"all\"\n[geoip]\ncity_db = \"/c.mmdb\"\n[detect]\nmodel = \"m.json\"\n",
            vec!["denylist", "geoip", "model"],
        ),
        // `role = "api"` is a config error until distributed mode (issue 16).
        (
            "role = \"all\"\n[denylist]\njournal = \"deny.journal\"\n",
            vec!["denylist", "journal"],
        ),
    ];
    for (text, want) in cases {
        let text = text.replacen('\n', "\n[tokens]\npepper = \"test-pepper-0123456789\"\n", 1);
        let config = Config::parse(&text, std::path::Path::new("/etc/tw")).expect(&text);
        let secrets = config.validate(&[("X", "y")]).expect("valid");
        let denylist = Arc::new(Denylist::open(None).expect("memory"));
        let state = ApiState::from_config(&config, &secrets, denylist, Arc::new(Metrics::new()));
        assert_eq!(state.readiness.missing(), want, "{text}");
    }
}

#[test]
fn readiness_names_what_is_missing() {
    let readiness = Readiness::default();
    assert_eq!(readiness.missing(), vec!["denylist", "geoip", "model"]);
    assert!(readiness.mark_ready(ReadyFlag::Geoip));
    assert!(
        !readiness.mark_ready(ReadyFlag::Journal),
        "not a required flag"
    );
    assert_eq!(readiness.missing(), vec!["denylist", "model"]);
    readiness.mark_ready(ReadyFlag::Denylist);
    readiness.mark_ready(ReadyFlag::Model);
    assert!(readiness.is_ready());
    readiness.set(ReadyFlag::Model, false);
    assert!(!readiness.is_ready());
}
