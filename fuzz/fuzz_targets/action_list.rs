//! (g) A servicing action list (pending.xml) as an attacker may write it: `read_action_list`
//! on the raw bytes, and on the bytes as one list's attribute value, so that the fuzzer
//! reaches the primitives without having to invent the root element first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::queue::action_list::{read_action_list, read_with_limits, ActionListError};

fuzz_target!(|data: &[u8]| {
    check(read_action_list(data), data.len());
    let mut wrapped = b"<PendingTransaction Identifier=\"x\"><POQ>".to_vec();
    wrapped.extend_from_slice(data);
    wrapped.extend_from_slice(b"</POQ></PendingTransaction>");
    check(read_action_list(&wrapped), wrapped.len());
    // Small bounds: depth and size errors must come out as errors, whatever the input.
    if let Err(err) = read_with_limits(data, 64, 3) {
        let _ = err.to_string();
    }
});

fn check(result: Result<nextboot::queue::action_list::ActionList, ActionListError>, len: usize) {
    match result {
        Ok(list) => {
            for primitive in &list.primitives {
                assert!(primitive.kind.changes_files());
                assert!(primitive.line as usize <= len + 1);
            }
            let counted: usize = list.counts.values().sum();
            assert!(counted >= list.primitives.len());
        }
        Err(ActionListError::NotWellFormed { line, column, .. }) => {
            assert!(line >= 1 && column >= 1 && line <= len + 1);
        }
        Err(_) => {}
    }
}
