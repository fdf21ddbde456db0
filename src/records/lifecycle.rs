//! A record's life: create, commit, soft delete, undelete, revert, hard delete. Each change
//! writes exactly one revision. A record may be linked to a bucket (an id kept in its row);
//! what happens to that bucket when the record changes is the caller's, passed in as a
//! closure: `records_files` makes the bucket follow the record.

use super::schema::validate_body;
use super::{
    FILES_FIELD, Record, RecordRow, RevisionRow, body_to_json, json_to_body, json_type, record_row,
    revision_row, to_record,
};
use crate::error::{Error, Result};
use crate::hooks::Event;
use crate::ids::{BucketId, RecordId, Timestamp};
use crate::storage::{View, WriteTx};
use redb::ReadableTable;
use serde_json::{Map, Value};

/// The body as a JSON object, or `NotAnObject`.
pub(crate) fn into_object(body: Value) -> Result<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        other => Err(Error::NotAnObject {
            found: json_type(&other),
        }),
    }
}

impl WriteTx<'_> {
    /// Creates a record with `body` (already an object), a caller-given id (`RecordExists`
    /// if taken, even by a soft-deleted record) or a fresh one, linked to `bucket` if given:
    /// `link` runs once the checks and the before hooks passed, before anything is written,
    /// with the new record's id. Nothing is written if any check fails.
    pub(crate) fn create_record_linking(
        &mut self,
        body: Map<String, Value>,
        id: Option<RecordId>,
        bucket: Option<BucketId>,
        link: impl FnOnce(&mut Self, RecordId) -> Result<()>,
    ) -> Result<Record> {
        // A fresh id is a new UUID v7 (strictly increasing in this process, random bits across
        // processes): only a caller's id can already be taken.
        let id = match id {
            Some(id) => {
                if record_row(&self.t, id)?.is_some() {
                    return Err(Error::RecordExists { record: id });
                }
                id
            }
            None => RecordId::new(),
        };
        let json = body_to_json(&body)?;
        validate_body(self, &body)?;
        let record = Record {
            id,
            revision_id: 0,
            body,
            created: self.now,
            updated: self.now,
            deleted: false,
        };
        self.before_hooks(|| Event::RecordCreated {
            record: record.clone(),
        })?;
        link(self, id)?;
        self.write_revision(id, 0, self.now, bucket.map(|b| b.raw()), Some(json))?;
        self.after_hooks(|| Event::RecordCreated {
            record: record.clone(),
        });
        Ok(record)
    }

    /// Stores `record`'s body as a new revision and moves `record` to it. Fails with
    /// `RevisionConflict` if the store holds a newer revision than `record` was read at, with
    /// `RecordDeleted` if the record is soft-deleted, and with a schema error if the body does
    /// not match its `$schema`; nothing is written then.
    pub fn commit_record(&mut self, record: &mut Record) -> Result<()> {
        let row = self.current_row(record)?;
        if row.deleted {
            return Err(Error::RecordDeleted { record: record.id });
        }
        let json = body_to_json(&record.body)?;
        validate_body(self, &record.body)?;
        let rev = row.revision + 1;
        let stored = |r: &Record| Record {
            revision_id: rev,
            updated: self.now,
            ..r.clone()
        };
        self.before_hooks(|| Event::RecordCommitted {
            record: stored(record),
        })?;
        self.write_revision(record.id, rev, row.created, row.bucket, Some(json))?;
        record.revision_id = rev;
        record.updated = self.now;
        self.after_hooks(|| Event::RecordCommitted {
            record: record.clone(),
        });
        Ok(())
    }

    /// Soft-deletes a record: its body goes (a revision without a body), its id and history
    /// stay; `follow` then runs with its linked bucket, if any, and `false` (not live).
    pub(crate) fn delete_record_following(
        &mut self,
        record: &mut Record,
        follow: impl FnOnce(&mut Self, BucketId, bool) -> Result<()>,
    ) -> Result<()> {
        let row = self.current_row(record)?;
        if row.deleted {
            return Err(Error::RecordDeleted { record: record.id });
        }
        let event = || Event::RecordDeleted {
            record: record.clone(),
            hard: false,
        };
        self.before_hooks(event)?;
        let rev = row.revision + 1;
        self.write_revision(record.id, rev, row.created, row.bucket, None)?;
        if let Some(bucket) = linked_bucket(&self.t, record.id)? {
            follow(self, bucket, false)?;
        }
        self.after_hooks(event);
        record.revision_id = rev;
        record.updated = self.now;
        record.deleted = true;
        Ok(())
    }

    /// Brings a soft-deleted record back with the body `record` holds, as a new revision;
    /// `follow` then runs with its linked bucket, if any, and `true` (live). Refused for a
    /// live record.
    pub(crate) fn undelete_record_following(
        &mut self,
        record: &mut Record,
        follow: impl FnOnce(&mut Self, BucketId, bool) -> Result<()>,
    ) -> Result<()> {
        let row = self.current_row(record)?;
        if !row.deleted {
            return Err(Error::InvalidOperation {
                reason: "Record is not deleted.",
            });
        }
        let json = body_to_json(&record.body)?;
        validate_body(self, &record.body)?;
        let rev = row.revision + 1;
        self.before_hooks(|| Event::RecordUndeleted {
            record: Record {
                revision_id: rev,
                updated: self.now,
                deleted: false,
                ..record.clone()
            },
        })?;
        self.write_revision(record.id, rev, row.created, row.bucket, Some(json))?;
        if let Some(bucket) = linked_bucket(&self.t, record.id)? {
            follow(self, bucket, true)?;
        }
        record.revision_id = rev;
        record.updated = self.now;
        record.deleted = false;
        self.after_hooks(|| Event::RecordUndeleted {
            record: record.clone(),
        });
        Ok(())
    }

    /// [`WriteTx::revert_record`](crate::WriteTx::revert_record) (defined with the record's
    /// files, which keep `_files` true): the record becomes what it was at `revision`, as a new
    /// revision, its body first passed to `fix_body` with the record's bucket when the
    /// revision has a body with `_files` and the record a bucket; `follow` then runs with the
    /// linked bucket, if any, and whether the record is live.
    pub(crate) fn revert_record_fixing(
        &mut self,
        id: RecordId,
        revision: u64,
        fix_body: impl FnOnce(&Self, BucketId, &mut Map<String, Value>) -> Result<()>,
        follow: impl FnOnce(&mut Self, BucketId, bool) -> Result<()>,
    ) -> Result<Record> {
        let row = record_row(&self.t, id)?.ok_or(Error::RecordNotFound { record: id })?;
        let old = revision_row(&self.t, id, revision)?.ok_or(Error::RevisionNotFound {
            record: id,
            revision,
        })?;
        let rev = row.revision + 1;
        // Only a body that names the field can need fixing (the text test spares the parse).
        let key = format!("\"{FILES_FIELD}\"");
        let named = |j: &[u8]| j.windows(key.len()).any(|w| w == key.as_bytes());
        let (json, live) = match (old.json, linked_bucket(&self.t, id)?) {
            (Some(json), Some(bucket)) if named(&json) => {
                let mut body = json_to_body(&json, id)?;
                fix_body(self, bucket, &mut body)?;
                (Some(body_to_json(&body)?), true)
            }
            (json, _) => {
                let live = json.is_some();
                (json, live)
            }
        };
        if self.cfg.hooks.has_before() {
            let body = match &json {
                Some(j) => json_to_body(j, id)?,
                None => Map::new(),
            };
            let record = Record {
                id,
                revision_id: rev,
                body,
                created: row.created,
                updated: self.now,
                deleted: !live,
            };
            self.before_hooks(|| Event::RecordReverted { record, revision })?;
        }
        self.write_revision(id, rev, row.created, row.bucket, json)?;
        if let Some(bucket) = linked_bucket(&self.t, id)? {
            follow(self, bucket, live)?;
        }
        let row = record_row(&self.t, id)?.ok_or(Error::RecordNotFound { record: id })?;
        let record = to_record(&self.t, id, &row)?;
        self.after_hooks(|| Event::RecordReverted {
            record: record.clone(),
            revision,
        });
        Ok(record)
    }

    /// Hard-deletes a record, live or soft-deleted: its row, its history and its persistent
    /// identifiers; `remove` runs first with its linked bucket, if any.
    pub(crate) fn remove_record_following(
        &mut self,
        id: RecordId,
        remove: impl FnOnce(&mut Self, BucketId) -> Result<()>,
    ) -> Result<()> {
        let Some(row) = record_row(&self.t, id)? else {
            return Err(Error::RecordNotFound { record: id });
        };
        let hooked = self.cfg.hooks.has_before() || self.cfg.hooks.has_after();
        let removed = match hooked {
            true => Some(to_record(&self.t, id, &row)?),
            false => None,
        };
        let event = |record: &Record| Event::RecordDeleted {
            record: record.clone(),
            hard: true,
        };
        if let Some(record) = &removed {
            self.before_hooks(|| event(record))?;
        }
        if let Some(bucket) = linked_bucket(&self.t, id)? {
            remove(self, bucket)?;
        }
        let raw = id.raw();
        self.t
            .record_revisions
            .write()?
            .retain_in((raw, 0)..=(raw, u64::MAX), |_, _| false)?;
        let mut pids = Vec::new();
        for e in self.t.record_pids.read()?.range((raw, "", "")..)? {
            let (k, _) = e?;
            let (r, t, v) = k.value();
            if r != raw {
                break;
            }
            pids.push((t.to_string(), v.to_string()));
        }
        for (t, v) in &pids {
            self.t.pids.write()?.remove((t.as_str(), v.as_str()))?;
            self.t
                .record_pids
                .write()?
                .remove((raw, t.as_str(), v.as_str()))?;
        }
        self.t.deferred_records.forget(raw);
        self.t.records.write()?.remove(raw)?;
        if let Some(record) = &removed {
            self.after_hooks(|| event(record));
        }
        Ok(())
    }

    /// The stored row of `record`, checking that `record` is not stale.
    fn current_row(&self, record: &Record) -> Result<RecordRow> {
        let row =
            record_row(&self.t, record.id)?.ok_or(Error::RecordNotFound { record: record.id })?;
        if row.revision != record.revision_id {
            return Err(Error::RevisionConflict {
                record: record.id,
                expected: record.revision_id,
                found: row.revision,
            });
        }
        Ok(row)
    }

    /// Writes revision `rev` and makes it the current state.
    fn write_revision(
        &mut self,
        id: RecordId,
        rev: u64,
        created: Timestamp,
        bucket: Option<u128>,
        json: Option<Vec<u8>>,
    ) -> Result<()> {
        let deleted = json.is_none();
        let revision = RevisionRow {
            json,
            updated: self.now,
        };
        self.t
            .record_revisions
            .write()?
            .insert((id.raw(), rev), crate::storage::enc(&revision)?.as_slice())?;
        let row = RecordRow {
            revision: rev,
            deleted,
            created,
            updated: self.now,
            bucket,
        };
        self.t.deferred_records.put(id.raw(), row);
        Ok(())
    }

    /// Forgets a record's link to its bucket (the bucket is being removed).
    pub(crate) fn unlink_record_bucket(&mut self, record: u128) -> Result<()> {
        if let Some(mut row) = record_row(&self.t, RecordId::from_raw(record))? {
            row.bucket = None;
            self.t.deferred_records.put(record, row);
        }
        Ok(())
    }
}

/// The bucket linked to a record, if any.
pub(crate) fn linked_bucket<V: View>(v: &V, id: RecordId) -> Result<Option<BucketId>> {
    Ok(super::record_row(v, id)?
        .and_then(|r| r.bucket)
        .map(BucketId::from_raw))
}
