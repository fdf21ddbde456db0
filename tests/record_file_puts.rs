//! Staged puts and multipart completions into a record's bucket keep its `_files` true.

use recfiles::prelude::*;
use recfiles::{Error, MultipartLimits};
use serde_json::json;

fn store() -> Store {
    StoreBuilder::new()
        .staging_batch(1 << 20)
        .multipart_limits(MultipartLimits {
            min_part_size: 4,
            ..MultipartLimits::default()
        })
        .in_memory()
        .unwrap()
}

#[test]
fn a_staged_put_lists_the_file_in_the_same_commit() {
    let store = store();
    let mut record = store.create_record(json!({"title": "t"})).unwrap();
    // Larger than the staging batch: staged before the writer is taken.
    let data = vec![5u8; 3 << 20];
    let file = store
        .put_record_file(&mut record, "big.bin", &data[..], &PutOptions::default())
        .unwrap();
    assert_eq!(file.size(), data.len() as u64);
    assert_eq!(record.revision_id(), 1);
    let stored = store.record(record.id()).unwrap().unwrap();
    assert_eq!(stored.get("_files").unwrap()[0]["key"], "big.bin");
    assert_eq!(store.files_of(&stored).unwrap().unwrap().len(), 1);
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn a_failed_staged_put_changes_neither_the_bucket_nor_the_record() {
    let store = store();
    let mut record = store.create_record(json!({})).unwrap();
    let opts = PutOptions {
        size: Some(10),
        ..PutOptions::default()
    };
    let err = store.put_record_file(&mut record, "k", &b"short"[..], &opts);
    assert!(
        matches!(err, Err(Error::UnexpectedFileSize { .. })),
        "{err:?}"
    );
    assert_eq!(record.revision_id(), 0);
    let stored = store.record(record.id()).unwrap().unwrap();
    assert!(stored.get("_files").is_none());
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn a_record_without_a_bucket_gets_no_file() {
    let store = store();
    let mut record = store
        .create_record_with(json!({}), &RecordOptions::without_bucket())
        .unwrap();
    let err = store.put_record_file(&mut record, "k", &b"x"[..], &PutOptions::default());
    assert!(matches!(err, Err(Error::NoBucket { .. })), "{err:?}");
}

#[test]
fn a_multipart_completion_lists_the_file_in_the_record() {
    let store = store();
    let mut record = store.create_record(json!({})).unwrap();
    let bucket = store.record_bucket(record.id()).unwrap().unwrap();
    let mp = store.init_multipart(bucket, "parts.bin", 12, 8).unwrap();
    store.upload_part(mp.id, 0, &[1u8; 8][..]).unwrap();
    store.upload_part(mp.id, 1, &[2u8; 4][..]).unwrap();
    let file = store.complete_record_multipart(&mut record, mp.id).unwrap();
    assert_eq!((file.key(), file.size()), ("parts.bin", 12));
    let stored = store.record(record.id()).unwrap().unwrap();
    assert_eq!(stored.get("_files").unwrap()[0]["key"], "parts.bin");
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn an_upload_into_another_bucket_is_not_completed_through_a_record() {
    let store = store();
    let mut record = store.create_record(json!({})).unwrap();
    let other = store.create_bucket(&BucketOptions::default()).unwrap();
    let mp = store.init_multipart(other.id, "x", 8, 8).unwrap();
    store.upload_part(mp.id, 0, &[1u8; 8][..]).unwrap();
    let err = store.complete_record_multipart(&mut record, mp.id);
    assert!(
        matches!(err, Err(Error::InvalidOperation { .. })),
        "{err:?}"
    );
    // The upload is still open: it can be completed where it belongs.
    assert!(store.complete_multipart(mp.id).is_ok());
    assert!(store.check().unwrap().is_ok());
}
