//! Unit tests of the cell checks; `tests/malformed.rs` runs them on real and damaged hives.

use super::*;

/// A cell of `size` bytes (header included) at the end of `data`, payload `payload`.
fn push_cell(data: &mut Vec<u8>, payload: &[u8]) -> u32 {
    let offset = data.len() as u32;
    let size = (payload.len() + CELL_HEADER).next_multiple_of(8);
    data.extend_from_slice(&(-(size as i32)).to_le_bytes());
    data.extend_from_slice(payload);
    data.resize(offset as usize + size, 0);
    offset
}

fn nk(subkeys: u32, values_count: u32, values: u32) -> Vec<u8> {
    let mut payload = vec![0u8; NK_HEADER];
    payload[..2].copy_from_slice(b"nk");
    payload[28..32].copy_from_slice(&subkeys.to_le_bytes());
    payload[36..40].copy_from_slice(&values_count.to_le_bytes());
    payload[40..44].copy_from_slice(&values.to_le_bytes());
    payload
}

fn list(signature: &[u8; 2], offsets: &[u32], item_size: usize) -> Vec<u8> {
    let mut payload = signature.to_vec();
    payload.extend_from_slice(&(offsets.len() as u16).to_le_bytes());
    for offset in offsets {
        let mut item = offset.to_le_bytes().to_vec();
        item.resize(item_size, 0);
        payload.extend_from_slice(&item);
    }
    payload
}

fn vk(size: u32, data: u32) -> Vec<u8> {
    let mut payload = vec![0u8; VK_HEADER];
    payload[..2].copy_from_slice(b"vk");
    payload[4..8].copy_from_slice(&size.to_le_bytes());
    payload[8..12].copy_from_slice(&data.to_le_bytes());
    payload
}

#[test]
fn cells_that_are_not_there_are_damage() {
    let mut data = vec![0u8; 8]; // a zeroed cell at 0
    let good = push_cell(&mut data, &nk(NO_CELL, 0, NO_CELL));
    let cells = Cells::new(&data);
    assert!(cells.key(good, "k").is_ok());
    for (offset, says) in [
        (NO_CELL, "0xffffffff"),
        (0, "zeroed"),
        (data.len() as u32, "outside"),
        (data.len() as u32 - 2, "outside"),
    ] {
        let err = cells.key(offset, "k").unwrap_err();
        assert!(err.to_string().contains(says), "{offset:#x}: {err}");
    }
    // A size running past the end, and a size that is not a multiple of 8.
    let mut data = Vec::new();
    data.extend_from_slice(&(-4096i32).to_le_bytes());
    data.resize(64, 0);
    assert!(Cells::new(&data)
        .key(0, "k")
        .unwrap_err()
        .to_string()
        .contains("past the end"));
    data[..4].copy_from_slice(&(-12i32).to_le_bytes());
    assert!(Cells::new(&data)
        .key(0, "k")
        .unwrap_err()
        .to_string()
        .contains("impossible size"));
}

#[test]
fn subkey_lists_that_loop_are_damage() {
    let mut data = Vec::new();
    let child = push_cell(&mut data, &nk(NO_CELL, 0, NO_CELL));
    // Parent at a known offset: a list naming the parent itself.
    let parent_at = data.len() as u32;
    let list_at = parent_at + (NK_HEADER as u32 + 4).next_multiple_of(8);
    let parent = push_cell(&mut data, &nk(list_at, 0, NO_CELL));
    assert_eq!(parent, parent_at);
    push_cell(&mut data, &list(b"lh", &[child, parent], 8));
    let cells = Cells::new(&data);
    let key = cells.key(parent, "p").unwrap();
    assert!(cells
        .subkeys(&key, &[], "p")
        .unwrap_err()
        .to_string()
        .contains("loops"));

    // The same child twice, and an index root naming one leaf twice.
    let mut data = Vec::new();
    let child = push_cell(&mut data, &nk(NO_CELL, 0, NO_CELL));
    let twice = push_cell(&mut data, &list(b"li", &[child, child], 4));
    let leaf = push_cell(&mut data, &list(b"lf", &[child], 8));
    let ri = push_cell(&mut data, &list(b"ri", &[leaf, leaf], 4));
    let ok = push_cell(&mut data, &list(b"ri", &[leaf], 4));
    let key_twice = push_cell(&mut data, &nk(twice, 0, NO_CELL));
    let key_ri = push_cell(&mut data, &nk(ri, 0, NO_CELL));
    let key_ok = push_cell(&mut data, &nk(ok, 0, NO_CELL));
    let cells = Cells::new(&data);
    let err = |at| {
        let key = cells.key(at, "k").unwrap();
        cells.subkeys(&key, &[], "k").unwrap_err().to_string()
    };
    assert!(err(key_twice).contains("twice"));
    assert!(err(key_ri).contains("index leaf"));
    let key = cells.key(key_ok, "k").unwrap();
    assert_eq!(cells.subkeys(&key, &[], "k").unwrap(), [child]);
    // A child that is an ancestor on the walk.
    assert!(cells
        .subkeys(&key, &[child], "k")
        .unwrap_err()
        .to_string()
        .contains("one above it"));
}

#[test]
fn shared_lists_cannot_make_unbounded_work() {
    // One value list of 20,000 entries naming distinct values, shared by every key that
    // asks: each full check costs 20,000 entries, and the hive's size bounds the total.
    let mut data = Vec::new();
    let values: Vec<u32> = (0..20_000)
        .map(|_| push_cell(&mut data, &vk(DATA_INLINE, 0)))
        .collect();
    let list: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let list = push_cell(&mut data, &list);
    let key = push_cell(&mut data, &nk(NO_CELL, values.len() as u32, list));
    let cells = Cells::new(&data);
    let key = cells.key(key, "k").unwrap();
    let mut rounds = 0;
    while cells.values(&key, "k").is_ok() {
        rounds += 1;
        assert!(rounds < 1000, "no bound");
    }
    // 24 bytes a value cell, 4 an entry: the budget (one entry per byte) allows 28.
    assert_eq!(rounds, 28);
    assert!(cells
        .values(&key, "k")
        .unwrap_err()
        .to_string()
        .contains("more entries"));
}

#[test]
fn value_data_is_checked_before_reading() {
    let mut data = Vec::new();
    let small = push_cell(&mut data, &[7u8; 16]);
    let v_small = push_cell(&mut data, &vk(16, small));
    let v_no_cell = push_cell(&mut data, &vk(0, NO_CELL));
    let v_missing = push_cell(&mut data, &vk(8, NO_CELL));
    let v_huge = push_cell(&mut data, &vk(0x7fff_0000, small));
    let v_inline = push_cell(&mut data, &vk(DATA_INLINE | 4, 0x1234));
    // Big data whose segment list names one segment twice.
    let segment = push_cell(&mut data, &vec![1u8; BIG_DATA_SEGMENT]);
    let seglist = push_cell(
        &mut data,
        &[segment.to_le_bytes(), segment.to_le_bytes()].concat(),
    );
    let mut db = b"db".to_vec();
    db.extend_from_slice(&2u16.to_le_bytes());
    db.extend_from_slice(&seglist.to_le_bytes());
    let db = push_cell(&mut data, &db);
    let v_big = push_cell(&mut data, &vk(BIG_DATA_SEGMENT as u32 + 10, db));
    let cells = Cells::new(&data);
    let limit = cells.len();
    assert_eq!(
        cells.value_data(v_small, limit, "v"),
        Ok(DataCheck::Readable)
    );
    assert_eq!(
        cells.value_data(v_inline, limit, "v"),
        Ok(DataCheck::Readable)
    );
    assert_eq!(
        cells.value_data(v_no_cell, limit, "v"),
        Ok(DataCheck::Empty)
    );
    assert!(cells
        .value_data(v_missing, limit, "v")
        .unwrap_err()
        .to_string()
        .contains("0xffffffff"));
    assert!(cells
        .value_data(v_huge, limit, "v")
        .unwrap_err()
        .to_string()
        .contains("more than"));
    assert!(cells
        .value_data(v_big, limit, "v")
        .unwrap_err()
        .to_string()
        .contains("twice"));
}

#[test]
fn damage_reads_as_the_report_words_it() {
    let what = || "the subkey list of X".to_string();
    let cases = [
        (
            Damage::TooManyEntries {
                what: what(),
                bins_size: 8192,
            },
            "the subkey list of X: the hive's lists name more entries in all than its 8192 bytes can hold (lists shared or looping)",
        ),
        (
            Damage::CellTooSmall {
                what: what(),
                size: 20000,
            },
            "the subkey list of X: its cell is smaller than 20000 bytes",
        ),
        (
            Damage::NoCell { what: what() },
            "the subkey list of X has no cell (offset 0xffffffff) where one is required",
        ),
        (
            Damage::OutsideBins {
                what: what(),
                offset: 0x3020,
                bins_size: 8192,
            },
            "the subkey list of X points to offset 0x3020, outside the 8192 bytes of hive bins",
        ),
        (
            Damage::NotAllocated {
                what: what(),
                offset: 0x1020,
                size_field: 0,
            },
            "the subkey list of X points to offset 0x1020, which is not an allocated cell (size field 0, zeroed)",
        ),
        (
            Damage::NotAllocated {
                what: what(),
                offset: 0x1020,
                size_field: 16,
            },
            "the subkey list of X points to offset 0x1020, which is not an allocated cell (size field 16, a free cell)",
        ),
        (
            Damage::ImpossibleSize {
                what: what(),
                offset: 0x1020,
                size: 12,
            },
            "the subkey list of X: the cell at offset 0x1020 has an impossible size of 12 bytes (cells are multiples of 8)",
        ),
        (
            Damage::PastEnd {
                what: what(),
                offset: 0x1020,
                size: 4096,
                bins_size: 64,
            },
            "the subkey list of X: the cell at offset 0x1020 declares 4096 bytes, past the end of the hive bins (64 bytes)",
        ),
        (
            Damage::WrongKind {
                what: what(),
                offset: 0x1020,
                expected: CellKind::Key,
            },
            "the subkey list of X: the cell at offset 0x1020 is not a key (nk) cell",
        ),
        (
            Damage::WrongKind {
                what: what(),
                offset: 0x1020,
                expected: CellKind::Value,
            },
            "the subkey list of X: the cell at offset 0x1020 is not a value (vk) cell",
        ),
        (
            Damage::WrongKind {
                what: what(),
                offset: 0x1020,
                expected: CellKind::IndexLeaf,
            },
            "the subkey list of X: the cell at offset 0x1020 is not an lf, lh or li list",
        ),
        (
            Damage::WrongKind {
                what: what(),
                offset: 0x1020,
                expected: CellKind::SubkeyList,
            },
            "the subkey list of X: the cell at offset 0x1020 is not a subkey list (lf, lh, li or ri)",
        ),
        (
            Damage::Loops {
                what: what(),
                offset: 0x1020,
                named: CellKind::IndexLeaf,
            },
            "the subkey list of X names the index leaf at offset 0x1020 twice (a list that loops)",
        ),
        (
            Damage::Loops {
                what: what(),
                offset: 0x1020,
                named: CellKind::Key,
            },
            "the subkey list of X names the key at offset 0x1020 twice (a list that loops)",
        ),
        (
            Damage::Repeated {
                what: what(),
                offset: 0x1020,
                named: CellKind::Value,
            },
            "the subkey list of X names the value at offset 0x1020 twice",
        ),
        (
            Damage::Repeated {
                what: what(),
                offset: 0x1020,
                named: CellKind::Segment,
            },
            "the subkey list of X names the segment at offset 0x1020 twice",
        ),
        (
            Damage::NamesAncestor {
                what: what(),
                offset: 0x1020,
                subkey: None,
            },
            "the subkey list of X names the key at offset 0x1020, which is the key itself or one above it (a list that loops)",
        ),
        (
            Damage::NamesAncestor {
                what: what(),
                offset: 0x1020,
                subkey: Some("Control".into()),
            },
            "the subkey list of X names the key at offset 0x1020 as its subkey Control, which is the key itself or one above it (a list that loops)",
        ),
        (
            Damage::EmptyLeaf { what: what() },
            "the subkey list of X is empty",
        ),
        (
            Damage::NameOverflow {
                what: what(),
                kind: CellKind::Key,
                offset: 0x1020,
                length: 300,
            },
            "the subkey list of X: the key at offset 0x1020 has a 300-byte name that does not fit its cell",
        ),
        (
            Damage::NameOverflow {
                what: what(),
                kind: CellKind::Value,
                offset: 0x1020,
                length: 300,
            },
            "the subkey list of X: the value at offset 0x1020 has a 300-byte name that does not fit its cell",
        ),
        (
            Damage::ListOverflow {
                what: what(),
                list: ListKind::Subkeys,
                count: 9,
                held: 12,
            },
            "the subkey list of X declares 9 entries, but its cell holds 12 bytes",
        ),
        (
            Damage::ListOverflow {
                what: what(),
                list: ListKind::Values,
                count: 9,
                held: 12,
            },
            "the subkey list of X declares 9 values, but its cell holds 12 bytes",
        ),
        (
            Damage::ListOverflow {
                what: what(),
                list: ListKind::Segments,
                count: 9,
                held: 12,
            },
            "the subkey list of X declares 9 segments, but its cell holds 12 bytes",
        ),
        (
            Damage::DataTooLarge {
                what: what(),
                size: 99999,
                limit: 8192,
            },
            "the subkey list of X declares 99999 bytes of data, more than the 8192 bytes the hive bins hold",
        ),
        (
            Damage::TooFewSegments {
                what: what(),
                segments: 1,
                size: 20000,
            },
            "the subkey list of X: 1 big-data segments cannot hold its 20000 bytes",
        ),
        (
            Damage::ShortSegment {
                what: what(),
                held: 100,
                wanted: 16344,
            },
            "the subkey list of X holds 100 bytes, not the 16344 its value needs",
        ),
        (
            Damage::Unlocated {
                kind: CellKind::Key,
            },
            "its key cell cannot be located",
        ),
        (
            Damage::Unlocated {
                kind: CellKind::Value,
            },
            "its value cell cannot be located",
        ),
        (
            Damage::ReaderDisagrees,
            "the hive reader found another key cell than the checks did",
        ),
        (
            Damage::ValuesTooLarge { bins_size: 8192 },
            "its values declare more data in all than the 8192 bytes of hive bins",
        ),
    ];
    for (damage, text) in cases {
        assert_eq!(damage.to_string(), text);
    }
}
