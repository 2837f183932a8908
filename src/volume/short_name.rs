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
//! # Rules and sources
//!
//! Sources: Microsoft's "`RtlGenerate8dot3Name` function (ntifs.h)" reference; \[MS-FSCC\]
//! 2.1.5.2.1 "8.3 Filename"; Microsoft KB 142982 (how Windows generates short file names) and
//! KB 226403 (Windows 2000 changes the alias from the fifth file on); the registry reference
//! for `NtfsAllowExtendedCharacterIn8dot3Name`; ReactOS `sdk/lib/rtl/dos8dot3.c`
//! (`RtlGenerate8dot3Name`, `RtlpGetCheckSum`, `RtlpShortIllegals`, `RtlIsNameLegalDOS8Dot3`);
//! Wine `dlls/ntdll/unix/file.c` (`append_entry`, `hash_short_file_name`); Wikipedia "8.3
//! filename"; Stack Overflow question 324041 (longer indices); and Thomas Galvin, "A Tale of
//! Two File Names" (2015, <https://tomgalvin.uk/blog/gen/2015/06/09/filenames>), which
//! reverse-engineered the checksum.
//!
//! 1. **Which names get an alias.** None when the long name is itself a legal 8.3 name without
//!    spaces: Wine's `append_entry` generates one only when
//!    `!RtlIsNameLegalDOS8Dot3(name) || spaces`, and KB 142982 agrees (`A_file.doc` gets none,
//!    "A file.doc" gets `AFILE~1.DOC`). Legal means (\[MS-FSCC\] 2.1.5.2.1 and
//!    `RtlIsNameLegalDOS8Dot3`): ASCII only, no space, at most one period, a base of 1 to 8 and
//!    an extension of 1 to 3 characters, none of `"*+,/:;<=>?[\]|` or control characters;
//!    `.` and `..` are legal. `RtlIsNameLegalDOS8Dot3` upper-cases before it checks, so case
//!    does not matter: `readme.txt` and `ReadMe.Txt` get no `~N` alias. (Whether NTFS then
//!    stores such a name once in the Win32-and-DOS namespace or adds the upper-cased
//!    `README.TXT` as its DOS name, as FAT does, is not confirmed here; neither is a `~N`
//!    name, so it makes no difference to this module.)
//! 2. **Leading periods are skipped** ("Any leading periods in this file name are skipped",
//!    `RtlGenerate8dot3Name` reference): `.htaccess` -> `HTACCE~1`. ReactOS does not skip them;
//!    this follows Microsoft.
//! 3. **The extension** starts after the last period that is followed by at least one usable
//!    character (KB 142982: "...filename.123.45 6.789." gives `THISIS~1.789`; ReactOS simply
//!    takes the last period). Its first three usable characters are kept: `index.html` ->
//!    `INDEX~1.HTM`, `SET4A2B.tmp.new` -> `SET4A2~1.NEW`.
//! 4. **The basis** is made of the usable characters before that period, other periods
//!    removed (`TextFile1.Mine.txt` -> `TEXTFI~1.TXT`), and keeps the first six.
//! 5. **Characters** (ReactOS `RtlGenerate8dot3Name` with `AllowExtendedCharacters` FALSE, the
//!    NTFS default: `NtfsAllowExtendedCharacterIn8dot3Name` = 0 limits 8.3 names to ASCII):
//!    space, control characters and periods are removed; anything from U+007F up is *removed*,
//!    not replaced (`Überweisung.txt` -> `BERWEI~1.TXT`, not `_BERWE~1.TXT`; Microsoft's
//!    reference says the routine discards invalid characters); the characters of
//!    `RtlpShortIllegals` (`"*+,/:;<=>?[\]|`) become `_` (the reference lists `:;,+=[]`;
//!    `5+6 June Report.doc` -> `5_6JUN~1.DOC`); `a`-`z` are upper-cased. A generated name is
//!    therefore pure ASCII, which is why [`looks_generated`] requires ASCII.
//! 6. **Steps 1 to 4**: basis + `~n` (`PROGRA~1` ... `PROGRA~4`).
//! 7. **Step 5 on** (KB 226403; Wikipedia; ReactOS resets its index to 1 when it inserts the
//!    checksum): the first two basis characters, four hexadecimal digits
//!    of a checksum of the whole long name, `~` and `n - 4`: `SomeStuff.aspx` ->
//!    `SOBC84~1.ASP`.
//! 8. **A basis of at most two characters** gets the checksum from step 1 on (ReactOS:
//!    `if (Context->NameLength <= 2)`): `x.html` -> `XB885~1.HTM`, `日本語.txt` ->
//!    `8E03~1.TXT`. UNCONFIRMED on Windows; [`candidates`] therefore also accepts the plain
//!    `X~1.HTM` form for such names.
//! 9. **Longer indices** shorten the part before `~` so that it and `~N` fit in eight
//!    characters (`SOBC8~10.ASP`), as the accepted answer to Stack Overflow question 324041
//!    describes. ReactOS does not shorten (its names can exceed eight characters there).
//!
//! # The checksum (UNCONFIRMED)
//!
//! Microsoft does not document it. [`checksum`] is Galvin's reverse-engineered function: over
//! the UTF-16 code units of the long name as spelt (case and leading periods included),
//! `c = c * 37 + unit` in 16 bits; then `|c * 314159269|` in 32-bit signed arithmetic, modulo
//! 1000000007, low 16 bits, nibble order reversed. It reproduces every real-world alias found
//! while writing this: `SomeStuff.aspx` -> `SOBC84~1.ASP` (Galvin) and four names from a `dir`
//! listing posted in Stack Overflow question 31526206 (`Rammstein - Du Hast.mp3` ->
//! `RA0CAE~1.MP3` and others, see the tests). ReactOS's `RtlpGetCheckSum` reproduces none of
//! them (the tests keep a port of it to show this), so it is not used. Neither function
//! reproduces Wikipedia's illustrative `TextFile.Mine.txt` -> `TE021F~1.TXT`, and older Windows
//! versions may have used another function. So a checksum form is only as good as this
//! function: the caller accepts a candidate only when it is unique, and a checksum form that
//! this function does not reproduce is reported unresolved rather than guessed.
//!
//! # Not modelled
//!
//! Short names set explicitly (`SetFileShortName`, `fsutil file setshortname`), names created
//! while 8.3 creation was disabled (none then), extended characters allowed by the registry,
//! aliases inherited through file-name tunnelling from a different long name, FAT volumes of
//! Windows 9x (which go on `~5`, `~6` ... instead of using a checksum), and Wine's own
//! `hash_short_file_name` scheme (`ABCD~XYZ`, letters after the `~`: not generated-looking).

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
/// at most two characters gets the checksum from `n` = 1 (see the module documentation for
/// every rule and its source). The checksum is Galvin's reverse-engineered function, which
/// matches every real example found but is UNCONFIRMED as the exact NTFS hash; the caller
/// accepts a candidate that depends on it only when it is unique.
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

/// The checksum in the short names of step 5 on (UNCONFIRMED; see the module documentation):
/// Galvin's reverse-engineered function over the UTF-16 code units of the long name.
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
mod tests {
    use super::*;

    fn gen(long: &str, n: u32) -> Option<String> {
        generate(long, n)
    }

    // ---- looks_generated ----------------------------------------------------------------

    #[test]
    fn looks_generated_accepts_generated_forms() {
        for name in [
            "PROGRA~1",
            "progra~2",
            "Progra~4",
            "SET4A2~1.TMP",
            "set4a2~1.tmp",
            "AB12C~10",
            "A1B2~123",
            "ADMINI~1",
            "MYDOCU~1",
            "INDEX~1.HTM",
            "BERWEI~1.TXT",
            "SOBC84~1.ASP",
            "XB885~1.HTM",
            "8E03~1.TXT",
            "A~B~1.TXT",
            "A~1.~TM",
            "5_6JUN~1.DOC",
            "X~1",
            "A~123456",
        ] {
            assert!(looks_generated(name), "{name:?} should look generated");
        }
    }

    #[test]
    fn looks_generated_rejects_other_names() {
        for name in [
            "",
            "FILE.DLL",
            "KERNEL32.DLL",
            "A~.TXT",
            "~1",
            "~1.TXT",
            "ABCDEFGHI~1",
            "ABCDEFG~12",
            "PROGRA~0",
            "PROGRA~01",
            "PROGRA~X",
            "PROGRA~1X",
            "PROGRA~",
            "PROGRA~1.",
            "PROGRA~1.TOOL",
            "PROGRA~1.A.B",
            "A.B~1",
            "PRO GR~1",
            "PRO+GR~1",
            "PROG[~1",
            "ÜBERWE~1.TXT",
            "BERWEI~1.TXÜ",
            "PROGRA~1\\X",
            ".",
            "..",
            "~",
            "😀~1",
            "A~1\u{7f}",
            "A~1\t",
            "A~99999999",
        ] {
            assert!(!looks_generated(name), "{name:?} should not look generated");
        }
    }

    // ---- generate: the brief's examples and published examples --------------------------

    #[test]
    fn program_files_and_x86_share_the_basis() {
        assert_eq!(gen("Program Files", 1).as_deref(), Some("PROGRA~1"));
        assert_eq!(gen("Program Files", 2).as_deref(), Some("PROGRA~2"));
        assert_eq!(gen("Program Files (x86)", 1).as_deref(), Some("PROGRA~1"));
        assert_eq!(gen("Program Files (x86)", 2).as_deref(), Some("PROGRA~2"));
        assert_eq!(gen("ProgramData", 3).as_deref(), Some("PROGRA~3"));
        assert_eq!(gen("Program Files", 4).as_deref(), Some("PROGRA~4"));
    }

    #[test]
    fn profile_and_documents_names() {
        assert_eq!(gen("Administrator", 1).as_deref(), Some("ADMINI~1"));
        assert_eq!(gen("My Documents", 1).as_deref(), Some("MYDOCU~1"));
    }

    #[test]
    fn extension_is_after_the_last_period() {
        assert_eq!(gen("SET4A2B.tmp.new", 1).as_deref(), Some("SET4A2~1.NEW"));
        assert_eq!(gen("SET4A2B0C.tmp", 1).as_deref(), Some("SET4A2~1.TMP"));
        assert_eq!(
            gen("TextFile1.Mine.txt", 1).as_deref(),
            Some("TEXTFI~1.TXT")
        );
        assert_eq!(
            gen("TextFile1.Mine.txt", 2).as_deref(),
            Some("TEXTFI~2.TXT")
        );
        assert_eq!(gen("ver +1.2.text", 1).as_deref(), Some("VER_12~1.TEX"));
        assert_eq!(
            gen("a.testing.file.bat", 1).as_deref(),
            Some("ATESTI~1.BAT")
        );
    }

    #[test]
    fn kb142982_examples() {
        assert_eq!(gen("A file.doc", 1).as_deref(), Some("AFILE~1.DOC"));
        assert_eq!(
            gen("A long filename.txt", 1).as_deref(),
            Some("ALONGF~1.TXT")
        );
        assert_eq!(gen("A_file.doc", 1), None);
        assert_eq!(
            gen("this is a really long filename.123.45 6.789.txt", 1).as_deref(),
            Some("THISIS~1.TXT")
        );
        // Nothing usable after the final period: the one before it is used.
        assert_eq!(
            gen("this is a really long filename.123.45 6.789.", 1).as_deref(),
            Some("THISIS~1.789")
        );
    }

    #[test]
    fn galvin_examples() {
        assert_eq!(
            gen("5+6 June Report.doc", 1).as_deref(),
            Some("5_6JUN~1.DOC")
        );
        assert_eq!(gen("SomeStuff.aspx", 1).as_deref(), Some("SOMEST~1.ASP"));
        assert_eq!(gen("SomeStuff.aspx", 5).as_deref(), Some("SOBC84~1.ASP"));
        assert_eq!(gen("SomeStuff.aspx", 6).as_deref(), Some("SOBC84~2.ASP"));
        // Two-digit index: the checksum is shortened to keep eight characters.
        assert_eq!(gen("SomeStuff.aspx", 14).as_deref(), Some("SOBC8~10.ASP"));
        assert_eq!(gen("SomeStuff.aspx", 104).as_deref(), Some("SOBC~100.ASP"));
    }

    /// A published `dir` listing (long names and their aliases in the same order), real
    /// Windows output; the checksums were also recomputed independently of this module.
    const RAMMSTEIN: [(&str, &str); 8] = [
        ("Rammstein & Tatu - Moscow.mp3", "RA8E17~1.MP3"),
        ("Rammstein - Asche zu Asche.mp3", "RA23A6~1.MP3"),
        ("Rammstein - Der Meister.mp3", "RAMMST~1.MP3"),
        ("Rammstein - Du Hast.mp3", "RA0CAE~1.MP3"),
        ("Rammstein - Eifersucht.mp3", "RAMMST~2.MP3"),
        ("Rammstein - Feuer Frei.mp3", "RAMMST~3.MP3"),
        ("Rammstein - Führe Mich.mp3", "RAMMST~4.MP3"),
        ("Rammstein - Haifisch.mp3", "RA6BAA~1.MP3"),
    ];

    #[test]
    fn checksum_matches_real_windows_aliases() {
        for (long, short) in RAMMSTEIN {
            let reachable = (1..=8).any(|n| gen(long, n).as_deref() == Some(short));
            assert!(reachable, "{long:?} should reach {short:?}");
        }
        assert_eq!(checksum("SomeStuff.aspx"), 0xBC84);
        assert_eq!(checksum("Rammstein - Du Hast.mp3"), 0x0CAE);
    }

    #[test]
    fn non_ascii_is_removed_not_replaced() {
        assert_eq!(gen("Überweisung.txt", 1).as_deref(), Some("BERWEI~1.TXT"));
        assert_eq!(gen("café.txt", 1).as_deref(), Some("CAF~1.TXT"));
        assert_eq!(
            gen("Straße der Einheit.doc", 1).as_deref(),
            Some("STRAED~1.DOC")
        );
        // Non-ASCII in the extension too.
        assert_eq!(gen("Bericht.bäk", 1).as_deref(), Some("BERICH~1.BK"));
    }

    #[test]
    fn long_extension_is_cut_to_three() {
        assert_eq!(gen("index.html", 1).as_deref(), Some("INDEX~1.HTM"));
        assert_eq!(gen("index.html", 2).as_deref(), Some("INDEX~2.HTM"));
    }

    #[test]
    fn valid_8dot3_names_get_no_alias_in_any_case() {
        for name in [
            "KERNEL32.DLL",
            "kernel32.dll",
            "readme.txt",
            "ReadMe.Txt",
            "README",
            "A",
            "A.B",
            "SET4A2B.tmp",
            "PROGRA~1",
            "setup~1.tmp",
            "$WINDOWS.~BT",
            ".",
            "..",
            "",
        ] {
            for n in [1, 2, 5] {
                assert_eq!(gen(name, n), None, "{name:?} step {n}");
            }
        }
    }

    #[test]
    fn names_that_are_not_8dot3_for_other_reasons() {
        // Space, too long a base or extension, two periods, leading period, short-illegal
        // character, non-ASCII: all get an alias.
        assert_eq!(gen("a b", 1).as_deref(), Some("AB2761~1"));
        assert_eq!(gen("ABCDEFGHI", 1).as_deref(), Some("ABCDEF~1"));
        assert_eq!(gen("ABC.DEFG", 1).as_deref(), Some("ABC~1.DEF"));
        assert_eq!(gen("A.B.C", 1).as_deref(), Some("ABFE62~1.C"));
        assert_eq!(gen(".htaccess", 1).as_deref(), Some("HTACCE~1"));
        assert_eq!(gen(".config.json", 1).as_deref(), Some("CONFIG~1.JSO"));
        assert_eq!(gen("a+b.txt", 1).as_deref(), Some("A_B~1.TXT"));
        assert_eq!(gen("[1].txt", 1).as_deref(), Some("_1_~1.TXT"));
        assert_eq!(gen("é.txt", 1).as_deref(), Some("B490~1.TXT"));
    }

    #[test]
    fn short_basis_gets_the_checksum_at_once() {
        assert_eq!(gen("x.html", 1).as_deref(), Some("XB885~1.HTM"));
        assert_eq!(gen("x.html", 2).as_deref(), Some("XB885~2.HTM"));
        assert_eq!(gen("a b.txt", 1).as_deref(), Some("AB5079~1.TXT"));
        assert_eq!(gen("日本語.txt", 1).as_deref(), Some("8E03~1.TXT"));
        assert_eq!(gen("😀.txt", 1).as_deref(), Some("6A68~1.TXT"));
    }

    #[test]
    fn step_zero_and_oversized_steps() {
        assert_eq!(gen("Program Files", 0), None);
        // Index 100_000 (step 100_004): one prefix character and six digits.
        assert_eq!(gen("Program Files", 100_004).as_deref(), Some("P~100000"));
        // Seven digits leave no room for a prefix.
        assert_eq!(gen("Program Files", 1_000_004), None);
        assert_eq!(gen("Program Files", u32::MAX), None);
    }

    // ---- candidates ---------------------------------------------------------------------

    #[test]
    fn drive_root_program_files() {
        let root = [
            "$Recycle.Bin",
            "Documents and Settings",
            "PerfLogs",
            "Program Files",
            "Program Files (x86)",
            "ProgramData",
            "Programs",
            "Recovery",
            "System Volume Information",
            "Users",
            "Windows",
            "pagefile.sys",
        ];
        let both = ["Program Files", "Program Files (x86)", "ProgramData"];
        assert_eq!(candidates("PROGRA~1", &root), both);
        assert_eq!(candidates("progra~2", &root), both);
        assert_eq!(candidates("PROGRA~4", &root), both);
        // Windows never counts a plain basis past 4.
        assert_eq!(candidates("PROGRA~5", &root), Vec::<&str>::new());
        assert_eq!(candidates("DOCUME~1", &root), ["Documents and Settings"]);
        assert_eq!(candidates("SYSTEM~1", &root), ["System Volume Information"]);
        // "Programs" is 8.3 itself and "PROGRA~1.SYS" has an extension no entry has.
        assert_eq!(candidates("PROGRA~1.SYS", &root), Vec::<&str>::new());
        // Without ProgramData the brief's pair remains, still ambiguous.
        let pair = ["Program Files", "Program Files (x86)", "Windows"];
        assert_eq!(
            candidates("PROGRA~1", &pair),
            ["Program Files", "Program Files (x86)"]
        );
        assert_eq!(
            candidates("PROGRA~2", &pair),
            ["Program Files", "Program Files (x86)"]
        );
    }

    #[test]
    fn users_directory() {
        let users = [
            "Administrator",
            "All Users",
            "Default",
            "Default User",
            "Public",
            "desktop.ini",
        ];
        assert_eq!(candidates("ADMINI~1", &users), ["Administrator"]);
        assert_eq!(candidates("ALLUSE~1", &users), ["All Users"]);
        assert_eq!(candidates("DEFAUL~1", &users), ["Default User"]);
        assert_eq!(candidates("DESKTO~1.INI", &users), Vec::<&str>::new());
        let profile = ["My Documents", "My Music", "MyDocuments2", "Documents"];
        assert_eq!(
            candidates("MYDOCU~1", &profile),
            ["My Documents", "MyDocuments2"]
        );
        assert_eq!(candidates("MYMUSI~1", &profile), ["My Music"]);
    }

    #[test]
    fn vendor_setup_temp_files() {
        let vendor = [
            "SET4A2B.tmp",
            "SET4A2B.tmp.new",
            "SET4A2B0C.tmp",
            "SET4A2C1D.tmp",
            "set4a2b-new.TMP",
            "SET4A3F00.tmp",
            "SET4A2B0C.tmp.bak",
            "Vendor.dll",
            "Vendor Updater.exe",
        ];
        assert_eq!(
            candidates("SET4A2~1.TMP", &vendor),
            ["SET4A2B0C.tmp", "SET4A2C1D.tmp", "set4a2b-new.TMP"]
        );
        assert_eq!(candidates("SET4A2~1.NEW", &vendor), ["SET4A2B.tmp.new"]);
        assert_eq!(candidates("SET4A2~1.BAK", &vendor), ["SET4A2B0C.tmp.bak"]);
        assert_eq!(candidates("SET4A3~1.TMP", &vendor), ["SET4A3F00.tmp"]);
        assert_eq!(candidates("VENDOR~1.EXE", &vendor), ["Vendor Updater.exe"]);
        // The common case: one temp file, one answer.
        let single = [
            "SET4A2B0C.tmp",
            "Vendor.dll",
            "Vendor Updater.exe",
            "readme.txt",
        ];
        assert_eq!(candidates("SET4A2~1.TMP", &single), ["SET4A2B0C.tmp"]);
        assert_eq!(candidates("set4a2~1.tmp", &single), ["SET4A2B0C.tmp"]);
    }

    #[test]
    fn non_ascii_and_long_extension_candidates() {
        let dir = [
            "Überweisung.txt",
            "Überweisung.pdf",
            "Bericht.txt",
            "index.html",
            "index.htm",
        ];
        assert_eq!(candidates("BERWEI~1.TXT", &dir), ["Überweisung.txt"]);
        assert_eq!(candidates("_BERWE~1.TXT", &dir), Vec::<&str>::new());
        assert_eq!(candidates("INDEX~1.HTM", &dir), ["index.html"]);
        assert_eq!(candidates("INDEX~1.HTML", &dir), Vec::<&str>::new());
    }

    #[test]
    fn checksum_candidates_pick_one_of_many() {
        let songs: Vec<&str> = RAMMSTEIN.iter().map(|(long, _)| *long).collect();
        for (long, short) in RAMMSTEIN {
            let found = candidates(short, &songs);
            assert!(found.contains(&long), "{short:?} should list {long:?}");
            if short.starts_with("RAMMST") {
                // The plain aliases are ambiguous without the creation order.
                assert_eq!(found, songs, "{short:?}");
            } else {
                assert_eq!(found, [long], "{short:?}");
            }
        }
    }

    #[test]
    fn short_basis_accepts_both_forms() {
        let dir = ["x.html", "y.html", "a b.txt", "ab.txt"];
        assert_eq!(candidates("XB885~1.HTM", &dir), ["x.html"]);
        assert_eq!(candidates("X~1.HTM", &dir), ["x.html"]);
        assert_eq!(candidates("AB5079~1.TXT", &dir), ["a b.txt"]);
        assert_eq!(candidates("AB~1.TXT", &dir), ["a b.txt"]);
        assert_eq!(candidates("X~5.HTM", &dir), Vec::<&str>::new());
    }

    #[test]
    fn exact_name_wins() {
        let dir = ["Program Files", "PROGRA~1", "Program Files (x86)"];
        assert_eq!(candidates("progra~1", &dir), ["PROGRA~1"]);
        assert_eq!(
            candidates("PROGRA~2", &dir),
            ["Program Files", "Program Files (x86)"]
        );
    }

    #[test]
    fn not_generated_looking_has_no_candidates() {
        let dir = ["KERNEL32.DLL", "Program Files"];
        assert_eq!(candidates("KERNEL32.DLL", &dir), Vec::<&str>::new());
        assert_eq!(candidates("", &dir), Vec::<&str>::new());
        assert_eq!(candidates("PROGRA~1", &[]), Vec::<&str>::new());
    }

    /// A System32-like listing: 8.3 names (no alias), long names with near-collisions in the
    /// first six characters and the extension, and the large `api-ms-win-*` family.
    fn system32() -> Vec<String> {
        const SHORT: &[&str] = &[
            "ACLUI.DLL",
            "ACTIVEDS.DLL",
            "ADVAPI32.DLL",
            "APPHELP.DLL",
            "ARP.EXE",
            "ATTRIB.EXE",
            "AUDIOSRV.DLL",
            "AUTHZ.DLL",
            "BCRYPT.DLL",
            "BOOTVID.DLL",
            "CALC.EXE",
            "CERTUTIL.EXE",
            "CFGMGR32.DLL",
            "CHKDSK.EXE",
            "CLIP.EXE",
            "CMD.EXE",
            "COMBASE.DLL",
            "COMCTL32.DLL",
            "COMDLG32.DLL",
            "CRYPT32.DLL",
            "CSCRIPT.EXE",
            "D3D11.DLL",
            "D3D9.DLL",
            "DBGHELP.DLL",
            "DHCPCSVC.DLL",
            "DISKPART.EXE",
            "DNSAPI.DLL",
            "DWMAPI.DLL",
            "DXGI.DLL",
            "FIND.EXE",
            "FONTSUB.DLL",
            "GDI32.DLL",
            "HAL.DLL",
            "HID.DLL",
            "ICACLS.EXE",
            "IMM32.DLL",
            "IPCONFIG.EXE",
            "KERNEL32.DLL",
            "KERNELBA.DLL",
            "LSASS.EXE",
            "MPR.DLL",
            "MSCTF.DLL",
            "MSI.DLL",
            "MSVCRT.DLL",
            "NETAPI32.DLL",
            "NETSH.EXE",
            "NOTEPAD.EXE",
            "NTDLL.DLL",
            "NTOSKRNL.EXE",
            "OLE32.DLL",
            "OLEAUT32.DLL",
            "PING.EXE",
            "POWRPROF.DLL",
            "PSAPI.DLL",
            "REG.EXE",
            "REGEDT32.EXE",
            "RPCRT4.DLL",
            "RUNDLL32.EXE",
            "SAMLIB.DLL",
            "SCHANNEL.DLL",
            "SECHOST.DLL",
            "SERVICES.EXE",
            "SETUPAPI.DLL",
            "SHELL32.DLL",
            "SHLWAPI.DLL",
            "SMSS.EXE",
            "SVCHOST.EXE",
            "TASKMGR.EXE",
            "USER32.DLL",
            "USERENV.DLL",
            "UXTHEME.DLL",
            "VERSION.DLL",
            "WINHTTP.DLL",
            "WININET.DLL",
            "WINLOGON.EXE",
            "WINMM.DLL",
            "WINSPOOL.DRV",
            "WINTRUST.DLL",
            "WS2_32.DLL",
            "WTSAPI32.DLL",
            "Window.dll",
            "Windows.dll",
            "winload.efi",
            "winload.exe",
            "wbem",
            "drivers",
            "config",
            "en-US",
            "spool",
            "catroot",
            "catroot2",
            "LogFiles",
            "Tasks",
            "Com",
            "oobe",
            "Sysprep",
            "MicroSD.dll",
            "Micros.dll",
        ];
        const LONG: &[&str] = &[
            "WindowsCodecs.dll",
            "WindowsCodecsExt.dll",
            "WindowsCodecsRaw.dll",
            "WindowsCodecs.tlb",
            "Windows.Storage.dll",
            "windows.storage.search.dll",
            "Windows.UI.Xaml.dll",
            "WindowManagement.dll",
            "WindowsPowerShell",
            "Windows.Media.winmd",
            "windowsudk.shellcommon.dll",
            "Windows.Web.Http.dll",
            "WindowsDefaultHeatProcessor.dll",
            "Windows.Internal.Shell.Broker.dll",
            "windows.immersiveshell.serviceprovider.dll",
            "Windows.Devices.Enumeration.dl_",
            "Wind0wsFake.dll",
            "WinBioPlugIns",
            "WinMetadata",
            "Microsoft.Bluetooth.Proxy.dll",
            "microsoft-windows-kernel-power-events.dll",
            "Microsoft.Management.Infrastructure.dll",
            "MicrosoftAccountTokenProvider.dll",
            "Microsoft.Uev.AppAgent.ps1",
            "Microsoft-Windows-Internal-Shell-NearShareExperience.dll",
            "Micros oft.txt",
            "DriverStore",
            "DriverStore.bak",
            "driverquery.exe",
            "CodeIntegrity",
            "SecurityHealthService.exe",
            "SecurityHealthAgent.dll",
            "SecurityHealthSSO.dll",
            "SecureBootUpdates",
            "Speech_OneCore",
            "SpeechUX",
            "msvcp_win.dll",
            "ucrtbase.dll",
            "vcruntime140.dll",
            "vcruntime140_1.dll",
            "msvcp140.dll",
            "msvcp140_1.dll",
            "msvcp140_2.dll",
            "mfc140u.dll",
            "TextInputFramework.dll",
            "TextShaping.dll",
            "twinapi.appcore.dll",
            "twinui.pcshell.dll",
            "twinui.dll",
        ];
        const API: &[&str] = &[
            "core-file",
            "core-synch",
            "core-heap",
            "core-memory",
            "core-processthreads",
            "core-registry",
            "core-string",
            "core-libraryloader",
            "core-errorhandling",
            "core-handle",
            "core-console",
            "core-datetime",
            "core-debug",
            "core-delayload",
            "core-fibers",
            "core-interlocked",
            "core-io",
            "core-localization",
            "core-namedpipe",
            "core-profile",
            "core-rtlsupport",
            "core-sysinfo",
            "core-timezone",
            "core-util",
            "crt-conio",
            "crt-convert",
            "crt-environment",
            "crt-filesystem",
            "crt-heap",
            "crt-locale",
            "crt-math",
            "crt-multibyte",
            "crt-private",
            "crt-process",
            "crt-runtime",
            "crt-stdio",
            "crt-string",
            "crt-time",
            "crt-utility",
            "security-base",
            "eventing-provider",
            "shell-shellfolders",
        ];
        const EXT: &[&str] = &[
            "ntuser-window",
            "gdi-dc",
            "kernel32-package",
            "shell-shell32",
            "rtcore-ntuser-sysparams",
            "uxtheme-themes",
            "session-usermgr",
        ];
        let mut names: Vec<String> = SHORT.iter().map(|s| (*s).to_owned()).collect();
        names.extend(LONG.iter().map(|s| (*s).to_owned()));
        for api in API {
            for version in ["l1-1-0", "l1-1-1", "l1-2-0", "l2-1-0"] {
                names.push(format!("api-ms-win-{api}-{version}.dll"));
            }
        }
        for ext in EXT {
            for version in ["l1-1-0", "l1-1-1"] {
                names.push(format!("ext-ms-win-{ext}-{version}.dll"));
            }
        }
        names
    }

    #[test]
    fn system32_listing() {
        let owned = system32();
        let listing: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert!(listing.len() > 300, "{} names", listing.len());

        assert_eq!(
            candidates("WINDOW~1.DLL", &listing),
            [
                "WindowsCodecs.dll",
                "WindowsCodecsExt.dll",
                "WindowsCodecsRaw.dll",
                "Windows.Storage.dll",
                "windows.storage.search.dll",
                "Windows.UI.Xaml.dll",
                "WindowManagement.dll",
                "windowsudk.shellcommon.dll",
                "Windows.Web.Http.dll",
                "WindowsDefaultHeatProcessor.dll",
                "Windows.Internal.Shell.Broker.dll",
                "windows.immersiveshell.serviceprovider.dll",
            ]
        );
        assert_eq!(candidates("WINDOW~3", &listing), ["WindowsPowerShell"]);
        assert_eq!(candidates("WINDOW~1.TLB", &listing), ["WindowsCodecs.tlb"]);
        assert_eq!(
            candidates("WINDOW~2.WIN", &listing),
            ["Windows.Media.winmd"]
        );
        assert_eq!(
            candidates("WINDOW~1.DL_", &listing),
            ["Windows.Devices.Enumeration.dl_"]
        );
        assert_eq!(candidates("WIND0W~1.DLL", &listing), ["Wind0wsFake.dll"]);
        assert_eq!(candidates("WINDOW~5.DLL", &listing), Vec::<&str>::new());
        assert_eq!(
            candidates("MICROS~2.DLL", &listing),
            [
                "Microsoft.Bluetooth.Proxy.dll",
                "microsoft-windows-kernel-power-events.dll",
                "Microsoft.Management.Infrastructure.dll",
                "MicrosoftAccountTokenProvider.dll",
                "Microsoft-Windows-Internal-Shell-NearShareExperience.dll",
            ]
        );
        assert_eq!(
            candidates("MICROS~1.PS1", &listing),
            ["Microsoft.Uev.AppAgent.ps1"]
        );
        assert_eq!(candidates("MICROS~1.TXT", &listing), ["Micros oft.txt"]);
        assert_eq!(candidates("DRIVER~1", &listing), ["DriverStore"]);
        assert_eq!(candidates("DRIVER~1.BAK", &listing), ["DriverStore.bak"]);
        assert_eq!(candidates("DRIVER~1.EXE", &listing), ["driverquery.exe"]);
        assert_eq!(candidates("CODEIN~1", &listing), ["CodeIntegrity"]);
        assert_eq!(
            candidates("SECURI~1.DLL", &listing),
            ["SecurityHealthAgent.dll", "SecurityHealthSSO.dll"]
        );
        assert_eq!(
            candidates("SECURI~1.EXE", &listing),
            ["SecurityHealthService.exe"]
        );
        assert_eq!(candidates("SECURE~1", &listing), ["SecureBootUpdates"]);
        // "SpeechUX" is 8.3 itself.
        assert_eq!(candidates("SPEECH~1", &listing), ["Speech_OneCore"]);
        assert_eq!(
            candidates("VCRUNT~2.DLL", &listing),
            ["vcruntime140.dll", "vcruntime140_1.dll"]
        );
        assert_eq!(
            candidates("MSVCP1~1.DLL", &listing),
            ["msvcp140_1.dll", "msvcp140_2.dll"] // msvcp140.dll is 8.3 itself
        );
        assert_eq!(candidates("MSVCP_~1.DLL", &listing), ["msvcp_win.dll"]);
        assert_eq!(
            candidates("TEXTIN~1.DLL", &listing),
            ["TextInputFramework.dll"]
        );
        assert_eq!(
            candidates("TWINAP~1.DLL", &listing),
            ["twinapi.appcore.dll"]
        );
        assert_eq!(candidates("TWINUI~1.DLL", &listing), ["twinui.pcshell.dll"]);
        // 8.3 names (in any case) never appear as candidates.
        assert_eq!(candidates("KERNEL~1.DLL", &listing), Vec::<&str>::new());
        assert_eq!(candidates("UCRTBA~1.DLL", &listing), Vec::<&str>::new());

        let api: Vec<&str> = listing
            .iter()
            .copied()
            .filter(|name| name.starts_with("api-ms-win-"))
            .collect();
        assert_eq!(api.len(), 168);
        assert_eq!(candidates("API-MS~1.DLL", &listing), api);
        assert_eq!(candidates("API-MS~4.DLL", &listing), api);
        let ext: Vec<&str> = listing
            .iter()
            .copied()
            .filter(|name| name.starts_with("ext-ms-win-"))
            .collect();
        assert_eq!(candidates("EXT-MS~2.DLL", &listing), ext);
        // The checksum form names one (checksum computed independently of this module).
        assert_eq!(
            candidates("AP87F4~1.DLL", &listing),
            ["api-ms-win-core-file-l1-1-0.dll"]
        );
        assert_eq!(candidates("AP87F4~1.EXE", &listing), Vec::<&str>::new());

        // Every alias any entry can get lists that entry.
        for long in &listing {
            for n in [1, 2, 4, 5, 7] {
                if let Some(short) = generate(long, n) {
                    assert!(
                        candidates(&short, &listing).contains(long),
                        "{long} {short}"
                    );
                }
            }
        }
    }

    // ---- the checksum -------------------------------------------------------------------

    /// ReactOS's `RtlpGetCheckSum` (sdk/lib/rtl/dos8dot3.c), ported, with ReactOS's rendering
    /// (low nibble first). Kept to show that it does not reproduce Windows' aliases.
    fn reactos_hex(name: &str) -> String {
        let units: Vec<u16> = name.encode_utf16().collect();
        let hash = match units.as_slice() {
            [] => 0,
            [only] => *only,
            [first, second, ..] => {
                let mut hash = (first << 8).wrapping_add(*second);
                if units.len() > 2 {
                    let mut saved = hash;
                    let mut length = 2usize;
                    let mut at = 0usize;
                    loop {
                        at += 2;
                        let current = units.get(at).copied().unwrap_or(0);
                        hash = (hash << 7).wrapping_add(current);
                        hash = (saved >> 1).wrapping_add(hash << 8);
                        if length + 1 < units.len() {
                            hash = hash.wrapping_add(units.get(at + 1).copied().unwrap_or(0));
                        }
                        saved = hash;
                        length += 2;
                        if length >= units.len() {
                            break;
                        }
                    }
                }
                hash
            }
        };
        (0..4)
            .map(|nibble| {
                let digit = (hash >> (4 * nibble)) & 0xf;
                char::from_digit(u32::from(digit), 16).map_or('?', |c| c.to_ascii_uppercase())
            })
            .collect()
    }

    #[test]
    fn reactos_checksum_does_not_reproduce_windows() {
        let windows = [
            ("SomeStuff.aspx", "BC84"),
            ("Rammstein & Tatu - Moscow.mp3", "8E17"),
            ("Rammstein - Asche zu Asche.mp3", "23A6"),
            ("Rammstein - Du Hast.mp3", "0CAE"),
            ("Rammstein - Haifisch.mp3", "6BAA"),
        ];
        for (long, hex) in windows {
            assert_eq!(format!("{:04X}", checksum(long)), hex, "{long}");
            assert_ne!(reactos_hex(long), hex, "{long}");
        }
        assert_eq!(reactos_hex("SomeStuff.aspx"), "95F6");
    }

    #[test]
    fn scramble_matches_the_published_c_arithmetic() {
        for folded in 0..=u16::MAX {
            // int32_t temp = checksum * 314159269; if (temp < 0) temp = -temp;
            // temp -= ((uint64_t)((int64_t)temp * 1152921497) >> 60) * 1000000007;
            let temp = i64::from(i32::from_ne_bytes(
                u32::from(folded).wrapping_mul(314_159_269).to_ne_bytes(),
            ))
            .abs();
            let quotient = (temp * 1_152_921_497) >> 60;
            let reduced = temp - quotient * 1_000_000_007;
            let value = u16::from_le_bytes([reduced.to_le_bytes()[0], reduced.to_le_bytes()[1]]);
            let expected = ((value & 0xf000) >> 12)
                | ((value & 0x0f00) >> 4)
                | ((value & 0x00f0) << 4)
                | ((value & 0x000f) << 12);
            assert_eq!(scramble(folded), expected, "{folded}");
        }
    }

    // ---- robustness ---------------------------------------------------------------------

    /// Checks every property that must hold for any long name.
    fn check_any(long: &str) {
        for n in [
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            9,
            13,
            14,
            99,
            104,
            100_004,
            1_000_004,
            u32::MAX,
        ] {
            let Some(short) = generate(long, n) else {
                continue;
            };
            assert!(short.is_ascii(), "{long:?} {n} {short:?}");
            assert!(short.len() <= 12, "{long:?} {n} {short:?}");
            assert!(looks_generated(&short), "{long:?} {n} {short:?}");
            assert_eq!(short, short.to_ascii_uppercase(), "{long:?} {n}");
            assert_eq!(
                candidates(&short, &[long]),
                [long],
                "{long:?} {n} {short:?}"
            );
            assert_eq!(
                candidates(&short.to_ascii_lowercase(), &[long]),
                [long],
                "{long:?} {n} {short:?}"
            );
        }
        let _ = looks_generated(long);
        let _ = candidates(long, &[long, "", "Program Files"]);
    }

    #[test]
    fn odd_names_do_not_panic() {
        let long_a = "a".repeat(10_000);
        let long_emoji = "😀".repeat(5_000);
        let long_dots = ".".repeat(1_000);
        let long_spaces = " ".repeat(1_000);
        for name in [
            "",
            ".",
            "..",
            "...",
            "....txt",
            " ",
            "   ",
            " . ",
            "😀",
            "😀😀😀.😀",
            "😀.txt",
            "~",
            "~1",
            "~~~~~~~~~~",
            "\0",
            "\u{7f}\u{7f}",
            ".txt",
            "name.",
            "name. ",
            "a.b.c.d.e",
            "\u{301}\u{301}.\u{301}",
            "\u{FFFD}",
            "İı.txt",
            long_a.as_str(),
            long_emoji.as_str(),
            long_dots.as_str(),
            long_spaces.as_str(),
        ] {
            check_any(name);
        }
        assert_eq!(gen("", 1), None);
        assert!(looks_generated(&gen("...", 1).unwrap_or_default()));
        assert!(looks_generated(&gen("   ", 1).unwrap_or_default()));
        assert!(looks_generated(&gen("😀", 1).unwrap_or_default()));
    }

    /// A small deterministic generator (xorshift64*), so the property loop needs no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(bound.max(1)).unwrap_or(1)).unwrap_or(0)
        }
    }

    #[test]
    fn property_loop_over_generated_names() {
        const ALPHABET: &[char] = &[
            'a',
            'b',
            'Z',
            'Y',
            'x',
            '0',
            '9',
            ' ',
            ' ',
            '.',
            '.',
            '~',
            '_',
            '-',
            '+',
            ',',
            ';',
            '=',
            '[',
            ']',
            '(',
            ')',
            '$',
            '&',
            '\'',
            '!',
            '{',
            '}',
            '^',
            '#',
            '%',
            '@',
            '`',
            'é',
            'Ü',
            'ß',
            'ı',
            'İ',
            '日',
            '本',
            '😀',
            '👍',
            '\u{301}',
            '\u{200b}',
            '\u{7f}',
            '\u{1}',
            '\u{FFFD}',
            '\u{10FFFF}',
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut with_alias = 0;
        for round in 0..4_000 {
            let len = if round % 100 == 0 {
                300 + rng.below(300)
            } else {
                rng.below(24)
            };
            let name: String = (0..len)
                .map(|_| {
                    ALPHABET
                        .get(rng.below(ALPHABET.len()))
                        .copied()
                        .unwrap_or('a')
                })
                .collect();
            check_any(&name);
            if generate(&name, 1).is_some() {
                with_alias += 1;
            }
            // Random would-be short names against a random directory.
            let short: String = (0..rng.below(14))
                .map(|_| {
                    ALPHABET
                        .get(rng.below(ALPHABET.len()))
                        .copied()
                        .unwrap_or('~')
                })
                .collect();
            let _ = looks_generated(&short);
            let _ = candidates(&short, &[name.as_str(), short.as_str()]);
        }
        assert!(with_alias > 3_000, "{with_alias}");
    }
}
