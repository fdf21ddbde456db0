//! Invenio-Records' behaviour (spec §1) and where recfiles deliberately differs (DESIGN.md).

use recfiles::prelude::*;
use recfiles::{Error, Record};
use serde_json::{Value, json};

fn store() -> Store {
    Store::in_memory().unwrap()
}

fn assert_consistent(store: &Store) {
    let report = store.check().unwrap();
    assert!(report.is_ok(), "{report:?}");
}

fn plain(store: &Store, body: Value) -> Record {
    store
        .create_record_with(body, &RecordOptions::without_bucket())
        .unwrap()
}

// ---- create -----------------------------------------------------------------------------------

#[test]
fn create_returns_revision_zero_with_the_body() {
    let store = store();
    let r = plain(&store, json!({"title": "Hello"}));
    assert_eq!(r.revision_id(), 0);
    assert_eq!(r.get("title"), Some(&json!("Hello")));
    assert!(!r.is_deleted());
    let read = store.record(r.id()).unwrap().unwrap();
    assert_eq!(read, r);
    assert_consistent(&store);
}

#[test]
fn create_sets_created_and_updated_to_the_same_instant() {
    let store = store();
    let r = plain(&store, json!({}));
    assert_eq!(r.created(), r.updated());
}

#[test]
fn create_with_a_given_id_uses_it() {
    let store = store();
    let id = RecordId::new();
    let r = store
        .create_record_with(json!({}), &RecordOptions::without_bucket().with_id(id))
        .unwrap();
    assert_eq!(r.id(), id);
    assert!(store.record(id).unwrap().is_some());
}

#[test]
fn create_with_a_taken_id_is_record_exists() {
    let store = store();
    let r = plain(&store, json!({}));
    let err = store
        .create_record_with(json!({}), &RecordOptions::without_bucket().with_id(r.id()))
        .unwrap_err();
    assert!(
        matches!(err, Error::RecordExists { record } if record == r.id()),
        "{err}"
    );
}

#[test]
fn create_with_the_id_of_a_soft_deleted_record_is_record_exists() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store.delete_record(&mut r).unwrap();
    let err = store
        .create_record_with(json!({}), &RecordOptions::without_bucket().with_id(r.id()))
        .unwrap_err();
    assert!(matches!(err, Error::RecordExists { .. }), "{err}");
}

#[test]
fn create_with_a_body_that_is_not_an_object_is_refused() {
    let store = store();
    for (body, kind) in [
        (json!([1, 2]), "array"),
        (json!("text"), "string"),
        (json!(null), "null"),
        (json!(3), "number"),
    ] {
        let err = store.create_record(body).unwrap_err();
        assert!(
            matches!(err, Error::NotAnObject { found } if found == kind),
            "{err}"
        );
    }
    assert!(store.buckets().unwrap().is_empty());
    assert_consistent(&store);
}

// ---- get ------------------------------------------------------------------------------------

#[test]
fn get_of_a_missing_record_is_none() {
    let store = store();
    assert!(store.record(RecordId::new()).unwrap().is_none());
    assert!(
        store
            .record_with_deleted(RecordId::new())
            .unwrap()
            .is_none()
    );
}

#[test]
fn get_of_a_soft_deleted_record_needs_with_deleted_and_has_an_empty_body() {
    let store = store();
    let mut r = plain(&store, json!({"a": 1}));
    store.delete_record(&mut r).unwrap();
    assert!(store.record(r.id()).unwrap().is_none());
    let deleted = store.record_with_deleted(r.id()).unwrap().unwrap();
    assert!(deleted.is_deleted());
    assert!(deleted.body().is_empty());
    assert_eq!(deleted.revision_id(), 1);
}

#[test]
fn get_many_returns_live_records_in_the_order_asked_and_skips_the_rest() {
    let store = store();
    let a = plain(&store, json!({"n": "a"}));
    let b = plain(&store, json!({"n": "b"}));
    let mut c = plain(&store, json!({"n": "c"}));
    store.delete_record(&mut c).unwrap();
    let got = store
        .records(&[b.id(), RecordId::new(), c.id(), a.id()])
        .unwrap();
    let names: Vec<&Value> = got.iter().map(|r| r.get("n").unwrap()).collect();
    assert_eq!(names, [&json!("b"), &json!("a")]);
}

// ---- commit and revisions ---------------------------------------------------------------------

#[test]
fn commit_writes_the_next_revision() {
    let store = store();
    let mut r = plain(&store, json!({"v": 0}));
    for v in 1..=3 {
        r.body_mut().insert("v".into(), json!(v));
        store.commit_record(&mut r).unwrap();
        assert_eq!(r.revision_id(), v);
    }
    let stored = store.record(r.id()).unwrap().unwrap();
    assert_eq!(stored.revision_id(), 3);
    assert_eq!(stored.get("v"), Some(&json!(3)));
    assert_consistent(&store);
}

#[test]
fn commit_keeps_created_and_moves_updated() {
    let store = store();
    let mut r = plain(&store, json!({}));
    let created = r.created();
    std::thread::sleep(std::time::Duration::from_millis(2));
    store.commit_record(&mut r).unwrap();
    assert_eq!(r.created(), created);
    assert!(r.updated() > created);
    let stored = store.record(r.id()).unwrap().unwrap();
    assert_eq!(stored.created(), created);
    assert_eq!(stored.updated(), r.updated());
}

#[test]
fn two_commits_in_one_transaction_leave_no_gap_in_revisions() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store
        .write(|tx| {
            r.body_mut().insert("a".into(), json!(1));
            tx.commit_record(&mut r)?;
            r.body_mut().insert("b".into(), json!(2));
            tx.commit_record(&mut r)
        })
        .unwrap();
    let ids: Vec<u64> = store
        .record_revisions(r.id())
        .unwrap()
        .iter()
        .map(|rev| rev.revision_id)
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    assert_consistent(&store);
}

#[test]
fn commit_with_a_stale_revision_is_a_conflict() {
    let store = store();
    let mut mine = plain(&store, json!({"title": "A"}));
    let mut theirs = store.record(mine.id()).unwrap().unwrap();
    theirs.body_mut().insert("title".into(), json!("B"));
    store.commit_record(&mut theirs).unwrap();

    mine.body_mut().insert("title".into(), json!("C"));
    let err = store.commit_record(&mut mine).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RevisionConflict {
                expected: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(mine.revision_id(), 0);
    let stored = store.record(mine.id()).unwrap().unwrap();
    assert_eq!(stored.get("title"), Some(&json!("B")));
}

#[test]
fn commit_of_a_soft_deleted_record_is_record_deleted() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store.delete_record(&mut r).unwrap();
    let err = store.commit_record(&mut r).unwrap_err();
    assert!(
        matches!(err, Error::RecordDeleted { record } if record == r.id()),
        "{err}"
    );
}

#[test]
fn commit_of_a_removed_record_is_record_not_found() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store.remove_record(r.id()).unwrap();
    let err = store.commit_record(&mut r).unwrap_err();
    assert!(matches!(err, Error::RecordNotFound { .. }), "{err}");
}

#[test]
fn revisions_are_listed_oldest_first_with_their_bodies() {
    let store = store();
    let mut r = plain(&store, json!({"v": 0}));
    r.body_mut().insert("v".into(), json!(1));
    store.commit_record(&mut r).unwrap();
    store.delete_record(&mut r).unwrap();
    let revs = store.record_revisions(r.id()).unwrap();
    assert_eq!(revs.len(), 3);
    assert_eq!(revs[0].revision_id, 0);
    assert_eq!(revs[0].body.as_ref().unwrap().get("v"), Some(&json!(0)));
    assert_eq!(revs[1].body.as_ref().unwrap().get("v"), Some(&json!(1)));
    assert_eq!(revs[2].body, None);
    assert!(revs.iter().all(|rev| rev.created == r.created()));
    assert!(revs.windows(2).all(|w| w[0].updated <= w[1].updated));
}

#[test]
fn revisions_of_a_missing_record_is_record_not_found() {
    let store = store();
    let err = store.record_revisions(RecordId::new()).unwrap_err();
    assert!(matches!(err, Error::RecordNotFound { .. }), "{err}");
}

// ---- delete, undelete, revert -----------------------------------------------------------------

#[test]
fn soft_delete_keeps_the_id_and_the_history() {
    let store = store();
    let mut r = plain(&store, json!({"a": 1}));
    store.delete_record(&mut r).unwrap();
    assert!(r.is_deleted());
    assert_eq!(r.revision_id(), 1);
    assert_eq!(r.get("a"), Some(&json!(1)), "the in-memory body is kept");
    assert_eq!(store.record_revisions(r.id()).unwrap().len(), 2);
    assert_consistent(&store);
}

#[test]
fn soft_delete_of_a_deleted_record_is_record_deleted() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store.delete_record(&mut r).unwrap();
    let err = store.delete_record(&mut r).unwrap_err();
    assert!(matches!(err, Error::RecordDeleted { .. }), "{err}");
}

#[test]
fn soft_delete_with_a_stale_revision_is_a_conflict() {
    let store = store();
    let mut old = plain(&store, json!({}));
    let mut newer = old.clone();
    store.commit_record(&mut newer).unwrap();
    let err = store.delete_record(&mut old).unwrap_err();
    assert!(matches!(err, Error::RevisionConflict { .. }), "{err}");
    assert!(store.record(old.id()).unwrap().is_some());
}

#[test]
fn hard_delete_removes_the_record_and_its_history() {
    let store = store();
    let r = plain(&store, json!({}));
    store.remove_record(r.id()).unwrap();
    assert!(store.record_with_deleted(r.id()).unwrap().is_none());
    assert!(matches!(
        store.record_revisions(r.id()).unwrap_err(),
        Error::RecordNotFound { .. }
    ));
    assert_consistent(&store);
}

#[test]
fn hard_delete_of_a_soft_deleted_record_removes_it() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store.delete_record(&mut r).unwrap();
    store.remove_record(r.id()).unwrap();
    assert!(store.record_with_deleted(r.id()).unwrap().is_none());
    assert_consistent(&store);
}

#[test]
fn hard_delete_of_a_missing_record_is_record_not_found() {
    let store = store();
    let err = store.remove_record(RecordId::new()).unwrap_err();
    assert!(matches!(err, Error::RecordNotFound { .. }), "{err}");
}

#[test]
fn undelete_with_the_value_kept_from_before_restores_the_old_body() {
    let store = store();
    let mut r = plain(&store, json!({"title": "kept"}));
    store.delete_record(&mut r).unwrap();
    store.undelete_record(&mut r).unwrap();
    assert!(!r.is_deleted());
    assert_eq!(r.revision_id(), 2);
    let stored = store.record(r.id()).unwrap().unwrap();
    assert_eq!(stored.get("title"), Some(&json!("kept")));
    assert_consistent(&store);
}

#[test]
fn undelete_of_a_record_read_while_deleted_gives_an_empty_body() {
    let store = store();
    let mut r = plain(&store, json!({"title": "lost"}));
    store.delete_record(&mut r).unwrap();
    let mut fetched = store.record_with_deleted(r.id()).unwrap().unwrap();
    store.undelete_record(&mut fetched).unwrap();
    let stored = store.record(r.id()).unwrap().unwrap();
    assert!(stored.body().is_empty());
}

#[test]
fn undelete_of_a_live_record_is_refused() {
    let store = store();
    let mut r = plain(&store, json!({}));
    let err = store.undelete_record(&mut r).unwrap_err();
    assert!(matches!(err, Error::InvalidOperation { .. }), "{err}");
    assert_eq!(store.record(r.id()).unwrap().unwrap().revision_id(), 0);
}

#[test]
fn revert_writes_an_earlier_body_as_a_new_revision() {
    let store = store();
    let mut r = plain(&store, json!({"v": 0}));
    r.body_mut().insert("v".into(), json!(1));
    store.commit_record(&mut r).unwrap();
    let reverted = store.revert_record(r.id(), 0).unwrap();
    assert_eq!(reverted.revision_id(), 2);
    assert_eq!(reverted.get("v"), Some(&json!(0)));
    assert_eq!(reverted.created(), r.created());
    assert_eq!(store.record(r.id()).unwrap().unwrap(), reverted);
    assert_consistent(&store);
}

#[test]
fn revert_of_a_soft_deleted_record_brings_it_back() {
    let store = store();
    let mut r = plain(&store, json!({"title": "x"}));
    store.delete_record(&mut r).unwrap();
    let back = store.revert_record(r.id(), 0).unwrap();
    assert!(!back.is_deleted());
    assert_eq!(back.get("title"), Some(&json!("x")));
    assert_eq!(back.revision_id(), 2);
    assert!(store.record(r.id()).unwrap().is_some());
}

#[test]
fn revert_to_a_deleted_revision_soft_deletes_the_record() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store.delete_record(&mut r).unwrap();
    store.revert_record(r.id(), 0).unwrap();
    let again = store.revert_record(r.id(), 1).unwrap();
    assert!(again.is_deleted());
    assert!(store.record(r.id()).unwrap().is_none());
    assert_consistent(&store);
}

#[test]
fn revert_to_a_missing_revision_is_revision_not_found() {
    let store = store();
    let r = plain(&store, json!({}));
    let err = store.revert_record(r.id(), 5).unwrap_err();
    assert!(
        matches!(err, Error::RevisionNotFound { revision: 5, .. }),
        "{err}"
    );
}

#[test]
fn records_survive_reopening_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.recfiles");
    let id = {
        let store = Store::open(&path).unwrap();
        let mut r = plain(&store, json!({"v": 0}));
        r.body_mut().insert("v".into(), json!(1));
        store.commit_record(&mut r).unwrap();
        r.id()
    };
    let store = Store::open(&path).unwrap();
    let r = store.record(id).unwrap().unwrap();
    assert_eq!(r.revision_id(), 1);
    assert_eq!(r.get("v"), Some(&json!(1)));
    assert_consistent(&store);
}

// ---- JSON Schema ------------------------------------------------------------------------------

const SCHEMA_URL: &str = "https://example.org/schemas/record-v1.0.0.json";

fn with_schema() -> Store {
    let store = store();
    store
        .register_schema(
            SCHEMA_URL,
            &json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "year": {"type": "integer", "minimum": 1900}
                },
                "required": ["title"]
            }),
        )
        .unwrap();
    store
}

#[test]
fn body_matching_its_schema_is_accepted() {
    let store = with_schema();
    let r = plain(
        &store,
        json!({"$schema": SCHEMA_URL, "title": "ok", "year": 2020}),
    );
    assert_eq!(r.revision_id(), 0);
}

#[test]
fn body_naming_an_unregistered_schema_is_schema_not_found() {
    let store = store();
    let id = RecordId::new();
    let err = store
        .create_record_with(
            json!({"$schema": "https://example.org/nope.json"}),
            &RecordOptions::default().with_id(id),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::SchemaNotFound { schema } if schema == "https://example.org/nope.json"),
        "{err}"
    );
    assert!(store.record_with_deleted(id).unwrap().is_none());
    assert!(store.buckets().unwrap().is_empty());
    assert_consistent(&store);
}

#[test]
fn schema_violations_are_listed_each_with_its_json_pointer() {
    let store = with_schema();
    let err = store
        .create_record(json!({"$schema": SCHEMA_URL, "title": 5, "year": 1800}))
        .unwrap_err();
    let Error::SchemaValidation { schema, errors } = err else {
        panic!("expected a validation error, got {err}");
    };
    assert_eq!(schema, SCHEMA_URL);
    let mut pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    pointers.sort();
    assert_eq!(pointers, ["/title", "/year"]);
    assert!(
        store.buckets().unwrap().is_empty(),
        "no bucket is left behind"
    );
    assert_consistent(&store);
}

#[test]
fn missing_required_field_is_reported_at_the_root() {
    let store = with_schema();
    let err = store
        .create_record(json!({"$schema": SCHEMA_URL}))
        .unwrap_err();
    let Error::SchemaValidation { errors, .. } = err else {
        panic!("expected a validation error, got {err}");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].pointer, "");
    assert!(errors[0].message.contains("title"), "{}", errors[0].message);
}

#[test]
fn failing_commit_writes_nothing() {
    let store = with_schema();
    let mut r = plain(&store, json!({"$schema": SCHEMA_URL, "title": "ok"}));
    r.body_mut().insert("title".into(), json!(false));
    let err = store.commit_record(&mut r).unwrap_err();
    assert!(matches!(err, Error::SchemaValidation { .. }), "{err}");
    assert_eq!(r.revision_id(), 0);
    let stored = store.record(r.id()).unwrap().unwrap();
    assert_eq!(stored.get("title"), Some(&json!("ok")));
    assert_eq!(store.record_revisions(r.id()).unwrap().len(), 1);
}

#[test]
fn null_schema_is_not_validated() {
    let store = store();
    let r = plain(&store, json!({"$schema": null, "x": 1}));
    assert_eq!(r.revision_id(), 0);
}

#[test]
fn schema_that_is_not_a_string_is_schema_not_found() {
    let store = store();
    let err = store
        .create_record(json!({"$schema": {"type": "object"}}))
        .unwrap_err();
    assert!(matches!(err, Error::SchemaNotFound { .. }), "{err}");
}

#[test]
fn schema_that_does_not_compile_is_refused_at_registration() {
    let store = store();
    let err = store
        .register_schema("https://example.org/bad.json", &json!({"type": 12}))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSchema { .. }), "{err}");
    assert!(
        store
            .read(|r| r.schema("https://example.org/bad.json"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn schema_may_refer_to_another_registered_schema() {
    let store = store();
    store
        .register_schema(
            "https://example.org/defs.json",
            &json!({"definitions": {"title": {"type": "string", "minLength": 2}}}),
        )
        .unwrap();
    store
        .register_schema(
            "https://example.org/main.json",
            &json!({"properties": {"title": {"$ref": "https://example.org/defs.json#/definitions/title"}}}),
        )
        .unwrap();
    plain(
        &store,
        json!({"$schema": "https://example.org/main.json", "title": "ok"}),
    );
    let err = store
        .create_record(json!({"$schema": "https://example.org/main.json", "title": "x"}))
        .unwrap_err();
    assert!(matches!(err, Error::SchemaValidation { .. }), "{err}");
}

/// Validators are cached; a schema replaced, a schema it refers to replaced, a replacement
/// rolled back and a schema removed must each be seen by the very next validation.
#[test]
fn validation_follows_every_change_to_the_registered_schemas() {
    let store = store();
    let defs = "https://example.org/defs.json";
    let main = "https://example.org/main.json";
    let title = |min: u64| json!({"definitions": {"title": {"type": "string", "minLength": min}}});
    store.register_schema(defs, &title(2)).unwrap();
    store
        .register_schema(
            main,
            &json!({"properties": {"title": {"$ref": "https://example.org/defs.json#/definitions/title"}}, "required": ["title"]}),
        )
        .unwrap();
    let accepts = |body: serde_json::Value| store.create_record(body).is_ok();
    let short = json!({"$schema": main, "title": "x"});
    let untitled = json!({"$schema": main});
    assert!(!accepts(short.clone()));
    assert!(!accepts(untitled.clone()));

    // The referred schema changes: the same body now passes.
    store.register_schema(defs, &title(1)).unwrap();
    assert!(accepts(short.clone()));

    // A change rolled back changes nothing, and the uncommitted change is seen inside its
    // own transaction.
    let err = store
        .write(|tx| {
            tx.register_schema(defs, &title(5))?;
            let inside = tx.create_record(short.clone());
            assert!(
                matches!(inside, Err(Error::SchemaValidation { .. })),
                "{inside:?}"
            );
            Err::<(), _>(Error::InvalidOperation {
                reason: "roll back",
            })
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOperation { .. }));
    assert!(accepts(short.clone()));

    // The schema itself is replaced: the requirement goes.
    store
        .register_schema(main, &json!({"type": "object"}))
        .unwrap();
    assert!(accepts(untitled.clone()));

    // Removed: the body names a schema that is no longer there.
    store.write(|tx| tx.remove_schema(main)).unwrap();
    let err = store.create_record(untitled).unwrap_err();
    assert!(matches!(err, Error::SchemaNotFound { .. }), "{err}");
}

// ---- persistent identifiers -------------------------------------------------------------------

#[test]
fn registered_pid_resolves_to_its_record() {
    let store = store();
    let r = plain(&store, json!({"t": 1}));
    let pid = store.create_pid("doi", "10.1234/x", r.id()).unwrap();
    assert_eq!(pid.status, PidStatus::Registered);
    assert_eq!(pid.record, r.id());
    assert_eq!(store.resolve_pid("doi", "10.1234/x").unwrap(), r);
    assert_consistent(&store);
}

#[test]
fn a_taken_pid_is_pid_exists() {
    let store = store();
    let r = plain(&store, json!({}));
    store.create_pid("doi", "a", r.id()).unwrap();
    let err = store.create_pid("doi", "a", r.id()).unwrap_err();
    assert!(matches!(err, Error::PidExists { .. }), "{err}");
}

#[test]
fn pid_for_a_missing_record_is_record_not_found() {
    let store = store();
    let err = store.create_pid("doi", "a", RecordId::new()).unwrap_err();
    assert!(matches!(err, Error::RecordNotFound { .. }), "{err}");
}

#[test]
fn empty_pid_is_invalid() {
    let store = store();
    let r = plain(&store, json!({}));
    let err = store.create_pid("", "1", r.id()).unwrap_err();
    assert!(matches!(err, Error::InvalidPid { .. }), "{err}");
}

#[test]
fn resolving_an_unknown_pid_is_pid_not_found() {
    let store = store();
    let err = store.resolve_pid("recid", "1").unwrap_err();
    assert!(
        matches!(&err, Error::PidNotFound { pid_type, pid_value } if pid_type == "recid" && pid_value == "1"),
        "{err}"
    );
}

#[test]
fn minted_recids_count_from_one() {
    let store = store();
    let a = plain(&store, json!({}));
    let b = plain(&store, json!({}));
    assert_eq!(store.mint_recid(a.id()).unwrap().pid_value, "1");
    assert_eq!(store.mint_recid(b.id()).unwrap().pid_value, "2");
    assert_eq!(store.resolve_pid("recid", "2").unwrap().id(), b.id());
}

#[test]
fn minted_recid_is_never_reused_after_its_record_is_removed() {
    let store = store();
    let a = plain(&store, json!({}));
    store.mint_recid(a.id()).unwrap();
    store.remove_record(a.id()).unwrap();
    assert!(store.pid("recid", "1").unwrap().is_none());
    let b = plain(&store, json!({}));
    assert_eq!(store.mint_recid(b.id()).unwrap().pid_value, "2");
    assert_consistent(&store);
}

#[test]
fn minting_skips_values_taken_by_hand() {
    let store = store();
    let a = plain(&store, json!({}));
    store.create_pid("recid", "1", a.id()).unwrap();
    assert_eq!(store.mint_recid(a.id()).unwrap().pid_value, "2");
}

#[test]
fn deleted_pid_does_not_resolve() {
    let store = store();
    let r = plain(&store, json!({}));
    store.mint_recid(r.id()).unwrap();
    let pid = store.delete_pid("recid", "1").unwrap();
    assert_eq!(pid.status, PidStatus::Deleted);
    let err = store.resolve_pid("recid", "1").unwrap_err();
    assert!(
        matches!(err, Error::PidDeleted { record, .. } if record == r.id()),
        "{err}"
    );
    let err = store.create_pid("recid", "1", r.id()).unwrap_err();
    assert!(
        matches!(err, Error::PidExists { .. }),
        "a deleted value stays taken: {err}"
    );
}

#[test]
fn redirected_pid_names_its_target() {
    let store = store();
    let r = plain(&store, json!({}));
    store.create_pid("recid", "1", r.id()).unwrap();
    store.create_pid("recid", "2", r.id()).unwrap();
    store
        .write(|tx| tx.redirect_pid("recid", "1", "recid", "2"))
        .unwrap();
    let err = store.resolve_pid("recid", "1").unwrap_err();
    assert!(
        matches!(&err, Error::PidRedirected { to_type, to_value, .. } if to_type == "recid" && to_value == "2"),
        "{err}"
    );
}

#[test]
fn pid_of_a_soft_deleted_record_resolves_to_record_deleted() {
    let store = store();
    let mut r = plain(&store, json!({}));
    store.mint_recid(r.id()).unwrap();
    store.delete_record(&mut r).unwrap();
    let err = store.resolve_pid("recid", "1").unwrap_err();
    assert!(matches!(err, Error::RecordDeleted { .. }), "{err}");
}

#[test]
fn record_lists_its_pids() {
    let store = store();
    let r = plain(&store, json!({}));
    store.mint_recid(r.id()).unwrap();
    store.create_pid("doi", "10.1/x", r.id()).unwrap();
    let pids = store.read(|tx| tx.record_pids(r.id())).unwrap();
    let names: Vec<(String, String)> = pids
        .into_iter()
        .map(|p| (p.pid_type, p.pid_value))
        .collect();
    assert_eq!(
        names,
        [
            ("doi".to_string(), "10.1/x".to_string()),
            ("recid".into(), "1".into())
        ]
    );
}
