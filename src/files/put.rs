//! Single-call conveniences of the files layer on [`Store`], including the staged put that
//! keeps large uploads in bounded memory and off the writer.

use super::object::{check_declared, check_writable, limits_for};
use super::{
    Bucket, BucketOptions, FilesQuery, ListOptions, ObjectVersion, PutOptions, SyncChange,
    validate_key,
};
use crate::content::{FileInstance, FileReader, Place, Staged};
use crate::error::{Error, Result};
use crate::ids::{BucketId, FileId, VersionId};
use crate::storage::{Store, WriteTx};
use std::collections::BTreeMap;
use std::io::{Cursor, Read};

impl Store {
    /// Creates a bucket.
    pub fn create_bucket(&self, opts: &BucketOptions) -> Result<Bucket> {
        self.write(|tx| tx.create_bucket(opts))
    }

    /// A live bucket.
    pub fn bucket(&self, id: BucketId) -> Result<Option<Bucket>> {
        self.read(|r| r.bucket(id))
    }

    /// Every live bucket.
    pub fn buckets(&self) -> Result<Vec<Bucket>> {
        self.read(|r| r.buckets())
    }

    /// Locks or unlocks a bucket.
    pub fn set_bucket_locked(&self, id: BucketId, locked: bool) -> Result<Bucket> {
        self.write(|tx| tx.set_bucket_locked(id, locked))
    }

    /// Soft-deletes a bucket; false if missing or already deleted.
    pub fn delete_bucket(&self, id: BucketId) -> Result<bool> {
        self.write(|tx| tx.delete_bucket(id))
    }

    /// Hard-removes a bucket and frees its unshared content.
    pub fn remove_bucket(&self, id: BucketId) -> Result<()> {
        self.write(|tx| tx.remove_bucket(id))
    }

    /// Snapshots a bucket (see [`crate::WriteTx::snapshot_bucket`]).
    pub fn snapshot_bucket(&self, id: BucketId, lock: bool) -> Result<Bucket> {
        self.write(|tx| tx.snapshot_bucket(id, lock))
    }

    /// Syncs `dest` with `src` (see [`crate::WriteTx::sync_bucket`]).
    pub fn sync_bucket(
        &self,
        src: BucketId,
        dest: BucketId,
        delete_extras: bool,
    ) -> Result<Vec<SyncChange>> {
        self.write(|tx| tx.sync_bucket(src, dest, delete_extras))
    }

    /// Stores `reader`'s content as the new head of `key`; the previous head is demoted.
    ///
    /// Content up to the staging batch size (16 MiB by default) is written in one transaction.
    /// Larger content is staged in batches first, so memory stays bounded and other writers are
    /// not held up; only the final, short transaction creates the version. A put that fails
    /// (limit, size mismatch, checksum mismatch, reader error or panic) leaves nothing behind.
    pub fn put_object(
        &self,
        bucket: BucketId,
        key: &str,
        reader: impl Read,
        opts: &PutOptions,
    ) -> Result<ObjectVersion> {
        self.put_object_then(bucket, key, reader, opts, |_, version| Ok(version))
    }

    /// [`Store::put_object`], then `then` in the same transaction as the new version (the
    /// records-files layer brings the record's `_files` up to date there).
    pub(crate) fn put_object_then<T>(
        &self,
        bucket: BucketId,
        key: &str,
        reader: impl Read,
        opts: &PutOptions,
        then: impl FnOnce(&mut WriteTx<'_>, ObjectVersion) -> Result<T>,
    ) -> Result<T> {
        validate_key(key, self.inner.cfg.max_key_len)?;
        // Refuse early what the final transaction would refuse anyway.
        let (limits, place, backend) = self.read(|r| {
            let b = r
                .bucket_with_deleted(bucket)?
                .ok_or(Error::BucketNotFound { bucket })?;
            check_writable(&b)?;
            let limits = limits_for(&b, opts.size)?;
            let (place, backend) = Place::of_location(&r.t, &r.cfg, &b.location)?;
            Ok((limits, place, backend))
        })?;
        // The content goes to its place first, outside any transaction (a location's object
        // under its content address, the store file's chunks staged in short transactions of
        // their own); then one short transaction adopts it. A failure before that commit
        // discards staged chunks (when `staged` drops) and leaves at most an unreferenced
        // object, which [`Store::gc_location`] collects.
        let mut reader = reader;
        let with_md5 = self.inner.cfg.md5 || opts.md5.is_some();
        let mut staged = place.stage(
            self,
            backend.as_deref(),
            &mut reader,
            limits,
            with_md5,
            &|digest| check_declared(digest, opts),
        )?;
        if let Staged::Held(head) = staged {
            // Small embedded content: written by the one transaction that creates the version.
            return self.write(|tx| {
                let version = tx.put_object(bucket, key, Cursor::new(head), opts)?;
                then(tx, version)
            });
        }
        let out = self.write(|tx| {
            let row = tx.writable_bucket(bucket)?;
            limits_for(&row, None)?.check_running(staged.size())?;
            let file = staged.adopt(tx, &row.storage_class)?;
            let version = tx.append_version(bucket, key, Some(file), opts.mimetype.clone())?;
            then(tx, version)
        })?;
        staged.committed();
        Ok(out)
    }

    /// The live head of `key`.
    pub fn object(&self, bucket: BucketId, key: &str) -> Result<Option<ObjectVersion>> {
        self.read(|r| r.object(bucket, key))
    }

    /// Exactly that version.
    pub fn version(&self, id: VersionId) -> Result<Option<ObjectVersion>> {
        self.read(|r| r.version(id))
    }

    /// Heads of a bucket in key order (see [`ListOptions`]).
    pub fn list_objects(&self, bucket: BucketId, opts: &ListOptions) -> Result<Vec<ObjectVersion>> {
        self.read(|r| r.list_objects(bucket, opts))
    }

    /// Every version of a key, newest first.
    pub fn object_versions(&self, bucket: BucketId, key: &str) -> Result<Vec<ObjectVersion>> {
        self.read(|r| r.object_versions(bucket, key))
    }

    /// Soft-deletes a key (a delete marker); `None` if it had no live head.
    pub fn delete_object(&self, bucket: BucketId, key: &str) -> Result<Option<ObjectVersion>> {
        self.write(|tx| tx.delete_object(bucket, key))
    }

    /// Hard-removes one version; the newest remaining one becomes head.
    pub fn remove_version(&self, version: VersionId) -> Result<()> {
        self.write(|tx| tx.remove_version(version))
    }

    /// Restores an old version as the new head.
    pub fn restore_version(&self, version: VersionId) -> Result<ObjectVersion> {
        self.write(|tx| tx.restore_version(version))
    }

    /// Copies a version to another bucket/key, sharing its file.
    pub fn copy_version(
        &self,
        version: VersionId,
        dest: BucketId,
        dest_key: &str,
    ) -> Result<ObjectVersion> {
        self.write(|tx| tx.copy_version(version, dest, dest_key))
    }

    /// Sets a tag of a version.
    pub fn set_object_tag(&self, version: VersionId, key: &str, value: &str) -> Result<()> {
        self.write(|tx| tx.set_object_tag(version, key, value))
    }

    /// The tags of a version.
    pub fn object_tags(&self, version: VersionId) -> Result<BTreeMap<String, String>> {
        self.read(|r| r.object_tags(version))
    }

    /// A file instance.
    pub fn file(&self, id: FileId) -> Result<Option<FileInstance>> {
        self.read(|r| r.file(id))
    }

    /// Opens the live head of `key` for reading (on its own snapshot).
    pub fn open_object(&self, bucket: BucketId, key: &str) -> Result<FileReader> {
        self.snapshot()?.open_object(bucket, key)
    }

    /// Opens exactly that version for reading.
    pub fn open_version(&self, version: VersionId) -> Result<FileReader> {
        self.snapshot()?.open_version(version)
    }

    /// Opens a file for reading.
    pub fn open_file(&self, id: FileId) -> Result<FileReader> {
        self.snapshot()?.open_file(id)
    }
}
