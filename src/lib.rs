//! recfiles: records and their files in one embedded, transactional file.
//!
//! recfiles rebuilds Invenio-Records-Files (with the parts of Invenio-Files-REST and
//! Invenio-Records it stands on) as an embedded storage engine. One redb file holds JSON
//! records with revisions, buckets of versioned objects, and the chunked, deduplicated file
//! content itself; there is no database server and no directory tree of data files.
//!
//! # A tour
//!
//! A [`Store`] is the open file. Buckets hold objects; every put makes a new
//! [`ObjectVersion`] that becomes the head of its key, and points at a [`FileInstance`]
//! whose bytes are stored once however often they are uploaded. Reading gives a
//! [`FileReader`], which is `Read + Seek`.
//!
//! ```
//! use recfiles::prelude::*;
//! use std::io::Read;
//!
//! # fn main() -> recfiles::Result<()> {
//! let store = Store::in_memory()?;
//! let bucket = store.create_bucket(&BucketOptions::default())?;
//! let v1 = store.put_object(bucket.id, "hello.txt", &b"Hello, World"[..], &PutOptions::default())?;
//! assert!(v1.is_head);
//!
//! let mut text = String::new();
//! store.open_object(bucket.id, "hello.txt")?.read_to_string(&mut text).map_err(recfiles::Error::Io)?;
//! assert_eq!(text, "Hello, World");
//!
//! // Several steps commit together, or not at all.
//! store.write(|tx| {
//!     tx.put_object(bucket.id, "a.txt", &b"a"[..], &PutOptions::default())?;
//!     tx.delete_object(bucket.id, "hello.txt")?;
//!     Ok(())
//! })?;
//! assert!(store.object(bucket.id, "hello.txt")?.is_none());
//! assert!(store.check()?.is_ok());
//! # Ok(())
//! # }
//! ```
//!
//! # Layers
//!
//! - `storage` — where bytes and rows live: the redb tables, encodings, transactions.
//! - [`content`] — how a file's bytes are chunked, deduplicated, read back and verified.
//! - [`files`] — Invenio-Files-REST's model: locations, buckets, object versions, tags,
//!   multipart uploads, quotas and locks.
//!
//! The on-disk format is documented in `docs/FORMAT.md`.

#![deny(missing_docs)]

mod check;
pub mod content;
mod error;
pub mod files;
mod ids;
pub mod records;
pub mod records_files;
mod storage;

pub use check::CheckReport;
pub use content::{FileInstance, FileReader, FixityReport};
pub use error::{EngineError, Error, KeyProblem, Result, SchemaViolation, SizeLimit};
pub use files::{
    Bucket, BucketOptions, FilesQuery, ListOptions, Location, MultipartUpload, ObjectVersion,
    Part, PutOptions, SyncChange,
};
pub use ids::{BucketId, FileId, RecordId, Timestamp, UploadId, VersionId};
pub use records::{
    BUCKET_FIELD, FILES_FIELD, Pid, PidStatus, RECID, Record, RecordOptions, RecordRevision,
    RecordsQuery,
};
pub use records_files::{
    DUMPED_KEYS, FileList, FileObject, RESERVED_KEYS, RecordFiles, RecordFilesQuery,
};
pub use storage::{
    Backend, Durability, FORMAT_VERSION, FaultKind, FaultPlan, FaultyBackend, FileBackend,
    MemoryBackend, MultipartLimits, ReadTx, Snapshot, Store, StoreBuilder, WriteTx,
};

/// Everything a typical user needs, including the query traits.
pub mod prelude {
    pub use crate::{
        BucketId, BucketOptions, FileObject, FilesQuery, ListOptions, Pid, PidStatus, PutOptions,
        Record, RecordFilesQuery, RecordId, RecordOptions, RecordsQuery, Store, StoreBuilder,
        VersionId,
    };
}
