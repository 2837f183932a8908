//! Splitting REG_MULTI_SZ bytes into strings the way smss sees them.
//!
//! Decoded from the raw value bytes, bounded by the value's data length, because the usual
//! readers lose empty strings (nt-hive's `multi_string_data()` and notatin stop at the first
//! one, regipy drops them all), and an empty string here is a delete.
//!
//! The split follows the RTL routine smss uses: strings run to each NUL, and the final NUL of
//! the value is the list terminator, not a string. So `a\0b\0\0` is `a`, `b`; `src\0\0\0` (a
//! delete as MoveFileEx writes it) is `src`, ``; `a\0\0` is `a`. A value of nothing but NULs
//! holds no strings.

use std::sync::Arc;

/// One string of a multi-string value, with the raw UTF-16 units kept when they do not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WideString {
    /// Decoded text; unpaired surrogates become U+FFFD. Shared: the operation and the
    /// report's list of changed files hold the same string.
    pub text: Arc<str>,
    /// Index of the string's first UTF-16 unit in the value.
    pub unit_offset: usize,
    /// The raw units, hex-encoded little-endian, when `text` is not an exact decoding.
    pub raw_hex: Option<String>,
    /// The string ran to the end of the data without a NUL.
    pub unterminated: bool,
}

impl WideString {
    /// The string's UTF-16 units as stored (its raw bytes when it did not decode exactly).
    pub fn units(&self) -> Vec<u16> {
        match &self.raw_hex {
            Some(hex) => (0..hex.len() / 4)
                .filter_map(|i| {
                    let lo = u8::from_str_radix(hex.get(4 * i..4 * i + 2)?, 16).ok()?;
                    let hi = u8::from_str_radix(hex.get(4 * i + 2..4 * i + 4)?, 16).ok()?;
                    Some(u16::from_le_bytes([lo, hi]))
                })
                .collect(),
            None => self.text.encode_utf16().collect(),
        }
    }
}

/// Oddities of a value's layout that do not stop decoding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The byte length is odd: the last byte belongs to no UTF-16 unit and is ignored.
    pub odd_length: bool,
    /// The data does not end with a NUL (the last string is unterminated).
    pub missing_terminator: bool,
    /// The data ends with one NUL only: the list terminator is missing.
    pub missing_list_terminator: bool,
}

pub fn split(bytes: &[u8]) -> (Vec<WideString>, Layout) {
    let mut strings = Vec::new();
    let layout = for_each(bytes, |string| strings.push(string));
    (strings, layout)
}

/// At most how many strings [`split`] returns (one per NUL, and an unterminated last one),
/// counted without decoding: to size the queue once.
pub fn max_strings(bytes: &[u8]) -> usize {
    bytes.chunks_exact(2).filter(|unit| unit == &[0, 0]).count() + 1
}

/// Like [`split`], handing each string to `visit` as it is decoded, without holding the whole
/// list (a queue of 100,000 operations is 200,000 strings).
pub fn for_each(bytes: &[u8], mut visit: impl FnMut(WideString)) -> Layout {
    let mut units: Vec<u16> = Vec::new();
    let mut text = String::new();
    spans(bytes, |start, stop| {
        units.clear();
        units.extend((start..stop).map(|i| unit(bytes, i)));
        visit(decode(&units, &mut text, start, stop == bytes.len() / 2));
    })
}

fn unit(bytes: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])
}

/// The split itself: each string as a range of UTF-16 units `start..stop`, in order.
fn spans(bytes: &[u8], mut visit: impl FnMut(usize, usize)) -> Layout {
    let mut layout = Layout {
        odd_length: bytes.len() % 2 == 1,
        ..Layout::default()
    };
    let count = bytes.len() / 2;
    let unit = |i: usize| unit(bytes, i);
    if (0..count).all(|i| unit(i) == 0) {
        return layout;
    }
    let end = if unit(count - 1) == 0 {
        count - 1
    } else {
        layout.missing_terminator = true;
        count
    };
    if !layout.missing_terminator && count >= 2 && unit(count - 2) != 0 {
        layout.missing_list_terminator = true;
    }
    let mut start = 0;
    while start < end {
        let mut stop = start;
        while stop < count && unit(stop) != 0 {
            stop += 1;
        }
        visit(start, stop);
        start = stop + 1;
    }
    layout
}

/// Decodes through `buffer` so that each string is allocated once, at its exact size.
fn decode(
    units: &[u16],
    buffer: &mut String,
    unit_offset: usize,
    unterminated: bool,
) -> WideString {
    buffer.clear();
    buffer.reserve(units.len());
    let mut exact = true;
    if units.iter().all(|&u| u < 0x80) {
        // Queue paths are nearly always ASCII: one byte per unit.
        buffer.extend(units.iter().map(|&u| char::from(u as u8)));
    } else {
        for c in char::decode_utf16(units.iter().copied()) {
            buffer.push(c.unwrap_or_else(|_| {
                exact = false;
                char::REPLACEMENT_CHARACTER
            }));
        }
    }
    WideString {
        text: Arc::from(buffer.as_str()),
        unit_offset,
        raw_hex: (!exact).then(|| {
            units
                .iter()
                .flat_map(|unit| unit.to_le_bytes())
                .map(|byte| format!("{byte:02x}"))
                .collect()
        }),
        unterminated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn texts(bytes: &[u8]) -> Vec<String> {
        let (strings, _) = split(bytes);
        assert!(strings.len() <= max_strings(bytes));
        strings.into_iter().map(|s| s.text.to_string()).collect()
    }

    #[test]
    fn final_nul_is_the_list_terminator() {
        assert_eq!(texts(&wide("a\0b\0\0")), ["a", "b"]);
        assert_eq!(texts(&wide("src\0\0\0")), ["src", ""]);
        assert_eq!(texts(&wide("a\0\0")), ["a"]);
        assert!(texts(&wide("\0\0")).is_empty());
        assert!(texts(b"").is_empty());
    }

    #[test]
    fn empty_strings_inside_the_list_are_kept() {
        assert_eq!(
            texts(&wide("del1\0\0src\0!dst\0del2\0\0\0")),
            ["del1", "", "src", "!dst", "del2", ""]
        );
    }

    #[test]
    fn missing_terminators_are_reported_not_fatal() {
        let (strings, layout) = split(&wide("a\0b"));
        assert_eq!(strings.len(), 2);
        assert!(strings[1].unterminated);
        assert!(layout.missing_terminator);
        let (strings, layout) = split(&wide("a\0"));
        assert_eq!(strings.len(), 1);
        assert!(layout.missing_list_terminator);
    }

    #[test]
    fn odd_length_ignores_the_last_byte() {
        let mut bytes = wide("ab\0\0");
        bytes.push(0x41);
        let (strings, layout) = split(&bytes);
        assert!(layout.odd_length);
        assert_eq!(&*strings[0].text, "ab");
    }

    #[test]
    fn unpaired_surrogates_keep_raw_bytes() {
        let mut bytes = wide("x");
        bytes.extend_from_slice(&0xd800u16.to_le_bytes());
        bytes.extend_from_slice(&wide("y\0\0"));
        let (strings, _) = split(&bytes);
        assert_eq!(&*strings[0].text, "x\u{fffd}y");
        assert_eq!(strings[0].raw_hex.as_deref(), Some("780000d87900"));
    }

    #[test]
    fn unit_offsets_point_at_each_string() {
        let (strings, _) = split(&wide("ab\0\0cd\0\0"));
        let offsets: Vec<usize> = strings.iter().map(|s| s.unit_offset).collect();
        assert_eq!(offsets, [0, 3, 4]);
    }
}
