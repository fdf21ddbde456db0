//! Queries of the records layer, shared by read snapshots and write transactions.

use super::list::{
    RecordListOptions, RecordPage, UpdatedListOptions, UpdatedPage, list_by_recid, list_by_update,
};
use super::pid::{pid_row, resolve, to_pid};
use super::schema::{all_schemas, schema_doc};
use super::{Pid, Record, RecordRevision, RevisionRow, json_to_body, record_row, to_record};
use crate::error::{Error, Result};
use crate::ids::RecordId;
use crate::storage::{Snapshot, View, dec, with_view};
use redb::ReadableTable;
use serde_json::Value;

fn revisions<V: View>(v: &V, id: RecordId) -> Result<Vec<RecordRevision>> {
    let row = record_row(v, id)?.ok_or(Error::RecordNotFound { record: id })?;
    let mut out = Vec::new();
    for e in v
        .record_revisions()?
        .range((id.raw(), 0)..=(id.raw(), u64::MAX))?
    {
        let (k, val) = e?;
        let r: RevisionRow = dec(val.value(), "record_revisions")?;
        out.push(RecordRevision {
            revision_id: k.value().1,
            created: row.created,
            updated: r.updated,
            body: r.json.as_deref().map(|j| json_to_body(j, id)).transpose()?,
        });
    }
    Ok(out)
}

fn pids_of<V: View>(v: &V, id: RecordId) -> Result<Vec<Pid>> {
    let mut out = Vec::new();
    for e in v.record_pids()?.range((id.raw(), "", "")..)? {
        let (k, _) = e?;
        let (r, t, val) = k.value();
        if r != id.raw() {
            break;
        }
        if let Some(row) = pid_row(v, t, val)? {
            out.push(to_pid(t, val, row));
        }
    }
    Ok(out)
}

/// Queries of the records layer. Implemented for [`ReadTx`](crate::ReadTx) and
/// [`WriteTx`](crate::WriteTx); bring it into scope with `use recfiles::prelude::*`.
pub trait RecordsQuery: Snapshot {
    /// A live record (`None` if missing or soft-deleted), as Invenio's `get_record`.
    fn record(&self, id: RecordId) -> Result<Option<Record>> {
        Ok(self.record_with_deleted(id)?.filter(|r| !r.is_deleted()))
    }

    /// A record, soft-deleted or not. A soft-deleted record comes with an empty body.
    fn record_with_deleted(&self, id: RecordId) -> Result<Option<Record>> {
        with_view!(self, |v| match record_row(v, id)? {
            Some(row) => Ok(Some(to_record(v, id, &row)?)),
            None => Ok(None),
        })
    }

    /// The live records among `ids`, in the order asked; missing and deleted ones are skipped.
    fn records(&self, ids: &[RecordId]) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.record(*id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Every revision of a record, oldest first (`RecordNotFound` if it does not exist).
    fn record_revisions(&self, id: RecordId) -> Result<Vec<RecordRevision>> {
        with_view!(self, |v| revisions(v, id))
    }

    /// One revision of a record.
    fn record_revision(&self, id: RecordId, revision: u64) -> Result<Option<RecordRevision>> {
        with_view!(self, |v| {
            let Some(row) = record_row(v, id)? else {
                return Ok(None);
            };
            match v.record_revisions()?.get((id.raw(), revision))? {
                Some(g) => {
                    let r: RevisionRow = dec(g.value(), "record_revisions")?;
                    Ok(Some(RecordRevision {
                        revision_id: revision,
                        created: row.created,
                        updated: r.updated,
                        body: r.json.as_deref().map(|j| json_to_body(j, id)).transpose()?,
                    }))
                }
                None => Ok(None),
            }
        })
    }

    /// The schema registered under `url`.
    fn schema(&self, url: &str) -> Result<Option<Value>> {
        with_view!(self, |v| schema_doc(v, url))
    }

    /// The URLs of every registered schema, sorted.
    fn schema_urls(&self) -> Result<Vec<String>> {
        with_view!(self, |v| Ok(all_schemas(v)?
            .into_iter()
            .map(|(u, _)| u)
            .collect()))
    }

    /// A persistent identifier, whatever its status.
    fn pid(&self, pid_type: &str, pid_value: &str) -> Result<Option<Pid>> {
        with_view!(self, |v| Ok(
            pid_row(v, pid_type, pid_value)?.map(|r| to_pid(pid_type, pid_value, r))
        ))
    }

    /// The persistent identifiers of a record, by type and value.
    fn record_pids(&self, id: RecordId) -> Result<Vec<Pid>> {
        with_view!(self, |v| pids_of(v, id))
    }

    /// The live record a registered PID names. Errors: `PidNotFound`, `PidDeleted`,
    /// `PidRedirected` (with the target), `RecordDeleted`.
    fn resolve_pid(&self, pid_type: &str, pid_value: &str) -> Result<Record> {
        with_view!(self, |v| resolve(v, pid_type, pid_value))
    }

    /// A page of records in `recid` order (1, 2, …, 10, 11, not text order), starting after
    /// `opts.after`. Memory holds one page; see [`RecordPage::next`] for the cursor.
    fn list_records(&self, opts: &RecordListOptions) -> Result<RecordPage> {
        with_view!(self, |v| list_by_recid(v, opts))
    }

    /// A page of every record (with or without a `recid`), most recently updated first,
    /// starting after `opts.after`. Memory holds one page; each page reads every record's row
    /// once (there is no index by update time). See [`UpdatedPage::next`] for the cursor.
    fn list_records_by_update(&self, opts: &UpdatedListOptions) -> Result<UpdatedPage> {
        with_view!(self, |v| list_by_update(v, opts))
    }
}

impl<T: Snapshot> RecordsQuery for T {}
