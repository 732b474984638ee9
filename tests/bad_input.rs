//! Bad input never stops the pipeline: each bad record is counted under its reason, and the
//! good records after it are still processed (here: a stolen token is still revoked).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::Write;

use base64::Engine;
use common::*;
use tokenwatch::lab::world::NetKind;

fn count(stderr: &str, label: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_bad_record_is_counted_and_later_good_lines_still_processed() {
    // Lines up to 256 KiB are read whole so the 100 KiB token reaches identify.
    let f = Fixture::new("");
    let config = std::fs::read_to_string(&f.config).unwrap().replace(
        "format = \"json\"",
        "format = \"json\"\nmax_line_bytes = 262144",
    );
    std::fs::write(&f.config, config).unwrap();

    let berlin = ip("Berlin", NetKind::Residential, 1);
    let good_token = f.jwt("victim", at(0).secs());
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(r#"{"iss":"https://id.example.com","aud":"api","sub":"mallory","exp":1999999999}"#)
    );
    let huge_token = "A".repeat(100 * 1024);

    let mut log = Vec::new();
    let mut put = |bytes: &[u8]| {
        log.extend_from_slice(bytes);
        log.push(b'\n');
    };
    put(line(at(0), berlin, CHROME, &good_token, "/").as_bytes());
    put(br#"{"time":"2026-11-23T12:00:01Z","client_ip":"#); // truncated JSON
    put(&[0x00, 0xff, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x7f, 0x80]); // binary garbage
    put(&vec![b'x'; 1 << 20]); // a 1 MiB line
    put(b"{\"time\":\"2026-11-23T12:00:02Z\",\"client_ip\":\"10.0.0.1\",\"token\":\"\xc3\x28\"}"); // invalid UTF-8
    put(line(at(3), berlin, CHROME, &good_token, "/")
        .replace(&berlin.to_string(), "999.1.2.3")
        .as_bytes());
    put(line(at(4), berlin, CHROME, &good_token, "/")
        .replace(&at(4).to_rfc3339(), "yesterday-ish")
        .as_bytes());
    put(line(at(5), berlin, CHROME, &alg_none, "/").as_bytes());
    put(line(at(6), berlin, CHROME, &huge_token, "/").as_bytes());
    // Good lines after all of that: a stolen token, still detected.
    for i in 1..10 {
        put(line(at(i * 60), berlin, CHROME, &good_token, "/inbox").as_bytes());
    }
    put(line(
        at(700),
        ip("São Paulo", NetKind::AltResidential, 2),
        CHROME,
        &good_token,
        "/api",
    )
    .as_bytes());

    let path = f.path("bad.log");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&log)
        .unwrap();
    let (decisions, stderr) = f.replay_file(&path);

    // Truncated JSON is invalid JSON; binary garbage is invalid UTF-8 (or JSON). A record that
    // is valid JSON apart from a stray byte is repaired (U+FFFD) and processed, not dropped:
    // otherwise one bad byte in a User-Agent would hide a stolen token from detection.
    let invalid_json = count(&stderr, "parse error: invalid_json");
    let invalid_utf8 = count(&stderr, "parse error: invalid_utf8");
    assert!(invalid_json >= 1, "{stderr}");
    assert_eq!(invalid_json + invalid_utf8, 2, "{stderr}");
    assert_eq!(count(&stderr, "parse error: too_large"), 1, "{stderr}");
    assert_eq!(count(&stderr, "parse error: bad_client_ip"), 1, "{stderr}");
    assert_eq!(count(&stderr, "parse error: bad_time"), 1, "{stderr}");
    assert_eq!(count(&stderr, "token: alg_not_allowed"), 1, "{stderr}");
    assert_eq!(count(&stderr, "token: too_large"), 1, "{stderr}");
    assert_eq!(count(&stderr, "lines"), 19, "{stderr}");
    assert_eq!(
        count(&stderr, "processed"),
        12,
        "11 good lines + the repaired one\n{stderr}"
    );

    let fp = f.fingerprint(&good_token);
    let mine = about(&decisions, &fp);
    assert_eq!(mine.len(), 1, "{decisions:#?}");
    assert!(has_reason(mine[0], "impossible_travel"));
    // alg=none is rejected, never tracked as if valid: no decision about it.
    assert!(about(&decisions, &f.fingerprint(&alg_none)).is_empty());
}
