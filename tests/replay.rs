//! `tokenwatch replay` end to end on generated fixtures (mmdb, keys): the three scenarios of
//! the foundation issue, and determinism.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use tokenwatch::lab::world::NetKind;

/// Berlin, then São Paulo ten minutes later: revoked, with the travel as evidence.
fn berlin_to_sao_paulo(f: &Fixture) -> (Vec<String>, String) {
    let token = f.jwt("alice", at(0).secs());
    let mut lines = Vec::new();
    for i in 0..10 {
        lines.push(line(
            at(i * 60),
            ip("Berlin", NetKind::Residential, 7),
            CHROME,
            &token,
            "/inbox",
        ));
    }
    lines.push(line(
        at(600 + 120),
        ip("São Paulo", NetKind::AltResidential, 9),
        CHROME,
        &token,
        "/api/me",
    ));
    lines.push(line(
        at(600 + 125),
        ip("São Paulo", NetKind::AltResidential, 9),
        CHROME,
        &token,
        "/api/export",
    ));
    (lines, f.fingerprint(&token))
}

#[test]
fn impossible_travel_is_revoked_with_evidence() {
    let f = Fixture::new("");
    let (lines, fp) = berlin_to_sao_paulo(&f);
    let (decisions, stderr) = f.replay(&lines);
    let mine = about(&decisions, &fp);
    assert_eq!(
        mine.len(),
        1,
        "exactly one decision, no duplicates: {decisions:#?}\n{stderr}"
    );
    let d = mine[0];
    assert_eq!(d["action"], "revoke");
    assert_eq!(d["mode"], "enforce");
    assert_eq!(d["key"], format!("fp:{fp}"));
    assert_eq!(d["sub"], "alice");
    assert_eq!(d["iss"], ISSUER);
    assert!(has_reason(d, "impossible_travel"), "{d}");
    let ev = &d["evidence"];
    assert_eq!(ev["from"]["city"], "Berlin");
    assert_eq!(ev["from"]["country"], "DE");
    assert_eq!(ev["to"]["city"], "São Paulo");
    assert_eq!(ev["to"]["country"], "BR");
    let distance = ev["distance_km"].as_f64().expect("distance");
    assert!(
        (9000.0..10_300.0).contains(&distance),
        "lower-bound distance {distance}"
    );
    assert_eq!(
        ev["elapsed_s"].as_f64(),
        Some(180.0),
        "from the last Berlin use at 9 min"
    );
    assert!(ev["speed_kmh"].as_f64().expect("speed") > 100_000.0);
    assert_eq!(d["event_time"], at(720).to_rfc3339());
    assert!(d["score"].as_f64().expect("score") >= 0.8);
}

#[test]
fn phone_switching_between_wifi_and_mobile_in_one_city_is_not_revoked() {
    let f = Fixture::new("");
    let token = f.jwt("bob", at(0).secs());
    let mut lines = Vec::new();
    // 40 minutes at ~5 requests a minute, switching network every 4 minutes.
    for i in 0..200 {
        let kind = if (i / 20) % 2 == 0 {
            NetKind::Residential
        } else {
            NetKind::Mobile
        };
        lines.push(line(
            at(i * 12),
            ip("Berlin", kind, 3 + (i as u32 / 20)),
            IPHONE,
            &token,
            "/feed",
        ));
    }
    let (decisions, stderr) = f.replay(&lines);
    let fp = f.fingerprint(&token);
    let revoked: Vec<_> = about(&decisions, &fp)
        .into_iter()
        .filter(|d| d["action"] == "revoke")
        .collect();
    assert!(
        revoked.is_empty(),
        "Wi-Fi ↔ mobile in one city must not be revoked: {revoked:#?}"
    );
    assert!(stderr.contains("processed"), "{stderr}");
}

#[test]
fn rate_jump_from_a_new_user_agent_is_stepped_up() {
    let f = Fixture::new("");
    let token = f.jwt("carol", at(0).secs());
    let mut lines = Vec::new();
    // 15 minutes at 5 requests a minute from her browser in Munich...
    for i in 0..75 {
        lines.push(line(
            at(i * 12),
            ip("Munich", NetKind::Residential, 11),
            CHROME,
            &token,
            "/projects",
        ));
    }
    // ...then 60 a minute from a new browser on the same OS and network: the new user-agent
    // alone is only suspicious (flag); the rate jump on top of it is what stops the token —
    // by a step-up, as rates and browsers have honest explanations (DESIGN §5).
    for i in 0..180 {
        lines.push(line(
            at(900 + i),
            ip("Munich", NetKind::Residential, 11),
            FIREFOX_WINDOWS,
            &token,
            "/api/export",
        ));
    }
    let (decisions, _) = f.replay(&lines);
    let fp = f.fingerprint(&token);
    let mine = about(&decisions, &fp);
    assert!(mine.iter().all(|d| d["action"] != "revoke"), "{mine:#?}");
    let revoke = mine
        .iter()
        .find(|d| d["action"] == "step_up")
        .unwrap_or_else(|| panic!("not stepped up: {mine:#?}"));
    assert!(has_reason(revoke, "rate_anomaly"), "{revoke}");
    assert!(has_reason(revoke, "user_agent_change"), "{revoke}");
    let rate = &revoke["evidence"]["rate"];
    assert!(
        rate["per_minute"].as_f64().expect("rate")
            > rate["baseline_per_minute"].as_f64().expect("baseline") * 4.0
    );
    // Detected within the first minute of the jump, not at its end.
    let t = revoke["event_time"].as_str().expect("time");
    assert!(t < at(960).to_rfc3339().as_str(), "stepped up late: {t}");
}

#[test]
fn replay_is_deterministic() {
    let f = Fixture::new("");
    let (mut lines, _) = berlin_to_sao_paulo(&f);
    let token = f.jwt("dave", at(0).secs());
    for i in 0..500 {
        lines.push(line(
            at(i * 3),
            ip("London", NetKind::Residential, 1),
            FIREFOX,
            &token,
            "/",
        ));
    }
    let log = f.path("mixed.jsonl");
    std::fs::write(&log, lines.join("\n")).expect("write");
    let (first, _) = f.replay_file(&log);
    let bytes_first = std::fs::read(f.path("decisions.jsonl")).expect("read");
    let (second, _) = f.replay_file(&log);
    let bytes_second = std::fs::read(f.path("decisions.jsonl")).expect("read");
    assert!(!first.is_empty());
    assert_eq!(first, second);
    assert_eq!(bytes_first, bytes_second, "same input, same bytes");
}

/// Decisions depend on the lines, never on how a source cut them into batches (a Kafka
/// consumer's batches follow its polls): each event is decided before the next is tracked.
/// Here a thief's token is stopped, the thief keeps sending it, and the owner's other token
/// comes back more than the concurrent-use window after the thief's last use *before* the
/// revocation. Tracked before the revocation was recorded, the refused request would have
/// made the owner's token concurrent.
#[test]
fn decisions_do_not_depend_on_batch_boundaries() {
    let f = Fixture::new("");
    let token = |sid: &str, iat: i64| {
        f.jwt_with(serde_json::json!({
            "iss": ISSUER, "aud": "api", "sub": "erin", "sid": sid,
            "jti": format!("jti-{sid}"), "iat": iat, "exp": iat + 24 * 3600,
        }))
    };
    let laptop = token("laptop", at(0).secs());
    let stolen = token("phone", at(1).secs());
    let berlin = ip("Berlin", NetKind::Residential, 7);
    let sao_paulo = ip("São Paulo", NetKind::AltResidential, 9);
    let window = 6 * 3600;
    let lines = vec![
        line(at(0), berlin, CHROME, &laptop, "/inbox"),
        line(at(30), sao_paulo, IPHONE, &stolen, "/api/export"),
        line(at(window + 100), sao_paulo, IPHONE, &stolen, "/api/export"),
        line(at(window + 200), berlin, CHROME, &laptop, "/inbox"),
    ];
    let (together, _) = f.replay(&lines);
    let config = std::fs::read_to_string(&f.config).unwrap();
    std::fs::write(
        &f.config,
        config.replacen("format = \"json\"", "format = \"json\"\nbatch_size = 1", 1),
    )
    .unwrap();
    let (one_by_one, _) = f.replay(&lines);
    assert!(
        about(&together, &f.fingerprint(&stolen))
            .iter()
            .any(|d| d["action"] == "revoke" || d["action"] == "step_up"),
        "the thief's token is stopped: {together:#?}"
    );
    assert!(
        about(&together, &f.fingerprint(&laptop)).is_empty(),
        "the owner's token is compared with the thief's last use before the revocation, \
         6 h earlier: {together:#?}"
    );
    assert_eq!(together, one_by_one);
}

#[test]
fn shadow_mode_records_without_enforcing() {
    let f = Fixture::new("[detect]\nmode = \"shadow\"\n");
    let (lines, fp) = berlin_to_sao_paulo(&f);
    let (decisions, _) = f.replay(&lines);
    let mine = about(&decisions, &fp);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["action"], "revoke");
    assert_eq!(mine[0]["mode"], "shadow");
}
