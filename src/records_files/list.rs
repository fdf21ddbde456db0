//! Reading a record's files: the ordering rule, the read-only [`FileList`] and
//! `record_file_factory`.

use super::FileObject;
use super::files_map::FilesMap;
use crate::content::FileReader;
use crate::error::{Error, Result};
use crate::files::{FilesQuery, ListOptions, ObjectVersion, for_each_head};
use crate::ids::{BucketId, RecordId, VersionId};
use crate::records::{Pid, Record, RecordsQuery, linked_bucket};
use crate::storage::{ReadTx, Snapshot, with_view};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The live heads of `bucket`, those named in `keys` first in that order, then the rest by
/// key (Invenio's `sorted_files_from_bucket`).
pub(crate) fn sorted_heads<S: Snapshot>(
    s: &S,
    bucket: BucketId,
    keys: &[&str],
) -> Result<Vec<ObjectVersion>> {
    let mut heads = s.list_objects(bucket, &ListOptions::default())?;
    let mut rank: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        rank.entry(k).or_insert(i);
    }
    // Stable: keys not listed stay in key order after the listed ones.
    heads.sort_by_key(|o| rank.get(o.key.as_str()).copied().unwrap_or(keys.len()));
    Ok(heads)
}

/// The live heads of a bucket as files, in the order of the body's `_files` (the others after
/// them, by key), each with the metadata of its `_files` entry.
pub(crate) fn file_objects<S: Snapshot>(
    s: &S,
    bucket: BucketId,
    body: &Map<String, Value>,
) -> Result<Vec<FileObject>> {
    let listed = FilesMap::by_key(body);
    // Heads come in key order too: one merge pass finds each head's entry.
    let mut entries = listed.iter().peekable();
    let mut files = Vec::with_capacity(listed.len());
    // Each file's place in `_files`; past the end for files it does not list.
    let mut places = Vec::with_capacity(listed.len());
    with_view!(s, |v| for_each_head(
        v,
        bucket.raw(),
        &ListOptions::default(),
        |o| {
            while entries.next_if(|e| e.0 < o.key.as_str()).is_some() {}
            let (at, file) = match entries.next_if(|e| e.0 == o.key.as_str()) {
                Some(&(_, at, entry)) => (at, FileObject::with_entry(o, entry)),
                None => (usize::MAX, FileObject::new(o, Map::new())),
            };
            places.push(at);
            files.push(file);
            Ok(())
        }
    ))?;
    // Usually `_files` already lists every file in key order and nothing moves.
    if !places.is_sorted() {
        let mut ranked: Vec<(usize, FileObject)> = places.into_iter().zip(files).collect();
        // Stable: keys not listed stay in key order after the listed ones.
        ranked.sort_by_key(|(at, _)| *at);
        files = ranked.into_iter().map(|(_, f)| f).collect();
    }
    Ok(files)
}

/// A record's files as of one snapshot (a read-only files view): live heads of its bucket in
/// `_files` order, then the others by key.
#[derive(Debug, Clone, PartialEq)]
pub struct FileList {
    bucket: BucketId,
    files: Vec<FileObject>,
}

impl FileList {
    /// The record's bucket.
    pub fn bucket(&self) -> BucketId {
        self.bucket
    }

    /// Number of files (live heads in the bucket).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether a file has that key.
    pub fn contains(&self, key: &str) -> bool {
        self.files.iter().any(|f| f.key() == key)
    }

    /// The file with that key (`ObjectNotFound` otherwise).
    pub fn get(&self, key: &str) -> Result<&FileObject> {
        self.files
            .iter()
            .find(|f| f.key() == key)
            .ok_or_else(|| Error::ObjectNotFound {
                bucket: self.bucket,
                key: crate::error::shorten(key),
            })
    }

    /// The files in order.
    pub fn iter(&self) -> std::slice::Iter<'_, FileObject> {
        self.files.iter()
    }

    /// The keys in order.
    pub fn keys(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.key()).collect()
    }

    /// Every file's dump, in order (what `_files` holds after a flush).
    pub fn dumps(&self) -> Vec<Map<String, Value>> {
        self.files.iter().map(FileObject::dumps).collect()
    }
}

impl<'a> IntoIterator for &'a FileList {
    type Item = &'a FileObject;
    type IntoIter = std::slice::Iter<'a, FileObject>;
    fn into_iter(self) -> Self::IntoIter {
        self.files.iter()
    }
}

impl IntoIterator for FileList {
    type Item = FileObject;
    type IntoIter = std::vec::IntoIter<FileObject>;
    fn into_iter(self) -> Self::IntoIter {
        self.files.into_iter()
    }
}

/// Queries of the records-files layer. Implemented for [`ReadTx`](crate::ReadTx) and
/// [`WriteTx`](crate::WriteTx).
pub trait RecordFilesQuery: Snapshot + Sized {
    /// The bucket linked to a record.
    fn record_bucket(&self, id: RecordId) -> Result<Option<BucketId>> {
        with_view!(self, |v| linked_bucket(v, id))
    }

    /// The record's files, with the metadata `record`'s `_files` holds; `None` when the record
    /// has no bucket or its bucket is soft-deleted (as it is while the record is).
    fn files_of(&self, record: &Record) -> Result<Option<FileList>> {
        let Some(bucket) = self.record_bucket(record.id())? else {
            return Ok(None);
        };
        if self.bucket(bucket)?.is_none() {
            return Ok(None);
        }
        Ok(Some(FileList {
            bucket,
            files: file_objects(self, bucket, record.body())?,
        }))
    }

    /// The file `filename` of a record, or `None` when the record is gone or deleted, has no
    /// bucket, has no files, or has no such file (Invenio's `record_file_factory`; `pid` is
    /// not used).
    fn record_file_factory(
        &self,
        pid: Option<&Pid>,
        record: &Record,
        filename: &str,
    ) -> Result<Option<FileObject>> {
        let _ = pid;
        if self.record(record.id())?.is_none() {
            return Ok(None);
        }
        let Some(files) = self.files_of(record)? else {
            return Ok(None);
        };
        Ok(files.into_iter().find(|f| f.key() == filename))
    }

    /// A version of the record's file `key` (Invenio's `FileObject.get_version`, here on any
    /// snapshot): with a version id, exactly that version of `key` in the record's bucket
    /// (older versions and delete markers included); without one, the live head. `None` when
    /// there is no such version, or the record has no bucket.
    fn record_file_version(
        &self,
        record: &Record,
        key: &str,
        version: Option<VersionId>,
    ) -> Result<Option<ObjectVersion>> {
        match self.record_bucket(record.id())? {
            Some(bucket) => self.object_version(bucket, key, version),
            None => Ok(None),
        }
    }

    /// The live heads of `bucket`: those in `keys` first in that order, then the rest by key.
    fn sorted_files_from_bucket(
        &self,
        bucket: BucketId,
        keys: &[&str],
    ) -> Result<Vec<ObjectVersion>> {
        sorted_heads(self, bucket, keys)
    }
}

impl<T: Snapshot> RecordFilesQuery for T {}

impl ReadTx {
    /// Opens a record's file for reading on this snapshot: exactly the version `file` was
    /// read at (its content is what `file`'s size and checksum describe, even if the key has a
    /// newer head since). `VersionNotFound` if that version has been removed.
    pub fn open_file_object(&self, file: &FileObject) -> Result<FileReader> {
        self.open_version(file.version_id())
    }
}
