//! The seed walkthrough (examples/quickstart.rs), step by step, each printed value asserted.

use recfiles::prelude::*;
use recfiles::{Error, FileList};
use serde_json::json;

fn files_of(store: &Store, record: &Record) -> FileList {
    store
        .files_of(record)
        .unwrap()
        .expect("the record has a bucket")
}

#[test]
fn walkthrough_prints_what_the_seed_prints() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("quickstart.redb")).unwrap();

    let mut record = store.create_record(json!({})).unwrap();
    assert_eq!(files_of(&store, &record).len(), 0);

    let record_nobucket = store
        .create_record_with(json!({}), &RecordOptions::without_bucket())
        .unwrap();
    assert!(store.files_of(&record_nobucket).unwrap().is_none());

    store
        .update_files(&mut record, |files| {
            files.put("hello.txt", &b"Hello, World"[..])
        })
        .unwrap();
    let files = files_of(&store, &record);
    assert_eq!(files.len(), 1);
    assert!(files.contains("hello.txt"));
    let fileobj = files.get("hello.txt").unwrap().clone();
    assert_eq!(fileobj.key(), "hello.txt");

    store
        .update_files(&mut record, |files| {
            files.set_metadata("hello.txt", "filetype", "txt")
        })
        .unwrap();
    let filetype = files_of(&store, &record)
        .get("hello.txt")
        .unwrap()
        .get("filetype");
    assert_eq!(filetype, Some(json!("txt")));

    let err = store
        .update_files(&mut record, |files| {
            files.set_metadata("hello.txt", "key", "test")
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::ReservedKey { key } if key == "key"),
        "{err}"
    );

    assert_eq!(fileobj.get("key"), Some(json!("hello.txt")));

    let dump = files_of(&store, &record).dumps();
    let mut keys: Vec<&str> = dump[0].keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bucket",
            "checksum",
            "file_id",
            "filetype",
            "key",
            "size",
            "version_id"
        ]
    );

    let found = store
        .record_file_factory(None, &record, "hello.txt")
        .unwrap();
    assert_eq!(found.unwrap().key(), "hello.txt");
    assert!(
        store
            .record_file_factory(None, &record, "invalid")
            .unwrap()
            .is_none()
    );

    let report = store.check().unwrap();
    assert!(report.is_ok(), "{report:?}");
}
