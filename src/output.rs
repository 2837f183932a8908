//! Output files: the one place nextboot writes a file (`fix --out`, `recover --out`,
//! `verify --write-baseline`).
//!
//! Evidence is read-only, and that includes the folders it sits in: an output inside a mounted
//! image, beside a hive, or on an input file is refused before anything is read. A new file is
//! never an existing one (no overwrite, links included), and it appears complete or not at
//! all: it is written to a temporary name in the same folder, synced, then linked to its name
//! (which fails if the name exists) and the temporary name removed. Where the file system has
//! no hard links (FAT, exFAT), the file is created in place instead and removed if writing
//! fails.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use miette::Diagnostic;
use thiserror::Error;

/// What the output must stay out of.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Folders that hold evidence (a mounted volume, the hive's folder): nothing under them.
    pub folders: Vec<(String, PathBuf)>,
    /// Input files: not these, whatever the name used.
    pub files: Vec<PathBuf>,
}

impl Evidence {
    pub fn folder(&mut self, what: impl Into<String>, path: &Path) -> &mut Self {
        self.folders.push((what.into(), path.to_path_buf()));
        self
    }

    pub fn file(&mut self, path: &Path) -> &mut Self {
        self.files.push(path.to_path_buf());
        self
    }
}

#[derive(Debug, Error, Diagnostic)]
pub enum OutputError {
    #[error("{out} already exists")]
    #[diagnostic(
        code(nextboot::output::exists),
        help("nextboot never overwrites a file: choose a new path")
    )]
    Exists { out: String },

    #[error("{out} is inside {what} {folder}")]
    #[diagnostic(
        code(nextboot::output::inside_evidence),
        help(
            "evidence and the folders that hold it are never written: choose a path outside them"
        )
    )]
    InsideEvidence {
        out: String,
        what: String,
        folder: String,
    },

    #[error("{out} is the input {input}")]
    #[diagnostic(
        code(nextboot::output::is_input),
        help("evidence is never written: choose a path outside the inputs")
    )]
    IsInput { out: String, input: String },

    #[error("cannot write {out}")]
    #[diagnostic(code(nextboot::output::write))]
    Write {
        out: String,
        #[source]
        source: io::Error,
    },
}

/// Where an output will go, checked against the evidence. Check before the work, write after.
#[derive(Debug)]
pub struct OutputFile {
    path: PathBuf,
    shown: String,
}

impl OutputFile {
    /// Refuses a path that exists, that is an input, or that lies inside an evidence folder
    /// (both compared with links resolved).
    pub fn new(path: &Path, evidence: &Evidence) -> Result<OutputFile, OutputError> {
        let shown = path.display().to_string();
        let absolute = absolute(path).map_err(|source| OutputError::Write {
            out: shown.clone(),
            source,
        })?;
        let target = path.canonicalize().unwrap_or_else(|_| absolute.clone());
        for input in &evidence.files {
            if input.canonicalize().is_ok_and(|input| input == target) {
                return Err(OutputError::IsInput {
                    out: shown,
                    input: input.display().to_string(),
                });
            }
        }
        if path.symlink_metadata().is_ok() {
            return Err(OutputError::Exists { out: shown });
        }
        for (what, folder) in &evidence.folders {
            if folder
                .canonicalize()
                .is_ok_and(|folder| absolute.starts_with(folder))
            {
                return Err(OutputError::InsideEvidence {
                    out: shown,
                    what: what.clone(),
                    folder: folder.display().to_string(),
                });
            }
        }
        Ok(OutputFile {
            path: path.to_path_buf(),
            shown,
        })
    }

    /// The path as the user gave it, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Writes `bytes` as the new file, complete or not at all.
    pub fn write(&self, bytes: &[u8]) -> Result<(), OutputError> {
        let failed = |source| OutputError::Write {
            out: self.shown.clone(),
            source,
        };
        let exists = || OutputError::Exists {
            out: self.shown.clone(),
        };
        let temporary = self.temporary_name();
        match write_new(&temporary, bytes) {
            Ok(()) => {
                let linked = std::fs::hard_link(&temporary, &self.path);
                let _ = std::fs::remove_file(&temporary);
                match linked {
                    Ok(()) => return sync_folder(&self.path).map_err(failed),
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(exists()),
                    // No hard links here: write in place below.
                    Err(_) => {}
                }
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(failed(err)),
        }
        match write_new(&self.path, bytes) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(exists()),
            Err(err) => {
                // Ours (create_new) and incomplete: do not leave it for a gate to read.
                let _ = std::fs::remove_file(&self.path);
                Err(failed(err))
            }
        }
    }

    fn temporary_name(&self) -> PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique = format!(
            ".{name}.{}-{}.nextboot-tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.path.with_file_name(unique)
    }
}

/// Creates `path` (never an existing one), writes and syncs it; removes it if that fails.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let written = file.write_all(bytes).and_then(|_| file.sync_all());
    if written.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Makes the new name durable (Unix: sync the folder; elsewhere the rename is).
fn sync_folder(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(folder) = path.parent() {
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        if let Ok(handle) = std::fs::File::open(folder) {
            let _ = handle.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The path with its folder resolved (links included), to compare with the evidence.
fn absolute(out: &Path) -> io::Result<PathBuf> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    Ok(parent.canonicalize()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_exists_what_is_an_input_and_what_is_inside_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        std::fs::create_dir_all(image.join("sub")).unwrap();
        let input = dir.path().join("SYSTEM");
        std::fs::write(&input, b"hive").unwrap();
        let mut evidence = Evidence::default();
        evidence.folder("ROOT", &image).file(&input);
        assert!(matches!(
            OutputFile::new(&input, &evidence),
            Err(OutputError::IsInput { .. })
        ));
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        assert!(matches!(
            OutputFile::new(&other, &evidence),
            Err(OutputError::Exists { .. })
        ));
        assert!(matches!(
            OutputFile::new(&image.join("sub/../sub/new.reg"), &evidence),
            Err(OutputError::InsideEvidence { .. })
        ));
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&image, &link).unwrap();
            assert!(matches!(
                OutputFile::new(&link.join("new.reg"), &evidence),
                Err(OutputError::InsideEvidence { .. })
            ));
        }
        let out = OutputFile::new(&dir.path().join("new.reg"), &evidence).unwrap();
        out.write(b"data").unwrap();
        assert_eq!(std::fs::read(dir.path().join("new.reg")).unwrap(), b"data");
        assert!(matches!(
            out.write(b"again"),
            Err(OutputError::Exists { .. })
        ));
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("nextboot-tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
