//! Reopening after a crash (issue 15, item 3), and what quick repair costs durable commits.
//!
//! ```text
//! cargo bench --bench reopen                      # stores of 256 MiB and 1 GiB
//! cargo bench --bench reopen -- --sizes 256,4096  # sizes in MiB
//! cargo bench --bench reopen -- --quick           # 64 MiB, CI smoke size
//! ```
//!
//! For each size and each setting of `StoreBuilder::quick_repair`: a store gets one large file
//! of that size and then 200 durable one-record commits (timed: the throughput figure), and
//! its file is copied while the store is still open — the bytes a killed process leaves, every
//! commit having returned. The copy is then opened, timed warm (the copy is in the page cache)
//! and, when this process may drop the page cache (root on Linux), cold. Printed, never
//! asserted; the two settings alternate in one run.

use recfiles::prelude::*;
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A reader of `len` pseudo-random bytes (so nothing deduplicates).
struct Noise {
    left: u64,
    x: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn drop_caches() -> bool {
    std::process::Command::new("sync").status().is_ok()
        && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Builds the crashed copy; returns (records per second of the small commits, copy path).
fn crashed_copy(dir: &Path, mib: u64, quick: bool) -> Res<(f64, std::path::PathBuf)> {
    let path = dir.join(format!("live-{mib}-{quick}.redb"));
    let store = Store::builder().quick_repair(quick).open(&path)?;
    let bucket = store.create_bucket(&BucketOptions::default())?.id;
    let noise = Noise {
        left: mib << 20,
        x: 0x9E37_79B9_7F4A_7C15 ^ mib,
    };
    store.put_object(bucket, "large", noise, &PutOptions::default())?;
    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        store.create_record(json!({"title": format!("record {i}")}))?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let copy = dir.join(format!("crashed-{mib}-{quick}.redb"));
    std::fs::copy(&path, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    drop(store);
    std::fs::remove_file(&path)?;
    Ok((rate, copy))
}

fn time_open(path: &Path, quick: bool) -> Res<Duration> {
    let t = Instant::now();
    let store = Store::builder().quick_repair(quick).open(path)?;
    let took = t.elapsed();
    drop(store);
    Ok(took)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick_run = args.iter().any(|a| a == "--quick");
    let sizes: Vec<u64> = match args.iter().position(|a| a == "--sizes") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--sizes needs a list")?
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        None if quick_run => vec![64],
        None => vec![256, 1024],
    };
    let dir = tempfile::tempdir()?;
    println!(
        "{:>9} {:>12} {:>16} {:>14} {:>14}",
        "store MiB", "quick repair", "durable recs/s", "reopen warm", "reopen cold"
    );
    for mib in sizes {
        for quick in [true, false] {
            let (rate, copy) = crashed_copy(dir.path(), mib, quick)?;
            // Each open repairs, so every timing gets a fresh copy of the crashed file.
            let warm_copy = dir.path().join("warm.redb");
            std::fs::copy(&copy, &warm_copy)?;
            // Written out first (the open's own syncs must not pay for the copy), then read
            // into the page cache.
            std::fs::File::open(&warm_copy)?.sync_all()?;
            let _ = std::fs::read(&warm_copy)?;
            let warm = time_open(&warm_copy, quick)?;
            std::fs::remove_file(&warm_copy)?;
            let cold = if drop_caches() {
                format!("{:.1} ms", time_open(&copy, quick)?.as_secs_f64() * 1e3)
            } else {
                "n/a".into()
            };
            std::fs::remove_file(&copy)?;
            println!(
                "{mib:>9} {:>12} {rate:>16.0} {:>11.1} ms {cold:>14}",
                if quick { "on" } else { "off" },
                warm.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
