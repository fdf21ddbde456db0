//! Metadata fuzzing: arbitrary keys, tag keys and values, bucket options, location names, put
//! options (sizes that lie, md5 and blake3 strings, MIME types), and on the records side
//! arbitrary JSON bodies, `$schema` values, schemas, PIDs, reverts and FileObject metadata
//! names through the record files view. Every call must end in success or a typed error (never
//! a panic, an engine or a corruption error); a refused call must leave the store exactly as it
//! was (compared on a snapshot taken before the call); an accepted put must hold exactly what
//! was sent; at the end of each input the store's checks must pass (every invariant of the
//! format, and now and then the engine's own check: see `check_end_of_input`). One store
//! serves the whole process, emptied (`WriteTx::clear`) before each input;
//! `RECFILES_FUZZ_FRESH=1` makes a new one per input instead.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use recfiles::prelude::*;
use recfiles::{FilesQuery, MultipartLimits, ReadTx, RecordId, RecordsQuery};
use recfiles_fuzz::{
    Reused, assert_check, check_end_of_input, check_every_step, clear_and, content,
    observe_snapshot,
};
use serde_json::{Map, Value};
use std::io::Read;

#[derive(Arbitrary, Debug)]
enum Call {
    CreateLocation {
        name: String,
        uri: String,
        default: bool,
    },
    CreateBucket {
        location: Option<String>,
        class: Option<String>,
        quota: Option<u64>,
        max_file: Option<u64>,
        locked: bool,
    },
    Put {
        b: u8,
        key: String,
        seed: u8,
        len: u16,
        size: Option<u64>,
        md5: Option<String>,
        blake3: Option<String>,
        mimetype: Option<String>,
    },
    SetObjectTag {
        b: u8,
        key: String,
        tag: String,
        value: String,
    },
    SetBucketTag {
        b: u8,
        tag: String,
        value: String,
    },
    DeleteObjectTag {
        b: u8,
        key: String,
        tag: String,
    },
    Copy {
        b: u8,
        key: String,
        dest: u8,
        dest_key: String,
    },
    InitMultipart {
        b: u8,
        key: String,
        size: u64,
        part_size: u64,
    },
    SetLimits {
        b: u8,
        quota: Option<u64>,
        max_file: Option<u64>,
    },
    List {
        b: u8,
        prefix: Option<String>,
        start_after: Option<String>,
        limit: Option<u8>,
        with_deleted: bool,
    },
    Lookup {
        b: u8,
        key: String,
    },
    CreateRecord {
        fields: Vec<(String, Json)>,
        schema: Option<String>,
        known_schema: bool,
    },
    CreateRecordFrom {
        body: Json,
    },
    RegisterSchema {
        url: String,
        schema: Json,
    },
    CommitRecord {
        r: u8,
        field: String,
        value: Json,
    },
    DeleteRecord {
        r: u8,
    },
    RevertRecord {
        r: u8,
        revision: u64,
    },
    CreatePid {
        r: u8,
        pid_type: String,
        pid_value: String,
    },
    FileMetadata {
        r: u8,
        key: String,
        name: String,
        value: Json,
    },
    SetAllFiles {
        r: u8,
        files: Vec<(String, u8, u16)>,
    },
}

/// Arbitrary JSON.
#[derive(Arbitrary, Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.clone()),
            Json::Arr(a) => Value::Array(a.iter().map(Json::value).collect()),
            Json::Obj(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), v.value())).collect()),
        }
    }
}

const SCHEMA: &str = "https://example.org/fuzz.json";

/// Records as seen from outside (on a snapshot): value and every revision.
fn records_seen(snap: &ReadTx, ids: &[RecordId]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            let r = snap.record_with_deleted(*id).expect("record");
            let revs = snap.record_revisions(*id).ok();
            format!("{r:?} {revs:?}")
        })
        .collect()
}

/// Brings `_files` up to date for every live record that has it, through the record's files
/// view, after a call that went past the view (a bucket-level put or copy into a record's
/// bucket, a body that sets `_files`): the store's check reports a `_files` that disagrees
/// with the bucket, and flushing is what an application does after such a call. A flush the
/// record's `$schema` refuses leaves it as it was.
fn flush_files(store: &Store, ids: &[RecordId]) {
    for id in ids {
        if let Ok(Some(mut rec)) = store.record(*id)
            && rec.body().contains_key(recfiles::FILES_FIELD)
            && store.record_bucket(*id).expect("link").is_some()
        {
            let _ = store.update_files(&mut rec, |f| f.flush());
        }
    }
}

fn new_store() -> Store {
    Store::builder()
        .cache_size(1 << 20)
        .chunk_size(1024)
        .staging_batch(2048)
        .max_key_len(48)
        .md5(true)
        .multipart_limits(MultipartLimits {
            min_part_size: 1024,
            max_part_size: 4096,
            max_parts: 4,
            ..MultipartLimits::default()
        })
        .in_memory()
        .expect("store")
}

/// One store for the whole process, emptied before each input.
static STORE: Reused<Store> = Reused::new();

fuzz_target!(|calls: Vec<Call>| {
    let store = STORE.take(new_store);
    let first = clear_and(&store, |tx| {
        tx.register_schema(
            SCHEMA,
            &serde_json::json!({"type": "object", "properties": {"title": {"type": "string"}}}),
        )?;
        tx.create_bucket(&BucketOptions::default())
    });
    let mut buckets = vec![first.id];
    let mut records: Vec<RecordId> = Vec::new();
    for call in calls.into_iter().take(32) {
        // What the store showed before the call, compared only if the call is refused.
        let before = store.snapshot().expect("snapshot");
        let pick = |i: u8| buckets[usize::from(i) % buckets.len()];
        let outcome: Result<(), recfiles::Error> = match &call {
            Call::CreateLocation { name, uri, default } => store
                .write(|tx| tx.create_location(name, uri, *default))
                .map(|l| {
                    assert_eq!(&l.name, name);
                }),
            Call::CreateBucket {
                location,
                class,
                quota,
                max_file,
                locked,
            } => {
                let opts = BucketOptions {
                    location: location.clone(),
                    storage_class: class.clone(),
                    quota_size: *quota,
                    max_file_size: *max_file,
                    locked: *locked,
                };
                store.create_bucket(&opts).map(|b| {
                    assert_eq!(
                        (b.quota_size, b.max_file_size, b.locked),
                        (*quota, *max_file, *locked)
                    );
                    buckets.push(b.id);
                })
            }
            Call::Put {
                b,
                key,
                seed,
                len,
                size,
                md5,
                blake3,
                mimetype,
            } => {
                let data = content(*seed, usize::from(*len) % 5000);
                let opts = PutOptions {
                    size: *size,
                    md5: md5.clone(),
                    blake3: blake3.clone(),
                    mimetype: mimetype.clone(),
                };
                let b = pick(*b);
                store.put_object(b, key, &data[..], &opts).map(|v| {
                    // Accepted: exactly what was sent, under exactly that key.
                    assert_eq!(v.key, *key);
                    assert_eq!(v.size, Some(data.len() as u64));
                    if let Some(s) = size {
                        assert_eq!(*s, data.len() as u64, "a lying size was accepted");
                    }
                    let mut back = Vec::new();
                    store
                        .open_version(v.version_id)
                        .expect("open")
                        .read_to_end(&mut back)
                        .expect("read");
                    assert_eq!(back, data);
                    let file = store
                        .file(v.file_id.expect("file"))
                        .expect("file row")
                        .expect("file");
                    if let Some(m) = md5 {
                        let have = file.md5.expect("md5 on");
                        let want = m.strip_prefix("md5:").unwrap_or(m);
                        assert!(
                            have[4..].eq_ignore_ascii_case(want),
                            "md5 {m} accepted for {have}"
                        );
                    }
                    if let Some(mt) = mimetype {
                        assert_eq!(&v.mimetype, mt);
                    }
                })
            }
            Call::SetObjectTag { b, key, tag, value } => match store.object(pick(*b), key) {
                Ok(Some(v)) => store.set_object_tag(v.version_id, tag, value).map(|_| {
                    let tags = store.object_tags(v.version_id).expect("tags");
                    assert_eq!(tags.get(tag), Some(value));
                }),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Call::SetBucketTag { b, tag, value } => {
                let b = pick(*b);
                store.write(|tx| tx.set_bucket_tag(b, tag, value)).map(|_| {
                    let tags = store.read(|r| r.bucket_tags(b)).expect("tags");
                    assert_eq!(tags.get(tag), Some(value));
                })
            }
            Call::DeleteObjectTag { b, key, tag } => match store.object(pick(*b), key) {
                Ok(Some(v)) => store
                    .write(|tx| tx.delete_object_tag(v.version_id, tag))
                    .map(|_| ()),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Call::Copy {
                b,
                key,
                dest,
                dest_key,
            } => match store.object(pick(*b), key) {
                Ok(Some(v)) => store
                    .copy_version(v.version_id, pick(*dest), dest_key)
                    .map(|c| {
                        assert_eq!(c.key, *dest_key);
                        assert_eq!(c.file_id, v.file_id);
                    }),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Call::InitMultipart {
                b,
                key,
                size,
                part_size,
            } => store
                .init_multipart(pick(*b), key, *size, *part_size)
                .map(|u| {
                    assert_eq!((u.size, u.part_size), (*size, *part_size));
                }),
            Call::SetLimits { b, quota, max_file } => store
                .write(|tx| tx.set_bucket_limits(pick(*b), *quota, *max_file))
                .map(|_| ()),
            Call::List {
                b,
                prefix,
                start_after,
                limit,
                with_deleted,
            } => {
                let opts = ListOptions {
                    prefix: prefix.clone(),
                    start_after: start_after.clone(),
                    limit: limit.map(usize::from),
                    with_deleted: *with_deleted,
                };
                store.list_objects(pick(*b), &opts).map(|list| {
                    assert!(list.len() <= opts.limit.unwrap_or(usize::MAX));
                    for w in list.windows(2) {
                        assert!(w[0].key < w[1].key, "listing out of order");
                    }
                    for o in &list {
                        if let Some(p) = prefix {
                            assert!(o.key.starts_with(p.as_str()));
                        }
                        if let Some(s) = start_after {
                            assert!(o.key.as_str() > s.as_str());
                        }
                    }
                })
            }
            Call::Lookup { b, key } => {
                let b = pick(*b);
                store
                    .object(b, key)
                    .and_then(|_| store.object_versions(b, key))
                    .map(|_| ())
            }
            Call::CreateRecord {
                fields,
                schema,
                known_schema,
            } => {
                let mut body: Map<String, Value> =
                    fields.iter().map(|(k, v)| (k.clone(), v.value())).collect();
                if *known_schema {
                    body.insert("$schema".into(), Value::String(SCHEMA.into()));
                } else if let Some(s) = schema {
                    body.insert("$schema".into(), Value::String(s.clone()));
                }
                let sent = body.clone();
                store.create_record(Value::Object(body)).map(|r| {
                    for (k, v) in &sent {
                        if k != "_bucket" {
                            assert_eq!(r.get(k), Some(v), "field {k:?} not stored as sent");
                        }
                    }
                    buckets.extend(r.bucket_id());
                    records.push(r.id());
                })
            }
            Call::CreateRecordFrom { body } => store.create_record(body.value()).map(|r| {
                buckets.extend(r.bucket_id());
                records.push(r.id());
            }),
            Call::RegisterSchema { url, schema } => store.register_schema(url, &schema.value()),
            Call::CommitRecord { r, field, value } => {
                match records.get(usize::from(*r) % records.len().max(1)) {
                    Some(id) => match store.record(*id) {
                        Ok(Some(mut rec)) => {
                            rec.body_mut().insert(field.clone(), value.value());
                            store.commit_record(&mut rec)
                        }
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    },
                    None => Ok(()),
                }
            }
            Call::DeleteRecord { r } => match records.get(usize::from(*r) % records.len().max(1)) {
                Some(id) => match store.record(*id) {
                    Ok(Some(mut rec)) => store.delete_record(&mut rec),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            },
            Call::RevertRecord { r, revision } => {
                match records.get(usize::from(*r) % records.len().max(1)) {
                    Some(id) => store.revert_record(*id, *revision).map(drop),
                    None => Ok(()),
                }
            }
            Call::CreatePid {
                r,
                pid_type,
                pid_value,
            } => match records.get(usize::from(*r) % records.len().max(1)) {
                Some(id) => store.create_pid(pid_type, pid_value, *id).map(drop),
                None => Ok(()),
            },
            Call::FileMetadata {
                r,
                key,
                name,
                value,
            } => match records.get(usize::from(*r) % records.len().max(1)) {
                Some(id) => match store.record(*id) {
                    Ok(Some(mut rec)) if rec.bucket_id().is_some() => {
                        let v = value.value();
                        store
                            .update_files(&mut rec, |f| {
                                f.put(key, &b"metadata"[..])?;
                                f.set_metadata(key, name, v.clone())
                            })
                            .map(|_| {
                                let files = store.files_of(&rec).expect("files").expect("bucket");
                                let fo = files.get(key).expect("the file just put");
                                assert_eq!(
                                    fo.get(name),
                                    Some(v),
                                    "metadata {name:?} not stored as sent"
                                );
                            })
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            },
            Call::SetAllFiles { r, files } => match records
                .get(usize::from(*r) % records.len().max(1))
            {
                Some(id) => match store.record(*id) {
                    Ok(Some(mut rec)) if rec.bucket_id().is_some() => {
                        let sent: Vec<(String, Vec<u8>)> = files
                            .iter()
                            .map(|(k, seed, len)| {
                                (k.clone(), content(*seed, usize::from(*len) % 3000))
                            })
                            .collect();
                        store
                            .update_files(&mut rec, |f| {
                                f.set_all(sent.iter().map(|(k, d)| (k.as_str(), &d[..])))
                            })
                            .map(|_| {
                                // Accepted: each key holds the last content sent for it.
                                let bucket = rec.bucket_id().expect("bucket");
                                for (k, _) in &sent {
                                    let last =
                                        &sent.iter().rev().find(|(k2, _)| k2 == k).expect("sent").1;
                                    let mut back = Vec::new();
                                    store
                                        .open_object(bucket, k)
                                        .expect("open")
                                        .read_to_end(&mut back)
                                        .expect("read");
                                    assert_eq!(&back, last, "set_all stored other bytes for {k:?}");
                                }
                            })
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            },
        };
        if let Err(e) = &outcome {
            // Typed, with a message, and nothing changed.
            assert!(!e.to_string().is_empty());
            assert!(
                !matches!(
                    e,
                    recfiles::Error::Engine(_) | recfiles::Error::Corruption { .. }
                ),
                "{call:?} failed in the engine: {e}"
            );
            let after = store.snapshot().expect("snapshot");
            assert_eq!(
                observe_snapshot(&after, &buckets),
                observe_snapshot(&before, &buckets),
                "{call:?} was refused ({e}) but changed the store"
            );
            assert_eq!(
                after.locations().expect("locations"),
                before.locations().expect("locations")
            );
            assert_eq!(
                records_seen(&after, &records),
                records_seen(&before, &records),
                "{call:?} was refused ({e}) but changed a record"
            );
        }
        let past_the_view = matches!(
            call,
            Call::Put { .. }
                | Call::Copy { .. }
                | Call::CommitRecord { .. }
                | Call::CreateRecord { .. }
                | Call::CreateRecordFrom { .. }
        );
        if outcome.is_ok() && past_the_view {
            flush_files(&store, &records);
        }
        if check_every_step() {
            assert_check(&store);
        }
    }
    // Every invariant of the format and the engine's own check, once the input's calls are done.
    check_end_of_input(&store);
    STORE.keep(store);
});
