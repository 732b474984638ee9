//! Distributed mode's Kafka clients (DESIGN §6, issue 16), shared by the Kafka source
//! (`source::kafka`, stage 1) and the denylist topic (`publish::topic`, stage 8).
//!
//! Where it sits: at the edges only. `app` builds clients from `[kafka]` with
//! [`client_config`]; the pipeline never sees Kafka. This module holds what every client
//! shares: the librdkafka settings (the `[kafka.librdkafka]` table passed through as-is, after
//! the settings tokenwatch's guarantees rest on, which that table may not override), the
//! bridge from librdkafka's log to `tracing`, and [`Producer`], a producer that blocks until
//! the broker acknowledged (or refused) every record of a call.
//!
//! Invariants: a producer is idempotent with `acks=all` (DESIGN §6); a record is reported
//! delivered only when the broker acknowledged it; errors carry a bounded `code()`; no raw
//! token ever reaches a record (callers publish fingerprints and keys only).
//!
//! It does NOT: create topics (operators do, README "Production on Kafka"; the tests create
//! theirs), retry on its own beyond librdkafka's retries within `message.timeout.ms`, or
//! decide what a record means.

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::message::{DeliveryResult, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};

use crate::config::{KafkaConfig, Secrets};

/// A Kafka operation failed. `code()` is a bounded metric label.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A client could not be created (bad setting in `[kafka.librdkafka]`, …).
    #[error("kafka client: {0}")]
    Client(String),
    /// The broker did not acknowledge a record (or librdkafka gave up within
    /// `message.timeout.ms`).
    #[error("kafka produce to {topic}: {reason}")]
    Produce {
        /// The topic.
        topic: String,
        /// librdkafka's error text.
        reason: String,
    },
    /// Subscribing, assigning or committing failed.
    #[error("kafka consumer: {0}")]
    Consumer(String),
}

impl KafkaError {
    /// Bounded code.
    pub fn code(&self) -> &'static str {
        match self {
            KafkaError::Client(_) => "client",
            KafkaError::Produce { .. } => "produce",
            KafkaError::Consumer(_) => "consumer",
        }
    }
}

/// What a client is for; sets the `client.id` suffix so broker logs tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The access-log consumer group (and the repartition topic's).
    Source,
    /// Reads the denylist topic from the beginning (assigned, not a group member).
    DenylistReader,
    /// Produces to the denylist, dead-letter and repartition topics.
    Producer,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::Source => "source",
            Purpose::DenylistReader => "denylist-reader",
            Purpose::Producer => "producer",
        }
    }
}

/// The client settings for `purpose`: the pass-through table first, then the settings
/// tokenwatch's guarantees rest on (validation already refused overriding them), then
/// `TOKENWATCH_KAFKA_SASL_PASSWORD` over `sasl.password`.
pub fn client_config(kafka: &KafkaConfig, secrets: &Secrets, purpose: Purpose) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("client.id", format!("tokenwatch-{}", purpose.name()));
    if purpose != Purpose::Producer {
        // Bound prefetch memory (REFERENCES): librdkafka's default queues up to 64 MiB per
        // consumer; 16 MiB keeps several batches in hand. The table may raise it.
        config.set("queued.max.messages.kbytes", "16384");
        // Lag per partition and broker state come from the statistics.
        config.set("statistics.interval.ms", "1000");
    }
    for (key, value) in &kafka.librdkafka {
        config.set(key, value);
    }
    if let Some(password) = &secrets.kafka_sasl_password {
        config.set("sasl.password", password);
    }
    config.set("bootstrap.servers", &kafka.brokers);
    match purpose {
        Purpose::Source => {
            // At-least-once (rust-rdkafka's at_least_once example): offsets are stored by us
            // only once a batch's decisions are durable, and auto-committed from that store.
            config.set("group.id", &kafka.group_id);
            config.set("enable.auto.commit", "true");
            config.set("enable.auto.offset.store", "false");
            config.set("auto.offset.reset", "earliest");
            config.set("enable.partition.eof", "false");
        }
        Purpose::DenylistReader => {
            // Assigned from the beginning, never a group member: librdkafka still wants a
            // group id, but nothing is ever committed under it.
            config.set("group.id", format!("{}.denylist-reader", kafka.group_id));
            config.set("enable.auto.commit", "false");
            config.set("enable.auto.offset.store", "false");
            config.set("auto.offset.reset", "earliest");
            // End of partition = caught up (`/readyz`): the broker's fetch high-watermark,
            // which every Kafka-compatible broker reports.
            config.set("enable.partition.eof", "true");
            // Propagation latency (revocation → visible here) includes a fetch's wait: the
            // topic is tiny, so ask often rather than let a broker hold an empty fetch for
            // librdkafka's default 500 ms. The table may set it.
            if !kafka.librdkafka.contains_key("fetch.wait.max.ms") {
                config.set("fetch.wait.max.ms", "10");
            }
        }
        Purpose::Producer => {
            config.set("enable.idempotence", "true");
            config.set("acks", "all");
            // Revocations are latency-sensitive (REFERENCES): no batching delay unless the
            // table asks for one.
            if !kafka.librdkafka.contains_key("linger.ms") {
                config.set("linger.ms", "0");
            }
        }
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    config
}

/// librdkafka's log and errors, to `tracing` (warnings and worse only).
pub(crate) fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    // `[kafka.librdkafka]` applies to every client, so a consumer setting is "ignored by this
    // producer" and the reverse: expected, not worth a warning at every start.
    // FAIL lines (connection failures) come again through each client's `error` callback,
    // which logs them: once is enough.
    if facility == "FAIL"
        || (facility == "CONFWARN" && message.contains(" property and will be ignored by this "))
    {
        tracing::debug!(facility, "librdkafka: {message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
        _ => tracing::debug!(facility, "librdkafka: {message}"),
    }
}

/// One record to produce: a key, a payload (`None`: a tombstone) and headers.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The record's key (partitioning, compaction).
    pub key: Option<Vec<u8>>,
    /// The value; `None` is a tombstone (un-revocation on the compacted denylist topic).
    pub payload: Option<Vec<u8>>,
    /// Headers, e.g. the dead-letter reason.
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

type Delivered = mpsc::Sender<Result<(), String>>;

/// Routes each delivery report back to the call that produced it.
pub struct DeliveryContext;

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, "kafka producer: {reason}");
    }
    fn stats(&self, _statistics: rdkafka::Statistics) {}
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Delivered>;

    fn delivery(&self, result: &DeliveryResult<'_>, tell: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((error, _)) => Err(error.to_string()),
        };
        // The caller may have given up waiting (shutdown); nothing to tell then.
        let _ = tell.send(outcome);
    }
}

/// An idempotent, `acks=all` producer whose [`send_all`](Producer::send_all) returns once the
/// broker acknowledged every record (or one failed).
pub struct Producer {
    inner: ThreadedProducer<DeliveryContext>,
    /// How long to wait for acknowledgements beyond librdkafka's own `message.timeout.ms`.
    wait: Duration,
}

impl Producer {
    /// A producer from `[kafka]`.
    pub fn new(kafka: &KafkaConfig, secrets: &Secrets) -> Result<Self, KafkaError> {
        let config = client_config(kafka, secrets, Purpose::Producer);
        let message_timeout = config
            .get("message.timeout.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(300_000);
        let inner = config
            .create_with_context(DeliveryContext)
            .map_err(|e| KafkaError::Client(e.to_string()))?;
        Ok(Producer {
            inner,
            wait: Duration::from_millis(message_timeout) + Duration::from_secs(5),
        })
    }

    /// Produce `records` to `topic` and wait until each is acknowledged. Blocking: call it
    /// from the detection thread or `spawn_blocking`. Records of one key keep their order
    /// (idempotent producer).
    pub fn send_all(&self, topic: &str, records: &[Record]) -> Result<(), KafkaError> {
        if records.is_empty() {
            return Ok(());
        }
        let fail = |reason: String| KafkaError::Produce {
            topic: topic.to_string(),
            reason,
        };
        let (tx, rx) = mpsc::channel();
        for record in records {
            let mut base: BaseRecord<'_, [u8], [u8], Box<Delivered>> =
                BaseRecord::with_opaque_to(topic, Box::new(tx.clone()));
            if let Some(key) = &record.key {
                base = base.key(key.as_slice());
            }
            if let Some(payload) = &record.payload {
                base = base.payload(payload.as_slice());
            }
            if !record.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for (key, value) in &record.headers {
                    headers = headers.insert(rdkafka::message::Header {
                        key,
                        value: Some(value.as_slice()),
                    });
                }
                base = base.headers(headers);
            }
            let mut pending = base;
            loop {
                match self.inner.send(pending) {
                    Ok(()) => break,
                    // The local queue is full: wait for deliveries to make room
                    // (backpressure), then try again.
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        pending = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((error, _)) => return Err(fail(error.to_string())),
                }
            }
        }
        drop(tx);
        for _ in records {
            match rx.recv_timeout(self.wait) {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(fail(reason)),
                Err(_) => return Err(fail("no delivery report in time".into())),
            }
        }
        Ok(())
    }

    /// Wait up to `timeout` for records still queued (shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.inner.flush(timeout) {
            tracing::warn!(%error, "kafka producer: records still queued at shutdown");
        }
    }
}
