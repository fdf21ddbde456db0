//! Records and their files: Invenio-Records-Files' integration.
//!
//! A record owns one bucket (created with it, see [`crate::RecordOptions`]). Its *files* are
//! the live heads of that bucket; the record body's `_files` list keeps their order and any
//! extra metadata, one entry per file with exactly the keys `bucket, checksum, file_id, key,
//! size, version_id` plus the metadata.
//!
//! - [`RecordFiles`]: the files view inside a write transaction (put, delete, rename,
//!   sort_by, metadata, flush), from [`WriteTx::record_files`](crate::WriteTx::record_files).
//! - [`FileList`]: a read-only view on a snapshot, from [`RecordFilesQuery::files_of`].
//! - [`FileObject`]: one file, its object version plus its metadata.

pub(crate) mod check;
mod file_object;
mod files_map;
mod lifecycle;
mod list;
mod store;
mod view;

pub use file_object::{DUMPED_KEYS, FileObject, RESERVED_KEYS};
pub use lifecycle::RecordOptions;
pub use list::{FileList, RecordFilesQuery};
#[cfg(feature = "http")]
pub(crate) use store::list_in_files;
pub use view::RecordFiles;
