//! (f) Output injection: evidence text through every escaping rule of `nextboot::text`. The
//! input is a string (lossy UTF-8). Asserts, for any text: `shown` holds no unsafe character
//! (so a line on screen is one line of the report); a CSV cell never starts a formula; JSON
//! and YAML hold no raw unsafe character and read back to the same string; a `--load-key`
//! that is accepted holds nothing a `.reg` or a command line could not carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::commands::fix::LoadKey;
use nextboot::text::{csv_cell, is_unsafe, shown, to_json_line, to_yaml};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let escaped = shown(&text).to_string();
    assert!(!escaped.chars().any(is_unsafe), "{escaped:?}");

    let cell = csv_cell(&text);
    assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']));
    assert!(cell.ends_with(text.as_str()));

    let mut json = Vec::new();
    to_json_line(&mut json, &text).unwrap();
    let json = String::from_utf8(json).unwrap();
    assert!(!json.chars().any(is_unsafe), "{json:?}");
    assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);

    let value = serde_json::json!({ "k": [text.clone()] });
    let yaml = to_yaml(&value).unwrap();
    assert!(!yaml.chars().filter(|&c| c != '\n').any(is_unsafe), "{yaml:?}");
    let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, value);

    if let Ok(key) = text.parse::<LoadKey>() {
        let full = key.full();
        assert!(!full.chars().any(|c| is_unsafe(c) || "\"[]".contains(c)), "{full:?}");
        assert_eq!(full.matches('\\').count(), 1);
    }
});
