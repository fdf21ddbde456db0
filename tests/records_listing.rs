//! Listing records by recid, a page at a time, and the API tokens kept in the store.

use recfiles::prelude::*;
use recfiles::{RecordListOptions, TokenScope};
use serde_json::json;

fn store_with_records(n: u64) -> Store {
    let store = Store::in_memory().unwrap();
    for i in 0..n {
        store
            .write(|tx| {
                let r = tx.create_record(json!({ "n": i }))?;
                tx.mint_recid(r.id())?;
                Ok(())
            })
            .unwrap();
    }
    store
}

fn recids(store: &Store, opts: &RecordListOptions) -> (Vec<u64>, Option<u64>) {
    let page = store.list_records(opts).unwrap();
    (page.records.iter().map(|r| r.recid).collect(), page.next)
}

#[test]
fn records_are_listed_in_number_order_not_text_order() {
    let store = store_with_records(12);
    let opts = RecordListOptions {
        limit: 100,
        ..RecordListOptions::default()
    };
    let (ids, next) = recids(&store, &opts);
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    assert_eq!(next, None);
}

#[test]
fn pages_follow_the_cursor_and_the_last_page_has_no_next() {
    let store = store_with_records(7);
    let mut opts = RecordListOptions {
        limit: 3,
        ..RecordListOptions::default()
    };
    let mut pages = Vec::new();
    loop {
        let (ids, next) = recids(&store, &opts);
        pages.push(ids);
        match next {
            Some(n) => opts.after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, [vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
}

#[test]
fn a_page_that_ends_exactly_at_the_last_record_has_no_next() {
    let store = store_with_records(3);
    let opts = RecordListOptions {
        limit: 3,
        ..RecordListOptions::default()
    };
    assert_eq!(recids(&store, &opts), (vec![1, 2, 3], None));
}

#[test]
fn deleted_records_are_listed_only_when_asked() {
    let store = store_with_records(4);
    store
        .write(|tx| {
            let mut r = tx.resolve_pid(recfiles::RECID, "2")?;
            tx.delete_record(&mut r)?;
            tx.delete_pid(recfiles::RECID, "2")?;
            Ok(())
        })
        .unwrap();
    let live = RecordListOptions::default();
    assert_eq!(recids(&store, &live).0, [1, 3, 4]);
    let all = RecordListOptions {
        with_deleted: true,
        ..RecordListOptions::default()
    };
    let page = store.list_records(&all).unwrap();
    assert_eq!(
        page.records.iter().map(|r| r.recid).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(page.records[1].record.is_deleted());
}

#[test]
fn hard_removed_records_leave_a_gap_that_is_skipped() {
    let store = store_with_records(5);
    let id = store.resolve_pid(recfiles::RECID, "3").unwrap().id();
    store.remove_record(id).unwrap();
    assert_eq!(
        recids(&store, &RecordListOptions::default()).0,
        [1, 2, 4, 5]
    );
}

/// Every recid over all pages, with `with_deleted` as asked.
fn all_listed(store: &Store, with_deleted: bool) -> Vec<u64> {
    let mut opts = RecordListOptions {
        limit: 2,
        with_deleted,
        ..RecordListOptions::default()
    };
    let mut all = Vec::new();
    loop {
        let (ids, next) = recids(store, &opts);
        all.extend(ids);
        match next {
            Some(n) => opts.after = Some(n),
            None => return all,
        }
    }
}

#[test]
fn the_count_is_what_the_pages_list_over_deleted_removed_and_odd_pids() {
    let store = store_with_records(9);
    store
        .write(|tx| {
            // Deleted with its PID, soft-deleted with its PID left registered, redirected,
            // hard-removed; and PIDs the listing does not walk: not canonical decimal, and
            // above the counter.
            let mut r = tx.resolve_pid(recfiles::RECID, "2")?;
            tx.delete_record(&mut r)?;
            tx.delete_pid(recfiles::RECID, "2")?;
            let mut r = tx.resolve_pid(recfiles::RECID, "3")?;
            tx.delete_record(&mut r)?;
            let five = tx.resolve_pid(recfiles::RECID, "5")?.id();
            tx.redirect_pid(recfiles::RECID, "4", recfiles::RECID, "5")?;
            let six = tx.resolve_pid(recfiles::RECID, "6")?.id();
            tx.remove_record(six)?;
            tx.create_pid(recfiles::RECID, "05", five)?;
            tx.create_pid(recfiles::RECID, "99", five)?;
            Ok(())
        })
        .unwrap();
    for with_deleted in [false, true] {
        let listed = all_listed(&store, with_deleted);
        assert_eq!(
            store.read(|r| r.count_records(with_deleted)).unwrap(),
            listed.len() as u64,
            "with_deleted {with_deleted}: listed {listed:?}"
        );
    }
    assert_eq!(all_listed(&store, false), [1, 5, 7, 8, 9]);
}

#[test]
fn a_token_secret_authenticates_until_it_is_revoked() {
    let store = Store::in_memory().unwrap();
    assert!(!store.has_tokens().unwrap());
    let (token, secret) = store.create_token(TokenScope::Read, Some("ci")).unwrap();
    assert!(store.has_tokens().unwrap());
    assert_eq!(
        store.authenticate_token(&secret).unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.authenticate_token("rft_not-it").unwrap(), None);
    assert_eq!(store.tokens().unwrap(), std::slice::from_ref(&token));
    assert!(token.scope.allows(TokenScope::Read) && !token.scope.allows(TokenScope::Write));
    assert_eq!(store.revoke_token(&token.id[..6]).unwrap(), Some(token));
    assert_eq!(store.authenticate_token(&secret).unwrap(), None);
    assert!(store.check().unwrap().is_ok());
}

#[test]
fn the_secret_itself_is_not_in_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let secret = {
        let store = Store::open(&path).unwrap();
        store.create_token(TokenScope::Write, None).unwrap().1
    };
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let store = Store::open(&path).unwrap();
    assert!(store.authenticate_token(&secret).unwrap().is_some());
}
