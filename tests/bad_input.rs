//! Bad input at the API: every class of malformed or hostile input ends in a typed error, stores
//! nothing, leaves bucket sizes unchanged and the store consistent.

mod common;

use common::{assert_check, content, file_count, fingerprint};
use recfiles::prelude::*;
use recfiles::{Error, KeyProblem, MultipartLimits, RecordFiles, SizeLimit};
use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

const CHUNK: usize = 1024;
const BATCH: usize = 4096;
/// Below the staging batch: written in one transaction.
const SMALL: usize = 1000;
/// Above the staging batch: staged in several transactions first.
const STAGED: usize = 3 * BATCH + 17;

fn store() -> Store {
    Store::builder()
        .chunk_size(CHUNK)
        .staging_batch(BATCH)
        .max_key_len(64)
        .multipart_limits(MultipartLimits {
            min_part_size: 1024,
            max_part_size: 1 << 20,
            max_parts: 100,
            ..MultipartLimits::default()
        })
        .in_memory()
        .unwrap()
}

/// Runs `f`, which must fail, and proves it changed nothing observable.
fn refused<T: std::fmt::Debug>(
    store: &Store,
    buckets: &[BucketId],
    f: impl FnOnce() -> recfiles::Result<T>,
) -> Error {
    let before = fingerprint(store, buckets).unwrap();
    let files = file_count(store);
    let err = f().expect_err("the call must be refused");
    assert_eq!(
        fingerprint(store, buckets).unwrap(),
        before,
        "a refused call changed the store ({err})"
    );
    assert_eq!(
        file_count(store),
        files,
        "a refused call stored a file ({err})"
    );
    assert_check(store);
    err
}

/// Yields `ok_bytes` of content, then fails.
struct FailingReader {
    left: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            ));
        }
        let n = buf.len().min(self.left).min(700);
        buf[..n].fill(0x5a);
        self.left -= n;
        Ok(n)
    }
}

/// Yields `ok_bytes` of content, then panics.
struct PanickingReader {
    left: usize,
}

impl Read for PanickingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            panic!("reader panicked mid-stream");
        }
        let n = buf.len().min(self.left).min(700);
        buf[..n].fill(0xa5);
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn invalid_keys_are_refused_with_the_problem_named() {
    let s = store();
    let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
    let v = s
        .put_object(b, "ok", &b"x"[..], &PutOptions::default())
        .unwrap();
    let long = "k".repeat(65);
    let cases: [(&str, KeyProblem); 4] = [
        ("", KeyProblem::Empty),
        ("a\0b", KeyProblem::ContainsNul),
        ("\0", KeyProblem::ContainsNul),
        (&long, KeyProblem::TooLong { max: 64 }),
    ];
    for (key, problem) in cases {
        for size in [SMALL, STAGED] {
            let data = content(1, size);
            let e = refused(&s, &[b], || {
                s.put_object(b, key, &data[..], &PutOptions::default())
            });
            assert!(
                matches!(e, Error::InvalidKey { problem: p, .. } if p == problem),
                "{key:?}: {e}"
            );
        }
        let e = refused(&s, &[b], || s.copy_version(v.version_id, b, key));
        assert!(
            matches!(e, Error::InvalidKey { problem: p, .. } if p == problem),
            "{e}"
        );
        let e = refused(&s, &[b], || s.write(|tx| tx.create_version(b, key)));
        assert!(
            matches!(e, Error::InvalidKey { problem: p, .. } if p == problem),
            "{e}"
        );
        let e = refused(&s, &[b], || s.init_multipart(b, key, 5000, 1024));
        assert!(
            matches!(e, Error::InvalidKey { problem: p, .. } if p == problem),
            "{e}"
        );
    }
    // A key of exactly the limit is fine; the limit counts bytes, not characters.
    s.put_object(b, &"k".repeat(64), &b"x"[..], &PutOptions::default())
        .unwrap();
    let e = refused(&s, &[b], || {
        s.put_object(b, &"é".repeat(33), &b"x"[..], &PutOptions::default())
    });
    assert!(matches!(
        e,
        Error::InvalidKey {
            problem: KeyProblem::TooLong { max: 64 },
            ..
        }
    ));
}

#[test]
fn odd_but_valid_unicode_keys_are_distinct_and_round_trip() {
    let s = store();
    let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
    let keys = [
        "é",
        "e\u{301}", // the same text decomposed: a different key
        "\u{202E}txt.exe",
        "🦀/🦀.txt",
        "\u{FEFF}bom",
        " ",
        "\n",
        "a/../b",
        "\u{10FFFF}",
        "日本語.pdf",
        "\u{7f}\u{1}",
        "/",
    ];
    for (i, key) in keys.iter().enumerate() {
        let size = if i % 2 == 0 { SMALL } else { STAGED };
        s.put_object(b, key, &content(i as u64, size)[..], &PutOptions::default())
            .unwrap_or_else(|e| panic!("{key:?}: {e}"));
    }
    let listed = s.list_objects(b, &ListOptions::default()).unwrap();
    assert_eq!(listed.len(), keys.len());
    for (i, key) in keys.iter().enumerate() {
        let size = if i % 2 == 0 { SMALL } else { STAGED };
        let mut back = Vec::new();
        s.open_object(b, key)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, content(i as u64, size), "{key:?}");
    }
    assert_check(&s);
}

#[test]
fn declared_sizes_that_lie_are_refused() {
    let s = store();
    let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
    s.put_object(b, "keep", &content(9, SMALL)[..], &PutOptions::default())
        .unwrap();
    for size in [0, 1, SMALL, BATCH, BATCH + 1, STAGED] {
        let data = content(size as u64, size);
        let n = size as u64;
        let mut lies = vec![n + 1, n + 1000, u64::MAX];
        if n > 0 {
            lies.extend([n - 1, 0]);
        }
        for declared in lies {
            let opts = PutOptions {
                size: Some(declared),
                ..PutOptions::default()
            };
            let e = refused(&s, &[b], || s.put_object(b, "k", &data[..], &opts));
            assert!(
                matches!(e, Error::UnexpectedFileSize { expected, .. } if expected == declared),
                "size {size} declared {declared}: {e}"
            );
            let e = refused(&s, &[b], || {
                s.write(|tx| tx.put_object(b, "k", &data[..], &opts))
            });
            assert!(matches!(e, Error::UnexpectedFileSize { .. }), "{e}");
        }
        let honest = PutOptions {
            size: Some(n),
            ..PutOptions::default()
        };
        s.put_object(b, "k", &data[..], &honest).unwrap();
    }
    assert_check(&s);
}

#[test]
fn readers_failing_mid_stream_store_nothing() {
    let s = store();
    let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
    s.put_object(b, "keep", &content(9, STAGED)[..], &PutOptions::default())
        .unwrap();
    let mp = s.init_multipart(b, "mp", 5000, 2048).unwrap();
    for fail_after in [0, 1, 700, BATCH, BATCH + 1, STAGED] {
        let e = refused(&s, &[b], || {
            s.put_object(
                b,
                "k",
                FailingReader { left: fail_after },
                &PutOptions::default(),
            )
        });
        assert!(matches!(e, Error::UploadStream { .. }), "{fail_after}: {e}");
        let e = refused(&s, &[b], || {
            s.write(|tx| {
                tx.put_object(
                    b,
                    "k",
                    FailingReader { left: fail_after },
                    &PutOptions::default(),
                )
            })
        });
        assert!(matches!(e, Error::UploadStream { .. }), "{e}");
        if fail_after < 2048 {
            let e = refused(&s, &[b], || {
                s.upload_part(mp.id, 0, FailingReader { left: fail_after })
            });
            assert!(matches!(e, Error::UploadStream { .. }), "{e}");
        }
    }
    s.put_object(b, "k", &content(3, STAGED)[..], &PutOptions::default())
        .unwrap();
    assert_check(&s);
}

#[test]
fn a_refused_put_leaves_nothing_even_when_the_transaction_carries_on() {
    // Inside one write transaction the caller may catch a refused put and go on to commit
    // other work: the refused put must not leave a file, a chunk or a reference behind.
    let s = store();
    let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
    s.put_object(
        b,
        "keep",
        &content(9, 3 * CHUNK)[..],
        &PutOptions::default(),
    )
    .unwrap();
    let before = fingerprint(&s, &[b]).unwrap();
    let files = file_count(&s);
    let wrong_b3 = PutOptions {
        blake3: Some(format!("blake3:{}", "0".repeat(64))),
        ..PutOptions::default()
    };
    let wrong_md5 = PutOptions {
        md5: Some("md5:00000000000000000000000000000000".into()),
        ..PutOptions::default()
    };
    let lying = PutOptions {
        size: Some(2 * CHUNK as u64),
        ..PutOptions::default()
    };
    s.write(|tx| {
        for fail_after in [0, 700, CHUNK + 1, 3 * CHUNK + 5] {
            let e = tx
                .put_object(
                    b,
                    "k",
                    FailingReader { left: fail_after },
                    &PutOptions::default(),
                )
                .unwrap_err();
            assert!(matches!(e, Error::UploadStream { .. }), "{fail_after}: {e}");
        }
        for size in [SMALL, CHUNK + 1, 3 * CHUNK + 5] {
            // New content, and content already stored (whole or as chunks).
            for data in [content(40 + size as u64, size), content(9, 3 * CHUNK)] {
                for opts in [&wrong_b3, &wrong_md5] {
                    let e = tx.put_object(b, "k", &data[..], opts).unwrap_err();
                    assert!(matches!(e, Error::ChecksumMismatch { .. }), "{size}: {e}");
                }
            }
            // Longer than declared: refused after chunks were written.
            let e = tx
                .put_object(b, "k", &content(50 + size as u64, 3 * CHUNK)[..], &lying)
                .unwrap_err();
            assert!(matches!(e, Error::UnexpectedFileSize { .. }), "{e}");
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(fingerprint(&s, &[b]).unwrap(), before);
    assert_eq!(file_count(&s), files);
    assert_check(&s);
}

#[test]
fn readers_panicking_mid_stream_store_nothing_and_the_store_keeps_working() {
    let s = store();
    let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
    s.put_object(b, "keep", &content(9, STAGED)[..], &PutOptions::default())
        .unwrap();
    let mp = s.init_multipart(b, "mp", 5000, 2048).unwrap();
    let before = fingerprint(&s, &[b]).unwrap();
    let files = file_count(&s);
    for panic_after in [0, 1, 700, BATCH, BATCH + 1, STAGED] {
        let r = catch_unwind(AssertUnwindSafe(|| {
            s.put_object(
                b,
                "k",
                PanickingReader { left: panic_after },
                &PutOptions::default(),
            )
        }));
        assert!(r.is_err(), "the panic propagates");
        let r = catch_unwind(AssertUnwindSafe(|| {
            s.write(|tx| {
                tx.put_object(
                    b,
                    "k",
                    PanickingReader { left: panic_after },
                    &PutOptions::default(),
                )
            })
        }));
        assert!(r.is_err());
        if panic_after < 2048 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                s.upload_part(mp.id, 0, PanickingReader { left: panic_after })
            }));
            assert!(r.is_err());
        }
        assert_eq!(
            fingerprint(&s, &[b]).unwrap(),
            before,
            "panic after {panic_after} left traces"
        );
        assert_eq!(file_count(&s), files);
        assert_check(&s);
    }
    let data = content(4, STAGED);
    s.put_object(b, "k", &data[..], &PutOptions::default())
        .unwrap();
    s.upload_part(mp.id, 0, &content(5, 2048)[..]).unwrap();
    let mut back = Vec::new();
    s.open_object(b, "k")
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
    assert_check(&s);
}

#[test]
fn quotas_and_file_size_limits_hold_at_the_exact_boundary() {
    let s = store();
    for (quota, max_file) in [(Some(STAGED as u64), None), (None, Some(STAGED as u64))] {
        let limit = if quota.is_some() {
            SizeLimit::Quota
        } else {
            SizeLimit::MaxFileSize
        };
        let b = s
            .create_bucket(&BucketOptions {
                quota_size: quota,
                max_file_size: max_file,
                ..BucketOptions::default()
            })
            .unwrap()
            .id;
        // One byte over, streamed and declared, small path and staged path.
        let over = content(1, STAGED + 1);
        let e = refused(&s, &[b], || {
            s.put_object(b, "k", &over[..], &PutOptions::default())
        });
        assert!(
            matches!(e, Error::FileSize { limit: l, limit_bytes, .. } if l == limit && limit_bytes == STAGED as u64),
            "{e}"
        );
        let declared = PutOptions {
            size: Some(STAGED as u64 + 1),
            ..PutOptions::default()
        };
        let e = refused(&s, &[b], || s.put_object(b, "k", &over[..], &declared));
        assert!(
            matches!(e, Error::FileSize { attempted, .. } if attempted == STAGED as u64 + 1),
            "{e}"
        );
        // Exactly the limit is accepted.
        s.put_object(b, "k", &content(2, STAGED)[..], &PutOptions::default())
            .unwrap();
        assert_eq!(s.bucket(b).unwrap().unwrap().size, STAGED as u64);
        if quota.is_some() {
            // The quota is now used up: one more byte is refused, however it arrives.
            let e = refused(&s, &[b], || {
                s.put_object(b, "one", &b"x"[..], &PutOptions::default())
            });
            assert!(
                matches!(
                    e,
                    Error::FileSize {
                        limit: SizeLimit::Quota,
                        limit_bytes: 0,
                        ..
                    }
                ),
                "{e}"
            );
            let v = s.object(b, "k").unwrap().unwrap();
            let e = refused(&s, &[b], || s.copy_version(v.version_id, b, "copy"));
            assert!(matches!(e, Error::FileSize { .. }), "{e}");
            let e = refused(&s, &[b], || s.init_multipart(b, "mp", 2049, 1024));
            assert!(matches!(e, Error::FileSize { .. }), "{e}");
            // An empty file still fits.
            s.put_object(b, "empty", &b""[..], &PutOptions::default())
                .unwrap();
        } else {
            s.put_object(b, "k2", &content(3, STAGED)[..], &PutOptions::default())
                .unwrap();
        }
    }
    // Limits at the very top of the range do not overflow.
    let b = s
        .create_bucket(&BucketOptions {
            quota_size: Some(u64::MAX),
            max_file_size: Some(u64::MAX),
            ..BucketOptions::default()
        })
        .unwrap()
        .id;
    for size in [SMALL, STAGED] {
        s.put_object(b, "k", &content(5, size)[..], &PutOptions::default())
            .unwrap();
    }
    // A multipart reservation counts against the quota at the boundary too.
    let b = s
        .create_bucket(&BucketOptions {
            quota_size: Some(5000),
            ..BucketOptions::default()
        })
        .unwrap()
        .id;
    let e = refused(&s, &[b], || s.init_multipart(b, "mp", 5001, 1024));
    assert!(
        matches!(
            e,
            Error::FileSize {
                limit: SizeLimit::Quota,
                ..
            }
        ),
        "{e}"
    );
    s.init_multipart(b, "mp", 5000, 1024).unwrap();
    let e = refused(&s, &[b], || {
        s.put_object(b, "x", &b"x"[..], &PutOptions::default())
    });
    assert!(matches!(e, Error::FileSize { .. }), "{e}");
    assert_check(&s);
}

#[test]
fn deleted_and_locked_buckets_refuse_modifications() {
    let s = store();
    let other = s.create_bucket(&BucketOptions::default()).unwrap().id;
    let src = s
        .put_object(other, "src", &content(7, SMALL)[..], &PutOptions::default())
        .unwrap();
    for deleted in [false, true] {
        let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
        let v1 = s
            .put_object(b, "a", &content(1, SMALL)[..], &PutOptions::default())
            .unwrap();
        s.put_object(b, "a", &content(2, SMALL)[..], &PutOptions::default())
            .unwrap();
        let mp = s.init_multipart(b, "mp", 3000, 1024).unwrap();
        for n in 0..3 {
            s.upload_part(
                mp.id,
                n,
                &content(10 + u64::from(n), mp.expected_part_size(n) as usize)[..],
            )
            .unwrap();
        }
        if deleted {
            assert!(s.delete_bucket(b).unwrap());
        } else {
            s.set_bucket_locked(b, true).unwrap();
        }
        let is_refusal = |e: &Error| {
            if deleted {
                matches!(e, Error::BucketDeleted { bucket } if *bucket == b)
            } else {
                matches!(e, Error::BucketLocked { bucket } if *bucket == b)
            }
        };
        let ids = [b, other];
        let checks: Vec<(&str, Error)> = vec![
            (
                "put small",
                refused(&s, &ids, || {
                    s.put_object(b, "n", &content(3, SMALL)[..], &PutOptions::default())
                }),
            ),
            (
                "put staged",
                refused(&s, &ids, || {
                    s.put_object(b, "n", &content(3, STAGED)[..], &PutOptions::default())
                }),
            ),
            (
                "put in tx",
                refused(&s, &ids, || {
                    s.write(|tx| tx.put_object(b, "n", &b"x"[..], &PutOptions::default()))
                }),
            ),
            ("delete", refused(&s, &ids, || s.delete_object(b, "a"))),
            (
                "remove",
                refused(&s, &ids, || s.remove_version(v1.version_id)),
            ),
            (
                "restore",
                refused(&s, &ids, || s.restore_version(v1.version_id)),
            ),
            (
                "copy in",
                refused(&s, &ids, || s.copy_version(src.version_id, b, "c")),
            ),
            (
                "create version",
                refused(&s, &ids, || s.write(|tx| tx.create_version(b, "n"))),
            ),
            (
                "init multipart",
                refused(&s, &ids, || s.init_multipart(b, "m2", 3000, 1024)),
            ),
            (
                "upload part",
                refused(&s, &ids, || s.upload_part(mp.id, 0, &content(10, 1024)[..])),
            ),
            (
                "complete multipart",
                refused(&s, &ids, || s.complete_multipart(mp.id)),
            ),
            (
                "abort multipart",
                refused(&s, &ids, || s.abort_multipart(mp.id)),
            ),
            (
                "sync into",
                refused(&s, &ids, || s.sync_bucket(other, b, true)),
            ),
        ];
        for (what, e) in checks {
            assert!(
                is_refusal(&e),
                "{what} on a {} bucket: {e}",
                if deleted { "deleted" } else { "locked" }
            );
        }
        if !deleted {
            let e = refused(&s, &ids, || s.remove_bucket(b));
            assert!(is_refusal(&e), "{e}");
        }
    }
    let missing = BucketId::new();
    let e = refused(&s, &[other], || {
        s.put_object(missing, "k", &b"x"[..], &PutOptions::default())
    });
    assert!(
        matches!(e, Error::BucketNotFound { bucket } if bucket == missing),
        "{e}"
    );
    assert_check(&s);
}

#[test]
fn checksum_mismatches_store_nothing() {
    for store_md5 in [false, true] {
        let s = Store::builder()
            .chunk_size(CHUNK)
            .staging_batch(BATCH)
            .md5(store_md5)
            .in_memory()
            .unwrap();
        let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
        for size in [0, SMALL, STAGED] {
            let data = content(size as u64 + 1, size);
            let md5 = recfiles_md5(&s, &data);
            let wrong = PutOptions {
                md5: Some("md5:00000000000000000000000000000000".into()),
                ..PutOptions::default()
            };
            let malformed = PutOptions {
                md5: Some("md5:not hex at all\0".into()),
                ..PutOptions::default()
            };
            let wrong_b3 = PutOptions {
                blake3: Some(format!("blake3:{}", "0".repeat(64))),
                ..PutOptions::default()
            };
            for opts in [&wrong, &malformed, &wrong_b3] {
                let e = refused(&s, &[b], || s.put_object(b, "k", &data[..], opts));
                assert!(
                    matches!(e, Error::ChecksumMismatch { .. }),
                    "size {size}: {e}"
                );
                let e = refused(&s, &[b], || {
                    s.write(|tx| tx.put_object(b, "k", &data[..], opts))
                });
                assert!(
                    matches!(e, Error::ChecksumMismatch { .. }),
                    "size {size}: {e}"
                );
            }
            // The right checksum, in both accepted spellings, is accepted on every path.
            for spelling in [format!("md5:{md5}"), md5.to_uppercase()] {
                let right = PutOptions {
                    md5: Some(spelling),
                    ..PutOptions::default()
                };
                s.put_object(b, "k", &data[..], &right)
                    .unwrap_or_else(|e| panic!("size {size}, store md5 {store_md5}: {e}"));
                s.write(|tx| tx.put_object(b, "k", &data[..], &right))
                    .unwrap();
            }
        }
        assert_check(&s);
    }
}

/// The md5 of `data` as the store computes it (through a scratch store with md5 on).
fn recfiles_md5(_s: &Store, data: &[u8]) -> String {
    let scratch = Store::builder().md5(true).in_memory().unwrap();
    let b = scratch.create_bucket(&BucketOptions::default()).unwrap().id;
    let v = scratch
        .put_object(b, "k", data, &PutOptions::default())
        .unwrap();
    let f = scratch.file(v.file_id.unwrap()).unwrap().unwrap();
    f.md5.unwrap().trim_start_matches("md5:").to_string()
}

// ---- records and their files -------------------------------------------------------------

const SCHEMA: &str = "https://example.org/schemas/doc.json";

fn records_store() -> Store {
    let s = store();
    s.register_schema(
        SCHEMA,
        &serde_json::json!({
            "type": "object",
            "properties": {"title": {"type": "string"}, "year": {"type": "integer", "minimum": 1900}},
            "required": ["title"]
        }),
    )
    .unwrap();
    s
}

/// Everything observable about some records: current value and every revision, plus the
/// buckets (records own buckets) and the files they hold.
type RecordsSeen = (
    Vec<(Option<Record>, Vec<recfiles::RecordRevision>)>,
    std::collections::BTreeMap<BucketId, Option<common::SeenBucket>>,
);

fn records_seen(s: &Store, ids: &[RecordId]) -> RecordsSeen {
    let records = ids
        .iter()
        .map(|id| {
            let current = s.read(|r| r.record_with_deleted(*id)).unwrap();
            let revisions = s.record_revisions(*id).unwrap_or_default();
            (current, revisions)
        })
        .collect();
    let buckets: Vec<BucketId> = s.buckets().unwrap().iter().map(|b| b.id).collect();
    (records, fingerprint(s, &buckets).unwrap())
}

/// Runs `f`, which must fail, and proves no record, bucket or file changed.
fn record_refused<T: std::fmt::Debug>(
    s: &Store,
    ids: &[RecordId],
    f: impl FnOnce() -> recfiles::Result<T>,
) -> Error {
    let before = records_seen(s, ids);
    let files = file_count(s);
    let err = f().expect_err("the call must be refused");
    assert!(
        records_seen(s, ids) == before,
        "a refused call changed records ({err})"
    );
    assert_eq!(file_count(s), files, "a refused call stored a file ({err})");
    assert_check(s);
    err
}

#[test]
fn record_bodies_that_are_not_objects_or_break_their_schema_are_refused() {
    use serde_json::json;
    let s = records_store();
    let r = s
        .create_record(json!({"$schema": SCHEMA, "title": "ok"}))
        .unwrap();
    let ids = [r.id()];
    let bad = [
        (json!([1, 2]), "NotAnObject"),
        (json!("text"), "NotAnObject"),
        (json!(null), "NotAnObject"),
        (json!(3.5), "NotAnObject"),
        (
            json!({"$schema": "https://example.org/unknown.json"}),
            "SchemaNotFound",
        ),
        (json!({"$schema": 7}), "SchemaNotFound"),
        (json!({"$schema": SCHEMA}), "SchemaValidation"),
        (
            json!({"$schema": SCHEMA, "title": 5, "year": 1800}),
            "SchemaValidation",
        ),
        (
            json!({"$schema": SCHEMA, "title": "t", "year": "1999"}),
            "SchemaValidation",
        ),
    ];
    for (body, kind) in bad {
        let e = record_refused(&s, &ids, || s.create_record(body.clone()));
        let got = format!("{e:?}");
        assert!(got.starts_with(kind), "{body}: expected {kind}, got {e}");
    }
    // A commit that breaks the schema stores nothing and leaves the caller's revision alone.
    let mut changed = r.clone();
    changed.body_mut().insert("year".into(), json!(1492));
    let e = record_refused(&s, &ids, || s.commit_record(&mut changed));
    assert!(matches!(e, Error::SchemaValidation { .. }), "{e}");
    assert_eq!(changed.revision_id(), r.revision_id());
    let e = record_refused(&s, &ids, || {
        s.register_schema("https://example.org/bad.json", &json!({"type": 12}))
    });
    assert!(matches!(e, Error::InvalidSchema { .. }), "{e}");
}

#[test]
fn record_lifecycle_calls_in_the_wrong_state_are_refused() {
    use serde_json::json;
    let s = records_store();
    let mut r = s.create_record(json!({"title": "a"})).unwrap();
    let stale = r.clone();
    r.body_mut().insert("title".into(), json!("b"));
    s.commit_record(&mut r).unwrap();
    let mut gone = s.create_record(json!({"title": "gone"})).unwrap();
    s.delete_record(&mut gone).unwrap();
    let ids = [r.id(), gone.id()];

    let mut stale_copy = stale.clone();
    let e = record_refused(&s, &ids, || s.commit_record(&mut stale_copy));
    assert!(matches!(e, Error::RevisionConflict { .. }), "{e}");
    let mut stale_copy = stale.clone();
    let e = record_refused(&s, &ids, || s.delete_record(&mut stale_copy));
    assert!(matches!(e, Error::RevisionConflict { .. }), "{e}");
    let mut g = gone.clone();
    let e = record_refused(&s, &ids, || s.commit_record(&mut g));
    assert!(matches!(e, Error::RecordDeleted { .. }), "{e}");
    let mut g = gone.clone();
    let e = record_refused(&s, &ids, || s.delete_record(&mut g));
    assert!(matches!(e, Error::RecordDeleted { .. }), "{e}");
    let mut live = r.clone();
    let e = record_refused(&s, &ids, || s.undelete_record(&mut live));
    assert!(
        !matches!(e, Error::Engine(_) | Error::Corruption { .. }),
        "{e}"
    );
    for revision in [2, 99, u64::MAX] {
        let e = record_refused(&s, &ids, || s.revert_record(r.id(), revision));
        assert!(matches!(e, Error::RevisionNotFound { .. }), "{e}");
    }
    let missing = RecordId::new();
    let e = record_refused(&s, &ids, || s.revert_record(missing, 0));
    assert!(matches!(e, Error::RecordNotFound { .. }), "{e}");
    let e = record_refused(&s, &ids, || s.remove_record(missing));
    assert!(matches!(e, Error::RecordNotFound { .. }), "{e}");
    for id in [r.id(), gone.id()] {
        let opts = RecordOptions::default().with_id(id);
        let e = record_refused(&s, &ids, || {
            s.create_record_with(json!({"title": "dup"}), &opts)
        });
        assert!(matches!(e, Error::RecordExists { .. }), "{e}");
    }
    for (t, v) in [("", "1"), ("doi", ""), ("a\0b", "1")] {
        let e = record_refused(&s, &ids, || s.create_pid(t, v, r.id()));
        assert!(matches!(e, Error::InvalidPid { .. }), "{t:?}:{v:?}: {e}");
    }
    s.create_pid("doi", "10.1/x", r.id()).unwrap();
    let e = record_refused(&s, &ids, || s.create_pid("doi", "10.1/x", gone.id()));
    assert!(matches!(e, Error::PidExists { .. }), "{e}");
}

#[test]
fn refusals_inside_a_record_files_update_roll_back_the_whole_update() {
    use serde_json::json;
    let s = records_store();
    let mut r = s.create_record(json!({"title": "with files"})).unwrap();
    s.update_files(&mut r, |f| {
        f.put("kept.txt", &content(1, SMALL)[..]).map(drop)
    })
    .unwrap();
    let ids = [r.id()];
    let put_then = |f: &mut RecordFiles<'_, '_>, key: &str| {
        f.put("new.bin", &content(2, STAGED)[..])?;
        f.set_metadata("kept.txt", "description", "changed")?;
        f.put(key, &b"x"[..]).map(drop)
    };
    // Every reserved metadata name, after other changes in the same update.
    let mut names: Vec<String> = recfiles::RESERVED_KEYS
        .iter()
        .map(|k| k.to_string())
        .collect();
    names.extend(["__class__".into(), "_sa_instance_state".into()]);
    for name in &names {
        let mut copy = r.clone();
        let e = record_refused(&s, &ids, || {
            s.update_files(&mut copy, |f| {
                put_then(f, "b.txt")?;
                f.set_metadata("b.txt", name, "value")
            })
        });
        assert!(matches!(e, Error::ReservedKey { .. }), "{name}: {e}");
        assert_eq!(copy, r, "the caller's record is left as it was");
    }
    // Bad keys, lying sizes, failing readers and checksum mismatches through the view.
    let mut copy = r.clone();
    let e = record_refused(&s, &ids, || s.update_files(&mut copy, |f| put_then(f, "")));
    assert!(matches!(e, Error::InvalidKey { .. }), "{e}");
    let e = record_refused(&s, &ids, || {
        s.update_files(&mut copy, |f| {
            put_then(f, "c.txt")?;
            let lie = PutOptions {
                size: Some(SMALL as u64 + 1),
                ..PutOptions::default()
            };
            f.put_with("d.txt", &content(3, SMALL)[..], &lie).map(drop)
        })
    });
    assert!(matches!(e, Error::UnexpectedFileSize { .. }), "{e}");
    let e = record_refused(&s, &ids, || {
        s.update_files(&mut copy, |f| {
            put_then(f, "c.txt")?;
            f.put("d.txt", FailingReader { left: 5000 }).map(drop)
        })
    });
    assert!(matches!(e, Error::UploadStream { .. }), "{e}");
    let before = records_seen(&s, &ids);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        s.update_files(&mut copy, |f| {
            put_then(f, "c.txt")?;
            f.put("d.txt", PanickingReader { left: 5000 }).map(drop)
        })
    }));
    assert!(panicked.is_err());
    assert!(
        records_seen(&s, &ids) == before,
        "a panic inside update_files left traces"
    );
    assert_check(&s);
    let e = record_refused(&s, &ids, || {
        s.update_files(&mut copy, |f| {
            put_then(f, "c.txt")?;
            f.delete("no-such-file").map(drop)
        })
    });
    assert!(
        !matches!(e, Error::Engine(_) | Error::Corruption { .. }),
        "{e}"
    );
    assert_eq!(copy, r);
    // The record still takes a good update afterwards.
    s.update_files(&mut r, |f| put_then(f, "fine.txt")).unwrap();
    assert_check(&s);
}

/// `levels` arrays nested in one another around `inner`.
fn nested(levels: usize, inner: serde_json::Value) -> serde_json::Value {
    (0..levels).fold(inner, |v, _| serde_json::Value::Array(vec![v]))
}

/// Whatever a store accepts it can read back: a record body, file metadata in `_files` and a
/// schema nested past `MAX_JSON_DEPTH` are refused when written (`JsonTooDeep`, nothing stored),
/// one at the limit is stored and read back, and `check()` stays clean.
#[test]
fn json_nested_too_deep_to_read_back_is_refused_when_written() {
    use recfiles::MAX_JSON_DEPTH;
    use serde_json::json;
    let s = records_store();
    // The body is level 1, "deep" holds the rest.
    let at_limit = json!({"title": "deep", "deep": nested(MAX_JSON_DEPTH - 1, json!(1))});
    let r = s.create_record(at_limit.clone()).unwrap();
    assert_eq!(
        s.record(r.id()).unwrap().unwrap().body()["deep"],
        at_limit["deep"]
    );
    let ids = [r.id()];
    for levels in [MAX_JSON_DEPTH, 127, 128, 140, 1_000] {
        let body = json!({"title": "too deep", "deep": nested(levels, json!(1))});
        let e = record_refused(&s, &ids, || s.create_record(body.clone()));
        assert!(
            matches!(e, Error::JsonTooDeep { depth, limit, .. }
                if depth == levels + 1 && limit == MAX_JSON_DEPTH),
            "{levels}: {e}"
        );
        let mut copy = s.record(r.id()).unwrap().unwrap();
        copy.body_mut()
            .insert("deep".into(), nested(levels, json!(1)));
        let e = record_refused(&s, &ids, || s.commit_record(&mut copy));
        assert!(matches!(e, Error::JsonTooDeep { .. }), "{levels}: {e}");
    }
    // File metadata lives three levels down (body, `_files`, the file's entry).
    let mut with_file = s.record(r.id()).unwrap().unwrap();
    s.update_files(&mut with_file, |f| f.put("a.txt", &b"a"[..]).map(drop))
        .unwrap();
    let ids = [with_file.id()];
    let mut copy = with_file.clone();
    let e = record_refused(&s, &ids, || {
        s.update_files(&mut copy, |f| {
            f.set_metadata("a.txt", "description", nested(126, json!("x")))
        })
    });
    assert!(matches!(e, Error::JsonTooDeep { .. }), "{e}");
    assert_eq!(
        s.record(with_file.id()).unwrap().unwrap(),
        with_file,
        "the record reads back as it was"
    );
    // A schema too deep is refused, and every other schema keeps working.
    let deep_schema = (0..140).fold(
        json!({"type": "string"}),
        |v, _| json!({"type": "object", "properties": {"a": v}}),
    );
    let e = s
        .register_schema("https://example.org/deep.json", &deep_schema)
        .unwrap_err();
    assert!(matches!(e, Error::JsonTooDeep { .. }), "{e}");
    s.register_schema("https://example.org/other.json", &json!({"type": "object"}))
        .unwrap();
    s.create_record(json!({"$schema": SCHEMA, "title": "still validated"}))
        .unwrap();
    let e = s
        .create_record(json!({"$schema": SCHEMA, "year": 1800}))
        .unwrap_err();
    assert!(matches!(e, Error::SchemaValidation { .. }), "{e}");
    assert_check(&s);
}

/// A `$ref` that leads back to itself through `$ref`s alone constrains nothing: refused at
/// registration, so it never accepts every body. Recursive schemas that do constrain are fine.
#[test]
fn a_schema_whose_reference_loops_on_itself_is_refused() {
    use serde_json::json;
    let s = records_store();
    for (url, schema) in [
        ("loop", json!({"$ref": "loop"})),
        ("https://example.org/self.json", json!({"$ref": "#"})),
        (
            "https://example.org/inner.json",
            json!({"type": "object", "properties": {"a": {"$ref": "#/properties/a"}}}),
        ),
    ] {
        let e = s.register_schema(url, &schema).unwrap_err();
        assert!(matches!(e, Error::InvalidSchema { .. }), "{url}: {e}");
        let e = s.create_record(json!({"$schema": url})).unwrap_err();
        assert!(matches!(e, Error::SchemaNotFound { .. }), "{url}: {e}");
    }
    // Two schemas that refer to each other by `$ref` alone.
    s.register_schema("https://example.org/a.json", &json!({"type": "object"}))
        .unwrap();
    s.register_schema("https://example.org/b.json", &json!({"$ref": "a.json"}))
        .unwrap();
    let e = s
        .register_schema("https://example.org/a.json", &json!({"$ref": "b.json"}))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidSchema { .. }), "{e}");
    let tree = json!({
        "type": "object",
        "properties": {"title": {"type": "string"}, "child": {"$ref": "#"}},
        "required": ["title"]
    });
    s.register_schema("https://example.org/tree.json", &tree)
        .unwrap();
    s.create_record(
        json!({"$schema": "https://example.org/tree.json", "title": "t",
        "child": {"title": "c"}}),
    )
    .unwrap();
    let e = s
        .create_record(
            json!({"$schema": "https://example.org/tree.json", "title": "t",
            "child": {"title": 5}}),
        )
        .unwrap_err();
    assert!(matches!(e, Error::SchemaValidation { .. }), "{e}");
}

#[test]
fn the_callers_reader_failing_and_the_store_file_failing_are_told_apart() {
    use recfiles::{FaultKind, FaultPlan, FaultyBackend, SimulatedDisk};
    let plan = FaultPlan::new();
    let s = Store::builder()
        .chunk_size(CHUNK)
        .staging_batch(BATCH)
        .open_backend(FaultyBackend::new(SimulatedDisk::new(), plan.clone()))
        .unwrap();
    let b = s.create_bucket(&BucketOptions::default()).unwrap().id;
    for size in [SMALL, STAGED] {
        // The caller's reader fails on a healthy store file: the caller's error.
        let e = s
            .put_object(
                b,
                "k",
                FailingReader { left: size / 2 },
                &PutOptions::default(),
            )
            .unwrap_err();
        match &e {
            Error::UploadStream { source } => {
                assert_eq!(source.kind(), io::ErrorKind::ConnectionReset, "{e}")
            }
            other => panic!("{size}: the reader's failure came back as {other:?}"),
        }
    }
    // The store file fails under a healthy reader: the store's error, never the reader's.
    plan.arm(FaultKind::Sync, 0);
    for size in [SMALL, STAGED] {
        let e = s
            .put_object(b, "k", &content(7, size)[..], &PutOptions::default())
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io(_) | Error::Engine(_) | Error::CommitUnknown { .. }
            ),
            "{size}: the store's failure came back as {e:?}"
        );
    }
    assert!(plan.tripped());
}
