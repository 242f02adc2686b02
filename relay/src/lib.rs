//! warren's relay (work in progress).
