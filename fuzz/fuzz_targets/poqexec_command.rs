//! (h) The registry strings that name an action list and gate it, as an attacker may write
//! them: `list_named_by` on the input as (lossy) UTF-8, on its UTF-16LE decoding as a whole,
//! and on each string of it as a REG_MULTI_SZ `SetupExecute` or `PoqexecCmdline` (strings
//! split as `boot::action_lists` does; `PoqexecCmdline`'s strings as one argument each, as
//! it takes them); `components_identifier` on the raw bytes as a REG_BINARY `PendingXmlIdentifier`,
//! and `identifier_admits` on what comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::queue::action_list::{
    components_identifier, identifier_admits, list_named_by, list_named_by_arguments,
    ActionList,
};
use nextboot::queue::multi_sz;

fuzz_target!(|data: &[u8]| {
    // The command as text.
    command(&String::from_utf8_lossy(data));

    // The command as UTF-16LE: the whole of it (a REG_SZ read without its NUL), then each
    // string of a REG_MULTI_SZ, empty and blank ones left out as the caller does.
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    command(&String::from_utf16_lossy(&units));
    let parts: Vec<String> = multi_sz::split(data)
        .0
        .iter()
        .map(|s| s.text.to_string())
        .filter(|s| !s.trim().is_empty())
        .collect();
    for part in &parts {
        command(part);
    }
    poqexec_cmdline(&parts);

    identifier(data, &units);
});

/// What holds of `list_named_by` for any command.
fn command(command: &str) {
    let result = list_named_by(command);
    if let Some(list) = &result {
        // Quotes group and are removed, never kept; an empty argument names nothing.
        assert!(!list.contains('"'), "{command:?} -> {list:?}");
        assert!(!list.is_empty(), "{command:?}");
        // A switch is never the list.
        assert!(!list.starts_with('/'), "{command:?} -> {list:?}");
        // Blanks separate arguments outside quotes: one inside the list came from quotes.
        if list.contains([' ', '\t']) {
            assert!(command.contains('"'), "{command:?} -> {list:?}");
        }
        // `%SystemRoot%` (any case) is expanded, once, at the start.
        assert!(
            !starts_with_ignore_case(list, "%SystemRoot%"),
            "{command:?} -> {list:?}"
        );
        // Quotes are removed and the expansion is one byte shorter: never longer.
        assert!(list.len() <= command.len(), "{command:?} -> {list:?}");
        // Only poqexec names a list.
        assert!(
            contains_ignore_case(command, "poqexec"),
            "{command:?} -> {list:?}"
        );
        // Named again, quoted, by a plain poqexec command: the same list (it is already in
        // the form `list_named_by` gives).
        let again = format!("poqexec.exe /display_progress \"{list}\"");
        assert_eq!(
            list_named_by(&again).as_ref(),
            Some(list),
            "{command:?} -> {again:?}"
        );
    }
    // Without quotes the command is its blank-separated words, as a model says.
    if !command.contains('"') {
        assert_eq!(result, model(command.split([' ', '\t'])), "{command:?}");
    }
    // Blanks before the command change nothing; so do blanks and a switch after it, when its
    // quotes are balanced (inside an open quote they would be part of the last argument).
    assert_eq!(
        list_named_by(&format!(" \t{command}")),
        result,
        "{command:?}"
    );
    if command.matches('"').count() % 2 == 0 {
        assert_eq!(
            list_named_by(&format!("{command} \t")),
            result,
            "{command:?}"
        );
        assert_eq!(
            list_named_by(&format!("{command} /log")),
            result,
            "{command:?}"
        );
    }
}

/// `PoqexecCmdline` with more than one string: each string is one argument
/// (`list_named_by_arguments`), so the list is the last string after the program that is not
/// a switch, whatever it holds (blanks, tabs, quotes), as the model says of the strings.
fn poqexec_cmdline(parts: &[String]) {
    if parts.len() < 2 {
        return;
    }
    let result = list_named_by_arguments(parts);
    assert_eq!(
        result,
        model(parts.iter().map(String::as_str)),
        "{parts:?}"
    );
    if let Some(list) = &result {
        assert!(!list.is_empty(), "{parts:?}");
    }
}

/// An independent reading of the rule: the first word is the program and must be poqexec
/// (`poqexec` or `poqexec.exe`, any case, after the last `\` or `/`); the list is the last
/// later word that is not a `/switch`, with a leading `%SystemRoot%` (any case) made
/// `\SystemRoot`.
fn model<'a>(words: impl Iterator<Item = &'a str>) -> Option<String> {
    let words: Vec<&str> = words.filter(|w| !w.is_empty()).collect();
    let (program, rest) = words.split_first()?;
    let name = match program.rfind(['\\', '/']) {
        Some(at) => &program[at + 1..],
        None => program,
    };
    if !name.eq_ignore_ascii_case("poqexec") && !name.eq_ignore_ascii_case("poqexec.exe") {
        return None;
    }
    let list = rest.iter().rev().find(|w| !w.starts_with('/'))?;
    if starts_with_ignore_case(list, "%SystemRoot%") {
        Some(format!("\\SystemRoot{}", &list["%SystemRoot%".len()..]))
    } else {
        Some(list.to_string())
    }
}

/// `components_identifier` on REG_BINARY bytes, and the gate on what it gives.
fn identifier(data: &[u8], units: &[u16]) {
    let result = components_identifier(data);
    // Text exactly when the bytes are whole units of valid UTF-16.
    assert_eq!(
        result.is_some(),
        data.len() % 2 == 0 && String::from_utf16(units).is_ok(),
        "{data:02x?}"
    );
    // One NUL unit more changes nothing (a trailing NUL is not part of it).
    let mut terminated = data.to_vec();
    terminated.extend_from_slice(&[0, 0]);
    assert_eq!(components_identifier(&terminated), result, "{data:02x?}");

    let nobody = ActionList::default();
    assert!(!identifier_admits(&nobody, result.as_deref()));
    let Some(id) = result else {
        // A list with an identifier is not admitted when COMPONENTS has none.
        let lossy = ActionList {
            identifier: Some(String::from_utf16_lossy(units)),
            ..ActionList::default()
        };
        assert!(!identifier_admits(&lossy, None));
        return;
    };
    // It re-encodes to a prefix of the units, and what follows is NULs only.
    let encoded: Vec<u16> = id.encode_utf16().collect();
    assert!(units.starts_with(&encoded), "{data:02x?} -> {id:?}");
    assert!(
        units[encoded.len()..].iter().all(|&u| u == 0),
        "{data:02x?} -> {id:?}"
    );
    assert!(!id.ends_with('\0'), "{data:02x?} -> {id:?}");

    // The gate: a list with that identifier is admitted, in either ASCII case; one without an
    // identifier, or with COMPONENTS absent, is not; the comparison is symmetric.
    let list = ActionList {
        identifier: Some(id.clone()),
        ..ActionList::default()
    };
    assert!(identifier_admits(&list, Some(&id)));
    assert!(identifier_admits(&list, Some(&id.to_ascii_uppercase())));
    assert!(identifier_admits(&list, Some(&id.to_ascii_lowercase())));
    assert!(!identifier_admits(&list, None));
    // Against the input read as UTF-8 (another string an attacker controls).
    let other = String::from_utf8_lossy(data).into_owned();
    let other_list = ActionList {
        identifier: Some(other.clone()),
        ..ActionList::default()
    };
    let forward = identifier_admits(&list, Some(&other));
    assert_eq!(
        forward,
        identifier_admits(&other_list, Some(&id)),
        "{id:?} / {other:?}"
    );
    assert_eq!(
        forward,
        id.eq_ignore_ascii_case(&other),
        "{id:?} / {other:?}"
    );
    if forward {
        assert_eq!(id.len(), other.len());
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn contains_ignore_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
