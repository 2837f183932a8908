//! Deterministic writer for registry transaction logs, for tests only.
//!
//! Given a clean primary hive (as [`crate::regf`] writes it) and a newer version of the same hive,
//! [`NewLogWriter`] produces what Windows 8.1+ leaves behind when it crashes before writing
//! the primary: the dirty primary (the older bins, sequence numbers `s + 1` / `s`) and
//! new-format logs (`HvLE` entries carrying the changed 4 KiB pages, Marvin32-hashed).
//! [`OldLogWriter`] does the same with an old-format log (`DIRT` dirty vector, 512-byte
//! pages), as Windows Vista to 8 do. Each result says what a correct replay yields.
//!
//! Formats after Maxim Suhanov's regf specification ("Format of transaction log files"); the
//! Marvin32 here is written independently of the replay module so the two check each other.
//!
//! What it writes, new format:
//! - Log base block: the newer hive's first 512 bytes with file type 6, both sequence numbers
//!   set to the log's first entry, checksum recomputed. File padded with zeros to 4 KiB.
//! - Entries from offset 512: signature, size (a multiple of 512), flags 0, sequence number,
//!   hive bins size, page count, Hash-1 (Marvin32 of bytes 40..size), Hash-2 (Marvin32 of
//!   bytes 0..32), page references (bins offset, size: one per run of adjacent changed 4 KiB
//!   pages, as Windows writes them), the pages, zero padding.
//! - Entry `i`'s hive bins size is the older size grown to cover its pages and those before
//!   it; the last entry has the newer size.
//!
//! Options: several entries, a corrupt page (Hash-1 fails) or Hash-2, a sequence gap, entries split over LOG1 and
//! LOG2 (either file holding the earlier run), a stale entry after the run, and a stale log
//! older than the primary in the unused slot.

/// Marvin32 seed of log entry hashes.
pub const LOG_HASH_SEED: u64 = 0x82EF_4D88_7A4E_55C5;
pub use crate::regf::BASE_BLOCK_SIZE;
/// The unit in which Windows tracks and logs dirty hive data.
pub const PAGE_SIZE: usize = 4096;
const LOG_BASE_BLOCK_SIZE: usize = 512;
const SECTOR: usize = 512;
const ENTRY_HEADER_SIZE: usize = 40;

/// One of the two files of the dual-logging scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Log1,
    Log2,
}

impl Slot {
    fn other(self) -> Slot {
        match self {
            Slot::Log1 => Slot::Log2,
            Slot::Log2 => Slot::Log1,
        }
    }
}

/// One entry as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub slot: Slot,
    pub sequence: u32,
    pub hive_bins_size: u32,
    /// Bins-relative offsets of its pages.
    pub pages: Vec<usize>,
    /// Offset of the entry in its log file.
    pub offset: usize,
    /// Its bytes were changed after hashing ([`NewLogWriter::corrupt_hash`]).
    pub hash_corrupted: bool,
}

/// How [`NewLogWriter::corrupt`] damages an entry after its hashes were computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// One bit of the first page flipped, as a torn write leaves it: Hash-1 no longer matches.
    PageData,
    /// One bit of the stored Hash-2 flipped: the header hash no longer matches.
    Hash2,
}

/// A dirty hive with its logs, and what a correct replay gives.
#[derive(Clone, Debug)]
pub struct DirtyHive {
    /// The primary as the crash left it: the older hive bins, sequence numbers `s + 1` / `s`.
    pub primary: Vec<u8>,
    /// `SYSTEM.LOG1` (empty when unused).
    pub log1: Vec<u8>,
    /// `SYSTEM.LOG2` (empty when unused).
    pub log2: Vec<u8>,
    /// The hive bins data (from file offset 4096, hive bins size long) a correct replay yields.
    pub expected_bins: Vec<u8>,
    /// Both sequence numbers of the recovered hive.
    pub expected_sequence: u32,
    /// Entries a correct replay applies (old format: 1, the dirty vector).
    pub expected_entries: usize,
    /// Entries a correct replay applies from LOG1 and from LOG2.
    pub expected_entries_per_log: (usize, usize),
    pub entries: Vec<EntryInfo>,
}

impl DirtyHive {
    /// The logs as `(name, bytes)`, LOG1 first.
    pub fn logs(&self) -> [(&'static str, &[u8]); 2] {
        [("SYSTEM.LOG1", &self.log1), ("SYSTEM.LOG2", &self.log2)]
    }
}

/// Builds new-format (Windows 8.1+) logs taking a hive from `old` to `new`.
#[derive(Clone, Debug)]
pub struct NewLogWriter {
    old: Vec<u8>,
    new: Vec<u8>,
    entries: usize,
    first_sequence: Option<u32>,
    corrupt: Option<(usize, Corruption)>,
    gap_after: Option<usize>,
    split: Option<(usize, Slot)>,
    stale_entry: bool,
    stale_log: bool,
}

impl NewLogWriter {
    /// `old` and `new` are whole primary files of the same hive (clean, as [`crate::regf`] writes
    /// them); `old`'s sequence numbers are the ones the dirty primary starts from.
    pub fn new(old: &[u8], new: &[u8]) -> Self {
        assert!(old.len() > BASE_BLOCK_SIZE && new.len() > BASE_BLOCK_SIZE);
        assert!(
            !changed_pages(old, new).is_empty(),
            "the two hives have the same bins"
        );
        NewLogWriter {
            old: old.to_vec(),
            new: new.to_vec(),
            entries: 1,
            first_sequence: None,
            corrupt: None,
            gap_after: None,
            split: None,
            stale_entry: false,
            stale_log: false,
        }
    }

    /// Spreads the changed pages, in ascending order, over `count` entries (default 1).
    /// Panics later if there are fewer changed pages than entries.
    pub fn entries(&mut self, count: usize) -> &mut Self {
        assert!(count > 0);
        self.entries = count;
        self
    }

    /// Sequence number of the first entry (default: the older hive's secondary sequence
    /// number, which the dirty primary keeps).
    pub fn first_sequence(&mut self, sequence: u32) -> &mut Self {
        self.first_sequence = Some(sequence);
        self
    }

    /// Flips one bit of entry `index`'s first page after hashing, so its Hash-1 is wrong.
    pub fn corrupt_hash(&mut self, index: usize) -> &mut Self {
        self.corrupt(index, Corruption::PageData)
    }

    /// Damages entry `index` after hashing, as `how` says.
    pub fn corrupt(&mut self, index: usize, how: Corruption) -> &mut Self {
        self.corrupt = Some((index, how));
        self
    }

    /// Entries after `index` are numbered one higher, leaving a gap after it.
    pub fn sequence_gap_after(&mut self, index: usize) -> &mut Self {
        self.gap_after = Some(index);
        self
    }

    /// Entries before `at` go to `earlier`, the others to the other file: Windows swaps log
    /// files, and LOG1 need not hold the earlier entries.
    pub fn split(&mut self, at: usize, earlier: Slot) -> &mut Self {
        self.split = Some((at, earlier));
        self
    }

    /// After the last entry of each log, an older entry (a lower sequence number, valid
    /// hashes, a page of 0xEE bytes) left from an earlier use of the file.
    pub fn stale_entry_after_run(&mut self) -> &mut Self {
        self.stale_entry = true;
        self
    }

    /// Without [`NewLogWriter::split`]: the unused file holds a log whose base sequence is
    /// older than the primary (its page of 0xEE bytes must never be applied).
    pub fn stale_other_log(&mut self) -> &mut Self {
        self.stale_log = true;
        self
    }

    pub fn build(&self) -> DirtyHive {
        let (old_seq1, old_seq2) = (u32_at(&self.old, 4), u32_at(&self.old, 8));
        assert_eq!(old_seq1, old_seq2, "the older hive must be clean");
        let first = self.first_sequence.unwrap_or(old_seq2);
        let old_bins = u32_at(&self.old, 40) as usize;
        let new_bins = u32_at(&self.new, 40) as usize;
        let pages = changed_pages(&self.old, &self.new);
        assert!(
            self.entries <= pages.len(),
            "{} entries but only {} changed pages",
            self.entries,
            pages.len()
        );

        // Pages per entry: contiguous chunks, earlier chunks one larger when uneven.
        let mut groups: Vec<Vec<usize>> = Vec::with_capacity(self.entries);
        let (base, extra) = (pages.len() / self.entries, pages.len() % self.entries);
        let mut rest = pages.as_slice();
        for i in 0..self.entries {
            let (group, tail) = rest.split_at(base + usize::from(i < extra));
            groups.push(group.to_vec());
            rest = tail;
        }

        let mut infos = Vec::with_capacity(groups.len());
        let mut high = old_bins;
        for (i, group) in groups.iter().enumerate() {
            let page_end = group.iter().map(|p| p + PAGE_SIZE).max().unwrap_or(0);
            high = high.max(page_end);
            let bins = if i + 1 == groups.len() {
                new_bins
            } else {
                high
            };
            let gap = self.gap_after.is_some_and(|g| i > g);
            let slot = match self.split {
                Some((at, earlier)) if i >= at => earlier.other(),
                Some((_, earlier)) => earlier,
                None => Slot::Log1,
            };
            infos.push(EntryInfo {
                slot,
                sequence: first + u32::try_from(i).unwrap() + u32::from(gap),
                hive_bins_size: u32::try_from(bins).unwrap(),
                pages: group.clone(),
                offset: 0,
                hash_corrupted: self.corrupt.is_some_and(|(index, _)| index == i),
            });
        }

        let mut log1 = Vec::new();
        let mut log2 = Vec::new();
        for slot in [Slot::Log1, Slot::Log2] {
            let entries: Vec<&mut EntryInfo> =
                infos.iter_mut().filter(|e| e.slot == slot).collect();
            let Some(base_sequence) = entries.first().map(|e| e.sequence) else {
                continue;
            };
            let mut log = log_base_block(&self.new, 6, base_sequence);
            for entry in entries {
                entry.offset = log.len();
                // Like Windows, one reference per run of adjacent 4 KiB pages.
                let mut runs: Vec<(usize, usize)> = Vec::new();
                for &p in &entry.pages {
                    match runs.last_mut() {
                        Some((start, len)) if *start + *len == p => *len += PAGE_SIZE,
                        _ => runs.push((p, PAGE_SIZE)),
                    }
                }
                let pages: Vec<(usize, &[u8])> = runs
                    .iter()
                    .map(|&(p, len)| (p, &self.new[BASE_BLOCK_SIZE + p..BASE_BLOCK_SIZE + p + len]))
                    .collect();
                let mut bytes = log_entry(entry.sequence, entry.hive_bins_size, &pages);
                match self.corrupt {
                    Some((_, Corruption::PageData)) if entry.hash_corrupted => {
                        bytes[ENTRY_HEADER_SIZE + 8 * entry.pages.len()] ^= 0x01;
                    }
                    Some((_, Corruption::Hash2)) if entry.hash_corrupted => bytes[32] ^= 0x01,
                    _ => {}
                }
                log.extend_from_slice(&bytes);
            }
            if self.stale_entry {
                let garbage = vec![0xEE; PAGE_SIZE];
                let stale = log_entry(
                    base_sequence.wrapping_sub(5),
                    u32::try_from(old_bins).unwrap(),
                    &[(0, &garbage)],
                );
                log.extend_from_slice(&stale);
            }
            log.resize(log.len().next_multiple_of(PAGE_SIZE), 0);
            match slot {
                Slot::Log1 => log1 = log,
                Slot::Log2 => log2 = log,
            }
        }
        if self.stale_log {
            assert!(self.split.is_none(), "a stale log needs the unused slot");
            let garbage = vec![0xEE; PAGE_SIZE];
            let sequence = old_seq2.wrapping_sub(4);
            let mut log = log_base_block(&self.old, 6, sequence);
            log.extend_from_slice(&log_entry(
                sequence,
                u32::try_from(old_bins).unwrap(),
                &[(0, &garbage)],
            ));
            log.resize(log.len().next_multiple_of(PAGE_SIZE), 0);
            log2 = log;
        }

        // Replay by the rules: consecutive entries from the first, across the split only when
        // the first run ends exactly there.
        let mut applied = 0;
        for (i, entry) in infos.iter().enumerate() {
            if entry.hash_corrupted || entry.sequence != first + u32::try_from(i).unwrap() {
                break;
            }
            applied += 1;
        }
        let mut bins = self.old[BASE_BLOCK_SIZE..BASE_BLOCK_SIZE + old_bins].to_vec();
        for entry in &infos[..applied] {
            bins.resize(entry.hive_bins_size as usize, 0);
            for &p in &entry.pages {
                bins[p..p + PAGE_SIZE].copy_from_slice(
                    &self.new[BASE_BLOCK_SIZE + p..BASE_BLOCK_SIZE + p + PAGE_SIZE],
                );
            }
        }
        let per_log = |slot| infos[..applied].iter().filter(|e| e.slot == slot).count();
        DirtyHive {
            primary: dirty_primary(&self.old, old_seq2, None),
            log1,
            log2,
            expected_bins: bins,
            expected_sequence: if applied == 0 {
                old_seq2 + 1
            } else {
                infos[applied - 1].sequence
            },
            expected_entries: applied,
            expected_entries_per_log: (per_log(Slot::Log1), per_log(Slot::Log2)),
            entries: infos,
        }
    }
}

/// Builds an old-format (Windows Vista to 8) log taking a hive from `old` to `new`.
#[derive(Clone, Debug)]
pub struct OldLogWriter {
    old: Vec<u8>,
    new: Vec<u8>,
    drop_pages: usize,
    file_type: u32,
}

impl OldLogWriter {
    pub fn new(old: &[u8], new: &[u8]) -> Self {
        assert!(old.len() > BASE_BLOCK_SIZE && new.len() > BASE_BLOCK_SIZE);
        OldLogWriter {
            old: old.to_vec(),
            new: new.to_vec(),
            drop_pages: 0,
            file_type: 1,
        }
    }

    /// Cuts the last `count` 512-byte pages off the log, as a crash while writing it would.
    pub fn truncate_pages(&mut self, count: usize) -> &mut Self {
        self.drop_pages = count;
        self
    }

    /// Base block file type (default 1; Windows 2000 and older wrote 2).
    pub fn file_type(&mut self, file_type: u32) -> &mut Self {
        self.file_type = file_type;
        self
    }

    pub fn build(&self) -> DirtyHive {
        let seq = u32_at(&self.old, 8);
        let next = seq.wrapping_add(1);
        let new_bins = u32_at(&self.new, 40) as usize;
        let timestamp = u64_at(&self.new, 12);
        let pages = changed_pages(&self.old, &self.new);

        // Vista and later write both sequence numbers of the log's base block at once.
        let mut log = log_base_block(&self.new, self.file_type, next);
        log.extend_from_slice(b"DIRT");
        let mut bitmap = vec![0u8; new_bins / PAGE_SIZE];
        for &p in &pages {
            // 8 sectors of 512 bytes per 4 KiB page: one whole byte of the bitmap.
            bitmap[p / PAGE_SIZE] = 0xFF;
        }
        log.extend_from_slice(&bitmap);
        log.resize(log.len().next_multiple_of(SECTOR), 0);
        for &p in &pages {
            log.extend_from_slice(&self.new[BASE_BLOCK_SIZE + p..BASE_BLOCK_SIZE + p + PAGE_SIZE]);
        }
        log.truncate(log.len() - (self.drop_pages * SECTOR).min(pages.len() * PAGE_SIZE));

        let applies = self.drop_pages == 0;
        let expected_bins = if applies {
            self.new[BASE_BLOCK_SIZE..BASE_BLOCK_SIZE + new_bins].to_vec()
        } else {
            let old_bins = u32_at(&self.old, 40) as usize;
            self.old[BASE_BLOCK_SIZE..BASE_BLOCK_SIZE + old_bins].to_vec()
        };
        DirtyHive {
            primary: dirty_primary(&self.old, seq, Some(timestamp)),
            log1: log,
            log2: Vec::new(),
            expected_bins,
            expected_sequence: next,
            expected_entries: usize::from(applies),
            expected_entries_per_log: (usize::from(applies), 0),
            entries: Vec::new(),
        }
    }
}

/// Bins-relative offsets of the 4 KiB pages of `new`'s hive bins that differ from `old`'s
/// (pages past the end of `old`'s bins always count).
pub fn changed_pages(old: &[u8], new: &[u8]) -> Vec<usize> {
    let old_bins = &old[BASE_BLOCK_SIZE..BASE_BLOCK_SIZE + u32_at(old, 40) as usize];
    let new_bins = &new[BASE_BLOCK_SIZE..BASE_BLOCK_SIZE + u32_at(new, 40) as usize];
    new_bins
        .chunks(PAGE_SIZE)
        .enumerate()
        .filter(|&(i, page)| old_bins.get(i * PAGE_SIZE..(i + 1) * PAGE_SIZE) != Some(page))
        .map(|(i, _)| i * PAGE_SIZE)
        .collect()
}

/// The older hive as a crash during its next write leaves it: the write's first sequence
/// number announced (`seq + 1`), the second still `seq`.
fn dirty_primary(old: &[u8], seq: u32, timestamp: Option<u64>) -> Vec<u8> {
    let mut primary = old.to_vec();
    put_u32(&mut primary, 4, seq.wrapping_add(1));
    put_u32(&mut primary, 8, seq);
    if let Some(timestamp) = timestamp {
        primary[12..20].copy_from_slice(&timestamp.to_le_bytes());
    }
    fix_checksum(&mut primary);
    primary
}

/// A log's first sector: `hive`'s base block with the log's file type and sequence number.
fn log_base_block(hive: &[u8], file_type: u32, sequence: u32) -> Vec<u8> {
    let mut block = hive[..LOG_BASE_BLOCK_SIZE].to_vec();
    put_u32(&mut block, 4, sequence);
    put_u32(&mut block, 8, sequence);
    put_u32(&mut block, 28, file_type);
    fix_checksum(&mut block);
    block
}

/// One `HvLE` entry with valid hashes, padded to a multiple of 512 bytes.
pub fn log_entry(sequence: u32, hive_bins_size: u32, pages: &[(usize, &[u8])]) -> Vec<u8> {
    let mut entry = vec![0u8; ENTRY_HEADER_SIZE];
    entry[..4].copy_from_slice(b"HvLE");
    put_u32(&mut entry, 12, sequence);
    put_u32(&mut entry, 16, hive_bins_size);
    put_u32(&mut entry, 20, u32::try_from(pages.len()).unwrap());
    for (offset, data) in pages {
        entry.extend_from_slice(&u32::try_from(*offset).unwrap().to_le_bytes());
        entry.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    }
    for (_, data) in pages {
        entry.extend_from_slice(data);
    }
    entry.resize(entry.len().next_multiple_of(SECTOR), 0);
    let size = u32::try_from(entry.len()).unwrap();
    put_u32(&mut entry, 4, size);
    let hash1 = marvin32_64(&entry[ENTRY_HEADER_SIZE..], LOG_HASH_SEED);
    entry[24..32].copy_from_slice(&hash1.to_le_bytes());
    let hash2 = marvin32_64(&entry[..32], LOG_HASH_SEED);
    entry[32..40].copy_from_slice(&hash2.to_le_bytes());
    entry
}

/// Marvin32's 64-bit result (`p1 << 32 | p0`), as log entries store it.
pub fn marvin32_64(data: &[u8], seed: u64) -> u64 {
    let mut s0 = (seed & 0xFFFF_FFFF) as u32;
    let mut s1 = (seed >> 32) as u32;
    fn round(value: u32, s0: &mut u32, s1: &mut u32) {
        *s0 = s0.wrapping_add(value);
        *s1 ^= *s0;
        *s0 = s0.rotate_left(20).wrapping_add(*s1);
        *s1 = s1.rotate_left(9) ^ *s0;
        *s0 = s0.rotate_left(27).wrapping_add(*s1);
        *s1 = s1.rotate_left(19);
    }
    let full = data.len() / 4 * 4;
    for chunk in data[..full].chunks(4) {
        round(
            u32::from_le_bytes(chunk.try_into().unwrap()),
            &mut s0,
            &mut s1,
        );
    }
    let tail = &data[full..];
    let last = match tail.len() {
        0 => 0x80,
        1 => 0x8000 | u32::from(tail[0]),
        2 => 0x80_0000 | u32::from(u16::from_le_bytes([tail[0], tail[1]])),
        _ => {
            0x8000_0000
                | (u32::from(tail[2]) << 16)
                | u32::from(u16::from_le_bytes([tail[0], tail[1]]))
        }
    };
    round(last, &mut s0, &mut s1);
    round(0, &mut s0, &mut s1);
    (u64::from(s1) << 32) | u64::from(s0)
}

/// Recomputes the XOR-32 base block checksum at offset 508.
pub fn fix_checksum(block: &mut [u8]) {
    let mut sum = block[..508].chunks(4).fold(0u32, |acc, d| {
        acc ^ u32::from_le_bytes(d.try_into().unwrap())
    });
    if sum == 0 {
        sum = 1;
    } else if sum == u32::MAX {
        sum = u32::MAX - 1;
    }
    put_u32(block, 508, sum);
}

pub fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

fn put_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}
