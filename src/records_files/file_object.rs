//! `FileObject`: one file of a record, an object version plus the record's metadata for it.

use crate::error::{Error, Result};
use crate::files::ObjectVersion;
use crate::ids::{BucketId, FileId, VersionId};
use serde_json::{Map, Value};
use std::sync::LazyLock;
use uuid::Uuid;

/// The keys [`FileObject::dumps`] always writes, from the object version and its file (in
/// sorted order, which the dump relies on).
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
    /// The `_files` entry without the [`DUMPED_KEYS`]: those always come from `object`, so
    /// they are written out only when a dump is asked for.
    extra: Map<String, Value>,
}

/// A UUID in its hyphenated lower-case text form (what `Display` of the ids prints), written
/// straight into a string of the right size.
fn uuid_text(u: Uuid) -> String {
    u.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// The value a dump holds for `DUMPED_KEYS[at]`.
fn dumped_at(o: &ObjectVersion, at: usize) -> Value {
    match at {
        0 => Value::String(uuid_text(o.bucket.uuid())),
        1 => o.checksum.clone().map_or(Value::Null, Value::String),
        2 => o
            .file_id
            .map_or(Value::Null, |f| Value::String(uuid_text(f.uuid()))),
        3 => Value::String(o.key.clone()),
        4 => o.size.map_or(Value::Null, Value::from),
        5 => Value::String(uuid_text(o.version_id.uuid())),
        _ => unreachable!("DUMPED_KEYS has six names"),
    }
}

/// The value a dump holds for one of the [`DUMPED_KEYS`] (`None` for any other name).
fn dumped_value(o: &ObjectVersion, name: &str) -> Option<Value> {
    let at = DUMPED_KEYS.iter().position(|&k| k == name)?;
    Some(dumped_at(o, at))
}

/// A map holding each of the [`DUMPED_KEYS`] with a null value: cloning it and then filling
/// the values in place costs less than inserting six keys one by one, which searches the map
/// each time.
static DUMP_TEMPLATE: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    DUMPED_KEYS
        .iter()
        .map(|&k| (k.to_string(), Value::Null))
        .collect()
});

/// A version's dump: its [`DUMPED_KEYS`] plus the extra metadata `extra` (which has none of
/// them).
fn dump(o: &ObjectVersion, extra: impl Iterator<Item = (String, Value)>) -> Map<String, Value> {
    let mut out = DUMP_TEMPLATE.clone();
    out.extend(extra);
    // The map iterates in key order, and DUMPED_KEYS is sorted: each dumped key is met in
    // turn, with extra keys (if any) in between.
    if out.len() == DUMPED_KEYS.len() {
        for (at, v) in out.values_mut().enumerate() {
            *v = dumped_at(o, at);
        }
    } else {
        let mut at = 0;
        for (k, v) in out.iter_mut() {
            if DUMPED_KEYS.get(at) == Some(&k.as_str()) {
                *v = dumped_at(o, at);
                at += 1;
            }
        }
    }
    out
}

impl FileObject {
    /// Combines a version with its `_files` entry; the dumped keys are refreshed from the
    /// version, every other entry is kept.
    pub(crate) fn new(object: ObjectVersion, mut data: Map<String, Value>) -> FileObject {
        for k in DUMPED_KEYS {
            data.remove(k);
        }
        FileObject {
            object,
            extra: data,
        }
    }

    /// [`new`](Self::new) from a borrowed entry: only the entries that are not dumped keys are
    /// cloned (usually none).
    pub(crate) fn with_entry(object: ObjectVersion, entry: &Map<String, Value>) -> FileObject {
        let dumped = |k: &String| DUMPED_KEYS.contains(&k.as_str());
        // Most entries are a bare dump: then there is nothing to keep.
        let extra = if entry.keys().all(dumped) {
            Map::new()
        } else {
            entry
                .iter()
                .filter(|(k, _)| !dumped(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        FileObject { object, extra }
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
        // `checksum` and `size` are the dumped keys that are neither attributes nor reserved.
        match dumped_value(&self.object, name) {
            Some(v) => Some(v),
            None => self.extra.get(name).cloned(),
        }
    }

    /// The extra metadata: the `_files` entry without the dumped keys.
    pub fn metadata(&self) -> Map<String, Value> {
        self.extra.clone()
    }

    /// The `_files` entry: exactly `bucket, checksum, file_id, key, size, version_id` from the
    /// version, plus the extra metadata.
    pub fn dumps(&self) -> Map<String, Value> {
        dump(
            &self.object,
            self.extra.iter().map(|(k, v)| (k.clone(), v.clone())),
        )
    }

    /// The dump, taking the metadata instead of cloning it.
    pub(crate) fn into_data(self) -> Map<String, Value> {
        dump(&self.object, self.extra.into_iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{FileId, Timestamp};

    fn version(key: &str) -> ObjectVersion {
        ObjectVersion {
            bucket: BucketId::new(),
            key: key.to_string(),
            version_id: VersionId::new(),
            file_id: Some(FileId::new()),
            size: Some(12),
            checksum: Some(format!("blake3:{}", "ab".repeat(32))),
            mimetype: "text/plain".into(),
            is_head: true,
            created: Timestamp::now(),
            updated: Timestamp::now(),
        }
    }

    #[test]
    fn uuid_text_is_the_display_form() {
        let ids = [
            Uuid::nil(),
            Uuid::max(),
            Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            Uuid::now_v7(),
        ];
        for u in ids {
            assert_eq!(uuid_text(u), u.to_string());
            assert_eq!(uuid_text(u), BucketId::from(u).to_string());
        }
    }

    #[test]
    fn dumped_keys_are_sorted() {
        assert!(DUMPED_KEYS.is_sorted());
    }

    #[test]
    fn a_dump_is_the_entry_with_the_dumped_keys_from_the_version() {
        let o = version("a.txt");
        let entry: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "aaa": 1, "bucket": "stale", "c": [2], "key": "other", "m": null, "size": 99,
            "zzz": {"x": 3}
        }))
        .unwrap();
        let want: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "aaa": 1, "c": [2], "m": null, "zzz": {"x": 3},
            "bucket": o.bucket.to_string(),
            "checksum": o.checksum.clone().unwrap(),
            "file_id": o.file_id.unwrap().to_string(),
            "key": "a.txt",
            "size": 12,
            "version_id": o.version_id.to_string(),
        }))
        .unwrap();
        for f in [
            FileObject::new(o.clone(), entry.clone()),
            FileObject::with_entry(o.clone(), &entry),
        ] {
            assert_eq!(f.dumps(), want);
            assert_eq!(f.metadata().len(), 4);
            assert_eq!(f.get("size"), Some(Value::from(12)));
            assert_eq!(f.get("aaa"), Some(Value::from(1)));
            assert_eq!(f.clone().into_data(), want);
        }
        let plain = FileObject::new(o.clone(), Map::new());
        let mut want_plain = want.clone();
        want_plain.retain(|k, _| DUMPED_KEYS.contains(&k.as_str()));
        assert_eq!(plain.dumps(), want_plain);
        assert_eq!(plain.into_data(), want_plain);
    }
}
