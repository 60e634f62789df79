//! RFC 3261 §17 transactions. Filled in by the transaction work.
