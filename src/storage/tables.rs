//! The table layout of the store file. docs/FORMAT.md describes each table; keep them in step.

use crate::error::Result;
use redb::{
    Key, ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, Value,
    WriteTransaction,
};
use std::any::Any;
use std::cell::OnceCell;
use std::collections::BTreeMap;

/// 32-byte blake3 digest, the address of a chunk and the dedup key of a file.
pub(crate) type Hash = [u8; 32];

/// Returns the table in `cell`, opening it with `open` the first time.
fn lazy<T, E>(cell: &OnceCell<T>, open: impl FnOnce() -> std::result::Result<T, E>) -> Result<&T>
where
    crate::error::Error: From<E>,
{
    if let Some(t) = cell.get() {
        return Ok(t);
    }
    let t = open()?;
    // A `OnceCell` is not shared between threads, so nothing can have filled it since `get`.
    Ok(cell.get_or_init(|| t))
}

/// One table of a write transaction, opened the first time it is used. A transaction then pays
/// (in opening, and in redb's bookkeeping at commit) only for the tables it touches, not for
/// every table of the store.
pub(crate) struct Lazy<'t, K: Key + 'static, V: Value + 'static> {
    txn: &'t WriteTransaction,
    def: TableDefinition<'static, K, V>,
    cell: OnceCell<Table<'t, K, V>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> Lazy<'t, K, V> {
    fn new(txn: &'t WriteTransaction, def: TableDefinition<'static, K, V>) -> Self {
        Lazy {
            txn,
            def,
            cell: OnceCell::new(),
        }
    }

    /// The table, for reading.
    pub(crate) fn read(&self) -> Result<&Table<'t, K, V>> {
        lazy(&self.cell, || self.txn.open_table(self.def))
    }

    /// The table, for writing.
    pub(crate) fn write(&mut self) -> Result<&mut Table<'t, K, V>> {
        self.read()?;
        Ok(self
            .cell
            .get_mut()
            .expect("the table was opened by the read just above"))
    }
}

/// A row kept decoded until the transaction commits (see [`Deferred`]).
pub(crate) trait DeferredRow: Any + Send {
    fn encode(&self) -> Result<Vec<u8>>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: serde::Serialize + Any + Send> DeferredRow for T {
    fn encode(&self) -> Result<Vec<u8>> {
        super::enc(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Rows of one `u128`-keyed table that a write transaction changed, kept decoded and written
/// to the table once, when the transaction commits ([`WTables::write_deferred`]).
///
/// A record created with a file in one transaction changes its record row twice (created,
/// then committed with its `_files`) and its bucket row twice (created, then grown by the
/// file): kept here, each is encoded and inserted once, and read back in between without a
/// descent of the tree or a decode. Reads of such a table inside a write transaction go
/// through [`View::deferred`] first; removals go to the table at once (and drop the row from
/// here), so a row is either here or in the table as the transaction sees it.
#[derive(Default)]
pub(crate) struct Deferred {
    rows: BTreeMap<u128, Box<dyn DeferredRow>>,
}

impl Deferred {
    /// The row of `id` if the transaction changed it (`None`: read the table), as a `T`.
    pub(crate) fn get<T: Any>(&self, id: u128) -> Option<&T> {
        self.rows.get(&id).and_then(|r| r.as_any().downcast_ref())
    }

    /// Sets the row of `id`, to be written when the transaction commits.
    pub(crate) fn put(&mut self, id: u128, row: impl DeferredRow) {
        self.rows.insert(id, Box::new(row));
    }

    /// Forgets the row of `id` (the caller removes it from the table).
    pub(crate) fn forget(&mut self, id: u128) {
        self.rows.remove(&id);
    }

    /// Writes every row kept into `table`, in key order, and empties the set.
    fn write_into(&mut self, table: &mut Table<'_, u128, &'static [u8]>) -> Result<()> {
        for (id, row) in std::mem::take(&mut self.rows) {
            table.insert(id, row.encode()?.as_slice())?;
        }
        Ok(())
    }
}

/// Calls `f` with every row of a [`Hot`] table as the transaction sees it, in key order: the
/// table's rows, decoded, with the transaction's deferred rows in their place and among them.
pub(crate) fn each_row<T, R>(
    table: &R,
    deferred: Option<&Deferred>,
    name: &'static str,
    mut f: impl FnMut(u128, T) -> Result<()>,
) -> Result<()>
where
    R: ReadableTable<u128, &'static [u8]>,
    T: serde::de::DeserializeOwned + Any + Clone,
{
    let mut kept = deferred
        .map(|d| d.rows.keys().copied().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .peekable();
    let take = |id: u128| -> Result<T> {
        deferred
            .and_then(|d| d.get::<T>(id))
            .cloned()
            .ok_or_else(|| {
                crate::Error::corrupt(format!("{name}: deferred row {id:x} of another type"))
            })
    };
    for e in table.iter()? {
        let (k, v) = e?;
        let id = k.value();
        while let Some(&d) = kept.peek().filter(|&&d| d < id) {
            kept.next();
            f(d, take(d)?)?;
        }
        if kept.peek() == Some(&id) {
            kept.next();
            f(id, take(id)?)?;
        } else {
            f(id, super::dec(v.value(), name)?)?;
        }
    }
    for d in kept {
        f(d, take(d)?)?;
    }
    Ok(())
}

/// The tables whose rows a write transaction keeps decoded until it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hot {
    Records,
    Buckets,
}

macro_rules! tables {
    ($( $(#[$doc:meta])* $field:ident : $k:ty => $v:ty ;)*) => {
        /// The table definitions, one per table, named as in docs/FORMAT.md.
        #[allow(non_upper_case_globals)]
        pub(crate) mod defs {
            use super::*;
            $( $(#[$doc])* pub(crate) const $field: TableDefinition<'static, $k, $v> =
                TableDefinition::new(stringify!($field)); )*
        }

        /// Every table of one write transaction, each opened when first used. (`pub` only so that
        /// [`crate::storage::Snapshot::Tables`] may name it; the module is private.)
        #[allow(dead_code)]
        pub struct WTables<'t> {
            $( pub(crate) $field: Lazy<'t, $k, $v>, )*
            /// What to do once the transaction has committed (content to delete from other
            /// locations, uploads to let go of).
            pub(crate) after_commit: crate::content::AfterCommit,
            /// Record rows changed by the transaction, written when it commits.
            pub(crate) deferred_records: Deferred,
            /// Bucket rows changed by the transaction, written when it commits.
            pub(crate) deferred_buckets: Deferred,
        }

        /// Every table of one read snapshot, each opened when first used. Owns the snapshot.
        #[allow(dead_code)]
        pub struct RTables {
            $( $field: OnceCell<ReadOnlyTable<$k, $v>>, )*
            // Declared last: the tables above are dropped before the snapshot they read.
            txn: ReadTransaction,
        }

        impl<'t> WTables<'t> {
            pub(crate) fn open(txn: &'t WriteTransaction) -> WTables<'t> {
                WTables {
                    $( $field: Lazy::new(txn, defs::$field), )*
                    after_commit: Default::default(),
                    deferred_records: Deferred::default(),
                    deferred_buckets: Deferred::default(),
                }
            }

            /// Writes the rows kept in [`Deferred`] sets to their tables. Run once the
            /// transaction's work is done, before it commits.
            pub(crate) fn write_deferred(&mut self) -> Result<()> {
                // A transaction that kept no row (most of them) opens neither table.
                if !self.deferred_records.rows.is_empty() {
                    self.deferred_records.write_into(self.records.write()?)?;
                }
                if !self.deferred_buckets.rows.is_empty() {
                    self.deferred_buckets.write_into(self.buckets.write()?)?;
                }
                Ok(())
            }

            /// Opens every table, creating those the store lacks. Run at every open, so a read
            /// snapshot finds every table of this format (even one no write has used yet).
            pub(crate) fn create_all(&self) -> Result<()> {
                $( self.$field.read()?; )*
                Ok(())
            }

            /// Deletes every row of every table except `meta` (see `WriteTx::clear`).
            #[cfg(any(test, feature = "testing"))]
            pub(crate) fn clear_all_but_meta(&mut self) -> Result<()> {
                self.deferred_records = Deferred::default();
                self.deferred_buckets = Deferred::default();
                $(
                    if stringify!($field) != "meta" {
                        self.$field.write()?.retain(|_, _| false)?;
                    }
                )*
                Ok(())
            }
        }

        impl RTables {
            pub(crate) fn open(txn: ReadTransaction) -> RTables {
                RTables { $( $field: OnceCell::new(), )* txn }
            }

            /// The snapshot the tables are read from.
            pub(crate) fn txn(&self) -> &ReadTransaction {
                &self.txn
            }
        }

        /// Read access to every table, implemented by both table sets so queries are written
        /// once.
        #[allow(non_camel_case_types, dead_code)]
        pub(crate) trait View {
            $(
                type $field: ReadableTable<$k, $v>;
                fn $field(&self) -> Result<&Self::$field>;
            )*
            /// The rows of `table` a write transaction changed and has not written yet, which
            /// take precedence over the table's (none in a read snapshot).
            fn deferred(&self, table: Hot) -> Option<&Deferred>;
        }

        impl View for RTables {
            fn deferred(&self, _: Hot) -> Option<&Deferred> {
                None
            }
            $(
                type $field = ReadOnlyTable<$k, $v>;
                fn $field(&self) -> Result<&Self::$field> {
                    lazy(&self.$field, || self.txn.open_table(defs::$field))
                }
            )*
        }

        impl<'t> View for WTables<'t> {
            fn deferred(&self, table: Hot) -> Option<&Deferred> {
                Some(match table {
                    Hot::Records => &self.deferred_records,
                    Hot::Buckets => &self.deferred_buckets,
                })
            }
            $(
                type $field = Table<'t, $k, $v>;
                fn $field(&self) -> Result<&Self::$field> { self.$field.read() }
            )*
        }

        /// The names of every table, for the integrity check.
        #[allow(dead_code)]
        pub(crate) const ALL_TABLES: &[&str] = &[$( stringify!($field), )*];

    };
}

tables! {
    /// Store-wide settings: `format_version`, `chunk_size`, `created`.
    meta: &'static str => &'static [u8];
    /// Location name → bincode `LocationRow`.
    locations: &'static str => &'static [u8];
    /// Bucket id → bincode `BucketRow`.
    buckets: u128 => &'static [u8];
    /// (bucket id, tag key) → tag value.
    bucket_tags: (u128, &'static str) => &'static str;
    /// (bucket id, object key, version sequence) → bincode `ObjectRow`.
    objects: (u128, &'static str, u64) => &'static [u8];
    /// Version id → bincode `VersionLoc` (where the version's row lives).
    versions: u128 => &'static [u8];
    /// (version id, tag key) → tag value.
    object_tags: (u128, &'static str) => &'static str;
    /// File id → bincode `FileRow`, followed by the file's whole content when it fits in one
    /// chunk (stored inline: no `file_chunks`, `chunks` or `chunk_index` rows).
    files: u128 => &'static [u8];
    /// blake3 of a whole file's content → file id (whole-file dedup).
    files_by_hash: Hash => u128;
    /// (file id, byte offset of the chunk in the file) → chunk hash.
    file_chunks: (u128, u64) => Hash;
    /// Chunk id → chunk bytes. Ids are UUID v7 (time-ordered), so new chunks append at the
    /// end of the tree instead of landing between (and rewriting) stored ones.
    chunks: u128 => &'static [u8];
    /// Chunk hash → (chunk id, number of `file_chunks` and `staged_chunks` rows naming it).
    chunk_index: Hash => (u128, u64);
    /// File id → name of the location holding the file's content, for content that is not in
    /// the store file (since format 5).
    remote_files: u128 => &'static str;
    /// (location name, blake3 of a content) → how many files keep that content as the
    /// location's object (since format 5).
    remote_objects: (&'static str, Hash) => u64;
    /// Staging id → bincode `StagingRow` (an upload in progress, or the content of a part).
    staging: u128 => &'static [u8];
    /// (staging id, byte offset) → chunk hash: chunks written by a staged upload.
    staged_chunks: (u128, u64) => Hash;
    /// Upload id → bincode `MultipartRow`.
    multipart: u128 => &'static [u8];
    /// (upload id, part number) → bincode `PartRow`.
    parts: (u128, u32) => &'static [u8];
    /// Record id → bincode `RecordRow` (current state).
    records: u128 => &'static [u8];
    /// (record id, revision id) → bincode `RevisionRow`.
    record_revisions: (u128, u64) => &'static [u8];
    /// (pid_type, pid_value) → bincode `PidRow`.
    pids: (&'static str, &'static str) => &'static [u8];
    /// (record id, pid_type, pid_value) → (): the PIDs of a record (reverse of `pids`).
    record_pids: (u128, &'static str, &'static str) => ();
    /// pid_type → the last value minted for it.
    pid_counters: &'static str => u64;
    /// Schema URL → JSON Schema document (JSON text).
    schemas: &'static str => &'static [u8];
    /// blake3 of an API token's secret → bincode `TokenRow` (the HTTP server's bearer tokens;
    /// the secret itself is never stored).
    api_tokens: Hash => &'static [u8];
}
