//! Model-based fuzzing: arbitrary sequences of bucket, object, tag, multipart and record
//! operations (create, commit, soft delete, revert, hard delete; a record's bucket is a bucket
//! like the others, soft-deleted and brought back with its record) run against a store and
//! against a plain model (BTreeMaps). After every step the outcome (success
//! or the kind of error) must agree and everything observable must be equal (a version's
//! content byte for byte when it is new, and all content after a `Crash` and at the end of the
//! input); the store's full check must pass after every `Crash`, and its checks at the end of
//! each input (see `check_end_of_input`). `Crash` steps crash on the first input and every
//! 8th, and are skipped on the others (see `crash_every`; `RECFILES_FUZZ_CRASH_EVERY=1`, the
//! `ops-crash` mode, crashes on every input). One disk and
//! store serve the whole process, emptied (`WriteTx::clear`) before each input;
//! `RECFILES_FUZZ_FRESH=1` makes new ones per input.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use recfiles::prelude::*;
use recfiles::{
    Error, MultipartLimits, RecordId, RecordsQuery, SimulatedDisk, SyncChange, UploadId,
};
use recfiles_fuzz::{
    Reused, SeenBucket, SeenUpload, SeenVersion, assert_check, check_end_of_input,
    check_every_step, clear_and, content, crash_every, fresh_store_per_input, kind, observe_some,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

const KEYS: [&str; 4] = ["a", "b", "a/b", "ü.txt"];
const TAG_KEYS: [&str; 3] = ["t", "u", "ü"];
const TAG_VALUES: [&str; 3] = ["", "v", "w w"];
const CHUNK: usize = 1024;
const BATCH: usize = 2048;
const MAX_LEN: usize = 6000;
const MIN_PART: u64 = 1024;
const MAX_PART: u64 = 3072;
const MAX_PARTS: u64 = 4;

#[derive(Arbitrary, Debug)]
enum Op {
    /// The process dies (or the power goes) and the store is reopened on what was synced:
    /// everything observable must be as before, every call having been durable when it returned.
    Crash,
    CreateBucket {
        quota: Option<u16>,
        max_file: Option<u16>,
    },
    Put {
        b: u8,
        k: u8,
        seed: u8,
        len: u16,
        declare: bool,
    },
    PutInTx {
        b: u8,
        k: u8,
        seed: u8,
        len: u16,
    },
    PutThenDelete {
        b: u8,
        k: u8,
        other: u8,
        seed: u8,
        len: u16,
        then_fail: bool,
    },
    Delete {
        b: u8,
        k: u8,
    },
    RemoveVersion {
        b: u8,
        k: u8,
        nth: u8,
    },
    RestoreVersion {
        b: u8,
        k: u8,
        nth: u8,
    },
    CopyVersion {
        b: u8,
        k: u8,
        nth: u8,
        dest: u8,
        dest_k: u8,
    },
    SetTag {
        b: u8,
        k: u8,
        nth: u8,
        tag: u8,
        value: u8,
    },
    DeleteTag {
        b: u8,
        k: u8,
        nth: u8,
        tag: u8,
    },
    SetBucketTag {
        b: u8,
        tag: u8,
        value: u8,
    },
    DeleteBucketTag {
        b: u8,
        tag: u8,
    },
    Lock {
        b: u8,
        locked: bool,
    },
    SetLimits {
        b: u8,
        quota: Option<u16>,
        max_file: Option<u16>,
    },
    DeleteBucket {
        b: u8,
    },
    UndeleteBucket {
        b: u8,
    },
    RemoveBucket {
        b: u8,
    },
    Snapshot {
        b: u8,
        lock: bool,
    },
    Sync {
        src: u8,
        dest: u8,
        delete_extras: bool,
    },
    InitMultipart {
        b: u8,
        k: u8,
        size: u16,
        part_size: u16,
    },
    UploadPart {
        u: u8,
        n: u8,
        seed: u8,
        delta: u8,
    },
    Complete {
        u: u8,
    },
    Abort {
        u: u8,
    },
    CreateRecord {
        title: u8,
        with_bucket: bool,
    },
    CommitRecord {
        r: u8,
        title: u8,
    },
    DeleteRecord {
        r: u8,
    },
    RevertRecord {
        r: u8,
        revision: u8,
    },
    RemoveRecord {
        r: u8,
    },
}

/// A record in the model: its revisions' titles (`None`: a soft-delete revision) and its bucket.
#[derive(Debug, Clone)]
struct MRecord {
    revisions: Vec<Option<u8>>,
    bucket: Option<BucketId>,
}

#[derive(Debug, Clone)]
struct MVersion {
    /// `None` until the store's id for a version created in bulk (snapshot, sync) is learnt.
    id: Option<VersionId>,
    content: Option<Vec<u8>>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct MUpload {
    bucket: BucketId,
    key: String,
    size: u64,
    part_size: u64,
    parts: BTreeMap<u32, Vec<u8>>,
}

impl MUpload {
    fn last(&self) -> u32 {
        (self.size.div_ceil(self.part_size).max(1) - 1) as u32
    }
    fn expected(&self, n: u32) -> u64 {
        let start = (u64::from(n) * self.part_size).min(self.size);
        (start + self.part_size).min(self.size) - start
    }
}

#[derive(Debug, Clone, Default)]
struct MBucket {
    quota: Option<u64>,
    max_file: Option<u64>,
    locked: bool,
    deleted: bool,
    tags: BTreeMap<String, String>,
    /// Newest first: index 0 is the head.
    objects: BTreeMap<String, Vec<MVersion>>,
}

#[derive(Debug, Clone, Default)]
struct Model {
    buckets: BTreeMap<BucketId, MBucket>,
    uploads: BTreeMap<UploadId, MUpload>,
    /// Every bucket ever created, removed ones included (they must stay "not found").
    bucket_order: Vec<BucketId>,
    /// Every upload ever started, finished ones included.
    upload_order: Vec<UploadId>,
    records: BTreeMap<RecordId, MRecord>,
    /// Every record ever created, removed ones included.
    record_order: Vec<RecordId>,
    /// Versions whose content the store has shown equal to the model's since the last
    /// `Crash`: after a step, only the others' content is read back (a version's content never
    /// changes), the rest at the end of the input and after a `Crash`.
    checked: BTreeSet<VersionId>,
}

type Expect = Result<(), &'static str>;

impl Model {
    fn size(&self, b: BucketId) -> u64 {
        let Some(bucket) = self.buckets.get(&b) else {
            return 0;
        };
        let versions: u64 = bucket
            .objects
            .values()
            .flatten()
            .filter_map(|v| v.content.as_ref().map(|c| c.len() as u64))
            .sum();
        let reserved: u64 = self
            .uploads
            .values()
            .filter(|u| u.bucket == b)
            .map(|u| u.size)
            .sum();
        versions + reserved
    }

    /// The most bytes one upload into `b` may have (Invenio's `size_limit`).
    fn cap(&self, b: BucketId) -> Option<u64> {
        let bucket = &self.buckets[&b];
        let quota_left = match bucket.quota {
            Some(q) if q > 0 => Some(q.saturating_sub(self.size(b))),
            _ => None,
        };
        match (quota_left, bucket.max_file) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        }
    }

    fn fits(&self, b: BucketId, len: u64) -> Expect {
        match self.cap(b) {
            Some(c) if len > c => Err("FileSize"),
            _ => Ok(()),
        }
    }

    fn exists(&self, b: BucketId) -> Expect {
        if self.buckets.contains_key(&b) {
            Ok(())
        } else {
            Err("BucketNotFound")
        }
    }

    fn writable(&self, b: BucketId) -> Expect {
        let bucket = self.buckets.get(&b).ok_or("BucketNotFound")?;
        if bucket.deleted {
            Err("BucketDeleted")
        } else if bucket.locked {
            Err("BucketLocked")
        } else {
            Ok(())
        }
    }

    fn bucket(&self, i: u8) -> BucketId {
        self.bucket_order[usize::from(i) % self.bucket_order.len()]
    }

    fn upload(&self, i: u8) -> UploadId {
        match self.upload_order.len() {
            0 => UploadId::new(),
            n => self.upload_order[usize::from(i) % n],
        }
    }

    /// The `nth` version of a key (newest first), or an id no version has.
    fn version(&self, b: BucketId, k: &str, nth: u8) -> VersionId {
        let found = self
            .buckets
            .get(&b)
            .and_then(|bk| bk.objects.get(k))
            .and_then(|vs| {
                let v = &vs[usize::from(nth) % vs.len()];
                v.id
            });
        found.unwrap_or_default()
    }

    /// (bucket, key, index) of a version.
    fn locate(&self, id: VersionId) -> Option<(BucketId, String, usize)> {
        for (b, bucket) in &self.buckets {
            for (k, vs) in &bucket.objects {
                if let Some(i) = vs.iter().position(|v| v.id == Some(id)) {
                    return Some((*b, k.clone(), i));
                }
            }
        }
        None
    }

    fn push(&mut self, b: BucketId, k: &str, v: MVersion) {
        let bucket = self.buckets.get_mut(&b).expect("bucket of a new version");
        bucket
            .objects
            .entry(k.to_string())
            .or_default()
            .insert(0, v);
    }

    fn live_head(&self, b: BucketId, k: &str) -> Option<&MVersion> {
        self.buckets[&b]
            .objects
            .get(k)
            .and_then(|vs| vs.first())
            .filter(|v| v.content.is_some())
    }

    /// What the store must show, with the content of the versions `read` picks.
    fn seen(&self, read: impl Fn(VersionId) -> bool) -> BTreeMap<BucketId, Option<SeenBucket>> {
        let mut out = BTreeMap::new();
        for id in &self.bucket_order {
            let seen = self.buckets.get(id).map(|b| SeenBucket {
                size: self.size(*id),
                locked: b.locked,
                deleted: b.deleted,
                quota: b.quota,
                max_file: b.max_file,
                tags: b.tags.clone(),
                objects: b
                    .objects
                    .iter()
                    .map(|(k, vs)| {
                        let vs = vs
                            .iter()
                            .map(|v| {
                                let id = v.id.unwrap_or_default();
                                SeenVersion {
                                    id,
                                    size: v.content.as_ref().map(|c| c.len() as u64),
                                    content: v.content.clone().filter(|_| read(id)),
                                    tags: v.tags.clone(),
                                }
                            })
                            .collect();
                        (k.clone(), vs)
                    })
                    .collect(),
                uploads: self
                    .uploads
                    .iter()
                    .filter(|(_, u)| u.bucket == *id)
                    .map(|(uid, u)| {
                        let seen = SeenUpload {
                            key: u.key.clone(),
                            size: u.size,
                            part_size: u.part_size,
                            parts: u.parts.keys().copied().collect(),
                        };
                        (*uid, seen)
                    })
                    .collect(),
            });
            out.insert(*id, seen);
        }
        out
    }

    /// Learns the store's ids for versions the model created without one (always heads).
    fn learn_ids(&mut self, seen: &BTreeMap<BucketId, Option<SeenBucket>>) {
        for (b, bucket) in self.buckets.iter_mut() {
            let Some(Some(s)) = seen.get(b) else { continue };
            for (k, vs) in bucket.objects.iter_mut() {
                if let (Some(v), Some(sv)) =
                    (vs.first_mut(), s.objects.get(k).and_then(|x| x.first()))
                    && v.id.is_none()
                {
                    v.id = Some(sv.id);
                }
            }
        }
    }
}

fn outcome<T>(r: &Result<T, Error>) -> Expect {
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(kind(e)),
    }
}

fn agree<T: std::fmt::Debug>(op: &Op, want: Expect, got: &Result<T, Error>) {
    assert_eq!(
        want,
        outcome(got),
        "{op:?}: model expected {want:?}, store returned {got:?}"
    );
}

fn key(k: u8) -> &'static str {
    KEYS[usize::from(k) % KEYS.len()]
}

fn quota(q: Option<u16>) -> Option<u64> {
    q.map(|q| u64::from(q) * 4)
}

/// The journal region of the fuzzed store: 64 KiB, or `RECFILES_FUZZ_JOURNAL_KIB`. A small one
/// checkpoints often; a larger one keeps more commits logged (a commit over a quarter of the
/// region goes in place), so deferred syncs and multi-batch replays get exercised.
fn journal_size() -> u64 {
    static SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("RECFILES_FUZZ_JOURNAL_KIB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(64 << 10, |kib| kib << 10)
    })
}

fn open(disk: &SimulatedDisk) -> Store {
    Store::builder()
        // A small journal: commits are logged, checkpointed and replayed often.
        .journal_size(journal_size())
        .cache_size(1 << 20)
        .chunk_size(CHUNK)
        .staging_batch(BATCH)
        .multipart_limits(MultipartLimits {
            min_part_size: MIN_PART,
            max_part_size: MAX_PART,
            max_parts: MAX_PARTS,
            ..MultipartLimits::default()
        })
        .open_backend(disk.clone())
        .expect("store on a simulated disk")
}

/// One disk and store for the whole process, emptied before each input (a `Crash` step
/// replaces both, and the replacements are kept).
static STORE: Reused<(SimulatedDisk, Store)> = Reused::new();

fn run(ops: Vec<Op>) {
    let (mut disk, mut store) = STORE.take(|| {
        let disk = SimulatedDisk::new();
        let store = open(&disk);
        (disk, store)
    });
    // Whether this input's `Crash` steps crash (see `crash_every`).
    static INPUTS: AtomicU64 = AtomicU64::new(0);
    let crashes =
        INPUTS.fetch_add(1, Ordering::Relaxed) % crash_every() == 0 || fresh_store_per_input();
    let mut m = Model::default();
    let first = clear_and(&store, |tx| tx.create_bucket(&BucketOptions::default()));
    m.buckets.insert(first.id, MBucket::default());
    m.bucket_order.push(first.id);

    for op in ops.into_iter().take(48) {
        if let Op::Crash = op {
            if !crashes {
                continue;
            }
            disk = SimulatedDisk::from_image(disk.durable_image());
            store = open(&disk);
            // Recovery must leave every invariant holding, not just the state the model sees.
            assert_check(&store);
            // And every byte of content: read it all back.
            m.checked.clear();
        } else {
            step(&store, &mut m, &op);
        }
        compare(&store, &mut m, &op);
        compare_records(&store, &m, &op);
        if check_every_step() {
            assert_check(&store);
        }
    }
    // Every version's content read back once more, and the format's invariants (the engine's
    // own check too now and then; see `check_end_of_input`).
    m.checked.clear();
    compare(&store, &mut m, &"the input's last step");
    check_end_of_input(&store);
    STORE.keep((disk, store));
}

/// Everything observable about every bucket the model knows equals the model's, the content of
/// the versions not yet checked byte for byte (`after` names the step, for the message).
fn compare(store: &Store, m: &mut Model, after: &dyn std::fmt::Debug) {
    let snap = store.snapshot().expect("snapshot");
    let seen = observe_some(&snap, &m.bucket_order, |id| !m.checked.contains(&id));
    m.learn_ids(&seen);
    assert_eq!(
        m.seen(|id| !m.checked.contains(&id)),
        seen,
        "store and model differ after {after:?}"
    );
    for bucket in seen.values().flatten() {
        for versions in bucket.objects.values() {
            m.checked.extend(versions.iter().map(|v| v.id));
        }
    }
}

fn step(store: &Store, m: &mut Model, op: &Op) {
    match *op {
        // Handled by `run`, which owns the store.
        Op::Crash => {}
        Op::CreateBucket { quota: q, max_file } => {
            let opts = BucketOptions {
                quota_size: quota(q),
                max_file_size: quota(max_file),
                ..BucketOptions::default()
            };
            let b = store.create_bucket(&opts).expect("create bucket");
            m.buckets.insert(
                b.id,
                MBucket {
                    quota: opts.quota_size,
                    max_file: opts.max_file_size,
                    ..MBucket::default()
                },
            );
            m.bucket_order.push(b.id);
        }
        Op::Put {
            b,
            k,
            seed,
            len,
            declare,
        } => put(store, m, op, b, k, seed, len, declare, false),
        Op::PutInTx { b, k, seed, len } => put(store, m, op, b, k, seed, len, false, true),
        Op::PutThenDelete {
            b,
            k,
            other,
            seed,
            len,
            then_fail,
        } => {
            let b = m.bucket(b);
            let data = content(seed, usize::from(len) % MAX_LEN);
            let mut want = m.writable(b).and_then(|_| m.fits(b, data.len() as u64));
            if want.is_ok() && then_fail {
                want = Err("InvalidOperation");
            }
            let got = store.write(|tx| {
                let v = tx.put_object(b, key(k), &data[..], &PutOptions::default())?;
                let marker = tx.delete_object(b, key(other))?;
                if then_fail {
                    return Err(Error::InvalidOperation {
                        reason: "fuzz: roll back",
                    });
                }
                Ok((v, marker))
            });
            agree(op, want, &got);
            if let Ok((v, marker)) = got {
                m.push(
                    b,
                    key(k),
                    MVersion {
                        id: Some(v.version_id),
                        content: Some(data),
                        tags: BTreeMap::new(),
                    },
                );
                let live = m.live_head(b, key(other)).is_some();
                assert_eq!(live, marker.is_some(), "{op:?}: delete marker");
                if let Some(mk) = marker {
                    m.push(
                        b,
                        key(other),
                        MVersion {
                            id: Some(mk.version_id),
                            content: None,
                            tags: BTreeMap::new(),
                        },
                    );
                }
            }
        }
        Op::Delete { b, k } => {
            let b = m.bucket(b);
            let want = m.writable(b);
            let got = store.delete_object(b, key(k));
            agree(op, want, &got);
            if let Ok(marker) = got {
                assert_eq!(m.live_head(b, key(k)).is_some(), marker.is_some(), "{op:?}");
                if let Some(mk) = marker {
                    m.push(
                        b,
                        key(k),
                        MVersion {
                            id: Some(mk.version_id),
                            content: None,
                            tags: BTreeMap::new(),
                        },
                    );
                }
            }
        }
        Op::RemoveVersion { b, k, nth } => {
            let vid = m.version(m.bucket(b), key(k), nth);
            let loc = m.locate(vid);
            let want = match &loc {
                None => Err("VersionNotFound"),
                Some((bk, _, _)) => m.writable(*bk),
            };
            let got = store.remove_version(vid);
            agree(op, want, &got);
            if got.is_ok() {
                let (bk, key, i) = loc.expect("located");
                let objects = &mut m.buckets.get_mut(&bk).expect("bucket").objects;
                let vs = objects.get_mut(&key).expect("versions");
                vs.remove(i);
                if vs.is_empty() {
                    objects.remove(&key);
                }
            }
        }
        Op::RestoreVersion { b, k, nth } => {
            let vid = m.version(m.bucket(b), key(k), nth);
            let loc = m.locate(vid);
            let want = match &loc {
                None => Err("VersionNotFound"),
                Some((_, _, 0)) => Err("InvalidOperation"),
                Some((bk, key, i)) => {
                    let v = &m.buckets[bk].objects[key][*i];
                    match &v.content {
                        None => Err("InvalidOperation"),
                        Some(c) => m.writable(*bk).and_then(|_| m.fits(*bk, c.len() as u64)),
                    }
                }
            };
            let got = store.restore_version(vid);
            agree(op, want, &got);
            if let Ok(new) = got {
                let (bk, key, i) = loc.expect("located");
                let mut v = m.buckets[&bk].objects[&key][i].clone();
                v.id = Some(new.version_id);
                m.push(bk, &key, v);
            }
        }
        Op::CopyVersion {
            b,
            k,
            nth,
            dest,
            dest_k,
        } => {
            let vid = m.version(m.bucket(b), key(k), nth);
            let dest = m.bucket(dest);
            let loc = m.locate(vid);
            let want = match &loc {
                None => Err("VersionNotFound"),
                Some((bk, key, i)) => match &m.buckets[bk].objects[key][*i].content {
                    None => Err("InvalidOperation"),
                    Some(c) => m.writable(dest).and_then(|_| m.fits(dest, c.len() as u64)),
                },
            };
            let got = store.copy_version(vid, dest, key(dest_k));
            agree(op, want, &got);
            if let Ok(new) = got {
                let (bk, key, i) = loc.expect("located");
                let mut v = m.buckets[&bk].objects[&key][i].clone();
                v.id = Some(new.version_id);
                m.push(dest, key_of(dest_k), v);
            }
        }
        Op::SetTag {
            b,
            k,
            nth,
            tag,
            value,
        } => {
            let vid = m.version(m.bucket(b), key(k), nth);
            let loc = m.locate(vid);
            let want = if loc.is_some() {
                Ok(())
            } else {
                Err("VersionNotFound")
            };
            let (tk, tv) = (
                TAG_KEYS[usize::from(tag) % 3],
                TAG_VALUES[usize::from(value) % 3],
            );
            let got = store.set_object_tag(vid, tk, tv);
            agree(op, want, &got);
            if got.is_ok() {
                let (bk, key, i) = loc.expect("located");
                let v = &mut m
                    .buckets
                    .get_mut(&bk)
                    .expect("bucket")
                    .objects
                    .get_mut(&key)
                    .expect("key")[i];
                v.tags.insert(tk.to_string(), tv.to_string());
            }
        }
        Op::DeleteTag { b, k, nth, tag } => {
            let vid = m.version(m.bucket(b), key(k), nth);
            let tk = TAG_KEYS[usize::from(tag) % 3];
            let got = store.write(|tx| tx.delete_object_tag(vid, tk));
            let existed = match m.locate(vid) {
                Some((bk, key, i)) => m
                    .buckets
                    .get_mut(&bk)
                    .expect("bucket")
                    .objects
                    .get_mut(&key)
                    .expect("key")[i]
                    .tags
                    .remove(tk)
                    .is_some(),
                None => false,
            };
            assert_eq!(got.expect("delete tag"), existed, "{op:?}");
        }
        Op::SetBucketTag { b, tag, value } => {
            let b = m.bucket(b);
            let (tk, tv) = (
                TAG_KEYS[usize::from(tag) % 3],
                TAG_VALUES[usize::from(value) % 3],
            );
            let want = m.exists(b);
            let got = store.write(|tx| tx.set_bucket_tag(b, tk, tv));
            agree(op, want, &got);
            if got.is_ok() {
                m.buckets
                    .get_mut(&b)
                    .expect("bucket")
                    .tags
                    .insert(tk.into(), tv.into());
            }
        }
        Op::DeleteBucketTag { b, tag } => {
            let b = m.bucket(b);
            let tk = TAG_KEYS[usize::from(tag) % 3];
            let got = store
                .write(|tx| tx.delete_bucket_tag(b, tk))
                .expect("delete bucket tag");
            let existed = m
                .buckets
                .get_mut(&b)
                .is_some_and(|bk| bk.tags.remove(tk).is_some());
            assert_eq!(got, existed, "{op:?}");
        }
        Op::Lock { b, locked } => {
            let b = m.bucket(b);
            let want = m.exists(b).and_then(|_| {
                if m.buckets[&b].deleted {
                    Err("BucketDeleted")
                } else {
                    Ok(())
                }
            });
            let got = store.set_bucket_locked(b, locked);
            agree(op, want, &got);
            if got.is_ok() {
                m.buckets.get_mut(&b).expect("bucket").locked = locked;
            }
        }
        Op::SetLimits {
            b,
            quota: q,
            max_file,
        } => {
            let b = m.bucket(b);
            let want = m.exists(b).and_then(|_| {
                if m.buckets[&b].deleted {
                    Err("BucketDeleted")
                } else {
                    Ok(())
                }
            });
            let got = store.write(|tx| tx.set_bucket_limits(b, quota(q), quota(max_file)));
            agree(op, want, &got);
            if got.is_ok() {
                let bk = m.buckets.get_mut(&b).expect("bucket");
                bk.quota = quota(q);
                bk.max_file = quota(max_file);
            }
        }
        Op::DeleteBucket { b } => {
            let b = m.bucket(b);
            let got = store.delete_bucket(b).expect("delete bucket");
            let changed = match m.buckets.get_mut(&b) {
                Some(bk) if !bk.deleted => {
                    bk.deleted = true;
                    true
                }
                _ => false,
            };
            assert_eq!(got, changed, "{op:?}");
        }
        Op::UndeleteBucket { b } => {
            let b = m.bucket(b);
            let want = m.exists(b);
            let got = store.write(|tx| tx.undelete_bucket(b));
            agree(op, want, &got);
            if let Ok(changed) = got {
                let bk = m.buckets.get_mut(&b).expect("bucket");
                assert_eq!(changed, bk.deleted, "{op:?}");
                bk.deleted = false;
            }
        }
        Op::RemoveBucket { b } => {
            let b = m.bucket(b);
            let want = m.exists(b).and_then(|_| {
                if m.buckets[&b].locked {
                    Err("BucketLocked")
                } else {
                    Ok(())
                }
            });
            let got = store.remove_bucket(b);
            agree(op, want, &got);
            if got.is_ok() {
                m.buckets.remove(&b);
                m.uploads.retain(|_, u| u.bucket != b);
                for r in m.records.values_mut() {
                    if r.bucket == Some(b) {
                        r.bucket = None;
                    }
                }
            }
        }
        Op::Snapshot { b, lock } => {
            let b = m.bucket(b);
            let want = m.exists(b).and_then(|_| {
                if m.buckets[&b].deleted {
                    Err("InvalidOperation")
                } else {
                    Ok(())
                }
            });
            let got = store.snapshot_bucket(b, lock);
            agree(op, want, &got);
            if let Ok(new) = got {
                let src = &m.buckets[&b];
                let mut copy = MBucket {
                    quota: src.quota,
                    max_file: src.max_file,
                    locked: lock || src.locked,
                    ..MBucket::default()
                };
                for (k, vs) in &src.objects {
                    if vs[0].content.is_some() {
                        let mut v = vs[0].clone();
                        v.id = None;
                        copy.objects.insert(k.clone(), vec![v]);
                    }
                }
                m.buckets.insert(new.id, copy);
                m.bucket_order.push(new.id);
            }
        }
        Op::Sync {
            src,
            dest,
            delete_extras,
        } => {
            let (src, dest) = (m.bucket(src), m.bucket(dest));
            let mut want = m
                .exists(src)
                .and_then(|_| {
                    if m.buckets[&src].deleted {
                        Err("InvalidOperation")
                    } else {
                        Ok(())
                    }
                })
                .and_then(|_| m.writable(dest));
            let mut after = m.clone();
            if want.is_ok() {
                let heads: Vec<(String, Option<Vec<u8>>)> = m.buckets[&src]
                    .objects
                    .iter()
                    .map(|(k, vs)| (k.clone(), vs[0].content.clone()))
                    .collect();
                for (k, c) in &heads {
                    let d = after.buckets[&dest].objects.get(k).map(|vs| vs[0].clone());
                    match c {
                        None => {
                            if d.is_some_and(|d| d.content.is_some()) {
                                after.push(
                                    dest,
                                    k,
                                    MVersion {
                                        id: None,
                                        content: None,
                                        tags: BTreeMap::new(),
                                    },
                                );
                            }
                        }
                        Some(c) => {
                            if d.as_ref().and_then(|d| d.content.as_ref()) != Some(c) {
                                if let Err(e) = after.fits(dest, c.len() as u64) {
                                    want = Err(e);
                                    break;
                                }
                                let v = m.buckets[&src].objects[k][0].clone();
                                after.push(dest, k, MVersion { id: None, ..v });
                            }
                        }
                    }
                }
                if want.is_ok() && delete_extras {
                    let extras: Vec<String> = after.buckets[&dest]
                        .objects
                        .iter()
                        .filter(|(k, vs)| {
                            vs[0].content.is_some() && !m.buckets[&src].objects.contains_key(*k)
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in extras {
                        after.push(
                            dest,
                            &k,
                            MVersion {
                                id: None,
                                content: None,
                                tags: BTreeMap::new(),
                            },
                        );
                    }
                }
            }
            let got = store.sync_bucket(src, dest, delete_extras);
            agree(op, want, &got);
            if let Ok(changes) = got {
                let added = changes
                    .iter()
                    .filter(|c| matches!(c, SyncChange::Added(_)))
                    .count();
                let _ = added;
                *m = after;
            }
        }
        Op::InitMultipart {
            b,
            k,
            size,
            part_size,
        } => {
            let b = m.bucket(b);
            let (size, part_size) = (u64::from(size) % 8000, u64::from(part_size) % 4000);
            let want = m.writable(b).and_then(|_| {
                if !(MIN_PART..=MAX_PART).contains(&part_size) {
                    Err("MultipartInvalidPartSize")
                } else if size <= MIN_PART || size > part_size * MAX_PARTS {
                    Err("MultipartInvalidSize")
                } else {
                    m.fits(b, size)
                }
            });
            let got = store.init_multipart(b, key(k), size, part_size);
            agree(op, want, &got);
            if let Ok(u) = got {
                m.uploads.insert(
                    u.id,
                    MUpload {
                        bucket: b,
                        key: key(k).into(),
                        size,
                        part_size,
                        parts: BTreeMap::new(),
                    },
                );
                m.upload_order.push(u.id);
            }
        }
        Op::UploadPart { u, n, seed, delta } => {
            let uid = m.upload(u);
            let (want, len) = match m.uploads.get(&uid) {
                None => (Err("MultipartNotFound"), 10),
                Some(up) => {
                    let n = u32::from(n) % (up.last() + 2);
                    let expected = up.expected(n);
                    let len = match delta % 4 {
                        1 => expected + 1,
                        2 => expected.saturating_sub(1),
                        _ => expected,
                    };
                    let want = if n > up.last() {
                        Err("MultipartInvalidPartNumber")
                    } else if len != expected {
                        Err("MultipartPartSize")
                    } else {
                        m.writable(up.bucket)
                    };
                    (want, len)
                }
            };
            let n = m
                .uploads
                .get(&uid)
                .map(|up| u32::from(n) % (up.last() + 2))
                .unwrap_or(0);
            let data = content(seed, len as usize);
            let got = store.upload_part(uid, n, &data[..]);
            agree(op, want, &got);
            if got.is_ok() {
                m.uploads
                    .get_mut(&uid)
                    .expect("upload")
                    .parts
                    .insert(n, data);
            }
        }
        Op::Complete { u } => {
            let uid = m.upload(u);
            let want = match m.uploads.get(&uid) {
                None => Err("MultipartNotFound"),
                Some(up) if (0..=up.last()).any(|n| !up.parts.contains_key(&n)) => {
                    Err("MultipartMissingParts")
                }
                Some(up) => m.writable(up.bucket),
            };
            let got = store.complete_multipart(uid);
            agree(op, want, &got);
            if let Ok(v) = got {
                let up = m.uploads.remove(&uid).expect("upload");
                let data: Vec<u8> = up.parts.values().flatten().copied().collect();
                assert_eq!(data.len() as u64, up.size);
                m.push(
                    up.bucket,
                    &up.key,
                    MVersion {
                        id: Some(v.version_id),
                        content: Some(data),
                        tags: BTreeMap::new(),
                    },
                );
            }
        }
        Op::CreateRecord { .. }
        | Op::CommitRecord { .. }
        | Op::DeleteRecord { .. }
        | Op::RevertRecord { .. }
        | Op::RemoveRecord { .. } => record_step(store, m, op),
        Op::Abort { u } => {
            let uid = m.upload(u);
            let want = match m.uploads.get(&uid) {
                None => Err("MultipartNotFound"),
                Some(up) => m.writable(up.bucket),
            };
            let got = store.abort_multipart(uid);
            agree(op, want, &got);
            if got.is_ok() {
                m.uploads.remove(&uid);
            }
        }
    }
}

const TITLES: [&str; 3] = ["a", "b", "ü"];

fn title_of(r: &recfiles::Record) -> Option<u8> {
    let t = r.get("title")?.as_str()?;
    TITLES.iter().position(|x| *x == t).map(|i| i as u8)
}

/// Every record the model knows: current value and every revision, as the store shows them.
fn compare_records(store: &Store, m: &Model, op: &Op) {
    for id in &m.record_order {
        let current = store.read(|r| r.record_with_deleted(*id)).expect("record");
        let revisions = store.record_revisions(*id);
        match m.records.get(id) {
            None => {
                assert!(current.is_none(), "{op:?}: removed record {id} still there");
                assert!(
                    matches!(revisions, Err(Error::RecordNotFound { .. })),
                    "{op:?}: {revisions:?}"
                );
            }
            Some(mr) => {
                let cur = current.unwrap_or_else(|| panic!("{op:?}: record {id} missing"));
                assert_eq!(
                    cur.revision_id() as usize,
                    mr.revisions.len() - 1,
                    "{op:?}: revision of {id}"
                );
                let last = *mr.revisions.last().expect("revisions");
                assert_eq!(
                    cur.is_deleted(),
                    last.is_none(),
                    "{op:?}: deleted flag of {id}"
                );
                if last.is_some() {
                    assert_eq!(title_of(&cur), last, "{op:?}: title of {id}");
                }
                assert_eq!(
                    store.record_bucket(*id).expect("record bucket"),
                    mr.bucket,
                    "{op:?}: bucket of {id}"
                );
                let revs = revisions.expect("revisions");
                let seen: Vec<Option<u8>> = revs
                    .iter()
                    .map(|r| {
                        r.body.as_ref().map(|b| {
                            let t = b.get("title").and_then(|t| t.as_str()).unwrap_or("?");
                            TITLES.iter().position(|x| *x == t).map_or(255, |i| i as u8)
                        })
                    })
                    .collect();
                assert_eq!(seen, mr.revisions, "{op:?}: revisions of {id}");
            }
        }
    }
}

fn pick_record(m: &Model, r: u8) -> RecordId {
    match m.record_order.len() {
        0 => RecordId::new(),
        n => m.record_order[usize::from(r) % n],
    }
}

/// A record's bucket follows its record: soft-deleted with it, back when it comes back.
fn set_record_bucket_deleted(m: &mut Model, id: RecordId, deleted: bool) {
    if let Some(b) = m.records.get(&id).and_then(|r| r.bucket)
        && let Some(bucket) = m.buckets.get_mut(&b)
    {
        bucket.deleted = deleted;
    }
}

fn record_step(store: &Store, m: &mut Model, op: &Op) {
    match *op {
        Op::CreateRecord { title, with_bucket } => {
            let t = usize::from(title) % TITLES.len();
            let opts = if with_bucket {
                RecordOptions::default()
            } else {
                RecordOptions::without_bucket()
            };
            let r = store
                .create_record_with(serde_json::json!({"title": TITLES[t]}), &opts)
                .expect("create record");
            let bucket = store.record_bucket(r.id()).expect("bucket");
            assert_eq!(bucket.is_some(), with_bucket, "{op:?}");
            if let Some(b) = bucket {
                m.buckets.insert(b, MBucket::default());
                m.bucket_order.push(b);
            }
            m.records.insert(
                r.id(),
                MRecord {
                    revisions: vec![Some(t as u8)],
                    bucket,
                },
            );
            m.record_order.push(r.id());
        }
        Op::CommitRecord { r, title } => {
            let id = pick_record(m, r);
            let t = (usize::from(title) % TITLES.len()) as u8;
            let want = match m.records.get(&id) {
                None => Err("RecordNotFound"),
                Some(mr) if mr.revisions.last().expect("revision").is_none() => {
                    Err("RecordDeleted")
                }
                Some(_) => Ok(()),
            };
            let got = match store.read(|rd| rd.record_with_deleted(id)).expect("read") {
                Some(mut rec) => {
                    rec.body_mut()
                        .insert("title".into(), serde_json::json!(TITLES[usize::from(t)]));
                    store.commit_record(&mut rec)
                }
                None => Err(Error::RecordNotFound { record: id }),
            };
            agree(op, want, &got);
            if got.is_ok() {
                m.records
                    .get_mut(&id)
                    .expect("record")
                    .revisions
                    .push(Some(t));
            }
        }
        Op::DeleteRecord { r } => {
            let id = pick_record(m, r);
            let want = match m.records.get(&id) {
                None => Err("RecordNotFound"),
                Some(mr) if mr.revisions.last().expect("revision").is_none() => {
                    Err("RecordDeleted")
                }
                Some(_) => Ok(()),
            };
            let got = match store.read(|rd| rd.record_with_deleted(id)).expect("read") {
                Some(mut rec) => store.delete_record(&mut rec),
                None => Err(Error::RecordNotFound { record: id }),
            };
            agree(op, want, &got);
            if got.is_ok() {
                m.records.get_mut(&id).expect("record").revisions.push(None);
                set_record_bucket_deleted(m, id, true);
            }
        }
        Op::RevertRecord { r, revision } => {
            let id = pick_record(m, r);
            let (want, target) = match m.records.get(&id) {
                None => (Err("RecordNotFound"), None),
                Some(mr) => {
                    let rev = usize::from(revision) % (mr.revisions.len() + 1);
                    match mr.revisions.get(rev) {
                        None => (Err("RevisionNotFound"), Some((rev, None))),
                        Some(t) => (Ok(()), Some((rev, Some(*t)))),
                    }
                }
            };
            let rev = target.map_or(0, |(rev, _)| rev as u64);
            let got = store.revert_record(id, rev);
            agree(op, want, &got);
            if got.is_ok() {
                let title = target.and_then(|(_, t)| t).expect("reverted revision");
                m.records
                    .get_mut(&id)
                    .expect("record")
                    .revisions
                    .push(title);
                set_record_bucket_deleted(m, id, title.is_none());
            }
        }
        Op::RemoveRecord { r } => {
            let id = pick_record(m, r);
            let want = if m.records.contains_key(&id) {
                Ok(())
            } else {
                Err("RecordNotFound")
            };
            let got = store.remove_record(id);
            agree(op, want, &got);
            if got.is_ok() {
                let mr = m.records.remove(&id).expect("record");
                if let Some(b) = mr.bucket {
                    m.buckets.remove(&b);
                    m.uploads.retain(|_, u| u.bucket != b);
                }
            }
        }
        _ => unreachable!("not a record operation"),
    }
}

fn key_of(k: u8) -> &'static str {
    key(k)
}

#[allow(clippy::too_many_arguments)]
fn put(
    store: &Store,
    m: &mut Model,
    op: &Op,
    b: u8,
    k: u8,
    seed: u8,
    len: u16,
    declare: bool,
    in_tx: bool,
) {
    let b = m.bucket(b);
    let data = content(seed, usize::from(len) % MAX_LEN);
    let want = m.writable(b).and_then(|_| m.fits(b, data.len() as u64));
    let opts = PutOptions {
        size: declare.then_some(data.len() as u64),
        ..PutOptions::default()
    };
    let got = if in_tx {
        store.write(|tx| tx.put_object(b, key(k), &data[..], &opts))
    } else {
        store.put_object(b, key(k), &data[..], &opts)
    };
    agree(op, want, &got);
    if let Ok(v) = got {
        m.push(
            b,
            key(k),
            MVersion {
                id: Some(v.version_id),
                content: Some(data),
                tags: BTreeMap::new(),
            },
        );
    }
}

fuzz_target!(|ops: Vec<Op>| run(ops));
