//! Model-based test: random sequences of bucket and object operations applied both to the
//! store and to a plain in-memory model, compared after every step, with `check()` passing
//! throughout.

mod common;
use common::*;
use proptest::prelude::*;
use recfiles::prelude::*;
use recfiles::{Error, FilesQuery, SyncChange, VersionId};
use std::collections::BTreeMap;

const KEYS: &[&str] = &["a", "b", "dir/a", "c"];
const MAX_BUCKETS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Put {
        b: usize,
        k: usize,
        seed: u64,
        len: usize,
    },
    Delete {
        b: usize,
        k: usize,
    },
    Remove {
        b: usize,
        k: usize,
        which: usize,
    },
    Restore {
        b: usize,
        k: usize,
        which: usize,
    },
    Copy {
        b: usize,
        k: usize,
        db: usize,
        dk: usize,
    },
    Tag {
        b: usize,
        k: usize,
        tag: usize,
        value: u8,
    },
    Lock {
        b: usize,
        locked: bool,
    },
    Snapshot {
        b: usize,
        lock: bool,
    },
    Sync {
        src: usize,
        dst: usize,
        delete_extras: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let b = 0..MAX_BUCKETS;
    let k = 0..KEYS.len();
    prop_oneof![
        4 => (b.clone(), k.clone(), any::<u64>(), prop_oneof![0..200usize, 4000..20_000usize])
            .prop_map(|(b, k, seed, len)| Op::Put { b, k, seed, len }),
        2 => (b.clone(), k.clone()).prop_map(|(b, k)| Op::Delete { b, k }),
        2 => (b.clone(), k.clone(), 0..4usize).prop_map(|(b, k, which)| Op::Remove { b, k, which }),
        1 => (b.clone(), k.clone(), 0..4usize).prop_map(|(b, k, which)| Op::Restore { b, k, which }),
        1 => (b.clone(), k.clone(), b.clone(), k.clone()).prop_map(|(b, k, db, dk)| Op::Copy { b, k, db, dk }),
        1 => (b.clone(), k.clone(), 0..3usize, any::<u8>()).prop_map(|(b, k, tag, value)| Op::Tag { b, k, tag, value }),
        1 => (b.clone(), any::<bool>()).prop_map(|(b, locked)| Op::Lock { b, locked }),
        1 => (b.clone(), any::<bool>()).prop_map(|(b, lock)| Op::Snapshot { b, lock }),
        1 => (b.clone(), b, any::<bool>()).prop_map(|(src, dst, delete_extras)| Op::Sync { src, dst, delete_extras }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MVersion {
    id: VersionId,
    content: Option<Vec<u8>>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct MBucket {
    id: BucketId,
    quota: Option<u64>,
    locked: bool,
    // key → versions, oldest first
    keys: BTreeMap<String, Vec<MVersion>>,
}

impl MBucket {
    fn size(&self) -> u64 {
        self.keys
            .values()
            .flatten()
            .filter_map(|v| v.content.as_ref())
            .map(|c| c.len() as u64)
            .sum()
    }
    fn fits(&self, extra: u64) -> bool {
        match self.quota {
            Some(q) if q > 0 => self.size() + extra <= q,
            _ => true,
        }
    }
    fn head(&self, key: &str) -> Option<&MVersion> {
        self.keys.get(key).and_then(|v| v.last())
    }
    fn live_head(&self, key: &str) -> Option<&MVersion> {
        self.head(key).filter(|v| v.content.is_some())
    }
    fn push(&mut self, key: &str, v: MVersion) {
        self.keys.entry(key.to_string()).or_default().push(v);
    }
}

/// The error variant's name, to compare outcomes without comparing messages.
fn kind(r: &Result<(), Error>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

fn expect(ok: bool, err: &str) -> String {
    if ok { "ok".into() } else { err.into() }
}

fn run(ops: Vec<Op>) {
    let store = small_store();
    let mut model: Vec<MBucket> = Vec::new();
    for q in [None, Some(30_000u64)] {
        let b = store
            .create_bucket(&BucketOptions {
                quota_size: q,
                ..BucketOptions::default()
            })
            .unwrap();
        model.push(MBucket {
            id: b.id,
            quota: q,
            locked: false,
            keys: BTreeMap::new(),
        });
    }
    for op in ops {
        let n = model.len();
        let (outcome, expected): (Result<(), Error>, String) = match op.clone() {
            Op::Put { b, k, seed, len } => {
                let m = &mut model[b % n];
                let data = bytes(seed, len);
                let exp = if m.locked {
                    "BucketLocked".into()
                } else {
                    expect(m.fits(len as u64), "FileSize")
                };
                let r = store.put_object(m.id, KEYS[k], &data[..], &PutOptions::default());
                if let Ok(v) = &r {
                    m.push(
                        KEYS[k],
                        MVersion {
                            id: v.version_id,
                            content: Some(data),
                            tags: BTreeMap::new(),
                        },
                    );
                }
                (r.map(|_| ()), exp)
            }
            Op::Delete { b, k } => {
                let m = &mut model[b % n];
                let exp = if m.locked {
                    "BucketLocked".to_string()
                } else {
                    "ok".into()
                };
                let r = store.delete_object(m.id, KEYS[k]);
                match &r {
                    Ok(Some(marker)) => {
                        assert!(
                            m.live_head(KEYS[k]).is_some(),
                            "store deleted a key the model has no live head for"
                        );
                        m.push(
                            KEYS[k],
                            MVersion {
                                id: marker.version_id,
                                content: None,
                                tags: BTreeMap::new(),
                            },
                        );
                    }
                    Ok(None) => assert!(m.live_head(KEYS[k]).is_none(), "store found no live head"),
                    Err(_) => {}
                }
                (r.map(|_| ()), exp)
            }
            Op::Remove { b, k, which } => {
                let m = &mut model[b % n];
                let Some(versions) = m.keys.get(KEYS[k]).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let idx = versions.len() - 1 - which % versions.len();
                let id = versions[idx].id;
                let exp = if m.locked {
                    "BucketLocked".to_string()
                } else {
                    "ok".into()
                };
                let r = store.remove_version(id);
                if r.is_ok() {
                    let vs = m.keys.get_mut(KEYS[k]).unwrap();
                    vs.remove(idx);
                    if vs.is_empty() {
                        m.keys.remove(KEYS[k]);
                    }
                }
                (r, exp)
            }
            Op::Restore { b, k, which } => {
                let m = &mut model[b % n];
                let Some(versions) = m.keys.get(KEYS[k]).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let idx = versions.len() - 1 - which % versions.len();
                let v = versions[idx].clone();
                let is_head = idx == versions.len() - 1;
                let exp = if is_head || v.content.is_none() {
                    "InvalidOperation".to_string()
                } else if m.locked {
                    "BucketLocked".into()
                } else {
                    expect(
                        m.fits(v.content.as_ref().map_or(0, |c| c.len() as u64)),
                        "FileSize",
                    )
                };
                let r = store.restore_version(v.id);
                if let Ok(new) = &r {
                    m.push(
                        KEYS[k],
                        MVersion {
                            id: new.version_id,
                            ..v
                        },
                    );
                }
                (r.map(|_| ()), exp)
            }
            Op::Copy { b, k, db, dk } => {
                let Some(src) = model[b % n].live_head(KEYS[k]).cloned() else {
                    continue;
                };
                let d = &mut model[db % n];
                let len = src.content.as_ref().map_or(0, |c| c.len() as u64);
                let exp = if d.locked {
                    "BucketLocked".into()
                } else {
                    expect(d.fits(len), "FileSize")
                };
                let r = store.copy_version(src.id, d.id, KEYS[dk]);
                if let Ok(new) = &r {
                    d.push(
                        KEYS[dk],
                        MVersion {
                            id: new.version_id,
                            ..src
                        },
                    );
                }
                (r.map(|_| ()), exp)
            }
            Op::Tag { b, k, tag, value } => {
                let m = &mut model[b % n];
                let Some(head) = m.keys.get_mut(KEYS[k]).and_then(|v| v.last_mut()) else {
                    continue;
                };
                let (key, val) = (format!("tag{tag}"), format!("v{value}"));
                let r = store.set_object_tag(head.id, &key, &val);
                if r.is_ok() {
                    head.tags.insert(key, val);
                }
                (r, "ok".into())
            }
            Op::Lock { b, locked } => {
                let m = &mut model[b % n];
                let r = store.set_bucket_locked(m.id, locked);
                if r.is_ok() {
                    m.locked = locked;
                }
                (r.map(|_| ()), "ok".into())
            }
            Op::Snapshot { b, lock } => {
                if n >= MAX_BUCKETS + 2 {
                    continue;
                }
                let src = model[b % n].clone();
                let r = store.snapshot_bucket(src.id, lock);
                if let Ok(nb) = &r {
                    let mut m = MBucket {
                        id: nb.id,
                        quota: src.quota,
                        locked: lock || src.locked,
                        keys: BTreeMap::new(),
                    };
                    for obj in store.list_objects(nb.id, &ListOptions::default()).unwrap() {
                        let v = src
                            .live_head(&obj.key)
                            .expect("snapshot copied a key the model lacks")
                            .clone();
                        m.push(
                            &obj.key,
                            MVersion {
                                id: obj.version_id,
                                ..v
                            },
                        );
                    }
                    let live = src
                        .keys
                        .keys()
                        .filter(|k| src.live_head(k).is_some())
                        .count();
                    assert_eq!(m.keys.len(), live, "snapshot copies every live head");
                    model.push(m);
                }
                (r.map(|_| ()), "ok".into())
            }
            Op::Sync {
                src,
                dst,
                delete_extras,
            } => {
                let (s, d) = (src % n, dst % n);
                let source = model[s].clone();
                let mut expected_changes = Vec::new();
                let mut added = 0u64;
                let mut fits = true;
                for (key, versions) in &source.keys {
                    let sv = versions.last().unwrap();
                    let dv = model[d].head(key).cloned();
                    match (&sv.content, &dv) {
                        (None, Some(dv)) if dv.content.is_some() => {
                            expected_changes.push(format!("del {key}"))
                        }
                        (None, _) => {}
                        // Identical content is recognised by file identity, which dedup makes
                        // equivalent to byte equality.
                        (Some(c), Some(dv)) if dv.content.as_ref() == Some(c) => {}
                        (Some(c), _) => {
                            added += c.len() as u64;
                            fits &= model[d].fits(added);
                            expected_changes.push(format!("add {key}"));
                        }
                    }
                }
                if delete_extras {
                    for key in model[d].keys.keys() {
                        if !source.keys.contains_key(key) && model[d].live_head(key).is_some() {
                            expected_changes.push(format!("del {key}"));
                        }
                    }
                }
                let exp = if model[d].locked {
                    "BucketLocked".to_string()
                } else {
                    expect(fits, "FileSize")
                };
                let r = store.sync_bucket(model[s].id, model[d].id, delete_extras);
                if let Ok(changes) = &r {
                    let got: Vec<String> = changes
                        .iter()
                        .map(|c| match c {
                            SyncChange::Added(v) => format!("add {}", v.key),
                            SyncChange::Deleted(k) => format!("del {k}"),
                        })
                        .collect();
                    assert_eq!(got, expected_changes);
                    for c in changes {
                        match c {
                            SyncChange::Added(v) => {
                                let sv = source.head(&v.key).unwrap().clone();
                                model[d].push(
                                    &v.key,
                                    MVersion {
                                        id: v.version_id,
                                        ..sv
                                    },
                                );
                            }
                            SyncChange::Deleted(k) => {
                                let marker =
                                    store.read(|r| r.head(model[d].id, k)).unwrap().unwrap();
                                model[d].push(
                                    k,
                                    MVersion {
                                        id: marker.version_id,
                                        content: None,
                                        tags: BTreeMap::new(),
                                    },
                                );
                            }
                        }
                    }
                }
                (r.map(|_| ()), exp)
            }
        };
        assert_eq!(kind(&outcome), expected, "outcome of {op:?}: {outcome:?}");
        compare(&store, &model, &op);
    }
}

fn compare(store: &Store, model: &[MBucket], op: &Op) {
    let report = store.check().unwrap();
    assert!(report.is_ok(), "after {op:?}: {report:#?}");
    store
        .read(|r| {
            for m in model {
                let b = r.bucket(m.id)?.expect("bucket exists");
                assert_eq!(b.size, m.size(), "size of bucket after {op:?}");
                assert_eq!(b.locked, m.locked);
                let all = r.list_objects(
                    m.id,
                    &ListOptions {
                        with_deleted: true,
                        ..ListOptions::default()
                    },
                )?;
                let keys: Vec<&str> = all.iter().map(|o| o.key.as_str()).collect();
                let model_keys: Vec<&str> = m.keys.keys().map(String::as_str).collect();
                assert_eq!(keys, model_keys, "keys after {op:?}");
                for (key, versions) in &m.keys {
                    let got = r.object_versions(m.id, key)?;
                    let want: Vec<_> = versions.iter().rev().collect();
                    assert_eq!(got.len(), want.len(), "versions of {key} after {op:?}");
                    for (i, (g, w)) in got.iter().zip(want).enumerate() {
                        assert_eq!(g.version_id, w.id);
                        assert_eq!(g.is_head, i == 0);
                        assert_eq!(g.size, w.content.as_ref().map(|c| c.len() as u64));
                        let want_sum = w
                            .content
                            .as_ref()
                            .map(|c| format!("blake3:{}", blake3::hash(c).to_hex()));
                        assert_eq!(g.checksum, want_sum);
                        assert_eq!(r.object_tags(g.version_id)?, w.tags);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
