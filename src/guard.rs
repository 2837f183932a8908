//! Containing panics of dependencies.
//!
//! A parser crate that panics on one malformed file must not end the run: the file becomes a
//! finding. [`contain`] runs a closure and turns a panic into an error message; while it runs,
//! the binary's panic hook stays quiet (see [`is_containing`]), so a contained panic prints
//! nothing.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

thread_local! {
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`; a panic inside it becomes `Err(message)`.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let was = CONTAINING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    })
}

/// Whether the current thread is inside [`contain`].
pub fn is_containing() -> bool {
    CONTAINING.with(|c| c.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_errors() {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        let result = contain(|| -> u32 { panic!("bad slice") });
        panic::set_hook(previous);
        assert_eq!(result, Err("bad slice".to_string()));
        assert_eq!(contain(|| 7), Ok(7));
        assert!(!is_containing());
    }
}
