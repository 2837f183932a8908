//! NT object paths as smss passes them to `NtOpenFile`.
//!
//! Handled: the DOS-device forms `\??\X:\...`, `\DosDevices\X:\...` and `\GLOBAL??\X:\...`.
//! Everything else is reported as unresolved with the reason, never guessed: UNC paths name a
//! network share, `\Device\...` and `\??\Volume{...}` name a volume by something other than
//! its letter, and `\SystemRoot` needs the Windows directory.

use super::Unresolved;

/// A path on a drive letter, split into components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrivePath {
    /// Upper-case drive letter.
    pub drive: char,
    /// Components after the drive root; empty for the root itself.
    pub components: Vec<String>,
}

const DOS_DEVICE_PREFIXES: [&str; 3] = ["\\??\\", "\\DosDevices\\", "\\GLOBAL??\\"];

pub fn parse_nt_path(path: &str) -> Result<DrivePath, Unresolved> {
    let unresolved = |why: &str| Err(Unresolved(why.to_string()));
    if path.is_empty() {
        return unresolved("the path is empty");
    }
    let Some(rest) = DOS_DEVICE_PREFIXES.iter().find_map(|prefix| {
        path.get(..prefix.len())
            .filter(|head| head.eq_ignore_ascii_case(prefix))
            .map(|_| &path[prefix.len()..])
    }) else {
        return if starts_with_ignore_case(path, "\\Device\\") {
            unresolved("a device path (\\Device\\...) names a volume by device number, which is not mapped")
        } else if starts_with_ignore_case(path, "\\SystemRoot") {
            unresolved("\\SystemRoot paths are not mapped yet")
        } else if path.starts_with('\\') {
            unresolved("not a DOS-device path (\\??\\X:\\...)")
        } else {
            unresolved("not an NT path: it does not start with \\ (smss would fail to open it)")
        };
    };
    if starts_with_ignore_case(rest, "UNC\\") {
        return unresolved("a UNC path names a network share, which is not on the image");
    }
    if starts_with_ignore_case(rest, "Volume{") {
        return unresolved("a volume GUID path is not mapped to a drive letter");
    }
    let mut chars = rest.chars();
    let (Some(letter), Some(':')) = (chars.next(), chars.next()) else {
        return unresolved("no drive letter after the DOS-device prefix");
    };
    if !letter.is_ascii_alphabetic() {
        return unresolved("the drive letter is not A to Z");
    }
    let tail = chars.as_str();
    if !tail.is_empty() && !tail.starts_with('\\') {
        return unresolved("a drive-relative path (X:name) has no meaning at boot");
    }
    let tail = tail.strip_prefix('\\').unwrap_or(tail);
    // One trailing separator names a directory; the components are the same.
    let tail = tail.strip_suffix('\\').unwrap_or(tail);
    let mut components = Vec::new();
    if !tail.is_empty() {
        for component in tail.split('\\') {
            match component {
                "" => return unresolved("the path has an empty component (\\\\)"),
                "." | ".." => {
                    return unresolved("the path has a . or .. component, which is not followed")
                }
                c if c.contains(':') => {
                    return unresolved("the path names an alternate data stream (name:stream)")
                }
                c => components.push(c.to_string()),
            }
        }
    }
    Ok(DrivePath {
        drive: letter.to_ascii_uppercase(),
        components,
    })
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> (char, Vec<String>) {
        let parsed = parse_nt_path(path).unwrap();
        (parsed.drive, parsed.components)
    }

    #[test]
    fn dos_device_forms() {
        let expected = ('C', vec!["Windows".to_string(), "x.dll".to_string()]);
        assert_eq!(ok("\\??\\C:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\??\\c:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\DosDevices\\C:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\GLOBAL??\\C:\\Windows\\x.dll"), expected);
        assert_eq!(ok("\\??\\D:\\dir\\"), ('D', vec!["dir".to_string()]));
        assert_eq!(ok("\\??\\D:\\"), ('D', vec![]));
    }

    #[test]
    fn everything_else_says_why() {
        for (path, why) in [
            ("", "empty"),
            ("\\??\\UNC\\server\\share\\x", "network"),
            ("\\Device\\HarddiskVolume2\\x", "device"),
            ("\\SystemRoot\\x", "SystemRoot"),
            ("C:\\x", "not an NT path"),
            ("\\??\\C:\\a\\..\\..\\etc\\passwd", ".."),
            ("\\??\\C:\\a\\.\\b", ".."),
            ("\\??\\C:\\a\\\\b", "empty component"),
            ("\\??\\C:\\a.txt:hidden", "data stream"),
            ("\\??\\C:x", "drive-relative"),
            ("\\??\\1:\\x", "A to Z"),
            ("\\??\\Volume{1234}\\x", "GUID"),
        ] {
            let err = parse_nt_path(path).unwrap_err();
            assert!(err.0.contains(why), "{path}: {}", err.0);
        }
    }
}
