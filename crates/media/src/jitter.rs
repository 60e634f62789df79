//! Jitter buffer.
