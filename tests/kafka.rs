//! Distributed mode against a real Kafka-compatible broker (issue 16): Tansu on 127.0.0.1,
//! started and killed by the test (`tests/broker`), traffic produced by Python's
//! confluent-kafka — a client that is not ours.
//!
//! Without the broker or the client each test prints `SKIP kafka …` and passes; under
//! `CI=true` it fails (`scripts/test.sh` installs both with `scripts/install-kafka.sh`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod broker;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use broker::*;
use common::{CHROME, Fixture, ip, line, recent};
use serde_json::Value;
use tokenwatch::lab::world::NetKind;

/// Simulated traffic with attacks ending ten minutes ago (so tokens are live and no record
/// is from the future), its GeoIP databases and config, in `dir`. Returns the log's path.
fn simulate(dir: &Path, users: &str, seed: &str) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = tokenwatch::event::EventTime((now - 130 * 60) * 1000).to_rfc3339();
    let log = dir.join("access.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .args(["simulate", "--out"])
        .arg(&log)
        .args(["--users", users, "--duration", "2h", "--start", &start])
        // Tokens outlive the test, so every revocation is still in force when checked.
        .args([
            "--refresh",
            "6h",
            "--attack-fraction",
            "0.2",
            "--seed",
            seed,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "simulate: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    log
}

/// The strongest enforced action per denylist key in `tokenwatch replay`'s decisions (what
/// the denylist holds after them: a step-up never replaces a revocation).
fn replay_denylist(dir: &Path, log: &Path) -> BTreeMap<String, String> {
    let decisions = dir.join("replay-decisions.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .arg("replay")
        .arg(log)
        .arg("--config")
        .arg(dir.join("tokenwatch.toml"))
        .arg("--decisions")
        .arg(&decisions)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut keys = BTreeMap::new();
    for line in std::fs::read_to_string(&decisions).unwrap().lines() {
        let d: Value = serde_json::from_str(line).unwrap();
        let action = d["action"].as_str().unwrap().to_string();
        if d["mode"] != "enforce" || action == "flag" {
            continue;
        }
        let held = keys
            .entry(d["key"].as_str().unwrap().to_string())
            .or_insert_with(|| action.clone());
        if action == "revoke" {
            *held = action;
        }
    }
    keys
}

/// The latest action per key on the denylist topic (a tombstone removes the key).
fn topic_denylist(records: &[Value]) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for r in records {
        let key = r["key"].as_str().unwrap().to_string();
        if key.starts_with("allow:") {
            continue; // an admin's allowlisting, not a denylist entry
        }
        match r["value"].as_str() {
            None => {
                keys.remove(&key);
            }
            Some(value) => {
                let entry: Value = serde_json::from_str(value).unwrap();
                // The journal's entry form: no `action` means a revocation.
                let action = entry["action"].as_str().unwrap_or("revoke").to_string();
                keys.insert(key, action);
            }
        }
    }
    keys
}

/// `[api]` and `[kafka]` appended to the simulator's config (whose last table is the empty
/// `[denylist]`), as `role`.
fn kafka_config(dir: &Path, broker: &Broker, role: &str, name: &str) -> PathBuf {
    let base = std::fs::read_to_string(dir.join("tokenwatch.toml")).unwrap();
    let text = format!(
        "role = \"{role}\"\n{base}\n[api]\nlisten = \"127.0.0.1:0\"\n\n[kafka]\nbrokers = \"{}\"\n\
         [kafka.librdkafka]\n\"session.timeout.ms\" = \"6000\"\n\"auto.commit.interval.ms\" = \"500\"\n",
        broker.brokers()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The broker tests start several processes each: one at a time on a small machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const KAFKA_EVENTS: &str = "tokenwatch_events_total{outcome=";

fn kafka_events(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(KAFKA_EVENTS) && l.contains("source=\"kafka\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn run_on_kafka_revokes_what_replay_revokes_and_dead_letters_poison_records() {
    let Some(tools) = tools("run_on_kafka_revokes_what_replay_revokes") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = simulate(dir.path(), "100", "3");
    let expected = replay_denylist(dir.path(), &log);
    assert!(
        expected.values().any(|a| a == "revoke"),
        "the simulation has attacks replay revokes: {expected:?}"
    );

    let broker = Broker::start(&tools);
    broker.create_topic("access-logs", 3);
    broker.create_topic("tokenwatch.denylist", 1);
    broker.create_topic("tokenwatch.dead-letter", 1);
    // The same traffic with three poison records among it.
    let mut lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let total = lines.len();
    lines.insert(total / 4, "this is not JSON".into());
    lines.insert(
        total / 2,
        // A real-looking credential: the dead-letter copy must not carry it.
        r#"{"time":"yesterday","client_ip":"1.2.3.4","authorization":"Bearer twk_60973fbb9fdcf533510a1d86a2baae2a3b8601cd"}"#.into(),
    );
    lines.insert(
        3 * total / 4,
        r#"{"client_ip":"1.2.3.4","authorization":"Bearer x"}"#.into(),
    );
    let kafka_log = dir.path().join("kafka.jsonl");
    std::fs::write(&kafka_log, lines.join("\n") + "\n").unwrap();
    // Keyed by user, so one user's requests stay in order (as a log shipper keyed by session
    // or user would); the run must then decide exactly as replay does.
    broker.produce_file("access-logs", &kafka_log, "sub");

    let config = kafka_config(dir.path(), &broker, "all", "run.toml");
    let mut daemon = Instance::start(&config);
    let consumed = wait_until(Duration::from_secs(120), || {
        kafka_events(&daemon.metrics()) >= lines.len() as f64
    });
    assert!(
        consumed,
        "consumed {} of {} records\n{}",
        kafka_events(&daemon.metrics()),
        lines.len(),
        daemon.log()
    );
    assert!(
        wait_until(Duration::from_secs(30), || daemon.status("/readyz") == 200),
        "ready: {:?}\n{}",
        http_get(&daemon.addr, "/readyz"),
        daemon.log()
    );

    // The denylist topic holds exactly what replay's decisions put on the denylist.
    let records = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(5));
    assert_eq!(topic_denylist(&records), expected, "{}", daemon.log());
    // And the check API answers from it.
    for (key, action) in &expected {
        let Some(fp) = key.strip_prefix("fp:") else {
            continue;
        };
        let (status, body) = http(
            &daemon.addr,
            "POST",
            "/v1/check",
            &[("Content-Type", "application/json")],
            &format!(r#"{{"fingerprint":"{fp}"}}"#),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["action"], action.as_str(), "{key}: {body}");
    }

    // Three poison records on the dead-letter topic, each with its reason, and counted.
    let dead = broker.read_topic("tokenwatch.dead-letter", 3, Duration::from_secs(20));
    assert_eq!(dead.len(), 3, "{dead:?}");
    let mut reasons: Vec<&str> = dead
        .iter()
        .map(|r| r["headers"]["tokenwatch.error"].as_str().unwrap())
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["bad_time", "invalid_json", "missing_time"],
        "{dead:?}"
    );
    assert!(dead.iter().any(|r| r["value"] == "this is not JSON"));
    assert!(
        dead.iter()
            .all(|r| !r.to_string().contains("60973fbb9fdcf533510a1d86")),
        "no raw token on the dead-letter topic: {dead:?}"
    );
    assert!(
        dead.iter().any(|r| r["value"]
            .as_str()
            .unwrap_or("")
            .contains("Bearer [redacted]")),
        "{dead:?}"
    );
    assert!(
        dead.iter()
            .all(|r| r["headers"]["tokenwatch.topic"] == "access-logs")
    );
    // Counted once the dead-letter producer acknowledged them, which may come after the
    // records themselves are counted as consumed.
    let dead_letters = || metric_sum(&daemon.metrics(), "tokenwatch_dead_letters_total");
    assert!(
        wait_until(Duration::from_secs(10), || dead_letters() == 3.0),
        "dead letters counted: {}",
        dead_letters()
    );
    // Lag per partition, and every partition consumed to its end.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let m = daemon.metrics();
            (0..3).all(|p| {
                m.contains(&format!(
                    "tokenwatch_kafka_consumer_lag{{partition=\"{p}\"}} 0"
                ))
            })
        }),
        "{}",
        daemon.metrics()
    );

    // Offsets are committed at shutdown: a restart in the same group re-reads the committed
    // records only to restore session state, and publishes nothing again.
    assert!(daemon.terminate(), "clean shutdown\n{}", daemon.log());
    let again = Instance::start(&config);
    assert!(wait_until(Duration::from_secs(30), || again
        .status("/readyz")
        == 200));
    assert!(
        wait_until(Duration::from_secs(60), || kafka_events(&again.metrics())
            >= lines.len() as f64),
        "state restored from every committed record\n{}",
        again.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let again_metrics = again.metrics();
    assert_eq!(
        metric_sum(&again_metrics, "tokenwatch_detections_total"),
        0.0,
        "decisions published again after a clean shutdown\n{again_metrics}"
    );
    assert_eq!(
        metric_sum(&again_metrics, "tokenwatch_dead_letters_total"),
        0.0
    );
    let after = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(5));
    assert_eq!(
        after.len(),
        records.len(),
        "no record added to the denylist topic"
    );
    assert!(
        again.log().contains("session state restored"),
        "{}",
        again.log()
    );
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What an instance logged about Kafka and its decisions (for failure messages).
fn kafka_lines(instance: &Instance) -> String {
    instance
        .log()
        .lines()
        .filter(|l| l.contains("kafka") || l.contains("decision"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The partitions an instance holds now, from what it logged at each rebalance.
fn assigned(instance: &Instance) -> Vec<u32> {
    let mut held = Vec::new();
    for line in instance.log().lines() {
        if line.contains("kafka: partitions revoked") {
            held.clear();
        } else if line.contains("kafka: partitions assigned")
            && let Some(rest) = line.split("partitions=").nth(1)
        {
            held = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|p| p.parse().ok())
                .collect();
        }
    }
    held
}

/// `POST /v1/check {"fingerprint"}` at `instance`: the answer's `action`.
fn check_fingerprint(instance: &Instance, fp: &str) -> String {
    let (status, body) = http(
        &instance.addr,
        "POST",
        "/v1/check",
        &[("Content-Type", "application/json")],
        &format!(r#"{{"fingerprint":"{fp}"}}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["action"].as_str().unwrap().to_string()
}

#[test]
fn two_detectors_and_an_api_replica_stop_what_replay_stops_and_a_restarted_replica_rebuilds() {
    let Some(tools) = tools("two_detectors_and_an_api_replica") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = simulate(dir.path(), "120", "5");
    let expected = replay_denylist(dir.path(), &log);
    assert!(expected.values().any(|a| a == "revoke"), "{expected:?}");

    let broker = Broker::start(&tools);
    broker.create_topic("access-logs", 6);
    broker.create_topic("tokenwatch.denylist", 1);
    broker.create_topic("tokenwatch.dead-letter", 1);
    let detector = kafka_config(dir.path(), &broker, "detector", "detector.toml");
    let api_config = kafka_config(dir.path(), &broker, "api", "api.toml");
    let detectors = [Instance::start(&detector), Instance::start(&detector)];
    let api = Instance::start(&api_config);
    for instance in detectors.iter().chain([&api]) {
        assert!(
            wait_until(Duration::from_secs(30), || instance.status("/readyz")
                == 200),
            "{:?}\n{}",
            http_get(&instance.addr, "/readyz"),
            instance.log()
        );
    }
    // Both detectors in the group with the partitions split between them before traffic
    // flows: a partition that moves mid-stream arrives without its sessions' history.
    let split = wait_until(Duration::from_secs(60), || {
        let (a, b) = (assigned(&detectors[0]), assigned(&detectors[1]));
        let mut all: Vec<u32> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        !a.is_empty() && !b.is_empty() && all == [0, 1, 2, 3, 4, 5]
    });
    assert!(
        split,
        "partitions never split between the detectors: {:?} / {:?}",
        assigned(&detectors[0]),
        assigned(&detectors[1])
    );
    broker.produce_file("access-logs", &log, "sub");
    let total = std::fs::read_to_string(&log).unwrap().lines().count() as f64;
    let consumed = wait_until(Duration::from_secs(120), || {
        detectors
            .iter()
            .map(|d| kafka_events(&d.metrics()))
            .sum::<f64>()
            >= total
    });
    assert!(consumed, "{}\n{}", detectors[0].log(), detectors[1].log());
    let each: Vec<f64> = detectors
        .iter()
        .map(|d| kafka_events(&d.metrics()))
        .collect();
    assert!(
        each.iter().all(|n| *n > 0.0),
        "both detectors worked: {each:?}"
    );

    // The API replica holds what single-instance replay put on the denylist: every attack
    // replay stops is stopped there, and no other session.
    let entries = |instance: &Instance| {
        metric_sum(&instance.metrics(), "tokenwatch_denylist_entries ") as usize
    };
    assert!(
        wait_until(Duration::from_secs(30), || entries(&api) == expected.len()),
        "api replica holds {} entries, replay {}: {expected:?}\n{}\n----\n{}",
        entries(&api),
        expected.len(),
        kafka_lines(&detectors[0]),
        kafka_lines(&detectors[1]),
    );
    let records = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(5));
    assert_eq!(topic_denylist(&records), expected);
    for (key, action) in &expected {
        if let Some(fp) = key.strip_prefix("fp:") {
            assert_eq!(&check_fingerprint(&api, fp), action, "{key}");
        }
    }
    // Revocations arrived at the replica, each timed from its decision.
    let api_metrics = api.metrics();
    let revocations = expected.values().filter(|a| *a == "revoke").count() as f64;
    // At least one observation per revocation (a key revoked again by a later decision is
    // observed again: it changed at the replica).
    assert!(
        metric_sum(
            &api_metrics,
            "tokenwatch_revocation_propagation_seconds_count"
        ) >= revocations,
        "{api_metrics}"
    );
    // Detectors serve health and metrics only.
    assert_eq!(detectors[0].status("/v1/check"), 404);

    // A restarted API replica rebuilds the denylist from the topic before it is ready.
    drop(api);
    let mut api = Instance::start(&api_config);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ready_with = loop {
        if api.status("/readyz") == 200 {
            break entries(&api);
        }
        assert!(
            api.child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline,
            "replica exited or never ready\n{}",
            api.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        ready_with,
        expected.len(),
        "ready before the denylist was rebuilt"
    );
    for (key, action) in &expected {
        if let Some(fp) = key.strip_prefix("fp:") {
            assert_eq!(&check_fingerprint(&api, fp), action, "{key} after restart");
        }
    }
}

/// Write the first `from..to` lines of `log` to `name` in `dir`.
fn part_of(dir: &Path, log: &Path, name: &str, from: usize, to: usize) -> PathBuf {
    let lines: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, lines[from..to.min(lines.len())].join("\n") + "\n").unwrap();
    path
}

fn line_count(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap().lines().count()
}

#[test]
fn a_detector_killed_mid_stream_is_taken_over_and_nothing_replay_stops_is_lost() {
    let Some(tools) = tools("a_detector_killed_mid_stream") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = simulate(dir.path(), "120", "7");
    let expected = replay_denylist(dir.path(), &log);
    assert!(expected.values().any(|a| a == "revoke"), "{expected:?}");
    let total = line_count(&log);

    let broker = Broker::start(&tools);
    broker.create_topic("access-logs", 4);
    broker.create_topic("tokenwatch.denylist", 1);
    broker.create_topic("tokenwatch.dead-letter", 1);
    let detector = kafka_config(dir.path(), &broker, "detector", "detector.toml");
    let mut detectors = vec![Instance::start(&detector), Instance::start(&detector)];
    let split = wait_until(Duration::from_secs(60), || {
        let (a, b) = (assigned(&detectors[0]), assigned(&detectors[1]));
        !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4
    });
    assert!(
        split,
        "{}\n{}",
        kafka_lines(&detectors[0]),
        kafka_lines(&detectors[1])
    );

    // The first half goes in; once both detectors work on it, one is SIGKILLed (no commit,
    // no goodbye to the group), and the second half follows.
    let first = part_of(dir.path(), &log, "first.jsonl", 0, total / 2);
    broker.produce_file("access-logs", &first, "sub");
    let working = wait_until(Duration::from_secs(60), || {
        detectors
            .iter()
            .all(|d| kafka_events(&d.metrics()) > total as f64 / 16.0)
    });
    assert!(working, "{}", kafka_lines(&detectors[0]));
    // Past an auto-commit (500 ms), so the takeover has committed records to restore from.
    std::thread::sleep(Duration::from_secs(1));
    let victim = detectors.remove(0);
    let victim_held = assigned(&victim);
    send_signal(victim.child.id(), "KILL");
    drop(victim);
    let second = part_of(dir.path(), &log, "second.jsonl", total / 2, total);
    broker.produce_file("access-logs", &second, "sub");

    // The survivor takes every partition over (after session.timeout.ms), restores the
    // victim's sessions from the committed records and goes on.
    let survivor = &detectors[0];
    let took_over = wait_until(Duration::from_secs(60), || assigned(survivor).len() == 4);
    assert!(took_over, "{}", kafka_lines(survivor));
    assert!(
        wait_until(Duration::from_secs(30), || survivor
            .log()
            .contains("session state restored")),
        "took {victim_held:?} over without restoring\n{}",
        kafka_lines(survivor)
    );
    // The topic's decisions are replay's (at-least-once may repeat one, never lose one).
    let done = wait_until(Duration::from_secs(90), || {
        let records = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(2));
        topic_denylist(&records) == expected
    });
    let records = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(2));
    assert!(
        done,
        "topic {:?}\nreplay {expected:?}\n{}",
        topic_denylist(&records),
        kafka_lines(survivor)
    );
}

/// The broker process killed and started again on the same port, its records kept in a local
/// S3 server (Tansu's memory storage would lose them all, topics included).
#[test]
fn broker_stopped_and_started_again_checks_go_on_from_memory_and_instances_catch_up() {
    let Some(tools) = tools("broker_stopped_and_started_again") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = simulate(dir.path(), "120", "11");
    let expected = replay_denylist(dir.path(), &log);
    let total = line_count(&log);
    let mut broker = Broker::start_persistent(&tools);
    broker.create_topic("access-logs", 2);
    broker.create_topic("tokenwatch.denylist", 1);
    broker.create_topic("tokenwatch.dead-letter", 1);
    // Requests in flight when the broker dies time out after socket.timeout.ms (60 s by
    // default; 3 s here).
    let with_timeout = |role: &str, name: &str| {
        let path = kafka_config(dir.path(), &broker, role, name);
        append(&path, "\"socket.timeout.ms\" = \"3000\"\n");
        path
    };
    let all = Instance::start(&with_timeout("all", "all.toml"));
    let api = Instance::start(&with_timeout("api", "api.toml"));
    for instance in [&all, &api] {
        assert!(wait_until(Duration::from_secs(30), || instance
            .status("/readyz")
            == 200));
    }
    let first = part_of(dir.path(), &log, "first.jsonl", 0, total / 2);
    broker.produce_file("access-logs", &first, "sub");
    assert!(wait_until(Duration::from_secs(60), || {
        kafka_events(&all.metrics()) >= (total / 2) as f64
    }));
    let entries = |instance: &Instance| {
        metric_sum(&instance.metrics(), "tokenwatch_denylist_entries ") as usize
    };
    assert!(wait_until(Duration::from_secs(10), || entries(&api) == entries(&all)));
    // The tokens the first half stopped (revoked or stepped up) that the API replica holds.
    let stopped: Vec<(&str, &String)> = expected
        .iter()
        .filter_map(|(k, a)| Some((k.strip_prefix("fp:")?, a)))
        .filter(|(fp, a)| check_fingerprint(&api, fp) == **a)
        .collect();
    assert!(!stopped.is_empty(), "the first half stops something");

    // Broker stopped: both instances say not ready and keep answering checks from memory.
    broker.restart_after(|| {
        for instance in [&all, &api] {
            assert!(
                wait_until(Duration::from_secs(40), || instance.status("/readyz")
                    == 503),
                "still ready without a broker\n{}",
                tail(&instance.log(), 10)
            );
            let (_, why) = http_get(&instance.addr, "/readyz").unwrap();
            assert!(why.contains("kafka"), "{why}");
            for (fp, action) in &stopped {
                assert_eq!(
                    &check_fingerprint(instance, fp),
                    *action,
                    "{fp} while the broker is down"
                );
            }
        }
    });

    // Started again: both reconnect without a restart and turn ready; the second half is
    // consumed and its decisions reach the API replica on top of what it held.
    for instance in [&all, &api] {
        assert!(
            wait_until(Duration::from_secs(60), || instance.status("/readyz")
                == 200),
            "not ready again: {:?}\n{}",
            http_get(&instance.addr, "/readyz"),
            tail(&instance.log(), 10)
        );
    }
    let second = part_of(dir.path(), &log, "second.jsonl", total / 2, total);
    broker.produce_file("access-logs", &second, "sub");
    let caught_up = wait_until(Duration::from_secs(90), || {
        kafka_events(&all.metrics()) >= total as f64
    });
    assert!(caught_up, "{}", kafka_lines(&all));
    assert!(
        wait_until(Duration::from_secs(30), || entries(&api) == expected.len()),
        "api replica holds {}, replay {}\n{}",
        entries(&api),
        expected.len(),
        kafka_lines(&all)
    );
    let records = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(5));
    assert_eq!(topic_denylist(&records), expected, "no decision lost");
    for (key, action) in &expected {
        if let Some(fp) = key.strip_prefix("fp:") {
            assert_eq!(&check_fingerprint(&api, fp), action, "{key}");
        }
    }

    // A false positive un-revoked and allowlisted at the API replica: lifted everywhere, and
    // the detecting instance holds the allowlisting too, so its detector leaves it alone.
    let (fp, _) = stopped[0];
    let auth = format!("Bearer {ADMIN_KEY}");
    let (status, body) = http(
        &api.addr,
        "DELETE",
        &format!("/v1/revocations/fp:{fp}?allowlist=true"),
        &[("Authorization", &auth)],
        "",
    )
    .expect("un-revoke");
    assert_eq!(status, 200, "{body}");
    let allowlisted_at_detector = wait_until(Duration::from_secs(10), || {
        http(
            &all.addr,
            "GET",
            &format!("/v1/sessions/{fp}"),
            &[("Authorization", &auth)],
            "",
        )
        .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
        .is_some_and(|view| view["denylist"]["allowlisted"] == true)
    });
    assert!(allowlisted_at_detector, "{}", tail(&all.log(), 10));
    assert_eq!(check_fingerprint(&all, fp), "allow");
}

/// The numbers in BENCHMARKS.md ("Kafka"): events/s through the broker into detection, and
/// revocation propagation from one replica's API to visible at another's. Not a test (it
/// asserts nothing about timing); run it on a quiet machine:
/// `cargo test --release --test kafka measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a test: see BENCHMARKS.md"]
fn measure_throughput_and_propagation() {
    let Some(tools) = tools("measure") else {
        return;
    };
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let log = simulate(dir.path(), "1500", "11");
    let total = line_count(&log);
    let broker = Broker::start(&tools);
    broker.create_topic("access-logs", 6);
    broker.create_topic("tokenwatch.denylist", 1);
    broker.create_topic("tokenwatch.dead-letter", 1);
    broker.produce_file("access-logs", &log, "sub");

    // Throughput: the whole log waits on the topic; one `all` instance reads it from the start.
    let all = Instance::start(&kafka_config(dir.path(), &broker, "all", "all.toml"));
    assert!(wait_until(Duration::from_secs(60), || kafka_events(
        &all.metrics()
    ) > 0.0));
    let started = std::time::Instant::now();
    assert!(wait_until(Duration::from_secs(600), || {
        kafka_events(&all.metrics()) >= total as f64
    }));
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "throughput: {total} events through the broker into detection in {elapsed:.2} s \
         = {:.0} events/s (one instance, 6 partitions)",
        total as f64 / elapsed
    );
    drop(all);

    // Propagation: an admin revocation at replica A until POST /v1/check answers `revoke`
    // at replica B (both role api), polled every 200 µs.
    let a = Instance::start(&kafka_config(dir.path(), &broker, "api", "a.toml"));
    let b = Instance::start(&kafka_config(dir.path(), &broker, "api", "b.toml"));
    for instance in [&a, &b] {
        assert!(wait_until(Duration::from_secs(60), || instance
            .status("/readyz")
            == 200));
    }
    let auth = format!("Bearer {ADMIN_KEY}");
    let mut latencies = Vec::new();
    for i in 0..300u32 {
        let fp = format!("{:032x}", 0xfeed_0000_0000u64 + u64::from(i));
        let sent = std::time::Instant::now();
        let (status, body) = http(
            &a.addr,
            "POST",
            "/v1/revoke",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            &format!(r#"{{"key":"fp:{fp}","reason":"measure","ttl":"1h"}}"#),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        while check_fingerprint(&b, &fp) != "revoke" {
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "never visible at B"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "propagation (admin POST at A → visible at B, {} revocations): p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1]
    );
    let histogram = b.metrics();
    println!(
        "B's tokenwatch_revocation_propagation_seconds: count {}, sum {:.3} s",
        metric_sum(
            &histogram,
            "tokenwatch_revocation_propagation_seconds_count"
        ),
        metric_sum(&histogram, "tokenwatch_revocation_propagation_seconds_sum")
    );
}

#[test]
fn repartition_catches_impossible_travel_across_instances_when_producers_partition_by_line() {
    let Some(tools) = tools("repartition") else {
        return;
    };
    let _serial = serial();
    // Twelve tokens, each used three times in Berlin and then twice in São Paulo ten minutes
    // later; and twelve honest ones that stay in Berlin. Each token's five lines go to two
    // partitions owned by different detectors — its first three to one, its last two to the
    // other — so one instance reads every Berlin use and the other every later one: only
    // re-keying by session brings them together.
    let f = Fixture::new("");
    let mut lines = Vec::new();
    for user in 0..24 {
        let token = f.jwt(&format!("traveller-{user}"), recent(0).secs());
        let (city, kind) = if user < 12 {
            ("São Paulo", NetKind::AltResidential)
        } else {
            ("Berlin", NetKind::Residential)
        };
        for i in 0..3 {
            let from = ip("Berlin", NetKind::Residential, 4);
            lines.push(line(recent(i * 60 + user), from, CHROME, &token, "/"));
        }
        for i in 0..2 {
            let at = recent(600 + i * 60 + user);
            lines.push(line(at, ip(city, kind, 4), CHROME, &token, "/api"));
        }
    }
    let log = f.path("access.jsonl");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let expected = replay_denylist(f.dir.path(), &log);
    let revoked = expected.values().filter(|a| *a == "revoke").count();
    assert_eq!(
        revoked, 12,
        "replay revokes every stolen token: {expected:?}"
    );

    let broker = Broker::start(&tools);
    broker.create_topic("access-logs", 4);
    broker.create_topic("tokenwatch.repartition", 4);
    broker.create_topic("tokenwatch.denylist", 1);
    broker.create_topic("tokenwatch.dead-letter", 1);
    let config = kafka_config(f.dir.path(), &broker, "detector", "detector.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[kafka]\n", "[kafka]\nrepartition = true\n");
    std::fs::write(&config, text).unwrap();
    let detectors = [Instance::start(&config), Instance::start(&config)];
    let split = wait_until(Duration::from_secs(60), || {
        detectors.iter().all(|d| {
            assigned_in(d, "access-logs").len() == 2
                && assigned_in(d, "tokenwatch.repartition").len() == 2
        })
    });
    assert!(
        split,
        "{}\n----\n{}",
        kafka_lines(&detectors[0]),
        kafka_lines(&detectors[1])
    );
    let (mine, theirs) = (
        assigned_in(&detectors[0], "access-logs")[0],
        assigned_in(&detectors[1], "access-logs")[0],
    );
    let cycle = format!("partitions:{mine},{mine},{mine},{theirs},{theirs}");
    broker.produce_file("access-logs", &log, &cycle);
    let total = lines.len() as f64;
    let repartitioned = |d: &Instance| {
        d.metrics()
            .lines()
            .filter(|l| l.starts_with(KAFKA_EVENTS) && l.contains("source=\"repartition\""))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
    };
    let done = wait_until(Duration::from_secs(60), || {
        detectors.iter().map(repartitioned).sum::<f64>() >= total
    });
    assert!(
        done,
        "{}\n----\n{}",
        kafka_lines(&detectors[0]),
        kafka_lines(&detectors[1])
    );
    for d in &detectors {
        assert!(kafka_events(&d.metrics()) > 0.0, "both read access logs");
    }
    // The topic ends as single-instance replay's decisions: every stolen token revoked, no
    // honest one touched.
    let same = wait_until(Duration::from_secs(30), || {
        let records = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(2));
        topic_denylist(&records) == expected
    });
    let records = broker.read_topic("tokenwatch.denylist", usize::MAX, Duration::from_secs(2));
    assert!(
        same,
        "replay {expected:?}\ntopic {:?}",
        topic_denylist(&records)
    );
    // No token crossed the repartition topic: its records carry fingerprints.
    let rekeyed = broker.read_topic(
        "tokenwatch.repartition",
        lines.len(),
        Duration::from_secs(10),
    );
    assert_eq!(rekeyed.len(), lines.len());
    for record in &rekeyed {
        let value = record["value"].as_str().unwrap();
        assert!(
            !value.contains("Bearer") && !value.contains("eyJ"),
            "{value}"
        );
        assert_eq!(record["key"].as_str().unwrap().len(), 32);
    }
}

/// The partitions of `topic` an instance holds now.
fn assigned_in(instance: &Instance, topic: &str) -> Vec<u32> {
    let marker = format!("topic={topic} ");
    let mut held = Vec::new();
    for line in instance.log().lines().filter(|l| l.contains(&marker)) {
        if line.contains("kafka: partitions revoked") {
            held.clear();
        } else if line.contains("kafka: partitions assigned")
            && let Some(rest) = line.split("partitions=").nth(1)
        {
            held = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|p| p.parse().ok())
                .collect();
        }
    }
    held
}
