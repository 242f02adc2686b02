//! What warren's shells take from the operating system on behalf of the
//! sans-IO cores, which never read a clock, draw randomness or touch a file
//! themselves: the shells call these and pass the results in.
//!
//! - [`clock`]: wall-clock time as unix seconds;
//! - [`random`]: bytes from the operating system's generator;
//! - [`files`]: files written whole through a renamed temporary (secrets
//!   0600 and synced; status files readable and unsynced);
//! - [`thread`]: a packet path on a thread and runtime of its own.

#![forbid(unsafe_code)]

pub mod clock;
pub mod files;
pub mod random;
pub mod thread;

pub use clock::unix_now;
pub use random::{random, RandomError};
