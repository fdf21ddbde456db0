//! The Invenio-Records-Files walkthrough (seed 000), step by step, on a fresh store file.
//!
//! Run with `cargo run --example quickstart`. Each line it prints is a step of the original
//! walkthrough: the Python expression, then what recfiles answers (the walkthrough's answers
//! are 0, True, 1, True, hello.txt, txt, KeyError: 'key', hello.txt, the sorted keys of the
//! first dump, hello.txt, True).

use recfiles::prelude::*;
use recfiles::{Error, FileList};
use serde_json::json;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Prints one step: the walkthrough's Python expression, then recfiles' answer.
fn step(python: &str, answer: impl std::fmt::Display) {
    println!("{python:<58} -> {answer}");
}

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
    let store = Store::open(dir.path().join("quickstart.redb"))?;

    // record = Record.create({}): a record gets a bucket by default.
    let mut record = store.create_record(json!({}))?;
    step("len(record.files)", files_of(&store, &record)?.len());

    // Record.create({}, with_bucket=False)
    let record_nobucket = store.create_record_with(json!({}), &RecordOptions::without_bucket())?;
    step(
        "record_nobucket.files is None",
        store.files_of(&record_nobucket)?.is_none(),
    );

    // record.files['hello.txt'] = BytesIO(b'Hello, World')
    store.update_files(&mut record, |files| {
        files.put("hello.txt", &b"Hello, World"[..])
    })?;

    let files = files_of(&store, &record)?;
    step("len(record.files)", files.len());
    step("'hello.txt' in record.files", files.contains("hello.txt"));

    // fileobj = record.files['hello.txt']
    let fileobj = files.get("hello.txt")?.clone();
    step("fileobj.key", fileobj.key());

    // fileobj['filetype'] = 'txt'; print(record.files['hello.txt']['filetype'])
    store.update_files(&mut record, |files| {
        files.set_metadata("hello.txt", "filetype", "txt")
    })?;
    let filetype = files_of(&store, &record)?.get("hello.txt")?.get("filetype");
    step(
        "record.files['hello.txt']['filetype']",
        filetype.as_ref().and_then(|v| v.as_str()).unwrap_or("?"),
    );

    // fileobj['key'] = 'test' raises KeyError: 'key'
    match store.update_files(&mut record, |files| {
        files.set_metadata("hello.txt", "key", "test")
    }) {
        Err(Error::ReservedKey { key }) => {
            step("fileobj['key'] = 'test'", format!("KeyError: '{key}'"))
        }
        Err(other) => return Err(other.into()),
        Ok(()) => return Err("a reserved key was accepted".into()),
    }

    // print(fileobj['key']): reserved keys can still be read.
    let key = fileobj.get("key");
    step(
        "fileobj['key']",
        key.as_ref().and_then(|v| v.as_str()).unwrap_or("?"),
    );

    // dump = record.files.dumps(); the sorted keys of the first entry
    let dump = files_of(&store, &record)?.dumps();
    let first = dump.first().ok_or("the dump is empty")?;
    let mut keys: Vec<&String> = first.keys().collect();
    keys.sort();
    step(
        "sorted(record.files.dumps()[0].keys())",
        keys.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );

    // record_file_factory(None, record, 'hello.txt').key
    let fileobj = store
        .record_file_factory(None, &record, "hello.txt")?
        .ok_or("hello.txt not found")?;
    step(
        "record_file_factory(None, record, 'hello.txt').key",
        fileobj.key(),
    );
    step(
        "record_file_factory(None, record, 'invalid') is None",
        store
            .record_file_factory(None, &record, "invalid")?
            .is_none(),
    );

    drop(store);
    dir.close()?;
    Ok(())
}
