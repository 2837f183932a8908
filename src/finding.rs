//! Findings: what a stage noticed that the user should know, without stopping the run. At
//! the bottom of the pipeline, so that every stage can report one.

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
