//! Paging through records by last update, and both listings over 100,000 records in bounded
//! memory (measured by a counting allocator around the walk).

use recfiles::prelude::*;
use recfiles::{Durability, RecordListOptions, Timestamp, UpdatedListOptions};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes live now and the most live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most bytes live at once while `f` runs, above what was live when it started.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// Every record id of a by-update walk with pages of `limit`, page by page.
fn walk_by_update(store: &Store, limit: usize, with_deleted: bool) -> Vec<Vec<RecordId>> {
    let mut opts = UpdatedListOptions {
        limit,
        with_deleted,
        ..UpdatedListOptions::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = store.list_records_by_update(&opts).unwrap();
        pages.push(page.records.iter().map(|r| r.id()).collect());
        match page.next {
            Some(next) => opts.after = Some(next),
            None => return pages,
        }
    }
}

#[test]
fn records_come_most_recently_updated_first_and_pages_follow_the_cursor() {
    let store = Store::in_memory().unwrap();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(store.create_record(json!({ "n": i })).unwrap());
    }
    // Updating the second record moves it to the front.
    let mut second = made[1].clone();
    second.body_mut().insert("title".into(), json!("changed"));
    store.commit_record(&mut second).unwrap();
    let ids: Vec<RecordId> = made.iter().map(|r| r.id()).collect();
    let pages = walk_by_update(&store, 2, false);
    assert_eq!(
        pages,
        [vec![ids[1], ids[4]], vec![ids[3], ids[2]], vec![ids[0]],]
    );
    // A page that ends at the last record has no next.
    assert_eq!(
        walk_by_update(&store, 5, false),
        [vec![ids[1], ids[4], ids[3], ids[2], ids[0]]]
    );
    let page = store
        .list_records_by_update(&UpdatedListOptions::default())
        .unwrap();
    assert_eq!(page.records[0].body()["title"], "changed");
}

#[test]
fn records_updated_in_the_same_instant_are_each_listed_once() {
    let store = Store::in_memory().unwrap();
    // One transaction: every record has the same update time.
    let ids: Vec<RecordId> = store
        .write(|tx| {
            (0..7)
                .map(|i| tx.create_record(json!({ "n": i })).map(|r| r.id()))
                .collect()
        })
        .unwrap();
    let listed: Vec<RecordId> = walk_by_update(&store, 3, false).concat();
    let mut expected = ids.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, expected);
}

#[test]
fn deleted_records_are_listed_by_update_only_when_asked_and_records_without_recid_too() {
    let store = Store::in_memory().unwrap();
    let a = store.create_record(json!({"a": 1})).unwrap();
    let mut b = store.create_record(json!({"b": 1})).unwrap();
    store.mint_recid(a.id()).unwrap();
    store.delete_record(&mut b).unwrap();
    assert_eq!(walk_by_update(&store, 10, false), [vec![a.id()]]);
    assert_eq!(walk_by_update(&store, 10, true), [vec![b.id(), a.id()]]);
    let all = store
        .list_records_by_update(&UpdatedListOptions {
            with_deleted: true,
            ..UpdatedListOptions::default()
        })
        .unwrap();
    assert!(all.records[0].is_deleted());
}

#[test]
fn a_hundred_thousand_records_are_paged_in_bounded_memory() {
    const RECORDS: usize = 100_000;
    // A small engine cache, so what the walk reads is not kept.
    let store = Store::builder()
        .cache_size(4 << 20)
        .durability(Durability::Eventual)
        .in_memory()
        .unwrap();
    let filler = "x".repeat(300);
    for batch in 0..RECORDS / 5_000 {
        store
            .write(|tx| {
                for i in 0..5_000 {
                    let n = batch * 5_000 + i;
                    let body = json!({ "n": n, "filler": filler });
                    let r = tx.create_record_with(body, &RecordOptions::without_bucket())?;
                    tx.mint_recid(r.id())?;
                }
                Ok(())
            })
            .unwrap();
    }
    let bodies = RECORDS * filler.len();

    let mut by_recid = 0usize;
    let recid_peak = peak_during(|| {
        let mut opts = RecordListOptions {
            limit: 100,
            ..RecordListOptions::default()
        };
        loop {
            let page = store.list_records(&opts).unwrap();
            for r in &page.records {
                assert_eq!(r.record.body()["n"], by_recid);
                by_recid += 1;
            }
            match page.next {
                Some(n) => opts.after = Some(n),
                None => break,
            }
        }
    });
    assert_eq!(by_recid, RECORDS);

    let mut by_update = 0usize;
    let mut last: Option<(Timestamp, RecordId)> = None;
    let update_peak = peak_during(|| {
        // Each page reads every record's row (there is no index by update time), so pages
        // are larger here: twenty of them.
        let mut opts = UpdatedListOptions {
            limit: 5_000,
            ..UpdatedListOptions::default()
        };
        loop {
            let page = store.list_records_by_update(&opts).unwrap();
            for r in &page.records {
                let at = (r.updated(), r.id());
                assert!(last.is_none_or(|l| at < l), "out of order");
                last = Some(at);
                by_update += 1;
            }
            match page.next {
                Some(n) => opts.after = Some(n),
                None => break,
            }
        }
    });
    assert_eq!(by_update, RECORDS);

    // Both walks hold one page (and the engine's small cache), far below the bodies' total.
    eprintln!("peak bytes: recid walk {recid_peak}, update walk {update_peak}; bodies {bodies}");
    let bound = 12 << 20;
    assert!(bodies > 2 * bound, "the bodies alone must exceed the bound");
    assert!(
        recid_peak < bound,
        "recid walk peaked at {recid_peak} bytes"
    );
    assert!(
        update_peak < bound,
        "update walk peaked at {update_peak} bytes"
    );
}
