//! Wiring: builds the stages from a validated config and runs them — `replay` (offline, to
//! EOF) and `run` (the daemon); the lab's `demo` builds on [`Services`].
//!
//! This is the one place that knows every stage. It owns threads, channels, signals and the
//! API server; the stages themselves stay pure. The detection thread is a plain OS thread
//! (CPU work, rayon inside), fed batches over a bounded channel by the sources and by
//! `POST /v1/events`; backpressure is the channel's bound.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiState, Readiness, ReadyFlag};
use crate::audit::AuditLog;
use crate::config::{Config, Role, Secrets};
use crate::decide::Policy;
use crate::denylist::Denylist;
use crate::enrich::{Catalog, Enricher};
use crate::event::{Action, RawLine, SourceKind};
use crate::identify::Identifier;
use crate::metrics::Metrics;
use crate::parse::Parser;
use crate::pipeline::{Pipeline, Stages, Totals};
use crate::publish::Publisher;
use crate::score::{RuleScorer, Scorer};
use crate::source::{self, FileCheckpoints, PositionStore, Source, SourceLimits};
use crate::track::SessionTracker;

mod check_config;
#[cfg(feature = "kafka")]
mod distributed;

pub use check_config::{CheckReport, DatabaseKind, check_config, check_files, writable_folder};

/// Build the stages (opens key files, GeoIP databases and the model). Every stage is tried,
/// so one run reports every file that cannot be used.
pub fn build_stages(config: &Config, secrets: &Secrets) -> anyhow::Result<Stages> {
    let parser = Parser::new(
        config.input.format,
        &config.input.fields,
        &config.tokens.session_cookie,
        config.input.max_line_bytes,
    )
    .map_err(|e| anyhow::anyhow!("{e}"));
    let identifier = Identifier::from_config(&config.tokens, secrets).map_err(anyhow::Error::from);
    let enricher = Enricher::from_config(&config.geoip)
        .map_err(|e| anyhow::anyhow!("geoip: {e}"))
        .and_then(|enricher| {
            let catalog = Catalog::from_config(&config.networks).map_err(anyhow::Error::from)?;
            Ok(Arc::new(enricher.with_catalog(catalog)))
        });
    let scorer = build_scorer(config);
    match (parser, identifier, enricher, scorer) {
        (Ok(parser), Ok(identifier), Ok(enricher), Ok(scorer)) => Ok(Stages {
            parser,
            identifier,
            enricher,
            tracker: Arc::new(SessionTracker::new(&config.detect)),
            scorer,
            policy: Policy::new(&config.detect, &config.tokens),
            max_future_skew: config.input.max_future_skew.0,
        }),
        (parser, identifier, enricher, scorer) => {
            let errors: Vec<String> =
                [parser.err(), identifier.err(), enricher.err(), scorer.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| format!("  - {e:#}"))
                    .collect();
            anyhow::bail!(
                "{} problem(s) opening what the config names:\n{}",
                errors.len(),
                errors.join("\n")
            )
        }
    }
}

/// The configured scorer: the trained model (with the hard rules) when `detect.model` is set,
/// else the rule-based scorer.
pub fn build_scorer(config: &Config) -> anyhow::Result<Arc<dyn Scorer>> {
    Ok(match &config.detect.model {
        Some(_) if config.detect.uses_builtin_model() => Arc::new(
            crate::model::ModelScorer::builtin(&config.detect)
                .context("detect.model: the built-in model")?,
        ),
        Some(path) => Arc::new(
            crate::model::ModelScorer::load(path, &config.detect)
                .with_context(|| format!("detect.model: {}", path.display()))?,
        ),
        None => Arc::new(RuleScorer::new(&config.detect)),
    })
}

/// Source limits from `[input]`.
pub fn source_limits(config: &Config) -> SourceLimits {
    SourceLimits {
        max_line_bytes: config.input.max_line_bytes,
        batch_size: config.input.batch_size,
        poll_interval: config.input.poll_interval.0,
    }
}

/// The state folder: where `run` keeps what must survive a restart beside the journal (the
/// folder of `denylist.journal`, which the journal's lock gives to one process). `None` when
/// the denylist is memory-only.
pub fn state_dir(config: &Config) -> Option<PathBuf> {
    let journal = config.denylist.journal.as_ref()?;
    Some(crate::config::folder_of(journal).to_path_buf())
}

/// The followed file's saved position (`<state folder>/input.position`), read at start and
/// advanced as detection publishes its batches; `None` without `input.path` or a state folder.
pub fn input_checkpoints(config: &Config) -> Option<Arc<FileCheckpoints>> {
    let path = config.input.path.as_ref()?;
    let Some(state) = state_dir(config) else {
        tracing::warn!(
            "denylist.journal is not set: the input position is not kept, so a restart reads \
             input.path from its start"
        );
        return None;
    };
    Some(Arc::new(FileCheckpoints::open(PositionStore::new(
        &state, path,
    ))))
}

/// Result of a replay.
pub struct ReplayReport {
    /// Counts.
    pub totals: Totals,
    /// Wall time.
    pub elapsed: Duration,
    /// The metrics registry (for tests).
    pub metrics: Arc<Metrics>,
}

/// `tokenwatch replay`: read `input` (a path or `-`) to EOF on event time, writing decision
/// records as JSON lines to `decisions` (stdout when `None`). Publishes to no denylist.
pub fn replay(
    config: &Config,
    secrets: &Secrets,
    input: &str,
    decisions: Option<&Path>,
) -> anyhow::Result<ReplayReport> {
    let metrics = Arc::new(Metrics::new());
    let stages = build_stages(config, secrets)?;
    let mut pipeline = Pipeline::new(stages, metrics.clone());
    let sink: Box<dyn Write + Send> = match decisions {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut publisher = Publisher::replay(sink, metrics.clone());
    let started = Instant::now();
    let (mut rx, reader) = source::read_all(input, source_limits(config));
    // Standard input has no size: rate only.
    let total_bytes = (input != "-")
        .then(|| std::fs::metadata(input).ok().map(|m| m.len()))
        .flatten();
    let mut progress = Progress::new("replay", total_bytes);
    while let Some(batch) = rx.blocking_recv() {
        let decided = Instant::now();
        let bytes: usize = batch.iter().map(|line| line.bytes.len() + 1).sum();
        let decisions = pipeline.process_batch(&batch);
        publisher.publish(decisions, decided)?;
        progress.tick(pipeline.totals().lines, bytes as u64);
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("source thread panicked"))??;
    progress.done();
    Ok(ReplayReport {
        totals: pipeline.totals().clone(),
        elapsed: started.elapsed(),
        metrics,
    })
}

/// How often progress is redrawn on a terminal.
const PROGRESS_REDRAW: Duration = Duration::from_millis(500);
/// How often a progress line is logged when stderr is not a terminal.
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(10);

/// Progress of a long command on stderr: redrawn in place on a terminal (percent done, rate,
/// time left), else one INFO line (target `tokenwatch::progress`) every 10 s. The size of
/// stdin is unknown: rate only. One clock read per batch, nothing per line.
struct Progress {
    what: &'static str,
    started: Instant,
    last: Instant,
    /// Bytes of input in all (a file's size), when known.
    total_bytes: Option<u64>,
    /// Bytes read so far (lines and their newlines).
    bytes: u64,
    terminal: bool,
}

impl Progress {
    fn new(what: &'static str, total_bytes: Option<u64>) -> Self {
        use std::io::IsTerminal;
        Self::at(
            what,
            total_bytes,
            std::io::stderr().is_terminal(),
            Instant::now(),
        )
    }

    fn at(what: &'static str, total_bytes: Option<u64>, terminal: bool, now: Instant) -> Self {
        Progress {
            what,
            started: now,
            last: now,
            total_bytes,
            bytes: 0,
            terminal,
        }
    }

    /// A batch of `bytes` was processed, `lines` in all so far.
    fn tick(&mut self, lines: u64, bytes: u64) {
        if let Some(line) = self.tick_at(lines, bytes, Instant::now()) {
            if self.terminal {
                eprint!("\r{line}\x1b[K");
            } else {
                tracing::info!(target: "tokenwatch::progress", "{line}");
            }
        }
    }

    /// The line to show at `now`, when one is due.
    fn tick_at(&mut self, lines: u64, bytes: u64, now: Instant) -> Option<String> {
        self.bytes += bytes;
        let every = if self.terminal {
            PROGRESS_REDRAW
        } else {
            PROGRESS_LOG_EVERY
        };
        if now.saturating_duration_since(self.last) < every {
            return None;
        }
        self.last = now;
        Some(progress_line(
            self.what,
            lines,
            self.bytes,
            self.total_bytes,
            now.saturating_duration_since(self.started),
        ))
    }

    fn done(&self) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }
}

/// `replay: 42.0 % · 1200000 lines · 480000 lines/s · 3 s left` (percent and time left only
/// when the size is known).
fn progress_line(
    what: &str,
    lines: u64,
    bytes: u64,
    total_bytes: Option<u64>,
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = lines as f64 / secs;
    match total_bytes {
        Some(total) if total > 0 => {
            let done = (bytes as f64 / total as f64).min(1.0);
            let left = if bytes > 0 {
                let remaining = secs * (total.saturating_sub(bytes)) as f64 / bytes as f64;
                humantime::format_duration(Duration::from_secs(remaining.round() as u64))
                    .to_string()
            } else {
                "?".into()
            };
            format!(
                "{what}: {:.1} % · {lines} lines · {rate:.0} lines/s · {left} left",
                done * 100.0
            )
        }
        _ => format!("{what}: {lines} lines · {rate:.0} lines/s"),
    }
}

/// The short summary table `replay` prints on stderr.
pub fn summary_table(totals: &Totals, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut rows: Vec<(String, String)> = vec![
        ("lines".into(), totals.lines.to_string()),
        ("processed".into(), totals.processed.to_string()),
        ("anonymous".into(), totals.anonymous.to_string()),
        (
            "parse errors".into(),
            totals.parse_error_count().to_string(),
        ),
        (
            "rejected tokens".into(),
            totals.rejected_count().to_string(),
        ),
        ("revoked".into(), totals.decided(Action::Revoke).to_string()),
        ("flagged".into(), totals.decided(Action::Flag).to_string()),
        ("elapsed".into(), format!("{secs:.2} s")),
        (
            "throughput".into(),
            format!("{:.0} lines/s", totals.lines as f64 / secs),
        ),
    ];
    for (reason, n) in &totals.parse_errors {
        rows.push((format!("  parse error: {}", reason.code()), n.to_string()));
    }
    for (result, n) in &totals.verifications {
        rows.push((format!("  token: {}", result.code()), n.to_string()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v:>12}\n"))
        .collect()
}

/// Resolve `--config`: the given file, else `./tokenwatch.toml`, else `config/default.toml`.
pub fn config_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let local = PathBuf::from("tokenwatch.toml");
        if local.exists() {
            local
        } else {
            PathBuf::from("config/default.toml")
        }
    })
}

/// Everything `run` and `demo` share: metrics, the denylist, readiness and the API server.
///
/// Owns the background tasks (the API server, housekeeping): each is spawned on [`tasks`]
/// and watches [`cancel`]; [`Services::shutdown`] cancels them all and waits for each to end,
/// so nothing outlives the services (a housekeeping pass never touches the journal after
/// shutdown returned).
///
/// [`tasks`]: Services::tasks
/// [`cancel`]: Services::cancel
pub struct Services {
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The denylist.
    pub denylist: Arc<Denylist>,
    /// Readiness flags served at `/readyz`.
    pub readiness: Arc<Readiness>,
    /// Where the API listens.
    pub api_addr: std::net::SocketAddr,
    /// The audit trail (`[audit]`): decision records and admin actions; `None` when off.
    pub audit: Option<Arc<AuditLog>>,
    /// Cancelled at shutdown; every background task ends when it is.
    cancel: CancellationToken,
    /// Every background task, waited for at shutdown.
    tasks: TaskTracker,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Services {
    /// Bind the API and open the denylist; the API answers `/healthz` at once and `/readyz`
    /// once the caller marks the stages loaded.
    pub async fn start(
        config: &Config,
        secrets: &Secrets,
        tracker: Option<Arc<SessionTracker>>,
        ingest: Option<mpsc::Sender<Vec<RawLine>>>,
    ) -> anyhow::Result<Services> {
        Self::start_with(
            config,
            secrets,
            tracker,
            ingest,
            DenylistStore::Journal,
            Routes::All,
        )
        .await
    }

    /// [`start`](Self::start) with the denylist kept in `store` and the API serving `routes`.
    /// With [`DenylistStore::Shared`] the `denylist` readiness flag is left for the topic's
    /// reader to set once it has caught up.
    pub async fn start_with(
        config: &Config,
        secrets: &Secrets,
        tracker: Option<Arc<SessionTracker>>,
        ingest: Option<mpsc::Sender<Vec<RawLine>>>,
        store: DenylistStore,
        routes: Routes,
    ) -> anyhow::Result<Services> {
        let metrics = Arc::new(Metrics::new());
        let shared = matches!(store, DenylistStore::Shared(_));
        let denylist = Arc::new(
            match store {
                DenylistStore::Journal => {
                    let journal = config.denylist.journal.clone();
                    tokio::task::spawn_blocking(move || Denylist::open(journal.as_deref()))
                        .await
                        .context("denylist open panicked")?
                        .context("denylist")?
                }
                DenylistStore::Shared(log) => Denylist::shared(log),
            }
            .with_metrics(metrics.clone()),
        );
        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("api.listen: cannot bind {}", config.api.listen))?;
        let api_addr = listener.local_addr()?;
        let audit = AuditLog::start(&config.audit, &metrics).context("audit")?;
        let cancel = CancellationToken::new();
        let mut state = ApiState::from_config(config, secrets, denylist.clone(), metrics.clone());
        state.tracker = tracker;
        state.audit = audit.clone();
        // Change-feed streams end at shutdown instead of holding the API's drain.
        state.shutdown = cancel.child_token();
        if !config.tokens.jwt.keys.is_empty() {
            // Its own instance (and cache): RFC 7009 revocations are rare, detection is not.
            state.verifier = Some(Arc::new(
                Identifier::from_config(&config.tokens, secrets).context("tokens.jwt")?,
            ));
        }
        state.ingest = if secrets.ingest_key.is_some() {
            ingest
        } else {
            None
        };
        let readiness = state.readiness.clone();
        if !shared {
            readiness.mark_ready(ReadyFlag::Denylist);
        }
        let journal_ready = readiness.clone();
        denylist.on_writable_change(move |writable| {
            journal_ready.set(ReadyFlag::Journal, writable);
        });
        let state = Arc::new(state);
        let options = api::ServeOptions {
            max_connections: fit_connection_cap(&config.api),
            metrics: Some(metrics.clone()),
            ..api::ServeOptions::default()
        };
        let tasks = TaskTracker::new();
        let router = match routes {
            Routes::All => api::router(state),
            Routes::Health => api::health_router(state),
        };
        let api = tasks.spawn(api::serve_with(
            listener,
            router,
            cancel.clone().cancelled_owned(),
            options,
        ));
        tracing::info!(addr = %api_addr, "API listening");
        Ok(Services {
            metrics,
            denylist,
            readiness,
            api_addr,
            audit,
            cancel,
            tasks,
            api,
        })
    }

    /// The daemon's publisher: enforced decisions to the denylist and, with `[audit]`, every
    /// decision record to the audit trail.
    pub fn live_publisher(&self) -> Publisher {
        let publisher = Publisher::live(self.denylist.clone(), self.metrics.clone());
        match &self.audit {
            Some(audit) => publisher.with_sink(audit.decision_sink()),
            None => publisher,
        }
    }

    /// Stop accepting, finish in-flight requests, stop housekeeping; returns when every
    /// background task has ended.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.tasks.close();
        let served = self.api.await.context("API task panicked");
        self.tasks.wait().await;
        served??;
        Ok(())
    }

    /// The detection stages on `tracker` (built off the runtime: GeoIP and the model load from
    /// disk), with their GeoIP build time and model version published and housekeeping
    /// (GeoIP reloads) started: what every detecting instance does before it reads a line.
    pub(crate) async fn start_detection(
        &self,
        config: &Config,
        secrets: &Secrets,
        tracker: Arc<SessionTracker>,
    ) -> anyhow::Result<Stages> {
        let (c, s) = (config.clone(), secrets.clone());
        let mut stages = tokio::task::spawn_blocking(move || build_stages(&c, &s)).await??;
        stages.tracker = tracker;
        let enricher = stages.enricher.clone();
        if let Some(epoch) = enricher.city_build_epoch() {
            self.metrics.geoip_build_timestamp.set(epoch as f64);
        }
        self.metrics
            .model_info
            .with_label_values(&[stages.scorer.version()])
            .set(1);
        self.spawn_housekeeping(Some(enricher), config.geoip.reload_interval.0);
        Ok(stages)
    }

    /// Keep gauges fresh, reload GeoIP on change and purge expired denylist entries, every
    /// 5 s until shutdown. A pass under way when shutdown comes is finished (it is short and
    /// blocking), the next one never starts.
    fn spawn_housekeeping(&self, enricher: Option<Arc<Enricher>>, reload_every: Duration) {
        let denylist = self.denylist.clone();
        let metrics = self.metrics.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let mut last_reload = Instant::now();
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let d = denylist.clone();
                match tokio::task::spawn_blocking(move || {
                    d.maintain(crate::denylist::wall_clock_ms())
                })
                .await
                {
                    Ok(Ok(true)) => tracing::info!("denylist journal compacted"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "denylist maintenance failed"),
                    _ => {}
                }
                if let Some(enricher) = &enricher
                    && last_reload.elapsed() >= reload_every
                {
                    last_reload = Instant::now();
                    let e = enricher.clone();
                    match tokio::task::spawn_blocking(move || e.reload_if_changed()).await {
                        Ok(Ok(true)) => tracing::info!("GeoIP database reloaded"),
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "GeoIP reload failed; keeping the loaded database")
                        }
                        _ => {}
                    }
                    if let Some(epoch) = enricher.city_build_epoch() {
                        metrics.geoip_build_timestamp.set(epoch as f64);
                    }
                }
            }
        });
    }
}

/// Where [`Services`] keeps the denylist.
pub enum DenylistStore {
    /// Embedded mode: the journal of `denylist.journal` (memory only when it is unset).
    Journal,
    /// Distributed mode: memory, every change made durable on the denylist topic.
    Shared(Arc<dyn crate::denylist::SharedLog>),
}

/// Which routes the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Every route (roles `all` and `api`).
    All,
    /// `/metrics`, `/healthz`, `/readyz` (role `detector`).
    Health,
}

/// Open files kept back from the API's connection cap: the journal and its compaction, GeoIP
/// databases and their reloads, the model, followed logs, stdio and the runtime's own.
const RESERVED_FILES: u64 = 64;

/// Raise the soft open-file limit to the hard limit, then fit `api.max_connections` under it
/// (less [`RESERVED_FILES`]), with a warning when it had to be lowered.
fn fit_connection_cap(api: &crate::config::ApiConfig) -> usize {
    let configured = api.max_connections;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            match rlimit::Resource::NOFILE.get() {
                Ok((soft, _hard)) => soft,
                Err(_) => return configured,
            }
        }
    };
    let cap = api::connection_cap(configured, limit, RESERVED_FILES);
    if cap < configured {
        tracing::warn!(
            configured,
            cap,
            open_file_limit = limit,
            "api.max_connections {configured} lowered to {cap}: the open-file limit is {limit}, \
             {RESERVED_FILES} of them kept for the journal, GeoIP and log files"
        );
    }
    if cap <= api.max_concurrent_requests.saturating_mul(2) {
        tracing::warn!(
            cap,
            "api.max_connections ({cap}) leaves no room for GET /v1/check beside the two \
             budgets of api.max_concurrent_requests ({}): lower it",
            api.max_concurrent_requests
        );
    }
    cap
}

/// The detection thread: batches in, decisions published; ends when every sender is gone.
/// A followed file's batch is acknowledged to `file_checkpoints` once published, so its
/// position may be saved (at-least-once, `source/position.rs`).
fn spawn_detection(
    mut pipeline: Pipeline,
    mut publisher: Publisher,
    mut rx: mpsc::Receiver<Vec<RawLine>>,
    file_checkpoints: Option<Arc<FileCheckpoints>>,
) -> std::thread::JoinHandle<Totals> {
    std::thread::Builder::new()
        .name("tokenwatch-detect".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let decided = Instant::now();
                let decisions = pipeline.process_batch(&batch);
                let any = !decisions.is_empty();
                let published = publisher.publish(decisions, decided);
                if let Err(e) = &published {
                    tracing::error!(error = %e, code = e.code(), "publishing decisions failed");
                }
                if let Some(checkpoints) = &file_checkpoints
                    && batch.first().is_some_and(|l| l.source == SourceKind::File)
                {
                    checkpoints.published(published.is_ok(), any);
                }
            }
            pipeline.totals().clone()
        })
        .unwrap_or_else(|e| panic!("cannot spawn detection thread: {e}"))
}

/// `tokenwatch run`: until SIGINT/SIGTERM.
pub fn run_blocking(config: Config, secrets: Secrets) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(config, secrets, shutdown_signal()))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining sources and flushing decisions");
}

/// The daemon until `shutdown` resolves, then a graceful drain.
pub async fn run(
    config: Config,
    secrets: Secrets,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    #[cfg(feature = "kafka")]
    if config.kafka.is_some() {
        return distributed::run(config, secrets, shutdown).await;
    }
    // `validate` refuses the other roles without `[kafka]`; a config that skipped it must not
    // run as something it is not.
    anyhow::ensure!(
        config.kafka.is_none() && config.role == Role::All,
        "role: {:?} and [kafka] need distributed mode (cargo feature `kafka`)",
        config.role.name()
    );
    let (tx, rx) = mpsc::channel::<Vec<RawLine>>(config.input.channel_capacity);
    let tracker = Arc::new(SessionTracker::new(&config.detect));
    let services =
        Services::start(&config, &secrets, Some(tracker.clone()), Some(tx.clone())).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let stages = services.start_detection(&config, &secrets, tracker).await?;
    let pipeline = Pipeline::new(stages, services.metrics.clone());
    let publisher = services.live_publisher();
    let file_checkpoints = input_checkpoints(&config);
    let detection = spawn_detection(pipeline, publisher, rx, file_checkpoints.clone());
    let limits = source_limits(&config);
    if let Some(path) = &config.input.path {
        tracing::info!(path = %path.display(), "following input file");
        source::spawn_follow(
            path.clone(),
            limits,
            tx.clone(),
            stop.clone(),
            file_checkpoints.clone(),
        );
    }
    if config.input.stdin {
        Source::Stdin.spawn(limits, tx.clone(), stop.clone());
    }
    services.readiness.mark_ready(ReadyFlag::Geoip);
    services.readiness.mark_ready(ReadyFlag::Model);
    drop(tx);

    shutdown.await;
    // Sources are OS threads blocked in reads, not tasks: they poll this flag.
    stop.store(true, Ordering::Relaxed);
    let audit = services.audit.clone();
    services.shutdown().await?;
    // Sources see `stop` within one poll interval; stdin may block in read, so wait a
    // bounded time for the last batches rather than forever.
    let drain = config.input.drain_timeout.0;
    let join = tokio::task::spawn_blocking(move || detection.join());
    match tokio::time::timeout(drain, join).await {
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
    // Only what detection published is saved: batches it did not finish are read again.
    if let Some(checkpoints) = file_checkpoints {
        tokio::task::spawn_blocking(move || checkpoints.flush()).await?;
    }
    flush_audit(audit).await;
    Ok(())
}

/// Write out the audit records still queued (bounded wait), at shutdown.
pub(crate) async fn flush_audit(audit: Option<Arc<AuditLog>>) {
    if let Some(audit) = audit {
        let flushed = tokio::task::spawn_blocking(move || audit.flush(Duration::from_secs(5)))
            .await
            .unwrap_or(false);
        if !flushed {
            tracing::warn!("audit records still queued at exit were not all written");
        }
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn progress_is_logged_every_ten_seconds_with_percent_rate_and_time_left() {
        let t0 = Instant::now();
        let mut progress = Progress::at("replay", Some(1000), false, t0);
        assert_eq!(
            progress.tick_at(100, 100, t0 + Duration::from_secs(5)),
            None
        );
        let line = progress
            .tick_at(500, 150, t0 + Duration::from_secs(10))
            .expect("due after 10 s");
        // 250 of 1000 bytes in 10 s: 25 %, 50 lines/s, 30 s left.
        assert_eq!(line, "replay: 25.0 % · 500 lines · 50 lines/s · 30s left");
        assert_eq!(
            progress.tick_at(600, 10, t0 + Duration::from_secs(11)),
            None
        );
    }

    #[test]
    fn a_terminal_redraws_twice_a_second_and_stdin_shows_the_rate_only() {
        let t0 = Instant::now();
        let mut progress = Progress::at("replay", None, true, t0);
        let line = progress
            .tick_at(1000, 50_000, t0 + Duration::from_millis(500))
            .expect("due after 500 ms");
        assert_eq!(line, "replay: 1000 lines · 2000 lines/s");
    }
}
