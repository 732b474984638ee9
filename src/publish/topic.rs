//! Stage 8, publish — distributed mode: the shared denylist on a compacted Kafka topic
//! (DESIGN §6, issue 16).
//!
//! Two halves, both on the `[kafka] denylist_topic`:
//!
//! - [`DenylistTopic`], the writer: the denylist's [`SharedLog`] in distributed mode. Every
//!   change — a detector's revocation or step-up (through `Publisher`), an admin's revocation
//!   or un-revocation through any replica's API — is produced with the denylist key as the
//!   record key and the entry as JSON (the journal's entry form), or a tombstone (no value)
//!   for a removal, by an idempotent producer with `acks=all`; the call returns once the
//!   broker acknowledged it. An admin's allowlisting is a record keyed `allow:fp:…` with
//!   `{"until_ms": …}`, lifted by a tombstone when an admin revokes the token again. Records
//!   of one key keep their order; compaction keeps the latest.
//! - [`DenylistReader`], on every instance: assigned every partition of the topic from the
//!   beginning (never a group member, so each replica reads everything) and applies each
//!   record to the in-memory denylist ([`Denylist::apply_shared`]). `/readyz`'s `denylist`
//!   flag turns on once every partition has been read to its end (the fetch high-watermark);
//!   its `kafka` flag follows the broker connection (librdkafka's statistics, every second),
//!   so a replica cut off from Kafka reports not-ready while it keeps answering `/v1/check`
//!   from memory, and reconnects by itself. `revocation_propagation_seconds` observes, for
//!   each revocation this replica did not hold yet, wall clock now − the entry's
//!   `created_at_ms` (the deciding replica's clock at decision: clocks are assumed in sync,
//!   as for every cross-host latency).
//!
//! Invariants: a record's key and value are capped ([`MAX_KEY_BYTES`],
//! [`MAX_RECORD_BYTES`]) and a record that does not parse is counted and skipped, never
//! applied; nothing but denylist keys (fingerprints and claim ids, never a token) is written.
//!
//! It does NOT: compact the topic (the broker does, `cleanup.policy=compact`) or expire
//! entries and allowlistings (every replica purges lapsed ones on its own clock).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};

use crate::config::{KafkaConfig, Secrets};
use crate::denylist::{
    DenyKey, Denylist, EntryAction, MAX_KEY_BYTES, MAX_RECORD_BYTES, SharedChange, SharedLog,
    wall_clock_ms,
};
use crate::event::Fingerprint;
use crate::kafka::{KafkaError, Producer, Purpose, Record, client_config, log_to_tracing};
use crate::metrics::Metrics;

/// The writer: produces denylist changes to the topic and waits for the broker.
pub struct DenylistTopic {
    producer: Producer,
    topic: String,
}

impl DenylistTopic {
    /// A producer for `kafka.denylist_topic`.
    pub fn new(kafka: &KafkaConfig, secrets: &Secrets) -> Result<Self, KafkaError> {
        Ok(DenylistTopic {
            producer: Producer::new(kafka, secrets)?,
            topic: kafka.denylist_topic.clone(),
        })
    }

    /// Wait for records still queued (shutdown).
    pub fn flush(&self, timeout: Duration) {
        self.producer.flush(timeout);
    }
}

impl SharedLog for DenylistTopic {
    fn append(&self, changes: &[SharedChange]) -> Result<(), String> {
        let records = changes
            .iter()
            .map(encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        self.producer
            .send_all(&self.topic, &records)
            .map_err(|e| e.to_string())
    }
}

/// The key prefix of allowlisting records: `allow:fp:…` never parses as a denylist key, so
/// an older reader skips it (`bad_key`) instead of misreading it.
const ALLOW_PREFIX: &str = "allow:";

/// An allowlisting record's value.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Allowlisted {
    until_ms: i64,
}

/// One change as a record: key = denylist key, value = entry JSON, no value = tombstone.
fn encode(change: &SharedChange) -> serde_json::Result<Record> {
    let (key, payload) = match change {
        SharedChange::Put(key, entry) => (key.to_string(), Some(serde_json::to_vec(entry)?)),
        SharedChange::Remove(key) => (key.to_string(), None),
        SharedChange::Allow(fp, until_ms) => (
            allow_key(*fp),
            Some(serde_json::to_vec(&Allowlisted {
                until_ms: *until_ms,
            })?),
        ),
        SharedChange::Unallow(fp) => (allow_key(*fp), None),
    };
    Ok(Record {
        key: Some(key.into_bytes()),
        payload,
        headers: Vec::new(),
    })
}

fn allow_key(fp: Fingerprint) -> String {
    format!("{ALLOW_PREFIX}{}", DenyKey::Fingerprint(fp))
}

/// Why a record of the denylist topic was skipped (bounded; logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    NoKey,
    BadKey,
    TooLarge,
    BadEntry,
}

impl Skip {
    fn code(self) -> &'static str {
        match self {
            Skip::NoKey => "no_key",
            Skip::BadKey => "bad_key",
            Skip::TooLarge => "too_large",
            Skip::BadEntry => "bad_entry",
        }
    }
}

/// Decode one record ([`encode`]'s inverse).
fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<SharedChange, Skip> {
    let key = key.ok_or(Skip::NoKey)?;
    if key.len() > MAX_KEY_BYTES {
        return Err(Skip::TooLarge);
    }
    if value.is_some_and(|v| v.len() > MAX_RECORD_BYTES) {
        return Err(Skip::TooLarge);
    }
    let key = std::str::from_utf8(key).map_err(|_| Skip::BadKey)?;
    if let Some(allowed) = key.strip_prefix(ALLOW_PREFIX) {
        let Ok(DenyKey::Fingerprint(fp)) = allowed.parse() else {
            return Err(Skip::BadKey);
        };
        return match value {
            None => Ok(SharedChange::Unallow(fp)),
            Some(value) => serde_json::from_slice::<Allowlisted>(value)
                .map(|a| SharedChange::Allow(fp, a.until_ms))
                .map_err(|_| Skip::BadEntry),
        };
    }
    let key: DenyKey = key.parse().map_err(|_| Skip::BadKey)?;
    match value {
        None => Ok(SharedChange::Remove(key)),
        Some(value) => serde_json::from_slice(value)
            .map(|entry| SharedChange::Put(key, entry))
            .map_err(|_| Skip::BadEntry),
    }
}

/// Readiness as the reader sees it; `app` turns it into `/readyz` flags.
pub trait ReaderStatus: Send + Sync + 'static {
    /// Every partition has been read to its end at least once (`denylist` flag).
    fn caught_up(&self, caught_up: bool);
    /// A broker is (or is no longer) reachable (`kafka` flag).
    fn connected(&self, connected: bool);
}

/// The reader's callbacks: broker state from the statistics, logs to `tracing`.
struct ReaderContext {
    status: Arc<dyn ReaderStatus>,
}

impl ClientContext for ReaderContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => self.status.connected(false),
            // Reaching the end is news for `read`, which gets it too, not a problem.
            Some(RDKafkaErrorCode::PartitionEOF) => return,
            _ => {}
        }
        tracing::warn!(%error, "kafka denylist reader: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        // Bootstrap and internal entries say nothing about the cluster: a learned broker that
        // is UP does.
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.source != "internal" && b.state == "UP");
        self.status.connected(up);
    }
}

impl ConsumerContext for ReaderContext {}

/// The running reader; stops when the stop flag passed to [`DenylistReader::spawn`] is set.
pub struct DenylistReader {
    thread: std::thread::JoinHandle<()>,
}

impl DenylistReader {
    /// Start reading `kafka.denylist_topic` from the beginning into `denylist`.
    pub fn spawn(
        kafka: &KafkaConfig,
        secrets: &Secrets,
        denylist: Arc<Denylist>,
        metrics: Arc<Metrics>,
        status: Arc<dyn ReaderStatus>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<ReaderContext> =
            client_config(kafka, secrets, Purpose::DenylistReader)
                .create_with_context(ReaderContext {
                    status: status.clone(),
                })
                .map_err(|e| KafkaError::Client(e.to_string()))?;
        let topic = kafka.denylist_topic.clone();
        let thread = std::thread::Builder::new()
            .name("tokenwatch-denylist".into())
            .spawn(move || read(&consumer, &topic, &denylist, &metrics, &*status, &stop))
            .map_err(|e| KafkaError::Client(format!("cannot spawn the reader thread: {e}")))?;
        Ok(DenylistReader { thread })
    }

    /// Wait for the reader to end (after its stop flag is set: within a poll, 100 ms).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("kafka denylist reader thread panicked");
        }
    }
}

/// Assign every partition from the beginning (retrying until the topic's metadata can be
/// read), then apply records until `stop`.
fn read(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    denylist: &Denylist,
    metrics: &Metrics,
    status: &dyn ReaderStatus,
    stop: &AtomicBool,
) {
    let partitions = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match assign_from_beginning(consumer, topic) {
            Ok(partitions) => break partitions,
            Err(error) => {
                status.connected(false);
                tracing::warn!(%error, topic, "kafka: cannot read the denylist topic yet; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let mut caught_up = false;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(RdKafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
                if !caught_up && partitions.iter().all(|p| at_end.contains(p)) {
                    caught_up = true;
                    tracing::info!(
                        topic,
                        entries = denylist.len(),
                        "denylist topic read to its end: ready"
                    );
                    status.caught_up(true);
                }
            }
            Some(Err(error)) => {
                // Already logged through the context's `error`.
                tracing::debug!(%error, topic, "kafka denylist reader");
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                match decode(message.key(), message.payload()) {
                    Ok(change) => {
                        let revokes = matches!(&change, SharedChange::Put(_, entry)
                            if entry.action == EntryAction::Revoke);
                        if let Some(age_ms) = denylist.apply_shared(change, wall_clock_ms())
                            && revokes
                        {
                            metrics
                                .revocation_propagation
                                .observe(age_ms as f64 / 1000.0);
                        }
                    }
                    Err(skip) => tracing::warn!(
                        topic,
                        partition = message.partition(),
                        offset = message.offset(),
                        reason = skip.code(),
                        "denylist topic: record skipped"
                    ),
                }
            }
        }
    }
}

fn assign_from_beginning(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {topic} has no partitions (does it exist?)"));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::denylist::{Entry, Origin};

    fn entry(created_at_ms: i64) -> Entry {
        Entry {
            action: EntryAction::Revoke,
            reasons: vec!["admin".into()],
            origin: Origin::Admin,
            created_at_ms,
            expires_at_ms: i64::MAX,
            not_before: None,
            score: None,
        }
    }

    /// rdkafka's in-process mock cluster (no CreateTopics, so the topic is made through it):
    /// fault injection the real-broker tests cannot do deterministically.
    #[test]
    fn a_change_the_topic_does_not_acknowledge_is_an_error_and_fails_safe() {
        let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        mock.create_topic("deny", 1, 1).expect("topic");
        let mut kafka: KafkaConfig = toml::from_str(&format!(
            "brokers = \"{}\"\ndenylist_topic = \"deny\"\n",
            mock.bootstrap_servers()
        ))
        .expect("kafka config");
        // Give up on an unacknowledged record after 1 s instead of 5 minutes.
        kafka
            .librdkafka
            .insert("message.timeout.ms".into(), "1000".into());
        let topic = Arc::new(DenylistTopic::new(&kafka, &Secrets::default()).expect("producer"));
        let denylist = Denylist::shared(topic);
        let first: DenyKey = "fp:9f86d081884c7d659a2feaa0c55ad015".parse().expect("key");
        let second: DenyKey = "fp:0123456789abcdef0123456789abcdef".parse().expect("key");

        // The client's first produce waits for the mock's metadata; on a busy machine that can
        // outlast the 1 s timeout, so the first revocation is retried until acknowledged.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while denylist.revoke(first.clone(), entry(1)).is_err() {
            assert!(std::time::Instant::now() < deadline, "never acknowledged");
        }

        mock.broker_down(1).expect("down");
        // A revocation the broker never acknowledges: an error with its code, and still in
        // force here (denying early is safe). The mock cluster takes the broker down on its
        // own thread, so on a busy machine a record may still slip through just before:
        // revoke again until one is refused.
        let error = (0..20)
            .find_map(|attempt| {
                let refused = denylist.revoke(second.clone(), entry(2 + attempt)).err();
                if refused.is_none() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                refused
            })
            .expect("a revocation the broker never acknowledged");
        assert_eq!(error.code(), "topic");
        assert!(denylist.get(&second).is_some());
        // An un-revocation the broker never acknowledges does not happen.
        assert!(denylist.unrevoke(&first, false).is_err());
        assert!(denylist.get(&first).is_some());

        // Back: the client reconnects with backoff, so an admin retrying succeeds.
        mock.broker_up(1).expect("up");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while denylist.unrevoke(&first, false).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "never acknowledged again"
            );
        }
        assert!(denylist.get(&first).is_none());
    }

    #[test]
    fn records_decode_to_changes_or_a_bounded_skip_reason() {
        let entry = Entry {
            action: EntryAction::Revoke,
            reasons: vec!["impossible_travel".into()],
            origin: Origin::Detector,
            created_at_ms: 1,
            expires_at_ms: 2,
            not_before: None,
            score: Some(0.9),
        };
        let key: DenyKey = "fp:9f86d081884c7d659a2feaa0c55ad015".parse().expect("key");
        let DenyKey::Fingerprint(token) = key.clone() else {
            unreachable!()
        };
        // Every change comes back as itself from its record.
        for change in [
            SharedChange::Put(key.clone(), entry.clone()),
            SharedChange::Remove(key.clone()),
            SharedChange::Allow(token, 1_700_000_000_000),
            SharedChange::Unallow(token),
        ] {
            let record = encode(&change).expect("encode");
            let got = decode(record.key.as_deref(), record.payload.as_deref());
            assert_eq!(got, Ok(change));
        }
        let json = serde_json::to_vec(&entry).expect("json");
        let fp = b"fp:9f86d081884c7d659a2feaa0c55ad015";
        let too_long = vec![b'a'; MAX_KEY_BYTES + 1];
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Skip);
        let cases: [Case<'_>; 7] = [
            (None, Some(&json), Skip::NoKey),
            (Some(b"nope"), Some(&json), Skip::BadKey),
            (Some(b"allow:sub:iss:x"), None, Skip::BadKey),
            (
                Some(b"allow:fp:9f86d081884c7d659a2feaa0c55ad015"),
                Some(&json),
                Skip::BadEntry,
            ),
            (Some(&too_long), Some(&json), Skip::TooLarge),
            (Some(fp), Some(&huge), Skip::TooLarge),
            (Some(fp), Some(b"{\"action\":1}"), Skip::BadEntry),
        ];
        for (key, value, want) in cases {
            assert_eq!(decode(key, value).map(|_| ()).unwrap_err(), want);
        }
    }
}
