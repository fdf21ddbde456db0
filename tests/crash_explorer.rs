//! The crash explorer: crash images rebuilt from the system calls a real process made.
//!
//! The other crash tests model the disk inside the process (`SimulatedDisk`, `FaultyBackend`)
//! or kill a process and reopen whatever the page cache held. This one models the disk from the
//! outside, as ALICE and CrashMonkey do, so it also sees what the engine actually asks of the
//! kernel: a child process (this test binary, re-run with `RECFILES_EXPLORER_CHILD` set) runs a
//! workload on a real store file under an `LD_PRELOAD` shim (`tests/explorer/shim.c`, built
//! here with the system's C compiler). The shim records every `pwrite`, `write`, `ftruncate`,
//! `fallocate`, `fsync`, `fdatasync` and `sync_file_range` on the store file into a trace, with
//! the bytes written; the child writes a marker into the same trace before each store call
//! (`B`) and after it returned (`D`, with a digest of everything observable then).
//!
//! From the trace the parent rebuilds, at sampled crash points, the file as a crash there could
//! have left it:
//!
//! * **written**: every operation before the point (a killed process: the page cache survives);
//! * **synced**: only what the last successful `fsync`/`fdatasync` made durable (a power cut
//!   that lost everything unsynced; `sync_file_range` makes nothing durable);
//! * **partial**: the synced file plus part of the unsynced operations: the size as some prefix
//!   of the unsynced size changes left it, and each 512-byte sector either as synced or as some
//!   later write left it (never older than a persisted truncation that cut it); either whole
//!   writes chosen at random (a quarter of them torn) or every sector chosen on its own.
//!
//! Written images at every crash point are the ordered prefixes of the trace. Each image is
//! reopened with `Store::open` and must not panic, must pass `check()` and `verify_all()`, and
//! must show exactly the state after the last acknowledged call or, if a call was in flight at
//! the crash point, after that call (its digest from its own `D` marker, later in the trace).
//!
//! Workloads: store creation, small commits and checkpoints, direct mode (a 64 KiB journal),
//! large staged puts, multipart uploads, records, several threads committing at once (each
//! thread checked on its own bucket), and a second crash during recovery (a crash image is
//! reopened under the shim, and that reopen's own trace is crashed again: every image must show
//! the state the first image recovers to).
//!
//! Knobs: `RECFILES_EXPLORER_SCALE` multiplies the traced runs of every workload, each with a
//! seed of its own (default 1: about two to three minutes in release on two busy cores); `RECFILES_EXPLORER_SEED` replays a run. A failing image is
//! saved with its trace under `$CARGO_TARGET_TMPDIR/explorer-failures/`.

mod common;

use common::content;
use recfiles::prelude::*;
use recfiles::{FilesQuery, MultipartLimits, ObjectVersion, RecordOptions};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const CHILD_ENV: &str = "RECFILES_EXPLORER_CHILD";
const SEED_ENV: &str = "RECFILES_EXPLORER_CHILD_SEED";
const SOURCE_ENV: &str = "RECFILES_EXPLORER_CHILD_SOURCE";
const FILE_ENV: &str = "RECFILES_EXPLORER_FILE";
const TRACE_ENV: &str = "RECFILES_EXPLORER_TRACE";
const SECTOR: usize = 512;

// ---------------------------------------------------------------------------------------------
// Workloads (the child's side)

/// The store configuration of a workload; the parent reopens its images with the same one.
fn builder(workload: &str) -> StoreBuilder {
    let b = Store::builder()
        .chunk_size(4096)
        .staging_batch(16 * 1024)
        .multipart_limits(MultipartLimits {
            min_part_size: 1024,
            max_part_size: 64 * 1024,
            max_parts: 1000,
            ..MultipartLimits::default()
        });
    match workload {
        // A small journal: commits over 15 KiB go in place, and the journal fills often.
        "direct" | "staged" => b.journal_size(64 * 1024),
        _ => b,
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes a marker into the trace through the shim's exported function.
fn mark(text: &str) {
    type MarkFn = unsafe extern "C" fn(*const u8, usize);
    static MARK: OnceLock<MarkFn> = OnceLock::new();
    let f = MARK.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; the symbol, when present, is the shim's
        // `void recfiles_explorer_mark(const char *, size_t)`, which matches `MarkFn`.
        unsafe {
            let sym = libc::dlsym(libc::RTLD_DEFAULT, c"recfiles_explorer_mark".as_ptr());
            assert!(!sym.is_null(), "the explorer's shim is not loaded");
            std::mem::transmute::<*mut libc::c_void, MarkFn>(sym)
        }
    });
    // SAFETY: the pointer and length describe `text`, alive for the call; the shim copies it.
    unsafe { f(text.as_ptr(), text.len()) }
}

/// A child's store calls, each bracketed by markers. `scope` is what the `D` marker's digest
/// describes: `*` for the whole store, `b<i>` for the i-th bucket (concurrent workloads).
struct Calls {
    n: u64,
}

impl Calls {
    fn call<T>(&mut self, store: &Store, scope: &str, what: &str, f: impl FnOnce() -> T) -> T {
        let n = self.begin(scope, what);
        let out = f();
        self.done(scope, n, &scope_digest(store, scope));
        out
    }
    fn begin(&mut self, scope: &str, what: &str) -> u64 {
        self.n += 1;
        mark(&format!("B {scope} {} {what}", self.n));
        self.n
    }
    fn done(&self, scope: &str, n: u64, digest: &str) {
        mark(&format!("D {scope} {n} {digest}"));
    }
}

fn scope_digest(store: &Store, scope: &str) -> String {
    let seen = observe(store).expect("the live store reads");
    if scope == "*" {
        whole(&seen)
    } else {
        seen.get(scope).cloned().unwrap_or_else(|| "absent".into())
    }
}

/// The child's side: runs one workload under the shim.
#[test]
fn explorer_child() {
    let Ok(workload) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful when started by the explorer below.
    };
    let path = PathBuf::from(std::env::var(FILE_ENV).unwrap());
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let mut rng = Rng(seed | 1);
    let mut calls = Calls { n: 0 };
    let source = std::env::var(SOURCE_ENV).unwrap_or_else(|_| workload.clone());
    if workload == "threads" {
        return threads_child(&path, &mut rng);
    }
    let n = calls.begin("*", "OPEN");
    let store = builder(&source).open(&path).unwrap();
    calls.done("*", n, &scope_digest(&store, "*"));
    match workload.as_str() {
        "create" => {
            let b = calls.call(&store, "*", "BUCKET", || {
                store.create_bucket(&BucketOptions::default()).unwrap().id
            });
            put(&store, &mut calls, b, "a", 1, 3000);
        }
        "small" | "direct" | "staged" => objects_child(&workload, &store, &mut calls, &mut rng),
        "multipart" => multipart_child(&store, &mut calls, &mut rng),
        "records" => records_child(&store, &mut calls, &mut rng),
        "reopen" => {
            // The second life of a crash image: the open above replayed its journal; one more
            // commit and a clean close follow.
            if let Some(b) = store.buckets().unwrap().first().map(|b| b.id) {
                put(&store, &mut calls, b, "after", rng.next(), 2000);
            }
        }
        other => panic!("unknown workload {other}"),
    }
    let n = calls.begin("*", "CLOSE");
    let digest = scope_digest(&store, "*");
    drop(store);
    calls.done("*", n, &digest);
}

fn put(store: &Store, calls: &mut Calls, b: BucketId, key: &str, seed: u64, size: usize) {
    let data = content(seed, size);
    let v = calls.call(store, "*", &format!("PUT {key} {size}"), || {
        store
            .put_object(b, key, &data[..], &PutOptions::default())
            .unwrap()
    });
    assert_eq!(read_version(store, &v), Some(data), "a put reads back");
}

fn read_version(store: &Store, v: &ObjectVersion) -> Option<Vec<u8>> {
    v.file_id.map(|f| {
        let mut out = Vec::new();
        store.open_file(f).unwrap().read_to_end(&mut out).unwrap();
        out
    })
}

const KEYS: [&str; 4] = ["a", "b/c", "d.bin", "e"];

/// Puts, identical content again, delete markers, version removals, tags and checkpoints.
fn objects_child(workload: &str, store: &Store, calls: &mut Calls, rng: &mut Rng) {
    let b = calls.call(store, "*", "BUCKET", || {
        store.create_bucket(&BucketOptions::default()).unwrap().id
    });
    let mut recent: Vec<(u64, usize)> = Vec::new();
    for step in 0..24 {
        let key = KEYS[rng.below(KEYS.len() as u64) as usize];
        let size = match workload {
            "small" => rng.below(6000),
            // Below and above the 15 KiB past which a commit goes in place.
            "direct" => [rng.below(3000), 10_000 + rng.below(50_000)][rng.below(2) as usize],
            // Several staging batches of 16 KiB each.
            _ => 20_000 + rng.below(120_000),
        } as usize;
        match rng.below(10) {
            _ if step % 7 == 6 => {
                calls.call(store, "*", "CHECKPOINT", || store.checkpoint().unwrap());
            }
            0..=4 => {
                let s = rng.next();
                put(store, calls, b, key, s, size);
                recent.push((s, size));
            }
            5 if !recent.is_empty() => {
                let (s, size) = recent[rng.below(recent.len() as u64) as usize];
                put(store, calls, b, key, s, size);
            }
            5 | 6 => {
                calls.call(store, "*", &format!("DEL {key}"), || {
                    store.delete_object(b, key).unwrap()
                });
            }
            7 => {
                if let Some(v) = store.object_versions(b, key).unwrap().first() {
                    let value = format!("v{}", rng.below(100));
                    calls.call(store, "*", "TAG", || {
                        store.set_object_tag(v.version_id, "t", &value).unwrap()
                    });
                }
            }
            _ => {
                let versions = store.object_versions(b, key).unwrap();
                if !versions.is_empty() {
                    let v = versions[rng.below(versions.len() as u64) as usize].version_id;
                    calls.call(store, "*", "RM", || store.remove_version(v).unwrap());
                }
            }
        }
    }
}

/// Multipart uploads: parts of random sizes in random order (one sent twice), completed,
/// aborted, and one left open at the end.
fn multipart_child(store: &Store, calls: &mut Calls, rng: &mut Rng) {
    let b = calls.call(store, "*", "BUCKET", || {
        store.create_bucket(&BucketOptions::default()).unwrap().id
    });
    for i in 0..5 {
        let key = KEYS[i % KEYS.len()];
        let size = 3000 + rng.below(60_000) as usize;
        let data = content(rng.next(), size);
        let part_size = 1024 + rng.below(16 * 1024);
        let upload = calls.call(store, "*", "INIT", || {
            store
                .init_multipart(b, key, size as u64, part_size)
                .unwrap()
        });
        let mut order: Vec<u32> = (0..=upload.last_part_number()).collect();
        for j in (1..order.len()).rev() {
            order.swap(j, rng.below(j as u64 + 1) as usize);
        }
        order.push(order[rng.below(order.len() as u64) as usize]);
        for n in order {
            let from = (u64::from(n) * part_size) as usize;
            let len = upload.expected_part_size(n) as usize;
            calls.call(store, "*", &format!("PART {n}"), || {
                store
                    .upload_part(upload.id, n, &data[from..from + len])
                    .unwrap()
            });
        }
        match i {
            4 => {} // left open
            2 => calls.call(store, "*", "ABORT", || {
                store.abort_multipart(upload.id).unwrap()
            }),
            _ => {
                let v = calls.call(store, "*", "COMPLETE", || {
                    store.complete_multipart(upload.id).unwrap()
                });
                assert_eq!(read_version(store, &v), Some(data));
            }
        }
    }
}

/// Record ids the records workload uses (and the observation looks up).
fn record_id(i: usize) -> RecordId {
    format!("01900000-0000-7000-8000-{i:012x}").parse().unwrap()
}
const RECORDS: usize = 6;

/// Records: created with and without a bucket, committed, soft deleted, reverted, hard
/// removed; files put into a record's bucket.
fn records_child(store: &Store, calls: &mut Calls, rng: &mut Rng) {
    for step in 0..24 {
        let i = rng.below(RECORDS as u64) as usize;
        let id = record_id(i);
        let Some(mut rec) = store.record_with_deleted(id).unwrap() else {
            let opts = if rng.below(2) == 0 {
                RecordOptions::default()
            } else {
                RecordOptions::without_bucket()
            }
            .with_id(id);
            let body = json!({"title": format!("record {i}"), "step": step});
            calls.call(store, "*", "CREATE", || {
                store.create_record_with(body, &opts).unwrap()
            });
            continue;
        };
        match rng.below(6) {
            _ if rec.is_deleted() => {
                calls.call(store, "*", "UNDELETE", || {
                    store.undelete_record(&mut rec).unwrap()
                });
            }
            0 | 1 => {
                rec.body_mut().insert("step".into(), json!(step));
                rec.body_mut()
                    .insert("text".into(), json!("x".repeat(rng.below(3000) as usize)));
                calls.call(store, "*", "COMMIT", || {
                    store.commit_record(&mut rec).unwrap()
                });
            }
            2 => {
                calls.call(store, "*", "DELETE", || {
                    store.delete_record(&mut rec).unwrap()
                });
            }
            3 if rec.revision_id() > 0 => {
                // Only a revision with a body can be reverted to.
                let revisions: Vec<u64> = store
                    .record_revisions(id)
                    .unwrap()
                    .iter()
                    .filter(|r| r.body.is_some() && r.revision_id != rec.revision_id())
                    .map(|r| r.revision_id)
                    .collect();
                if revisions.is_empty() {
                    continue;
                }
                let to = revisions[rng.below(revisions.len() as u64) as usize];
                calls.call(store, "*", "REVERT", || {
                    store.revert_record(id, to).unwrap()
                });
            }
            4 if rec.bucket_id().is_some() => {
                let b = rec.bucket_id().unwrap();
                put(
                    store,
                    calls,
                    b,
                    "file",
                    rng.next(),
                    rng.below(9000) as usize,
                );
            }
            5 => calls.call(store, "*", "REMOVE", || store.remove_record(id).unwrap()),
            _ => calls.call(store, "*", "CHECKPOINT", || store.checkpoint().unwrap()),
        }
    }
}

/// Threads committing at once, each in its own bucket (of a store the parent made), each call
/// checked on its own bucket.
fn threads_child(path: &Path, rng: &mut Rng) {
    let store = builder("threads").open(path).unwrap();
    let buckets: Vec<BucketId> = sorted_buckets(&store).unwrap();
    let seeds: Vec<u64> = buckets.iter().map(|_| rng.next()).collect();
    // Call numbers must be unique per scope only; each thread counts its own.
    std::thread::scope(|s| {
        for (t, (&b, &seed)) in buckets.iter().zip(&seeds).enumerate() {
            let store = &store;
            s.spawn(move || {
                let mut rng = Rng(seed | 1);
                let mut calls = Calls { n: 0 };
                let scope = format!("b{t}");
                for _ in 0..16 {
                    let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                    // Mostly small commits (logged, their syncs deferred), some staged puts over
                    // 256 KiB (written in place).
                    let size = if rng.below(8) == 0 {
                        260_000 + rng.below(60_000)
                    } else {
                        rng.below(4000)
                    } as usize;
                    let data = content(rng.next(), size);
                    if rng.below(5) == 0 {
                        calls.call(store, &scope, "DEL", || {
                            store.delete_object(b, key).unwrap()
                        });
                    } else {
                        calls.call(store, &scope, "PUT", || {
                            store
                                .put_object(b, key, &data[..], &PutOptions::default())
                                .unwrap()
                        });
                    }
                }
            });
        }
    });
    drop(store);
}

// ---------------------------------------------------------------------------------------------
// What a store shows

fn sorted_buckets(store: &Store) -> recfiles::Result<Vec<BucketId>> {
    let mut ids: Vec<BucketId> = store.buckets()?.iter().map(|b| b.id).collect();
    ids.sort();
    Ok(ids)
}

/// A short hex digest of a description.
fn digest(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

/// Everything observable, as a digest per scope: `b<i>` for the i-th bucket in id order
/// (ids are time-ordered, so creation order) and `records`. Content is read byte for byte.
fn observe(store: &Store) -> recfiles::Result<BTreeMap<String, String>> {
    let snap = store.snapshot()?;
    let mut out = BTreeMap::new();
    let all = ListOptions {
        with_deleted: true,
        ..ListOptions::default()
    };
    for (i, id) in sorted_buckets(store)?.into_iter().enumerate() {
        let mut d = String::new();
        match snap.bucket_with_deleted(id)? {
            None => d.push_str("gone"),
            Some(b) => write!(
                d,
                "{} {} {} {:?};",
                b.size, b.locked, b.deleted, b.quota_size
            )
            .unwrap(),
        }
        write!(d, "{:?};", snap.bucket_tags(id)?).unwrap();
        for head in snap.list_objects(id, &all)? {
            write!(d, "[{}:", head.key).unwrap();
            for v in snap.object_versions(id, &head.key)? {
                match v.file_id {
                    Some(f) => {
                        let mut bytes = Vec::new();
                        snap.open_file(f)?.read_to_end(&mut bytes)?;
                        write!(d, "{} ", digest_bytes(&bytes)).unwrap();
                    }
                    None => d.push_str("DEL "),
                }
                write!(d, "{:?} ", snap.object_tags(v.version_id)?).unwrap();
            }
            d.push(']');
        }
        let mut uploads = Vec::new();
        for u in snap.multipart_uploads(id)? {
            let parts: Vec<u32> = snap.parts(u.id)?.iter().map(|p| p.part_number).collect();
            uploads.push(format!("{} {} {:?}", u.key, u.size, parts));
        }
        uploads.sort();
        write!(d, "{uploads:?}").unwrap();
        out.insert(format!("b{i}"), digest(&d));
    }
    let mut d = String::new();
    for i in 0..RECORDS {
        let id = record_id(i);
        if let Some(r) = store.record_with_deleted(id)? {
            write!(
                d,
                "{i} {} {} {};",
                r.revision_id(),
                r.is_deleted(),
                serde_json::to_string(r.body()).unwrap()
            )
            .unwrap();
            for rev in store.record_revisions(id)? {
                let body = rev.body.map(|b| serde_json::to_string(&b).unwrap());
                write!(d, "{} {body:?};", rev.revision_id).unwrap();
            }
        }
    }
    out.insert("records".into(), digest(&d));
    Ok(out)
}

fn digest_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_string()
}

/// The digest of the whole store.
fn whole(seen: &BTreeMap<String, String>) -> String {
    digest(&format!("{seen:?}"))
}

// ---------------------------------------------------------------------------------------------
// Traces

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, data: Vec<u8> },
    Truncate(u64),
    Allocate { mode: u32, off: u64, len: u64 },
    Sync,
    Hint,
    Mark(Marker),
}

#[derive(Debug, Clone)]
enum Marker {
    Begin {
        scope: String,
        n: u64,
    },
    Done {
        scope: String,
        n: u64,
        digest: String,
    },
}

fn parse_trace(bytes: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut at = 0;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    while at < bytes.len() {
        let tag = bytes[at];
        at += 1;
        match tag {
            b'W' => {
                let (off, len) = (u64_at(at), u64_at(at + 8) as usize);
                at += 16;
                ops.push(Op::Write {
                    off,
                    data: bytes[at..at + len].to_vec(),
                });
                at += len;
            }
            b'T' => {
                ops.push(Op::Truncate(u64_at(at)));
                at += 8;
            }
            b'A' => {
                let mode = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                ops.push(Op::Allocate {
                    mode,
                    off: u64_at(at + 4),
                    len: u64_at(at + 12),
                });
                at += 20;
            }
            b'S' => ops.push(Op::Sync),
            b'R' => {
                ops.push(Op::Hint);
                at += 16;
            }
            b'M' | b'X' => {
                let len = u64_at(at) as usize;
                let text = String::from_utf8(bytes[at + 8..at + 8 + len].to_vec()).unwrap();
                at += 8 + len;
                assert!(
                    tag == b'M',
                    "the store file saw a call the explorer cannot model: {text}"
                );
                let w: Vec<&str> = text.split(' ').collect();
                let marker = match w[0] {
                    "B" => Marker::Begin {
                        scope: w[1].into(),
                        n: w[2].parse().unwrap(),
                    },
                    "D" => Marker::Done {
                        scope: w[1].into(),
                        n: w[2].parse().unwrap(),
                        digest: w[3].into(),
                    },
                    _ => panic!("bad marker {text}"),
                };
                ops.push(Op::Mark(marker));
            }
            other => panic!("bad trace record {other}"),
        }
    }
    ops
}

/// A fallocate mode that keeps the file's size (FALLOC_FL_KEEP_SIZE, also implied by
/// FALLOC_FL_PUNCH_HOLE).
const KEEP_SIZE: u32 = 1;
const PUNCH_HOLE: u32 = 2;

/// Applies one operation to a file image the way the page cache would.
fn apply(file: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { off, data } => {
            let end = *off as usize + data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[*off as usize..end].copy_from_slice(data);
        }
        Op::Truncate(len) => file.resize(*len as usize, 0),
        Op::Allocate { mode, off, len } => {
            let end = (off + len) as usize;
            if mode & PUNCH_HOLE != 0 {
                let to = end.min(file.len());
                file[(*off as usize).min(to)..to].fill(0);
            } else if mode & KEEP_SIZE == 0 && file.len() < end {
                file.resize(end, 0);
            }
        }
        Op::Sync | Op::Hint | Op::Mark(_) => {}
    }
}

/// The file's size after `op`, from `size` before it (None: the op changes no size).
fn size_after(size: u64, op: &Op) -> Option<u64> {
    match op {
        Op::Write { off, data } if off + data.len() as u64 > size => Some(off + data.len() as u64),
        Op::Truncate(len) => Some(*len),
        Op::Allocate { mode, off, len } if mode & (KEEP_SIZE | PUNCH_HOLE) == 0 => {
            Some(size.max(off + len))
        }
        _ => None,
    }
}

/// What an image must show: per scope, the digests allowed (the state after the last
/// acknowledged call, and after the call in flight if there is one).
type Expected = BTreeMap<String, BTreeSet<String>>;

fn expected_at(ops: &[Op], p: usize, initial: &BTreeMap<String, String>) -> Expected {
    let mut last: BTreeMap<String, String> = initial.clone();
    let mut open: BTreeMap<String, u64> = BTreeMap::new();
    for op in &ops[..p] {
        match op {
            Op::Mark(Marker::Begin { scope, n }) => {
                open.insert(scope.clone(), *n);
            }
            Op::Mark(Marker::Done { scope, digest, .. }) => {
                open.remove(scope);
                last.insert(scope.clone(), digest.clone());
            }
            _ => {}
        }
    }
    let mut out: Expected = last
        .into_iter()
        .map(|(s, d)| (s, BTreeSet::from([d])))
        .collect();
    for (scope, n) in open {
        let done = ops[p..].iter().find_map(|op| match op {
            Op::Mark(Marker::Done {
                scope: s,
                n: m,
                digest,
            }) if *s == scope && *m == n => Some(digest.clone()),
            _ => None,
        });
        let d = done.expect("every call of a child ends with its D marker");
        out.entry(scope).or_default().insert(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The explorer (the parent's side)

/// Builds the shim once per test process.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explorer/shim.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("explorer-shim-{}.so", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .args(["-ldl", "-lpthread"])
            .status()
            .unwrap_or_else(|e| panic!("the explorer needs a C compiler ({cc}): {e}"));
        assert!(status.success(), "building the shim failed");
        out
    })
}

/// Traced runs per workload, each with its own seed (`RECFILES_EXPLORER_SCALE`, default 1).
fn scale() -> usize {
    std::env::var("RECFILES_EXPLORER_SCALE").map_or(1, |v| v.parse().unwrap())
}

fn run_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = std::env::var("RECFILES_EXPLORER_SEED").map_or_else(
            |_| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            },
            |v| v.parse().unwrap(),
        );
        eprintln!("crash explorer seed {seed} (RECFILES_EXPLORER_SEED={seed} replays)");
        seed
    })
}

/// Runs `workload` in a child under the shim, on a store file starting as `initial` (`None`: no
/// file), and returns the trace's operations.
fn traced_run(
    dir: &Path,
    workload: &str,
    source: &str,
    initial: Option<&[u8]>,
    seed: u64,
) -> Vec<Op> {
    let file = dir.join(format!("{workload}.store"));
    let trace = dir.join(format!("{workload}.trace"));
    let _ = std::fs::remove_file(&file);
    if let Some(bytes) = initial {
        write_image(&file, bytes);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "explorer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, workload)
        .env(SOURCE_ENV, source)
        .env(SEED_ENV, seed.to_string())
        .env(FILE_ENV, &file)
        .env(TRACE_ENV, &trace)
        .env("LD_PRELOAD", shim())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the {workload} child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ops = parse_trace(&std::fs::read(&trace).unwrap());
    assert!(
        ops.iter().any(|op| matches!(op, Op::Sync)),
        "the {workload} trace holds no sync: is the shim intercepting the store's calls?"
    );
    ops
}

/// Writes an image to `path`, leaving its all-zero pages as holes (images are mostly the
/// journal's sparse region).
fn write_image(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).unwrap();
    for (i, page) in bytes.chunks(4096).enumerate() {
        if page.iter().any(|&b| b != 0) {
            f.write_all_at(page, i as u64 * 4096).unwrap();
        }
    }
    f.set_len(bytes.len() as u64).unwrap();
}

/// Reopens an image: no panic, `check()` and `verify_all()` clean; returns what it shows.
fn reopen(path: &Path, source: &str, image: &[u8]) -> Result<BTreeMap<String, String>, String> {
    write_image(path, image);
    let r = std::panic::catch_unwind(|| -> Result<_, String> {
        let store = builder(source)
            .open(path)
            .map_err(|e| format!("open: {e}"))?;
        let report = store.check().map_err(|e| format!("check: {e}"))?;
        if !report.is_ok() {
            return Err(format!("check: {report:?}"));
        }
        let fixity = store.verify_all().map_err(|e| format!("verify_all: {e}"))?;
        if !fixity.damaged.is_empty() {
            return Err(format!("verify_all: {fixity:?}"));
        }
        observe(&store).map_err(|e| format!("reading: {e}"))
    });
    match r {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// Whether what an image shows is allowed. Scopes no marker names are compared with the
/// initial state.
fn judge(seen: &BTreeMap<String, String>, expected: &Expected) -> Result<(), String> {
    if let Some(allowed) = expected.get("*") {
        let w = whole(seen);
        return if allowed.contains(&w) {
            Ok(())
        } else {
            Err(format!("the store shows {w}, allowed {allowed:?}"))
        };
    }
    let scopes: BTreeSet<&String> = seen.keys().chain(expected.keys()).collect();
    for s in scopes {
        let got = seen.get(s).cloned().unwrap_or_else(|| "absent".into());
        match expected.get(s) {
            Some(allowed) if allowed.contains(&got) => {}
            allowed => return Err(format!("{s} shows {got}, allowed {allowed:?}")),
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Tally {
    ops: usize,
    syncs: usize,
    crash_points: usize,
    written: usize,
    synced: usize,
    partial: usize,
    duplicates: usize,
    in_flight_allowed: usize,
}

impl Tally {
    fn images(&self) -> usize {
        self.written + self.synced + self.partial
    }
}

struct Explorer {
    dir: tempfile::TempDir,
    rng: Rng,
    tally: Tally,
    failures: Vec<String>,
    /// A sample of the images that passed and need a replay, for the second crash.
    passed: Vec<Vec<u8>>,
}

impl Explorer {
    fn new(salt: u64) -> Explorer {
        Explorer {
            dir: tempfile::tempdir().unwrap(),
            rng: Rng((run_seed() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1),
            tally: Tally::default(),
            failures: Vec::new(),
            passed: Vec::new(),
        }
    }

    /// Traces `workload` and checks crash images at sampled points of its trace.
    fn explore(&mut self, workload: &str, source: &str, initial: Option<&[u8]>, points: usize) {
        let seed = self.rng.next();
        let ops = traced_run(self.dir.path(), workload, source, initial, seed);
        let start: Vec<u8> = initial.map(<[u8]>::to_vec).unwrap_or_default();
        let mut init_seen = if start.is_empty() {
            observe(&builder(source).in_memory().unwrap()).unwrap()
        } else {
            let path = self.dir.path().join("initial.store");
            reopen(&path, source, &start).expect("the initial image opens")
        };
        // A workload judged as a whole starts from the whole initial state.
        if ops
            .iter()
            .any(|op| matches!(op, Op::Mark(Marker::Begin { scope, .. }) if scope == "*"))
        {
            init_seen.insert("*".into(), whole(&init_seen));
        }
        self.tally.ops += ops.len();
        self.tally.syncs += ops.iter().filter(|o| matches!(o, Op::Sync)).count();

        // Crash points: right after each acknowledgment (the strictest: nothing in flight) and
        // right before each sync (the most unsynced), then before any other operation that
        // changes the file, and the end; sampled, the first kind first, when there are more
        // than the budget.
        let after_ack = |p: usize| p > 0 && matches!(ops[p - 1], Op::Mark(Marker::Done { .. }));
        let (mut first, mut rest): (Vec<usize>, Vec<usize>) = (0..=ops.len())
            .filter(|&p| {
                p == ops.len() || after_ack(p) || !matches!(ops[p], Op::Mark(_) | Op::Hint)
            })
            .partition(|&p| p == ops.len() || after_ack(p) || matches!(ops[p], Op::Sync));
        let budget = points;
        let mut candidates = sample(&mut first, budget, &mut self.rng);
        candidates.extend(sample(&mut rest, budget - candidates.len(), &mut self.rng));
        candidates.sort_unstable();
        let mut seen_images: HashSet<(blake3::Hash, String)> = HashSet::new();
        let mut cur = start.clone();
        let mut durable = start.clone();
        let mut last_sync: Option<usize> = None; // index of the last sync op applied
        let mut next = 0;
        for &p in &candidates {
            while next < p {
                apply(&mut cur, &ops[next]);
                if matches!(ops[next], Op::Sync) {
                    durable.clone_from(&cur);
                    last_sync = Some(next);
                }
                next += 1;
            }
            self.tally.crash_points += 1;
            let expected = expected_at(&ops, p, &init_seen);
            let window = last_sync.map_or(0, |s| s + 1)..p;
            let mut images = vec![("written", cur.clone()), ("synced", durable.clone())];
            let unsynced = ops[window.clone()]
                .iter()
                .any(|o| matches!(o, Op::Write { .. } | Op::Truncate(_) | Op::Allocate { .. }));
            if unsynced {
                for _ in 0..2 {
                    let img = partial(&durable, &ops, window.clone(), &mut self.rng);
                    images.push(("partial", img));
                }
            }
            for (kind, img) in images {
                let key = (blake3::hash(&img), format!("{expected:?}"));
                if !seen_images.insert(key) {
                    self.tally.duplicates += 1;
                    continue;
                }
                match kind {
                    "written" => self.tally.written += 1,
                    "synced" => self.tally.synced += 1,
                    _ => self.tally.partial += 1,
                }
                let path = self.dir.path().join("image.store");
                let verdict = reopen(&path, source, &img)
                    .and_then(|seen| judge(&seen, &expected).map(|()| seen));
                match verdict {
                    Ok(_) => {
                        if expected.values().any(|a| a.len() > 1) {
                            self.tally.in_flight_allowed += 1;
                        }
                        // A few images that need a replay, for the second crash.
                        if has_batches(&img) {
                            if self.passed.len() < 8 {
                                self.passed.push(img);
                            } else {
                                let i = self.rng.below(8) as usize;
                                self.passed[i] = img;
                            }
                        }
                    }
                    Err(why) => self.fail(workload, p, kind, &img, &ops, &why),
                }
            }
        }
    }

    fn fail(&mut self, workload: &str, p: usize, kind: &str, img: &[u8], ops: &[Op], why: &str) {
        let n = self.failures.len();
        // The first few images and their trace are kept for a closer look (images are several
        // MiB each, mostly holes).
        let saved = if n < 3 {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let name = format!("{workload}-{}-{n}", std::process::id());
            write_image(&dir.join(format!("{name}.img")), img);
            let trace = self.dir.path().join(format!("{workload}.trace"));
            let _ = std::fs::copy(&trace, dir.join(format!("{name}.trace")));
            format!(" (saved as {})", dir.join(format!("{name}.img")).display())
        } else {
            String::new()
        };
        let context: Vec<String> = ops[p.saturating_sub(6)..(p + 2).min(ops.len())]
            .iter()
            .map(describe)
            .collect();
        let line = format!(
            "{workload}: {kind} image at crash point {p} of {}{saved}: {why}; operations around \
             it: {context:?}",
            ops.len()
        );
        if n < 20 {
            eprintln!("FAIL {line}");
        }
        self.failures.push(line);
    }

    fn finish(self, what: &str) {
        eprintln!(
            "crash explorer {what}: {} images, {} failed, {:?}",
            self.tally.images(),
            self.failures.len(),
            self.tally
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} crash images failed (seed {}):\n{}",
            self.failures.len(),
            self.tally.images(),
            run_seed(),
            self.failures[..self.failures.len().min(10)].join("\n")
        );
        assert!(self.tally.images() > 0);
    }
}

/// At most `n` of `from`, chosen at random.
fn sample(from: &mut Vec<usize>, n: usize, rng: &mut Rng) -> Vec<usize> {
    for i in (1..from.len()).rev() {
        from.swap(i, rng.below(i as u64 + 1) as usize);
    }
    from.truncate(n);
    std::mem::take(from)
}

fn describe(op: &Op) -> String {
    match op {
        Op::Write { off, data } => format!("write {off}+{}", data.len()),
        Op::Truncate(len) => format!("truncate {len}"),
        Op::Allocate { mode, off, len } => format!("fallocate {mode} {off}+{len}"),
        Op::Sync => "sync".into(),
        Op::Hint => "sync_file_range".into(),
        Op::Mark(m) => format!("{m:?}"),
    }
}

/// A partial writeback: `durable` plus part of the operations in `window` (all after the
/// last sync). The size is what some prefix of the window's size changes left (the file
/// system orders its metadata); each 512-byte sector below it is as synced or as one of the
/// window's writes left it, never older than a truncation in that prefix that cut it.
fn partial(durable: &[u8], ops: &[Op], window: std::ops::Range<usize>, rng: &mut Rng) -> Vec<u8> {
    // The metadata prefix: size changes up to and including op `meta` persisted.
    let size_ops: Vec<usize> = window
        .clone()
        .filter(|&i| {
            matches!(
                ops[i],
                Op::Write { .. } | Op::Truncate(_) | Op::Allocate { .. }
            )
        })
        .collect();
    let meta = match rng.below(size_ops.len() as u64 + 1) as usize {
        0 => None,
        k => Some(size_ops[k - 1]),
    };
    // Whole writes (some torn) or every sector on its own.
    let per_write = rng.below(2) == 0;
    let mut chosen_writes: HashMap<usize, bool> = HashMap::new(); // op → torn
    if per_write {
        for i in window.clone() {
            if matches!(ops[i], Op::Write { .. }) && rng.below(2) == 0 {
                chosen_writes.insert(i, rng.below(4) == 0);
            }
        }
    }
    // Replay the window on a scratch copy (the page cache), taking each sector's content from
    // the moment chosen for it.
    let mut page_cache = durable.to_vec();
    let mut size = durable.len() as u64;
    let mut out = durable.to_vec();
    for i in window {
        let op = &ops[i];
        apply(&mut page_cache, op);
        let in_meta = meta.is_some_and(|m| i <= m);
        if in_meta && let Some(s) = size_after(size, op) {
            if s < size {
                // A persisted truncation: bytes past it lose whatever they held, synced or
                // chosen before it.
                let cut_from = s as usize;
                if out.len() > cut_from {
                    out[cut_from..].fill(0);
                }
            }
            size = s;
        }
        if let Op::Write { off, data } = op {
            let first = *off as usize / SECTOR;
            let last = (*off as usize + data.len()).div_ceil(SECTOR);
            let torn = chosen_writes.get(&i).copied();
            for sec in first..last {
                let take = if per_write {
                    match torn {
                        None => false,
                        Some(false) => true,
                        Some(true) => rng.below(2) == 0,
                    }
                } else {
                    rng.below(2) == 0
                };
                if take {
                    let (a, b) = (sec * SECTOR, ((sec + 1) * SECTOR).min(page_cache.len()));
                    if out.len() < b {
                        out.resize(b, 0);
                    }
                    out[a..b].copy_from_slice(&page_cache[a..b]);
                }
            }
        }
    }
    out.resize(size as usize, 0);
    out
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Crash points sampled per trace: 150 in release (`.ci/reliability` runs it so); a tenth in a
/// debug build, where every reopen is several times slower, so `cargo test` stays quick.
const POINTS: usize = if cfg!(debug_assertions) { 15 } else { 150 };

#[test]
fn creation_crashes_leave_an_empty_store() {
    let mut ex = Explorer::new(1);
    // Creation is short; every point of it, three runs over for the partial images.
    for _ in 0..3 * scale() {
        ex.explore("create", "create", None, 10 * POINTS);
    }
    ex.finish("(creation)");
}

#[test]
fn small_commits_and_checkpoints_survive_every_crash() {
    let mut ex = Explorer::new(2);
    for _ in 0..scale() {
        ex.explore("small", "small", None, POINTS);
        ex.explore("records", "records", None, POINTS);
    }
    ex.finish("(small commits, records)");
}

#[test]
fn direct_mode_and_staged_puts_survive_every_crash() {
    let mut ex = Explorer::new(3);
    for _ in 0..scale() {
        ex.explore("direct", "direct", None, POINTS);
        ex.explore("staged", "staged", None, POINTS);
        ex.explore("multipart", "multipart", None, POINTS);
    }
    ex.finish("(direct mode, staged puts, multipart)");
}

#[test]
fn concurrent_writers_survive_every_crash() {
    let mut ex = Explorer::new(4);
    // The buckets exist before the traced run: each thread is judged on its own bucket.
    let path = ex.dir.path().join("threads-initial.store");
    {
        let store = builder("threads").open(&path).unwrap();
        for _ in 0..3 {
            store.create_bucket(&BucketOptions::default()).unwrap();
        }
    }
    let initial = std::fs::read(&path).unwrap();
    for _ in 0..scale() {
        ex.explore("threads", "threads", Some(&initial), 2 * POINTS);
    }
    ex.finish("(concurrent writers)");
}

#[test]
fn a_second_crash_during_recovery_changes_nothing() {
    let mut ex = Explorer::new(5);
    for _ in 0..scale() {
        for source in ["small", "direct"] {
            ex.passed.clear();
            // Enough points that some image needs a replay, in debug builds too.
            ex.explore(source, source, None, (POINTS / 3).max(50));
            // Crash images that needed recovery (their journal holds batches); each is reopened
            // under the shim and that reopen crashed in turn.
            let mut firsts = std::mem::take(&mut ex.passed);
            assert!(!firsts.is_empty(), "no {source} image needed a replay");
            for _ in 0..3.min(firsts.len()) {
                let i = ex.rng.below(firsts.len() as u64) as usize;
                let img = firsts.swap_remove(i);
                ex.explore("reopen", source, Some(&img), POINTS / 2);
            }
        }
    }
    ex.finish("(second crash during recovery)");
}

/// Whether an image's journal holds a batch of its current generation at the first place
/// (so a reopen replays something).
fn has_batches(img: &[u8]) -> bool {
    img.len() > 4096 + 16
        && matches!(&img[4096..4104], b"recfbcrc" | b"recfbtch")
        && img[24..32] == img[4104..4112]
}
