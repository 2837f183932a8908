//! Text from the evidence, made safe for the output it goes to.
//!
//! Every string read from an image (queue strings, file and folder names, version strings,
//! log names, messages that quote any of them) is data written by whoever controlled that
//! machine. One rule per kind of output, and every writer of that kind uses it:
//!
//! - a line read by a person (the table, every message on a terminal, the comments of a
//!   `.reg`): [`shown`] writes control characters (C0, DEL, C1), the bidirectional controls and
//!   the line and paragraph separators as visible escapes (`\x1b`, `\u{202e}`), so that a line
//!   on screen is one line of the report, in the order it was written;
//! - a CSV cell: [`csv_cell`] prefixes a cell that a spreadsheet would run as a formula;
//! - JSON: [`JsonFormatter`] writes the same characters as `\uXXXX` escapes (the string is
//!   unchanged for a JSON reader).
//!
//! `docs/hardening.md` ("Output injection") says why each rule is what it is.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io;

/// Whether a character must not reach a terminal or a line-oriented file as itself: it would
/// move the cursor, end the line, recolour or clear the screen, or reorder what follows.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}'
        // Bidirectional marks, embeddings, overrides and isolates (Unicode UAX #9).
        | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // Line and paragraph separators: some terminals and editors end a line there.
        | '\u{2028}' | '\u{2029}')
}

/// Text shown to a person: [`is_unsafe`] characters become `\xNN` (ASCII) or `\u{NNNN}`.
/// Everything else, backslashes included, is written as it is.
#[derive(Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

/// See [`Shown`].
pub fn shown(text: &str) -> Shown<'_> {
    Shown(text)
}

/// [`Shown`] as an owned string, borrowed when nothing needs escaping.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe) {
        Cow::Owned(Shown(text).to_string())
    } else {
        Cow::Borrowed(text)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| is_unsafe(c)) {
            f.write_str(&rest[..at])?;
            if c.is_ascii() {
                write!(f, "\\x{:02x}", c as u32)?;
            } else {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A CSV cell that a spreadsheet (Excel, LibreOffice, Timeline Explorer) will not evaluate:
/// one that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`
/// (the OWASP rule for CSV injection). Every other cell is unchanged.
pub fn csv_cell(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// serde_json's formatter, with [`is_unsafe`] characters that JSON allows raw (DEL, C1, the
/// bidirectional controls and separators) written as `\uXXXX` too. A JSON reader gets the
/// same string; a person who looks at the file gets no reordered or hidden text.
#[derive(Default)]
pub struct JsonFormatter<F = serde_json::ser::CompactFormatter> {
    inner: F,
}

impl JsonFormatter<serde_json::ser::PrettyFormatter<'static>> {
    pub fn pretty() -> Self {
        JsonFormatter {
            inner: serde_json::ser::PrettyFormatter::new(),
        }
    }
}

impl JsonFormatter {
    pub fn compact() -> Self {
        JsonFormatter::default()
    }
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[inline]
            fn $name<W: ?Sized + io::Write>(&mut self, writer: &mut W $(, $arg: $ty)*) -> io::Result<()> {
                self.inner.$name(writer $(, $arg)*)
            }
        )*
    };
}

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for JsonFormatter<F> {
    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
    }

    #[inline]
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Fast path: every character escaped here is DEL or starts with 0xC2 (U+0080-U+009F),
        // 0xD8 (U+061C), 0xE2 (U+2000-U+2FFF) or 0xEF (U+FFFE, U+FFFF). Most evidence text is
        // ASCII, which one comparison per byte (vectorised) lets through.
        if fragment.bytes().fold(true, |plain, b| plain & (b < 0x7f))
            || !fragment
                .bytes()
                .any(|b| matches!(b, 0x7f | 0xc2 | 0xd8 | 0xe2 | 0xef))
        {
            return writer.write_all(fragment.as_bytes());
        }
        // The two noncharacters too: YAML forbids them raw, and the JSON is also YAML's
        // fallback form ([`to_yaml`]).
        let escape = |c: char| is_unsafe(c) || matches!(c, '\u{fffe}' | '\u{ffff}');
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| escape(c)) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let mut escape = String::with_capacity(6);
            let _ = write!(escape, "\\u{:04x}", c as u32);
            writer.write_all(escape.as_bytes())?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// Writes `value` as pretty JSON with [`JsonFormatter`].
pub fn to_json_pretty<W: io::Write + ?Sized, T: serde::Serialize + ?Sized>(
    out: &mut W,
    value: &T,
) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, JsonFormatter::pretty());
    value.serialize(&mut serializer).map_err(io::Error::from)
}

/// Writes `value` as one line of JSON with [`JsonFormatter`].
pub fn to_json_line<W: io::Write + ?Sized, T: serde::Serialize + ?Sized>(
    out: &mut W,
    value: &T,
) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, JsonFormatter::compact());
    value.serialize(&mut serializer).map_err(io::Error::from)
}

/// `value` as YAML. serde-saphyr escapes controls inside double-quoted scalars, but writes the
/// bidirectional controls raw, and writes a string with line ends as a block scalar, where
/// tabs, carriage returns and line ends stand raw (YAML has no escapes there). So a document
/// that would hold any of these is written instead in YAML's JSON-compatible flow form
/// ([`to_json_pretty`], where they are `\uXXXX` or `\n`): the same data for any YAML reader,
/// in another layout, and one line of it is one line on screen.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> io::Result<String> {
    // Without block scalars for long strings (on by default, and folded at 80 characters):
    // a long path or message stays one plain or quoted line, and the JSON form below is left
    // for what needs escapes.
    let options = serde_saphyr::ser_options! {
        prefer_block_scalars: false,
    };
    let text = serde_saphyr::to_string_with_options(value, options).map_err(io::Error::other)?;
    let raw = text.chars().any(|c| is_unsafe(c) && c != '\n');
    if !raw && !text.lines().any(is_block_scalar_header) {
        return Ok(text);
    }
    let mut flow = b"# the document holds control characters or line ends in its strings, so it is written in YAML's JSON form, where they are escaped\n".to_vec();
    to_json_pretty(&mut flow, value)?;
    flow.push(b'\n');
    String::from_utf8(flow).map_err(io::Error::other)
}

/// A line that starts a block scalar (`key: |-`, `- >`): a string whose lines follow raw.
fn is_block_scalar_header(line: &str) -> bool {
    let line = line.trim_end();
    let Some(at) = line.rfind(['|', '>']) else {
        return false;
    };
    let (before, indicator) = line.split_at(at);
    (before.is_empty() || before.ends_with(' '))
        && indicator[1..]
            .chars()
            .all(|c| matches!(c, '-' | '+' | '1'..='9'))
}

/// A diagnostic as miette renders it, with every text in it (message, help, causes, labels)
/// written with [`shown`]: a message that quotes a hive's bytes or a file name from the image
/// cannot move the terminal or fake a line. Colours and the layout are miette's, on a terminal.
pub fn render_diagnostic(diagnostic: &dyn miette::Diagnostic, color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme);
    let escaped = Escaped::of(diagnostic);
    let mut out = String::new();
    if handler.render_report(&mut out, &escaped).is_err() {
        out = format!("{}\n", shown(&diagnostic.to_string()));
    }
    out
}

/// One level of a diagnostic, its texts escaped; the first level also lends the original's
/// source code and labels (label texts escaped) to the renderer.
struct Escaped<'a> {
    original: Option<&'a dyn miette::Diagnostic>,
    message: String,
    code: Option<String>,
    help: Option<String>,
    severity: Option<miette::Severity>,
    cause: Option<Box<Escaped<'static>>>,
}

impl<'a> Escaped<'a> {
    fn of(diagnostic: &'a dyn miette::Diagnostic) -> Escaped<'a> {
        let mut top = Escaped::level(diagnostic);
        top.original = Some(diagnostic);
        top
    }

    fn level(diagnostic: &dyn miette::Diagnostic) -> Escaped<'static> {
        let cause = match diagnostic.diagnostic_source() {
            Some(inner) => Some(Box::new(Escaped::level(inner))),
            None => diagnostic.source().map(|e| Box::new(Escaped::plain(e))),
        };
        Escaped {
            original: None,
            message: escaped(&diagnostic.to_string()).into_owned(),
            code: diagnostic
                .code()
                .map(|c| escaped(&c.to_string()).into_owned()),
            help: diagnostic
                .help()
                .map(|h| escaped(&h.to_string()).into_owned()),
            severity: diagnostic.severity(),
            cause,
        }
    }

    fn plain(error: &dyn std::error::Error) -> Escaped<'static> {
        Escaped {
            original: None,
            message: escaped(&error.to_string()).into_owned(),
            code: None,
            help: None,
            severity: None,
            cause: error.source().map(|e| Box::new(Escaped::plain(e))),
        }
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Escaped<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

impl miette::Diagnostic for Escaped<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.code.as_ref().map(|c| Box::new(c) as _)
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help.as_ref().map(|h| Box::new(h) as _)
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.severity
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.original?.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let labels = self.original?.labels()?;
        Some(Box::new(labels.map(|label| {
            let text = label.label().map(|t| escaped(t).into_owned());
            miette::LabeledSpan::new_with_span(text, *label.inner())
        })))
    }

    fn diagnostic_source(&self) -> Option<&dyn miette::Diagnostic> {
        self.cause.as_deref().map(|c| c as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character of the classes, one by one, in the middle of a line.
    fn every_unsafe() -> impl Iterator<Item = char> {
        (0..=0x2fffu32)
            .filter_map(char::from_u32)
            .filter(|&c| is_unsafe(c))
    }

    #[test]
    fn the_classes_are_what_the_docs_say() {
        let listed: Vec<u32> = every_unsafe().map(|c| c as u32).collect();
        let mut expected: Vec<u32> = (0..=0x1f).chain([0x7f]).chain(0x80..=0x9f).collect();
        expected.extend([0x61c, 0x200e, 0x200f]);
        expected.extend(0x202a..=0x202e);
        expected.extend([0x2028, 0x2029]);
        expected.extend(0x2066..=0x2069);
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn shown_text_holds_no_unsafe_character_and_says_which_it_was() {
        for c in every_unsafe() {
            let text = format!("a{c}b");
            let shown = shown(&text).to_string();
            assert!(!shown.chars().any(is_unsafe), "{c:?} -> {shown:?}");
            let expected = if c.is_ascii() {
                format!("a\\x{:02x}b", c as u32)
            } else {
                format!("a\\u{{{:x}}}b", c as u32)
            };
            assert_eq!(shown, expected);
            assert_eq!(escaped(&text), expected);
        }
        assert_eq!(shown("\x1b[2J").to_string(), "\\x1b[2J");
        assert_eq!(shown("x\u{202e}gpj.exe").to_string(), "x\\u{202e}gpj.exe");
        assert!(matches!(escaped("C:\\Windows\\ä"), Cow::Borrowed(_)));
    }

    #[test]
    fn csv_cells_that_start_a_formula_get_a_quote() {
        for start in ["=", "+", "-", "@", "\t", "\r"] {
            let cell = format!("{start}HYPERLINK(\"http://x\")");
            assert_eq!(csv_cell(&cell), format!("'{cell}"));
        }
        for safe in ["", "C:\\x", "10.0.1.2", " =1", "'=1", "\\??\\C:\\a=b"] {
            assert_eq!(csv_cell(safe), safe);
        }
    }

    #[test]
    fn yaml_holds_no_raw_unsafe_character_and_reads_back_the_same() {
        for c in every_unsafe() {
            let text = format!("=a{c}b - c");
            let value = serde_json::json!({"k": [text.clone(), "plain"], "n": 1});
            let yaml = to_yaml(&value).unwrap();
            assert!(
                !yaml.chars().filter(|&c| c != '\n').any(is_unsafe),
                "{c:?}: {yaml}"
            );
            let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(back, value, "{c:?}: {yaml}");
        }
        let plain = to_yaml(&serde_json::json!({"k": "v", "l": ["a|b", ">x"]})).unwrap();
        assert_eq!(plain, "k: v\nl:\n- a|b\n- \">x\"\n");
        // Line ends and tabs inside a string: serde-saphyr would write a block scalar.
        for text in [
            "a\nb",
            "--L.b\t\nb\u{fffd}",
            "x\r\ny",
            "\n- fake: entry",
            "\u{202e}\u{ffff}\u{fffe}",
        ] {
            let value = serde_json::json!({ "k": [text] });
            let yaml = to_yaml(&value).unwrap();
            assert!(!yaml.lines().any(is_block_scalar_header), "{yaml}");
            assert!(!yaml.chars().any(|c| is_unsafe(c) && c != '\n'), "{yaml}");
            let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn diagnostics_show_quoted_evidence_escaped_at_every_level() {
        #[derive(Debug, thiserror::Error, miette::Diagnostic)]
        #[error("cannot use {path}")]
        #[diagnostic(code(nextboot::test), help("look at {path}"))]
        struct Outer {
            path: String,
            #[source]
            #[diagnostic_source]
            inner: Inner,
        }
        #[derive(Debug, thiserror::Error, miette::Diagnostic)]
        #[error("inner \u{202e}{0}")]
        struct Inner(String, #[source] std::io::Error);
        let err = Outer {
            path: "a\x1b[2Jb\r\n#9 UPGRADE".into(),
            inner: Inner("c\nd".into(), std::io::Error::other("e\x07f")),
        };
        let text = render_diagnostic(&err, false);
        assert!(
            !text.chars().filter(|&c| c != '\n').any(is_unsafe),
            "{text}"
        );
        for part in [
            "a\\x1b[2Jb\\x0d\\x0a#9 UPGRADE",
            "\\u{202e}c\\x0ad",
            "e\\x07f",
            "nextboot::test",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn json_escapes_what_json_leaves_raw_and_reads_back_the_same() {
        let text: String = every_unsafe().chain("ok ä €".chars()).collect();
        let mut out = Vec::new();
        to_json_line(&mut out, &text).unwrap();
        let written = String::from_utf8(out).unwrap();
        assert!(!written.chars().any(is_unsafe), "{written}");
        assert_eq!(serde_json::from_str::<String>(&written).unwrap(), text);
        let mut pretty = Vec::new();
        to_json_pretty(&mut pretty, &serde_json::json!({"k": [text.clone()]})).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
        assert_eq!(value["k"][0], text);
    }
}
