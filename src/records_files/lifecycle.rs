//! A record's bucket follows the record: created with it, soft-deleted and brought back with
//! it, removed with it. The records layer keeps only the link (the bucket's id in the record's
//! row); this module makes the bucket follow, so `records` needs nothing of `files`.

use crate::error::Result;
use crate::files::BucketOptions;
use crate::ids::{BucketId, RecordId};
use crate::records::{BUCKET_FIELD, Record, into_object};
use crate::storage::{Store, WriteTx};
use serde_json::Value;

/// How to create a record. `Default`: a fresh id and a bucket in the default location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptions {
    /// The record's id; `None` for a fresh one.
    pub id: Option<RecordId>,
    /// The bucket to create with the record; `None` for a record without files
    /// (Invenio's `with_bucket=False`).
    pub bucket: Option<BucketOptions>,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            id: None,
            bucket: Some(BucketOptions::default()),
        }
    }
}

impl RecordOptions {
    /// Options for a record without a bucket.
    pub fn without_bucket() -> Self {
        RecordOptions {
            id: None,
            bucket: None,
        }
    }

    /// The same options with a caller-chosen id.
    pub fn with_id(mut self, id: RecordId) -> Self {
        self.id = Some(id);
        self
    }
}

impl WriteTx<'_> {
    /// Creates a record with a fresh id and its own bucket (stored as `_bucket` in the body).
    /// The body must be a JSON object; if it names a `$schema` it must match it.
    pub fn create_record(&mut self, body: Value) -> Result<Record> {
        self.create_record_with(body, &RecordOptions::default())
    }

    /// Creates a record as `opts` says: a caller-given id (`RecordExists` if taken, even by a
    /// soft-deleted record), with or without a bucket. Nothing is written if any check fails.
    pub fn create_record_with(&mut self, body: Value, opts: &RecordOptions) -> Result<Record> {
        let mut body = into_object(body)?;
        let bucket = opts.bucket.as_ref().map(|b| (BucketId::new(), b));
        if let Some((id, _)) = &bucket {
            body.insert(BUCKET_FIELD.into(), Value::String(id.to_string()));
        }
        let link = bucket.map(|(id, _)| id);
        self.create_record_linking(body, opts.id, link, |tx, record| match bucket {
            Some((id, opts)) => tx
                .create_bucket_with_id(id, opts, Some(record.raw()))
                .map(|_| ()),
            None => Ok(()),
        })
    }

    /// Soft-deletes a record: its body goes (a revision without a body), its id and history
    /// stay, and its bucket is soft-deleted with it. `record` keeps its body in memory, so
    /// [`Self::undelete_record`] can bring it back.
    pub fn delete_record(&mut self, record: &mut Record) -> Result<()> {
        self.delete_record_following(record, follow_record)
    }

    /// Brings a soft-deleted record back with the body `record` holds (the old body if this
    /// value was kept from before the delete, `{}` if it was read while deleted), as a new
    /// revision; its bucket comes back too. Refused for a live record.
    pub fn undelete_record(&mut self, record: &mut Record) -> Result<()> {
        self.undelete_record_following(record, follow_record)
    }

    /// Hard-deletes a record, live or soft-deleted: its row, its history, its persistent
    /// identifiers and its bucket (unlocked first) with every file no other bucket shares.
    pub fn remove_record(&mut self, id: RecordId) -> Result<()> {
        self.remove_record_following(id, |tx, bucket| {
            let mut row = tx.any_bucket(bucket)?;
            if row.locked {
                row.locked = false;
                tx.put_bucket_row(bucket.raw(), &row)?;
            }
            tx.remove_bucket_rows(bucket).map(|_| ())
        })
    }

    /// Hard-removes a bucket: every version, tag and open multipart upload goes, and content no
    /// other bucket references is freed. A locked bucket is refused. A record the bucket
    /// belonged to stays, without a bucket.
    pub fn remove_bucket(&mut self, id: BucketId) -> Result<()> {
        if let Some(record) = self.remove_bucket_rows(id)? {
            self.unlink_record_bucket(record)?;
        }
        Ok(())
    }
}

/// Makes a record's bucket follow it: soft-deleted with a deleted record, back with a live one.
pub(crate) fn follow_record(tx: &mut WriteTx<'_>, bucket: BucketId, live: bool) -> Result<()> {
    match live {
        true if tx.any_bucket(bucket)?.deleted => tx.undelete_bucket(bucket).map(|_| ()),
        true => Ok(()),
        false => tx.delete_bucket(bucket).map(|_| ()),
    }
}

impl Store {
    /// Creates a record with its bucket (see [`crate::WriteTx::create_record`]).
    pub fn create_record(&self, body: Value) -> Result<Record> {
        self.write(|tx| tx.create_record(body))
    }

    /// Creates a record as `opts` says (see [`crate::WriteTx::create_record_with`]).
    pub fn create_record_with(&self, body: Value, opts: &RecordOptions) -> Result<Record> {
        self.write(|tx| tx.create_record_with(body, opts))
    }

    /// Soft-deletes a record and its bucket.
    pub fn delete_record(&self, record: &mut Record) -> Result<()> {
        let mut copy = record.clone();
        self.write(|tx| tx.delete_record(&mut copy))?;
        *record = copy;
        Ok(())
    }

    /// Brings back a soft-deleted record with the body `record` holds, and its bucket.
    pub fn undelete_record(&self, record: &mut Record) -> Result<()> {
        let mut copy = record.clone();
        self.write(|tx| tx.undelete_record(&mut copy))?;
        *record = copy;
        Ok(())
    }

    /// Reverts a record to an earlier revision, as a new revision (see
    /// [`crate::WriteTx::revert_record`]).
    pub fn revert_record(&self, id: RecordId, revision: u64) -> Result<Record> {
        self.write(|tx| tx.revert_record(id, revision))
    }

    /// Hard-deletes a record with its history, PIDs, bucket and unshared content.
    pub fn remove_record(&self, id: RecordId) -> Result<()> {
        self.write(|tx| tx.remove_record(id))
    }
}
