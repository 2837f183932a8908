//! Transaction-log replay: real dirty hives against the hives Windows and yarp recovered, and
//! fixtures from `support::regf_log` for each rule. Tests on real hives print `SKIPPED` and
//! pass when `../shared/hives` is absent.
//!
//! Porting to nextboot: replace `nextboot::hive::log` with `nextboot::hive::log` below.

mod support;

use std::path::Path;

use nextboot::hive::log::{self as replay, LogFile, LogFormat, Recovery, RecoveryError};
use nt_hive::{Hive, KeyNode};
use support::regf::{multi_sz, HiveWriter, REG_DWORD, REG_MULTI_SZ, REG_SZ};
use support::regf_log::{
    changed_pages, log_entry, Corruption, DirtyHive, NewLogWriter, OldLogWriter, Slot,
};

const SESSION_MANAGER: &str = "ControlSet001\\Control\\Session Manager";
const PFRO: &str = "PendingFileRenameOperations";

// ---------------------------------------------------------------------------------------------
// Helpers

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs recovery on files of the shared folder: `primary` and its logs (paths relative to it).
fn recover_files(dir: &Path, primary: &str, logs: &[&str]) -> Result<Recovery, RecoveryError> {
    let primary = read(dir, primary);
    let logs: Vec<(String, Vec<u8>)> = logs
        .iter()
        .map(|name| (name.to_string(), read(dir, name)))
        .collect();
    let files: Vec<LogFile> = logs
        .iter()
        .map(|(name, bytes)| LogFile {
            name: name.clone(),
            bytes,
        })
        .collect();
    replay::recover(&primary, &files)
}

fn recover_fixture(dirty: &DirtyHive) -> Recovery {
    let files: Vec<LogFile> = dirty
        .logs()
        .iter()
        .map(|(name, bytes)| LogFile {
            name: name.to_string(),
            bytes,
        })
        .collect();
    replay::recover(&dirty.primary, &files).expect("fixture recovers")
}

/// The hive bins data of a primary file, as its base block sizes it.
fn bins(hive: &[u8]) -> &[u8] {
    let size = u32::from_le_bytes(hive[40..44].try_into().unwrap()) as usize;
    &hive[4096..4096 + size]
}

/// Offsets (from the first bin) of the 4 KiB pages that differ.
fn differing_pages(a: &[u8], b: &[u8]) -> Vec<usize> {
    let (a, b) = (bins(a), bins(b));
    assert_eq!(a.len(), b.len(), "hive bins sizes differ");
    (0..a.len())
        .step_by(4096)
        .filter(|&i| a[i..i + 4096] != b[i..i + 4096])
        .collect()
}

fn shared(test: &str) -> Option<std::path::PathBuf> {
    let dir = support::shared_hives();
    if dir.is_none() {
        support::skip(test, "../shared/hives is absent");
    }
    dir
}

/// Every key and value of a hive, one line each: `path`, or `path : name = type hex-data`.
fn walk(hive_bytes: &[u8]) -> Vec<String> {
    fn key(node: &KeyNode<&[u8]>, path: &str, out: &mut Vec<String>) {
        out.push(path.to_string());
        if let Some(values) = node.values() {
            for value in values.expect("values list") {
                let value = value.expect("value");
                let name = value.name().expect("value name").to_string_lossy();
                let data_type = value.data_type().map_or(u32::MAX, |t| t as u32);
                // nt-hive 0.3 reads a value over 16,344 bytes as big data even in a 1.3 hive
                // (one large cell there): such data is listed by its error.
                let data = match value.data().and_then(|data| data.into_vec()) {
                    Ok(data) => data.iter().map(|b| format!("{b:02x}")).collect(),
                    Err(e) => format!("unreadable: {e}"),
                };
                out.push(format!("{path} : {name} = {data_type} {data}"));
            }
        }
        if let Some(subkeys) = node.subkeys() {
            for subkey in subkeys.expect("subkeys list") {
                let subkey = subkey.expect("subkey");
                let name = subkey.name().expect("key name").to_string_lossy();
                key(&subkey, &format!("{path}\\{name}"), out);
            }
        }
    }
    let hive = Hive::new(hive_bytes).expect("nt-hive accepts the hive");
    let mut out = Vec::new();
    key(&hive.root_key_node().expect("root key"), "", &mut out);
    out
}

fn value_bytes(hive_bytes: &[u8], key_path: &str, name: &str) -> Option<Vec<u8>> {
    let hive = Hive::new(hive_bytes).expect("nt-hive accepts the hive");
    let root = hive.root_key_node().expect("root key");
    let key = root.subpath(key_path)?.expect("key");
    let value = key.value(name)?.expect("value");
    Some(value.data().expect("data").into_vec().expect("data"))
}

fn notes(recovery: &Recovery, log: usize) -> String {
    recovery.logs[log].notes.join(" | ")
}

// ---------------------------------------------------------------------------------------------
// Real hives

#[test]
fn new_dirty_hive1_equals_what_windows_10_recovered() {
    let Some(dir) = shared("new_dirty_hive1") else {
        return;
    };
    let dir = dir.join("yarp/NewDirtyHive1");
    let r = recover_files(
        &dir,
        "NewDirtyHive",
        &["NewDirtyHive.LOG1", "NewDirtyHive.LOG2"],
    )
    .unwrap();
    let windows = read(&dir, "RecoveredHive_Windows10");
    assert!(r.was_dirty);
    assert_eq!(r.sequence_before, (3, 2));
    assert_eq!(r.sequence_after, (5, 5));
    assert_eq!(
        bins(&r.bytes),
        bins(&windows),
        "hive bins differ from Windows 10's"
    );
    // LOG1 starts at the primary's secondary sequence (2), LOG2 continues with 3..5.
    assert_eq!(
        (r.logs[0].entries_applied, r.logs[1].entries_applied),
        (1, 3)
    );
    assert_eq!(r.logs[0].format, Some(LogFormat::New));
    // Windows wrote the hive once more after recovering it (6/6); nothing else differs.
    let mut ours = r.bytes.clone();
    ours[4..12].copy_from_slice(&windows[4..12]);
    assert_eq!(ours, windows);
    walk(&r.bytes);
}

#[test]
fn new_dirty_hive2_skips_the_log_older_than_the_primary() {
    let Some(dir) = shared("new_dirty_hive2") else {
        return;
    };
    let r = recover_files(
        &dir,
        "yarp/NewDirtyHive2/NewDirtyHive",
        &[
            "yarp/NewDirtyHive2/NewDirtyHive.LOG1",
            "yarp/NewDirtyHive2/NewDirtyHive.LOG2",
        ],
    )
    .unwrap();
    assert_eq!(r.sequence_before, (4, 3));
    assert_eq!(r.sequence_after, (5, 5));
    assert!(!r.logs[0].applied);
    assert!(
        notes(&r, 0).contains("older than the primary"),
        "{}",
        notes(&r, 0)
    );
    assert_eq!(r.logs[1].entries_applied, 3);
    let oracle = read(&dir, "oracle/NewDirtyHive2.recovered");
    assert_eq!(r.bytes, oracle, "differs from yarp's recovered file");
}

#[test]
fn old_dirty_hive_has_the_keys_and_values_windows_7_recovered() {
    let Some(dir) = shared("old_dirty_hive") else {
        return;
    };
    let dir = dir.join("yarp/OldDirtyHive");
    let r = recover_files(
        &dir,
        "OldDirtyHive",
        &["OldDirtyHive.LOG1", "OldDirtyHive.LOG2"],
    )
    .unwrap();
    assert_eq!(r.sequence_before, (5, 4));
    assert_eq!(r.sequence_after, (5, 5));
    assert_eq!(r.logs[0].format, Some(LogFormat::Old));
    assert_eq!(r.logs[0].pages_applied, 64);
    assert!(!r.logs[1].applied, "the empty LOG2");
    assert!(notes(&r, 1).contains("empty"));
    let windows = read(&dir, "RecoveredHive_Windows7");
    let primary = read(&dir, "OldDirtyHive");
    assert_eq!(walk(&r.bytes), walk(&windows));
    assert_ne!(
        walk(&replay_clean(&primary)),
        walk(&windows),
        "the log matters"
    );
    // Windows 7 wrote the hive again (7/7) after recovering it: the first bin's timestamp and
    // one key's largest-value-name field differ; every key and value is the same.
    assert_eq!(differing_pages(&r.bytes, &windows), [0, 434_176]);
}

#[test]
fn system_b_gets_the_pending_operations_only_its_logs_hold() {
    let Some(dir) = shared("system_b") else {
        return;
    };
    let primary = read(&dir, "regipy/SYSTEM_B");
    let r = recover_files(
        &dir,
        "regipy/SYSTEM_B",
        &["regipy/SYSTEM_B.LOG1", "regipy/SYSTEM_B.LOG2"],
    )
    .unwrap();
    assert_eq!(r.sequence_before, (1622, 1621));
    assert_eq!(r.sequence_after, (2130, 2130));
    // LOG1's entries start at 2107: a log's run starts at its own base block's sequence
    // number, which need only be no older than the primary's secondary (1621).
    assert_eq!(
        (r.logs[0].entries_applied, r.logs[0].pages_applied),
        (4, 10)
    );
    assert_eq!(
        (r.logs[1].entries_applied, r.logs[1].pages_applied),
        (20, 305)
    );
    assert_eq!(r.hive_bins_size, 12_591_104);

    let before = value_bytes(&replay_clean(&primary), SESSION_MANAGER, PFRO).unwrap();
    let after = value_bytes(&r.bytes, SESSION_MANAGER, PFRO).unwrap();
    let oracle = read(&dir, "oracle/SYSTEM_B.recovered");
    assert_eq!(before.len(), 670);
    assert_eq!(after.len(), 1254);
    assert_eq!(after, value_bytes(&oracle, SESSION_MANAGER, PFRO).unwrap());
    assert_eq!(r.bytes, oracle, "differs from yarp's recovered file");
}

/// The primary made readable as it is (sequence numbers equalised, no logs).
fn replay_clean(primary: &[u8]) -> Vec<u8> {
    let r = replay::recover(primary, &[]).unwrap();
    assert_eq!(r.entries_applied(), 0);
    r.bytes
}

#[test]
fn transactions_ntuser_does_not_apply_its_older_log2() {
    let Some(dir) = shared("transactions_ntuser") else {
        return;
    };
    let r = recover_files(
        &dir,
        "regipy/transactions_NTUSER.DAT",
        &[
            "regipy/transactions_ntuser.dat.log1",
            "regipy/transactions_ntuser.dat.log2",
        ],
    )
    .unwrap();
    assert_eq!(r.sequence_before, (567, 566));
    assert_eq!(r.sequence_after, (588, 588));
    assert_eq!(r.logs[0].entries_applied, 23);
    assert!(!r.logs[1].applied);
    assert_eq!(r.logs[1].entries_skipped, 1);
    let why = notes(&r, 1);
    assert!(why.contains("562") && why.contains("566"), "{why}");
    let oracle = read(&dir, "oracle/transactions_NTUSER.DAT.recovered");
    assert_eq!(r.bytes, oracle, "differs from yarp's recovered file");
}

#[test]
fn usrclass_equals_yarps_recovery() {
    let Some(dir) = shared("usrclass") else {
        return;
    };
    let r = recover_files(
        &dir,
        "regipy/UsrClass.dat",
        &["regipy/UsrClass.dat.LOG1", "regipy/UsrClass.dat.LOG2"],
    )
    .unwrap();
    assert_eq!(r.sequence_before, (256, 255));
    assert_eq!(r.sequence_after, (300, 300));
    assert_eq!(
        (r.logs[0].entries_applied, r.logs[1].entries_applied),
        (4, 10)
    );
    let oracle = read(&dir, "oracle/UsrClass.dat.recovered");
    assert_eq!(r.bytes, oracle, "differs from yarp's recovered file");
    walk(&r.bytes);
}

#[test]
fn truncated_dirty_hive_is_a_clear_error() {
    let Some(dir) = shared("truncated_dirty_hive") else {
        return;
    };
    let err = recover_files(&dir, "yarp/TruncatedDirtyHive", &[]).unwrap_err();
    assert_eq!(
        err,
        RecoveryError::Truncated {
            len: 12_288,
            needed: 491_520
        }
    );
    assert!(err.to_string().contains("no transaction log supplied"));
}

#[test]
fn hives_without_logs_never_panic() {
    let Some(dir) = shared("hives_without_logs") else {
        return;
    };
    for name in [
        "regipy/SYSTEM",
        "regipy/SYSTEM_2",
        "regipy/SYSTEM_WIN_10_1709",
        "regipy/corrupted_system_hive",
        "yarp/System_Delta",
        "yarp/BigDataHive",
        "dissect.regf/SYSTEM",
        "hivex/minimal",
        "nt-hive/testhive",
    ] {
        let bytes = read(&dir, name);
        let r = replay::recover(&bytes, &[]).unwrap();
        if r.was_dirty {
            assert_eq!(r.sequence_after.0, r.sequence_after.1, "{name}");
            assert!(r.notes[0].contains("nothing was applied"), "{name}");
            Hive::new(&r.bytes[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            assert_eq!(r.bytes, bytes, "{name}: a clean hive comes back unchanged");
        }
    }
}

#[test]
fn logs_given_to_the_wrong_hive_are_refused() {
    let Some(dir) = shared("foreign_logs") else {
        return;
    };
    // SYSTEM_B's logs with another dirty SYSTEM (1709): same embedded name "SYSTEM", other
    // resource-manager GUID, but their sequence numbers (2107, 2111) are older than 4316.
    let r = recover_files(
        &dir,
        "regipy/SYSTEM_WIN_10_1709",
        &["regipy/SYSTEM_B.LOG1", "regipy/SYSTEM_B.LOG2"],
    )
    .unwrap();
    assert_eq!(r.entries_applied(), 0);
    // UsrClass logs with NTUSER: another name and another GUID.
    let r = recover_files(
        &dir,
        "regipy/transactions_NTUSER.DAT",
        &["regipy/UsrClass.dat.LOG1", "regipy/UsrClass.dat.LOG2"],
    )
    .unwrap();
    assert_eq!(r.entries_applied(), 0);
    assert!(notes(&r, 0).contains("another hive"), "{}", notes(&r, 0));
}

/// Damaged real logs: flipped bytes, cut files, lying header fields. Recovery may apply less
/// or fail cleanly, but never panics, and what it returns nt-hive accepts.
#[test]
fn damaged_real_logs_never_panic() {
    let Some(dir) = shared("damaged_real_logs") else {
        return;
    };
    let dir = dir.join("yarp/NewDirtyHive1");
    let primary = read(&dir, "NewDirtyHive");
    let log1 = read(&dir, "NewDirtyHive.LOG1");
    let log2 = read(&dir, "NewDirtyHive.LOG2");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..400 {
        let (mut a, mut b, mut p) = (log1.clone(), log2.clone(), primary.clone());
        let target = match round % 3 {
            0 => &mut a,
            1 => &mut b,
            _ => &mut p,
        };
        match next() % 4 {
            0 => {
                let at = (next() as usize) % target.len();
                target[at] ^= 1 << (next() % 8);
            }
            1 => {
                let len = (next() as usize) % target.len();
                target.truncate(len);
            }
            2 => {
                // A lying 32-bit field in an entry header or the base block.
                let at = ((next() as usize) % (target.len() / 4)) * 4;
                let value =
                    [0, 1, 0x7FFF_FFFF, 0x8000_0000, u32::MAX, 4096, 512][next() as usize % 7];
                target[at..at + 4].copy_from_slice(&u32::to_le_bytes(value));
            }
            _ => {
                let at = 512 + ((next() as usize) % 64) * 4;
                if at + 4 <= target.len() {
                    target[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                }
            }
        }
        let files = [
            LogFile {
                name: "LOG1".into(),
                bytes: &a,
            },
            LogFile {
                name: "LOG2".into(),
                bytes: &b,
            },
        ];
        if let Ok(r) = replay::recover(&p, &files) {
            assert_eq!(r.sequence_after.0, r.sequence_after.1);
            // The base block must pass nt-hive's checks (the cells may still be damaged).
            Hive::new(&r.bytes[..]).unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A SYSTEM hive before and after a few writes: a new value, a grown PFRO, a new key with a
/// value large enough to add hive bins.
fn hive_pair() -> (Vec<u8>, Vec<u8>) {
    let mut old = HiveWriter::new("ROOT");
    old.sequence_numbers(40, 40)
        .value("Select", "Current", REG_DWORD, &1u32.to_le_bytes())
        .value(
            SESSION_MANAGER,
            PFRO,
            REG_MULTI_SZ,
            &multi_sz(&["\\??\\C:\\old.tmp", ""]),
        );
    for i in 0..40 {
        old.value(
            &format!("ControlSet001\\Services\\svc{i:02}"),
            "ImagePath",
            REG_SZ,
            &support::regf::utf16z(&format!("C:\\Windows\\system32\\svc{i:02}.exe")),
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
        "ControlSet001\\Services\\svc07",
        "Start",
        REG_DWORD,
        &3u32.to_le_bytes(),
    )
    .value(
        "ControlSet001\\Services\\added",
        "Blob",
        3,
        &vec![0x5A; 9000],
    );
    let (old, new) = (old.to_bytes(), new.to_bytes());
    assert!(bins(&new).len() > bins(&old).len(), "the newer hive grows");
    assert!(changed_pages(&old, &new).len() >= 4);
    (old, new)
}

fn assert_recovers_to(r: &Recovery, dirty: &DirtyHive) {
    assert_eq!(bins(&r.bytes), dirty.expected_bins.as_slice(), "hive bins");
    assert_eq!(
        r.sequence_after,
        (dirty.expected_sequence, dirty.expected_sequence)
    );
    assert_eq!(r.entries_applied(), dirty.expected_entries);
    assert_eq!(
        (r.logs[0].entries_applied, r.logs[1].entries_applied),
        dirty.expected_entries_per_log
    );
    Hive::new(&r.bytes[..]).expect("nt-hive accepts the recovered hive");
}

#[test]
fn fixture_new_format_over_both_logs() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(4)
        .split(2, Slot::Log1)
        .build();
    assert_eq!(dirty.expected_entries, 4);
    assert_eq!(&dirty.primary[4..12], &[41, 0, 0, 0, 40, 0, 0, 0]);
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert_eq!(bins(&r.bytes), bins(&new));
    assert_eq!(r.sequence_after, (43, 43));
    assert_eq!(walk(&r.bytes), walk(&new));
    assert_eq!(
        value_bytes(&r.bytes, SESSION_MANAGER, PFRO),
        value_bytes(&new, SESSION_MANAGER, PFRO)
    );
}

#[test]
fn fixture_log2_may_hold_the_earlier_entries() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(4)
        .split(3, Slot::Log2)
        .build();
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert_eq!(dirty.expected_entries_per_log, (1, 3));
    assert_eq!(walk(&r.bytes), walk(&new));
}

#[test]
fn fixture_one_log_many_entries_and_a_stale_tail() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(3)
        .stale_entry_after_run()
        .build();
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert_eq!(bins(&r.bytes), bins(&new));
    assert_eq!(r.logs[0].entries_skipped, 1, "{}", notes(&r, 0));
    assert!(notes(&r, 0).contains("older than the"), "{}", notes(&r, 0));
    assert!(r.notes.is_empty(), "a stale tail is normal: {:?}", r.notes);
}

#[test]
fn fixture_corrupt_hash_in_the_second_entry_stops_replay() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(3)
        .corrupt_hash(1)
        .build();
    assert_eq!(dirty.expected_entries, 1);
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert_ne!(bins(&r.bytes), bins(&new));
    let why = notes(&r, 0);
    assert!(why.contains("Hash-1"), "{why}");
    assert_eq!(r.logs[0].entries_skipped, 2);
    assert!(
        r.notes.iter().any(|n| n.contains("damaged entry")),
        "{:?}",
        r.notes
    );
}

#[test]
fn fixture_corrupt_header_hash_stops_replay() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(3)
        .corrupt(2, Corruption::Hash2)
        .build();
    assert_eq!(dirty.expected_entries, 2);
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert!(notes(&r, 0).contains("Hash-2"), "{}", notes(&r, 0));
}

#[test]
fn fixture_corrupt_hash_in_the_first_log_keeps_the_second_out() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(4)
        .split(2, Slot::Log1)
        .corrupt_hash(1)
        .build();
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert_eq!(dirty.expected_entries_per_log, (1, 0));
    assert!(
        notes(&r, 1).contains("replay needs 41 next"),
        "{}",
        notes(&r, 1)
    );
}

#[test]
fn fixture_sequence_gap_stops_replay() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(3)
        .sequence_gap_after(0)
        .build();
    assert_eq!(dirty.expected_entries, 1);
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert!(notes(&r, 0).contains("first gap"), "{}", notes(&r, 0));
    assert!(
        r.notes.iter().any(|n| n.contains("sequence gap")),
        "{:?}",
        r.notes
    );
}

#[test]
fn fixture_gap_between_the_logs_keeps_the_second_out() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(4)
        .split(2, Slot::Log2)
        .sequence_gap_after(1)
        .build();
    assert_eq!(dirty.expected_entries_per_log, (0, 2));
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert!(!r.logs[0].applied);
    assert!(
        notes(&r, 0).contains("start at sequence 43"),
        "{}",
        notes(&r, 0)
    );
}

#[test]
fn fixture_log_older_than_the_primary_is_not_applied() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new)
        .entries(2)
        .stale_other_log()
        .build();
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert_eq!(bins(&r.bytes), bins(&new));
    assert!(!r.logs[1].applied);
    assert!(
        notes(&r, 1).contains("older than the primary"),
        "{}",
        notes(&r, 1)
    );
}

#[test]
fn fixture_entries_must_start_at_the_log_base_sequence() {
    // A log whose run starts after the primary's secondary sequence is applied (real logs do
    // this, SYSTEM_B's starts 486 later); one that starts before it is not.
    let (old, new) = hive_pair();
    let later = NewLogWriter::new(&old, &new).first_sequence(90).build();
    let r = recover_fixture(&later);
    assert_recovers_to(&r, &later);
    assert_eq!(r.sequence_after, (90, 90));

    let earlier = NewLogWriter::new(&old, &new).first_sequence(39).build();
    let files = [LogFile {
        name: "SYSTEM.LOG1".into(),
        bytes: &earlier.log1,
    }];
    let r = replay::recover(&earlier.primary, &files).unwrap();
    assert_eq!(r.entries_applied(), 0);
    assert_eq!(bins(&r.bytes), bins(&old));
    assert_eq!(r.sequence_after, (41, 41));
}

#[test]
fn fixture_old_format_log() {
    let (old, new) = hive_pair();
    let dirty = OldLogWriter::new(&old, &new).build();
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert_eq!(bins(&r.bytes), bins(&new));
    assert_eq!(r.logs[0].format, Some(LogFormat::Old));
    assert_eq!(r.logs[0].pages_applied, 8 * changed_pages(&old, &new).len());
    assert_eq!(walk(&r.bytes), walk(&new));

    let windows_2000 = OldLogWriter::new(&old, &new).file_type(2).build();
    assert_recovers_to(&recover_fixture(&windows_2000), &windows_2000);
}

#[test]
fn fixture_old_format_log_restores_a_damaged_base_block() {
    let (old, new) = hive_pair();
    let mut dirty = OldLogWriter::new(&old, &new).build();
    dirty.primary[200] ^= 0x55; // checksum now wrong
    let r = recover_fixture(&dirty);
    assert!(r.base_block_from_log);
    assert_recovers_to(&r, &dirty);
    assert_eq!(walk(&r.bytes), walk(&new));
}

#[test]
fn fixture_truncated_old_format_log_is_not_applied() {
    let (old, new) = hive_pair();
    let dirty = OldLogWriter::new(&old, &new).truncate_pages(3).build();
    let r = recover_fixture(&dirty);
    assert_recovers_to(&r, &dirty);
    assert!(notes(&r, 0).contains("truncated"), "{}", notes(&r, 0));
    assert!(r.notes[0].contains("nothing was applied"));
}

#[test]
fn fixture_damaged_primary_base_block_comes_from_the_newest_log() {
    let (old, new) = hive_pair();
    let mut dirty = NewLogWriter::new(&old, &new)
        .entries(4)
        .split(2, Slot::Log1)
        .build();
    dirty.primary[100] ^= 0xFF; // checksum now wrong
                                // Only the log with the latest entries is replayed, on the primary's own bins.
    let r = recover_fixture(&dirty);
    assert!(r.base_block_from_log);
    assert_eq!(r.logs[0].entries_applied, 0);
    assert_eq!(r.logs[1].entries_applied, 2);
    assert_eq!(r.sequence_after, (43, 43));
    let mut expected = bins(&old).to_vec();
    expected.resize(bins(&new).len(), 0);
    for entry in dirty.entries.iter().filter(|e| e.slot == Slot::Log2) {
        for &p in &entry.pages {
            expected[p..p + 4096].copy_from_slice(&bins(&new)[p..p + 4096]);
        }
    }
    assert_eq!(bins(&r.bytes), expected.as_slice());
    Hive::new(&r.bytes[..]).expect("nt-hive accepts the recovered base block");

    // Without any usable log, a damaged base block cannot be recovered.
    let err = replay::recover(&dirty.primary, &[]).unwrap_err();
    assert!(
        matches!(err, RecoveryError::BaseBlockDamaged { .. }),
        "{err}"
    );
}

#[test]
fn fixture_clean_primary_ignores_its_logs() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new).build();
    let files = [LogFile {
        name: "SYSTEM.LOG1".into(),
        bytes: &dirty.log1,
    }];
    let r = replay::recover(&old, &files).unwrap();
    assert!(!r.was_dirty);
    assert_eq!(r.bytes, old);
    assert_eq!(r.logs[0].entries_skipped, 1);
    assert!(notes(&r, 0).contains("clean"));
}

#[test]
fn fixture_log_of_another_hive_is_refused() {
    let (old, new) = hive_pair();
    let mut software = HiveWriter::new("ROOT");
    software
        .file_name("SOFTWARE")
        .value("Microsoft", "x", REG_DWORD, &[1, 0, 0, 0]);
    let mut software_new = software.clone();
    software_new.value("Microsoft", "y", REG_DWORD, &[2, 0, 0, 0]);
    let foreign = NewLogWriter::new(&software.to_bytes(), &software_new.to_bytes())
        .first_sequence(40)
        .build();
    let dirty = NewLogWriter::new(&old, &new).build();
    let files = [LogFile {
        name: "SOFTWARE.LOG1".into(),
        bytes: &foreign.log1,
    }];
    let r = replay::recover(&dirty.primary, &files).unwrap();
    assert_eq!(r.entries_applied(), 0);
    assert!(notes(&r, 0).contains("another hive"), "{}", notes(&r, 0));
}

#[test]
fn fixture_lying_entries_are_refused_without_allocating() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new).build();
    let page = vec![0u8; 4096];
    // Each case: a well-hashed entry whose fields lie.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // 2 GiB of hive bins from a 10 KiB log.
        (
            "more than the primary and the logs",
            log_entry(40, 0x8000_0000, &[(0, &page)]),
        ),
        ("outside", log_entry(40, 4096, &[(8192, &page)])),
        (
            "not a positive multiple of 4,096",
            log_entry(40, 4097, &[(0, &page)]),
        ),
        ("no dirty pages", log_entry(40, 8192, &[])),
    ];
    for (why, entry) in cases {
        let mut log = dirty.log1[..512].to_vec();
        log.extend_from_slice(&entry);
        let files = [LogFile {
            name: "SYSTEM.LOG1".into(),
            bytes: &log,
        }];
        let r = replay::recover(&dirty.primary, &files).unwrap();
        assert_eq!(r.entries_applied(), 0, "{why}");
        assert!(notes(&r, 0).contains(why), "{why}: {}", notes(&r, 0));
        assert_eq!(r.bytes.len(), dirty.primary.len(), "{why}: no growth");
    }
    // Lying size and count with matching hashes are caught before any use.
    let mut entry = log_entry(40, 8192, &[(0, &page)]);
    entry[20..24].copy_from_slice(&u32::MAX.to_le_bytes()); // page count
    let mut log = dirty.log1[..512].to_vec();
    log.extend_from_slice(&entry);
    let files = [LogFile {
        name: "SYSTEM.LOG1".into(),
        bytes: &log,
    }];
    let r = replay::recover(&dirty.primary, &files).unwrap();
    assert_eq!(r.entries_applied(), 0);
    assert!(notes(&r, 0).contains("Hash-2"), "{}", notes(&r, 0));
}

#[test]
fn fixture_every_truncation_of_a_log_is_safe() {
    let (old, new) = hive_pair();
    let dirty = NewLogWriter::new(&old, &new).entries(3).build();
    for len in (0..dirty.log1.len()).step_by(509) {
        let files = [LogFile {
            name: "SYSTEM.LOG1".into(),
            bytes: &dirty.log1[..len],
        }];
        let r = replay::recover(&dirty.primary, &files).unwrap();
        assert!(r.entries_applied() <= 3);
        Hive::new(&r.bytes[..]).unwrap_or_else(|e| panic!("cut at {len}: {e}"));
    }
}
