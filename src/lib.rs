//! nextboot: what the next boot of an offline Windows image will do to its files.
//!
//! The modules follow the data:
//!
//! evidence (read-only inputs) -> [`hive`] (open the SYSTEM hive, pick the control set) ->
//! [`queue`] (pending operations from each source) -> [`volume`] (NT path to file) ->
//! [`version`] (PE version resources) -> [`boot`] (replay the queue, decide verdicts) ->
//! [`report`] (formats, exit status).
//!
//! [`check()`] runs the whole pipeline; each stage can also be used on its own.

pub mod boot;
mod check;
pub mod evidence;
pub mod fix;
pub mod guard;
pub mod hive;
pub mod output;
pub mod queue;
pub mod recover;
pub mod report;
pub mod text;
pub mod verify;
pub mod version;
pub mod volume;

pub use check::{check, CheckError, CheckOptions, HashMode, Inspection};

use serde::Serialize;

/// Something a stage noticed that the user should know, without stopping the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier for scripts (`hive-dirty`, `queue-value-layout`, ...).
    pub code: &'static str,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
}

impl Finding {
    pub fn info(code: &'static str, message: String) -> Finding {
        Finding {
            severity: Severity::Info,
            code,
            message,
        }
    }

    pub fn warning(code: &'static str, message: String) -> Finding {
        Finding {
            severity: Severity::Warning,
            code,
            message,
        }
    }
}
