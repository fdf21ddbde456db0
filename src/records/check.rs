//! The record invariants of docs/FORMAT.md, verified by [`crate::Store::check`], and that every
//! stored body and schema parses back.

use super::pid::PidRow;
use super::{RecordRow, RevisionRow, json_to_body};
use crate::check::{Invariant, Problem, Subject, record};
use crate::error::Result;
use crate::ids::RecordId;
use crate::storage::View;
use crate::storage::{RTables, dec};
use redb::ReadableTable;
use std::collections::{BTreeMap, BTreeSet};

/// Appends one line to `p` per violated record invariant: revisions `0..=current` without
/// gaps and the current one equal to the record row; PIDs and their reverse index naming
/// existing records. (The links between records and buckets are `records_files::check`'s.)
/// Returns every record's row, for the checks that follow.
pub(crate) fn check_invariants(
    t: &RTables,
    p: &mut Vec<Problem>,
) -> Result<BTreeMap<u128, RecordRow>> {
    let mut records: BTreeMap<u128, RecordRow> = BTreeMap::new();
    for e in t.records()?.iter()? {
        let (k, v) = e?;
        records.insert(k.value(), dec(v.value(), "records")?);
    }

    let mut revs: BTreeMap<u128, Vec<(u64, RevisionRow)>> = BTreeMap::new();
    for e in t.record_revisions()?.iter()? {
        let (k, v) = e?;
        let (id, rev) = k.value();
        let row: RevisionRow = dec(v.value(), "record_revisions")?;
        // A body that does not parse back could never be read.
        if let Some(json) = &row.json
            && let Err(e) = json_to_body(json, RecordId::from_raw(id))
        {
            p.push(Problem::new(
                Invariant::Documents,
                [
                    Subject::Revision {
                        record: RecordId::from_raw(id),
                        revision: rev,
                    },
                    record(id),
                ],
                format!("record {id:x} revision {rev}: {e}"),
            ));
        }
        revs.entry(id).or_default().push((rev, row));
    }
    for e in t.schemas()?.iter()? {
        let (k, v) = e?;
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(v.value()) {
            p.push(Problem::new(
                Invariant::Documents,
                [Subject::Schema(k.value().to_string())],
                format!("schema {:?} does not parse: {e}", k.value()),
            ));
        }
    }
    for (id, row) in &records {
        let list = revs.remove(id).unwrap_or_default();
        let numbers: Vec<u64> = list.iter().map(|(n, _)| *n).collect();
        let expected: Vec<u64> = (0..=row.revision).collect();
        if numbers != expected {
            p.push(Problem::new(
                Invariant::RecordRevisions,
                [record(*id)],
                format!(
                    "record {id:x} is at revision {} but has revisions {numbers:?}",
                    row.revision
                ),
            ));
        }
        if let Some((_, last)) = list.last()
            && last.json.is_none() != row.deleted
        {
            p.push(Problem::new(
                Invariant::RecordRevisions,
                [record(*id)],
                format!(
                    "record {id:x}: deleted is {} but its last revision {} a body",
                    row.deleted,
                    if last.json.is_some() { "has" } else { "lacks" }
                ),
            ));
        }
    }
    for id in revs.keys() {
        p.push(Problem::new(
            Invariant::RecordRevisions,
            [record(*id)],
            format!("revisions of missing record {id:x}"),
        ));
    }

    let mut pids: BTreeSet<(u128, String, String)> = BTreeSet::new();
    for e in t.pids()?.iter()? {
        let (k, v) = e?;
        let (pt, pv) = k.value();
        let row: PidRow = dec(v.value(), "pids")?;
        if !records.contains_key(&row.record) {
            p.push(Problem::new(
                Invariant::Pids,
                [
                    Subject::Pid {
                        pid_type: pt.to_string(),
                        pid_value: pv.to_string(),
                    },
                    record(row.record),
                ],
                format!("pid {pt}:{pv} names missing record {:x}", row.record),
            ));
        }
        pids.insert((row.record, pt.to_string(), pv.to_string()));
    }
    let mut indexed: BTreeSet<(u128, String, String)> = BTreeSet::new();
    for e in t.record_pids()?.iter()? {
        let (k, _) = e?;
        let (r, pt, pv) = k.value();
        indexed.insert((r, pt.to_string(), pv.to_string()));
    }
    if indexed != pids {
        let differing = indexed
            .symmetric_difference(&pids)
            .map(|(_, pt, pv)| Subject::Pid {
                pid_type: pt.clone(),
                pid_value: pv.clone(),
            });
        let subjects: Vec<Subject> = differing.collect();
        p.push(Problem::new(
            Invariant::Pids,
            subjects,
            format!(
                "pid index differs from pids: {} indexed, {} pids",
                indexed.len(),
                pids.len()
            ),
        ));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use crate::check::{Invariant, Problem, Subject};
    use crate::records::RecordsQuery;
    use crate::storage::Store;
    use serde_json::json;

    fn problems(store: &Store) -> Vec<Problem> {
        store.check().unwrap().problems
    }

    #[test]
    fn a_gap_in_revisions_is_reported() {
        let store = Store::in_memory().unwrap();
        let mut r = store.create_record(json!({})).unwrap();
        store.commit_record(&mut r).unwrap();
        store.commit_record(&mut r).unwrap();
        assert!(problems(&store).is_empty());
        store
            .write(|tx| {
                tx.t.record_revisions.write()?.remove((r.id().raw(), 1))?;
                Ok(())
            })
            .unwrap();
        let p = problems(&store);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("[0, 2]"), "{p:?}");
        assert_eq!(p[0].invariant, Invariant::RecordRevisions);
        assert_eq!(p[0].subjects, [Subject::Record(r.id())]);
    }

    #[test]
    fn a_bucket_link_without_its_reverse_is_reported() {
        let store = Store::in_memory().unwrap();
        let r = store.create_record(json!({})).unwrap();
        let bucket = r.bucket_id().unwrap();
        store
            .write(|tx| {
                let mut row = tx.any_bucket(bucket)?;
                row.record = None;
                tx.put_bucket_row(bucket.raw(), &row)?;
                Ok(())
            })
            .unwrap();
        let p = problems(&store);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("does not name it back"), "{p:?}");
        assert_eq!(p[0].invariant, Invariant::RecordBucket);
        assert_eq!(
            p[0].subjects,
            [Subject::Record(r.id()), Subject::Bucket(bucket)]
        );
    }

    #[test]
    fn a_bucket_naming_a_record_that_does_not_link_it_is_reported() {
        let store = Store::in_memory().unwrap();
        let r = store.create_record(json!({})).unwrap();
        assert!(problems(&store).is_empty());
        store
            .write(|tx| tx.unlink_record_bucket(r.id().raw()))
            .unwrap();
        let p = problems(&store);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("does not link it back"), "{p:?}");
        assert_eq!(p[0].invariant, Invariant::RecordBucket);
        assert!(p[0].concerns(&Subject::Record(r.id())), "{p:?}");
    }

    #[test]
    fn a_body_or_schema_that_does_not_parse_back_is_reported() {
        let store = Store::in_memory().unwrap();
        let r = store.create_record(json!({"title": "t"})).unwrap();
        assert!(problems(&store).is_empty());
        // Written past the checks, as a store of an earlier build could hold them.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        store
            .write(|tx| {
                let row = crate::records::RevisionRow {
                    json: Some(deep.clone().into_bytes()),
                    updated: tx.now,
                };
                let row = crate::storage::enc(&row)?;
                tx.t.record_revisions
                    .write()?
                    .insert((r.id().raw(), 0), row.as_slice())?;
                tx.t.schemas
                    .write()?
                    .insert("https://example.org/deep.json", deep.as_bytes())?;
                Ok(())
            })
            .unwrap();
        let p = problems(&store);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].message.contains("revision 0") && p[0].message.contains("recursion limit"),
            "{p:?}"
        );
        assert!(p[1].message.contains("deep.json"), "{p:?}");
        assert!(
            p.iter().all(|p| p.invariant == Invariant::Documents),
            "{p:?}"
        );
        assert!(p[0].concerns(&Subject::Revision {
            record: r.id(),
            revision: 0
        }));
        assert_eq!(
            p[1].subjects,
            [Subject::Schema("https://example.org/deep.json".into())]
        );
    }

    #[test]
    fn a_pid_naming_a_missing_record_is_reported() {
        let store = Store::in_memory().unwrap();
        let r = store.create_record(json!({})).unwrap();
        store.mint_recid(r.id()).unwrap();
        store
            .write(|tx| {
                tx.t.records.write()?.remove(r.id().raw())?;
                tx.t.record_revisions.write()?.remove((r.id().raw(), 0))?;
                Ok(())
            })
            .unwrap();
        let p = problems(&store);
        assert!(
            p.iter().any(|l| l.message.contains("pid recid:1")
                && l.invariant == Invariant::Pids
                && l.concerns(&Subject::Record(r.id()))),
            "{p:?}"
        );
        assert!(
            store
                .read(|tx| tx.record_with_deleted(r.id()))
                .unwrap()
                .is_none()
        );
    }
}
