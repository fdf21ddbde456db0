//! Single-call conveniences of the records layer on [`Store`]; each commits on its own.

use super::{
    Pid, Record, RecordListOptions, RecordPage, RecordRevision, RecordsQuery, UpdatedListOptions,
    UpdatedPage,
};
use crate::error::Result;
use crate::ids::RecordId;
use crate::storage::Store;
use serde_json::Value;

impl Store {
    /// A live record.
    pub fn record(&self, id: RecordId) -> Result<Option<Record>> {
        self.read(|r| r.record(id))
    }

    /// A record, soft-deleted or not.
    pub fn record_with_deleted(&self, id: RecordId) -> Result<Option<Record>> {
        self.read(|r| r.record_with_deleted(id))
    }

    /// The live records among `ids`, in the order asked.
    pub fn records(&self, ids: &[RecordId]) -> Result<Vec<Record>> {
        self.read(|r| r.records(ids))
    }

    /// Commits `record`'s body as a new revision (see [`crate::WriteTx::commit_record`]).
    /// On failure `record` is left as it was.
    pub fn commit_record(&self, record: &mut Record) -> Result<()> {
        let mut copy = record.clone();
        self.write(|tx| tx.commit_record(&mut copy))?;
        *record = copy;
        Ok(())
    }

    /// Every revision of a record, oldest first.
    pub fn record_revisions(&self, id: RecordId) -> Result<Vec<RecordRevision>> {
        self.read(|r| r.record_revisions(id))
    }

    /// Registers (or replaces) a JSON Schema under its URL.
    pub fn register_schema(&self, url: &str, schema: &Value) -> Result<()> {
        self.write(|tx| tx.register_schema(url, schema))
    }

    /// Registers a persistent identifier for a record.
    pub fn create_pid(&self, pid_type: &str, pid_value: &str, record: RecordId) -> Result<Pid> {
        self.write(|tx| tx.create_pid(pid_type, pid_value, record))
    }

    /// Mints the next `recid` for a record.
    pub fn mint_recid(&self, record: RecordId) -> Result<Pid> {
        self.write(|tx| tx.mint_recid(record))
    }

    /// Marks a PID deleted.
    pub fn delete_pid(&self, pid_type: &str, pid_value: &str) -> Result<Pid> {
        self.write(|tx| tx.delete_pid(pid_type, pid_value))
    }

    /// A persistent identifier.
    pub fn pid(&self, pid_type: &str, pid_value: &str) -> Result<Option<Pid>> {
        self.read(|r| r.pid(pid_type, pid_value))
    }

    /// The live record a registered PID names.
    pub fn resolve_pid(&self, pid_type: &str, pid_value: &str) -> Result<Record> {
        self.read(|r| r.resolve_pid(pid_type, pid_value))
    }

    /// A page of records in `recid` order (see [`RecordsQuery::list_records`]).
    pub fn list_records(&self, opts: &RecordListOptions) -> Result<RecordPage> {
        self.read(|r| r.list_records(opts))
    }

    /// A page of records, most recently updated first (see
    /// [`RecordsQuery::list_records_by_update`]).
    pub fn list_records_by_update(&self, opts: &UpdatedListOptions) -> Result<UpdatedPage> {
        self.read(|r| r.list_records_by_update(opts))
    }
}
