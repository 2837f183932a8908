//! (a) A SYSTEM hive from arbitrary bytes: `SystemHive::read`, then the queue of every control
//! set decoded, as `check` does. Any panic, contained or not, is a finding: libFuzzer's panic
//! hook aborts before `guard::contain` can catch it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nextboot::hive::{ControlSetChoice, SystemHive};
use nextboot::queue::decode_registry;

fuzz_target!(|data: &[u8]| {
    let Ok(hive) = SystemHive::read(data) else {
        return;
    };
    for choice in [ControlSetChoice::Next, ControlSetChoice::Current] {
        let _ = hive.choose_control_set(choice);
    }
    for set in &hive.control_sets {
        let queue = decode_registry(&set.pending);
        assert!(queue.operations.len() <= data.len());
    }
    let _ = hive.present_sets();
});
