//! tokenwatch: detects stolen session tokens in HTTP access logs and revokes them.
//!
//! Modules in data-flow order (DESIGN §1):
//! `source` → `parse` → `identify` → `enrich` → `track` → `score` → `decide` → `publish`,
//! with `denylist` and `api` serving the middleware, `pipeline` running the stages over a batch
//! and `app` wiring everything. `event` holds the types that pass between stages; `config`,
//! `metrics`, `geodb` and `simulate` support them; `features`, `model`, `labels`, `train` and
//! `evaluate` are the trained scorer and its offline tooling.

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
pub mod demo;
pub mod evaluate;
pub mod geodb;
pub mod labels;
pub mod metrics;
pub mod pipeline;
pub mod simulate;
pub mod train;
