//! Transfer: how does a store's whole content leave it, and come back exactly?
//!
//! A *dump* describes one record, one bucket or the store-wide settings as plain data that
//! serialises to JSON: every revision of a record with its body as stored, its PIDs, every
//! version of every key of a bucket (delete markers included) with its tags, mimetype and the
//! file it points at, and the ids and timestamps of all of them. [`dump_record`],
//! [`dump_bucket`] and [`dump_store`] read them from a snapshot; the content of each file is
//! read from the same snapshot with [`ReadTx::open_file`].
//!
//! [`import`] writes dumps into a store with their ids and timestamps unchanged. It is one
//! write transaction (content larger than the staging batch is staged before it, and discarded
//! if it fails): a refused import leaves the store as it was. It refuses an import that would
//! overwrite anything (a record, bucket, version, file or PID id the store already has, or
//! content the store already holds as another file, since a store keeps each content once),
//! and content whose size or digests differ from its dump. Hooks are not called: an import
//! restores history, it does not make changes.
//!
//! Not part of a dump: API tokens (secrets stay with their store), multipart uploads in
//! progress, and how content is laid out (chunk size, inline or chunked), which the importing
//! store decides. Content of a bucket in a location this store reaches goes to that location
//! (uploaded before the import's transaction, which then refers to it), as a put there does.

use crate::content::staging::{StagedContent, adopt, stage};
use crate::content::{
    ContentBackend, FileRow, Place, Staged, StreamLimits, get_file_row, hex, insert_file_row,
    split_file_value, write_stream,
};
use crate::error::{Error, Result};
use crate::files::rows::{BucketRow, FileContent, LocationRow, ObjectRow, VersionLoc, bucket_row};
use crate::ids::{BucketId, FileId, RecordId, Timestamp, VersionId};
use crate::records::{PidRow, PidStatus};
use crate::records::{RecordRow, RevisionRow, record_row};
use crate::storage::View;
use crate::storage::{ReadTx, Store, WTables, WriteTx, dec, enc};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// A record with its whole history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDump {
    /// The record's id.
    pub id: RecordId,
    /// When it was created.
    pub created: Timestamp,
    /// When its current revision was written.
    pub updated: Timestamp,
    /// Soft-deleted: its last revision has no body.
    pub deleted: bool,
    /// Its bucket, if it has one.
    pub bucket: Option<BucketId>,
    /// Every revision, revision 0 first.
    pub revisions: Vec<RevisionDump>,
    /// Its persistent identifiers.
    pub pids: Vec<PidDump>,
}

/// One revision of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionDump {
    /// The body as stored (JSON text of an object), `None` for a soft delete.
    pub body: Option<String>,
    /// When the revision was written.
    pub updated: Timestamp,
}

/// A persistent identifier of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidDump {
    /// E.g. `recid`.
    pub pid_type: String,
    /// E.g. `12`.
    pub pid_value: String,
    /// Its state.
    pub status: PidStatus,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
}

/// A bucket with every version of every key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDump {
    /// The bucket's id.
    pub id: BucketId,
    /// The name of its location.
    pub location: String,
    /// Its default storage class.
    pub storage_class: String,
    /// Its quota, in bytes.
    pub quota_size: Option<u64>,
    /// Its largest file, in bytes.
    pub max_file_size: Option<u64>,
    /// Locked: no writes.
    pub locked: bool,
    /// Soft-deleted.
    pub deleted: bool,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
    /// The record it belongs to.
    pub record: Option<RecordId>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Every version, by key and then oldest first (the last of a key is its head).
    pub versions: Vec<VersionDump>,
}

/// One object version: a file, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDump {
    /// The object's key.
    pub key: String,
    /// The version's id.
    pub version_id: VersionId,
    /// Its place among the versions of its key (they count up from 0; a removed version
    /// leaves a gap).
    pub seq: u64,
    /// Its mimetype, if one was set.
    pub mimetype: Option<String>,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// Its file; `None` for a delete marker.
    pub file: Option<FileDump>,
}

/// A file instance (the same in every version that points at it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDump {
    /// The file's id.
    pub id: FileId,
    /// Its size in bytes.
    pub size: u64,
    /// The blake3 digest of its content, 64 hex digits.
    pub blake3: String,
    /// Its md5, 32 hex digits, if the store computed one.
    pub md5: Option<String>,
    /// Readable.
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// The outcome of its last fixity check.
    pub last_check: Option<bool>,
    /// When it was last checked.
    pub last_check_at: Option<Timestamp>,
    /// Its storage class.
    pub storage_class: String,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
}

/// What a store holds besides records and buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreDump {
    /// Locations, by name (their timestamps are the store's own, and not carried over).
    pub locations: Vec<LocationDump>,
    /// Registered JSON Schemas: URL → the schema's JSON text.
    pub schemas: BTreeMap<String, String>,
    /// For each PID type, the last value minted.
    pub pid_counters: BTreeMap<String, u64>,
}

/// A location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationDump {
    /// Its name.
    pub name: String,
    /// Its URI.
    pub uri: String,
    /// Whether it is the default location.
    pub default: bool,
}

/// Every record id, soft-deleted ones included, in id order.
pub fn record_ids(tx: &ReadTx) -> Result<Vec<RecordId>> {
    let mut out = Vec::new();
    for e in tx.t.records()?.iter()? {
        out.push(RecordId::from_raw(e?.0.value()));
    }
    Ok(out)
}

/// Every bucket id, soft-deleted ones included, in id order.
pub fn bucket_ids(tx: &ReadTx) -> Result<Vec<BucketId>> {
    let mut out = Vec::new();
    for e in tx.t.buckets()?.iter()? {
        out.push(BucketId::from_raw(e?.0.value()));
    }
    Ok(out)
}

/// A record with all its revisions and PIDs; `None` if there is no such record.
pub fn dump_record(tx: &ReadTx, id: RecordId) -> Result<Option<RecordDump>> {
    let v = &tx.t;
    let Some(row) = record_row(v, id)? else {
        return Ok(None);
    };
    let mut revisions = Vec::new();
    for e in v
        .record_revisions()?
        .range((id.raw(), 0)..=(id.raw(), u64::MAX))?
    {
        let r: RevisionRow = dec(e?.1.value(), "record_revisions")?;
        let body = match r.json {
            Some(bytes) => Some(
                String::from_utf8(bytes)
                    .map_err(|_| Error::corrupt(format!("record {id}: a body is not UTF-8")))?,
            ),
            None => None,
        };
        revisions.push(RevisionDump {
            body,
            updated: r.updated,
        });
    }
    let mut pids = Vec::new();
    for e in v.record_pids()?.range((id.raw(), "", "")..)? {
        let (k, _) = e?;
        let (rid, pid_type, pid_value) = k.value();
        if rid != id.raw() {
            break;
        }
        if let Some(g) = v.pids()?.get((pid_type, pid_value))? {
            let p: PidRow = dec(g.value(), "pids")?;
            pids.push(PidDump {
                pid_type: pid_type.to_string(),
                pid_value: pid_value.to_string(),
                status: p.status,
                created: p.created,
                updated: p.updated,
            });
        }
    }
    Ok(Some(RecordDump {
        id,
        created: row.created,
        updated: row.updated,
        deleted: row.deleted,
        bucket: row.bucket.map(BucketId::from_raw),
        revisions,
        pids,
    }))
}

/// A bucket with every version of every key; `None` if there is no such bucket.
pub fn dump_bucket(tx: &ReadTx, id: BucketId) -> Result<Option<BucketDump>> {
    let v = &tx.t;
    let Some(row) = bucket_row(v, id.raw())? else {
        return Ok(None);
    };
    let mut tags = BTreeMap::new();
    for e in v.bucket_tags()?.range((id.raw(), "")..)? {
        let (k, val) = e?;
        let (b, key) = k.value();
        if b != id.raw() {
            break;
        }
        tags.insert(key.to_string(), val.value().to_string());
    }
    let mut versions = Vec::new();
    for e in v.objects()?.range((id.raw(), "", 0)..)? {
        let (k, val) = e?;
        let (b, key, seq) = k.value();
        if b != id.raw() {
            break;
        }
        let o: ObjectRow = dec(val.value(), "objects")?;
        let file = match o.file {
            Some(f) => {
                let f = FileId::from_raw(f);
                let r = get_file_row(v, f)?.ok_or(Error::FileNotFound { file: f })?;
                Some(file_dump(f, &r))
            }
            None => None,
        };
        let mut vtags = BTreeMap::new();
        for e in v.object_tags()?.range((o.version_id, "")..)? {
            let (k, val) = e?;
            let (ver, tag) = k.value();
            if ver != o.version_id {
                break;
            }
            vtags.insert(tag.to_string(), val.value().to_string());
        }
        versions.push(VersionDump {
            key: key.to_string(),
            version_id: VersionId::from_raw(o.version_id),
            seq,
            mimetype: o.mimetype,
            created: o.created,
            updated: o.updated,
            tags: vtags,
            file,
        });
    }
    Ok(Some(BucketDump {
        id,
        location: row.location,
        storage_class: row.storage_class,
        quota_size: row.quota_size,
        max_file_size: row.max_file_size,
        locked: row.locked,
        deleted: row.deleted,
        created: row.created,
        updated: row.updated,
        record: row.record.map(RecordId::from_raw),
        tags,
        versions,
    }))
}

/// The store's locations, schemas and PID counters.
pub fn dump_store(tx: &ReadTx) -> Result<StoreDump> {
    let v = &tx.t;
    let mut out = StoreDump::default();
    for e in v.locations()?.iter()? {
        let (k, val) = e?;
        let r: LocationRow = dec(val.value(), "locations")?;
        out.locations.push(LocationDump {
            name: k.value().to_string(),
            uri: r.uri,
            default: r.default,
        });
    }
    for e in v.schemas()?.iter()? {
        let (k, val) = e?;
        let text = String::from_utf8(val.value().to_vec())
            .map_err(|_| Error::corrupt(format!("schema {}: not UTF-8", k.value())))?;
        out.schemas.insert(k.value().to_string(), text);
    }
    for e in v.pid_counters()?.iter()? {
        let (k, val) = e?;
        out.pid_counters.insert(k.value().to_string(), val.value());
    }
    Ok(out)
}

fn file_dump(id: FileId, r: &FileRow) -> FileDump {
    FileDump {
        id,
        size: r.size,
        blake3: hex(&r.blake3),
        md5: r.md5.map(|m| hex(&m)),
        readable: r.readable,
        writable: r.writable,
        last_check: r.last_check,
        last_check_at: r.last_check_at,
        storage_class: r.storage_class.clone(),
        created: r.created,
        updated: r.updated,
    }
}

/// Everything one [`import`] writes.
#[derive(Debug, Clone, Default)]
pub struct ImportSet {
    /// Locations, schemas and PID counters.
    pub store: StoreDump,
    /// Records.
    pub records: Vec<RecordDump>,
    /// Buckets, those of the records included.
    pub buckets: Vec<BucketDump>,
}

/// What an [`import`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Records written.
    pub records: usize,
    /// Buckets written.
    pub buckets: usize,
    /// Object versions written (delete markers included).
    pub versions: usize,
    /// Files written (each content once).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Writes `set` into `store` with its ids and timestamps, in one transaction; `content` opens
/// the bytes of a file when the import needs them (once per file). A file of a bucket in a
/// location the store reaches is uploaded there first (the first bucket of the set holding a
/// version of it decides which location). Content is checked against the file's size, blake3
/// and md5 as it streams in; a mismatch, an error of `content`'s reader
/// ([`Error::UploadStream`]), an inconsistent set ([`Error::InvalidImport`]), an unreachable
/// location ([`Error::LocationUnavailable`]) or anything already in the store
/// ([`Error::ImportConflict`]) refuses the whole import and leaves the store unchanged (an
/// object already uploaded stays unreferenced, for [`Store::gc_location`]).
pub fn import(
    store: &Store,
    set: &ImportSet,
    content: &mut dyn FnMut(&FileDump) -> std::io::Result<Box<dyn Read>>,
) -> Result<ImportReport> {
    let files = validate(set)?;
    // A location clash first: finding the places' backends could fail on it otherwise.
    let places = store.read(|r| {
        location_conflicts(&r.t, set)?;
        remote_places(r, set)
    })?;
    store.read(|r| conflicts(&r.t, set, &files, &places))?;
    // Content for a location is uploaded there first, and large content for the store file
    // staged (its own short transactions), as a put does.
    let batch = store.inner.cfg.staging_batch_bytes as u64;
    let mut staged: BTreeMap<FileId, StagedContent> = BTreeMap::new();
    let mut remote: BTreeMap<FileId, Staged> = BTreeMap::new();
    for f in files.values() {
        if let Some((place, backend)) = places.get(&f.id) {
            let mut reader = open(content, f)?;
            let limits = StreamLimits {
                declared: Some(f.size),
                cap: None,
            };
            let check = |d: &([u8; 32], Option<[u8; 16]>)| check_digest(f, d);
            let s = place.stage(
                store,
                Some(backend.as_ref()),
                &mut reader,
                limits,
                f.md5.is_some(),
                &check,
            )?;
            remote.insert(f.id, s);
        } else if f.size > batch {
            let mut reader = open(content, f)?;
            let limits = StreamLimits {
                declared: Some(f.size),
                cap: None,
            };
            let s = stage(store, &mut reader, limits, f.md5.is_some())?;
            check_digest(f, &s.digest)?;
            staged.insert(f.id, s);
        }
    }
    let report = store.write(|tx| {
        conflicts(&tx.t, set, &files, &places)?;
        write_set(tx, set, &files, &staged, &mut remote, content)
    })?;
    for s in staged.into_values() {
        s.committed();
    }
    for s in remote.into_values() {
        s.committed();
    }
    Ok(report)
}

/// A location an imported file's content goes to, with its backend.
type RemotePlace = (Place, std::sync::Arc<dyn ContentBackend>);

/// Where the content of the set's files goes when it is not the store file: a file goes to the
/// location of the first bucket of the set holding a version of it, if this store reaches
/// that location (a backend given to the builder, or one made from its `s3://` URI); a bucket
/// in a location keeps its content there, imported or not. The location's URI is the set's
/// (an existing location has the same one, or the import is refused as a conflict).
fn remote_places(r: &ReadTx, set: &ImportSet) -> Result<BTreeMap<FileId, RemotePlace>> {
    let mut places = BTreeMap::new();
    let mut decided = BTreeSet::new();
    for b in &set.buckets {
        let uri = match set.store.locations.iter().find(|l| l.name == b.location) {
            Some(l) => Some(l.uri.clone()),
            None => {
                r.t.locations()?
                    .get(b.location.as_str())?
                    .map(|g| dec::<LocationRow>(g.value(), "locations"))
                    .transpose()?
                    .map(|l| l.uri)
            }
        };
        let backend = match uri {
            Some(uri) => r.cfg.remotes.backend(&b.location, &uri)?,
            None => None,
        };
        for v in &b.versions {
            let Some(f) = &v.file else { continue };
            if !decided.insert(f.id) {
                continue;
            }
            if let Some(backend) = &backend {
                places.insert(
                    f.id,
                    (
                        Place::Remote(b.location.clone()),
                        std::sync::Arc::clone(backend),
                    ),
                );
            }
        }
    }
    Ok(places)
}

fn open(
    content: &mut dyn FnMut(&FileDump) -> std::io::Result<Box<dyn Read>>,
    f: &FileDump,
) -> Result<Box<dyn Read>> {
    content(f).map_err(|source| Error::UploadStream { source })
}

fn invalid(reason: String) -> Error {
    Error::InvalidImport { reason }
}

fn parse_hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return Err(invalid(format!(
            "{what} {text:?} is not {} hex digits",
            2 * N
        )));
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).unwrap_or("");
        out[i] = u8::from_str_radix(digits, 16)
            .map_err(|_| invalid(format!("{what} {text:?} is not hex")))?;
    }
    Ok(out)
}

fn check_digest(f: &FileDump, (blake3, md5): &([u8; 32], Option<[u8; 16]>)) -> Result<()> {
    let got = hex(blake3);
    if got != f.blake3 {
        return Err(Error::ChecksumMismatch {
            expected: format!("blake3:{}", f.blake3),
            actual: format!("blake3:{got}"),
        });
    }
    if let (Some(want), Some(got)) = (&f.md5, md5) {
        let got = hex(got);
        if &got != want {
            return Err(Error::ChecksumMismatch {
                expected: format!("md5:{want}"),
                actual: format!("md5:{got}"),
            });
        }
    }
    Ok(())
}

/// Checks that the set describes a consistent store; returns its files by id.
fn validate(set: &ImportSet) -> Result<BTreeMap<FileId, &FileDump>> {
    let mut files: BTreeMap<FileId, &FileDump> = BTreeMap::new();
    let mut hashes: BTreeMap<&str, FileId> = BTreeMap::new();
    let mut versions = BTreeSet::new();
    let buckets: BTreeMap<BucketId, &BucketDump> = set.buckets.iter().map(|b| (b.id, b)).collect();
    let records: BTreeMap<RecordId, &RecordDump> = set.records.iter().map(|r| (r.id, r)).collect();
    if buckets.len() != set.buckets.len() || records.len() != set.records.len() {
        return Err(invalid("a record or bucket id appears twice".into()));
    }
    for b in &set.buckets {
        if let Some(r) = b.record
            && records.get(&r).and_then(|r| r.bucket) != Some(b.id)
        {
            return Err(invalid(format!(
                "bucket {} names record {r}, which does not name it back",
                b.id
            )));
        }
        let mut last: Option<(&str, u64)> = None;
        for v in &b.versions {
            crate::files::validate_key(&v.key, usize::MAX)?;
            if let Some((k, s)) = last
                && (k, s) >= (v.key.as_str(), v.seq)
            {
                return Err(invalid(format!(
                    "bucket {}: versions are not in key and sequence order at {:?}",
                    b.id, v.key
                )));
            }
            last = Some((v.key.as_str(), v.seq));
            if !versions.insert(v.version_id) {
                return Err(invalid(format!("version {} appears twice", v.version_id)));
            }
            let Some(f) = &v.file else { continue };
            parse_hex::<32>(&f.blake3, "blake3")?;
            if let Some(m) = &f.md5 {
                parse_hex::<16>(m, "md5")?;
            }
            match files.get(&f.id) {
                Some(seen) if *seen != f => {
                    return Err(invalid(format!("file {} is described two ways", f.id)));
                }
                Some(_) => {}
                None => {
                    // Small inline content is stored once per file (docs/FORMAT.md), so a
                    // store may hold it several times; other content is stored once.
                    if let Some(other) = hashes.insert(&f.blake3, f.id)
                        && f.size > crate::content::UNINDEXED_MAX
                    {
                        return Err(invalid(format!(
                            "files {other} and {} have the same content",
                            f.id
                        )));
                    }
                    files.insert(f.id, f);
                }
            }
        }
    }
    let mut pids = BTreeSet::new();
    for r in &set.records {
        for p in &r.pids {
            if !pids.insert((p.pid_type.as_str(), p.pid_value.as_str())) {
                return Err(invalid(format!(
                    "PID {}:{} is given twice",
                    p.pid_type, p.pid_value
                )));
            }
        }
        if let Some(b) = r.bucket
            && buckets.get(&b).and_then(|b| b.record) != Some(r.id)
        {
            return Err(invalid(format!(
                "record {} names bucket {b}, which is not in the import or names another record",
                r.id
            )));
        }
        let Some(last) = r.revisions.last() else {
            return Err(invalid(format!("record {} has no revision", r.id)));
        };
        if last.body.is_none() != r.deleted {
            return Err(invalid(format!(
                "record {}: deleted is {} but its last revision {} a body",
                r.id,
                r.deleted,
                if last.body.is_some() { "has" } else { "has no" }
            )));
        }
        for (n, rev) in r.revisions.iter().enumerate() {
            if let Some(body) = &rev.body {
                let doc: serde_json::Value = serde_json::from_str(body).map_err(|e| {
                    invalid(format!(
                        "record {} revision {n}: body is not JSON: {e}",
                        r.id
                    ))
                })?;
                if !doc.is_object() {
                    return Err(invalid(format!(
                        "record {} revision {n}: body is not a JSON object",
                        r.id
                    )));
                }
                crate::records::check_depth(&doc, || format!("record {} revision {n}", r.id))?;
            }
        }
    }
    Ok(files)
}

/// Refuses the import if the store holds anything it would write over, or content it would
/// hold twice at the place a file goes to (`places`; the store file otherwise).
fn conflicts<V: crate::storage::View>(
    v: &V,
    set: &ImportSet,
    files: &BTreeMap<FileId, &FileDump>,
    places: &BTreeMap<FileId, RemotePlace>,
) -> Result<()> {
    let clash = |what: &'static str, id: String| Err(Error::ImportConflict { what, id });
    for r in &set.records {
        if record_row(v, r.id)?.is_some() {
            return clash("record", r.id.to_string());
        }
        for p in &r.pids {
            if v.pids()?
                .get((p.pid_type.as_str(), p.pid_value.as_str()))?
                .is_some()
            {
                return clash("PID", format!("{}:{}", p.pid_type, p.pid_value));
            }
        }
    }
    for b in &set.buckets {
        if bucket_row(v, b.id.raw())?.is_some() {
            return clash("bucket", b.id.to_string());
        }
        for ver in &b.versions {
            if v.versions()?.get(ver.version_id.raw())?.is_some() {
                return clash("object version", ver.version_id.to_string());
            }
        }
    }
    for f in files.values() {
        if v.files()?.get(f.id.raw())?.is_some() {
            return clash("file", f.id.to_string());
        }
        let hash = parse_hex::<32>(&f.blake3, "blake3")?;
        let location = places.get(&f.id).and_then(|(place, _)| place.location());
        let key = crate::content::remote::dedup_key(location, &hash);
        if let Some(g) = v.files_by_hash()?.get(&key)? {
            return clash(
                "file with the content of",
                format!("{} (as file {})", f.id, FileId::from_raw(g.value())),
            );
        }
    }
    for (url, text) in &set.store.schemas {
        if let Some(g) = v.schemas()?.get(url.as_str())?
            && g.value() != text.as_bytes()
        {
            return clash("different schema at", url.clone());
        }
    }
    location_conflicts(v, set)
}

/// Refuses the import if a location of the set has another URI in the store, or would share
/// its object-store prefix with a location of another name.
fn location_conflicts<V: crate::storage::View>(v: &V, set: &ImportSet) -> Result<()> {
    let clash = |what: &'static str, id: String| Err(Error::ImportConflict { what, id });
    let mut existing = Vec::new();
    for e in v.locations()?.iter()? {
        let (k, g) = e?;
        let row: LocationRow = dec(g.value(), "locations")?;
        existing.push((k.value().to_string(), row.uri));
    }
    for l in &set.store.locations {
        if let Some((_, uri)) = existing.iter().find(|(n, _)| *n == l.name) {
            if *uri != l.uri {
                return clash("location (with another URI)", l.name.clone());
            }
            continue;
        }
        let pairs = existing.iter().map(|(n, u)| (n.as_str(), u.as_str()));
        if let Some(other) = crate::files::overlapping_location(pairs, &l.name, &l.uri) {
            return clash(
                "location with the same object-store prefix",
                format!("{} (as location {other})", l.name),
            );
        }
    }
    Ok(())
}

fn write_set(
    tx: &mut WriteTx<'_>,
    set: &ImportSet,
    files: &BTreeMap<FileId, &FileDump>,
    staged: &BTreeMap<FileId, StagedContent>,
    remote: &mut BTreeMap<FileId, Staged>,
    content: &mut dyn FnMut(&FileDump) -> std::io::Result<Box<dyn Read>>,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    write_store_settings(tx, &set.store)?;
    // References per file: the number of versions pointing at it.
    let mut refs: BTreeMap<FileId, u64> = BTreeMap::new();
    for b in &set.buckets {
        for v in &b.versions {
            if let Some(f) = &v.file {
                *refs.entry(f.id).or_default() += 1;
            }
        }
    }
    let mut seen = BTreeSet::new();
    for f in files.values() {
        // A second file with the same content must stay a file of its own: this store keeps
        // it so only if it is stored inline (it would deduplicate it otherwise).
        if !seen.insert(f.blake3.as_str()) && f.size > tx.cfg.chunk_size as u64 {
            return Err(invalid(format!(
                "file {} has the content of another file, and at {} bytes this store (chunk \
                 size {}) would keep only one of them",
                f.id, f.size, tx.cfg.chunk_size
            )));
        }
        let refcount = refs.get(&f.id).copied().unwrap_or(0);
        if let Some(s) = remote.get_mut(&f.id) {
            // Uploaded to its location already: the file takes the dump's id and attributes
            // there (the chunk size is the location's).
            let row = FileRow {
                size: f.size,
                blake3: parse_hex(&f.blake3, "blake3")?,
                md5: f.md5.as_deref().map(|m| parse_hex(m, "md5")).transpose()?,
                readable: f.readable,
                writable: f.writable,
                last_check: f.last_check,
                last_check_at: f.last_check_at,
                chunk_size: 0,
                refcount,
                storage_class: f.storage_class.clone(),
                created: f.created,
                updated: f.updated,
            };
            s.adopt_as(tx, f.id, &row)?;
            report.files += 1;
            report.bytes += f.size;
            continue;
        }
        let written = match staged.get(&f.id) {
            Some(s) => adopt(tx, s, &f.storage_class)?.0,
            None => {
                let mut reader = open(content, f)?;
                let limits = StreamLimits {
                    declared: Some(f.size),
                    cap: None,
                };
                let chunk_size = tx.cfg.chunk_size;
                let now = tx.now;
                let check = |d: &([u8; 32], Option<[u8; 16]>)| check_digest(f, d);
                write_stream(
                    &mut tx.t,
                    chunk_size,
                    f.md5.is_some(),
                    &mut reader,
                    limits,
                    &check,
                    &f.storage_class,
                    now,
                )?
                .0
            }
        };
        relabel_file(&mut tx.t, written, f, refcount)?;
        report.files += 1;
        report.bytes += f.size;
    }
    for b in &set.buckets {
        write_bucket(&mut tx.t, b)?;
        report.buckets += 1;
        report.versions += b.versions.len();
    }
    for r in &set.records {
        write_record(&mut tx.t, r)?;
        report.records += 1;
    }
    Ok(report)
}

/// Moves a freshly written file to the id and attributes of its dump.
fn relabel_file(t: &mut WTables<'_>, from: FileId, to: &FileDump, refcount: u64) -> Result<()> {
    let value = t
        .files
        .write()?
        .remove(from.raw())?
        .ok_or(Error::FileNotFound { file: from })?
        .value()
        .to_vec();
    let (row, inline) = split_file_value(&value)?;
    let chunks: Vec<(u64, [u8; 32])> = {
        let mut out = Vec::new();
        for e in t
            .file_chunks
            .read()?
            .range((from.raw(), 0)..=(from.raw(), u64::MAX))?
        {
            let (k, h) = e?;
            out.push((k.value().1, h.value()));
        }
        out
    };
    t.file_chunks
        .write()?
        .retain_in((from.raw(), 0)..=(from.raw(), u64::MAX), |_, _| false)?;
    for (off, h) in chunks {
        t.file_chunks.write()?.insert((to.id.raw(), off), &h)?;
    }
    if !crate::content::unindexed(row.size, inline) {
        t.files_by_hash.write()?.insert(&row.blake3, to.id.raw())?;
    }
    let row = FileRow {
        size: row.size,
        blake3: row.blake3,
        md5: row.md5,
        readable: to.readable,
        writable: to.writable,
        last_check: to.last_check,
        last_check_at: to.last_check_at,
        chunk_size: row.chunk_size,
        refcount,
        storage_class: to.storage_class.clone(),
        created: to.created,
        updated: to.updated,
    };
    insert_file_row(t, to.id, &row, inline)
}

fn write_store_settings(tx: &mut WriteTx<'_>, s: &StoreDump) -> Result<()> {
    let now = tx.now;
    let has_default = {
        let mut any = false;
        for e in tx.t.locations.read()?.iter()? {
            let r: LocationRow = dec(e?.1.value(), "locations")?;
            any |= r.default;
        }
        any
    };
    for l in &s.locations {
        if tx.t.locations.read()?.get(l.name.as_str())?.is_none() {
            let row = LocationRow {
                uri: l.uri.clone(),
                default: l.default && !has_default,
                created: now,
                updated: now,
            };
            tx.t.locations
                .write()?
                .insert(l.name.as_str(), enc(&row)?.as_slice())?;
        }
    }
    for (url, text) in &s.schemas {
        tx.t.schemas
            .write()?
            .insert(url.as_str(), text.as_bytes())?;
    }
    for (ty, n) in &s.pid_counters {
        let current =
            tx.t.pid_counters
                .read()?
                .get(ty.as_str())?
                .map(|g| g.value());
        tx.t.pid_counters
            .write()?
            .insert(ty.as_str(), current.unwrap_or(0).max(*n))?;
    }
    Ok(())
}

fn write_bucket(t: &mut WTables<'_>, b: &BucketDump) -> Result<()> {
    if t.locations.read()?.get(b.location.as_str())?.is_none() {
        return Err(Error::LocationNotFound {
            name: b.location.clone(),
        });
    }
    let size = b
        .versions
        .iter()
        .filter_map(|v| v.file.as_ref().map(|f| f.size))
        .sum();
    let row = BucketRow {
        location: b.location.clone(),
        storage_class: b.storage_class.clone(),
        size,
        quota_size: b.quota_size,
        max_file_size: b.max_file_size,
        locked: b.locked,
        deleted: b.deleted,
        created: b.created,
        updated: b.updated,
        record: b.record.map(|r| r.raw()),
    };
    t.buckets
        .write()?
        .insert(b.id.raw(), enc(&row)?.as_slice())?;
    for (k, val) in &b.tags {
        t.bucket_tags
            .write()?
            .insert((b.id.raw(), k.as_str()), val.as_str())?;
    }
    for v in &b.versions {
        let (file, content) = match &v.file {
            Some(f) => (
                Some(f.id.raw()),
                Some(FileContent {
                    size: f.size,
                    blake3: parse_hex::<32>(&f.blake3, "blake3")?,
                }),
            ),
            None => (None, None),
        };
        let row = ObjectRow {
            version_id: v.version_id.raw(),
            file,
            content,
            mimetype: v.mimetype.clone(),
            created: v.created,
            updated: v.updated,
        };
        t.objects
            .write()?
            .insert((b.id.raw(), v.key.as_str(), v.seq), enc(&row)?.as_slice())?;
        let loc = VersionLoc {
            bucket: b.id.raw(),
            key: v.key.clone(),
            seq: v.seq,
        };
        t.versions
            .write()?
            .insert(v.version_id.raw(), enc(&loc)?.as_slice())?;
        for (k, val) in &v.tags {
            t.object_tags
                .write()?
                .insert((v.version_id.raw(), k.as_str()), val.as_str())?;
        }
    }
    Ok(())
}

fn write_record(t: &mut WTables<'_>, r: &RecordDump) -> Result<()> {
    let row = RecordRow {
        revision: r.revisions.len() as u64 - 1,
        deleted: r.deleted,
        created: r.created,
        updated: r.updated,
        bucket: r.bucket.map(|b| b.raw()),
    };
    t.records
        .write()?
        .insert(r.id.raw(), enc(&row)?.as_slice())?;
    for (n, rev) in r.revisions.iter().enumerate() {
        let row = RevisionRow {
            json: rev.body.as_ref().map(|b| b.as_bytes().to_vec()),
            updated: rev.updated,
        };
        t.record_revisions
            .write()?
            .insert((r.id.raw(), n as u64), enc(&row)?.as_slice())?;
    }
    for p in &r.pids {
        let row = PidRow {
            record: r.id.raw(),
            status: p.status.clone(),
            created: p.created,
            updated: p.updated,
        };
        t.pids.write()?.insert(
            (p.pid_type.as_str(), p.pid_value.as_str()),
            enc(&row)?.as_slice(),
        )?;
        t.record_pids
            .write()?
            .insert((r.id.raw(), p.pid_type.as_str(), p.pid_value.as_str()), ())?;
    }
    Ok(())
}
