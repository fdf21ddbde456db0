//! Bucket lifecycle: lock, soft delete, hard remove, snapshot and sync.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{Error, FilesQuery, SyncChange};

#[test]
fn a_snapshot_copies_live_heads_with_new_versions_and_the_same_files() {
    let store = small_store();
    let b = store
        .create_bucket(&BucketOptions {
            quota_size: Some(1000),
            max_file_size: Some(100),
            ..BucketOptions::default()
        })
        .unwrap();
    let a = put(&store, b.id, "a", b"aaa");
    put(&store, b.id, "b", b"bb");
    store.delete_object(b.id, "b").unwrap();
    store.set_object_tag(a.version_id, "t", "v").unwrap();
    let snap = store.snapshot_bucket(b.id, false).unwrap();
    let heads = store
        .list_objects(snap.id, &ListOptions::default())
        .unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].key, "a");
    assert_ne!(heads[0].version_id, a.version_id);
    assert_eq!(heads[0].file_id, a.file_id);
    assert_eq!(store.object_tags(heads[0].version_id).unwrap()["t"], "v");
    assert_eq!(snap.size, 3);
    assert_eq!(snap.quota_size, Some(1000));
    assert_eq!(snap.max_file_size, Some(100));
    assert!(!snap.locked);
    assert_consistent(&store);
}

#[test]
fn a_snapshot_can_be_locked() {
    let store = small_store();
    let b = bucket(&store);
    put(&store, b.id, "a", b"aaa");
    let snap = store.snapshot_bucket(b.id, true).unwrap();
    assert!(snap.locked);
    assert!(matches!(
        store.put_object(snap.id, "x", &b"x"[..], &PutOptions::default()),
        Err(Error::BucketLocked { bucket }) if bucket == snap.id
    ));
}

#[test]
fn a_deleted_bucket_cannot_be_snapshotted_or_synced() {
    let store = small_store();
    let b = bucket(&store);
    let other = bucket(&store);
    assert!(store.delete_bucket(b.id).unwrap());
    assert!(matches!(
        store.snapshot_bucket(b.id, false),
        Err(Error::InvalidOperation { .. })
    ));
    assert!(matches!(
        store.sync_bucket(b.id, other.id, false),
        Err(Error::InvalidOperation { .. })
    ));
}

#[test]
fn sync_copies_new_and_changed_keys_deletes_removed_ones_and_skips_identical() {
    let store = small_store();
    let src = bucket(&store);
    let dst = bucket(&store);
    put(&store, src.id, "same", b"same");
    put(&store, dst.id, "same", b"same");
    put(&store, src.id, "changed", b"new");
    put(&store, dst.id, "changed", b"old");
    put(&store, src.id, "new", b"new");
    put(&store, src.id, "gone", b"x");
    put(&store, dst.id, "gone", b"x");
    store.delete_object(src.id, "gone").unwrap();
    put(&store, dst.id, "extra", b"e");
    let changes = store.sync_bucket(src.id, dst.id, false).unwrap();
    let summary: Vec<String> = changes
        .iter()
        .map(|c| match c {
            SyncChange::Added(v) => format!("add {}", v.key),
            SyncChange::Deleted(k) => format!("delete {k}"),
        })
        .collect();
    assert_eq!(summary, ["add changed", "delete gone", "add new"]);
    assert_eq!(read_all(&store, dst.id, "changed"), b"new");
    assert!(store.object(dst.id, "gone").unwrap().is_none());
    assert!(store.object(dst.id, "extra").unwrap().is_some());
    assert_consistent(&store);
}

#[test]
fn sync_with_delete_extras_deletes_keys_missing_from_the_source() {
    let store = small_store();
    let src = bucket(&store);
    let dst = bucket(&store);
    put(&store, src.id, "a", b"a");
    put(&store, dst.id, "extra", b"e");
    let changes = store.sync_bucket(src.id, dst.id, true).unwrap();
    assert!(changes.contains(&SyncChange::Deleted("extra".into())));
    assert!(store.object(dst.id, "extra").unwrap().is_none());
    // A second sync has nothing left to do.
    assert!(store.sync_bucket(src.id, dst.id, true).unwrap().is_empty());
}

#[test]
fn sync_into_a_locked_bucket_is_refused() {
    let store = small_store();
    let src = bucket(&store);
    let dst = bucket(&store);
    put(&store, src.id, "a", b"a");
    store.set_bucket_locked(dst.id, true).unwrap();
    assert!(matches!(
        store.sync_bucket(src.id, dst.id, false),
        Err(Error::BucketLocked { .. })
    ));
    assert!(
        store
            .list_objects(dst.id, &ListOptions::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_soft_deleted_bucket_is_hidden_but_keeps_its_objects() {
    let store = small_store();
    let b = bucket(&store);
    put(&store, b.id, "a", b"a");
    assert!(store.delete_bucket(b.id).unwrap());
    assert!(!store.delete_bucket(b.id).unwrap());
    assert!(store.bucket(b.id).unwrap().is_none());
    assert!(store.buckets().unwrap().iter().all(|x| x.id != b.id));
    assert!(
        store
            .read(|r| r.bucket_with_deleted(b.id))
            .unwrap()
            .unwrap()
            .deleted
    );
    assert_eq!(read_all(&store, b.id, "a"), b"a");
    assert!(matches!(
        store.put_object(b.id, "b", &b"b"[..], &PutOptions::default()),
        Err(Error::BucketDeleted { .. })
    ));
}

#[test]
fn removing_a_bucket_frees_its_unshared_content() {
    let store = small_store();
    let b = bucket(&store);
    let keep = bucket(&store);
    let shared = put(&store, b.id, "shared", &bytes(1, 10_000));
    put(&store, b.id, "own", &bytes(2, 10_000));
    store
        .copy_version(shared.version_id, keep.id, "shared")
        .unwrap();
    store.remove_bucket(b.id).unwrap();
    assert!(
        store
            .read(|r| r.bucket_with_deleted(b.id))
            .unwrap()
            .is_none()
    );
    assert_eq!(read_all(&store, keep.id, "shared"), bytes(1, 10_000));
    let files: Vec<_> = store.read(|r| r.bucket_versions(keep.id, true)).unwrap();
    assert_eq!(files.len(), 1);
    assert_consistent(&store);
}

#[test]
fn a_locked_bucket_cannot_be_removed_or_written() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "a", b"a");
    store.set_bucket_locked(b.id, true).unwrap();
    assert!(matches!(
        store.remove_bucket(b.id),
        Err(Error::BucketLocked { .. })
    ));
    assert!(matches!(
        store.delete_object(b.id, "a"),
        Err(Error::BucketLocked { .. })
    ));
    assert!(matches!(
        store.remove_version(v.version_id),
        Err(Error::BucketLocked { .. })
    ));
    store.set_bucket_locked(b.id, false).unwrap();
    assert!(store.delete_object(b.id, "a").unwrap().is_some());
}

#[test]
fn bucket_tags_can_be_set_replaced_and_removed() {
    let store = small_store();
    let b = bucket(&store);
    store
        .write(|tx| tx.set_bucket_tag(b.id, "owner", "alice"))
        .unwrap();
    store
        .write(|tx| tx.set_bucket_tag(b.id, "owner", "bob"))
        .unwrap();
    store
        .write(|tx| tx.set_bucket_tag(b.id, "kind", "thesis"))
        .unwrap();
    let tags = store.read(|r| r.bucket_tags(b.id)).unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags["owner"], "bob");
    assert!(
        store
            .write(|tx| tx.delete_bucket_tag(b.id, "owner"))
            .unwrap()
    );
    assert!(
        !store
            .write(|tx| tx.delete_bucket_tag(b.id, "owner"))
            .unwrap()
    );
    assert_eq!(store.read(|r| r.bucket_tags(b.id)).unwrap().len(), 1);
}

#[test]
fn buckets_take_location_and_storage_class_and_refuse_unknown_ones() {
    let store = small_store();
    store
        .write(|tx| {
            tx.create_location("archive-1", "embedded:", false)
                .map(|_| ())
        })
        .unwrap();
    let b = store
        .create_bucket(&BucketOptions {
            location: Some("archive-1".into()),
            storage_class: Some("A".into()),
            ..BucketOptions::default()
        })
        .unwrap();
    assert_eq!(
        (b.location.as_str(), b.storage_class.as_str()),
        ("archive-1", "A")
    );
    assert!(matches!(
        store.create_bucket(&BucketOptions {
            storage_class: Some("Z".into()),
            ..BucketOptions::default()
        }),
        Err(Error::InvalidStorageClass { .. })
    ));
    assert!(matches!(
        store.create_bucket(&BucketOptions {
            location: Some("nowhere".into()),
            ..BucketOptions::default()
        }),
        Err(Error::LocationNotFound { .. })
    ));
    for bad in ["A", "a", "1abc", "abc_d", "abcdefghijklmnopqrstu"] {
        assert!(
            matches!(
                store.write(|tx| tx.create_location(bad, "x", false)),
                Err(Error::InvalidLocationName { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_new_store_has_one_default_location() {
    let store = small_store();
    let d = store.read(|r| r.default_location()).unwrap().unwrap();
    assert_eq!(d.name, "default");
    store
        .write(|tx| tx.create_location("other", "embedded:", true).map(|_| ()))
        .unwrap();
    assert_eq!(
        store.read(|r| r.default_location()).unwrap().unwrap().name,
        "other"
    );
}
