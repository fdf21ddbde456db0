//! A damaged store file never makes the store panic: every page of a small store zeroed in
//! turn, and random damage, on a cleanly closed file and on a crashed one. `open`, `check`,
//! `verify_all` and every read end in a value or a typed error.

mod common;

use common::{bytes, content};
use recfiles::prelude::*;
use recfiles::{ListOptions, SimulatedDisk};
use serde_json::json;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

const PAGE: usize = 4096;

fn builder() -> StoreBuilder {
    Store::builder()
        .journal_size(64 << 10)
        .chunk_size(4096)
        .staging_batch(16 << 10)
        .cache_size(1 << 20)
}

/// A small store with buckets, versions, inline and chunked files, records with files and a
/// schema. Returns (image after a clean close, image of the store killed while open).
fn small_store_images() -> (Vec<u8>, Vec<u8>) {
    let disk = SimulatedDisk::new();
    let store = builder().open_backend(disk.clone()).unwrap();
    let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
    for i in 0..6u64 {
        let data = content(i, [10, 3000, 9000, 30_000][i as usize % 4]);
        store
            .put_object(b, &format!("k{}", i % 4), &data[..], &PutOptions::default())
            .unwrap();
    }
    store.delete_object(b, "k1").unwrap();
    store
        .register_schema("https://example.org/s.json", &json!({"type": "object"}))
        .unwrap();
    for i in 0..3 {
        let mut r = store
            .create_record(json!({"$schema": "https://example.org/s.json", "title": i}))
            .unwrap();
        store
            .update_files(&mut r, |f| {
                f.put("a.bin", &bytes(i, 5000)[..])?;
                f.set_metadata("a.bin", "type", "main")
            })
            .unwrap();
        store.mint_recid(r.id()).unwrap();
    }
    let crashed = disk.written_image();
    drop(store);
    (disk.written_image(), crashed)
}

/// Everything a user might call on a store opened from `image`; errors are fine, panics are
/// not. Returns whether the store opened.
fn exercise(image: Vec<u8>) -> bool {
    let Ok(store) = builder().open_backend(SimulatedDisk::from_image(image)) else {
        return false;
    };
    let _ = store.check();
    let _ = store.verify_all();
    if let Ok(buckets) = store.buckets() {
        for b in buckets {
            let listing = ListOptions {
                with_deleted: true,
                ..ListOptions::default()
            };
            for head in store.list_objects(b.id, &listing).unwrap_or_default() {
                if let Ok(mut r) = store.open_object(b.id, &head.key) {
                    let _ = r.read_to_end(&mut Vec::new());
                }
                let _ = store.object_versions(b.id, &head.key);
            }
        }
    }
    for recid in 1..=3 {
        if let Ok(r) = store.resolve_pid("recid", &recid.to_string()) {
            let _ = store.files_of(&r);
            let _ = store.record_revisions(r.id());
        }
    }
    let _ = store.create_bucket(&BucketOptions::default());
    true
}

/// Runs `exercise` on each image, counting panics (with where they struck) instead of stopping
/// at the first.
fn panics(images: impl Iterator<Item = (String, Vec<u8>)>) -> (usize, Vec<String>) {
    let mut tried = 0;
    let mut panicked = Vec::new();
    for (name, image) in images {
        tried += 1;
        if catch_unwind(AssertUnwindSafe(|| exercise(image))).is_err() {
            panicked.push(name);
        }
    }
    (tried, panicked)
}

fn zeroed_pages(image: &[u8]) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    (0..image.len().div_ceil(PAGE)).map(move |p| {
        let mut damaged = image.to_vec();
        let end = ((p + 1) * PAGE).min(image.len());
        damaged[p * PAGE..end].fill(0);
        (format!("page {p} zeroed"), damaged)
    })
}

fn random_damage(
    image: &[u8],
    seed: u64,
    count: usize,
) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count).map(move |i| {
        let mut damaged = image.to_vec();
        // A few bytes flipped, or a run overwritten with junk, anywhere in the file.
        for _ in 0..1 + next() % 4 {
            let at = (next() % image.len() as u64) as usize;
            let run = (1 + next() % 64) as usize;
            for b in &mut damaged[at..(at + run).min(image.len())] {
                *b = next() as u8;
            }
        }
        (format!("random damage {i} (seed {seed})"), damaged)
    })
}

#[test]
fn every_page_of_a_closed_store_zeroed_in_turn_never_panics() {
    let (closed, _) = small_store_images();
    let (tried, panicked) = panics(zeroed_pages(&closed));
    assert!(tried > 50, "{tried} images");
    assert!(
        panicked.is_empty(),
        "{} of {tried} panicked: {panicked:?}",
        panicked.len()
    );
}

#[test]
fn every_page_of_a_crashed_store_zeroed_in_turn_never_panics() {
    let (_, crashed) = small_store_images();
    let (tried, panicked) = panics(zeroed_pages(&crashed));
    assert!(
        panicked.is_empty(),
        "{} of {tried} panicked: {panicked:?}",
        panicked.len()
    );
}

#[test]
fn random_damage_to_a_closed_or_crashed_store_never_panics() {
    let (closed, crashed) = small_store_images();
    let count = std::env::var("RECFILES_DAMAGE_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let images = random_damage(&closed, 0x5eed, count).chain(random_damage(&crashed, 0xbad, count));
    let (tried, panicked) = panics(images);
    assert!(
        panicked.is_empty(),
        "{} of {tried} panicked: {panicked:?}",
        panicked.len()
    );
}
