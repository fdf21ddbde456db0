//! recfiles: records and their files in one embedded, transactional file.
//!
//! recfiles rebuilds Invenio-Records-Files (with the parts of Invenio-Files-REST and
//! Invenio-Records it stands on) as an embedded storage engine. One file (a commit journal,
//! then a redb database) holds JSON records with revisions, buckets of versioned objects, and
//! the chunked, deduplicated file content itself; there is no database server and no directory
//! tree of data files.
//!
//! # A tour: Store → Record → its files → a FileObject
//!
//! A [`Store`] is the open file. A [`Record`] is a JSON object with revisions; by default it
//! owns a bucket, and its *files* are that bucket's live objects, in the order and with the
//! extra metadata that the record's `_files` list keeps. A record's files are changed through
//! [`RecordFiles`] inside a write transaction ([`Store::update_files`] does it in one call and
//! commits the record), and read through a [`FileList`]. Each file is a [`FileObject`]: an
//! [`ObjectVersion`] plus its metadata, where the version's own attributes (`key`,
//! `version_id`, …) are reserved names.
//!
//! The walkthrough of Invenio-Records-Files, step by step (also `examples/quickstart.rs`):
//!
//! ```
//! use recfiles::prelude::*;
//! use recfiles::Error;
//! use serde_json::json;
//!
//! # fn main() -> recfiles::Result<()> {
//! let store = Store::in_memory()?;
//!
//! // A record gets a bucket by default; `without_bucket` makes one without files.
//! let mut record = store.create_record(json!({}))?;
//! assert_eq!(store.files_of(&record)?.map(|f| f.len()), Some(0));
//! let record_nobucket = store.create_record_with(json!({}), &RecordOptions::without_bucket())?;
//! assert!(store.files_of(&record_nobucket)?.is_none());
//!
//! // Create a file, then access it.
//! store.update_files(&mut record, |files| files.put("hello.txt", &b"Hello, World"[..]))?;
//! let files = store.files_of(&record)?.expect("the record has a bucket");
//! assert_eq!(files.len(), 1);
//! assert!(files.contains("hello.txt"));
//! let fileobj = files.get("hello.txt")?.clone();
//! assert_eq!(fileobj.key(), "hello.txt");
//!
//! // Metadata for files; the object version's attributes are reserved names.
//! store.update_files(&mut record, |files| files.set_metadata("hello.txt", "filetype", "txt"))?;
//! let files = store.files_of(&record)?.expect("the record has a bucket");
//! assert_eq!(files.get("hello.txt")?.get("filetype"), Some(json!("txt")));
//! let err = store.update_files(&mut record, |files| files.set_metadata("hello.txt", "key", "test"));
//! assert!(matches!(err, Err(Error::ReservedKey { key }) if key == "key"));
//! assert_eq!(fileobj.get("key"), Some(json!("hello.txt")));
//!
//! // Dumping files: what the record's `_files` holds.
//! let dump = files.dumps();
//! let mut keys: Vec<&str> = dump[0].keys().map(String::as_str).collect();
//! keys.sort();
//! assert_eq!(keys, ["bucket", "checksum", "file_id", "filetype", "key", "size", "version_id"]);
//!
//! // Retrieve a file of a record, or None.
//! let found = store.record_file_factory(None, &record, "hello.txt")?;
//! assert_eq!(found.map(|f| f.key().to_string()).as_deref(), Some("hello.txt"));
//! assert!(store.record_file_factory(None, &record, "invalid")?.is_none());
//! assert!(store.check()?.is_ok());
//! # Ok(())
//! # }
//! ```
//!
//! # Buckets and objects
//!
//! A [`Store`] is the open file. Buckets hold objects; every put makes a new
//! [`ObjectVersion`] that becomes the head of its key, and points at a [`FileInstance`]
//! whose bytes are stored once however often they are uploaded (files of at most 16 KiB
//! excepted: they are stored per upload). Reading gives a
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
//! - [`records`] — Invenio-Records' model: JSON records with gapless revisions, soft and hard
//!   delete, revert, JSON Schema validation, persistent identifiers.
//! - [`records_files`] — the integration: a record's bucket, its files view and `FileObject`.
//! - [`hooks`] — the application's callbacks on record and file changes: before hooks that
//!   may refuse a record change, after hooks that hear of each change once it is durable.
//! - [`transfer`] — a store's whole content as plain data (dumps) and back, with ids and
//!   timestamps unchanged: what `recfiles export` and `import` are built on.
//!
//! The on-disk format is documented in `docs/FORMAT.md`.

#![deny(missing_docs)]

mod bootstrap;
mod check;
pub mod content;
mod error;
pub mod files;
pub mod hooks;
#[cfg(feature = "http")]
pub mod http;
mod ids;
pub mod records;
pub mod records_files;
mod stats;
mod storage;
pub mod tokens;
pub mod transfer;

pub use check::{CheckReport, Invariant, Problem, Subject};
pub use content::{
    ContentBackend, ContentUpload, FileInstance, FileReader, FixityProgress, FixityReport,
    FixitySchedule, GcReport,
};
#[cfg(feature = "s3")]
pub use content::{ObjectStoreBackend, S3Settings};
pub use error::{EngineError, Error, KeyProblem, Result, SchemaViolation, SizeLimit};
pub use files::{
    Bucket, BucketOptions, FilesQuery, ListOptions, Location, MultipartUpload, ObjectVersion, Part,
    PartOptions, PutOptions, SyncChange,
};
pub use hooks::{Event, EventKind, HookError, HookFailure, HookResult, Hooks};
pub use ids::{BucketId, FileId, RecordId, Timestamp, UploadId, VersionId};
pub use records::{
    BUCKET_FIELD, FILES_FIELD, ListedRecord, MAX_JSON_DEPTH, Pid, PidStatus, RECID, Record,
    RecordListOptions, RecordPage, RecordRevision, RecordsQuery, UpdateCursor, UpdatedListOptions,
    UpdatedPage,
};
pub use records_files::{
    DUMPED_KEYS, FileList, FileObject, RESERVED_KEYS, RecordFiles, RecordFilesQuery, RecordOptions,
};
pub use stats::{SpaceStats, StoreStats};
pub use storage::{
    Backend, Durability, FORMAT_VERSION, IdleCheckpoints, MultipartLimits, ReadTx,
    ReadVerification, SalvageReport, Snapshot, Store, StoreBuilder, WriteTx,
};
#[cfg(feature = "testing")]
pub use storage::{FaultKind, FaultPlan, FaultyBackend, FileBackend, SimulatedDisk};
pub use tokens::{ApiToken, TokenScope};

/// Everything a typical user needs, including the query traits.
pub mod prelude {
    pub use crate::{
        BucketId, BucketOptions, FileObject, FilesQuery, ListOptions, Pid, PidStatus, PutOptions,
        Record, RecordFilesQuery, RecordId, RecordOptions, RecordsQuery, Store, StoreBuilder,
        VersionId,
    };
}

// The README's examples are compiled as doc tests, so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
