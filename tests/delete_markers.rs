//! Soft deletes: delete markers as heads, and what can be done with them.

mod common;
use common::*;
use recfiles::Error;
use recfiles::prelude::*;

#[test]
fn deleting_a_key_makes_a_delete_marker_its_head() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "k", b"data");
    let marker = store.delete_object(b.id, "k").unwrap().expect("marker");
    assert!(marker.is_delete_marker() && marker.is_head);
    assert!(store.object(b.id, "k").unwrap().is_none());
    assert!(!store.version(v.version_id).unwrap().unwrap().is_head);
    assert_consistent(&store);
}

#[test]
fn deleting_a_missing_or_deleted_key_returns_none() {
    let store = small_store();
    let b = bucket(&store);
    assert!(store.delete_object(b.id, "nope").unwrap().is_none());
    put(&store, b.id, "k", b"data");
    store.delete_object(b.id, "k").unwrap();
    assert!(store.delete_object(b.id, "k").unwrap().is_none());
    assert_eq!(store.object_versions(b.id, "k").unwrap().len(), 2);
}

#[test]
fn a_delete_marker_fetched_by_version_id_is_not_found_for_content() {
    let store = small_store();
    let b = bucket(&store);
    put(&store, b.id, "k", b"data");
    let marker = store.delete_object(b.id, "k").unwrap().unwrap();
    assert!(
        store
            .version(marker.version_id)
            .unwrap()
            .unwrap()
            .is_delete_marker()
    );
    assert!(matches!(
        store.open_version(marker.version_id),
        Err(Error::VersionNotFound { version }) if version == marker.version_id
    ));
}

#[test]
fn listings_skip_delete_markers_unless_asked() {
    let store = small_store();
    let b = bucket(&store);
    put(&store, b.id, "a", b"1");
    put(&store, b.id, "b", b"2");
    store.delete_object(b.id, "a").unwrap();
    let live = store.list_objects(b.id, &ListOptions::default()).unwrap();
    assert_eq!(
        live.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    let all = store
        .list_objects(
            b.id,
            &ListOptions {
                with_deleted: true,
                ..ListOptions::default()
            },
        )
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].is_delete_marker());
}

#[test]
fn removing_a_head_delete_marker_undeletes_the_key() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "k", b"data");
    let marker = store.delete_object(b.id, "k").unwrap().unwrap();
    store.remove_version(marker.version_id).unwrap();
    assert_eq!(
        store.object(b.id, "k").unwrap().unwrap().version_id,
        v.version_id
    );
    assert_consistent(&store);
}

#[test]
fn a_delete_marker_cannot_be_copied_or_restored() {
    let store = small_store();
    let b = bucket(&store);
    put(&store, b.id, "k", b"data");
    let marker = store.delete_object(b.id, "k").unwrap().unwrap();
    put(&store, b.id, "k", b"again");
    let reason = "Cannot copy a delete marker.";
    assert!(
        matches!(store.restore_version(marker.version_id), Err(Error::InvalidOperation { reason: r }) if r == reason)
    );
    assert!(
        matches!(store.copy_version(marker.version_id, b.id, "x"), Err(Error::InvalidOperation { reason: r }) if r == reason)
    );
}

#[test]
fn soft_deleted_versions_still_count_towards_the_bucket_size() {
    let store = small_store();
    let b = bucket(&store);
    put(&store, b.id, "k", b"12345");
    store.delete_object(b.id, "k").unwrap();
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 5);
    assert_consistent(&store);
}
