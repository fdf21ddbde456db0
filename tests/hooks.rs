//! Hooks: before hooks refuse record changes with nothing stored; after hooks hear of changes
//! only once their commit is durable, never of a rolled-back transaction, and a failing or
//! panicking after hook cannot undo or poison anything.

mod common;

use common::{assert_consistent, bucket, put};
use recfiles::prelude::*;
use recfiles::{Error, Event, EventKind, HookFailure, Hooks, MultipartLimits, SimulatedDisk};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The application's own error, which a refusal must carry through to the caller.
#[derive(Debug, PartialEq)]
struct MissingTitle;

impl std::fmt::Display for MissingTitle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record needs a title")
    }
}

impl std::error::Error for MissingTitle {}

/// Adds a rule: a record that is live after the change must have a title.
fn title_rule(hooks: Hooks) -> Hooks {
    hooks.before(|_tx, event| match event {
        Event::RecordDeleted { .. } => Ok(()),
        e => match e.record() {
            Some(r) if !r.is_deleted() && r.get("title").is_none() => Err(Box::new(MissingTitle)),
            _ => Ok(()),
        },
    })
}

/// Adds an after hook that writes down every event it hears of.
fn recording(hooks: Hooks) -> (Hooks, Arc<Mutex<Vec<Event>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let hooks = hooks.after(move |_store, event| {
        log.lock().unwrap().push(event.clone());
        Ok(())
    });
    (hooks, heard)
}

fn kinds(heard: &Mutex<Vec<Event>>) -> Vec<EventKind> {
    heard.lock().unwrap().iter().map(Event::kind).collect()
}

fn assert_refused_by_the_rule(e: Error, kind: EventKind) {
    match e {
        Error::HookRefused { event, source } => {
            assert_eq!(event, kind);
            assert_eq!(source.downcast_ref::<MissingTitle>(), Some(&MissingTitle));
        }
        other => panic!("expected the rule's refusal of {kind}, got {other:?}"),
    }
}

#[test]
fn a_rule_refuses_records_without_a_title_and_nothing_is_stored() {
    let (hooks, heard) = recording(title_rule(Hooks::new()));
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    assert_refused_by_the_rule(
        store.create_record(json!({})).unwrap_err(),
        EventKind::RecordCreated,
    );
    assert!(
        store.buckets().unwrap().is_empty(),
        "a refused record left a bucket"
    );

    let mut r = store.create_record(json!({"title": "A"})).unwrap();
    let stored = store.record(r.id()).unwrap().unwrap();
    r.body_mut().remove("title");
    assert_refused_by_the_rule(
        store.commit_record(&mut r).unwrap_err(),
        EventKind::RecordCommitted,
    );
    assert_eq!(r.revision_id(), 0, "the caller's copy moved on");
    assert_eq!(store.record(r.id()).unwrap().unwrap(), stored);
    assert_eq!(
        kinds(&heard),
        [EventKind::RecordCreated],
        "a refusal was heard"
    );
    assert_consistent(&store);
}

#[test]
fn refused_reverts_and_undeletes_leave_the_record_as_it_was() {
    // A history the rule would not have allowed, written without it.
    let disk = SimulatedDisk::new();
    let plain = Store::builder().open_backend(disk.clone()).unwrap();
    let mut r = plain.create_record(json!({"title": "A"})).unwrap();
    r.body_mut().remove("title");
    plain.commit_record(&mut r).unwrap(); // revision 1: no title
    r.body_mut().insert("title".into(), json!("C"));
    plain.commit_record(&mut r).unwrap(); // revision 2
    plain.delete_record(&mut r).unwrap(); // revision 3
    plain.close().unwrap();
    let id = r.id();

    let store = Store::builder()
        .hooks(title_rule(Hooks::new()))
        .open_backend(SimulatedDisk::from_image(disk.durable_image()))
        .unwrap();
    let revisions = store.record_revisions(id).unwrap();
    assert_refused_by_the_rule(
        store.revert_record(id, 1).unwrap_err(),
        EventKind::RecordReverted,
    );
    let mut read_while_deleted = store.record_with_deleted(id).unwrap().unwrap();
    assert_refused_by_the_rule(
        store.undelete_record(&mut read_while_deleted).unwrap_err(),
        EventKind::RecordUndeleted,
    );
    assert_eq!(store.record_revisions(id).unwrap(), revisions);
    let b = store.record_bucket(id).unwrap().unwrap();
    assert!(store.bucket(b).unwrap().is_none(), "the bucket came back");
    // What the rule allows still goes through.
    assert_eq!(
        store.revert_record(id, 2).unwrap().get("title"),
        Some(&json!("C"))
    );
    assert!(store.bucket(b).unwrap().is_some());
    assert_consistent(&store);
}

#[test]
fn a_refusal_caught_inside_a_transaction_leaves_nothing_of_the_refused_change() {
    let hooks = title_rule(Hooks::new()).before(|_tx, e| match e {
        Event::RecordDeleted { hard, .. } => Err(format!("no deletes (hard: {hard})").into()),
        _ => Ok(()),
    });
    let (hooks, heard) = recording(hooks);
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    let kept = store
        .write(|tx| {
            let e = tx.create_record(json!({"untitled": true})).unwrap_err();
            assert!(matches!(e, Error::HookRefused { .. }), "{e}");
            let mut r = tx.create_record(json!({"title": "kept"}))?;
            let e = tx.delete_record(&mut r).unwrap_err();
            assert!(matches!(
                e,
                Error::HookRefused {
                    event: EventKind::RecordDeleted,
                    ..
                }
            ));
            assert!(!r.is_deleted());
            let e = tx.remove_record(r.id()).unwrap_err();
            assert!(matches!(
                e,
                Error::HookRefused {
                    event: EventKind::RecordDeleted,
                    ..
                }
            ));
            Ok(r)
        })
        .unwrap();
    assert_eq!(
        store.buckets().unwrap().len(),
        1,
        "only the kept record's bucket"
    );
    assert_eq!(store.record(kept.id()).unwrap(), Some(kept));
    assert_eq!(kinds(&heard), [EventKind::RecordCreated]);
    assert_consistent(&store);
}

#[test]
fn a_panicking_before_hook_refuses_the_change_and_the_store_carries_on() {
    let hooks = Hooks::new().before(|_tx, e| {
        if e.record().is_some_and(|r| r.get("boom").is_some()) {
            panic!("hook bug");
        }
        Ok(())
    });
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    match store.create_record(json!({"boom": 1})) {
        Err(Error::HookPanicked {
            event: EventKind::RecordCreated,
            message,
        }) => {
            assert_eq!(message, "hook bug")
        }
        other => panic!("{other:?}"),
    }
    assert!(store.buckets().unwrap().is_empty());
    store.create_record(json!({"fine": 1})).unwrap();
    assert_consistent(&store);
}

#[test]
fn before_hooks_read_the_transaction_they_run_in() {
    // A rule that needs the store: at most two records per "owner", counting those created
    // earlier in the same transaction.
    let hooks = Hooks::new().before(|tx, e| {
        let Event::RecordCreated { record } = e else {
            return Ok(());
        };
        let owner = record.get("owner").cloned();
        let ids: Vec<RecordId> =
            serde_json::from_value(record.get("siblings").cloned().unwrap_or(json!([])))?;
        let same = tx
            .records(&ids)?
            .iter()
            .filter(|r| r.get("owner").cloned() == owner)
            .count();
        if same >= 2 {
            Err("owner has two records".into())
        } else {
            Ok(())
        }
    });
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    let e = store
        .write(|tx| {
            let a = tx.create_record(json!({"owner": "x"}))?.id();
            let b = tx
                .create_record(json!({"owner": "x", "siblings": [a]}))?
                .id();
            tx.create_record(json!({"owner": "x", "siblings": [a, b]}))
        })
        .unwrap_err();
    assert!(matches!(e, Error::HookRefused { .. }), "{e}");
    assert!(
        store.buckets().unwrap().is_empty(),
        "the failed closure rolled back"
    );
}

#[test]
fn after_hooks_run_once_the_commit_is_durable() {
    let disk = SimulatedDisk::new();
    let seen_durable = Arc::new(Mutex::new(Vec::new()));
    let (d, seen) = (disk.clone(), Arc::clone(&seen_durable));
    let hooks = Hooks::new().after(move |_store, event| {
        // What a crash at this moment would leave: the event's change must be in it.
        let crashed =
            Store::builder().open_backend(SimulatedDisk::from_image(d.durable_image()))?;
        let there = match event {
            Event::RecordCreated { record } | Event::RecordCommitted { record } => {
                crashed.record(record.id())? == Some(record.clone())
            }
            Event::VersionCreated { version } => crashed.version(version.version_id)?.is_some(),
            _ => false,
        };
        seen.lock().unwrap().push((event.kind(), there));
        Ok(())
    });
    let store = Store::builder().hooks(hooks).open_backend(disk).unwrap();
    let mut r = store.create_record(json!({"title": "durable"})).unwrap();
    r.body_mut().insert("more".into(), json!(1));
    store.commit_record(&mut r).unwrap();
    let b = bucket(&store);
    put(&store, b.id, "f", b"bytes");
    assert_eq!(
        *seen_durable.lock().unwrap(),
        [
            (EventKind::RecordCreated, true),
            (EventKind::RecordCommitted, true),
            (EventKind::VersionCreated, true)
        ]
    );
}

#[test]
fn after_hooks_never_hear_of_a_rolled_back_transaction() {
    let (hooks, heard) = recording(Hooks::new());
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    let b = bucket(&store);
    // Every change succeeded, then the closure failed: nothing of it happened.
    let e = store
        .write(|tx| {
            let mut r = tx.create_record(json!({"title": "t"}))?;
            tx.commit_record(&mut r)?;
            tx.put_object(b.id, "k", &b"x"[..], &PutOptions::default())?;
            tx.delete_object(b.id, "k")?;
            Err::<(), _>(Error::InvalidOperation {
                reason: "changed my mind",
            })
        })
        .unwrap_err();
    assert!(matches!(e, Error::InvalidOperation { .. }));
    // The same, ended by a panic.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.write(|tx| -> recfiles::Result<()> {
            tx.create_record(json!({"title": "t"}))?;
            panic!("caller bug")
        })
    }));
    assert!(panicked.is_err());
    // A refused call of its own (a put over the quota) is not heard of either.
    let limited = store
        .create_bucket(&BucketOptions {
            quota_size: Some(3),
            ..BucketOptions::default()
        })
        .unwrap();
    assert!(
        store
            .put_object(limited.id, "big", &b"toolong"[..], &PutOptions::default())
            .is_err()
    );
    assert!(kinds(&heard).is_empty(), "{:?}", kinds(&heard));
    // One that commits is heard of, once.
    store
        .write(|tx| tx.create_record(json!({"title": "t"})))
        .unwrap();
    assert_eq!(kinds(&heard), [EventKind::RecordCreated]);
}

#[test]
fn a_failing_or_panicking_after_hook_is_isolated() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let told = Arc::clone(&failures);
    let hooks = Hooks::new()
        .after(|_s, e| match e.kind() {
            EventKind::RecordCreated => panic!("indexer crashed"),
            _ => Ok(()),
        })
        .after(|_s, _e| Err("audit log full".into()));
    let (hooks, heard) = recording(hooks);
    let hooks = hooks.on_after_failure(move |e, failure| {
        let what = match failure {
            HookFailure::Panicked(m) => format!("panic {m}"),
            HookFailure::Failed(err) => format!("error {err}"),
            other => format!("{other}"),
        };
        told.lock().unwrap().push((e.kind(), what));
        panic!("even the failure callback fails");
    });
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    // The call reports its change, which is stored; the later hook still ran.
    let r = store.create_record(json!({"title": "t"})).unwrap();
    assert!(store.record(r.id()).unwrap().is_some());
    assert_eq!(kinds(&heard), [EventKind::RecordCreated]);
    assert_eq!(
        *failures.lock().unwrap(),
        [
            (
                EventKind::RecordCreated,
                "panic indexer crashed".to_string()
            ),
            (EventKind::RecordCreated, "error audit log full".to_string())
        ]
    );
    // Nothing is poisoned: the store writes, reads and checks as before.
    let mut r = store.record(r.id()).unwrap().unwrap();
    r.body_mut().insert("next".into(), json!(true));
    store.commit_record(&mut r).unwrap();
    assert_eq!(store.record(r.id()).unwrap(), Some(r));
    assert_consistent(&store);
}

/// A search index kept in step by an after hook: title → record id, for live records.
#[test]
fn an_after_hook_keeps_a_search_index_in_step() {
    type Index = Arc<Mutex<BTreeMap<String, RecordId>>>;
    let index: Index = Arc::default();
    let ix = Arc::clone(&index);
    let hooks = Hooks::new().after(move |_store, event| {
        let mut ix = ix.lock().unwrap();
        let Some(record) = event.record() else {
            return Ok(());
        };
        ix.retain(|_, id| *id != record.id());
        let live = !matches!(event, Event::RecordDeleted { .. }) && !record.is_deleted();
        if live && let Some(title) = record.get("title").and_then(|t| t.as_str()) {
            ix.insert(title.to_string(), record.id());
        }
        Ok(())
    });
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    let mut a = store.create_record(json!({"title": "alpha"})).unwrap();
    let mut b = store.create_record(json!({"title": "beta"})).unwrap();
    let c = store.create_record(json!({"title": "gamma"})).unwrap();
    a.body_mut().insert("title".into(), json!("alpha 2"));
    store.commit_record(&mut a).unwrap();
    store.delete_record(&mut b).unwrap();
    store.remove_record(c.id()).unwrap();
    // A rolled-back rename is not indexed.
    let _ = store.write(|tx| {
        let mut a = tx.record(a.id())?.unwrap();
        a.body_mut().insert("title".into(), json!("never"));
        tx.commit_record(&mut a)?;
        Err::<(), _>(Error::InvalidOperation {
            reason: "rolled back",
        })
    });
    let want: BTreeMap<String, RecordId> = [("alpha 2".to_string(), a.id())].into();
    assert_eq!(*index.lock().unwrap(), want);
    store.undelete_record(&mut b).unwrap();
    let back = store.revert_record(a.id(), 0).unwrap();
    let want: BTreeMap<String, RecordId> = [
        ("alpha".to_string(), back.id()),
        ("beta".to_string(), b.id()),
    ]
    .into();
    assert_eq!(*index.lock().unwrap(), want);
}

/// An audit log kept in the store itself: an after hook writes one audit record per file
/// event (and ignores the events of its own writes).
#[test]
fn an_after_hook_writes_an_audit_log_into_the_store() {
    let log_ids = Arc::new(Mutex::new(Vec::new()));
    let ids = Arc::clone(&log_ids);
    let hooks = Hooks::new().after(move |store, event| {
        let Some(v) = event.version() else {
            return Ok(());
        };
        let entry = json!({"audit": event.kind().to_string(), "key": v.key});
        let r = store.create_record_with(entry, &RecordOptions::without_bucket())?;
        ids.lock().unwrap().push(r.id());
        Ok(())
    });
    let store = Store::builder()
        .hooks(hooks)
        .multipart_limits(MultipartLimits {
            min_part_size: 1024,
            ..MultipartLimits::default()
        })
        .in_memory()
        .unwrap();
    let b = bucket(&store);
    let v1 = put(&store, b.id, "a.txt", b"one");
    put(&store, b.id, "a.txt", b"two");
    store.restore_version(v1.version_id).unwrap();
    store.delete_object(b.id, "a.txt").unwrap();
    store.remove_version(v1.version_id).unwrap();
    let mp = store.init_multipart(b.id, "big.bin", 2048, 1024).unwrap();
    store.upload_part(mp.id, 0, &[1u8; 1024][..]).unwrap();
    store.upload_part(mp.id, 1, &[2u8; 1024][..]).unwrap();
    store.complete_multipart(mp.id).unwrap();
    let log: Vec<(String, String)> = store
        .records(&log_ids.lock().unwrap())
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("audit").unwrap().as_str().unwrap().into(),
                r.get("key").unwrap().as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("VersionCreated", "a.txt"),
        ("VersionCreated", "a.txt"),
        ("VersionCreated", "a.txt"),
        ("ObjectDeleted", "a.txt"),
        ("VersionRemoved", "a.txt"),
        ("VersionCreated", "big.bin"),
        ("MultipartCompleted", "big.bin"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(log, want);
    assert_consistent(&store);
}

#[test]
fn record_files_changes_are_heard_as_versions_then_the_commit() {
    let (hooks, heard) = recording(Hooks::new());
    let store = Store::builder().hooks(hooks).in_memory().unwrap();
    let mut r = store.create_record(json!({"title": "t"})).unwrap();
    store
        .update_files(&mut r, |f| {
            f.put("a.txt", &b"a"[..])?;
            f.rename("a.txt", "b.txt")
        })
        .unwrap();
    assert_eq!(
        kinds(&heard),
        [
            EventKind::RecordCreated,
            EventKind::VersionCreated,
            EventKind::VersionCreated,
            EventKind::ObjectDeleted,
            EventKind::RecordCommitted
        ]
    );
    let last = heard.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last.record(),
        Some(&r),
        "the event carries the record as stored"
    );
}

#[test]
fn concurrent_writers_sharing_syncs_each_hear_of_their_own_commits_once_durable() {
    const THREADS: usize = 4;
    const EACH: usize = 10;
    let disk = SimulatedDisk::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let (d, log) = (disk.clone(), Arc::clone(&heard));
    let hooks = Hooks::new().after(move |_store, event| {
        if let Event::RecordCreated { record } = event {
            let crashed =
                Store::builder().open_backend(SimulatedDisk::from_image(d.durable_image()))?;
            let durable = crashed.record(record.id())?.is_some();
            log.lock()
                .unwrap()
                .push((record.id(), durable, std::thread::current().id()));
        }
        Ok(())
    });
    let store = Store::builder().hooks(hooks).open_backend(disk).unwrap();
    let start = Arc::new(std::sync::Barrier::new(THREADS));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                (0..EACH)
                    .map(|i| {
                        let body = json!({"title": format!("{t}-{i}")});
                        let id = store.create_record(body).unwrap().id();
                        (id, std::thread::current().id())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut created: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let mut heard: Vec<_> = heard
        .lock()
        .unwrap()
        .iter()
        .map(|&(id, durable, thread)| {
            assert!(durable, "record {id} was heard of before it was durable");
            (id, thread)
        })
        .collect();
    // Each commit heard of once, on the thread that made it.
    created.sort_by_key(|(id, _)| *id);
    heard.sort_by_key(|(id, _)| *id);
    assert_eq!(heard, created);
}
