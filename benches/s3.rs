//! Content on a real Garage node (issue 17): the large put and the range reads of the ingest
//! bench with content on the cluster, beside the same workloads on the embedded store and
//! beside the cluster's own client (the `object_store` crate, talking to the same node)
//! moving the same bytes. All side by side in one run; figures are printed, never asserted.
//!
//! ```text
//! cargo bench --features s3 --bench s3                  # 256 MiB file, 500 ranges, 3 reps
//! cargo bench --features s3 --bench s3 -- --quick       # 32 MiB, 100 ranges, 1 rep
//! cargo bench --features s3 --bench s3 -- --size-mib 512 --ranges 1000 --reps 5
//! ```
//!
//! Needs the `garage` binary (`cargo install --locked garage`).

#[path = "../tests/common/garage.rs"]
#[allow(dead_code)] // the bench uses one node; the three-node cluster is for the tests
mod garage;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use recfiles::prelude::*;
use std::sync::Arc;
use std::time::Instant;

const BUCKET: &str = "recfiles-bench";
const MIB: usize = 1024 * 1024;
const RANGE: usize = 64 * 1024;

struct Opts {
    size: usize,
    ranges: usize,
    reps: usize,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    Opts {
        size: value("--size-mib").unwrap_or(if quick { 32 } else { 256 }) * MIB,
        ranges: value("--ranges").unwrap_or(if quick { 100 } else { 500 }),
        reps: value("--reps").unwrap_or(if quick { 1 } else { 3 }),
    }
}

#[path = "common/data.rs"]
mod common_data;
use common_data::data;

/// Range reads per turn when recfiles and the client alternate.
const ROUND: usize = 25;

fn offsets(size: usize, n: usize) -> Vec<u64> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % (size - RANGE) as u64
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn mibs(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

fn main() -> recfiles::Result<()> {
    let o = opts();
    let Some(g) = garage::Garage::start(&[BUCKET]) else {
        eprintln!("s3 bench: no garage binary, nothing measured");
        return Ok(());
    };
    let client = g.client(BUCKET);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    eprintln!(
        "s3 bench: {} MiB file, {} random {} KiB ranges, {} reps, Garage at {}",
        o.size / MIB,
        o.ranges,
        RANGE / 1024,
        o.reps,
        g.endpoint
    );

    let (mut emb, mut rem, mut own) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for rep in 0..o.reps {
        // Different bytes each rep: nothing is deduplicated, every put sends its content.
        let bytes = data(rep as u64 + 1, o.size);
        let order = [0, 1, 2];
        for k in 0..3 {
            match order[(k + rep) % 3] {
                0 => {
                    let store = Store::open(dir.path().join(format!("emb{rep}.redb")))?;
                    let b = store.create_bucket(&BucketOptions::default())?;
                    let t = Instant::now();
                    store.put_object(b.id, "large", &bytes[..], &PutOptions::default())?;
                    emb.push(mibs(o.size, t.elapsed().as_secs_f64()));
                }
                1 => {
                    let backend = g.backend(BUCKET, &format!("rep{rep}"));
                    let store = Store::builder()
                        .location_backend("cluster", backend)
                        .open(dir.path().join(format!("rem{rep}.redb")))?;
                    store.write(|tx| {
                        tx.create_location("cluster", &format!("s3://{BUCKET}/rep{rep}"), false)
                            .map(|_| ())
                    })?;
                    let b = store.create_bucket(&BucketOptions {
                        location: Some("cluster".into()),
                        ..Default::default()
                    })?;
                    let t = Instant::now();
                    store.put_object(b.id, "large", &bytes[..], &PutOptions::default())?;
                    rem.push(mibs(o.size, t.elapsed().as_secs_f64()));
                    last = Some((store, b.id, bytes.clone()));
                }
                _ => {
                    let owned = bytes::Bytes::copy_from_slice(&bytes);
                    let t = Instant::now();
                    direct_put(&runtime, &client, &format!("own/rep{rep}"), owned);
                    own.push(mibs(o.size, t.elapsed().as_secs_f64()));
                }
            }
        }
        eprintln!(
            "  rep {rep}: embedded {:.0}, recfiles on garage {:.0}, object_store on garage {:.0} MiB/s",
            emb[rep], rem[rep], own[rep]
        );
    }
    let (e, r, c) = (median(emb), median(rem), median(own));
    println!(
        "a. large put, MiB/s: embedded {e:.0} | recfiles on garage {r:.0} | object_store client {c:.0} | ratio to the client {:.2}x (target >= 0.8x)",
        r / c
    );

    // Range reads of the last file on the cluster, and of the client's own copy.
    let (store, bucket, bytes) = last.expect("at least one rep");
    let emb_store = Store::open(dir.path().join("emb0.redb"))?;
    let emb_bucket = emb_store.buckets()?[0].id;
    let offs = offsets(o.size, o.ranges);
    let own_path = ObjectPath::from(format!("own/rep{}", o.reps - 1));
    let mut reader = store.open_object(bucket, "large")?;
    assert_eq!(
        reader.read_range(offs[0], RANGE)?,
        &bytes[offs[0] as usize..offs[0] as usize + RANGE]
    );
    // recfiles and the client take turns, a round of ranges each, the first of each pair
    // alternating, so a change in the machine's load weighs on both alike.
    let (mut rem_secs, mut own_secs) = (0f64, 0f64);
    for (round, offs) in offs.chunks(ROUND).enumerate() {
        for side in [round % 2, 1 - round % 2] {
            let t = Instant::now();
            if side == 0 {
                for &off in offs {
                    std::hint::black_box(reader.read_range(off, RANGE)?);
                }
                rem_secs += t.elapsed().as_secs_f64();
            } else {
                for &off in offs {
                    let c = Arc::clone(&client);
                    let p = own_path.clone();
                    let got = runtime
                        .block_on(async move { c.get_range(&p, off..off + RANGE as u64).await })
                        .expect("client range");
                    std::hint::black_box(got);
                }
                own_secs += t.elapsed().as_secs_f64();
            }
        }
    }
    let rem_rps = o.ranges as f64 / rem_secs;
    let own_rps = o.ranges as f64 / own_secs;
    let mut emb_reader = emb_store.open_object(emb_bucket, "large")?;
    let t = Instant::now();
    for &off in &offs {
        std::hint::black_box(emb_reader.read_range(off, RANGE)?);
    }
    let emb_rps = o.ranges as f64 / t.elapsed().as_secs_f64();
    println!(
        "d. 64 KiB random range reads/s: embedded {emb_rps:.0} | recfiles on garage {rem_rps:.0} | object_store client {own_rps:.0} | ratio to the client {:.2}x (target >= 0.8x)",
        rem_rps / own_rps
    );

    // Sequential read of the whole file through an 8 MiB buffer, and the client's whole GET.
    let mut buf = vec![0u8; 8 * MIB];
    let t = Instant::now();
    let mut at = 0u64;
    while (at as usize) < o.size {
        at += reader.read_range_into(at, &mut buf)? as u64;
    }
    let rem_seq = mibs(o.size, t.elapsed().as_secs_f64());
    let t = Instant::now();
    let c = Arc::clone(&client);
    let got = runtime
        .block_on(async move { c.get(&own_path).await?.bytes().await })
        .expect("client get");
    assert_eq!(got.len(), o.size);
    let own_seq = mibs(o.size, t.elapsed().as_secs_f64());
    println!(
        "d. sequential read MiB/s: recfiles on garage {rem_seq:.0} | object_store client {own_seq:.0} | ratio {:.2}x",
        rem_seq / own_seq
    );
    Ok(())
}

/// The cluster's own client writing the same bytes: a multipart upload in the same 8 MiB parts,
/// four in flight, fed 1 MiB at a time.
fn direct_put(
    runtime: &tokio::runtime::Runtime,
    client: &Arc<dyn ObjectStore>,
    key: &str,
    bytes: bytes::Bytes,
) {
    let path = ObjectPath::from(key);
    let c = Arc::clone(client);
    runtime
        .block_on(async move {
            let upload = c.put_multipart(&path).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, 8 * MIB);
            let mut at = 0;
            while at < bytes.len() {
                let end = (at + MIB).min(bytes.len());
                w.wait_for_capacity(4).await?;
                w.put(bytes.slice(at..end));
                at = end;
            }
            w.finish().await
        })
        .expect("client put");
}
