//! DSP helpers.
