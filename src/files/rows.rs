//! Stored rows of the files layer (bincode-encoded; see docs/FORMAT.md).

use crate::content::FileRow;
use crate::error::Result;
use crate::ids::Timestamp;
use crate::storage::{Hot, View, dec};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LocationRow {
    pub uri: String,
    pub default: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BucketRow {
    pub location: String,
    pub storage_class: String,
    pub size: u64,
    pub quota_size: Option<u64>,
    pub max_file_size: Option<u64>,
    pub locked: bool,
    pub deleted: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// The record this bucket belongs to, if any (the reverse of the record row's `bucket`).
    pub record: Option<u128>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ObjectRow {
    pub version_id: u128,
    pub file: Option<u128>,
    /// The size and digest of `file`, copied from its row when the version got it (a file's
    /// content never changes), so listing versions needs no lookup in `files`. Present
    /// exactly when `file` is.
    pub content: Option<FileContent>,
    pub mimetype: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// What an [`ObjectRow`] keeps of its file's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileContent {
    pub size: u64,
    /// Stored as a byte string (length, then the 32 bytes), which decodes in one copy rather
    /// than as 32 separate elements.
    #[serde(with = "crate::storage::codec::digest_bytes")]
    pub blake3: [u8; 32],
}

impl FileContent {
    pub(crate) fn of(row: &FileRow) -> FileContent {
        FileContent {
            size: row.size,
            blake3: row.blake3,
        }
    }
}

/// Where a version's row lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct VersionLoc {
    pub bucket: u128,
    pub key: String,
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MultipartRow {
    pub bucket: u128,
    pub key: String,
    pub size: u64,
    pub part_size: u64,
    pub created: Timestamp,
    pub updated: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartRow {
    pub staging: u128,
    pub size: u64,
    pub blake3: [u8; 32],
    pub md5: Option<[u8; 16]>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

pub(crate) fn bucket_row<V: View>(v: &V, id: u128) -> Result<Option<BucketRow>> {
    if let Some(row) = v
        .deferred(Hot::Buckets)
        .and_then(|d| d.get::<BucketRow>(id))
    {
        return Ok(Some(row.clone()));
    }
    match v.buckets()?.get(id)? {
        Some(g) => Ok(Some(dec(g.value(), "buckets")?)),
        None => Ok(None),
    }
}

pub(crate) fn version_loc<V: View>(v: &V, id: u128) -> Result<Option<VersionLoc>> {
    match v.versions()?.get(id)? {
        Some(g) => Ok(Some(dec(g.value(), "versions")?)),
        None => Ok(None),
    }
}

pub(crate) fn object_row<V: View>(
    v: &V,
    bucket: u128,
    key: &str,
    seq: u64,
) -> Result<Option<ObjectRow>> {
    match v.objects()?.get((bucket, key, seq))? {
        Some(g) => Ok(Some(dec(g.value(), "objects")?)),
        None => Ok(None),
    }
}

/// A stored row, not yet decoded.
pub(crate) type RawRow<'v> = redb::AccessGuard<'v, &'static [u8]>;

/// The newest version of `key` (its head: the highest sequence), its row undecoded.
fn newest<'v, V: View>(v: &'v V, bucket: u128, key: &str) -> Result<Option<(u64, RawRow<'v>)>> {
    match v
        .objects()?
        .range((bucket, key, 0)..=(bucket, key, u64::MAX))?
        .next_back()
    {
        Some(e) => {
            let (k, val) = e?;
            Ok(Some((k.value().2, val)))
        }
        None => Ok(None),
    }
}

/// The head of `key` and its row.
pub(crate) fn head_row<V: View>(
    v: &V,
    bucket: u128,
    key: &str,
) -> Result<Option<(u64, ObjectRow)>> {
    match newest(v, bucket, key)? {
        Some((seq, val)) => Ok(Some((seq, dec(val.value(), "objects")?))),
        None => Ok(None),
    }
}

/// The sequence number of the head of `key`.
pub(crate) fn head_seq<V: View>(v: &V, bucket: u128, key: &str) -> Result<Option<u64>> {
    Ok(newest(v, bucket, key)?.map(|(seq, _)| seq))
}

pub(crate) fn multipart_row<V: View>(v: &V, id: u128) -> Result<Option<MultipartRow>> {
    match v.multipart()?.get(id)? {
        Some(g) => Ok(Some(dec(g.value(), "multipart")?)),
        None => Ok(None),
    }
}

pub(crate) fn part_row<V: View>(v: &V, upload: u128, part: u32) -> Result<Option<PartRow>> {
    match v.parts()?.get((upload, part))? {
        Some(g) => Ok(Some(dec(g.value(), "parts")?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{dec, enc};

    #[test]
    fn an_object_row_keeps_its_file_digest_through_encoding() {
        let row = ObjectRow {
            version_id: 7,
            file: Some(9),
            content: Some(FileContent {
                size: 1234,
                blake3: *blake3::hash(b"x").as_bytes(),
            }),
            mimetype: None,
            created: Timestamp::now(),
            updated: Timestamp::now(),
        };
        let bytes = enc(&row).unwrap();
        let back: ObjectRow = dec(&bytes, "objects").unwrap();
        assert_eq!(back.content, row.content);
        assert_eq!(back.file, row.file);
        // A digest of the wrong length does not decode.
        let short = bytes
            .windows(33)
            .position(|w| w[0] == 32 && w[1..] == row.content.unwrap().blake3)
            .unwrap();
        let mut bad = bytes.clone();
        bad[short] = 31;
        bad.remove(short + 1);
        assert!(dec::<ObjectRow>(&bad, "objects").is_err());
    }
}
