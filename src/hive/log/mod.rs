//! Transaction-log replay: recovers a dirty hive from its `.LOG1`/`.LOG2` files.
//!
//! Since Windows 8.1 the kernel flushes registry changes to a transaction log first and writes
//! them to the primary file (`SYSTEM`) later, so the newest writes of an offline image often
//! exist only in `SYSTEM.LOG1`/`SYSTEM.LOG2`. A primary whose base block sequence numbers
//! differ, or whose checksum is wrong, is dirty and must have its logs applied before it is
//! read, as the kernel does when it loads the hive.
//!
//! [`recover`] works on bytes in memory and never changes its inputs. It returns a clean
//! primary file (sequence numbers equal, bins size and checksum updated) plus a [`LogUse`] per
//! log saying whether and how far it was applied, and why not. A damaged or foreign log is
//! never an error: replay stops where the log stops being trustworthy and says so.
//!
//! Formats and rules follow Maxim Suhanov's "Windows registry file format specification"
//! (sections "Format of transaction log files", "Dirty state of a hive", "Multiple
//! transaction log files") and the behaviour of his yarp recovery, re-implemented here from
//! the text; `docs/transaction-logs.md` explains each rule and the measurements behind it.
//!
//! - New format (Windows 8.1+, file type 6): a 512-byte copy of the base block, then `HvLE`
//!   log entries from offset 512, each carrying whole dirty pages of hive bins data and two
//!   Marvin32 hashes (seed `0x82EF4D887A4E55C5`). Entries of one log have consecutive sequence
//!   numbers starting at the sequence number of the log's base block.
//! - Old format (before 8.1, file type 1, or 2 up to Windows 2000): a 512-byte copy of the
//!   base block, `DIRT` and a bitmap with one bit per 512-byte page of hive bins data, then the
//!   dirty pages, 512 bytes each, in bit order.
//!
//! Every size and offset read from a file is checked before use; the recovered hive can grow
//! to no more than the primary and the logs together hold, and never past 2 GiB of hive bins.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;
use zerocopy::FromBytes;

use super::base_block::{checksum, BaseBlockHeader, CHECKSUM_OFFSET};

mod marvin;
mod new_format;
mod old_format;
#[cfg(test)]
mod tests;

pub use marvin::{marvin32, marvin32_64};
use new_format::{count_entries, replay_new};
use old_format::replay_old;

pub use super::base_block::BASE_BLOCK_SIZE;
/// Size of the base block copy at the start of a transaction log (clustering factor 1).
pub const LOG_BASE_BLOCK_SIZE: usize = 512;
/// The largest hive bins data this module builds (2 GiB), whatever a file declares.
pub const MAX_HIVE_BINS_SIZE: u32 = 0x8000_0000;
/// The Marvin32 seed of log entry hashes (bytes `82 EF 4D 88 7A 4E 55 C5` as one number).
pub const LOG_HASH_SEED: u64 = 0x82EF_4D88_7A4E_55C5;

const SECTOR: usize = 512;
const HBIN_ALIGNMENT: u32 = 4096;
const FILE_TYPE_PRIMARY: u32 = 0;
const FILE_TYPE_LOG_OLD: u32 = 1;
const FILE_TYPE_LOG_VERY_OLD: u32 = 2;
const FILE_TYPE_LOG_NEW: u32 = 6;

/// One transaction log file as read from the image.
#[derive(Clone, Debug)]
pub struct LogFile<'a> {
    /// The file's path or name, used in reports.
    pub name: String,
    pub bytes: &'a [u8],
}

/// Transaction log file format; reports name it `new` or `old`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Windows 8.1 and later: `HvLE` log entries (file type 6).
    New,
    /// Windows NT to 8: a `DIRT` dirty vector and dirty pages (file type 1, or 2).
    Old,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::New => "new format (HvLE entries)",
            LogFormat::Old => "old format (DIRT dirty vector)",
        })
    }
}

/// What recovery did with one log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogUse {
    pub name: String,
    /// The file's length in bytes.
    pub size: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// `None` when the file is empty or not a transaction log.
    pub format: Option<LogFormat>,
    /// Whether anything from this log went into the recovered hive.
    pub applied: bool,
    /// New format: log entries applied. Old format: 1 when the dirty vector was applied.
    pub entries_applied: usize,
    /// Dirty pages written to the hive. New format: page references, each a run of one or
    /// more 4 KiB pages. Old format: 512-byte pages.
    pub pages_applied: usize,
    /// New format: `HvLE` entries present in the file but not applied (older than the
    /// primary, after the point where replay stopped, or in a log that was not used).
    pub entries_skipped: usize,
    /// Why entries or the whole log were not used, and where replay stopped.
    pub notes: Vec<String>,
    /// Rejected for what the file holds (not a log, a damaged or unsupported base block,
    /// another hive's log): what it should have held is missing, so a hive recovered without
    /// it may be incomplete. An empty file (an unused slot) or a stale log is not damaged.
    pub damaged: bool,
}

/// A recovered hive and how it was obtained.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The recovered hive: a clean primary file (sequence numbers equal, hive bins size and
    /// checksum updated). For a primary that was already clean, its bytes unchanged.
    pub bytes: Vec<u8>,
    /// The primary's sequence numbers (offsets 4 and 8) as found.
    pub sequence_before: (u32, u32),
    /// The sequence numbers written to [`Recovery::bytes`].
    pub sequence_after: (u32, u32),
    /// Whether the primary needed recovery (sequence numbers differ or checksum wrong).
    pub was_dirty: bool,
    /// Whether the primary's own base block was replaced by a log's copy (bad checksum).
    pub base_block_from_log: bool,
    /// Hive bins data size written to [`Recovery::bytes`] (offset 40).
    pub hive_bins_size: u32,
    /// One entry per log file given, in the order given.
    pub logs: Vec<LogUse>,
    /// Facts about the recovery as a whole (nothing applied, base block taken from a log).
    pub notes: Vec<String>,
}

impl Recovery {
    /// Log entries (new format) or dirty vectors (old format) applied, over all logs.
    pub fn entries_applied(&self) -> usize {
        self.logs.iter().map(|log| log.entries_applied).sum()
    }
}

/// Why no usable hive can be produced at all. A damaged, stale or foreign log is not an error:
/// it is a [`LogUse`] with `applied == false` and a note. Serialised (a finding's `detail`)
/// with its case in `error`, kebab-case, and its fields.
#[derive(Debug, Error, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum RecoveryError {
    #[error("the primary file is {len} bytes, shorter than the 4,096-byte base block")]
    TooShort { len: usize },

    #[error(
        "the primary file is not a registry hive (it starts with {})",
        hex_preview(.first_bytes)
    )]
    NotAHive { first_bytes: [u8; 4] },

    #[error("the primary file is a transaction log (file type {file_type}), not a hive")]
    NotPrimary { file_type: u32 },

    #[error(
        "the primary's base block is damaged (checksum {stored:#010x}, computed {computed:#010x}) and no transaction log could be applied to restore it"
    )]
    BaseBlockDamaged { stored: u32, computed: u32 },

    #[error(
        "the hive declares {bins_size} bytes of hive bins, which is not a usable size (a positive multiple of 4,096 up to 2 GiB)"
    )]
    BadBinsSize { bins_size: u32 },

    #[error(
        "the primary file is {len} bytes, but its hive bins end at byte {needed} and no transaction log supplied the missing part"
    )]
    Truncated { len: usize, needed: usize },
}

/// The XOR-32 checksum of a base block's first 508 bytes, with Windows' adjustments (0 becomes
/// 1, `0xFFFF_FFFF` becomes `0xFFFF_FFFE`). `block` must hold at least 508 bytes.
pub fn base_block_checksum(block: &[u8]) -> u32 {
    checksum(block.get(..CHECKSUM_OFFSET).unwrap_or(&[]))
}

/// Recovers `primary` with `logs` (any order; empty, foreign and damaged files allowed).
///
/// A clean primary comes back unchanged and its logs unused, as Windows ignores the logs of a
/// clean hive. A dirty one gets its new-format logs replayed (or, when it has none, the one
/// applicable old-format log), and comes back as a clean primary file. A dirty primary with
/// no applicable log comes back as it is, made readable (sequence numbers equalised), with a
/// note in [`Recovery::notes`].
///
/// # Errors
///
/// Only when no usable hive can come out: the primary is shorter than its base block, is not
/// a hive or is a log itself, its base block is damaged and no log holds a copy, or its hive
/// bins are cut short and no log supplied them. See [`RecoveryError`].
pub fn recover(primary: &[u8], logs: &[LogFile<'_>]) -> Result<Recovery, RecoveryError> {
    let Some(header) = BaseBlockHeader::of_primary(primary) else {
        return Err(RecoveryError::TooShort { len: primary.len() });
    };
    if header.signature != *b"regf" {
        return Err(RecoveryError::NotAHive {
            first_bytes: header.signature,
        });
    }
    if matches!(
        header.file_type.get(),
        FILE_TYPE_LOG_OLD | FILE_TYPE_LOG_VERY_OLD | FILE_TYPE_LOG_NEW
    ) {
        return Err(RecoveryError::NotPrimary {
            file_type: header.file_type.get(),
        });
    }
    let was_dirty = header.is_dirty();
    // A genuine log entry only carries pages that the primary and the logs hold, so the hive
    // can never legitimately need more bytes than all the inputs together.
    let growth_limit = logs.iter().fold(primary.len() as u64, |sum, log| {
        sum.saturating_add(log.bytes.len() as u64)
    });
    let mut uses: Vec<LogUse> = logs.iter().map(LogUse::new).collect();
    let mut candidates = Vec::new();
    for (index, log) in logs.iter().enumerate() {
        match classify(log.bytes, header) {
            Ok((format, log_header)) => {
                uses[index].format = Some(format);
                candidates.push(Candidate {
                    index,
                    bytes: log.bytes,
                    header: log_header,
                    format,
                });
            }
            Err((format, note)) => {
                uses[index].format = format;
                uses[index].damaged = !log.bytes.is_empty();
                if format == Some(LogFormat::New) {
                    uses[index].entries_skipped = count_entries(log.bytes, LOG_BASE_BLOCK_SIZE);
                }
                uses[index].notes.push(note);
            }
        }
    }

    if !was_dirty {
        for candidate in &candidates {
            let log_use = &mut uses[candidate.index];
            if candidate.format == LogFormat::New {
                log_use.entries_skipped = count_entries(candidate.bytes, LOG_BASE_BLOCK_SIZE);
            }
            log_use.notes.push(
                "not applied: the primary is clean (sequence numbers equal, checksum right), and Windows ignores the logs of a clean hive".to_string(),
            );
        }
        check_complete(primary, header.hive_bins_size.get())?;
        return Ok(Recovery {
            bytes: primary.to_vec(),
            sequence_before: (
                header.primary_sequence.get(),
                header.secondary_sequence.get(),
            ),
            sequence_after: (
                header.primary_sequence.get(),
                header.secondary_sequence.get(),
            ),
            was_dirty,
            base_block_from_log: false,
            hive_bins_size: header.hive_bins_size.get(),
            logs: uses,
            notes: Vec::new(),
        });
    }

    let (new, old): (Vec<Candidate>, Vec<Candidate>) = candidates
        .into_iter()
        .partition(|c| c.format == LogFormat::New);
    let outcome = if !new.is_empty() {
        for candidate in &old {
            uses[candidate.index].notes.push(
                "not applied: new-format logs are present, and an old-format log cannot continue them".to_string(),
            );
        }
        replay_new(primary, header, &new, &mut uses, growth_limit)
    } else {
        replay_old(primary, header, &old, &mut uses, growth_limit)
    };
    let Some(mut outcome) = outcome else {
        if !header.checksum_ok() {
            return Err(RecoveryError::BaseBlockDamaged {
                stored: header.checksum.get(),
                computed: header.computed_checksum(),
            });
        }
        // Nothing applicable: the primary's own data, made readable.
        let mut bytes = primary.to_vec();
        let sequence = header.primary_sequence.get();
        finish_base_block(&mut bytes, sequence, header.hive_bins_size.get(), None);
        check_complete(&bytes, header.hive_bins_size.get())?;
        let mut notes = vec![format!(
            "nothing was applied: the hive is the primary file as it is, so writes after its last complete flush (sequence {}) are missing",
            header.secondary_sequence.get()
        )];
        if logs.is_empty() {
            notes.push("no transaction log was given".to_string());
        }
        return Ok(Recovery {
            bytes,
            sequence_before: (
                header.primary_sequence.get(),
                header.secondary_sequence.get(),
            ),
            sequence_after: (sequence, sequence),
            was_dirty,
            base_block_from_log: false,
            hive_bins_size: header.hive_bins_size.get(),
            logs: uses,
            notes,
        });
    };
    finish_base_block(
        &mut outcome.bytes,
        outcome.sequence,
        outcome.bins_size,
        outcome.flags,
    );
    check_complete(&outcome.bytes, outcome.bins_size)?;
    Ok(Recovery {
        bytes: outcome.bytes,
        sequence_before: (
            header.primary_sequence.get(),
            header.secondary_sequence.get(),
        ),
        sequence_after: (outcome.sequence, outcome.sequence),
        was_dirty,
        base_block_from_log: outcome.base_block_from_log,
        hive_bins_size: outcome.bins_size,
        logs: uses,
        notes: outcome.notes,
    })
}

impl LogUse {
    fn new(log: &LogFile<'_>) -> LogUse {
        LogUse {
            name: log.name.clone(),
            size: log.bytes.len() as u64,
            sha256: sha256_hex(log.bytes),
            format: None,
            applied: false,
            entries_applied: 0,
            pages_applied: 0,
            entries_skipped: 0,
            notes: Vec::new(),
            damaged: false,
        }
    }
}

struct Candidate<'a> {
    index: usize,
    bytes: &'a [u8],
    /// The log's copy of the base block.
    header: &'a BaseBlockHeader,
    format: LogFormat,
}

/// The recovered image before its base block is finished.
struct Outcome {
    bytes: Vec<u8>,
    sequence: u32,
    bins_size: u32,
    /// New value for the base block flags, when the log says.
    flags: Option<u32>,
    base_block_from_log: bool,
    notes: Vec<String>,
}

/// Whether a log can be used at all, and in which format; or why not.
fn classify<'a>(
    bytes: &'a [u8],
    primary: &BaseBlockHeader,
) -> Result<(LogFormat, &'a BaseBlockHeader), (Option<LogFormat>, String)> {
    if bytes.is_empty() {
        return Err((
            None,
            "not applied: the file is empty (an unused log slot)".to_string(),
        ));
    }
    let Some(header) = BaseBlockHeader::parse(bytes) else {
        return Err((
            None,
            format!(
                "not applied: {} bytes is too short for a log's 512-byte base block",
                bytes.len()
            ),
        ));
    };
    if !bytes.starts_with(b"regf") {
        return Err((
            None,
            format!(
                "not applied: not a registry transaction log (it starts with {})",
                hex_preview(bytes)
            ),
        ));
    }
    let format = match header.file_type.get() {
        FILE_TYPE_LOG_NEW => LogFormat::New,
        FILE_TYPE_LOG_OLD | FILE_TYPE_LOG_VERY_OLD => LogFormat::Old,
        FILE_TYPE_PRIMARY => {
            return Err((
                None,
                "not applied: this is a primary hive file (file type 0), not a transaction log"
                    .to_string(),
            ))
        }
        other => {
            return Err((
                None,
                format!("not applied: unknown file type {other} in its base block"),
            ))
        }
    };
    let fail = |why: String| Err((Some(format), format!("not applied: {why}")));
    if !header.checksum_ok() {
        return fail(format!(
            "its base block checksum is wrong (stored {:#010x}, computed {:#010x}): the log itself was being written when the system stopped",
            header.checksum.get(), header.computed_checksum()
        ));
    }
    if header.primary_sequence.get() != header.secondary_sequence.get() {
        return fail(format!(
            "its base block is mid-update (sequence numbers {} and {} differ)",
            header.primary_sequence.get(),
            header.secondary_sequence.get()
        ));
    }
    if header.major_version.get() != 1
        || header.file_format.get() != 1
        || header.clustering_factor.get() != 1
    {
        return fail(format!(
            "unsupported base block (version {}.x, file format {}, clustering factor {})",
            header.major_version.get(),
            header.file_format.get(),
            header.clustering_factor.get()
        ));
    }
    if !valid_bins_size(header.hive_bins_size.get()) {
        return fail(format!(
            "its base block declares {} bytes of hive bins, not a positive multiple of 4,096",
            header.hive_bins_size.get()
        ));
    }
    if let Some(why) = foreign(header, primary) {
        return fail(why);
    }
    Ok((format, header))
}

/// Why a log evidently belongs to another hive: both its embedded file name and its resource
/// manager GUID differ from the primary's. (Either one matching is enough: Windows copies both
/// from the same in-memory base block into the primary and the logs.)
fn foreign(log: &BaseBlockHeader, primary: &BaseBlockHeader) -> Option<String> {
    if !primary.checksum_ok() {
        return None; // nothing trustworthy to compare with
    }
    let name = |header: &BaseBlockHeader| -> Vec<u16> {
        header
            .name_units()
            .map(|u| {
                if u < 0x80 {
                    u16::from((u as u8).to_ascii_uppercase())
                } else {
                    u
                }
            })
            .collect()
    };
    let (log_name, primary_name) = (name(log), name(primary));
    if log_name.is_empty() || primary_name.is_empty() || log_name == primary_name {
        return None;
    }
    let rm_id = |header: &BaseBlockHeader| -> Option<[u8; 16]> {
        (header.guid_signature == *b"rmtm" && header.rm_id != [0; 16]).then_some(header.rm_id)
    };
    if let (Some(a), Some(b)) = (rm_id(log), rm_id(primary)) {
        if a == b {
            return None;
        }
    }
    let raw = |header: &BaseBlockHeader| {
        String::from_utf16_lossy(&header.name_units().collect::<Vec<_>>())
    };
    Some(format!(
        "it belongs to another hive: its base block names \"{}\", the primary's \"{}\"",
        raw(log),
        raw(primary),
    ))
}

/// `a` is later than `b` in sequence-number order, allowing for wrap-around.
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Makes the base block that of a clean primary: equal sequence numbers, the bins size, file
/// type 0, the flags when known, and a fresh checksum.
fn finish_base_block(bytes: &mut [u8], sequence: u32, bins_size: u32, flags: Option<u32>) {
    let Ok((header, _)) = BaseBlockHeader::mut_from_prefix(bytes) else {
        return;
    };
    header.primary_sequence.set(sequence);
    header.secondary_sequence.set(sequence);
    header.file_type.set(FILE_TYPE_PRIMARY);
    header.hive_bins_size.set(bins_size);
    if let Some(flags) = flags {
        header.flags.set(flags);
    }
    let checksum = header.computed_checksum();
    header.checksum.set(checksum);
}

fn check_complete(bytes: &[u8], bins_size: u32) -> Result<(), RecoveryError> {
    if !valid_bins_size(bins_size) {
        return Err(RecoveryError::BadBinsSize { bins_size });
    }
    let needed = BASE_BLOCK_SIZE + bins_size as usize;
    if bytes.len() < needed {
        return Err(RecoveryError::Truncated {
            len: bytes.len(),
            needed,
        });
    }
    Ok(())
}

fn valid_bins_size(size: u32) -> bool {
    size >= HBIN_ALIGNMENT && size % HBIN_ALIGNMENT == 0 && size <= MAX_HIVE_BINS_SIZE
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex_preview(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing (0 bytes)".to_string();
    }
    bytes
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
