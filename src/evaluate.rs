//! `tokenwatch evaluate`: precision, recall and time to detect per attack type, for
//! tokenwatch and the published impossible-travel rules, side by side.
//!
//! STUB: interface only; the implementation is being written.

/// `tokenwatch evaluate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {}

/// Run `tokenwatch evaluate`.
pub fn run(_args: &EvaluateArgs) -> anyhow::Result<()> {
    anyhow::bail!("evaluate is not built yet")
}
