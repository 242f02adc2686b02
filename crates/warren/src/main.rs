//! The warren CLI.
fn main() {}
