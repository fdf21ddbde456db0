//! Fixity: re-hashing stored content and recording the outcome on the file.

use super::{Digests, FileRow, get_file_row, split_file_value, update_file_row};
use crate::error::{Error, Result};
use crate::ids::{FileId, Timestamp};
use crate::storage::{ReadTx, Store, View};
use redb::ReadableTable;

/// The outcome of a fixity run over the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixityReport {
    /// Files checked.
    pub checked: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Files whose content no longer matches their checksums, or whose chunks are missing.
    pub damaged: Vec<FileId>,
}

/// How far a fixity run got ([`Store::verify_all_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FixityProgress {
    /// Files checked so far.
    pub checked: u64,
    /// Bytes re-hashed so far.
    pub bytes: u64,
    /// Damaged files found so far.
    pub damaged: u64,
    /// Files the run checks in all.
    pub total_files: u64,
    /// Bytes the run re-hashes in all.
    pub total_bytes: u64,
}

/// Which files a scheduled fixity run ([`Store::verify_scheduled`]) checks: readable files,
/// the longest unchecked first (never-checked files before all others), as many as the
/// budget allows. Invenio's `schedule_checksum_verification`, run by the application as often
/// as it likes (a timer, an idle moment), so a large archive spreads fixity over days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixitySchedule {
    /// Only files whose last check is at least this old (or that were never checked).
    /// `None`: any file, however recently checked.
    pub older_than: Option<std::time::Duration>,
    /// The bytes a run may re-hash. Files are taken oldest first while their sizes add up to
    /// no more than this, and the run stops at the first file that would exceed it, so the
    /// order is kept: that file is the first of the next run. The first file of a run is
    /// checked whatever its size, so a file bigger than the budget is not skipped for ever.
    /// `None`: no byte limit.
    pub max_bytes: Option<u64>,
    /// The files a run may check. `None`: no limit.
    pub max_files: Option<usize>,
}

/// The order of a scheduled run: never checked first, then by the time of the last check,
/// then by id (files checked in one run share a time).
type Age = (Option<Timestamp>, u128);

/// The files a scheduled run checks, oldest first, found in one pass over `files` keeping only
/// the run's candidates in memory (not one entry per stored file).
fn scheduled_files(snap: &ReadTx, plan: &FixitySchedule) -> Result<Vec<(FileId, FileRow)>> {
    use std::collections::BinaryHeap;
    let max_files = plan.max_files.unwrap_or(usize::MAX);
    if max_files == 0 {
        return Ok(Vec::new());
    }
    let due = plan.older_than.map(|d| Timestamp::now().minus(d));
    let budget = plan.max_bytes.unwrap_or(u64::MAX);
    // The oldest files seen so far that fit the budget, youngest on top; `cutoff` is the
    // oldest file dropped for the budget: nothing younger may enter after it.
    let mut taken: BinaryHeap<(Age, u64)> = BinaryHeap::new();
    let mut rows: std::collections::HashMap<u128, FileRow> = Default::default();
    let mut bytes = 0u64;
    let mut cutoff: Option<Age> = None;
    for e in snap.t.files()?.iter()? {
        let (k, v) = e?;
        let row: FileRow = split_file_value(v.value())?.0;
        if !row.readable || matches!((due, row.last_check_at), (Some(d), Some(at)) if at > d) {
            continue;
        }
        let age = (row.last_check_at, k.value());
        if cutoff.is_some_and(|c| age > c) {
            continue;
        }
        bytes += row.size;
        taken.push((age, row.size));
        rows.insert(k.value(), row);
        while taken.len() > max_files || (taken.len() > 1 && bytes > budget) {
            // The youngest goes, and with it every file younger than it.
            let Some((age, size)) = taken.pop() else {
                break;
            };
            bytes -= size;
            rows.remove(&age.1);
            cutoff = Some(cutoff.map_or(age, |c| c.min(age)));
        }
    }
    let mut out: Vec<(Age, FileRow)> = taken
        .into_iter()
        .filter_map(|(age, _)| rows.remove(&age.1).map(|r| (age, r)))
        .collect();
    out.sort_by_key(|(age, _)| *age);
    Ok(out
        .into_iter()
        .map(|((_, id), row)| (FileId::from_raw(id), row))
        .collect())
}

/// [`check_content`] for content in the store file; for content in another location, the
/// object read back through a reader (which checks each chunk's hash) and its whole digest.
/// A backend that cannot be reached is an error, not damage: nothing is recorded.
fn check_any(snap: &ReadTx, id: FileId, row: &FileRow) -> Result<bool> {
    if super::remote::file_location(&snap.t, id)?.is_none() {
        return check_content(&snap.t, id, row);
    }
    let mut reader = super::FileReader::new(snap.txn(), id, row.size, row.blake3, &snap.cfg)?;
    let mut digests = Digests::new(row.md5.is_some());
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < row.size {
        let n = match reader.read_range_into(at, &mut buf) {
            Ok(n) => n,
            Err(Error::Corruption { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        digests.update(&buf[..n]);
        at += n as u64;
    }
    let (b3, md5) = digests.finish();
    Ok(b3 == row.blake3 && (row.md5.is_none() || md5 == row.md5))
}

/// Re-hashes every chunk of a file (or its inline bytes) and the whole content. `Ok(true)`
/// when everything matches.
fn check_content<V: View>(v: &V, id: FileId, row: &FileRow) -> Result<bool> {
    let mut digests = Digests::new(row.md5.is_some());
    let mut length = 0u64;
    let mut chunks = v
        .file_chunks()?
        .range((id.raw(), 0)..=(id.raw(), u64::MAX))?;
    let value = v.files()?.get(id.raw())?;
    let inline = match &value {
        Some(g) => split_file_value(g.value())?.1,
        None => &[],
    };
    if !inline.is_empty() {
        // Inline content: no chunk rows may exist beside it.
        if chunks.next().is_some() {
            return Ok(false);
        }
        digests.update(inline);
        length = inline.len() as u64;
    } else {
        for e in chunks {
            let (k, h) = e?;
            let (off, hash) = (k.value().1, h.value());
            if off != length {
                return Ok(false);
            }
            let Some(id) = super::chunk_id(v, &hash)? else {
                return Ok(false);
            };
            let Some(bytes) = v.chunks()?.get(id)? else {
                return Ok(false);
            };
            let bytes = bytes.value();
            if blake3::hash(bytes).as_bytes() != &hash {
                return Ok(false);
            }
            digests.update(bytes);
            length += bytes.len() as u64;
        }
    }
    if length != row.size {
        return Ok(false);
    }
    let (b3, md5) = digests.finish();
    Ok(b3 == row.blake3 && (row.md5.is_none() || md5 == row.md5))
}

/// Checks each of `files` on `snap`: the report, and each file's result to record.
/// `progress` sees the report after each file.
fn check_files(
    snap: &ReadTx,
    files: impl IntoIterator<Item = Result<(FileId, FileRow)>>,
    progress: &mut dyn FnMut(&FixityReport),
) -> Result<(FixityReport, Vec<(FileId, bool)>)> {
    let mut report = FixityReport::default();
    let mut results = Vec::new();
    for file in files {
        let (id, row) = file?;
        let ok = check_any(snap, id, &row)?;
        report.checked += 1;
        report.bytes += row.size;
        if !ok {
            report.damaged.push(id);
        }
        results.push((id, ok));
        progress(&report);
    }
    Ok((report, results))
}

impl Store {
    /// Verifies one file's content against its checksums, records `last_check` and
    /// `last_check_at`, and returns the result.
    pub fn verify_file(&self, id: FileId) -> Result<bool> {
        self.inner.contain(|| self.verify_file_contained(id))
    }

    fn verify_file_contained(&self, id: FileId) -> Result<bool> {
        let snap = self.snapshot()?;
        let row = get_file_row(&snap.t, id)?.ok_or(Error::FileNotFound { file: id })?;
        let ok = check_any(&snap, id, &row)?;
        drop(snap);
        self.record_checks(&[(id, ok)])?;
        Ok(ok)
    }

    /// Verifies every readable file in the store (fixity), recording each result, and reports
    /// the damaged ones.
    pub fn verify_all(&self) -> Result<FixityReport> {
        self.verify_all_with(|_| {})
    }

    /// [`Self::verify_all`], telling `progress` how far it got after each file: files and
    /// bytes checked so far and damaged, out of the totals it counted first (from the file
    /// rows, on the same snapshot), for a progress bar.
    pub fn verify_all_with(
        &self,
        mut progress: impl FnMut(&FixityProgress),
    ) -> Result<FixityReport> {
        self.inner
            .contain(|| self.verify_all_contained(&mut progress))
    }

    fn verify_all_contained(
        &self,
        progress: &mut dyn FnMut(&FixityProgress),
    ) -> Result<FixityReport> {
        let snap: ReadTx = self.snapshot()?;
        let mut total = FixityProgress::default();
        for e in snap.t.files()?.iter()? {
            let (_, v) = e?;
            let row: FileRow = split_file_value(v.value())?.0;
            if row.readable {
                total.total_files += 1;
                total.total_bytes += row.size;
            }
        }
        let mut on_file = |r: &FixityReport| {
            progress(&FixityProgress {
                checked: r.checked,
                bytes: r.bytes,
                damaged: r.damaged.len() as u64,
                ..total
            })
        };
        let readable = snap.t.files()?.iter()?.filter_map(|e| {
            let row = e.map_err(Error::from).and_then(|(k, v)| {
                let row: FileRow = split_file_value(v.value())?.0;
                Ok((FileId::from_raw(k.value()), row))
            });
            match row {
                Ok((_, r)) if !r.readable => None,
                other => Some(other),
            }
        });
        let (report, results) = check_files(&snap, readable, &mut on_file)?;
        drop(snap);
        self.record_all_checks(&results)?;
        Ok(report)
    }

    /// A scheduled fixity run: verifies the files `plan` picks (the longest unchecked first,
    /// within its age, byte and file limits; see [`FixitySchedule`]), records each result as
    /// [`Self::verify_file`] does, and reports them. Running it repeatedly with a budget
    /// cycles through every file; a damaged file stays damaged, and is reported again on its
    /// next turn.
    pub fn verify_scheduled(&self, plan: &FixitySchedule) -> Result<FixityReport> {
        let snap: ReadTx = self.snapshot()?;
        let planned = scheduled_files(&snap, plan)?.into_iter().map(Ok);
        let (report, results) = check_files(&snap, planned, &mut |_| {})?;
        drop(snap);
        self.record_all_checks(&results)?;
        Ok(report)
    }

    /// Records fixity results a thousand files per transaction.
    fn record_all_checks(&self, results: &[(FileId, bool)]) -> Result<()> {
        for batch in results.chunks(1000) {
            self.record_checks(batch)?;
        }
        Ok(())
    }

    fn record_checks(&self, results: &[(FileId, bool)]) -> Result<()> {
        // Damage found: readers must check again whatever they checked before (with
        // `ReadVerification::Once`, chunks checked earlier are otherwise trusted until reopening).
        if results.iter().any(|(_, ok)| !ok)
            && let Some(direct) = &self.inner.cfg.direct
        {
            direct.forget_all();
        }
        let now = Timestamp::now();
        self.write(|tx| {
            for (id, ok) in results {
                // A file removed since the snapshot has nothing to record.
                if get_file_row(&tx.t, *id)?.is_some() {
                    update_file_row(&mut tx.t, *id, |row| {
                        row.last_check = Some(*ok);
                        row.last_check_at = Some(now);
                    })?;
                }
            }
            Ok(())
        })
    }
}
