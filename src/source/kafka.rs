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
//! and bytes (cut at `input.max_line_bytes`; credential-like runs redacted by
//! `credential::redact_unparsed`, as nothing could locate its credentials) and headers `tokenwatch.error` (the
//! `parse_errors_total` reason code), `tokenwatch.topic`, `tokenwatch.partition` and
//! `tokenwatch.offset`; `dead_letters_total` counts it and its offset advances with the rest.
//!
//! **Lag.** `tokenwatch_kafka_consumer_lag{partition}` from librdkafka's statistics (every
//! second): the distance from the committed-or-fetched position to the partition's end;
//! one series per assigned partition (bounded by the topic's partition count, capped at
//! [`MAX_LAG_PARTITIONS`]), removed when the partition is revoked.
//!
//! **Taking a partition over.** Session state lives in the detector that read the session's
//! records. When a partition is new to this instance (a rebalance, a crashed peer, a restart),
//! the source rewinds it `kafka.restore_records` before the group's committed offset and sends
//! those records as *restore* batches: detection runs them through the pipeline to rebuild the
//! sessions' state exactly as their previous owner had it (the pipeline is deterministic) and
//! publishes none of their decisions (the previous owner did); live batches follow from the
//! committed offset. With a topic keyed by session or user, a partition's sessions move whole.
//!
//! It does NOT: parse, decide what is poison (the pipeline does, through
//! `Pipeline::process_batch_reporting`), clear the state of a partition it held earlier and
//! takes back (it is restored on top), or create topics.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};
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

/// One batch sent to detection: where its lines came from, and whether it only restores
/// session state (records the group had already committed, re-read on taking a partition
/// over: processed for state, their decisions not published again).
#[derive(Debug, Clone, Default)]
struct Sent {
    positions: Vec<Position>,
    restore: bool,
}

/// The batches sent to detection and not yet acknowledged, oldest first.
#[derive(Default)]
pub struct Pending {
    batches: Mutex<VecDeque<Sent>>,
    /// Signalled whenever a batch is acknowledged.
    acknowledged: Condvar,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Sent>> {
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
    /// Report `kafka_consumer_lag` (the access-log topic only: one series per partition).
    report_lag: bool,
    pending: Arc<Pending>,
    metrics: Arc<Metrics>,
    drain: Duration,
    /// How many committed records before a newly taken partition's committed offset are
    /// re-read to restore its sessions' state (`kafka.restore_records`; 0 = none).
    restore_records: i64,
    /// The partitions held before the last revocation (eager rebalancing revokes everything
    /// and assigns again: only partitions new to this instance need restoring).
    held: Mutex<BTreeSet<i32>>,
    /// Per partition being restored: the committed offset, where live records start again.
    restore_until: Mutex<BTreeMap<i32, i64>>,
}

impl SourceContext {
    /// Rewind the partitions new to this instance by `restore_records` before their
    /// committed offsets, and note where each restore ends.
    fn plan_restore(&self, consumer: &BaseConsumer<Self>, assignment: &mut TopicPartitionList) {
        let held = lock(&self.held).clone();
        let mut restore_until = lock(&self.restore_until);
        restore_until.clear();
        if self.restore_records <= 0 {
            return;
        }
        let mut new = TopicPartitionList::new();
        for element in assignment.elements() {
            if element.topic() == self.topic && !held.contains(&element.partition()) {
                new.add_partition(&self.topic, element.partition());
            }
        }
        if new.count() == 0 {
            return;
        }
        let committed = match consumer.committed_offsets(new, Duration::from_secs(10)) {
            Ok(committed) => committed,
            Err(error) => {
                tracing::warn!(%error, "kafka: committed offsets unknown; no state restore");
                return;
            }
        };
        for element in committed.elements() {
            if let Offset::Offset(until) = element.offset()
                && until > 0
            {
                let from = (until - self.restore_records).max(0);
                if assignment
                    .set_partition_offset(&self.topic, element.partition(), Offset::Offset(from))
                    .is_ok()
                {
                    restore_until.insert(element.partition(), until);
                }
            }
        }
    }

    /// Whether the record at `offset` of `partition` only restores state; forgets the
    /// partition's restore once its last record is read.
    fn restoring(&self, partition: i32, offset: i64) -> bool {
        let mut restore_until = lock(&self.restore_until);
        match restore_until.get(&partition) {
            Some(until) if offset < *until => {
                if offset + 1 >= *until {
                    restore_until.remove(&partition);
                    tracing::info!(partition, "kafka: session state restored; live from here");
                }
                true
            }
            Some(_) => {
                restore_until.remove(&partition);
                false
            }
            None => false,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, "kafka consumer: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        if !self.report_lag {
            return;
        }
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
fn partition_list(partitions: &TopicPartitionList) -> String {
    let ids: Vec<String> = partitions
        .elements()
        .iter()
        .map(|e| e.partition().to_string())
        .collect();
    ids.join(",")
}

impl ConsumerContext for SourceContext {
    /// librdkafka's default rebalance (assign or unassign, eager or cooperative), with the
    /// commit before a revocation and the state restore of newly taken partitions.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assignment = partitions.clone();
                self.plan_restore(consumer, &mut assignment);
                tracing::info!(
                    topic = %self.topic,
                    partitions = %partition_list(&assignment),
                    restoring = lock(&self.restore_until).len(),
                    "kafka: partitions assigned"
                );
                let mut held = lock(&self.held);
                if !cooperative {
                    // Eager: this is the whole assignment.
                    held.clear();
                }
                held.extend(assignment.elements().iter().map(|e| e.partition()));
                if cooperative {
                    consumer.incremental_assign(&assignment)
                } else {
                    consumer.assign(&assignment)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
                if cooperative {
                    let mut held = lock(&self.held);
                    for element in partitions.elements() {
                        held.remove(&element.partition());
                    }
                    consumer.incremental_unassign(partitions)
                } else {
                    // Eager revokes everything before each assignment: `held` stays as it was
                    // until then, so the assignment can tell the partitions that are new.
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, "kafka: rebalance error; unassigning");
                lock(&self.held).clear();
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "kafka: applying the rebalance failed");
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
        for element in partitions.elements().iter().filter(|_| self.report_lag) {
            let _ = self
                .metrics
                .kafka_consumer_lag
                .remove_label_values(&[&element.partition().to_string()]);
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
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
    /// Subscribe to `topic` in `kafka.group_id` and start the consumer thread, sending lines
    /// of source `kind` (`kafka`: the access-log topic, with the lag metric; `repartition`).
    /// Returns the source and the [`Acknowledger`] the detection thread calls after each of
    /// its batches.
    #[allow(clippy::too_many_arguments)] // call sites in `app` and a test, every argument distinct
    pub fn spawn(
        kafka: &KafkaConfig,
        secrets: &Secrets,
        topic: &str,
        kind: SourceKind,
        limits: SourceLimits,
        drain: Duration,
        metrics: Arc<Metrics>,
        tx: mpsc::Sender<Vec<RawLine>>,
        stop: Arc<AtomicBool>,
    ) -> Result<(KafkaSource, Acknowledger), KafkaError> {
        let pending = Arc::new(Pending::default());
        let context = SourceContext {
            topic: topic.to_string(),
            report_lag: kind == SourceKind::Kafka,
            pending: pending.clone(),
            metrics: metrics.clone(),
            drain,
            restore_records: i64::try_from(kafka.restore_records).unwrap_or(i64::MAX),
            held: Mutex::default(),
            restore_until: Mutex::default(),
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
                consume(&consumer, kind, limits, &tx, &pending, &stop);
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
    kind: SourceKind,
    limits: SourceLimits,
    tx: &mpsc::Sender<Vec<RawLine>>,
    pending: &Pending,
    stop: &AtomicBool,
) {
    let mut batch = Batch::new(limits.batch_size);
    let poll = Duration::from_millis(100).min(limits.poll_interval.max(Duration::from_millis(1)));
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(poll) {
            None => {}
            Some(Err(error)) => {
                // Transport errors are retried by librdkafka and already logged through the
                // context's `error` (with librdkafka's suppression of repeats).
                tracing::debug!(%error, "kafka consumer");
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(Ok(message)) => {
                let restore = consumer
                    .context()
                    .restoring(message.partition(), message.offset());
                // A batch restores state or is live, never both.
                if restore != batch.sent.restore && !batch.send(tx, pending) {
                    return;
                }
                batch.sent.restore = restore;
                let payload = message.payload().unwrap_or_default();
                let truncated = payload.len() > limits.max_line_bytes;
                batch.lines.push(RawLine {
                    source: kind,
                    bytes: payload[..payload.len().min(limits.max_line_bytes)].to_vec(),
                    truncated,
                });
                batch.sent.positions.push(Position {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message
                        .key()
                        .map(|k| k[..k.len().min(MAX_KEY_BYTES)].to_vec()),
                });
                batch.first_at.get_or_insert_with(Instant::now);
            }
        }
        let due = batch.lines.len() >= limits.batch_size
            || batch
                .first_at
                .is_some_and(|t| t.elapsed() >= limits.poll_interval);
        if due && !batch.send(tx, pending) {
            return;
        }
    }
    batch.send(tx, pending);
}

/// Longest record key kept for the dead-letter copy.
const MAX_KEY_BYTES: usize = 1024;

/// The batch being filled.
struct Batch {
    lines: Vec<RawLine>,
    sent: Sent,
    first_at: Option<Instant>,
    size: usize,
}

impl Batch {
    fn new(size: usize) -> Self {
        Batch {
            lines: Vec::with_capacity(size),
            sent: Sent::default(),
            first_at: None,
            size,
        }
    }

    /// Queue the batch's positions, then send it (blocking while the channel is full);
    /// `false` when detection is gone.
    fn send(&mut self, tx: &mpsc::Sender<Vec<RawLine>>, pending: &Pending) -> bool {
        self.first_at = None;
        if self.lines.is_empty() {
            return true;
        }
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(self.size));
        let sent = Sent {
            positions: std::mem::replace(&mut self.sent.positions, Vec::with_capacity(self.size)),
            restore: self.sent.restore,
        };
        // Queued before the send, so detection can never acknowledge a batch it cannot find.
        pending.lock().push_back(sent);
        if tx.blocking_send(lines).is_err() {
            pending.lock().pop_back();
            return false;
        }
        true
    }
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
        let sent = match self.pending.lock().front() {
            Some(sent) if sent.positions.len() == batch.len() => sent.clone(),
            _ => {
                // Only Kafka batches come here, in the order they were sent; anything else
                // is a wiring bug: store nothing (the records will be read again).
                tracing::error!(
                    "kafka: acknowledged a batch that was not sent; offsets not stored"
                );
                return Ok(());
            }
        };
        if sent.restore {
            // Already dead-lettered and stored by the partition's previous owner.
            self.pending.lock().pop_front();
            self.pending.acknowledged.notify_all();
            return Ok(());
        }
        let positions = sent.positions;
        if !rejected.is_empty() {
            let records: Vec<Record> = rejected
                .iter()
                .filter_map(|(i, reason)| {
                    let (line, position) = (batch.get(*i)?, positions.get(*i)?);
                    Some(Record {
                        // The record could not be parsed, so its credentials could not be
                        // found: never publish a raw token, redact what looks like one.
                        key: position
                            .key
                            .as_deref()
                            .map(crate::credential::redact_unparsed),
                        payload: Some(crate::credential::redact_unparsed(&line.bytes)),
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

    /// Whether the oldest batch not yet acknowledged only restores state: process it, publish
    /// none of its decisions, then acknowledge it.
    pub fn restoring(&self) -> bool {
        self.pending.lock().front().is_some_and(|sent| sent.restore)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
    use rdkafka::types::RDKafkaApiKey;

    /// At-least-once on rdkafka's in-process mock cluster: while the dead-letter topic refuses
    /// records, a batch with a poison record is not acknowledged and its offsets are not
    /// committed; once it accepts them, they are.
    #[test]
    fn offsets_are_committed_only_after_the_dead_letters_are_acknowledged() {
        let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        mock.create_topic("logs", 1, 1).expect("topic");
        mock.create_topic("dead", 1, 1).expect("topic");
        let mut kafka: KafkaConfig = toml::from_str(&format!(
            "brokers = \"{}\"\ntopic = \"logs\"\ndead_letter_topic = \"dead\"\ngroup_id = \"g\"\n",
            mock.bootstrap_servers()
        ))
        .expect("kafka config");
        for (key, value) in [
            ("message.timeout.ms", "1000"),
            ("session.timeout.ms", "6000"),
            ("auto.commit.interval.ms", "100"),
        ] {
            kafka.librdkafka.insert(key.into(), value.into());
        }
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .create()
            .expect("producer");
        for value in ["{\"time\":1}", "not json", "{\"time\":2}"] {
            producer
                .send(BaseRecord::<(), str>::to("logs").payload(value))
                .map_err(|(e, _)| e)
                .expect("send");
        }
        producer.flush(Duration::from_secs(5)).expect("flush");

        let (tx, mut rx) = mpsc::channel(4);
        let stop = Arc::new(AtomicBool::new(false));
        let limits = SourceLimits {
            max_line_bytes: 1024,
            batch_size: 3,
            // Long enough for the three records to close one batch by size.
            poll_interval: Duration::from_secs(2),
        };
        let (source, acknowledger) = KafkaSource::spawn(
            &kafka,
            &Secrets::default(),
            "logs",
            SourceKind::Kafka,
            limits,
            Duration::from_secs(5),
            Arc::new(Metrics::new()),
            tx,
            stop.clone(),
        )
        .expect("source");
        let deadline = Instant::now() + Duration::from_secs(30);
        let batch = loop {
            assert!(Instant::now() < deadline, "records never arrived");
            if let Ok(batch) = rx.try_recv() {
                break batch;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(batch.len(), 3, "one batch of three");
        let rejected = [(1, ParseReason::InvalidJson)];

        // The dead-letter topic refuses (every produce fails until the timeout): nothing is
        // stored.
        mock.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 200],
        );
        assert!(acknowledger.published(&batch, &rejected).is_err());
        assert!(!acknowledger.restoring());
        assert_eq!(
            acknowledger.pending.lock().len(),
            1,
            "still waiting to be acknowledged"
        );

        // It accepts again: dead-lettered, stored, and committed at shutdown.
        mock.clear_request_errors(RDKafkaApiKey::Produce);
        let deadline = Instant::now() + Duration::from_secs(30);
        while acknowledger.published(&batch, &rejected).is_err() {
            assert!(Instant::now() < deadline, "dead letters never acknowledged");
        }
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        source.join();
        assert_eq!(
            committed(&mock.bootstrap_servers()),
            Offset::Offset(3),
            "the next record to read"
        );
    }

    /// Group `g`'s committed offset of `logs`/0, asked by a client outside the group.
    fn committed(brokers: &str) -> Offset {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "g")
            .create()
            .expect("reader");
        let mut query = TopicPartitionList::new();
        query.add_partition("logs", 0);
        let committed = reader
            .committed_offsets(query, Duration::from_secs(10))
            .expect("committed");
        committed.elements()[0].offset()
    }
}
