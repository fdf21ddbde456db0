//! Multipart uploads: init reserves quota, parts in any order, completion, abort, expiry.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{Error, FilesQuery, MultipartLimits, PartOptions};
use std::io::Read;

fn mp_store() -> Store {
    Store::builder()
        .chunk_size(1024)
        .staging_batch(4096)
        .multipart_limits(MultipartLimits {
            min_part_size: 10,
            max_part_size: 5000,
            max_parts: 20,
            expires: std::time::Duration::from_secs(3600),
        })
        .in_memory()
        .unwrap()
}

#[test]
fn parts_uploaded_in_any_order_complete_into_one_object() {
    let store = mp_store();
    let b = bucket(&store);
    let data = bytes(1, 2500);
    let mp = store.init_multipart(b.id, "big", 2500, 1000).unwrap();
    assert_eq!(mp.last_part_number(), 2);
    assert_eq!(
        store.bucket(b.id).unwrap().unwrap().size,
        2500,
        "init reserves the size"
    );
    for n in [2u32, 0, 1] {
        let (s, e) = (n as usize * 1000, ((n as usize + 1) * 1000).min(2500));
        let part = store.upload_part(mp.id, n, &data[s..e]).unwrap();
        assert_eq!((part.start_byte, part.end_byte), (s as u64, e as u64));
    }
    let parts = store.read(|r| r.parts(mp.id)).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.part_number).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let v = store.complete_multipart(mp.id).unwrap();
    assert!(v.is_head);
    assert_eq!(read_all(&store, b.id, "big"), data);
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 2500);
    assert!(store.read(|r| r.multipart(mp.id)).unwrap().is_none());
    assert!(store.verify_file(v.file_id.unwrap()).unwrap());
    assert_consistent(&store);
}

#[test]
fn a_size_that_is_an_exact_multiple_of_the_part_size_completes() {
    let store = mp_store();
    let b = bucket(&store);
    let data = bytes(2, 40);
    let mp = store.init_multipart(b.id, "k", 40, 20).unwrap();
    store.upload_part(mp.id, 0, &data[..20]).unwrap();
    store.upload_part(mp.id, 1, &data[20..]).unwrap();
    store.complete_multipart(mp.id).unwrap();
    assert_eq!(read_all(&store, b.id, "k"), data);
}

#[test]
fn a_part_sent_again_replaces_the_first_one() {
    let store = mp_store();
    let b = bucket(&store);
    let mp = store.init_multipart(b.id, "k", 30, 20).unwrap();
    store.upload_part(mp.id, 0, &[1u8; 20][..]).unwrap();
    store.upload_part(mp.id, 0, &[2u8; 20][..]).unwrap();
    store.upload_part(mp.id, 1, &[3u8; 10][..]).unwrap();
    assert_consistent(&store);
    store.complete_multipart(mp.id).unwrap();
    let mut want = vec![2u8; 20];
    want.extend_from_slice(&[3u8; 10]);
    assert_eq!(read_all(&store, b.id, "k"), want);
    assert_consistent(&store);
}

#[test]
fn completing_with_missing_parts_is_refused_and_keeps_the_upload() {
    let store = mp_store();
    let b = bucket(&store);
    let mp = store.init_multipart(b.id, "k", 50, 20).unwrap();
    store.upload_part(mp.id, 1, &[0u8; 20][..]).unwrap();
    match store.complete_multipart(mp.id) {
        Err(Error::MultipartMissingParts { missing }) => assert_eq!(missing, [0, 2]),
        other => panic!("{other:?}"),
    }
    assert!(store.read(|r| r.multipart(mp.id)).unwrap().is_some());
}

#[test]
fn parts_of_the_wrong_size_or_number_are_refused() {
    let store = mp_store();
    let b = bucket(&store);
    let mp = store.init_multipart(b.id, "k", 50, 20).unwrap();
    assert!(matches!(
        store.upload_part(mp.id, 0, &[0u8; 19][..]),
        Err(Error::MultipartPartSize {
            part: 0,
            expected: 20,
            actual: 19
        })
    ));
    assert!(matches!(
        store.upload_part(mp.id, 2, &[0u8; 20][..]),
        Err(Error::MultipartPartSize { expected: 10, .. })
    ));
    assert!(matches!(
        store.upload_part(mp.id, 3, &[0u8; 10][..]),
        Err(Error::MultipartInvalidPartNumber { part: 3, last: 2 })
    ));
    assert!(store.read(|r| r.parts(mp.id)).unwrap().is_empty());
    assert_consistent(&store);
}

#[test]
fn init_checks_part_size_total_size_quota_and_lock() {
    let store = mp_store();
    let b = store
        .create_bucket(&BucketOptions {
            quota_size: Some(100),
            ..BucketOptions::default()
        })
        .unwrap();
    assert!(matches!(
        store.init_multipart(b.id, "k", 50, 9),
        Err(Error::MultipartInvalidPartSize { .. })
    ));
    assert!(matches!(
        store.init_multipart(b.id, "k", 10, 10),
        Err(Error::MultipartInvalidSize { .. })
    ));
    assert!(matches!(
        store.init_multipart(b.id, "k", 50, 2),
        Err(Error::MultipartInvalidPartSize { .. })
    ));
    assert!(matches!(
        store.init_multipart(b.id, "k", 30 * 20 + 1, 30),
        Err(Error::MultipartInvalidSize { .. })
    ));
    assert!(matches!(
        store.init_multipart(b.id, "k", 101, 20),
        Err(Error::FileSize { .. })
    ));
    store.set_bucket_locked(b.id, true).unwrap();
    assert!(matches!(
        store.init_multipart(b.id, "k", 50, 20),
        Err(Error::BucketLocked { .. })
    ));
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 0);
}

#[test]
fn the_reservation_counts_against_the_quota_until_abort() {
    let store = mp_store();
    let b = store
        .create_bucket(&BucketOptions {
            quota_size: Some(100),
            ..BucketOptions::default()
        })
        .unwrap();
    let mp = store.init_multipart(b.id, "k", 80, 20).unwrap();
    assert!(matches!(
        store.put_object(b.id, "x", &[0u8; 30][..], &PutOptions::default()),
        Err(Error::FileSize { .. })
    ));
    store.upload_part(mp.id, 0, &[1u8; 20][..]).unwrap();
    store.abort_multipart(mp.id).unwrap();
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 0);
    put(&store, b.id, "x", &[0u8; 30]);
    assert!(matches!(
        store.upload_part(mp.id, 1, &[1u8; 20][..]),
        Err(Error::MultipartNotFound { .. })
    ));
    assert_consistent(&store);
}

#[test]
fn a_failed_completion_can_be_retried() {
    let store = mp_store();
    let b = bucket(&store);
    let mp = store.init_multipart(b.id, "k", 30, 20).unwrap();
    store.upload_part(mp.id, 0, &[1u8; 20][..]).unwrap();
    store.upload_part(mp.id, 1, &[2u8; 10][..]).unwrap();
    store.set_bucket_locked(b.id, true).unwrap();
    assert!(matches!(
        store.complete_multipart(mp.id),
        Err(Error::BucketLocked { .. })
    ));
    assert_consistent(&store);
    store.set_bucket_locked(b.id, false).unwrap();
    store.complete_multipart(mp.id).unwrap();
    assert_eq!(read_all(&store, b.id, "k").len(), 30);
    assert_consistent(&store);
}

#[test]
fn abandoned_uploads_expire() {
    let store = mp_store();
    let b = bucket(&store);
    let old = store.init_multipart(b.id, "old", 30, 20).unwrap();
    store.upload_part(old.id, 0, &[1u8; 20][..]).unwrap();
    assert_eq!(
        store.expire_multipart().unwrap(),
        0,
        "an hour has not passed"
    );
    let expired = store
        .write(|tx| tx.expire_multipart(std::time::Duration::ZERO))
        .unwrap();
    assert_eq!(expired, 1);
    assert!(store.read(|r| r.multipart(old.id)).unwrap().is_none());
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 0);
    assert_consistent(&store);
}

#[test]
fn uploads_are_listed_per_bucket() {
    let store = mp_store();
    let b = bucket(&store);
    let other = bucket(&store);
    store.init_multipart(b.id, "a", 30, 20).unwrap();
    store.init_multipart(b.id, "b", 30, 20).unwrap();
    store.init_multipart(other.id, "c", 30, 20).unwrap();
    let keys: Vec<_> = store
        .read(|r| r.multipart_uploads(b.id))
        .unwrap()
        .into_iter()
        .map(|u| u.key)
        .collect();
    assert_eq!(keys, ["a", "b"]);
}

#[test]
fn removing_a_bucket_aborts_its_uploads() {
    let store = mp_store();
    let b = bucket(&store);
    let mp = store.init_multipart(b.id, "a", 30, 20).unwrap();
    store.upload_part(mp.id, 0, &[1u8; 20][..]).unwrap();
    store.remove_bucket(b.id).unwrap();
    assert!(store.read(|r| r.multipart(mp.id)).unwrap().is_none());
    assert_consistent(&store);
}

#[test]
fn a_completed_upload_of_known_content_reuses_the_stored_file() {
    let store = mp_store();
    let b = bucket(&store);
    // Chunked content (a file of one chunk at most 16 KiB would be stored per upload).
    let data = bytes(5, 3000);
    let v = put(&store, b.id, "plain", &data);
    let mp = store.init_multipart(b.id, "multi", 3000, 2000).unwrap();
    store.upload_part(mp.id, 0, &data[..2000]).unwrap();
    store.upload_part(mp.id, 1, &data[2000..]).unwrap();
    let m = store.complete_multipart(mp.id).unwrap();
    assert_eq!(m.file_id, v.file_id);
    assert_consistent(&store);
}

#[test]
fn a_part_with_a_declared_md5_that_differs_is_refused_and_stores_nothing() {
    // md5 off in the store: a declared md5 is still computed and checked.
    let store = mp_store();
    let b = bucket(&store);
    let mp = store.init_multipart(b.id, "k", 20, 10).unwrap();
    let first = bytes(1, 10);
    let good = PartOptions {
        md5: Some(format!("md5:{}", md5_hex(&first))),
    };
    store.upload_part_with(mp.id, 0, &first[..], &good).unwrap();
    let other = bytes(2, 10);
    let err = store
        .upload_part_with(mp.id, 0, &other[..], &good)
        .unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    let err = store
        .upload_part_with(mp.id, 1, &other[..], &good)
        .unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    // Part 0 is still the first copy; part 1 was never stored; nothing staged is left.
    let parts = store.read(|r| r.parts(mp.id)).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].part_number, 0);
    assert!(store.check().unwrap().is_ok());
    let fixed = PartOptions {
        md5: Some(md5_hex(&other)),
    };
    store
        .upload_part_with(mp.id, 1, &other[..], &fixed)
        .unwrap();
    store.complete_multipart(mp.id).unwrap();
    let mut stored = Vec::new();
    store
        .open_object(b.id, "k")
        .unwrap()
        .read_to_end(&mut stored)
        .unwrap();
    assert_eq!(stored, [first, other].concat());
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
