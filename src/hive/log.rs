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

/// Size of a primary file's base block, and the file offset of the first hive bin.
pub const BASE_BLOCK_SIZE: usize = 4096;
/// Size of the base block copy at the start of a transaction log (clustering factor 1).
pub const LOG_BASE_BLOCK_SIZE: usize = 512;
/// The largest hive bins data this module builds (2 GiB), whatever a file declares.
pub const MAX_HIVE_BINS_SIZE: u32 = 0x8000_0000;
/// The Marvin32 seed of log entry hashes (bytes `82 EF 4D 88 7A 4E 55 C5` as one number).
pub const LOG_HASH_SEED: u64 = 0x82EF_4D88_7A4E_55C5;

const CHECKSUM_OFFSET: usize = 508;
const FLAGS_OFFSET: usize = 144;
const ENTRY_HEADER_SIZE: usize = 40;
const SECTOR: usize = 512;
const HBIN_ALIGNMENT: u32 = 4096;
const FILE_TYPE_PRIMARY: u32 = 0;
const FILE_TYPE_LOG_OLD: u32 = 1;
const FILE_TYPE_LOG_VERY_OLD: u32 = 2;
const FILE_TYPE_LOG_NEW: u32 = 6;
/// Base block flag restored from log entries: KTM locked the hive (pending transactions).
const FLAG_KTM_LOCKED: u32 = 0x1;

/// One transaction log file as read from the image.
#[derive(Clone, Debug)]
pub struct LogFile<'a> {
    /// The file's path or name, used in reports.
    pub name: String,
    pub bytes: &'a [u8],
}

/// Transaction log file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
/// it is a [`LogUse`] with `applied == false` and a note.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecoveryError {
    #[error("the primary file is {len} bytes, shorter than the 4,096-byte base block")]
    TooShort { len: usize },

    #[error("the primary file is not a registry hive (it starts with {first_bytes})")]
    NotAHive { first_bytes: String },

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

/// Marvin32 of `data` with `seed`, folded to 32 bits (low half XOR high half), as .NET's
/// `Marvin.ComputeHash32` returns it.
pub fn marvin32(data: &[u8], seed: u64) -> u32 {
    let state = marvin32_64(data, seed);
    (state as u32) ^ ((state >> 32) as u32)
}

/// The full 64-bit Marvin32 state, high half (p1) above low half (p0): the form log entries
/// store (little-endian) in their Hash-1 and Hash-2 fields, and the form of the published
/// .NET test vectors.
pub fn marvin32_64(data: &[u8], seed: u64) -> u64 {
    fn block(p0: &mut u32, p1: &mut u32) {
        *p1 ^= *p0;
        *p0 = p0.rotate_left(20).wrapping_add(*p1);
        *p1 = p1.rotate_left(9) ^ *p0;
        *p0 = p0.rotate_left(27).wrapping_add(*p1);
        *p1 = p1.rotate_left(19);
    }
    let mut p0 = seed as u32;
    let mut p1 = (seed >> 32) as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        p0 = p0.wrapping_add(u32::from_le_bytes([word[0], word[1], word[2], word[3]]));
        block(&mut p0, &mut p1);
    }
    // The 0-3 remaining bytes, little-endian, under a 0x80 end marker.
    let tail = words
        .remainder()
        .iter()
        .rev()
        .fold(0x80u32, |acc, &byte| (acc << 8) | u32::from(byte));
    p0 = p0.wrapping_add(tail);
    block(&mut p0, &mut p1);
    block(&mut p0, &mut p1);
    (u64::from(p1) << 32) | u64::from(p0)
}

/// The XOR-32 checksum of a base block's first 508 bytes, with Windows' adjustments (0 becomes
/// 1, `0xFFFF_FFFF` becomes `0xFFFF_FFFE`). `block` must hold at least 508 bytes.
pub fn base_block_checksum(block: &[u8]) -> u32 {
    let sum = block
        .get(..CHECKSUM_OFFSET)
        .unwrap_or(&[])
        .chunks_exact(4)
        .fold(0u32, |acc, d| {
            acc ^ u32::from_le_bytes([d[0], d[1], d[2], d[3]])
        });
    match sum {
        0 => 1,
        u32::MAX => u32::MAX - 1,
        sum => sum,
    }
}

/// Whether a primary file needs recovery: its sequence numbers differ or its base block
/// checksum is wrong. `false` for anything too short to tell.
pub fn is_dirty(primary: &[u8]) -> bool {
    Header::parse(primary).is_some_and(|h| !h.checksum_ok || h.seq1 != h.seq2)
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
    if primary.len() < BASE_BLOCK_SIZE {
        return Err(RecoveryError::TooShort { len: primary.len() });
    }
    let Some(header) = Header::parse(primary).filter(|_| primary.starts_with(b"regf")) else {
        return Err(RecoveryError::NotAHive {
            first_bytes: hex_preview(primary),
        });
    };
    if matches!(
        header.file_type,
        FILE_TYPE_LOG_OLD | FILE_TYPE_LOG_VERY_OLD | FILE_TYPE_LOG_NEW
    ) {
        return Err(RecoveryError::NotPrimary {
            file_type: header.file_type,
        });
    }
    let was_dirty = !header.checksum_ok || header.seq1 != header.seq2;
    // A genuine log entry only carries pages that the primary and the logs hold, so the hive
    // can never legitimately need more bytes than all the inputs together.
    let growth_limit = logs.iter().fold(primary.len() as u64, |sum, log| {
        sum.saturating_add(log.bytes.len() as u64)
    });
    let mut uses: Vec<LogUse> = logs.iter().map(LogUse::new).collect();
    let mut candidates = Vec::new();
    for (index, log) in logs.iter().enumerate() {
        match classify(log.bytes, primary, &header) {
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
        check_complete(primary, header.bins_size)?;
        return Ok(Recovery {
            bytes: primary.to_vec(),
            sequence_before: (header.seq1, header.seq2),
            sequence_after: (header.seq1, header.seq2),
            was_dirty,
            base_block_from_log: false,
            hive_bins_size: header.bins_size,
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
        replay_new(primary, &header, &new, &mut uses, growth_limit)
    } else {
        replay_old(primary, &header, &old, &mut uses, growth_limit)
    };
    let Some(mut outcome) = outcome else {
        if !header.checksum_ok {
            return Err(RecoveryError::BaseBlockDamaged {
                stored: header.stored_checksum,
                computed: header.computed_checksum,
            });
        }
        // Nothing applicable: the primary's own data, made readable.
        let mut bytes = primary.to_vec();
        let sequence = header.seq1;
        finish_base_block(&mut bytes, sequence, header.bins_size, None);
        check_complete(&bytes, header.bins_size)?;
        let mut notes = vec![format!(
            "nothing was applied: the hive is the primary file as it is, so writes after its last complete flush (sequence {}) are missing",
            header.seq2
        )];
        if logs.is_empty() {
            notes.push("no transaction log was given".to_string());
        }
        return Ok(Recovery {
            bytes,
            sequence_before: (header.seq1, header.seq2),
            sequence_after: (sequence, sequence),
            was_dirty,
            base_block_from_log: false,
            hive_bins_size: header.bins_size,
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
        sequence_before: (header.seq1, header.seq2),
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

/// The base block fields recovery uses. Parsed from the first 512 bytes, so it serves for the
/// 4,096-byte block of a primary and the 512-byte copy at the start of a log alike.
#[derive(Clone, Copy, Debug)]
struct Header {
    seq1: u32,
    seq2: u32,
    timestamp: u64,
    major: u32,
    file_type: u32,
    file_format: u32,
    bins_size: u32,
    clustering: u32,
    stored_checksum: u32,
    computed_checksum: u32,
    checksum_ok: bool,
}

impl Header {
    fn parse(bytes: &[u8]) -> Option<Header> {
        let block = bytes.get(..LOG_BASE_BLOCK_SIZE)?;
        let stored_checksum = u32_at(block, CHECKSUM_OFFSET)?;
        let computed_checksum = base_block_checksum(block);
        Some(Header {
            seq1: u32_at(block, 4)?,
            seq2: u32_at(block, 8)?,
            timestamp: u64_at(block, 12)?,
            major: u32_at(block, 20)?,
            file_type: u32_at(block, 28)?,
            file_format: u32_at(block, 32)?,
            bins_size: u32_at(block, 40)?,
            clustering: u32_at(block, 44)?,
            stored_checksum,
            computed_checksum,
            checksum_ok: stored_checksum == computed_checksum,
        })
    }
}

struct Candidate<'a> {
    index: usize,
    bytes: &'a [u8],
    header: Header,
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
fn classify(
    bytes: &[u8],
    primary: &[u8],
    primary_header: &Header,
) -> Result<(LogFormat, Header), (Option<LogFormat>, String)> {
    if bytes.is_empty() {
        return Err((
            None,
            "not applied: the file is empty (an unused log slot)".to_string(),
        ));
    }
    let Some(header) = Header::parse(bytes) else {
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
    let format = match header.file_type {
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
    if !header.checksum_ok {
        return fail(format!(
            "its base block checksum is wrong (stored {:#010x}, computed {:#010x}): the log itself was being written when the system stopped",
            header.stored_checksum, header.computed_checksum
        ));
    }
    if header.seq1 != header.seq2 {
        return fail(format!(
            "its base block is mid-update (sequence numbers {} and {} differ)",
            header.seq1, header.seq2
        ));
    }
    if header.major != 1 || header.file_format != 1 || header.clustering != 1 {
        return fail(format!(
            "unsupported base block (version {}.x, file format {}, clustering factor {})",
            header.major, header.file_format, header.clustering
        ));
    }
    if !valid_bins_size(header.bins_size) {
        return fail(format!(
            "its base block declares {} bytes of hive bins, not a positive multiple of 4,096",
            header.bins_size
        ));
    }
    if let Some(why) = foreign(bytes, primary, primary_header) {
        return fail(why);
    }
    Ok((format, header))
}

/// Why a log evidently belongs to another hive: both its embedded file name and its resource
/// manager GUID differ from the primary's. (Either one matching is enough: Windows copies both
/// from the same in-memory base block into the primary and the logs.)
fn foreign(log: &[u8], primary: &[u8], primary_header: &Header) -> Option<String> {
    if !primary_header.checksum_ok {
        return None; // nothing trustworthy to compare with
    }
    let name = |b: &[u8]| -> Vec<u16> {
        b.get(48..112)
            .unwrap_or(&[])
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .take_while(|&u| u != 0)
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
    let rm_id = |b: &[u8]| -> Option<[u8; 16]> {
        let signature = b.get(164..168)?;
        let id: [u8; 16] = b.get(112..128)?.try_into().ok()?;
        (signature == b"rmtm" && id != [0; 16]).then_some(id)
    };
    if let (Some(a), Some(b)) = (rm_id(log), rm_id(primary)) {
        if a == b {
            return None;
        }
    }
    Some(format!(
        "it belongs to another hive: its base block names \"{}\", the primary's \"{}\"",
        String::from_utf16_lossy(&name_raw(log)),
        String::from_utf16_lossy(&name_raw(primary)),
    ))
}

fn name_raw(b: &[u8]) -> Vec<u16> {
    b.get(48..112)
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .take_while(|&u| u != 0)
        .collect()
}

/// `a` is later than `b` in sequence-number order, allowing for wrap-around.
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// New format: replay the logs in order of their base sequence numbers, chaining each log's
/// run of consecutive entries onto the previous one.
fn replay_new(
    primary: &[u8],
    header: &Header,
    logs: &[Candidate<'_>],
    uses: &mut [LogUse],
    growth_limit: u64,
) -> Option<Outcome> {
    let mut notes = Vec::new();
    let (mut bytes, mut bins_size, order, base_block_from_log) = if header.checksum_ok {
        // Logs whose base sequence is older than the primary's last complete write hold only
        // what the primary already has.
        let mut eligible = Vec::new();
        for log in logs {
            if seq_after(header.seq2, log.header.seq1) {
                let log_use = &mut uses[log.index];
                log_use.entries_skipped = count_entries(log.bytes, LOG_BASE_BLOCK_SIZE);
                log_use.notes.push(format!(
                    "not applied: its entries start at sequence {}, older than the primary's last complete write (secondary sequence {}), so the primary already holds them",
                    log.header.seq1, header.seq2
                ));
            } else {
                eligible.push(log);
            }
        }
        // Earliest entries first.
        eligible.sort_by_key(|log| log.header.seq1.wrapping_sub(header.seq2));
        (primary.to_vec(), header.bins_size, eligible, false)
    } else {
        // Windows replays only the log with the latest entries when the primary's base block
        // is damaged, and takes the base block from it.
        let newest = logs.iter().reduce(|best, log| {
            if seq_after(log.header.seq1, best.header.seq1) {
                log
            } else {
                best
            }
        })?;
        let newest_name = uses[newest.index].name.clone();
        for log in logs {
            if log.index != newest.index {
                let log_use = &mut uses[log.index];
                log_use.entries_skipped = count_entries(log.bytes, LOG_BASE_BLOCK_SIZE);
                log_use.notes.push(format!(
                    "not applied: the primary's base block is damaged, and then Windows replays only the log with the latest entries ({newest_name})"
                ));
            }
        }
        let mut bytes = primary.to_vec();
        bytes[..BASE_BLOCK_SIZE].fill(0);
        bytes[..LOG_BASE_BLOCK_SIZE].copy_from_slice(&newest.bytes[..LOG_BASE_BLOCK_SIZE]);
        notes.push(format!(
            "the primary's base block is damaged (checksum {:#010x}, computed {:#010x}); it was replaced by the copy in {}",
            header.stored_checksum, header.computed_checksum, uses[newest.index].name
        ));
        (bytes, newest.header.bins_size, vec![newest], true)
    };

    let mut last: Option<u32> = None;
    let mut flags = None;
    let mut chain_broken: Option<String> = None;
    for log in order {
        let log_use = &mut uses[log.index];
        if let Some(why) = &chain_broken {
            log_use.entries_skipped = count_entries(log.bytes, LOG_BASE_BLOCK_SIZE);
            log_use.notes.push(format!("not applied: {why}"));
            continue;
        }
        if let Some(last) = last {
            let next = last.wrapping_add(1);
            if log.header.seq1 != next {
                log_use.entries_skipped = count_entries(log.bytes, LOG_BASE_BLOCK_SIZE);
                log_use.notes.push(format!(
                    "not applied: its entries start at sequence {}, but replay needs {} next (the last entry applied was {}); Windows stops at the first gap",
                    log.header.seq1, next, last
                ));
                continue;
            }
        }
        let mut pos = LOG_BASE_BLOCK_SIZE;
        let mut expected = log.header.seq1;
        let stop = loop {
            let entry = match parse_entry(log.bytes, pos, growth_limit) {
                Ok(entry) => entry,
                Err(stop) => break stop,
            };
            if entry.sequence != expected {
                break Stop::Sequence {
                    found: entry.sequence,
                    expected,
                };
            }
            let end = BASE_BLOCK_SIZE + entry.bins_size as usize;
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            for page in &entry.pages {
                let target = BASE_BLOCK_SIZE + page.target as usize;
                let data = &log.bytes[page.data..page.data + page.len];
                bytes[target..target + page.len].copy_from_slice(data);
            }
            bins_size = entry.bins_size;
            flags = Some(entry.flags);
            last = Some(entry.sequence);
            log_use.entries_applied += 1;
            log_use.pages_applied += entry.pages.len();
            log_use.applied = true;
            expected = expected.wrapping_add(1);
            pos += entry.size;
        };
        log_use.entries_skipped = count_entries(log.bytes, pos);
        let applied = log_use.entries_applied;
        let range = match last {
            Some(last) if applied == 1 => format!("applied 1 entry (sequence {last})"),
            Some(last) if applied > 0 => format!(
                "applied {applied} entries (sequence {} to {last})",
                log.header.seq1
            ),
            _ => format!(
                "no entry applied (the first was expected to have sequence {})",
                log.header.seq1
            ),
        };
        log_use
            .notes
            .push(format!("{range}; replay {}", stop.describe(pos)));
        if let Some(why) = stop.abnormal(pos) {
            notes.push(format!(
                "replay of {} {why}; later entries were not applied",
                log_use.name
            ));
        }
        if applied == 0 {
            chain_broken = Some(format!(
                "{} yielded no entries, so later logs cannot continue the sequence",
                log_use.name
            ));
        }
    }
    let sequence = last?;
    // Only the KTM-locked bit travels in log entries.
    let flags = flags.map(|entry_flags| {
        let base = u32_at(&bytes, FLAGS_OFFSET).unwrap_or(0);
        (base & !FLAG_KTM_LOCKED) | (entry_flags & FLAG_KTM_LOCKED)
    });
    Some(Outcome {
        bytes,
        sequence,
        bins_size,
        flags,
        base_block_from_log,
        notes,
    })
}

struct Entry {
    size: usize,
    sequence: u32,
    flags: u32,
    bins_size: u32,
    pages: Vec<Page>,
}

struct Page {
    /// Offset in the hive bins data.
    target: u32,
    len: usize,
    /// Offset of the page's bytes in the log file.
    data: usize,
}

/// Why replay of one log stopped.
enum Stop {
    /// The file ends.
    EndOfFile,
    /// No `HvLE` signature: unused or stale space, the normal end of a log.
    NoEntry,
    /// A consecutive run ended: the next entry is older (left from an earlier cycle) or
    /// further ahead.
    Sequence { found: u32, expected: u32 },
    /// An `HvLE` entry that is not valid.
    Damaged(String),
}

impl Stop {
    fn describe(&self, pos: usize) -> String {
        match self {
            Stop::EndOfFile => format!("reached the end of the file (offset {pos})"),
            Stop::NoEntry => format!("ended at offset {pos}, where no further entry starts"),
            Stop::Sequence { found, expected } if seq_after(*expected, *found) => format!(
                "ended at offset {pos}: the entry there has sequence {found}, older than the {expected} expected (left from an earlier use of the file)"
            ),
            Stop::Sequence { found, expected } => format!(
                "stopped at offset {pos}: the entry there has sequence {found} where {expected} was expected, and Windows stops at the first gap"
            ),
            Stop::Damaged(why) => format!("stopped at offset {pos}: {why}"),
        }
    }

    /// For a stop that is not the normal end of a log: what happened, for the overall notes.
    fn abnormal(&self, pos: usize) -> Option<String> {
        match self {
            Stop::Damaged(why) => Some(format!("stopped at a damaged entry (offset {pos}: {why})")),
            Stop::Sequence { found, expected } if seq_after(*found, *expected) => Some(format!(
                "stopped at a sequence gap (offset {pos}: sequence {found} where {expected} was expected)"
            )),
            _ => None,
        }
    }
}

/// Reads and checks the log entry at `pos`.
fn parse_entry(log: &[u8], pos: usize, growth_limit: u64) -> Result<Entry, Stop> {
    let Some(head) = log
        .get(pos..)
        .and_then(|rest| rest.get(..ENTRY_HEADER_SIZE))
    else {
        return Err(if pos >= log.len() {
            Stop::EndOfFile
        } else {
            Stop::NoEntry
        });
    };
    if !head.starts_with(b"HvLE") {
        return Err(Stop::NoEntry);
    }
    let field = |offset: usize| u32_at(head, offset).unwrap_or(0);
    let size = field(4) as usize;
    let flags = field(8);
    let sequence = field(12);
    let bins_size = field(16);
    let count = field(20) as usize;
    let damaged = |why: String| Err(Stop::Damaged(format!("entry {sequence}: {why}")));
    if size < SECTOR || size % SECTOR != 0 {
        return damaged(format!("size {size} is not a positive multiple of 512"));
    }
    let Some(entry) = log.get(pos..).and_then(|rest| rest.get(..size)) else {
        return damaged(format!(
            "size {size} runs past the end of the file ({} bytes left)",
            log.len() - pos
        ));
    };
    if !valid_bins_size(bins_size) {
        return damaged(format!(
            "hive bins size {bins_size} is not a positive multiple of 4,096"
        ));
    }
    if BASE_BLOCK_SIZE as u64 + u64::from(bins_size) > growth_limit {
        return damaged(format!(
            "hive bins size {bins_size} is more than the primary and the logs together could fill"
        ));
    }
    let stored_hash2 = u64_at(entry, 32).unwrap_or(0);
    if marvin32_64(&entry[..32], LOG_HASH_SEED) != stored_hash2 {
        return damaged("Hash-2 (over the entry header) does not match".to_string());
    }
    let stored_hash1 = u64_at(entry, 24).unwrap_or(0);
    if marvin32_64(&entry[ENTRY_HEADER_SIZE..], LOG_HASH_SEED) != stored_hash1 {
        return damaged("Hash-1 (over the page references and pages) does not match".to_string());
    }
    if count == 0 {
        return damaged("it has no dirty pages".to_string());
    }
    let references_end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(ENTRY_HEADER_SIZE))
        .filter(|&end| end <= size);
    let Some(references_end) = references_end else {
        return damaged(format!(
            "{count} page references do not fit in {size} bytes"
        ));
    };
    let mut pages = Vec::with_capacity(count);
    let mut data = references_end;
    for reference in entry[ENTRY_HEADER_SIZE..references_end].chunks_exact(8) {
        let target = u32::from_le_bytes([reference[0], reference[1], reference[2], reference[3]]);
        let len = u32::from_le_bytes([reference[4], reference[5], reference[6], reference[7]]);
        if u64::from(target) + u64::from(len) > u64::from(bins_size) {
            return damaged(format!(
                "a page at {target:#x} of {len} bytes lies outside its {bins_size} bytes of hive bins"
            ));
        }
        let len = len as usize;
        if data.checked_add(len).is_none_or(|end| end > size) {
            return damaged(format!("its pages need more than its {size} bytes"));
        }
        pages.push(Page {
            target,
            len,
            data: pos + data,
        });
        data += len;
    }
    Ok(Entry {
        size,
        sequence,
        flags,
        bins_size,
        pages,
    })
}

/// `HvLE` entries found by walking from `pos` by their size fields (hashes not checked):
/// how many entries a log holds beyond what was applied.
fn count_entries(log: &[u8], mut pos: usize) -> usize {
    let mut count = 0;
    while let Some(head) = log
        .get(pos..)
        .and_then(|rest| rest.get(..ENTRY_HEADER_SIZE))
    {
        if !head.starts_with(b"HvLE") {
            break;
        }
        count += 1;
        let size = u32_at(head, 4).unwrap_or(0) as usize;
        if size < SECTOR || size % SECTOR != 0 {
            break;
        }
        pos = pos.saturating_add(size);
    }
    count
}

/// Old format: apply the one applicable log (the latest by its timestamp).
fn replay_old(
    primary: &[u8],
    header: &Header,
    logs: &[Candidate<'_>],
    uses: &mut [LogUse],
    growth_limit: u64,
) -> Option<Outcome> {
    // The time of the interrupted write, from the base block or, when that is damaged, from
    // its backup in the first hive bin.
    let reference = if header.checksum_ok {
        Some(header.timestamp)
    } else {
        primary
            .get(BASE_BLOCK_SIZE..)
            .filter(|bins| bins.starts_with(b"hbin"))
            .and_then(|bins| u64_at(bins, 20))
    };
    let mut order: Vec<&Candidate<'_>> = logs.iter().collect();
    order.sort_by_key(|log| std::cmp::Reverse(log.header.timestamp));
    let mut chosen: Option<(&Candidate<'_>, Vec<usize>, usize)> = None;
    for log in order {
        if let Some((chosen, _, _)) = &chosen {
            let note = format!(
                "not applied: Windows applies one old-format log, and {} is the later one",
                uses[chosen.index].name
            );
            uses[log.index].notes.push(note);
            continue;
        }
        let log_use = &mut uses[log.index];
        match reference {
            Some(reference) if log.header.timestamp < reference => {
                log_use.notes.push(format!(
                    "not applied: its last-written time ({}) is older than the primary's ({reference}), so it logs an earlier write",
                    log.header.timestamp
                ));
                continue;
            }
            None => {
                log_use.notes.push(
                    "not applied: the primary's base block is damaged and its first hive bin has no timestamp to match the log against".to_string(),
                );
                continue;
            }
            Some(reference) if log.header.timestamp > reference => {
                log_use.notes.push(format!(
                    "its last-written time ({}) is later than the primary's ({reference}); applied as yarp does (the specification expects them equal)",
                    log.header.timestamp
                ));
            }
            Some(_) => {}
        }
        match dirty_vector(log.bytes, log.header.bins_size, growth_limit) {
            Ok((pages, start)) => chosen = Some((log, pages, start)),
            Err(why) => log_use.notes.push(format!("not applied: {why}")),
        }
    }
    let (log, pages, start) = chosen?;
    let mut bytes = primary.to_vec();
    let mut notes = Vec::new();
    let base_block_from_log = !header.checksum_ok;
    if base_block_from_log {
        bytes[..BASE_BLOCK_SIZE].fill(0);
        bytes[..LOG_BASE_BLOCK_SIZE].copy_from_slice(&log.bytes[..LOG_BASE_BLOCK_SIZE]);
        notes.push(format!(
            "the primary's base block is damaged (checksum {:#010x}, computed {:#010x}); it was replaced by the copy in {}",
            header.stored_checksum, header.computed_checksum, uses[log.index].name
        ));
    }
    let bins_size = log.header.bins_size;
    let end = BASE_BLOCK_SIZE + bins_size as usize;
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    for (k, &bit) in pages.iter().enumerate() {
        let source = start + k * SECTOR;
        let target = BASE_BLOCK_SIZE + bit * SECTOR;
        bytes[target..target + SECTOR].copy_from_slice(&log.bytes[source..source + SECTOR]);
    }
    let log_use = &mut uses[log.index];
    log_use.applied = true;
    log_use.entries_applied = 1;
    log_use.pages_applied = pages.len();
    log_use.notes.push(format!(
        "applied its dirty vector: {} pages of 512 bytes ({} bytes of hive bins)",
        pages.len(),
        pages.len() * SECTOR
    ));
    // Old-format logs do not number their writes: the recovered hive completes the write the
    // primary's first sequence number announced.
    let sequence = if header.checksum_ok {
        header.seq1
    } else {
        log.header.seq1
    };
    Some(Outcome {
        bytes,
        sequence,
        bins_size,
        flags: u32_at(log.bytes, FLAGS_OFFSET),
        base_block_from_log,
        notes,
    })
}

/// The dirty pages of an old-format log: the bit number of each dirty 512-byte page, and the
/// file offset of the first page's bytes.
fn dirty_vector(
    log: &[u8],
    bins_size: u32,
    growth_limit: u64,
) -> Result<(Vec<usize>, usize), String> {
    if BASE_BLOCK_SIZE as u64 + u64::from(bins_size) > growth_limit {
        return Err(format!(
            "its base block declares {bins_size} bytes of hive bins, more than the primary and the logs together could fill"
        ));
    }
    let vector = log.get(LOG_BASE_BLOCK_SIZE..).unwrap_or(&[]);
    if !vector.starts_with(b"DIRT") {
        return Err(format!(
            "no DIRT signature at offset 512 (found {})",
            hex_preview(vector)
        ));
    }
    let bitmap_len = bins_size as usize / 4096; // one bit per 512 bytes
    let Some(bitmap) = vector.get(4..4 + bitmap_len) else {
        return Err(format!(
            "the file ends inside its dirty vector ({bitmap_len} bytes of bitmap needed)"
        ));
    };
    let pages: Vec<usize> = bitmap
        .iter()
        .enumerate()
        .flat_map(|(byte_index, &byte)| {
            (0..8)
                .filter(move |bit| byte & (1 << bit) != 0)
                .map(move |bit| byte_index * 8 + bit)
        })
        .collect();
    let start = (LOG_BASE_BLOCK_SIZE + 4 + bitmap_len).next_multiple_of(SECTOR);
    let needed = start + pages.len() * SECTOR;
    if needed > log.len() {
        return Err(format!(
            "the file is truncated: its dirty vector marks {} pages, which need {needed} bytes, but the file has {}",
            pages.len(),
            log.len()
        ));
    }
    if pages.is_empty() {
        return Err("its dirty vector marks no pages".to_string());
    }
    Ok((pages, start))
}

/// Makes the base block that of a clean primary: equal sequence numbers, the bins size, file
/// type 0, the flags when known, and a fresh checksum.
fn finish_base_block(bytes: &mut [u8], sequence: u32, bins_size: u32, flags: Option<u32>) {
    put_u32(bytes, 4, sequence);
    put_u32(bytes, 8, sequence);
    put_u32(bytes, 28, FILE_TYPE_PRIMARY);
    put_u32(bytes, 40, bins_size);
    if let Some(flags) = flags {
        put_u32(bytes, FLAGS_OFFSET, flags);
    }
    let checksum = base_block_checksum(bytes);
    put_u32(bytes, CHECKSUM_OFFSET, checksum);
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

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let lo = u32_at(bytes, offset)?;
    let hi = u32_at(bytes, offset.checked_add(4)?)?;
    Some(u64::from(lo) | (u64::from(hi) << 32))
}

fn put_u32(bytes: &mut [u8], offset: usize, value: u32) {
    if let Some(slot) = bytes.get_mut(offset..offset + 4) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marvin_matches_the_dotnet_vectors() {
        // dotnet/runtime MarvinTests.cs (64-bit form: p1 << 32 | p0).
        let seed1 = 0x004F_B61A_001B_DBCC;
        let seed2 = 0x804F_B61A_001B_DBCC;
        let seed3 = 0x804F_B61A_801B_DBCC;
        let cases: [(u64, &[u8], u64); 22] = [
            (seed1, b"", 0x30ED_35C1_00CD_3C7D),
            (seed1, &[0xAF], 0x48E7_3FC7_7D75_DDC1),
            (seed1, &[0xE7, 0x0F], 0xB5F6_E1FC_485D_BFF8),
            (seed1, &[0x37, 0xF4, 0x95], 0xF0B0_7C78_9B8C_F7E8),
            (seed1, &[0x86, 0x42, 0xDC, 0x59], 0x7008_F2E8_7E9C_F556),
            (
                seed1,
                &[0x15, 0x3F, 0xB7, 0x98, 0x26],
                0xE6C0_8C6D_A2AF_A997,
            ),
            (
                seed1,
                &[0x09, 0x32, 0xE6, 0x24, 0x6C, 0x47],
                0x6F04_BF1A_5EA2_4060,
            ),
            (
                seed1,
                &[0xAB, 0x42, 0x7E, 0xA8, 0xD1, 0x0F, 0xC7],
                0xE118_47E4_F067_8C41,
            ),
            (seed2, b"", 0x10A9_D5D3_996F_D65D),
            (seed2, &[0xAF], 0x6820_1F91_960E_BF91),
            (seed2, &[0xE7, 0x0F], 0x64B5_8163_1F6A_B378),
            (seed2, &[0x37, 0xF4, 0x95], 0xE1F2_DFA6_E513_1408),
            (seed2, &[0x86, 0x42, 0xDC, 0x59], 0x3628_9D96_54FB_49F6),
            (
                seed2,
                &[0x15, 0x3F, 0xB7, 0x98, 0x26],
                0x0A06_114B_1346_4DBD,
            ),
            (
                seed2,
                &[0x09, 0x32, 0xE6, 0x24, 0x6C, 0x47],
                0xD6DD_5E40_AD1B_C2ED,
            ),
            (
                seed2,
                &[0xAB, 0x42, 0x7E, 0xA8, 0xD1, 0x0F, 0xC7],
                0xE203_987D_BA25_2FB3,
            ),
            (seed3, &[0x00], 0xA37F_B0DA_2ECA_E06C),
            (seed3, &[0xFF], 0xFECE_F370_701A_E054),
            (seed3, &[0x00, 0xFF], 0xA638_E757_0004_8880),
            (seed3, &[0xFF, 0x00], 0xBDFB_46D9_6973_0E2A),
            (seed3, &[0xFF, 0x00, 0xFF], 0x9D85_77C0_FE0D_30BF),
            (seed3, &[0x00, 0xFF, 0x00], 0x4F9F_BDDE_1509_9497),
        ];
        for (seed, data, expected) in cases {
            assert_eq!(marvin32_64(data, seed), expected, "{data:02x?}");
            assert_eq!(
                marvin32(data, seed),
                (expected as u32) ^ ((expected >> 32) as u32)
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_primary() {
        assert_eq!(
            recover(&[0; 100], &[]).unwrap_err(),
            RecoveryError::TooShort { len: 100 }
        );
        assert!(matches!(
            recover(&[0; 4096], &[]),
            Err(RecoveryError::NotAHive { .. })
        ));
        let mut log = vec![0u8; 4096];
        log[..4].copy_from_slice(b"regf");
        log[28] = 6;
        assert_eq!(
            recover(&log, &[]).unwrap_err(),
            RecoveryError::NotPrimary { file_type: 6 }
        );
    }

    #[test]
    fn sequence_order_wraps() {
        assert!(seq_after(1, 0));
        assert!(seq_after(0, u32::MAX));
        assert!(!seq_after(5, 5));
        assert!(!seq_after(u32::MAX, 0));
    }
}
