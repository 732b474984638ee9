//! Criterion bench for `enrich` (placeholder until the stage lands).
fn main() {}
