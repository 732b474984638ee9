//! The lab: offline tooling around the daemon, behind the cargo feature `lab` (on by default).
//!
//! Where it sits: outside the pipeline. The lab builds on the run-time library (it runs the
//! real stages through `app::build_stages` and `pipeline`), never the other way round: no
//! run-time module imports anything from here (`tests/layering.rs` checks), so
//! `cargo build --no-default-features` builds the daemon without linfa, ndarray, plotters,
//! mmdb-writer or rand_chacha.
//!
//! - [`world`]: a made-up world of real city coordinates (synthetic address blocks, ASNs and
//!   the GeoIP databases that describe them), or real addresses indexed by city from a real
//!   City database.
//! - [`simulate`]: labelled synthetic traffic drawn in that world, and the files
//!   `tokenwatch simulate` writes ([`simulate::write_files`]).
//! - [`labels`]: the ground truth written beside a simulated log.
//! - [`train`]: fits the session-risk model (linfa) that `model` runs at inference time.
//! - [`evaluate`]: precision, recall and time to detect against published rules, and its
//!   report (plotters).
//! - [`demo`]: simulate, detect, revoke and serve the API in a minute.
//!
//! The command-line arguments of `simulate` live in the binary (`src/main.rs`), which turns
//! them into [`simulate::Options`]; `train` calls the simulator with those options directly.

pub mod demo;
pub mod evaluate;
pub mod labels;
pub mod simulate;
pub mod train;
pub mod world;
