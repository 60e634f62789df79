//! Dialog state (RFC 3261 §12).
