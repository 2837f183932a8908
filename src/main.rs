//! The `nextboot` command: parses the arguments and dispatches them to the library
//! ([`nextboot::commands::cli`]).

use std::process::ExitCode;

use clap::Parser;

use nextboot::commands::cli::{self, Cli};
use nextboot::report::exit;

/// glibc maps buffers of 128 KiB and more and returns them to the system when freed, but
/// after the first such free it raises that threshold (up to 32 MiB), and large buffers then
/// come from the heap, where the holes they leave are not returned. The pipeline frees large
/// buffers between stages (the raw queue value, the replay's map), and its worker threads
/// allocate in their own arenas that cannot reuse those holes: with the threshold fixed, a
/// 100,000-operation check peaks at 79 MB instead of 101 MB, at the same speed.
fn keep_large_buffers_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    keep_large_buffers_mapped();
    std::panic::set_hook(Box::new(|info| {
        if !nextboot::guard::is_containing() {
            eprintln!("nextboot: internal error: {info}\nPlease report this with the command line that caused it.");
        }
    }));
    let status = match Cli::try_parse() {
        Ok(parsed) => std::panic::catch_unwind(|| cli::run(parsed)).unwrap_or(exit::NOT_EXAMINED),
        Err(err) => cli::usage(err),
    };
    ExitCode::from(status)
}
