//! Reopening after a crash (issue 15, item 3), and what quick repair costs durable commits.
//!
//! ```text
//! cargo bench --bench reopen                      # stores of 256 MiB and 1 GiB
//! cargo bench --bench reopen -- --sizes 256,4096  # sizes in MiB
//! cargo bench --bench reopen -- --quick           # 64 MiB, CI smoke size
//! cargo bench --bench reopen -- --rounds 3        # each size and setting three times
//! ```
//!
//! For each size and each setting of `StoreBuilder::quick_repair`: a store gets one large file
//! of that size and then 200 durable one-record commits (timed: the throughput figure; on Linux
//! also the bytes the process wrote per commit), and its file is copied while the store is
//! still open — the bytes a killed process leaves, every commit having returned. The copy is
//! then opened, timed warm (the copy is in the page cache) and, when this process may drop the
//! page cache (root on Linux), cold. Then the store is left idle: its idle checkpoint
//! (`StoreBuilder::idle_checkpoint`, on by default, 1 s; here on a clock the bench moves, so that
//! it cannot run while the first copy is taken) records the engine's allocator state (timed from
//! the clock passing the delay to the checkpoint's end), and a second copy, killed while idle, is
//! opened the same way. Printed, never asserted; the two settings alternate.
//!
//! Where a reopen's time goes, from the engine's repair progress (`StoreBuilder::on_repair`):
//! `before` is the open up to the repair (the journal's replay, the header), `verify` the
//! engine's check of every page's checksum, `walk` its rebuild of the allocator state from
//! the data tree (which reads every page again), `after` the rest (the system tree, the
//! repair's commit, the store's own open). A reopen without repair has only `before`.

use recfiles::prelude::*;
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
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

/// Bytes this process has written so far (Linux `/proc/self/io`, `wchar`), if known.
fn bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
}

/// The small commits' figures: records per second and bytes written per commit; and how long
/// the checkpoint after them took.
struct Commits {
    rate: f64,
    bytes: Option<u64>,
    checkpoint: Duration,
}

/// Builds the crashed copies, killed after the commits and after the checkpoint that follows
/// them; returns the figures and the copies' paths.
fn crashed_copy(
    dir: &Path,
    mib: u64,
    quick: bool,
) -> Res<(Commits, std::path::PathBuf, std::path::PathBuf)> {
    let path = dir.join(format!("live-{mib}-{quick}.redb"));
    let store = Store::builder()
        .quick_repair(quick)
        .idle_clock_by_hand()
        .open(&path)?;
    let bucket = store.create_bucket(&BucketOptions::default())?.id;
    let noise = Noise {
        left: mib << 20,
        x: 0x9E37_79B9_7F4A_7C15 ^ mib,
    };
    store.put_object(bucket, "large", noise, &PutOptions::default())?;
    let n = 200;
    let wrote = bytes_written();
    let t = Instant::now();
    for i in 0..n {
        store.create_record(json!({"title": format!("record {i}")}))?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let bytes = bytes_written().zip(wrote).map(|(b, a)| (b - a) / n);
    let copy = dir.join(format!("crashed-{mib}-{quick}.redb"));
    std::fs::copy(&path, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    let t = Instant::now();
    store.advance_idle_clock(Duration::from_secs(1));
    if !store.wait_idle_checkpoints(1, Duration::from_secs(600)) {
        return Err("no idle checkpoint".into());
    }
    let checkpoint = t.elapsed();
    if store.idle_checkpoints().failed > 0 {
        return Err(format!("idle checkpoint failed: {:?}", store.idle_checkpoints()).into());
    }
    let after = dir.join(format!("checkpointed-{mib}-{quick}.redb"));
    std::fs::copy(&path, &after)?;
    std::fs::File::open(&after)?.sync_all()?;
    drop(store);
    std::fs::remove_file(&path)?;
    Ok((
        Commits {
            rate,
            bytes,
            checkpoint,
        },
        copy,
        after,
    ))
}

/// A timed open: its whole time, and its parts when the engine repaired (see the module docs).
struct Open {
    total: Duration,
    /// before, verify, walk, after.
    parts: Option<[Duration; 4]>,
}

impl Open {
    fn show(&self) -> String {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        match &self.parts {
            Some(p) => format!(
                "{:.1} ms ({:.0}/{:.0}/{:.0}/{:.0})",
                ms(&self.total),
                ms(&p[0]),
                ms(&p[1]),
                ms(&p[2]),
                ms(&p[3])
            ),
            None => format!("{:.1} ms", ms(&self.total)),
        }
    }
}

fn time_open(path: &Path, quick: bool) -> Res<Open> {
    let marks: Arc<Mutex<Vec<(f64, Instant)>>> = Arc::default();
    let seen = Arc::clone(&marks);
    let t = Instant::now();
    let store = Store::builder()
        .quick_repair(quick)
        .on_repair(move |progress| {
            if let Ok(mut m) = seen.lock() {
                m.push((progress, Instant::now()));
            }
        })
        .open(path)?;
    let end = Instant::now();
    drop(store);
    let marks = marks.lock().map_err(|_| "poisoned")?.clone();
    // The engine reports 0.0 at the start of a repair, 0.6 after the checksum pass and 0.9
    // after the data tree's walk (0.3 only when it had to fall back to an older commit).
    let at = |p: f64| {
        marks
            .iter()
            .find(|(q, _)| (q - p).abs() < 1e-9)
            .map(|&(_, i)| i)
    };
    let parts = match (at(0.0), at(0.6), at(0.9)) {
        (Some(a), Some(b), Some(c)) => Some([a - t, b - a, c - b, end - c]),
        _ => None,
    };
    Ok(Open {
        total: end - t,
        parts,
    })
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
        None => vec![256, 1024, 4096],
    };
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args.get(i + 1).ok_or("--rounds needs a number")?.parse()?,
        None => 1,
    };
    let dir = tempfile::tempdir()?;
    println!(
        "{:>9} {:>6} {:>8} {:>8} {:>36} {:>38} {:>11} {:>22}",
        "store MiB",
        "quick",
        "recs/s",
        "B/commit",
        "killed: warm (before/verify/walk/after)",
        "killed: cold (before/verify/walk/after)",
        "idle ckpt",
        "killed idle: warm/cold"
    );
    for mib in sizes {
        for quick in std::iter::repeat_n([true, false], rounds).flatten() {
            let (commits, copy, after) = crashed_copy(dir.path(), mib, quick)?;
            let (warm, cold) = warm_and_cold(dir.path(), &copy, quick)?;
            let (warm_after, cold_after) = warm_and_cold(dir.path(), &after, quick)?;
            println!(
                "{mib:>9} {:>6} {:>8.0} {:>8} {:>36} {cold:>38} {:>8.1} ms {:>22}",
                if quick { "on" } else { "off" },
                commits.rate,
                commits.bytes.map_or("n/a".into(), |b| b.to_string()),
                warm,
                commits.checkpoint.as_secs_f64() * 1e3,
                format!("{warm_after} / {cold_after}"),
            );
        }
    }
    Ok(())
}

/// Opens a fresh copy of `crashed` warm, then `crashed` itself cold (if the page cache can be
/// dropped), and removes it. Each open repairs, so every timing gets its own copy.
fn warm_and_cold(dir: &Path, crashed: &Path, quick: bool) -> Res<(String, String)> {
    let warm_copy = dir.join("warm.redb");
    std::fs::copy(crashed, &warm_copy)?;
    // Written out first (the open's own syncs must not pay for the copy), then read into the
    // page cache.
    std::fs::File::open(&warm_copy)?.sync_all()?;
    std::io::copy(&mut std::fs::File::open(&warm_copy)?, &mut std::io::sink())?;
    let warm = time_open(&warm_copy, quick)?.show();
    std::fs::remove_file(&warm_copy)?;
    let cold = if drop_caches() {
        time_open(crashed, quick)?.show()
    } else {
        "n/a".into()
    };
    std::fs::remove_file(crashed)?;
    Ok((warm, cold))
}
