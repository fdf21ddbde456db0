//! Fixity: verify re-hashes stored content and names the damaged files.

mod common;
use common::*;
use recfiles::prelude::*;
use recfiles::{Error, FilesQuery};

#[test]
fn verify_passes_on_intact_files_and_records_the_check() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "a", &bytes(1, 20_000));
    put(&store, b.id, "b", &bytes(2, 100));
    let report = store.verify_all().unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.bytes, 20_100);
    assert!(report.damaged.is_empty());
    let f = store.file(v.file_id.unwrap()).unwrap().unwrap();
    assert_eq!(f.last_check, Some(true));
    assert!(f.last_check_at.is_some());
}

#[test]
fn verify_finds_a_corrupted_chunk_and_reads_refuse_the_damaged_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let marker = b"RECFILES-BITROT-MARKER-".repeat(200);
    let (bucket_id, damaged, intact) = {
        let store = Store::builder().chunk_size(4096).open(&path).unwrap();
        let b = bucket(&store);
        let mut data = bytes(3, 8192);
        data.extend_from_slice(&marker[..4096]);
        let d = put(&store, b.id, "damaged", &data);
        let i = put(&store, b.id, "intact", &bytes(4, 10_000));
        (b.id, d, i)
    };
    assert!(common::damage_file(&path, &marker[..64], 100) >= 1);

    let store = Store::builder().chunk_size(4096).open(&path).unwrap();
    let report = store.verify_all().unwrap();
    assert_eq!(report.damaged, vec![damaged.file_id.unwrap()]);
    assert!(!store.verify_file(damaged.file_id.unwrap()).unwrap());
    assert_eq!(
        store
            .file(damaged.file_id.unwrap())
            .unwrap()
            .unwrap()
            .last_check,
        Some(false)
    );
    let mut r = store.open_object(bucket_id, "damaged").unwrap();
    assert_eq!(
        r.read_range(0, 8192).unwrap(),
        bytes(3, 8192),
        "undamaged chunks still read"
    );
    assert!(
        matches!(r.read_range(8192, 10), Err(Error::Corruption { file: Some(f), .. }) if f == damaged.file_id.unwrap())
    );
    assert_eq!(read_all(&store, bucket_id, "intact"), bytes(4, 10_000));
    assert!(
        store
            .read(|r| r.file(intact.file_id.unwrap()))
            .unwrap()
            .unwrap()
            .last_check
            == Some(true)
    );
}

#[test]
fn without_read_verification_damage_is_still_found_by_fixity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let marker = b"UNVERIFIED-READS-MARKER-".repeat(200);
    let (bucket_id, damaged) = {
        let store = Store::builder().chunk_size(4096).open(&path).unwrap();
        let b = bucket(&store);
        let d = put(&store, b.id, "damaged", &marker[..4096]);
        (b.id, d)
    };
    assert!(common::damage_file(&path, &marker[..64], 10) >= 1);
    let store = Store::builder()
        .chunk_size(4096)
        .verify_reads(false)
        .open(&path)
        .unwrap();
    let read = store
        .open_object(bucket_id, "damaged")
        .unwrap()
        .read_range(0, 4096)
        .unwrap();
    assert_ne!(
        read,
        marker[..4096],
        "the damaged bytes come back unchecked"
    );
    assert_eq!(
        store.verify_all().unwrap().damaged,
        vec![damaged.file_id.unwrap()]
    );
}

/// Files of `sizes` bytes (distinct content), put in order; their file ids.
fn files_of_sizes(store: &Store, sizes: &[usize]) -> Vec<recfiles::FileId> {
    let b = bucket(store);
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            put(store, b.id, &format!("f{i}"), &bytes(100 + i as u64, n))
                .file_id
                .unwrap()
        })
        .collect()
}

fn checked_in(
    report: &recfiles::FixityReport,
    store: &Store,
    ids: &[recfiles::FileId],
) -> Vec<usize> {
    // Which of `ids` the run checked: those whose last check is the newest time recorded.
    let times: Vec<_> = ids
        .iter()
        .map(|id| store.file(*id).unwrap().unwrap().last_check_at)
        .collect();
    let newest = times.iter().flatten().max().copied();
    let out: Vec<usize> = (0..ids.len())
        .filter(|&i| times[i].is_some() && times[i] == newest)
        .collect();
    assert_eq!(out.len() as u64, report.checked, "{report:?}");
    out
}

#[test]
fn a_scheduled_run_checks_the_oldest_files_within_its_byte_budget() {
    let store = small_store();
    let ids = files_of_sizes(&store, &[100; 7]);
    let plan = recfiles::FixitySchedule {
        max_bytes: Some(250),
        ..Default::default()
    };
    // Never-checked files first, in the order they were stored; two per run.
    for run in 0..3 {
        let report = store.verify_scheduled(&plan).unwrap();
        assert_eq!((report.checked, report.bytes), (2, 200), "run {run}");
        assert!(report.damaged.is_empty());
        assert_eq!(checked_in(&report, &store, &ids), [2 * run, 2 * run + 1]);
    }
    // The last unchecked file, then the one checked longest ago.
    let report = store.verify_scheduled(&plan).unwrap();
    assert_eq!(report.checked, 2);
    for (i, id) in ids.iter().enumerate() {
        let f = store.file(*id).unwrap().unwrap();
        assert_eq!(f.last_check, Some(true), "file {i}");
    }
    let again = store.verify_scheduled(&plan).unwrap();
    assert_eq!(checked_in(&again, &store, &ids), [1, 2]);
}

#[test]
fn a_scheduled_run_keeps_the_order_and_checks_a_file_over_the_budget_when_its_turn_comes() {
    let store = small_store();
    let ids = files_of_sizes(&store, &[100, 300, 50]);
    let plan = recfiles::FixitySchedule {
        max_bytes: Some(200),
        ..Default::default()
    };
    // The 300-byte file would pass the budget: the run stops there (the 50-byte file after it
    // waits its turn rather than overtake it).
    let first = store.verify_scheduled(&plan).unwrap();
    assert_eq!((first.checked, first.bytes), (1, 100));
    assert_eq!(checked_in(&first, &store, &ids), [0]);
    // Now it is the oldest: checked alone, over the budget.
    let second = store.verify_scheduled(&plan).unwrap();
    assert_eq!((second.checked, second.bytes), (1, 300));
    assert_eq!(checked_in(&second, &store, &ids), [1]);
    let third = store.verify_scheduled(&plan).unwrap();
    assert_eq!((third.checked, third.bytes), (2, 150));
    assert_eq!(checked_in(&third, &store, &ids), [0, 2]);
}

#[test]
fn a_scheduled_run_skips_files_checked_recently_and_counts_files() {
    let store = small_store();
    let ids = files_of_sizes(&store, &[10, 20, 30, 40]);
    let hour = std::time::Duration::from_secs(3600);
    let by_count = recfiles::FixitySchedule {
        max_files: Some(3),
        older_than: Some(hour),
        ..Default::default()
    };
    let report = store.verify_scheduled(&by_count).unwrap();
    assert_eq!((report.checked, report.bytes), (3, 60));
    // Checked within the hour: only the file never checked is due.
    let report = store.verify_scheduled(&by_count).unwrap();
    assert_eq!((report.checked, report.bytes), (1, 40));
    assert_eq!(store.verify_scheduled(&by_count).unwrap().checked, 0);
    // Due at once: every file, oldest first, as many as allowed.
    let now = recfiles::FixitySchedule {
        older_than: Some(std::time::Duration::ZERO),
        ..by_count
    };
    assert_eq!(store.verify_scheduled(&now).unwrap().checked, 3);
    let none = recfiles::FixitySchedule {
        max_files: Some(0),
        ..Default::default()
    };
    assert_eq!(store.verify_scheduled(&none).unwrap(), Default::default());
    assert_eq!(ids.len(), 4);
}

#[test]
fn a_full_run_reports_its_progress_after_each_file_out_of_the_totals() {
    let store = Store::in_memory().unwrap();
    let ids = files_of_sizes(&store, &[10, 3000, 70_000]);
    let mut seen: Vec<recfiles::FixityProgress> = Vec::new();
    let report = store.verify_all_with(|p| seen.push(*p)).unwrap();
    assert_eq!(report.checked, 3);
    assert_eq!(seen.len(), ids.len(), "one call per file");
    for (i, p) in seen.iter().enumerate() {
        assert_eq!(p.checked, i as u64 + 1);
        assert_eq!((p.total_files, p.total_bytes), (3, 73_010));
        assert_eq!(p.damaged, 0);
    }
    assert_eq!(seen.last().unwrap().bytes, report.bytes);
    assert_eq!(report.bytes, 73_010);
}
