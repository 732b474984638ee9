//! Stage 1, source: the access-log topic as a consumer group (DESIGN §1, §6; issue 16).
//!
//! [`KafkaSource::spawn`] runs a `BaseConsumer` on its own thread, subscribed to
//! `kafka.topic` in `kafka.group_id`, and sends batches of [`RawLine`]s (`source = kafka`)
//! over the same bounded channel as every other source: when detection falls behind, the send
//! blocks and the consumer stops fetching (backpressure; librdkafka's prefetch is capped by
//! `queued.max.messages.kbytes`). A batch closes at `input.batch_size` records or
//! `input.poll_interval` after its first record, so a quiet topic still flows at once.
//!
//! **At-least-once.** Offsets are never stored when a record is read. The source queues each
//! batch's positions ([`Pending`]) in the order it sends the batches; the detection thread,
//! after a Kafka batch's decisions are published (revocations journaled or produced to the
//! denylist topic and acknowledged), calls [`Acknowledger::published`], which sends the
//! batch's unparseable records to the dead-letter topic, waits for the broker to acknowledge
//! them, and only then stores the batch's offsets; librdkafka commits stored offsets every
//! `auto.commit.interval.ms`, on partition revocation (before the partitions are handed over,
//! once the batches in flight are stored, bounded by `input.drain_timeout`) and at shutdown.
//! A crash between a revocation and its offset store replays the batch: a duplicate decision,
//! harmless (DESIGN §1); a record is never skipped.
//!
//! **Poison records.** A record `parse` rejects goes to `kafka.dead_letter_topic` with its key
//! and bytes (cut at `input.max_line_bytes`) and headers `tokenwatch.error` (the
//! `parse_errors_total` reason code), `tokenwatch.topic`, `tokenwatch.partition` and
//! `tokenwatch.offset`; `dead_letters_total` counts it and its offset advances with the rest.
//!
//! **Lag.** `tokenwatch_kafka_consumer_lag{partition}` from librdkafka's statistics (every
//! second): the distance from the committed-or-fetched position to the partition's end;
//! one series per assigned partition (bounded by the topic's partition count, capped at
//! [`MAX_LAG_PARTITIONS`]), removed when the partition is revoked.
//!
//! It does NOT: parse, decide what is poison (the pipeline does, through
//! `Pipeline::process_batch_reporting`), hand per-session state over on a rebalance (state is
//! keyed by fingerprint; with a topic keyed by session a partition's sessions move whole and
//! their old state is only evicted by idle time), or create topics.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, Statistics};
use tokio::sync::mpsc;

use crate::config::{KafkaConfig, Secrets};
use crate::event::{RawLine, SourceKind};
use crate::kafka::{KafkaError, Producer, Purpose, Record, client_config, log_to_tracing};
use crate::metrics::Metrics;
use crate::parse::ParseReason;

use super::SourceLimits;

/// Partitions above this number get no lag series (bounded label cardinality).
pub const MAX_LAG_PARTITIONS: i32 = 1024;

/// Where one line of a batch came from.
#[derive(Debug, Clone)]
struct Position {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
}

/// The positions of the batches sent to detection and not yet acknowledged, oldest first.
#[derive(Default)]
pub struct Pending {
    batches: Mutex<VecDeque<Vec<Position>>>,
    /// Signalled whenever a batch is acknowledged.
    acknowledged: Condvar,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Vec<Position>>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until every batch sent has been acknowledged, at most `timeout`. Returns whether
    /// none is left.
    fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut batches = self.lock();
        while !batches.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            batches = match self.acknowledged.wait_timeout(batches, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

/// The consumer's callbacks: commit on revocation, lag from statistics, logs to `tracing`.
pub struct SourceContext {
    topic: String,
    pending: Arc<Pending>,
    metrics: Arc<Metrics>,
    drain: Duration,
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, "kafka consumer: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (partition, stats) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition; lag -1 is "not known yet".
            if (0..MAX_LAG_PARTITIONS).contains(partition) && stats.consumer_lag >= 0 {
                self.metrics
                    .kafka_consumer_lag
                    .with_label_values(&[&partition.to_string()])
                    .set(stats.consumer_lag);
            }
        }
    }
}

/// `0,1,2`: a partition list for the log.
fn partition_list(partitions: &rdkafka::TopicPartitionList) -> String {
    let ids: Vec<String> = partitions
        .elements()
        .iter()
        .map(|e| e.partition().to_string())
        .collect();
    ids.join(",")
}

impl ConsumerContext for SourceContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(
                topic = %self.topic,
                partitions = %partition_list(partitions),
                "kafka: partitions assigned"
            );
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        tracing::info!(
            topic = %self.topic,
            partitions = %partition_list(partitions),
            "kafka: partitions revoked"
        );
        // The batches in flight still hold these partitions' records: let detection publish
        // and store them while the partitions are ours, then commit, so the next owner starts
        // after them rather than replaying them.
        if !self.pending.wait_drained(self.drain) {
            tracing::warn!(
                "kafka: partitions revoked with batches still in detection; their records \
                 will be processed again by the next owner (at-least-once)"
            );
        }
        commit(consumer, "revocation");
        for element in partitions.elements() {
            let _ = self
                .metrics
                .kafka_consumer_lag
                .remove_label_values(&[&element.partition().to_string()]);
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &rdkafka::TopicPartitionList,
    ) {
        if let Err(error) = result
            && !no_offset(&error)
        {
            tracing::warn!(%error, "kafka: offset commit failed; retried at the next commit");
        }
    }
}

/// Nothing was stored since the last commit: not a failure.
fn no_offset(error: &rdkafka::error::KafkaError) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NoOffset)
}

fn commit(consumer: &BaseConsumer<SourceContext>, when: &'static str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::debug!(when, "kafka: offsets committed"),
        Err(error) if no_offset(&error) => {}
        Err(error) => tracing::warn!(%error, when, "kafka: offset commit failed"),
    }
}

type GroupConsumer = BaseConsumer<SourceContext>;

/// The running source: join it at shutdown, after detection has drained.
pub struct KafkaSource {
    thread: std::thread::JoinHandle<()>,
}

impl KafkaSource {
    /// Subscribe to `topic` in `kafka.group_id` and start the consumer thread. Returns the
    /// source and the [`Acknowledger`] the detection thread calls after each Kafka batch.
    #[allow(clippy::too_many_arguments)] // one call site in `app`, every argument distinct
    pub fn spawn(
        kafka: &KafkaConfig,
        secrets: &Secrets,
        topic: &str,
        limits: SourceLimits,
        drain: Duration,
        metrics: Arc<Metrics>,
        tx: mpsc::Sender<Vec<RawLine>>,
        stop: Arc<AtomicBool>,
    ) -> Result<(KafkaSource, Acknowledger), KafkaError> {
        let pending = Arc::new(Pending::default());
        let context = SourceContext {
            topic: topic.to_string(),
            pending: pending.clone(),
            metrics: metrics.clone(),
            drain,
        };
        let consumer: Arc<GroupConsumer> = Arc::new(
            client_config(kafka, secrets, Purpose::Source)
                .create_with_context(context)
                .map_err(|e| KafkaError::Client(e.to_string()))?,
        );
        consumer
            .subscribe(&[topic])
            .map_err(|e| KafkaError::Consumer(e.to_string()))?;
        let acknowledger = Acknowledger {
            consumer: consumer.clone(),
            pending: pending.clone(),
            producer: Arc::new(Producer::new(kafka, secrets)?),
            topic: topic.to_string(),
            dead_letter_topic: kafka.dead_letter_topic.clone(),
            metrics,
        };
        let topic = topic.to_string();
        let thread = std::thread::Builder::new()
            .name("tokenwatch-kafka".into())
            .spawn(move || {
                consume(&consumer, limits, &tx, &pending, &stop);
                // Detection ends when every sender is gone; this one goes first, then the
                // batches in flight are acknowledged and committed.
                drop(tx);
                if !pending.wait_drained(drain) {
                    tracing::warn!(
                        topic,
                        "kafka: shutting down with batches not yet published; they will be \
                         read again at the next start (at-least-once)"
                    );
                }
                commit(&consumer, "shutdown");
                consumer.unsubscribe();
            })
            .map_err(|e| KafkaError::Client(format!("cannot spawn the consumer thread: {e}")))?;
        Ok((KafkaSource { thread }, acknowledger))
    }

    /// Wait for the consumer thread (it ends once `stop` is set and its batches are
    /// acknowledged, or `drain` passed).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("kafka consumer thread panicked");
        }
    }
}

/// Poll, batch and send until `stop` or until detection is gone.
fn consume(
    consumer: &GroupConsumer,
    limits: SourceLimits,
    tx: &mpsc::Sender<Vec<RawLine>>,
    pending: &Pending,
    stop: &AtomicBool,
) {
    let mut lines: Vec<RawLine> = Vec::with_capacity(limits.batch_size);
    let mut positions: Vec<Position> = Vec::with_capacity(limits.batch_size);
    let mut first_at: Option<Instant> = None;
    let poll = Duration::from_millis(100).min(limits.poll_interval.max(Duration::from_millis(1)));
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(poll) {
            None => {}
            Some(Err(error)) => {
                // Transport errors are retried by librdkafka; say so at a bounded rate.
                tracing::warn!(%error, "kafka consumer");
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(Ok(message)) => {
                let payload = message.payload().unwrap_or_default();
                let truncated = payload.len() > limits.max_line_bytes;
                let bytes = payload[..payload.len().min(limits.max_line_bytes)].to_vec();
                lines.push(RawLine {
                    source: SourceKind::Kafka,
                    bytes,
                    truncated,
                });
                positions.push(Position {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message
                        .key()
                        .map(|k| k[..k.len().min(MAX_KEY_BYTES)].to_vec()),
                });
                first_at.get_or_insert_with(Instant::now);
            }
        }
        let due = lines.len() >= limits.batch_size
            || first_at.is_some_and(|t| t.elapsed() >= limits.poll_interval);
        if due && !send(tx, pending, &mut lines, &mut positions, limits.batch_size) {
            return;
        }
        if lines.is_empty() {
            first_at = None;
        }
    }
    send(tx, pending, &mut lines, &mut positions, limits.batch_size);
}

/// Longest record key kept for the dead-letter copy.
const MAX_KEY_BYTES: usize = 1024;

/// Queue the batch's positions, then send it (blocking while the channel is full); `false`
/// when detection is gone.
fn send(
    tx: &mpsc::Sender<Vec<RawLine>>,
    pending: &Pending,
    lines: &mut Vec<RawLine>,
    positions: &mut Vec<Position>,
    batch_size: usize,
) -> bool {
    if lines.is_empty() {
        return true;
    }
    let batch = std::mem::replace(lines, Vec::with_capacity(batch_size));
    // Queued before the send, so detection can never acknowledge a batch it cannot find.
    pending
        .lock()
        .push_back(std::mem::replace(positions, Vec::with_capacity(batch_size)));
    if tx.blocking_send(batch).is_err() {
        pending.lock().pop_back();
        return false;
    }
    true
}

/// Called by the detection thread once a Kafka batch's decisions are published: dead-letters
/// its unparseable records, then stores its offsets.
pub struct Acknowledger {
    consumer: Arc<GroupConsumer>,
    pending: Arc<Pending>,
    producer: Arc<Producer>,
    topic: String,
    dead_letter_topic: String,
    metrics: Arc<Metrics>,
}

impl Acknowledger {
    /// `batch` (a Kafka batch, the oldest not yet acknowledged) is published; `rejected`
    /// holds the positions of its lines `parse` refused, with why. On a dead-letter failure
    /// nothing is stored and the error is returned: call again (the batch stays first).
    pub fn published(
        &self,
        batch: &[RawLine],
        rejected: &[(usize, ParseReason)],
    ) -> Result<(), KafkaError> {
        let positions = match self.pending.lock().front() {
            Some(positions) if positions.len() == batch.len() => positions.clone(),
            _ => {
                // Only Kafka batches come here, in the order they were sent; anything else
                // is a wiring bug: store nothing (the records will be read again).
                tracing::error!(
                    "kafka: acknowledged a batch that was not sent; offsets not stored"
                );
                return Ok(());
            }
        };
        if !rejected.is_empty() {
            let records: Vec<Record> = rejected
                .iter()
                .filter_map(|(i, reason)| {
                    let (line, position) = (batch.get(*i)?, positions.get(*i)?);
                    Some(Record {
                        key: position.key.clone(),
                        payload: Some(line.bytes.clone()),
                        headers: vec![
                            ("tokenwatch.error", reason.code().as_bytes().to_vec()),
                            ("tokenwatch.topic", self.topic.as_bytes().to_vec()),
                            (
                                "tokenwatch.partition",
                                position.partition.to_string().into_bytes(),
                            ),
                            (
                                "tokenwatch.offset",
                                position.offset.to_string().into_bytes(),
                            ),
                        ],
                    })
                })
                .collect();
            self.producer.send_all(&self.dead_letter_topic, &records)?;
            self.metrics.dead_letters.inc_by(records.len() as u64);
        }
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for position in &positions {
            let offset = last.entry(position.partition).or_insert(position.offset);
            *offset = (*offset).max(position.offset);
        }
        for (partition, offset) in last {
            // `rd_kafka_offset_store` stores offset + 1: the next record to read. A partition
            // revoked meanwhile refuses: its next owner reads the batch again.
            if let Err(error) = self.consumer.store_offset(&self.topic, partition, offset) {
                tracing::debug!(%error, partition, "kafka: offset not stored (partition revoked)");
            }
        }
        self.pending.lock().pop_front();
        self.pending.acknowledged.notify_all();
        Ok(())
    }

    /// The batch at the head will never be published (shutdown gave up on it): forget it
    /// without storing its offsets, so shutdown does not wait for it.
    pub fn abandon(&self) {
        self.pending.lock().pop_front();
        self.pending.acknowledged.notify_all();
    }

    /// Wait for dead-letter records still queued (shutdown).
    pub fn flush(&self, timeout: Duration) {
        self.producer.flush(timeout);
    }
}
