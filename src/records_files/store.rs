//! Single-call conveniences of the records-files layer on [`Store`].

use super::{FileList, FileObject, RecordFiles, RecordFilesQuery};
use crate::content::FileReader;
use crate::error::{Error, Result};
use crate::files::{ObjectVersion, PutOptions};
use crate::ids::{BucketId, RecordId, UploadId, VersionId};
use crate::records::{Pid, Record};
use crate::storage::Store;

impl Store {
    /// Changes a record's files in one transaction: `f` works on the files view, then the
    /// record (with its `_files` brought up to date) is committed as a new revision. If `f` or
    /// the commit fails, nothing is stored and `record` is left as it was.
    pub fn update_files<T>(
        &self,
        record: &mut Record,
        f: impl FnOnce(&mut RecordFiles<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        let mut copy = record.clone();
        let out = self.write(|tx| {
            let mut files = tx.record_files(&mut copy)?;
            let out = f(&mut files)?;
            files.commit()?;
            Ok(out)
        })?;
        *record = copy;
        Ok(out)
    }

    /// The record's files (`None` without a bucket or while the record is deleted).
    pub fn files_of(&self, record: &Record) -> Result<Option<FileList>> {
        self.read(|r| r.files_of(record))
    }

    /// Opens a record's file for reading (on its own snapshot): the version `file` was read
    /// at (see [`ReadTx::open_file_object`](crate::ReadTx::open_file_object)).
    pub fn open_file_object(&self, file: &FileObject) -> Result<FileReader> {
        self.snapshot()?.open_file_object(file)
    }

    /// A version of the record's file `key` (see
    /// [`RecordFilesQuery::record_file_version`]).
    pub fn record_file_version(
        &self,
        record: &Record,
        key: &str,
        version: Option<VersionId>,
    ) -> Result<Option<ObjectVersion>> {
        self.read(|r| r.record_file_version(record, key, version))
    }

    /// The bucket linked to a record.
    pub fn record_bucket(&self, id: RecordId) -> Result<Option<BucketId>> {
        self.read(|r| r.record_bucket(id))
    }

    /// The file `filename` of a record, or `None` (see
    /// [`RecordFilesQuery::record_file_factory`]).
    pub fn record_file_factory(
        &self,
        pid: Option<&Pid>,
        record: &Record,
        filename: &str,
    ) -> Result<Option<FileObject>> {
        self.read(|r| r.record_file_factory(pid, record, filename))
    }

    /// Stores a file of a record as [`RecordFiles::put_with`] does, but as a staged put: large
    /// content is written before the store's writer is taken, and the record's `_files` is
    /// brought up to date in the transaction that creates the version. Errors: `NoBucket`,
    /// the bucket's lock and limits, the declared size and checksums.
    pub fn put_record_file(
        &self,
        record: &mut Record,
        key: &str,
        reader: impl std::io::Read,
        opts: &PutOptions,
    ) -> Result<FileObject> {
        let bucket = self.record_bucket(record.id())?.ok_or(Error::NoBucket {
            record: record.id(),
        })?;
        let mut copy = record.clone();
        let out = self.put_object_then(bucket, key, reader, opts, |tx, version| {
            list_in_files(tx, &mut copy, version)
        })?;
        *record = copy;
        Ok(out)
    }

    /// Completes a multipart upload into a record's bucket and lists the new file in the
    /// record's `_files`, in one transaction (see [`Store::complete_multipart`]).
    pub fn complete_record_multipart(
        &self,
        record: &mut Record,
        upload: UploadId,
    ) -> Result<FileObject> {
        let mut copy = record.clone();
        let out = self
            .complete_multipart_then(upload, |tx, version| list_in_files(tx, &mut copy, version))?;
        *record = copy;
        Ok(out)
    }
}

/// Lists `version` (just created in `tx`) in `record`'s `_files` and commits the record.
pub(crate) fn list_in_files(
    tx: &mut crate::WriteTx<'_>,
    record: &mut Record,
    version: crate::ObjectVersion,
) -> Result<FileObject> {
    let mut files = tx.record_files(record)?;
    if files.bucket() != version.bucket {
        return Err(Error::InvalidOperation {
            reason: "The upload does not belong to the record's bucket.",
        });
    }
    let file = files.adopt_version(version);
    files.commit()?;
    Ok(file)
}
