//! Persistent identifiers: `(pid_type, pid_value)` → record, with a status, and a counter that
//! mints `recid` values which are never handed out twice.

use super::{Record, record_row, to_record};
use crate::error::{Error, Result, shorten};
use crate::ids::{RecordId, Timestamp};
use crate::storage::{View, WriteTx, dec, enc};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// The PID type of minted record numbers.
pub const RECID: &str = "recid";

/// Longest PID type and value, in characters.
const MAX_PID_LEN: usize = 255;

/// The state of a persistent identifier (Invenio's `PIDStatus`, without the pre-registration
/// states).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PidStatus {
    /// Resolves to its record.
    Registered,
    /// No longer resolves (HTTP 410); the value stays taken.
    Deleted,
    /// Resolves to another PID (HTTP 301).
    Redirected {
        /// The type of the PID it points to.
        pid_type: String,
        /// The value of the PID it points to.
        pid_value: String,
    },
}

/// A persistent identifier of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pid {
    /// E.g. `recid`, `doi`.
    pub pid_type: String,
    /// E.g. `1`, `10.1234/abc`.
    pub pid_value: String,
    /// The record it was assigned to.
    pub record: RecordId,
    /// Its state.
    pub status: PidStatus,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PidRow {
    pub record: u128,
    pub status: PidStatus,
    pub created: Timestamp,
    pub updated: Timestamp,
}

pub(crate) fn pid_row<V: View>(v: &V, pid_type: &str, pid_value: &str) -> Result<Option<PidRow>> {
    match v.pids()?.get((pid_type, pid_value))? {
        Some(g) => Ok(Some(dec(g.value(), "pids")?)),
        None => Ok(None),
    }
}

pub(crate) fn to_pid(pid_type: &str, pid_value: &str, r: PidRow) -> Pid {
    Pid {
        pid_type: pid_type.to_string(),
        pid_value: pid_value.to_string(),
        record: RecordId::from_raw(r.record),
        status: r.status,
        created: r.created,
        updated: r.updated,
    }
}

fn not_found(pid_type: &str, pid_value: &str) -> Error {
    Error::PidNotFound {
        pid_type: shorten(pid_type),
        pid_value: shorten(pid_value),
    }
}

fn validate_pid(pid_type: &str, pid_value: &str) -> Result<()> {
    let reason = if pid_type.is_empty() || pid_value.is_empty() {
        Some("type and value must not be empty")
    } else if pid_type.chars().count() > MAX_PID_LEN || pid_value.chars().count() > MAX_PID_LEN {
        Some("type and value are at most 255 characters")
    } else if pid_type.contains('\0') || pid_value.contains('\0') {
        Some("type and value must not contain NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidPid {
            pid_type: shorten(pid_type),
            pid_value: shorten(pid_value),
            reason,
        }),
        None => Ok(()),
    }
}

/// Follows a PID to its live record: `PidNotFound`, `PidDeleted`, `PidRedirected`, or
/// `RecordDeleted` when the record is soft-deleted.
pub(crate) fn resolve<V: View>(v: &V, pid_type: &str, pid_value: &str) -> Result<Record> {
    let row = pid_row(v, pid_type, pid_value)?.ok_or_else(|| not_found(pid_type, pid_value))?;
    let record = RecordId::from_raw(row.record);
    match row.status {
        PidStatus::Registered => {}
        PidStatus::Deleted => {
            return Err(Error::PidDeleted {
                pid_type: shorten(pid_type),
                pid_value: shorten(pid_value),
                record,
            });
        }
        PidStatus::Redirected {
            pid_type: to_type,
            pid_value: to_value,
        } => {
            return Err(Error::PidRedirected {
                pid_type: shorten(pid_type),
                pid_value: shorten(pid_value),
                to_type,
                to_value,
            });
        }
    }
    let rec = record_row(v, record)?.ok_or_else(|| {
        Error::corrupt(format!("pid {pid_type}:{pid_value} names missing record"))
    })?;
    if rec.deleted {
        return Err(Error::RecordDeleted { record });
    }
    to_record(v, record, &rec)
}

impl WriteTx<'_> {
    /// Registers `pid_type:pid_value` for a record (`PidExists` if the pair is taken, even by a
    /// deleted PID).
    pub fn create_pid(&mut self, pid_type: &str, pid_value: &str, record: RecordId) -> Result<Pid> {
        validate_pid(pid_type, pid_value)?;
        if record_row(&self.t, record)?.is_none() {
            return Err(Error::RecordNotFound { record });
        }
        if pid_row(&self.t, pid_type, pid_value)?.is_some() {
            return Err(Error::PidExists {
                pid_type: shorten(pid_type),
                pid_value: shorten(pid_value),
            });
        }
        let row = PidRow {
            record: record.raw(),
            status: PidStatus::Registered,
            created: self.now,
            updated: self.now,
        };
        self.t
            .pids
            .write()?
            .insert((pid_type, pid_value), enc(&row)?.as_slice())?;
        self.t
            .record_pids
            .write()?
            .insert((record.raw(), pid_type, pid_value), ())?;
        Ok(to_pid(pid_type, pid_value, row))
    }

    /// Mints the next `recid` (1, 2, 3, …) for a record. A value is never minted twice, even
    /// after its PID or record is deleted; values taken by hand are skipped.
    pub fn mint_recid(&mut self, record: RecordId) -> Result<Pid> {
        let mut next = self
            .t
            .pid_counters
            .read()?
            .get(RECID)?
            .map(|g| g.value())
            .unwrap_or(0);
        loop {
            next = next.checked_add(1).ok_or(Error::InvalidOperation {
                reason: "The recid counter is exhausted.",
            })?;
            if pid_row(&self.t, RECID, &next.to_string())?.is_none() {
                break;
            }
        }
        let pid = self.create_pid(RECID, &next.to_string(), record)?;
        self.t.pid_counters.write()?.insert(RECID, next)?;
        Ok(pid)
    }

    /// Marks a PID deleted: it no longer resolves, and its value stays taken.
    pub fn delete_pid(&mut self, pid_type: &str, pid_value: &str) -> Result<Pid> {
        self.set_pid_status(pid_type, pid_value, PidStatus::Deleted)
    }

    /// Makes a PID redirect to another existing PID.
    pub fn redirect_pid(
        &mut self,
        pid_type: &str,
        pid_value: &str,
        to_type: &str,
        to_value: &str,
    ) -> Result<Pid> {
        if pid_row(&self.t, to_type, to_value)?.is_none() {
            return Err(not_found(to_type, to_value));
        }
        if (pid_type, pid_value) == (to_type, to_value) {
            return Err(Error::InvalidOperation {
                reason: "A PID cannot redirect to itself.",
            });
        }
        self.set_pid_status(
            pid_type,
            pid_value,
            PidStatus::Redirected {
                pid_type: to_type.to_string(),
                pid_value: to_value.to_string(),
            },
        )
    }

    fn set_pid_status(
        &mut self,
        pid_type: &str,
        pid_value: &str,
        status: PidStatus,
    ) -> Result<Pid> {
        let mut row =
            pid_row(&self.t, pid_type, pid_value)?.ok_or_else(|| not_found(pid_type, pid_value))?;
        row.status = status;
        row.updated = self.now;
        self.t
            .pids
            .write()?
            .insert((pid_type, pid_value), enc(&row)?.as_slice())?;
        Ok(to_pid(pid_type, pid_value, row))
    }
}
