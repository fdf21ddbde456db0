//! Content addressing: identical bytes are stored once, and freed with their last reference.

mod common;
use common::*;
use recfiles::prelude::*;
use std::path::Path;

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn identical_content_shares_one_file() {
    let store = small_store();
    let b = bucket(&store);
    let data = bytes(7, 50_000);
    let v1 = put(&store, b.id, "a", &data);
    let v2 = put(&store, b.id, "b", &data);
    let big = store
        .put_object(b.id, "c", &data[..], &PutOptions::default())
        .unwrap();
    assert_eq!(v1.file_id, v2.file_id);
    assert_eq!(v1.file_id, big.file_id);
    assert_eq!(
        store.file(v1.file_id.unwrap()).unwrap().unwrap().references,
        3
    );
    // Every copy counts in the bucket even though the bytes are stored once.
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 150_000);
    assert_consistent(&store);
}

#[test]
fn content_is_freed_when_its_last_reference_goes() {
    let store = small_store();
    let b = bucket(&store);
    let data = bytes(8, 30_000);
    let v1 = put(&store, b.id, "a", &data);
    let v2 = put(&store, b.id, "b", &data);
    let file = v1.file_id.unwrap();
    store.remove_version(v1.version_id).unwrap();
    assert_eq!(store.file(file).unwrap().unwrap().references, 1);
    store.remove_version(v2.version_id).unwrap();
    assert!(store.file(file).unwrap().is_none());
    assert_consistent(&store);
}

#[test]
fn a_second_put_of_the_same_large_content_barely_grows_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Store::builder()
        .chunk_size(64 * 1024 - 64)
        .staging_batch(1 << 20)
        .open(&path)
        .unwrap();
    let b = bucket(&store);
    let data = bytes(9, 8 << 20);
    put(&store, b.id, "first", &data);
    let after_first = file_len(&path);
    put(&store, b.id, "second", &data);
    let after_second = file_len(&path);
    assert!(after_first > 8 << 20);
    assert!(
        after_second - after_first < (8 << 20) / 100,
        "grew by {} bytes",
        after_second - after_first
    );
    assert_eq!(read_all(&store, b.id, "second"), data);
    assert_consistent(&store);
}

#[test]
fn chunks_shared_between_different_files_are_kept_until_both_go() {
    let store = small_store();
    let b = bucket(&store);
    let common_part = bytes(10, 4096 * 3);
    let mut one = common_part.clone();
    one.extend_from_slice(b"tail one");
    let mut two = common_part;
    two.extend_from_slice(b"tail two");
    let v1 = put(&store, b.id, "one", &one);
    let v2 = put(&store, b.id, "two", &two);
    assert_ne!(v1.file_id, v2.file_id);
    store.remove_version(v1.version_id).unwrap();
    assert_eq!(read_all(&store, b.id, "two"), two);
    store.remove_version(v2.version_id).unwrap();
    assert_consistent(&store);
}

/// Rows of a table in a closed store file, read with redb directly.
fn rows(path: &Path, table: &str) -> u64 {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let db = common::raw_db(path);
    let tx = db.begin_read().unwrap();
    let handle = tx
        .list_tables()
        .unwrap()
        .find(|t| t.name() == table)
        .unwrap_or_else(|| panic!("no table {table}"));
    let t = tx.open_untyped_table(handle).unwrap();
    t.len().unwrap()
}

#[test]
fn content_that_fits_in_one_chunk_is_stored_inline_and_freed_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inline.redb");
    let chunk = 4096;
    let open = || Store::builder().chunk_size(chunk).open(&path).unwrap();
    let one = bytes(11, 1000);
    let exact = bytes(12, chunk);
    let two = bytes(13, chunk + 1);
    let (b, first) = {
        let store = open();
        let b = bucket(&store).id;
        let first = put(&store, b, "one", &one);
        put(&store, b, "one again", &one);
        put(&store, b, "exact", &exact);
        put(&store, b, "two", &two);
        put(&store, b, "empty", b"");
        assert_consistent(&store);
        (b, first)
    };
    // One file per put (inline content of at most 16 KiB is not deduplicated), and only the
    // content longer than a chunk has chunks: the small contents live inline, in their file
    // rows (the consistency check above verified that each file's bytes add up to its size).
    assert_eq!(rows(&path, "files"), 5);
    assert_eq!(rows(&path, "chunks"), 2);
    assert_eq!(rows(&path, "file_chunks"), 2);

    let store = open();
    assert_eq!(read_all(&store, b, "one"), one);
    assert_eq!(read_all(&store, b, "exact"), exact);
    assert_eq!(read_all(&store, b, "two"), two);
    assert_eq!(read_all(&store, b, "empty"), b"");
    let mut r = store.open_file(first.file_id.unwrap()).unwrap();
    assert_eq!(r.read_range(990, 100).unwrap(), &one[990..]);
    assert_eq!(r.read_range(1000, 10).unwrap(), b"");
    assert!(store.verify_file(first.file_id.unwrap()).unwrap());

    // The last reference frees the file row and its inline content.
    let again = store.object(b, "one again").unwrap().unwrap();
    store.remove_version(first.version_id).unwrap();
    store.remove_version(again.version_id).unwrap();
    assert_consistent(&store);
    drop(store);
    assert_eq!(rows(&path, "files"), 3);
    assert_eq!(rows(&path, "chunks"), 2);
}

/// What is deduplicated since format 6: inline content (one chunk at most) of up to 16 KiB is
/// stored once per put, with no dedup index entry; larger content, inline or chunked, is
/// stored once however many versions hold it; a copy of a version always shares its file.
#[test]
fn small_inline_content_is_stored_per_put_and_larger_content_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.redb");
    let (small_files, limit_files, larger_files) = {
        let store = Store::open(&path).unwrap();
        let (a, b) = (bucket(&store).id, bucket(&store).id);
        let file_of = |v: recfiles::ObjectVersion| v.file_id.unwrap();
        let small = bytes(21, 1024);
        let limit = bytes(22, 16 * 1024);
        let larger = bytes(23, 16 * 1024 + 1);
        let small_files = [
            file_of(put(&store, a, "small", &small)),
            file_of(put(&store, b, "small", &small)),
        ];
        let limit_files = [
            file_of(put(&store, a, "limit", &limit)),
            file_of(put(&store, b, "limit", &limit)),
        ];
        let larger_files = [
            file_of(put(&store, a, "larger", &larger)),
            file_of(put(&store, b, "larger", &larger)),
        ];
        let copy = store
            .copy_version(
                store.object(a, "small").unwrap().unwrap().version_id,
                b,
                "copy",
            )
            .unwrap();
        assert_eq!(copy.file_id, Some(small_files[0]));
        assert_eq!(read_all(&store, b, "small"), small);
        assert_consistent(&store);
        (small_files, limit_files, larger_files)
    };
    assert_ne!(small_files[0], small_files[1]);
    assert_ne!(limit_files[0], limit_files[1]);
    assert_eq!(larger_files[0], larger_files[1]);
    // Only the larger content is in the dedup index.
    assert_eq!(rows(&path, "files"), 5);
    assert_eq!(rows(&path, "files_by_hash"), 1);
}
