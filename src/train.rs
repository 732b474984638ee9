//! `tokenwatch train`: fit the session-risk model on labelled simulated traffic with linfa.
//!
//! STUB: interface only; the implementation is being written.

/// `tokenwatch train` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {}

/// Run `tokenwatch train`.
pub fn run(_args: &TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("train is not built yet")
}
