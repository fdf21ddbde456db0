//! Opening stores: persistence across reopen, format version checks, foreign files, builder
//! validation.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{BucketId, Error, FORMAT_VERSION, FileId};
use redb::{ReadableDatabase, TableDefinition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

#[test]
fn content_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let b = {
        let store = Store::open(&path).unwrap();
        let b = bucket(&store);
        put(&store, b.id, "a", b"persisted");
        b.id
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(read_all(&store, b, "a"), b"persisted");
    assert_consistent(&store);
}

#[test]
fn a_store_from_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = common::raw_db_mut(&path);
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(META).unwrap();
            let newer =
                bincode::serde::encode_to_vec(FORMAT_VERSION + 1, bincode::config::standard())
                    .unwrap();
            meta.insert("format_version", newer.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    match Store::open(&path) {
        Err(Error::FormatTooNew { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_foreign_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TableDefinition::<u64, u64>::new("something_else"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        tx.commit().unwrap();
    }
    assert!(matches!(Store::open(&path), Err(Error::NotAStore { .. })));
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.redb");
    std::fs::write(&path, vec![0x5Au8; 64 * 1024]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::NotAStore { .. } | Error::Engine(_)),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0x5Au8; 64 * 1024],
        "the file is left alone"
    );
}

#[test]
fn builder_options_out_of_range_are_refused() {
    assert!(matches!(
        Store::builder().chunk_size(10).in_memory(),
        Err(Error::InvalidConfig {
            option: "chunk_size",
            ..
        })
    ));
    assert!(matches!(
        Store::builder()
            .chunk_size(1 << 20)
            .staging_batch(1024)
            .in_memory(),
        Err(Error::InvalidConfig {
            option: "staging_batch",
            ..
        })
    ));
    assert!(matches!(
        Store::builder().max_key_len(0).in_memory(),
        Err(Error::InvalidConfig { .. })
    ));
    for bad in [0, 60 * 1024, 64 * 1024 + 1, (1 << 30) + 4096] {
        assert!(
            matches!(
                Store::builder().journal_size(bad).in_memory(),
                Err(Error::InvalidConfig {
                    option: "journal_size",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(Store::builder().journal_size(64 * 1024).in_memory().is_ok());
}

#[test]
fn a_store_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Store>();
    let store = small_store();
    let b = bucket(&store);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    put(&s, b.id, &format!("t{t}/{i}"), &bytes(t * 100 + i, 3000));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        store
            .list_objects(b.id, &ListOptions::default())
            .unwrap()
            .len(),
        100
    );
    assert_consistent(&store);
}

#[test]
fn a_read_snapshot_does_not_see_later_commits() {
    let store = small_store();
    let b = bucket(&store);
    put(&store, b.id, "a", b"1");
    let snap = store.snapshot().unwrap();
    put(&store, b.id, "b", b"2");
    use recfiles::FilesQuery;
    assert!(snap.object(b.id, "b").unwrap().is_none());
    assert!(store.object(b.id, "b").unwrap().is_some());
}

#[test]
fn a_failing_write_closure_rolls_everything_back() {
    let store = small_store();
    let b = bucket(&store);
    let result: recfiles::Result<()> = store.write(|tx| {
        tx.put_object(b.id, "a", &bytes(1, 20_000)[..], &PutOptions::default())?;
        tx.create_bucket(&BucketOptions::default())?;
        Err(Error::InvalidOperation {
            reason: "caller changed its mind",
        })
    });
    assert!(result.is_err());
    assert!(store.object(b.id, "a").unwrap().is_none());
    assert_eq!(store.buckets().unwrap().len(), 1);
    assert_consistent(&store);
}

#[test]
fn a_store_of_an_older_format_is_refused_and_keeps_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = common::raw_db_mut(&path);
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(META).unwrap();
            let old = bincode::serde::encode_to_vec(1u32, bincode::config::standard()).unwrap();
            meta.insert("format_version", old.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    match Store::open(&path) {
        Err(Error::FormatTooOld { found, oldest }) => {
            assert_eq!((found, oldest), (1, 4));
        }
        other => panic!("{other:?}"),
    }
    let db = common::raw_db(&path);
    let tx = db.begin_read().unwrap();
    let meta = tx.open_table(META).unwrap();
    let raw = meta
        .get("format_version")
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    let (version, _): (u32, usize) =
        bincode::serde::decode_from_slice(&raw, bincode::config::standard()).unwrap();
    assert_eq!(version, 1, "a refused store is not rewritten");
}

#[test]
fn a_store_file_cannot_be_opened_twice_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let first = Store::open(&path).unwrap();
    let b = bucket(&first);
    put(&first, b.id, "k", b"kept");
    let err = Store::open(&path).expect_err("a second open of a store in use must fail");
    assert!(
        matches!(&err, Error::AlreadyOpen { path: Some(p) } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("already open"), "{err}");
    // A clone of the open handle is the same handle, not a second open.
    let clone = first.clone();
    assert_eq!(read_all(&clone, b.id, "k"), b"kept");
    drop(clone);
    // The first handle is unaffected, and the store opens again once it is closed.
    assert_eq!(read_all(&first, b.id, "k"), b"kept");
    drop(first);
    let again = Store::open(&path).unwrap();
    assert_eq!(read_all(&again, b.id, "k"), b"kept");
    assert_consistent(&again);
}

#[test]
fn a_store_from_before_the_journal_is_refused_by_its_version_and_left_alone() {
    // Format 3 stores were plain redb files, with the format in their meta table.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(META).unwrap();
            let v3 = bincode::serde::encode_to_vec(3u32, bincode::config::standard()).unwrap();
            meta.insert("format_version", v3.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    match Store::open(&path) {
        Err(Error::FormatTooOld { found, oldest }) => {
            assert_eq!((found, oldest), (3, 4));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old file is not touched"
    );
}

/// Images of a store (a 300 KB put, then small commits) killed while open and cleanly closed,
/// made with quick repair `quick`; with the content put.
fn crashed_and_closed(quick: bool) -> (Vec<u8>, Vec<u8>, BucketId, Vec<u8>) {
    use recfiles::SimulatedDisk;
    let disk = SimulatedDisk::new();
    let store = Store::builder()
        .quick_repair(quick)
        .open_backend(disk.clone())
        .unwrap();
    let (b, data) = common::big_then_small(&store);
    // A crash: the bytes as they are while the store is still open (every call was durable).
    let crashed = disk.written_image();
    drop(store);
    (crashed, disk.written_image(), b, data)
}

/// Opens `image`, checks its content and consistency, and returns what `on_repair` reported.
fn open_counting(image: Vec<u8>, b: BucketId, data: &[u8], quick: bool) -> Vec<f64> {
    use recfiles::SimulatedDisk;
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let store = Store::builder()
        .quick_repair(quick)
        .on_repair(move |p| log.lock().unwrap().push(p))
        .open_backend(SimulatedDisk::from_image(image))
        .unwrap();
    assert_eq!(read_all(&store, b, "big"), data);
    assert_eq!(read_all(&store, b, "small4"), b"after the big one");
    assert!(store.check().unwrap().is_ok());
    seen.lock().unwrap().clone()
}

/// Without quick repair, an open after a crash reports the engine's check of every page
/// through `on_repair`, with fractions from 0 to 1 that never go back; a cleanly closed store
/// opens without a check and the callback is never called. The content is intact either way.
#[test]
fn on_repair_reports_the_check_after_a_crash_and_only_then() {
    let (crashed, closed, b, data) = crashed_and_closed(false);
    let progress = open_counting(crashed, b, &data, false);
    assert!(!progress.is_empty(), "no progress reported after a crash");
    assert!(
        progress.iter().all(|p| (0.0..=1.0).contains(p)),
        "{progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(open_counting(closed, b, &data, false), Vec::<f64>::new());
}

/// With quick repair on, an open after a crash reads the allocator state the last
/// commit recorded instead of checking every page: no repair pass runs, and everything
/// committed is there. A store written without it still gets its full check.
#[test]
fn with_quick_repair_a_crashed_store_reopens_without_checking_every_page() {
    let (crashed, _, b, data) = crashed_and_closed(true);
    assert_eq!(open_counting(crashed, b, &data, true), Vec::<f64>::new());
    let (crashed, _, b, data) = crashed_and_closed(false);
    assert!(!open_counting(crashed, b, &data, true).is_empty());
}

/// Images of a store (a 300 KB put, small commits, then `Store::checkpoint`) killed while
/// open, as a killed process and as a power cut leave it; with one more small commit after the
/// checkpoint when `commit_after`.
fn crashed_after_checkpoint(commit_after: bool) -> ([Vec<u8>; 2], BucketId, Vec<u8>) {
    use recfiles::SimulatedDisk;
    let disk = SimulatedDisk::new();
    let store = Store::builder().open_backend(disk.clone()).unwrap();
    let (b, data) = common::big_then_small(&store);
    store.checkpoint().unwrap();
    if commit_after {
        put(&store, b, "later", b"after the checkpoint");
    }
    let images = [disk.written_image(), disk.durable_image()];
    drop(store);
    (images, b, data)
}

/// A checkpoint records the engine's allocator state: a store killed after one, before any
/// other commit, reopens without the engine's check of every page (as after a clean close),
/// whether the process was killed or the power cut, with everything committed there. A commit
/// after the checkpoint brings the full check back (quick repair off).
#[test]
fn a_crash_after_a_checkpoint_reopens_without_checking_every_page() {
    let ([killed, cut], b, data) = crashed_after_checkpoint(false);
    assert_eq!(open_counting(killed, b, &data, false), Vec::<f64>::new());
    assert_eq!(open_counting(cut, b, &data, false), Vec::<f64>::new());
    let ([killed, _], b, data) = crashed_after_checkpoint(true);
    assert!(!open_counting(killed, b, &data, false).is_empty());
}

/// A creation cut off anywhere (a power cut or a killed process during the first open of a new
/// file) leaves a file that opens again, as an empty store: nothing was acknowledged. Covers
/// each failing write and sync of the creation, reopened from the synced bytes, from everything
/// written, and from the synced bytes with the file's length as written (a size change that
/// reached the disk without the data it was made for, as `fallocate` allows).
#[test]
fn a_creation_cut_off_at_any_point_opens_again_as_an_empty_store() {
    use recfiles::{FaultKind, FaultPlan, FaultyBackend, SimulatedDisk};
    let mut cut = 0;
    for kind in [FaultKind::Write, FaultKind::Sync] {
        for n in 0u64.. {
            let disk = SimulatedDisk::new();
            let plan = FaultPlan::new();
            plan.arm(kind, n);
            let created =
                Store::builder().open_backend(FaultyBackend::new(disk.clone(), plan.clone()));
            if !plan.tripped() {
                created.expect("a creation without faults succeeds");
                break;
            }
            cut += 1;
            drop(created);
            let (durable, written) = disk.images();
            let mut sized = durable.clone();
            sized.resize(written.len(), 0);
            for (name, image) in [("durable", durable), ("written", written), ("sized", sized)] {
                let store = Store::builder()
                    .open_backend(SimulatedDisk::from_image(image))
                    .unwrap_or_else(|e| panic!("{kind:?} fault {n}, {name} image: {e}"));
                assert_consistent(&store);
                let b = bucket(&store);
                put(&store, b.id, "k", b"after the cut");
                assert_eq!(read_all(&store, b.id, "k"), b"after the cut");
            }
        }
    }
    assert!(cut > 4, "only {cut} cut-off points");
}

/// Once a store's creation finished, a database whose first page is damaged is refused, never
/// taken for an unfinished creation and started over (which would drop everything in it).
#[test]
fn a_created_store_with_a_damaged_first_database_page_is_refused_not_emptied() {
    use recfiles::SimulatedDisk;
    let disk = SimulatedDisk::new();
    let region = 64 << 10;
    let b = {
        let store = Store::builder()
            .journal_size(region)
            .open_backend(disk.clone())
            .unwrap();
        let b = bucket(&store);
        put(&store, b.id, "k", b"kept");
        b.id
    };
    let mut image = disk.written_image();
    let region = region as usize;
    image[region..region + 4096].fill(0);
    let damaged = SimulatedDisk::from_image(image.clone());
    let err = Store::builder()
        .open_backend(damaged.clone())
        .expect_err("a store without its database header must not open");
    assert!(
        matches!(err, Error::NotAStore { .. } | Error::Corruption { .. }),
        "{err:?}"
    );
    // The refused file was not rewritten as an empty store: its database is as it was, and
    // with the page mended everything is there.
    assert!(damaged.written_image()[region..] == image[region..]);
    let mut again = image;
    again[region..region + 4096].copy_from_slice(&disk.written_image()[region..region + 4096]);
    let store = Store::builder()
        .open_backend(SimulatedDisk::from_image(again))
        .unwrap();
    assert_eq!(read_all(&store, b, "k"), b"kept");
}

/// Whether a store image opens without the engine's check after an unclean close, with `key`
/// of bucket `b` holding `data`.
fn opens_clean(image: Vec<u8>, b: BucketId, key: &str, data: &[u8]) -> bool {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&repaired);
    let store = Store::builder()
        .on_repair(move |_| flag.store(true, Ordering::SeqCst))
        .open_backend(recfiles::SimulatedDisk::from_image(image))
        .unwrap();
    assert_eq!(read_all(&store, b, key), data);
    assert_consistent(&store);
    !repaired.load(Ordering::SeqCst)
}

#[test]
fn close_reports_success_and_closes_every_clone() {
    let disk = recfiles::SimulatedDisk::new();
    let store = Store::builder().open_backend(disk.clone()).unwrap();
    let b = bucket(&store);
    put(&store, b.id, "k", b"closed cleanly");
    let clone = store.clone();
    let snapshot = clone.snapshot().unwrap();
    store.close().unwrap();
    assert!(matches!(clone.bucket(b.id), Err(Error::Closed)));
    assert!(matches!(
        clone.put_object(b.id, "x", &b"x"[..], &PutOptions::default()),
        Err(Error::Closed)
    ));
    assert!(matches!(clone.clone().close(), Err(Error::Closed)));
    assert!(matches!(clone.checkpoint(), Err(Error::Closed)));
    drop(snapshot);
    drop(clone);
    // What close synced is the whole store, written in place: no repair on the next open.
    assert!(opens_clean(
        disk.durable_image(),
        b.id,
        "k",
        b"closed cleanly"
    ));
}

#[test]
fn close_reports_a_failing_final_checkpoint_and_loses_nothing_committed() {
    use recfiles::{FaultKind, FaultPlan, FaultyBackend, SimulatedDisk};
    for kind in [FaultKind::Write, FaultKind::Sync] {
        let plan = FaultPlan::new();
        let disk = SimulatedDisk::new();
        let store = Store::builder()
            .open_backend(FaultyBackend::new(disk.clone(), plan.clone()))
            .unwrap();
        let b = bucket(&store);
        // Durable commits leave their pages in the journal, for the final checkpoint to write
        // in place.
        put(&store, b.id, "k", b"committed before the close");
        plan.arm(kind, 0);
        match store.close() {
            Err(Error::Io(e)) => assert!(e.to_string().contains("injected"), "{kind:?}: {e}"),
            other => panic!("{kind:?}: a failing close came back as {other:?}"),
        }
        assert!(plan.tripped());
        // The commit was durable before the close: the next open finds it.
        let image = disk.durable_image();
        let store = Store::builder()
            .open_backend(SimulatedDisk::from_image(image))
            .unwrap();
        assert_eq!(read_all(&store, b.id, "k"), b"committed before the close");
        assert_consistent(&store);
    }
}

#[test]
fn close_waits_for_a_write_in_progress_on_another_thread() {
    let disk = recfiles::SimulatedDisk::new();
    let store = Store::builder().open_backend(disk.clone()).unwrap();
    let b = bucket(&store);
    let (began, write_began) = std::sync::mpsc::channel();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.write(|tx| {
                began.send(()).unwrap();
                // The transaction stays open until the close has begun: new calls then fail.
                while store.bucket(b.id).is_ok() {
                    std::thread::yield_now();
                }
                tx.put_object(
                    b.id,
                    "k",
                    &b"written during close"[..],
                    &PutOptions::default(),
                )
            })
        })
    };
    write_began.recv().unwrap();
    store.close().unwrap();
    writer.join().unwrap().unwrap();
    assert!(opens_clean(
        disk.durable_image(),
        b.id,
        "k",
        b"written during close"
    ));
}

#[test]
fn closing_a_read_only_store_reports_nothing_and_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.recfiles");
    let b = {
        let store = Store::open(&path).unwrap();
        let b = bucket(&store);
        put(&store, b.id, "k", b"kept");
        store.close().unwrap();
        b.id
    };
    let before = std::fs::read(&path).unwrap();
    let store = Store::builder().open_read_only(&path).unwrap();
    assert_eq!(read_all(&store, b, "k"), b"kept");
    store.close().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Closed, the file opens for writing again.
    Store::open(&path).unwrap().close().unwrap();
}

/// A store of format 4 (before content could live in another location: no `remote_files`
/// or `remote_objects` tables) opens, keeps its content, and is upgraded to the current
/// format; read-only, it is read as it is.
#[test]
fn a_format_4_store_is_upgraded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let b = {
        let store = Store::open(&path).unwrap();
        let b = bucket(&store);
        put(&store, b.id, "small", b"from format four");
        put(&store, b.id, "large", &vec![7u8; 3 << 20]);
        b.id
    };
    {
        // Make it what a format-4 build wrote.
        let db = common::raw_db_mut(&path);
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(META).unwrap();
            let v4 = bincode::serde::encode_to_vec(4u32, bincode::config::standard()).unwrap();
            meta.insert("format_version", v4.as_slice()).unwrap();
        }
        assert!(
            tx.delete_table(TableDefinition::<u128, &str>::new("remote_files"))
                .unwrap()
        );
        assert!(
            tx.delete_table(TableDefinition::<(&str, [u8; 32]), u64>::new(
                "remote_objects"
            ))
            .unwrap()
        );
        tx.commit().unwrap();
    }
    {
        let ro = StoreBuilder::new().open_read_only(&path).unwrap();
        assert_eq!(read_all(&ro, b, "small"), b"from format four");
        assert_consistent(&ro);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(read_all(&store, b, "small"), b"from format four");
    assert_eq!(read_all(&store, b, "large"), vec![7u8; 3 << 20]);
    put(&store, b, "after", b"written by format five");
    assert_consistent(&store);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(read_all(&store, b, "after"), b"written by format five");
    drop(store);
    let db = common::raw_db_mut(&path);
    let tx = db.begin_read().unwrap();
    let meta = tx.open_table(META).unwrap();
    let stored: u32 = bincode::serde::decode_from_slice(
        meta.get("format_version").unwrap().unwrap().value(),
        bincode::config::standard(),
    )
    .unwrap()
    .0;
    assert_eq!(stored, FORMAT_VERSION);
}

const FILES_BY_HASH: TableDefinition<[u8; 32], u128> = TableDefinition::new("files_by_hash");

fn stored_format(path: &std::path::Path) -> u32 {
    let db = common::raw_db(path);
    let tx = db.begin_read().unwrap();
    let meta = tx.open_table(META).unwrap();
    bincode::serde::decode_from_slice(
        meta.get("format_version").unwrap().unwrap().value(),
        bincode::config::standard(),
    )
    .unwrap()
    .0
}

/// The dedup index of a closed store: content hash → file id.
fn dedup_index(path: &std::path::Path) -> Vec<([u8; 32], u128)> {
    use redb::ReadableTable;
    let db = common::raw_db(path);
    let tx = db.begin_read().unwrap();
    let t = tx.open_table(FILES_BY_HASH).unwrap();
    t.iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.value(), v.value())
        })
        .collect()
}

fn blake3_of(store: &Store, file: FileId) -> [u8; 32] {
    let text = store.file(file).unwrap().unwrap().checksum;
    let hex = text.strip_prefix("blake3:").unwrap();
    std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
}

/// Leaves at `path` a store as a format-5 build wrote it (every file in the dedup index,
/// small inline ones too): a small file shared by two versions, a larger inline file and a
/// chunked one. Returns the bucket, the small file and the index as format 6 has it.
fn format_5_store(path: &std::path::Path) -> (BucketId, FileId, Vec<([u8; 32], u128)>) {
    let (b, small_file, small_hash) = {
        let store = Store::open(path).unwrap();
        let b = bucket(&store).id;
        let v = put(&store, b, "small", &bytes(31, 1000));
        // Shared by a copy, as a format-5 build's dedup would have shared it too.
        let shared = store.copy_version(v.version_id, b, "small copy").unwrap();
        assert_eq!(shared.file_id, v.file_id);
        put(&store, b, "inline but larger", &bytes(32, 20_000));
        put(&store, b, "chunked", &bytes(33, 3 << 20));
        let small_file = v.file_id.unwrap();
        (b, small_file, blake3_of(&store, small_file))
    };
    let indexed = dedup_index(path);
    assert_eq!(
        indexed.len(),
        2,
        "the larger inline file and the chunked one"
    );
    let db = common::raw_db_mut(path);
    let tx = db.begin_write().unwrap();
    {
        let mut meta = tx.open_table(META).unwrap();
        let v5 = bincode::serde::encode_to_vec(5u32, bincode::config::standard()).unwrap();
        meta.insert("format_version", v5.as_slice()).unwrap();
        let mut index = tx.open_table(FILES_BY_HASH).unwrap();
        index
            .insert(small_hash, small_file.uuid().as_u128())
            .unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    assert_eq!(stored_format(path), 5);
    assert_eq!(dedup_index(path).len(), 3);
    (b, small_file, indexed)
}

/// A store of format 5 is read as it is when opened read-only, and upgraded when opened for
/// writing: in the transaction that records format 6, the small inline files leave the dedup
/// index, the others stay, and everything reads and counts as before.
#[test]
fn a_format_5_store_is_upgraded_on_open_and_its_small_files_leave_the_dedup_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let small = bytes(31, 1000);
    let (b, small_file, indexed) = format_5_store(&path);
    {
        let ro = StoreBuilder::new().open_read_only(&path).unwrap();
        assert_eq!(read_all(&ro, b, "small copy"), small);
        assert_consistent(&ro);
    }
    assert_eq!(stored_format(&path), 5);

    let store = Store::open(&path).unwrap();
    assert_consistent(&store);
    assert_eq!(read_all(&store, b, "small"), small);
    assert_eq!(read_all(&store, b, "chunked"), bytes(33, 3 << 20));
    assert_eq!(store.file(small_file).unwrap().unwrap().references, 2);
    // The same small content again is a file of its own now.
    let again = put(&store, b, "small again", &small);
    assert_ne!(again.file_id, Some(small_file));
    // The shared file goes with its last reference.
    store.delete_object(b, "small").unwrap();
    let first = store.object_versions(b, "small").unwrap()[1].version_id;
    store.remove_version(first).unwrap();
    assert_eq!(store.file(small_file).unwrap().unwrap().references, 1);
    assert_consistent(&store);
    drop(store);
    assert_eq!(stored_format(&path), FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 6);
    assert_eq!(dedup_index(&path), indexed);
}

/// A crash anywhere in the open that upgrades a format-5 store leaves format 5 or format 6,
/// never a mix: the open is cut off at each of its writes and syncs in turn, and both what was
/// synced and everything written then open read-only (as they are) as a consistent store with
/// its content (a format-6 store with a small file still in its index fails that check), and
/// open for writing as a format-6 store with the index format 6 keeps.
#[test]
fn an_upgrade_cut_off_at_any_point_leaves_format_5_or_6() {
    use recfiles::{FaultKind, FaultPlan, FaultyBackend, SimulatedDisk};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (b, _, indexed) = format_5_store(&path);
    let image = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.redb");
    let mut cuts = 0;
    for kind in [FaultKind::Write, FaultKind::Sync] {
        for n in 0.. {
            let plan = FaultPlan::new();
            let disk = SimulatedDisk::from_image(image.clone());
            plan.arm(kind, n);
            drop(StoreBuilder::new().open_backend(FaultyBackend::new(disk.clone(), plan.clone())));
            if !plan.tripped() {
                break;
            }
            cuts += 1;
            for left in [disk.durable_image(), disk.written_image()] {
                std::fs::write(&cut, &left).unwrap();
                {
                    let ro = StoreBuilder::new().open_read_only(&cut).unwrap();
                    assert_consistent(&ro);
                    assert_eq!(read_all(&ro, b, "small copy"), bytes(31, 1000));
                }
                Store::open(&cut).unwrap().close().unwrap();
                assert_eq!(stored_format(&cut), FORMAT_VERSION);
                assert_eq!(
                    dedup_index(&cut),
                    indexed,
                    "{kind:?} fault at operation {n}"
                );
            }
        }
    }
    assert!(cuts > 2, "the upgrade was cut off at {cuts} points only");
}
