//! NT object paths as smss passes them to `NtOpenFile`.
//!
//! Forms understood:
//! - DOS devices: `\??\X:\...`, `\DosDevices\X:\...`, `\GLOBAL??\X:\...`;
//! - `\SystemRoot\...`: the Windows directory of the system drive;
//! - `\??\Volume{GUID}\...`: a volume by its mount-manager GUID;
//! - `\Device\HarddiskVolumeN\...`: a volume by device number.
//!
//! Reported, never guessed: UNC paths (a network share is not on the image), other devices,
//! alternate data streams, `.`/`..` components, empty components.

use super::Unresolved;

/// Where a path starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// Upper-case drive letter.
    Drive(char),
    SystemRoot,
    /// The GUID in upper case, without braces.
    VolumeGuid(String),
    /// `\Device\HarddiskVolumeN`.
    Device(u32),
}

/// A parsed NT path: where it starts and the components below that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtPath {
    pub anchor: Anchor,
    pub components: Vec<String>,
}

const DOS_DEVICE_PREFIXES: [&str; 3] = ["\\??\\", "\\DosDevices\\", "\\GLOBAL??\\"];
const DEVICE_VOLUME: &str = "\\Device\\HarddiskVolume";

pub fn parse_nt_path(path: &str) -> Result<NtPath, Unresolved> {
    if path.is_empty() {
        return Err(Unresolved::EmptyPath);
    }
    let (anchor, tail) = if let Some(rest) = strip_prefix_ignore_case(path, DEVICE_VOLUME) {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let Ok(number) = rest[..digits_end].parse::<u32>() else {
            return Err(Unresolved::NoVolumeNumber);
        };
        (Anchor::Device(number), &rest[digits_end..])
    } else if let Some(rest) = strip_prefix_ignore_case(path, "\\SystemRoot") {
        (Anchor::SystemRoot, rest)
    } else if let Some(rest) = DOS_DEVICE_PREFIXES
        .iter()
        .find_map(|prefix| strip_prefix_ignore_case(path, prefix))
    {
        if strip_prefix_ignore_case(rest, "UNC\\").is_some() {
            return Err(Unresolved::Unc);
        }
        if let Some(after) = strip_prefix_ignore_case(rest, "Volume{") {
            let Some(close) = after.find('}') else {
                return Err(Unresolved::UnclosedGuid);
            };
            (
                Anchor::VolumeGuid(after[..close].to_ascii_uppercase()),
                &after[close + 1..],
            )
        } else {
            let mut chars = rest.chars();
            let (Some(letter), Some(':')) = (chars.next(), chars.next()) else {
                return Err(Unresolved::NoDriveLetter);
            };
            if !letter.is_ascii_alphabetic() {
                return Err(Unresolved::BadDriveLetter { letter });
            }
            (Anchor::Drive(letter.to_ascii_uppercase()), chars.as_str())
        }
    } else if strip_prefix_ignore_case(path, "\\Device\\").is_some() {
        return Err(Unresolved::OtherDevice);
    } else if path.starts_with('\\') {
        return Err(Unresolved::NotOnVolume);
    } else {
        return Err(Unresolved::NotNtPath);
    };

    if !tail.is_empty() && !tail.starts_with('\\') {
        return Err(match anchor {
            Anchor::Drive(drive) => Unresolved::DriveRelative { drive },
            _ => Unresolved::NoSeparator,
        });
    }
    let tail = tail.strip_prefix('\\').unwrap_or(tail);
    // One trailing separator names a directory; the components are the same.
    let tail = tail.strip_suffix('\\').unwrap_or(tail);
    let mut components = Vec::new();
    if !tail.is_empty() {
        let count = tail.split('\\').count();
        for (i, component) in tail.split('\\').enumerate() {
            match component {
                "" => return Err(Unresolved::EmptyComponent),
                "." | ".." => return Err(Unresolved::DotComponent),
                c => match c.split_once(':') {
                    None => components.push(c.to_string()),
                    // `name::$DATA` is the file's unnamed stream: the file itself.
                    Some((name, stream))
                        if i + 1 == count
                            && !name.is_empty()
                            && stream.eq_ignore_ascii_case(":$DATA") =>
                    {
                        components.push(name.to_string())
                    }
                    Some((name, stream)) => {
                        return Err(Unresolved::Stream {
                            name: name.into(),
                            stream: stream.into(),
                        })
                    }
                },
            }
        }
    }
    Ok(NtPath { anchor, components })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .map(|_| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> (Anchor, Vec<String>) {
        let parsed = parse_nt_path(path).unwrap();
        (parsed.anchor, parsed.components)
    }

    fn parts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dos_device_forms() {
        let expected = (Anchor::Drive('C'), parts(&["Windows", "x.dll"]));
        assert_eq!(ok("\\??\\C:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\??\\c:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\DosDevices\\C:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\GLOBAL??\\C:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\??\\C:\\Windows\\x.dll::$DATA"), expected);
        assert_eq!(ok("\\??\\D:\\dir\\"), (Anchor::Drive('D'), parts(&["dir"])));
        assert_eq!(ok("\\??\\D:\\"), (Anchor::Drive('D'), vec![]));
        assert_eq!(ok("\\??\\D:"), (Anchor::Drive('D'), vec![]));
    }

    #[test]
    fn other_anchors() {
        assert_eq!(
            ok("\\SystemRoot\\System32\\x.dll"),
            (Anchor::SystemRoot, parts(&["System32", "x.dll"]))
        );
        assert_eq!(
            ok("\\??\\Volume{a1b2c3d4-0000-0000-0000-100000000000}\\x"),
            (
                Anchor::VolumeGuid("A1B2C3D4-0000-0000-0000-100000000000".into()),
                parts(&["x"])
            )
        );
        assert_eq!(
            ok("\\Device\\HarddiskVolume3\\Windows\\x"),
            (Anchor::Device(3), parts(&["Windows", "x"]))
        );
    }

    #[test]
    fn everything_else_says_why() {
        for (path, why) in [
            ("", "empty"),
            ("\\??\\UNC\\server\\share\\x", "network"),
            ("\\Device\\Floppy0\\x", "HarddiskVolumeN"),
            ("\\Device\\HarddiskVolume\\x", "no volume number"),
            ("\\Device\\HarddiskVolume2x\\y", "without a \\"),
            ("\\SystemRootX\\y", "without a \\"),
            ("C:\\x", "not an NT path"),
            ("\\Windows\\x", "not a path smss can open"),
            ("\\??\\C:\\a\\..\\..\\etc\\passwd", ".."),
            ("\\??\\C:\\a\\.\\b", ".."),
            ("\\??\\C:\\a\\\\b", "empty component"),
            (
                "\\??\\C:\\a.txt:hidden",
                "alternate data stream \"hidden\" of \"a.txt\"",
            ),
            ("\\??\\C:\\dir:s\\x", "alternate data stream"),
            ("\\??\\C:x", "drive-relative"),
            ("\\??\\1:\\x", "A to Z"),
            ("\\??\\Volume{1234\\x", "closing brace"),
        ] {
            let err = parse_nt_path(path).unwrap_err().to_string();
            assert!(err.contains(why), "{path}: {err}");
        }
    }
}
