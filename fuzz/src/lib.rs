//! Shared by the fuzz targets: the store an input runs on (one per process, emptied between
//! inputs), what a store shows through its public API in a form a plain model can produce too,
//! and a small deterministic content generator.

use recfiles::prelude::*;
use recfiles::{FilesQuery, ReadTx, UploadId, WriteTx};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Whether each input gets a store of its own (`RECFILES_FUZZ_FRESH` set): slower, but an
/// input then runs exactly as it would in a new process. Use it to replay a crash that does not
/// reproduce alone (see the README's "Fuzzing" section).
pub fn fresh_store_per_input() -> bool {
    static FRESH: OnceLock<bool> = OnceLock::new();
    *FRESH.get_or_init(|| std::env::var_os("RECFILES_FUZZ_FRESH").is_some())
}

/// Whether the targets run `check()` after every step or call as well as at the end of each
/// input (`RECFILES_FUZZ_CHECK_EVERY_STEP` set): the old, slower oracle, which names the step
/// that broke an invariant instead of the input.
pub fn check_every_step() -> bool {
    static EVERY: OnceLock<bool> = OnceLock::new();
    *EVERY.get_or_init(|| std::env::var_os("RECFILES_FUZZ_CHECK_EVERY_STEP").is_some())
}

/// How often the end of an input runs the full [`Store::check`] (the engine's integrity check,
/// then the format's invariants) rather than [`Store::check_invariants`] alone: on the first
/// input of a process (so a replayed input always gets it) and then on every `N`th, `N` from
/// `RECFILES_FUZZ_FULL_CHECK_EVERY` (default 64; 1 runs it on every input, as before).
///
/// The engine's check drops the engine's page cache and rereads, verifies and rebuilds the
/// allocator state of the whole file: on every input it took 12 % of the metadata target's CPU,
/// and its code (redb's repair walk) added to the coverage features libFuzzer processes after
/// each input. What it finds is damage below the format's rows (a page the engine cannot read
/// back, leaked pages), which stays in the store until the next full check finds it; when
/// that check fails on an input that passes alone, replay the run's last `N` inputs with
/// `RECFILES_FUZZ_FULL_CHECK_EVERY=1` (see the README).
pub fn full_check_every() -> u64 {
    static EVERY: OnceLock<u64> = OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("RECFILES_FUZZ_FULL_CHECK_EVERY")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(64)
    })
}

/// How often the `Crash` steps of an `ops` input really crash: on the first input of a process
/// (so a replayed input always does) and then on every `N`th, `N` from
/// `RECFILES_FUZZ_CRASH_EVERY` (default 8; 1 on every input, the old behaviour and the
/// `ops-crash` mode of `fuzz/campaign.sh`). On the other inputs a `Crash` step is skipped: it
/// changes nothing, so the model has nothing new to compare.
///
/// A crash drops the store, rebuilds the disk from its durable image, reopens it (replaying the
/// journal), runs the full [`Store::check`] and reads every version's content back: it took a
/// fifth of `ops`' CPU while most inputs hold a `Crash`, and the recovery code it reaches is
/// the same from one input to the next. The other oracles (the model after every step, the
/// checks at the end of the input) run on every input.
pub fn crash_every() -> u64 {
    static EVERY: OnceLock<u64> = OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("RECFILES_FUZZ_CRASH_EVERY")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(8)
    })
}

/// The check at the end of an input: [`Store::check_invariants`] on every input (every
/// invariant of the format: reference counts of files and chunks, bucket sizes, one head per key, links
/// between tables, record revisions), and the full [`Store::check`] as [`full_check_every`] says.
pub fn check_end_of_input(store: &Store) {
    static INPUTS: AtomicU64 = AtomicU64::new(0);
    let n = INPUTS.fetch_add(1, Ordering::Relaxed);
    if n % full_check_every() == 0 || check_every_step() || fresh_store_per_input() {
        assert_check(store);
    } else {
        let report = store.check_invariants().expect("check_invariants runs");
        assert!(report.is_ok(), "format check failed: {report:?}");
    }
}

/// The store of one fuzzing process, kept between inputs.
pub struct Reused<S>(Mutex<Option<S>>);

impl<S: Clone> Reused<S> {
    /// No store yet.
    pub const fn new() -> Self {
        Reused(Mutex::new(None))
    }

    /// The kept store, or a new one from `make` (on the first input, and on every input with
    /// [`fresh_store_per_input`]). The caller empties it with [`clear_and`], so each input starts
    /// from a new store's state at the cost of one transaction instead of creating a store and
    /// closing it.
    pub fn take(&self, make: impl FnOnce() -> S) -> S {
        let kept = self.0.lock().expect("store slot").take();
        match kept {
            Some(s) if !fresh_store_per_input() => s,
            _ => make(),
        }
    }

    /// Keeps `s` for the next input.
    pub fn keep(&self, s: S) {
        if !fresh_store_per_input() {
            *self.0.lock().expect("store slot") = Some(s);
        }
    }
}

impl<S: Clone> Default for Reused<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// Empties `store` ([`WriteTx::clear`]) and runs `setup` in the same transaction.
pub fn clear_and<T>(
    store: &Store,
    setup: impl FnOnce(&mut WriteTx<'_>) -> recfiles::Result<T>,
) -> T {
    store
        .write(|tx| {
            tx.clear()?;
            setup(tx)
        })
        .expect("clear the store for the next input")
}

/// One version as seen from outside, newest first within its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenVersion {
    pub id: VersionId,
    /// `None` for a delete marker.
    pub size: Option<u64>,
    /// The content byte for byte, when it was read (see [`observe_some`]); `None` for a delete
    /// marker or content left unread.
    pub content: Option<Vec<u8>>,
    pub tags: BTreeMap<String, String>,
}

/// An open multipart upload as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenUpload {
    pub key: String,
    pub size: u64,
    pub part_size: u64,
    pub parts: Vec<u32>,
}

/// Everything observable about one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenBucket {
    pub size: u64,
    pub locked: bool,
    pub deleted: bool,
    pub quota: Option<u64>,
    pub max_file: Option<u64>,
    pub tags: BTreeMap<String, String>,
    pub objects: BTreeMap<String, Vec<SeenVersion>>,
    pub uploads: BTreeMap<UploadId, SeenUpload>,
}

/// Reads everything observable about `buckets` on one snapshot, content byte for byte. Also
/// asserts what must hold of any answer: one head per key, and it is the newest version.
pub fn observe(store: &Store, buckets: &[BucketId]) -> BTreeMap<BucketId, Option<SeenBucket>> {
    observe_snapshot(&store.snapshot().expect("snapshot"), buckets)
}

/// [`observe`] on a snapshot taken earlier.
pub fn observe_snapshot(
    snap: &ReadTx,
    buckets: &[BucketId],
) -> BTreeMap<BucketId, Option<SeenBucket>> {
    observe_some(snap, buckets, |_| true)
}

/// [`observe_snapshot`], reading the content only of the versions `read` picks (the others
/// show their size alone).
pub fn observe_some(
    snap: &ReadTx,
    buckets: &[BucketId],
    read: impl Fn(VersionId) -> bool,
) -> BTreeMap<BucketId, Option<SeenBucket>> {
    let mut out = BTreeMap::new();
    for id in buckets {
        let Some(b) = snap.bucket_with_deleted(*id).expect("bucket") else {
            out.insert(*id, None);
            continue;
        };
        let all = ListOptions {
            with_deleted: true,
            ..ListOptions::default()
        };
        let mut objects = BTreeMap::new();
        for head in snap.list_objects(*id, &all).expect("list") {
            assert!(
                head.is_head,
                "listed version of {:?} is not the head",
                head.key
            );
            let mut versions = Vec::new();
            for (i, v) in snap
                .object_versions(*id, &head.key)
                .expect("versions")
                .into_iter()
                .enumerate()
            {
                assert_eq!(v.is_head, i == 0, "head flag of {:?} version {i}", v.key);
                let content = v.file_id.filter(|_| read(v.version_id)).map(|f| {
                    let mut bytes = Vec::new();
                    snap.open_file(f)
                        .expect("open")
                        .read_to_end(&mut bytes)
                        .expect("read");
                    assert_eq!(Some(bytes.len() as u64), v.size, "size of {:?}", v.key);
                    bytes
                });
                assert_eq!(v.size.is_some(), v.file_id.is_some(), "size of {:?}", v.key);
                versions.push(SeenVersion {
                    id: v.version_id,
                    size: v.size,
                    content,
                    tags: snap.object_tags(v.version_id).expect("tags"),
                });
            }
            objects.insert(head.key, versions);
        }
        let mut uploads = BTreeMap::new();
        for u in snap.multipart_uploads(*id).expect("uploads") {
            let parts = snap
                .parts(u.id)
                .expect("parts")
                .iter()
                .map(|p| p.part_number)
                .collect();
            uploads.insert(
                u.id,
                SeenUpload {
                    key: u.key,
                    size: u.size,
                    part_size: u.part_size,
                    parts,
                },
            );
        }
        out.insert(
            *id,
            Some(SeenBucket {
                size: b.size,
                locked: b.locked,
                deleted: b.deleted,
                quota: b.quota_size,
                max_file: b.max_file_size,
                tags: snap.bucket_tags(*id).expect("bucket tags"),
                objects,
                uploads,
            }),
        );
    }
    out
}

/// Panics with the report unless every invariant of the store holds.
pub fn assert_check(store: &Store) {
    let report = store.check().expect("check runs");
    assert!(report.is_ok(), "integrity check failed: {report:?}");
}

/// `len` bytes from `seed`: seeds below 16 give runs of one byte (so chunks and whole files
/// deduplicate often), others a xorshift stream.
pub fn content(seed: u8, len: usize) -> Vec<u8> {
    if seed < 16 {
        return vec![seed; len];
    }
    let mut x = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A short name for an error variant, to compare outcomes with a model.
pub fn kind(e: &recfiles::Error) -> &'static str {
    use recfiles::Error::*;
    match e {
        Engine(_) => "Engine",
        Io(_) => "Io",
        Corruption { .. } => "Corruption",
        UploadStream { .. } => "UploadStream",
        BucketNotFound { .. } => "BucketNotFound",
        BucketLocked { .. } => "BucketLocked",
        BucketDeleted { .. } => "BucketDeleted",
        InvalidOperation { .. } => "InvalidOperation",
        InvalidKey { .. } => "InvalidKey",
        FileSize { .. } => "FileSize",
        UnexpectedFileSize { .. } => "UnexpectedFileSize",
        ChecksumMismatch { .. } => "ChecksumMismatch",
        ObjectNotFound { .. } => "ObjectNotFound",
        VersionNotFound { .. } => "VersionNotFound",
        InvalidTag { .. } => "InvalidTag",
        MultipartNotFound { .. } => "MultipartNotFound",
        MultipartInvalidPartSize { .. } => "MultipartInvalidPartSize",
        MultipartInvalidSize { .. } => "MultipartInvalidSize",
        MultipartInvalidPartNumber { .. } => "MultipartInvalidPartNumber",
        MultipartPartSize { .. } => "MultipartPartSize",
        MultipartMissingParts { .. } => "MultipartMissingParts",
        InvalidLocationName { .. } => "InvalidLocationName",
        LocationExists { .. } => "LocationExists",
        LocationNotFound { .. } => "LocationNotFound",
        InvalidStorageClass { .. } => "InvalidStorageClass",
        RecordNotFound { .. } => "RecordNotFound",
        RecordExists { .. } => "RecordExists",
        RecordDeleted { .. } => "RecordDeleted",
        RevisionConflict { .. } => "RevisionConflict",
        RevisionNotFound { .. } => "RevisionNotFound",
        NotAnObject { .. } => "NotAnObject",
        SchemaNotFound { .. } => "SchemaNotFound",
        InvalidSchema { .. } => "InvalidSchema",
        SchemaValidation { .. } => "SchemaValidation",
        PidExists { .. } => "PidExists",
        PidNotFound { .. } => "PidNotFound",
        PidDeleted { .. } => "PidDeleted",
        PidRedirected { .. } => "PidRedirected",
        InvalidPid { .. } => "InvalidPid",
        ReservedKey { .. } => "ReservedKey",
        NoBucket { .. } => "NoBucket",
        RecordFile { .. } => "RecordFile",
        FilesExist { .. } => "FilesExist",
        _ => "Other",
    }
}
