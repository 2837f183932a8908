//! The terminal side of every command: standard output in large blocks, colour only where it
//! belongs, and diagnostics with their evidence text escaped.

use std::io::{self, IsTerminal, Write};

use super::{exit, Style};

/// Writes to standard output through one large buffer, which the formats write into directly;
/// false when it could not be written (a closed pipe is not an error: the reader has what it
/// wanted).
pub fn print(write: impl FnOnce(&mut io::BufWriter<Box<dyn Write>>) -> io::Result<()>) -> bool {
    let mut out = io::BufWriter::with_capacity(1 << 18, stdout());
    match write(&mut out).and_then(|_| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("nextboot: cannot write the report: {err}");
            false
        }
        _ => true,
    }
}

/// Standard output. Redirected to a file or a pipe, a report (hundreds of megabytes for a large
/// queue) is written in large blocks straight to the descriptor: `io::Stdout` would pass every
/// block through its line buffer, which rescans and copies it (10% of the time to write a
/// 100,000-operation report).
pub fn stdout() -> Box<dyn Write> {
    let stdout = io::stdout();
    if !stdout.is_terminal() {
        #[cfg(unix)]
        let raw = std::os::fd::AsFd::as_fd(&stdout).try_clone_to_owned();
        #[cfg(windows)]
        let raw = std::os::windows::io::AsHandle::as_handle(&stdout).try_clone_to_owned();
        #[cfg(any(unix, windows))]
        if let Ok(raw) = raw {
            return Box::new(std::fs::File::from(raw));
        }
    }
    Box::new(stdout.lock())
}

/// Prints a diagnostic (its evidence text escaped) and gives the exit status of an input that
/// could not be examined.
pub fn fail(err: &dyn miette::Diagnostic) -> u8 {
    let color =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    eprint!("{}", crate::text::render_diagnostic(err, color));
    exit::NOT_EXAMINED
}

/// Colour only on a terminal, never with NO_COLOR set.
pub fn style() -> Style {
    Style {
        color: io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}
