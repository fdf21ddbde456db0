//! Metadata fuzzing: arbitrary keys, tag keys and values, bucket options, location names and
//! put options (sizes that lie, md5 and blake3 strings, MIME types). Every call must end in
//! success or a typed error, never a panic; a refused call must leave the store exactly as it
//! was and its integrity check passing; an accepted put must hold exactly what was sent.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use recfiles::prelude::*;
use recfiles::{FilesQuery, MultipartLimits};
use recfiles_fuzz::{assert_check, content, observe};
use std::io::Read;

#[derive(Arbitrary, Debug)]
enum Call {
    CreateLocation { name: String, uri: String, default: bool },
    CreateBucket { location: Option<String>, class: Option<String>, quota: Option<u64>, max_file: Option<u64>, locked: bool },
    Put { b: u8, key: String, seed: u8, len: u16, size: Option<u64>, md5: Option<String>, blake3: Option<String>, mimetype: Option<String> },
    SetObjectTag { b: u8, key: String, tag: String, value: String },
    SetBucketTag { b: u8, tag: String, value: String },
    DeleteObjectTag { b: u8, key: String, tag: String },
    Copy { b: u8, key: String, dest: u8, dest_key: String },
    InitMultipart { b: u8, key: String, size: u64, part_size: u64 },
    SetLimits { b: u8, quota: Option<u64>, max_file: Option<u64> },
    List { b: u8, prefix: Option<String>, start_after: Option<String>, limit: Option<u8>, with_deleted: bool },
    Lookup { b: u8, key: String },
}

fuzz_target!(|calls: Vec<Call>| {
    let store = Store::builder()
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
        .expect("store");
    let mut buckets = vec![store.create_bucket(&BucketOptions::default()).expect("bucket").id];
    for call in calls.into_iter().take(32) {
        let before = observe(&store, &buckets);
        let locations_before = store.read(|r| r.locations()).expect("locations");
        let pick = |i: u8| buckets[usize::from(i) % buckets.len()];
        let outcome: Result<(), recfiles::Error> = match &call {
            Call::CreateLocation { name, uri, default } => {
                store.write(|tx| tx.create_location(name, uri, *default)).map(|l| {
                    assert_eq!(&l.name, name);
                })
            }
            Call::CreateBucket { location, class, quota, max_file, locked } => {
                let opts = BucketOptions {
                    location: location.clone(),
                    storage_class: class.clone(),
                    quota_size: *quota,
                    max_file_size: *max_file,
                    locked: *locked,
                };
                store.create_bucket(&opts).map(|b| {
                    assert_eq!((b.quota_size, b.max_file_size, b.locked), (*quota, *max_file, *locked));
                    buckets.push(b.id);
                })
            }
            Call::Put { b, key, seed, len, size, md5, blake3, mimetype } => {
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
                    store.open_version(v.version_id).expect("open").read_to_end(&mut back).expect("read");
                    assert_eq!(back, data);
                    let file = store.file(v.file_id.expect("file")).expect("file row").expect("file");
                    if let Some(m) = md5 {
                        let have = file.md5.expect("md5 on");
                        let want = m.strip_prefix("md5:").unwrap_or(m);
                        assert!(have[4..].eq_ignore_ascii_case(want), "md5 {m} accepted for {have}");
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
                Ok(Some(v)) => store.write(|tx| tx.delete_object_tag(v.version_id, tag)).map(|_| ()),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Call::Copy { b, key, dest, dest_key } => match store.object(pick(*b), key) {
                Ok(Some(v)) => store.copy_version(v.version_id, pick(*dest), dest_key).map(|c| {
                    assert_eq!(c.key, *dest_key);
                    assert_eq!(c.file_id, v.file_id);
                }),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Call::InitMultipart { b, key, size, part_size } => {
                store.init_multipart(pick(*b), key, *size, *part_size).map(|u| {
                    assert_eq!((u.size, u.part_size), (*size, *part_size));
                })
            }
            Call::SetLimits { b, quota, max_file } => {
                store.write(|tx| tx.set_bucket_limits(pick(*b), *quota, *max_file)).map(|_| ())
            }
            Call::List { b, prefix, start_after, limit, with_deleted } => {
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
                store.object(b, key).and_then(|_| store.object_versions(b, key)).map(|_| ())
            }
        };
        if let Err(e) = &outcome {
            // Typed, with a message, and nothing changed.
            assert!(!e.to_string().is_empty());
            assert!(
                !matches!(e, recfiles::Error::Engine(_) | recfiles::Error::Corruption { .. }),
                "{call:?} failed in the engine: {e}"
            );
            assert_eq!(observe(&store, &buckets), before, "{call:?} was refused ({e}) but changed the store");
            assert_eq!(store.read(|r| r.locations()).expect("locations"), locations_before);
        }
        assert_check(&store);
    }
});
