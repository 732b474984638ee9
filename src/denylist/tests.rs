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

fn journal_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("journal readable")
        .lines()
        .map(str::to_owned)
        .collect()
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
fn torn_last_line_is_dropped_and_the_rest_kept() {
    let tails: [&[u8]; 4] = [
        b"{\"op\":\"revoke\",\"key\":\"fp:0909",
        b"{\"op\":\"rev\n",
        b"\0\0\0\0\0\0\0\0",
        b"{\"op\":\"revoke\",\"key\":\"fp:09090909090909090909090909090909\"}\n",
    ];
    for tail in tails {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deny.journal");
        {
            let denylist = Denylist::open_at(Some(&path), NOW).expect("open");
            denylist
                .revoke(DenyKey::Fingerprint(fp(9)), live(Origin::Detector))
                .expect("r");
            denylist
                .revoke(DenyKey::Fingerprint(fp(10)), live(Origin::Detector))
                .expect("r");
        }
        let mut file = OpenOptions::new().append(true).open(&path).expect("append");
        file.write_all(tail).expect("write tail");
        drop(file);

        let reopened = Denylist::open_at(Some(&path), NOW).expect("torn tail tolerated");
        assert_eq!(reopened.replay_stats().torn_line, Some(3), "{tail:?}");
        assert_eq!(reopened.replay_stats().records, 2);
        assert_eq!(reopened.len(), 2);
        drop(reopened);
        // Compaction removed the torn line for good.
        let again = Denylist::open_at(Some(&path), NOW).expect("reopen");
        assert_eq!(again.replay_stats().torn_line, None);
    }
}

#[test]
fn corrupt_middle_line_is_an_error_naming_the_line() {
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

use std::fs::OpenOptions;
use std::io::Write;
