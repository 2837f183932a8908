//! nextboot: what the next boot of an offline Windows image will do to its files.
//!
//! The modules follow the data, each using only those before it:
//!
//! [`finding`], [`text`], [`guard`], [`output`] (shared by every stage) -> [`evidence`]
//! (read-only inputs) -> [`hive`] (open a hive with its logs, pick the control set) ->
//! [`queue`] (pending operations from each source) -> [`volume`] (NT path to file) ->
//! [`version`] (PE version resources) -> [`boot`] (replay the queues, decide verdicts) ->
//! [`report`] (build the report, formats, exit status) -> [`commands`] (`check`, `fix`,
//! `recover`, `verify`, `version`, and the command line).
//!
//! [`commands::check::check`] runs the whole pipeline; each stage can also be used on its
//! own.

pub mod finding;
pub mod guard;
pub mod output;
pub mod text;
pub mod time;

pub mod evidence;

pub mod hive;

pub mod queue;

pub mod volume;

pub mod version;

pub mod boot;

pub mod report;

pub mod commands;

pub use finding::{Finding, Severity};
