//! Unit tests of the parser: every preset, path syntax, timestamp, IP and status forms,
//! placeholders, credentials and every reject reason.

use super::path::{MAX_PATH_SEGMENTS, Segment};
use super::values::MAX_EVENT_MS;
use super::*;
use crate::event::EventTime;

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
        let expected_ms = i64::try_from(expected.unix_timestamp_nanos() / 1_000_000).expect("ms");
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
    let reasons: Vec<ParseReason> = every_variant.iter().map(ParseError::reason).collect();
    assert_eq!(
        reasons,
        ParseReason::ALL,
        "ALL lists every reason once, in order"
    );
    let mut codes: Vec<&str> = reasons.iter().map(|r| r.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), ParseReason::ALL.len(), "codes are distinct");
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
        br#"{"msec":"1700000000.123","remote_addr":"192.0.2.1","http_user_agent":"evil"#.to_vec();
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
