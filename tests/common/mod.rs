#![allow(dead_code)]
//! Helpers shared by the integration tests.

use recfiles::prelude::*;
use recfiles::{Bucket, ObjectVersion};
use std::io::Read;

/// A store with small chunks and staging batches so multi-chunk and staged paths run on
/// kilobytes instead of megabytes.
pub fn small_store() -> Store {
    Store::builder()
        .chunk_size(4096)
        .staging_batch(16 * 1024)
        .in_memory()
        .expect("in-memory store")
}

pub fn bucket(store: &Store) -> Bucket {
    store
        .create_bucket(&BucketOptions::default())
        .expect("bucket")
}

pub fn put(store: &Store, b: BucketId, key: &str, data: &[u8]) -> ObjectVersion {
    store
        .put_object(b, key, data, &PutOptions::default())
        .expect("put")
}

pub fn read_all(store: &Store, b: BucketId, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .open_object(b, key)
        .expect("open")
        .read_to_end(&mut out)
        .expect("read");
    out
}

/// Deterministic pseudo-random bytes (xorshift), different for each seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn assert_consistent(store: &Store) {
    let report = store.check().expect("check runs");
    assert!(report.is_ok(), "integrity check failed: {report:#?}");
}
