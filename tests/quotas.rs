//! Limits on put: quota, maximum file size, declared size, checksums. A rejected put stores
//! nothing and leaves the bucket size as it was.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{Error, SizeLimit};

fn limited(store: &Store, quota: Option<u64>, max: Option<u64>) -> recfiles::Bucket {
    store
        .create_bucket(&BucketOptions {
            quota_size: quota,
            max_file_size: max,
            ..BucketOptions::default()
        })
        .unwrap()
}

fn assert_untouched(store: &Store, b: BucketId, size: u64) {
    assert_eq!(store.bucket(b).unwrap().unwrap().size, size);
    assert_consistent(store);
}

#[test]
fn a_put_exactly_at_the_quota_succeeds_and_one_byte_more_fails() {
    let store = small_store();
    let b = limited(&store, Some(100), None);
    put(&store, b.id, "a", &bytes(1, 60));
    let err = store
        .put_object(b.id, "b", &bytes(2, 41)[..], &PutOptions::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::FileSize {
                limit: SizeLimit::Quota,
                limit_bytes: 40,
                ..
            }
        ),
        "{err:?}"
    );
    assert_untouched(&store, b.id, 60);
    put(&store, b.id, "b", &bytes(2, 40));
    assert_untouched(&store, b.id, 100);
}

#[test]
fn every_kept_version_counts_towards_the_quota() {
    let store = small_store();
    let b = limited(&store, Some(100), None);
    put(&store, b.id, "k", &bytes(1, 75));
    let err = store
        .put_object(b.id, "k", &bytes(2, 75)[..], &PutOptions::default())
        .unwrap_err();
    assert!(matches!(
        err,
        Error::FileSize {
            limit: SizeLimit::Quota,
            ..
        }
    ));
    assert_untouched(&store, b.id, 75);
}

#[test]
fn removing_versions_frees_quota() {
    let store = small_store();
    let b = limited(&store, Some(100), None);
    let v = put(&store, b.id, "k", &bytes(1, 75));
    store.remove_version(v.version_id).unwrap();
    put(&store, b.id, "k", &bytes(2, 75));
    assert_untouched(&store, b.id, 75);
}

#[test]
fn a_zero_quota_means_no_quota() {
    let store = small_store();
    let b = limited(&store, Some(0), None);
    put(&store, b.id, "k", &bytes(1, 10_000));
    assert_untouched(&store, b.id, 10_000);
}

#[test]
fn max_file_size_refuses_larger_files_and_zero_refuses_any_content() {
    let store = small_store();
    let b = limited(&store, None, Some(10));
    put(&store, b.id, "ok", &bytes(1, 10));
    let err = store
        .put_object(b.id, "big", &bytes(1, 11)[..], &PutOptions::default())
        .unwrap_err();
    assert!(matches!(
        err,
        Error::FileSize {
            limit: SizeLimit::MaxFileSize,
            limit_bytes: 10,
            attempted: 11,
            ..
        }
    ));
    let zero = limited(&store, None, Some(0));
    assert!(
        store
            .put_object(zero.id, "x", &b"x"[..], &PutOptions::default())
            .is_err()
    );
    assert_untouched(&store, zero.id, 0);
}

#[test]
fn the_smaller_limit_is_the_one_reported() {
    let store = small_store();
    let b = limited(&store, Some(50), Some(20));
    let err = store
        .put_object(b.id, "x", &bytes(1, 30)[..], &PutOptions::default())
        .unwrap_err();
    assert!(matches!(
        err,
        Error::FileSize {
            limit: SizeLimit::MaxFileSize,
            ..
        }
    ));
    put(&store, b.id, "a", &bytes(2, 20));
    put(&store, b.id, "b", &bytes(3, 20));
    let err = store
        .put_object(b.id, "c", &bytes(4, 20)[..], &PutOptions::default())
        .unwrap_err();
    assert!(matches!(
        err,
        Error::FileSize {
            limit: SizeLimit::Quota,
            limit_bytes: 10,
            ..
        }
    ));
}

#[test]
fn a_declared_size_over_the_limit_is_refused_before_reading() {
    let store = small_store();
    let b = limited(&store, Some(100), None);
    struct Untouchable;
    impl std::io::Read for Untouchable {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("the stream must not be read");
        }
    }
    let opts = PutOptions {
        size: Some(101),
        ..PutOptions::default()
    };
    let err = store.put_object(b.id, "x", Untouchable, &opts).unwrap_err();
    assert!(matches!(err, Error::FileSize { attempted: 101, .. }));
}

#[test]
fn content_longer_or_shorter_than_declared_is_refused() {
    let store = small_store();
    let b = bucket(&store);
    for (declared, actual) in [
        (10u64, 11usize),
        (10, 9),
        (50_000, 60_000),
        (50_000, 40_000),
    ] {
        let opts = PutOptions {
            size: Some(declared),
            ..PutOptions::default()
        };
        let err = store
            .put_object(b.id, "x", &bytes(1, actual)[..], &opts)
            .unwrap_err();
        assert!(
            matches!(err, Error::UnexpectedFileSize { expected, .. } if expected == declared),
            "{err:?}"
        );
    }
    assert_untouched(&store, b.id, 0);
    assert!(store.object(b.id, "x").unwrap().is_none());
}

#[test]
fn a_large_staged_put_over_quota_leaves_nothing() {
    let store = small_store();
    let b = limited(&store, Some(100_000), None);
    let err = store
        .put_object(b.id, "x", &bytes(1, 200_000)[..], &PutOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::FileSize { .. }));
    assert_untouched(&store, b.id, 0);
}

#[test]
fn a_wrong_declared_checksum_stores_nothing() {
    let store = Store::builder()
        .md5(true)
        .chunk_size(4096)
        .staging_batch(16384)
        .in_memory()
        .unwrap();
    let b = bucket(&store);
    let good = PutOptions {
        md5: Some("md5:5d41402abc4b2a76b9719d911017c592".into()),
        ..PutOptions::default()
    };
    let v = store.put_object(b.id, "ok", &b"hello"[..], &good).unwrap();
    let f = store.file(v.file_id.unwrap()).unwrap().unwrap();
    assert_eq!(
        f.md5.as_deref(),
        Some("md5:5d41402abc4b2a76b9719d911017c592")
    );
    let bad = PutOptions {
        md5: Some("00000000000000000000000000000000".into()),
        ..PutOptions::default()
    };
    for data in [b"other".to_vec(), bytes(3, 100_000)] {
        let err = store.put_object(b.id, "bad", &data[..], &bad).unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    }
    assert!(store.object(b.id, "bad").unwrap().is_none());
    assert_untouched(&store, b.id, 5);
}

#[test]
fn a_failing_reader_stores_nothing() {
    let store = small_store();
    let b = bucket(&store);
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.0).min(1000);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }
    for len in [100, 100_000] {
        let err = store
            .put_object(b.id, "x", Failing(len), &PutOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::UploadStream { .. }), "{err:?}");
    }
    assert_untouched(&store, b.id, 0);
}
