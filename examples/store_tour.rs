//! A tour of the store engine on a real file: create a store in a temporary directory, put
//! files (one large enough to be staged), list them, read a range back, version and delete,
//! then verify every file and run the integrity check. Prints what it does.
//!
//! Run it with `cargo run --release --example store_tour`.

use recfiles::prelude::*;
use recfiles::{FilesQuery, Result};
use std::io::Read;

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("recfiles-tour-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("tour.redb");
    let store = Store::builder().md5(true).open(&path)?;
    println!("opened store {}", path.display());

    let bucket = store.create_bucket(&BucketOptions {
        quota_size: Some(256 << 20),
        ..BucketOptions::default()
    })?;
    println!("created bucket {} (quota 256 MiB)", bucket.id);

    let hello = store.put_object(
        bucket.id,
        "hello.txt",
        &b"Hello, World"[..],
        &PutOptions::default(),
    )?;
    println!(
        "put hello.txt: {} bytes, {}",
        hello.size.unwrap_or(0),
        hello.mimetype
    );

    let large: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let big = store.put_object(
        bucket.id,
        "data/large.bin",
        &large[..],
        &PutOptions::default(),
    )?;
    println!(
        "put data/large.bin: {} bytes (staged), {}",
        large.len(),
        big.checksum.unwrap_or_default()
    );

    let again = store.put_object(
        bucket.id,
        "data/copy.bin",
        &large[..],
        &PutOptions::default(),
    )?;
    println!(
        "put data/copy.bin: same bytes, same file: {}",
        again.file_id == big.file_id
    );

    let v2 = store.put_object(
        bucket.id,
        "hello.txt",
        &b"Hello again"[..],
        &PutOptions::default(),
    )?;
    println!(
        "new version of hello.txt: {} (head: {})",
        v2.version_id, v2.is_head
    );

    for obj in store.list_objects(bucket.id, &ListOptions::default())? {
        println!(
            "  {:<16} {:>10} bytes  {}",
            obj.key,
            obj.size.unwrap_or(0),
            obj.version_id
        );
    }

    let mut reader = store.open_object(bucket.id, "data/large.bin")?;
    let slice = reader.read_range(10 << 20, 16)?;
    println!(
        "bytes 10 MiB..+16 of large.bin match: {}",
        slice == large[10 << 20..(10 << 20) + 16]
    );

    let mut text = String::new();
    store
        .open_version(hello.version_id)?
        .read_to_string(&mut text)?;
    println!("first version of hello.txt still reads: {text:?}");

    store.delete_object(bucket.id, "hello.txt")?;
    let versions = store.object_versions(bucket.id, "hello.txt")?;
    println!(
        "deleted hello.txt: {} versions kept, head is a delete marker: {}",
        versions.len(),
        versions[0].is_delete_marker()
    );

    let fixity = store.verify_all()?;
    println!(
        "verified {} files ({} bytes): {} damaged",
        fixity.checked,
        fixity.bytes,
        fixity.damaged.len()
    );
    let report = store.check()?;
    println!(
        "integrity check: {}",
        if report.is_ok() { "ok" } else { "FAILED" }
    );
    let size = store
        .read(|r| r.bucket(bucket.id))?
        .map(|b| b.size)
        .unwrap_or(0);
    println!(
        "bucket size {size} bytes; store file {} bytes",
        std::fs::metadata(&path)?.len()
    );

    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
