//! Maintenance: the integrity check of every invariant in docs/FORMAT.md, and compaction.

use crate::content::staging::{StagingOwner, StagingRow};
use crate::content::{FileRow, Hash, hex, split_file_value};
use crate::error::Result;
use crate::files::{BucketRow, FileContent, MultipartRow, ObjectRow, PartRow, VersionLoc};
use crate::ids::{BucketId, FileId, RecordId, UploadId, VersionId};
use crate::storage::View;
use crate::storage::{Store, dec};
use redb::ReadableTable;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What [`Store::check`] found. Empty `problems` means every invariant holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// One entry per violated invariant, naming the rows involved.
    pub problems: Vec<Problem>,
    /// Whether redb's own structural check passed (`None` when it could not run because other
    /// handles were using the database).
    pub engine_ok: Option<bool>,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.engine_ok != Some(false)
    }

    /// The problems that break `invariant`.
    pub fn breaking(&self, invariant: Invariant) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(move |p| p.invariant == invariant)
    }
}

/// One violated invariant: which one, the rows it involves, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The invariant broken (the numbered lists of docs/FORMAT.md).
    pub invariant: Invariant,
    /// The ids involved, most specific first (a version before its bucket).
    pub subjects: Vec<Subject>,
    /// What is wrong, in words, naming the same ids.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        invariant: Invariant,
        subjects: impl IntoIterator<Item = Subject>,
        message: String,
    ) -> Self {
        Problem {
            invariant,
            subjects: subjects.into_iter().collect(),
            message,
        }
    }

    /// Whether the problem names `subject`.
    pub fn concerns(&self, subject: &Subject) -> bool {
        self.subjects.contains(subject)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The invariants [`Store::check`] verifies, as docs/FORMAT.md numbers them ("Invariants" for
/// the files side, "Record invariants" for the records side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Invariant {
    /// `versions` and `objects` correspond one to one; version ids are unique.
    VersionIndex,
    /// A file's reference count equals the versions pointing at it, at least 1; a version
    /// keeps its file's size and checksum, a delete marker none.
    FileReferences,
    /// A chunk's count equals the file and staged chunk rows naming it; index and stored
    /// chunks agree.
    ChunkReferences,
    /// A file's chunks (or its inline content) cover exactly its size, without gaps.
    ChunkLayout,
    /// Every file is in the dedup index under its own hash, and only there.
    DedupIndex,
    /// Staged content belongs to an existing part that names it.
    Staging,
    /// A bucket's size is the sum of its versions' file sizes and its open uploads.
    BucketSize,
    /// Objects, uploads and tags belong to existing buckets, versions and uploads.
    Ownership,
    /// A record has exactly the revisions `0..=current`, the last one with a body exactly
    /// when the record is live, and no revision lacks its record.
    RecordRevisions,
    /// A record and its bucket name each other.
    RecordBucket,
    /// PIDs name existing records, and the reverse index matches them.
    Pids,
    /// Every stored body and schema parses back as JSON.
    Documents,
    /// A live record's `_files` lists exactly its bucket's live heads, as they are.
    FilesList,
    /// Content kept in another location (an object store): each such file names an existing
    /// location, and each object there counts exactly the files that use it.
    RemoteContent,
}

impl Invariant {
    /// The invariant's name in snake case (`file_references`), stable for scripts.
    pub fn name(&self) -> &'static str {
        match self {
            Invariant::VersionIndex => "version_index",
            Invariant::FileReferences => "file_references",
            Invariant::ChunkReferences => "chunk_references",
            Invariant::ChunkLayout => "chunk_layout",
            Invariant::DedupIndex => "dedup_index",
            Invariant::Staging => "staging",
            Invariant::BucketSize => "bucket_size",
            Invariant::Ownership => "ownership",
            Invariant::RecordRevisions => "record_revisions",
            Invariant::RecordBucket => "record_bucket",
            Invariant::Pids => "pids",
            Invariant::Documents => "documents",
            Invariant::FilesList => "files_list",
            Invariant::RemoteContent => "remote_content",
        }
    }
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An id a [`Problem`] involves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Subject {
    /// A bucket.
    Bucket(BucketId),
    /// An object version (or delete marker).
    Version(VersionId),
    /// An object key within a bucket or a record's files.
    Key(String),
    /// A file instance.
    File(FileId),
    /// A chunk, by the blake3 hash of its bytes.
    ChunkHash([u8; 32]),
    /// A whole file's content, by its blake3 hash (an object in another location).
    Content([u8; 32]),
    /// A location, by name.
    Location(String),
    /// A stored chunk, by its id in the `chunks` table.
    ChunkId(u128),
    /// A multipart upload.
    Upload(UploadId),
    /// A part of a multipart upload.
    Part {
        /// The upload.
        upload: UploadId,
        /// The part's number.
        number: u32,
    },
    /// A staging area (content on its way to a file or a part).
    Staging(u128),
    /// A record.
    Record(RecordId),
    /// A record revision.
    Revision {
        /// The record.
        record: RecordId,
        /// The revision number.
        revision: u64,
    },
    /// A persistent identifier.
    Pid {
        /// Its type (`recid`, `doi`, …).
        pid_type: String,
        /// Its value.
        pid_value: String,
    },
    /// A registered schema, by URL.
    Schema(String),
}

impl Store {
    /// Runs the engine's own integrity check (every page's checksum and the trees' structure)
    /// when no other transaction is open, then, unless it failed, verifies every invariant of
    /// the format (one head per key, reference counts of files and chunks, bucket sizes, links
    /// between tables, record revisions, bodies and schemas that parse) on a consistent
    /// snapshot. The engine goes first so the walk over the tables never reads a damaged page
    /// it has not checked. A store the engine cannot read is `Error::Corruption`.
    pub fn check(&self) -> Result<CheckReport> {
        let engine_ok = self.inner.contain(|| {
            let Some(mut db) = self.inner.db_exclusive() else {
                return Ok(None);
            };
            match db.check_integrity() {
                Ok(ok) => Ok(Some(ok)),
                Err(redb::DatabaseError::TransactionInProgress) => Ok(None),
                Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail))) => {
                    Err(crate::Error::corrupt(format!(
                        "the storage engine's integrity check failed: {detail}"
                    )))
                }
                Err(e) => Err(e.into()),
            }
        })?;
        // `Some(false)`: the engine found damage and rolled back to the last state it could
        // verify; the tables are checked as they are now.
        let problems = self.inner.contain(|| self.check_tables())?;
        Ok(CheckReport {
            problems,
            engine_ok,
        })
    }

    /// The second half of [`Store::check`] alone: every invariant of the format, verified on a
    /// consistent snapshot, without the engine's integrity check (which drops the engine's page
    /// cache and rereads and verifies every page of the file, so it costs about the file's size
    /// and needs the database to itself). It runs beside other transactions, and on a small
    /// store costs about as much as reading every row once. `engine_ok` is always `None`.
    pub fn check_invariants(&self) -> Result<CheckReport> {
        let problems = self.inner.contain(|| self.check_tables())?;
        Ok(CheckReport {
            problems,
            engine_ok: None,
        })
    }

    /// Reclaims free space in the store file. Returns whether anything was compacted. Fails
    /// with an engine error while other transactions are open.
    pub fn compact(&self) -> Result<bool> {
        self.inner.contain(|| match self.inner.db_exclusive() {
            Some(mut db) => match db.compact() {
                Ok(done) => {
                    // Compaction commits like any writer: an idle checkpoint follows it.
                    self.inner.committed();
                    Ok(done)
                }
                Err(redb::CompactionError::TransactionInProgress) => Ok(false),
                Err(e) => Err(e.into()),
            },
            None => Ok(false),
        })
    }

    fn check_tables(&self) -> Result<Vec<Problem>> {
        let snap = self.snapshot()?;
        let t = &snap.t;
        let mut p = Vec::new();

        // Buckets, objects, versions.
        let mut buckets: BTreeMap<u128, BucketRow> = BTreeMap::new();
        for e in t.buckets()?.iter()? {
            let (k, v) = e?;
            buckets.insert(k.value(), dec(v.value(), "buckets")?);
        }
        let mut expected_size: HashMap<u128, u64> = HashMap::new();
        let mut file_refs: HashMap<u128, u64> = HashMap::new();
        let mut version_ids: BTreeMap<u128, VersionLoc> = BTreeMap::new();
        let mut files: BTreeMap<u128, FileRow> = BTreeMap::new();
        // The length of each file's inline content (which follows its row in `files`).
        let mut inline: Vec<(u128, u64)> = Vec::new();
        // Small inline files, which the dedup index leaves out (since format 6).
        let mut unindexed: HashSet<u128> = HashSet::new();
        for e in t.files()?.iter()? {
            let (k, v) = e?;
            let (row, bytes) = split_file_value(v.value())?;
            if crate::content::unindexed(row.size, bytes) {
                unindexed.insert(k.value());
            }
            files.insert(k.value(), row);
            if !bytes.is_empty() {
                inline.push((k.value(), bytes.len() as u64));
            }
        }
        for e in t.objects()?.iter()? {
            let (k, v) = e?;
            let (b, key, seq) = k.value();
            let row: ObjectRow = dec(v.value(), "objects")?;
            if !buckets.contains_key(&b) {
                p.push(Problem::new(
                    Invariant::Ownership,
                    [version(row.version_id), bucket(b)],
                    format!("version {:x} lies in missing bucket {b:x}", row.version_id),
                ));
            }
            let loc = VersionLoc {
                bucket: b,
                key: key.to_string(),
                seq,
            };
            if version_ids.insert(row.version_id, loc).is_some() {
                p.push(Problem::new(
                    Invariant::VersionIndex,
                    [version(row.version_id)],
                    format!("version id {:x} used twice", row.version_id),
                ));
            }
            if let Some(f) = row.file {
                *file_refs.entry(f).or_default() += 1;
                match files.get(&f) {
                    Some(fr) => {
                        *expected_size.entry(b).or_default() += fr.size;
                        if row.content != Some(FileContent::of(fr)) {
                            p.push(Problem::new(
                                Invariant::FileReferences,
                                [version(row.version_id), file(f)],
                                format!(
                                    "version {:x} keeps a size and checksum that are not those \
                                     of its file {f:x}",
                                    row.version_id
                                ),
                            ));
                        }
                    }
                    None => p.push(Problem::new(
                        Invariant::FileReferences,
                        [version(row.version_id), file(f)],
                        format!("version {:x} points at missing file {f:x}", row.version_id),
                    )),
                }
            } else if row.content.is_some() {
                p.push(Problem::new(
                    Invariant::FileReferences,
                    [version(row.version_id)],
                    format!(
                        "delete marker {:x} keeps a file size and checksum",
                        row.version_id
                    ),
                ));
            }
        }
        let mut indexed = 0usize;
        for e in t.versions()?.iter()? {
            let (k, v) = e?;
            indexed += 1;
            let loc: VersionLoc = dec(v.value(), "versions")?;
            if version_ids.get(&k.value()) != Some(&loc) {
                p.push(Problem::new(
                    Invariant::VersionIndex,
                    [version(k.value())],
                    format!("version index of {:x} is wrong", k.value()),
                ));
            }
        }
        if indexed != version_ids.len() {
            p.push(Problem::new(
                Invariant::VersionIndex,
                [],
                format!(
                    "{indexed} version index rows for {} versions",
                    version_ids.len()
                ),
            ));
        }
        for e in t.object_tags()?.iter()? {
            let (k, _) = e?;
            if !version_ids.contains_key(&k.value().0) {
                p.push(Problem::new(
                    Invariant::Ownership,
                    [version(k.value().0)],
                    format!("tag {:?} of missing version {:x}", k.value().1, k.value().0),
                ));
            }
        }
        for e in t.bucket_tags()?.iter()? {
            let (k, _) = e?;
            if !buckets.contains_key(&k.value().0) {
                p.push(Problem::new(
                    Invariant::Ownership,
                    [bucket(k.value().0)],
                    format!("tag {:?} of missing bucket {:x}", k.value().1, k.value().0),
                ));
            }
        }

        // Multipart uploads, parts and staging.
        let mut chunk_refs: HashMap<Hash, u64> = HashMap::new();
        let mut part_staging: BTreeMap<u128, (u128, u32)> = BTreeMap::new();
        let mut uploads: BTreeSet<u128> = BTreeSet::new();
        for e in t.multipart()?.iter()? {
            let (k, v) = e?;
            let r: MultipartRow = dec(v.value(), "multipart")?;
            uploads.insert(k.value());
            *expected_size.entry(r.bucket).or_default() += r.size;
            if !buckets.contains_key(&r.bucket) {
                p.push(Problem::new(
                    Invariant::Ownership,
                    [upload(k.value()), bucket(r.bucket)],
                    format!(
                        "upload {:x} lies in missing bucket {:x}",
                        k.value(),
                        r.bucket
                    ),
                ));
            }
        }
        for e in t.parts()?.iter()? {
            let (k, v) = e?;
            let (u, n) = k.value();
            let r: PartRow = dec(v.value(), "parts")?;
            if !uploads.contains(&u) {
                p.push(Problem::new(
                    Invariant::Ownership,
                    [part(u, n), upload(u)],
                    format!("part {n} of missing upload {u:x}"),
                ));
            }
            part_staging.insert(r.staging, (u, n));
        }
        let mut staging_ids = BTreeSet::new();
        for e in t.staging()?.iter()? {
            let (k, v) = e?;
            let r: StagingRow = dec(v.value(), "staging")?;
            staging_ids.insert(k.value());
            match r.owner {
                StagingOwner::Upload => p.push(Problem::new(
                    Invariant::Staging,
                    [Subject::Staging(k.value())],
                    format!("staged upload {:x} was never adopted", k.value()),
                )),
                StagingOwner::Part {
                    upload,
                    part: part_number,
                } => {
                    if part_staging.get(&k.value()) != Some(&(upload, part_number)) {
                        p.push(Problem::new(
                            Invariant::Staging,
                            [Subject::Staging(k.value()), part(upload, part_number)],
                            format!("staging {:x} claims a part that does not own it", k.value()),
                        ));
                    }
                }
            }
        }
        for (s, (u, n)) in &part_staging {
            if !staging_ids.contains(s) {
                p.push(Problem::new(
                    Invariant::Staging,
                    [part(*u, *n), Subject::Staging(*s)],
                    format!("part {n} of upload {u:x} has no staged content"),
                ));
            }
        }
        for e in t.staged_chunks()?.iter()? {
            let (k, v) = e?;
            if !staging_ids.contains(&k.value().0) {
                p.push(Problem::new(
                    Invariant::Staging,
                    [Subject::Staging(k.value().0), Subject::ChunkHash(v.value())],
                    format!("staged chunk of missing staging {:x}", k.value().0),
                ));
            }
            *chunk_refs.entry(v.value()).or_default() += 1;
        }

        // Files whose content is in another location, and the objects there.
        let mut remote: HashMap<u128, String> = HashMap::new();
        // A store of format 4 opened read-only has neither table (nor any such content).
        let has_remote = {
            use redb::TableHandle;
            let mut names = snap.txn().list_tables()?;
            names.any(|h| h.name() == "remote_files")
        };
        let remote_rows = match has_remote {
            true => Some(t.remote_files()?.iter()?),
            false => None,
        };
        for e in remote_rows.into_iter().flatten() {
            let (k, v) = e?;
            let (f, location) = (k.value(), v.value().to_string());
            if !files.contains_key(&f) {
                p.push(Problem::new(
                    Invariant::RemoteContent,
                    [file(f), Subject::Location(location.clone())],
                    format!("missing file {f:x} is recorded in location {location:?}"),
                ));
            }
            if t.locations()?.get(location.as_str())?.is_none() {
                p.push(Problem::new(
                    Invariant::RemoteContent,
                    [file(f), Subject::Location(location.clone())],
                    format!("file {f:x} lies in missing location {location:?}"),
                ));
            }
            remote.insert(f, location);
        }
        let mut object_users: HashMap<(String, Hash), u64> = HashMap::new();
        for (f, location) in &remote {
            if let Some(row) = files.get(f) {
                *object_users
                    .entry((location.clone(), row.blake3))
                    .or_default() += 1;
            }
        }
        let object_rows = match has_remote {
            true => Some(t.remote_objects()?.iter()?),
            false => None,
        };
        for e in object_rows.into_iter().flatten() {
            let (k, v) = e?;
            let (location, h) = k.value();
            let want = object_users.remove(&(location.to_string(), h)).unwrap_or(0);
            if v.value() != want || want == 0 {
                p.push(Problem::new(
                    Invariant::RemoteContent,
                    [Subject::Content(h), Subject::Location(location.to_string())],
                    format!(
                        "object {} of location {location:?} counts {} users, has {want}",
                        hex(&h),
                        v.value()
                    ),
                ));
            }
        }
        for ((location, h), _) in object_users {
            p.push(Problem::new(
                Invariant::RemoteContent,
                [Subject::Content(h), Subject::Location(location.clone())],
                format!(
                    "object {} of location {location:?} is used but not counted",
                    hex(&h)
                ),
            ));
        }

        // Files and their chunks.
        let dedup_key_of = |id: &u128, f: &FileRow| {
            crate::content::remote::dedup_key(remote.get(id).map(String::as_str), &f.blake3)
        };
        // A store of format 5, read as it is (read-only), still names small inline files.
        let stored_format = match t.meta()?.get("format_version")? {
            Some(v) => dec::<u32>(v.value(), "meta.format_version")?,
            None => crate::FORMAT_VERSION,
        };
        let mut by_hash: HashMap<Hash, u128> = HashMap::new();
        for e in t.files_by_hash()?.iter()? {
            let (k, v) = e?;
            by_hash.insert(k.value(), v.value());
            match files.get(&v.value()) {
                Some(_) if stored_format >= 6 && unindexed.contains(&v.value()) => {
                    p.push(Problem::new(
                        Invariant::DedupIndex,
                        [file(v.value())],
                        format!(
                            "dedup index {} names file {:x}, a small inline file the index \
                             leaves out",
                            hex(&k.value()),
                            v.value()
                        ),
                    ))
                }
                Some(f) if dedup_key_of(&v.value(), f) == k.value() => {}
                _ => p.push(Problem::new(
                    Invariant::DedupIndex,
                    [file(v.value())],
                    format!("dedup index {} points at a wrong file", hex(&k.value())),
                )),
            }
        }
        // The chunk index: hash → (id, count); every id named once.
        let mut index: HashMap<Hash, (u128, u64)> = HashMap::new();
        let mut ids: HashMap<u128, Hash> = HashMap::new();
        for e in t.chunk_index()?.iter()? {
            let (k, v) = e?;
            let (h, (id, refs)) = (k.value(), v.value());
            if ids.insert(id, h).is_some() {
                p.push(Problem::new(
                    Invariant::ChunkReferences,
                    [Subject::ChunkId(id), Subject::ChunkHash(h)],
                    format!("chunk id {id:x} is named by two hashes"),
                ));
            }
            index.insert(h, (id, refs));
        }
        // Each stored chunk's length, reading every chunk once.
        let mut stored: HashMap<u128, u64> = HashMap::new();
        for e in t.chunks()?.iter()? {
            let (k, v) = e?;
            stored.insert(k.value(), v.value().len() as u64);
        }
        let mut layout: HashMap<u128, u64> = HashMap::new();
        for e in t.file_chunks()?.iter()? {
            let (k, v) = e?;
            let (f, off) = k.value();
            let h = v.value();
            let len = match files.get(&f) {
                // Content in another location: its chunk rows are hashes of fixed-size pieces
                // of one object, and hold no chunk of the store's.
                Some(row) if remote.contains_key(&f) => {
                    u64::from(row.chunk_size).min(row.size.saturating_sub(off))
                }
                _ => match index.get(&h).and_then(|(id, _)| stored.get(id)) {
                    Some(len) => {
                        *chunk_refs.entry(h).or_default() += 1;
                        *len
                    }
                    None => {
                        *chunk_refs.entry(h).or_default() += 1;
                        p.push(Problem::new(
                            Invariant::ChunkReferences,
                            [file(f), Subject::ChunkHash(h)],
                            format!("file {f:x} names missing chunk {}", hex(&h)),
                        ));
                        0
                    }
                },
            };
            let next = layout.entry(f).or_default();
            if *next != off {
                p.push(Problem::new(
                    Invariant::ChunkLayout,
                    [file(f), Subject::ChunkHash(h)],
                    format!("file {f:x}: chunk at {off}, expected one at {next}"),
                ));
            }
            *next = off + len;
            if !files.contains_key(&f) {
                p.push(Problem::new(
                    Invariant::ChunkLayout,
                    [file(f)],
                    format!("chunk list of missing file {f:x}"),
                ));
            }
        }
        for (f, len) in inline {
            if layout.insert(f, len).is_some() {
                p.push(Problem::new(
                    Invariant::ChunkLayout,
                    [file(f)],
                    format!("file {f:x} has both chunks and inline content"),
                ));
            }
        }
        for (id, f) in &files {
            let refs = file_refs.get(id).copied().unwrap_or(0);
            if f.refcount != refs {
                p.push(Problem::new(
                    Invariant::FileReferences,
                    [file(*id)],
                    format!("file {id:x} counts {} references, has {refs}", f.refcount),
                ));
            }
            if refs == 0 {
                p.push(Problem::new(
                    Invariant::FileReferences,
                    [file(*id)],
                    format!("file {id:x} is referenced by nothing"),
                ));
            }
            if layout.get(id).copied().unwrap_or(0) != f.size {
                p.push(Problem::new(
                    Invariant::ChunkLayout,
                    [file(*id)],
                    format!(
                        "file {id:x}: chunks or inline content do not add up to its size {}",
                        f.size
                    ),
                ));
            }
            // The index names one file per content and location; after a move, another file
            // with the same content in that location may be the one named.
            let named = by_hash.get(&dedup_key_of(id, f)).and_then(|n| files.get(n));
            if !unindexed.contains(id)
                && !named.is_some_and(|n| n.blake3 == f.blake3 && n.size == f.size)
            {
                p.push(Problem::new(
                    Invariant::DedupIndex,
                    [file(*id)],
                    format!("file {id:x} is missing from the dedup index"),
                ));
            }
        }
        for (h, (id, refs)) in &index {
            let want = chunk_refs.remove(h).unwrap_or(0);
            if *refs != want || want == 0 {
                p.push(Problem::new(
                    Invariant::ChunkReferences,
                    [Subject::ChunkHash(*h), Subject::ChunkId(*id)],
                    format!("chunk {} counts {refs} references, has {want}", hex(h)),
                ));
            }
            if !stored.contains_key(id) {
                p.push(Problem::new(
                    Invariant::ChunkReferences,
                    [Subject::ChunkHash(*h), Subject::ChunkId(*id)],
                    format!("chunk {} has a count but no bytes", hex(h)),
                ));
            }
        }
        for h in chunk_refs.keys() {
            p.push(Problem::new(
                Invariant::ChunkReferences,
                [Subject::ChunkHash(*h)],
                format!("chunk {} is referenced but not counted", hex(h)),
            ));
        }
        for id in stored.keys() {
            if !ids.contains_key(id) {
                p.push(Problem::new(
                    Invariant::ChunkReferences,
                    [Subject::ChunkId(*id)],
                    format!("chunk {id:x} is stored but not indexed"),
                ));
            }
        }

        // Bucket sizes.
        for (id, b) in &buckets {
            let want = expected_size.get(id).copied().unwrap_or(0);
            if b.size != want {
                p.push(Problem::new(
                    Invariant::BucketSize,
                    [bucket(*id)],
                    format!(
                        "bucket {id:x} size is {} but its content adds up to {want}",
                        b.size
                    ),
                ));
            }
        }

        let records = crate::records::check::check_invariants(t, &mut p)?;
        crate::records_files::check::check_links(&records, &buckets, &mut p);
        crate::records_files::check::check_files_lists(t, &records, &mut p)?;

        Ok(p)
    }
}

/// Names the subject: its kind, then its id (`bucket 0190…`, `chunk-hash 3f…`, `pid recid:7`).
impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Bucket(id) => write!(f, "bucket {id}"),
            Subject::Version(id) => write!(f, "version {id}"),
            Subject::Key(key) => write!(f, "key {key:?}"),
            Subject::File(id) => write!(f, "file {id}"),
            Subject::ChunkHash(h) => write!(f, "chunk-hash {}", hex(h)),
            Subject::Content(h) => write!(f, "content {}", hex(h)),
            Subject::Location(name) => write!(f, "location {name}"),
            Subject::ChunkId(id) => write!(f, "chunk {id:032x}"),
            Subject::Upload(id) => write!(f, "upload {id}"),
            Subject::Part { upload, number } => write!(f, "part {number} of upload {upload}"),
            Subject::Staging(id) => write!(f, "staging {id:032x}"),
            Subject::Record(id) => write!(f, "record {id}"),
            Subject::Revision { record, revision } => {
                write!(f, "revision {revision} of record {record}")
            }
            Subject::Pid {
                pid_type,
                pid_value,
            } => write!(f, "pid {pid_type}:{pid_value}"),
            Subject::Schema(url) => write!(f, "schema {url}"),
        }
    }
}

pub(crate) fn bucket(raw: u128) -> Subject {
    Subject::Bucket(BucketId::from_raw(raw))
}

pub(crate) fn version(raw: u128) -> Subject {
    Subject::Version(VersionId::from_raw(raw))
}

pub(crate) fn file(raw: u128) -> Subject {
    Subject::File(FileId::from_raw(raw))
}

pub(crate) fn upload(raw: u128) -> Subject {
    Subject::Upload(UploadId::from_raw(raw))
}

pub(crate) fn part(upload: u128, number: u32) -> Subject {
    Subject::Part {
        upload: UploadId::from_raw(upload),
        number,
    }
}

pub(crate) fn record(raw: u128) -> Subject {
    Subject::Record(RecordId::from_raw(raw))
}
