//! Stored rows of the records layer (bincode-encoded; see docs/FORMAT.md).

use crate::error::{Error, Result};
use crate::ids::{RecordId, Timestamp};
use crate::storage::{Hot, View, dec};
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
    if let Some(row) = v
        .deferred(Hot::Records)
        .and_then(|d| d.get::<RecordRow>(id.raw()))
    {
        return Ok(Some(row.clone()));
    }
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

/// How deep a stored JSON document (a record body with its `_files`, a schema) may nest arrays
/// and objects, the document itself being level 1. Reading it back parses with serde_json,
/// which refuses more than 127 levels; anything deeper is refused when written, so whatever is
/// stored can be read.
pub const MAX_JSON_DEPTH: usize = 100;

/// How deep `v` nests arrays and objects (a scalar is 0, `{}` is 1), walked without recursion
/// (a value built in memory can nest deeper than the stack allows).
pub(crate) fn json_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        deepest = deepest.max(level);
        stack.extend(children.map(|c| (c, level + 1)));
    }
    deepest
}

/// Refuses `doc` if it nests deeper than [`MAX_JSON_DEPTH`]; `what` names it in the error.
pub(crate) fn check_depth(doc: &Value, what: impl FnOnce() -> String) -> Result<()> {
    let depth = json_depth(doc);
    if depth > MAX_JSON_DEPTH {
        return Err(Error::JsonTooDeep {
            what: what(),
            depth,
            limit: MAX_JSON_DEPTH,
        });
    }
    Ok(())
}

/// Encodes a record body, refusing one nested deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn body_to_json(body: &Map<String, Value>) -> Result<Vec<u8>> {
    // The body's own level, then each value's.
    let depth = 1 + body.values().map(json_depth).max().unwrap_or(0);
    if depth > MAX_JSON_DEPTH {
        return Err(Error::JsonTooDeep {
            what: "a record body".into(),
            depth,
            limit: MAX_JSON_DEPTH,
        });
    }
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
