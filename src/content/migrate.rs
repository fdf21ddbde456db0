//! Moving a file's content between locations (Invenio's `migrate_file`) and collecting
//! objects that nothing refers to any more (`gc_location`).

use super::place::Place;
use super::remote::{INCOMING, backend_error, file_location};
use super::{FileInstance, FileRow, Hash, get_file_row};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::storage::{Store, View, WTables};
use std::time::{Duration, SystemTime};

/// What [`Store::gc_location`] found under a location's prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects listed.
    pub listed: u64,
    /// Objects deleted: content nothing refers to and abandoned uploads, older than the grace
    /// period.
    pub deleted: u64,
    /// Unreferenced objects kept because they are younger than the grace period (an upload
    /// whose commit may still come).
    pub young: u64,
    /// Objects whose names recfiles does not give; never touched.
    pub foreign: u64,
}

impl Store {
    /// Moves a file's content to location `to`: the bytes are copied there (read back through
    /// the file's checked reader), checked against the file's blake3, then one commit makes
    /// the file point at its new place and frees the old one (objects of another location are
    /// deleted after that commit). The file keeps its id, checksums and every reference, so
    /// records and versions do not change. `progress` hears of the bytes copied so far and
    /// the total.
    ///
    /// Moving between two locations whose content is in the store file changes nothing. An
    /// interrupted move leaves the file where it was and at most an unreferenced object (or
    /// staged chunks the next open removes); calling it again finishes it, and content
    /// already complete at the destination is checked there rather than sent again.
    pub fn migrate_file(
        &self,
        file: FileId,
        to: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<FileInstance> {
        let (row, from, (target, backend)) = self.read(|r| {
            let row = get_file_row(&r.t, file)?.ok_or(Error::FileNotFound { file })?;
            if !row.readable {
                return Err(Error::FileUnreadable { file });
            }
            let from = Place::from_location(file_location(&r.t, file)?);
            Ok((row, from, Place::of_location(&r.t, &r.cfg, to)?))
        })?;
        if from != target {
            // The bytes go to the new place first (read back through the file's checked
            // reader), outside any transaction; then one commit moves the file over.
            let mut source = self.open_file(file)?;
            let mut staged = target.stage_copy(
                self,
                backend.as_deref(),
                (file, &row),
                &mut source,
                progress,
            )?;
            self.write(|tx| {
                let current = still_at(&tx.t, file, &from)?;
                from.leave(&mut tx.t, file, &current)?;
                staged.adopt_as(tx, file, &current)
            })?;
            staged.committed();
        }
        self.file(file)?.ok_or(Error::FileNotFound { file })
    }

    /// Deletes, from the object store of location `name`, what recfiles put there and nothing
    /// refers to any more: content whose last reference a crash (or a failed delete) left
    /// behind, and abandoned uploads. Only objects older than `grace` go: a younger one may
    /// belong to an upload whose commit is still to come (in another process, say).
    pub fn gc_location(&self, name: &str, grace: Duration) -> Result<GcReport> {
        let backend = self
            .read(|r| r.cfg.remotes.backend_of(&r.t, name))?
            .ok_or_else(|| Error::InvalidOperation {
                reason: "the location keeps its content in the store file",
            })?;
        let listed = backend.list("").map_err(|e| backend_error(name, e))?;
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = GcReport {
            listed: listed.len() as u64,
            ..GcReport::default()
        };
        let mut candidates: Vec<(String, Option<Hash>)> = Vec::new();
        for (key, modified) in listed {
            let hash = match key.strip_prefix(INCOMING) {
                Some(_) => None,
                None => match parse_content_key(&key) {
                    Some(h) => Some(h),
                    None => {
                        report.foreign += 1;
                        continue;
                    }
                },
            };
            if modified > cutoff {
                let referenced = match hash {
                    Some(h) => {
                        self.read(|r| Ok(r.t.remote_objects()?.get((name, h))?.is_some()))?
                    }
                    None => false,
                };
                if !referenced {
                    report.young += 1;
                }
                continue;
            }
            candidates.push((key, hash));
        }
        // Alone against this store's uploads: none is between its upload and its commit.
        let _alone = self.inner.cfg.remotes.exclusive();
        let unused: Vec<String> = self.read(|r| {
            let refs = r.t.remote_objects()?;
            let mut out = Vec::new();
            for (key, hash) in candidates {
                let keep = match hash {
                    Some(h) => refs.get((name, h))?.is_some(),
                    None => false,
                };
                if !keep {
                    out.push(key);
                }
            }
            Ok(out)
        })?;
        for key in unused {
            backend.delete(&key).map_err(|e| backend_error(name, e))?;
            report.deleted += 1;
        }
        Ok(report)
    }
}

/// The blake3 named by a content key (`ab/abcd…`), if `key` is one.
fn parse_content_key(key: &str) -> Option<Hash> {
    let (dir, name) = key.split_once('/')?;
    if name.len() != 64 || dir != &name[..2] {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in name.as_bytes().chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    (super::hex(&out) == name).then_some(out)
}

/// The file's row, if its content is still where the move found it.
fn still_at(t: &WTables<'_>, file: FileId, from: &Place) -> Result<FileRow> {
    let row = get_file_row(t, file)?.ok_or(Error::FileNotFound { file })?;
    if file_location(t, file)?.as_deref() != from.location() {
        return Err(Error::InvalidOperation {
            reason: "the file was moved to another location meanwhile",
        });
    }
    Ok(row)
}
