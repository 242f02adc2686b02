//! IP packets → TUN writes (software GRO). Work in progress.

/// Merges in-order TCP segments into super-packets.
#[derive(Debug, Default)]
pub struct Coalescer {}
