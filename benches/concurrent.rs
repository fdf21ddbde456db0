//! Concurrent durable writers (issue 15, item 1): 1, 2, 4, 8 and 32 threads each creating
//! records with one 1 KiB file, every record its own durable commit, against SQLite holding
//! Invenio's own tables for the same logical work, with the same threads, side by side.
//!
//! ```text
//! cargo bench --features bench-sqlite --bench concurrent               # 1,600 records per run
//! cargo bench --features bench-sqlite --bench concurrent -- --quick    # 320, CI smoke size
//! cargo bench --features bench-sqlite --bench concurrent -- --records 4000 --reps 5
//! cargo bench --features bench-sqlite --bench concurrent -- --threads 1,8   # only these (ratios vs the first)
//! cargo bench --features bench-sqlite --bench concurrent -- --no-sync      # commits' CPU alone
//! ```
//!
//! `--no-sync` commits without waiting for the disk on both sides (recfiles
//! `Durability::Eventual`, SQLite `synchronous=OFF`): what is left is the work each commit does
//! while it holds the writer, which bounds how far sharing syncs can scale.
//!
//! The SQLite baseline is what a user of the Python stack runs today, in SQLite instead of
//! PostgreSQL: per record one transaction inserting the record (`records_metadata`), its first
//! history row (`records_metadata_version`), its bucket (`files_bucket`), the record-bucket
//! link (`records_buckets`), the file (`files_files`) and its object version (`files_object`),
//! with the indexes Invenio declares on them; WAL, `synchronous=FULL`, a 64 MiB cache, one
//! connection per thread. Invenio keeps the file's bytes on the filesystem; here they go in the
//! `files_files` row, so the whole record is durable in the one commit, as in recfiles (this
//! favours SQLite: one sync instead of a file's and the database's).
//!
//! Timings are printed, never asserted; each figure is the median of `--reps` runs, the two
//! systems alternating.

#[path = "common/invenio_sqlite.rs"]
mod invenio;
use recfiles::{Durability, StoreBuilder};
use rusqlite::Connection;
use serde_json::json;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const THREADS: [usize; 5] = [1, 2, 4, 8, 32];

fn payload(i: usize) -> Vec<u8> {
    (0..1024)
        .map(|b| (b as u64 * 31 + i as u64 * 7) as u8)
        .collect()
}

/// Runs `threads` threads, thread `t` calling `one(t, i)` for its share of `0..total`, all
/// starting together; returns the wall time.
fn timed(
    threads: usize,
    total: usize,
    one: impl Fn(usize, usize) -> Res<()> + Sync,
) -> Res<Duration> {
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, one) = (&start, &one);
                s.spawn(move || -> Res<()> {
                    start.wait();
                    for i in (t..total).step_by(threads) {
                        one(t, i)?;
                    }
                    Ok(())
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for h in handles {
            h.join().map_err(|_| "a writer thread panicked")??;
        }
        Ok(began.elapsed())
    })
}

fn recfiles_run(dir: &Path, threads: usize, total: usize, sync: bool) -> Res<Duration> {
    let durability = if sync {
        Durability::Immediate
    } else {
        Durability::Eventual
    };
    let store = StoreBuilder::new()
        .durability(durability)
        .open(dir.join("store.redb"))?;
    timed(threads, total, |t, i| {
        store.write(|tx| {
            let mut record =
                tx.create_record(json!({"title": format!("record {i}"), "thread": t}))?;
            let mut files = tx.record_files(&mut record)?;
            files.put("data.bin", &payload(i)[..])?;
            files.commit()
        })?;
        Ok(())
    })
}

fn sqlite_run(dir: &Path, threads: usize, total: usize, sync: bool) -> Res<Duration> {
    let path = dir.join("invenio.sqlite");
    invenio::create(&path)?;
    let conns: Vec<std::sync::Mutex<Connection>> = (0..threads)
        .map(|_| -> Res<_> {
            let c = invenio::connection(&path)?;
            if !sync {
                c.pragma_update(None, "synchronous", "OFF")?;
            }
            Ok(std::sync::Mutex::new(c))
        })
        .collect::<Res<_>>()?;
    timed(threads, total, |t, i| {
        let mut c = conns[t].lock().map_err(|_| "poisoned")?;
        // IMMEDIATE takes the write lock up front, as a PostgreSQL writer would its rows.
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        invenio::insert_record(&tx, i, t, &payload(i))?;
        tx.commit()?;
        Ok(())
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let quick = args.iter().any(|a| a == "--quick");
    let sync = !args.iter().any(|a| a == "--no-sync");
    let total = value("--records").unwrap_or(if quick { 320 } else { 1600 });
    let reps = value("--reps").unwrap_or(if quick { 1 } else { 3 });
    let threads_list: Vec<usize> = match args.iter().position(|a| a == "--threads") {
        Some(i) => args
            .get(i + 1)
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_default(),
        None => THREADS.to_vec(),
    };
    let kind = if sync {
        "durable"
    } else {
        "unsynced (--no-sync)"
    };
    println!("{kind} record creation, {total} records per run, median of {reps} runs");
    println!(
        "{:>8} {:>14} {:>14} {:>10} {:>12}",
        "threads", "recfiles/s", "sqlite/s", "ratio", "vs first"
    );
    let mut single = None;
    for threads in threads_list {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let dir = tempfile::tempdir()?;
            ours.push(total as f64 / recfiles_run(dir.path(), threads, total, sync)?.as_secs_f64());
            let dir = tempfile::tempdir()?;
            theirs.push(total as f64 / sqlite_run(dir.path(), threads, total, sync)?.as_secs_f64());
        }
        let (ours, theirs) = (median(ours), median(theirs));
        let base = *single.get_or_insert(ours);
        println!(
            "{threads:>8} {ours:>14.0} {theirs:>14.0} {:>9.2}x {:>11.2}x",
            ours / theirs,
            ours / base
        );
    }
    Ok(())
}
