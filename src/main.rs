//! tokenwatch binary.
fn main() {}
