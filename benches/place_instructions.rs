//! Instruction counts of the store file's content paths behind `content::place` (reads and
//! releases), for callgrind: the work measured sits in `measure_reads` and `measure_release`,
//! so setup is left out with `--toggle-collect`. Timings are not printed; count instructions:
//!
//! ```text
//! cargo bench --bench place_instructions --no-run
//! valgrind --tool=callgrind --toggle-collect='*measure_reads*' target/release/deps/place_instructions-… reads DIR
//! valgrind --tool=callgrind --toggle-collect='*measure_release*' target/release/deps/place_instructions-… release
//! valgrind --tool=callgrind --toggle-collect='*measure_puts*' target/release/deps/place_instructions-… puts
//! ```
//!
//! `reads DIR`: an 8 MiB file and 2,000 files of 3,000 bytes in a store file in DIR, reopened,
//! read once (so `ReadVerification::Once` has checked every chunk), then 20,000 reads of 512
//! bytes and 200 of 64 KiB at pseudo-random offsets, and 2,000 opens and reads of the small
//! files. `release`: 1,500 files (every third of 40,000 bytes, in 4 KiB chunks; the rest
//! 3,000 bytes, inline) in an in-memory store, then all their versions removed in one
//! transaction. `puts`: in an in-memory store (4 KiB chunks, 64 KiB staging batch), 600
//! `Store::put_object` of 3,000 bytes and 150 of 40,000 bytes (one transaction each), 40 of
//! 200,000 bytes (staged, then adopted), and 1,000 `WriteTx::put_object` of 3,000 bytes in one
//! transaction; every tenth body repeats an earlier one (deduplicated).

use recfiles::VersionId;
use recfiles::prelude::*;
use std::io::Read;

#[path = "common/data.rs"]
mod common_data;
use common_data::data;

#[inline(never)]
fn measure_reads(store: &Store, b: BucketId, smalls: &[String]) -> u64 {
    let mut sum = 0u64;
    // Small reads at pseudo-random offsets of a large chunked file.
    let mut r = store.open_object(b, "large").unwrap();
    let size = r.len();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut buf = [0u8; 512];
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = r.read_range_into(x % (size - 512), &mut buf).unwrap();
        sum += u64::from(buf[n - 1]);
    }
    // 64 KiB ranges.
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum += r.read_range(x % (size - 65536), 65536).unwrap()[100] as u64;
    }
    // Opening and reading small inline files.
    for k in smalls {
        let mut r = store.open_object(b, k).unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        sum += v.len() as u64;
    }
    sum
}

#[inline(never)]
fn measure_release(store: &Store, versions: &[VersionId]) {
    store
        .write(|tx| {
            for v in versions {
                tx.remove_version(*v)?;
            }
            Ok(())
        })
        .unwrap();
}

fn reads(dir: &str) {
    let path = std::path::Path::new(&dir).join("s.redb");
    let _ = std::fs::remove_file(&path);
    let smalls: Vec<String> = (0..2000).map(|i| format!("small{i}")).collect();
    let b = {
        let store = Store::open(&path).unwrap();
        let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
        store
            .put_object(b, "large", &data(1, 8 << 20)[..], &PutOptions::default())
            .unwrap();
        store
            .write(|tx| {
                for (i, k) in smalls.iter().enumerate() {
                    tx.put_object(b, k, &data(i as u64 + 10, 3000)[..], &PutOptions::default())?;
                }
                Ok(())
            })
            .unwrap();
        b
    };
    // No idle checkpoint: one firing during the measured reads would make counts vary.
    let store = Store::builder().idle_checkpoint(None).open(&path).unwrap();
    // Warm: every chunk checked once (ReadVerification::Once), then measured.
    let mut all = Vec::new();
    store
        .open_object(b, "large")
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    println!("{}", measure_reads(&store, b, &smalls));
}

fn release() {
    let store = Store::builder()
        .chunk_size(4096)
        .staging_batch(64 * 1024)
        .in_memory()
        .unwrap();
    let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
    let mut versions = Vec::new();
    store
        .write(|tx| {
            for i in 0..1500u64 {
                // inline small files (unindexed), and chunked files of 10 chunks
                let len = if i % 3 == 0 { 40_000 } else { 3000 };
                let v = tx.put_object(
                    b,
                    &format!("k{i}"),
                    &data(i + 1, len)[..],
                    &PutOptions::default(),
                )?;
                versions.push(v.version_id);
            }
            Ok(())
        })
        .unwrap();
    measure_release(&store, &versions);
    println!("{}", store.stats().unwrap().chunks);
}

#[inline(never)]
fn measure_puts(store: &Store, b: BucketId) {
    let body = |i: u64, len: usize| data(if i % 10 == 9 { i - 1 } else { i } + 1, len);
    let o = PutOptions::default();
    for i in 0..600u64 {
        store
            .put_object(b, &format!("s{i}"), &body(i, 3000)[..], &o)
            .unwrap();
    }
    for i in 0..150u64 {
        store
            .put_object(b, &format!("m{i}"), &body(i, 40_000)[..], &o)
            .unwrap();
    }
    for i in 0..40u64 {
        store
            .put_object(b, &format!("l{i}"), &body(i, 200_000)[..], &o)
            .unwrap();
    }
    store
        .write(|tx| {
            for i in 0..1000u64 {
                tx.put_object(b, &format!("t{i}"), &body(i + 5000, 3000)[..], &o)?;
            }
            Ok(())
        })
        .unwrap();
}

fn puts() {
    let store = Store::builder()
        .chunk_size(4096)
        .staging_batch(64 * 1024)
        .in_memory()
        .unwrap();
    let b = store.create_bucket(&BucketOptions::default()).unwrap().id;
    measure_puts(&store, b);
    println!("{}", store.stats().unwrap().chunks);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("reads") => reads(args.get(2).map_or("/tmp", String::as_str)),
        Some("release") => release(),
        Some("puts") => puts(),
        _ => {
            eprintln!("usage: place_instructions reads DIR | release | puts (see the file's docs)")
        }
    }
}
