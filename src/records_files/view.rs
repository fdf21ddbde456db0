//! [`RecordFiles`]: a record's files view inside a write transaction (Invenio-Records-Files'
//! `FilesIterator`).

use super::FileObject;
use super::files_map::FilesMap;
use super::list::file_objects;
use crate::error::{Error, Result, shorten};
use crate::files::{FilesQuery, ListOptions, ObjectVersion, PutOptions};
use crate::ids::{BucketId, RecordId, VersionId};
use crate::records::{FILES_FIELD, Record, RecordsQuery, record_row};
use crate::storage::WriteTx;
use redb::ReadableTable;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Read;

/// A record's files, to read and change inside one write transaction.
///
/// The files are the live heads of the record's bucket; their order and extra metadata live
/// in the record body's `_files` list, which every change here brings up to date in the
/// `record` value (Invenio's `flush`). The record itself is stored by
/// [`commit`](RecordFiles::commit) (or [`WriteTx::commit_record`] after dropping the view);
/// [`Store::update_files`](crate::Store::update_files) does all of it in one call.
///
/// Differences from Invenio, on purpose: a re-upload keeps the file's metadata, and
/// [`sort_by`](RecordFiles::sort_by) keeps the metadata of files it does not list.
pub struct RecordFiles<'a, 't> {
    tx: &'a mut WriteTx<'t>,
    record: &'a mut Record,
    bucket: BucketId,
    /// `_files` is known to be what a flush would write: a flush made it so, or the view
    /// opened on a record without `_files` over an empty bucket. Every change the view makes
    /// keeps it so (a put updates its entry as a flush would; the other changes flush), and
    /// nothing else can change the bucket or the body while the view borrows both, so
    /// [`RecordFiles::commit`] then has no need to list the bucket again.
    synced: bool,
}

impl<'t> WriteTx<'t> {
    /// The files view of `record`. Errors: `RecordNotFound`, `RecordDeleted`, and `NoBucket`
    /// for a record created without a bucket.
    pub fn record_files<'a>(&'a mut self, record: &'a mut Record) -> Result<RecordFiles<'a, 't>> {
        let row = record_row(&self.t, record.id())?.ok_or(Error::RecordNotFound {
            record: record.id(),
        })?;
        if row.deleted {
            return Err(Error::RecordDeleted {
                record: record.id(),
            });
        }
        let bucket = row.bucket.map(BucketId::from_raw).ok_or(Error::NoBucket {
            record: record.id(),
        })?;
        let synced = !record.body().contains_key(FILES_FIELD) && bucket_is_empty(self, bucket)?;
        Ok(RecordFiles {
            tx: self,
            record,
            bucket,
            synced,
        })
    }
}

impl WriteTx<'_> {
    /// Makes the record what it was at `revision`, as a new revision, and returns it. Works on
    /// a soft-deleted record (its bucket comes back when the revision has a body). As in
    /// Invenio the old body is not validated again.
    ///
    /// The files stay as they are (a revision holds a body, not files), and a reverted body
    /// that has `_files` gets it brought up to date with them, as a flush would: the files in
    /// the order and with the metadata that revision's `_files` gave them, the others after
    /// them, and none that is gone. So `_files` never lists files the record does not have.
    /// (A revision without `_files` stays without it.)
    pub fn revert_record(&mut self, id: RecordId, revision: u64) -> Result<Record> {
        self.revert_record_fixing(
            id,
            revision,
            |tx, bucket, body| {
                if body.contains_key(FILES_FIELD) {
                    let files = file_objects(tx, bucket, body)?
                        .into_iter()
                        .map(|f| Value::Object(f.into_data()))
                        .collect();
                    body.insert(FILES_FIELD.into(), Value::Array(files));
                }
                Ok(())
            },
            super::lifecycle::follow_record,
        )
    }
}

impl RecordFiles<'_, '_> {
    /// The record's bucket.
    pub fn bucket(&self) -> BucketId {
        self.bucket
    }

    /// The record as changed so far (its `_files` is kept up to date).
    pub fn record(&self) -> &Record {
        self.record
    }

    fn map(&self) -> FilesMap {
        FilesMap::from_body(self.record.body())
    }

    fn not_found(&self, key: &str) -> Error {
        Error::ObjectNotFound {
            bucket: self.bucket,
            key: shorten(key),
        }
    }

    /// The files in order: `_files` order first, then the others by key.
    pub fn list(&self) -> Result<Vec<FileObject>> {
        file_objects(&*self.tx, self.bucket, self.record.body())
    }

    /// Number of files (live heads in the bucket, whatever `_files` says).
    pub fn len(&self) -> Result<usize> {
        Ok(self.list()?.len())
    }

    /// Whether the bucket has no live file.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Whether a live file has that key.
    pub fn contains(&self, key: &str) -> Result<bool> {
        Ok(self.tx.object(self.bucket, key)?.is_some())
    }

    /// The file with that key (`ObjectNotFound` otherwise).
    pub fn get(&self, key: &str) -> Result<FileObject> {
        let obj = self
            .tx
            .object(self.bucket, key)?
            .ok_or_else(|| self.not_found(key))?;
        let entry = FilesMap::entry_in(self.record.body(), key).unwrap_or_default();
        Ok(FileObject::new(obj, entry))
    }

    /// A version of the file `key`: with a version id, exactly that version (older versions
    /// and delete markers included), without one the live head; `None` if there is no such
    /// version of that key in the record's bucket. Invenio's `FileObject.get_version`; a
    /// [`FileObject`] here is a plain value without a transaction, so the view answers.
    pub fn get_version(
        &self,
        key: &str,
        version: Option<VersionId>,
    ) -> Result<Option<ObjectVersion>> {
        self.tx.object_version(self.bucket, key, version)
    }

    /// The keys of `_files`, in order (not the bucket's content).
    pub fn keys(&self) -> Vec<String> {
        self.map().keys().into_iter().map(str::to_string).collect()
    }

    /// Every file's dump, in order.
    pub fn dumps(&self) -> Result<Vec<Map<String, Value>>> {
        Ok(self.list()?.iter().map(FileObject::dumps).collect())
    }

    /// Writes the dumps into the record's `_files` (only if there is a file or the record
    /// already has `_files`, so a record that never had files gets no `_files`).
    pub fn flush(&mut self) -> Result<()> {
        let files: Vec<Value> = self
            .list()?
            .into_iter()
            .map(|f| Value::Object(f.into_data()))
            .collect();
        let body = self.record.body_mut();
        if !files.is_empty() || body.contains_key(FILES_FIELD) {
            body.insert(FILES_FIELD.into(), Value::Array(files));
        }
        self.synced = true;
        Ok(())
    }

    fn store_map(&mut self, map: FilesMap) -> Result<()> {
        let entries: Vec<Value> = map
            .keys()
            .iter()
            .filter_map(|k| map.get(k).cloned().map(Value::Object))
            .collect();
        self.record
            .body_mut()
            .insert(FILES_FIELD.into(), Value::Array(entries));
        self.flush()
    }

    /// Stores `reader`'s content as a new version of `key`. A file already there keeps its
    /// place and its metadata. Errors: `BucketLocked`, `BucketDeleted`, the bucket's limits.
    pub fn put(&mut self, key: &str, reader: impl Read) -> Result<FileObject> {
        self.put_with(key, reader, &PutOptions::default())
    }

    /// [`put`](Self::put) with a declared size, MIME type or checksums.
    pub fn put_with(
        &mut self,
        key: &str,
        reader: impl Read,
        opts: &PutOptions,
    ) -> Result<FileObject> {
        let obj = self.tx.put_object(self.bucket, key, reader, opts)?;
        Ok(self.upsert_entry(obj, None))
    }

    /// Makes an earlier version of one of the record's files its head again (a new version
    /// sharing that version's content, as [`WriteTx::restore_version`] does) and brings
    /// `_files` up to date with it, so the record lists the restored file. A file still live
    /// keeps its place and metadata, as on a re-upload; a file deleted since gets back the
    /// metadata `_files` held for the restored version (or, failing that, the newest
    /// metadata it held for the key) in the record's history, and is placed last.
    ///
    /// Errors: `VersionNotFound`; `RecordFile` for a version of another bucket;
    /// `InvalidOperation` for the head itself or a delete marker; the bucket's lock and limits.
    pub fn restore(&mut self, version: VersionId) -> Result<FileObject> {
        let old = self
            .tx
            .version(version)?
            .ok_or(Error::VersionNotFound { version })?;
        if old.bucket != self.bucket {
            return Err(Error::RecordFile {
                record: self.record.id(),
                key: shorten(&old.key),
                reason: "the version is not in the record's bucket",
            });
        }
        let restored = self.tx.restore_version(version)?;
        let metadata = match FilesMap::entry_in(self.record.body(), &restored.key) {
            Some(_) => None,
            None => self.metadata_in_history(&old)?,
        };
        Ok(self.upsert_entry(restored, metadata))
    }

    /// The newest `_files` entry in the record's revisions for `version`, or else for its key.
    fn metadata_in_history(&self, version: &ObjectVersion) -> Result<Option<Map<String, Value>>> {
        let id = version.version_id.to_string();
        let mut by_key = None;
        for rev in self
            .tx
            .record_revisions(self.record.id())?
            .into_iter()
            .rev()
        {
            let Some(body) = rev.body else { continue };
            let Some(entry) = FilesMap::entry_in(&body, &version.key) else {
                continue;
            };
            if entry.get("version_id").and_then(Value::as_str) == Some(id.as_str()) {
                return Ok(Some(entry));
            }
            by_key.get_or_insert(entry);
        }
        Ok(by_key)
    }

    /// Lists a version created outside this view (by a staged put or a multipart completion in
    /// the same transaction) in `_files`, as [`put`](Self::put) would have.
    pub(crate) fn adopt_version(&mut self, obj: ObjectVersion) -> FileObject {
        self.upsert_entry(obj, None)
    }

    /// Brings the `_files` entry of one object up to date (appending it if new, keeping its
    /// place and metadata otherwise, or taking `metadata` for a new one) and returns the file.
    /// Only that entry is touched, so a put costs the same with ten files as with ten
    /// thousand; the whole list is rebuilt once, by [`flush`](Self::flush) at commit.
    fn upsert_entry(
        &mut self,
        obj: ObjectVersion,
        metadata: Option<Map<String, Value>>,
    ) -> FileObject {
        let body = self.record.body_mut();
        let files = body
            .entry(FILES_FIELD)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !files.is_array() {
            *files = Value::Array(Vec::new());
        }
        let Value::Array(entries) = files else {
            return FileObject::new(obj, Map::new());
        };
        let at = entries
            .iter()
            .position(|e| e.get("key").and_then(Value::as_str) == Some(obj.key.as_str()));
        let old = at
            .and_then(|i| entries[i].as_object().cloned())
            .or(metadata)
            .unwrap_or_default();
        let file = FileObject::new(obj, old);
        match at {
            Some(i) => entries[i] = Value::Object(file.dumps()),
            None => entries.push(Value::Object(file.dumps())),
        }
        file
    }

    /// Sets the record's files all at once, in the order given (Invenio's
    /// `record.files = {key: stream, ...}`): each is put as by [`put`](Self::put). Refused with
    /// `FilesExist`, before anything is stored, when the bucket already has a live file. An
    /// error from one of the puts leaves the earlier ones in the transaction: return the error
    /// from the [`Store::write`](crate::Store::write) closure and nothing of it is stored.
    pub fn set_all<K: AsRef<str>, R: Read>(
        &mut self,
        files: impl IntoIterator<Item = (K, R)>,
    ) -> Result<Vec<FileObject>> {
        let one = ListOptions {
            limit: Some(1),
            ..ListOptions::default()
        };
        if !self.tx.list_objects(self.bucket, &one)?.is_empty() {
            return Err(Error::FilesExist {
                record: self.record.id(),
            });
        }
        files
            .into_iter()
            .map(|(key, reader)| self.put(key.as_ref(), reader))
            .collect()
    }

    /// Deletes `key` (a delete marker becomes its head) and drops it from `_files`. Returns the
    /// marker. Errors: `ObjectNotFound`, `BucketLocked`, `BucketDeleted`.
    pub fn delete(&mut self, key: &str) -> Result<ObjectVersion> {
        let marker = self
            .tx
            .delete_object(self.bucket, key)?
            .ok_or_else(|| self.not_found(key))?;
        let mut map = self.map();
        if map.remove(key).is_some() {
            self.store_map(map)?;
        }
        Ok(marker)
    }

    /// Renames a file: `new` becomes a version sharing `old`'s content (no byte is copied),
    /// with its metadata and tags, placed last; `old` gets a delete marker. Errors:
    /// `ObjectNotFound` for `old`, `RecordFile` when `new` is `old` or already exists, and the
    /// bucket's lock.
    pub fn rename(&mut self, old: &str, new: &str) -> Result<FileObject> {
        self.tx.writable_bucket(self.bucket)?;
        let obj = self
            .tx
            .object(self.bucket, old)?
            .ok_or_else(|| self.not_found(old))?;
        let refuse = |reason| Error::RecordFile {
            record: self.record.id(),
            key: shorten(new),
            reason,
        };
        if old == new {
            return Err(refuse("the new key is the old key"));
        }
        if self.contains(new)? {
            return Err(refuse("a file with the new key already exists"));
        }
        self.tx.copy_into(&obj, self.bucket, new, false)?;
        let mut map = self.map();
        let metadata = map.remove(old).unwrap_or_default();
        map.set(new, metadata);
        self.tx.delete_object(self.bucket, old)?;
        self.store_map(map)?;
        self.get(new)
    }

    /// Puts the listed files first, in the order given; each id is a file id or a key
    /// (`ObjectNotFound` for one that names no file). The others follow by key and keep their
    /// metadata.
    pub fn sort_by(&mut self, ids: &[&str]) -> Result<()> {
        let files = self.list()?;
        let by_file_id: HashMap<String, &str> = files
            .iter()
            .filter_map(|f| f.file_id().map(|id| (id.to_string(), f.key())))
            .collect();
        let old = self.map();
        let mut new = FilesMap::default();
        for id in ids {
            let key = by_file_id.get(*id).copied().unwrap_or(id);
            if !files.iter().any(|f| f.key() == key) {
                return Err(self.not_found(key));
            }
            if new.get(key).is_none() {
                new.set(key, old.get(key).cloned().unwrap_or_default());
            }
        }
        let mut rest: Vec<&str> = files
            .iter()
            .map(|f| f.key())
            .filter(|k| new.get(k).is_none())
            .collect();
        rest.sort_unstable();
        for key in rest {
            new.set(key, old.get(key).cloned().unwrap_or_default());
        }
        self.store_map(new)
    }

    /// Sets one metadata value of a file. `ReservedKey` if `name` is an object-version
    /// attribute (`key`, `version_id`, `bucket`, …); `checksum` and `size` may be set but are
    /// overwritten by the next change.
    pub fn set_metadata(&mut self, key: &str, name: &str, value: impl Into<Value>) -> Result<()> {
        FileObject::check_name(name)?;
        if !self.contains(key)? {
            return Err(self.not_found(key));
        }
        let mut map = self.map();
        if map.get(key).is_none() {
            self.flush()?;
            map = self.map();
        }
        if let Some(entry) = map.get_mut(key) {
            entry.insert(name.to_string(), value.into());
        }
        self.store_map(map)
    }

    /// Removes one metadata value of a file; returns it.
    pub fn remove_metadata(&mut self, key: &str, name: &str) -> Result<Option<Value>> {
        FileObject::check_name(name)?;
        let mut map = self.map();
        let old = map.get_mut(key).and_then(|e| e.remove(name));
        if old.is_some() {
            self.store_map(map)?;
        }
        Ok(old)
    }

    /// Brings `_files` up to date and commits the record as a new revision.
    pub fn commit(mut self) -> Result<()> {
        if !self.synced {
            self.flush()?;
        }
        self.tx.commit_record(self.record)
    }
}

/// Whether `bucket` holds no version at all (not even a delete marker).
fn bucket_is_empty(tx: &WriteTx<'_>, bucket: BucketId) -> Result<bool> {
    let b = bucket.raw();
    match tx.t.objects.read()?.range((b, "", 0)..)?.next() {
        Some(e) => Ok(e?.0.value().0 != b),
        None => Ok(true),
    }
}
