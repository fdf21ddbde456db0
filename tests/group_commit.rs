//! Concurrent durable writers share syncs, and each keeps its own outcome: a commit that
//! returned is durable, a failing or panicking closure rolls back only its own changes.

mod common;

use recfiles::prelude::*;
use recfiles::{Backend, SimulatedDisk};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

/// A simulated disk that counts syncs.
#[derive(Debug, Clone, Default)]
struct CountingDisk {
    disk: SimulatedDisk,
    syncs: Arc<AtomicU64>,
}

impl Backend for CountingDisk {
    fn len(&self) -> std::io::Result<u64> {
        self.disk.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.disk.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.disk.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.disk.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.disk.write(offset, data)
    }
}

const THREADS: usize = 8;
const EACH: usize = 40;

/// Runs `THREADS` threads, each calling `call(store, thread, i)` `EACH` times at once.
fn hammer(store: &Store, call: impl Fn(&Store, usize, usize) + Sync) {
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, start, call) = (store.clone(), &start, &call);
            s.spawn(move || {
                start.wait();
                for i in 0..EACH {
                    call(&store, t, i);
                }
            });
        }
    });
}

#[test]
fn concurrent_durable_writers_share_syncs_and_every_returned_commit_is_durable() {
    let disk = CountingDisk::default();
    let store = Store::builder().open_backend(disk.clone()).unwrap();
    let before = disk.syncs.load(Ordering::Relaxed);
    let created = std::sync::Mutex::new(Vec::new());
    hammer(&store, |store, t, i| {
        let r = store
            .create_record(json!({"title": format!("{t}/{i}")}))
            .unwrap();
        // Returned: it must be in the synced bytes now, whatever the other threads do.
        let (durable, _) = disk.disk.images();
        let reopened = Store::builder()
            .open_backend(SimulatedDisk::from_image(durable))
            .unwrap();
        assert!(
            reopened.record(r.id()).unwrap().is_some(),
            "a returned commit is not durable"
        );
        created.lock().unwrap().push(r.id());
    });
    let commits = (THREADS * EACH) as u64;
    let syncs = disk.syncs.load(Ordering::Relaxed) - before;
    assert!(
        syncs < commits,
        "{syncs} syncs for {commits} commits: no sync was shared"
    );
    let created = created.into_inner().unwrap();
    assert_eq!(store.records(&created).unwrap().len(), created.len());
    common::assert_consistent(&store);
}

#[test]
fn a_failing_or_panicking_writer_in_a_group_rolls_back_only_its_own_changes() {
    let disk = SimulatedDisk::new();
    let store = Store::builder().open_backend(disk.clone()).unwrap();
    let kept = std::sync::Mutex::new(Vec::new());
    hammer(&store, |store, t, i| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.write(|tx| {
                let r = tx.create_record(json!({"title": format!("{t}/{i}")}))?;
                match i % 3 {
                    0 => Ok(r.id()),
                    1 => Err(recfiles::Error::InvalidOperation { reason: "refused" }),
                    _ => panic!("a writer's own panic"),
                }
            })
        }));
        match (i % 3, outcome) {
            (0, Ok(Ok(id))) => kept.lock().unwrap().push(id),
            (1, Ok(Err(_))) | (2, Err(_)) => {}
            (n, other) => panic!("call kind {n} ended as {:?}", other.map(|r| r.map(drop))),
        }
    });
    let kept = kept.into_inner().unwrap();
    // Exactly the kept records exist (each made its own bucket), in the open store and in the
    // synced bytes.
    let durable = Store::builder()
        .open_backend(SimulatedDisk::from_image(disk.durable_image()))
        .unwrap();
    for s in [&store, &durable] {
        assert_eq!(s.records(&kept).unwrap().len(), kept.len());
        assert_eq!(
            s.buckets().unwrap().len(),
            kept.len(),
            "a refused writer left a record"
        );
        common::assert_consistent(s);
    }
}

/// With quick repair on, redb commits in two phases; the journal folds the two
/// syncs into one batch, so a lone durable commit still costs one sync.
#[test]
fn a_lone_durable_commit_costs_one_sync_with_quick_repair() {
    let disk = CountingDisk::default();
    let store = Store::builder()
        .quick_repair(true)
        .open_backend(disk.clone())
        .unwrap();
    let b = common::bucket(&store);
    let before = disk.syncs.load(Ordering::Relaxed);
    for i in 0..50 {
        common::put(&store, b.id, &format!("k{i}"), b"small");
    }
    let syncs = disk.syncs.load(Ordering::Relaxed) - before;
    // A checkpoint now and then adds two (pages in place, then the new header).
    assert!(syncs <= 50 + 4, "{syncs} syncs for 50 commits");
    let reopened = Store::builder()
        .open_backend(SimulatedDisk::from_image(disk.disk.durable_image()))
        .unwrap();
    assert_eq!(common::read_all(&reopened, b.id, "k49"), b"small");
}

/// Writers that stop at different times (each thread makes its own number of commits) must
/// all return: a waiter holds its shared sync back only while another writer is still inside
/// a transaction, and one that already returned must not count as inside. Run over a real
/// file, rounds of threads with uneven loads; a hang fails the test at the watchdog instead of
/// stalling the suite.
#[test]
fn writers_leaving_at_different_times_never_strand_a_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.redb")).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let worker = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut made = Vec::new();
            for round in 0..6usize {
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..THREADS)
                        .map(|t| {
                            let store = store.clone();
                            // Thread t makes t + 1 + round commits: they run out one by one.
                            s.spawn(move || {
                                (0..t + 1 + round)
                                    .map(|i| {
                                        let body = json!({"title": format!("{round}/{t}/{i}")});
                                        store.create_record(body).unwrap().id()
                                    })
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    for h in handles {
                        made.extend(h.join().unwrap());
                    }
                });
            }
            done.send(made).unwrap();
        })
    };
    // A watchdog, not a wait standing in for a result: the rounds take seconds.
    let made = finished
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("durable writers hung waiting for a shared sync");
    worker.join().unwrap();
    assert_eq!(store.records(&made).unwrap().len(), made.len());
    common::assert_consistent(&store);
}
