//! warren-device (being written).
