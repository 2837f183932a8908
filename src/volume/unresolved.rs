//! Why a path cannot be mapped onto the given volumes, as data: each case carries what it is
//! about, and its text is the reason the reports give (compared byte for byte across
//! versions, so a wording is changed here only on purpose).

use std::path::Path;

/// Why a path cannot be mapped onto the given volumes. The first group is the path's form
/// ([`super::parse_nt_path`]), the second what the volumes hold. Folders and links are named
/// as their volume shows them (a host path for a directory volume).
///
/// Boxed strings, and the two cases with three names boxed whole, keep it no bigger than a
/// [`super::Resolved`]: a check holds the outcome of every path of the queue at once.
///
/// Serialised (an operation's `detail`) with its case in `kind`, kebab-case, and its
/// fields; paths of the host as text, lossily where they are not valid Unicode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Unresolved {
    #[error("the path is empty")]
    EmptyPath,
    #[error("\\Device\\HarddiskVolume has no volume number")]
    NoVolumeNumber,
    #[error("a UNC path names a network share, which is not on the image")]
    Unc,
    #[error("a volume GUID path without its closing brace")]
    UnclosedGuid,
    #[error("no drive letter after the DOS-device prefix")]
    NoDriveLetter,
    #[error("the drive letter is not A to Z")]
    BadDriveLetter { letter: char },
    #[error("a device path other than \\Device\\HarddiskVolumeN is not mapped")]
    OtherDevice,
    /// Starts with `\` but with nothing smss opens files under.
    #[error("not a path smss can open on a volume (\\??\\X:\\..., \\SystemRoot\\...)")]
    NotOnVolume,
    #[error("not an NT path: it does not start with \\ (smss would fail to open it)")]
    NotNtPath,
    /// `\??\X:name`.
    #[error("a drive-relative path (X:name) has no meaning at boot")]
    DriveRelative { drive: char },
    /// `\SystemRootX`, `\Device\HarddiskVolume2x`, `\??\Volume{GUID}x`.
    #[error("the volume name runs into the path without a \\")]
    NoSeparator,
    #[error("the path has an empty component (\\\\)")]
    EmptyComponent,
    #[error("the path has a . or .. component, which is not followed")]
    DotComponent,
    /// `name:stream` (the unnamed `name::$DATA` is the file itself).
    #[error("the path names the alternate data stream \"{stream}\" of \"{name}\"; streams are not examined")]
    Stream { name: Box<str>, stream: Box<str> },

    #[error("\\SystemRoot is on the system drive {drive}:, which is not mapped (give ROOT)")]
    SystemDriveNotMapped { drive: char },
    #[error("\\SystemRoot: no Windows directory (Windows\\System32\\config) on the system drive")]
    NoWindowsDir,
    /// The GUID as the path spells it, upper-cased, without braces.
    #[error("volume {{{guid}}} has no drive letter in MountedDevices")]
    GuidWithoutDrive { guid: Box<str> },
    #[error("volume {{{guid}}} is drive {drive}: in MountedDevices, which is not mapped (use --drive {drive}:=DIR)")]
    GuidDriveNotMapped { guid: Box<str>, drive: char },
    #[error("\\Device\\HarddiskVolume{number} is not mapped (use --device {number}=DIR)")]
    DeviceNotMapped { number: u32 },
    #[error("drive {drive}: is not mapped to a volume (use ROOT, --system-drive or --drive {drive}:=DIR)")]
    DriveNotMapped { drive: char },
    /// `limit` links were followed and the path led to one more.
    #[error("more than {limit} links on the way (a link loop?)")]
    TooManyLinks { limit: usize },
    #[error("cannot read the link {link}: {error}")]
    UnreadableLink { link: Box<str>, error: Box<str> },
    /// The target as stored climbs above the volume root.
    #[error("the link {link} points outside its volume ({}); links are never followed out of a volume", .target.display())]
    LinkOutside {
        link: Box<str>,
        #[serde(serialize_with = "lossy")]
        target: Box<Path>,
    },
    /// The target as stored names a volume GUID, a UNC path or a device.
    #[error("the link {link} points to another volume ({}); it is not followed", .target.display())]
    LinkToOtherVolume {
        link: Box<str>,
        #[serde(serialize_with = "lossy")]
        target: Box<Path>,
    },
    #[error("cannot list {folder}: {error}")]
    Unlistable { folder: Box<str>, error: Box<str> },
    /// A queue name not found that could be a name which is not valid Unicode.
    #[error("{0}")]
    Undecodable(Box<UndecodableMatch>),
    /// A case-sensitive mount holds several names that fold to the one asked for.
    #[error("{} names in {folder} differ only by case ({}); Windows would see one file, this mount has several", .names.len(), .names.join(", "))]
    CaseTwins {
        folder: Box<str>,
        names: Box<[Box<str>]>,
    },
    /// A derived short name that more than one long name could hold.
    #[error("{0}")]
    AmbiguousShortName(Box<ShortNameCandidates>),
}

/// What [`Unresolved::Undecodable`] is about (boxed: rare, and three names long).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{component} is not in {folder} under that name, but {folder} holds a name that is not valid Unicode and could be it ({name}, undecodable bytes shown as U+FFFD); Windows would compare the real name")]
pub struct UndecodableMatch {
    /// The name as the queue spells it.
    pub component: Box<str>,
    pub folder: Box<str>,
    /// The name on disk, lossy: undecodable bytes as U+FFFD.
    pub name: Box<str>,
}

/// What [`Unresolved::AmbiguousShortName`] is about (boxed: rare, and three names long).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("the short name {short} in {folder} could be any of: {} (the volume does not record short names here; creation order decides)", .candidates.join(", "))]
pub struct ShortNameCandidates {
    pub short: Box<str>,
    pub folder: Box<str>,
    /// The long names that could hold it, in listing order.
    pub candidates: Box<[Box<str>]>,
}

/// A link target as text: serde refuses a path that is not valid Unicode, and one bad name
/// must not cost the whole report.
fn lossy<S: serde::Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text as it was when `Unresolved` was a string: reports compare them byte for byte.
    #[test]
    fn texts_are_the_reports_reasons() {
        let strings = |items: &[&str]| items.iter().map(|&s| s.into()).collect();
        for (unresolved, text) in [
            (Unresolved::EmptyPath, "the path is empty"),
            (
                Unresolved::NoVolumeNumber,
                r"\Device\HarddiskVolume has no volume number",
            ),
            (
                Unresolved::Unc,
                "a UNC path names a network share, which is not on the image",
            ),
            (
                Unresolved::UnclosedGuid,
                "a volume GUID path without its closing brace",
            ),
            (
                Unresolved::NoDriveLetter,
                "no drive letter after the DOS-device prefix",
            ),
            (
                Unresolved::BadDriveLetter { letter: '1' },
                "the drive letter is not A to Z",
            ),
            (
                Unresolved::OtherDevice,
                r"a device path other than \Device\HarddiskVolumeN is not mapped",
            ),
            (
                Unresolved::NotOnVolume,
                r"not a path smss can open on a volume (\??\X:\..., \SystemRoot\...)",
            ),
            (
                Unresolved::NotNtPath,
                r"not an NT path: it does not start with \ (smss would fail to open it)",
            ),
            (
                Unresolved::DriveRelative { drive: 'C' },
                "a drive-relative path (X:name) has no meaning at boot",
            ),
            (
                Unresolved::NoSeparator,
                r"the volume name runs into the path without a \",
            ),
            (
                Unresolved::EmptyComponent,
                r"the path has an empty component (\\)",
            ),
            (
                Unresolved::DotComponent,
                "the path has a . or .. component, which is not followed",
            ),
            (
                Unresolved::Stream {
                    name: "a.txt".into(),
                    stream: "hidden".into(),
                },
                "the path names the alternate data stream \"hidden\" of \"a.txt\"; streams are not examined",
            ),
            (
                Unresolved::SystemDriveNotMapped { drive: 'C' },
                r"\SystemRoot is on the system drive C:, which is not mapped (give ROOT)",
            ),
            (
                Unresolved::NoWindowsDir,
                r"\SystemRoot: no Windows directory (Windows\System32\config) on the system drive",
            ),
            (
                Unresolved::GuidWithoutDrive {
                    guid: "ABCD".into(),
                },
                "volume {ABCD} has no drive letter in MountedDevices",
            ),
            (
                Unresolved::GuidDriveNotMapped {
                    guid: "ABCD".into(),
                    drive: 'E',
                },
                "volume {ABCD} is drive E: in MountedDevices, which is not mapped (use --drive E:=DIR)",
            ),
            (
                Unresolved::DeviceNotMapped { number: 4 },
                r"\Device\HarddiskVolume4 is not mapped (use --device 4=DIR)",
            ),
            (
                Unresolved::DriveNotMapped { drive: 'E' },
                "drive E: is not mapped to a volume (use ROOT, --system-drive or --drive E:=DIR)",
            ),
            (
                Unresolved::TooManyLinks { limit: 32 },
                "more than 32 links on the way (a link loop?)",
            ),
            (
                Unresolved::UnreadableLink {
                    link: "/v/l".into(),
                    error: "denied".into(),
                },
                "cannot read the link /v/l: denied",
            ),
            (
                Unresolved::LinkOutside {
                    link: "/v/l".into(),
                    target: Path::new("../../x").into(),
                },
                "the link /v/l points outside its volume (../../x); links are never followed out of a volume",
            ),
            (
                Unresolved::LinkToOtherVolume {
                    link: "/v/l".into(),
                    target: Path::new(r"\\server\share").into(),
                },
                r"the link /v/l points to another volume (\\server\share); it is not followed",
            ),
            (
                Unresolved::Unlistable {
                    folder: "/v/d".into(),
                    error: "denied".into(),
                },
                "cannot list /v/d: denied",
            ),
            (
                Unresolved::Undecodable(Box::new(UndecodableMatch {
                    component: "ÜBER.DLL".into(),
                    folder: "/v/d".into(),
                    name: "\u{fffd}ber.dll".into(),
                })),
                "ÜBER.DLL is not in /v/d under that name, but /v/d holds a name that is not valid Unicode and could be it (\u{fffd}ber.dll, undecodable bytes shown as U+FFFD); Windows would compare the real name",
            ),
            (
                Unresolved::CaseTwins {
                    folder: "/v/d".into(),
                    names: strings(&["a.dll", "A.DLL"]),
                },
                "2 names in /v/d differ only by case (a.dll, A.DLL); Windows would see one file, this mount has several",
            ),
            (
                Unresolved::AmbiguousShortName(Box::new(ShortNameCandidates {
                    short: "PROGRA~1".into(),
                    folder: "/v".into(),
                    candidates: strings(&["Program Files", "Program Files (x86)"]),
                })),
                "the short name PROGRA~1 in /v could be any of: Program Files, Program Files (x86) (the volume does not record short names here; creation order decides)",
            ),
        ] {
            assert_eq!(unresolved.to_string(), text, "{unresolved:?}");
        }
    }

    #[test]
    fn a_failed_path_is_no_bigger_than_a_resolved_one() {
        use std::mem::size_of;
        type Outcome = Result<super::super::Resolved, Unresolved>;
        assert_eq!(size_of::<Outcome>(), size_of::<super::super::Resolved>());
    }
}
