//! 8.3 short names: recognise them in the queue and find the long name they stand for.
//!
//! The queue may name a file by its 8.3 alias (`\??\C:\PROGRA~1\Vendor\SET4A2~1.TMP`), but a
//! volume mounted on Linux shows long names only. Windows derives the alias from the long name
//! when the file is created, so the long names in a directory that could have produced a given
//! alias can be found by running the same derivation. Which of them actually holds the alias
//! depends on the order the files were created in, which the listing does not tell; so
//! [`candidates`] returns every entry that could hold it, and its caller accepts only a unique
//! answer.
//!
//! The rules, their sources, and what is unconfirmed (the checksum, rule 8) are in
//! `docs/paths.md`, "8.3 short names"; comments here cite the rules by number.

/// Characters that a short name may not contain and that the generator turns into `_`
/// (ReactOS `RtlpShortIllegals`, less the control characters, which are removed before).
const SHORT_ILLEGAL: &str = "\"*+,/:;<=>?[\\]|";

/// Characters of the basis a plain (checksum-free) short name keeps.
const PLAIN_BASIS_LEN: usize = 6;

/// Characters of the basis kept in front of the checksum.
const CHECKSUM_BASIS_LEN: usize = 2;

/// A basis this short gets the checksum from the first step on.
const SHORT_BASIS_MAX: usize = 2;

/// Steps that use the plain basis before the checksum is inserted.
const PLAIN_STEPS: u32 = 4;

/// Most characters in front of the extension.
const MAX_BASE_LEN: usize = 8;

/// Most characters in the extension.
const MAX_EXT_LEN: usize = 3;

/// Whether `name` has the form of a generated 8.3 short name: up to 8 chars of base with a `~`
/// followed by digits (e.g. PROGRA~1, SET4A2~1.TMP, AB12C~10, A1B2~123), optional `.` + up to 3
/// chars of extension, all chars valid in short names. Case-insensitive (the queue may spell it
/// in any case).
///
/// Precisely: a base of at most 8 characters whose last `~` has at least one character before
/// it and only decimal digits after it, the first of them not `0` (Windows counts from 1);
/// optionally `.` and 1 to 3 more characters; every other character printable ASCII other than
/// space, `.` and `"*+,/:;<=>?[\]|`. The part before the `~` may itself contain `~`.
pub fn looks_generated(name: &str) -> bool {
    tilde_index(name).is_some()
}

/// The 8.3 short name Windows (NTFS, default "8dot3name" generation) would generate for `long`
/// if it were the `n`-th name (1-based) with the same basis in its directory, or None when
/// `long` is itself a valid 8.3 name (no short name is generated).
///
/// `n` counts the attempts Windows makes for this long name: 1 to 4 give `BASIS~n`, 5 and up
/// give the first two basis characters, a four-hex-digit checksum and `~(n - 4)`; a basis of
/// at most two characters gets the checksum from `n` = 1 (rules 6 to 9 in `docs/paths.md`).
/// The checksum is Galvin's reverse-engineered function, which matches every real example
/// found but is UNCONFIRMED as the exact NTFS hash; the caller accepts a candidate that
/// depends on it only when it is unique.
///
/// Also None when `long` is empty, when `n` is 0, and when `n` is too large for `~n` to fit in
/// eight characters with at least one character before it.
pub fn generate(long: &str, n: u32) -> Option<String> {
    Parts::of(long)?.render(n)
}

/// The long names among `entries` that could have the short name `short`: an entry qualifies
/// when the basis and extension of its generated short name match `short` (compare
/// case-insensitively) for the tilde number in `short` — i.e. when some generation step of the
/// algorithm could have given it exactly `short`, without knowing the directory's creation
/// order. Return them in input order.
///
/// For `short` = `PREFIX~N.EXT` that means [`generate`] gives `short` at step `N` or `N + 4`;
/// for a basis of one or two characters the plain `B~N.EXT` form also counts (rule 8 is
/// unconfirmed). Two more rules keep the answer exact:
///
/// * `short` that is not [`looks_generated`] has no candidates.
/// * An entry whose own name is `short` (ASCII case-insensitively) is the file Windows opens
///   by that name: a directory's long and short names share one index, so no other file can
///   hold it as its alias. When there is such an entry, only those entries are returned.
pub fn candidates<'a>(short: &str, entries: &[&'a str]) -> Vec<&'a str> {
    let Some(index) = tilde_index(short) else {
        return Vec::new();
    };
    let exact: Vec<&'a str> = entries
        .iter()
        .copied()
        .filter(|entry| entry.eq_ignore_ascii_case(short))
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    entries
        .iter()
        .copied()
        .filter(|entry| could_give(entry, short, index))
        .collect()
}

/// The tilde number of a generated-looking short name, None when `name` does not look
/// generated (see [`looks_generated`]).
fn tilde_index(name: &str) -> Option<u32> {
    let (base, ext) = match name.split_once('.') {
        Some((base, ext)) => (base, Some(ext)),
        None => (name, None),
    };
    if base.len() > MAX_BASE_LEN || !base.chars().all(is_short_name_char) {
        return None;
    }
    if let Some(ext) = ext {
        if ext.is_empty() || ext.len() > MAX_EXT_LEN || !ext.chars().all(is_short_name_char) {
            return None;
        }
    }
    let (prefix, digits) = base.rsplit_once('~')?;
    if prefix.is_empty()
        || digits.is_empty()
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

/// A character a short name may contain, other than `.` (the character class of
/// [`looks_generated`] and of rule 1).
fn is_short_name_char(c: char) -> bool {
    c.is_ascii_graphic() && c != '.' && !SHORT_ILLEGAL.contains(c)
}

/// Whether no short name is generated for `long` because it is a legal 8.3 name itself (rule
/// 1), in any case.
fn is_legal_8dot3(long: &str) -> bool {
    if long == "." || long == ".." {
        return true;
    }
    let (base, ext) = match long.split_once('.') {
        Some((base, ext)) => (base, Some(ext)),
        None => (long, None),
    };
    let base_ok = (1..=MAX_BASE_LEN).contains(&base.len()) && base.chars().all(is_short_name_char);
    let ext_ok = ext.is_none_or(|ext| {
        (1..=MAX_EXT_LEN).contains(&ext.len()) && ext.chars().all(is_short_name_char)
    });
    base_ok && ext_ok
}

/// What the generator makes of one character of the long name (rule 5): None when it is
/// removed, else the upper-case ASCII character it contributes.
fn map_char(c: char) -> Option<char> {
    if c <= ' ' || c == '.' || !c.is_ascii() || c == '\u{7f}' {
        None
    } else if SHORT_ILLEGAL.contains(c) {
        Some('_')
    } else {
        Some(c.to_ascii_uppercase())
    }
}

/// Splits `name` (leading periods already removed) into the text the basis and the text the
/// extension are taken from (rule 3): at the last period followed by at least one character
/// that [`map_char`] keeps; the extension text is empty when there is no such period.
fn split_extension(name: &str) -> (&str, &str) {
    for (dot, _) in name.rmatch_indices('.') {
        let tail = name.get(dot + 1..).unwrap_or_default();
        if tail.chars().any(|c| map_char(c).is_some()) {
            return (name.get(..dot).unwrap_or_default(), tail);
        }
    }
    (name, "")
}

/// The checksum in the short names of step 5 on (UNCONFIRMED; `docs/paths.md`, "The
/// checksum"): Galvin's reverse-engineered function over the UTF-16 code units of the long name.
fn checksum(long: &str) -> u16 {
    let folded = long
        .encode_utf16()
        .fold(0u16, |sum, unit| sum.wrapping_mul(37).wrapping_add(unit));
    scramble(folded)
}

/// The second half of [`checksum`]: `|c * 314159269|` in 32-bit signed arithmetic (the bits of
/// a wrapping unsigned product read as signed), modulo 1000000007, low 16 bits, nibbles
/// reversed.
fn scramble(folded: u16) -> u16 {
    let product = u32::from(folded).wrapping_mul(314_159_269);
    // The same bits as C's wrapping `int` product; its magnitude. `folded` < 2^16 and the
    // factor is odd, so the product is never i32::MIN.
    let magnitude = i32::from_ne_bytes(product.to_ne_bytes()).unsigned_abs();
    let reduced = magnitude % 1_000_000_007;
    let [low, high, _, _] = reduced.to_le_bytes();
    let value = u16::from_le_bytes([low, high]);
    ((value & 0xf000) >> 12)
        | ((value & 0x0f00) >> 4)
        | ((value & 0x00f0) << 4)
        | ((value & 0x000f) << 12)
}

/// What the short names of one long name are made of.
struct Parts {
    /// Upper-case ASCII, at most [`PLAIN_BASIS_LEN`] characters, possibly empty.
    basis: String,
    /// Upper-case ASCII, at most [`MAX_EXT_LEN`] characters, empty for none.
    ext: String,
    checksum: u16,
}

impl Parts {
    /// None when `long` gets no generated short name (empty, or rule 1).
    fn of(long: &str) -> Option<Parts> {
        if long.is_empty() || is_legal_8dot3(long) {
            return None;
        }
        let (basis_text, ext_text) = split_extension(long.trim_start_matches('.'));
        Some(Parts {
            basis: basis_text
                .chars()
                .filter_map(map_char)
                .take(PLAIN_BASIS_LEN)
                .collect(),
            ext: ext_text
                .chars()
                .filter_map(map_char)
                .take(MAX_EXT_LEN)
                .collect(),
            checksum: checksum(long),
        })
    }

    /// The short name of step `n` (1-based).
    fn render(&self, n: u32) -> Option<String> {
        if n == 0 {
            return None;
        }
        if self.basis.len() <= SHORT_BASIS_MAX {
            self.assemble(&format!("{}{:04X}", self.basis, self.checksum), n)
        } else if n <= PLAIN_STEPS {
            self.assemble(&self.basis, n)
        } else {
            let kept: String = self.basis.chars().take(CHECKSUM_BASIS_LEN).collect();
            self.assemble(&format!("{kept}{:04X}", self.checksum), n - PLAIN_STEPS)
        }
    }

    /// `prefix`, shortened so that `prefix~index` fits in eight characters, then `~index` and
    /// the extension. None when not even one character of `prefix` would fit.
    fn assemble(&self, prefix: &str, index: u32) -> Option<String> {
        let digits = index.to_string();
        let room = MAX_BASE_LEN.checked_sub(digits.len() + 1)?;
        if room == 0 || prefix.is_empty() {
            return None;
        }
        let mut name: String = prefix.chars().take(room).collect();
        name.push('~');
        name.push_str(&digits);
        if !self.ext.is_empty() {
            name.push('.');
            name.push_str(&self.ext);
        }
        Some(name)
    }

    /// The hedge of rule 8: for a one- or two-character basis, the plain `B~index` form that
    /// Windows would give if it did not insert the checksum from the first step.
    fn plain_short_basis(&self, index: u32) -> Option<String> {
        if self.basis.is_empty() || self.basis.len() > SHORT_BASIS_MAX || index > PLAIN_STEPS {
            return None;
        }
        self.assemble(&self.basis, index)
    }
}

/// Whether some generation step could have given `long` exactly `short`, whose tilde number is
/// `index`: step `index` (plain, or checksum for a short basis), step `index + 4` (checksum),
/// or the rule 8 hedge.
fn could_give(long: &str, short: &str, index: u32) -> bool {
    let same = |generated: Option<String>| {
        generated.is_some_and(|generated| generated.eq_ignore_ascii_case(short))
    };
    same(generate(long, index))
        || index
            .checked_add(PLAIN_STEPS)
            .is_some_and(|n| same(generate(long, n)))
        || same(Parts::of(long).and_then(|parts| parts.plain_short_basis(index)))
}

#[cfg(test)]
mod tests;
