//! Old-format logs (Windows NT to 8, file type 1, or 2 up to Windows 2000): a `DIRT` dirty
//! vector at offset 512, one bit per 512-byte page of hive bins, then the dirty pages.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::{
    hex_preview, BaseBlockHeader, Candidate, LogUse, Outcome, BASE_BLOCK_SIZE, LOG_BASE_BLOCK_SIZE,
    SECTOR,
};

/// The start of an old-format log's dirty vector, at offset 512; the bitmap follows, one bit
/// per 512-byte page of hive bins.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DirtyVectorHeader {
    /// `DIRT`.
    signature: [u8; 4],
}

/// A hive bin header up to its timestamp, the field replay reads of the first bin (the
/// 4-byte spare field after it is left out: a file cut short may end right there).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HbinStart {
    /// `hbin`.
    signature: [u8; 4],
    _offset: U32,
    _size: U32,
    _reserved: [u8; 8],
    /// FILETIME; the first bin's is a backup of the base block's.
    timestamp: U64,
}

/// Old format: apply the one applicable log (the latest by its timestamp).
pub(super) fn replay_old(
    primary: &[u8],
    header: &BaseBlockHeader,
    logs: &[Candidate<'_>],
    uses: &mut [LogUse],
    growth_limit: u64,
) -> Option<Outcome> {
    // The time of the interrupted write, from the base block or, when that is damaged, from
    // its backup in the first hive bin.
    let reference = if header.checksum_ok() {
        Some(header.last_written.get())
    } else {
        primary
            .get(BASE_BLOCK_SIZE..)
            .and_then(|bins| HbinStart::ref_from_prefix(bins).ok())
            .filter(|(bin, _)| bin.signature == *b"hbin")
            .map(|(bin, _)| bin.timestamp.get())
    };
    let mut order: Vec<&Candidate<'_>> = logs.iter().collect();
    order.sort_by_key(|log| std::cmp::Reverse(log.header.last_written.get()));
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
            Some(reference) if log.header.last_written.get() < reference => {
                log_use.notes.push(format!(
                    "not applied: its last-written time ({}) is older than the primary's ({reference}), so it logs an earlier write",
                    log.header.last_written.get()
                ));
                continue;
            }
            None => {
                log_use.notes.push(
                    "not applied: the primary's base block is damaged and its first hive bin has no timestamp to match the log against".to_string(),
                );
                continue;
            }
            Some(reference) if log.header.last_written.get() > reference => {
                log_use.notes.push(format!(
                    "its last-written time ({}) is later than the primary's ({reference}); applied as yarp does (the specification expects them equal)",
                    log.header.last_written.get()
                ));
            }
            Some(_) => {}
        }
        match dirty_vector(log.bytes, log.header.hive_bins_size.get(), growth_limit) {
            Ok((pages, start)) => chosen = Some((log, pages, start)),
            Err(why) => log_use.notes.push(format!("not applied: {why}")),
        }
    }
    let (log, pages, start) = chosen?;
    let mut bytes = primary.to_vec();
    let mut notes = Vec::new();
    let base_block_from_log = !header.checksum_ok();
    if base_block_from_log {
        bytes[..BASE_BLOCK_SIZE].fill(0);
        bytes[..LOG_BASE_BLOCK_SIZE].copy_from_slice(&log.bytes[..LOG_BASE_BLOCK_SIZE]);
        notes.push(format!(
            "the primary's base block is damaged (checksum {:#010x}, computed {:#010x}); it was replaced by the copy in {}",
            header.checksum.get(), header.computed_checksum(), uses[log.index].name
        ));
    }
    let bins_size = log.header.hive_bins_size.get();
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
    let sequence = if header.checksum_ok() {
        header.primary_sequence.get()
    } else {
        log.header.primary_sequence.get()
    };
    Some(Outcome {
        bytes,
        sequence,
        bins_size,
        flags: Some(log.header.flags.get()),
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
    let bitmap_area = match DirtyVectorHeader::ref_from_prefix(vector) {
        Ok((header, rest)) if header.signature == *b"DIRT" => rest,
        _ => {
            return Err(format!(
                "no DIRT signature at offset 512 (found {})",
                hex_preview(vector)
            ))
        }
    };
    let bitmap_len = bins_size as usize / 4096; // one bit per 512 bytes
    let Some(bitmap) = bitmap_area.get(..bitmap_len) else {
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
    let start = (LOG_BASE_BLOCK_SIZE + size_of::<DirtyVectorHeader>() + bitmap_len)
        .next_multiple_of(SECTOR);
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
