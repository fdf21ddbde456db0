//! Fixity: verify re-hashes stored content and names the damaged files.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{Error, FilesQuery};

#[test]
fn verify_passes_on_intact_files_and_records_the_check() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "a", &bytes(1, 20_000));
    put(&store, b.id, "b", &bytes(2, 100));
    let report = store.verify_all().unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.bytes, 20_100);
    assert!(report.damaged.is_empty());
    let f = store.file(v.file_id.unwrap()).unwrap().unwrap();
    assert_eq!(f.last_check, Some(true));
    assert!(f.last_check_at.is_some());
}

#[test]
fn verify_finds_a_corrupted_chunk_and_reads_refuse_the_damaged_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let marker = b"RECFILES-BITROT-MARKER-".repeat(200);
    let (bucket_id, damaged, intact) = {
        let store = Store::builder().chunk_size(4096).open(&path).unwrap();
        let b = bucket(&store);
        let mut data = bytes(3, 8192);
        data.extend_from_slice(&marker[..4096]);
        let d = put(&store, b.id, "damaged", &data);
        let i = put(&store, b.id, "intact", &bytes(4, 10_000));
        (b.id, d, i)
    };
    assert!(common::damage_file(&path, &marker[..64], 100) >= 1);

    let store = Store::builder().chunk_size(4096).open(&path).unwrap();
    let report = store.verify_all().unwrap();
    assert_eq!(report.damaged, vec![damaged.file_id.unwrap()]);
    assert!(!store.verify_file(damaged.file_id.unwrap()).unwrap());
    assert_eq!(
        store
            .file(damaged.file_id.unwrap())
            .unwrap()
            .unwrap()
            .last_check,
        Some(false)
    );
    let mut r = store.open_object(bucket_id, "damaged").unwrap();
    assert_eq!(
        r.read_range(0, 8192).unwrap(),
        bytes(3, 8192),
        "undamaged chunks still read"
    );
    assert!(
        matches!(r.read_range(8192, 10), Err(Error::Corruption { file: Some(f), .. }) if f == damaged.file_id.unwrap())
    );
    assert_eq!(read_all(&store, bucket_id, "intact"), bytes(4, 10_000));
    assert!(
        store
            .read(|r| r.file(intact.file_id.unwrap()))
            .unwrap()
            .unwrap()
            .last_check
            == Some(true)
    );
}

#[test]
fn without_read_verification_damage_is_still_found_by_fixity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let marker = b"UNVERIFIED-READS-MARKER-".repeat(200);
    let (bucket_id, damaged) = {
        let store = Store::builder().chunk_size(4096).open(&path).unwrap();
        let b = bucket(&store);
        let d = put(&store, b.id, "damaged", &marker[..4096]);
        (b.id, d)
    };
    assert!(common::damage_file(&path, &marker[..64], 10) >= 1);
    let store = Store::builder()
        .chunk_size(4096)
        .verify_reads(false)
        .open(&path)
        .unwrap();
    let read = store
        .open_object(bucket_id, "damaged")
        .unwrap()
        .read_range(0, 4096)
        .unwrap();
    assert_ne!(
        read,
        marker[..4096],
        "the damaged bytes come back unchecked"
    );
    assert_eq!(
        store.verify_all().unwrap().damaged,
        vec![damaged.file_id.unwrap()]
    );
}
