//! Criterion bench for `parse` (placeholder until the stage lands).
fn main() {}
