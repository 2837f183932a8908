//! The Expert Witness Compression Format, EWF version 1: EnCase `.E01` images, their
//! SMART/`ewf` `.s01` cousins, and their later segments (`.E02` … `.E99`, `.EAA` … `.ZZZ`).
//!
//! A segment file is a signature and a chain of sections, each behind a 76-byte descriptor
//! with its own Adler-32. The disk is cut into chunks (typically 64 sectors of 512 bytes),
//! stored zlib-compressed or raw with a trailing Adler-32, and found through `table` sections
//! of 32-bit entries (the top bit flags a compressed chunk; the rest is an offset from the
//! table's base). On open, every segment's chain is walked once to note where its tables are
//! (no table entries and no chunk is read then); entries and chunks are read on demand
//! through small bounded caches. Every chunk is checked against its checksum before a byte of
//! it is returned: a damaged chunk is an error naming it, never silently wrong bytes.
//!
//! EWF version 2 (`.Ex01`, `.Lx01`) and the logical evidence files (`.L01`) are recognised
//! and refused as unsupported.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cache::Lru;
use super::{le16, le32, le64, ContainerError, ContainerInfo, Opened};
use crate::evidence::image::{within, ImageFile, ReadAt};

const FORMAT: &str = "ewf";

/// EWF version 1 physical evidence (`.E01`, `.s01`).
const SIGNATURE: &[u8; 8] = b"EVF\x09\x0d\x0a\xff\x00";
/// EWF version 1 logical evidence (`.L01`): files, not a disk.
const LOGICAL_SIGNATURE: &[u8; 8] = b"LVF\x09\x0d\x0a\xff\x00";
/// EWF version 2 physical (`.Ex01`) and logical (`.Lx01`) evidence.
const EWF2_SIGNATURE: &[u8; 8] = b"EVF2\x0d\x0a\x81\x00";
const EWF2_LOGICAL_SIGNATURE: &[u8; 8] = b"LEF2\x0d\x0a\x81\x00";

/// Signature, fields start (1 byte), segment number (u16), fields end (u16).
const FILE_HEADER_LEN: u64 = 13;
const DESCRIPTOR_LEN: u64 = 76;
/// The `volume` layout of EnCase and later writers, and the shorter one of SMART (`.s01`).
const VOLUME_E01_LEN: usize = 1052;
const VOLUME_S01_LEN: usize = 94;
const TABLE_HEADER_LEN: u64 = 24;

/// A chunk larger than this is refused (writers use at most 32768 sectors of 512 bytes).
const MAX_CHUNK_SIZE: u64 = 64 << 20;
/// Entries of one table, at most (writers use a few thousand to 65534).
const MAX_TABLE_ENTRIES: u64 = 1 << 20;
/// A compressed header section, and the text it inflates to, at most.
const MAX_HEADER_STORED: u64 = 1 << 20;
const MAX_HEADER_TEXT: u64 = 4 << 20;
/// Acquisition error ranges read from an `error2` section, and shown, at most.
const MAX_ERROR_RANGES: u64 = 1 << 16;
const SHOWN_ERROR_RANGES: usize = 32;
/// Sections of one segment, at most (writers put a few dozen in one).
const MAX_SECTIONS: u32 = 1 << 20;
/// The name scheme runs out after `ZZZ`: E01..E99 then EAA..ZZZ is below this.
const MAX_SEGMENTS: u32 = 15_000;

/// Byte budgets of the caches of inflated chunks and of table entries, and the number of
/// segment files kept open (a large acquisition has hundreds of segments).
const CHUNK_CACHE_BYTES: u64 = 8 << 20;
const TABLE_CACHE_BYTES: u64 = 4 << 20;
const OPEN_SEGMENTS: usize = 16;

/// Opens `file` as an EWF image; `None` when its signature is not there. Further segments
/// are looked for next to `path`, with the same stem and the next extension.
pub fn open(path: &Path, file: &Arc<dyn ReadAt>) -> Result<Option<Opened>, ContainerError> {
    let mut signature = [0u8; 8];
    if file.len() < signature.len() as u64 {
        return Ok(None);
    }
    file.read_exact_at(&mut signature, 0)
        .map_err(io_error("signature", 0))?;
    match &signature {
        SIGNATURE => {}
        EWF2_SIGNATURE | EWF2_LOGICAL_SIGNATURE => {
            return Err(unsupported(
                "EWF version 2 (Ex01/Lx01) is not implemented; export it to E01 or raw \
                 (ewfexport) to read it",
            ))
        }
        LOGICAL_SIGNATURE => {
            return Err(unsupported(
                "this is a logical evidence file (L01): it holds files, not a disk image",
            ))
        }
        _ => return Ok(None),
    }
    let (disk, info) = EwfDisk::open(path, file)?;
    Ok(Some(Opened {
        disk: Arc::new(disk),
        info,
    }))
}

/// One segment file of the set.
struct Segment {
    path: PathBuf,
    len: u64,
}

/// Where one `table` section's entries are, and the chunks they stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Table {
    /// The number of the first chunk this table holds, counted over all segments.
    first_chunk: u64,
    entries: u32,
    segment: usize,
    /// The entries' first byte, and whether an Adler-32 of them follows.
    entries_at: u64,
    footer: bool,
    /// The same entries in the `table2` copy, where that copy's header agrees.
    backup: Option<u64>,
    /// What the entries' offsets are counted from (0 in writers before EnCase 6).
    base: u64,
    /// The bytes chunks may lie in: the `sectors` section before the table, or (SMART) the
    /// rest of the table section itself.
    data_start: u64,
    data_end: u64,
}

/// The geometry of the disk, from the `volume` (or `disk`) section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Volume {
    chunk_count: u32,
    sectors_per_chunk: u32,
    bytes_per_sector: u32,
    sector_count: u64,
    /// The longer layout of EnCase and later writers (the shorter one is SMART's).
    e01: bool,
    guid: [u8; 16],
    /// Media type and flags (E01 layout only).
    media: Option<(u8, u8)>,
}

/// What the walk of the section chains gathers.
#[derive(Default)]
struct Scan {
    volume: Option<Volume>,
    header2: Option<Vec<(String, String)>>,
    header: Option<Vec<(String, String)>>,
    tables: Vec<Table>,
    chunks: u64,
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    /// Acquisition read errors: first sector and number of sectors, and how many there are.
    errors: Vec<(u32, u32)>,
    error_count: u64,
}

/// How a segment's chain ends.
#[derive(Debug, PartialEq, Eq)]
enum SegmentEnd {
    /// The image goes on in the next segment file.
    Next,
    /// This is the last segment.
    Done,
}

/// One section descriptor.
#[derive(Debug)]
struct Section {
    kind: Vec<u8>,
    offset: u64,
    next: u64,
    size: u64,
}

impl Section {
    fn name(&self) -> String {
        String::from_utf8_lossy(&self.kind).into_owned()
    }

    /// The section's bytes after its descriptor, checked to lie in the file.
    fn body(&self, file_len: u64) -> Result<(u64, u64), ContainerError> {
        let start = self.offset + DESCRIPTOR_LEN;
        let end = self.offset.checked_add(self.size);
        match end {
            Some(end) if self.size >= DESCRIPTOR_LEN && end <= file_len => Ok((start, end)),
            _ => Err(damaged(
                format!("{} section", self.name()),
                self.offset,
                format!(
                    "its size {} does not fit in the file ({file_len} bytes; truncated?)",
                    self.size
                ),
            )),
        }
    }
}

/// The virtual disk of an EWF image.
pub struct EwfDisk {
    segments: Vec<Segment>,
    /// The first segment, as the caller opened it; the others are opened on demand.
    first: Arc<dyn ReadAt>,
    open_segments: Lru<u64, Arc<dyn ReadAt>>,
    tables: Vec<Table>,
    chunk_size: u64,
    size: u64,
    chunks: Lru<u64, Arc<[u8]>>,
    entries: Lru<u64, Arc<[u32]>>,
}

impl EwfDisk {
    fn open(
        path: &Path,
        file: &Arc<dyn ReadAt>,
    ) -> Result<(EwfDisk, ContainerInfo), ContainerError> {
        let mut scan = Scan::default();
        let mut segments = Vec::new();
        let open_segments = Lru::new(OPEN_SEGMENTS);
        let mut current = Arc::clone(file);
        let mut current_path = path.to_path_buf();
        loop {
            let number = segments.len() as u32 + 1;
            let end = scan.walk_segment(&*current, segments.len())?;
            segments.push(Segment {
                path: current_path.clone(),
                len: current.len(),
            });
            if number > 1 {
                open_segments.insert(u64::from(number - 1), Arc::clone(&current));
            }
            if end == SegmentEnd::Done {
                break;
            }
            if number >= MAX_SEGMENTS {
                return Err(damaged("segment chain", 0, "too many segment files"));
            }
            current_path = next_segment_path(path, number + 1)?;
            current = Arc::new(ImageFile::open(&current_path).map_err(|source| {
                let what = format!("segment {} ({})", number + 1, current_path.display());
                super::read_failed(FORMAT, what, 0, source)
            })?);
        }
        let volume = scan
            .volume
            .ok_or_else(|| damaged("volume section", 0, "the image has no volume section"))?;
        let (chunk_size, size) = geometry(&volume, scan.chunks)?;
        let info = ContainerInfo {
            format: if volume.e01 { "ewf (E01)" } else { "ewf (S01)" }.to_string(),
            virtual_size: size,
            files: segments
                .iter()
                .map(|s| s.path.display().to_string())
                .collect(),
            metadata: scan.metadata(&volume),
            stored_hashes: scan.stored_hashes(),
        };
        // As many chunks, and tables of entries, as the budgets hold: none when one alone
        // is over its budget.
        let largest_table = scan.tables.iter().map(|t| u64::from(t.entries) * 4).max();
        let entries = Lru::with_budget(
            TABLE_CACHE_BYTES,
            largest_table.unwrap_or(0),
            0,
            scan.tables.len(),
        );
        let disk = EwfDisk {
            segments,
            first: Arc::clone(file),
            open_segments,
            tables: scan.tables,
            chunk_size,
            size,
            chunks: Lru::with_budget(CHUNK_CACHE_BYTES, chunk_size, 0, usize::MAX),
            entries,
        };
        Ok((disk, info))
    }

    /// The bytes of chunk `number` (the last one may be short), checked.
    fn chunk(&self, number: u64) -> io::Result<Arc<[u8]>> {
        self.chunks.get_or_load(number, || {
            let data = self.load_chunk(number).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("ewf chunk {number} cannot be read: {why}"),
                )
            })?;
            Ok(data.into())
        })
    }

    fn load_chunk(&self, number: u64) -> Result<Vec<u8>, String> {
        let index = self
            .tables
            .partition_point(|t| t.first_chunk <= number)
            .checked_sub(1)
            .ok_or("no table holds it")?;
        let table = &self.tables[index];
        let entries = self.table_entries(index)?;
        let slot = usize::try_from(number - table.first_chunk).map_err(|_| "no table holds it")?;
        let &entry = entries.get(slot).ok_or("no table holds it")?;
        let (compressed, start) = entry_offset(entry, table.base)?;
        let end = match entries.get(slot + 1) {
            Some(&next) => entry_offset(next, table.base)?.1,
            None => table.data_end,
        };
        // Chunks are stored in order: an entry not between its neighbours points at another
        // chunk's bytes (which would pass their own checksum).
        let after_previous = match slot.checked_sub(1).and_then(|p| entries.get(p)) {
            Some(&previous) => entry_offset(previous, table.base)?.1 < start,
            None => true,
        };
        let segment = &self.segments[table.segment];
        if start < table.data_start || end > table.data_end || end <= start || !after_previous {
            return Err(format!(
                "its table entry gives bytes {start}..{end} of {}, out of order or outside \
                 the chunk data (bytes {}..{}): the table is damaged",
                segment.path.display(),
                table.data_start,
                table.data_end
            ));
        }
        let expected = (self.size - number * self.chunk_size).min(self.chunk_size);
        let file = self.segment_file(table.segment)?;
        let place = || format!("{} at byte {start}", segment.path.display());
        if compressed {
            let stored = (end - start).min(self.chunk_size * 2 + 4096);
            let raw = read_vec(&*file, start, stored).map_err(|e| format!("{}: {e}", place()))?;
            inflate_chunk(&raw, expected, self.chunk_size).map_err(|e| format!("{}: {e}", place()))
        } else {
            // A last chunk may be stored padded to the full chunk size.
            let stored_len = if end - start >= self.chunk_size + 4 {
                self.chunk_size
            } else {
                expected
            };
            if end - start < stored_len + 4 {
                return Err(format!(
                    "{}: {} bytes stored where {} bytes and a checksum are needed",
                    place(),
                    end - start,
                    stored_len
                ));
            }
            let raw =
                read_vec(&*file, start, stored_len + 4).map_err(|e| format!("{}: {e}", place()))?;
            let (data, sum) = raw.split_at(raw.len() - 4);
            let stored_sum = le32(sum, 0);
            if adler32(data) != stored_sum {
                return Err(format!(
                    "{}: Adler-32 mismatch (the chunk is damaged)",
                    place()
                ));
            }
            let mut data = raw;
            data.truncate(expected as usize);
            Ok(data)
        }
    }

    /// The entries of table `index`, checked against their Adler-32 (falling back to the
    /// `table2` copy when the first copy is damaged).
    fn table_entries(&self, index: usize) -> Result<Arc<[u32]>, String> {
        self.entries.get_or_load(index as u64, || {
            let table = &self.tables[index];
            let file = self.segment_file(table.segment)?;
            let entries = match read_entries(&*file, table, table.entries_at) {
                Ok(entries) => entries,
                Err(why) => match table.backup {
                    Some(backup) => read_entries(&*file, table, backup).map_err(|why2| {
                        format!(
                            "table of chunks from {}: {why}; its table2 copy: {why2}",
                            table.first_chunk
                        )
                    })?,
                    None => {
                        return Err(format!("table of chunks from {}: {why}", table.first_chunk))
                    }
                },
            };
            Ok(entries.into())
        })
    }

    /// Segment `index`, opened read-only (kept in a small pool of open files).
    fn segment_file(&self, index: usize) -> Result<Arc<dyn ReadAt>, String> {
        if index == 0 {
            return Ok(Arc::clone(&self.first));
        }
        self.open_segments.get_or_load(index as u64, || {
            let segment = &self.segments[index];
            let file = ImageFile::open(&segment.path)
                .map_err(|e| format!("cannot open {}: {e}", segment.path.display()))?;
            if file.len() != segment.len {
                return Err(format!(
                    "{} changed size since the image was opened",
                    segment.path.display()
                ));
            }
            Ok(Arc::new(file))
        })
    }
}

impl ReadAt for EwfDisk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        within(buf.len(), offset, self.size, "ewf disk")?;
        let mut done = 0;
        while done < buf.len() {
            let position = offset + done as u64;
            let within = (position % self.chunk_size) as usize;
            let data = self.chunk(position / self.chunk_size)?;
            let n = (data[..].len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[within..within + n]);
            done += n;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.size
    }
}

impl Scan {
    /// Walks the section chain of segment `index` (0 for the first), noting what it holds.
    fn walk_segment(
        &mut self,
        file: &dyn ReadAt,
        index: usize,
    ) -> Result<SegmentEnd, ContainerError> {
        let len = file.len();
        let header = read_at(file, 0, FILE_HEADER_LEN, "segment file header")?;
        if header[..8] != SIGNATURE[..] {
            return Err(damaged(
                format!("segment {}", index + 1),
                0,
                "it does not start with the EWF signature",
            ));
        }
        let number = le16(&header, 9);
        if index == 0 && number != 1 {
            return Err(unsupported(&format!(
                "this is segment {number} of an EWF set: open its first segment (.E01) instead"
            )));
        }
        if usize::from(number) != index + 1 {
            return Err(damaged(
                format!("segment {}", index + 1),
                9,
                format!("its header says it is segment {number}"),
            ));
        }
        let mut offset = FILE_HEADER_LEN;
        let mut sectors: Option<(u64, u64)> = None;
        // A table section whose header is damaged, waiting for its table2 copy.
        let mut damaged_table: Option<u64> = None;
        for _ in 0..MAX_SECTIONS {
            let section = read_section(file, offset)?;
            match section.kind.as_slice() {
                b"header2" | b"header" => self.read_header(file, &section)?,
                b"volume" | b"disk" => self.read_volume(file, &section)?,
                b"data" => self.check_data(file, &section)?,
                b"sectors" => {
                    check_no_damaged_table(damaged_table)?;
                    sectors = Some(section.body(len)?);
                }
                b"table" => {
                    check_no_damaged_table(damaged_table)?;
                    match read_table_header(file, &section, sectors, index)? {
                        Some(table) => self.push_table(table),
                        None => damaged_table = Some(section.offset),
                    }
                }
                b"table2" => {
                    if let Some(copy) = read_table_header(file, &section, sectors, index)? {
                        if damaged_table.take().is_some() {
                            self.push_table(copy);
                        } else if let Some(last) = self.tables.last_mut() {
                            let agrees = last.segment == index
                                && last.backup.is_none()
                                && last.entries == copy.entries
                                && last.base == copy.base
                                && last.footer == copy.footer;
                            if agrees {
                                last.backup = Some(copy.entries_at);
                            }
                        }
                    }
                }
                b"hash" => self.read_hash(file, &section)?,
                b"digest" => self.read_digest(file, &section)?,
                b"error2" => self.read_errors(file, &section)?,
                b"next" | b"done" => {
                    check_no_damaged_table(damaged_table)?;
                    return Ok(if section.kind == b"next" {
                        SegmentEnd::Next
                    } else {
                        SegmentEnd::Done
                    });
                }
                _ => {}
            }
            // The chain only goes forward, one descriptor at least: it ends.
            if section.next < offset + DESCRIPTOR_LEN {
                return Err(damaged(
                    format!("{} section", section.name()),
                    offset,
                    format!("its next section offset {} goes backwards", section.next),
                ));
            }
            offset = section.next;
        }
        Err(damaged(
            format!("segment {}", index + 1),
            offset,
            format!("more than {MAX_SECTIONS} sections"),
        ))
    }

    fn push_table(&mut self, mut table: Table) {
        if table.entries == 0 {
            return;
        }
        table.first_chunk = self.chunks;
        self.chunks += u64::from(table.entries);
        self.tables.push(table);
    }

    /// The first `header2` (UTF-16) and the first `header` (ASCII) section, decoded.
    fn read_header(&mut self, file: &dyn ReadAt, section: &Section) -> Result<(), ContainerError> {
        let utf16 = section.kind == b"header2";
        if (utf16 && self.header2.is_some()) || (!utf16 && self.header.is_some()) {
            return Ok(());
        }
        let (start, end) = section.body(file.len())?;
        if end - start > MAX_HEADER_STORED {
            return Err(damaged(
                format!("{} section", section.name()),
                section.offset,
                format!("{} bytes is too large for a header", end - start),
            ));
        }
        let stored = read_at(file, start, end - start, "header section")?;
        let text = inflate_header(&stored)
            .map_err(|why| damaged(format!("{} section", section.name()), section.offset, why))?;
        let text = if utf16 {
            decode_utf16(&text)
        } else {
            decode_single_byte(&text)
        };
        let fields = parse_header(&text);
        if utf16 {
            self.header2 = Some(fields);
        } else {
            self.header = Some(fields);
        }
        Ok(())
    }

    fn read_volume(&mut self, file: &dyn ReadAt, section: &Section) -> Result<(), ContainerError> {
        if self.volume.is_some() {
            return Ok(());
        }
        let body = read_body(file, section, VOLUME_S01_LEN as u64)?;
        let volume = parse_volume(&body)
            .map_err(|why| damaged(format!("{} section", section.name()), section.offset, why))?;
        self.volume = Some(volume);
        Ok(())
    }

    /// A later segment's `data` section repeats the volume: its set identifier must be the
    /// first segment's, or the segments come from different acquisitions.
    fn check_data(&mut self, file: &dyn ReadAt, section: &Section) -> Result<(), ContainerError> {
        let Some(volume) = self.volume else {
            return Ok(());
        };
        let body = read_body(file, section, VOLUME_S01_LEN as u64)?;
        let data =
            parse_volume(&body).map_err(|why| damaged("data section", section.offset, why))?;
        if volume.guid != [0; 16] && data.guid != volume.guid {
            return Err(damaged(
                "data section",
                section.offset,
                "this segment belongs to another acquisition (its set identifier differs)",
            ));
        }
        Ok(())
    }

    fn read_hash(&mut self, file: &dyn ReadAt, section: &Section) -> Result<(), ContainerError> {
        let body = read_body(file, section, 36)?;
        check_adler(&body[..32], &body[32..36])
            .map_err(|why| damaged("hash section", section.offset, why))?;
        let md5: [u8; 16] = body[..16].try_into().expect("16 bytes");
        if md5 != [0; 16] {
            self.md5 = Some(md5);
        }
        Ok(())
    }

    fn read_digest(&mut self, file: &dyn ReadAt, section: &Section) -> Result<(), ContainerError> {
        let body = read_body(file, section, 80)?;
        check_adler(&body[..76], &body[76..80])
            .map_err(|why| damaged("digest section", section.offset, why))?;
        let md5: [u8; 16] = body[..16].try_into().expect("16 bytes");
        let sha1: [u8; 20] = body[16..36].try_into().expect("20 bytes");
        if md5 != [0; 16] {
            self.md5 = Some(md5);
        }
        if sha1 != [0; 20] {
            self.sha1 = Some(sha1);
        }
        Ok(())
    }

    /// The sectors the acquisition could not read (stored as zeros in the image).
    fn read_errors(&mut self, file: &dyn ReadAt, section: &Section) -> Result<(), ContainerError> {
        let (start, end) = section.body(file.len())?;
        let header = read_body(file, section, 520)?;
        check_adler(&header[..516], &header[516..520])
            .map_err(|why| damaged("error2 section", section.offset, why))?;
        let count = u64::from(le32(&header, 0));
        let room = (end - start - 520) / 8;
        if count > room || count > MAX_ERROR_RANGES {
            return Err(damaged(
                "error2 section",
                section.offset,
                format!("{count} error ranges do not fit in it"),
            ));
        }
        let ranges = read_at(file, start + 520, count * 8, "error2 section")?;
        self.error_count += count;
        for range in ranges.chunks_exact(8) {
            if self.errors.len() >= SHOWN_ERROR_RANGES {
                break;
            }
            let first = le32(range, 0);
            let sectors = le32(range, 4);
            self.errors.push((first, sectors));
        }
        Ok(())
    }

    /// The header fields (header2 preferred: it has more), then what the volume and the
    /// error sections add.
    fn metadata(&self, volume: &Volume) -> Vec<(String, String)> {
        let mut metadata = self
            .header2
            .clone()
            .or_else(|| self.header.clone())
            .unwrap_or_default();
        metadata.push((
            "geometry".into(),
            format!(
                "{} sectors of {} bytes, {} sectors per chunk",
                volume.sector_count, volume.bytes_per_sector, volume.sectors_per_chunk
            ),
        ));
        if let Some((kind, flags)) = volume.media {
            metadata.push(("media".into(), media(kind, flags)));
        }
        if volume.guid != [0; 16] {
            metadata.push(("set identifier".into(), hex(&volume.guid)));
        }
        if self.error_count > 0 {
            let mut ranges: Vec<String> = self
                .errors
                .iter()
                .map(|&(first, n)| {
                    let last = u64::from(first) + u64::from(n).saturating_sub(1);
                    format!("{first}-{last}")
                })
                .collect();
            if self.error_count > self.errors.len() as u64 {
                ranges.push("...".into());
            }
            metadata.push((
                "acquisition read errors".into(),
                format!(
                    "{} ranges of sectors the acquisition could not read (stored as zeros): {}",
                    self.error_count,
                    ranges.join(", ")
                ),
            ));
        }
        metadata
    }

    fn stored_hashes(&self) -> Vec<(String, String)> {
        let mut hashes = Vec::new();
        if let Some(md5) = &self.md5 {
            hashes.push(("md5".to_string(), hex(md5)));
        }
        if let Some(sha1) = &self.sha1 {
            hashes.push(("sha1".to_string(), hex(sha1)));
        }
        hashes
    }
}

/// The volume's media type and flags in words (as libewf names them).
fn media(kind: u8, flags: u8) -> String {
    let kind = match kind {
        0x00 => "removable disk".to_string(),
        0x01 => "fixed disk".to_string(),
        0x03 => "optical disc".to_string(),
        0x0e => "logical evidence".to_string(),
        0x10 => "memory (RAM)".to_string(),
        other => format!("media type 0x{other:02x}"),
    };
    let mut words = vec![kind];
    for (bit, word) in [
        (0x02, "physical"),
        (0x04, "Fastbloc write blocker"),
        (0x08, "Tableau write blocker"),
    ] {
        if flags & bit != 0 {
            words.push(word.to_string());
        }
    }
    words.join(", ")
}

fn check_no_damaged_table(damaged_table: Option<u64>) -> Result<(), ContainerError> {
    match damaged_table {
        Some(offset) => Err(damaged(
            "table section",
            offset,
            "its header checksum is wrong and no sound table2 copy follows it",
        )),
        None => Ok(()),
    }
}

/// The chunk size and the disk size the volume gives, checked against what the tables hold.
fn geometry(volume: &Volume, table_chunks: u64) -> Result<(u64, u64), ContainerError> {
    let chunk_size = u64::from(volume.sectors_per_chunk) * u64::from(volume.bytes_per_sector);
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(ContainerError::Unsupported {
            format: FORMAT,
            why: format!(
                "a chunk of {} sectors of {} bytes is out of range",
                volume.sectors_per_chunk, volume.bytes_per_sector
            ),
        });
    }
    let size = volume
        .sector_count
        .checked_mul(u64::from(volume.bytes_per_sector))
        .ok_or_else(|| damaged("volume section", 0, "the disk size overflows"))?;
    let needed = size.div_ceil(chunk_size);
    if needed > u64::from(volume.chunk_count) {
        return Err(damaged(
            "volume section",
            0,
            format!(
                "a disk of {size} bytes needs {needed} chunks but the volume counts {}",
                volume.chunk_count
            ),
        ));
    }
    if needed > table_chunks {
        return Err(damaged(
            "tables",
            0,
            format!(
                "the disk needs {needed} chunks but the tables of all segments hold \
                 {table_chunks} (a segment file missing or cut short?)"
            ),
        ));
    }
    Ok((chunk_size, size))
}

/// The path of segment `number` next to the first segment `first`: the same stem, the
/// extension in the case given or else in the other case.
fn next_segment_path(first: &Path, number: u32) -> Result<PathBuf, ContainerError> {
    let extension = first.extension().and_then(|e| e.to_str()).unwrap_or("");
    let name = segment_extension(extension, number).ok_or_else(|| ContainerError::Unsupported {
        format: FORMAT,
        why: format!(
            "the image goes on in segment {number}, but its name cannot be derived from \
             {} (the first segment's extension must be like E01 or s01)",
            first.display()
        ),
    })?;
    let candidates = [name.clone(), swap_case(&name)];
    for candidate in &candidates {
        let path = first.with_extension(candidate);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(damaged(
        format!("segment {number}"),
        0,
        format!(
            "the image goes on in segment {number}, but {} is missing",
            first.with_extension(&name).display()
        ),
    ))
}

/// The extension of segment `number` in the set whose first segment has the extension
/// `first` (`E01` → `E02` … `E99`, `EAA` … `EZZ`, `FAA` … `ZZZ`), in `first`'s case.
fn segment_extension(first: &str, number: u32) -> Option<String> {
    let bytes = first.as_bytes();
    if bytes.len() != 3 || !bytes[0].is_ascii_alphabetic() || &bytes[1..] != b"01" {
        return None;
    }
    let upper = bytes[0].is_ascii_uppercase();
    let letter = bytes[0].to_ascii_uppercase();
    let name = match number {
        0 => return None,
        1..=99 => format!("{}{number:02}", letter as char),
        _ => {
            let mut rest = number - 100;
            let third = b'A' + (rest % 26) as u8;
            rest /= 26;
            let second = b'A' + (rest % 26) as u8;
            rest /= 26;
            let first = u32::from(letter) + rest;
            if first > u32::from(b'Z') {
                return None;
            }
            String::from_utf8(vec![first as u8, second, third]).ok()?
        }
    };
    Some(if upper {
        name
    } else {
        name.to_ascii_lowercase()
    })
}

fn swap_case(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Reads and checks the section descriptor at `offset`.
fn read_section(file: &dyn ReadAt, offset: u64) -> Result<Section, ContainerError> {
    let bytes = read_at(file, offset, DESCRIPTOR_LEN, "section descriptor")?;
    check_adler(&bytes[..72], &bytes[72..76])
        .map_err(|why| damaged("section descriptor", offset, why))?;
    let kind_end = bytes[..16].iter().position(|&b| b == 0).unwrap_or(16);
    Ok(Section {
        kind: bytes[..kind_end].to_vec(),
        offset,
        next: le64(&bytes, 16),
        size: le64(&bytes, 24),
    })
}

/// The first `min` bytes (at least) of a section's body: all of it up to the volume layout
/// size, which is all any caller needs.
fn read_body(file: &dyn ReadAt, section: &Section, min: u64) -> Result<Vec<u8>, ContainerError> {
    let (start, end) = section.body(file.len())?;
    if end - start < min {
        return Err(damaged(
            format!("{} section", section.name()),
            section.offset,
            format!("{} bytes is too short for it (at least {min})", end - start),
        ));
    }
    let len = (end - start).min(VOLUME_E01_LEN as u64).max(min);
    read_at(file, start, len, "section")
}

/// Reads a table section's header; `None` when its checksum is wrong (its table2 copy may
/// stand in), an error when it is sound but impossible.
fn read_table_header(
    file: &dyn ReadAt,
    section: &Section,
    sectors: Option<(u64, u64)>,
    segment: usize,
) -> Result<Option<Table>, ContainerError> {
    let (start, end) = section.body(file.len())?;
    let header = read_body(file, section, TABLE_HEADER_LEN)?;
    if check_adler(&header[..20], &header[20..24]).is_err() {
        return Ok(None);
    }
    let entries = le32(&header, 0);
    let base = le64(&header, 8);
    let entries_at = start + TABLE_HEADER_LEN;
    let entries_len = u64::from(entries) * 4;
    let room = end - entries_at;
    if u64::from(entries) > MAX_TABLE_ENTRIES || entries_len > room {
        return Err(damaged(
            format!("{} section", section.name()),
            section.offset,
            format!("{entries} entries do not fit in it ({room} bytes)"),
        ));
    }
    let (footer, data_start, data_end) = match sectors {
        Some((data_start, data_end)) => (room >= entries_len + 4, data_start, data_end),
        // SMART: the chunks follow the entries in the table section itself.
        None => (false, entries_at + entries_len, end),
    };
    Ok(Some(Table {
        first_chunk: 0,
        entries,
        segment,
        entries_at,
        footer,
        backup: None,
        base,
        data_start,
        data_end,
    }))
}

/// A table's entries read at `at`, checked against their Adler-32 where one follows them.
fn read_entries(file: &dyn ReadAt, table: &Table, at: u64) -> Result<Vec<u32>, String> {
    let len = u64::from(table.entries) * 4 + if table.footer { 4 } else { 0 };
    let bytes = read_vec(file, at, len)?;
    let (entries, footer) = bytes.split_at(table.entries as usize * 4);
    if table.footer {
        check_adler(entries, footer)?;
    }
    Ok(entries.chunks_exact(4).map(|e| le32(e, 0)).collect())
}

/// Whether a table entry flags a compressed chunk, and the chunk's offset in its segment.
fn entry_offset(entry: u32, base: u64) -> Result<(bool, u64), String> {
    let compressed = entry & 0x8000_0000 != 0;
    let offset = base
        .checked_add(u64::from(entry & 0x7fff_ffff))
        .ok_or("its table entry's offset overflows")?;
    Ok((compressed, offset))
}

/// Parses a volume (or data, or disk) section body.
fn parse_volume(body: &[u8]) -> Result<Volume, String> {
    let u32_at = |at: usize| le32(body, at);
    let e01 = body.len() >= VOLUME_E01_LEN;
    let (checked, sum) = if e01 {
        (&body[..1048], &body[1048..1052])
    } else if body.len() >= VOLUME_S01_LEN {
        (&body[..90], &body[90..94])
    } else {
        return Err(format!("{} bytes is too short for a volume", body.len()));
    };
    check_adler(checked, sum)?;
    let sector_count = if e01 {
        le64(body, 16)
    } else {
        u64::from(u32_at(16))
    };
    let mut guid = [0u8; 16];
    if e01 {
        guid.copy_from_slice(&body[64..80]);
    }
    let media = e01.then(|| (body[0], body[36]));
    Ok(Volume {
        chunk_count: u32_at(4),
        sectors_per_chunk: u32_at(8),
        bytes_per_sector: u32_at(12),
        sector_count,
        e01,
        guid,
        media,
    })
}

/// Inflates a chunk: a zlib stream (its own Adler-32 checked) of exactly `expected` bytes,
/// or of `chunk_size` bytes for a padded last chunk.
fn inflate_chunk(stored: &[u8], expected: u64, chunk_size: u64) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; chunk_size as usize + 1];
    let mut inflater = flate2::Decompress::new(true);
    let status = inflater
        .decompress(stored, &mut out, flate2::FlushDecompress::Finish)
        .map_err(|e| format!("its zlib stream is damaged: {e}"))?;
    let produced = inflater.total_out();
    if status != flate2::Status::StreamEnd {
        return Err(if produced > chunk_size {
            format!("it inflates to more than the chunk size ({chunk_size} bytes)")
        } else {
            format!("its zlib stream is cut short after {produced} bytes")
        });
    }
    if produced != expected && produced != chunk_size {
        return Err(format!(
            "it inflates to {produced} bytes where {expected} are expected"
        ));
    }
    out.truncate(expected as usize);
    Ok(out)
}

/// Inflates a header section, refusing text beyond a sane size.
fn inflate_header(stored: &[u8]) -> Result<Vec<u8>, String> {
    let mut text = Vec::new();
    flate2::read::ZlibDecoder::new(stored)
        .take(MAX_HEADER_TEXT + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("its zlib stream is damaged: {e}"))?;
    if text.len() as u64 > MAX_HEADER_TEXT {
        return Err("it inflates to more than 4 MiB".into());
    }
    Ok(text)
}

/// UTF-16LE text, a byte-order mark first where there is one.
fn decode_utf16(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(&[0xff, 0xfe]).unwrap_or(bytes);
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// The `header` section's text is in a single-byte code page (ASCII by default): UTF-8
/// where it is valid, else read as Latin-1.
fn decode_single_byte(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The fields of a header's `main` category: a line of field names, then a line of values,
/// tab-separated; labelled, in the header's order, empty ones left out.
fn parse_header(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let Some(main) = lines.iter().position(|l| l.trim() == "main") else {
        return Vec::new();
    };
    let (Some(names), Some(values)) = (lines.get(main + 1), lines.get(main + 2)) else {
        return Vec::new();
    };
    names
        .split('\t')
        .zip(values.split('\t'))
        .filter_map(|(name, value)| field(name.trim(), value.trim()))
        .collect()
}

/// One header field as label and value, `None` for an empty or unset one.
fn field(name: &str, value: &str) -> Option<(String, String)> {
    // "0" is how writers leave a password, or a date, unset.
    if value.is_empty() || (matches!(name, "p" | "m" | "u") && value == "0") {
        return None;
    }
    let label = match name {
        "c" => "case number",
        "n" => "evidence number",
        "a" => "description",
        "e" => "examiner",
        "t" => "notes",
        "av" => "acquisition software version",
        "ov" => "acquisition operating system",
        "m" => "acquisition date",
        "u" => "system date",
        "p" => "password hash",
        "r" => "compression",
        "md" => "model",
        "sn" => "serial number",
        "l" => "device label",
        "pid" => "process identifier",
        "dc" => "unknown (dc)",
        "ext" => "extents",
        other => other,
    };
    let value = match name {
        "m" | "u" => header_date(value),
        "r" => match value {
            "n" => "none".to_string(),
            "f" => "fast".to_string(),
            "b" => "best".to_string(),
            other => other.to_string(),
        },
        _ => value.to_string(),
    };
    Some((label.to_string(), value))
}

/// A header date: `header2` gives seconds since 1970 (UTC); `header` gives `Y M D h m s`
/// in the acquiring machine's local time. Anything else is shown as it is.
fn header_date(value: &str) -> String {
    if let Ok(seconds) = value.parse::<i64>() {
        return crate::time::from_unix(seconds);
    }
    let parts: Vec<u32> = value
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    match parts.as_slice() {
        [y, mo, d, h, mi, s] if value.split_whitespace().count() == 6 => {
            format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} (local time of the acquiring machine)"
            )
        }
        _ => value.to_string(),
    }
}

/// The Adler-32 of RFC 1950, which EWF puts after descriptors, tables and raw chunks.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 bytes is the most that can be summed before the sums could overflow a u32.
    let (mut a, mut b) = (1u32, 0u32);
    for block in data.chunks(5552) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn check_adler(data: &[u8], stored: &[u8]) -> Result<(), String> {
    let stored = u32::from_le_bytes(stored.try_into().map_err(|_| "no checksum")?);
    let computed = adler32(data);
    if stored == computed {
        Ok(())
    } else {
        Err(format!(
            "Adler-32 mismatch (stored {stored:08x}, computed {computed:08x})"
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` bytes at `offset`, checked to lie in the file first (a truncated segment is
/// damage, said so, before any allocation).
fn read_at(
    file: &dyn ReadAt,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, ContainerError> {
    read_vec(file, offset, len).map_err(|why| damaged(what, offset, why))
}

fn read_vec(file: &dyn ReadAt, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    if offset.checked_add(len).is_none_or(|end| end > file.len()) {
        return Err(format!(
            "{len} bytes at byte {offset} are past the end of the file ({} bytes; truncated?)",
            file.len()
        ));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| format!("read of {len} bytes at byte {offset} failed: {e}"))?;
    Ok(buf)
}

fn io_error(what: &str, offset: u64) -> impl FnOnce(io::Error) -> ContainerError + '_ {
    move |source| super::read_failed(FORMAT, what, offset, source)
}

fn damaged(what: impl Into<String>, offset: u64, why: impl Into<String>) -> ContainerError {
    super::damaged(FORMAT, what, offset, why)
}

fn unsupported(why: &str) -> ContainerError {
    super::unsupported(FORMAT, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn adler32_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        // Long input crosses the 5552-byte blocks.
        let data = vec![0xffu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &data {
            a = (a + u64::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(&data), ((b << 16) | a) as u32);
    }

    #[test]
    fn segment_extensions_follow_libewf() {
        assert_eq!(segment_extension("E01", 1).as_deref(), Some("E01"));
        assert_eq!(segment_extension("E01", 2).as_deref(), Some("E02"));
        assert_eq!(segment_extension("E01", 99).as_deref(), Some("E99"));
        assert_eq!(segment_extension("E01", 100).as_deref(), Some("EAA"));
        assert_eq!(segment_extension("E01", 101).as_deref(), Some("EAB"));
        assert_eq!(segment_extension("E01", 100 + 26).as_deref(), Some("EBA"));
        assert_eq!(segment_extension("E01", 100 + 675).as_deref(), Some("EZZ"));
        assert_eq!(segment_extension("E01", 100 + 676).as_deref(), Some("FAA"));
        assert_eq!(segment_extension("e01", 100).as_deref(), Some("eaa"));
        assert_eq!(segment_extension("s01", 7).as_deref(), Some("s07"));
        // E + 21 letters up to Z, each 676 names.
        assert_eq!(
            segment_extension("E01", 100 + 22 * 676 - 1).as_deref(),
            Some("ZZZ")
        );
        assert_eq!(segment_extension("E01", 100 + 22 * 676), None);
        assert_eq!(segment_extension("E01", 0), None);
        assert_eq!(segment_extension("E02", 3), None);
        assert_eq!(segment_extension("Ex01", 2), None);
        assert_eq!(segment_extension("raw", 2), None);
        assert_eq!(segment_extension("", 2), None);
        assert_eq!(swap_case("E0a"), "e0A");
    }

    #[test]
    fn header_fields_are_labelled_in_order() {
        let text = "1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\tr\r\ncase42\tev7\tdesc\tex\t\t20140813\tLinux\t2026 12 7 23 23 17\t2026 12 7 23 23 17\t0\tb\r\n\r\n";
        let fields = parse_header(text);
        let get = |label: &str| {
            fields
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(fields[0], ("case number".into(), "case42".into()));
        assert_eq!(get("evidence number"), Some("ev7"));
        assert_eq!(get("examiner"), Some("ex"));
        assert_eq!(get("notes"), None);
        assert_eq!(get("password hash"), None);
        assert_eq!(get("compression"), Some("best"));
        assert_eq!(
            get("acquisition date"),
            Some("2026-12-07 23:23:17 (local time of the acquiring machine)")
        );
        assert!(parse_header("").is_empty());
        assert!(parse_header("1\nmain\n").is_empty());
        assert!(parse_header("1\nmain\nc\tn\n").is_empty());
    }

    #[test]
    fn header2_is_utf16_with_unix_dates() {
        let text = "3\nmain\na\tc\tm\ndésc\tcase\t1796685797\n\nsrce\n";
        let mut bytes = vec![0xff, 0xfe];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let fields = parse_header(&decode_utf16(&bytes));
        assert_eq!(fields[0], ("description".into(), "désc".into()));
        assert_eq!(fields[2].1, "2026-12-07T23:23:17Z");
        assert_eq!(header_date("not a date"), "not a date");
        // Odd bytes and lone surrogates do not panic.
        assert_eq!(decode_utf16(&[0x00, 0xd8, 0x41]), "\u{fffd}");
        assert_eq!(decode_single_byte(&[0x41, 0xe9]), "Aé");
    }

    #[test]
    fn chunks_inflate_to_exactly_their_size() {
        use std::io::Write;
        let data = vec![7u8; 1000];
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&data).unwrap();
        let stream = encoder.finish().unwrap();
        assert_eq!(inflate_chunk(&stream, 1000, 1000).unwrap(), data);
        // A short last chunk stored padded to the chunk size.
        assert_eq!(inflate_chunk(&stream, 600, 1000).unwrap(), data[..600]);
        assert!(inflate_chunk(&stream, 600, 900).is_err());
        assert!(inflate_chunk(&stream, 900, 2000).is_err());
        assert!(inflate_chunk(&stream[..stream.len() - 6], 1000, 1000).is_err());
        // A wrong Adler-32 trailer is refused.
        let mut bad = stream.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(inflate_chunk(&bad, 1000, 1000).is_err());
        assert!(inflate_chunk(&[], 1000, 1000).is_err());
        assert!(inflate_chunk(&[0x78, 0x9c, 0xff, 0xff], 1000, 1000).is_err());
    }

    #[test]
    fn volume_layouts() {
        let mut body = vec![0u8; VOLUME_E01_LEN];
        body[4..8].copy_from_slice(&3u32.to_le_bytes());
        body[8..12].copy_from_slice(&64u32.to_le_bytes());
        body[12..16].copy_from_slice(&512u32.to_le_bytes());
        body[16..24].copy_from_slice(&(1u64 << 33).to_le_bytes());
        let sum = adler32(&body[..1048]);
        body[1048..].copy_from_slice(&sum.to_le_bytes());
        let volume = parse_volume(&body).unwrap();
        assert!(volume.e01);
        assert_eq!(volume.sector_count, 1 << 33);
        assert_eq!(volume.chunk_count, 3);
        body[20] ^= 1;
        assert!(parse_volume(&body).is_err());
        assert!(parse_volume(&body[..50]).is_err());

        let mut short = vec![0u8; VOLUME_S01_LEN];
        short[16..20].copy_from_slice(&100u32.to_le_bytes());
        let sum = adler32(&short[..90]);
        short[90..].copy_from_slice(&sum.to_le_bytes());
        let volume = parse_volume(&short).unwrap();
        assert!(!volume.e01);
        assert_eq!(volume.sector_count, 100);
    }

    #[test]
    fn geometry_is_checked() {
        let volume = Volume {
            chunk_count: 2,
            sectors_per_chunk: 64,
            bytes_per_sector: 512,
            sector_count: 100,
            e01: true,
            guid: [0; 16],
            media: None,
        };
        assert_eq!(geometry(&volume, 2).unwrap(), (32_768, 51_200));
        assert!(geometry(&volume, 1).is_err());
        assert!(geometry(
            &Volume {
                chunk_count: 1,
                ..volume
            },
            2
        )
        .is_err());
        assert!(geometry(
            &Volume {
                sectors_per_chunk: 0,
                ..volume
            },
            2
        )
        .is_err());
        assert!(geometry(
            &Volume {
                sectors_per_chunk: u32::MAX,
                ..volume
            },
            2
        )
        .is_err());
        let huge = Volume {
            sector_count: u64::MAX,
            ..volume
        };
        assert!(geometry(&huge, u64::MAX).is_err());
    }

    #[test]
    fn table_entries_flag_compression() {
        assert_eq!(entry_offset(0x8000_004c, 100).unwrap(), (true, 176));
        assert_eq!(entry_offset(0x4c, 0).unwrap(), (false, 76));
        assert!(entry_offset(1, u64::MAX).is_err());
    }

    /// Appends a section (descriptor with its checksum, then `body`) and returns its offset.
    fn push_section(file: &mut Vec<u8>, kind: &str, body: &[u8], last: bool) -> usize {
        let offset = file.len();
        let size = DESCRIPTOR_LEN as usize + body.len();
        let mut descriptor = [0u8; 76];
        descriptor[..kind.len()].copy_from_slice(kind.as_bytes());
        let next = if last { offset } else { offset + size };
        descriptor[16..24].copy_from_slice(&(next as u64).to_le_bytes());
        descriptor[24..32].copy_from_slice(&(size as u64).to_le_bytes());
        let sum = adler32(&descriptor[..72]);
        descriptor[72..].copy_from_slice(&sum.to_le_bytes());
        file.extend_from_slice(&descriptor);
        file.extend_from_slice(body);
        offset
    }

    fn sealed(mut body: Vec<u8>, checked: usize) -> Vec<u8> {
        let sum = adler32(&body[..checked]);
        body[checked..checked + 4].copy_from_slice(&sum.to_le_bytes());
        body
    }

    /// A one-segment E01 of two 1 KiB chunks (one raw, one compressed) built in memory.
    fn tiny_e01(disk: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut file = SIGNATURE.to_vec();
        file.extend_from_slice(&[1, 1, 0, 0, 0]);
        let mut volume = vec![0u8; VOLUME_E01_LEN];
        volume[0] = 1;
        volume[4..8].copy_from_slice(&2u32.to_le_bytes());
        volume[8..12].copy_from_slice(&2u32.to_le_bytes());
        volume[12..16].copy_from_slice(&512u32.to_le_bytes());
        volume[16..24].copy_from_slice(&((disk.len() / 512) as u64).to_le_bytes());
        volume[36] = 2;
        push_section(&mut file, "volume", &sealed(volume, 1048), false);
        let mut sectors = disk[..1024].to_vec();
        sectors.extend_from_slice(&adler32(&disk[..1024]).to_le_bytes());
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&disk[1024..]).unwrap();
        sectors.extend_from_slice(&encoder.finish().unwrap());
        let sectors_at = push_section(&mut file, "sectors", &sectors, false);
        let mut table = vec![0u8; 24];
        table[..4].copy_from_slice(&2u32.to_le_bytes());
        table[8..16].copy_from_slice(&(sectors_at as u64).to_le_bytes());
        let mut table = sealed(table, 20);
        let entries: Vec<u8> = [76u32, 0x8000_0000 | (76 + 1028)]
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect();
        table.extend_from_slice(&entries);
        table.extend_from_slice(&adler32(&entries).to_le_bytes());
        push_section(&mut file, "table", &table, false);
        let mut errors = vec![0u8; 520];
        errors[..4].copy_from_slice(&2u32.to_le_bytes());
        let mut errors = sealed(errors, 516);
        for (first, n) in [(1u32, 1u32), (3, 1)] {
            errors.extend_from_slice(&first.to_le_bytes());
            errors.extend_from_slice(&n.to_le_bytes());
        }
        errors.extend_from_slice(&[0; 4]);
        push_section(&mut file, "error2", &errors, false);
        let mut hash = vec![0xabu8; 16];
        hash.extend_from_slice(&[0; 20]);
        push_section(&mut file, "hash", &sealed(hash, 32), false);
        push_section(&mut file, "done", &[], true);
        file
    }

    #[test]
    fn a_tiny_image_built_in_memory_reads_back() {
        let disk: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8).collect();
        let file: Arc<dyn ReadAt> = Arc::new(tiny_e01(&disk));
        let opened = open(Path::new("mem.E01"), &file).unwrap().unwrap();
        assert_eq!(opened.info.format, "ewf (E01)");
        assert_eq!(opened.info.virtual_size, 2048);
        assert_eq!(
            opened.info.stored_hashes,
            vec![("md5".to_string(), "ab".repeat(16))]
        );
        let meta: HashMap<_, _> = opened.info.metadata.iter().cloned().collect();
        assert_eq!(meta["media"], "fixed disk, physical");
        assert!(meta["acquisition read errors"].starts_with("2 ranges"));
        assert!(meta["acquisition read errors"].ends_with("1-1, 3-3"));
        let mut all = vec![0u8; 2048];
        opened.disk.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all, disk);
        let mut piece = vec![0u8; 10];
        opened.disk.read_exact_at(&mut piece, 1020).unwrap();
        assert_eq!(piece, disk[1020..1030]);
    }

    #[test]
    fn every_cut_and_every_flipped_byte_of_a_tiny_image_is_safe() {
        let disk: Vec<u8> = (0..2048u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = tiny_e01(&disk);
        let check = |bytes: Vec<u8>| {
            let file: Arc<dyn ReadAt> = Arc::new(bytes);
            if let Ok(Some(opened)) = open(Path::new("mem.E01"), &file) {
                assert_eq!(opened.info.virtual_size, 2048);
                let mut all = vec![0u8; 2048];
                if opened.disk.read_exact_at(&mut all, 0).is_ok() {
                    assert_eq!(all, disk);
                }
            }
        };
        for keep in 0..whole.len() {
            check(whole[..keep].to_vec());
        }
        for at in 0..whole.len() {
            let mut bytes = whole.clone();
            bytes[at] ^= 0x10;
            check(bytes);
        }
    }

    #[test]
    fn garbage_after_the_signature_is_damage() {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&[1, 1, 0, 0, 0]);
        bytes.extend_from_slice(&[0xaa; 200]);
        let file: Arc<dyn ReadAt> = Arc::new(bytes);
        assert!(matches!(
            open(Path::new("x.E01"), &file),
            Err(ContainerError::Damaged { .. })
        ));
        let file: Arc<dyn ReadAt> = Arc::new(SIGNATURE.to_vec());
        assert!(open(Path::new("x.E01"), &file).is_err());
        let file: Arc<dyn ReadAt> = Arc::new(b"EVF".to_vec());
        assert!(open(Path::new("x.E01"), &file).unwrap().is_none());
        let file: Arc<dyn ReadAt> = Arc::new(EWF2_SIGNATURE.to_vec());
        assert!(matches!(
            open(Path::new("x.Ex01"), &file),
            Err(ContainerError::Unsupported { .. })
        ));
        let file: Arc<dyn ReadAt> = Arc::new(LOGICAL_SIGNATURE.to_vec());
        assert!(matches!(
            open(Path::new("x.L01"), &file),
            Err(ContainerError::Unsupported { .. })
        ));
    }
}
