//! Reading back: Read + Seek over chunks, byte ranges that touch only their chunks.

mod common;
use common::*;
use std::io::{Read, Seek, SeekFrom};

#[test]
fn any_range_reads_back_exactly() {
    let store = small_store();
    let b = bucket(&store);
    let data = bytes(3, 4096 * 5 + 123);
    put(&store, b.id, "f", &data);
    let mut r = store.open_object(b.id, "f").unwrap();
    for (off, len) in [
        (0, 10),
        (4090, 20),
        (4096, 4096),
        (8000, 9000),
        (20_000, 10_000),
        (20_603, 5),
        (30_000, 10),
    ] {
        let got = r.read_range(off, len).unwrap();
        let end = (off as usize + len).min(data.len());
        let want = if (off as usize) < data.len() {
            &data[off as usize..end]
        } else {
            &[][..]
        };
        assert_eq!(got, want, "range {off}+{len}");
    }
}

#[test]
fn seek_then_read_follows_the_position() {
    let store = small_store();
    let b = bucket(&store);
    let data = bytes(4, 20_000);
    put(&store, b.id, "f", &data);
    let mut r = store.open_object(b.id, "f").unwrap();
    assert_eq!(r.len(), 20_000);
    r.seek(SeekFrom::Start(9_999)).unwrap();
    let mut buf = [0u8; 3];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[9_999..10_002]);
    r.seek(SeekFrom::End(-5)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, data[19_995..]);
    r.seek(SeekFrom::Current(-10)).unwrap();
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[19_990..19_993]);
    assert!(r.seek(SeekFrom::Current(-100_000)).is_err());
    r.seek(SeekFrom::Start(50_000)).unwrap();
    assert_eq!(r.read(&mut buf).unwrap(), 0);
}

#[test]
fn empty_files_read_as_empty() {
    let store = small_store();
    let b = bucket(&store);
    let v = put(&store, b.id, "empty", b"");
    assert_eq!(v.size, Some(0));
    assert!(read_all(&store, b.id, "empty").is_empty());
}

#[test]
fn a_reader_keeps_its_snapshot_while_the_object_changes() {
    let store = small_store();
    let b = bucket(&store);
    let v1 = put(&store, b.id, "f", &bytes(5, 10_000));
    let mut r = store.open_object(b.id, "f").unwrap();
    put(&store, b.id, "f", &bytes(6, 10_000));
    store.remove_version(v1.version_id).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, bytes(5, 10_000));
}
