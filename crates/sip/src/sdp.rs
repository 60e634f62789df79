//! SDP (RFC 4566) for audio, and RFC 3264 offer/answer. Filled in by the SDP work.
