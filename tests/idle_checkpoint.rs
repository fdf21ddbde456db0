//! Idle checkpoints: a store that goes quiet after commits checkpoints by itself, so a kill
//! while it is idle reopens without the engine's check of every page; a stream of commits
//! never triggers one; closing or dropping the store stops its thread.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{BucketId, Error};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Long enough for any checkpoint on a loaded machine; a test only waits this long when it is
/// about to fail.
const PATIENCE: Duration = Duration::from_secs(60);

/// A file-backed store (idle checkpoints at their default unless `off`), on a clock the test
/// moves: a bucket, a 300 KB put and a few small commits.
fn written(path: &Path, off: bool) -> (Store, BucketId, Vec<u8>) {
    let mut builder = Store::builder().idle_clock_by_hand();
    if off {
        builder = builder.idle_checkpoint(None);
    }
    let store = builder.open(path).unwrap();
    let (b, data) = common::big_then_small(&store);
    (store, b, data)
}

/// A copy of the store file as it is while the store is open: what a killed process leaves.
fn killed(path: &Path) -> std::path::PathBuf {
    let copy = path.with_extension("killed");
    std::fs::copy(path, &copy).unwrap();
    copy
}

/// Opens `path` and reports whether the engine checked every page (its repair callback ran);
/// checks that `big` and `small4` are there.
fn reopen_repaired(path: &Path, b: BucketId, data: &[u8]) -> bool {
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&repaired);
    let store = Store::builder()
        .idle_checkpoint(None)
        .on_repair(move |_| flag.store(true, Ordering::SeqCst))
        .open(path)
        .unwrap();
    assert_eq!(read_all(&store, b, "big"), data);
    assert_eq!(read_all(&store, b, "small4"), b"after the big one");
    assert_consistent(&store);
    repaired.load(Ordering::SeqCst)
}

/// On by default for a store on a file: once it has been idle for the delay (1 s), it
/// checkpoints by itself, and a copy taken then (a kill while idle) reopens without the
/// engine's check of every page, with everything committed there.
#[test]
fn a_store_left_idle_reopens_after_a_kill_without_checking_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (store, b, data) = written(&path, false);
    assert_eq!(store.idle_checkpoints().delay, Some(Duration::from_secs(1)));
    store.advance_idle_clock(Duration::from_secs(1));
    assert!(
        store.wait_idle_checkpoints(1, PATIENCE),
        "no idle checkpoint"
    );
    let stats = store.idle_checkpoints();
    assert_eq!((stats.done, stats.failed), (1, 0), "{stats:?}");
    let copy = killed(&path);
    assert!(
        !reopen_repaired(&copy, b, &data),
        "a kill while idle needed the full check"
    );
    drop(store);
}

/// The same store with idle checkpoints off (or killed before the delay passed) gets the
/// engine's full check on reopen.
#[test]
fn without_idle_checkpoints_a_store_killed_while_idle_checks_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (store, b, data) = written(&path, true);
    assert_eq!(store.idle_checkpoints().delay, None);
    store.advance_idle_clock(Duration::from_secs(5));
    assert!(reopen_repaired(&killed(&path), b, &data));

    let path = dir.path().join("t.redb");
    let (store, b, data) = written(&path, false);
    store.advance_idle_clock(Duration::from_millis(999));
    assert!(reopen_repaired(&killed(&path), b, &data));
    assert_eq!(store.idle_checkpoints().done, 0);
}

/// With the real clock: a store on a file, written and left alone, checkpoints by itself
/// within the default delay (a bounded wait that fails rather than hangs).
#[test]
fn the_default_checkpoints_a_quiet_file_store_on_the_real_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open(&path).unwrap();
    let b = bucket(&store);
    put(&store, b.id, "k", b"v");
    assert!(
        store.wait_idle_checkpoints(1, PATIENCE),
        "no idle checkpoint"
    );
    assert_eq!(store.idle_checkpoints().failed, 0);
}

/// A writer committing without pause for longer than the delay (20 s of the test's clock,
/// 100 ms between commits) sees no idle checkpoint while it writes; the quiet after it
/// brings exactly one.
#[test]
fn a_stream_of_commits_longer_than_the_delay_gets_no_checkpoint_until_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::builder()
        .idle_clock_by_hand()
        .idle_checkpoint(Some(Duration::from_secs(1)))
        .open(&path)
        .unwrap();
    let b = bucket(&store);
    for i in 0..200 {
        put(&store, b.id, &format!("k{i}"), b"streamed");
        store.advance_idle_clock(Duration::from_millis(100));
        assert_eq!(
            store.idle_checkpoints().done,
            0,
            "checkpointed mid-stream at {i}"
        );
    }
    store.advance_idle_clock(Duration::from_secs(1));
    assert!(
        store.wait_idle_checkpoints(1, PATIENCE),
        "no checkpoint after the stream"
    );
    store.advance_idle_clock(Duration::from_secs(10));
    // A second one would need a commit; give a wrong one the chance to show.
    assert!(!store.wait_idle_checkpoints(2, Duration::from_millis(300)));
    assert_eq!(store.idle_checkpoints().done, 1);
}

/// Dropping the last handle of a store whose idle thread is waiting out its delay returns
/// promptly (the thread is stopped and joined), and the file can be opened again at once.
#[test]
fn dropping_a_store_with_its_idle_thread_waiting_returns_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::builder()
        .idle_checkpoint(Some(Duration::from_secs(3600)))
        .open(&path)
        .unwrap();
    let b = bucket(&store);
    put(&store, b.id, "k", b"v");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(store);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(PATIENCE)
        .expect("dropping the store did not return");
    let store = Store::open(&path).unwrap();
    assert_eq!(read_all(&store, b.id, "k"), b"v");
}

/// After `close`, through any clone, no idle checkpoint runs, however long the store stays
/// idle.
#[test]
fn no_idle_checkpoint_runs_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::builder().idle_clock_by_hand().open(&path).unwrap();
    let b = bucket(&store);
    put(&store, b.id, "k", b"v");
    let clone = store.clone();
    store.close().unwrap();
    clone.advance_idle_clock(Duration::from_secs(60));
    assert!(!clone.wait_idle_checkpoints(1, Duration::from_millis(300)));
    assert_eq!(
        clone.idle_checkpoints().done + clone.idle_checkpoints().failed,
        0
    );
    assert!(matches!(clone.checkpoint(), Err(Error::Closed)));
}

/// Off in memory and on a backend given by the caller (deterministic crash tests see no
/// commit they did not make), and never on a store opened read-only or salvaged.
#[test]
fn idle_checkpoints_are_off_in_memory_on_given_backends_and_read_only() {
    assert_eq!(Store::in_memory().unwrap().idle_checkpoints().delay, None);
    let disk = recfiles::SimulatedDisk::new();
    let store = Store::builder().open_backend(disk.clone()).unwrap();
    assert_eq!(store.idle_checkpoints().delay, None);
    let on = Store::builder()
        .idle_checkpoint(Some(Duration::from_secs(1)))
        .open_backend(recfiles::SimulatedDisk::new())
        .unwrap();
    assert_eq!(on.idle_checkpoints().delay, Some(Duration::from_secs(1)));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(Store::open(&path).unwrap());
    let ro = Store::builder()
        .idle_checkpoint(Some(Duration::from_millis(1)))
        .open_read_only(&path)
        .unwrap();
    assert_eq!(ro.idle_checkpoints().delay, None);
    drop(ro);
    let (salvaged, _) = Store::builder()
        .idle_checkpoint(Some(Duration::from_millis(1)))
        .salvage(&path)
        .unwrap();
    assert_eq!(salvaged.idle_checkpoints().delay, None);
}

/// A background checkpoint that fails (its sync fails) is counted, with its error, and
/// neither panics nor poisons the store; the next commit reports the disk's state as usual.
#[test]
fn a_failed_idle_checkpoint_is_counted_not_raised() {
    use recfiles::{FaultKind, FaultPlan, FaultyBackend, SimulatedDisk};
    let plan = FaultPlan::new();
    let store = Store::builder()
        .idle_clock_by_hand()
        .idle_checkpoint(Some(Duration::from_secs(1)))
        .open_backend(FaultyBackend::new(SimulatedDisk::new(), plan.clone()))
        .unwrap();
    let b = bucket(&store);
    put(&store, b.id, "k", b"v");
    plan.arm_once(FaultKind::Sync, 0);
    store.advance_idle_clock(Duration::from_secs(1));
    assert!(store.wait_idle_checkpoints(1, PATIENCE));
    let stats = store.idle_checkpoints();
    assert_eq!((stats.done, stats.failed), (0, 1), "{stats:?}");
    assert!(stats.last_error.is_some());
    assert!(plan.tripped());
    // Whatever the failed sync left, the store answers with errors, not panics.
    let _ = store.write(|_| Ok(()));
    let _ = store.read(|_| Ok(()));
}

/// Compaction commits like a writer does: once the store has been idle for the delay after it,
/// an idle checkpoint follows, and a kill then reopens without the engine's full check.
#[test]
fn compaction_is_followed_by_an_idle_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (store, b, data) = written(&path, false);
    store.advance_idle_clock(Duration::from_secs(1));
    assert!(
        store.wait_idle_checkpoints(1, PATIENCE),
        "no idle checkpoint"
    );
    // Free some space, let that be checkpointed too, then compact.
    put(&store, b, "spare", &bytes(9, 200_000));
    let spare = store.object(b, "spare").unwrap().expect("spare");
    store.remove_version(spare.version_id).unwrap();
    store.advance_idle_clock(Duration::from_secs(1));
    assert!(
        store.wait_idle_checkpoints(2, PATIENCE),
        "no idle checkpoint"
    );
    store.compact().unwrap();
    store.advance_idle_clock(Duration::from_secs(1));
    assert!(
        store.wait_idle_checkpoints(3, PATIENCE),
        "no idle checkpoint after the compaction"
    );
    assert_eq!(store.idle_checkpoints().failed, 0);
    let copy = killed(&path);
    assert!(
        !reopen_repaired(&copy, b, &data),
        "a kill after the compaction's idle checkpoint needed the full check"
    );
    drop(store);
}
