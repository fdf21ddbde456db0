//! Records: Invenio-Records' model.
//!
//! A record is a JSON object with an id, a revision counter and its full history. Every change
//! (create, commit, soft delete, undelete, revert) writes exactly one new revision, numbered
//! 0, 1, 2, … without gaps. A soft delete keeps the id and the history; a hard delete
//! ([`WriteTx::remove_record`](crate::WriteTx::remove_record)) removes everything.
//!
//! A record normally owns a bucket (Invenio-Records-Files' `_bucket`): it is created with the
//! record, soft-deleted and brought back with it, and removed with it. The record's files are
//! worked on through [`crate::records_files`].
//!
//! Bodies that name a `$schema` are validated against schemas registered in the store
//! ([`WriteTx::register_schema`](crate::WriteTx::register_schema)); persistent identifiers
//! map `(pid_type, pid_value)` to a record ([`Pid`]).
//!
//! Write operations are methods of [`WriteTx`](crate::WriteTx); queries are methods of
//! [`RecordsQuery`]; [`Store`](crate::Store) adds single-call conveniences.

pub(crate) mod check;
mod lifecycle;
mod list;
mod pid;
mod query;
mod rows;
mod schema;
mod store;

pub(crate) use lifecycle::{into_object, linked_bucket};
pub use list::{
    ListedRecord, RecordListOptions, RecordPage, UpdateCursor, UpdatedListOptions, UpdatedPage,
};
pub(crate) use pid::PidRow;
pub use pid::{Pid, PidStatus, RECID};
pub use query::RecordsQuery;
pub use rows::MAX_JSON_DEPTH;
pub(crate) use rows::*;

use crate::ids::{BucketId, RecordId, Timestamp};
use serde_json::{Map, Value};

/// A record as read at one revision: a value, detached from the store.
///
/// It remembers the revision it was read at, so committing a copy that someone else has
/// changed in the meantime fails with [`Error::RevisionConflict`](crate::Error::RevisionConflict)
/// instead of overwriting their change (optimistic concurrency).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub(crate) id: RecordId,
    pub(crate) revision_id: u64,
    pub(crate) body: Map<String, Value>,
    pub(crate) created: Timestamp,
    pub(crate) updated: Timestamp,
    pub(crate) deleted: bool,
}

impl Record {
    /// The record's id.
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The revision this value was read at (0 for a new record).
    pub fn revision_id(&self) -> u64 {
        self.revision_id
    }

    /// The JSON body. A record read while soft-deleted has an empty body.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The body, to change before [`WriteTx::commit_record`](crate::WriteTx::commit_record).
    pub fn body_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.body
    }

    /// The body, by value.
    pub fn into_body(self) -> Map<String, Value> {
        self.body
    }

    /// One field of the body.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.body.get(field)
    }

    /// When the record was created.
    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// When the record last changed.
    pub fn updated(&self) -> Timestamp {
        self.updated
    }

    /// Whether the record is soft-deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The bucket id the body names in `_bucket` (Invenio's `record.bucket_id`). The record's
    /// files view uses the stored link instead, which a body edit cannot break.
    pub fn bucket_id(&self) -> Option<BucketId> {
        self.body
            .get(BUCKET_FIELD)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    }
}

/// One revision of a record, oldest first in [`RecordsQuery::record_revisions`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRevision {
    /// 0 for the creation, then one more per change.
    pub revision_id: u64,
    /// When the record was created.
    pub created: Timestamp,
    /// When this revision was written.
    pub updated: Timestamp,
    /// The body at this revision; `None` where the revision is a soft delete.
    pub body: Option<Map<String, Value>>,
}

/// The body field holding the record's bucket id (Invenio-Records-Files' `dump_bucket`).
pub const BUCKET_FIELD: &str = "_bucket";

/// The body field holding the record's files list (Invenio-Records-Files' `_files`).
pub const FILES_FIELD: &str = "_files";

/// The name of a JSON value's type, for errors.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
