//! The `warren` subcommands, one module each.

pub mod device;
pub mod keys;
pub mod relay;
