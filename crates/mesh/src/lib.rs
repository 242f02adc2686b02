//! Sans-IO WireGuard mesh core (being written).
pub mod drops;
pub mod key;
