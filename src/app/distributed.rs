//! Wiring, distributed mode (DESIGN §6, issue 16): `tokenwatch run` with `[kafka]`.
//!
//! Every role reads the denylist topic into memory ([`DenylistReader`]) and writes its changes
//! there ([`DenylistTopic`], the denylist's shared log). Then, by `role`:
//!
//! - `all`: the Kafka source (consumer group on `kafka.topic`), any file/stdin source, the
//!   detection thread, and the whole API;
//! - `detector`: the same sources and detection; the API serves `/metrics`, `/healthz` and
//!   `/readyz` only;
//! - `api`: the whole API from the topic's denylist; no source, no detection.
//!
//! With `kafka.repartition`, a second Kafka source reads `kafka.repartition_topic` in the same
//! group: access-log batches are parsed and identified here and their events re-keyed by
//! fingerprint onto that topic (`source/repartition.rs`), and detection runs on what this
//! instance reads back from it — one session's events on one instance whatever the
//! producers' partitioning. An access-log batch is acknowledged once its events are on the
//! repartition topic.
//!
//! The detection thread here differs from embedded mode's in one way: a Kafka batch is
//! acknowledged to the source ([`Acknowledger::published`]: dead letters, then offsets) only
//! after its decisions are published — produced to the denylist topic and acknowledged — and
//! publishing is retried (with backoff, until shutdown) rather than dropped, because a dropped
//! batch would be a lost revocation once its offsets are stored.
//!
//! Shutdown order: sources stop; the Kafka source hands its last batch over and waits (up to
//! `input.drain_timeout`) for detection to publish what it sent, then commits; detection
//! drains; the reader stops; producers flush; the API and housekeeping stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use super::{DenylistStore, Routes, Services, source_limits};
use crate::api::{Readiness, ReadyFlag};
use crate::config::{Config, Role, Secrets};
use crate::event::{Action, RawLine, SourceKind};
use crate::kafka::Record;
use crate::parse::ParseReason;
use crate::pipeline::{Pipeline, Totals};
use crate::publish::Publisher;
use crate::publish::topic::{DenylistReader, DenylistTopic, ReaderStatus};
use crate::source::Source;
use crate::source::kafka::{Acknowledger, KafkaSource};
use crate::track::SessionTracker;

/// The reader's view of readiness, as `/readyz` flags.
struct Flags(Arc<Readiness>);

impl ReaderStatus for Flags {
    fn caught_up(&self, caught_up: bool) {
        self.0.set(ReadyFlag::Denylist, caught_up);
    }
    fn connected(&self, connected: bool) {
        self.0.set(ReadyFlag::Kafka, connected);
    }
}

/// `tokenwatch run` in distributed mode, until `shutdown` resolves.
pub(super) async fn run(
    config: Config,
    secrets: Secrets,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let kafka = config
        .kafka
        .clone()
        .context("distributed mode without [kafka]")?;
    for unused in crate::config::unused_settings(&config) {
        tracing::warn!("{unused}");
    }
    let topic = Arc::new(DenylistTopic::new(&kafka, &secrets).context("kafka.denylist_topic")?);
    let detects = config.role != Role::Api;
    let routes = match config.role {
        Role::Detector => Routes::Health,
        Role::All | Role::Api => Routes::All,
    };
    let (tx, rx) = mpsc::channel::<Vec<RawLine>>(config.input.channel_capacity);
    let tracker = detects.then(|| Arc::new(SessionTracker::new(&config.detect)));
    let services = Services::start_with(
        &config,
        &secrets,
        tracker.clone(),
        detects.then(|| tx.clone()),
        DenylistStore::Shared(topic.clone()),
        routes,
    )
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = DenylistReader::spawn(
        &kafka,
        &secrets,
        services.denylist.clone(),
        services.metrics.clone(),
        Arc::new(Flags(services.readiness.clone())),
        reader_stop.clone(),
    )
    .context("kafka.denylist_topic reader")?;
    tracing::info!(
        role = config.role.name(),
        brokers = %kafka.brokers,
        denylist_topic = %kafka.denylist_topic,
        "distributed mode"
    );

    let mut detection = None;
    let mut kafka_sources = Vec::new();
    if let Some(tracker) = tracker {
        let stages = services.start_detection(&config, &secrets, tracker).await?;
        let limits = source_limits(&config);
        let spawn_source = |topic: &str, kind: SourceKind| {
            KafkaSource::spawn(
                &kafka,
                &secrets,
                topic,
                kind,
                limits,
                config.input.drain_timeout.0,
                services.metrics.clone(),
                tx.clone(),
                stop.clone(),
            )
        };
        let (source, acknowledger) =
            spawn_source(&kafka.topic, SourceKind::Kafka).context("kafka.topic")?;
        tracing::info!(topic = %kafka.topic, group = %kafka.group_id, "consuming access logs");
        kafka_sources.push(source);
        let repartition = if kafka.repartition {
            let (source, stage) = spawn_source(&kafka.repartition_topic, SourceKind::Repartition)
                .context("kafka.repartition_topic")?;
            tracing::info!(topic = %kafka.repartition_topic, "repartitioning by session");
            kafka_sources.push(source);
            Some(Repartition {
                acknowledger: stage,
                producer: crate::kafka::Producer::new(&kafka, &secrets)
                    .context("kafka.repartition_topic producer")?,
                topic: kafka.repartition_topic.clone(),
            })
        } else {
            None
        };
        let pipeline = Pipeline::new(stages, services.metrics.clone());
        let publisher = services.live_publisher();
        detection = Some(spawn_detection(
            pipeline,
            publisher,
            rx,
            acknowledger,
            repartition,
            stop.clone(),
        ));
        if let Some(path) = &config.input.path {
            tracing::info!(path = %path.display(), "following input file");
            Source::File {
                path: path.clone(),
                follow: true,
            }
            .spawn(limits, tx.clone(), stop.clone());
        }
        if config.input.stdin {
            Source::Stdin.spawn(limits, tx.clone(), stop.clone());
        }
        services.readiness.mark_ready(ReadyFlag::Geoip);
        services.readiness.mark_ready(ReadyFlag::Model);
    } else {
        services.spawn_housekeeping(None, Duration::MAX);
        drop(rx);
    }
    drop(tx);

    shutdown.await;
    stop.store(true, Ordering::Relaxed);
    let drain = config.input.drain_timeout.0;
    // The Kafka source hands its last batch to detection and waits for it to be published
    // before committing; detection ends once every sender (the API's ingest included) is gone.
    let source_done = tokio::task::spawn_blocking(move || {
        for source in kafka_sources {
            source.join();
        }
    });
    let audit = services.audit.clone();
    services.shutdown().await?;
    if let Some(detection) = detection {
        let join = tokio::task::spawn_blocking(move || detection.join());
        match tokio::time::timeout(drain + Duration::from_secs(1), join).await {
            Ok(Ok(Ok(totals))) => tracing::info!(
                lines = totals.lines,
                revoked = totals.decided(Action::Revoke),
                "drained"
            ),
            _ => tracing::warn!(
                "detection did not drain within input.drain_timeout ({})",
                humantime::format_duration(drain)
            ),
        }
    }
    let _ = tokio::time::timeout(drain + Duration::from_secs(1), source_done).await;
    super::flush_audit(audit).await;
    reader_stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    let flushing = topic.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.flush(Duration::from_secs(5))).await;
    Ok(())
}

/// With `kafka.repartition`: the repartition topic's source and the producer that re-keys
/// identified events onto it.
struct Repartition {
    acknowledger: Acknowledger,
    producer: crate::kafka::Producer,
    topic: String,
}

/// The detection thread of distributed mode: like embedded mode's, plus the Kafka
/// acknowledgement after each Kafka batch is published and, with repartitioning, the two
/// stages (access-log batches are identified and re-keyed; repartition batches detected).
fn spawn_detection(
    mut pipeline: Pipeline,
    mut publisher: Publisher,
    mut rx: mpsc::Receiver<Vec<RawLine>>,
    ingest: Acknowledger,
    repartition: Option<Repartition>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Totals> {
    std::thread::Builder::new()
        .name("tokenwatch-detect".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let decided = Instant::now();
                let source = batch.first().map(|l| l.source);
                let mut rejected = Vec::new();
                let (acknowledger, decisions) = match (source, &repartition) {
                    (Some(SourceKind::Kafka), Some(stage)) => {
                        // First stage: identify and re-key by session; detection happens
                        // where the session's partition of the repartition topic is read.
                        if !ingest.restoring() {
                            let events = pipeline.identify_batch(&batch, |position, reason| {
                                rejected.push((position, reason))
                            });
                            let records: Vec<Record> = events
                                .iter()
                                .map(|event| {
                                    let (key, value) = crate::source::repartition::encode(event);
                                    Record {
                                        key: Some(key),
                                        payload: Some(value),
                                        headers: Vec::new(),
                                    }
                                })
                                .collect();
                            let produced = retry(&stop, "re-keying onto the repartition topic", || {
                                stage
                                    .producer
                                    .send_all(&stage.topic, &records)
                                    .map_err(|e| (e.code(), e.to_string()))
                            });
                            if !produced {
                                ingest.abandon();
                                continue;
                            }
                        }
                        (&ingest, None)
                    }
                    (Some(SourceKind::Repartition), Some(stage)) => {
                        let mut events = Vec::with_capacity(batch.len());
                        for (position, line) in batch.iter().enumerate() {
                            match crate::source::repartition::decode(&line.bytes) {
                                Ok(event) if !line.truncated => events.push(event),
                                _ => rejected.push((position, ParseReason::InvalidJson)),
                            }
                        }
                        let decisions = pipeline.detect_identified(events, SourceKind::Repartition);
                        // Restore batches rebuild state only: their decisions were published.
                        let publish = !stage.acknowledger.restoring();
                        (&stage.acknowledger, publish.then_some(decisions))
                    }
                    (Some(SourceKind::Kafka), None) => {
                        let decisions = pipeline.process_batch_reporting(&batch, |p, r| {
                            rejected.push((p, r))
                        });
                        let publish = !ingest.restoring();
                        (&ingest, publish.then_some(decisions))
                    }
                    _ => {
                        let decisions = pipeline.process_batch(&batch);
                        if let Err(e) = publisher.publish(decisions, decided) {
                            tracing::error!(error = %e, code = e.code(), "publishing decisions failed");
                        }
                        continue;
                    }
                };
                // Until published, then until acknowledged: a Kafka batch's offsets are
                // stored only after both, so a failure here is retried, never skipped. (A
                // retried publish counts its detections again in `detections_total`.)
                let published = match decisions {
                    None => true,
                    Some(decisions) => retry(&stop, "publishing decisions", || {
                        publisher
                            .publish(decisions.clone(), decided)
                            .map(drop)
                            .map_err(|e| (e.code(), e.to_string()))
                    }),
                };
                let acknowledged = published
                    && retry(&stop, "dead-lettering and storing offsets", || {
                        acknowledger
                            .published(&batch, &rejected)
                            .map_err(|e| (e.code(), e.to_string()))
                    });
                if !acknowledged {
                    // Shutdown gave up on this batch: its offsets stay unstored, so it is read
                    // again at the next start.
                    acknowledger.abandon();
                }
            }
            ingest.flush(Duration::from_secs(5));
            if let Some(stage) = &repartition {
                stage.producer.flush(Duration::from_secs(5));
                stage.acknowledger.flush(Duration::from_secs(5));
            }
            pipeline.totals().clone()
        })
        .unwrap_or_else(|e| panic!("cannot spawn detection thread: {e}"))
}

/// Call `attempt` until it succeeds, backing off from 100 ms to 5 s; gives up (false) once
/// `stop` is set. Each failure is logged with its code (a bounded rate: at most one line per
/// backoff step).
fn retry(
    stop: &AtomicBool,
    what: &'static str,
    mut attempt: impl FnMut() -> Result<(), (&'static str, String)>,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match attempt() {
            Ok(()) => return true,
            Err((code, error)) => {
                tracing::error!(code, %error, "{what} failed; retrying in {backoff:?}");
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
