//! Queries of the files layer, shared by read snapshots and write transactions.

use super::mimetype::MimeGuesser;
use super::rows::*;
use super::{Bucket, ListOptions, Location, MultipartUpload, ObjectVersion, Part, guess_mimetype};
use crate::content::{FileInstance, FileReader, file_instance, get_file_row};
use crate::error::{Error, Result};
use crate::ids::{BucketId, FileId, UploadId, VersionId};
use crate::storage::{Hot, ReadTx, Snapshot, View, dec, each_row, with_view};
use redb::ReadableTable;
use std::collections::BTreeMap;
use std::ops::Bound;

pub(crate) fn to_bucket(id: u128, r: BucketRow) -> Bucket {
    Bucket {
        id: BucketId::from_raw(id),
        location: r.location,
        storage_class: r.storage_class,
        size: r.size,
        quota_size: r.quota_size,
        max_file_size: r.max_file_size,
        locked: r.locked,
        deleted: r.deleted,
        created: r.created,
        updated: r.updated,
    }
}

pub(crate) fn to_version(
    bucket: u128,
    key: &str,
    seq: u64,
    row: &ObjectRow,
    head: Option<u64>,
) -> Result<ObjectVersion> {
    let mimetype = row.mimetype.clone().unwrap_or_else(|| guess_mimetype(key));
    build_version(bucket, key, row, head == Some(seq), mimetype)
}

/// An [`ObjectVersion`] from its row, with its MIME type already worked out. The file's size
/// and checksum come from the copy the row keeps of them.
fn build_version(
    bucket: u128,
    key: &str,
    row: &ObjectRow,
    is_head: bool,
    mimetype: String,
) -> Result<ObjectVersion> {
    let (size, checksum) = match (row.file, row.content) {
        (Some(_), Some(c)) => (Some(c.size), Some(crate::content::blake3_text(&c.blake3))),
        (None, _) => (None, None),
        (Some(f), None) => {
            return Err(Error::corrupt(format!(
                "version {} of {key:?} has file {} but not its size and checksum",
                VersionId::from_raw(row.version_id),
                FileId::from_raw(f)
            )));
        }
    };
    Ok(ObjectVersion {
        bucket: BucketId::from_raw(bucket),
        key: key.to_string(),
        version_id: VersionId::from_raw(row.version_id),
        file_id: row.file.map(FileId::from_raw),
        size,
        checksum,
        mimetype,
        is_head,
        created: row.created,
        updated: row.updated,
    })
}

pub(crate) fn head_version<V: View>(
    v: &V,
    bucket: u128,
    key: &str,
) -> Result<Option<ObjectVersion>> {
    let Some((seq, row)) = head_row(v, bucket, key)? else {
        return Ok(None);
    };
    Ok(Some(to_version(bucket, key, seq, &row, Some(seq))?))
}

pub(crate) fn version_by_id<V: View>(v: &V, id: VersionId) -> Result<Option<ObjectVersion>> {
    let Some(loc) = version_loc(v, id.raw())? else {
        return Ok(None);
    };
    let row = object_row(v, loc.bucket, &loc.key, loc.seq)?
        .ok_or_else(|| Error::corrupt(format!("version {id} has no row")))?;
    let head = head_seq(v, loc.bucket, &loc.key)?;
    Ok(Some(to_version(loc.bucket, &loc.key, loc.seq, &row, head)?))
}

/// All versions of one key, newest first.
pub(crate) fn versions_of<V: View>(v: &V, bucket: u128, key: &str) -> Result<Vec<ObjectVersion>> {
    let mut head = None;
    let mut out = Vec::new();
    for e in v
        .objects()?
        .range((bucket, key, 0)..=(bucket, key, u64::MAX))?
        .rev()
    {
        let (k, val) = e?;
        let seq = k.value().2;
        // Newest first: the first is the head.
        let head = *head.get_or_insert(seq);
        let row: ObjectRow = dec(val.value(), "objects")?;
        out.push(to_version(bucket, key, seq, &row, Some(head))?);
    }
    Ok(out)
}

/// How many rows of `objects` [`list_heads`] steps over to reach a head before it looks the
/// head up directly instead (keys with many old versions).
const HEAD_SCAN_LIMIT: usize = 8;

fn list_heads<V: View>(v: &V, bucket: u128, opts: &ListOptions) -> Result<Vec<ObjectVersion>> {
    let mut out = Vec::new();
    for_each_head(v, bucket, opts, |o| {
        out.push(o);
        Ok(())
    })?;
    Ok(out)
}

/// Passes `f` each head that [`FilesQuery::list_objects`] lists, in order, so a caller that
/// turns them into something else needs no list of them first.
pub(crate) fn for_each_head<V: View>(
    v: &V,
    bucket: u128,
    opts: &ListOptions,
    mut f: impl FnMut(ObjectVersion) -> Result<()>,
) -> Result<()> {
    let prefix = opts.prefix.as_deref().unwrap_or("");
    let start: &str = match opts.start_after.as_deref() {
        Some(s) if s >= prefix => s,
        _ => prefix,
    };
    let limit = opts.limit.unwrap_or(usize::MAX);
    if limit == 0 {
        return Ok(());
    }
    let mut listed = 0;
    let mut mimetypes = MimeGuesser::default();
    let mut emit = |key: &str, row: ObjectRow| -> Result<bool> {
        if row.file.is_none() && !opts.with_deleted {
            return Ok(true);
        }
        let mimetype = match &row.mimetype {
            Some(m) => m.clone(),
            None => mimetypes.guess(key),
        };
        f(build_version(bucket, key, &row, true, mimetype)?)?;
        listed += 1;
        Ok(listed < limit)
    };
    // The head of a key is its newest version, the last of its rows in `objects`. The rows are
    // walked in order and the last of each key's run is kept; a key with many old versions is
    // skipped to its head by a lookup rather than stepped through.
    let objects = v.objects()?;
    let mut rows = objects.range((bucket, start, 0)..)?;
    // The key being walked, its newest row so far (undecoded) and how many rows it has had.
    let mut current: Option<(String, RawRow<'_>, usize)> = None;
    loop {
        let next = match rows.next() {
            Some(e) => Some(e?),
            None => None,
        };
        let next = next.filter(|(k, _)| {
            let (b, key, _) = k.value();
            b == bucket && (prefix.is_empty() || key.starts_with(prefix))
        });
        match (&mut current, next) {
            (Some((key, row, steps)), Some((k, val))) if k.value().1 == key.as_str() => {
                *row = val;
                *steps += 1;
                if *steps == HEAD_SCAN_LIMIT
                    && let Some(e) = objects
                        .range((bucket, key.as_str(), 0)..=(bucket, key.as_str(), u64::MAX))?
                        .next_back()
                {
                    let (k, val) = e?;
                    *row = val;
                    // Carry on after the head.
                    let head = (bucket, key.as_str(), k.value().2);
                    rows = objects.range((Bound::Excluded(head), Bound::Unbounded))?;
                }
            }
            (_, next) => {
                if let Some((key, row, _)) = current.take()
                    && !emit(&key, dec(row.value(), "objects")?)?
                {
                    return Ok(());
                }
                let Some((k, val)) = next else {
                    return Ok(());
                };
                let key = k.value().1;
                if opts.start_after.as_deref() == Some(key) {
                    // Past this key's rows without listing it.
                    let last = (bucket, key, u64::MAX);
                    rows = objects.range((Bound::Excluded(last), Bound::Unbounded))?;
                } else {
                    current = Some((key.to_string(), val, 1));
                }
            }
        }
    }
}

fn bucket_versions<V: View>(v: &V, bucket: u128, with_markers: bool) -> Result<Vec<ObjectVersion>> {
    let mut out = Vec::new();
    // Each key's versions, newest first, keys in order. Rows come oldest first within a key.
    let mut key_rows: Vec<(u64, ObjectRow)> = Vec::new();
    let mut key = String::new();
    let mut flush = |key: &str, rows: &mut Vec<(u64, ObjectRow)>| -> Result<()> {
        let head = rows.last().map(|(seq, _)| *seq);
        for (seq, row) in rows.drain(..).rev() {
            let o = to_version(bucket, key, seq, &row, head)?;
            if with_markers || !o.is_delete_marker() {
                out.push(o);
            }
        }
        Ok(())
    };
    for e in v.objects()?.range((bucket, "", 0)..)? {
        let (k, val) = e?;
        let (b, k_key, seq) = k.value();
        if b != bucket {
            break;
        }
        if k_key != key {
            flush(&key, &mut key_rows)?;
            key = k_key.to_string();
        }
        key_rows.push((seq, dec(val.value(), "objects")?));
    }
    flush(&key, &mut key_rows)?;
    Ok(out)
}

fn to_multipart(id: u128, r: MultipartRow) -> MultipartUpload {
    MultipartUpload::from_row(UploadId::from_raw(id), r)
}

/// Queries of the files layer. Implemented for [`ReadTx`] and [`WriteTx`](crate::WriteTx);
/// bring it into scope with `use recfiles::prelude::*`.
pub trait FilesQuery: Snapshot {
    /// The location with that name.
    fn location(&self, name: &str) -> Result<Option<Location>> {
        with_view!(self, |v| {
            match v.locations()?.get(name)? {
                Some(g) => {
                    let r: LocationRow = dec(g.value(), "locations")?;
                    Ok(Some(Location {
                        name: name.to_string(),
                        uri: r.uri,
                        default: r.default,
                        created: r.created,
                        updated: r.updated,
                    }))
                }
                None => Ok(None),
            }
        })
    }

    /// Every location, by name.
    fn locations(&self) -> Result<Vec<Location>> {
        with_view!(self, |v| {
            let mut out = Vec::new();
            for e in v.locations()?.iter()? {
                let (k, val) = e?;
                let r: LocationRow = dec(val.value(), "locations")?;
                out.push(Location {
                    name: k.value().to_string(),
                    uri: r.uri,
                    default: r.default,
                    created: r.created,
                    updated: r.updated,
                });
            }
            Ok(out)
        })
    }

    /// The single default location (`None` if there is none or more than one).
    fn default_location(&self) -> Result<Option<Location>> {
        let defaults: Vec<Location> = self
            .locations()?
            .into_iter()
            .filter(|l| l.default)
            .collect();
        Ok(if defaults.len() == 1 {
            defaults.into_iter().next()
        } else {
            None
        })
    }

    /// A live (not soft-deleted) bucket.
    fn bucket(&self, id: BucketId) -> Result<Option<Bucket>> {
        Ok(self.bucket_with_deleted(id)?.filter(|b| !b.deleted))
    }

    /// A bucket, soft-deleted or not.
    fn bucket_with_deleted(&self, id: BucketId) -> Result<Option<Bucket>> {
        with_view!(self, |v| Ok(
            bucket_row(v, id.raw())?.map(|r| to_bucket(id.raw(), r))
        ))
    }

    /// Every live bucket, oldest first.
    fn buckets(&self) -> Result<Vec<Bucket>> {
        with_view!(self, |v| {
            let mut out = Vec::new();
            let deferred = v.deferred(Hot::Buckets);
            each_row(v.buckets()?, deferred, "buckets", |id, r: BucketRow| {
                if !r.deleted {
                    out.push(to_bucket(id, r));
                }
                Ok(())
            })?;
            Ok(out)
        })
    }

    /// The bucket's tags.
    fn bucket_tags(&self, id: BucketId) -> Result<BTreeMap<String, String>> {
        with_view!(self, |v| {
            let mut out = BTreeMap::new();
            for e in v.bucket_tags()?.range((id.raw(), "")..)? {
                let (k, val) = e?;
                let (b, key) = k.value();
                if b != id.raw() {
                    break;
                }
                out.insert(key.to_string(), val.value().to_string());
            }
            Ok(out)
        })
    }

    /// The live head of `key` (`None` if missing or deleted), as Invenio's `ObjectVersion.get`.
    fn object(&self, bucket: BucketId, key: &str) -> Result<Option<ObjectVersion>> {
        Ok(self.head(bucket, key)?.filter(|o| !o.is_delete_marker()))
    }

    /// The head of `key`, delete marker or not.
    fn head(&self, bucket: BucketId, key: &str) -> Result<Option<ObjectVersion>> {
        with_view!(self, |v| head_version(v, bucket.raw(), key))
    }

    /// Exactly that version, head or not, delete marker or not.
    fn version(&self, id: VersionId) -> Result<Option<ObjectVersion>> {
        with_view!(self, |v| version_by_id(v, id))
    }

    /// Invenio's `ObjectVersion.get(bucket, key, version_id)`: with a version id, exactly that
    /// version of `key` in `bucket` (older versions and delete markers included; `None` if the
    /// id names no version of that key); without one, the live head as [`Self::object`].
    fn object_version(
        &self,
        bucket: BucketId,
        key: &str,
        version: Option<VersionId>,
    ) -> Result<Option<ObjectVersion>> {
        match version {
            None => self.object(bucket, key),
            Some(id) => Ok(self
                .version(id)?
                .filter(|o| o.bucket == bucket && o.key == key)),
        }
    }

    /// The heads of a bucket in key order, filtered and paginated by `opts`.
    fn list_objects(&self, bucket: BucketId, opts: &ListOptions) -> Result<Vec<ObjectVersion>> {
        with_view!(self, |v| list_heads(v, bucket.raw(), opts))
    }

    /// Every version of `key`, newest first, delete markers included.
    fn object_versions(&self, bucket: BucketId, key: &str) -> Result<Vec<ObjectVersion>> {
        with_view!(self, |v| versions_of(v, bucket.raw(), key))
    }

    /// Every version in a bucket: key ascending, then newest first. Delete markers only when
    /// `with_markers`.
    fn bucket_versions(&self, bucket: BucketId, with_markers: bool) -> Result<Vec<ObjectVersion>> {
        with_view!(self, |v| bucket_versions(v, bucket.raw(), with_markers))
    }

    /// The tags of one version.
    fn object_tags(&self, version: VersionId) -> Result<BTreeMap<String, String>> {
        with_view!(self, |v| {
            let mut out = BTreeMap::new();
            for e in v.object_tags()?.range((version.raw(), "")..)? {
                let (k, val) = e?;
                let (id, key) = k.value();
                if id != version.raw() {
                    break;
                }
                out.insert(key.to_string(), val.value().to_string());
            }
            Ok(out)
        })
    }

    /// A file instance.
    fn file(&self, id: FileId) -> Result<Option<FileInstance>> {
        file_instance(self, id)
    }

    /// An open multipart upload.
    fn multipart(&self, id: UploadId) -> Result<Option<MultipartUpload>> {
        with_view!(self, |v| Ok(
            multipart_row(v, id.raw())?.map(|r| to_multipart(id.raw(), r))
        ))
    }

    /// The open multipart uploads of a bucket, oldest first.
    fn multipart_uploads(&self, bucket: BucketId) -> Result<Vec<MultipartUpload>> {
        with_view!(self, |v| {
            let mut out = Vec::new();
            for e in v.multipart()?.iter()? {
                let (k, val) = e?;
                let r: MultipartRow = dec(val.value(), "multipart")?;
                if r.bucket == bucket.raw() {
                    out.push(to_multipart(k.value(), r));
                }
            }
            Ok(out)
        })
    }

    /// The parts received so far for an upload, by part number.
    fn parts(&self, upload: UploadId) -> Result<Vec<Part>> {
        with_view!(self, |v| {
            let mp = multipart_row(v, upload.raw())?.ok_or(Error::MultipartNotFound { upload })?;
            let mut out = Vec::new();
            for e in v
                .parts()?
                .range((upload.raw(), 0)..=(upload.raw(), u32::MAX))?
            {
                let (k, val) = e?;
                let r: PartRow = dec(val.value(), "parts")?;
                out.push(Part::from_row(k.value().1, mp.part_size, &r));
            }
            Ok(out)
        })
    }
}

impl<T: Snapshot> FilesQuery for T {}

impl ReadTx {
    /// Opens a file's content for reading, on this snapshot.
    pub fn open_file(&self, id: FileId) -> Result<FileReader> {
        let row = get_file_row(&self.t, id)?.ok_or(Error::FileNotFound { file: id })?;
        if !row.readable {
            return Err(Error::FileUnreadable { file: id });
        }
        FileReader::new(self.txn(), id, row.size, row.blake3, &self.cfg)
    }

    /// Opens the content of the live head of `key`.
    pub fn open_object(&self, bucket: BucketId, key: &str) -> Result<FileReader> {
        let obj = self
            .object(bucket, key)?
            .ok_or_else(|| Error::ObjectNotFound {
                bucket,
                key: crate::error::shorten(key),
            })?;
        match obj.file_id {
            Some(f) => self.open_file(f),
            None => Err(Error::VersionNotFound {
                version: obj.version_id,
            }),
        }
    }

    /// Opens the content of exactly that version (a delete marker is "not found").
    pub fn open_version(&self, version: VersionId) -> Result<FileReader> {
        let obj = self
            .version(version)?
            .ok_or(Error::VersionNotFound { version })?;
        match obj.file_id {
            Some(f) => self.open_file(f),
            None => Err(Error::VersionNotFound { version }),
        }
    }
}
