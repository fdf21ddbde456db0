//! Maintenance: the integrity check notices broken invariants; compaction reclaims space.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{Invariant, Subject};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

const VERSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("versions");
const CHUNK_INDEX: TableDefinition<[u8; 32], (u128, u64)> = TableDefinition::new("chunk_index");
const FILES: TableDefinition<u128, &[u8]> = TableDefinition::new("files");
const OBJECTS: TableDefinition<(u128, &str, u64), &[u8]> = TableDefinition::new("objects");
const FILES_BY_HASH: TableDefinition<[u8; 32], u128> = TableDefinition::new("files_by_hash");

fn tamper(path: &std::path::Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = common::raw_db_mut(path);
    let tx = db.begin_write().unwrap();
    f(&tx);
    tx.commit().unwrap();
}

#[test]
fn check_reports_a_version_missing_from_the_version_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let v = {
        let store = Store::open(&path).unwrap();
        let b = bucket(&store);
        let v = put(&store, b.id, "k", b"v");
        assert_consistent(&store);
        v
    };
    tamper(&path, |tx| {
        tx.open_table(VERSIONS)
            .unwrap()
            .remove(v.version_id.uuid().as_u128())
            .unwrap();
    });
    let report = Store::open(&path).unwrap().check().unwrap();
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("version index rows for")
                && p.invariant == Invariant::VersionIndex),
        "{report:?}"
    );
}

#[test]
fn check_reports_a_wrong_chunk_reference_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let open = || Store::builder().chunk_size(4096).open(&path).unwrap();
    let data = bytes(1, 5000);
    drop({
        let store = open();
        let b = bucket(&store);
        put(&store, b.id, "k", &data);
        store
    });
    let h = *blake3::hash(&data[..4096]).as_bytes();
    tamper(&path, |tx| {
        let mut index = tx.open_table(CHUNK_INDEX).unwrap();
        let (id, _) = index.get(h).unwrap().unwrap().value();
        index.insert(h, (id, 5)).unwrap();
    });
    let store = open();
    let report = store.check().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("counts 5 references, has 1")
                && p.invariant == Invariant::ChunkReferences
                && p.concerns(&Subject::ChunkHash(h))),
        "{report:?}"
    );
    // The format's invariants alone find the same, also while a snapshot is held open (which
    // keeps the engine's own check from running).
    let held = store.snapshot().unwrap();
    let format = store.check_invariants().unwrap();
    assert_eq!(format.problems, report.problems);
    assert_eq!(format.engine_ok, None);
    assert!(!format.is_ok());
    drop(held);
}

/// Small inline files stay out of the dedup index (format 6): an entry naming one is reported.
#[test]
fn check_reports_a_small_inline_file_in_the_dedup_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let file = {
        let store = Store::open(&path).unwrap();
        let b = bucket(&store);
        let file = put(&store, b.id, "k", b"twelve bytes").file_id.unwrap();
        assert_consistent(&store);
        file
    };
    tamper(&path, |tx| {
        let mut index = tx.open_table(FILES_BY_HASH).unwrap();
        assert!(index.is_empty().unwrap());
        let hash = *blake3::hash(b"twelve bytes").as_bytes();
        index.insert(hash, file.uuid().as_u128()).unwrap();
    });
    let report = Store::open(&path).unwrap().check().unwrap();
    let dedup: Vec<_> = report.breaking(Invariant::DedupIndex).collect();
    assert_eq!(dedup.len(), 1, "{report:?}");
    assert!(dedup[0].message.contains("small inline file"), "{report:?}");
    assert_eq!(dedup[0].subjects, [Subject::File(file)]);
}

#[test]
fn check_reports_inline_content_that_does_not_match_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let file = {
        let store = Store::open(&path).unwrap();
        let b = bucket(&store);
        put(&store, b.id, "k", b"twelve bytes").file_id.unwrap()
    };
    // The inline content is the end of the file's row: cut it short.
    tamper(&path, |tx| {
        let mut files = tx.open_table(FILES).unwrap();
        let value = files
            .get(file.uuid().as_u128())
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        assert!(value.ends_with(b"twelve bytes"));
        let short = &value[..value.len() - "twelve bytes".len() + "short".len()];
        files.insert(file.uuid().as_u128(), short).unwrap();
    });
    let report = Store::open(&path).unwrap().check().unwrap();
    let layout: Vec<_> = report.breaking(Invariant::ChunkLayout).collect();
    assert_eq!(layout.len(), 1, "{report:?}");
    assert!(layout[0].message.contains("do not add up to its size 12"));
    assert_eq!(layout[0].subjects, [Subject::File(file)]);
}

#[test]
fn check_reports_a_version_whose_copy_of_its_file_digest_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let b = {
        let store = Store::open(&path).unwrap();
        let b = bucket(&store);
        put(&store, b.id, "k", b"v");
        assert_consistent(&store);
        b.id
    };
    // The version row keeps the file's blake3 as 32 raw bytes: change one of them.
    tamper(&path, |tx| {
        let mut objects = tx.open_table(OBJECTS).unwrap();
        let at = (b.uuid().as_u128(), "k", 0);
        let mut row = objects.get(at).unwrap().unwrap().value().to_vec();
        let digest = blake3::hash(b"v");
        let i = row
            .windows(32)
            .position(|w| w == digest.as_bytes())
            .expect("the row holds the digest");
        row[i] ^= 1;
        objects.insert(at, row.as_slice()).unwrap();
    });
    let report = Store::open(&path).unwrap().check().unwrap();
    assert!(
        report.problems.iter().any(|p| p
            .message
            .contains("keeps a size and checksum that are not those of its file")
            && p.invariant == Invariant::FileReferences),
        "{report:?}"
    );
}

#[test]
fn compaction_gives_back_the_space_of_removed_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::builder()
        .chunk_size(64 * 1024 - 64)
        .open(&path)
        .unwrap();
    let b = bucket(&store);
    let v = put(&store, b.id, "big", &bytes(1, 12 << 20));
    put(&store, b.id, "small", b"kept");
    let full = std::fs::metadata(&path).unwrap().len();
    store.remove_version(v.version_id).unwrap();
    while store.compact().unwrap() {}
    let compacted = std::fs::metadata(&path).unwrap().len();
    assert!(compacted < full / 2, "{full} -> {compacted}");
    assert_eq!(read_all(&store, b.id, "small"), b"kept");
    assert_consistent(&store);
}

/// Small chunks and parts, so a few KiB exercise chunked content and multipart uploads.
fn small() -> recfiles::StoreBuilder {
    Store::builder()
        .chunk_size(1024)
        .multipart_limits(recfiles::MultipartLimits {
            min_part_size: 1024,
            max_part_size: 4096,
            max_parts: 4,
            ..recfiles::MultipartLimits::default()
        })
}

/// Fills a store with one of everything: inline and chunked content, tags, a multipart upload
/// with a part, a staged-then-deduplicated file, a record with its bucket, files and a PID, a
/// schema, a location.
fn fill(store: &Store) -> (BucketId, RecordId) {
    let b = bucket(store);
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let v = put(store, b.id, "small", b"small");
    put(store, b.id, "big", &big);
    put(store, b.id, "big-again", &big);
    store.set_object_tag(v.version_id, "t", "v").unwrap();
    store
        .write(|tx| tx.set_bucket_tag(b.id, "bt", "bv"))
        .unwrap();
    let u = store.init_multipart(b.id, "mp", 2048, 1024).unwrap();
    store.upload_part(u.id, 0, &big[..1024]).unwrap();
    store
        .write(|tx| tx.create_location("elsewhere", "file:///x", false))
        .unwrap();
    let url = "https://example.org/schemas/s.json";
    store
        .register_schema(url, &serde_json::json!({"type": "object"}))
        .unwrap();
    let mut rec = store
        .create_record(serde_json::json!({"$schema": url, "title": "t"}))
        .unwrap();
    store
        .update_files(&mut rec, |f| f.put("f.txt", &big[..]).map(drop))
        .unwrap();
    store.create_pid("doi", "10.1/x", rec.id()).unwrap();
    (b.id, rec.id())
}

#[test]
fn clear_leaves_an_empty_store_that_works_like_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let new_tables = {
        let _ = small().open(&path).unwrap();
        let db = common::raw_db(&path);
        let read = db.begin_read().unwrap();
        let mut rows = std::collections::BTreeMap::new();
        for handle in read.list_tables().unwrap() {
            let t = read.open_untyped_table(handle).unwrap();
            rows.insert(t.name().to_string(), t.len().unwrap());
        }
        rows
    };
    let store = small().open(&path).unwrap();
    let (b, r) = fill(&store);
    assert_consistent(&store);
    store.write(|tx| tx.clear()).unwrap();
    assert_consistent(&store);
    assert!(store.read(|s| s.buckets()).unwrap().is_empty());
    assert!(store.read(|s| s.bucket_with_deleted(b)).unwrap().is_none());
    assert!(store.read(|s| s.record_with_deleted(r)).unwrap().is_none());
    assert!(store.read(|s| s.schema_urls()).unwrap().is_empty());
    assert!(store.read(|s| s.pid("doi", "10.1/x")).unwrap().is_none());
    let locations = store.read(|s| s.locations()).unwrap();
    assert_eq!(locations.len(), 1, "{locations:?}");
    assert!(locations[0].default);
    // It works as a new store: the same things can be made again, under the same names.
    fill(&store);
    assert_consistent(&store);
    store.write(|tx| tx.clear()).unwrap();
    drop(store);
    // Table for table, row for row, what a new store holds (meta and the default location).
    let store = Store::open(&path).unwrap();
    assert_consistent(&store);
    drop(store);
    let db = common::raw_db(&path);
    let read = db.begin_read().unwrap();
    for handle in read.list_tables().unwrap() {
        let t = read.open_untyped_table(handle).unwrap();
        let name = t.name().to_string();
        assert_eq!(
            Some(&t.len().unwrap()),
            new_tables.get(&name),
            "rows of {name} after clear"
        );
    }
}

#[test]
fn a_failed_clear_changes_nothing() {
    let store = small().in_memory().unwrap();
    let (b, r) = fill(&store);
    let got = store.write(|tx| {
        tx.clear()?;
        Err::<(), _>(recfiles::Error::InvalidOperation {
            reason: "roll back",
        })
    });
    assert!(got.is_err());
    assert!(store.read(|s| s.bucket(b)).unwrap().is_some());
    assert!(store.read(|s| s.record(r)).unwrap().is_some());
    assert_consistent(&store);
}
