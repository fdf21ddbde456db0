//! The Invenio-Records-Files walkthrough (seed 000), step by step, on a fresh store file.
//!
//! Run with `cargo run --example quickstart`. It prints, one per line: 0, true, 1, true,
//! hello.txt, txt, KeyError: 'key', hello.txt, the sorted keys of the first dump, hello.txt,
//! true.

use recfiles::prelude::*;
use recfiles::{Error, FileList};
use serde_json::json;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn files_of(store: &Store, record: &Record) -> Res<FileList> {
    store
        .files_of(record)?
        .ok_or_else(|| "the record has no bucket".into())
}

fn main() -> Res<()> {
    // A store file in a temporary directory (the seed's in-memory database and temp location).
    let dir = tempfile::Builder::new()
        .prefix("recfiles-quickstart")
        .tempdir()?;
    let store = Store::open(dir.path().join("quickstart.recfiles"))?;

    // record = Record.create({}): a record gets a bucket by default.
    let mut record = store.create_record(json!({}))?;
    // len(record.files)
    println!("{}", files_of(&store, &record)?.len());

    // Record.create({}, with_bucket=False).files is None
    let record_nobucket = store.create_record_with(json!({}), &RecordOptions::without_bucket())?;
    println!("{}", store.files_of(&record_nobucket)?.is_none());

    // record.files['hello.txt'] = BytesIO(b'Hello, World')
    store.update_files(&mut record, |files| {
        files.put("hello.txt", &b"Hello, World"[..])
    })?;

    // len(record.files); 'hello.txt' in record.files
    let files = files_of(&store, &record)?;
    println!("{}", files.len());
    println!("{}", files.contains("hello.txt"));

    // fileobj = record.files['hello.txt']; print(fileobj.key)
    let fileobj = files.get("hello.txt")?.clone();
    println!("{}", fileobj.key());

    // fileobj['filetype'] = 'txt'; print(record.files['hello.txt']['filetype'])
    store.update_files(&mut record, |files| {
        files.set_metadata("hello.txt", "filetype", "txt")
    })?;
    let filetype = files_of(&store, &record)?.get("hello.txt")?.get("filetype");
    println!(
        "{}",
        filetype.as_ref().and_then(|v| v.as_str()).unwrap_or("?")
    );

    // fileobj['key'] = 'test' raises KeyError: 'key'
    match store.update_files(&mut record, |files| {
        files.set_metadata("hello.txt", "key", "test")
    }) {
        Err(Error::ReservedKey { key }) => println!("KeyError: '{key}'"),
        Err(other) => return Err(other.into()),
        Ok(()) => return Err("a reserved key was accepted".into()),
    }

    // print(fileobj['key']): reserved keys can still be read.
    let key = fileobj.get("key");
    println!("{}", key.as_ref().and_then(|v| v.as_str()).unwrap_or("?"));

    // dump = record.files.dumps(); the sorted keys of the first entry
    let dump = files_of(&store, &record)?.dumps();
    let first = dump.first().ok_or("the dump is empty")?;
    let mut keys: Vec<&String> = first.keys().collect();
    keys.sort();
    for k in keys {
        println!("{k}");
    }

    // record_file_factory(None, record, 'hello.txt').key
    let fileobj = store
        .record_file_factory(None, &record, "hello.txt")?
        .ok_or("hello.txt not found")?;
    println!("{}", fileobj.key());

    // record_file_factory(None, record, 'invalid') is None
    println!(
        "{}",
        store
            .record_file_factory(None, &record, "invalid")?
            .is_none()
    );

    drop(store);
    dir.close()?;
    Ok(())
}
