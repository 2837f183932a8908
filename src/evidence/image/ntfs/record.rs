//! MFT records and their attributes: the update sequence fixups, attribute headers, and the
//! run lists of non-resident attributes.

use super::NtfsError;

pub const ATTR_ATTRIBUTE_LIST: u32 = 0x20;
pub const ATTR_VOLUME_NAME: u32 = 0x60;
pub const ATTR_VOLUME_INFORMATION: u32 = 0x70;
pub const ATTR_DATA: u32 = 0x80;
pub const ATTR_INDEX_ROOT: u32 = 0x90;
pub const ATTR_INDEX_ALLOCATION: u32 = 0xa0;
pub const ATTR_REPARSE_POINT: u32 = 0xc0;
const ATTR_END: u32 = 0xffff_ffff;

/// Attribute flags.
pub const FLAG_COMPRESSED: u16 = 0x0001;
pub const FLAG_ENCRYPTED: u16 = 0x4000;

/// Record header flags.
pub const RECORD_IN_USE: u16 = 0x0001;
pub const RECORD_DIRECTORY: u16 = 0x0002;

pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Applies the update sequence array of a multi-sector structure (`FILE` or `INDX`) in place:
/// the last two bytes of every 512-byte stride must hold the sequence number, and get back
/// the bytes the array saved. A mismatch is a torn write: the structure is not used.
pub fn apply_fixups(buf: &mut [u8], magic: &[u8; 4], what: &str, at: u64) -> Result<(), NtfsError> {
    let damaged = |why: String| NtfsError::Damaged {
        what: what.to_string(),
        offset: at,
        why,
    };
    if buf.get(..4) != Some(magic) {
        return Err(damaged(format!(
            "signature {:02x?} where {:?} was expected",
            buf.get(..4).unwrap_or(&[]),
            String::from_utf8_lossy(magic)
        )));
    }
    let usa_offset = usize::from(u16_at(buf, 4).unwrap_or(0));
    let usa_count = usize::from(u16_at(buf, 6).unwrap_or(0));
    let strides = buf.len() / 512;
    if usa_count != strides + 1 || usa_offset + usa_count * 2 > buf.len() || usa_offset < 8 {
        return Err(damaged(format!(
            "update sequence array of {usa_count} entries at {usa_offset} does not fit {} bytes",
            buf.len()
        )));
    }
    let usn = [buf[usa_offset], buf[usa_offset + 1]];
    // Every stride is checked before any is restored: a refused structure is left as read.
    if let Some(i) = (0..strides).find(|i| buf[(i + 1) * 512 - 2..(i + 1) * 512] != usn) {
        return Err(damaged(format!(
            "sector {i} was not completely written (update sequence mismatch)"
        )));
    }
    for i in 0..strides {
        let end = (i + 1) * 512 - 2;
        let saved = usa_offset + 2 * (i + 1);
        buf[end] = buf[saved];
        buf[end + 1] = buf[saved + 1];
    }
    Ok(())
}

/// One run of a non-resident attribute: `len` clusters from virtual cluster `vcn`, at logical
/// cluster `lcn` or sparse (`None`: reads as zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub vcn: u64,
    pub lcn: Option<u64>,
    pub len: u64,
}

/// Decodes a run list (mapping pairs) starting at `first_vcn`, appending to `runs`.
pub fn decode_runs(
    bytes: &[u8],
    first_vcn: u64,
    runs: &mut Vec<Run>,
    limit: usize,
) -> Result<(), String> {
    let mut at = 0;
    let mut vcn = first_vcn;
    let mut lcn: i64 = 0;
    while let Some(&header) = bytes.get(at) {
        if header == 0 {
            return Ok(());
        }
        let len_size = usize::from(header & 0x0f);
        let off_size = usize::from(header >> 4);
        if len_size == 0 || len_size > 8 || off_size > 8 {
            return Err(format!("run header {header:#04x} at byte {at} is invalid"));
        }
        let field = |start: usize, size: usize, signed: bool| -> Option<i64> {
            let raw = bytes.get(start..start + size)?;
            let mut value: u64 = 0;
            for (i, b) in raw.iter().enumerate() {
                value |= u64::from(*b) << (8 * i);
            }
            if signed && size < 8 && raw.last().is_some_and(|b| b & 0x80 != 0) {
                value |= u64::MAX << (8 * size);
            }
            Some(value as i64)
        };
        let len = field(at + 1, len_size, false)
            .ok_or_else(|| format!("run at byte {at} is cut short"))? as u64;
        if len == 0 || len > 1 << 48 {
            return Err(format!("run at byte {at} has length {len}"));
        }
        let target = if off_size == 0 {
            None
        } else {
            let delta = field(at + 1 + len_size, off_size, true)
                .ok_or_else(|| format!("run at byte {at} is cut short"))?;
            lcn = lcn
                .checked_add(delta)
                .filter(|l| *l >= 0)
                .ok_or_else(|| format!("run at byte {at} points before the volume"))?;
            Some(lcn as u64)
        };
        if runs.len() >= limit {
            return Err(format!("more than {limit} runs"));
        }
        runs.push(Run {
            vcn,
            lcn: target,
            len,
        });
        vcn = vcn
            .checked_add(len)
            .ok_or_else(|| "run list overflows".to_string())?;
        at += 1 + len_size + off_size;
    }
    Err("run list is not terminated".into())
}

/// One attribute as its record holds it.
#[derive(Clone, Debug)]
pub struct RawAttribute {
    pub kind: u32,
    pub name: Vec<u16>,
    pub flags: u16,
    pub instance: u16,
    pub body: RawBody,
}

#[derive(Clone, Debug)]
pub enum RawBody {
    Resident(Vec<u8>),
    NonResident {
        lowest_vcn: u64,
        compression_unit: u8,
        data_size: u64,
        initialized_size: u64,
        runs: Vec<Run>,
    },
}

/// The header of one MFT record and its attributes, fixups applied.
#[derive(Debug)]
pub struct RawRecord {
    pub sequence: u16,
    pub flags: u16,
    /// The base record's number for an extension record; 0 for a base record.
    pub base: u64,
    pub attributes: Vec<RawAttribute>,
}

/// At most this many runs per attribute extent and per merged attribute: a record holds a few
/// hundred at most; an attribute list of extents a few hundred thousand.
pub const RUN_LIMIT: usize = 1 << 20;

/// Parses one record (`buf`: the record's bytes as read, fixups not yet applied).
pub fn parse_record(mut buf: Vec<u8>, number: u64, at: u64) -> Result<RawRecord, NtfsError> {
    let what = format!("MFT record {number}");
    apply_fixups(&mut buf, b"FILE", &what, at)?;
    let damaged = |why: String| NtfsError::Damaged {
        what: what.clone(),
        offset: at,
        why,
    };
    let sequence = u16_at(&buf, 16).unwrap_or(0);
    let first = usize::from(u16_at(&buf, 20).unwrap_or(0));
    let flags = u16_at(&buf, 22).unwrap_or(0);
    let used = (u32_at(&buf, 24).unwrap_or(0) as usize).min(buf.len());
    let base = u64_at(&buf, 32).unwrap_or(0) & 0x0000_ffff_ffff_ffff;
    let mut attributes = Vec::new();
    let mut offset = first;
    loop {
        let Some(kind) = u32_at(&buf, offset) else {
            return Err(damaged(format!(
                "attribute at byte {offset} is past the record's end"
            )));
        };
        if kind == ATTR_END {
            break;
        }
        let length = u32_at(&buf, offset + 4).unwrap_or(0) as usize;
        if length < 24 || offset + length > used || length % 8 != 0 {
            return Err(damaged(format!(
                "attribute {kind:#x} at byte {offset} has length {length} (record uses {used} bytes)"
            )));
        }
        let attr = &buf[offset..offset + length];
        attributes.push(
            parse_attribute(attr)
                .map_err(|why| damaged(format!("attribute {kind:#x} at byte {offset}: {why}")))?,
        );
        offset += length;
    }
    Ok(RawRecord {
        sequence,
        flags,
        base,
        attributes,
    })
}

fn parse_attribute(attr: &[u8]) -> Result<RawAttribute, String> {
    let kind = u32_at(attr, 0).unwrap_or(0);
    let non_resident = attr[8] != 0;
    let name_len = usize::from(attr[9]);
    let name_off = usize::from(u16_at(attr, 10).unwrap_or(0));
    let flags = u16_at(attr, 12).unwrap_or(0);
    let instance = u16_at(attr, 14).unwrap_or(0);
    let name = attr
        .get(name_off..name_off + 2 * name_len)
        .ok_or("its name is past its end")?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let body = if !non_resident {
        let len = u32_at(attr, 16).unwrap_or(0) as usize;
        let off = usize::from(u16_at(attr, 20).unwrap_or(0));
        let value = attr
            .get(off..off.checked_add(len).ok_or("value overflows")?)
            .ok_or("its value is past its end")?;
        RawBody::Resident(value.to_vec())
    } else {
        if attr.len() < 64 {
            return Err("a non-resident header shorter than 64 bytes".into());
        }
        let lowest_vcn = u64_at(attr, 16).unwrap_or(0);
        let pairs = usize::from(u16_at(attr, 32).unwrap_or(0));
        let mut runs = Vec::new();
        decode_runs(
            attr.get(pairs..).ok_or("its run list is past its end")?,
            lowest_vcn,
            &mut runs,
            RUN_LIMIT,
        )?;
        RawBody::NonResident {
            lowest_vcn,
            compression_unit: attr[34],
            data_size: u64_at(attr, 48).unwrap_or(0),
            initialized_size: u64_at(attr, 56).unwrap_or(0),
            runs,
        }
    };
    Ok(RawAttribute {
        kind,
        name,
        flags,
        instance,
        body,
    })
}

/// One entry of an `$ATTRIBUTE_LIST`: where an attribute (or one extent of it) lives.
#[derive(Clone, Debug)]
pub struct ListEntry {
    pub kind: u32,
    pub name: Vec<u16>,
    pub record: u64,
    pub instance: u16,
}

pub fn parse_attribute_list(bytes: &[u8]) -> Result<Vec<ListEntry>, String> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 26 <= bytes.len() {
        let kind = u32_at(bytes, at).unwrap_or(0);
        let length = usize::from(u16_at(bytes, at + 4).unwrap_or(0));
        if kind == 0 || kind == ATTR_END {
            break;
        }
        if length < 26 || at + length > bytes.len() {
            return Err(format!("entry at byte {at} has length {length}"));
        }
        let name_len = usize::from(bytes[at + 6]);
        let name_off = usize::from(bytes[at + 7]);
        let name = bytes
            .get(at + name_off..at + name_off + 2 * name_len)
            .ok_or_else(|| format!("entry at byte {at}: name past its end"))?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        entries.push(ListEntry {
            kind,
            name,
            record: u64_at(bytes, at + 16).unwrap_or(0) & 0x0000_ffff_ffff_ffff,
            instance: u16_at(bytes, at + 24).unwrap_or(0),
        });
        at += length;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_a_negative_delta_and_a_sparse_run() {
        // 0x21: 1-byte length, 2-byte offset. 16 clusters at 0x1000; 8 sparse; 4 at 0x1000-0x10.
        let bytes = [0x21, 0x10, 0x00, 0x10, 0x01, 0x08, 0x11, 0x04, 0xf0, 0x00];
        let mut runs = Vec::new();
        decode_runs(&bytes, 0, &mut runs, 10).unwrap();
        assert_eq!(
            runs,
            vec![
                Run {
                    vcn: 0,
                    lcn: Some(0x1000),
                    len: 16
                },
                Run {
                    vcn: 16,
                    lcn: None,
                    len: 8
                },
                Run {
                    vcn: 24,
                    lcn: Some(0x0ff0),
                    len: 4
                },
            ]
        );
    }

    #[test]
    fn runs_before_the_volume_are_refused() {
        let bytes = [0x11, 0x04, 0xf0, 0x00];
        assert!(decode_runs(&bytes, 0, &mut Vec::new(), 10).is_err());
    }

    #[test]
    fn a_torn_record_is_refused() {
        let mut buf = vec![0u8; 1024];
        buf[..4].copy_from_slice(b"FILE");
        buf[4] = 48; // usa offset
        buf[6] = 3; // usa count
        buf[48] = 0x11;
        buf[510] = 0x11;
        buf[1022] = 0x12; // the second sector was not rewritten
        assert!(apply_fixups(&mut buf, b"FILE", "test", 0).is_err());
        buf[1022] = 0x11;
        buf[50] = 0xaa;
        assert!(apply_fixups(&mut buf, b"FILE", "test", 0).is_ok());
        assert_eq!(buf[510], 0xaa);
    }
}
