//! Locations whose content cannot live in the store file: without a backend for them, a put
//! is refused with a typed error and stores nothing.

mod common;
use common::*;
use recfiles::prelude::*;

/// Without the `s3` feature and without a backend given to the builder, an `s3://` location
/// is unavailable (with the feature, see tests/s3.rs).
#[cfg(not(feature = "s3"))]
#[test]
fn an_s3_location_without_the_feature_refuses_puts_and_stores_nothing() {
    let store = Store::in_memory().unwrap();
    store
        .write(|tx| {
            tx.create_location("cluster", "s3://somewhere/p", false)
                .map(|_| ())
        })
        .unwrap();
    let b = store
        .create_bucket(&BucketOptions {
            location: Some("cluster".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    use recfiles::Error;
    match store.put_object(b, "f", &b"content"[..], &PutOptions::default()) {
        Err(Error::LocationUnavailable { location, uri, .. }) => {
            assert_eq!(
                (location.as_str(), uri.as_str()),
                ("cluster", "s3://somewhere/p")
            );
        }
        other => panic!("expected LocationUnavailable, got {other:?}"),
    }
    assert!(matches!(
        store.write(|tx| tx.put_object(b, "f", &b"content"[..], &PutOptions::default())),
        Err(Error::LocationUnavailable { .. })
    ));
    assert_eq!(file_count(&store), 0);
    assert_consistent(&store);
}

/// Locations with any other URI keep their content in the store file, as before.
#[test]
fn a_location_with_another_uri_keeps_content_in_the_store_file() {
    let store = Store::in_memory().unwrap();
    store
        .write(|tx| {
            tx.create_location("archive", "file:///data/archive", false)
                .map(|_| ())
        })
        .unwrap();
    let b = store
        .create_bucket(&BucketOptions {
            location: Some("archive".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    put(&store, b, "f", &bytes(1, 3 << 20));
    assert_eq!(read_all(&store, b, "f"), bytes(1, 3 << 20));
    assert!(store.stats().unwrap().chunks >= 3);
    assert_consistent(&store);
}

/// Two locations of one store never keep content under the same object-store prefix, nor one
/// inside the other: each counts its own users of an object, so a collection or the last
/// delete of one would remove objects the other refers to. Other URIs may repeat.
#[test]
fn two_locations_never_share_an_object_store_prefix() {
    let store = Store::in_memory().unwrap();
    let create = |name: &str, uri: &str| store.write(|tx| tx.create_location(name, uri, false));
    create("cluster", "s3://bucket/recfiles").unwrap();
    for uri in [
        "s3://bucket/recfiles",
        "s3://bucket/recfiles/",
        "s3://bucket/recfiles/inner",
        "s3://bucket",
        "s3://bucket/",
    ] {
        match create("other", uri) {
            Err(recfiles::Error::InvalidOperation { reason }) => {
                assert!(reason.contains("prefix"), "{reason}")
            }
            other => panic!("{uri}: expected a refusal, got {other:?}"),
        }
    }
    // A sibling prefix, another bucket, and URIs that are no object store are fine.
    create("sibling", "s3://bucket/recfiles-2").unwrap();
    create("elsewhere", "s3://other-bucket/recfiles").unwrap();
    create("archive", "file:///srv/archive").unwrap();
    create("archive-two", "file:///srv/archive").unwrap();
    assert_consistent(&store);
}
