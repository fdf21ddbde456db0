#![allow(dead_code)]
//! Helpers shared by the integration tests.

use recfiles::prelude::*;
use recfiles::{Bucket, FilesQuery, ObjectVersion, Result};
use std::collections::BTreeMap;
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

// ---- helpers of the bad-input tests ----

/// Deterministic, chunk-distinct content: `size` bytes from a xorshift stream seeded by `seed`.
pub fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// One version as seen from outside: its id, whether it has content, and that content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenVersion {
    pub version: VersionId,
    pub content: Option<Vec<u8>>,
    pub tags: BTreeMap<String, String>,
}

/// Everything observable about one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenBucket {
    pub size: u64,
    pub locked: bool,
    pub deleted: bool,
    pub quota: Option<u64>,
    pub tags: BTreeMap<String, String>,
    /// key → versions, newest first.
    pub objects: BTreeMap<String, Vec<SeenVersion>>,
    /// (key, size) of open multipart uploads with their received part numbers.
    pub uploads: Vec<(String, u64, Vec<u32>)>,
}

/// Reads everything observable about `buckets` (content included, byte for byte).
pub fn fingerprint(
    store: &Store,
    buckets: &[BucketId],
) -> Result<BTreeMap<BucketId, Option<SeenBucket>>> {
    let snap = store.snapshot()?;
    let mut out = BTreeMap::new();
    for id in buckets {
        let Some(b) = snap.bucket_with_deleted(*id)? else {
            out.insert(*id, None);
            continue;
        };
        let all = ListOptions {
            with_deleted: true,
            ..ListOptions::default()
        };
        let mut objects = BTreeMap::new();
        for head in snap.list_objects(*id, &all)? {
            let mut versions = Vec::new();
            for v in snap.object_versions(*id, &head.key)? {
                let content = match v.file_id {
                    Some(f) => {
                        let mut bytes = Vec::new();
                        snap.open_file(f)?.read_to_end(&mut bytes)?;
                        Some(bytes)
                    }
                    None => None,
                };
                versions.push(SeenVersion {
                    version: v.version_id,
                    content,
                    tags: snap.object_tags(v.version_id)?,
                });
            }
            objects.insert(head.key, versions);
        }
        let mut uploads = Vec::new();
        for u in snap.multipart_uploads(*id)? {
            let parts = snap.parts(u.id)?.iter().map(|p| p.part_number).collect();
            uploads.push((u.key, u.size, parts));
        }
        out.insert(
            *id,
            Some(SeenBucket {
                size: b.size,
                locked: b.locked,
                deleted: b.deleted,
                quota: b.quota_size,
                tags: snap.bucket_tags(*id)?,
                objects,
                uploads,
            }),
        );
    }
    Ok(out)
}

/// Panics with the report unless the integrity check passes.
pub fn assert_check(store: &Store) {
    let report = store.check().expect("check runs");
    assert!(report.is_ok(), "integrity check failed: {report:?}");
}

/// The number of file instances stored (every one is re-hashed, so this also proves they read).
pub fn file_count(store: &Store) -> u64 {
    let r = store.verify_all().expect("verify_all runs");
    assert!(r.damaged.is_empty(), "damaged files: {:?}", r.damaged);
    r.checked
}
