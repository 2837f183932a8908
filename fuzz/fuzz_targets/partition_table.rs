//! (j) The partition-table reader on arbitrary bytes taken as a whole disk: a GPT at 512- or
//! 4096-byte sectors with its backup, an MBR with its EBR chains, a volume boot sector. It
//! must never panic, loop or allocate without bound, and what it lists must lie inside the
//! disk (a partition past the end is kept with its size cut to what the disk holds).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::evidence::image::partition::{read_partition_table, Scheme};
use nextboot::evidence::image::ReadAt;

fuzz_target!(|data: &[u8]| {
    let disk: Vec<u8> = data.to_vec();
    let len = ReadAt::len(&disk);
    let Ok(table) = read_partition_table(&disk) else {
        return;
    };
    if table.scheme == Scheme::None {
        assert!(table.partitions.is_empty(), "{table:?}");
    }
    assert!(table.sector_size == 512 || table.sector_size == 4096);
    for p in &table.partitions {
        assert!(p.number >= 1, "{p:?}");
        assert!(p.size <= p.recorded_size, "{p:?}");
        if p.size > 0 {
            let end = p
                .offset
                .checked_add(p.size)
                .expect("offset + size overflows");
            assert!(end <= len, "partition past the disk ({len} bytes): {p:?}");
        } else {
            // Kept with size 0: it starts at or past the end, or the table says it is empty.
            assert!(p.offset >= len || p.recorded_size == 0, "{p:?}");
        }
    }
});
