//! Commands: each runs the stages for one task and returns a value that [`crate::report`]
//! writes. [`cli`] is the command line that `main.rs` parses and dispatches.

pub mod check;
pub mod cli;
pub mod fix;
pub mod recover;
pub mod verify;
pub mod version;
