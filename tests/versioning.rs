//! Object versions: heads, demotion, exact versions, listing, restore, copy, tags, keys.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{Error, FilesQuery, KeyProblem, ObjectVersion};

#[test]
fn a_new_put_becomes_head_and_demotes_the_previous_head() {
    let store = small_store();
    let b = bucket(&store);
    let v1 = put(&store, b.id, "k", b"one");
    let v2 = put(&store, b.id, "k", b"two");
    assert!(v2.is_head);
    assert!(!store.version(v1.version_id).unwrap().unwrap().is_head);
    assert_eq!(
        store.object(b.id, "k").unwrap().unwrap().version_id,
        v2.version_id
    );
    assert_eq!(read_all(&store, b.id, "k"), b"two");
    assert_consistent(&store);
}

#[test]
fn an_exact_version_reads_its_own_content() {
    let store = small_store();
    let b = bucket(&store);
    let v1 = put(&store, b.id, "k", b"one");
    put(&store, b.id, "k", b"two");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut store.open_version(v1.version_id).unwrap(), &mut out).unwrap();
    assert_eq!(out, b"one");
}

#[test]
fn versions_of_a_key_are_listed_newest_first() {
    let store = small_store();
    let b = bucket(&store);
    let ids: Vec<_> = (0..4)
        .map(|i| put(&store, b.id, "k", &[i]).version_id)
        .collect();
    let listed: Vec<_> = store
        .object_versions(b.id, "k")
        .unwrap()
        .iter()
        .map(|v| v.version_id)
        .collect();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(listed, expected);
}

#[test]
fn bucket_versions_are_ordered_by_key_then_newest_first() {
    let store = small_store();
    let b = bucket(&store);
    let a1 = put(&store, b.id, "a", b"1");
    let b1 = put(&store, b.id, "b", b"1");
    let a2 = put(&store, b.id, "a", b"2");
    store.delete_object(b.id, "b").unwrap();
    let all = store.read(|r| r.bucket_versions(b.id, false)).unwrap();
    let ids: Vec<_> = all.iter().map(|v| v.version_id).collect();
    assert_eq!(ids, vec![a2.version_id, a1.version_id, b1.version_id]);
    let with_markers = store.read(|r| r.bucket_versions(b.id, true)).unwrap();
    assert_eq!(with_markers.len(), 4);
    assert!(with_markers[2].is_delete_marker());
}

#[test]
fn removing_the_head_makes_the_newest_remaining_version_head() {
    let store = small_store();
    let b = bucket(&store);
    let v1 = put(&store, b.id, "k", b"one");
    let v2 = put(&store, b.id, "k", b"two");
    let v3 = put(&store, b.id, "k", b"three");
    store.remove_version(v3.version_id).unwrap();
    assert_eq!(
        store.object(b.id, "k").unwrap().unwrap().version_id,
        v2.version_id
    );
    store.remove_version(v1.version_id).unwrap();
    assert_eq!(
        store.object(b.id, "k").unwrap().unwrap().version_id,
        v2.version_id
    );
    store.remove_version(v2.version_id).unwrap();
    assert!(store.object(b.id, "k").unwrap().is_none());
    assert!(store.object_versions(b.id, "k").unwrap().is_empty());
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 0);
    assert_consistent(&store);
}

#[test]
fn restoring_an_old_version_makes_a_new_head_sharing_its_file_and_tags() {
    let store = small_store();
    let b = bucket(&store);
    let v1 = put(&store, b.id, "k", b"one");
    store.set_object_tag(v1.version_id, "color", "red").unwrap();
    put(&store, b.id, "k", b"two");
    let r = store.restore_version(v1.version_id).unwrap();
    assert!(r.is_head);
    assert_ne!(r.version_id, v1.version_id);
    assert_eq!(r.file_id, v1.file_id);
    assert_eq!(store.object_tags(r.version_id).unwrap()["color"], "red");
    assert_eq!(read_all(&store, b.id, "k"), b"one");
    assert_consistent(&store);
}

#[test]
fn restoring_the_head_is_refused() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "k", b"one");
    assert!(matches!(
        store.restore_version(v.version_id),
        Err(Error::InvalidOperation {
            reason: "Cannot restore latest version."
        })
    ));
}

#[test]
fn copying_shares_the_file_copies_tags_and_counts_in_the_destination() {
    let store = small_store();
    let src = bucket(&store);
    let dst = bucket(&store);
    let v = put(&store, src.id, "k", b"payload");
    store.set_object_tag(v.version_id, "t", "1").unwrap();
    let c = store.copy_version(v.version_id, dst.id, "copy").unwrap();
    assert_eq!(c.file_id, v.file_id);
    assert_eq!(c.bucket, dst.id);
    assert_eq!(store.object_tags(c.version_id).unwrap()["t"], "1");
    assert_eq!(store.bucket(dst.id).unwrap().unwrap().size, 7);
    assert_eq!(
        store.file(v.file_id.unwrap()).unwrap().unwrap().references,
        2
    );
    assert_consistent(&store);
}

#[test]
fn new_versions_do_not_inherit_tags() {
    let store = small_store();
    let b = bucket(&store);
    let v1 = put(&store, b.id, "k", b"one");
    store.set_object_tag(v1.version_id, "t", "1").unwrap();
    let v2 = put(&store, b.id, "k", b"two");
    assert!(store.object_tags(v2.version_id).unwrap().is_empty());
}

#[test]
fn tags_outside_the_limits_are_refused() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "k", b"one");
    let long = "x".repeat(256);
    assert!(matches!(
        store.set_object_tag(v.version_id, "", "v"),
        Err(Error::InvalidTag { .. })
    ));
    assert!(matches!(
        store.set_object_tag(v.version_id, &long, "v"),
        Err(Error::InvalidTag { .. })
    ));
    assert!(matches!(
        store.set_object_tag(v.version_id, "k", &long),
        Err(Error::InvalidTag { .. })
    ));
    store
        .set_object_tag(v.version_id, &"x".repeat(255), &"y".repeat(255))
        .unwrap();
    assert_eq!(store.object_tags(v.version_id).unwrap().len(), 1);
}

#[test]
fn mimetype_is_guessed_from_the_key_unless_given() {
    let store = small_store();
    let b = bucket(&store);
    assert_eq!(
        put(&store, b.id, "doc.pdf", b"%PDF").mimetype,
        "application/pdf"
    );
    assert_eq!(
        put(&store, b.id, "README", b"hi").mimetype,
        "application/octet-stream"
    );
    assert_eq!(
        put(&store, b.id, "x.csv.gz", b"gz").mimetype,
        "application/gzip"
    );
    let opts = PutOptions {
        mimetype: Some("text/markdown".into()),
        ..PutOptions::default()
    };
    let v = store
        .put_object(b.id, "notes", &b"# hi"[..], &opts)
        .unwrap();
    assert_eq!(v.mimetype, "text/markdown");
}

#[test]
fn invalid_keys_are_refused_with_the_reason() {
    let store = Store::builder().max_key_len(8).in_memory().unwrap();
    let b = bucket(&store);
    let cases = [
        ("", KeyProblem::Empty),
        ("a\0b", KeyProblem::ContainsNul),
        ("123456789", KeyProblem::TooLong { max: 8 }),
    ];
    for (key, want) in cases {
        match store.put_object(b.id, key, &b"x"[..], &PutOptions::default()) {
            Err(Error::InvalidKey { problem, .. }) => assert_eq!(problem, want),
            other => panic!("key {key:?}: {other:?}"),
        }
    }
    assert!(
        store
            .put_object(b.id, "12345678", &b"x"[..], &PutOptions::default())
            .is_ok()
    );
    assert_eq!(store.bucket(b.id).unwrap().unwrap().size, 1);
}

#[test]
fn a_version_without_content_accepts_content_once() {
    let store = small_store();
    let b = bucket(&store);
    let v = store.write(|tx| tx.create_version(b.id, "k")).unwrap();
    assert!(v.is_delete_marker());
    assert!(store.object(b.id, "k").unwrap().is_none());
    let filled = store
        .write(|tx| tx.set_version_content(v.version_id, &b"late"[..], &PutOptions::default()))
        .unwrap();
    assert_eq!(filled.size, Some(4));
    assert_eq!(read_all(&store, b.id, "k"), b"late");
    let again =
        store.write(|tx| tx.set_version_content(v.version_id, &b"x"[..], &PutOptions::default()));
    assert!(matches!(again, Err(Error::FileAlreadySet { version }) if version == v.version_id));
    assert_consistent(&store);
}

#[test]
fn listing_filters_by_prefix_and_pages_without_a_cap() {
    let store = small_store();
    let b = bucket(&store);
    store
        .write(|tx| {
            for i in 0..1500 {
                tx.put_object(
                    b.id,
                    &format!("data/{i:05}"),
                    &b"x"[..],
                    &PutOptions::default(),
                )?;
            }
            tx.put_object(b.id, "other", &b"x"[..], &PutOptions::default())?;
            Ok(())
        })
        .unwrap();
    let all = store
        .list_objects(
            b.id,
            &ListOptions {
                prefix: Some("data/".into()),
                ..ListOptions::default()
            },
        )
        .unwrap();
    assert_eq!(all.len(), 1500);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_objects(
                b.id,
                &ListOptions {
                    prefix: Some("data/".into()),
                    start_after: after.clone(),
                    limit: Some(400),
                    with_deleted: false,
                },
            )
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|o| o.key.clone());
        seen.extend(page.into_iter().map(|o| o.key));
    }
    let expected: Vec<_> = (0..1500).map(|i| format!("data/{i:05}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn listing_finds_each_head_whatever_the_number_of_old_versions() {
    let store = small_store();
    let b = bucket(&store);
    let other = bucket(&store);
    // Key i has i versions (up to 20, past the listing's scan limit); every third key ends
    // with a delete marker, and every fifth lost its newest version to a hard remove.
    store
        .write(|tx| {
            for i in 0..21u8 {
                let key = format!("k{i:02}");
                let mut last = None;
                for v in 0..i {
                    let data = [i, v];
                    last = Some(tx.put_object(b.id, &key, &data[..], &PutOptions::default())?);
                    tx.put_object(other.id, &key, &data[..], &PutOptions::default())?;
                }
                if i % 5 == 0
                    && i > 1
                    && let Some(o) = last
                {
                    tx.remove_version(o.version_id)?;
                }
                if i % 3 == 0 && i > 0 {
                    tx.delete_object(b.id, &key)?;
                }
            }
            Ok(())
        })
        .unwrap();
    assert_consistent(&store);
    let keys: Vec<String> = (1..21u8).map(|i| format!("k{i:02}")).collect();
    for with_deleted in [false, true] {
        let want: Vec<ObjectVersion> = keys
            .iter()
            .filter_map(|k| store.read(|r| r.head(b.id, k)).unwrap())
            .filter(|o| with_deleted || !o.is_delete_marker())
            .collect();
        let opts = |start_after: Option<&str>, limit| ListOptions {
            start_after: start_after.map(String::from),
            limit,
            with_deleted,
            ..ListOptions::default()
        };
        assert_eq!(store.list_objects(b.id, &opts(None, None)).unwrap(), want);
        // Pages of 3, each starting after a key that has versions of its own.
        let mut seen = Vec::new();
        loop {
            let after = seen.last().map(|o: &ObjectVersion| o.key.clone());
            let page = store
                .list_objects(b.id, &opts(after.as_deref(), Some(3)))
                .unwrap();
            if page.is_empty() {
                break;
            }
            seen.extend(page);
        }
        assert_eq!(seen, want);
        // Starting after a deleted key with many versions, as a caller may.
        let tail = store.list_objects(b.id, &opts(Some("k18"), None)).unwrap();
        let want_tail: Vec<_> = want
            .iter()
            .filter(|o| o.key.as_str() > "k18")
            .cloned()
            .collect();
        assert_eq!(tail, want_tail);
    }
}
