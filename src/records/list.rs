//! Listing records a page at a time: by their minted `recid`, or by last update.
//!
//! `recid` values are minted 1, 2, 3, … from a counter ([`WriteTx::mint_recid`]), and the
//! `pids` table keys them as text, where `"10"` sorts before `"2"`. A page in number order is
//! therefore read by walking the numbers from the cursor up to the counter and looking each
//! one up: memory holds one page, and the cost is the page plus the numbers skipped (values
//! whose PID was removed with its record, or redirected). Values registered by hand above the
//! counter, or that are not decimal numbers, are not listed.
//!
//! [`WriteTx::mint_recid`]: crate::WriteTx::mint_recid

use super::pid::{PidRow, PidStatus, RECID, pid_row};
use super::{Record, RecordRow, record_row, to_record};
use crate::error::Result;
use crate::ids::{RecordId, Timestamp};
use crate::storage::{Hot, View, dec, each_row};
use redb::ReadableTable;
use std::collections::BinaryHeap;

/// Which records [`RecordsQuery::list_records`](super::RecordsQuery::list_records) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordListOptions {
    /// Only recids strictly greater than this one (the last recid of the previous page).
    pub after: Option<u64>,
    /// At most this many records (at least one is asked for even when 0 is given).
    pub limit: usize,
    /// Include soft-deleted records (their PID is deleted; they come with an empty body).
    pub with_deleted: bool,
}

impl Default for RecordListOptions {
    fn default() -> Self {
        RecordListOptions {
            after: None,
            limit: 10,
            with_deleted: false,
        }
    }
}

/// One record of a listing, with the recid it was found under.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedRecord {
    /// The record's `recid` value.
    pub recid: u64,
    /// The record (empty body when it is soft-deleted).
    pub record: Record,
}

/// One page of records in recid order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordPage {
    /// The records, recid ascending.
    pub records: Vec<ListedRecord>,
    /// The cursor for the next page (`after` of the next call), or `None` on the last page.
    pub next: Option<u64>,
}

/// The recid of a listed PID value: the canonical decimal of a number the counter has minted.
fn listed_recid(value: &str, last_minted: u64) -> Option<u64> {
    let n: u64 = value.parse().ok()?;
    (n >= 1 && n <= last_minted && n.to_string() == value).then_some(n)
}

/// How many records [`list_by_recid`] would return over all its pages with these options
/// (`after` and `limit` aside): it reads every `recid` PID row and the row of each record it
/// names, one pass over the PIDs in key order.
pub(crate) fn count_by_recid<V: View>(v: &V, with_deleted: bool) -> Result<u64> {
    let last_minted = v
        .pid_counters()?
        .get(RECID)?
        .map(|g| g.value())
        .unwrap_or(0);
    let mut total = 0;
    for e in v.pids()?.range((RECID, "")..)? {
        let (k, val) = e?;
        let (pid_type, value) = k.value();
        if pid_type != RECID {
            break;
        }
        if listed_recid(value, last_minted).is_none() {
            continue;
        }
        let pid: PidRow = dec(val.value(), "pids")?;
        let wanted = match pid.status {
            PidStatus::Registered => true,
            PidStatus::Deleted => with_deleted,
            PidStatus::Redirected { .. } => false,
        };
        if !wanted {
            continue;
        }
        match record_row(v, RecordId::from_raw(pid.record))? {
            Some(row) if with_deleted || !row.deleted => total += 1,
            _ => {}
        }
    }
    Ok(total)
}

pub(crate) fn list_by_recid<V: View>(v: &V, opts: &RecordListOptions) -> Result<RecordPage> {
    let last_minted = v
        .pid_counters()?
        .get(RECID)?
        .map(|g| g.value())
        .unwrap_or(0);
    let limit = opts.limit.max(1);
    let mut page = RecordPage::default();
    let mut n = opts.after.unwrap_or(0);
    while n < last_minted {
        n += 1;
        let Some(pid) = pid_row(v, RECID, &n.to_string())? else {
            continue;
        };
        let wanted = match pid.status {
            PidStatus::Registered => true,
            PidStatus::Deleted => opts.with_deleted,
            PidStatus::Redirected { .. } => false,
        };
        if !wanted {
            continue;
        }
        let id = RecordId::from_raw(pid.record);
        let Some(row) = record_row(v, id)? else {
            continue;
        };
        if row.deleted && !opts.with_deleted {
            continue;
        }
        if page.records.len() == limit {
            // A record exists past the page: the page ends at the previous one.
            page.next = page.records.last().map(|r| r.recid);
            break;
        }
        page.records.push(ListedRecord {
            recid: n,
            record: to_record(v, id, &row)?,
        });
    }
    Ok(page)
}

/// Which records [`RecordsQuery::list_records_by_update`](super::RecordsQuery::list_records_by_update)
/// returns: every record, with or without a `recid`, most recently updated first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatedListOptions {
    /// Only records listed after this position (the `next` of the previous page).
    pub after: Option<UpdateCursor>,
    /// At most this many records (at least one is asked for even when 0 is given).
    pub limit: usize,
    /// Include soft-deleted records (they come with an empty body).
    pub with_deleted: bool,
}

impl Default for UpdatedListOptions {
    fn default() -> Self {
        UpdatedListOptions {
            after: None,
            limit: 10,
            with_deleted: false,
        }
    }
}

/// A position in the by-update order: a record's last update time and its id (which orders
/// records updated in the same microsecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpdateCursor {
    /// The record's last update.
    pub updated: Timestamp,
    /// The record.
    pub id: RecordId,
}

/// One page of records, most recently updated first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdatedPage {
    /// The records, newest update first (ties: higher id first).
    pub records: Vec<Record>,
    /// The cursor for the next page (`after` of the next call), or `None` on the last page.
    pub next: Option<UpdateCursor>,
}

/// A page in by-update order. The store keeps no index by update time, so each page reads
/// every record's row (not its body) once, keeping only the best `limit + 1` positions in a
/// heap: memory holds one page, time grows with the number of records.
pub(crate) fn list_by_update<V: View>(v: &V, opts: &UpdatedListOptions) -> Result<UpdatedPage> {
    let limit = opts.limit.max(1);
    // A max-heap on the listing order's "later" end: newest first means the smallest
    // (updated, id) lies last, so the heap's top is the entry to drop when it overflows.
    let mut best: BinaryHeap<std::cmp::Reverse<UpdateCursor>> = BinaryHeap::new();
    let deferred = v.deferred(Hot::Records);
    each_row(v.records()?, deferred, "records", |id, row: RecordRow| {
        if row.deleted && !opts.with_deleted {
            return Ok(());
        }
        let at = UpdateCursor {
            updated: row.updated,
            id: RecordId::from_raw(id),
        };
        if opts.after.is_some_and(|after| at >= after) {
            return Ok(());
        }
        best.push(std::cmp::Reverse(at));
        if best.len() > limit + 1 {
            best.pop();
        }
        Ok(())
    })?;
    let mut order: Vec<UpdateCursor> = best.into_iter().map(|r| r.0).collect();
    order.sort_unstable_by(|a, b| b.cmp(a));
    let more = order.len() > limit;
    order.truncate(limit);
    let mut page = UpdatedPage::default();
    for at in &order {
        let row = record_row(v, at.id)?.ok_or_else(|| {
            crate::Error::corrupt(format!("record {} vanished from its snapshot", at.id))
        })?;
        page.records.push(to_record(v, at.id, &row)?);
    }
    if more {
        page.next = order.last().copied();
    }
    Ok(page)
}
