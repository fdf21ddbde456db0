//! Group commit: concurrent durable writers share one sync.
//!
//! A durable commit costs a journal batch and an fdatasync, and the sync dominates: with one
//! sync per commit, eight threads committing small records reach about the rate of one. So
//! when a writer finds others writing at the same time, it commits its transaction without
//! durability (redb makes it visible at once; it is isolated like any transaction, and a
//! failure or panic in its closure rolls back only its own changes) and then waits for a
//! *shared sync*: one writer at a time becomes the leader, makes one empty durable commit,
//! which makes every commit before it durable (redb's durable commit persists all earlier
//! non-durable ones, and the journal writes their pages as one batch), and wakes the writers
//! it covered. A writer alone commits durably itself, as before. Either way a call returns
//! only once its commit is durable, so "a returned commit is durable" holds unchanged; what
//! changes is that other readers may see a commit shortly before it is durable.
//!
//! Commits are numbered after they complete; a leader covers the numbers handed out before
//! its durable commit began (all of which had completed by then), so a writer is woken only
//! by a sync that began after its own commit.

use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The group-commit state of one open store.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    /// Threads inside a durable `Store::write` right now.
    writers: AtomicUsize,
    /// The number of the last non-durable commit that joined a group.
    committed: AtomicU64,
    st: Mutex<Rounds>,
    woken: Condvar,
}

#[derive(Debug, Default)]
struct Rounds {
    /// Every commit numbered up to this one is durable.
    synced: u64,
    /// A leader is syncing.
    syncing: bool,
    /// The last failed shared sync: commits numbered up to this one, not yet synced, failed
    /// with it.
    failed: Option<(u64, String)>,
}

/// A thread inside a durable write; counts it while alive.
pub(crate) struct Writer<'g>(&'g GroupCommit);

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.0.writers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GroupCommit {
    /// Counts the calling thread as a writer until the guard drops.
    pub(crate) fn enter(&self) -> Writer<'_> {
        self.writers.fetch_add(1, Ordering::AcqRel);
        Writer(self)
    }

    /// Whether another thread is writing too: then a commit joins a group instead of syncing
    /// alone.
    pub(crate) fn crowded(&self) -> bool {
        self.writers.load(Ordering::Acquire) > 1
    }

    /// Called once the caller's non-durable commit completed: returns when a shared sync that
    /// began after it has made it durable, running that sync itself (`sync`, an empty durable
    /// commit) if no other thread is. A failed sync fails every commit it was to cover.
    pub(crate) fn wait_durable(&self, sync: impl FnOnce() -> Result<()>) -> Result<()> {
        let mine = self.committed.fetch_add(1, Ordering::AcqRel) + 1;
        let mut sync = Some(sync);
        let mut st = self.st.lock();
        loop {
            if st.synced >= mine {
                return Ok(());
            }
            if let Some((upto, why)) = &st.failed
                && *upto >= mine
            {
                return Err(Error::CommitUnknown {
                    source: std::io::Error::other(format!(
                        "the shared sync of this commit failed: {why}"
                    )),
                });
            }
            if !st.syncing
                && let Some(sync) = sync.take()
            {
                st.syncing = true;
                // Every number handed out so far belongs to a commit that has completed.
                let target = self.committed.load(Ordering::Acquire);
                drop(st);
                let outcome = sync();
                st = self.st.lock();
                st.syncing = false;
                match &outcome {
                    Ok(()) => st.synced = st.synced.max(target),
                    Err(e) => st.failed = Some((target, e.to_string())),
                }
                self.woken.notify_all();
                return outcome;
            }
            self.woken.wait(&mut st);
        }
    }
}
