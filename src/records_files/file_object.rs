//! `FileObject`: one file of a record, an object version plus the record's metadata for it.

use crate::error::{Error, Result};
use crate::files::ObjectVersion;
use crate::ids::{BucketId, FileId, VersionId};
use serde_json::{Map, Value};

/// The keys [`FileObject::dumps`] always writes, from the object version and its file.
pub const DUMPED_KEYS: [&str; 6] = ["bucket", "checksum", "file_id", "key", "size", "version_id"];

/// Names that cannot be used as file metadata because an object version has an attribute of
/// that name (Invenio reserves every attribute of `ObjectVersion`: columns, relationships,
/// properties, methods and SQLAlchemy internals). `checksum` and `size` are not reserved.
pub const RESERVED_KEYS: &[&str] = &[
    // columns
    "version_id",
    "key",
    "bucket_id",
    "file_id",
    "_mimetype",
    "is_head",
    "created",
    "updated",
    // relationships
    "bucket",
    "file",
    "tags",
    // properties
    "mimetype",
    "basename",
    "deleted",
    // methods
    "copy",
    "copy_from",
    "create",
    "delete",
    "get",
    "get_by_bucket",
    "get_tags",
    "get_versions",
    "relink_all",
    "remove",
    "restore",
    "send_file",
    "set_contents",
    "set_file",
    "set_location",
    "validate_key",
    "ix_uq_partial_files_object_is_head_dll",
    // SQLAlchemy internals (with every `__dunder__` and `_sa_` name, see `is_reserved`)
    "metadata",
    "query",
    "query_class",
    "registry",
];

/// One file of a record (Invenio-Records-Files' `FileObject`): the live head version of a key
/// in the record's bucket, with the record's `_files` entry for it.
///
/// [`get`](FileObject::get) reads object-version attributes first and the metadata second, so
/// `get("key")` is always the real key. Metadata is set through
/// [`RecordFiles::set_metadata`](crate::RecordFiles::set_metadata), which refuses reserved names.
#[derive(Debug, Clone, PartialEq)]
pub struct FileObject {
    object: ObjectVersion,
    data: Map<String, Value>,
}

impl FileObject {
    /// Combines a version with its `_files` entry; the dumped keys are refreshed from the
    /// version, every other entry is kept.
    pub(crate) fn new(object: ObjectVersion, mut data: Map<String, Value>) -> FileObject {
        data.insert("bucket".into(), Value::String(object.bucket.to_string()));
        data.insert(
            "checksum".into(),
            object
                .checksum
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        data.insert(
            "file_id".into(),
            object
                .file_id
                .map(|f| Value::String(f.to_string()))
                .unwrap_or(Value::Null),
        );
        data.insert("key".into(), Value::String(object.key.clone()));
        data.insert(
            "size".into(),
            object.size.map(Value::from).unwrap_or(Value::Null),
        );
        data.insert(
            "version_id".into(),
            Value::String(object.version_id.to_string()),
        );
        FileObject { object, data }
    }

    /// Whether `name` is reserved for object-version attributes: one of [`RESERVED_KEYS`],
    /// a Python `__dunder__` name or a SQLAlchemy `_sa_` name.
    pub fn is_reserved(name: &str) -> bool {
        RESERVED_KEYS.contains(&name)
            || name.starts_with("_sa_")
            || (name.len() > 4 && name.starts_with("__") && name.ends_with("__"))
    }

    /// Fails with `ReservedKey` when `name` cannot hold metadata.
    pub(crate) fn check_name(name: &str) -> Result<()> {
        if Self::is_reserved(name) {
            Err(Error::ReservedKey {
                key: crate::error::shorten(name),
            })
        } else {
            Ok(())
        }
    }

    /// The object version.
    pub fn object(&self) -> &ObjectVersion {
        &self.object
    }

    /// The key (file name).
    pub fn key(&self) -> &str {
        &self.object.key
    }

    /// The version's id.
    pub fn version_id(&self) -> VersionId {
        self.object.version_id
    }

    /// The bucket.
    pub fn bucket(&self) -> BucketId {
        self.object.bucket
    }

    /// The file instance.
    pub fn file_id(&self) -> Option<FileId> {
        self.object.file_id
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.object.size.unwrap_or(0)
    }

    /// `blake3:<hex>` of the content.
    pub fn checksum(&self) -> Option<&str> {
        self.object.checksum.as_deref()
    }

    /// The MIME type (explicit, or guessed from the key).
    pub fn mimetype(&self) -> &str {
        &self.object.mimetype
    }

    /// The value of an object-version attribute, if `name` is one that has a value.
    fn attribute(&self, name: &str) -> Option<Value> {
        let o = &self.object;
        Some(match name {
            "key" => Value::String(o.key.clone()),
            "version_id" => Value::String(o.version_id.to_string()),
            "bucket" | "bucket_id" => Value::String(o.bucket.to_string()),
            "file" | "file_id" => o.file_id.map(|f| Value::String(f.to_string()))?,
            "is_head" => Value::Bool(o.is_head),
            "mimetype" | "_mimetype" => Value::String(o.mimetype.clone()),
            "created" => Value::String(o.created.to_rfc3339()),
            "updated" => Value::String(o.updated.to_rfc3339()),
            "deleted" => Value::Bool(o.is_delete_marker()),
            "basename" => Value::String(o.basename().to_string()),
            _ => return None,
        })
    }

    /// An attribute of the object version if `name` is one, else the metadata value
    /// (Invenio's `fo[name]` / `fo.get(name)`).
    pub fn get(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.attribute(name) {
            return Some(v);
        }
        if Self::is_reserved(name) {
            return None;
        }
        self.data.get(name).cloned()
    }

    /// The extra metadata: the `_files` entry without the dumped keys.
    pub fn metadata(&self) -> Map<String, Value> {
        self.data
            .iter()
            .filter(|(k, _)| !DUMPED_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The `_files` entry: exactly `bucket, checksum, file_id, key, size, version_id` from the
    /// version, plus the extra metadata.
    pub fn dumps(&self) -> Map<String, Value> {
        self.data.clone()
    }

    pub(crate) fn into_data(self) -> Map<String, Value> {
        self.data
    }
}
