//! `SYSTEM\Select` and the choice of control set.
//!
//! Offline there is no `CurrentControlSet` link. `Select\Current` is the set the last boot
//! used; the boot loader starts the next boot from `Select\Default` (or `LastKnownGood` when a
//! user picks it) and writes that number back as `Current`. Set numbers are not limited to 1
//! and 2: any `ControlSetNNN` is possible.

use super::{HiveError, SystemHive};

/// The DWORDs of `SYSTEM\Select` (absent values are `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Select {
    pub current: Option<u32>,
    pub default: Option<u32>,
    pub failed: Option<u32>,
    pub last_known_good: Option<u32>,
}

/// Which control set's queue to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlSetChoice {
    /// `Select\Default`: the set the next boot loads.
    Next,
    /// `Select\Current`: the set the last boot used.
    Current,
    Number(u32),
}

/// How the control set replayed was chosen, as the report says it (`chosen_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChosenBy {
    /// `Select\Default`: the set the next boot uses.
    Next,
    /// `Select\Current`: the set the last boot used.
    Current,
    /// A number given on the command line.
    Number,
}

impl ChosenBy {
    /// The sentence the table gives for it.
    pub fn describe(self) -> &'static str {
        match self {
            ChosenBy::Next => "the set the next boot uses",
            ChosenBy::Current => "the set the last boot used",
            ChosenBy::Number => "chosen on the command line",
        }
    }
}

impl ControlSetChoice {
    pub fn chosen_by(self) -> ChosenBy {
        match self {
            ControlSetChoice::Next => ChosenBy::Next,
            ControlSetChoice::Current => ChosenBy::Current,
            ControlSetChoice::Number(_) => ChosenBy::Number,
        }
    }
}

impl std::str::FromStr for ControlSetChoice {
    type Err = String;

    /// `next`, `current` or a number from 1 to 999 (`--control-set`).
    fn from_str(text: &str) -> Result<ControlSetChoice, String> {
        match text {
            "next" => Ok(ControlSetChoice::Next),
            "current" => Ok(ControlSetChoice::Current),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0 && n < 1000)
                .map(ControlSetChoice::Number)
                .ok_or_else(|| {
                    format!("`{text}` is not next, current or a control set number (1 to 999)")
                }),
        }
    }
}

/// The control set to replay: which one, how it was chosen, and where it is in
/// [`SystemHive::control_sets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChosenControlSet {
    pub number: u32,
    pub chosen_by: ChosenBy,
    pub index: usize,
}

impl Select {
    /// Reads the four DWORDs through `dword` (name -> value; a value of the wrong type or size
    /// is absent, not a damaged hive).
    pub(super) fn read(
        dword: impl Fn(&str) -> Result<Option<u32>, HiveError>,
    ) -> Result<Select, HiveError> {
        Ok(Select {
            current: dword("Current")?,
            default: dword("Default")?,
            failed: dword("Failed")?,
            last_known_good: dword("LastKnownGood")?,
        })
    }
}

impl SystemHive {
    /// Resolves a choice to a control set number that exists in the hive.
    pub fn choose_control_set(&self, choice: ControlSetChoice) -> Result<u32, HiveError> {
        self.choose(choice).map(|chosen| chosen.number)
    }

    /// Resolves a choice to a control set that exists in the hive and can be read.
    pub fn choose(&self, choice: ControlSetChoice) -> Result<ChosenControlSet, HiveError> {
        let (named_by, number) = match choice {
            ControlSetChoice::Number(n) => ("--control-set", Some(n)),
            ControlSetChoice::Next => ("Select\\Default", self.select.and_then(|s| s.default)),
            ControlSetChoice::Current => ("Select\\Current", self.select.and_then(|s| s.current)),
        };
        let Some(number) = number else {
            return Err(HiveError::NoSelect {
                present: self.present_sets(),
            });
        };
        let index = self
            .control_sets
            .iter()
            .position(|s| s.control_set == number);
        match index.map(|i| (i, &self.control_sets[i])) {
            None => Err(HiveError::MissingControlSet {
                named_by,
                number,
                present: self.present_sets(),
            }),
            Some((index, set)) => match &set.damage {
                Some(damage) => Err(HiveError::ControlSetDamaged {
                    number,
                    damage: damage.clone(),
                    present: self.present_sets(),
                }),
                None => Ok(ChosenControlSet {
                    number,
                    chosen_by: choice.chosen_by(),
                    index,
                }),
            },
        }
    }
}

/// `ControlSet001` -> 1. Exactly three digits, as Windows writes them (`ControlSet%03d`).
pub(super) fn parse_name(name: &str) -> Option<u32> {
    let digits = name
        .get(..10)
        .filter(|prefix| prefix.eq_ignore_ascii_case("ControlSet"))
        .and(name.get(10..))?;
    if digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_set_names() {
        assert_eq!(parse_name("ControlSet001"), Some(1));
        assert_eq!(parse_name("controlset047"), Some(47));
        assert_eq!(parse_name("ControlSet1"), None);
        assert_eq!(parse_name("ControlSet0001"), None);
        assert_eq!(parse_name("CurrentControlSet"), None);
        assert_eq!(parse_name("ControlSéé1"), None);
    }
}
