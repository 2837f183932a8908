//! `version`: the version resources of PE files named on the command line.

use std::path::PathBuf;

use crate::report::exit;
use crate::version::{examine, VersionEntry};

/// What `version` found, one entry per file in the order given.
pub struct Versions {
    pub entries: Vec<VersionEntry>,
}

impl Versions {
    /// 2 when a named file could not be opened or read, else 0 (a file that is not a PE, or
    /// has no version, is an answer about that file).
    pub fn exit_status(&self) -> u8 {
        if self.entries.iter().any(|e| e.unreadable) {
            exit::NOT_EXAMINED
        } else {
            exit::CLEAN
        }
    }
}

pub fn run(files: &[PathBuf], sha256: bool) -> Versions {
    Versions {
        entries: files.iter().map(|path| examine(path, sha256)).collect(),
    }
}
