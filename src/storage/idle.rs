//! Idle checkpoints: when does an open store record its allocator state by itself?
//!
//! After a crash the engine checks every page of the file unless the last durable commit
//! recorded its allocator state, which [`Store::checkpoint`](super::Store::checkpoint) does.
//! Recording it with every commit costs too much (it grows with the store), so one thread per
//! open store waits for the store to go quiet: once a delay has passed with no commit since
//! the last one, it checkpoints. A steady stream of commits never triggers it; a burst
//! followed by quiet triggers exactly one. The thread holds only a weak reference to the
//! store; the last handle's drop (or `close`) stops and joins it, so it never commits on a
//! closed store.
//!
//! The thread wakes at most once per delay while commits stream in: a commit only wakes it
//! when it was waiting with nothing to do.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::open::Inner;

/// What a store's idle checkpoints have done since it opened ([`Store::idle_checkpoints`]).
///
/// [`Store::idle_checkpoints`]: super::Store::idle_checkpoints
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdleCheckpoints {
    /// The delay after the last commit, if idle checkpoints are on for this store.
    pub delay: Option<Duration>,
    /// Checkpoints that succeeded.
    pub done: u64,
    /// Checkpoints that failed (each one's error is dropped, but for the last one's text; the
    /// next commit reports a real I/O problem as usual).
    pub failed: u64,
    /// The last failure's error, as text.
    pub last_error: Option<String>,
}

/// Where the idle thread reads the time: the real clock, or one a test moves by hand.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    Real(Instant),
    Manual(Duration),
}

#[derive(Debug)]
struct State {
    /// Commits so far; `checkpointed` is the count the last checkpoint covered.
    commits: u64,
    checkpointed: u64,
    /// When the last commit was seen, as read from `clock`.
    last_commit: Duration,
    clock: Clock,
    stop: bool,
    stats: IdleCheckpoints,
}

impl State {
    fn now(&self) -> Duration {
        match self.clock {
            Clock::Real(base) => base.elapsed(),
            Clock::Manual(t) => t,
        }
    }
}

/// What the idle thread is to do next, for the state it sees at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Stop,
    /// Nothing was committed since the last checkpoint: wait for a commit.
    Sleep,
    /// Wait this long more (the last commit is too recent).
    Wait(Duration),
    /// Checkpoint the commits up to this count.
    Checkpoint(u64),
}

fn next(st: &State, delay: Duration, now: Duration) -> Next {
    if st.stop {
        return Next::Stop;
    }
    if st.commits == st.checkpointed {
        return Next::Sleep;
    }
    let due = st.last_commit + delay;
    match due.checked_sub(now) {
        Some(left) if !left.is_zero() => Next::Wait(left),
        _ => Next::Checkpoint(st.commits),
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Signalled after each checkpoint attempt (for tests waiting for one).
    attempted: Condvar,
    delay: Duration,
}

/// The commit side: [`Inner`] tells it of each commit.
#[derive(Debug, Clone)]
pub(crate) struct Idle(Arc<Shared>);

/// The thread's owner, held by every `Store` handle: its drop (the last handle's) stops the
/// thread and waits for it.
#[derive(Debug)]
pub(crate) struct IdleThread {
    idle: Idle,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Idle {
    /// Starts the thread of `store`, checkpointing `delay` after the last commit.
    pub(crate) fn start(store: Weak<Inner>, idle: Idle) -> std::io::Result<IdleThread> {
        let shared = Arc::clone(&idle.0);
        let thread = std::thread::Builder::new()
            .name("recfiles-idle-checkpoint".into())
            .spawn(move || run(&shared, &store))?;
        Ok(IdleThread {
            idle,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn new(delay: Duration, clock: Clock) -> Idle {
        Idle(Arc::new(Shared {
            state: Mutex::new(State {
                commits: 0,
                checkpointed: 0,
                last_commit: Duration::ZERO,
                clock,
                stop: false,
                stats: IdleCheckpoints {
                    delay: Some(delay),
                    ..Default::default()
                },
            }),
            wake: Condvar::new(),
            attempted: Condvar::new(),
            delay,
        }))
    }

    /// A commit happened: the delay starts again.
    pub(crate) fn committed(&self) {
        let mut st = self.0.state.lock();
        let was_clean = st.commits == st.checkpointed;
        st.commits += 1;
        st.last_commit = st.now();
        drop(st);
        // A thread waiting out an earlier commit's delay wakes by itself and sees this one;
        // only one waiting for a first commit needs waking (so a stream of commits wakes it
        // once per delay, not once per commit).
        if was_clean {
            self.0.wake.notify_one();
        }
    }

    pub(crate) fn stats(&self) -> IdleCheckpoints {
        self.0.state.lock().stats.clone()
    }

    /// Moves a manual clock forward by `by` (a real clock is left alone).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn advance(&self, by: Duration) {
        let mut st = self.0.state.lock();
        if let Clock::Manual(t) = st.clock {
            st.clock = Clock::Manual(t + by);
        }
        drop(st);
        self.0.wake.notify_one();
    }

    /// Waits until `done + failed` reaches `attempts`, or `timeout` passed; whether it did.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn wait_attempts(&self, attempts: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.0.state.lock();
        while st.stats.done + st.stats.failed < attempts {
            if self.0.attempted.wait_until(&mut st, deadline).timed_out() {
                return st.stats.done + st.stats.failed >= attempts;
            }
        }
        true
    }
}

impl IdleThread {
    /// Stops the thread and waits for it (a checkpoint under way finishes first).
    pub(crate) fn stop(&self) {
        self.idle.0.state.lock().stop = true;
        self.idle.0.wake.notify_all();
        if let Some(thread) = self.thread.lock().take() {
            // The thread catches its own panics (none are expected); a join error has nothing
            // to report to a store being dropped.
            let _ = thread.join();
        }
    }
}

impl Drop for IdleThread {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared, store: &Weak<Inner>) {
    let mut st = shared.state.lock();
    loop {
        let now = st.now();
        match next(&st, shared.delay, now) {
            Next::Stop => return,
            Next::Sleep => shared.wake.wait(&mut st),
            Next::Wait(left) => match st.clock {
                Clock::Real(_) => {
                    shared.wake.wait_for(&mut st, left);
                }
                Clock::Manual(_) => shared.wake.wait(&mut st),
            },
            Next::Checkpoint(upto) => {
                let outcome = parking_lot::MutexGuard::unlocked(&mut st, || {
                    let inner = store.upgrade()?;
                    // The engine's panics are contained by the checkpoint; anything else
                    // must not take the thread down silently either.
                    Some(
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            inner.checkpoint()
                        }))
                        .unwrap_or_else(|_| {
                            Err(crate::Error::Io(std::io::Error::other(
                                "the idle checkpoint panicked",
                            )))
                        }),
                    )
                });
                let Some(outcome) = outcome else { return };
                // Commits made during the checkpoint count as after it: they are checkpointed
                // after their own delay.
                st.checkpointed = upto;
                match outcome {
                    Ok(()) => st.stats.done += 1,
                    Err(e) => {
                        st.stats.failed += 1;
                        st.stats.last_error = Some(e.to_string());
                    }
                }
                shared.attempted.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(commits: u64, checkpointed: u64, last_ms: u64) -> State {
        State {
            commits,
            checkpointed,
            last_commit: Duration::from_millis(last_ms),
            clock: Clock::Manual(Duration::ZERO),
            stop: false,
            stats: IdleCheckpoints::default(),
        }
    }

    const DELAY: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_committed_since_the_last_checkpoint_waits_for_a_commit() {
        assert_eq!(next(&state(3, 3, 0), DELAY, ms(5000)), Next::Sleep);
    }

    #[test]
    fn a_recent_commit_waits_out_the_rest_of_the_delay() {
        assert_eq!(
            next(&state(4, 3, 1000), DELAY, ms(1300)),
            Next::Wait(ms(700))
        );
    }

    #[test]
    fn a_delay_passed_since_the_last_commit_checkpoints_every_commit_so_far() {
        assert_eq!(
            next(&state(4, 1, 1000), DELAY, ms(2000)),
            Next::Checkpoint(4)
        );
    }

    #[test]
    fn a_stop_wins_over_a_due_checkpoint() {
        let mut st = state(4, 1, 0);
        st.stop = true;
        assert_eq!(next(&st, DELAY, ms(9000)), Next::Stop);
    }
}
