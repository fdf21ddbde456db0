//! `Store::stats`: what a store holds, counted on one snapshot, and what dedup saved.

use recfiles::prelude::*;
use serde_json::json;

fn put(store: &Store, b: BucketId, key: &str, bytes: &[u8]) {
    store
        .put_object(b, key, bytes, &PutOptions::default())
        .unwrap();
}

#[test]
fn an_empty_store_counts_nothing_and_has_a_ratio_of_one() {
    let store = Store::in_memory().unwrap();
    let s = store.stats().unwrap();
    assert_eq!(s, recfiles::StoreStats::default());
    assert_eq!(s.dedup_ratio(), 1.0);
}

#[test]
fn stats_count_versions_markers_and_heads_per_key() {
    let store = Store::builder().chunk_size(1024).in_memory().unwrap();
    let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
    put(&store, b, "a", b"one");
    put(&store, b, "a", b"two");
    put(&store, b, "gone", b"x");
    store.delete_object(b, "gone").unwrap();
    put(&store, b, "z", b"last");
    let s = store.stats().unwrap();
    assert_eq!(s.buckets, 1);
    // "a" and "z" are live; "gone" ends in a delete marker.
    assert_eq!(s.objects, 2);
    assert_eq!(s.versions, 5);
    assert_eq!(s.delete_markers, 1);
    assert_eq!(s.files, 4);
    assert_eq!(s.chunks, 0, "small files are inline");
    assert_eq!(s.logical_bytes, 3 + 3 + 1 + 4);
    assert_eq!(s.stored_bytes, 3 + 3 + 1 + 4);
}

#[test]
fn identical_content_is_counted_once_in_stored_bytes() {
    let store = Store::builder().chunk_size(1024).in_memory().unwrap();
    let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
    let big: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    put(&store, b, "one", &big);
    put(&store, b, "two", &big);
    let mut tail = big[..2048].to_vec();
    tail.extend_from_slice(b"different end");
    put(&store, b, "three", &tail);
    let s = store.stats().unwrap();
    assert_eq!(s.files, 2);
    assert_eq!(s.logical_bytes, 5000 + 5000 + 2061);
    // "three" shares its first two chunks with "one"; only its last 13 bytes are new.
    assert_eq!(s.stored_bytes, 5000 + 13);
    assert!((s.dedup_ratio() - 12061.0 / 5013.0).abs() < 1e-9);
}

#[test]
fn records_are_counted_live_and_deleted() {
    let store = Store::in_memory().unwrap();
    store.create_record(json!({"title": "kept"})).unwrap();
    let mut gone = store.create_record(json!({"title": "gone"})).unwrap();
    store.delete_record(&mut gone).unwrap();
    let s = store.stats().unwrap();
    assert_eq!((s.records, s.deleted_records), (1, 1));
}

#[test]
fn space_counts_pages_freed_by_removed_content_and_writes_nothing_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i * 13 % 251) as u8).collect();
    let (before, after) = {
        let store = Store::builder().chunk_size(64 << 10).open(&path).unwrap();
        let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
        put(&store, b, "big", &big);
        let before = store.space().unwrap();
        store.remove_bucket(b).unwrap();
        // The next commit can reuse what the removal freed: the pages are free now.
        let keep = store.create_bucket(&BucketOptions::default()).unwrap().id;
        put(&store, keep, "small", b"x");
        (before, store.space().unwrap())
    };
    assert_eq!(before.page_size, 4096);
    let freed_pages = before.allocated_pages - after.allocated_pages;
    assert!(
        freed_pages * before.page_size >= 4 << 20,
        "{before:?} -> {after:?}"
    );
    // Asking a read-only store changes nothing in its file.
    let bytes = std::fs::read(&path).unwrap();
    let store = Store::builder().open_read_only(&path).unwrap();
    let read_only = store.space().unwrap();
    assert_eq!(read_only.allocated_pages, after.allocated_pages);
    let after = read_only;
    drop(store);
    let used = after.allocated_pages * after.page_size;
    assert!(
        used + after.free_bytes <= bytes.len() as u64,
        "{after:?} in {}",
        bytes.len()
    );
    assert!(std::fs::read(&path).unwrap() == bytes, "the file changed");
}
