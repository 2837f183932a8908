//! The `--include` patterns of `--write-baseline`.

use std::fmt;
use std::str::FromStr;

use crate::volume::fold;

/// One `--include` pattern: a Windows path relative to the system drive, matched without
/// regard to case; `*` and `?` within one name, `**` as a whole component for any number of
/// folders (none included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// `**`: zero or more components.
    AnyDepth,
    /// One component: folded literal characters and wildcards.
    Name(Vec<Glyph>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Glyph {
    Char(char),
    /// `?`
    One,
    /// `*`
    Any,
}

impl Pattern {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a relative path (components separated by `\` or `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut states = self.start();
        for component in path.split(['\\', '/']).filter(|c| !c.is_empty()) {
            states = self.advance(&states, &fold(component));
            if states.is_empty() {
                return false;
            }
        }
        states.contains(&self.parts.len())
    }

    /// The position after the last part: a path that reaches it matches.
    pub(super) fn end(&self) -> usize {
        self.parts.len()
    }

    /// Positions in `parts` reachable before any component: 0 and what `**` may skip.
    pub(super) fn start(&self) -> Vec<usize> {
        self.close(vec![0])
    }

    /// Adds the positions after every `**` that can match nothing.
    fn close(&self, mut states: Vec<usize>) -> Vec<usize> {
        let mut i = 0;
        while i < states.len() {
            let at = states[i];
            if matches!(self.parts.get(at), Some(Part::AnyDepth)) && !states.contains(&(at + 1)) {
                states.push(at + 1);
            }
            i += 1;
        }
        states.sort_unstable();
        states
    }

    /// The positions after one (folded) component.
    pub(super) fn advance(&self, states: &[usize], folded: &str) -> Vec<usize> {
        let mut next = Vec::new();
        for &at in states {
            match self.parts.get(at) {
                Some(Part::AnyDepth) => next.push(at),
                Some(Part::Name(glyphs)) if glob(glyphs, folded) => next.push(at + 1),
                _ => {}
            }
        }
        next.dedup();
        self.close(next)
    }
}

/// `*` and `?` against one folded name (iterative, with one backtrack point).
fn glob(glyphs: &[Glyph], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glyphs.get(g) {
            Some(Glyph::Any) => {
                star = Some((g, n));
                g += 1;
            }
            Some(Glyph::One) => {
                g += 1;
                n += 1;
            }
            Some(Glyph::Char(c)) if *c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((star_g, star_n)) => {
                    g = star_g + 1;
                    n = star_n + 1;
                    star = Some((star_g, star_n + 1));
                }
                None => return false,
            },
        }
    }
    glyphs[g..].iter().all(|glyph| *glyph == Glyph::Any)
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Pattern, String> {
        let relative_hint = || {
            format!("`{text}`: patterns are relative to the system drive, like Windows\\System32\\*.dll")
        };
        if text.is_empty() {
            return Err("the pattern is empty".into());
        }
        let normal = text.replace('/', "\\");
        if normal.starts_with('\\') || normal.as_bytes().get(1) == Some(&b':') {
            return Err(relative_hint());
        }
        let mut parts = Vec::new();
        for component in normal.split('\\') {
            match component {
                "" => return Err(format!("`{text}` has an empty component")),
                "." | ".." => return Err(format!("`{text}`: . and .. are not followed")),
                "**" => parts.push(Part::AnyDepth),
                c if c.contains("**") => {
                    return Err(format!(
                        "`{text}`: ** stands only for whole folders (\\**\\)"
                    ))
                }
                c => parts.push(Part::Name(
                    fold(c)
                        .chars()
                        .map(|ch| match ch {
                            '*' => Glyph::Any,
                            '?' => Glyph::One,
                            ch => Glyph::Char(ch),
                        })
                        .collect(),
                )),
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            parts,
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_match_within_and_across_folders() {
        let dlls = pattern("Windows\\System32\\*.dll");
        assert!(dlls.matches("windows\\system32\\NTDLL.DLL"));
        assert!(dlls.matches("Windows/System32/a.dll"));
        assert!(!dlls.matches("Windows\\System32\\drivers\\a.dll"));
        assert!(!dlls.matches("Windows\\System32\\a.dll.mui"));
        assert!(!dlls.matches("Windows\\System32"));

        let deep = pattern("Windows\\**\\*.sys");
        assert!(deep.matches("Windows\\x.sys"), "** matches no folder too");
        assert!(deep.matches("Windows\\System32\\drivers\\tcpip.sys"));
        assert!(!deep.matches("Program Files\\x.sys"));

        let all = pattern("Windows\\**");
        assert!(all.matches("Windows\\a\\b\\c.txt"));

        let one = pattern("Windows\\System32\\ntdl?.dll");
        assert!(one.matches("Windows\\System32\\ntdll.dll"));
        assert!(!one.matches("Windows\\System32\\ntdl.dll"));

        let stars = pattern("*\\*a*b*");
        assert!(stars.matches("x\\aab"));
        assert!(stars.matches("x\\zaXbq"));
        assert!(!stars.matches("x\\ba"));
    }

    #[test]
    fn patterns_refuse_what_they_cannot_mean() {
        for bad in [
            "",
            "C:\\Windows\\*.dll",
            "\\Windows\\*.dll",
            "Windows\\\\x",
            "Windows\\..\\x",
            "Windows\\a**b",
        ] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }
}
