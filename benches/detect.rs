//! Criterion bench for `detect` (placeholder until the stage lands).
fn main() {}
