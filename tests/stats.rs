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
