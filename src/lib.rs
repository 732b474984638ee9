//! tokenwatch: detects stolen session tokens in HTTP access logs and revokes them.
//!
//! Modules in data-flow order (DESIGN §1):
//! `source` → `parse` → `identify` → `enrich` → `track` → `score` → `decide` → `publish`,
//! with `denylist` and `api` serving the middleware, `pipeline` running the stages over a batch
//! and `app` wiring everything. `kafka` (cargo feature `kafka`, on by default) holds the
//! Kafka clients distributed mode shares (DESIGN §6). `event` holds the types that pass between stages; `config` and
//! `metrics` support them; `features` and `model` are the trained scorer's run-time half
//! (inference needs no ML library).
//!
//! "DESIGN §N" in the code names a section of `docs/DESIGN.md`, the contract document (CLI,
//! config, input fields, fingerprint, decision record, HTTP API, metrics).
//!
//! [`lab`] (cargo feature `lab`, on by default) is the offline tooling around the daemon: the
//! simulator and its synthetic world, labels, training, evaluation and the demo. The run-time
//! modules above never depend on it (`tests/layering.rs` checks), so
//! `cargo build --release --no-default-features` builds the daemon alone, without the ML,
//! plotting and database-writing crates.

pub mod config;
pub mod credential;
pub mod event;

pub mod api;
pub mod decide;
pub mod denylist;
pub mod enrich;
pub mod features;
pub mod identify;
pub mod model;
pub mod parse;
pub mod publish;
pub mod score;
pub mod source;
pub mod track;

pub mod app;
pub mod audit;
pub mod cli;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod pipeline;

#[cfg(feature = "lab")]
pub mod lab;
