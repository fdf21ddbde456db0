//! Locations and buckets: create, lock, delete, remove, snapshot, sync, tags.

use super::object::check_writable;
use super::query::to_bucket;
use super::rows::*;
use super::{
    Bucket, FilesQuery, ListOptions, Location, ObjectVersion, STORAGE_CLASSES,
    validate_location_name, validate_tag,
};
use crate::content::release_file;
use crate::error::{Error, Result, shorten};
use crate::ids::{BucketId, FileId, UploadId};
use crate::storage::{WriteTx, dec, enc};
use redb::ReadableTable;

/// Settings of a new bucket. `Default` gives the default location, class `S`, no quota, no file
/// size limit, unlocked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketOptions {
    /// Location name; `None` for the default location.
    pub location: Option<String>,
    /// Storage class (`S` or `A`); `None` for `S`.
    pub storage_class: Option<String>,
    /// Quota in bytes (`None`/`Some(0)`: unlimited).
    pub quota_size: Option<u64>,
    /// Largest file in bytes (`None`: unlimited).
    pub max_file_size: Option<u64>,
    /// Create the bucket locked.
    pub locked: bool,
}

/// One change made by [`WriteTx::sync_bucket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncChange {
    /// The key was copied into the destination; the new version.
    Added(ObjectVersion),
    /// The key got a delete marker in the destination.
    Deleted(String),
}

impl WriteTx<'_> {
    /// Creates a location. With `default`, the previous default stops being one.
    pub fn create_location(&mut self, name: &str, uri: &str, default: bool) -> Result<Location> {
        validate_location_name(name)?;
        if self.t.locations.read()?.get(name)?.is_some() {
            return Err(Error::LocationExists {
                name: name.to_string(),
            });
        }
        let mut existing = Vec::new();
        for e in self.t.locations.read()?.iter()? {
            let (k, v) = e?;
            let r: LocationRow = dec(v.value(), "locations")?;
            existing.push((k.value().to_string(), r.uri));
        }
        let pairs = existing.iter().map(|(n, u)| (n.as_str(), u.as_str()));
        if super::overlapping_location(pairs, name, uri).is_some() {
            return Err(Error::InvalidOperation {
                reason: "Another location keeps its content under the same object-store prefix.",
            });
        }
        if default {
            let mut others = Vec::new();
            for e in self.t.locations.read()?.iter()? {
                let (k, v) = e?;
                let r: LocationRow = dec(v.value(), "locations")?;
                if r.default {
                    others.push((k.value().to_string(), r));
                }
            }
            for (k, mut r) in others {
                r.default = false;
                r.updated = self.now;
                self.t
                    .locations
                    .write()?
                    .insert(k.as_str(), enc(&r)?.as_slice())?;
            }
        }
        let row = LocationRow {
            uri: uri.to_string(),
            default,
            created: self.now,
            updated: self.now,
        };
        self.t
            .locations
            .write()?
            .insert(name, enc(&row)?.as_slice())?;
        Ok(Location {
            name: name.to_string(),
            uri: row.uri,
            default,
            created: self.now,
            updated: self.now,
        })
    }

    /// Creates a bucket.
    pub fn create_bucket(&mut self, opts: &BucketOptions) -> Result<Bucket> {
        self.create_bucket_with_id(BucketId::new(), opts, None)
    }

    /// Creates a bucket with a caller-chosen id (a record names its bucket in its body before
    /// the bucket exists, so the body can be validated before anything is written), belonging to
    /// `record` if given.
    pub(crate) fn create_bucket_with_id(
        &mut self,
        id: BucketId,
        opts: &BucketOptions,
        record: Option<u128>,
    ) -> Result<Bucket> {
        let location = match &opts.location {
            Some(name) => self
                .location(name)?
                .ok_or_else(|| Error::LocationNotFound {
                    name: shorten(name),
                })?,
            None => self
                .default_location()?
                .ok_or_else(|| Error::LocationNotFound {
                    name: "(default)".into(),
                })?,
        };
        let class = opts.storage_class.clone().unwrap_or_else(|| "S".into());
        if !STORAGE_CLASSES.iter().any(|(c, _)| *c == class) {
            return Err(Error::InvalidStorageClass {
                class: shorten(&class),
            });
        }
        let row = BucketRow {
            location: location.name,
            storage_class: class,
            size: 0,
            quota_size: opts.quota_size,
            max_file_size: opts.max_file_size,
            locked: opts.locked,
            deleted: false,
            created: self.now,
            updated: self.now,
            record,
        };
        self.put_bucket_row(id.raw(), &row)?;
        Ok(to_bucket(id.raw(), row))
    }

    pub(crate) fn put_bucket_row(&mut self, id: u128, row: &BucketRow) -> Result<()> {
        self.t.deferred_buckets.put(id, row.clone());
        Ok(())
    }

    /// The row of a bucket that exists (soft-deleted or not).
    pub(crate) fn any_bucket(&self, id: BucketId) -> Result<BucketRow> {
        bucket_row(&self.t, id.raw())?.ok_or(Error::BucketNotFound { bucket: id })
    }

    /// A bucket that may be modified: it exists, is not deleted, is not locked.
    pub(crate) fn writable_bucket(&self, id: BucketId) -> Result<Bucket> {
        Ok(self.writable_bucket_with_row(id)?.0)
    }

    /// [`Self::writable_bucket`], with the stored row too (for a caller that will update it).
    pub(crate) fn writable_bucket_with_row(&self, id: BucketId) -> Result<(Bucket, BucketRow)> {
        let row = self.any_bucket(id)?;
        let bucket = to_bucket(id.raw(), row.clone());
        check_writable(&bucket)?;
        Ok((bucket, row))
    }

    /// Locks or unlocks a bucket. Returns the updated bucket.
    pub fn set_bucket_locked(&mut self, id: BucketId, locked: bool) -> Result<Bucket> {
        let mut row = self.any_bucket(id)?;
        if row.deleted {
            return Err(Error::BucketDeleted { bucket: id });
        }
        row.locked = locked;
        row.updated = self.now;
        self.put_bucket_row(id.raw(), &row)?;
        Ok(to_bucket(id.raw(), row))
    }

    /// Changes a bucket's quota and maximum file size. Existing content is not re-checked.
    pub fn set_bucket_limits(
        &mut self,
        id: BucketId,
        quota_size: Option<u64>,
        max_file_size: Option<u64>,
    ) -> Result<Bucket> {
        let mut row = self.any_bucket(id)?;
        if row.deleted {
            return Err(Error::BucketDeleted { bucket: id });
        }
        row.quota_size = quota_size;
        row.max_file_size = max_file_size;
        row.updated = self.now;
        self.put_bucket_row(id.raw(), &row)?;
        Ok(to_bucket(id.raw(), row))
    }

    /// Soft-deletes a bucket: it disappears from `bucket()`/`buckets()`, its objects stay.
    /// Returns false if it does not exist or is already deleted (as Invenio's `Bucket.delete`).
    pub fn delete_bucket(&mut self, id: BucketId) -> Result<bool> {
        match bucket_row(&self.t, id.raw())? {
            Some(mut row) if !row.deleted => {
                row.deleted = true;
                row.updated = self.now;
                self.put_bucket_row(id.raw(), &row)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Brings back a soft-deleted bucket. Returns false if it was not deleted.
    pub fn undelete_bucket(&mut self, id: BucketId) -> Result<bool> {
        let mut row = self.any_bucket(id)?;
        if !row.deleted {
            return Ok(false);
        }
        row.deleted = false;
        row.updated = self.now;
        self.put_bucket_row(id.raw(), &row)?;
        Ok(true)
    }

    /// The rows of [`WriteTx::remove_bucket`]: every version, tag and open multipart upload
    /// of the bucket go, content no other bucket references is freed, and the bucket's row.
    /// A locked bucket is refused. Returns the record the bucket belonged to, whose link the
    /// caller drops.
    pub(crate) fn remove_bucket_rows(&mut self, id: BucketId) -> Result<Option<u128>> {
        let row = self.any_bucket(id)?;
        if row.locked {
            return Err(Error::BucketLocked { bucket: id });
        }
        let uploads: Vec<UploadId> = self.multipart_uploads(id)?.iter().map(|u| u.id).collect();
        for u in uploads {
            self.drop_multipart(u)?;
        }
        let raw = id.raw();
        let mut versions: Vec<(u128, Option<u128>)> = Vec::new();
        for e in self.t.objects.read()?.range((raw, "", 0)..)? {
            let (k, v) = e?;
            if k.value().0 != raw {
                break;
            }
            let r: ObjectRow = dec(v.value(), "objects")?;
            versions.push((r.version_id, r.file));
        }
        for (vid, file) in versions {
            self.t.versions.write()?.remove(vid)?;
            self.clear_object_tags(vid)?;
            if let Some(f) = file {
                release_file(&mut self.t, FileId::from_raw(f))?;
            }
        }
        // Only this bucket's rows: its keys sort between (raw, "") and (raw + 1, "").
        // Bucket ids are UUID v7, never u128::MAX; the fallback only keeps this total.
        match raw.checked_add(1) {
            Some(next) => {
                self.t
                    .objects
                    .write()?
                    .retain_in((raw, "", 0)..(next, "", 0), |_, _| false)?;
                self.t
                    .bucket_tags
                    .write()?
                    .retain_in((raw, "")..(next, ""), |_, _| false)?;
            }
            None => {
                self.t.objects.write()?.retain(|k, _| k.0 != raw)?;
                self.t.bucket_tags.write()?.retain(|k, _| k.0 != raw)?;
            }
        }
        self.t.deferred_buckets.forget(raw);
        self.t.buckets.write()?.remove(raw)?;
        Ok(row.record)
    }

    /// Copies every live head into a new bucket with the same location, class and limits
    /// (Invenio's `snapshot`; it also copies `max_file_size`, which Invenio forgets). The new
    /// bucket is locked if `lock` or if the source is.
    pub fn snapshot_bucket(&mut self, id: BucketId, lock: bool) -> Result<Bucket> {
        let src = self.any_bucket(id)?;
        if src.deleted {
            return Err(Error::InvalidOperation {
                reason: "Cannot make snapshot of a deleted bucket.",
            });
        }
        let new = self.create_bucket(&BucketOptions {
            location: Some(src.location.clone()),
            storage_class: Some(src.storage_class.clone()),
            quota_size: src.quota_size,
            max_file_size: src.max_file_size,
            locked: false,
        })?;
        let heads = self.list_objects(id, &ListOptions::default())?;
        for obj in heads {
            self.copy_into(&obj, new.id, &obj.key, false)?;
        }
        let mut row = self.any_bucket(new.id)?;
        row.locked = lock || src.locked;
        self.put_bucket_row(new.id.raw(), &row)?;
        Ok(to_bucket(new.id.raw(), row))
    }

    /// Makes `dest` hold the same live heads as `src` (Invenio's `Bucket.sync`): keys deleted in
    /// `src` are deleted in `dest`, new or different ones copied, identical ones left alone;
    /// with `delete_extras`, live keys of `dest` missing from `src` are deleted. Returns the
    /// changes in key order.
    pub fn sync_bucket(
        &mut self,
        src: BucketId,
        dest: BucketId,
        delete_extras: bool,
    ) -> Result<Vec<SyncChange>> {
        let s = self.any_bucket(src)?;
        if s.deleted {
            return Err(Error::InvalidOperation {
                reason: "Cannot sync a deleted bucket.",
            });
        }
        self.writable_bucket(dest)?;
        let all = ListOptions {
            with_deleted: true,
            ..ListOptions::default()
        };
        let src_heads = self.list_objects(src, &all)?;
        let mut changes = Vec::new();
        let mut src_keys = std::collections::BTreeSet::new();
        for obj in src_heads {
            src_keys.insert(obj.key.clone());
            let d = self.head(dest, &obj.key)?;
            if obj.is_delete_marker() {
                if d.as_ref().is_some_and(|d| !d.is_delete_marker()) {
                    self.delete_object(dest, &obj.key)?;
                    changes.push(SyncChange::Deleted(obj.key));
                }
                continue;
            }
            // Identical: the same file, or the same content (Invenio compares checksums; small
            // files with the same content are separate files, docs/FORMAT.md).
            let same = d.as_ref().is_some_and(|d| {
                d.file_id == obj.file_id
                    || (d.checksum.is_some() && d.checksum == obj.checksum && d.size == obj.size)
            });
            if !same {
                let added = self.copy_into(&obj, dest, &obj.key, true)?;
                changes.push(SyncChange::Added(added));
            }
        }
        if delete_extras {
            for obj in self.list_objects(dest, &ListOptions::default())? {
                if !src_keys.contains(&obj.key) {
                    self.delete_object(dest, &obj.key)?;
                    changes.push(SyncChange::Deleted(obj.key));
                }
            }
        }
        Ok(changes)
    }

    /// Sets (creates or replaces) a bucket tag.
    pub fn set_bucket_tag(&mut self, id: BucketId, key: &str, value: &str) -> Result<()> {
        validate_tag(key, "")?;
        if value.contains('\0') {
            return Err(Error::InvalidTag {
                key: shorten(key),
                reason: "tag contains a NUL character",
            });
        }
        self.any_bucket(id)?;
        self.t.bucket_tags.write()?.insert((id.raw(), key), value)?;
        Ok(())
    }

    /// Removes a bucket tag; a missing tag is not an error. Returns whether it existed.
    pub fn delete_bucket_tag(&mut self, id: BucketId, key: &str) -> Result<bool> {
        Ok(self
            .t
            .bucket_tags
            .write()?
            .remove((id.raw(), key))?
            .is_some())
    }
}
