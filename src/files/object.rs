//! Object versions: put, delete markers, remove, restore, copy, tags.

use super::query::version_by_id;
use super::rows::*;
use super::{Bucket, FilesQuery, ObjectVersion, validate_key, validate_tag};
use crate::content::write::Cap;
use crate::content::{FileRow, Place, StreamLimits, get_file_row, release_file, retain_file};
use crate::error::{Error, Result, shorten};
use crate::hooks::Event;
use crate::ids::{BucketId, FileId, VersionId};
use crate::storage::{WriteTx, enc};
use redb::ReadableTable;
use std::io::Read;

/// Filters and pagination of [`FilesQuery::list_objects`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with this prefix.
    pub prefix: Option<String>,
    /// Only keys strictly after this one (the last key of the previous page).
    pub start_after: Option<String>,
    /// At most this many objects (no limit when `None`).
    pub limit: Option<usize>,
    /// Include heads that are delete markers.
    pub with_deleted: bool,
}

/// Options of a put.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// The exact size the content must have (like HTTP Content-Length).
    pub size: Option<u64>,
    /// An explicit MIME type instead of the guess from the key.
    pub mimetype: Option<String>,
    /// The md5 the content must have, as `md5:<hex>` or bare hex (like HTTP Content-MD5).
    pub md5: Option<String>,
    /// The blake3 the content must have, as `blake3:<hex>` or bare hex.
    pub blake3: Option<String>,
}

/// The limits an upload into `bucket` must respect; a declared size over them is refused
/// before any byte is read (Invenio's early Content-Length check).
pub(crate) fn limits_for(bucket: &Bucket, declared: Option<u64>) -> Result<StreamLimits> {
    let cap = bucket.size_limit().map(|(kind, bytes)| Cap {
        bucket: bucket.id,
        kind,
        bytes,
    });
    if let (Some(c), Some(d)) = (cap, declared)
        && d > c.bytes
    {
        return Err(Error::FileSize {
            bucket: bucket.id,
            limit: c.kind,
            limit_bytes: c.bytes,
            attempted: d,
        });
    }
    Ok(StreamLimits { declared, cap })
}

/// Refuses writes to a deleted or locked bucket.
pub(crate) fn check_writable(bucket: &Bucket) -> Result<()> {
    if bucket.deleted {
        Err(Error::BucketDeleted { bucket: bucket.id })
    } else if bucket.locked {
        Err(Error::BucketLocked { bucket: bucket.id })
    } else {
        Ok(())
    }
}

fn strip_algo<'a>(s: &'a str, algo: &str) -> &'a str {
    s.strip_prefix(algo)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(s)
}

/// Checks caller-declared checksums against the digests of the content received.
pub(crate) fn check_declared(
    (blake3, md5): &crate::content::ContentDigest,
    opts: &PutOptions,
) -> Result<()> {
    if let Some(want) = &opts.md5 {
        let have = md5.map(|m| crate::content::hex(&m)).unwrap_or_default();
        if !strip_algo(want, "md5").eq_ignore_ascii_case(&have) {
            return Err(Error::ChecksumMismatch {
                expected: shorten(want),
                actual: format!("md5:{have}"),
            });
        }
    }
    if let Some(want) = &opts.blake3 {
        let have = crate::content::hex(blake3);
        if !strip_algo(want, "blake3").eq_ignore_ascii_case(&have) {
            return Err(Error::ChecksumMismatch {
                expected: shorten(want),
                actual: format!("blake3:{have}"),
            });
        }
    }
    Ok(())
}

impl WriteTx<'_> {
    pub(crate) fn add_bucket_size(&mut self, bucket: BucketId, delta: i128) -> Result<()> {
        let row = self.any_bucket(bucket)?;
        self.add_bucket_size_to(bucket, row, delta)
    }

    /// [`Self::add_bucket_size`] for a caller that has just read the bucket's row.
    fn add_bucket_size_to(
        &mut self,
        bucket: BucketId,
        mut row: BucketRow,
        delta: i128,
    ) -> Result<()> {
        let size = i128::from(row.size) + delta;
        row.size = u64::try_from(size)
            .map_err(|_| Error::corrupt(format!("bucket {bucket} size would become {size}")))?;
        row.updated = self.now;
        self.put_bucket_row(bucket.raw(), &row)
    }

    /// Appends a new version as the head of (bucket, key), demoting the previous head. A file
    /// comes with the version's reference already taken (and its row as stored); the bucket
    /// grows by its size.
    pub(crate) fn append_version(
        &mut self,
        bucket: BucketId,
        key: &str,
        retained: Option<(FileId, FileRow)>,
        mimetype: Option<String>,
    ) -> Result<ObjectVersion> {
        self.append_version_in(bucket, None, key, retained, mimetype)
    }

    /// [`Self::append_version`], given the bucket's row when the caller has just read it (and
    /// changed nothing in the transaction since), so growing the bucket need not read it again.
    fn append_version_in(
        &mut self,
        bucket: BucketId,
        bucket_row: Option<BucketRow>,
        key: &str,
        retained: Option<(FileId, FileRow)>,
        mimetype: Option<String>,
    ) -> Result<ObjectVersion> {
        let file = retained.as_ref().map(|(f, _)| *f);
        let retained = retained.map(|(_, row)| row);
        let b = bucket.raw();
        let seq = head_seq(&self.t, b, key)?.map_or(0, |head| head + 1);
        let vid = VersionId::new();
        let row = ObjectRow {
            version_id: vid.raw(),
            file: file.map(|f| f.raw()),
            content: retained.as_ref().map(FileContent::of),
            mimetype,
            created: self.now,
            updated: self.now,
        };
        self.t
            .objects
            .write()?
            .insert((b, key, seq), enc(&row)?.as_slice())?;
        let loc = VersionLoc {
            bucket: b,
            key: key.to_string(),
            seq,
        };
        self.t
            .versions
            .write()?
            .insert(vid.raw(), enc(&loc)?.as_slice())?;
        let (mut size, mut checksum) = (None, None);
        if let Some(fr) = retained {
            match bucket_row {
                Some(row) => self.add_bucket_size_to(bucket, row, i128::from(fr.size))?,
                None => self.add_bucket_size(bucket, i128::from(fr.size))?,
            }
            size = Some(fr.size);
            checksum = Some(crate::content::blake3_text(&fr.blake3));
        }
        let version = ObjectVersion {
            bucket,
            key: key.to_string(),
            version_id: vid,
            file_id: file,
            size,
            checksum,
            mimetype: row.mimetype.unwrap_or_else(|| super::guess_mimetype(key)),
            is_head: true,
            created: self.now,
            updated: self.now,
        };
        if file.is_some() {
            self.after_hooks(|| Event::VersionCreated {
                version: version.clone(),
            });
        }
        Ok(version)
    }

    /// Streams content into a file inside this transaction, under the bucket's limits and the
    /// caller's declared size and checksums.
    fn store_stream(
        &mut self,
        bucket: BucketId,
        reader: &mut dyn Read,
        opts: &PutOptions,
    ) -> Result<(FileId, FileRow, BucketRow)> {
        let (row, stored) = self.writable_bucket_with_row(bucket)?;
        let limits = limits_for(&row, opts.size)?;
        let (place, backend) = Place::of_location(&self.t, self.cfg, &row.location)?;
        let (file, file_row) = place.write_in(
            self,
            backend.as_deref(),
            reader,
            limits,
            self.cfg.md5 || opts.md5.is_some(),
            &|digest| check_declared(digest, opts),
            &row.storage_class,
        )?;
        Ok((file, file_row, stored))
    }

    /// Stores `reader`'s bytes as the new head of `key` inside this transaction. The content
    /// is part of the transaction: it commits or rolls back with everything else. (For very
    /// large content prefer [`crate::Store::put_object`], which stages it in bounded batches.)
    pub fn put_object(
        &mut self,
        bucket: BucketId,
        key: &str,
        mut reader: impl Read,
        opts: &PutOptions,
    ) -> Result<ObjectVersion> {
        validate_key(key, self.cfg.max_key_len)?;
        let (file, file_row, bucket_row) = self.store_stream(bucket, &mut reader, opts)?;
        self.append_version_in(
            bucket,
            Some(bucket_row),
            key,
            Some((file, file_row)),
            opts.mimetype.clone(),
        )
    }

    /// Creates a version without content: a new head that is a delete marker until content is
    /// set on it with [`Self::set_version_content`] (Invenio's `ObjectVersion.create` without a
    /// stream).
    pub fn create_version(&mut self, bucket: BucketId, key: &str) -> Result<ObjectVersion> {
        validate_key(key, self.cfg.max_key_len)?;
        self.writable_bucket(bucket)?;
        self.append_version(bucket, key, None, None)
    }

    /// Sets the content of a version that has none (`FileAlreadySet` otherwise).
    pub fn set_version_content(
        &mut self,
        version: VersionId,
        mut reader: impl Read,
        opts: &PutOptions,
    ) -> Result<ObjectVersion> {
        let loc = version_loc(&self.t, version.raw())?.ok_or(Error::VersionNotFound { version })?;
        let obj = object_row(&self.t, loc.bucket, &loc.key, loc.seq)?
            .ok_or(Error::VersionNotFound { version })?;
        if obj.file.is_some() {
            return Err(Error::FileAlreadySet { version });
        }
        let bucket = BucketId::from_raw(loc.bucket);
        let (file, row, _) = self.store_stream(bucket, &mut reader, opts)?;
        self.attach_file(version, &loc, obj, file, row)
    }

    /// Points a version that has no content at an existing file (`FileAlreadySet` otherwise).
    pub fn set_version_file(&mut self, version: VersionId, file: FileId) -> Result<ObjectVersion> {
        let loc = version_loc(&self.t, version.raw())?.ok_or(Error::VersionNotFound { version })?;
        let obj = object_row(&self.t, loc.bucket, &loc.key, loc.seq)?
            .ok_or(Error::VersionNotFound { version })?;
        if obj.file.is_some() {
            return Err(Error::FileAlreadySet { version });
        }
        let bucket = BucketId::from_raw(loc.bucket);
        let row = self.writable_bucket(bucket)?;
        let size = get_file_row(&self.t, file)?
            .ok_or(Error::FileNotFound { file })?
            .size;
        let limits = limits_for(&row, None)?;
        limits.check_running(size)?;
        let row = retain_file(&mut self.t, file, self.now)?;
        self.attach_file(version, &loc, obj, file, row)
    }

    fn attach_file(
        &mut self,
        version: VersionId,
        loc: &VersionLoc,
        mut obj: ObjectRow,
        file: FileId,
        fr: FileRow,
    ) -> Result<ObjectVersion> {
        obj.file = Some(file.raw());
        obj.content = Some(FileContent::of(&fr));
        obj.updated = self.now;
        self.t.objects.write()?.insert(
            (loc.bucket, loc.key.as_str(), loc.seq),
            enc(&obj)?.as_slice(),
        )?;
        self.add_bucket_size(BucketId::from_raw(loc.bucket), i128::from(fr.size))?;
        let version = self
            .version(version)?
            .ok_or(Error::VersionNotFound { version })?;
        self.after_hooks(|| Event::VersionCreated {
            version: version.clone(),
        });
        Ok(version)
    }

    /// Soft-deletes `key`: a delete marker becomes its head. Returns the marker, or `None` if
    /// the key has no live head (missing or already deleted), as Invenio does.
    pub fn delete_object(&mut self, bucket: BucketId, key: &str) -> Result<Option<ObjectVersion>> {
        self.writable_bucket(bucket)?;
        match self.object(bucket, key)? {
            Some(_) => {
                let marker = self.append_version(bucket, key, None, None)?;
                self.after_hooks(|| Event::ObjectDeleted {
                    marker: marker.clone(),
                });
                Ok(Some(marker))
            }
            None => Ok(None),
        }
    }

    /// Hard-removes one version. If it was the head, the newest remaining version (possibly a
    /// delete marker) becomes the head, so removing a head delete marker undeletes the key.
    /// Content no longer referenced is freed.
    pub fn remove_version(&mut self, version: VersionId) -> Result<()> {
        let loc = version_loc(&self.t, version.raw())?.ok_or(Error::VersionNotFound { version })?;
        let bucket = BucketId::from_raw(loc.bucket);
        self.writable_bucket(bucket)?;
        let (b, key) = (loc.bucket, loc.key.as_str());
        let obj =
            object_row(&self.t, b, key, loc.seq)?.ok_or(Error::VersionNotFound { version })?;
        let removed = match self.cfg.hooks.has_after() {
            true => version_by_id(&self.t, version)?,
            false => None,
        };
        self.t.objects.write()?.remove((b, key, loc.seq))?;
        self.t.versions.write()?.remove(version.raw())?;
        self.clear_object_tags(version.raw())?;
        // The head is the newest remaining version (found from `objects`, nothing to update).
        if let Some(f) = obj.file {
            let f = FileId::from_raw(f);
            let size = get_file_row(&self.t, f)?.map(|r| r.size).unwrap_or(0);
            self.add_bucket_size(bucket, -i128::from(size))?;
            release_file(&mut self.t, f)?;
        }
        if let Some(version) = removed {
            self.after_hooks(|| Event::VersionRemoved { version });
        }
        Ok(())
    }

    /// Makes an old version the head again, as a new version sharing its file and tags.
    pub fn restore_version(&mut self, version: VersionId) -> Result<ObjectVersion> {
        let obj = version_by_id(&self.t, version)?.ok_or(Error::VersionNotFound { version })?;
        if obj.is_head {
            return Err(Error::InvalidOperation {
                reason: "Cannot restore latest version.",
            });
        }
        if obj.is_delete_marker() {
            return Err(Error::InvalidOperation {
                reason: "Cannot copy a delete marker.",
            });
        }
        let (bucket, key) = (obj.bucket, obj.key.clone());
        self.copy_into(&obj, bucket, &key, true)
    }

    /// Copies a version to another bucket and/or key as a new head that shares the file (no
    /// byte is copied) and the tags.
    pub fn copy_version(
        &mut self,
        version: VersionId,
        dest: BucketId,
        dest_key: &str,
    ) -> Result<ObjectVersion> {
        let obj = version_by_id(&self.t, version)?.ok_or(Error::VersionNotFound { version })?;
        if obj.is_delete_marker() {
            return Err(Error::InvalidOperation {
                reason: "Cannot copy a delete marker.",
            });
        }
        self.copy_into(&obj, dest, dest_key, true)
    }

    pub(crate) fn copy_into(
        &mut self,
        obj: &ObjectVersion,
        dest: BucketId,
        key: &str,
        check_limits: bool,
    ) -> Result<ObjectVersion> {
        validate_key(key, self.cfg.max_key_len)?;
        let row = self.writable_bucket(dest)?;
        if check_limits {
            let limits = limits_for(&row, None)?;
            limits.check_running(obj.size.unwrap_or(0))?;
        }
        let explicit = {
            let loc =
                version_loc(&self.t, obj.version_id.raw())?.ok_or(Error::VersionNotFound {
                    version: obj.version_id,
                })?;
            object_row(&self.t, loc.bucket, &loc.key, loc.seq)?.and_then(|r| r.mimetype)
        };
        let file = match obj.file_id {
            Some(f) => Some((f, retain_file(&mut self.t, f, self.now)?)),
            None => None,
        };
        let new = self.append_version(dest, key, file, explicit)?;
        for (k, v) in self.object_tags(obj.version_id)? {
            self.t
                .object_tags
                .write()?
                .insert((new.version_id.raw(), k.as_str()), v.as_str())?;
        }
        Ok(new)
    }

    /// Sets (creates or replaces) a tag of one version. Keys are 1 to 255 characters, values
    /// at most 255.
    pub fn set_object_tag(&mut self, version: VersionId, key: &str, value: &str) -> Result<()> {
        validate_tag(key, value)?;
        if version_loc(&self.t, version.raw())?.is_none() {
            return Err(Error::VersionNotFound { version });
        }
        self.t
            .object_tags
            .write()?
            .insert((version.raw(), key), value)?;
        Ok(())
    }

    /// Removes one tag of a version; returns whether it existed.
    pub fn delete_object_tag(&mut self, version: VersionId, key: &str) -> Result<bool> {
        Ok(self
            .t
            .object_tags
            .write()?
            .remove((version.raw(), key))?
            .is_some())
    }

    pub(crate) fn clear_object_tags(&mut self, version: u128) -> Result<()> {
        let mut keys = Vec::new();
        for e in self.t.object_tags.read()?.range((version, "")..)? {
            let (k, _) = e?;
            let (v, key) = k.value();
            if v != version {
                break;
            }
            keys.push(key.to_string());
        }
        for k in keys {
            self.t.object_tags.write()?.remove((version, k.as_str()))?;
        }
        Ok(())
    }
}
