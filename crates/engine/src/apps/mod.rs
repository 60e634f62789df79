//! Applications: each owns legs and decides what happens to them.
//!
//! | module | what |
//! |---|---|
//! | [`controller`] | third-party call control (reference 002, sipXcallController) |

pub mod controller;
