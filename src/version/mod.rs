//! Version: the version resource of a PE file.
//!
//! pelite finds the `RT_VERSION` resource (PE32 and PE32+). The `VS_VERSIONINFO` block itself
//! is read by [`version_info`], not by pelite's walker: that walker panics on malformed blocks
//! (found by fuzzing), and its `VS_VERSION` ordering compares the minor part before the major.
//! Versions here compare as (major, minor, build, revision), as SetupAPI does.

mod version_info;

use std::fmt;
use std::str::FromStr;

use pelite::resources::{FindError, Name};
use pelite::Wrap;
use serde::{Serialize, Serializer};

pub use version_info::{parse_version_info, ResourceProblem, VersionResource};

/// A four-part binary version from `VS_FIXEDFILEINFO`. Ordering is numeric, part by part,
/// major first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileVersion {
    pub major: u16,
    pub minor: u16,
    pub build: u16,
    pub revision: u16,
}

impl FileVersion {
    pub fn from_ms_ls(ms: u32, ls: u32) -> FileVersion {
        FileVersion {
            major: (ms >> 16) as u16,
            minor: ms as u16,
            build: (ls >> 16) as u16,
            revision: ls as u16,
        }
    }
}

impl fmt::Display for FileVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.build, self.revision
        )
    }
}

impl FromStr for FileVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<FileVersion, String> {
        let parts: Vec<u16> = text
            .split('.')
            .map(|part| part.trim().parse::<u16>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                format!("`{text}` is not a version of the form a.b.c.d (each 0 to 65535)")
            })?;
        let [major, minor, build, revision] = parts[..] else {
            return Err(format!("`{text}` does not have four parts (a.b.c.d)"));
        };
        Ok(FileVersion {
            major,
            minor,
            build,
            revision,
        })
    }
}

impl Serialize for FileVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PeFormat {
    #[serde(rename = "PE32")]
    Pe32,
    #[serde(rename = "PE32+")]
    Pe32Plus,
}

impl fmt::Display for PeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeFormat::Pe32 => "PE32",
            PeFormat::Pe32Plus => "PE32+",
        })
    }
}

/// What a PE file says about its version. `resource` is `None` for a valid PE without a
/// version resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeVersion {
    pub format: PeFormat,
    pub resource: Option<VersionResource>,
}

impl PeVersion {
    /// The binary file version, the one that is compared.
    pub fn file_version(&self) -> Option<FileVersion> {
        self.resource.as_ref().and_then(|r| r.file_version)
    }

    /// Why there is no comparable version, if there is none.
    pub fn unversioned_reason(&self) -> Option<String> {
        match &self.resource {
            None => Some("no version resource".into()),
            Some(resource) if resource.file_version.is_none() => {
                Some(resource.problem.as_ref().map_or_else(
                    || "the version resource has no VS_FIXEDFILEINFO".into(),
                    ToString::to_string,
                ))
            }
            Some(_) => None,
        }
    }
}

/// Why a file's version could not be read at all: it is not a PE, or its resources are
/// malformed, and what exactly. Serialised (`detail` of `nextboot version --format json`) as
/// `{error: not-pe|malformed, problem: KIND, ...}` with the problem's fields.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum VersionError {
    #[error("not a PE file: {0}")]
    NotPe(PeProblem),
    #[error("malformed PE resources: {0}")]
    Malformed(PeProblem),
}

/// What is wrong with a PE file, with the offsets and sizes involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum PeProblem {
    #[error("no MZ signature")]
    NoMz,
    #[error("the file ends inside its DOS header ({len} bytes)")]
    DosHeaderCut { len: usize },
    #[error("the DOS header points to a PE header at offset {offset:#x}, past the end of the {len}-byte file")]
    PeHeaderPastEnd { offset: usize, len: usize },
    #[error("no PE signature at offset {offset:#x} (an MS-DOS program, or damaged)")]
    NoPeSignature { offset: usize },
    #[error("the optional header magic is {magic:#06x}, neither PE32 (0x10b) nor PE32+ (0x20b)")]
    UnknownMagic { magic: u16 },
    #[error("the file is truncated: it is {len} bytes, but {what} ends at byte {end} (a copy cut short?)")]
    Truncated {
        len: usize,
        end: usize,
        what: &'static str,
    },
    #[error(
        "SizeOfOptionalHeader is {size}, not a multiple of 4, so the section table is misaligned"
    )]
    OddOptionalHeader { size: u16 },
    #[error("the resource directory is at file offset {offset:#x}, not a multiple of 4")]
    ResourceMisaligned { offset: usize },
    #[error("internal: image buffer is not 4-byte aligned")]
    BufferMisaligned,
    #[error("PE parser failed: {message}")]
    ParserPanicked { message: String },
    /// pelite's own words.
    #[error("{message}")]
    Parser { message: String },
}

/// Reads the version of a PE image held in `bytes` (which must be 4-byte aligned, as a
/// mapping is). Touches only the headers and the pages of the version resource.
pub fn read_pe_version(bytes: &[u8]) -> Result<PeVersion, VersionError> {
    let result = crate::guard::contain(|| read_unguarded(bytes)).unwrap_or_else(|panic| {
        Err(VersionError::Malformed(PeProblem::ParserPanicked {
            message: panic,
        }))
    });
    // pelite says "bounds check failed" or "invalid data" for a file cut short: say what is
    // actually wrong, keeping the kind of failure.
    result.map_err(|err| match (truncation(bytes), err) {
        (Some(why), VersionError::NotPe(_)) => VersionError::NotPe(why),
        (Some(why), VersionError::Malformed(_)) => VersionError::Malformed(why),
        (None, err) => err,
    })
}

/// Why a PE is cut short, if it is: the file ends before its headers, or before the raw data
/// its section table places in the file.
fn truncation(bytes: &[u8]) -> Option<PeProblem> {
    let nt = u32_at(bytes, 0x3c)? as usize;
    let u16_at = |at: usize| {
        bytes
            .get(at..at.checked_add(2)?)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let len = bytes.len();
    let cut = |end: usize, what: &'static str| PeProblem::Truncated { len, end, what };
    let file_header = nt.checked_add(24)?;
    // Without a PE signature, the file is not a cut PE (the other messages say what it is).
    if !bytes.get(nt..)?.starts_with(b"PE\0\0") {
        return None;
    }
    if len < file_header {
        return Some(cut(file_header, "its PE file header"));
    }
    let sections = usize::from(u16_at(nt + 6)?);
    let optional_size = usize::from(u16_at(nt + 20)?);
    let table = file_header.checked_add(optional_size)?;
    let table_end = table.checked_add(sections.checked_mul(40)?)?;
    if len < table_end {
        return Some(cut(table_end, "its section table"));
    }
    let data_end = (0..sections)
        .filter_map(|i| {
            let header = table + i * 40;
            let raw_size = u32_at(bytes, header + 16)? as usize;
            let raw_start = u32_at(bytes, header + 20)? as usize;
            (raw_size > 0)
                .then(|| raw_start.checked_add(raw_size))
                .flatten()
        })
        .max()?;
    (len < data_end).then(|| cut(data_end, "the raw data of its sections"))
}

fn read_unguarded(bytes: &[u8]) -> Result<PeVersion, VersionError> {
    if bytes.as_ptr() as usize % 4 != 0 {
        return Err(VersionError::Malformed(PeProblem::BufferMisaligned));
    }
    if !bytes.starts_with(b"MZ") {
        return Err(VersionError::NotPe(PeProblem::NoMz));
    }
    // pelite reads the NT headers through a reference to IMAGE_NT_HEADERS64, which needs
    // 8-byte alignment, while it checks (as the Windows loader requires) only that e_lfanew is
    // a multiple of 4. With e_lfanew = 4 mod 8 that reference is misaligned: undefined
    // behaviour, and an abort that no panic guard catches in a debug build (found by fuzzing).
    // And `Wrap` tries the 64-bit parser first, on PE32 files too. So choose the parser by the
    // optional header's magic, and give a PE32+ whose headers would be misaligned a copy that
    // starts 4 bytes into an 8-byte aligned buffer.
    let nt_offset = u32_at(bytes, 0x3c).map(|offset| offset as usize);
    let magic = nt_offset
        .and_then(|offset| offset.checked_add(24))
        .and_then(|at| bytes.get(at..at + 2))
        .map(|m| u16::from_le_bytes([m[0], m[1]]));
    let not_pe = |err: pelite::Error| {
        VersionError::NotPe(PeProblem::Parser {
            message: err.to_string(),
        })
    };
    let shifted;
    let file = match (magic, nt_offset) {
        (Some(PE32_MAGIC), _) => {
            Wrap::T32(pelite::pe32::PeFile::from_bytes(bytes).map_err(not_pe)?)
        }
        (Some(PE32_PLUS_MAGIC), Some(offset)) => {
            let image = if (bytes.as_ptr() as usize).wrapping_add(offset) % 8 == 0 {
                bytes
            } else {
                let mut copy = Vec::with_capacity(bytes.len() + 4);
                copy.extend_from_slice(&[0; 4]);
                copy.extend_from_slice(bytes);
                shifted = crate::evidence::Evidence::from_vec("shifted".into(), copy);
                &shifted[4..]
            };
            Wrap::T64(pelite::pe64::PeFile::from_bytes(image).map_err(not_pe)?)
        }
        _ => return Err(VersionError::NotPe(no_pe_header(bytes, nt_offset))),
    };
    let format = match file {
        Wrap::T32(_) => PeFormat::Pe32,
        Wrap::T64(_) => PeFormat::Pe32Plus,
    };
    // pelite makes a slice of section headers right after the optional header, whose size it
    // takes from the file without checking that it keeps them 4-byte aligned: an odd
    // SizeOfOptionalHeader makes that slice misaligned (found by fuzzing; an abort in a debug
    // build). Real files have 0xE0 (PE32) or 0xF0 (PE32+).
    let optional_size = file.file_header().SizeOfOptionalHeader;
    if optional_size % 4 != 0 {
        return Err(VersionError::Malformed(PeProblem::OddOptionalHeader {
            size: optional_size,
        }));
    }
    let resources = match file.resources() {
        Ok(resources) => resources,
        // No resource directory at all: a valid PE without a version.
        Err(pelite::Error::Null) => {
            return Ok(PeVersion {
                format,
                resource: None,
            })
        }
        Err(err) => {
            return Err(VersionError::Malformed(PeProblem::Parser {
                message: err.to_string(),
            }))
        }
    };
    // pelite checks the alignment of each resource structure relative to the start of the
    // resource data, then reads it through a reference: if that start is not 4-byte aligned
    // in memory (a resource directory at a file offset that is not a multiple of 4), every
    // reference is misaligned (found by fuzzing; an abort in a debug build). Real files have
    // their resource section at a multiple of the file alignment.
    let image_start = file.image().as_ptr() as usize;
    let section_start = file
        .data_directory()
        .get(pelite::image::IMAGE_DIRECTORY_ENTRY_RESOURCE)
        .and_then(|dir| file.slice_bytes(dir.VirtualAddress).ok())
        .map(|section| section.as_ptr() as usize);
    if let Some(start) = section_start.filter(|start| start % 4 != 0) {
        return Err(VersionError::Malformed(PeProblem::ResourceMisaligned {
            offset: start.wrapping_sub(image_start),
        }));
    }
    // The version resource is RT_VERSION, normally with id 1; take the first name and the
    // first language, as GetFileVersionInfo does when the user's language is not present.
    let malformed = |err: &dyn fmt::Display| {
        VersionError::Malformed(PeProblem::Parser {
            message: err.to_string(),
        })
    };
    let root = resources.root().map_err(|e| malformed(&e))?;
    let dir = match root.get_dir(Name::VERSION) {
        Ok(dir) => dir,
        Err(FindError::NotFound) => {
            return Ok(PeVersion {
                format,
                resource: None,
            })
        }
        Err(err) => return Err(malformed(&err)),
    };
    let bytes = dir
        .first_dir()
        .and_then(|names| names.first_data())
        .and_then(|entry| Ok(entry.bytes()?))
        .map_err(|e| malformed(&format_args!("version resource: {e}")))?;
    Ok(PeVersion {
        format,
        resource: Some(parse_version_info(bytes)),
    })
}

const PE32_MAGIC: u16 = 0x10b;
const PE32_PLUS_MAGIC: u16 = 0x20b;

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Why an MZ file has no PE32 or PE32+ header where its DOS header points.
fn no_pe_header(bytes: &[u8], nt_offset: Option<usize>) -> PeProblem {
    let Some(offset) = nt_offset else {
        return PeProblem::DosHeaderCut { len: bytes.len() };
    };
    match bytes.get(offset..offset.saturating_add(26)) {
        None => PeProblem::PeHeaderPastEnd {
            offset,
            len: bytes.len(),
        },
        Some(header) if !header.starts_with(b"PE\0\0") => PeProblem::NoPeSignature { offset },
        Some(header) => PeProblem::UnknownMagic {
            magic: u16::from_le_bytes([header[24], header[25]]),
        },
    }
}

/// The version facts of one file, for `nextboot version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionEntry {
    pub path: String,
    pub file_version: Option<FileVersion>,
    pub product_version: Option<FileVersion>,
    pub file_version_string: Option<String>,
    pub product_version_string: Option<String>,
    pub string_table: Option<String>,
    pub pe_format: Option<PeFormat>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// Why the file has no comparable version, when it is a readable PE without one.
    pub unversioned_reason: Option<String>,
    /// Why the file could not be read as a PE at all.
    pub error: Option<String>,
    /// The same, as fields (added by issue 13; absent when `error` is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<VersionError>,
    /// The file could not be opened or read (as opposed to read and found not to be a PE).
    #[serde(skip)]
    pub unreadable: bool,
}

/// Reads one file's version resource. Never fails: problems are in `error`.
pub fn examine(path: &std::path::Path, hash: bool) -> VersionEntry {
    let mut entry = VersionEntry {
        path: path.display().to_string(),
        file_version: None,
        product_version: None,
        file_version_string: None,
        product_version_string: None,
        string_table: None,
        pe_format: None,
        size: None,
        sha256: None,
        unversioned_reason: None,
        error: None,
        detail: None,
        unreadable: false,
    };
    let evidence = match crate::evidence::Evidence::open(path) {
        Ok(evidence) => evidence,
        Err(err) => {
            entry.error = Some(format!("cannot read the file: {err}"));
            entry.unreadable = true;
            return entry;
        }
    };
    entry.size = Some(evidence.len() as u64);
    if hash {
        entry.sha256 = Some(evidence.sha256());
    }
    match read_pe_version(&evidence) {
        Ok(pe) => {
            entry.pe_format = Some(pe.format);
            entry.unversioned_reason = pe.unversioned_reason();
            if let Some(resource) = pe.resource {
                entry.file_version = resource.file_version;
                entry.product_version = resource.product_version;
                entry.file_version_string = resource.file_version_string;
                entry.product_version_string = resource.product_version_string;
                entry.string_table = resource.string_table;
            }
        }
        Err(err) => {
            entry.error = Some(err.to_string());
            entry.detail = Some(err);
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_major_first() {
        let new: FileVersion = "10.0.19041.1".parse().unwrap();
        let old: FileVersion = "6.3.9600.20000".parse().unwrap();
        assert!(new > old);
        assert!("5.0.2195.7".parse::<FileVersion>().unwrap() > "5.0.2195.6".parse().unwrap());
        assert!("1.10.0.0".parse::<FileVersion>().unwrap() > "1.9.0.0".parse().unwrap());
    }

    #[test]
    fn ms_ls_split() {
        let v = FileVersion::from_ms_ls(0x000a_0000, 0x4a61_0001);
        assert_eq!(v.to_string(), "10.0.19041.1");
    }

    #[test]
    fn parse_rejects_non_versions() {
        assert!("1.2.3".parse::<FileVersion>().is_err());
        assert!("1.2.3.65536".parse::<FileVersion>().is_err());
        assert!("a.b.c.d".parse::<FileVersion>().is_err());
    }

    #[test]
    fn non_pe_input_is_an_error_not_a_panic() {
        let zeros = crate::evidence::Evidence::from_vec("zeros".into(), vec![0; 256]);
        assert!(matches!(
            read_pe_version(&zeros),
            Err(VersionError::NotPe(_))
        ));
        let mut bytes = vec![0; 256];
        bytes[..2].copy_from_slice(b"MZ");
        let mz = crate::evidence::Evidence::from_vec("mz".into(), bytes);
        assert!(read_pe_version(&mz).is_err());
    }
}
