//! Invenio-Records-Files' behaviour (spec §6) and where recfiles deliberately differs
//! (DESIGN.md).

use recfiles::prelude::*;
use recfiles::{
    BUCKET_FIELD, Error, FILES_FIELD, FileList, RESERVED_KEYS, RecordFiles, UpdatedListOptions,
};
use serde_json::{Value, json};

fn store() -> Store {
    Store::in_memory().unwrap()
}

fn assert_consistent(store: &Store) {
    let report = store.check().unwrap();
    assert!(report.is_ok(), "{report:?}");
}

fn files(store: &Store, record: &Record) -> FileList {
    store.files_of(record).unwrap().expect("record has files")
}

fn keys(store: &Store, record: &Record) -> Vec<String> {
    files(store, record)
        .keys()
        .into_iter()
        .map(String::from)
        .collect()
}

fn files_field_keys(record: &Record) -> Vec<String> {
    record
        .get(FILES_FIELD)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| e["key"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A record with files `keys` (content = the key), put in that order.
fn record_with(store: &Store, keys: &[&str]) -> Record {
    let mut r = store.create_record(json!({})).unwrap();
    store
        .update_files(&mut r, |f| {
            for k in keys {
                f.put(k, k.as_bytes())?;
            }
            Ok(())
        })
        .unwrap();
    r
}

fn put(store: &Store, r: &mut Record, key: &str, content: &[u8]) {
    store.update_files(r, |f| f.put(key, content)).unwrap();
}

fn set(store: &Store, r: &mut Record, key: &str, name: &str, value: Value) {
    store
        .update_files(r, |f| f.set_metadata(key, name, value))
        .unwrap();
}

// ---- record and bucket ------------------------------------------------------------------------

#[test]
fn create_record_makes_a_bucket_named_in_the_body_and_linked() {
    let store = store();
    let r = store.create_record(json!({})).unwrap();
    let linked = store.record_bucket(r.id()).unwrap().unwrap();
    assert_eq!(r.bucket_id(), Some(linked));
    assert_eq!(r.get(BUCKET_FIELD), Some(&json!(linked.to_string())));
    assert!(store.bucket(linked).unwrap().is_some());
    assert_consistent(&store);
}

#[test]
fn removing_a_records_bucket_unlinks_it_from_the_record() {
    let store = store();
    let mut r = store.create_record(json!({"title": "t"})).unwrap();
    let bucket = r.bucket_id().unwrap();
    store.write(|tx| tx.remove_bucket(bucket)).unwrap();
    assert_eq!(store.record_bucket(r.id()).unwrap(), None);
    assert!(store.bucket(bucket).unwrap().is_none());
    let err = store.update_files(&mut r, |f| f.len()).unwrap_err();
    assert!(
        matches!(err, Error::NoBucket { record } if record == r.id()),
        "{err}"
    );
    // The record itself lives on, unchanged, and the store is consistent.
    let back = store.record(r.id()).unwrap().unwrap();
    assert_eq!(back.get("title"), Some(&json!("t")));
    assert_eq!(back.revision_id(), r.revision_id());
    assert_consistent(&store);
}

#[test]
fn create_record_without_bucket_has_no_files_view() {
    let store = store();
    let mut r = store
        .create_record_with(json!({}), &RecordOptions::without_bucket())
        .unwrap();
    assert!(r.get(BUCKET_FIELD).is_none());
    assert!(store.files_of(&r).unwrap().is_none());
    assert!(store.buckets().unwrap().is_empty());
    let err = store.update_files(&mut r, |f| f.len()).unwrap_err();
    assert!(
        matches!(err, Error::NoBucket { record } if record == r.id()),
        "{err}"
    );
}

#[test]
fn create_record_uses_the_bucket_options() {
    let store = store();
    let opts = RecordOptions {
        bucket: Some(BucketOptions {
            quota_size: Some(100),
            ..BucketOptions::default()
        }),
        ..RecordOptions::default()
    };
    let r = store.create_record_with(json!({}), &opts).unwrap();
    let bucket = store.bucket(r.bucket_id().unwrap()).unwrap().unwrap();
    assert_eq!(bucket.quota_size, Some(100));
}

#[test]
fn a_new_record_has_no_files_and_no_files_field() {
    let store = store();
    let mut r = store.create_record(json!({})).unwrap();
    assert_eq!(files(&store, &r).len(), 0);
    store.update_files(&mut r, |f| f.flush()).unwrap();
    assert!(r.get(FILES_FIELD).is_none());
}

// ---- put, get, len, contains, iteration -------------------------------------------------------

#[test]
fn put_adds_a_file_and_commits_the_files_field() {
    let store = store();
    let mut r = store.create_record(json!({})).unwrap();
    let fo = store
        .update_files(&mut r, |f| f.put("hello.txt", &b"Hello, World"[..]))
        .unwrap();
    assert_eq!(fo.key(), "hello.txt");
    assert_eq!(fo.size(), 12);
    assert_eq!(r.revision_id(), 1);
    assert_eq!(files_field_keys(&r), ["hello.txt"]);
    let stored = store.record(r.id()).unwrap().unwrap();
    assert_eq!(stored, r, "the record with its _files is committed");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut store.open_object(fo.bucket(), "hello.txt").unwrap(),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, "Hello, World");
    assert_consistent(&store);
}

#[test]
fn put_on_an_existing_key_makes_a_new_version() {
    let store = store();
    let mut r = record_with(&store, &["a.txt"]);
    put(&store, &mut r, "a.txt", b"second");
    let list = files(&store, &r);
    assert_eq!(list.len(), 1);
    assert_eq!(list.get("a.txt").unwrap().size(), 6);
    let versions = store.object_versions(list.bucket(), "a.txt").unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(files_field_keys(&r), ["a.txt"]);
    assert_consistent(&store);
}

#[test]
fn reupload_keeps_file_metadata() {
    let store = store();
    let mut r = record_with(&store, &["a.txt", "b.txt"]);
    set(&store, &mut r, "a.txt", "filetype", json!("txt"));
    put(&store, &mut r, "a.txt", b"new content");
    let a = files(&store, &r).get("a.txt").unwrap().clone();
    assert_eq!(a.get("filetype"), Some(json!("txt")));
    assert_eq!(a.size(), 11);
    assert_eq!(files_field_keys(&r), ["a.txt", "b.txt"], "and its place");
}

#[test]
fn len_counts_live_heads_in_the_bucket() {
    let store = store();
    let r = record_with(&store, &["a", "b"]);
    let bucket = r.bucket_id().unwrap();
    store
        .put_object(bucket, "c", &b"c"[..], &PutOptions::default())
        .unwrap();
    store.delete_object(bucket, "a").unwrap();
    assert_eq!(files(&store, &r).len(), 2);
    assert_eq!(
        files_field_keys(&r).len(),
        2,
        "_files is not what len counts"
    );
}

#[test]
fn contains_is_true_only_for_live_heads() {
    let store = store();
    let mut r = record_with(&store, &["a", "b"]);
    store.update_files(&mut r, |f| f.delete("b")).unwrap();
    let list = files(&store, &r);
    assert!(list.contains("a"));
    assert!(!list.contains("b"));
    assert!(!list.contains("zzz"));
}

#[test]
fn get_of_a_missing_key_is_object_not_found() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let err = files(&store, &r).get("nope").unwrap_err();
    assert!(
        matches!(&err, Error::ObjectNotFound { key, .. } if key == "nope"),
        "{err}"
    );
    let err = store.update_files(&mut r, |f| f.get("nope")).unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
}

#[test]
fn iteration_follows_files_order_then_the_rest_by_key() {
    let store = store();
    let r = record_with(&store, &["z", "m"]);
    let bucket = r.bucket_id().unwrap();
    for k in ["b", "a"] {
        store
            .put_object(bucket, k, k.as_bytes(), &PutOptions::default())
            .unwrap();
    }
    assert_eq!(keys(&store, &r), ["z", "m", "a", "b"]);
}

#[test]
fn files_of_follows_an_unsorted_files_field_with_repeats_and_strays() {
    let store = store();
    let r = record_with(&store, &["a", "b", "c", "d", "e"]);
    let real: Vec<_> = files(&store, &r).dumps();
    let entry = |key: &str, extra: Value| {
        let mut e = real
            .iter()
            .find(|d| d["key"] == json!(key))
            .unwrap()
            .clone();
        for (k, v) in extra.as_object().unwrap() {
            e.insert(k.clone(), v.clone());
        }
        Value::Object(e)
    };
    // A body written by hand: not in key order, with entries that are not files, a key
    // named twice (the first wins), stale dumped values (the version's win) and a key the
    // bucket does not have (ignored).
    let mut edited = r.clone();
    edited.body_mut().insert(
        FILES_FIELD.into(),
        json!([
            entry("d", json!({"n": "d", "size": 12345, "checksum": "stale"})),
            "not an object",
            {"no": "key"},
            {"key": 7},
            {"key": "zz-not-in-bucket", "n": "zz"},
            entry("b", json!({"n": "b"})),
            entry("d", json!({"n": "second d"})),
            entry("a", json!({})),
        ]),
    );
    let list = files(&store, &edited);
    assert_eq!(list.keys(), ["d", "b", "a", "c", "e"]);
    let d = list.get("d").unwrap();
    assert_eq!(d.get("n"), Some(json!("d")));
    assert_eq!(d.get("size"), Some(json!(1)));
    assert_eq!(d.get("checksum"), Some(json!(d.checksum().unwrap())));
    assert_eq!(d.metadata(), json!({"n": "d"}).as_object().unwrap().clone());
    assert!(list.get("c").unwrap().metadata().is_empty());
    let dumps = list.dumps();
    let real_d = real.iter().find(|x| x["key"] == json!("d")).unwrap();
    let mut want_d = real_d.clone();
    want_d.insert("n".into(), json!("d"));
    assert_eq!(dumps[0], want_d);
    assert_eq!(
        dumps[3],
        *real.iter().find(|x| x["key"] == json!("c")).unwrap()
    );
    for (dump, file) in dumps.iter().zip(&list) {
        assert_eq!(*dump, file.dumps());
        assert_eq!(dump["key"], json!(file.key()));
    }
}

#[test]
fn objects_added_out_of_band_join_files_field_at_the_next_flush() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    set(&store, &mut r, "a", "x", json!(1));
    let bucket = r.bucket_id().unwrap();
    store
        .put_object(bucket, "b", &b"b"[..], &PutOptions::default())
        .unwrap();
    assert!(files(&store, &r).contains("b"));
    assert_eq!(files_field_keys(&r), ["a"]);
    store.update_files(&mut r, |f| f.flush()).unwrap();
    assert_eq!(files_field_keys(&r), ["a", "b"]);
    assert_eq!(files(&store, &r).get("a").unwrap().get("x"), Some(json!(1)));
}

#[test]
fn commit_lists_objects_put_out_of_band_into_a_new_records_bucket() {
    // The view cannot take `_files` as up to date when the bucket already holds an object the
    // body does not name: commit must list the bucket.
    let store = store();
    let mut r = store.create_record(json!({})).unwrap();
    let bucket = r.bucket_id().unwrap();
    store
        .write(|tx| {
            tx.put_object(bucket, "out", &b"o"[..], &PutOptions::default())?;
            let mut files = tx.record_files(&mut r)?;
            files.put("in", &b"i"[..])?;
            files.commit()
        })
        .unwrap();
    assert_eq!(files_field_keys(&r), ["in", "out"]);
    let stored = store.record(r.id()).unwrap().unwrap();
    assert_eq!(files_field_keys(&stored), ["in", "out"]);
    assert_consistent(&store);
}

#[test]
fn files_field_written_without_a_listing_equals_a_full_flush() {
    // A new record's view starts in step with its empty bucket and commits without listing
    // it; the `_files` it writes must be exactly what a flush would write.
    let store = store();
    let mut r = store.create_record(json!({})).unwrap();
    store
        .write(|tx| {
            let mut files = tx.record_files(&mut r)?;
            files.put("b", &b"bb"[..])?;
            files.put("a", &b"a"[..])?;
            files.put("b", &b"new b"[..])?;
            files.set_metadata("a", "type", "txt")?;
            files.put("c", &b"c"[..])?;
            files.commit()
        })
        .unwrap();
    let committed = store.record(r.id()).unwrap().unwrap();
    let mut flushed = committed.clone();
    store.update_files(&mut flushed, |f| f.flush()).unwrap();
    assert_eq!(committed.get(FILES_FIELD), flushed.get(FILES_FIELD));
    assert_eq!(files_field_keys(&committed), ["b", "a", "c"]);
    assert_consistent(&store);
}

// ---- delete, rename, sort_by ------------------------------------------------------------------

#[test]
fn delete_leaves_a_delete_marker_and_drops_the_entry() {
    let store = store();
    let mut r = record_with(&store, &["a", "b"]);
    let marker = store.update_files(&mut r, |f| f.delete("a")).unwrap();
    assert!(marker.is_delete_marker());
    assert_eq!(keys(&store, &r), ["b"]);
    assert_eq!(files_field_keys(&r), ["b"]);
    assert_eq!(store.object_versions(marker.bucket, "a").unwrap().len(), 2);
    assert_consistent(&store);
}

#[test]
fn delete_of_a_missing_key_is_object_not_found_and_changes_nothing() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let before = r.clone();
    let err = store
        .update_files(&mut r, |f| f.delete("nope"))
        .unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
    assert_eq!(r, before);
    assert_eq!(store.record(r.id()).unwrap().unwrap(), before);
}

#[test]
fn rename_moves_metadata_and_shares_the_content() {
    let store = store();
    let mut r = record_with(&store, &["a", "b"]);
    set(&store, &mut r, "a", "filetype", json!("txt"));
    let old = files(&store, &r).get("a").unwrap().clone();
    let new = store.update_files(&mut r, |f| f.rename("a", "c")).unwrap();
    assert_eq!(new.key(), "c");
    assert_eq!(new.file_id(), old.file_id(), "no byte is copied");
    assert_eq!(new.get("filetype"), Some(json!("txt")));
    assert_eq!(keys(&store, &r), ["b", "c"], "the new key goes last");
    assert_eq!(files_field_keys(&r), ["b", "c"]);
    assert_eq!(
        store
            .file(new.file_id().unwrap())
            .unwrap()
            .unwrap()
            .references,
        2
    );
    assert_consistent(&store);
}

#[test]
fn rename_to_an_existing_key_is_refused() {
    let store = store();
    let mut r = record_with(&store, &["a", "b"]);
    let err = store
        .update_files(&mut r, |f| f.rename("a", "b"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::RecordFile { key, .. } if key == "b"),
        "{err}"
    );
    assert_eq!(keys(&store, &r), ["a", "b"]);
}

#[test]
fn rename_to_the_same_key_is_refused() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let err = store
        .update_files(&mut r, |f| f.rename("a", "a"))
        .unwrap_err();
    assert!(matches!(err, Error::RecordFile { .. }), "{err}");
}

#[test]
fn rename_of_a_missing_key_is_object_not_found() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let err = store
        .update_files(&mut r, |f| f.rename("x", "y"))
        .unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
}

#[test]
fn sort_by_keys_puts_them_first_in_that_order() {
    let store = store();
    let mut r = record_with(&store, &["a", "b", "c"]);
    store
        .update_files(&mut r, |f| f.sort_by(&["c", "a"]))
        .unwrap();
    assert_eq!(keys(&store, &r), ["c", "a", "b"]);
    assert_eq!(files_field_keys(&r), ["c", "a", "b"]);
}

#[test]
fn sort_by_accepts_file_ids() {
    let store = store();
    let mut r = record_with(&store, &["a", "b"]);
    let b_file = files(&store, &r)
        .get("b")
        .unwrap()
        .file_id()
        .unwrap()
        .to_string();
    store
        .update_files(&mut r, |f| f.sort_by(&[&b_file]))
        .unwrap();
    assert_eq!(keys(&store, &r), ["b", "a"]);
}

#[test]
fn sort_by_keeps_metadata_of_unlisted_files() {
    let store = store();
    let mut r = record_with(&store, &["a", "b", "c"]);
    set(&store, &mut r, "a", "note", json!("kept"));
    set(&store, &mut r, "c", "note", json!("also kept"));
    store.update_files(&mut r, |f| f.sort_by(&["b"])).unwrap();
    let list = files(&store, &r);
    assert_eq!(list.keys(), ["b", "a", "c"]);
    assert_eq!(list.get("a").unwrap().get("note"), Some(json!("kept")));
    assert_eq!(list.get("c").unwrap().get("note"), Some(json!("also kept")));
}

#[test]
fn sort_by_an_unknown_id_is_object_not_found() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let err = store
        .update_files(&mut r, |f| f.sort_by(&["nope"]))
        .unwrap_err();
    assert!(
        matches!(&err, Error::ObjectNotFound { key, .. } if key == "nope"),
        "{err}"
    );
}

// ---- FileObject and metadata ------------------------------------------------------------------

#[test]
fn dumps_have_exactly_the_object_keys_plus_the_metadata() {
    let store = store();
    let mut r = record_with(&store, &["hello.txt"]);
    set(&store, &mut r, "hello.txt", "filetype", json!("txt"));
    let dump = files(&store, &r).dumps();
    assert_eq!(dump.len(), 1);
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
    let fo = files(&store, &r).get("hello.txt").unwrap().clone();
    assert_eq!(dump[0]["bucket"], json!(fo.bucket().to_string()));
    assert_eq!(dump[0]["file_id"], json!(fo.file_id().unwrap().to_string()));
    assert_eq!(dump[0]["version_id"], json!(fo.version_id().to_string()));
    assert_eq!(dump[0]["size"], json!(9));
    assert_eq!(dump[0]["checksum"], json!(fo.checksum().unwrap()));
    assert!(fo.checksum().unwrap().starts_with("blake3:"));
}

#[test]
fn files_field_holds_the_dumps() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    set(&store, &mut r, "a", "x", json!(true));
    let dump = files(&store, &r).dumps();
    assert_eq!(
        r.get(FILES_FIELD),
        Some(&json!([Value::Object(dump[0].clone())]))
    );
}

#[test]
fn metadata_set_on_a_file_is_read_back() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    set(&store, &mut r, "a", "filetype", json!("txt"));
    let fo = files(&store, &r).get("a").unwrap().clone();
    assert_eq!(fo.get("filetype"), Some(json!("txt")));
    assert_eq!(fo.metadata().get("filetype"), Some(&json!("txt")));
    assert_eq!(store.record(r.id()).unwrap().unwrap().revision_id(), 2);
}

#[test]
fn reserved_keys_cannot_be_set_but_can_be_read() {
    let store = store();
    let mut r = record_with(&store, &["hello.txt"]);
    for name in [
        "bucket",
        "bucket_id",
        "key",
        "version_id",
        "file_id",
        "file",
        "is_head",
    ] {
        let err = store
            .update_files(&mut r, |f| f.set_metadata("hello.txt", name, "x"))
            .unwrap_err();
        assert!(
            matches!(&err, Error::ReservedKey { key } if key == name),
            "{err}"
        );
        assert!(err.to_string().contains(name));
        let value = files(&store, &r).get("hello.txt").unwrap().get(name);
        assert!(value.is_some(), "{name} reads the object's attribute");
    }
    assert_eq!(r.revision_id(), 1, "nothing was committed");
    let fo = files(&store, &r).get("hello.txt").unwrap().clone();
    assert_eq!(fo.get("key"), Some(json!("hello.txt")));
    assert_eq!(fo.get("is_head"), Some(json!(true)));
}

#[test]
fn every_object_version_attribute_is_reserved() {
    for name in [
        "key",
        "version_id",
        "bucket_id",
        "bucket",
        "file_id",
        "file",
        "is_head",
        "mimetype",
        "created",
        "updated",
        "deleted",
        "basename",
        "tags",
        "_mimetype",
    ] {
        assert!(FileObject::is_reserved(name), "{name}");
        assert!(RESERVED_KEYS.contains(&name));
    }
    for name in ["__table__", "_sa_instance_state", "copy", "query"] {
        assert!(FileObject::is_reserved(name), "{name}");
    }
    for name in ["filetype", "description", "_private", "__"] {
        assert!(!FileObject::is_reserved(name), "{name}");
    }
}

#[test]
fn checksum_and_size_are_not_reserved() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    assert!(!FileObject::is_reserved("checksum"));
    assert!(!FileObject::is_reserved("size"));
    store
        .update_files(&mut r, |f| {
            f.set_metadata("a", "checksum", "md5:0")?;
            f.set_metadata("a", "size", 0)
        })
        .unwrap();
    // The dump overwrites them with the file's real values.
    assert_eq!(
        files(&store, &r).get("a").unwrap().get("size"),
        Some(json!(1))
    );
}

#[test]
fn file_object_reads_the_attribute_before_the_metadata() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    // A body edited by hand can put a reserved name into _files; the attribute still wins.
    let entry = r
        .body_mut()
        .get_mut(FILES_FIELD)
        .unwrap()
        .as_array_mut()
        .unwrap()[0]
        .as_object_mut()
        .unwrap();
    entry.insert("is_head".into(), json!("fake"));
    store.commit_record(&mut r).unwrap();
    assert_eq!(
        files(&store, &r).get("a").unwrap().get("is_head"),
        Some(json!(true))
    );
}

#[test]
fn metadata_on_a_missing_file_is_object_not_found() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let err = store
        .update_files(&mut r, |f| f.set_metadata("nope", "x", 1))
        .unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
}

#[test]
fn metadata_can_be_removed() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    set(&store, &mut r, "a", "x", json!(1));
    let old = store
        .update_files(&mut r, |f| f.remove_metadata("a", "x"))
        .unwrap();
    assert_eq!(old, Some(json!(1)));
    assert_eq!(files(&store, &r).get("a").unwrap().get("x"), None);
}

// ---- guards -----------------------------------------------------------------------------------

#[test]
fn writes_to_a_locked_bucket_are_bucket_locked() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    store
        .set_bucket_locked(r.bucket_id().unwrap(), true)
        .unwrap();
    let put = store
        .update_files(&mut r, |f| f.put("b", &b"b"[..]))
        .unwrap_err();
    let del = store.update_files(&mut r, |f| f.delete("a")).unwrap_err();
    let ren = store
        .update_files(&mut r, |f| f.rename("a", "c"))
        .unwrap_err();
    for err in [put, del, ren] {
        assert!(matches!(err, Error::BucketLocked { .. }), "{err}");
    }
    assert_eq!(keys(&store, &r), ["a"]);
}

#[test]
fn writes_to_a_deleted_bucket_are_bucket_deleted() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    store.delete_bucket(r.bucket_id().unwrap()).unwrap();
    let err = store
        .update_files(&mut r, |f| f.put("b", &b"b"[..]))
        .unwrap_err();
    assert!(matches!(err, Error::BucketDeleted { .. }), "{err}");
}

#[test]
fn update_files_with_a_stale_record_conflicts_and_stores_nothing() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let mut stale = r.clone();
    put(&store, &mut r, "b", b"b");
    let err = store
        .update_files(&mut stale, |f| f.put("c", &b"c"[..]))
        .unwrap_err();
    assert!(matches!(err, Error::RevisionConflict { .. }), "{err}");
    assert!(!files(&store, &r).contains("c"));
    assert_consistent(&store);
}

// ---- record_file_factory and sorted_files_from_bucket ------------------------------------------

#[test]
fn record_file_factory_returns_the_file() {
    let store = store();
    let r = record_with(&store, &["hello.txt"]);
    let fo = store
        .record_file_factory(None, &r, "hello.txt")
        .unwrap()
        .unwrap();
    assert_eq!(fo.key(), "hello.txt");
}

#[test]
fn record_file_factory_is_none_for_a_missing_file() {
    let store = store();
    let r = record_with(&store, &["hello.txt"]);
    assert!(
        store
            .record_file_factory(None, &r, "invalid")
            .unwrap()
            .is_none()
    );
}

#[test]
fn record_file_factory_is_none_without_a_bucket() {
    let store = store();
    let r = store
        .create_record_with(json!({}), &RecordOptions::without_bucket())
        .unwrap();
    assert!(store.record_file_factory(None, &r, "a").unwrap().is_none());
}

#[test]
fn record_file_factory_is_none_for_an_empty_bucket() {
    let store = store();
    let r = store.create_record(json!({})).unwrap();
    assert!(store.record_file_factory(None, &r, "a").unwrap().is_none());
}

#[test]
fn record_file_factory_is_none_for_a_deleted_or_removed_record() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let kept = r.clone();
    store.delete_record(&mut r).unwrap();
    assert!(
        store
            .record_file_factory(None, &kept, "a")
            .unwrap()
            .is_none()
    );
    store.remove_record(r.id()).unwrap();
    assert!(
        store
            .record_file_factory(None, &kept, "a")
            .unwrap()
            .is_none()
    );
}

#[test]
fn sorted_files_from_bucket_lists_named_keys_first() {
    let store = store();
    let r = record_with(&store, &["a", "b", "c", "d"]);
    let bucket = r.bucket_id().unwrap();
    let sorted = store
        .read(|tx| tx.sorted_files_from_bucket(bucket, &["c", "nope", "a"]))
        .unwrap();
    let keys: Vec<&str> = sorted.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["c", "a", "b", "d"]);
}

// ---- the record's lifecycle carries its bucket (DESIGN.md) ------------------------------------

#[test]
fn soft_deleting_a_record_soft_deletes_its_bucket() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    let bucket = r.bucket_id().unwrap();
    store.delete_record(&mut r).unwrap();
    let b = store
        .read(|tx| tx.bucket_with_deleted(bucket))
        .unwrap()
        .unwrap();
    assert!(b.deleted);
    assert!(store.files_of(&r).unwrap().is_none());
    let err = store.update_files(&mut r, |f| f.len()).unwrap_err();
    assert!(matches!(err, Error::RecordDeleted { .. }), "{err}");
    assert_consistent(&store);
}

#[test]
fn undeleting_a_record_brings_its_bucket_back() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    store.delete_record(&mut r).unwrap();
    store.undelete_record(&mut r).unwrap();
    assert!(store.bucket(r.bucket_id().unwrap()).unwrap().is_some());
    assert_eq!(keys(&store, &r), ["a"]);
    assert_consistent(&store);
}

#[test]
fn reverting_a_deleted_record_brings_its_bucket_back() {
    let store = store();
    let mut r = record_with(&store, &["a"]);
    store.delete_record(&mut r).unwrap();
    let back = store.revert_record(r.id(), 1).unwrap();
    assert!(store.bucket(back.bucket_id().unwrap()).unwrap().is_some());
    assert_eq!(keys(&store, &back), ["a"]);
}

#[test]
fn hard_deleting_a_record_removes_its_bucket_and_frees_its_content() {
    let store = store();
    let r = record_with(&store, &["a"]);
    let bucket = r.bucket_id().unwrap();
    let file = files(&store, &r).get("a").unwrap().file_id().unwrap();
    store.remove_record(r.id()).unwrap();
    assert!(
        store
            .read(|tx| tx.bucket_with_deleted(bucket))
            .unwrap()
            .is_none()
    );
    assert!(store.file(file).unwrap().is_none());
    assert!(store.record_bucket(r.id()).unwrap().is_none());
    assert_consistent(&store);
}

#[test]
fn hard_deleting_a_record_unlocks_and_removes_a_locked_bucket() {
    let store = store();
    let r = record_with(&store, &["a"]);
    let bucket = r.bucket_id().unwrap();
    store.set_bucket_locked(bucket, true).unwrap();
    store.remove_record(r.id()).unwrap();
    assert!(
        store
            .read(|tx| tx.bucket_with_deleted(bucket))
            .unwrap()
            .is_none()
    );
    assert_consistent(&store);
}

#[test]
fn hard_deleting_a_record_keeps_content_shared_with_another_bucket() {
    let store = store();
    // Over 16 KiB: deduplicated (smaller inline content is stored per file).
    let content = vec![7u8; 20_000];
    let (mut a, mut b) = (record_with(&store, &[]), record_with(&store, &[]));
    put(&store, &mut a, "same", &content);
    put(&store, &mut b, "same", &content);
    let file = files(&store, &a).get("same").unwrap().file_id().unwrap();
    store.remove_record(a.id()).unwrap();
    assert_eq!(store.file(file).unwrap().unwrap().references, 1);
    assert_eq!(files(&store, &b).get("same").unwrap().file_id(), Some(file));
    assert_consistent(&store);
}

#[test]
fn hard_deleting_a_record_without_a_bucket_works() {
    let store = store();
    let r = store
        .create_record_with(json!({}), &RecordOptions::without_bucket())
        .unwrap();
    store.remove_record(r.id()).unwrap();
    assert!(store.record_with_deleted(r.id()).unwrap().is_none());
}

// ---- atomicity ------------------------------------------------------------------------------------

#[test]
fn record_bucket_and_first_files_are_created_in_one_transaction() {
    let store = store();
    let r = store
        .write(|tx| {
            let mut r = tx.create_record(json!({"title": "t"}))?;
            let mut files: RecordFiles<'_, '_> = tx.record_files(&mut r)?;
            files.put("a.txt", &b"a"[..])?;
            files.put("b.txt", &b"b"[..])?;
            files.commit()?;
            Ok(r)
        })
        .unwrap();
    assert_eq!(r.revision_id(), 1);
    assert_eq!(keys(&store, &r), ["a.txt", "b.txt"]);
    assert_eq!(store.record(r.id()).unwrap().unwrap(), r);
    assert_consistent(&store);
}

#[test]
fn a_put_over_quota_leaves_no_record_no_bucket_and_no_content() {
    let store = store();
    let id = RecordId::new();
    let opts = RecordOptions {
        id: Some(id),
        bucket: Some(BucketOptions {
            quota_size: Some(10),
            ..BucketOptions::default()
        }),
    };
    let err = store
        .write(|tx| {
            let mut r = tx.create_record_with(json!({}), &opts)?;
            let mut files = tx.record_files(&mut r)?;
            files.put("small.txt", &b"12345"[..])?;
            files.put("big.txt", &[7u8; 100][..])?;
            files.commit()
        })
        .unwrap_err();
    assert!(matches!(err, Error::FileSize { .. }), "{err}");
    assert!(store.record_with_deleted(id).unwrap().is_none());
    assert!(store.buckets().unwrap().is_empty());
    assert!(store.read(|tx| tx.record_bucket(id)).unwrap().is_none());
    // The integrity check also proves no file or chunk is left without a reference.
    assert_consistent(&store);
}

#[test]
fn a_schema_error_after_files_leaves_nothing() {
    let store = store();
    store
        .register_schema(
            "https://example.org/s.json",
            &json!({"required": ["title"]}),
        )
        .unwrap();
    let id = RecordId::new();
    let err = store
        .write(|tx| {
            let mut r = tx.create_record_with(json!({}), &RecordOptions::default().with_id(id))?;
            tx.record_files(&mut r)?.put("a.txt", &b"a"[..])?;
            r.body_mut()
                .insert("$schema".into(), json!("https://example.org/s.json"));
            tx.commit_record(&mut r)
        })
        .unwrap_err();
    assert!(matches!(err, Error::SchemaValidation { .. }), "{err}");
    assert!(store.record_with_deleted(id).unwrap().is_none());
    assert!(store.buckets().unwrap().is_empty());
    assert_consistent(&store);
}

#[test]
fn puts_inside_one_update_keep_files_in_put_order_and_each_entry_is_its_dump() {
    let store = store();
    let mut r = store.create_record(json!({})).unwrap();
    store
        .update_files(&mut r, |f| {
            for k in ["z.txt", "a.txt", "m.txt"] {
                f.put(k, k.as_bytes())?;
            }
            // A second put of a key mid-update keeps its place and its metadata.
            f.set_metadata("a.txt", "kind", "first")?;
            f.put("a.txt", &b"a again"[..])?;
            Ok(())
        })
        .unwrap();
    assert_eq!(files_field_keys(&r), ["z.txt", "a.txt", "m.txt"]);
    let list = files(&store, &r);
    let dumps = list.dumps();
    let field: Vec<Value> = r.get(FILES_FIELD).unwrap().as_array().unwrap().clone();
    assert_eq!(field.len(), dumps.len());
    for (entry, dump) in field.iter().zip(&dumps) {
        assert_eq!(entry.as_object().unwrap(), dump);
    }
    assert_eq!(dumps[1]["kind"], json!("first"));
    assert_eq!(dumps[1]["size"], json!(7));
    assert_consistent(&store);
}

// ---- record.files = {...} and FileObject.get_version ------------------------------------------

fn content(store: &Store, bucket: BucketId, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut store.open_object(bucket, key).unwrap(), &mut out).unwrap();
    out
}

#[test]
fn set_all_puts_the_files_in_the_order_given() {
    let store = store();
    let mut r = store.create_record(json!({})).unwrap();
    let put = store
        .update_files(&mut r, |f| {
            f.set_all([("b.txt", &b"second"[..]), ("a.txt", &b"first"[..])])
        })
        .unwrap();
    assert_eq!(
        put.iter().map(|f| f.key().to_string()).collect::<Vec<_>>(),
        ["b.txt", "a.txt"]
    );
    assert_eq!(files_field_keys(&r), ["b.txt", "a.txt"]);
    assert_eq!(keys(&store, &r), ["b.txt", "a.txt"]);
    let bucket = r.bucket_id().unwrap();
    assert_eq!(content(&store, bucket, "b.txt"), b"second");
    assert_eq!(content(&store, bucket, "a.txt"), b"first");
    // The stored record carries the same `_files`.
    let back = store.record(r.id()).unwrap().unwrap();
    assert_eq!(files_field_keys(&back), ["b.txt", "a.txt"]);
    assert_consistent(&store);
}

#[test]
fn set_all_is_refused_while_the_bucket_has_a_live_file() {
    let store = store();
    let mut r = record_with(&store, &["x"]);
    let revision = r.revision_id();
    let err = store
        .update_files(&mut r, |f| f.set_all([("y", &b"y"[..])]))
        .unwrap_err();
    assert!(
        matches!(err, Error::FilesExist { record } if record == r.id()),
        "{err}"
    );
    // Nothing was stored and the record is as it was.
    assert_eq!(keys(&store, &r), ["x"]);
    let bucket = r.bucket_id().unwrap();
    assert!(store.object(bucket, "y").unwrap().is_none());
    assert_eq!(
        store.record(r.id()).unwrap().unwrap().revision_id(),
        revision
    );

    // Once the only file is deleted (a delete marker is no live file), it is accepted.
    store.update_files(&mut r, |f| f.delete("x")).unwrap();
    store
        .update_files(&mut r, |f| f.set_all([("y", &b"y"[..])]))
        .unwrap();
    assert_eq!(keys(&store, &r), ["y"]);
    assert_consistent(&store);
}

#[test]
fn set_all_failing_part_way_stores_none_of_the_files() {
    let store = store();
    let opts = RecordOptions {
        bucket: Some(BucketOptions {
            quota_size: Some(10),
            ..BucketOptions::default()
        }),
        ..RecordOptions::default()
    };
    let mut r = store.create_record_with(json!({}), &opts).unwrap();
    let err = store
        .update_files(&mut r, |f| {
            f.set_all([("small", &b"12345"[..]), ("big", &b"1234567890"[..])])
        })
        .unwrap_err();
    assert!(matches!(err, Error::FileSize { .. }), "{err}");
    let bucket = store.bucket(r.bucket_id().unwrap()).unwrap().unwrap();
    assert_eq!(bucket.size, 0);
    assert!(store.object(bucket.id, "small").unwrap().is_none());
    assert!(r.get(FILES_FIELD).is_none());
    assert_consistent(&store);
}

#[test]
fn get_version_gives_the_head_or_exactly_the_version_asked_for() {
    let store = store();
    let mut r = record_with(&store, &["a", "other"]);
    let first = store
        .update_files(&mut r, |f| Ok(f.get("a")?.version_id()))
        .unwrap();
    store
        .update_files(&mut r, |f| f.put("a", &b"v2"[..]))
        .unwrap();
    let (second, other) = store
        .update_files(&mut r, |f| {
            Ok((f.get("a")?.version_id(), f.get("other")?.version_id()))
        })
        .unwrap();
    let marker = store.update_files(&mut r, |f| f.delete("a")).unwrap();
    store
        .update_files(&mut r, |f| {
            // Without an id: the live head, and "a" has none now.
            assert!(f.get_version("a", None)?.is_none());
            assert_eq!(
                f.get_version("other", None)?.map(|o| o.version_id),
                Some(other)
            );
            // With one: that version, older versions and the delete marker included.
            let v1 = f.get_version("a", Some(first))?.expect("first version");
            assert_eq!(
                (v1.version_id, v1.is_head, v1.size),
                (first, false, Some(1))
            );
            let v2 = f.get_version("a", Some(second))?.expect("second version");
            assert_eq!((v2.is_head, v2.size), (false, Some(2)));
            let m = f
                .get_version("a", Some(marker.version_id))?
                .expect("marker");
            assert!(m.is_delete_marker() && m.is_head);
            // An id of another key, or of no version at all, names nothing here.
            assert!(f.get_version("a", Some(other))?.is_none());
            assert!(f.get_version("a", Some(VersionId::new()))?.is_none());
            Ok(())
        })
        .unwrap();
}

// ---- record-level restore, `_files` kept true, reading a record's files ----------------------

/// The `_files` entry of `key` in the record as stored.
fn stored_entry(store: &Store, r: &Record, key: &str) -> serde_json::Map<String, Value> {
    let stored = store.record(r.id()).unwrap().unwrap();
    stored.body()[FILES_FIELD]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| panic!("{key} is not in _files of {stored:?}"))
}

/// The messages of the problems `check()` finds, every one of them a `_files` problem of a
/// record.
fn check_problems(store: &Store) -> Vec<String> {
    let report = store.check().unwrap();
    for p in &report.problems {
        assert_eq!(p.invariant, recfiles::Invariant::FilesList, "{p:?}");
        assert!(
            matches!(p.subjects.first(), Some(recfiles::Subject::Record(_))),
            "{p:?}"
        );
    }
    report.problems.into_iter().map(|p| p.message).collect()
}

#[test]
fn restoring_a_file_version_through_the_record_keeps_files_true_and_its_metadata() {
    let store = store();
    let mut r = record_with(&store, &["a.txt", "b.txt"]);
    set(&store, &mut r, "a.txt", "type", json!("main"));
    let v1 = files(&store, &r).get("a.txt").unwrap().version_id();
    put(&store, &mut r, "a.txt", b"second");
    let restored = store.update_files(&mut r, |f| f.restore(v1)).unwrap();
    assert_ne!(restored.version_id(), v1, "a restore is a new version");
    assert_eq!(restored.get("type"), Some(json!("main")));
    let entry = stored_entry(&store, &r, "a.txt");
    assert_eq!(
        entry["version_id"],
        json!(restored.version_id().to_string())
    );
    assert_eq!(entry["type"], json!("main"));
    assert_eq!(
        files_field_keys(&r),
        ["a.txt", "b.txt"],
        "a.txt kept its place"
    );
    let mut text = String::new();
    std::io::Read::read_to_string(&mut store.open_file_object(&restored).unwrap(), &mut text)
        .unwrap();
    assert_eq!(text, "a.txt");
    assert_consistent(&store);
}

#[test]
fn restoring_a_deleted_file_brings_back_the_metadata_the_record_held_for_that_version() {
    let store = store();
    let mut r = record_with(&store, &["a.txt", "b.txt"]);
    set(&store, &mut r, "a.txt", "type", json!("first"));
    let v1 = files(&store, &r).get("a.txt").unwrap().version_id();
    put(&store, &mut r, "a.txt", b"second");
    set(&store, &mut r, "a.txt", "type", json!("second"));
    store.update_files(&mut r, |f| f.delete("a.txt")).unwrap();
    assert_eq!(files_field_keys(&r), ["b.txt"]);
    let restored = store.update_files(&mut r, |f| f.restore(v1)).unwrap();
    // The metadata of the restored version's own time, not the key's latest.
    assert_eq!(restored.get("type"), Some(json!("first")));
    assert_eq!(stored_entry(&store, &r, "a.txt")["type"], json!("first"));
    assert_eq!(files_field_keys(&r), ["b.txt", "a.txt"]);
    assert_consistent(&store);
}

#[test]
fn restoring_through_a_record_a_version_of_another_bucket_is_refused() {
    let store = store();
    let mut r = record_with(&store, &["a.txt"]);
    let other = record_with(&store, &["x"]);
    let mut v = files(&store, &other).get("x").unwrap().version_id();
    store
        .update_files(&mut other.clone(), |f| f.put("x", &b"2"[..]))
        .unwrap();
    let before = store.record(r.id()).unwrap();
    let e = store.update_files(&mut r, |f| f.restore(v)).unwrap_err();
    assert!(matches!(e, Error::RecordFile { .. }), "{e}");
    v = files(&store, &r).get("a.txt").unwrap().version_id();
    let e = store.update_files(&mut r, |f| f.restore(v)).unwrap_err();
    assert!(matches!(e, Error::InvalidOperation { .. }), "the head: {e}");
    assert_eq!(store.record(r.id()).unwrap(), before);
    assert_consistent(&store);
}

#[test]
fn check_reports_a_record_whose_files_list_disagrees_with_its_bucket() {
    let store = store();
    let mut r = record_with(&store, &["a.txt", "b.txt"]);
    let v1 = files(&store, &r).get("a.txt").unwrap().version_id();
    put(&store, &mut r, "a.txt", b"second");
    store.update_files(&mut r, |f| f.delete("a.txt")).unwrap();
    assert!(check_problems(&store).is_empty());
    // A restore on the bucket, past the record: the record does not list the file.
    store.restore_version(v1).unwrap();
    let p = check_problems(&store);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("\"a.txt\" of its bucket is missing from _files"),
        "{p:?}"
    );
    // The record's view puts it right.
    store.update_files(&mut r, |f| f.flush()).unwrap();
    assert!(check_problems(&store).is_empty());
    // A body that names a stale version, a key that is gone, a key twice.
    let b = files(&store, &r).get("b.txt").unwrap().clone();
    for (files_field, expect) in [
        (
            json!([{"key": "a.txt", "version_id": v1.to_string()}, b.dumps()]),
            "differs from its head version in bucket, checksum, file_id, size, version_id",
        ),
        (json!([b.dumps()]), "\"a.txt\" of its bucket is missing"),
        (json!([b.dumps(), b.dumps()]), "lists \"b.txt\" twice"),
        (json!("b.txt"), "_files is not a list"),
        (json!([7]), "_files[0] is not a file entry"),
        (
            json!([{"key": "gone.txt"}]),
            "\"gone.txt\", which is not a live file",
        ),
    ] {
        let mut bad = store.record(r.id()).unwrap().unwrap();
        bad.body_mut().insert(FILES_FIELD.into(), files_field);
        store.commit_record(&mut bad).unwrap();
        let p = check_problems(&store);
        assert!(p.iter().any(|l| l.contains(expect)), "{expect}: {p:?}");
        store.revert_record(r.id(), r.revision_id()).unwrap();
        assert!(check_problems(&store).is_empty(), "{expect}");
    }
}

#[test]
fn reverting_a_record_keeps_its_files_list_true() {
    let store = store();
    let mut r = record_with(&store, &["a.txt"]);
    set(&store, &mut r, "a.txt", "type", json!("old"));
    let at = r.revision_id();
    set(&store, &mut r, "a.txt", "type", json!("new"));
    put(&store, &mut r, "b.txt", b"b");
    put(&store, &mut r, "a.txt", b"a again");
    let back = store.revert_record(r.id(), at).unwrap();
    // The body of that revision, its files those of now: a.txt (its head) with that
    // revision's metadata, and b.txt after it.
    assert_eq!(files_field_keys(&back), ["a.txt", "b.txt"]);
    let a = files(&store, &back).get("a.txt").unwrap().clone();
    assert_eq!(a.get("type"), Some(json!("old")));
    assert_eq!(back.body()[FILES_FIELD][0], Value::Object(a.dumps()));
    assert_consistent(&store);
}

#[test]
fn a_record_file_version_is_found_on_a_read_snapshot() {
    let store = store();
    let mut r = record_with(&store, &["a.txt"]);
    let v1 = files(&store, &r).get("a.txt").unwrap().clone();
    put(&store, &mut r, "a.txt", b"second");
    let marker = store.update_files(&mut r, |f| f.delete("a.txt")).unwrap();
    let snap = store.snapshot().unwrap();
    // Later changes are not seen by the snapshot.
    store
        .update_files(&mut r, |f| f.put("a.txt", &b"third"[..]))
        .unwrap();
    use recfiles::RecordFilesQuery;
    let old = snap
        .record_file_version(&r, "a.txt", Some(v1.version_id()))
        .unwrap();
    assert_eq!(old.map(|o| o.version_id), Some(v1.version_id()));
    let m = snap
        .record_file_version(&r, "a.txt", Some(marker.version_id))
        .unwrap();
    assert!(m.unwrap().is_delete_marker());
    assert_eq!(snap.record_file_version(&r, "a.txt", None).unwrap(), None);
    assert_eq!(
        snap.record_file_version(&r, "b.txt", Some(v1.version_id()))
            .unwrap(),
        None
    );
    // The store's own call sees the newest head; the old FileObject still opens its version.
    let head = store
        .record_file_version(&r, "a.txt", None)
        .unwrap()
        .unwrap();
    assert_eq!(head.size, Some(5));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut snap.open_file_object(&v1).unwrap(), &mut text).unwrap();
    assert_eq!(text, "a.txt");
}

/// A write transaction keeps the record and bucket rows it changes until it commits (each is
/// written once); until then every read inside it sees them: single lookups, the bucket list
/// and the by-update listing, for rows new in the transaction and for stored ones it changed.
#[test]
fn a_write_transaction_sees_the_record_and_bucket_rows_it_has_not_written_yet() {
    let store = store();
    let old = store.create_record(json!({"title": "stored"})).unwrap();
    let old_bucket = store.record_bucket(old.id()).unwrap().unwrap();
    let (id, bucket) = store
        .write(|tx| {
            let mut record = tx.create_record(json!({"title": "new"}))?;
            let mut files = tx.record_files(&mut record)?;
            files.put("data.bin", &b"twelve bytes"[..])?;
            let bucket = files.bucket();
            files.commit()?;
            assert_eq!(tx.record(record.id())?.unwrap().revision_id(), 1);
            assert_eq!(tx.bucket(bucket)?.unwrap().size, 12);
            // A stored row changed in this transaction, and a new one, both listed.
            let mut stored = tx.record(old.id())?.unwrap();
            tx.commit_record(&mut stored)?;
            let buckets = tx.buckets()?;
            let sizes: Vec<(BucketId, u64)> = buckets.iter().map(|b| (b.id, b.size)).collect();
            assert_eq!(sizes, [(old_bucket, 0), (bucket, 12)]);
            let page = tx.list_records_by_update(&UpdatedListOptions::default())?;
            let listed: Vec<(RecordId, u64)> = page
                .records
                .iter()
                .map(|r| (r.id(), r.revision_id()))
                .collect();
            assert_eq!(listed.len(), 2, "{listed:?}");
            assert!(listed.contains(&(record.id(), 1)), "{listed:?}");
            assert!(listed.contains(&(old.id(), 1)), "{listed:?}");
            Ok((record.id(), bucket))
        })
        .unwrap();
    // And they were written when it committed.
    let record = store.record(id).unwrap().unwrap();
    assert_eq!(record.revision_id(), 1);
    assert_eq!(store.bucket(bucket).unwrap().unwrap().size, 12);
    assert_eq!(store.record(old.id()).unwrap().unwrap().revision_id(), 1);
    assert_consistent(&store);
}
