//! NTFS read straight from a volume's bytes: the boot sector, the MFT (itself fragmented or
//! split by an attribute list), files' attributes merged across their records, data streams
//! (sparse, compressed, past their valid data length), directory indexes and reparse points.
//!
//! Written here rather than taken from the `ntfs` crate (0.4.0), which returns wrong bytes
//! without an error on things every long-used Windows volume has (compressed and WOF files,
//! attribute lists, a fragmented `$MFT`, valid data length): see `docs/images.md`. What this
//! reader cannot decode it refuses with an error naming why; it never returns bytes it is not
//! sure of.
//!
//! Everything is read with positioned reads of the size needed: one record, one index block,
//! one run of a file. Nothing is read whole except the files asked for, and those are bounded
//! ([`FILE_LIMIT`]).

mod index;
mod lznt1;
mod record;
pub mod wof;

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use thiserror::Error;

pub use index::{IndexEntry, FILE_ATTRIBUTE_REPARSE_POINT, FILE_NAME_INDEX_PRESENT, NAMESPACE_DOS};
use record::{
    parse_attribute_list, parse_record, u16_at, u32_at, u64_at, RawAttribute, RawBody, Run,
    ATTR_ATTRIBUTE_LIST, ATTR_DATA, ATTR_INDEX_ALLOCATION, ATTR_INDEX_ROOT, ATTR_REPARSE_POINT,
    ATTR_VOLUME_INFORMATION, ATTR_VOLUME_NAME, FLAG_COMPRESSED, FLAG_ENCRYPTED, RECORD_DIRECTORY,
    RECORD_IN_USE, RUN_LIMIT,
};

use super::ReadAt;
use crate::evidence::Evidence;

/// The largest file read into memory from an image: more than any hive or PE file (a hive's
/// format ends at 4 GiB, real ones are far smaller).
pub const FILE_LIMIT: u64 = 2 << 30;
/// The largest `$ATTRIBUTE_LIST` read (real ones are a few KiB; one entry per extent).
const ATTRIBUTE_LIST_LIMIT: u64 = 4 << 20;
/// Extension records read for one file.
const EXTENSION_LIMIT: usize = 1 << 16;
/// Depth of a directory's B-tree (real ones are 2 to 4 deep).
const INDEX_DEPTH_LIMIT: usize = 32;

pub const ROOT_RECORD: u64 = 5;
/// The MFT record of `$UpCase`, the volume's table of upper-case letters.
pub const UPCASE_RECORD: u64 = 10;
const VOLUME_RECORD: u64 = 3;
const LOGFILE_RECORD: u64 = 2;

pub const REPARSE_TAG_MOUNT_POINT: u32 = 0xa000_0003;
pub const REPARSE_TAG_SYMLINK: u32 = 0xa000_000c;
pub const REPARSE_TAG_WOF: u32 = 0x8000_0017;

/// Why NTFS cannot be read, or one of its structures.
#[derive(Debug, Error)]
pub enum NtfsError {
    #[error("not an NTFS volume: {found}")]
    NotNtfs { found: String },
    #[error("the NTFS boot sector is invalid: {why}")]
    BootSector { why: String },
    #[error("{what} (at byte {offset} of the volume) is damaged: {why}")]
    Damaged {
        what: String,
        offset: u64,
        why: String,
    },
    #[error("cannot read {what} at byte {offset} of the volume: {source}")]
    Io {
        what: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("{what} is {size} bytes, more than the {limit} read from an image")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{what}: {why}")]
    Unsupported { what: String, why: String },
    #[error(
        "MFT record {record} is not in use (or is reused: sequence {found}, expected {expected})"
    )]
    Stale {
        record: u64,
        found: u16,
        expected: u16,
    },
}

impl From<NtfsError> for io::Error {
    fn from(err: NtfsError) -> io::Error {
        let kind = match &err {
            NtfsError::Stale { .. } => io::ErrorKind::NotFound,
            NtfsError::Unsupported { .. } => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

/// What the volume says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    /// NTFS version, e.g. 3.1.
    pub version: (u8, u8),
    pub serial: u64,
    pub label: String,
    /// The volume's dirty flag: Windows did not finish with it (or chkdsk is due).
    pub dirty: bool,
    /// `$LogFile` holds a restart area with clients in use: changes not yet checkpointed.
    pub log_unclean: bool,
    pub cluster_size: u32,
    pub record_size: u32,
    pub size: u64,
}

/// One attribute of a file, its extents merged.
#[derive(Clone, Debug)]
pub struct Attribute {
    pub kind: u32,
    pub name: Vec<u16>,
    pub flags: u16,
    data: Data,
}

#[derive(Clone, Debug)]
enum Data {
    Resident(Vec<u8>),
    NonResident {
        data_size: u64,
        initialized_size: u64,
        /// log2 of the compression unit in clusters; 0 when not compressed.
        compression_unit: u8,
        runs: Vec<Run>,
    },
}

impl Attribute {
    /// The stream's length in bytes.
    pub fn size(&self) -> u64 {
        match &self.data {
            Data::Resident(bytes) => bytes.len() as u64,
            Data::NonResident { data_size, .. } => *data_size,
        }
    }

    fn is_named(&self, name: &str) -> bool {
        self.name.iter().copied().eq(name.encode_utf16())
    }
}

/// A file record with its attributes, from the base record and every extension record its
/// attribute list names.
#[derive(Clone, Debug)]
pub struct File {
    pub number: u64,
    pub sequence: u16,
    flags: u16,
    attributes: Vec<Attribute>,
}

impl File {
    pub fn is_directory(&self) -> bool {
        self.flags & RECORD_DIRECTORY != 0
    }

    /// The first attribute of `kind` named `name` (`""`: unnamed).
    pub fn attribute(&self, kind: u32, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.kind == kind && a.is_named(name))
    }

    /// The unnamed data stream.
    pub fn data(&self) -> Option<&Attribute> {
        self.attribute(ATTR_DATA, "")
    }

    /// The reparse point's tag and data, when the file is one.
    pub fn reparse(&self) -> Option<(u32, Vec<u8>)> {
        let attr = self.attribute(ATTR_REPARSE_POINT, "")?;
        let Data::Resident(bytes) = &attr.data else {
            return None;
        };
        let tag = u32_at(bytes, 0)?;
        let len = usize::from(u16_at(bytes, 4)?);
        Some((tag, bytes.get(8..8 + len)?.to_vec()))
    }
}

/// An NTFS volume read from `reader`.
pub struct Ntfs {
    reader: Arc<dyn ReadAt>,
    cluster_size: u64,
    record_size: u64,
    mft: Attribute,
    pub info: VolumeInfo,
}

impl std::fmt::Debug for Ntfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ntfs").field("info", &self.info).finish()
    }
}

impl Ntfs {
    /// Reads the boot sector and the MFT's own record; fails when the volume is not NTFS or
    /// these cannot be read.
    pub fn open(reader: Arc<dyn ReadAt>) -> Result<Ntfs, NtfsError> {
        let mut boot = [0u8; 512];
        reader
            .read_exact_at(&mut boot, 0)
            .map_err(|source| NtfsError::Io {
                what: "the boot sector".into(),
                offset: 0,
                source,
            })?;
        if &boot[3..11] != b"NTFS    " {
            let found = if &boot[3..11] == b"-FVE-FS-" {
                "a BitLocker-encrypted volume (signature -FVE-FS-): unlock it and image the unlocked volume, or mount it and pass the directory".to_string()
            } else {
                format!(
                    "the boot sector's OEM name is {:?}",
                    String::from_utf8_lossy(&boot[3..11])
                )
            };
            return Err(NtfsError::NotNtfs { found });
        }
        let bad = |why: String| NtfsError::BootSector { why };
        let sector = u64::from(u16_at(&boot, 11).unwrap_or(0));
        if !(256..=4096).contains(&sector) || !sector.is_power_of_two() {
            return Err(bad(format!("{sector} bytes per sector")));
        }
        // Sectors per cluster: above 0x80 a negative power of two (clusters over 64 KiB).
        let spc = boot[13];
        let cluster_size = if spc <= 0x80 {
            u64::from(spc) * sector
        } else {
            1u64.checked_shl(256 - u32::from(spc)).unwrap_or(0)
        };
        if cluster_size == 0 || cluster_size > 2 << 20 || !cluster_size.is_power_of_two() {
            return Err(bad(format!("sectors per cluster byte {spc:#x}")));
        }
        let size_field = |byte: u8| -> Option<u64> {
            let v = byte as i8;
            if v > 0 {
                Some(u64::from(v as u8) * cluster_size)
            } else {
                1u64.checked_shl(u32::from(v.unsigned_abs()))
            }
        };
        let record_size = size_field(boot[0x40])
            .filter(|s| (1024..=65536).contains(s) && s.is_power_of_two())
            .ok_or_else(|| bad(format!("MFT record size byte {:#x}", boot[0x40])))?;
        let total_sectors = u64_at(&boot, 0x28).unwrap_or(0);
        let mft_lcn = u64_at(&boot, 0x30).unwrap_or(0);
        let serial = u64_at(&boot, 0x48).unwrap_or(0);
        let size = total_sectors.saturating_mul(sector);
        let mft_offset = mft_lcn
            .checked_mul(cluster_size)
            .filter(|o| {
                o.checked_add(record_size)
                    .is_some_and(|e| e <= reader.len())
            })
            .ok_or_else(|| {
                bad(format!(
                    "the MFT's cluster {mft_lcn} is past the volume's end"
                ))
            })?;

        // Record 0 from where the boot sector says; its $DATA (first extent) maps the rest.
        let mut buf = vec![0u8; record_size as usize];
        read(&*reader, &mut buf, mft_offset, "MFT record 0")?;
        let raw = parse_record(buf, 0, mft_offset)?;
        let first = raw
            .attributes
            .iter()
            .find(|a| a.kind == ATTR_DATA && a.name.is_empty())
            .ok_or_else(|| NtfsError::Damaged {
                what: "MFT record 0".into(),
                offset: mft_offset,
                why: "it has no $DATA attribute in its base record".into(),
            })?;
        let mut ntfs = Ntfs {
            reader,
            cluster_size,
            record_size,
            mft: merge(vec![first.clone()]).remove(0),
            info: VolumeInfo {
                version: (0, 0),
                serial,
                label: String::new(),
                dirty: false,
                log_unclean: false,
                cluster_size: cluster_size as u32,
                record_size: record_size as u32,
                size,
            },
        };
        // A fragmented MFT: its further extents are in extension records that the first
        // extent holds (Windows keeps them there so that this bootstrap works).
        if raw.attributes.iter().any(|a| a.kind == ATTR_ATTRIBUTE_LIST) {
            let file = ntfs.assemble(0, raw)?;
            if let Some(data) = file.data() {
                ntfs.mft = data.clone();
            }
        }
        ntfs.read_volume_state();
        Ok(ntfs)
    }

    fn read_volume_state(&mut self) {
        if let Ok(volume) = self.file(VOLUME_RECORD) {
            if let Some(Data::Resident(info)) = volume
                .attribute(ATTR_VOLUME_INFORMATION, "")
                .map(|a| &a.data)
            {
                if info.len() >= 12 {
                    self.info.version = (info[8], info[9]);
                    self.info.dirty = u16_at(info, 10).unwrap_or(0) & 1 != 0;
                }
            }
            if let Some(Data::Resident(name)) =
                volume.attribute(ATTR_VOLUME_NAME, "").map(|a| &a.data)
            {
                self.info.label = utf16(name);
            }
        }
        self.info.log_unclean = self.log_unclean().unwrap_or(false);
    }

    /// Whether `$LogFile`'s restart area has log clients in use and is not marked clean.
    fn log_unclean(&self) -> Result<bool, NtfsError> {
        let log = self.file(LOGFILE_RECORD)?;
        let data = log.data().ok_or_else(|| NtfsError::Unsupported {
            what: "$LogFile".into(),
            why: "no data".into(),
        })?;
        let mut page = vec![0u8; 4096.min(data.size()) as usize];
        self.read_stream(data, 0, &mut page, "$LogFile")?;
        if page.get(..4) != Some(b"RSTR") {
            // Empty (all 0xff, as mkntfs and chkdsk leave it) or not a restart page.
            return Ok(false);
        }
        let page_size = u32_at(&page, 16).unwrap_or(4096) as usize;
        if page_size != page.len() {
            return Ok(false);
        }
        record::apply_fixups(&mut page, b"RSTR", "$LogFile restart page", 0)?;
        let area = usize::from(u16_at(&page, 24).unwrap_or(0));
        let in_use = u16_at(&page, area + 12).unwrap_or(0xffff);
        let flags = u16_at(&page, area + 14).unwrap_or(0);
        Ok(in_use != 0xffff && flags & 0x0002 == 0)
    }

    pub fn cluster_size(&self) -> u64 {
        self.cluster_size
    }

    /// The base record `number` with its attributes merged (attribute lists followed).
    pub fn file(&self, number: u64) -> Result<File, NtfsError> {
        let raw = self.raw_record(number)?;
        if raw.flags & RECORD_IN_USE == 0 {
            return Err(NtfsError::Stale {
                record: number,
                found: raw.sequence,
                expected: raw.sequence,
            });
        }
        if raw.base != 0 {
            return Err(NtfsError::Damaged {
                what: format!("MFT record {number}"),
                offset: 0,
                why: format!("it is an extension of record {}, not a file", raw.base),
            });
        }
        self.assemble(number, raw)
    }

    /// [`Ntfs::file`] for a reference from an index: the record's sequence must match, or the
    /// entry is stale (the file was deleted and its record reused).
    pub fn file_by_reference(&self, number: u64, sequence: u16) -> Result<File, NtfsError> {
        let file = self.file(number)?;
        if sequence != 0 && file.sequence != sequence {
            return Err(NtfsError::Stale {
                record: number,
                found: file.sequence,
                expected: sequence,
            });
        }
        Ok(file)
    }

    fn raw_record(&self, number: u64) -> Result<record::RawRecord, NtfsError> {
        let offset = number
            .checked_mul(self.record_size)
            .filter(|o| {
                o.checked_add(self.record_size)
                    .is_some_and(|e| e <= self.mft.size())
            })
            .ok_or_else(|| NtfsError::Damaged {
                what: format!("MFT record {number}"),
                offset: 0,
                why: format!("it is past the MFT's end ({} bytes)", self.mft.size()),
            })?;
        let mut buf = vec![0u8; self.record_size as usize];
        let what = format!("MFT record {number}");
        self.read_stream(&self.mft, offset, &mut buf, &what)?;
        parse_record(buf, number, offset)
    }

    /// The attributes of a base record and of the extension records its list names.
    fn assemble(&self, number: u64, base: record::RawRecord) -> Result<File, NtfsError> {
        let sequence = base.sequence;
        let flags = base.flags;
        let Some(list) = base
            .attributes
            .iter()
            .find(|a| a.kind == ATTR_ATTRIBUTE_LIST)
        else {
            return Ok(File {
                number,
                sequence,
                flags,
                attributes: merge(base.attributes),
            });
        };
        let what = format!("the attribute list of MFT record {number}");
        let bytes = match &list.body {
            RawBody::Resident(bytes) => bytes.clone(),
            RawBody::NonResident { .. } => {
                let attr = merge(vec![list.clone()]).remove(0);
                if attr.size() > ATTRIBUTE_LIST_LIMIT {
                    return Err(NtfsError::TooLarge {
                        what,
                        size: attr.size(),
                        limit: ATTRIBUTE_LIST_LIMIT,
                    });
                }
                let mut bytes = vec![0u8; attr.size() as usize];
                self.read_stream(&attr, 0, &mut bytes, &what)?;
                bytes
            }
        };
        let entries = parse_attribute_list(&bytes).map_err(|why| NtfsError::Damaged {
            what: what.clone(),
            offset: 0,
            why,
        })?;
        let mut records: Vec<(u64, Vec<RawAttribute>)> = vec![(number, base.attributes)];
        let mut attributes = Vec::new();
        for entry in &entries {
            if !records.iter().any(|(n, _)| *n == entry.record) {
                if records.len() > EXTENSION_LIMIT {
                    return Err(NtfsError::TooLarge {
                        what,
                        size: records.len() as u64,
                        limit: EXTENSION_LIMIT as u64,
                    });
                }
                let raw = self.raw_record(entry.record)?;
                if raw.base != number || raw.flags & RECORD_IN_USE == 0 {
                    return Err(NtfsError::Damaged {
                        what: what.clone(),
                        offset: 0,
                        why: format!(
                            "it names record {} as an extension, which belongs to record {}",
                            entry.record, raw.base
                        ),
                    });
                }
                records.push((entry.record, raw.attributes));
            }
            let (_, held) = records
                .iter()
                .find(|(n, _)| *n == entry.record)
                .expect("pushed");
            let found = held.iter().find(|a| {
                a.kind == entry.kind && a.name == entry.name && a.instance == entry.instance
            });
            match found {
                Some(attr) if attr.kind != ATTR_ATTRIBUTE_LIST => attributes.push(attr.clone()),
                Some(_) => {}
                None => {
                    return Err(NtfsError::Damaged {
                        what: what.clone(),
                        offset: 0,
                        why: format!(
                            "attribute {:#x} instance {} is not in record {}",
                            entry.kind, entry.instance, entry.record
                        ),
                    })
                }
            }
        }
        Ok(File {
            number,
            sequence,
            flags,
            attributes: merge(attributes),
        })
    }

    /// Reads `buf.len()` bytes of a stream from `offset`: sparse runs and bytes past the valid
    /// data length as zeros, compression units decoded.
    pub fn read_stream(
        &self,
        attr: &Attribute,
        offset: u64,
        buf: &mut [u8],
        what: &str,
    ) -> Result<(), NtfsError> {
        let end = offset + buf.len() as u64;
        if end > attr.size() {
            return Err(NtfsError::Damaged {
                what: what.to_string(),
                offset,
                why: format!(
                    "read to byte {end} past the stream's end ({} bytes)",
                    attr.size()
                ),
            });
        }
        match &attr.data {
            Data::Resident(bytes) => {
                buf.copy_from_slice(&bytes[offset as usize..end as usize]);
            }
            Data::NonResident {
                initialized_size,
                compression_unit,
                runs,
                ..
            } => {
                if attr.flags & FLAG_ENCRYPTED != 0 {
                    return Err(NtfsError::Unsupported {
                        what: what.to_string(),
                        why: "the file is encrypted (EFS), which cannot be read offline".into(),
                    });
                }
                if attr.flags & FLAG_COMPRESSED != 0 && *compression_unit != 0 {
                    self.read_compressed(runs, *compression_unit, offset, buf, what)?;
                } else {
                    self.read_runs(runs, offset, buf, what)?;
                }
                // Past the valid data length Windows returns zeros, whatever the clusters hold.
                if end > *initialized_size {
                    let from = (initialized_size.saturating_sub(offset) as usize).min(buf.len());
                    buf[from..].fill(0);
                }
            }
        }
        Ok(())
    }

    /// A file's unnamed stream as evidence shown as `path`: mapped where it lies when it is
    /// stored plainly, valid to its end (most files; see [`Ntfs::pieces`]), read into memory
    /// otherwise; refused above `limit`.
    pub fn read_file(
        &self,
        attr: &Attribute,
        limit: u64,
        path: &std::path::Path,
    ) -> Result<Evidence, NtfsError> {
        let what = path.display().to_string();
        let size = attr.size();
        if size > limit {
            return Err(NtfsError::TooLarge { what, size, limit });
        }
        if let Some(pieces) = self.pieces(attr) {
            // A device that cannot be mapped (Windows' \\.\PhysicalDriveN) is read.
            if let Some(Ok(mapped)) = self.reader.map_pieces(&pieces, path) {
                return Ok(mapped);
            }
        }
        Evidence::from_filled(path.to_path_buf(), size as usize, |buf| {
            self.read_stream(attr, 0, buf, &what)
                .map_err(io::Error::from)
        })
        .map_err(|source| NtfsError::Io {
            what: what.clone(),
            offset: 0,
            source,
        })
    }

    /// Where a stream's bytes lie, in order, when they can be taken as they are stored: not
    /// compressed or encrypted, valid to the end (no zeros past the initialized size to
    /// supply), its runs covering it from VCN 0 without a gap. Neighbouring runs that are
    /// contiguous on disk (or both sparse) are one piece.
    fn pieces(&self, attr: &Attribute) -> Option<Vec<crate::evidence::Piece>> {
        use crate::evidence::Piece;
        let Data::NonResident {
            initialized_size,
            runs,
            ..
        } = &attr.data
        else {
            return None;
        };
        let size = attr.size();
        if attr.flags & (FLAG_COMPRESSED | FLAG_ENCRYPTED) != 0 || *initialized_size != size {
            return None;
        }
        let mut pieces: Vec<Piece> = Vec::new();
        let mut at = 0u64;
        for run in runs {
            if at == size {
                break;
            }
            if run.vcn.checked_mul(self.cluster_size)? != at {
                return None;
            }
            let len = run.len.checked_mul(self.cluster_size)?.min(size - at);
            let offset = match run.lcn {
                Some(lcn) => Some(lcn.checked_mul(self.cluster_size)?),
                None => None,
            };
            match pieces.last_mut() {
                Some(last)
                    if match (last.offset, offset) {
                        (Some(a), Some(b)) => a.checked_add(last.len) == Some(b),
                        (None, None) => true,
                        _ => false,
                    } =>
                {
                    last.len += len
                }
                _ => pieces.push(Piece { offset, len }),
            }
            at += len;
        }
        (at == size).then_some(pieces)
    }

    /// The volume's `$UpCase` table, as UTF-16 units (65,536 on every volume Windows or
    /// mkntfs formats; the caller checks).
    pub fn upcase_table(&self) -> Result<Vec<u16>, NtfsError> {
        let file = self.file(UPCASE_RECORD)?;
        let data = file.data().ok_or_else(|| NtfsError::Damaged {
            what: "$UpCase".to_string(),
            offset: 0,
            why: "it has no data".to_string(),
        })?;
        let bytes = self.read_all(data, 2 * 0x10000, "$UpCase")?;
        Ok(bytes
            .chunks_exact(2)
            .map(|unit| u16::from_le_bytes([unit[0], unit[1]]))
            .collect())
    }

    /// A whole stream into memory, refused above `limit`.
    pub fn read_all(&self, attr: &Attribute, limit: u64, what: &str) -> Result<Vec<u8>, NtfsError> {
        if attr.size() > limit {
            return Err(NtfsError::TooLarge {
                what: what.to_string(),
                size: attr.size(),
                limit,
            });
        }
        let mut buf = vec![0u8; attr.size() as usize];
        self.read_stream(attr, 0, &mut buf, what)?;
        Ok(buf)
    }

    fn read_runs(
        &self,
        runs: &[Run],
        offset: u64,
        buf: &mut [u8],
        what: &str,
    ) -> Result<(), NtfsError> {
        let cs = self.cluster_size;
        let mut pos = 0usize;
        while pos < buf.len() {
            let at = offset + pos as u64;
            let vcn = at / cs;
            let index = runs.partition_point(|r| r.vcn + r.len <= vcn);
            let run =
                runs.get(index)
                    .filter(|r| r.vcn <= vcn)
                    .ok_or_else(|| NtfsError::Damaged {
                        what: what.to_string(),
                        offset: at,
                        why: format!("no run maps virtual cluster {vcn}"),
                    })?;
            let run_end = (run.vcn + run.len) * cs;
            let n = ((run_end - at) as usize).min(buf.len() - pos);
            match run.lcn {
                None => buf[pos..pos + n].fill(0),
                Some(lcn) => {
                    let disk = lcn * cs + (at - run.vcn * cs);
                    read(&*self.reader, &mut buf[pos..pos + n], disk, what)?;
                }
            }
            pos += n;
        }
        Ok(())
    }

    fn read_compressed(
        &self,
        runs: &[Run],
        unit_log: u8,
        offset: u64,
        buf: &mut [u8],
        what: &str,
    ) -> Result<(), NtfsError> {
        let cs = self.cluster_size;
        if unit_log > 8 {
            return Err(NtfsError::Unsupported {
                what: what.to_string(),
                why: format!("compression unit of 2^{unit_log} clusters"),
            });
        }
        let unit_clusters = 1u64 << unit_log;
        let unit_bytes = unit_clusters * cs;
        let mut unit = vec![0u8; unit_bytes as usize];
        let end = offset + buf.len() as u64;
        let mut u = offset / unit_bytes;
        while u * unit_bytes < end {
            self.decode_unit(runs, u, unit_clusters, &mut unit, what)?;
            let unit_start = u * unit_bytes;
            let from = offset.max(unit_start);
            let to = end.min(unit_start + unit_bytes);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&unit[(from - unit_start) as usize..(to - unit_start) as usize]);
            u += 1;
        }
        Ok(())
    }

    /// One compression unit: all sparse reads as zeros, fully allocated is stored as is, and
    /// partly allocated holds LZNT1 data in its allocated clusters.
    fn decode_unit(
        &self,
        runs: &[Run],
        u: u64,
        unit_clusters: u64,
        out: &mut [u8],
        what: &str,
    ) -> Result<(), NtfsError> {
        let cs = self.cluster_size;
        let first = u * unit_clusters;
        let last = first + unit_clusters;
        let mut pieces = Vec::new();
        let mut allocated = 0;
        let start = runs.partition_point(|r| r.vcn + r.len <= first);
        for run in runs[start..].iter().take_while(|r| r.vcn < last) {
            let from = run.vcn.max(first);
            let to = (run.vcn + run.len).min(last);
            if let Some(lcn) = run.lcn {
                pieces.push((lcn + (from - run.vcn), to - from));
                allocated += to - from;
            }
        }
        out.fill(0);
        if allocated == 0 {
            return Ok(());
        }
        let mut stored = vec![0u8; (allocated * cs) as usize];
        let mut at = 0usize;
        for (lcn, len) in pieces {
            let n = (len * cs) as usize;
            read(&*self.reader, &mut stored[at..at + n], lcn * cs, what)?;
            at += n;
        }
        if allocated >= unit_clusters {
            out.copy_from_slice(&stored[..out.len()]);
            return Ok(());
        }
        lznt1::decompress(&stored, out).map_err(|e| NtfsError::Damaged {
            what: what.to_string(),
            offset: first * cs,
            why: format!("compression unit {u}: {e}"),
        })?;
        Ok(())
    }

    /// The bytes of a WOF-compressed file (CompactOS): `size` bytes (its unnamed stream's
    /// length) decoded chunk by chunk from its `WofCompressedData` stream, by the algorithm its
    /// reparse data names. The chunk table is checked against the stream before anything is
    /// allocated from it.
    pub fn read_wof(
        &self,
        size: u64,
        compressed: &Attribute,
        reparse: &[u8],
        what: &str,
    ) -> Result<Vec<u8>, NtfsError> {
        let damaged = |e: wof::WofError| NtfsError::Damaged {
            what: format!("{what} (WOF-compressed)"),
            offset: 0,
            why: e.to_string(),
        };
        let algorithm = wof::parse_wof_reparse(reparse).map_err(|e| NtfsError::Unsupported {
            what: what.to_string(),
            why: format!("a WOF reparse point that cannot be decoded offline: {e}"),
        })?;
        if size > FILE_LIMIT {
            return Err(NtfsError::TooLarge {
                what: what.to_string(),
                size,
                limit: FILE_LIMIT,
            });
        }
        let stream = compressed.size();
        let table_len =
            wof::ChunkTable::table_len_checked(algorithm, size, stream).map_err(damaged)?;
        let mut table = vec![0u8; table_len as usize];
        self.read_stream(compressed, 0, &mut table, what)?;
        let chunks = wof::ChunkTable::parse(algorithm, size, stream, &table).map_err(damaged)?;
        let mut out = vec![0u8; size as usize];
        let mut stored = Vec::new();
        for index in 0..chunks.chunk_count() {
            let (start, end) = chunks.chunk_range(index).unwrap_or((0, 0));
            stored.resize((end - start) as usize, 0);
            self.read_stream(compressed, start, &mut stored, what)?;
            let at = chunks.uncompressed_offset(index) as usize;
            let len = chunks.uncompressed_len(index);
            chunks
                .decode_chunk(index, &stored, &mut out[at..at + len])
                .map_err(damaged)?;
        }
        Ok(out)
    }

    /// The names in the directory `dir`, in index order (DOS names included, marked by their
    /// namespace).
    pub fn list(&self, dir: &File) -> Result<Vec<IndexEntry>, NtfsError> {
        let what = format!("the index of MFT record {}", dir.number);
        let root = match dir.attribute(ATTR_INDEX_ROOT, "$I30").map(|a| &a.data) {
            Some(Data::Resident(bytes)) => bytes,
            _ => {
                return Err(NtfsError::Damaged {
                    what,
                    offset: 0,
                    why: "it has no $I30 index root".into(),
                })
            }
        };
        let block_size = u64::from(u32_at(root, 8).unwrap_or(0));
        let node = index::parse_node(root, 16, &what, 0)?;
        let allocation = dir.attribute(ATTR_INDEX_ALLOCATION, "$I30");
        let mut walk = IndexWalk {
            ntfs: self,
            allocation,
            block_size,
            what: &what,
            visited: HashSet::new(),
            entries: Vec::new(),
        };
        walk.node(node, 0)?;
        Ok(walk.entries)
    }
}

struct IndexWalk<'a> {
    ntfs: &'a Ntfs,
    allocation: Option<&'a Attribute>,
    block_size: u64,
    what: &'a str,
    visited: HashSet<u64>,
    entries: Vec<IndexEntry>,
}

impl IndexWalk<'_> {
    fn node(&mut self, node: index::Node, depth: usize) -> Result<(), NtfsError> {
        for item in node.items {
            match item {
                index::NodeItem::Entry(entry) => self.entries.push(entry),
                index::NodeItem::Child(vcn) => {
                    let damaged = |why: String| NtfsError::Damaged {
                        what: self.what.to_string(),
                        offset: 0,
                        why,
                    };
                    if depth >= INDEX_DEPTH_LIMIT {
                        return Err(damaged(format!("deeper than {INDEX_DEPTH_LIMIT} levels")));
                    }
                    if !self.visited.insert(vcn) {
                        return Err(damaged(format!("block {vcn} is reached twice (a loop)")));
                    }
                    let allocation = self
                        .allocation
                        .ok_or_else(|| damaged("a sub-node without $INDEX_ALLOCATION".into()))?;
                    if !(512..=65536).contains(&self.block_size) {
                        return Err(damaged(format!(
                            "index blocks of {} bytes",
                            self.block_size
                        )));
                    }
                    // VCNs count clusters, or 512-byte units when blocks are smaller.
                    let unit = if self.block_size >= self.ntfs.cluster_size {
                        self.ntfs.cluster_size
                    } else {
                        512
                    };
                    let offset = vcn
                        .checked_mul(unit)
                        .filter(|o| {
                            o.checked_add(self.block_size)
                                .is_some_and(|e| e <= allocation.size())
                        })
                        .ok_or_else(|| {
                            damaged(format!(
                                "block {vcn} is past the index's end ({} bytes)",
                                allocation.size()
                            ))
                        })?;
                    let mut buf = vec![0u8; self.block_size as usize];
                    self.ntfs
                        .read_stream(allocation, offset, &mut buf, self.what)?;
                    let child = index::parse_block(buf, self.what, offset)?;
                    self.node(child, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// Joins the extents of each non-resident attribute (same type and name) into one, ordered by
/// starting VCN; sizes come from the first extent (VCN 0), as NTFS keeps them there.
fn merge(raw: Vec<RawAttribute>) -> Vec<Attribute> {
    let mut merged: Vec<Attribute> = Vec::new();
    let mut extents: Vec<RawAttribute> = Vec::new();
    for attr in raw {
        match attr.body {
            RawBody::Resident(bytes) => merged.push(Attribute {
                kind: attr.kind,
                name: attr.name,
                flags: attr.flags,
                data: Data::Resident(bytes),
            }),
            RawBody::NonResident { .. } => extents.push(attr),
        }
    }
    extents.sort_by_key(|a| match a.body {
        RawBody::NonResident { lowest_vcn, .. } => lowest_vcn,
        RawBody::Resident(_) => 0,
    });
    for extent in extents {
        let RawBody::NonResident {
            lowest_vcn,
            compression_unit,
            data_size,
            initialized_size,
            runs,
            ..
        } = extent.body
        else {
            continue;
        };
        let existing = merged.iter_mut().find(|m| {
            m.kind == extent.kind
                && m.name == extent.name
                && matches!(m.data, Data::NonResident { .. })
        });
        match existing {
            Some(Attribute {
                data: Data::NonResident { runs: all, .. },
                ..
            }) if lowest_vcn != 0 => {
                if all.len() + runs.len() <= RUN_LIMIT {
                    all.extend(runs);
                }
            }
            _ => merged.push(Attribute {
                kind: extent.kind,
                name: extent.name,
                flags: extent.flags,
                data: Data::NonResident {
                    data_size,
                    initialized_size: initialized_size.min(data_size),
                    compression_unit,
                    runs,
                },
            }),
        }
    }
    merged
}

fn read(reader: &dyn ReadAt, buf: &mut [u8], offset: u64, what: &str) -> Result<(), NtfsError> {
    reader
        .read_exact_at(buf, offset)
        .map_err(|source| NtfsError::Io {
            what: what.to_string(),
            offset,
            source,
        })
}

/// UTF-16LE bytes as text, lossy.
fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}
