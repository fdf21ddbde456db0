//! Single-call conveniences of the records-files layer on [`Store`].

use super::{FileList, FileObject, RecordFiles, RecordFilesQuery};
use crate::error::Result;
use crate::ids::{BucketId, RecordId};
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
}
