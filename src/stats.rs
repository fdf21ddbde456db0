//! Statistics: how much a store holds, and how much of it dedup saved.

use crate::content::split_file_value;
use crate::error::Result;
use crate::files::{BucketRow, ObjectRow};
use crate::records::RecordRow;
use crate::storage::View;
use crate::storage::{Store, dec};
use redb::ReadableTable;

/// What [`Store::stats`] counted, on one consistent snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Live (not soft-deleted) records.
    pub records: u64,
    /// Soft-deleted records (still stored, with their revisions).
    pub deleted_records: u64,
    /// Live buckets.
    pub buckets: u64,
    /// Keys whose head is a live version (not a delete marker), across live and deleted
    /// buckets.
    pub objects: u64,
    /// Object versions, delete markers included.
    pub versions: u64,
    /// Delete markers among `versions`.
    pub delete_markers: u64,
    /// File instances (distinct contents after whole-file dedup).
    pub files: u64,
    /// Stored chunks (files that fit in one chunk are inline and have none).
    pub chunks: u64,
    /// The bytes of every version with content, as uploaded: what a copy of every version
    /// as a separate file would take.
    pub logical_bytes: u64,
    /// The content bytes actually stored: every chunk once, plus inline files.
    pub stored_bytes: u64,
}

impl StoreStats {
    /// `logical_bytes / stored_bytes` (1.0 for an empty store): how many times over dedup
    /// stretched the stored bytes.
    pub fn dedup_ratio(&self) -> f64 {
        if self.stored_bytes == 0 {
            1.0
        } else {
            self.logical_bytes as f64 / self.stored_bytes as f64
        }
    }
}

/// How the store file's database pages are used, as the engine counts them
/// ([`Store::space`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpaceStats {
    /// The engine's page size in bytes.
    pub page_size: u64,
    /// Pages in use by the database's trees.
    pub allocated_pages: u64,
    /// Bytes the engine holds but does not use: free pages, and the unused part of allocated
    /// ones. [`Store::compact`] gives back what of it lies at the end of the file.
    pub free_bytes: u64,
}

impl Store {
    /// The engine's page counts: page size, allocated pages, and bytes free inside the file.
    /// The engine counts them only inside a write transaction, so this opens one and aborts it
    /// (nothing is written, and it works on a store opened read-only); it waits for a write
    /// transaction in progress, so do not call it from inside [`Store::write`].
    pub fn space(&self) -> Result<SpaceStats> {
        let stats = self.inner.engine_stats()?;
        Ok(SpaceStats {
            page_size: stats.page_size() as u64,
            allocated_pages: stats.allocated_pages(),
            free_bytes: stats.fragmented_bytes(),
        })
    }

    /// Counts records, buckets, objects, versions, files and chunks, and the logical and
    /// stored content bytes, on one snapshot. It reads every row of those tables (but no
    /// chunk's bytes beyond their length), so it takes time in proportion to the rows.
    pub fn stats(&self) -> Result<StoreStats> {
        let snap = self.snapshot()?;
        let t = &snap.t;
        let mut s = StoreStats::default();
        for e in t.records()?.iter()? {
            let (_, v) = e?;
            let row: RecordRow = dec(v.value(), "records")?;
            if row.deleted {
                s.deleted_records += 1;
            } else {
                s.records += 1;
            }
        }
        for e in t.buckets()?.iter()? {
            let (_, v) = e?;
            let row: BucketRow = dec(v.value(), "buckets")?;
            if !row.deleted {
                s.buckets += 1;
            }
        }
        // Rows of one key are adjacent and ascending by sequence: the last one is the head.
        let mut last: Option<((u128, String), bool)> = None;
        for e in t.objects()?.iter()? {
            let (k, v) = e?;
            let (bucket, key, _) = k.value();
            let row: ObjectRow = dec(v.value(), "objects")?;
            s.versions += 1;
            match &row.content {
                Some(c) => s.logical_bytes += c.size,
                None => s.delete_markers += 1,
            }
            if let Some((prev, live)) = &last
                && (prev.0 != bucket || prev.1 != key)
                && *live
            {
                s.objects += 1;
            }
            last = Some(((bucket, key.to_string()), row.file.is_some()));
        }
        if let Some((_, true)) = last {
            s.objects += 1;
        }
        for e in t.files()?.iter()? {
            let (_, v) = e?;
            let (_, inline) = split_file_value(v.value())?;
            s.files += 1;
            s.stored_bytes += inline.len() as u64;
        }
        for e in t.chunks()?.iter()? {
            let (_, v) = e?;
            s.chunks += 1;
            s.stored_bytes += v.value().len() as u64;
        }
        Ok(s)
    }
}
