//! Files: Invenio-Files-REST's model.
//!
//! Locations hold buckets, buckets hold object versions, versions point at file instances
//! (whose bytes the [`crate::content`] layer keeps). An *object* is the set of versions that
//! share a (bucket, key); exactly one of them is the head, and a head without a file is a delete
//! marker. Write operations are methods of [`crate::WriteTx`]; queries are methods of
//! [`FilesQuery`], available on read snapshots and inside write transactions alike;
//! [`crate::Store`] adds single-call conveniences that commit on their own.

mod bucket;
mod mimetype;
mod multipart;
mod object;
mod put;
mod query;
pub(crate) mod rows;

pub use bucket::{BucketOptions, SyncChange};
pub use mimetype::guess_mimetype;
pub use multipart::{MultipartUpload, Part, PartOptions};
pub use object::{ListOptions, PutOptions};
pub use query::FilesQuery;
pub(crate) use query::for_each_head;
pub(crate) use rows::*;

use crate::error::{Error, KeyProblem, Result, SizeLimit, shorten};
use crate::ids::{BucketId, FileId, Timestamp, VersionId};
use crate::storage::WriteTx;

/// Name of the location every new store starts with; its content lives inside the store file.
pub const DEFAULT_LOCATION: &str = "default";

/// Storage classes a bucket may have (Invenio's `FILES_REST_STORAGE_CLASS_LIST`).
pub const STORAGE_CLASSES: &[(&str, &str)] = &[("S", "Standard"), ("A", "Archive")];

/// Longest tag key and tag value, in characters (Invenio asserts `len < 256`).
pub const MAX_TAG_LEN: usize = 255;

/// A storage root buckets are placed in (Invenio's `Location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Unique name, `^[a-z][a-z0-9-]+$`, at most 20 characters.
    pub name: String,
    /// Where the location's content lives; `embedded:` for the store file itself.
    pub uri: String,
    /// Whether new buckets go here when no location is named.
    pub default: bool,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub updated: Timestamp,
}

/// A container of objects with a quota (Invenio's `Bucket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's id.
    pub id: BucketId,
    /// Name of its location.
    pub location: String,
    /// `S` (standard) or `A` (archive).
    pub storage_class: String,
    /// Bytes held: every version with a file counts, plus the sizes reserved by open multipart
    /// uploads. Exact and never negative.
    pub size: u64,
    /// Quota in bytes; `None` or `Some(0)` mean no quota (as in Invenio).
    pub quota_size: Option<u64>,
    /// Largest accepted file; `None` means no limit, `Some(0)` refuses every non-empty file.
    pub max_file_size: Option<u64>,
    /// Whether modifications are refused.
    pub locked: bool,
    /// Whether the bucket is soft-deleted.
    pub deleted: bool,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub updated: Timestamp,
}

impl Bucket {
    /// Bytes left under the quota, or `None` without a quota.
    pub fn quota_left(&self) -> Option<u64> {
        match self.quota_size {
            Some(q) if q > 0 => Some(q.saturating_sub(self.size)),
            _ => None,
        }
    }

    /// The smallest limit that applies to one upload, with its kind (Invenio's `size_limit`).
    pub fn size_limit(&self) -> Option<(SizeLimit, u64)> {
        let quota = self.quota_left().map(|q| (SizeLimit::Quota, q));
        let max = self.max_file_size.map(|m| (SizeLimit::MaxFileSize, m));
        match (quota, max) {
            (Some(a), Some(b)) => Some(if b.1 < a.1 { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// One version of an object (Invenio's `ObjectVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The bucket it lives in.
    pub bucket: BucketId,
    /// The object's key.
    pub key: String,
    /// This version's id.
    pub version_id: VersionId,
    /// The file it points to; `None` for a delete marker.
    pub file_id: Option<FileId>,
    /// Size of the file (`None` for a delete marker).
    pub size: Option<u64>,
    /// `blake3:<hex>` of the file (`None` for a delete marker).
    pub checksum: Option<String>,
    /// The explicit MIME type if one was set, else the guess from the key.
    pub mimetype: String,
    /// Whether this is the latest version of its key.
    pub is_head: bool,
    /// Creation time; versions of a key are ordered by it.
    pub created: Timestamp,
    /// Last change.
    pub updated: Timestamp,
}

impl ObjectVersion {
    /// Whether this version is a delete marker (has no file).
    pub fn is_delete_marker(&self) -> bool {
        self.file_id.is_none()
    }

    /// The last path segment of the key, used as the download name.
    pub fn basename(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

/// Checks an object key against the store's rules: non-empty, no NUL, at most `max` bytes.
pub fn validate_key(key: &str, max: usize) -> Result<()> {
    let problem = if key.is_empty() {
        Some(KeyProblem::Empty)
    } else if key.contains('\0') {
        Some(KeyProblem::ContainsNul)
    } else if key.len() > max {
        Some(KeyProblem::TooLong { max })
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::InvalidKey {
            key: shorten(key),
            problem,
        }),
        None => Ok(()),
    }
}

/// The location (other than `name`) among `locations` (name, URI) whose object-store prefix
/// is `uri`'s, or contains it, or lies inside it. Two such locations would keep objects
/// under one prefix while counting their users apart: a collection or the last delete of one
/// would remove objects the other refers to. Only `s3://` URIs keep content outside the store
/// file; others never overlap.
pub(crate) fn overlapping_location<'a>(
    locations: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: &str,
    uri: &str,
) -> Option<String> {
    let prefix = |u: &str| {
        u.strip_prefix("s3://")
            .map(|p| format!("{}/", p.trim_end_matches('/')))
    };
    let mine = prefix(uri)?;
    locations.into_iter().find_map(|(other, other_uri)| {
        let theirs = prefix(other_uri)?;
        (other != name && (mine.starts_with(&theirs) || theirs.starts_with(&mine)))
            .then(|| other.to_string())
    })
}

/// Checks a location name: `^[a-z][a-z0-9-]+$`, 2 to 20 characters.
pub fn validate_location_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = (2..=20).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidLocationName {
            name: shorten(name),
        })
    }
}

pub(crate) fn validate_tag(key: &str, value: &str) -> Result<()> {
    let reason = if key.is_empty() {
        Some("tag key is empty")
    } else if key.chars().count() > MAX_TAG_LEN {
        Some("tag key is longer than 255 characters")
    } else if value.chars().count() > MAX_TAG_LEN {
        Some("tag value is longer than 255 characters")
    } else if key.contains('\0') || value.contains('\0') {
        Some("tag contains a NUL character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidTag {
            key: shorten(key),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn create_default_location(tx: &mut WriteTx<'_>) -> Result<()> {
    tx.create_location(DEFAULT_LOCATION, "embedded:", true)
        .map(|_| ())
}
