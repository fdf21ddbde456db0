//! Stored rows of the records layer (bincode-encoded; see docs/FORMAT.md).

use crate::error::{Error, Result};
use crate::ids::{RecordId, Timestamp};
use crate::storage::{View, dec};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The current state of a record. Its body is that of its newest revision (kept once, in
/// `record_revisions`), so the row stays small to write and to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordRow {
    /// The newest revision id; revisions 0..=revision all exist.
    pub revision: u64,
    /// Soft-deleted (the newest revision has no body).
    pub deleted: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// The record's bucket (Invenio's `RecordsBuckets` link); the bucket's row names the record
    /// back.
    pub bucket: Option<u128>,
}

/// One revision of a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RevisionRow {
    /// JSON text of the body at this revision; `None` for a soft delete.
    #[serde(with = "crate::storage::codec::opt_bytes")]
    pub json: Option<Vec<u8>>,
    /// When the revision was written.
    pub updated: Timestamp,
}

pub(crate) fn record_row<V: View>(v: &V, id: RecordId) -> Result<Option<RecordRow>> {
    match v.records()?.get(id.raw())? {
        Some(g) => Ok(Some(dec(g.value(), "records")?)),
        None => Ok(None),
    }
}

pub(crate) fn revision_row<V: View>(v: &V, id: RecordId, rev: u64) -> Result<Option<RevisionRow>> {
    match v.record_revisions()?.get((id.raw(), rev))? {
        Some(g) => Ok(Some(dec(g.value(), "record_revisions")?)),
        None => Ok(None),
    }
}

pub(crate) fn body_to_json(body: &Map<String, Value>) -> Result<Vec<u8>> {
    // Room for a typical body up front (serde_json's own `to_vec` starts at 128 bytes).
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(&mut out, body)
        .map_err(|e| Error::corrupt(format!("cannot encode record body: {e}")))?;
    Ok(out)
}

pub(crate) fn json_to_body(bytes: &[u8], id: RecordId) -> Result<Map<String, Value>> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(format!("record {id}: body is not a JSON object: {e}")))
}

/// The record as `row` and its newest revision have it (an empty body while soft-deleted).
pub(crate) fn to_record<V: View>(v: &V, id: RecordId, row: &RecordRow) -> Result<super::Record> {
    let body = if row.deleted {
        Map::new()
    } else {
        let rev = revision_row(v, id, row.revision)?.ok_or_else(|| {
            Error::corrupt(format!("record {id}: revision {} is missing", row.revision))
        })?;
        match &rev.json {
            Some(j) => json_to_body(j, id)?,
            None => {
                return Err(Error::corrupt(format!(
                    "record {id}: live, but revision {} has no body",
                    row.revision
                )));
            }
        }
    };
    Ok(super::Record {
        id,
        revision_id: row.revision,
        body,
        created: row.created,
        updated: row.updated,
        deleted: row.deleted,
    })
}
