//! Workload d of the ingestion benchmark on its own: reads of one large file, recfiles against
//! the filesystem, warm caches on both sides, one process run.
//!
//! ```text
//! cargo bench --bench reads                          # 1 GiB file
//! cargo bench --bench reads -- --size-mib 32         # quick
//! cargo bench --bench reads -- --dir /var/tmp/r      # keep (and reuse) the files there
//! cargo bench --bench reads -- --chunk-size 65472    # another chunk size
//! ```
//!
//! The file is written once (fs copy and store), then for each read-verification setting the
//! store is reopened (fresh process-wide state, a fresh 64 MiB engine cache), both sides read
//! the file once untimed (checking they hold the same bytes), and then, interleaved: sequential
//! reads through a 1 MiB buffer and 1,000 random 64 KiB ranges (`read_range` against
//! `read_exact_at`). The first ranges pass of a reader is reported apart from the median of
//! the following ones. Timings are never asserted.

#[path = "common/reads.rs"]
mod reads_common;
use reads_common::{offsets, read_all};
use recfiles::prelude::*;
use recfiles::{FileReader, ReadVerification};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const RANGE: usize = 64 * 1024;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A deterministic stream in which no two 8-byte words (so no two chunks) are equal.
struct Gen {
    pos: u64,
    size: u64,
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            let mut z = (at / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *b = (z ^ (z >> 31)).to_le_bytes()[(at % 8) as usize];
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn rf_ranges(r: &mut FileReader, offs: &[u64]) -> Res<Duration> {
    let t = Instant::now();
    for &o in offs {
        std::hint::black_box(r.read_range(o, RANGE)?);
    }
    Ok(t.elapsed())
}

fn fs_ranges(f: &File, offs: &[u64]) -> Res<Duration> {
    let t = Instant::now();
    let mut buf = vec![0u8; RANGE];
    for &o in offs {
        f.read_exact_at(&mut buf, o)?;
        std::hint::black_box(&buf);
    }
    Ok(t.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let size = arg("--size-mib").map_or(Ok(1024), |v| v.parse::<u64>())? * MIB;
    let reps: usize = arg("--reps").map_or(Ok(5), |v| v.parse())?;
    let chunk: usize = arg("--chunk-size").map_or(Ok(1024 * 1024 - 64), |v| v.parse())?;
    let modes: Vec<String> = arg("--modes")
        .unwrap_or_else(|| "once,always,never".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let (dir, _tmp) = match arg("--dir") {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("recfiles-reads-")
                .tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let fs_path = dir.join(format!("large-{}.bin", size / MIB));
    let store_path = dir.join(format!("large-{}-{chunk}.redb", size / MIB));
    prepare(&fs_path, &store_path, size, chunk)?;

    let mib = size as f64 / MIB as f64;
    let offs = offsets(size, RANGE, 1_000);
    println!(
        "reads of a {} MiB file, {reps} reps, {} ranges of 64 KiB",
        size / MIB,
        offs.len()
    );
    println!(
        "| mode | seq MiB/s | fs seq | ratio | ranges/s (median) | first pass | fs ranges/s | ratio | first-pass ratio | RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mode in &modes {
        let verification = match mode.as_str() {
            "once" => ReadVerification::Once,
            "always" => ReadVerification::Always,
            "never" => ReadVerification::Never,
            other => return Err(format!("unknown mode {other}").into()),
        };
        let store = Store::builder()
            .chunk_size(chunk)
            .read_verification(verification)
            .open(&store_path)?;
        let bucket = store.buckets()?.first().ok_or("no bucket")?.id;
        let fs_file = File::open(&fs_path)?;
        let warm_fs = read_all(&mut &fs_file, true)?;
        let warm_rf = read_all(&mut store.open_object(bucket, "large.bin")?, true)?;
        assert_eq!(warm_fs, warm_rf, "recfiles read back other bytes than fs");
        let (mut fs_s, mut rf_s) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            read_all(&mut File::open(&fs_path)?, false)?;
            fs_s.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            read_all(&mut store.open_object(bucket, "large.bin")?, false)?;
            rf_s.push(t.elapsed().as_secs_f64());
        }
        let mut reader = store.open_object(bucket, "large.bin")?;
        let mut buf = vec![0u8; RANGE];
        fs_file.read_exact_at(&mut buf, offs[0])?;
        let (mut fs_r, mut rf_r) = (Vec::new(), Vec::new());
        let mut first = 0.0;
        for i in 0..=reps {
            fs_r.push(fs_ranges(&fs_file, &offs)?.as_secs_f64());
            let t = rf_ranges(&mut reader, &offs)?.as_secs_f64();
            if i == 0 {
                first = t;
            } else {
                rf_r.push(t);
            }
        }
        assert_eq!(reader.read_range(offs[0], RANGE)?, buf);
        let (fs_seq, rf_seq) = (mib / median(fs_s), mib / median(rf_s));
        let n = offs.len() as f64;
        let (fs_rps, rf_rps, first_rps) = (n / median(fs_r), n / median(rf_r), n / first);
        println!(
            "| {mode} | {rf_seq:.0} | {fs_seq:.0} | {:.2}x | {rf_rps:.0} | {first_rps:.0} | {fs_rps:.0} | {:.2}x | {:.2}x | {:.0} |",
            rf_seq / fs_seq,
            rf_rps / fs_rps,
            first_rps / fs_rps,
            rss_mib()
        );
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// Writes the fs copy and the store unless both are already there from an earlier run.
fn prepare(fs_path: &Path, store_path: &Path, size: u64, chunk: usize) -> Res<()> {
    let fs_ready = fs_path.metadata().map(|m| m.len() == size).unwrap_or(false);
    let ready = fs_ready && {
        store_path.exists()
            && Store::open(store_path)
                .and_then(|s| s.buckets())
                .map(|b| !b.is_empty())
                .unwrap_or(false)
    };
    if ready {
        return Ok(());
    }
    let _ = std::fs::remove_file(store_path);
    if !fs_ready {
        write_fs(fs_path, size)?;
    }
    let store = Store::builder().chunk_size(chunk).open(store_path)?;
    let bucket = store.create_bucket(&BucketOptions::default())?.id;
    store.put_object(
        bucket,
        "large.bin",
        Gen { pos: 0, size },
        &PutOptions::default(),
    )?;
    Ok(())
}

fn write_fs(fs_path: &Path, size: u64) -> Res<()> {
    // Written in 1 MiB blocks, like the store's pages (the kernel may then cache both files in
    // large folios, which makes warm reads of either cheaper).
    let mut f = File::create(fs_path)?;
    let mut gen_ = Gen { pos: 0, size };
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = gen_.read(&mut buf)?;
        if n == 0 {
            break;
        }
        f.write_all(&buf[..n])?;
    }
    f.sync_all()?;
    Ok(())
}
