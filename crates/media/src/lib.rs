//! media layer.
