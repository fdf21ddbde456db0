//! Opening a store without writing to it: read-only opens of closed and crashed stores, and
//! salvage of a store whose journal is damaged so that a normal open refuses it.

mod common;

use common::{bucket, put, read_all};
use recfiles::prelude::*;
use recfiles::{Error, SimulatedDisk};

const REGION: u64 = 1 << 20;

fn builder() -> StoreBuilder {
    Store::builder().journal_size(REGION)
}

/// A store killed while open after three small commits (three journal batches since the last
/// checkpoint), as a file; with the bucket the commits went to.
fn crashed_store(dir: &std::path::Path) -> (std::path::PathBuf, BucketId) {
    let disk = SimulatedDisk::new();
    let store = builder().open_backend(disk.clone()).unwrap();
    let b = bucket(&store);
    store.checkpoint().unwrap();
    for (k, v) in [("a", "first"), ("b", "second"), ("c", "third")] {
        put(&store, b.id, k, v.as_bytes());
    }
    let path = dir.join("crashed.redb");
    std::fs::write(&path, disk.written_image()).unwrap();
    drop(store);
    (path, b.id)
}

/// Offsets of the journal's batches of the current generation in a store file (batches of
/// earlier generations may still lie further on: a new generation only voids them).
fn batches(image: &[u8]) -> Vec<usize> {
    let word = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
    let generation = word(24);
    (4096..REGION as usize)
        .step_by(4096)
        .filter(|&at| {
            matches!(&image[at..at + 8], b"recfbcrc" | b"recfbtch") && word(at + 8) == generation
        })
        .collect()
}

#[test]
fn a_read_only_open_reads_a_crashed_store_and_never_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, b) = crashed_store(dir.path());
    let before = std::fs::read(&path).unwrap();
    {
        let store = builder().open_read_only(&path).unwrap();
        assert_eq!(read_all(&store, b, "c"), b"third");
        let e = store
            .create_bucket(&BucketOptions::default())
            .expect_err("writes are refused");
        assert!(matches!(e, Error::ReadOnly), "{e}");
        let e = store.put_object(b, "d", &b"x"[..], &PutOptions::default());
        assert!(matches!(e, Err(Error::ReadOnly)), "{e:?}");
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the file was written"
    );
    // A normal open recovers it as usual afterwards.
    let store = builder().open(&path).unwrap();
    assert_eq!(read_all(&store, b, "c"), b"third");
}

#[test]
fn a_read_only_open_and_a_writer_keep_each_other_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let writer = Store::open(&path).unwrap();
    assert!(Store::builder().open_read_only(&path).is_err());
    drop(writer);
    let reader = Store::builder().open_read_only(&path).unwrap();
    assert!(Store::open(&path).is_err());
    // Two readers at once are fine.
    let second = Store::builder().open_read_only(&path).unwrap();
    drop((reader, second));
    Store::open(&path).unwrap();
}

#[test]
fn an_empty_or_missing_file_is_not_a_store_when_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let e = Store::builder().open_read_only(&empty).unwrap_err();
    assert!(matches!(e, Error::NotAStore { .. }), "{e}");
    assert_eq!(std::fs::read(&empty).unwrap(), b"", "nothing written");
    let e = Store::builder()
        .open_read_only(dir.path().join("missing.redb"))
        .unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e}");
    assert!(!dir.path().join("missing.redb").exists());
}

#[test]
fn salvage_replays_a_damaged_journal_up_to_the_damage_and_says_what_was_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (path, b) = crashed_store(dir.path());
    let mut image = std::fs::read(&path).unwrap();
    let at = batches(&image);
    // The puts' batches are those with pages (a batch of none records a change of the
    // database's length, when the engine grows the file before a commit).
    let pages = |&&b: &&usize| u32::from_le_bytes(image[b + 40..b + 44].try_into().unwrap()) > 0;
    let puts: Vec<usize> = at.iter().filter(pages).copied().collect();
    assert_eq!(puts.len(), 3, "{at:?}");
    // The batch of the second put is damaged; the third put's is intact after it.
    let second = puts[1];
    let intact_after = at.iter().filter(|&&b| b > second).count();
    image[second + 100] ^= 0x40;
    std::fs::write(&path, &image).unwrap();
    let e = builder()
        .open(&path)
        .expect_err("a normal open refuses the damage");
    assert!(matches!(e, Error::Corruption { .. }), "{e}");
    let damaged = std::fs::read(&path).unwrap();

    let (store, report) = builder().salvage(&path).unwrap();
    let lost = report.lost.expect("the report says what was left out");
    assert!(
        lost.contains(&format!("byte {second}"))
            && lost.contains(&format!("{intact_after} intact")),
        "{lost}"
    );
    assert_eq!(read_all(&store, b, "a"), b"first");
    assert!(
        store.object(b, "b").unwrap().is_none(),
        "the damaged commit is left out"
    );
    assert!(
        store.object(b, "c").unwrap().is_none(),
        "so is the one after it"
    );
    assert!(store.check().unwrap().is_ok());
    drop(store);
    assert!(
        std::fs::read(&path).unwrap() == damaged,
        "salvage wrote the file"
    );
}

#[test]
fn salvage_opens_a_store_whose_two_header_copies_are_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let (path, b) = crashed_store(dir.path());
    let mut image = std::fs::read(&path).unwrap();
    image[20] ^= 1;
    image[2048 + 20] ^= 1;
    std::fs::write(&path, &image).unwrap();
    assert!(builder().open(&path).is_err());
    let (store, report) = builder().salvage(&path).unwrap();
    let lost = report.lost.expect("the lost header is reported");
    assert!(lost.contains("header"), "{lost}");
    // As the last checkpoint left it: the bucket, none of the puts after it.
    assert!(store.bucket(b).unwrap().is_some());
    assert!(store.object(b, "a").unwrap().is_none());
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn salvage_of_an_undamaged_store_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, b) = crashed_store(dir.path());
    let (store, report) = builder().salvage(&path).unwrap();
    assert_eq!(report.lost, None);
    assert_eq!(read_all(&store, b, "c"), b"third");
}
