//! The plan's chaos test, deterministic.
