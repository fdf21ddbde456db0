//! Micro-benchmark of workload c's read side: `files_of(record)` then `dumps()` for one record
//! with many small files, as a fresh read from the store each time.
//!
//! ```text
//! cargo bench --bench files_of                    # 1,000 files, 200 iterations
//! cargo bench --bench files_of -- 300 500         # 300 files, 500 iterations
//! cargo bench --bench files_of -- 1000 0          # set up only (for a profiler run)
//! cargo bench --bench files_of -- --like-ingest   # the store as the ingest bench leaves it
//! ```
//!
//! `--like-ingest` sets the store up as workload c of `benches/ingest.rs` does: durable
//! commits, and a second record that gets as many files, one durable commit each (many large
//! record revisions), before the first record's files are read.
//!
//! Prints the median and the minimum of each figure. Timings are never asserted.

use recfiles::Durability;
use recfiles::prelude::*;
use serde_json::json;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // cargo bench passes `--bench`; only the numeric arguments count.
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = nums.first().copied().unwrap_or(1_000);
    let iters = nums.get(1).copied().unwrap_or(200);
    let like_ingest = std::env::args().any(|a| a == "--like-ingest");

    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .durability(if like_ingest {
            Durability::Immediate
        } else {
            Durability::Eventual
        })
        .open(dir.path().join("files-of.recfiles"))?;
    let mut record = store.create_record(json!({"title": "Record 0", "n": 0}))?;
    store.update_files(&mut record, |files| {
        for i in 0..n {
            let mut data = vec![0u8; 1024];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            files.put(&format!("file-{i:05}.bin"), &data[..])?;
        }
        Ok(())
    })?;
    // One file with extra metadata, so the merge of `_files` entries is exercised too.
    store.update_files(&mut record, |files| {
        files.set_metadata("file-00000.bin", "description", "the first")
    })?;

    if like_ingest {
        let mut other = store.create_record(json!({"title": "Record 1", "n": 1}))?;
        for i in 0..n {
            let mut data = vec![1u8; 1024];
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            store.update_files(&mut other, |files| {
                files.put(&format!("file-{i:05}.bin"), &data[..])
            })?;
        }
    }

    let (mut both, mut alone) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        let t = Instant::now();
        let list = store.files_of(&record)?.ok_or("the record has no bucket")?;
        let dumps = list.dumps();
        both.push(t.elapsed().as_secs_f64());
        assert_eq!(dumps.len(), n);
        let t = Instant::now();
        let dumps = list.dumps();
        alone.push(t.elapsed().as_secs_f64());
        assert_eq!(dumps.len(), n);
    }
    if iters > 0 {
        println!(
            "{n} files, {iters} iterations: files_of + dumps median {:.3} ms (min {:.3}); dumps alone median {:.3} ms (min {:.3})",
            median(both.clone()) * 1e3,
            min(&both) * 1e3,
            median(alone.clone()) * 1e3,
            min(&alone) * 1e3,
        );
    }
    Ok(())
}
