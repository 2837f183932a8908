//! The verdict words of the contract, the reasons given with them, and the decision for a
//! final writer.

use std::fmt;

use serde::{Serialize, Serializer};

use super::FileFacts;
use crate::version::FileVersion;
use crate::volume::Unresolved;

/// One word per operation (see `docs/contract.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Downgrade,
    Overridden,
    Upgrade,
    SameVersion,
    NewFile,
    Superseded,
    Delete,
    NoEffect,
    Unversioned,
    Unresolved,
}

impl Verdict {
    pub const ALL: [Verdict; 10] = [
        Verdict::Downgrade,
        Verdict::Overridden,
        Verdict::Upgrade,
        Verdict::SameVersion,
        Verdict::NewFile,
        Verdict::Superseded,
        Verdict::Delete,
        Verdict::NoEffect,
        Verdict::Unversioned,
        Verdict::Unresolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Downgrade => "downgrade",
            Verdict::Overridden => "overridden",
            Verdict::Upgrade => "upgrade",
            Verdict::SameVersion => "same-version",
            Verdict::NewFile => "new-file",
            Verdict::Superseded => "superseded",
            Verdict::Delete => "delete",
            Verdict::NoEffect => "no-effect",
            Verdict::Unversioned => "unversioned",
            Verdict::Unresolved => "unresolved",
        }
    }

    pub fn parse(word: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == word)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an operation got its verdict: one sentence in the user's terms. Most are one of a few
/// sentences with versions filled in, so they are kept as data and written out with the
/// report (a queue can hold 100,000 operations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A sentence that is the same for every operation it applies to.
    Fixed(&'static str),
    /// A sentence about this operation only.
    Text(Box<str>),
    /// A sentence shared by many operations (every operation of a list that will not run).
    Shared(std::sync::Arc<str>),
    /// Why a path of the operation cannot be mapped onto the volumes (boxed: rare, and the
    /// reason of every operation is kept).
    Unresolved(Box<Unresolved>),
    Downgrade {
        staged: FileVersion,
        on_disk: FileVersion,
    },
    Overridden {
        staged: FileVersion,
        lost: FileVersion,
    },
    Upgrade {
        staged: FileVersion,
        on_disk: FileVersion,
    },
    SameVersion(FileVersion),
    NewFile(Option<FileVersion>),
    /// A rename whose result a later operation replaces, moves or deletes.
    SupersededBy(usize),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Fixed(text) => f.write_str(text),
            Reason::Text(text) => f.write_str(text),
            Reason::Shared(text) => f.write_str(text),
            Reason::Unresolved(why) => why.fmt(f),
            Reason::Downgrade { staged, on_disk } => {
                write!(f, "puts version {staged} in place of version {on_disk} that is on disk")
            }
            Reason::Overridden { staged, lost } => write!(
                f,
                "puts version {staged} in place, overwriting version {lost} that an earlier operation of this boot staged there"
            ),
            Reason::Upgrade { staged, on_disk } => {
                write!(f, "replaces version {on_disk} with version {staged}")
            }
            Reason::SameVersion(version) => {
                write!(f, "replaces the file with the same version {version}")
            }
            Reason::NewFile(Some(version)) => write!(f, "creates the file, version {version}"),
            Reason::NewFile(None) => f.write_str("creates the file"),
            Reason::SupersededBy(later) => write!(
                f,
                "operation {later} later replaces, moves or deletes what this rename puts in place"
            ),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The verdict of a rename whose content is still at its destination after the boot. The
/// first word that can be decided wins: downgrade (needs S and B), overridden (needs S and
/// M), unversioned (B exists, S or B has no version), new-file, upgrade, same-version.
pub(super) fn final_writer(
    staged: Option<&FileFacts>,
    on_disk: Option<&FileFacts>,
    lost: Option<FileVersion>,
) -> (Verdict, Reason) {
    let s = staged.and_then(|f| f.file_version);
    let b = on_disk.and_then(|f| f.file_version);
    if let (Some(s), Some(b)) = (s, b) {
        if s < b {
            return (
                Verdict::Downgrade,
                Reason::Downgrade {
                    staged: s,
                    on_disk: b,
                },
            );
        }
    }
    if let (Some(s), Some(m)) = (s, lost) {
        if s < m {
            return (
                Verdict::Overridden,
                Reason::Overridden { staged: s, lost: m },
            );
        }
    }
    if let Some(disk) = on_disk {
        let missing = |facts: Option<&FileFacts>, which: &str| {
            if let Some(err) = facts.and_then(|f| f.read_error()) {
                return Reason::Text(
                    format!("{which} exists but cannot be read ({err}), so this operation could not be judged").into(),
                );
            }
            let reason = facts
                .and_then(|f| f.unversioned_reason.as_deref())
                .unwrap_or("no version");
            Reason::Text(format!("{which} has no comparable version ({reason})").into())
        };
        match (s, b) {
            (None, _) => return (Verdict::Unversioned, missing(staged, "the staged file")),
            (_, None) => {
                return (
                    Verdict::Unversioned,
                    missing(Some(disk), "the file on disk"),
                )
            }
            _ => {}
        }
    }
    match (s, b) {
        (_, None) => (Verdict::NewFile, Reason::NewFile(s)),
        (Some(s), Some(b)) if s > b => (
            Verdict::Upgrade,
            Reason::Upgrade {
                staged: s,
                on_disk: b,
            },
        ),
        (Some(s), Some(_)) => (Verdict::SameVersion, Reason::SameVersion(s)),
        // B without a version is unversioned above; B with a version needs S here.
        (None, Some(_)) => (
            Verdict::Unversioned,
            Reason::Fixed("the staged file has no version"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::FileKind;

    fn facts(version: Option<&str>) -> FileFacts {
        let mut facts = FileFacts::new("x".into(), FileKind::File);
        facts.size = Some(1);
        facts.file_version = version.map(|v| v.parse().unwrap());
        facts.unversioned_reason = version.is_none().then(|| "no version resource".into());
        facts
    }

    fn decide(s: Option<&str>, b: Option<Option<&str>>, m: Option<&str>) -> Verdict {
        let staged = facts(s);
        let disk = b.map(facts);
        final_writer(Some(&staged), disk.as_ref(), m.map(|v| v.parse().unwrap())).0
    }

    #[test]
    fn decision_order_of_the_contract() {
        use Verdict::*;
        assert_eq!(
            decide(Some("8.0.0.0"), Some(Some("12.0.0.0")), None),
            Downgrade
        );
        // Downgrade wins over overridden.
        assert_eq!(
            decide(Some("8.0.0.0"), Some(Some("12.0.0.0")), Some("9.0.0.0")),
            Downgrade
        );
        assert_eq!(
            decide(Some("0.2.0.0"), Some(Some("0.1.0.0")), Some("0.3.0.0")),
            Overridden
        );
        // Overridden needs only S and M: also without a file on disk, or with an unversioned one.
        assert_eq!(decide(Some("0.2.0.0"), None, Some("0.3.0.0")), Overridden);
        assert_eq!(
            decide(Some("0.2.0.0"), Some(None), Some("0.3.0.0")),
            Overridden
        );
        assert_eq!(decide(None, Some(Some("1.0.0.0")), None), Unversioned);
        assert_eq!(decide(Some("1.0.0.0"), Some(None), None), Unversioned);
        assert_eq!(decide(None, None, None), NewFile);
        assert_eq!(decide(Some("1.0.0.0"), None, None), NewFile);
        assert_eq!(
            decide(Some("2.0.0.0"), Some(Some("1.0.0.0")), None),
            Upgrade
        );
        assert_eq!(
            decide(Some("2.0.0.0"), Some(Some("2.0.0.0")), Some("1.0.0.0")),
            SameVersion
        );
        assert_eq!(
            decide(Some("10.0.19041.1"), Some(Some("6.3.9600.20000")), None),
            Upgrade
        );
    }

    #[test]
    fn words_round_trip() {
        for verdict in Verdict::ALL {
            assert_eq!(Verdict::parse(verdict.as_str()), Some(verdict));
            assert_eq!(
                serde_json::to_value(verdict).unwrap(),
                serde_json::Value::String(verdict.as_str().into())
            );
        }
    }
}
