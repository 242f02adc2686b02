//! warren-uapi (being written).
