//! Malformed inputs: each gives a clear per-file finding or exit status 2 with a diagnostic,
//! within a second, and never a panic.
//!
//! `testdata/malformed/` is written by [`corpus`] from the project's own fixtures (the PE files
//! in `testdata/pe/bin`, hives from the regf writer in `crates/regf-writer`), so every file
//! can be rebuilt and every mutation is described here: regenerate with
//! `NEXTBOOT_REGENERATE=1 cargo test --test malformed`.
//!
//! The real odd hives of `../shared/hives` that `tests/real_hives.rs` does not already cover
//! are pinned here too (skipped with a message when the folder is absent).

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::regf::{self, ZeroLengthData, REG_BINARY};
use support::{nextboot, pe, Scenario, SystemHiveSpec};

/// Each file is examined within a second (measured: under 20 ms each in a debug build).
const PER_FILE: Duration = Duration::from_secs(1);

fn malformed_dir() -> PathBuf {
    support::testdata().join("malformed")
}

// ---------------------------------------------------------------------------------------------
// PE files

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Where the parts of a well-formed fixture PE are, as file offsets.
struct PeLayout {
    nt: usize,
    sections: usize,
    section_table_end: usize,
    /// The resource directory (root).
    rsrc: usize,
    /// The name-level directory under RT_VERSION.
    name_dir: usize,
    /// The IMAGE_RESOURCE_DATA_ENTRY of the version resource.
    data_entry: usize,
    /// The VS_VERSIONINFO block.
    version: usize,
}

fn layout(b: &[u8]) -> PeLayout {
    let nt = u32_at(b, 0x3c) as usize;
    let count = u16_at(b, nt + 6) as usize;
    let optional = nt + 24;
    let sections = optional + u16_at(b, nt + 20) as usize;
    let data_dirs = optional
        + if u16_at(b, optional) == 0x20b {
            112
        } else {
            96
        };
    let rsrc_rva = u32_at(b, data_dirs + 2 * 8) as usize;
    let to_offset = |rva: usize| {
        (0..count)
            .map(|i| sections + 40 * i)
            .find_map(|s| {
                let va = u32_at(b, s + 12) as usize;
                let size = u32_at(b, s + 16) as usize;
                (va..va + size)
                    .contains(&rva)
                    .then(|| rva - va + u32_at(b, s + 20) as usize)
            })
            .expect("rva in a section")
    };
    let rsrc = to_offset(rsrc_rva);
    let entries = |dir: usize| {
        let n = u16_at(b, dir + 12) as usize + u16_at(b, dir + 14) as usize;
        (0..n).map(move |i| dir + 16 + 8 * i)
    };
    let version_entry = entries(rsrc)
        .find(|&e| u32_at(b, e) == 16)
        .expect("RT_VERSION");
    let name_dir = rsrc + (u32_at(b, version_entry + 4) & 0x7fff_ffff) as usize;
    let lang_dir = rsrc + (u32_at(b, entries(name_dir).next().unwrap() + 4) & 0x7fff_ffff) as usize;
    let data_entry = rsrc + u32_at(b, entries(lang_dir).next().unwrap() + 4) as usize;
    let version = to_offset(u32_at(b, data_entry) as usize);
    PeLayout {
        nt,
        sections,
        section_table_end: sections + 40 * count,
        rsrc,
        name_dir,
        data_entry,
        version,
    }
}

/// Offset of a UTF-16 key inside the version resource of `b`, minus the 6-byte block header:
/// the start of the block with that key.
fn version_block(b: &[u8], key: &str) -> usize {
    let needle: Vec<u8> = key.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let at = layout(b).version;
    at + b[at..]
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("key in the version resource")
        - 6
}

/// Moves the NT headers and the section table 4 bytes further into the header slack, so that
/// e_lfanew is 4 modulo 8: valid for the Windows loader, misaligned for a 64-bit reference.
fn shift_nt_headers(mut b: Vec<u8>) -> Vec<u8> {
    let l = layout(&b);
    assert!(
        l.section_table_end + 4 <= 0x400,
        "slack after the section table"
    );
    let headers = b[l.nt..l.section_table_end].to_vec();
    b[l.nt + 4..l.section_table_end + 4].copy_from_slice(&headers);
    put_u32(&mut b, 0x3c, (l.nt + 4) as u32);
    b
}

/// What a malformed PE must give.
#[derive(Clone, Copy, Debug)]
enum PeOutcome {
    /// `version` reports an error or an unversioned reason containing this; `check` gives the
    /// staged file the verdict `unversioned` with a reason containing it.
    Unversioned(&'static str),
    /// Still read correctly, with this file version (a tolerated oddity).
    Version(&'static str),
}

struct PeCase {
    name: &'static str,
    why: &'static str,
    bytes: Vec<u8>,
    outcome: PeOutcome,
}

fn pe_cases() -> Vec<PeCase> {
    use PeOutcome::*;
    let v8 = std::fs::read(pe("file_v8.dll")).expect("PE32+ fixture");
    let v7 = std::fs::read(pe("pe32_v7.dll")).expect("PE32 fixture");
    let l = layout(&v8);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = v8.clone();
        f(&mut b);
        b
    };
    let mut cases = vec![
        PeCase {
            name: "truncated_dos_header.dll",
            why: "cut inside the DOS header",
            bytes: v8[..40].to_vec(),
            outcome: Unversioned("ends inside its DOS header"),
        },
        PeCase {
            name: "truncated_nt_headers.dll",
            why: "cut inside the NT headers",
            bytes: v8[..l.nt + 40].to_vec(),
            outcome: Unversioned("not a PE file: the file is truncated"),
        },
        PeCase {
            name: "truncated_section_table.dll",
            why: "cut inside the section table",
            bytes: v8[..l.sections + 20].to_vec(),
            outcome: Unversioned("not a PE file: the file is truncated"),
        },
        PeCase {
            name: "truncated_resources.dll",
            why: "cut inside the resource directory",
            bytes: v8[..l.rsrc + 20].to_vec(),
            outcome: Unversioned("malformed PE resources: the file is truncated"),
        },
        PeCase {
            name: "truncated_version.dll",
            why: "cut inside VS_VERSIONINFO",
            bytes: v8[..l.version + 40].to_vec(),
            outcome: Unversioned("malformed PE resources: the file is truncated"),
        },
        PeCase {
            name: "resource_loop.dll",
            why: "the name directory under RT_VERSION names itself as its subdirectory",
            bytes: with(&|b| {
                let entry = l.name_dir + 16;
                put_u32(b, entry + 4, 0x8000_0000 | (l.name_dir - l.rsrc) as u32);
            }),
            outcome: Unversioned("malformed PE resources"),
        },
        PeCase {
            name: "resource_loop_root.dll",
            why: "RT_VERSION points back to the root resource directory",
            bytes: with(&|b| {
                let entry = (0..4)
                    .map(|i| l.rsrc + 16 + 8 * i)
                    .find(|&e| u32_at(b, e) == 16)
                    .unwrap();
                put_u32(b, entry + 4, 0x8000_0000);
            }),
            outcome: Unversioned("malformed PE resources"),
        },
        PeCase {
            name: "version_size_past_section.dll",
            why: "the version resource's data entry claims 2 GiB",
            bytes: with(&|b| put_u32(b, l.data_entry + 4, 0x7fff_fff0)),
            outcome: Unversioned("malformed PE resources"),
        },
        PeCase {
            name: "version_offset_past_section.dll",
            why: "the version resource's data entry points past its section",
            bytes: with(&|b| put_u32(b, l.data_entry, 0x7fff_0000)),
            outcome: Unversioned("malformed PE resources"),
        },
        PeCase {
            name: "version_length_past_end.dll",
            why: "VS_VERSIONINFO's wLength is 0xFFFF, past the resource's end (clamped)",
            bytes: with(&|b| put_u16(b, l.version, 0xffff)),
            outcome: Version("8.0.2195.6"),
        },
        PeCase {
            name: "version_value_length_past_end.dll",
            why: "VS_FIXEDFILEINFO's wValueLength is 0xFFFF (clamped to its block)",
            bytes: with(&|b| put_u16(b, l.version + 2, 0xffff)),
            outcome: Version("8.0.2195.6"),
        },
        PeCase {
            name: "version_zero_length.dll",
            why: "VS_VERSIONINFO's wLength is 0",
            bytes: with(&|b| put_u16(b, l.version, 0)),
            outcome: Unversioned("length 0"),
        },
        PeCase {
            name: "version_child_zero_length.dll",
            why: "StringFileInfo's wLength is 0: the walk stops there, the fixed version stays",
            bytes: with(&|b| {
                let sfi = version_block(b, "StringFileInfo");
                put_u16(b, sfi, 0);
            }),
            outcome: Version("8.0.2195.6"),
        },
        PeCase {
            name: "fixed_info_too_short.dll",
            why: "VS_FIXEDFILEINFO's wValueLength is 20, not 52",
            bytes: with(&|b| put_u16(b, l.version + 2, 20)),
            outcome: Unversioned("VS_FIXEDFILEINFO is 20 bytes"),
        },
        PeCase {
            name: "bad_fixed_signature.dll",
            why: "VS_FIXEDFILEINFO's signature is 0xFEEF04BE",
            bytes: with(&|b| {
                let at = l.version
                    + b[l.version..]
                        .windows(4)
                        .position(|w| w == 0xFEEF_04BDu32.to_le_bytes())
                        .unwrap();
                b[at] ^= 0x03;
            }),
            outcome: Unversioned("signature"),
        },
        PeCase {
            name: "root_key_not_vs_version_info.dll",
            why: "the root block's key is VS_VERSION_INFX",
            bytes: with(&|b| {
                let at = version_block(b, "VS_VERSION_INFO") + 6 + 28;
                b[at] = b'X';
            }),
            outcome: Unversioned("not VS_VERSION_INFO"),
        },
        PeCase {
            name: "misaligned_nt_headers.bin",
            why: "fuzzing reproducer: e_lfanew 4 (4 modulo 8); pelite aborted on a misaligned reference",
            bytes: {
                let mut b = vec![0u8; 512];
                b[..2].copy_from_slice(b"MZ");
                put_u32(&mut b, 0x3c, 4);
                b
            },
            outcome: Unversioned("no PE signature"),
        },
        PeCase {
            name: "misaligned_pe32plus.dll",
            why: "a valid PE32+ whose NT headers start at 0x84 (4 modulo 8)",
            bytes: shift_nt_headers(v8.clone()),
            outcome: Version("8.0.2195.6"),
        },
        PeCase {
            name: "misaligned_pe32.dll",
            why: "a valid PE32 whose NT headers start at 0x84 (4 modulo 8)",
            bytes: shift_nt_headers(v7.clone()),
            outcome: Version("7.1.2600.5512"),
        },
        PeCase {
            name: "optional_header_size_odd.dll",
            why: "fuzzing reproducer: SizeOfOptionalHeader 0xF1 puts the section table at an odd offset; pelite aborted on a misaligned slice",
            bytes: with(&|b| put_u16(b, l.nt + 20, 0xf1)),
            outcome: Unversioned("SizeOfOptionalHeader is 241"),
        },
        PeCase {
            name: "resource_directory_misaligned.dll",
            why: "fuzzing reproducer: the resource data directory points one byte into .rsrc; pelite aborted on a misaligned reference",
            bytes: with(&|b| {
                let data_dirs = l.nt + 24 + 112;
                let rva = u32_at(b, data_dirs + 16);
                put_u32(b, data_dirs + 16, rva + 1);
            }),
            outcome: Unversioned("not a multiple of 4"),
        },
        PeCase {
            name: "mz_then_zeros.dll",
            why: "MZ and nothing else",
            bytes: {
                let mut b = vec![0u8; 1024];
                b[..2].copy_from_slice(b"MZ");
                b
            },
            outcome: Unversioned("no PE signature"),
        },
        PeCase {
            name: "unknown_optional_magic.dll",
            why: "the optional header magic is 0x107 (ROM image)",
            bytes: with(&|b| put_u16(b, l.nt + 24, 0x107)),
            outcome: Unversioned("neither PE32"),
        },
    ];
    cases.sort_by_key(|c| c.name);
    cases
}

// ---------------------------------------------------------------------------------------------
// Hives

/// File offset of the cell (its size field) at bins offset `offset`.
fn cell_at(offset: u32) -> usize {
    4096 + offset as usize
}

/// The nk cell (file offset) of `path` below the root, following the writer's `lh` lists.
fn key_cell(hive: &[u8], path: &str) -> usize {
    let mut nk = cell_at(u32_at(hive, 36));
    for part in path.split('\\').filter(|p| !p.is_empty()) {
        let list = cell_at(u32_at(hive, nk + 4 + 28));
        let count = u16_at(hive, list + 6) as usize;
        nk = (0..count)
            .map(|i| cell_at(u32_at(hive, list + 8 + 8 * i)))
            .find(|&child| {
                let len = u16_at(hive, child + 4 + 72) as usize;
                hive[child + 4 + 76..child + 4 + 76 + len].eq_ignore_ascii_case(part.as_bytes())
            })
            .unwrap_or_else(|| panic!("key {part}"));
    }
    nk
}

/// The file offset of the slot in `key`'s subkey list that names `child`.
fn subkey_slot(hive: &[u8], key: &str, child: &str) -> usize {
    let nk = key_cell(hive, key);
    let target = key_cell(hive, &format!("{key}\\{child}"));
    let list = cell_at(u32_at(hive, nk + 4 + 28));
    let count = u16_at(hive, list + 6) as usize;
    (0..count)
        .map(|i| list + 8 + 8 * i)
        .find(|&slot| cell_at(u32_at(hive, slot)) == target)
        .expect("child in list")
}

/// The vk cell (file offset) of value `name` of `key`.
fn value_cell(hive: &[u8], key: &str, name: &str) -> usize {
    let nk = key_cell(hive, key);
    let count = u32_at(hive, nk + 4 + 36) as usize;
    let list = cell_at(u32_at(hive, nk + 4 + 40));
    (0..count)
        .map(|i| cell_at(u32_at(hive, list + 4 + 4 * i)))
        .find(|&vk| {
            let len = u16_at(hive, vk + 6) as usize;
            &hive[vk + 4 + 20..vk + 4 + 20 + len] == name.as_bytes()
        })
        .unwrap_or_else(|| panic!("value {name}"))
}

/// The slot in `key`'s value list that names value `name`.
fn value_slot(hive: &[u8], key: &str, name: &str) -> usize {
    let nk = key_cell(hive, key);
    let target = value_cell(hive, key, name);
    let list = cell_at(u32_at(hive, nk + 4 + 40));
    (0..u32_at(hive, nk + 4 + 36) as usize)
        .map(|i| list + 4 + 4 * i)
        .find(|&slot| cell_at(u32_at(hive, slot)) == target)
        .unwrap()
}

/// The hive bin (file offset, size) holding file offset `at`.
fn bin_of(hive: &[u8], at: usize) -> (usize, usize) {
    let mut bin = 4096;
    loop {
        assert_eq!(&hive[bin..bin + 4], b"hbin");
        let size = u32_at(hive, bin + 8) as usize;
        if at < bin + size {
            return (bin, size);
        }
        bin += size;
    }
}

const SM: &str = "ControlSet001\\Control\\Session Manager";
const PFRO: &str = "PendingFileRenameOperations";

/// A SYSTEM hive with a queue of one rename: one hive bin.
fn base_hive() -> SystemHiveSpec {
    let mut spec = SystemHiveSpec::new(1);
    spec.pending(
        1,
        &[(
            "\\??\\C:\\Windows\\System32\\SET1.tmp",
            "!\\??\\C:\\Windows\\System32\\File.dll",
        )],
    );
    spec
}

/// The same with filler values around `Session Manager` that give it a hive bin without the
/// keys the other cases need intact (Select is written after ControlSet001).
fn binned_hive() -> Vec<u8> {
    let mut spec = base_hive();
    spec.writer.value(
        "ControlSet001\\Control",
        "Filler",
        REG_BINARY,
        &vec![0xAB; 5000],
    );
    spec.writer
        .value(SM, "ZFiller", REG_BINARY, &vec![0xCD; 5000]);
    spec.bytes()
}

/// The same with a queue larger than one cell: big data (`db`, segment list, two segments).
fn big_data_hive() -> Vec<u8> {
    let mut spec = SystemHiveSpec::new(1);
    let pairs: Vec<(String, String)> = (0..100)
        .map(|i| {
            (
                format!("\\??\\C:\\Windows\\System32\\staged_file_{i:04}.tmp"),
                format!("!\\??\\C:\\Windows\\System32\\file_{i:04}.dll"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(s, d)| (s.as_str(), d.as_str()))
        .collect();
    spec.pending(1, &refs);
    let bytes = spec.bytes();
    let vk = value_cell(&bytes, SM, PFRO);
    assert!(u32_at(&bytes, vk + 8) as usize > regf::BIG_DATA_SEGMENT_SIZE);
    bytes
}

/// What a malformed hive must give from `check --hive FILE --format json`.
#[derive(Clone, Copy, Debug)]
enum HiveOutcome {
    /// Exit 2, and stderr names this diagnostic code and contains this text.
    Rejected(&'static str, &'static str),
    /// Exit 0 with a report carrying a finding with this code.
    Finding(&'static str),
}

struct HiveCase {
    name: &'static str,
    why: &'static str,
    bytes: Vec<u8>,
    outcome: HiveOutcome,
}

fn hive_cases() -> Vec<HiveCase> {
    use HiveOutcome::*;
    let base = base_hive().bytes();
    let binned = binned_hive();
    let big = big_data_hive();
    let with = |from: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = from.to_vec();
        f(&mut b);
        b
    };
    let sm = key_cell(&base, SM);
    let (sm_bin, sm_bin_size) = bin_of(&binned, key_cell(&binned, SM));
    let pfro = value_cell(&base, SM, PFRO);
    let big_vk = value_cell(&big, SM, PFRO);
    let big_db = cell_at(u32_at(&big, big_vk + 4 + 8));
    let big_list = cell_at(u32_at(&big, big_db + 4 + 4));
    let two_sets = {
        let mut spec = base_hive();
        spec.control_set(2);
        spec.pending(2, &[("\\??\\C:\\x.tmp", "")]);
        spec.bytes()
    };
    let mut cases = vec![
        HiveCase {
            name: "zeroed_bin.hive",
            why: "the hive bin holding Session Manager is all zeros",
            bytes: with(&binned, &|b| b[sm_bin..sm_bin + sm_bin_size].fill(0)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "zeroed"),
        },
        HiveCase {
            name: "truncated_bin.hive",
            why: "the file ends in the middle of the hive bin holding Session Manager",
            bytes: binned[..sm_bin + 64].to_vec(),
            // Select, written after ControlSet001, is gone too: the root's list fails first,
            // and the file is called truncated, as it is.
            outcome: Rejected("nextboot::hive::truncated", "the hive is truncated"),
        },
        HiveCase {
            name: "truncated_first_bin.hive",
            why: "the file ends 100 bytes into its first hive bin, inside the root key",
            bytes: base[..4096 + 100].to_vec(),
            outcome: Rejected("nextboot::hive::truncated", "truncated: its base block declares 4096 bytes"),
        },
        HiveCase {
            name: "cell_size_zero.hive",
            why: "Session Manager's key cell has size 0",
            bytes: with(&base, &|b| put_u32(b, sm, 0)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "size field 0"),
        },
        HiveCase {
            name: "cell_size_free.hive",
            why: "Session Manager's key cell is marked free (positive size)",
            bytes: with(&base, &|b| put_u32(b, sm, 0x60)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "free cell"),
        },
        HiveCase {
            name: "cell_size_unaligned.hive",
            why: "Session Manager's key cell has size -92 (not a multiple of 8)",
            bytes: with(&base, &|b| put_u32(b, sm, (-92i32) as u32)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "impossible size"),
        },
        HiveCase {
            name: "cell_size_huge.hive",
            why: "Session Manager's key cell claims 2 GiB",
            bytes: with(&base, &|b| put_u32(b, sm, (-0x7fff_fff8i32) as u32)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "past the end"),
        },
        HiveCase {
            name: "root_cell_out_of_range.hive",
            why: "the base block's root cell offset lies past the hive bins (checksum fixed)",
            bytes: with(&base, &|b| {
                put_u32(b, 36, 0x0100_0000);
                regf::fix_checksum(b);
            }),
            outcome: Rejected("nextboot::hive::structure", "outside the"),
        },
        HiveCase {
            name: "root_cell_ffffffff.hive",
            why: "the base block's root cell offset is 0xFFFFFFFF (checksum fixed)",
            bytes: with(&base, &|b| {
                put_u32(b, 36, u32::MAX);
                regf::fix_checksum(b);
            }),
            outcome: Rejected("nextboot::hive::structure", "0xffffffff"),
        },
        HiveCase {
            name: "subkey_list_out_of_range.hive",
            why: "Control's subkey list names Session Manager at an offset past the hive bins",
            bytes: with(&base, &|b| {
                let slot = subkey_slot(b, "ControlSet001\\Control", "Session Manager");
                put_u32(b, slot, 0x7fff_fff0);
            }),
            outcome: Rejected("nextboot::hive::control_set_damaged", "outside the"),
        },
        HiveCase {
            name: "subkey_list_ffffffff.hive",
            why: "Control's subkey list names Session Manager at 0xFFFFFFFF (nt-hive asserts)",
            bytes: with(&base, &|b| {
                let slot = subkey_slot(b, "ControlSet001\\Control", "Session Manager");
                put_u32(b, slot, u32::MAX);
            }),
            outcome: Rejected("nextboot::hive::control_set_damaged", "0xffffffff"),
        },
        HiveCase {
            name: "root_list_out_of_range.hive",
            why: "the root's subkey list names Select at an offset past the hive bins",
            bytes: with(&base, &|b| {
                let slot = subkey_slot(b, "", "Select");
                put_u32(b, slot, 0x00ff_fff0);
            }),
            outcome: Rejected("nextboot::hive::structure", "outside the"),
        },
        HiveCase {
            name: "value_list_out_of_range.hive",
            why: "Session Manager's value list lies past the hive bins",
            bytes: with(&base, &|b| put_u32(b, sm + 4 + 40, 0x7fff_fff0)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "outside the"),
        },
        HiveCase {
            name: "value_count_too_large.hive",
            why: "Session Manager claims 1,000,000 values in a one-value list",
            bytes: with(&base, &|b| put_u32(b, sm + 4 + 36, 1_000_000)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "1000000 values"),
        },
        HiveCase {
            name: "value_slot_ffffffff.hive",
            why: "Session Manager's value list names a value at 0xFFFFFFFF (nt-hive asserts)",
            bytes: with(&base, &|b| {
                let slot = value_slot(b, SM, PFRO);
                put_u32(b, slot, u32::MAX);
            }),
            outcome: Rejected("nextboot::hive::control_set_damaged", "0xffffffff"),
        },
        HiveCase {
            name: "value_data_ffffffff.hive",
            why: "the queue value's data cell offset is 0xFFFFFFFF (nt-hive asserts)",
            bytes: with(&base, &|b| put_u32(b, pfro + 4 + 8, u32::MAX)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "0xffffffff"),
        },
        HiveCase {
            name: "value_data_out_of_range.hive",
            why: "the queue value's data cell lies past the hive bins",
            bytes: with(&base, &|b| put_u32(b, pfro + 4 + 8, 0x0fff_0000)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "outside the"),
        },
        HiveCase {
            name: "value_data_larger_than_cell.hive",
            why: "the queue value claims 16,000 bytes in a cell of about 150 (the hive bins hold 4,096)",
            bytes: with(&base, &|b| put_u32(b, pfro + 4 + 4, 16_000)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "16000"),
        },
        HiveCase {
            name: "value_empty_no_cell.hive",
            why: "an empty queue value with data offset 0xFFFFFFFF, as some writers leave it",
            bytes: {
                let mut spec = SystemHiveSpec::new(1);
                spec.writer.zero_length_data(ZeroLengthData::NoCell);
                spec.pending_raw(1, PFRO, &[]);
                spec.bytes()
            },
            outcome: Finding("queue-value-empty"),
        },
        HiveCase {
            name: "list_loops_to_root.hive",
            why: "the root's subkey list names the root itself in place of Select",
            bytes: with(&base, &|b| {
                let slot = subkey_slot(b, "", "Select");
                let root = u32_at(b, 36);
                put_u32(b, slot, root);
            }),
            outcome: Rejected("nextboot::hive::structure", "loops"),
        },
        HiveCase {
            name: "list_repeats_a_key.hive",
            why: "the root's subkey list names ControlSet001 twice (in place of Select)",
            bytes: with(&base, &|b| {
                let cs = subkey_slot(b, "", "ControlSet001");
                let select = subkey_slot(b, "", "Select");
                let offset = u32_at(b, cs);
                put_u32(b, select, offset);
            }),
            outcome: Rejected("nextboot::hive::structure", "twice"),
        },
        HiveCase {
            name: "list_loops_below.hive",
            why: "Control's subkey list names ControlSet001 (its parent) as Session Manager",
            bytes: with(&base, &|b| {
                let slot = subkey_slot(b, "ControlSet001\\Control", "Session Manager");
                let parent = (key_cell(b, "ControlSet001") - 4096) as u32;
                put_u32(b, slot, parent);
            }),
            // A lookup by name cannot loop: ControlSet001 is not "Session Manager".
            outcome: Finding("session-manager-missing"),
        },
        HiveCase {
            name: "bigdata_size_lies.hive",
            why: "the big queue value claims 0x7FFF0000 bytes",
            bytes: with(&big, &|b| put_u32(b, big_vk + 4 + 4, 0x7fff_0000)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "more than the"),
        },
        HiveCase {
            name: "bigdata_too_few_segments.hive",
            why: "the big-data header holds 1 segment for a two-segment value",
            bytes: with(&big, &|b| put_u16(b, big_db + 4 + 2, 1)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "cannot hold"),
        },
        HiveCase {
            name: "bigdata_segment_repeated.hive",
            why: "the big-data segment list names its first segment twice",
            bytes: with(&big, &|b| {
                let first = u32_at(b, big_list + 4);
                put_u32(b, big_list + 8, first);
            }),
            outcome: Rejected("nextboot::hive::control_set_damaged", "twice"),
        },
        HiveCase {
            name: "bigdata_segment_out_of_range.hive",
            why: "the second big-data segment lies past the hive bins",
            bytes: with(&big, &|b| put_u32(b, big_list + 8, 0x7fff_fff0)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "outside the"),
        },
        HiveCase {
            name: "bigdata_list_ffffffff.hive",
            why: "the big-data segment list offset is 0xFFFFFFFF (nt-hive asserts)",
            bytes: with(&big, &|b| put_u32(b, big_db + 4 + 4, u32::MAX)),
            outcome: Rejected("nextboot::hive::control_set_damaged", "0xffffffff"),
        },
        HiveCase {
            name: "select_value_ffffffff.hive",
            why: "Select\\Default's data is not inline and its cell offset is 0xFFFFFFFF (nt-hive asserts)",
            bytes: with(&base, &|b| {
                let vk = value_cell(b, "Select", "Default");
                put_u32(b, vk + 4 + 4, 4);
                put_u32(b, vk + 4 + 8, u32::MAX);
            }),
            outcome: Rejected("nextboot::hive::structure", "0xffffffff"),
        },
        HiveCase {
            name: "other_set_damaged.hive",
            why: "ControlSet002 (not the set of the next boot) has a zeroed Session Manager cell",
            bytes: with(&two_sets, &|b| {
                let sm2 = key_cell(b, "ControlSet002\\Control\\Session Manager");
                put_u32(b, sm2, 0);
            }),
            outcome: Finding("control-set-damaged"),
        },
    ];
    cases.sort_by_key(|c| c.name);
    cases
}

/// Every file of `testdata/malformed`, relative path and bytes.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = pe_cases()
        .into_iter()
        .map(|c| (format!("pe/{}", c.name), c.bytes))
        .chain(
            hive_cases()
                .into_iter()
                .map(|c| (format!("hive/{}", c.name), c.bytes)),
        )
        .collect();
    files.push(("README.md".into(), readme().into_bytes()));
    files
}

fn readme() -> String {
    let mut text = String::from(
        "# Malformed inputs\n\n\
         Written by `tests/malformed.rs` (`NEXTBOOT_REGENERATE=1 cargo test --test malformed`) from\n\
         the PE fixtures in `testdata/pe/bin` and hives of the regf writer in `crates/regf-writer`.\n\
         Do not edit by hand. Each must give a clear per-file finding (PE: `unversioned` with a\n\
         reason, or still the right version when the oddity is tolerated) or exit status 2 with a\n\
         diagnostic (hives), never a panic.\n\n| file | what is wrong |\n|---|---|\n",
    );
    for case in pe_cases() {
        text.push_str(&format!("| pe/{} | {} |\n", case.name, case.why));
    }
    for case in hive_cases() {
        text.push_str(&format!("| hive/{} | {} |\n", case.name, case.why));
    }
    text
}

#[test]
fn corpus_is_what_its_generator_writes() {
    let dir = malformed_dir();
    let files = corpus();
    if std::env::var_os("NEXTBOOT_REGENERATE").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        for (relative, bytes) in &files {
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let mut on_disk: Vec<String> = walk(&dir)
        .into_iter()
        .map(|p| {
            p.strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "testdata/malformed differs from its generator: NEXTBOOT_REGENERATE=1 cargo test --test malformed"
    );
    for (relative, bytes) in &files {
        assert!(
            std::fs::read(dir.join(relative)).unwrap() == *bytes,
            "{relative} differs from its generator: NEXTBOOT_REGENERATE=1 cargo test --test malformed"
        );
        assert!(
            bytes.len() <= 64 * 1024,
            "{relative}: keep the corpus small"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn no_panic(stderr: &str, what: &str) {
    for sign in ["panicked", "internal error", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(sign), "{what}: {stderr}");
    }
}

fn run_timed(args: &[&OsStr], what: &str) -> (i32, String, String) {
    let start = Instant::now();
    let result = nextboot(args);
    let took = start.elapsed();
    assert!(took < PER_FILE, "{what} took {took:?}");
    no_panic(&result.2, what);
    result
}

#[test]
fn malformed_pe_files_are_findings_in_version() {
    let dir = malformed_dir().join("pe");
    for case in pe_cases() {
        let path = dir.join(case.name);
        let (status, stdout, stderr) = run_timed(
            &[
                "version".as_ref(),
                path.as_os_str(),
                "--format".as_ref(),
                "json".as_ref(),
            ],
            case.name,
        );
        assert_eq!(status, 0, "{}: {stderr}", case.name);
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let entry = &report[0];
        match case.outcome {
            PeOutcome::Unversioned(says) => {
                let why = entry["error"]
                    .as_str()
                    .or(entry["unversioned_reason"].as_str())
                    .unwrap_or_else(|| panic!("{}: no reason: {entry}", case.name));
                assert!(why.contains(says), "{}: {why}", case.name);
                assert!(entry["file_version"].is_null(), "{}", case.name);
            }
            PeOutcome::Version(version) => {
                assert_eq!(entry["file_version"], version, "{}: {entry}", case.name);
            }
        }
    }
}

/// Each malformed PE staged over a good file: `check` says `unversioned` and why.
#[test]
fn malformed_pe_files_staged_for_the_next_boot() {
    let mut s = Scenario::new();
    let cases = pe_cases();
    let mut pairs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        s.put(
            &format!("Windows/System32/target{i:02}.dll"),
            "file_v12.dll",
        );
        s.write(
            &format!("Windows/System32/SET{i:02}.tmp"),
            &std::fs::read(malformed_dir().join("pe").join(case.name)).unwrap(),
        );
        pairs.push((
            format!("\\??\\C:\\Windows\\System32\\SET{i:02}.tmp"),
            format!("!\\??\\C:\\Windows\\System32\\target{i:02}.dll"),
        ));
    }
    s.hive.pending_owned(1, &pairs);
    for format in ["json", "table"] {
        let start = Instant::now();
        let (status, report) = s.check(&["--hash", "all"]);
        assert!(
            start.elapsed() < PER_FILE * cases.len() as u32,
            "{format}: {:?}",
            start.elapsed()
        );
        for (i, case) in cases.iter().enumerate() {
            let op = &report["operations"][i];
            match case.outcome {
                PeOutcome::Unversioned(says) => {
                    assert_eq!(op["verdict"], "unversioned", "{}: {op}", case.name);
                    let why = op["source_file"]["unversioned_reason"]
                        .as_str()
                        .unwrap_or_default();
                    assert!(why.contains(says), "{}: {why}", case.name);
                    assert!(
                        op["reason"].as_str().is_some_and(|r| !r.is_empty()),
                        "{}",
                        case.name
                    );
                }
                PeOutcome::Version(version) => {
                    assert_eq!(op["source_version"], version, "{}", case.name);
                    assert_eq!(op["verdict"], "downgrade", "{}: v12 on disk", case.name);
                }
            }
        }
        // Exit 1: the tolerated files are downgrades of the v12 files on disk.
        assert_eq!(status, 1);
    }
}

#[test]
fn malformed_hives_exit_2_with_a_diagnostic() {
    let dir = malformed_dir().join("hive");
    for case in hive_cases() {
        let path = dir.join(case.name);
        let (status, stdout, stderr) = run_timed(
            &[
                "check".as_ref(),
                "--hive".as_ref(),
                path.as_os_str(),
                "--format".as_ref(),
                "json".as_ref(),
            ],
            case.name,
        );
        match case.outcome {
            HiveOutcome::Rejected(code, says) => {
                assert_eq!(status, 2, "{}: {stdout}{stderr}", case.name);
                assert!(stdout.is_empty(), "{}: no report: {stdout}", case.name);
                assert!(stderr.contains(code), "{}: {stderr}", case.name);
                let flat = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
                let flat = flat.replace(" │", "");
                assert!(flat.contains(says), "{}: {stderr}", case.name);
            }
            HiveOutcome::Finding(code) => {
                assert_eq!(status, 0, "{}: {stderr}", case.name);
                let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                let codes: Vec<&str> = report["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|f| f["code"].as_str())
                    .collect();
                assert!(codes.contains(&code), "{}: {codes:?}", case.name);
            }
        }
    }
}

/// A finding about a damaged part of the hive gives the damage as fields too, so that a script
/// need not parse the sentence: here the zeroed size field of ControlSet002's Session Manager
/// cell, at the offset this test's own walker finds the cell.
#[test]
fn a_damaged_control_set_finding_carries_the_cell_as_fields() {
    let case = hive_cases()
        .into_iter()
        .find(|c| c.name == "other_set_damaged.hive")
        .unwrap();
    let offset = key_cell(&case.bytes, "ControlSet002\\Control\\Session Manager");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("SYSTEM");
    std::fs::write(&path, &case.bytes).unwrap();
    let (status, stdout, stderr) = nextboot(&[
        "check".as_ref(),
        "--hive".as_ref(),
        path.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "control-set-damaged")
        .expect("a control-set-damaged finding");
    let detail = &finding["detail"];
    assert_eq!(detail["damage"], "not-allocated", "{finding}");
    assert_eq!(detail["offset"], offset, "{finding}");
    assert_eq!(detail["size_field"], 0, "{finding}");
    assert!(
        detail["what"]
            .as_str()
            .unwrap()
            .ends_with("the subkey list of ControlSet002\\Control"),
        "{finding}"
    );
    // The sentence says the same, with the same offset.
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("offset {offset:#x},")),
        "{message}"
    );
}

/// The library on its own: every malformed hive is an error or a partial read, never a panic
/// (the guard must not be what saves it: `ReaderFailed` would mean nt-hive panicked).
#[test]
fn malformed_hives_never_reach_the_panic_guard() {
    let dir = malformed_dir().join("hive");
    for case in hive_cases() {
        let bytes = std::fs::read(dir.join(case.name)).unwrap();
        match nextboot::hive::SystemHive::read(&bytes) {
            Err(nextboot::hive::HiveError::ReaderFailed { message }) => {
                panic!("{}: nt-hive panicked: {message}", case.name)
            }
            Ok(hive) => {
                for set in &hive.control_sets {
                    if let Some(damage) = &set.damage {
                        assert!(
                            !damage.contains("reader stopped"),
                            "{}: {damage}",
                            case.name
                        );
                    }
                }
            }
            Err(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real odd hives (`../shared/hives`) not already pinned by tests/real_hives.rs

/// Hives that are not SYSTEM hives but are odd in other ways (big data, REG_MULTI_SZ and
/// string encodings, Unicode names, hivex's and nt-hive's test hives): each is read through
/// the root key and every subkey of the root is checked, then refused as having no control
/// set: exit 2, that diagnostic and no other, no report, no panic.
#[test]
fn real_odd_hives_have_no_control_set() {
    let Some(dir) = support::shared_hives() else {
        support::skip(
            "real_odd_hives_have_no_control_set",
            "../shared/hives is absent",
        );
        return;
    };
    // name, file size, sequence numbers, format version, declared hive bins size
    for (name, size, sequence, version, bins) in [
        ("yarp/BigDataHive", 262_144, (4, 4), (1, 5), 143_360),
        ("yarp/MultiSzHive", 262_144, (3, 3), (1, 3), 4096),
        ("yarp/StringValuesHive", 262_144, (3, 3), (1, 3), 4096),
        ("yarp/UnicodeHive", 262_144, (3, 3), (1, 3), 4096),
        ("hivex/minimal", 8192, (256, 256), (1, 5), 4096),
        ("hivex/special", 8192, (262, 262), (1, 5), 4096),
        (
            "hivex/rlenvalue_test_hive",
            12_288,
            (257, 257),
            (1, 5),
            8192,
        ),
        ("nt-hive/testhive", 159_744, (1, 1), (1, 5), 155_648),
    ] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), size, "{name}: not the file the README lists");
        let base = nextboot::hive::BaseBlock::parse(&bytes).unwrap();
        assert_eq!(
            (base.primary_sequence, base.secondary_sequence),
            sequence,
            "{name}"
        );
        assert_eq!((base.major_version, base.minor_version), version, "{name}");
        assert_eq!(base.hive_bins_size, bins, "{name}");
        assert!(!base.is_dirty(), "{name}");
        assert!(matches!(
            nextboot::hive::SystemHive::read(&bytes),
            Err(nextboot::hive::HiveError::NoControlSet)
        ));
        let (status, stdout, stderr) = run_timed(
            &[
                "check".as_ref(),
                "--hive".as_ref(),
                path.as_os_str(),
                "--format".as_ref(),
                "json".as_ref(),
            ],
            name,
        );
        assert_eq!(status, 2, "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
        assert!(
            stderr.contains("nextboot::hive::no_control_set"),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("hive::structure"), "{name}: {stderr}");
    }
}

/// The cell checks that guard nt-hive (`hive::cells`) find nothing wrong in hives Windows
/// wrote: every key, subkey list (`lf`, `lh`, `li`, `ri`), value list and value data
/// (big data included) of every real hive passes, except in the hive with a zeroed bin and
/// the truncated one, where the damage is found where it is (and nowhere else).
#[test]
fn real_hives_pass_the_cell_checks() {
    use nextboot::hive::cells::{Cells, DataCheck};
    let Some(dir) = support::shared_hives() else {
        support::skip(
            "real_hives_pass_the_cell_checks",
            "../shared/hives is absent",
        );
        return;
    };
    let mut hives = walk(&dir);
    hives.retain(|p| {
        let name = p.to_string_lossy();
        !name.contains(".LOG")
            && !name.contains(".log")
            && !name.ends_with(".md")
            && !name.ends_with("SHA256SUMS")
    });
    hives.sort();
    let (mut checked, mut total_values) = (0, 0);
    for path in hives {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(base) = nextboot::hive::BaseBlock::parse(&bytes) else {
            continue;
        };
        let end = (4096 + base.hive_bins_size as usize).min(bytes.len());
        let cells = Cells::new(&bytes[4096..end]);
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let mut damaged = Vec::new();
        let (mut keys, mut values, mut big) = (0usize, 0usize, 0usize);
        let mut stack = vec![(base.root_cell_offset, Vec::new())];
        while let Some((offset, ancestors)) = stack.pop() {
            let key = match cells.key(offset, "k") {
                Ok(key) => key,
                Err(damage) => {
                    damaged.push(damage.to_string());
                    continue;
                }
            };
            keys += 1;
            match cells.values(&key, "k") {
                Ok(list) => {
                    for value in list {
                        values += 1;
                        match cells.value_data(value, cells.len(), "v") {
                            Ok(
                                DataCheck::Readable
                                | DataCheck::Empty
                                | DataCheck::SingleCell { .. },
                            ) => {}
                            Err(damage) => damaged.push(damage.to_string()),
                        }
                        let raw = u32_at(&bytes, 4096 + value as usize + 4 + 4);
                        if raw & 0x8000_0000 == 0 && raw as usize > regf::BIG_DATA_SEGMENT_SIZE {
                            big += 1;
                        }
                    }
                }
                Err(damage) => damaged.push(damage.to_string()),
            }
            match cells.subkeys(&key, &ancestors, "k") {
                Ok(children) => {
                    let mut below = ancestors.clone();
                    below.push(offset);
                    stack.extend(children.into_iter().map(|c| (c, below.clone())));
                }
                Err(damage) => damaged.push(damage.to_string()),
            }
        }
        checked += 1;
        if name == "regipy/corrupted_system_hive" {
            // The zeroed bin, and the garbage that references into it or around it.
            assert_eq!(damaged.len(), 9, "{name}: {damaged:?}");
            assert_eq!(
                damaged.iter().filter(|d| d.contains("zeroed")).count(),
                5,
                "{name}: {damaged:?}"
            );
        } else if name == "yarp/TruncatedDirtyHive" {
            // Cut short: an index root names a leaf past the end of the file.
            assert_eq!(damaged.len(), 1, "{name}: {damaged:?}");
            assert!(damaged[0].contains("outside the 8192 bytes"), "{damaged:?}");
        } else {
            assert!(damaged.is_empty(), "{name} ({keys} keys): {damaged:?}");
        }
        assert!(keys > 0, "{name}");
        total_values += values;
        if name == "yarp/BigDataHive" {
            assert!(big > 0, "{name}: has big data values");
        }
    }
    assert!(checked >= 15, "{checked} hives checked");
    assert!(total_values > 100_000, "{total_values} values checked");
}
