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

use recfiles::{Durability, StoreBuilder};
use rusqlite::{Connection, params};
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

const INVENIO_SCHEMA: &str = "
CREATE TABLE records_metadata (id TEXT PRIMARY KEY, json TEXT, created TEXT NOT NULL,
    updated TEXT NOT NULL, version_id INTEGER NOT NULL);
CREATE TABLE records_metadata_version (id TEXT NOT NULL, json TEXT, created TEXT,
    updated TEXT, version_id INTEGER NOT NULL, transaction_id INTEGER NOT NULL,
    end_transaction_id INTEGER, operation_type INTEGER NOT NULL,
    PRIMARY KEY (id, transaction_id));
CREATE INDEX ix_records_metadata_version_transaction_id
    ON records_metadata_version (transaction_id);
CREATE INDEX ix_records_metadata_version_end_transaction_id
    ON records_metadata_version (end_transaction_id);
CREATE INDEX ix_records_metadata_version_operation_type
    ON records_metadata_version (operation_type);
CREATE TABLE files_bucket (id TEXT PRIMARY KEY, default_location INTEGER NOT NULL,
    default_storage_class TEXT NOT NULL, size INTEGER NOT NULL, quota_size INTEGER,
    max_file_size INTEGER, locked INTEGER NOT NULL, deleted INTEGER NOT NULL,
    created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE records_buckets (record_id TEXT NOT NULL REFERENCES records_metadata (id),
    bucket_id TEXT NOT NULL REFERENCES files_bucket (id), PRIMARY KEY (record_id, bucket_id));
CREATE TABLE files_files (id TEXT PRIMARY KEY, uri TEXT UNIQUE, storage_class TEXT,
    size INTEGER, checksum TEXT, readable INTEGER NOT NULL, writable INTEGER NOT NULL,
    last_check_at TEXT, last_check INTEGER NOT NULL, created TEXT NOT NULL,
    updated TEXT NOT NULL, content BLOB);
CREATE TABLE files_object (bucket_id TEXT NOT NULL REFERENCES files_bucket (id),
    key TEXT NOT NULL, version_id TEXT NOT NULL UNIQUE, file_id TEXT REFERENCES files_files (id),
    _mimetype TEXT, is_head INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY (bucket_id, key, version_id));
CREATE INDEX ix_files_object__mimetype ON files_object (_mimetype);
";

fn sqlite_connection(path: &Path, sync: bool) -> Res<Connection> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", if sync { "FULL" } else { "OFF" })?;
    c.pragma_update(None, "cache_size", -65536)?;
    c.busy_timeout(Duration::from_secs(60))?;
    Ok(c)
}

fn sqlite_run(dir: &Path, threads: usize, total: usize, sync: bool) -> Res<Duration> {
    let path = dir.join("invenio.sqlite");
    sqlite_connection(&path, sync)?.execute_batch(INVENIO_SCHEMA)?;
    let conns: Vec<std::sync::Mutex<Connection>> = (0..threads)
        .map(|_| sqlite_connection(&path, sync).map(std::sync::Mutex::new))
        .collect::<Res<_>>()?;
    timed(threads, total, |t, i| {
        let mut c = conns[t].lock().map_err(|_| "poisoned")?;
        let now = "2026-12-07T12:00:00.000000";
        let (record, bucket, file, version) = (
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
        let body = json!({"title": format!("record {i}"), "thread": t, "_bucket": bucket,
            "_files": [{"key": "data.bin", "bucket": bucket, "version_id": version,
                        "file_id": file, "size": 1024, "checksum": "md5:0"}]})
        .to_string();
        // IMMEDIATE takes the write lock up front, as a PostgreSQL writer would its rows.
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO records_metadata VALUES (?1, ?2, ?3, ?3, 1)",
            params![record, body, now],
        )?;
        tx.execute(
            "INSERT INTO records_metadata_version VALUES (?1, ?2, ?3, ?3, 1, ?4, NULL, 0)",
            params![record, body, now, i as i64],
        )?;
        tx.execute(
            "INSERT INTO files_bucket VALUES (?1, 1, 'S', 1024, NULL, NULL, 0, 0, ?2, ?2)",
            params![bucket, now],
        )?;
        tx.execute(
            "INSERT INTO records_buckets VALUES (?1, ?2)",
            params![record, bucket],
        )?;
        tx.execute(
            "INSERT INTO files_files VALUES (?1, ?2, 'S', 1024, 'md5:0', 1, 0, NULL, 1, ?3, ?3, ?4)",
            params![file, format!("/data/{file}"), now, payload(i)],
        )?;
        tx.execute(
            "INSERT INTO files_object VALUES (?1, 'data.bin', ?2, ?3, 'application/octet-stream', 1, ?4, ?4)",
            params![bucket, version, file, now],
        )?;
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
