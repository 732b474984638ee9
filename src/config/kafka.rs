//! `[kafka]` (DESIGN §6, §9): distributed mode's settings and their validation, part of
//! `config`'s parse → validate steps.
//!
//! Validation is pure, like the rest of `config`: brokers and topic names are checked for
//! shape, never contacted (the clients connect when `app` builds them). The pass-through table
//! `[kafka.librdkafka]` is capped in size and may not override the settings at-least-once and
//! the idempotent producer rest on ([`RESERVED_SETTINGS`]). The roles that split
//! detection from the API require `[kafka]`.
//!
//! Settings distributed mode does not use are accepted, because DESIGN §9's example file sets
//! them beside `[kafka]`, and named in a warning at start by [`unused_settings`]:
//! `denylist.journal` (the topic is the durable log) and, for role `api`, the sources.
//!
//! It does NOT know librdkafka's own keys: an unknown one is reported by librdkafka when the
//! client is created, at start.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Config, Env, Role, Secrets};

/// `[kafka]`: absent = embedded mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers (`host:port,host:port`).
    pub brokers: String,
    /// Consumer group of the detectors on the access-log (and repartition) topic.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Access-log topic.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Compacted denylist topic, keyed by denylist key.
    #[serde(default = "default_denylist_topic")]
    pub denylist_topic: String,
    /// Dead-letter topic: records that cannot be parsed, with the reason in a header.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// Re-key identified events by session onto [`repartition_topic`](Self::repartition_topic)
    /// before detection.
    #[serde(default)]
    pub repartition: bool,
    /// The internal topic of `repartition` (not in DESIGN §9's list: added with issue 16).
    #[serde(default = "default_repartition_topic")]
    pub repartition_topic: String,
    /// Records re-read before a newly taken partition's committed offset to restore its
    /// sessions' state (not in DESIGN §9's list: added with issue 16); 0 = none.
    #[serde(default = "default_restore_records")]
    pub restore_records: u64,
    /// Passed through to librdkafka as-is (security: `security.protocol`, `sasl.*`, `ssl.*`).
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

fn default_group() -> String {
    "tokenwatch".into()
}
fn default_topic() -> String {
    "access-logs".into()
}
fn default_denylist_topic() -> String {
    "tokenwatch.denylist".into()
}
fn default_dead_letter_topic() -> String {
    "tokenwatch.dead-letter".into()
}
fn default_restore_records() -> u64 {
    100_000
}
fn default_repartition_topic() -> String {
    "tokenwatch.repartition".into()
}

/// Entries `[kafka.librdkafka]` may hold, and the longest key and value.
const MAX_SETTINGS: usize = 128;
const MAX_SETTING_BYTES: usize = 4096;

/// librdkafka settings tokenwatch sets itself: at-least-once, the idempotent producer and
/// catch-up detection rest on them, so `[kafka.librdkafka]` may not override them (validation
/// refuses them, naming the key). Here, not in `kafka`, so config validates without the
/// `kafka` feature.
const RESERVED_SETTINGS: [&str; 8] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "enable.idempotence",
    "acks",
    "auto.offset.reset",
];

/// The environment variable whose value overrides `sasl.password`.
pub const SASL_PASSWORD_ENV: &str = "TOKENWATCH_KAFKA_SASL_PASSWORD";

/// Kafka's rule for topic names: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Check `[kafka]` and the settings that depend on it; adds to `errors`.
pub(super) fn validate(
    config: &Config,
    env: &dyn Env,
    secrets: &mut Secrets,
    errors: &mut Vec<String>,
) {
    let Some(kafka) = &config.kafka else {
        if config.role != Role::All {
            errors.push(format!(
                "role: {:?} needs [kafka]: splitting detection from the check API needs the \
                 shared denylist topic of distributed mode (DESIGN §6); use \"all\" or add \
                 [kafka]",
                config.role.name()
            ));
        }
        return;
    };
    if kafka.brokers.trim().is_empty() || kafka.brokers.len() > MAX_SETTING_BYTES {
        errors.push("kafka.brokers: list at least one host:port".into());
    }
    if kafka.group_id.is_empty() || kafka.group_id.len() > 249 {
        errors.push("kafka.group_id: must be 1 to 249 bytes".into());
    }
    let topics = [
        ("kafka.topic", &kafka.topic),
        ("kafka.denylist_topic", &kafka.denylist_topic),
        ("kafka.dead_letter_topic", &kafka.dead_letter_topic),
        ("kafka.repartition_topic", &kafka.repartition_topic),
    ];
    for (name, topic) in topics {
        if !valid_topic(topic) {
            errors.push(format!(
                "{name}: {topic:?} is not a Kafka topic name (1 to 249 of A-Z a-z 0-9 . _ -)"
            ));
        }
    }
    for (i, (name, topic)) in topics.iter().enumerate() {
        if topics[..i].iter().any(|(_, t)| t == topic) {
            errors.push(format!(
                "{name}: {topic:?} is also another of tokenwatch's topics; each needs its own"
            ));
        }
    }
    if kafka.librdkafka.len() > MAX_SETTINGS {
        errors.push(format!("kafka.librdkafka: at most {MAX_SETTINGS} settings"));
    }
    for (key, value) in &kafka.librdkafka {
        if key.len() > MAX_SETTING_BYTES || value.len() > MAX_SETTING_BYTES {
            errors.push(format!(
                "kafka.librdkafka: keys and values are at most {MAX_SETTING_BYTES} bytes"
            ));
        } else if RESERVED_SETTINGS.contains(&key.as_str()) {
            errors.push(format!(
                "kafka.librdkafka.{key:?}: set by tokenwatch (at-least-once delivery and the \
                 idempotent producer rest on it); use kafka.brokers / kafka.group_id, or leave \
                 it out"
            ));
        }
    }
    secrets.kafka_sasl_password = env.var(SASL_PASSWORD_ENV);
}

/// Settings the file sets that distributed mode does not use, each with why (logged at start).
pub fn unused_settings(config: &Config) -> Vec<String> {
    let mut unused = Vec::new();
    if config.kafka.is_none() {
        return unused;
    }
    if config.denylist.journal.is_some() {
        unused.push(
            "denylist.journal is not used in distributed mode: the denylist topic is the \
             durable log, and every instance rebuilds its denylist from it"
                .to_string(),
        );
    }
    if config.role == Role::Api && (config.input.path.is_some() || config.input.stdin) {
        unused.push(
            "input.path / input.stdin are not read by role \"api\": it runs no sources".to_string(),
        );
    }
    unused
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const MINIMAL: &str = "[tokens]\npepper = \"0123456789abcdef0123\"\n";

    fn errors_of(text: &str) -> Vec<String> {
        let config = Config::parse(text, Path::new(".")).expect("parses");
        match config.validate(&[(SASL_PASSWORD_ENV, "s3cret")]) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0,
        }
    }

    #[test]
    #[cfg(feature = "kafka")]
    fn roles_need_kafka_and_kafka_settings_are_checked() {
        let kafka = "[kafka]\nbrokers = \"127.0.0.1:9092\"\n";
        // (extra TOML before, after MINIMAL; expected error fragment; None = valid)
        let cases: [(&str, &str, Option<&str>); 12] = [
            ("", "[kafka]\nbrokers = \"b:1\"\nrepartition = true\n", None),
            ("role = \"all\"\n", "", None),
            ("", kafka, None),
            ("role = \"detector\"\n", kafka, None),
            ("role = \"api\"\n", kafka, None),
            (
                "role = \"detector\"\n",
                "",
                Some("role: \"detector\" needs [kafka]"),
            ),
            ("role = \"api\"\n", "", Some("role: \"api\" needs [kafka]")),
            ("", "[kafka]\nbrokers = \" \"\n", Some("kafka.brokers")),
            (
                "",
                "[kafka]\nbrokers = \"b:1\"\ntopic = \"a b\"\n",
                Some("kafka.topic: \"a b\" is not a Kafka topic name"),
            ),
            (
                "",
                "[kafka]\nbrokers = \"b:1\"\ndead_letter_topic = \"access-logs\"\n",
                Some("kafka.dead_letter_topic: \"access-logs\" is also another"),
            ),
            (
                "",
                "[kafka]\nbrokers = \"b:1\"\n[kafka.librdkafka]\n\"enable.auto.offset.store\" = \"true\"\n",
                Some("kafka.librdkafka.\"enable.auto.offset.store\": set by tokenwatch"),
            ),
            (
                "",
                "[denylist]\njournal = \"deny.journal\"\n[kafka]\nbrokers = \"b:1\"\n",
                None,
            ),
        ];
        for (before, after, want) in cases {
            let text = format!("{before}{MINIMAL}{after}");
            let errors = errors_of(&text);
            match want {
                None => assert!(errors.is_empty(), "{text}: {errors:?}"),
                Some(want) => assert!(
                    errors.iter().any(|e| e.contains(want)),
                    "{text}: want {want:?} in {errors:?}"
                ),
            }
        }
        // DESIGN §9's example sets a journal and an input file beside [kafka]: valid, and
        // named as unused.
        let api_with_source = format!(
            "role = \"api\"\n[input]\npath = \"/var/log/a.json\"\n{MINIMAL}\
             [denylist]\njournal = \"deny.journal\"\n{kafka}"
        );
        assert!(errors_of(&api_with_source).is_empty());
        let config = Config::parse(&api_with_source, Path::new(".")).expect("parses");
        let unused = unused_settings(&config);
        assert_eq!(unused.len(), 2, "{unused:?}");
        assert!(unused[0].starts_with("denylist.journal"), "{unused:?}");
        // Typos inside [kafka] are parse errors naming the key.
        let typo = format!("{MINIMAL}[kafka]\nbrokers = \"b:9092\"\ngroup = \"x\"\n");
        let err = Config::parse(&typo, Path::new(".")).expect_err("unknown key");
        assert!(err.to_string().contains("group"), "{err}");
    }

    #[test]
    #[cfg(not(feature = "kafka"))]
    fn without_the_kafka_feature_kafka_is_an_error_naming_the_key() {
        let text = format!("{MINIMAL}[kafka]\nbrokers = \"b:1\"\n");
        let errors = errors_of(&text);
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("kafka: this build has no Kafka support")),
            "{errors:?}"
        );
        // The roles still need [kafka], whatever the build.
        assert!(
            errors_of(&format!("role = \"api\"\n{MINIMAL}"))
                .iter()
                .any(|e| e.contains("needs [kafka]"))
        );
    }

    #[test]
    #[cfg(feature = "kafka")]
    fn the_sasl_password_comes_from_the_environment() {
        let text = format!("{MINIMAL}[kafka]\nbrokers = \"b:1\"\n");
        let config = Config::parse(&text, Path::new(".")).expect("parses");
        let secrets = config
            .validate(&[(SASL_PASSWORD_ENV, "s3cret")])
            .expect("valid");
        assert_eq!(secrets.kafka_sasl_password.as_deref(), Some("s3cret"));
        assert_eq!(
            config.kafka.expect("kafka").denylist_topic,
            "tokenwatch.denylist"
        );
    }

    #[test]
    fn topic_names_follow_kafkas_rule() {
        for (name, ok) in [
            ("access-logs", true),
            ("tokenwatch.denylist", true),
            ("a_b-C.9", true),
            ("", false),
            (".", false),
            ("..", false),
            ("a/b", false),
            ("é", false),
        ] {
            assert_eq!(valid_topic(name), ok, "{name:?}");
        }
        assert!(!valid_topic(&"a".repeat(250)));
    }
}
