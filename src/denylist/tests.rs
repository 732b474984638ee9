//! Unit tests for the denylist and its journal.

use super::*;

const NOW: i64 = 1_800_000_000_000;
const HOUR_MS: i64 = 3_600_000;
const ISS: &str = "https://id.example.com";

fn fp(byte: u8) -> Fingerprint {
    Fingerprint([byte; 16])
}

fn entry(origin: Origin, expires_at_ms: i64) -> Entry {
    Entry {
        action: EntryAction::Revoke,
        reasons: vec!["test".into()],
        origin,
        created_at_ms: NOW,
        expires_at_ms,
        not_before: None,
        score: None,
    }
}

fn live(origin: Origin) -> Entry {
    entry(origin, NOW + HOUR_MS)
}

fn key(text: &str) -> DenyKey {
    text.parse().expect("valid key")
}

fn query_for(claims: &[(&str, &str)], iat: Option<i64>) -> CheckQuery {
    let get = |name: &str| {
        claims
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    CheckQuery {
        fingerprint: None,
        iss: get("iss"),
        jti: get("jti"),
        sid: get("sid"),
        sub: get("sub"),
        iat,
    }
}

/// The journal's record lines (after the header).
fn journal_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("journal readable");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(
        header.contains(r#""journal":"tokenwatch-denylist""#),
        "{header}"
    );
    lines.map(str::to_owned).collect()
}

#[test]
fn keys_round_trip_through_text() {
    let cases = [
        DenyKey::Fingerprint(fp(0xab)),
        DenyKey::Jti {
            iss: ISS.into(),
            jti: "b6f3c2d0-1".into(),
        },
        DenyKey::Sid {
            iss: "https://id.example.com:8443/realms/main".into(),
            sid: "s-42".into(),
        },
        DenyKey::Sub {
            iss: "urn:example:issuer".into(),
            sub: "user:123".into(),
        },
        DenyKey::Sub {
            iss: ISS.into(),
            sub: "100%:done%3A".into(),
        },
        DenyKey::Jti {
            iss: "a".into(),
            jti: "é✓".into(),
        },
    ];
    for key in cases {
        let text = key.to_string();
        assert_eq!(text.parse::<DenyKey>(), Ok(key.clone()), "via {text:?}");
        let json = serde_json::to_string(&key).expect("serializes");
        let back: DenyKey = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, key, "via JSON {json}");
    }
}

#[test]
fn key_text_parses_as_documented() {
    let fp_hex = "9f86d081884c7d659a2feaa0c55ad015";
    let ok = [
        (
            "fp:9F86D081884C7D659A2FEAA0C55AD015",
            DenyKey::Fingerprint(Fingerprint::from_hex(fp_hex).expect("hex")),
            format!("fp:{fp_hex}"),
        ),
        (
            "sub:https://id.example.com:user-123",
            DenyKey::Sub {
                iss: ISS.into(),
                sub: "user-123".into(),
            },
            "sub:https://id.example.com:user-123".into(),
        ),
        (
            "sid:https://id.example.com:8443:abc",
            DenyKey::Sid {
                iss: "https://id.example.com:8443".into(),
                sid: "abc".into(),
            },
            "sid:https://id.example.com:8443:abc".into(),
        ),
        (
            // Only %25 and %3A are escapes; other percent signs stay literal.
            "jti:iss:a%3ab%25c%41%",
            DenyKey::Jti {
                iss: "iss".into(),
                jti: "a:b%c%41%".into(),
            },
            "jti:iss:a%3Ab%25c%2541%25".into(),
        ),
    ];
    for (text, want, canonical) in ok {
        let got: DenyKey = text.parse().expect(text);
        assert_eq!(got, want, "{text}");
        assert_eq!(got.to_string(), canonical, "{text}");
    }
    let too_long = format!("sub:{ISS}:{}", "x".repeat(MAX_KEY_BYTES));
    let bad: [(&str, KeyParseError); 9] = [
        ("", KeyParseError::UnknownKind),
        (
            "9f86d081884c7d659a2feaa0c55ad015",
            KeyParseError::UnknownKind,
        ),
        ("kid:a:b", KeyParseError::UnknownKind),
        ("fp:9f86", KeyParseError::BadFingerprint),
        (
            "fp:zz86d081884c7d659a2feaa0c55ad015",
            KeyParseError::BadFingerprint,
        ),
        ("sub:user-123", KeyParseError::MissingPart),
        ("jti::abc", KeyParseError::MissingPart),
        ("jti:https://x:", KeyParseError::MissingPart),
        ("sub:iss:line\nbreak", KeyParseError::ControlCharacter),
    ];
    for (text, want) in bad {
        assert_eq!(text.parse::<DenyKey>(), Err(want), "{text:?}");
    }
    assert_eq!(
        too_long.parse::<DenyKey>(),
        Err(KeyParseError::TooLong),
        "long key"
    );
}

/// Found by the `journal` fuzz target: a lone `%` is read literally but written as `%25`, so a
/// key at the length limit used to be accepted, journaled two bytes too long, and then refused
/// when the journal was read back — the daemon would not start.
#[test]
fn a_key_is_refused_when_its_written_form_is_over_the_limit() {
    let prefix = format!("jti:{ISS}:");
    let fits = format!("{prefix}{}", "x".repeat(MAX_KEY_BYTES - prefix.len()));
    let lone_percent = format!("{}%", &fits[..fits.len() - 1]);
    let colon_escape = format!("{}%3A", &fits[..fits.len() - 3]);
    assert_eq!(lone_percent.len(), MAX_KEY_BYTES);
    assert_eq!(
        lone_percent.parse::<DenyKey>(),
        Err(KeyParseError::TooLong),
        "a lone % is written as %25"
    );
    for text in [&fits, &colon_escape] {
        let key: DenyKey = text.parse().expect("fits as written");
        assert!(key.to_string().len() <= MAX_KEY_BYTES, "{text}");
    }

    // Both keys at the limit survive a journal round trip.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("deny.journal");
    let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
    for text in [&fits, &colon_escape] {
        denylist
            .revoke(key(text), live(Origin::Admin))
            .expect("revoke");
    }
    drop(denylist);
    let reopened = Denylist::open_at(Some(&path), NOW).expect("the journal reads back");
    for text in [&fits, &colon_escape] {
        assert!(reopened.get(&key(text)).is_some(), "{text}");
    }
}

#[test]
fn check_finds_each_key_kind() {
    let denylist = Denylist::open(None).expect("memory");
    denylist
        .revoke_many(vec![
            (DenyKey::Fingerprint(fp(1)), live(Origin::Detector)),
            (key(&format!("jti:{ISS}:j-1")), live(Origin::Admin)),
            (key(&format!("sid:{ISS}:s-1")), live(Origin::Admin)),
            (key(&format!("sub:{ISS}:u-1")), live(Origin::Admin)),
        ])
        .expect("revoke");
    let cases: [(&str, CheckQuery, Option<&str>); 8] = [
        (
            "fingerprint",
            CheckQuery {
                fingerprint: Some(fp(1)),
                ..CheckQuery::default()
            },
            Some("fp:01010101010101010101010101010101"),
        ),
        (
            "other fingerprint",
            CheckQuery {
                fingerprint: Some(fp(2)),
                ..CheckQuery::default()
            },
            None,
        ),
        (
            "jti",
            query_for(&[("iss", ISS), ("jti", "j-1")], Some(0)),
            Some("jti:https://id.example.com:j-1"),
        ),
        (
            "sid",
            query_for(&[("iss", ISS), ("sid", "s-1"), ("jti", "j-9")], Some(0)),
            Some("sid:https://id.example.com:s-1"),
        ),
        (
            "sub",
            query_for(&[("iss", ISS), ("sub", "u-1")], Some(0)),
            Some("sub:https://id.example.com:u-1"),
        ),
        (
            "same ids, other issuer",
            query_for(
                &[
                    ("iss", "https://other.example.com"),
                    ("jti", "j-1"),
                    ("sid", "s-1"),
                    ("sub", "u-1"),
                ],
                Some(0),
            ),
            None,
        ),
        (
            "no issuer: named keys cannot match",
            query_for(&[("jti", "j-1"), ("sub", "u-1")], Some(0)),
            None,
        ),
        (
            "a jti value is not a sid",
            query_for(&[("iss", ISS), ("sid", "j-1")], Some(0)),
            None,
        ),
    ];
    for (name, query, want) in cases {
        let got = denylist.check(&query, NOW).map(|(k, _)| k.to_string());
        assert_eq!(got.as_deref(), want, "{name}");
    }
}

#[test]
fn check_prefers_fingerprint_then_jti_sid_sub() {
    let denylist = Denylist::open(None).expect("memory");
    for text in [
        format!("sub:{ISS}:u"),
        format!("sid:{ISS}:s"),
        format!("jti:{ISS}:j"),
    ] {
        denylist.revoke(key(&text), live(Origin::Admin)).expect("r");
    }
    denylist
        .revoke(DenyKey::Fingerprint(fp(3)), live(Origin::Admin))
        .expect("r");
    let mut query = query_for(
        &[("iss", ISS), ("jti", "j"), ("sid", "s"), ("sub", "u")],
        None,
    );
    query.fingerprint = Some(fp(3));
    let order = ["fp", "jti", "sid", "sub"];
    for expected in order {
        let (hit, _) = denylist.check(&query, NOW).expect("hit");
        assert_eq!(hit.kind(), expected);
        denylist.unrevoke(&hit, false).expect("unrevoke");
    }
    assert!(denylist.check(&query, NOW).is_none());
}

#[test]
fn sub_entries_cover_tokens_issued_before_not_before() {
    let not_before = NOW / 1000;
    let cases = [
        (
            "issued a second before",
            Some(not_before),
            Some(not_before - 1),
            true,
        ),
        (
            "issued at not_before",
            Some(not_before),
            Some(not_before),
            false,
        ),
        (
            "issued after",
            Some(not_before),
            Some(not_before + 60),
            false,
        ),
        ("token without iat", Some(not_before), None, true),
        (
            "entry without not_before",
            None,
            Some(not_before + 60),
            true,
        ),
    ];
    for (name, entry_not_before, iat, revoked) in cases {
        let denylist = Denylist::open(None).expect("memory");
        let mut e = live(Origin::Admin);
        e.not_before = entry_not_before;
        denylist.revoke(key(&format!("sub:{ISS}:u")), e).expect("r");
        let query = query_for(&[("iss", ISS), ("sub", "u")], iat);
        assert_eq!(denylist.check(&query, NOW).is_some(), revoked, "{name}");
    }
}

#[test]
fn expired_entries_never_match() {
    let cases = [
        ("expires in 1 ms", NOW + 1, true),
        ("expires now", NOW, false),
        ("expired", NOW - HOUR_MS, false),
    ];
    for (name, expires_at_ms, revoked) in cases {
        let denylist = Denylist::open(None).expect("memory");
        denylist
            .revoke(
                DenyKey::Fingerprint(fp(4)),
                entry(Origin::Admin, expires_at_ms),
            )
            .expect("r");
        denylist
            .revoke(
                key(&format!("jti:{ISS}:j")),
                entry(Origin::Admin, expires_at_ms),
            )
            .expect("r");
        let fp_query = CheckQuery {
            fingerprint: Some(fp(4)),
            ..CheckQuery::default()
        };
        let jti_query = query_for(&[("iss", ISS), ("jti", "j")], None);
        assert_eq!(denylist.check(&fp_query, NOW).is_some(), revoked, "{name}");
        assert_eq!(denylist.check(&jti_query, NOW).is_some(), revoked, "{name}");
        assert_eq!(denylist.len(), 2, "held until purged: {name}");
        let purged = denylist.purge_expired(NOW);
        assert_eq!(purged, if revoked { 0 } else { 2 }, "{name}");
    }
}

#[test]
fn allowlist_stops_detector_revocations_until_an_admin_revokes() {
    let denylist = Denylist::open(None).expect("memory");
    let token = DenyKey::Fingerprint(fp(5));
    denylist
        .revoke(token.clone(), live(Origin::Detector))
        .expect("r");
    assert!(denylist.unrevoke(&token, true).expect("unrevoke"));
    assert!(denylist.is_allowlisted(fp(5)));
    assert_eq!(denylist.allowlisted_until(fp(5)), Some(NOW + HOUR_MS));
    assert!(denylist.get(&token).is_none());

    assert!(
        !denylist
            .revoke(token.clone(), live(Origin::Detector))
            .expect("r")
    );
    assert!(denylist.get(&token).is_none(), "detector skipped");

    assert!(
        denylist
            .revoke(token.clone(), live(Origin::Admin))
            .expect("r")
    );
    assert!(denylist.get(&token).is_some(), "admin applies");
    assert!(!denylist.is_allowlisted(fp(5)), "admin lifts the allowlist");

    let sub = key(&format!("sub:{ISS}:u"));
    assert!(matches!(
        denylist.unrevoke(&sub, true),
        Err(DenylistError::NotAFingerprint)
    ));
    assert!(!denylist.unrevoke(&sub, false).expect("absent is fine"));
    // Allowlisting a token that was never revoked lasts until an admin revokes it.
    assert!(
        !denylist
            .unrevoke(&DenyKey::Fingerprint(fp(6)), true)
            .expect("u")
    );
    assert_eq!(denylist.allowlisted_until(fp(6)), Some(i64::MAX));
}

#[test]
fn journal_replays_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let sub_key = key(&format!("sub:{ISS}:user:1"));
    let mut sub_entry = live(Origin::Admin);
    sub_entry.not_before = Some(NOW / 1000);
    sub_entry.score = Some(0.5);
    {
        let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
        assert!(denylist.replay_stats().created);
        denylist
            .revoke(DenyKey::Fingerprint(fp(7)), live(Origin::Detector))
            .expect("r");
        denylist
            .revoke(sub_key.clone(), sub_entry.clone())
            .expect("r");
        denylist
            .revoke(key(&format!("jti:{ISS}:gone")), live(Origin::Admin))
            .expect("r");
        denylist
            .unrevoke(&key(&format!("jti:{ISS}:gone")), false)
            .expect("u");
        denylist
            .revoke(DenyKey::Fingerprint(fp(8)), live(Origin::Detector))
            .expect("r");
        denylist
            .unrevoke(&DenyKey::Fingerprint(fp(8)), true)
            .expect("u");
        assert_eq!(journal_lines(&path).len(), 7);
    }
    let reopened = Denylist::open_at(Some(&path), NOW).expect("reopen");
    assert_eq!(reopened.replay_stats().records, 7);
    assert_eq!(reopened.replay_stats().torn_line, None);
    assert_eq!(reopened.len(), 2);
    assert_eq!(
        reopened.get(&DenyKey::Fingerprint(fp(7))),
        Some(live(Origin::Detector))
    );
    assert_eq!(reopened.get(&sub_key), Some(sub_entry));
    assert!(reopened.get(&key(&format!("jti:{ISS}:gone"))).is_none());
    assert!(reopened.is_allowlisted(fp(8)));
    // Compacted on open: two revocations and one allowlisting.
    assert_eq!(journal_lines(&path).len(), 3);
}

#[test]
fn corrupt_middle_line_of_a_format_1_journal_is_an_error_naming_the_line() {
    let good = format!(
        "{{\"op\":\"revoke\",\"key\":\"fp:{}\",\"entry\":{}}}\n",
        fp(11),
        serde_json::to_string(&live(Origin::Admin)).expect("json")
    );
    let long = format!("{}\n", "x".repeat(MAX_RECORD_BYTES + 10));
    let cases = [
        ("garbage", format!("{good}not json\n{good}"), 2, "expected"),
        (
            "unknown op",
            format!(
                "{good}{good}{{\"op\":\"explode\",\"key\":\"fp:{}\"}}\n{good}",
                fp(1)
            ),
            3,
            "explode",
        ),
        (
            "bad key",
            format!("{{\"op\":\"unrevoke\",\"key\":\"fp:12\"}}\n{good}"),
            1,
            "32 hex",
        ),
        (
            "allow for a sub key",
            format!("{{\"op\":\"allow\",\"key\":\"sub:i:u\",\"until_ms\":1}}\n{good}"),
            1,
            "not fp:",
        ),
        (
            "over the size cap",
            format!("{good}{long}{good}"),
            2,
            "longer than",
        ),
    ];
    for (name, text, line, reason_part) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deny.journal");
        std::fs::write(&path, text).expect("write");
        let err = Denylist::open_at(Some(&path), NOW).expect_err(name);
        assert_eq!(err.code(), "corrupt", "{name}");
        match &err {
            DenylistError::Corrupt {
                line: got, reason, ..
            } => {
                assert_eq!(*got, line, "{name}");
                assert!(reason.contains(reason_part), "{name}: {reason}");
            }
            other => panic!("{name}: {other}"),
        }
        assert!(
            err.to_string().contains(&format!("line {line}")),
            "{name}: {err}"
        );
        // The damaged file is left alone for the operator.
        assert!(
            std::fs::read_to_string(&path)
                .expect("kept")
                .contains(&good)
        );
    }
}

#[test]
fn compaction_drops_expired_and_unrevoked_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    {
        let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
        denylist
            .revoke(
                DenyKey::Fingerprint(fp(12)),
                entry(Origin::Detector, NOW + 1000),
            )
            .expect("r");
        denylist
            .revoke(
                DenyKey::Fingerprint(fp(13)),
                entry(Origin::Detector, NOW + HOUR_MS),
            )
            .expect("r");
        denylist
            .revoke(DenyKey::Fingerprint(fp(14)), live(Origin::Admin))
            .expect("r");
        denylist
            .unrevoke(&DenyKey::Fingerprint(fp(14)), false)
            .expect("u");
    }
    let later = NOW + 2000;
    let reopened = Denylist::open_at(Some(&path), later).expect("reopen");
    assert_eq!(reopened.replay_stats().expired_skipped, 1);
    let lines = journal_lines(&path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&fp(13).to_hex()));
    assert!(!dir.path().join("deny.journal.compact-tmp").exists());

    // Runtime compaction does the same without a restart.
    reopened
        .revoke(
            DenyKey::Fingerprint(fp(15)),
            entry(Origin::Admin, later + 10),
        )
        .expect("r");
    assert_eq!(journal_lines(&path).len(), 2);
    reopened.compact(later + 10).expect("compact");
    assert_eq!(journal_lines(&path).len(), 1);
    reopened
        .revoke(DenyKey::Fingerprint(fp(16)), live(Origin::Admin))
        .expect("appends after compaction");
    assert_eq!(journal_lines(&path).len(), 2);
}

#[test]
fn group_commit_writes_every_entry_with_one_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let metrics = Arc::new(Metrics::new());
    let denylist = Denylist::open_at(Some(&path), NOW)
        .expect("open")
        .with_metrics(metrics.clone());
    let batch: Vec<_> = (0..100u8)
        .map(|i| (DenyKey::Fingerprint(fp(i)), live(Origin::Detector)))
        .collect();
    assert_eq!(denylist.revoke_many(batch).expect("batch"), 100);
    assert_eq!(journal_lines(&path).len(), 100);
    let fsyncs = metrics
        .journal_fsync
        .with_label_values(&["revoke"])
        .get_sample_count();
    assert_eq!(fsyncs, 1);
    assert_eq!(metrics.denylist_entries.get(), 100);
    drop(denylist);
    let reopened = Denylist::open_at(Some(&path), NOW).expect("reopen");
    assert_eq!(reopened.len(), 100);
}

#[test]
fn oversized_record_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
    let mut huge = live(Origin::Admin);
    huge.reasons = vec!["x".repeat(MAX_RECORD_BYTES)];
    let err = denylist
        .revoke(DenyKey::Fingerprint(fp(17)), huge)
        .expect_err("too large");
    assert_eq!(err.code(), "record_too_large");
    assert!(denylist.is_empty());
    assert!(journal_lines(&path).is_empty());
}

#[test]
fn maintain_compacts_only_when_the_journal_is_mostly_dead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
    let token = DenyKey::Fingerprint(fp(18));
    for _ in 0..600 {
        denylist
            .revoke(token.clone(), live(Origin::Admin))
            .expect("r");
        denylist.unrevoke(&token, false).expect("u");
    }
    assert!(
        denylist.maintain(NOW).expect("maintain"),
        "1200 dead records"
    );
    assert!(journal_lines(&path).is_empty());
    assert!(!denylist.maintain(NOW).expect("maintain"), "nothing to do");
}

#[test]
fn snapshot_lists_every_entry() {
    let denylist = Denylist::open(None).expect("memory");
    denylist
        .revoke_many(vec![
            (DenyKey::Fingerprint(fp(19)), live(Origin::Detector)),
            (key(&format!("sid:{ISS}:s")), entry(Origin::Admin, NOW - 1)),
        ])
        .expect("r");
    let mut keys: Vec<String> = denylist
        .snapshot()
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "fp:13131313131313131313131313131313".to_string(),
            format!("sid:{ISS}:s")
        ]
    );
}

#[test]
fn a_second_opener_of_a_journal_is_refused_naming_the_holders_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let first = Denylist::open_at(Some(&path), NOW).expect("first");
    let lock = dir.path().join("deny.journal.lock");
    assert_eq!(first.lock_path(), Some(lock.as_path()));
    assert_eq!(
        std::fs::read_to_string(&lock).expect("lock file").trim(),
        std::process::id().to_string()
    );

    // flock locks belong to the open file, so a second open in this process conflicts just
    // as a second process would.
    let err = Denylist::open_at(Some(&path), NOW).expect_err("second opener refused");
    assert_eq!(err.code(), "locked");
    let pid = std::process::id();
    match &err {
        DenylistError::Locked { pid: got, .. } => assert_eq!(*got, Some(pid)),
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("pid {pid}")), "{text}");
    assert!(text.contains("deny.journal.lock"), "{text}");

    // The first keeps working, and the lock goes with it.
    first
        .revoke(DenyKey::Fingerprint(fp(20)), live(Origin::Admin))
        .expect("first still writes");
    drop(first);
    let reopened = Denylist::open_at(Some(&path), NOW).expect("lock released on drop");
    assert!(reopened.get(&DenyKey::Fingerprint(fp(20))).is_some());
}

/// A journal written by this release in `dir`, holding fp(21..=25) revoked (line 1 is the
/// header, line n + 1 the revocation of fp(20 + n)). Returns its path and bytes.
fn written_journal(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("deny.journal");
    let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
    for byte in 21..=25u8 {
        denylist
            .revoke(DenyKey::Fingerprint(fp(byte)), live(Origin::Detector))
            .expect("r");
    }
    drop(denylist);
    let bytes = std::fs::read(&path).expect("read");
    (path, bytes)
}

/// Byte offset of the start of 1-based line `line`.
fn line_offset(bytes: &[u8], line: u64) -> usize {
    if line == 1 {
        return 0;
    }
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(line as usize - 2)
        .map(|(i, _)| i + 1)
        .expect("line exists")
}

/// Files in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

fn assert_corrupt_at(err: &DenylistError, line: u64, offset: usize, reason_part: &str) {
    match err {
        DenylistError::Corrupt {
            line: got_line,
            offset: got_offset,
            reason,
            ..
        } => {
            assert_eq!(*got_line, line, "{err}");
            assert_eq!(*got_offset, offset as u64, "{err}");
            assert!(reason.contains(reason_part), "{reason}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("tokenwatch journal-repair --config"),
        "{text}"
    );
    assert!(text.contains("deny.journal"), "{text}");
    assert!(
        text.contains(&format!("line {line} (byte offset {offset})")),
        "{text}"
    );
}

#[test]
fn journal_starts_with_a_versioned_header_and_checksums_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, bytes) = written_journal(dir.path());
    let text = String::from_utf8(bytes).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let (crc, header) = lines[0].split_once(' ').expect("crc, json");
    assert_eq!(
        header,
        r#"{"journal":"tokenwatch-denylist","format":2,"fingerprint":2}"#
    );
    for line in &lines {
        let (crc_text, json) = line.split_once(' ').expect("crc, json");
        assert_eq!(crc_text.len(), 8, "{line}");
        assert_eq!(
            u32::from_str_radix(crc_text, 16).expect("hex"),
            crc32c::crc32c(json.as_bytes()),
            "{line}"
        );
    }
    // Computed outside Rust (a bitwise CRC-32C, polynomial 0x82F63B78, in Python), so other
    // tools can check the format: the header line is always these bytes.
    assert_eq!(crc, "824c598d");
    // The CRC-32C check value (RFC 3720 B.4).
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn a_flipped_byte_inside_a_key_is_refused_and_the_file_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, mut bytes) = written_journal(dir.path());
    // Line 3 is fp(22)'s revocation: turn one hex digit of its key into another.
    let start = line_offset(&bytes, 3);
    let key_at = start
        + bytes[start..]
            .windows(3)
            .position(|w| w == b"fp:")
            .expect("key")
        + 3;
    assert_eq!(bytes[key_at], b'1');
    bytes[key_at] = b'3';
    std::fs::write(&path, &bytes).expect("write");

    let err = Denylist::open_at(Some(&path), NOW).expect_err("flipped byte refused");
    assert_eq!(err.code(), "corrupt");
    assert_corrupt_at(&err, 3, start, "checksum mismatch");
    assert_eq!(std::fs::read(&path).expect("kept"), bytes, "left untouched");
    assert!(files_starting(dir.path(), "deny.journal.torn").is_empty());
}

#[test]
fn nul_bytes_are_refused_wherever_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, good) = written_journal(dir.path());
    let line4 = line_offset(&good, 4);
    let nuls = vec![0u8; 4096];
    let cases: [(&str, Vec<u8>, u64, usize); 4] = [
        ("a file of NULs", nuls.clone(), 1, 0),
        (
            "NULs over a record in the middle",
            [&good[..line4], &nuls[..100], &b"\n"[..], &good[line4..]].concat(),
            4,
            line4,
        ),
        (
            "NULs where records should follow the header",
            [&good[..line_offset(&good, 2)], &nuls[..]].concat(),
            2,
            line_offset(&good, 2),
        ),
        (
            "a NUL tail after the last record",
            [&good[..], &nuls[..512]].concat(),
            7,
            good.len(),
        ),
    ];
    for (name, bytes, line, offset) in cases {
        std::fs::write(&path, &bytes).expect("write");
        let err = Denylist::open_at(Some(&path), NOW).expect_err(name);
        assert_eq!(err.code(), "corrupt", "{name}: {err}");
        assert_corrupt_at(&err, line, offset, "NUL bytes");
        assert_eq!(
            std::fs::read(&path).expect("kept"),
            bytes,
            "{name}: never shrunk"
        );
    }
}

#[test]
fn a_bad_header_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, good) = written_journal(dir.path());
    let line2 = line_offset(&good, 2);
    let newer = {
        let json = r#"{"journal":"tokenwatch-denylist","format":3,"fingerprint":3}"#;
        format!("{:08x} {json}\n", crc32c::crc32c(json.as_bytes()))
    };
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "header lost: records only",
            good[line2..].to_vec(),
            "not a journal header",
        ),
        (
            "header checksum",
            [&b"00000000"[..], &good[8..]].concat(),
            "checksum mismatch",
        ),
        (
            "garbage",
            [&b"hello world\n"[..], &good[line2..]].concat(),
            "not a checksummed record",
        ),
    ];
    for (name, bytes, reason) in cases {
        std::fs::write(&path, &bytes).expect("write");
        let err = Denylist::open_at(Some(&path), NOW).expect_err(name);
        assert_corrupt_at(&err, 1, 0, reason);
        assert!(err.to_string().contains("bad header"), "{name}: {err}");
    }
    std::fs::write(&path, [newer.as_bytes(), &good[line2..]].concat()).expect("write");
    let err = Denylist::open_at(Some(&path), NOW).expect_err("newer format");
    assert_eq!(err.code(), "newer_format", "{err}");
    assert!(err.to_string().contains("format 3"), "{err}");
}

#[test]
fn a_torn_final_record_is_cut_kept_in_a_side_file_and_counted() {
    let tails: [(&str, &[u8]); 4] = [
        (
            "cut inside a record",
            b"1b2c3d4e {\"op\":\"revoke\",\"key\":\"fp:0909",
        ),
        ("cut inside the checksum", b"1b2c"),
        (
            "a complete line with a bad checksum",
            b"00000000 {\"op\":\"rev\"}\n",
        ),
        (
            "a record without checksum",
            b"{\"op\":\"revoke\",\"key\":\"fp:09090909090909090909090909090909\"}\n",
        ),
    ];
    for (name, tail) in tails {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, good) = written_journal(dir.path());
        let mut file = OpenOptions::new().append(true).open(&path).expect("append");
        file.write_all(tail).expect("write tail");
        drop(file);

        let metrics = Arc::new(Metrics::new());
        let reopened = Denylist::open_at(Some(&path), NOW)
            .expect("torn tail tolerated")
            .with_metrics(metrics.clone());
        let stats = reopened.replay_stats();
        assert_eq!(stats.torn_line, Some(7), "{name}");
        assert_eq!(stats.torn_offset, Some(good.len() as u64), "{name}");
        assert_eq!(stats.torn_bytes, tail.len() as u64, "{name}");
        assert_eq!(stats.records, 5, "{name}");
        assert_eq!(reopened.len(), 5, "{name}");
        assert_eq!(metrics.journal_torn_records.get(), 1, "{name}");
        assert!(reopened.is_writable(), "{name}");
        let saved = stats.torn_saved.expect("side file");
        assert_eq!(
            files_starting(dir.path(), "deny.journal.torn-"),
            vec![saved.clone()]
        );
        assert_eq!(std::fs::read(&saved).expect("side file"), tail, "{name}");
        drop(reopened);
        // The rewrite removed the torn bytes for good; the side file stays.
        let again = Denylist::open_at(Some(&path), NOW).expect("reopen");
        assert_eq!(again.replay_stats().torn_line, None, "{name}");
        assert_eq!(again.len(), 5, "{name}");
        assert!(saved.exists());
    }
}

#[test]
fn a_missing_journal_whose_marker_exists_is_refused_until_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    {
        let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
        assert!(denylist.replay_stats().created);
        denylist
            .revoke(DenyKey::Fingerprint(fp(26)), live(Origin::Admin))
            .expect("r");
    }
    let marker = dir.path().join("deny.journal.created");
    assert!(marker.exists(), "marker written with the first journal");
    std::fs::remove_file(&path).expect("delete the journal");

    let err = Denylist::open_at(Some(&path), NOW).expect_err("missing journal refused");
    assert_eq!(err.code(), "missing", "{err}");
    let text = err.to_string();
    assert!(text.contains("deny.journal.created"), "{text}");
    assert!(
        text.contains("tokenwatch journal-repair --config"),
        "{text}"
    );
    assert!(!path.exists(), "nothing created");

    let report = repair_at(&path, NOW).expect("repair");
    assert!(report.started_empty);
    assert_eq!(report.copy, None);
    assert!(
        report.to_string().contains("started an empty one"),
        "{report}"
    );
    let reopened = Denylist::open_at(Some(&path), NOW).expect("starts after repair");
    assert!(reopened.is_empty());
    assert!(!reopened.replay_stats().created, "the journal exists again");
}

#[test]
fn a_format_1_journal_is_read_upgraded_and_kept_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let record = |value: serde_json::Value| format!("{value}\n");
    let entry_json = serde_json::to_value(live(Origin::Detector)).expect("json");
    let v1 = [
        record(serde_json::json!({"op":"revoke","key":format!("fp:{}", fp(30)),"entry":entry_json})),
        record(serde_json::json!({"op":"revoke","key":format!("fp:{}", fp(31)),"entry":entry_json})),
        record(serde_json::json!({"op":"revoke","key":format!("fp:{}", fp(32)),"entry":entry_json})),
        record(serde_json::json!({"op":"unrevoke","key":format!("fp:{}", fp(32))})),
        record(serde_json::json!({"op":"allow","key":format!("fp:{}", fp(32)),"until_ms":NOW + HOUR_MS})),
        record(serde_json::json!({"op":"revoke","key":format!("jti:{ISS}:j-1"),"entry":entry_json})),
        record(serde_json::json!({"op":"revoke","key":format!("sub:{ISS}:u-1"),"entry":entry_json})),
    ]
    .concat();
    std::fs::write(&path, &v1).expect("write v1");

    let denylist = Denylist::open_at(Some(&path), NOW).expect("format 1 is read");
    let stats = denylist.replay_stats();
    assert_eq!(stats.format, Some(1));
    assert_eq!(stats.records, 7);
    assert_eq!(stats.previous_fingerprint_entries, 2, "fp(30), fp(31)");
    assert_eq!(stats.previous_fingerprint_allowlisted, 1, "fp(32)");
    assert_eq!(denylist.len(), 4);
    assert!(denylist.is_allowlisted(fp(32)));
    let backup = stats.v1_backup.expect("backup");
    assert_eq!(backup, dir.path().join("deny.journal.v1.bak"));
    assert_eq!(std::fs::read_to_string(&backup).expect("backup"), v1);

    // Rewritten as format 2; the old fingerprints keep their label.
    let text = std::fs::read_to_string(&path).expect("journal");
    assert!(
        text.lines()
            .next()
            .expect("header")
            .ends_with(r#""format":2,"fingerprint":2}"#),
        "{text}"
    );
    let labelled: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(r#""fingerprint":1"#))
        .collect();
    assert_eq!(labelled.len(), 3, "{text}");
    assert!(
        labelled.iter().all(|l| l.contains(&fp(30).to_hex())
            || l.contains(&fp(31).to_hex())
            || l.contains(&fp(32).to_hex())),
        "{text}"
    );
    // A revocation under the current fingerprint drops the label.
    denylist
        .revoke(DenyKey::Fingerprint(fp(31)), live(Origin::Admin))
        .expect("r");
    drop(denylist);

    let reopened = Denylist::open_at(Some(&path), NOW).expect("reopen");
    let stats = reopened.replay_stats();
    assert_eq!(stats.format, Some(2));
    assert_eq!(stats.v1_backup, None, "upgraded once");
    assert_eq!(stats.previous_fingerprint_entries, 1, "fp(30) only");
    assert_eq!(stats.previous_fingerprint_allowlisted, 1);
    assert_eq!(reopened.len(), 4);
    assert_eq!(files_starting(dir.path(), "deny.journal.v1"), vec![backup]);
}

#[test]
fn repair_keeps_a_copy_and_salvages_every_record_with_a_valid_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, good) = written_journal(dir.path());
    // Damage: line 3 (fp 22) gets a flipped byte, NULs replace part of line 5 (fp 24), and the
    // file ends in a torn record.
    let mut bytes = good.clone();
    let line3 = line_offset(&bytes, 3);
    bytes[line3 + 40] ^= 0x01;
    let line5 = line_offset(&bytes, 5);
    for b in &mut bytes[line5 + 20..line5 + 60] {
        *b = 0;
    }
    bytes.extend_from_slice(b"1b2c3d4e {\"op\":\"rev");
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(
        Denylist::open_at(Some(&path), NOW)
            .expect_err("damaged")
            .code(),
        "corrupt"
    );

    let report = repair_at(&path, NOW).expect("repair");
    assert_eq!(report.format, Some(2));
    assert_eq!(report.kept, 3, "fp 21, 23, 25");
    let dropped: Vec<(u64, usize)> = report
        .dropped
        .iter()
        .map(|d| (d.line, d.offset as usize))
        .collect();
    assert_eq!(dropped, vec![(3, line3), (5, line5), (7, good.len())]);
    assert!(report.dropped[0].reason.contains("checksum mismatch"));
    assert!(report.dropped[1].reason.contains("NUL bytes"));
    assert_eq!(report.entries, 3);
    let copy = report.copy.clone().expect("copy");
    assert!(
        copy.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("deny.journal.damaged-")),
        "{}",
        copy.display()
    );
    assert_eq!(
        std::fs::read(&copy).expect("copy"),
        bytes,
        "the file as it was"
    );
    let text = report.to_string();
    assert!(
        text.contains("kept:     3 records with valid checksums"),
        "{text}"
    );
    assert!(text.contains("dropped:  3 lines"), "{text}");
    assert!(text.contains(&copy.display().to_string()), "{text}");

    let reopened = Denylist::open_at(Some(&path), NOW).expect("starts after repair");
    for (byte, present) in [(21, true), (22, false), (23, true), (24, false), (25, true)] {
        assert_eq!(
            reopened.get(&DenyKey::Fingerprint(fp(byte))).is_some(),
            present,
            "fp {byte}"
        );
    }
    // Repair refuses while the journal is open.
    let err = repair_at(&path, NOW).expect_err("locked");
    assert_eq!(err.code(), "locked");
}

#[test]
fn a_failed_append_makes_the_journal_unwritable_until_a_rewrite_from_memory_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let metrics = Arc::new(Metrics::new());
    let denylist = Denylist::open_at(Some(&path), NOW)
        .expect("open")
        .with_metrics(metrics.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    denylist.on_writable_change(move |writable| flag.store(writable, Ordering::SeqCst));
    assert!(
        ready.load(Ordering::SeqCst),
        "told the current state at once"
    );
    assert_eq!(metrics.journal_writable.get(), 1);
    denylist
        .revoke(DenyKey::Fingerprint(fp(40)), live(Origin::Admin))
        .expect("durable");

    denylist.lock_writer().faults.appends = 1;
    let err = denylist
        .revoke(DenyKey::Fingerprint(fp(41)), live(Origin::Admin))
        .expect_err("the write fails");
    assert_eq!(err.code(), "io");
    assert!(!denylist.is_writable());
    assert!(!ready.load(Ordering::SeqCst), "readiness cleared");
    assert_eq!(metrics.journal_writable.get(), 0);
    let failures = |op: &str| {
        metrics
            .journal_write_failures
            .with_label_values(&[op])
            .get()
    };
    assert_eq!(failures("revoke"), 1);
    // Fail-safe: the revocation holds in memory.
    assert!(denylist.get(&DenyKey::Fingerprint(fp(41))).is_some());

    // Nothing more is written to that file: changes are refused, revocations still apply in
    // memory, un-revocations do not.
    let err = denylist
        .revoke(DenyKey::Fingerprint(fp(42)), live(Origin::Admin))
        .expect_err("refused");
    assert_eq!(err.code(), "poisoned");
    assert!(
        err.to_string().contains("tokenwatch_journal_writable"),
        "{err}"
    );
    assert!(denylist.get(&DenyKey::Fingerprint(fp(42))).is_some());
    let err = denylist
        .unrevoke(&DenyKey::Fingerprint(fp(40)), false)
        .expect_err("refused");
    assert_eq!(err.code(), "poisoned");
    assert!(
        denylist.get(&DenyKey::Fingerprint(fp(40))).is_some(),
        "still revoked"
    );
    assert_eq!(failures("revoke"), 2);
    assert_eq!(failures("unrevoke"), 1);

    // Maintenance rewrites the journal from memory: writable again, and everything durable.
    assert!(denylist.maintain(NOW).expect("recovered"), "rewrote");
    assert!(denylist.is_writable());
    assert!(ready.load(Ordering::SeqCst), "readiness restored");
    assert_eq!(metrics.journal_writable.get(), 1);
    denylist
        .revoke(DenyKey::Fingerprint(fp(43)), live(Origin::Admin))
        .expect("appends again");
    drop(denylist);
    let reopened = Denylist::open_at(Some(&path), NOW).expect("reopen");
    for byte in 40..=43 {
        assert!(
            reopened.get(&DenyKey::Fingerprint(fp(byte))).is_some(),
            "fp {byte} durable"
        );
    }
}

#[test]
fn a_failed_compaction_leaves_the_old_file_whole_and_the_journal_unwritable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = written_journal(dir.path());
    let metrics = Arc::new(Metrics::new());
    let denylist = Denylist::open_at(Some(&path), NOW)
        .expect("open")
        .with_metrics(metrics.clone());
    let before = std::fs::read(&path).expect("journal");
    // A real failure: the temp file's name is taken by a folder.
    let temp = dir.path().join("deny.journal.compact-tmp");
    std::fs::create_dir(&temp).expect("block the temp file");
    let err = denylist
        .compact(NOW)
        .expect_err("cannot create the temp file");
    assert_eq!(err.code(), "io", "{err}");
    assert!(!denylist.is_writable());
    assert_eq!(metrics.journal_writable.get(), 0);
    assert_eq!(
        metrics
            .journal_write_failures
            .with_label_values(&["compact"])
            .get(),
        1
    );
    assert_eq!(
        std::fs::read(&path).expect("journal"),
        before,
        "old file whole"
    );
    assert_eq!(denylist.len(), 5, "checks still answer from memory");
    assert!(denylist.maintain(NOW).is_err(), "still blocked");

    std::fs::remove_dir(&temp).expect("unblock");
    assert!(denylist.maintain(NOW).expect("recovers"));
    assert!(denylist.is_writable());
    assert_eq!(metrics.journal_writable.get(), 1);
    assert!(!temp.exists(), "no temp file left");
}

#[test]
fn a_startup_rewrite_that_cannot_be_written_opens_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, before) = written_journal(dir.path());
    let temp = dir.path().join("deny.journal.compact-tmp");
    std::fs::create_dir(&temp).expect("block the temp file");
    let metrics = Arc::new(Metrics::new());
    let denylist = Denylist::open_at(Some(&path), NOW)
        .expect("opens anyway")
        .with_metrics(metrics.clone());
    assert!(!denylist.is_writable());
    assert_eq!(metrics.journal_writable.get(), 0);
    assert_eq!(
        metrics
            .journal_write_failures
            .with_label_values(&["compact"])
            .get(),
        1
    );
    let query = CheckQuery {
        fingerprint: Some(fp(23)),
        ..CheckQuery::default()
    };
    assert!(
        denylist.check(&query, NOW).is_some(),
        "serves what it replayed"
    );
    let err = denylist
        .revoke(DenyKey::Fingerprint(fp(44)), live(Origin::Admin))
        .expect_err("read-only");
    assert_eq!(err.code(), "poisoned");
    assert_eq!(
        std::fs::read(&path).expect("journal"),
        before,
        "file untouched"
    );

    std::fs::remove_dir(&temp).expect("unblock");
    assert!(denylist.maintain(NOW).expect("recovers"));
    assert!(denylist.is_writable());
    drop(denylist);
    let reopened = Denylist::open_at(Some(&path), NOW).expect("reopen");
    assert_eq!(
        reopened.len(),
        6,
        "the refused revocation was kept in memory and written"
    );
}

use std::fs::OpenOptions;
use std::io::Write;

fn step_up(not_before: Option<i64>) -> Entry {
    Entry {
        action: EntryAction::StepUp,
        origin: Origin::Detector,
        not_before,
        ..live(Origin::Detector)
    }
}

#[test]
fn step_up_sid_entries_pass_tokens_issued_at_or_after_not_before() {
    let not_before = NOW / 1000;
    // (name, iat, still challenged)
    let cases = [
        (
            "the stolen token, issued before",
            Some(not_before - 600),
            true,
        ),
        ("issued at the challenge", Some(not_before), false),
        ("issued after the fresh MFA", Some(not_before + 30), false),
        ("no iat: cannot show it is newer", None, true),
    ];
    for (name, iat, challenged) in cases {
        let denylist = Denylist::open(None).expect("memory");
        denylist
            .revoke(key(&format!("sid:{ISS}:s-1")), step_up(Some(not_before)))
            .expect("step up");
        let query = query_for(&[("iss", ISS), ("sid", "s-1")], iat);
        let hit = denylist.check(&query, NOW);
        assert_eq!(hit.is_some(), challenged, "{name}");
        if let Some((_, entry)) = hit {
            assert_eq!(entry.action, EntryAction::StepUp, "{name}");
        }
    }
}

#[test]
fn a_revocation_wins_over_a_step_up_of_the_same_token() {
    let denylist = Denylist::open(None).expect("memory");
    // Step-up on the fingerprint (looked up first), revocation on the subject (looked up last).
    denylist
        .revoke(DenyKey::Fingerprint(fp(1)), step_up(None))
        .expect("step up");
    let mut query = query_for(&[("iss", ISS), ("sub", "u")], Some(NOW / 1000));
    query.fingerprint = Some(fp(1));
    let (hit, entry) = denylist.check(&query, NOW).expect("challenged");
    assert_eq!(
        (hit, entry.action),
        (DenyKey::Fingerprint(fp(1)), EntryAction::StepUp)
    );
    denylist
        .revoke(key(&format!("sub:{ISS}:u")), live(Origin::Admin))
        .expect("revoke");
    let (hit, entry) = denylist.check(&query, NOW).expect("revoked");
    assert_eq!(hit, key(&format!("sub:{ISS}:u")));
    assert_eq!(entry.action, EntryAction::Revoke);
}

#[test]
fn a_step_up_never_replaces_a_revocation_in_force() {
    let denylist = Denylist::open(None).expect("memory");
    let sid = key(&format!("sid:{ISS}:s-1"));
    denylist
        .revoke(sid.clone(), live(Origin::Admin))
        .expect("revoke");
    assert!(
        !denylist
            .revoke(sid.clone(), step_up(Some(NOW / 1000)))
            .expect("skipped")
    );
    assert_eq!(
        denylist.get(&sid).map(|e| e.action),
        Some(EntryAction::Revoke)
    );
    // A lapsed revocation is no reason to skip; and a revocation replaces a step-up.
    let other = key(&format!("sid:{ISS}:s-2"));
    denylist
        .revoke(other.clone(), entry(Origin::Admin, NOW - 1))
        .expect("lapsed");
    assert!(
        denylist
            .revoke(other.clone(), step_up(None))
            .expect("applied")
    );
    assert!(
        denylist
            .revoke(other.clone(), live(Origin::Detector))
            .expect("applied")
    );
    assert_eq!(
        denylist.get(&other).map(|e| e.action),
        Some(EntryAction::Revoke)
    );
}

#[test]
fn step_up_entries_round_trip_through_the_journal_and_old_records_read_as_revoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.journal");
    let sid = key(&format!("sid:{ISS}:s-1"));
    let opaque = DenyKey::Fingerprint(fp(2));
    let revoked = DenyKey::Fingerprint(fp(3));
    {
        let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
        denylist
            .revoke_many(vec![
                (sid.clone(), step_up(Some(NOW / 1000))),
                (opaque.clone(), step_up(None)),
                (revoked.clone(), live(Origin::Detector)),
            ])
            .expect("durable");
    }
    let lines = journal_lines(&path);
    assert!(lines[0].contains(r#""action":"step_up""#), "{}", lines[0]);
    assert!(lines[0].contains(&format!(r#""not_before":{}"#, NOW / 1000)));
    // A revocation is written exactly as earlier releases wrote it: no `action`.
    assert!(!lines[2].contains("action"), "{}", lines[2]);
    let reopened = Denylist::open_at(Some(&path), NOW).expect("reopen");
    assert_eq!(reopened.get(&sid), Some(step_up(Some(NOW / 1000))));
    assert_eq!(reopened.get(&opaque), Some(step_up(None)));
    assert_eq!(
        reopened.get(&revoked).map(|e| e.action),
        Some(EntryAction::Revoke)
    );
    drop(reopened);

    // A record of an earlier release (no `action` field), checksummed as it wrote it.
    let json = format!(
        r#"{{"op":"revoke","key":"sid:{ISS}:old","entry":{{"reasons":["impossible_travel"],"origin":"detector","created_at_ms":{NOW},"expires_at_ms":{}}}}}"#,
        NOW + HOUR_MS
    );
    let mut bytes = std::fs::read(&path).expect("journal");
    bytes.extend_from_slice(format!("{:08x} {json}\n", crc32c::crc32c(json.as_bytes())).as_bytes());
    std::fs::write(&path, bytes).expect("write");
    let reopened = Denylist::open_at(Some(&path), NOW).expect("old record reads");
    let old = reopened
        .get(&key(&format!("sid:{ISS}:old")))
        .expect("old record");
    assert_eq!(old.action, EntryAction::Revoke);
    assert_eq!(old.not_before, None);
    assert!(
        reopened
            .check(&query_for(&[("iss", ISS), ("sid", "old")], Some(NOW)), NOW)
            .is_some_and(|(_, e)| e.action == EntryAction::Revoke)
    );
}

/// The shared log of distributed mode, kept in memory: what a replica wrote.
#[derive(Default)]
struct RecordedLog(std::sync::Mutex<Vec<SharedChange>>);

impl SharedLog for RecordedLog {
    fn append(&self, changes: &[SharedChange]) -> Result<(), String> {
        self.0.lock().expect("log").extend_from_slice(changes);
        Ok(())
    }
}

#[test]
fn allowlistings_travel_through_the_shared_log_and_bind_every_replica() {
    let log = Arc::new(RecordedLog::default());
    let writer = Denylist::shared(log.clone());
    let reader = Denylist::shared(Arc::new(RecordedLog::default()));
    let token = DenyKey::Fingerprint(fp(7));
    writer
        .revoke(token.clone(), live(Origin::Detector))
        .expect("revoke");
    writer.unrevoke(&token, true).expect("un-revoke");
    writer
        .revoke(token.clone(), live(Origin::Admin))
        .expect("admin revoke");
    let written = log.0.lock().expect("log").clone();
    assert_eq!(
        written,
        vec![
            SharedChange::Put(token.clone(), live(Origin::Detector)),
            SharedChange::Remove(token.clone()),
            SharedChange::Allow(fp(7), NOW + HOUR_MS),
            SharedChange::Put(token.clone(), live(Origin::Admin)),
            SharedChange::Unallow(fp(7)),
        ]
    );

    // Another replica reading the log: allowlisted after the un-revocation, so its detector
    // leaves the token alone; the admin's revocation lifts it there too.
    for change in written.iter().take(3) {
        reader.apply_shared(change.clone(), NOW);
    }
    assert!(reader.is_allowlisted(fp(7)));
    assert!(reader.get(&token).is_none());
    assert_eq!(
        reader
            .revoke_many(vec![(token.clone(), live(Origin::Detector))])
            .expect("detector revoke"),
        0,
        "an allowlisted token is not revoked by a detector"
    );
    for change in written.iter().skip(3) {
        reader.apply_shared(change.clone(), NOW);
    }
    assert!(!reader.is_allowlisted(fp(7)));
    assert!(reader.get(&token).is_some());

    // An allowlisting that lapsed before it was read back is not kept.
    let late = Denylist::shared(Arc::new(RecordedLog::default()));
    late.apply_shared(SharedChange::Allow(fp(7), NOW), NOW + 1);
    assert!(!late.is_allowlisted(fp(7)));
}
