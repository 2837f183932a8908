//! (c) Transaction-log replay: arbitrary log bytes over a valid dirty hive, then the recovered
//! hive read and its queues decoded. The dirty hives come from the project's test writers
//! (`crates/regf-writer`), built once.
//!
//! Byte 0 chooses the case:
//! - bits 0-1: 0 = LOG1 is the rest of the input as it is (LOG2 empty); 1 = the valid LOG1 of
//!   a new-format dirty hive with the rest patched in; 2 = its valid LOG1 and LOG2, the rest
//!   patched into LOG2; 3 = an old-format (DIRT) dirty hive's log with the rest patched in.
//! - bit 2: after patching, recompute every `HvLE` entry's Hash-1 and Hash-2 and the log's
//!   base block checksum, so that replay gets past the hashes to the page references.
//! - bit 3: patch into the primary instead of the log (the log stays valid).
//!
//! Patching: bytes 1-3 are the offset (little-endian, modulo the file's length), the rest
//! overwrites from there (and extends the file when it runs past its end).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nextboot::hive::log::{base_block_checksum, marvin32_64, recover, LogFile, LOG_HASH_SEED};
use nextboot::hive::SystemHive;
use nextboot::queue::decode_registry;

use nextboot_regf_writer::{regf, regf_log};
use regf::{multi_sz, HiveWriter, REG_DWORD, REG_MULTI_SZ, REG_SZ};
use regf_log::{DirtyHive, NewLogWriter, OldLogWriter, Slot};

const SESSION_MANAGER: &str = "ControlSet001\\Control\\Session Manager";
const PFRO: &str = "PendingFileRenameOperations";

struct Cases {
    new_format: DirtyHive,
    old_format: DirtyHive,
}

fn cases() -> &'static Cases {
    static CASES: OnceLock<Cases> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut old = HiveWriter::new("ROOT");
        old.sequence_numbers(40, 40)
            .value("Select", "Current", REG_DWORD, &1u32.to_le_bytes())
            .value("Select", "Default", REG_DWORD, &1u32.to_le_bytes())
            .value(
                SESSION_MANAGER,
                PFRO,
                REG_MULTI_SZ,
                &multi_sz(&["\\??\\C:\\old.tmp", ""]),
            );
        for i in 0..12 {
            old.value(
                &format!("ControlSet001\\Services\\svc{i:02}"),
                "ImagePath",
                REG_SZ,
                &regf::utf16z(&format!("C:\\Windows\\system32\\svc{i:02}.exe")),
            );
        }
        let mut new = old.clone();
        new.value(
            SESSION_MANAGER,
            PFRO,
            REG_MULTI_SZ,
            &multi_sz(&[
                "\\??\\C:\\old.tmp",
                "",
                "\\??\\C:\\Windows\\system32\\new.dll",
                "!\\??\\C:\\Windows\\system32\\drivers\\x.sys",
            ]),
        )
        .value(
            "ControlSet001\\Services\\added",
            "Blob",
            3,
            &vec![0x5A; 9000],
        );
        let (old, new) = (old.to_bytes(), new.to_bytes());
        Cases {
            new_format: NewLogWriter::new(&old, &new)
                .entries(3)
                .split(2, Slot::Log1)
                .build(),
            old_format: OldLogWriter::new(&old, &new).build(),
        }
    })
}

fn patch(file: &mut Vec<u8>, patch: &[u8]) {
    let (offset, bytes) = match patch {
        [a, b, c, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, 0]) as usize, rest),
        _ => return,
    };
    let at = offset % (file.len() + 1);
    let end = at + bytes.len();
    if end > file.len() {
        file.resize(end, 0);
    }
    file[at..end].copy_from_slice(bytes);
}

/// Makes every `HvLE` entry's hashes and the base block checksum right again.
fn rehash(log: &mut [u8]) {
    if log.len() >= 512 {
        let sum = base_block_checksum(&log[..512]);
        log[508..512].copy_from_slice(&sum.to_le_bytes());
    }
    let mut pos = 512;
    while log.len() >= pos + 40 && &log[pos..pos + 4] == b"HvLE" {
        let size =
            u32::from_le_bytes([log[pos + 4], log[pos + 5], log[pos + 6], log[pos + 7]]) as usize;
        if size < 512 || !size.is_multiple_of(512) || pos + size > log.len() {
            break;
        }
        let entry = &mut log[pos..pos + size];
        let hash1 = marvin32_64(&entry[40..], LOG_HASH_SEED);
        entry[24..32].copy_from_slice(&hash1.to_le_bytes());
        let hash2 = marvin32_64(&entry[..32], LOG_HASH_SEED);
        entry[32..40].copy_from_slice(&hash2.to_le_bytes());
        pos += size;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cases = cases();
    let base = if mode & 3 == 3 {
        &cases.old_format
    } else {
        &cases.new_format
    };
    let mut primary = base.primary.clone();
    let (mut log1, mut log2) = match mode & 3 {
        0 => (rest.to_vec(), Vec::new()),
        1 => (base.log1.clone(), Vec::new()),
        _ => (base.log1.clone(), base.log2.clone()),
    };
    if mode & 3 != 0 {
        let target = if mode & 8 != 0 {
            &mut primary
        } else if mode & 3 == 2 {
            &mut log2
        } else {
            &mut log1
        };
        patch(target, rest);
    }
    if mode & 4 != 0 {
        rehash(&mut log1);
        rehash(&mut log2);
    }
    let logs = [
        LogFile {
            name: "SYSTEM.LOG1".into(),
            bytes: &log1,
        },
        LogFile {
            name: "SYSTEM.LOG2".into(),
            bytes: &log2,
        },
    ];
    let Ok(recovery) = recover(&primary, &logs) else {
        return;
    };
    // Recovery never builds more than the inputs hold.
    assert!(recovery.bytes.len() <= primary.len() + log1.len() + log2.len() + 4096);
    if let Ok(hive) = SystemHive::read(&recovery.bytes) {
        for set in &hive.control_sets {
            let _ = decode_registry(&set.pending);
        }
    }
});
