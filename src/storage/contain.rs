//! Containing panics of the storage engine at the API boundary.
//!
//! redb trusts the pages it reads: a store that was closed cleanly opens without checking page
//! checksums, so a page damaged while the file was closed can make redb panic (unreachable code,
//! a slice index out of range) instead of returning an error. Every entry point into the engine
//! therefore runs inside [`Poison::contain`]: a panic raised in redb's own code becomes
//! [`Error::Corruption`], and the store refuses every later call, since the engine may have been
//! stopped half way through changing its in-memory state. A panic raised anywhere else (a
//! caller's reader or closure) is the caller's and carries on unwinding, as before.
//!
//! A panic is told to be redb's by where it was raised: a panic hook, installed once and
//! chained to the one in place then, notes on the panicking thread when the location lies in
//! redb's source, and stays quiet for it (the caller gets an error, not a panic message). An
//! application that later replaces the hook gets those panics back as panics.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Once, OnceLock};

thread_local! {
    /// What the last panic raised in the engine on this thread said, until a boundary takes it.
    static ENGINE_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Whether a panic raised in `file` (a source path) was raised inside redb.
fn in_engine(file: &str) -> bool {
    file.contains("/redb-") || file.contains("\\redb-")
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location().filter(|l| in_engine(l.file())) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let file = at.file().rsplit_once("/src/").map_or(at.file(), |(_, f)| f);
                let what = format!("{message} (redb {file}:{})", at.line());
                ENGINE_PANIC.with(|p| *p.borrow_mut() = Some(what));
                return;
            }
            previous(info)
        }));
    });
}

/// Set once the engine of a store panicked: every later call on the store (any handle, any
/// reader) fails with [`Error::Corruption`] saying why. Reopening the store starts afresh.
#[derive(Debug, Default)]
pub(crate) struct Poison(OnceLock<String>);

impl Poison {
    /// `Ok` while the engine never panicked.
    pub(crate) fn check(&self) -> Result<()> {
        match self.0.get() {
            None => Ok(()),
            Some(what) => Err(Error::corrupt(format!(
                "the store stopped after its storage engine failed on damaged data ({what}); \
                 reopen it"
            ))),
        }
    }

    /// Runs `f`, which calls into the engine: an engine panic inside it becomes
    /// [`Error::Corruption`] and poisons the store; any other panic is resumed.
    pub(crate) fn contain<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check()?;
        catch_engine_panic(f).unwrap_or_else(|what| Err(self.stop(what)))
    }

    /// Poisons the store after the engine panicked saying `what`; the error to return.
    pub(crate) fn stop(&self, what: String) -> Error {
        let error = Error::corrupt(format!("the storage engine failed on damaged data: {what}"));
        let _ = self.0.set(what);
        error
    }
}

/// Runs `f`: `Err` with what the engine said if it panicked inside redb; any other panic is
/// resumed. [`Poison::contain`] without the poison, for a caller that cannot lend it while
/// `f` runs (a reader borrowing itself mutably); it calls [`Poison::stop`] on `Err`.
pub(crate) fn catch_engine_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    install_hook();
    ENGINE_PANIC.with(|p| p.borrow_mut().take());
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(outcome) => Ok(outcome),
        Err(payload) => match ENGINE_PANIC.with(|p| p.borrow_mut().take()) {
            Some(what) => Err(what),
            None => resume_unwind(payload),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_outside_the_engine_carries_on_and_does_not_poison() {
        let poison = Poison::default();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            poison.contain(|| -> Result<()> { panic!("the caller's own") })
        }));
        assert!(caught.is_err(), "the caller's panic must reach the caller");
        assert!(poison.check().is_ok());
        assert_eq!(poison.contain(|| Ok(7)).unwrap(), 7);
    }

    #[test]
    fn only_paths_inside_redb_count_as_the_engine() {
        assert!(in_engine(
            "/root/.cargo/registry/src/index.crates.io-x/redb-4.6.0/src/tree_store/btree.rs"
        ));
        assert!(!in_engine("src/storage/open.rs"));
        assert!(!in_engine("/home/u/app/src/main.rs"));
    }
}
