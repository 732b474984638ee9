//! Criterion bench for `identify` (placeholder until the stage lands).
fn main() {}
