//! `recfiles::transfer`: a store dumped and imported into another comes back exactly (ids,
//! revisions, timestamps, PIDs, tags, delete markers, content), and an import that cannot be
//! exact (damaged content, ids already held, an inconsistent set) changes nothing.

use recfiles::transfer::{self, FileDump, ImportSet};
use recfiles::{Error, RecordOptions, Store, StoreBuilder};
use serde_json::json;
use std::collections::HashMap;
use std::io::{Cursor, Read};

/// Stores whose staging batch is small, so content past 64 KiB takes the staged path.
fn small_batch_store() -> Store {
    StoreBuilder::new()
        .md5(true)
        .chunk_size(16 * 1024)
        .staging_batch(64 * 1024)
        .in_memory()
        .unwrap()
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A store with a bit of everything a dump must carry.
fn populated() -> Store {
    let store = small_batch_store();
    store
        .register_schema("https://example.org/s.json", &json!({"type": "object"}))
        .unwrap();
    // A record with files over several revisions, a PID, a removed version and a tag.
    let mut rec = store.create_record(json!({"title": "one"})).unwrap();
    store.mint_recid(rec.id()).unwrap();
    store.create_pid("doi", "10.1/x", rec.id()).unwrap();
    store
        .update_files(&mut rec, |f| f.put("a.txt", &b"first"[..]).map(|_| ()))
        .unwrap();
    store
        .update_files(&mut rec, |f| {
            f.put("a.txt", &b"second"[..])?;
            f.put("dir/big.bin", Cursor::new(bytes(1, 200_000)))?;
            f.set_metadata("a.txt", "kind", "text")
        })
        .unwrap();
    let bucket = rec.bucket_id().unwrap();
    let a = store.object_versions(bucket, "a.txt").unwrap();
    store.set_object_tag(a[0].version_id, "note", "v2").unwrap();
    // The oldest version of a.txt, removed: its key's versions now start at sequence 1.
    store.remove_version(a[1].version_id).unwrap();
    rec.body_mut().insert("title".into(), json!("one, edited"));
    store.commit_record(&mut rec).unwrap();
    // A soft-deleted record, and one without a bucket.
    let mut deleted = store.create_record(json!({"title": "two"})).unwrap();
    store.delete_record(&mut deleted).unwrap();
    store
        .create_record_with(json!({"plain": true}), &RecordOptions::without_bucket())
        .unwrap();
    // A bucket of its own with a tag, a delete marker and content shared with the record.
    let b = store
        .create_bucket(&recfiles::BucketOptions::default())
        .unwrap();
    store
        .write(|tx| tx.set_bucket_tag(b.id, "owner", "me"))
        .unwrap();
    let opts = recfiles::PutOptions::default();
    store
        .put_object(b.id, "copy.txt", &b"second"[..], &opts)
        .unwrap();
    store.put_object(b.id, "x", &b"x"[..], &opts).unwrap();
    store.delete_object(b.id, "x").unwrap();
    store
}

/// Everything the store holds, as dumps.
fn dump_all(store: &Store) -> ImportSet {
    let tx = store.snapshot().unwrap();
    let mut set = ImportSet {
        store: transfer::dump_store(&tx).unwrap(),
        ..ImportSet::default()
    };
    for id in transfer::record_ids(&tx).unwrap() {
        set.records
            .push(transfer::dump_record(&tx, id).unwrap().unwrap());
    }
    for id in transfer::bucket_ids(&tx).unwrap() {
        set.buckets
            .push(transfer::dump_bucket(&tx, id).unwrap().unwrap());
    }
    set
}

/// Each file's content, read from `store`.
fn contents(store: &Store, set: &ImportSet) -> HashMap<recfiles::FileId, Vec<u8>> {
    let mut out = HashMap::new();
    for b in &set.buckets {
        for v in &b.versions {
            if let Some(f) = &v.file {
                let mut buf = Vec::new();
                store
                    .open_file(f.id)
                    .unwrap()
                    .read_to_end(&mut buf)
                    .unwrap();
                out.insert(f.id, buf);
            }
        }
    }
    out
}

fn import_from(
    target: &Store,
    set: &ImportSet,
    data: &HashMap<recfiles::FileId, Vec<u8>>,
) -> recfiles::Result<transfer::ImportReport> {
    transfer::import(target, set, &mut |f: &FileDump| {
        Ok(Box::new(Cursor::new(data[&f.id].clone())))
    })
}

fn assert_same(a: &ImportSet, b: &ImportSet) {
    assert_eq!(a.records, b.records);
    assert_eq!(a.buckets, b.buckets);
    assert_eq!(a.store, b.store);
}

#[test]
fn an_imported_dump_dumps_the_same_and_checks_clean() {
    let source = populated();
    let set = dump_all(&source);
    let data = contents(&source, &set);
    assert!(set.records.iter().any(|r| r.deleted));
    assert!(
        set.buckets
            .iter()
            .flat_map(|b| &b.versions)
            .any(|v| v.file.is_none())
    );

    let target = small_batch_store();
    let report = import_from(&target, &set, &data).unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(report.files, data.len());
    assert_same(&dump_all(&target), &set);
    assert_eq!(contents(&target, &set), data);
    assert!(source.check().unwrap().is_ok());
    let check = target.check().unwrap();
    assert!(check.is_ok(), "{check:?}");
    // The imported store works as a store: its record's files are there and writable.
    let rec = target.resolve_pid("recid", "1").unwrap();
    let files = target.files_of(&rec).unwrap().unwrap();
    assert_eq!(files.get("a.txt").unwrap().get("kind"), Some(json!("text")));
    let mut rec = rec;
    target
        .update_files(&mut rec, |f| f.put("new.txt", &b"new"[..]).map(|_| ()))
        .unwrap();
    assert!(target.check().unwrap().is_ok());
}

#[test]
fn content_that_does_not_match_its_dump_refuses_the_whole_import() {
    let source = populated();
    let set = dump_all(&source);
    let clean = contents(&source, &set);
    // Once a small file (written inside the transaction), once a large one (staged first).
    for wanted_len in [6, 200_000] {
        let mut data = clean.clone();
        let (_, bytes) = data
            .iter_mut()
            .find(|(_, b)| b.len() == wanted_len)
            .unwrap();
        bytes[wanted_len / 2] ^= 1;
        let target = small_batch_store();
        let err = import_from(&target, &set, &data).unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
        let stats = target.stats().unwrap();
        assert_eq!((stats.records, stats.buckets, stats.files), (0, 0, 0));
        assert_eq!(stats.chunks, 0, "staged chunks were left behind");
        assert!(target.check().unwrap().is_ok());
    }
}

#[test]
fn a_reader_error_refuses_the_whole_import() {
    let source = populated();
    let set = dump_all(&source);
    let target = small_batch_store();
    let err = transfer::import(&target, &set, &mut |_f: &FileDump| {
        Err(std::io::Error::other("disk gone"))
    })
    .unwrap_err();
    assert!(matches!(err, Error::UploadStream { .. }), "{err:?}");
    assert_eq!(target.stats().unwrap().records, 0);
}

#[test]
fn an_import_refuses_ids_the_store_already_holds_and_changes_nothing() {
    let source = populated();
    let set = dump_all(&source);
    let data = contents(&source, &set);
    let err = import_from(&source, &set, &data).unwrap_err();
    assert!(matches!(err, Error::ImportConflict { .. }), "{err:?}");
    assert_same(&dump_all(&source), &set);

    // Content the store holds already (and deduplicates: over 16 KiB), under another file id,
    // clashes too.
    let target = small_batch_store();
    let b = target
        .create_bucket(&recfiles::BucketOptions::default())
        .unwrap();
    target
        .put_object(
            b.id,
            "k",
            Cursor::new(bytes(1, 200_000)),
            &recfiles::PutOptions::default(),
        )
        .unwrap();
    let err = import_from(&target, &set, &data).unwrap_err();
    assert!(
        matches!(&err, Error::ImportConflict { what, .. } if what.contains("content")),
        "{err:?}"
    );
    assert_eq!(target.stats().unwrap().records, 0);
}

#[test]
fn an_inconsistent_set_is_refused_before_anything_is_read() {
    let source = populated();
    let mut set = dump_all(&source);
    // A record whose bucket is left out of the set.
    set.buckets.retain(|b| b.record.is_none());
    let target = small_batch_store();
    let err = transfer::import(&target, &set, &mut |_f: &FileDump| {
        panic!("content read before the set was validated")
    })
    .unwrap_err();
    assert!(matches!(err, Error::InvalidImport { .. }), "{err:?}");

    // A deleted flag that disagrees with the last revision.
    let mut set = dump_all(&source);
    set.records[0].deleted = !set.records[0].deleted;
    let err = transfer::import(&target, &set, &mut |_f: &FileDump| {
        panic!("content read before the set was validated")
    })
    .unwrap_err();
    assert!(matches!(err, Error::InvalidImport { .. }), "{err:?}");

    // One PID given to two records.
    let mut set = dump_all(&source);
    let pid = set.records[0].pids[0].clone();
    set.records[1].pids.push(pid);
    let err = transfer::import(&target, &set, &mut |_f: &FileDump| {
        panic!("content read before the set was validated")
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidImport { reason } if reason.contains("twice")),
        "{err:?}"
    );
    assert_eq!(target.stats().unwrap().buckets, 0);
}
