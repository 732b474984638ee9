//! The `tokenwatch` binary: parse the command line, load the config, hand over to `app`.
//!
//! All logic lives in the library (`tokenwatch::app`, and `tokenwatch::lab` for the offline
//! tooling) so tests and benches reach it. The lab's subcommands (`simulate`, `train`,
//! `evaluate`, `demo`) exist only when the `lab` cargo feature is on (the default); without it
//! the binary is the daemon alone: `run`, `replay`, `check-config`, `journal-repair`, and the
//! on-call CLI (`revocations`, `sessions`, a client of a running daemon's API: `cli.rs`).
//! `--log-format json` turns the log lines on stderr into JSON objects.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokenwatch::app;
use tokenwatch::config::{Config, ProcessEnv};

/// Detects stolen session tokens in HTTP access logs and revokes them in milliseconds.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines on stderr as `text` (the default) or `json` (one object per line, for log
    /// pipelines). `RUST_LOG` sets the level.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: sources per config, detection, the check API and metrics.
    Run {
        /// Config file (default: ./tokenwatch.toml, else config/default.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Offline: read a log file (or - for stdin) to EOF on event time; decisions to stdout.
    Replay {
        /// Access log (JSON lines), or - for stdin.
        input: String,
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Write decision records here instead of stdout.
        #[arg(long)]
        decisions: Option<PathBuf>,
    },
    /// Write labelled synthetic traffic, with the GeoIP databases and config to replay it.
    #[cfg(feature = "lab")]
    Simulate(SimulateArgs),
    /// Fit the session-risk model on labelled simulated traffic.
    #[cfg(feature = "lab")]
    Train(tokenwatch::lab::train::TrainArgs),
    /// Precision, recall and time to detect per attack type, against published rules.
    #[cfg(feature = "lab")]
    Evaluate(tokenwatch::lab::evaluate::EvaluateArgs),
    /// Simulate, detect, revoke and serve the API: see it work in a minute.
    #[cfg(feature = "lab")]
    Demo(tokenwatch::lab::demo::DemoArgs),
    /// Salvage a damaged denylist journal (stop tokenwatch first): keeps a copy of the file,
    /// keeps every record whose checksum is valid, writes a fresh journal and prints what it
    /// kept and dropped. A missing journal is started empty.
    JournalRepair {
        /// Config file (its `denylist.journal` is repaired).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and the files it names; print every problem.
    CheckConfig {
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// On-call: list, show, add and remove denylist entries through a running tokenwatch's
    /// API (key from TOKENWATCH_ADMIN_KEY; reads also take TOKENWATCH_READER_KEY).
    Revocations {
        #[command(flatten)]
        server: tokenwatch::cli::ServerArgs,
        #[command(subcommand)]
        command: tokenwatch::cli::RevocationsCommand,
    },
    /// On-call: a session's state, last score and denylist status (TOKENWATCH_ADMIN_KEY).
    Sessions {
        #[command(flatten)]
        server: tokenwatch::cli::ServerArgs,
        #[command(subcommand)]
        command: tokenwatch::cli::SessionsCommand,
    },
}

/// `tokenwatch simulate` arguments: the command line of [`tokenwatch::lab::simulate::Options`],
/// whose defaults they share (a unit test checks).
#[cfg(feature = "lab")]
#[derive(Debug, Clone, clap::Args)]
struct SimulateArgs {
    /// Access log to write (JSON lines). The GeoIP databases, labels and a config to replay
    /// it are written beside it.
    #[arg(long)]
    out: PathBuf,
    /// Labels file (default: `labels.jsonl` beside `--out`).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// RNG seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Approximate number of events (sets the number of users, measured on a pilot run).
    #[arg(long, conflicts_with = "users")]
    events: Option<u64>,
    /// Number of users (about 1 % are API-automation clients; a tenth of the people have a
    /// second device, hence a second session).
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Simulated span, e.g. `24h`.
    #[arg(long, default_value = "24h")]
    duration: humantime::Duration,
    /// First event time (RFC 3339). The simulation must end by now (no log comes from the
    /// future); the fixed default keeps runs reproducible.
    #[arg(long, default_value = "2026-11-23T12:00:00Z")]
    start: String,
    /// Fraction of people's sessions an attacker uses (the seven attack types in turn).
    #[arg(long, default_value_t = tokenwatch::lab::simulate::SimSpec::DEFAULT_ATTACK_FRACTION)]
    attack_fraction: f64,
    /// JWT refresh interval: a session in use gets a new token (same `sid`) this often.
    #[arg(long, default_value = "15m")]
    refresh: humantime::Duration,
    /// A real GeoIP2/GeoLite2 or DB-IP City database to draw client addresses from (indexed
    /// by city, so the pipeline sees real data). Without it, small synthetic databases are
    /// written beside `--out`.
    #[arg(long)]
    geoip: Option<PathBuf>,
    /// ip-location-db's `asn-ipv4.csv` (scripts/fetch-asn.sh): with `--geoip`, real ASNs,
    /// organisations and network kinds (home ISP, mobile, hosting, satellite...) for the
    /// simulated addresses.
    #[arg(long, requires = "geoip")]
    asn_csv: Option<PathBuf>,
    /// Draw the world's behaviour prevalences and parameters from this seed (docs/worlds.md);
    /// without it, the nominal world. Sets the refresh interval too.
    #[arg(long, conflicts_with = "refresh")]
    world_seed: Option<u64>,
}

#[cfg(feature = "lab")]
impl SimulateArgs {
    /// The simulator's options; fails on a `--start` that is not an RFC 3339 time.
    fn into_options(self) -> anyhow::Result<tokenwatch::lab::simulate::Options> {
        use anyhow::Context;
        let start = tokenwatch::event::EventTime::parse_rfc3339(&self.start)
            .with_context(|| format!("--start: not an RFC 3339 time: {:?}", self.start))?;
        Ok(tokenwatch::lab::simulate::Options {
            out: self.out,
            labels: self.labels,
            seed: self.seed,
            events: self.events,
            users: self.users,
            duration: self.duration.into(),
            start,
            attack_fraction: self.attack_fraction,
            refresh: self.refresh.into(),
            geoip: self.geoip,
            asn_csv: self.asn_csv,
            world_seed: self.world_seed,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } => "info",
        // Its periodic progress line when stderr is not a terminal (a terminal gets a
        // redrawn line instead).
        Command::Replay { .. } => "warn,tokenwatch::progress=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Fields at the top level, beside `timestamp`, `level`, `target` and `message`.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(config: Option<PathBuf>) -> anyhow::Result<(Config, tokenwatch::config::Secrets)> {
    let path = app::config_path(config);
    Config::load(&path, &ProcessEnv).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => {
            let (config, secrets) = load(config)?;
            app::run_blocking(config, secrets)?;
        }
        Command::Replay {
            input,
            config,
            decisions,
        } => {
            let (config, secrets) = load(config)?;
            let report = app::replay(&config, &secrets, &input, decisions.as_deref())?;
            eprint!("{}", app::summary_table(&report.totals, report.elapsed));
        }
        #[cfg(feature = "lab")]
        Command::Simulate(args) => tokenwatch::lab::simulate::write_files(&args.into_options()?)?,
        #[cfg(feature = "lab")]
        Command::Demo(args) => tokenwatch::lab::demo::demo(args)?,
        #[cfg(feature = "lab")]
        Command::Train(args) => tokenwatch::lab::train::run(&args)?,
        #[cfg(feature = "lab")]
        Command::Evaluate(args) => tokenwatch::lab::evaluate::run(&args)?,
        Command::JournalRepair { config } => {
            let (config, _) = load(config)?;
            let Some(journal) = config.denylist.journal else {
                anyhow::bail!("denylist.journal is not set: this configuration keeps no journal");
            };
            let report = tokenwatch::denylist::repair(&journal)?;
            print!("{report}");
        }
        Command::Revocations { server, command } => {
            tokenwatch::cli::run_revocations(&server, command)?
        }
        Command::Sessions { server, command } => tokenwatch::cli::run_sessions(&server, command)?,
        Command::CheckConfig { config } => {
            let path = app::config_path(config);
            let report = app::check_config(&path, &ProcessEnv);
            if !report.is_ok() {
                eprint!("{}: {report}", path.display());
                return Ok(ExitCode::from(1));
            }
            print!("{report}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(all(test, feature = "lab"))]
mod tests {
    use super::*;
    use tokenwatch::lab::simulate::Options;

    fn simulate(argv: &[&str]) -> Options {
        let cli = Cli::try_parse_from(argv).expect("parse");
        let Command::Simulate(args) = cli.command else {
            panic!("not simulate")
        };
        args.into_options().expect("options")
    }

    #[test]
    fn simulate_defaults_are_the_options_defaults() {
        // `train` simulates with `Options::default()`: it must be what the command does.
        assert_eq!(
            simulate(&["tokenwatch", "simulate", "--out", "x/access.jsonl"]),
            Options {
                out: PathBuf::from("x/access.jsonl"),
                ..Options::default()
            }
        );
    }

    #[test]
    fn simulate_flags_reach_the_options() {
        let options = simulate(&[
            "tokenwatch",
            "simulate",
            "--out",
            "a.jsonl",
            "--labels",
            "l.jsonl",
            "--seed",
            "7",
            "--events",
            "1000",
            "--duration",
            "2h",
            "--start",
            "2026-01-01T00:00:00Z",
            "--attack-fraction",
            "0.5",
            "--refresh",
            "5m",
            "--geoip",
            "city.mmdb",
        ]);
        assert_eq!(options.labels, Some(PathBuf::from("l.jsonl")));
        assert_eq!(options.seed, 7);
        assert_eq!(options.events, Some(1000));
        assert_eq!(options.duration, std::time::Duration::from_secs(7200));
        assert_eq!(
            Some(options.start),
            tokenwatch::event::EventTime::parse_rfc3339("2026-01-01T00:00:00Z")
        );
        assert_eq!(options.attack_fraction, 0.5);
        assert_eq!(options.refresh, std::time::Duration::from_secs(300));
        assert_eq!(options.geoip, Some(PathBuf::from("city.mmdb")));
        assert_eq!(options.world_seed, None);
        let world = simulate(&["tokenwatch", "simulate", "--out", "a", "--world-seed", "42"]);
        assert_eq!(world.world_seed, Some(42));
        // A world sets the refresh interval itself.
        assert!(
            Cli::try_parse_from([
                "tokenwatch",
                "simulate",
                "--world-seed",
                "1",
                "--refresh",
                "5m"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["tokenwatch", "simulate", "--out", "a", "--start", "x"])
                .map_err(anyhow::Error::from)
                .and_then(|cli| match cli.command {
                    Command::Simulate(args) => args.into_options().map(|_| ()),
                    _ => Ok(()),
                })
                .is_err()
        );
    }
}
