//! Criterion bench for `check` (placeholder until the stage lands).
fn main() {}
