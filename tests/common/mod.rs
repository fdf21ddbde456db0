#![allow(dead_code)]
//! Helpers shared by the integration tests.

use recfiles::prelude::*;
use recfiles::{Bucket, FilesQuery, ObjectVersion, Result};
use std::collections::BTreeMap;
use std::io::Read;

#[cfg(feature = "s3")]
pub mod garage;

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

/// The reopen tests' workload: a bucket, a 300,000-byte file (staged, so several commits),
/// then five small puts after it. Returns the bucket and the big file's bytes.
pub fn big_then_small(store: &Store) -> (BucketId, Vec<u8>) {
    let b = bucket(store);
    let data = content(7, 300_000);
    store
        .put_object(b.id, "big", &data[..], &PutOptions::default())
        .unwrap();
    for i in 0..5 {
        put(store, b.id, &format!("small{i}"), b"after the big one");
    }
    (b.id, data)
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

/// The database inside a store file, opened with redb directly, to count rows (`raw_db`) or to
/// tamper with them (`raw_db_mut`). A store file starts with its commit journal; the database
/// follows at the offset the file's header gives. Pages of the journal's current generation
/// (what a process that died left there) are laid over the file in memory; they are read
/// independently of the engine, from the layout docs/FORMAT.md describes.
///
/// `raw_db` never writes the file: whatever redb writes (its own recovery after a crash, say)
/// stays in memory. `raw_db_mut` writes through, and so wants a cleanly closed store.
pub fn raw_db(path: &std::path::Path) -> redb::Database {
    open_region(path, false)
}

/// See [`raw_db`].
pub fn raw_db_mut(path: &std::path::Path) -> redb::Database {
    open_region(path, true)
}

fn open_region(path: &std::path::Path, persist: bool) -> redb::Database {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open store file");
    let raw = std::fs::read(path).expect("read store file");
    assert_eq!(&raw[..8], b"recfjrnl", "not a store file");
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let region = u64_at(&raw, 16) as usize;
    let generation = u64_at(&raw, 24);
    let mut db = raw[region..].to_vec();
    let (mut pos, mut seq, mut replayed) = (4096usize, 0u64, 0);
    while pos + 64 <= region {
        let head = &raw[pos..pos + 64];
        let (len, min_len) = (u64_at(head, 24) as usize, u64_at(head, 32) as usize);
        let (count, payload_len) = (u32_at(head, 40) as usize, u32_at(head, 44) as usize);
        let crc = &head[..8] == b"recfbcrc";
        if !(crc || &head[..8] == b"recfbtch")
            || u64_at(head, 8) != generation
            || u64_at(head, 16) != seq
            || pos + 64 + payload_len > region
        {
            break;
        }
        let payload = &raw[pos + 64..pos + 64 + payload_len];
        let mut sum = [0u8; 16];
        if crc {
            let mut h = crc32fast::Hasher::new();
            h.update(&head[..48]);
            h.update(payload);
            sum[..4].copy_from_slice(&h.finalize().to_le_bytes());
        } else {
            let mut h = blake3::Hasher::new();
            h.update(&head[..48]);
            h.update(payload);
            sum.copy_from_slice(&h.finalize().as_bytes()[..16]);
        }
        if sum != head[48..64] {
            break;
        }
        // Cut to the shortest length since the batch before, lay the pages, set the length.
        db.truncate(min_len);
        let mut data = count * 10;
        for i in 0..count {
            let e = &payload[i * 10..i * 10 + 10];
            let (at, n) = (
                u64_at(e, 0) as usize * 4096,
                u16::from_le_bytes([e[8], e[9]]),
            );
            if db.len() < at + 4096 {
                db.resize(at + 4096, 0);
            }
            db[at..at + 4096].fill(0);
            db[at..at + n as usize].copy_from_slice(&payload[data..data + n as usize]);
            data += n as usize;
        }
        db.resize(len, 0);
        seq += 1;
        replayed += 1;
        pos = (pos + 64 + payload_len).div_ceil(4096) * 4096;
    }
    assert!(
        !persist || replayed == 0,
        "tamper only with a cleanly closed store (its journal empty)"
    );
    redb::Builder::new()
        .create_with_backend(Region {
            file,
            region: region as u64,
            persist,
            db: std::sync::Mutex::new(db),
        })
        .expect("open the database region")
}

/// A store file seen from its database's first byte on, held in memory (and written through
/// when `persist`).
#[derive(Debug)]
struct Region {
    file: std::fs::File,
    region: u64,
    persist: bool,
    db: std::sync::Mutex<Vec<u8>>,
}

impl redb::StorageBackend for Region {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.db.lock().unwrap().len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let db = self.db.lock().unwrap();
        let src = db
            .get(offset as usize..offset as usize + out.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.db.lock().unwrap().resize(len as usize, 0);
        if self.persist {
            self.file.set_len(self.region + len)?;
        }
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut db = self.db.lock().unwrap();
        let end = offset as usize + data.len();
        if db.len() < end {
            db.resize(end, 0);
        }
        db[offset as usize..end].copy_from_slice(data);
        if self.persist {
            std::os::unix::fs::FileExt::write_all_at(&self.file, data, self.region + offset)?;
        }
        Ok(())
    }
}

/// Flips the byte `at` bytes into every copy of `needle` in the file at `path` (the store may
/// hold stale copies of a page, in free space or in its journal: all of them go). Returns how
/// many copies there were.
pub fn damage_file(path: &std::path::Path, needle: &[u8], at: usize) -> usize {
    let mut raw = std::fs::read(path).unwrap();
    let hits: Vec<usize> = raw
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    for &i in &hits {
        raw[i + at] ^= 0xFF;
    }
    std::fs::write(path, &raw).unwrap();
    hits.len()
}
