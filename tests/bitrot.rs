//! Bit rot: bytes flipped inside the store file where a chunk's content lies are caught. Fixity
//! names every damaged file (including files that share the damaged chunk through dedup),
//! reading the damaged range fails with a typed corruption error and never returns wrong
//! bytes, and undamaged content keeps reading fine.

mod common;

use common::content;
use recfiles::prelude::*;
use recfiles::{Error, FileId};
use std::io::{ErrorKind, Read};
use std::path::Path;

const CHUNK: usize = 4096;

fn builder() -> StoreBuilder {
    Store::builder().chunk_size(CHUNK).staging_batch(4 * CHUNK)
}

/// Flips one byte in every copy of `needle` in the file (the engine may hold stale copies of a
/// page in free space; all of them go). Returns how many copies were damaged.
fn flip(path: &Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = Vec::new();
    let mut from = 0;
    while let Some(i) = bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle)
    {
        hits.push(from + i);
        from += i + 1;
    }
    for &at in &hits {
        bytes[at + needle.len() / 2] ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
    hits.len()
}

fn read_all(store: &Store, file: FileId) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    store.open_file(file).unwrap().read_to_end(&mut out)?;
    Ok(out)
}

struct Files {
    victim: FileId,
    sharer: FileId,
    bystander: FileId,
    big: FileId,
}

/// victim: 5 chunks (chunk 2 gets damaged); sharer: starts with victim's chunk 2, so the chunk
/// is stored once for both; bystander: unrelated; big: staged, 40 chunks.
fn populate(path: &Path) -> (Files, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let store = builder().open(path).unwrap();
    let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
    let victim = content(1, 5 * CHUNK);
    let mut sharer = victim[2 * CHUNK..3 * CHUNK].to_vec();
    sharer.extend(content(2, 1000));
    let bystander = content(3, 3 * CHUNK + 5);
    let big = content(4, 40 * CHUNK);
    let put = |k: &str, d: &[u8]| {
        store
            .put_object(b, k, d, &PutOptions::default())
            .unwrap()
            .file_id
            .unwrap()
    };
    let files = Files {
        victim: put("victim", &victim),
        sharer: put("sharer", &sharer),
        bystander: put("bystander", &bystander),
        big: put("big", &big),
    };
    (files, victim, sharer, bystander, big)
}

#[test]
fn a_flipped_byte_in_a_chunk_is_named_by_fixity_and_never_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot.redb");
    let (f, victim, sharer, bystander, big) = populate(&path);
    let damaged = flip(&path, &victim[2 * CHUNK + 1000..2 * CHUNK + 1064]);
    assert!(damaged >= 1, "the chunk's bytes must lie in the file");

    let store = builder().open(&path).unwrap();
    // Fixity names exactly the files holding the damaged chunk.
    assert!(!store.verify_file(f.victim).unwrap());
    assert!(store.verify_file(f.bystander).unwrap());
    let mut report = store.verify_all().unwrap();
    report.damaged.sort();
    let mut want = vec![f.victim, f.sharer];
    want.sort();
    assert_eq!(report.damaged, want, "{report:?}");
    assert_eq!(report.checked, 4);
    assert_eq!(
        store.file(f.victim).unwrap().unwrap().last_check,
        Some(false)
    );
    assert_eq!(store.file(f.big).unwrap().unwrap().last_check, Some(true));

    // Reading the damaged chunk fails, typed; nothing wrong is ever returned.
    let err = store
        .open_file(f.victim)
        .unwrap()
        .read_range(2 * CHUNK as u64 + 10, 100)
        .unwrap_err();
    assert!(
        matches!(err, Error::Corruption { file: Some(id), .. } if id == f.victim),
        "{err}"
    );
    let err = read_all(&store, f.victim).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    let err = read_all(&store, f.sharer).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");

    // The undamaged chunks of the damaged file, and every other file, read fine.
    let mut r = store.open_file(f.victim).unwrap();
    assert_eq!(r.read_range(0, 2 * CHUNK).unwrap(), &victim[..2 * CHUNK]);
    assert_eq!(
        r.read_range(3 * CHUNK as u64, 2 * CHUNK).unwrap(),
        &victim[3 * CHUNK..]
    );
    assert_eq!(
        store
            .open_file(f.sharer)
            .unwrap()
            .read_range(CHUNK as u64, 1000)
            .unwrap(),
        &sharer[CHUNK..]
    );
    assert_eq!(read_all(&store, f.bystander).unwrap(), bystander);
    assert_eq!(read_all(&store, f.big).unwrap(), big);
}

#[test]
fn bit_rot_in_a_staged_file_is_found_and_the_store_recovers_once_it_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot.redb");
    let (f, _victim, _sharer, bystander, big) = populate(&path);
    // Damage two chunks far apart in the staged file.
    assert!(flip(&path, &big[5 * CHUNK + 7..5 * CHUNK + 71]) >= 1);
    assert!(flip(&path, &big[33 * CHUNK + 7..33 * CHUNK + 71]) >= 1);

    let store = builder().open(&path).unwrap();
    assert_eq!(store.verify_all().unwrap().damaged, vec![f.big]);
    let mut r = store.open_file(f.big).unwrap();
    assert!(matches!(
        r.read_range(5 * CHUNK as u64, 1),
        Err(Error::Corruption { .. })
    ));
    assert!(matches!(
        r.read_range(33 * CHUNK as u64 + 4000, 200),
        Err(Error::Corruption { .. })
    ));
    assert_eq!(
        r.read_range(6 * CHUNK as u64, CHUNK).unwrap(),
        &big[6 * CHUNK..7 * CHUNK]
    );

    // The damaged object can be removed; the store is whole again and takes new writes.
    let b = store.buckets().unwrap()[0].id;
    let v = store.object(b, "big").unwrap().unwrap();
    store.remove_version(v.version_id).unwrap();
    assert!(store.file(f.big).unwrap().is_none());
    store
        .put_object(b, "big", &big[..], &PutOptions::default())
        .unwrap();
    let report = store.verify_all().unwrap();
    assert!(report.damaged.is_empty(), "{report:?}");
    assert!(store.check().unwrap().problems.is_empty());
    let mut again = Vec::new();
    store
        .open_object(b, "big")
        .unwrap()
        .read_to_end(&mut again)
        .unwrap();
    assert_eq!(again, big);
    assert_eq!(read_all(&store, f.bystander).unwrap(), bystander);
}

#[test]
fn a_flipped_byte_in_inline_content_is_caught_like_one_in_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rot-inline.redb");
    let small = content(5, 1000);
    let other = content(6, 700);
    let (victim, bystander) = {
        let store = builder().open(&path).unwrap();
        let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
        let put = |k: &str, d: &[u8]| {
            store
                .put_object(b, k, d, &PutOptions::default())
                .unwrap()
                .file_id
                .unwrap()
        };
        (put("small", &small), put("other", &other))
    };
    assert!(flip(&path, &small[400..464]) >= 1);

    let store = builder().open(&path).unwrap();
    assert!(!store.verify_file(victim).unwrap());
    assert!(store.verify_file(bystander).unwrap());
    let err = store
        .open_file(victim)
        .unwrap()
        .read_range(0, 10)
        .unwrap_err();
    assert!(
        matches!(err, Error::Corruption { file: Some(id), .. } if id == victim),
        "{err}"
    );
    assert_eq!(
        read_all(&store, victim).unwrap_err().kind(),
        ErrorKind::InvalidData
    );
    assert_eq!(read_all(&store, bystander).unwrap(), other);
}
