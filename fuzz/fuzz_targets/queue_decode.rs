//! (b) The registry queue from arbitrary value bytes: one or two `RawValue`s split from the
//! input. Byte 0: bit 0 = two values, bit 1 = first value not REG_MULTI_SZ, bit 2 = second
//! value not REG_MULTI_SZ; bytes 1-2: where the first value ends (little-endian, modulo the
//! rest's length); then the value bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::hive::RawValue;
use nextboot::queue::{decode_registry, Action};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (split, bytes) = match rest {
        [lo, hi, bytes @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), bytes),
        _ => (0, rest),
    };
    let data_type = |bit: u8| if flags & bit == 0 { 7 } else { 1 };
    let values = if flags & 1 == 0 {
        vec![RawValue {
            name: "PendingFileRenameOperations".into(),
            data_type: data_type(2),
            bytes: bytes.to_vec(),
        }]
    } else {
        let at = if bytes.is_empty() {
            0
        } else {
            split % (bytes.len() + 1)
        };
        vec![
            RawValue {
                name: "PendingFileRenameOperations".into(),
                data_type: data_type(2),
                bytes: bytes[..at].to_vec(),
            },
            RawValue {
                name: "PendingFileRenameOperations2".into(),
                data_type: data_type(4),
                bytes: bytes[at..].to_vec(),
            },
        ]
    };
    let queue = decode_registry(&values);
    // Every operation consumes at least one string, and a string at least one UTF-16 unit
    // (its NUL) except a final unterminated one per value.
    assert!(queue.operations.len() <= bytes.len() / 2 + 2);
    for (index, op) in queue.operations.iter().enumerate() {
        assert_eq!(op.index, index);
        assert_eq!(op.action == Action::Delete, op.destination.is_none());
        assert!(op.source.stored.ends_with(op.source.path()));
    }
});
