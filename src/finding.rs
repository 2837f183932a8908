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
    /// What the message says, as fields, where a stage has them as data (a damaged cell: what
    /// was followed, its offset, sizes, the kind of cell expected). Omitted otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    /// An indicator of an attack on the boot (an action list shaped like Windows Downdate's).
    Alert,
}

impl Finding {
    pub fn info(code: &'static str, message: String) -> Finding {
        Finding {
            severity: Severity::Info,
            code,
            message,
            detail: None,
        }
    }

    pub fn warning(code: &'static str, message: String) -> Finding {
        Finding {
            severity: Severity::Warning,
            code,
            message,
            detail: None,
        }
    }

    pub fn alert(code: &'static str, message: String) -> Finding {
        Finding {
            severity: Severity::Alert,
            code,
            message,
            detail: None,
        }
    }

    /// The finding with its fields (see [`Finding::detail`]).
    pub fn with_detail(mut self, detail: &impl Serialize) -> Finding {
        self.detail = serde_json::to_value(detail).ok();
        self
    }
}
