//! Fault injection: a failed write, read or sync at any point of a workload loses nothing that
//! was committed and leaves nothing half-done visible.
//!
//! For every countdown `n` over the whole workload (small and staged puts, versions, deletes,
//! removals, tags, dedup, copies, snapshots, multipart uploads), the `n`-th backend operation of
//! one kind fails. The failing call must return a typed error. The store is then dropped and
//! reopened on a fresh backend over the same bytes, twice:
//!
//! - the *durable* image (only what was synced: a power cut at the moment of the fault) must
//!   hold exactly the state after the last call that succeeded;
//! - the *written* image (everything written, as a process that died would leave the file) must
//!   hold that state or, when the fault struck after the commit point, the state after the
//!   failing call — never anything in between.
//!
//! Either way `check()` passes and the reopened store accepts new writes.
//!
//! `RECFILES_FAULT_SWEEP=full` tries every countdown; the default samples them (all of the first
//! 32, then every 6th) to stay fast in debug builds.

mod common;

use common::content;
use recfiles::prelude::*;
use recfiles::{
    Error, FaultKind, FaultPlan, FaultyBackend, FileBackend, FilesQuery, MultipartLimits,
    SimulatedDisk,
};
use std::collections::BTreeMap;
use std::io::Read;

fn builder() -> StoreBuilder {
    // A small journal fills often, so the sweeps strike checkpoints and direct-mode writes too.
    Store::builder()
        .journal_size(64 << 10)
        .chunk_size(1024)
        .staging_batch(4096)
        .cache_size(1 << 20)
        .multipart_limits(MultipartLimits {
            min_part_size: 1024,
            max_part_size: 8192,
            max_parts: 10,
            ..MultipartLimits::default()
        })
}

/// Everything observable, without ids (they differ between runs): buckets in creation order,
/// each with its size, lock, tags, objects (key → versions newest first: content and tags) and
/// open uploads.
type Version = (Option<Vec<u8>>, BTreeMap<String, String>);
type Upload = (String, u64, Vec<u32>);
type State = Vec<(
    u64,
    bool,
    BTreeMap<String, String>,
    BTreeMap<String, Vec<Version>>,
    Vec<Upload>,
)>;

fn state(store: &Store) -> recfiles::Result<State> {
    let snap = store.snapshot()?;
    let mut out = Vec::new();
    for b in snap.buckets()? {
        let all = ListOptions {
            with_deleted: true,
            ..ListOptions::default()
        };
        let mut objects = BTreeMap::new();
        for head in snap.list_objects(b.id, &all)? {
            let mut versions = Vec::new();
            for v in snap.object_versions(b.id, &head.key)? {
                let bytes = match v.file_id {
                    Some(f) => {
                        let mut bytes = Vec::new();
                        snap.open_file(f)?.read_to_end(&mut bytes)?;
                        Some(bytes)
                    }
                    None => None,
                };
                versions.push((bytes, snap.object_tags(v.version_id)?));
            }
            objects.insert(head.key, versions);
        }
        let mut uploads = Vec::new();
        for u in snap.multipart_uploads(b.id)? {
            let parts = snap.parts(u.id)?.iter().map(|p| p.part_number).collect();
            uploads.push((u.key, u.size, parts));
        }
        uploads.sort();
        out.push((b.size, b.locked, snap.bucket_tags(b.id)?, objects, uploads));
    }
    Ok(out)
}

/// One public call of the workload.
type Step = Box<dyn Fn(&Store) -> recfiles::Result<()>>;

/// The workload: every call is one step; `after_step` sees the store after each success.
fn workload(store: &Store, mut after_step: impl FnMut(&Store)) -> recfiles::Result<()> {
    let a = store.create_bucket(&BucketOptions::default())?.id;
    after_step(store);
    for step in steps(a) {
        step(store)?;
        after_step(store);
    }
    Ok(())
}

/// The second bucket, created by one of the steps.
fn second(s: &Store) -> recfiles::Result<BucketId> {
    let buckets = s.buckets()?;
    buckets.get(1).map(|b| b.id).ok_or(Error::InvalidOperation {
        reason: "no second bucket",
    })
}

/// The calls of the workload after the first bucket `a` exists.
fn steps(a: BucketId) -> Vec<Step> {
    vec![
        Box::new(move |s| {
            s.put_object(a, "small", &content(1, 500)[..], &opts_default())
                .map(drop)
        }),
        Box::new(move |s| {
            s.put_object(a, "staged", &content(2, 20_000)[..], &opts_default())
                .map(drop)
        }),
        Box::new(move |s| {
            s.put_object(a, "small", &content(3, 700)[..], &opts_default())
                .map(drop)
        }),
        Box::new(move |s| {
            let v = s
                .object(a, "small")?
                .ok_or(Error::InvalidOperation { reason: "missing" })?;
            s.set_object_tag(v.version_id, "kind", "text")
        }),
        Box::new(move |s| s.write(|tx| tx.set_bucket_tag(a, "owner", "me"))),
        Box::new(move |s| {
            s.put_object(a, "dup", &content(2, 20_000)[..], &opts_default())
                .map(drop)
        }),
        Box::new(move |s| s.delete_object(a, "staged").map(drop)),
        Box::new(move |s| s.create_bucket(&BucketOptions::default()).map(drop)),
        Box::new(move |s| multipart(s, "mp", 9, 5000, Mp::Init)),
        Box::new(move |s| multipart(s, "mp", 9, 5000, Mp::Part(1))),
        Box::new(move |s| multipart(s, "mp", 9, 5000, Mp::Part(0))),
        Box::new(move |s| multipart(s, "mp", 9, 5000, Mp::Part(2))),
        Box::new(move |s| multipart(s, "mp", 9, 5000, Mp::Part(1))),
        Box::new(move |s| multipart(s, "mp", 9, 5000, Mp::Complete)),
        Box::new(move |s| {
            let dup = s
                .object(a, "dup")?
                .ok_or(Error::InvalidOperation { reason: "missing" })?;
            let b = second(s)?;
            s.copy_version(dup.version_id, b, "copy").map(drop)
        }),
        Box::new(move |s| {
            let oldest = s.object_versions(a, "small")?.pop();
            let oldest = oldest.ok_or(Error::InvalidOperation { reason: "missing" })?;
            s.remove_version(oldest.version_id)
        }),
        Box::new(move |s| {
            s.put_object(a, "staged-2", &content(4, 13_000)[..], &opts_default())
                .map(drop)
        }),
        Box::new(move |s| s.snapshot_bucket(a, true).map(drop)),
        Box::new(move |s| multipart(s, "mp2", 10, 3000, Mp::Init)),
        Box::new(move |s| multipart(s, "mp2", 10, 3000, Mp::Part(0))),
        Box::new(move |s| multipart(s, "mp2", 10, 3000, Mp::Abort)),
        Box::new(move |s| {
            s.write(|tx| {
                tx.put_object(a, "atomic", &content(5, 3000)[..], &opts_default())?;
                tx.delete_object(a, "dup")?;
                Ok(())
            })
        }),
        Box::new(move |s| {
            let versions = s.object_versions(a, "dup")?;
            let marker = versions
                .first()
                .ok_or(Error::InvalidOperation { reason: "missing" })?;
            s.remove_version(marker.version_id)
        }),
        Box::new(move |s| {
            let b = second(s)?;
            s.sync_bucket(a, b, true).map(drop)
        }),
    ]
}

fn opts_default() -> PutOptions {
    PutOptions::default()
}

enum Mp {
    Init,
    Part(u32),
    Complete,
    Abort,
}

/// One call of a multipart upload into the second bucket (re-sending a part replaces it).
fn multipart(s: &Store, key: &str, seed: u64, size: usize, call: Mp) -> recfiles::Result<()> {
    let b = second(s)?;
    if let Mp::Init = call {
        return s.init_multipart(b, key, size as u64, 2048).map(drop);
    }
    let up = s.multipart_uploads(b)?.into_iter().find(|u| u.key == key);
    let up = up.ok_or(Error::InvalidOperation {
        reason: "no such upload",
    })?;
    match call {
        Mp::Init => unreachable!(),
        Mp::Part(n) => {
            let data = content(seed, size);
            let start = n as usize * 2048;
            let end = (start + 2048).min(size);
            s.upload_part(up.id, n, &data[start..end]).map(drop)
        }
        Mp::Complete => s.complete_multipart(up.id).map(drop),
        Mp::Abort => s.abort_multipart(up.id),
    }
}

trait StoreExt {
    fn multipart_uploads(&self, b: BucketId) -> recfiles::Result<Vec<recfiles::MultipartUpload>>;
}
impl StoreExt for Store {
    fn multipart_uploads(&self, b: BucketId) -> recfiles::Result<Vec<recfiles::MultipartUpload>> {
        self.read(|r| r.multipart_uploads(b))
    }
}

/// Every state a fault-free run passes through, after each successful call.
fn reference_states() -> Vec<State> {
    let store = builder().open_backend(SimulatedDisk::new()).unwrap();
    let mut states = vec![state(&store).unwrap()];
    workload(&store, |s| states.push(state(s).unwrap())).unwrap();
    states
}

/// Which countdowns to try: all with `RECFILES_FAULT_SWEEP=full`, else a sample.
fn countdowns() -> impl Iterator<Item = u64> {
    let full = std::env::var("RECFILES_FAULT_SWEEP").is_ok_and(|v| v == "full");
    (0u64..).filter(move |n| full || *n < 32 || n % 6 == 0)
}

/// A readable digest of a state for failure messages (content as lengths).
fn summary(s: &State) -> String {
    let mut out = String::new();
    for (size, locked, tags, objects, uploads) in s {
        out += &format!("bucket size {size} locked {locked} tags {tags:?} uploads {uploads:?}\n");
        for (k, vs) in objects {
            let lens: Vec<_> = vs
                .iter()
                .map(|(c, t)| (c.as_ref().map(Vec::len), t.len()))
                .collect();
            out += &format!("  {k:?}: {lens:?}\n");
        }
    }
    out
}

/// Which of the `allowed` reference states (by step) `s` is; several steps may look alike
/// (re-sending an identical part), so this compares against exactly the allowed ones.
fn which(states: &[State], allowed: &[usize], s: &State) -> Option<usize> {
    allowed.iter().copied().find(|&i| states.get(i) == Some(s))
}

#[derive(Debug, Default)]
struct Tally {
    /// Faults injected (each followed by two reopens).
    faults: u64,
    /// Faults that struck while the store was being closed after the workload.
    at_close: u64,
    /// Calls that failed after their commit point and turned out committed in the written image.
    ambiguous_commits: u64,
    /// Calls that failed but whose commit was durable (faults in redb's post-commit pass).
    durable_after_error: u64,
}

/// Opens an image on a fresh backend and checks it: consistent, one of the allowed states,
/// and writable again. Returns the position of the state found.
fn reopen_and_verify(image: Vec<u8>, states: &[State], allowed: &[usize], what: &str) -> usize {
    let store = builder()
        .open_backend(SimulatedDisk::from_image(image))
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let report = store.check().unwrap();
    assert!(
        report.is_ok(),
        "{what}: integrity check after reopen: {report:?}"
    );
    let found = state(&store).unwrap();
    let pos = which(states, allowed, &found);
    assert!(
        pos.is_some(),
        "{what}: reopened store is in none of the allowed states {allowed:?} (it looks like \
         state {:?})\n{}",
        states.iter().position(|s| *s == found),
        summary(&found)
    );
    // The recovered store takes new writes.
    let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
    store
        .put_object(b, "after", &content(99, 6000)[..], &PutOptions::default())
        .unwrap();
    assert!(
        store.check().unwrap().is_ok(),
        "{what}: check after a new write"
    );
    pos.unwrap_or(0)
}

/// `cache` is the engine's page cache: small enough and pages are read back from the backend
/// during the workload, which is what read faults need.
fn sweep(kind: FaultKind, cache: usize, tally: &mut Tally) {
    let states = reference_states();
    for n in countdowns() {
        let plan = FaultPlan::new();
        let disk = SimulatedDisk::new();
        let store = builder()
            .cache_size(cache)
            .open_backend(FaultyBackend::new(disk.clone(), plan.clone()))
            .unwrap();
        plan.arm(kind, n);
        let mut done = 0usize;
        let result = workload(&store, |_| done += 1);
        let during_workload = plan.tripped();
        // Closing flushes too; a fault there must not harm what was committed.
        drop(store);
        if !plan.tripped() {
            result.unwrap();
            assert_eq!(done + 1, states.len());
            break;
        }
        tally.faults += 1;
        let what = format!("{kind:?} fault at operation {n} during step {done}");
        let allowed_written = if during_workload {
            let err = result.expect_err("an injected fault must surface as an error");
            assert!(
                matches!(
                    err,
                    Error::Engine(_) | Error::Io(_) | Error::CommitUnknown { .. }
                ),
                "{what}: untyped or misattributed error {err:?}"
            );
            vec![done, done + 1]
        } else {
            tally.at_close += 1;
            result.unwrap_or_else(|e| panic!("{what}: fault at close failed the workload: {e}"));
            vec![done]
        };
        let (durable, written) = (disk.durable_image(), disk.written_image());
        // `done` calls succeeded: the state after them is states[done]. The failing call may be
        // durable too: redb frees pages in a pass after the commit is published, and a read or
        // write error there fails commit() although the transaction is durable ("outcome
        // unknown", as with any database whose commit acknowledgement is lost). Counted below.
        let allowed_durable = if during_workload {
            vec![done, done + 1]
        } else {
            vec![done]
        };
        let pos = reopen_and_verify(
            durable,
            &states,
            &allowed_durable,
            &format!("{what} (durable image)"),
        );
        if pos == done + 1 {
            tally.durable_after_error += 1;
        }
        let pos = reopen_and_verify(
            written,
            &states,
            &allowed_written,
            &format!("{what} (written image)"),
        );
        if pos == done + 1 {
            tally.ambiguous_commits += 1;
        }
    }
}

#[test]
fn write_faults_lose_nothing_committed() {
    let mut t = Tally::default();
    sweep(FaultKind::Write, 1 << 20, &mut t);
    eprintln!("write faults injected: {t:?}");
    assert!(t.faults > 20, "the workload must issue many writes: {t:?}");
}

#[test]
fn read_faults_lose_nothing_committed() {
    let mut t = Tally::default();
    sweep(FaultKind::Read, 16 << 10, &mut t);
    eprintln!("read faults injected: {t:?}");
    assert!(
        t.faults > 100,
        "a small cache makes the workload read pages back: {t:?}"
    );
}

#[test]
fn sync_faults_lose_nothing_committed() {
    let mut t = Tally::default();
    sweep(FaultKind::Sync, 1 << 20, &mut t);
    eprintln!("sync faults injected: {t:?}");
    assert!(t.faults > 10, "every durable commit syncs: {t:?}");
}

/// The same sweep on a real file: the store is reopened from the path with a plain
/// `FileBackend`, as an application restarting after an I/O error would.
#[test]
fn faults_on_a_real_file_lose_nothing_committed() {
    let states = reference_states();
    let dir = tempfile::tempdir().unwrap();
    let mut faults = 0;
    for kind in [FaultKind::Write, FaultKind::Sync, FaultKind::Read] {
        for n in countdowns().filter(|n| n % 7 == 0) {
            let path = dir.path().join(format!("{kind:?}-{n}.redb"));
            let plan = FaultPlan::new();
            let store = builder()
                .open_backend(FaultyBackend::new(
                    FileBackend::open(&path).unwrap(),
                    plan.clone(),
                ))
                .unwrap();
            plan.arm(kind, n);
            let mut done = 0usize;
            let result = workload(&store, |_| done += 1);
            let during_workload = plan.tripped();
            drop(store);
            if !plan.tripped() {
                result.unwrap();
                break;
            }
            faults += 1;
            let allowed = if during_workload {
                assert!(
                    matches!(
                        result,
                        Err(Error::Engine(_) | Error::Io(_) | Error::CommitUnknown { .. })
                    ),
                    "{result:?}"
                );
                vec![done, done + 1]
            } else {
                result.unwrap();
                vec![done]
            };
            let store = builder().open(&path).unwrap();
            assert!(store.check().unwrap().is_ok(), "{kind:?} #{n}");
            let pos = which(&states, &allowed, &state(&store).unwrap());
            assert!(
                pos.is_some(),
                "{kind:?} fault #{n} in step {done}: reopened in state {pos:?}"
            );
            std::fs::remove_file(&path).unwrap();
        }
    }
    eprintln!("faults injected on a real file: {faults}");
    assert!(faults > 10);
}

/// A transient fault (one operation fails, the next ones succeed) while the application carries
/// on with the same store: no call finds the store damaged, the live store's integrity check
/// finds no broken invariant, and both images reopen consistent and writable. (The live view and
/// the file may differ by the call whose commit failed after its commit point: see the caveat
/// in docs/RELIABILITY.md. The reopened file is the truth.)
#[test]
fn transient_faults_never_damage_the_store() {
    let full = std::env::var("RECFILES_FAULT_SWEEP").is_ok_and(|v| v == "full");
    let mut faults = 0u64;
    let mut calls_failed = 0u64;
    for (kind, cache) in [
        (FaultKind::Write, 1 << 20),
        (FaultKind::Sync, 1 << 20),
        (FaultKind::Read, 64 << 10),
    ] {
        for n in (0u64..).filter(|n| full || n % 29 == 0) {
            let plan = FaultPlan::new();
            let disk = SimulatedDisk::new();
            let store = builder()
                .cache_size(cache)
                .open_backend(FaultyBackend::new(disk.clone(), plan.clone()))
                .unwrap();
            let a = store.create_bucket(&BucketOptions::default()).unwrap().id;
            plan.arm_once(kind, n);
            // Carry on past errors: every step is tried whatever happened before.
            let mut errors = 0;
            for step in steps(a) {
                // Later steps may fail for the earlier failures (a part missing, say), with
                // their own typed errors; none may find the store damaged.
                if let Err(e) = step(&store) {
                    assert!(!matches!(e, Error::Corruption { .. }), "{e:?}");
                    errors += 1;
                }
            }
            if !plan.tripped() {
                break;
            }
            faults += 1;
            calls_failed += errors;
            let what = format!("transient {kind:?} fault at operation {n}");
            // The live store either still answers, consistently, or refuses with typed errors.
            if let Err(e) = state(&store) {
                assert!(
                    matches!(
                        e,
                        Error::Engine(_) | Error::Io(_) | Error::CommitUnknown { .. }
                    ),
                    "{what}: {e:?}"
                );
            }
            if let Ok(report) = store.check() {
                assert!(report.problems.is_empty(), "{what}: live check {report:?}");
            }
            drop(store);
            let (durable, written) = (disk.durable_image(), disk.written_image());
            for (image, name) in [(written, "written"), (durable, "durable")] {
                let reopened = builder()
                    .open_backend(SimulatedDisk::from_image(image))
                    .unwrap();
                let report = reopened.check().unwrap();
                assert!(report.is_ok(), "{what}: {name} image: {report:?}");
                state(&reopened).unwrap();
                let b = reopened
                    .create_bucket(&BucketOptions::default())
                    .unwrap()
                    .id;
                reopened
                    .put_object(b, "after", &content(98, 9000)[..], &PutOptions::default())
                    .unwrap();
                assert!(
                    reopened.check().unwrap().is_ok(),
                    "{what}: {name} image after a write"
                );
            }
        }
    }
    eprintln!("transient faults injected: {faults}, calls failed: {calls_failed}");
    assert!(faults > 20);
}

/// Two threads commit durably at once while a third takes power-cut images of the disk. A
/// durable commit's wait for its sync comes after redb has finished the commit (and let the
/// next writer in), so each `put` must still return only once its own commit is synced, and the
/// other thread's commits may come in between. Every image (the synced bytes, and half of the
/// time some unsynced pages too) must reopen consistent and hold every put that had returned
/// before the image was taken; a last image is taken when both threads are done. (That a batch
/// is synced before a later one is written is pinned down by the journal's own model test.)
#[test]
fn concurrent_durable_writers_lose_nothing_at_a_power_cut() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const PUTS: usize = 120;
    // A journal large enough that commits are logged (the sweeps' 64 KiB one sends most of
    // them in place), small enough to fill and checkpoint a few times.
    let builder = || builder().journal_size(1 << 20);
    let disk = SimulatedDisk::new();
    let store = builder().open_backend(disk.clone()).unwrap();
    let bucket = store.create_bucket(&BucketOptions::default()).unwrap().id;
    // Puts that returned, per thread (put `i` of thread `t` is key `t-i`, all before it too).
    let done = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let mut cuts: Vec<([usize; 2], Vec<u8>, Vec<u8>)> = Vec::new();
    std::thread::scope(|s| {
        for (t, count) in done.iter().enumerate() {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..PUTS {
                    // Some puts are large enough to go in place (direct mode), and the journal
                    // fills, so checkpoints come between the threads' commits too.
                    let size = if i % 17 == 0 { 400_000 } else { 100 + i };
                    let data = content((t * 1000 + i) as u64, size);
                    store
                        .put_object(
                            bucket,
                            &format!("{t}-{i}"),
                            &data[..],
                            &PutOptions::default(),
                        )
                        .unwrap();
                    count.store(i + 1, Ordering::Release);
                }
            });
        }
        // A cut each time the threads have together finished ten more puts (images are whole
        // disks: keeping one per spin would take gigabytes).
        let mut last = 0;
        while done.iter().any(|c| c.load(Ordering::Acquire) < PUTS) {
            let seen = [
                done[0].load(Ordering::Acquire),
                done[1].load(Ordering::Acquire),
            ];
            if seen[0] + seen[1] >= last + 10 {
                last = seen[0] + seen[1];
                let (durable, written) = disk.images();
                cuts.push((seen, durable, written));
            }
            std::thread::yield_now();
        }
    });
    // And one when all is done: the last put of each thread is then synced by nobody but
    // itself.
    let (durable, written) = disk.images();
    cuts.push(([PUTS; 2], durable, written));
    assert!(
        cuts.len() >= 3,
        "the writers finished before any cut was taken"
    );
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for (n, (seen, durable, written)) in cuts.into_iter().enumerate() {
        // Half the cuts also keep a random half of the pages written since the last sync (a
        // partial writeback): what was synced must still win.
        let torn = n % 2 == 1;
        let mut image = durable;
        if torn {
            image.resize(written.len(), 0);
            for (p, page) in written.chunks(4096).enumerate() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if rng.is_multiple_of(2) {
                    image[p * 4096..p * 4096 + page.len()].copy_from_slice(page);
                }
            }
        }
        let what = format!("cut {n} after {seen:?} puts (torn: {torn})");
        let reopened = builder()
            .open_backend(SimulatedDisk::from_image(image))
            .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
        let report = reopened.check().unwrap();
        assert!(report.is_ok(), "{what}: {report:?}");
        for (t, &count) in seen.iter().enumerate() {
            for i in 0..count {
                let size = if i % 17 == 0 { 400_000 } else { 100 + i };
                let got = common::read_all(&reopened, bucket, &format!("{t}-{i}"));
                assert_eq!(
                    got,
                    content((t * 1000 + i) as u64, size),
                    "{what}: put {t}-{i}"
                );
            }
        }
    }
}

/// A small durable put is complete and its journal batch written when the wait for the disk
/// fails: the put reports `CommitUnknown`, the open store accepts nothing more, and a reopen
/// shows either outcome, never anything in between: without the put after a power cut (the
/// sync failed, so nothing of it is durable), with it or without it from everything written.
#[test]
fn a_failed_sync_after_the_commit_reports_an_unknown_outcome() {
    // Each sync of a small put fails in turn, on a store set up the same way each time: a sync
    // before the commit (redb growing the file, say) fails it cleanly; the journal's sync
    // after it leaves its outcome unknown. The last sync is always the latter.
    let mut unknown = 0;
    for nth in 0.. {
        let disk = SimulatedDisk::new();
        let plan = FaultPlan::new();
        // The default journal, so the small put below is logged (its sync deferred).
        let store = Store::builder()
            .open_backend(FaultyBackend::new(disk.clone(), plan.clone()))
            .unwrap();
        let bucket = store.create_bucket(&BucketOptions::default()).unwrap().id;
        store
            .put_object(bucket, "before", &b"kept"[..], &PutOptions::default())
            .unwrap();
        plan.arm(FaultKind::Sync, nth);
        let outcome = store.put_object(bucket, "during", &b"maybe"[..], &PutOptions::default());
        let tripped = plan.tripped();
        plan.disarm();
        let err = match outcome {
            Ok(_) => {
                assert!(!tripped, "a put whose sync failed succeeded");
                break;
            }
            Err(err) => err,
        };
        let may_have_it = matches!(err, Error::CommitUnknown { .. });
        if may_have_it {
            unknown += 1;
        } else {
            assert!(matches!(err, Error::Engine(_)), "sync {nth}: {err:?}");
        }
        // The open store refuses further writes rather than build on an unknown state.
        assert!(
            store
                .put_object(bucket, "after", &b"no"[..], &PutOptions::default())
                .is_err()
        );
        drop(store);
        for (image, written) in [(disk.durable_image(), false), (disk.written_image(), true)] {
            let reopened = Store::builder()
                .open_backend(SimulatedDisk::from_image(image))
                .unwrap();
            assert!(reopened.check().unwrap().is_ok());
            assert_eq!(common::read_all(&reopened, bucket, "before"), b"kept");
            assert!(reopened.object(bucket, "after").unwrap().is_none());
            if let Some(v) = reopened.object(bucket, "during").unwrap() {
                assert!(
                    may_have_it && written,
                    "sync {nth}: a put whose sync failed survived a power cut ({err:?})"
                );
                assert_eq!(v.size, Some(5));
                assert_eq!(common::read_all(&reopened, bucket, "during"), b"maybe");
            }
        }
    }
    assert_eq!(unknown, 1, "the commit's own sync failed once");
}
