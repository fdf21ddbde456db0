//! Ingestion benchmark (issue 4): recfiles against the raw filesystem and SQLite, on the same
//! generated data, in one temporary directory, in one process run.
//!
//! ```text
//! cargo bench --bench ingest                     # full size: 1 GiB large file
//! cargo bench --bench ingest -- --quick          # small sizes, CI smoke test
//! cargo bench --bench ingest -- --size-mib 256 --json figures.json
//! cargo bench --bench ingest -- --only-b --durable 1000 --batched 10000   # workload b alone
//! ```
//!
//! Timings are never asserted: the machine is shared and noisy. Each figure is printed beside
//! its baselines, measured side by side in the same run, with the ratio and the target.
//!
//! Peak RSS of the large put is measured in a child process: the bench re-executes itself with
//! `--child-large-put`, the child opens the store, puts the large file (streamed from the
//! generator, never held in memory) and reports its `VmHWM` from `/proc/self/status`. A fresh
//! process has nothing else in its high-water mark, which `clear_refs` (resetting the mark of a
//! process that already touched other data) cannot promise on every kernel. The child's put is
//! also the timed put of workload a, so the store it leaves behind serves workloads d and e.

#[path = "common/invenio_sqlite.rs"]
mod invenio;
#[path = "common/reads.rs"]
mod reads_common;
use reads_common::{offsets, read_all};
use recfiles::prelude::*;
use recfiles::{FileReader, ReadVerification};
use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// recfiles' default chunk payload; the SQLite baseline stores blobs of the same size.
const CHUNK: usize = 1024 * 1024 - 64;
const SMALL: usize = 1024;
const RANGE: usize = 64 * 1024;
const BATCH: usize = 1_000;

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    quick: bool,
    size: u64,
    json: Option<PathBuf>,
    dir: Option<PathBuf>,
    small_records: usize,
    batched_records: usize,
    record_files: usize,
    ranges: usize,
    reps: usize,
    /// Run workload b alone (`--only-b`): for profiling and repeated record-creation runs.
    only_b: bool,
}

fn parse_args() -> Result<Opts, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = false;
    let mut size_mib: Option<u64> = None;
    let mut json = None;
    let mut dir = None;
    let mut reps: Option<usize> = None;
    let mut only_b = false;
    let mut durable: Option<usize> = None;
    let mut batched: Option<usize> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let mut value = || {
            i += 1;
            args.get(i).cloned().ok_or(format!("{a} needs a value"))
        };
        match a {
            "--quick" => quick = true,
            "--size-mib" => {
                let v = value()?;
                size_mib = Some(
                    v.parse()
                        .map_err(|_| format!("--size-mib: not a number: {v}"))?,
                )
            }
            "--json" => json = Some(PathBuf::from(value()?)),
            "--only-b" => only_b = true,
            "--durable" | "--batched" => {
                let v = value()?;
                let n = Some(v.parse().map_err(|_| format!("{a}: not a number: {v}"))?);
                match a {
                    "--durable" => durable = n,
                    _ => batched = n,
                }
            }
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--reps" => {
                let v = value()?;
                reps = Some(
                    v.parse()
                        .map_err(|_| format!("--reps: not a number: {v}"))?,
                )
            }
            // cargo bench passes --bench; a harness = false target ignores what it does not know.
            _ => {}
        }
        i += 1;
    }
    let size_mib = size_mib.unwrap_or(if quick { 32 } else { 1024 });
    if size_mib < 1 {
        return Err("--size-mib must be at least 1".into());
    }
    Ok(Opts {
        quick,
        size: size_mib * MIB,
        json,
        dir,
        small_records: durable.unwrap_or(if quick { 300 } else { 10_000 }),
        batched_records: batched.unwrap_or(if quick { 2_000 } else { 10_000 }),
        record_files: if quick { 300 } else { 1_000 },
        ranges: 1_000,
        // Five: the first large put of a run is often several times slower than the others
        // (for whichever system it falls on), and a median of three is then one slow put away
        // from a wrong figure.
        reps: reps.unwrap_or(if quick { 3 } else { 5 }).max(1),
        only_b,
    })
}

// ---------------------------------------------------------------------------------------------
// Generated data: a deterministic, non-repeating stream that costs about a memcpy to produce, so
// the generator weighs the same (and little) in every system measured. Bytes come from a
// random 256 KiB pool; the first 8 bytes of every 4 KiB block are replaced by the block number,
// so no two chunks (of any size over 4 KiB) and no two small files are ever equal.

const POOL: usize = 256 * 1024;
const BLOCK: u64 = 4096;

struct Pool(Vec<u8>);

impl Pool {
    fn new() -> Pool {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(POOL);
        while v.len() < POOL {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Pool(v)
    }

    /// Fills `out` with the stream's bytes from `pos` on.
    fn fill(&self, pos: u64, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let p = (pos + done as u64) as usize % POOL;
            let n = (POOL - p).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.0[p..p + n]);
            done += n;
        }
        let end = pos + out.len() as u64;
        let mut block = pos / BLOCK;
        while block * BLOCK < end {
            let stamp = (block ^ 0xA5A5_5A5A_0F0F_F0F0).to_le_bytes();
            let start = block * BLOCK;
            for (k, b) in stamp.iter().enumerate() {
                let at = start + k as u64;
                if at >= pos && at < end {
                    out[(at - pos) as usize] = *b;
                }
            }
            block += 1;
        }
    }

    /// The content of small file number `i` (distinct for every `i`).
    fn small(&self, i: u64) -> Vec<u8> {
        let mut v = vec![0; SMALL];
        self.fill(i * BLOCK, &mut v);
        v
    }
}

/// The large file as a `Read` stream.
struct Gen<'p> {
    pool: &'p Pool,
    pos: u64,
    size: u64,
}

impl Read for Gen<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        self.pool.fill(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

fn record_value(i: u64) -> Value {
    json!({"title": format!("Record {i}"), "creators": [{"name": "Bench, Mark"}], "n": i})
}

fn record_json(i: u64) -> String {
    record_value(i).to_string()
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Flushes everything dirty so one workload's writeback is never billed to the next.
fn sync_all() {
    let _ = Command::new("sync").status();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Peak and current resident set of this process, in KiB.
fn vm_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The store the workloads write; `RECFILES_BENCH_IDLE=off` turns its idle checkpoints off
/// (`StoreBuilder::idle_checkpoint(None)`), to compare with the default (on, 1 s).
fn store_at(path: &Path) -> Store {
    let mut builder = Store::builder();
    if std::env::var("RECFILES_BENCH_IDLE").is_ok_and(|v| v == "off") {
        builder = builder.idle_checkpoint(None);
    }
    builder.open(path).expect("open store")
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------
// a. one large file, put durably

fn fs_large_put(pool: &Pool, path: &Path, size: u64) -> Res<Duration> {
    sync_all();
    let t = Instant::now();
    let mut f = File::create(path)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(MIB) as usize;
        pool.fill(pos, &mut buf[..n]);
        f.write_all(&buf[..n])?;
        pos += n as u64;
    }
    f.sync_all()?;
    Ok(t.elapsed())
}

fn sqlite_open(path: &Path) -> Res<Connection> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS blobs (file_id INTEGER, idx INTEGER, data BLOB NOT NULL,
                                           PRIMARY KEY (file_id, idx));
         CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, json TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS files (record_id INTEGER NOT NULL, key TEXT NOT NULL,
                                           data BLOB NOT NULL, PRIMARY KEY (record_id, key));",
    )?;
    Ok(c)
}

fn sqlite_large_put(pool: &Pool, path: &Path, size: u64) -> Res<Duration> {
    let mut c = sqlite_open(path)?;
    sync_all();
    let t = Instant::now();
    let tx = c.transaction()?;
    {
        let mut st = tx.prepare("INSERT INTO blobs (file_id, idx, data) VALUES (1, ?, ?)")?;
        let mut buf = vec![0u8; CHUNK];
        let (mut pos, mut idx) = (0u64, 0i64);
        while pos < size {
            let n = (size - pos).min(CHUNK as u64) as usize;
            pool.fill(pos, &mut buf[..n]);
            st.execute(params![idx, &buf[..n]])?;
            pos += n as u64;
            idx += 1;
        }
    }
    tx.commit()?;
    Ok(t.elapsed())
}

/// The child's side of the large put: open, put, report time and peak RSS as one JSON line.
fn child_large_put(store_path: &Path, size: u64) -> Res<()> {
    let pool = Pool::new();
    let before_kib = vm_kib("VmHWM:").unwrap_or(0);
    let store = store_at(store_path);
    let bucket = store.create_bucket(&BucketOptions::default())?;
    sync_all();
    let t = Instant::now();
    let v = store.put_object(
        bucket.id,
        "large.bin",
        Gen {
            pool: &pool,
            pos: 0,
            size,
        },
        &PutOptions::default(),
    )?;
    let d = t.elapsed();
    assert_eq!(v.size, Some(size));
    let out = json!({
        "secs": secs(d),
        "hwm_kib": vm_kib("VmHWM:").unwrap_or(0),
        "hwm_before_kib": before_kib,
        "bucket": bucket.id.to_string(),
    });
    println!("{out}");
    Ok(())
}

struct ChildPut {
    time: Duration,
    peak_rss_mib: f64,
    start_rss_mib: f64,
    bucket: String,
}

fn recfiles_large_put(store_path: &Path, size: u64) -> Res<ChildPut> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--child-large-put")
        .arg(store_path)
        .arg(size.to_string())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "child large put failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let line = String::from_utf8(out.stdout)?;
    let v: Value = serde_json::from_str(line.trim())?;
    let num = |k: &str| {
        v[k].as_f64()
            .ok_or(format!("child output lacks {k}: {line}"))
    };
    Ok(ChildPut {
        time: Duration::from_secs_f64(num("secs")?),
        peak_rss_mib: num("hwm_kib")? / 1024.0,
        start_rss_mib: num("hwm_before_kib")? / 1024.0,
        bucket: v["bucket"].as_str().unwrap_or_default().to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// b. many small records

/// Records `first..first + n`, each a JSON record with its bucket and one 1 KiB file added
/// through its files view (`record.files["data.bin"] = ...; record.commit()`), committed
/// `batch` records at a time (each commit durable).
fn recfiles_small_records(
    store: &Store,
    pool: &Pool,
    first: usize,
    n: usize,
    batch: usize,
) -> Res<Duration> {
    sync_all();
    let t = Instant::now();
    let mut i = first;
    while i < first + n {
        let end = (i + batch).min(first + n);
        store.write(|tx| {
            for k in i..end {
                let mut record = tx.create_record(record_value(k as u64))?;
                let mut files = tx.record_files(&mut record)?;
                files.put("data.bin", &pool.small(k as u64)[..])?;
                files.commit()?;
            }
            Ok(())
        })?;
        i = end;
    }
    Ok(t.elapsed())
}

/// One file per record, written and fsynced (the directory itself is not fsynced, which
/// favours the baseline).
fn fs_small_durable(dir: &Path, pool: &Pool, first: usize, n: usize) -> Res<Duration> {
    sync_all();
    let t = Instant::now();
    for i in first..first + n {
        let mut f = File::create(dir.join(format!("{i}.bin")))?;
        f.write_all(&pool.small(i as u64))?;
        f.sync_all()?;
    }
    Ok(t.elapsed())
}

/// Runs `insert(tx, k)` for `k` in `first..first + n`, committing `batch` at a time; the time
/// taken (after the page cache is flushed, as for the other contenders).
fn sqlite_batches(
    c: &mut Connection,
    first: usize,
    n: usize,
    batch: usize,
    mut insert: impl FnMut(&rusqlite::Transaction<'_>, usize) -> rusqlite::Result<()>,
) -> Res<Duration> {
    sync_all();
    let t = Instant::now();
    let mut i = first;
    while i < first + n {
        let end = (i + batch).min(first + n);
        let tx = c.transaction()?;
        for k in i..end {
            insert(&tx, k)?;
        }
        tx.commit()?;
        i = end;
    }
    Ok(t.elapsed())
}

/// Records `first..first + n` as a JSON row plus a blob row, committed `batch` at a time.
fn sqlite_small_records(
    c: &mut Connection,
    pool: &Pool,
    first: usize,
    n: usize,
    batch: usize,
) -> Res<Duration> {
    sqlite_batches(c, first, n, batch, |tx, k| {
        tx.prepare_cached("INSERT INTO records (id, json) VALUES (?, ?)")?
            .execute(params![k as i64, record_json(k as u64)])?;
        tx.prepare_cached("INSERT INTO files (record_id, key, data) VALUES (?, 'data.bin', ?)")?
            .execute(params![k as i64, pool.small(k as u64)])?;
        Ok(())
    })
}

/// Records `first..first + n` in Invenio's own tables (`invenio_sqlite`), committed `batch` at
/// a time.
fn invenio_small_records(
    c: &mut Connection,
    pool: &Pool,
    first: usize,
    n: usize,
    batch: usize,
) -> Res<Duration> {
    sqlite_batches(c, first, n, batch, |tx, k| {
        invenio::insert_record(tx, k, 0, &pool.small(k as u64))
    })
}

/// Workload b's figures (records per second).
struct SmallRecords {
    fs_durable: f64,
    sqlite_durable: f64,
    invenio_durable: f64,
    durable: f64,
    sqlite_batched: f64,
    invenio_batched: f64,
    batched: f64,
}

/// b: many small records, durable one by one, then batched. The systems take turns in blocks
/// of a tenth of the records (durable) or of one batch (batched), so a change in the disk's
/// fsync latency mid-run (it happens on this shared machine) hits them alike.
fn small_records(o: &Opts, dir: &Path, pool: &Pool) -> Res<SmallRecords> {
    let per_s = |n: usize, d: Duration| n as f64 / secs(d);
    let n = o.small_records;
    let block = (n / 10).max(1);
    let mut sq = sqlite_open(&dir.join("small.sqlite"))?;
    let mut inv = invenio::create(&dir.join("invenio.sqlite"))?;
    let rf_store = store_at(&dir.join("small.redb"));
    let (mut fs_sd, mut sq_sd) = (Duration::ZERO, Duration::ZERO);
    let (mut inv_sd, mut rf_sd) = (Duration::ZERO, Duration::ZERO);
    let fs_dir = dir.join("small-fs");
    std::fs::create_dir_all(&fs_dir)?;
    let mut i = 0;
    while i < n {
        let m = block.min(n - i);
        fs_sd += fs_small_durable(&fs_dir, pool, i, m)?;
        sq_sd += sqlite_small_records(&mut sq, pool, i, m, 1)?;
        inv_sd += invenio_small_records(&mut inv, pool, i, m, 1)?;
        rf_sd += recfiles_small_records(&rf_store, pool, i, m, 1)?;
        i += m;
    }
    eprintln!(
        "b  durable: fs {:.0}/s, sqlite {:.0}/s, sqlite (Invenio tables) {:.0}/s, recfiles {:.0}/s",
        per_s(n, fs_sd),
        per_s(n, sq_sd),
        per_s(n, inv_sd),
        per_s(n, rf_sd)
    );
    let nb = o.batched_records;
    let (mut sq_b, mut inv_b, mut rf_b) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < nb {
        let m = BATCH.min(nb - i);
        sq_b += sqlite_small_records(&mut sq, pool, 1_000_000 + i, m, BATCH)?;
        inv_b += invenio_small_records(&mut inv, pool, 1_000_000 + i, m, BATCH)?;
        rf_b += recfiles_small_records(&rf_store, pool, 1_000_000 + i, m, BATCH)?;
        i += m;
    }
    eprintln!(
        "b  batched: sqlite {:.0}/s, sqlite (Invenio tables) {:.0}/s, recfiles {:.0}/s",
        per_s(nb, sq_b),
        per_s(nb, inv_b),
        per_s(nb, rf_b)
    );
    Ok(SmallRecords {
        fs_durable: per_s(n, fs_sd),
        sqlite_durable: per_s(n, sq_sd),
        invenio_durable: per_s(n, inv_sd),
        durable: per_s(n, rf_sd),
        sqlite_batched: per_s(nb, sq_b),
        invenio_batched: per_s(nb, inv_b),
        batched: per_s(nb, rf_b),
    })
}

// ---------------------------------------------------------------------------------------------
// c. one record with many small files

struct RecordFilesTimes {
    /// All files added to one record through its files view in one transaction, committed once
    /// (Invenio's `record.files[key] = ...` for each file, then one commit).
    add_one_tx: Duration,
    /// The same number of files into a second record, each put its own durable commit (and
    /// so its own record revision).
    add_each: Duration,
    /// `files_of(record)` and its `dumps()` for the first record (median of several): what a
    /// caller pays to get the dumps from the store.
    dumps: Duration,
    /// `dumps()` alone on an already loaded file list (median of several).
    dumps_in_memory: Duration,
}

fn recfiles_record_files(store: &Store, pool: &Pool, n: usize) -> Res<RecordFilesTimes> {
    let key = |i: usize| format!("file-{i:05}.bin");
    let mut record = store.create_record(record_value(0))?;
    sync_all();
    let t = Instant::now();
    store.update_files(&mut record, |files| {
        for i in 0..n {
            files.put(&key(i), &pool.small(2_000_000 + i as u64)[..])?;
        }
        Ok(())
    })?;
    let add_one_tx = t.elapsed();
    let mut other = store.create_record(record_value(1))?;
    sync_all();
    let t = Instant::now();
    for i in 0..n {
        let data = pool.small(3_000_000 + i as u64);
        store.update_files(&mut other, |files| files.put(&key(i), &data[..]))?;
    }
    let add_each = t.elapsed();
    let (mut times, mut in_memory) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        let list = store.files_of(&record)?.ok_or("the record has no bucket")?;
        let dumps = list.dumps();
        times.push(secs(t.elapsed()));
        assert_eq!(dumps.len(), n);
        let t = Instant::now();
        let dumps = list.dumps();
        in_memory.push(secs(t.elapsed()));
        assert_eq!(dumps.len(), n);
    }
    Ok(RecordFilesTimes {
        add_one_tx,
        add_each,
        dumps: Duration::from_secs_f64(median(times)),
        dumps_in_memory: Duration::from_secs_f64(median(in_memory)),
    })
}

// ---------------------------------------------------------------------------------------------
// d. reads

fn recfiles_random(r: &mut FileReader, offs: &[u64]) -> Res<Duration> {
    let t = Instant::now();
    for &o in offs {
        let got = r.read_range(o, RANGE)?;
        std::hint::black_box(&got);
    }
    Ok(t.elapsed())
}

fn fs_random(f: &File, offs: &[u64]) -> Res<Duration> {
    let t = Instant::now();
    let mut buf = vec![0u8; RANGE];
    for &o in offs {
        f.read_exact_at(&mut buf, o)?;
        std::hint::black_box(&buf);
    }
    Ok(t.elapsed())
}

struct SmallChunks {
    put_mib_s: f64,
    seq_mib_s: f64,
    ranges_per_s: f64,
    fs_ranges_per_s: f64,
}

/// The large-file workloads again on a store with 64 KiB − 64 chunks: a random 64 KiB range
/// then reads and verifies one or two 64 KiB chunks instead of a whole 1 MiB one.
fn small_chunks(dir: &Path, pool: &Pool, size: u64, fs_file: &File, o: &Opts) -> Res<SmallChunks> {
    let path = dir.join("small-chunks.redb");
    let store = Store::builder().chunk_size(64 * 1024 - 64).open(&path)?;
    let bucket = store.create_bucket(&BucketOptions::default())?.id;
    sync_all();
    let t = Instant::now();
    let data = Gen { pool, pos: 0, size };
    store.put_object(bucket, "large.bin", data, &PutOptions::default())?;
    let put = secs(t.elapsed());
    read_all(&mut store.open_object(bucket, "large.bin")?, false)?;
    let t = Instant::now();
    read_all(&mut store.open_object(bucket, "large.bin")?, false)?;
    let seq = secs(t.elapsed());
    let offs = offsets(size, RANGE, o.ranges);
    let mut reader = store.open_object(bucket, "large.bin")?;
    let (mut fs_r, mut rf_r) = (Vec::new(), Vec::new());
    for _ in 0..o.reps {
        fs_r.push(secs(fs_random(fs_file, &offs)?));
        rf_r.push(secs(recfiles_random(&mut reader, &offs)?));
    }
    drop(reader);
    drop(store);
    std::fs::remove_file(&path)?;
    let mib = size as f64 / MIB as f64;
    Ok(SmallChunks {
        put_mib_s: mib / put,
        seq_mib_s: mib / seq,
        ranges_per_s: o.ranges as f64 / median(rf_r),
        fs_ranges_per_s: o.ranges as f64 / median(fs_r),
    })
}

// ---------------------------------------------------------------------------------------------
// Report

struct Row {
    name: &'static str,
    unit: &'static str,
    ours: f64,
    fs: Option<f64>,
    sqlite: Option<f64>,
    target: String,
    met: Option<bool>,
    higher_is_better: bool,
}

fn ratio(ours: f64, base: Option<f64>, higher: bool) -> String {
    match base {
        Some(b) if b > 0.0 && ours > 0.0 => {
            format!("{:.2}x", if higher { ours / b } else { b / ours })
        }
        _ => "-".into(),
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn print_table(rows: &[Row]) {
    println!("\n| figure | unit | recfiles | fs | sqlite | vs fs | vs sqlite | target | met |");
    println!("|---|---|---:|---:|---:|---:|---:|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.unit,
            fmt_num(r.ours),
            r.fs.map(fmt_num).unwrap_or_else(|| "-".into()),
            r.sqlite.map(fmt_num).unwrap_or_else(|| "-".into()),
            ratio(r.ours, r.fs, r.higher_is_better),
            ratio(r.ours, r.sqlite, r.higher_is_better),
            r.target,
            match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
    println!("\n(ratios: >1x means recfiles is better; for times, baseline time / recfiles time)");
}

// ---------------------------------------------------------------------------------------------

fn run(o: &Opts) -> Res<()> {
    let tmp = match &o.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("recfiles-bench-")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("recfiles-bench-")
            .tempdir()?,
    };
    let dir = tmp.path();
    let pool = Pool::new();
    if o.only_b {
        let b = small_records(o, dir, &pool)?;
        println!(
            "b only: {} durable, {} batched records; durable {:.0}/s ({:.2}x Invenio-schema sqlite), \
             batched {:.0}/s ({:.2}x Invenio-schema sqlite)",
            o.small_records,
            o.batched_records,
            b.durable,
            b.durable / b.invenio_durable,
            b.batched,
            b.batched / b.invenio_batched
        );
        return Ok(());
    }
    let size = o.size;
    eprintln!(
        "recfiles ingest bench: large file {} MiB, {} small records, {} batched, {} record files, in {}",
        size / MIB,
        o.small_records,
        o.batched_records,
        o.record_files,
        dir.display()
    );
    let mut fig = Map::new();
    let mut put = |k: &str, v: f64| {
        fig.insert(k.to_string(), json!(v));
    };

    let reps = o.reps;

    // a + f: one large file, `reps` times per system, the systems interleaved (in a rotating
    // order) so that a noisy neighbour weighs on all of them alike; each figure is the median.
    let fs_path = dir.join("large.bin");
    let sq_path = dir.join("large.sqlite");
    let (mut fs_w, mut sq_w, mut rf_w) = (Vec::new(), Vec::new(), Vec::new());
    let (mut peak_rss, mut start_rss): (f64, f64) = (0.0, 0.0);
    let mut store_path = PathBuf::new();
    let mut bucket_text = String::new();
    for r in 0..reps {
        for k in 0..3 {
            match (r + k) % 3 {
                0 => {
                    let _ = std::fs::remove_file(&fs_path);
                    fs_w.push(secs(fs_large_put(&pool, &fs_path, size)?));
                }
                1 => {
                    for ext in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{ext}", sq_path.display()));
                    }
                    sq_w.push(secs(sqlite_large_put(&pool, &sq_path, size)?));
                }
                _ => {
                    if !store_path.as_os_str().is_empty() {
                        std::fs::remove_file(&store_path)?;
                    }
                    store_path = dir.join(format!("large-{r}.redb"));
                    let child = recfiles_large_put(&store_path, size)?;
                    rf_w.push(secs(child.time));
                    peak_rss = peak_rss.max(child.peak_rss_mib);
                    start_rss = start_rss.max(child.start_rss_mib);
                    bucket_text = child.bucket;
                }
            }
        }
    }
    let secs_list = |v: &[f64]| {
        v.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "a  each put, s: fs {}; sqlite {}; recfiles {}",
        secs_list(&fs_w),
        secs_list(&sq_w),
        secs_list(&rf_w)
    );
    let (fs_w, sq_w, rf_w) = (median(fs_w), median(sq_w), median(rf_w));
    let mbs = |t: f64| size as f64 / MIB as f64 / t;
    eprintln!(
        "a  large put, median of {reps}: fs {:.1} MiB/s, sqlite {:.1} MiB/s, recfiles {:.1} MiB/s (peak RSS {peak_rss:.1} MiB, {start_rss:.1} MiB before opening)",
        mbs(fs_w),
        mbs(sq_w),
        mbs(rf_w)
    );
    put("large_put_mib_s", mbs(rf_w));
    put("fs_write_fsync_mib_s", mbs(fs_w));
    put("sqlite_put_mib_s", mbs(sq_w));
    put("large_put_peak_rss_mib", peak_rss);

    // d: reads of the large file, warm cache on both sides (one untimed pass first, which also
    // checks that both hold the same bytes), with the default read verification (`Once`: each
    // chunk hashed on its first load by the open store, then read directly).
    let store = store_at(&store_path);
    let bucket: BucketId = bucket_text.parse().map_err(|_| "child bucket id")?;
    let fs_file = File::open(&fs_path)?;
    let warm_fs = read_all(&mut &fs_file, true)?;
    let warm_rf = read_all(&mut store.open_object(bucket, "large.bin")?, true)?;
    assert_eq!(warm_fs, warm_rf, "recfiles read back other bytes than fs");
    assert_eq!(warm_fs.0, size);
    let (mut fs_s, mut rf_s) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        read_all(&mut File::open(&fs_path)?, false)?;
        fs_s.push(secs(t.elapsed()));
        let t = Instant::now();
        read_all(&mut store.open_object(bucket, "large.bin")?, false)?;
        rf_s.push(secs(t.elapsed()));
    }
    let (fs_seq, rf_seq) = (mbs(median(fs_s)), mbs(median(rf_s)));
    eprintln!("d  seq read: fs {fs_seq:.1} MiB/s, recfiles {rf_seq:.1} MiB/s");
    let offs = offsets(size, RANGE, o.ranges);
    let mut reader = store.open_object(bucket, "large.bin")?;
    {
        let mut buf = vec![0u8; RANGE];
        fs_file.read_exact_at(&mut buf, offs[0])?;
        assert_eq!(
            reader.read_range(offs[0], RANGE)?,
            buf,
            "range read differs from fs"
        );
    }
    let (mut fs_r, mut rf_r) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        fs_r.push(secs(fs_random(&fs_file, &offs)?));
        rf_r.push(secs(recfiles_random(&mut reader, &offs)?));
    }
    drop(reader);
    let fs_rps = o.ranges as f64 / median(fs_r);
    let rf_rps = o.ranges as f64 / median(rf_r);
    eprintln!("d  64 KiB ranges: fs {fs_rps:.0}/s, recfiles {rf_rps:.0}/s");
    put("seq_read_mib_s", rf_seq);
    put("fs_seq_read_mib_s", fs_seq);
    put("random_range_reads_per_s", rf_rps);
    put("fs_random_range_reads_per_s", fs_rps);

    // For information: the same reads with the other read verification settings: `Always`
    // (every chunk hashed on every load through the engine, the default before `Once`) and
    // `Never` (nothing hashed on read; damage is left to the fixity checks).
    drop(store);
    let other_modes = |mode: ReadVerification| -> Res<(f64, f64)> {
        let store = Store::builder().read_verification(mode).open(&store_path)?;
        read_all(&mut store.open_object(bucket, "large.bin")?, false)?;
        let (mut s, mut r) = (Vec::new(), Vec::new());
        let mut reader = store.open_object(bucket, "large.bin")?;
        for _ in 0..reps {
            let t = Instant::now();
            read_all(&mut store.open_object(bucket, "large.bin")?, false)?;
            s.push(secs(t.elapsed()));
            r.push(secs(recfiles_random(&mut reader, &offs)?));
        }
        Ok((mbs(median(s)), o.ranges as f64 / median(r)))
    };
    let (always_seq, always_rps) = other_modes(ReadVerification::Always)?;
    eprintln!("d\" verification Always: seq {always_seq:.1} MiB/s, ranges {always_rps:.0}/s");
    let (uv_seq, uv_rps) = other_modes(ReadVerification::Never)?;
    eprintln!("d\" verification Never: seq {uv_seq:.1} MiB/s, ranges {uv_rps:.0}/s");

    // e: dedup. The identical content again, `reps` times, each put in a fresh child process
    // like the first put of a (a new bucket of the same store, so only whole-file dedup can
    // spare the write), so both puts are measured alike.
    let (mut dd, mut growth, mut dd_rss) = (Vec::new(), 0i64, 0f64);
    for _ in 0..reps {
        let before = std::fs::metadata(&store_path)?.len();
        let child = recfiles_large_put(&store_path, size)?;
        dd.push(secs(child.time));
        dd_rss = dd_rss.max(child.peak_rss_mib);
        let after = std::fs::metadata(&store_path)?.len();
        growth = growth.max(after as i64 - before as i64);
    }
    let dedup = median(dd);
    eprintln!(
        "e  dedup put {:.1} MiB/s ({:.1}x the first put), store grew by at most {growth} bytes, peak RSS {dd_rss:.1} MiB",
        mbs(dedup),
        rf_w / dedup
    );
    put("dedup_second_put_mib_s", mbs(dedup));
    put("dedup_growth_bytes", growth as f64);

    // For information: what 64 KiB − 64 chunks would change (on at most 256 MiB of the file).
    let sc = small_chunks(dir, &pool, size.min(256 * MIB), &fs_file, o)?;
    eprintln!(
        "d' 64 KiB chunks: put {:.1} MiB/s, seq read {:.1} MiB/s, ranges {:.0}/s (fs {:.0}/s)",
        sc.put_mib_s, sc.seq_mib_s, sc.ranges_per_s, sc.fs_ranges_per_s
    );

    let b = small_records(o, dir, &pool)?;
    let (n, nb) = (o.small_records, o.batched_records);
    put("small_durable_records_per_s", b.durable);
    put("fs_small_durable_per_s", b.fs_durable);
    put("sqlite_small_durable_per_s", b.sqlite_durable);
    put("invenio_sqlite_small_durable_per_s", b.invenio_durable);
    put("small_batched_records_per_s", b.batched);
    put("sqlite_small_batched_per_s", b.sqlite_batched);
    put("invenio_sqlite_small_batched_per_s", b.invenio_batched);

    // c: one record, many small files, then dumps().
    let rec_store = store_at(&dir.join("record.redb"));
    let c = recfiles_record_files(&rec_store, &pool, o.record_files)?;
    drop(rec_store);
    eprintln!(
        "c  {} files: one transaction {:.3} s, a durable commit each {:.3} s; files_of + dumps {:.3} ms (dumps alone {:.3} ms)",
        o.record_files,
        secs(c.add_one_tx),
        secs(c.add_each),
        secs(c.dumps) * 1e3,
        secs(c.dumps_in_memory) * 1e3
    );
    put("add_1000_files_s", secs(c.add_one_tx));
    let add_each_s = secs(c.add_each);
    let dumps_mem_ms = secs(c.dumps_in_memory) * 1e3;
    put("dumps_1000_ms", secs(c.dumps) * 1e3);

    // Report.
    let f = |k: &str| fig[k].as_f64().unwrap_or(f64::NAN);
    let full = !o.quick && size == 1024 * MIB;
    let met = |ok: bool| if full { Some(ok) } else { None };
    let rows = vec![
        Row {
            name: "a. large put (durable)",
            unit: "MiB/s",
            ours: f("large_put_mib_s"),
            fs: Some(f("fs_write_fsync_mib_s")),
            sqlite: Some(f("sqlite_put_mib_s")),
            target: ">= 0.8x fs, > sqlite".into(),
            met: met(f("large_put_mib_s") >= 0.8 * f("fs_write_fsync_mib_s")
                && f("large_put_mib_s") > f("sqlite_put_mib_s")),
            higher_is_better: true,
        },
        Row {
            name: "b. small records, durable each",
            unit: "records/s",
            ours: f("small_durable_records_per_s"),
            fs: Some(f("fs_small_durable_per_s")),
            sqlite: Some(f("sqlite_small_durable_per_s")),
            target: ">= 2000/s, > sqlite".into(),
            met: met(f("small_durable_records_per_s") >= 2000.0
                && f("small_durable_records_per_s") > f("sqlite_small_durable_per_s")),
            higher_is_better: true,
        },
        Row {
            name: "b. small records, 1000 per tx",
            unit: "records/s",
            ours: f("small_batched_records_per_s"),
            fs: None,
            sqlite: Some(f("sqlite_small_batched_per_s")),
            target: ">= 50000/s, > sqlite".into(),
            met: met(f("small_batched_records_per_s") >= 50_000.0
                && f("small_batched_records_per_s") > f("sqlite_small_batched_per_s")),
            higher_is_better: true,
        },
        Row {
            name: "b. durable each, vs Invenio-schema SQLite",
            unit: "records/s",
            ours: f("small_durable_records_per_s"),
            fs: None,
            sqlite: Some(f("invenio_sqlite_small_durable_per_s")),
            target: ">= 1.3x Invenio sqlite".into(),
            met: met(
                f("small_durable_records_per_s") >= 1.3 * f("invenio_sqlite_small_durable_per_s")
            ),
            higher_is_better: true,
        },
        Row {
            name: "b. 1000 per tx, vs Invenio-schema SQLite",
            unit: "records/s",
            ours: f("small_batched_records_per_s"),
            fs: None,
            sqlite: Some(f("invenio_sqlite_small_batched_per_s")),
            target: ">= 60000/s, >= 4x Invenio sqlite".into(),
            met: met(f("small_batched_records_per_s") >= 60_000.0
                && f("small_batched_records_per_s")
                    >= 4.0 * f("invenio_sqlite_small_batched_per_s")),
            higher_is_better: true,
        },
        Row {
            name: "c. add 1000 files to one record",
            unit: "s",
            ours: f("add_1000_files_s"),
            fs: None,
            sqlite: None,
            target: "< 1 s".into(),
            met: met(f("add_1000_files_s") < 1.0),
            higher_is_better: false,
        },
        Row {
            name: "c. (1000 files, durable commit each)",
            unit: "s",
            ours: add_each_s,
            fs: None,
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: false,
        },
        Row {
            name: "c. files_of() + dumps(), 1000 files",
            unit: "ms",
            ours: f("dumps_1000_ms"),
            fs: None,
            sqlite: None,
            target: "< 1 ms".into(),
            met: met(f("dumps_1000_ms") < 1.0),
            higher_is_better: false,
        },
        Row {
            name: "c. (dumps() alone, list loaded)",
            unit: "ms",
            ours: dumps_mem_ms,
            fs: None,
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: false,
        },
        Row {
            name: "d. sequential read (warm)",
            unit: "MiB/s",
            ours: f("seq_read_mib_s"),
            fs: Some(f("fs_seq_read_mib_s")),
            sqlite: None,
            target: ">= 0.5x fs".into(),
            met: met(f("seq_read_mib_s") >= 0.5 * f("fs_seq_read_mib_s")),
            higher_is_better: true,
        },
        Row {
            name: "d. random 64 KiB ranges (warm)",
            unit: "reads/s",
            ours: f("random_range_reads_per_s"),
            fs: Some(f("fs_random_range_reads_per_s")),
            sqlite: None,
            target: ">= 0.5x fs".into(),
            met: met(f("random_range_reads_per_s") >= 0.5 * f("fs_random_range_reads_per_s")),
            higher_is_better: true,
        },
        Row {
            name: "(info) reads, ReadVerification::Always: seq",
            unit: "MiB/s",
            ours: always_seq,
            fs: Some(f("fs_seq_read_mib_s")),
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: true,
        },
        Row {
            name: "(info) reads, ReadVerification::Always: ranges",
            unit: "reads/s",
            ours: always_rps,
            fs: Some(f("fs_random_range_reads_per_s")),
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: true,
        },
        Row {
            name: "(info) reads, ReadVerification::Never: seq",
            unit: "MiB/s",
            ours: uv_seq,
            fs: Some(f("fs_seq_read_mib_s")),
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: true,
        },
        Row {
            name: "(info) reads, ReadVerification::Never: ranges",
            unit: "reads/s",
            ours: uv_rps,
            fs: Some(f("fs_random_range_reads_per_s")),
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: true,
        },
        Row {
            name: "(info) 64 KiB-64 chunks: put",
            unit: "MiB/s",
            ours: sc.put_mib_s,
            fs: Some(f("fs_write_fsync_mib_s")),
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: true,
        },
        Row {
            name: "(info) 64 KiB-64 chunks: seq read",
            unit: "MiB/s",
            ours: sc.seq_mib_s,
            fs: Some(f("fs_seq_read_mib_s")),
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: true,
        },
        Row {
            name: "(info) 64 KiB-64 chunks: ranges",
            unit: "reads/s",
            ours: sc.ranges_per_s,
            fs: Some(sc.fs_ranges_per_s),
            sqlite: None,
            target: "(information)".into(),
            met: None,
            higher_is_better: true,
        },
        Row {
            name: "e. dedup: second identical put",
            unit: "MiB/s",
            ours: f("dedup_second_put_mib_s"),
            fs: None,
            sqlite: None,
            target: format!(
                ">= 3x first put (is {:.1}x)",
                f("dedup_second_put_mib_s") / f("large_put_mib_s")
            ),
            met: met(f("dedup_second_put_mib_s") >= 3.0 * f("large_put_mib_s")),
            higher_is_better: true,
        },
        Row {
            name: "e. dedup: store file growth",
            unit: "bytes",
            ours: f("dedup_growth_bytes"),
            fs: None,
            sqlite: None,
            target: format!(
                "< 1% ({:.3}%)",
                100.0 * f("dedup_growth_bytes") / size as f64
            ),
            met: met(f("dedup_growth_bytes") < 0.01 * size as f64),
            higher_is_better: false,
        },
        Row {
            name: "f. peak RSS of the large put",
            unit: "MiB",
            ours: f("large_put_peak_rss_mib"),
            fs: None,
            sqlite: None,
            target: "< 128 MiB".into(),
            met: met(f("large_put_peak_rss_mib") < 128.0),
            higher_is_better: false,
        },
    ];
    println!(
        "\nrecfiles ingest: large file {} MiB{}; b: {} durable + {} batched records (record + bucket + one \
         1 KiB file each); c: {} files in one record",
        size / MIB,
        if o.quick { " (--quick)" } else { "" },
        n,
        nb,
        o.record_files
    );
    print_table(&rows);
    if !full {
        println!("(targets are judged only on a full-size run)");
    }
    if let Some(path) = &o.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&Value::Object(fig))? + "\n",
        )?;
        eprintln!("figures written to {}", path.display());
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child-large-put") {
        let (Some(path), Some(size)) = (args.get(2), args.get(3).and_then(|s| s.parse().ok()))
        else {
            eprintln!("usage: ingest --child-large-put STORE_PATH SIZE_BYTES");
            std::process::exit(2);
        };
        if let Err(e) = child_large_put(Path::new(path), size) {
            eprintln!("child large put: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ingest: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("ingest bench failed: {e}");
        std::process::exit(1);
    }
}
