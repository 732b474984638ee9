//! The `tokenwatch` binary: parse the command line, load the config, hand over to `app`.
//!
//! All logic lives in the library (`tokenwatch::app`) so tests and benches reach it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokenwatch::app;
use tokenwatch::config::{Config, ProcessEnv};

/// Detects stolen session tokens in HTTP access logs and revokes them in milliseconds.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    Simulate(app::SimulateArgs),
    /// Fit the session-risk model on labelled simulated traffic.
    Train(tokenwatch::train::TrainArgs),
    /// Precision, recall and time to detect per attack type, against published rules.
    Evaluate(tokenwatch::evaluate::EvaluateArgs),
    /// Simulate, detect, revoke and serve the API: see it work in a minute.
    Demo(tokenwatch::demo::DemoArgs),
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
        Command::Simulate(args) => app::simulate_to_files(&args)?,
        Command::Demo(args) => tokenwatch::demo::demo(args)?,
        Command::Train(args) => tokenwatch::train::run(&args)?,
        Command::Evaluate(args) => tokenwatch::evaluate::run(&args)?,
        Command::JournalRepair { config } => {
            let (config, _) = load(config)?;
            let Some(journal) = config.denylist.journal else {
                anyhow::bail!("denylist.journal is not set: this configuration keeps no journal");
            };
            let report = tokenwatch::denylist::repair(&journal)?;
            print!("{report}");
        }
        Command::CheckConfig { config } => {
            let (config, secrets) = load(config)?;
            app::build_stages(&config, &secrets)?;
            println!("configuration OK");
        }
    }
    Ok(ExitCode::SUCCESS)
}
