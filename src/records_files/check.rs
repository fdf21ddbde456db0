//! The records-files invariant of docs/FORMAT.md, verified by [`crate::Store::check`]: a live
//! record's `_files` lists exactly its bucket's live files, each as that file's head version.

use super::DUMPED_KEYS;
use super::file_object::FileObject;
use crate::check::{Invariant, Problem, Subject, bucket, record};
use crate::error::{Error, Result};
use crate::files::rows::BucketRow;
use crate::files::{ListOptions, for_each_head};
use crate::ids::RecordId;
use crate::records::{FILES_FIELD, RecordRow, to_record};
use crate::storage::RTables;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Appends a problem to `p` per broken link between a record and its bucket: each must
/// name the other, and both must exist.
pub(crate) fn check_links(
    records: &BTreeMap<u128, RecordRow>,
    buckets: &BTreeMap<u128, BucketRow>,
    p: &mut Vec<Problem>,
) {
    // Each bucket naming a record is looked up among the records, then each record's link
    // among the buckets.
    for (&id, b) in buckets {
        let Some(owner) = b.record else { continue };
        if records.get(&owner).and_then(|r| r.bucket) != Some(id) {
            p.push(Problem::new(
                Invariant::RecordBucket,
                [bucket(id), record(owner)],
                format!("bucket {id:x} names record {owner:x}, which does not link it back"),
            ));
        }
    }
    for (id, row) in records {
        let Some(linked) = row.bucket else { continue };
        match buckets.get(&linked).map(|b| b.record) {
            None => p.push(Problem::new(
                Invariant::RecordBucket,
                [record(*id), bucket(linked)],
                format!("record {id:x} links missing bucket {linked:x}"),
            )),
            Some(owner) if owner != Some(*id) => p.push(Problem::new(
                Invariant::RecordBucket,
                [record(*id), bucket(linked)],
                format!("record {id:x} links bucket {linked:x}, which does not name it back"),
            )),
            Some(_) => {}
        }
    }
}

/// Appends one line to `p` per live record whose `_files` disagrees with its bucket: an entry
/// that is not an object with a string `key`, a key listed twice, a live file not listed, a
/// listed key with no live file, or an entry whose `bucket`, `checksum`, `file_id`, `size` or
/// `version_id` are not those of the key's head. A record without `_files` (its files never
/// listed in its body), a soft-deleted one and one whose body does not read back (which
/// `records::check` reports) are not checked.
pub(crate) fn check_files_lists(
    t: &RTables,
    records: &BTreeMap<u128, RecordRow>,
    p: &mut Vec<Problem>,
) -> Result<()> {
    for (&id, row) in records {
        let Some(bucket) = row.bucket.filter(|_| !row.deleted) else {
            continue;
        };
        // A body that does not read back is the record invariants' to report.
        let record = match to_record(t, RecordId::from_raw(id), row) {
            Ok(record) => record,
            Err(Error::Corruption { .. }) => continue,
            Err(e) => return Err(e),
        };
        let Some(listed) = record.body().get(FILES_FIELD) else {
            continue;
        };
        let mut heads: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for_each_head(t, bucket, &ListOptions::default(), |o| {
            heads.insert(o.key.clone(), FileObject::new(o, Map::new()).dumps());
            Ok(())
        })?;
        check_one(id, listed, heads, p);
    }
    Ok(())
}

fn check_one(
    id: u128,
    listed: &Value,
    mut heads: BTreeMap<String, Map<String, Value>>,
    p: &mut Vec<Problem>,
) {
    let Value::Array(entries) = listed else {
        p.push(Problem::new(
            Invariant::FilesList,
            [record(id)],
            format!("record {id:x}: _files is not a list"),
        ));
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (at, entry) in entries.iter().enumerate() {
        let Some(key) = entry.get("key").and_then(Value::as_str) else {
            p.push(Problem::new(
                Invariant::FilesList,
                [record(id)],
                format!("record {id:x}: _files[{at}] is not a file entry with a key"),
            ));
            continue;
        };
        if !seen.insert(key) {
            p.push(Problem::new(
                Invariant::FilesList,
                [record(id), Subject::Key(key.to_string())],
                format!("record {id:x}: _files lists {key:?} twice"),
            ));
            continue;
        }
        let Some(head) = heads.remove(key) else {
            p.push(Problem::new(
                Invariant::FilesList,
                [record(id), Subject::Key(key.to_string())],
                format!(
                    "record {id:x}: _files lists {key:?}, which is not a live file of its bucket"
                ),
            ));
            continue;
        };
        let stale: Vec<&str> = DUMPED_KEYS
            .iter()
            .copied()
            .filter(|k| entry.get(*k) != head.get(*k))
            .collect();
        if !stale.is_empty() {
            p.push(Problem::new(
                Invariant::FilesList,
                [record(id), Subject::Key(key.to_string())],
                format!(
                    "record {id:x}: _files entry of {key:?} differs from its head version in {}",
                    stale.join(", ")
                ),
            ));
        }
    }
    for key in heads.keys() {
        p.push(Problem::new(
            Invariant::FilesList,
            [record(id), Subject::Key(key.clone())],
            format!("record {id:x}: live file {key:?} of its bucket is missing from _files"),
        ));
    }
}
