//! New-format logs (Windows 8.1 and later, file type 6): `HvLE` log entries from offset 512,
//! each a run of dirty pages with two Marvin32 hashes, replayed in sequence-number order.

use std::mem::offset_of;

use thiserror::Error;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::{
    marvin32_64, seq_after, valid_bins_size, BaseBlockHeader, Candidate, LogUse, Outcome,
    BASE_BLOCK_SIZE, LOG_BASE_BLOCK_SIZE, LOG_HASH_SEED, SECTOR,
};

/// The header of an `HvLE` log entry; its page references and then its pages follow.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct EntryHeader {
    /// `HvLE`.
    signature: [u8; 4],
    /// The whole entry, header included: a multiple of 512.
    size: U32,
    /// The base block flags at the time of the write.
    flags: U32,
    sequence: U32,
    /// The hive bins size after the write.
    hive_bins_size: U32,
    dirty_page_count: U32,
    /// Marvin32 of everything after the header.
    hash1: U64,
    /// Marvin32 of the header up to this field.
    hash2: U64,
}

/// Where one run of dirty pages goes in the hive bins; its bytes follow the references.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct PageReference {
    offset: U32,
    size: U32,
}

const ENTRY_HEADER_SIZE: usize = size_of::<EntryHeader>();
const _: () = assert!(ENTRY_HEADER_SIZE == 40 && size_of::<PageReference>() == 8);
/// Base block flag restored from log entries: KTM locked the hive (pending transactions).
const FLAG_KTM_LOCKED: u32 = 0x1;

/// New format: replay the logs in order of their base sequence numbers, chaining each log's
/// run of consecutive entries onto the previous one.
pub(super) fn replay_new(
    primary: &[u8],
    header: &BaseBlockHeader,
    logs: &[Candidate<'_>],
    uses: &mut [LogUse],
    growth_limit: u64,
) -> Option<Outcome> {
    let mut notes = Vec::new();
    let (mut bytes, mut bins_size, order, base_block_from_log) = if header.checksum_ok() {
        // Logs whose base sequence is older than the primary's last complete write hold only
        // what the primary already has.
        let mut eligible = Vec::new();
        for log in logs {
            if seq_after(
                header.secondary_sequence.get(),
                log.header.primary_sequence.get(),
            ) {
                let log_use = &mut uses[log.index];
                log_use.entries_skipped = count_entries(log.bytes, LOG_BASE_BLOCK_SIZE);
                log_use.notes.push(format!(
                    "not applied: its entries start at sequence {}, older than the primary's last complete write (secondary sequence {}), so the primary already holds them",
                    log.header.primary_sequence.get(), header.secondary_sequence.get()
                ));
            } else {
                eligible.push(log);
            }
        }
        // Earliest entries first.
        eligible.sort_by_key(|log| {
            log.header
                .primary_sequence
                .get()
                .wrapping_sub(header.secondary_sequence.get())
        });
        (
            primary.to_vec(),
            header.hive_bins_size.get(),
            eligible,
            false,
        )
    } else {
        // Windows replays only the log with the latest entries when the primary's base block
        // is damaged, and takes the base block from it.
        let newest = logs.iter().reduce(|best, log| {
            if seq_after(
                log.header.primary_sequence.get(),
                best.header.primary_sequence.get(),
            ) {
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
            header.checksum.get(), header.computed_checksum(), uses[newest.index].name
        ));
        (
            bytes,
            newest.header.hive_bins_size.get(),
            vec![newest],
            true,
        )
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
            if log.header.primary_sequence.get() != next {
                log_use.entries_skipped = count_entries(log.bytes, LOG_BASE_BLOCK_SIZE);
                log_use.notes.push(format!(
                    "not applied: its entries start at sequence {}, but replay needs {} next (the last entry applied was {}); Windows stops at the first gap",
                    log.header.primary_sequence.get(), next, last
                ));
                continue;
            }
        }
        let mut pos = LOG_BASE_BLOCK_SIZE;
        let mut expected = log.header.primary_sequence.get();
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
                log.header.primary_sequence.get()
            ),
            _ => format!(
                "no entry applied (the first was expected to have sequence {})",
                log.header.primary_sequence.get()
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
        let base = BaseBlockHeader::parse(&bytes).map_or(0, |header| header.flags.get());
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
    Damaged { sequence: u32, why: EntryDamage },
}

/// What is wrong with an `HvLE` entry.
#[derive(Debug, Error)]
enum EntryDamage {
    #[error("size {size} is not a positive multiple of 512")]
    Size { size: usize },
    #[error("size {size} runs past the end of the file ({left} bytes left)")]
    PastEnd { size: usize, left: usize },
    #[error("hive bins size {bins_size} is not a positive multiple of 4,096")]
    BinsSize { bins_size: u32 },
    #[error(
        "hive bins size {bins_size} is more than the primary and the logs together could fill"
    )]
    BinsPastInputs { bins_size: u32 },
    #[error("Hash-2 (over the entry header) does not match")]
    Hash2,
    #[error("Hash-1 (over the page references and pages) does not match")]
    Hash1,
    #[error("it has no dirty pages")]
    NoPages,
    #[error("{count} page references do not fit in {size} bytes")]
    References { count: usize, size: usize },
    #[error(
        "a page at {target:#x} of {len} bytes lies outside its {bins_size} bytes of hive bins"
    )]
    PageOutside {
        target: u32,
        len: u32,
        bins_size: u32,
    },
    #[error("its pages need more than its {size} bytes")]
    Pages { size: usize },
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
            Stop::Damaged { sequence, why } => {
                format!("stopped at offset {pos}: entry {sequence}: {why}")
            }
        }
    }

    /// For a stop that is not the normal end of a log: what happened, for the overall notes.
    fn abnormal(&self, pos: usize) -> Option<String> {
        match self {
            Stop::Damaged { sequence, why } => Some(format!(
                "stopped at a damaged entry (offset {pos}: entry {sequence}: {why})"
            )),
            Stop::Sequence { found, expected } if seq_after(*found, *expected) => Some(format!(
                "stopped at a sequence gap (offset {pos}: sequence {found} where {expected} was expected)"
            )),
            _ => None,
        }
    }
}

/// Reads and checks the log entry at `pos`.
fn parse_entry(log: &[u8], pos: usize, growth_limit: u64) -> Result<Entry, Stop> {
    let Some((head, _)) = log
        .get(pos..)
        .and_then(|rest| EntryHeader::ref_from_prefix(rest).ok())
    else {
        return Err(if pos >= log.len() {
            Stop::EndOfFile
        } else {
            Stop::NoEntry
        });
    };
    if head.signature != *b"HvLE" {
        return Err(Stop::NoEntry);
    }
    let size = head.size.get() as usize;
    let flags = head.flags.get();
    let sequence = head.sequence.get();
    let bins_size = head.hive_bins_size.get();
    let count = head.dirty_page_count.get() as usize;
    let damaged = |why| Err(Stop::Damaged { sequence, why });
    if size < SECTOR || size % SECTOR != 0 {
        return damaged(EntryDamage::Size { size });
    }
    let Some(entry) = log.get(pos..).and_then(|rest| rest.get(..size)) else {
        return damaged(EntryDamage::PastEnd {
            size,
            left: log.len() - pos,
        });
    };
    if !valid_bins_size(bins_size) {
        return damaged(EntryDamage::BinsSize { bins_size });
    }
    if BASE_BLOCK_SIZE as u64 + u64::from(bins_size) > growth_limit {
        return damaged(EntryDamage::BinsPastInputs { bins_size });
    }
    if marvin32_64(&entry[..offset_of!(EntryHeader, hash2)], LOG_HASH_SEED) != head.hash2.get() {
        return damaged(EntryDamage::Hash2);
    }
    if marvin32_64(&entry[ENTRY_HEADER_SIZE..], LOG_HASH_SEED) != head.hash1.get() {
        return damaged(EntryDamage::Hash1);
    }
    if count == 0 {
        return damaged(EntryDamage::NoPages);
    }
    let Ok((references, _)) =
        <[PageReference]>::ref_from_prefix_with_elems(&entry[ENTRY_HEADER_SIZE..], count)
    else {
        return damaged(EntryDamage::References { count, size });
    };
    let mut pages = Vec::with_capacity(count);
    let mut data = ENTRY_HEADER_SIZE + size_of_val(references);
    for reference in references {
        let target = reference.offset.get();
        let len = reference.size.get();
        if u64::from(target) + u64::from(len) > u64::from(bins_size) {
            return damaged(EntryDamage::PageOutside {
                target,
                len,
                bins_size,
            });
        }
        let len = len as usize;
        if data.checked_add(len).is_none_or(|end| end > size) {
            return damaged(EntryDamage::Pages { size });
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
pub(super) fn count_entries(log: &[u8], mut pos: usize) -> usize {
    let mut count = 0;
    while let Some((head, _)) = log
        .get(pos..)
        .and_then(|rest| EntryHeader::ref_from_prefix(rest).ok())
    {
        if head.signature != *b"HvLE" {
            break;
        }
        count += 1;
        let size = head.size.get() as usize;
        if size < SECTOR || size % SECTOR != 0 {
            break;
        }
        pos = pos.saturating_add(size);
    }
    count
}
