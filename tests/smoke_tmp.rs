use recfiles::prelude::*;
use std::io::Read;

#[test]
fn smoke() {
    let store = Store::builder()
        .staging_batch(2 << 20)
        .chunk_size(100_000)
        .in_memory()
        .unwrap();
    let b = store.create_bucket(&BucketOptions::default()).unwrap();
    let v = store
        .put_object(b.id, "a.txt", &b"hello"[..], &PutOptions::default())
        .unwrap();
    assert!(v.is_head);
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let v2 = store
        .put_object(b.id, "big.bin", &big[..], &PutOptions::default())
        .unwrap();
    assert_eq!(v2.size, Some(5_000_000));
    let mut out = Vec::new();
    store
        .open_object(b.id, "big.bin")
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, big);
    let r = store.check().unwrap();
    assert!(r.is_ok(), "{r:?}");
    store
        .put_object(b.id, "big2.bin", &big[..], &PutOptions::default())
        .unwrap();
    let r = store.check().unwrap();
    assert!(r.is_ok(), "{r:?}");
    store.delete_object(b.id, "a.txt").unwrap();
    store.remove_version(v2.version_id).unwrap();
    let r = store.check().unwrap();
    assert!(r.is_ok(), "{r:?}");
    println!("{:?}", store.bucket(b.id).unwrap());
}
